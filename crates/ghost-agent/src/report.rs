//! The reports of a session: the structured [`Report`] (`ghost_report_<sid>.json`), its
//! Markdown rendering (`ghost_report_<sid>.md`) and the audit report
//! (`ghost_audit_<sid>.md`).
//!
//! **Root causes** are the accepted conclusion's hypotheses, in the order the conclusion
//! names them. Each contributes one entry per linked cause finding (a finding with a
//! remediation; when none has one, its most severe linked finding; when it links none, the
//! hypothesis itself), carrying the finding's component, mechanism, kind, attributes and
//! evidence (the finding's and the hypothesis' audit ids). Confidence is `high` when the
//! hypothesis rests on evidence from two or more tool calls (a call and the commands it ran
//! count once) or on a deciding-rule finding (a
//! blocking finding that names its rule, or one with a `deciding_rule` attribute), `medium`
//! with one record, `low` with none.
//!
//! **Recommended actions** are the root-cause findings' remediations: blocking causes first
//! (`nsg_deny`, `route_*`, `iptables_*`, `policy_drop`, `fail2ban_ban`), then causes of other
//! kinds, then degradations (`tbf_rate`, `delay`, `random_loss`, `corruption`,
//! `packet_diversion`), each in conclusion order; a verification step follows each blocking
//! fix (so the next fix is not confused with it), and final verification steps re-run the
//! symptom's measurement (pipe-meter for performance, a TCP connect per port, ping for ICMP).
//!
//! **Not checked** lists required coverage that was not inspected, aspects marked
//! unverifiable, and unverifiable hypotheses, each with the reason.
//!
//! **Markdown safety**: every string from the session (host-controlled text, brain text,
//! commands) is rendered either inside a code span (fenced with more backticks than it
//! contains, control characters flattened, `|` escaped in tables) or as text with every
//! Markdown-significant ASCII character backslash-escaped: it can never become a link, an image, HTML, a
//! heading or a table cell break.

use std::collections::{BTreeMap, BTreeSet};

use safety_shell::audit::{AuditDecision, AuditRecord, VerifyReport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{
    CoverageState, Finding, Hypothesis, HypothesisStatus, Layer, Protocol, SessionState,
    SessionStatus, Symptom, SymptomKind, Thread,
};
use crate::rules;

/// Format version of the JSON report.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// Longest string rendered into Markdown (characters); longer ones are cut with `…`.
const MAX_MD_STRING: usize = 2000;

/// How sure the report is of a root cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    /// Evidence from two or more tool calls, or a deciding-rule finding.
    High,
    /// Evidence from one tool call.
    Medium,
    /// No evidence record (only possible for a state the rules did not accept).
    Low,
}

impl Confidence {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// One root cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// One sentence.
    pub summary: String,
    /// The layer.
    pub layer: Layer,
    /// The VM, when the cause is on one.
    pub vm: Option<String>,
    /// The exact rule, chain, qdisc, route or NSG rule (empty when the hypothesis links no
    /// finding).
    pub component: String,
    /// How it causes the symptom.
    pub mechanism: String,
    /// Audit ids proving it.
    pub evidence: Vec<String>,
    /// How sure.
    pub confidence: Confidence,
    /// The finding's kind (`nsg_deny`, `tbf_rate`, ...; empty without a finding).
    pub kind: String,
    /// The finding's structured facts.
    pub attrs: BTreeMap<String, Value>,
    /// The confirmed hypothesis.
    pub hypothesis: String,
    /// Its thread.
    pub thread: String,
    /// The finding it comes from, if any.
    pub finding: Option<String>,
    /// True when the summary or component quotes host-controlled text.
    pub untrusted: bool,
}

/// What a recommended action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Undo a cause.
    Fix,
    /// Check a blocking fix before the next step.
    Verify,
    /// Re-run the symptom's measurement at the end.
    FinalVerify,
}

/// What a fix undoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InverseOf {
    /// The finding id.
    pub finding: String,
    /// Its component.
    pub component: String,
    /// Its kind.
    pub kind: String,
}

/// One recommended action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// 1, 2, 3, ...
    pub order: u32,
    /// Fix, verification, or the final verification.
    pub kind: ActionKind,
    /// What to do, in one sentence.
    pub action: String,
    /// The exact command (or tool call).
    pub command: String,
    /// Where: a VM name, or `az` for the control plane.
    pub run_on: String,
    /// For a fix: the finding and component it undoes.
    pub inverse_of: Option<InverseOf>,
    /// For a fix: how to verify it.
    pub verify: Option<String>,
}

/// Something the session did not check, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotChecked {
    /// `nsg_forward`, `nsg_return`, `routes`, `firewall`, `traffic_control`, or `hypothesis`.
    pub aspect: String,
    /// The VM, for per-VM aspects and hypotheses about one VM.
    pub vm: Option<String>,
    /// The hypothesis, when the entry is an unverifiable hypothesis.
    pub hypothesis: Option<String>,
    /// Why.
    pub reason: String,
}

/// The JSON report of a session (`ghost_report_<sid>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `ghost-agent`.
    pub tool: String,
    /// The crate version.
    pub tool_version: String,
    /// `ghost_…`.
    pub session_id: String,
    /// The state's last update (RFC 3339 UTC).
    pub created_at: String,
    /// The brain that ran.
    pub brain: String,
    /// The symptom, parsed.
    pub symptom: Symptom,
    /// Source VM of the pair.
    pub source_vm: String,
    /// Destination VM of the pair.
    pub dest_vm: String,
    /// Where the session is.
    pub status: SessionStatus,
    /// True when a conclusion was accepted with no root cause.
    pub healthy: bool,
    /// The accepted conclusion's summary.
    pub summary: Option<String>,
    /// The root causes, in fix order.
    pub root_causes: Vec<RootCause>,
    /// The threads.
    pub threads: Vec<Thread>,
    /// Every hypothesis.
    pub hypotheses: Vec<Hypothesis>,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Finding ids by layer, then by VM (`path` for findings on no VM).
    pub findings_by_layer: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Ordered actions ending with the verification.
    pub recommended_actions: Vec<Action>,
    /// What was not checked and why.
    pub not_checked: Vec<NotChecked>,
    /// Conclusion attempts the rules refused.
    pub refusals: Vec<String>,
    /// Tool calls made.
    pub tool_calls: usize,
    /// Commands run through the gate by those calls.
    pub commands: usize,
    /// Requests that needed approval (approved or denied); None until counted from the
    /// audit records ([`Report::count_approvals`]).
    pub approvals_asked: Option<usize>,
    /// Denied or refused commands.
    pub denials: usize,
    /// Brain steps.
    pub steps: usize,
    /// LLM usage, when an LLM brain ran.
    pub usage: Option<Value>,
}

impl Report {
    /// Counts the requests that needed approval (decision approved or denied) among the
    /// session's audit records.
    pub fn count_approvals(&mut self, records: &[AuditRecord]) {
        self.approvals_asked = Some(
            records
                .iter()
                .filter(|r| matches!(r.decision, AuditDecision::Approved | AuditDecision::Denied))
                .count(),
        );
    }
}

pub use crate::model::{is_blocking_kind, is_degradation_kind};

fn is_deciding(f: &Finding) -> bool {
    f.attrs.contains_key("deciding_rule") || (is_blocking_kind(&f.kind) && !f.component.is_empty())
}

fn push_unique(v: &mut Vec<String>, items: &[String]) {
    for i in items {
        if !i.is_empty() && !v.contains(i) {
            v.push(i.clone());
        }
    }
}

fn root_causes_of(state: &SessionState) -> Vec<RootCause> {
    let Some(conclusion) = &state.conclusion else {
        return Vec::new();
    };
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &state.calls {
        for id in &c.command_audit_ids {
            owner.insert(id.as_str(), c.audit_id.as_str());
        }
    }
    let mut out = Vec::new();
    for hid in &conclusion.root_causes {
        let Some(h) = state.hypotheses.iter().find(|h| &h.id == hid) else {
            continue;
        };
        let linked: Vec<&Finding> = h
            .findings
            .iter()
            .filter_map(|id| state.findings.iter().find(|f| &f.id == id))
            .collect();
        let mut all_evidence = Vec::new();
        push_unique(&mut all_evidence, &h.evidence);
        for f in &linked {
            push_unique(&mut all_evidence, &f.evidence);
        }
        // Records are independent when they come from different tool calls (a call and the
        // commands it ran are one piece of evidence).
        let independent: BTreeSet<&str> = all_evidence
            .iter()
            .map(|id| owner.get(id.as_str()).copied().unwrap_or(id.as_str()))
            .collect();
        let confidence = if independent.len() >= 2 || linked.iter().any(|f| is_deciding(f)) {
            Confidence::High
        } else if all_evidence.is_empty() {
            Confidence::Low
        } else {
            Confidence::Medium
        };
        let mut causes: Vec<&Finding> = linked
            .iter()
            .copied()
            .filter(|f| f.remediation.is_some())
            .collect();
        if causes.is_empty() {
            if let Some(top) = linked.iter().copied().max_by_key(|f| f.severity) {
                // max_by_key keeps the last of equals; prefer the first listed.
                let first = linked
                    .iter()
                    .copied()
                    .find(|f| f.severity == top.severity)
                    .unwrap_or(top);
                causes.push(first);
            }
        }
        if causes.is_empty() {
            out.push(RootCause {
                summary: h.statement.clone(),
                layer: h.layer,
                vm: h.vm.clone(),
                component: String::new(),
                mechanism: h.notes.last().cloned().unwrap_or_default(),
                evidence: all_evidence.clone(),
                confidence,
                kind: String::new(),
                attrs: BTreeMap::new(),
                hypothesis: h.id.clone(),
                thread: h.thread.clone(),
                finding: None,
                untrusted: false,
            });
            continue;
        }
        // One component found by two tools (the route lookup and the route audit) is one
        // cause: its evidence joins.
        let mut merged: Vec<(&Finding, Vec<String>)> = Vec::new();
        for f in causes {
            match merged
                .iter_mut()
                .find(|(g, _)| g.kind == f.kind && g.component == f.component && g.vm == f.vm)
            {
                Some((_, ev)) => push_unique(ev, &f.evidence),
                None => merged.push((f, f.evidence.clone())),
            }
        }
        for (f, found_by) in merged {
            let mut evidence = Vec::new();
            push_unique(&mut evidence, &found_by);
            push_unique(&mut evidence, &h.evidence);
            out.push(RootCause {
                summary: f.summary.clone(),
                layer: f.layer,
                vm: f.vm.clone(),
                component: f.component.clone(),
                mechanism: f.mechanism.clone(),
                evidence,
                confidence,
                kind: f.kind.clone(),
                attrs: f.attrs.clone(),
                hypothesis: h.id.clone(),
                thread: h.thread.clone(),
                finding: Some(f.id.clone()),
                untrusted: f.untrusted,
            });
        }
    }
    out
}

/// A final check that connects from `from` to `addr` on a port (`what` names the target).
fn connect_check(
    from: &str,
    what: &str,
    addr: &str,
    protocol: Option<Protocol>,
    port: u16,
) -> (String, String) {
    let udp = protocol == Some(Protocol::Udp);
    (
        format!(
            "Connect from {from} to {what} on {}/{port} again.",
            if udp { "udp" } else { "tcp" }
        ),
        format!("nc -vz{} -w 5 {addr} {port}", if udp { "u" } else { "" }),
    )
}

/// The final verification commands: re-run what the symptom measured.
/// Each is (action, command, where to run it).
fn final_checks(state: &SessionState) -> Vec<(String, String, String)> {
    let dest = state
        .symptom
        .addresses
        .first()
        .cloned()
        .unwrap_or_else(|| state.dest_vm.clone());
    // The reported complaints (or the one thread made of the whole symptom); threads the
    // investigation opened for other problems carry their own verification in their fix.
    let mut complaints: Vec<_> = if state.symptom.complaints.is_empty() {
        state.threads.iter().take(1).map(|t| &t.complaint).collect()
    } else {
        state
            .threads
            .iter()
            .map(|t| &t.complaint)
            .filter(|c| state.symptom.complaints.contains(c))
            .collect()
    };
    if complaints.is_empty() {
        complaints = state.symptom.complaints.iter().collect();
    }
    let mut out: Vec<(String, String)> = Vec::new();
    // Checks of the internet run on the VM whose internet it is.
    let mut internet_checks: Vec<(String, String)> = Vec::new();
    let side = state.internet_side();
    let mut push = |action: String, command: String| {
        if !out.iter().any(|(_, c)| *c == command) {
            out.push((action, command));
        }
    };
    for c in complaints {
        if c.internet {
            // The probe address stands for the internet.
            let inet = state
                .internet_address
                .clone()
                .unwrap_or_else(|| crate::tools::DEFAULT_INTERNET_PROBE_IP.to_string());
            let checks: Vec<(String, String)> = if c.protocol == Some(Protocol::Icmp) {
                vec![(
                    format!("Ping the internet ({inet}) from {side} again."),
                    format!("ping -c 5 -W 2 {inet}"),
                )]
            } else if c.ports.is_empty() {
                vec![connect_check(
                    side,
                    &format!("the internet ({inet})"),
                    &inet,
                    c.protocol,
                    443,
                )]
            } else {
                c.ports
                    .iter()
                    .map(|p| {
                        connect_check(
                            side,
                            &format!("the internet ({inet})"),
                            &inet,
                            c.protocol,
                            *p,
                        )
                    })
                    .collect()
            };
            for (action, command) in checks {
                if !internet_checks.iter().any(|(_, x)| *x == command) {
                    internet_checks.push((action, command));
                }
            }
            continue;
        }
        let throughput = c
            .kinds
            .iter()
            .any(|k| matches!(k, SymptomKind::Throughput | SymptomKind::Slow));
        let latency = c.kinds.contains(&SymptomKind::Latency);
        if throughput || latency {
            let test = match (throughput, latency) {
                (true, true) => "both",
                (true, false) => "throughput",
                _ => "latency",
            };
            push(
                format!(
                    "Re-run the {test} measurement from {} to {} and compare it with the baseline or the expectations.",
                    state.source_vm, state.dest_vm
                ),
                format!("pipe-meter --config config.env --test-type {test}"),
            );
        }
        if c.protocol == Some(Protocol::Icmp) {
            push(
                format!("Ping {dest} from {} again.", state.source_vm),
                format!("ping -c 5 -W 2 {dest}"),
            );
        }
        if c.protocol != Some(Protocol::Icmp) {
            for p in &c.ports {
                let (action, command) =
                    connect_check(&state.source_vm, &dest, &dest, c.protocol, *p);
                push(action, command);
            }
        }
        let connectivity = c.kinds.iter().any(|k| k.is_connectivity());
        if connectivity && c.ports.is_empty() && c.protocol != Some(Protocol::Icmp) {
            push(
                format!("Check that {dest} answers from {} again.", state.source_vm),
                format!("ping -c 5 -W 2 {dest}"),
            );
        }
    }
    if out.is_empty() && internet_checks.is_empty() {
        out.push((
            format!(
                "Re-run the measurement from {} to {} and compare it with the baseline or the expectations.",
                state.source_vm, state.dest_vm
            ),
            "pipe-meter --config config.env --test-type both".to_string(),
        ));
    }
    internet_checks
        .into_iter()
        .map(|(a, c)| (a, c, side.to_string()))
        .chain(
            out.into_iter()
                .map(|(a, c)| (a, c, state.source_vm.clone())),
        )
        .collect()
}

fn actions_of(state: &SessionState, causes: &[RootCause]) -> Vec<Action> {
    let mut fixes: Vec<&Finding> = Vec::new();
    for rc in causes {
        let Some(fid) = &rc.finding else { continue };
        if let Some(f) = state.findings.iter().find(|f| &f.id == fid) {
            if f.remediation.is_some() && !fixes.iter().any(|x| x.id == f.id) {
                fixes.push(f);
            }
        }
    }
    let rank = |f: &Finding| {
        if is_blocking_kind(&f.kind) {
            0
        } else if is_degradation_kind(&f.kind) {
            2
        } else {
            1
        }
    };
    fixes.sort_by_key(|f| rank(f)); // stable: conclusion order within a rank
    let mut actions = Vec::new();
    let mut order = 0u32;
    let mut next = || {
        order += 1;
        order
    };
    for f in &fixes {
        let Some(r) = &f.remediation else { continue };
        actions.push(Action {
            order: next(),
            kind: ActionKind::Fix,
            action: if r.explanation.trim().is_empty() {
                format!("Undo {} ({}).", f.component, f.kind)
            } else {
                r.explanation.clone()
            },
            command: r.command.clone(),
            run_on: r.run_on.clone(),
            inverse_of: Some(InverseOf {
                finding: f.id.clone(),
                component: f.component.clone(),
                kind: f.kind.clone(),
            }),
            verify: Some(r.verify.clone()),
        });
        if is_blocking_kind(&f.kind) {
            actions.push(Action {
                order: next(),
                kind: ActionKind::Verify,
                action: format!(
                    "Verify that {} no longer blocks the path before the next step.",
                    f.component
                ),
                command: r.verify.clone(),
                run_on: r.run_on.clone(),
                inverse_of: None,
                verify: None,
            });
        }
    }
    if !fixes.is_empty() {
        for (action, command, run_on) in final_checks(state) {
            actions.push(Action {
                order: next(),
                kind: ActionKind::FinalVerify,
                action,
                command,
                run_on,
                inverse_of: None,
                verify: None,
            });
        }
    }
    actions
}

fn aspect_key(aspect: crate::model::Aspect) -> String {
    serde_json::to_value(aspect)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn not_checked_of(state: &SessionState) -> Vec<NotChecked> {
    let mut out = Vec::new();
    for (aspect, vm, why) in rules::coverage_missing(state) {
        out.push(NotChecked {
            aspect: aspect_key(aspect),
            vm,
            hypothesis: None,
            reason: why,
        });
    }
    for m in &state.coverage {
        if let CoverageState::Unverifiable { reason } = &m.state {
            let dup = out
                .iter()
                .any(|n| n.aspect == aspect_key(m.aspect) && n.vm == m.vm && &n.reason == reason);
            if !dup {
                out.push(NotChecked {
                    aspect: aspect_key(m.aspect),
                    vm: m.vm.clone(),
                    hypothesis: None,
                    reason: reason.clone(),
                });
            }
        }
    }
    for h in &state.hypotheses {
        if h.status == HypothesisStatus::Unverifiable {
            out.push(NotChecked {
                aspect: "hypothesis".into(),
                vm: h.vm.clone(),
                hypothesis: Some(h.id.clone()),
                reason: format!(
                    "{}: {}",
                    h.statement,
                    h.notes
                        .last()
                        .cloned()
                        .unwrap_or_else(|| "unverifiable (no note)".into())
                ),
            });
        }
    }
    out
}

/// Builds the report from a session state.
pub fn build_report(state: &SessionState) -> Report {
    let root_causes = root_causes_of(state);
    let recommended_actions = actions_of(state, &root_causes);
    let mut findings_by_layer: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for f in &state.findings {
        findings_by_layer
            .entry(f.layer.as_str().to_string())
            .or_default()
            .entry(f.vm.clone().unwrap_or_else(|| "path".into()))
            .or_default()
            .push(f.id.clone());
    }
    let concluded = state.status == SessionStatus::Concluded && state.conclusion.is_some();
    Report {
        schema_version: REPORT_SCHEMA_VERSION,
        tool: "ghost-agent".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        session_id: state.session_id.clone(),
        created_at: state.updated_at.clone(),
        brain: state.brain.clone(),
        symptom: state.symptom.clone(),
        source_vm: state.source_vm.clone(),
        dest_vm: state.dest_vm.clone(),
        status: state.status,
        healthy: concluded && root_causes.is_empty(),
        summary: state.conclusion.as_ref().map(|c| c.summary.clone()),
        root_causes,
        threads: state.threads.clone(),
        hypotheses: state.hypotheses.clone(),
        findings: state.findings.clone(),
        findings_by_layer,
        recommended_actions,
        not_checked: not_checked_of(state),
        refusals: state.refusals.clone(),
        tool_calls: state.calls.len(),
        commands: state.calls.iter().map(|c| c.command_audit_ids.len()).sum(),
        approvals_asked: None,
        denials: state.calls.iter().map(|c| c.result.denials.len()).sum(),
        steps: state.steps.len(),
        usage: state.usage.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Markdown

fn clip(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > MAX_MD_STRING {
        let mut cut: String = flat.chars().take(MAX_MD_STRING).collect();
        cut.push('…');
        cut
    } else {
        flat
    }
}

/// `s` as an inline code span: control characters flattened, fenced with one backtick more
/// than its longest backtick run, padded when it starts or ends with a backtick or space.
pub fn md_code(s: &str) -> String {
    let s = clip(s);
    if s.trim().is_empty() {
        return "` `".to_string();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in s.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = s.starts_with('`') || s.ends_with('`') || s.starts_with(' ') || s.ends_with(' ');
    if pad {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// ASCII characters that can start or end Markdown syntax (GitHub flavour, math included).
const MD_SPECIAL: &str = "\\`*_{}[]()<>#+-.!|~&$=\"'";

/// `s` as plain text: every Markdown-significant ASCII character backslash-escaped, control
/// characters (new lines included) flattened to spaces.
pub fn md_text(s: &str) -> String {
    let s = clip(s);
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if MD_SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A code span for a table cell (`|` escaped: GitHub tables split on it even in code).
fn cell_code(s: &str) -> String {
    md_code(&s.replace('|', "\\|"))
}

fn ids(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.iter().map(|i| md_code(i)).collect::<Vec<_>>().join(", ")
    }
}

fn cell_ids(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.iter()
            .map(|i| cell_code(i))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn status_str(s: HypothesisStatus) -> &'static str {
    match s {
        HypothesisStatus::Open => "open",
        HypothesisStatus::Confirmed => "confirmed",
        HypothesisStatus::Refuted => "refuted",
        HypothesisStatus::Unverifiable => "unverifiable",
        HypothesisStatus::Contradicted => "contradicted",
    }
}

fn session_status_str(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Running => "running",
        SessionStatus::Interrupted => "interrupted",
        SessionStatus::Concluded => "concluded",
    }
}

fn severity_str(s: crate::model::Severity) -> &'static str {
    use crate::model::Severity::*;
    match s {
        Info => "info",
        Low => "low",
        Medium => "medium",
        High => "high",
    }
}

/// Host text as code (untrusted) or escaped text.
fn prose(s: &str, untrusted: bool) -> String {
    if untrusted {
        format!("{} (host text)", md_code(s))
    } else {
        md_text(s)
    }
}

/// Renders `ghost_report_<sid>.md`.
pub fn render_report_md(r: &Report) -> String {
    use std::fmt::Write;
    let mut md = String::new();
    let _ = writeln!(md, "# ghost-agent report {}\n", md_code(&r.session_id));
    let _ = writeln!(md, "- Symptom: {}", md_text(&r.symptom.text));
    let _ = writeln!(
        md,
        "- Pair: {} → {}",
        md_code(&r.source_vm),
        md_code(&r.dest_vm)
    );
    let _ = writeln!(md, "- Brain: {}", md_code(&r.brain));
    let verdict = match (r.status, r.healthy, r.root_causes.len()) {
        (SessionStatus::Concluded, true, _) => "concluded: the path was found healthy".to_string(),
        (SessionStatus::Concluded, false, n) => format!("concluded: {n} root cause(s)"),
        (s, _, _) => format!("{}: no conclusion accepted yet", session_status_str(s)),
    };
    let _ = writeln!(md, "- Status: {verdict}");
    let _ = writeln!(md, "- Report time: {}", md_code(&r.created_at));
    let _ = writeln!(
        md,
        "- Activity: {} tool calls, {} commands, {} approvals asked, {} denials, {} steps",
        r.tool_calls,
        r.commands,
        r.approvals_asked
            .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
        r.denials,
        r.steps
    );
    if let Some(s) = &r.summary {
        let _ = writeln!(md, "\n## Conclusion\n\n{}", md_text(s));
    }

    let _ = writeln!(md, "\n## Root causes\n");
    if r.root_causes.is_empty() {
        let _ = writeln!(
            md,
            "{}",
            if r.healthy {
                "None: every layer checked was clean for this symptom."
            } else {
                "None named: no conclusion was accepted."
            }
        );
    }
    for (i, rc) in r.root_causes.iter().enumerate() {
        let _ = writeln!(
            md,
            "{}. {}",
            i + 1,
            if rc.untrusted {
                md_code(&rc.summary)
            } else {
                format!("**{}**", md_text(&rc.summary))
            }
        );
        let _ = writeln!(
            md,
            "   - Component: {} (kind {}, layer {}, VM {})",
            md_code(&rc.component),
            md_code(&rc.kind),
            md_code(rc.layer.as_str()),
            rc.vm.as_deref().map_or_else(|| "none".to_string(), md_code)
        );
        let _ = writeln!(md, "   - Mechanism: {}", prose(&rc.mechanism, rc.untrusted));
        let _ = writeln!(md, "   - Evidence: {}", ids(&rc.evidence));
        let _ = writeln!(md, "   - Confidence: {}", rc.confidence.as_str());
        let _ = writeln!(
            md,
            "   - Hypothesis {} (thread {}){}",
            md_code(&rc.hypothesis),
            md_code(&rc.thread),
            rc.finding
                .as_deref()
                .map_or_else(String::new, |f| format!(", finding {}", md_code(f)))
        );
    }

    if !r.threads.is_empty() {
        let _ = writeln!(md, "\n## Threads\n");
        for t in &r.threads {
            let kinds: Vec<&str> = t.complaint.kinds.iter().map(|k| k.as_str()).collect();
            let _ = writeln!(
                md,
                "- {}: {} (kinds: {})",
                md_code(&t.id),
                md_text(&t.complaint.text),
                if kinds.is_empty() {
                    "none".to_string()
                } else {
                    kinds.join(", ")
                }
            );
        }
    }

    let _ = writeln!(md, "\n## Hypotheses\n");
    if r.hypotheses.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(
            md,
            "| id | thread | status | layer | VM | statement | evidence | findings | denials | notes |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for h in &r.hypotheses {
            let notes: Vec<String> = h.notes.iter().map(|n| md_text(n)).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell_code(&h.id),
                cell_code(&h.thread),
                status_str(h.status),
                h.layer.as_str(),
                h.vm.as_deref().map_or_else(|| "-".to_string(), cell_code),
                md_text(&h.statement),
                cell_ids(&h.evidence),
                cell_ids(&h.findings),
                h.denials,
                if notes.is_empty() {
                    "-".to_string()
                } else {
                    notes.join("; ")
                }
            );
        }
    }

    let _ = writeln!(md, "\n## Findings by layer and VM\n");
    if r.findings.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for (layer, by_vm) in &r.findings_by_layer {
        let _ = writeln!(md, "### {}\n", md_text(layer));
        for (vm, fids) in by_vm {
            let _ = writeln!(md, "- {}", md_code(vm));
            for fid in fids {
                let Some(f) = r.findings.iter().find(|f| &f.id == fid) else {
                    continue;
                };
                let _ = writeln!(
                    md,
                    "  - {} {} {} on {}: {} (evidence {})",
                    md_code(if f.id.is_empty() { "?" } else { &f.id }),
                    severity_str(f.severity),
                    md_code(&f.kind),
                    md_code(&f.component),
                    prose(&f.summary, f.untrusted),
                    ids(&f.evidence)
                );
            }
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "\n## Recommended actions\n");
    if r.recommended_actions.is_empty() {
        let _ = writeln!(md, "None.");
    }
    for a in &r.recommended_actions {
        let label = match a.kind {
            ActionKind::Fix => "Fix",
            ActionKind::Verify => "Verify",
            ActionKind::FinalVerify => "Final verification",
        };
        let _ = writeln!(md, "{}. {label}: {}", a.order, md_text(&a.action));
        let _ = writeln!(
            md,
            "   - Run on {}: {}",
            md_code(&a.run_on),
            md_code(&a.command)
        );
        if let Some(inv) = &a.inverse_of {
            let _ = writeln!(
                md,
                "   - Inverse of {} ({} {})",
                md_code(&inv.finding),
                md_code(&inv.kind),
                md_code(&inv.component)
            );
        }
        if let Some(v) = &a.verify {
            let _ = writeln!(md, "   - Verify with: {}", md_code(v));
        }
    }

    let _ = writeln!(md, "\n## Not checked\n");
    if r.not_checked.is_empty() {
        let _ = writeln!(md, "Nothing: every required aspect was inspected.");
    }
    for n in &r.not_checked {
        let who = match (&n.hypothesis, &n.vm) {
            (Some(h), Some(vm)) => format!("{} on {}", md_code(h), md_code(vm)),
            (Some(h), None) => md_code(h),
            (None, Some(vm)) => format!("{} of {}", md_code(&n.aspect), md_code(vm)),
            (None, None) => md_code(&n.aspect),
        };
        let _ = writeln!(md, "- {who}: {}", md_text(&n.reason));
    }

    if !r.refusals.is_empty() {
        let _ = writeln!(md, "\n## Refused conclusion attempts\n");
        for x in &r.refusals {
            let _ = writeln!(md, "- {}", md_text(x));
        }
    }
    md
}

fn outcome_of(r: &AuditRecord) -> String {
    let mut parts: Vec<String> = Vec::new();
    match r.decision {
        AuditDecision::Denied | AuditDecision::Forbidden => {
            parts.push(format!(
                "not run: {}",
                r.denial_reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
        AuditDecision::Auto | AuditDecision::Approved => {
            if let Some(e) = &r.error {
                parts.push(format!("error: {e}"));
            }
            if r.timed_out {
                parts.push("timed out".into());
            }
            if let Some(s) = r.signal {
                parts.push(format!("signal {s}"));
            }
            if let Some(c) = r.exit_code {
                parts.push(format!("exit {c}"));
            }
            if parts.is_empty() {
                parts.push("no exit status recorded".into());
            }
        }
    }
    if let Some(d) = r.duration_ms {
        parts.push(format!("{d} ms"));
    }
    parts.join(", ")
}

/// Renders `ghost_audit_<sid>.md`: every tool call and command with its audit id,
/// classification, decision and outcome, and the integrity statement.
pub fn render_audit_md(
    state: &SessionState,
    records: &[AuditRecord],
    verify: Result<&VerifyReport, String>,
) -> String {
    use std::fmt::Write;
    let by_id: BTreeMap<&str, &AuditRecord> =
        records.iter().map(|r| (r.audit_id.as_str(), r)).collect();
    let call_ids: BTreeSet<&str> = state.calls.iter().map(|c| c.audit_id.as_str()).collect();
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for c in &state.calls {
        for id in &c.command_audit_ids {
            owner.insert(id.as_str(), c.audit_id.as_str());
        }
    }

    let mut md = String::new();
    let _ = writeln!(md, "# ghost-agent audit {}\n", md_code(&state.session_id));
    let _ = writeln!(md, "- Brain: {}", md_code(&state.brain));
    let _ = writeln!(
        md,
        "- Started {}, last update {}, status {}",
        md_code(&state.created_at),
        md_code(&state.updated_at),
        session_status_str(state.status)
    );
    let _ = writeln!(
        md,
        "- {} tool calls, {} audit records",
        state.calls.len(),
        records.len()
    );

    let _ = writeln!(md, "\n## Integrity\n");
    match verify {
        Ok(v) => {
            let _ = writeln!(
                md,
                "The audit chain verifies: {} records, every hash and link recomputed; chain head {}.",
                v.records,
                md_code(&v.head_hash)
            );
        }
        Err(e) => {
            let _ = writeln!(
                md,
                "**The audit chain does NOT verify**: {}. Treat the records below as unproven.",
                md_text(&e)
            );
        }
    }
    let mut cited: Vec<&str> = Vec::new();
    for c in &state.calls {
        cited.push(&c.audit_id);
        cited.extend(c.command_audit_ids.iter().map(String::as_str));
    }
    let missing: Vec<String> = cited
        .iter()
        .filter(|id| !id.is_empty() && !by_id.contains_key(*id))
        .map(|id| md_code(id))
        .collect();
    if missing.is_empty() {
        let _ = writeln!(md, "\nEvery audit id the session cites is in the log.");
    } else {
        let _ = writeln!(
            md,
            "\n**Audit ids cited by the session but absent from the log**: {}.",
            missing.join(", ")
        );
    }

    let _ = writeln!(md, "\n## Tool calls\n");
    if state.calls.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(
            md,
            "| # | audit id | tool | reason | classification | decision | outcome | commands |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for (i, c) in state.calls.iter().enumerate() {
            let (class, decision) = match by_id.get(c.audit_id.as_str()) {
                Some(r) => (
                    r.classification.as_str().to_string(),
                    r.decision.as_str().to_string(),
                ),
                None => ("not in log".to_string(), "not in log".to_string()),
            };
            let outcome = if c.result.ok {
                format!("ok, {} ms", c.duration_ms)
            } else {
                format!(
                    "failed: {}",
                    c.result.error.as_deref().unwrap_or("no reason recorded")
                )
            };
            let denials = if c.result.denials.is_empty() {
                String::new()
            } else {
                format!(" ({} denied)", c.result.denials.len())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {}{} | {} |",
                i + 1,
                cell_code(&c.audit_id),
                cell_code(&c.tool),
                md_text(&c.reason),
                class,
                decision,
                md_text(&outcome),
                denials,
                cell_ids(&c.command_audit_ids)
            );
        }
    }

    let _ = writeln!(md, "\n## Commands\n");
    let commands: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| !call_ids.contains(r.audit_id.as_str()))
        .collect();
    if commands.is_empty() {
        let _ = writeln!(md, "None.");
    } else {
        let _ = writeln!(
            md,
            "| audit id | tool call | target | command | classification | tier | decision | decided by | outcome |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
        for r in commands {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell_code(&r.audit_id),
                owner
                    .get(r.audit_id.as_str())
                    .map_or_else(|| "-".to_string(), |o| cell_code(o)),
                cell_code(&r.target),
                match &r.modified_command {
                    Some(m) => format!("{} (modified to {})", cell_code(&r.command), cell_code(m)),
                    None => cell_code(&r.command),
                },
                r.classification.as_str(),
                r.tier.as_str(),
                r.decision.as_str(),
                cell_code(&r.decided_by),
                md_text(&outcome_of(r))
            );
        }
    }

    let denials: Vec<_> = state
        .calls
        .iter()
        .flat_map(|c| c.result.denials.iter().map(move |d| (c, d)))
        .collect();
    if !denials.is_empty() {
        let _ = writeln!(md, "\n## Denials\n");
        for (c, d) in denials {
            let _ = writeln!(
                md,
                "- {} in {} {}: {}",
                md_code(&d.command),
                md_code(&c.tool),
                d.audit_id
                    .as_deref()
                    .map_or_else(|| "(no audit id)".to_string(), md_code),
                md_text(&d.reason)
            );
        }
    }
    md
}
