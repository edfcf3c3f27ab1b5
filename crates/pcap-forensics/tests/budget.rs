//! The semantic JSON stays within its stated budget however big the capture is.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use pcap_forensics::analysis::AnalysisOptions;
use pcap_forensics::semantic::{semantic_json, Meta, BUDGET_BYTES};
use pcap_forensics::testsupport::{self as ts, Capture, TcpConv};
use support::*;

#[test]
fn semantic_json_is_bounded() {
    // Thousands of flows, each with a problem, many DNS names, ICMP and ARP oddities.
    let mut cap = Capture::new();
    for i in 0..1500u32 {
        let c = Ipv4Addr::new(198, 18, (i / 250) as u8 + 1, (i % 250) as u8 + 1);
        let s = Ipv4Addr::new(198, 19, (i % 7) as u8, (i % 200) as u8 + 1);
        let mut t = TcpConv::new(
            IpAddr::V4(c),
            30000 + (i % 1000) as u16,
            IpAddr::V4(s),
            5000 + (i % 300) as u16,
        );
        if i % 3 == 0 {
            t.syn(&mut cap);
        } else {
            t.handshake(&mut cap, 0.5);
            let seq = t.cseq;
            t.send_c(&mut cap, 500);
            cap.wait_ms(300.0);
            t.resend_c(&mut cap, seq, 500);
            t.rst_s(&mut cap);
        }
        let name = format!("{}x{}q{}z.example{}.net", i * 7919, i * 104_729, i, i % 50);
        let q = ts::dns(i as u16, &name, 1, None);
        cap.ip4(
            c,
            DNS,
            17,
            64,
            &ts::udp(IpAddr::V4(c), IpAddr::V4(DNS), 53000, 53, &q),
        );
        let r = ts::dns(i as u16, &name, 1, Some((3, 0, false)));
        cap.ip4(
            DNS,
            c,
            17,
            64,
            &ts::udp(IpAddr::V4(DNS), IpAddr::V4(c), 53, 53000, &r),
        );
        let a = ts::arp(
            2,
            [2, 0, 0, 0, (i >> 8) as u8, i as u8],
            Ipv4Addr::new(198, 18, 99, (i % 20) as u8),
            [0; 6],
            c,
        );
        cap.push(ts::ethernet([0xff; 6], [2; 6], 0x0806, &a));
        cap.wait_ms(1.0);
    }
    let a = analyze(&cap);
    let opts = AnalysisOptions::default();
    let j = semantic_json(
        &a,
        &opts,
        &Meta::at(chrono::DateTime::from_timestamp(0, 0).expect("t")),
    );
    let text = serde_json::to_string_pretty(&j).expect("json");
    if let Ok(p) = std::env::var("PCAP_BUDGET_DUMP") {
        std::fs::write(p, &text).expect("dump");
    }
    assert!(a.tcp.conns.len() >= 1500);
    assert!(
        text.len() < BUDGET_BYTES,
        "semantic JSON is {} bytes, budget {BUDGET_BYTES}",
        text.len()
    );
    assert_eq!(j["tcp"]["top_flows"].as_array().expect("list").len(), 10);
    assert!(j["tcp"]["top_flows_omitted"].as_u64().expect("n") >= 1490);
    assert!(j["findings"].as_array().expect("list").len() <= 30);
}
