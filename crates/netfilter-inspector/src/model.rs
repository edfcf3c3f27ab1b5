//! The vendor-independent model every format lands in (Batfish-style): families, tables,
//! chains, rules with structured matches and typed targets, nft sets and maps, tc qdiscs
//! and filters. Diff, snapshot and check work on this model only.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A netfilter address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4 (`iptables`, `table ip`).
    Ip,
    /// IPv6 (`ip6tables`, `table ip6`).
    Ip6,
    /// Both IPv4 and IPv6 (`table inet`).
    Inet,
    /// ARP.
    Arp,
    /// Bridge.
    Bridge,
    /// Per-device ingress/egress.
    Netdev,
}

impl Family {
    /// The nft spelling (`ip`, `ip6`, `inet`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Arp => "arp",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
        }
    }

    /// Parses the nft spelling.
    pub fn parse(s: &str) -> Option<Family> {
        Some(match s {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            "arp" => Family::Arp,
            "bridge" => Family::Bridge,
            "netdev" => Family::Netdev,
            _ => return None,
        })
    }
}

/// Which tool produced a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// `iptables-save`/`ip6tables-save` output (legacy or nft back end).
    Iptables,
    /// Native nftables (`nft -j list ruleset`).
    Nftables,
}

/// Which iptables back end an `iptables-save`-style table came from. Two tables of the same
/// family and name from different back ends are different kernel objects (legacy xtables
/// and nf_tables) and are kept apart everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IptablesVariant {
    /// Legacy xtables (`iptables-legacy-save`, or a header without `(nf_tables)`).
    Legacy,
    /// nf_tables through the iptables compat layer (`iptables-nft-save`, `(nf_tables)`).
    Nft,
}

impl IptablesVariant {
    /// `legacy` or `nft`.
    pub fn as_str(self) -> &'static str {
        match self {
            IptablesVariant::Legacy => "legacy",
            IptablesVariant::Nft => "nft",
        }
    }
}

/// Packet and byte counters. Never part of drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

/// A whole parsed ruleset: netfilter tables plus traffic control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Ruleset {
    /// Netfilter tables (iptables and nftables).
    pub tables: Vec<Table>,
    /// tc qdiscs.
    #[serde(default)]
    pub qdiscs: Vec<Qdisc>,
    /// tc filters.
    #[serde(default)]
    pub filters: Vec<TcFilter>,
    /// Parser warnings (unknown options kept verbatim, skipped lines).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Tool signatures seen in the input (e.g. `iptables-nft`, `iptables-legacy`).
    #[serde(default)]
    pub producers: Vec<String>,
}

impl Ruleset {
    /// Appends another ruleset (several input files make one snapshot).
    pub fn merge(&mut self, other: Ruleset) {
        self.tables.extend(other.tables);
        self.qdiscs.extend(other.qdiscs);
        self.filters.extend(other.filters);
        self.warnings.extend(other.warnings);
        for p in other.producers {
            if !self.producers.contains(&p) {
                self.producers.push(p);
            }
        }
    }

    /// Drops nft tables that an iptables-save input already gave (iptables-nft tables seen
    /// through `nft -j` as well); returns how many were dropped. A table is one kernel
    /// object per (family, name) in nf_tables, so an nft table is the iptables-nft view's
    /// table when an iptables-nft table (or one whose back end is unknown) has the same
    /// family and name; tables of the legacy back end are invisible to nft and never
    /// cause a drop.
    pub fn dedupe_iptables_nft(&mut self) -> usize {
        let ipt: Vec<(Family, String)> = self
            .tables
            .iter()
            .filter(|t| t.shadows_nft())
            .map(|t| (t.family, t.name.clone()))
            .collect();
        let before = self.tables.len();
        self.tables.retain(|t| {
            t.backend == Backend::Iptables
                || !ipt.iter().any(|(f, n)| *f == t.family && *n == t.name)
        });
        before - self.tables.len()
    }

    /// The table `(family, name, backend)`, if present.
    pub fn table(&self, family: Family, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name == name)
    }
}

/// A parser warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// 1-based line (0 when not line-based).
    pub line: usize,
    /// What was odd.
    pub message: String,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Address family.
    pub family: Family,
    /// Table name (`filter`, `nat`, …).
    pub name: String,
    /// Which tool produced it.
    pub backend: Backend,
    /// For `iptables` tables: the back end (legacy or nft) when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<IptablesVariant>,
    /// Chains in input order.
    pub chains: Vec<Chain>,
    /// nft sets and maps.
    #[serde(default)]
    pub sets: Vec<NftSet>,
}

impl Table {
    /// The back end as one label: `iptables-legacy`, `iptables-nft`, `iptables` (back end
    /// unknown) or `nftables`.
    pub fn backend_label(&self) -> &'static str {
        match (self.backend, self.variant) {
            (Backend::Nftables, _) => "nftables",
            (Backend::Iptables, Some(IptablesVariant::Legacy)) => "iptables-legacy",
            (Backend::Iptables, Some(IptablesVariant::Nft)) => "iptables-nft",
            (Backend::Iptables, None) => "iptables",
        }
    }

    /// Whether this iptables table is (or may be) the iptables-nft view of an nf_tables
    /// table that `nft -j` shows too.
    pub fn shadows_nft(&self) -> bool {
        self.backend == Backend::Iptables && self.variant != Some(IptablesVariant::Legacy)
    }

    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The set or map named `name`.
    pub fn set(&self, name: &str) -> Option<&NftSet> {
        self.sets.iter().find(|s| s.name == name)
    }
}

/// A chain policy of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Policy {
    /// Accept what falls off the end.
    Accept,
    /// Drop what falls off the end.
    Drop,
}

impl Policy {
    /// `ACCEPT` or `DROP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// Hook data of a base chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseChain {
    /// Netfilter hook: `prerouting`, `input`, `forward`, `output`, `postrouting`, `ingress`, `egress`.
    pub hook: String,
    /// Chain type: `filter`, `nat`, `route`.
    pub chain_type: String,
    /// Priority (iptables tables get the kernel's fixed priorities).
    pub priority: i32,
    /// Policy.
    pub policy: Policy,
    /// Device of a netdev chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A chain: a base chain attached to a hook, or a user chain reached by jump/goto.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    /// Name.
    pub name: String,
    /// Hook data; `None` for a user chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseChain>,
    /// Rules in order. Serialised as an array of compact one-line rule objects (see
    /// [`compact_rules`]).
    #[serde(serialize_with = "compact_rules")]
    pub rules: Vec<Rule>,
    /// Policy counters of an iptables chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

impl PortRange {
    /// Whether `p` is inside.
    pub fn contains(&self, p: u16) -> bool {
        self.start <= p && p <= self.end
    }
}

/// One condition of a rule, possibly negated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// `!` / `!=`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub negated: bool,
    /// The iptables match module it came under (`tcp`, `multiport`, …). Known names are
    /// shared static strings (no allocation per rule).
    #[serde(
        default,
        rename = "via_module",
        skip_serializing_if = "Option::is_none"
    )]
    pub module: Option<Cow<'static, str>>,
    /// The option as spelled in the input (`--dports`, `-s`, …; `implicit` for a protocol
    /// nft implies). Common options are shared static strings.
    #[serde(default, rename = "spelled", skip_serializing_if = "Option::is_none")]
    pub option: Option<Cow<'static, str>>,
    /// What is matched.
    #[serde(flatten)]
    pub cond: Cond,
}

/// What a match tests, as structured fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "match", rename_all = "snake_case")]
pub enum Cond {
    /// Layer-4 protocol (`-p tcp`, `meta l4proto tcp`).
    Protocol {
        /// Protocol name or number.
        protocol: String,
    },
    /// Source addresses/prefixes (`-s`, `ip saddr`).
    Source {
        /// CIDRs or addresses.
        addrs: Vec<String>,
    },
    /// Destination addresses/prefixes.
    Destination {
        /// CIDRs or addresses.
        addrs: Vec<String>,
    },
    /// Address range (`-m iprange`).
    AddrRange {
        /// `src` or `dst`.
        dir: String,
        /// First address.
        from: String,
        /// Last address.
        to: String,
    },
    /// Input interface (`-i`, `iifname`); `+` suffix is a wildcard.
    InInterface {
        /// Name.
        name: String,
    },
    /// Output interface.
    OutInterface {
        /// Name.
        name: String,
    },
    /// Source ports (`--sport`, `--sports`, `th sport`).
    SourcePort {
        /// Ranges.
        ports: Vec<PortRange>,
    },
    /// Destination ports.
    DestPort {
        /// Ranges.
        ports: Vec<PortRange>,
    },
    /// Either port (`multiport --ports`).
    AnyPort {
        /// Ranges.
        ports: Vec<PortRange>,
    },
    /// ICMP / ICMPv6 type.
    IcmpType {
        /// Type name or number (with optional `/code`).
        icmp_type: String,
    },
    /// Connection tracking state (`state`, `conntrack --ctstate`, `ct state`).
    CtState {
        /// Upper-case states.
        states: Vec<String>,
    },
    /// TCP flags (`--tcp-flags mask comp`, `--syn`).
    TcpFlags {
        /// Flags examined.
        mask: Vec<String>,
        /// Flags that must be set.
        set: Vec<String>,
    },
    /// A comment.
    Comment {
        /// Text.
        text: String,
    },
    /// Rate limit (`-m limit`, nft `limit`).
    Limit {
        /// Rate, e.g. `5/sec`.
        rate: String,
        /// Burst.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        burst: Option<u32>,
        /// nft `limit rate over` (matches above the rate).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        over: bool,
    },
    /// Packet mark (`-m mark`, `meta mark`).
    Mark {
        /// Value.
        value: u32,
        /// Mask.
        mask: u32,
    },
    /// Address type (`-m addrtype`).
    AddrType {
        /// `--src-type`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        src_type: Option<String>,
        /// `--dst-type`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst_type: Option<String>,
    },
    /// A set lookup (`-m set --match-set`, nft `@set`).
    SetLookup {
        /// Set name.
        set: String,
        /// What is looked up (`src`, `dst`, `ip saddr`, `tcp dport`, …).
        key: String,
    },
    /// Another iptables match module or nft expression with structured option/arguments
    /// (hashlimit, connmark, mac, owner, physdev, statistic, recent, string, length, ttl,
    /// hl, pkttype, tcpmss, numgen, …).
    Module {
        /// Module (`statistic`, `owner`, nft `meta`, …).
        module: String,
        /// Option (`mode`, `uid-owner`, …) or nft left-hand side.
        option: String,
        /// Arguments.
        args: Vec<String>,
    },
    /// Something not understood, kept verbatim.
    Unknown {
        /// The text as it appeared.
        text: String,
    },
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// No verdict (counting rule).
    None,
    /// ACCEPT.
    Accept,
    /// DROP.
    Drop,
    /// RETURN.
    Return,
    /// QUEUE (legacy userspace queue).
    Queue,
    /// nft `continue`.
    Continue,
    /// REJECT with its type.
    Reject {
        /// `--reject-with` / nft reject type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
    },
    /// Jump to a user chain.
    Jump {
        /// Chain.
        chain: String,
    },
    /// Goto a user chain.
    Goto {
        /// Chain.
        chain: String,
    },
    /// An extension target / nft statement (LOG, MARK, DNAT, SNAT, MASQUERADE, NFQUEUE, …).
    Extension {
        /// Name (upper case for iptables targets).
        name: String,
        /// Its options verbatim.
        args: Vec<String>,
        /// Whether it ends rule traversal.
        terminating: bool,
    },
    /// An nft verdict map lookup.
    VerdictMap {
        /// The key expression (`tcp dport`, `ip saddr`, …).
        key: String,
        /// A named map (`port_verdicts`) when not inline.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        map: Option<String>,
        /// Inline elements.
        #[serde(default)]
        entries: Vec<SetElement>,
    },
}

impl Target {
    /// Whether this is a DROP or REJECT.
    pub fn is_blocking(&self) -> bool {
        matches!(self, Target::Drop | Target::Reject { .. })
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// 1-based position in its chain.
    pub position: usize,
    /// Conditions (all must hold).
    pub matches: Vec<Match>,
    /// The verdict or extension target.
    pub target: Target,
    /// Non-terminal statements of an nft rule besides the verdict (log, mark set, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<String>,
    /// Counters, never part of the diff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<Counters>,
    /// nft rule handle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<u64>,
    /// Normalised rule text (no chain name, no counters): the identity used by the diff.
    pub text: String,
}

/// An nft set or map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SetElement {
    /// Key (`198.18.9.0/24`, `22`, `10000-10100`, `tcp . 22`).
    pub key: String,
    /// Map value (`drop`, `jump web`, an address…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// An nft set or map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NftSet {
    /// Name.
    pub name: String,
    /// `set` or `map`.
    pub kind: String,
    /// Key type (`ipv4_addr`, `inet_service`, …).
    pub key_type: String,
    /// Map value type (`verdict`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_type: Option<String>,
    /// Flags (`interval`, `timeout`, …).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Elements.
    pub elements: Vec<SetElement>,
}

/// netem / generic loss model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Loss {
    /// Independent random loss.
    Random {
        /// Percent.
        percent: f64,
        /// Correlation percent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correlation: Option<f64>,
    },
    /// 4-state Markov model (`loss state p13 p31 p32 p23 p14`).
    State {
        /// Probabilities in percent, in the order given.
        params: Vec<f64>,
    },
    /// Gilbert-Elliott model (`loss gemodel p r 1-h 1-k`).
    Gemodel {
        /// Probabilities in percent, in the order given.
        params: Vec<f64>,
    },
}

/// Typed qdisc parameters (only those present are set).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QdiscParams {
    /// Rate in bits per second (tbf, htb, netem rate, cake bandwidth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
    /// Burst in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_bytes: Option<u64>,
    /// tbf latency in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
    /// Queue limit (packets for netem/pfifo, bytes for tbf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// netem delay in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_us: Option<u64>,
    /// netem jitter in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_us: Option<u64>,
    /// netem delay correlation in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_correlation: Option<f64>,
    /// netem delay distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// netem loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<Loss>,
    /// netem corruption percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_percent: Option<f64>,
    /// netem duplication percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_percent: Option<f64>,
    /// netem reordering percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_percent: Option<f64>,
    /// htb default class, prio bands, etc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_class: Option<String>,
}

/// A tc qdisc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qdisc {
    /// Device.
    pub dev: String,
    /// Kind (`netem`, `tbf`, `htb`, `clsact`, …).
    pub kind: String,
    /// Handle (`1:`).
    pub handle: String,
    /// `root` or the parent handle.
    pub parent: String,
    /// Typed parameters.
    pub params: QdiscParams,
    /// Options verbatim (normalised spacing).
    pub options: String,
}

impl Qdisc {
    /// Whether it limits rate, adds delay or loses/corrupts packets.
    pub fn is_impairing(&self) -> bool {
        let p = &self.params;
        matches!(self.kind.as_str(), "tbf" | "netem")
            && (p.rate_bps.is_some()
                || p.delay_us.is_some_and(|d| d > 0)
                || p.loss.is_some()
                || p.corrupt_percent.is_some_and(|c| c > 0.0)
                || p.duplicate_percent.is_some_and(|c| c > 0.0)
                || p.reorder_percent.is_some_and(|c| c > 0.0))
            || (self.kind == "cake" && p.rate_bps.is_some())
            || (self.kind == "htb" && p.rate_bps.is_some())
    }

    /// Identity used by the diff.
    pub fn key(&self) -> String {
        format!("{} {} {}", self.dev, self.parent, self.kind)
    }
}

/// A u32 selector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct U32Match {
    /// Value (hex as printed).
    pub value: u32,
    /// Mask.
    pub mask: u32,
    /// Byte offset.
    pub offset: i32,
}

/// A tc filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcFilter {
    /// Device when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Parent qdisc.
    pub parent: String,
    /// Protocol (`ip`, `all`).
    pub protocol: String,
    /// Preference.
    pub pref: u32,
    /// Classifier (`u32`, `bpf`, …).
    pub kind: String,
    /// Destination class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flowid: Option<String>,
    /// u32 selectors.
    #[serde(default)]
    pub matches: Vec<U32Match>,
    /// Whether a selector matches TCP/UDP port 22 (the SSH exemption pattern).
    pub exempts_ssh: bool,
    /// Normalised text.
    pub text: String,
}

impl TcFilter {
    /// Sets the parent of a filter listed without one (`tc filter show dev D parent H`
    /// leaves it out) and updates the normalised text accordingly.
    pub fn set_parent(&mut self, parent: &str) {
        let rest = self
            .text
            .strip_prefix(&format!("parent {} ", self.parent))
            .unwrap_or(&self.text)
            .to_string();
        self.parent = parent.to_string();
        self.text = format!("parent {parent} {rest}");
    }
}

/// Serialises rules as an array whose elements are compact JSON (one rule per line even in
/// a pretty-printed document): the artifact of a 700,000-line ruleset is about half the size
/// and much faster to write than with every field of every match indented. The document is
/// the same JSON value either way.
///
/// While [`crate::snapshot::write_artifact`] serialises the outline of a snapshot, each
/// rules array is replaced by a placeholder and its length recorded (the rules themselves
/// are then written on several cores and spliced in).
pub fn compact_rules<S: serde::Serializer>(rules: &[Rule], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeSeq};
    let outline = RULES_OUTLINE.with(|o| match o.borrow_mut().as_mut() {
        Some(lens) => {
            lens.push(rules.len());
            true
        }
        None => false,
    });
    if outline {
        return serde::Serialize::serialize(serde_json::value::RawValue::NULL, s);
    }
    let mut seq = s.serialize_seq(Some(rules.len()))?;
    for r in rules {
        let raw = serde_json::value::to_raw_value(r).map_err(S::Error::custom)?;
        seq.serialize_element(&raw)?;
    }
    seq.end()
}

thread_local! {
    /// `Some` while an outline is serialised on this thread: the lengths of the rules arrays
    /// replaced by placeholders, in document order.
    pub(crate) static RULES_OUTLINE: std::cell::RefCell<Option<Vec<usize>>> =
        const { std::cell::RefCell::new(None) };
}
