//! The rule gates: each rule refuses a conclusion, then the fixed state is accepted.

use ghost_agent::model::{
    Aspect, ConclusionRequest, CoverageMark, CoverageState, Expectations, Finding, Hypothesis,
    HypothesisStatus, Layer, Remediation, SessionState, SessionStatus, Severity, Thread,
    ToolCallRecord, ToolResult,
};
use ghost_agent::rules::{
    check_conclusion, coverage_missing, coverage_required, mentions_id, record_denial, Refusal,
    RuleConfig,
};
use ghost_agent::symptom;
use serde_json::json;

const SRC: &str = "source-vm";
const DST: &str = "dest-vm";
const SID: &str = "ghost_20261122T090000Z";

fn aid(n: u32) -> String {
    format!("{SID}_{n:06}")
}

fn state(text: &str) -> SessionState {
    let symptom = symptom::parse(text, SRC, DST);
    let threads = symptom
        .complaints
        .iter()
        .enumerate()
        .map(|(i, c)| Thread {
            id: format!("T{}", i + 1),
            complaint: c.clone(),
        })
        .collect();
    SessionState {
        schema_version: 1,
        session_id: SID.into(),
        created_at: "2026-11-22T09:00:00Z".into(),
        updated_at: "2026-11-22T09:10:00Z".into(),
        brain: "playbook".into(),
        symptom,
        source_vm: SRC.into(),
        dest_vm: DST.into(),
        threads,
        hypotheses: vec![],
        findings: vec![],
        calls: vec![],
        coverage: vec![],
        pending_tasks: vec![],
        steps: vec![],
        refusals: vec![],
        conclusion: None,
        status: SessionStatus::Running,
        expectations: Expectations::default(),
        usage: None,
        internet_address: None,
    }
}

fn call(st: &mut SessionState, n: u32, tool: &str, commands: &[u32]) {
    st.calls.push(ToolCallRecord {
        audit_id: aid(n),
        command_audit_ids: commands.iter().map(|c| aid(*c)).collect(),
        tool: tool.into(),
        args: json!({}),
        reason: format!("step for {tool}"),
        result: ToolResult::ok(json!({})),
        duration_ms: 10,
    });
}

fn mark(aspect: Aspect, vm: Option<&str>, evidence: String) -> CoverageMark {
    CoverageMark {
        aspect,
        vm: vm.map(str::to_string),
        state: CoverageState::Inspected { evidence },
    }
}

/// Calls 1..=5 (with commands 10..) and full coverage.
fn covered(st: &mut SessionState) {
    call(st, 1, "run_pipe_meter", &[10, 11]);
    call(st, 2, "inspect_nsg", &[12]);
    call(st, 3, "inspect_routes", &[13]);
    call(st, 4, "inspect_os_layer", &[14]);
    call(st, 5, "inspect_os_layer", &[15]);
    st.coverage = vec![
        mark(Aspect::NsgForward, None, aid(2)),
        mark(Aspect::NsgReturn, None, aid(2)),
        mark(Aspect::Routes, None, aid(3)),
        mark(Aspect::Firewall, Some(SRC), aid(4)),
        mark(Aspect::TrafficControl, Some(SRC), aid(4)),
        mark(Aspect::Firewall, Some(DST), aid(5)),
        mark(Aspect::TrafficControl, Some(DST), aid(5)),
    ];
}

fn hyp(id: &str, thread: &str, layer: Layer, vm: Option<&str>) -> Hypothesis {
    Hypothesis {
        id: id.into(),
        thread: thread.into(),
        statement: format!("statement of {id}"),
        layer,
        vm: vm.map(str::to_string),
        status: HypothesisStatus::Open,
        evidence: vec![],
        findings: vec![],
        denials: 0,
        notes: vec![],
    }
}

fn confirm(h: &mut Hypothesis, evidence: &[String], findings: &[&str]) {
    h.status = HypothesisStatus::Confirmed;
    h.evidence = evidence.to_vec();
    h.findings = findings.iter().map(|f| f.to_string()).collect();
    h.notes.push("Confirmed by the cited evidence.".into());
}

fn finding(
    id: &str,
    layer: Layer,
    vm: Option<&str>,
    kind: &str,
    component: &str,
    sev: Severity,
    ev: String,
) -> Finding {
    let mut f = Finding::new(layer, vm, kind, component, "summary", "mechanism", sev);
    f.id = id.into();
    f.evidence = vec![ev];
    f
}

fn rules_of(r: Result<(), Vec<Refusal>>) -> Vec<&'static str> {
    match r {
        Ok(()) => vec![],
        Err(v) => v.into_iter().map(|r| r.rule).collect(),
    }
}

fn req(causes: &[&str]) -> ConclusionRequest {
    ConclusionRequest {
        summary: "done".into(),
        root_causes: causes.iter().map(|s| s.to_string()).collect(),
    }
}

/// Scenario D-like state that satisfies every rule: one thread, one confirmed NSG cause.
fn good() -> SessionState {
    let mut st = state("both PostgreSQL and Redis unreachable after an NSG change");
    covered(&mut st);
    st.findings.push(finding(
        "F1",
        Layer::Nsg,
        Some(DST),
        "nsg_deny",
        "dest-vm-nsg/deny-5432",
        Severity::High,
        aid(2),
    ));
    let mut h = hyp("H1", "T1", Layer::Nsg, Some(DST));
    confirm(&mut h, &[aid(2)], &["F1"]);
    st.hypotheses.push(h);
    st
}

#[test]
fn the_good_state_is_accepted() {
    assert_eq!(check_conclusion(&good(), &req(&["H1"])), Ok(()));
}

#[test]
fn unresolved_hypothesis_refused_then_accepted() {
    let mut st = good();
    st.hypotheses.push(hyp("H2", "T1", Layer::Route, None));
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["unresolved_hypothesis"]
    );
    st.hypotheses[1].status = HypothesisStatus::Contradicted;
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["unresolved_hypothesis"]
    );
    st.hypotheses[1].status = HypothesisStatus::Refuted;
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn no_evidence_refused_then_accepted() {
    let mut st = good();
    st.hypotheses[0].evidence.clear();
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].rule, "no_evidence");
    assert!(err[0].message.contains("H1"));
    st.hypotheses[0].evidence.push(aid(11)); // a command of call 1 counts
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn unknown_evidence_refused_then_accepted() {
    let mut st = good();
    st.hypotheses[0].evidence = vec![aid(99)];
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err[0].rule, "unknown_evidence");
    assert!(err[0].message.contains(&aid(99)));
    st.hypotheses[0].evidence = vec![aid(2)];
    st.hypotheses[0].findings.push("F7".into());
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["unknown_evidence"]
    );
    st.hypotheses[0].findings.pop();
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn not_confirmed_root_cause_refused_then_accepted() {
    let mut st = good();
    let mut h2 = hyp("H2", "T1", Layer::Route, None);
    h2.status = HypothesisStatus::Refuted;
    st.hypotheses.push(h2);
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1", "H2"]))),
        vec!["not_confirmed"]
    );
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1", "H9"]))),
        vec!["not_confirmed"]
    );
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn unnamed_confirmed_cause_refused() {
    let st = good();
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&[]))),
        vec!["unnamed_cause"]
    );
}

#[test]
fn coverage_refused_then_accepted() {
    let mut st = good();
    st.coverage
        .retain(|m| !(m.aspect == Aspect::TrafficControl && m.vm.as_deref() == Some(DST)));
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].rule, "coverage");
    assert!(
        err[0].message.contains("traffic control of dest-vm"),
        "{}",
        err[0]
    );
    assert_eq!(coverage_missing(&st).len(), 1);

    // A reason-less unverifiable mark does not count; one with a reason does.
    st.coverage.push(CoverageMark {
        aspect: Aspect::TrafficControl,
        vm: Some(DST.into()),
        state: CoverageState::Unverifiable { reason: " ".into() },
    });
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["coverage"]
    );
    st.coverage.pop();
    // An inspected mark citing no call of the session does not count.
    st.coverage
        .push(mark(Aspect::TrafficControl, Some(DST), aid(77)));
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["coverage"]
    );
    st.coverage.pop();
    st.coverage.push(CoverageMark {
        aspect: Aspect::TrafficControl,
        vm: Some(DST.into()),
        state: CoverageState::Unverifiable {
            reason: "ssh to dest-vm denied twice".into(),
        },
    });
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));

    // The source's firewall does not cover the destination's.
    st.coverage
        .retain(|m| !(m.aspect == Aspect::Firewall && m.vm.as_deref() == Some(DST)));
    st.coverage.push(mark(Aspect::Firewall, Some(SRC), aid(5)));
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["coverage"]
    );
}

#[test]
fn coverage_required_by_symptom_kind() {
    let all = coverage_required(&state("source cannot reach dest:8080; ping works"));
    assert_eq!(all.len(), 7);
    for (a, vm) in [
        (Aspect::NsgForward, None),
        (Aspect::NsgReturn, None),
        (Aspect::Routes, None),
        (Aspect::Firewall, Some(SRC)),
        (Aspect::Firewall, Some(DST)),
        (Aspect::TrafficControl, Some(SRC)),
        (Aspect::TrafficControl, Some(DST)),
    ] {
        assert!(all.contains(&(a, vm.map(str::to_string))), "{a:?} {vm:?}");
    }
    assert_eq!(coverage_required(&state("file transfers crawl")).len(), 7);
    // The internet from the source: the source's side alone (no return gate, no dest).
    let inet = coverage_required(&state("all internet lost"));
    assert_eq!(
        inet,
        vec![
            (Aspect::NsgForward, None),
            (Aspect::Routes, None),
            (Aspect::Firewall, Some(SRC.to_string())),
            (Aspect::TrafficControl, Some(SRC.to_string())),
        ]
    );
    // With a complaint between the VMs as well, both ends again.
    assert_eq!(
        coverage_required(&state(
            "dest:8080 is refused and the internet is unreachable"
        ))
        .len(),
        7
    );
    assert_eq!(coverage_required(&state("latency spiked")).len(), 7);
    assert!(
        coverage_required(&state("compliance question: what is this VM exposed to?")).is_empty()
    );
    // A compliance-only state concludes without any coverage.
    let st = state("compliance question: what is this VM exposed to?");
    let mut st2 = st.clone();
    let mut h = hyp("H1", "T1", Layer::Nsg, Some(DST));
    h.status = HypothesisStatus::Refuted;
    st2.hypotheses.push(h);
    assert_eq!(check_conclusion(&st2, &req(&[])), Ok(()));
    // The same pair twice is no path.
    let mut same = state("file transfers crawl");
    same.dest_vm = SRC.into();
    assert!(coverage_required(&same).is_empty());
}

#[test]
fn thread_open_refused_then_accepted() {
    let mut st = good();
    st.threads.push(Thread {
        id: "T2".into(),
        complaint: symptom::parse("latency spiked", SRC, DST).complaints[0].clone(),
    });
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].rule, "thread_open");
    assert!(err[0].message.contains("T2"));
    let mut h2 = hyp("H2", "T2", Layer::TrafficControl, Some(SRC));
    h2.status = HypothesisStatus::Refuted;
    st.hypotheses.push(h2.clone());
    let mut h3 = hyp("H3", "T2", Layer::TrafficControl, Some(DST));
    h3.status = HypothesisStatus::Unverifiable;
    h3.notes.push("ssh denied twice".into());
    st.hypotheses.push(h3);
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn unexplained_finding_refused_then_accepted() {
    let mut st = good();
    st.findings.push(finding(
        "F2",
        Layer::Route,
        None,
        "route_nva",
        "rt-default/to-nva",
        Severity::Medium,
        aid(3),
    ));
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].rule, "unexplained_finding");
    assert!(err[0].message.contains("F2"));

    // Linked to a refuted hypothesis whose notes do not name it: still unexplained.
    let mut h2 = hyp("H2", "T1", Layer::Route, None);
    h2.status = HypothesisStatus::Refuted;
    h2.findings = vec!["F2".into()];
    h2.notes = vec!["Not the cause.".into()];
    st.hypotheses.push(h2);
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["unexplained_finding"]
    );
    st.hypotheses[1]
        .notes
        .push("F2 routes only 0.0.0.0/0 through the NVA; the VNet route wins for dest.".into());
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));

    // A low finding needs no explanation.
    st.findings.push(finding(
        "F3",
        Layer::OsFirewall,
        Some(SRC),
        "nsg_permissive",
        "x",
        Severity::Low,
        aid(4),
    ));
    assert_eq!(check_conclusion(&st, &req(&["H1"])), Ok(()));
}

#[test]
fn scenario_l_second_fault_cannot_be_missed() {
    let mut st = state("iperf broken after a change window; maybe more than one issue");
    assert_eq!(st.threads.len(), 1);
    covered(&mut st);
    st.findings.push(
        finding(
            "F1",
            Layer::Nsg,
            Some(DST),
            "nsg_deny",
            "dest-vm-nsg/deny-iperf",
            Severity::High,
            aid(2),
        )
        .attr("port", 5001)
        .attr("priority", 200),
    );
    st.findings.push(
        finding(
            "F2",
            Layer::TrafficControl,
            Some(DST),
            "delay",
            "eth0 root netem",
            Severity::High,
            aid(5),
        )
        .attr("delay_ms", 80)
        .attr("loss_pct", 8),
    );
    let mut h1 = hyp("H1", "T1", Layer::Nsg, Some(DST));
    confirm(&mut h1, &[aid(2)], &["F1"]);
    st.hypotheses.push(h1);

    // Stopping after the NSG rule is refused: the shaping finding is unexplained.
    let err = check_conclusion(&st, &req(&["H1"])).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(err[0].rule, "unexplained_finding");
    assert!(err[0].message.contains("F2") && err[0].message.contains("dest-vm"));

    let mut h2 = hyp("H2", "T1", Layer::TrafficControl, Some(DST));
    confirm(&mut h2, &[aid(5), aid(15)], &["F2"]);
    st.hypotheses.push(h2);
    // Naming only the NSG is still refused; naming both is accepted.
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1"]))),
        vec!["unnamed_cause"]
    );
    assert_eq!(check_conclusion(&st, &req(&["H1", "H2"])), Ok(()));
    // And without the destination's traffic control inspected it would be refused.
    st.coverage
        .retain(|m| !(m.aspect == Aspect::TrafficControl && m.vm.as_deref() == Some(DST)));
    assert_eq!(
        rules_of(check_conclusion(&st, &req(&["H1", "H2"]))),
        vec!["coverage"]
    );
}

#[test]
fn every_refusal_is_reported_at_once() {
    let mut st = state("transfers 10-20x slower and ping fails");
    st.findings.push(
        finding(
            "F1",
            Layer::TrafficControl,
            Some(SRC),
            "tbf_rate",
            "eth0 root tbf",
            Severity::High,
            aid(1),
        )
        .with_remediation(Remediation {
            command: "tc qdisc del dev eth0 root".into(),
            run_on: SRC.into(),
            explanation: "removes the rate limiter".into(),
            verify: "tc qdisc show dev eth0".into(),
        }),
    );
    let mut h = hyp("H1", "T1", Layer::TrafficControl, Some(SRC));
    h.status = HypothesisStatus::Confirmed;
    st.hypotheses.push(h);
    let rules = rules_of(check_conclusion(&st, &req(&["H1"])));
    for r in ["no_evidence", "coverage", "thread_open"] {
        assert!(rules.contains(&r), "{r} missing from {rules:?}");
    }
    // F1 is linked? No: H1 links nothing, so F1 is unexplained too.
    assert!(rules.contains(&"unexplained_finding"));
    assert_eq!(rules.iter().filter(|r| **r == "coverage").count(), 7);
}

#[test]
fn denials_make_a_hypothesis_unverifiable() {
    let cfg = RuleConfig::default();
    assert_eq!(cfg.denials_until_unverifiable, 2);
    let mut h = hyp("H1", "T1", Layer::OsFirewall, Some(DST));
    record_denial(&mut h, "operator denied iptables-save", &cfg);
    assert_eq!(h.status, HypothesisStatus::Open);
    assert_eq!(h.denials, 1);
    record_denial(&mut h, "policy: never\nrun", &cfg);
    assert_eq!(h.status, HypothesisStatus::Unverifiable);
    assert_eq!(h.denials, 2);
    let last = h.notes.last().unwrap();
    assert!(
        last.contains("Unverifiable after 2") && last.contains("policy: never run"),
        "{last}"
    );

    // A decided hypothesis keeps its status; the count still grows.
    let mut c = hyp("H2", "T1", Layer::Nsg, None);
    c.status = HypothesisStatus::Confirmed;
    for _ in 0..3 {
        record_denial(&mut c, "denied", &cfg);
    }
    assert_eq!(c.status, HypothesisStatus::Confirmed);
    assert_eq!(c.denials, 3);

    // A configured threshold.
    let cfg3 = RuleConfig {
        denials_until_unverifiable: 3,
    };
    let mut x = hyp("H3", "T1", Layer::Nsg, None);
    x.status = HypothesisStatus::Contradicted;
    record_denial(&mut x, "", &cfg3);
    record_denial(&mut x, "", &cfg3);
    assert_eq!(x.status, HypothesisStatus::Contradicted);
    record_denial(&mut x, "", &cfg3);
    assert_eq!(x.status, HypothesisStatus::Unverifiable);
    assert!(x.notes[0].contains("no reason given"));
}

#[test]
fn id_mentions_are_whole_tokens() {
    assert!(mentions_id("explains F3.", "F3"));
    assert!(mentions_id("F3", "F3"));
    assert!(!mentions_id("explains F31", "F3"));
    assert!(!mentions_id("AF3 x", "F3"));
    assert!(!mentions_id("anything", ""));
}
