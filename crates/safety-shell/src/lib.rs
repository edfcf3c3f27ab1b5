//! # safety-shell
//!
//! The one gate every command passes: parse → classify → approve → execute → redact → audit.
//!
//! See `docs/safety-shell.md` for the tiers, rules and policy format, and
//! `docs/safety-shell-runtime.md` for approval, execution, redaction and the audit record format.

#![forbid(unsafe_code)]

pub mod approve;
pub mod audit;
pub mod classify;
pub mod envfile;
pub mod exec;
pub mod gate;
pub mod policy;
pub mod redact;
pub mod types;

pub use classify::{classify, classify_with_policy, simple_argv};
pub use gate::{ExecResult, Gate, GateBuilder, GateError};
pub use policy::{Policy, PolicyError};
pub use types::{AzureVmTarget, Class, Classification, ClassifyContext, SshTarget, Target, Tier};
