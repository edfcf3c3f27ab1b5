//! Table tests of the route engine, written from Azure's documented route selection
//! ("Virtual network traffic routing": how Azure selects a route).
//!
//! Route spec: `PREFIX SOURCE STATE HOP [IP]`; routes are named r0, r1, … in order.
//! Expectation: `W rN LPM|SRC`, `NONE`, or `TIE rA,rB`, then optional `+BLACKHOLE`,
//! `+NVA`, `+INVALID_SHADOW`, `!UNEXPECTED`, `!SPECIAL`.

use effective_network_inspector::route::{AnomalyKind, RouteResult, RouteTable, SelectionReason};
use effective_network_inspector::state::RouteEntry;

fn entries(specs: &[&str]) -> Vec<RouteEntry> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p: Vec<&str> = s.split_whitespace().collect();
            RouteEntry {
                address_prefix: p[0].split(',').map(str::to_string).collect(),
                source: p[1].to_string(),
                state: p[2].to_string(),
                next_hop_type: p[3].to_string(),
                next_hop_ip_address: p.get(4).map(|x| vec![x.to_string()]).unwrap_or_default(),
                name: Some(format!("r{i}")),
                route_table: None,
                disable_bgp_route_propagation: None,
            }
        })
        .collect()
}

fn check(n: usize, routes: &[&str], dst: &str, expect: &str) {
    let table = RouteTable::new(&entries(routes)).unwrap();
    let v = table.explain(dst.parse().unwrap(), None);
    let toks: Vec<&str> = expect.split_whitespace().collect();
    let ctx = format!("case {n}: {routes:?} -> {dst}: {v:#?}");
    match toks[0] {
        "W" => {
            assert_eq!(v.result, RouteResult::Winner, "{ctx}");
            assert_eq!(
                v.winning_route.as_ref().unwrap().name.as_deref(),
                Some(toks[1]),
                "{ctx}"
            );
            let want = if toks[2] == "LPM" {
                SelectionReason::LpmOnly
            } else {
                SelectionReason::SourcePrecedence
            };
            assert_eq!(v.selection_reason, Some(want), "{ctx}");
        }
        "NONE" => {
            assert_eq!(v.result, RouteResult::NoRoute, "{ctx}");
            assert!(v.winning_route.is_none(), "{ctx}");
        }
        "TIE" => {
            assert_eq!(v.result, RouteResult::TiedBgp, "{ctx}");
            let names: Vec<String> = v
                .tied_routes
                .iter()
                .map(|r| r.name.clone().unwrap())
                .collect();
            assert_eq!(names.join(","), toks[1], "{ctx}");
        }
        other => panic!("bad expectation {other}"),
    }
    let kinds: Vec<AnomalyKind> = v.anomalies.iter().map(|a| a.kind).collect();
    for (tag, kind) in [
        ("+BLACKHOLE", AnomalyKind::Blackhole),
        ("+NVA", AnomalyKind::Nva),
        ("+INVALID_SHADOW", AnomalyKind::InvalidShadow),
    ] {
        assert_eq!(toks.contains(&tag), kinds.contains(&kind), "{tag} {ctx}");
    }
    assert_eq!(toks.contains(&"!UNEXPECTED"), v.tie_unexpected, "{ctx}");
    assert_eq!(
        toks.contains(&"!SPECIAL"),
        v.special_rule.is_some(),
        "{ctx}"
    );
    // The compiled lookup agrees with the verdict.
    let sel = table.select(dst.parse().unwrap());
    match v.result {
        RouteResult::NoRoute => assert_eq!(
            sel,
            effective_network_inspector::route::Selection::NoRoute,
            "{ctx}"
        ),
        RouteResult::Winner => assert!(
            matches!(
                sel,
                effective_network_inspector::route::Selection::Winner(_)
            ),
            "{ctx}"
        ),
        RouteResult::TiedBgp => assert!(
            matches!(sel, effective_network_inspector::route::Selection::Tied(_)),
            "{ctx}"
        ),
    }
}

const VNET: &str = "10.0.0.0/16 Default Active VnetLocal";
const INET: &str = "0.0.0.0/0 Default Active Internet";
const RFC10: &str = "10.0.0.0/8 Default Active None";

#[rustfmt::skip]
const CASES: &[(&[&str], &str, &str)] = &[
    // 1-10: the default system routes.
    (&[VNET, INET, RFC10], "10.0.1.4", "W r0 LPM"),
    (&[VNET, INET, RFC10], "8.8.8.8", "W r1 LPM"),
    (&[VNET, INET, RFC10], "10.1.0.1", "W r2 LPM +BLACKHOLE"),
    (&[VNET, INET, RFC10, "172.16.0.0/12 Default Active None"], "172.20.1.1", "W r3 LPM +BLACKHOLE"),
    (&[VNET, INET, "192.168.0.0/16 Default Active None"], "192.168.5.5", "W r2 LPM +BLACKHOLE"),
    (&[VNET, INET, "100.64.0.0/10 Default Active None"], "100.64.0.1", "W r2 LPM +BLACKHOLE"),
    (&[VNET], "8.8.8.8", "NONE"),
    (&[], "10.0.0.1", "NONE"),
    (&[VNET, INET], "10.0.255.255", "W r0 LPM"),
    (&[VNET, INET], "10.1.0.0", "W r1 LPM"),
    // 11-20: UDRs.
    (&[VNET, INET, "0.0.0.0/0 User Active VirtualAppliance 10.0.9.4"], "8.8.8.8", "W r2 SRC +NVA"),
    (&[VNET, "0.0.0.0/0 Default Invalid Internet", "0.0.0.0/0 User Active VirtualAppliance 10.0.9.4"], "1.1.1.1", "W r2 LPM +NVA"),
    (&[VNET, INET, "10.0.2.0/24 User Active VirtualAppliance 10.0.9.4"], "10.0.2.7", "W r2 LPM +NVA"),
    (&[VNET, INET, "10.0.2.0/24 User Active VirtualAppliance 10.0.9.4"], "10.0.3.7", "W r0 LPM"),
    (&[VNET, INET, "10.0.0.0/16 User Active VirtualAppliance 10.0.9.4"], "10.0.3.7", "W r2 SRC +NVA"),
    (&[VNET, INET, "10.0.2.5/32 User Active None"], "10.0.2.5", "W r2 LPM +BLACKHOLE"),
    (&[VNET, INET, "10.0.2.5/32 User Active None"], "10.0.2.6", "W r0 LPM"),
    (&[VNET, INET, "8.8.8.0/24 User Active Internet"], "8.8.8.8", "W r2 LPM"),
    (&[VNET, INET, "0.0.0.0/0 User Active None"], "9.9.9.9", "W r2 SRC +BLACKHOLE"),
    (&[VNET, INET, "20.0.0.0/8 User Active VirtualNetworkGateway"], "20.1.1.1", "W r2 LPM"),
    // 21-30: BGP.
    (&[VNET, INET, "192.168.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "192.168.1.1", "W r2 LPM"),
    (&[VNET, INET, "0.0.0.0/0 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "8.8.8.8", "W r2 SRC"),
    (&[VNET, "0.0.0.0/0 Default Invalid Internet", "0.0.0.0/0 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "8.8.8.8", "W r2 LPM"),
    (&[VNET, INET, "0.0.0.0/0 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "0.0.0.0/0 User Active VirtualAppliance 10.0.9.4"], "8.8.8.8", "W r3 SRC +NVA"),
    (&[VNET, INET, "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5"], "172.16.3.3", "TIE r2,r3"),
    (&[VNET, INET, "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5", "172.16.0.0/16 User Active VirtualAppliance 10.0.9.4"], "172.16.3.3", "W r4 SRC +NVA"),
    (&[VNET, INET, "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "172.16.0.0/16 VirtualNetworkGateway Invalid VirtualNetworkGateway 10.0.255.5"], "172.16.3.3", "W r2 LPM"),
    (&[VNET, INET, "172.16.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "172.16.1.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5"], "172.16.1.3", "W r3 LPM"),
    (&[VNET, INET, "172.16.1.0/24 User Active VirtualAppliance 10.0.9.4", "172.16.1.128/25 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5"], "172.16.1.200", "W r3 LPM"),
    (&[VNET, INET, "172.16.1.0/24 User Active VirtualAppliance 10.0.9.4", "172.16.1.128/25 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5"], "172.16.1.20", "W r2 LPM +NVA"),
    // 31-40: Azure's system-route exception (VNet, peering, service endpoints over BGP).
    (&[VNET, INET, "10.0.1.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.0.1.5", "W r0 SRC !SPECIAL"),
    (&[VNET, INET, "10.0.0.0/16 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.0.1.5", "W r0 SRC !SPECIAL"),
    (&[VNET, INET, "10.1.0.0/16 Default Active VNetPeering", "10.1.5.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.1.5.5", "W r2 SRC !SPECIAL"),
    (&[VNET, INET, "10.2.0.0/16 Default Active VNetGlobalPeering", "10.2.5.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.2.5.5", "W r2 SRC !SPECIAL"),
    (&[VNET, INET, "20.38.0.0/16 Default Active VirtualNetworkServiceEndpoint", "0.0.0.0/0 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "20.38.1.1", "W r2 LPM"),
    (&[VNET, INET, "20.38.0.0/16 Default Active VirtualNetworkServiceEndpoint", "20.38.1.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "20.38.1.1", "W r2 SRC !SPECIAL"),
    (&[VNET, INET, "10.1.0.0/16 Default Active VNetPeering", "10.1.5.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.1.6.5", "W r2 LPM"),
    (&[VNET, INET, "10.1.0.0/16 Default Active VNetPeering", "10.1.5.0/24 User Active VirtualAppliance 10.0.9.4"], "10.1.5.5", "W r3 LPM +NVA"),
    (&[VNET, INET, "10.0.1.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "10.0.1.0/24 User Active VirtualAppliance 10.0.9.4"], "10.0.1.5", "W r3 SRC +NVA"),
    (&[VNET, INET, "10.0.1.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "10.5.1.5", "W r1 LPM"),
    // 41-50: Invalid routes and INVALID_SHADOW.
    (&[VNET, INET, "10.0.2.0/24 User Invalid VirtualAppliance 10.0.9.4"], "10.0.2.5", "W r0 LPM +INVALID_SHADOW"),
    (&[VNET, INET, "10.0.2.0/24 User Invalid VirtualAppliance 10.0.9.4"], "10.0.3.5", "W r0 LPM"),
    (&["0.0.0.0/0 Default Invalid Internet"], "8.8.8.8", "NONE +INVALID_SHADOW"),
    (&[VNET, "0.0.0.0/0 Default Invalid Internet", "0.0.0.0/0 User Active VirtualAppliance 10.0.9.4"], "8.8.8.8", "W r2 LPM +NVA"),
    (&[VNET, INET, "10.0.0.0/16 Default Invalid VnetLocal", "10.0.0.0/16 User Active VirtualAppliance 10.0.9.4"], "10.0.0.9", "W r3 SRC +NVA"),
    (&[VNET, INET, "10.0.2.0/24 VirtualNetworkGateway Invalid VirtualNetworkGateway 10.0.255.4"], "10.0.2.5", "W r0 LPM"),
    (&[INET, "50.0.0.0/8 VirtualNetworkGateway Invalid VirtualNetworkGateway 10.0.255.4"], "50.1.1.1", "W r0 LPM +INVALID_SHADOW"),
    (&[INET, "50.0.0.0/8 User Invalid None"], "50.1.1.1", "W r0 LPM +INVALID_SHADOW"),
    (&[INET, "50.0.0.0/8 User Invalid None", "50.1.0.0/16 User Active Internet"], "50.1.1.1", "W r2 LPM"),
    (&[INET, "0.0.0.0/0 User Invalid None"], "50.1.1.1", "W r0 LPM +INVALID_SHADOW"),
    // 51-56: unexpected ties.
    (&[VNET, INET, "30.0.0.0/8 User Active VirtualAppliance 10.0.9.4", "30.0.0.0/8 User Active VirtualAppliance 10.0.9.5"], "30.1.1.1", "TIE r2,r3 !UNEXPECTED +NVA"),
    (&[VNET, "0.0.0.0/0 Default Active Internet", "0.0.0.0/0 Default Active None"], "8.8.8.8", "TIE r1,r2 !UNEXPECTED +BLACKHOLE"),
    (&[VNET, INET, "30.0.0.0/8 User Active VirtualAppliance 10.0.9.4", "30.0.0.0/8 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4"], "30.1.1.1", "W r2 SRC +NVA"),
    (&[VNET, INET, "30.0.0.0/8 Unknown Active Internet"], "30.1.1.1", "W r2 LPM"),
    (&[VNET, INET, "30.0.0.0/8 Unknown Active Internet", "30.0.0.0/8 Default Active None"], "30.1.1.1", "W r3 SRC +BLACKHOLE"),
    (&[VNET, INET, "30.0.0.0/8 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4", "30.0.0.0/8 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.5", "30.0.0.0/8 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.6"], "30.1.1.1", "TIE r2,r3,r4"),
    // 57-66: IPv6.
    (&["fd00:1::/48 Default Active VnetLocal", "::/0 Default Active Internet"], "fd00:1::5", "W r0 LPM"),
    (&["fd00:1::/48 Default Active VnetLocal", "::/0 Default Active Internet"], "2001:db8::1", "W r1 LPM"),
    (&["fd00:1::/48 Default Active VnetLocal"], "2001:db8::1", "NONE"),
    (&["fd00:1::/48 Default Active VnetLocal", "::/0 Default Active Internet", "::/0 User Active VirtualAppliance fd00:1::99"], "2001:db8::1", "W r2 SRC +NVA"),
    (&["fd00:1::/48 Default Active VnetLocal", "fd00:1:0:5::/64 User Active VirtualAppliance fd00:1::99"], "fd00:1:0:5::8", "W r1 LPM +NVA"),
    (&["fd00:1::/48 Default Active VnetLocal", "fd00:1:0:5::/64 VirtualNetworkGateway Active VirtualNetworkGateway fd00:1::1"], "fd00:1:0:5::8", "W r0 SRC !SPECIAL"),
    (&["::/0 Default Active Internet", "2001:db8::/32 VirtualNetworkGateway Active VirtualNetworkGateway fd00::1", "2001:db8::/32 VirtualNetworkGateway Active VirtualNetworkGateway fd00::2"], "2001:db8::7", "TIE r1,r2"),
    (&["::/0 Default Active Internet", "2001:db8::1/128 User Active None"], "2001:db8::1", "W r1 LPM +BLACKHOLE"),
    (&["::/0 Default Active Internet", "2001:db8::1/128 User Active None"], "2001:db8::2", "W r0 LPM"),
    (&[VNET, INET, "fd00:1::/48 Default Active VnetLocal"], "10.0.0.1", "W r0 LPM"),
    // 67-70: families never mix; host routes; multi-prefix entries.
    (&["fd00:1::/48 Default Active VnetLocal", "::/0 Default Active Internet"], "10.0.0.1", "NONE"),
    (&[INET], "::1", "NONE"),
    (&[VNET, INET, "10.0.3.4/32 User Active VirtualAppliance 10.0.9.4"], "10.0.3.4", "W r2 LPM +NVA"),
    (&[VNET, INET, "40.0.0.0/8,41.0.0.0/8 User Active None"], "41.2.2.2", "W r2 LPM +BLACKHOLE"),
];

#[test]
fn route_table_cases() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    for (i, (routes, dst, expect)) in CASES.iter().enumerate() {
        check(i + 1, routes, dst, expect);
    }
}

#[test]
fn shadowed_candidates_are_ordered_by_preference() {
    let t = RouteTable::new(&entries(&[
        INET,
        VNET,
        "10.0.2.0/24 User Active VirtualAppliance 10.0.9.4",
        "10.0.2.0/24 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4",
        RFC10,
    ]))
    .unwrap();
    let v = t.explain("10.0.2.9".parse().unwrap(), None);
    let names: Vec<String> = v
        .shadowed_candidates
        .iter()
        .map(|s| s.route.name.clone().unwrap())
        .collect();
    // r3 (BGP) is set aside by the VNet route; then /16, /8, /0.
    assert_eq!(v.winning_route.unwrap().name.as_deref(), Some("r2"));
    assert_eq!(names, vec!["r3", "r1", "r4", "r0"]);
}

#[test]
fn nva_liveness_is_reported() {
    let t = RouteTable::new(&entries(&[
        "0.0.0.0/0 User Active VirtualAppliance 198.18.0.9",
    ]))
    .unwrap();
    let mut live = std::collections::HashSet::new();
    let v = t.explain("8.8.8.8".parse().unwrap(), Some(&live));
    assert_eq!(v.anomalies[0].answers, Some(false));
    assert!(v.is_finding());
    live.insert("198.18.0.9".parse().unwrap());
    let v = t.explain("8.8.8.8".parse().unwrap(), Some(&live));
    assert_eq!(v.anomalies[0].answers, Some(true));
    assert!(!v.is_finding());
    let v = t.explain("8.8.8.8".parse().unwrap(), None);
    assert_eq!(v.anomalies[0].answers, None);
}

#[test]
fn bad_prefix_is_an_error_naming_the_route() {
    let e = RouteTable::new(&entries(&["10.0.0.0/40 User Active None"])).unwrap_err();
    assert!(e.to_string().contains("route #1"), "{e}");
}

#[test]
fn audit_lists_everything() {
    let t = RouteTable::new(&entries(&[
        VNET,
        "0.0.0.0/0 Default Invalid Internet",
        "0.0.0.0/0 VirtualNetworkGateway Active VirtualNetworkGateway 10.0.255.4",
        RFC10,
        "10.9.0.0/16 User Active None",
        "10.0.2.0/24 User Active VirtualAppliance 10.0.9.4",
    ]))
    .unwrap();
    let a = t.audit();
    assert_eq!(a.route_count, 6);
    assert_eq!(a.routes_by_prefix_length[0].prefix, "10.0.2.0/24");
    assert_eq!(a.invalid_routes.len(), 1);
    assert_eq!(a.blackholes.len(), 2);
    assert_eq!(a.nva_routes.len(), 1);
    assert_eq!(a.bgp_routes.len(), 1);
    assert_eq!(
        a.default_routes[0].source.as_deref(),
        Some("VirtualNetworkGateway")
    );
    assert!(a.is_finding(), "the UDR blackhole is a finding");
}

#[test]
fn huge_sparse_tables_fall_back_to_the_binary_walk() {
    // 6,000 random IPv6 host routes would need ~84,000 compiled nodes: over the bound.
    let mut x: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;
    let mut specs = Vec::new();
    for _ in 0..6000 {
        x = x
            .wrapping_mul(0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645)
            .wrapping_add(1);
        let a = std::net::Ipv6Addr::from(x);
        specs.push(format!("{a}/128 User Active None"));
    }
    let refs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let t = RouteTable::new(&entries(&refs)).unwrap();
    assert!(!t.is_compiled());
    let hit: std::net::Ipv6Addr = specs[17].split('/').next().unwrap().parse().unwrap();
    let v = t.explain(std::net::IpAddr::V6(hit).into_addr(), None);
    assert_eq!(v.result, RouteResult::Winner);
    assert_eq!(v.winning_route.unwrap().name.as_deref(), Some("r17"));
    assert_eq!(
        t.select(std::net::IpAddr::V6(hit).into_addr()),
        effective_network_inspector::route::Selection::Winner(17)
    );
}

trait IntoAddr {
    fn into_addr(self) -> effective_network_inspector::net::Addr;
}
impl IntoAddr for std::net::IpAddr {
    fn into_addr(self) -> effective_network_inspector::net::Addr {
        effective_network_inspector::net::Addr::from_ip(self)
    }
}
