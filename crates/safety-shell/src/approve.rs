//! Approval of RISKY commands: typed decisions, and the approvers that make them.
//!
//! Anything that is not an explicit [`Decision::Approve`] is a denial: a timeout, an
//! unreadable answer, a closed terminal, a policy with no matching rule. FORBIDDEN commands
//! never reach an approver (the gate refuses them first).

use std::fmt;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::types::{Class, Classification, Target, Tier};

/// What an approver decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run the command as asked.
    Approve,
    /// Do not run it.
    Deny {
        /// Why, when the approver said.
        reason: Option<String>,
    },
    /// Run this command instead; it is classified from scratch.
    Modify {
        /// The replacement command.
        command: String,
    },
}

/// Who decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    /// The classifier: SAFE runs and FORBIDDEN is refused without asking anybody.
    Auto,
    /// A person at the terminal prompt (or the lack of one).
    Terminal,
    /// `--approve never`.
    PolicyNever,
    /// `--approve all-risky`.
    PolicyAllRisky,
    /// An approval policy file and the rule that decided (`None`: no rule matched).
    PolicyFile {
        /// The file as given.
        file: String,
        /// The rule name.
        rule: Option<String>,
    },
    /// A library callback.
    Callback,
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidedBy::Auto => f.write_str("auto"),
            DecidedBy::Terminal => f.write_str("terminal"),
            DecidedBy::PolicyNever => f.write_str("policy:never"),
            DecidedBy::PolicyAllRisky => f.write_str("policy:all-risky"),
            DecidedBy::PolicyFile { file, rule } => match rule {
                Some(r) => write!(f, "policy:{file}#{r}"),
                None => write!(f, "policy:{file}#no-match"),
            },
            DecidedBy::Callback => f.write_str("callback"),
        }
    }
}

impl Serialize for DecidedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A decision and who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The decision.
    pub decision: Decision,
    /// Who made it.
    pub decided_by: DecidedBy,
}

impl Approval {
    /// A denial with a reason.
    pub fn deny(by: DecidedBy, reason: impl Into<String>) -> Self {
        Self {
            decision: Decision::Deny {
                reason: Some(reason.into()),
            },
            decided_by: by,
        }
    }
}

/// What an approver is asked about.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// The command (as it will run; for a modified command, the modification).
    pub command: String,
    /// Its argv when it is one simple command.
    pub argv: Option<Vec<String>>,
    /// The classifier's verdict (RISKY when an approver is asked).
    pub classification: Classification,
    /// Where it would run.
    pub target: Target,
    /// The requester's stated reasoning.
    pub reasoning: String,
    /// 1 for the first question, 2 after one modification, ...
    pub round: u32,
}

/// Decides on RISKY commands. Implementations must fail closed: return a denial for anything
/// they cannot decide.
pub trait Approver: Send + Sync {
    /// Decides on one request.
    fn decide(&self, request: &ApprovalRequest) -> Approval;
}

/// `--approve never`: denies every RISKY request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverApprover;

impl Approver for NeverApprover {
    fn decide(&self, _r: &ApprovalRequest) -> Approval {
        Approval::deny(
            DecidedBy::PolicyNever,
            "--approve never denies every RISKY command",
        )
    }
}

/// `--approve all-risky`: approves every RISKY request. Only ever used when named
/// explicitly; recorded as `policy:all-risky`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllRiskyApprover;

impl Approver for AllRiskyApprover {
    fn decide(&self, r: &ApprovalRequest) -> Approval {
        if r.classification.classification == Class::Risky {
            Approval {
                decision: Decision::Approve,
                decided_by: DecidedBy::PolicyAllRisky,
            }
        } else {
            Approval::deny(
                DecidedBy::PolicyAllRisky,
                "only RISKY commands can be approved",
            )
        }
    }
}

/// A closure approver for library callers.
pub struct CallbackApprover<F>(pub F);

impl<F> fmt::Debug for CallbackApprover<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CallbackApprover")
    }
}

impl<F> Approver for CallbackApprover<F>
where
    F: Fn(&ApprovalRequest) -> Decision + Send + Sync,
{
    fn decide(&self, r: &ApprovalRequest) -> Approval {
        Approval {
            decision: (self.0)(r),
            decided_by: DecidedBy::Callback,
        }
    }
}

/// Denies with a fixed reason (used when no approver can be asked, e.g. no terminal).
#[derive(Debug, Clone)]
pub struct DenyApprover {
    /// Recorded as decided by.
    pub by: DecidedBy,
    /// The reason given.
    pub reason: String,
}

impl Approver for DenyApprover {
    fn decide(&self, _r: &ApprovalRequest) -> Approval {
        Approval::deny(self.by.clone(), self.reason.clone())
    }
}

// ---------------------------------------------------------------------------------------
// Approval policy file

/// Why an approval policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ApprovePolicyError {
    /// The file could not be read.
    #[error("cannot read approval policy {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML or not the documented format.
    #[error("invalid approval policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    decision: RuleDecision,
    #[serde(default)]
    tiers: Vec<Tier>,
    #[serde(default)]
    programs: Vec<String>,
    #[serde(default)]
    command_regex: Option<String>,
    #[serde(default)]
    targets: Vec<TargetKind>,
    #[serde(default)]
    reason: Option<String>,
}

/// What a policy rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleDecision {
    /// Approve the command.
    Approve,
    /// Deny the command.
    Deny,
}

/// The kind of a [`Target`], for policy matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// [`Target::Local`].
    Local,
    /// [`Target::Ssh`].
    Ssh,
    /// [`Target::AzureRunCommand`].
    AzureVm,
    /// [`Target::Netns`].
    Netns,
}

impl TargetKind {
    fn of(t: &Target) -> Self {
        match t {
            Target::Local => TargetKind::Local,
            Target::Ssh(_) => TargetKind::Ssh,
            Target::AzureRunCommand(_) => TargetKind::AzureVm,
            Target::Netns { .. } => TargetKind::Netns,
        }
    }
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    decision: RuleDecision,
    tiers: Vec<Tier>,
    programs: Vec<String>,
    command_regex: Option<Regex>,
    targets: Vec<TargetKind>,
    reason: Option<String>,
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

impl Rule {
    /// Every condition given must hold; a rule with no condition matches everything.
    fn matches(&self, r: &ApprovalRequest) -> bool {
        if !self.tiers.is_empty() && !self.tiers.contains(&r.classification.tier) {
            return false;
        }
        if !self.targets.is_empty() && !self.targets.contains(&TargetKind::of(&r.target)) {
            return false;
        }
        if let Some(re) = &self.command_regex {
            if !re.is_match(&r.command) {
                return false;
            }
        }
        if !self.programs.is_empty() {
            let hit = match &r.argv {
                Some(argv) => argv
                    .first()
                    .is_some_and(|p| self.programs.iter().any(|x| x == basename(p))),
                // Not a simple command: an approve rule cannot vouch for it, while a deny
                // rule matches when any word of it names one of its programs (fail closed).
                None => {
                    self.decision == RuleDecision::Deny
                        && r.command
                            .split(|c: char| c.is_whitespace() || ";|&()`$<>".contains(c))
                            .any(|w| {
                                let w = w.trim_matches(|c| c == '\'' || c == '"');
                                self.programs.iter().any(|x| x == basename(w))
                            })
                }
            };
            if !hit {
                return false;
            }
        }
        true
    }
}

/// `--approve-policy FILE`: decides per rule.
///
/// Semantics (strictest match): if any `deny` rule matches, the request is denied by the
/// first such rule; otherwise the first matching `approve` rule approves it; if no rule
/// matches, it is denied. File order only breaks ties between rules of the same decision.
/// Only RISKY requests are ever approved.
#[derive(Debug, Clone)]
pub struct PolicyApprover {
    label: String,
    rules: Vec<Rule>,
}

impl PolicyApprover {
    /// Loads a policy file; `decided_by` records it as `policy:{file name}#{rule}`.
    pub fn load(path: &Path) -> Result<Self, ApprovePolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| ApprovePolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let label = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::from_toml_str(&label, &text).map_err(|e| match e {
            ApprovePolicyError::Invalid { message, .. } => ApprovePolicyError::Invalid {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses a policy; `label` names it in `decided_by`.
    pub fn from_toml_str(label: &str, text: &str) -> Result<Self, ApprovePolicyError> {
        let invalid = |message: String| ApprovePolicyError::Invalid {
            path: label.to_string(),
            message,
        };
        let file: PolicyFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut rules = Vec::new();
        for r in file.rules {
            if r.name.is_empty() || r.name.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "rule name {:?} must be one non-empty word",
                    r.name
                )));
            }
            if rules.iter().any(|x: &Rule| x.name == r.name) {
                return Err(invalid(format!("rule name {:?} is used twice", r.name)));
            }
            let command_regex = match r.command_regex {
                Some(s) => Some(
                    Regex::new(&s)
                        .map_err(|e| invalid(format!("rule {}: bad command_regex: {e}", r.name)))?,
                ),
                None => None,
            };
            rules.push(Rule {
                name: r.name,
                decision: r.decision,
                tiers: r.tiers,
                programs: r.programs,
                command_regex,
                targets: r.targets,
                reason: r.reason,
            });
        }
        Ok(Self {
            label: label.to_string(),
            rules,
        })
    }
}

impl Approver for PolicyApprover {
    fn decide(&self, r: &ApprovalRequest) -> Approval {
        let by = |rule: Option<&Rule>| DecidedBy::PolicyFile {
            file: self.label.clone(),
            rule: rule.map(|x| x.name.clone()),
        };
        if r.classification.classification != Class::Risky {
            return Approval::deny(by(None), "only RISKY commands can be approved");
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|x| x.decision == RuleDecision::Deny && x.matches(r))
        {
            let reason = rule
                .reason
                .clone()
                .unwrap_or_else(|| format!("denied by approval policy rule {}", rule.name));
            return Approval::deny(by(Some(rule)), reason);
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|x| x.decision == RuleDecision::Approve && x.matches(r))
        {
            return Approval {
                decision: Decision::Approve,
                decided_by: by(Some(rule)),
            };
        }
        Approval::deny(by(None), "no approval policy rule matched (default deny)")
    }
}

// ---------------------------------------------------------------------------------------
// Terminal prompt

type LineSource = Arc<Mutex<mpsc::Receiver<Option<String>>>>;

/// The interactive prompt: shows a box with the tier, reason, target, command and the
/// requester's reasoning, and reads `a` (approve), `d` (deny, then an optional reason) or
/// `m` (modify, then the new command). No answer within the timeout, end of input, or any
/// other answer is a denial.
pub struct TerminalApprover {
    lines: LineSource,
    out: Mutex<Box<dyn Write + Send>>,
    timeout: Duration,
}

impl fmt::Debug for TerminalApprover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalApprover")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why no terminal prompt could be set up.
#[derive(Debug, thiserror::Error)]
#[error("no terminal to ask for approval ({0}); pass --approve never|all-risky or --approve-policy FILE to decide non-interactively")]
pub struct NoTerminal(pub String);

impl TerminalApprover {
    /// Prompts on `/dev/tty`, or on stdin/stderr when stdin is a terminal. Refuses when
    /// neither is a terminal (it never reads a non-terminal stdin).
    pub fn open(timeout: Duration) -> Result<Self, NoTerminal> {
        if let Ok(tty) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
        {
            if tty.is_terminal() {
                let w = tty.try_clone().map_err(|e| NoTerminal(e.to_string()))?;
                return Ok(Self::with_io(tty, w, timeout));
            }
        }
        if std::io::stdin().is_terminal() {
            return Ok(Self::with_io(std::io::stdin(), std::io::stderr(), timeout));
        }
        Err(NoTerminal(
            "neither /dev/tty nor stdin is a terminal".into(),
        ))
    }

    /// A prompt over any reader and writer (tests, other front ends). The reader is read on
    /// a background thread so that a timeout never blocks the caller.
    pub fn with_io<R, W>(input: R, output: W, timeout: Duration) -> Self
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut r = BufReader::new(input);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        break;
                    }
                    Ok(_) => {
                        if tx
                            .send(Some(line.trim_end_matches(['\n', '\r']).to_string()))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        Self {
            lines: Arc::new(Mutex::new(rx)),
            out: Mutex::new(Box::new(output)),
            timeout,
        }
    }

    fn read_line(&self, deadline: Instant) -> Result<String, &'static str> {
        let rx = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => Err("end of input"),
            Err(mpsc::RecvTimeoutError::Timeout) => Err("timed out"),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("end of input"),
        }
    }

    fn say(&self, text: &str) {
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

/// Renders the approval box shown on the terminal (the command is shown redacted).
pub fn render_prompt(r: &ApprovalRequest, timeout: Duration) -> String {
    let mut rows = vec![
        format!("APPROVAL REQUIRED ({})", r.classification.classification),
        format!("tier:      {}", r.classification.tier),
        format!("reason:    {}", r.classification.reason),
        format!("target:    {}", r.target.describe()),
        // Secrets in the command are not shown on the screen (policies see the real text).
        format!("command:   {}", crate::redact::redact(&r.command).text),
        format!(
            "reasoning: {}",
            if r.reasoning.is_empty() {
                "(none given)"
            } else {
                &r.reasoning
            }
        ),
    ];
    if r.round > 1 {
        rows.push(format!("(modified command, round {})", r.round));
    }
    let width = rows
        .iter()
        .map(|x| x.chars().count())
        .max()
        .unwrap_or(0)
        .min(120);
    let mut s = format!("+{}+\n", "-".repeat(width + 2));
    for row in rows {
        let n = row.chars().count();
        s.push_str(&format!(
            "| {row}{} |\n",
            " ".repeat(width.saturating_sub(n))
        ));
    }
    s.push_str(&format!("+{}+\n", "-".repeat(width + 2)));
    s.push_str(&format!(
        "[a]pprove / [d]eny / [m]odify (denied after {}s without an answer): ",
        timeout.as_secs()
    ));
    s
}

impl Approver for TerminalApprover {
    fn decide(&self, r: &ApprovalRequest) -> Approval {
        let deadline = Instant::now() + self.timeout;
        self.say(&render_prompt(r, self.timeout));
        let deny = |why: &str| Approval::deny(DecidedBy::Terminal, why.to_string());
        let answer = match self.read_line(deadline) {
            Ok(a) => a,
            Err(e) => {
                self.say(&format!("\ndenied: {e}\n"));
                return deny(&format!("no answer at the terminal ({e})"));
            }
        };
        match answer.trim().to_ascii_lowercase().as_str() {
            "a" | "approve" | "y" | "yes" => Approval {
                decision: Decision::Approve,
                decided_by: DecidedBy::Terminal,
            },
            "d" | "deny" | "n" | "no" => {
                self.say("reason (optional, Enter to skip): ");
                let reason = self
                    .read_line(deadline)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                Approval {
                    decision: Decision::Deny { reason },
                    decided_by: DecidedBy::Terminal,
                }
            }
            "m" | "modify" => {
                self.say("new command: ");
                match self.read_line(deadline) {
                    Ok(c) if !c.trim().is_empty() => Approval {
                        decision: Decision::Modify {
                            command: c.trim().to_string(),
                        },
                        decided_by: DecidedBy::Terminal,
                    },
                    Ok(_) => deny("empty modification"),
                    Err(e) => deny(&format!("no modified command given ({e})")),
                }
            }
            other => deny(&format!("answer {other:?} is not an approval")),
        }
    }
}
