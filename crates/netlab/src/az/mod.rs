//! `netlab az …`: an `az`-compatible control plane for the lab.
//!
//! The real argument forms are accepted (see [`cmds::COMMANDS`]), the real JSON shapes are
//! printed ([`shapes`]), and every change takes effect in the lab's enforcement at once
//! (the live topology is replaced and the fabric recompiled, see
//! [`crate::lab::Lab::apply_topology`]). Exit codes are az's: 0 ok, 1 error, 2 usage
//! (unknown command or argument, missing required argument), 3 resource not found.

pub mod args;
pub mod capture;
pub mod cmds;
pub mod output;
pub mod shapes;

use std::path::Path;

use serde_json::Value;

use crate::lab::{Lab, LabError};
use args::UsageError;

/// The last segment of a name or ARM id (`/…/virtualMachines/vm1` → `vm1`).
pub fn args_last_segment(v: &str) -> &str {
    v.trim_end_matches('/').rsplit('/').next().unwrap_or(v)
}

/// An error of an az command, with az's exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzError {
    /// Bad command line (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A resource does not exist (exit 3): `(Code) message`.
    #[error("({code}) {message}")]
    NotFound {
        /// `ResourceNotFound`, `NotFound`, `ResourceGroupNotFound`.
        code: String,
        /// The message.
        message: String,
    },
    /// Any other failure (exit 1): `(Code) message` or a plain message.
    #[error("{0}")]
    Failed(String),
}

impl AzError {
    /// az's exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            AzError::Usage(_) => 2,
            AzError::NotFound { .. } => 3,
            AzError::Failed(_) => 1,
        }
    }
    /// What az prints on stderr.
    pub fn render(&self) -> String {
        match self {
            AzError::Usage(m) => format!("ERROR: {m}"),
            AzError::NotFound { code, message } => {
                format!("ERROR: ({code}) {message}\nCode: {code}\nMessage: {message}")
            }
            AzError::Failed(m) => format!("ERROR: {m}"),
        }
    }
}

impl From<UsageError> for AzError {
    fn from(e: UsageError) -> Self {
        AzError::Usage(e.0)
    }
}

impl From<LabError> for AzError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Usage(m) | LabError::Runtime(m) => AzError::Failed(m),
        }
    }
}

impl From<crate::scenario::ScenarioError> for AzError {
    fn from(e: crate::scenario::ScenarioError) -> Self {
        AzError::Failed(format!("(InvalidRequestFormat) {e}"))
    }
}

/// Runs `netlab az ARGS…` against the lab in `state_dir` (`prefix` chooses among several);
/// prints the result on stdout and errors on stderr; returns az's exit code.
pub fn main(state_dir: &Path, prefix: Option<&str>, argv: &[String]) -> u8 {
    match run(state_dir, prefix, argv) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("{}", e.render());
            e.exit_code()
        }
    }
}

/// Parses, runs and formats one az command; returns the text for stdout.
pub fn run(state_dir: &Path, prefix: Option<&str>, argv: &[String]) -> Result<String, AzError> {
    let resolved = cmds::resolve(argv)?;
    let (cmd, parsed) = match resolved {
        cmds::Resolved::Help(text) => return Ok(text),
        cmds::Resolved::Command(c, p) => (c, p),
    };
    if parsed.has("--help") {
        return Ok(cmds::command_help(cmd));
    }
    let fmt = parsed.get("--output").unwrap_or("json");
    if !["json", "jsonc", "tsv", "table", "none"].contains(&fmt) {
        return Err(AzError::Usage(format!(
            "az {}: '{fmt}' is not a valid value for '--output'. Allowed values: json, jsonc, table, tsv, none.",
            cmd.path
        )));
    }
    let query = match parsed.get("--query") {
        Some(q) => Some(jmespath::compile(q).map_err(|_| {
            AzError::Usage(format!(
                "argument --query: invalid jmespath_type value: '{q}'"
            ))
        })?),
        None => None,
    };
    let found = Lab::find(state_dir, prefix).map_err(AzError::from)?;
    // One az command at a time per lab: each reads the state, changes it and recompiles.
    let lock_path = found.run_dir().join("az.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| AzError::Failed(format!("cannot open {}: {e}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| AzError::Failed(format!("cannot lock {}: {e}", lock_path.display())))?;
    let lab = Lab::load(&found.state_path).map_err(AzError::from)?;
    let mut ctx = cmds::Ctx { lab };
    if let Some(sub) = parsed.get("--subscription") {
        let t = ctx.lab.topology();
        if sub != t.subscription_id && sub != "netlab" {
            return Err(AzError::Failed(format!(
                "Subscription '{sub}' not found. Check the spelling and casing and try again."
            )));
        }
    }
    let result = (cmd.handler)(&mut ctx, &parsed)?;
    let result = match (result, &query) {
        (Some(v), Some(q)) => {
            let r = q
                .search(v)
                .map_err(|e| AzError::Failed(format!("the query failed: {e}")))?;
            let v: Value = serde_json::to_value(&*r).unwrap_or(Value::Null);
            Some(v)
        }
        (v, _) => v,
    };
    Ok(match result {
        None => String::new(),
        Some(v) => match (fmt, &query) {
            ("table", None) => {
                cmds::table_override(cmd.path, &v).unwrap_or_else(|| output::format(&v, fmt))
            }
            _ => output::format(&v, fmt),
        },
    })
}
