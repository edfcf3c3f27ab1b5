//! Snapshots of effective state and the drift between two of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::route::SourceKind;
use crate::state::{Gate, NicState, RouteEntry, RuleEntry};

/// The body of `eni_<id>_snapshot.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where the state came from (`offline-files`, or the live provider: `azure`).
    pub source: String,
    /// Whether this snapshot was taken as a baseline.
    pub is_baseline: bool,
    /// NICs, sorted by name.
    pub nics: Vec<NicState>,
}

impl Snapshot {
    /// A snapshot of `nics` (sorted by name; duplicate names are refused by the caller).
    pub fn new(source: &str, is_baseline: bool, mut nics: Vec<NicState>) -> Snapshot {
        nics.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            source: source.to_string(),
            is_baseline,
            nics,
        }
    }

    /// The NIC named `name`.
    pub fn nic(&self, name: &str) -> Option<&NicState> {
        self.nics.iter().find(|n| n.name == name)
    }
}

/// A drift category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A BGP (VirtualNetworkGateway) route appeared, disappeared or changed.
    BgpRouteChange,
    /// A user-defined route changed.
    UdrRouteChange,
    /// A system (Default) route changed.
    SystemRouteChange,
    /// An effective security rule changed (or an NSG association).
    SecurityRuleChange,
    /// A NIC appeared or disappeared, or its addresses changed.
    NicChange,
}

/// `added | removed | changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only in the current snapshot.
    Added,
    /// Present only in the baseline.
    Removed,
    /// Present in both, with different fields.
    Changed,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Field name (snapshot spelling).
    pub field: String,
    /// Baseline value.
    pub before: serde_json::Value,
    /// Current value.
    pub after: serde_json::Value,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Category.
    pub category: Category,
    /// Kind.
    pub change: ChangeKind,
    /// `route`, `rule`, `nsg` or `nic`.
    pub item: String,
    /// A readable key (`10.1.0.0/16 via VirtualNetworkGateway`, `subnet-nsg/Inbound/securityRules/deny-x`).
    pub key: String,
    /// Baseline value (null when added).
    pub before: Option<serde_json::Value>,
    /// Current value (null when removed).
    pub after: Option<serde_json::Value>,
    /// Differing fields (changed only).
    pub fields: Vec<FieldChange>,
}

/// Changes of one NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicDiff {
    /// NIC name.
    pub nic: String,
    /// `added`, `removed` or `changed`.
    pub status: ChangeKind,
    /// Changes.
    pub changes: Vec<Change>,
}

/// A snapshot's identity in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Session id.
    pub session_id: String,
    /// Artifact name.
    pub artifact: String,
    /// SHA-256 of the artifact as stored (verified on load).
    pub sha256: String,
}

/// The body of `eni_<id>_diff.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    /// The baseline.
    pub baseline: SnapshotRef,
    /// The current snapshot.
    pub current: SnapshotRef,
    /// Whether anything changed (explicitly false when nothing did).
    pub drift_detected: bool,
    /// Change counts per category (every category present, 0 included).
    pub summary: BTreeMap<Category, usize>,
    /// NICs with changes.
    pub nics: Vec<NicDiff>,
}

fn route_category(source: &str) -> Category {
    match SourceKind::of(source) {
        SourceKind::User => Category::UdrRouteChange,
        SourceKind::Bgp => Category::BgpRouteChange,
        _ => Category::SystemRouteChange,
    }
}

fn to_value<T: Serialize>(t: &T) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

fn field_changes(before: &serde_json::Value, after: &serde_json::Value) -> Vec<FieldChange> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let x = b.get(k).cloned().unwrap_or(serde_json::Value::Null);
            let y = a.get(k).cloned().unwrap_or(serde_json::Value::Null);
            (x != y).then(|| FieldChange {
                field: k.clone(),
                before: x,
                after: y,
            })
        })
        .collect()
}

fn route_key(r: &RouteEntry) -> String {
    let mut p = r.address_prefix.clone();
    p.sort();
    format!("{} ({})", p.join(","), r.source)
}

fn route_label(r: &RouteEntry) -> String {
    format!(
        "{} via {}{}",
        route_key(r),
        r.next_hop_type,
        if r.next_hop_ip_address.is_empty() {
            String::new()
        } else {
            format!(" {}", r.next_hop_ip_address.join(","))
        }
    )
}

/// Routes: grouped by (prefixes, source). Identical routes pair first (so of two BGP paths
/// to one prefix, the withdrawn one is `removed`); a group left with exactly one route on
/// each side is `changed`; anything else is added/removed.
fn diff_routes(before: &[RouteEntry], after: &[RouteEntry], out: &mut Vec<Change>) {
    let mut groups: BTreeMap<String, (Vec<&RouteEntry>, Vec<&RouteEntry>)> = BTreeMap::new();
    for r in before {
        groups.entry(route_key(r)).or_default().0.push(r);
    }
    for r in after {
        groups.entry(route_key(r)).or_default().1.push(r);
    }
    for (key, (mut b, mut a)) in groups {
        let mut i = 0;
        while i < b.len() {
            if let Some(j) = a.iter().position(|x| *x == b[i]) {
                a.remove(j);
                b.remove(i);
            } else {
                i += 1;
            }
        }
        if b.len() == 1 && a.len() == 1 {
            let (bv, av) = (to_value(b[0]), to_value(a[0]));
            out.push(Change {
                category: route_category(&a[0].source),
                change: ChangeKind::Changed,
                item: "route".into(),
                key: key.clone(),
                fields: field_changes(&bv, &av),
                before: Some(bv),
                after: Some(av),
            });
            continue;
        }
        for r in b {
            out.push(Change {
                category: route_category(&r.source),
                change: ChangeKind::Removed,
                item: "route".into(),
                key: route_label(r),
                before: Some(to_value(r)),
                after: None,
                fields: Vec::new(),
            });
        }
        for r in a {
            out.push(Change {
                category: route_category(&r.source),
                change: ChangeKind::Added,
                item: "route".into(),
                key: route_label(r),
                before: None,
                after: Some(to_value(r)),
                fields: Vec::new(),
            });
        }
    }
}

fn rule_map(nic: &NicState) -> BTreeMap<String, (&str, Gate, &RuleEntry)> {
    let mut m = BTreeMap::new();
    for n in &nic.nsgs {
        for r in &n.rules {
            let key = format!(
                "{}:{}/{}/{}",
                n.association.as_str(),
                n.nsg,
                r.direction,
                r.name
            );
            m.insert(key, (n.nsg.as_str(), n.association, r));
        }
    }
    m
}

fn diff_rules(before: &NicState, after: &NicState, out: &mut Vec<Change>) {
    // NSG associations first.
    let assoc = |n: &NicState| -> BTreeMap<Gate, (String, Option<String>)> {
        n.nsgs
            .iter()
            .map(|x| (x.association, (x.nsg.clone(), x.nsg_id.clone())))
            .collect()
    };
    let (ab, aa) = (assoc(before), assoc(after));
    for g in [Gate::Subnet, Gate::Nic] {
        let (x, y) = (ab.get(&g), aa.get(&g));
        if x != y {
            let change = match (x, y) {
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                _ => ChangeKind::Changed,
            };
            out.push(Change {
                category: Category::SecurityRuleChange,
                change,
                item: "nsg".into(),
                key: format!("{} gate", g.as_str()),
                before: x.map(|v| serde_json::json!({"nsg": v.0, "nsg_id": v.1})),
                after: y.map(|v| serde_json::json!({"nsg": v.0, "nsg_id": v.1})),
                fields: Vec::new(),
            });
        }
    }
    let (rb, ra) = (rule_map(before), rule_map(after));
    for (k, (_, _, r)) in &rb {
        match ra.get(k) {
            None => out.push(Change {
                category: Category::SecurityRuleChange,
                change: ChangeKind::Removed,
                item: "rule".into(),
                key: k.clone(),
                before: Some(to_value(r)),
                after: None,
                fields: Vec::new(),
            }),
            Some((_, _, now)) if now != r => {
                let (bv, av) = (to_value(r), to_value(now));
                out.push(Change {
                    category: Category::SecurityRuleChange,
                    change: ChangeKind::Changed,
                    item: "rule".into(),
                    key: k.clone(),
                    fields: field_changes(&bv, &av),
                    before: Some(bv),
                    after: Some(av),
                });
            }
            Some(_) => {}
        }
    }
    for (k, (_, _, r)) in &ra {
        if !rb.contains_key(k) {
            out.push(Change {
                category: Category::SecurityRuleChange,
                change: ChangeKind::Added,
                item: "rule".into(),
                key: k.clone(),
                before: None,
                after: Some(to_value(r)),
                fields: Vec::new(),
            });
        }
    }
}

/// Compares two snapshots.
pub fn diff(baseline: &Snapshot, current: &Snapshot, b: SnapshotRef, c: SnapshotRef) -> Diff {
    let mut nics = Vec::new();
    let names: std::collections::BTreeSet<&str> = baseline
        .nics
        .iter()
        .chain(current.nics.iter())
        .map(|n| n.name.as_str())
        .collect();
    for name in names {
        match (baseline.nic(name), current.nic(name)) {
            (Some(x), None) => nics.push(NicDiff {
                nic: name.to_string(),
                status: ChangeKind::Removed,
                changes: vec![Change {
                    category: Category::NicChange,
                    change: ChangeKind::Removed,
                    item: "nic".into(),
                    key: name.to_string(),
                    before: Some(serde_json::json!({"name": x.name, "ip_addresses": x.ip_addresses, "routes": x.routes.len(), "nsgs": x.nsgs.len()})),
                    after: None,
                    fields: Vec::new(),
                }],
            }),
            (None, Some(y)) => nics.push(NicDiff {
                nic: name.to_string(),
                status: ChangeKind::Added,
                changes: vec![Change {
                    category: Category::NicChange,
                    change: ChangeKind::Added,
                    item: "nic".into(),
                    key: name.to_string(),
                    before: None,
                    after: Some(serde_json::json!({"name": y.name, "ip_addresses": y.ip_addresses, "routes": y.routes.len(), "nsgs": y.nsgs.len()})),
                    fields: Vec::new(),
                }],
            }),
            (Some(x), Some(y)) => {
                let mut changes = Vec::new();
                if x.ip_addresses != y.ip_addresses {
                    changes.push(Change {
                        category: Category::NicChange,
                        change: ChangeKind::Changed,
                        item: "nic".into(),
                        key: name.to_string(),
                        before: Some(to_value(&x.ip_addresses)),
                        after: Some(to_value(&y.ip_addresses)),
                        fields: vec![FieldChange {
                            field: "ip_addresses".into(),
                            before: to_value(&x.ip_addresses),
                            after: to_value(&y.ip_addresses),
                        }],
                    });
                }
                diff_routes(&x.routes, &y.routes, &mut changes);
                diff_rules(x, y, &mut changes);
                if !changes.is_empty() {
                    nics.push(NicDiff {
                        nic: name.to_string(),
                        status: ChangeKind::Changed,
                        changes,
                    });
                }
            }
            (None, None) => {}
        }
    }
    let mut summary: BTreeMap<Category, usize> = [
        Category::BgpRouteChange,
        Category::UdrRouteChange,
        Category::SystemRouteChange,
        Category::SecurityRuleChange,
        Category::NicChange,
    ]
    .into_iter()
    .map(|c| (c, 0))
    .collect();
    for n in &nics {
        for c in &n.changes {
            *summary.entry(c.category).or_default() += 1;
        }
    }
    Diff {
        baseline: b,
        current: c,
        drift_detected: !nics.is_empty(),
        summary,
        nics,
    }
}
