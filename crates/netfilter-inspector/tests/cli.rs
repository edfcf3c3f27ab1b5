//! CLI behaviour: artifacts, exit codes (0, 1, 2, 4), JSON output.

use assert_cmd::Command;
use predicates::prelude::*;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("netfilter-inspector").unwrap();
    c.env_remove("AUDIT_DIR");
    c
}

#[test]
fn help_has_examples() {
    cmd()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"));
    cmd()
        .args(["check", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--direction in"));
}

#[test]
fn snapshot_writes_artifact_and_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let out = cmd()
        .args([
            "snapshot",
            "--json",
            "--session-id",
            "fw_test1",
            "--host",
            "dest-vm",
            "--audit-dir",
        ])
        .arg(dir.path())
        .args(["--from-file", &fixture("iptables_docker_f2b.txt")])
        .args(["--from-file", &fixture("tc_qdisc_show.txt")])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["schema_version"], "1");
    assert_eq!(v["tool"], "netfilter-inspector");
    assert_eq!(v["session_id"], "fw_test1");
    assert_eq!(v["host"], "dest-vm");
    let fw: Vec<String> = serde_json::from_value(v["frameworks"].clone()).unwrap();
    for f in ["iptables-nft", "docker", "fail2ban", "tc"] {
        assert!(fw.contains(&f.to_string()), "{fw:?}");
    }
    assert_eq!(v["summary"]["families"]["ip"]["chains"], 13);
    assert!(v["blocking_rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["chain"] == "f2b-sshd"));
    let art = dir.path().join("fw_test1_snapshot.json");
    assert!(art.exists());
    let side = std::fs::read_to_string(dir.path().join("fw_test1_snapshot.json.sha256")).unwrap();
    assert!(side.ends_with("  fw_test1_snapshot.json\n"));
}

fn baseline(dir: &std::path::Path, file: &str) {
    cmd()
        .args([
            "snapshot",
            "--is-baseline",
            "--session-id",
            "fw_base",
            "--audit-dir",
        ])
        .arg(dir)
        .args(["--from-file", &fixture(file)])
        .assert()
        .success();
    assert!(dir.join("fw_base_baseline.json").exists());
}

#[test]
fn compare_clean_drift_and_tampered() {
    let dir = tempfile::tempdir().unwrap();
    baseline(dir.path(), "iptables_docker_f2b.txt");
    // same content (counters only) -> 0
    cmd()
        .args([
            "compare",
            "--compare-baseline",
            "fw_base",
            "--session-id",
            "fw_same",
            "--audit-dir",
        ])
        .arg(dir.path())
        .args(["--from-file", &fixture("iptables_docker_f2b_counters.txt")])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("drift_detected: false"));
    // different -> 1, JSON document
    let out = cmd()
        .args([
            "compare",
            "--json",
            "--compare-baseline",
            "fw_base",
            "--session-id",
            "fw_new",
            "--audit-dir",
        ])
        .arg(dir.path())
        .args(["--from-file", &fixture("iptables_cis.txt")])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["drift_detected"], true);
    assert_eq!(v["has_critical_changes"], true);
    assert!(dir.path().join("fw_new_diff.json").exists());
    // tamper with the baseline -> 4, naming the file
    let p = dir.path().join("fw_base_baseline.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("DROP", "ACCEPT");
    std::fs::write(&p, text).unwrap();
    cmd()
        .args([
            "compare",
            "--compare-baseline",
            "fw_base",
            "--session-id",
            "fw_x",
            "--audit-dir",
        ])
        .arg(dir.path())
        .args(["--from-file", &fixture("iptables_docker_f2b.txt")])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("fw_base_baseline.json"))
        .stderr(predicate::str::contains("integrity"));
}

#[test]
fn diff_raw_files_and_artifacts() {
    cmd()
        .args([
            "diff",
            &fixture("iptables_scenario_j.txt"),
            &fixture("iptables_scenario_j.txt"),
        ])
        .assert()
        .code(0);
    cmd()
        .args([
            "diff",
            &fixture("iptables_docker_f2b.txt"),
            &fixture("iptables_scenario_j.txt"),
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("CRITICAL"));
    let dir = tempfile::tempdir().unwrap();
    baseline(dir.path(), "iptables_docker_f2b.txt");
    let art = dir.path().join("fw_base_baseline.json");
    cmd()
        .arg("diff")
        .arg(&art)
        .arg(fixture("iptables_docker_f2b_counters.txt"))
        .assert()
        .code(0);
    cmd()
        .args([
            "diff",
            "fw_base",
            &fixture("iptables_cis.txt"),
            "--audit-dir",
        ])
        .arg(dir.path())
        .assert()
        .code(1);
    cmd()
        .args(["diff", "fw_nope", "fw_base", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("fw_nope"));
}

#[test]
fn check_verdicts_and_exit_codes() {
    cmd()
        .args([
            "check",
            "--port",
            "5001",
            "--proto",
            "tcp",
            "--direction",
            "in",
        ])
        .args(["--from-file", &fixture("iptables_scenario_j.txt")])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("DROP"))
        .stdout(predicate::str::contains("INPUT #1"));
    cmd()
        .args([
            "check",
            "--port",
            "22",
            "--proto",
            "tcp",
            "--direction",
            "in",
        ])
        .args(["--from-file", &fixture("iptables_scenario_j.txt")])
        .assert()
        .code(0);
    let out = cmd()
        .args([
            "check",
            "--json",
            "--port",
            "22",
            "--proto",
            "tcp",
            "--direction",
            "in",
            "--src",
            "198.18.1.66",
        ])
        .args(["--from-file", &fixture("iptables_docker_f2b.txt")])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["verdict"], "REJECT");
    assert_eq!(v["deciding_rule"]["chain"], "f2b-sshd");
    let dir = tempfile::tempdir().unwrap();
    baseline(dir.path(), "iptables_scenario_j.txt");
    cmd()
        .args([
            "check",
            "--port",
            "5001",
            "--proto",
            "tcp",
            "--direction",
            "in",
            "--snapshot",
            "fw_base",
            "--audit-dir",
        ])
        .arg(dir.path())
        .assert()
        .code(1);
}

#[test]
fn usage_errors_exit_2() {
    cmd().args(["check", "--port", "5001"]).assert().code(2);
    cmd()
        .args([
            "check",
            "--port",
            "5001",
            "--proto",
            "tcp",
            "--direction",
            "in",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--from-file"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "hello\n").unwrap();
    cmd()
        .args(["snapshot", "--audit-dir"])
        .arg(dir.path())
        .arg("--from-file")
        .arg(&junk)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--format"));
    cmd()
        .args([
            "snapshot",
            "--session-id",
            "../evil",
            "--from-file",
            &fixture("iptables_cis.txt"),
            "--audit-dir",
        ])
        .arg(dir.path())
        .assert()
        .code(2);
    cmd()
        .args(["snapshot", "--audit-dir"])
        .arg(dir.path())
        .args(["--from-file", "/nonexistent/file"])
        .assert()
        .code(3);
}

/// Live retrieval through the safety-shell gate, in a namespace this test creates.
#[test]
fn live_snapshot_and_check_in_a_namespace() {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let have = |t: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if !root || !have("ip") || !have("iptables") {
        println!(
            "live retrieval test skipped: needs root, iproute2 and iptables (scripts/setup.sh)"
        );
        return;
    }
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    let ns = Ns(format!("nfi{}-live", std::process::id()));
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()
        .unwrap()
        .success());
    assert!(std::process::Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "5001",
            "-j", "DROP"
        ])
        .status()
        .unwrap()
        .success());
    let dir = tempfile::tempdir().unwrap();
    let out = cmd()
        .args([
            "snapshot",
            "--json",
            "--provider",
            "netns",
            "--netns",
            &ns.0,
            "--session-id",
            "fw_live",
            "--audit-dir",
        ])
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["host"], format!("netns:{}", ns.0));
    assert_eq!(
        v["blocking_rules"][0]["matches"],
        "-p tcp -m tcp --dport 5001 -j DROP"
    );
    // the gate wrote its audit log beside the artifacts
    assert!(std::fs::read_dir(dir.path()).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with("_audit.jsonl")));
    cmd()
        .args([
            "check",
            "--provider",
            "netns",
            "--netns",
            &ns.0,
            "--port",
            "5001",
            "--proto",
            "tcp",
            "--direction",
            "in",
            "--audit-dir",
        ])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("DROP"));
    cmd()
        .args(["snapshot", "--provider", "netns", "--audit-dir"])
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--netns"));
}

#[test]
fn remote_provider_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            &["snapshot", "--provider", "azure"][..],
            "--provider azure needs --vm-name",
        ),
        (&["snapshot", "--provider", "ssh"][..], "--host ADDRESS"),
        (
            &["snapshot", "--provider", "local", "--vm-name", "dest-vm"][..],
            "--vm-name goes with --provider ssh or azure",
        ),
        (
            &[
                "snapshot",
                "--provider",
                "ssh",
                "--netns",
                "x",
                "--vm-name",
                "v",
            ][..],
            "--netns goes with --provider netns",
        ),
    ] {
        cmd()
            .args(args)
            .arg("--audit-dir")
            .arg(dir.path())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle));
    }
    // A VM the configuration does not name is refused before anything runs.
    let cfg = dir.path().join("config.env");
    std::fs::write(
        &cfg,
        "DEST_VM_NAME=dest-vm\nDEST_VM_PRIVATE_IP=198.18.1.5\nSSH_USER=root\n",
    )
    .unwrap();
    cmd()
        .arg("--config")
        .arg(&cfg)
        .args(["snapshot", "--provider", "ssh", "--vm-name", "other-vm"])
        .arg("--audit-dir")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "neither SOURCE_VM_NAME nor DEST_VM_NAME",
        ));
}
