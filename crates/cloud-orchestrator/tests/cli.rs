//! The binary's contract: help with examples, usage errors exit 2 before any az call, `list`.

use assert_cmd::Command;
use predicates::prelude::*;

fn cmd(dir: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("cloud-orchestrator").unwrap();
    for k in [
        "RESOURCE_GROUP",
        "STORAGE_ACCOUNT_NAME",
        "STORAGE_CONTAINER_NAME",
        "AUDIT_DIR",
        "LOCATION",
        "SUBSCRIPTION_ID",
    ] {
        c.env_remove(k);
    }
    // An az that must never be reached by these tests.
    c.env("AZ_PATH", dir.join("no-such-az"));
    c.arg("--audit-dir").arg(dir.join("audit"));
    c.write_stdin("");
    c
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let d = tempfile::tempdir().unwrap();
    cmd(d.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains(
            "capture --vm source-vm --to dest-vm",
        ))
        .stdout(predicate::str::contains("Exit codes"));
}

#[test]
fn missing_configuration_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    cmd(d.path())
        .args(["--approve", "never", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("RESOURCE_GROUP"));
}

#[test]
fn usage_errors_exit_2_before_azure_is_asked() {
    let d = tempfile::tempdir().unwrap();
    let base = [
        "--resource-group",
        "rg-ghost",
        "--storage-account",
        "capsa",
        "--approve",
        "never",
    ];
    cmd(d.path())
        .args(base)
        .args(["status", "../../etc/passwd"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid task id"));
    cmd(d.path())
        .args(base)
        .args(["status", "t20991231t000000z-none"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not in the registry"));
    cmd(d.path())
        .args(base)
        .args(["capture", "--vm", "dest-vm", "--filter", "port=80"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown filter key"));
    cmd(d.path())
        .args(base)
        .args(["capture", "--vm", "dest-vm", "--duration", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("1-18000"));
    // Without --approve and without a terminal, gated commands cannot be decided.
    cmd(d.path())
        .args(["--resource-group", "rg-ghost", "--storage-account", "capsa"])
        .args(["cancel", "t20991231t000000z-none"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--approve"));
}

#[test]
fn list_reads_the_registry_only() {
    let d = tempfile::tempdir().unwrap();
    let base = ["--resource-group", "rg-ghost", "--storage-account", "capsa"];
    cmd(d.path())
        .args(base)
        .arg("list")
        .assert()
        .success()
        .stdout(predicate::str::contains("no tasks"));
    let out = cmd(d.path())
        .args(base)
        .args(["--json", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["tool"], "cloud-orchestrator");
    assert_eq!(v["kind"], "tasks");
    assert!(v["session_id"].as_str().unwrap().starts_with("cap_"));
    assert_eq!(v["tasks"], serde_json::json!([]));
}
