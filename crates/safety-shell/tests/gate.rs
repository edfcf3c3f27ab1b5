//! Gate tests with an injected classifier (and, where no process is needed, an injected
//! executor), so that they hold whatever the built-in classifier decides.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use safety_shell::approve::{
    AllRiskyApprover, ApprovalRequest, CallbackApprover, Decision, NeverApprover, TerminalApprover,
};
use safety_shell::audit::{read_records, verify, AuditDecision, AuditLog};
use safety_shell::exec::{ExecError, ExecOptions, Program, RawOutput, Truncation};
use safety_shell::gate::{Executor, Gate, GateError};
use safety_shell::{Class, Classification, ClassifyContext, Policy, Target, Tier};

/// `echo ...` SAFE, anything with `rm -rf` FORBIDDEN, the rest RISKY.
fn test_classifier(cmd: &str, _: &ClassifyContext, _: Option<&Policy>) -> Classification {
    if cmd.contains("rm -rf") {
        Classification::new(Class::Forbidden, Tier::Destructive, "rm -rf destroys data")
    } else if cmd.starts_with("echo") {
        Classification::new(Class::Safe, Tier::ReadOnly, "echo prints")
    } else {
        Classification::new(Class::Risky, Tier::HostChange, "changes the host")
    }
}

/// Records what it was asked to run and answers with fixed output.
#[derive(Clone, Default)]
struct Recorder {
    runs: Arc<Mutex<Vec<(Target, Program)>>>,
    stdout: String,
    fail: bool,
}

impl Executor for Recorder {
    fn execute(&self, t: &Target, p: &Program, _: &ExecOptions) -> Result<RawOutput, ExecError> {
        self.runs.lock().unwrap().push((t.clone(), p.clone()));
        if self.fail {
            return Err(ExecError::Spawn {
                program: "nope".into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        Ok(RawOutput {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
            stdout: self.stdout.clone(),
            stderr: String::new(),
            duration: Duration::from_millis(1),
            truncation: Truncation::default(),
        })
    }
}

fn setup(name: &str) -> (tempfile::TempDir, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_in_dir(dir.path(), name).unwrap();
    (dir, log)
}

fn splitter(cmd: &str) -> Option<Vec<String>> {
    if cmd.contains(['|', ';', '&', '$']) {
        None
    } else {
        Some(cmd.split_whitespace().map(str::to_string).collect())
    }
}

#[test]
fn gate_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Gate>();
}

#[test]
fn safe_runs_without_asking_and_is_audited_auto() {
    let (_d, log) = setup("safe");
    let rec = Recorder {
        stdout: "hi\n".into(),
        ..Default::default()
    };
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .splitter(splitter)
        .executor(rec.clone())
        .approver(CallbackApprover(move |_: &ApprovalRequest| {
            a2.fetch_add(1, Ordering::SeqCst);
            Decision::Approve
        }))
        .build();
    let r = gate.run(&Target::Local, "echo hi", "say hi").unwrap();
    assert_eq!(r.decision, AuditDecision::Auto);
    assert_eq!(r.decided_by, "auto");
    assert_eq!(r.stdout, "hi\n");
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    assert_eq!(
        rec.runs.lock().unwrap()[0].1,
        Program::Argv(vec!["echo".into(), "hi".into()])
    );
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].audit_id, r.audit_id);
    assert_eq!(records[0].audit_id, "safe_000001");
    assert_eq!(records[0].decision, AuditDecision::Auto);
    assert_eq!(records[0].reasoning, "say hi");
    assert_eq!(records[0].output_summary.as_deref(), Some("hi"));
}

#[test]
fn forbidden_is_never_offered_and_is_audited() {
    let (_d, log) = setup("forbidden");
    let rec = Recorder::default();
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec.clone())
        .approver(CallbackApprover(move |_: &ApprovalRequest| {
            a2.fetch_add(1, Ordering::SeqCst);
            Decision::Approve
        }))
        .build();
    let e = gate
        .run(&Target::Local, "rm -rf /srv", "cleanup")
        .unwrap_err();
    assert!(matches!(e, GateError::Forbidden { .. }), "{e}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        0,
        "an approver was asked about FORBIDDEN"
    );
    assert!(rec.runs.lock().unwrap().is_empty());
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert_eq!(records[0].decision, AuditDecision::Forbidden);
    assert_eq!(records[0].decided_by, "auto");
    assert_eq!(Some(records[0].audit_id.as_str()), e.audit_id());
}

#[test]
fn risky_approved_denied_and_denied_with_reason() {
    let (_d, log) = setup("risky");
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .splitter(splitter)
        .executor(rec.clone())
        .approver(CallbackApprover(|r: &ApprovalRequest| {
            assert_eq!(r.classification.classification, Class::Risky);
            if r.command.contains("allowed") {
                Decision::Approve
            } else {
                Decision::Deny {
                    reason: Some("not in this window".into()),
                }
            }
        }))
        .build();
    let ok = gate.run(&Target::Local, "touch allowed", "").unwrap();
    assert_eq!(ok.decision, AuditDecision::Approved);
    assert_eq!(ok.decided_by, "callback");
    match gate.run(&Target::Local, "touch other", "").unwrap_err() {
        GateError::Denied {
            reason, decided_by, ..
        } => {
            assert_eq!(reason.as_deref(), Some("not in this window"));
            assert_eq!(decided_by, "callback");
        }
        e => panic!("{e}"),
    }
    assert_eq!(rec.runs.lock().unwrap().len(), 1);
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert_eq!(records[1].decision, AuditDecision::Denied);
    assert_eq!(
        records[1].denial_reason.as_deref(),
        Some("not in this window")
    );
    assert!(records[1].exit_code.is_none());
}

#[test]
fn default_approver_denies_everything_risky() {
    let (_d, log) = setup("default");
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec.clone())
        .build();
    let e = gate.run(&Target::Local, "touch x", "").unwrap_err();
    assert!(matches!(e, GateError::Denied { ref decided_by, .. } if decided_by == "policy:never"));
    assert!(rec.runs.lock().unwrap().is_empty());
}

fn modifying_gate(
    name: &str,
    to: &'static str,
    rec: Recorder,
) -> (tempfile::TempDir, Gate, Arc<AtomicUsize>) {
    let (d, log) = setup(name);
    let asked = Arc::new(AtomicUsize::new(0));
    let a2 = asked.clone();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .splitter(splitter)
        .executor(rec)
        .approver(CallbackApprover(move |r: &ApprovalRequest| {
            let n = a2.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                Decision::Modify {
                    command: to.to_string(),
                }
            } else {
                assert_eq!(
                    r.command, to,
                    "the second question is about the modification"
                );
                assert_eq!(r.round, 2);
                Decision::Approve
            }
        }))
        .build();
    (d, gate, asked)
}

#[test]
fn modify_into_safe_runs_the_modification() {
    let rec = Recorder::default();
    let (_d, gate, asked) = modifying_gate("mod_safe", "echo instead", rec.clone());
    let r = gate.run(&Target::Local, "touch original", "").unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert_eq!(r.decision, AuditDecision::Approved);
    assert_eq!(r.classification.classification, Class::Safe);
    assert_eq!(r.modified_command.as_deref(), Some("echo instead"));
    assert_eq!(
        rec.runs.lock().unwrap()[0].1,
        Program::Argv(vec!["echo".into(), "instead".into()])
    );
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert_eq!(records[0].command, "touch original");
    assert_eq!(records[0].modified_command.as_deref(), Some("echo instead"));
}

#[test]
fn modify_into_forbidden_is_refused() {
    let rec = Recorder::default();
    let (_d, gate, asked) = modifying_gate("mod_forbidden", "rm -rf /var", rec.clone());
    let e = gate.run(&Target::Local, "touch original", "").unwrap_err();
    assert!(matches!(e, GateError::Forbidden { .. }));
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(rec.runs.lock().unwrap().is_empty());
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert_eq!(records[0].decision, AuditDecision::Forbidden);
    assert_eq!(records[0].command, "touch original");
    assert_eq!(records[0].modified_command.as_deref(), Some("rm -rf /var"));
}

#[test]
fn modify_into_risky_asks_again() {
    let rec = Recorder::default();
    let (_d, gate, asked) = modifying_gate("mod_risky", "touch a | cat", rec.clone());
    let r = gate.run(&Target::Local, "touch original", "").unwrap();
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(r.decision, AuditDecision::Approved);
    // Compound modification: runs as bash -c with exactly the approved text.
    assert_eq!(
        rec.runs.lock().unwrap()[0].1,
        Program::Shell("touch a | cat".into())
    );
}

#[test]
fn endless_modification_is_denied() {
    let (_d, log) = setup("endless");
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec.clone())
        .max_rounds(3)
        .approver(CallbackApprover(|r: &ApprovalRequest| Decision::Modify {
            command: format!("{} x", r.command),
        }))
        .build();
    let e = gate.run(&Target::Local, "touch", "").unwrap_err();
    assert!(matches!(e, GateError::Denied { .. }), "{e}");
    assert!(rec.runs.lock().unwrap().is_empty());
}

/// A reader that never yields (a terminal nobody answers).
struct Silent(std::sync::mpsc::Receiver<()>);
impl std::io::Read for Silent {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(0)
    }
}

#[test]
fn approval_timeout_is_a_denial() {
    let (_d, log) = setup("timeout");
    let (_keep, rx) = std::sync::mpsc::channel();
    let term = TerminalApprover::with_io(Silent(rx), std::io::sink(), Duration::from_millis(200));
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec.clone())
        .approver(term)
        .build();
    let t0 = std::time::Instant::now();
    let e = gate.run(&Target::Local, "touch x", "").unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5));
    match e {
        GateError::Denied {
            decided_by, reason, ..
        } => {
            assert_eq!(decided_by, "terminal");
            assert!(reason.unwrap().contains("timed out"));
        }
        e => panic!("{e}"),
    }
    assert!(rec.runs.lock().unwrap().is_empty());
}

#[test]
fn terminal_modify_then_approve_through_the_gate() {
    let (_d, log) = setup("termmod");
    let input = std::io::Cursor::new(b"m\ntouch b\na\n".to_vec());
    let term = TerminalApprover::with_io(input, std::io::sink(), Duration::from_secs(5));
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .splitter(splitter)
        .executor(rec.clone())
        .approver(term)
        .build();
    let r = gate.run(&Target::Local, "touch a", "").unwrap();
    assert_eq!(r.modified_command.as_deref(), Some("touch b"));
    assert_eq!(r.decided_by, "terminal");
    assert_eq!(
        rec.runs.lock().unwrap()[0].1,
        Program::Argv(vec!["touch".into(), "b".into()])
    );
}

#[test]
fn run_argv_classifies_the_rendering_and_runs_the_argv() {
    let (_d, log) = setup("argv");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let rec = Recorder::default();
    let gate = Gate::builder(log)
        .classifier(move |c: &str, _: &ClassifyContext, _: Option<&Policy>| {
            s2.lock().unwrap().push(c.to_string());
            Classification::new(Class::Safe, Tier::ReadOnly, "test")
        })
        .executor(rec.clone())
        .build();
    let r = gate
        .run_argv(&Target::Local, &["grep", "-e", "a b", "$HOME/x;y"], "")
        .unwrap();
    assert_eq!(seen.lock().unwrap()[0], "grep -e 'a b' '$HOME/x;y'");
    assert_eq!(r.command, "grep -e 'a b' '$HOME/x;y'");
    assert_eq!(
        rec.runs.lock().unwrap()[0].1,
        Program::Argv(vec![
            "grep".into(),
            "-e".into(),
            "a b".into(),
            "$HOME/x;y".into()
        ])
    );
}

#[test]
fn secrets_are_redacted_in_result_and_audit() {
    let (_d, log) = setup("redact");
    let rec = Recorder {
        stdout: "connected\npassword=hunter2\n".into(),
        ..Default::default()
    };
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec)
        .approver(AllRiskyApprover)
        .build();
    let r = gate
        .run(
            &Target::Local,
            "mysql --password s3cr3tPW -e 'select 1'",
            "token=abc123 was given",
        )
        .unwrap();
    assert!(!r.stdout.contains("hunter2"));
    assert!(!r.command.contains("s3cr3tPW"));
    assert_eq!(r.redactions.get("password"), Some(&2));
    assert_eq!(r.redactions.get("token"), Some(&1));
    let text = std::fs::read_to_string(gate.audit().path()).unwrap();
    for secret in ["hunter2", "s3cr3tPW", "abc123"] {
        assert!(!text.contains(secret), "{secret} in audit");
    }
    assert!(text.contains("\"decided_by\":\"policy:all-risky\""));
}

#[test]
fn could_not_run_is_audited() {
    let (_d, log) = setup("cnr");
    let rec = Recorder {
        fail: true,
        ..Default::default()
    };
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(rec)
        .build();
    let e = gate.run(&Target::Local, "echo x", "").unwrap_err();
    assert!(matches!(e, GateError::CouldNotRun { .. }), "{e}");
    let (records, _) = read_records(gate.audit().path()).unwrap();
    assert!(records[0]
        .error
        .as_deref()
        .unwrap()
        .contains("cannot start nope"));
}

#[test]
fn never_approver_through_gate() {
    let (_d, log) = setup("never");
    let gate = Gate::builder(log)
        .classifier(test_classifier)
        .executor(Recorder::default())
        .approver(NeverApprover)
        .build();
    let e = gate.run(&Target::Local, "touch x", "").unwrap_err();
    assert!(e.to_string().contains("policy:never"));
}

#[test]
fn concurrent_requests_get_unique_gapless_sequences() {
    let (_d, log) = setup("conc");
    let gate = Arc::new(
        Gate::builder(log)
            .classifier(test_classifier)
            .executor(Recorder::default())
            .build(),
    );
    const THREADS: usize = 16;
    const TOTAL: usize = 1000;
    let mut handles = Vec::new();
    for t in 0..THREADS {
        let g = gate.clone();
        handles.push(std::thread::spawn(move || {
            let n = TOTAL / THREADS + usize::from(t < TOTAL % THREADS);
            (0..n)
                .map(|i| {
                    g.run(&Target::Local, &format!("echo {t} {i}"), "")
                        .unwrap()
                        .audit_id
                })
                .collect::<Vec<_>>()
        }));
    }
    let ids: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), TOTAL);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), TOTAL);
    let (records, bad) = read_records(gate.audit().path()).unwrap();
    assert_eq!(bad, 0);
    let seqs: Vec<u64> = records.iter().map(|r| r.sequence).collect();
    assert_eq!(seqs, (1..=TOTAL as u64).collect::<Vec<_>>());
    let report = verify(gate.audit().path()).unwrap();
    assert_eq!(report.records, TOTAL);
}

#[test]
fn real_process_through_gate() {
    let (_d, log) = setup("real");
    let gate = Gate::builder(log)
        .classifier(|_: &str, _: &ClassifyContext, _: Option<&Policy>| {
            Classification::new(Class::Safe, Tier::ReadOnly, "test: everything safe")
        })
        .build();
    let r = gate
        .run_argv(
            &Target::Local,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            "",
        )
        .unwrap();
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert!(!r.success());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["exit_code"], 3);
    assert!(json["duration_ms"].is_u64());
    assert_eq!(json["target"]["kind"], "local");
    assert_eq!(json["classification"]["classification"], "SAFE");
}
