//! # cloud-orchestrator
//!
//! Azure Network Watcher packet captures as resumable, audited tasks. One task captures on
//! one VM, or on a pair ("source to dest") at both ends at once with mirrored filters, and
//! walks the lifecycle
//!
//! ```text
//! created → running → stopped → downloaded → analysed → cleaned
//!     ╲         ╲          ╲           ╲
//!      ╰─────────┴──────────┴───────────┴──→ failed | cancelled
//! ```
//!
//! Every transition is appended to a per-session JSONL registry under the audit directory
//! ([`registry`]); the newest record of a task wins, so a task resumes by id after a crash
//! ([`engine::Orchestrator::check_task`]). Every Azure call goes through
//! [`cloud_provider::provider::CloudProvider`], whose Azure implementation runs `az` through
//! the safety-shell gate (create, stop and delete need approval unless a policy allows them).
//!
//! ```no_run
//! use std::sync::Arc;
//! use cloud_orchestrator::{model::{CaptureOptions, Target}, Orchestrator, OrchestratorConfig};
//! # fn demo(az: Arc<cloud_provider::azure::AzureCli>) -> Result<(), cloud_orchestrator::OrchError> {
//! let gate = az.gate().clone();
//! let cfg = OrchestratorConfig::new("rg-ghost", "capsa", "./audit", "cap_20261122T074400Z");
//! let o = Orchestrator::new(az, gate, cfg)?;
//! let opts = CaptureOptions { duration_secs: 30, ..Default::default() };
//! let id = o.capture_traffic(&Target::vm("dest-vm"), &opts)?;
//! let task = o.wait_task(&id)?; // stopped → downloaded → analysed
//! println!("{} finding(s)", task.sides[0].analysis.as_ref().map_or(0, |a| a.findings.len()));
//! o.cleanup_task(&id, Default::default())?; // capture resource deleted
//! # Ok(()) }
//! ```
//!
//! Modules: [`model`] (tasks, sides, states, options, filters), [`registry`] (the JSONL
//! registry), [`engine`] (the lifecycle, polling, download, analysis, cleanup, orphans),
//! [`capfile`] (capture-file verification and blob paths), [`error`].

pub mod capfile;
pub mod engine;
pub mod error;
pub mod model;
pub mod registry;

pub use engine::{Clock, Orchestrator, OrchestratorConfig, SystemClock};
pub use error::OrchError;
pub use model::{CaptureFilter, CaptureOptions, Role, Side, Target, TaskId, TaskRecord, TaskState};

/// Every capture this tool creates is named `ghostcap-<task>-<role>`; captures in Azure
/// with this prefix and no registry entry are orphans.
pub const CAPTURE_PREFIX: &str = "ghostcap-";
