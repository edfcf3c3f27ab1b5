//! Typed models of the Azure resources the tools read, written from Azure's documented
//! response schemas (Microsoft.Network REST API, as printed by `az … -o json`).
//!
//! Azure wraps lists in several ways: a bare JSON array (`az network nsg list`), a `value`
//! wrapper (`az network nic show-effective-route-table`, REST list results), and a
//! `networkSecurityGroups` wrapper (`az network nic list-effective-nsg`). [`parse_list`]
//! accepts each of them, and invalid JSON is always an error, never an empty list.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Why a JSON document could not be turned into a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what} from az: {detail}")]
pub struct MalformedJson {
    /// What was being parsed (e.g. `effective NSG list`).
    pub what: String,
    /// The parser's message.
    pub detail: String,
}

fn malformed(what: &str, detail: impl std::fmt::Display) -> MalformedJson {
    MalformedJson {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// Parses a list that Azure may print bare (`[...]`) or wrapped in an object under one of
/// `wrappers` (e.g. `value`, `networkSecurityGroups`). An object without any of those keys,
/// a scalar, or invalid JSON is an error.
pub fn parse_list<T: DeserializeOwned>(
    text: &str,
    what: &str,
    wrappers: &[&str],
) -> Result<Vec<T>, MalformedJson> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| malformed(what, format!("not JSON: {e}")))?;
    let list = match value {
        serde_json::Value::Array(_) => value,
        serde_json::Value::Object(mut map) => {
            let key = wrappers
                .iter()
                .find(|k| map.contains_key(**k))
                .ok_or_else(|| {
                    malformed(
                        what,
                        format!(
                            "expected a list or an object with {}; found keys {:?}",
                            wrappers.join(" or "),
                            map.keys().take(8).collect::<Vec<_>>()
                        ),
                    )
                })?;
            match map.remove(*key) {
                Some(serde_json::Value::Null) | None => serde_json::Value::Array(Vec::new()),
                Some(v) => v,
            }
        }
        other => {
            return Err(malformed(
                what,
                format!("expected a list, found {}", json_kind(&other)),
            ))
        }
    };
    serde_json::from_value(list).map_err(|e| malformed(what, e))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parses one object.
pub fn parse_one<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, MalformedJson> {
    serde_json::from_str(text).map_err(|e| malformed(what, e))
}

/// A reference to another resource (`{"id": "/subscriptions/…"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubResource {
    /// The full resource id.
    pub id: String,
    /// The resource group, when Azure includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
}

impl SubResource {
    /// The last segment of the id (the resource's name).
    pub fn name(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }
}

/// One rule of an NSG as `az network nsg show` / `nsg rule list` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRule {
    /// Rule name.
    pub name: String,
    /// 100-4096 for user rules; 65000+ for default rules.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Allow` or `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `Esp`, `Ah` or `*`.
    pub protocol: String,
    /// Single source prefix (`*`, a CIDR, a service tag), when not a list.
    #[serde(default)]
    pub source_address_prefix: Option<String>,
    /// Source prefixes, when a list.
    #[serde(default)]
    pub source_address_prefixes: Vec<String>,
    /// Single destination prefix.
    #[serde(default)]
    pub destination_address_prefix: Option<String>,
    /// Destination prefixes.
    #[serde(default)]
    pub destination_address_prefixes: Vec<String>,
    /// Single source port range (`*`, `80`, `1000-2000`).
    #[serde(default)]
    pub source_port_range: Option<String>,
    /// Source port ranges.
    #[serde(default)]
    pub source_port_ranges: Vec<String>,
    /// Single destination port range.
    #[serde(default)]
    pub destination_port_range: Option<String>,
    /// Destination port ranges.
    #[serde(default)]
    pub destination_port_ranges: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
}

/// A network security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSecurityGroup {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// User rules.
    #[serde(default)]
    pub security_rules: Vec<SecurityRule>,
    /// Azure's default rules (65000, 65001, 65500 each way).
    #[serde(default)]
    pub default_security_rules: Vec<SecurityRule>,
    /// NICs it is associated with.
    #[serde(default)]
    pub network_interfaces: Option<Vec<SubResource>>,
    /// Subnets it is associated with.
    #[serde(default)]
    pub subnets: Option<Vec<SubResource>>,
}

/// Where an effective NSG applies: at the subnet or at the NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsgAssociation {
    /// Associated with the NIC's subnet (evaluated first inbound, second outbound).
    Subnet,
    /// Associated with the NIC itself.
    NetworkInterface,
}

/// `association` of an effective NSG as Azure prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveNsgAssociation {
    /// Set when the NSG is associated with the subnet.
    #[serde(default)]
    pub subnet: Option<SubResource>,
    /// Set when the NSG is associated with the NIC.
    #[serde(default)]
    pub network_interface: Option<SubResource>,
}

/// One rule of an effective NSG. Names are prefixed by Azure (`securityRules/allow-ssh`,
/// `defaultSecurityRules/AllowVnetInBound`) and ranges expanded (`0-65535`, protocol `All`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSecurityRule {
    /// Rule name as Azure prints it.
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Allow` or `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `All`, …
    pub protocol: String,
    /// Source prefix as written (may be a service tag).
    #[serde(default)]
    pub source_address_prefix: Option<String>,
    /// Source prefixes as written.
    #[serde(default)]
    pub source_address_prefixes: Option<Vec<String>>,
    /// Service tags expanded to prefixes (null when not a tag).
    #[serde(default)]
    pub expanded_source_address_prefix: Option<Vec<String>>,
    /// Destination prefix as written.
    #[serde(default)]
    pub destination_address_prefix: Option<String>,
    /// Destination prefixes as written.
    #[serde(default)]
    pub destination_address_prefixes: Option<Vec<String>>,
    /// Service tags expanded to prefixes.
    #[serde(default)]
    pub expanded_destination_address_prefix: Option<Vec<String>>,
    /// Source port range.
    #[serde(default)]
    pub source_port_range: Option<String>,
    /// Source port ranges.
    #[serde(default)]
    pub source_port_ranges: Option<Vec<String>>,
    /// Destination port range.
    #[serde(default)]
    pub destination_port_range: Option<String>,
    /// Destination port ranges.
    #[serde(default)]
    pub destination_port_ranges: Option<Vec<String>>,
}

/// One NSG in the effective view of a NIC, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveNsg {
    /// The NSG.
    #[serde(default)]
    pub network_security_group: Option<SubResource>,
    /// Where it is associated.
    #[serde(default)]
    pub association: Option<EffectiveNsgAssociation>,
    /// Its rules in Azure's evaluation form.
    #[serde(default)]
    pub effective_security_rules: Vec<EffectiveSecurityRule>,
    /// Service tags and their prefixes (Azure prints an object, older versions a string).
    #[serde(default)]
    pub tag_map: Option<serde_json::Value>,
}

impl EffectiveNsg {
    /// Where this NSG is associated, if Azure said.
    pub fn association_kind(&self) -> Option<NsgAssociation> {
        let a = self.association.as_ref()?;
        if a.subnet.is_some() {
            Some(NsgAssociation::Subnet)
        } else if a.network_interface.is_some() {
            Some(NsgAssociation::NetworkInterface)
        } else {
            None
        }
    }

    /// The NSG's name (last segment of its id).
    pub fn nsg_name(&self) -> Option<&str> {
        self.network_security_group.as_ref().map(SubResource::name)
    }
}

/// Parses `az network nic list-effective-nsg` output: `{"networkSecurityGroups": [...]}`
/// from the CLI, `{"value": [...]}` from the REST API, or a bare list.
pub fn parse_effective_nsgs(text: &str) -> Result<Vec<EffectiveNsg>, MalformedJson> {
    parse_list(
        text,
        "effective NSG list",
        &["networkSecurityGroups", "value"],
    )
}

/// One effective route of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRoute {
    /// Route name (null for system routes).
    #[serde(default)]
    pub name: Option<String>,
    /// `Default`, `User`, `VirtualNetworkGateway`, `Unknown`.
    pub source: String,
    /// `Active` or `Invalid`.
    pub state: String,
    /// Destination prefixes.
    #[serde(default)]
    pub address_prefix: Vec<String>,
    /// `VnetLocal`, `Internet`, `VirtualAppliance`, `VirtualNetworkGateway`, `None`,
    /// `VnetPeering`, …
    pub next_hop_type: String,
    /// Next-hop addresses (empty for most types).
    #[serde(default)]
    pub next_hop_ip_address: Vec<String>,
    /// Whether BGP route propagation is disabled on the route table.
    #[serde(default)]
    pub disable_bgp_route_propagation: Option<bool>,
}

/// Parses `az network nic show-effective-route-table` output (`{"value": [...]}` or bare).
pub fn parse_effective_routes(text: &str) -> Result<Vec<EffectiveRoute>, MalformedJson> {
    parse_list(text, "effective route table", &["value"])
}

// ---------------------------------------------------------------------------------------
// Compute and network resources (`az vm show`, `az network nic show`, subnets, route
// tables), Network Watcher packet captures and storage blobs. Fields follow the
// Microsoft.Compute / Microsoft.Network / Blob service schemas as the az CLI prints them
// (camelCase); everything not needed is optional so that newer API versions still parse.

/// A reference to a NIC in a VM's network profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicReference {
    /// The NIC's resource id.
    pub id: String,
    /// Whether it is the VM's primary NIC (absent on single-NIC VMs).
    #[serde(default)]
    pub primary: Option<bool>,
    /// Resource group, when Azure includes it.
    #[serde(default)]
    pub resource_group: Option<String>,
}

impl NicReference {
    /// The NIC's name (last segment of its id).
    pub fn name(&self) -> &str {
        self.id.rsplit('/').next().unwrap_or(&self.id)
    }

    /// The NIC's resource group, read from the id when Azure did not print it.
    pub fn resource_group(&self) -> Option<String> {
        self.resource_group
            .clone()
            .or_else(|| resource_group_of(&self.id))
    }
}

/// `networkProfile` of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// Its NICs.
    #[serde(default)]
    pub network_interfaces: Vec<NicReference>,
}

/// `hardwareProfile` of a VM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardwareProfile {
    /// e.g. `Standard_D4s_v5`.
    #[serde(default)]
    pub vm_size: Option<String>,
}

/// One extension of a VM (`az vm extension list`): the fields the tools read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmExtension {
    /// Extension name, e.g. `AzureNetworkWatcherExtension`.
    pub name: String,
    /// Publisher, e.g. `Microsoft.Azure.NetworkWatcher`.
    #[serde(default)]
    pub publisher: Option<String>,
    /// The extension type, e.g. `NetworkWatcherAgentLinux`.
    #[serde(default)]
    pub type_properties_type: Option<String>,
    /// `Succeeded`, `Failed`, …
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// Handler version.
    #[serde(default)]
    pub type_handler_version: Option<String>,
}

impl VmExtension {
    /// Whether this is the Network Watcher agent (Linux or Windows) that packet captures need.
    pub fn is_network_watcher_agent(&self) -> bool {
        self.publisher
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("Microsoft.Azure.NetworkWatcher"))
            && self
                .type_properties_type
                .as_deref()
                .is_some_and(|t| t.starts_with("NetworkWatcherAgent"))
    }
}

/// A virtual machine (`az vm show [-d]`, `az vm list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachine {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Azure's unique VM id.
    #[serde(default)]
    pub vm_id: Option<String>,
    /// Size.
    #[serde(default)]
    pub hardware_profile: Option<HardwareProfile>,
    /// NICs.
    #[serde(default)]
    pub network_profile: NetworkProfile,
    /// `Succeeded`, `Failed`, …
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// With `-d`: `VM running`, `VM deallocated`, …
    #[serde(default)]
    pub power_state: Option<String>,
    /// With `-d`: comma-separated private IPs.
    #[serde(default)]
    pub private_ips: Option<String>,
    /// With `-d`: comma-separated public IPs.
    #[serde(default)]
    pub public_ips: Option<String>,
}

impl VirtualMachine {
    /// The primary NIC (the one marked primary, else the first).
    pub fn primary_nic(&self) -> Option<&NicReference> {
        let nics = &self.network_profile.network_interfaces;
        nics.iter()
            .find(|n| n.primary == Some(true))
            .or_else(|| nics.first())
    }
}

/// One IP configuration of a NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfiguration {
    /// Name (`ipconfig1`).
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Private address.
    #[serde(default, rename = "privateIPAddress")]
    pub private_ip_address: Option<String>,
    /// `Static` or `Dynamic`.
    #[serde(default, rename = "privateIPAllocationMethod")]
    pub private_ip_allocation_method: Option<String>,
    /// `IPv4` or `IPv6`.
    #[serde(default, rename = "privateIPAddressVersion")]
    pub private_ip_address_version: Option<String>,
    /// Whether it is the NIC's primary configuration.
    #[serde(default)]
    pub primary: Option<bool>,
    /// The subnet.
    #[serde(default)]
    pub subnet: Option<SubResource>,
    /// The public IP resource.
    #[serde(default, rename = "publicIPAddress")]
    pub public_ip_address: Option<SubResource>,
}

/// A network interface (`az network nic show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// IP configurations.
    #[serde(default)]
    pub ip_configurations: Vec<IpConfiguration>,
    /// The NSG associated with the NIC itself.
    #[serde(default)]
    pub network_security_group: Option<SubResource>,
    /// The VM it is attached to.
    #[serde(default)]
    pub virtual_machine: Option<SubResource>,
    /// Accelerated networking.
    #[serde(default)]
    pub enable_accelerated_networking: Option<bool>,
    /// IP forwarding (needed on a virtual appliance).
    #[serde(default, rename = "enableIPForwarding")]
    pub enable_ip_forwarding: Option<bool>,
    /// MAC address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// Whether it is its VM's primary NIC.
    #[serde(default)]
    pub primary: Option<bool>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

impl NetworkInterface {
    /// The private addresses of every IP configuration.
    pub fn private_ips(&self) -> Vec<&str> {
        self.ip_configurations
            .iter()
            .filter_map(|c| c.private_ip_address.as_deref())
            .collect()
    }

    /// The name of the VM it is attached to.
    pub fn vm_name(&self) -> Option<&str> {
        self.virtual_machine.as_ref().map(SubResource::name)
    }
}

/// A service endpoint of a subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceEndpoint {
    /// e.g. `Microsoft.Storage`.
    pub service: String,
    /// Regions.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// A subnet (`az network vnet subnet show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnet {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// The prefix (single-prefix subnets).
    #[serde(default)]
    pub address_prefix: Option<String>,
    /// The prefixes (multi-prefix subnets).
    #[serde(default)]
    pub address_prefixes: Option<Vec<String>>,
    /// The subnet's NSG.
    #[serde(default)]
    pub network_security_group: Option<SubResource>,
    /// The subnet's route table.
    #[serde(default)]
    pub route_table: Option<SubResource>,
    /// Service endpoints.
    #[serde(default)]
    pub service_endpoints: Option<Vec<ServiceEndpoint>>,
    /// NIC IP configurations in the subnet.
    #[serde(default)]
    pub ip_configurations: Option<Vec<SubResource>>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

impl Subnet {
    /// Every prefix of the subnet, whichever field Azure used.
    pub fn prefixes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.address_prefix.iter().cloned().collect();
        for p in self.address_prefixes.iter().flatten() {
            if !v.contains(p) {
                v.push(p.clone());
            }
        }
        v
    }
}

/// One user-defined route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Destination prefix (or a service tag).
    #[serde(default)]
    pub address_prefix: Option<String>,
    /// `VirtualNetworkGateway`, `VnetLocal`, `Internet`, `VirtualAppliance`, `None`.
    pub next_hop_type: String,
    /// Next hop for `VirtualAppliance`.
    #[serde(default)]
    pub next_hop_ip_address: Option<String>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

/// A route table (`az network route-table show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Whether BGP route propagation is disabled.
    #[serde(default)]
    pub disable_bgp_route_propagation: Option<bool>,
    /// Associated subnets.
    #[serde(default)]
    pub subnets: Option<Vec<SubResource>>,
}

/// Where a packet capture is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PacketCaptureStorageLocation {
    /// Storage account resource id.
    #[serde(default)]
    pub storage_id: Option<String>,
    /// Blob URL of the capture.
    #[serde(default)]
    pub storage_path: Option<String>,
    /// Local path on the VM.
    #[serde(default)]
    pub file_path: Option<String>,
}

/// A Network Watcher packet capture (`az network watcher packet-capture create/show/list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PacketCapture {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// The VM's resource id.
    #[serde(default)]
    pub target: Option<String>,
    /// Bytes kept per packet (0: all).
    #[serde(default)]
    pub bytes_to_capture_per_packet: Option<u64>,
    /// Size limit of the session.
    #[serde(default)]
    pub total_bytes_per_session: Option<u64>,
    /// Time limit of the session.
    #[serde(default)]
    pub time_limit_in_seconds: Option<u64>,
    /// Where the capture is written.
    #[serde(default)]
    pub storage_location: Option<PacketCaptureStorageLocation>,
    /// Filters (protocol, addresses, ports), as Azure printed them.
    #[serde(default)]
    pub filters: Option<Vec<serde_json::Value>>,
    /// `Succeeded`, `Updating`, `Failed`, …
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// Resource group (of the Network Watcher).
    #[serde(default)]
    pub resource_group: Option<String>,
}

/// `az network watcher packet-capture show-status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PacketCaptureStatus {
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// When it started (RFC 3339).
    #[serde(default)]
    pub capture_start_time: Option<String>,
    /// `NotStarted`, `Running`, `Stopped`, `Error`, `Unknown`.
    #[serde(default)]
    pub packet_capture_status: Option<String>,
    /// `TimeExceeded`, `ManualIntervention`, `SessionLimitExceeded`, …
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Errors (`InternalError`, `AgentStopped`, `CaptureFailed`, …).
    #[serde(default)]
    pub packet_capture_error: Option<Vec<String>>,
}

/// `contentSettings` of a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobContentSettings {
    /// MIME type.
    #[serde(default)]
    pub content_type: Option<String>,
    /// Base64 MD5 Azure computed at upload (may be absent for block-list uploads).
    #[serde(default)]
    pub content_md5: Option<serde_json::Value>,
}

/// `properties` of a blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobProperties {
    /// Size in bytes.
    #[serde(default)]
    pub content_length: Option<u64>,
    /// Last modification (RFC 3339).
    #[serde(default)]
    pub last_modified: Option<String>,
    /// Creation (RFC 3339).
    #[serde(default)]
    pub creation_time: Option<String>,
    /// `BlockBlob`, `AppendBlob`, `PageBlob`.
    #[serde(default)]
    pub blob_type: Option<String>,
    /// ETag.
    #[serde(default)]
    pub etag: Option<String>,
    /// Content settings.
    #[serde(default)]
    pub content_settings: Option<BlobContentSettings>,
}

/// One blob as `az storage blob list` / `show` print it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobItem {
    /// Blob name.
    pub name: String,
    /// Properties.
    #[serde(default)]
    pub properties: BlobProperties,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: Option<bool>,
    /// Snapshot id.
    #[serde(default)]
    pub snapshot: Option<String>,
}

impl BlobItem {
    /// Last modification time, when Azure printed a parsable one.
    pub fn last_modified(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let s = self.properties.last_modified.as_deref()?;
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    }
}

/// Deserialises a JSON `null` as the type's default (Azure prints `"ipRules": null` and
/// `"virtualNetworkRules": null` on accounts that never had rules).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One IP rule of a storage account firewall (`networkRuleSet.ipRules[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageIpRule {
    /// An address or CIDR prefix (`ipAddressOrRange`; older CLIs print `value`).
    #[serde(alias = "value")]
    pub ip_address_or_range: String,
    /// `Allow` (the only action Azure supports).
    #[serde(default)]
    pub action: Option<String>,
}

/// One virtual-network rule of a storage account firewall
/// (`networkRuleSet.virtualNetworkRules[]`): a subnet allowed through its service endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageVirtualNetworkRule {
    /// The subnet's resource id (`virtualNetworkResourceId`; older CLIs print `id`).
    #[serde(alias = "id")]
    pub virtual_network_resource_id: String,
    /// `Allow`.
    #[serde(default)]
    pub action: Option<String>,
    /// `Succeeded`, `Provisioning`, `Deprovisioning`, `Failed`, `NetworkSourceDeleted`.
    #[serde(default)]
    pub state: Option<String>,
}

impl StorageVirtualNetworkRule {
    /// True when the rule names `subnet_id` (resource ids compare case-insensitively, as
    /// Azure treats them; a trailing `/` is ignored).
    pub fn names_subnet(&self, subnet_id: &str) -> bool {
        let a = self
            .virtual_network_resource_id
            .trim()
            .trim_end_matches('/');
        let b = subnet_id.trim().trim_end_matches('/');
        !a.is_empty() && a.eq_ignore_ascii_case(b)
    }

    /// `(vnet, subnet)` names from the rule's resource id, when it is a subnet id.
    pub fn vnet_and_subnet(&self) -> Option<(String, String)> {
        vnet_and_subnet_of(&self.virtual_network_resource_id)
    }
}

/// `(vnet, subnet)` from a subnet resource id
/// (`…/virtualNetworks/V/subnets/S`), matched case-insensitively.
pub fn vnet_and_subnet_of(id: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = id.trim().trim_end_matches('/').split('/').collect();
    let i = parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case("virtualNetworks"))?;
    let vnet = parts.get(i + 1).filter(|s| !s.is_empty())?;
    let sub = parts.get(i + 2)?;
    if !sub.eq_ignore_ascii_case("subnets") {
        return None;
    }
    let subnet = parts.get(i + 3).filter(|s| !s.is_empty())?;
    Some((vnet.to_string(), subnet.to_string()))
}

/// The firewall of a storage account (`networkRuleSet` of `az storage account show`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageNetworkRuleSet {
    /// `Allow` or `Deny`: what happens to a request no rule matches.
    #[serde(default)]
    pub default_action: Option<String>,
    /// Trusted traffic let through whatever the rules (`AzureServices`, `Logging, Metrics`,
    /// `None`).
    #[serde(default)]
    pub bypass: Option<String>,
    /// IP rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ip_rules: Vec<StorageIpRule>,
    /// Virtual-network (subnet) rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub virtual_network_rules: Vec<StorageVirtualNetworkRule>,
    /// Resource-instance rules (kept as Azure printed them).
    #[serde(default, deserialize_with = "null_as_default")]
    pub resource_access_rules: Vec<serde_json::Value>,
}

impl StorageNetworkRuleSet {
    /// True when the default action is `Deny` (case-insensitive); a missing default action
    /// is Azure's default, `Allow`.
    pub fn denies_by_default(&self) -> bool {
        self.default_action
            .as_deref()
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("deny"))
    }

    /// The VNet rule naming `subnet_id`, if any.
    pub fn vnet_rule_for(&self, subnet_id: &str) -> Option<&StorageVirtualNetworkRule> {
        self.virtual_network_rules
            .iter()
            .find(|r| r.names_subnet(subnet_id))
    }
}

/// The service endpoints of a storage account (`primaryEndpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageEndpoints {
    /// The blob endpoint (`https://<account>.blob.core.windows.net/`).
    #[serde(default)]
    pub blob: Option<String>,
}

/// A storage account (`az storage account show` / `list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAccount {
    /// Name.
    pub name: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
    /// Resource group.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// `StorageV2`, `BlobStorage`, ...
    #[serde(default)]
    pub kind: Option<String>,
    /// The firewall.
    #[serde(default)]
    pub network_rule_set: Option<StorageNetworkRuleSet>,
    /// `Enabled`, `Disabled` or `SecuredByPerimeter`; `Disabled` refuses every request
    /// from a public endpoint, VNet rules included (only private endpoints work).
    #[serde(default)]
    pub public_network_access: Option<String>,
    /// Endpoints.
    #[serde(default)]
    pub primary_endpoints: Option<StorageEndpoints>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
}

impl StorageAccount {
    /// True when public network access is `Disabled` (case-insensitive).
    pub fn public_access_disabled(&self) -> bool {
        self.public_network_access
            .as_deref()
            .is_some_and(|a| a.trim().eq_ignore_ascii_case("disabled"))
    }

    /// The blob endpoint, if Azure printed one.
    pub fn blob_endpoint(&self) -> Option<&str> {
        self.primary_endpoints.as_ref()?.blob.as_deref()
    }
}

/// The rules of `az storage account network-rule list` (no default action: read it from
/// [`StorageAccount::network_rule_set`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageNetworkRules {
    /// IP rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ip_rules: Vec<StorageIpRule>,
    /// Virtual-network (subnet) rules.
    #[serde(default, deserialize_with = "null_as_default")]
    pub virtual_network_rules: Vec<StorageVirtualNetworkRule>,
}

/// A resource group (`az group show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroup {
    /// Name.
    pub name: String,
    /// Region.
    pub location: String,
    /// Resource id.
    #[serde(default)]
    pub id: Option<String>,
}

/// The resource group named in a resource id
/// (`/subscriptions/S/resourceGroups/RG/providers/…`), matched case-insensitively.
pub fn resource_group_of(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case("resourceGroups") {
            return parts.next().filter(|s| !s.is_empty()).map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod resource_tests {
    use super::*;

    #[test]
    fn vm_with_details_and_primary_nic() {
        let vm: VirtualMachine = parse_one(
            r#"{"name": "dest-vm", "resourceGroup": "RG-LAB", "powerState": "VM running",
                "privateIps": "10.0.1.5", "publicIps": "20.0.0.5",
                "networkProfile": {"networkInterfaces": [
                   {"id": "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/networkInterfaces/nic-a", "primary": false},
                   {"id": "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/networkInterfaces/nic-b", "primary": true}]},
                "storageProfile": {"osDisk": {}}}"#,
            "VM",
        )
        .unwrap();
        let nic = vm.primary_nic().unwrap();
        assert_eq!(nic.name(), "nic-b");
        assert_eq!(nic.resource_group().as_deref(), Some("rg-net"));
        assert_eq!(vm.power_state.as_deref(), Some("VM running"));
        let bare: VirtualMachine = parse_one(r#"{"name": "x"}"#, "VM").unwrap();
        assert!(bare.primary_nic().is_none());
    }

    #[test]
    fn nic_subnet_route_table_capture_blob() {
        let nic: NetworkInterface = parse_one(
            r#"{"name": "nic", "enableIPForwarding": true, "ipConfigurations": [
                 {"name": "ipconfig1", "privateIPAddress": "10.0.1.4", "privateIPAddressVersion": "IPv4",
                  "publicIPAddress": {"id": "/x/publicIPAddresses/pip"}}],
                "virtualMachine": {"id": "/x/virtualMachines/vm1"}}"#,
            "NIC",
        )
        .unwrap();
        assert_eq!(nic.private_ips(), vec!["10.0.1.4"]);
        assert_eq!(nic.vm_name(), Some("vm1"));
        assert_eq!(nic.enable_ip_forwarding, Some(true));

        let subnet: Subnet = parse_one(
            r#"{"name": "default", "addressPrefix": "10.0.1.0/24", "addressPrefixes": ["10.0.1.0/24", "10.0.9.0/24"],
                "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope", "northeurope"], "provisioningState": "Succeeded"}],
                "routeTable": {"id": "/x/routeTables/rt-fw"}}"#,
            "subnet",
        )
        .unwrap();
        assert_eq!(subnet.prefixes(), vec!["10.0.1.0/24", "10.0.9.0/24"]);
        assert_eq!(subnet.route_table.unwrap().name(), "rt-fw");

        let rt: RouteTable = parse_one(
            r#"{"name": "rt-fw", "disableBgpRoutePropagation": true, "routes": [
                 {"name": "default-to-fw", "addressPrefix": "0.0.0.0/0", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.2.4"}]}"#,
            "route table",
        )
        .unwrap();
        assert_eq!(
            rt.routes[0].next_hop_ip_address.as_deref(),
            Some("10.0.2.4")
        );

        let st: PacketCaptureStatus = parse_one(
            r#"{"packetCaptureStatus": "Error", "packetCaptureError": ["AgentStopped"], "captureStartTime": "2026-11-22T07:00:00Z"}"#,
            "status",
        )
        .unwrap();
        assert_eq!(st.packet_capture_error.unwrap(), vec!["AgentStopped"]);

        let blobs: Vec<BlobItem> = parse_list(
            r#"[{"name": "a.json", "properties": {"contentLength": 3, "lastModified": "2026-11-22T07:05:00+00:00",
                  "contentSettings": {"contentType": "application/json", "contentMd5": null}}},
                {"name": "b.json", "properties": {"lastModified": "not a date"}}]"#,
            "blob list",
            &["value"],
        )
        .unwrap();
        assert_eq!(
            blobs[0].last_modified().unwrap().to_rfc3339(),
            "2026-11-22T07:05:00+00:00"
        );
        assert!(blobs[1].last_modified().is_none());
        // A required field missing is an error, not a default.
        assert!(parse_one::<Route>(r#"{"name": "r"}"#, "route").is_err());
    }

    #[test]
    fn resource_group_from_id() {
        assert_eq!(
            resource_group_of("/subscriptions/s/RESOURCEGROUPS/Rg-1/providers/x/y").as_deref(),
            Some("Rg-1")
        );
        assert_eq!(resource_group_of("/subscriptions/s/resourceGroups/"), None);
        assert_eq!(resource_group_of("nic-a"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EFFECTIVE_NSG_CLI: &str = r#"{
      "networkSecurityGroups": [
        {
          "association": {
            "networkInterface": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/dest-vm-nic", "resourceGroup": "rg"},
            "subnet": null
          },
          "effectiveSecurityRules": [
            {
              "access": "Deny",
              "destinationAddressPrefix": "0.0.0.0/0",
              "destinationAddressPrefixes": ["0.0.0.0/0"],
              "destinationPortRange": "8080-8080",
              "destinationPortRanges": ["8080-8080"],
              "direction": "Inbound",
              "expandedDestinationAddressPrefix": null,
              "expandedSourceAddressPrefix": null,
              "name": "securityRules/block-8080",
              "priority": 150,
              "protocol": "Tcp",
              "sourceAddressPrefix": "0.0.0.0/0",
              "sourceAddressPrefixes": ["0.0.0.0/0"],
              "sourcePortRange": "0-65535",
              "sourcePortRanges": ["0-65535"]
            },
            {
              "access": "Allow",
              "destinationAddressPrefix": "VirtualNetwork",
              "destinationPortRange": "0-65535",
              "direction": "Inbound",
              "expandedDestinationAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"],
              "expandedSourceAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"],
              "name": "defaultSecurityRules/AllowVnetInBound",
              "priority": 65000,
              "protocol": "All",
              "sourceAddressPrefix": "VirtualNetwork",
              "sourcePortRange": "0-65535"
            }
          ],
          "networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/dest-vm-nsg", "resourceGroup": "rg"},
          "tagMap": {"VirtualNetwork": ["10.0.0.0/16", "168.63.129.16/32"]}
        },
        {
          "association": {"subnet": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"}},
          "effectiveSecurityRules": [],
          "networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/subnet-nsg"},
          "tagMap": "{}"
        }
      ]
    }"#;

    #[test]
    fn effective_nsg_cli_envelope_keeps_association() {
        let nsgs = parse_effective_nsgs(EFFECTIVE_NSG_CLI).unwrap();
        assert_eq!(nsgs.len(), 2);
        assert_eq!(
            nsgs[0].association_kind(),
            Some(NsgAssociation::NetworkInterface)
        );
        assert_eq!(nsgs[0].nsg_name(), Some("dest-vm-nsg"));
        assert_eq!(nsgs[1].association_kind(), Some(NsgAssociation::Subnet));
        let rule = &nsgs[0].effective_security_rules[0];
        assert_eq!(rule.name, "securityRules/block-8080");
        assert_eq!(rule.priority, 150);
        assert_eq!(rule.destination_port_range.as_deref(), Some("8080-8080"));
        assert_eq!(rule.expanded_source_address_prefix, None);
    }

    #[test]
    fn both_envelopes_and_bare_list_agree() {
        let cli = parse_effective_nsgs(EFFECTIVE_NSG_CLI).unwrap();
        let v: serde_json::Value = serde_json::from_str(EFFECTIVE_NSG_CLI).unwrap();
        let inner = v["networkSecurityGroups"].clone();
        let rest = serde_json::json!({ "value": inner.clone() }).to_string();
        assert_eq!(parse_effective_nsgs(&rest).unwrap(), cli);
        assert_eq!(parse_effective_nsgs(&inner.to_string()).unwrap(), cli);
    }

    #[test]
    fn empty_results_are_empty_not_errors() {
        assert!(parse_effective_nsgs(r#"{"networkSecurityGroups": null}"#)
            .unwrap()
            .is_empty());
        assert!(parse_effective_routes(r#"{"value": []}"#)
            .unwrap()
            .is_empty());
        assert!(parse_effective_routes("[]").unwrap().is_empty());
    }

    #[test]
    fn malformed_output_is_an_error_never_zero_routes() {
        for bad in [
            "",
            "not json",
            "{\"routes\": []}",
            "42",
            "{\"value\": 3}",
            "{\"value\": [{\"x\": 1}]",
        ] {
            let err = parse_effective_routes(bad).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("malformed effective route table"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn effective_routes_shape() {
        let text = r#"{"value": [
          {"addressPrefix": ["10.0.0.0/16"], "disableBgpRoutePropagation": false, "hasBgpOverride": false,
           "name": null, "nextHopIpAddress": [], "nextHopType": "VnetLocal", "source": "Default", "state": "Active", "tagMap": {}},
          {"addressPrefix": ["10.0.1.5/32"], "name": "to-dest", "nextHopIpAddress": ["10.0.1.100"],
           "nextHopType": "VirtualAppliance", "source": "User", "state": "Active"},
          {"addressPrefix": ["0.0.0.0/0"], "name": null, "nextHopIpAddress": [],
           "nextHopType": "Internet", "source": "Default", "state": "Invalid"}
        ]}"#;
        let routes = parse_effective_routes(text).unwrap();
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[1].next_hop_type, "VirtualAppliance");
        assert_eq!(routes[1].next_hop_ip_address, vec!["10.0.1.100"]);
        assert_eq!(routes[2].state, "Invalid");
    }

    #[test]
    fn vm_extension_list_finds_the_network_watcher_agent() {
        let text = r#"[
          {"name": "AzureNetworkWatcherExtension", "publisher": "Microsoft.Azure.NetworkWatcher",
           "typePropertiesType": "NetworkWatcherAgentLinux", "provisioningState": "Succeeded",
           "typeHandlerVersion": "1.4", "autoUpgradeMinorVersion": true},
          {"name": "OmsAgentForLinux", "publisher": "Microsoft.EnterpriseCloud.Monitoring",
           "typePropertiesType": "OmsAgentForLinux", "provisioningState": "Succeeded"}
        ]"#;
        let ext: Vec<VmExtension> = parse_list(text, "VM extension list", &["value"]).unwrap();
        assert!(ext[0].is_network_watcher_agent());
        assert!(!ext[1].is_network_watcher_agent());
    }

    #[test]
    fn nsg_with_rules() {
        let text = r#"{"name": "dest-vm-nsg", "location": "westeurope", "resourceGroup": "rg",
          "securityRules": [{"name": "block-8080", "priority": 150, "direction": "Inbound", "access": "Deny",
            "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": "*", "destinationPortRange": "8080",
            "sourceAddressPrefixes": [], "destinationPortRanges": []}],
          "defaultSecurityRules": [], "subnets": null}"#;
        let nsg: NetworkSecurityGroup = parse_one(text, "NSG").unwrap();
        assert_eq!(
            nsg.security_rules[0].destination_port_range.as_deref(),
            Some("8080")
        );
        assert!(nsg.subnets.is_none());
    }

    /// `az storage account show` as the CLI prints it (schema of Microsoft.Storage
    /// storageAccounts: `networkRuleSet {bypass, defaultAction, ipRules[{action,
    /// ipAddressOrRange}], virtualNetworkRules[{action, state, virtualNetworkResourceId}],
    /// resourceAccessRules}`).
    const STORAGE_ACCOUNT: &str = r#"{
      "id": "/subscriptions/0000/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/stapp01",
      "kind": "StorageV2", "location": "westeurope", "name": "stapp01",
      "resourceGroup": "rg-app", "provisioningState": "Succeeded",
      "publicNetworkAccess": "Enabled",
      "primaryEndpoints": {"blob": "https://stapp01.blob.core.windows.net/", "dfs": "https://stapp01.dfs.core.windows.net/"},
      "networkRuleSet": {
        "bypass": "AzureServices", "defaultAction": "Deny",
        "ipRules": [{"action": "Allow", "ipAddressOrRange": "20.30.40.0/24"}],
        "resourceAccessRules": [],
        "virtualNetworkRules": [
          {"action": "Allow", "state": "Succeeded",
           "virtualNetworkResourceId": "/subscriptions/0000/resourceGroups/RG-NET/providers/Microsoft.Network/virtualNetworks/vnet-app/subnets/default"}]
      },
      "sku": {"name": "Standard_LRS", "tier": "Standard"}
    }"#;

    #[test]
    fn storage_account_with_its_firewall() {
        let a: StorageAccount = parse_one(STORAGE_ACCOUNT, "storage account").unwrap();
        assert_eq!(a.name, "stapp01");
        assert_eq!(
            a.blob_endpoint(),
            Some("https://stapp01.blob.core.windows.net/")
        );
        assert!(!a.public_access_disabled());
        let set = a.network_rule_set.as_ref().unwrap();
        assert!(set.denies_by_default());
        assert_eq!(set.bypass.as_deref(), Some("AzureServices"));
        assert_eq!(set.ip_rules[0].ip_address_or_range, "20.30.40.0/24");
        // Resource ids compare case-insensitively.
        let subnet = "/subscriptions/0000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-app/subnets/default";
        let rule = set.vnet_rule_for(subnet).unwrap();
        assert_eq!(rule.state.as_deref(), Some("Succeeded"));
        assert_eq!(
            rule.vnet_and_subnet(),
            Some(("vnet-app".to_string(), "default".to_string()))
        );
        assert!(set
            .vnet_rule_for(&subnet.replace("default", "other"))
            .is_none());
        assert!(set.vnet_rule_for("").is_none());
    }

    #[test]
    fn storage_firewall_variants_older_cli_and_nulls() {
        // Older CLIs print `id` for the subnet and `value` for the IP; accounts without
        // rules print nulls; a missing default action is Allow.
        let a: StorageAccount = parse_one(
            r#"{"name": "stold", "networkRuleSet": {"defaultAction": "deny",
                 "ipRules": null, "resourceAccessRules": null,
                 "virtualNetworkRules": [{"id": "/x/virtualNetworks/v/subnets/s", "action": "Allow"}]}}"#,
            "storage account",
        )
        .unwrap();
        let set = a.network_rule_set.unwrap();
        assert!(set.denies_by_default());
        assert!(set.ip_rules.is_empty());
        assert!(set
            .vnet_rule_for("/X/VIRTUALNETWORKS/V/SUBNETS/S/")
            .is_some());
        let open: StorageAccount = parse_one(
            r#"{"name": "stopen", "networkRuleSet": {}}"#,
            "storage account",
        )
        .unwrap();
        assert!(!open.network_rule_set.unwrap().denies_by_default());
        let list: Vec<StorageAccount> = parse_list(
            &format!("[{STORAGE_ACCOUNT}]"),
            "storage account list",
            &["value"],
        )
        .unwrap();
        assert_eq!(list.len(), 1);
        let rules: StorageNetworkRules = parse_one(
            r#"{"ipRules": [{"action": "Allow", "ipAddressOrRange": "1.2.3.4"}],
                "virtualNetworkRules": null}"#,
            "network rules",
        )
        .unwrap();
        assert_eq!(rules.ip_rules.len(), 1);
        assert!(rules.virtual_network_rules.is_empty());
        // Not a subnet id.
        assert_eq!(vnet_and_subnet_of("/x/virtualNetworks/v"), None);
        assert_eq!(vnet_and_subnet_of("/x/virtualNetworks/v/other/s"), None);
        assert!(
            parse_one::<StorageAccount>(r#"{"networkRuleSet": {}}"#, "storage account").is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = parse_effective_nsgs(&text);
            let _ = parse_effective_routes(&text);
            let _ = parse_one::<StorageAccount>(&text, "storage account");
        }
    }
}
