//! `netlab az` argument errors: az's messages and exit codes, before any lab is needed.

mod common;

use std::process::Command;

fn az(args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .arg("--state-dir")
        .arg(dir.path())
        .arg("az")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_command_is_exit_2_with_az_text() {
    let (code, _, err) = az(&["network", "nsgx", "list"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "ERROR: 'nsgx' is misspelled or not recognized by the system.\n"
    );
}

#[test]
fn unknown_and_missing_arguments_are_exit_2() {
    let (code, _, err) = az(&["network", "nsg", "list", "--bogus", "1"]);
    assert_eq!(
        (code, err.as_str()),
        (Some(2), "ERROR: unrecognized arguments: --bogus 1\n")
    );
    let (code, _, err) = az(&[
        "network",
        "nsg",
        "rule",
        "create",
        "-g",
        "x",
        "--nsg-name",
        "n",
        "-n",
        "r",
    ]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(2),
            "ERROR: the following arguments are required: --priority\n"
        )
    );
    let (code, _, err) = az(&["network", "nsg", "list", "-o", "xml"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("'xml' is not a valid value for '--output'"),
        "{err}"
    );
    let (code, _, err) = az(&["network", "nsg", "list", "--query", "[["]);
    assert_eq!(
        (code, err.as_str()),
        (
            Some(2),
            "ERROR: argument --query: invalid jmespath_type value: '[['\n"
        )
    );
}

#[test]
fn group_help_lists_commands_and_no_lab_is_exit_1() {
    let (code, out, _) = az(&["network", "route-table"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("network route-table route create"), "{out}");
    let (code, _, err) = az(&["network", "nsg", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("ERROR: no lab is up"), "{err}");
}
