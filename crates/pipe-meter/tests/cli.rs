//! CLI behaviour: validation errors name the flag and value (exit 2), help shows examples,
//! `--json` prints only the result artifact, an unreachable VM is a runtime failure (exit 3),
//! and `history` reads stored results.

use assert_cmd::Command;
use predicates::prelude::*;

fn cmd() -> Command {
    let mut c = Command::cargo_bin("pipe-meter").unwrap();
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

#[test]
fn help_has_examples() {
    cmd()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("--compare-baseline"))
        .stdout(predicate::str::contains("--no-is-baseline"));
}

#[test]
fn bad_values_name_flag_and_value() {
    let base = [
        "--source-ip",
        "198.18.1.4",
        "--dest-ip",
        "198.18.1.5",
        "--approve",
        "never",
    ];
    for (flag, value) in [
        ("--iterations", "0"),
        ("--test-type", "speed"),
        ("--duration", "ten"),
        ("--streams", "999"),
        ("--warmup", "-1"),
        ("--session-id", "../etc"),
        ("--iperf-port", "70000"),
    ] {
        cmd()
            .args(base)
            .arg(format!("{flag}={value}"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(flag))
            .stderr(predicate::str::contains(format!("`{value}`")));
    }
    cmd()
        .args(["--source-ip", "198.18.1.4", "--approve", "never"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--dest-ip"));
    cmd()
        .args([
            "--source-ip",
            "not-an-ip",
            "--dest-ip",
            "198.18.1.5",
            "--approve",
            "never",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SOURCE_VM_PRIVATE_IP"));
}

#[test]
fn config_file_keys_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.env");
    std::fs::write(
        &cfg,
        "SOURCE_VM_PRIVATE_IP=198.18.1.4\nDEST_VM_PRIVATE_IP=198.18.1.5\nITERATIONS=0\n",
    )
    .unwrap();
    cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["--approve", "never"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--iterations (ITERATIONS)"));
}

#[test]
fn switch_keys_must_be_booleans() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.env");
    for key in [
        "OPEN_BLOCKED_PORTS",
        "KEEP_OPENED_RULES",
        "INSTALL_MISSING",
        "UPLOAD",
    ] {
        std::fs::write(
            &cfg,
            format!(
                "SOURCE_VM_PRIVATE_IP=198.18.1.4\nDEST_VM_PRIVATE_IP=198.18.1.5\n{key}=maybe\n"
            ),
        )
        .unwrap();
        cmd()
            .arg("--config")
            .arg(&cfg)
            .args(["--approve", "never", "--audit-dir"])
            .arg(dir.path().join("audit"))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(key));
    }
}

#[test]
fn unreachable_vm_is_exit_3_with_a_json_result() {
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, "").unwrap();
    // Loopback only: SSH to 127.0.0.1 fails (refused, or an unknown host key with an empty
    // known_hosts file and strict checking).
    let out = cmd()
        .args([
            "--source-ip",
            "198.18.1.4",
            "--dest-ip",
            "198.18.1.5",
            "--source-public-ip",
            "127.0.0.1",
            "--dest-public-ip",
            "127.0.0.1",
            "--approve",
            "never",
            "--json",
            "--audit-dir",
        ])
        .arg(dir.path().join("audit"))
        .env("SSH_KNOWN_HOSTS", &kh)
        .env("SSH_CONNECT_TIMEOUT", "3")
        .env("SSH_USER", "nobody-pipe-meter")
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).expect("stdout is one JSON document");
    assert_eq!(v["status"], "failed");
    assert!(v["error"].as_str().unwrap().contains("cannot reach"), "{v}");
    let sid = v["test_metadata"]["session_id"].as_str().unwrap();
    for kind in ["manifest", "preflight", "result"] {
        assert!(
            dir.path()
                .join("audit")
                .join(format!("{sid}_{kind}.json"))
                .exists(),
            "{kind}"
        );
    }
}

#[test]
fn history_of_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("trend.svg");
    cmd()
        .args([
            "history",
            "--source",
            "198.18.1.4",
            "--dest",
            "198.18.1.5",
            "--audit-dir",
        ])
        .arg(dir.path())
        .arg("--svg")
        .arg(&svg)
        .assert()
        .success()
        .stdout(predicate::str::contains("session"));
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}
