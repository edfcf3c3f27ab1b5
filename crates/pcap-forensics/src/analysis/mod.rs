//! The analysis engine: one pass over the packets, per-protocol state, then findings.

pub mod arp;
pub mod dns;
pub mod icmp;
pub mod response;
pub mod tcp;
pub mod udp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::net::IpAddr;

use crate::dissect::{self, IpPkt, L3, L4};
use crate::error::PcapError;
use crate::reader::{CaptureReader, Format, Packet};
use crate::reassembly::ip::{DefragStats, Defragmenter, Fragment, Outcome as ReOutcome};

/// Frames kept as evidence per item while analysing.
pub const SAMPLE_FRAMES: usize = 8;

/// A small, fast, non-cryptographic hasher (FxHash) for the per-packet flow tables.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Push a frame number if there is room.
#[inline]
pub fn sample(v: &mut Vec<u64>, frame: u64) {
    if v.len() < SAMPLE_FRAMES {
        v.push(frame);
    }
}

/// A transport endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// A canonical (direction-independent) flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: Endpoint,
    pub hi: Endpoint,
}

impl FlowKey {
    /// The key and whether `src` is the `lo` side.
    #[inline]
    pub fn new(src: Endpoint, dst: Endpoint) -> (FlowKey, bool) {
        if src <= dst {
            (FlowKey { lo: src, hi: dst }, true)
        } else {
            (FlowKey { lo: dst, hi: src }, false)
        }
    }
}

/// A log-bucketed latency histogram (2 % resolution, constant memory), in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHist {
    buckets: Vec<u64>,
    pub count: u64,
    pub sum_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

const HIST_BASE: f64 = 1.02;
const HIST_BUCKETS: usize = 1000;

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist {
            buckets: Vec::new(),
            count: 0,
            sum_us: 0.0,
            min_us: f64::INFINITY,
            max_us: 0.0,
        }
    }
}

impl LatencyHist {
    pub fn add(&mut self, us: f64) {
        let us = if us.is_finite() { us.max(0.0) } else { 0.0 };
        if self.buckets.is_empty() {
            self.buckets = vec![0; HIST_BUCKETS];
        }
        let idx = if us <= 1.0 {
            0
        } else {
            ((us.ln() / HIST_BASE.ln()).ceil() as usize).min(HIST_BUCKETS - 1)
        };
        self.buckets[idx] += 1;
        self.count += 1;
        self.sum_us += us;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// The p-th percentile (0..=100) in microseconds, within 2 %, clamped to [min, max].
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut acc = 0u64;
        for (i, &c) in self.buckets.iter().enumerate() {
            acc += c;
            if acc >= rank {
                let v = if i == 0 {
                    1.0
                } else {
                    HIST_BASE.powi(i as i32)
                };
                return Some(v.clamp(self.min_us, self.max_us));
            }
        }
        Some(self.max_us)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us / self.count as f64)
    }

    /// Summary in milliseconds for the JSON.
    pub fn summary_ms(&self) -> serde_json::Value {
        if self.count == 0 {
            return serde_json::json!({"count": 0});
        }
        let r = |v: f64| (v / 1000.0 * 1000.0).round() / 1000.0;
        serde_json::json!({
            "count": self.count,
            "min_ms": r(self.min_us),
            "p50_ms": r(self.percentile(50.0).unwrap_or(0.0)),
            "p90_ms": r(self.percentile(90.0).unwrap_or(0.0)),
            "p99_ms": r(self.percentile(99.0).unwrap_or(0.0)),
            "max_ms": r(self.max_us),
            "mean_ms": r(self.mean().unwrap_or(0.0)),
        })
    }
}

/// Capture-level counters.
#[derive(Debug, Clone, Default)]
pub struct CaptureStats {
    pub packets: u64,
    pub bytes_captured: u64,
    pub bytes_wire: u64,
    pub first_ts_ns: Option<i64>,
    pub last_ts_ns: Option<i64>,
    pub link_types: BTreeMap<u16, u64>,
    pub protocols: BTreeMap<&'static str, u64>,
    pub vlans: BTreeMap<u16, u64>,
    pub ipv4_packets: u64,
    pub ipv6_packets: u64,
    pub fragments: u64,
    pub malformed: u64,
    pub malformed_frames: Vec<u64>,
    pub snaplen_truncated: u64,
    pub interfaces: BTreeSet<u32>,
    /// Hot-path protocol counters, merged into `protocols` by `finish`.
    hot: [u64; 8],
}

const H_ARP: usize = 0;
const H_IPV4: usize = 1;
const H_IPV6: usize = 2;
const H_TCP: usize = 3;
const H_UDP: usize = 4;
const H_DNS: usize = 5;
const H_ICMP: usize = 6;
const H_ICMPV6: usize = 7;
const HOT_NAMES: [&str; 8] = ["arp", "ipv4", "ipv6", "tcp", "udp", "dns", "icmp", "icmpv6"];

/// Options that shape the analysis.
#[derive(Debug, Clone)]
pub struct AnalysisOptions {
    /// Items kept in each top-N list of the semantic JSON and the report.
    pub top_n: usize,
    /// DNS answers slower than this are "slow" (ms).
    pub dns_slow_ms: f64,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        AnalysisOptions {
            top_n: 10,
            dns_slow_ms: 500.0,
        }
    }
}

/// The streaming analyzer: feed packets, then [`Analyzer::finish`].
#[derive(Debug, Default)]
pub struct Analyzer {
    pub stats: CaptureStats,
    pub tcp: tcp::TcpState,
    pub udp: udp::UdpState,
    pub dns: dns::DnsState,
    pub icmp: icmp::IcmpState,
    pub arp: arp::ArpState,
    /// Request/response timing per TCP connection.
    pub response: response::ResponseState,
    /// IPv4/IPv6 fragment reassembly.
    pub defrag: Defragmenter,
}

/// Everything the analysis found, before rendering.
#[derive(Debug)]
pub struct Analysis {
    pub file: String,
    pub format: Option<Format>,
    pub stats: CaptureStats,
    pub warnings: Vec<String>,
    pub comments: Vec<String>,
    pub tcp: tcp::TcpResult,
    pub udp: udp::UdpResult,
    pub dns: dns::DnsResult,
    pub icmp: icmp::IcmpResult,
    pub arp: arp::ArpResult,
    /// Application response times per server endpoint.
    pub responses: response::ResponseResult,
    /// IP fragment reassembly counters and issues.
    pub reassembly: DefragStats,
    pub findings: Vec<crate::findings::Finding>,
}

impl Analysis {
    pub fn duration_s(&self) -> f64 {
        match (self.stats.first_ts_ns, self.stats.last_ts_ns) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => 0.0,
        }
    }
}

impl Analyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Analyse one packet.
    pub fn feed(&mut self, p: &Packet<'_>) {
        let s = &mut self.stats;
        s.packets += 1;
        s.bytes_captured += p.data.len() as u64;
        s.bytes_wire += u64::from(p.orig_len.max(p.data.len() as u32));
        if (p.data.len() as u32) < p.orig_len {
            s.snaplen_truncated += 1;
        }
        if s.first_ts_ns.is_none_or(|f| p.ts_ns < f) {
            s.first_ts_ns = Some(p.ts_ns);
        }
        if s.last_ts_ns.is_none_or(|l| p.ts_ns > l) {
            s.last_ts_ns = Some(p.ts_ns);
        }
        *s.link_types.entry(p.link_type).or_default() += 1;
        if s.interfaces.len() < 64 {
            s.interfaces.insert(p.interface);
        }
        let d = dissect::dissect(p.link_type, p.data);
        if let Some(v) = d.vlan {
            if s.vlans.len() < 4096 {
                *s.vlans.entry(v).or_default() += 1;
            }
        }
        match d.l3 {
            L3::Malformed => {
                s.malformed += 1;
                sample(&mut s.malformed_frames, p.frame);
            }
            L3::Other(et) => {
                let name = match et {
                    0x88cc => "lldp",
                    0x8035 => "rarp",
                    0x8847 | 0x8848 => "mpls",
                    0x888e => "eapol",
                    _ => "l2-other",
                };
                *s.protocols.entry(name).or_default() += 1;
            }
            L3::Arp(a) => {
                s.hot[H_ARP] += 1;
                self.arp.feed(p, &a, d.eth_src);
            }
            L3::Ip(ip) => {
                if ip.v6 {
                    s.ipv6_packets += 1;
                    s.hot[H_IPV6] += 1;
                } else {
                    s.ipv4_packets += 1;
                    s.hot[H_IPV4] += 1;
                }
                match ip.frag {
                    Some((offset, more)) => {
                        s.fragments += 1;
                        let f = Fragment {
                            v6: ip.v6,
                            src: ip.src,
                            dst: ip.dst,
                            proto: ip.proto,
                            id: ip.ip_id,
                            offset,
                            more,
                            data: ip.payload,
                            wire_len: ip.payload_len,
                            ts_ns: p.ts_ns,
                            frame: p.frame,
                            frame_len: p.orig_len.max(p.data.len() as u32),
                        };
                        match self.defrag.feed(&f) {
                            ReOutcome::Complete(r) => {
                                let (proto, l4) =
                                    dissect::dissect_reassembled(ip.v6, ip.proto, &r.payload);
                                let whole = IpPkt {
                                    proto,
                                    frag: None,
                                    total_len: r.payload.len() as u32 + if ip.v6 { 40 } else { 20 },
                                    payload: &r.payload,
                                    payload_len: r.payload.len() as u32,
                                    l4,
                                    ..ip
                                };
                                // Byte counters see every fragment's frame.
                                let whole_p = Packet {
                                    orig_len: u32::try_from(r.wire_bytes).unwrap_or(u32::MAX),
                                    ..*p
                                };
                                self.feed_l4(&whole_p, &whole);
                            }
                            ReOutcome::Pending | ReOutcome::Dropped => {
                                *s.protocols
                                    .entry(dissect::ip_proto_name(ip.proto))
                                    .or_default() += 1;
                            }
                        }
                    }
                    None => self.feed_l4(p, &ip),
                }
            }
        }
    }

    /// The transport layer of a whole (unfragmented or reassembled) datagram.
    fn feed_l4(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>) {
        let s = &mut self.stats;
        match ip.l4 {
            L4::Tcp(seg) => {
                s.hot[H_TCP] += 1;
                self.tcp.feed(p, ip, &seg);
                self.response.feed(p, ip, &seg);
                if seg.sport == 53 || seg.dport == 53 {
                    s.hot[H_DNS] += 1;
                    self.dns.feed_tcp(p, ip, &seg);
                }
            }
            L4::Udp(u) => {
                s.hot[H_UDP] += 1;
                self.udp.feed(p, ip, &u);
                if u.sport == 53 || u.dport == 53 {
                    s.hot[H_DNS] += 1;
                    self.dns.feed_udp(p, ip, &u);
                }
            }
            L4::Icmp(m) => {
                s.hot[if m.v6 { H_ICMPV6 } else { H_ICMP }] += 1;
                self.icmp.feed(p, ip, &m);
                if let Some(e) = m.embedded() {
                    if let Some(kind) = icmp::error_kind(m.v6, m.icmp_type) {
                        self.tcp.icmp_error(p, ip, &m, &e, kind);
                        self.udp.icmp_error(&e);
                    }
                }
            }
            L4::Fragment | L4::Other => {
                *s.protocols
                    .entry(dissect::ip_proto_name(ip.proto))
                    .or_default() += 1;
            }
            L4::Truncated => {
                *s.protocols
                    .entry(dissect::ip_proto_name(ip.proto))
                    .or_default() += 1;
                s.malformed += 1;
                sample(&mut s.malformed_frames, p.frame);
            }
        }
    }

    /// Finish: close open state and compute findings.
    pub fn finish(mut self, file: &str, opts: &AnalysisOptions) -> Analysis {
        for (i, name) in HOT_NAMES.iter().enumerate() {
            if self.stats.hot[i] > 0 {
                *self.stats.protocols.entry(name).or_default() += self.stats.hot[i];
                self.stats.hot[i] = 0;
            }
        }
        let end_ns = self.stats.last_ts_ns.unwrap_or(0);
        self.defrag.finish(end_ns);
        let mut a = Analysis {
            file: file.to_string(),
            format: None,
            tcp: self.tcp.finish(),
            udp: self.udp.finish(),
            dns: self.dns.finish(opts),
            icmp: self.icmp.finish(),
            arp: self.arp.finish(end_ns),
            responses: self.response.finish(),
            reassembly: std::mem::take(&mut self.defrag.stats),
            stats: self.stats,
            warnings: Vec::new(),
            comments: Vec::new(),
            findings: Vec::new(),
        };
        a.findings = crate::findings::evaluate(&a, opts);
        a
    }
}

/// Progress callback: (packets, bytes read).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Analyse a capture from any reader.
pub fn analyze_reader<R: Read>(
    input: R,
    file: &str,
    opts: &AnalysisOptions,
    mut progress: Option<Progress<'_>>,
) -> Result<Analysis, PcapError> {
    let mut reader = CaptureReader::new(input)?;
    let mut an = Analyzer::new();
    an.dns.slow_ms = Some(opts.dns_slow_ms);
    while let Some(p) = reader.next_packet() {
        an.feed(&p);
        if let Some(cb) = progress.as_mut() {
            if an.stats.packets.is_multiple_of(262_144) {
                let n = an.stats.packets;
                let b = reader.bytes_read();
                cb(n, b);
            }
        }
    }
    let format = reader.format();
    let warnings = reader.warnings().to_vec();
    let comments = reader.comments().to_vec();
    let declared: Vec<u16> = reader.link_types().iter().copied().collect();
    let mut a = an.finish(file, opts);
    for lt in declared {
        a.stats.link_types.entry(lt).or_insert(0);
    }
    a.format = Some(format);
    a.warnings = warnings;
    a.comments = comments;
    if a.stats.malformed > 0 {
        a.warnings.push(format!(
            "{} frame(s) could not be fully dissected (malformed or cut short), e.g. frame(s) {:?}",
            a.stats.malformed, a.stats.malformed_frames
        ));
    }
    // Re-evaluate so reader warnings become a finding.
    a.findings = crate::findings::evaluate(&a, opts);
    Ok(a)
}

/// Analyse a capture file.
pub fn analyze_file(
    path: &std::path::Path,
    opts: &AnalysisOptions,
    progress: Option<Progress<'_>>,
) -> Result<Analysis, PcapError> {
    let f = std::fs::File::open(path).map_err(|source| PcapError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let r = std::io::BufReader::with_capacity(1 << 20, f);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    analyze_reader(r, &name, opts, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_two_percent() {
        let mut h = LatencyHist::default();
        for i in 1..=1000 {
            h.add(f64::from(i) * 100.0);
        }
        let p50 = h.percentile(50.0).expect("p50");
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.03, "{p50}");
        let p99 = h.percentile(99.0).expect("p99");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.03, "{p99}");
        assert_eq!(h.max_us, 100_000.0);
    }

    #[test]
    fn flow_key_is_direction_independent() {
        let a = Endpoint {
            ip: "198.18.0.1".parse().expect("ip"),
            port: 1000,
        };
        let b = Endpoint {
            ip: "198.18.0.2".parse().expect("ip"),
            port: 80,
        };
        let (k1, d1) = FlowKey::new(a, b);
        let (k2, d2) = FlowKey::new(b, a);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
    }
}
