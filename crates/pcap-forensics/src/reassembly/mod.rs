//! Reassembly with bounded memory, so the dissectors see whole datagrams and streams.
//!
//! - [`ip`]: IPv4 and IPv6 (Fragment header) datagram reassembly keyed by source,
//!   destination, protocol and identification; per-datagram, per-host-pair and global caps;
//!   timeouts measured in capture time; overlapping fragments whose bytes differ and
//!   datagrams beyond 65 535 bytes are reported (and the datagram discarded, as Linux and
//!   RFC 5722 do), never a panic.
//! - [`tcp`]: in-order byte-stream reassembly of one TCP direction with a bounded
//!   out-of-order buffer and a short history of delivered bytes, so that retransmitted data
//!   with different content (an overlap conflict) and data no window could accept
//!   (out of window) are detected.

pub mod ip;
pub mod tcp;

/// Sample frames kept per reported issue.
pub const ISSUE_FRAMES: usize = 8;
/// Issues kept (per kind) as evidence; the counters keep counting.
pub const MAX_ISSUES: usize = 64;
