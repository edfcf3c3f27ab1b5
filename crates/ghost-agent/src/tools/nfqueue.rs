//! Which process is bound to an `NFQUEUE` a firewall rule diverts packets to.
//!
//! A rule `-j NFQUEUE --queue-num N` hands packets to a userspace program; what happens to
//! them (held, dropped, altered) is decided there, not in the ruleset. The kernel lists the
//! bound queues of the current network namespace in `/proc/net/netfilter/nfnetlink_queue`:
//! queue number, peer port id (the binding process's pid for the usual first netlink
//! socket), packets waiting, copy mode and range, drops. Matching that pid against `ps`
//! identifies the consumer even when `ps` sees other namespaces' processes (a lab's VMs share
//! the host's PID namespace, so several emulators may name the same queue number).

use serde::{Deserialize, Serialize};

/// One bound queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundQueue {
    /// Queue number.
    pub queue: u16,
    /// Peer port id (usually the consumer's pid).
    pub portid: u32,
    /// Packets waiting in the queue.
    pub waiting: u64,
    /// Packets the kernel dropped because the queue was full.
    pub queue_dropped: u64,
    /// Packets dropped because the consumer could not take them.
    pub user_dropped: u64,
}

/// Parses `/proc/net/netfilter/nfnetlink_queue` (whitespace separated: queue_number,
/// peer_portid, queue_total, copy_mode, copy_range, queue_dropped, user_dropped,
/// id_sequence, 1). Malformed lines are skipped.
pub fn parse_proc_queues(text: &str) -> Vec<BoundQueue> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 7 {
                return None;
            }
            Some(BoundQueue {
                queue: f[0].parse().ok()?,
                portid: f[1].parse().ok()?,
                waiting: f[2].parse().ok()?,
                queue_dropped: f[5].parse().ok()?,
                user_dropped: f[6].parse().ok()?,
            })
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_file_lines() {
        let t = "    7  41233     0 2 65535     0     0      118  1\ngarbage\n";
        let q = parse_proc_queues(t);
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].queue, 7);
        assert_eq!(q[0].portid, 41233);
    }

    #[test]
    fn hostile_lines() {
        assert!(parse_proc_queues("\u{0}\n1 2\n").is_empty());
    }
}
