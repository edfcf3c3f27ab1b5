//! The NSG engine: Azure's dual-gate evaluation of effective security rules.
//!
//! Inbound traffic meets the subnet NSG first, then the NIC NSG; outbound traffic the NIC
//! NSG first, then the subnet NSG. The second gate runs only when the first lets the flow
//! through (allowed, or no NSG there). A gate with no NSG lets everything through. Rules are
//! evaluated in priority order (lowest number first); the first match decides.
//!
//! Matching is three-valued: a rule whose address is a service tag or ASG that the input
//! does not expand (or whose source port is restricted while the flow's is unknown) *might*
//! match; the verdict is then `INDETERMINATE`, naming the rule, never a guess.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::net::{Addr, Family, Prefix};
use crate::state::{Gate, NsgEntry, RuleEntry};
use crate::EniError;

/// Traffic direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Towards the NIC.
    Inbound,
    /// From the NIC.
    Outbound,
}

/// A flow's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (v4 or v6).
    Icmp,
    /// IPsec ESP.
    Esp,
    /// IPsec AH.
    Ah,
}

impl Proto {
    /// Whether the protocol has ports.
    pub fn has_ports(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Udp)
    }
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Esp => "esp",
            Proto::Ah => "ah",
        })
    }
}

/// A rule's protocol: one of [`Proto`] or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleProto {
    /// `*`, `All`, `Any`.
    Any,
    /// One protocol.
    One(Proto),
}

impl FromStr for RuleProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "*" | "all" | "any" => RuleProto::Any,
            "tcp" => RuleProto::One(Proto::Tcp),
            "udp" => RuleProto::One(Proto::Udp),
            "icmp" => RuleProto::One(Proto::Icmp),
            "esp" => RuleProto::One(Proto::Esp),
            "ah" => RuleProto::One(Proto::Ah),
            _ => return Err(format!("unknown protocol {s:?}")),
        })
    }
}

impl RuleProto {
    fn matches(self, p: Proto) -> bool {
        match self {
            RuleProto::Any => true,
            RuleProto::One(q) => q == p,
        }
    }
}

/// Port ranges (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports(pub Vec<(u16, u16)>);

impl Ports {
    /// Whether the ranges cover every port.
    pub fn is_any(&self) -> bool {
        let mut v = self.0.clone();
        v.sort_unstable();
        let mut next: u32 = 0;
        for (a, b) in v {
            if a as u32 > next {
                return false;
            }
            next = next.max(b as u32 + 1);
        }
        next > 65535
    }

    /// Whether `p` is in a range.
    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.0.iter().any(|&(a, b)| a <= p && p <= b)
    }

    /// Whether every port of `other` is in these ranges.
    pub fn covers(&self, other: &Ports) -> bool {
        other.0.iter().all(|&(a, b)| {
            // A range is covered when the union covers it; check with a sweep.
            let mut v: Vec<(u16, u16)> = self
                .0
                .iter()
                .copied()
                .filter(|r| r.1 >= a && r.0 <= b)
                .collect();
            v.sort_unstable();
            let mut next = a as u32;
            for (x, y) in v {
                if x as u32 > next {
                    return false;
                }
                next = next.max(y as u32 + 1);
                if next > b as u32 {
                    return true;
                }
            }
            next > b as u32
        })
    }

    /// Number of ports.
    pub fn count(&self) -> u32 {
        let mut v = self.0.clone();
        v.sort_unstable();
        let mut total = 0u32;
        let mut next = 0u32;
        for (a, b) in v {
            let start = (a as u32).max(next);
            if b as u32 >= start {
                total += b as u32 - start + 1;
                next = b as u32 + 1;
            }
        }
        total
    }

    fn parse(single: &Option<String>, list: &[String]) -> Result<Ports, String> {
        let items: Vec<&str> = if !list.is_empty() {
            list.iter().map(String::as_str).collect()
        } else if let Some(s) = single {
            vec![s.as_str()]
        } else {
            vec!["*"]
        };
        let mut out = Vec::new();
        for item in items {
            for part in item.split(',') {
                let part = part.trim();
                if part == "*" || part.eq_ignore_ascii_case("any") {
                    out.push((0, 65535));
                    continue;
                }
                let (a, b) = match part.split_once('-') {
                    Some((a, b)) => (a.trim(), b.trim()),
                    None => (part, part),
                };
                let a: u16 = a.parse().map_err(|_| format!("bad port range {part:?}"))?;
                let b: u16 = b.parse().map_err(|_| format!("bad port range {part:?}"))?;
                if a > b {
                    return Err(format!("port range {part:?} runs backwards"));
                }
                out.push((a, b));
            }
        }
        Ok(Ports(out))
    }
}

/// A rule's source or destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddrSet {
    /// `*`: every address of both families.
    pub any: bool,
    /// Prefixes (tags already expanded).
    pub prefixes: Vec<Prefix>,
    /// Tags, ASGs or other names the input does not expand.
    pub unresolved: Vec<String>,
    /// The prefixes as written (for display).
    pub written: Vec<String>,
    /// `Internet` that the input does not expand, resolved by what it is not: the prefixes
    /// of the NSG's `VirtualNetwork` (and `AzureLoadBalancer`) tags. An address outside them
    /// and outside the private ranges Azure never routes to the internet (10/8, 172.16/12,
    /// 192.168/16, 100.64/10; fc00::/7, fe80::/10) is `Internet`; one inside them is not; a
    /// private address outside the VNet cannot be told.
    pub internet_outside: Option<Vec<Prefix>>,
}

/// Private ranges Azure's system routes never send to the internet (parsed once).
static NOT_INTERNET: std::sync::LazyLock<Vec<Prefix>> = std::sync::LazyLock::new(|| {
    [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    ]
    .iter()
    .filter_map(|p| p.parse().ok())
    .collect()
});

/// Whether `a` is in the `Internet` tag, given the prefixes that are not.
fn internet_tri(outside: &[Prefix], a: Addr) -> Tri {
    if outside.iter().any(|p| p.contains(a)) {
        return Tri::No;
    }
    let private = NOT_INTERNET.iter().any(|p| p.contains(a));
    if private {
        Tri::Unknown
    } else {
        Tri::Yes
    }
}

/// Three-valued match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tri {
    /// Matches.
    Yes,
    /// Does not match.
    No,
    /// Cannot tell from the input.
    Unknown,
}

impl AddrSet {
    fn build(
        single: &Option<String>,
        list: &[String],
        expanded: &Option<Vec<String>>,
        tags: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> AddrSet {
        let written: Vec<String> = if !list.is_empty() {
            list.to_vec()
        } else if let Some(s) = single {
            vec![s.clone()]
        } else {
            vec!["*".to_string()]
        };
        let mut set = AddrSet {
            written: written.clone(),
            ..AddrSet::default()
        };
        let tokens: Vec<String> = match expanded {
            Some(e) if !e.is_empty() => e.clone(),
            _ => written,
        };
        for t in tokens {
            let t = t.trim();
            if t == "*" || t.eq_ignore_ascii_case("any") {
                set.any = true;
            } else if let Ok(p) = t.parse::<Prefix>() {
                set.prefixes.push(p);
            } else if let Some(list) = tags
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(t))
                .map(|(_, v)| v)
                .filter(|v| !v.is_empty())
            {
                for p in list {
                    match p.parse::<Prefix>() {
                        Ok(p) => set.prefixes.push(p),
                        Err(_) => set.unresolved.push(format!("{t} ({p})")),
                    }
                }
            } else if let Some(outside) = t
                .eq_ignore_ascii_case("internet")
                .then(|| Self::not_internet(tags))
                .flatten()
            {
                set.internet_outside = Some(outside);
            } else {
                set.unresolved.push(t.to_string());
            }
        }
        set
    }

    /// The prefixes of the `VirtualNetwork` and `AzureLoadBalancer` tags, which `Internet`
    /// excludes; None when the tag map does not expand `VirtualNetwork` (then `Internet`
    /// stays unresolvable).
    fn not_internet(tags: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<Prefix>> {
        let expansion = |tag: &str| -> Option<Vec<Prefix>> {
            let list = tags
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                .map(|(_, v)| v)?;
            list.iter().map(|p| p.parse::<Prefix>().ok()).collect()
        };
        let mut out = expansion("VirtualNetwork").filter(|v| !v.is_empty())?;
        out.extend(expansion("AzureLoadBalancer").unwrap_or_default());
        Some(out)
    }

    /// Whether `a` is in the set.
    #[inline]
    pub fn matches(&self, a: Addr) -> Tri {
        let internet = self
            .internet_outside
            .as_deref()
            .map(|outside| internet_tri(outside, a));
        if self.any || self.prefixes.iter().any(|p| p.contains(a)) || internet == Some(Tri::Yes) {
            Tri::Yes
        } else if self.unresolved.is_empty() && internet != Some(Tri::Unknown) {
            Tri::No
        } else {
            Tri::Unknown
        }
    }

    /// Whether every address of `other` is in this set (false when either is unresolved).
    pub fn covers(&self, other: &AddrSet) -> bool {
        if !other.unresolved.is_empty() {
            return false;
        }
        if other.internet_outside.is_some() && !self.any {
            return false;
        }
        if self.any {
            return true;
        }
        if other.any {
            let fams = [Family::V4, Family::V6];
            return fams
                .iter()
                .all(|f| self.prefixes.iter().any(|p| p.family == *f && p.len == 0));
        }
        other
            .prefixes
            .iter()
            .all(|o| self.prefixes.iter().any(|p| p.covers(o)))
    }

    /// Whether the set means "any source" for audit purposes (`*`, a /0, or `Internet`).
    pub fn is_open(&self) -> bool {
        self.any
            || self.prefixes.iter().any(|p| p.len == 0)
            || self
                .written
                .iter()
                .any(|w| w.eq_ignore_ascii_case("internet"))
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Access {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Name as Azure prints it.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Direction.
    pub direction: Direction,
    /// Access.
    pub access: Access,
    /// Protocol.
    pub protocol: RuleProto,
    /// Source addresses.
    pub src: AddrSet,
    /// Destination addresses.
    pub dst: AddrSet,
    /// Source ports.
    pub src_ports: Ports,
    /// Destination ports.
    pub dst_ports: Ports,
    src_any_port: bool,
    dst_any_port: bool,
    /// The rule as the input wrote it.
    pub raw: RuleEntry,
}

impl Rule {
    /// Compiles one effective rule; `tags` is the NSG's tag map.
    pub fn compile(
        r: &RuleEntry,
        tags: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<Rule, EniError> {
        let bad =
            |m: String| EniError::Input(format!("rule {} (priority {}): {m}", r.name, r.priority));
        let direction = match r.direction.to_ascii_lowercase().as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            _ => return Err(bad(format!("unknown direction {:?}", r.direction))),
        };
        let access = match r.access.to_ascii_lowercase().as_str() {
            "allow" => Access::Allow,
            "deny" => Access::Deny,
            _ => return Err(bad(format!("unknown access {:?}", r.access))),
        };
        let protocol: RuleProto = r.protocol.parse().map_err(bad)?;
        let src_ports = Ports::parse(&r.source_port_range, &r.source_port_ranges).map_err(bad)?;
        let dst_ports =
            Ports::parse(&r.destination_port_range, &r.destination_port_ranges).map_err(bad)?;
        Ok(Rule {
            name: r.name.clone(),
            priority: r.priority,
            direction,
            access,
            protocol,
            src: AddrSet::build(
                &r.source_address_prefix,
                &r.source_address_prefixes,
                &r.expanded_source_address_prefix,
                tags,
            ),
            dst: AddrSet::build(
                &r.destination_address_prefix,
                &r.destination_address_prefixes,
                &r.expanded_destination_address_prefix,
                tags,
            ),
            src_any_port: src_ports.is_any(),
            dst_any_port: dst_ports.is_any(),
            src_ports,
            dst_ports,
            raw: r.clone(),
        })
    }

    /// Whether a default rule (`defaultSecurityRules/…` or priority ≥ 65000).
    pub fn is_default(&self) -> bool {
        self.name.starts_with("defaultSecurityRules/") || self.priority >= 65000
    }

    /// Matches the protocol and ports only (what the per-port index pre-filters).
    fn matches_proto_port(&self, proto: Proto, dst_port: Option<u16>) -> Tri {
        if !self.protocol.matches(proto) {
            return Tri::No;
        }
        if proto.has_ports() {
            match dst_port {
                Some(p) if self.dst_ports.contains(p) => Tri::Yes,
                Some(_) => Tri::No,
                None if self.dst_any_port => Tri::Yes,
                None => Tri::Unknown,
            }
        } else if self.dst_any_port && self.src_any_port {
            // Ports do not exist for ICMP/ESP/AH: only a rule open on every port matches.
            Tri::Yes
        } else {
            Tri::No
        }
    }

    /// The full three-valued match against a flow.
    #[inline]
    pub fn matches(&self, f: &Flow) -> Tri {
        let pp = self.matches_proto_port(f.proto, f.dst_port);
        if pp == Tri::No {
            return Tri::No;
        }
        let sp = if !f.proto.has_ports() || self.src_any_port {
            Tri::Yes
        } else {
            match f.src_port {
                Some(p) if self.src_ports.contains(p) => Tri::Yes,
                Some(_) => Tri::No,
                None => Tri::Unknown,
            }
        };
        if sp == Tri::No {
            return Tri::No;
        }
        let s = self.src.matches(f.src);
        if s == Tri::No {
            return Tri::No;
        }
        let d = self.dst.matches(f.dst);
        if d == Tri::No {
            return Tri::No;
        }
        if [pp, sp, s, d].contains(&Tri::Unknown) {
            Tri::Unknown
        } else {
            Tri::Yes
        }
    }

    /// Why a rule might match but cannot be decided.
    fn unknown_reason(&self, f: &Flow) -> String {
        let mut why = Vec::new();
        if self.src.matches(f.src) == Tri::Unknown {
            why.push(format!(
                "source {} is not expanded in the input",
                self.src.unresolved.join(", ")
            ));
        }
        if self.dst.matches(f.dst) == Tri::Unknown {
            why.push(format!(
                "destination {} is not expanded in the input",
                self.dst.unresolved.join(", ")
            ));
        }
        if f.proto.has_ports() && !self.src_any_port && f.src_port.is_none() {
            why.push(
                "the rule restricts source ports and the flow's source port was not given".into(),
            );
        }
        if f.proto.has_ports() && !self.dst_any_port && f.dst_port.is_none() {
            why.push(
                "the rule restricts destination ports and the flow's port was not given".into(),
            );
        }
        why.join("; ")
    }
}

/// A flow to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// Direction relative to the NIC.
    pub direction: Direction,
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port, when known.
    pub src_port: Option<u16>,
    /// Destination port (TCP/UDP).
    pub dst_port: Option<u16>,
    /// Protocol.
    pub proto: Proto,
}

/// One direction of one NSG, with an index by protocol and destination port.
#[derive(Debug, Clone)]
struct Index {
    /// Per protocol: interval starts (sorted) and, per interval, the candidate rules in order.
    per_proto: Vec<(Vec<u16>, Vec<Vec<u32>>)>,
    /// Per protocol: rules that could match when the flow's port is unknown.
    unknown_port: Vec<Vec<u32>>,
}

/// A compiled NSG.
#[derive(Debug, Clone)]
pub struct Nsg {
    /// Name.
    pub name: String,
    /// Gate.
    pub gate: Gate,
    /// Rules of each direction, in priority order (inbound, outbound).
    rules: [Vec<Rule>; 2],
    index: [Index; 2],
}

fn dir_idx(d: Direction) -> usize {
    match d {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

const PROTOS: [Proto; 5] = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Esp, Proto::Ah];

fn build_index(rules: &[Rule]) -> Index {
    let mut per_proto = Vec::new();
    let mut unknown_port = Vec::new();
    for proto in PROTOS {
        if proto.has_ports() {
            let mut cuts: Vec<u32> = vec![0];
            for r in rules {
                if r.protocol.matches(proto) {
                    for &(a, b) in &r.dst_ports.0 {
                        cuts.push(a as u32);
                        cuts.push(b as u32 + 1);
                    }
                }
            }
            cuts.retain(|&c| c <= 65535);
            cuts.sort_unstable();
            cuts.dedup();
            let starts: Vec<u16> = cuts.iter().map(|&c| c as u16).collect();
            let lists = starts
                .iter()
                .map(|&s| {
                    (0..rules.len() as u32)
                        .filter(|&i| {
                            rules[i as usize].matches_proto_port(proto, Some(s)) != Tri::No
                        })
                        .collect()
                })
                .collect();
            per_proto.push((starts, lists));
        } else {
            let list = (0..rules.len() as u32)
                .filter(|&i| rules[i as usize].matches_proto_port(proto, None) != Tri::No)
                .collect();
            per_proto.push((vec![0], vec![list]));
        }
        unknown_port.push(
            (0..rules.len() as u32)
                .filter(|&i| rules[i as usize].matches_proto_port(proto, None) != Tri::No)
                .collect(),
        );
    }
    Index {
        per_proto,
        unknown_port,
    }
}

impl Nsg {
    /// Compiles an effective NSG.
    pub fn compile(e: &NsgEntry) -> Result<Nsg, EniError> {
        let mut inbound = Vec::new();
        let mut outbound = Vec::new();
        for r in &e.rules {
            let rule = Rule::compile(r, &e.tag_map)?;
            match rule.direction {
                Direction::Inbound => inbound.push(rule),
                Direction::Outbound => outbound.push(rule),
            }
        }
        inbound.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        outbound.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
        let index = [build_index(&inbound), build_index(&outbound)];
        Ok(Nsg {
            name: e.nsg.clone(),
            gate: e.association,
            rules: [inbound, outbound],
            index,
        })
    }

    /// Rules of a direction in priority order.
    pub fn rules(&self, d: Direction) -> &[Rule] {
        &self.rules[dir_idx(d)]
    }

    #[inline]
    fn candidates(&self, f: &Flow) -> &[u32] {
        let idx = &self.index[dir_idx(f.direction)];
        let p = f.proto.index();
        match (f.proto.has_ports(), f.dst_port) {
            (true, Some(port)) => {
                let (starts, lists) = &idx.per_proto[p];
                let i = starts.partition_point(|&s| s <= port) - 1;
                &lists[i]
            }
            (true, None) => &idx.unknown_port[p],
            (false, _) => &idx.per_proto[p].1[0],
        }
    }

    /// The fast decision of this gate: verdict and the decisive (or first undecidable) rule.
    #[inline]
    pub fn decide(&self, f: &Flow) -> (GateVerdict, Option<&Rule>) {
        let rules = &self.rules[dir_idx(f.direction)];
        for &i in self.candidates(f) {
            let r = &rules[i as usize];
            match r.matches(f) {
                Tri::No => {}
                Tri::Yes => {
                    let v = match r.access {
                        Access::Allow => GateVerdict::Allow,
                        Access::Deny => GateVerdict::Deny,
                    };
                    return (v, Some(r));
                }
                Tri::Unknown => return (GateVerdict::Indeterminate, Some(r)),
            }
        }
        (GateVerdict::Indeterminate, None)
    }
}

/// The NSGs of a NIC, by gate.
#[derive(Debug, Clone, Default)]
pub struct NicNsgs {
    /// The subnet's NSG.
    pub subnet: Option<Nsg>,
    /// The NIC's NSG.
    pub nic: Option<Nsg>,
}

/// What one gate decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GateVerdict {
    /// A rule allowed.
    Allow,
    /// A rule denied.
    Deny,
    /// An unexpandable rule might match first, or no rule matched.
    Indeterminate,
    /// No NSG at this gate: traffic passes.
    NoNsg,
    /// Not evaluated because the first gate denied.
    NotEvaluated,
}

/// `ALLOW | DENY | INDETERMINATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinalVerdict {
    /// The flow is allowed through both gates.
    Allow,
    /// A gate denies the flow.
    Deny,
    /// The input cannot decide.
    Indeterminate,
}

/// A rule as verdicts print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleView {
    /// Name.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// Access.
    pub access: Access,
    /// Direction.
    pub direction: Direction,
    /// Protocol as written.
    pub protocol: String,
    /// Source prefixes as written.
    pub source: Vec<String>,
    /// Destination prefixes as written.
    pub destination: Vec<String>,
    /// Source port ranges.
    pub source_ports: Vec<String>,
    /// Destination port ranges.
    pub destination_ports: Vec<String>,
    /// The NSG.
    pub nsg: String,
    /// `subnet` or `nic`.
    pub gate: Gate,
}

fn ports_view(p: &Ports) -> Vec<String> {
    p.0.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect()
}

impl RuleView {
    /// The view of `r` in `nsg`.
    pub fn of(r: &Rule, nsg: &Nsg) -> RuleView {
        RuleView {
            name: r.name.clone(),
            priority: r.priority,
            access: r.access,
            direction: r.direction,
            protocol: r.raw.protocol.clone(),
            source: r.src.written.clone(),
            destination: r.dst.written.clone(),
            source_ports: ports_view(&r.src_ports),
            destination_ports: ports_view(&r.dst_ports),
            nsg: nsg.name.clone(),
            gate: nsg.gate,
        }
    }
}

/// A rule that might match but cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnresolvableRule {
    /// The rule.
    #[serde(flatten)]
    pub rule: RuleView,
    /// Why.
    pub reason: String,
}

/// One gate's evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateReport {
    /// `subnet` or `nic`.
    pub gate: Gate,
    /// The NSG there (null: no NSG).
    pub nsg: Option<String>,
    /// What it decided.
    pub verdict: GateVerdict,
    /// Whether rules were evaluated.
    pub evaluated: bool,
    /// Why it was not evaluated (no NSG, or the first gate denied).
    pub skip_reason: Option<String>,
    /// The rule that decided.
    pub decisive_rule: Option<RuleView>,
    /// How many rules were considered in priority order, up to the decision.
    pub rules_evaluated: usize,
    /// Rules that might match first but cannot be decided.
    pub unresolvable_rules: Vec<UnresolvableRule>,
    /// Lower-priority rules that also match the flow but never get to decide.
    pub shadowed_rules: Vec<RuleView>,
}

/// An NSG verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsgVerdict {
    /// Direction.
    pub direction: Direction,
    /// The flow as evaluated.
    pub flow: FlowView,
    /// The result.
    pub final_verdict: FinalVerdict,
    /// The rule that decided (null when no NSG applies or the verdict is indeterminate).
    pub decisive_rule: Option<RuleView>,
    /// The gate of that rule.
    pub decisive_gate: Option<Gate>,
    /// First gate.
    pub gate1: GateReport,
    /// Second gate.
    pub gate2: GateReport,
    /// All unresolvable rules.
    pub unresolvable_rules: Vec<UnresolvableRule>,
    /// All shadowed rules.
    pub shadowed_rules: Vec<RuleView>,
    /// One sentence.
    pub reason: String,
}

/// A flow as verdicts print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowView {
    /// Source address.
    pub src_ip: String,
    /// Destination address.
    pub dst_ip: String,
    /// Source port.
    pub src_port: Option<u16>,
    /// Destination port.
    pub dst_port: Option<u16>,
    /// Protocol.
    pub proto: Proto,
}

impl NicNsgs {
    /// Compiles the NIC's effective NSGs (at most one per gate).
    pub fn new(entries: &[NsgEntry]) -> Result<NicNsgs, EniError> {
        let mut out = NicNsgs::default();
        for e in entries {
            let n = Nsg::compile(e)?;
            let slot = match e.association {
                Gate::Subnet => &mut out.subnet,
                Gate::Nic => &mut out.nic,
            };
            if slot.is_some() {
                return Err(EniError::Input(format!(
                    "two effective NSGs claim the {} gate",
                    e.association.as_str()
                )));
            }
            *slot = Some(n);
        }
        Ok(out)
    }

    /// The gates in evaluation order for a direction.
    pub fn order(d: Direction) -> [Gate; 2] {
        match d {
            Direction::Inbound => [Gate::Subnet, Gate::Nic],
            Direction::Outbound => [Gate::Nic, Gate::Subnet],
        }
    }

    fn at(&self, g: Gate) -> Option<&Nsg> {
        match g {
            Gate::Subnet => self.subnet.as_ref(),
            Gate::Nic => self.nic.as_ref(),
        }
    }

    /// The fast verdict (no allocation): what [`NicNsgs::evaluate`] reports as
    /// `final_verdict`.
    #[inline]
    pub fn decide(&self, f: &Flow) -> FinalVerdict {
        let [g1, g2] = Self::order(f.direction);
        let v1 = self
            .at(g1)
            .map(|n| n.decide(f).0)
            .unwrap_or(GateVerdict::NoNsg);
        if v1 == GateVerdict::Deny {
            return FinalVerdict::Deny;
        }
        let v2 = self
            .at(g2)
            .map(|n| n.decide(f).0)
            .unwrap_or(GateVerdict::NoNsg);
        combine(v1, v2)
    }

    fn gate_report(&self, g: Gate, f: &Flow) -> GateReport {
        let Some(nsg) = self.at(g) else {
            return GateReport {
                gate: g,
                nsg: None,
                verdict: GateVerdict::NoNsg,
                evaluated: false,
                skip_reason: Some(format!(
                    "no NSG is associated with the {}: this gate lets the flow through",
                    if g == Gate::Subnet { "subnet" } else { "NIC" }
                )),
                decisive_rule: None,
                rules_evaluated: 0,
                unresolvable_rules: Vec::new(),
                shadowed_rules: Vec::new(),
            };
        };
        let rules = nsg.rules(f.direction);
        let mut report = GateReport {
            gate: g,
            nsg: Some(nsg.name.clone()),
            verdict: GateVerdict::Indeterminate,
            evaluated: true,
            skip_reason: None,
            decisive_rule: None,
            rules_evaluated: 0,
            unresolvable_rules: Vec::new(),
            shadowed_rules: Vec::new(),
        };
        let mut decided = false;
        for (pos, r) in rules.iter().enumerate() {
            let m = r.matches(f);
            if decided {
                if m == Tri::Yes {
                    report.shadowed_rules.push(RuleView::of(r, nsg));
                }
                continue;
            }
            report.rules_evaluated = pos + 1;
            match m {
                Tri::No => {}
                Tri::Unknown => report.unresolvable_rules.push(UnresolvableRule {
                    rule: RuleView::of(r, nsg),
                    reason: r.unknown_reason(f),
                }),
                Tri::Yes => {
                    decided = true;
                    if report.unresolvable_rules.is_empty() {
                        report.verdict = match r.access {
                            Access::Allow => GateVerdict::Allow,
                            Access::Deny => GateVerdict::Deny,
                        };
                        report.decisive_rule = Some(RuleView::of(r, nsg));
                    }
                }
            }
        }
        if !decided && report.unresolvable_rules.is_empty() {
            report.skip_reason = Some(format!(
                "no rule of {} matched; Azure's default rules (DenyAll…) are missing from the input",
                nsg.name
            ));
        }
        report
    }

    /// The full dual-gate verdict.
    pub fn evaluate(&self, f: &Flow) -> NsgVerdict {
        let [g1, g2] = Self::order(f.direction);
        let gate1 = self.gate_report(g1, f);
        let gate2 = if gate1.verdict == GateVerdict::Deny {
            GateReport {
                gate: g2,
                nsg: self.at(g2).map(|n| n.name.clone()),
                verdict: GateVerdict::NotEvaluated,
                evaluated: false,
                skip_reason: Some(format!(
                    "the first gate ({}) denied the flow, so the second never sees it",
                    g1.as_str()
                )),
                decisive_rule: None,
                rules_evaluated: 0,
                unresolvable_rules: Vec::new(),
                shadowed_rules: Vec::new(),
            }
        } else {
            self.gate_report(g2, f)
        };
        let final_verdict = if gate1.verdict == GateVerdict::Deny {
            FinalVerdict::Deny
        } else {
            combine(gate1.verdict, gate2.verdict)
        };
        let (decisive_rule, decisive_gate) = match final_verdict {
            FinalVerdict::Deny => {
                if gate1.verdict == GateVerdict::Deny {
                    (gate1.decisive_rule.clone(), Some(g1))
                } else {
                    (gate2.decisive_rule.clone(), Some(g2))
                }
            }
            FinalVerdict::Allow => {
                if gate2.verdict == GateVerdict::Allow {
                    (gate2.decisive_rule.clone(), Some(g2))
                } else if gate1.verdict == GateVerdict::Allow {
                    (gate1.decisive_rule.clone(), Some(g1))
                } else {
                    (None, None)
                }
            }
            FinalVerdict::Indeterminate => (None, None),
        };
        let mut unresolvable_rules = gate1.unresolvable_rules.clone();
        unresolvable_rules.extend(gate2.unresolvable_rules.iter().cloned());
        let mut shadowed_rules = gate1.shadowed_rules.clone();
        shadowed_rules.extend(gate2.shadowed_rules.iter().cloned());
        let reason = match (final_verdict, &decisive_rule) {
            (FinalVerdict::Deny, Some(r)) => format!(
                "denied at the {} gate by {} (priority {}) of {}",
                r.gate.as_str(),
                r.name,
                r.priority,
                r.nsg
            ),
            (FinalVerdict::Allow, Some(r)) => format!(
                "the last gate that decided ({}) allows it by {} (priority {}) of {}",
                r.gate.as_str(),
                r.name,
                r.priority,
                r.nsg
            ),
            (FinalVerdict::Allow, None) => {
                "no NSG is associated with the subnet or the NIC, so Azure lets the flow through"
                    .to_string()
            }
            (FinalVerdict::Indeterminate, _) if !unresolvable_rules.is_empty() => format!(
                "{} might match first but cannot be evaluated from the input",
                unresolvable_rules
                    .iter()
                    .map(|u| format!("{} ({})", u.rule.name, u.rule.nsg))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "no rule matched and the input lacks Azure's default rules".to_string(),
        };
        NsgVerdict {
            direction: f.direction,
            flow: FlowView {
                src_ip: f.src.to_string(),
                dst_ip: f.dst.to_string(),
                src_port: f.src_port,
                dst_port: f.dst_port,
                proto: f.proto,
            },
            final_verdict,
            decisive_rule,
            decisive_gate,
            gate1,
            gate2,
            unresolvable_rules,
            shadowed_rules,
            reason,
        }
    }
}

/// Combines two gates when the first did not deny.
fn combine(v1: GateVerdict, v2: GateVerdict) -> FinalVerdict {
    match (v1, v2) {
        (_, GateVerdict::Deny) | (GateVerdict::Deny, _) => FinalVerdict::Deny,
        (GateVerdict::Indeterminate, _) | (_, GateVerdict::Indeterminate) => {
            FinalVerdict::Indeterminate
        }
        _ => FinalVerdict::Allow,
    }
}

/// The naive statement of the model, for tests: each gate scans every rule in priority
/// order.
pub fn reference_decide(nsgs: &NicNsgs, f: &Flow) -> FinalVerdict {
    let gate = |n: Option<&Nsg>| -> GateVerdict {
        let Some(n) = n else {
            return GateVerdict::NoNsg;
        };
        for r in n.rules(f.direction) {
            match r.matches(f) {
                Tri::No => continue,
                Tri::Unknown => return GateVerdict::Indeterminate,
                Tri::Yes => {
                    return if r.access == Access::Allow {
                        GateVerdict::Allow
                    } else {
                        GateVerdict::Deny
                    }
                }
            }
        }
        GateVerdict::Indeterminate
    };
    let [g1, g2] = NicNsgs::order(f.direction);
    let v1 = gate(nsgs.at(g1));
    if v1 == GateVerdict::Deny {
        return FinalVerdict::Deny;
    }
    combine(v1, gate(nsgs.at(g2)))
}

// ---------------------------------------------------------------------------------------
// Audit.

/// Management and database ports that should never be open to any source.
pub const SENSITIVE_PORTS: &[(u16, &str)] = &[
    (22, "SSH"),
    (23, "Telnet"),
    (3389, "RDP"),
    (5985, "WinRM"),
    (5986, "WinRM over TLS"),
    (445, "SMB"),
    (1433, "SQL Server"),
    (3306, "MySQL"),
    (5432, "PostgreSQL"),
    (6379, "Redis"),
    (27017, "MongoDB"),
    (9200, "Elasticsearch"),
];

/// A finding kind of the NSG audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditKind {
    /// Allow from any source to a management or database port.
    PermissiveSensitivePort,
    /// Allow from any source to a wide port range (≥ 1000 ports).
    WidePortRange,
    /// A higher-priority rule covers this one with the same access (redundant).
    ShadowedRedundant,
    /// A higher-priority rule covers this one with the opposite access (it never applies).
    ShadowedConflicting,
    /// The rule can never match anything.
    NeverMatches,
}

/// One audit finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFinding {
    /// Kind.
    pub kind: AuditKind,
    /// The rule.
    pub rule: RuleView,
    /// The covering rule, for shadow findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadowed_by: Option<RuleView>,
    /// One sentence.
    pub message: String,
}

/// The NSG audit of one NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsgAudit {
    /// NSGs audited, as `name (gate)`.
    pub nsgs: Vec<String>,
    /// Gates without NSG.
    pub gates_without_nsg: Vec<Gate>,
    /// Findings.
    pub findings: Vec<AuditFinding>,
}

fn covers(a: &Rule, b: &Rule) -> bool {
    let proto = match (a.protocol, b.protocol) {
        (RuleProto::Any, _) => true,
        (RuleProto::One(x), RuleProto::One(y)) => x == y,
        _ => false,
    };
    proto
        && a.src.covers(&b.src)
        && a.dst.covers(&b.dst)
        && a.src_ports.covers(&b.src_ports)
        && a.dst_ports.covers(&b.dst_ports)
}

fn never_matches(r: &Rule) -> Option<String> {
    if let RuleProto::One(p) = r.protocol {
        if !p.has_ports() && (!r.dst_any_port || !r.src_any_port) {
            return Some(format!(
                "protocol {} has no ports but the rule restricts ports",
                r.raw.protocol
            ));
        }
    }
    let fams = |set: &AddrSet| -> Option<Vec<Family>> {
        if set.any || !set.unresolved.is_empty() || set.internet_outside.is_some() {
            return None;
        }
        Some(set.prefixes.iter().map(|p| p.family).collect())
    };
    if let (Some(s), Some(d)) = (fams(&r.src), fams(&r.dst)) {
        if !s.iter().any(|f| d.contains(f)) {
            return Some("its source and destination prefixes share no address family".into());
        }
    }
    None
}

impl NicNsgs {
    /// Audits every NSG of the NIC.
    pub fn audit(&self) -> NsgAudit {
        let mut out = NsgAudit {
            nsgs: Vec::new(),
            gates_without_nsg: Vec::new(),
            findings: Vec::new(),
        };
        for g in [Gate::Subnet, Gate::Nic] {
            let Some(nsg) = self.at(g) else {
                out.gates_without_nsg.push(g);
                continue;
            };
            out.nsgs.push(format!("{} ({})", nsg.name, g.as_str()));
            for d in [Direction::Inbound, Direction::Outbound] {
                let rules = nsg.rules(d);
                for (i, r) in rules.iter().enumerate() {
                    let view = || RuleView::of(r, nsg);
                    if let Some(why) = never_matches(r) {
                        out.findings.push(AuditFinding {
                            kind: AuditKind::NeverMatches,
                            rule: view(),
                            shadowed_by: None,
                            message: format!("{} can never match: {why}", r.name),
                        });
                    }
                    if let Some(by) = rules[..i].iter().find(|h| covers(h, r)) {
                        let same = by.access == r.access;
                        if !r.is_default() {
                            out.findings.push(AuditFinding {
                                kind: if same {
                                    AuditKind::ShadowedRedundant
                                } else {
                                    AuditKind::ShadowedConflicting
                                },
                                rule: view(),
                                shadowed_by: Some(RuleView::of(by, nsg)),
                                message: format!(
                                    "{} (priority {}) is fully covered by {} (priority {}){}",
                                    r.name,
                                    r.priority,
                                    by.name,
                                    by.priority,
                                    if same {
                                        ", with the same access: it is redundant"
                                    } else {
                                        ", with the opposite access: it never applies"
                                    }
                                ),
                            });
                        }
                    }
                    if r.access != Access::Allow || r.is_default() || d != Direction::Inbound {
                        continue;
                    }
                    if !r.src.is_open() {
                        continue;
                    }
                    let proto_tcp_udp = matches!(
                        r.protocol,
                        RuleProto::Any | RuleProto::One(Proto::Tcp) | RuleProto::One(Proto::Udp)
                    );
                    let hit: Vec<String> = SENSITIVE_PORTS
                        .iter()
                        .filter(|(p, _)| proto_tcp_udp && r.dst_ports.contains(*p))
                        .map(|(p, n)| format!("{p} ({n})"))
                        .collect();
                    if !hit.is_empty() {
                        out.findings.push(AuditFinding {
                            kind: AuditKind::PermissiveSensitivePort,
                            rule: view(),
                            shadowed_by: None,
                            message: format!("{} allows any source to {}", r.name, hit.join(", ")),
                        });
                    }
                    if proto_tcp_udp && r.dst_ports.count() >= 1000 {
                        out.findings.push(AuditFinding {
                            kind: AuditKind::WidePortRange,
                            rule: view(),
                            shadowed_by: None,
                            message: format!(
                                "{} allows any source to {} ports",
                                r.name,
                                r.dst_ports.count()
                            ),
                        });
                    }
                }
            }
        }
        out
    }
}
