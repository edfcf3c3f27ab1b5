//! `inspect_storage_access`: can a VM reach a storage account through the account's
//! firewall? Both sides of the relationship are read and evaluated together:
//!
//! - the VM side: its NIC → the subnet (resource id, VNet, prefixes) → the subnet's
//!   service endpoints (`az network vnet subnet show`);
//! - the account side: `az storage account show` (the configured `STORAGE_ACCOUNT_NAME`, the
//!   `account` argument, or every account of the resource group) → `networkRuleSet`
//!   (default action, bypass, VNet rules, IP rules) and `publicNetworkAccess`.
//!
//! Azure's rule (and the lab blob service's): with default action `Deny`, a request from a
//! VNet passes only when a VNet rule names its subnet **and** the subnet has the
//! `Microsoft.Storage` (or `Microsoft.Storage.Global`) service endpoint; without the
//! endpoint the request leaves with the VM's public address, which no VNet rule matches.
//! Outcomes, each reported precisely:
//!
//! | account | subnet | verdict | finding |
//! |---|---|---|---|
//! | public network access `Disabled` | any | `denied_public_access_disabled` | `storage_public_access_disabled` |
//! | default `Allow` (or none) | any | `allowed_default_action` | none |
//! | `Deny`, VNet rule for the subnet | endpoint present | `allowed_by_vnet_rule` | none |
//! | `Deny`, VNet rule for the subnet | endpoint missing | `denied_missing_service_endpoint` | `missing_service_endpoint` |
//! | `Deny`, no VNet rule, an IP rule covers the VM's address | any | `allowed_by_ip_rule` | none |
//! | `Deny`, no VNet rule, no IP rule | any | `denied_no_vnet_rule` | `storage_vnet_rule_missing` |
//!
//! Each cause finding carries a remediation with the exact command: for a missing endpoint,
//! `az network vnet subnet update … --service-endpoints <every endpoint the subnet has>
//! Microsoft.Storage` (so no other endpoint is lost), then a verification.
//!
//! Optionally (`probe`, default true) a read-only request from the VM to the account's blob
//! endpoint (`curl -sS -o /dev/null -D - --max-time 10 URL`, a GET: SAFE for the gate)
//! confirms what the data plane does: `403` with `x-ms-error-code: AuthorizationFailure` is
//! the storage firewall refusing the VM.

use std::sync::Arc;

use cloud_provider::models::{
    resource_group_of, vnet_and_subnet_of, NetworkInterface, StorageAccount, Subnet,
};
use cloud_provider::provider::CloudProvider;
use serde_json::{json, Value};

use super::cloud::{check_vm, cloud_failure, fail, provider, resource_group, Args};
use super::{Tool, ToolContext};
use crate::model::{Finding, Layer, Remediation, Severity, ToolResult};

/// The service endpoint a storage VNet rule needs on the subnet.
pub const STORAGE_ENDPOINT: &str = "Microsoft.Storage";
/// The cross-region variant, which serves the same purpose.
pub const STORAGE_ENDPOINT_GLOBAL: &str = "Microsoft.Storage.Global";

/// Most storage accounts evaluated when they are listed (not named).
pub const MAX_ACCOUNTS: usize = 20;

/// The tools of this module.
pub fn tools() -> Vec<Box<dyn Tool>> {
    vec![Box::new(InspectStorageAccess)]
}

/// The VM side of the relationship: its NIC's subnet and that subnet's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSide {
    /// VM name.
    pub vm: String,
    /// The NIC's name.
    pub nic: String,
    /// The NIC's private IPv4 addresses.
    pub private_ips: Vec<String>,
    /// The subnet's resource id (as the NIC names it).
    pub subnet_id: String,
    /// The subnet's resource group.
    pub resource_group: String,
    /// VNet name.
    pub vnet: String,
    /// The subnet as `az network vnet subnet show` printed it.
    pub subnet: Subnet,
}

impl SubnetSide {
    /// The services of the subnet's endpoints, in the order Azure lists them.
    pub fn endpoint_services(&self) -> Vec<String> {
        self.subnet
            .service_endpoints
            .iter()
            .flatten()
            .map(|e| e.service.clone())
            .collect()
    }

    /// True when the subnet has a storage service endpoint (`Microsoft.Storage` or
    /// `Microsoft.Storage.Global`, case-insensitive) not being removed or failed.
    pub fn has_storage_endpoint(&self) -> bool {
        self.subnet.service_endpoints.iter().flatten().any(|e| {
            let s = e.service.trim();
            (s.eq_ignore_ascii_case(STORAGE_ENDPOINT)
                || s.eq_ignore_ascii_case(STORAGE_ENDPOINT_GLOBAL))
                && !e.provisioning_state.as_deref().is_some_and(|p| {
                    p.eq_ignore_ascii_case("deleting") || p.eq_ignore_ascii_case("failed")
                })
        })
    }

    /// `vnet/subnet`.
    pub fn component(&self) -> String {
        format!("{}/{}", self.vnet, self.subnet.name)
    }
}

/// What the firewall of one account decides for the subnet.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountVerdict {
    /// The verdict word (see the module table).
    pub verdict: &'static str,
    /// True when the account refuses the VM.
    pub denied: bool,
    /// The compact view for the summary.
    pub view: Value,
    /// Findings (causes carry a remediation).
    pub findings: Vec<Finding>,
}

/// True when `ip` lies in `range` (an address or CIDR prefix; the prefix arithmetic of
/// effective-network-inspector); anything unparsable is no match.
pub fn ipv4_in(ip: &str, range: &str) -> bool {
    use effective_network_inspector::net::{Addr, Prefix};
    match (ip.trim().parse::<Addr>(), range.trim().parse::<Prefix>()) {
        (Ok(a), Ok(p)) => p.contains(a),
        _ => false,
    }
}

/// The remediation that re-adds the storage endpoint while keeping every other endpoint the
/// subnet has (an `--service-endpoints` list replaces the subnet's whole list).
pub fn endpoint_remediation(side: &SubnetSide, vm: &str) -> Remediation {
    let mut list: Vec<String> = side
        .endpoint_services()
        .into_iter()
        .filter(|s| !s.eq_ignore_ascii_case(STORAGE_ENDPOINT))
        .collect();
    list.push(STORAGE_ENDPOINT.to_string());
    let kept = list.len() - 1;
    Remediation {
        command: format!(
            "az network vnet subnet update -g {} --vnet-name {} -n {} --service-endpoints {}",
            side.resource_group,
            side.vnet,
            side.subnet.name,
            list.join(" ")
        ),
        run_on: "az".into(),
        explanation: format!(
            "re-adds the {STORAGE_ENDPOINT} service endpoint to subnet {} and keeps its {kept} other endpoint(s) ({}), so the account's VNet rule for the subnet applies again",
            side.component(),
            if kept == 0 {
                "none".to_string()
            } else {
                list[..kept].join(", ")
            }
        ),
        verify: format!(
            "inspect_storage_access {{\"vm\": \"{vm}\"}} again: the verdict must be allowed_by_vnet_rule and the probe from {vm} no longer refused with 403 AuthorizationFailure (the subnet: az network vnet subnet show -g {} --vnet-name {} -n {} --query \"serviceEndpoints[].service\" must list {})",
            side.resource_group,
            side.vnet,
            side.subnet.name,
            list.join(", ")
        ),
    }
}

/// Evaluates one account's firewall for the VM's subnet. `named`: the account was named
/// (argument or `STORAGE_ACCOUNT_NAME`); a listed account that merely lacks a rule for the
/// subnet is context (low severity), not a cause.
pub fn evaluate(
    side: &SubnetSide,
    account: &StorageAccount,
    rg: &str,
    named: bool,
) -> AccountVerdict {
    let set = account.network_rule_set.clone().unwrap_or_default();
    let vm = side.vm.as_str();
    let rule = set.vnet_rule_for(&side.subnet_id);
    let endpoint = side.has_storage_endpoint();
    let ip_hit = set.ip_rules.iter().find(|r| {
        side.private_ips
            .iter()
            .any(|ip| ipv4_in(ip, &r.ip_address_or_range))
    });
    let mut view = json!({
        "account": account.name,
        "default_action": set.default_action.clone().unwrap_or_else(|| "Allow".into()),
        "bypass": set.bypass,
        "public_network_access": account.public_network_access,
        "vnet_rules": set.virtual_network_rules.len(),
        "ip_rules": set.ip_rules.len(),
        "vnet_rule_for_subnet": rule.map(|r| json!({"state": r.state, "action": r.action})),
        "subnet_has_storage_endpoint": endpoint,
    });
    let account_rg = account
        .resource_group
        .clone()
        .or_else(|| account.id.as_deref().and_then(resource_group_of))
        .unwrap_or_else(|| rg.to_string());
    let mut findings = Vec::new();
    let (verdict, denied) = if account.public_access_disabled() {
        findings.push(
            Finding::new(
                Layer::Storage,
                Some(vm),
                "storage_public_access_disabled",
                format!("storage account {}", account.name),
                format!(
                    "storage account {} has public network access Disabled: only private endpoints reach it, VNet and IP rules included",
                    account.name
                ),
                "with public network access disabled the account refuses every request through its public endpoint, whatever the firewall rules say",
                if named { Severity::High } else { Severity::Low },
            )
            .attr("account", account.name.clone())
            .with_remediation(Remediation {
                command: format!(
                    "az storage account update -g {account_rg} -n {} --public-network-access Enabled",
                    account.name
                ),
                run_on: "az".into(),
                explanation: "re-enables the public endpoint so the firewall rules (default action, VNet and IP rules) decide again; the alternative is a private endpoint in the VM's VNet".into(),
                verify: format!("inspect_storage_access {{\"vm\": \"{vm}\", \"account\": \"{}\"}} again: the verdict must no longer be denied_public_access_disabled", account.name),
            }),
        );
        ("denied_public_access_disabled", true)
    } else if !set.denies_by_default() {
        ("allowed_default_action", false)
    } else if let Some(r) = rule {
        if endpoint {
            ("allowed_by_vnet_rule", false)
        } else {
            let prefix = side.subnet.prefixes().join(",");
            let mut f = Finding::new(
                Layer::Storage,
                Some(vm),
                "missing_service_endpoint",
                side.component(),
                format!(
                    "subnet {} has no {STORAGE_ENDPOINT} service endpoint while storage account {} (default action Deny) allows the subnet only through a VNet rule",
                    side.component(),
                    account.name
                ),
                format!(
                    "without the endpoint, requests from {vm} reach the account from a public address, not from the subnet: the VNet rule for {} does not match, no IP rule does, and the default action Deny refuses them (403 AuthorizationFailure)",
                    side.component()
                ),
                if named { Severity::High } else { Severity::Medium },
            )
            .attr("rule", STORAGE_ENDPOINT)
            .attr("address", prefix)
            .attr("subnet", side.subnet.name.clone())
            .attr("vnet", side.vnet.clone())
            .attr("subnet_id", side.subnet_id.clone())
            .attr("account", account.name.clone())
            .attr("default_action", "Deny")
            .attr("endpoints", json!(side.endpoint_services()))
            .with_remediation(endpoint_remediation(side, vm));
            if let Some(state) = &r.state {
                f = f.attr("vnet_rule_state", state.clone());
            }
            findings.push(f);
            ("denied_missing_service_endpoint", true)
        }
    } else if let Some(ip) = ip_hit {
        view["ip_rule_match"] = json!(ip.ip_address_or_range);
        ("allowed_by_ip_rule", false)
    } else {
        let mut command = String::new();
        if !endpoint {
            command.push_str(&endpoint_remediation(side, vm).command);
            command.push_str(" && ");
        }
        command.push_str(&format!(
            "az storage account network-rule add -g {account_rg} --account-name {} --vnet-name {} --subnet {}",
            account.name, side.vnet, side.subnet.name
        ));
        findings.push(
            Finding::new(
                Layer::Storage,
                Some(vm),
                "storage_vnet_rule_missing",
                format!("storage account {}", account.name),
                format!(
                    "storage account {} (default action Deny) has no VNet rule for subnet {} and no IP rule for {vm}'s address",
                    account.name,
                    side.component()
                ),
                "the default action Deny refuses every request no rule matches, and none matches the VM",
                if named { Severity::High } else { Severity::Low },
            )
            .attr("account", account.name.clone())
            .attr("rule", "virtualNetworkRules")
            .attr("address", side.subnet.prefixes().join(","))
            .attr("subnet", side.subnet.name.clone())
            .attr("subnet_id", side.subnet_id.clone())
            .with_remediation(Remediation {
                command,
                run_on: "az".into(),
                explanation: format!(
                    "adds a VNet rule for subnet {} to the account{} (the rule only works while the subnet has the {STORAGE_ENDPOINT} endpoint)",
                    side.component(),
                    if endpoint { "" } else { ", after adding the subnet's storage endpoint" }
                ),
                verify: format!(
                    "inspect_storage_access {{\"vm\": \"{vm}\"}} again: the verdict must be allowed_by_vnet_rule (the rules: az storage account network-rule list -g {account_rg} --account-name {} must name the subnet)",
                    account.name
                ),
            }),
        );
        ("denied_no_vnet_rule", true)
    };
    view["verdict"] = json!(verdict);
    AccountVerdict {
        verdict,
        denied,
        view,
        findings,
    }
}

/// What a data-plane probe answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    /// HTTP status (None when no response came).
    pub status: Option<u16>,
    /// `x-ms-error-code`, when sent.
    pub error_code: Option<String>,
    /// `refused_by_firewall`, `passed_firewall`, `no_response` or `other`.
    pub verdict: &'static str,
}

/// Reads curl's `-D -` header dump (the last response's status line and
/// `x-ms-error-code`). Never panics; header values are clipped to a token.
pub fn parse_probe(stdout: &str) -> ProbeAnswer {
    let mut status = None;
    let mut code = None;
    for line in stdout.lines() {
        let line = line.trim();
        if line.starts_with("HTTP/") {
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok());
            code = None;
        } else if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("x-ms-error-code") {
                let token: String = v
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .take(64)
                    .collect();
                code = (!token.is_empty()).then_some(token);
            }
        }
    }
    let verdict = match (status, code.as_deref()) {
        (None, _) => "no_response",
        (Some(403), Some("AuthorizationFailure")) => "refused_by_firewall",
        // Past the firewall: the request was answered on its merits (existence, auth).
        (Some(s), _) if (200..300).contains(&s) || s == 404 || s == 409 => "passed_firewall",
        (Some(401), _) | (Some(403), Some("NoAuthenticationInformation")) => "passed_firewall",
        _ => "other",
    };
    ProbeAnswer {
        status,
        error_code: code,
        verdict,
    }
}

/// The probe URL: the blob endpoint with the container (Get Container Properties) or the
/// account (List Containers). Only URL-safe characters are accepted, so the quoted URL is
/// one shell word.
pub fn probe_url(blob_endpoint: &str, container: Option<&str>) -> Option<String> {
    let base = blob_endpoint.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://"))
        || base.len() > 200
        || !base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/".contains(c))
    {
        return None;
    }
    match container {
        Some(c)
            if !c.is_empty()
                && c.len() <= 63
                && c.chars()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '-') =>
        {
            Some(format!("{base}/{c}?restype=container"))
        }
        Some(_) => None,
        None => Some(format!("{base}/?comp=list")),
    }
}

/// The read-only probe command for `url`.
pub fn probe_command(url: &str) -> String {
    format!("curl -sS -o /dev/null -D - --max-time 10 '{url}'")
}

/// `inspect_storage_access`.
pub struct InspectStorageAccess;

/// Reads the VM side: NIC → subnet → endpoints.
pub fn read_subnet_side(
    p: &dyn CloudProvider,
    rg: &str,
    vm: &str,
    prefer_ip: Option<&str>,
) -> Result<SubnetSide, Box<ToolResult>> {
    let nics = p
        .vm_nics(rg, vm)
        .map_err(|e| Box::new(cloud_failure(&format!("reading the NICs of {vm}"), &e)))?;
    let pick = |n: &&NetworkInterface| prefer_ip.is_some_and(|ip| n.private_ips().contains(&ip));
    let nic = nics
        .iter()
        .find(pick)
        .or_else(|| nics.iter().find(|n| n.primary == Some(true)))
        .or_else(|| nics.first())
        .ok_or_else(|| fail(format!("VM {vm} has no NIC")))?;
    let cfg = nic
        .ip_configurations
        .iter()
        .filter(|c| c.subnet.is_some())
        .find(|c| c.primary == Some(true))
        .or_else(|| nic.ip_configurations.iter().find(|c| c.subnet.is_some()))
        .ok_or_else(|| fail(format!("NIC {} of {vm} names no subnet", nic.name)))?;
    let subnet_id = cfg
        .subnet
        .as_ref()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let (vnet, subnet_name) = vnet_and_subnet_of(&subnet_id).ok_or_else(|| {
        fail(format!(
            "NIC {} of {vm} names a subnet id that is not …/virtualNetworks/V/subnets/S: {}",
            nic.name,
            subnet_id.chars().take(200).collect::<String>()
        ))
    })?;
    let subnet_rg = resource_group_of(&subnet_id).unwrap_or_else(|| rg.to_string());
    let subnet = p
        .subnet_show(&subnet_rg, &vnet, &subnet_name)
        .map_err(|e| {
            Box::new(cloud_failure(
                &format!("reading subnet {vnet}/{subnet_name}"),
                &e,
            ))
        })?;
    Ok(SubnetSide {
        vm: vm.to_string(),
        nic: nic.name.clone(),
        private_ips: nic.private_ips().into_iter().map(str::to_string).collect(),
        subnet_id: subnet.id.clone().unwrap_or(subnet_id),
        resource_group: subnet_rg,
        vnet,
        subnet,
    })
}

fn configured_ip(ctx: &ToolContext, vm: &str) -> Option<String> {
    if vm == ctx.source_vm() {
        return ctx.env.source.private_ip.map(|i| i.to_string());
    }
    if vm == ctx.dest_vm() {
        return ctx.env.dest.private_ip.map(|i| i.to_string());
    }
    None
}

impl Tool for InspectStorageAccess {
    fn name(&self) -> &'static str {
        "inspect_storage_access"
    }

    fn description(&self) -> &'static str {
        "Storage account access from a VM, both sides of the relationship: the VM's subnet and its service endpoints, and the account's firewall (default action, VNet rules, IP rules, public network access). Names the deciding fact (e.g. default Deny + a VNet rule for the subnet + the subnet lost Microsoft.Storage → missing_service_endpoint) with a remediation that keeps the subnet's other endpoints; optionally probes the blob endpoint from the VM (read-only GET) to confirm a 403. Arguments: vm (required), account (default STORAGE_ACCOUNT_NAME, else every account of the resource group), probe (default true)."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "vm": {"type": "string", "description": "the VM that cannot reach storage"},
                "account": {"type": "string", "description": "storage account name (default STORAGE_ACCOUNT_NAME, else every account of the resource group)"},
                "probe": {"type": "boolean", "description": "also send a read-only request from the VM to the blob endpoint (default true)"}
            },
            "required": ["vm"],
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        let run = || -> Result<ToolResult, Box<ToolResult>> {
            let a = Args::new(self.name(), args, &["vm", "account", "probe"]).map_err(fail)?;
            let vm = a.str("vm").map_err(fail)?.ok_or_else(|| {
                fail("inspect_storage_access needs `vm`: the VM that cannot reach storage")
            })?;
            check_vm(&vm).map_err(fail)?;
            let account_arg = a.str("account").map_err(fail)?;
            if let Some(acc) = &account_arg {
                cloud_provider::azure::check_name("storage account", acc)
                    .map_err(|e| fail(e.to_string()))?;
            }
            let probe = a.bool("probe").map_err(fail)?.unwrap_or(true);
            let p = provider(ctx).map_err(fail)?;
            let rg = resource_group(ctx).map_err(fail)?;
            inspect(ctx, p, &rg, &vm, account_arg.as_deref(), probe)
        };
        run().unwrap_or_else(|e| *e)
    }
}

fn inspect(
    ctx: &ToolContext,
    p: Arc<dyn CloudProvider>,
    rg: &str,
    vm: &str,
    account_arg: Option<&str>,
    probe: bool,
) -> Result<ToolResult, Box<ToolResult>> {
    let side = read_subnet_side(p.as_ref(), rg, vm, configured_ip(ctx, vm).as_deref())?;
    let named = account_arg
        .map(str::to_string)
        .or_else(|| ctx.env.storage_account.clone());
    let accounts: Vec<StorageAccount> = match &named {
        Some(n) => vec![p
            .storage_account_show(rg, n)
            .map_err(|e| Box::new(cloud_failure(&format!("reading storage account {n}"), &e)))?],
        None => {
            let mut l = p.storage_account_list(rg).map_err(|e| {
                Box::new(cloud_failure(
                    &format!("listing the storage accounts of {rg}"),
                    &e,
                ))
            })?;
            l.truncate(MAX_ACCOUNTS);
            l
        }
    };
    let mut result = ToolResult::ok(Value::Null);
    let mut views = Vec::new();
    let mut denied = 0;
    for account in &accounts {
        let mut v = evaluate(&side, account, rg, named.is_some());
        if v.denied {
            denied += 1;
        }
        // The data-plane probe, for the named account or a listed one the firewall refuses.
        let probe_target = (named.is_some() || v.denied)
            .then(|| account.blob_endpoint())
            .flatten();
        if probe {
            match probe_target {
                Some(endpoint) => {
                    let container = (ctx.env.storage_account.as_deref()
                        == Some(account.name.as_str()))
                    .then(|| ctx.env.storage_container.clone())
                    .flatten();
                    match probe_url(endpoint, container.as_deref()) {
                        Some(url) => {
                            let cmd = probe_command(&url);
                            let view = match ctx.remote.run(
                                vm,
                                &cmd,
                                &format!(
                                    "read-only request from {vm} to storage account {}: does its firewall refuse the VM?",
                                    account.name
                                ),
                            ) {
                                Ok(out) => {
                                    let ans = parse_probe(&out.stdout);
                                    result.untrusted = true;
                                    if ans.verdict == "refused_by_firewall" {
                                        for f in v.findings.iter_mut() {
                                            f.attrs.insert(
                                                "measured".into(),
                                                json!("403 AuthorizationFailure from the VM"),
                                            );
                                        }
                                    }
                                    json!({"url": url, "status": ans.status, "error_code": ans.error_code,
                                           "verdict": ans.verdict, "audit_id": out.audit_id,
                                           "curl_error": (!out.success()).then(|| out.stderr.lines().next().unwrap_or("").chars().take(160).collect::<String>())})
                                }
                                Err(e) => {
                                    if let cloud_provider::error::CloudError::Denied {
                                        reason,
                                        audit_id,
                                    } = &e
                                    {
                                        result.denials.push(crate::model::Denial {
                                            command: cmd.clone(),
                                            reason: reason.clone(),
                                            audit_id: Some(audit_id.clone()),
                                        });
                                    }
                                    json!({"url": url, "verdict": "not_run", "error": e.to_string().chars().take(200).collect::<String>()})
                                }
                            };
                            // A refusal the control plane does not explain is reported, not
                            // dropped.
                            if !v.denied && view["verdict"] == "refused_by_firewall" {
                                v.findings.push(
                                    Finding::new(
                                        Layer::Storage,
                                        Some(vm),
                                        "storage_request_refused",
                                        format!("storage account {}", account.name),
                                        format!(
                                            "the storage firewall of {} refused a request from {vm} although its rules ({}) let the subnet through",
                                            account.name, v.verdict
                                        ),
                                        "the data plane disagrees with the control plane (a change still propagating, or a rule this tool does not read)",
                                        Severity::Medium,
                                    )
                                    .attr("account", account.name.clone()),
                                );
                            }
                            v.view["probe"] = view;
                        }
                        None => {
                            v.view["probe"] = json!({"verdict": "not_run", "error": "the blob endpoint or container name is not a plain URL"});
                        }
                    }
                }
                None if named.is_some() => {
                    v.view["probe"] =
                        json!({"verdict": "not_run", "error": "the account has no blob endpoint"});
                }
                None => {}
            }
        }
        views.push(v.view);
        result.findings.extend(v.findings);
    }
    let endpoints = side.endpoint_services();
    result.summary = json!({
        "vm": vm,
        "nic": side.nic,
        "subnet": {
            "id": side.subnet_id,
            "vnet": side.vnet,
            "name": side.subnet.name,
            "prefixes": side.subnet.prefixes(),
            "service_endpoints": endpoints,
            "has_storage_endpoint": side.has_storage_endpoint(),
        },
        "accounts_checked": accounts.len(),
        "accounts_denying": denied,
        "accounts": views,
        "verdict": if accounts.is_empty() {
            "no storage account found".to_string()
        } else if denied == 0 {
            format!("every checked account lets {vm} through")
        } else {
            format!("{denied} of {} account(s) refuse {vm}", accounts.len())
        },
    });
    Ok(result)
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
