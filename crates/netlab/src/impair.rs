//! The description of a link impairment (delay, jitter, loss, corruption) shared by the
//! fault injector and the userspace emulator.

use serde::{Deserialize, Serialize};

/// An egress impairment on a VM's interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ImpairSpec {
    /// Added one-way delay in milliseconds.
    #[serde(default)]
    pub delay_ms: f64,
    /// Jitter in milliseconds (uniform, ± around the delay).
    #[serde(default)]
    pub jitter_ms: f64,
    /// Loss probability in percent (0-100).
    #[serde(default)]
    pub loss_pct: f64,
    /// Corruption probability in percent (0-100): one payload byte is flipped.
    #[serde(default)]
    pub corrupt_pct: f64,
    /// RNG seed, so runs are reproducible.
    #[serde(default)]
    pub seed: u64,
}
