//! `netlab az` against a live lab (root): schema of every read command, NSG / route table /
//! service endpoint round trips checked on real traffic, run-command envelope, the `az`
//! wrapper of `netlab env`, and the lab back at its starting state.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Conn, TestLab};
use serde::Deserialize;
use serde_json::Value;

// ----- types written from Azure's documented response schemas (camelCase) ----------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdRef {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Account {
    id: String,
    tenant_id: String,
    state: String,
    is_default: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceGroup {
    id: String,
    name: String,
    location: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityRule {
    id: String,
    name: String,
    priority: u32,
    access: String,
    direction: String,
    protocol: String,
    source_address_prefix: Option<String>,
    #[serde(default)]
    source_address_prefixes: Vec<String>,
    destination_port_range: Option<String>,
    #[serde(default)]
    destination_port_ranges: Vec<String>,
    provisioning_state: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkSecurityGroup {
    id: String,
    name: String,
    location: String,
    resource_group: String,
    security_rules: Vec<SecurityRule>,
    default_security_rules: Vec<SecurityRule>,
    #[serde(default)]
    network_interfaces: Vec<IdRef>,
    #[serde(default)]
    subnets: Vec<IdRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewNsg {
    #[serde(rename = "NewNSG")]
    new_nsg: NetworkSecurityGroup,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EffectiveRule {
    name: String,
    protocol: String,
    access: String,
    priority: u32,
    direction: String,
    source_port_range: Option<String>,
    destination_port_range: Option<String>,
    destination_port_ranges: Vec<String>,
    source_address_prefixes: Vec<String>,
    destination_address_prefixes: Vec<String>,
    expanded_source_address_prefix: Option<Vec<String>>,
    expanded_destination_address_prefix: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Association {
    subnet: Option<IdRef>,
    network_interface: Option<IdRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EffectiveNsg {
    association: Association,
    effective_security_rules: Vec<EffectiveRule>,
    network_security_group: IdRef,
    tag_map: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EffectiveNsgList {
    value: Vec<EffectiveNsg>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EffectiveRoute {
    name: Option<String>,
    source: String,
    state: String,
    address_prefix: Vec<String>,
    next_hop_type: String,
    next_hop_ip_address: Vec<String>,
    disable_bgp_route_propagation: bool,
}

#[derive(Debug, Deserialize)]
struct EffectiveRouteList {
    value: Vec<EffectiveRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Route {
    id: String,
    name: String,
    address_prefix: String,
    next_hop_type: String,
    next_hop_ip_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteTable {
    id: String,
    name: String,
    routes: Vec<Route>,
    disable_bgp_route_propagation: bool,
    #[serde(default)]
    subnets: Vec<IdRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceEndpoint {
    service: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subnet {
    id: String,
    name: String,
    address_prefix: String,
    network_security_group: Option<IdRef>,
    route_table: Option<IdRef>,
    #[serde(default)]
    service_endpoints: Vec<ServiceEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddressSpace {
    address_prefixes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VirtualNetwork {
    id: String,
    name: String,
    address_space: AddressSpace,
    subnets: Vec<Subnet>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpConfiguration {
    #[serde(rename = "privateIPAddress")]
    private_ip_address: String,
    subnet: IdRef,
    primary: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkInterface {
    id: String,
    name: String,
    ip_configurations: Vec<IpConfiguration>,
    network_security_group: Option<IdRef>,
    virtual_machine: IdRef,
    mac_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkProfile {
    network_interfaces: Vec<IdRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceViewStatus {
    code: String,
    display_status: Option<String>,
    level: String,
    message: Option<String>,
    time: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceView {
    statuses: Vec<InstanceViewStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VirtualMachine {
    id: String,
    name: String,
    network_profile: NetworkProfile,
    instance_view: Option<InstanceView>,
    power_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicIp {
    ip_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmNetwork {
    private_ip_addresses: Vec<String>,
    public_ip_addresses: Vec<PublicIp>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmIp {
    name: String,
    network: VmNetwork,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VmIpEntry {
    virtual_machine: VmIp,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VnetRule {
    virtual_network_resource_id: String,
    action: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IpRule {
    ip_address_or_range: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkRuleSet {
    default_action: String,
    bypass: String,
    ip_rules: Vec<IpRule>,
    virtual_network_rules: Vec<VnetRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkRuleList {
    ip_rules: Vec<IpRule>,
    virtual_network_rules: Vec<VnetRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StorageAccount {
    id: String,
    name: String,
    network_rule_set: NetworkRuleSet,
}

#[derive(Debug, Deserialize)]
struct RunCommandResult {
    value: Vec<InstanceViewStatus>,
}

// ----- helpers ------------------------------------------------------------------------------

const RG: &str = "rg-netlab";

fn az(lab: &TestLab, args: &[&str]) -> Output {
    let mut a = vec!["az", "--prefix", lab.id.as_str()];
    a.extend_from_slice(args);
    lab.nl(&a)
}

/// Runs an az command that must succeed, checks its JSON parses with `jq` as scripts do,
/// and deserialises it into the schema type.
fn az_json<T: serde::de::DeserializeOwned>(lab: &TestLab, args: &[&str]) -> T {
    let out = az(lab, args);
    assert!(
        out.status.success(),
        "az {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut jq = Command::new("jq")
        .args(["-e", "."])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("jq");
    jq.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    assert!(
        jq.wait().unwrap().success(),
        "jq refused the output of az {}",
        args.join(" ")
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "az {}: output does not match the schema ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn az_ok(lab: &TestLab, args: &[&str]) {
    let out = az(lab, args);
    assert!(
        out.status.success(),
        "az {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn put_blob(lab: &TestLab, name: &str) -> String {
    lab.exec_ok(
        "source-vm",
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "x-ms-blob-type: BlockBlob",
            "--data-binary",
            "hello",
            &format!("http://198.19.0.10/netlabartifacts/captures/{name}"),
        ],
    )
}

fn control_plane(lab: &TestLab) -> Value {
    let s = lab.status();
    serde_json::json!({"topology": s["topology"], "faults": s["faults"]})
}

#[test]
fn az_front_end_round_trips_in_a_live_lab() {
    require_lab!();
    let lab = TestLab::up_file(&common::demo().join("use_case_a/scenario.toml"));
    let start = control_plane(&lab);
    let fab = lab.ns("fab");

    // --- schema of the read commands -------------------------------------------------------
    let acct: Account = az_json(&lab, &["account", "show"]);
    assert_eq!(acct.id, "00000000-0000-0000-0000-000000000000");
    assert!(acct.is_default && acct.state == "Enabled" && !acct.tenant_id.is_empty());
    let g: ResourceGroup = az_json(&lab, &["group", "show", "-n", RG]);
    assert!(g.id.ends_with("/resourceGroups/rg-netlab") && g.name == RG && !g.location.is_empty());
    let vm: VirtualMachine = az_json(&lab, &["vm", "show", "-g", RG, "-n", "dest-vm", "-d"]);
    assert!(vm
        .id
        .ends_with("/Microsoft.Compute/virtualMachines/dest-vm"));
    assert_eq!(vm.name, "dest-vm");
    assert_eq!(vm.power_state.as_deref(), Some("VM running"));
    let nic_id = vm.network_profile.network_interfaces[0].id.clone();
    assert!(nic_id.ends_with("/networkInterfaces/dest-vmVMNic"));
    let vms: Vec<VirtualMachine> = az_json(&lab, &["vm", "list", "-g", RG]);
    assert_eq!(vms.len(), 2);
    let iv: VirtualMachine = az_json(
        &lab,
        &["vm", "get-instance-view", "-g", RG, "-n", "dest-vm"],
    );
    let statuses = iv.instance_view.unwrap().statuses;
    assert!(statuses
        .iter()
        .any(|s| s.code == "PowerState/running" && s.level == "Info"));
    let ips: Vec<VmIpEntry> = az_json(
        &lab,
        &["vm", "list-ip-addresses", "-g", RG, "-n", "dest-vm"],
    );
    assert_eq!(ips[0].virtual_machine.name, "dest-vm");
    assert_eq!(
        ips[0].virtual_machine.network.private_ip_addresses,
        vec!["198.18.1.5"]
    );
    assert!(ips[0].virtual_machine.network.public_ip_addresses[0]
        .ip_address
        .starts_with("198.19."));
    let nics: Vec<IdRef> = az_json(
        &lab,
        &["vm", "nic", "list", "-g", RG, "--vm-name", "dest-vm"],
    );
    assert_eq!(nics[0].id, nic_id);
    let nic: NetworkInterface = az_json(
        &lab,
        &["network", "nic", "show", "-g", RG, "-n", "dest-vmVMNic"],
    );
    assert_eq!(nic.id, nic_id);
    assert_eq!(nic.name, "dest-vmVMNic");
    assert_eq!(nic.ip_configurations[0].private_ip_address, "198.18.1.5");
    assert!(nic.ip_configurations[0].primary);
    assert!(nic.ip_configurations[0]
        .subnet
        .id
        .ends_with("/subnets/default"));
    assert!(nic
        .network_security_group
        .unwrap()
        .id
        .ends_with("/dest-vm-nsg"));
    assert!(nic.virtual_machine.id.ends_with("/dest-vm"));
    assert_eq!(nic.mac_address.unwrap().len(), 17);
    let nics: Vec<NetworkInterface> = az_json(&lab, &["network", "nic", "list", "-g", RG]);
    assert_eq!(nics.len(), 2);
    let nsg: NetworkSecurityGroup = az_json(
        &lab,
        &["network", "nsg", "show", "-g", RG, "-n", "dest-vm-nsg"],
    );
    assert_eq!(nsg.name, "dest-vm-nsg");
    assert_eq!(nsg.resource_group, RG);
    assert!(!nsg.location.is_empty() && nsg.id.ends_with("/networkSecurityGroups/dest-vm-nsg"));
    assert_eq!(nsg.default_security_rules.len(), 6);
    assert_eq!(nsg.network_interfaces[0].id, nic_id);
    assert!(nsg.subnets.is_empty());
    let ssh = nsg
        .security_rules
        .iter()
        .find(|r| r.priority == 300)
        .unwrap();
    assert_eq!(ssh.destination_port_range.as_deref(), Some("22"));
    assert_eq!(ssh.provisioning_state, "Succeeded");
    let nsgs: Vec<NetworkSecurityGroup> = az_json(&lab, &["network", "nsg", "list", "-g", RG]);
    assert_eq!(nsgs.len(), 2);
    let rules: Vec<SecurityRule> = az_json(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "list",
            "-g",
            RG,
            "--nsg-name",
            "dest-vm-nsg",
            "--include-default",
        ],
    );
    assert_eq!(rules.len(), 3 + 6);
    let vnet: VirtualNetwork = az_json(
        &lab,
        &["network", "vnet", "show", "-g", RG, "-n", "vnet-netlab"],
    );
    assert_eq!(vnet.address_space.address_prefixes, vec!["198.18.0.0/16"]);
    assert!(vnet.id.ends_with("/virtualNetworks/vnet-netlab") && vnet.name == "vnet-netlab");
    assert_eq!(
        vnet.subnets[0].service_endpoints[0].service,
        "Microsoft.Storage"
    );
    let _: Vec<VirtualNetwork> = az_json(&lab, &["network", "vnet", "list", "-g", RG]);
    let subnets: Vec<Subnet> = az_json(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "list",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
        ],
    );
    assert_eq!(subnets[0].address_prefix, "198.18.1.0/24");
    assert_eq!(subnets[0].name, "default");
    assert!(subnets[0]
        .id
        .ends_with("/virtualNetworks/vnet-netlab/subnets/default"));
    let sa: StorageAccount = az_json(
        &lab,
        &[
            "storage",
            "account",
            "show",
            "-g",
            RG,
            "-n",
            "netlabartifacts",
        ],
    );
    assert!(sa
        .id
        .ends_with("/Microsoft.Storage/storageAccounts/netlabartifacts"));
    assert_eq!(sa.name, "netlabartifacts");
    assert_eq!(sa.network_rule_set.default_action, "Allow");
    assert_eq!(sa.network_rule_set.bypass, "AzureServices");
    let eff: EffectiveRouteList = az_json(
        &lab,
        &[
            "network",
            "nic",
            "show-effective-route-table",
            "-g",
            RG,
            "-n",
            "source-vmVMNic",
        ],
    );
    assert!(eff
        .value
        .iter()
        .all(|r| r.source == "Default" && r.state == "Active"));
    assert!(eff
        .value
        .iter()
        .any(|r| r.address_prefix == vec!["198.18.0.0/16"] && r.next_hop_type == "VnetLocal"));
    assert!(eff
        .value
        .iter()
        .any(|r| r.address_prefix == vec!["10.0.0.0/8"] && r.next_hop_type == "None"));

    // --- error shapes --------------------------------------------------------------------
    let out = az(&lab, &["network", "nsg", "show", "-g", RG, "-n", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ERROR: (ResourceNotFound) The Resource 'Microsoft.Network/networkSecurityGroups/nope' under resource group 'rg-netlab' was not found."),
        "{err}"
    );
    let out = az(
        &lab,
        &[
            "network",
            "nsg",
            "show",
            "-g",
            "other-rg",
            "-n",
            "dest-vm-nsg",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(ResourceGroupNotFound)"));
    let out = az(
        &lab,
        &["network", "nsg", "delete", "-g", RG, "-n", "dest-vm-nsg"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InUseNetworkSecurityGroupCannotBeDeleted")
    );

    // --- NSG deny round trip ---------------------------------------------------------------
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 5001, 3),
        Conn::Connected
    );
    let r: SecurityRule = az_json(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "create",
            "-g",
            RG,
            "--nsg-name",
            "dest-vm-nsg",
            "-n",
            "deny-iperf",
            "--priority",
            "120",
            "--access",
            "Deny",
            "--protocol",
            "Tcp",
            "--direction",
            "Inbound",
            "--source-address-prefixes",
            "198.18.1.0/24",
            "10.9.0.0/16",
            "--destination-port-ranges",
            "5001",
            "6000-6010",
        ],
    );
    assert_eq!(r.access, "Deny");
    assert_eq!(r.direction, "Inbound");
    assert_eq!(r.protocol, "Tcp");
    assert!(r.id.ends_with("/dest-vm-nsg/securityRules/deny-iperf") && r.name == "deny-iperf");
    assert_eq!(r.destination_port_ranges, vec!["5001", "6000-6010"]);
    assert_eq!(
        r.source_address_prefixes,
        vec!["198.18.1.0/24", "10.9.0.0/16"]
    );
    assert!(r.source_address_prefix.is_none());
    let eff: EffectiveNsgList = az_json(
        &lab,
        &[
            "network",
            "nic",
            "list-effective-nsg",
            "-g",
            RG,
            "-n",
            "dest-vmVMNic",
        ],
    );
    assert_eq!(eff.value.len(), 1);
    let g = &eff.value[0];
    assert_eq!(g.association.network_interface.as_ref().unwrap().id, nic_id);
    assert!(g.association.subnet.is_none());
    assert!(g.network_security_group.id.ends_with("/dest-vm-nsg"));
    let deny = g
        .effective_security_rules
        .iter()
        .find(|r| r.name == "securityRules/deny-iperf")
        .expect("the new rule is effective");
    assert_eq!(
        (deny.access.as_str(), deny.priority, deny.direction.as_str()),
        ("Deny", 120, "Inbound")
    );
    assert_eq!(deny.protocol, "Tcp");
    assert_eq!(deny.destination_port_ranges, vec!["5001-5001", "6000-6010"]);
    assert!(deny.destination_port_range.is_none());
    assert_eq!(deny.source_port_range.as_deref(), Some("0-65535"));
    let vnet_in = g
        .effective_security_rules
        .iter()
        .find(|r| r.name == "defaultSecurityRules/AllowVnetInBound")
        .unwrap();
    assert_eq!(vnet_in.protocol, "All");
    assert_eq!(vnet_in.source_address_prefixes, vec!["VirtualNetwork"]);
    assert!(vnet_in
        .expanded_source_address_prefix
        .as_ref()
        .unwrap()
        .contains(&"198.18.0.0/16".to_string()));
    assert!(vnet_in.expanded_destination_address_prefix.is_some());
    assert!(!vnet_in.destination_address_prefixes.is_empty());
    assert!(g.tag_map.contains_key("VirtualNetwork"));
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 5001, 3),
        Conn::TimedOut
    );
    // update (multi-value options replace) and --query / tsv output
    let out = az(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "update",
            "-g",
            RG,
            "--nsg-name",
            "dest-vm-nsg",
            "-n",
            "deny-iperf",
            "--destination-port-ranges",
            "6000",
            "--query",
            "destinationPortRange",
            "-o",
            "tsv",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6000\n");
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 5001, 3),
        Conn::Connected
    );
    az_ok(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "delete",
            "-g",
            RG,
            "--nsg-name",
            "dest-vm-nsg",
            "-n",
            "deny-iperf",
        ],
    );
    let out = az(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "show",
            "-g",
            RG,
            "--nsg-name",
            "dest-vm-nsg",
            "-n",
            "deny-iperf",
        ],
    );
    assert_eq!(out.status.code(), Some(3));

    // --- subnet NSG (association subnet) --------------------------------------------------
    let created: NewNsg = az_json(
        &lab,
        &["network", "nsg", "create", "-g", RG, "-n", "sub-nsg"],
    );
    assert_eq!(created.new_nsg.name, "sub-nsg");
    az_ok(
        &lab,
        &[
            "network",
            "nsg",
            "rule",
            "create",
            "-g",
            RG,
            "--nsg-name",
            "sub-nsg",
            "-n",
            "deny-qperf",
            "--priority",
            "200",
            "--access",
            "Deny",
            "--protocol",
            "Tcp",
            "--destination-port-ranges",
            "19765",
            "-o",
            "none",
        ],
    );
    let s: Subnet = az_json(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "update",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
            "-n",
            "default",
            "--nsg",
            "sub-nsg",
        ],
    );
    assert!(s.network_security_group.unwrap().id.ends_with("/sub-nsg"));
    let eff: EffectiveNsgList = az_json(
        &lab,
        &[
            "network",
            "nic",
            "list-effective-nsg",
            "-g",
            RG,
            "-n",
            "dest-vmVMNic",
        ],
    );
    assert_eq!(eff.value.len(), 2);
    assert!(eff.value[0]
        .association
        .subnet
        .as_ref()
        .unwrap()
        .id
        .ends_with("/subnets/default"));
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 19765, 3),
        Conn::TimedOut
    );
    let s: Subnet = az_json(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "update",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
            "-n",
            "default",
            "--remove",
            "networkSecurityGroup",
        ],
    );
    assert!(s.network_security_group.is_none());
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 19765, 3),
        Conn::Connected
    );
    az_ok(
        &lab,
        &["network", "nsg", "delete", "-g", RG, "-n", "sub-nsg"],
    );

    // --- route table association round trip ---------------------------------------------
    let rt: RouteTable = az_json(
        &lab,
        &["network", "route-table", "create", "-g", RG, "-n", "rt-az"],
    );
    assert!(rt.routes.is_empty() && !rt.disable_bgp_route_propagation && rt.name == "rt-az");
    let route: Route = az_json(
        &lab,
        &[
            "network",
            "route-table",
            "route",
            "create",
            "-g",
            RG,
            "--route-table-name",
            "rt-az",
            "-n",
            "to-dest",
            "--address-prefix",
            "198.18.1.5/32",
            "--next-hop-type",
            "VirtualAppliance",
            "--next-hop-ip-address",
            "198.18.1.100",
        ],
    );
    assert_eq!(route.next_hop_ip_address.as_deref(), Some("198.18.1.100"));
    assert_eq!(
        (route.address_prefix.as_str(), route.next_hop_type.as_str()),
        ("198.18.1.5/32", "VirtualAppliance")
    );
    assert!(route.id.ends_with("/routeTables/rt-az/routes/to-dest") && route.name == "to-dest");
    let s: Subnet = az_json(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "update",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
            "-n",
            "default",
            "--route-table",
            "rt-az",
        ],
    );
    assert!(s.route_table.unwrap().id.ends_with("/routeTables/rt-az"));
    let rt: RouteTable = az_json(
        &lab,
        &["network", "route-table", "show", "-g", RG, "-n", "rt-az"],
    );
    assert!(rt.id.ends_with("/rt-az") && rt.subnets[0].id.ends_with("/subnets/default"));
    let eff: EffectiveRouteList = az_json(
        &lab,
        &[
            "network",
            "nic",
            "show-effective-route-table",
            "-g",
            RG,
            "-n",
            "source-vmVMNic",
        ],
    );
    let user: Vec<&EffectiveRoute> = eff.value.iter().filter(|r| r.source == "User").collect();
    assert_eq!(user.len(), 1);
    assert_eq!(user[0].name.as_deref(), Some("to-dest"));
    assert_eq!(user[0].next_hop_ip_address, vec!["198.18.1.100"]);
    assert_eq!(user[0].state, "Active");
    assert!(eff.value.iter().all(|r| !r.disable_bgp_route_propagation));
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 5001, 3),
        Conn::TimedOut
    );
    let table = az(
        &lab,
        &[
            "network",
            "nic",
            "show-effective-route-table",
            "-g",
            RG,
            "-n",
            "source-vmVMNic",
            "-o",
            "table",
        ],
    );
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["Source", "State", "Address", "Prefix", "Next", "Hop", "Type", "Next", "Hop", "IP"]
    );
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "User",
                    "Active",
                    "198.18.1.5/32",
                    "VirtualAppliance",
                    "198.18.1.100"
                ]),
        "{table}"
    );
    let out = az(
        &lab,
        &["network", "route-table", "delete", "-g", RG, "-n", "rt-az"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "an associated table cannot be deleted"
    );
    // the az rest workaround: GET the subnet, PUT it back without routeTable
    let url = format!(
        "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet-netlab/subnets/default?api-version=2023-09-01"
    );
    let mut arm: Value = az_json(&lab, &["rest", "--method", "get", "--url", &url]);
    assert!(arm["properties"]["routeTable"]["id"]
        .as_str()
        .unwrap()
        .ends_with("/rt-az"));
    arm["properties"]
        .as_object_mut()
        .unwrap()
        .remove("routeTable");
    let body = lab.dir.path().join("subnet.json");
    std::fs::write(&body, arm.to_string()).unwrap();
    let put: Value = az_json(
        &lab,
        &[
            "rest",
            "--method",
            "put",
            "--url",
            &url,
            "--body",
            &format!("@{}", body.display()),
        ],
    );
    assert!(put["properties"].get("routeTable").is_none());
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 5001, 3),
        Conn::Connected
    );
    let routes: Vec<Route> = az_json(
        &lab,
        &[
            "network",
            "route-table",
            "route",
            "list",
            "-g",
            RG,
            "--route-table-name",
            "rt-az",
        ],
    );
    assert_eq!(routes.len(), 1);
    az_ok(
        &lab,
        &[
            "network",
            "route-table",
            "route",
            "delete",
            "-g",
            RG,
            "--route-table-name",
            "rt-az",
            "-n",
            "to-dest",
        ],
    );
    az_ok(
        &lab,
        &["network", "route-table", "delete", "-g", RG, "-n", "rt-az"],
    );
    let fab_routes = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-n", &fab, "route", "show", "table", "100"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!fab_routes.contains("198.18.1.5"), "{fab_routes}");

    // --- service endpoint + storage firewall ------------------------------------------------
    assert_eq!(put_blob(&lab, "a.txt"), "201");
    let sa: StorageAccount = az_json(
        &lab,
        &[
            "storage",
            "account",
            "update",
            "-g",
            RG,
            "-n",
            "netlabartifacts",
            "--default-action",
            "Deny",
        ],
    );
    assert_eq!(sa.network_rule_set.default_action, "Deny");
    assert_eq!(put_blob(&lab, "b.txt"), "403");
    let set: NetworkRuleSet = az_json(
        &lab,
        &[
            "storage",
            "account",
            "network-rule",
            "add",
            "-g",
            RG,
            "--account-name",
            "netlabartifacts",
            "--vnet-name",
            "vnet-netlab",
            "--subnet",
            "default",
        ],
    );
    assert!(set.virtual_network_rules[0]
        .virtual_network_resource_id
        .ends_with("/virtualNetworks/vnet-netlab/subnets/default"));
    assert_eq!(set.virtual_network_rules[0].action, "Allow");
    assert_eq!(put_blob(&lab, "c.txt"), "201");
    let s: Subnet = az_json(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "update",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
            "-n",
            "default",
            "--service-endpoints",
            "",
        ],
    );
    assert!(s.service_endpoints.is_empty());
    assert_eq!(put_blob(&lab, "d.txt"), "403");
    az_ok(
        &lab,
        &[
            "network",
            "vnet",
            "subnet",
            "update",
            "-g",
            RG,
            "--vnet-name",
            "vnet-netlab",
            "-n",
            "default",
            "--service-endpoints",
            "Microsoft.Storage",
            "-o",
            "none",
        ],
    );
    assert_eq!(put_blob(&lab, "e.txt"), "201");
    let set: NetworkRuleSet = az_json(
        &lab,
        &[
            "storage",
            "account",
            "network-rule",
            "add",
            "-g",
            RG,
            "--account-name",
            "netlabartifacts",
            "--ip-address",
            "198.19.255.1",
        ],
    );
    assert_eq!(set.ip_rules[0].ip_address_or_range, "198.19.255.1");
    az_ok(
        &lab,
        &[
            "storage",
            "account",
            "network-rule",
            "remove",
            "-g",
            RG,
            "--account-name",
            "netlabartifacts",
            "--ip-address",
            "198.19.255.1",
            "-o",
            "none",
        ],
    );
    az_ok(
        &lab,
        &[
            "storage",
            "account",
            "network-rule",
            "remove",
            "-g",
            RG,
            "--account-name",
            "netlabartifacts",
            "--vnet-name",
            "vnet-netlab",
            "--subnet",
            "default",
            "-o",
            "none",
        ],
    );
    let list: NetworkRuleList = az_json(
        &lab,
        &[
            "storage",
            "account",
            "network-rule",
            "list",
            "-g",
            RG,
            "--account-name",
            "netlabartifacts",
        ],
    );
    assert!(list.ip_rules.is_empty() && list.virtual_network_rules.is_empty());
    az_ok(
        &lab,
        &[
            "storage",
            "account",
            "update",
            "-g",
            RG,
            "-n",
            "netlabartifacts",
            "--default-action",
            "Allow",
            "-o",
            "none",
        ],
    );

    // --- run-command envelope ----------------------------------------------------------
    let rc: RunCommandResult = az_json(
        &lab,
        &[
            "vm",
            "run-command",
            "invoke",
            "-g",
            RG,
            "-n",
            "dest-vm",
            "--command-id",
            "RunShellScript",
            "--scripts",
            "ip -4 -o addr show dev eth0",
            "echo to-stderr >&2",
        ],
    );
    let st = &rc.value[0];
    assert_eq!(st.code, "ProvisioningState/succeeded");
    assert_eq!(st.display_status.as_deref(), Some("Provisioning succeeded"));
    assert!(st.time.is_none() && st.level == "Info");
    let m = st.message.as_deref().unwrap();
    assert!(m.starts_with("Enable succeeded: \n[stdout]\n"), "{m}");
    assert!(
        m.contains("198.18.1.5/24"),
        "runs in the VM's namespace: {m}"
    );
    assert!(m.ends_with("\n[stderr]\nto-stderr\n"), "{m}");
    let rc: RunCommandResult = az_json(
        &lab,
        &[
            "vm",
            "run-command",
            "invoke",
            "-g",
            RG,
            "-n",
            "dest-vm",
            "--command-id",
            "RunShellScript",
            "--scripts",
            "seq 1 3000; echo LAST",
        ],
    );
    let m = rc.value[0].message.as_deref().unwrap();
    let out = m
        .split("\n[stdout]\n")
        .nth(1)
        .unwrap()
        .split("\n[stderr]\n")
        .next()
        .unwrap();
    assert_eq!(out.len(), 4096, "Azure keeps the last 4096 bytes");
    assert!(out.ends_with("2999\n3000\nLAST\n") && !out.contains("\n1\n2\n3\n"));

    // --- packet capture -> blob ---------------------------------------------------------
    let loc = "netlab-local";
    let cap: Value = az_json(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "create",
            "-g",
            RG,
            "--vm",
            "dest-vm",
            "-n",
            "cap1",
            "--storage-account",
            "netlabartifacts",
            "--time-limit",
            "60",
            "--filters",
            r#"[{"protocol":"TCP","localPort":"5001"}]"#,
        ],
    );
    assert!(cap["id"]
        .as_str()
        .unwrap()
        .ends_with("/networkWatchers/NetworkWatcher_netlab-local/packetCaptures/cap1"));
    assert!(cap["target"]
        .as_str()
        .unwrap()
        .ends_with("/virtualMachines/dest-vm"));
    let out = az(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "create",
            "-g",
            RG,
            "--vm",
            "dest-vm",
            "-n",
            "cap2",
            "--storage-account",
            "netlabartifacts",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "one active capture per VM");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AnotherOperationInProgress"));
    let st: Value = az_json(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "show-status",
            "-l",
            loc,
            "-n",
            "cap1",
        ],
    );
    assert_eq!(st["packetCaptureStatus"], "Running");
    for _ in 0..3 {
        assert_eq!(
            lab.connect("source-vm", "198.18.1.5", 5001, 3),
            Conn::Connected
        );
    }
    assert_eq!(
        lab.connect("source-vm", "198.18.1.5", 19765, 3),
        Conn::Connected
    );
    common::sleep_ms(300);
    az_ok(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "stop",
            "-l",
            loc,
            "-n",
            "cap1",
        ],
    );
    let st: Value = az_json(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "show-status",
            "-l",
            loc,
            "-n",
            "cap1",
        ],
    );
    assert_eq!(
        (
            st["packetCaptureStatus"].as_str(),
            st["stopReason"].as_str()
        ),
        (Some("Stopped"), Some("Manual"))
    );
    let list: Vec<Value> = az_json(
        &lab,
        &["network", "watcher", "packet-capture", "list", "-l", loc],
    );
    assert_eq!(list.len(), 1);
    let blobs: Vec<Value> = az_json(
        &lab,
        &[
            "storage",
            "blob",
            "list",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "--prefix",
            "00000000",
            "--auth-mode",
            "login",
        ],
    );
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let name = blobs[0]["name"].as_str().unwrap().to_string();
    assert!(
        name.ends_with(".cap") && name.contains("/dest-vm/cap1_"),
        "{name}"
    );
    let pcap = lab.dir.path().join("cap.pcap");
    az_ok(
        &lab,
        &[
            "storage",
            "blob",
            "download",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            &name,
            "-f",
            pcap.to_str().unwrap(),
            "-o",
            "none",
        ],
    );
    let shown = String::from_utf8_lossy(
        &Command::new("tcpdump")
            .args(["-nr", pcap.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        shown.contains("198.18.1.4.") && shown.contains("> 198.18.1.5.5001: Flags [S]"),
        "{shown}"
    );
    assert!(
        !shown.contains(".19765"),
        "the filter keeps only port 5001: {shown}"
    );
    let b: Value = az_json(
        &lab,
        &[
            "storage",
            "blob",
            "show",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            &name,
        ],
    );
    assert_eq!(
        b["properties"]["contentLength"].as_u64(),
        Some(std::fs::metadata(&pcap).unwrap().len())
    );
    let up = lab.dir.path().join("up.txt");
    std::fs::write(&up, "hello blob").unwrap();
    az_ok(
        &lab,
        &[
            "storage",
            "blob",
            "upload",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            "notes/up.txt",
            "-f",
            up.to_str().unwrap(),
            "--auth-mode",
            "key",
            "-o",
            "none",
        ],
    );
    let out = az(
        &lab,
        &[
            "storage",
            "blob",
            "upload",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            "notes/up.txt",
            "-f",
            up.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "no overwrite without --overwrite"
    );
    az_ok(
        &lab,
        &[
            "storage",
            "blob",
            "delete",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            "notes/up.txt",
        ],
    );
    let out = az(
        &lab,
        &[
            "storage",
            "blob",
            "show",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "-n",
            "notes/up.txt",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    az_ok(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "delete",
            "-l",
            loc,
            "-n",
            "cap1",
        ],
    );
    let list: Vec<Value> = az_json(
        &lab,
        &["network", "watcher", "packet-capture", "list", "-l", loc],
    );
    assert!(list.is_empty());
    assert!(lab.status()["vms"][1]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["alive"] == true));
    // time limit: tcpdump ends by itself and the pcap is uploaded when next looked at
    az_ok(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "create",
            "-g",
            RG,
            "--vm",
            "source-vm",
            "-n",
            "short",
            "--storage-account",
            "netlabartifacts",
            "--storage-path",
            "http://198.19.0.10/captures/limits",
            "--time-limit",
            "1",
            "-o",
            "none",
        ],
    );
    common::sleep_ms(1600);
    let st: Value = az_json(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "show-status",
            "-l",
            loc,
            "-n",
            "short",
        ],
    );
    assert_eq!(
        (
            st["packetCaptureStatus"].as_str(),
            st["stopReason"].as_str()
        ),
        (Some("Stopped"), Some("TimeExceeded")),
        "{st}"
    );
    // byte limit: stopped by the next command once the file is past it
    az_ok(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "create",
            "-g",
            RG,
            "--vm",
            "source-vm",
            "-n",
            "small",
            "--storage-account",
            "netlabartifacts",
            "--storage-path",
            "http://198.19.0.10/captures/limits",
            "--capture-limit",
            "200",
            "-o",
            "none",
        ],
    );
    for _ in 0..3 {
        assert_eq!(
            lab.connect("source-vm", "198.18.1.5", 5001, 3),
            Conn::Connected
        );
    }
    common::sleep_ms(200);
    let st: Value = az_json(
        &lab,
        &[
            "network",
            "watcher",
            "packet-capture",
            "show-status",
            "-l",
            loc,
            "-n",
            "small",
        ],
    );
    assert_eq!(st["stopReason"], "SessionMaximumBytesLimitExceeded", "{st}");
    let blobs: Vec<Value> = az_json(
        &lab,
        &[
            "storage",
            "blob",
            "list",
            "--account-name",
            "netlabartifacts",
            "-c",
            "captures",
            "--prefix",
            "limits/",
        ],
    );
    assert_eq!(blobs.len(), 2, "{blobs:?}");
    for n in ["short", "small"] {
        az_ok(
            &lab,
            &[
                "network",
                "watcher",
                "packet-capture",
                "delete",
                "-l",
                loc,
                "-n",
                n,
            ],
        );
    }

    // --- the az wrapper of netlab env --------------------------------------------------
    let env = lab.ok(&["env"]);
    let line = env
        .lines()
        .find(|l| l.starts_with("export PATH="))
        .expect("PATH export");
    let dir = line
        .trim_start_matches("export PATH=\"")
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let wrapped = Command::new(format!("{dir}/az"))
        .args([
            "network",
            "nsg",
            "show",
            "-g",
            RG,
            "-n",
            "dest-vm-nsg",
            "--query",
            "name",
            "-o",
            "tsv",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&wrapped.stdout),
        "dest-vm-nsg\n",
        "{}",
        String::from_utf8_lossy(&wrapped.stderr)
    );

    // --- back to the start ---------------------------------------------------------------
    assert_eq!(control_plane(&lab), start);
    let out = lab.down();
    assert!(out.status.success());
    assert!(
        !std::path::Path::new(&dir).exists(),
        "down removes the wrapper"
    );
}
