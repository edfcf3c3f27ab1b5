//! `explain` and `--explain`: the no-key path (one sentence naming the keys; the subcommand
//! exits 2, a diff still completes with the explanation marked unavailable) and the
//! replayed path over real HTTP (cloud-provider's replay server answering a recorded
//! Anthropic Messages exchange whose request body is exactly what the prompt produces).

use assert_cmd::Command;
use cloud_provider::llm::replay::{Fixture, ReplayServer};
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("netfilter-inspector").unwrap();
    for k in [
        "AUDIT_DIR",
        "LLM_PROVIDER",
        "LLM_MODEL",
        "LLM_API_KEY",
        "LLM_BASE_URL",
    ] {
        c.env_remove(k);
    }
    c
}

#[test]
fn without_a_provider_explain_exits_2_and_a_diff_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().to_str().unwrap();
    cmd()
        .args(["snapshot", "--host", "labhost", "--session-id", "fw_nokey"])
        .args(["--audit-dir", audit, "--from-file"])
        .arg(fixture("iptables_scenario_j.txt"))
        .assert()
        .success();
    let out = cmd()
        .args(["explain", "fw_nokey", "--audit-dir", audit])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    for key in ["LLM_PROVIDER", "LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL"] {
        assert!(err.contains(key), "{err}");
    }
    // --explain-diff (reference spelling): the diff prints and exits 1 (drift); the
    // explanation is marked unavailable.
    let out = cmd()
        .args(["diff", "--explain-diff", "--json", "--audit-dir", audit])
        .arg(fixture("iptables_cis.txt"))
        .arg(fixture("iptables_scenario_j.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drift_detected"], true);
    assert_eq!(v["explanation"]["status"], "unavailable");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LLM_PROVIDER"));
    // Text mode says it too, and no explanation artifact was written.
    let out = cmd()
        .args(["diff", "--explain", "--audit-dir", audit])
        .arg(fixture("iptables_cis.txt"))
        .arg(fixture("iptables_scenario_j.txt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("drift_detected: true"), "{text}");
    assert!(text.contains("explanation: unavailable"), "{text}");
    assert!(!std::fs::read_dir(audit).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("explanation")));
}

#[test]
fn explain_replayed_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().to_str().unwrap();
    cmd()
        .args([
            "snapshot",
            "--host",
            "labhost",
            "--session-id",
            "fw_explain1",
        ])
        .args(["--audit-dir", audit, "--from-file"])
        .arg(fixture("iptables_scenario_j.txt"))
        .assert()
        .success();
    let fx = Fixture::load(std::path::Path::new(&fixture(
        "llm/anthropic_explain_snapshot.json",
    )))
    .unwrap();
    let server = ReplayServer::start(fx).unwrap();
    let out = cmd()
        .args(["explain", "fw_explain1", "--json", "--audit-dir", audit])
        .env("LLM_PROVIDER", "anthropic")
        .env("LLM_MODEL", "claude-test-model")
        .env("LLM_API_KEY", "test-key-0123")
        .env("LLM_BASE_URL", &server.base_url)
        .output()
        .unwrap();
    let recorded = server.verify();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    recorded.unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "explanation");
    assert_eq!(v["session_id"], "fw_explain1");
    assert_eq!(v["subject"], "snapshot");
    assert_eq!(v["provider"], "anthropic");
    assert_eq!(v["model"], "claude-test-model");
    assert!(v["text"].as_str().unwrap().starts_with("Port 5001"));
    let sha = v["input_sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    // The stored artifact (with its sidecar) is what was printed.
    let stored = std::fs::read_to_string(dir.path().join("fw_explain1_explanation.json")).unwrap();
    let s: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(s, v);
    assert!(dir
        .path()
        .join("fw_explain1_explanation.json.sha256")
        .is_file());
    // The digest is the same deterministic input's: the facts of the snapshot, recomputed.
    let bytes = std::fs::read(dir.path().join("fw_explain1_snapshot.json")).unwrap();
    let snap: netfilter_inspector::snapshot::Snapshot = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        netfilter_inspector::explain::ExplainInput::snapshot(&snap).sha256(),
        sha
    );
}
