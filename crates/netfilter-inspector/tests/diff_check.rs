//! Diff and check behaviour on fixtures and small hand-written rulesets.

use netfilter_inspector::check::{check, Direction, Packet, Verdict};
use netfilter_inspector::diff::{diff, DiffOptions, Severity};
use netfilter_inspector::model::Ruleset;
use netfilter_inspector::{iptables, nft, parse, tc, InputFormat};

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn ipt(s: &str) -> Ruleset {
    iptables::parse_str(s).unwrap()
}

const BASE: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 443 -j ACCEPT
COMMIT
";

#[test]
fn one_inserted_rule_is_reported_once_with_its_position() {
    let old = ipt(BASE);
    let new = ipt(&BASE.replace(
        "-A INPUT -i lo -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 5001 -j DROP\n-A INPUT -i lo -j ACCEPT",
    ));
    let r = diff(&old, &new, "old", "new", &DiffOptions::default());
    assert!(r.drift_detected);
    assert!(r.has_critical_changes);
    let ip = &r.families["ip"];
    assert_eq!(ip.changes.len(), 1, "{:#?}", ip.changes);
    let c = &ip.changes[0];
    assert_eq!(c.change, "rule_added");
    assert_eq!(c.position, Some(1));
    assert_eq!(c.object, "INPUT");
    assert_eq!(c.severity, Severity::Critical);
    assert_eq!(c.detail, "-p tcp -m tcp --dport 5001 -j DROP");
}

#[test]
fn an_accept_rule_added_is_informational_and_a_move_is_one_change() {
    let old = ipt(BASE);
    let new = ipt(&BASE.replace(
        "--dport 443 -j ACCEPT",
        "--dport 443 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 8443 -j ACCEPT",
    ));
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    assert!(r.drift_detected && !r.has_critical_changes);
    assert_eq!(r.families["ip"].changes[0].position, Some(5));
    let moved = ipt(&BASE.replace(
        "-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -i lo -j ACCEPT",
    ));
    let r = diff(&old, &moved, "o", "n", &DiffOptions::default());
    let ch = &r.families["ip"].changes;
    assert_eq!(ch.len(), 1, "{ch:#?}");
    assert_eq!(ch[0].change, "rule_moved");
    assert!(ch[0].old_position.is_some() && ch[0].position.is_some());
}

#[test]
fn policy_accept_to_drop_is_critical() {
    let old = ipt(BASE);
    let new = ipt(&BASE.replace(":INPUT ACCEPT", ":INPUT DROP"));
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    let c = &r.families["ip"].changes;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].change, "policy_changed");
    assert_eq!(c[0].detail, "ACCEPT -> DROP");
    assert_eq!(c[0].severity, Severity::Critical);
}

#[test]
fn counters_only_changes_are_not_drift() {
    let old = ipt(&fixture("iptables_docker_f2b_counters.txt"));
    let bumped = fixture("iptables_docker_f2b_counters.txt")
        .replace("[0:0] -A INPUT", "[991:123456] -A INPUT")
        .replace(":INPUT ACCEPT [0:0]", ":INPUT ACCEPT [5:500]");
    let new = ipt(&bumped);
    assert_ne!(old, new);
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    assert!(!r.drift_detected, "{r:#?}");
    assert!(!r.has_critical_changes);
    // and the plain form against the counters form is no drift either
    let plain = ipt(&fixture("iptables_docker_f2b.txt"));
    assert!(!diff(&plain, &new, "o", "n", &DiffOptions::default()).drift_detected);
}

#[test]
fn kube_endpoint_churn_is_suppressed_and_counted() {
    let old = ipt("*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
:KUBE-SEP-1111 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 198.18.100.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SVC-AAAA -j KUBE-SEP-1111
-A KUBE-SEP-1111 -p tcp -m tcp -j DNAT --to-destination 198.18.101.5:8080
COMMIT
");
    let new = ipt("*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAA - [0:0]
:KUBE-SEP-2222 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A KUBE-SERVICES -d 198.18.100.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-AAAA
-A KUBE-SVC-AAAA -j KUBE-SEP-2222
-A KUBE-SEP-2222 -p tcp -m tcp -j DNAT --to-destination 198.18.101.6:8080
COMMIT
");
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    assert!(!r.drift_detected, "{r:#?}");
    assert_eq!(r.suppressed.changes, 3);
    assert!(r.suppressed.chains.contains(&"KUBE-SEP-1111".to_string()));
    assert!(r.suppressed.chains.contains(&"KUBE-SVC-AAAA".to_string()));
    let all = diff(&old, &new, "o", "n", &DiffOptions { suppress: vec![] });
    assert!(all.drift_detected);
    assert_eq!(all.suppressed.changes, 0);
}

#[test]
fn tbf_added_is_critical_qdisc_drift() {
    let old = tc::parse_qdisc_text("qdisc noqueue 0: dev eth0 root refcnt 2\n").unwrap();
    let new = tc::parse_qdisc_text(&fixture("tc_qdisc_show.txt")).unwrap();
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    let tcs = &r.families["tc"];
    let tbf = tcs
        .changes
        .iter()
        .find(|c| c.detail.contains("tbf"))
        .unwrap();
    assert_eq!(tbf.change, "qdisc_added");
    assert_eq!(tbf.severity, Severity::Critical);
    assert!(tbf.reason.as_deref().unwrap().contains("limits rate"));
    let clsact = tcs
        .changes
        .iter()
        .find(|c| c.detail.contains("clsact"))
        .unwrap();
    assert_eq!(clsact.severity, Severity::Informational);
    // netem delay change is critical too
    let a =
        tc::parse_qdisc_text("qdisc netem 8001: dev eth0 root refcnt 2 limit 1000 delay 30ms\n")
            .unwrap();
    let b = tc::parse_qdisc_text(
        "qdisc netem 8001: dev eth0 root refcnt 2 limit 1000 delay 100ms  10ms loss 10%\n",
    )
    .unwrap();
    let r = diff(&a, &b, "o", "n", &DiffOptions::default());
    assert_eq!(r.families["tc"].changes[0].change, "qdisc_changed");
    assert!(r.has_critical_changes);
}

#[test]
fn docker_chains_appearing_are_critical_because_of_the_isolation_drop() {
    let old =
        ipt("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
    let new = ipt(&fixture("iptables_docker_f2b.txt"));
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    let ip = &r.families["ip"];
    let stage2 = ip
        .changes
        .iter()
        .find(|c| c.object == "DOCKER-ISOLATION-STAGE-2")
        .unwrap();
    assert_eq!(stage2.change, "chain_added");
    assert_eq!(stage2.severity, Severity::Critical);
    let jump = ip
        .changes
        .iter()
        .find(|c| c.detail == "-j DOCKER-ISOLATION-STAGE-1")
        .unwrap();
    assert_eq!(
        jump.severity,
        Severity::Critical,
        "a jump to a chain that drops"
    );
    assert!(ip
        .changes
        .iter()
        .any(|c| c.change == "table_added" && c.table == "nat"));
}

#[test]
fn nft_set_element_changes() {
    let old = nft::parse_str(&fixture("nft_inet_filter.json")).unwrap();
    let new_text = fixture("nft_inet_filter.json").replace("\"198.18.10.7\"", "\"198.18.10.8\"");
    let new = nft::parse_str(&new_text).unwrap();
    let r = diff(&old, &new, "o", "n", &DiffOptions::default());
    let c = &r.families["inet"].changes;
    assert_eq!(c.len(), 1, "{c:#?}");
    assert_eq!(c[0].change, "set_elements_changed");
    assert_eq!(c[0].detail, "added [198.18.10.8] removed [198.18.10.7]");
    assert_eq!(
        c[0].severity,
        Severity::Critical,
        "the set feeds a drop rule"
    );
}

fn pkt(proto: &str, port: u16, d: Direction) -> Packet {
    Packet::new(proto, port, d)
}

#[test]
fn check_input_drop_5001_names_the_rule() {
    let rs = ipt(&fixture("iptables_scenario_j.txt"));
    let a = check(&rs, &pkt("tcp", 5001, Direction::In));
    assert_eq!(a.verdict, Verdict::Drop);
    let d = a.deciding_rule.unwrap();
    assert_eq!(
        (d.table.as_str(), d.chain.as_str(), d.position),
        ("filter", "INPUT", Some(1))
    );
    assert_eq!(d.rule, "-p tcp -m tcp --dport 5001 -j DROP");
    let ok = check(&rs, &pkt("tcp", 22, Direction::In));
    assert_eq!(ok.verdict, Verdict::Accept);
    assert_eq!(ok.deciding_rule.unwrap().position, Some(2));
    let icmp = check(&rs, &pkt("icmp", 0, Direction::In));
    assert_eq!(icmp.verdict, Verdict::Drop);
    assert!(a.assumptions.iter().any(|s| s.contains("NEW")));
}

#[test]
fn check_user_chain_return_then_policy() {
    let rs = ipt("*filter
:INPUT DROP [0:0]
:f2b-sshd - [0:0]
-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd
-A f2b-sshd -s 198.18.1.66/32 -j REJECT --reject-with icmp-port-unreachable
-A f2b-sshd -j RETURN
COMMIT
");
    let a = check(&rs, &pkt("tcp", 22, Direction::In));
    assert_eq!(a.verdict, Verdict::Drop);
    let d = a.deciding_rule.unwrap();
    assert_eq!(d.position, None);
    assert_eq!(d.rule, "policy DROP");
    assert!(a
        .conditional_rules
        .iter()
        .any(|c| c.contains("198.18.1.66")));
    let mut banned = pkt("tcp", 22, Direction::In);
    banned.src = Some("198.18.1.66".parse().unwrap());
    let b = check(&rs, &banned);
    assert_eq!(b.verdict, Verdict::Reject);
    assert_eq!(b.deciding_rule.unwrap().chain, "f2b-sshd");
}

#[test]
fn check_goto_returns_to_the_callers_caller() {
    let rs = ipt("*filter
:INPUT ACCEPT [0:0]
:A - [0:0]
:B - [0:0]
-A INPUT -j A
-A INPUT -p tcp -m tcp --dport 7000 -j DROP
-A A -g B
-A A -j ACCEPT
-A B -j RETURN
COMMIT
");
    // goto B then RETURN leaves A too, so `-A A -j ACCEPT` is skipped and the DROP decides.
    let a = check(&rs, &pkt("tcp", 7000, Direction::In));
    assert_eq!(a.verdict, Verdict::Drop);
}

#[test]
fn check_reject_and_cis_hardening() {
    let rs = ipt(&fixture("iptables_cis.txt"));
    let a = check(&rs, &pkt("udp", 5001, Direction::In));
    assert_eq!(a.verdict, Verdict::Reject);
    assert_eq!(a.deciding_rule.unwrap().position, Some(9));
    let ssh = check(&rs, &pkt("tcp", 22, Direction::In));
    assert_eq!(ssh.verdict, Verdict::Accept);
    let out = check(&rs, &pkt("tcp", 80, Direction::Out));
    assert_eq!(out.verdict, Verdict::Indeterminate, "owner match first");
    assert!(out.reason.unwrap().contains("process"));
}

#[test]
fn check_nft_inet_drop_sets_and_vmaps() {
    let rs = nft::parse_str(&fixture("nft_inet_filter.json")).unwrap();
    let a = check(&rs, &pkt("tcp", 5001, Direction::In));
    assert_eq!(a.verdict, Verdict::Drop);
    let d = a.deciding_rule.unwrap();
    assert_eq!(
        (d.table.as_str(), d.chain.as_str(), d.position),
        ("filter", "input", Some(6))
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 8080, Direction::In)).verdict,
        Verdict::Drop
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 8081, Direction::In)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 8082, Direction::In)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 9090, Direction::In)).verdict,
        Verdict::Reject
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 10050, Direction::In)).verdict,
        Verdict::Accept
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 12345, Direction::In)).verdict,
        Verdict::Drop
    );
    let mut blocked = pkt("tcp", 443, Direction::In);
    blocked.src = Some("198.18.9.77".parse().unwrap());
    let b = check(&rs, &blocked);
    assert_eq!(b.verdict, Verdict::Drop);
    assert_eq!(b.deciding_rule.unwrap().position, Some(4));
    let mut outside = pkt("tcp", 22, Direction::In);
    outside.src = Some("203.0.113.9".parse().unwrap());
    assert_eq!(check(&rs, &outside).verdict, Verdict::Drop);
    assert_eq!(
        check(&rs, &pkt("tcp", 80, Direction::Out)).verdict,
        Verdict::Drop
    );
    // udp 9999: the raw_guard numgen drop is random
    let r = check(&rs, &pkt("udp", 9999, Direction::In));
    assert_eq!(r.verdict, Verdict::Indeterminate);
}

#[test]
fn check_indeterminate_with_statistic() {
    let rs = ipt(&fixture("iptables_scenario_j.txt"));
    let a = check(&rs, &pkt("udp", 53, Direction::Out));
    assert_eq!(a.verdict, Verdict::Indeterminate);
    assert!(a.reason.unwrap().contains("random"));
    assert_eq!(a.deciding_rule.unwrap().chain, "OUTPUT");
    // tcp does not reach the udp statistic rule
    assert_eq!(
        check(&rs, &pkt("tcp", 53, Direction::Out)).verdict,
        Verdict::Accept
    );
}

#[test]
fn check_every_base_chain_must_pass() {
    let mut rs = ipt(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 5001 -j ACCEPT\nCOMMIT\n",
    );
    rs.merge(nft::parse_str(&fixture("nft_inet_filter.json")).unwrap());
    let a = check(&rs, &pkt("tcp", 5001, Direction::In));
    assert_eq!(a.verdict, Verdict::Drop);
    assert_eq!(
        a.deciding_rule.unwrap().backend,
        netfilter_inspector::model::Backend::Nftables
    );
    // the mangle MARK on 5001 is applied before the filter `-m mark` test
    let rs = parse(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 5001 -j MARK --set-xmark 0x2/0xffffffff\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m mark --mark 0x2/0xff -j DROP\nCOMMIT\n",
        InputFormat::Auto,
    )
    .unwrap();
    assert_eq!(
        check(&rs, &pkt("tcp", 5001, Direction::In)).verdict,
        Verdict::Drop
    );
    assert_eq!(
        check(&rs, &pkt("tcp", 5002, Direction::In)).verdict,
        Verdict::Accept
    );
}

#[test]
fn check_ip6tables() {
    let rs = ipt(&fixture("ip6tables_basic.txt"));
    let mut p = pkt("tcp", 5001, Direction::In);
    p.src = Some("2001:db8:1::5".parse().unwrap());
    // `-m hl --hl-eq 255 -j ACCEPT` comes before the REJECT and the hop limit is unknown.
    let a = check(&rs, &p);
    assert_eq!(a.verdict, Verdict::Indeterminate, "{a:?}");
    assert!(a.reason.unwrap().contains("hl"));
    p.port = 22;
    assert_eq!(check(&rs, &p).verdict, Verdict::Accept);
    let mut ping = pkt("icmp", 0, Direction::In);
    ping.dst = Some("2001:db8::1".parse().unwrap());
    assert_eq!(check(&rs, &ping).verdict, Verdict::Accept);
    // IPv4 packets do not see ip6tables tables at all
    assert_eq!(
        check(&rs, &pkt("tcp", 5001, Direction::In)).verdict,
        Verdict::Accept
    );
}

/// Legacy xtables, iptables-nft and a native nft table on one host (recorded by
/// tests/fixtures/record.sh, section 9), merged the way live retrieval and `--from-file` do.
fn coexisting() -> Ruleset {
    let mut rs = Ruleset::default();
    for (f, fmt) in [
        ("coexist_legacy.txt", InputFormat::IptablesSave),
        ("coexist_nft.txt", InputFormat::IptablesSave),
        ("coexist_nft.json", InputFormat::NftJson),
    ] {
        rs.merge(parse(&fixture(f), fmt).unwrap());
    }
    // nft -j shows the iptables-nft `ip filter` table too: kept once, from iptables-nft-save.
    assert_eq!(rs.dedupe_iptables_nft(), 1);
    rs
}

#[test]
fn coexisting_back_ends_stay_apart_and_check_walks_both() {
    use netfilter_inspector::model::{Backend, IptablesVariant};
    let rs = coexisting();
    let labels: Vec<(String, &str)> = rs
        .tables
        .iter()
        .map(|t| {
            (
                format!("{} {}", t.family.as_str(), t.name),
                t.backend_label(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        vec![
            ("ip filter".to_string(), "iptables-legacy"),
            ("ip filter".to_string(), "iptables-nft"),
            ("inet nfinative".to_string(), "nftables"),
        ]
    );
    for (port, variant, backend) in [
        (5001, Some(IptablesVariant::Legacy), Backend::Iptables),
        (5002, Some(IptablesVariant::Nft), Backend::Iptables),
        (5003, None, Backend::Nftables),
    ] {
        let a = check(&rs, &pkt("tcp", port, Direction::In));
        assert_eq!(a.verdict, Verdict::Drop, "port {port}: {a:#?}");
        let d = a.deciding_rule.unwrap();
        assert_eq!((d.backend, d.variant), (backend, variant), "port {port}");
        assert_eq!(d.position, Some(1));
        assert!(d.rule.contains(&port.to_string()), "{}", d.rule);
    }
    let a = check(&rs, &pkt("tcp", 5004, Direction::In));
    assert_eq!(a.verdict, Verdict::Accept);
    assert!(
        a.assumptions.iter().any(|s| s.contains("legacy xtables")),
        "{:?}",
        a.assumptions
    );
    let snap = netfilter_inspector::snapshot::build("h", vec![], rs, false);
    let blocking: Vec<_> = snap
        .blocking_rules
        .iter()
        .map(|b| (b.table.as_str(), b.variant, b.matches.as_str()))
        .collect();
    assert!(blocking.contains(&(
        "filter",
        Some(IptablesVariant::Legacy),
        "-p tcp -m tcp --dport 5001 -j DROP"
    )));
    assert!(blocking.contains(&(
        "filter",
        Some(IptablesVariant::Nft),
        "-p tcp -m tcp --dport 5002 -j DROP"
    )));
    for fw in ["iptables-legacy", "iptables-nft", "nftables"] {
        assert!(
            snap.frameworks.iter().any(|f| f == fw),
            "{:?}",
            snap.frameworks
        );
    }
    assert_eq!(snap.summary.families["ip"].tables, 2);
}

#[test]
fn diff_keeps_same_named_tables_of_two_back_ends_apart() {
    let old = coexisting();
    let mut new = coexisting();
    // Remove the legacy DROP only: one change, in the legacy table, nothing in the nft one.
    new.tables[0].chains[0].rules.clear();
    let r = diff(&old, &new, "old", "new", &DiffOptions::default());
    let ip = &r.families["ip"];
    assert_eq!(ip.changes.len(), 1, "{:#?}", ip.changes);
    let c = &ip.changes[0];
    assert_eq!(c.change, "rule_removed");
    assert_eq!(c.backend.as_deref(), Some("iptables-legacy"));
    assert_eq!(c.severity, Severity::Critical);
    // An iptables table whose back end is unknown (no header) pairs with the one table of
    // the same name: a snapshot from before back ends were told apart is not drift.
    let plain = ipt(&fixture("coexist_nft.txt").replace("# Generated", "# Made"));
    assert_eq!(plain.tables[0].variant, None);
    let nft_view = ipt(&fixture("coexist_nft.txt"));
    let r = diff(&plain, &nft_view, "old", "new", &DiffOptions::default());
    assert!(!r.drift_detected, "{:#?}", r.families);
}
