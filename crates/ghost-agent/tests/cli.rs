//! The `ghost-agent` command line without a lab: help, usage errors (exit 2), sessions,
//! and `report` on a session produced by the library (exit 1 for a root cause, 4 for a
//! tampered state file).

mod offline;

use assert_cmd::Command;
use ghost_agent::engine::Engine;
use ghost_agent::playbook::{self, PlaybookOptions, PlaybookOutcome};
use offline::*;
use predicates::str::contains;
use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::cargo_bin("ghost-agent").unwrap();
    c.env_remove("LLM_PROVIDER").env_remove("AUDIT_DIR");
    c
}

#[test]
fn help_shows_examples_and_exit_codes() {
    bin()
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("Examples:"))
        .stdout(contains("ghost-agent investigate --lab demo/use_case_k"))
        .stdout(contains("Exit codes"));
    bin()
        .arg("investigate")
        .arg("--help")
        .assert()
        .success()
        .stdout(contains("--approve-policy"));
}

#[test]
fn usage_errors_exit_2_with_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.env");
    std::fs::write(&cfg, "RESOURCE_GROUP=rg\n").unwrap();
    bin()
        .args(["investigate", "--approve", "never", "--config"])
        .arg(&cfg)
        .arg("--audit-dir")
        .arg(dir.path())
        .arg("dest-vm unreachable on 5001")
        .assert()
        .code(2)
        .stderr(contains("SOURCE_VM_NAME is not set"));
    bin()
        .args(["investigate", "--config", "/nonexistent/config.env", "x"])
        .assert()
        .code(2)
        .stderr(contains("does not exist"));
    bin()
        .args(["report", "ghost_nosuch", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(contains("no session ghost_nosuch"));
    bin()
        .args(["resume", "../escape", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(2);
    bin()
        .args(["investigate", "--brain", "nonsense", "x"])
        .assert()
        .code(2);
}

#[test]
fn sessions_and_report_of_a_library_session() {
    let dir = tempfile::tempdir().unwrap();
    bin()
        .args(["sessions", "--json", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(contains("\"sessions\": []"));
    let sid = "ghost_20261122T120000Z";
    let mut e = Engine::start(ctx(dir.path(), sid), k_symptom(), "playbook")
        .unwrap()
        .with_tools(scenario_k_tools());
    assert_eq!(
        playbook::run(&mut e, &PlaybookOptions::default()),
        PlaybookOutcome::Concluded
    );
    drop(e);
    let out = bin()
        .args(["report", sid, "--json", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["session_id"], sid);
    assert_eq!(report["root_causes"].as_array().unwrap().len(), 2);
    assert_eq!(report["root_causes"][0]["kind"], "iptables_drop");
    for f in ["ghost_report_", "ghost_audit_"] {
        let name = if f == "ghost_audit_" {
            format!("{f}{sid}.md")
        } else {
            format!("{f}{sid}.json")
        };
        assert!(dir.path().join(sid).join(&name).is_file(), "{name}");
        assert!(dir
            .path()
            .join(sid)
            .join(format!("{name}.sha256"))
            .is_file());
    }
    bin()
        .args(["sessions", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .success()
        .stdout(contains(sid))
        .stdout(contains("concluded"));
    // A state file changed after it was written is an integrity failure.
    let state = dir.path().join(sid).join(format!("{sid}_state.json"));
    let text =
        std::fs::read_to_string(&state)
            .unwrap()
            .replacen("iptables_drop", "iptables_dr0p", 1);
    std::fs::write(&state, text).unwrap();
    bin()
        .args(["report", sid, "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(4)
        .stderr(contains("changed after it was written"));
}
