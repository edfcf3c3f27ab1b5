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

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in "\\PC*") {
            let _ = parse_effective_nsgs(&text);
            let _ = parse_effective_routes(&text);
        }
    }
}
