//! Table tests of the NSG engine, written from Azure's documented NSG behaviour
//! ("How network security groups filter network traffic": subnet NSG then NIC NSG inbound,
//! NIC then subnet outbound; priority order; default rules 65000/65001/65500).
//!
//! Rule spec: `NAME PRIO DIR ACCESS PROTO SRC DST DPORTS [SPORTS]`; SRC/DST are comma
//! lists; `Tag=p1;p2` is a tag with Azure's expansion; a bare name is a tag resolved from
//! the tag map (`VirtualNetwork`, `AzureLoadBalancer`, `Internet`) or left unresolved.
//! Gates: `None` means no NSG there; `Some(rules)` gets Azure's default rules appended
//! unless the first rule is `NODEFAULTS`.
//! Expectation: `ALLOW gate:rule`, `ALLOW -` (no NSG), `DENY gate:rule`, `INDET rule,…`.

use std::collections::BTreeMap;

use effective_network_inspector::net::Addr;
use effective_network_inspector::nsg::{
    reference_decide, Direction, FinalVerdict, Flow, GateVerdict, NicNsgs, Proto,
};
use effective_network_inspector::state::{Gate, NsgEntry, RuleEntry};

fn rule(spec: &str) -> RuleEntry {
    let p: Vec<&str> = spec.split_whitespace().collect();
    let side = |s: &str| -> (Vec<String>, Option<Vec<String>>) {
        let mut written = Vec::new();
        let mut expanded: Option<Vec<String>> = None;
        for tok in s.split(',') {
            if let Some((tag, list)) = tok.split_once('=') {
                written.push(tag.to_string());
                expanded
                    .get_or_insert_with(Vec::new)
                    .extend(list.split(';').map(str::to_string));
            } else {
                written.push(tok.to_string());
            }
        }
        (written, expanded)
    };
    let (src, src_exp) = side(p[5]);
    let (dst, dst_exp) = side(p[6]);
    let ports = |s: &str| -> Vec<String> { s.split(',').map(str::to_string).collect() };
    RuleEntry {
        name: if p[0].starts_with("Default") {
            format!("defaultSecurityRules/{}", &p[0][7..])
        } else {
            format!("securityRules/{}", p[0])
        },
        priority: p[1].parse().unwrap(),
        direction: p[2].to_string(),
        access: p[3].to_string(),
        protocol: p[4].to_string(),
        source_address_prefix: (src.len() == 1).then(|| src[0].clone()),
        source_address_prefixes: if src.len() > 1 { src } else { Vec::new() },
        expanded_source_address_prefix: src_exp,
        destination_address_prefix: (dst.len() == 1).then(|| dst[0].clone()),
        destination_address_prefixes: if dst.len() > 1 { dst } else { Vec::new() },
        expanded_destination_address_prefix: dst_exp,
        source_port_range: None,
        source_port_ranges: ports(p.get(8).copied().unwrap_or("*")),
        destination_port_range: None,
        destination_port_ranges: ports(p[7]),
    }
}

const DEFAULTS: &[&str] = &[
    "DefaultAllowVnetInBound 65000 Inbound Allow * VirtualNetwork VirtualNetwork *",
    "DefaultAllowAzureLoadBalancerInBound 65001 Inbound Allow * AzureLoadBalancer * *",
    "DefaultDenyAllInBound 65500 Inbound Deny * * * *",
    "DefaultAllowVnetOutBound 65000 Outbound Allow * VirtualNetwork VirtualNetwork *",
    "DefaultAllowInternetOutBound 65001 Outbound Allow * * Internet *",
    "DefaultDenyAllOutBound 65500 Outbound Deny * * * *",
];

fn nsg(name: &str, gate: Gate, rules: &[&str]) -> NsgEntry {
    let mut list: Vec<RuleEntry> = Vec::new();
    let mut defaults = true;
    for r in rules {
        if *r == "NODEFAULTS" {
            defaults = false;
            continue;
        }
        list.push(rule(r));
    }
    if defaults {
        list.extend(DEFAULTS.iter().map(|r| rule(r)));
    }
    let mut tag_map = BTreeMap::new();
    tag_map.insert(
        "VirtualNetwork".to_string(),
        vec!["10.0.0.0/16".to_string(), "168.63.129.16/32".to_string()],
    );
    tag_map.insert(
        "AzureLoadBalancer".to_string(),
        vec!["168.63.129.16/32".to_string()],
    );
    tag_map.insert("Internet".to_string(), vec!["0.0.0.0/0".to_string()]);
    NsgEntry {
        nsg: name.to_string(),
        nsg_id: None,
        association: gate,
        association_id: None,
        tag_map,
        rules: list,
    }
}

fn flow(spec: &str) -> Flow {
    let p: Vec<&str> = spec.split_whitespace().collect();
    let proto = match p[1] {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "icmp" => Proto::Icmp,
        "esp" => Proto::Esp,
        _ => Proto::Ah,
    };
    Flow {
        direction: if p[0] == "in" {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        src: p[2].parse::<Addr>().unwrap(),
        dst: p[3].parse::<Addr>().unwrap(),
        dst_port: p.get(4).filter(|x| **x != "-").map(|x| x.parse().unwrap()),
        src_port: p.get(5).map(|x| x.parse().unwrap()),
        proto,
    }
}

type Case = (
    Option<&'static [&'static str]>,
    Option<&'static [&'static str]>,
    &'static str,
    &'static str,
);

fn check(n: usize, case: &Case) {
    let (subnet, nic, f, expect) = case;
    let mut entries = Vec::new();
    if let Some(r) = subnet {
        entries.push(nsg("subnet-nsg", Gate::Subnet, r));
    }
    if let Some(r) = nic {
        entries.push(nsg("nic-nsg", Gate::Nic, r));
    }
    let nsgs = NicNsgs::new(&entries).unwrap();
    let fl = flow(f);
    let v = nsgs.evaluate(&fl);
    let ctx = format!("case {n}: {f}: {v:#?}");
    assert_eq!(nsgs.decide(&fl), v.final_verdict, "fast path: {ctx}");
    assert_eq!(
        reference_decide(&nsgs, &fl),
        v.final_verdict,
        "reference: {ctx}"
    );
    let (kind, what) = expect.split_once(' ').unwrap();
    match kind {
        "ALLOW" | "DENY" => {
            let want = if kind == "ALLOW" {
                FinalVerdict::Allow
            } else {
                FinalVerdict::Deny
            };
            assert_eq!(v.final_verdict, want, "{ctx}");
            if what == "-" {
                assert!(v.decisive_rule.is_none(), "{ctx}");
            } else {
                let (g, r) = what.split_once(':').unwrap();
                let d = v.decisive_rule.as_ref().expect("decisive rule");
                assert_eq!(v.decisive_gate.unwrap().as_str(), g, "{ctx}");
                assert!(d.name.ends_with(&format!("/{r}")), "{ctx}");
            }
        }
        "INDET" => {
            assert_eq!(v.final_verdict, FinalVerdict::Indeterminate, "{ctx}");
            let names: Vec<&str> = v
                .unresolvable_rules
                .iter()
                .map(|u| u.rule.name.rsplit('/').next().unwrap())
                .collect();
            assert_eq!(names.join(","), what, "{ctx}");
        }
        _ => panic!("bad expectation"),
    }
    if v.gate1.verdict == GateVerdict::Deny {
        assert_eq!(v.gate2.verdict, GateVerdict::NotEvaluated, "{ctx}");
        assert!(!v.gate2.evaluated && v.gate2.skip_reason.is_some(), "{ctx}");
    }
    for g in [&v.gate1, &v.gate2] {
        if g.nsg.is_none() && g.verdict != GateVerdict::NotEvaluated {
            assert_eq!(g.verdict, GateVerdict::NoNsg, "{ctx}");
            assert!(
                g.skip_reason.as_deref().unwrap().contains("no NSG"),
                "{ctx}"
            );
        }
    }
}

const WEB: &[&str] = &[
    "allow-https 100 Inbound Allow Tcp * * 443",
    "allow-ssh-admin 110 Inbound Allow Tcp 198.18.5.0/24 * 22",
    "deny-8080 150 Inbound Deny Tcp * * 8080",
];
const SUB: &[&str] = &[
    "deny-telnet 100 Inbound Deny Tcp * * 23",
    "allow-web 200 Inbound Allow Tcp * 10.0.1.0/24 80,443,8000-8999",
    "deny-out-smtp 100 Outbound Deny Tcp * * 25",
];
const EMPTY: &[&str] = &[];

#[rustfmt::skip]
const CASES: &[Case] = &[
    // 1-10: inbound, both gates.
    (Some(SUB), Some(WEB), "in tcp 203.0.113.5 10.0.1.4 443", "ALLOW nic:allow-https"),
    (Some(SUB), Some(WEB), "in tcp 203.0.113.5 10.0.1.4 23", "DENY subnet:deny-telnet"),
    (Some(SUB), Some(WEB), "in tcp 203.0.113.5 10.0.1.4 8080", "DENY nic:deny-8080"),
    (Some(SUB), Some(WEB), "in tcp 203.0.113.5 10.0.1.4 80", "DENY nic:DenyAllInBound"),
    (Some(SUB), Some(WEB), "in tcp 203.0.113.5 10.0.2.4 443", "DENY subnet:DenyAllInBound"),
    (Some(SUB), Some(WEB), "in tcp 198.18.5.7 10.0.1.4 22", "DENY subnet:DenyAllInBound"),
    (Some(EMPTY), Some(WEB), "in tcp 198.18.5.7 10.0.1.4 22", "DENY subnet:DenyAllInBound"),
    (None, Some(WEB), "in tcp 198.18.5.7 10.0.1.4 22", "ALLOW nic:allow-ssh-admin"),
    (None, Some(WEB), "in tcp 198.18.6.7 10.0.1.4 22", "DENY nic:DenyAllInBound"),
    (Some(SUB), None, "in tcp 203.0.113.5 10.0.1.4 8500", "ALLOW subnet:allow-web"),
    // 11-20: default rules.
    (Some(EMPTY), Some(EMPTY), "in tcp 10.0.2.4 10.0.1.4 5432", "ALLOW nic:AllowVnetInBound"),
    (Some(EMPTY), Some(EMPTY), "in tcp 168.63.129.16 10.0.1.4 80", "ALLOW nic:AllowVnetInBound"),
    (Some(EMPTY), Some(EMPTY), "in tcp 203.0.113.9 10.0.1.4 80", "DENY subnet:DenyAllInBound"),
    (Some(EMPTY), Some(EMPTY), "out tcp 10.0.1.4 10.0.2.4 5432", "ALLOW subnet:AllowVnetOutBound"),
    (Some(EMPTY), Some(EMPTY), "out tcp 10.0.1.4 93.184.216.34 443", "ALLOW subnet:AllowInternetOutBound"),
    (Some(EMPTY), None, "out udp 10.0.1.4 9.9.9.9 53", "ALLOW subnet:AllowInternetOutBound"),
    (None, None, "in tcp 203.0.113.9 10.0.1.4 80", "ALLOW -"),
    (None, None, "out udp 10.0.1.4 9.9.9.9 53", "ALLOW -"),
    (Some(EMPTY), Some(EMPTY), "in icmp 10.0.2.4 10.0.1.4", "ALLOW nic:AllowVnetInBound"),
    (Some(EMPTY), Some(EMPTY), "in icmp 203.0.113.9 10.0.1.4", "DENY subnet:DenyAllInBound"),
    // 21-30: outbound order (NIC first, then subnet).
    (Some(SUB), Some(EMPTY), "out tcp 10.0.1.4 93.184.216.34 25", "DENY subnet:deny-out-smtp"),
    (Some(EMPTY), Some(&["deny-out-all 100 Outbound Deny * * * *"]), "out tcp 10.0.1.4 10.0.2.4 22", "DENY nic:deny-out-all"),
    (Some(&["deny-out-all 100 Outbound Deny * * * *"]), Some(&["allow-out 100 Outbound Allow * * * *"]), "out tcp 10.0.1.4 10.0.2.4 22", "DENY subnet:deny-out-all"),
    (Some(&["allow-out 100 Outbound Allow * * * *"]), Some(&["deny-out 100 Outbound Deny * * * *"]), "out tcp 10.0.1.4 10.0.2.4 22", "DENY nic:deny-out"),
    (Some(&["allow-in 100 Inbound Allow * * * *"]), Some(&["deny-in 100 Inbound Deny * * * *"]), "in tcp 10.0.2.4 10.0.1.4 22", "DENY nic:deny-in"),
    (Some(&["deny-in 100 Inbound Deny * * * *"]), Some(&["allow-in 100 Inbound Allow * * * *"]), "in tcp 10.0.2.4 10.0.1.4 22", "DENY subnet:deny-in"),
    (Some(&["allow-in 100 Inbound Allow * * * *"]), Some(&["allow-in2 100 Inbound Allow * * * *"]), "in tcp 203.0.113.1 10.0.1.4 22", "ALLOW nic:allow-in2"),
    (Some(&["allow-out 100 Outbound Allow * * * *"]), Some(&["allow-out2 100 Outbound Allow * * * *"]), "out tcp 10.0.1.4 203.0.113.1 22", "ALLOW subnet:allow-out"),
    (None, Some(&["deny-out 100 Outbound Deny Udp * * 53"]), "out udp 10.0.1.4 9.9.9.9 53", "DENY nic:deny-out"),
    (None, Some(&["deny-out 100 Outbound Deny Udp * * 53"]), "out tcp 10.0.1.4 9.9.9.9 53", "ALLOW nic:AllowInternetOutBound"),
    // 31-40: priorities and ports.
    (None, Some(&["deny 200 Inbound Deny Tcp * * 443", "allow 100 Inbound Allow Tcp * * 443"]), "in tcp 203.0.113.1 10.0.1.4 443", "ALLOW nic:allow"),
    (None, Some(&["deny 100 Inbound Deny Tcp * * 443", "allow 200 Inbound Allow Tcp * * 443"]), "in tcp 203.0.113.1 10.0.1.4 443", "DENY nic:deny"),
    (None, Some(&["range 100 Inbound Allow Tcp * * 1000-2000"]), "in tcp 203.0.113.1 10.0.1.4 1000", "ALLOW nic:range"),
    (None, Some(&["range 100 Inbound Allow Tcp * * 1000-2000"]), "in tcp 203.0.113.1 10.0.1.4 2000", "ALLOW nic:range"),
    (None, Some(&["range 100 Inbound Allow Tcp * * 1000-2000"]), "in tcp 203.0.113.1 10.0.1.4 2001", "DENY nic:DenyAllInBound"),
    (None, Some(&["range 100 Inbound Allow Tcp * * 1000-2000"]), "in tcp 203.0.113.1 10.0.1.4 999", "DENY nic:DenyAllInBound"),
    (None, Some(&["list 100 Inbound Allow Tcp * * 80,443,8443"]), "in tcp 203.0.113.1 10.0.1.4 8443", "ALLOW nic:list"),
    (None, Some(&["list 100 Inbound Allow Tcp * * 80,443,8443"]), "in tcp 203.0.113.1 10.0.1.4 8080", "DENY nic:DenyAllInBound"),
    (None, Some(&["all 100 Inbound Allow Tcp * * 0-65535"]), "in tcp 203.0.113.1 10.0.1.4 65535", "ALLOW nic:all"),
    (None, Some(&["all 100 Inbound Allow Tcp * * 0-65535"]), "in tcp 203.0.113.1 10.0.1.4 0", "ALLOW nic:all"),
    // 41-50: protocols.
    (None, Some(&["udp 100 Inbound Allow Udp * * 53"]), "in udp 203.0.113.1 10.0.1.4 53", "ALLOW nic:udp"),
    (None, Some(&["udp 100 Inbound Allow Udp * * 53"]), "in tcp 203.0.113.1 10.0.1.4 53", "DENY nic:DenyAllInBound"),
    (None, Some(&["icmp 100 Inbound Allow Icmp * * *"]), "in icmp 203.0.113.1 10.0.1.4", "ALLOW nic:icmp"),
    (None, Some(&["icmp 100 Inbound Allow Icmp * * *"]), "in tcp 203.0.113.1 10.0.1.4 80", "DENY nic:DenyAllInBound"),
    (None, Some(&["esp 100 Inbound Allow Esp * * *"]), "in esp 203.0.113.1 10.0.1.4", "ALLOW nic:esp"),
    (None, Some(&["ah 100 Inbound Allow Ah * * *"]), "in ah 203.0.113.1 10.0.1.4", "ALLOW nic:ah"),
    (None, Some(&["ah 100 Inbound Allow Ah * * *"]), "in esp 203.0.113.1 10.0.1.4", "DENY nic:DenyAllInBound"),
    (None, Some(&["any 100 Inbound Allow All * * *"]), "in esp 203.0.113.1 10.0.1.4", "ALLOW nic:any"),
    (None, Some(&["any-80 100 Inbound Allow * * * 80"]), "in icmp 203.0.113.1 10.0.1.4", "DENY nic:DenyAllInBound"),
    (None, Some(&["any-80 100 Inbound Allow * * * 80"]), "in udp 203.0.113.1 10.0.1.4 80", "ALLOW nic:any-80"),
    // 51-60: prefixes.
    (None, Some(&["src 100 Inbound Allow Tcp 198.18.0.0/15 * 22"]), "in tcp 198.19.255.1 10.0.1.4 22", "ALLOW nic:src"),
    (None, Some(&["src 100 Inbound Allow Tcp 198.18.0.0/15 * 22"]), "in tcp 198.20.0.1 10.0.1.4 22", "DENY nic:DenyAllInBound"),
    (None, Some(&["srcs 100 Inbound Allow Tcp 198.18.1.0/24,198.18.3.0/24 * 22"]), "in tcp 198.18.3.9 10.0.1.4 22", "ALLOW nic:srcs"),
    (None, Some(&["srcs 100 Inbound Allow Tcp 198.18.1.0/24,198.18.3.0/24 * 22"]), "in tcp 198.18.2.9 10.0.1.4 22", "DENY nic:DenyAllInBound"),
    (None, Some(&["host 100 Inbound Allow Tcp 198.18.1.1 * 22"]), "in tcp 198.18.1.1 10.0.1.4 22", "ALLOW nic:host"),
    (None, Some(&["dst 100 Inbound Deny Tcp * 10.0.1.4/32 22"]), "in tcp 10.0.2.2 10.0.1.4 22", "DENY nic:dst"),
    (None, Some(&["dst 100 Inbound Deny Tcp * 10.0.1.4/32 22"]), "in tcp 10.0.2.2 10.0.1.5 22", "ALLOW nic:AllowVnetInBound"),
    (None, Some(&["v4all 100 Inbound Deny * 0.0.0.0/0 0.0.0.0/0 *"]), "in tcp 203.0.113.1 10.0.1.4 22", "DENY nic:v4all"),
    (None, Some(&["v4all 100 Inbound Deny * 0.0.0.0/0 0.0.0.0/0 *"]), "in tcp 2001:db8::1 fd00::4 22", "DENY nic:DenyAllInBound"),
    (None, Some(&["v6 100 Inbound Allow Tcp 2001:db8::/32 * 443"]), "in tcp 2001:db8::1 fd00::4 443", "ALLOW nic:v6"),
    (None, Some(&["dual 100 Inbound Deny * 0.0.0.0/0,0::0/0 * *"]), "in tcp 2001:db8::1 fd00::4 22", "DENY nic:dual"),
    // 61-70: service tags and unresolvable rules.
    (None, Some(&["sql 100 Outbound Deny Tcp * Sql=20.38.0.0/16;40.64.0.0/16 1433"]), "out tcp 10.0.1.4 40.64.1.1 1433", "DENY nic:sql"),
    (None, Some(&["sql 100 Outbound Deny Tcp * Sql=20.38.0.0/16;40.64.0.0/16 1433"]), "out tcp 10.0.1.4 41.64.1.1 1433", "ALLOW nic:AllowInternetOutBound"),
    (None, Some(&["storage 100 Outbound Deny Tcp * Storage 443"]), "out tcp 10.0.1.4 52.1.1.1 443", "INDET storage"),
    (None, Some(&["storage 100 Outbound Deny Tcp * Storage 443"]), "out tcp 10.0.1.4 52.1.1.1 80", "ALLOW nic:AllowInternetOutBound"),
    (None, Some(&["asg 100 Inbound Allow Tcp web-asg * 22"]), "in tcp 10.0.2.2 10.0.1.4 22", "INDET asg"),
    (None, Some(&["asg 100 Inbound Allow Tcp web-asg * 22", "deny 90 Inbound Deny Tcp * * 22"]), "in tcp 10.0.2.2 10.0.1.4 22", "DENY nic:deny"),
    (Some(&["asg 100 Inbound Allow Tcp web-asg * 22"]), Some(&["deny 100 Inbound Deny Tcp * * 22"]), "in tcp 10.0.2.2 10.0.1.4 22", "DENY nic:deny"),
    (Some(&["asg 100 Inbound Allow Tcp web-asg * 22"]), Some(EMPTY), "in tcp 10.0.2.2 10.0.1.4 22", "INDET asg"),
    (None, Some(&["lb 100 Inbound Deny Tcp AzureLoadBalancer * 80"]), "in tcp 168.63.129.16 10.0.1.4 80", "DENY nic:lb"),
    (None, Some(&["sport 100 Inbound Deny Tcp * * 80 1024-2048"]), "in tcp 203.0.113.1 10.0.1.4 80", "INDET sport"),
    // 71-75: source ports, no-default-rule inputs.
    (None, Some(&["sport 100 Inbound Deny Tcp * * 80 1024-2048"]), "in tcp 203.0.113.1 10.0.1.4 80 1500", "DENY nic:sport"),
    (None, Some(&["sport 100 Inbound Deny Tcp * * 80 1024-2048", "web 200 Inbound Allow Tcp * * 80"]), "in tcp 203.0.113.1 10.0.1.4 80 3000", "ALLOW nic:web"),
    (None, Some(&["NODEFAULTS", "web 200 Inbound Allow Tcp * * 80"]), "in tcp 203.0.113.1 10.0.1.4 443", "INDET "),
    (None, Some(&["NODEFAULTS", "web 200 Inbound Allow Tcp * * 80"]), "in tcp 203.0.113.1 10.0.1.4 80", "ALLOW nic:web"),
    (Some(&["NODEFAULTS", "deny 200 Inbound Deny Tcp * * 80"]), Some(&["NODEFAULTS"]), "in tcp 203.0.113.1 10.0.1.4 80", "DENY subnet:deny"),
];

#[test]
fn nsg_cases() {
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    for (i, c) in CASES.iter().enumerate() {
        check(i + 1, c);
    }
}

#[test]
fn shadowed_rules_and_gate_reports() {
    let e = vec![nsg(
        "nic-nsg",
        Gate::Nic,
        &[
            "allow 100 Inbound Allow Tcp * * 443",
            "deny 200 Inbound Deny Tcp * * 443",
        ],
    )];
    let n = NicNsgs::new(&e).unwrap();
    let v = n.evaluate(&flow("in tcp 203.0.113.1 10.0.1.4 443"));
    assert_eq!(v.gate1.verdict, GateVerdict::NoNsg);
    assert_eq!(v.gate2.rules_evaluated, 1);
    let shadowed: Vec<&str> = v.shadowed_rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        shadowed,
        vec!["securityRules/deny", "defaultSecurityRules/DenyAllInBound"]
    );
    let j = serde_json::to_value(&v).unwrap();
    for k in [
        "final_verdict",
        "decisive_rule",
        "decisive_gate",
        "gate1",
        "gate2",
        "unresolvable_rules",
        "shadowed_rules",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    for k in ["gate", "verdict", "evaluated", "skip_reason"] {
        assert!(j["gate1"].get(k).is_some(), "{k}");
    }
    assert_eq!(j["final_verdict"], "ALLOW");
    assert_eq!(j["decisive_gate"], "nic");
    assert_eq!(j["decisive_rule"]["access"], "ALLOW");
}

#[test]
fn audit_findings() {
    use effective_network_inspector::nsg::AuditKind;
    let e = vec![nsg(
        "nic-nsg",
        Gate::Nic,
        &[
            "ssh-any 100 Inbound Allow Tcp * * 22",
            "rdp-inet 110 Inbound Allow Tcp Internet * 3389",
            "wide 120 Inbound Allow Tcp 0.0.0.0/0 * 1000-9000",
            "dup 130 Inbound Allow Tcp 198.18.0.0/24 * 22",
            "conflict 140 Inbound Deny Tcp * * 22",
            "icmp-port 150 Inbound Allow Icmp * * 80",
            "mixed 160 Inbound Allow Tcp 198.18.0.0/24 fd00::/64 443",
            "scoped 170 Inbound Allow Tcp 198.18.9.0/24 * 9500",
        ],
    )];
    let a = NicNsgs::new(&e).unwrap().audit();
    let has = |k: AuditKind, r: &str| {
        a.findings
            .iter()
            .any(|f| f.kind == k && f.rule.name.ends_with(r))
    };
    assert!(has(AuditKind::PermissiveSensitivePort, "/ssh-any"));
    assert!(has(AuditKind::PermissiveSensitivePort, "/rdp-inet"));
    assert!(has(AuditKind::WidePortRange, "/wide"));
    assert!(
        has(AuditKind::PermissiveSensitivePort, "/wide"),
        "1000-9000 includes 1433, 3306, 5432, 6379"
    );
    assert!(has(AuditKind::ShadowedRedundant, "/dup"));
    assert!(has(AuditKind::ShadowedConflicting, "/conflict"));
    assert!(has(AuditKind::NeverMatches, "/icmp-port"));
    assert!(has(AuditKind::NeverMatches, "/mixed"));
    assert!(!a.findings.iter().any(|f| f.rule.name.ends_with("/scoped")));
    assert_eq!(a.gates_without_nsg, vec![Gate::Subnet]);
}

#[test]
fn bad_rules_are_errors_naming_the_rule() {
    for bad in [
        "x 100 Inbound Allow Tcp * * 70000",
        "x 100 Inbound Allow Tcp * * 90-80",
        "x 100 Sideways Allow Tcp * * 80",
        "x 100 Inbound Maybe Tcp * * 80",
        "x 100 Inbound Allow Gre * * 80",
    ] {
        let e = vec![nsg("n", Gate::Nic, &[bad])];
        let err = NicNsgs::new(&e).unwrap_err().to_string();
        assert!(err.contains("securityRules/x"), "{bad}: {err}");
    }
}

/// `Internet` printed without its expansion (as Azure's effective output may): resolved
/// by what it is not (the `VirtualNetwork` and `AzureLoadBalancer` prefixes of the tag map,
/// and the private ranges Azure never routes to the internet); without a `VirtualNetwork`
/// expansion it stays unresolvable.
#[test]
fn internet_tag_without_expansion_is_resolved_against_the_vnet() {
    let nsgs = |rules: &[&str], with_vnet: bool| {
        let mut e = nsg("nic-nsg", Gate::Nic, rules);
        e.tag_map.remove("Internet");
        if !with_vnet {
            e.tag_map.remove("VirtualNetwork");
        }
        NicNsgs::new(&[e]).unwrap()
    };
    let verdict = |n: &NicNsgs, f: &str| {
        let fl = flow(f);
        let v = n.evaluate(&fl);
        assert_eq!(n.decide(&fl), v.final_verdict, "{f}");
        assert_eq!(reference_decide(n, &fl), v.final_verdict, "{f}");
        let rule = v
            .decisive_rule
            .as_ref()
            .map(|r| r.name.rsplit('/').next().unwrap().to_string())
            .or_else(|| {
                v.unresolvable_rules
                    .first()
                    .map(|u| u.rule.name.rsplit('/').next().unwrap().to_string())
            })
            .unwrap_or_default();
        (v.final_verdict, rule)
    };
    let deny = nsgs(&["deny-inet 100 Outbound Deny * * Internet *"], true);
    // A public address is Internet; the VNet, the load balancer's address are not.
    assert_eq!(
        verdict(&deny, "out tcp 10.0.1.4 203.0.113.10 443"),
        (FinalVerdict::Deny, "deny-inet".into())
    );
    assert_eq!(
        verdict(&deny, "out tcp 10.0.1.4 10.0.2.4 443"),
        (FinalVerdict::Allow, "AllowVnetOutBound".into())
    );
    assert_eq!(
        verdict(&deny, "out tcp 10.0.1.4 168.63.129.16 80"),
        (FinalVerdict::Allow, "AllowVnetOutBound".into())
    );
    // A private address outside the VNet cannot be told.
    assert_eq!(
        verdict(&deny, "out tcp 10.0.1.4 192.168.7.7 443"),
        (FinalVerdict::Indeterminate, "deny-inet".into())
    );
    // The default AllowInternetOutBound decides a public address the same way.
    let open = nsgs(&[], true);
    assert_eq!(
        verdict(&open, "out tcp 10.0.1.4 198.19.128.10 443"),
        (FinalVerdict::Allow, "AllowInternetOutBound".into())
    );
    // Inbound from the internet: the same set, on the source side.
    let allow_in = nsgs(&["web 100 Inbound Allow Tcp Internet * 443"], true);
    assert_eq!(
        verdict(&allow_in, "in tcp 203.0.113.9 10.0.1.4 443"),
        (FinalVerdict::Allow, "web".into())
    );
    assert_eq!(
        verdict(&allow_in, "in tcp 10.0.2.9 10.0.1.4 443"),
        (FinalVerdict::Allow, "AllowVnetInBound".into())
    );
    // Without the VNet's expansion nothing can be said.
    let blind = nsgs(&["deny-inet 100 Outbound Deny * * Internet *"], false);
    assert_eq!(
        verdict(&blind, "out tcp 10.0.1.4 203.0.113.10 443"),
        (FinalVerdict::Indeterminate, "deny-inet".into())
    );
}
