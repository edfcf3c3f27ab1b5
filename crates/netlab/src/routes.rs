//! The route compiler: Azure system routes and UDRs to kernel policy routing in the fabric.
//!
//! Each subnet gets its own routing table (`100 + subnet index`), selected by `ip rule iif
//! <vm link> lookup <table>` for every VM link of the subnet. In that table:
//!
//! * the VNet address space (system route, next hop VnetLocal) and `0.0.0.0/0` (system route,
//!   next hop Internet) are `throw` routes: the lookup falls through to the fabric's main
//!   table, which delivers to VM links (/32 host routes), the storage endpoint, the internet
//!   host and the operator link, and blackholes everything else;
//! * a UDR with the same prefix as a system route replaces it (Azure: user routes win ties);
//! * UDR next hops: `VirtualAppliance` forwards to the appliance's VM link if a VM has that
//!   address, otherwise the prefix is blackholed (nothing is there, so Azure drops it);
//!   `None` is a blackhole; `Internet` and `VnetLocal` are `throw` (use the fabric's
//!   delivery); `VirtualNetworkGateway` is a blackhole (the lab has no gateway).
//!
//! Longest-prefix match then happens in the kernel exactly as Azure does it.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::Serialize;

use crate::addr::Cidr;
use crate::lab::STORAGE_IP;
use crate::nsg::VmLink;
use crate::scenario::Topology;

/// First routing table number used for subnets.
pub const TABLE_BASE: u32 = 100;
/// Priority of the `ip rule`s.
pub const RULE_PREF: u32 = 1000;

/// One compiled route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompiledRoute {
    /// Destination.
    pub prefix: Cidr,
    /// `system` or the UDR's `table/route` name.
    pub source: String,
    /// Azure next-hop type.
    pub next_hop_type: String,
    /// The kernel route spec (after `ip route add`, without the `table` part).
    pub spec: String,
}

/// The routing of one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubnetRoutes {
    /// Subnet name.
    pub subnet: String,
    /// Kernel table number.
    pub table: u32,
    /// Fabric links of the subnet's VMs.
    pub links: Vec<String>,
    /// Routes.
    pub routes: Vec<CompiledRoute>,
}

/// Compiles per-subnet tables.
pub fn compile(topology: &Topology, links: &[VmLink]) -> Vec<SubnetRoutes> {
    let mut out = Vec::new();
    let by_ip: BTreeMap<Ipv4Addr, &VmLink> = links.iter().map(|l| (l.private_ip, l)).collect();
    for (i, subnet) in topology.vnet.subnets.iter().enumerate() {
        let table = TABLE_BASE + i as u32;
        let mut routes: BTreeMap<Cidr, CompiledRoute> = BTreeMap::new();
        for p in topology.vnet_prefixes() {
            routes.insert(
                p,
                CompiledRoute {
                    prefix: p,
                    source: "system".into(),
                    next_hop_type: "VnetLocal".into(),
                    spec: format!("throw {p}"),
                },
            );
        }
        let default = Cidr::new(Ipv4Addr::UNSPECIFIED, 0);
        routes.insert(
            default,
            CompiledRoute {
                prefix: default,
                source: "system".into(),
                next_hop_type: "Internet".into(),
                spec: "throw 0.0.0.0/0".into(),
            },
        );
        // A Microsoft.Storage service endpoint adds a system route for the storage
        // endpoint (next hop VirtualNetworkServiceEndpoint) that a default UDR cannot override.
        if subnet
            .service_endpoints
            .iter()
            .any(|e| e == "Microsoft.Storage")
        {
            let p = Cidr::new(STORAGE_IP, 32);
            routes.insert(
                p,
                CompiledRoute {
                    prefix: p,
                    source: "system".into(),
                    next_hop_type: "VirtualNetworkServiceEndpoint".into(),
                    spec: format!("throw {p}"),
                },
            );
        }
        if let Some(rt) = subnet
            .route_table
            .as_ref()
            .and_then(|n| topology.route_tables.iter().find(|t| &t.name == n))
        {
            for r in &rt.routes {
                let Ok(p) = r.address_prefix.parse::<Cidr>() else {
                    continue;
                };
                let spec = match r.next_hop_type.as_str() {
                    "VirtualAppliance" => {
                        let nh: Option<Ipv4Addr> = r
                            .next_hop_ip_address
                            .as_deref()
                            .and_then(|a| a.parse().ok());
                        match nh.and_then(|ip| by_ip.get(&ip)) {
                            Some(l) => format!("{p} via {} dev {} onlink", l.private_ip, l.link),
                            None => format!("blackhole {p}"),
                        }
                    }
                    "Internet" | "VnetLocal" => format!("throw {p}"),
                    _ => format!("blackhole {p}"),
                };
                routes.insert(
                    p,
                    CompiledRoute {
                        prefix: p,
                        source: format!("{}/{}", rt.name, r.name),
                        next_hop_type: r.next_hop_type.clone(),
                        spec,
                    },
                );
            }
        }
        let subnet_links = topology
            .vms
            .iter()
            .filter(|v| v.subnet == subnet.name)
            .filter_map(|v| links.iter().find(|l| l.vm == v.name))
            .map(|l| l.link.clone())
            .collect();
        out.push(SubnetRoutes {
            subnet: subnet.name.clone(),
            table,
            links: subnet_links,
            routes: routes.into_values().collect(),
        });
    }
    out
}

/// `ip -batch` text that (re)builds one subnet table: flush, then add every route.
pub fn table_batch(s: &SubnetRoutes) -> String {
    let mut b = format!("route flush table {}\n", s.table);
    for r in &s.routes {
        b.push_str(&format!("route add {} table {}\n", r.spec, s.table));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tests::BASE;
    use crate::scenario::{apply_cloud_fault, CloudFault, Route, Scenario};

    fn links() -> Vec<VmLink> {
        vec![
            VmLink {
                vm: "source-vm".into(),
                link: "nlt-v0".into(),
                private_ip: "198.18.1.4".parse().unwrap(),
                public_ip: None,
            },
            VmLink {
                vm: "dest-vm".into(),
                link: "nlt-v1".into(),
                private_ip: "198.18.1.5".parse().unwrap(),
                public_ip: None,
            },
        ]
    }

    fn with_route(prefix: &str, hop: &str, ip: Option<&str>) -> Topology {
        let s = Scenario::from_toml_str(BASE).unwrap();
        let f = CloudFault::Route {
            route_table: "rt".into(),
            route: Route {
                name: "r1".into(),
                address_prefix: prefix.into(),
                next_hop_type: hop.into(),
                next_hop_ip_address: ip.map(str::to_string),
            },
            associate_subnet: Some("default".into()),
            before_baseline: false,
        };
        apply_cloud_fault(&s.topology, &f).unwrap().0
    }

    #[test]
    fn system_routes_only() {
        let s = Scenario::from_toml_str(BASE).unwrap();
        let c = compile(&s.topology, &links());
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].table, 100);
        assert_eq!(c[0].links, ["nlt-v0", "nlt-v1"]);
        assert_eq!(
            table_batch(&c[0]),
            "route flush table 100\nroute add throw 0.0.0.0/0 table 100\nroute add throw 198.18.0.0/16 table 100\nroute add throw 198.19.0.10/32 table 100\n"
        );
    }

    #[test]
    fn dead_appliance_and_none_blackhole() {
        let t = with_route("198.18.1.5/32", "VirtualAppliance", Some("198.18.1.100"));
        let c = compile(&t, &links());
        assert!(table_batch(&c[0]).contains("route add blackhole 198.18.1.5/32 table 100"));
        let r = c[0]
            .routes
            .iter()
            .find(|r| r.prefix.to_string() == "198.18.1.5/32")
            .unwrap();
        assert_eq!(r.source, "rt/r1");
        assert_eq!(r.next_hop_type, "VirtualAppliance");
        let t = with_route("198.18.1.5/32", "None", None);
        assert!(table_batch(&compile(&t, &links())[0]).contains("blackhole 198.18.1.5/32"));
    }

    #[test]
    fn live_appliance_forwards_and_default_override() {
        let t = with_route("0.0.0.0/0", "VirtualAppliance", Some("198.18.1.5"));
        let c = compile(&t, &links());
        let b = table_batch(&c[0]);
        assert!(
            b.contains("route add 0.0.0.0/0 via 198.18.1.5 dev nlt-v1 onlink table 100"),
            "{b}"
        );
        assert!(
            !b.contains("throw 0.0.0.0/0"),
            "UDR replaces the system default: {b}"
        );
        assert!(b.contains("throw 198.18.0.0/16"));
    }

    #[test]
    fn internet_and_gateway_hops() {
        let t = with_route("198.19.0.0/16", "Internet", None);
        assert!(table_batch(&compile(&t, &links())[0]).contains("throw 198.19.0.0/16"));
        let t = with_route("198.19.0.0/16", "VirtualNetworkGateway", None);
        assert!(table_batch(&compile(&t, &links())[0]).contains("blackhole 198.19.0.0/16"));
    }
}
