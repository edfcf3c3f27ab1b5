//! Commands on the two VMs, always through the safety-shell [`Gate`].

use safety_shell::{ExecResult, Gate, GateError, Target};

/// Why a gated command gave no usable result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The operator (or policy) denied it, or it is forbidden.
    #[error("{0}")]
    Denied(String),
    /// It could not run (transport failure, missing program) or the audit failed.
    #[error("{0}")]
    Failed(String),
}

/// Runs an argv on `target` through the gate.
pub fn run_argv(
    gate: &Gate,
    target: &Target,
    argv: &[String],
    why: &str,
) -> Result<ExecResult, RunError> {
    map(gate.run_argv(target, argv, why))
}

/// Runs a shell command line on `target` through the gate.
pub fn run_shell(
    gate: &Gate,
    target: &Target,
    command: &str,
    why: &str,
) -> Result<ExecResult, RunError> {
    map(gate.run(target, command, why))
}

fn map(r: Result<ExecResult, GateError>) -> Result<ExecResult, RunError> {
    match r {
        Ok(x) => Ok(x),
        Err(e @ (GateError::Denied { .. } | GateError::Forbidden { .. })) => {
            Err(RunError::Denied(e.to_string()))
        }
        Err(e) => Err(RunError::Failed(e.to_string())),
    }
}

/// True when stderr looks like the SSH transport failed (not the remote command).
pub fn ssh_transport_failed(r: &ExecResult) -> bool {
    if r.exit_code != Some(255) {
        return false;
    }
    let s = r.stderr.to_ascii_lowercase();
    [
        "ssh:",
        "connection refused",
        "connection timed out",
        "host key verification failed",
        "permission denied (publickey",
        "could not resolve hostname",
        "no route to host",
        "connection closed",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// Shell-quotes one word for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
