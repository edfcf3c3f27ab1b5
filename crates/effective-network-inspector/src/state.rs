//! The normalised effective state of a NIC (what snapshots store and the engines read),
//! built from `az network nic show-effective-route-table` / `list-effective-nsg` output.

use std::collections::BTreeMap;

use cloud_provider::models::{
    parse_effective_nsgs, parse_effective_routes, EffectiveNsg, EffectiveRoute,
    EffectiveSecurityRule, NsgAssociation,
};
use serde::{Deserialize, Serialize};

use crate::EniError;

/// One effective route as Azure lists it (one entry may carry several prefixes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteEntry {
    /// Destination prefixes.
    pub address_prefix: Vec<String>,
    /// `Default`, `User`, `VirtualNetworkGateway`, `Unknown`.
    pub source: String,
    /// `Active` or `Invalid`.
    pub state: String,
    /// `VnetLocal`, `Internet`, `VirtualAppliance`, `VirtualNetworkGateway`, `None`, …
    pub next_hop_type: String,
    /// Next-hop addresses.
    #[serde(default)]
    pub next_hop_ip_address: Vec<String>,
    /// Route name (UDRs; null for system and BGP routes).
    #[serde(default)]
    pub name: Option<String>,
    /// The route table, when the input names it (Azure's effective-route output does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
    /// Whether BGP propagation is disabled on the subnet's route table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_bgp_route_propagation: Option<bool>,
}

impl From<&EffectiveRoute> for RouteEntry {
    fn from(r: &EffectiveRoute) -> Self {
        RouteEntry {
            address_prefix: r.address_prefix.clone(),
            source: r.source.clone(),
            state: r.state.clone(),
            next_hop_type: r.next_hop_type.clone(),
            next_hop_ip_address: r.next_hop_ip_address.clone(),
            name: r.name.clone(),
            route_table: None,
            disable_bgp_route_propagation: r.disable_bgp_route_propagation,
        }
    }
}

/// One effective security rule, kept with every field Azure prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// Name as Azure prints it (`securityRules/x`, `defaultSecurityRules/DenyAllInBound`).
    pub name: String,
    /// Priority.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Allow` or `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `Esp`, `Ah`, `All`, `*`.
    pub protocol: String,
    /// Source prefix as written.
    #[serde(default)]
    pub source_address_prefix: Option<String>,
    /// Source prefixes as written.
    #[serde(default)]
    pub source_address_prefixes: Vec<String>,
    /// Service-tag expansion of the source, when Azure gave one.
    #[serde(default)]
    pub expanded_source_address_prefix: Option<Vec<String>>,
    /// Destination prefix as written.
    #[serde(default)]
    pub destination_address_prefix: Option<String>,
    /// Destination prefixes as written.
    #[serde(default)]
    pub destination_address_prefixes: Vec<String>,
    /// Service-tag expansion of the destination.
    #[serde(default)]
    pub expanded_destination_address_prefix: Option<Vec<String>>,
    /// Source port range.
    #[serde(default)]
    pub source_port_range: Option<String>,
    /// Source port ranges.
    #[serde(default)]
    pub source_port_ranges: Vec<String>,
    /// Destination port range.
    #[serde(default)]
    pub destination_port_range: Option<String>,
    /// Destination port ranges.
    #[serde(default)]
    pub destination_port_ranges: Vec<String>,
}

impl From<&EffectiveSecurityRule> for RuleEntry {
    fn from(r: &EffectiveSecurityRule) -> Self {
        RuleEntry {
            name: r.name.clone(),
            priority: r.priority,
            direction: r.direction.clone(),
            access: r.access.clone(),
            protocol: r.protocol.clone(),
            source_address_prefix: r.source_address_prefix.clone(),
            source_address_prefixes: r.source_address_prefixes.clone().unwrap_or_default(),
            expanded_source_address_prefix: r.expanded_source_address_prefix.clone(),
            destination_address_prefix: r.destination_address_prefix.clone(),
            destination_address_prefixes: r
                .destination_address_prefixes
                .clone()
                .unwrap_or_default(),
            expanded_destination_address_prefix: r.expanded_destination_address_prefix.clone(),
            source_port_range: r.source_port_range.clone(),
            source_port_ranges: r.source_port_ranges.clone().unwrap_or_default(),
            destination_port_range: r.destination_port_range.clone(),
            destination_port_ranges: r.destination_port_ranges.clone().unwrap_or_default(),
        }
    }
}

/// Where an NSG applies, as snapshots write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// The subnet's NSG.
    Subnet,
    /// The NIC's own NSG.
    Nic,
}

impl Gate {
    /// `subnet` or `nic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Subnet => "subnet",
            Gate::Nic => "nic",
        }
    }
}

/// One NSG in a NIC's effective view, with its association and rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsgEntry {
    /// The NSG's name (last segment of its id).
    pub nsg: String,
    /// The NSG's resource id, when given.
    #[serde(default)]
    pub nsg_id: Option<String>,
    /// `subnet` or `nic`.
    pub association: Gate,
    /// The id of the subnet or NIC it is associated with, when given.
    #[serde(default)]
    pub association_id: Option<String>,
    /// Service tags and their prefixes, as Azure's `tagMap` gave them.
    #[serde(default)]
    pub tag_map: BTreeMap<String, Vec<String>>,
    /// Effective rules, in Azure's order.
    pub rules: Vec<RuleEntry>,
}

fn tag_map_of(v: &Option<serde_json::Value>) -> BTreeMap<String, Vec<String>> {
    let value = match v {
        Some(serde_json::Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
        Some(v) => v.clone(),
        None => serde_json::Value::Null,
    };
    let mut out = BTreeMap::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            if let serde_json::Value::Array(items) = v {
                let list: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect();
                out.insert(k, list);
            }
        }
    }
    out
}

impl NsgEntry {
    /// Normalises one effective NSG. An NSG without an association cannot be placed at a gate
    /// and is an error.
    pub fn from_effective(n: &EffectiveNsg) -> Result<NsgEntry, EniError> {
        let nsg = n.nsg_name().unwrap_or("(unnamed NSG)").to_string();
        let association = match n.association_kind() {
            Some(NsgAssociation::Subnet) => Gate::Subnet,
            Some(NsgAssociation::NetworkInterface) => Gate::Nic,
            None => {
                return Err(EniError::Input(format!(
                    "effective NSG {nsg} has no subnet or networkInterface association, so its gate is unknown"
                )))
            }
        };
        let association_id = n.association.as_ref().and_then(|a| {
            a.subnet
                .as_ref()
                .or(a.network_interface.as_ref())
                .map(|s| s.id.clone())
        });
        Ok(NsgEntry {
            nsg,
            nsg_id: n.network_security_group.as_ref().map(|s| s.id.clone()),
            association,
            association_id,
            tag_map: tag_map_of(&n.tag_map),
            rules: n
                .effective_security_rules
                .iter()
                .map(RuleEntry::from)
                .collect(),
        })
    }
}

/// The effective state of one NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicState {
    /// NIC name.
    pub name: String,
    /// The NIC's private addresses, when known (needed by `trace`).
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    /// Effective routes, sorted for stable diffs.
    pub routes: Vec<RouteEntry>,
    /// Effective NSGs (at most one per gate), sorted by gate.
    pub nsgs: Vec<NsgEntry>,
}

/// Parses saved `show-effective-route-table` JSON (either envelope) into route entries.
pub fn routes_from_json(text: &str) -> Result<Vec<RouteEntry>, EniError> {
    let routes = parse_effective_routes(text).map_err(|e| EniError::Input(e.to_string()))?;
    Ok(routes.iter().map(RouteEntry::from).collect())
}

/// Parses saved `list-effective-nsg` JSON (either envelope) into NSG entries.
pub fn nsgs_from_json(text: &str) -> Result<Vec<NsgEntry>, EniError> {
    let nsgs = parse_effective_nsgs(text).map_err(|e| EniError::Input(e.to_string()))?;
    nsgs_from_effective(&nsgs)
}

/// Normalises parsed effective NSGs (at most one per gate) into NSG entries, sorted by gate.
pub fn nsgs_from_effective(nsgs: &[EffectiveNsg]) -> Result<Vec<NsgEntry>, EniError> {
    let mut out = nsgs
        .iter()
        .map(NsgEntry::from_effective)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|n| n.association);
    for w in out.windows(2) {
        if w[0].association == w[1].association {
            return Err(EniError::Input(format!(
                "two effective NSGs ({} and {}) claim the {} gate; Azure allows one NSG per subnet and per NIC",
                w[0].nsg,
                w[1].nsg,
                w[0].association.as_str()
            )));
        }
    }
    Ok(out)
}

impl NicState {
    /// Builds a NIC state from az JSON texts; routes are sorted for stable snapshots.
    pub fn from_json(
        name: &str,
        ip_addresses: Vec<String>,
        routes_json: &str,
        nsg_json: &str,
    ) -> Result<NicState, EniError> {
        let mut routes = routes_from_json(routes_json)?;
        routes.sort();
        let nsgs = nsgs_from_json(nsg_json)?;
        for ip in &ip_addresses {
            ip.parse::<crate::net::Addr>()
                .map_err(|e| EniError::Usage(format!("NIC {name}: {e}")))?;
        }
        Ok(NicState {
            name: name.to_string(),
            ip_addresses,
            routes,
            nsgs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsg_envelopes_tag_maps_and_duplicate_gates() {
        let one = r#"{"association": {"subnet": {"id": "/s/sub"}},
            "networkSecurityGroup": {"id": "/x/networkSecurityGroups/a"},
            "effectiveSecurityRules": [], "tagMap": "{\"Sql\": [\"20.38.0.0/16\"]}"}"#;
        let cli = format!("{{\"networkSecurityGroups\": [{one}]}}");
        let n = nsgs_from_json(&cli).unwrap();
        assert_eq!(n[0].nsg, "a");
        assert_eq!(n[0].association, Gate::Subnet);
        assert_eq!(n[0].tag_map["Sql"], vec!["20.38.0.0/16"]);
        assert_eq!(nsgs_from_json(&format!("[{one}]")).unwrap(), n);
        let dup = format!("{{\"value\": [{one}, {one}]}}");
        let e = nsgs_from_json(&dup).unwrap_err();
        assert!(e.to_string().contains("subnet gate"), "{e}");
        let none = r#"[{"networkSecurityGroup": {"id": "/x/b"}, "effectiveSecurityRules": []}]"#;
        assert!(nsgs_from_json(none)
            .unwrap_err()
            .to_string()
            .contains("association"));
        assert!(nsgs_from_json("{}").is_err());
    }

    #[test]
    fn nic_state_validates_addresses() {
        let e = NicState::from_json("n", vec!["nope".into()], "[]", "[]").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let ok = NicState::from_json("n", vec!["198.18.0.4".into()], "[]", "[]").unwrap();
        assert!(ok.routes.is_empty() && ok.nsgs.is_empty());
    }
}
