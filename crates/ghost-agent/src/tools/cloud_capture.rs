//! Capture tools over cloud-orchestrator: Network Watcher captures as tasks (one VM or both
//! ends), checked without blocking, analysed by pcap-forensics, cancelled and cleaned up.
//! The task registry lives in the audit directory (one JSONL file per session), so a
//! resumed session, and the orphan sweep, see the tasks of earlier sessions.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use cloud_orchestrator::engine::{CleanupOptions, OrphanPolicy, OrphanReport};
use cloud_orchestrator::{
    CaptureFilter, CaptureOptions, OrchError, Orchestrator, OrchestratorConfig, Target, TaskId,
    TaskRecord, TaskState,
};
use cloud_provider::provider::BlobAuth;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{check_vm, cloud_failure, fail, resource_group, Args};
use crate::model::{ArtifactRef, Finding, Layer, Remediation, Severity, ToolResult};
use crate::tools::{Tool, ToolContext};

/// Longest capture the tool starts (seconds).
pub const MAX_CAPTURE_SECS: u64 = 120;
/// Default capture length (seconds).
pub const DEFAULT_CAPTURE_SECS: u64 = 15;
/// Age past which local capture files of finished tasks count as orphans.
pub const ORPHAN_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

fn orch_failure(context: &str, e: &OrchError) -> Box<ToolResult> {
    match e {
        OrchError::Cloud(c) => Box::new(cloud_failure(context, c)),
        other => fail(format!("{context}: {other}")),
    }
}

/// The orchestrator of the context: the control plane, the storage account and the gate of
/// the session; its registry is in the audit directory.
pub fn orchestrator(ctx: &ToolContext) -> Result<Orchestrator, String> {
    let az = ctx.azure.clone().ok_or_else(|| {
        "no control plane is configured (az); set AZ_PATH and RESOURCE_GROUP in config.env"
            .to_string()
    })?;
    let rg = resource_group(ctx)?;
    let sa = ctx.env.storage_account.clone().ok_or_else(|| {
        "STORAGE_ACCOUNT_NAME is not set; captures need the storage account that receives them"
            .to_string()
    })?;
    let mut cfg =
        OrchestratorConfig::new(rg, sa, ctx.env.audit_dir.clone(), ctx.session_id.as_str());
    cfg.storage_container = ctx.env.storage_container.clone();
    cfg.blob_auth = match ctx.settings.get("STORAGE_AUTH_MODE") {
        None => BlobAuth::Login,
        Some(v) => BlobAuth::parse(&v).ok_or_else(|| {
            format!("STORAGE_AUTH_MODE={v:?} is not login or key; fix config.env")
        })?,
    };
    Orchestrator::new(az, ctx.gate.clone(), cfg)
        .map(|o| o.with_interrupt(ctx.cancel.clone()))
        .map_err(|e| format!("cannot open the capture registry: {e}"))
}

/// Orphaned captures of earlier sessions, listed without changing anything (the engine's
/// resume shows them).
pub fn orphans(ctx: &ToolContext) -> Result<OrphanReport, String> {
    orphans_with(ctx, OrphanPolicy::Review, ORPHAN_MAX_AGE)
}

/// Orphaned captures of earlier sessions, handled by `policy` (`Clean` stops and deletes
/// them through the gate).
pub fn orphans_with(
    ctx: &ToolContext,
    policy: OrphanPolicy,
    max_age: Duration,
) -> Result<OrphanReport, String> {
    let o = orchestrator(ctx)?;
    o.orphans(max_age, policy)
        .map_err(|e| format!("orphan sweep failed: {e}"))
}

fn severity(s: pcap_forensics::Severity) -> Severity {
    match s {
        pcap_forensics::Severity::Info => Severity::Info,
        pcap_forensics::Severity::Low => Severity::Low,
        pcap_forensics::Severity::Medium => Severity::Medium,
        pcap_forensics::Severity::High | pcap_forensics::Severity::Critical => Severity::High,
    }
}

/// `tcp 198.18.1.4:40000 -> 198.18.1.5:5001 (…)` → (`tcp`, server address, server port).
fn flow_server(flow: &str) -> Option<(String, String, u16)> {
    let proto = flow.split_whitespace().next()?.to_ascii_lowercase();
    let (_, right) = flow.split_once("->")?;
    let ep = right.split_whitespace().next()?;
    let (ip, port) = ep.rsplit_once(':')?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    ip.parse::<IpAddr>().ok()?;
    Some((proto, ip.to_string(), port.parse().ok()?))
}

/// The wire finding kind of a pcap-forensics rule.
pub fn wire_kind(rule: &str, title: &str) -> String {
    match rule {
        "xproto.filtered_port" => {
            if title.contains("silently dropped") {
                "handshake_unanswered"
            } else if title.contains("refused with RST") {
                "rst"
            } else {
                "handshake_rejected"
            }
        }
        .into(),
        "tcp.retransmissions" => "retransmissions".into(),
        "tcp.rst_storm" | "tcp.resets_established" => "rst".into(),
        "dns.slow" => "dns_latency".into(),
        "dns.unanswered" => "dns_unanswered".into(),
        "tcp.slow_response" => "slow_response".into(),
        "xproto.pmtud_black_hole" | "icmp.frag_needed" => "mtu".into(),
        "icmp.echo_unanswered" => "icmp_unanswered".into(),
        "xproto.host_down" => "host_down".into(),
        "tcp.handshake_incomplete" => "handshake_incomplete".into(),
        "udp.unanswered" => "udp_unanswered".into(),
        other => format!("pcap_{}", other.replace('.', "_")),
    }
}

/// pcap-forensics findings of a capture on `vm` as wire findings, with frame numbers, flows
/// and hosts as evidence in attrs (`frames`, `flows`, `hosts`) and `port`, `protocol`,
/// `address` of the first flow's server side when there is one.
pub fn wire_findings(vm: &str, capture: &str, found: &[pcap_forensics::Finding]) -> Vec<Finding> {
    found
        .iter()
        .map(|p| {
            let kind = wire_kind(p.rule, &p.title);
            let component = match p.flows.first() {
                Some(fl) => format!("capture {capture}: {fl}"),
                None => format!("capture {capture}: {}", p.rule),
            };
            let mut f = Finding::new(
                Layer::Wire,
                Some(vm),
                &kind,
                component,
                p.title.clone(),
                format!("{} ({}; threshold {})", p.measured, p.rule, p.threshold),
                severity(p.severity),
            )
            .attr("rule", p.rule)
            .attr("frames", p.sample_frames.clone())
            .attr("flows", p.flows.clone())
            .attr("hosts", p.hosts.clone())
            .attr("measured", p.measured.clone())
            .attr("value", p.value)
            .attr("capture", capture)
            .attr("analysis_id", p.id.clone());
            if let Some((proto, ip, port)) = p.flows.first().and_then(|fl| flow_server(fl)) {
                if proto == "tcp" || proto == "udp" {
                    f = f.attr("protocol", proto);
                }
                f = f.attr("address", ip).attr("port", port);
            }
            // Capture content (DNS names, flow labels) is host-controlled data.
            f.untrusted = true;
            f
        })
        .collect()
}

/// Causes read off the wire once every side of a capture is analysed: a port of a VM that
/// answers with RST (nothing listens there), and slow application responses, placed by the
/// sender/receiver comparison when both ends were captured (`server_side_delay` when the
/// server makes the delay, `path_delay` when the network adds it, `slow_responses` when
/// only one end was seen). `vm_of` names the VM behind an address (the configured pair).
pub fn wire_causes(
    sides: &[(String, String, Vec<pcap_forensics::Finding>)],
    comparison: Option<&Value>,
    vm_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let placed = |server: &str| -> Option<String> {
        comparison?
            .get("response_times")?
            .as_array()?
            .iter()
            .find(|r| r.get("server").and_then(Value::as_str) == Some(server))?
            .get("delay_made_at")?
            .as_str()
            .map(str::to_string)
    };
    for (side_vm, capture, found) in sides {
        for p in found {
            let Some((proto, ip, port)) = p.flows.first().and_then(|fl| flow_server(fl)) else {
                continue;
            };
            if proto != "tcp" {
                continue;
            }
            let Some(vm) = vm_of(&ip) else {
                continue;
            };
            let (kind, summary, remediation) = match p.rule {
                "xproto.filtered_port" if p.title.contains("refused with RST") => (
                    "tcp_rst_closed_port",
                    format!("{vm} answers tcp/{port} with RST: nothing listens there (capture on {side_vm}: {})", p.measured),
                    Remediation {
                        command: format!("ss -ltnp 'sport = :{port}'"),
                        run_on: vm.clone(),
                        explanation: format!("nothing listens on tcp/{port} of {vm}: start the service meant to listen there, or point the clients at the right port; no network layer blocks it"),
                        verify: format!("ss -ltn 'sport = :{port}' on {vm} shows LISTEN, and a connection to {ip}:{port} completes its handshake"),
                    },
                ),
                "tcp.slow_response" => {
                    let server = format!("{ip}:{port}");
                    match placed(&server).as_deref() {
                        Some("server") => (
                            "server_side_delay",
                            format!("{vm} makes the delay on tcp/{port}: both ends see the same slow responses, so the time is spent between request and response at the server and the network adds none ({})", p.measured),
                            Remediation {
                                command: format!("ss -tnp 'sport = :{port}'"),
                                run_on: vm.clone(),
                                explanation: format!("find the process serving tcp/{port} on {vm} and why some requests take long (its logs, backends, CPU, disk): an application fix, not a network one"),
                                verify: format!("a capture on {vm} shows no response to tcp/{port} slower than the threshold"),
                            },
                        ),
                        Some("network") => (
                            "path_delay",
                            format!("responses from {vm} tcp/{port} are slower at one end than {vm} makes them: the path adds the delay ({})", p.measured),
                            Remediation {
                                command: "tc qdisc show; iptables-save -c | grep -i -e NFQUEUE -e statistic".into(),
                                run_on: vm.clone(),
                                explanation: "the path between the two captures adds the delay: inspect traffic control and packet diversion on both VMs and the route between them".into(),
                                verify: "a sender/receiver capture shows the same response times at both ends".into(),
                            },
                        ),
                        _ => (
                            "slow_responses",
                            format!("responses from {vm} tcp/{port} are slow on some requests, seen in the capture on {side_vm} ({})", p.measured),
                            Remediation {
                                command: format!("ss -tnp 'sport = :{port}'"),
                                run_on: vm.clone(),
                                explanation: format!("some requests to tcp/{port} of {vm} wait long for their response: capture at {vm} as well to tell server think time from path delay"),
                                verify: format!("a capture shows no response from {ip}:{port} slower than the threshold"),
                            },
                        ),
                    }
                }
                _ => continue,
            };
            if out.iter().any(|f| {
                f.kind == kind
                    && f.vm.as_deref() == Some(vm.as_str())
                    && f.attrs.get("port") == Some(&json!(port))
            }) {
                continue;
            }
            let f = Finding::new(
                Layer::Wire,
                Some(&vm),
                kind,
                format!("{vm} tcp/{port}"),
                summary,
                format!("{} ({}; threshold {})", p.measured, p.rule, p.threshold),
                Severity::Medium,
            )
            .attr("port", port)
            .attr("protocol", "tcp")
            .attr("address", ip.clone())
            .attr("frames", p.sample_frames.clone())
            .attr("capture", capture.clone())
            .attr("rule", p.rule)
            .with_remediation(remediation);
            out.push(f);
        }
    }
    out
}

fn sha256_file(p: &Path) -> Option<String> {
    let bytes = std::fs::read(p).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

fn task_summary(t: &TaskRecord) -> Value {
    json!({
        "task_id": t.task_id.to_string(),
        "state": t.state.as_str(),
        "target": match &t.target.to { Some(to) => format!("{} <-> {to}", t.target.vm), None => t.target.vm.clone() },
        "duration_secs": t.options.duration_secs,
        "sides": t.sides.iter().map(|s| json!({
            "role": s.role.as_str(),
            "vm": s.vm,
            "capture": s.capture_name,
            "state": s.state.as_str(),
            "packets": s.analysis.as_ref().map(|a| a.packets),
            "findings": s.analysis.as_ref().map(|a| a.findings.len()),
            "stopped_early": s.stopped_early,
            "error": s.error,
        })).collect::<Vec<_>>(),
        "prerequisites": t.prerequisites,
    })
}

fn parse_task(
    tool: &'static str,
    args: &Value,
    extra: &[&str],
) -> Result<(TaskId, bool), Box<ToolResult>> {
    let mut allowed = vec!["task_id"];
    allowed.extend_from_slice(extra);
    let a = Args::new(tool, args, &allowed).map_err(fail)?;
    let id = a
        .str("task_id")
        .map_err(fail)?
        .ok_or_else(|| fail(format!("{tool}: task_id is required")))?;
    let id = TaskId::parse(&id).map_err(|e| fail(format!("{tool}: {e}")))?;
    let flag = if extra.is_empty() {
        false
    } else {
        a.bool(extra[0]).map_err(fail)?.unwrap_or(false)
    };
    Ok((id, flag))
}

/// Builds the capture filters: a port gives two filters (local and remote port, ORed by
/// Network Watcher) so that both directions of the conversation are kept.
pub fn capture_filters(
    port: Option<u16>,
    protocol: Option<&str>,
    host: Option<&str>,
) -> Result<Vec<CaptureFilter>, String> {
    let proto = match protocol.map(str::to_ascii_lowercase).as_deref() {
        None | Some("any") | Some("icmp") => None,
        Some("tcp") => Some("TCP".to_string()),
        Some("udp") => Some("UDP".to_string()),
        Some(o) => {
            return Err(format!(
                "capture_traffic: filter protocol {o:?} is not tcp, udp, icmp or any"
            ))
        }
    };
    if let Some(h) = host {
        h.parse::<IpAddr>()
            .map_err(|_| format!("capture_traffic: filter host {h:?} is not an IP address"))?;
    }
    let base = CaptureFilter {
        protocol: proto,
        remote_ip: host.map(str::to_string),
        ..Default::default()
    };
    Ok(match port {
        Some(p) => vec![
            CaptureFilter {
                local_port: Some(p.to_string()),
                ..base.clone()
            },
            CaptureFilter {
                remote_port: Some(p.to_string()),
                ..base
            },
        ],
        None if base == CaptureFilter::default() => Vec::new(),
        None => vec![base],
    })
}

/// `capture_traffic`.
pub struct CaptureTraffic;

impl Tool for CaptureTraffic {
    fn name(&self) -> &'static str {
        "capture_traffic"
    }

    fn description(&self) -> &'static str {
        "Starts a Network Watcher packet capture (on one VM, or both: true for source and dest at once with mirrored filters) and returns a task id at once; poll it with check_task, which attaches the pcap-forensics analysis as wire findings. Use only when the control plane is clean and the OS layer did not explain a failure."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "vm": {"type": "string"},
                "both": {"type": "boolean"},
                "filter": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "protocol": {"type": "string", "enum": ["tcp", "udp", "icmp", "any"]},
                        "host": {"type": "string", "description": "remote IP address"}
                    },
                    "additionalProperties": false
                },
                "duration_secs": {"type": "integer", "minimum": 1, "maximum": MAX_CAPTURE_SECS}
            },
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(
                self.name(),
                args,
                &["vm", "both", "filter", "duration_secs"],
            )
            .map_err(fail)?;
            let both = a.bool("both").map_err(fail)?.unwrap_or(false);
            let vm = a.str("vm").map_err(fail)?;
            let duration = a
                .int("duration_secs", 1, MAX_CAPTURE_SECS)
                .map_err(fail)?
                .unwrap_or(DEFAULT_CAPTURE_SECS);
            let (port, protocol, host) = match a
                .object("filter", &["port", "protocol", "host"])
                .map_err(fail)?
            {
                Some(f) => (
                    f.int("port", 1, 65535).map_err(fail)?.map(|p| p as u16),
                    f.str("protocol").map_err(fail)?,
                    f.str("host").map_err(fail)?,
                ),
                None => (None, None, None),
            };
            let target = match (both, vm) {
                (true, None) => Target::pair(ctx.source_vm(), ctx.dest_vm()),
                (true, Some(_)) => {
                    return Err(fail(
                        "capture_traffic: give either vm or both: true, not both",
                    ))
                }
                (false, Some(v)) => Target::vm(v),
                (false, None) => {
                    return Err(fail(
                        "capture_traffic: name the vm to capture on, or pass both: true",
                    ))
                }
            };
            for v in std::iter::once(&target.vm).chain(target.to.iter()) {
                check_vm(v).map_err(fail)?;
            }
            let filters =
                capture_filters(port, protocol.as_deref(), host.as_deref()).map_err(fail)?;
            let opts = CaptureOptions {
                duration_secs: duration as u32,
                filters,
                reason: format!("ghost-agent {} capture", ctx.session_id),
                ..Default::default()
            };
            let o = orchestrator(ctx).map_err(fail)?;
            let id = o
                .capture_traffic(&target, &opts)
                .map_err(|e| orch_failure("capture_traffic", &e))?;
            let t = o
                .get_task(&id)
                .map_err(|e| orch_failure("capture_traffic", &e))?;
            let mut s = task_summary(&t);
            s["next"] = json!(format!(
                "call check_task {{\"task_id\": \"{id}\"}} after about {duration} s; cleanup_task when done"
            ));
            Ok(ToolResult::ok(s))
        };
        run().unwrap_or_else(|e| *e)
    }
}

/// `check_task`.
pub struct CheckTask;

impl Tool for CheckTask {
    fn name(&self) -> &'static str {
        "check_task"
    }

    fn description(&self) -> &'static str {
        "Advances a capture task without waiting (poll, download, verify, analyse) and returns its state; once a side is analysed, its pcap-forensics findings come back as wire findings (handshake_unanswered, retransmissions, rst, dns_latency, mtu, ...) with frame numbers."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"task_id": {"type": "string"}},
            "required": ["task_id"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let (id, _) = parse_task(self.name(), args, &[])?;
            let o = orchestrator(ctx).map_err(fail)?;
            let t = o
                .check_task(&id)
                .map_err(|e| orch_failure("check_task", &e))?;
            let mut r = ToolResult::ok(task_summary(&t));
            let mut analysed = 0;
            let mut sides_found: Vec<(String, String, Vec<pcap_forensics::Finding>)> = Vec::new();
            for s in &t.sides {
                let (Some(a), Some(file)) = (&s.analysis, &s.local_file) else {
                    continue;
                };
                if s.state == TaskState::Failed {
                    continue;
                }
                analysed += 1;
                if let Some(sha) = sha256_file(&a.semantic_file) {
                    r.artifacts.push(ArtifactRef {
                        kind: "pcap_semantic".into(),
                        path: a.semantic_file.display().to_string(),
                        sha256: sha,
                    });
                }
                if let Some(sha) = sha256_file(file) {
                    r.artifacts.push(ArtifactRef {
                        kind: "pcap".into(),
                        path: file.display().to_string(),
                        sha256: sha,
                    });
                }
                // The registry keeps titles only; the frames come from the analysis itself
                // (deterministic, re-run on the verified local file).
                match pcap_forensics::analyze_file(
                    file,
                    &pcap_forensics::AnalysisOptions::default(),
                    None,
                ) {
                    Ok(an) => {
                        r.findings
                            .extend(wire_findings(&s.vm, &s.capture_name, &an.findings));
                        sides_found.push((s.vm.clone(), s.capture_name.clone(), an.findings));
                    }
                    Err(e) => {
                        r.summary["analysis_error"] = json!(format!("{}: {e}", file.display()));
                    }
                }
            }
            let done = t.sides.iter().all(|s| s.state >= TaskState::Analysed);
            r.summary["analysed_sides"] = json!(analysed);
            r.summary["done"] = json!(done);
            // The orchestrator keeps pcap-forensics' endpoint comparison under `result`.
            let comparison = t.comparison.as_ref().and_then(|c| c.get("result"));
            if let Some(c) = comparison {
                r.summary["comparison"] = c.get("verdict").cloned().unwrap_or(Value::Null);
                if let Some(v) = c.get("response_verdict") {
                    r.summary["response_verdict"] = v.clone();
                }
            }
            if done {
                let pair = [
                    (ctx.env.source.private_ip, ctx.source_vm()),
                    (ctx.env.dest.private_ip, ctx.dest_vm()),
                ];
                let vm_of = |ip: &str| {
                    pair.iter()
                        .find(|(a, _)| a.is_some_and(|a| a.to_string() == ip))
                        .map(|(_, n)| n.clone())
                };
                r.findings
                    .extend(wire_causes(&sides_found, comparison, &vm_of));
            }
            if !done {
                r.summary["next"] = json!("call check_task again later");
            }
            r.untrusted = !r.findings.is_empty();
            Ok(r)
        };
        run().unwrap_or_else(|e| *e)
    }
}

/// `cancel_task`.
pub struct CancelTask;

impl Tool for CancelTask {
    fn name(&self) -> &'static str {
        "cancel_task"
    }

    fn description(&self) -> &'static str {
        "Cancels a capture task: stops its captures in Azure and deletes the capture resources; results already obtained are kept."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"task_id": {"type": "string"}},
            "required": ["task_id"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let (id, _) = parse_task(self.name(), args, &[])?;
            let o = orchestrator(ctx).map_err(fail)?;
            let t = o
                .cancel_task(&id, CleanupOptions::default())
                .map_err(|e| orch_failure("cancel_task", &e))?;
            Ok(ToolResult::ok(task_summary(&t)))
        };
        run().unwrap_or_else(|e| *e)
    }
}

/// `cleanup_task`.
pub struct CleanupTask;

impl Tool for CleanupTask {
    fn name(&self) -> &'static str {
        "cleanup_task"
    }

    fn description(&self) -> &'static str {
        "Cleans a capture task up: stops what still runs and deletes the capture resources (and the blobs with delete_blob: true); local files and analyses are kept as evidence."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string"},
                "delete_blob": {"type": "boolean"}
            },
            "required": ["task_id"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let (id, delete_blob) = parse_task(self.name(), args, &["delete_blob"])?;
            let o = orchestrator(ctx).map_err(fail)?;
            let t = o
                .cleanup_task(
                    &id,
                    CleanupOptions {
                        delete_blob,
                        delete_local: false,
                    },
                )
                .map_err(|e| orch_failure("cleanup_task", &e))?;
            Ok(ToolResult::ok(task_summary(&t)))
        };
        run().unwrap_or_else(|e| *e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf(
        rule: &'static str,
        title: &str,
        flows: &[&str],
        frames: &[u64],
    ) -> pcap_forensics::Finding {
        pcap_forensics::Finding {
            id: "F001".into(),
            rule,
            severity: pcap_forensics::Severity::High,
            title: title.into(),
            measured: "3 connection attempt(s)".into(),
            value: 3.0,
            threshold: ">= 1".into(),
            flows: flows.iter().map(|s| s.to_string()).collect(),
            hosts: vec!["198.18.1.5".into()],
            sample_frames: frames.to_vec(),
            remediation: "find the filter".into(),
        }
    }

    #[test]
    fn unanswered_syns_become_handshake_unanswered_with_port_and_frames() {
        let found = [pf(
            "xproto.filtered_port",
            "TCP 198.18.1.5:5001 silently dropped (SYNs without any answer: a DROP rule, NSG deny or dead host)",
            &["tcp 198.18.1.4:40512 -> 198.18.1.5:5001"],
            &[1, 2, 5],
        )];
        let f = wire_findings("dest-vm", "ghostcap-x-dst", &found);
        assert_eq!(f.len(), 1);
        let f = &f[0];
        assert_eq!(f.kind, "handshake_unanswered");
        assert_eq!(f.layer, Layer::Wire);
        assert_eq!(f.vm.as_deref(), Some("dest-vm"));
        assert_eq!(f.attrs["port"], 5001);
        assert_eq!(f.attrs["protocol"], "tcp");
        assert_eq!(f.attrs["address"], "198.18.1.5");
        assert_eq!(f.attrs["frames"], json!([1, 2, 5]));
        assert_eq!(f.severity, Severity::High);
        assert!(f.untrusted);
        assert!(f.remediation.is_none());
    }

    #[test]
    fn wire_causes_name_the_vm_behind_the_address_and_place_slow_responses() {
        let rst = pf(
            "xproto.filtered_port",
            "TCP 198.18.1.5:9999 refused with RST (nothing listens)",
            &["tcp 198.18.1.4:40000 -> 198.18.1.5:9999"],
            &[3, 4],
        );
        let slow = pf(
            "tcp.slow_response",
            "Slow responses from 198.18.1.5:8080: 4 of 19 took 200 ms or more",
            &["tcp 198.18.1.4:46656 -> 198.18.1.5:8080"],
            &[40],
        );
        let stranger = pf(
            "xproto.filtered_port",
            "TCP 198.18.9.9:443 refused with RST",
            &["tcp 198.18.1.4:40001 -> 198.18.9.9:443"],
            &[7],
        );
        let sides = vec![
            (
                "source-vm".to_string(),
                "cap-src".to_string(),
                vec![rst.clone(), slow.clone(), stranger],
            ),
            (
                "dest-vm".to_string(),
                "cap-dst".to_string(),
                vec![rst, slow],
            ),
        ];
        let vm_of = |ip: &str| (ip == "198.18.1.5").then(|| "dest-vm".to_string());
        // One end only: slow responses, not yet placed; each cause once.
        let f = wire_causes(&sides, None, &vm_of);
        let kinds: Vec<(&str, u64)> = f
            .iter()
            .map(|x| (x.kind.as_str(), x.attrs["port"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            kinds,
            vec![("tcp_rst_closed_port", 9999), ("slow_responses", 8080)]
        );
        assert!(f.iter().all(|x| x.vm.as_deref() == Some("dest-vm")));
        assert!(f.iter().all(|x| x.remediation.is_some()));
        // The comparison places the delay at the server, or on the path.
        let cmp =
            json!({"response_times": [{"server": "198.18.1.5:8080", "delay_made_at": "server"}]});
        let f = wire_causes(&sides, Some(&cmp), &vm_of);
        assert_eq!(f[1].kind, "server_side_delay");
        let cmp =
            json!({"response_times": [{"server": "198.18.1.5:8080", "delay_made_at": "network"}]});
        assert_eq!(
            wire_causes(&sides, Some(&cmp), &vm_of)[1].kind,
            "path_delay"
        );
    }

    #[test]
    fn rules_map_to_wire_kinds() {
        assert_eq!(
            wire_kind(
                "xproto.filtered_port",
                "TCP a:1 refused with RST (closed port)"
            ),
            "rst"
        );
        assert_eq!(
            wire_kind(
                "xproto.filtered_port",
                "TCP a:1 rejected as administratively prohibited"
            ),
            "handshake_rejected"
        );
        assert_eq!(wire_kind("tcp.retransmissions", ""), "retransmissions");
        assert_eq!(wire_kind("tcp.rst_storm", ""), "rst");
        assert_eq!(wire_kind("dns.slow", ""), "dns_latency");
        assert_eq!(wire_kind("xproto.pmtud_black_hole", ""), "mtu");
        assert_eq!(wire_kind("arp.storm", ""), "pcap_arp_storm");
        let f = wire_findings(
            "source-vm",
            "c",
            &[pf(
                "tcp.retransmissions",
                "TCP retransmissions: 7.0% of data segments",
                &["tcp 198.18.1.4:40000 -> 198.18.1.5:8080 (12 retransmissions)"],
                &[9],
            )],
        );
        assert_eq!(f[0].attrs["port"], 8080);
        assert_eq!(f[0].kind, "retransmissions");
        let none = wire_findings("v", "c", &[pf("arp.storm", "ARP storm", &[], &[])]);
        assert!(!none[0].attrs.contains_key("port"));
    }

    #[test]
    fn filters_keep_both_directions_and_validate() {
        let f = capture_filters(Some(5001), Some("tcp"), None).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].local_port.as_deref(), Some("5001"));
        assert_eq!(f[1].remote_port.as_deref(), Some("5001"));
        assert_eq!(f[0].protocol.as_deref(), Some("TCP"));
        assert!(capture_filters(None, None, None).unwrap().is_empty());
        let h = capture_filters(None, None, Some("198.18.1.4")).unwrap();
        assert_eq!(h[0].remote_ip.as_deref(), Some("198.18.1.4"));
        assert!(capture_filters(None, Some("sctp"), None).is_err());
        assert!(capture_filters(None, None, Some("not-an-ip; rm")).is_err());
        assert_eq!(
            flow_server("tcp [fe80::1]:1 -> [fe80::2]:443"),
            Some(("tcp".into(), "fe80::2".into(), 443))
        );
        assert_eq!(flow_server("garbage"), None);
    }
}
