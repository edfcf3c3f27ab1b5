//! Control-plane tools over effective-network-inspector: NSG verdicts and audits, route
//! verdicts, reachability traces, effective-state baselines and drift.
//!
//! The live reads go through [`LiveSource`] over `ctx.azure` (az through the gate); the
//! decisions are pure functions over [`VmNet`] (a VM's effective NIC state), so they are
//! tested on Azure-shaped fixtures without a cloud.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use cloud_provider::artifact::LocalStore;
use cloud_provider::models::RouteTable as AzRouteTable;
use cloud_provider::provider::CloudProvider;
use cloud_provider::session::SessionId;
use effective_network_inspector::live::LiveSource;
use effective_network_inspector::net::{Addr, Family};
use effective_network_inspector::nsg::{
    Access, AuditKind, Direction, FinalVerdict, Flow, NicNsgs, NsgVerdict, Proto, RuleView,
    SENSITIVE_PORTS,
};
use effective_network_inspector::route::{
    AnomalyKind, RouteResult, RouteTable, RouteVerdict, RouteView,
};
use effective_network_inspector::snapshot::{diff, Change, ChangeKind, Diff, Snapshot};
use effective_network_inspector::source::{EffectiveStateSource, Scope};
use effective_network_inspector::state::NicState;
use effective_network_inspector::store;
use effective_network_inspector::trace::{trace, ReasonCode, TraceRequest, TraceResult};
use effective_network_inspector::EniError;
use serde_json::{json, Value};

use super::{
    check_vm, cloud_failure, dedup, fail, proto_attr, provider, resource_group, single_port, Args,
};
use crate::model::{
    ArtifactRef, Aspect, CoverageMark, CoverageState, Finding, Layer, Remediation, Severity,
    ToolResult,
};
use crate::tools::{Tool, ToolContext};

/// One VM's effective network state: its (primary) NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNet {
    /// VM name.
    pub vm: String,
    /// The NIC's effective routes and NSGs.
    pub nic: NicState,
}

impl VmNet {
    /// The NIC's first IPv4 address.
    pub fn ipv4(&self) -> Result<Addr, String> {
        self.nic
            .ip_addresses
            .iter()
            .filter_map(|a| a.parse::<Addr>().ok())
            .find(|a| a.family == Family::V4)
            .ok_or_else(|| {
                format!(
                    "NIC {} of {} has no IPv4 address in the effective state",
                    self.nic.name, self.vm
                )
            })
    }
}

fn inspected() -> CoverageState {
    CoverageState::Inspected {
        evidence: String::new(),
    }
}

fn mark(aspect: Aspect, state: CoverageState) -> CoverageMark {
    CoverageMark {
        aspect,
        vm: None,
        state,
    }
}

fn eni_failure(context: &str, e: &EniError) -> Box<ToolResult> {
    match e {
        EniError::Cloud(c) => Box::new(cloud_failure(context, c)),
        other => fail(format!("{context}: {other}")),
    }
}

/// Reads a VM's NICs live and keeps the one holding `prefer_ip` (else the first).
pub fn read_vm(
    p: Arc<dyn CloudProvider>,
    rg: &str,
    vm: &str,
    prefer_ip: Option<&str>,
) -> Result<VmNet, EniError> {
    let src = LiveSource::new(p, Some(rg.to_string()));
    let mut nics = src.collect(&Scope::Vm(vm.to_string()))?;
    let idx = prefer_ip
        .and_then(|ip| {
            nics.iter()
                .position(|n| n.ip_addresses.iter().any(|a| a == ip))
        })
        .unwrap_or(0);
    if nics.is_empty() {
        return Err(EniError::Input(format!("VM {vm} has no NIC")));
    }
    Ok(VmNet {
        vm: vm.to_string(),
        nic: nics.swap_remove(idx),
    })
}

fn configured_ip(ctx: &ToolContext, vm: &str) -> Option<String> {
    if Some(vm) == ctx.env.source.name.as_deref()
        || (ctx.env.source.name.is_none() && vm == "source-vm")
    {
        return ctx.env.source.private_ip.map(|i| i.to_string());
    }
    if Some(vm) == ctx.env.dest.name.as_deref() || (ctx.env.dest.name.is_none() && vm == "dest-vm")
    {
        return ctx.env.dest.private_ip.map(|i| i.to_string());
    }
    None
}

fn live_vm(ctx: &ToolContext, vm: &str) -> Result<VmNet, Box<ToolResult>> {
    check_vm(vm).map_err(fail)?;
    let p = provider(ctx).map_err(fail)?;
    let rg = resource_group(ctx).map_err(fail)?;
    let ip = configured_ip(ctx, vm);
    read_vm(p, &rg, vm, ip.as_deref())
        .map_err(|e| eni_failure(&format!("reading the effective state of {vm}"), &e))
}

/// Every private address of the resource group's NICs (None when they cannot be listed).
fn known_addresses(p: &dyn CloudProvider, rg: &str) -> Option<HashSet<IpAddr>> {
    let nics = p.nic_list(rg).ok()?;
    Some(
        nics.iter()
            .flat_map(|n| n.private_ips())
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// NSG verdicts.

/// The flow asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    /// Destination port (tcp/udp).
    pub port: Option<u16>,
    /// Protocol.
    pub proto: Proto,
}

fn parse_flow(tool: &'static str, a: &Args<'_>) -> Result<FlowSpec, String> {
    let port = a.int("port", 1, 65535)?.map(|p| p as u16);
    let proto = match a
        .str("protocol")?
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None if port.is_some() => Proto::Tcp,
        None => Proto::Icmp,
        Some("tcp") => Proto::Tcp,
        Some("udp") => Proto::Udp,
        Some("icmp") | Some("ping") => Proto::Icmp,
        Some(other) => {
            return Err(format!(
                "{tool}: protocol {other:?} is not tcp, udp or icmp"
            ))
        }
    };
    if proto.has_ports() && port.is_none() {
        return Err(format!("{tool}: port is required for protocol {proto}"));
    }
    Ok(FlowSpec {
        port: if proto.has_ports() { port } else { None },
        proto,
    })
}

/// `securityRules/x` → `x`.
pub fn short_rule(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn is_default_rule(name: &str) -> bool {
    name.starts_with("defaultSecurityRules/")
        || matches!(
            short_rule(name),
            "AllowVnetInBound"
                | "AllowAzureLoadBalancerInBound"
                | "DenyAllInBound"
                | "AllowVnetOutBound"
                | "AllowInternetOutBound"
                | "DenyAllOutBound"
        )
}

fn dir_str(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "Inbound",
        Direction::Outbound => "Outbound",
    }
}

fn gate_word(r: &RuleView) -> &'static str {
    r.gate.as_str()
}

/// The `nsg_deny` finding (or `kind`) of a DENY verdict on `vm`'s NSGs.
pub fn deny_finding(vm: &str, v: &NsgVerdict, rg: &str, kind: &str) -> Option<Finding> {
    if v.final_verdict != FinalVerdict::Deny {
        return None;
    }
    let r = v.decisive_rule.as_ref()?;
    let rule = short_rule(&r.name);
    let proto = v.flow.proto;
    let what = match v.flow.dst_port {
        Some(p) => format!("{proto}/{p}"),
        None => proto.to_string(),
    };
    let reverse = kind != "nsg_deny";
    let summary = format!(
        "{} ({} gate of {vm}) denies {} {what} from {} to {} with rule {rule} (priority {})",
        r.nsg,
        gate_word(r),
        dir_str(v.direction).to_ascii_lowercase(),
        v.flow.src_ip,
        v.flow.dst_ip,
        r.priority
    );
    let mechanism = if reverse {
        format!(
            "{rule} (priority {}) matches before any allow rule, so traffic initiated from {} to {} is dropped; replies to connections opened the other way are unaffected because NSGs are stateful",
            r.priority, v.flow.src_ip, v.flow.dst_ip
        )
    } else {
        format!(
            "{rule} (priority {}) in {} matches the {} {what} flow before any allow rule, so Azure drops the packets silently at the {} gate and the client sees a timeout",
            r.priority,
            r.nsg,
            dir_str(v.direction).to_ascii_lowercase(),
            gate_word(r)
        )
    };
    let mut f = Finding::new(
        Layer::Nsg,
        Some(vm),
        kind,
        format!("{}/{rule}", r.nsg),
        summary,
        mechanism,
        if reverse {
            Severity::Low
        } else {
            Severity::High
        },
    )
    .attr("nsg", r.nsg.clone())
    .attr("rule", rule)
    .attr("priority", r.priority)
    .attr("direction", dir_str(v.direction))
    .attr("protocol", proto.to_string())
    .attr("gate", gate_word(r))
    .attr("source", v.flow.src_ip.clone())
    .attr("address", v.flow.dst_ip.clone());
    if let Some(p) = v.flow.dst_port {
        f = f.attr("port", p);
    }
    let verify = match v.flow.dst_port {
        Some(p) => format!(
            "inspect_nsg {{\"port\": {p}, \"protocol\": \"{proto}\"}} again: the verdict must be ALLOW"
        ),
        None => format!(
            "inspect_nsg {{\"protocol\": \"{proto}\"}} again: the verdict must be ALLOW"
        ),
    };
    let remediation = if is_default_rule(&r.name) {
        // Azure's default rules cannot be deleted: the fix is an allow rule above them.
        let ports = v
            .flow
            .dst_port
            .map(|p| format!(" --destination-port-ranges {p}"))
            .unwrap_or_default();
        let name = match v.flow.dst_port {
            Some(p) => format!("allow-{proto}-{p}"),
            None => format!("allow-{proto}"),
        };
        let peer = match v.direction {
            Direction::Inbound => format!(" --source-address-prefixes {}", v.flow.src_ip),
            Direction::Outbound => format!(" --destination-address-prefixes {}", v.flow.dst_ip),
        };
        Remediation {
            command: format!(
                "az network nsg rule create -g {rg} --nsg-name {} -n {name} --priority 4000 --direction {} --access Allow --protocol {}{peer}{ports}",
                r.nsg,
                dir_str(v.direction),
                match proto {
                    Proto::Tcp => "Tcp",
                    Proto::Udp => "Udp",
                    Proto::Icmp => "Icmp",
                    _ => "*",
                }
            ),
            run_on: "az".into(),
            explanation: format!(
                "{rule} is one of Azure's default rules and cannot be deleted; an allow rule with a lower priority number lets the flow through (only if the flow is meant to be allowed)"
            ),
            verify,
        }
    } else {
        Remediation {
            command: format!(
                "az network nsg rule delete -g {rg} --nsg-name {} -n {rule}",
                r.nsg
            ),
            run_on: "az".into(),
            explanation: format!("deletes the deny rule {rule} from {}", r.nsg),
            verify,
        }
    };
    Some(f.with_remediation(remediation))
}

fn verdict_view(v: &NsgVerdict) -> Value {
    let rule = v.decisive_rule.as_ref().map(|r| {
        format!(
            "{}/{} (priority {}, {} gate, {})",
            r.nsg,
            short_rule(&r.name),
            r.priority,
            gate_word(r),
            match r.access {
                Access::Allow => "Allow",
                Access::Deny => "Deny",
            }
        )
    });
    let mut m = json!({
        "verdict": v.final_verdict,
        "rule": rule,
    });
    if v.final_verdict != FinalVerdict::Allow || v.decisive_rule.is_none() {
        m["reason"] = json!(v.reason);
    }
    m
}

fn combine(a: FinalVerdict, b: FinalVerdict) -> FinalVerdict {
    match (a, b) {
        (FinalVerdict::Deny, _) | (_, FinalVerdict::Deny) => FinalVerdict::Deny,
        (FinalVerdict::Indeterminate, _) | (_, FinalVerdict::Indeterminate) => {
            FinalVerdict::Indeterminate
        }
        _ => FinalVerdict::Allow,
    }
}

/// The NSGs of a VM's NIC with their gate (`name (nic|subnet)`).
fn nsg_names(v: &VmNet) -> Vec<String> {
    v.nic
        .nsgs
        .iter()
        .map(|n| format!("{} ({})", n.nsg, n.association.as_str()))
        .collect()
}

/// Coverage of a flow by the verdicts of the NSGs it crosses, in order: inspected when they
/// decide it (a deny decides it whatever follows), unverifiable with the first undecided
/// NSG's reason otherwise.
fn gates_coverage(verdicts: &[&NsgVerdict]) -> CoverageState {
    let combined = verdicts
        .iter()
        .fold(FinalVerdict::Allow, |acc, v| combine(acc, v.final_verdict));
    match combined {
        FinalVerdict::Indeterminate => CoverageState::Unverifiable {
            reason: format!(
                "the effective NSGs cannot decide the flow: {}",
                verdicts
                    .iter()
                    .find(|v| v.final_verdict == FinalVerdict::Indeterminate)
                    .map(|v| v.reason.as_str())
                    .unwrap_or_default()
            ),
        },
        _ => inspected(),
    }
}

/// The `inspect_nsg` verdict: source → dest (source outbound, then dest inbound) and
/// dest → source (dest outbound, then source inbound) for the flow.
pub fn nsg_verdicts(
    src: &VmNet,
    dst: &VmNet,
    spec: FlowSpec,
    rg: &str,
) -> Result<ToolResult, String> {
    let (sip, dip) = (src.ipv4()?, dst.ipv4()?);
    let snsg = NicNsgs::new(&src.nic.nsgs).map_err(|e| format!("NSGs of {}: {e}", src.vm))?;
    let dnsg = NicNsgs::new(&dst.nic.nsgs).map_err(|e| format!("NSGs of {}: {e}", dst.vm))?;
    let flow = |direction, from, to| Flow {
        direction,
        src: from,
        dst: to,
        src_port: None,
        dst_port: spec.port,
        proto: spec.proto,
    };
    let f_out = snsg.evaluate(&flow(Direction::Outbound, sip, dip));
    let f_in = dnsg.evaluate(&flow(Direction::Inbound, sip, dip));
    let r_out = dnsg.evaluate(&flow(Direction::Outbound, dip, sip));
    let r_in = snsg.evaluate(&flow(Direction::Inbound, dip, sip));
    let fwd = combine(f_out.final_verdict, f_in.final_verdict);
    let rev = combine(r_out.final_verdict, r_in.final_verdict);
    let mut findings = Vec::new();
    findings.extend(deny_finding(&src.vm, &f_out, rg, "nsg_deny"));
    findings.extend(deny_finding(&dst.vm, &f_in, rg, "nsg_deny"));
    findings.extend(deny_finding(&dst.vm, &r_out, rg, "nsg_deny_reverse"));
    findings.extend(deny_finding(&src.vm, &r_in, rg, "nsg_deny_reverse"));
    let coverage = vec![
        mark(Aspect::NsgForward, gates_coverage(&[&f_out, &f_in])),
        mark(Aspect::NsgReturn, gates_coverage(&[&r_out, &r_in])),
    ];
    let summary = json!({
        "mode": "verdict",
        "flow": {
            "source": format!("{} {}", src.vm, sip),
            "dest": format!("{} {}", dst.vm, dip),
            "protocol": spec.proto.to_string(),
            "port": spec.port,
        },
        "forward": {
            "verdict": fwd,
            "source_outbound": verdict_view(&f_out),
            "dest_inbound": verdict_view(&f_in),
        },
        "reverse": {
            "verdict": rev,
            "dest_outbound": verdict_view(&r_out),
            "source_inbound": verdict_view(&r_in),
            "note": "traffic initiated by dest; replies to an allowed forward flow pass regardless (NSGs are stateful)",
        },
        "nsgs": {
            src.vm.clone(): nsg_names(src),
            dst.vm.clone(): nsg_names(dst),
        },
        "findings": findings.len(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        coverage,
        ..Default::default()
    })
}

/// The `inspect_nsg` verdict toward an address outside the pair (`address`: "the
/// internet" of a complaint, or any external host): the source's outbound gates (NIC and
/// subnet NSG) decide; the far end is no NIC of the resource group, so no inbound gate of
/// Azure applies and only the forward direction is marked.
pub fn nsg_address_verdict(
    src: &VmNet,
    address: &str,
    spec: FlowSpec,
    rg: &str,
) -> Result<ToolResult, String> {
    let sip = src.ipv4()?;
    let dip: Addr = address
        .trim()
        .parse()
        .map_err(|_| format!("inspect_nsg: address {address:?} is not an IP address"))?;
    let snsg = NicNsgs::new(&src.nic.nsgs).map_err(|e| format!("NSGs of {}: {e}", src.vm))?;
    let v = snsg.evaluate(&Flow {
        direction: Direction::Outbound,
        src: sip,
        dst: dip,
        src_port: None,
        dst_port: spec.port,
        proto: spec.proto,
    });
    let again = match spec.port {
        Some(p) => format!(
            "inspect_nsg {{\"port\": {p}, \"protocol\": \"{}\", \"address\": \"{}\"}} again: the verdict must be ALLOW",
            spec.proto,
            address.trim()
        ),
        None => format!(
            "inspect_nsg {{\"protocol\": \"{}\", \"address\": \"{}\"}} again: the verdict must be ALLOW",
            spec.proto,
            address.trim()
        ),
    };
    let findings: Vec<Finding> = deny_finding(&src.vm, &v, rg, "nsg_deny")
        .into_iter()
        .map(|mut f| {
            if let Some(r) = f.remediation.as_mut() {
                r.verify = again.clone();
            }
            f
        })
        .collect();
    let coverage = vec![mark(Aspect::NsgForward, gates_coverage(&[&v]))];
    let summary = json!({
        "mode": "verdict",
        "flow": {
            "source": format!("{} {}", src.vm, sip),
            "dest": address.trim(),
            "protocol": spec.proto.to_string(),
            "port": spec.port,
        },
        "forward": {
            "verdict": v.final_verdict,
            "source_outbound": verdict_view(&v),
            "note": "the destination is no NIC of the resource group: only the source's outbound gates (NIC and subnet NSG) apply",
        },
        "nsgs": {
            src.vm.clone(): nsg_names(src),
        },
        "findings": findings.len(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        coverage,
        ..Default::default()
    })
}

fn sensitive_hits(r: &RuleView) -> Vec<u16> {
    let tcp_udp = matches!(
        r.protocol.to_ascii_lowercase().as_str(),
        "*" | "all" | "any" | "tcp" | "udp"
    );
    if !tcp_udp {
        return Vec::new();
    }
    SENSITIVE_PORTS
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| {
            r.destination_ports.iter().any(|range| {
                let range = range.trim();
                if range == "*" {
                    return true;
                }
                match range.split_once('-') {
                    Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                        (Ok(a), Ok(b)) => (a..=b).contains(p),
                        _ => false,
                    },
                    None => range.parse::<u16>().ok() == Some(*p),
                }
            })
        })
        .collect()
}

/// The `inspect_nsg` audit: permissive inbound rules (a management or database port, or a
/// wide range, open to any source or Internet) become `nsg_permissive` findings; shadowed
/// and never-matching rules are counted in the summary.
pub fn nsg_audit(vms: &[&VmNet], rg: &str) -> Result<ToolResult, String> {
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut other: Vec<String> = Vec::new();
    let mut per_vm = serde_json::Map::new();
    for v in vms {
        let nsgs = NicNsgs::new(&v.nic.nsgs).map_err(|e| format!("NSGs of {}: {e}", v.vm))?;
        let audit = nsgs.audit();
        per_vm.insert(
            v.vm.clone(),
            json!({"nsgs": audit.nsgs, "gates_without_nsg": audit.gates_without_nsg}),
        );
        for a in &audit.findings {
            let rule = short_rule(&a.rule.name).to_string();
            match a.kind {
                AuditKind::PermissiveSensitivePort | AuditKind::WidePortRange => {
                    let key = (a.rule.nsg.clone(), rule.clone());
                    let label = match a.kind {
                        AuditKind::PermissiveSensitivePort => "sensitive_port_from_any",
                        _ => "wide_port_range_from_any",
                    };
                    if let Some(&i) = seen.get(&key) {
                        let f: &mut Finding = &mut findings[i];
                        if let Some(Value::Array(l)) = f.attrs.get_mut("audit") {
                            if !l.iter().any(|x| x == label) {
                                l.push(json!(label));
                            }
                        }
                        continue;
                    }
                    let hits = sensitive_hits(&a.rule);
                    let ports = a.rule.destination_ports.join(",");
                    let mut f = Finding::new(
                        Layer::Nsg,
                        Some(&v.vm),
                        "nsg_permissive",
                        format!("{}/{rule}", a.rule.nsg),
                        format!(
                            "{}/{rule} (priority {}) allows {} from {} to port(s) {ports}",
                            a.rule.nsg,
                            a.rule.priority,
                            proto_attr(&a.rule.protocol),
                            a.rule.source.join(",")
                        ),
                        a.message.clone(),
                        if hits.is_empty() {
                            Severity::Medium
                        } else {
                            Severity::High
                        },
                    )
                    .attr("nsg", a.rule.nsg.clone())
                    .attr("rule", rule.clone())
                    .attr("priority", a.rule.priority)
                    .attr("direction", dir_str(a.rule.direction))
                    .attr("protocol", proto_attr(&a.rule.protocol))
                    .attr("gate", a.rule.gate.as_str())
                    .attr("ports", ports.clone())
                    .attr("source", a.rule.source.join(","))
                    .attr("audit", json!([label]));
                    if let Some(p) = hits.first() {
                        f = f.attr("port", *p);
                    } else if let Some(p) = a
                        .rule
                        .destination_ports
                        .first()
                        .and_then(|s| single_port(s))
                    {
                        f = f.attr("port", p);
                    }
                    let f = f.with_remediation(Remediation {
                        command: format!(
                            "az network nsg rule delete -g {rg} --nsg-name {} -n {rule}",
                            a.rule.nsg
                        ),
                        run_on: "az".into(),
                        explanation: format!(
                            "removes the exposure of port(s) {ports} to any source (replace it with a rule scoped to the sources that need it, if any)"
                        ),
                        verify: "inspect_nsg {\"mode\": \"audit\"} again: the rule must no longer be listed".into(),
                    });
                    seen.insert(key, findings.len());
                    findings.push(f);
                }
                _ => other.push(a.message.clone()),
            }
        }
    }
    let other_n = other.len();
    other.truncate(5);
    Ok(ToolResult {
        ok: true,
        summary: json!({
            "mode": "audit",
            "vms": per_vm,
            "permissive_rules": findings.iter().map(|f| f.component.clone()).collect::<Vec<_>>(),
            "other_audit_notes": other_n,
            "other_audit_top": other,
        }),
        findings,
        ..Default::default()
    })
}

/// `inspect_nsg`.
pub struct InspectNsg;

impl Tool for InspectNsg {
    fn name(&self) -> &'static str {
        "inspect_nsg"
    }

    fn description(&self) -> &'static str {
        "NSG verdicts from the effective NSGs of both VMs' NICs (NIC and subnet gates): mode verdict (default) answers source->dest (source outbound then dest inbound) and dest->source for a port/protocol, naming the deciding rule and priority; with `address` (an internet or other external address) it answers the source's outbound gates toward that address; mode audit lists permissive rules (management/database ports or wide ranges open to any source or Internet)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["verdict", "audit"]},
                "source_vm": {"type": "string"},
                "dest_vm": {"type": "string"},
                "address": {"type": "string", "description": "verdict toward this IP address (outside the pair, e.g. the internet) instead of dest_vm"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"type": "string", "enum": ["tcp", "udp", "icmp"]}
            },
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(
                self.name(),
                args,
                &[
                    "mode",
                    "source_vm",
                    "dest_vm",
                    "address",
                    "port",
                    "protocol",
                ],
            )
            .map_err(fail)?;
            let address = a.str("address").map_err(fail)?;
            let mode = a.str("mode").map_err(fail)?;
            let rg = resource_group(ctx).map_err(fail)?;
            let src_name = a.str("source_vm").map_err(fail)?;
            let dst_name = a.str("dest_vm").map_err(fail)?;
            match mode.as_deref().unwrap_or("verdict") {
                "verdict" => {
                    let spec = parse_flow(self.name(), &a).map_err(fail)?;
                    if let (Some(addr), Some(_)) = (&address, &dst_name) {
                        return Err(fail(format!(
                            "inspect_nsg: give either dest_vm or address ({addr}), not both"
                        )));
                    }
                    let s = live_vm(ctx, &src_name.unwrap_or_else(|| ctx.source_vm()))?;
                    if let Some(addr) = address {
                        return nsg_address_verdict(&s, &addr, spec, &rg).map_err(fail);
                    }
                    let d = live_vm(ctx, &dst_name.unwrap_or_else(|| ctx.dest_vm()))?;
                    nsg_verdicts(&s, &d, spec, &rg).map_err(fail)
                }
                "audit" => {
                    let names: Vec<String> = match (src_name, dst_name) {
                        (None, None) => vec![ctx.source_vm(), ctx.dest_vm()],
                        (s, d) => s.into_iter().chain(d).collect(),
                    };
                    let mut vms = Vec::new();
                    for n in dedup(names) {
                        vms.push(live_vm(ctx, &n)?);
                    }
                    let refs: Vec<&VmNet> = vms.iter().collect();
                    nsg_audit(&refs, &rg).map_err(fail)
                }
                other => Err(fail(format!(
                    "inspect_nsg: mode {other:?} is not verdict or audit"
                ))),
            }
        };
        run().unwrap_or_else(|e| *e)
    }
}

// ---------------------------------------------------------------------------------------
// Routes.

/// Where a user-defined route lives: (route table, route name).
pub fn locate_udr(
    tables: &[AzRouteTable],
    prefix: &str,
    next_hop_type: &str,
    name: Option<&str>,
) -> Option<(String, String)> {
    let mut hits = Vec::new();
    for t in tables {
        for r in &t.routes {
            let same_prefix = r.address_prefix.as_deref() == Some(prefix);
            let same_hop = r.next_hop_type.eq_ignore_ascii_case(next_hop_type);
            let same_name = name.is_none_or(|n| n == r.name);
            if same_prefix && same_hop && same_name {
                hits.push((t.name.clone(), r.name.clone()));
            }
        }
    }
    if hits.len() == 1 {
        hits.pop()
    } else {
        None
    }
}

fn route_finding(vm: &str, v: &RouteVerdict, tables: &[AzRouteTable], rg: &str) -> Option<Finding> {
    if v.result == RouteResult::NoRoute {
        return Some(
            Finding::new(
                Layer::Route,
                Some(vm),
                "route_missing",
                format!("routes of {vm} to {}", v.destination),
                format!(
                    "no active effective route of {vm} contains {}",
                    v.destination
                ),
                "without a route Azure drops the traffic at the source NIC".to_string(),
                Severity::High,
            )
            .attr("address", v.destination.clone()),
        );
    }
    let w = v.winning_route.as_ref()?;
    let (kind, anomaly) = if let Some(a) = v
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::Blackhole)
    {
        ("route_blackhole", a)
    } else if let Some(a) = v
        .anomalies
        .iter()
        .find(|a| a.kind == AnomalyKind::Nva && a.answers == Some(false))
    {
        ("route_nva", a)
    } else {
        return None;
    };
    Some(udr_finding(
        vm,
        kind,
        w,
        Some(&v.destination),
        anomaly.message.clone(),
        tables,
        rg,
    ))
}

/// A `route_blackhole` / `route_nva` finding for the route `w` of `vm`'s NIC, with the route
/// table and route named from `tables` when the route is a UDR found there (then the
/// remediation is the exact inverse: deleting that route). `address` is the destination a
/// verdict was asked for (None in an audit).
fn udr_finding(
    vm: &str,
    kind: &str,
    w: &RouteView,
    address: Option<&str>,
    summary: String,
    tables: &[AzRouteTable],
    rg: &str,
) -> Finding {
    let located = if w.source.eq_ignore_ascii_case("User") {
        locate_udr(tables, &w.prefix, &w.next_hop_type, w.name.as_deref())
    } else {
        None
    };
    let route_name = located
        .as_ref()
        .map(|l| l.1.clone())
        .or_else(|| w.name.clone());
    let component = match (&located, &route_name) {
        (Some((t, r)), _) => format!("{t}/{r}"),
        (None, Some(r)) => format!("route {r} ({})", w.prefix),
        (None, None) => format!("route {} via {}", w.prefix, w.next_hop_type),
    };
    let next_hop = w
        .next_hop_ip
        .clone()
        .unwrap_or_else(|| w.next_hop_type.clone());
    let what = match address {
        Some(a) => format!("the winning route {} ({}) for {a}", w.prefix, w.source),
        None => format!("the route {} ({})", w.prefix, w.source),
    };
    let mechanism = if kind == "route_blackhole" {
        format!("{what} has next hop None, so Azure drops every packet it carries at {vm}'s NIC")
    } else {
        format!(
            "{what} sends traffic to the virtual appliance {next_hop}, which is no NIC in the resource group: packets are lost"
        )
    };
    let verify = match address {
        Some(a) => format!(
            "inspect_routes {{\"vm\": \"{vm}\", \"address\": \"{a}\"}} again: the winning route must not be None or a dead appliance"
        ),
        None => format!(
            "inspect_routes {{\"vm\": \"{vm}\", \"mode\": \"audit\"}} again: the route must be gone"
        ),
    };
    let mut f = Finding::new(
        Layer::Route,
        Some(vm),
        kind,
        component,
        summary,
        mechanism,
        Severity::High,
    )
    .attr("prefix", w.prefix.clone())
    .attr("next_hop", next_hop)
    .attr("next_hop_type", w.next_hop_type.clone())
    .attr("source", w.source.clone());
    if let Some(a) = address {
        f = f.attr("address", a);
    }
    if let Some(r) = &route_name {
        f = f.attr("route", r.clone()).attr("rule", r.clone());
    }
    if let Some((t, _)) = &located {
        f = f.attr("route_table", t.clone());
    }
    if let Some((t, r)) = located {
        f = f.with_remediation(Remediation {
            command: format!(
                "az network route-table route delete -g {rg} --route-table-name {t} -n {r}"
            ),
            run_on: "az".into(),
            explanation: format!(
                "deletes the user-defined route {r} ({}) from {t}, so the system routes decide again",
                w.prefix
            ),
            verify,
        });
    }
    f
}

/// The `inspect_routes` audit of `vm`'s NIC: every route with next hop None and every
/// virtual-appliance route whose next hop is no known NIC address, whatever destination
/// (e.g. a default route to a dead appliance that cuts the Internet off).
pub fn route_audit(
    vm: &VmNet,
    known: Option<&HashSet<IpAddr>>,
    tables: &[AzRouteTable],
    rg: &str,
) -> Result<ToolResult, String> {
    let table = RouteTable::new(&vm.nic.routes).map_err(|e| format!("routes of {}: {e}", vm.vm))?;
    let a = table.audit();
    let mut findings = Vec::new();
    // Azure's own `None` system routes (RFC 1918 / RFC 6598 ranges outside the VNet) are
    // how every VNet behaves, not a fault: only user-defined and BGP blackholes are findings.
    for b in a.blackholes.iter().filter(|b| {
        effective_network_inspector::route::SourceKind::of(&b.source)
            != effective_network_inspector::route::SourceKind::Default
    }) {
        findings.push(udr_finding(
            &vm.vm,
            "route_blackhole",
            b,
            None,
            format!(
                "route {} ({}) of {} has next hop None: traffic to it is dropped",
                b.prefix, b.source, vm.vm
            ),
            tables,
            rg,
        ));
    }
    let mut nva = Vec::new();
    for n in &a.nva_routes {
        let hop = n.next_hop_ip.clone().unwrap_or_default();
        let alive = known.map(|k| {
            hop.parse::<IpAddr>()
                .map(|ip| k.contains(&ip))
                .unwrap_or(false)
        });
        nva.push(json!({"prefix": n.prefix, "next_hop": hop, "known_nic": alive}));
        if alive == Some(false) {
            findings.push(udr_finding(
                &vm.vm,
                "route_nva",
                n,
                None,
                format!(
                    "route {} ({}) of {} goes to the virtual appliance {hop}, which is no NIC of the resource group",
                    n.prefix, n.source, vm.vm
                ),
                tables,
                rg,
            ));
        }
    }
    let summary = json!({
        "mode": "audit",
        "vm": vm.vm,
        "nic": vm.nic.name,
        "routes": a.route_count,
        "default_routes": a.default_routes.iter().map(|d| json!({
            "prefix": d.prefix,
            "next_hop_type": d.winner.as_ref().map(|w| w.next_hop_type.clone()),
            "next_hop": d.winner.as_ref().and_then(|w| w.next_hop_ip.clone()),
            "source": d.source,
        })).collect::<Vec<_>>(),
        "blackholes": a.blackholes.iter().map(|b| b.prefix.clone()).collect::<Vec<_>>(),
        "nva_routes": nva,
        "invalid_routes": a.invalid_routes.len(),
        "bgp_routes": a.bgp_routes.len(),
        "notes": if known.is_none() && !a.nva_routes.is_empty() {
            vec!["the resource group's NICs could not be listed, so whether the appliances exist was not checked"]
        } else {
            Vec::new()
        },
        "findings": findings.len(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        ..Default::default()
    })
}

/// The `inspect_routes` verdict of `vm`'s NIC for `addr`. `known` lists the addresses of
/// the resource group's NICs (a virtual appliance outside it is dead); `tables` are the
/// route tables, to name the route table and the exact inverse.
pub fn route_verdict(
    vm: &VmNet,
    addr: Addr,
    known: Option<&HashSet<IpAddr>>,
    tables: &[AzRouteTable],
    rg: &str,
) -> Result<ToolResult, String> {
    let table = RouteTable::new(&vm.nic.routes).map_err(|e| format!("routes of {}: {e}", vm.vm))?;
    let v = table.explain(addr, known);
    let findings: Vec<Finding> = route_finding(&vm.vm, &v, tables, rg).into_iter().collect();
    let mut notes = Vec::new();
    if known.is_none() && v.anomalies.iter().any(|a| a.kind == AnomalyKind::Nva) {
        notes.push("the resource group's NICs could not be listed, so whether the appliance exists was not checked".to_string());
    }
    let summary = json!({
        "vm": vm.vm,
        "nic": vm.nic.name,
        "address": v.destination,
        "result": v.result,
        "winning_route": v.winning_route.as_ref().map(|w| json!({
            "prefix": w.prefix, "next_hop_type": w.next_hop_type, "next_hop": w.next_hop_ip,
            "source": w.source, "name": w.name,
        })),
        "anomalies": v.anomalies.iter().map(|a| a.message.clone()).collect::<Vec<_>>(),
        "candidates": v.candidates_considered,
        "routes": vm.nic.routes.len(),
        "notes": notes,
        "findings": findings.len(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        coverage: vec![mark(Aspect::Routes, inspected())],
        ..Default::default()
    })
}

/// `inspect_routes`.
pub struct InspectRoutes;

impl Tool for InspectRoutes {
    fn name(&self) -> &'static str {
        "inspect_routes"
    }

    fn description(&self) -> &'static str {
        "Routes of a VM's NIC (default: the source VM). Mode verdict (default): the winning effective route for an address (default: the dest VM's private IP), with findings for next hop None (route_blackhole) or a virtual appliance that is no NIC (route_nva, dead appliance), naming the route table and route. Mode audit: every None route and every dead-appliance route of the table, whatever destination (e.g. a default route to a dead appliance)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["verdict", "audit"]},
                "vm": {"type": "string"},
                "address": {"type": "string", "description": "IPv4/IPv6 destination; default the dest VM's private IP"}
            },
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(self.name(), args, &["mode", "vm", "address"]).map_err(fail)?;
            let audit = match a.str("mode").map_err(fail)?.as_deref() {
                None | Some("verdict") => false,
                Some("audit") => true,
                Some(other) => {
                    return Err(fail(format!(
                        "inspect_routes: mode {other:?} is not verdict or audit"
                    )))
                }
            };
            let vm = a
                .str("vm")
                .map_err(fail)?
                .unwrap_or_else(|| ctx.source_vm());
            let rg = resource_group(ctx).map_err(fail)?;
            let address = a.str("address").map_err(fail)?;
            if audit && address.is_some() {
                return Err(fail(
                    "inspect_routes: an audit covers every destination; drop address or use mode verdict",
                ));
            }
            let addr = match address {
                Some(s) => Some(s.parse::<Addr>().map_err(|_| {
                    fail(format!(
                        "inspect_routes: address {s:?} is not an IP address"
                    ))
                })?),
                None => None,
            };
            let v = live_vm(ctx, &vm)?;
            let p = provider(ctx).map_err(fail)?;
            let known = known_addresses(p.as_ref(), &rg);
            let tables = p.route_table_list(&rg).unwrap_or_default();
            if audit {
                return route_audit(&v, known.as_ref(), &tables, &rg).map_err(fail);
            }
            let addr = match addr {
                Some(a) => a,
                None => match ctx.env.dest.private_ip {
                    Some(ip) => Addr::from_ip(IpAddr::V4(ip)),
                    None => live_vm(ctx, &ctx.dest_vm())?.ipv4().map_err(fail)?,
                },
            };
            route_verdict(&v, addr, known.as_ref(), &tables, &rg).map_err(fail)
        };
        run().unwrap_or_else(|e| *e)
    }
}

// ---------------------------------------------------------------------------------------
// Reachability trace.

/// The `trace_reachability` result from source to dest.
pub fn reachability(
    src: &VmNet,
    dst: &VmNet,
    spec: FlowSpec,
    known: Option<&HashSet<IpAddr>>,
    tables: &[AzRouteTable],
    rg: &str,
) -> Result<ToolResult, String> {
    let to = dst.ipv4()?;
    let snap = Snapshot::new("live", false, vec![src.nic.clone(), dst.nic.clone()]);
    let req = TraceRequest {
        from_nic: src.nic.name.clone(),
        src_ip: None,
        to,
        port: spec.port,
        src_port: None,
        proto: spec.proto,
    };
    let t = trace(&snap, None, &req, known).map_err(|e| format!("trace: {e}"))?;
    let mut findings = Vec::new();
    if t.result == TraceResult::Blocked {
        let code = t.blocking.as_ref().map(|b| b.code);
        for h in &t.hops {
            match (h.stage.as_str(), code) {
                (
                    "source_nsg_outbound",
                    Some(ReasonCode::NsgDenyNicOutbound | ReasonCode::NsgDenySubnetOutbound),
                ) => {
                    if let Ok(v) = serde_json::from_value::<NsgVerdict>(h.detail.clone()) {
                        findings.extend(deny_finding(&src.vm, &v, rg, "nsg_deny"));
                    }
                }
                (
                    "destination_nsg_inbound",
                    Some(ReasonCode::NsgDenyNicInbound | ReasonCode::NsgDenySubnetInbound),
                ) => {
                    if let Ok(v) = serde_json::from_value::<NsgVerdict>(h.detail.clone()) {
                        findings.extend(deny_finding(&dst.vm, &v, rg, "nsg_deny"));
                    }
                }
                (
                    "source_route",
                    Some(
                        ReasonCode::NoRoute
                        | ReasonCode::RouteBlackhole
                        | ReasonCode::NvaNotResponding,
                    ),
                ) => {
                    if let Ok(v) = serde_json::from_value::<RouteVerdict>(h.detail.clone()) {
                        findings.extend(route_finding(&src.vm, &v, tables, rg));
                    }
                }
                _ => {}
            }
        }
    }
    let stages: Vec<&str> = t.hops.iter().map(|h| h.stage.as_str()).collect();
    let nsg_decided = stages.contains(&"source_nsg_outbound")
        && (stages.contains(&"destination_nsg_inbound")
            || matches!(
                t.blocking.as_ref().map(|b| b.code),
                Some(ReasonCode::NsgDenyNicOutbound | ReasonCode::NsgDenySubnetOutbound)
            ));
    let mut coverage = Vec::new();
    if nsg_decided && t.result != TraceResult::Indeterminate {
        coverage.push(mark(Aspect::NsgForward, inspected()));
    }
    if stages.contains(&"source_route")
        && !matches!(
            t.blocking.as_ref().map(|b| b.code),
            Some(ReasonCode::RouteTieUnexpected | ReasonCode::NvaForwardingUnknown)
        )
    {
        coverage.push(mark(Aspect::Routes, inspected()));
    }
    let summary = json!({
        "result": t.result,
        "from": format!("{} {}", src.vm, t.src_ip),
        "to": format!("{} {}", dst.vm, t.destination),
        "protocol": t.proto.to_string(),
        "port": t.port,
        "hops": t.hops.iter().map(|h| json!({"stage": h.stage, "component": h.component, "verdict": h.verdict})).collect::<Vec<_>>(),
        "blocking": t.blocking.as_ref().map(|b| json!({"component": b.component, "code": b.code, "reason": b.reason})),
        "notes": t.notes,
        "findings": findings.len(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        coverage,
        ..Default::default()
    })
}

/// `trace_reachability`.
pub struct TraceReachability;

impl Tool for TraceReachability {
    fn name(&self) -> &'static str {
        "trace_reachability"
    }

    fn description(&self) -> &'static str {
        "Reachability trace from the source VM to the dest VM through the effective state: source NSGs outbound, the source NIC's route verdict, dest NSGs inbound; REACHABLE/BLOCKED/INDETERMINATE with an explanation code at the first blocking hop."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"type": "string", "enum": ["tcp", "udp", "icmp"]}
            },
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(self.name(), args, &["port", "protocol"]).map_err(fail)?;
            let spec = parse_flow(self.name(), &a).map_err(fail)?;
            let rg = resource_group(ctx).map_err(fail)?;
            let s = live_vm(ctx, &ctx.source_vm())?;
            let d = live_vm(ctx, &ctx.dest_vm())?;
            let p = provider(ctx).map_err(fail)?;
            let known = known_addresses(p.as_ref(), &rg);
            let tables = p.route_table_list(&rg).unwrap_or_default();
            reachability(&s, &d, spec, known.as_ref(), &tables, &rg).map_err(fail)
        };
        run().unwrap_or_else(|e| *e)
    }
}

// ---------------------------------------------------------------------------------------
// Baselines and drift.

fn artifact(store: &LocalStore, kind: &str, name: &str, sha: &str) -> ArtifactRef {
    ArtifactRef {
        kind: kind.to_string(),
        path: store.dir().join(name).display().to_string(),
        sha256: sha.to_string(),
    }
}

/// Stores `nics` (a VM's) as a baseline snapshot in `store`; returns the id and artifact.
pub fn store_baseline(
    store: &LocalStore,
    source: &str,
    nics: Vec<NicState>,
) -> Result<(SessionId, ArtifactRef), EniError> {
    let id = store::new_session(store, "eni", "snapshot", Utc::now())?;
    let (stored, _) = store::put(
        store,
        &id,
        "snapshot",
        Snapshot::new(source, true, nics),
        Utc::now(),
    )?;
    let a = artifact(store, "eni_snapshot", &stored.name, &stored.sha256);
    Ok((id, a))
}

fn rule_parts(key: &str) -> Option<(String, String, String, String)> {
    // `{gate}:{nsg}/{direction}/{rule name}` (the rule name may hold a slash).
    let (gate, rest) = key.split_once(':')?;
    let mut it = rest.splitn(3, '/');
    let nsg = it.next()?.to_string();
    let dir = it.next()?.to_string();
    let name = it.next()?.to_string();
    Some((gate.to_string(), nsg, dir, short_rule(&name).to_string()))
}

fn rule_port(v: &Value) -> Option<u16> {
    if let Some(p) = v.get("destination_port_range").and_then(Value::as_str) {
        if let Some(p) = single_port(p) {
            return Some(p);
        }
    }
    let ranges = v.get("destination_port_ranges")?.as_array()?;
    match ranges.as_slice() {
        [one] => one.as_str().and_then(single_port),
        _ => None,
    }
}

fn change_word(c: ChangeKind) -> &'static str {
    match c {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

fn drift_findings(vm: &str, d: &Diff, rg: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in &d.nics {
        for c in &n.changes {
            out.extend(change_findings(vm, &n.nic, c, d, rg));
        }
    }
    out
}

fn change_findings(vm: &str, nic: &str, c: &Change, d: &Diff, rg: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let word = change_word(c.change);
    let category = serde_json::to_value(c.category)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let now = c.after.as_ref().or(c.before.as_ref());
    let mut f = Finding::new(
        Layer::Drift,
        Some(vm),
        "drift",
        c.key.clone(),
        format!(
            "{} {word} on {nic} since baseline {}: {}",
            c.item, d.baseline.session_id, c.key
        ),
        format!(
            "the effective {} of {nic} differs from the SHA-256-verified baseline {} ({})",
            c.item, d.baseline.session_id, category
        ),
        Severity::Medium,
    )
    .attr("change", word)
    .attr("item", c.item.clone())
    .attr("category", category)
    .attr("nic", nic)
    .attr("baseline", d.baseline.session_id.clone())
    .attr("baseline_sha256", d.baseline.sha256.clone());
    if !c.fields.is_empty() {
        f = f.attr(
            "fields",
            c.fields.iter().map(|x| x.field.clone()).collect::<Vec<_>>(),
        );
    }
    let mut deny = None;
    if c.item == "rule" {
        if let Some((gate, nsg, dir, rule)) = rule_parts(&c.key) {
            f.component = format!("{nsg}/{rule}");
            f = f
                .attr("nsg", nsg.clone())
                .attr("rule", rule.clone())
                .attr("direction", dir.clone())
                .attr("gate", gate.clone());
            if let Some(v) = now {
                if let Some(p) = v.get("priority").and_then(Value::as_u64) {
                    f = f.attr("priority", p);
                }
                if let Some(p) = v.get("protocol").and_then(Value::as_str) {
                    f = f.attr("protocol", proto_attr(p));
                }
                if let Some(p) = rule_port(v) {
                    f = f.attr("port", p);
                }
                if let Some(a) = v.get("access").and_then(Value::as_str) {
                    f = f.attr("access", a);
                }
            }
            let is_deny = c
                .after
                .as_ref()
                .and_then(|v| v.get("access"))
                .and_then(Value::as_str)
                .is_some_and(|a| a.eq_ignore_ascii_case("deny"));
            let became_deny = match c.change {
                ChangeKind::Added => is_deny,
                ChangeKind::Changed => c.fields.iter().any(|x| x.field == "access") && is_deny,
                ChangeKind::Removed => false,
            };
            if c.change == ChangeKind::Added && !is_default_rule(&rule) {
                f = f.with_remediation(Remediation {
                    command: format!("az network nsg rule delete -g {rg} --nsg-name {nsg} -n {rule}"),
                    run_on: "az".into(),
                    explanation: format!("removes the rule {rule} added to {nsg} since the baseline"),
                    verify: format!(
                        "detect_effective_network_drift {{\"vm\": \"{vm}\", \"baseline_id\": \"{}\"}} again: the rule must be gone",
                        d.baseline.session_id
                    ),
                });
            }
            if became_deny {
                let mut nd = Finding::new(
                    Layer::Nsg,
                    Some(vm),
                    "nsg_deny",
                    format!("{nsg}/{rule}"),
                    format!(
                        "deny rule {rule} {word} in {nsg} ({gate} gate of {vm}) since baseline {}",
                        d.baseline.session_id
                    ),
                    format!(
                        "{rule} denies {} traffic that the baseline did not deny; it was not removed by any rollback",
                        dir.to_ascii_lowercase()
                    ),
                    Severity::High,
                )
                .attr("nsg", nsg.clone())
                .attr("rule", rule.clone())
                .attr("direction", dir.clone())
                .attr("gate", gate)
                .attr("baseline", d.baseline.session_id.clone());
                for k in ["priority", "protocol", "port"] {
                    if let Some(v) = f.attrs.get(k) {
                        nd.attrs.insert(k.to_string(), v.clone());
                    }
                }
                let verify = match f.attrs.get("port") {
                    Some(p) => {
                        format!("inspect_nsg {{\"port\": {p}}} again: the verdict must be ALLOW")
                    }
                    None => "inspect_nsg again: the verdict must be ALLOW".to_string(),
                };
                deny = Some(nd.with_remediation(Remediation {
                    command: format!(
                        "az network nsg rule delete -g {rg} --nsg-name {nsg} -n {rule}"
                    ),
                    run_on: "az".into(),
                    explanation: format!("deletes the deny rule {rule} from {nsg}"),
                    verify,
                }));
            }
        }
    } else if c.item == "route" {
        if let Some(v) = now {
            if let Some(p) = v.get("address_prefix").and_then(Value::as_array) {
                f = f.attr(
                    "prefix",
                    p.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            if let Some(h) = v.get("next_hop_type").and_then(Value::as_str) {
                f = f.attr("next_hop_type", h);
            }
            if let Some(n) = v.get("name").and_then(Value::as_str) {
                f = f.attr("route", n);
            }
        }
    }
    out.push(f);
    out.extend(deny);
    out
}

/// Compares `current` (a VM's NICs now) with the stored baseline `baseline_id` (verified),
/// stores the current snapshot and the diff, and turns every change into findings.
pub fn drift_against(
    store: &LocalStore,
    vm: &str,
    baseline_id: &str,
    current: Vec<NicState>,
    source: &str,
    rg: &str,
) -> Result<ToolResult, String> {
    let bid = SessionId::parse(baseline_id).map_err(|e| {
        format!("baseline id {baseline_id:?} is not a session id ({e}); give the id snapshot_effective_network returned")
    })?;
    let (base, bref) = store::load_snapshot(store, &bid).map_err(|e| {
        format!(
            "baseline {baseline_id} cannot be loaded from {}: {e}",
            store.dir().display()
        )
    })?;
    let names: Vec<String> = current.iter().map(|n| n.name.clone()).collect();
    if !base.nics.iter().any(|n| names.contains(&n.name)) {
        return Err(format!(
            "baseline {baseline_id} holds no NIC of {vm} (it has: {}; {vm} has: {}); give a baseline of {vm}",
            base.nics.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", "),
            names.join(", ")
        ));
    }
    // Only the VM's NICs are compared (a baseline of a whole VNet holds others).
    let base_vm = Snapshot::new(
        &base.source,
        base.is_baseline,
        base.nics
            .into_iter()
            .filter(|n| names.contains(&n.name))
            .collect(),
    );
    let cur_id =
        store::new_session(store, "eni", "snapshot", Utc::now()).map_err(|e| e.to_string())?;
    let (cstored, cart) = store::put(
        store,
        &cur_id,
        "snapshot",
        Snapshot::new(source, false, current),
        Utc::now(),
    )
    .map_err(|e| e.to_string())?;
    let cref = effective_network_inspector::snapshot::SnapshotRef {
        session_id: cur_id.to_string(),
        artifact: cstored.name.clone(),
        sha256: cstored.sha256.clone(),
    };
    let d = diff(&base_vm, &cart.body, bref, cref);
    let (dstored, _) =
        store::put(store, &cur_id, "diff", d.clone(), Utc::now()).map_err(|e| e.to_string())?;
    let findings = drift_findings(vm, &d, rg);
    let changes: Vec<String> = d
        .nics
        .iter()
        .flat_map(|n| {
            n.changes
                .iter()
                .map(move |c| format!("{} {} {}", change_word(c.change), c.item, c.key))
        })
        .collect();
    let n_changes = changes.len();
    let summary = json!({
        "vm": vm,
        "drift_detected": d.drift_detected,
        "baseline": {"id": d.baseline.session_id, "sha256": d.baseline.sha256, "verified": true},
        "current": {"id": d.current.session_id, "sha256": d.current.sha256},
        "by_category": d.summary,
        "changes": n_changes,
        "top_changes": changes.into_iter().take(10).collect::<Vec<_>>(),
    });
    Ok(ToolResult {
        ok: true,
        summary,
        findings,
        artifacts: vec![
            artifact(store, "eni_snapshot", &cstored.name, &cstored.sha256),
            artifact(store, "eni_diff", &dstored.name, &dstored.sha256),
        ],
        ..Default::default()
    })
}

fn vm_nics(ctx: &ToolContext, vm: &str) -> Result<(Vec<NicState>, String), Box<ToolResult>> {
    check_vm(vm).map_err(fail)?;
    let p = provider(ctx).map_err(fail)?;
    let rg = resource_group(ctx).map_err(fail)?;
    let src = LiveSource::new(p, Some(rg));
    let nics = src
        .collect(&Scope::Vm(vm.to_string()))
        .map_err(|e| eni_failure(&format!("reading the effective state of {vm}"), &e))?;
    Ok((nics, src.describe()))
}

/// `snapshot_effective_network`.
pub struct SnapshotEffectiveNetwork;

impl Tool for SnapshotEffectiveNetwork {
    fn name(&self) -> &'static str {
        "snapshot_effective_network"
    }

    fn description(&self) -> &'static str {
        "Takes a baseline of a VM's effective routes and NSG rules (SHA-256-verified artifact in the audit dir) and returns its id, for detect_effective_network_drift later."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {"vm": {"type": "string"}},
            "required": ["vm"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(self.name(), args, &["vm"]).map_err(fail)?;
            let vm = a
                .str("vm")
                .map_err(fail)?
                .ok_or_else(|| fail("snapshot_effective_network: vm is required"))?;
            let (nics, source) = vm_nics(ctx, &vm)?;
            let store = LocalStore::new(&ctx.env.audit_dir);
            let summary_nics: Vec<Value> = nics
                .iter()
                .map(|n| json!({"nic": n.name, "routes": n.routes.len(), "nsg_rules": n.nsgs.iter().map(|x| x.rules.len()).sum::<usize>()}))
                .collect();
            let (id, art) = store_baseline(&store, &source, nics)
                .map_err(|e| fail(format!("storing the baseline of {vm}: {e}")))?;
            let mut r = ToolResult::ok(json!({
                "vm": vm,
                "snapshot_id": id.to_string(),
                "sha256": art.sha256,
                "nics": summary_nics,
            }));
            r.artifacts.push(art);
            Ok(r)
        };
        run().unwrap_or_else(|e| *e)
    }
}

/// `detect_effective_network_drift`.
pub struct DetectEffectiveNetworkDrift;

impl Tool for DetectEffectiveNetworkDrift {
    fn name(&self) -> &'static str {
        "detect_effective_network_drift"
    }

    fn description(&self) -> &'static str {
        "Compares a VM's effective routes and NSG rules now with a baseline snapshot id (SHA-256 verified): one drift finding per added/removed/changed rule or route, an nsg_deny finding for an added deny rule; drift_detected false is a sign-off."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "vm": {"type": "string"},
                "baseline_id": {"type": "string", "description": "eni_… id from snapshot_effective_network"}
            },
            "required": ["vm", "baseline_id"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(self.name(), args, &["vm", "baseline_id"]).map_err(fail)?;
            let vm = a.str("vm").map_err(fail)?.unwrap_or_else(|| ctx.dest_vm());
            let bid = a
                .str("baseline_id")
                .map_err(fail)?
                .ok_or_else(|| fail("detect_effective_network_drift: baseline_id is required"))?;
            let rg = resource_group(ctx).map_err(fail)?;
            let (nics, source) = vm_nics(ctx, &vm)?;
            let store = LocalStore::new(&ctx.env.audit_dir);
            drift_against(&store, &vm, &bid, nics, &source, &rg).map_err(fail)
        };
        run().unwrap_or_else(|e| *e)
    }
}

#[cfg(test)]
#[path = "cloud_net_tests.rs"]
mod tests;
