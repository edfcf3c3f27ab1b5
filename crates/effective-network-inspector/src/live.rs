//! Live effective state: an [`EffectiveStateSource`] over cloud-provider's
//! [`CloudProvider`] (in production `AzureCli`, i.e. `az` through the safety-shell gate; in
//! the lab, netlab's `az` front end).
//!
//! Scopes:
//! - `vm`: `vm show`, then `nic show` for each NIC of its network profile (in the NIC's own
//!   resource group);
//! - `nic`: `nic show` in the given resource group;
//! - `vnet`: `nic list` in the VNet's resource group and in every other resource group the
//!   caller names, keeping the NICs with an IP configuration in one of the VNet's subnets
//!   (cloud-provider has no subscription-wide NIC query, so a NIC in a resource group nobody
//!   named is not found; the snapshot records which groups were searched).
//!
//! NIC private addresses come from the NIC resource, so traces work on live snapshots. Each
//! NIC's effective routes and NSGs are read by a bounded pool of threads (throttling is
//! retried inside the provider). Malformed az output is an error naming the NIC, never an
//! empty table.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cloud_provider::error::CloudError;
use cloud_provider::models::{resource_group_of, NetworkInterface};
use cloud_provider::provider::CloudProvider;

use crate::source::{EffectiveStateSource, NicRef, Scope};
use crate::state::{nsgs_from_effective, NicState, NsgEntry, RouteEntry};
use crate::EniError;

/// The default number of NICs read at once.
pub const DEFAULT_WORKERS: usize = 4;
/// The most NICs read at once.
pub const MAX_WORKERS: usize = 32;

/// Effective state read live through a [`CloudProvider`].
pub struct LiveSource {
    provider: Arc<dyn CloudProvider>,
    resource_group: Option<String>,
    search_groups: Vec<String>,
    workers: usize,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("provider", &self.provider.name())
            .field("resource_group", &self.resource_group)
            .field("search_groups", &self.search_groups)
            .field("workers", &self.workers)
            .finish()
    }
}

/// The parts of a VNet resource id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnetId {
    /// The id as given, without a trailing slash.
    pub id: String,
    /// Its resource group.
    pub resource_group: String,
    /// The VNet's name.
    pub name: String,
}

impl VnetId {
    /// Parses `/subscriptions/S/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/V`.
    pub fn parse(id: &str) -> Result<VnetId, EniError> {
        let bad = || {
            EniError::Usage(format!(
                "--vnet-id {id:?} is not a VNet resource id; give /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/NAME"
            ))
        };
        let trimmed = id.trim().trim_end_matches('/');
        let parts: Vec<&str> = trimmed.split('/').collect();
        // ["", "subscriptions", S, "resourceGroups", RG, "providers", "Microsoft.Network", "virtualNetworks", V]
        if parts.len() != 9
            || !parts[0].is_empty()
            || !parts[1].eq_ignore_ascii_case("subscriptions")
            || !parts[3].eq_ignore_ascii_case("resourceGroups")
            || !parts[5].eq_ignore_ascii_case("providers")
            || !parts[6].eq_ignore_ascii_case("Microsoft.Network")
            || !parts[7].eq_ignore_ascii_case("virtualNetworks")
            || parts.iter().skip(1).any(|p| p.is_empty())
        {
            return Err(bad());
        }
        Ok(VnetId {
            id: trimmed.to_string(),
            resource_group: parts[4].to_string(),
            name: parts[8].to_string(),
        })
    }

    /// Whether a subnet id belongs to this VNet (Azure ids compare case-insensitively).
    pub fn contains_subnet(&self, subnet_id: &str) -> bool {
        let want = format!("{}/subnets/", self.id.to_ascii_lowercase());
        subnet_id.to_ascii_lowercase().starts_with(&want)
    }
}

fn nic_ref(nic: &NetworkInterface, fallback_rg: &str) -> NicRef {
    NicRef {
        name: nic.name.clone(),
        ip_addresses: nic.private_ips().iter().map(|s| s.to_string()).collect(),
        resource_group: Some(
            nic.resource_group
                .clone()
                .or_else(|| nic.id.as_deref().and_then(resource_group_of))
                .unwrap_or_else(|| fallback_rg.to_string()),
        ),
    }
}

impl LiveSource {
    /// A live source; `resource_group` is where `vm` and `nic` scopes look.
    pub fn new(provider: Arc<dyn CloudProvider>, resource_group: Option<String>) -> Self {
        LiveSource {
            provider,
            resource_group,
            search_groups: Vec::new(),
            workers: DEFAULT_WORKERS,
        }
    }

    /// How many NICs are read at once (clamped to 1..=[`MAX_WORKERS`]).
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.clamp(1, MAX_WORKERS);
        self
    }

    /// More resource groups where a `vnet` scope looks for the VNet's NICs.
    pub fn with_search_groups(mut self, groups: Vec<String>) -> Self {
        self.search_groups = groups;
        self
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    fn rg(&self, what: &str) -> Result<&str, EniError> {
        self.resource_group.as_deref().ok_or_else(|| {
            EniError::Usage(format!(
                "{what} needs a resource group; pass --resource-group or set RESOURCE_GROUP in --config"
            ))
        })
    }

    fn nic_rg<'a>(&'a self, nic: &'a NicRef) -> Result<&'a str, EniError> {
        match &nic.resource_group {
            Some(g) => Ok(g),
            None => self.rg(&format!("reading NIC {}", nic.name)),
        }
    }

    /// The resource groups a `vnet` scope searches, in order, without duplicates.
    pub fn vnet_groups(&self, vnet: &VnetId) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for g in std::iter::once(&vnet.resource_group)
            .chain(self.resource_group.iter())
            .chain(self.search_groups.iter())
        {
            if seen.insert(g.to_ascii_lowercase()) {
                out.push(g.clone());
            }
        }
        out
    }

    /// The NICs to consider for a VNet scope, each with the resource group it was found in:
    /// every NIC of the subscription when the provider can list across groups, otherwise
    /// the NICs of the VNet's own group, `--resource-group` and every `--search-group`.
    fn vnet_candidates(&self, vnet: &VnetId) -> Result<Vec<(String, NetworkInterface)>, EniError> {
        match self.provider.nic_list_all() {
            Ok(all) => Ok(all
                .into_iter()
                .map(|nic| {
                    let g = nic
                        .id
                        .as_deref()
                        .and_then(resource_group_of)
                        .unwrap_or_else(|| vnet.resource_group.clone());
                    (g, nic)
                })
                .collect()),
            Err(CloudError::InvalidArgument { .. }) => {
                let mut out = Vec::new();
                for g in self.vnet_groups(vnet) {
                    for nic in self.provider.nic_list(&g)? {
                        out.push((g.clone(), nic));
                    }
                }
                Ok(out)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn vnet_nics(&self, id: &str) -> Result<Vec<NicRef>, EniError> {
        let vnet = VnetId::parse(id)?;
        let groups = self.vnet_groups(&vnet);
        let mut seen_ids = BTreeSet::new();
        let mut out: Vec<NicRef> = Vec::new();
        {
            for (g, nic) in self.vnet_candidates(&vnet)? {
                let g = &g;
                let in_vnet = nic.ip_configurations.iter().any(|c| {
                    c.subnet
                        .as_ref()
                        .is_some_and(|s| vnet.contains_subnet(&s.id))
                });
                if !in_vnet {
                    continue;
                }
                let key = nic
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("{g}/{}", nic.name))
                    .to_ascii_lowercase();
                if !seen_ids.insert(key) {
                    continue;
                }
                let r = nic_ref(&nic, g);
                if let Some(other) = out.iter().find(|o| o.name == r.name) {
                    return Err(EniError::Usage(format!(
                        "two NICs named {} are in VNet {} (resource groups {} and {}); snapshot them separately with --scope nic",
                        r.name,
                        vnet.name,
                        other.resource_group.as_deref().unwrap_or("?"),
                        r.resource_group.as_deref().unwrap_or("?")
                    )));
                }
                out.push(r);
            }
        }
        if out.is_empty() {
            return Err(EniError::Cloud(CloudError::NotFound {
                message: format!(
                    "no NIC of VNet {} was found in resource group(s) {}; name the groups that hold its NICs with --search-group",
                    vnet.name,
                    groups.join(", ")
                ),
            }));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_nic(&self, nic: &NicRef) -> Result<NicState, EniError> {
        let mut routes = self.routes(nic)?;
        routes.sort();
        let nsgs = self.nsgs(nic)?;
        Ok(NicState {
            name: nic.name.clone(),
            ip_addresses: nic.ip_addresses.clone(),
            routes,
            nsgs,
        })
    }
}

fn with_nic(nic: &str, what: &str, e: EniError) -> EniError {
    match e {
        EniError::Cloud(CloudError::Malformed { what: w, detail }) => {
            EniError::Cloud(CloudError::Malformed {
                what: format!("{w} of NIC {nic}"),
                detail,
            })
        }
        EniError::Input(m) => EniError::Input(format!("{what} of NIC {nic}: {m}")),
        other => other,
    }
}

impl EffectiveStateSource for LiveSource {
    fn describe(&self) -> String {
        self.provider.name().to_string()
    }

    fn nics(&self, scope: &Scope) -> Result<Vec<NicRef>, EniError> {
        match scope {
            Scope::Vm(vm) => {
                let rg = self.rg(&format!("the VM scope ({vm})"))?;
                let nics = self.provider.vm_nics(rg, vm)?;
                if nics.is_empty() {
                    return Err(EniError::Cloud(CloudError::NotFound {
                        message: format!("VM {vm} in resource group {rg} has no NIC"),
                    }));
                }
                Ok(nics.iter().map(|n| nic_ref(n, rg)).collect())
            }
            Scope::Nic(name) => {
                let rg = self.rg(&format!("the NIC scope ({name})"))?;
                let nic = self.provider.nic_show(rg, name)?;
                Ok(vec![nic_ref(&nic, rg)])
            }
            Scope::Vnet(id) => self.vnet_nics(id),
            Scope::All => Err(EniError::Usage(
                "live retrieval needs a scope: --scope vm --vm-name X, --scope nic --nic-name X, or --scope vnet --vnet-id ID".into(),
            )),
        }
    }

    fn routes(&self, nic: &NicRef) -> Result<Vec<RouteEntry>, EniError> {
        let rg = self.nic_rg(nic)?;
        let routes = self
            .provider
            .effective_routes(rg, &nic.name)
            .map_err(|e| with_nic(&nic.name, "effective routes", e.into()))?;
        Ok(routes.iter().map(RouteEntry::from).collect())
    }

    fn nsgs(&self, nic: &NicRef) -> Result<Vec<NsgEntry>, EniError> {
        let rg = self.nic_rg(nic)?;
        let nsgs = self
            .provider
            .effective_nsgs(rg, &nic.name)
            .map_err(|e| with_nic(&nic.name, "effective NSGs", e.into()))?;
        nsgs_from_effective(&nsgs).map_err(|e| with_nic(&nic.name, "effective NSGs", e))
    }

    /// Reads the NICs with at most `workers` threads; the result keeps the scope's order and
    /// the first failing NIC (in that order) is the error.
    fn collect(&self, scope: &Scope) -> Result<Vec<NicState>, EniError> {
        let nics = self.nics(scope)?;
        let slots: Vec<Mutex<Option<Result<NicState, EniError>>>> =
            nics.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let workers = self.workers.min(nics.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(nic) = nics.get(i) else { break };
                    let r = self.read_nic(nic);
                    if r.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                });
            }
        });
        let mut out = Vec::with_capacity(nics.len());
        let mut skipped = None;
        for (slot, nic) in slots.into_iter().zip(&nics) {
            match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
                Some(Ok(state)) => out.push(state),
                // The first failing NIC in scope order (NICs skipped after a failure are
                // not errors of their own).
                Some(Err(e)) => return Err(e),
                None => {
                    skipped.get_or_insert_with(|| nic.name.clone());
                }
            }
        }
        match skipped {
            Some(name) => Err(EniError::Input(format!("NIC {name} was not read"))),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnet_ids_parse_and_match_subnets() {
        let id = "/subscriptions/s1/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet1/";
        let v = VnetId::parse(id).unwrap();
        assert_eq!(v.resource_group, "rg-net");
        assert_eq!(v.name, "vnet1");
        assert!(v.contains_subnet(
            "/subscriptions/s1/resourcegroups/RG-NET/providers/Microsoft.Network/virtualNetworks/VNET1/subnets/default"
        ));
        assert!(!v.contains_subnet(
            "/subscriptions/s1/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet10/subnets/a"
        ));
        for bad in [
            "",
            "vnet1",
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/n",
            "/subscriptions/s1/resourceGroups//providers/Microsoft.Network/virtualNetworks/v",
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/x",
        ] {
            let e = VnetId::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    mod fake {
        use std::net::Ipv4Addr;
        use std::path::Path;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;

        use cloud_provider::error::CloudError;
        use cloud_provider::models::*;
        use cloud_provider::provider::*;
        use safety_shell::exec::RunCommandOutput;

        fn unused(what: &str) -> CloudError {
            CloudError::Failed {
                exit_code: None,
                message: format!("{what} is not used by the live source"),
            }
        }

        /// NICs `nic0..nicN` of VM `vm`; records how many effective reads overlap.
        pub struct Fake {
            pub nics: usize,
            pub bad_nic: Option<String>,
            pub active: AtomicUsize,
            pub peak: AtomicUsize,
            pub reads: Mutex<Vec<String>>,
        }

        impl Fake {
            pub fn new(nics: usize) -> Fake {
                Fake {
                    nics,
                    bad_nic: None,
                    active: AtomicUsize::new(0),
                    peak: AtomicUsize::new(0),
                    reads: Mutex::new(Vec::new()),
                }
            }

            fn nic(&self, i: usize) -> NetworkInterface {
                serde_json::from_value(serde_json::json!({
                    "name": format!("nic{i}"),
                    "id": format!("/subscriptions/s/resourceGroups/rg{}/providers/Microsoft.Network/networkInterfaces/nic{i}", i % 2),
                    "ipConfigurations": [{"name": "c", "privateIPAddress": format!("10.0.0.{}", i + 4)}]
                }))
                .unwrap()
            }

            fn enter(&self, rg: &str, nic: &str) {
                let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
                self.peak.fetch_max(now, Ordering::SeqCst);
                self.reads.lock().unwrap().push(format!("{rg}/{nic}"));
                std::thread::sleep(std::time::Duration::from_millis(20));
                self.active.fetch_sub(1, Ordering::SeqCst);
            }
        }

        impl CloudProvider for Fake {
            fn name(&self) -> &'static str {
                "fake"
            }
            fn vm_nics(&self, _rg: &str, vm: &str) -> Result<Vec<NetworkInterface>, CloudError> {
                if vm != "vm" {
                    return Err(CloudError::NotFound {
                        message: format!("no VM {vm}"),
                    });
                }
                Ok((0..self.nics).map(|i| self.nic(i)).collect())
            }
            fn nic_show(&self, _rg: &str, nic: &str) -> Result<NetworkInterface, CloudError> {
                (0..self.nics)
                    .map(|i| self.nic(i))
                    .find(|n| n.name == nic)
                    .ok_or_else(|| CloudError::NotFound {
                        message: format!("no NIC {nic}"),
                    })
            }
            fn nic_list(&self, _rg: &str) -> Result<Vec<NetworkInterface>, CloudError> {
                Ok(Vec::new())
            }
            fn effective_nsgs(&self, rg: &str, nic: &str) -> Result<Vec<EffectiveNsg>, CloudError> {
                self.enter(rg, nic);
                Ok(Vec::new())
            }
            fn effective_routes(
                &self,
                rg: &str,
                nic: &str,
            ) -> Result<Vec<EffectiveRoute>, CloudError> {
                self.enter(rg, nic);
                if self.bad_nic.as_deref() == Some(nic) {
                    return Err(CloudError::Malformed {
                        what: "effective route table".into(),
                        detail: "expected a list".into(),
                    });
                }
                Ok(vec![serde_json::from_value(serde_json::json!({
                    "source": "Default", "state": "Active", "addressPrefix": ["10.0.0.0/16"],
                    "nextHopType": "VnetLocal"
                }))
                .unwrap()])
            }
            fn vm_show(
                &self,
                _resource_group: &str,
                _name: &str,
            ) -> Result<VirtualMachine, CloudError> {
                Err(unused("vm_show"))
            }
            fn vm_list(&self, _resource_group: &str) -> Result<Vec<VirtualMachine>, CloudError> {
                Err(unused("vm_list"))
            }
            fn vm_by_private_ip(
                &self,
                _resource_group: &str,
                _ip: Ipv4Addr,
            ) -> Result<VirtualMachine, CloudError> {
                Err(unused("vm_by_private_ip"))
            }
            fn nsg_show(
                &self,
                _resource_group: &str,
                _nsg: &str,
            ) -> Result<NetworkSecurityGroup, CloudError> {
                Err(unused("nsg_show"))
            }
            fn nsg_list(
                &self,
                _resource_group: &str,
            ) -> Result<Vec<NetworkSecurityGroup>, CloudError> {
                Err(unused("nsg_list"))
            }
            fn nsg_rule_list(
                &self,
                _resource_group: &str,
                _nsg: &str,
                _include_default: bool,
            ) -> Result<Vec<SecurityRule>, CloudError> {
                Err(unused("nsg_rule_list"))
            }
            fn nsg_rule_create(
                &self,
                _resource_group: &str,
                _nsg: &str,
                _rule: &NsgRuleSpec,
                _reasoning: &str,
            ) -> Result<SecurityRule, CloudError> {
                Err(unused("nsg_rule_create"))
            }
            fn nsg_rule_delete(
                &self,
                _resource_group: &str,
                _nsg: &str,
                _rule: &str,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("nsg_rule_delete"))
            }
            fn route_table_show(
                &self,
                _resource_group: &str,
                _name: &str,
            ) -> Result<RouteTable, CloudError> {
                Err(unused("route_table_show"))
            }
            fn route_table_list(
                &self,
                _resource_group: &str,
            ) -> Result<Vec<RouteTable>, CloudError> {
                Err(unused("route_table_list"))
            }
            fn route_list(
                &self,
                _resource_group: &str,
                _table: &str,
            ) -> Result<Vec<Route>, CloudError> {
                Err(unused("route_list"))
            }
            fn subnet_show(
                &self,
                _resource_group: &str,
                _vnet: &str,
                _name: &str,
            ) -> Result<Subnet, CloudError> {
                Err(unused("subnet_show"))
            }
            fn subnet_update(
                &self,
                _resource_group: &str,
                _vnet: &str,
                _name: &str,
                _update: &SubnetUpdate,
                _reasoning: &str,
            ) -> Result<Subnet, CloudError> {
                Err(unused("subnet_update"))
            }
            fn run_command(
                &self,
                _resource_group: &str,
                _vm: &str,
                _script: &str,
                _reasoning: &str,
            ) -> Result<(RunCommandOutput, String), CloudError> {
                Err(unused("run_command"))
            }
            fn capture_create(
                &self,
                _spec: &CaptureSpec,
                _reasoning: &str,
            ) -> Result<PacketCapture, CloudError> {
                Err(unused("capture_create"))
            }
            fn capture_show(
                &self,
                _location: &str,
                _name: &str,
            ) -> Result<PacketCapture, CloudError> {
                Err(unused("capture_show"))
            }
            fn capture_status(
                &self,
                _location: &str,
                _name: &str,
            ) -> Result<PacketCaptureStatus, CloudError> {
                Err(unused("capture_status"))
            }
            fn capture_stop(
                &self,
                _location: &str,
                _name: &str,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("capture_stop"))
            }
            fn capture_delete(
                &self,
                _location: &str,
                _name: &str,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("capture_delete"))
            }
            fn capture_list(&self, _location: &str) -> Result<Vec<PacketCapture>, CloudError> {
                Err(unused("capture_list"))
            }
            fn blob_upload(
                &self,
                _at: &BlobLocation,
                _blob: &str,
                _file: &Path,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("blob_upload"))
            }
            fn blob_download(
                &self,
                _at: &BlobLocation,
                _blob: &str,
                _file: &Path,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("blob_download"))
            }
            fn blob_list(
                &self,
                _at: &BlobLocation,
                _prefix: &str,
            ) -> Result<Vec<BlobItem>, CloudError> {
                Err(unused("blob_list"))
            }
            fn blob_show(&self, _at: &BlobLocation, _blob: &str) -> Result<BlobItem, CloudError> {
                Err(unused("blob_show"))
            }
            fn blob_delete(
                &self,
                _at: &BlobLocation,
                _blob: &str,
                _reasoning: &str,
            ) -> Result<(), CloudError> {
                Err(unused("blob_delete"))
            }
            fn resource_group_location(&self, _resource_group: &str) -> Result<String, CloudError> {
                Err(unused("resource_group_location"))
            }
        }
    }

    #[test]
    fn collect_is_bounded_ordered_and_fails_on_the_first_bad_nic() {
        let f = Arc::new(fake::Fake::new(9));
        let src = LiveSource::new(f.clone(), Some("rg".into())).with_workers(3);
        let nics = src.collect(&Scope::Vm("vm".into())).unwrap();
        let names: Vec<&str> = nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, (0..9).map(|i| format!("nic{i}")).collect::<Vec<_>>());
        assert_eq!(nics[2].ip_addresses, ["10.0.0.6"]);
        assert_eq!(nics[0].routes.len(), 1);
        let peak = f.peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=3).contains(&peak), "peak concurrency {peak}");
        // Each NIC is read in its own resource group (from its id).
        assert!(f.reads.lock().unwrap().contains(&"rg1/nic1".to_string()));
        assert_eq!(src.describe(), "fake");

        let mut bad = fake::Fake::new(5);
        bad.bad_nic = Some("nic3".into());
        let src = LiveSource::new(Arc::new(bad), Some("rg".into())).with_workers(1);
        let e = src.collect(&Scope::Vm("vm".into())).unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("NIC nic3"), "{e}");

        let src = LiveSource::new(Arc::new(fake::Fake::new(1)), None);
        assert_eq!(
            src.nics(&Scope::Vm("vm".into())).unwrap_err().exit_code(),
            2
        );
        assert_eq!(src.nics(&Scope::All).unwrap_err().exit_code(), 2);
        let src = LiveSource::new(Arc::new(fake::Fake::new(2)), Some("rg".into()));
        assert_eq!(
            src.nics(&Scope::Vm("other".into()))
                .unwrap_err()
                .exit_code(),
            3
        );
        assert_eq!(
            src.nics(&Scope::Nic("nic1".into())).unwrap()[0].name,
            "nic1"
        );
        let e = src
            .nics(&Scope::Vnet(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
                    .into(),
            ))
            .unwrap_err();
        assert!(e.to_string().contains("--search-group"), "{e}");
        assert_eq!(
            LiveSource::new(Arc::new(fake::Fake::new(0)), None)
                .with_workers(99)
                .workers(),
            MAX_WORKERS
        );
    }
}
