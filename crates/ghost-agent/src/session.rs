//! Sessions on disk and the tools' context built from `config.env`.
//!
//! A session lives in `{audit_dir}/{session_id}/`: the hash-chained audit log
//! (`{session_id}_audit.jsonl`), the state file (`{session_id}_state.json` + `.sha256`),
//! every artifact the tools wrote, and the reports (`ghost_report_<sid>.md`,
//! `ghost_report_<sid>.json`, `ghost_audit_<sid>.md`).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cloud_provider::azure::AzureCli;
use cloud_provider::config::{Environment, FlagOverrides, Settings};
use cloud_provider::remote::{RemotePath, RemoteRunner};
use cloud_provider::session::SessionId;
use safety_shell::approve::Approver;
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

use crate::model::Expectations;
use crate::tools::ToolContext;

/// Session-level errors, each one sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Configuration is missing or invalid (exit 2).
    #[error("{0}")]
    Config(String),
    /// The session does not exist or cannot be opened (exit 3, 4 for integrity).
    #[error("{0}")]
    Open(String),
}

/// Where sessions live: `{audit_dir}/{session_id}`.
pub fn session_dir(audit_dir: &Path, session_id: &str) -> PathBuf {
    audit_dir.join(session_id)
}

/// A new `ghost_…` id not yet used under `audit_dir`.
pub fn new_session_id(audit_dir: &Path) -> SessionId {
    let mut rng = rand::thread_rng();
    SessionId::generate("ghost", Utc::now(), &mut rng, |id| {
        audit_dir.join(id).exists()
    })
    .unwrap_or_else(|_| SessionId::parse("ghost_session").expect("valid id"))
}

/// Session ids found under `audit_dir` (directories holding a state file), newest first.
pub fn list_sessions(audit_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(audit_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    e.path()
                        .join(crate::engine::state_file_name(&name))
                        .is_file()
                        .then_some(name)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.reverse();
    v
}

/// Expectations from the settings: `EXPECTED_THROUGHPUT_GBPS`, `EXPECTED_LATENCY_US`,
/// `EXPECTED_MAX_VARIATION` (defaults: 1 Gbit/s, 1000 µs, 0.5).
pub fn expectations(settings: &Settings) -> Result<Expectations, SessionError> {
    let mut e = Expectations::default();
    let num = |key: &str| -> Result<Option<f64>, SessionError> {
        match settings.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(SessionError::Config(format!(
                    "{key}={v} is not a positive number; fix it in the config file or the environment"
                ))),
            },
        }
    };
    if let Some(x) = num("EXPECTED_THROUGHPUT_GBPS")? {
        e.min_throughput_gbps = x;
    }
    if let Some(x) = num("EXPECTED_LATENCY_US")? {
        e.max_latency_us = x;
    }
    if let Some(x) = num("EXPECTED_MAX_VARIATION")? {
        e.max_variation = x;
    }
    Ok(e)
}

/// Everything needed to build a context.
pub struct ContextSpec {
    /// Settings (config file + environment).
    pub settings: Settings,
    /// Flag overrides.
    pub flags: FlagOverrides,
    /// The session id.
    pub session_id: SessionId,
    /// Who approves risky commands.
    pub approver: Arc<dyn Approver>,
    /// Per-command timeout.
    pub command_timeout: Duration,
    /// Set by Ctrl-C.
    pub cancel: Arc<AtomicBool>,
}

/// Builds the tools' context: the environment from the settings, the session directory,
/// the gate with the session's audit log, `az` and SSH access to both VMs.
pub fn build_context(spec: ContextSpec) -> Result<ToolContext, SessionError> {
    let env = Environment::resolve(&spec.settings, &spec.flags)
        .map_err(|e| SessionError::Config(e.to_string()))?;
    for (key, v) in [
        ("SOURCE_VM_NAME", &env.source.name),
        ("DEST_VM_NAME", &env.dest.name),
    ] {
        if v.is_none() {
            return Err(SessionError::Config(format!(
                "{key} is not set: the investigator needs both VMs (set it in the --config file)"
            )));
        }
    }
    let expectations = expectations(&spec.settings)?;
    let dir = session_dir(&env.audit_dir, spec.session_id.as_str());
    std::fs::create_dir_all(&dir).map_err(|e| {
        SessionError::Open(format!(
            "cannot create the session directory {}: {e}",
            dir.display()
        ))
    })?;
    let audit = AuditLog::open_in_dir(&dir, spec.session_id.as_str())
        .map_err(|e| SessionError::Open(e.to_string()))?;
    // The operator configured AZ_PATH explicitly: commands through that exact executable
    // are classified as `az` commands (reads stay SAFE, changes stay RISKY).
    let trusted_programs = if env.az_path.is_absolute() {
        vec![env.az_path.clone()]
    } else {
        Vec::new()
    };
    let gate = Arc::new(
        Gate::builder(audit)
            .approver_arc(spec.approver)
            .context(safety_shell::ClassifyContext {
                // Capture downloads land under the audit directory's `captures/` (the
                // orchestrator's layout): writing there is the capture tier, nothing else.
                output_dir: std::path::absolute(env.audit_dir.join("captures")).ok(),
                // The kernel's NFQUEUE bindings (queue numbers, pids, counters).
                read_paths: vec![PathBuf::from("/proc/net/netfilter")],
                trusted_programs,
            })
            .exec_options(safety_shell::exec::ExecOptions {
                // Whole rulesets (nft -j of a large host) must not be cut.
                max_output_bytes: netfilter_inspector::retrieve::DUMP_OUTPUT_CAP,
                timeout: spec.command_timeout,
                ..Default::default()
            })
            .build(),
    );
    let azure = env
        .resource_group
        .as_ref()
        .map(|_| Arc::new(AzureCli::from_environment(gate.clone(), &env)));
    let remote = RemoteRunner::from_environment(gate.clone(), azure.clone(), &env, RemotePath::Ssh)
        .map_err(|e| SessionError::Config(e.to_string()))?;
    Ok(ToolContext {
        env,
        settings: spec.settings,
        gate,
        azure,
        remote: Arc::new(remote),
        session_id: spec.session_id,
        session_dir: dir,
        expectations,
        cancel: spec.cancel,
    })
}
