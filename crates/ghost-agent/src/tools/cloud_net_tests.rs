//! Unit tests of the control-plane tools over Azure-shaped fixtures
//! (`tests/fixtures/cloud/`): effective NSGs and routes as `az network nic
//! list-effective-nsg` / `show-effective-route-table` print them.

use super::*;
use effective_network_inspector::state::{nsgs_from_json, routes_from_json};

fn fixture(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloud")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn vm(name: &str, ip: &str, nsg: &str, routes: &str) -> VmNet {
    VmNet {
        vm: name.to_string(),
        nic: NicState {
            name: format!("{name}-nic"),
            ip_addresses: vec![ip.to_string()],
            routes: routes_from_json(&fixture(routes)).unwrap(),
            nsgs: nsgs_from_json(&fixture(nsg)).unwrap(),
        },
    }
}

fn source() -> VmNet {
    vm(
        "source-vm",
        "198.18.1.4",
        "source-nsg.json",
        "source-routes.json",
    )
}

fn dest(nsg: &str) -> VmNet {
    vm("dest-vm", "198.18.1.5", nsg, "source-routes.json")
}

fn tables() -> Vec<AzRouteTable> {
    serde_json::from_str(&fixture("route-tables.json")).unwrap()
}

fn tcp(port: u16) -> FlowSpec {
    FlowSpec {
        port: Some(port),
        proto: Proto::Tcp,
    }
}

#[test]
fn deny_rule_on_dest_is_a_finding_with_rule_name_and_priority() {
    let r = nsg_verdicts(&source(), &dest("dest-nsg-l.json"), tcp(5001), "rg-ghost").unwrap();
    assert!(r.ok);
    assert_eq!(r.summary["forward"]["verdict"], "DENY");
    assert_eq!(r.summary["reverse"]["verdict"], "ALLOW");
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(f.kind, "nsg_deny");
    assert_eq!(f.layer, Layer::Nsg);
    assert_eq!(f.vm.as_deref(), Some("dest-vm"));
    assert_eq!(f.component, "dest-vm-nsg/deny-iperf");
    assert_eq!(f.attrs["nsg"], "dest-vm-nsg");
    assert_eq!(f.attrs["rule"], "deny-iperf");
    assert_eq!(f.attrs["priority"], 200);
    assert_eq!(f.attrs["port"], 5001);
    assert_eq!(f.attrs["protocol"], "tcp");
    assert_eq!(f.attrs["direction"], "Inbound");
    assert_eq!(f.attrs["gate"], "nic");
    let rem = f.remediation.as_ref().unwrap();
    assert_eq!(
        rem.command,
        "az network nsg rule delete -g rg-ghost --nsg-name dest-vm-nsg -n deny-iperf"
    );
    assert_eq!(rem.run_on, "az");
    assert!(rem.verify.contains("inspect_nsg"));
    // Both directions are covered.
    let aspects: Vec<Aspect> = r.coverage.iter().map(|c| c.aspect).collect();
    assert_eq!(aspects, vec![Aspect::NsgForward, Aspect::NsgReturn]);
    assert!(r
        .coverage
        .iter()
        .all(|c| matches!(c.state, CoverageState::Inspected { .. })));
}

#[test]
fn allowed_flow_has_no_finding_and_default_deny_is_named() {
    let r = nsg_verdicts(&source(), &dest("dest-nsg.json"), tcp(5001), "rg").unwrap();
    assert_eq!(r.summary["forward"]["verdict"], "ALLOW");
    assert!(r.findings.is_empty());
    // A port nothing allows from the VNet... the VNet default rule allows it: still ALLOW.
    let r = nsg_verdicts(&source(), &dest("dest-nsg.json"), tcp(8080), "rg").unwrap();
    assert_eq!(r.summary["forward"]["verdict"], "ALLOW");
    // ICMP verdicts carry no port.
    let icmp = FlowSpec {
        port: None,
        proto: Proto::Icmp,
    };
    let r = nsg_verdicts(&source(), &dest("dest-nsg-l.json"), icmp, "rg").unwrap();
    assert_eq!(r.summary["flow"]["protocol"], "icmp");
    assert!(r.findings.is_empty());
}

#[test]
fn deny_by_a_default_rule_proposes_an_allow_rule() {
    // From outside the VNet, 8080 falls through to DenyAllInBound.
    let mut outside = source();
    outside.nic.ip_addresses = vec!["198.19.0.10".into()];
    let r = nsg_verdicts(&outside, &dest("dest-nsg.json"), tcp(8080), "rg").unwrap();
    let f = r.findings.iter().find(|f| f.kind == "nsg_deny").unwrap();
    assert_eq!(f.attrs["rule"], "DenyAllInBound");
    let rem = f.remediation.as_ref().unwrap();
    assert!(
        rem.command.starts_with("az network nsg rule create"),
        "{}",
        rem.command
    );
    assert!(rem.command.contains("--destination-port-ranges 8080"));
}

#[test]
fn audit_reports_permissive_rules() {
    let d = dest("dest-nsg-v.json");
    let r = nsg_audit(&[&d], "rg-ghost").unwrap();
    let by_rule = |rule: &str| {
        r.findings
            .iter()
            .find(|f| f.attrs["rule"] == rule)
            .unwrap_or_else(|| panic!("no finding for {rule}: {:#?}", r.findings))
    };
    let rdp = by_rule("allow-rdp-any");
    assert_eq!(rdp.kind, "nsg_permissive");
    assert_eq!(rdp.attrs["priority"], 500);
    assert_eq!(rdp.attrs["port"], 3389);
    assert_eq!(rdp.severity, Severity::High);
    assert_eq!(
        rdp.remediation.as_ref().unwrap().command,
        "az network nsg rule delete -g rg-ghost --nsg-name dest-vm-nsg -n allow-rdp-any"
    );
    let ssh = by_rule("allow-ssh");
    assert_eq!(ssh.attrs["port"], 22);
    assert_eq!(ssh.attrs["priority"], 300);
    let dbg = by_rule("temp-debug-8000-9000");
    assert_eq!(dbg.attrs["ports"], "8000-9000");
    assert_eq!(dbg.severity, Severity::Medium);
    // Scoped rules are not permissive.
    assert!(r.findings.iter().all(|f| f.attrs["rule"] != "allow-iperf"));
    assert_eq!(r.findings.len(), 3);
    assert!(r.coverage.is_empty());
}

#[test]
fn dead_appliance_route_is_route_nva_with_table_and_inverse() {
    let s = vm(
        "source-vm",
        "198.18.1.4",
        "source-nsg.json",
        "source-routes-nva.json",
    );
    let known: HashSet<IpAddr> = ["198.18.1.4", "198.18.1.5"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let addr: Addr = "198.18.1.5".parse().unwrap();
    let r = route_verdict(&s, addr, Some(&known), &tables(), "rg-ghost").unwrap();
    assert_eq!(r.findings.len(), 1, "{:#?}", r.summary);
    let f = &r.findings[0];
    assert_eq!(f.kind, "route_nva");
    assert_eq!(f.layer, Layer::Route);
    assert_eq!(f.vm.as_deref(), Some("source-vm"));
    assert_eq!(f.component, "rt-default/to-dest-via-nva");
    assert_eq!(f.attrs["next_hop"], "198.18.1.100");
    assert_eq!(f.attrs["prefix"], "198.18.1.5/32");
    assert_eq!(f.attrs["route_table"], "rt-default");
    assert_eq!(f.attrs["address"], "198.18.1.5");
    assert_eq!(
        f.remediation.as_ref().unwrap().command,
        "az network route-table route delete -g rg-ghost --route-table-name rt-default -n to-dest-via-nva"
    );
    assert_eq!(r.coverage[0].aspect, Aspect::Routes);
    // An appliance that is a known NIC is not a finding.
    let mut alive = known.clone();
    alive.insert("198.18.1.100".parse().unwrap());
    let r = route_verdict(&s, addr, Some(&alive), &tables(), "rg").unwrap();
    assert!(r.findings.is_empty());
    // Not knowing the NICs is not a finding either; the summary says so.
    let r = route_verdict(&s, addr, None, &tables(), "rg").unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.summary["notes"].as_array().unwrap().len(), 1);
}

#[test]
fn none_route_is_route_blackhole() {
    let s = vm(
        "source-vm",
        "198.18.1.4",
        "source-nsg.json",
        "source-routes-blackhole.json",
    );
    let addr: Addr = "198.18.1.5".parse().unwrap();
    let r = route_verdict(&s, addr, None, &tables(), "rg-ghost").unwrap();
    let f = &r.findings[0];
    assert_eq!(f.kind, "route_blackhole");
    assert_eq!(f.component, "rt-default/blackhole-dest");
    assert_eq!(f.attrs["next_hop"], "None");
    assert!(f
        .remediation
        .as_ref()
        .unwrap()
        .command
        .ends_with("--route-table-name rt-default -n blackhole-dest"));
    // Clean routes: no finding.
    let r = route_verdict(&source(), addr, None, &tables(), "rg").unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.summary["result"], "WINNER");
}

#[test]
fn trace_names_the_blocking_nsg_rule_or_route() {
    let r = reachability(
        &source(),
        &dest("dest-nsg-l.json"),
        tcp(5001),
        None,
        &tables(),
        "rg",
    )
    .unwrap();
    assert_eq!(r.summary["result"], "BLOCKED");
    assert_eq!(r.summary["blocking"]["code"], "NSG_DENY_NIC_INBOUND");
    assert_eq!(r.findings[0].component, "dest-vm-nsg/deny-iperf");
    let aspects: Vec<Aspect> = r.coverage.iter().map(|c| c.aspect).collect();
    assert_eq!(aspects, vec![Aspect::NsgForward, Aspect::Routes]);

    let s = vm(
        "source-vm",
        "198.18.1.4",
        "source-nsg.json",
        "source-routes-blackhole.json",
    );
    let r = reachability(&s, &dest("dest-nsg.json"), tcp(5001), None, &tables(), "rg").unwrap();
    assert_eq!(r.summary["blocking"]["code"], "ROUTE_BLACKHOLE");
    assert_eq!(r.findings[0].kind, "route_blackhole");

    let r = reachability(
        &source(),
        &dest("dest-nsg.json"),
        tcp(5001),
        None,
        &tables(),
        "rg",
    )
    .unwrap();
    assert_eq!(r.summary["result"], "REACHABLE");
    assert!(r.findings.is_empty());
    assert_eq!(r.coverage.len(), 2);
}

#[test]
fn drift_finds_an_added_deny_rule_and_signs_off_when_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let before = dest("dest-nsg.json");
    let (id, art) = store_baseline(&store, "test", vec![before.nic.clone()]).unwrap();
    assert!(id.as_str().starts_with("eni_"));
    assert_eq!(art.sha256.len(), 64);

    // Nothing changed: drift_detected false.
    let r = drift_against(
        &store,
        "dest-vm",
        id.as_str(),
        vec![before.nic.clone()],
        "test",
        "rg",
    )
    .unwrap();
    assert_eq!(r.summary["drift_detected"], false);
    assert!(r.findings.is_empty());
    assert_eq!(r.artifacts.len(), 2);

    // Scenario P: a deny rule left behind.
    let after = dest("dest-nsg-l.json");
    let r = drift_against(
        &store,
        "dest-vm",
        id.as_str(),
        vec![after.nic.clone()],
        "test",
        "rg-ghost",
    )
    .unwrap();
    assert_eq!(r.summary["drift_detected"], true);
    let drift = r.findings.iter().find(|f| f.kind == "drift").unwrap();
    assert_eq!(drift.layer, Layer::Drift);
    assert_eq!(drift.component, "dest-vm-nsg/deny-iperf");
    assert_eq!(drift.attrs["change"], "added");
    assert_eq!(drift.attrs["priority"], 200);
    assert_eq!(drift.attrs["port"], 5001);
    let deny = r.findings.iter().find(|f| f.kind == "nsg_deny").unwrap();
    assert_eq!(deny.layer, Layer::Nsg);
    assert_eq!(deny.attrs["rule"], "deny-iperf");
    assert_eq!(deny.attrs["priority"], 200);
    assert_eq!(deny.attrs["nsg"], "dest-vm-nsg");
    assert_eq!(
        deny.remediation.as_ref().unwrap().command,
        "az network nsg rule delete -g rg-ghost --nsg-name dest-vm-nsg -n deny-iperf"
    );

    // A tampered baseline is refused (SHA-256 sidecar).
    let path = dir.path().join(format!("{id}_snapshot.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("allow-ssh", "allow-ssx")).unwrap();
    let e = drift_against(
        &store,
        "dest-vm",
        id.as_str(),
        vec![after.nic.clone()],
        "test",
        "rg",
    )
    .unwrap_err();
    assert!(e.contains("cannot be loaded"), "{e}");
    // Bad ids never reach a path.
    assert!(drift_against(&store, "dest-vm", "../x", vec![after.nic], "test", "rg").is_err());
}

#[test]
fn flow_arguments_are_validated() {
    let v = serde_json::json!({"port": 5001});
    let a = Args::new("inspect_nsg", &v, &["port", "protocol"]).unwrap();
    assert_eq!(parse_flow("inspect_nsg", &a).unwrap(), tcp(5001));
    let v = serde_json::json!({"protocol": "tcp"});
    let a = Args::new("inspect_nsg", &v, &["port", "protocol"]).unwrap();
    assert!(parse_flow("inspect_nsg", &a)
        .unwrap_err()
        .contains("port is required"));
    let v = serde_json::json!({});
    let a = Args::new("inspect_nsg", &v, &["port", "protocol"]).unwrap();
    assert_eq!(parse_flow("inspect_nsg", &a).unwrap().proto, Proto::Icmp);
    let v = serde_json::json!({"protocol": "gre"});
    let a = Args::new("inspect_nsg", &v, &["port", "protocol"]).unwrap();
    assert!(parse_flow("inspect_nsg", &a).is_err());
}

#[test]
fn route_audit_finds_a_default_route_to_a_dead_appliance() {
    // Scenario T, phase 1: 0.0.0.0/0 to 198.18.1.100, which is no NIC.
    let mut s = source();
    s.nic
        .routes
        .push(effective_network_inspector::state::RouteEntry {
            address_prefix: vec!["0.0.0.0/0".into()],
            source: "User".into(),
            state: "Active".into(),
            next_hop_type: "VirtualAppliance".into(),
            next_hop_ip_address: vec!["198.18.1.100".into()],
            name: Some("default-via-nva".into()),
            route_table: None,
            disable_bgp_route_propagation: None,
        });
    let mut t = tables();
    t[0].routes.push(cloud_provider::models::Route {
        name: "default-via-nva".into(),
        id: None,
        address_prefix: Some("0.0.0.0/0".into()),
        next_hop_type: "VirtualAppliance".into(),
        next_hop_ip_address: Some("198.18.1.100".into()),
        provisioning_state: None,
    });
    let known: HashSet<IpAddr> = ["198.18.1.4", "198.18.1.5"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    let r = route_audit(&s, Some(&known), &t, "rg-ghost").unwrap();
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "route_nva")
        .unwrap_or_else(|| panic!("{:#?}", r.summary));
    assert_eq!(f.component, "rt-default/default-via-nva");
    assert_eq!(f.attrs["prefix"], "0.0.0.0/0");
    assert!(!f.attrs.contains_key("address"));
    assert_eq!(
        f.remediation.as_ref().unwrap().command,
        "az network route-table route delete -g rg-ghost --route-table-name rt-default -n default-via-nva"
    );
    // The dest address is unaffected: its verdict stays clean.
    let v = route_verdict(&s, "198.18.1.5".parse().unwrap(), Some(&known), &t, "rg").unwrap();
    assert!(v.findings.is_empty());
    // A clean table audits clean.
    let r = route_audit(&source(), Some(&known), &t, "rg").unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.summary["routes"], 2);
}

#[test]
fn verdict_toward_an_internet_address_reads_the_source_outbound_gates_only() {
    let inet = "203.0.113.10";
    // Azure's AllowInternetOutBound lets HTTPS out: no finding, the forward gate covered.
    let r = nsg_address_verdict(&source(), inet, tcp(443), "rg").unwrap();
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.summary["forward"]["verdict"], "ALLOW");
    assert!(r.summary["forward"]["source_outbound"]["rule"]
        .as_str()
        .unwrap()
        .contains("AllowInternetOutBound"));
    assert_eq!(r.summary["flow"]["dest"], inet);
    let aspects: Vec<Aspect> = r.coverage.iter().map(|m| m.aspect).collect();
    assert_eq!(aspects, vec![Aspect::NsgForward]);
    // A deny of outbound Internet traffic above it (expanded as the fixture's default rule
    // is) is the finding, with its inverse.
    let mut nsg: serde_json::Value = serde_json::from_str(&fixture("source-nsg.json")).unwrap();
    let rules = nsg["networkSecurityGroups"][0]["effectiveSecurityRules"]
        .as_array_mut()
        .unwrap();
    rules.insert(
        0,
        json!({
            "name": "securityRules/deny-internet-out", "priority": 150,
            "direction": "Outbound", "access": "Deny", "protocol": "All",
            "sourceAddressPrefix": "0.0.0.0/0", "sourceAddressPrefixes": ["0.0.0.0/0"],
            "destinationAddressPrefix": "Internet", "destinationAddressPrefixes": ["Internet"],
            "expandedDestinationAddressPrefix": ["0.0.0.0/0"],
            "sourcePortRange": "0-65535", "sourcePortRanges": ["0-65535"],
            "destinationPortRange": "0-65535", "destinationPortRanges": ["0-65535"]
        }),
    );
    let mut src = source();
    src.nic.nsgs = nsgs_from_json(&nsg.to_string()).unwrap();
    let r = nsg_address_verdict(&src, inet, tcp(443), "rg").unwrap();
    assert_eq!(r.findings.len(), 1, "{:#?}", r.summary);
    let f = &r.findings[0];
    assert_eq!(f.kind, "nsg_deny");
    assert_eq!(f.vm.as_deref(), Some("source-vm"));
    assert_eq!(f.attrs["rule"], "deny-internet-out");
    assert_eq!(f.attrs["address"], inet);
    let rem = f.remediation.as_ref().unwrap();
    assert!(rem.command.contains("nsg rule delete"), "{rem:?}");
    assert!(rem.verify.contains(inet), "{rem:?}");
    // An address that is none is refused, not evaluated.
    assert!(nsg_address_verdict(&source(), "the-internet", tcp(443), "rg").is_err());
}
