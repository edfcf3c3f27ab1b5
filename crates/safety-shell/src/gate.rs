//! The gate: classify → (refuse | ask) → execute → redact → audit, as one library call.
//!
//! ```
//! use safety_shell::approve::AllRiskyApprover;
//! use safety_shell::audit::AuditLog;
//! use safety_shell::gate::{Gate, GateError};
//! use safety_shell::Target;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let audit = AuditLog::open_in_dir(dir.path(), "doc_example").unwrap();
//! // `--approve all-risky` equivalent; without an approver every RISKY command is denied.
//! let gate = Gate::builder(audit).approver(AllRiskyApprover).build();
//! match gate.run_argv(&Target::Local, &["echo", "hello"], "show the gate works") {
//!     Ok(r) => {
//!         assert_eq!(r.exit_code, Some(0));
//!         assert_eq!(r.stdout, "hello\n");
//!         assert!(r.audit_id.starts_with("doc_example_"));
//!     }
//!     // A classifier (or deployment policy) may refuse; the refusal is audited too.
//!     Err(GateError::Forbidden { audit_id, .. }) => assert!(!audit_id.is_empty()),
//!     Err(e) => panic!("{e}"),
//! }
//! assert!(safety_shell::audit::verify(gate.audit().path()).is_ok());
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::approve::{ApprovalRequest, Approver, DecidedBy, Decision, NeverApprover};
use crate::audit::{output_summary, AuditDecision, AuditEntry, AuditError, AuditLog};
use crate::exec::{self, render_argv, ExecError, ExecOptions, Program, RawOutput, Truncation};
use crate::policy::Policy;
use crate::redact::{merge_counts, redact};
use crate::types::{Class, Classification, ClassifyContext, Target};

/// A classifier function (the built-in one is [`crate::classify_with_policy`]).
pub type ClassifierFn =
    dyn Fn(&str, &ClassifyContext, Option<&Policy>) -> Classification + Send + Sync;

/// Splits a command into argv when it is one simple command (built-in:
/// [`crate::simple_argv`]).
pub type SplitterFn = dyn Fn(&str) -> Option<Vec<String>> + Send + Sync;

/// Runs a program on a target (built-in: [`ProcessExecutor`]).
pub trait Executor: Send + Sync {
    /// Runs `program` on `target`.
    fn execute(
        &self,
        target: &Target,
        program: &Program,
        opts: &ExecOptions,
    ) -> Result<RawOutput, ExecError>;
}

/// Runs real processes ([`exec::execute`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessExecutor;

impl Executor for ProcessExecutor {
    fn execute(
        &self,
        target: &Target,
        program: &Program,
        opts: &ExecOptions,
    ) -> Result<RawOutput, ExecError> {
        exec::execute(target, program, opts)
    }
}

fn ser_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The result of a command that passed the gate and ran.
#[derive(Debug, Clone, Serialize)]
pub struct ExecResult {
    /// The audit record's id.
    pub audit_id: String,
    /// The verdict on the command that ran.
    pub classification: Classification,
    /// auto (SAFE) or approved.
    pub decision: AuditDecision,
    /// Who decided (`auto`, `terminal`, `policy:...`, `callback`).
    pub decided_by: String,
    /// The command as requested (redacted).
    pub command: String,
    /// The approver's modification that ran instead (redacted).
    pub modified_command: Option<String>,
    /// Exit code (None when killed by a signal or unknown).
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    pub signal: Option<i32>,
    /// The timeout killed it.
    pub timed_out: bool,
    /// Redacted stdout.
    pub stdout: String,
    /// Redacted stderr.
    pub stderr: String,
    /// Wall-clock duration (`duration_ms` in JSON).
    #[serde(rename = "duration_ms", serialize_with = "ser_ms")]
    pub duration: Duration,
    /// Truncation facts.
    pub truncated: Truncation,
    /// Redactions by category (command, reasoning and output).
    pub redactions: BTreeMap<String, usize>,
    /// Where it ran.
    pub target: Target,
}

impl ExecResult {
    /// Exit code 0, no signal, no timeout.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && !self.timed_out
    }
}

/// Why the gate did not return a result.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// FORBIDDEN: never offered for approval.
    #[error("refused: the command is FORBIDDEN ({}) [audit {audit_id}]", classification.reason)]
    Forbidden {
        /// Audit record id.
        audit_id: String,
        /// The verdict.
        classification: Classification,
    },
    /// RISKY and not approved.
    #[error("denied by {decided_by}: {} [audit {audit_id}]", reason.as_deref().unwrap_or("no reason given"))]
    Denied {
        /// Audit record id.
        audit_id: String,
        /// Who denied.
        decided_by: String,
        /// Why.
        reason: Option<String>,
    },
    /// Permitted but could not be started (missing tool, bad target, transport failure).
    #[error("could not run the command: {message} [audit {audit_id}]")]
    CouldNotRun {
        /// Audit record id.
        audit_id: String,
        /// What went wrong (redacted).
        message: String,
    },
    /// The audit record could not be written (the command may have run).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl GateError {
    /// The audit id of the record written for this request, if any.
    pub fn audit_id(&self) -> Option<&str> {
        match self {
            GateError::Forbidden { audit_id, .. }
            | GateError::Denied { audit_id, .. }
            | GateError::CouldNotRun { audit_id, .. } => Some(audit_id),
            GateError::Audit(_) => None,
        }
    }
}

/// The gate. `Send + Sync`: build once, share with `Arc`, call from many threads.
pub struct Gate {
    classifier: Arc<ClassifierFn>,
    splitter: Arc<SplitterFn>,
    policy: Option<Policy>,
    context: ClassifyContext,
    approver: Arc<dyn Approver>,
    executor: Arc<dyn Executor>,
    audit: AuditLog,
    exec_options: ExecOptions,
    max_rounds: u32,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("audit", &self.audit)
            .field("exec_options", &self.exec_options)
            .finish()
    }
}

/// Builds a [`Gate`]. Defaults: the built-in classifier and splitter, no classification
/// policy, an empty [`ClassifyContext`], [`NeverApprover`] (fail closed), real processes,
/// [`ExecOptions::default`], at most 5 approval rounds (4 modifications).
pub struct GateBuilder {
    gate: Gate,
}

impl std::fmt::Debug for GateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateBuilder")
            .field("gate", &self.gate)
            .finish()
    }
}

impl GateBuilder {
    /// The approver for RISKY commands.
    pub fn approver(mut self, a: impl Approver + 'static) -> Self {
        self.gate.approver = Arc::new(a);
        self
    }
    /// A shared approver.
    pub fn approver_arc(mut self, a: Arc<dyn Approver>) -> Self {
        self.gate.approver = a;
        self
    }
    /// A deployment classification policy.
    pub fn policy(mut self, p: Policy) -> Self {
        self.gate.policy = Some(p);
        self
    }
    /// Where the classifier lets commands read and write.
    pub fn context(mut self, c: ClassifyContext) -> Self {
        self.gate.context = c;
        self
    }
    /// Timeout, kill grace and output cap.
    pub fn exec_options(mut self, o: ExecOptions) -> Self {
        self.gate.exec_options = o;
        self
    }
    /// Shorthand for the timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.gate.exec_options.timeout = t;
        self
    }
    /// Replaces the classifier (tests, other front ends).
    pub fn classifier(
        mut self,
        f: impl Fn(&str, &ClassifyContext, Option<&Policy>) -> Classification + Send + Sync + 'static,
    ) -> Self {
        self.gate.classifier = Arc::new(f);
        self
    }
    /// Replaces the simple-command splitter.
    pub fn splitter(
        mut self,
        f: impl Fn(&str) -> Option<Vec<String>> + Send + Sync + 'static,
    ) -> Self {
        self.gate.splitter = Arc::new(f);
        self
    }
    /// Replaces the executor.
    pub fn executor(mut self, e: impl Executor + 'static) -> Self {
        self.gate.executor = Arc::new(e);
        self
    }
    /// How many times an approver may be asked for one request (modifications + 1).
    pub fn max_rounds(mut self, n: u32) -> Self {
        self.gate.max_rounds = n.max(1);
        self
    }
    /// The gate.
    pub fn build(self) -> Gate {
        self.gate
    }
}

struct Outcome {
    decision: AuditDecision,
    decided_by: DecidedBy,
    classification: Classification,
    modified: Option<String>,
    program: Program,
}

impl Gate {
    /// Starts a builder; every request is recorded in `audit`.
    pub fn builder(audit: AuditLog) -> GateBuilder {
        GateBuilder {
            gate: Gate {
                classifier: Arc::new(crate::classify::classify_with_policy),
                splitter: Arc::new(crate::classify::simple_argv),
                policy: None,
                context: ClassifyContext::default(),
                approver: Arc::new(NeverApprover),
                executor: Arc::new(ProcessExecutor),
                audit,
                exec_options: ExecOptions::default(),
                max_rounds: 5,
            },
        }
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Classifies `command` as this gate would (policy and context included).
    pub fn classify(&self, command: &str) -> Classification {
        (self.classifier)(command, &self.context, self.policy.as_ref())
    }

    /// Gates and runs a command string on `target`. A simple command runs as argv without
    /// a shell; an approved compound command runs as `bash -c` with exactly the approved
    /// text.
    pub fn run(
        &self,
        target: &Target,
        command: &str,
        reasoning: &str,
    ) -> Result<ExecResult, GateError> {
        self.run_inner(target, command, None, reasoning)
    }

    /// Gates and runs an argv built by the caller: the shell-quoted rendering is what is
    /// classified and audited, and the argv runs directly (no shell) when permitted.
    pub fn run_argv<S: AsRef<str>>(
        &self,
        target: &Target,
        argv: &[S],
        reasoning: &str,
    ) -> Result<ExecResult, GateError> {
        let argv: Vec<String> = argv.iter().map(|s| s.as_ref().to_string()).collect();
        let command = render_argv(&argv);
        self.run_inner(target, &command, Some(argv), reasoning)
    }

    fn program_for(&self, command: &str, given: Option<Vec<String>>) -> Program {
        match given.or_else(|| (self.splitter)(command)) {
            Some(a) if !a.is_empty() => Program::Argv(a),
            _ => Program::Shell(command.to_string()),
        }
    }

    fn run_inner(
        &self,
        target: &Target,
        command: &str,
        argv: Option<Vec<String>>,
        reasoning: &str,
    ) -> Result<ExecResult, GateError> {
        let red_cmd = redact(command);
        let red_reason = redact(reasoning);
        let mut counts = red_cmd.counts.clone();
        merge_counts(&mut counts, &red_reason.counts);
        let target_s = target.describe();
        let entry = |classification: Classification, decision, by: DecidedBy| {
            AuditEntry::not_run(
                target_s.clone(),
                red_cmd.text.clone(),
                red_reason.text.clone(),
                classification,
                decision,
                by,
            )
        };

        let mut current = command.to_string();
        let mut given_argv = argv;
        let mut modified: Option<String> = None;
        let mut decided_by = DecidedBy::Auto;
        let mut round = 1u32;
        let outcome = loop {
            let cls = self.classify(&current);
            match cls.classification {
                Class::Forbidden => {
                    let mut e = entry(cls.clone(), AuditDecision::Forbidden, DecidedBy::Auto);
                    e.denial_reason = Some(redact(&cls.reason).text);
                    e.modified_command = modified.as_deref().map(|m| redact(m).text);
                    if let Some(m) = &modified {
                        merge_counts(&mut counts, &redact(m).counts);
                    }
                    e.redactions = counts;
                    let rec = self.audit.append(e)?;
                    return Err(GateError::Forbidden {
                        audit_id: rec.audit_id,
                        classification: cls,
                    });
                }
                Class::Safe => {
                    break Outcome {
                        decision: if modified.is_some() {
                            AuditDecision::Approved
                        } else {
                            AuditDecision::Auto
                        },
                        decided_by: decided_by.clone(),
                        program: self.program_for(&current, given_argv.take()),
                        classification: cls,
                        modified: modified.clone(),
                    };
                }
                Class::Risky => {
                    let req = ApprovalRequest {
                        command: current.clone(),
                        argv: given_argv.clone().or_else(|| (self.splitter)(&current)),
                        classification: cls.clone(),
                        target: target.clone(),
                        reasoning: red_reason.text.clone(),
                        round,
                    };
                    let approval = if round > self.max_rounds {
                        crate::approve::Approval::deny(
                            decided_by.clone(),
                            format!("more than {} approval rounds", self.max_rounds),
                        )
                    } else {
                        self.approver.decide(&req)
                    };
                    match approval.decision {
                        Decision::Approve => {
                            break Outcome {
                                decision: AuditDecision::Approved,
                                decided_by: approval.decided_by,
                                program: self.program_for(&current, given_argv.take()),
                                classification: cls,
                                modified: modified.clone(),
                            };
                        }
                        Decision::Deny { reason } => {
                            let mut e =
                                entry(cls, AuditDecision::Denied, approval.decided_by.clone());
                            let reason = reason.map(|r| redact(&r).text);
                            e.denial_reason = reason.clone();
                            e.modified_command = modified.as_deref().map(|m| redact(m).text);
                            if let Some(m) = &modified {
                                merge_counts(&mut counts, &redact(m).counts);
                            }
                            e.redactions = counts;
                            let rec = self.audit.append(e)?;
                            return Err(GateError::Denied {
                                audit_id: rec.audit_id,
                                decided_by: approval.decided_by.to_string(),
                                reason,
                            });
                        }
                        Decision::Modify { command: new } => {
                            decided_by = approval.decided_by;
                            modified = Some(new.clone());
                            current = new;
                            given_argv = None;
                            round += 1;
                        }
                    }
                }
            }
        };

        let red_mod = outcome.modified.as_deref().map(redact);
        if let Some(m) = &red_mod {
            merge_counts(&mut counts, &m.counts);
        }
        let result = self
            .executor
            .execute(target, &outcome.program, &self.exec_options);
        let mut e = entry(
            outcome.classification.clone(),
            outcome.decision,
            outcome.decided_by.clone(),
        );
        e.modified_command = red_mod.as_ref().map(|m| m.text.clone());
        match result {
            Err(err) => {
                let msg = redact(&err.to_string());
                merge_counts(&mut counts, &msg.counts);
                e.error = Some(msg.text.clone());
                e.redactions = counts;
                let rec = self.audit.append(e)?;
                Err(GateError::CouldNotRun {
                    audit_id: rec.audit_id,
                    message: msg.text,
                })
            }
            Ok(raw) => {
                let out = redact(&raw.stdout);
                let err = redact(&raw.stderr);
                merge_counts(&mut counts, &out.counts);
                merge_counts(&mut counts, &err.counts);
                e.exit_code = raw.exit_code;
                e.signal = raw.signal;
                e.timed_out = raw.timed_out;
                e.duration_ms = Some(raw.duration.as_millis() as u64);
                e.output_summary = output_summary(&out.text);
                e.stderr_summary = output_summary(&err.text);
                e.truncated = Some(raw.truncation);
                e.redactions = counts.clone();
                let rec = self.audit.append(e)?;
                Ok(ExecResult {
                    audit_id: rec.audit_id,
                    classification: outcome.classification,
                    decision: outcome.decision,
                    decided_by: outcome.decided_by.to_string(),
                    command: red_cmd.text.clone(),
                    modified_command: red_mod.map(|m| m.text),
                    exit_code: raw.exit_code,
                    signal: raw.signal,
                    timed_out: raw.timed_out,
                    stdout: out.text,
                    stderr: err.text,
                    duration: raw.duration,
                    truncated: raw.truncation,
                    redactions: counts,
                    target: target.clone(),
                })
            }
        }
    }
}
