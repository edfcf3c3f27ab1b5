//! Exact scenarios built with the crate's pcap writer (shared by the test binaries).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pcap_forensics::analysis::{analyze_reader, Analysis, AnalysisOptions};
use pcap_forensics::testsupport::{self as ts, Capture, TcpConv};

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 2);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 201, 2);
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 200, 1);
pub const DNS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 53);

pub fn v4(a: Ipv4Addr) -> IpAddr {
    IpAddr::V4(a)
}

pub fn analyze_bytes(bytes: &[u8], name: &str) -> Analysis {
    analyze_reader(bytes, name, &AnalysisOptions::default(), None).expect("capture parses")
}

pub fn analyze(cap: &Capture) -> Analysis {
    analyze_bytes(&cap.to_pcap(1), "test.pcap")
}

pub fn rules(a: &Analysis) -> Vec<&'static str> {
    a.findings.iter().map(|f| f.rule).collect()
}

/// 20 data segments, 5 of them retransmitted after a timeout (200 ms later).
pub fn retrans_burst() -> Capture {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(v4(CLIENT), 40000, v4(SERVER), 8080);
    t.handshake(&mut cap, 1.0);
    let mut seqs = Vec::new();
    for _ in 0..20 {
        seqs.push(t.cseq);
        t.send_c(&mut cap, 1000);
        cap.wait_ms(0.1);
    }
    cap.wait_ms(200.0);
    for &s in seqs.iter().skip(10).take(5) {
        t.resend_c(&mut cap, s, 1000);
        cap.wait_ms(50.0);
    }
    t.ack_s(&mut cap, t.cseq);
    t.close(&mut cap);
    cap
}

/// Three connection attempts to port 5001, each a SYN sent three times, never answered.
pub fn syn_unanswered() -> Capture {
    let mut cap = Capture::new();
    for k in 0..3u16 {
        let mut t = TcpConv::new(v4(CLIENT), 41000 + k, v4(SERVER), 5001);
        for _ in 0..3 {
            t.syn(&mut cap);
            cap.wait_ms(1000.0);
        }
    }
    cap
}

/// Two attempts to port 9 refused by RST.
pub fn rst_refused() -> Capture {
    let mut cap = Capture::new();
    for k in 0..2u16 {
        let mut t = TcpConv::new(v4(CLIENT), 42000 + k, v4(SERVER), 9);
        t.syn(&mut cap);
        cap.wait_ms(0.3);
        t.rst_s(&mut cap);
        cap.wait_ms(10.0);
    }
    cap
}

/// One attempt to port 7000 refused by ICMP port unreachable quoting the SYN.
pub fn icmp_refused() -> Capture {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(v4(CLIENT), 43000, v4(SERVER), 7000);
    t.syn(&mut cap);
    let syn_ip = ts::ipv4(
        CLIENT,
        SERVER,
        6,
        64,
        &ts::tcp(
            v4(CLIENT),
            v4(SERVER),
            43000,
            7000,
            t.cseq,
            0,
            0x02,
            512,
            &ts::SYN_OPTS,
            &[],
        ),
    );
    cap.wait_ms(0.3);
    let m = ts::icmp(3, 3, [0; 4], &ts::quote_v4(&syn_ip), None);
    cap.ip4(SERVER, CLIENT, 1, 64, &m);
    cap
}

/// Six segments; the second is lost on the way, the receiver sends three duplicate ACKs,
/// the sender fast-retransmits; then the receiver advertises a zero window twice.
pub fn dupack_fast_zero_window() -> Capture {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(v4(CLIENT), 44000, v4(SERVER), 8080);
    t.handshake(&mut cap, 1.0);
    let s1 = t.cseq;
    let mut seqs = Vec::new();
    for _ in 0..6 {
        seqs.push(t.cseq);
        t.send_c(&mut cap, 500);
        cap.wait_ms(0.05);
    }
    cap.wait_ms(0.5);
    t.ack_s(&mut cap, s1 + 500);
    for _ in 0..3 {
        cap.wait_ms(0.1);
        t.ack_s(&mut cap, s1 + 500);
    }
    cap.wait_ms(1.0);
    t.resend_c(&mut cap, seqs[1], 500);
    cap.wait_ms(0.5);
    t.ack_s(&mut cap, t.cseq);
    cap.wait_ms(0.5);
    t.window_s(&mut cap, 0);
    cap.wait_ms(100.0);
    t.window_s(&mut cap, 0);
    cap.wait_ms(100.0);
    t.window_s(&mut cap, 512);
    t.close(&mut cap);
    cap
}

fn dns_pair(
    cap: &mut Capture,
    id: u16,
    name: &str,
    qtype: u16,
    resp: Option<(u8, u16, bool)>,
    lat_ms: f64,
) {
    let q = ts::dns(id, name, qtype, None);
    let port = 50000 + (id % 1000);
    cap.ip4(
        CLIENT,
        DNS,
        17,
        64,
        &ts::udp(v4(CLIENT), v4(DNS), port, 53, &q),
    );
    if let Some(r) = resp {
        cap.wait_ms(lat_ms);
        let m = ts::dns(id, name, qtype, Some(r));
        cap.ip4(
            DNS,
            CLIENT,
            17,
            64,
            &ts::udp(v4(DNS), v4(CLIENT), 53, port, &m),
        );
    }
    cap.wait_ms(1.0);
}

pub const DGA_NAMES: [&str; 5] = [
    "xk2j9qpl7vbz4m.example.net",
    "q8zt1mw0rx5kbn3.example.net",
    "mv7c2p9xq4jz8rt.example.net",
    "b3n8xk1qz7wv5pd.example.net",
    "zt4r9xq2mk7vjc1.example.net",
];

/// Normal answers, an NXDOMAIN flood (15), DGA-like names, 2 unanswered, 1 SERVFAIL,
/// 1 slow (800 ms), 1 truncated answer.
pub fn dns_mix() -> Capture {
    let mut cap = Capture::new();
    let mut id = 1u16;
    for i in 0..10 {
        dns_pair(
            &mut cap,
            id,
            &format!("www{i}.example.com"),
            1,
            Some((0, 1, false)),
            2.0,
        );
        id += 1;
    }
    for i in 0..15 {
        dns_pair(
            &mut cap,
            id,
            &format!("missing{i}.corp.example"),
            1,
            Some((3, 0, false)),
            3.0,
        );
        id += 1;
    }
    for n in DGA_NAMES {
        dns_pair(&mut cap, id, n, 1, Some((3, 0, false)), 3.0);
        id += 1;
    }
    dns_pair(&mut cap, id, "lost1.example.com", 1, None, 0.0);
    id += 1;
    dns_pair(&mut cap, id, "lost2.example.com", 28, None, 0.0);
    id += 1;
    dns_pair(
        &mut cap,
        id,
        "broken.example.org",
        1,
        Some((2, 0, false)),
        5.0,
    );
    id += 1;
    dns_pair(
        &mut cap,
        id,
        "slow.example.org",
        1,
        Some((0, 1, false)),
        800.0,
    );
    id += 1;
    dns_pair(&mut cap, id, "big.example.org", 16, Some((0, 0, true)), 4.0);
    cap
}

/// A bulk transfer towards SERVER; ROUTER says "fragmentation needed, MTU 1400" and the
/// 1448-byte segments keep being retransmitted (a PMTUD black hole).
pub fn pmtud_black_hole() -> Capture {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(v4(CLIENT), 45000, v4(SERVER), 5001);
    t.handshake(&mut cap, 1.0);
    let seq = t.cseq;
    t.send_c(&mut cap, 1448);
    let big = ts::ipv4(
        CLIENT,
        SERVER,
        6,
        63,
        &ts::tcp(
            v4(CLIENT),
            v4(SERVER),
            45000,
            5001,
            seq,
            t.sseq,
            0x18,
            512,
            &[],
            &[0x61; 1448],
        ),
    );
    cap.wait_ms(0.2);
    let m = ts::icmp(3, 4, [0, 0, 0x05, 0x78], &ts::quote_v4(&big), None);
    cap.ip4(ROUTER, CLIENT, 1, 64, &m);
    let mut wait = 200.0;
    for _ in 0..4 {
        cap.wait_ms(wait);
        t.resend_c(&mut cap, seq, 1448);
        cap.wait_ms(0.2);
        cap.ip4(ROUTER, CLIENT, 1, 64, &m);
        wait *= 2.0;
    }
    cap
}

/// TTL exceeded for ordinary TCP traffic from two routers (a loop), plus a traceroute.
pub fn ttl_loop_and_traceroute() -> Capture {
    let mut cap = Capture::new();
    let target = Ipv4Addr::new(198, 18, 50, 9);
    let r1 = Ipv4Addr::new(198, 18, 60, 1);
    let r2 = Ipv4Addr::new(198, 18, 60, 2);
    for i in 0..4u32 {
        let syn = ts::ipv4(
            CLIENT,
            target,
            6,
            1,
            &ts::tcp(
                v4(CLIENT),
                v4(target),
                46000,
                443,
                7777 + i,
                0,
                0x02,
                512,
                &[],
                &[],
            ),
        );
        cap.wait_ms(1.0);
        let m = ts::icmp(11, 0, [0; 4], &ts::quote_v4(&syn), None);
        cap.ip4(if i % 2 == 0 { r1 } else { r2 }, CLIENT, 1, 64, &m);
    }
    let dst = Ipv4Addr::new(198, 18, 70, 7);
    for ttl in 1..=3u8 {
        let probe = ts::ipv4(
            CLIENT,
            dst,
            17,
            ttl,
            &ts::udp(v4(CLIENT), v4(dst), 33000, 33433 + u16::from(ttl), &[0; 8]),
        );
        let m = ts::icmp(11, 0, [0; 4], &ts::quote_v4(&probe), None);
        cap.wait_ms(1.0);
        cap.ip4(Ipv4Addr::new(198, 18, 61, ttl), CLIENT, 1, 64, &m);
    }
    cap
}

/// 198.18.200.10 claimed by two MACs (conflict); 198.18.200.1 by a VRRP MAC and a real one.
pub fn arp_conflict_and_vrrp() -> Capture {
    let mut cap = Capture::new();
    let ip = Ipv4Addr::new(198, 18, 200, 10);
    let m1 = [0x02, 0, 0, 0, 0, 0x10];
    let m2 = [0x02, 0, 0, 0, 0, 0x20];
    for m in [m1, m2, m1] {
        let a = ts::arp(2, m, ip, [0x02, 0, 0, 0, 0, 1], CLIENT);
        cap.push(ts::ethernet([0x02, 0, 0, 0, 0, 1], m, 0x0806, &a));
        cap.wait_ms(10.0);
    }
    let vip = ROUTER;
    let vmac = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x07];
    let real = [0x02, 0, 0, 0, 0, 0x77];
    for m in [vmac, real] {
        let a = ts::arp(1, m, vip, [0; 6], vip);
        cap.push(ts::ethernet([0xff; 6], m, 0x0806, &a));
        cap.wait_ms(10.0);
    }
    cap
}

/// Three unanswered ARP requests for .99 and an ICMP host unreachable for it.
pub fn host_down() -> Capture {
    let mut cap = Capture::new();
    let dead = Ipv4Addr::new(198, 18, 200, 99);
    for _ in 0..3 {
        let a = ts::arp(1, ts::mac_of(v4(ROUTER)), ROUTER, [0; 6], dead);
        cap.push(ts::ethernet([0xff; 6], ts::mac_of(v4(ROUTER)), 0x0806, &a));
        cap.wait_ms(1000.0);
    }
    let orig = ts::ipv4(
        CLIENT,
        dead,
        17,
        63,
        &ts::udp(v4(CLIENT), v4(dead), 40000, 161, &[0; 4]),
    );
    let m = ts::icmp(3, 1, [0; 4], &ts::quote_v4(&orig), None);
    cap.ip4(ROUTER, CLIENT, 1, 64, &m);
    cap
}

pub const C6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const S6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 2);

/// IPv6: a TCP connection with a retransmission, ICMPv6 packet-too-big, and a neighbour
/// solicitation/advertisement pair.
pub fn ipv6_mix() -> Capture {
    let mut cap = Capture::new();
    let mut t = TcpConv::new(IpAddr::V6(C6), 47000, IpAddr::V6(S6), 443);
    t.handshake(&mut cap, 1.0);
    let s = t.cseq;
    t.send_c(&mut cap, 1200);
    cap.wait_ms(300.0);
    t.resend_c(&mut cap, s, 1200);
    t.ack_s(&mut cap, t.cseq);
    let orig = ts::ipv6(
        C6,
        S6,
        6,
        64,
        &ts::tcp(
            IpAddr::V6(C6),
            IpAddr::V6(S6),
            47000,
            443,
            s,
            0,
            0x18,
            512,
            &[],
            &[0; 40],
        ),
    );
    let router = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    let ptb = ts::icmp(2, 0, 1280u32.to_be_bytes(), &orig, Some((router, C6)));
    cap.ip6(router, C6, 58, &ptb);
    let mut ns_body = S6.octets().to_vec();
    ns_body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 2]);
    let ns = ts::icmp(135, 0, [0; 4], &ns_body, Some((C6, S6)));
    cap.ip6(C6, S6, 58, &ns);
    let mut na_body = S6.octets().to_vec();
    na_body.extend_from_slice(&[2, 1, 2, 0, 0, 1, 0, 2]);
    let na = ts::icmp(136, 0, [0x60, 0, 0, 0], &na_body, Some((S6, C6)));
    cap.ip6(S6, C6, 58, &na);
    cap
}
