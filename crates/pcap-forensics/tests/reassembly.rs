//! IP fragment and TCP stream reassembly: recorded captures, exact scenarios and property
//! tests (any fragmentation or segmentation, in any order, gives back the payload; hostile
//! input never panics and stays within the memory caps).

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use pcap_forensics::analysis::{analyze_file, Analysis, AnalysisOptions};
use pcap_forensics::reassembly::ip::{DefragLimits, Defragmenter, Fragment, Outcome};
use pcap_forensics::reassembly::tcp::{Stream, StreamLimits};
use pcap_forensics::semantic::{semantic_json, Meta};
use pcap_forensics::testsupport::{self as ts, Capture, TcpConv};
use pcap_forensics::Severity;
use proptest::prelude::*;
use support::*;

fn fixture(name: &str) -> Analysis {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    analyze_file(&p, &AnalysisOptions::default(), None).expect("fixture parses")
}

fn eth4(src: Ipv4Addr, dst: Ipv4Addr, ip: &[u8]) -> Vec<u8> {
    ts::ethernet(ts::mac_of(v4(dst)), ts::mac_of(v4(src)), 0x0800, ip)
}

fn eth6(src: Ipv6Addr, dst: Ipv6Addr, ip: &[u8]) -> Vec<u8> {
    ts::ethernet(
        ts::mac_of(IpAddr::V6(dst)),
        ts::mac_of(IpAddr::V6(src)),
        0x86dd,
        ip,
    )
}

/// A DNS response with `n` TXT answers of 200 bytes each (≈ 210 bytes per answer).
fn big_txt_response(id: u16, name: &str, n: u16) -> Vec<u8> {
    let mut m = ts::dns(id, name, 16, Some((0, n, false)));
    // ts::dns writes the header with ancount = n; append the answers.
    let trimmed = m.len();
    m.truncate(trimmed);
    for i in 0..n {
        let data = vec![b'a' + (i % 26) as u8; 200];
        m.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16 + 1).to_be_bytes());
        m.push(data.len() as u8);
        m.extend_from_slice(&data);
    }
    m
}

fn has_rule(a: &Analysis, rule: &str) -> bool {
    a.findings.iter().any(|f| f.rule == rule)
}

// ---------------------------------------------------------------- recorded captures

#[test]
fn recorded_ping_3000_bytes_reassembles_fragments() {
    // `ping -s 3000 -c 2` between two namespaces: 3 fragments per echo each way.
    let a = fixture("frag_icmp.pcap");
    assert_eq!(a.stats.fragments, 12);
    assert_eq!(a.reassembly.reassembled, 4);
    assert_eq!(a.icmp.echo_requests, 2);
    assert_eq!(a.icmp.echo_replies, 2);
    assert_eq!(a.icmp.echo_unanswered, 0);
    assert_eq!(a.icmp.echo_rtt.count, 2);
    assert_eq!(a.reassembly.conflicts + a.reassembly.timeouts, 0);
    assert!(!a.findings.iter().any(|f| f.rule.starts_with("ip.")));
}

#[test]
fn recorded_dns_over_fragmented_udp_and_split_tcp() {
    // A 2.6 kB TXT answer over UDP (2 fragments) and a TCP query whose length prefix is
    // split across segments, answered in two sends.
    let a = fixture("dns_frag_tcp.pcap");
    let d = &a.dns.state;
    assert_eq!(a.reassembly.reassembled, 1);
    assert_eq!(d.queries, 2);
    assert_eq!(d.responses, 2);
    assert_eq!(a.dns.unanswered.len(), 0);
    assert_eq!(d.tcp_messages, 2);
    assert_eq!(d.tcp_streams, 2);
    assert_eq!(d.tcp_stream_gaps + d.tcp_stream_conflicts, 0);
    assert_eq!(d.rcodes.get("NOERROR"), Some(&2));
    assert_eq!(d.qtypes.get("TXT"), Some(&1));
    let sem = semantic_json(
        &a,
        &AnalysisOptions::default(),
        &Meta::at(chrono::Utc::now()),
    );
    assert_eq!(sem["dns"]["tcp_reassembly"]["streams"], 2);
    assert_eq!(
        sem["capture_summary"]["ip_reassembly"]["datagrams_reassembled"],
        1
    );
}

// ---------------------------------------------------------------- exact scenarios

#[test]
fn dns_answer_in_out_of_order_ipv4_fragments_is_matched() {
    let mut cap = Capture::new();
    let q = ts::dns(7, "big.example.com", 16, None);
    cap.ip4(
        CLIENT,
        DNS,
        17,
        64,
        &ts::udp(v4(CLIENT), v4(DNS), 40000, 53, &q),
    );
    cap.wait_ms(5.0);
    let r = big_txt_response(7, "big.example.com", 12);
    let udp = ts::udp(v4(DNS), v4(CLIENT), 53, 40000, &r);
    let mut frags = ts::ipv4_fragments(DNS, CLIENT, 17, 0x4242, &udp, 1000);
    assert_eq!(frags.len(), 3);
    frags.reverse();
    for f in &frags {
        cap.push(eth4(DNS, CLIENT, f));
    }
    let a = analyze(&cap);
    assert_eq!(a.reassembly.reassembled, 1);
    assert_eq!(a.dns.state.responses, 1);
    assert_eq!(a.dns.unanswered.len(), 0);
    assert_eq!(a.udp.packets, 2, "the query and one reassembled answer");
    assert_eq!(a.dns.state.latency.count, 1);
}

#[test]
fn ipv6_fragments_reassemble_to_an_echo_request() {
    let c6: Ipv6Addr = "2001:db8::2".parse().expect("ip");
    let s6: Ipv6Addr = "2001:db8::5".parse().expect("ip");
    let body = vec![0x5a; 3000];
    let echo = ts::icmp(128, 0, [0, 1, 0, 1], &body, Some((c6, s6)));
    let mut cap = Capture::new();
    let frags = ts::ipv6_fragments(c6, s6, 58, 0xdead_beef, &echo, 1232);
    assert_eq!(frags.len(), 3);
    for i in [1usize, 0, 2] {
        cap.push(eth6(c6, s6, &frags[i]));
    }
    let a = analyze(&cap);
    assert_eq!(a.reassembly.reassembled, 1);
    assert_eq!(a.icmp.echo_requests, 1);
    assert_eq!(a.icmp.types.get("icmpv6_echo_request"), Some(&1));
    assert_eq!(a.stats.malformed, 0);
}

#[test]
fn conflicting_overlap_is_a_finding_and_never_reassembled() {
    let mut cap = Capture::new();
    let payload = ts::udp(v4(CLIENT), v4(SERVER), 5000, 6000, &[1u8; 64]);
    let frags = ts::ipv4_fragments(CLIENT, SERVER, 17, 9, &payload, 40);
    let first = cap.push(eth4(CLIENT, SERVER, &frags[0]));
    // The same offset again with different bytes (a Teardrop-style rewrite).
    let mut evil = payload.clone();
    for b in &mut evil[8..40] {
        *b = 0xee;
    }
    let evil_frag = ts::ipv4_full(CLIENT, SERVER, 17, 64, 9, 0, true, &[], &evil[..40]);
    let second = cap.push(eth4(CLIENT, SERVER, &evil_frag));
    cap.push(eth4(CLIENT, SERVER, &frags[1]));
    let a = analyze(&cap);
    assert_eq!(a.reassembly.conflicts, 1);
    assert_eq!(a.reassembly.reassembled, 0);
    assert_eq!(
        a.udp.packets, 0,
        "a discarded datagram reaches no dissector"
    );
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "ip.fragment_conflict")
        .expect("finding");
    assert_eq!(f.severity, Severity::High);
    assert!(f.sample_frames.contains(&first) && f.sample_frames.contains(&second));
    assert!(f.hosts.contains(&CLIENT.to_string()));
}

#[test]
fn lost_fragments_are_reported_incomplete() {
    let mut cap = Capture::new();
    for id in 0..3u16 {
        let payload = ts::udp(v4(CLIENT), v4(SERVER), 5000, 6000, &[2u8; 3000]);
        let frags = ts::ipv4_fragments(CLIENT, SERVER, 17, 100 + id, &payload, 1480);
        // The last fragment never arrives.
        cap.push(eth4(CLIENT, SERVER, &frags[0]));
        cap.push(eth4(CLIENT, SERVER, &frags[1]));
        cap.wait_ms(if id < 2 { 20_000.0 } else { 2_000.0 });
    }
    // Something else 40 s after the first datagram began, so that every datagram stopped
    // well before the end of the capture.
    cap.ip4(
        CLIENT,
        SERVER,
        17,
        64,
        &ts::udp(v4(CLIENT), v4(SERVER), 5001, 6001, &[0; 8]),
    );
    let a = analyze(&cap);
    // 3 datagrams: the first timed out (30 s), the other two stopped 20 s and 2 s before
    // the end, each missing its last fragment.
    assert_eq!(a.reassembly.timeouts, 1);
    assert_eq!(a.reassembly.incomplete_at_end, 2);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "ip.fragments_incomplete")
        .expect("finding");
    assert_eq!(f.value, 3.0);
    assert_eq!(f.severity, Severity::Low);
    assert!(f.hosts.contains(&SERVER.to_string()));
}

/// One TCP connection to port 53; `script` writes the data.
fn dns_tcp(script: impl FnOnce(&mut Capture, &mut TcpConv)) -> Analysis {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(v4(CLIENT), 40100, v4(DNS), 53);
    t.handshake(&mut cap, 1.0);
    script(&mut cap, &mut t);
    t.close(&mut cap);
    analyze(&cap)
}

fn framed(m: &[u8]) -> Vec<u8> {
    let mut v = (m.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(m);
    v
}

#[test]
fn dns_over_tcp_split_anywhere_is_parsed_once() {
    let q = framed(&ts::dns(0x0102, "split.example.com", 1, None));
    let r = framed(&ts::dns(
        0x0102,
        "split.example.com",
        1,
        Some((3, 0, false)),
    ));
    let a = dns_tcp(|cap, t| {
        // The length prefix split, then the rest in two pieces, then a retransmission.
        let start = t.cseq;
        t.data_c(cap, &q[..1]);
        t.data_c(cap, &q[1..9]);
        t.data_c(cap, &q[9..]);
        t.data_at(cap, true, start.wrapping_add(1), &q[1..9]);
        t.ack_s(cap, t.cseq);
        cap.wait_ms(3.0);
        // The answer: the second half first (out of order).
        let s0 = t.sseq;
        t.data_at(cap, false, s0.wrapping_add(10), &r[10..]);
        t.data_at(cap, false, s0, &r[..10]);
        t.sseq = t.sseq.wrapping_add(r.len() as u32);
        t.ack_c(cap);
    });
    let d = &a.dns.state;
    assert_eq!(d.tcp_messages, 2);
    assert_eq!(d.queries, 1);
    assert_eq!(d.responses, 1);
    assert_eq!(d.retransmitted_queries, 0);
    assert_eq!(d.rcodes.get("NXDOMAIN"), Some(&1));
    assert_eq!(d.tcp_stream_conflicts, 0);
    assert!(!has_rule(&a, "tcp.stream_conflict"));
}

#[test]
fn rewritten_tcp_data_is_a_stream_conflict() {
    let q = framed(&ts::dns(0x0203, "victim.example.com", 1, None));
    let a = dns_tcp(|cap, t| {
        let start = t.cseq;
        t.data_c(cap, &q);
        let mut forged = q.clone();
        let n = forged.len();
        forged[n - 6] ^= 0x20;
        t.data_at(cap, true, start, &forged);
        t.ack_s(cap, t.cseq);
    });
    let d = &a.dns.state;
    assert_eq!(d.tcp_stream_conflicts, 1);
    assert_eq!(d.queries, 1);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "tcp.stream_conflict")
        .expect("finding");
    assert_eq!(f.severity, Severity::Medium);
    assert!(f.flows[0].contains("overlap_conflict"), "{:?}", f.flows);
}

// ---------------------------------------------------------------- property tests

fn cut(len: usize, chunk: usize) -> Vec<(usize, usize)> {
    let chunk = (chunk / 8).max(1) * 8;
    (0..len.div_ceil(chunk).max(1))
        .map(|i| (i * chunk, ((i + 1) * chunk).min(len)))
        .collect()
}

fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_fragmentation_in_any_order_reassembles(
        payload in proptest::collection::vec(any::<u8>(), 1..6000),
        chunk in 8usize..1500,
        seed in any::<u64>(),
        dup in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        // At most 256 fragments per datagram (the documented cap).
        let chunk = chunk.max(payload.len().div_ceil(256) + 7);
        let pieces = cut(payload.len(), chunk);
        prop_assert!(pieces.len() <= 256);
        let mut order = shuffled(&pieces, seed);
        if dup && pieces.len() > 1 {
            // A duplicate right after its original (a late duplicate after completion would
            // rightly start a new datagram).
            let at = (seed as usize) % (order.len() - 1);
            let again = order[at];
            order.insert(at + 1, again);
        }
        let mut d = Defragmenter::default();
        let mut done = None;
        for (i, &(s, e)) in order.iter().enumerate() {
            let f = Fragment {
                v6,
                src: "198.18.0.1".parse().expect("ip"),
                dst: "198.18.0.2".parse().expect("ip"),
                proto: 17,
                id: 77,
                offset: s as u32,
                more: e < payload.len(),
                data: &payload[s..e],
                wire_len: (e - s) as u32,
                ts_ns: i as i64,
                frame: i as u64 + 1,
                frame_len: (e - s) as u32 + 34,
            };
            match d.feed(&f) {
                Outcome::Complete(r) => {
                    prop_assert!(done.is_none());
                    done = Some(r.payload);
                }
                Outcome::Pending => {}
                Outcome::Dropped => prop_assert!(false, "fragment dropped"),
            }
        }
        prop_assert_eq!(done, Some(payload));
        prop_assert_eq!(d.stats.conflicts, 0);
        prop_assert_eq!(d.in_flight(), 0);
        prop_assert_eq!(d.buffered_bytes(), 0);
    }

    #[test]
    fn any_segmentation_in_any_order_reassembles(
        data in proptest::collection::vec(any::<u8>(), 1..20_000),
        cuts in proptest::collection::vec(1usize..1500, 1..40),
        seed in any::<u64>(),
        isn in any::<u32>(),
        dups in 0usize..4,
    ) {
        // Segments of the given sizes (cycled), shuffled within windows of 8 segments so the
        // out-of-order buffer never overflows, plus a few retransmissions.
        let mut segs = Vec::new();
        let mut off = 0;
        let mut i = 0;
        while off < data.len() {
            let n = cuts[i % cuts.len()].min(data.len() - off);
            segs.push((off, off + n));
            off += n;
            i += 1;
        }
        let mut order = Vec::new();
        for (k, w) in segs.chunks(8).enumerate() {
            order.extend(shuffled(w, seed.wrapping_add(k as u64)));
        }
        for k in 0..dups.min(order.len()) {
            let again = order[(seed as usize + k * 7) % order.len()];
            order.push(again);
        }
        let mut st = Stream::new(StreamLimits::default());
        let mut out = Vec::new();
        st.push(isn, pcap_forensics::dissect::tcpflag::SYN, &[], 0, &mut out);
        for &(s, e) in &order {
            let seq = isn.wrapping_add(1).wrapping_add(s as u32);
            let p = st.push(seq, 0, &data[s..e], (e - s) as u32, &mut out);
            prop_assert!(!p.conflict && !p.gap && !p.out_of_window, "{:?}", p);
        }
        prop_assert_eq!(out, data);
    }

    #[test]
    fn hostile_fragments_never_panic_and_stay_bounded(
        frags in proptest::collection::vec(
            (0u32..8, any::<u16>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200), 0u32..300, any::<bool>(), 0i64..100_000_000_000),
            1..300),
    ) {
        let limits = DefragLimits {
            max_datagrams: 5,
            max_per_pair: 3,
            max_bytes: 100_000,
            ..Default::default()
        };
        let mut d = Defragmenter::new(limits);
        for (i, (id, off, more, data, wire, v6, ts)) in frags.iter().enumerate() {
            let f = Fragment {
                v6: *v6,
                src: IpAddr::V4(Ipv4Addr::new(198, 18, 0, (id % 3) as u8)),
                dst: "198.18.0.9".parse().expect("ip"),
                proto: 17,
                id: *id,
                offset: u32::from(*off),
                more: *more,
                data,
                wire_len: *wire,
                ts_ns: *ts,
                frame: i as u64,
                frame_len: *wire + 34,
            };
            let _ = d.feed(&f);
            prop_assert!(d.in_flight() <= 5);
            prop_assert!(d.buffered_bytes() <= 100_000 + 65_535);
        }
        d.finish(i64::MAX);
        prop_assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn hostile_segments_never_panic_and_stay_bounded(
        segs in proptest::collection::vec(
            (any::<u32>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..3000), 0u32..4000),
            1..200),
    ) {
        let limits = StreamLimits { max_pending: 4096, history: 512 };
        let mut st = Stream::new(limits);
        let mut out = Vec::new();
        for (seq, flags, payload, seg_len) in &segs {
            let _ = st.push(*seq, *flags, payload, *seg_len, &mut out);
            prop_assert!(st.buffered_bytes() <= 4096 + 4000 + 512);
            out.clear();
        }
    }
}
