//! ICMP and ICMPv6: unreachables with the embedded original, PMTUD (frag-needed /
//! packet-too-big), TTL exceeded (loop versus traceroute), redirects, echo RTT,
//! neighbour discovery.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::tcp::IcmpErrorKind;
use super::{sample, FxMap, LatencyHist};
use crate::dissect::{Embedded, IcmpMsg, IpPkt};
use crate::reader::Packet;

/// Classify an ICMP type as an error kind (None for informational messages).
pub fn error_kind(v6: bool, t: u8) -> Option<IcmpErrorKind> {
    match (v6, t) {
        (false, 3) | (true, 1) => Some(IcmpErrorKind::Unreachable),
        (false, 11) | (true, 3) => Some(IcmpErrorKind::TimeExceeded),
        (true, 2) => Some(IcmpErrorKind::PacketTooBig),
        (false, 5) | (false, 12) | (true, 4) => Some(IcmpErrorKind::Other),
        _ => None,
    }
}

pub fn type_name(v6: bool, t: u8) -> String {
    let s = match (v6, t) {
        (false, 0) => "echo_reply",
        (false, 3) => "destination_unreachable",
        (false, 4) => "source_quench",
        (false, 5) => "redirect",
        (false, 8) => "echo_request",
        (false, 9) => "router_advertisement",
        (false, 10) => "router_solicitation",
        (false, 11) => "time_exceeded",
        (false, 12) => "parameter_problem",
        (false, 13) => "timestamp_request",
        (false, 14) => "timestamp_reply",
        (true, 1) => "icmpv6_destination_unreachable",
        (true, 2) => "icmpv6_packet_too_big",
        (true, 3) => "icmpv6_time_exceeded",
        (true, 4) => "icmpv6_parameter_problem",
        (true, 128) => "icmpv6_echo_request",
        (true, 129) => "icmpv6_echo_reply",
        (true, 130..=132) | (true, 143) => "icmpv6_multicast_listener",
        (true, 133) => "icmpv6_router_solicitation",
        (true, 134) => "icmpv6_router_advertisement",
        (true, 135) => "icmpv6_neighbor_solicitation",
        (true, 136) => "icmpv6_neighbor_advertisement",
        (true, 137) => "icmpv6_redirect",
        _ => return format!("{}type_{t}", if v6 { "icmpv6_" } else { "" }),
    };
    s.to_string()
}

pub fn unreach_code_name(v6: bool, code: u8) -> &'static str {
    if v6 {
        match code {
            0 => "no_route",
            1 => "admin_prohibited",
            2 => "beyond_scope",
            3 => "address_unreachable",
            4 => "port_unreachable",
            5 => "source_policy_failed",
            6 => "reject_route",
            _ => "other",
        }
    } else {
        match code {
            0 => "net_unreachable",
            1 => "host_unreachable",
            2 => "protocol_unreachable",
            3 => "port_unreachable",
            4 => "fragmentation_needed",
            5 => "source_route_failed",
            6 => "dest_net_unknown",
            7 => "dest_host_unknown",
            9 => "net_admin_prohibited",
            10 => "host_admin_prohibited",
            11 => "net_unreachable_tos",
            12 => "host_unreachable_tos",
            13 => "admin_prohibited",
            _ => "other",
        }
    }
}

/// True when the unreachable code means "a filter said no".
pub fn is_admin_prohibited(v6: bool, code: u8) -> bool {
    if v6 {
        matches!(code, 1 | 5 | 6)
    } else {
        matches!(code, 9 | 10 | 13)
    }
}

/// True when the code means "host (or address) unreachable".
pub fn is_host_unreachable(v6: bool, code: u8) -> bool {
    if v6 {
        code == 3
    } else {
        matches!(code, 1 | 7)
    }
}

/// Unreachables aggregated by (reporter, code, original destination, protocol, port).
#[derive(Debug, Clone)]
pub struct UnreachEntry {
    pub v6: bool,
    pub code: u8,
    pub reporter: IpAddr,
    pub original_src: IpAddr,
    pub original_dst: IpAddr,
    pub protocol: u8,
    pub dport: Option<u16>,
    pub count: u64,
    pub frames: Vec<u64>,
}

/// Frag-needed / packet-too-big aggregated by (reporter, original destination, MTU).
#[derive(Debug, Clone)]
pub struct MtuEntry {
    pub v6: bool,
    pub reporter: IpAddr,
    pub original_src: IpAddr,
    pub original_dst: IpAddr,
    pub mtu: u32,
    pub count: u64,
    pub frames: Vec<u64>,
}

/// TTL-exceeded messages per original target.
#[derive(Debug, Clone)]
pub struct TtlEntry {
    pub original_src: IpAddr,
    pub target: IpAddr,
    pub protocol: u8,
    pub dport: Option<u16>,
    pub routers: BTreeSet<IpAddr>,
    pub count: u64,
    /// Probes look like traceroute (UDP 33434-33534 or ICMP echo).
    pub probe_like: u64,
    pub frames: Vec<u64>,
}

impl TtlEntry {
    /// Loop versus traceroute: traceroute probes reach several routers with increasing
    /// TTLs; a loop returns TTL-exceeded for ordinary traffic.
    pub fn verdict(&self) -> &'static str {
        if self.probe_like * 2 >= self.count {
            "traceroute"
        } else {
            "possible_routing_loop"
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedirectEntry {
    pub router: IpAddr,
    pub gateway: Option<IpAddr>,
    pub original_dst: IpAddr,
    pub count: u64,
    pub frames: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EchoKey {
    a: IpAddr,
    b: IpAddr,
    id: u16,
    seq: u16,
}

/// (reporter, v6, code, original destination, protocol, destination port).
type UnreachKey = (IpAddr, bool, u8, IpAddr, u8, Option<u16>);

#[derive(Debug, Default)]
pub struct IcmpState {
    pub packets: u64,
    pub types: BTreeMap<String, u64>,
    unreach: FxMap<UnreachKey, UnreachEntry>,
    mtu: FxMap<(IpAddr, IpAddr, u32), MtuEntry>,
    ttl: FxMap<(IpAddr, IpAddr), TtlEntry>,
    redirects: FxMap<(IpAddr, IpAddr), RedirectEntry>,
    echo: FxMap<EchoKey, i64>,
    pub echo_requests: u64,
    pub echo_replies: u64,
    pub echo_rtt: LatencyHist,
    pub nd_solicitations: u64,
    pub nd_advertisements: u64,
    ns_pending: FxMap<IpAddr, u64>,
}

fn mtu_from(m: &IcmpMsg<'_>) -> u32 {
    if m.v6 {
        u32::from_be_bytes(m.rest)
    } else {
        u32::from(u16::from_be_bytes([m.rest[2], m.rest[3]]))
    }
}

impl IcmpState {
    pub fn feed(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, m: &IcmpMsg<'_>) {
        self.packets += 1;
        let tn = type_name(m.v6, m.icmp_type);
        if let Some(c) = self.types.get_mut(&tn) {
            *c += 1;
        } else if self.types.len() < 64 {
            self.types.insert(tn, 1);
        }
        let emb = m.embedded();
        match (m.v6, m.icmp_type) {
            (false, 3) | (true, 1) | (true, 2) => {
                let Some(e) = emb else { return };
                if (!m.v6 && m.code == 4) || (m.v6 && m.icmp_type == 2) {
                    self.add_mtu(p, ip, m, &e);
                } else {
                    self.add_unreach(p, ip, m, &e);
                }
            }
            (false, 11) | (true, 3) => {
                let Some(e) = emb else { return };
                if m.code != 0 {
                    return; // reassembly time exceeded
                }
                let key = (e.src, e.dst);
                if self.ttl.len() >= 100_000 && !self.ttl.contains_key(&key) {
                    return;
                }
                let t = self.ttl.entry(key).or_insert_with(|| TtlEntry {
                    original_src: e.src,
                    target: e.dst,
                    protocol: e.proto,
                    dport: e.dport,
                    routers: BTreeSet::new(),
                    count: 0,
                    probe_like: 0,
                    frames: Vec::new(),
                });
                t.count += 1;
                if t.routers.len() < 32 {
                    t.routers.insert(ip.src);
                }
                let probe = (e.proto == 17
                    && e.dport.is_some_and(|d| (33434..=33534).contains(&d)))
                    || e.proto == 1
                    || e.proto == 58;
                if probe {
                    t.probe_like += 1;
                }
                sample(&mut t.frames, p.frame);
            }
            (false, 5) | (true, 137) => {
                let (gateway, orig) = if m.v6 {
                    let tgt = m.body.get(0..16).map(|s| {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(s);
                        IpAddr::from(a)
                    });
                    let dst = m.body.get(16..32).map(|s| {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(s);
                        IpAddr::from(a)
                    });
                    (tgt, dst)
                } else {
                    (Some(IpAddr::from(m.rest)), emb.map(|e| e.dst))
                };
                let Some(orig) = orig else { return };
                let key = (ip.src, orig);
                if self.redirects.len() >= 10_000 && !self.redirects.contains_key(&key) {
                    return;
                }
                let r = self.redirects.entry(key).or_insert_with(|| RedirectEntry {
                    router: ip.src,
                    gateway,
                    original_dst: orig,
                    count: 0,
                    frames: Vec::new(),
                });
                r.count += 1;
                sample(&mut r.frames, p.frame);
            }
            (false, 8) | (true, 128) => {
                self.echo_requests += 1;
                let id = u16::from_be_bytes([m.rest[0], m.rest[1]]);
                let seq = u16::from_be_bytes([m.rest[2], m.rest[3]]);
                if self.echo.len() < 100_000 {
                    self.echo
                        .entry(EchoKey {
                            a: ip.src,
                            b: ip.dst,
                            id,
                            seq,
                        })
                        .or_insert(p.ts_ns);
                }
            }
            (false, 0) | (true, 129) => {
                self.echo_replies += 1;
                let id = u16::from_be_bytes([m.rest[0], m.rest[1]]);
                let seq = u16::from_be_bytes([m.rest[2], m.rest[3]]);
                if let Some(t) = self.echo.remove(&EchoKey {
                    a: ip.dst,
                    b: ip.src,
                    id,
                    seq,
                }) {
                    self.echo_rtt.add((p.ts_ns - t).max(0) as f64 / 1000.0);
                }
            }
            (true, 135) => {
                self.nd_solicitations += 1;
                if let Some(s) = m.body.get(0..16) {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(s);
                    if self.ns_pending.len() < 100_000 {
                        *self.ns_pending.entry(IpAddr::from(a)).or_default() += 1;
                    }
                }
            }
            (true, 136) => {
                self.nd_advertisements += 1;
                if let Some(s) = m.body.get(0..16) {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(s);
                    self.ns_pending.remove(&IpAddr::from(a));
                }
            }
            _ => {}
        }
    }

    fn add_unreach(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, m: &IcmpMsg<'_>, e: &Embedded) {
        let key = (ip.src, m.v6, m.code, e.dst, e.proto, e.dport);
        if self.unreach.len() >= 100_000 && !self.unreach.contains_key(&key) {
            return;
        }
        let u = self.unreach.entry(key).or_insert_with(|| UnreachEntry {
            v6: m.v6,
            code: m.code,
            reporter: ip.src,
            original_src: e.src,
            original_dst: e.dst,
            protocol: e.proto,
            dport: e.dport,
            count: 0,
            frames: Vec::new(),
        });
        u.count += 1;
        sample(&mut u.frames, p.frame);
    }

    fn add_mtu(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, m: &IcmpMsg<'_>, e: &Embedded) {
        let mtu = mtu_from(m);
        let key = (ip.src, e.dst, mtu);
        if self.mtu.len() >= 100_000 && !self.mtu.contains_key(&key) {
            return;
        }
        let u = self.mtu.entry(key).or_insert_with(|| MtuEntry {
            v6: m.v6,
            reporter: ip.src,
            original_src: e.src,
            original_dst: e.dst,
            mtu,
            count: 0,
            frames: Vec::new(),
        });
        u.count += 1;
        sample(&mut u.frames, p.frame);
    }

    pub fn finish(self) -> IcmpResult {
        let mut unreachables: Vec<UnreachEntry> = self.unreach.into_values().collect();
        unreachables.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.frames.first().cmp(&b.frames.first()))
        });
        let mut mtu: Vec<MtuEntry> = self.mtu.into_values().collect();
        mtu.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.frames.first().cmp(&b.frames.first()))
        });
        let mut ttl: Vec<TtlEntry> = self.ttl.into_values().collect();
        ttl.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.frames.first().cmp(&b.frames.first()))
        });
        let mut redirects: Vec<RedirectEntry> = self.redirects.into_values().collect();
        redirects.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.frames.first().cmp(&b.frames.first()))
        });
        let mut ns_unanswered: Vec<IpAddr> = self.ns_pending.into_keys().collect();
        ns_unanswered.sort();
        IcmpResult {
            packets: self.packets,
            types: self.types,
            unreachables,
            mtu,
            ttl,
            redirects,
            echo_requests: self.echo_requests,
            echo_replies: self.echo_replies,
            echo_unanswered: self.echo.len() as u64,
            echo_rtt: self.echo_rtt,
            nd_solicitations: self.nd_solicitations,
            nd_advertisements: self.nd_advertisements,
            ns_unanswered,
        }
    }
}

#[derive(Debug, Default)]
pub struct IcmpResult {
    pub packets: u64,
    pub types: BTreeMap<String, u64>,
    pub unreachables: Vec<UnreachEntry>,
    pub mtu: Vec<MtuEntry>,
    pub ttl: Vec<TtlEntry>,
    pub redirects: Vec<RedirectEntry>,
    pub echo_requests: u64,
    pub echo_replies: u64,
    pub echo_unanswered: u64,
    pub echo_rtt: LatencyHist,
    pub nd_solicitations: u64,
    pub nd_advertisements: u64,
    pub ns_unanswered: Vec<IpAddr>,
}
