//! # effective-network-inspector
//!
//! The cloud computed state of a NIC — its effective routes and effective NSG rules — and
//! the answers investigations need from it:
//!
//! - [`route`]: Azure's route selection (longest prefix, then User > BGP > system, with the
//!   VNet/peering/service-endpoint exception), from a compiled multibit trie with
//!   precomputed winners; verdicts with anomalies (`BLACKHOLE`, `NVA`, `INVALID_SHADOW`)
//!   and an audit;
//! - [`nsg`]: the dual-gate NSG evaluator (`ALLOW | DENY | INDETERMINATE`) and its audit;
//! - [`snapshot`]: snapshots of effective state and categorised drift between two of them;
//! - [`trace`]: offline reachability traces with explanation codes;
//! - [`source`]: the [`source::EffectiveStateSource`] trait and its saved-file
//!   implementation;
//! - [`live`]: the live implementation over cloud-provider's `CloudProvider` (az through the
//!   safety-shell gate): VM, NIC and VNet scopes, NICs read concurrently;
//! - [`store`]: snapshot, diff and verdict artifacts through cloud-provider's verified store.
//!
//! ```
//! use effective_network_inspector::route::{RouteTable, RouteResult};
//! use effective_network_inspector::state::routes_from_json;
//!
//! let routes = routes_from_json(r#"{"value": [
//!   {"addressPrefix": ["10.0.0.0/16"], "nextHopType": "VnetLocal", "nextHopIpAddress": [],
//!    "source": "Default", "state": "Active"},
//!   {"addressPrefix": ["0.0.0.0/0"], "nextHopType": "VirtualAppliance",
//!    "nextHopIpAddress": ["10.0.9.4"], "source": "User", "state": "Active", "name": "to-fw"}
//! ]}"#).unwrap();
//! let table = RouteTable::new(&routes).unwrap();
//! let v = table.explain("8.8.8.8".parse().unwrap(), None);
//! assert_eq!(v.result, RouteResult::Winner);
//! assert_eq!(v.winning_route.unwrap().name.as_deref(), Some("to-fw"));
//! ```

#![forbid(unsafe_code)]

pub mod live;
pub mod net;
pub mod nsg;
pub mod route;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod store;
pub mod trace;

use cloud_provider::artifact::ArtifactError;
use cloud_provider::error::CloudError;

/// The tool name written into artifacts.
pub const TOOL: &str = "effective-network-inspector";
/// The tool version written into artifacts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of the library. [`EniError::exit_code`] maps them to the workspace's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum EniError {
    /// The request was wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The input (az JSON, a snapshot) is malformed (exit 3).
    #[error("malformed input: {0}")]
    Input(String),
    /// Storing or loading an artifact failed (exit 4 on integrity failures, else 3).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A cloud call failed (exit 5 when an operator denied it, 2 on a bad argument, else 3).
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

impl EniError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            EniError::Usage(_) => 2,
            EniError::Input(_) => 3,
            EniError::Artifact(e) => e.exit_code(),
            EniError::Cloud(e) => e.exit_code(),
        }
    }
}
