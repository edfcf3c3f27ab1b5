//! Scenario files: topology, faults, the symptom as reported and the expected findings.
//!
//! A scenario is TOML (see `docs/netlab.md` for every field). It may name a base file with
//! `base = "../base_topology.toml"` (relative to the scenario file); the scenario is merged
//! over the base: tables merge key by key, and arrays of tables whose entries have a `name`
//! merge entry by entry (same name replaces, new names are appended).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::addr::{is_lab_addr, Cidr};

/// Errors from reading or validating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("scenario file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The content breaks a rule (addresses, names, priorities, references).
    #[error("scenario is invalid: {0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ScenarioError> {
    Err(ScenarioError::Invalid(msg.into()))
}

/// A whole scenario file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short id, e.g. `use_case_a`.
    #[serde(default)]
    pub name: String,
    /// Human title, e.g. `Invisible Wall`.
    #[serde(default)]
    pub title: String,
    /// Base file merged under this one (already applied after [`Scenario::load`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The topology the lab builds.
    #[serde(default)]
    pub topology: Topology,
    /// Faults `netlab inject` applies.
    #[serde(default)]
    pub faults: Faults,
    /// The symptom as reported.
    #[serde(default)]
    pub symptom: Symptom,
    /// The causes a correct investigation names.
    #[serde(default)]
    pub expected_causes: Vec<ExpectedCause>,
    /// Conclusions that must NOT be drawn.
    #[serde(default)]
    pub must_not_conclude: Vec<String>,
    /// Baselines the scenario needs, in order.
    #[serde(default)]
    pub baselines: Vec<Baseline>,
    /// Free-text steps of the scenario (phases, traffic to generate).
    #[serde(default)]
    pub steps: Vec<String>,
    /// Workload traffic generators (`netlab traffic start`).
    #[serde(default)]
    pub traffic: Vec<crate::traffic::TrafficSpec>,
}

/// The symptom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Symptom {
    /// What the engineer reported.
    #[serde(default)]
    pub reported: String,
    /// Extra context given with the report (e.g. a baseline id, "change window last night").
    #[serde(default)]
    pub context: String,
}

/// One cause the investigation must name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedCause {
    /// `nsg`, `route`, `os_firewall`, `traffic_control`, `mtu`, `service`,
    /// `service_endpoint`, `wire`, `none`.
    pub layer: String,
    /// The VM concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// What kind of fault, e.g. `nsg_deny`, `udr_dead_appliance`, `iptables_drop`, `tbf_rate`.
    pub kind: String,
    /// NSG or route name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
    /// Route table name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
    /// Rule or route name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// NSG rule priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Port concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Protocol concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// qdisc concerned (`tbf`, `netem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdisc: Option<String>,
    /// iptables chain concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Address prefix concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `primary` or `secondary` (or an order number as text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<String>,
    /// Free text.
    #[serde(default)]
    pub detail: String,
}

/// A baseline to take.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// `os_firewall` (netfilter-inspector) or `effective_network` (effective-network-inspector).
    pub kind: String,
    /// The VM.
    pub vm: String,
    /// The step as an operator would read it.
    pub step: String,
}

/// The topology.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Resource group name (reported by `netlab env`).
    #[serde(default = "default_rg")]
    pub resource_group: String,
    /// Location (reported by `netlab env`).
    #[serde(default = "default_location")]
    pub location: String,
    /// Subscription id (reported by `netlab env`).
    #[serde(default = "default_subscription")]
    pub subscription_id: String,
    /// The VNet.
    pub vnet: Vnet,
    /// VMs.
    #[serde(default)]
    pub vms: Vec<Vm>,
    /// NSGs.
    #[serde(default)]
    pub nsgs: Vec<Nsg>,
    /// Route tables (associated from `subnets[].route_table`).
    #[serde(default)]
    pub route_tables: Vec<RouteTable>,
    /// Storage accounts served by the lab storage endpoint.
    #[serde(default)]
    pub storage_accounts: Vec<StorageAccount>,
    /// Whether the lab has an "internet" host (198.19.128.10, HTTP on 80, plain TCP on 443).
    #[serde(default)]
    pub internet_host: bool,
}

fn default_rg() -> String {
    "netlab-rg".into()
}
fn default_location() -> String {
    "netlab-local".into()
}
fn default_subscription() -> String {
    "00000000-0000-0000-0000-000000000000".into()
}

/// A VNet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vnet {
    /// Name.
    pub name: String,
    /// Address space prefixes.
    pub address_space: Vec<String>,
    /// Subnets.
    #[serde(default)]
    pub subnets: Vec<Subnet>,
}

/// A subnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// Name.
    pub name: String,
    /// Address prefix.
    pub address_prefix: String,
    /// Subnet-level NSG (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
    /// Associated route table (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<String>,
    /// Service endpoints, e.g. `Microsoft.Storage`.
    #[serde(default)]
    pub service_endpoints: Vec<String>,
}

/// A VM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// Name (also the SSH host alias).
    pub name: String,
    /// Subnet name.
    pub subnet: String,
    /// Private IP (inside the subnet, not .0-.3 or broadcast, as in Azure).
    pub private_ip: String,
    /// Interface MTU (default 1500).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// NIC-level NSG (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsg: Option<String>,
    /// Services listening in the VM.
    #[serde(default)]
    pub services: Vec<Service>,
    /// The VM's bandwidth cap in Mbit/s, each direction (as Azure caps a VM by its size),
    /// enforced by the fabric (`tbf` toward the VM, `ifb` + `tbf` from it), invisible inside
    /// the VM. No cap when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mbps: Option<u32>,
}

fn default_tcp() -> String {
    "tcp".into()
}

fn default_mtu() -> u32 {
    1500
}

/// A service listening in a VM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// `iperf2`, `qperf`, `http` (built-in HTTP server) or `tcp` (built-in TCP accept-and-echo).
    pub kind: String,
    /// Port (qperf: 19765, iperf2: 5001 by convention).
    pub port: u16,
    /// `tcp` (default) or `udp` (iperf2 only: `iperf -s -u`).
    #[serde(default = "default_tcp")]
    pub protocol: String,
    /// Every Nth HTTP response is slow (0 = never).
    #[serde(default)]
    pub slow_every: u32,
    /// How slow, in milliseconds.
    #[serde(default)]
    pub slow_ms: u64,
}

/// A network security group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nsg {
    /// Name.
    pub name: String,
    /// Security rules (Azure's default rules are added by the compiler).
    #[serde(default)]
    pub rules: Vec<NsgRule>,
}

/// One NSG security rule, with Azure's field names in snake_case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NsgRule {
    /// Rule name.
    pub name: String,
    /// 100-4096.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Allow` or `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `Esp`, `Ah` or `*`.
    pub protocol: String,
    /// One prefix, `*`, or a tag (`VirtualNetwork`, `Internet`, `AzureLoadBalancer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    /// Several prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_address_prefixes: Vec<String>,
    /// `*`, a port or a range `a-b`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port_range: Option<String>,
    /// Several ports or ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_port_ranges: Vec<String>,
    /// One prefix, `*`, or a tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_address_prefix: Option<String>,
    /// Several prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_address_prefixes: Vec<String>,
    /// `*`, a port or a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port_range: Option<String>,
    /// Several ports or ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_port_ranges: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl NsgRule {
    /// Source prefixes (singular and plural fields together; empty = `*`).
    pub fn sources(&self) -> Vec<String> {
        join_fields(&self.source_address_prefix, &self.source_address_prefixes)
    }
    /// Destination prefixes.
    pub fn destinations(&self) -> Vec<String> {
        join_fields(
            &self.destination_address_prefix,
            &self.destination_address_prefixes,
        )
    }
    /// Source port ranges.
    pub fn source_ports(&self) -> Vec<String> {
        join_fields(&self.source_port_range, &self.source_port_ranges)
    }
    /// Destination port ranges.
    pub fn destination_ports(&self) -> Vec<String> {
        join_fields(&self.destination_port_range, &self.destination_port_ranges)
    }
    /// Whether this is an inbound rule.
    pub fn inbound(&self) -> bool {
        self.direction.eq_ignore_ascii_case("inbound")
    }
}

fn join_fields(one: &Option<String>, many: &[String]) -> Vec<String> {
    let mut v: Vec<String> = one.iter().cloned().collect();
    v.extend(many.iter().cloned());
    v
}

/// A route table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// Name.
    pub name: String,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// A user-defined route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Name.
    pub name: String,
    /// Destination prefix.
    pub address_prefix: String,
    /// `VirtualAppliance`, `None`, `Internet`, `VnetLocal`, `VirtualNetworkGateway`.
    pub next_hop_type: String,
    /// Next hop for `VirtualAppliance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ip_address: Option<String>,
}

/// A storage account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageAccount {
    /// Name (3-24 lowercase letters and digits).
    pub name: String,
    /// Container.
    pub container: String,
    /// Firewall default action `Allow` or `Deny`.
    #[serde(default = "default_allow")]
    pub default_action: String,
    /// VNet rules as subnet names (`subnet` or `vnet/subnet`).
    #[serde(default)]
    pub vnet_rules: Vec<String>,
    /// IP rules.
    #[serde(default)]
    pub ip_rules: Vec<String>,
}

fn default_allow() -> String {
    "Allow".into()
}

/// Faults of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Faults inside VMs (OS layer).
    #[serde(default)]
    pub vm: Vec<VmFault>,
    /// Control-plane faults.
    #[serde(default)]
    pub cloud: Vec<CloudFault>,
}

/// A fault inside a VM. Several fields may be set at once; each set field becomes one fault.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmFault {
    /// The VM.
    pub vm: String,
    /// Egress rate limit (tc units, e.g. `5mbit`) via `tbf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Egress random loss in percent, dropped in the VM (iptables `statistic` in OUTPUT):
    /// the sending TCP learns of each drop at once, so it does not count retransmissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// Random loss in percent on the wire, of the packets leaving this VM, dropped by the
    /// fabric (iptables `statistic` in the fabric's FORWARD chain; TCP port 22 exempt):
    /// invisible inside the VM, seen by its TCP as real retransmissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire_loss_pct: Option<f64>,
    /// Egress delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Jitter (with delay) in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    /// Egress corruption in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt_pct: Option<f64>,
    /// Interface MTU (eth0 in the VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MTU of the fabric side of the VM's link (the first hop of the path). Raising it with
    /// `mtu` lets large frames into the fabric, which then answers ICMP
    /// fragmentation-needed where the rest of the path is smaller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric_mtu: Option<u32>,
    /// iptables commands (arguments after `iptables`), applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub iptables: Vec<String>,
    /// An nftables ruleset (for `nft -f`); it must declare its own table(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft: Option<String>,
    /// Extra listeners to start (built-in TCP server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<u16>,
    /// Topology services (by port) to stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_service: Vec<u16>,
    /// Applied by `netlab inject --stage pre-baseline` (before the baseline is taken).
    #[serde(default)]
    pub before_baseline: bool,
    /// Seed for the userspace emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A control-plane fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CloudFault {
    /// Add (or replace by name) a rule in an NSG.
    NsgRule {
        /// The NSG.
        nsg: String,
        /// The rule.
        rule: NsgRule,
        /// Pre-baseline stage.
        #[serde(default)]
        before_baseline: bool,
    },
    /// Add (or replace) a route in a route table, creating the table if needed, and
    /// associate the table with a subnet if given.
    Route {
        /// The route table.
        route_table: String,
        /// The route.
        route: Route,
        /// Subnet to associate the table with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        associate_subnet: Option<String>,
        /// Pre-baseline stage.
        #[serde(default)]
        before_baseline: bool,
    },
    /// Associate an NSG (created empty if missing) with a subnet.
    SubnetNsg {
        /// The subnet.
        subnet: String,
        /// The NSG.
        nsg: String,
        /// Pre-baseline stage.
        #[serde(default)]
        before_baseline: bool,
    },
    /// Remove a service endpoint from a subnet.
    RemoveServiceEndpoint {
        /// The subnet.
        subnet: String,
        /// e.g. `Microsoft.Storage`.
        service: String,
        /// Pre-baseline stage.
        #[serde(default)]
        before_baseline: bool,
    },
    /// Add a service endpoint to a subnet.
    AddServiceEndpoint {
        /// The subnet.
        subnet: String,
        /// e.g. `Microsoft.Storage`.
        service: String,
        /// Pre-baseline stage.
        #[serde(default)]
        before_baseline: bool,
    },
}

impl CloudFault {
    /// Whether this fault belongs to the pre-baseline stage.
    pub fn before_baseline(&self) -> bool {
        match self {
            CloudFault::NsgRule {
                before_baseline, ..
            }
            | CloudFault::Route {
                before_baseline, ..
            }
            | CloudFault::SubnetNsg {
                before_baseline, ..
            }
            | CloudFault::RemoveServiceEndpoint {
                before_baseline, ..
            }
            | CloudFault::AddServiceEndpoint {
                before_baseline, ..
            } => *before_baseline,
        }
    }
}

/// Deep-merges `over` into `base` (see the module docs).
pub fn merge_toml(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) => merge_toml(bv, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (toml::Value::Array(b), toml::Value::Array(o)) => {
            let named = |v: &toml::Value| {
                v.get("name")
                    .and_then(|n| n.as_str())
                    .map(|s| s.to_string())
            };
            if o.iter().all(|v| named(v).is_some()) && b.iter().all(|v| named(v).is_some()) {
                for v in o {
                    let n = named(&v);
                    if let Some(pos) = b.iter().position(|x| named(x) == n) {
                        merge_toml(&mut b[pos], v);
                    } else {
                        b.push(v);
                    }
                }
            } else {
                *b = o;
            }
        }
        (b, o) => *b = o,
    }
}

impl Scenario {
    /// Reads a scenario file (and its base), then validates it.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let value = load_value(path, 0)?;
        let sc: Scenario = value
            .try_into()
            .map_err(|e: toml::de::Error| ScenarioError::Parse {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            })?;
        sc.validate()?;
        Ok(sc)
    }

    /// Parses scenario text without a base (for tests and inline use), then validates it.
    pub fn from_toml_str(text: &str) -> Result<Scenario, ScenarioError> {
        let sc: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse {
            path: PathBuf::from("<text>"),
            message: e.message().to_string(),
        })?;
        if sc.base.is_some() {
            return invalid("`base` can only be used in a scenario file, not inline text");
        }
        sc.validate()?;
        Ok(sc)
    }

    /// Checks every rule the lab and Azure impose.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.topology.validate()?;
        for f in &self.faults.vm {
            validate_vm_fault(&self.topology, f)?;
        }
        // Cloud faults must apply cleanly to the topology, one after the other.
        let mut t = self.topology.clone();
        for f in &self.faults.cloud {
            t = apply_cloud_fault(&t, f)?.0;
        }
        for b in &self.baselines {
            if t.vm(&b.vm).is_none() {
                return invalid(format!("baseline names VM `{}` which does not exist", b.vm));
            }
        }
        crate::traffic::validate_specs(&self.topology, &self.traffic)
            .map_err(ScenarioError::Invalid)?;
        Ok(())
    }
}

fn load_value(path: &Path, depth: usize) -> Result<toml::Value, ScenarioError> {
    if depth > 4 {
        return invalid(format!(
            "{}: `base` files nest too deeply (more than 4 levels)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut value: toml::Value = toml::from_str(&text).map_err(|e| ScenarioError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })?;
    if let Some(base) = value
        .get("base")
        .and_then(|b| b.as_str())
        .map(str::to_string)
    {
        let base_path = path.parent().unwrap_or(Path::new(".")).join(&base);
        let mut b = load_value(&base_path, depth + 1)?;
        if let toml::Value::Table(t) = &mut value {
            t.remove("base");
        }
        if let toml::Value::Table(t) = &mut b {
            t.remove("base");
        }
        merge_toml(&mut b, value);
        if let toml::Value::Table(t) = &mut b {
            t.insert("base".into(), toml::Value::String(base));
        }
        value = b;
    }
    Ok(value)
}

impl Topology {
    /// Finds a VM.
    pub fn vm(&self, name: &str) -> Option<&Vm> {
        self.vms.iter().find(|v| v.name == name)
    }
    /// Finds a subnet.
    pub fn subnet(&self, name: &str) -> Option<&Subnet> {
        let name = name.rsplit('/').next().unwrap_or(name);
        self.vnet.subnets.iter().find(|s| s.name == name)
    }
    /// Finds an NSG.
    pub fn nsg(&self, name: &str) -> Option<&Nsg> {
        self.nsgs.iter().find(|n| n.name == name)
    }
    /// The VNet address space as prefixes (valid after validation).
    pub fn vnet_prefixes(&self) -> Vec<Cidr> {
        self.vnet
            .address_space
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
    /// A VM's private IP (valid after validation).
    pub fn vm_ip(&self, vm: &Vm) -> Ipv4Addr {
        vm.private_ip.parse().unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// Validates names, addresses, references and NSG rules.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.vnet.name.is_empty() {
            return invalid("the VNet needs a name");
        }
        if self.vnet.address_space.is_empty() {
            return invalid("the VNet needs an address space");
        }
        let mut space = Vec::new();
        for p in &self.vnet.address_space {
            let c =
                Cidr::parse_strict(p).or_else(|e| invalid(format!("VNet address space: {e}")))?;
            check_lab_prefix(&c, "VNet address space")?;
            space.push(c);
        }
        let mut names = BTreeSet::new();
        let mut prefixes: Vec<(String, Cidr)> = Vec::new();
        for s in &self.vnet.subnets {
            check_name(&s.name, "subnet")?;
            if !names.insert(s.name.clone()) {
                return invalid(format!("subnet `{}` is defined twice", s.name));
            }
            let c = Cidr::parse_strict(&s.address_prefix)
                .or_else(|e| invalid(format!("subnet `{}`: {e}", s.name)))?;
            if !space.iter().any(|v| v.contains_cidr(&c)) {
                return invalid(format!(
                    "subnet `{}` prefix {c} is outside the VNet address space",
                    s.name
                ));
            }
            if c.len > 29 {
                return invalid(format!(
                    "subnet `{}` prefix {c} is smaller than /29, which Azure refuses",
                    s.name
                ));
            }
            if let Some((other, _)) = prefixes.iter().find(|(_, p)| p.overlaps(&c)) {
                return invalid(format!("subnets `{other}` and `{}` overlap", s.name));
            }
            prefixes.push((s.name.clone(), c));
            if let Some(n) = &s.nsg {
                if self.nsg(n).is_none() {
                    return invalid(format!(
                        "subnet `{}` names NSG `{n}` which does not exist",
                        s.name
                    ));
                }
            }
            if let Some(r) = &s.route_table {
                if !self.route_tables.iter().any(|t| &t.name == r) {
                    return invalid(format!(
                        "subnet `{}` names route table `{r}` which does not exist",
                        s.name
                    ));
                }
            }
        }
        let mut vm_names = BTreeSet::new();
        let mut ips = BTreeSet::new();
        if self.vms.len() > 40 {
            return invalid("at most 40 VMs per lab");
        }
        for vm in &self.vms {
            check_name(&vm.name, "VM")?;
            if vm.name == "fab" || vm.name == "sto" || vm.name == "inet" {
                return invalid(format!("VM name `{}` is reserved by the lab", vm.name));
            }
            if !vm_names.insert(vm.name.clone()) {
                return invalid(format!("VM `{}` is defined twice", vm.name));
            }
            let subnet = prefixes
                .iter()
                .find(|(n, _)| n == &vm.subnet)
                .map(|(_, c)| *c)
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!(
                        "VM `{}` names subnet `{}` which does not exist",
                        vm.name, vm.subnet
                    ))
                })?;
            let ip: Ipv4Addr = vm.private_ip.parse().or_else(|_| {
                invalid(format!(
                    "VM `{}`: `{}` is not an IPv4 address",
                    vm.name, vm.private_ip
                ))
            })?;
            if !is_lab_addr(ip) {
                return invalid(format!(
                    "VM `{}` address {ip} is outside 198.18.0.0/15, the only range the lab may use",
                    vm.name
                ));
            }
            if !subnet.contains(ip) {
                return invalid(format!(
                    "VM `{}` address {ip} is outside its subnet {subnet}",
                    vm.name
                ));
            }
            let host = u32::from(ip) & !subnet.mask();
            if host < 4 || host == !subnet.mask() {
                return invalid(format!(
                    "VM `{}` address {ip}: Azure reserves the first four addresses and the last one of {subnet}",
                    vm.name
                ));
            }
            if !ips.insert(ip) {
                return invalid(format!("address {ip} is used by two VMs"));
            }
            if !(576..=9000).contains(&vm.mtu) {
                return invalid(format!(
                    "VM `{}` MTU {} is outside 576-9000",
                    vm.name, vm.mtu
                ));
            }
            if let Some(b) = vm.bandwidth_mbps {
                if !(1..=100_000).contains(&b) {
                    return invalid(format!(
                        "VM `{}`: bandwidth_mbps {b} is outside 1-100000",
                        vm.name
                    ));
                }
            }
            if let Some(n) = &vm.nsg {
                if self.nsg(n).is_none() {
                    return invalid(format!(
                        "VM `{}` names NSG `{n}` which does not exist",
                        vm.name
                    ));
                }
            }
            let mut ports = BTreeSet::new();
            for s in &vm.services {
                if !["iperf2", "qperf", "http", "tcp"].contains(&s.kind.as_str()) {
                    return invalid(format!(
                        "VM `{}` service kind `{}` is unknown (use iperf2, qperf, http or tcp)",
                        vm.name, s.kind
                    ));
                }
                if s.protocol != "tcp" && !(s.protocol == "udp" && s.kind == "iperf2") {
                    return invalid(format!(
                        "VM `{}` service on port {}: protocol `{}` must be tcp (udp only for iperf2)",
                        vm.name, s.port, s.protocol
                    ));
                }
                if s.port == 0 || s.port == 22 || !ports.insert(s.port) {
                    return invalid(format!(
                        "VM `{}` service port {} is 0, 22 (sshd) or used twice",
                        vm.name, s.port
                    ));
                }
            }
        }
        let mut nsg_names = BTreeSet::new();
        for n in &self.nsgs {
            check_name(&n.name, "NSG")?;
            if !nsg_names.insert(n.name.clone()) {
                return invalid(format!("NSG `{}` is defined twice", n.name));
            }
            validate_nsg(n)?;
        }
        let mut rt_names = BTreeSet::new();
        for t in &self.route_tables {
            check_name(&t.name, "route table")?;
            if !rt_names.insert(t.name.clone()) {
                return invalid(format!("route table `{}` is defined twice", t.name));
            }
            let mut seen = BTreeMap::new();
            for r in &t.routes {
                validate_route(&t.name, r)?;
                let c: Cidr = r
                    .address_prefix
                    .parse()
                    .unwrap_or(Cidr::new(Ipv4Addr::UNSPECIFIED, 0));
                if let Some(other) = seen.insert(c, r.name.clone()) {
                    return invalid(format!(
                        "routes `{other}` and `{}` in `{}` have the same prefix {c}",
                        r.name, t.name
                    ));
                }
            }
        }
        for a in &self.storage_accounts {
            if a.name.len() < 3
                || a.name.len() > 24
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return invalid(format!(
                    "storage account name `{}` must be 3-24 lowercase letters and digits",
                    a.name
                ));
            }
            if a.default_action != "Allow" && a.default_action != "Deny" {
                return invalid(format!(
                    "storage account `{}` default_action must be Allow or Deny",
                    a.name
                ));
            }
            for r in &a.vnet_rules {
                if self.subnet(r).is_none() {
                    return invalid(format!(
                        "storage account `{}` VNet rule names subnet `{r}` which does not exist",
                        a.name
                    ));
                }
            }
        }
        Ok(())
    }
}

fn check_lab_prefix(c: &Cidr, what: &str) -> Result<(), ScenarioError> {
    if !crate::addr::lab_range().contains_cidr(c) {
        return invalid(format!(
            "{what} {c} is outside 198.18.0.0/15, the only range the lab may use"
        ));
    }
    Ok(())
}

fn check_name(name: &str, what: &str) -> Result<(), ScenarioError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return invalid(format!(
            "{what} name `{name}` must be 1-40 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ));
    }
    Ok(())
}

const TAGS: [&str; 4] = ["VirtualNetwork", "Internet", "AzureLoadBalancer", "*"];

/// Validates one NSG (rules, priorities, directions).
pub fn validate_nsg(n: &Nsg) -> Result<(), ScenarioError> {
    let mut prios = BTreeMap::new();
    let mut names = BTreeSet::new();
    for r in &n.rules {
        validate_nsg_rule(&n.name, r)?;
        if !names.insert(r.name.to_ascii_lowercase()) {
            return invalid(format!("NSG `{}` has two rules named `{}`", n.name, r.name));
        }
        let key = (r.inbound(), r.priority);
        if let Some(other) = prios.insert(key, r.name.clone()) {
            return invalid(format!(
                "NSG `{}`: rules `{other}` and `{}` both have priority {} in the same direction, which Azure refuses",
                n.name, r.name, r.priority
            ));
        }
    }
    Ok(())
}

/// Validates one NSG rule.
pub fn validate_nsg_rule(nsg: &str, r: &NsgRule) -> Result<(), ScenarioError> {
    check_name(&r.name, "NSG rule")?;
    if !(100..=4096).contains(&r.priority) {
        return invalid(format!(
            "NSG `{nsg}` rule `{}` priority {} is outside 100-4096",
            r.name, r.priority
        ));
    }
    if !["Inbound", "Outbound"].contains(&r.direction.as_str()) {
        return invalid(format!(
            "NSG `{nsg}` rule `{}` direction `{}` must be Inbound or Outbound",
            r.name, r.direction
        ));
    }
    if !["Allow", "Deny"].contains(&r.access.as_str()) {
        return invalid(format!(
            "NSG `{nsg}` rule `{}` access `{}` must be Allow or Deny",
            r.name, r.access
        ));
    }
    if !["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"].contains(&r.protocol.as_str()) {
        return invalid(format!(
            "NSG `{nsg}` rule `{}` protocol `{}` must be Tcp, Udp, Icmp, Esp, Ah or *",
            r.name, r.protocol
        ));
    }
    for (field, one, many) in [
        (
            "source address",
            &r.source_address_prefix,
            &r.source_address_prefixes,
        ),
        (
            "destination address",
            &r.destination_address_prefix,
            &r.destination_address_prefixes,
        ),
    ] {
        if one.is_some() && !many.is_empty() {
            return invalid(format!(
                "NSG `{nsg}` rule `{}` sets both the singular and plural {field} field; use one",
                r.name
            ));
        }
        let all = join_fields(one, many);
        if all.is_empty() {
            return invalid(format!(
                "NSG `{nsg}` rule `{}` has no {field} prefix",
                r.name
            ));
        }
        for p in &all {
            if TAGS.contains(&p.as_str()) {
                if all.len() > 1 {
                    return invalid(format!(
                        "NSG `{nsg}` rule `{}`: service tag or `*` `{p}` cannot be combined with other {field} prefixes",
                        r.name
                    ));
                }
                continue;
            }
            Cidr::parse_strict(p)
                .or_else(|e| invalid(format!("NSG `{nsg}` rule `{}` {field}: {e}", r.name)))?;
        }
    }
    for (field, one, many) in [
        ("source port", &r.source_port_range, &r.source_port_ranges),
        (
            "destination port",
            &r.destination_port_range,
            &r.destination_port_ranges,
        ),
    ] {
        if one.is_some() && !many.is_empty() {
            return invalid(format!(
                "NSG `{nsg}` rule `{}` sets both the singular and plural {field} field; use one",
                r.name
            ));
        }
        let all = join_fields(one, many);
        if all.is_empty() {
            return invalid(format!(
                "NSG `{nsg}` rule `{}` has no {field} range",
                r.name
            ));
        }
        for p in &all {
            if p == "*" {
                if all.len() > 1 {
                    return invalid(format!(
                        "NSG `{nsg}` rule `{}`: `*` cannot be combined with other {field} ranges",
                        r.name
                    ));
                }
                continue;
            }
            parse_port_range(p).ok_or_else(|| {
                ScenarioError::Invalid(format!(
                    "NSG `{nsg}` rule `{}` {field} `{p}` is not a port or range (1-65535)",
                    r.name
                ))
            })?;
        }
    }
    Ok(())
}

/// Parses `80` or `1000-2000`.
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
        None => {
            let p = s.parse::<u16>().ok()?;
            (p, p)
        }
    };
    if a == 0 || b < a {
        return None;
    }
    Some((a, b))
}

const NEXT_HOPS: [&str; 5] = [
    "VirtualAppliance",
    "None",
    "Internet",
    "VnetLocal",
    "VirtualNetworkGateway",
];

fn validate_route(table: &str, r: &Route) -> Result<(), ScenarioError> {
    check_name(&r.name, "route")?;
    Cidr::parse_strict(&r.address_prefix)
        .or_else(|e| invalid(format!("route `{}` in `{table}`: {e}", r.name)))?;
    if !NEXT_HOPS.contains(&r.next_hop_type.as_str()) {
        return invalid(format!(
            "route `{}` in `{table}`: next hop type `{}` must be one of {}",
            r.name,
            r.next_hop_type,
            NEXT_HOPS.join(", ")
        ));
    }
    match (&r.next_hop_type[..], &r.next_hop_ip_address) {
        ("VirtualAppliance", None) => invalid(format!(
            "route `{}` in `{table}`: a VirtualAppliance next hop needs next_hop_ip_address",
            r.name
        )),
        ("VirtualAppliance", Some(ip)) => {
            let ip: Ipv4Addr = ip.parse().or_else(|_| {
                invalid(format!(
                    "route `{}` in `{table}`: `{ip}` is not an IPv4 address",
                    r.name
                ))
            })?;
            if !is_lab_addr(ip) {
                return invalid(format!(
                    "route `{}` in `{table}`: next hop {ip} is outside 198.18.0.0/15",
                    r.name
                ));
            }
            Ok(())
        }
        (_, Some(_)) => invalid(format!(
            "route `{}` in `{table}`: next_hop_ip_address is only allowed with VirtualAppliance",
            r.name
        )),
        _ => Ok(()),
    }
}

fn validate_vm_fault(t: &Topology, f: &VmFault) -> Result<(), ScenarioError> {
    let vm = t.vm(&f.vm).ok_or_else(|| {
        ScenarioError::Invalid(format!("fault names VM `{}` which does not exist", f.vm))
    })?;
    for (what, v) in [
        ("loss_pct", f.loss_pct),
        ("wire_loss_pct", f.wire_loss_pct),
        ("corrupt_pct", f.corrupt_pct),
    ] {
        if let Some(v) = v {
            if !(0.0..=100.0).contains(&v) || v.is_nan() {
                return invalid(format!("fault on `{}`: {what} {v} is outside 0-100", f.vm));
            }
        }
    }
    for (what, v) in [("delay_ms", f.delay_ms), ("jitter_ms", f.jitter_ms)] {
        if let Some(v) = v {
            if !(0.0..=60_000.0).contains(&v) || v.is_nan() {
                return invalid(format!(
                    "fault on `{}`: {what} {v} is outside 0-60000",
                    f.vm
                ));
            }
        }
    }
    if f.jitter_ms.is_some() && f.delay_ms.is_none() {
        return invalid(format!("fault on `{}`: jitter needs a delay", f.vm));
    }
    if let Some(r) = &f.rate {
        crate::faults::parse_rate(r).map_err(ScenarioError::Invalid)?;
    }
    for m in [f.mtu, f.fabric_mtu].into_iter().flatten() {
        if !(576..=9000).contains(&m) {
            return invalid(format!("fault on `{}`: MTU {m} is outside 576-9000", f.vm));
        }
    }
    for cmd in &f.iptables {
        crate::faults::IptablesCmd::parse(cmd).map_err(ScenarioError::Invalid)?;
    }
    if let Some(text) = &f.nft {
        if crate::faults::nft_tables(text).is_empty() {
            return invalid(format!(
                "fault on `{}`: the nft ruleset must declare its own table (`table inet NAME {{ … }}`) so it can be removed",
                f.vm
            ));
        }
    }
    for p in &f.stop_service {
        if !vm.services.iter().any(|s| s.port == *p) {
            return invalid(format!(
                "fault on `{}`: stop_service {p} names no service of that VM",
                f.vm
            ));
        }
    }
    for p in &f.listen {
        if *p == 0 || *p == 22 || vm.services.iter().any(|s| s.port == *p) {
            return invalid(format!(
                "fault on `{}`: listen port {p} is 0, 22 or already a service",
                f.vm
            ));
        }
    }
    Ok(())
}

/// Applies a cloud fault to a topology; returns the new topology and the fault that undoes it.
pub fn apply_cloud_fault(
    t: &Topology,
    f: &CloudFault,
) -> Result<(Topology, Vec<CloudUndo>), ScenarioError> {
    let mut t = t.clone();
    let mut undo = Vec::new();
    match f {
        CloudFault::NsgRule { nsg, rule, .. } => {
            let n = t
                .nsgs
                .iter_mut()
                .find(|n| &n.name == nsg)
                .ok_or_else(|| ScenarioError::Invalid(format!("NSG `{nsg}` does not exist")))?;
            if let Some(pos) = n
                .rules
                .iter()
                .position(|r| r.name.eq_ignore_ascii_case(&rule.name))
            {
                let old = n.rules.remove(pos);
                undo.push(CloudUndo::RestoreNsgRule {
                    nsg: nsg.clone(),
                    rule: old,
                });
            } else {
                undo.push(CloudUndo::RemoveNsgRule {
                    nsg: nsg.clone(),
                    name: rule.name.clone(),
                });
            }
            n.rules.push(rule.clone());
            validate_nsg(n)?;
        }
        CloudFault::Route {
            route_table,
            route,
            associate_subnet,
            ..
        } => {
            if !t.route_tables.iter().any(|r| &r.name == route_table) {
                t.route_tables.push(RouteTable {
                    name: route_table.clone(),
                    routes: vec![],
                });
                undo.push(CloudUndo::RemoveRouteTable {
                    name: route_table.clone(),
                });
            }
            let rt = t
                .route_tables
                .iter_mut()
                .find(|r| &r.name == route_table)
                .expect("route table exists");
            if let Some(pos) = rt.routes.iter().position(|r| r.name == route.name) {
                let old = rt.routes.remove(pos);
                undo.push(CloudUndo::RestoreRoute {
                    route_table: route_table.clone(),
                    route: old,
                });
            } else {
                undo.push(CloudUndo::RemoveRoute {
                    route_table: route_table.clone(),
                    name: route.name.clone(),
                });
            }
            rt.routes.push(route.clone());
            if let Some(sn) = associate_subnet {
                let s = t
                    .vnet
                    .subnets
                    .iter_mut()
                    .find(|s| &s.name == sn)
                    .ok_or_else(|| {
                        ScenarioError::Invalid(format!("subnet `{sn}` does not exist"))
                    })?;
                undo.push(CloudUndo::SetSubnetRouteTable {
                    subnet: sn.clone(),
                    route_table: s.route_table.clone(),
                });
                s.route_table = Some(route_table.clone());
            }
        }
        CloudFault::SubnetNsg { subnet, nsg, .. } => {
            if t.nsg(nsg).is_none() {
                t.nsgs.push(Nsg {
                    name: nsg.clone(),
                    rules: vec![],
                });
                undo.push(CloudUndo::RemoveNsg { name: nsg.clone() });
            }
            let s = t
                .vnet
                .subnets
                .iter_mut()
                .find(|s| &s.name == subnet)
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!("subnet `{subnet}` does not exist"))
                })?;
            undo.push(CloudUndo::SetSubnetNsg {
                subnet: subnet.clone(),
                nsg: s.nsg.clone(),
            });
            s.nsg = Some(nsg.clone());
        }
        CloudFault::RemoveServiceEndpoint {
            subnet, service, ..
        } => {
            let s = t
                .vnet
                .subnets
                .iter_mut()
                .find(|s| &s.name == subnet)
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!("subnet `{subnet}` does not exist"))
                })?;
            if !s.service_endpoints.contains(service) {
                return invalid(format!(
                    "subnet `{subnet}` has no service endpoint `{service}` to remove"
                ));
            }
            undo.push(CloudUndo::SetServiceEndpoints {
                subnet: subnet.clone(),
                endpoints: s.service_endpoints.clone(),
            });
            s.service_endpoints.retain(|e| e != service);
        }
        CloudFault::AddServiceEndpoint {
            subnet, service, ..
        } => {
            let s = t
                .vnet
                .subnets
                .iter_mut()
                .find(|s| &s.name == subnet)
                .ok_or_else(|| {
                    ScenarioError::Invalid(format!("subnet `{subnet}` does not exist"))
                })?;
            undo.push(CloudUndo::SetServiceEndpoints {
                subnet: subnet.clone(),
                endpoints: s.service_endpoints.clone(),
            });
            if !s.service_endpoints.contains(service) {
                s.service_endpoints.push(service.clone());
            }
        }
    }
    undo.reverse();
    t.validate()?;
    Ok((t, undo))
}

/// One step that undoes part of a cloud fault.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CloudUndo {
    /// Remove a rule that the fault added.
    RemoveNsgRule {
        /// NSG.
        nsg: String,
        /// Rule name.
        name: String,
    },
    /// Put back a rule the fault replaced.
    RestoreNsgRule {
        /// NSG.
        nsg: String,
        /// The old rule.
        rule: NsgRule,
    },
    /// Remove a route table the fault created.
    RemoveRouteTable {
        /// Name.
        name: String,
    },
    /// Remove a route the fault added.
    RemoveRoute {
        /// Table.
        route_table: String,
        /// Route name.
        name: String,
    },
    /// Put back a route the fault replaced.
    RestoreRoute {
        /// Table.
        route_table: String,
        /// The old route.
        route: Route,
    },
    /// Restore a subnet's route-table association.
    SetSubnetRouteTable {
        /// Subnet.
        subnet: String,
        /// The old association.
        route_table: Option<String>,
    },
    /// Remove an NSG the fault created.
    RemoveNsg {
        /// Name.
        name: String,
    },
    /// Restore a subnet's NSG association.
    SetSubnetNsg {
        /// Subnet.
        subnet: String,
        /// The old association.
        nsg: Option<String>,
    },
    /// Restore a subnet's service endpoints.
    SetServiceEndpoints {
        /// Subnet.
        subnet: String,
        /// The old list.
        endpoints: Vec<String>,
    },
}

/// Applies undo steps in order. Steps that no longer apply (someone removed the object) are
/// skipped, so clearing is idempotent.
pub fn apply_undo(t: &Topology, steps: &[CloudUndo]) -> Topology {
    let mut t = t.clone();
    for s in steps {
        match s {
            CloudUndo::RemoveNsgRule { nsg, name } => {
                if let Some(n) = t.nsgs.iter_mut().find(|n| &n.name == nsg) {
                    n.rules.retain(|r| !r.name.eq_ignore_ascii_case(name));
                }
            }
            CloudUndo::RestoreNsgRule { nsg, rule } => {
                if let Some(n) = t.nsgs.iter_mut().find(|n| &n.name == nsg) {
                    n.rules.retain(|r| !r.name.eq_ignore_ascii_case(&rule.name));
                    n.rules.push(rule.clone());
                }
            }
            CloudUndo::RemoveRouteTable { name } => {
                t.route_tables.retain(|r| &r.name != name);
                for s in &mut t.vnet.subnets {
                    if s.route_table.as_ref() == Some(name) {
                        s.route_table = None;
                    }
                }
            }
            CloudUndo::RemoveRoute { route_table, name } => {
                if let Some(rt) = t.route_tables.iter_mut().find(|r| &r.name == route_table) {
                    rt.routes.retain(|r| &r.name != name);
                }
            }
            CloudUndo::RestoreRoute { route_table, route } => {
                if let Some(rt) = t.route_tables.iter_mut().find(|r| &r.name == route_table) {
                    rt.routes.retain(|r| r.name != route.name);
                    rt.routes.push(route.clone());
                }
            }
            CloudUndo::SetSubnetRouteTable {
                subnet,
                route_table,
            } => {
                let exists = route_table
                    .as_ref()
                    .is_none_or(|n| t.route_tables.iter().any(|r| &r.name == n));
                if let Some(s) = t.vnet.subnets.iter_mut().find(|s| &s.name == subnet) {
                    if exists {
                        s.route_table = route_table.clone();
                    }
                }
            }
            CloudUndo::RemoveNsg { name } => {
                t.nsgs.retain(|n| &n.name != name);
                for s in &mut t.vnet.subnets {
                    if s.nsg.as_ref() == Some(name) {
                        s.nsg = None;
                    }
                }
                for v in &mut t.vms {
                    if v.nsg.as_ref() == Some(name) {
                        v.nsg = None;
                    }
                }
            }
            CloudUndo::SetSubnetNsg { subnet, nsg } => {
                let exists = nsg.as_ref().is_none_or(|n| t.nsg(n).is_some());
                if let Some(s) = t.vnet.subnets.iter_mut().find(|s| &s.name == subnet) {
                    if exists {
                        s.nsg = nsg.clone();
                    }
                }
            }
            CloudUndo::SetServiceEndpoints { subnet, endpoints } => {
                if let Some(s) = t.vnet.subnets.iter_mut().find(|s| &s.name == subnet) {
                    s.service_endpoints = endpoints.clone();
                }
            }
        }
    }
    t
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const BASE: &str = r#"
name = "t"
[topology.vnet]
name = "vnet1"
address_space = ["198.18.0.0/16"]
[[topology.vnet.subnets]]
name = "default"
address_prefix = "198.18.1.0/24"
service_endpoints = ["Microsoft.Storage"]
[[topology.vms]]
name = "source-vm"
subnet = "default"
private_ip = "198.18.1.4"
nsg = "source-nsg"
[[topology.vms]]
name = "dest-vm"
subnet = "default"
private_ip = "198.18.1.5"
nsg = "dest-nsg"
services = [{ kind = "iperf2", port = 5001 }]
[[topology.nsgs]]
name = "source-nsg"
[[topology.nsgs]]
name = "dest-nsg"
[[topology.nsgs.rules]]
name = "allow-ssh"
priority = 100
direction = "Inbound"
access = "Allow"
protocol = "Tcp"
source_address_prefix = "*"
source_port_range = "*"
destination_address_prefix = "*"
destination_port_range = "22"
"#;

    fn with(extra: &str) -> Result<Scenario, ScenarioError> {
        Scenario::from_toml_str(&format!("{BASE}\n{extra}"))
    }

    #[test]
    fn service_protocols() {
        let udp = BASE.replace(
            "{ kind = \"iperf2\", port = 5001 }",
            "{ kind = \"iperf2\", port = 5001, protocol = \"udp\" }",
        );
        assert_eq!(
            Scenario::from_toml_str(&udp).unwrap().topology.vms[1].services[0].protocol,
            "udp"
        );
        let bad = BASE.replace(
            "{ kind = \"iperf2\", port = 5001 }",
            "{ kind = \"http\", port = 5001, protocol = \"udp\" }",
        );
        assert!(Scenario::from_toml_str(&bad)
            .unwrap_err()
            .to_string()
            .contains("udp only for iperf2"));
        assert_eq!(
            Scenario::from_toml_str(BASE).unwrap().topology.vms[1].services[0].protocol,
            "tcp"
        );
    }

    #[test]
    fn base_parses() {
        let s = with("").unwrap();
        assert_eq!(s.topology.vms.len(), 2);
        assert_eq!(s.topology.vms[0].mtu, 1500);
        assert_eq!(s.topology.resource_group, "netlab-rg");
    }

    #[test]
    fn address_outside_lab_range_refused() {
        let t = BASE.replace("198.18.1.5\"", "10.0.0.5\"");
        let e = Scenario::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("outside 198.18.0.0/15"), "{e}");
        let t = BASE.replace("[\"198.18.0.0/16\"]", "[\"10.0.0.0/16\"]");
        let e = Scenario::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("outside 198.18.0.0/15"), "{e}");
    }

    #[test]
    fn bad_prefix_refused() {
        let t = BASE.replace("198.18.1.0/24", "198.18.1.0/40");
        assert!(Scenario::from_toml_str(&t).is_err());
        let t = BASE.replace("198.18.1.0/24", "198.18.1.7/24");
        let e = Scenario::from_toml_str(&t).unwrap_err().to_string();
        assert!(e.contains("host bits"), "{e}");
        let t = BASE.replace("198.18.1.0/24", "198.17.1.0/24");
        assert!(Scenario::from_toml_str(&t).is_err());
    }

    #[test]
    fn reserved_and_duplicate_addresses_refused() {
        let t = BASE.replace("198.18.1.5\"", "198.18.1.3\"");
        assert!(Scenario::from_toml_str(&t)
            .unwrap_err()
            .to_string()
            .contains("reserves"));
        let t = BASE.replace("198.18.1.5\"", "198.18.1.4\"");
        assert!(Scenario::from_toml_str(&t)
            .unwrap_err()
            .to_string()
            .contains("two VMs"));
    }

    #[test]
    fn duplicate_priority_refused_like_azure() {
        let e = with(
            r#"
[[faults.cloud]]
kind = "nsg_rule"
nsg = "dest-nsg"
rule = { name = "x", priority = 100, direction = "Inbound", access = "Deny", protocol = "Tcp", source_address_prefix = "*", source_port_range = "*", destination_address_prefix = "*", destination_port_range = "8080" }
"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("priority 100"), "{e}");
        // Same priority in the other direction is fine.
        with(
            r#"
[[faults.cloud]]
kind = "nsg_rule"
nsg = "dest-nsg"
rule = { name = "x", priority = 100, direction = "Outbound", access = "Deny", protocol = "Tcp", source_address_prefix = "*", source_port_range = "*", destination_address_prefix = "*", destination_port_range = "8080" }
"#,
        )
        .unwrap();
    }

    #[test]
    fn rule_fields_checked() {
        for bad in [
            r#"priority = 50, direction = "Inbound", access = "Deny", protocol = "Tcp""#,
            r#"priority = 200, direction = "In", access = "Deny", protocol = "Tcp""#,
            r#"priority = 200, direction = "Inbound", access = "Drop", protocol = "Tcp""#,
            r#"priority = 200, direction = "Inbound", access = "Deny", protocol = "Sctp""#,
        ] {
            let t = format!(
                "[[faults.cloud]]\nkind = \"nsg_rule\"\nnsg = \"dest-nsg\"\nrule = {{ name = \"x\", {bad}, source_address_prefix = \"*\", source_port_range = \"*\", destination_address_prefix = \"*\", destination_port_range = \"80\" }}\n"
            );
            assert!(with(&t).is_err(), "{bad}");
        }
        let t = "[[faults.cloud]]\nkind = \"nsg_rule\"\nnsg = \"dest-nsg\"\nrule = { name = \"x\", priority = 300, direction = \"Inbound\", access = \"Deny\", protocol = \"Tcp\", source_address_prefixes = [\"198.18.1.0/24\", \"VirtualNetwork\"], source_port_range = \"*\", destination_address_prefix = \"*\", destination_port_ranges = [\"80\", \"1000-2000\"] }\n";
        assert!(with(t)
            .unwrap_err()
            .to_string()
            .contains("cannot be combined"));
        let t = t
            .replace(", \\\"VirtualNetwork\\\"", "")
            .replace(", \"VirtualNetwork\"", "");
        with(&t).unwrap();
        let t = t.replace("1000-2000", "2000-1000");
        assert!(with(&t).is_err());
    }

    #[test]
    fn unknown_fields_and_refs_refused() {
        assert!(with("[[faults.vm]]\nvm = \"nope\"\nloss_pct = 5.0\n").is_err());
        assert!(with("[[faults.vm]]\nvm = \"dest-vm\"\nloss = 5.0\n").is_err());
        assert!(with("[[faults.vm]]\nvm = \"dest-vm\"\nloss_pct = 500.0\n").is_err());
        assert!(with("[[faults.vm]]\nvm = \"dest-vm\"\nstop_service = [8080]\n").is_err());
        with("[[faults.vm]]\nvm = \"dest-vm\"\nstop_service = [5001]\n").unwrap();
        assert!(with("[[faults.vm]]\nvm = \"dest-vm\"\nnft = \"add rule x\"\n").is_err());
        assert!(with("[[faults.vm]]\nvm = \"dest-vm\"\nrate = \"fast\"\n").is_err());
    }

    #[test]
    fn route_faults_validated() {
        let ok = "[[faults.cloud]]\nkind = \"route\"\nroute_table = \"rt\"\nassociate_subnet = \"default\"\nroute = { name = \"r\", address_prefix = \"198.18.1.5/32\", next_hop_type = \"VirtualAppliance\", next_hop_ip_address = \"198.18.1.100\" }\n";
        let s = with(ok).unwrap();
        let (t, undo) = apply_cloud_fault(&s.topology, &s.faults.cloud[0]).unwrap();
        assert_eq!(
            t.subnet("default").unwrap().route_table.as_deref(),
            Some("rt")
        );
        let back = apply_undo(&t, &undo);
        assert_eq!(back, s.topology);
        assert!(with(&ok.replace("198.18.1.100", "10.1.1.1")).is_err());
        assert!(with(&ok.replace("VirtualAppliance", "Teleport")).is_err());
    }

    #[test]
    fn cloud_fault_undo_restores_topology() {
        let s = with(
            "[[faults.cloud]]\nkind = \"remove_service_endpoint\"\nsubnet = \"default\"\nservice = \"Microsoft.Storage\"\n[[faults.cloud]]\nkind = \"subnet_nsg\"\nsubnet = \"default\"\nnsg = \"sub-nsg\"\n",
        )
        .unwrap();
        let mut t = s.topology.clone();
        let mut undos = Vec::new();
        for f in &s.faults.cloud {
            let (nt, u) = apply_cloud_fault(&t, f).unwrap();
            t = nt;
            undos.push(u);
        }
        assert!(t.subnet("default").unwrap().service_endpoints.is_empty());
        assert_eq!(t.subnet("default").unwrap().nsg.as_deref(), Some("sub-nsg"));
        for u in undos.iter().rev() {
            t = apply_undo(&t, u);
        }
        assert_eq!(t, s.topology);
    }

    #[test]
    fn merge_named_arrays() {
        let mut a: toml::Value =
            toml::from_str("[[x]]\nname = \"a\"\nv = 1\n[[x]]\nname = \"b\"\nv = 2\n").unwrap();
        let b: toml::Value =
            toml::from_str("[[x]]\nname = \"b\"\nv = 3\n[[x]]\nname = \"c\"\nv = 4\n").unwrap();
        merge_toml(&mut a, b);
        let x = a.get("x").unwrap().as_array().unwrap();
        assert_eq!(x.len(), 3);
        assert_eq!(x[1].get("v").unwrap().as_integer(), Some(3));
    }

    #[test]
    fn bandwidth_wire_loss_and_traffic_fields() {
        let cap = BASE.replace(
            "private_ip = \"198.18.1.5\"",
            "private_ip = \"198.18.1.5\"\nbandwidth_mbps = 100",
        );
        let s = Scenario::from_toml_str(&cap).unwrap();
        assert_eq!(s.topology.vm("dest-vm").unwrap().bandwidth_mbps, Some(100));
        assert_eq!(s.topology.vm("source-vm").unwrap().bandwidth_mbps, None);
        let e = Scenario::from_toml_str(&cap.replace("= 100", "= 0"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bandwidth_mbps 0"), "{e}");
        let f = with("[[faults.vm]]\nvm = \"source-vm\"\nwire_loss_pct = 20.0\n").unwrap();
        assert_eq!(f.faults.vm[0].wire_loss_pct, Some(20.0));
        assert!(with("[[faults.vm]]\nvm = \"source-vm\"\nwire_loss_pct = 120.0\n").is_err());
        let t = with("[[traffic]]\nvm = \"source-vm\"\nkind = \"http\"\ntarget = \"198.18.1.5:8080\"\ninterval_ms = 300\n").unwrap();
        assert_eq!(t.traffic[0].interval_ms, 300);
        assert!(with("[[traffic]]\nvm = \"source-vm\"\nkind = \"dns\"\nbogus = 1\n").is_err());
        let e =
            with("[[traffic]]\nvm = \"source-vm\"\nkind = \"http\"\ntarget = \"192.168.1.5:80\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("outside 198.18.0.0/15"), "{e}");
    }

    #[test]
    fn every_demo_scenario_is_valid() {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo");
        let mut n = 0;
        for e in std::fs::read_dir(&demo).unwrap().flatten() {
            let p = e.path().join("scenario.toml");
            if p.is_file() {
                let s = Scenario::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(
                    !s.expected_causes.is_empty(),
                    "{} names no expected cause",
                    p.display()
                );
                assert!(
                    !s.symptom.reported.is_empty(),
                    "{} has no symptom",
                    p.display()
                );
                assert_eq!(
                    format!("use_case_{}", s.name.trim_start_matches("use_case_")),
                    e.file_name().to_string_lossy(),
                    "name matches the folder"
                );
                n += 1;
            }
        }
        assert!(n >= 23, "expected all 23 scenarios, found {n}");
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for text in [
            "",
            "[[[",
            "topology = 5",
            "name = \"x\"\n[topology.vnet]\nname=\"v\"\naddress_space=[\"/\"]",
        ] {
            let _ = Scenario::from_toml_str(text);
        }
    }
}
