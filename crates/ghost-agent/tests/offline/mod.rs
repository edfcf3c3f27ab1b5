//! Offline test support: a tool context without a lab, scripted tools, scenario shapes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cloud_provider::config::{Environment, FlagOverrides, Settings};
use cloud_provider::remote::RemoteRunner;
use cloud_provider::session::SessionId;
use ghost_agent::model::*;
use ghost_agent::tools::{Tool, ToolContext};
use safety_shell::audit::AuditLog;
use safety_shell::Gate;
use serde_json::{json, Value};

pub type Script = dyn Fn(&Value) -> ToolResult + Send + Sync;

pub struct Scripted {
    name: &'static str,
    f: Box<Script>,
}

impl Tool for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        "scripted"
    }
    fn input_schema(&self) -> Value {
        json!({"type": "object"})
    }
    fn call(&self, _ctx: &ToolContext, args: &Value) -> ToolResult {
        (self.f)(args)
    }
}

pub fn tool(
    name: &'static str,
    f: impl Fn(&Value) -> ToolResult + Send + Sync + 'static,
) -> Box<dyn Tool> {
    Box::new(Scripted {
        name,
        f: Box::new(f),
    })
}

pub fn inspected(aspect: Aspect, vm: Option<&str>) -> CoverageMark {
    CoverageMark {
        aspect,
        vm: vm.map(str::to_string),
        state: CoverageState::Inspected {
            evidence: String::new(),
        },
    }
}

pub fn ctx(dir: &std::path::Path, sid: &str) -> ToolContext {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("SOURCE_VM_NAME", "source-vm"),
        ("DEST_VM_NAME", "dest-vm"),
        ("SOURCE_VM_PRIVATE_IP", "198.18.1.4"),
        ("DEST_VM_PRIVATE_IP", "198.18.1.5"),
        ("RESOURCE_GROUP", "rg-test"),
        ("AUDIT_DIR", dir.to_str().unwrap()),
    ] {
        m.insert(k.to_string(), v.to_string());
    }
    let settings = Settings::from_parts(None, m);
    let env = Environment::resolve(&settings, &FlagOverrides::default()).unwrap();
    let session_dir = dir.join(sid);
    let audit = AuditLog::open_in_dir(&session_dir, sid).unwrap();
    let gate = Arc::new(Gate::builder(audit).build());
    ToolContext {
        env,
        settings,
        gate: gate.clone(),
        azure: None,
        remote: Arc::new(RemoteRunner::new(gate, None)),
        session_id: SessionId::parse(sid).unwrap(),
        session_dir,
        expectations: Expectations::default(),
        cancel: Arc::new(AtomicBool::new(false)),
    }
}

pub fn complaint(
    text: &str,
    kinds: &[SymptomKind],
    ports: &[u16],
    protocol: Option<Protocol>,
) -> Complaint {
    Complaint {
        text: text.into(),
        kinds: kinds.to_vec(),
        ports: ports.to_vec(),
        protocol,
        internet: false,
    }
}

/// Control-plane tools that find nothing but cover their aspects.
pub fn clean_control_plane() -> Vec<Box<dyn Tool>> {
    vec![
        tool("inspect_nsg", |_| {
            let mut r = ToolResult::ok(json!({"forward": "ALLOW", "return": "ALLOW"}));
            r.coverage = vec![
                inspected(Aspect::NsgForward, None),
                inspected(Aspect::NsgReturn, None),
            ];
            r
        }),
        tool("inspect_routes", |_| {
            let mut r = ToolResult::ok(json!({"verdict": "VnetLocal"}));
            r.coverage = vec![inspected(Aspect::Routes, None)];
            r
        }),
        tool("trace_reachability", |_| {
            ToolResult::ok(json!({"result": "REACHABLE"}))
        }),
    ]
}

pub fn os_layer(
    findings: impl Fn(&str, &Value) -> Vec<Finding> + Send + Sync + 'static,
) -> Box<dyn Tool> {
    tool("inspect_os_layer", move |args| {
        let vm = args["vm"].as_str().unwrap_or("").to_string();
        let mut r = ToolResult::ok(json!({"vm": vm}));
        r.findings = findings(&vm, args);
        r.coverage = vec![
            inspected(Aspect::Firewall, Some(&vm)),
            inspected(Aspect::TrafficControl, Some(&vm)),
        ];
        r
    })
}

pub fn scenario_k_tools() -> Vec<Box<dyn Tool>> {
    let mut t = clean_control_plane();
    t.push(tool("run_pipe_meter", |_| {
        let mut r = ToolResult::ok(json!({"throughput_gbps_p50": 0.0048}));
        r.findings = vec![Finding::new(
            Layer::Measurement,
            Some("source-vm"),
            "throughput_low",
            "source-vm → dest-vm throughput",
            "throughput 0.0048 Gbit/s, stable, far under the expected 1 Gbit/s",
            "measured",
            Severity::High,
        )
        .attr("measured", 0.0048)
        .attr("expected", 1.0)];
        r
    }));
    t.push(os_layer(|vm, _| {
        if vm == "source-vm" {
            vec![Finding::new(
                Layer::TrafficControl,
                Some("source-vm"),
                "tbf_rate",
                "eth0 root tbf",
                "tbf rate 5Mbit on eth0",
                "egress limited to 5 Mbit/s",
                Severity::Medium,
            )
            .attr("qdisc", "tbf")
            .attr("rate_bps", 5_000_000u64)]
        } else {
            vec![Finding::new(
                Layer::OsFirewall,
                Some("dest-vm"),
                "iptables_drop",
                "filter/INPUT #1",
                "INPUT drops ICMP",
                "every ICMP packet to dest-vm is dropped",
                Severity::High,
            )
            .attr("protocol", "icmp")
            .attr("chain", "INPUT")]
        }
    }));
    t
}

pub fn k_symptom() -> Symptom {
    Symptom {
        text: "transfers 10-20x slower and ping fails".into(),
        kinds: vec![
            SymptomKind::Throughput,
            SymptomKind::Slow,
            SymptomKind::Unreachable,
        ],
        complaints: vec![
            complaint(
                "transfers 10-20x slower",
                &[SymptomKind::Throughput, SymptomKind::Slow],
                &[],
                None,
            ),
            complaint(
                "ping fails",
                &[SymptomKind::Unreachable],
                &[],
                Some(Protocol::Icmp),
            ),
        ],
        ..Default::default()
    }
}

/// A symptom of one complaint.
pub fn one_complaint(text: &str, kinds: &[SymptomKind], ports: &[u16]) -> Symptom {
    Symptom {
        text: text.into(),
        ports: ports.to_vec(),
        kinds: kinds.to_vec(),
        complaints: vec![complaint(text, kinds, ports, None)],
        ..Default::default()
    }
}

/// Routes and trace that find nothing (covering the routes), and a measurement with no
/// finding.
pub fn quiet_routes_trace_meter() -> Vec<Box<dyn Tool>> {
    vec![
        tool("inspect_routes", |_| {
            let mut r = ToolResult::ok(json!({}));
            r.coverage = vec![inspected(Aspect::Routes, None)];
            r
        }),
        tool("trace_reachability", |_| ToolResult::ok(json!({}))),
        tool("run_pipe_meter", |_| ToolResult::ok(json!({}))),
    ]
}

/// Starts a session, runs the playbook, asserts the conclusion was accepted.
pub fn concluded(
    dir: &std::path::Path,
    sid: &str,
    symptom: Symptom,
    tools: Vec<Box<dyn Tool>>,
) -> ghost_agent::engine::Engine {
    use ghost_agent::playbook::{self, PlaybookOptions, PlaybookOutcome};
    let mut e = ghost_agent::engine::Engine::start(ctx(dir, sid), symptom, "playbook")
        .unwrap()
        .with_tools(tools);
    let out = playbook::run(&mut e, &PlaybookOptions::default());
    assert_eq!(out, PlaybookOutcome::Concluded, "{:?}", e.state.refusals);
    e
}

/// The confirmed hypotheses of a session.
pub fn confirmed(e: &ghost_agent::engine::Engine) -> Vec<&Hypothesis> {
    e.state
        .hypotheses
        .iter()
        .filter(|h| h.status == HypothesisStatus::Confirmed)
        .collect()
}
