//! Tools over the hosts: `run_shell` (one gated command on a named VM), `run_pipe_meter`
//! (latency and throughput between the configured pair, judged against a baseline or the
//! expectations) and `inspect_os_layer` (firewall and traffic control of a named VM:
//! snapshot, packet check, drift against a baseline; findings derived from the snapshot in
//! every mode).
//!
//! Each tool validates its JSON arguments first (unknown keys and wrong types are refused
//! with one sentence naming the argument), runs every command through the context's gate,
//! keeps large output in artifacts under the session directory and returns a compact
//! summary. Text read from a host (command output, chain names, comments) is marked
//! untrusted.

use std::path::Path;

use serde_json::{Map, Value};

use super::Tool;
use crate::model::ArtifactRef;

mod meter;
mod os_layer;
mod shell;

pub use meter::{judge_measurement, RunPipeMeter};
pub use os_layer::{derive_findings, InspectOsLayer};
pub use shell::RunShell;

/// The tools of this module.
pub fn tools() -> Vec<Box<dyn Tool>> {
    vec![
        Box::new(RunShell),
        Box::new(RunPipeMeter),
        Box::new(InspectOsLayer),
    ]
}

/// Validated access to a tool's JSON arguments: an object whose keys are all known.
pub(crate) struct Args<'a> {
    tool: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// Checks that `args` is an object (null counts as `{}`) with only `allowed` keys.
    pub(crate) fn new(
        tool: &'static str,
        args: &'a Value,
        allowed: &[&str],
    ) -> Result<Args<'a>, String> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match args {
            Value::Object(m) => m,
            Value::Null => EMPTY.get_or_init(Map::new),
            other => {
                return Err(format!(
                    "{tool} takes a JSON object of arguments, not {}; pass e.g. {{\"{}\": ...}}",
                    json_type(other),
                    allowed.first().copied().unwrap_or("arg")
                ))
            }
        };
        let mut unknown: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(k) = unknown.first() {
            return Err(format!(
                "{tool} has no argument `{}`; its arguments are {}",
                clip(k, 40),
                allowed.join(", ")
            ));
        }
        Ok(Args { tool, map })
    }

    /// An optional string (null counts as absent); empty strings are refused.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Err(format!(
                "{}: `{key}` is empty; give a value or leave it out",
                self.tool
            )),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(format!(
                "{}: `{key}` must be a string, not {}",
                self.tool,
                json_type(other)
            )),
        }
    }

    /// A required non-empty string.
    pub(crate) fn req_str(&self, key: &str) -> Result<&'a str, String> {
        self.opt_str(key)?
            .ok_or_else(|| format!("{}: `{key}` is required", self.tool))
    }

    /// An optional string that must be one of `choices`.
    pub(crate) fn opt_choice(
        &self,
        key: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, String> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(v) => {
                let l = v.trim().to_ascii_lowercase();
                choices
                    .iter()
                    .find(|c| **c == l)
                    .copied()
                    .map(Some)
                    .ok_or_else(|| {
                        format!(
                            "{}: `{key}` must be one of {}, not {:?}",
                            self.tool,
                            choices.join(", "),
                            clip(v, 40)
                        )
                    })
            }
        }
    }

    /// An optional integer in `min..=max` (an integral JSON number or a decimal string).
    pub(crate) fn opt_int(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
        let bad = |what: String| {
            format!(
                "{}: `{key}` must be a whole number from {min} to {max}, not {what}",
                self.tool
            )
        };
        let n = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => v,
                None => return Err(bad(n.to_string())),
            },
            Some(Value::String(s)) => match s.trim().parse::<u64>() {
                Ok(v) => v,
                Err(_) => return Err(bad(format!("{:?}", clip(s, 40)))),
            },
            Some(other) => return Err(bad(json_type(other).to_string())),
        };
        if n < min || n > max {
            return Err(bad(n.to_string()));
        }
        Ok(Some(n))
    }

    /// An optional session id (`[A-Za-z0-9_-]{1,64}`), checked before it touches a path.
    pub(crate) fn opt_session_id(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(v) => {
                cloud_provider::session::SessionId::parse(v).map_err(|_| {
                    format!(
                        "{}: `{key}` must be a session id (1 to 64 characters from A-Z a-z 0-9 _ -), not {:?}",
                        self.tool,
                        clip(v, 40)
                    )
                })?;
                Ok(Some(v))
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// At most `n` characters of `s` (on a character boundary), with `…` when cut.
pub(crate) fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut out: String = s.chars().take(n).collect();
    out.push('…');
    out
}

/// The first `head` and last `tail` bytes of `s` (on character boundaries), with a marker
/// saying how much was left out.
pub(crate) fn head_tail(s: &str, head: usize, tail: usize) -> String {
    if s.len() <= head + tail {
        return s.to_string();
    }
    let mut h = head;
    while !s.is_char_boundary(h) {
        h -= 1;
    }
    let mut t = s.len() - tail;
    while !s.is_char_boundary(t) {
        t += 1;
    }
    format!("{}\n[… {} bytes left out …]\n{}", &s[..h], t - h, &s[t..])
}

/// The audit id quoted in a gate or cloud error message (`… [audit ID]`).
pub(crate) fn audit_id_in(message: &str) -> Option<String> {
    let start = message.rfind("[audit ")? + "[audit ".len();
    let rest = &message[start..];
    let end = rest.find(']')?;
    let id = rest[..end].trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// A reference to a file on disk, with the SHA-256 of its bytes.
pub(crate) fn artifact_ref(kind: &str, path: &Path) -> Result<ArtifactRef, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the artifact {}: {e}", path.display()))?;
    Ok(ArtifactRef {
        kind: kind.to_string(),
        path: path.display().to_string(),
        sha256: cloud_provider::artifact::sha256_hex(&bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_refuse_unknown_keys_and_wrong_types() {
        let v = json!({"vm": "dest-vm", "colour": "red"});
        let e = Args::new("t", &v, &["vm"]).err().unwrap();
        assert!(e.contains("`colour`") && e.contains("vm"), "{e}");
        let e = Args::new("t", &json!([1]), &["vm"]).err().unwrap();
        assert!(e.contains("JSON object"), "{e}");
        let v = json!({"vm": 3, "n": "x", "m": 0, "c": "Both"});
        let a = Args::new("t", &v, &["vm", "n", "m", "c"]).unwrap();
        assert!(a.req_str("vm").unwrap_err().contains("must be a string"));
        assert!(a.opt_int("n", 1, 10).unwrap_err().contains("whole number"));
        assert!(a.opt_int("m", 1, 10).unwrap_err().contains("from 1 to 10"));
        assert_eq!(
            a.opt_choice("c", &["latency", "both"]).unwrap(),
            Some("both")
        );
        assert!(a.req_str("missing").unwrap_err().contains("required"));
        // null is no arguments at all
        let a = Args::new("t", &Value::Null, &["vm"]).unwrap();
        assert_eq!(a.opt_str("vm").unwrap(), None);
    }

    #[test]
    fn session_ids_are_checked_before_use() {
        let v = json!({"b": "../../etc/passwd", "ok": "fw_20261122T063005Z"});
        let a = Args::new("t", &v, &["b", "ok"]).unwrap();
        assert!(a.opt_session_id("b").is_err());
        assert_eq!(a.opt_session_id("ok").unwrap(), Some("fw_20261122T063005Z"));
    }

    /// A context with one VM reached in a namespace that does not exist, behind a gate with
    /// `approver`: nothing can reach a host, so only the tools' own paths are exercised.
    fn offline(
        approver: std::sync::Arc<dyn safety_shell::approve::Approver>,
        dir: &Path,
    ) -> crate::tools::ToolContext {
        use cloud_provider::config::{Environment, FlagOverrides, Settings};
        use cloud_provider::remote::{RemoteRunner, VmAccess};
        use std::sync::Arc;
        let mut kv = std::collections::BTreeMap::new();
        kv.insert("AUDIT_DIR".to_string(), dir.display().to_string());
        kv.insert("SOURCE_VM_NAME".to_string(), "source-vm".to_string());
        kv.insert("DEST_VM_NAME".to_string(), "dest-vm".to_string());
        kv.insert("SOURCE_VM_PRIVATE_IP".to_string(), "198.18.1.4".to_string());
        kv.insert("DEST_VM_PRIVATE_IP".to_string(), "198.18.1.5".to_string());
        let settings = Settings::from_parts(None, kv);
        let env = Environment::resolve(&settings, &FlagOverrides::default()).unwrap();
        let log = safety_shell::audit::AuditLog::open_in_dir(dir, "ghost_offline").unwrap();
        let gate = Arc::new(
            safety_shell::Gate::builder(log)
                .approver_arc(approver)
                .build(),
        );
        let remote = RemoteRunner::new(gate.clone(), None)
            .with_vm(
                "dest-vm",
                VmAccess::Netns {
                    name: "ghost-agent-test-no-such-ns".into(),
                },
            )
            .with_vm(
                "source-vm",
                VmAccess::RunCommand {
                    resource_group: "rg".into(),
                    vm_name: "source-vm".into(),
                },
            );
        crate::tools::ToolContext {
            env,
            settings,
            gate,
            azure: None,
            remote: Arc::new(remote),
            session_id: cloud_provider::session::SessionId::parse("ghost_offline").unwrap(),
            session_dir: dir.join("ghost_offline"),
            expectations: crate::model::Expectations::default(),
            cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    #[test]
    fn run_shell_denial_carries_the_audit_id() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = offline(
            std::sync::Arc::new(safety_shell::approve::NeverApprover),
            dir.path(),
        );
        let r = RunShell.call(
            &ctx,
            &json!({"vm": "dest-vm", "command": "iptables -F INPUT", "reason": "test"}),
        );
        assert!(!r.ok);
        assert_eq!(r.denials.len(), 1, "{}", r.summary);
        let d = &r.denials[0];
        assert_eq!(d.command, "iptables -F INPUT");
        let id = d.audit_id.clone().unwrap();
        assert!(!id.is_empty());
        assert_eq!(r.summary["audit_id"], json!(id));
        assert!(r.error.unwrap().contains("refused"));
        // An unknown VM is a clear failure, not a denial.
        let r = RunShell.call(
            &ctx,
            &json!({"vm": "nope-vm", "command": "uname -r", "reason": "test"}),
        );
        assert!(!r.ok && r.denials.is_empty());
        assert!(r.error.unwrap().contains("nope-vm"));
        // Bad arguments never reach the gate.
        let r = RunShell.call(&ctx, &json!({"vm": "dest-vm", "command": "uname -r"}));
        assert!(r.error.unwrap().contains("`reason` is required"));
    }

    #[test]
    fn failures_mark_coverage_unverifiable_and_pipe_meter_needs_ssh() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = offline(
            std::sync::Arc::new(safety_shell::approve::NeverApprover),
            dir.path(),
        );
        // Run-command access without an Azure provider: nothing can be read.
        let r = InspectOsLayer.call(&ctx, &json!({"vm": "source-vm"}));
        assert!(!r.ok);
        assert_eq!(r.coverage.len(), 2, "{:?}", r.coverage);
        for m in &r.coverage {
            assert_eq!(m.vm.as_deref(), Some("source-vm"));
            match &m.state {
                crate::model::CoverageState::Unverifiable { reason } => {
                    assert!(reason.contains("could not be read"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // A baseline that does not exist is refused before any retrieval.
        let r = InspectOsLayer.call(
            &ctx,
            &json!({"vm": "dest-vm", "mode": "compare", "baseline_id": "fw_missing"}),
        );
        assert!(r.error.unwrap().contains("no netfilter-inspector snapshot"));
        assert!(r.coverage.is_empty());
        // pipe-meter cannot run its servers through run-command.
        let r = RunPipeMeter.call(&ctx, &json!({"iterations": 1, "duration": 1}));
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("needs SSH access to source-vm"));
    }

    #[test]
    fn the_registry_lists_three_tools_with_object_schemas() {
        let t = tools();
        let names: Vec<&str> = t.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            vec!["run_shell", "run_pipe_meter", "inspect_os_layer"]
        );
        for tool in &t {
            assert_eq!(tool.input_schema()["type"], json!("object"));
            assert!(!tool.description().is_empty());
        }
    }

    #[test]
    fn head_tail_and_audit_ids() {
        let s = "é".repeat(100);
        let out = head_tail(&s, 11, 11);
        assert!(out.contains("left out"));
        assert!(out.starts_with("ééééé"));
        assert_eq!(head_tail("short", 10, 10), "short");
        assert_eq!(
            audit_id_in("denied by policy:never: risky [audit ghost_x_000004]").as_deref(),
            Some("ghost_x_000004")
        );
        assert_eq!(audit_id_in("no id here"), None);
        assert_eq!(clip("abcdef", 3), "abc…");
    }
}
