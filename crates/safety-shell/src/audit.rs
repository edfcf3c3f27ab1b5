//! The hash-chained audit log: JSON Lines, one record per request (forbidden and denied
//! requests included), each record carrying the SHA-256 of the previous one.
//!
//! **Hash.** `hash` is the lowercase hex SHA-256 of the record's *canonical form*: the
//! record as a JSON object without its `hash` key, object keys sorted by byte order at every
//! level, no whitespace, strings escaped as `serde_json` escapes them. `prev_hash` is the
//! previous record's `hash`, 64 zeros for the first record of a file. `sequence` starts at 1
//! and grows by one per record; `audit_id` is `{session}_{sequence:06}`.
//!
//! **Writing.** One mutex (and an exclusive `flock` on the file, for other processes)
//! around each append; the line is written and fsynced before [`AuditLog::append`]
//! returns. Opening an existing file continues its chain from its last record.
//!
//! **Verifying.** [`verify`] recomputes every hash and checks every link and sequence
//! number; it names each bad line. Removing whole records from the *end* of a file leaves a
//! valid shorter chain: keep the last `hash` elsewhere (the CLI prints it) to detect that.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::approve::DecidedBy;
use crate::exec::Truncation;
use crate::types::{Class, Classification, Tier};

/// `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The outcome recorded for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// SAFE: ran without asking.
    Auto,
    /// RISKY and approved (possibly after a modification).
    Approved,
    /// RISKY and denied (explicitly, by timeout, by default).
    Denied,
    /// FORBIDDEN (possibly a modification that turned out FORBIDDEN): never offered.
    Forbidden,
}

impl AuditDecision {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Auto => "auto",
            AuditDecision::Approved => "approved",
            AuditDecision::Denied => "denied",
            AuditDecision::Forbidden => "forbidden",
        }
    }
}

/// What the gate knows about a request; the log adds the id, time, sequence and hashes.
/// All text must already be redacted.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `Target::describe()`.
    pub target: String,
    /// The command as requested (redacted).
    pub command: String,
    /// The requester's reasoning (redacted).
    pub reasoning: String,
    /// The verdict on the command that ran or was refused (the modification, if any).
    pub classification: Classification,
    /// The outcome.
    pub decision: AuditDecision,
    /// Who decided.
    pub decided_by: DecidedBy,
    /// Why it was denied or refused.
    pub denial_reason: Option<String>,
    /// The approver's replacement command (redacted), when modified.
    pub modified_command: Option<String>,
    /// Exit code, when it ran and exited.
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    /// The timeout killed it.
    pub timed_out: bool,
    /// How long it ran.
    pub duration_ms: Option<u64>,
    /// First lines of stdout (redacted).
    pub output_summary: Option<String>,
    /// First lines of stderr (redacted).
    pub stderr_summary: Option<String>,
    /// Truncation facts.
    pub truncated: Option<Truncation>,
    /// Why it could not run (redacted).
    pub error: Option<String>,
    /// Redactions by category over command, reasoning and output.
    pub redactions: BTreeMap<String, usize>,
}

impl AuditEntry {
    /// An entry for a request that did not run.
    pub fn not_run(
        target: String,
        command: String,
        reasoning: String,
        classification: Classification,
        decision: AuditDecision,
        decided_by: DecidedBy,
    ) -> Self {
        Self {
            target,
            command,
            reasoning,
            classification,
            decision,
            decided_by,
            denial_reason: None,
            modified_command: None,
            exit_code: None,
            signal: None,
            timed_out: false,
            duration_ms: None,
            output_summary: None,
            stderr_summary: None,
            truncated: None,
            error: None,
            redactions: BTreeMap::new(),
        }
    }
}

/// One line of the audit file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// `{session}_{sequence:06}`.
    pub audit_id: String,
    /// RFC 3339 UTC, milliseconds.
    pub timestamp: String,
    /// Session id.
    pub session: String,
    /// 1, 2, 3, ... per file.
    pub sequence: u64,
    /// `Target::describe()`.
    pub target: String,
    /// The command as requested (redacted).
    pub command: String,
    /// Reasoning (redacted).
    pub reasoning: String,
    /// SAFE / RISKY / FORBIDDEN.
    pub classification: Class,
    /// Tier.
    pub tier: Tier,
    /// Classifier's reason.
    pub reason: String,
    /// Classification policy rule, if one decided.
    pub policy_rule: Option<String>,
    /// auto / approved / denied / forbidden.
    pub decision: AuditDecision,
    /// auto, terminal, policy:never, policy:all-risky, policy:FILE#rule, callback.
    pub decided_by: String,
    /// Why denied or refused.
    pub denial_reason: Option<String>,
    /// The approver's modification (redacted).
    pub modified_command: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Signal.
    pub signal: Option<i32>,
    /// Killed by the timeout.
    pub timed_out: bool,
    /// Duration.
    pub duration_ms: Option<u64>,
    /// Head of stdout (redacted).
    pub output_summary: Option<String>,
    /// Head of stderr (redacted).
    pub stderr_summary: Option<String>,
    /// Truncation facts.
    pub truncated: Option<Truncation>,
    /// Why it could not run.
    pub error: Option<String>,
    /// Redactions by category.
    pub redactions: BTreeMap<String, usize>,
    /// Previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// Audit log errors.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// I/O on the audit file.
    #[error("cannot write audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The existing file's last record cannot be read, so the chain cannot continue.
    #[error("audit log {path} is damaged ({message}); run `safety-shell audit verify` on it and start a new session")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A session id outside `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid session id {0:?}: use 1 to 64 of A-Z a-z 0-9 _ -")]
    InvalidSession(String),
}

/// Whether `s` is a valid session id (`[A-Za-z0-9_-]{1,64}`).
pub fn valid_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `{audit_dir}/{session}_audit.jsonl`.
pub fn default_audit_path(audit_dir: &Path, session: &str) -> PathBuf {
    audit_dir.join(format!("{session}_audit.jsonl"))
}

/// The canonical JSON text of a value: keys sorted at every level, no whitespace.
pub fn canonical_json(v: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// SHA-256 (hex) of the canonical form of `record` without its `hash` key.
pub fn record_hash(record: &serde_json::Value) -> String {
    let mut v = record.clone();
    if let serde_json::Value::Object(m) = &mut v {
        m.remove("hash");
    }
    hex::encode(Sha256::digest(canonical_json(&v).as_bytes()))
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

struct State {
    file: File,
    last_seq: u64,
    last_hash: String,
    known_len: u64,
}

/// An append-only, hash-chained audit file. `Send + Sync`: share it between threads.
pub struct AuditLog {
    path: PathBuf,
    session: String,
    clock: Clock,
    state: Mutex<State>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("session", &self.session)
            .finish()
    }
}

/// The last record's (sequence, hash), read from the end of the file.
fn read_tail(file: &File, path: &Path) -> Result<(u64, String, u64), AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok((0, GENESIS_HASH.to_string(), 0));
    }
    let damaged = |message: String| AuditError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = len;
    let start_of_last = loop {
        let n = pos.min(8192);
        pos -= n;
        let mut chunk = vec![0u8; n as usize];
        file.read_exact_at(&mut chunk, pos).map_err(io)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        // Skip the final newline; look for the one before the last line.
        let search_end = buf.len().saturating_sub(1);
        if let Some(i) = buf[..search_end].iter().rposition(|&b| b == b'\n') {
            break i + 1;
        }
        if pos == 0 {
            break 0;
        }
    };
    if buf.last() != Some(&b'\n') {
        return Err(damaged("the last line is incomplete".into()));
    }
    let line = &buf[start_of_last..buf.len() - 1];
    let v: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| damaged(format!("the last record is not JSON: {e}")))?;
    let seq = v
        .get("sequence")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| damaged("the last record has no sequence".into()))?;
    let hash = v
        .get("hash")
        .and_then(|x| x.as_str())
        .filter(|h| h.len() == 64)
        .ok_or_else(|| damaged("the last record has no hash".into()))?;
    Ok((seq, hash.to_string(), len))
}

fn summary(text: &str) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    const MAX_LINES: usize = 5;
    const MAX_BYTES: usize = 400;
    let mut s: String = text.lines().take(MAX_LINES).collect::<Vec<_>>().join("\n");
    if s.len() > MAX_BYTES {
        let mut i = MAX_BYTES;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    if s.len() < text.trim_end().len() {
        s.push_str(" …");
    }
    Some(s)
}

/// The first lines (at most 5 lines, 400 bytes) of an output, for `output_summary`.
pub fn output_summary(text: &str) -> Option<String> {
    summary(text)
}

impl AuditLog {
    /// Opens (creating it and its directory if needed) the audit file at `path` for
    /// `session`, continuing an existing chain.
    pub fn open(path: impl Into<PathBuf>, session: &str) -> Result<Self, AuditError> {
        if !valid_session_id(session) {
            return Err(AuditError::InvalidSession(session.to_string()));
        }
        let path = path.into();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let (last_seq, last_hash, known_len) = read_tail(&file, &path)?;
        if known_len == 0 {
            // A new file: make its directory entry durable too.
            if let Some(parent) = path.parent() {
                let dir = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        Ok(Self {
            path,
            session: session.to_string(),
            clock: Arc::new(Utc::now),
            state: Mutex::new(State {
                file,
                last_seq,
                last_hash,
                known_len,
            }),
        })
    }

    /// Opens `{audit_dir}/{session}_audit.jsonl`.
    pub fn open_in_dir(audit_dir: &Path, session: &str) -> Result<Self, AuditError> {
        if !valid_session_id(session) {
            return Err(AuditError::InvalidSession(session.to_string()));
        }
        Self::open(default_audit_path(audit_dir, session), session)
    }

    /// Replaces the clock (tests and snapshots).
    pub fn with_clock(mut self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The audit file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session id.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// Appends one record, fsyncs it, and returns it.
    pub fn append(&self, e: AuditEntry) -> Result<AuditRecord, AuditError> {
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let dup = st.file.try_clone().map_err(io)?;
        let _lock = Flock::lock(dup, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io(std::io::Error::from_raw_os_error(errno as i32)))?;
        let len = st.file.metadata().map_err(io)?.len();
        if len != st.known_len {
            // Another writer appended: continue from its last record.
            let (s, h, l) = read_tail(&st.file, &self.path)?;
            st.last_seq = s;
            st.last_hash = h;
            st.known_len = l;
        }
        let sequence = st.last_seq + 1;
        let mut rec = AuditRecord {
            audit_id: format!("{}_{sequence:06}", self.session),
            timestamp: (self.clock)().to_rfc3339_opts(SecondsFormat::Millis, true),
            session: self.session.clone(),
            sequence,
            target: e.target,
            command: e.command,
            reasoning: e.reasoning,
            classification: e.classification.classification,
            tier: e.classification.tier,
            reason: e.classification.reason,
            policy_rule: e.classification.policy_rule,
            decision: e.decision,
            decided_by: e.decided_by.to_string(),
            denial_reason: e.denial_reason,
            modified_command: e.modified_command,
            exit_code: e.exit_code,
            signal: e.signal,
            timed_out: e.timed_out,
            duration_ms: e.duration_ms,
            output_summary: e.output_summary,
            stderr_summary: e.stderr_summary,
            truncated: e.truncated,
            error: e.error,
            redactions: e.redactions,
            prev_hash: st.last_hash.clone(),
            hash: String::new(),
        };
        let value = serde_json::to_value(&rec).map_err(|err| io(std::io::Error::other(err)))?;
        rec.hash = record_hash(&value);
        let mut line = serde_json::to_string(&rec).map_err(|err| io(std::io::Error::other(err)))?;
        line.push('\n');
        st.file.write_all(line.as_bytes()).map_err(io)?;
        st.file.sync_data().map_err(io)?;
        st.last_seq = sequence;
        st.last_hash = rec.hash.clone();
        st.known_len = len + line.len() as u64;
        Ok(rec)
    }
}

// ---------------------------------------------------------------------------------------
// Verification

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The stored hash is not the hash of the record (the record was edited).
    HashMismatch {
        /// Stored.
        stored: String,
        /// Recomputed.
        computed: String,
    },
    /// `prev_hash` is not the previous record's hash (a record was deleted, inserted or
    /// moved before this one).
    PrevHashBreak {
        /// Expected (the previous line's hash).
        expected: String,
        /// Found.
        found: String,
    },
    /// Sequence numbers skip (a record is missing).
    SequenceGap {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// The same sequence number twice.
    Duplicate {
        /// The repeated number.
        sequence: u64,
    },
    /// A sequence number lower than the previous one (records swapped).
    Reordered {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// Not a JSON record with the required fields.
    Malformed(String),
    /// The file ends in the middle of a line (a cut-off write or a truncation).
    IncompleteLastLine,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch (stored {}…, computed {}…): the record was edited",
                stored.chars().take(12).collect::<String>(),
                computed.chars().take(12).collect::<String>()
            ),
            Problem::PrevHashBreak { .. } => {
                f.write_str("prev_hash break: the previous record was deleted, inserted or moved")
            }
            Problem::SequenceGap { expected, found } => {
                write!(f, "sequence gap: expected {expected}, found {found}")
            }
            Problem::Duplicate { sequence } => write!(f, "duplicate sequence {sequence}"),
            Problem::Reordered { expected, found } => {
                write!(
                    f,
                    "records out of order: expected sequence {expected}, found {found}"
                )
            }
            Problem::Malformed(m) => write!(f, "malformed record: {m}"),
            Problem::IncompleteLastLine => f.write_str("the last line is incomplete (truncated)"),
        }
    }
}

/// One bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based line number.
    pub line: usize,
    /// The record's audit_id, when readable.
    pub audit_id: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {} ({}): {}",
            self.line,
            self.audit_id.as_deref().unwrap_or("no audit_id"),
            self.problem
        )
    }
}

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("cannot read audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The chain is broken.
    #[error("audit chain broken in {}: {}{}", path.display(), breaks[0], if breaks.len() > 1 { format!(" (and {} more problems)", breaks.len() - 1) } else { String::new() })]
    Broken {
        /// The file.
        path: PathBuf,
        /// Every bad line, in file order (never empty).
        breaks: Vec<ChainBreak>,
    },
}

/// A verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Number of records.
    pub records: usize,
    /// The last record's hash (the chain head; keep it to detect removal from the end).
    pub head_hash: String,
}

/// Verifies the audit file at `path`.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let bytes = std::fs::read(path).map_err(|source| VerifyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.is_empty() || text.ends_with('\n');
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let mut breaks = Vec::new();
    let mut expected_prev = GENESIS_HASH.to_string();
    let mut prev_seq: u64 = 0;
    let mut head = GENESIS_HASH.to_string();
    for (i, line) in lines.iter().enumerate() {
        let lineno = i + 1;
        let is_last = i + 1 == lines.len();
        let mut push = |audit_id: Option<String>, problem| {
            breaks.push(ChainBreak {
                line: lineno,
                audit_id,
                problem,
            })
        };
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                push(None, Problem::Malformed("not a JSON object".into()));
                continue;
            }
            Err(e) => {
                if is_last && !complete {
                    push(None, Problem::IncompleteLastLine);
                } else {
                    push(None, Problem::Malformed(format!("not JSON: {e}")));
                }
                continue;
            }
        };
        let audit_id = v
            .get("audit_id")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        let stored = v.get("hash").and_then(|x| x.as_str()).map(str::to_string);
        let prev = v
            .get("prev_hash")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        let seq = v.get("sequence").and_then(|x| x.as_u64());
        let (Some(stored), Some(prev), Some(seq)) = (stored, prev, seq) else {
            push(
                audit_id,
                Problem::Malformed("missing hash, prev_hash or sequence".into()),
            );
            continue;
        };
        let computed = record_hash(&v);
        if computed != stored {
            push(
                audit_id.clone(),
                Problem::HashMismatch {
                    stored: stored.clone(),
                    computed,
                },
            );
        }
        if prev != expected_prev {
            push(
                audit_id.clone(),
                Problem::PrevHashBreak {
                    expected: expected_prev.clone(),
                    found: prev,
                },
            );
        }
        if seq == prev_seq {
            push(audit_id.clone(), Problem::Duplicate { sequence: seq });
        } else if seq < prev_seq {
            push(
                audit_id.clone(),
                Problem::Reordered {
                    expected: prev_seq + 1,
                    found: seq,
                },
            );
        } else if seq != prev_seq + 1 {
            push(
                audit_id.clone(),
                Problem::SequenceGap {
                    expected: prev_seq + 1,
                    found: seq,
                },
            );
        }
        if is_last && !complete {
            push(audit_id.clone(), Problem::IncompleteLastLine);
        }
        expected_prev = stored.clone();
        head = stored;
        prev_seq = seq;
    }
    if breaks.is_empty() {
        Ok(VerifyReport {
            records: lines.len(),
            head_hash: head,
        })
    } else {
        Err(VerifyError::Broken {
            path: path.to_path_buf(),
            breaks,
        })
    }
}

/// Reads every record of an audit file (for `audit show`); unreadable lines are skipped
/// and counted.
pub fn read_records(path: &Path) -> Result<(Vec<AuditRecord>, usize), std::io::Error> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match serde_json::from_str::<AuditRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[1,{"y":2,"x":"é\n"}],"c":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[1,{"x":"é\n","y":2}]},"b":1}"#
        );
    }

    #[test]
    fn session_ids() {
        assert!(valid_session_id("shell_20260101T000000Z"));
        assert!(!valid_session_id("../x"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id(&"a".repeat(65)));
    }

    #[test]
    fn summary_is_bounded() {
        assert_eq!(output_summary(""), None);
        assert_eq!(output_summary("a\nb\n").as_deref(), Some("a\nb"));
        let long = "x".repeat(1000);
        assert!(output_summary(&long).unwrap().len() <= 404);
        let many = "l\n".repeat(20);
        assert_eq!(output_summary(&many).unwrap(), "l\nl\nl\nl\nl …");
    }
}
