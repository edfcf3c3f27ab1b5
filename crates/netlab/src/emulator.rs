//! The userspace link emulator: delay, jitter, loss and corruption for kernels without
//! `netem`.
//!
//! Packets leaving a VM's interface are diverted by an iptables `NFQUEUE` rule in
//! `mangle/POSTROUTING` (see [`nfqueue_rule_args`]) to this process, which runs inside the
//! VM's namespace. For every packet it decides, with a seeded RNG:
//!
//! 1. loss (probability `loss_pct`): verdict `DROP` at once;
//! 2. corruption (probability `corrupt_pct`): one byte of the L4 payload (or, when the
//!    segment carries no payload, of the L4 header) is XORed with a random non-zero mask.
//!    Checksums are NOT fixed, so the receiver's kernel discards the packet and counts a
//!    checksum error, exactly as with a real bit error on the wire;
//! 3. delay: the packet is copied, the original is released from the kernel (verdict
//!    `DROP`, which frees it and its socket accounting, like netem's orphaning), and the copy
//!    is held for `delay ± jitter` (uniform) in a time-ordered queue, then sent again through
//!    a raw IPv4 socket carrying the mark [`REINJECT_MARK`], which the rules let through.
//!    Holding the kernel's packet instead would leave it charged to the sending TCP socket,
//!    and TCP Small Queues would then throttle the flow to a couple of packets per delay.
//!    With zero jitter per-flow order is preserved; with jitter packets may be reordered (as
//!    with netem).
//!
//! The number of held packets is capped (default 10,000); excess packets are dropped and
//! counted as `dropped_overflow`. Statistics are written as JSON on exit and every second to
//! `--stats-file`. See `docs/netlab-emulator-blobd.md`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::impair::ImpairSpec;

/// Default cap on the number of packets held at once.
pub const DEFAULT_QUEUE_CAP: usize = 10_000;

/// Largest packet copied to userspace.
const FULL_COPY_RANGE: u16 = 65535;

/// The firewall mark of packets the emulator sends again after holding them; the rules of
/// [`nfqueue_rule_args`] let packets with this mark pass (`0x4e4c4d55`, "NLMU").
pub const REINJECT_MARK: u32 = 0x4e4c_4d55;

/// The comment put on every rule the emulator's iptables rules carry, so inspectors and
/// `netlab down` can recognise them.
pub const RULE_COMMENT: &str = "netlab-emulator";

/// Command-line arguments of the emulator (`netlab __emulator …`).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct EmulatorArgs {
    /// NFQUEUE number to bind (must match the iptables rule).
    #[arg(long = "queue-num")]
    pub queue_num: u16,
    /// Added one-way delay in milliseconds.
    #[arg(long = "delay-ms", default_value_t = 0.0)]
    pub delay_ms: f64,
    /// Jitter in milliseconds (uniform, ± around the delay).
    #[arg(long = "jitter-ms", default_value_t = 0.0)]
    pub jitter_ms: f64,
    /// Loss probability in percent (0-100).
    #[arg(long = "loss-pct", default_value_t = 0.0)]
    pub loss_pct: f64,
    /// Corruption probability in percent (0-100): one byte of the payload is flipped.
    #[arg(long = "corrupt-pct", default_value_t = 0.0)]
    pub corrupt_pct: f64,
    /// RNG seed, so runs are reproducible.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write statistics JSON here every second and on exit.
    #[arg(long = "stats-file")]
    pub stats_file: Option<PathBuf>,
    /// Maximum number of packets held at once; excess packets are dropped and counted.
    #[arg(long = "queue-cap", default_value_t = DEFAULT_QUEUE_CAP)]
    pub queue_cap: usize,
}

impl EmulatorArgs {
    /// Builds the arguments for one impairment.
    pub fn from_spec(queue_num: u16, spec: &ImpairSpec, stats_file: Option<PathBuf>) -> Self {
        EmulatorArgs {
            queue_num,
            delay_ms: spec.delay_ms,
            jitter_ms: spec.jitter_ms,
            loss_pct: spec.loss_pct,
            corrupt_pct: spec.corrupt_pct,
            seed: spec.seed,
            stats_file,
            queue_cap: DEFAULT_QUEUE_CAP,
        }
    }

    /// The command-line flags that reproduce these arguments (without the program name and
    /// subcommand).
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--queue-num".to_string(),
            self.queue_num.to_string(),
            "--delay-ms".to_string(),
            self.delay_ms.to_string(),
            "--jitter-ms".to_string(),
            self.jitter_ms.to_string(),
            "--loss-pct".to_string(),
            self.loss_pct.to_string(),
            "--corrupt-pct".to_string(),
            self.corrupt_pct.to_string(),
            "--seed".to_string(),
            self.seed.to_string(),
            "--queue-cap".to_string(),
            self.queue_cap.to_string(),
        ];
        if let Some(p) = &self.stats_file {
            v.push("--stats-file".to_string());
            v.push(p.display().to_string());
        }
        v
    }

    /// Checks the ranges of every value.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let check = |name: &str, v: f64, max: f64| {
            if !v.is_finite() || v < 0.0 || v > max {
                Err(EmulatorError::InvalidArg(format!(
                    "{name} must be a number between 0 and {max}, got {v}"
                )))
            } else {
                Ok(())
            }
        };
        check("--delay-ms", self.delay_ms, 3_600_000.0)?;
        check("--jitter-ms", self.jitter_ms, 3_600_000.0)?;
        check("--loss-pct", self.loss_pct, 100.0)?;
        check("--corrupt-pct", self.corrupt_pct, 100.0)?;
        if self.queue_cap == 0 {
            return Err(EmulatorError::InvalidArg(
                "--queue-cap must be at least 1".to_string(),
            ));
        }
        Ok(())
    }
}

/// Errors of the emulator library.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A command-line value is out of range.
    #[error("invalid emulator argument: {0}")]
    InvalidArg(String),
}

/// Counters written to the stats file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmulatorStats {
    /// Packets received from the queue.
    pub packets: u64,
    /// Packets held for a non-zero time before being accepted.
    pub delayed: u64,
    /// Packets dropped by the loss probability.
    pub dropped_loss: u64,
    /// Packets with one byte flipped (and accepted).
    pub corrupted: u64,
    /// Packets dropped because the hold queue was full.
    pub dropped_overflow: u64,
    /// Held packets that could not be sent again (raw socket error); they are lost.
    #[serde(default)]
    pub send_errors: u64,
}

impl EmulatorStats {
    /// Pretty JSON of the counters.
    pub fn to_json(&self) -> String {
        // Serialising five integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Writes the counters atomically (temporary file, fsync, rename).
    pub fn write_atomic(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(self.to_json().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fate {
    /// Dropped by the loss probability.
    Lost,
    /// Accepted after `hold`; `corrupt` says whether a byte must be flipped first.
    Pass {
        /// How long to hold the packet.
        hold: Duration,
        /// Whether to corrupt the packet.
        corrupt: bool,
    },
}

/// The seeded decision maker: loss, corruption and hold time per packet.
#[derive(Debug)]
pub struct Impairer {
    rng: StdRng,
    delay: f64,
    jitter: f64,
    loss_p: f64,
    corrupt_p: f64,
}

impl Impairer {
    /// Creates the decision maker from validated arguments.
    pub fn new(args: &EmulatorArgs) -> Self {
        Impairer {
            rng: StdRng::seed_from_u64(args.seed),
            delay: args.delay_ms / 1000.0,
            jitter: args.jitter_ms / 1000.0,
            loss_p: args.loss_pct / 100.0,
            corrupt_p: args.corrupt_pct / 100.0,
        }
    }

    /// Decides the fate of the next packet. The RNG is drawn in a fixed order (loss,
    /// corruption, jitter) so a seed reproduces the same sequence of decisions.
    pub fn decide(&mut self) -> Fate {
        let lost = self.loss_p > 0.0 && self.rng.gen::<f64>() < self.loss_p;
        if lost {
            return Fate::Lost;
        }
        let corrupt = self.corrupt_p > 0.0 && self.rng.gen::<f64>() < self.corrupt_p;
        let mut secs = self.delay;
        if self.jitter > 0.0 {
            secs += self.rng.gen_range(-self.jitter..=self.jitter);
        }
        let hold = if secs > 0.0 {
            Duration::from_secs_f64(secs)
        } else {
            Duration::ZERO
        };
        Fate::Pass { hold, corrupt }
    }

    /// Flips one byte of an IP packet (see [`corrupt_packet`]) with this RNG.
    pub fn corrupt(&mut self, packet: &mut [u8]) -> Option<usize> {
        corrupt_packet(packet, &mut self.rng)
    }
}

/// Where the L4 payload of an IPv4 or IPv6 packet starts, and where the IP payload starts.
/// Returns `(ip_payload_offset, l4_payload_offset)`; `None` when the packet is not a
/// well-formed IP packet.
pub fn payload_offsets(packet: &[u8]) -> Option<(usize, usize)> {
    let first = *packet.first()?;
    let (ip_payload, proto) = match first >> 4 {
        4 => {
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 || packet.len() < ihl {
                return None;
            }
            (ihl, packet[9])
        }
        6 => {
            if packet.len() < 40 {
                return None;
            }
            (40, packet[6])
        }
        _ => return None,
    };
    let l4_header = match proto {
        6 => {
            let off = *packet.get(ip_payload + 12)?;
            usize::from(off >> 4) * 4
        }
        17 => 8,
        _ => 0,
    };
    let l4_payload = ip_payload + l4_header;
    if l4_payload > packet.len() {
        return Some((ip_payload, packet.len()));
    }
    Some((ip_payload, l4_payload))
}

/// Flips one byte of the packet: a byte of the L4 payload if there is one, otherwise a byte
/// of the IP payload (the L4 header). The byte is XORed with a random non-zero mask. No
/// checksum is recomputed, so the receiver sees a checksum error. Returns the offset that
/// was changed, or `None` when the packet has no IP payload to corrupt (it is then left
/// unchanged).
pub fn corrupt_packet<R: Rng + ?Sized>(packet: &mut [u8], rng: &mut R) -> Option<usize> {
    let (ip_payload, l4_payload) = payload_offsets(packet)?;
    let start = if l4_payload < packet.len() {
        l4_payload
    } else if ip_payload < packet.len() {
        ip_payload
    } else {
        return None;
    };
    let idx = rng.gen_range(start..packet.len());
    let mask: u8 = rng.gen_range(1..=255);
    packet[idx] ^= mask;
    Some(idx)
}

struct Held<T> {
    due: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap, we want the earliest (then the oldest) first.
        other
            .due
            .cmp(&self.due)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A bounded, time-ordered hold queue. Time is injected (a `Duration` since an arbitrary
/// start), so the scheduling logic is tested without a clock.
pub struct DelayQueue<T> {
    heap: BinaryHeap<Held<T>>,
    cap: usize,
    seq: u64,
}

impl<T> std::fmt::Debug for DelayQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelayQueue")
            .field("len", &self.heap.len())
            .field("cap", &self.cap)
            .finish()
    }
}

impl<T> DelayQueue<T> {
    /// An empty queue holding at most `cap` items.
    pub fn new(cap: usize) -> Self {
        DelayQueue {
            heap: BinaryHeap::new(),
            cap,
            seq: 0,
        }
    }

    /// Holds `item` until `now + hold`. When the queue is full the item is handed back.
    pub fn push(&mut self, now: Duration, hold: Duration, item: T) -> Result<(), T> {
        if self.heap.len() >= self.cap {
            return Err(item);
        }
        self.seq += 1;
        self.heap.push(Held {
            due: now + hold,
            seq: self.seq,
            item,
        });
        Ok(())
    }

    /// Removes and returns the earliest item that is due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        if self.heap.peek()?.due <= now {
            self.heap.pop().map(|h| h.item)
        } else {
            None
        }
    }

    /// Removes and returns the earliest item regardless of time (used to flush on exit).
    pub fn pop_any(&mut self) -> Option<T> {
        self.heap.pop().map(|h| h.item)
    }

    /// When the next item is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.heap.peek().map(|h| h.due)
    }

    /// Number of held items.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// The emulator's per-packet logic, independent of the kernel queue: decides, corrupts,
/// holds and counts. `T` is the packet handle (an `nfq::Message` at run time).
#[derive(Debug)]
pub struct Engine<T> {
    impairer: Impairer,
    queue: DelayQueue<T>,
    stats: EmulatorStats,
}

/// What the caller must do with a packet right now.
#[derive(Debug, PartialEq)]
pub enum Action<T> {
    /// Issue `DROP` now.
    Drop(T),
    /// Issue `ACCEPT` now (zero hold).
    Accept(T),
    /// The packet is held; it comes back from [`Engine::pop_due`].
    Held,
}

impl<T> Engine<T> {
    /// Creates the engine from validated arguments.
    pub fn new(args: &EmulatorArgs) -> Self {
        Engine {
            impairer: Impairer::new(args),
            queue: DelayQueue::new(args.queue_cap),
            stats: EmulatorStats::default(),
        }
    }

    /// Handles one packet received at `now`. `payload` gives mutable access to the packet
    /// bytes when it must be corrupted.
    pub fn on_packet(
        &mut self,
        now: Duration,
        mut item: T,
        payload: impl FnOnce(&mut T) -> Option<&mut [u8]>,
    ) -> Action<T> {
        self.stats.packets += 1;
        match self.impairer.decide() {
            Fate::Lost => {
                self.stats.dropped_loss += 1;
                Action::Drop(item)
            }
            Fate::Pass { hold, corrupt } => {
                if corrupt {
                    if let Some(buf) = payload(&mut item) {
                        if self.impairer.corrupt(buf).is_some() {
                            self.stats.corrupted += 1;
                        }
                    }
                }
                if hold.is_zero() {
                    return Action::Accept(item);
                }
                match self.queue.push(now, hold, item) {
                    Ok(()) => {
                        self.stats.delayed += 1;
                        Action::Held
                    }
                    Err(item) => {
                        self.stats.dropped_overflow += 1;
                        Action::Drop(item)
                    }
                }
            }
        }
    }

    /// The next held packet that is due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<T> {
        self.queue.pop_due(now)
    }

    /// Any held packet (flush on exit).
    pub fn pop_any(&mut self) -> Option<T> {
        self.queue.pop_any()
    }

    /// When the next held packet is due.
    pub fn next_due(&self) -> Option<Duration> {
        self.queue.next_due()
    }

    /// Counts a held packet that could not be sent again.
    pub fn count_send_error(&mut self) {
        self.stats.send_errors += 1;
    }

    /// Current counters.
    pub fn stats(&self) -> EmulatorStats {
        self.stats
    }
}

/// Runs the emulator until SIGTERM or SIGINT. Must run inside the VM's namespace (the queue
/// is per network namespace). Writes the stats file on exit.
pub fn run_emulator(args: &EmulatorArgs) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install the SIGTERM/SIGINT handler")?;
    }
    let stats = run_emulator_until(args, &stop)?;
    eprintln!(
        "netlab emulator: stopped; {}",
        serde_json::to_string(&stats)?
    );
    Ok(())
}

/// Runs the emulator until `stop` becomes true; returns the final counters. On stop every
/// held packet is sent at once, the queue is unbound and the stats file written.
pub fn run_emulator_until(args: &EmulatorArgs, stop: &AtomicBool) -> anyhow::Result<EmulatorStats> {
    args.validate()?;
    let raw = reinject_socket().context(
        "cannot open the raw IPv4 socket used to send held packets; run as root (CAP_NET_RAW)",
    )?;
    let mut queue = nfq::Queue::open().context(
        "cannot open the netfilter queue socket; run as root (CAP_NET_ADMIN) on a kernel with nfnetlink_queue",
    )?;
    let q = args.queue_num;
    queue.bind(q).with_context(|| {
        format!(
            "cannot bind NFQUEUE {q}; is another emulator already bound to it in this namespace?"
        )
    })?;
    queue
        .set_copy_range(q, FULL_COPY_RANGE)
        .with_context(|| format!("cannot set the copy range of NFQUEUE {q}"))?;
    queue
        .set_queue_max_len(q, 4096)
        .with_context(|| format!("cannot set the maximum length of NFQUEUE {q}"))?;
    queue.set_nonblocking(true);

    let mut engine: Engine<Vec<u8>> = Engine::new(args);
    let start = Instant::now();
    let mut last_stats = Instant::now();
    let write_stats = |stats: &EmulatorStats| -> anyhow::Result<()> {
        if let Some(path) = &args.stats_file {
            stats
                .write_atomic(path)
                .with_context(|| format!("cannot write the stats file {}", path.display()))?;
        }
        Ok(())
    };
    write_stats(&engine.stats())?;
    let mut stats_warned = false;
    let mut send_warned = false;
    let mut last_activity = Instant::now();

    let mut send = |engine: &mut Engine<Vec<u8>>, pkt: &[u8]| {
        if let Err(e) = reinject(&raw, pkt) {
            engine.count_send_error();
            if !send_warned {
                eprintln!("netlab emulator: warning: cannot send a held packet again: {e}");
                send_warned = true;
            }
        }
    };

    while !stop.load(AtomicOrdering::Relaxed) {
        let mut received = 0usize;
        while received < 512 {
            match queue.recv() {
                Ok(mut msg) => {
                    received += 1;
                    let now = start.elapsed();
                    let copy = msg.get_payload().to_vec();
                    let corrupted_before = engine.stats().corrupted;
                    let action = engine.on_packet(now, copy, |p| Some(p.as_mut_slice()));
                    let verdict = match action {
                        Action::Drop(_) | Action::Held => nfq::Verdict::Drop,
                        Action::Accept(bytes) => {
                            if engine.stats().corrupted != corrupted_before {
                                msg.set_payload(bytes);
                            }
                            nfq::Verdict::Accept
                        }
                    };
                    msg.set_verdict(verdict);
                    queue.verdict(msg).context("cannot send a verdict")?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                Err(e) => return Err(e).context("cannot receive from the netfilter queue"),
            }
        }
        let now = start.elapsed();
        while let Some(pkt) = engine.pop_due(now) {
            send(&mut engine, &pkt);
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            // A failing periodic write must not stop the traffic: warn once, go on.
            if let Err(e) = write_stats(&engine.stats()) {
                if !stats_warned {
                    eprintln!("netlab emulator: warning: {e:#}");
                    stats_warned = true;
                }
            }
            last_stats = Instant::now();
        }
        if received > 0 {
            last_activity = Instant::now();
        } else {
            // The nfq socket cannot be polled: sleep briefly (longer when idle), never past
            // the next release.
            let mut nap = if last_activity.elapsed() < Duration::from_millis(50) {
                Duration::from_micros(250)
            } else {
                Duration::from_millis(1)
            };
            if let Some(due) = engine.next_due() {
                nap = nap.min(due.saturating_sub(start.elapsed()));
            }
            if !nap.is_zero() {
                std::thread::sleep(nap);
            }
        }
    }
    while let Some(pkt) = engine.pop_any() {
        send(&mut engine, &pkt);
    }
    let _ = queue.unbind(q);
    let stats = engine.stats();
    write_stats(&stats)?;
    Ok(stats)
}

/// A raw IPv4 socket (`IPPROTO_RAW`, so the packet carries its own header) that marks what
/// it sends with [`REINJECT_MARK`].
fn reinject_socket() -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
    s.set_mark(REINJECT_MARK)?;
    s.set_write_timeout(Some(Duration::from_millis(50)))?;
    // Room for bursts of released packets; the kernel caps it at wmem_max (×2).
    let _ = s.set_send_buffer_size(4 * 1024 * 1024);
    Ok(s)
}

/// Sends a copied IPv4 packet again to its destination.
fn reinject(sock: &socket2::Socket, pkt: &[u8]) -> std::io::Result<()> {
    let dst = ipv4_destination(pkt).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not an IPv4 packet")
    })?;
    let addr = socket2::SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
    sock.send_to(pkt, &addr)?;
    Ok(())
}

/// The destination of an IPv4 packet.
pub fn ipv4_destination(pkt: &[u8]) -> Option<std::net::Ipv4Addr> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    Some(std::net::Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]))
}

fn rule_args(op: &str, iface: &str, queue_num: u16, exempt_tcp_ports: &[u16]) -> Vec<Vec<String>> {
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["-t", "mangle", op, "POSTROUTING", "-o", iface]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let comment = format!("{RULE_COMMENT} q{queue_num}");
    let mut rules = Vec::new();
    for port in exempt_tcp_ports {
        let p = port.to_string();
        for dir in ["--dport", "--sport"] {
            rules.push(base(&[
                "-p",
                "tcp",
                dir,
                &p,
                "-m",
                "comment",
                "--comment",
                &format!("{comment} exempt"),
                "-j",
                "RETURN",
            ]));
        }
    }
    rules.push(base(&[
        "-m",
        "mark",
        "--mark",
        &format!("{REINJECT_MARK:#x}"),
        "-m",
        "comment",
        "--comment",
        &format!("{comment} reinjected"),
        "-j",
        "RETURN",
    ]));
    rules.push(base(&[
        "-m",
        "comment",
        "--comment",
        &comment,
        "-j",
        "NFQUEUE",
        "--queue-num",
        &queue_num.to_string(),
    ]));
    rules
}

/// The iptables argument lists (without the program name) that divert the packets leaving
/// `iface` to queue `queue_num`, with TCP ports in `exempt_tcp_ports` (both as source and
/// as destination port, e.g. SSH) exempted first. Run them in order inside the VM's
/// namespace. No `--queue-bypass`: if the emulator is not running, diverted packets are
/// dropped, so a dead emulator is visible as total loss rather than silently healing.
pub fn nfqueue_rule_args(
    iface: &str,
    queue_num: u16,
    exempt_tcp_ports: &[u16],
) -> Vec<Vec<String>> {
    rule_args("-A", iface, queue_num, exempt_tcp_ports)
}

/// The same rules as [`nfqueue_rule_args`] with `-D` (delete).
pub fn nfqueue_rule_delete_args(
    iface: &str,
    queue_num: u16,
    exempt_tcp_ports: &[u16],
) -> Vec<Vec<String>> {
    rule_args("-D", iface, queue_num, exempt_tcp_ports)
}

/// Whether the kernel can use the `netem` qdisc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetemProbe {
    /// `true` when `tc qdisc add … netem` succeeded.
    pub available: bool,
    /// What was tried and what happened.
    pub detail: String,
}

/// Probes once per process whether `netem` works: creates a throwaway namespace
/// (`nlprobe-<pid>-<rand>`) with a veth pair, tries `tc qdisc add dev <veth> root netem
/// delay 1ms`, and deletes the namespace.
pub fn probe_netem() -> NetemProbe {
    static CACHE: OnceLock<NetemProbe> = OnceLock::new();
    CACHE.get_or_init(probe_netem_uncached).clone()
}

struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn run_quiet(program: &str, args: &[&str]) -> Result<(), String> {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `{program}`: {e}")),
    }
}

fn probe_netem_uncached() -> NetemProbe {
    let suffix: u32 = rand::thread_rng().gen_range(0..1_000_000);
    let ns = format!("nlprobe-{}-{suffix}", std::process::id());
    if let Err(e) = run_quiet("ip", &["netns", "add", &ns]) {
        return NetemProbe {
            available: false,
            detail: format!(
                "netem could not be probed (creating namespace {ns}: {e}); run as root with iproute2 installed (sudo scripts/setup.sh)"
            ),
        };
    }
    let _guard = NsGuard(ns.clone());
    if let Err(e) = run_quiet(
        "ip",
        &[
            "-n", &ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1",
        ],
    ) {
        return NetemProbe {
            available: false,
            detail: format!("netem could not be probed (veth pair in {ns}: {e})"),
        };
    }
    match run_quiet(
        "ip",
        &[
            "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "p0", "root", "netem", "delay",
            "1ms",
        ],
    ) {
        Ok(()) => NetemProbe {
            available: true,
            detail: "tc qdisc add dev <veth> root netem delay 1ms succeeded: the kernel has netem"
                .to_string(),
        },
        Err(e) => NetemProbe {
            available: false,
            detail: format!(
                "kernel has no usable netem qdisc ({e}); delay, loss and corruption use the userspace NFQUEUE emulator"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: EmulatorArgs,
    }

    fn args(delay: f64, jitter: f64, loss: f64, corrupt: f64, seed: u64) -> EmulatorArgs {
        EmulatorArgs::from_spec(
            3,
            &ImpairSpec {
                delay_ms: delay,
                jitter_ms: jitter,
                loss_pct: loss,
                corrupt_pct: corrupt,
                seed,
            },
            None,
        )
    }

    #[test]
    fn to_args_round_trips_through_clap() {
        let mut a = args(100.0, 5.5, 10.0, 2.0, 42);
        a.stats_file = Some(PathBuf::from("/tmp/x y/stats.json"));
        let mut argv = vec!["emu".to_string()];
        argv.extend(a.to_args());
        let parsed = Cli::try_parse_from(argv).unwrap().args;
        assert_eq!(parsed, a);
        let b = args(0.0, 0.0, 0.0, 0.0, 0);
        let mut argv = vec!["emu".to_string()];
        argv.extend(b.to_args());
        assert!(!argv.contains(&"--stats-file".to_string()));
        assert_eq!(Cli::try_parse_from(argv).unwrap().args, b);
    }

    #[test]
    fn validate_rejects_out_of_range_values() {
        assert!(args(10.0, 1.0, 100.0, 0.0, 1).validate().is_ok());
        assert!(args(-1.0, 0.0, 0.0, 0.0, 1).validate().is_err());
        assert!(args(0.0, f64::NAN, 0.0, 0.0, 1).validate().is_err());
        assert!(args(0.0, 0.0, 100.5, 0.0, 1).validate().is_err());
        let e = args(0.0, 0.0, 0.0, -3.0, 1).validate().unwrap_err();
        assert!(e.to_string().contains("--corrupt-pct"), "{e}");
        let mut a = args(0.0, 0.0, 0.0, 0.0, 1);
        a.queue_cap = 0;
        assert!(a.validate().is_err());
    }

    #[test]
    fn rules_exempt_ssh_before_the_queue_rule() {
        let rules = nfqueue_rule_args("eth0", 7, &[22]);
        assert_eq!(rules.len(), 4);
        let j = |r: &Vec<String>| r.join(" ");
        assert_eq!(
            j(&rules[0]),
            "-t mangle -A POSTROUTING -o eth0 -p tcp --dport 22 -m comment --comment netlab-emulator q7 exempt -j RETURN"
        );
        assert_eq!(
            j(&rules[1]),
            "-t mangle -A POSTROUTING -o eth0 -p tcp --sport 22 -m comment --comment netlab-emulator q7 exempt -j RETURN"
        );
        assert_eq!(
            j(&rules[2]),
            "-t mangle -A POSTROUTING -o eth0 -m mark --mark 0x4e4c4d55 -m comment --comment netlab-emulator q7 reinjected -j RETURN"
        );
        assert_eq!(
            j(&rules[3]),
            "-t mangle -A POSTROUTING -o eth0 -m comment --comment netlab-emulator q7 -j NFQUEUE --queue-num 7"
        );
        assert!(!rules
            .iter()
            .any(|r| r.iter().any(|a| a == "--queue-bypass")));
        // The comment is one argv element (no shell quoting needed).
        assert!(rules[3].contains(&"netlab-emulator q7".to_string()));
        let del = nfqueue_rule_delete_args("eth0", 7, &[22]);
        assert_eq!(del.len(), 4);
        for (a, d) in rules.iter().zip(&del) {
            let mut a2 = a.clone();
            a2[2] = "-D".to_string();
            assert_eq!(&a2, d);
        }
        let none = nfqueue_rule_args("v1", 0, &[]);
        assert_eq!(none.len(), 2);
        assert_eq!(nfqueue_rule_args("v1", 0, &[22, 2222]).len(), 6);
    }

    #[test]
    fn ipv4_destination_is_read_from_the_header() {
        let p = udp_packet(b"x");
        assert_eq!(
            ipv4_destination(&p),
            Some(std::net::Ipv4Addr::new(198, 18, 250, 2))
        );
        assert_eq!(ipv4_destination(&p[..19]), None);
        assert_eq!(ipv4_destination(&[0x60; 40]), None);
    }

    #[test]
    fn stats_json_has_the_documented_fields() {
        let s = EmulatorStats {
            packets: 10,
            delayed: 7,
            dropped_loss: 2,
            corrupted: 1,
            dropped_overflow: 1,
            send_errors: 0,
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "corrupted",
                "delayed",
                "dropped_loss",
                "dropped_overflow",
                "packets",
                "send_errors"
            ]
        );
        assert_eq!(v["packets"], 10);
        assert_eq!(v["dropped_overflow"], 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stats.json");
        s.write_atomic(&p).unwrap();
        let back: EmulatorStats =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delay_queue_releases_in_time_order_and_fifo_on_ties() {
        let mut q = DelayQueue::new(100);
        q.push(ms(0), ms(50), "a").unwrap();
        q.push(ms(1), ms(50), "b").unwrap();
        q.push(ms(1), ms(50), "c").unwrap();
        q.push(ms(2), ms(10), "early").unwrap();
        assert_eq!(q.next_due(), Some(ms(12)));
        assert_eq!(q.pop_due(ms(11)), None);
        assert_eq!(q.pop_due(ms(12)), Some("early"));
        assert_eq!(q.pop_due(ms(49)), None);
        assert_eq!(q.pop_due(ms(60)), Some("a"));
        assert_eq!(q.pop_due(ms(60)), Some("b"));
        assert_eq!(q.pop_due(ms(60)), Some("c"));
        assert_eq!(q.pop_due(ms(60)), None);
        assert!(q.is_empty());
    }

    #[test]
    fn delay_queue_is_capped() {
        let mut q = DelayQueue::new(2);
        assert!(q.push(ms(0), ms(5), 1).is_ok());
        assert!(q.push(ms(0), ms(5), 2).is_ok());
        assert_eq!(q.push(ms(0), ms(5), 3), Err(3));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop_any(), Some(1));
        assert!(q.push(ms(0), ms(5), 4).is_ok());
    }

    #[test]
    fn engine_without_jitter_preserves_order_and_delays_exactly() {
        let mut e: Engine<u32> = Engine::new(&args(50.0, 0.0, 0.0, 0.0, 9));
        for i in 0..100u32 {
            assert_eq!(e.on_packet(ms(u64::from(i)), i, |_| None), Action::Held);
        }
        let mut out = Vec::new();
        for t in 0..200u64 {
            while let Some(p) = e.pop_due(ms(t)) {
                // Each packet leaves exactly 50 ms after it arrived.
                assert_eq!(u64::from(p) + 50, t);
                out.push(p);
            }
        }
        assert_eq!(out, (0..100).collect::<Vec<_>>());
        let s = e.stats();
        assert_eq!((s.packets, s.delayed, s.dropped_loss), (100, 100, 0));
    }

    #[test]
    fn engine_zero_delay_accepts_at_once() {
        let mut e: Engine<u8> = Engine::new(&args(0.0, 0.0, 0.0, 0.0, 1));
        assert_eq!(e.on_packet(ms(0), 5, |_| None), Action::Accept(5));
        assert_eq!(e.stats().delayed, 0);
        assert_eq!(e.stats().packets, 1);
    }

    #[test]
    fn engine_with_jitter_stays_within_bounds() {
        let mut e: Engine<u64> = Engine::new(&args(20.0, 5.0, 0.0, 0.0, 3));
        for i in 0..500u64 {
            e.on_packet(Duration::ZERO, i, |_| None);
        }
        let mut released = 0;
        let mut t = Duration::ZERO;
        let mut min = Duration::MAX;
        let mut max = Duration::ZERO;
        while released < 500 {
            let due = e.next_due().unwrap();
            t = t.max(due);
            while e.pop_due(t).is_some() {
                released += 1;
                min = min.min(t);
                max = max.max(t);
            }
        }
        assert!(min >= ms(15) && max <= ms(25), "{min:?} {max:?}");
        // Uniform jitter actually spreads the hold times.
        assert!(max - min > ms(8), "{min:?} {max:?}");
    }

    #[test]
    fn engine_overflow_drops_and_counts() {
        let mut a = args(100.0, 0.0, 0.0, 0.0, 1);
        a.queue_cap = 3;
        let mut e: Engine<u8> = Engine::new(&a);
        for i in 0..5u8 {
            let act = e.on_packet(ms(0), i, |_| None);
            if i < 3 {
                assert_eq!(act, Action::Held);
            } else {
                assert_eq!(act, Action::Drop(i));
            }
        }
        assert_eq!(e.stats().dropped_overflow, 2);
        assert_eq!(e.stats().delayed, 3);
    }

    #[test]
    fn seeded_loss_and_corruption_have_the_right_proportions_and_reproduce() {
        let run = |seed: u64| {
            let mut e: Engine<Vec<u8>> = Engine::new(&args(0.0, 0.0, 20.0, 10.0, seed));
            let mut accepted = Vec::new();
            for _ in 0..10_000 {
                let pkt = udp_packet(b"hello world payload");
                if let Action::Accept(p) = e.on_packet(ms(0), pkt, |p| Some(p.as_mut_slice())) {
                    accepted.push(p);
                }
            }
            (e.stats(), accepted)
        };
        let (s, accepted) = run(7);
        assert_eq!(s.packets, 10_000);
        // 20 % loss: binomial sd = 40, allow ±5 sd.
        assert!((1800..=2200).contains(&s.dropped_loss), "{s:?}");
        // 10 % of the surviving 80 %: mean 800, sd ~ 27.
        assert!((660..=940).contains(&s.corrupted), "{s:?}");
        let original = udp_packet(b"hello world payload");
        let changed = accepted.iter().filter(|p| **p != original).count() as u64;
        assert_eq!(changed, s.corrupted);
        let (s2, accepted2) = run(7);
        assert_eq!(s, s2);
        assert_eq!(accepted, accepted2);
        let (s3, _) = run(8);
        assert_ne!(s, s3);
    }

    fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&[198, 18, 250, 1]);
        p[16..20].copy_from_slice(&[198, 18, 250, 2]);
        p[20..22].copy_from_slice(&4000u16.to_be_bytes());
        p[22..24].copy_from_slice(&7u16.to_be_bytes());
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p[28..].copy_from_slice(payload);
        p
    }

    #[test]
    fn corruption_flips_exactly_one_payload_byte() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let orig = udp_packet(b"0123456789");
            let mut p = orig.clone();
            let idx = corrupt_packet(&mut p, &mut rng).unwrap();
            assert!((28..38).contains(&idx));
            let diffs: Vec<usize> = (0..p.len()).filter(|&i| p[i] != orig[i]).collect();
            assert_eq!(diffs, vec![idx]);
        }
    }

    #[test]
    fn corruption_of_a_bare_tcp_ack_hits_the_tcp_header() {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = 6;
        p[32] = 5 << 4; // data offset 20 bytes
        let orig = p.clone();
        let mut rng = StdRng::seed_from_u64(2);
        let idx = corrupt_packet(&mut p, &mut rng).unwrap();
        assert!((20..40).contains(&idx));
        assert_ne!(p, orig);
        assert_eq!(&p[..20], &orig[..20]);
    }

    #[test]
    fn corruption_never_panics_on_hostile_packets() {
        let mut rng = StdRng::seed_from_u64(3);
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x45],
            vec![0x4f; 10],
            vec![0x41; 30],
            vec![0x60; 39],
            vec![0x60; 40],
            vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            vec![0xff; 64],
        ];
        for mut c in cases {
            let orig = c.clone();
            match corrupt_packet(&mut c, &mut rng) {
                Some(i) => assert_ne!(c[i], orig[i]),
                None => assert_eq!(c, orig),
            }
        }
        for len in 0..80usize {
            for first in [0x45u8, 0x46, 0x60, 0x4f] {
                let mut p: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(37)).collect();
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                let _ = corrupt_packet(&mut p, &mut rng);
            }
        }
    }
}
