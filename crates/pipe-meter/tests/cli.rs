//! CLI behaviour: validation errors name the flag and value (exit 2), help shows examples,
//! `--json` prints only the result artifact, an unreachable VM is a runtime failure (exit 3),
//! and `history` reads stored results, locally and (through a fake `az` on `AZ_PATH`) from the
//! blob container: SAFE without an approver, a changed result exit 4, an unlistable
//! container exit 3.

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

/// A stand-in for `az storage blob list/download` over a directory (`$FAKE_BLOBS`): what the
/// CLI's `history` reads from the container, through the gate, with no approver.
const FAKE_AZ: &str = r#"#!/bin/sh
verb="$3"; name=""; file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --name) name="$2"; shift ;;
    --file) file="$2"; shift ;;
  esac
  shift
done
case "$verb" in
  list)
    if [ -e "$FAKE_BLOBS/.fail" ]; then echo "ERROR: This request is not authorized to perform this operation." >&2; exit 1; fi
    printf '['; sep=''
    for f in "$FAKE_BLOBS"/*; do
      [ -f "$f" ] || continue
      printf '%s{"name": "%s", "properties": {"lastModified": "2026-11-22T07:00:00+00:00"}}' "$sep" "$(basename "$f")"; sep=','
    done
    printf ']\n' ;;
  download)
    if [ -f "$FAKE_BLOBS/$name" ]; then cp "$FAKE_BLOBS/$name" "$file"; else echo "ERROR: The specified blob does not exist. ErrorCode:BlobNotFound" >&2; exit 3; fi ;;
  *) echo "unexpected az $verb" >&2; exit 2 ;;
esac
"#;

fn result_artifact(session: &str) -> (String, Vec<u8>, String) {
    let name = format!("{session}_result.json");
    let body = serde_json::json!({
        "schema_version": "1", "tool": "pipe-meter", "tool_version": "0.1.0",
        "session_id": session, "kind": "result", "created_at": "2026-11-22T07:00:00Z",
        "test_metadata": {"source_ip": "198.18.1.4", "destination_ip": "198.18.1.5",
            "timestamp": "2026-11-22T07:00:00+00:00", "test_type": "both", "is_baseline": false},
        "results": {"latency_p90": 20.0, "throughput_p90": 0.1, "anomaly_type": null},
        "status": "success"
    });
    let bytes = serde_json::to_vec_pretty(&body).unwrap();
    let sidecar = cloud_provider::artifact::sidecar_line(&name, &bytes);
    (name, bytes, sidecar)
}

#[test]
fn history_reads_the_blob_container_and_refuses_changed_results() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let az = dir.path().join("az");
    std::fs::write(&az, FAKE_AZ).unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let blobs = dir.path().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let (name, bytes, sidecar) = result_artifact("pmeter_stored1");
    std::fs::write(blobs.join(&name), &bytes).unwrap();
    std::fs::write(blobs.join(format!("{name}.sha256")), &sidecar).unwrap();
    let audit = dir.path().join("audit");
    let history = |expect: i32| {
        let o = cmd()
            .env("AZ_PATH", &az)
            .env("FAKE_BLOBS", &blobs)
            .args([
                "history",
                "--source",
                "198.18.1.4",
                "--dest",
                "198.18.1.5",
                "--json",
                "--storage-account-name",
                "stlab",
                "--storage-container-name",
                "results",
                "--audit-dir",
            ])
            .arg(&audit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(expect), "stderr: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (v, stderr)
    };
    // Listed and downloaded with no approver (SAFE), verified, marked as from the container.
    let (v, _) = history(0);
    assert_eq!(v["rows"][0]["session_id"], "pmeter_stored1", "{v}");
    assert_eq!(v["rows"][0]["origin"], "blob");
    assert!(v["searched"]
        .as_str()
        .unwrap()
        .contains("blob:stlab/results"));
    // Changed after upload: an integrity failure, exit 4, left out of the table.
    let mut changed = bytes.clone();
    changed.extend_from_slice(b"\n");
    std::fs::write(blobs.join(&name), &changed).unwrap();
    let (v, stderr) = history(4);
    assert_eq!(v["rows"].as_array().unwrap().len(), 0, "{v}");
    assert!(stderr.contains("integrity failure"), "{stderr}");
    // A container that cannot be listed: exit 3, with the reason.
    std::fs::write(blobs.join(".fail"), "").unwrap();
    let (_, stderr) = history(3);
    assert!(stderr.contains("could not be listed"), "{stderr}");
}
