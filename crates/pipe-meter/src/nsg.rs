//! The preflight NSG check: for every measurement port, the flow source → dest on TCP is
//! evaluated on the source NIC (outbound) and on the dest NIC (inbound), each through both
//! NSG gates (subnet and NIC), with effective-network-inspector's dual-gate evaluator over
//! the effective NSGs the cloud provider returns; and, with `--open-blocked-ports`
//! ([`check_and_open`]), an allow rule per denying gate, each removed again by the
//! [`OpenedRules`] guard when the run ends.

use std::net::{IpAddr, Ipv4Addr};

use cloud_provider::error::CloudError;
use cloud_provider::provider::CloudProvider;
use cloud_provider::provider::NsgRuleSpec;
use effective_network_inspector::net::Addr;
use effective_network_inspector::nsg::{Direction, FinalVerdict, Flow, NicNsgs, Proto};
use effective_network_inspector::state::{nsgs_from_effective, Gate as EniGate, NsgEntry};
use serde::Serialize;
use serde_json::{json, Value};

/// One VM as the NSG check needs it.
#[derive(Debug, Clone)]
pub struct VmRef<'a> {
    /// `source` or `dest`.
    pub role: &'a str,
    /// VM name in the cloud.
    pub name: &'a str,
    /// Its private IP.
    pub ip: Ipv4Addr,
}

/// The NSGs of one NIC: their entries (names, ids, gates) and the compiled evaluator.
struct NicView {
    nic: String,
    entries: Vec<NsgEntry>,
    nsgs: NicNsgs,
}

fn nic_nsgs(provider: &dyn CloudProvider, rg: &str, vm: &VmRef<'_>) -> Result<NicView, String> {
    let nics = provider
        .vm_nics(rg, vm.name)
        .map_err(|e| format!("cannot list the NICs of {} VM {}: {e}", vm.role, vm.name))?;
    let ip = vm.ip.to_string();
    let nic = nics
        .iter()
        .find(|n| n.private_ips().contains(&ip.as_str()))
        .or(nics.first())
        .ok_or_else(|| format!("{} VM {} has no NIC", vm.role, vm.name))?;
    let nic_rg = nic.resource_group.clone().unwrap_or_else(|| rg.to_string());
    let eff = provider
        .effective_nsgs(&nic_rg, &nic.name)
        .map_err(|e| format!("cannot read the effective NSGs of NIC {}: {e}", nic.name))?;
    let entries = nsgs_from_effective(&eff)
        .map_err(|e| format!("effective NSGs of NIC {}: {e}", nic.name))?;
    let compiled =
        NicNsgs::new(&entries).map_err(|e| format!("effective NSGs of NIC {}: {e}", nic.name))?;
    Ok(NicView {
        nic: nic.name.clone(),
        entries,
        nsgs: compiled,
    })
}

/// A port denied at one gate, with what is needed to open it there.
#[derive(Debug, Clone)]
struct Denial {
    port: u16,
    direction: Direction,
    role: String,
    gate: EniGate,
    nsg: String,
    nsg_rg: String,
    /// The deny rule that decided (name, priority), when one did.
    deny: Option<(String, u32)>,
    /// Priorities already used in that NSG and direction.
    used: Vec<u32>,
}

struct Evaluation {
    verdicts: Vec<Value>,
    blocked: Vec<u16>,
    findings: Vec<String>,
    indeterminate: bool,
    denials: Vec<Denial>,
}

fn dir_str(d: Direction) -> &'static str {
    if d == Direction::Inbound {
        "inbound"
    } else {
        "outbound"
    }
}

/// The resource group named in an Azure resource id.
fn rg_of_id(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("resourceGroups") {
            return parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        }
    }
    None
}

fn evaluate(
    provider: &dyn CloudProvider,
    rg: &str,
    source: &VmRef<'_>,
    dest: &VmRef<'_>,
    ports: &[u16],
) -> Result<Evaluation, String> {
    let src = nic_nsgs(provider, rg, source)?;
    let dst = nic_nsgs(provider, rg, dest)?;
    let mut ev = Evaluation {
        verdicts: Vec::new(),
        blocked: Vec::new(),
        findings: Vec::new(),
        indeterminate: false,
        denials: Vec::new(),
    };
    for &port in ports {
        for (vm, view, direction) in [
            (source, &src, Direction::Outbound),
            (dest, &dst, Direction::Inbound),
        ] {
            let flow = Flow {
                direction,
                src: Addr::from_ip(IpAddr::V4(source.ip)),
                dst: Addr::from_ip(IpAddr::V4(dest.ip)),
                src_port: None,
                dst_port: Some(port),
                proto: Proto::Tcp,
            };
            let v = view.nsgs.evaluate(&flow);
            match v.final_verdict {
                FinalVerdict::Allow => {}
                FinalVerdict::Deny => {
                    if !ev.blocked.contains(&port) {
                        ev.blocked.push(port);
                    }
                    let rule = v
                        .decisive_rule
                        .as_ref()
                        .map(|r| format!("rule `{}` (priority {})", r.name, r.priority))
                        .unwrap_or_else(|| "no allowing rule".into());
                    let gate = v
                        .decisive_gate
                        .map(|g| format!("{g:?}").to_ascii_lowercase())
                        .unwrap_or_else(|| "?".into());
                    ev.findings.push(format!(
                        "TCP {port} from {} to {} is denied {} on the {} VM's {gate} NSG by {rule}",
                        source.ip,
                        dest.ip,
                        dir_str(direction),
                        vm.role
                    ));
                    if let Some(g) = v.decisive_gate {
                        let entry = view.entries.iter().find(|e| e.association == g);
                        let compiled = match g {
                            EniGate::Subnet => view.nsgs.subnet.as_ref(),
                            EniGate::Nic => view.nsgs.nic.as_ref(),
                        };
                        if let (Some(entry), Some(compiled)) = (entry, compiled) {
                            ev.denials.push(Denial {
                                port,
                                direction,
                                role: vm.role.to_string(),
                                gate: g,
                                nsg: entry.nsg.clone(),
                                nsg_rg: entry
                                    .nsg_id
                                    .as_deref()
                                    .and_then(rg_of_id)
                                    .unwrap_or_else(|| rg.to_string()),
                                deny: v
                                    .decisive_rule
                                    .as_ref()
                                    .map(|r| (r.name.clone(), r.priority)),
                                used: compiled
                                    .rules(direction)
                                    .iter()
                                    .map(|r| r.priority)
                                    .collect(),
                            });
                        }
                    }
                }
                FinalVerdict::Indeterminate => ev.indeterminate = true,
            }
            ev.verdicts.push(json!({
                "port": port, "vm": vm.role, "nic": view.nic,
                "direction": dir_str(direction),
                "verdict": v.final_verdict,
                "decisive_rule": v.decisive_rule.as_ref().map(|r| json!({"name": r.name, "priority": r.priority})),
                "decisive_gate": v.decisive_gate,
                "reason": v.reason,
            }));
        }
    }
    Ok(ev)
}

fn block(ev: &Evaluation, ports: &[u16]) -> Value {
    let ports_open = if !ev.blocked.is_empty() {
        json!(false)
    } else if ev.indeterminate {
        Value::Null
    } else {
        json!(true)
    };
    json!({
        "performed": true,
        "ports": ports,
        "ports_open": ports_open,
        "blocked_ports": ev.blocked,
        "verdicts": ev.verdicts,
        "findings": ev.findings,
    })
}

/// Evaluates every port for source outbound and dest inbound. Returns the block for the
/// preflight artifact: `performed`, `ports_open` (`null` when a verdict is indeterminate),
/// `blocked_ports`, `verdicts` and `findings` naming the deciding rule and its priority.
pub fn check(
    provider: &dyn CloudProvider,
    rg: &str,
    source: &VmRef<'_>,
    dest: &VmRef<'_>,
    ports: &[u16],
) -> Value {
    match evaluate(provider, rg, source, dest, ports) {
        Ok(ev) => block(&ev, ports),
        Err(e) => not_performed(&e, ports),
    }
}

/// Lowest priority number Azure accepts for a user rule.
pub const MIN_PRIORITY: u32 = 100;
/// Highest priority number Azure accepts for a user rule.
pub const MAX_PRIORITY: u32 = 4096;

/// The priority for an allow rule that must win over the deny at `deny_priority` (when
/// known): the highest free number strictly below it (so it overrides as little else as
/// possible), within 100..=4096. `None` when every number is taken.
pub fn free_priority(deny_priority: Option<u32>, used: &[u32]) -> Option<u32> {
    let upper = deny_priority
        .map(|p| p.saturating_sub(1))
        .unwrap_or(MAX_PRIORITY)
        .min(MAX_PRIORITY);
    (MIN_PRIORITY..=upper).rev().find(|p| !used.contains(p))
}

/// One allow rule pipe-meter created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenedRule {
    /// Resource group of the NSG.
    pub resource_group: String,
    /// The NSG.
    pub nsg: String,
    /// Its gate (`subnet` or `nic`).
    pub gate: String,
    /// Rule name (`pmeter-<session>-<port>`).
    pub name: String,
    /// Its priority.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// The port it opens.
    pub port: u16,
}

/// Every rule pipe-meter created in a run, removed again when the run ends (explicitly
/// with [`OpenedRules::remove_all`], or on drop: failure, interrupt, panic) unless the
/// operator asked to keep them.
pub struct OpenedRules<'a> {
    provider: Option<&'a dyn CloudProvider>,
    keep: bool,
    rules: Vec<OpenedRule>,
    done: bool,
}

impl std::fmt::Debug for OpenedRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedRules")
            .field("keep", &self.keep)
            .field("rules", &self.rules)
            .finish()
    }
}

impl<'a> OpenedRules<'a> {
    /// A guard with no rule yet.
    pub fn new(provider: Option<&'a dyn CloudProvider>, keep: bool) -> Self {
        OpenedRules {
            provider,
            keep,
            rules: Vec::new(),
            done: false,
        }
    }

    /// The rules created so far.
    pub fn rules(&self) -> &[OpenedRule] {
        &self.rules
    }

    /// Removes every created rule (once) and says what happened to each; with `keep`,
    /// removes nothing and says so.
    pub fn remove_all(&mut self) -> Vec<Value> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let Some(provider) = self.provider else {
            return Vec::new();
        };
        self.rules
            .iter()
            .map(|r| {
                if self.keep {
                    return json!({"rule": r, "removed": false, "reason": "kept (--keep-opened-rules)"});
                }
                match provider.nsg_rule_delete(
                    &r.resource_group,
                    &r.nsg,
                    &r.name,
                    "pipe-meter: remove the allow rule this run opened for its measurement",
                ) {
                    Ok(()) => json!({"rule": r, "removed": true}),
                    Err(e) => {
                        tracing::error!(rule = %r.name, nsg = %r.nsg, "could not remove the rule pipe-meter opened: {e}");
                        json!({"rule": r, "removed": false, "error": format!("could not remove rule {} from NSG {}: {e}; delete it by hand", r.name, r.nsg)})
                    }
                }
            })
            .collect()
    }
}

impl Drop for OpenedRules<'_> {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Why opening the blocked ports stopped the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The gate (operator or policy) refused to create a rule.
    #[error("opening TCP {port} was not approved: {reason}")]
    Denied {
        /// The port.
        port: u16,
        /// The gate's answer.
        reason: String,
    },
    /// No priority is free strictly above the deny.
    #[error("{0}")]
    NoFreePriority(String),
    /// Creating a rule or re-reading the NSGs failed.
    #[error("{0}")]
    Failed(String),
}

fn fail(
    ev: &Evaluation,
    ports: &[u16],
    opened: &OpenedRules<'_>,
    e: OpenError,
    actions: &[String],
) -> (OpenError, Value) {
    let mut b = block(ev, ports);
    b["actions_taken"] = json!(actions);
    b["opened"] = json!(opened.rules());
    (e, b)
}

/// The NSG check, then (when ports are denied) an allow rule on each gate that denied,
/// then the check again, until every port is allowed (at most four gates per port are in
/// the way). Returns the last check's block with `opened` and `actions_taken`. Rules go
/// into `opened` as soon as they exist, so the guard removes them whatever happens next.
pub fn check_and_open(
    provider: &dyn CloudProvider,
    rg: &str,
    source: &VmRef<'_>,
    dest: &VmRef<'_>,
    ports: &[u16],
    session: &str,
    opened: &mut OpenedRules<'_>,
) -> Result<Value, (OpenError, Value)> {
    let mut ev = match evaluate(provider, rg, source, dest, ports) {
        Ok(ev) => ev,
        Err(e) => return Ok(not_performed(&e, ports)),
    };
    let mut actions: Vec<String> = Vec::new();
    let mut initially_blocked = ev.blocked.clone();
    let mut first_findings = ev.findings.clone();
    for _round in 0..4 {
        if ev.denials.is_empty() {
            break;
        }
        for d in &ev.denials {
            let mut used = d.used.clone();
            used.extend(
                opened
                    .rules
                    .iter()
                    .filter(|r| {
                        r.nsg == d.nsg
                            && r.resource_group == d.nsg_rg
                            && r.direction.eq_ignore_ascii_case(dir_str(d.direction))
                    })
                    .map(|r| r.priority),
            );
            let Some(priority) = free_priority(d.deny.as_ref().map(|x| x.1), &used) else {
                let what = d
                    .deny
                    .as_ref()
                    .map(|(n, p)| format!("deny rule `{n}` (priority {p})"))
                    .unwrap_or_else(|| "the deny".into());
                return Err(fail(
                    &ev,
                    ports,
                    opened,
                    OpenError::NoFreePriority(format!(
                        "cannot open TCP {}: no free priority between {MIN_PRIORITY} and {what} in NSG {} ({} {}); free a priority there or open the port by hand",
                        d.port, d.nsg, d.role, dir_str(d.direction)
                    )),
                    &actions,
                ));
            };
            let mut name = format!("pmeter-{session}-{}", d.port);
            if opened
                .rules
                .iter()
                .any(|r| r.nsg == d.nsg && r.resource_group == d.nsg_rg && r.name == name)
            {
                name.push_str(if d.direction == Direction::Inbound {
                    "-in"
                } else {
                    "-out"
                });
            }
            let direction = if d.direction == Direction::Inbound {
                "Inbound"
            } else {
                "Outbound"
            };
            let spec = NsgRuleSpec {
                name: name.clone(),
                priority,
                direction: direction.into(),
                access: "Allow".into(),
                protocol: "Tcp".into(),
                source_address_prefixes: vec![format!("{}/32", source.ip)],
                source_port_ranges: vec!["*".into()],
                destination_address_prefixes: vec![format!("{}/32", dest.ip)],
                destination_port_ranges: vec![d.port.to_string()],
                description: Some(format!(
                    "pipe-meter session {session}: measurement port, removed at the end of the run"
                )),
            };
            let reasoning = format!(
                "pipe-meter preflight: TCP {} from {} to {} is denied {} by {} in NSG {}; allow it for the measurement (removed at the end of the run)",
                d.port,
                source.ip,
                dest.ip,
                dir_str(d.direction),
                d.deny
                    .as_ref()
                    .map(|(n, p)| format!("rule `{n}` (priority {p})"))
                    .unwrap_or_else(|| "no allowing rule".into()),
                d.nsg
            );
            match provider.nsg_rule_create(&d.nsg_rg, &d.nsg, &spec, &reasoning) {
                Ok(_) => {
                    opened.rules.push(OpenedRule {
                        resource_group: d.nsg_rg.clone(),
                        nsg: d.nsg.clone(),
                        gate: format!("{:?}", d.gate).to_ascii_lowercase(),
                        name: name.clone(),
                        priority,
                        direction: direction.into(),
                        port: d.port,
                    });
                    actions.push(format!(
                        "created allow rule {name} (priority {priority}, {direction}, TCP {}, {} → {}) in NSG {} on the {} VM's {:?} gate",
                        d.port, source.ip, dest.ip, d.nsg, d.role, d.gate
                    ));
                }
                Err(CloudError::Denied { reason, .. }) => {
                    return Err(fail(
                        &ev,
                        ports,
                        opened,
                        OpenError::Denied {
                            port: d.port,
                            reason,
                        },
                        &actions,
                    ))
                }
                Err(e) => {
                    return Err(fail(
                        &ev,
                        ports,
                        opened,
                        OpenError::Failed(format!(
                            "cannot create allow rule {name} in NSG {}: {e}",
                            d.nsg
                        )),
                        &actions,
                    ))
                }
            }
        }
        // Re-check the verdicts with the new rules.
        ev = match evaluate(provider, rg, source, dest, ports) {
            Ok(ev) => ev,
            Err(e) => {
                let mut b = not_performed(&e, ports);
                b["actions_taken"] = json!(actions);
                b["opened"] = json!(opened.rules());
                return Err((
                    OpenError::Failed(format!("cannot re-check the NSGs after opening: {e}")),
                    b,
                ));
            }
        };
        for p in &ev.blocked {
            if !initially_blocked.contains(p) {
                initially_blocked.push(*p);
            }
        }
        first_findings.extend(ev.findings.iter().cloned());
    }
    let mut b = block(&ev, ports);
    if !ev.denials.is_empty() {
        return Err((
            OpenError::Failed(format!(
                "port(s) {:?} are still denied after opening {} rule(s): {}",
                ev.blocked,
                opened.rules().len(),
                ev.findings.join("; ")
            )),
            b,
        ));
    }
    first_findings.dedup();
    b["blocked_ports"] = json!(initially_blocked);
    b["still_blocked"] = json!(ev.blocked);
    b["findings"] = json!(first_findings);
    b["actions_taken"] = json!(actions);
    b["opened"] = json!(opened.rules());
    Ok(b)
}

/// The block when the check could not run, saying why (never claiming it passed).
pub fn not_performed(reason: &str, ports: &[u16]) -> Value {
    json!({
        "performed": false,
        "reason": reason,
        "ports": ports,
        "ports_open": Value::Null,
        "blocked_ports": [],
        "findings": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_priority_is_the_highest_free_number_below_the_deny() {
        assert_eq!(free_priority(Some(200), &[]), Some(199));
        assert_eq!(free_priority(Some(200), &[199, 198]), Some(197));
        // A default rule (65500) is covered by anything a user can create.
        assert_eq!(free_priority(Some(65500), &[]), Some(4096));
        assert_eq!(free_priority(None, &[4096]), Some(4095));
        assert_eq!(free_priority(Some(100), &[]), None);
        assert_eq!(free_priority(Some(102), &[100, 101]), None);
        assert_eq!(free_priority(Some(101), &[]), Some(100));
    }

    #[test]
    fn resource_group_from_an_id() {
        assert_eq!(
            rg_of_id("/subscriptions/x/resourceGroups/rg-net/providers/Microsoft.Network/networkSecurityGroups/n"),
            Some("rg-net".into())
        );
        assert_eq!(rg_of_id("/subscriptions/x/resourcegroups/"), None);
        assert_eq!(rg_of_id("garbage"), None);
    }
}
