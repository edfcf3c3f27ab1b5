//! Errors of the orchestrator, each one sentence naming what was wrong and what to do.

use std::path::PathBuf;

use cloud_provider::error::CloudError;

/// What can go wrong in a capture task.
#[derive(Debug, thiserror::Error)]
pub enum OrchError {
    /// An Azure call failed (typed by cloud-provider: not found, throttled, denied, …).
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A task id that is not in the registry.
    #[error("task {id} is not in the registry under {dir}; run `cloud-orchestrator list` to see the known tasks")]
    UnknownTask {
        /// The id asked for.
        id: String,
        /// The registry directory.
        dir: PathBuf,
    },
    /// A task id that cannot be one of ours.
    #[error(
        "invalid task id {0:?}: task ids look like t20261122T074400Z-ab12 (letters, digits, '-')"
    )]
    InvalidTaskId(String),
    /// A caller option that cannot be used.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The VM already has an active capture (Azure allows one per VM).
    #[error("VM {vm} already has an active packet capture ({capture}{}); wait for it to finish or cancel it first", match .task { Some(t) => format!(", task {t}"), None => String::new() })]
    ActiveCapture {
        /// The VM.
        vm: String,
        /// The capture that runs.
        capture: String,
        /// Our task, when the capture is ours.
        task: Option<String>,
    },
    /// A prerequisite check failed before anything was created.
    #[error("prerequisite not met: {0}")]
    Prerequisite(String),
    /// The registry cannot be read or written.
    #[error(
        "capture registry {path}: {detail}; check the audit directory's permissions and free space"
    )]
    Registry {
        /// The file.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// A local file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The downloaded capture is not what Azure announced or not a capture file.
    #[error("capture file {path} failed verification: {detail}; download it again with `cloud-orchestrator status <task>` or inspect the blob")]
    Verification {
        /// The local file.
        path: PathBuf,
        /// What did not match.
        detail: String,
    },
    /// The task is in a state where the operation does not apply.
    #[error("task {id} is {state}: {hint}")]
    WrongState {
        /// The task.
        id: String,
        /// Its state.
        state: String,
        /// What to do instead.
        hint: String,
    },
}

impl OrchError {
    /// Exit code of the conventions: 2 usage, 3 runtime, 4 integrity, 5 denied.
    pub fn exit_code(&self) -> i32 {
        match self {
            OrchError::Cloud(e) => e.exit_code(),
            OrchError::UnknownTask { .. }
            | OrchError::InvalidTaskId(_)
            | OrchError::InvalidOption(_)
            | OrchError::WrongState { .. } => 2,
            OrchError::Verification { .. } => 4,
            _ => 3,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OrchError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
