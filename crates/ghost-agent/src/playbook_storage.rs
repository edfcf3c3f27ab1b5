//! The playbook's storage step: for a complaint about storage ("VM cannot write to storage
//! after subnet maintenance"), both sides of the VM-to-storage relationship are inspected
//! and the storage hypotheses resolved.
//!
//! 1. one hypothesis per storage thread and VM (layer `storage`): the VM's subnet (service
//!    endpoints) or the account's firewall (default action, VNet and IP rules, public
//!    network access) refuses the VM;
//! 2. `inspect_storage_access {vm}` for each VM the symptom names (the source VM when it
//!    names none, as the source is where clients run): subnet, endpoints, the configured
//!    account's `networkRuleSet`, and a read-only probe of the blob endpoint from the VM;
//! 3. a storage cause found (`missing_service_endpoint`, `storage_vnet_rule_missing`,
//!    `storage_public_access_disabled`) confirms the VM's hypothesis with the finding and
//!    the call's audit id; a clean result refutes it with the call's audit id; a failed call
//!    marks it unverifiable with the error.
//!
//! The VM-to-VM layers (NSGs, routes, OS firewall and traffic control of both VMs) are the
//! main playbook's; this step adds the storage side and never repeats a call already in the
//! state (resume).

use serde_json::{json, Value};

use crate::engine::{Engine, MANAGE_HYPOTHESES};
use crate::model::{is_blocking_kind, HypothesisStatus, Layer, Severity, SymptomKind, Thread};
use crate::playbook::PlaybookOptions;

/// The tool this step calls.
pub const STORAGE_TOOL: &str = "inspect_storage_access";

/// The threads whose complaint is about storage.
pub fn storage_threads(engine: &Engine) -> Vec<Thread> {
    engine
        .state
        .threads
        .iter()
        .filter(|t| t.complaint.kinds.contains(&SymptomKind::Storage))
        .cloned()
        .collect()
}

/// The VMs whose storage access is inspected: those the symptom names, else the source VM.
pub fn storage_vms(engine: &Engine) -> Vec<String> {
    let mut vms: Vec<String> = Vec::new();
    for v in &engine.state.symptom.vms {
        if !v.trim().is_empty() && !vms.contains(v) {
            vms.push(v.clone());
        }
    }
    if vms.is_empty() && !engine.state.source_vm.trim().is_empty() {
        vms.push(engine.state.source_vm.clone());
    }
    vms
}

fn open_storage_hypotheses(engine: &Engine, vm: &str) -> Vec<String> {
    engine
        .state
        .hypotheses
        .iter()
        .filter(|h| {
            h.layer == Layer::Storage
                && h.vm.as_deref() == Some(vm)
                && !h.status.is_resolved()
                && h.status != HypothesisStatus::Contradicted
        })
        .map(|h| h.id.clone())
        .collect()
}

/// Runs the storage step (nothing when no thread is about storage). `_opts` is accepted so
/// every step of [`crate::playbook::run`] has the same shape; none of its settings apply.
pub fn storage_steps(engine: &mut Engine, _opts: &PlaybookOptions) {
    let threads = storage_threads(engine);
    if threads.is_empty() {
        return;
    }
    let vms = storage_vms(engine);
    for t in &threads {
        for vm in &vms {
            let exists = engine.state.hypotheses.iter().any(|h| {
                h.thread == t.id
                    && h.layer == Layer::Storage
                    && h.vm.as_deref() == Some(vm.as_str())
            });
            if !exists {
                engine.hypothesize(
                    &t.id,
                    &format!(
                        "{vm}'s subnet (service endpoints) or the storage account's firewall (default action, VNet rule, IP rules, public access) refuses {vm}"
                    ),
                    Layer::Storage,
                    Some(vm),
                    &format!(
                        "thread {} (\"{}\") is about storage: both sides of the VM-to-storage relationship are candidates until inspected",
                        t.id, t.complaint.text
                    ),
                );
            }
        }
    }
    for vm in &vms {
        if engine.ctx.cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let args = json!({"vm": vm});
        // Resume: a successful call already in the state is not repeated.
        let previous = engine
            .state
            .calls
            .iter()
            .rev()
            .find(|c| c.tool == STORAGE_TOOL && c.args == args && c.result.ok)
            .map(|c| (c.audit_id.clone(), c.result.clone()));
        let (audit_id, result) = match previous {
            Some(x) => x,
            None => {
                let out = engine.call(
                    STORAGE_TOOL,
                    &args,
                    &format!("storage complaint: read {vm}'s subnet and its service endpoints and the storage account's firewall, evaluate both sides together, and probe the blob endpoint from {vm} (read-only)"),
                );
                (out.audit_id, out.result)
            }
        };
        let hyps = open_storage_hypotheses(engine, vm);
        if hyps.is_empty() {
            continue;
        }
        if !result.ok {
            let reason = result
                .error
                .clone()
                .unwrap_or_else(|| "the storage inspection failed".into());
            for hid in hyps {
                engine.call(
                    MANAGE_HYPOTHESES,
                    &json!({"action": "unverifiable", "id": hid, "reason": reason}),
                    "the storage side could not be inspected",
                );
            }
            continue;
        }
        // The cause findings of this call, with the ids and evidence the engine gave them.
        let causes: Vec<(String, Vec<String>)> = engine
            .state
            .findings
            .iter()
            .filter(|f| {
                f.layer == Layer::Storage
                    && f.vm.as_deref() == Some(vm.as_str())
                    && is_blocking_kind(&f.kind)
                    && f.severity >= Severity::Medium
                    && f.evidence.contains(&audit_id)
            })
            .map(|f| (f.id.clone(), f.evidence.clone()))
            .collect();
        let verdict = result
            .summary
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for hid in hyps {
            if causes.is_empty() {
                engine.call(
                    MANAGE_HYPOTHESES,
                    &json!({"action": "refute", "id": hid, "evidence": [audit_id],
                            "reason": format!("both sides inspected: {verdict}")}),
                    &format!(
                        "hypothesis {hid}: the subnet and the account's firewall let {vm} through"
                    ),
                );
            } else {
                let mut evidence: Vec<String> = vec![audit_id.clone()];
                for (_, ev) in &causes {
                    for e in ev {
                        if !evidence.contains(e) {
                            evidence.push(e.clone());
                        }
                    }
                }
                let fids: Vec<String> = causes.iter().map(|(id, _)| id.clone()).collect();
                engine.call(
                    MANAGE_HYPOTHESES,
                    &json!({"action": "confirm", "id": hid, "findings": fids, "evidence": evidence,
                            "reason": format!("both sides inspected: {verdict}")}),
                    &format!("findings {} explain hypothesis {hid}", fids.join(", ")),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use cloud_provider::config::{Environment, FlagOverrides, Settings};
    use cloud_provider::remote::RemoteRunner;
    use cloud_provider::session::SessionId;
    use safety_shell::audit::AuditLog;
    use safety_shell::Gate;

    use super::*;
    use crate::model::{Aspect, CoverageMark, CoverageState, Finding, Remediation, ToolResult};
    use crate::playbook::{self, PlaybookOutcome};
    use crate::tools::{Tool, ToolContext};

    type Script = dyn Fn(&Value) -> ToolResult + Send + Sync;

    struct Scripted(&'static str, Box<Script>);

    impl Tool for Scripted {
        fn name(&self) -> &'static str {
            self.0
        }
        fn description(&self) -> &'static str {
            "scripted"
        }
        fn input_schema(&self) -> Value {
            json!({"type": "object"})
        }
        fn call(&self, _ctx: &ToolContext, args: &Value) -> ToolResult {
            (self.1)(args)
        }
    }

    fn tool(
        name: &'static str,
        f: impl Fn(&Value) -> ToolResult + Send + Sync + 'static,
    ) -> Box<dyn Tool> {
        Box::new(Scripted(name, Box::new(f)))
    }

    fn ctx(dir: &std::path::Path, sid: &str) -> ToolContext {
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("SOURCE_VM_NAME", "source-vm"),
            ("DEST_VM_NAME", "dest-vm"),
            ("RESOURCE_GROUP", "rg-test"),
            ("AUDIT_DIR", dir.to_str().unwrap()),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        let settings = Settings::from_parts(None, m);
        let env = Environment::resolve(&settings, &FlagOverrides::default()).unwrap();
        let session_dir = dir.join(sid);
        let gate =
            Arc::new(Gate::builder(AuditLog::open_in_dir(&session_dir, sid).unwrap()).build());
        ToolContext {
            env,
            settings,
            gate: gate.clone(),
            azure: None,
            remote: Arc::new(RemoteRunner::new(gate, None)),
            session_id: SessionId::parse(sid).unwrap(),
            session_dir,
            expectations: Default::default(),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn inspected(aspect: Aspect, vm: Option<&str>) -> CoverageMark {
        CoverageMark {
            aspect,
            vm: vm.map(str::to_string),
            state: CoverageState::Inspected {
                evidence: String::new(),
            },
        }
    }

    fn missing_endpoint() -> Finding {
        Finding::new(
            Layer::Storage,
            Some("source-vm"),
            "missing_service_endpoint",
            "vnet-netlab/default",
            "subnet default lost Microsoft.Storage",
            "the VNet rule no longer applies",
            Severity::High,
        )
        .attr("rule", "Microsoft.Storage")
        .with_remediation(Remediation {
            command: "az network vnet subnet update -g rg-test --vnet-name vnet-netlab -n default --service-endpoints Microsoft.Storage".into(),
            run_on: "az".into(),
            explanation: "re-adds the endpoint".into(),
            verify: "inspect_storage_access again".into(),
        })
    }

    /// Every VM-to-VM layer clean, and a storage tool with the given result.
    fn tools(storage: impl Fn(&Value) -> ToolResult + Send + Sync + 'static) -> Vec<Box<dyn Tool>> {
        vec![
            tool("run_pipe_meter", |_| {
                ToolResult::ok(json!({"latency_us_p50": 30.0}))
            }),
            tool("inspect_nsg", |_| {
                let mut r = ToolResult::ok(json!({"forward": "ALLOW"}));
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
            tool("inspect_os_layer", |args| {
                let vm = args["vm"].as_str().unwrap_or("").to_string();
                let mut r = ToolResult::ok(json!({"vm": vm}));
                r.coverage = vec![
                    inspected(Aspect::Firewall, Some(&vm)),
                    inspected(Aspect::TrafficControl, Some(&vm)),
                ];
                r
            }),
            tool("capture_traffic", |_| {
                ToolResult::failed("captures are not part of this test")
            }),
            tool(STORAGE_TOOL, storage),
        ]
    }

    fn f_symptom() -> crate::model::Symptom {
        crate::symptom::parse(
            "VM cannot write to storage after subnet maintenance",
            "source-vm",
            "dest-vm",
        )
    }

    #[test]
    fn scenario_f_shape_the_missing_endpoint_is_the_one_root_cause() {
        let dir = tempfile::tempdir().unwrap();
        let sid = "ghost_20261122T110000Z";
        let mut e = Engine::start(ctx(dir.path(), sid), f_symptom(), "playbook")
            .unwrap()
            .with_tools(tools(|args| {
                assert_eq!(args["vm"], "source-vm");
                let mut r =
                    ToolResult::ok(json!({"verdict": "1 of 1 account(s) refuse source-vm"}));
                r.findings = vec![missing_endpoint()];
                r
            }));
        let out = playbook::run(&mut e, &PlaybookOptions::default());
        assert_eq!(out, PlaybookOutcome::Concluded, "{:#?}", e.state.refusals);
        let c = e.state.conclusion.clone().unwrap();
        assert_eq!(c.root_causes.len(), 1, "{c:?}");
        let h = e
            .state
            .hypotheses
            .iter()
            .find(|h| h.id == c.root_causes[0])
            .unwrap();
        assert_eq!(h.layer, Layer::Storage);
        assert_eq!(h.vm.as_deref(), Some("source-vm"));
        let call = e
            .state
            .calls
            .iter()
            .find(|c| c.tool == STORAGE_TOOL)
            .unwrap();
        assert!(h.evidence.contains(&call.audit_id), "{h:?}");
        let f = e
            .state
            .findings
            .iter()
            .find(|f| h.findings.contains(&f.id))
            .unwrap();
        assert_eq!(f.kind, "missing_service_endpoint");
        // Scored against the scenario file: found, nothing unexpected.
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../demo/use_case_f/scenario.toml"),
        )
        .unwrap();
        let sc = crate::scoring::score(
            &e.state,
            &crate::scoring::expectations_from_toml(&text).unwrap(),
        );
        assert!(sc.passed, "{sc:?}");
        // Every VM-to-VM hypothesis was refuted with evidence.
        assert!(e
            .state
            .hypotheses
            .iter()
            .filter(|h| h.layer != Layer::Storage)
            .all(|h| h.status == HypothesisStatus::Refuted));
    }

    #[test]
    fn a_clean_storage_side_is_refuted_and_a_failed_one_unverifiable() {
        let dir = tempfile::tempdir().unwrap();
        let sid = "ghost_20261122T110001Z";
        let mut e = Engine::start(ctx(dir.path(), sid), f_symptom(), "playbook")
            .unwrap()
            .with_tools(tools(|_| {
                ToolResult::ok(json!({"verdict": "every checked account lets source-vm through"}))
            }));
        storage_steps(&mut e, &PlaybookOptions::default());
        let h = e
            .state
            .hypotheses
            .iter()
            .find(|h| h.layer == Layer::Storage)
            .unwrap();
        assert_eq!(h.status, HypothesisStatus::Refuted);
        assert_eq!(h.evidence.len(), 1);
        // Run again (resume): no second call, no second hypothesis.
        let calls = e.state.calls.len();
        storage_steps(&mut e, &PlaybookOptions::default());
        assert_eq!(e.state.calls.len(), calls);

        let sid = "ghost_20261122T110002Z";
        let mut e = Engine::start(ctx(dir.path(), sid), f_symptom(), "playbook")
            .unwrap()
            .with_tools(tools(|_| {
                ToolResult::failed("no control plane is configured (az)")
            }));
        storage_steps(&mut e, &PlaybookOptions::default());
        let h = e
            .state
            .hypotheses
            .iter()
            .find(|h| h.layer == Layer::Storage)
            .unwrap();
        assert_eq!(h.status, HypothesisStatus::Unverifiable);
        assert!(
            h.notes.iter().any(|n| n.contains("no control plane")),
            "{h:?}"
        );
    }

    #[test]
    fn no_storage_complaint_no_storage_step() {
        let dir = tempfile::tempdir().unwrap();
        let sid = "ghost_20261122T110003Z";
        let symptom =
            crate::symptom::parse("source cannot reach dest:8080", "source-vm", "dest-vm");
        let mut e = Engine::start(ctx(dir.path(), sid), symptom, "playbook")
            .unwrap()
            .with_tools(tools(|_| panic!("the storage tool must not be called")));
        storage_steps(&mut e, &PlaybookOptions::default());
        assert!(e.state.hypotheses.is_empty());
        assert!(e.state.calls.is_empty());
    }
}
