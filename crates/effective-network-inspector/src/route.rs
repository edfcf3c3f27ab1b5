//! The route engine: Azure's selection among a NIC's effective routes.
//!
//! Rules (see `docs/effective-network-inspector.md` for the sources):
//! 1. candidates are `Active` routes whose prefix contains the destination (`Invalid` never win);
//! 2. Azure's system routes for the virtual network (`VnetLocal`), peerings (`VNetPeering`,
//!    `VNetGlobalPeering`) and service endpoints (`VirtualNetworkServiceEndpoint`) are
//!    preferred over BGP routes even when the BGP route is more specific: when such a system
//!    route is a candidate, BGP candidates are set aside;
//! 3. the longest prefix wins;
//! 4. on equal prefixes: User over VirtualNetworkGateway (BGP) over Default (system), then
//!    any other source;
//! 5. a tie that remains is `TIED_BGP` (unexpected when the tied routes are not BGP).
//!
//! [`RouteTable::lookup`] answers from a compiled multibit trie with precomputed winners;
//! [`RouteTable::explain`] builds the full verdict; [`reference_select`] is the plain,
//! brute-force statement of the rules the tests check both against.

use std::collections::HashSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::net::{Addr, Family, Prefix};
use crate::state::RouteEntry;
use crate::EniError;

/// Where a route came from, in precedence order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SourceKind {
    /// A user-defined route (UDR).
    User,
    /// A BGP route (`VirtualNetworkGateway`).
    Bgp,
    /// A system route (`Default`).
    Default,
    /// Any other source Azure may print (`Unknown`); ranks last.
    Other,
}

impl SourceKind {
    /// Classifies Azure's `source` string (case-insensitive).
    pub fn of(source: &str) -> SourceKind {
        match source.to_ascii_lowercase().as_str() {
            "user" => SourceKind::User,
            "virtualnetworkgateway" => SourceKind::Bgp,
            "default" => SourceKind::Default,
            _ => SourceKind::Other,
        }
    }
}

/// One route with a single prefix (an az entry with several prefixes becomes several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The prefix.
    pub prefix: Prefix,
    /// Route name, when Azure gives one.
    pub name: Option<String>,
    /// Azure's source string.
    pub source: String,
    /// Its precedence class.
    pub kind: SourceKind,
    /// Azure's state string.
    pub state: String,
    /// Whether the state is `Active`.
    pub active: bool,
    /// Next-hop type.
    pub next_hop_type: String,
    /// Next-hop addresses.
    pub next_hop_ip: Vec<String>,
    /// Index of the az entry this came from.
    pub entry: usize,
}

impl Route {
    /// Whether this is a system route Azure prefers over BGP routes (VNet, peering, service
    /// endpoint).
    pub fn is_protected_system(&self) -> bool {
        self.active && self.protected_hop()
    }

    /// Whether this is a `Default` route to the VNet, a peering or a service endpoint,
    /// whatever its state.
    pub fn protected_hop(&self) -> bool {
        self.kind == SourceKind::Default
            && matches!(
                self.next_hop_type.to_ascii_lowercase().as_str(),
                "vnetlocal"
                    | "vnetpeering"
                    | "vnetglobalpeering"
                    | "virtualnetworkserviceendpoint"
                    | "virtualnetworkpeering"
            )
    }

    fn hop_is(&self, t: &str) -> bool {
        self.next_hop_type.eq_ignore_ascii_case(t)
    }

    /// The JSON view (`winning_route` shape).
    pub fn view(&self) -> RouteView {
        RouteView {
            prefix: self.prefix.to_string(),
            next_hop_type: self.next_hop_type.clone(),
            next_hop_ip: self.next_hop_ip.first().cloned(),
            next_hop_ips: self.next_hop_ip.clone(),
            source: self.source.clone(),
            state: self.state.clone(),
            name: self.name.clone(),
        }
    }
}

/// A route as verdicts print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// The matching prefix.
    pub prefix: String,
    /// Next-hop type.
    pub next_hop_type: String,
    /// The first next-hop address, if any.
    pub next_hop_ip: Option<String>,
    /// All next-hop addresses.
    pub next_hop_ips: Vec<String>,
    /// Source.
    pub source: String,
    /// State.
    pub state: String,
    /// Name.
    pub name: Option<String>,
}

/// The outcome of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No candidate.
    NoRoute,
    /// One route won (index into [`RouteTable::routes`]).
    Winner(u32),
    /// Several routes remain tied (sorted indices).
    Tied(Vec<u32>),
}

fn rank(kind: SourceKind) -> u8 {
    kind as u8
}

/// The rules stated plainly over a list of routes: which of `routes` wins for `addr`.
/// Invalid routes never win. This is the brute-force reference of the compiled engine.
pub fn reference_select(routes: &[Route], addr: Addr) -> Selection {
    let cands: Vec<u32> = (0..routes.len() as u32)
        .filter(|&i| {
            let r = &routes[i as usize];
            r.active && r.prefix.contains(addr)
        })
        .collect();
    select_among(routes, &cands, false)
}

/// Selection among candidate indices (all assumed to contain the address). With
/// `ignore_state`, Invalid routes compete as if Active (used for `INVALID_SHADOW`).
fn select_among(routes: &[Route], cands: &[u32], ignore_state: bool) -> Selection {
    let eligible = eligible(routes, cands, ignore_state);
    best_of(routes, &eligible)
}

fn eligible(routes: &[Route], cands: &[u32], ignore_state: bool) -> Vec<u32> {
    let live = |i: &u32| ignore_state || routes[*i as usize].active;
    let protected = cands
        .iter()
        .filter(|i| live(i))
        .any(|&i| routes[i as usize].protected_hop());
    cands
        .iter()
        .copied()
        .filter(|i| live(i))
        .filter(|&i| !(protected && routes[i as usize].kind == SourceKind::Bgp))
        .collect()
}

fn best_of(routes: &[Route], eligible: &[u32]) -> Selection {
    let Some(max_len) = eligible
        .iter()
        .map(|&i| routes[i as usize].prefix.len)
        .max()
    else {
        return Selection::NoRoute;
    };
    let at_len: Vec<u32> = eligible
        .iter()
        .copied()
        .filter(|&i| routes[i as usize].prefix.len == max_len)
        .collect();
    let best_rank = at_len
        .iter()
        .map(|&i| rank(routes[i as usize].kind))
        .min()
        .unwrap_or(0);
    let mut best: Vec<u32> = at_len
        .into_iter()
        .filter(|&i| rank(routes[i as usize].kind) == best_rank)
        .collect();
    best.sort_unstable();
    if best.len() == 1 {
        Selection::Winner(best[0])
    } else {
        Selection::Tied(best)
    }
}

// ---------------------------------------------------------------------------------------
// The compiled structure.

const NONE: u32 = u32::MAX;
/// At most this many 256-slot nodes (1 KiB each) per family: 64 MiB.
const MAX_MULTIBIT_NODES: usize = 1 << 16;
const CHILD: u32 = 1 << 31;

#[derive(Debug, Clone)]
struct BNode {
    child: [u32; 2],
    routes: Vec<u32>,
    /// Decision id + 1 for addresses whose deepest node is this one (0: no route).
    eff: u32,
}

#[derive(Debug, Clone)]
struct Trie {
    family: Family,
    nodes: Vec<BNode>,
    /// Flat multibit table: root has 2^16 slots, every other node 2^8.
    flat: Vec<u32>,
}

impl Trie {
    fn new(family: Family) -> Trie {
        Trie {
            family,
            nodes: vec![BNode {
                child: [NONE; 2],
                routes: Vec::new(),
                eff: 0,
            }],
            flat: Vec::new(),
        }
    }

    fn insert(&mut self, p: &Prefix, idx: u32) {
        let a = Addr {
            family: p.family,
            bits: p.bits,
        };
        let mut n = 0usize;
        for i in 0..p.len {
            let b = a.bit(i);
            if self.nodes[n].child[b] == NONE {
                self.nodes.push(BNode {
                    child: [NONE; 2],
                    routes: Vec::new(),
                    eff: 0,
                });
                let new = (self.nodes.len() - 1) as u32;
                self.nodes[n].child[b] = new;
            }
            n = self.nodes[n].child[b] as usize;
        }
        self.nodes[n].routes.push(idx);
    }

    /// Indices of every route (any state) whose prefix contains `addr`, shortest first.
    fn path_routes(&self, addr: Addr) -> Vec<u32> {
        let mut out = Vec::new();
        let mut n = 0usize;
        let mut depth = 0u8;
        loop {
            out.extend_from_slice(&self.nodes[n].routes);
            if depth == self.family.width() {
                break;
            }
            let c = self.nodes[n].child[addr.bit(depth)];
            if c == NONE {
                break;
            }
            n = c as usize;
            depth += 1;
        }
        out
    }

    /// Top-down: the decision for each node given the routes on its path.
    fn decide(&mut self, routes: &[Route], decisions: &mut Vec<Selection>) {
        // (node, inherited eff, protected seen on the path)
        let mut stack = vec![(0usize, 0u32, false)];
        while let Some((n, inherited, protected_above)) = stack.pop() {
            let here = &self.nodes[n].routes;
            let protected = protected_above
                || here
                    .iter()
                    .any(|&i| routes[i as usize].is_protected_system());
            let elig: Vec<u32> = here
                .iter()
                .copied()
                .filter(|&i| routes[i as usize].active)
                .filter(|&i| !(protected && routes[i as usize].kind == SourceKind::Bgp))
                .collect();
            let eff = if elig.is_empty() {
                inherited
            } else {
                decisions.push(best_of(routes, &elig));
                decisions.len() as u32
            };
            self.nodes[n].eff = eff;
            for c in self.nodes[n].child {
                if c != NONE {
                    stack.push((c as usize, eff, protected));
                }
            }
        }
    }

    fn has_children(&self, n: u32) -> bool {
        self.nodes[n as usize].child != [NONE; 2]
    }

    /// How many 256-slot nodes the compiled table needs: one per binary node with children
    /// at a stride boundary (depth 16, 24, 32, …).
    fn multibit_nodes(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![(0usize, 0u8)];
        while let Some((n, d)) = stack.pop() {
            let node = &self.nodes[n];
            if d >= 16 && (d - 16) % 8 == 0 && node.child != [NONE; 2] {
                count += 1;
            }
            for c in node.child {
                if c != NONE {
                    stack.push((c as usize, d + 1));
                }
            }
        }
        count
    }

    /// The decision for `addr` by walking the binary trie (the fallback when the compiled
    /// table would be too large): the deepest node on the path carries it.
    fn lookup_binary(&self, addr: Addr) -> u32 {
        let mut n = 0usize;
        let mut eff = self.nodes[0].eff;
        for depth in 0..self.family.width() {
            let c = self.nodes[n].child[addr.bit(depth)];
            if c == NONE {
                break;
            }
            n = c as usize;
            eff = self.nodes[n].eff;
        }
        eff
    }

    /// Compiles the multibit table unless it would need more than `max_nodes` nodes
    /// (hostile or huge inputs); lookups then walk the binary trie.
    fn compile(&mut self, max_nodes: usize) {
        if max_nodes == 0 || self.multibit_nodes() > max_nodes {
            self.flat = Vec::new();
            return;
        }
        let mut flat = vec![0u32; 1 << 16];
        self.fill(&mut flat, 0, Some(0), 16, 0, 0, 0);
        self.flat = flat;
    }

    /// Fills the slots `slot << r .. (slot + 1) << r` of the multibit node at `base`, walking
    /// `r` more bits below binary node `node`; `depth` is the bit depth of `node`.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        flat: &mut Vec<u32>,
        base: usize,
        node: Option<u32>,
        r: u8,
        slot: usize,
        eff: u32,
        depth: u8,
    ) {
        let w = self.family.width();
        match node {
            None => {
                let start = base + (slot << r);
                flat[start..start + (1usize << r)].fill(eff);
            }
            Some(n) => {
                let here = self.nodes[n as usize].eff;
                if r == 0 {
                    if depth < w && self.has_children(n) {
                        let child_base = flat.len();
                        flat.resize(child_base + 256, 0);
                        let stride = 8.min(w - depth);
                        // Strides always divide the width (16 + 8k), so stride is 8 here.
                        debug_assert_eq!(stride, 8);
                        self.fill(flat, child_base, Some(n), stride, 0, here, depth);
                        flat[base + slot] = CHILD | child_base as u32;
                    } else {
                        flat[base + slot] = here;
                    }
                    return;
                }
                let kids = self.nodes[n as usize].child;
                for (b, &k) in kids.iter().enumerate() {
                    let k = if k == NONE { None } else { Some(k) };
                    self.fill(flat, base, k, r - 1, (slot << 1) | b, here, depth + 1);
                }
            }
        }
    }

    #[inline]
    fn lookup_v4(&self, a: u32) -> u32 {
        let mut e = self.flat[(a >> 16) as usize];
        if e & CHILD == 0 {
            return e;
        }
        e = self.flat[(e & !CHILD) as usize + ((a >> 8) & 0xff) as usize];
        if e & CHILD == 0 {
            return e;
        }
        self.flat[(e & !CHILD) as usize + (a & 0xff) as usize]
    }

    #[inline]
    fn lookup_v6(&self, a: u128) -> u32 {
        let mut e = self.flat[(a >> 112) as usize];
        let mut shift = 112u32;
        while e & CHILD != 0 {
            shift -= 8;
            e = self.flat[(e & !CHILD) as usize + ((a >> shift) & 0xff) as usize];
        }
        e
    }
}

/// A NIC's routes, indexed for lookups.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
    decisions: Vec<Selection>,
    v4: Trie,
    v6: Trie,
}

/// The fast answer of [`RouteTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// No route.
    NoRoute,
    /// One winner.
    Winner(&'a Route),
    /// Tied routes (indices into [`RouteTable::routes`]).
    Tied(&'a [u32]),
}

impl RouteTable {
    /// Indexes az route entries. A prefix that is not a CIDR is an error naming the route.
    pub fn new(entries: &[RouteEntry]) -> Result<RouteTable, EniError> {
        let mut routes = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.address_prefix.is_empty() {
                return Err(EniError::Input(format!(
                    "effective route #{} ({}) has no addressPrefix",
                    i + 1,
                    e.name.as_deref().unwrap_or(&e.next_hop_type)
                )));
            }
            for p in &e.address_prefix {
                let prefix: Prefix = p
                    .parse()
                    .map_err(|m| EniError::Input(format!("effective route #{}: {m}", i + 1)))?;
                routes.push(Route {
                    prefix,
                    name: e.name.clone(),
                    source: e.source.clone(),
                    kind: SourceKind::of(&e.source),
                    state: e.state.clone(),
                    active: e.state.eq_ignore_ascii_case("active"),
                    next_hop_type: e.next_hop_type.clone(),
                    next_hop_ip: e.next_hop_ip_address.clone(),
                    entry: i,
                });
            }
        }
        Ok(RouteTable::from_routes(routes))
    }

    /// Indexes routes already split per prefix.
    pub fn from_routes(routes: Vec<Route>) -> RouteTable {
        Self::build(routes, MAX_MULTIBIT_NODES)
    }

    /// The same table without the compiled multibit index (lookups walk the binary trie).
    /// For tests and comparisons; [`RouteTable::from_routes`] falls back to this on its own
    /// when the index would exceed its memory bound.
    pub fn from_routes_uncompiled(routes: Vec<Route>) -> RouteTable {
        Self::build(routes, 0)
    }

    /// Whether lookups of both families use the compiled multibit index.
    pub fn is_compiled(&self) -> bool {
        !self.v4.flat.is_empty() && !self.v6.flat.is_empty()
    }

    fn build(routes: Vec<Route>, max_nodes: usize) -> RouteTable {
        let mut v4 = Trie::new(Family::V4);
        let mut v6 = Trie::new(Family::V6);
        for (i, r) in routes.iter().enumerate() {
            match r.prefix.family {
                Family::V4 => v4.insert(&r.prefix, i as u32),
                Family::V6 => v6.insert(&r.prefix, i as u32),
            }
        }
        let mut decisions = Vec::new();
        v4.decide(&routes, &mut decisions);
        v6.decide(&routes, &mut decisions);
        v4.compile(max_nodes);
        v6.compile(max_nodes);
        RouteTable {
            routes,
            decisions,
            v4,
            v6,
        }
    }

    /// The routes, one per prefix.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The winner for `addr` from the compiled table (no allocation).
    #[inline]
    pub fn lookup(&self, addr: Addr) -> Lookup<'_> {
        let e = match addr.family {
            Family::V4 if !self.v4.flat.is_empty() => self.v4.lookup_v4(addr.bits as u32),
            Family::V6 if !self.v6.flat.is_empty() => self.v6.lookup_v6(addr.bits),
            Family::V4 => self.v4.lookup_binary(addr),
            Family::V6 => self.v6.lookup_binary(addr),
        };
        if e == 0 {
            return Lookup::NoRoute;
        }
        match &self.decisions[(e - 1) as usize] {
            Selection::NoRoute => Lookup::NoRoute,
            Selection::Winner(i) => Lookup::Winner(&self.routes[*i as usize]),
            Selection::Tied(v) => Lookup::Tied(v),
        }
    }

    /// The compiled answer as a [`Selection`] (for comparisons with [`reference_select`]).
    pub fn select(&self, addr: Addr) -> Selection {
        match self.lookup(addr) {
            Lookup::NoRoute => Selection::NoRoute,
            Lookup::Winner(r) => Selection::Winner(
                self.routes
                    .iter()
                    .position(|x| std::ptr::eq(x, r))
                    .unwrap_or(0) as u32,
            ),
            Lookup::Tied(v) => Selection::Tied(v.to_vec()),
        }
    }

    /// The full verdict for `addr`. `live` is the set of addresses known to answer (from a
    /// lab or the caller); `None` when nobody checked.
    pub fn explain(&self, addr: Addr, live: Option<&HashSet<IpAddr>>) -> RouteVerdict {
        let trie = match addr.family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        let all = trie.path_routes(addr);
        let active: Vec<u32> = all
            .iter()
            .copied()
            .filter(|&i| self.routes[i as usize].active)
            .collect();
        let elig = eligible(&self.routes, &active, false);
        let selection = best_of(&self.routes, &elig);
        let r = |i: u32| &self.routes[i as usize];

        let mut verdict = RouteVerdict {
            destination: addr.to_string(),
            result: RouteResult::NoRoute,
            selection_reason: None,
            winning_route: None,
            tied_routes: Vec::new(),
            tie_unexpected: false,
            special_rule: None,
            shadowed_candidates: Vec::new(),
            anomalies: Vec::new(),
            candidates_considered: active.len(),
        };
        let chosen: Vec<u32> = match &selection {
            Selection::NoRoute => Vec::new(),
            Selection::Winner(w) => vec![*w],
            Selection::Tied(v) => v.clone(),
        };
        if let Some(&first) = chosen.first() {
            let win_len = r(first).prefix.len;
            let same_len_others = active
                .iter()
                .any(|&i| r(i).prefix.len == win_len && !chosen.contains(&i));
            // Did the VNet/peering/service-endpoint rule change the outcome?
            let bgp_would_have_won = best_of(&self.routes, &active) != selection;
            if bgp_would_have_won {
                verdict.special_rule = Some(
                    "AZURE_SYSTEM_ROUTE_OVER_BGP: system routes for the virtual network, peerings and service endpoints are preferred over BGP routes, even more specific ones"
                        .to_string(),
                );
            }
            verdict.selection_reason = Some(if same_len_others || bgp_would_have_won {
                SelectionReason::SourcePrecedence
            } else {
                SelectionReason::LpmOnly
            });
        }
        match &selection {
            Selection::NoRoute => {}
            Selection::Winner(w) => {
                verdict.result = RouteResult::Winner;
                verdict.winning_route = Some(r(*w).view());
            }
            Selection::Tied(v) => {
                verdict.result = RouteResult::TiedBgp;
                verdict.tied_routes = v.iter().map(|&i| r(i).view()).collect();
                verdict.tie_unexpected = v.iter().any(|&i| r(i).kind != SourceKind::Bgp);
            }
        }
        // Shadowed candidates: every other active candidate, in the order they would win.
        let mut others: Vec<u32> = active
            .iter()
            .copied()
            .filter(|i| !chosen.contains(i))
            .collect();
        others.sort_by_key(|&i| {
            (
                std::cmp::Reverse(r(i).prefix.len),
                rank(r(i).kind),
                !elig.contains(&i),
                i,
            )
        });
        verdict.shadowed_candidates = others
            .iter()
            .map(|&i| {
                let reason = if !elig.contains(&i) {
                    "BGP route set aside: a VNet, peering or service-endpoint system route covers the destination".to_string()
                } else if chosen.first().is_some_and(|&c| r(c).prefix.len > r(i).prefix.len) {
                    "shorter prefix".to_string()
                } else {
                    "same prefix, lower source precedence".to_string()
                };
                ShadowedRoute {
                    route: r(i).view(),
                    reason,
                }
            })
            .collect();

        // Anomalies.
        for &c in &chosen {
            let w = r(c);
            if w.hop_is("None") {
                verdict.anomalies.push(Anomaly {
                    kind: AnomalyKind::Blackhole,
                    message: format!(
                        "the winning route {} ({}) has next hop None: Azure drops the traffic",
                        w.prefix, w.source
                    ),
                    next_hop_ip: None,
                    answers: None,
                });
            }
            if w.hop_is("VirtualAppliance") {
                let ip = w.next_hop_ip.first().cloned();
                let answers = match (&ip, live) {
                    (Some(ip), Some(set)) => Some(
                        ip.parse::<IpAddr>()
                            .map(|a| set.contains(&a))
                            .unwrap_or(false),
                    ),
                    _ => None,
                };
                let hop = ip.clone().unwrap_or_else(|| "(no address)".to_string());
                let tail = match answers {
                    Some(true) => "; something answers there".to_string(),
                    Some(false) => "; nothing answers there: traffic is lost".to_string(),
                    None => "; whether anything answers there was not checked".to_string(),
                };
                verdict.anomalies.push(Anomaly {
                    kind: AnomalyKind::Nva,
                    message: format!(
                        "the winning route {} sends traffic to the virtual appliance {hop}{tail}",
                        w.prefix
                    ),
                    next_hop_ip: ip,
                    answers,
                });
            }
        }
        // INVALID_SHADOW: an Invalid route that would have won were it Active.
        let would = select_among(&self.routes, &all, true);
        let would_set: Vec<u32> = match would {
            Selection::NoRoute => Vec::new(),
            Selection::Winner(w) => vec![w],
            Selection::Tied(v) => v,
        };
        // Only when the Invalid route(s) would have displaced the actual winner(s).
        let displaced = !would_set.iter().any(|i| chosen.contains(i));
        for i in would_set {
            if displaced && !r(i).active {
                verdict.anomalies.push(Anomaly {
                    kind: AnomalyKind::InvalidShadow,
                    message: format!(
                        "the Invalid route {} ({} to {}) would have won were it Active",
                        r(i).prefix,
                        r(i).source,
                        r(i).next_hop_type
                    ),
                    next_hop_ip: r(i).next_hop_ip.first().cloned(),
                    answers: None,
                });
            }
        }
        verdict
    }

    /// The audit of the whole table.
    pub fn audit(&self) -> RouteAudit {
        let mut by_len: Vec<&Route> = self.routes.iter().collect();
        by_len.sort_by_key(|r| (r.prefix.family, std::cmp::Reverse(r.prefix.len), r.entry));
        let views = |f: &dyn Fn(&Route) -> bool| -> Vec<RouteView> {
            by_len.iter().filter(|r| f(r)).map(|r| r.view()).collect()
        };
        let mut defaults = Vec::new();
        for fam in [Family::V4, Family::V6] {
            let has = self
                .routes
                .iter()
                .any(|r| r.prefix.family == fam && r.prefix.is_default());
            if !has {
                continue;
            }
            let probe = Addr {
                family: fam,
                bits: 0,
            };
            let entries: Vec<RouteView> = self
                .routes
                .iter()
                .filter(|r| r.prefix.family == fam && r.prefix.is_default())
                .map(Route::view)
                .collect();
            // The /0 decision is what an address covered by nothing longer gets.
            let only_default: Vec<Route> = self
                .routes
                .iter()
                .filter(|r| r.prefix.family == fam && r.prefix.is_default())
                .cloned()
                .collect();
            let winner = match reference_select(&only_default, probe) {
                Selection::Winner(i) => Some(only_default[i as usize].view()),
                _ => None,
            };
            defaults.push(DefaultRoute {
                prefix: if fam == Family::V4 {
                    "0.0.0.0/0"
                } else {
                    "::/0"
                }
                .to_string(),
                source: winner.as_ref().map(|w| w.source.clone()),
                winner,
                entries,
            });
        }
        let blackholes = views(&|r| r.active && r.hop_is("None"));
        let invalid = views(&|r| !r.active);
        let nva = views(&|r| r.hop_is("VirtualAppliance"));
        RouteAudit {
            route_count: self.routes.len(),
            routes_by_prefix_length: views(&|_| true),
            invalid_routes: invalid,
            blackholes,
            nva_routes: nva,
            bgp_routes: views(&|r| r.kind == SourceKind::Bgp),
            default_routes: defaults,
        }
    }
}

/// `WINNER | NO_ROUTE | TIED_BGP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RouteResult {
    /// One route won.
    Winner,
    /// No route contains the destination.
    NoRoute,
    /// Several routes remain tied.
    TiedBgp,
}

/// `LPM_ONLY | SOURCE_PRECEDENCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SelectionReason {
    /// The winner had the longest prefix, alone at its length.
    LpmOnly,
    /// The source decided (equal prefixes, or the system-over-BGP rule).
    SourcePrecedence,
}

/// `BLACKHOLE | NVA | INVALID_SHADOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnomalyKind {
    /// The winner's next hop is None.
    Blackhole,
    /// The winner goes to a virtual appliance.
    Nva,
    /// An Invalid route would have won (displacing the actual winner).
    InvalidShadow,
}

/// One anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Kind.
    pub kind: AnomalyKind,
    /// One sentence.
    pub message: String,
    /// The next hop concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ip: Option<String>,
    /// For NVA: whether something answers at the hop (null when not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<bool>,
}

/// A candidate that lost, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowedRoute {
    /// The route.
    #[serde(flatten)]
    pub route: RouteView,
    /// Why it lost.
    pub reason: String,
}

/// A route verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteVerdict {
    /// The destination address.
    pub destination: String,
    /// The result.
    pub result: RouteResult,
    /// Why the winner won (null for NO_ROUTE).
    pub selection_reason: Option<SelectionReason>,
    /// The winner (null unless WINNER).
    pub winning_route: Option<RouteView>,
    /// The tied routes (TIED_BGP).
    pub tied_routes: Vec<RouteView>,
    /// True when tied routes are not all BGP (Azure should not produce that).
    pub tie_unexpected: bool,
    /// Set when one of Azure's special system-route rules decided.
    pub special_rule: Option<String>,
    /// Other active candidates, in the order they would have won.
    pub shadowed_candidates: Vec<ShadowedRoute>,
    /// Anomalies.
    pub anomalies: Vec<Anomaly>,
    /// How many active routes contained the destination.
    pub candidates_considered: usize,
}

impl RouteVerdict {
    /// Whether this verdict is a finding (exit 1): NO_ROUTE, BLACKHOLE, an unexpected tie,
    /// or an NVA where nothing answers.
    pub fn is_finding(&self) -> bool {
        self.result == RouteResult::NoRoute
            || self.tie_unexpected
            || self.anomalies.iter().any(|a| {
                a.kind == AnomalyKind::Blackhole
                    || (a.kind == AnomalyKind::Nva && a.answers == Some(false))
            })
    }
}

/// The default route of one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    /// `0.0.0.0/0` or `::/0`.
    pub prefix: String,
    /// The source of the /0 route that wins among the /0 routes.
    pub source: Option<String>,
    /// That route.
    pub winner: Option<RouteView>,
    /// Every /0 route.
    pub entries: Vec<RouteView>,
}

/// Route audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteAudit {
    /// Routes (one per prefix).
    pub route_count: usize,
    /// All routes, longest prefix first.
    pub routes_by_prefix_length: Vec<RouteView>,
    /// Invalid routes.
    pub invalid_routes: Vec<RouteView>,
    /// Active routes with next hop None.
    pub blackholes: Vec<RouteView>,
    /// Routes to virtual appliances.
    pub nva_routes: Vec<RouteView>,
    /// BGP routes.
    pub bgp_routes: Vec<RouteView>,
    /// The default routes and their sources.
    pub default_routes: Vec<DefaultRoute>,
}

impl RouteAudit {
    /// Whether the audit holds a finding: a user-defined or BGP route that blackholes
    /// traffic (Azure's own `None` system routes for RFC 1918 / RFC 6598 ranges are listed
    /// but are not findings).
    pub fn is_finding(&self) -> bool {
        self.blackholes
            .iter()
            .any(|r| SourceKind::of(&r.source) != SourceKind::Default)
    }
}
