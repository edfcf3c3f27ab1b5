//! The playbook and the engine over scripted tools (no lab): which hypotheses a finding
//! confirms, thread separation, the coverage of both VMs, evidence ids, state file and
//! resume. The same playbook runs against real lab scenarios in `lab_playbook.rs`.

mod offline;

use ghost_agent::engine::{load_state, Engine};
use ghost_agent::model::*;
use ghost_agent::playbook::{self, PlaybookOptions, PlaybookOutcome};
use ghost_agent::tools::Tool;
use offline::*;
use serde_json::json;

#[test]
fn scenario_k_shape_two_threads_two_causes() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100000Z";
    let mut e = Engine::start(ctx(dir.path(), sid), k_symptom(), "playbook")
        .unwrap()
        .with_tools(scenario_k_tools());
    let out = playbook::run(&mut e, &PlaybookOptions::default());
    assert_eq!(
        out,
        PlaybookOutcome::Concluded,
        "refusals: {:?}",
        e.state.refusals
    );
    let confirmed: Vec<&Hypothesis> = confirmed(&e);
    assert_eq!(confirmed.len(), 2, "{confirmed:#?}");
    let tc = confirmed
        .iter()
        .find(|h| h.layer == Layer::TrafficControl)
        .unwrap();
    assert_eq!(tc.thread, "T1");
    assert_eq!(tc.vm.as_deref(), Some("source-vm"));
    let fw = confirmed
        .iter()
        .find(|h| h.layer == Layer::OsFirewall)
        .unwrap();
    assert_eq!(
        fw.thread, "T2",
        "the ICMP drop explains the ping thread only"
    );
    assert_eq!(fw.vm.as_deref(), Some("dest-vm"));
    // The throughput measurement supports the rate limiter, not the ICMP drop.
    let tput = e
        .state
        .findings
        .iter()
        .find(|f| f.kind == "throughput_low")
        .unwrap();
    assert!(tc.findings.contains(&tput.id));
    assert!(!fw.findings.contains(&tput.id));
    // Every finding's evidence is a tool-call audit id of this session.
    for f in &e.state.findings {
        assert!(f.evidence[0].starts_with(sid), "{f:?}");
        assert!(e.state.calls.iter().any(|c| c.audit_id == f.evidence[0]));
    }
    // Every other hypothesis is refuted with evidence.
    for h in &e.state.hypotheses {
        assert!(h.status.is_resolved(), "{h:?}");
        assert!(
            !h.evidence.is_empty() || h.status == HypothesisStatus::Unverifiable,
            "{h:?}"
        );
    }
    // Root causes in fix order: the blocking drop before the shaping.
    let c = e.state.conclusion.clone().unwrap();
    assert_eq!(c.root_causes, vec![fw.id.clone(), tc.id.clone()]);
    // The state file is verified on load and matches.
    let loaded = load_state(&e.ctx.session_dir, sid).unwrap();
    assert_eq!(loaded.status, SessionStatus::Concluded);
    assert_eq!(loaded.hypotheses, e.state.hypotheses);
    // The audit chain holds every tool call.
    let v = safety_shell::audit::verify(e.ctx.gate.audit().path()).unwrap();
    assert_eq!(
        v.records,
        e.state.calls.len(),
        "every tool call is in the verified chain (playbook-only commands: none here)"
    );
}

#[test]
fn a_tampered_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100001Z";
    let e = Engine::start(ctx(dir.path(), sid), k_symptom(), "playbook").unwrap();
    let p = e.ctx.session_dir.join(format!("{sid}_state.json"));
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("playbook", "anthropic");
    std::fs::write(&p, text).unwrap();
    let err = load_state(&e.ctx.session_dir, sid).unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
}

#[test]
fn interrupted_session_resumes_without_repeating_calls() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100002Z";
    let c = ctx(dir.path(), sid);
    let cancel = c.cancel.clone();
    let mut e = Engine::start(c, k_symptom(), "playbook")
        .unwrap()
        .with_tools(scenario_k_tools());
    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        playbook::run(&mut e, &PlaybookOptions::default()),
        PlaybookOutcome::Interrupted
    );
    let calls_before = e.state.calls.len();
    let measured = e
        .state
        .calls
        .iter()
        .filter(|c| c.tool == "run_pipe_meter")
        .count();
    assert_eq!(measured, 1);
    drop(e);
    let state = load_state(&dir.path().join(sid), sid).unwrap();
    assert_eq!(state.status, SessionStatus::Interrupted);
    let mut e = Engine::resume(ctx(dir.path(), sid), state).with_tools(scenario_k_tools());
    assert_eq!(
        playbook::run(&mut e, &PlaybookOptions::default()),
        PlaybookOutcome::Concluded
    );
    assert!(e.state.calls.len() > calls_before);
    assert_eq!(
        e.state
            .calls
            .iter()
            .filter(|c| c.tool == "run_pipe_meter")
            .count(),
        1,
        "the measurement is not repeated on resume"
    );
    let v = safety_shell::audit::verify(e.ctx.gate.audit().path()).unwrap();
    assert_eq!(
        v.records,
        e.state.calls.len(),
        "the chain continues across the resume"
    );
}

#[test]
fn scenario_l_shape_second_fault_on_dest_is_not_missed() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100003Z";
    let mut tools: Vec<Box<dyn Tool>> = vec![
        tool("inspect_nsg", |args| {
            let mut r = ToolResult::ok(json!({"forward": "DENY"}));
            r.coverage = vec![
                inspected(Aspect::NsgForward, None),
                inspected(Aspect::NsgReturn, None),
            ];
            if args["port"] == json!(5001) {
                r.findings = vec![Finding::new(
                    Layer::Nsg,
                    Some("dest-vm"),
                    "nsg_deny",
                    "dest-vm-nsg/deny-iperf",
                    "dest-vm-nsg denies tcp/5001 inbound (deny-iperf, priority 200)",
                    "the NIC NSG drops the SYNs",
                    Severity::High,
                )
                .attr("port", 5001)
                .attr("protocol", "tcp")
                .attr("priority", 200)];
            }
            r
        }),
        os_layer(|vm, _| {
            if vm == "dest-vm" {
                vec![Finding::new(
                    Layer::TrafficControl,
                    Some("dest-vm"),
                    "packet_diversion",
                    "mangle/POSTROUTING #1",
                    "egress diverted to a userspace queue",
                    "delay and loss",
                    Severity::Medium,
                )]
            } else {
                vec![]
            }
        }),
    ];
    tools.extend(quiet_routes_trace_meter());
    tools.push(tool("capture_traffic", |_| {
        ToolResult::failed("not expected")
    }));
    let symptom = one_complaint(
        "iperf broken after a change window; maybe more than one issue",
        &[SymptomKind::Unreachable, SymptomKind::AfterChange],
        &[5001],
    );
    let e = concluded(dir.path(), sid, symptom, tools);
    let causes = e.state.conclusion.clone().unwrap().root_causes;
    assert_eq!(causes.len(), 2, "{:#?}", e.state.hypotheses);
    let first = e
        .state
        .hypotheses
        .iter()
        .find(|h| h.id == causes[0])
        .unwrap();
    let second = e
        .state
        .hypotheses
        .iter()
        .find(|h| h.id == causes[1])
        .unwrap();
    assert_eq!(first.layer, Layer::Nsg, "the NSG rule is fixed first");
    assert_eq!(second.layer, Layer::TrafficControl);
    assert_eq!(second.vm.as_deref(), Some("dest-vm"));
    assert!(
        !e.state.calls.iter().any(|c| c.tool == "capture_traffic"),
        "no capture when the control plane explains it"
    );
}

#[test]
fn scenario_p_shape_a_drop_on_another_port_is_its_own_thread() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100004Z";
    let mut tools: Vec<Box<dyn Tool>> = vec![
        tool("inspect_nsg", |args| {
            let mut r = ToolResult::ok(json!({}));
            r.coverage = vec![
                inspected(Aspect::NsgForward, None),
                inspected(Aspect::NsgReturn, None),
            ];
            if args["port"] == json!(8080) {
                r.findings = vec![Finding::new(
                    Layer::Nsg,
                    Some("dest-vm"),
                    "nsg_deny",
                    "dest-vm-nsg/block-8080",
                    "deny 8080",
                    "drops SYNs",
                    Severity::High,
                )
                .attr("port", 8080)
                .attr("protocol", "tcp")];
            }
            r
        }),
        os_layer(|vm, _| {
            if vm == "dest-vm" {
                vec![Finding::new(
                    Layer::OsFirewall,
                    Some("dest-vm"),
                    "iptables_drop",
                    "filter/INPUT #1",
                    "INPUT drops tcp/5001",
                    "silently dropped",
                    Severity::High,
                )
                .attr("port", 5001)
                .attr("protocol", "tcp")]
            } else {
                vec![]
            }
        }),
    ];
    tools.extend(quiet_routes_trace_meter());
    let symptom = one_complaint(
        "8080 unreachable after a change that was rolled back",
        &[SymptomKind::Unreachable, SymptomKind::AfterChange],
        &[8080],
    );
    let e = concluded(dir.path(), sid, symptom, tools);
    let causes = e.state.conclusion.clone().unwrap().root_causes;
    assert_eq!(causes.len(), 2, "{:#?}", e.state.hypotheses);
    let second = e
        .state
        .hypotheses
        .iter()
        .find(|h| h.id == causes[1])
        .unwrap();
    assert_eq!(second.layer, Layer::OsFirewall);
    assert_eq!(
        second.thread, "T2",
        "the DROP on 5001 does not explain the 8080 complaint"
    );
    assert_eq!(e.state.threads.len(), 2);
}

#[test]
fn capture_only_when_cheaper_evidence_ran_out_then_polled_and_cleaned() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100005Z";
    let checks = Arc::new(AtomicU32::new(0));
    let seen = checks.clone();
    let mut tools = clean_control_plane();
    tools.push(tool("run_pipe_meter", |_| ToolResult::ok(json!({}))));
    tools.push(os_layer(|_, _| vec![]));
    tools.push(tool("capture_traffic", |args| {
        assert_eq!(args["both"], json!(true));
        assert_eq!(args["filter"]["port"], json!(8080));
        ToolResult::ok(json!({"task_id": "t-1", "state": "running"}))
    }));
    tools.push(tool("check_task", move |args| {
        assert_eq!(
            args,
            &json!({"task_id": "t-1"}),
            "check_task takes the task id only"
        );
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let state = if n < 2 { "running" } else { "analysed" };
        let mut r = ToolResult::ok(json!({"task_id": "t-1", "state": state}));
        if state == "analysed" {
            r.findings = vec![Finding::new(
                Layer::Wire,
                Some("dest-vm"),
                "handshake_unanswered",
                "tcp 198.18.1.4 -> 198.18.1.5:8080",
                "SYNs without SYN-ACK",
                "frames 1, 3, 5",
                Severity::Medium,
            )
            .attr("port", 8080)];
        }
        r
    }));
    tools.push(tool("cleanup_task", |_| {
        ToolResult::ok(json!({"state": "cleaned"}))
    }));
    let symptom = one_complaint(
        "source cannot reach dest on port 8080",
        &[SymptomKind::Unreachable],
        &[8080],
    );
    let mut e = Engine::start(ctx(dir.path(), sid), symptom, "playbook")
        .unwrap()
        .with_tools(tools);
    let opts = PlaybookOptions {
        poll_interval: std::time::Duration::from_millis(1),
        ..Default::default()
    };
    assert_eq!(
        playbook::run(&mut e, &opts),
        PlaybookOutcome::Concluded,
        "{:?}",
        e.state.refusals
    );
    assert_eq!(checks.load(Ordering::SeqCst), 3, "polled until analysed");
    assert!(e.state.pending_tasks.is_empty(), "the task was cleaned up");
    // The wire finding is reported, not invented into a cause.
    assert!(e
        .state
        .findings
        .iter()
        .any(|f| f.kind == "handshake_unanswered"));
    assert!(e.state.conclusion.as_ref().unwrap().root_causes.is_empty());
}

#[test]
fn engine_keys_reach_the_engine_not_the_tool_and_denials_make_a_hypothesis_unverifiable() {
    let dir = tempfile::tempdir().unwrap();
    let sid = "ghost_20261122T100006Z";
    let tools: Vec<Box<dyn Tool>> = vec![tool("run_shell", |args| {
        assert!(
            args.get("hypothesis").is_none() && args.get("reason").is_none(),
            "engine keys leaked to the tool: {args}"
        );
        let mut r = ToolResult::failed("denied");
        r.denials = vec![Denial {
            command: "iptables -F".into(),
            reason: "policy".into(),
            audit_id: None,
        }];
        r
    })];
    let mut e = Engine::start(ctx(dir.path(), sid), k_symptom(), "playbook")
        .unwrap()
        .with_tools(tools);
    let h = e.hypothesize(
        "T1",
        "dest drops",
        Layer::OsFirewall,
        Some("dest-vm"),
        "test",
    );
    for _ in 0..2 {
        e.call(
            "run_shell",
            &json!({"vm": "dest-vm", "command": "iptables -F", "hypothesis": h, "reason": "try"}),
            "try",
        );
    }
    let hyp = e.state.hypotheses.iter().find(|x| x.id == h).unwrap();
    assert_eq!(hyp.status, HypothesisStatus::Unverifiable, "{hyp:?}");
    // The real tools' specs offered to a model include the engine keys.
    let real = Engine::start(
        ctx(dir.path(), "ghost_20261122T100007Z"),
        k_symptom(),
        "playbook",
    )
    .unwrap();
    for spec in real
        .tool_specs()
        .iter()
        .filter(|s| s.name != "manage_hypotheses" && s.name != "complete_investigation")
    {
        let props = &spec.input_schema["properties"];
        assert!(
            props.get("hypothesis").is_some() && props.get("reason").is_some(),
            "{}",
            spec.name
        );
    }
}

type Calls = std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>;

/// Scenario T's first phase on the VM `side`: its default route goes to a dead appliance,
/// and an OUTPUT drop of tcp/80 also sits there (a separate problem: one port cannot explain
/// "no internet"). Every tool records its calls; the other VM is clean.
fn internet_case(sid: &str, text: &str, side: &'static str) -> (tempfile::TempDir, Engine, Calls) {
    let dir = tempfile::tempdir().unwrap();
    let calls: Calls = Calls::default();
    let rec = |calls: &Calls| {
        let calls = calls.clone();
        move |name: &str, args: &serde_json::Value| {
            calls.lock().unwrap().push((name.to_string(), args.clone()));
        }
    };
    let (r_nsg, r_routes, r_os, r_meter, r_trace) = (
        rec(&calls),
        rec(&calls),
        rec(&calls),
        rec(&calls),
        rec(&calls),
    );
    let tools: Vec<Box<dyn Tool>> = vec![
        tool("inspect_nsg", move |args| {
            r_nsg("inspect_nsg", args);
            let mut r = ToolResult::ok(json!({"forward": {"verdict": "ALLOW"}}));
            r.coverage = vec![inspected(Aspect::NsgForward, None)];
            r
        }),
        tool("inspect_routes", move |args| {
            r_routes("inspect_routes", args);
            let mut r = ToolResult::ok(json!({}));
            r.coverage = vec![inspected(Aspect::Routes, None)];
            if args["mode"] == "audit" && args["vm"] == side {
                r.findings = vec![Finding::new(
                    Layer::Route,
                    Some(side),
                    "route_nva",
                    "rt-default/default-via-nva",
                    "route 0.0.0.0/0 goes to a dead appliance",
                    "packets are lost",
                    Severity::High,
                )
                .attr("prefix", "0.0.0.0/0")
                .attr("route", "default-via-nva")
                .with_remediation(Remediation {
                    command: "az network route-table route delete -g rg-test --route-table-name rt-default -n default-via-nva".into(),
                    run_on: "az".into(),
                    explanation: "deletes the route".into(),
                    verify: "inspect_routes again".into(),
                })];
            }
            r
        }),
        os_layer(move |vm, args| {
            r_os("inspect_os_layer", args);
            if vm != side {
                return vec![];
            }
            vec![Finding::new(
                Layer::OsFirewall,
                Some(side),
                "iptables_drop",
                "filter/OUTPUT #1",
                "OUTPUT drops tcp/80",
                "dropped",
                Severity::High,
            )
            .attr("protocol", "tcp")
            .attr("port", 80u64)
            .attr("chain", "OUTPUT")]
        }),
        tool("run_pipe_meter", move |a| {
            r_meter("run_pipe_meter", a);
            ToolResult::ok(json!({}))
        }),
        tool("trace_reachability", move |a| {
            r_trace("trace_reachability", a);
            ToolResult::ok(json!({}))
        }),
    ];
    let symptom = ghost_agent::symptom::parse(text, "source-vm", "dest-vm");
    let e = concluded(dir.path(), sid, symptom, tools);
    (dir, e, calls)
}

/// What an internet investigation of `side` must show (`other` is the VM not in question).
fn assert_internet_investigation(e: &Engine, calls: &Calls, side: &str, other: &str) {
    let inet = ghost_agent::tools::DEFAULT_INTERNET_PROBE_IP;
    assert_eq!(e.state.internet_address.as_deref(), Some(inet));
    assert_eq!(e.state.internet_side(), side);
    let calls = calls.lock().unwrap().clone();
    // Nothing between the VMs: no measurement, no trace, no look at the other VM.
    for (tool, args) in &calls {
        assert!(
            tool != "run_pipe_meter" && tool != "trace_reachability",
            "{calls:#?}"
        );
        assert_ne!(args["vm"], other, "{calls:#?}");
        if tool == "inspect_nsg" {
            let from = args["source_vm"].as_str().unwrap_or("source-vm");
            assert_eq!(from, side, "{calls:#?}");
        }
    }
    // The NSG verdict and the route are asked toward the internet address, on HTTPS.
    assert!(calls
        .iter()
        .any(|(t, a)| t == "inspect_nsg" && a["address"] == inet && a["port"] == 443));
    assert!(calls
        .iter()
        .any(|(t, a)| t == "inspect_routes" && a["address"] == inet && a["vm"] == side));
    // The hypotheses speak of the internet and of that VM only.
    for h in e.state.hypotheses.iter().filter(|h| h.thread == "T1") {
        assert!(!h.statement.contains(other), "{h:?}");
        assert_eq!(h.vm.as_deref(), Some(side), "{h:?}");
    }
    // The route explains the complaint; the port-80 drop is a separate thread.
    let confirmed: Vec<&Hypothesis> = confirmed(e);
    let route = confirmed.iter().find(|h| h.layer == Layer::Route).unwrap();
    assert_eq!(route.thread, "T1");
    assert!(route.statement.contains("internet"), "{route:?}");
    let drop = confirmed
        .iter()
        .find(|h| h.layer == Layer::OsFirewall)
        .unwrap();
    assert_ne!(drop.thread, "T1", "{confirmed:#?}");
    // The NSG hypothesis is refuted by the forward verdict alone (no return to check).
    let nsg = e
        .state
        .hypotheses
        .iter()
        .find(|h| h.thread == "T1" && h.layer == Layer::Nsg)
        .unwrap();
    assert_eq!(nsg.status, HypothesisStatus::Refuted, "{nsg:?}");
    // The report's final check reaches the internet address from that VM.
    let report = ghost_agent::report::build_report(&e.state);
    let finals: Vec<(&str, &str)> = report
        .recommended_actions
        .iter()
        .filter(|a| a.kind == ghost_agent::report::ActionKind::FinalVerify)
        .map(|a| (a.command.as_str(), a.run_on.as_str()))
        .collect();
    let want = format!("nc -vz -w 5 {inet} 443");
    assert_eq!(finals, vec![(want.as_str(), side)], "{finals:?}");
}

#[test]
fn an_internet_complaint_is_investigated_on_the_source_side_toward_the_internet() {
    let (_dir, e, calls) =
        internet_case("ghost_20261122T110000Z", "all internet lost", "source-vm");
    assert_internet_investigation(&e, &calls, "source-vm", "dest-vm");
}

#[test]
fn an_internet_complaint_naming_the_destination_is_investigated_there() {
    let (_dir, e, calls) = internet_case(
        "ghost_20261122T110500Z",
        "dest-vm has no internet access since the change",
        "dest-vm",
    );
    assert_internet_investigation(&e, &calls, "dest-vm", "source-vm");
}
