//! CLI behaviour: exit codes, --json, artifacts with sidecars, reference-style invocation.

mod support;

use assert_cmd::Command;
use predicates::prelude::*;
use support::*;

fn bin() -> Command {
    let mut c = Command::cargo_bin("pcap-forensics").expect("binary");
    c.env("SOURCE_DATE_EPOCH", "1767225600")
        .env("NO_COLOR", "1");
    for k in ["LLM_PROVIDER", "LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL"] {
        c.env_remove(k);
    }
    c
}

#[test]
fn analyze_writes_artifacts_and_exits_1_on_findings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("retrans.pcap");
    std::fs::write(&cap, retrans_burst().to_pcap(1)).expect("write");
    let out = dir.path().join("out");
    bin()
        .args(["analyze"])
        .arg(&cap)
        .arg("--semantic-dir")
        .arg(&out)
        .arg("--report-dir")
        .arg(&out)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("retransmissions").and(predicate::str::contains("F001")));
    let sem = out.join("retrans_semantic.json");
    let rep = out.join("retrans_forensic_report.md");
    assert!(sem.exists() && rep.exists());
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sem).expect("read")).expect("json");
    assert_eq!(v["session_id"], "pcap_20260101T000000Z");
    assert_eq!(v["tool"], "pcap-forensics");
    let md = std::fs::read_to_string(&rep).expect("report");
    assert!(md.contains("Narrative: not requested."));
    assert!(md.contains("## Findings (ranked)"));
    // Sidecar verifies; tampering is an integrity failure (exit 4).
    bin().arg("verify").arg(&sem).assert().code(0);
    std::fs::write(&sem, b"{}").expect("tamper");
    bin().arg("verify").arg(&sem).assert().code(4);
}

#[test]
fn json_mode_prints_only_json_and_clean_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("clean.pcapng");
    let mut c = pcap_forensics::testsupport::Capture::new();
    let mut t = pcap_forensics::testsupport::TcpConv::new(v4(CLIENT), 40000, v4(SERVER), 443);
    t.handshake(&mut c, 1.0);
    t.send_c(&mut c, 100);
    t.ack_s(&mut c, t.cseq);
    t.close(&mut c);
    std::fs::write(&cap, c.to_pcapng(1)).expect("write");
    let out = bin()
        .current_dir(dir.path())
        .args(["analyze", "--json", "clean.pcapng"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    assert_eq!(v["capture_summary"]["total_packets"], 8);
    assert_eq!(v["tcp"]["connection_stats"]["handshakes_completed"], 1);
    assert!(dir.path().join("audit/clean_semantic.json").exists());
}

#[test]
fn reference_style_invocation_and_compare() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.pcap");
    let b = dir.path().join("b.pcap");
    std::fs::write(&a, syn_unanswered().to_pcap(1)).expect("write");
    // B saw nothing of A's flows: an empty capture with one unrelated ARP.
    let mut cb = pcap_forensics::testsupport::Capture::new();
    cb.push(pcap_forensics::testsupport::ethernet(
        [0xff; 6],
        [2; 6],
        0x0806,
        &pcap_forensics::testsupport::arp(1, [2; 6], CLIENT, [0; 6], SERVER),
    ));
    std::fs::write(&b, cb.to_pcap(1)).expect("write");
    bin().current_dir(dir.path()).arg("a.pcap").assert().code(1);
    let out = bin()
        .current_dir(dir.path())
        .args([
            "compare", "a.pcap", "b.pcap", "--mode", "endpoint", "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["flows_only_at_a_total"], 3);
    assert!(v["verdict"]
        .as_str()
        .expect("verdict")
        .starts_with("asymmetric"));
    assert!(dir.path().join("audit/a_vs_b_comparison.md").exists());
    bin()
        .current_dir(dir.path())
        .args(["a.pcap", "--compare", "a.pcap"])
        .assert()
        .code(0);
}

#[test]
fn usage_and_runtime_errors() {
    bin().assert().code(2);
    bin().args(["analyze"]).assert().code(2);
    bin()
        .args(["analyze", "--top", "0", "x.pcap"])
        .assert()
        .code(2);
    bin()
        .args(["analyze", "/nonexistent/file.pcap"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("cannot open"));
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture at all").expect("write");
    bin()
        .arg("analyze")
        .arg(&junk)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("neither pcap nor pcapng"));
}

/// `--config FILE` (cloud-provider's loader): AUDIT_DIR from the file, the environment over
/// the file, `--audit-dir` over both, `--semantic-dir`/`--report-dir` over everything.
#[cfg(feature = "config")]
#[test]
fn config_file_environment_and_flag_precedence() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.pcap"), syn_unanswered().to_pcap(1)).expect("write");
    std::fs::write(
        dir.path().join("c.env"),
        "# pcap-forensics reads AUDIT_DIR\nexport AUDIT_DIR=from-file\nLLM_MODEL=\"m\"\n",
    )
    .expect("config");
    let run = |extra: &[&str], env_audit: Option<&str>| {
        let mut c = bin();
        c.current_dir(dir.path())
            .env_remove("AUDIT_DIR")
            .args(["analyze", "a.pcap", "--config", "c.env"])
            .args(extra);
        if let Some(v) = env_audit {
            c.env("AUDIT_DIR", v);
        }
        c.assert().code(1);
    };
    run(&[], None);
    assert!(dir.path().join("from-file/a_semantic.json").exists());
    assert!(dir.path().join("from-file/a_forensic_report.md").exists());
    run(&[], Some("from-env"));
    assert!(dir.path().join("from-env/a_semantic.json").exists());
    run(&["--audit-dir", "from-flag"], Some("from-env"));
    assert!(dir.path().join("from-flag/a_forensic_report.md").exists());
    run(&["--semantic-dir", "sem"], Some("from-env"));
    assert!(dir.path().join("sem/a_semantic.json").exists());
    assert!(!dir.path().join("sem/a_forensic_report.md").exists());
    // compare writes into the audit directory too.
    bin()
        .current_dir(dir.path())
        .env_remove("AUDIT_DIR")
        .args(["compare", "a.pcap", "a.pcap", "--config", "c.env"])
        .assert()
        .code(0);
    assert!(dir.path().join("from-file/a_vs_a_comparison.json").exists());
}

#[cfg(feature = "config")]
#[test]
fn config_errors_are_usage_errors_and_unknown_keys_warn() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("a.pcap"), syn_unanswered().to_pcap(1)).expect("write");
    bin()
        .current_dir(dir.path())
        .args(["analyze", "a.pcap", "--config", "missing.env"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("cannot read config file missing.env")
                .and(predicate::str::contains("fix the --config file")),
        );
    std::fs::write(dir.path().join("bad.env"), "AUDIT_DIR=x\nnot a setting\n").expect("w");
    bin()
        .current_dir(dir.path())
        .args(["analyze", "a.pcap", "--config", "bad.env"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bad.env line 2:"));
    std::fs::write(dir.path().join("typo.env"), "AUDIT_DIRR=x\n").expect("w");
    bin()
        .current_dir(dir.path())
        .env_remove("AUDIT_DIR")
        .args(["analyze", "a.pcap", "--config", "typo.env"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("AUDIT_DIRR"));
    assert!(dir.path().join("audit/a_semantic.json").exists());
}

#[cfg(not(feature = "config"))]
#[test]
fn config_without_the_feature_is_a_usage_error() {
    bin()
        .args(["analyze", "a.pcap", "--config", "c.env"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`config` feature"));
}
