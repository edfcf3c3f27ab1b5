//! Lab test: the playbook investigates the lab scenarios (A, B2, D, E, F, G-S, U, V) end to end through
//! `ghost-agent eval` (netlab up → inject → investigate with the investigation approval
//! policy → score on structured fields → teardown) and every one must pass: every expected
//! cause named with evidence, no cause that is not there, the lab unchanged by the
//! investigation and removed afterwards. Needs root, the lab packages (`scripts/setup.sh`)
//! and the `netlab` binary; otherwise it prints one SKIP line.

use std::process::Command;

use serde_json::Value;

mod lab;

/// Every scenario of demo/ (SCENARIOS.md A to V).
const SCENARIOS: &str = "all";

use lab::{demo, netlab_bin};

fn skip_reason() -> Option<String> {
    lab::skip_reason(&[
        "ip",
        "nft",
        "iptables",
        "tc",
        "ssh",
        "ssh-keygen",
        "iperf",
        "qperf",
        "tcpdump",
    ])
}

#[test]
fn playbook_diagnoses_the_lab_scenarios() {
    if let Some(why) = skip_reason() {
        println!("SKIP lab_playbook: {why}");
        return;
    }
    let audit = tempfile::tempdir().unwrap();
    let transcripts = audit.path().join("transcripts");
    let out = Command::new(env!("CARGO_BIN_EXE_ghost-agent"))
        .args([
            "eval",
            "--scenarios",
            SCENARIOS,
            "--keep-going",
            "--json",
            "-q",
        ])
        .arg("--demo-dir")
        .arg(demo())
        .arg("--audit-dir")
        .arg(audit.path())
        .arg("--transcripts")
        .arg(&transcripts)
        .env("NETLAB_BIN", netlab_bin().unwrap())
        .env_remove("LLM_PROVIDER")
        .output()
        .expect("run ghost-agent eval");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let card: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "eval did not print a JSON scorecard ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let scenarios = card["scenarios"].as_array().expect("scenarios");
    let scenario_dirs = std::fs::read_dir(demo())
        .expect("demo/")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("use_case_"))
        .count();
    assert!(scenario_dirs >= 23, "demo/ has {scenario_dirs} scenarios");
    assert_eq!(scenarios.len(), scenario_dirs, "{card:#}");
    let mut failed = Vec::new();
    for s in scenarios {
        println!(
            "{} passed={} found={} missing={} unexpected={} restored={} calls={} {:.1}s",
            s["id"],
            s["passed"],
            s["expected_found"],
            s["missing"],
            s["forbidden_found"],
            s["restored"],
            s["tool_calls"],
            s["seconds"].as_f64().unwrap_or(0.0)
        );
        if s["passed"] != Value::Bool(true) {
            failed.push(s.clone());
        }
        // The transcript exists and names the session's tool calls.
        let id = s["id"].as_str().unwrap().to_ascii_lowercase();
        let t = std::fs::read_to_string(transcripts.join(format!("{id}.md"))).unwrap_or_default();
        assert!(
            t.contains("complete_investigation") && t.contains("## Report"),
            "transcript of {id} is incomplete:\n{t}"
        );
    }
    assert!(failed.is_empty(), "failed scenarios:\n{failed:#?}");
    assert_eq!(out.status.code(), Some(0));
    // Nothing of this eval's labs is left. Other labs (a concurrent eval, or one a killed
    // run left behind) may exist: only the prefixes the scorecard names are this run's.
    let prefixes: Vec<String> = scenarios
        .iter()
        .map(|s| {
            let p = s["lab_prefix"]
                .as_str()
                .expect("lab_prefix in the scorecard");
            format!("nl{p}-")
        })
        .collect();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p.as_str())))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
