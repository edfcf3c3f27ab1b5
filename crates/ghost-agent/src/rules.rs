//! The rules enforced by code for both brains (playbook and LLM): a conclusion is accepted
//! only when the session state satisfies them, whatever the brain says.
//!
//! [`check_conclusion`] refuses a [`ConclusionRequest`](crate::model::ConclusionRequest)
//! with one [`Refusal`] per broken rule instance; the rule names are stable strings:
//!
//! | rule | refused when |
//! |---|---|
//! | `unresolved_hypothesis` | a hypothesis is open or contradicted |
//! | `no_evidence` | a confirmed hypothesis cites no audit id |
//! | `unknown_evidence` | a confirmed hypothesis cites an audit id that is no tool call or command of the session, or a finding id that does not exist |
//! | `not_confirmed` | a root cause id of the request is not a confirmed hypothesis |
//! | `unnamed_cause` | a confirmed hypothesis is not named among the root causes (a report would otherwise drop a cause, or call the path healthy) |
//! | `coverage` | a required aspect ([`coverage_required`]) has no mark: inspected with an audit id of the session, or unverifiable with a reason |
//! | `thread_open` | a thread has no confirmed hypothesis and not all of its hypotheses are refuted or unverifiable (a thread with no hypothesis is open) |
//! | `unexplained_finding` | a finding of severity medium or high is linked neither to a confirmed hypothesis nor to a refuted one whose notes name the finding id |
//!
//! The last rule is what makes a second fault impossible to miss: in scenario L, confirming
//! the NSG deny leaves the destination's delay and loss finding unexplained, so the
//! conclusion is refused until a hypothesis about the shaping is confirmed (or refuted with a
//! note explaining the finding).
//!
//! Denials: [`record_denial`] counts denied commands per hypothesis; at
//! [`RuleConfig::denials_until_unverifiable`] (default 2) an open or contradicted hypothesis
//! becomes unverifiable, with a note giving the count and the last reason.
//!
//! ## Absolute values: the expectation table
//!
//! Measurements are judged by the pipe-meter tool, not here. When a baseline for the pair
//! exists the measurement is compared with it; otherwise with
//! [`Expectations`](crate::model::Expectations) (configurable per session and kept in the
//! state, so the report says what was in force):
//!
//! | expectation | default | finding when broken |
//! |---|---|---|
//! | `max_latency_us`: intra-VNet round trip (qperf `tcp_lat` reports half of it; compare like with like) | 1000 µs | `latency_high` |
//! | `min_throughput_gbps`: iperf2 throughput | 1 Gbit/s | `throughput_low` (so "stable at 5 Mbit/s", scenario K, is a finding although it is stable) |
//! | `max_variation`: coefficient of variation of a series | 0.5 | `high_variance` |

use std::collections::BTreeSet;

use serde::Serialize;

use crate::model::{
    Aspect, CoverageState, Hypothesis, HypothesisStatus, SessionState, Severity, SymptomKind,
};

/// Tunables of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleConfig {
    /// Denied commands on one hypothesis after which it becomes unverifiable.
    pub denials_until_unverifiable: u32,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            denials_until_unverifiable: 2,
        }
    }
}

/// Why a conclusion was refused: the rule and a sentence naming what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `unresolved_hypothesis`, `no_evidence`, `unknown_evidence`, `not_confirmed`,
    /// `unnamed_cause`, `coverage`, `thread_open` or `unexplained_finding`.
    pub rule: &'static str,
    /// What is wrong and what would resolve it.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.rule, self.message)
    }
}

/// Records a denied command against a hypothesis. At the configured count an open or
/// contradicted hypothesis becomes unverifiable (a confirmed or refuted one keeps its state:
/// it was decided by evidence).
pub fn record_denial(h: &mut Hypothesis, reason: &str, cfg: &RuleConfig) {
    h.denials = h.denials.saturating_add(1);
    let reason = one_line(reason);
    h.notes.push(format!(
        "Denied command #{} while testing it: {reason}",
        h.denials
    ));
    let open = matches!(
        h.status,
        HypothesisStatus::Open | HypothesisStatus::Contradicted
    );
    if open && h.denials >= cfg.denials_until_unverifiable.max(1) {
        h.status = HypothesisStatus::Unverifiable;
        h.notes.push(format!(
            "Unverifiable after {} denied commands (last: {reason}).",
            h.denials
        ));
    }
}

fn one_line(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.is_empty() {
        "no reason given".to_string()
    } else {
        flat.to_string()
    }
}

/// True when the symptom puts a path between two VMs in question: a connectivity or
/// performance kind, or no kind at all (nothing says the path is out of question). A
/// compliance or after-change question alone needs no path coverage.
pub fn path_in_question(state: &SessionState) -> bool {
    let mut kinds: Vec<SymptomKind> = state.symptom.kinds.clone();
    for t in &state.threads {
        kinds.extend(t.complaint.kinds.iter().copied());
    }
    kinds.is_empty()
        || kinds
            .iter()
            .any(|k| k.is_connectivity() || k.is_performance())
}

/// The coverage a conclusion needs: for a connectivity or performance symptom between two
/// VMs, NSGs both ways, routes, and the firewall and traffic control of both VMs; when
/// every path complaint is about reaching the internet, that VM's side alone (its
/// outbound NSG gates, routes, firewall and traffic control); nothing for a
/// compliance-only symptom (or when the pair is not two distinct VMs).
pub fn coverage_required(state: &SessionState) -> Vec<(Aspect, Option<String>)> {
    let src = state.source_vm.trim();
    let dst = state.dest_vm.trim();
    if src.is_empty() || dst.is_empty() || src == dst || !path_in_question(state) {
        return Vec::new();
    }
    // Every reported path complaint is about reaching the internet: the source's side
    // alone (threads the investigation opened for other problems it found do not widen
    // the question).
    let reported = |t: &&crate::model::Thread| {
        state.symptom.complaints.is_empty() || state.symptom.complaints.contains(&t.complaint)
    };
    let path_threads: Vec<&crate::model::Thread> = state
        .threads
        .iter()
        .filter(reported)
        .filter(|t| t.complaint.is_path())
        .collect();
    if !path_threads.is_empty() && path_threads.iter().all(|t| t.complaint.internet) {
        let side = state.internet_side().trim().to_string();
        return vec![
            (Aspect::NsgForward, None),
            (Aspect::Routes, None),
            (Aspect::Firewall, Some(side.clone())),
            (Aspect::TrafficControl, Some(side)),
        ];
    }
    vec![
        (Aspect::NsgForward, None),
        (Aspect::NsgReturn, None),
        (Aspect::Routes, None),
        (Aspect::Firewall, Some(src.to_string())),
        (Aspect::Firewall, Some(dst.to_string())),
        (Aspect::TrafficControl, Some(src.to_string())),
        (Aspect::TrafficControl, Some(dst.to_string())),
    ]
}

/// Every audit id of the session: each tool call's own and those of its commands.
pub fn known_audit_ids(state: &SessionState) -> BTreeSet<&str> {
    let mut ids = BTreeSet::new();
    for c in &state.calls {
        if !c.audit_id.is_empty() {
            ids.insert(c.audit_id.as_str());
        }
        for id in &c.command_audit_ids {
            ids.insert(id.as_str());
        }
    }
    ids
}

/// Why a required aspect is not covered, or None when it is. A path aspect (no VM) is
/// covered by any mark of that aspect; a per-VM aspect by a mark for that VM.
pub fn coverage_gap(
    state: &SessionState,
    aspect: Aspect,
    vm: Option<&str>,
    known: &BTreeSet<&str>,
) -> Option<String> {
    let marks: Vec<_> = state
        .coverage
        .iter()
        .filter(|m| m.aspect == aspect && (vm.is_none() || m.vm.as_deref() == vm))
        .collect();
    if marks.is_empty() {
        return Some("not inspected".to_string());
    }
    let mut why = String::new();
    for m in marks {
        match &m.state {
            CoverageState::Inspected { evidence } if known.contains(evidence.as_str()) => {
                return None
            }
            CoverageState::Inspected { evidence } if evidence.is_empty() => {
                why = "inspected without an audit id".to_string();
            }
            CoverageState::Inspected { evidence } => {
                why = format!(
                    "inspected with audit id {evidence}, which is not a call of this session"
                );
            }
            CoverageState::Unverifiable { reason } if !reason.trim().is_empty() => return None,
            CoverageState::Unverifiable { .. } => {
                why = "marked unverifiable without a reason".to_string();
            }
        }
    }
    Some(why)
}

/// The required aspects not covered, with why.
pub fn coverage_missing(state: &SessionState) -> Vec<(Aspect, Option<String>, String)> {
    let known = known_audit_ids(state);
    coverage_required(state)
        .into_iter()
        .filter_map(|(aspect, vm)| {
            coverage_gap(state, aspect, vm.as_deref(), &known).map(|why| (aspect, vm, why))
        })
        .collect()
}

/// True when `text` names `id` as a whole token (`F3` in "explains F3." but not in "F31").
pub fn mentions_id(text: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    text.match_indices(id).any(|(pos, _)| {
        let before = text[..pos].chars().next_back();
        let after = text[pos + id.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// True when the thread has a confirmed hypothesis, or hypotheses all refuted or
/// unverifiable.
pub fn thread_resolved(state: &SessionState, thread: &str) -> bool {
    let hs: Vec<&Hypothesis> = state
        .hypotheses
        .iter()
        .filter(|h| h.thread == thread)
        .collect();
    hs.iter().any(|h| h.status == HypothesisStatus::Confirmed)
        || (!hs.is_empty()
            && hs.iter().all(|h| {
                matches!(
                    h.status,
                    HypothesisStatus::Refuted | HypothesisStatus::Unverifiable
                )
            }))
}

/// How a finding is explained: by a confirmed hypothesis linking it, or a refuted one
/// linking it whose notes name it. None when unexplained.
pub fn explained_by<'a>(state: &'a SessionState, finding_id: &str) -> Option<&'a Hypothesis> {
    if finding_id.is_empty() {
        return None;
    }
    let links = |h: &&Hypothesis| h.findings.iter().any(|f| f == finding_id);
    state
        .hypotheses
        .iter()
        .filter(links)
        .find(|h| h.status == HypothesisStatus::Confirmed)
        .or_else(|| {
            state.hypotheses.iter().filter(links).find(|h| {
                h.status == HypothesisStatus::Refuted
                    && h.notes.iter().any(|n| mentions_id(n, finding_id))
            })
        })
}

fn status_name(s: HypothesisStatus) -> &'static str {
    match s {
        HypothesisStatus::Open => "open",
        HypothesisStatus::Confirmed => "confirmed",
        HypothesisStatus::Refuted => "refuted",
        HypothesisStatus::Unverifiable => "unverifiable",
        HypothesisStatus::Contradicted => "contradicted",
    }
}

fn aspect_name(aspect: Aspect, vm: Option<&str>) -> String {
    let a = match aspect {
        Aspect::NsgForward => "NSG verdict source to destination",
        Aspect::NsgReturn => "NSG verdict destination to source (return)",
        Aspect::Routes => "route verdict",
        Aspect::Firewall => "OS firewall",
        Aspect::TrafficControl => "traffic control",
    };
    match vm {
        Some(vm) => format!("{a} of {vm}"),
        None => a.to_string(),
    }
}

/// The human name of an aspect (and VM), as the refusals and reports spell it.
pub fn describe_aspect(aspect: Aspect, vm: Option<&str>) -> String {
    aspect_name(aspect, vm)
}

/// Checks a conclusion against every rule; all refusals at once so a brain can fix them in
/// one pass.
pub fn check_conclusion(
    state: &SessionState,
    req: &crate::model::ConclusionRequest,
) -> Result<(), Vec<Refusal>> {
    let mut out = Vec::new();
    let mut refuse = |rule: &'static str, message: String| out.push(Refusal { rule, message });
    let known = known_audit_ids(state);
    let finding_ids: BTreeSet<&str> = state
        .findings
        .iter()
        .filter(|f| !f.id.is_empty())
        .map(|f| f.id.as_str())
        .collect();

    for h in &state.hypotheses {
        if !h.status.is_resolved() {
            refuse(
                "unresolved_hypothesis",
                format!(
                    "Hypothesis {} is {}: confirm, refute or mark it unverifiable with evidence before concluding.",
                    h.id,
                    status_name(h.status)
                ),
            );
        }
        if h.status != HypothesisStatus::Confirmed {
            continue;
        }
        if h.evidence.is_empty() {
            refuse(
                "no_evidence",
                format!(
                    "Confirmed hypothesis {} cites no evidence: add the audit ids of the tool calls that prove it.",
                    h.id
                ),
            );
        }
        for e in &h.evidence {
            if !known.contains(e.as_str()) {
                refuse(
                    "unknown_evidence",
                    format!(
                        "Confirmed hypothesis {} cites audit id {e}, which is no tool call or command of this session: cite a recorded call.",
                        h.id
                    ),
                );
            }
        }
        for f in &h.findings {
            if !finding_ids.contains(f.as_str()) {
                refuse(
                    "unknown_evidence",
                    format!(
                        "Confirmed hypothesis {} links finding {f}, which does not exist: link a recorded finding.",
                        h.id
                    ),
                );
            }
        }
    }

    for id in &req.root_causes {
        match state.hypotheses.iter().find(|h| &h.id == id) {
            Some(h) if h.status == HypothesisStatus::Confirmed => {}
            Some(h) => refuse(
                "not_confirmed",
                format!(
                    "Root cause {id} is {}, not confirmed: only confirmed hypotheses can be root causes.",
                    status_name(h.status)
                ),
            ),
            None => refuse(
                "not_confirmed",
                format!("Root cause {id} names no hypothesis of this session."),
            ),
        }
    }
    for h in &state.hypotheses {
        if h.status == HypothesisStatus::Confirmed && !req.root_causes.contains(&h.id) {
            refuse(
                "unnamed_cause",
                format!(
                    "Confirmed hypothesis {} is not among the root causes: name it (in fix order) or revisit its status.",
                    h.id
                ),
            );
        }
    }

    for (aspect, vm) in coverage_required(state) {
        if let Some(why) = coverage_gap(state, aspect, vm.as_deref(), &known) {
            refuse(
                "coverage",
                format!(
                    "The {} is not covered ({why}): inspect it, or mark it unverifiable with a reason.",
                    aspect_name(aspect, vm.as_deref())
                ),
            );
        }
    }

    for t in &state.threads {
        if !thread_resolved(state, &t.id) {
            refuse(
                "thread_open",
                format!(
                    "Thread {} ({:?}) is not resolved: it needs a confirmed hypothesis, or all its hypotheses refuted or unverifiable.",
                    t.id,
                    crate::rules::one_line(&t.complaint.text)
                ),
            );
        }
    }

    for f in &state.findings {
        if f.severity < Severity::Medium {
            continue;
        }
        if explained_by(state, &f.id).is_none() {
            let id = if f.id.is_empty() {
                "(no id)"
            } else {
                f.id.as_str()
            };
            refuse(
                "unexplained_finding",
                format!(
                    "Finding {id} ({} on {}, {:?}) is not explained: link it to a confirmed hypothesis, or to a refuted one with a note that names {id} and says why it does not matter.",
                    f.kind,
                    f.vm.as_deref().unwrap_or("the path"),
                    one_line(&f.component),
                ),
            );
        }
    }

    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}
