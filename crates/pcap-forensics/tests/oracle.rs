//! tshark as an oracle: on every test capture (the writer's scenarios and the recorded
//! fixtures), retransmission, duplicate-ACK, zero-window and DNS rcode counts agree with
//! tshark's own analysis.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pcap_forensics::analysis::{analyze_file, Analysis, AnalysisOptions};
use support::*;

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    retransmission: u64,
    duplicate_ack: u64,
    zero_window: u64,
    rcodes: BTreeMap<u8, u64>,
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn tshark_counts(path: &Path) -> Counts {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.analysis.retransmission",
            "-e",
            "tcp.analysis.duplicate_ack",
            "-e",
            "tcp.analysis.zero_window",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.flags.rcode",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = Counts::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        let has = |i: usize| f.get(i).is_some_and(|s| !s.is_empty());
        c.retransmission += u64::from(has(0));
        c.duplicate_ack += u64::from(has(1));
        c.zero_window += u64::from(has(2));
        if f.get(3)
            .is_some_and(|s| s.split(',').next() == Some("1") || s.starts_with("True"))
        {
            if let Some(r) = f
                .get(4)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.parse::<u8>().ok())
            {
                *c.rcodes.entry(r).or_default() += 1;
            }
        }
    }
    c
}

fn our_counts(a: &Analysis) -> Counts {
    let mut rcodes = BTreeMap::new();
    for (name, n) in &a.dns.state.rcodes {
        let code = match name.as_str() {
            "NOERROR" => 0,
            "FORMERR" => 1,
            "SERVFAIL" => 2,
            "NXDOMAIN" => 3,
            "NOTIMP" => 4,
            "REFUSED" => 5,
            other => other.trim_start_matches("RCODE").parse().unwrap_or(255),
        };
        rcodes.insert(code, *n);
    }
    Counts {
        retransmission: a.tcp.sum(|c| c.retransmissions),
        duplicate_ack: a.tcp.sum(|c| c.duplicate_acks),
        zero_window: a.tcp.sum(|c| c.zero_window),
        rcodes,
    }
}

fn check(path: &Path) {
    let a = analyze_file(path, &AnalysisOptions::default(), None).expect("analyse");
    let ours = our_counts(&a);
    let theirs = tshark_counts(path);
    assert_eq!(
        ours,
        theirs,
        "counts differ from tshark on {}",
        path.display()
    );
}

#[test]
fn counts_agree_with_tshark() {
    if !tshark_available() {
        eprintln!("skipping tshark oracle: tshark is not installed; run `sudo scripts/setup.sh` to enable it");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let scenarios = [
        ("retrans_burst", retrans_burst()),
        ("syn_unanswered", syn_unanswered()),
        ("rst_refused", rst_refused()),
        ("icmp_refused", icmp_refused()),
        ("dupack_fast_zero_window", dupack_fast_zero_window()),
        ("dns_mix", dns_mix()),
        ("pmtud_black_hole", pmtud_black_hole()),
        ("ipv6_mix", ipv6_mix()),
    ];
    for (name, cap) in scenarios {
        let p = dir.path().join(format!("{name}.pcap"));
        std::fs::write(&p, cap.to_pcap(1)).expect("write");
        check(&p);
        // pcapng too for the scenarios where the container matters least to tshark's cost.
        if matches!(name, "dns_mix" | "dupack_fast_zero_window" | "ipv6_mix") {
            let p = dir.path().join(format!("{name}.pcapng"));
            std::fs::write(&p, cap.to_pcapng(1)).expect("write");
            check(&p);
        }
    }
    // Recorded real captures (tests/fixtures/record.sh).
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(&fixtures) {
        let mut paths: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        {
            check(p);
            n += 1;
        }
    }
    eprintln!("tshark oracle: 11 generated captures and {n} recorded fixtures agree");
}
