//! Tools over the cloud control plane and packet captures, as library calls:
//!
//! - [`net`]: `inspect_nsg` (dual-gate verdicts both ways, or an audit of permissive rules),
//!   `inspect_routes` (route verdict with BLACKHOLE / dead-appliance findings),
//!   `trace_reachability` (routes + both NSG gates with explanation codes),
//!   `snapshot_effective_network` (a SHA-256-verified baseline of a VM's effective state) and
//!   `detect_effective_network_drift` (the VM now against such a baseline), all over
//!   effective-network-inspector's live source on `ctx.azure`;
//! - [`capture`]: `capture_traffic`, `check_task`, `cancel_task`, `cleanup_task` over
//!   cloud-orchestrator's Orchestrator, with pcap-forensics findings turned into wire
//!   findings; [`orphans`] lists captures earlier sessions left behind.
//!
//! Every tool validates its arguments (unknown keys and wrong types are refused with one
//! sentence), never panics, and returns compact summaries; large outputs are artifacts.

use std::collections::BTreeSet;
use std::sync::Arc;

use cloud_provider::error::CloudError;
use cloud_provider::provider::CloudProvider;
use serde_json::{Map, Value};

use super::{Tool, ToolContext};
use crate::model::{Denial, ToolResult};

#[path = "cloud_capture.rs"]
pub mod capture;
#[path = "cloud_net.rs"]
pub mod net;

pub use capture::{orphans, orphans_with, wire_findings};

/// The tools of this module.
pub fn tools() -> Vec<Box<dyn Tool>> {
    vec![
        Box::new(net::InspectNsg),
        Box::new(net::InspectRoutes),
        Box::new(net::TraceReachability),
        Box::new(net::SnapshotEffectiveNetwork),
        Box::new(net::DetectEffectiveNetworkDrift),
        Box::new(capture::CaptureTraffic),
        Box::new(capture::CheckTask),
        Box::new(capture::CancelTask),
        Box::new(capture::CleanupTask),
    ]
}

/// Validated tool arguments: an object whose keys are all known.
pub(crate) struct Args<'a> {
    tool: &'static str,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Args<'a> {
    /// Checks that `args` is an object (or null) holding only `allowed` keys.
    pub(crate) fn new(
        tool: &'static str,
        args: &'a Value,
        allowed: &[&str],
    ) -> Result<Args<'a>, String> {
        let map = match args {
            Value::Null => None,
            Value::Object(m) => Some(m),
            _ => return Err(format!("{tool} takes a JSON object of arguments")),
        };
        if let Some(m) = map {
            let unknown: Vec<&str> = m
                .keys()
                .map(String::as_str)
                .filter(|k| !allowed.contains(k))
                .collect();
            if !unknown.is_empty() {
                return Err(format!(
                    "{tool} does not take {}; its arguments are: {}",
                    unknown.join(", "),
                    allowed.join(", ")
                ));
            }
        }
        Ok(Args { tool, map })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub(crate) fn str(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => {
                Ok(Some(s.trim().to_string()))
            }
            Some(_) => Err(format!(
                "{}: {key} must be a non-empty string of at most 256 characters",
                self.tool
            )),
        }
    }

    /// An optional integer within `lo..=hi`.
    pub(crate) fn int(&self, key: &str, lo: u64, hi: u64) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse::<u64>().ok()));
                match n {
                    Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                    _ => Err(format!(
                        "{}: {key} must be an integer from {lo} to {hi}",
                        self.tool
                    )),
                }
            }
        }
    }

    /// An optional boolean.
    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{}: {key} must be true or false", self.tool)),
        }
    }

    /// An optional nested object, validated with its own allowed keys.
    pub(crate) fn object(&self, key: &str, allowed: &[&str]) -> Result<Option<Args<'a>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Args::new(self.tool, v, allowed).map(Some),
            Some(_) => Err(format!("{}: {key} must be an object", self.tool)),
        }
    }
}

/// Checks a VM (or other resource) name before it reaches a command line.
pub(crate) fn check_vm(vm: &str) -> Result<(), String> {
    cloud_provider::azure::check_name("VM name", vm).map_err(|e| e.to_string())
}

/// The control plane of the context, or why there is none.
pub(crate) fn provider(ctx: &ToolContext) -> Result<Arc<dyn CloudProvider>, String> {
    match &ctx.azure {
        Some(a) => Ok(a.clone() as Arc<dyn CloudProvider>),
        None => Err(
            "no control plane is configured (az); set AZ_PATH and RESOURCE_GROUP in config.env"
                .to_string(),
        ),
    }
}

/// The resource group of the context, or why there is none.
pub(crate) fn resource_group(ctx: &ToolContext) -> Result<String, String> {
    ctx.env
        .resource_group
        .clone()
        .ok_or_else(|| "RESOURCE_GROUP is not set; add it to config.env".to_string())
}

/// A failed result from a cloud error, with the gate's refusal recorded as a denial.
pub(crate) fn cloud_failure(context: &str, e: &CloudError) -> ToolResult {
    let mut r = ToolResult::failed(format!("{context}: {e}"));
    if let CloudError::Denied { reason, audit_id } = e {
        r.denials.push(Denial {
            command: context.to_string(),
            reason: reason.clone(),
            audit_id: Some(audit_id.clone()),
        });
    }
    r
}

/// A boxed failed result (tools build their results with `?` on `Result<_, Box<ToolResult>>`).
pub(crate) fn fail(error: impl Into<String>) -> Box<ToolResult> {
    Box::new(ToolResult::failed(error))
}

/// Protocol spelling for attrs (`tcp`, `udp`, `icmp`, `any`).
pub(crate) fn proto_attr(p: &str) -> String {
    match p.trim().to_ascii_lowercase().as_str() {
        "*" | "all" | "any" => "any".into(),
        other => other.to_string(),
    }
}

/// A single port from a port-range spelling (`5001`, `5001-5001`), if it is one port.
pub(crate) fn single_port(s: &str) -> Option<u16> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) if a.trim() == b.trim() => a.trim().parse().ok(),
        Some(_) => None,
        None => s.parse().ok(),
    }
}

/// Distinct strings in order.
pub(crate) fn dedup(v: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_are_validated() {
        let v = json!({"port": 5001, "protocol": "tcp"});
        let a = Args::new("t", &v, &["port", "protocol"]).unwrap();
        assert_eq!(a.int("port", 1, 65535).unwrap(), Some(5001));
        assert_eq!(a.str("protocol").unwrap().as_deref(), Some("tcp"));
        assert!(a.bool("protocol").is_err());
        let e = Args::new("t", &v, &["port"]).err().unwrap();
        assert!(e.contains("does not take protocol"), "{e}");
        assert!(Args::new("t", &json!([1]), &[]).is_err());
        let bad = json!({"port": 70000});
        let a = Args::new("t", &bad, &["port"]).unwrap();
        assert!(a.int("port", 1, 65535).is_err());
        assert!(Args::new("t", &Value::Null, &[]).is_ok());
    }

    #[test]
    fn ports_and_protocols_normalise() {
        assert_eq!(single_port("5001-5001"), Some(5001));
        assert_eq!(single_port("22"), Some(22));
        assert_eq!(single_port("8000-9000"), None);
        assert_eq!(single_port("*"), None);
        assert_eq!(proto_attr("Tcp"), "tcp");
        assert_eq!(proto_attr("*"), "any");
        assert!(check_vm("dest-vm").is_ok());
        assert!(check_vm("dest vm; rm -rf /").is_err());
    }

    /// A context without a control plane, in a temporary audit directory.
    fn offline_context(dir: &std::path::Path) -> ToolContext {
        use cloud_provider::config::{Environment, FlagOverrides, Settings};
        let mut vars = std::collections::BTreeMap::new();
        vars.insert("RESOURCE_GROUP".to_string(), "rg-ghost".to_string());
        vars.insert("AUDIT_DIR".to_string(), dir.display().to_string());
        let settings = Settings::from_parts(None, vars);
        let env = Environment::resolve(&settings, &FlagOverrides::default()).unwrap();
        let session = "ghost_20261122T000000Z";
        let log = safety_shell::audit::AuditLog::open_in_dir(dir, session).unwrap();
        let gate = Arc::new(
            safety_shell::Gate::builder(log)
                .approver(safety_shell::approve::NeverApprover)
                .build(),
        );
        ToolContext {
            session_dir: dir.join(session),
            env,
            settings,
            remote: Arc::new(cloud_provider::remote::RemoteRunner::new(
                gate.clone(),
                None,
            )),
            gate,
            azure: None,
            session_id: cloud_provider::session::SessionId::parse(session).unwrap(),
            expectations: Default::default(),
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    #[test]
    fn every_tool_validates_and_fails_in_one_sentence_without_a_control_plane() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = offline_context(dir.path());
        let names: Vec<&str> = tools().iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "inspect_nsg",
                "inspect_routes",
                "trace_reachability",
                "snapshot_effective_network",
                "detect_effective_network_drift",
                "capture_traffic",
                "check_task",
                "cancel_task",
                "cleanup_task"
            ]
        );
        let good = [
            json!({"port": 5001}),
            json!({"vm": "source-vm"}),
            json!({"port": 5001}),
            json!({"vm": "dest-vm"}),
            json!({"vm": "dest-vm", "baseline_id": "eni_20261122T000000Z"}),
            json!({"vm": "dest-vm", "filter": {"port": 5001}}),
            json!({"task_id": "t20261122t000000z-abcd"}),
            json!({"task_id": "t20261122t000000z-abcd"}),
            json!({"task_id": "t20261122t000000z-abcd"}),
        ];
        for (t, args) in tools().iter().zip(good) {
            assert_eq!(t.input_schema()["type"], "object", "{}", t.name());
            assert!(!t.description().is_empty());
            // Unknown arguments are refused before anything runs.
            let r = t.call(&ctx, &json!({"bogus": 1}));
            assert!(!r.ok);
            assert!(
                r.error.as_deref().unwrap().contains("does not take bogus"),
                "{:?}",
                r.error
            );
            // Valid arguments fail because no az is configured, saying what to do.
            let r = t.call(&ctx, &args);
            assert!(!r.ok, "{}", t.name());
            let e = r.error.unwrap();
            assert!(
                e.contains("AZ_PATH") || e.contains("STORAGE_ACCOUNT_NAME"),
                "{}: {e}",
                t.name()
            );
            assert!(r.findings.is_empty() && r.coverage.is_empty());
        }
        // Hostile values never reach a command line.
        let r = tools()[0].call(&ctx, &json!({"source_vm": "a b;rm", "port": 1}));
        assert!(!r.ok);
        let r = tools()[6].call(&ctx, &json!({"task_id": "../../etc"}));
        assert!(!r.ok);
        let r = tools()[5].call(&ctx, &json!({"vm": "dest-vm", "duration_secs": 500}));
        assert!(r.error.unwrap().contains("from 1 to 120"));
        let r = tools()[5].call(&ctx, &json!({"both": true, "vm": "dest-vm"}));
        assert!(r.error.unwrap().contains("not both"));
    }
}
