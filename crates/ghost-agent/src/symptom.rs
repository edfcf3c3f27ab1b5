//! Deterministic symptom parsing: from the engineer's words to a [`Symptom`] (VMs,
//! addresses, ports, protocol, kinds, baseline ids and separate complaints).
//!
//! No LLM is involved: every extraction is a keyword set or a pattern, listed here.
//!
//! - **VMs**: the configured source and destination names where they appear, and the words
//!   `source`/`client`/`sender` (→ the source VM) and `dest`/`destination`/`server`/
//!   `receiver` (→ the destination VM), in order of appearance.
//! - **Addresses**: dotted IPv4 addresses (each octet ≤ 255, not part of a longer dotted run).
//! - **Ports**: numbers after `port`/`ports`, `HOST:PORT`, `tcp/PORT`, `udp/PORT`,
//!   `PORT/tcp`, `tcp PORT`; bare numbers that look like ports (1024–65535, or a well-known
//!   port such as 22, 80, 443) and are not quantities (`100 ms`, `10-20x`, `5mbit`); service
//!   names: `iperf` 5001, `qperf` 19765, `ssh` 22, `http` 80, `https` 443, `postgres`/
//!   `postgresql`/`psql` 5432, `redis` 6379, `rdp` 3389, `mysql` 3306, `dns` 53. "Web server"
//!   alone implies no port: 8080 is taken only when stated.
//! - **Protocol**: `icmp`/`ping`/`traceroute` → ICMP; the words `tcp`/`udp`; otherwise TCP is
//!   implied by a TCP service name or by a port (unless `udp` is said). Parts of the text that
//!   say something works (`ping works`, `NSG allows 5001`, `small requests fine`) are context:
//!   they do not give the complaint its protocol or ports.
//! - **Kinds**: keyword sets per [`SymptomKind`] (see [`kinds_of`]).
//! - **Baseline ids**: tokens matching `(fw|eni|pmeter|rt|nsg)_\d{8}T\d{6}Z(_\w+)?`.
//! - **Complaints**: the text is cut on `;`, ` and `, `, and`, ` but `, sentence ends and
//!   new lines; a part without a kind (or only "after a change", unless it is a question) joins
//!   its neighbour, and adjacent parts with the same kinds and protocol merge, so "transfers
//!   10-20x slower and ping fails" gives two complaints while "both PostgreSQL and Redis
//!   unreachable" gives one.
//!
//! Sizes are bounded whatever the input: the text is cut at [`MAX_TEXT_BYTES`], and each list
//! at its `MAX_*` constant.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use crate::model::{Complaint, Protocol, Symptom, SymptomKind};

/// Longest text kept and parsed (bytes; cut at a character boundary).
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most VM names kept.
pub const MAX_VMS: usize = 8;
/// Most addresses kept.
pub const MAX_ADDRESSES: usize = 16;
/// Most ports kept (per symptom and per complaint).
pub const MAX_PORTS: usize = 16;
/// Most baseline ids kept.
pub const MAX_BASELINES: usize = 8;
/// Most complaints: further parts join the last one.
pub const MAX_COMPLAINTS: usize = 8;

/// The order kinds are listed in: most specific first.
const KIND_ORDER: [SymptomKind; 10] = [
    SymptomKind::Storage,
    SymptomKind::Refused,
    SymptomKind::Hangs,
    SymptomKind::Unreachable,
    SymptomKind::Throughput,
    SymptomKind::Latency,
    SymptomKind::Intermittent,
    SymptomKind::Slow,
    SymptomKind::Compliance,
    SymptomKind::AfterChange,
];

/// Service names and the port they imply.
const SERVICES: &[(&str, u16)] = &[
    ("iperf", 5001),
    ("iperf2", 5001),
    ("qperf", 19765),
    ("ssh", 22),
    ("sshd", 22),
    ("http", 80),
    ("https", 443),
    ("tls", 443),
    ("postgres", 5432),
    ("postgresql", 5432),
    ("psql", 5432),
    ("redis", 6379),
    ("rdp", 3389),
    ("mysql", 3306),
    ("dns", 53),
];

/// Services that imply TCP.
const TCP_SERVICES: &[&str] = &[
    "iperf",
    "iperf2",
    "qperf",
    "ssh",
    "sshd",
    "http",
    "https",
    "tls",
    "postgres",
    "postgresql",
    "psql",
    "redis",
    "rdp",
    "mysql",
];

/// Well-known ports taken when written as a bare number (other bare numbers must be ≥ 1024).
const WELL_KNOWN: &[u16] = &[21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 993, 995];

/// Words after a number that make it a quantity, not a port.
const UNITS: &[&str] = &[
    "x",
    "%",
    "ms",
    "msec",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "min",
    "mins",
    "minute",
    "minutes",
    "h",
    "hr",
    "hrs",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "times",
    "b",
    "kb",
    "mb",
    "gb",
    "tb",
    "kbit",
    "mbit",
    "gbit",
    "kbps",
    "mbps",
    "gbps",
    "bps",
    "bytes",
    "byte",
    "packets",
    "packet",
    "pkts",
    "connections",
    "requests",
    "users",
    "vms",
    "retries",
    "attempts",
    "us",
    "µs",
    "ns",
    "percent",
    "kib",
    "mib",
    "gib",
];

/// Words that say a part of the text describes something working (context, not a complaint).
const HEALTHY_WORDS: &[&str] = &[
    "works",
    "work",
    "working",
    "worked",
    "fine",
    "ok",
    "okay",
    "allows",
    "allow",
    "allowed",
    "succeeds",
    "succeeded",
    "reachable",
    "responds",
    "checked",
    "clean",
    "healthy",
    "normal",
];

fn re(pattern: &str) -> Regex {
    // ASCII word boundaries: the keywords are ASCII, and a Unicode `\b` would keep the
    // regex engine off its fast path on non-ASCII input. The patterns are constants of this
    // module, compiled on first use; tests/symptom_props.rs exercises every one.
    Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("constant pattern")
}

static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"[a-z0-9µ%]+"));
static BASELINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:fw|eni|pmeter|rt|nsg)_\d{8}T\d{6}Z(?:_\w+)?"));
static DOTTED: LazyLock<Regex> = LazyLock::new(|| re(r"[0-9.]+"));
static PORT_WORD: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bports?\s*(?:[:=#]\s*)?(\d{1,5}(?:\s*(?:,|and|or|/|&)?\s*\d{1,5}\b)*)"));
static HOST_PORT: LazyLock<Regex> = LazyLock::new(|| re(r"([a-z0-9._-]+):(\d{1,5})\b"));
static PROTO_PORT: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:tcp|udp)\s*[/ ]\s*(\d{1,5})\b|\b(\d{1,5})/(?:tcp|udp)\b"));
static NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"\d+"));

/// Kind keyword patterns (over the lower-cased text).
static UNREACHABLE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:unreachable|cannot|can't|cant|can not|unable|could not|couldn't|not reachable|no route|no connectivity|no internet|no network|no access|no internet access|no outbound|timed out|times out|timeout|timeouts|time out|fail|fails|failing|failed|failure|failures|broken|breaks|down|lost|total loss|no response|not responding|doesn't respond|does not respond|not working|doesn't work|does not work|don't work|stopped working|blocked|no longer|dead)\b",
    )
});
static REFUSED: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:refused|refuses|refusing|rejected|rejects|reject)\b"));
static HANGS: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:hang|hangs|hanging|hung|stall|stalls|stalled|stalling|stuck|freezes|freeze|frozen)\b")
});
static SLOW: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:slow|slower|slowness|slowly|sluggish|crawl|crawls|crawling|degraded|laggy|orders? of magnitude|takes forever)\b|\b\d+(?:\s*[-–—]\s*\d+)?\s*(?:x|×|times)\s+slower\b",
    )
});
static THROUGHPUT_STRONG: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:throughput|bandwidth|crawl|crawls|crawling|mbit|gbit|mbps|gbps|kbps|mbit/s|gbit/s)\b|\b\d+(?:\s*[-–—]\s*\d+)?\s*(?:x|×|times)\s+slower\b",
    )
});
static TRANSFER: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:transfer|transfers|transferring|download|downloads|upload|uploads|copy|copies|copying|backup|backups|replication|speed)\b",
    )
});
static RESPONSE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:response|responses|respond|responds|reply|replies|requests|queries|page loads?)\b")
});
static LATENCY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:latency|latencies|rtt|round trip|round-trip|delay|delays|delayed|lag|laggy|jitter|response time|response times|ping times?)\b",
    )
});
static INTERMITTENT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:intermittent|intermittently|sometimes|occasionally|occasional|sporadic|sporadically|flaky|flapping|randomly|now and then|reset|resets|retry|retries|retrying|packet loss|partial loss|some packets)\b",
    )
});
static AFTER_CHANGE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:change|changes|changed|change window|maintenance|rolled back|roll back|rollback|last night|yesterday|this morning|cis|hardening|scripts?|restart|restarted|reboot|rebooted|upgrade|upgraded|update|updated|patch|patched|patching|deploy|deployed|deployment|migration|migrated|ago)\b|\bafter (?:an? |the )?[a-z0-9 -]{0,30}?\b(?:fix|work)\b",
    )
});
static COMPLIANCE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:exposed|exposure|compliance|compliant|audit|attack surface|what is open|open ports|who can reach|publicly reachable|from any|permissive)\b",
    )
});

static STORAGE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"\b(?:storage|storage accounts?|blob|blobs|blob storage|blob containers?)\b")
});

/// Parses a symptom. `source_vm` and `dest_vm` are the configured pair's names (either may
/// be empty). Never panics; output sizes are bounded (see the module doc).
pub fn parse(text: &str, source_vm: &str, dest_vm: &str) -> Symptom {
    let text = cut(text, MAX_TEXT_BYTES);
    let lower = lowercase_same_len(text);

    let vms = vms_in(&lower, source_vm, dest_vm);
    let addresses = addresses_in(&lower);
    let ports = ports_in(&lower);
    let baseline_ids = BASELINE
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .fold(Vec::new(), |mut acc, id| {
            if !acc.contains(&id) && acc.len() < MAX_BASELINES {
                acc.push(id);
            }
            acc
        });
    let complaints = complaints_in(text, &lower);

    let mut kind_set = BTreeSet::new();
    for c in &complaints {
        kind_set.extend(c.kinds.iter().copied());
    }
    let kinds = ordered(&kind_set);
    let protocol = match complaints.split_first() {
        Some((first, rest)) if rest.iter().all(|c| c.protocol == first.protocol) => first.protocol,
        _ => None,
    };
    Symptom {
        text: text.to_string(),
        vms,
        addresses,
        ports,
        protocol,
        kinds,
        baseline_ids,
        complaints,
    }
}

/// The kinds named by a piece of text, most specific first.
///
/// - unreachable: `unreachable`, `cannot …`/`can't …`/`unable`, `no route`, `no internet`,
///   `no access`, `no outbound`, `timed out`,
///   `fails`/`failing`/`failures`, `broken`, `down`, `lost`, `total loss`, `not working`,
///   `blocked`, ...
/// - refused: `refused`, `rejected`/`reject`.
/// - hangs: `hang(s)`, `hung`, `stall(s)`, `stuck`, `freeze`.
/// - slow: `slow`, `slower`, `slowness`, `sluggish`, `crawl`, `degraded`, `orders of
///   magnitude`, `N x slower`.
/// - throughput: `throughput`, `bandwidth`, `crawl`, rate units, `N x slower`; or a slow word
///   with `transfer`/`download`/`upload`/`copy`/`speed`; or `slower` with no response or
///   latency words.
/// - latency: `latency`, `rtt`, `round trip`, `delay`, `lag`, `jitter`, `response time`, or a
///   slow word with `response(s)`/`requests`/`replies`.
/// - intermittent: `intermittent`, `sometimes`, `occasionally`, `sporadic`, `flaky`,
///   `reset(s)`, `retry`/`retries`, `packet loss`.
/// - after_change: `change`, `change window`, `maintenance`, `rolled back`, `last night`,
///   `CIS`, `hardening`, `script(s)`, `restart`, `upgrade`, `update`, `patch`, `deploy`,
///   `… ago`, `after the … fix/work`.
/// - compliance: `exposed`, `exposure`, `compliance`, `audit`, `attack surface`, `open
///   ports`, `who can reach`, `from any`, `permissive`.
/// - storage: `storage`, `storage account(s)`, `blob(s)`, `blob storage`, `blob
///   container(s)` (a bare `container` is not storage: Docker containers are not).
///   Added to the complaint's other kinds ("VM cannot write to storage" is unreachable and
///   storage): the path in question runs from a VM to the storage account.
pub fn kinds_of(text: &str) -> Vec<SymptomKind> {
    let lower = lowercase_same_len(cut(text, MAX_TEXT_BYTES));
    ordered(&kind_set(&lower))
}

fn kind_set(lower: &str) -> BTreeSet<SymptomKind> {
    let mut k = BTreeSet::new();
    let total_loss = lower.contains("total loss") || lower.contains("100% loss");
    let unreachable = UNREACHABLE.is_match(lower) || total_loss;
    if unreachable {
        k.insert(SymptomKind::Unreachable);
    }
    if REFUSED.is_match(lower) {
        k.insert(SymptomKind::Refused);
    }
    if HANGS.is_match(lower) {
        k.insert(SymptomKind::Hangs);
    }
    let slow = SLOW.is_match(lower);
    if slow {
        k.insert(SymptomKind::Slow);
    }
    let response = RESPONSE.is_match(lower);
    let latency = LATENCY.is_match(lower) || (slow && response);
    if latency {
        k.insert(SymptomKind::Latency);
    }
    let throughput = THROUGHPUT_STRONG.is_match(lower)
        || (slow && TRANSFER.is_match(lower))
        || (has_word(lower, "slower") && !latency);
    if throughput {
        k.insert(SymptomKind::Throughput);
        k.insert(SymptomKind::Slow);
    }
    if INTERMITTENT.is_match(lower) || (has_word(lower, "loss") && !total_loss) {
        k.insert(SymptomKind::Intermittent);
    }
    if AFTER_CHANGE.is_match(lower) {
        k.insert(SymptomKind::AfterChange);
    }
    if COMPLIANCE.is_match(lower) {
        k.insert(SymptomKind::Compliance);
    }
    if STORAGE.is_match(lower) {
        k.insert(SymptomKind::Storage);
    }
    k
}

fn ordered(set: &BTreeSet<SymptomKind>) -> Vec<SymptomKind> {
    KIND_ORDER
        .iter()
        .copied()
        .filter(|k| set.contains(k))
        .collect()
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// ASCII-lowercases (so byte offsets in the result match the input).
fn lowercase_same_len(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn has_word(lower: &str, word: &str) -> bool {
    WORD.find_iter(lower).any(|m| m.as_str() == word)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Positions of `needle` in `hay` as a whole name (not inside a longer name).
fn name_positions(hay: &str, needle: &str) -> Vec<usize> {
    let mut out = Vec::new();
    if needle.is_empty() {
        return out;
    }
    for (pos, _) in hay.match_indices(needle) {
        let before = hay[..pos].chars().next_back();
        let after = hay[pos + needle.len()..].chars().next();
        if !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char) {
            out.push(pos);
        }
        if out.len() > MAX_VMS * 4 {
            break;
        }
    }
    out
}

fn vms_in(lower: &str, source_vm: &str, dest_vm: &str) -> Vec<String> {
    let mut hits: Vec<(usize, String)> = Vec::new();
    for name in [source_vm, dest_vm] {
        let name_l = name.trim().to_ascii_lowercase();
        if name_l.is_empty() {
            continue;
        }
        for pos in name_positions(lower, &name_l) {
            hits.push((pos, name.trim().to_string()));
        }
    }
    for m in WORD.find_iter(lower) {
        let vm = match m.as_str() {
            "source" | "client" | "sender" => source_vm,
            "dest" | "destination" | "server" | "receiver" => dest_vm,
            _ => continue,
        };
        let vm = vm.trim();
        if vm.is_empty() {
            continue;
        }
        // "source-vm" is already found as a name; the word inside it is not a second hit.
        let before = lower[..m.start()].chars().next_back();
        let after = lower[m.end()..].chars().next();
        if before.is_some_and(is_name_char) || after.is_some_and(is_name_char) {
            continue;
        }
        hits.push((m.start(), vm.to_string()));
    }
    hits.sort_by_key(|(pos, _)| *pos);
    let mut vms: Vec<String> = Vec::new();
    for (_, vm) in hits {
        if !vms.contains(&vm) && vms.len() < MAX_VMS {
            vms.push(vm);
        }
    }
    vms
}

fn addresses_in(lower: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in DOTTED.find_iter(lower) {
        let run = m.as_str().trim_end_matches('.');
        // A run glued to letters (`v1.2.3.4`) is not an address.
        let before = lower[..m.start()].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        if run.split('.').count() != 4 {
            continue;
        }
        if let Ok(addr) = run.parse::<Ipv4Addr>() {
            let s = addr.to_string();
            if !out.contains(&s) && out.len() < MAX_ADDRESSES {
                out.push(s);
            }
        }
    }
    out
}

fn push_port(out: &mut Vec<(usize, u16)>, pos: usize, digits: &str) {
    if let Ok(p) = digits.parse::<u16>() {
        if p != 0 {
            out.push((pos, p));
        }
    }
}

/// Ports with the byte offset where each was found.
fn port_hits(lower: &str) -> Vec<(usize, u16)> {
    let mut hits: Vec<(usize, u16)> = Vec::new();
    for c in PORT_WORD.captures_iter(lower) {
        if let Some(list) = c.get(1) {
            for n in NUMBER.find_iter(list.as_str()) {
                push_port(&mut hits, list.start() + n.start(), n.as_str());
            }
        }
    }
    for c in HOST_PORT.captures_iter(lower) {
        let (Some(host), Some(port)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let host_s = host.as_str().trim_end_matches('.');
        let hostish =
            host_s.chars().any(|ch| ch.is_ascii_alphabetic()) || host_s.parse::<Ipv4Addr>().is_ok();
        // `10:45:00` is a time, not a port.
        let after = lower[port.end()..].chars().next();
        if hostish && after != Some(':') {
            push_port(&mut hits, port.start(), port.as_str());
        }
    }
    for c in PROTO_PORT.captures_iter(lower) {
        if let Some(p) = c.get(1).or_else(|| c.get(2)) {
            push_port(&mut hits, p.start(), p.as_str());
        }
    }
    for m in NUMBER.find_iter(lower) {
        if let Some(p) = bare_port(lower, m.start(), m.end()) {
            hits.push((m.start(), p));
        }
    }
    // A service name implies its default port unless a port is stated right after it
    // (`redis on dest-vm:6380`, `http://198.18.1.5:8080`).
    let explicit: Vec<usize> = hits.iter().map(|(pos, _)| *pos).collect();
    for m in WORD.find_iter(lower) {
        if let Some((_, p)) = SERVICES.iter().find(|(name, _)| *name == m.as_str()) {
            let stated = explicit.iter().any(|pos| {
                *pos >= m.end() && *pos - m.end() <= 40 && {
                    let between = &lower[m.end()..*pos];
                    !between.contains([';', ',']) && !between.contains(" and ")
                }
            });
            if !stated {
                hits.push((m.start(), *p));
            }
        }
    }
    hits.sort_by_key(|(pos, _)| *pos);
    hits
}

/// A bare number that reads as a port: not glued to other characters, not a quantity.
fn bare_port(lower: &str, start: usize, end: usize) -> Option<u16> {
    let digits = &lower[start..end];
    if digits.len() < 2 || digits.len() > 5 {
        return None;
    }
    let before = lower[..start].chars().next_back();
    let after = lower[end..].chars().next();
    if before.is_some_and(|c| c.is_alphanumeric() || ".:/-#$€£,_".contains(c)) {
        return None;
    }
    if after.is_some_and(|c| c.is_alphanumeric() || "./-%×_".contains(c)) {
        return None;
    }
    if after == Some(':') && lower[end + 1..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if after == Some(',') && lower[end + 1..].starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let next_word = lower[end..]
        .trim_start()
        .split(|c: char| c.is_whitespace() || ",;:.)".contains(c))
        .next()
        .unwrap_or("");
    if UNITS.contains(&next_word) {
        return None;
    }
    let prev_word = lower[..start].split_whitespace().next_back().unwrap_or("");
    if matches!(
        prev_word,
        "since" | "in" | "year" | "phase" | "step" | "priority" | "prio" | "rule" | "#"
    ) {
        return None;
    }
    let p: u16 = digits.parse().ok()?;
    if p >= 1024 || WELL_KNOWN.contains(&p) {
        Some(p)
    } else {
        None
    }
}

fn ports_in(lower: &str) -> Vec<u16> {
    let mut out: Vec<u16> = Vec::new();
    for (_, p) in port_hits(lower) {
        if !out.contains(&p) && out.len() < MAX_PORTS {
            out.push(p);
        }
    }
    out
}

fn explicit_protocols(lower: &str) -> BTreeSet<Protocol> {
    let mut out = BTreeSet::new();
    for m in WORD.find_iter(lower) {
        match m.as_str() {
            "icmp" | "ping" | "pings" | "pinging" | "traceroute" => {
                out.insert(Protocol::Icmp);
            }
            "tcp" => {
                out.insert(Protocol::Tcp);
            }
            "udp" => {
                out.insert(Protocol::Udp);
            }
            _ => {}
        }
    }
    out
}

fn implies_tcp(lower: &str) -> bool {
    WORD.find_iter(lower)
        .any(|m| TCP_SERVICES.contains(&m.as_str()))
}

/// A part of the text between complaint separators, with its byte span.
struct Part {
    start: usize,
    end: usize,
    kinds: BTreeSet<SymptomKind>,
    question: bool,
}

/// Byte spans of the parts of `lower` between complaint separators.
fn split_parts(lower: &str) -> Vec<(usize, usize)> {
    const SEPS: &[&str] = &[
        ";", ", and ", " and ", " but ", "? ", ". ", "! ", "\n", "\r",
    ];
    let mut spans = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let bytes = lower.as_bytes();
    while i < bytes.len() {
        let rest = &lower[i..];
        let sep = SEPS.iter().find(|s| rest.starts_with(**s));
        // "between source-vm and dest-vm" names a pair, not two complaints.
        let pair = sep == Some(&" and ") && {
            let mut words = lower[start..i].split_whitespace().rev();
            words.next().is_some() && words.next() == Some("between")
        };
        if let Some(sep) = sep.filter(|_| !pair) {
            // Keep a question mark or full stop with the part it ends.
            let keep = usize::from(sep.starts_with(['?', '.', '!']));
            spans.push((start, i + keep));
            i += sep.len();
            start = i;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    spans.push((start, lower.len()));
    spans
        .into_iter()
        .filter(|(s, e)| !lower[*s..*e].trim().is_empty())
        .collect()
}

/// Sub-clauses of a complaint's span (split on commas and colons) that carry a complaint's
/// protocol and ports: those that do not merely say something works.
fn telling_clauses(lower: &str, start: usize, end: usize) -> Vec<&str> {
    let span = &lower[start..end];
    split_parts(span)
        .into_iter()
        .flat_map(|(s, e)| span[s..e].split(','))
        .filter(|clause| !clause.trim().is_empty())
        .filter(|clause| {
            let kinds = kind_set(clause);
            let only_context = kinds.iter().all(|k| *k == SymptomKind::AfterChange);
            let healthy = WORD
                .find_iter(clause)
                .any(|m| HEALTHY_WORDS.contains(&m.as_str()));
            !(only_context && healthy)
        })
        .collect()
}

fn complaint_from(text: &str, lower: &str, start: usize, end: usize) -> Complaint {
    let span_text = text[start..end].trim().to_string();
    let kinds = ordered(&kind_set(&lower[start..end]));
    let mut ports: Vec<u16> = Vec::new();
    let mut explicit = BTreeSet::new();
    let mut tcp_implied = false;
    let mut udp_said = false;
    for clause in telling_clauses(lower, start, end) {
        for (_, p) in port_hits(clause) {
            if !ports.contains(&p) && ports.len() < MAX_PORTS {
                ports.push(p);
            }
        }
        let e = explicit_protocols(clause);
        udp_said |= e.contains(&Protocol::Udp);
        explicit.extend(e);
        tcp_implied |= implies_tcp(clause);
    }
    let protocol = if explicit.len() == 1 {
        explicit.iter().next().copied()
    } else if explicit.is_empty() && (tcp_implied || (!ports.is_empty() && !udp_said)) {
        Some(Protocol::Tcp)
    } else {
        None
    };
    let internet = toward_internet(&lower[start..end], &kinds);
    Complaint {
        text: span_text,
        kinds,
        ports,
        protocol,
        internet,
    }
}

/// A connectivity or performance complaint (or one of no recognised kind) about reaching the internet ("all internet
/// lost", "no internet access", "cannot reach the internet", "internet is slow"). Traffic
/// coming from the internet ("users from the internet cannot reach the site") is about the
/// VM's inbound side, and exposure to it is a compliance question: neither counts.
fn toward_internet(lower: &str, kinds: &[SymptomKind]) -> bool {
    if !kinds.is_empty()
        && !kinds
            .iter()
            .any(|k| k.is_connectivity() || k.is_performance())
    {
        return false;
    }
    let words: Vec<&str> = WORD.find_iter(lower).map(|m| m.as_str()).collect();
    words.iter().enumerate().any(|(i, w)| {
        *w == "internet"
            && !matches!(
                (
                    i.checked_sub(2).map(|j| words[j]),
                    i.checked_sub(1).map(|j| words[j])
                ),
                (_, Some("from")) | (Some("from"), Some("the"))
            )
    })
}

fn complaints_in(text: &str, lower: &str) -> Vec<Complaint> {
    let parts: Vec<Part> = split_parts(lower)
        .into_iter()
        .map(|(start, end)| {
            let seg = &lower[start..end];
            Part {
                start,
                end,
                kinds: kind_set(seg),
                question: seg.trim_end().ends_with('?'),
            }
        })
        .collect();

    // Group parts into complaint spans: (start, end, kinds, protocol of the first part).
    type Group = (usize, usize, BTreeSet<SymptomKind>, Option<Protocol>);
    let mut groups: Vec<Group> = Vec::new();
    let mut pending: Option<usize> = None; // start of kind-less parts before any complaint
    for part in &parts {
        let modifier = part.kinds.is_empty()
            || (part.kinds.iter().all(|k| *k == SymptomKind::AfterChange) && !part.question);
        if modifier {
            if let Some(last) = groups.last_mut() {
                last.1 = part.end;
                last.2.extend(part.kinds.iter().copied());
            } else if pending.is_none() {
                pending = Some(part.start);
            }
            continue;
        }
        let start = pending.take().unwrap_or(part.start);
        let full = groups.len() >= MAX_COMPLAINTS;
        let proto = if full {
            None
        } else {
            complaint_from(text, lower, start, part.end).protocol
        };
        // "After a change" qualifies a complaint; it does not make a different one.
        let core = |k: &BTreeSet<SymptomKind>| -> BTreeSet<SymptomKind> {
            k.iter()
                .copied()
                .filter(|k| *k != SymptomKind::AfterChange)
                .collect()
        };
        let same_as_last = groups
            .last()
            .is_some_and(|(_, _, lk, lp)| core(lk) == core(&part.kinds) && *lp == proto);
        if full || same_as_last {
            if let Some(last) = groups.last_mut() {
                last.1 = part.end;
                last.2.extend(part.kinds.iter().copied());
            }
        } else {
            groups.push((start, part.end, part.kinds.clone(), proto));
        }
    }
    if groups.is_empty() {
        if let (Some(first), Some(last)) = (parts.first(), parts.last()) {
            groups.push((first.start, last.end, BTreeSet::new(), None));
        }
    }
    groups
        .into_iter()
        .map(|(s, e, _, _)| complaint_from(text, lower, s, e))
        .collect()
}

#[cfg(test)]
mod storage_tests {
    use super::*;

    #[test]
    fn storage_complaints_are_recognised_and_keep_their_other_kinds() {
        let s = parse(
            "VM cannot write to storage after subnet maintenance",
            "source-vm",
            "dest-vm",
        );
        assert_eq!(s.complaints.len(), 1);
        assert_eq!(
            s.complaints[0].kinds,
            vec![
                SymptomKind::Storage,
                SymptomKind::Unreachable,
                SymptomKind::AfterChange
            ]
        );
        assert!(kinds_of("blob uploads get 403").contains(&SymptomKind::Storage));
        assert!(kinds_of("the storage account refuses us").contains(&SymptomKind::Storage));
        // Docker containers are not storage; neither is an unrelated word.
        assert!(
            !kinds_of("container networking broken after daemon restart")
                .contains(&SymptomKind::Storage)
        );
        assert!(!kinds_of("blobfish are unreachable").contains(&SymptomKind::Storage));
        // A storage complaint next to a VM-to-VM one is its own thread.
        let s = parse(
            "source cannot reach dest:8080 and blob writes fail",
            "source-vm",
            "dest-vm",
        );
        assert_eq!(s.complaints.len(), 2, "{s:#?}");
        assert!(!s.complaints[0].kinds.contains(&SymptomKind::Storage));
        assert!(s.complaints[1].kinds.contains(&SymptomKind::Storage));
    }

    #[test]
    fn complaints_about_reaching_the_internet_are_marked() {
        let internet = |t: &str| {
            parse(t, "source-vm", "dest-vm")
                .complaints
                .iter()
                .map(|c| c.internet)
                .collect::<Vec<_>>()
        };
        assert_eq!(internet("all internet lost"), vec![true]);
        let s = parse("dest-vm has no internet access", "source-vm", "dest-vm");
        assert!(s.complaints[0].kinds.contains(&SymptomKind::Unreachable));
        assert_eq!(s.vms, vec!["dest-vm".to_string()]);
        assert_eq!(internet("no internet access from source-vm"), vec![true]);
        assert_eq!(internet("the internet is slow since Tuesday"), vec![true]);
        // Traffic from the internet is the VM's inbound side; exposure is compliance.
        assert_eq!(
            internet("users from the internet cannot reach the web server"),
            vec![false]
        );
        assert_eq!(internet("is RDP exposed to the internet?"), vec![false]);
        assert_eq!(internet("iperf to dest-vm hangs"), vec![false]);
        // Phase 2 of the same story names no internet: a pair complaint.
        assert_eq!(internet("HTTPS works, HTTP hangs"), vec![false]);
        // Two complaints, one about the internet.
        assert_eq!(
            internet("dest-vm:8080 refused and the internet is unreachable"),
            vec![false, true]
        );
    }
}
