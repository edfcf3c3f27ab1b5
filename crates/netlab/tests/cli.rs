//! CLI tests that need no root: help, usage errors and exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

fn netlab(state: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("netlab").unwrap();
    c.env("NETLAB_STATE_DIR", state);
    c
}

#[test]
fn help_shows_examples_and_hides_internal_commands() {
    let d = tempfile::tempdir().unwrap();
    netlab(d.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("dest-vm:loss=20%"))
        .stdout(predicate::str::contains("__emulator").not())
        .stdout(predicate::str::contains("__serve").not());
    netlab(d.path())
        .args(["inject", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("rate=5mbit"));
}

#[test]
fn usage_errors_exit_2_with_one_sentence() {
    let d = tempfile::tempdir().unwrap();
    netlab(d.path()).arg("frobnicate").assert().code(2);
    // --scope only with --all, and it must look like a run id.
    netlab(d.path())
        .args(["down", "--scope", "t1"])
        .assert()
        .code(2);
    netlab(d.path())
        .args(["down", "--all", "--scope", "Bad/Id"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be 1-8 lowercase"));
    netlab(d.path()).args(["traffic", "start"]).assert().code(2);
    netlab(d.path())
        .args(["up", "/nonexistent/scenario.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read scenario file"));
    netlab(d.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no lab is up"));
    netlab(d.path()).args(["clear"]).assert().code(2);
}

#[test]
fn invalid_scenario_is_refused_before_anything_is_built() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    std::fs::write(
        &p,
        "[topology.vnet]\nname = \"v\"\naddress_space = [\"10.0.0.0/16\"]\n",
    )
    .unwrap();
    netlab(d.path())
        .args(["up", p.to_str().unwrap()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("outside 198.18.0.0/15"));
    assert!(
        std::fs::read_dir(d.path()).unwrap().count() == 1,
        "no run directory was created"
    );
}

#[test]
fn bad_prefix_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo/use_case_a/scenario.toml");
    let out = netlab(d.path())
        .args(["up", scenario.to_str().unwrap(), "--prefix", "Bad_Prefix!"])
        .output()
        .unwrap();
    // Not root: the root check comes first (exit 3); as root: the prefix is refused (exit 2).
    let code = out.status.code().unwrap();
    assert!(code == 2 || code == 3, "{code}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("prefix") || err.contains("root"), "{err}");
    assert!(err.lines().count() <= 2, "one clear sentence: {err}");
}
