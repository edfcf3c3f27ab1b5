//! ARP: IP claimed by several MACs (conflict/spoofing versus VRRP/HSRP virtual MACs),
//! gratuitous ARP, unanswered requests, storms.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::{sample, FxMap};
use crate::dissect::ArpPkt;
use crate::reader::Packet;

/// ARP packets in one second at or above which the second counts as a storm.
pub const STORM_PPS: u64 = 100;

pub fn fmt_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The first-hop redundancy protocol owning a virtual MAC, if any.
pub fn virtual_mac_kind(m: &[u8; 6]) -> Option<&'static str> {
    match m {
        [0x00, 0x00, 0x5e, 0x00, 0x01, _] => Some("VRRP (IPv4)"),
        [0x00, 0x00, 0x5e, 0x00, 0x02, _] => Some("VRRP (IPv6)"),
        [0x00, 0x00, 0x0c, 0x07, 0xac, _] => Some("HSRPv1"),
        [0x00, 0x00, 0x0c, 0x9f, b, _] if b & 0xf0 == 0xf0 => Some("HSRPv2"),
        [0x00, 0x07, 0xb4, 0x00, _, _] => Some("GLBP"),
        _ => None,
    }
}

/// One IP claimed by more than one MAC.
#[derive(Debug, Clone)]
pub struct Claim {
    pub ip: Ipv4Addr,
    /// MAC -> (packets, first frame).
    pub macs: BTreeMap<[u8; 6], (u64, u64)>,
    pub frames: Vec<u64>,
}

impl Claim {
    /// "virtual_mac_failover" when a redundancy protocol's MAC is involved, otherwise
    /// "conflict_or_spoofing".
    pub fn verdict(&self) -> &'static str {
        if self.macs.keys().any(|m| virtual_mac_kind(m).is_some()) {
            "virtual_mac_failover"
        } else {
            "conflict_or_spoofing"
        }
    }
}

#[derive(Debug, Clone)]
pub struct UnansweredArp {
    pub target: Ipv4Addr,
    pub requesters: Vec<Ipv4Addr>,
    pub requests: u64,
    pub frames: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct ArpState {
    pub requests: u64,
    pub replies: u64,
    pub gratuitous: u64,
    pub gratuitous_frames: Vec<u64>,
    pub probes: u64,
    claims: FxMap<Ipv4Addr, Claim>,
    pending: FxMap<Ipv4Addr, UnansweredArp>,
    answered: FxMap<Ipv4Addr, ()>,
    cur_sec: Option<i64>,
    cur_count: u64,
    cur_first_frame: u64,
    pub peak_pps: u64,
    pub peak_frame: u64,
    pub storm_seconds: u64,
    grat_sec: Option<i64>,
    grat_count: u64,
    pub peak_gratuitous_pps: u64,
}

impl ArpState {
    pub fn feed(&mut self, p: &Packet<'_>, a: &ArpPkt, _eth_src: Option<[u8; 6]>) {
        // Rate per second.
        let sec = p.ts_ns.div_euclid(1_000_000_000);
        if self.cur_sec != Some(sec) {
            self.close_second();
            self.cur_sec = Some(sec);
            self.cur_count = 0;
            self.cur_first_frame = p.frame;
        }
        self.cur_count += 1;

        let gratuitous = a.spa == a.tpa && !a.spa.is_unspecified();
        let probe = a.spa.is_unspecified();
        match a.op {
            1 => self.requests += 1,
            2 => self.replies += 1,
            _ => {}
        }
        if gratuitous {
            self.gratuitous += 1;
            sample(&mut self.gratuitous_frames, p.frame);
            if self.grat_sec != Some(sec) {
                self.grat_sec = Some(sec);
                self.grat_count = 0;
            }
            self.grat_count += 1;
            self.peak_gratuitous_pps = self.peak_gratuitous_pps.max(self.grat_count);
        }
        if probe {
            self.probes += 1;
        }
        // Claims: the sender says "spa is at sha".
        if !probe && (self.claims.len() < 100_000 || self.claims.contains_key(&a.spa)) {
            let c = self.claims.entry(a.spa).or_insert_with(|| Claim {
                ip: a.spa,
                macs: BTreeMap::new(),
                frames: Vec::new(),
            });
            let e = c.macs.entry(a.sha).or_insert((0, p.frame));
            e.0 += 1;
            if c.macs.len() > 1 {
                sample(&mut c.frames, p.frame);
            }
        }
        // Any packet from spa answers pending requests for spa.
        if !probe {
            self.pending.remove(&a.spa);
            if self.answered.len() < 100_000 {
                self.answered.insert(a.spa, ());
            }
        }
        if a.op == 1 && !gratuitous && !probe && !self.answered.contains_key(&a.tpa) {
            if self.pending.len() < 100_000 || self.pending.contains_key(&a.tpa) {
                let u = self.pending.entry(a.tpa).or_insert_with(|| UnansweredArp {
                    target: a.tpa,
                    requesters: Vec::new(),
                    requests: 0,
                    frames: Vec::new(),
                });
                u.requests += 1;
                if !u.requesters.contains(&a.spa) && u.requesters.len() < 8 {
                    u.requesters.push(a.spa);
                }
                sample(&mut u.frames, p.frame);
            }
        } else if a.op == 1 && probe && !self.answered.contains_key(&a.tpa) {
            // Duplicate-address-detection probe: not a request we expect answered.
        }
    }

    fn close_second(&mut self) {
        if self.cur_count > self.peak_pps {
            self.peak_pps = self.cur_count;
            self.peak_frame = self.cur_first_frame;
        }
        if self.cur_count >= STORM_PPS {
            self.storm_seconds += 1;
        }
    }

    pub fn finish(mut self, _end_ns: i64) -> ArpResult {
        if self.cur_sec.is_some() {
            self.close_second();
        }
        let mut conflicts: Vec<Claim> = self
            .claims
            .into_values()
            .filter(|c| c.macs.len() > 1)
            .collect();
        conflicts.sort_by_key(|c| c.ip);
        let mut unanswered: Vec<UnansweredArp> = self.pending.into_values().collect();
        unanswered.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.target.cmp(&b.target)));
        ArpResult {
            requests: self.requests,
            replies: self.replies,
            gratuitous: self.gratuitous,
            gratuitous_frames: self.gratuitous_frames,
            probes: self.probes,
            conflicts,
            unanswered,
            peak_pps: self.peak_pps,
            peak_frame: self.peak_frame,
            storm_seconds: self.storm_seconds,
            peak_gratuitous_pps: self.peak_gratuitous_pps,
        }
    }
}

#[derive(Debug, Default)]
pub struct ArpResult {
    pub requests: u64,
    pub replies: u64,
    pub gratuitous: u64,
    pub gratuitous_frames: Vec<u64>,
    pub probes: u64,
    pub conflicts: Vec<Claim>,
    pub unanswered: Vec<UnansweredArp>,
    pub peak_pps: u64,
    pub peak_frame: u64,
    pub storm_seconds: u64,
    pub peak_gratuitous_pps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_macs() {
        assert_eq!(
            virtual_mac_kind(&[0, 0, 0x5e, 0, 1, 7]),
            Some("VRRP (IPv4)")
        );
        assert_eq!(
            virtual_mac_kind(&[0, 0, 0x0c, 0x07, 0xac, 1]),
            Some("HSRPv1")
        );
        assert_eq!(virtual_mac_kind(&[2, 0, 0, 0, 0, 1]), None);
    }
}
