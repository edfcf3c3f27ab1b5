//! IPv4 and IPv6 fragment reassembly with bounded memory.
//!
//! A datagram is keyed by (source, destination, protocol, identification, IP version).
//! Fragments are copied into one buffer per datagram; the received byte ranges are kept
//! sorted and merged. A datagram is complete when the last fragment (MF = 0) fixed its
//! length and the ranges cover `[0, length)`.
//!
//! Limits (see [`DefragLimits`]): datagram payload ≤ 65 535 bytes, fragments per datagram,
//! datagrams in flight per host pair and in total, bytes buffered in total, and a timeout in
//! capture time (30 s for IPv4 as Linux' `ipfrag_time`, 60 s for IPv6 as RFC 8200). When a
//! cap is hit the oldest datagram in flight is evicted (counted). Overlapping fragments
//! with identical bytes are duplicates (counted); with different bytes, or reaching beyond
//! 65 535 bytes, or disagreeing about the datagram's end, the datagram is discarded and an
//! [`FragIssue`] recorded. Hostile input never panics (property tests).

use std::net::IpAddr;

use super::{ISSUE_FRAMES, MAX_ISSUES};
use crate::analysis::FxMap;

/// Largest IP datagram payload (the 16-bit length fields; jumbograms are not reassembled).
pub const MAX_DATAGRAM: u32 = 65_535;

/// Memory and time bounds of the reassembler.
#[derive(Debug, Clone, Copy)]
pub struct DefragLimits {
    /// Fragments accepted per datagram before it is discarded.
    pub max_fragments: u32,
    /// Datagrams in flight per (source, destination) pair.
    pub max_per_pair: usize,
    /// Datagrams in flight in total.
    pub max_datagrams: usize,
    /// Bytes buffered in total (sum of the datagram buffers).
    pub max_bytes: usize,
    /// IPv4 timeout in nanoseconds of capture time.
    pub timeout_v4_ns: i64,
    /// IPv6 timeout in nanoseconds of capture time.
    pub timeout_v6_ns: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_fragments: 256,
            max_per_pair: 64,
            max_datagrams: 4096,
            max_bytes: 32 << 20,
            timeout_v4_ns: 30_000_000_000,
            timeout_v6_ns: 60_000_000_000,
        }
    }
}

/// One fragment as the dissector saw it.
#[derive(Debug, Clone, Copy)]
pub struct Fragment<'a> {
    pub v6: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (IPv4 protocol; IPv6 next header of the Fragment header).
    pub proto: u8,
    pub id: u32,
    /// Fragment offset in bytes.
    pub offset: u32,
    /// More-fragments flag.
    pub more: bool,
    /// Captured fragment data.
    pub data: &'a [u8],
    /// Fragment data length on the wire (from the IP length).
    pub wire_len: u32,
    pub ts_ns: i64,
    pub frame: u64,
    /// Length of the frame on the wire (summed over the datagram's fragments, so that byte
    /// counters of the reassembled datagram count every fragment's frame).
    pub frame_len: u32,
}

/// Why a datagram could not be reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IssueKind {
    /// Overlapping fragments carry different bytes (or disagree about the end).
    Conflict,
    /// Fragments reach beyond 65 535 bytes.
    Oversize,
    /// Not all fragments arrived within the timeout.
    Timeout,
    /// Not all fragments arrived before the capture ended (last fragment ≥ 1 s before it).
    Incomplete,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::Conflict => "overlap_conflict",
            IssueKind::Oversize => "oversize",
            IssueKind::Timeout => "timeout",
            IssueKind::Incomplete => "incomplete_at_end",
        }
    }
}

/// One datagram that could not be reassembled, with evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragIssue {
    pub kind: IssueKind,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub id: u32,
    pub fragments: u32,
    pub frames: Vec<u64>,
}

/// Counters of the reassembler.
#[derive(Debug, Clone, Default)]
pub struct DefragStats {
    /// Fragments fed.
    pub fragments: u64,
    /// Datagrams reassembled and handed to the dissectors.
    pub reassembled: u64,
    /// Fragments whose bytes were all already present (identical overlap).
    pub duplicates: u64,
    /// Datagrams discarded because overlapping fragments differed.
    pub conflicts: u64,
    /// Datagrams discarded because they exceeded 65 535 bytes.
    pub oversize: u64,
    /// Datagrams that timed out.
    pub timeouts: u64,
    /// Datagrams still incomplete when the capture ended.
    pub incomplete_at_end: u64,
    /// Datagrams evicted by a memory cap.
    pub evicted: u64,
    /// Fragments that could not be used (cut by the snap length, not a multiple of 8 bytes
    /// before the last one, or for a discarded datagram).
    pub unusable: u64,
    /// Largest number of bytes buffered at once.
    pub peak_bytes: usize,
    /// Issues kept as evidence (at most [`MAX_ISSUES`] per kind).
    pub issues: Vec<FragIssue>,
}

impl DefragStats {
    /// Issues of one kind kept as evidence.
    pub fn issues_of(&self, kind: IssueKind) -> impl Iterator<Item = &FragIssue> {
        self.issues.iter().filter(move |i| i.kind == kind)
    }

    fn record(&mut self, issue: FragIssue) {
        let kept = self.issues.iter().filter(|i| i.kind == issue.kind).count();
        if kept < MAX_ISSUES {
            self.issues.push(issue);
        }
    }
}

/// A reassembled datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    /// The upper-layer payload (IPv6: starting with the header named by `proto`).
    pub payload: Vec<u8>,
    pub fragments: u32,
    /// Sample frames of the fragments.
    pub frames: Vec<u64>,
    /// Wire length of all the fragments' frames.
    pub wire_bytes: u64,
}

/// What happened to a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; the datagram is still incomplete.
    Pending,
    /// The fragment completed its datagram.
    Complete(Reassembled),
    /// Not used (see [`DefragStats`] for why).
    Dropped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
    v6: bool,
}

#[derive(Debug)]
struct Pending {
    first_ts: i64,
    last_ts: i64,
    data: Vec<u8>,
    /// Received ranges `[start, end)`, sorted, disjoint and not adjacent.
    ranges: Vec<(u32, u32)>,
    /// Datagram payload length, once the last fragment arrived.
    total: Option<u32>,
    fragments: u32,
    frames: Vec<u64>,
    wire_bytes: u64,
    /// Discarded (conflict/oversize): later fragments are ignored until it times out.
    poisoned: bool,
}

impl Pending {
    fn issue(&self, key: &Key, kind: IssueKind) -> FragIssue {
        FragIssue {
            kind,
            src: key.src,
            dst: key.dst,
            proto: key.proto,
            id: key.id,
            fragments: self.fragments,
            frames: self.frames.clone(),
        }
    }

    fn complete(&self) -> bool {
        matches!((self.total, self.ranges.as_slice()), (Some(t), [(0, e)]) if *e == t)
    }

    /// True when `[s, e)` overlaps stored bytes that differ from `bytes`.
    fn conflicts(&self, s: u32, e: u32, bytes: &[u8]) -> bool {
        self.ranges.iter().any(|&(rs, re)| {
            let (a, b) = (rs.max(s), re.min(e));
            a < b
                && self.data.get(a as usize..b as usize)
                    != bytes.get((a - s) as usize..(b - s) as usize)
        })
    }

    fn covered(&self, s: u32, e: u32) -> bool {
        self.ranges.iter().any(|&(rs, re)| rs <= s && e <= re)
    }

    fn insert_range(&mut self, s: u32, e: u32) {
        let mut ns = s;
        let mut ne = e;
        self.ranges.retain(|&(rs, re)| {
            if re < ns || rs > ne {
                true
            } else {
                ns = ns.min(rs);
                ne = ne.max(re);
                false
            }
        });
        let pos = self.ranges.partition_point(|&(rs, _)| rs < ns);
        self.ranges.insert(pos, (ns, ne));
    }
}

/// The reassembler. Feed every fragment with [`Defragmenter::feed`]; call
/// [`Defragmenter::finish`] at the end of the capture.
#[derive(Debug, Default)]
pub struct Defragmenter {
    table: FxMap<Key, Pending>,
    per_pair: FxMap<(IpAddr, IpAddr), usize>,
    bytes: usize,
    last_sweep_ns: Option<i64>,
    limits: DefragLimits,
    pub stats: DefragStats,
}

impl Defragmenter {
    pub fn new(limits: DefragLimits) -> Self {
        Defragmenter {
            limits,
            ..Default::default()
        }
    }

    /// Datagrams in flight.
    pub fn in_flight(&self) -> usize {
        self.table.len()
    }

    /// Bytes buffered now.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn timeout(&self, v6: bool) -> i64 {
        if v6 {
            self.limits.timeout_v6_ns
        } else {
            self.limits.timeout_v4_ns
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Pending> {
        let p = self.table.remove(key)?;
        self.bytes = self.bytes.saturating_sub(p.data.capacity());
        if let Some(c) = self.per_pair.get_mut(&(key.src, key.dst)) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.per_pair.remove(&(key.src, key.dst));
            }
        }
        Some(p)
    }

    /// Evicts the oldest datagram in flight (optionally only of one host pair).
    fn evict_oldest(&mut self, pair: Option<(IpAddr, IpAddr)>) -> bool {
        let oldest = self
            .table
            .iter()
            .filter(|(k, _)| pair.is_none_or(|(s, d)| k.src == s && k.dst == d))
            .min_by_key(|(k, p)| (p.first_ts, k.id))
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                if let Some(p) = self.remove(&k) {
                    if !p.poisoned {
                        self.stats.evicted += 1;
                    }
                }
                true
            }
            None => false,
        }
    }

    fn sweep(&mut self, now: i64) {
        if self
            .last_sweep_ns
            .is_some_and(|l| now.saturating_sub(l) < 1_000_000_000)
        {
            return;
        }
        self.last_sweep_ns = Some(now);
        let expired: Vec<Key> = self
            .table
            .iter()
            .filter(|(k, p)| now.saturating_sub(p.first_ts) > self.timeout(k.v6))
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            if let Some(p) = self.remove(&k) {
                if !p.poisoned {
                    self.stats.timeouts += 1;
                    self.stats.record(p.issue(&k, IssueKind::Timeout));
                }
            }
        }
    }

    fn poison(&mut self, key: &Key, kind: IssueKind) {
        let Some(p) = self.table.get_mut(key) else {
            return;
        };
        let issue = p.issue(key, kind);
        p.poisoned = true;
        let freed = p.data.capacity();
        p.data = Vec::new();
        p.ranges = Vec::new();
        self.bytes = self.bytes.saturating_sub(freed);
        match kind {
            IssueKind::Conflict => self.stats.conflicts += 1,
            IssueKind::Oversize => self.stats.oversize += 1,
            _ => {}
        }
        self.stats.record(issue);
    }

    /// Feeds one fragment.
    pub fn feed(&mut self, f: &Fragment<'_>) -> Outcome {
        self.stats.fragments += 1;
        self.sweep(f.ts_ns);
        let key = Key {
            src: f.src,
            dst: f.dst,
            proto: f.proto,
            id: f.id,
            v6: f.v6,
        };
        // A datagram older than its timeout is gone even if no sweep ran yet.
        if let Some(p) = self.table.get(&key) {
            if f.ts_ns.saturating_sub(p.first_ts) > self.timeout(f.v6) {
                let p = self.remove(&key);
                if let Some(p) = p.filter(|p| !p.poisoned) {
                    self.stats.timeouts += 1;
                    self.stats.record(p.issue(&key, IssueKind::Timeout));
                }
            }
        }
        if !self.table.contains_key(&key) {
            let pair = (f.src, f.dst);
            if self.per_pair.get(&pair).copied().unwrap_or(0) >= self.limits.max_per_pair {
                self.evict_oldest(Some(pair));
            }
            while self.table.len() >= self.limits.max_datagrams.max(1) {
                if !self.evict_oldest(None) {
                    break;
                }
            }
            self.table.insert(
                key,
                Pending {
                    first_ts: f.ts_ns,
                    last_ts: f.ts_ns,
                    data: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                    fragments: 0,
                    frames: Vec::new(),
                    wire_bytes: 0,
                    poisoned: false,
                },
            );
            *self.per_pair.entry(pair).or_default() += 1;
        }
        let limits = self.limits;
        let Some(p) = self.table.get_mut(&key) else {
            return Outcome::Dropped;
        };
        p.fragments = p.fragments.saturating_add(1);
        p.wire_bytes += u64::from(f.frame_len);
        p.last_ts = p.last_ts.max(f.ts_ns);
        if p.frames.len() < ISSUE_FRAMES {
            p.frames.push(f.frame);
        }
        if p.poisoned {
            self.stats.unusable += 1;
            return Outcome::Dropped;
        }
        let start = f.offset;
        let end = u64::from(f.offset) + u64::from(f.wire_len);
        if end > u64::from(MAX_DATAGRAM) {
            self.poison(&key, IssueKind::Oversize);
            self.stats.unusable += 1;
            return Outcome::Dropped;
        }
        let end = end as u32;
        // Unusable fragments: cut by the snap length, or a non-last fragment whose length is
        // not a multiple of 8 (receivers drop those).
        if (f.data.len() as u64) < u64::from(f.wire_len)
            || (f.more && !f.wire_len.is_multiple_of(8))
        {
            self.stats.unusable += 1;
            return Outcome::Pending;
        }
        let bytes = &f.data[..f.wire_len as usize];
        // The end of the datagram: the last fragment fixes it; every fragment must fit.
        let end_conflict = match (f.more, p.total) {
            (false, Some(t)) => t != end,
            (false, None) => p.ranges.last().is_some_and(|&(_, re)| re > end),
            (true, Some(t)) => end > t,
            (true, None) => false,
        };
        if end_conflict || p.conflicts(start, end, bytes) {
            self.poison(&key, IssueKind::Conflict);
            self.stats.unusable += 1;
            return Outcome::Dropped;
        }
        if p.fragments > limits.max_fragments {
            // Too many pieces: treat as evicted (an attack on reassembly, or a broken sender).
            self.remove(&key);
            self.stats.evicted += 1;
            return Outcome::Dropped;
        }
        if !f.more {
            p.total = Some(end);
        }
        if start < end && p.covered(start, end) {
            self.stats.duplicates += 1;
        } else if start < end {
            let need = end as usize;
            let old_cap = p.data.capacity();
            if p.data.len() < need {
                if need > old_cap {
                    p.data.reserve_exact(need - p.data.len());
                }
                p.data.resize(need, 0);
            }
            p.data[start as usize..need].copy_from_slice(bytes);
            let grown = p.data.capacity().saturating_sub(old_cap);
            p.insert_range(start, end);
            self.bytes += grown;
            self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes);
        }
        let complete = p.complete() || (p.total == Some(0) && p.ranges.is_empty());
        if complete {
            let Some(mut p) = self.remove(&key) else {
                return Outcome::Dropped;
            };
            let total = p.total.unwrap_or(0) as usize;
            p.data.truncate(total);
            self.stats.reassembled += 1;
            return Outcome::Complete(Reassembled {
                payload: p.data,
                fragments: p.fragments,
                frames: p.frames,
                wire_bytes: p.wire_bytes,
            });
        }
        // Global byte cap: evict the oldest other datagrams until under the cap.
        while self.bytes > limits.max_bytes {
            let oldest = self
                .table
                .iter()
                .filter(|(k, _)| **k != key)
                .min_by_key(|(k, p)| (p.first_ts, k.id))
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    if let Some(p) = self.remove(&k) {
                        if !p.poisoned {
                            self.stats.evicted += 1;
                        }
                    }
                }
                None => {
                    self.remove(&key);
                    self.stats.evicted += 1;
                    return Outcome::Dropped;
                }
            }
        }
        Outcome::Pending
    }

    /// End of capture: datagrams still in flight whose last fragment is at least a second
    /// older than the end of the capture count as incomplete (a fragment was lost); younger
    /// ones were cut by the end of the capture and are only counted.
    pub fn finish(&mut self, end_ns: i64) {
        let keys: Vec<Key> = self.table.keys().copied().collect();
        let mut left: Vec<(Key, Pending)> = keys
            .into_iter()
            .filter_map(|k| self.remove(&k).map(|p| (k, p)))
            .collect();
        left.sort_by_key(|(k, p)| (p.first_ts, k.id));
        for (k, p) in left {
            if p.poisoned {
                continue;
            }
            if end_ns.saturating_sub(p.last_ts) > self.timeout(k.v6) {
                self.stats.timeouts += 1;
                self.stats.record(p.issue(&k, IssueKind::Timeout));
            } else {
                self.stats.incomplete_at_end += 1;
                if end_ns.saturating_sub(p.last_ts) >= 1_000_000_000 {
                    self.stats.record(p.issue(&k, IssueKind::Incomplete));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: u32, offset: u32, more: bool, data: &[u8], ts_ns: i64) -> Fragment<'_> {
        Fragment {
            v6: false,
            src: "198.18.0.1".parse().expect("ip"),
            dst: "198.18.0.2".parse().expect("ip"),
            proto: 17,
            id,
            offset,
            more,
            data,
            wire_len: data.len() as u32,
            ts_ns,
            frame: u64::from(offset / 8) + 1,
            frame_len: data.len() as u32 + 34,
        }
    }

    #[test]
    fn out_of_order_fragments_reassemble() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let mut d = Defragmenter::default();
        assert_eq!(
            d.feed(&frag(7, 2960, false, &payload[2960..], 0)),
            Outcome::Pending
        );
        assert_eq!(
            d.feed(&frag(7, 0, true, &payload[..1480], 1)),
            Outcome::Pending
        );
        match d.feed(&frag(7, 1480, true, &payload[1480..2960], 2)) {
            Outcome::Complete(r) => {
                assert_eq!(r.payload, payload);
                assert_eq!(r.fragments, 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(d.in_flight(), 0);
        assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn conflicting_overlap_discards_and_reports() {
        let mut d = Defragmenter::default();
        d.feed(&frag(1, 0, true, &[1u8; 16], 0));
        assert_eq!(d.feed(&frag(1, 8, true, &[2u8; 16], 1)), Outcome::Dropped);
        // Later pieces of the poisoned datagram are ignored, not reassembled.
        assert_eq!(d.feed(&frag(1, 24, false, &[3u8; 8], 2)), Outcome::Dropped);
        assert_eq!(d.stats.conflicts, 1);
        assert_eq!(d.stats.issues_of(IssueKind::Conflict).count(), 1);
        // An identical overlap is a duplicate, not a conflict.
        d.feed(&frag(2, 0, true, &[1u8; 16], 0));
        d.feed(&frag(2, 8, true, &[1u8; 8], 1));
        assert!(matches!(
            d.feed(&frag(2, 16, false, &[5u8; 4], 2)),
            Outcome::Complete(_)
        ));
        assert_eq!(d.stats.duplicates, 1);
        assert_eq!(d.stats.conflicts, 1);
    }

    #[test]
    fn oversize_and_timeout_and_caps() {
        let mut d = Defragmenter::default();
        assert_eq!(
            d.feed(&frag(3, 65_528, false, &[0u8; 16], 0)),
            Outcome::Dropped
        );
        assert_eq!(d.stats.oversize, 1);
        d.feed(&frag(4, 0, true, &[0u8; 8], 0));
        // 31 s later (IPv4 timeout 30 s): the datagram is gone, a new one starts.
        assert_eq!(
            d.feed(&frag(4, 8, false, &[0u8; 8], 31_000_000_000)),
            Outcome::Pending
        );
        assert_eq!(d.stats.timeouts, 1);
        let limits = DefragLimits {
            max_per_pair: 4,
            ..Default::default()
        };
        let mut d = Defragmenter::new(limits);
        for id in 0..10 {
            d.feed(&frag(id, 0, true, &[0u8; 8], i64::from(id)));
        }
        assert_eq!(d.in_flight(), 4);
        assert_eq!(d.stats.evicted, 6);
        d.finish(100);
        assert_eq!(d.stats.incomplete_at_end, 4);
        // More fragments than the per-datagram cap: the datagram is given up.
        let mut d = Defragmenter::new(DefragLimits {
            max_fragments: 3,
            ..Default::default()
        });
        for i in 0..3u32 {
            assert_eq!(
                d.feed(&frag(5, i * 8, true, &[1u8; 8], 0)),
                Outcome::Pending
            );
        }
        assert_eq!(d.feed(&frag(5, 24, false, &[1u8; 8], 0)), Outcome::Dropped);
        assert_eq!((d.stats.evicted, d.in_flight()), (1, 0));
    }
}
