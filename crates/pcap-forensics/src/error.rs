//! Error types of the library.

use std::path::PathBuf;

/// Errors from reading a capture or writing artifacts.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("the capture file is empty; record some traffic first")]
    Empty,
    #[error("the file is neither pcap nor pcapng (unknown magic number); pass a capture written by tcpdump, dumpcap or Wireshark")]
    NotACapture,
    #[error("unsupported capture format: {0}")]
    Unsupported(String),
    #[error("the capture is truncated in its {0}; re-copy the file")]
    Truncated(String),
    #[error("the capture is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot read the capture: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot open {path}: {source}; check the path and permissions")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check that the directory exists and is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("integrity check failed for {path}: {reason}")]
    Integrity { path: PathBuf, reason: String },
    #[error("narrative failed: {0}")]
    Narrative(String),
}
