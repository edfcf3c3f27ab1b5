//! Drift tests on the library: categories, same-prefix BGP paths, field-level changes.

use effective_network_inspector::snapshot::{diff, Category, ChangeKind, Snapshot, SnapshotRef};
use effective_network_inspector::state::{Gate, NicState, NsgEntry, RouteEntry, RuleEntry};

fn r(prefix: &str, source: &str, hop: &str, ip: &str) -> RouteEntry {
    RouteEntry {
        address_prefix: vec![prefix.into()],
        source: source.into(),
        state: "Active".into(),
        next_hop_type: hop.into(),
        next_hop_ip_address: if ip.is_empty() {
            vec![]
        } else {
            vec![ip.into()]
        },
        name: None,
        route_table: None,
        disable_bgp_route_propagation: None,
    }
}

fn rule(name: &str, prio: u32, ports: &[&str]) -> RuleEntry {
    RuleEntry {
        name: format!("securityRules/{name}"),
        priority: prio,
        direction: "Inbound".into(),
        access: "Deny".into(),
        protocol: "Tcp".into(),
        source_address_prefix: Some("*".into()),
        source_address_prefixes: vec![],
        expanded_source_address_prefix: None,
        destination_address_prefix: Some("*".into()),
        destination_address_prefixes: vec![],
        expanded_destination_address_prefix: None,
        source_port_range: Some("*".into()),
        source_port_ranges: vec![],
        destination_port_range: None,
        destination_port_ranges: ports.iter().map(|s| s.to_string()).collect(),
    }
}

fn nic(name: &str, routes: Vec<RouteEntry>, rules: Vec<RuleEntry>) -> NicState {
    NicState {
        name: name.into(),
        ip_addresses: vec!["10.0.1.4".into()],
        routes,
        nsgs: vec![NsgEntry {
            nsg: "n".into(),
            nsg_id: None,
            association: Gate::Nic,
            association_id: None,
            tag_map: Default::default(),
            rules,
        }],
    }
}

fn sref(id: &str) -> SnapshotRef {
    SnapshotRef {
        session_id: id.into(),
        artifact: format!("{id}_snapshot.json"),
        sha256: "0".repeat(64),
    }
}

fn run(a: Vec<NicState>, b: Vec<NicState>) -> effective_network_inspector::snapshot::Diff {
    diff(
        &Snapshot::new("t", true, a),
        &Snapshot::new("t", false, b),
        sref("eni_a"),
        sref("eni_b"),
    )
}

#[test]
fn identical_is_explicit_false() {
    let n = nic(
        "a",
        vec![r("10.0.0.0/16", "Default", "VnetLocal", "")],
        vec![rule("x", 100, &["22"])],
    );
    let d = run(vec![n.clone()], vec![n]);
    assert!(!d.drift_detected);
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["drift_detected"], false);
    assert_eq!(j["summary"]["bgp_route_change"], 0);
    assert_eq!(j["baseline"]["session_id"], "eni_a");
}

#[test]
fn withdrawn_bgp_path_among_two() {
    let p1 = r(
        "172.20.0.0/16",
        "VirtualNetworkGateway",
        "VirtualNetworkGateway",
        "10.0.255.4",
    );
    let p2 = r(
        "172.20.0.0/16",
        "VirtualNetworkGateway",
        "VirtualNetworkGateway",
        "10.0.255.5",
    );
    let d = run(
        vec![nic("a", vec![p1.clone(), p2.clone()], vec![])],
        vec![nic("a", vec![p1], vec![])],
    );
    assert!(d.drift_detected);
    let c = &d.nics[0].changes;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].category, Category::BgpRouteChange);
    assert_eq!(c[0].change, ChangeKind::Removed);
    assert!(c[0].key.contains("10.0.255.5"), "{}", c[0].key);
}

#[test]
fn changed_next_hop_is_one_change_with_fields() {
    let a = r("0.0.0.0/0", "User", "VirtualAppliance", "10.0.3.4");
    let b = r("0.0.0.0/0", "User", "VirtualAppliance", "10.0.3.5");
    let d = run(
        vec![nic("a", vec![a], vec![])],
        vec![nic("a", vec![b], vec![])],
    );
    let c = &d.nics[0].changes[0];
    assert_eq!(c.category, Category::UdrRouteChange);
    assert_eq!(c.change, ChangeKind::Changed);
    assert_eq!(c.fields.len(), 1);
    assert_eq!(c.fields[0].field, "next_hop_ip_address");
    let s = run(
        vec![nic(
            "a",
            vec![r("10.0.0.0/8", "Default", "None", "")],
            vec![],
        )],
        vec![nic(
            "a",
            vec![r("10.0.0.0/8", "Default", "VnetLocal", "")],
            vec![],
        )],
    );
    assert_eq!(s.nics[0].changes[0].category, Category::SystemRouteChange);
}

#[test]
fn rule_changes_any_field_and_list_fields() {
    let d = run(
        vec![nic(
            "a",
            vec![],
            vec![rule("x", 100, &["22"]), rule("gone", 200, &["80"])],
        )],
        vec![nic(
            "a",
            vec![],
            vec![rule("x", 100, &["22", "2222"]), rule("new", 300, &["81"])],
        )],
    );
    let c = &d.nics[0].changes;
    assert!(c.iter().all(|c| c.category == Category::SecurityRuleChange));
    let changed = c.iter().find(|c| c.change == ChangeKind::Changed).unwrap();
    assert_eq!(changed.fields[0].field, "destination_port_ranges");
    assert!(c
        .iter()
        .any(|c| c.change == ChangeKind::Removed && c.key.ends_with("securityRules/gone")));
    assert!(c
        .iter()
        .any(|c| c.change == ChangeKind::Added && c.key.ends_with("securityRules/new")));
    let mut p = rule("x", 100, &["22"]);
    p.priority = 101;
    let d = run(
        vec![nic("a", vec![], vec![rule("x", 100, &["22"])])],
        vec![nic("a", vec![], vec![p])],
    );
    assert_eq!(d.nics[0].changes[0].fields[0].field, "priority");
}

#[test]
fn nics_added_and_removed() {
    let d = run(
        vec![nic("a", vec![], vec![])],
        vec![nic("b", vec![], vec![])],
    );
    assert_eq!(d.summary[&Category::NicChange], 2);
    assert_eq!(d.nics.len(), 2);
    let mut moved = nic("a", vec![], vec![]);
    moved.ip_addresses = vec!["10.0.1.9".into()];
    let d = run(vec![nic("a", vec![], vec![])], vec![moved]);
    assert_eq!(d.nics[0].changes[0].category, Category::NicChange);
}

#[test]
fn nsg_association_change() {
    let a = nic("a", vec![], vec![]);
    let mut b = a.clone();
    b.nsgs[0].nsg = "other".into();
    let d = run(vec![a.clone()], vec![b]);
    assert!(d.nics[0]
        .changes
        .iter()
        .any(|c| c.item == "nsg" && c.change == ChangeKind::Changed));
    let mut c = a.clone();
    c.nsgs.clear();
    let d = run(vec![a], vec![c]);
    assert!(d.nics[0]
        .changes
        .iter()
        .any(|c| c.item == "nsg" && c.change == ChangeKind::Removed));
}
