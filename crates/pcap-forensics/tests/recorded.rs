//! Real captures recorded between namespaces by `tests/fixtures/record.sh`.

use std::path::PathBuf;

use pcap_forensics::analysis::tcp::Outcome;
use pcap_forensics::analysis::{analyze_file, Analysis, AnalysisOptions};
use pcap_forensics::Severity;

fn load(name: &str) -> Analysis {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    analyze_file(&p, &AnalysisOptions::default(), None).expect("fixture parses")
}

#[test]
fn random_loss_shows_retransmissions() {
    let a = load("loss.pcap");
    // Counts checked against tshark in tests/oracle.rs; here the finding.
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "tcp.retransmissions")
        .expect("finding");
    assert!(f.severity >= Severity::Medium);
    assert!(f.flows[0].contains("198.18.200.1"), "{:?}", f.flows);
    assert!(a.tcp.sum(|c| c.fast_retransmissions) > 0);
    assert!(a.warnings.is_empty());
}

#[test]
fn iptables_drop_leaves_syns_unanswered() {
    let a = load("drop.pcap");
    assert_eq!(a.tcp.conns.len(), 1);
    assert_eq!(a.tcp.conns[0].outcome(), Outcome::SynUnanswered);
    assert!(a.tcp.conns[0].syn_packets >= 2);
    let f = &a.findings[0];
    assert_eq!(f.rule, "xproto.filtered_port");
    assert_eq!(f.severity, Severity::High);
    assert!(f.title.contains("198.18.200.2:5002"));
}

#[test]
fn reject_with_tcp_reset_and_icmp() {
    let a = load("reject_rst.pcap");
    assert_eq!(a.tcp.conns[0].outcome(), Outcome::RefusedRst);
    assert!(a.findings[0].title.contains("refused with RST"));
    let a = load("reject_icmp.pcap");
    assert_eq!(a.tcp.conns[0].outcome(), Outcome::RefusedIcmp);
    assert_eq!(a.icmp.unreachables[0].dport, Some(5004));
    assert!(a.findings[0].title.contains("ICMP unreachable"));
}

#[test]
fn mtu_mismatch_shows_frag_needed_with_mtu() {
    let a = load("mtu.pcap");
    assert!(!a.icmp.mtu.is_empty());
    assert_eq!(a.icmp.mtu[0].mtu, 1500);
    assert_eq!(a.icmp.mtu[0].reporter.to_string(), "198.18.201.2");
    // The sender honoured PMTUD (retransmitted smaller segments): not a black hole.
    assert!(a.findings.iter().any(|f| f.rule == "icmp.frag_needed"));
    assert!(!a
        .findings
        .iter()
        .any(|f| f.rule == "xproto.pmtud_black_hole"));
}
