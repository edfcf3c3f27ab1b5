//! The NSG compiler: Azure NSGs (subnet and NIC level) to one nftables table for the fabric.
//!
//! Layout of the generated table `inet netlab`:
//!
//! * `prerouting` (nat): DNAT of each VM's lab "public IP" to its private IP.
//! * `forward` (filter): established/related traffic passes (NSGs are stateful); a new flow
//!   leaving a VM link jumps to `out_<vm>`, a new flow entering a VM link jumps to `in_<vm>`.
//! * `out_<vm>` = NIC NSG outbound gate, then subnet NSG outbound gate (Azure's order);
//!   `in_<vm>` = subnet NSG inbound gate, then NIC NSG inbound gate.
//! * each gate chain `nsg_<i>_<in|out>` lists the rules in priority order followed by Azure's
//!   default rules; Allow = `return` (go on to the next gate), Deny = `drop`. Every rule has a
//!   counter and a comment `nsg=<name> rule=<rule> prio=<n> dir=<in|out>`.

use std::fmt::Write;
use std::net::Ipv4Addr;

use crate::addr::Cidr;
use crate::scenario::{parse_port_range, Nsg, NsgRule, Topology};

/// The fabric's view of one VM.
#[derive(Debug, Clone)]
pub struct VmLink {
    /// VM name.
    pub vm: String,
    /// Interface name of the VM's link in the fabric namespace.
    pub link: String,
    /// Private IP.
    pub private_ip: Ipv4Addr,
    /// Lab "public IP" DNATed to the private IP.
    pub public_ip: Option<Ipv4Addr>,
}

/// Azure's default rules for one direction, lowest precedence last.
pub fn default_rules(inbound: bool) -> Vec<NsgRule> {
    let mk = |name: &str, prio: u32, access: &str, src: &str, dst: &str| NsgRule {
        name: name.into(),
        priority: prio,
        direction: if inbound { "Inbound" } else { "Outbound" }.into(),
        access: access.into(),
        protocol: "*".into(),
        source_address_prefix: Some(src.into()),
        source_port_range: Some("*".into()),
        destination_address_prefix: Some(dst.into()),
        destination_port_range: Some("*".into()),
        ..Default::default()
    };
    if inbound {
        vec![
            mk(
                "AllowVnetInBound",
                65000,
                "Allow",
                "VirtualNetwork",
                "VirtualNetwork",
            ),
            mk(
                "AllowAzureLoadBalancerInBound",
                65001,
                "Allow",
                "AzureLoadBalancer",
                "*",
            ),
            mk("DenyAllInBound", 65500, "Deny", "*", "*"),
        ]
    } else {
        vec![
            mk(
                "AllowVnetOutBound",
                65000,
                "Allow",
                "VirtualNetwork",
                "VirtualNetwork",
            ),
            mk("AllowInternetOutBound", 65001, "Allow", "*", "Internet"),
            mk("DenyAllOutBound", 65500, "Deny", "*", "*"),
        ]
    }
}

/// The address Azure's `AzureLoadBalancer` tag stands for (matched only; never used on a link).
const AZURE_LB: &str = "168.63.129.16";

fn addr_match(field: &str, prefixes: &[String], vnet: &[Cidr]) -> String {
    let vnet_set = vnet
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match prefixes {
        [] => String::new(),
        [one] if one == "*" => String::new(),
        [one] if one == "VirtualNetwork" => format!("ip {field} {{ {vnet_set} }} "),
        [one] if one == "Internet" => format!("ip {field} != {{ {vnet_set} }} "),
        [one] if one == "AzureLoadBalancer" => format!("ip {field} {AZURE_LB} "),
        many => {
            let list: Vec<String> = many
                .iter()
                .filter_map(|p| p.parse::<Cidr>().ok())
                .map(|c| c.to_string())
                .collect();
            format!("ip {field} {{ {} }} ", list.join(", "))
        }
    }
}

fn port_match(field: &str, ranges: &[String]) -> Option<String> {
    match ranges {
        [] => None,
        [one] if one == "*" => None,
        many => {
            let list: Vec<String> = many
                .iter()
                .filter_map(|p| parse_port_range(p))
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect();
            Some(format!("th {field} {{ {} }} ", list.join(", ")))
        }
    }
}

/// One rule as an nft statement line.
pub fn rule_line(nsg: &str, r: &NsgRule, vnet: &[Cidr]) -> String {
    let mut s = String::new();
    let sports = port_match("sport", &r.source_ports());
    let dports = port_match("dport", &r.destination_ports());
    let has_ports = sports.is_some() || dports.is_some();
    match r.protocol.as_str() {
        "Tcp" => s.push_str("meta l4proto tcp "),
        "Udp" => s.push_str("meta l4proto udp "),
        "Icmp" => s.push_str("meta l4proto icmp "),
        "Esp" => s.push_str("meta l4proto esp "),
        "Ah" => s.push_str("meta l4proto ah "),
        // `*` with ports: Azure applies the ports to TCP and UDP only.
        _ if has_ports => s.push_str("meta l4proto { tcp, udp } "),
        _ => {}
    }
    if matches!(r.protocol.as_str(), "Tcp" | "Udp" | "*") {
        if let Some(p) = &sports {
            s.push_str(p);
        }
        if let Some(p) = &dports {
            s.push_str(p);
        }
    }
    s.push_str(&addr_match("saddr", &r.sources(), vnet));
    s.push_str(&addr_match("daddr", &r.destinations(), vnet));
    let dir = if r.inbound() { "in" } else { "out" };
    let verdict = if r.access == "Allow" {
        "return"
    } else {
        "drop"
    };
    let _ = write!(
        s,
        "counter {verdict} comment \"nsg={nsg} rule={} prio={} dir={dir}\"",
        r.name, r.priority
    );
    s
}

/// The rules of one NSG in one direction, in evaluation order (user rules by priority, then
/// Azure's defaults).
pub fn ordered_rules(nsg: &Nsg, inbound: bool) -> Vec<NsgRule> {
    let mut rules: Vec<NsgRule> = nsg
        .rules
        .iter()
        .filter(|r| r.inbound() == inbound)
        .cloned()
        .collect();
    rules.sort_by_key(|r| r.priority);
    rules.extend(default_rules(inbound));
    rules
}

fn chain_id(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Compiles the whole fabric table. `oplink` is the fabric side of the operator link (DNAT
/// applies to traffic arriving there).
pub fn compile(topology: &Topology, links: &[VmLink], oplink: Option<&str>) -> String {
    let vnet = topology.vnet_prefixes();
    let mut out = String::new();
    out.push_str("table inet netlab\ndelete table inet netlab\ntable inet netlab {\n");
    // Gate chains, one per (NSG, direction) that is attached somewhere.
    let mut used: Vec<&Nsg> = Vec::new();
    for vm in &topology.vms {
        let subnet_nsg = topology.subnet(&vm.subnet).and_then(|s| s.nsg.as_deref());
        for n in [vm.nsg.as_deref(), subnet_nsg].into_iter().flatten() {
            if let Some(nsg) = topology.nsg(n) {
                if !used.iter().any(|u| u.name == nsg.name) {
                    used.push(nsg);
                }
            }
        }
    }
    for nsg in &used {
        for inbound in [true, false] {
            let _ = writeln!(
                out,
                "  chain nsg_{}_{} {{",
                chain_id(&nsg.name),
                if inbound { "in" } else { "out" }
            );
            for r in ordered_rules(nsg, inbound) {
                let _ = writeln!(out, "    {}", rule_line(&nsg.name, &r, &vnet));
            }
            out.push_str("  }\n");
        }
    }
    // Per-VM chains.
    for vm in &topology.vms {
        let subnet_nsg = topology
            .subnet(&vm.subnet)
            .and_then(|s| s.nsg.as_deref())
            .and_then(|n| topology.nsg(n));
        let nic_nsg = vm.nsg.as_deref().and_then(|n| topology.nsg(n));
        let id = chain_id(&vm.name);
        let _ = writeln!(out, "  chain out_{id} {{");
        for n in [nic_nsg, subnet_nsg].into_iter().flatten() {
            let _ = writeln!(out, "    jump nsg_{}_out", chain_id(&n.name));
        }
        out.push_str("  }\n");
        let _ = writeln!(out, "  chain in_{id} {{");
        for n in [subnet_nsg, nic_nsg].into_iter().flatten() {
            let _ = writeln!(out, "    jump nsg_{}_in", chain_id(&n.name));
        }
        out.push_str("  }\n");
    }
    out.push_str(
        "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
    );
    out.push_str("    ct state established,related accept\n");
    for l in links {
        if topology.vm(&l.vm).is_some() {
            let _ = writeln!(
                out,
                "    iifname \"{}\" jump out_{}",
                l.link,
                chain_id(&l.vm)
            );
        }
    }
    for l in links {
        if topology.vm(&l.vm).is_some() {
            let _ = writeln!(
                out,
                "    oifname \"{}\" jump in_{}",
                l.link,
                chain_id(&l.vm)
            );
        }
    }
    out.push_str("  }\n");
    // The gateway (.1, the fabric's address on every VM link) is not a DNS server: as in
    // Azure, a query sent to it gets no answer at all (not an ICMP port unreachable).
    out.push_str("  chain input {\n    type filter hook input priority filter; policy accept;\n");
    for l in links {
        if topology.vm(&l.vm).is_some() {
            let _ = writeln!(
                out,
                "    iifname \"{}\" meta l4proto {{ tcp, udp }} th dport 53 drop comment \"gateway-no-dns vm={}\"",
                l.link, l.vm
            );
        }
    }
    out.push_str("  }\n");
    out.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    if let Some(op) = oplink {
        for l in links {
            if let Some(p) = l.public_ip {
                let _ = writeln!(
                    out,
                    "    iifname \"{op}\" ip daddr {p} dnat ip to {} comment \"public-ip vm={}\"",
                    l.private_ip, l.vm
                );
            }
        }
    }
    out.push_str("  }\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::BASE;
    use crate::scenario::Scenario;

    fn links() -> Vec<VmLink> {
        vec![
            VmLink {
                vm: "source-vm".into(),
                link: "nlt-v0".into(),
                private_ip: "198.18.1.4".parse().unwrap(),
                public_ip: Some("198.19.16.10".parse().unwrap()),
            },
            VmLink {
                vm: "dest-vm".into(),
                link: "nlt-v1".into(),
                private_ip: "198.18.1.5".parse().unwrap(),
                public_ip: Some("198.19.16.11".parse().unwrap()),
            },
        ]
    }

    fn rule(extra: &str) -> NsgRule {
        toml::from_str(&format!(
            "name = \"r\"\npriority = 150\ndirection = \"Inbound\"\naccess = \"Deny\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn rule_lines() {
        let vnet = vec!["198.18.0.0/16".parse().unwrap()];
        let r = rule("protocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"*\"\ndestination_port_range = \"8080\"");
        assert_eq!(
            rule_line("dest-nsg", &r, &vnet),
            "meta l4proto tcp th dport { 8080 } counter drop comment \"nsg=dest-nsg rule=r prio=150 dir=in\""
        );
        let r = rule("protocol = \"*\"\nsource_address_prefix = \"VirtualNetwork\"\nsource_port_range = \"*\"\ndestination_address_prefixes = [\"198.18.1.5/32\", \"198.18.2.0/24\"]\ndestination_port_ranges = [\"80\", \"1000-2000\"]");
        assert_eq!(
            rule_line("n", &r, &vnet),
            "meta l4proto { tcp, udp } th dport { 80, 1000-2000 } ip saddr { 198.18.0.0/16 } ip daddr { 198.18.1.5/32, 198.18.2.0/24 } counter drop comment \"nsg=n rule=r prio=150 dir=in\""
        );
        let r = rule("protocol = \"Icmp\"\nsource_address_prefix = \"Internet\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"*\"\ndestination_port_range = \"*\"");
        let r = NsgRule {
            access: "Allow".into(),
            ..r
        };
        assert_eq!(
            rule_line("n", &r, &vnet),
            "meta l4proto icmp ip saddr != { 198.18.0.0/16 } counter return comment \"nsg=n rule=r prio=150 dir=in\""
        );
    }

    #[test]
    fn priority_order_and_defaults() {
        let mut nsg = Nsg {
            name: "n".into(),
            rules: vec![],
        };
        for (name, prio) in [("b", 300), ("a", 100), ("c", 200)] {
            let mut r = rule("protocol = \"Tcp\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"*\"\ndestination_port_range = \"80\"");
            r.name = name.into();
            r.priority = prio;
            nsg.rules.push(r);
        }
        let names: Vec<String> = ordered_rules(&nsg, true)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            names,
            [
                "a",
                "c",
                "b",
                "AllowVnetInBound",
                "AllowAzureLoadBalancerInBound",
                "DenyAllInBound"
            ]
        );
        let names: Vec<String> = ordered_rules(&nsg, false)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            names,
            [
                "AllowVnetOutBound",
                "AllowInternetOutBound",
                "DenyAllOutBound"
            ]
        );
    }

    #[test]
    fn gate_order_per_direction() {
        let text = BASE.replace(
            "service_endpoints = [\"Microsoft.Storage\"]",
            "service_endpoints = [\"Microsoft.Storage\"]\nnsg = \"subnet-nsg\"",
        ) + "[[topology.nsgs]]\nname = \"subnet-nsg\"\n";
        let s = Scenario::from_toml_str(&text).unwrap();
        let out = compile(&s.topology, &links(), Some("nlt-opf"));
        // Outbound: NIC then subnet. Inbound: subnet then NIC.
        assert!(out.contains("chain out_source_vm {\n    jump nsg_source_nsg_out\n    jump nsg_subnet_nsg_out\n  }"), "{out}");
        assert!(
            out.contains(
                "chain in_dest_vm {\n    jump nsg_subnet_nsg_in\n    jump nsg_dest_nsg_in\n  }"
            ),
            "{out}"
        );
        assert!(out.contains(
            "ct state established,related accept\n    iifname \"nlt-v0\" jump out_source_vm"
        ));
        assert!(out.contains("oifname \"nlt-v1\" jump in_dest_vm"));
        assert!(out.contains("iifname \"nlt-opf\" ip daddr 198.19.16.11 dnat ip to 198.18.1.5"));
        assert!(out.starts_with("table inet netlab\ndelete table inet netlab\n"));
        assert!(
            out.contains("counter return comment \"nsg=dest-nsg rule=allow-ssh prio=100 dir=in\"")
        );
        assert!(out.contains(
            "counter drop comment \"nsg=dest-nsg rule=DenyAllInBound prio=65500 dir=in\""
        ));
        // The gateway answers no DNS: port 53 to the fabric itself is dropped per VM link.
        assert!(out.contains("chain input {\n    type filter hook input priority filter; policy accept;\n    iifname \"nlt-v0\" meta l4proto { tcp, udp } th dport 53 drop comment \"gateway-no-dns vm=source-vm\"\n    iifname \"nlt-v1\""), "{out}");
    }

    #[test]
    fn vm_without_nsgs_has_empty_chains() {
        let text = BASE.replace("nsg = \"source-nsg\"\n", "");
        let s = Scenario::from_toml_str(&text).unwrap();
        let out = compile(&s.topology, &links(), None);
        assert!(out.contains("chain out_source_vm {\n  }"), "{out}");
        assert!(!out.contains("dnat"));
    }
}
