//! # netfilter-inspector
//!
//! The OS firewall layer of a Linux host in one vendor-independent model:
//! `iptables-save`/`ip6tables-save` (legacy and nft back ends, with or without counters),
//! `nft -j list ruleset`, and `tc qdisc`/`tc filter` output. On that model:
//!
//! - [`snapshot`]: a snapshot artifact (`fw_<id>_snapshot.json` + `.sha256`) with frameworks,
//!   tables, chains, rules, sets, qdiscs, blocking rules and a per-family summary;
//! - [`diff`]: a semantic, order-aware diff (LCS per chain) with critical/informational
//!   classification and suppression of ephemeral chains;
//! - [`check`]: would a packet pass? Walks every base chain of the hook in priority order
//!   and answers ACCEPT/DROP/REJECT with the deciding rule, or INDETERMINATE with why;
//! - [`explain`]: an optional LLM narrative of a snapshot or diff (the deterministic result
//!   never depends on it).
//!
//! ```
//! use netfilter_inspector::{parse, InputFormat};
//! use netfilter_inspector::check::{check, Direction, Packet};
//!
//! let text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 5001 -j DROP\nCOMMIT\n";
//! let rs = parse(text, InputFormat::Auto).unwrap();
//! let answer = check(&rs, &Packet::new("tcp", 5001, Direction::In));
//! assert_eq!(answer.verdict.as_str(), "DROP");
//! assert_eq!(answer.deciding_rule.unwrap().position, Some(1));
//! ```

#![forbid(unsafe_code)]

pub mod check;
pub mod diff;
pub mod explain;
pub mod iptables;
pub mod model;
pub mod nft;
pub mod retrieve;
pub mod snapshot;
pub mod tc;

use model::Ruleset;

/// Why an input could not be parsed at all (recoverable oddities are warnings instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input is not in the expected format.
    #[error("{0}")]
    Format(String),
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Io(String),
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// `iptables-save` / `ip6tables-save` (with or without `-c`).
    IptablesSave,
    /// `nft -j list ruleset`.
    NftJson,
    /// `tc qdisc show` or `tc -j qdisc show`.
    TcQdisc,
    /// `tc filter show` or `tc -j filter show`.
    TcFilter,
    /// Detect from the content.
    Auto,
}

impl InputFormat {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            InputFormat::IptablesSave => "iptables-save",
            InputFormat::NftJson => "nft-json",
            InputFormat::TcQdisc => "tc-qdisc",
            InputFormat::TcFilter => "tc-filter",
            InputFormat::Auto => "auto",
        }
    }
}

/// Guesses the format of `text`; `None` when nothing fits.
pub fn detect(text: &str) -> Option<InputFormat> {
    let t = text.trim_start();
    if t.starts_with('{') {
        return t.contains("\"nftables\"").then_some(InputFormat::NftJson);
    }
    if is_json_array(t) {
        // tc -j: filters carry a preference, qdiscs do not.
        if t.contains("\"pref\"") {
            return Some(InputFormat::TcFilter);
        }
        if t.contains("\"kind\"") || t == "[]" || t.starts_with("[]") {
            return Some(InputFormat::TcQdisc);
        }
    }
    for line in text.lines().take(2000) {
        let l = line.trim();
        if l.starts_with("qdisc ") {
            return Some(InputFormat::TcQdisc);
        }
        if l.starts_with("filter ") {
            return Some(InputFormat::TcFilter);
        }
        if l.starts_with('*') || l.starts_with(":") || l.starts_with("-A ") || l == "COMMIT" {
            return Some(InputFormat::IptablesSave);
        }
        if l.starts_with('[') && l.contains("] -A ") {
            return Some(InputFormat::IptablesSave);
        }
    }
    None
}

/// Parses `text` in `format` (or the detected one) into the model.
pub fn parse(text: &str, format: InputFormat) -> Result<Ruleset, ParseError> {
    let format = match format {
        InputFormat::Auto => detect(text).ok_or_else(|| {
            ParseError::Format(
                "the input format could not be recognised; pass --format iptables-save|nft-json|tc-qdisc|tc-filter".into(),
            )
        })?,
        f => f,
    };
    let json = is_json_array(text.trim_start());
    match format {
        InputFormat::IptablesSave => iptables::parse_str(text),
        InputFormat::NftJson => nft::parse_str(text),
        InputFormat::TcQdisc if json => tc::parse_qdisc_json(text),
        InputFormat::TcQdisc => tc::parse_qdisc_text(text),
        InputFormat::TcFilter if json => tc::parse_filter_json(text),
        InputFormat::TcFilter => tc::parse_filter_text(text),
        InputFormat::Auto => unreachable_auto(),
    }
}

fn is_json_array(t: &str) -> bool {
    t.strip_prefix('[')
        .map(|r| r.trim_start().starts_with(['{', ']']) || r.trim().is_empty())
        .unwrap_or(false)
}

fn unreachable_auto() -> Result<Ruleset, ParseError> {
    Err(ParseError::Format("format detection failed".into()))
}
