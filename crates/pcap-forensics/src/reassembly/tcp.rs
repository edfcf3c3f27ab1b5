//! In-order reassembly of one TCP direction with bounded buffers.
//!
//! Sequence numbers are mapped to 64-bit stream offsets (wrap-safe: every segment is placed
//! relative to the next expected byte). Data in order is appended to the consumer's buffer;
//! data ahead of it waits in an out-of-order buffer capped at [`StreamLimits::max_pending`]
//! bytes. When the cap is exceeded (a segment was never captured), the stream skips the hole,
//! clears the consumer's partial data and reports a gap. A segment cut by the snap length is
//! a gap too. The last [`StreamLimits::history`] delivered bytes are kept so that
//! retransmitted data can be compared: different bytes for the same sequence numbers are an
//! overlap conflict. Data no TCP window could accept (more than 2^30 bytes away from the
//! next expected byte) is out of window and ignored.

use std::collections::{BTreeMap, VecDeque};

use crate::dissect::tcpflag;

/// The largest TCP window (65 535 << 14, rounded up to 2^30).
pub const MAX_WINDOW: i64 = 1 << 30;

/// Buffer bounds of one direction.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Out-of-order bytes held before a hole is skipped.
    pub max_pending: usize,
    /// Delivered bytes remembered to compare retransmissions.
    pub history: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_pending: 64 << 10,
            history: 8 << 10,
        }
    }
}

/// What one segment did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Push {
    /// Bytes appended to the consumer's buffer.
    pub delivered: usize,
    /// A hole was skipped (the consumer's partial data was cleared).
    pub gap: bool,
    /// The segment overlapped earlier data with different bytes.
    pub conflict: bool,
    /// The segment lies outside any possible window and was ignored.
    pub out_of_window: bool,
    /// A SYN with a new initial sequence number restarted the stream.
    pub restarted: bool,
}

/// One direction of a TCP connection.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    /// Sequence number of stream offset 0.
    base: u32,
    /// Offset of the next expected byte (`None` before the first segment).
    next: Option<u64>,
    isn: Option<u32>,
    pending: BTreeMap<u64, Vec<u8>>,
    pending_bytes: usize,
    /// The last delivered bytes, ending at `next`.
    history: VecDeque<u8>,
    limits: StreamLimits,
}

impl Stream {
    pub fn new(limits: StreamLimits) -> Self {
        Stream {
            limits,
            ..Default::default()
        }
    }

    /// Bytes held (out-of-order buffer and history).
    pub fn buffered_bytes(&self) -> usize {
        self.pending_bytes + self.history.len()
    }

    /// Offset of the next expected byte.
    pub fn next_offset(&self) -> Option<u64> {
        self.next
    }

    fn restart(&mut self, data_seq: u32) {
        self.base = data_seq;
        self.next = Some(0);
        self.pending.clear();
        self.pending_bytes = 0;
        self.history.clear();
    }

    /// True when the bytes at `[off, off + bytes.len())` differ from remembered delivered data.
    fn differs_from_history(&self, off: u64, bytes: &[u8]) -> bool {
        let Some(next) = self.next else {
            return false;
        };
        let hist_start = next - self.history.len() as u64;
        let s = off.max(hist_start);
        let e = (off + bytes.len() as u64).min(next);
        if s >= e {
            return false;
        }
        (s..e).any(|o| {
            let h = self.history.get((o - hist_start) as usize);
            let b = bytes.get((o - off) as usize);
            h != b
        })
    }

    fn deliver(&mut self, bytes: &[u8], out: &mut Vec<u8>, push: &mut Push) {
        out.extend_from_slice(bytes);
        push.delivered += bytes.len();
        if let Some(n) = self.next.as_mut() {
            *n += bytes.len() as u64;
        }
        let keep = self.limits.history;
        if bytes.len() >= keep {
            self.history.clear();
            self.history.extend(&bytes[bytes.len() - keep..]);
        } else {
            let excess = (self.history.len() + bytes.len()).saturating_sub(keep);
            self.history.drain(..excess);
            self.history.extend(bytes);
        }
    }

    /// Delivers pending segments that are now in order.
    fn drain(&mut self, out: &mut Vec<u8>, push: &mut Push) {
        while let Some(next) = self.next {
            let Some((&off, _)) = self.pending.iter().next() else {
                break;
            };
            if off > next {
                break;
            }
            let Some(seg) = self.pending.remove(&off) else {
                break;
            };
            self.pending_bytes = self.pending_bytes.saturating_sub(seg.len());
            if self.differs_from_history(off, &seg) {
                push.conflict = true;
            }
            let end = off + seg.len() as u64;
            if end > next {
                let skip = (next - off) as usize;
                self.deliver(&seg[skip..], out, push);
            }
        }
    }

    /// Skips the hole before the first pending segment.
    fn skip_hole(&mut self, out: &mut Vec<u8>, push: &mut Push) {
        if let Some((&off, _)) = self.pending.iter().next() {
            out.clear();
            self.history.clear();
            self.next = Some(off);
            push.gap = true;
            self.drain(out, push);
        }
    }

    /// Feeds one segment of this direction: `seq`, TCP `flags`, the captured `payload` and
    /// the segment length on the wire. In-order bytes are appended to `out`; on a gap `out`
    /// is cleared first (its partial data can no longer be completed).
    pub fn push(
        &mut self,
        seq: u32,
        flags: u8,
        payload: &[u8],
        seg_len: u32,
        out: &mut Vec<u8>,
    ) -> Push {
        let mut push = Push::default();
        let syn = flags & tcpflag::SYN != 0;
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        if syn {
            match self.isn {
                Some(isn) if isn == seq => {}
                Some(_) => {
                    // Port reuse: a new connection in the same direction.
                    out.clear();
                    push.restarted = true;
                    self.restart(data_seq);
                }
                None => {
                    if self.next.is_none() || self.next == Some(0) {
                        self.restart(data_seq);
                    }
                }
            }
            self.isn = Some(seq);
        }
        if seg_len == 0 {
            return push;
        }
        let next = match self.next {
            Some(n) => n,
            None => {
                self.restart(data_seq);
                0
            }
        };
        let expected_seq = self.base.wrapping_add(next as u32);
        let delta = i64::from(data_seq.wrapping_sub(expected_seq) as i32);
        if delta.abs() >= MAX_WINDOW {
            push.out_of_window = true;
            return push;
        }
        let abs = next as i64 + delta;
        if abs < 0 {
            // Before the start of the stream: nothing to compare it with.
            push.out_of_window = true;
            return push;
        }
        let abs = abs as u64;
        let end = abs + u64::from(seg_len);
        if (payload.len() as u64) < u64::from(seg_len) {
            // Cut by the snap length: the bytes are unknown. Skip past them if they are the
            // next expected ones.
            if abs <= next && end > next {
                out.clear();
                self.history.clear();
                self.next = Some(end);
                push.gap = true;
                self.drain(out, &mut push);
            }
            return push;
        }
        let bytes = &payload[..seg_len as usize];
        if seg_len == 1 && end == next {
            // A keep-alive probe (one byte at next expected - 1, often garbage): ignored.
            return push;
        }
        if abs < next && self.differs_from_history(abs, bytes) {
            push.conflict = true;
        }
        if end <= next {
            return push;
        }
        if abs <= next {
            let skip = (next - abs) as usize;
            self.deliver(&bytes[skip..], out, &mut push);
            self.drain(out, &mut push);
            return push;
        }
        // Ahead of the next expected byte: hold it.
        if let Some(old) = self.pending.get(&abs) {
            let n = old.len().min(bytes.len());
            if old[..n] != bytes[..n] {
                push.conflict = true;
            }
            if old.len() >= bytes.len() {
                return push;
            }
            self.pending_bytes = self.pending_bytes.saturating_sub(old.len());
        }
        self.pending_bytes += bytes.len();
        self.pending.insert(abs, bytes.to_vec());
        while self.pending_bytes > self.limits.max_pending {
            self.skip_hole(out, &mut push);
            if self.pending.is_empty() {
                break;
            }
            // Still over the cap after delivering what followed the hole: skip again.
            if self.pending_bytes <= self.limits.max_pending {
                break;
            }
        }
        push
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> Stream {
        Stream::new(StreamLimits::default())
    }

    #[test]
    fn in_order_out_of_order_and_retransmission() {
        let mut st = s();
        let mut out = Vec::new();
        st.push(1000, tcpflag::SYN, &[], 0, &mut out);
        st.push(1001 + 5, tcpflag::ACK, b"world", 5, &mut out);
        assert!(out.is_empty());
        let p = st.push(1001, tcpflag::ACK, b"hello", 5, &mut out);
        assert_eq!(out, b"helloworld");
        assert_eq!(p.delivered, 10);
        // Identical retransmission: nothing new, no conflict.
        let p = st.push(1001, tcpflag::ACK, b"hello", 5, &mut out);
        assert_eq!(p, Push::default());
        // Same sequence numbers, different bytes: a conflict.
        let p = st.push(1003, tcpflag::ACK, b"XY", 2, &mut out);
        assert!(p.conflict);
        assert_eq!(out, b"helloworld");
        // A keep-alive probe with a garbage byte at next - 1 is not a conflict.
        let p = st.push(1010, tcpflag::ACK, b"\0", 1, &mut out);
        assert_eq!(p, Push::default());
    }

    #[test]
    fn sequence_wrap_and_mid_stream_start() {
        let mut st = s();
        let mut out = Vec::new();
        st.push(u32::MAX - 2, 0, b"abc", 3, &mut out);
        st.push(0, 0, b"def", 3, &mut out);
        assert_eq!(out, b"abcdef");
        let p = st.push(0x4000_0000u32.wrapping_mul(3), 0, b"z", 1, &mut out);
        assert!(p.out_of_window);
    }

    #[test]
    fn a_missing_segment_becomes_a_gap_when_the_buffer_fills() {
        let mut st = Stream::new(StreamLimits {
            max_pending: 10,
            history: 4,
        });
        let mut out = Vec::new();
        st.push(0, 0, b"ab", 2, &mut out);
        // Bytes 2..4 never captured.
        st.push(4, 0, b"efghij", 6, &mut out);
        assert_eq!(out, b"ab");
        let p = st.push(10, 0, b"klmno", 5, &mut out);
        assert!(p.gap);
        assert_eq!(out, b"efghijklmno");
        // Snap-length cut: the stream skips past the unknown bytes.
        let p = st.push(15, 0, b"pq", 4, &mut out);
        assert!(p.gap && out.is_empty());
        st.push(19, 0, b"t", 1, &mut out);
        assert_eq!(out, b"t");
    }
}
