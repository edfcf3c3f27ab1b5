//! Audit log: chain, continuation, and tamper detection.

use std::path::Path;

use chrono::{TimeZone, Utc};
use safety_shell::approve::DecidedBy;
use safety_shell::audit::{
    record_hash, verify, AuditDecision, AuditEntry, AuditLog, Problem, VerifyError, GENESIS_HASH,
};
use safety_shell::{Class, Classification, Tier};

fn entry(i: usize) -> AuditEntry {
    AuditEntry::not_run(
        "local".into(),
        format!("echo {i}"),
        "test".into(),
        Classification::new(Class::Safe, Tier::ReadOnly, "echo prints"),
        AuditDecision::Auto,
        DecidedBy::Auto,
    )
}

fn write_log(dir: &Path, n: usize) -> std::path::PathBuf {
    let log = AuditLog::open_in_dir(dir, "tamper").unwrap();
    for i in 0..n {
        log.append(entry(i)).unwrap();
    }
    log.path().to_path_buf()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(p: &Path, l: &[String]) {
    std::fs::write(p, l.join("\n") + "\n").unwrap();
}

fn first_break(p: &Path) -> (usize, Option<String>, Problem) {
    match verify(p) {
        Err(VerifyError::Broken { breaks, .. }) => {
            let b = breaks[0].clone();
            (b.line, b.audit_id, b.problem)
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn records_chain_and_verify() {
    let d = tempfile::tempdir().unwrap();
    let log = AuditLog::open_in_dir(d.path(), "s1")
        .unwrap()
        .with_clock(|| Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
    let r1 = log.append(entry(1)).unwrap();
    let r2 = log.append(entry(2)).unwrap();
    assert_eq!(r1.audit_id, "s1_000001");
    assert_eq!(r1.sequence, 1);
    assert_eq!(r1.prev_hash, GENESIS_HASH);
    assert_eq!(r2.prev_hash, r1.hash);
    assert_eq!(r1.timestamp, "2026-01-02T03:04:05.000Z");
    assert_eq!(log.path(), d.path().join("s1_audit.jsonl"));
    // The stored hash is the SHA-256 of the canonical form without `hash`.
    let v: serde_json::Value = serde_json::from_str(&lines(log.path())[0]).unwrap();
    assert_eq!(record_hash(&v), r1.hash);
    for key in [
        "audit_id",
        "timestamp",
        "session",
        "sequence",
        "target",
        "command",
        "reasoning",
        "classification",
        "tier",
        "reason",
        "decision",
        "decided_by",
        "modified_command",
        "exit_code",
        "signal",
        "duration_ms",
        "output_summary",
        "truncated",
        "redactions",
        "prev_hash",
        "hash",
    ] {
        assert!(v.get(key).is_some(), "record lacks {key}");
    }
    let rep = verify(log.path()).unwrap();
    assert_eq!(rep.records, 2);
    assert_eq!(rep.head_hash, r2.hash);
}

#[test]
fn reopening_continues_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 3);
    let last_hash = {
        let l = lines(&p);
        let v: serde_json::Value = serde_json::from_str(l.last().unwrap()).unwrap();
        v["hash"].as_str().unwrap().to_string()
    };
    let log = AuditLog::open(&p, "tamper").unwrap();
    let r = log.append(entry(9)).unwrap();
    assert_eq!(r.sequence, 4);
    assert_eq!(r.prev_hash, last_hash);
    assert_eq!(verify(&p).unwrap().records, 4);
}

#[test]
fn two_handles_on_one_file_interleave_safely() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("shared_audit.jsonl");
    let a = AuditLog::open(&p, "a").unwrap();
    let b = AuditLog::open(&p, "b").unwrap();
    for i in 0..5 {
        a.append(entry(i)).unwrap();
        b.append(entry(i)).unwrap();
    }
    assert_eq!(verify(&p).unwrap().records, 10);
}

#[test]
fn damaged_file_refuses_to_continue() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 2);
    let mut text = std::fs::read_to_string(&p).unwrap();
    text.truncate(text.len() - 10);
    std::fs::write(&p, text).unwrap();
    let e = AuditLog::open(&p, "tamper").unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
}

#[test]
fn invalid_session_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    assert!(AuditLog::open_in_dir(d.path(), "../../etc/x").is_err());
}

#[test]
fn tamper_edit_a_field() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 5);
    let mut l = lines(&p);
    l[2] = l[2].replace("echo 2", "echo X");
    write_lines(&p, &l);
    let (line, id, problem) = first_break(&p);
    assert_eq!(line, 3);
    assert_eq!(id.as_deref(), Some("tamper_000003"));
    assert!(matches!(problem, Problem::HashMismatch { .. }));
}

#[test]
fn tamper_delete_a_record() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 5);
    let mut l = lines(&p);
    l.remove(1);
    write_lines(&p, &l);
    let Err(VerifyError::Broken { breaks, .. }) = verify(&p) else {
        panic!("not detected")
    };
    assert_eq!(breaks[0].line, 2);
    assert_eq!(breaks[0].audit_id.as_deref(), Some("tamper_000003"));
    assert!(breaks
        .iter()
        .any(|b| matches!(b.problem, Problem::PrevHashBreak { .. })));
    assert!(breaks.iter().any(|b| b.problem
        == Problem::SequenceGap {
            expected: 2,
            found: 3
        }));
}

#[test]
fn tamper_delete_the_first_record() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 3);
    let mut l = lines(&p);
    l.remove(0);
    write_lines(&p, &l);
    let (line, _, problem) = first_break(&p);
    assert_eq!(line, 1);
    assert!(matches!(problem, Problem::PrevHashBreak { .. }));
}

#[test]
fn tamper_insert_a_record() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 4);
    let mut l = lines(&p);
    // A well-formed forged record with a correct hash of its own content.
    let mut forged: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
    forged["command"] = "iptables -F".into();
    let h = record_hash(&forged);
    forged["hash"] = h.into();
    l.insert(2, forged.to_string());
    write_lines(&p, &l);
    let Err(VerifyError::Broken { breaks, .. }) = verify(&p) else {
        panic!("not detected")
    };
    assert_eq!(breaks[0].line, 3);
    assert!(breaks
        .iter()
        .any(|b| matches!(b.problem, Problem::Duplicate { sequence: 2 })));
    assert!(breaks
        .iter()
        .any(|b| matches!(b.problem, Problem::PrevHashBreak { .. })));
}

#[test]
fn tamper_swap_two_records() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 5);
    let mut l = lines(&p);
    l.swap(1, 2);
    write_lines(&p, &l);
    let Err(VerifyError::Broken { breaks, .. }) = verify(&p) else {
        panic!("not detected")
    };
    assert_eq!(breaks[0].line, 2);
    assert_eq!(breaks[0].audit_id.as_deref(), Some("tamper_000003"));
    assert!(breaks.iter().any(|b| b.line == 3
        && matches!(
            b.problem,
            Problem::Reordered {
                expected: 4,
                found: 2
            }
        )));
}

#[test]
fn tamper_truncate_the_last_line() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 3);
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, &text[..text.len() - 20]).unwrap();
    let (line, _, problem) = first_break(&p);
    assert_eq!(line, 3);
    assert_eq!(problem, Problem::IncompleteLastLine);
    // The error names the file, the line and the problem in one sentence.
    let msg = verify(&p).unwrap_err().to_string();
    assert!(
        msg.contains("line 3") && msg.contains("incomplete"),
        "{msg}"
    );
}

#[test]
fn garbage_line_is_malformed() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 2);
    let mut l = lines(&p);
    l.insert(1, "not json".into());
    write_lines(&p, &l);
    let (line, _, problem) = first_break(&p);
    assert_eq!(line, 2);
    assert!(matches!(problem, Problem::Malformed(_)));
}

#[test]
fn empty_file_is_an_empty_valid_chain() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("e.jsonl");
    std::fs::write(&p, "").unwrap();
    assert_eq!(verify(&p).unwrap().records, 0);
}

#[test]
fn hostile_hash_values_do_not_panic() {
    let d = tempfile::tempdir().unwrap();
    let p = write_log(d.path(), 2);
    let mut l = lines(&p);
    let mut v: serde_json::Value = serde_json::from_str(&l[0]).unwrap();
    v["hash"] = "ééééééééééééééé".into();
    v["sequence"] = serde_json::json!(-1);
    l[0] = v.to_string();
    let mut v1: serde_json::Value = serde_json::from_str(&l[1]).unwrap();
    v1["hash"] = "ééééééééééééééé".into();
    l[1] = v1.to_string();
    l.push("[1,2]".into());
    l.push("{\"hash\": 5}".into());
    write_lines(&p, &l);
    let e = verify(&p).unwrap_err();
    assert!(!e.to_string().is_empty());
    let Err(VerifyError::Broken { breaks, .. }) = verify(&p) else {
        panic!()
    };
    assert!(breaks.iter().all(|b| !b.to_string().is_empty()));
    assert!(breaks
        .iter()
        .any(|b| b.line == 2 && matches!(b.problem, Problem::HashMismatch { .. })));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
    #[test]
    fn verify_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        std::fs::write(&p, &data).unwrap();
        let _ = verify(&p);
    }
}
