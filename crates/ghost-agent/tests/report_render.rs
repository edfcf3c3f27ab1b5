//! Reports built from a hand-made session state in the shape of scenario K (two threads: a
//! tbf rate limiter on the source and an ICMP drop on the destination).

use std::collections::BTreeMap;

use ghost_agent::model::{
    Aspect, ConclusionRequest, CoverageMark, CoverageState, Denial, Expectations, Finding,
    Hypothesis, HypothesisStatus, Layer, Remediation, SessionState, SessionStatus, Severity,
    Thread, ToolCallRecord, ToolResult,
};
use ghost_agent::report::{
    build_report, md_code, md_text, render_audit_md, render_report_md, ActionKind, Confidence,
    Report,
};
use ghost_agent::rules::check_conclusion;
use ghost_agent::symptom;
use safety_shell::audit::{AuditDecision, AuditRecord, VerifyReport};
use safety_shell::{Class, Tier};
use serde_json::json;

const SRC: &str = "source-vm";
const DST: &str = "dest-vm";
const SID: &str = "ghost_20261122T090000Z";

fn aid(n: u32) -> String {
    format!("{SID}_{n:06}")
}

fn call(n: u32, tool: &str, commands: &[u32]) -> ToolCallRecord {
    ToolCallRecord {
        audit_id: aid(n),
        command_audit_ids: commands.iter().map(|c| aid(*c)).collect(),
        tool: tool.into(),
        args: json!({}),
        reason: format!("{tool} because the method says so"),
        result: ToolResult::ok(json!({})),
        duration_ms: 120,
    }
}

fn inspected(aspect: Aspect, vm: Option<&str>, n: u32) -> CoverageMark {
    CoverageMark {
        aspect,
        vm: vm.map(str::to_string),
        state: CoverageState::Inspected { evidence: aid(n) },
    }
}

#[allow(clippy::too_many_arguments)] // a test fixture: one argument per field
fn hyp(
    id: &str,
    thread: &str,
    layer: Layer,
    vm: Option<&str>,
    status: HypothesisStatus,
    evidence: &[u32],
    findings: &[&str],
    note: &str,
) -> Hypothesis {
    Hypothesis {
        id: id.into(),
        thread: thread.into(),
        statement: format!("statement of {id}"),
        layer,
        vm: vm.map(str::to_string),
        status,
        evidence: evidence.iter().map(|n| aid(*n)).collect(),
        findings: findings.iter().map(|f| f.to_string()).collect(),
        denials: 0,
        notes: vec![note.to_string()],
    }
}

/// Scenario K, concluded: H1 (tbf on source, thread T1) and H2 (ICMP drop on dest, T2).
fn k_state() -> SessionState {
    let symptom = symptom::parse("transfers 10-20x slower and ping fails", SRC, DST);
    let threads: Vec<Thread> = symptom
        .complaints
        .iter()
        .enumerate()
        .map(|(i, c)| Thread {
            id: format!("T{}", i + 1),
            complaint: c.clone(),
        })
        .collect();
    assert_eq!(threads.len(), 2);

    let mut throughput = Finding::new(
        Layer::Measurement,
        None,
        "throughput_low",
        "source-vm -> dest-vm iperf2",
        "Throughput 0.0048 Gbit/s, stable, below the 1 Gbit/s expectation.",
        "The path delivers far less than expected.",
        Severity::High,
    )
    .attr("measured", 0.0048)
    .attr("expected", 1.0)
    .attr("unit", "Gbit/s");
    throughput.id = "F1".into();
    throughput.evidence = vec![aid(1)];

    let mut tbf = Finding::new(
        Layer::TrafficControl,
        Some(SRC),
        "tbf_rate",
        "eth0 root tbf",
        "tbf rate 5mbit on source-vm eth0 egress.",
        "The token bucket caps every flow leaving eth0 at 5 Mbit/s.",
        Severity::High,
    )
    .attr("qdisc", "tbf")
    .attr("dev", "eth0")
    .attr("rate_bps", 5_000_000)
    .with_remediation(Remediation {
        command: "tc qdisc del dev eth0 root".into(),
        run_on: SRC.into(),
        explanation: "Remove the tbf rate limiter from eth0 on source-vm.".into(),
        verify: "tc qdisc show dev eth0".into(),
    });
    tbf.id = "F2".into();
    tbf.evidence = vec![aid(4)];

    let mut icmp = Finding::new(
        Layer::OsFirewall,
        Some(DST),
        "iptables_drop",
        "filter/INPUT #1",
        "INPUT drops ICMP on dest-vm.",
        "Echo requests are dropped before the kernel answers them.",
        Severity::High,
    )
    .attr("chain", "INPUT")
    .attr("table", "filter")
    .attr("position", 1)
    .attr("protocol", "icmp")
    .with_remediation(Remediation {
        command: "iptables -D INPUT -p icmp -j DROP".into(),
        run_on: DST.into(),
        explanation: "Delete the ICMP DROP rule from INPUT on dest-vm.".into(),
        verify: "ping -c 3 198.18.1.5".into(),
    });
    icmp.id = "F3".into();
    icmp.evidence = vec![aid(5)];

    let mut nsg_info = Finding::new(
        Layer::Nsg,
        None,
        "nsg_allow",
        "dest-vm-nsg/allow-iperf",
        "The NSGs allow tcp/5001 both ways.",
        "No control-plane block.",
        Severity::Info,
    );
    nsg_info.id = "F4".into();
    nsg_info.evidence = vec![aid(2)];

    let mut wire = hyp(
        "H4",
        "T2",
        Layer::Wire,
        Some(DST),
        HypothesisStatus::Unverifiable,
        &[],
        &[],
        "Unverifiable after 2 denied commands (last: capture denied by policy).",
    );
    wire.denials = 2;
    wire.statement = "The wire shows echo requests reaching dest-vm".into();

    let mut calls = vec![
        call(1, "run_pipe_meter", &[10, 11]),
        call(2, "inspect_nsg", &[12]),
        call(3, "inspect_routes", &[13]),
        call(4, "inspect_os_layer", &[14]),
        call(5, "inspect_os_layer", &[15]),
        call(6, "capture_traffic", &[16]),
    ];
    calls[5].result.denials.push(Denial {
        command: "az network watcher packet-capture create ...".into(),
        reason: "policy: never".into(),
        audit_id: Some(aid(16)),
    });

    SessionState {
        schema_version: 1,
        session_id: SID.into(),
        created_at: "2026-11-22T09:00:00Z".into(),
        updated_at: "2026-11-22T09:12:00Z".into(),
        brain: "playbook".into(),
        symptom,
        source_vm: SRC.into(),
        dest_vm: DST.into(),
        threads,
        hypotheses: vec![
            hyp(
                "H1",
                "T1",
                Layer::TrafficControl,
                Some(SRC),
                HypothesisStatus::Confirmed,
                &[1, 4],
                &["F1", "F2"],
                "F1 measured 0.0048 Gbit/s and F2 is a 5 Mbit/s tbf.",
            ),
            hyp(
                "H2",
                "T2",
                Layer::OsFirewall,
                Some(DST),
                HypothesisStatus::Confirmed,
                &[5],
                &["F3"],
                "F3 drops ICMP on dest-vm.",
            ),
            hyp(
                "H3",
                "T1",
                Layer::Nsg,
                None,
                HypothesisStatus::Refuted,
                &[2],
                &[],
                "The NSGs allow the flow both ways.",
            ),
            wire,
        ],
        findings: vec![throughput, tbf, icmp, nsg_info],
        calls,
        coverage: vec![
            inspected(Aspect::NsgForward, None, 2),
            inspected(Aspect::NsgReturn, None, 2),
            inspected(Aspect::Routes, None, 3),
            inspected(Aspect::Firewall, Some(SRC), 4),
            inspected(Aspect::TrafficControl, Some(SRC), 4),
            inspected(Aspect::Firewall, Some(DST), 5),
            CoverageMark {
                aspect: Aspect::TrafficControl,
                vm: Some(DST.into()),
                state: CoverageState::Unverifiable {
                    reason: "tc on dest-vm was denied twice by the approval policy".into(),
                },
            },
        ],
        pending_tasks: vec![],
        steps: vec![],
        refusals: vec!["[unexplained_finding] Finding F3 is not explained".into()],
        conclusion: Some(ConclusionRequest {
            summary:
                "Two independent causes: a 5 Mbit/s tbf on source-vm and an ICMP drop on dest-vm."
                    .into(),
            root_causes: vec!["H1".into(), "H2".into()],
        }),
        status: SessionStatus::Concluded,
        expectations: Expectations::default(),
        usage: None,
        internet_address: None,
    }
}

#[test]
fn k_state_passes_the_rules() {
    let st = k_state();
    assert_eq!(
        check_conclusion(&st, st.conclusion.as_ref().unwrap()),
        Ok(())
    );
}

#[test]
fn k_report_root_causes_and_findings() {
    let r = build_report(&k_state());
    assert!(!r.healthy);
    assert_eq!(r.status, SessionStatus::Concluded);
    assert_eq!(r.root_causes.len(), 2, "{:#?}", r.root_causes);

    let tbf = &r.root_causes[0];
    assert_eq!(tbf.hypothesis, "H1");
    assert_eq!(tbf.thread, "T1");
    assert_eq!(tbf.finding.as_deref(), Some("F2"));
    assert_eq!(tbf.kind, "tbf_rate");
    assert_eq!(tbf.component, "eth0 root tbf");
    assert_eq!(tbf.layer, Layer::TrafficControl);
    assert_eq!(tbf.vm.as_deref(), Some(SRC));
    assert_eq!(tbf.attrs["rate_bps"], json!(5_000_000));
    assert_eq!(tbf.evidence, vec![aid(4), aid(1)]);
    assert_eq!(tbf.confidence, Confidence::High, "two evidence records");

    let drop = &r.root_causes[1];
    assert_eq!(drop.hypothesis, "H2");
    assert_eq!(drop.thread, "T2");
    assert_eq!(drop.kind, "iptables_drop");
    assert_eq!(drop.component, "filter/INPUT #1");
    assert_eq!(drop.evidence, vec![aid(5)]);
    assert_eq!(
        drop.confidence,
        Confidence::High,
        "a blocking finding naming its rule decides"
    );

    assert_eq!(r.findings_by_layer["traffic_control"][SRC], vec!["F2"]);
    assert_eq!(r.findings_by_layer["os_firewall"][DST], vec!["F3"]);
    assert_eq!(r.findings_by_layer["measurement"]["path"], vec!["F1"]);
    assert_eq!(r.findings_by_layer["nsg"]["path"], vec!["F4"]);

    assert_eq!(r.tool_calls, 6);
    assert_eq!(r.commands, 7);
    assert_eq!(r.denials, 1);
    assert_eq!(r.approvals_asked, None);
}

#[test]
fn k_actions_blocking_first_verified_then_final_measurement() {
    let r = build_report(&k_state());
    let a = &r.recommended_actions;
    let kinds: Vec<ActionKind> = a.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ActionKind::Fix,
            ActionKind::Verify,
            ActionKind::Fix,
            ActionKind::FinalVerify,
            ActionKind::FinalVerify
        ],
        "{a:#?}"
    );
    assert_eq!(
        a.iter().map(|x| x.order).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    // The ICMP drop blocks: fixed first although the conclusion names the tbf first.
    assert_eq!(a[0].command, "iptables -D INPUT -p icmp -j DROP");
    assert_eq!(a[0].run_on, DST);
    let inv = a[0].inverse_of.as_ref().unwrap();
    assert_eq!(
        (inv.finding.as_str(), inv.component.as_str()),
        ("F3", "filter/INPUT #1")
    );
    assert_eq!(a[1].command, "ping -c 3 198.18.1.5");
    assert!(a[1].action.contains("filter/INPUT #1"));
    assert_eq!(a[2].command, "tc qdisc del dev eth0 root");
    assert_eq!(a[2].inverse_of.as_ref().unwrap().finding, "F2");
    assert_eq!(a[2].verify.as_deref(), Some("tc qdisc show dev eth0"));
    // Final verification: the symptom's own measurements.
    assert_eq!(
        a[3].command,
        "pipe-meter --config config.env --test-type throughput"
    );
    assert_eq!(a[4].command, "ping -c 5 -W 2 dest-vm");
    assert_eq!(a[4].run_on, SRC);
}

#[test]
fn k_not_checked_lists_unverifiable_aspects_and_hypotheses() {
    let r = build_report(&k_state());
    assert_eq!(r.not_checked.len(), 2, "{:#?}", r.not_checked);
    let tc = &r.not_checked[0];
    assert_eq!(tc.aspect, "traffic_control");
    assert_eq!(tc.vm.as_deref(), Some(DST));
    assert!(tc.reason.contains("denied twice"));
    let h = &r.not_checked[1];
    assert_eq!(h.aspect, "hypothesis");
    assert_eq!(h.hypothesis.as_deref(), Some("H4"));
    assert!(h.reason.contains("echo requests") && h.reason.contains("2 denied"));

    // A required aspect with no mark at all is listed as not inspected.
    let mut st = k_state();
    st.coverage.retain(|m| m.aspect != Aspect::NsgReturn);
    let r = build_report(&st);
    let gap = r
        .not_checked
        .iter()
        .find(|n| n.aspect == "nsg_return")
        .expect("nsg_return listed");
    assert_eq!(gap.reason, "not inspected");
}

#[test]
fn k_markdown_has_every_section_in_order() {
    let r = build_report(&k_state());
    let md = render_report_md(&r);
    let pos = |needle: &str| {
        md.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from\n{md}"))
    };
    let sections = [
        "# ghost-agent report `ghost_20261122T090000Z`",
        "## Conclusion",
        "## Root causes",
        "## Hypotheses",
        "## Findings by layer and VM",
        "## Recommended actions",
        "## Not checked",
        "## Refused conclusion attempts",
    ];
    for w in sections.windows(2) {
        assert!(pos(w[0]) < pos(w[1]), "{} before {}", w[0], w[1]);
    }
    assert!(md.contains("- Status: concluded: 2 root cause(s)"));
    assert!(md.contains(
        "- Component: `eth0 root tbf` (kind `tbf_rate`, layer `traffic_control`, VM `source-vm`)"
    ));
    assert!(md.contains(&format!("   - Evidence: `{}`, `{}`", aid(4), aid(1))));
    assert!(md.contains("   - Confidence: high"));
    assert!(md.contains("| `H1` | `T1` | confirmed | traffic_control | `source-vm` |"));
    assert!(md.contains("| `H4` | `T2` | unverifiable | wire | `dest-vm` |"));
    assert!(md.contains("### os\\_firewall"));
    // Actions in order, with their commands and the inverse named.
    let fix1 = pos("1. Fix: Delete the ICMP DROP rule");
    let ver = pos("2. Verify: ");
    let fix2 = pos("3. Fix: Remove the tbf rate limiter");
    let fin = pos("4. Final verification: ");
    assert!(fix1 < ver && ver < fix2 && fix2 < fin);
    assert!(md.contains("   - Run on `dest-vm`: `iptables -D INPUT -p icmp -j DROP`"));
    assert!(md.contains("   - Inverse of `F3` (`iptables_drop` `filter/INPUT #1`)"));
    assert!(md.contains("`pipe-meter --config config.env --test-type throughput`"));
    assert!(md.contains("- `traffic_control` of `dest-vm`: tc on dest\\-vm was denied twice"));
    assert!(md.contains("- `H4` on `dest-vm`: The wire shows echo requests"));
}

#[test]
fn host_text_cannot_inject_markdown() {
    let mut st = k_state();
    st.findings[2].summary =
        "chain [click me](http://evil.example) <img src=x onerror=alert(1)>\n# Owned".into();
    st.findings[2].untrusted = true;
    st.findings[2].component = "f2b-`sshd`` | x".into();
    st.hypotheses[0].statement = "# heading\n[link](http://evil.example) | cell".into();
    let r = build_report(&st);
    let md = render_report_md(&r);
    // Untrusted summaries are code spans; the component's backticks get a longer fence.
    assert!(
        md.contains(
            "```` chain [click me](http://evil.example) <img src=x onerror=alert(1)> # Owned ````"
        ) || md.contains(
            "`chain [click me](http://evil.example) <img src=x onerror=alert(1)> # Owned`"
        ),
        "{md}"
    );
    assert!(md.contains("```f2b-`sshd`` | x```"), "{md}");
    // Brain text is escaped prose: no heading, no link, no table break.
    assert!(md.contains("\\# heading \\[link\\]\\(http://evil\\.example\\) \\| cell"));
    for line in md.lines() {
        assert!(
            !line.starts_with("# Owned") && !line.starts_with("# heading"),
            "{line}"
        );
    }
    assert_eq!(md_code("a`b"), "``a`b``");
    assert_eq!(md_code("`x"), "`` `x ``");
    assert_eq!(md_code(""), "` `");
    assert_eq!(md_text("a_b*c<d>"), "a\\_b\\*c\\<d\\>");
}

#[test]
fn healthy_and_unconcluded_reports() {
    let mut st = k_state();
    st.conclusion = Some(ConclusionRequest {
        summary: "Every layer is clean.".into(),
        root_causes: vec![],
    });
    let r = build_report(&st);
    assert!(r.healthy);
    assert!(r.root_causes.is_empty());
    assert!(r.recommended_actions.is_empty());
    assert!(render_report_md(&r).contains("concluded: the path was found healthy"));

    st.conclusion = None;
    st.status = SessionStatus::Interrupted;
    let r = build_report(&st);
    assert!(!r.healthy);
    assert!(render_report_md(&r).contains("interrupted: no conclusion accepted yet"));
}

#[test]
fn medium_confidence_and_hypothesis_without_findings() {
    let mut st = k_state();
    // H2 rests on one record and a finding that names no blocking rule.
    st.findings[2].kind = "mtu".into();
    let r = build_report(&st);
    assert_eq!(r.root_causes[1].confidence, Confidence::Medium);
    // A call and a command it ran are one piece of evidence, not two.
    st.hypotheses[1].evidence = vec![aid(5), aid(15)];
    let r = build_report(&st);
    assert_eq!(r.root_causes[1].confidence, Confidence::Medium);
    st.hypotheses[1].evidence = vec![aid(5), aid(13)];
    let r = build_report(&st);
    assert_eq!(r.root_causes[1].confidence, Confidence::High);
    st.hypotheses[1].evidence = vec![aid(5)];
    // A hypothesis with no finding becomes a root cause from its own statement.
    st.hypotheses[1].findings.clear();
    let r = build_report(&st);
    let rc = &r.root_causes[1];
    assert_eq!(rc.finding, None);
    assert_eq!(rc.summary, "statement of H2");
    assert_eq!(rc.component, "");
    assert_eq!(rc.confidence, Confidence::Medium);
}

#[test]
fn json_report_round_trips() {
    let r = build_report(&k_state());
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "session_id",
        "symptom",
        "status",
        "healthy",
        "root_causes",
        "hypotheses",
        "findings",
        "findings_by_layer",
        "recommended_actions",
        "not_checked",
        "tool_calls",
        "commands",
        "approvals_asked",
        "denials",
        "steps",
        "usage",
    ] {
        assert!(v.get(key).is_some(), "{key} missing");
    }
    let rc = &v["root_causes"][0];
    assert_eq!(rc["confidence"], "high");
    assert_eq!(rc["layer"], "traffic_control");
    assert_eq!(rc["evidence"][0], aid(4));
    assert_eq!(v["recommended_actions"][0]["inverse_of"]["finding"], "F3");
    assert_eq!(v["recommended_actions"][1]["kind"], "verify");
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, r);
}

fn record(n: u32, command: &str, class: Class, decision: AuditDecision) -> AuditRecord {
    AuditRecord {
        audit_id: aid(n),
        timestamp: "2026-11-22T09:01:00.000Z".into(),
        session: SID.into(),
        sequence: n as u64,
        target: "ssh:dest-vm".into(),
        command: command.into(),
        reasoning: "why".into(),
        classification: class,
        tier: Tier::ReadOnly,
        reason: "classifier reason".into(),
        policy_rule: None,
        decision,
        decided_by: "auto".into(),
        denial_reason: (decision == AuditDecision::Denied).then(|| "policy: never".into()),
        modified_command: None,
        exit_code: (decision == AuditDecision::Auto).then_some(0),
        signal: None,
        timed_out: false,
        duration_ms: Some(42),
        output_summary: None,
        stderr_summary: None,
        truncated: None,
        error: None,
        redactions: BTreeMap::new(),
        prev_hash: "0".repeat(64),
        hash: "1".repeat(64),
    }
}

#[test]
fn audit_markdown_lists_calls_commands_and_integrity() {
    let st = k_state();
    let mut records = vec![];
    for n in 1..=6 {
        records.push(record(
            n,
            &format!("tool call {n}"),
            Class::Safe,
            AuditDecision::Auto,
        ));
    }
    for n in 10..=15 {
        records.push(record(
            n,
            "iptables-save -c",
            Class::Safe,
            AuditDecision::Auto,
        ));
    }
    records.push(record(
        16,
        "az network watcher packet-capture create | tee x",
        Class::Risky,
        AuditDecision::Denied,
    ));
    let v = VerifyReport {
        records: records.len(),
        head_hash: "ab".repeat(32),
    };
    let md = render_audit_md(&st, &records, Ok(&v));
    assert!(md.contains(&format!(
        "The audit chain verifies: 13 records, every hash and link recomputed; chain head `{}`.",
        "ab".repeat(32)
    )));
    assert!(md.contains("Every audit id the session cites is in the log."));
    assert!(md.contains(&format!(
        "| 6 | `{}` | `capture_traffic` | capture\\_traffic because the method says so | SAFE | auto | ok, 120 ms (1 denied) |",
        aid(6)
    )), "{md}");
    assert!(md.contains(&format!(
        "| `{}` | `{}` | `ssh:dest-vm` | `az network watcher packet-capture create \\| tee x` | RISKY | read_only | denied | `auto` | not run: policy: never, 42 ms |",
        aid(16),
        aid(6)
    )), "{md}");
    assert!(md.contains(&format!("| `{}` | `{}` |", aid(14), aid(4))));
    assert!(md.contains("exit 0, 42 ms"));
    assert!(md.contains("## Denials"));

    // A broken chain and a missing record are both said.
    let md = render_audit_md(&st, &records[..12], Err("line 3: hash mismatch".into()));
    assert!(md.contains("**The audit chain does NOT verify**: line 3: hash mismatch."));
    assert!(md.contains(&format!(
        "**Audit ids cited by the session but absent from the log**: `{}`.",
        aid(16)
    )));
}

#[test]
fn approvals_are_counted_from_records() {
    let mut r = build_report(&k_state());
    let records = vec![
        record(1, "a", Class::Safe, AuditDecision::Auto),
        record(2, "b", Class::Risky, AuditDecision::Approved),
        record(3, "c", Class::Risky, AuditDecision::Denied),
        record(4, "d", Class::Forbidden, AuditDecision::Forbidden),
    ];
    r.count_approvals(&records);
    assert_eq!(r.approvals_asked, Some(2));
    assert!(render_report_md(&r).contains("2 approvals asked"));
}

#[test]
fn one_component_found_twice_is_one_cause_and_added_threads_add_no_final_check() {
    let mut st = k_state();
    let before = build_report(&st);
    // The tbf seen again by a second tool call: same kind, component and VM.
    let mut again = st.findings.iter().find(|f| f.id == "F2").unwrap().clone();
    again.id = "F9".into();
    again.evidence = vec![aid(7)];
    st.findings.push(again);
    st.hypotheses[0].findings.push("F9".into());
    // A thread the investigation opened for another problem it found.
    st.threads.push(Thread {
        id: "T3".into(),
        complaint: ghost_agent::model::Complaint {
            text: "blocking rule found beyond the reported complaints".into(),
            kinds: vec![ghost_agent::model::SymptomKind::Unreachable],
            ports: vec![],
            protocol: None,
            internet: false,
        },
    });
    let r = build_report(&st);
    let tbf: Vec<_> = r
        .root_causes
        .iter()
        .filter(|c| c.kind == "tbf_rate")
        .collect();
    assert_eq!(tbf.len(), 1, "{:#?}", r.root_causes);
    assert_eq!(tbf[0].finding.as_deref(), Some("F2"));
    assert!(tbf[0].evidence.contains(&aid(4)) && tbf[0].evidence.contains(&aid(7)));
    assert_eq!(r.root_causes.len(), before.root_causes.len());
    assert_eq!(r.recommended_actions, before.recommended_actions);
}
