//! Lab test of the host tools (`run_shell`, `run_pipe_meter`, `inspect_os_layer`) against
//! one netlab lab (the base topology, dest without netlab's own iperf2/qperf servers so that
//! pipe-meter starts its own), reached exactly as in Azure: SSH from `netlab env --config`,
//! netlab's `az` front end, every command through a safety-shell gate.
//!
//! Scenario K: `inspect_os_layer` finds the 5 Mbit/s tbf on source and the ICMP drop on
//! dest; `run_pipe_meter` (3 iterations of 2 s) judges the stable ~0.005 Gbps as
//! `throughput_low`. Then J: a check of tcp/5001 inbound on dest answers DROP at INPUT 1,
//! source shows the NFQUEUE `packet_diversion` (and the `delay` its consumer states), and
//! dest drifts from its clean snapshot.
//! Last, `run_shell` of a risky command under an approve-never gate is a denial.
//!
//! Needs root, iperf/qperf and a netlab binary (`NETLAB_BIN`, or `netlab` next to this
//! test's target directory); otherwise it prints one SKIP line saying what enables it. The
//! lab (prefix `gh<random>`) is torn down on success, failure and panic.

use std::process::Command;
use std::sync::Arc;

use ghost_agent::model::{Aspect, CoverageState, Finding, ToolResult};
use ghost_agent::tools::host::{InspectOsLayer, RunPipeMeter, RunShell};
use ghost_agent::tools::{Tool, ToolContext};
use safety_shell::approve::{AllRiskyApprover, NeverApprover};
use serde_json::{json, Value};

mod lab;

use lab::{context, netlab_bin, Lab};

fn skip_reason() -> Option<String> {
    lab::skip_reason(&["ip", "ssh", "tc", "iptables", "iperf", "qperf"])
}

fn call(ctx: &ToolContext, tool: &dyn Tool, args: Value) -> ToolResult {
    let r = tool.call(ctx, &args);
    println!(
        "{} {args}: ok={} findings={:?}",
        tool.name(),
        r.ok,
        r.findings
            .iter()
            .map(|f| f.kind.as_str())
            .collect::<Vec<_>>()
    );
    let size = serde_json::to_string(&r.summary).unwrap().len();
    if tool.name() == "run_pipe_meter" || std::env::var_os("GHOST_LAB_VERBOSE").is_some() {
        println!("  ({size} bytes) {}", r.summary);
    }
    // Summaries are sized for an LLM context; large output stays in artifacts.
    assert!(size < 6000, "{} summary is {size} bytes", tool.name());
    r
}

fn one<'a>(r: &'a ToolResult, kind: &str) -> &'a Finding {
    let v: Vec<&Finding> = r.findings.iter().filter(|f| f.kind == kind).collect();
    assert_eq!(v.len(), 1, "one {kind} expected: {:#?}", r.findings);
    v[0]
}

fn assert_inspected(r: &ToolResult, vm: &str) {
    for aspect in [Aspect::Firewall, Aspect::TrafficControl] {
        let m = r
            .coverage
            .iter()
            .find(|m| m.aspect == aspect && m.vm.as_deref() == Some(vm))
            .unwrap_or_else(|| panic!("no {aspect:?} coverage for {vm}: {:?}", r.coverage));
        assert!(
            matches!(m.state, CoverageState::Inspected { .. }),
            "{aspect:?} of {vm}: {:?}",
            m.state
        );
    }
    for a in &r.artifacts {
        let bytes = std::fs::read(&a.path).unwrap();
        assert_eq!(
            cloud_provider::artifact::sha256_hex(&bytes),
            a.sha256,
            "{}",
            a.path
        );
    }
}

#[test]
fn host_tools_on_scenarios_k_and_j() {
    if let Some(why) = skip_reason() {
        println!(
            "SKIP lab_host_tools: {why}; run `sudo scripts/setup.sh`, `cargo build -p netlab` (or set NETLAB_BIN) and the tests as root to enable it"
        );
        return;
    }
    let prefix: String;
    {
        // The base topology without netlab's own iperf2/qperf servers: pipe-meter starts
        // and stops its own on the standard ports.
        let lab = Lab::up_text(
            netlab_bin().unwrap(),
            "gh",
            &format!(
                "name = \"ghost_host_tools_lab\"\nbase = \"{}/base_topology.toml\"\n\n[[topology.vms]]\nname = \"dest-vm\"\nsubnet = \"default\"\nprivate_ip = \"198.18.1.5\"\nnsg = \"dest-vm-nsg\"\nservices = []\n",
                lab::demo().display()
            ),
        );
        prefix = format!("nl{}-", lab.prefix);
        let audit = lab.work.path().join("audit");
        std::fs::create_dir_all(&audit).unwrap();
        let cfg = lab.config(&audit);
        let ctx = context(&cfg, "ghost_labhost", Arc::new(AllRiskyApprover));
        let os = InspectOsLayer;

        // Clean dest snapshot: the baseline of the drift check below.
        let clean = call(&ctx, &os, json!({"vm": "dest-vm"}));
        assert!(clean.ok, "{:?}", clean.error);
        assert!(
            clean.findings.is_empty(),
            "a clean VM has no findings: {:#?}",
            clean.findings
        );
        assert_inspected(&clean, "dest-vm");
        let baseline = clean.summary["snapshot_id"].as_str().unwrap().to_string();

        // ---- Scenario K
        lab.inject("use_case_k");
        let src = call(&ctx, &os, json!({"vm": "source-vm"}));
        assert!(src.ok, "{:?}", src.error);
        assert_inspected(&src, "source-vm");
        let tbf = one(&src, "tbf_rate");
        assert_eq!(tbf.attrs["rate_bps"], json!(5_000_000));
        assert_eq!(tbf.attrs["qdisc"], json!("tbf"));
        assert_eq!(tbf.vm.as_deref(), Some("source-vm"));
        assert!(tbf
            .remediation
            .as_ref()
            .unwrap()
            .command
            .starts_with("tc qdisc del dev "));

        let dst = call(&ctx, &os, json!({"vm": "dest-vm"}));
        assert!(dst.ok, "{:?}", dst.error);
        let icmp = one(&dst, "iptables_drop");
        assert_eq!(icmp.attrs["protocol"], json!("icmp"));
        assert_eq!(icmp.attrs["chain"], json!("INPUT"));
        assert!(dst.untrusted);

        let pm = call(
            &ctx,
            &RunPipeMeter,
            // Three short runs: with two, the nearest-rank P50 is the larger one, and a
            // 2 s iperf2 run over a 5 Mbit/s shaper can count a burst of socket-buffer
            // writes as throughput (see docs/pipe-meter.md).
            json!({"test_type": "throughput", "iterations": 3, "duration": 2}),
        );
        assert!(pm.ok, "{:?} {}", pm.error, pm.summary);
        let low = one(&pm, "throughput_low");
        let measured = low.attrs["measured"].as_f64().unwrap();
        assert!(
            measured > 0.0 && measured < 0.1,
            "K throughput should be about 0.005 Gbps: {}",
            pm.summary
        );
        assert_eq!(low.attrs["unit"], json!("Gbps"));
        assert!(
            pm.artifacts.iter().any(|a| a.kind == "pmeter_result"),
            "{:?}",
            pm.artifacts
        );
        assert!(pm.findings.iter().all(|f| f.kind != "connectivity_drop"));

        // ---- Scenario J
        lab.clear();
        lab.inject("use_case_j");
        let chk = call(
            &ctx,
            &os,
            json!({"vm": "dest-vm", "mode": "check", "protocol": "tcp", "port": 5001, "direction": "in"}),
        );
        assert!(chk.ok, "{:?}", chk.error);
        assert_eq!(
            chk.summary["check"]["verdict"],
            json!("DROP"),
            "{}",
            chk.summary
        );
        assert_eq!(chk.summary["check"]["deciding_rule"]["position"], json!(1));
        assert_eq!(
            chk.summary["check"]["deciding_rule"]["chain"],
            json!("INPUT")
        );
        let drop = one(&chk, "iptables_drop");
        assert_eq!(drop.attrs["port"], json!(5001));
        assert_eq!(drop.attrs["decides_check"], json!(true));
        assert_eq!(
            drop.remediation.as_ref().unwrap().command,
            "iptables -D INPUT -p tcp -m tcp --dport 5001 -j DROP"
        );

        let div = call(&ctx, &os, json!({"vm": "source-vm"}));
        assert!(div.ok, "{:?}", div.error);
        let p = one(&div, "packet_diversion");
        assert_eq!(p.attrs["chain"], json!("POSTROUTING"));
        assert_eq!(p.attrs["table"], json!("mangle"));
        // Its consumer (netlab's emulator) states the 30 ms delay, unless another lab on this
        // machine uses the same queue number (lab namespaces share the host's PID namespace).
        let consumer = p.attrs["consumer"].as_str().unwrap_or_default();
        if consumer.starts_with("ambiguous") {
            println!("queue consumer ambiguous here: {consumer}");
        } else {
            assert!(consumer.contains("--delay-ms 30"), "{consumer}");
            assert_eq!(one(&div, "delay").attrs["delay_ms"], json!(30.0));
        }

        let cmp = call(
            &ctx,
            &os,
            json!({"vm": "dest-vm", "mode": "compare", "baseline_id": baseline}),
        );
        assert!(cmp.ok, "{:?}", cmp.error);
        assert!(
            cmp.findings
                .iter()
                .any(|f| f.kind == "drift" && f.attrs["chain"] == json!("INPUT")),
            "{:#?}",
            cmp.findings
        );
        assert!(cmp.artifacts.iter().any(|a| a.kind == "fw_diff"));

        // ---- run_shell: a read-only command runs; a risky one under approve-never is a denial.
        let sh = call(
            &ctx,
            &RunShell,
            json!({"vm": "dest-vm", "command": "uname -r", "reason": "kernel version"}),
        );
        assert!(sh.ok, "{:?}", sh.error);
        assert_eq!(sh.summary["exit_code"], json!(0));
        assert!(sh.untrusted);

        let never = context(&cfg, "ghost_labnever", Arc::new(NeverApprover));
        let denied = call(
            &never,
            &RunShell,
            json!({"vm": "dest-vm", "command": "iptables -F INPUT", "reason": "try a fix"}),
        );
        assert!(!denied.ok);
        assert_eq!(denied.denials.len(), 1, "{}", denied.summary);
        assert!(denied.denials[0]
            .audit_id
            .as_deref()
            .is_some_and(|a| !a.is_empty()));
        // The rule is still there: the denied command did not run.
        let still = call(&ctx, &os, json!({"vm": "dest-vm"}));
        assert_eq!(one(&still, "iptables_drop").attrs["port"], json!(5001));

        // The dumps are read-only, so an approve-never gate still lets the OS layer be read
        // (only the RISKY back-end probe `iptables -V` is denied and skipped).
        let r = call(&never, &os, json!({"vm": "dest-vm"}));
        assert!(r.ok, "{:?}", r.error);
        assert_inspected(&r, "dest-vm");
        assert_eq!(one(&r, "iptables_drop").attrs["port"], json!(5001));
    }
    // Other labs may run at the same time: only this lab's namespaces must be gone.
    let netns_after = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap()
        .stdout;
    let left: Vec<String> = String::from_utf8_lossy(&netns_after)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}
