//! Scoring an investigation against a scenario file's `expected_causes`: matched on
//! structured fields (layer, VM, kind, and the rule/port/protocol/chain/qdisc/NSG/priority
//! the scenario names), never on prose.
//!
//! A root cause of the session is a confirmed hypothesis named by the accepted conclusion;
//! its cause findings (blocking or shaping kinds, drift) are what is matched. An expected
//! cause is found when one such finding matches every field it states; a root-cause finding
//! that matches no expected cause is an unexpected conclusion.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Finding, HypothesisStatus, SessionState};

/// Fields of an expected cause compared with a finding's `attrs` (when the scenario states
/// them).
pub const MATCHED_ATTRS: &[&str] = &[
    "port", "protocol", "nsg", "rule", "priority", "chain", "qdisc",
];

/// One `[[expected_causes]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectedCause {
    /// Layer (`nsg`, `route`, `os_firewall`, `traffic_control`, `drift`, ...).
    pub layer: String,
    /// VM, when the cause is on one.
    #[serde(default)]
    pub vm: Option<String>,
    /// Finding kind.
    pub kind: String,
    /// Other fields (port, protocol, nsg, rule, priority, chain, qdisc, detail, rank ...).
    #[serde(flatten)]
    pub fields: BTreeMap<String, Value>,
}

impl ExpectedCause {
    /// One line for tables.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {} on {}",
            self.layer,
            self.kind,
            self.vm.as_deref().unwrap_or("-")
        );
        for k in MATCHED_ATTRS {
            if let Some(v) = self.fields.get(*k) {
                s.push_str(&format!(" {k}={}", plain(v)));
            }
        }
        s
    }
}

/// The parts of a scenario file scoring needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioExpectations {
    /// `use_case_k`.
    pub name: String,
    /// Expected causes.
    #[serde(default)]
    pub expected_causes: Vec<ExpectedCause>,
    /// What must not be concluded (prose; the structured check is "no unexpected cause").
    #[serde(default)]
    pub must_not_conclude: Vec<String>,
}

/// Reads the expectations of a scenario file's text.
pub fn expectations_from_toml(text: &str) -> Result<ScenarioExpectations, String> {
    let v: toml::Value = toml::from_str(text).map_err(|e| format!("not a scenario file: {e}"))?;
    let json = serde_json::to_value(v).map_err(|e| e.to_string())?;
    serde_json::from_value(json).map_err(|e| format!("scenario file: {e}"))
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_ascii_lowercase(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// Finding kinds that answer an expected kind: the scenario files name some causes in
/// Azure's words (`udr_none` is a route with next hop None, which the route tools report
/// as `route_blackhole`).
pub fn accepted_kinds(expected: &str) -> Vec<&str> {
    match expected {
        "udr_none" => vec!["udr_none", "route_blackhole"],
        "udr_dead_appliance" => vec!["udr_dead_appliance", "route_nva"],
        "permissive_rule" => vec!["permissive_rule", "nsg_permissive"],
        // A policy changed to DROP since the baseline: the current policy_drop finding
        // (the drift tool's own findings are supporting evidence).
        "policy_drift" => vec!["policy_drift", "policy_drop"],
        // Docker's chains appeared: the drop in the added isolation chain is what blocks.
        "docker_chains" => vec!["docker_chains", "iptables_drop"],
        // The rule that drops ICMP fragmentation-needed (its protocol and chain are matched).
        "icmp_frag_needed_dropped" => vec!["icmp_frag_needed_dropped", "iptables_drop"],
        // The subnet lost its storage endpoint (older spelling of the same kind accepted).
        // Slow responses placed at the server by a two-ended capture are still slow responses.
        "slow_responses" => vec!["slow_responses", "server_side_delay"],
        "missing_service_endpoint" => vec!["missing_service_endpoint", "service_endpoint_missing"],
        other => vec![other],
    }
}

/// Finding layers that answer an expected layer: scenario files name the storage causes
/// by the part of the relationship that broke (`service_endpoint` on the subnet,
/// `storage_firewall` on the account); the storage tool reports both as `storage`.
pub fn accepted_layers(expected: &str) -> Vec<&str> {
    match expected {
        "service_endpoint" | "storage_firewall" => vec![expected, "storage"],
        other => vec![other],
    }
}

/// True when `f` matches every field `e` states.
pub fn finding_matches(e: &ExpectedCause, f: &Finding) -> bool {
    if !accepted_layers(&e.layer).contains(&f.layer.as_str())
        || !accepted_kinds(&e.kind).contains(&f.kind.as_str())
    {
        return false;
    }
    if let Some(vm) = &e.vm {
        if f.vm.as_deref() != Some(vm.as_str()) {
            return false;
        }
    }
    MATCHED_ATTRS.iter().all(|k| match e.fields.get(*k) {
        None => true,
        Some(want) => f.attrs.get(*k).map(plain) == Some(plain(want)),
    })
}

/// The score of one session against one scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Expected causes found (descriptions).
    pub expected_found: Vec<String>,
    /// Expected causes not found.
    pub missing: Vec<String>,
    /// Root-cause findings that match no expected cause.
    pub unexpected: Vec<String>,
    /// Every root cause cites evidence that is an audit id of the session.
    pub evidence_ok: bool,
    /// All expected found, nothing unexpected, evidence ok.
    pub passed: bool,
}

/// The cause findings of the accepted conclusion's root causes.
pub fn root_cause_findings(state: &SessionState) -> Vec<&Finding> {
    let Some(c) = &state.conclusion else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for hid in &c.root_causes {
        let Some(h) = state
            .hypotheses
            .iter()
            .find(|h| &h.id == hid && h.status == HypothesisStatus::Confirmed)
        else {
            continue;
        };
        for fid in &h.findings {
            if let Some(f) = state.findings.iter().find(|f| &f.id == fid) {
                if is_cause_kind(&f.kind) {
                    out.push(f);
                }
            }
        }
    }
    out
}

/// True when `f` is a root cause of a confirmed hypothesis on a thread that comes from the
/// reported symptom (not one the investigation added for a separate problem).
fn explains_reported(state: &SessionState, f: &Finding) -> bool {
    state.hypotheses.iter().any(|h| {
        h.status == HypothesisStatus::Confirmed
            && h.findings.contains(&f.id)
            && state
                .threads
                .iter()
                .find(|t| t.id == h.thread)
                .is_some_and(|t| {
                    state
                        .symptom
                        .complaints
                        .iter()
                        .any(|c| c.text == t.complaint.text)
                        || state.symptom.text.contains(t.complaint.text.trim())
                })
    })
}

fn is_cause_kind(kind: &str) -> bool {
    // Raw wire observations (pcap-forensics rules) support causes; they are not causes.
    !kind.starts_with("pcap_")
        && !matches!(
            kind,
            "slow_response"
                | "dns_unanswered"
                | "handshake_rejected"
                | "handshake_incomplete"
                | "icmp_unanswered"
                | "udp_unanswered"
                | "host_down"
                | "throughput_low"
                | "latency_high"
                | "high_variance"
                | "connectivity_drop"
                | "handshake_unanswered"
                | "retransmissions"
                | "rst"
                | "dns_latency"
                | "drift"
        )
}

/// Scores `state` against `expected`.
pub fn score(state: &SessionState, expected: &ScenarioExpectations) -> Score {
    score_phase(state, expected, None)
}

/// The phases of a scenario whose expected causes are ranked `phase 1`, `phase 2`, … (in
/// order); empty for a single-phase scenario.
pub fn phases(expected: &ScenarioExpectations) -> Vec<String> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for e in &expected.expected_causes {
        if let Some(r) = e.fields.get("rank").and_then(Value::as_str) {
            if let Some(n) = r
                .trim()
                .strip_prefix("phase ")
                .and_then(|n| n.trim().parse::<u32>().ok())
            {
                if !out.iter().any(|(m, _)| *m == n) {
                    out.push((n, r.trim().to_string()));
                }
            }
        }
    }
    out.sort();
    out.into_iter().map(|(_, r)| r).collect()
}

/// The expected causes of one phase (`rank` equal to it).
pub fn causes_of_phase<'a>(
    expected: &'a ScenarioExpectations,
    phase: &str,
) -> Vec<&'a ExpectedCause> {
    expected
        .expected_causes
        .iter()
        .filter(|e| e.fields.get("rank").and_then(Value::as_str).map(str::trim) == Some(phase))
        .collect()
}

/// Scores one phase of a multi-phase scenario (`Some("phase 1")`): the causes of that phase
/// must be found; a cause of another phase that is still present is not unexpected (the
/// fault is really there), anything else is. `None` scores the whole scenario.
pub fn score_phase(
    state: &SessionState,
    expected: &ScenarioExpectations,
    phase: Option<&str>,
) -> Score {
    let causes = root_cause_findings(state);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let wanted: Vec<&ExpectedCause> = match phase {
        Some(p) => causes_of_phase(expected, p),
        None => expected.expected_causes.iter().collect(),
    };
    for e in wanted {
        if e.kind == "no_drift" {
            // The sign-off: a drift check ran and found nothing, and no drift is concluded.
            let signed_off = state.calls.iter().any(|c| {
                c.result.ok && c.result.summary.get("drift_detected") == Some(&Value::Bool(false))
            }) && !causes.iter().any(|f| f.kind == "drift");
            if signed_off {
                found.push(e.describe());
            } else {
                missing.push(e.describe());
            }
            continue;
        }
        if e.kind == "control_plane_clean" {
            // The sign-off: NSG verdicts and routes were inspected successfully and no NSG
            // or route cause is concluded.
            let inspected = |tool: &str| state.calls.iter().any(|c| c.tool == tool && c.result.ok);
            let clean = inspected("inspect_nsg")
                && inspected("inspect_routes")
                && !causes
                    .iter()
                    .any(|f| matches!(f.layer.as_str(), "nsg" | "route"));
            if clean {
                found.push(e.describe());
            } else {
                missing.push(e.describe());
            }
            continue;
        }
        if causes.iter().any(|f| finding_matches(e, f)) {
            found.push(e.describe());
        } else {
            missing.push(e.describe());
        }
    }
    // Phase scoring: a cause of this phase matches; a cause of another phase (a fault that is
    // really still there) is accepted only when the investigation reported it as a separate
    // problem (a thread it added), not as an explanation of the reported complaint.
    let this_phase = |e: &ExpectedCause| match phase {
        None => true,
        Some(p) => e.fields.get("rank").and_then(Value::as_str).map(str::trim) == Some(p),
    };
    let matched = |f: &Finding| {
        expected
            .expected_causes
            .iter()
            .any(|e| finding_matches(e, f) && (this_phase(e) || !explains_reported(state, f)))
    };
    // A diversion to a userspace queue is the mechanism of the delay/loss/corruption read
    // from its consumer: not a cause of its own when those matched.
    let explained_mechanism = |f: &Finding| {
        f.kind == "packet_diversion"
            && causes.iter().any(|g| {
                g.vm == f.vm
                    && matches!(g.kind.as_str(), "delay" | "random_loss" | "corruption")
                    && matched(g)
            })
    };
    let unexpected: Vec<String> = causes
        .iter()
        .filter(|f| !matched(f) && !explained_mechanism(f))
        .map(|f| {
            format!(
                "{} {} on {}: {}",
                f.layer.as_str(),
                f.kind,
                f.vm.as_deref().unwrap_or("-"),
                f.component
            )
        })
        .collect();
    let ids = crate::rules::known_audit_ids(state);
    let evidence_ok = state.conclusion.as_ref().is_some_and(|c| {
        c.root_causes.iter().all(|hid| {
            state.hypotheses.iter().any(|h| {
                &h.id == hid
                    && !h.evidence.is_empty()
                    && h.evidence.iter().all(|e| ids.contains(&e.as_str()))
            })
        })
    });
    let passed = missing.is_empty() && unexpected.is_empty() && evidence_ok;
    Score {
        expected_found: found,
        missing,
        unexpected,
        evidence_ok,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Layer, Severity};

    fn expected(text: &str) -> ScenarioExpectations {
        expectations_from_toml(text).unwrap()
    }

    #[test]
    fn phases_come_from_ranks_in_order() {
        let e = expected(
            "name = \"t\"\n[[expected_causes]]\nlayer = \"os_firewall\"\nkind = \"iptables_drop\"\nrank = \"phase 2\"\n[[expected_causes]]\nlayer = \"route\"\nkind = \"udr_dead_appliance\"\nrank = \"phase 1\"\n[[expected_causes]]\nlayer = \"nsg\"\nkind = \"nsg_deny\"\nrank = \"primary\"\n",
        );
        assert_eq!(phases(&e), vec!["phase 1", "phase 2"]);
        let p1 = causes_of_phase(&e, "phase 1");
        assert_eq!(p1.len(), 1);
        assert_eq!(p1[0].kind, "udr_dead_appliance");
        assert!(phases(&expected("name = \"x\"\n")).is_empty());
    }

    #[test]
    fn matching_is_on_structured_fields_case_insensitive_with_aliases() {
        let e = expected(
            "name = \"x\"\n[[expected_causes]]\nlayer = \"os_firewall\"\nvm = \"dest-vm\"\nkind = \"iptables_drop\"\nchain = \"INPUT\"\nport = 5001\nprotocol = \"Tcp\"\ndetail = \"prose is ignored\"\n[[expected_causes]]\nlayer = \"route\"\nkind = \"udr_none\"\n",
        );
        let f = Finding::new(
            Layer::OsFirewall,
            Some("dest-vm"),
            "iptables_drop",
            "filter/INPUT #1",
            "s",
            "m",
            Severity::High,
        )
        .attr("chain", "INPUT")
        .attr("port", 5001)
        .attr("protocol", "tcp");
        assert!(finding_matches(&e.expected_causes[0], &f));
        let wrong_port = f.clone().attr("port", 5002);
        assert!(!finding_matches(&e.expected_causes[0], &wrong_port));
        let other_vm = Finding {
            vm: Some("source-vm".into()),
            ..f.clone()
        };
        assert!(!finding_matches(&e.expected_causes[0], &other_vm));
        let blackhole = Finding::new(
            Layer::Route,
            None,
            "route_blackhole",
            "rt/none",
            "s",
            "m",
            Severity::High,
        );
        assert!(finding_matches(&e.expected_causes[1], &blackhole));
    }

    #[test]
    fn scenario_f_service_endpoint_matches_the_storage_finding() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../demo/use_case_f/scenario.toml"),
        )
        .unwrap();
        let e = expected(&text);
        let f = Finding::new(
            Layer::Storage,
            Some("source-vm"),
            "missing_service_endpoint",
            "vnet-netlab/default",
            "s",
            "m",
            Severity::High,
        )
        .attr("rule", "Microsoft.Storage");
        assert!(finding_matches(&e.expected_causes[0], &f));
        // Another endpoint, another kind or another layer does not match.
        let other = f.clone().attr("rule", "Microsoft.Sql");
        assert!(!finding_matches(&e.expected_causes[0], &other));
        let rule_missing = Finding {
            kind: "storage_vnet_rule_missing".into(),
            ..f.clone()
        };
        assert!(!finding_matches(&e.expected_causes[0], &rule_missing));
        let nsg = Finding {
            layer: Layer::Nsg,
            ..f
        };
        assert!(!finding_matches(&e.expected_causes[0], &nsg));
    }

    #[test]
    fn hostile_scenario_text_is_an_error_not_a_panic() {
        assert!(expectations_from_toml("[[expected_causes]]\nlayer = 3\n").is_err());
        assert!(expectations_from_toml("\u{0}").is_err());
    }
}
