//! UDP flows: volume, rate, unanswered flows.

use std::net::IpAddr;

use super::{sample, Endpoint, FlowKey, FxMap};
use crate::dissect::{Embedded, IpPkt, UdpDg};
use crate::reader::Packet;

/// One UDP flow (index 0: first sender to its peer, 1: the reverse).
#[derive(Debug, Clone)]
pub struct UdpFlow {
    pub initiator: Endpoint,
    pub responder: Endpoint,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub first_ts: i64,
    pub last_ts: i64,
    pub frames: Vec<u64>,
    pub icmp_errors: u64,
}

impl UdpFlow {
    pub fn label(&self) -> String {
        format!("udp {} -> {}", self.initiator, self.responder)
    }
    pub fn duration_s(&self) -> f64 {
        (self.last_ts - self.first_ts).max(0) as f64 / 1e9
    }
    /// Packets per second over the flow's lifetime (0 for a single instant).
    pub fn rate_pps(&self) -> f64 {
        let d = self.duration_s();
        if d > 0.0 {
            (self.packets[0] + self.packets[1]) as f64 / d
        } else {
            0.0
        }
    }
    /// One-way traffic to a unicast peer that never answered.
    pub fn unanswered(&self) -> bool {
        self.packets[1] == 0 && is_unicast(self.responder.ip)
    }
}

/// Unicast (not multicast, not broadcast, not unspecified).
pub fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_multicast() || a.is_broadcast() || a.is_unspecified() || a.octets()[3] == 255)
        }
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}

#[derive(Debug, Default)]
pub struct UdpState {
    flows: FxMap<FlowKey, UdpFlow>,
    pub packets: u64,
    pub bytes: u64,
}

impl UdpState {
    pub fn feed(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, u: &UdpDg<'_>) {
        self.packets += 1;
        let wire = u64::from(p.orig_len);
        self.bytes += wire;
        let src = Endpoint {
            ip: ip.src,
            port: u.sport,
        };
        let dst = Endpoint {
            ip: ip.dst,
            port: u.dport,
        };
        let (key, _) = FlowKey::new(src, dst);
        let f = self.flows.entry(key).or_insert_with(|| UdpFlow {
            initiator: src,
            responder: dst,
            packets: [0; 2],
            bytes: [0; 2],
            first_ts: p.ts_ns,
            last_ts: p.ts_ns,
            frames: Vec::new(),
            icmp_errors: 0,
        });
        let d = usize::from(f.initiator != src);
        f.packets[d] += 1;
        f.bytes[d] += wire;
        f.last_ts = f.last_ts.max(p.ts_ns);
        sample(&mut f.frames, p.frame);
    }

    pub fn icmp_error(&mut self, e: &Embedded) {
        if e.proto != 17 {
            return;
        }
        let (Some(sp), Some(dp)) = (e.sport, e.dport) else {
            return;
        };
        let (key, _) = FlowKey::new(
            Endpoint {
                ip: e.src,
                port: sp,
            },
            Endpoint {
                ip: e.dst,
                port: dp,
            },
        );
        if let Some(f) = self.flows.get_mut(&key) {
            f.icmp_errors += 1;
        }
    }

    pub fn finish(self) -> UdpResult {
        let mut flows: Vec<UdpFlow> = self.flows.into_values().collect();
        flows.sort_by(|a, b| {
            (b.bytes[0] + b.bytes[1])
                .cmp(&(a.bytes[0] + a.bytes[1]))
                .then(a.first_ts.cmp(&b.first_ts))
                .then(a.initiator.cmp(&b.initiator))
                .then(a.responder.cmp(&b.responder))
        });
        UdpResult {
            flows,
            packets: self.packets,
            bytes: self.bytes,
        }
    }
}

#[derive(Debug, Default)]
pub struct UdpResult {
    /// Flows sorted by volume, largest first.
    pub flows: Vec<UdpFlow>,
    pub packets: u64,
    pub bytes: u64,
}
