//! The preflight NSG check: for every measurement port, the flow source → dest on TCP is
//! evaluated on the source NIC (outbound) and on the dest NIC (inbound), each through both
//! NSG gates (subnet and NIC), with effective-network-inspector's dual-gate evaluator over
//! the effective NSGs the cloud provider returns.

use std::net::{IpAddr, Ipv4Addr};

use cloud_provider::provider::CloudProvider;
use effective_network_inspector::net::Addr;
use effective_network_inspector::nsg::{Direction, FinalVerdict, Flow, NicNsgs, Proto};
use effective_network_inspector::state::nsgs_from_effective;
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

fn nic_nsgs(
    provider: &dyn CloudProvider,
    rg: &str,
    vm: &VmRef<'_>,
) -> Result<(String, NicNsgs), String> {
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
    Ok((nic.name.clone(), compiled))
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
    let (src_nic, src) = match nic_nsgs(provider, rg, source) {
        Ok(x) => x,
        Err(e) => return not_performed(&e, ports),
    };
    let (dst_nic, dst) = match nic_nsgs(provider, rg, dest) {
        Ok(x) => x,
        Err(e) => return not_performed(&e, ports),
    };
    let mut verdicts = Vec::new();
    let mut blocked: Vec<u16> = Vec::new();
    let mut findings: Vec<String> = Vec::new();
    let mut indeterminate = false;
    for &port in ports {
        for (vm, nic, nsgs, direction) in [
            (source, &src_nic, &src, Direction::Outbound),
            (dest, &dst_nic, &dst, Direction::Inbound),
        ] {
            let flow = Flow {
                direction,
                src: Addr::from_ip(IpAddr::V4(source.ip)),
                dst: Addr::from_ip(IpAddr::V4(dest.ip)),
                src_port: None,
                dst_port: Some(port),
                proto: Proto::Tcp,
            };
            let v = nsgs.evaluate(&flow);
            match v.final_verdict {
                FinalVerdict::Allow => {}
                FinalVerdict::Deny => {
                    if !blocked.contains(&port) {
                        blocked.push(port);
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
                    findings.push(format!(
                        "TCP {port} from {} to {} is denied {} on the {} VM's {gate} NSG by {rule}",
                        source.ip,
                        dest.ip,
                        if direction == Direction::Inbound {
                            "inbound"
                        } else {
                            "outbound"
                        },
                        vm.role
                    ));
                }
                FinalVerdict::Indeterminate => indeterminate = true,
            }
            verdicts.push(json!({
                "port": port, "vm": vm.role, "nic": nic,
                "direction": if direction == Direction::Inbound { "inbound" } else { "outbound" },
                "verdict": v.final_verdict,
                "decisive_rule": v.decisive_rule.as_ref().map(|r| json!({"name": r.name, "priority": r.priority})),
                "decisive_gate": v.decisive_gate,
                "reason": v.reason,
            }));
        }
    }
    let ports_open = if !blocked.is_empty() {
        json!(false)
    } else if indeterminate {
        Value::Null
    } else {
        json!(true)
    };
    json!({
        "performed": true,
        "ports": ports,
        "ports_open": ports_open,
        "blocked_ports": blocked,
        "verdicts": verdicts,
        "findings": findings,
        "opened": [],
        "note": "pipe-meter does not open blocked ports yet; a blocked port shows as CONNECTIVITY_DROP in the measurement",
    })
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
