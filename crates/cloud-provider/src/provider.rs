//! The [`CloudProvider`] trait: what the tools ask of a cloud control plane. The Azure
//! implementation is [`crate::azure::AzureCli`]; another cloud implements the same trait.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::CloudError;
use crate::models::{
    BlobItem, EffectiveNsg, EffectiveRoute, NetworkInterface, NetworkSecurityGroup, PacketCapture,
    PacketCaptureStatus, Route, RouteTable, SecurityRule, StorageAccount, StorageNetworkRules,
    Subnet, VirtualMachine, VmExtension,
};
use safety_shell::exec::RunCommandOutput;

/// A new NSG rule (`az network nsg rule create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsgRuleSpec {
    /// Rule name.
    pub name: String,
    /// 100-4096.
    pub priority: u32,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// `Allow` or `Deny`.
    pub access: String,
    /// `Tcp`, `Udp`, `Icmp`, `*`, …
    pub protocol: String,
    /// Source prefixes (`*`, CIDRs, service tags).
    pub source_address_prefixes: Vec<String>,
    /// Source port ranges.
    pub source_port_ranges: Vec<String>,
    /// Destination prefixes.
    pub destination_address_prefixes: Vec<String>,
    /// Destination port ranges.
    pub destination_port_ranges: Vec<String>,
    /// Free text.
    pub description: Option<String>,
}

/// How a subnet association changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssociationChange {
    /// Associate this resource (a name in the same resource group, or a resource id).
    Set(String),
    /// Remove the association.
    Remove,
}

/// A change to a subnet (`az network vnet subnet update`). `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetUpdate {
    /// The subnet's NSG.
    pub network_security_group: Option<AssociationChange>,
    /// The subnet's route table.
    pub route_table: Option<AssociationChange>,
    /// The complete list of service endpoints (e.g. `Microsoft.Storage`); `Some(vec![])`
    /// removes them all.
    pub service_endpoints: Option<Vec<String>>,
}

/// A Network Watcher packet capture to start on a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Capture name.
    pub name: String,
    /// The VM's resource group.
    pub resource_group: String,
    /// The VM.
    pub vm: String,
    /// Storage account (name or id) that receives the capture file.
    pub storage_account: Option<String>,
    /// Local file on the VM instead of (or besides) storage.
    pub file_path: Option<String>,
    /// Seconds before the capture stops by itself.
    pub time_limit_secs: Option<u32>,
    /// Bytes kept per packet (0 = all).
    pub bytes_per_packet: Option<u32>,
    /// Maximum bytes of the session.
    pub capture_size_bytes: Option<u64>,
    /// Filters as the JSON array `--filters` takes.
    pub filters_json: Option<String>,
}

/// How blob commands authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlobAuth {
    /// `--auth-mode login`: the signed-in identity (needs a Storage Blob Data role).
    #[default]
    Login,
    /// `--auth-mode key`: the account key from the `AZURE_STORAGE_KEY` environment variable
    /// that the operator exports (never on the command line).
    Key,
}

impl BlobAuth {
    /// `login` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobAuth::Login => "login",
            BlobAuth::Key => "key",
        }
    }

    /// Parses `login` / `key` (as in `STORAGE_AUTH_MODE`).
    pub fn parse(s: &str) -> Option<BlobAuth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "login" => Some(BlobAuth::Login),
            "key" => Some(BlobAuth::Key),
            _ => None,
        }
    }
}

/// Where a blob lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobLocation {
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// How to authenticate.
    pub auth: BlobAuth,
}

/// What the tools ask of a cloud control plane. Every method runs gated commands and
/// returns typed models or a typed [`CloudError`]; invalid output is an error, never an
/// empty result.
pub trait CloudProvider: Send + Sync {
    /// A short name (`azure`).
    fn name(&self) -> &'static str;

    /// A VM by name.
    fn vm_show(&self, resource_group: &str, name: &str) -> Result<VirtualMachine, CloudError>;
    /// Every VM of a resource group.
    fn vm_list(&self, resource_group: &str) -> Result<Vec<VirtualMachine>, CloudError>;
    /// The VM whose NIC holds `ip` in `resource_group` ([`CloudError::NotFound`] if none).
    fn vm_by_private_ip(
        &self,
        resource_group: &str,
        ip: Ipv4Addr,
    ) -> Result<VirtualMachine, CloudError>;
    /// The extensions of a VM (`az vm extension list`). Providers that cannot list them keep
    /// this default, which says so as an [`CloudError::InvalidArgument`].
    fn vm_extensions(
        &self,
        resource_group: &str,
        vm: &str,
    ) -> Result<Vec<VmExtension>, CloudError> {
        let _ = (resource_group, vm);
        Err(CloudError::InvalidArgument {
            what: "query".into(),
            value: "vm extension list".into(),
            message: "this provider cannot list VM extensions".into(),
        })
    }
    /// The NICs of a VM, with their details.
    fn vm_nics(&self, resource_group: &str, vm: &str) -> Result<Vec<NetworkInterface>, CloudError>;
    /// One NIC.
    fn nic_show(&self, resource_group: &str, nic: &str) -> Result<NetworkInterface, CloudError>;
    /// Every NIC of a resource group.
    fn nic_list(&self, resource_group: &str) -> Result<Vec<NetworkInterface>, CloudError>;
    /// Every NIC of the subscription, across resource groups (`az network nic list` without
    /// a resource group). Providers that cannot list across groups keep this default, which
    /// says so as an [`CloudError::InvalidArgument`].
    fn nic_list_all(&self) -> Result<Vec<NetworkInterface>, CloudError> {
        Err(CloudError::InvalidArgument {
            what: "scope".into(),
            value: "subscription".into(),
            message: "this provider cannot list NICs across resource groups; name the groups"
                .into(),
        })
    }
    /// The effective NSGs of a NIC, each with where it is associated.
    fn effective_nsgs(
        &self,
        resource_group: &str,
        nic: &str,
    ) -> Result<Vec<EffectiveNsg>, CloudError>;
    /// The effective routes of a NIC.
    fn effective_routes(
        &self,
        resource_group: &str,
        nic: &str,
    ) -> Result<Vec<EffectiveRoute>, CloudError>;

    /// One NSG.
    fn nsg_show(&self, resource_group: &str, nsg: &str)
        -> Result<NetworkSecurityGroup, CloudError>;
    /// Every NSG of a resource group.
    fn nsg_list(&self, resource_group: &str) -> Result<Vec<NetworkSecurityGroup>, CloudError>;
    /// The rules of an NSG (with Azure's default rules when asked).
    fn nsg_rule_list(
        &self,
        resource_group: &str,
        nsg: &str,
        include_default: bool,
    ) -> Result<Vec<SecurityRule>, CloudError>;
    /// Creates a rule and returns it as Azure stored it.
    fn nsg_rule_create(
        &self,
        resource_group: &str,
        nsg: &str,
        rule: &NsgRuleSpec,
        reasoning: &str,
    ) -> Result<SecurityRule, CloudError>;
    /// Deletes a rule.
    fn nsg_rule_delete(
        &self,
        resource_group: &str,
        nsg: &str,
        rule: &str,
        reasoning: &str,
    ) -> Result<(), CloudError>;

    /// One route table.
    fn route_table_show(&self, resource_group: &str, name: &str) -> Result<RouteTable, CloudError>;
    /// Every route table of a resource group.
    fn route_table_list(&self, resource_group: &str) -> Result<Vec<RouteTable>, CloudError>;
    /// The routes of a route table.
    fn route_list(&self, resource_group: &str, table: &str) -> Result<Vec<Route>, CloudError>;

    /// One subnet.
    fn subnet_show(
        &self,
        resource_group: &str,
        vnet: &str,
        name: &str,
    ) -> Result<Subnet, CloudError>;
    /// Changes a subnet's NSG, route table or service endpoints; returns the new subnet.
    fn subnet_update(
        &self,
        resource_group: &str,
        vnet: &str,
        name: &str,
        update: &SubnetUpdate,
        reasoning: &str,
    ) -> Result<Subnet, CloudError>;

    /// Runs a shell script on a VM through the run-command agent (the result envelope
    /// unwrapped; Azure keeps only the last 4 KiB of each stream — see
    /// [`crate::remote::RemoteRunner`] for paging).
    fn run_command(
        &self,
        resource_group: &str,
        vm: &str,
        script: &str,
        reasoning: &str,
    ) -> Result<(RunCommandOutput, String), CloudError>;

    /// Starts a packet capture on a VM.
    fn capture_create(
        &self,
        spec: &CaptureSpec,
        reasoning: &str,
    ) -> Result<PacketCapture, CloudError>;
    /// One capture (by the Network Watcher's region).
    fn capture_show(&self, location: &str, name: &str) -> Result<PacketCapture, CloudError>;
    /// A capture's status.
    fn capture_status(&self, location: &str, name: &str)
        -> Result<PacketCaptureStatus, CloudError>;
    /// Stops a capture.
    fn capture_stop(&self, location: &str, name: &str, reasoning: &str) -> Result<(), CloudError>;
    /// Deletes a capture resource (not its file).
    fn capture_delete(&self, location: &str, name: &str, reasoning: &str)
        -> Result<(), CloudError>;
    /// Every capture in a region.
    fn capture_list(&self, location: &str) -> Result<Vec<PacketCapture>, CloudError>;

    /// Uploads a local file as a blob (overwriting).
    fn blob_upload(
        &self,
        at: &BlobLocation,
        blob: &str,
        file: &Path,
        reasoning: &str,
    ) -> Result<(), CloudError>;
    /// Downloads a blob into a local file.
    fn blob_download(
        &self,
        at: &BlobLocation,
        blob: &str,
        file: &Path,
        reasoning: &str,
    ) -> Result<(), CloudError>;
    /// Blobs whose names start with `prefix`.
    fn blob_list(&self, at: &BlobLocation, prefix: &str) -> Result<Vec<BlobItem>, CloudError>;
    /// One blob's properties.
    fn blob_show(&self, at: &BlobLocation, blob: &str) -> Result<BlobItem, CloudError>;
    /// Deletes a blob.
    fn blob_delete(&self, at: &BlobLocation, blob: &str, reasoning: &str)
        -> Result<(), CloudError>;

    /// The region of a resource group.
    fn resource_group_location(&self, resource_group: &str) -> Result<String, CloudError>;

    /// One storage account with its firewall (`networkRuleSet`). Providers that cannot read
    /// storage accounts keep this default, which says so as an
    /// [`CloudError::InvalidArgument`].
    fn storage_account_show(
        &self,
        resource_group: &str,
        name: &str,
    ) -> Result<StorageAccount, CloudError> {
        let _ = (resource_group, name);
        Err(no_storage("storage account show"))
    }
    /// Every storage account of a resource group (default: not supported, as above).
    fn storage_account_list(
        &self,
        resource_group: &str,
    ) -> Result<Vec<StorageAccount>, CloudError> {
        let _ = resource_group;
        Err(no_storage("storage account list"))
    }
    /// The IP and virtual-network rules of a storage account's firewall (default: not
    /// supported, as above).
    fn storage_network_rule_list(
        &self,
        resource_group: &str,
        account: &str,
    ) -> Result<StorageNetworkRules, CloudError> {
        let _ = (resource_group, account);
        Err(no_storage("storage account network-rule list"))
    }
}

fn no_storage(query: &str) -> CloudError {
    CloudError::InvalidArgument {
        what: "query".into(),
        value: query.into(),
        message: "this provider cannot read storage accounts".into(),
    }
}
