//! # cloud-provider
//!
//! What every tool of the workspace shares to reach its environment:
//!
//! - [`config`]: the `config.env` loader (flags beat environment, environment beats the
//!   file) and the typed, validated [`config::Environment`];
//! - [`session`]: session ids (`{prefix}_{YYYYMMDDTHHMMSSZ}`) and their validation;
//! - [`artifact`]: the artifact store (pretty JSON, `.sha256` sidecars, atomic writes,
//!   verification on every read).
//!
//! ```
//! use cloud_provider::artifact::{Artifact, ArtifactHeader, ArtifactStore, LocalStore};
//! use cloud_provider::session::SessionId;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalStore::new(dir.path());
//! let header = ArtifactHeader::new(
//!     "example", "0.1.0", SessionId::parse("fw_20261122T070000Z").unwrap(),
//!     "snapshot", chrono::Utc::now(),
//! );
//! let stored = store.put_json(&Artifact { header, body: serde_json::json!({"rules": 3}) }).unwrap();
//! let back: Artifact<serde_json::Value> = store.get_json(&stored.name).unwrap();
//! assert_eq!(back.body["rules"], 3);
//! ```

#![forbid(unsafe_code)]

pub mod artifact;
pub mod azure;
pub mod blob;
pub mod config;
pub mod error;
pub mod interrupt;
#[cfg(feature = "llm")]
pub mod llm;
pub mod models;
pub mod provider;
pub mod remote;
pub mod session;
