//! `ghost-agent eval`: every lab scenario diagnosed end to end and scored.
//!
//! For each scenario: `netlab up` → inject the faults → investigate non-interactively →
//! score the conclusion against the scenario's `expected_causes` (structured fields, see
//! [`crate::scoring`]) → check the investigation changed nothing (the lab's faults before
//! and after are the same) → tear down (also on failure) and check no namespace of the run
//! is left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::{audit_dir_of, execute_session, netlab, settings_for, Failure, LabRun, RunArgs};
use crate::playbook::PlaybookOutcome;
use crate::scoring::{
    causes_of_phase, expectations_from_toml, phases, score_phase, ScenarioExpectations,
};
use crate::session::new_session_id;

/// What `eval` was asked.
#[derive(Debug)]
pub(crate) struct EvalSpec {
    pub(crate) run: RunArgs,
    pub(crate) scenarios: String,
    pub(crate) demo_dir: PathBuf,
    pub(crate) keep_going: bool,
    pub(crate) transcripts: Option<PathBuf>,
}

/// One scenario's line of the scorecard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioScore {
    /// Scenario id (`K`).
    pub id: String,
    /// Every expected cause found, nothing unexpected, evidence ok, environment restored.
    pub passed: bool,
    /// Expected causes found.
    pub expected_found: Vec<String>,
    /// Expected causes missing.
    pub missing: Vec<String>,
    /// Causes concluded that the scenario does not have.
    pub forbidden_found: Vec<String>,
    /// Every root cause cites evidence records of the session.
    pub evidence_ok: bool,
    /// The investigation changed nothing and the teardown left nothing behind.
    pub restored: bool,
    /// Tool calls made.
    pub tool_calls: usize,
    /// Commands run through the gate.
    pub commands: usize,
    /// Risky commands that asked for approval (approved or denied).
    pub approvals_asked: usize,
    /// Investigation wall time (seconds), lab up/down excluded.
    pub seconds: f64,
    /// Whole scenario wall time including the lab.
    pub total_seconds: f64,
    /// The session id.
    pub session_id: Option<String>,
    /// The netlab prefix of the scenario's lab (its namespaces are `nl<prefix>-…`).
    pub lab_prefix: Option<String>,
    /// Why it could not run, when it could not.
    pub error: Option<String>,
}

/// The scorecard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scorecard {
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioScore>,
    /// Scenarios passed.
    pub passed: usize,
    /// Scenarios run.
    pub total: usize,
    /// Total wall time.
    pub seconds: f64,
}

fn scenario_dirs(demo: &Path, which: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let mut all: Vec<(String, PathBuf)> = std::fs::read_dir(demo)
        .map_err(|e| format!("cannot read {}: {e}", demo.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix("use_case_")?.to_ascii_uppercase();
            e.path()
                .join("scenario.toml")
                .is_file()
                .then_some((id, e.path()))
        })
        .collect();
    all.sort();
    if which.trim().eq_ignore_ascii_case("all") {
        return Ok(all);
    }
    let mut out = Vec::new();
    for id in which
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
    {
        match all.iter().find(|(i, _)| *i == id) {
            Some(x) => out.push(x.clone()),
            None => {
                return Err(format!(
                    "no scenario {id} under {} (known: {})",
                    demo.display(),
                    all.iter()
                        .map(|(i, _)| i.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            }
        }
    }
    Ok(out)
}

fn faults_of(lab: &LabRun) -> Option<Value> {
    let out = netlab(&lab.netlab, &["status", "--prefix", &lab.prefix, "--json"]).ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    v.get("faults").cloned()
}

fn namespaces_with(prefix: &str) -> usize {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with(&format!("nl{prefix}-")))
                .count()
        })
        .unwrap_or(0)
}

/// The part of the reported symptom that belongs to `phase` (`phase 1: all internet lost;
/// phase 2 (after the route fix): HTTPS works, HTTP hangs` → `all internet lost`); the whole
/// text when no part names it.
fn phase_symptom(reported: &str, phase: &str) -> String {
    reported
        .split(';')
        .map(str::trim)
        .find(|part| {
            part.to_ascii_lowercase()
                .starts_with(&phase.to_ascii_lowercase())
        })
        .and_then(|part| part.split_once(':').map(|(_, t)| t.trim().to_string()))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| reported.to_string())
}

/// Fault kinds of `netlab status` (the inline fault kinds and the scenario files'
/// `[[faults.cloud]]` kinds) that an expected cause's layer names.
fn fault_kinds_for_layer(layer: &str) -> &'static [&'static str] {
    match layer {
        "route" => &["route"],
        "nsg" => &["nsg_rule", "subnet_nsg"],
        "service_endpoint" | "storage" => &["remove_service_endpoint"],
        "os_firewall" => &["iptables", "nft"],
        "traffic_control" => &["rate", "loss", "impair"],
        "wire" => &["wire_loss"],
        "mtu" => &["mtu"],
        "service" => &["listen", "stop_service"],
        _ => &[],
    }
}

/// Applies the fix of one phase: clears the lab faults behind its expected causes (the
/// scenario's step "fix the route: netlab clear <id>").
fn fix_phase(lab: &LabRun, expected: &ScenarioExpectations, phase: &str) -> Result<(), String> {
    let faults = faults_of(lab).ok_or("cannot read the lab's faults")?;
    let list = faults.as_array().cloned().unwrap_or_default();
    let mut cleared = 0;
    for cause in causes_of_phase(expected, phase) {
        let kinds = fault_kinds_for_layer(&cause.layer);
        for f in &list {
            let kind = f.get("kind").and_then(Value::as_str).unwrap_or("");
            let target = f.get("target").and_then(Value::as_str).unwrap_or("");
            let on_vm = match &cause.vm {
                Some(vm) if target != "cloud" => target == vm,
                _ => true,
            };
            if kinds.contains(&kind) && on_vm {
                let fid = f.get("id").and_then(Value::as_str).unwrap_or("");
                netlab(&lab.netlab, &["clear", "--prefix", &lab.prefix, fid])
                    .map_err(|e| format!("netlab clear {fid}: {:#}", e.error))?;
                cleared += 1;
            }
        }
    }
    if cleared == 0 {
        return Err(format!("no lab fault matches the causes of {phase}"));
    }
    Ok(())
}

fn one(spec: &EvalSpec, id: &str, dir: &Path, audit_dir: &Path, quiet: bool) -> ScenarioScore {
    let started = Instant::now();
    let mut s = ScenarioScore {
        id: id.to_string(),
        passed: false,
        expected_found: vec![],
        missing: vec![],
        forbidden_found: vec![],
        evidence_ok: false,
        restored: false,
        tool_calls: 0,
        commands: 0,
        approvals_asked: 0,
        seconds: 0.0,
        total_seconds: 0.0,
        session_id: None,
        lab_prefix: None,
        error: None,
    };
    let text = match std::fs::read_to_string(dir.join("scenario.toml")) {
        Ok(t) => t,
        Err(e) => {
            s.error = Some(format!("cannot read the scenario: {e}"));
            return s;
        }
    };
    let expected = match expectations_from_toml(&text) {
        Ok(x) => x,
        Err(e) => {
            s.error = Some(e);
            return s;
        }
    };
    let lab = match LabRun::up(dir, false, quiet) {
        Ok(l) => l,
        Err(f) => {
            s.error = Some(format!("{:#}", f.error));
            return s;
        }
    };
    let prefix = lab.prefix.clone();
    s.lab_prefix = Some(prefix.clone());
    let baseline_ids = lab.finish_setup(audit_dir, quiet);
    let phases = phases(&expected);
    let reported = lab.reported.clone().unwrap_or_default();
    // One investigation per phase (a single one without phases); between phases the
    // operator applies the fix of the phase's causes (`netlab clear` of their faults).
    let plan: Vec<(Option<String>, String)> = if phases.is_empty() {
        vec![(None, reported.clone())]
    } else {
        phases
            .iter()
            .map(|p| (Some(p.clone()), phase_symptom(&reported, p)))
            .collect()
    };
    let mut before = faults_of(&lab);
    let mut all_passed = true;
    let mut restored = true;
    let mut sessions = Vec::new();
    let mut body = String::new();
    let mut ids_for_symptom = match baseline_ids {
        Ok(ids) => Some(ids),
        Err(f) => {
            s.error = Some(format!("{:#}", f.error));
            all_passed = false;
            None
        }
    };
    for (k, (phase, text)) in plan.iter().enumerate() {
        let Some(ids) = ids_for_symptom.take() else {
            break;
        };
        let result = (|| {
            let settings = settings_for(Some(&lab.config))?;
            let sid = new_session_id(audit_dir);
            let mut symptom = text.clone();
            if !ids.is_empty() {
                symptom = format!("{symptom} (baselines: {})", ids.join(", "));
            }
            let t = Instant::now();
            let r = execute_session(&spec.run, settings, audit_dir, sid, Some(symptom), true)?;
            Ok::<_, Failure>((r, t.elapsed().as_secs_f64()))
        })();
        let after = faults_of(&lab);
        restored &= before.is_some() && before == after;
        let label = phase
            .as_deref()
            .map(|p| format!("{p}: "))
            .unwrap_or_default();
        match result {
            Err(f) => {
                s.error = Some(format!("{label}{:#}", f.error));
                all_passed = false;
                break;
            }
            Ok((r, secs)) => {
                s.seconds += secs;
                sessions.push(r.state.session_id.to_string());
                s.tool_calls += r.state.calls.len();
                s.commands += r
                    .state
                    .calls
                    .iter()
                    .map(|c| c.command_audit_ids.len())
                    .sum::<usize>();
                let audit = safety_shell::audit::default_audit_path(
                    &crate::session::session_dir(audit_dir, &r.state.session_id),
                    &r.state.session_id,
                );
                s.approvals_asked += safety_shell::audit::read_records(&audit)
                    .map(|(recs, _)| {
                        recs.iter()
                            .filter(|x| x.decided_by != "auto" && !x.target.starts_with("tool:"))
                            .count()
                    })
                    .unwrap_or(0);
                let sc = score_phase(&r.state, &expected, phase.as_deref());
                s.expected_found
                    .extend(sc.expected_found.iter().map(|x| format!("{label}{x}")));
                s.missing
                    .extend(sc.missing.iter().map(|x| format!("{label}{x}")));
                s.forbidden_found
                    .extend(sc.unexpected.iter().map(|x| format!("{label}{x}")));
                s.evidence_ok = if k == 0 {
                    sc.evidence_ok
                } else {
                    s.evidence_ok && sc.evidence_ok
                };
                if !matches!(r.outcome, PlaybookOutcome::Concluded) {
                    s.error = Some(format!("{label}no accepted conclusion: {:?}", r.outcome));
                }
                all_passed &= sc.passed && s.error.is_none();
                if let Some(p) = phase {
                    body.push_str(&format!("\n# {p}\n\n"));
                }
                body.push_str(&transcript(id, &expected.name, &r.state, &r.report));
            }
        }
        // The fix between phases, as the operator would apply it.
        if let (Some(p), true) = (phase, k + 1 < plan.len()) {
            match fix_phase(&lab, &expected, p) {
                Ok(()) => {
                    before = faults_of(&lab);
                    ids_for_symptom = Some(Vec::new());
                }
                Err(e) => {
                    s.error = Some(format!("{label}the fix between phases failed: {e}"));
                    all_passed = false;
                }
            }
        }
    }
    if let Some(tdir) = &spec.transcripts {
        if !body.is_empty() {
            let _ = std::fs::create_dir_all(tdir);
            let _ = std::fs::write(tdir.join(format!("{}.md", id.to_ascii_lowercase())), body);
        }
    }
    if !sessions.is_empty() {
        s.session_id = Some(sessions.join(","));
    }
    drop(lab);
    let left = namespaces_with(&prefix);
    s.passed = all_passed && sessions.len() == plan.len();
    s.restored = restored && left == 0;
    s.passed = s.passed && s.restored;
    s.total_seconds = started.elapsed().as_secs_f64();
    s
}

/// The Markdown transcript of one scenario's investigation (generated, not hand-written).
pub fn transcript(
    id: &str,
    name: &str,
    state: &crate::model::SessionState,
    report: &crate::report::Report,
) -> String {
    let mut t = format!(
        "# Scenario {id} ({name}): investigation transcript\n\nGenerated by `ghost-agent eval --transcripts docs/scenarios`; the lab prefix and timestamps differ between runs.\n\nSymptom: `{}`\n\n## Steps\n\n",
        state.symptom.text.replace('`', "'")
    );
    for st in &state.steps {
        match (&st.tool, &st.audit_id) {
            (Some(tool), Some(a)) => {
                let call = state.calls.iter().find(|c| &c.audit_id == a);
                let args = call.map(|c| c.args.to_string()).unwrap_or_default();
                let fids: Vec<String> = call
                    .map(|c| {
                        c.result
                            .findings
                            .iter()
                            .map(|f| {
                                format!("{} {} `{}`", f.id, f.kind, f.component.replace('`', "'"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                t.push_str(&format!(
                    "{}. **{tool}** `{}` ({a}): {}{}\n",
                    st.n,
                    args.replace('`', "'"),
                    st.reason,
                    if fids.is_empty() {
                        String::new()
                    } else {
                        format!(" → {}", fids.join("; "))
                    }
                ));
            }
            _ => t.push_str(&format!("{}. {}\n", st.n, st.reason)),
        }
    }
    t.push_str("\n## Report\n\n");
    t.push_str(&crate::report::render_report_md(report));
    t
}

pub(crate) fn eval_cmd(mut spec: EvalSpec, quiet: bool) -> Result<u8, Failure> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(crate::cli::fail(
            2,
            anyhow!("eval builds lab network namespaces and needs root: run it with sudo"),
        ));
    }
    // Non-interactive: measurements and captures approved, every change denied.
    if spec.run.approve_policy.is_none() && spec.run.approve.is_none() {
        spec.run.approve_policy = Some(spec.demo_dir.join("approve_policy_investigation.toml"));
    }
    let settings = settings_for(spec.run.config.as_deref())?;
    let audit_dir = audit_dir_of(&settings, spec.run.audit_dir.as_deref());
    let dirs = scenario_dirs(&spec.demo_dir, &spec.scenarios)
        .map_err(|e| crate::cli::fail(2, anyhow!(e)))?;
    let started = Instant::now();
    let mut card = Scorecard {
        scenarios: vec![],
        passed: 0,
        total: 0,
        seconds: 0.0,
    };
    for (id, dir) in &dirs {
        if !quiet {
            eprintln!("ghost-agent eval: scenario {id} ({})", dir.display());
        }
        let s = one(&spec, id, dir, &audit_dir, quiet);
        if !quiet {
            eprintln!(
                "ghost-agent eval: {id} {} in {:.0} s{}",
                if s.passed { "PASSED" } else { "FAILED" },
                s.total_seconds,
                s.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        let failed = !s.passed;
        card.scenarios.push(s);
        if failed && !spec.keep_going {
            break;
        }
    }
    card.total = card.scenarios.len();
    card.passed = card.scenarios.iter().filter(|s| s.passed).count();
    card.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_string_pretty(&card).unwrap_or_default();
    let _ = std::fs::create_dir_all(&audit_dir);
    let _ = std::fs::write(audit_dir.join("eval_scorecard.json"), &json);
    if spec.run.json {
        println!("{json}");
    } else {
        println!(
            "{:<4} {:<7} {:>5} {:>5} {:>6} {:>8} {:>7}  missing / unexpected",
            "id", "result", "calls", "cmds", "asked", "invest.", "total"
        );
        for s in &card.scenarios {
            let mut notes: Vec<String> = s.missing.iter().map(|m| format!("missing {m}")).collect();
            notes.extend(s.forbidden_found.iter().map(|m| format!("unexpected {m}")));
            if !s.restored {
                notes.push("environment not restored".into());
            }
            if let Some(e) = &s.error {
                notes.push(e.clone());
            }
            println!(
                "{:<4} {:<7} {:>5} {:>5} {:>6} {:>7.1}s {:>6.1}s  {}",
                s.id,
                if s.passed { "PASS" } else { "FAIL" },
                s.tool_calls,
                s.commands,
                s.approvals_asked,
                s.seconds,
                s.total_seconds,
                notes.join("; ")
            );
        }
        println!(
            "{}/{} passed in {:.0} s",
            card.passed, card.total, card.seconds
        );
    }
    Ok(if card.passed == card.total && card.total == dirs.len() {
        0
    } else {
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_gets_its_part_of_the_reported_symptom() {
        let r =
            "phase 1: all internet lost; phase 2 (after the route fix): HTTPS works, HTTP hangs";
        assert_eq!(phase_symptom(r, "phase 1"), "all internet lost");
        assert_eq!(phase_symptom(r, "phase 2"), "HTTPS works, HTTP hangs");
        assert_eq!(phase_symptom("iperf hangs", "phase 1"), "iperf hangs");
    }

    #[test]
    fn fault_kinds_follow_the_layer() {
        assert_eq!(fault_kinds_for_layer("route"), &["route"]);
        assert!(fault_kinds_for_layer("nsg").contains(&"subnet_nsg"));
        assert!(fault_kinds_for_layer("os_firewall").contains(&"iptables"));
        assert_eq!(fault_kinds_for_layer("wire"), &["wire_loss"]);
        assert!(fault_kinds_for_layer("none").is_empty());
    }
}
