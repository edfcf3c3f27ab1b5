//! Would this packet pass? Walks the ruleset as the kernel would for a NEW connection.
//!
//! Direction `in` passes the `prerouting` then `input` hooks, `out` passes `output` then
//! `postrouting`. Every base chain of a hook (iptables tables with their fixed priorities,
//! nft chains with theirs) is evaluated in priority order; a packet must pass all of them.
//! Jumps, gotos, RETURN and policies are followed. A match the evaluator cannot decide
//! (random statistic, recent lists, owner, string, sets without elements, …) that could
//! change the verdict makes the answer INDETERMINATE, with the reason.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{
    Backend, Chain, Cond, Family, IptablesVariant, Match, Policy, PortRange, Rule, Ruleset, Table,
    Target,
};
use crate::snapshot::vmap_entries;

/// Traffic direction relative to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// To the host (prerouting, input).
    In,
    /// From the host (output, postrouting).
    Out,
}

/// The packet asked about: the first packet of a NEW connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// `tcp`, `udp` or `icmp`.
    pub proto: String,
    /// Destination port (ignored for icmp).
    pub port: u16,
    /// Direction.
    pub direction: Direction,
    /// Source address, when known.
    pub src: Option<IpAddr>,
    /// Destination address, when known.
    pub dst: Option<IpAddr>,
    /// Interface (input interface for `in`, output interface for `out`), when known.
    pub iface: Option<String>,
}

impl Packet {
    /// A packet with only protocol, port and direction known.
    pub fn new(proto: &str, port: u16, direction: Direction) -> Packet {
        Packet {
            proto: proto.to_ascii_lowercase(),
            port,
            direction,
            src: None,
            dst: None,
            iface: None,
        }
    }

    fn is_v6(&self) -> bool {
        self.src.is_some_and(|a| a.is_ipv6()) || self.dst.is_some_and(|a| a.is_ipv6())
    }
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Passes every base chain.
    Accept,
    /// Dropped silently.
    Drop,
    /// Rejected (RST or ICMP error).
    Reject,
    /// Cannot be decided from the ruleset alone.
    Indeterminate,
}

impl Verdict {
    /// `ACCEPT`, `DROP`, `REJECT`, `INDETERMINATE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "ACCEPT",
            Verdict::Drop => "DROP",
            Verdict::Reject => "REJECT",
            Verdict::Indeterminate => "INDETERMINATE",
        }
    }
}

/// The rule (or policy) that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidingRule {
    /// Family.
    pub family: Family,
    /// Table.
    pub table: String,
    /// Back end.
    pub backend: Backend,
    /// For an iptables table: `legacy` or `nft` when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<IptablesVariant>,
    /// Chain.
    pub chain: String,
    /// 1-based position; `None` for a policy.
    pub position: Option<usize>,
    /// Rule text, or `policy DROP`.
    pub rule: String,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckAnswer {
    /// The verdict.
    pub verdict: Verdict,
    /// What decided it.
    pub deciding_rule: Option<DecidingRule>,
    /// Why the verdict is INDETERMINATE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The packet.
    pub packet: Packet,
    /// Assumptions made.
    pub assumptions: Vec<String>,
    /// Rules skipped because they only match a source, destination or interface the
    /// question did not give.
    pub conditional_rules: Vec<String>,
    /// Rules that matched, in order (`table/chain#position text -> action`).
    pub trace: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tri {
    Yes,
    No,
    Unknown(String),
}

enum Flow {
    Verdict(Verdict, DecidingRule),
    Return,
    Indeterminate(String, DecidingRule),
}

struct Eval<'a> {
    pkt: &'a Packet,
    mark: u32,
    assumptions: Vec<String>,
    conditional: Vec<String>,
    trace: Vec<String>,
}

fn proto_num(p: &str) -> &str {
    match p {
        "6" => "tcp",
        "17" => "udp",
        "1" => "icmp",
        "58" | "icmpv6" | "ipv6-icmp" => "ipv6-icmp",
        "132" => "sctp",
        other => other,
    }
}

/// Parses `a.b.c.d[/len]` or an IPv6 CIDR; returns (addr, len).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => {
            if let Ok(n) = l.parse::<u8>() {
                n
            } else {
                // Dotted netmask form (iptables-save prints /255.255.255.0 for odd masks).
                let m: IpAddr = l.parse().ok()?;
                match m {
                    IpAddr::V4(v) => u32::from(v).count_ones() as u8,
                    IpAddr::V6(v) => u128::from(v).count_ones() as u8,
                }
            }
        }
    };
    (len <= max).then_some((addr, len))
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            if len == 0 {
                return true;
            }
            let mask = u32::MAX << (32 - u32::from(len));
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            if len == 0 {
                return true;
            }
            let mask = u128::MAX << (128 - u32::from(len));
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn iface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn ports_contain(ports: &[PortRange], p: u16) -> bool {
    ports.iter().any(|r| r.contains(p))
}

const EPHEMERAL: PortRange = PortRange {
    start: 1024,
    end: 65535,
};

impl Eval<'_> {
    fn is_l4(&self) -> bool {
        matches!(self.pkt.proto.as_str(), "tcp" | "udp" | "sctp")
    }

    fn packet_proto(&self) -> &str {
        if self.pkt.proto == "icmp" && self.pkt.is_v6() {
            "ipv6-icmp"
        } else {
            self.pkt.proto.as_str()
        }
    }

    fn addr(&mut self, which: &str, addrs: &[String], rule: &str) -> Tri {
        let known = if which == "source" {
            self.pkt.src
        } else {
            self.pkt.dst
        };
        let mut nets = Vec::new();
        for a in addrs {
            match parse_cidr(a) {
                Some(n) => nets.push(n),
                None => return Tri::Unknown(format!("address {a:?} is not understood")),
            }
        }
        if nets.iter().any(|(_, l)| *l == 0) {
            return Tri::Yes;
        }
        match known {
            Some(ip) => {
                if nets.iter().any(|(n, l)| cidr_contains(*n, *l, ip)) {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            None => {
                self.conditional.push(format!(
                    "{rule}: matches only {which} {}; pass --{} to evaluate it",
                    addrs.join(","),
                    if which == "source" { "src" } else { "dst" }
                ));
                // The packet is assumed to come from/go to some other, non-loopback address.
                Tri::No
            }
        }
    }

    fn iface(&mut self, input: bool, name: &str, rule: &str) -> Tri {
        let applies = matches!(
            (input, self.pkt.direction),
            (true, Direction::In) | (false, Direction::Out)
        );
        if !applies {
            // No input interface on locally generated packets, no output one before routing.
            return Tri::No;
        }
        match &self.pkt.iface {
            Some(i) => {
                if iface_matches(name, i) {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            None => {
                if name != "lo" && name != "+" {
                    self.conditional.push(format!(
                        "{rule}: matches only interface {name}; pass --iface to evaluate it"
                    ));
                }
                if name == "+" {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
        }
    }

    fn cond(&mut self, t: &Table, m: &Match, rule: &str) -> Tri {
        let pkt = self.pkt;
        match &m.cond {
            Cond::Protocol { protocol } => {
                let p = proto_num(&protocol.to_ascii_lowercase()).to_string();
                if p == "all" || p == "0" {
                    return Tri::Yes;
                }
                let mine = proto_num(self.packet_proto()).to_string();
                if p == mine {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::Source { addrs } => self.addr("source", addrs, rule),
            Cond::Destination { addrs } => self.addr("destination", addrs, rule),
            Cond::AddrRange { dir, from, to } => {
                let ip = if dir == "src" { pkt.src } else { pkt.dst };
                let (Ok(f), Ok(l)) = (from.parse::<IpAddr>(), to.parse::<IpAddr>()) else {
                    return Tri::Unknown(format!("address range {from}-{to} not understood"));
                };
                match ip {
                    Some(ip) => {
                        if f <= ip && ip <= l && f.is_ipv4() == ip.is_ipv4() {
                            Tri::Yes
                        } else {
                            Tri::No
                        }
                    }
                    None => {
                        self.conditional.push(format!(
                            "{rule}: matches only {dir} range {from}-{to}; pass --{dir} to evaluate it"
                        ));
                        Tri::No
                    }
                }
            }
            Cond::InInterface { name } => self.iface(true, name, rule),
            Cond::OutInterface { name } => self.iface(false, name, rule),
            Cond::DestPort { ports } => {
                if self.is_l4() && ports_contain(ports, pkt.port) {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::SourcePort { ports } | Cond::AnyPort { ports } => {
                if !self.is_l4() {
                    return Tri::No;
                }
                if matches!(m.cond, Cond::AnyPort { .. }) && ports_contain(ports, pkt.port) {
                    return Tri::Yes;
                }
                if ports.iter().all(|r| r.end < EPHEMERAL.start) {
                    Tri::No
                } else {
                    Tri::Unknown("the rule matches the source port, and the client's ephemeral port is not known".into())
                }
            }
            Cond::IcmpType { icmp_type } => {
                if !self.packet_proto().contains("icmp") {
                    return Tri::No;
                }
                let echo = icmp_type.split(',').any(|x| {
                    matches!(
                        x.trim(),
                        "8" | "8/0" | "echo-request" | "any" | "128" | "128/0"
                    )
                });
                if echo {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::CtState { states } => {
                if states.iter().any(|s| s == "NEW") {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::TcpFlags { mask, set } => {
                if pkt.proto != "tcp" {
                    return Tri::No;
                }
                let has = |f: &str, v: &Vec<String>| v.iter().any(|x| x == f || x == "ALL");
                // The first packet of a NEW TCP connection is a bare SYN.
                let flags = ["FIN", "SYN", "RST", "PSH", "ACK", "URG"];
                let ok = flags.iter().all(|f| {
                    if has(f, mask) {
                        (*f == "SYN") == has(f, set)
                    } else {
                        true
                    }
                });
                if ok {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::Comment { .. } => Tri::Yes,
            Cond::Limit { over, rate, .. } => {
                self.note(format!(
                    "rate limits ({rate}) are not exceeded by this one packet"
                ));
                if *over {
                    Tri::No
                } else {
                    Tri::Yes
                }
            }
            Cond::Mark { value, mask } => {
                if self.mark & mask == *value {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            Cond::AddrType { src_type, dst_type } => {
                let kind = |t: &str, local: bool| match t {
                    "LOCAL" => Some(local),
                    "UNICAST" => Some(true),
                    "BROADCAST" | "MULTICAST" | "ANYCAST" | "BLACKHOLE" | "UNREACHABLE"
                    | "PROHIBIT" | "THROW" | "NAT" | "XRESOLVE" | "UNSPEC" => Some(false),
                    _ => None,
                };
                let dst_local = match pkt.direction {
                    Direction::In => true,
                    Direction::Out => pkt.dst.is_some_and(|d| d.is_loopback()),
                };
                let src_local = pkt.direction == Direction::Out;
                let r = src_type
                    .as_deref()
                    .map(|t| kind(t, src_local))
                    .or_else(|| dst_type.as_deref().map(|t| kind(t, dst_local)))
                    .flatten();
                match r {
                    Some(true) => Tri::Yes,
                    Some(false) => Tri::No,
                    None => Tri::Unknown("an address type the evaluator does not know".into()),
                }
            }
            Cond::SetLookup { set, key } => self.set_lookup(t, set, key, rule),
            Cond::Module {
                module,
                option,
                args,
            } => self.module(module, option, args),
            Cond::Unknown { text } => Tri::Unknown(format!(
                "the match `{text}` is not understood by the evaluator"
            )),
        }
    }

    fn note(&mut self, s: String) {
        if !self.assumptions.contains(&s) {
            self.assumptions.push(s);
        }
    }

    fn module(&mut self, module: &str, option: &str, args: &[String]) -> Tri {
        let text = format!("{module} {option} {}", args.join(" "));
        match (module, option) {
            ("", "fragment") => Tri::No,
            ("hashlimit", "hashlimit-above") => {
                self.note("per-source rate limits (hashlimit) are not exceeded".into());
                Tri::No
            }
            ("hashlimit", "hashlimit-upto") => {
                self.note("per-source rate limits (hashlimit) are not exceeded".into());
                Tri::Yes
            }
            ("hashlimit", _) => Tri::Yes,
            ("pkttype", "pkt-type") => {
                self.note("the packet is unicast".into());
                if args.first().map(String::as_str) == Some("unicast") {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
            ("nft", o) if o.starts_with("numgen") => Tri::Unknown(format!(
                "`{text}` picks packets by a random number, so the same packet may pass or not"
            )),
            ("nft", "meta nfproto") => {
                let want = args.get(1).map(String::as_str).unwrap_or("");
                let v6 = self.pkt.is_v6();
                let eq = (want == "ipv6") == v6;
                match args.first().map(String::as_str) {
                    Some("!=") => {
                        if eq {
                            Tri::No
                        } else {
                            Tri::Yes
                        }
                    }
                    _ => {
                        if eq {
                            Tri::Yes
                        } else {
                            Tri::No
                        }
                    }
                }
            }
            ("statistic", _) => Tri::Unknown(format!(
                "`{text}` matches packets at random, so the same packet may pass or not"
            )),
            ("recent", _) => Tri::Unknown(format!(
                "`{text}` depends on the kernel's recent-address lists, which a ruleset does not hold"
            )),
            ("owner", _) => Tri::Unknown(format!(
                "`{text}` depends on the local process that sends the packet"
            )),
            ("string", _) => Tri::Unknown(format!("`{text}` depends on the packet payload")),
            (m, _) => Tri::Unknown(format!(
                "the `{m}` match (`{text}`) cannot be decided from the question"
            )),
        }
    }

    fn key_value(&self, key: &str) -> Option<Result<String, String>> {
        // Returns Some(Ok(value)) when the packet has that field, Some(Err(why)) when the
        // field is unknown, None when the key does not apply to this packet (no match).
        let pkt = self.pkt;
        let mut it = key.split_whitespace();
        let (a, b) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        match (a, b) {
            ("tcp" | "udp" | "sctp", "dport") => (pkt.proto == a).then(|| Ok(pkt.port.to_string())),
            ("th", "dport") => self.is_l4().then(|| Ok(pkt.port.to_string())),
            ("meta", "l4proto") | ("ip", "protocol") | ("ip6", "nexthdr") => {
                Some(Ok(self.packet_proto().to_string()))
            }
            ("ip" | "ip6", "saddr" | "daddr") => {
                let v6 = a == "ip6";
                if v6 != pkt.is_v6() {
                    return None;
                }
                let ip = if b == "saddr" { pkt.src } else { pkt.dst };
                Some(match ip {
                    Some(ip) => Ok(ip.to_string()),
                    None => Err(format!(
                        "{key} is not known; pass --{}",
                        if b == "saddr" { "src" } else { "dst" }
                    )),
                })
            }
            ("meta", "iifname") => Some(match (&pkt.iface, pkt.direction) {
                (Some(i), Direction::In) => Ok(i.clone()),
                (_, Direction::Out) => Ok(String::new()),
                (None, _) => Err("the input interface is not known; pass --iface".into()),
            }),
            _ => Some(Err(format!("lookups keyed on `{key}` are not evaluated"))),
        }
    }

    fn element_matches(value: &str, elem: &str) -> bool {
        if let Ok(p) = value.parse::<u16>() {
            if let Some((a, b)) = elem.split_once('-') {
                return matches!((a.trim().parse::<u16>(), b.trim().parse::<u16>()), (Ok(a), Ok(b)) if a <= p && p <= b);
            }
            return elem.trim() == value;
        }
        if let Ok(ip) = value.parse::<IpAddr>() {
            if let Some((a, b)) = elem.split_once('-') {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
                    return a <= ip && ip <= b;
                }
            }
            return parse_cidr(elem.trim()).is_some_and(|(n, l)| cidr_contains(n, l, ip));
        }
        proto_num(elem.trim()) == proto_num(value)
    }

    fn set_lookup(&mut self, t: &Table, set: &str, key: &str, rule: &str) -> Tri {
        if t.backend == Backend::Iptables {
            return Tri::Unknown(format!(
                "ipset {set} is looked up, and its elements are not in the snapshot"
            ));
        }
        let Some(s) = t.set(set) else {
            return Tri::Unknown(format!("set {set} is not in table {}", t.name));
        };
        match self.key_value(key) {
            None => Tri::No,
            Some(Err(why)) => {
                if key.contains("addr") {
                    self.conditional.push(format!(
                        "{rule}: matches only addresses in set @{set}; {why}"
                    ));
                    Tri::No
                } else {
                    Tri::Unknown(why)
                }
            }
            Some(Ok(v)) => {
                if s.elements.iter().any(|e| Self::element_matches(&v, &e.key)) {
                    Tri::Yes
                } else {
                    Tri::No
                }
            }
        }
    }

    fn rule_matches(&mut self, t: &Table, r: &Rule, label: &str) -> Tri {
        let mut unknown = None;
        for m in &r.matches {
            let v = match self.cond(t, m, label) {
                Tri::Yes if m.negated => Tri::No,
                Tri::No if m.negated => Tri::Yes,
                other => other,
            };
            match v {
                Tri::No => return Tri::No,
                Tri::Unknown(why) => {
                    if unknown.is_none() {
                        unknown = Some(why);
                    }
                }
                Tri::Yes => {}
            }
        }
        match unknown {
            Some(w) => Tri::Unknown(w),
            None => Tri::Yes,
        }
    }

    fn apply_mark(&mut self, args: &[String]) {
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(v) = it.clone().next() else { break };
            let parsed = crate::iptables::parse_mark(v);
            match (a.as_str(), parsed) {
                ("--set-xmark", Some((val, mask))) => {
                    self.mark = (self.mark & !mask) ^ val;
                }
                ("--set-mark", Some((val, mask))) => {
                    self.mark = (self.mark & !mask) | val;
                }
                ("--or-mark", Some((val, _))) => self.mark |= val,
                ("--and-mark", Some((val, _))) => self.mark &= val,
                ("--xor-mark", Some((val, _))) => self.mark ^= val,
                _ => {}
            }
        }
    }

    fn target(
        &mut self,
        t: &Table,
        c: &Chain,
        r: &Rule,
        target: &Target,
        depth: usize,
    ) -> Option<Flow> {
        let decided = |verdict| {
            Some(Flow::Verdict(
                verdict,
                deciding(t, c, Some(r.position), &r.text),
            ))
        };
        match target {
            Target::None | Target::Continue => None,
            Target::Accept => decided(Verdict::Accept),
            Target::Drop => decided(Verdict::Drop),
            Target::Reject { .. } => decided(Verdict::Reject),
            Target::Return => Some(Flow::Return),
            Target::Queue => Some(Flow::Indeterminate(
                "the packet is queued to a userspace program, which decides".into(),
                deciding(t, c, Some(r.position), &r.text),
            )),
            Target::Jump { chain } | Target::Goto { chain } => {
                let Some(next) = t.chain(chain) else {
                    return Some(Flow::Indeterminate(
                        format!(
                            "the rule jumps to chain {chain}, which is not in table {}",
                            t.name
                        ),
                        deciding(t, c, Some(r.position), &r.text),
                    ));
                };
                match self.walk(t, next, depth + 1) {
                    Flow::Return if matches!(target, Target::Jump { .. }) => None,
                    Flow::Return => Some(Flow::Return),
                    other => Some(other),
                }
            }
            Target::Extension {
                name,
                args,
                terminating,
            } => {
                if name == "MARK" {
                    self.apply_mark(args);
                }
                if !terminating {
                    return None;
                }
                match name.as_str() {
                    "DNAT" | "SNAT" | "MASQUERADE" | "REDIRECT" | "NETMAP" => {
                        self.note("address translation (NAT) is recorded but later chains are evaluated with the original addresses and port".into());
                        decided(Verdict::Accept)
                    }
                    "TPROXY" => decided(Verdict::Accept),
                    "NFQUEUE" | "QUEUE" => Some(Flow::Indeterminate(
                        "the packet is queued to a userspace program (NFQUEUE), which decides"
                            .into(),
                        deciding(t, c, Some(r.position), &r.text),
                    )),
                    other => Some(Flow::Indeterminate(
                        format!("the {other} target's outcome is not modelled"),
                        deciding(t, c, Some(r.position), &r.text),
                    )),
                }
            }
            Target::VerdictMap { key, map, entries } => {
                let elems = vmap_entries(t, map.as_deref(), entries);
                match self.key_value(key) {
                    None => None,
                    Some(Err(why)) => Some(Flow::Indeterminate(
                        why,
                        deciding(t, c, Some(r.position), &r.text),
                    )),
                    Some(Ok(v)) => {
                        let hit = elems.iter().find(|e| Self::element_matches(&v, &e.key))?;
                        let verdict = hit
                            .value
                            .as_deref()
                            .and_then(crate::nft::verdict_from_text)?;
                        self.trace.push(format!(
                            "{}/{}#{} vmap {} -> {}",
                            t.name,
                            c.name,
                            r.position,
                            hit.key,
                            hit.value.clone().unwrap_or_default()
                        ));
                        self.target(t, c, r, &verdict, depth)
                    }
                }
            }
        }
    }

    fn walk(&mut self, t: &Table, c: &Chain, depth: usize) -> Flow {
        if depth > 64 {
            return Flow::Indeterminate(
                "jumps nest deeper than 64 chains (a loop?)".into(),
                deciding(t, c, None, "jump depth exceeded"),
            );
        }
        for r in &c.rules {
            let label = format!(
                "{} {}/{}#{} `{}`",
                t.family.as_str(),
                t.name,
                c.name,
                r.position,
                r.text
            );
            match self.rule_matches(t, r, &label) {
                Tri::No => continue,
                Tri::Yes => {
                    self.trace.push(label.clone());
                    if let Some(flow) = self.target(t, c, r, &r.target, depth) {
                        return flow;
                    }
                }
                Tri::Unknown(why) => {
                    let harmless = match &r.target {
                        Target::None | Target::Continue => true,
                        Target::Extension {
                            terminating, name, ..
                        } => !terminating && name != "MARK",
                        _ => false,
                    };
                    if harmless {
                        continue;
                    }
                    return Flow::Indeterminate(why, deciding(t, c, Some(r.position), &r.text));
                }
            }
        }
        Flow::Return
    }
}

fn deciding(t: &Table, c: &Chain, position: Option<usize>, text: &str) -> DecidingRule {
    DecidingRule {
        family: t.family,
        table: t.name.clone(),
        backend: t.backend,
        variant: t.variant,
        chain: c.name.clone(),
        position,
        rule: text.to_string(),
    }
}

/// Answers whether `pkt` passes `rs`.
pub fn check(rs: &Ruleset, pkt: &Packet) -> CheckAnswer {
    let mut ev = Eval {
        pkt,
        mark: 0,
        assumptions: vec![
            "a NEW connection: conntrack state NEW, and for TCP the first SYN".into(),
            "the packet mark starts at 0".into(),
        ],
        conditional: Vec::new(),
        trace: Vec::new(),
    };
    if pkt.src.is_none() || pkt.dst.is_none() {
        ev.note("addresses not given are some non-loopback address that rules naming specific addresses do not match".into());
    }
    if pkt.iface.is_none() {
        ev.note("the interface is not loopback and not one that rules name specifically".into());
    }
    if matches!(pkt.proto.as_str(), "tcp" | "udp") {
        ev.note("the source port is an ephemeral port (>= 1024)".into());
    }
    if pkt.proto == "icmp" {
        ev.note("the ICMP packet is an echo request (ping)".into());
    }
    let v6 = pkt.is_v6();
    let families: &[Family] = if v6 {
        &[Family::Ip6, Family::Inet]
    } else {
        &[Family::Ip, Family::Inet]
    };
    // A table that iptables-save and nft -j both show is evaluated once (iptables-save copy);
    // legacy tables are other kernel objects and are walked besides the nft ones.
    let dup = |t: &Table| {
        t.backend == Backend::Nftables
            && rs
                .tables
                .iter()
                .any(|o| o.shadows_nft() && o.family == t.family && o.name == t.name)
    };
    if rs
        .tables
        .iter()
        .any(|t| t.variant == Some(IptablesVariant::Legacy))
        && rs
            .tables
            .iter()
            .any(|t| t.variant != Some(IptablesVariant::Legacy))
    {
        ev.note("legacy xtables and nf_tables base chains are both walked (the kernel runs both); at equal priority their order is that of registration, unknown here: a DROP in either drops".into());
    }
    if rs.tables.iter().any(|t| t.family == Family::Netdev) && pkt.direction == Direction::In {
        ev.note("netdev ingress chains are not evaluated".into());
    }
    let hooks: &[&str] = match pkt.direction {
        Direction::In => &["prerouting", "input"],
        Direction::Out => &["output", "postrouting"],
    };
    let mut last_accept: Option<DecidingRule> = None;
    let mut evaluated = 0;
    for hook in hooks {
        let mut chains: Vec<(&Table, &Chain, i32)> = Vec::new();
        for t in &rs.tables {
            if !families.contains(&t.family) || dup(t) {
                continue;
            }
            for c in &t.chains {
                if let Some(b) = &c.base {
                    if b.hook == *hook {
                        chains.push((t, c, b.priority));
                    }
                }
            }
        }
        chains.sort_by_key(|(_, _, p)| *p);
        for (t, c, _) in chains {
            evaluated += 1;
            let flow = ev.walk(t, c, 0);
            let base = c.base.as_ref().expect("base chains only");
            match flow {
                Flow::Return => {
                    let d = deciding(t, c, None, &format!("policy {}", base.policy.as_str()));
                    if base.policy == Policy::Drop {
                        ev.trace.push(format!("{}/{} policy DROP", t.name, c.name));
                        return finish(ev, Verdict::Drop, Some(d), None);
                    }
                    if base.chain_type == "filter" || last_accept.is_none() {
                        last_accept = Some(d);
                    }
                }
                Flow::Verdict(Verdict::Accept, d) => {
                    if base.chain_type == "filter" || last_accept.is_none() {
                        last_accept = Some(d);
                    }
                }
                Flow::Verdict(v, d) => return finish(ev, v, Some(d), None),
                Flow::Indeterminate(why, d) => {
                    return finish(ev, Verdict::Indeterminate, Some(d), Some(why))
                }
            }
        }
    }
    if evaluated == 0 {
        ev.note("no base chain is attached to this direction's hooks: nothing filters it".into());
    }
    finish(ev, Verdict::Accept, last_accept, None)
}

fn finish(
    ev: Eval,
    verdict: Verdict,
    d: Option<DecidingRule>,
    reason: Option<String>,
) -> CheckAnswer {
    CheckAnswer {
        verdict,
        deciding_rule: d,
        reason,
        packet: ev.pkt.clone(),
        assumptions: ev.assumptions,
        conditional_rules: ev.conditional,
        trace: ev.trace,
    }
}
