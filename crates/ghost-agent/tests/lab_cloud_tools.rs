//! Lab test of the control-plane and capture tools against one netlab lab, reached as in
//! Azure: netlab's `az` front end through a safety-shell gate (approve all-risky).
//!
//! - a baseline of dest-vm's effective state is taken first (`snapshot_effective_network`);
//! - scenario L: `inspect_nsg` for tcp/5001 names dest-vm-nsg/deny-iperf priority 200 and
//!   `trace_reachability` stops at the same rule;
//! - cleared: drift against the baseline signs off (`drift_detected: false`);
//! - scenario P: the drift finds the added deny rule block-8080 (priority 150) and says
//!   nsg_deny; a 5 s `capture_traffic` on dest-vm while source-vm tries 5001 (dropped by
//!   P's iptables rule) ends, through `check_task`, in `handshake_unanswered` port 5001;
//!   `cleanup_task` deletes the capture resource;
//! - scenario S: `inspect_routes` gives route_blackhole rt-default/blackhole-dest;
//! - scenario E: `inspect_routes` gives route_nva rt-default/to-dest-via-nva (198.18.1.100),
//!   in verdict and audit modes;
//! - scenario U: `inspect_nsg` for 5432 names the subnet NSG's rule at the subnet gate;
//! - scenario V: the `inspect_nsg` audit lists allow-rdp-any, allow-ssh and the debug range.
//!
//! Needs root and a netlab binary (`NETLAB_BIN`, or `netlab` next to this test's target
//! directory); otherwise it prints one SKIP line saying what enables it. The lab (prefix
//! `gc<random>`) is torn down on success, failure and panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ghost_agent::model::{Aspect, Finding, Layer, ToolResult};
use ghost_agent::tools::cloud::{capture, net};
use ghost_agent::tools::{Tool, ToolContext};
use safety_shell::approve::AllRiskyApprover;
use serde_json::{json, Value};

mod lab;

use lab::{context, netlab_bin, Lab};

fn call(ctx: &ToolContext, tool: &dyn Tool, args: Value) -> ToolResult {
    let r = tool.call(ctx, &args);
    println!(
        "{} {args}: ok={} findings={:?} error={:?}",
        tool.name(),
        r.ok,
        r.findings
            .iter()
            .map(|f| format!("{} {}", f.kind, f.component))
            .collect::<Vec<_>>(),
        r.error
    );
    assert!(r.ok, "{} failed: {:#}", tool.name(), r.summary);
    let size = r.summary.to_string().len();
    assert!(
        size < 4096,
        "{} summary is {size} bytes: not compact",
        tool.name()
    );
    r
}

fn one<'a>(r: &'a ToolResult, kind: &str) -> &'a Finding {
    let v: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(v.len(), 1, "expected one {kind}: {:#?}", r.findings);
    v[0]
}

#[test]
fn control_plane_and_capture_tools_on_scenarios_l_p_s_e_u_v() {
    if let Some(why) = lab::skip_reason(&["ip", "ssh", "tcpdump"]) {
        println!("SKIP lab_cloud_tools: {why}");
        return;
    }
    let lab = Lab::up(
        netlab_bin().unwrap(),
        "gc",
        &lab::demo().join("use_case_l/scenario.toml"),
    );
    let config = lab.config(&lab.work.path().join("audit"));
    let ctx = context(
        &config,
        "ghost_20261122T090000Z",
        Arc::new(AllRiskyApprover),
    );

    // Baseline of dest-vm before any fault.
    let snap = call(
        &ctx,
        &net::SnapshotEffectiveNetwork,
        json!({"vm": "dest-vm"}),
    );
    let baseline = snap.summary["snapshot_id"].as_str().unwrap().to_string();
    assert!(baseline.starts_with("eni_"), "{baseline}");
    assert_eq!(snap.artifacts.len(), 1);

    // L: the NSG deny on dest, by verdict and by trace.
    lab.inject("use_case_l");
    let r = call(
        &ctx,
        &net::InspectNsg,
        json!({"port": 5001, "protocol": "tcp"}),
    );
    assert_eq!(r.summary["forward"]["verdict"], "DENY", "{:#}", r.summary);
    let f = one(&r, "nsg_deny");
    assert_eq!(f.vm.as_deref(), Some("dest-vm"));
    assert_eq!(f.component, "dest-vm-nsg/deny-iperf");
    assert_eq!(f.attrs["priority"], 200);
    assert_eq!(f.attrs["port"], 5001);
    assert!(f
        .remediation
        .as_ref()
        .unwrap()
        .command
        .ends_with("--nsg-name dest-vm-nsg -n deny-iperf"));
    let aspects: Vec<Aspect> = r.coverage.iter().map(|c| c.aspect).collect();
    assert_eq!(aspects, vec![Aspect::NsgForward, Aspect::NsgReturn]);
    let t = call(&ctx, &net::TraceReachability, json!({"port": 5001}));
    assert_eq!(t.summary["result"], "BLOCKED", "{:#}", t.summary);
    assert_eq!(one(&t, "nsg_deny").component, "dest-vm-nsg/deny-iperf");
    // ICMP is allowed in L.
    let r = call(&ctx, &net::InspectNsg, json!({"protocol": "icmp"}));
    assert_eq!(r.summary["forward"]["verdict"], "ALLOW", "{:#}", r.summary);
    assert!(r.findings.is_empty());

    // Cleared: no drift against the baseline (the sign-off).
    lab.clear();
    let d = call(
        &ctx,
        &net::DetectEffectiveNetworkDrift,
        json!({"vm": "dest-vm", "baseline_id": baseline}),
    );
    assert_eq!(d.summary["drift_detected"], false, "{:#}", d.summary);
    assert!(d.findings.is_empty());

    // P: the deny rule left behind is drift and an nsg_deny.
    lab.inject("use_case_p");
    let d = call(
        &ctx,
        &net::DetectEffectiveNetworkDrift,
        json!({"vm": "dest-vm", "baseline_id": baseline}),
    );
    assert_eq!(d.summary["drift_detected"], true);
    let drift = one(&d, "drift");
    assert_eq!(drift.layer, Layer::Drift);
    assert_eq!(drift.attrs["rule"], "block-8080");
    assert_eq!(drift.attrs["change"], "added");
    let deny = one(&d, "nsg_deny");
    assert_eq!(deny.component, "dest-vm-nsg/block-8080");
    assert_eq!(deny.attrs["priority"], 150);
    assert_eq!(deny.attrs["port"], 8080);

    // A short capture on dest while source tries 5001 (P's iptables drops it on dest).
    let c = call(
        &ctx,
        &capture::CaptureTraffic,
        json!({"vm": "dest-vm", "filter": {"port": 5001, "protocol": "tcp"}, "duration_secs": 5}),
    );
    let task = c.summary["task_id"].as_str().unwrap().to_string();
    let traffic = lab.exec_bg(
        "source-vm",
        "for i in 1 2 3; do timeout 1.2 bash -c 'exec 3<>/dev/tcp/198.18.1.5/5001' 2>/dev/null; done",
    );
    let start = Instant::now();
    let checked = loop {
        std::thread::sleep(Duration::from_secs(2));
        let r = call(&ctx, &capture::CheckTask, json!({"task_id": task}));
        if r.summary["done"] == true || start.elapsed() > Duration::from_secs(60) {
            break r;
        }
    };
    drop(traffic);
    assert_eq!(checked.summary["done"], true, "{:#}", checked.summary);
    let h = checked
        .findings
        .iter()
        .find(|f| f.kind == "handshake_unanswered")
        .unwrap_or_else(|| panic!("no handshake_unanswered: {:#?}", checked.findings));
    assert_eq!(h.layer, Layer::Wire);
    assert_eq!(h.vm.as_deref(), Some("dest-vm"));
    assert_eq!(h.attrs["port"], 5001);
    assert!(!h.attrs["frames"].as_array().unwrap().is_empty());
    assert!(checked.artifacts.iter().any(|a| a.kind == "pcap_semantic"));
    let cl = call(&ctx, &capture::CleanupTask, json!({"task_id": task}));
    assert_eq!(cl.summary["state"], "cleaned", "{:#}", cl.summary);
    let orphans = ghost_agent::tools::cloud::orphans(&ctx).expect("orphan listing");
    assert!(
        orphans
            .orphans
            .iter()
            .all(|o| o.kind != "untracked_capture"),
        "{orphans:#?}"
    );

    // S: the blackhole route.
    lab.clear();
    lab.inject("use_case_s");
    let r = call(&ctx, &net::InspectRoutes, json!({}));
    let f = one(&r, "route_blackhole");
    assert_eq!(f.vm.as_deref(), Some("source-vm"));
    assert_eq!(f.component, "rt-default/blackhole-dest");
    assert_eq!(f.attrs["prefix"], "198.18.1.5/32");
    assert_eq!(r.coverage[0].aspect, Aspect::Routes);

    // E: the dead appliance.
    lab.clear();
    lab.inject("use_case_e");
    let r = call(&ctx, &net::InspectRoutes, json!({"vm": "source-vm"}));
    let f = one(&r, "route_nva");
    assert_eq!(f.component, "rt-default/to-dest-via-nva");
    assert_eq!(f.attrs["next_hop"], "198.18.1.100");
    assert_eq!(
        f.remediation.as_ref().unwrap().command,
        format!(
            "az network route-table route delete -g {} --route-table-name rt-default -n to-dest-via-nva",
            ctx.env.resource_group.as_deref().unwrap()
        )
    );

    let r = call(&ctx, &net::InspectRoutes, json!({"mode": "audit"}));
    assert_eq!(one(&r, "route_nva").component, "rt-default/to-dest-via-nva");

    // U: the deny sits at the subnet gate (gate 1 inbound).
    lab.clear();
    lab.inject("use_case_u");
    let r = call(&ctx, &net::InspectNsg, json!({"port": 5432}));
    let f = one(&r, "nsg_deny");
    assert_eq!(f.vm.as_deref(), Some("dest-vm"));
    assert_eq!(f.component, "default-subnet-nsg/deny-postgres-from-subnet");
    assert_eq!(f.attrs["gate"], "subnet");
    assert_eq!(f.attrs["priority"], 200);

    // V: the audit lists the permissive rules of dest-vm-nsg.
    lab.clear();
    lab.inject("use_case_v");
    let r = call(
        &ctx,
        &net::InspectNsg,
        json!({"mode": "audit", "dest_vm": "dest-vm"}),
    );
    let rules: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.kind == "nsg_permissive")
        .filter_map(|f| f.attrs["rule"].as_str())
        .collect();
    for want in ["allow-rdp-any", "allow-ssh", "temp-debug-8000-9000"] {
        assert!(rules.contains(&want), "{want} missing: {rules:?}");
    }
    lab.clear();
}
