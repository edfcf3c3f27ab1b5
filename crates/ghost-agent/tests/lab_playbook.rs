//! Lab test: the playbook investigates scenarios G, H, I, J, K and L end to end through
//! `ghost-agent eval` (netlab up → inject → investigate with the investigation approval
//! policy → score on structured fields → teardown) and every one must pass: every expected
//! cause named with evidence, no cause that is not there, the lab unchanged by the
//! investigation and removed afterwards. Needs root, the lab packages (`scripts/setup.sh`)
//! and the `netlab` binary; otherwise it prints one SKIP line.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn netlab_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETLAB_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("netlab");
    p.is_file().then_some(p)
}

fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("lab tests need root (sudo scripts/test.sh)".into());
    }
    for tool in [
        "ip",
        "nft",
        "iptables",
        "tc",
        "ssh",
        "ssh-keygen",
        "iperf",
        "qperf",
        "tcpdump",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("lab tests need `{tool}` (run scripts/setup.sh)"));
        }
    }
    if netlab_bin().is_none() {
        return Some(
            "the netlab binary is not built (cargo build -p netlab, or set NETLAB_BIN)".into(),
        );
    }
    None
}

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

#[test]
fn playbook_diagnoses_scenarios_g_to_l() {
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
            "G,H,I,J,K,L",
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
    assert_eq!(scenarios.len(), 6, "{card:#}");
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
            t.contains("inspect_os_layer"),
            "transcript of {id} lacks the OS layer:\n{t}"
        );
    }
    assert!(failed.is_empty(), "failed scenarios:\n{failed:#?}");
    assert_eq!(out.status.code(), Some(0));
    // Nothing of any eval lab is left.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter(|l| l.starts_with("nlga"))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
