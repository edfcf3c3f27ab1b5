//! # pcap-forensics
//!
//! Native, streaming packet-capture forensics. One pass over a pcap or pcapng file
//! (constant memory in the file size) produces per-protocol analysis (TCP, UDP, DNS,
//! ICMP/ICMPv6, ARP), findings with frame-number evidence, a bounded semantic JSON for
//! LLMs and people, and a Markdown report. An LLM only narrates, behind [`narrator::Narrator`].
//!
//! ```no_run
//! use pcap_forensics::{analysis::{analyze_file, AnalysisOptions}, semantic};
//! let opts = AnalysisOptions::default();
//! let a = analyze_file(std::path::Path::new("capture.pcap"), &opts, None)?;
//! let meta = semantic::Meta::at(chrono::Utc::now());
//! let json = semantic::semantic_json(&a, &opts, &meta);
//! println!("{} findings", a.findings.len());
//! # Ok::<(), pcap_forensics::error::PcapError>(())
//! ```
//!
//! Modules: [`reader`] (pcap/pcapng), [`dissect`] (link to transport layers),
//! [`reassembly`] (IP fragments and TCP streams, bounded),
//! [`analysis`] (per-protocol state), [`findings`] (rules), [`semantic`] (JSON),
//! [`report`] (Markdown), [`compare`] (two captures), [`artifact`] (atomic writes with
//! SHA-256 sidecars), [`narrator`] (optional LLM narration), [`testsupport`] (a pcap/pcapng
//! writer and packet builders for tests and benchmarks).

pub mod analysis;
pub mod artifact;
pub mod compare;
pub mod dissect;
pub mod error;
pub mod findings;
pub mod narrator;
pub mod reader;
pub mod reassembly;
pub mod report;
pub mod semantic;
pub mod testsupport;

use std::path::{Path, PathBuf};

pub use analysis::{analyze_file, analyze_reader, Analysis, AnalysisOptions};
pub use error::PcapError;
pub use findings::{Finding, Severity};

/// True when a finding of severity medium or above exists (the CLI then exits 1).
pub fn has_actionable_findings(a: &Analysis) -> bool {
    a.findings.iter().any(|f| f.severity >= Severity::Medium)
}

/// The file stem used for artifact names (`<stem>_semantic.json`).
pub fn stem_of(path: &Path) -> String {
    let s = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "capture".into()
    } else {
        clean
    }
}

/// Write `<stem>_semantic.json` (pretty, newline-terminated) with its sidecar.
pub fn write_semantic(
    dir: &Path,
    stem: &str,
    json: &serde_json::Value,
) -> Result<PathBuf, PcapError> {
    let p = dir.join(format!("{stem}_semantic.json"));
    let mut text = serde_json::to_string_pretty(json).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    artifact::write_with_sidecar(&p, text.as_bytes())?;
    Ok(p)
}

/// Write `<stem>_forensic_report.md` with its sidecar.
pub fn write_report(dir: &Path, stem: &str, md: &str) -> Result<PathBuf, PcapError> {
    let p = dir.join(format!("{stem}_forensic_report.md"));
    artifact::write_with_sidecar(&p, md.as_bytes())?;
    Ok(p)
}
