//! [`AzureCli`]: the [`CloudProvider`] over the `az` CLI, every call through the
//! safety-shell [`Gate`].
//!
//! Each call is `AZ ARGS… [--subscription S] --output json`, where `AZ` is
//! `Environment::az_path` (`AZ_PATH`: the real CLI, or the lab's `netlab az` front end). The
//! argument lists are built by the functions of [`args`], which the contract test feeds to
//! the real CLI's parser. Throttling (HTTP 429) is retried with exponential backoff and
//! jitter, honouring Retry-After, a bounded number of times; the sleeper and the random
//! source are injected so that tests take no time.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safety_shell::exec::{parse_run_command_output, RunCommandOutput};
use safety_shell::{ExecResult, Gate, Target};
use serde::de::DeserializeOwned;

use crate::config::Environment;
use crate::error::{classify_az_failure, CloudError};
use crate::models::{
    parse_effective_nsgs, parse_effective_routes, parse_list, parse_one, BlobItem, EffectiveNsg,
    EffectiveRoute, NetworkInterface, NetworkSecurityGroup, PacketCapture, PacketCaptureStatus,
    ResourceGroup, Route, RouteTable, SecurityRule, StorageAccount, StorageNetworkRules, Subnet,
    VirtualMachine, VmExtension,
};
use crate::provider::{
    AssociationChange, BlobLocation, CaptureSpec, CloudProvider, NsgRuleSpec, SubnetUpdate,
};

/// Argument lists (after `az`, before `--subscription`/`--output`) for every call the
/// provider makes. Values are checked by the callers ([`check_name`]) before they get here.
pub mod args {
    use super::*;

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    /// `vm show -g RG -n NAME`.
    pub fn vm_show(rg: &str, name: &str) -> Vec<String> {
        v(&["vm", "show", "--resource-group", rg, "--name", name])
    }
    /// `vm extension list -g RG --vm-name VM`.
    pub fn vm_extension_list(rg: &str, vm: &str) -> Vec<String> {
        v(&[
            "vm",
            "extension",
            "list",
            "--resource-group",
            rg,
            "--vm-name",
            vm,
        ])
    }
    /// `vm list -g RG`.
    pub fn vm_list(rg: &str) -> Vec<String> {
        v(&["vm", "list", "--resource-group", rg])
    }
    /// `network nic show`.
    pub fn nic_show(rg: &str, nic: &str) -> Vec<String> {
        v(&[
            "network",
            "nic",
            "show",
            "--resource-group",
            rg,
            "--name",
            nic,
        ])
    }
    /// `network nic list`.
    pub fn nic_list(rg: &str) -> Vec<String> {
        v(&["network", "nic", "list", "--resource-group", rg])
    }
    /// `network nic list` across the subscription.
    pub fn nic_list_all() -> Vec<String> {
        v(&["network", "nic", "list"])
    }
    /// `network nic list-effective-nsg`.
    pub fn effective_nsgs(rg: &str, nic: &str) -> Vec<String> {
        v(&[
            "network",
            "nic",
            "list-effective-nsg",
            "--resource-group",
            rg,
            "--name",
            nic,
        ])
    }
    /// `network nic show-effective-route-table`.
    pub fn effective_routes(rg: &str, nic: &str) -> Vec<String> {
        v(&[
            "network",
            "nic",
            "show-effective-route-table",
            "--resource-group",
            rg,
            "--name",
            nic,
        ])
    }
    /// `network nsg show`.
    pub fn nsg_show(rg: &str, nsg: &str) -> Vec<String> {
        v(&[
            "network",
            "nsg",
            "show",
            "--resource-group",
            rg,
            "--name",
            nsg,
        ])
    }
    /// `network nsg list`.
    pub fn nsg_list(rg: &str) -> Vec<String> {
        v(&["network", "nsg", "list", "--resource-group", rg])
    }
    /// `network nsg rule list [--include-default]`.
    pub fn nsg_rule_list(rg: &str, nsg: &str, include_default: bool) -> Vec<String> {
        let mut a = v(&[
            "network",
            "nsg",
            "rule",
            "list",
            "--resource-group",
            rg,
            "--nsg-name",
            nsg,
        ]);
        if include_default {
            a.push("--include-default".into());
        }
        a
    }
    /// `network nsg rule create`.
    pub fn nsg_rule_create(rg: &str, nsg: &str, r: &NsgRuleSpec) -> Vec<String> {
        let mut a = v(&[
            "network",
            "nsg",
            "rule",
            "create",
            "--resource-group",
            rg,
            "--nsg-name",
            nsg,
            "--name",
            &r.name,
        ]);
        let prio = r.priority.to_string();
        for (k, val) in [
            ("--priority", prio.as_str()),
            ("--direction", &r.direction),
            ("--access", &r.access),
            ("--protocol", &r.protocol),
        ] {
            a.push(k.into());
            a.push(val.into());
        }
        for (k, vals) in [
            ("--source-address-prefixes", &r.source_address_prefixes),
            ("--source-port-ranges", &r.source_port_ranges),
            (
                "--destination-address-prefixes",
                &r.destination_address_prefixes,
            ),
            ("--destination-port-ranges", &r.destination_port_ranges),
        ] {
            if !vals.is_empty() {
                a.push(k.into());
                a.extend(vals.iter().cloned());
            }
        }
        if let Some(d) = &r.description {
            a.push("--description".into());
            a.push(d.clone());
        }
        a
    }
    /// `network nsg rule delete`.
    pub fn nsg_rule_delete(rg: &str, nsg: &str, rule: &str) -> Vec<String> {
        v(&[
            "network",
            "nsg",
            "rule",
            "delete",
            "--resource-group",
            rg,
            "--nsg-name",
            nsg,
            "--name",
            rule,
        ])
    }
    /// `network route-table show`.
    pub fn route_table_show(rg: &str, name: &str) -> Vec<String> {
        v(&[
            "network",
            "route-table",
            "show",
            "--resource-group",
            rg,
            "--name",
            name,
        ])
    }
    /// `network route-table list`.
    pub fn route_table_list(rg: &str) -> Vec<String> {
        v(&["network", "route-table", "list", "--resource-group", rg])
    }
    /// `network route-table route list`.
    pub fn route_list(rg: &str, table: &str) -> Vec<String> {
        v(&[
            "network",
            "route-table",
            "route",
            "list",
            "--resource-group",
            rg,
            "--route-table-name",
            table,
        ])
    }
    /// `network vnet subnet show`.
    pub fn subnet_show(rg: &str, vnet: &str, name: &str) -> Vec<String> {
        v(&[
            "network",
            "vnet",
            "subnet",
            "show",
            "--resource-group",
            rg,
            "--vnet-name",
            vnet,
            "--name",
            name,
        ])
    }
    /// `network vnet subnet update` (`--network-security-group ""` / `--route-table ""`
    /// detach, as the az documentation describes; an empty `--service-endpoints` list is
    /// written as `--remove serviceEndpoints`).
    pub fn subnet_update(rg: &str, vnet: &str, name: &str, u: &SubnetUpdate) -> Vec<String> {
        let mut a = v(&[
            "network",
            "vnet",
            "subnet",
            "update",
            "--resource-group",
            rg,
            "--vnet-name",
            vnet,
            "--name",
            name,
        ]);
        for (flag, change) in [
            ("--network-security-group", &u.network_security_group),
            ("--route-table", &u.route_table),
        ] {
            match change {
                Some(AssociationChange::Set(x)) => {
                    a.push(flag.into());
                    a.push(x.clone());
                }
                Some(AssociationChange::Remove) => {
                    a.push(flag.into());
                    a.push(String::new());
                }
                None => {}
            }
        }
        match &u.service_endpoints {
            Some(list) if list.is_empty() => {
                a.push("--remove".into());
                a.push("serviceEndpoints".into());
            }
            Some(list) => {
                a.push("--service-endpoints".into());
                a.extend(list.iter().cloned());
            }
            None => {}
        }
        a
    }
    /// `vm run-command invoke --command-id RunShellScript --scripts SCRIPT`.
    pub fn run_command(rg: &str, vm: &str, script: &str) -> Vec<String> {
        v(&[
            "vm",
            "run-command",
            "invoke",
            "--resource-group",
            rg,
            "--name",
            vm,
            "--command-id",
            "RunShellScript",
            "--scripts",
            script,
        ])
    }
    /// `network watcher packet-capture create --resource-group RG --vm VM --name N …`.
    pub fn capture_create(s: &CaptureSpec) -> Vec<String> {
        let mut a = v(&[
            "network",
            "watcher",
            "packet-capture",
            "create",
            "--resource-group",
            &s.resource_group,
            "--vm",
            &s.vm,
            "--name",
            &s.name,
        ]);
        let opt = |a: &mut Vec<String>, k: &str, val: Option<String>| {
            if let Some(val) = val {
                a.push(k.into());
                a.push(val);
            }
        };
        opt(&mut a, "--storage-account", s.storage_account.clone());
        opt(&mut a, "--file-path", s.file_path.clone());
        opt(
            &mut a,
            "--time-limit",
            s.time_limit_secs.map(|x| x.to_string()),
        );
        opt(
            &mut a,
            "--capture-limit",
            s.capture_size_bytes.map(|x| x.to_string()),
        );
        opt(
            &mut a,
            "--capture-size",
            s.bytes_per_packet.map(|x| x.to_string()),
        );
        opt(&mut a, "--filters", s.filters_json.clone());
        a
    }
    fn capture(verb: &str, location: &str, name: &str) -> Vec<String> {
        v(&[
            "network",
            "watcher",
            "packet-capture",
            verb,
            "--location",
            location,
            "--name",
            name,
        ])
    }
    /// `network watcher packet-capture show --location L --name N`.
    pub fn capture_show(location: &str, name: &str) -> Vec<String> {
        capture("show", location, name)
    }
    /// `… show-status`.
    pub fn capture_status(location: &str, name: &str) -> Vec<String> {
        capture("show-status", location, name)
    }
    /// `… stop`.
    pub fn capture_stop(location: &str, name: &str) -> Vec<String> {
        capture("stop", location, name)
    }
    /// `… delete`.
    pub fn capture_delete(location: &str, name: &str) -> Vec<String> {
        capture("delete", location, name)
    }
    /// `… list --location L`.
    pub fn capture_list(location: &str) -> Vec<String> {
        v(&[
            "network",
            "watcher",
            "packet-capture",
            "list",
            "--location",
            location,
        ])
    }
    fn blob(verb: &str, at: &BlobLocation) -> Vec<String> {
        v(&[
            "storage",
            "blob",
            verb,
            "--account-name",
            &at.account,
            "--container-name",
            &at.container,
            "--auth-mode",
            at.auth.as_str(),
        ])
    }
    /// `storage blob upload … --name B --file F --overwrite`.
    pub fn blob_upload(at: &BlobLocation, name: &str, file: &Path) -> Vec<String> {
        let mut a = blob("upload", at);
        a.extend(v(&[
            "--name",
            name,
            "--file",
            &file.display().to_string(),
            "--overwrite",
        ]));
        a
    }
    /// `storage blob download … --name B --file F` (az overwrites the file by default).
    pub fn blob_download(at: &BlobLocation, name: &str, file: &Path) -> Vec<String> {
        let mut a = blob("download", at);
        a.extend(v(&["--name", name, "--file", &file.display().to_string()]));
        a
    }
    /// `storage blob list … --prefix P --num-results *` (every page).
    pub fn blob_list(at: &BlobLocation, prefix: &str) -> Vec<String> {
        let mut a = blob("list", at);
        if !prefix.is_empty() {
            a.push("--prefix".into());
            a.push(prefix.into());
        }
        a.push("--num-results".into());
        a.push("*".into());
        a
    }
    /// `storage blob show … --name B`.
    pub fn blob_show(at: &BlobLocation, name: &str) -> Vec<String> {
        let mut a = blob("show", at);
        a.extend(v(&["--name", name]));
        a
    }
    /// `storage blob delete … --name B`.
    pub fn blob_delete(at: &BlobLocation, name: &str) -> Vec<String> {
        let mut a = blob("delete", at);
        a.extend(v(&["--name", name]));
        a
    }
    /// `group show --name RG`.
    pub fn group_show(rg: &str) -> Vec<String> {
        v(&["group", "show", "--name", rg])
    }
    /// `storage account show -g RG -n NAME` (with its `networkRuleSet`).
    pub fn storage_account_show(rg: &str, name: &str) -> Vec<String> {
        v(&[
            "storage",
            "account",
            "show",
            "--resource-group",
            rg,
            "--name",
            name,
        ])
    }
    /// `storage account list -g RG`.
    pub fn storage_account_list(rg: &str) -> Vec<String> {
        v(&["storage", "account", "list", "--resource-group", rg])
    }
    /// `storage account network-rule list -g RG --account-name NAME`.
    pub fn storage_network_rule_list(rg: &str, account: &str) -> Vec<String> {
        v(&[
            "storage",
            "account",
            "network-rule",
            "list",
            "--resource-group",
            rg,
            "--account-name",
            account,
        ])
    }
}

/// Refuses a value that az would read as an option, or that holds control characters or
/// spaces (names of Azure resources never do).
pub fn check_name(what: &str, value: &str) -> Result<(), CloudError> {
    let bad = |message: &str| CloudError::InvalidArgument {
        what: what.to_string(),
        value: value.chars().take(80).collect(),
        message: message.to_string(),
    };
    if value.is_empty() {
        return Err(bad("it is empty"));
    }
    if value.starts_with('-') {
        return Err(bad("it starts with '-' and would be read as an option"));
    }
    if value.len() > 1024 || value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("it contains spaces or control characters"));
    }
    Ok(())
}

/// Waits between retries (the real one sleeps; tests record).
pub trait Sleeper: Send + Sync {
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// Sleeps the thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Retry of throttled calls: attempt `n` (1-based) waits `base × 2^(n-1)` capped at
/// `max_delay`, with "equal jitter" (a uniformly random half of it added to the other half),
/// and never less than Azure's Retry-After. A Retry-After longer than `max_delay`, or
/// `max_attempts` attempts, ends the retries with [`CloudError::Throttled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub max_attempts: u32,
    /// First delay.
    pub base: Duration,
    /// Longest single wait.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, given a uniform `jitter` in `[0, 1)` and
    /// Azure's Retry-After; `None` when the policy gives up.
    pub fn delay(
        &self,
        attempt: u32,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if retry_after.is_some_and(|r| r > self.max_delay) {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        let jittered = half + half.mul_f64(jitter.clamp(0.0, 1.0));
        Some(jittered.max(retry_after.unwrap_or(Duration::ZERO)))
    }
}

/// The Azure provider over the `az` CLI.
pub struct AzureCli {
    gate: Arc<Gate>,
    az: PathBuf,
    subscription: Option<String>,
    retry: RetryPolicy,
    sleeper: Arc<dyn Sleeper>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for AzureCli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureCli")
            .field("az", &self.az)
            .field("subscription", &self.subscription)
            .field("retry", &self.retry)
            .finish()
    }
}

/// What one successful az call gave.
#[derive(Debug, Clone)]
pub struct AzOutput {
    /// stdout (redacted by the gate).
    pub stdout: String,
    /// The audit record.
    pub audit_id: String,
}

impl AzureCli {
    /// A provider that runs `az` (a path, or a name looked up on PATH) through `gate`.
    pub fn new(gate: Arc<Gate>, az: impl Into<PathBuf>) -> Self {
        AzureCli {
            gate,
            az: az.into(),
            subscription: None,
            retry: RetryPolicy::default(),
            sleeper: Arc::new(ThreadSleeper),
            rng: Mutex::new(StdRng::from_entropy()),
        }
    }

    /// A provider configured from the environment (`AZ_PATH`, `SUBSCRIPTION_ID`).
    pub fn from_environment(gate: Arc<Gate>, env: &Environment) -> Self {
        let mut p = AzureCli::new(gate, env.az_path.clone());
        p.subscription = env.subscription_id.clone();
        p
    }

    /// Adds `--subscription` to every call.
    pub fn with_subscription(mut self, s: Option<String>) -> Self {
        self.subscription = s;
        self
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Replaces the sleeper (tests).
    pub fn with_sleeper(mut self, s: Arc<dyn Sleeper>) -> Self {
        self.sleeper = s;
        self
    }

    /// Seeds the jitter (tests, reproducible runs).
    pub fn with_rng_seed(self, seed: u64) -> Self {
        AzureCli {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    /// The gate.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// The az executable.
    pub fn az_path(&self) -> &Path {
        &self.az
    }

    /// The subscription passed to every call.
    pub fn subscription(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// The full argv: `AZ ARGS… [--subscription S] --output json`.
    pub fn full_argv(&self, args: &[String]) -> Vec<String> {
        let mut a = Vec::with_capacity(args.len() + 5);
        a.push(self.az.display().to_string());
        a.extend(args.iter().cloned());
        if let Some(s) = &self.subscription {
            a.push("--subscription".into());
            a.push(s.clone());
        }
        a.push("--output".into());
        a.push("json".into());
        a
    }

    /// Runs one az call through the gate, retrying throttled attempts. Returns stdout of a
    /// successful run; a failed run becomes a typed error.
    pub fn call(&self, args: &[String], reasoning: &str) -> Result<AzOutput, CloudError> {
        if let Some(s) = &self.subscription {
            check_name("subscription", s)?;
        }
        let argv = self.full_argv(args);
        let az = self.az.display().to_string();
        let mut attempt = 1u32;
        loop {
            let r: ExecResult = self
                .gate
                .run_argv(&Target::Local, &argv, reasoning)
                .map_err(|e| CloudError::from_gate(e, Some(&az)))?;
            if r.truncated.stdout {
                return Err(CloudError::OutputTruncated {
                    what: format!("az {}", args.iter().take(4).cloned().collect::<Vec<_>>().join(" ")),
                    detail: format!(
                        "az wrote {} bytes, more than the gate's output cap; raise the cap (ExecOptions::max_output_bytes) or narrow the query",
                        r.truncated.stdout_total_bytes
                    ),
                });
            }
            if r.success() {
                return Ok(AzOutput {
                    stdout: r.stdout,
                    audit_id: r.audit_id,
                });
            }
            if r.timed_out {
                return Err(CloudError::Failed {
                    exit_code: None,
                    message: format!("az timed out after {} ms", r.duration.as_millis()),
                });
            }
            match classify_az_failure(r.exit_code, &r.stderr) {
                CloudError::Throttled {
                    retry_after,
                    message,
                    ..
                } => {
                    let jitter: f64 = self
                        .rng
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .gen::<f64>();
                    match self.retry.delay(attempt, jitter, retry_after) {
                        Some(d) => {
                            tracing::warn!(
                                attempt,
                                delay_ms = d.as_millis() as u64,
                                "az throttled; retrying"
                            );
                            self.sleeper.sleep(d);
                            attempt += 1;
                        }
                        None => {
                            return Err(CloudError::Throttled {
                                attempts: attempt,
                                retry_after,
                                message,
                            })
                        }
                    }
                }
                CloudError::CliMissing { detail, .. } => {
                    return Err(CloudError::CliMissing { az, detail })
                }
                other => return Err(other),
            }
        }
    }

    fn read<T: DeserializeOwned>(
        &self,
        args: Vec<String>,
        what: &str,
        reasoning: &str,
    ) -> Result<T, CloudError> {
        let out = self.call(&args, reasoning)?;
        parse_one(&out.stdout, what).map_err(malformed)
    }

    fn read_list<T: DeserializeOwned>(
        &self,
        args: Vec<String>,
        what: &str,
        reasoning: &str,
    ) -> Result<Vec<T>, CloudError> {
        let out = self.call(&args, reasoning)?;
        parse_list(&out.stdout, what, &["value"]).map_err(malformed)
    }
}

fn malformed(e: crate::models::MalformedJson) -> CloudError {
    CloudError::Malformed {
        what: e.what,
        detail: e.detail,
    }
}

fn check_rg(rg: &str) -> Result<(), CloudError> {
    check_name("resource group", rg)
}

impl CloudProvider for AzureCli {
    fn name(&self) -> &'static str {
        "azure"
    }

    fn vm_show(&self, rg: &str, name: &str) -> Result<VirtualMachine, CloudError> {
        check_rg(rg)?;
        check_name("VM name", name)?;
        self.read(args::vm_show(rg, name), "VM", &format!("look up VM {name}"))
    }

    fn vm_extensions(&self, rg: &str, vm: &str) -> Result<Vec<VmExtension>, CloudError> {
        check_rg(rg)?;
        check_name("VM name", vm)?;
        self.read_list(
            args::vm_extension_list(rg, vm),
            "VM extension list",
            &format!("list the extensions of VM {vm}"),
        )
    }

    fn vm_list(&self, rg: &str) -> Result<Vec<VirtualMachine>, CloudError> {
        check_rg(rg)?;
        self.read_list(
            args::vm_list(rg),
            "VM list",
            &format!("list the VMs of {rg}"),
        )
    }

    fn vm_by_private_ip(&self, rg: &str, ip: Ipv4Addr) -> Result<VirtualMachine, CloudError> {
        let ip_s = ip.to_string();
        let nics = self.nic_list(rg)?;
        let nic = nics
            .iter()
            .find(|n| n.private_ips().contains(&ip_s.as_str()))
            .ok_or_else(|| CloudError::NotFound {
                message: format!("no NIC in resource group {rg} holds the private IP {ip}"),
            })?;
        let vm_ref = nic
            .virtual_machine
            .as_ref()
            .ok_or_else(|| CloudError::NotFound {
                message: format!("NIC {} holds {ip} but is not attached to a VM", nic.name),
            })?;
        let vm_rg = crate::models::resource_group_of(&vm_ref.id).unwrap_or_else(|| rg.to_string());
        self.vm_show(&vm_rg, vm_ref.name())
    }

    fn vm_nics(&self, rg: &str, vm: &str) -> Result<Vec<NetworkInterface>, CloudError> {
        let machine = self.vm_show(rg, vm)?;
        machine
            .network_profile
            .network_interfaces
            .iter()
            .map(|r| {
                let nic_rg = r.resource_group().unwrap_or_else(|| rg.to_string());
                self.nic_show(&nic_rg, r.name())
            })
            .collect()
    }

    fn nic_show(&self, rg: &str, nic: &str) -> Result<NetworkInterface, CloudError> {
        check_rg(rg)?;
        check_name("NIC name", nic)?;
        self.read(args::nic_show(rg, nic), "NIC", &format!("read NIC {nic}"))
    }

    fn nic_list(&self, rg: &str) -> Result<Vec<NetworkInterface>, CloudError> {
        check_rg(rg)?;
        self.read_list(
            args::nic_list(rg),
            "NIC list",
            &format!("list the NICs of {rg}"),
        )
    }

    fn nic_list_all(&self) -> Result<Vec<NetworkInterface>, CloudError> {
        self.read_list(
            args::nic_list_all(),
            "NIC list",
            "list every NIC of the subscription",
        )
    }

    fn effective_nsgs(&self, rg: &str, nic: &str) -> Result<Vec<EffectiveNsg>, CloudError> {
        check_rg(rg)?;
        check_name("NIC name", nic)?;
        let out = self.call(
            &args::effective_nsgs(rg, nic),
            &format!("read the effective NSG rules of NIC {nic}"),
        )?;
        parse_effective_nsgs(&out.stdout).map_err(malformed)
    }

    fn effective_routes(&self, rg: &str, nic: &str) -> Result<Vec<EffectiveRoute>, CloudError> {
        check_rg(rg)?;
        check_name("NIC name", nic)?;
        let out = self.call(
            &args::effective_routes(rg, nic),
            &format!("read the effective routes of NIC {nic}"),
        )?;
        parse_effective_routes(&out.stdout).map_err(malformed)
    }

    fn nsg_show(&self, rg: &str, nsg: &str) -> Result<NetworkSecurityGroup, CloudError> {
        check_rg(rg)?;
        check_name("NSG name", nsg)?;
        self.read(args::nsg_show(rg, nsg), "NSG", &format!("read NSG {nsg}"))
    }

    fn nsg_list(&self, rg: &str) -> Result<Vec<NetworkSecurityGroup>, CloudError> {
        check_rg(rg)?;
        self.read_list(
            args::nsg_list(rg),
            "NSG list",
            &format!("list the NSGs of {rg}"),
        )
    }

    fn nsg_rule_list(
        &self,
        rg: &str,
        nsg: &str,
        include_default: bool,
    ) -> Result<Vec<SecurityRule>, CloudError> {
        check_rg(rg)?;
        check_name("NSG name", nsg)?;
        let out = self.call(
            &args::nsg_rule_list(rg, nsg, include_default),
            &format!("list the rules of NSG {nsg}"),
        )?;
        // `--include-default` prints the user rules and the default rules as one list
        // (older CLI versions printed two lists in a list).
        let value: serde_json::Value =
            serde_json::from_str(&out.stdout).map_err(|e| CloudError::Malformed {
                what: "NSG rule list".into(),
                detail: format!("not JSON: {e}"),
            })?;
        let flat = match value {
            serde_json::Value::Array(items)
                if !items.is_empty() && items.iter().all(|i| i.is_array()) =>
            {
                serde_json::Value::Array(
                    items
                        .into_iter()
                        .flat_map(|i| match i {
                            serde_json::Value::Array(v) => v,
                            _ => Vec::new(),
                        })
                        .collect(),
                )
            }
            other => other,
        };
        parse_list(&flat.to_string(), "NSG rule list", &["value"]).map_err(malformed)
    }

    fn nsg_rule_create(
        &self,
        rg: &str,
        nsg: &str,
        rule: &NsgRuleSpec,
        reasoning: &str,
    ) -> Result<SecurityRule, CloudError> {
        check_rg(rg)?;
        check_name("NSG name", nsg)?;
        check_name("rule name", &rule.name)?;
        for (what, v) in [
            ("direction", &rule.direction),
            ("access", &rule.access),
            ("protocol", &rule.protocol),
        ] {
            check_name(what, v)?;
        }
        for v in rule
            .source_address_prefixes
            .iter()
            .chain(&rule.source_port_ranges)
            .chain(&rule.destination_address_prefixes)
            .chain(&rule.destination_port_ranges)
        {
            check_name("prefix or port range", v)?;
        }
        if !(100..=4096).contains(&rule.priority) {
            return Err(CloudError::InvalidArgument {
                what: "priority".into(),
                value: rule.priority.to_string(),
                message: "NSG rule priorities are 100-4096".into(),
            });
        }
        self.read(args::nsg_rule_create(rg, nsg, rule), "NSG rule", reasoning)
    }

    fn nsg_rule_delete(
        &self,
        rg: &str,
        nsg: &str,
        rule: &str,
        reasoning: &str,
    ) -> Result<(), CloudError> {
        check_rg(rg)?;
        check_name("NSG name", nsg)?;
        check_name("rule name", rule)?;
        self.call(&args::nsg_rule_delete(rg, nsg, rule), reasoning)
            .map(|_| ())
    }

    fn route_table_show(&self, rg: &str, name: &str) -> Result<RouteTable, CloudError> {
        check_rg(rg)?;
        check_name("route table name", name)?;
        self.read(
            args::route_table_show(rg, name),
            "route table",
            &format!("read route table {name}"),
        )
    }

    fn route_table_list(&self, rg: &str) -> Result<Vec<RouteTable>, CloudError> {
        check_rg(rg)?;
        self.read_list(
            args::route_table_list(rg),
            "route table list",
            &format!("list the route tables of {rg}"),
        )
    }

    fn route_list(&self, rg: &str, table: &str) -> Result<Vec<Route>, CloudError> {
        check_rg(rg)?;
        check_name("route table name", table)?;
        self.read_list(
            args::route_list(rg, table),
            "route list",
            &format!("list the routes of {table}"),
        )
    }

    fn subnet_show(&self, rg: &str, vnet: &str, name: &str) -> Result<Subnet, CloudError> {
        check_rg(rg)?;
        check_name("VNet name", vnet)?;
        check_name("subnet name", name)?;
        self.read(
            args::subnet_show(rg, vnet, name),
            "subnet",
            &format!("read subnet {vnet}/{name}"),
        )
    }

    fn subnet_update(
        &self,
        rg: &str,
        vnet: &str,
        name: &str,
        update: &SubnetUpdate,
        reasoning: &str,
    ) -> Result<Subnet, CloudError> {
        check_rg(rg)?;
        check_name("VNet name", vnet)?;
        check_name("subnet name", name)?;
        for c in [&update.network_security_group, &update.route_table]
            .into_iter()
            .flatten()
        {
            if let AssociationChange::Set(x) = c {
                check_name("associated resource", x)?;
            }
        }
        for s in update.service_endpoints.iter().flatten() {
            check_name("service endpoint", s)?;
        }
        if update == &SubnetUpdate::default() {
            return Err(CloudError::InvalidArgument {
                what: "subnet update".into(),
                value: String::new(),
                message: "nothing to change; set an NSG, a route table or service endpoints".into(),
            });
        }
        self.read(
            args::subnet_update(rg, vnet, name, update),
            "subnet",
            reasoning,
        )
    }

    fn run_command(
        &self,
        rg: &str,
        vm: &str,
        script: &str,
        reasoning: &str,
    ) -> Result<(RunCommandOutput, String), CloudError> {
        check_rg(rg)?;
        check_name("VM name", vm)?;
        if script.trim().is_empty() {
            return Err(CloudError::InvalidArgument {
                what: "script".into(),
                value: String::new(),
                message: "nothing to run".into(),
            });
        }
        let out = self.call(&args::run_command(rg, vm, script), reasoning)?;
        let rc = parse_run_command_output(&out.stdout).map_err(|e| CloudError::Malformed {
            what: "run-command result".into(),
            detail: e.to_string(),
        })?;
        Ok((rc, out.audit_id))
    }

    fn capture_create(
        &self,
        spec: &CaptureSpec,
        reasoning: &str,
    ) -> Result<PacketCapture, CloudError> {
        check_rg(&spec.resource_group)?;
        check_name("VM name", &spec.vm)?;
        check_name("capture name", &spec.name)?;
        if let Some(s) = &spec.storage_account {
            check_name("storage account", s)?;
        }
        if let Some(f) = &spec.file_path {
            check_name("capture file path", f)?;
        }
        if let Some(f) = &spec.filters_json {
            serde_json::from_str::<Vec<serde_json::Value>>(f).map_err(|e| {
                CloudError::InvalidArgument {
                    what: "capture filters".into(),
                    value: f.chars().take(80).collect(),
                    message: format!("expected a JSON array of filters: {e}"),
                }
            })?;
        }
        if spec.storage_account.is_none() && spec.file_path.is_none() {
            return Err(CloudError::InvalidArgument {
                what: "capture destination".into(),
                value: String::new(),
                message: "give a storage account or a file path on the VM".into(),
            });
        }
        self.read(args::capture_create(spec), "packet capture", reasoning)
    }

    fn capture_show(&self, location: &str, name: &str) -> Result<PacketCapture, CloudError> {
        check_name("location", location)?;
        check_name("capture name", name)?;
        self.read(
            args::capture_show(location, name),
            "packet capture",
            &format!("read packet capture {name}"),
        )
    }

    fn capture_status(
        &self,
        location: &str,
        name: &str,
    ) -> Result<PacketCaptureStatus, CloudError> {
        check_name("location", location)?;
        check_name("capture name", name)?;
        self.read(
            args::capture_status(location, name),
            "packet capture status",
            &format!("poll packet capture {name}"),
        )
    }

    fn capture_stop(&self, location: &str, name: &str, reasoning: &str) -> Result<(), CloudError> {
        check_name("location", location)?;
        check_name("capture name", name)?;
        self.call(&args::capture_stop(location, name), reasoning)
            .map(|_| ())
    }

    fn capture_delete(
        &self,
        location: &str,
        name: &str,
        reasoning: &str,
    ) -> Result<(), CloudError> {
        check_name("location", location)?;
        check_name("capture name", name)?;
        self.call(&args::capture_delete(location, name), reasoning)
            .map(|_| ())
    }

    fn capture_list(&self, location: &str) -> Result<Vec<PacketCapture>, CloudError> {
        check_name("location", location)?;
        self.read_list(
            args::capture_list(location),
            "packet capture list",
            &format!("list packet captures in {location}"),
        )
    }

    fn blob_upload(
        &self,
        at: &BlobLocation,
        blob: &str,
        file: &Path,
        reasoning: &str,
    ) -> Result<(), CloudError> {
        check_blob(at, blob)?;
        check_name("file", &file.display().to_string())?;
        self.call(&args::blob_upload(at, blob, file), reasoning)
            .map(|_| ())
    }

    fn blob_download(
        &self,
        at: &BlobLocation,
        blob: &str,
        file: &Path,
        reasoning: &str,
    ) -> Result<(), CloudError> {
        check_blob(at, blob)?;
        check_name("file", &file.display().to_string())?;
        self.call(&args::blob_download(at, blob, file), reasoning)
            .map(|_| ())
    }

    fn blob_list(&self, at: &BlobLocation, prefix: &str) -> Result<Vec<BlobItem>, CloudError> {
        check_blob(at, "x")?;
        if !prefix.is_empty() {
            check_name("blob prefix", prefix)?;
        }
        self.read_list(
            args::blob_list(at, prefix),
            "blob list",
            &format!("list blobs {prefix}* in {}/{}", at.account, at.container),
        )
    }

    fn blob_show(&self, at: &BlobLocation, blob: &str) -> Result<BlobItem, CloudError> {
        check_blob(at, blob)?;
        self.read(
            args::blob_show(at, blob),
            "blob",
            &format!("read the properties of blob {blob}"),
        )
    }

    fn blob_delete(
        &self,
        at: &BlobLocation,
        blob: &str,
        reasoning: &str,
    ) -> Result<(), CloudError> {
        check_blob(at, blob)?;
        self.call(&args::blob_delete(at, blob), reasoning)
            .map(|_| ())
    }

    fn resource_group_location(&self, rg: &str) -> Result<String, CloudError> {
        check_rg(rg)?;
        let g: ResourceGroup = self.read(
            args::group_show(rg),
            "resource group",
            &format!("read the region of resource group {rg}"),
        )?;
        Ok(g.location)
    }

    fn storage_account_show(&self, rg: &str, name: &str) -> Result<StorageAccount, CloudError> {
        check_rg(rg)?;
        check_name("storage account", name)?;
        self.read(
            args::storage_account_show(rg, name),
            "storage account",
            &format!("read storage account {name} and its firewall"),
        )
    }

    fn storage_account_list(&self, rg: &str) -> Result<Vec<StorageAccount>, CloudError> {
        check_rg(rg)?;
        self.read_list(
            args::storage_account_list(rg),
            "storage account list",
            &format!("list the storage accounts of {rg}"),
        )
    }

    fn storage_network_rule_list(
        &self,
        rg: &str,
        account: &str,
    ) -> Result<StorageNetworkRules, CloudError> {
        check_rg(rg)?;
        check_name("storage account", account)?;
        self.read(
            args::storage_network_rule_list(rg, account),
            "storage network rules",
            &format!("read the firewall rules of storage account {account}"),
        )
    }
}

fn check_blob(at: &BlobLocation, blob: &str) -> Result<(), CloudError> {
    check_name("storage account", &at.account)?;
    check_name("container", &at.container)?;
    check_name("blob name", blob)
}

#[cfg(test)]
mod storage_tests {
    //! The storage-account reads over a fake `az` behind the real gate (no approver: the
    //! reads must be SAFE cloud reads to run at all).
    use super::*;
    use safety_shell::audit::AuditLog;
    use safety_shell::exec::{ExecError, ExecOptions, Program, RawOutput, Truncation};
    use safety_shell::gate::Executor;

    type Seen = Arc<Mutex<Vec<Vec<String>>>>;

    struct Fake {
        seen: Seen,
        stdout: String,
    }

    impl Executor for Fake {
        fn execute(
            &self,
            _target: &Target,
            program: &Program,
            _opts: &ExecOptions,
        ) -> Result<RawOutput, ExecError> {
            if let Program::Argv(a) = program {
                self.seen.lock().unwrap().push(a.clone());
            }
            Ok(RawOutput {
                exit_code: Some(0),
                signal: None,
                timed_out: false,
                stdout: self.stdout.clone(),
                stderr: String::new(),
                duration: Duration::from_millis(1),
                truncation: Truncation {
                    stdout: false,
                    stderr: false,
                    stdout_total_bytes: self.stdout.len() as u64,
                    stderr_total_bytes: 0,
                },
            })
        }
    }

    fn cli(dir: &Path, stdout: &str) -> (AzureCli, Seen) {
        let seen: Seen = Arc::new(Mutex::new(Vec::new()));
        let log = AuditLog::open_in_dir(dir, "cptest_20261122T070000Z").unwrap();
        let gate = Gate::builder(log)
            .executor(Fake {
                seen: seen.clone(),
                stdout: stdout.to_string(),
            })
            .build();
        (AzureCli::new(Arc::new(gate), "az"), seen)
    }

    const ACCOUNT: &str = r#"{"name": "stapp01", "resourceGroup": "rg-app",
      "primaryEndpoints": {"blob": "https://stapp01.blob.core.windows.net/"},
      "networkRuleSet": {"bypass": "AzureServices", "defaultAction": "Deny", "ipRules": [],
        "virtualNetworkRules": [{"action": "Allow", "state": "Succeeded",
          "virtualNetworkResourceId": "/subscriptions/s/resourceGroups/rg-app/providers/Microsoft.Network/virtualNetworks/vnet-app/subnets/default"}]}}"#;

    #[test]
    fn storage_account_show_is_a_safe_read_with_the_documented_argv() {
        let dir = tempfile::tempdir().unwrap();
        let (az, seen) = cli(dir.path(), ACCOUNT);
        let a = az.storage_account_show("rg-app", "stapp01").unwrap();
        assert!(a.network_rule_set.unwrap().denies_by_default());
        let argv = seen.lock().unwrap()[0].clone();
        assert_eq!(
            argv,
            [
                "az",
                "storage",
                "account",
                "show",
                "--resource-group",
                "rg-app",
                "--name",
                "stapp01",
                "--output",
                "json"
            ]
        );
        // Hostile names never reach a command line.
        assert!(az.storage_account_show("rg-app", "--x").is_err());
        assert!(az.storage_account_show("rg app", "stapp01").is_err());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn storage_account_list_and_network_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (az, seen) = cli(dir.path(), &format!("[{ACCOUNT}]"));
        let list = az.storage_account_list("rg-app").unwrap();
        assert_eq!(list[0].name, "stapp01");
        let (az2, seen2) = cli(
            dir.path(),
            r#"{"ipRules": [], "virtualNetworkRules": [{"id": "/x/virtualNetworks/v/subnets/s", "action": "Allow"}]}"#,
        );
        let rules = az2.storage_network_rule_list("rg-app", "stapp01").unwrap();
        assert_eq!(rules.virtual_network_rules.len(), 1);
        assert_eq!(
            &seen.lock().unwrap()[0][1..4],
            ["storage", "account", "list"]
        );
        let argv = seen2.lock().unwrap()[0].clone();
        assert_eq!(&argv[1..5], ["storage", "account", "network-rule", "list"]);
        assert!(argv.contains(&"--account-name".to_string()));
        // Malformed output is an error, never an empty result.
        let (bad, _) = cli(dir.path(), "not json");
        assert!(matches!(
            bad.storage_account_show("rg-app", "stapp01"),
            Err(CloudError::Malformed { .. })
        ));
    }
}
