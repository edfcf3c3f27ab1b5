//! Azure's JSON shapes (ARM resources as the `az` CLI prints them: camelCase, ARM ids),
//! built from the lab topology. Pure functions: no lab access.

use serde_json::{json, Map, Value};

use crate::lab::STORAGE_IP;
use crate::scenario::{Nsg, NsgRule, Route, RouteTable, StorageAccount, Subnet, Topology, Vm};

/// Azure's tag for the load balancer probe address.
pub const AZURE_LB: &str = "168.63.129.16/32";
/// Prefixes Azure routes to `None` by default (RFC 1918 and RFC 6598).
pub const DEFAULT_NONE_PREFIXES: [&str; 4] = [
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.168.0.0/16",
];

/// `/subscriptions/<sub>/resourceGroups/<rg>`.
pub fn rg_id(t: &Topology) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}",
        t.subscription_id, t.resource_group
    )
}

/// An ARM id of a resource of a provider type (`Microsoft.Network/networkSecurityGroups`).
pub fn res_id(t: &Topology, kind: &str, name: &str) -> String {
    format!("{}/providers/{kind}/{name}", rg_id(t))
}

/// Id of an NSG.
pub fn nsg_id(t: &Topology, n: &str) -> String {
    res_id(t, "Microsoft.Network/networkSecurityGroups", n)
}
/// Id of a route table.
pub fn rt_id(t: &Topology, n: &str) -> String {
    res_id(t, "Microsoft.Network/routeTables", n)
}
/// Id of the VNet.
pub fn vnet_id(t: &Topology) -> String {
    res_id(t, "Microsoft.Network/virtualNetworks", &t.vnet.name)
}
/// Id of a subnet.
pub fn subnet_id(t: &Topology, n: &str) -> String {
    format!("{}/subnets/{n}", vnet_id(t))
}
/// The NIC name of a VM (az vm create's default naming).
pub fn nic_name(vm: &str) -> String {
    format!("{vm}VMNic")
}
/// Id of a VM's NIC.
pub fn nic_id(t: &Topology, vm: &str) -> String {
    res_id(t, "Microsoft.Network/networkInterfaces", &nic_name(vm))
}
/// The public IP resource name of a VM.
pub fn pip_name(vm: &str) -> String {
    format!("{vm}PublicIP")
}
/// Id of a VM.
pub fn vm_id(t: &Topology, vm: &str) -> String {
    res_id(t, "Microsoft.Compute/virtualMachines", vm)
}
/// Id of a storage account.
pub fn sa_id(t: &Topology, n: &str) -> String {
    res_id(t, "Microsoft.Storage/storageAccounts", n)
}

fn etag(seed: &str) -> String {
    // A stable etag per content, as Azure's change on every update.
    use md5::{Digest, Md5};
    let d = Md5::digest(seed.as_bytes());
    let h: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "W/\"{}-{}-{}-{}-{}\"",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn guid(seed: &str) -> String {
    let e = etag(&format!("guid:{seed}"));
    e.trim_start_matches("W/\"")
        .trim_end_matches('"')
        .to_string()
}

/// Canonical protocol spelling (`*`, `Tcp`, `Udp`, `Icmp`, `Esp`, `Ah`).
pub fn canonical_protocol(p: &str) -> Option<&'static str> {
    ["*", "Tcp", "Udp", "Icmp", "Esp", "Ah"]
        .into_iter()
        .find(|c| c.eq_ignore_ascii_case(p))
}

/// One NSG security rule (as in `az network nsg rule show`).
pub fn rule_json(t: &Topology, nsg: &str, r: &NsgRule, default: bool) -> Value {
    let coll = if default {
        "defaultSecurityRules"
    } else {
        "securityRules"
    };
    let mut m = Map::new();
    m.insert("access".into(), json!(r.access));
    if !r.description.is_empty() {
        m.insert("description".into(), json!(r.description));
    }
    let pair = |m: &mut Map<String, Value>, one: &str, many: &str, v: Vec<String>| {
        if v.len() == 1 {
            m.insert(one.into(), json!(v[0]));
            m.insert(many.into(), json!([]));
        } else if v.is_empty() {
            m.insert(one.into(), json!("*"));
            m.insert(many.into(), json!([]));
        } else {
            m.insert(many.into(), json!(v));
        }
    };
    pair(
        &mut m,
        "destinationAddressPrefix",
        "destinationAddressPrefixes",
        r.destinations(),
    );
    pair(
        &mut m,
        "destinationPortRange",
        "destinationPortRanges",
        r.destination_ports(),
    );
    pair(
        &mut m,
        "sourceAddressPrefix",
        "sourceAddressPrefixes",
        r.sources(),
    );
    pair(
        &mut m,
        "sourcePortRange",
        "sourcePortRanges",
        r.source_ports(),
    );
    m.insert("direction".into(), json!(r.direction));
    let id = format!("{}/{coll}/{}", nsg_id(t, nsg), r.name);
    m.insert("etag".into(), json!(etag(&format!("{id}{r:?}"))));
    m.insert("id".into(), json!(id));
    m.insert("name".into(), json!(r.name));
    m.insert("priority".into(), json!(r.priority));
    m.insert(
        "protocol".into(),
        json!(canonical_protocol(&r.protocol).unwrap_or("*")),
    );
    m.insert("provisioningState".into(), json!("Succeeded"));
    m.insert("resourceGroup".into(), json!(t.resource_group));
    m.insert(
        "type".into(),
        json!(format!("Microsoft.Network/networkSecurityGroups/{coll}")),
    );
    Value::Object(m)
}

/// An NSG (as in `az network nsg show`).
pub fn nsg_json(t: &Topology, n: &Nsg) -> Value {
    let mut defaults = crate::nsg::default_rules(true);
    defaults.extend(crate::nsg::default_rules(false));
    let subnets: Vec<Value> = t
        .vnet
        .subnets
        .iter()
        .filter(|s| s.nsg.as_deref() == Some(&n.name))
        .map(|s| json!({"id": subnet_id(t, &s.name), "resourceGroup": t.resource_group}))
        .collect();
    let nics: Vec<Value> = t
        .vms
        .iter()
        .filter(|v| v.nsg.as_deref() == Some(&n.name))
        .map(|v| json!({"id": nic_id(t, &v.name), "resourceGroup": t.resource_group}))
        .collect();
    let mut v = json!({
        "defaultSecurityRules": defaults.iter().map(|r| rule_json(t, &n.name, r, true)).collect::<Vec<_>>(),
        "etag": etag(&format!("{n:?}")),
        "id": nsg_id(t, &n.name),
        "location": t.location,
        "name": n.name,
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "resourceGuid": guid(&nsg_id(t, &n.name)),
        "securityRules": n.rules.iter().map(|r| rule_json(t, &n.name, r, false)).collect::<Vec<_>>(),
        "type": "Microsoft.Network/networkSecurityGroups",
    });
    if !subnets.is_empty() {
        v["subnets"] = json!(subnets);
    }
    if !nics.is_empty() {
        v["networkInterfaces"] = json!(nics);
    }
    v
}

/// One route (as in `az network route-table route show`).
pub fn route_json(t: &Topology, table: &str, r: &Route) -> Value {
    let id = format!("{}/routes/{}", rt_id(t, table), r.name);
    let mut v = json!({
        "addressPrefix": r.address_prefix,
        "etag": etag(&format!("{id}{r:?}")),
        "hasBgpOverride": false,
        "id": id,
        "name": r.name,
        "nextHopType": r.next_hop_type,
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "type": "Microsoft.Network/routeTables/routes",
    });
    if let Some(ip) = &r.next_hop_ip_address {
        v["nextHopIpAddress"] = json!(ip);
    }
    v
}

/// A route table (as in `az network route-table show`).
pub fn route_table_json(t: &Topology, rt: &RouteTable) -> Value {
    let subnets: Vec<Value> = t
        .vnet
        .subnets
        .iter()
        .filter(|s| s.route_table.as_deref() == Some(&rt.name))
        .map(|s| json!({"id": subnet_id(t, &s.name), "resourceGroup": t.resource_group}))
        .collect();
    let mut v = json!({
        "disableBgpRoutePropagation": false,
        "etag": etag(&format!("{rt:?}")),
        "id": rt_id(t, &rt.name),
        "location": t.location,
        "name": rt.name,
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "resourceGuid": guid(&rt_id(t, &rt.name)),
        "routes": rt.routes.iter().map(|r| route_json(t, &rt.name, r)).collect::<Vec<_>>(),
        "type": "Microsoft.Network/routeTables",
    });
    if !subnets.is_empty() {
        v["subnets"] = json!(subnets);
    }
    v
}

/// A subnet (as in `az network vnet subnet show`).
pub fn subnet_json(t: &Topology, s: &Subnet) -> Value {
    let ipconfigs: Vec<Value> = t
        .vms
        .iter()
        .filter(|v| v.subnet == s.name)
        .map(|v| {
            json!({"id": format!("{}/ipConfigurations/ipconfig1", nic_id(t, &v.name)),
                   "resourceGroup": t.resource_group})
        })
        .collect();
    let mut v = json!({
        "addressPrefix": s.address_prefix,
        "delegations": [],
        "etag": etag(&format!("{s:?}")),
        "id": subnet_id(t, &s.name),
        "name": s.name,
        "privateEndpointNetworkPolicies": "Disabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "type": "Microsoft.Network/virtualNetworks/subnets",
    });
    if !ipconfigs.is_empty() {
        v["ipConfigurations"] = json!(ipconfigs);
    }
    if let Some(n) = &s.nsg {
        v["networkSecurityGroup"] = json!({"id": nsg_id(t, n), "resourceGroup": t.resource_group});
    }
    if let Some(r) = &s.route_table {
        v["routeTable"] = json!({"id": rt_id(t, r), "resourceGroup": t.resource_group});
    }
    if !s.service_endpoints.is_empty() {
        v["serviceEndpoints"] = json!(s
            .service_endpoints
            .iter()
            .map(|e| json!({"locations": [t.location], "provisioningState": "Succeeded", "service": e}))
            .collect::<Vec<_>>());
    }
    v
}

/// The VNet (as in `az network vnet show`).
pub fn vnet_json(t: &Topology) -> Value {
    json!({
        "addressSpace": {"addressPrefixes": t.vnet.address_space},
        "enableDdosProtection": false,
        "etag": etag(&format!("{:?}", t.vnet)),
        "id": vnet_id(t),
        "location": t.location,
        "name": t.vnet.name,
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "resourceGuid": guid(&vnet_id(t)),
        "subnets": t.vnet.subnets.iter().map(|s| subnet_json(t, s)).collect::<Vec<_>>(),
        "type": "Microsoft.Network/virtualNetworks",
        "virtualNetworkPeerings": [],
    })
}

/// Live facts about a VM that the topology does not hold.
#[derive(Debug, Clone, Default)]
pub struct VmFacts {
    /// Lab public IP.
    pub public_ip: String,
    /// `AA-BB-…` MAC of eth0, if read.
    pub mac: Option<String>,
    /// Whether the VM's namespace exists (power state running).
    pub running: bool,
}

/// A NIC (as in `az network nic show`).
pub fn nic_json(t: &Topology, vm: &Vm, f: &VmFacts) -> Value {
    let mut v = json!({
        "auxiliaryMode": "None",
        "disableTcpStateTracking": false,
        "dnsSettings": {"appliedDnsServers": [], "dnsServers": []},
        "enableAcceleratedNetworking": false,
        "enableIPForwarding": false,
        "etag": etag(&format!("{vm:?}")),
        "id": nic_id(t, &vm.name),
        "ipConfigurations": [{
            "etag": etag(&format!("ipc{vm:?}")),
            "id": format!("{}/ipConfigurations/ipconfig1", nic_id(t, &vm.name)),
            "name": "ipconfig1",
            "primary": true,
            "privateIPAddress": vm.private_ip,
            "privateIPAddressVersion": "IPv4",
            "privateIPAllocationMethod": "Static",
            "provisioningState": "Succeeded",
            "publicIPAddress": {
                "id": res_id(t, "Microsoft.Network/publicIPAddresses", &pip_name(&vm.name)),
                "resourceGroup": t.resource_group
            },
            "resourceGroup": t.resource_group,
            "subnet": {"id": subnet_id(t, &vm.subnet), "resourceGroup": t.resource_group},
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations"
        }],
        "location": t.location,
        "macAddress": f.mac,
        "name": nic_name(&vm.name),
        "nicType": "Standard",
        "primary": true,
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "resourceGuid": guid(&nic_id(t, &vm.name)),
        "tapConfigurations": [],
        "type": "Microsoft.Network/networkInterfaces",
        "virtualMachine": {"id": vm_id(t, &vm.name), "resourceGroup": t.resource_group},
        "vnetEncryptionSupported": false,
    });
    if let Some(n) = &vm.nsg {
        v["networkSecurityGroup"] = json!({"id": nsg_id(t, n), "resourceGroup": t.resource_group});
    }
    v
}

/// A VM (as in `az vm show`; `details` adds what `--show-details` adds).
pub fn vm_json(t: &Topology, vm: &Vm, f: &VmFacts, details: bool) -> Value {
    let mut v = json!({
        "hardwareProfile": {"vmSize": "Standard_B1s"},
        "id": vm_id(t, &vm.name),
        "location": t.location,
        "name": vm.name,
        "networkProfile": {"networkInterfaces": [
            {"id": nic_id(t, &vm.name), "primary": true, "resourceGroup": t.resource_group}
        ]},
        "osProfile": {
            "adminUsername": "root",
            "computerName": vm.name,
            "linuxConfiguration": {"disablePasswordAuthentication": true, "provisionVMAgent": true}
        },
        "provisioningState": "Succeeded",
        "resourceGroup": t.resource_group,
        "storageProfile": {"osDisk": {"osType": "Linux", "name": format!("{}_OsDisk_1", vm.name)}},
        "type": "Microsoft.Compute/virtualMachines",
        "vmId": guid(&vm_id(t, &vm.name)),
    });
    if details {
        v["powerState"] = json!(power_state(f).1);
        v["privateIps"] = json!(vm.private_ip);
        v["publicIps"] = json!(f.public_ip);
        v["fqdns"] = json!("");
        v["macAddresses"] = json!(f.mac.clone().unwrap_or_default());
    }
    v
}

fn power_state(f: &VmFacts) -> (&'static str, &'static str) {
    if f.running {
        ("PowerState/running", "VM running")
    } else {
        ("PowerState/stopped", "VM stopped")
    }
}

/// `az vm get-instance-view`: the VM with its `instanceView`.
pub fn vm_instance_view_json(t: &Topology, vm: &Vm, f: &VmFacts) -> Value {
    let mut v = vm_json(t, vm, f, false);
    let (code, display) = power_state(f);
    v["instanceView"] = json!({
        "computerName": vm.name,
        "osName": "linux",
        "statuses": [
            {"code": "ProvisioningState/succeeded", "displayStatus": "Provisioning succeeded",
             "level": "Info", "message": null, "time": null},
            {"code": code, "displayStatus": display, "level": "Info", "message": null, "time": null}
        ],
        "vmAgent": {"statuses": [{"code": "ProvisioningState/succeeded", "displayStatus": "Ready",
                                  "level": "Info", "message": "Guest Agent is running", "time": null}],
                    "vmAgentVersion": "netlab"}
    });
    v
}

/// `az vm list-ip-addresses` entry.
pub fn vm_ip_json(t: &Topology, vm: &Vm, f: &VmFacts) -> Value {
    json!({"virtualMachine": {
        "name": vm.name,
        "network": {
            "privateIpAddresses": [vm.private_ip],
            "publicIpAddresses": [{
                "id": res_id(t, "Microsoft.Network/publicIPAddresses", &pip_name(&vm.name)),
                "ipAddress": f.public_ip,
                "ipAllocationMethod": "Static",
                "name": pip_name(&vm.name),
                "resourceGroup": t.resource_group,
                "zone": null
            }]
        },
        "resourceGroup": t.resource_group
    }})
}

fn expand_ports(v: Vec<String>) -> Vec<String> {
    if v.is_empty() {
        return vec!["0-65535".into()];
    }
    v.into_iter()
        .map(|p| {
            if p == "*" {
                "0-65535".to_string()
            } else if p.contains('-') {
                p
            } else {
                format!("{p}-{p}")
            }
        })
        .collect()
}

fn tag_expansion(t: &Topology, tag: &str) -> Option<Vec<String>> {
    match tag {
        "VirtualNetwork" => {
            let mut v = t.vnet.address_space.clone();
            v.push(AZURE_LB.into());
            Some(v)
        }
        "AzureLoadBalancer" => Some(vec![AZURE_LB.into()]),
        _ => None,
    }
}

fn effective_rule(
    t: &Topology,
    r: &NsgRule,
    default: bool,
    tags: &mut Map<String, Value>,
) -> Value {
    let coll = if default {
        "defaultSecurityRules"
    } else {
        "securityRules"
    };
    let addr = |v: Vec<String>| -> Vec<String> {
        if v.is_empty() {
            return vec!["0.0.0.0/0".into()];
        }
        v.into_iter()
            .map(|p| if p == "*" { "0.0.0.0/0".into() } else { p })
            .collect()
    };
    let src = addr(r.sources());
    let dst = addr(r.destinations());
    let mut expanded = |v: &[String]| -> Value {
        if v.len() == 1 {
            if let Some(e) = tag_expansion(t, &v[0]) {
                tags.insert(v[0].clone(), json!(e));
                return json!(e);
            }
        }
        Value::Null
    };
    let es = expanded(&src);
    let ed = expanded(&dst);
    let sp = expand_ports(r.source_ports());
    let dp = expand_ports(r.destination_ports());
    let one = |v: &[String]| -> Value {
        if v.len() == 1 {
            json!(v[0])
        } else {
            Value::Null
        }
    };
    let proto = match canonical_protocol(&r.protocol).unwrap_or("*") {
        "*" => "All",
        p => p,
    };
    json!({
        "access": r.access,
        "destinationAddressPrefix": one(&dst),
        "destinationAddressPrefixes": dst,
        "destinationPortRange": one(&dp),
        "destinationPortRanges": dp,
        "direction": r.direction,
        "expandedDestinationAddressPrefix": ed,
        "expandedSourceAddressPrefix": es,
        "name": format!("{coll}/{}", r.name),
        "priority": r.priority,
        "protocol": proto,
        "sourceAddressPrefix": one(&src),
        "sourceAddressPrefixes": src,
        "sourcePortRange": one(&sp),
        "sourcePortRanges": sp,
    })
}

/// `az network nic list-effective-nsg` for a VM's NIC: `{"value": [...]}` (ARM's
/// EffectiveNetworkSecurityGroupListResult, which az 2.91 prints as is) with the subnet NSG
/// (association `subnet`) and the NIC NSG (association `networkInterface`), each with its
/// effective rules.
pub fn effective_nsg_json(t: &Topology, vm: &Vm) -> Value {
    let mut groups = Vec::new();
    let subnet = t.subnet(&vm.subnet);
    let mut assoc: Vec<(Value, &str)> = Vec::new();
    if let Some(n) = subnet.and_then(|s| s.nsg.as_deref()) {
        assoc.push((json!({"subnet": {"id": subnet_id(t, &vm.subnet)}}), n));
    }
    if let Some(n) = vm.nsg.as_deref() {
        assoc.push((json!({"networkInterface": {"id": nic_id(t, &vm.name)}}), n));
    }
    for (a, name) in assoc {
        let Some(n) = t.nsg(name) else { continue };
        let mut tags = Map::new();
        let mut rules = Vec::new();
        for inbound in [true, false] {
            for r in crate::nsg::ordered_rules(n, inbound) {
                let default = r.priority >= 65000;
                rules.push(effective_rule(t, &r, default, &mut tags));
            }
        }
        groups.push(json!({
            "association": a,
            "effectiveSecurityRules": rules,
            "networkSecurityGroup": {"id": nsg_id(t, name), "resourceGroup": t.resource_group},
            "tagMap": Value::Object(tags),
        }));
    }
    json!({"value": groups})
}

/// `az network nic show-effective-route-table`: Azure's system routes for the VM's subnet
/// (VNet space, 0.0.0.0/0 Internet, the RFC 1918/6598 prefixes to None, the storage
/// service endpoint), with those a user route overrides marked `Invalid`, then the user
/// routes of the associated route table.
pub fn effective_routes_json(t: &Topology, vm: &Vm) -> Value {
    let subnet = t.subnet(&vm.subnet);
    let user: Vec<Route> = subnet
        .and_then(|s| s.route_table.as_deref())
        .and_then(|n| t.route_tables.iter().find(|r| r.name == n))
        .map(|r| r.routes.clone())
        .unwrap_or_default();
    let overridden = |p: &str| user.iter().any(|u| u.address_prefix == p);
    let sys = |prefix: &str, hop: &str| -> Value {
        json!({
            "addressPrefix": [prefix],
            "disableBgpRoutePropagation": false,
            "name": null,
            "nextHopIpAddress": [],
            "nextHopType": hop,
            "source": "Default",
            "state": if overridden(prefix) { "Invalid" } else { "Active" },
        })
    };
    let mut v = Vec::new();
    for p in &t.vnet.address_space {
        v.push(sys(p, "VnetLocal"));
    }
    v.push(sys("0.0.0.0/0", "Internet"));
    for p in DEFAULT_NONE_PREFIXES {
        v.push(sys(p, "None"));
    }
    if subnet.is_some_and(|s| s.service_endpoints.iter().any(|e| e == "Microsoft.Storage")) {
        v.push(sys(
            &format!("{STORAGE_IP}/32"),
            "VirtualNetworkServiceEndpoint",
        ));
    }
    for r in &user {
        v.push(json!({
            "addressPrefix": [r.address_prefix],
            "disableBgpRoutePropagation": false,
            "name": r.name,
            "nextHopIpAddress": r.next_hop_ip_address.iter().collect::<Vec<_>>(),
            "nextHopType": r.next_hop_type,
            "source": "User",
            "state": "Active",
        }));
    }
    json!({"value": v})
}

fn vnet_rule_subnet<'a>(t: &'a Topology, rule: &'a str) -> (&'a str, &'a str) {
    match rule.split_once('/') {
        Some((v, s)) => (v, s),
        None => (t.vnet.name.as_str(), rule),
    }
}

/// The storage account's `networkRuleSet`.
pub fn network_rule_set_json(t: &Topology, a: &StorageAccount) -> Value {
    json!({
        "bypass": "AzureServices",
        "defaultAction": a.default_action,
        "ipRules": a.ip_rules.iter().map(|ip| json!({"action": "Allow", "ipAddressOrRange": ip})).collect::<Vec<_>>(),
        "resourceAccessRules": [],
        "virtualNetworkRules": a.vnet_rules.iter().map(|r| {
            let (v, s) = vnet_rule_subnet(t, r);
            json!({"action": "Allow",
                   "state": "Succeeded",
                   "virtualNetworkResourceId": format!("{}/subnets/{s}", res_id(t, "Microsoft.Network/virtualNetworks", v))})
        }).collect::<Vec<_>>(),
    })
}

/// A storage account (as in `az storage account show`).
pub fn storage_account_json(t: &Topology, a: &StorageAccount) -> Value {
    json!({
        "accessTier": "Hot",
        "allowBlobPublicAccess": false,
        "enableHttpsTrafficOnly": false,
        "id": sa_id(t, &a.name),
        "kind": "StorageV2",
        "location": t.location,
        "minimumTlsVersion": "TLS1_2",
        "name": a.name,
        "networkRuleSet": network_rule_set_json(t, a),
        "primaryEndpoints": {"blob": format!("http://{STORAGE_IP}/{}/", a.name)},
        "primaryLocation": t.location,
        "provisioningState": "Succeeded",
        "publicNetworkAccess": "Enabled",
        "resourceGroup": t.resource_group,
        "sku": {"name": "Standard_LRS", "tier": "Standard"},
        "statusOfPrimary": "available",
        "type": "Microsoft.Storage/storageAccounts",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn topo() -> Topology {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../demo/use_case_e/scenario.toml");
        let sc = Scenario::load(&p).unwrap();
        let f = sc.faults.cloud[0].clone();
        crate::scenario::apply_cloud_fault(&sc.topology, &f)
            .unwrap()
            .0
    }

    #[test]
    fn effective_routes_mark_overridden_system_routes() {
        let t = topo();
        let vm = t.vm("source-vm").unwrap().clone();
        let v = effective_routes_json(&t, &vm);
        let routes = v["value"].as_array().unwrap();
        let user: Vec<&Value> = routes.iter().filter(|r| r["source"] == "User").collect();
        assert_eq!(user.len(), 1);
        assert_eq!(user[0]["addressPrefix"], json!(["198.18.1.5/32"]));
        assert_eq!(user[0]["nextHopType"], "VirtualAppliance");
        assert_eq!(user[0]["nextHopIpAddress"], json!(["198.18.1.100"]));
        assert!(routes
            .iter()
            .any(|r| r["addressPrefix"] == json!(["0.0.0.0/0"]) && r["state"] == "Active"));
        assert!(routes
            .iter()
            .any(|r| r["nextHopType"] == "VirtualNetworkServiceEndpoint"));
    }

    #[test]
    fn effective_nsg_expands_ports_and_tags() {
        let t = topo();
        let vm = t.vm("dest-vm").unwrap().clone();
        let v = effective_nsg_json(&t, &vm);
        let g = &v["value"][0];
        assert!(g["association"]["networkInterface"]["id"]
            .as_str()
            .unwrap()
            .ends_with("/networkInterfaces/dest-vmVMNic"));
        let rules = g["effectiveSecurityRules"].as_array().unwrap();
        let deny_all = rules
            .iter()
            .find(|r| r["name"] == "defaultSecurityRules/DenyAllInBound")
            .unwrap();
        assert_eq!(deny_all["protocol"], "All");
        assert_eq!(deny_all["destinationPortRange"], "0-65535");
        let vnet = rules
            .iter()
            .find(|r| r["name"] == "defaultSecurityRules/AllowVnetInBound")
            .unwrap();
        assert_eq!(
            vnet["expandedSourceAddressPrefix"],
            json!(["198.18.0.0/16", AZURE_LB])
        );
        assert!(g["tagMap"]["VirtualNetwork"].is_array());
        let ssh = rules
            .iter()
            .find(|r| r["name"].as_str().unwrap().starts_with("securityRules/"))
            .unwrap();
        assert!(ssh["destinationPortRange"].as_str().unwrap().contains('-'));
    }
}
