//! CLI tests. Verdict-dependent assertions use commands whose class is the same for the
//! fail-closed classifier and the real one (e.g. `touch FILE` is RISKY), or accept either
//! refusal (denied / forbidden) where the exact class does not matter.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn bin() -> Command {
    let mut c = Command::cargo_bin("safety-shell").unwrap();
    c.env_remove("SAFETY_APPROVE")
        .env_remove("AUDIT_DIR")
        .env("NO_COLOR", "1");
    c
}

fn audit_file(dir: &Path, session: &str) -> std::path::PathBuf {
    dir.join(format!("{session}_audit.jsonl"))
}

fn records(dir: &Path, session: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit_file(dir, session))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn help_has_examples() {
    bin()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("Exit codes"));
    bin()
        .args(["exec", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--approve"));
}

#[test]
fn classify_human_and_json() {
    let out = bin()
        .args(["classify", "--", "ip route show"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let re = regex::Regex::new(r"^(SAFE|RISKY|FORBIDDEN)  [a-z_]+  \S.*\n$").unwrap();
    assert!(re.is_match(&text), "{text:?}");

    let out = bin()
        .args(["classify", "--json", "--", "ip", "route", "show"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["command"], "ip route show");
    assert!(["SAFE", "RISKY", "FORBIDDEN"].contains(&v["classification"].as_str().unwrap()));
    assert!(v["tier"].is_string() && v["reason"].is_string());
}

#[test]
fn classify_without_command_is_usage_error() {
    bin()
        .arg("classify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("after `--`"));
}

#[test]
fn classify_batch_one_line_per_input_in_order() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("cmds.jsonl");
    std::fs::write(
        &f,
        "{\"command\": \"ip route show\"}\nnot json\n{\"command\": \"\"}\n{\"cmd\": 1}\n{\"command\": \"iptables -F\"}\n",
    )
    .unwrap();
    let out = bin()
        .args(["classify", "--json", "--batch"])
        .arg(&f)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["command"], "ip route show");
    assert_eq!(rows[4]["command"], "iptables -F");
    for i in [1, 2, 3] {
        assert_eq!(rows[i]["classification"], "RISKY", "row {i}");
        assert_eq!(rows[i]["tier"], "unknown");
    }
    for r in &rows {
        for k in ["command", "classification", "tier", "reason"] {
            assert!(r.get(k).is_some());
        }
    }
}

#[test]
fn exec_approve_never_denies_and_never_reads_stdin() {
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    bin()
        .args([
            "exec",
            "--approve",
            "never",
            "--session",
            "t1",
            "--audit-dir",
        ])
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", made.display()))
        .write_stdin("a\n")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("denied"));
    assert!(!made.exists());
    let r = records(d.path(), "t1");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["decision"], "denied");
    assert_eq!(r[0]["decided_by"], "policy:never");
}

#[test]
fn exec_without_approval_and_without_terminal_denies_with_a_hint() {
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    bin()
        .args(["exec", "--session", "t2", "--audit-dir"])
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", made.display()))
        // An "approve" on a non-terminal stdin must not be taken as an approval.
        .write_stdin("a\na\n")
        .assert()
        .code(5)
        .stderr(predicate::str::contains("--approve all-risky"));
    assert!(!made.exists());
    assert_eq!(records(d.path(), "t2")[0]["decided_by"], "terminal");
}

#[test]
fn exec_all_risky_runs_and_records_it() {
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    bin()
        .args([
            "exec",
            "--approve",
            "all-risky",
            "--session",
            "t3",
            "--audit-dir",
        ])
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", made.display()))
        .assert()
        .success();
    assert!(made.exists());
    let r = records(d.path(), "t3");
    assert_eq!(r[0]["decision"], "approved");
    assert_eq!(r[0]["decided_by"], "policy:all-risky");
    assert_eq!(r[0]["exit_code"], 0);
}

#[test]
fn exec_env_and_config_file_settings() {
    let d = tempfile::tempdir().unwrap();
    let made = d.path().join("made");
    let cfg = d.path().join("config.env");
    let audit_dir = d.path().join("from-config");
    std::fs::write(
        &cfg,
        format!(
            "# comment\nAUDIT_DIR={}\nSAFETY_APPROVE=never\n",
            audit_dir.display()
        ),
    )
    .unwrap();
    // The file says never.
    bin()
        .args(["exec", "--session", "c1", "--config"])
        .arg(&cfg)
        .arg("--")
        .arg(format!("touch {}", made.display()))
        .assert()
        .code(5);
    assert!(!made.exists());
    assert_eq!(records(&audit_dir, "c1")[0]["decided_by"], "policy:never");
    // The environment beats the file.
    bin()
        .env("SAFETY_APPROVE", "all-risky")
        .args(["exec", "--session", "c2", "--config"])
        .arg(&cfg)
        .arg("--")
        .arg(format!("touch {}", made.display()))
        .assert()
        .success();
    assert!(made.exists());
    // A flag beats both.
    bin()
        .env("SAFETY_APPROVE", "all-risky")
        .args(["exec", "--approve", "never", "--session", "c3", "--config"])
        .arg(&cfg)
        .arg("--")
        .arg(format!("touch {}", d.path().join("other").display()))
        .assert()
        .code(5);
    bin()
        .env("SAFETY_APPROVE", "sometimes")
        .args(["exec", "--audit-dir"])
        .arg(d.path())
        .args(["--", "true"])
        .assert()
        .code(2);
}

#[test]
fn exec_policy_file_approves_and_denies_by_rule() {
    let d = tempfile::tempdir().unwrap();
    let policy = d.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[rule]]\nname = \"touch-ok\"\ndecision = \"approve\"\ncommand_regex = '^touch .*/ok$'\n\n[[rule]]\nname = \"no-secret\"\ndecision = \"deny\"\ncommand_regex = 'secret'\n",
    )
    .unwrap();
    let ok = d.path().join("ok");
    bin()
        .args(["exec", "--session", "p1", "--approve-policy"])
        .arg(&policy)
        .arg("--audit-dir")
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", ok.display()))
        .assert()
        .success();
    assert!(ok.exists());
    let nope = d.path().join("secret");
    bin()
        .args(["exec", "--session", "p1", "--approve-policy"])
        .arg(&policy)
        .arg("--audit-dir")
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", nope.display()))
        .assert()
        .code(5);
    assert!(!nope.exists());
    let r = records(d.path(), "p1");
    assert_eq!(r[0]["decided_by"], "policy:p.toml#touch-ok");
    assert_eq!(r[1]["decided_by"], "policy:p.toml#no-secret");
    assert_eq!(r[1]["sequence"], 2);
    // A broken policy file is a configuration error.
    std::fs::write(&policy, "[[rule]]\nname = 1\n").unwrap();
    bin()
        .args(["exec", "--approve-policy"])
        .arg(&policy)
        .arg("--audit-dir")
        .arg(d.path())
        .args(["--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("approval policy"));
}

#[test]
fn exec_failing_command_exits_3_and_json_result() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing-dir");
    let out = bin()
        .args([
            "exec",
            "--approve",
            "all-risky",
            "--json",
            "--session",
            "j1",
            "--audit-dir",
        ])
        .arg(d.path())
        .arg("--")
        .arg(format!("ls {}", missing.display()))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("exited with code 2"));
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["stderr"].as_str().unwrap().contains("missing-dir"));
    assert_eq!(v["audit_id"], "j1_000001");
    assert_eq!(v["target"]["kind"], "local");
}

#[test]
fn exec_output_goes_to_stdout_redacted() {
    let d = tempfile::tempdir().unwrap();
    bin()
        .args([
            "exec",
            "--approve",
            "all-risky",
            "--session",
            "o1",
            "--audit-dir",
        ])
        .arg(d.path())
        .args(["--", "printf 'user=me password=hunter2\\n'"])
        .assert()
        .success()
        .stdout("user=me password=[REDACTED:password]\n");
    let text = std::fs::read_to_string(audit_file(d.path(), "o1")).unwrap();
    assert!(!text.contains("hunter2"));
}

#[test]
fn exec_refuses_a_destructive_command_without_running_it() {
    // Denied (fail-closed classifier) or FORBIDDEN (real classifier): 5 either way, and
    // `--approve never` guarantees it never runs.
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    bin()
        .args([
            "exec",
            "--approve",
            "never",
            "--session",
            "f1",
            "--audit-dir",
        ])
        .arg(d.path())
        .arg("--")
        .arg(format!("rm -rf {}", victim.display()))
        .assert()
        .code(5);
    assert!(victim.exists());
    let r = records(d.path(), "f1");
    assert!(["denied", "forbidden"].contains(&r[0]["decision"].as_str().unwrap()));
}

#[test]
fn exec_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        vec!["exec", "--target", "mars:x", "--", "true"],
        vec!["exec", "--target", "ssh:", "--", "true"],
        vec!["exec", "--target", "azure-vm:onlyrg", "--", "true"],
        vec!["exec", "--session", "../etc", "--", "true"],
        vec!["exec", "--approve", "maybe", "--", "true"],
        vec![
            "exec",
            "--approve",
            "never",
            "--approve-policy",
            "x.toml",
            "--",
            "true",
        ],
        vec!["exec", "--approve", "never"],
    ] {
        bin()
            .args(&args)
            .arg("--audit-dir")
            .arg(d.path())
            .assert()
            .code(2);
    }
}

#[test]
fn exec_netns_target_missing_namespace_is_a_failure_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    bin()
        .args([
            "exec",
            "--approve",
            "all-risky",
            "--target",
            "netns:sstest-does-not-exist-42",
            "--audit-dir",
        ])
        .arg(d.path())
        .args(["--", "true"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn audit_verify_and_show() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..3 {
        bin()
            .args([
                "exec",
                "--approve",
                "all-risky",
                "--session",
                "v1",
                "--audit-dir",
            ])
            .arg(d.path())
            .arg("--")
            .arg(format!(
                "touch {}",
                d.path().join(format!("f{i}")).display()
            ))
            .assert()
            .success();
    }
    let f = audit_file(d.path(), "v1");
    bin()
        .args(["audit", "verify"])
        .arg(&f)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("chain OK: 3 records"));
    let out = bin()
        .args(["audit", "show", "--width", "100"])
        .arg(&f)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0].starts_with("   SEQ  TIME"));
    assert!(lines[1].contains("approved") && lines[1].contains("touch"));
    assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");

    // Tamper: edit a field → exit 4 naming line and audit id.
    let original = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, original.replacen("policy:all-risky", "terminal", 1)).unwrap();
    bin()
        .args(["audit", "verify"])
        .arg(&f)
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "line 1 (v1_000001): hash mismatch",
        ));
    // Delete, swap, truncate: each exit 4.
    let l: Vec<&str> = original.lines().collect();
    for (name, text) in [
        ("delete", format!("{}\n{}\n", l[0], l[2])),
        ("swap", format!("{}\n{}\n{}\n", l[0], l[2], l[1])),
        (
            "insert",
            format!("{}\n{}\n{}\n{}\n", l[0], l[1], l[1], l[2]),
        ),
        ("truncate", original[..original.len() - 15].to_string()),
    ] {
        std::fs::write(&f, text).unwrap();
        bin()
            .args(["audit", "verify"])
            .arg(&f)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("line "));
        let _ = name;
    }
    bin()
        .args(["audit", "verify"])
        .arg(d.path().join("nope.jsonl"))
        .assert()
        .code(2);
}

#[test]
fn audit_show_table_snapshot() {
    use chrono::{TimeZone, Utc};
    use safety_shell::approve::DecidedBy;
    use safety_shell::audit::{AuditDecision, AuditEntry, AuditLog};
    use safety_shell::{Class, Classification, Tier};

    let d = tempfile::tempdir().unwrap();
    let log = AuditLog::open_in_dir(d.path(), "snap")
        .unwrap()
        .with_clock(|| Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap());
    let mk = |cmd: &str, class, tier, decision, by| {
        AuditEntry::not_run(
            "local".into(),
            cmd.into(),
            String::new(),
            Classification::new(class, tier, "test"),
            decision,
            by,
        )
    };
    let mut ok = mk(
        "ip route show",
        Class::Safe,
        Tier::ReadOnly,
        AuditDecision::Auto,
        DecidedBy::Auto,
    );
    ok.exit_code = Some(0);
    log.append(ok).unwrap();
    log.append(mk(
        "iptables -I INPUT 1 -p tcp --dport 5001 -j DROP -m comment --comment 'a very long comment that will not fit'",
        Class::Risky,
        Tier::HostChange,
        AuditDecision::Denied,
        DecidedBy::PolicyNever,
    ))
    .unwrap();
    let mut modified = mk(
        "tcpdump -i eth0",
        Class::Risky,
        Tier::Capture,
        AuditDecision::Approved,
        DecidedBy::Terminal,
    );
    modified.modified_command = Some("tcpdump -i eth0 -c 10".into());
    modified.signal = Some(15);
    log.append(modified).unwrap();
    log.append(mk(
        "rm -rf /",
        Class::Forbidden,
        Tier::Destructive,
        AuditDecision::Forbidden,
        DecidedBy::Auto,
    ))
    .unwrap();
    let out = bin()
        .args(["audit", "show", "--width", "100"])
        .arg(log.path())
        .assert()
        .success();
    insta::assert_snapshot!(String::from_utf8(out.get_output().stdout.clone()).unwrap());
}

#[test]
fn exec_json_refusal_is_one_json_document() {
    let d = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "exec",
            "--json",
            "--approve",
            "never",
            "--session",
            "jd",
            "--audit-dir",
        ])
        .arg(d.path())
        .arg("--")
        .arg(format!("touch {}", d.path().join("x").display()))
        .assert()
        .code(5);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["decision"], "denied");
    assert_eq!(v["audit_id"], "jd_000001");
    assert!(v["message"].as_str().unwrap().contains("policy:never"));
}

#[test]
fn classify_read_paths_and_policy_rule_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let file = logs.join("syslog");
    let cmd = format!("cat {}", file.display());
    let class_of = |extra: &[&str]| {
        let mut c = bin();
        c.args(["classify", "--json"])
            .args(extra)
            .args(["--", &cmd]);
        let out = c.assert().success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        v["classification"].as_str().unwrap().to_string()
    };
    assert_eq!(
        class_of(&[]),
        "RISKY",
        "no read path: reading a file is risky"
    );
    let rp = logs.display().to_string();
    assert_eq!(class_of(&["--read-path", &rp]), "SAFE");

    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"version = 1
[[rule]]
name = "forbid-nsg-delete"
action = "forbid"
reason = "NSGs are managed by Terraform"
program = "az"
argv_prefix = ["network", "nsg", "delete"]
examples_match = ["az network nsg delete -g rg -n nsg"]
examples_no_match = ["az network nsg show -g rg -n nsg"]
"#,
    )
    .unwrap();
    let out = bin()
        .args(["classify", "--json", "--policy"])
        .arg(&policy)
        .args(["--", "az network nsg delete -g rg -n dest-vm-nsg"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["classification"], "FORBIDDEN");
    assert_eq!(v["policy_rule"], "forbid-nsg-delete");
}
