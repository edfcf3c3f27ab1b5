//! Property tests: the compiled route engine equals the brute-force reference on random
//! tables (IPv4 and IPv6); the NSG fast path equals the naive scan; parsers and engines
//! never panic on arbitrary input.

use effective_network_inspector::net::{Addr, Family, Prefix};
use effective_network_inspector::nsg::{reference_decide, Direction, Flow, NicNsgs, Proto};
use effective_network_inspector::route::{reference_select, RouteResult, RouteTable, Selection};
use effective_network_inspector::state::{
    nsgs_from_json, routes_from_json, Gate, NsgEntry, RouteEntry, RuleEntry,
};
use proptest::prelude::*;

const SOURCES: &[&str] = &["User", "VirtualNetworkGateway", "Default", "Unknown"];
const HOPS: &[&str] = &[
    "VnetLocal",
    "VirtualAppliance",
    "None",
    "Internet",
    "VirtualNetworkGateway",
    "VNetPeering",
    "VirtualNetworkServiceEndpoint",
];

fn family_bits(f: Family) -> u8 {
    f.width()
}

/// Routes clustered under a few bases so that they overlap.
fn routes_strategy(f: Family) -> impl Strategy<Value = Vec<RouteEntry>> {
    let w = family_bits(f);
    prop::collection::vec(
        (
            0usize..3,
            any::<u128>(),
            0..=w,
            0usize..4,
            0u8..10,
            0usize..HOPS.len(),
        ),
        0..40,
    )
    .prop_map(move |v| {
        let bases: [u128; 3] = [0x0a00_0000u128 << (w - 32), 0xc0a8_0000u128 << (w - 32), 0];
        v.into_iter()
            .map(|(b, noise, len, s, st, h)| {
                // Keep the top 8 bits from a base so prefixes share structure.
                let top = bases[b] & (0xffu128 << (w - 8));
                let low = if w == 128 {
                    noise >> 8
                } else {
                    (noise as u32 >> 8) as u128
                };
                let bits = top | low;
                let p = Prefix::new(Addr { family: f, bits }, len).unwrap();
                RouteEntry {
                    address_prefix: vec![p.to_string()],
                    source: SOURCES[s].to_string(),
                    state: if st == 0 {
                        "Invalid".into()
                    } else {
                        "Active".into()
                    },
                    next_hop_type: HOPS[h].to_string(),
                    next_hop_ip_address: vec![],
                    name: None,
                    route_table: None,
                    disable_bgp_route_propagation: None,
                }
            })
            .collect()
    })
}

fn probe(f: Family, routes: &[RouteEntry], pick: usize, noise: u128, flip: u8) -> Addr {
    let w = f.width();
    if routes.is_empty() {
        let bits = if w == 128 { noise } else { noise & 0xffff_ffff };
        return Addr { family: f, bits };
    }
    let p: Prefix = routes[pick % routes.len()].address_prefix[0]
        .parse()
        .unwrap();
    let host = match w - p.len {
        0 => 0,
        128 => noise,
        k => noise & ((1u128 << k) - 1),
    };
    let mut bits = p.bits | host;
    if flip > 0 && flip <= w {
        bits ^= 1u128 << (w - flip);
    }
    Addr { family: f, bits }
}

fn check_family(
    f: Family,
    routes: Vec<RouteEntry>,
    probes: Vec<(usize, u128, u8)>,
) -> Result<(), TestCaseError> {
    let table = RouteTable::new(&routes).unwrap();
    prop_assert!(table.is_compiled());
    let walk = RouteTable::from_routes_uncompiled(table.routes().to_vec());
    prop_assert!(!walk.is_compiled());
    for (pick, noise, flip) in probes {
        let a = probe(f, &routes, pick, noise, flip);
        let fast = table.select(a);
        let reference = reference_select(table.routes(), a);
        prop_assert_eq!(&fast, &reference, "addr {}", a);
        prop_assert_eq!(&walk.select(a), &reference, "binary walk, addr {}", a);
        let v = table.explain(a, None);
        let want = match reference {
            Selection::NoRoute => RouteResult::NoRoute,
            Selection::Winner(_) => RouteResult::Winner,
            Selection::Tied(_) => RouteResult::TiedBgp,
        };
        prop_assert_eq!(v.result, want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn route_engine_matches_reference_v4(
        routes in routes_strategy(Family::V4),
        probes in prop::collection::vec((any::<usize>(), any::<u128>(), 0u8..40), 1..30),
    ) {
        check_family(Family::V4, routes, probes)?;
    }

    #[test]
    fn route_engine_matches_reference_v6(
        routes in routes_strategy(Family::V6),
        probes in prop::collection::vec((any::<usize>(), any::<u128>(), 0u8..140), 1..30),
    ) {
        check_family(Family::V6, routes, probes)?;
    }
}

fn rule_strategy() -> impl Strategy<Value = RuleEntry> {
    let prefix = prop_oneof![
        Just("*".to_string()),
        Just("0.0.0.0/0".to_string()),
        Just("Storage".to_string()),
        (0u8..4, 8u8..=32).prop_map(|(b, l)| format!("198.18.{b}.0/{}", l.max(22))),
    ];
    let ports = prop_oneof![
        Just("*".to_string()),
        (0u16..100).prop_map(|p| p.to_string()),
        (0u16..100, 0u16..50).prop_map(|(a, d)| format!("{a}-{}", a + d)),
    ];
    (
        100u32..200,
        any::<bool>(),
        any::<bool>(),
        0usize..6,
        prefix.clone(),
        prefix,
        ports.clone(),
        prop_oneof![4 => Just("*".to_string()), 1 => ports],
    )
        .prop_map(
            |(prio, inbound, allow, proto, src, dst, dport, sport)| RuleEntry {
                name: format!("securityRules/r{prio}"),
                priority: prio,
                direction: if inbound { "Inbound" } else { "Outbound" }.into(),
                access: if allow { "Allow" } else { "Deny" }.into(),
                protocol: ["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"][proto].into(),
                source_address_prefix: Some(src),
                source_address_prefixes: vec![],
                expanded_source_address_prefix: None,
                destination_address_prefix: Some(dst),
                destination_address_prefixes: vec![],
                expanded_destination_address_prefix: None,
                source_port_range: Some(sport),
                source_port_ranges: vec![],
                destination_port_range: Some(dport),
                destination_port_ranges: vec![],
            },
        )
}

fn entry(gate: Gate, rules: Vec<RuleEntry>) -> NsgEntry {
    NsgEntry {
        nsg: format!("{}-nsg", gate.as_str()),
        nsg_id: None,
        association: gate,
        association_id: None,
        tag_map: Default::default(),
        rules,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn nsg_fast_path_matches_reference(
        subnet in prop::option::of(prop::collection::vec(rule_strategy(), 0..12)),
        nic in prop::option::of(prop::collection::vec(rule_strategy(), 0..12)),
        flows in prop::collection::vec((any::<bool>(), 0usize..5, 0u8..4, 0u8..4, 0u8..255, prop::option::of(0u16..120), prop::option::of(0u16..120)), 1..20),
    ) {
        let mut e = Vec::new();
        if let Some(r) = subnet { e.push(entry(Gate::Subnet, r)); }
        if let Some(r) = nic { e.push(entry(Gate::Nic, r)); }
        let n = NicNsgs::new(&e).unwrap();
        for (inbound, p, s, d, h, dport, sport) in flows {
            let proto = [Proto::Tcp, Proto::Udp, Proto::Icmp, Proto::Esp, Proto::Ah][p];
            let f = Flow {
                direction: if inbound { Direction::Inbound } else { Direction::Outbound },
                src: format!("198.18.{s}.{h}").parse().unwrap(),
                dst: format!("198.18.{d}.{}", 255 - h).parse().unwrap(),
                src_port: sport,
                dst_port: dport,
                proto,
            };
            let r = reference_decide(&n, &f);
            prop_assert_eq!(n.decide(&f), r);
            prop_assert_eq!(n.evaluate(&f).final_verdict, r);
        }
    }

    #[test]
    fn parsers_and_engines_never_panic_on_text(text in "\\PC{0,300}") {
        if let Ok(r) = routes_from_json(&text) {
            if let Ok(t) = RouteTable::new(&r) {
                let _ = t.explain("10.0.0.1".parse().unwrap(), None);
                let _ = t.audit();
            }
        }
        if let Ok(n) = nsgs_from_json(&text) {
            if let Ok(n) = NicNsgs::new(&n) {
                let _ = n.audit();
            }
        }
    }

    #[test]
    fn parsers_and_engines_never_panic_on_azure_shaped_json(
        prefixes in prop::collection::vec("[0-9a-f:./*]{0,20}|10\\.[0-9]{1,3}\\.0\\.0/[0-9]{1,3}", 0..4),
        ports in "[0-9*,-]{0,12}",
        proto in "Tcp|Udp|All|\\*|[A-Za-z]{0,4}",
        state in "Active|Invalid|[a-z]{0,3}",
        prio in any::<i64>(),
    ) {
        let routes = serde_json::json!({"value": [{
            "addressPrefix": prefixes, "nextHopType": "VirtualAppliance", "nextHopIpAddress": ["x"],
            "source": "User", "state": state
        }]}).to_string();
        if let Ok(r) = routes_from_json(&routes) {
            if let Ok(t) = RouteTable::new(&r) {
                let _ = t.explain("10.0.0.1".parse().unwrap(), None);
                let _ = t.explain("::1".parse().unwrap(), None);
                let _ = t.audit();
            }
        }
        let nsg = serde_json::json!({"networkSecurityGroups": [{
            "association": {"networkInterface": {"id": "/x/nic"}},
            "networkSecurityGroup": {"id": "/x/nsg"},
            "tagMap": {"Tag": prefixes.clone()},
            "effectiveSecurityRules": [{
                "name": "securityRules/r", "priority": prio, "direction": "Inbound", "access": "Allow",
                "protocol": proto, "sourceAddressPrefixes": prefixes, "destinationAddressPrefix": "Tag",
                "destinationPortRange": ports, "sourcePortRange": "*"
            }]
        }]}).to_string();
        if let Ok(n) = nsgs_from_json(&nsg) {
            if let Ok(n) = NicNsgs::new(&n) {
                let _ = n.audit();
                let f = Flow { direction: Direction::Inbound, src: "10.0.0.1".parse().unwrap(), dst: "10.0.0.2".parse().unwrap(), src_port: None, dst_port: Some(80), proto: Proto::Tcp };
                let _ = n.evaluate(&f);
            }
        }
    }
}
