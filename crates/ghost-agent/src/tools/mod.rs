//! The tool registry: every tool the brains can call, as library calls into the other
//! crates. A tool takes JSON arguments and returns a [`ToolResult`]: a compact summary for
//! the brain, deterministic findings, the coverage it provides, artifacts by path and hash.
//! The engine ([`crate::engine`]) audits every call and adds its audit id as evidence.
//!
//! Tools over the hosts: [`host`] (`run_shell`, `run_pipe_meter`, `inspect_os_layer`).
//! Tools over the control plane and captures: [`cloud`] (`inspect_nsg`, `inspect_routes`,
//! `trace_reachability`, `detect_effective_network_drift`, `capture_traffic`, `check_task`,
//! `cancel_task`, `cleanup_task`). Storage access from a VM: [`storage`]
//! (`inspect_storage_access`). `manage_hypotheses` and `complete_investigation` act on
//! the session and live in the engine.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cloud_provider::azure::AzureCli;
use cloud_provider::config::{Environment, Settings};
use cloud_provider::remote::RemoteRunner;
use cloud_provider::session::SessionId;
use safety_shell::Gate;
use serde_json::Value;

use crate::model::{Expectations, ToolResult};

pub mod cloud;
pub mod host;
pub mod nfqueue;
pub mod storage;

/// Everything a tool needs to act: the environment, the one gate, the cloud provider, how
/// each VM is reached, where artifacts go.
pub struct ToolContext {
    /// The resolved `config.env` environment (VM names, IPs, NSGs, resource group).
    pub env: Environment,
    /// The raw settings (for keys the environment does not type).
    pub settings: Settings,
    /// The gate every command passes (its audit log is the session's audit log).
    pub gate: Arc<Gate>,
    /// The control plane (`az` through the gate); None when not configured.
    pub azure: Option<Arc<AzureCli>>,
    /// How each VM (by name) is reached.
    pub remote: Arc<RemoteRunner>,
    /// The investigation's session id (`ghost_…`).
    pub session_id: SessionId,
    /// The session directory (`{audit_dir}/{session_id}`): every artifact goes here.
    pub session_dir: PathBuf,
    /// Expectations for measurements without a baseline.
    pub expectations: Expectations,
    /// Set by Ctrl-C: long tools stop early.
    pub cancel: Arc<AtomicBool>,
}

impl ToolContext {
    /// The source VM's name (`SOURCE_VM_NAME`, default `source-vm`).
    pub fn source_vm(&self) -> String {
        self.env
            .source
            .name
            .clone()
            .unwrap_or_else(|| "source-vm".into())
    }

    /// The destination VM's name (`DEST_VM_NAME`, default `dest-vm`).
    pub fn dest_vm(&self) -> String {
        self.env
            .dest
            .name
            .clone()
            .unwrap_or_else(|| "dest-vm".into())
    }
}

/// A documentation address (RFC 5737 TEST-NET-3) standing for "the internet" when nothing
/// better is known: outside every private and VNet range, so Azure's system route
/// `0.0.0.0/0` and the NSG `Internet` tag decide it. Only evaluated, never sent to.
pub const DEFAULT_INTERNET_PROBE_IP: &str = "203.0.113.10";

/// The address an internet complaint's probes are evaluated toward: `INTERNET_PROBE_IP`
/// from the configuration (netlab's config.env names its internet host), else the first
/// address the symptom names that is neither VM's, else [`DEFAULT_INTERNET_PROBE_IP`].
pub fn internet_address(ctx: &ToolContext, symptom_addresses: &[String]) -> String {
    if let Some(ip) = ctx
        .settings
        .get("INTERNET_PROBE_IP")
        .filter(|v| v.trim().parse::<std::net::IpAddr>().is_ok())
    {
        return ip.trim().to_string();
    }
    let vm_ips: Vec<String> = [&ctx.env.source, &ctx.env.dest]
        .iter()
        .flat_map(|v| [v.private_ip, v.public_ip])
        .flatten()
        .map(|ip| ip.to_string())
        .collect();
    symptom_addresses
        .iter()
        .find(|a| !vm_ips.contains(a) && a.parse::<std::net::IpAddr>().is_ok())
        .cloned()
        .unwrap_or_else(|| DEFAULT_INTERNET_PROBE_IP.to_string())
}

/// One tool.
pub trait Tool: Send + Sync {
    /// Its name (what the brain calls).
    fn name(&self) -> &'static str;
    /// What it does and when to use it (shown to LLM brains).
    fn description(&self) -> &'static str;
    /// JSON Schema of its arguments.
    fn input_schema(&self) -> Value;
    /// Runs it. Never panics; failures are a [`ToolResult`] with `ok: false`.
    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult;
}

/// Every tool over the other crates, in a stable order.
pub fn all_tools() -> Vec<Box<dyn Tool>> {
    let mut v = host::tools();
    v.extend(cloud::tools());
    v.extend(storage::tools());
    v
}
