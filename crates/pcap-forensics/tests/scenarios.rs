//! Exact-scenario tests: captures built with the writer, analysed, findings checked.

mod support;

use pcap_forensics::analysis::tcp::Outcome;
use pcap_forensics::analysis::AnalysisOptions;
use pcap_forensics::semantic::{semantic_json, Meta};
use pcap_forensics::testsupport::{self as ts, Capture, PcapWriter, PcapngWriter};
use pcap_forensics::{has_actionable_findings, Severity};
use support::*;

fn meta() -> Meta {
    Meta::at(chrono::DateTime::from_timestamp(1_767_225_600, 0).expect("time"))
}

#[test]
fn retransmission_burst() {
    let a = analyze(&retrans_burst());
    let c = &a.tcp.conns[0];
    assert_eq!(a.tcp.conns.len(), 1);
    assert_eq!(c.outcome(), Outcome::Completed);
    assert_eq!(c.retransmissions, 5);
    assert_eq!(c.dir[0].payload_bytes, 25_000);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "tcp.retransmissions")
        .expect("finding");
    assert_eq!(f.severity, Severity::High, "5 of 25 data segments is 20%");
    assert!(!f.sample_frames.is_empty());
    assert!(f.flows[0].contains("198.18.200.2:40000 -> 198.18.201.2:8080"));
    assert!(c.handshake_rtt_ms().expect("rtt") > 0.9);
    assert!(has_actionable_findings(&a));
}

#[test]
fn syn_without_answer_counts_attempts_not_packets() {
    let a = analyze(&syn_unanswered());
    let j = semantic_json(&a, &AnalysisOptions::default(), &meta());
    let cs = &j["tcp"]["connection_stats"];
    assert_eq!(cs["syn_sent"], 3, "three connections, nine SYN packets");
    assert_eq!(cs["syn_packets"], 9);
    assert_eq!(cs["syn_unanswered"], 3);
    assert_eq!(cs["handshakes_completed"], 0);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "xproto.filtered_port")
        .expect("finding");
    assert_eq!(f.severity, Severity::High);
    assert!(f.title.contains("silently dropped"), "{}", f.title);
    assert!(f.title.contains("198.18.201.2:5001"));
    // SYN retransmissions count as retransmissions, as in Wireshark.
    assert_eq!(a.tcp.sum(|c| c.retransmissions), 6);
}

#[test]
fn refused_by_rst_and_by_icmp() {
    let a = analyze(&rst_refused());
    assert_eq!(a.tcp.count_outcome(Outcome::RefusedRst), 2);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "xproto.filtered_port")
        .expect("finding");
    assert!(f.title.contains("refused with RST"), "{}", f.title);
    assert_eq!(f.severity, Severity::Medium);

    let a = analyze(&icmp_refused());
    assert_eq!(a.tcp.count_outcome(Outcome::RefusedIcmp), 1);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "xproto.filtered_port")
        .expect("finding");
    assert!(f.title.contains("ICMP unreachable"), "{}", f.title);
    let u = &a.icmp.unreachables[0];
    assert_eq!(u.code, 3);
    assert_eq!(u.dport, Some(7000));
    assert_eq!(u.protocol, 6);
}

#[test]
fn duplicate_acks_fast_retransmission_zero_window() {
    let a = analyze(&dupack_fast_zero_window());
    let c = &a.tcp.conns[0];
    assert_eq!(c.duplicate_acks, 3);
    assert_eq!(c.fast_retransmissions, 1);
    assert_eq!(c.retransmissions, 1);
    assert_eq!(c.zero_window, 2);
    assert!(a
        .findings
        .iter()
        .any(|f| f.rule == "tcp.zero_window" && f.severity == Severity::Medium));
}

#[test]
fn dns_matching_rcodes_and_suspicious_names() {
    let a = analyze(&dns_mix());
    let d = &a.dns.state;
    assert_eq!(d.queries, 35);
    assert_eq!(d.responses, 33);
    assert_eq!(a.dns.unanswered.len(), 2);
    assert_eq!(d.rcodes.get("NXDOMAIN"), Some(&20));
    assert_eq!(d.rcodes.get("SERVFAIL"), Some(&1));
    assert_eq!(d.rcodes.get("NOERROR"), Some(&12));
    assert_eq!(d.slow_count, 1);
    assert_eq!(d.truncated, 1);
    assert_eq!(d.qtypes.get("TXT"), Some(&1));
    let r = rules(&a);
    for want in [
        "dns.unanswered",
        "dns.nxdomain",
        "dns.servfail",
        "dns.slow",
        "dns.dga_suspect",
        "dns.truncated",
    ] {
        assert!(r.contains(&want), "{want} missing from {r:?}");
    }
    let dga = a
        .findings
        .iter()
        .find(|f| f.rule == "dns.dga_suspect")
        .expect("dga");
    assert_eq!(dga.severity, Severity::High);
    assert_eq!(dga.value, 5.0);
    let nx = a
        .findings
        .iter()
        .find(|f| f.rule == "dns.nxdomain")
        .expect("nx");
    assert_eq!(nx.severity, Severity::Medium);
    let p50 = d.latency.percentile(50.0).expect("latency") / 1000.0;
    assert!((2.8..=3.2).contains(&p50), "p50 {p50}");
}

#[test]
fn pmtud_black_hole_is_critical() {
    let a = analyze(&pmtud_black_hole());
    assert_eq!(a.icmp.mtu.len(), 1);
    assert_eq!(a.icmp.mtu[0].mtu, 1400);
    assert_eq!(a.icmp.mtu[0].count, 5);
    let f = &a.findings[0];
    assert_eq!(f.rule, "xproto.pmtud_black_hole");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.remediation.contains("1400"));
}

#[test]
fn ttl_exceeded_loop_versus_traceroute() {
    let a = analyze(&ttl_loop_and_traceroute());
    let lp = a
        .findings
        .iter()
        .find(|f| f.rule == "icmp.routing_loop")
        .expect("loop");
    assert!(lp.title.contains("198.18.50.9"));
    assert_eq!(lp.hosts.len(), 2);
    let tr = a
        .findings
        .iter()
        .find(|f| f.rule == "icmp.traceroute")
        .expect("traceroute");
    assert_eq!(tr.severity, Severity::Info);
}

#[test]
fn arp_conflict_told_apart_from_vrrp() {
    let a = analyze(&arp_conflict_and_vrrp());
    assert_eq!(a.arp.conflicts.len(), 2);
    let c = a
        .findings
        .iter()
        .find(|f| f.rule == "arp.ip_conflict")
        .expect("conflict");
    assert!(c.title.contains("198.18.200.10"));
    assert_eq!(c.severity, Severity::High);
    let v = a
        .findings
        .iter()
        .find(|f| f.rule == "arp.virtual_mac")
        .expect("vrrp");
    assert_eq!(v.severity, Severity::Info);
    assert!(v.hosts.iter().any(|h| h.contains("VRRP")));
    assert_eq!(a.arp.gratuitous, 2);
}

#[test]
fn host_down_cross_rule() {
    let a = analyze(&host_down());
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "xproto.host_down")
        .expect("host down");
    assert!(f.title.contains("198.18.200.99"));
    assert_eq!(f.severity, Severity::High);
}

#[test]
fn ipv6_tcp_icmpv6_and_neighbour_discovery() {
    let a = analyze(&ipv6_mix());
    assert_eq!(a.stats.ipv6_packets, a.stats.packets);
    assert_eq!(a.tcp.conns[0].retransmissions, 1);
    assert_eq!(a.icmp.mtu[0].mtu, 1280);
    assert!(a.icmp.mtu[0].v6);
    assert_eq!(a.icmp.nd_solicitations, 1);
    assert_eq!(a.icmp.nd_advertisements, 1);
    assert!(a.icmp.ns_unanswered.is_empty());
}

/// The same TCP segment under every supported link type and container variant.
#[test]
fn link_types_and_container_variants() {
    let src = CLIENT;
    let dst = SERVER;
    let seg = ts::tcp(v4(src), v4(dst), 1234, 80, 1, 0, 0x02, 512, &[], &[]);
    let ip = ts::ipv4(src, dst, 6, 64, &seg);
    let eth = ts::ethernet([2; 6], [4; 6], 0x0800, &ip);
    let vlan = ts::ethernet_vlan([2; 6], [4; 6], 42, 0x0800, &ip);
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (1, eth.clone()),
        (1, vlan),
        (113, ts::sll(0x0800, &ip)),
        (276, ts::sll2(0x0800, &ip)),
        (101, ip.clone()),
        (228, ip.clone()),
    ];
    for (lt, frame) in &cases {
        for (nanos, be) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut w = PcapWriter::new(Vec::new(), *lt, nanos, be).expect("w");
            w.write(ts::T0 + 123_456_789, frame, frame.len() as u32)
                .expect("w");
            let a = analyze_bytes(&w.into_inner(), "x.pcap");
            assert_eq!(a.tcp.syn_packets, 1, "link type {lt} nanos {nanos} be {be}");
            let expect_ns = if nanos { 123_456_789 } else { 123_456_000 };
            assert_eq!(a.stats.first_ts_ns, Some(ts::T0 + expect_ns));
        }
    }
    // VLAN id recorded.
    let mut cap = Capture::new();
    cap.push(ts::ethernet_vlan([2; 6], [4; 6], 42, 0x0800, &ip));
    let a = analyze(&cap);
    assert_eq!(a.stats.vlans.get(&42), Some(&1));
    // pcapng: two interfaces with different link types and resolutions, an SPB, comments.
    let mut w = PcapngWriter::new(Vec::new(), Some("section comment")).expect("w");
    let i0 = w.add_interface(1, 6).expect("w");
    let i1 = w.add_interface(101, 9).expect("w");
    w.write_epb(i0, ts::T0 + 5_000, &eth, Some("first packet"))
        .expect("w");
    w.write_epb(i1, ts::T0 + 7_777, &ip, None).expect("w");
    w.write_spb(&eth).expect("w");
    let a = analyze_bytes(&w.into_inner(), "x.pcapng");
    assert_eq!(a.stats.packets, 3);
    assert_eq!(a.tcp.syn_packets, 3);
    assert_eq!(a.stats.link_types.len(), 2);
    assert_eq!(a.stats.last_ts_ns, Some(ts::T0 + 7_777));
    assert_eq!(
        a.comments,
        vec!["section comment".to_string(), "first packet".to_string()]
    );
}

#[test]
fn ipv4_fragments_are_counted_and_not_misparsed() {
    let payload = ts::udp(v4(CLIENT), v4(SERVER), 5000, 6000, &[7u8; 1600]);
    let first = ts::ipv4_full(CLIENT, SERVER, 17, 64, 99, 0, true, &[], &payload[..1480]);
    let second = ts::ipv4_full(
        CLIENT,
        SERVER,
        17,
        64,
        99,
        1480,
        false,
        &[],
        &payload[1480..],
    );
    let mut cap = Capture::new();
    cap.push(ts::ethernet([2; 6], [4; 6], 0x0800, &first));
    cap.push(ts::ethernet([2; 6], [4; 6], 0x0800, &second));
    // IPv4 with options (router alert) carrying UDP.
    let opt = ts::ipv4_full(
        CLIENT,
        SERVER,
        17,
        64,
        100,
        0,
        false,
        &[0x94, 4, 0, 0],
        &ts::udp(v4(CLIENT), v4(SERVER), 5000, 6000, &[1; 10]),
    );
    cap.push(ts::ethernet([2; 6], [4; 6], 0x0800, &opt));
    let a = analyze(&cap);
    assert_eq!(a.stats.fragments, 2);
    assert_eq!(a.reassembly.reassembled, 1);
    assert_eq!(
        a.udp.packets, 2,
        "the reassembled datagram and the options packet"
    );
    // Byte counters count every fragment's frame (and the options packet's).
    let frames: u64 = cap.frames.iter().map(|(_, f)| f.len() as u64).sum();
    assert_eq!(a.udp.bytes, frames);
    assert_eq!(a.stats.malformed, 0);
}

#[test]
fn truncated_and_corrupt_files_give_partial_results() {
    let bytes = retrans_burst().to_pcap(1);
    // Cut in the middle of a packet.
    let cut = &bytes[..bytes.len() - 30];
    let a = analyze_bytes(cut, "cut.pcap");
    assert!(a.stats.packets > 20);
    assert!(
        a.warnings.iter().any(|w| w.contains("truncated")),
        "{:?}",
        a.warnings
    );
    assert!(a.findings.iter().any(|f| f.rule == "capture.incomplete"));
    // Corrupt a record length.
    let mut bad = bytes.clone();
    let first_len = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]) as usize;
    let off = 24 + 16 + first_len; // second record header
    bad[off + 8..off + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let a = analyze_bytes(&bad, "bad.pcap");
    assert_eq!(a.stats.packets, 1);
    assert!(
        a.warnings.iter().any(|w| w.contains("corrupt")),
        "{:?}",
        a.warnings
    );
    // Garbage is an error, not a panic.
    assert!(pcap_forensics::analyze_reader(
        &b"\x00\x01garbage"[..],
        "g",
        &AnalysisOptions::default(),
        None
    )
    .is_err());
}

#[test]
fn clean_capture_has_no_actionable_findings() {
    let mut cap = Capture::new();
    let mut t = ts::TcpConv::new(v4(CLIENT), 48000, v4(SERVER), 443);
    t.handshake(&mut cap, 1.0);
    for _ in 0..5 {
        t.send_c(&mut cap, 200);
        cap.wait_ms(1.0);
        t.send_s(&mut cap, 1000);
        cap.wait_ms(0.1);
        t.ack_c(&mut cap);
    }
    t.close(&mut cap);
    let a = analyze(&cap);
    assert!(!has_actionable_findings(&a), "{:?}", a.findings);
    assert_eq!(a.tcp.conns[0].outcome(), Outcome::Completed);
    assert!(a.tcp.conns[0].rtt.count > 0, "data RTT sampled from ACKs");
}

#[test]
fn semantic_json_keeps_reference_keys() {
    let a = analyze(&dns_mix());
    let j = semantic_json(&a, &AnalysisOptions::default(), &meta());
    for path in [
        "/capture_summary/file",
        "/capture_summary/total_packets",
        "/capture_summary/duration_seconds",
        "/capture_summary/avg_packets_per_second",
        "/capture_summary/protocols_present",
        "/tcp/streams_total",
        "/tcp/retransmissions_total",
        "/tcp/rst_count",
        "/tcp/duplicate_ack_total",
        "/tcp/out_of_order_total",
        "/tcp/zero_window_total",
        "/tcp/connection_stats/syn_sent",
        "/tcp/connection_stats/syn_ack_received",
        "/tcp/connection_stats/handshakes_completed",
        "/tcp/connection_stats/handshake_success_rate_pct",
        "/dns/queries_total",
        "/dns/responses_total",
        "/dns/rcode_distribution",
        "/dns/unanswered_queries",
        "/icmp/type_distribution",
        "/icmp/unreachable_details",
        "/arp/total_requests",
        "/arp/total_replies",
        "/arp/gratuitous_arp_count",
        "/arp/duplicate_ip_alerts",
        "/schema_version",
        "/session_id",
        "/created_at",
    ] {
        assert!(j.pointer(path).is_some(), "{path} missing");
    }
    assert_eq!(j["session_id"], "pcap_20260101T000000Z");
    assert_eq!(j["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(j["dns"]["rcode_distribution"]["NXDOMAIN"], 20);
}

#[test]
fn dns_over_tcp_is_matched() {
    let mut cap = Capture::new();
    let mut t = ts::TcpConv::new(v4(CLIENT), 49000, v4(DNS), 53);
    t.handshake(&mut cap, 1.0);
    let mut q = ts::dns(77, "axfr.example.com", 252, None);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.append(&mut q);
    let seg = ts::tcp(
        v4(CLIENT),
        v4(DNS),
        49000,
        53,
        t.cseq,
        t.sseq,
        0x18,
        512,
        &[],
        &framed,
    );
    cap.ip4(CLIENT, DNS, 6, 64, &seg);
    t.cseq += framed.len() as u32;
    cap.wait_ms(4.0);
    let mut r = ts::dns(77, "axfr.example.com", 252, Some((5, 0, false)));
    let mut framed = (r.len() as u16).to_be_bytes().to_vec();
    framed.append(&mut r);
    let seg = ts::tcp(
        v4(DNS),
        v4(CLIENT),
        53,
        49000,
        t.sseq,
        t.cseq,
        0x18,
        512,
        &[],
        &framed,
    );
    cap.ip4(DNS, CLIENT, 6, 64, &seg);
    let a = analyze(&cap);
    let d = &a.dns.state;
    assert_eq!((d.queries, d.responses, d.tcp_messages), (1, 1, 2));
    assert_eq!(d.rcodes.get("REFUSED"), Some(&1));
    assert!(a.dns.unanswered.is_empty());
    assert_eq!(d.qtypes.get("TYPE252"), Some(&1));
}

#[test]
fn temporal_compare_flags_a_loss_increase() {
    use pcap_forensics::compare::{compare, Mode};
    let mut clean = Capture::new();
    let mut t = ts::TcpConv::new(v4(CLIENT), 40000, v4(SERVER), 8080);
    t.handshake(&mut clean, 1.0);
    for _ in 0..20 {
        t.send_c(&mut clean, 1000);
        clean.wait_ms(0.1);
    }
    t.ack_s(&mut clean, t.cseq);
    t.close(&mut clean);
    let before = analyze(&clean);
    let after = analyze(&retrans_burst());
    let c = compare(&before, &after, Mode::Temporal, 10, &meta());
    assert!(c.significant);
    let v = c.json["verdict"].as_str().expect("verdict");
    assert!(v.contains("retransmissions_per_1000_data_segments"), "{v}");
    let same = compare(&before, &before, Mode::Temporal, 10, &meta());
    assert!(!same.significant);
    assert!(same.markdown.contains("no significant change"));
    let sym = compare(&before, &before, Mode::Endpoint, 10, &meta());
    assert!(sym.json["verdict"]
        .as_str()
        .expect("v")
        .starts_with("symmetric"));
}

#[test]
fn pcapng_with_two_sections() {
    let mut bytes = syn_unanswered().to_pcapng(1);
    // A second section with a raw-IP interface.
    let mut cap = Capture::new();
    let seg = ts::tcp(v4(CLIENT), v4(SERVER), 1, 2, 3, 0, 0x02, 512, &[], &[]);
    cap.push(ts::ipv4(CLIENT, SERVER, 6, 64, &seg));
    bytes.extend_from_slice(&cap.to_pcapng(101));
    let a = analyze_bytes(&bytes, "two-sections.pcapng");
    assert_eq!(a.stats.packets, 10);
    assert_eq!(a.tcp.syn_packets, 10);
    assert!(a.stats.link_types.contains_key(&1) && a.stats.link_types.contains_key(&101));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn rst_storm_arp_storm_and_dns_tunnel() {
    let mut cap = Capture::new();
    // 150 refused connections in 1.5 s: an RST storm from the server.
    for k in 0..150u16 {
        let mut t = ts::TcpConv::new(v4(CLIENT), 20000 + k, v4(SERVER), 23);
        t.syn(&mut cap);
        cap.wait_ms(0.1);
        t.rst_s(&mut cap);
        cap.wait_ms(9.9);
    }
    // 120 gratuitous ARPs within one second.
    for i in 0..120u8 {
        let ip = std::net::Ipv4Addr::new(198, 18, 7, i);
        let a = ts::arp(1, [2, 0, 0, 0, 7, i], ip, [0; 6], ip);
        cap.push(ts::ethernet([0xff; 6], [2, 0, 0, 0, 7, i], 0x0806, &a));
        cap.wait_ms(5.0);
    }
    // DNS tunnelling: long hex labels under one domain, TXT queries.
    for i in 0..25u16 {
        let label: String = format!(
            "{:016x}{:016x}{:016x}",
            u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            u64::from(i) << 17,
            u64::from(i) * 31
        );
        let name = format!("{label}.t.tunnel.example");
        let q = ts::dns(1000 + i, &name, 16, None);
        cap.ip4(
            CLIENT,
            DNS,
            17,
            64,
            &ts::udp(v4(CLIENT), v4(DNS), 30000 + i, 53, &q),
        );
        cap.wait_ms(2.0);
        let r = ts::dns(1000 + i, &name, 16, Some((0, 0, false)));
        cap.ip4(
            DNS,
            CLIENT,
            17,
            64,
            &ts::udp(v4(DNS), v4(CLIENT), 53, 30000 + i, &r),
        );
    }
    let a = analyze(&cap);
    let r = rules(&a);
    for want in [
        "tcp.rst_storm",
        "arp.storm",
        "arp.gratuitous_rate",
        "dns.tunnel_suspect",
    ] {
        assert!(r.contains(&want), "{want} missing from {r:?}");
    }
    let storm = a
        .findings
        .iter()
        .find(|f| f.rule == "tcp.rst_storm")
        .expect("storm");
    assert!(
        storm.hosts[0].starts_with("198.18.201.2 sent 150 RST"),
        "{:?}",
        storm.hosts
    );
    assert_eq!(a.tcp.count_outcome(Outcome::RefusedRst), 150);
    assert!(a.arp.peak_pps >= 100);
}
