//! TCP per-connection analysis. Sequence analysis follows Wireshark's `tcp.analysis`
//! definitions (see docs/pcap-forensics.md) so counts can be checked against tshark.

use std::collections::VecDeque;

use super::{sample, Endpoint, FlowKey, FxMap};
use crate::dissect::{tcpflag::*, Embedded, IcmpMsg, IpPkt, TcpSeg};
use crate::reader::Packet;

#[inline]
fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline]
fn gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}
#[inline]
fn ge(a: u32, b: u32) -> bool {
    !lt(a, b)
}
#[inline]
fn le(a: u32, b: u32) -> bool {
    !gt(a, b)
}

/// Wireshark's default out-of-order threshold when no initial RTT is known (3 ms).
const OOO_DEFAULT_NS: i64 = 3_000_000;
/// Fast retransmission: within 20 ms of the last duplicate ACK (Wireshark).
const FAST_RETRANS_NS: i64 = 20_000_000;
const RTT_QUEUE: usize = 16;

/// Per-connection RTT summary (constant, small: per-connection histograms would cost
/// kilobytes per flow).
#[derive(Debug, Clone, Copy, Default)]
pub struct RttStats {
    pub count: u32,
    pub sum_us: f64,
    pub min_us: f64,
    pub max_us: f64,
}

impl RttStats {
    fn add(&mut self, us: f64) {
        if self.count == 0 || us < self.min_us {
            self.min_us = us;
        }
        if us > self.max_us {
            self.max_us = us;
        }
        self.count += 1;
        self.sum_us += us;
    }

    /// Mean RTT in microseconds.
    pub fn mean_us(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_us / f64::from(self.count))
    }
}

#[derive(Debug, Clone, Default)]
pub struct DirState {
    pub packets: u64,
    pub bytes: u64,
    pub payload_bytes: u64,
    pub data_segments: u64,
    nextseq: u32,
    nextseq_valid: bool,
    nextseq_ts: i64,
    lastack: u32,
    lastack_valid: bool,
    lastack_ts: i64,
    window: u32,
    window_valid: bool,
    /// Window scale shift announced in this side's SYN (None = not seen).
    wscale: Option<u8>,
    dupacks: u32,
    unacked: VecDeque<(u32, i64)>,
    pub isn: Option<u32>,
    pub fin: bool,
    pub rst: u32,
}

/// How the connection attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    SynAckWithoutAck,
    RefusedRst,
    RefusedIcmp,
    SynUnanswered,
    /// The capture started after the handshake.
    NoHandshakeSeen,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::SynAckWithoutAck => "syn_ack_without_ack",
            Outcome::RefusedRst => "refused_rst",
            Outcome::RefusedIcmp => "refused_icmp",
            Outcome::SynUnanswered => "syn_unanswered",
            Outcome::NoHandshakeSeen => "no_handshake_seen",
        }
    }
}

/// Per-connection counters (index 0: client to server, 1: server to client).
#[derive(Debug, Clone)]
pub struct Conn {
    pub client: Endpoint,
    pub server: Endpoint,
    pub first_ts: i64,
    pub last_ts: i64,
    pub first_frame: u64,
    pub dir: [DirState; 2],
    pub syn_ts: Option<i64>,
    pub syn_packets: u32,
    pub syn_frames: Vec<u64>,
    pub synack_ts: Option<i64>,
    pub synack_packets: u32,
    pub handshake_done_ts: Option<i64>,
    pub refused_rst_frame: Option<u64>,
    /// (icmp type, code, v6, frame) of an ICMP error naming this connection.
    pub icmp_error: Option<(u8, u8, bool, u64)>,
    pub retransmissions: u64,
    pub fast_retransmissions: u64,
    pub spurious_retransmissions: u64,
    pub duplicate_acks: u64,
    pub out_of_order: u64,
    pub lost_segments: u64,
    pub zero_window: u64,
    pub window_full: u64,
    pub keepalives: u64,
    pub rst_frames: Vec<u64>,
    pub retrans_frames: Vec<u64>,
    pub dupack_frames: Vec<u64>,
    pub zero_window_frames: Vec<u64>,
    pub ooo_frames: Vec<u64>,
    /// Largest retransmitted segment (bytes) and sample frames of large retransmissions.
    pub max_retrans_len: u32,
    pub large_retrans_frames: Vec<u64>,
    pub max_seg_len: u32,
    pub rtt: RttStats,
    pub mss: [Option<u16>; 2],
}

impl Conn {
    fn new(client: Endpoint, server: Endpoint, ts: i64, frame: u64) -> Self {
        Conn {
            client,
            server,
            first_ts: ts,
            last_ts: ts,
            first_frame: frame,
            dir: [DirState::default(), DirState::default()],
            syn_ts: None,
            syn_packets: 0,
            syn_frames: Vec::new(),
            synack_ts: None,
            synack_packets: 0,
            handshake_done_ts: None,
            refused_rst_frame: None,
            icmp_error: None,
            retransmissions: 0,
            fast_retransmissions: 0,
            spurious_retransmissions: 0,
            duplicate_acks: 0,
            out_of_order: 0,
            lost_segments: 0,
            zero_window: 0,
            window_full: 0,
            keepalives: 0,
            rst_frames: Vec::new(),
            retrans_frames: Vec::new(),
            dupack_frames: Vec::new(),
            zero_window_frames: Vec::new(),
            ooo_frames: Vec::new(),
            max_retrans_len: 0,
            large_retrans_frames: Vec::new(),
            max_seg_len: 0,
            rtt: RttStats::default(),
            mss: [None, None],
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.syn_packets == 0 {
            if self.synack_packets > 0 && self.handshake_done_ts.is_some() {
                return Outcome::Completed;
            }
            return Outcome::NoHandshakeSeen;
        }
        if self.handshake_done_ts.is_some() {
            Outcome::Completed
        } else if self.synack_packets > 0 {
            Outcome::SynAckWithoutAck
        } else if self.refused_rst_frame.is_some() {
            Outcome::RefusedRst
        } else if self.icmp_error.is_some() {
            Outcome::RefusedIcmp
        } else {
            Outcome::SynUnanswered
        }
    }

    /// Handshake RTT (SYN to the client's ACK of the SYN-ACK), in ms.
    pub fn handshake_rtt_ms(&self) -> Option<f64> {
        match (self.syn_ts, self.handshake_done_ts) {
            (Some(a), Some(b)) if b >= a => Some((b - a) as f64 / 1e6),
            _ => None,
        }
    }

    pub fn duration_s(&self) -> f64 {
        (self.last_ts - self.first_ts).max(0) as f64 / 1e9
    }

    /// Payload throughput each way (bits/s) over the connection's lifetime.
    pub fn throughput_bps(&self) -> [f64; 2] {
        let d = self.duration_s();
        if d <= 0.0 {
            return [0.0, 0.0];
        }
        [
            self.dir[0].payload_bytes as f64 * 8.0 / d,
            self.dir[1].payload_bytes as f64 * 8.0 / d,
        ]
    }

    pub fn flow_label(&self) -> String {
        format!("tcp {} -> {}", self.client, self.server)
    }

    pub fn is_anomalous(&self) -> bool {
        self.retransmissions
            + self.duplicate_acks
            + self.out_of_order
            + self.zero_window
            + u64::from(self.dir[0].rst + self.dir[1].rst)
            > 0
            || !matches!(
                self.outcome(),
                Outcome::Completed | Outcome::NoHandshakeSeen
            )
    }

    fn analyze(&mut self, d: usize, ts: i64, frame: u64, seg: &TcpSeg<'_>, wire_len: u64) {
        self.last_ts = self.last_ts.max(ts);
        let flags = seg.flags;
        let syn = flags & SYN != 0;
        let fin = flags & FIN != 0;
        let rst = flags & RST != 0;
        let ackf = flags & ACK != 0;
        let seglen = seg.seg_len;
        let seq = seg.seq;
        let r = 1 - d;
        {
            let f = &mut self.dir[d];
            f.packets += 1;
            f.bytes += wire_len;
            f.payload_bytes += u64::from(seglen);
            if seglen > 0 {
                f.data_segments += 1;
            }
        }
        self.max_seg_len = self.max_seg_len.max(seglen);

        // Handshake bookkeeping.
        if syn && !ackf {
            self.syn_packets += 1;
            self.syn_ts.get_or_insert(ts);
            sample(&mut self.syn_frames, frame);
            self.dir[d].isn.get_or_insert(seq);
            self.dir[d].wscale = seg.wscale;
            self.mss[d] = seg.mss;
        } else if syn && ackf {
            self.synack_packets += 1;
            self.synack_ts.get_or_insert(ts);
            self.dir[d].isn.get_or_insert(seq);
            self.dir[d].wscale = seg.wscale;
            self.mss[d] = seg.mss;
        } else if ackf
            && d == 0
            && self.synack_packets > 0
            && self.handshake_done_ts.is_none()
            && !rst
        {
            self.handshake_done_ts = Some(ts);
        }
        if rst {
            self.dir[d].rst += 1;
            sample(&mut self.rst_frames, frame);
            if d == 1 && self.synack_packets == 0 && self.syn_packets > 0 {
                self.refused_rst_frame.get_or_insert(frame);
            }
        }
        if fin {
            self.dir[d].fin = true;
        }
        if rst || (self.dir[0].fin && self.dir[1].fin) {
            // Closed: release the RTT queues.
            for dir in &mut self.dir {
                dir.unacked = VecDeque::new();
            }
        }

        // Window in bytes (scaling applies only when both SYNs announced it; never on SYNs).
        let scale = match (self.dir[d].wscale, self.dir[r].wscale) {
            (Some(s), Some(_)) if !syn => u32::from(s),
            _ => 0,
        };
        let win = u32::from(seg.window) << scale;
        let ctl = flags & (SYN | FIN | RST) != 0;

        // Zero window.
        if seg.window == 0 && !ctl {
            self.zero_window += 1;
            sample(&mut self.zero_window_frames, frame);
        }
        let f = &self.dir[d];
        // Previous segment not captured.
        if f.nextseq_valid && gt(seq, f.nextseq) && !rst {
            self.lost_segments += 1;
        }
        // Keep-alive.
        let keepalive = f.nextseq_valid && seglen <= 1 && !ctl && f.nextseq.wrapping_sub(1) == seq;
        if keepalive {
            self.keepalives += 1;
        }
        // Window full.
        let rv = &self.dir[r];
        if seglen > 0
            && !ctl
            && rv.window_valid
            && rv.lastack_valid
            && rv.window > 0
            && seq.wrapping_add(seglen) == rv.lastack.wrapping_add(rv.window)
        {
            self.window_full += 1;
        }
        // Duplicate ACK.
        let f = &self.dir[d];
        let is_dupack = seglen == 0
            && ackf
            && !ctl
            && win != 0
            && f.window_valid
            && win == f.window
            && f.nextseq_valid
            && seq == f.nextseq
            && f.lastack_valid
            && seg.ack == f.lastack;
        if is_dupack {
            self.duplicate_acks += 1;
            sample(&mut self.dupack_frames, frame);
            self.dir[d].dupacks += 1;
        }
        // Retransmission family.
        let f = &self.dir[d];
        let mut retransmitted = false;
        if (seglen > 0 || syn || fin) && f.nextseq_valid && gt(f.nextseq, seq) && !keepalive {
            let rv = &self.dir[r];
            let t_since_next = ts - f.nextseq_ts;
            let ooo_thres = self
                .handshake_rtt_ms()
                .map(|ms| (ms * 1e6) as i64)
                .filter(|&n| n > 0)
                .unwrap_or(OOO_DEFAULT_NS);
            let end = seq.wrapping_add(seglen);
            if rv.dupacks >= 2
                && rv.lastack_valid
                && rv.lastack == seq
                && ts - rv.lastack_ts < FAST_RETRANS_NS
            {
                self.fast_retransmissions += 1;
                self.retransmissions += 1;
                retransmitted = true;
            } else if t_since_next < ooo_thres && f.nextseq != end {
                self.out_of_order += 1;
                sample(&mut self.ooo_frames, frame);
            } else if seglen > 0 && rv.lastack_valid && ge(rv.lastack, end) {
                self.spurious_retransmissions += 1;
                self.retransmissions += 1;
                retransmitted = true;
            } else {
                self.retransmissions += 1;
                retransmitted = true;
            }
        }
        if retransmitted {
            sample(&mut self.retrans_frames, frame);
            if seglen >= self.max_retrans_len {
                self.max_retrans_len = seglen;
            }
            if seglen >= 1200 {
                sample(&mut self.large_retrans_frames, frame);
            }
            // Karn: forget RTT samples of segments overlapping the retransmission.
            let f = &mut self.dir[d];
            f.unacked.retain(|&(e, _)| le(e, seq));
        }

        // Update next expected sequence number.
        let advance = seglen + u32::from(syn) + u32::from(fin);
        let f = &mut self.dir[d];
        let end = seq.wrapping_add(advance);
        if !rst && (advance > 0 || !f.nextseq_valid) && (!f.nextseq_valid || gt(end, f.nextseq)) {
            f.nextseq = end;
            f.nextseq_valid = true;
            f.nextseq_ts = ts;
            if seglen > 0 && !retransmitted && f.unacked.len() < RTT_QUEUE && !f.fin && f.rst == 0 {
                f.unacked.push_back((end, ts));
            }
        }
        if !rst {
            f.window = win;
            f.window_valid = true;
        }
        // ACK processing.
        if ackf {
            if !f.lastack_valid || seg.ack != f.lastack {
                f.lastack = seg.ack;
                f.lastack_valid = true;
                f.dupacks = 0;
            }
            f.lastack_ts = ts;
            // RTT sample: the newest segment of the other side this ACK covers.
            let ack = seg.ack;
            let other = &mut self.dir[r];
            let mut sample_ts = None;
            while let Some(&(e, t)) = other.unacked.front() {
                if le(e, ack) {
                    sample_ts = Some(t);
                    other.unacked.pop_front();
                } else {
                    break;
                }
            }
            if let Some(t) = sample_ts {
                if ts >= t {
                    self.rtt.add((ts - t) as f64 / 1000.0);
                }
            }
        }
    }
}

/// Per-flow TCP state while reading.
#[derive(Debug, Default)]
pub struct TcpState {
    index: FxMap<FlowKey, usize>,
    conns: Vec<Conn>,
    pub packets: u64,
    pub syn_packets: u64,
    pub rst_packets: u64,
}

/// What an ICMP error means for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpErrorKind {
    Unreachable,
    TimeExceeded,
    PacketTooBig,
    Other,
}

impl TcpState {
    pub fn feed(&mut self, p: &Packet<'_>, ip: &IpPkt<'_>, seg: &TcpSeg<'_>) {
        self.packets += 1;
        let src = Endpoint {
            ip: ip.src,
            port: seg.sport,
        };
        let dst = Endpoint {
            ip: ip.dst,
            port: seg.dport,
        };
        let syn_only = seg.flags & (SYN | ACK) == SYN;
        if syn_only {
            self.syn_packets += 1;
        }
        if seg.flags & RST != 0 {
            self.rst_packets += 1;
        }
        let (key, _) = FlowKey::new(src, dst);
        let idx = match self.index.get(&key) {
            Some(&i) => {
                // A new SYN with a different ISN after the old connection was set up or
                // closed starts a new connection (port reuse), as Wireshark does.
                let c = &self.conns[i];
                let from_client = c.client == src;
                let old_isn = if from_client {
                    c.dir[0].isn
                } else {
                    c.dir[1].isn
                };
                let reused = syn_only
                    && old_isn.is_some_and(|isn| isn != seg.seq)
                    && (c.dir[0].fin
                        || c.dir[1].fin
                        || c.dir[0].rst + c.dir[1].rst > 0
                        || c.handshake_done_ts.is_some()
                        || c.synack_packets > 0
                        || !from_client);
                if reused {
                    let n = self.conns.len();
                    self.conns.push(Conn::new(src, dst, p.ts_ns, p.frame));
                    self.index.insert(key, n);
                    n
                } else {
                    i
                }
            }
            None => {
                // Client: the SYN sender; the SYN-ACK receiver; otherwise the higher port.
                let (client, server) = if seg.flags & SYN != 0 {
                    if seg.flags & ACK != 0 {
                        (dst, src)
                    } else {
                        (src, dst)
                    }
                } else if seg.sport >= seg.dport {
                    (src, dst)
                } else {
                    (dst, src)
                };
                let n = self.conns.len();
                self.conns.push(Conn::new(client, server, p.ts_ns, p.frame));
                self.index.insert(key, n);
                n
            }
        };
        let c = &mut self.conns[idx];
        let d = usize::from(c.client != src);
        c.analyze(d, p.ts_ns, p.frame, seg, u64::from(p.orig_len));
    }

    /// An ICMP error whose embedded packet is TCP: mark the connection.
    pub fn icmp_error(
        &mut self,
        p: &Packet<'_>,
        _ip: &IpPkt<'_>,
        m: &IcmpMsg<'_>,
        e: &Embedded,
        kind: IcmpErrorKind,
    ) {
        if e.proto != 6 || kind != IcmpErrorKind::Unreachable {
            return;
        }
        let (Some(sp), Some(dp)) = (e.sport, e.dport) else {
            return;
        };
        let src = Endpoint {
            ip: e.src,
            port: sp,
        };
        let dst = Endpoint {
            ip: e.dst,
            port: dp,
        };
        let (key, _) = FlowKey::new(src, dst);
        if let Some(&i) = self.index.get(&key) {
            let c = &mut self.conns[i];
            if c.icmp_error.is_none() {
                c.icmp_error = Some((m.icmp_type, m.code, m.v6, p.frame));
            }
        }
    }

    pub fn finish(self) -> TcpResult {
        TcpResult {
            conns: self.conns,
            packets: self.packets,
            syn_packets: self.syn_packets,
            rst_packets: self.rst_packets,
        }
    }
}

/// TCP results: every connection plus packet totals.
#[derive(Debug, Default)]
pub struct TcpResult {
    pub conns: Vec<Conn>,
    pub packets: u64,
    pub syn_packets: u64,
    pub rst_packets: u64,
}

impl TcpResult {
    pub fn sum(&self, f: impl Fn(&Conn) -> u64) -> u64 {
        self.conns.iter().map(f).sum()
    }

    pub fn count_outcome(&self, o: Outcome) -> usize {
        self.conns.iter().filter(|c| c.outcome() == o).count()
    }
}
