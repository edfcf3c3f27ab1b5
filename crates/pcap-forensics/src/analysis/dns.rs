//! DNS over UDP and TCP: query/response matching, latency, rcodes, suspicious names.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::{sample, AnalysisOptions, Endpoint, FxMap, LatencyHist};
use crate::dissect::{tcpflag, IpPkt, TcpSeg, UdpDg};
use crate::reader::Packet;
use crate::reassembly::tcp::{Stream, StreamLimits};

/// Most distinct names tracked per table (NXDOMAIN, SERVFAIL, suspicious...).
const MAX_NAMES: usize = 10_000;
/// Entropy (bits/char) above which a long label looks machine-generated.
pub const DGA_ENTROPY: f64 = 3.5;
/// Minimum label length for the DGA test.
pub const DGA_MIN_LABEL: usize = 12;
/// Label length above which a name looks like a tunnel carrier.
pub const TUNNEL_LABEL: usize = 40;
/// Name length above which a name looks like a tunnel carrier.
pub const TUNNEL_NAME: usize = 100;

/// A parsed DNS message (only what the analysis needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMsg {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub truncated: bool,
    pub rcode: u8,
    pub qname: Option<String>,
    pub qtype: Option<u16>,
    pub answers: u16,
}

/// Parse a DNS message; `None` when the header is cut short.
pub fn parse_dns(b: &[u8]) -> Option<DnsMsg> {
    let h = b.get(0..12)?;
    let id = u16::from_be_bytes([h[0], h[1]]);
    let flags = u16::from_be_bytes([h[2], h[3]]);
    let qd = u16::from_be_bytes([h[4], h[5]]);
    let an = u16::from_be_bytes([h[6], h[7]]);
    let (qname, qtype) = if qd >= 1 {
        match read_name(b, 12) {
            Some((name, end)) => {
                let qt = b
                    .get(end..end + 2)
                    .map(|s| u16::from_be_bytes([s[0], s[1]]));
                (Some(name), qt)
            }
            None => (None, None),
        }
    } else {
        (None, None)
    };
    Some(DnsMsg {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0x0f) as u8,
        truncated: flags & 0x0200 != 0,
        rcode: (flags & 0x000f) as u8,
        qname,
        qtype,
        answers: an,
    })
}

/// Read a (possibly compressed) name; returns the name and the offset after it.
fn read_name(b: &[u8], start: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut off = start;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *b.get(off)? as usize;
        if len == 0 {
            if end.is_none() {
                end = Some(off + 1);
            }
            break;
        }
        if len & 0xc0 == 0xc0 {
            let lo = *b.get(off + 1)? as usize;
            if end.is_none() {
                end = Some(off + 2);
            }
            jumps += 1;
            if jumps > 16 {
                return None;
            }
            off = ((len & 0x3f) << 8) | lo;
            continue;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        let label = b.get(off + 1..off + 1 + len)?;
        if !out.is_empty() {
            out.push('.');
        }
        for &c in label {
            if c.is_ascii_graphic() && c != b'.' {
                out.push(c.to_ascii_lowercase() as char);
            } else {
                out.push_str(&format!("\\{c:03}"));
            }
        }
        if out.len() > 1024 {
            return None;
        }
        off += 1 + len;
    }
    if out.is_empty() {
        out.push('.');
    }
    Some((out, end?))
}

pub fn rcode_name(r: u8) -> String {
    match r {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        9 => "NOTAUTH".into(),
        other => format!("RCODE{other}"),
    }
}

pub fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        35 => "NAPTR".into(),
        43 => "DS".into(),
        48 => "DNSKEY".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The registered-domain guess: the last two labels (three when the second-level label
/// is a short public suffix part like `co`/`com`).
pub fn base_domain(name: &str) -> String {
    let labels: Vec<&str> = name.split('.').filter(|l| !l.is_empty()).collect();
    let n = labels.len();
    if n <= 2 {
        return labels.join(".");
    }
    let take = if matches!(
        labels[n - 2],
        "co" | "com" | "net" | "org" | "ac" | "gov" | "edu"
    ) && labels[n - 1].len() == 2
    {
        3
    } else {
        2
    };
    labels[n - take.min(n)..].join(".")
}

/// Why a name looks suspicious, with its measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Suspicion {
    pub name: String,
    pub kind: &'static str,
    pub label_len: usize,
    pub name_len: usize,
    pub entropy: f64,
}

/// Classify a queried name: DGA-like (long, high-entropy leftmost label) or tunnel-like
/// (very long labels or names).
pub fn classify_name(name: &str) -> Option<Suspicion> {
    let first = name.split('.').next().unwrap_or("");
    let longest = name.split('.').map(str::len).max().unwrap_or(0);
    let ent = entropy(first);
    if longest >= TUNNEL_LABEL || name.len() >= TUNNEL_NAME {
        return Some(Suspicion {
            name: name.to_string(),
            kind: "tunnel_like",
            label_len: longest,
            name_len: name.len(),
            entropy: ent,
        });
    }
    if first.len() >= DGA_MIN_LABEL && ent >= DGA_ENTROPY && !name.ends_with(".arpa") {
        return Some(Suspicion {
            name: name.to_string(),
            kind: "dga_like",
            label_len: first.len(),
            name_len: name.len(),
            entropy: ent,
        });
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QKey {
    client: Endpoint,
    server: Endpoint,
    id: u16,
}

#[derive(Debug, Clone)]
struct Pending {
    ts: i64,
    frame: u64,
    qname: Option<String>,
    qtype: Option<u16>,
}

/// A query that got no answer or a slow answer.
#[derive(Debug, Clone)]
pub struct QueryRecord {
    pub client: Endpoint,
    pub server: Endpoint,
    pub name: String,
    pub qtype: String,
    pub frame: u64,
    pub latency_ms: Option<f64>,
}

/// A name with a count and sample frames.
#[derive(Debug, Clone, Default)]
pub struct NameCount {
    pub count: u64,
    pub frames: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct DnsState {
    pending: FxMap<QKey, Pending>,
    pub queries: u64,
    pub responses: u64,
    pub retransmitted_queries: u64,
    pub unmatched_responses: u64,
    pub truncated: u64,
    pub truncated_frames: Vec<u64>,
    pub tcp_messages: u64,
    pub rcodes: BTreeMap<String, u64>,
    pub qtypes: BTreeMap<String, u64>,
    pub servers: BTreeMap<IpAddr, u64>,
    pub latency: LatencyHist,
    pub slow: Vec<QueryRecord>,
    pub slow_count: u64,
    pub nxdomain: HashMap<String, NameCount>,
    pub servfail: HashMap<String, NameCount>,
    pub suspicious: HashMap<String, (Suspicion, NameCount)>,
    pub base_domains: HashMap<String, (u64, u64)>,
    pub txt_queries: u64,
    pub malformed: u64,
    seen_names: u64,
    /// Slow-answer threshold (ms); 500 when unset.
    pub slow_ms: Option<f64>,
    /// DNS-over-TCP directions being reassembled (at most [`MAX_TCP_STREAMS`]).
    streams: FxMap<(Endpoint, Endpoint), DnsStream>,
    /// Directions reassembled in total.
    pub tcp_streams: u64,
    /// Directions not reassembled because [`MAX_TCP_STREAMS`] were open (their segments are
    /// parsed only when one carries a whole message).
    pub tcp_streams_over_cap: u64,
    /// Holes skipped in reassembled streams (a segment never captured or cut short).
    pub tcp_stream_gaps: u64,
    /// Segments overlapping earlier data with different bytes.
    pub tcp_stream_conflicts: u64,
    /// Segments outside any possible window.
    pub tcp_stream_out_of_window: u64,
    /// Evidence of conflicts and out-of-window segments, per (kind, direction), capped.
    pub stream_issues: BTreeMap<(&'static str, Endpoint, Endpoint), NameCount>,
}

/// DNS-over-TCP directions reassembled at once; beyond it, segment-at-a-time parsing.
pub const MAX_TCP_STREAMS: usize = 512;

#[derive(Debug, Default)]
struct DnsStream {
    stream: Stream,
    /// In-order bytes not yet consumed (at most one partial message).
    buf: Vec<u8>,
}

impl DnsState {
    pub fn feed_udp(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, u: &UdpDg<'_>) {
        let src = Endpoint {
            ip: ip.src,
            port: u.sport,
        };
        let dst = Endpoint {
            ip: ip.dst,
            port: u.dport,
        };
        self.feed_msg(p, src, dst, u.payload);
    }

    /// DNS over TCP: each direction is reassembled in order ([`Stream`]) and the 2-byte
    /// length-prefixed messages are parsed as they complete, at the frame that completed them.
    pub fn feed_tcp(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, seg: &TcpSeg<'_>) {
        let src = Endpoint {
            ip: ip.src,
            port: seg.sport,
        };
        let dst = Endpoint {
            ip: ip.dst,
            port: seg.dport,
        };
        let key = (src, dst);
        if !self.streams.contains_key(&key) {
            if seg.seg_len == 0 && seg.flags & tcpflag::SYN == 0 {
                // A pure ACK (or the last ACK after a FIN): nothing to reassemble.
                return;
            }
            if self.streams.len() >= MAX_TCP_STREAMS {
                self.tcp_streams_over_cap += 1;
                self.feed_tcp_segment(p, src, dst, seg);
                return;
            }
            self.tcp_streams += 1;
            self.streams.insert(
                key,
                DnsStream {
                    stream: Stream::new(StreamLimits::default()),
                    buf: Vec::new(),
                },
            );
        }
        let Some(st) = self.streams.get_mut(&key) else {
            return;
        };
        let push = st
            .stream
            .push(seg.seq, seg.flags, seg.payload, seg.seg_len, &mut st.buf);
        let mut buf = std::mem::take(&mut st.buf);
        if push.gap {
            self.tcp_stream_gaps += 1;
        }
        for (hit, kind) in [
            (push.conflict, "overlap_conflict"),
            (push.out_of_window, "out_of_window"),
        ] {
            if !hit {
                continue;
            }
            if kind == "overlap_conflict" {
                self.tcp_stream_conflicts += 1;
            } else {
                self.tcp_stream_out_of_window += 1;
            }
            let k = (kind, src, dst);
            if self.stream_issues.len() < MAX_NAMES || self.stream_issues.contains_key(&k) {
                let e = self.stream_issues.entry(k).or_default();
                e.count += 1;
                sample(&mut e.frames, p.frame);
            }
        }
        let mut used = 0usize;
        while let Some(h) = buf.get(used..used + 2) {
            let len = usize::from(u16::from_be_bytes([h[0], h[1]]));
            let Some(msg) = buf.get(used + 2..used + 2 + len) else {
                break;
            };
            if len < 12 {
                self.malformed += 1;
            } else {
                self.tcp_messages += 1;
                self.feed_msg(p, src, dst, msg);
            }
            used += 2 + len;
        }
        buf.drain(..used);
        let closing = seg.flags & (tcpflag::FIN | tcpflag::RST) != 0;
        if closing {
            self.streams.remove(&key);
            if seg.flags & tcpflag::RST != 0 {
                self.streams.remove(&(dst, src));
            }
        } else if let Some(st) = self.streams.get_mut(&key) {
            st.buf = buf;
        }
    }

    /// Fallback without reassembly: a segment that starts with a complete message.
    fn feed_tcp_segment(&mut self, p: &Packet<'_>, src: Endpoint, dst: Endpoint, seg: &TcpSeg<'_>) {
        let b = seg.payload;
        if b.len() < 14 {
            return;
        }
        let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
        if len < 12 || len + 2 > b.len() {
            return;
        }
        self.tcp_messages += 1;
        self.feed_msg(p, src, dst, &b[2..2 + len]);
    }

    fn feed_msg(&mut self, p: &Packet<'_>, src: Endpoint, dst: Endpoint, b: &[u8]) {
        let Some(m) = parse_dns(b) else {
            self.malformed += 1;
            return;
        };
        if m.opcode != 0 {
            return;
        }
        if !m.response {
            self.queries += 1;
            *self.servers.entry(dst.ip).or_default() += 1;
            if let Some(t) = m.qtype {
                *self.qtypes.entry(qtype_name(t)).or_default() += 1;
                if t == 16 {
                    self.txt_queries += 1;
                }
            }
            if let Some(name) = &m.qname {
                self.note_name(name, p.frame);
            }
            let key = QKey {
                client: src,
                server: dst,
                id: m.id,
            };
            if self.pending.contains_key(&key) {
                self.retransmitted_queries += 1;
            } else if self.pending.len() < 1_000_000 {
                self.pending.insert(
                    key,
                    Pending {
                        ts: p.ts_ns,
                        frame: p.frame,
                        qname: m.qname,
                        qtype: m.qtype,
                    },
                );
            }
            return;
        }
        self.responses += 1;
        *self.rcodes.entry(rcode_name(m.rcode)).or_default() += 1;
        if m.truncated {
            self.truncated += 1;
            sample(&mut self.truncated_frames, p.frame);
        }
        let key = QKey {
            client: dst,
            server: src,
            id: m.id,
        };
        let matched = match self.pending.get(&key) {
            Some(q) => match (&q.qname, &m.qname) {
                (Some(a), Some(b)) => a == b && (q.qtype == m.qtype || m.qtype.is_none()),
                _ => true,
            },
            None => false,
        };
        if !matched {
            self.unmatched_responses += 1;
            return;
        }
        let Some(q) = self.pending.remove(&key) else {
            return;
        };
        let lat_ns = (p.ts_ns - q.ts).max(0);
        let lat_ms = lat_ns as f64 / 1e6;
        self.latency.add(lat_ns as f64 / 1000.0);
        let name = q.qname.clone().unwrap_or_else(|| "?".into());
        if lat_ms >= self.slow_ms.unwrap_or(500.0) {
            self.slow_count += 1;
            if self.slow.len() < 1000 {
                self.slow.push(QueryRecord {
                    client: dst,
                    server: src,
                    name: name.clone(),
                    qtype: q.qtype.map(qtype_name).unwrap_or_default(),
                    frame: q.frame,
                    latency_ms: Some(lat_ms),
                });
            }
        }
        let table = match m.rcode {
            3 => Some(&mut self.nxdomain),
            2 => Some(&mut self.servfail),
            _ => None,
        };
        if let Some(t) = table {
            if t.len() < MAX_NAMES || t.contains_key(&name) {
                let e = t.entry(name).or_default();
                e.count += 1;
                sample(&mut e.frames, p.frame);
            }
        }
    }

    fn note_name(&mut self, name: &str, frame: u64) {
        self.seen_names += 1;
        let base = base_domain(name);
        if self.base_domains.len() < MAX_NAMES || self.base_domains.contains_key(&base) {
            let e = self.base_domains.entry(base).or_default();
            e.0 += 1;
            e.1 += name.len() as u64;
        }
        if let Some(s) = self.suspicious.get_mut(name) {
            s.1.count += 1;
            sample(&mut s.1.frames, frame);
            return;
        }
        if self.suspicious.len() >= MAX_NAMES {
            return;
        }
        if let Some(s) = classify_name(name) {
            let nc = NameCount {
                count: 1,
                frames: vec![frame],
            };
            self.suspicious.insert(name.to_string(), (s, nc));
        }
    }

    pub fn finish(mut self, opts: &AnalysisOptions) -> DnsResult {
        self.streams = FxMap::default();
        let mut unanswered: Vec<QueryRecord> = self
            .pending
            .drain()
            .map(|(k, q)| QueryRecord {
                client: k.client,
                server: k.server,
                name: q.qname.unwrap_or_else(|| "?".into()),
                qtype: q.qtype.map(qtype_name).unwrap_or_default(),
                frame: q.frame,
                latency_ms: None,
            })
            .collect();
        unanswered.sort_by_key(|q| q.frame);
        let slow_ms = opts.dns_slow_ms;
        self.slow.retain(|q| q.latency_ms.unwrap_or(0.0) >= slow_ms);
        self.slow.sort_by(|a, b| {
            b.latency_ms
                .unwrap_or(0.0)
                .total_cmp(&a.latency_ms.unwrap_or(0.0))
                .then(a.frame.cmp(&b.frame))
        });
        DnsResult {
            state: self,
            unanswered,
        }
    }
}

#[derive(Debug, Default)]
pub struct DnsResult {
    pub state: DnsState,
    /// Queries without a matching response, in frame order.
    pub unanswered: Vec<QueryRecord>,
}

/// Sort a name table by count (desc) then name.
pub fn ranked(t: &HashMap<String, NameCount>) -> Vec<(&String, &NameCount)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_and_classification() {
        assert!(entropy("aaaa") < 0.01);
        assert!(classify_name("www.example.com").is_none());
        let s = classify_name("xk2j9qpl7vbz4m.example.com").expect("dga");
        assert_eq!(s.kind, "dga_like");
        let long = format!("{}.t.example.com", "a1b2c3d4e5".repeat(5));
        assert_eq!(classify_name(&long).expect("tunnel").kind, "tunnel_like");
        assert_eq!(base_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(base_domain("a.b.example.com"), "example.com");
    }

    #[test]
    fn compression_loop_is_rejected() {
        // Header + a name that points to itself.
        let mut b = vec![0u8; 12];
        b[5] = 1;
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let m = parse_dns(&b).expect("header parses");
        assert_eq!(m.qname, None);
    }
}
