//! Live retrieval through safety-shell's [`Gate`]: runs the read-only dump commands on a
//! target (this machine or a network namespace), and parses what they print.
//!
//! Commands: `iptables-save`, `ip6tables-save`, `nft -j list ruleset`, `tc qdisc show`.
//! A command that is missing or fails is skipped and reported; when every command fails the
//! retrieval fails. Tables that `nft -j` shows and `iptables-save` already gave (iptables-nft
//! tables) are kept once, from `iptables-save`.

use safety_shell::{Gate, GateError, Target};

use crate::model::Ruleset;
use crate::snapshot::SourceInfo;
use crate::{parse, InputFormat};

/// Why retrieval failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    /// The gate refused or an operator denied a command.
    #[error("{0}")]
    Denied(String),
    /// No command produced usable output.
    #[error("nothing could be retrieved from {target}: {detail}")]
    Nothing {
        /// Target description.
        target: String,
        /// What each command said.
        detail: String,
    },
    /// The audit log could not be written.
    #[error("audit log: {0}")]
    Audit(String),
}

/// What was retrieved.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The merged ruleset.
    pub ruleset: Ruleset,
    /// One source per command that produced output.
    pub sources: Vec<SourceInfo>,
    /// Commands skipped, with why.
    pub skipped: Vec<String>,
    /// Other facts about the retrieval (e.g. duplicate tables dropped).
    pub notes: Vec<String>,
}

/// The dump commands and their formats.
pub const COMMANDS: &[(&[&str], InputFormat)] = &[
    (&["iptables-save"], InputFormat::IptablesSave),
    (&["ip6tables-save"], InputFormat::IptablesSave),
    (&["nft", "-j", "list", "ruleset"], InputFormat::NftJson),
    (&["tc", "qdisc", "show"], InputFormat::TcQdisc),
];

/// Runs the dump commands on `target` through `gate` and parses their output.
pub fn retrieve(gate: &Gate, target: &Target) -> Result<Retrieved, RetrieveError> {
    let mut ruleset = Ruleset::default();
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    let mut nft_part: Option<Ruleset> = None;
    for (argv, fmt) in COMMANDS {
        let label = argv.join(" ");
        let res = match gate.run_argv(
            target,
            argv,
            "netfilter-inspector snapshot: read the firewall and traffic-control state",
        ) {
            Ok(r) => r,
            Err(e @ (GateError::Forbidden { .. } | GateError::Denied { .. })) => {
                return Err(RetrieveError::Denied(e.to_string()))
            }
            Err(GateError::Audit(e)) => return Err(RetrieveError::Audit(e.to_string())),
            Err(e) => {
                skipped.push(format!("{label}: {e}"));
                continue;
            }
        };
        if !res.success() {
            let why = res
                .stderr
                .lines()
                .next()
                .unwrap_or("no error text")
                .to_string();
            skipped.push(format!("{label}: exit {:?}: {why}", res.exit_code));
            continue;
        }
        if res.truncated.stdout {
            skipped.push(format!(
                "{label}: output was truncated by the gate; not used"
            ));
            continue;
        }
        // An empty iptables-save (no tables loaded) is not an error.
        if res.stdout.trim().is_empty() {
            sources.push(source(target, &label, *fmt, &res.stdout));
            continue;
        }
        match parse(&res.stdout, *fmt) {
            Ok(part) => {
                sources.push(source(target, &label, *fmt, &res.stdout));
                if *fmt == InputFormat::NftJson {
                    nft_part = Some(part);
                } else {
                    ruleset.merge(part);
                }
            }
            Err(e) => skipped.push(format!("{label}: output not understood: {e}")),
        }
    }
    if let Some(n) = nft_part {
        ruleset.merge(n);
        let dropped = ruleset.dedupe_iptables_nft();
        if dropped > 0 {
            notes.push(format!(
                "nft -j list ruleset: {dropped} iptables-nft tables kept from iptables-save instead"
            ));
        }
    }
    if sources.is_empty() {
        return Err(RetrieveError::Nothing {
            target: target.describe(),
            detail: skipped.join("; "),
        });
    }
    Ok(Retrieved {
        ruleset,
        sources,
        skipped,
        notes,
    })
}

fn source(target: &Target, label: &str, fmt: InputFormat, out: &str) -> SourceInfo {
    SourceInfo {
        path: format!("{}: {label}", target.describe()),
        format: fmt.as_str().to_string(),
        sha256: cloud_provider::artifact::sha256_hex(out.as_bytes()),
    }
}
