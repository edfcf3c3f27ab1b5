//! A fake Azure for the orchestrator: answers with JSON recorded in Azure's documented
//! shapes (`az network watcher packet-capture create/show/show-status/list`, `az storage blob
//! show`, `az vm show -d`), enforces the location-vs-resource-group split of the Network
//! Watcher commands, and can throttle, fail, corrupt downloads and script statuses.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloud_orchestrator::engine::{Clock, PollPolicy};
use cloud_orchestrator::{Orchestrator, OrchestratorConfig};
use cloud_provider::azure::Sleeper;
use cloud_provider::error::CloudError;
use cloud_provider::models::*;
use cloud_provider::provider::*;
use safety_shell::exec::RunCommandOutput;

pub const RG: &str = "rg-ghost";
pub const LOCATION: &str = "westeurope";
pub const SA: &str = "capsa";
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";

/// `az network watcher packet-capture create` output (Azure's documented shape).
pub fn create_json(name: &str, vm: &str, time_limit: u32) -> String {
    format!(
        r#"{{
  "bytesToCapturePerPacket": 0,
  "etag": "W/\"6a8e0c2c-0000-0000-0000-000000000000\"",
  "filters": [],
  "id": "/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_{LOCATION}/packetCaptures/{name}",
  "name": "{name}",
  "provisioningState": "Succeeded",
  "resourceGroup": "NetworkWatcherRG",
  "storageLocation": {{
    "filePath": null,
    "storageId": "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{SA}",
    "storagePath": "https://{SA}.blob.core.windows.net/network-watcher-logs/subscriptions/{SUB}/resourcegroups/{RG}/providers/microsoft.compute/virtualmachines/{vm}/2026/11/22/packetcapture_07_44_00_000.cap"
  }},
  "target": "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{vm}",
  "targetType": "AzureVM",
  "timeLimitInSeconds": {time_limit},
  "totalBytesPerSession": 1073741824
}}"#
    )
}

/// `show-status` output.
pub fn status_json(name: &str, status: &str, reason: &str, errors: &[&str]) -> String {
    format!(
        r#"{{"captureStartTime": "2026-11-22T07:44:01.3950000Z",
  "id": "/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_{LOCATION}/packetCaptures/{name}",
  "name": "{name}", "packetCaptureError": {}, "packetCaptureStatus": "{status}", "stopReason": "{reason}"}}"#,
        serde_json::to_string(errors).unwrap()
    )
}

pub fn vm_json(name: &str, location: &str, power: &str) -> String {
    format!(
        r#"{{"name": "{name}", "id": "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}",
  "location": "{location}", "resourceGroup": "{RG}", "powerState": "{power}", "provisioningState": "Succeeded",
  "networkProfile": {{"networkInterfaces": []}}}}"#
    )
}

/// A status script step: what show-status answers (the last step repeats).
#[derive(Debug, Clone)]
pub struct Step {
    pub status: &'static str,
    pub reason: &'static str,
    pub errors: Vec<&'static str>,
}

pub fn running() -> Step {
    Step {
        status: "Running",
        reason: "",
        errors: vec![],
    }
}
pub fn stopped(reason: &'static str) -> Step {
    Step {
        status: "Stopped",
        reason,
        errors: vec![],
    }
}
pub fn error(e: &'static str) -> Step {
    Step {
        status: "Error",
        reason: "",
        errors: vec![e],
    }
}

#[derive(Debug, Clone)]
pub struct FakeCapture {
    pub vm: String,
    pub created: PacketCapture,
    pub script: VecDeque<Step>,
    pub stopped_manually: bool,
}

#[derive(Default)]
pub struct FakeAz {
    pub calls: Mutex<Vec<String>>,
    pub vms: Mutex<BTreeMap<String, String>>,
    pub captures: Mutex<BTreeMap<String, FakeCapture>>,
    /// Status script per VM for captures created later.
    pub scripts: Mutex<BTreeMap<String, Vec<Step>>>,
    /// Capture bytes per VM (the blob uploaded when it stops).
    pub pcaps: Mutex<BTreeMap<String, Vec<u8>>>,
    pub fail_create: Mutex<BTreeMap<String, CloudError>>,
    pub throttle_status: AtomicU32,
    pub corrupt_downloads: AtomicU32,
    pub deleted_blobs: Mutex<BTreeSet<String>>,
    /// VMs without the Network Watcher agent extension.
    pub no_agent: Mutex<BTreeSet<String>>,
}

fn nf(what: &str) -> CloudError {
    CloudError::NotFound {
        message: format!("(NotFound) {what} not found"),
    }
}

fn unsupported(what: &str) -> CloudError {
    CloudError::Failed {
        exit_code: Some(2),
        message: format!("the fake az does not do {what}"),
    }
}

impl FakeAz {
    pub fn new() -> Arc<FakeAz> {
        let f = FakeAz::default();
        for vm in ["source-vm", "dest-vm"] {
            f.vms
                .lock()
                .unwrap()
                .insert(vm.into(), vm_json(vm, LOCATION, "VM running"));
        }
        Arc::new(f)
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }

    /// The Network Watcher commands take a region: the resource group's name (a classic
    /// mix-up) is refused the way Azure refuses it.
    fn check_location(&self, location: &str) -> Result<(), CloudError> {
        if location == LOCATION {
            Ok(())
        } else {
            Err(CloudError::Failed {
                exit_code: Some(1),
                message: format!("(NotFound) Network watcher not found in location '{location}'; use the region, not the resource group"),
            })
        }
    }

    pub fn script(&self, vm: &str, steps: Vec<Step>) {
        self.scripts.lock().unwrap().insert(vm.into(), steps);
    }

    pub fn pcap(&self, vm: &str, bytes: Vec<u8>) {
        self.pcaps.lock().unwrap().insert(vm.into(), bytes);
    }

    /// A capture someone else started (not ours), or one of ours from a lost registry.
    pub fn add_capture(&self, name: &str, vm: &str, steps: Vec<Step>) {
        let created: PacketCapture = serde_json::from_str(&create_json(name, vm, 60)).unwrap();
        self.captures.lock().unwrap().insert(
            name.into(),
            FakeCapture {
                vm: vm.into(),
                created,
                script: steps.into(),
                stopped_manually: false,
            },
        );
    }

    fn blob_of(&self, blob: &str) -> Option<(String, Vec<u8>)> {
        let vm = blob
            .split("/virtualmachines/")
            .nth(1)?
            .split('/')
            .next()?
            .to_string();
        let caps = self.captures.lock().unwrap();
        let done = caps.values().any(|c| {
            c.vm == vm
                && (c.stopped_manually || c.script.front().is_some_and(|s| s.status != "Running"))
        });
        if !done || self.deleted_blobs.lock().unwrap().contains(blob) {
            return None;
        }
        self.pcaps
            .lock()
            .unwrap()
            .get(&vm)
            .cloned()
            .map(|b| (vm, b))
    }
}

impl CloudProvider for FakeAz {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn vm_show(&self, rg: &str, name: &str) -> Result<VirtualMachine, CloudError> {
        self.log(format!("vm show {rg} {name}"));
        let vms = self.vms.lock().unwrap();
        let j = vms.get(name).ok_or_else(|| nf(name))?;
        Ok(serde_json::from_str(j).unwrap())
    }
    fn vm_extensions(&self, rg: &str, vm: &str) -> Result<Vec<VmExtension>, CloudError> {
        self.log(format!("vm extension list {rg} {vm}"));
        if !self.vms.lock().unwrap().contains_key(vm) {
            return Err(nf(vm));
        }
        if self.no_agent.lock().unwrap().contains(vm) {
            return Ok(Vec::new());
        }
        Ok(serde_json::from_str(
            r#"[{"name": "AzureNetworkWatcherExtension", "publisher": "Microsoft.Azure.NetworkWatcher",
                "typePropertiesType": "NetworkWatcherAgentLinux", "provisioningState": "Succeeded",
                "typeHandlerVersion": "1.4"}]"#,
        )
        .unwrap())
    }
    fn vm_list(&self, _: &str) -> Result<Vec<VirtualMachine>, CloudError> {
        Err(unsupported("vm list"))
    }
    fn vm_by_private_ip(&self, _: &str, _: Ipv4Addr) -> Result<VirtualMachine, CloudError> {
        Err(unsupported("vm by ip"))
    }
    fn vm_nics(&self, _: &str, _: &str) -> Result<Vec<NetworkInterface>, CloudError> {
        Err(unsupported("vm nics"))
    }
    fn nic_show(&self, _: &str, _: &str) -> Result<NetworkInterface, CloudError> {
        Err(unsupported("nic show"))
    }
    fn nic_list(&self, _: &str) -> Result<Vec<NetworkInterface>, CloudError> {
        Err(unsupported("nic list"))
    }
    fn effective_nsgs(&self, _: &str, _: &str) -> Result<Vec<EffectiveNsg>, CloudError> {
        Err(unsupported("effective nsgs"))
    }
    fn effective_routes(&self, _: &str, _: &str) -> Result<Vec<EffectiveRoute>, CloudError> {
        Err(unsupported("effective routes"))
    }
    fn nsg_show(&self, _: &str, _: &str) -> Result<NetworkSecurityGroup, CloudError> {
        Err(unsupported("nsg show"))
    }
    fn nsg_list(&self, _: &str) -> Result<Vec<NetworkSecurityGroup>, CloudError> {
        Err(unsupported("nsg list"))
    }
    fn nsg_rule_list(&self, _: &str, _: &str, _: bool) -> Result<Vec<SecurityRule>, CloudError> {
        Err(unsupported("nsg rule list"))
    }
    fn nsg_rule_create(
        &self,
        _: &str,
        _: &str,
        _: &NsgRuleSpec,
        _: &str,
    ) -> Result<SecurityRule, CloudError> {
        Err(unsupported("nsg rule create"))
    }
    fn nsg_rule_delete(&self, _: &str, _: &str, _: &str, _: &str) -> Result<(), CloudError> {
        Err(unsupported("nsg rule delete"))
    }
    fn route_table_show(&self, _: &str, _: &str) -> Result<RouteTable, CloudError> {
        Err(unsupported("route table show"))
    }
    fn route_table_list(&self, _: &str) -> Result<Vec<RouteTable>, CloudError> {
        Err(unsupported("route table list"))
    }
    fn route_list(&self, _: &str, _: &str) -> Result<Vec<Route>, CloudError> {
        Err(unsupported("route list"))
    }
    fn subnet_show(&self, _: &str, _: &str, _: &str) -> Result<Subnet, CloudError> {
        Err(unsupported("subnet show"))
    }
    fn subnet_update(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &SubnetUpdate,
        _: &str,
    ) -> Result<Subnet, CloudError> {
        Err(unsupported("subnet update"))
    }
    fn run_command(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<(RunCommandOutput, String), CloudError> {
        Err(unsupported("run-command"))
    }

    fn capture_create(&self, spec: &CaptureSpec, _: &str) -> Result<PacketCapture, CloudError> {
        self.log(format!(
            "capture create --resource-group {} --vm {} --name {} --filters {}",
            spec.resource_group,
            spec.vm,
            spec.name,
            spec.filters_json.as_deref().unwrap_or("-")
        ));
        if spec.resource_group != RG {
            return Err(nf(&spec.resource_group));
        }
        if let Some(e) = self.fail_create.lock().unwrap().remove(&spec.vm) {
            return Err(e);
        }
        let created: PacketCapture = serde_json::from_str(&create_json(
            &spec.name,
            &spec.vm,
            spec.time_limit_secs.unwrap_or(18000),
        ))
        .unwrap();
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&spec.vm)
            .cloned()
            .unwrap_or_else(|| vec![stopped("TimeExceeded")]);
        self.captures.lock().unwrap().insert(
            spec.name.clone(),
            FakeCapture {
                vm: spec.vm.clone(),
                created: created.clone(),
                script: script.into(),
                stopped_manually: false,
            },
        );
        Ok(created)
    }
    fn capture_show(&self, location: &str, name: &str) -> Result<PacketCapture, CloudError> {
        self.log(format!("capture show --location {location} {name}"));
        self.check_location(location)?;
        let caps = self.captures.lock().unwrap();
        caps.get(name)
            .map(|c| c.created.clone())
            .ok_or_else(|| nf(name))
    }
    fn capture_status(
        &self,
        location: &str,
        name: &str,
    ) -> Result<PacketCaptureStatus, CloudError> {
        self.log(format!("capture status --location {location} {name}"));
        self.check_location(location)?;
        if self.throttle_status.load(Ordering::SeqCst) > 0 {
            self.throttle_status.fetch_sub(1, Ordering::SeqCst);
            return Err(CloudError::Throttled {
                attempts: 5,
                retry_after: Some(Duration::from_secs(30)),
                message: "(TooManyRequests) The request is being throttled.".into(),
            });
        }
        let mut caps = self.captures.lock().unwrap();
        let c = caps.get_mut(name).ok_or_else(|| nf(name))?;
        let step = if c.stopped_manually {
            stopped("ManualIntervention")
        } else {
            let s = c.script.front().cloned().unwrap_or_else(running);
            if c.script.len() > 1 {
                c.script.pop_front();
            }
            s
        };
        Ok(
            serde_json::from_str(&status_json(name, step.status, step.reason, &step.errors))
                .unwrap(),
        )
    }
    fn capture_stop(&self, location: &str, name: &str, _: &str) -> Result<(), CloudError> {
        self.log(format!("capture stop --location {location} {name}"));
        self.check_location(location)?;
        let mut caps = self.captures.lock().unwrap();
        let c = caps.get_mut(name).ok_or_else(|| nf(name))?;
        c.stopped_manually = true;
        Ok(())
    }
    fn capture_delete(&self, location: &str, name: &str, _: &str) -> Result<(), CloudError> {
        self.log(format!("capture delete --location {location} {name}"));
        self.check_location(location)?;
        self.captures
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| nf(name))
    }
    fn capture_list(&self, location: &str) -> Result<Vec<PacketCapture>, CloudError> {
        self.log(format!("capture list --location {location}"));
        self.check_location(location)?;
        Ok(self
            .captures
            .lock()
            .unwrap()
            .values()
            .map(|c| c.created.clone())
            .collect())
    }

    fn blob_upload(&self, _: &BlobLocation, _: &str, _: &Path, _: &str) -> Result<(), CloudError> {
        Err(unsupported("blob upload"))
    }
    fn blob_download(
        &self,
        at: &BlobLocation,
        blob: &str,
        file: &Path,
        _: &str,
    ) -> Result<(), CloudError> {
        self.log(format!(
            "blob download {}/{} {blob}",
            at.account, at.container
        ));
        let (_, bytes) = self.blob_of(blob).ok_or_else(|| nf(blob))?;
        if self.corrupt_downloads.load(Ordering::SeqCst) > 0 {
            self.corrupt_downloads.fetch_sub(1, Ordering::SeqCst);
            std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
        } else {
            std::fs::write(file, &bytes).unwrap();
        }
        Ok(())
    }
    fn blob_list(&self, _: &BlobLocation, _: &str) -> Result<Vec<BlobItem>, CloudError> {
        Err(unsupported("blob list"))
    }
    fn blob_show(&self, at: &BlobLocation, blob: &str) -> Result<BlobItem, CloudError> {
        self.log(format!("blob show {}/{} {blob}", at.account, at.container));
        let (_, bytes) = self.blob_of(blob).ok_or_else(|| nf(blob))?;
        Ok(serde_json::from_str(&format!(
            r#"{{"name": "{blob}", "deleted": false, "snapshot": null,
  "properties": {{"contentLength": {}, "lastModified": "2026-11-22T07:45:02+00:00",
  "contentSettings": {{"contentType": "application/octet-stream", "contentMd5": null}}}}}}"#,
            bytes.len()
        ))
        .unwrap())
    }
    fn blob_delete(&self, at: &BlobLocation, blob: &str, _: &str) -> Result<(), CloudError> {
        self.log(format!(
            "blob delete {}/{} {blob}",
            at.account, at.container
        ));
        self.deleted_blobs.lock().unwrap().insert(blob.to_string());
        Ok(())
    }
    fn resource_group_location(&self, rg: &str) -> Result<String, CloudError> {
        self.log(format!("group show {rg}"));
        if rg == RG {
            Ok(LOCATION.into())
        } else {
            Err(nf(rg))
        }
    }
}

/// A clock that only moves when the sleeper sleeps.
pub struct FakeTime {
    pub now: Mutex<DateTime<Utc>>,
    pub sleeps: Mutex<Vec<Duration>>,
}

impl FakeTime {
    pub fn new() -> Arc<FakeTime> {
        Arc::new(FakeTime {
            now: Mutex::new(
                DateTime::parse_from_rfc3339("2026-11-22T07:44:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            sleeps: Mutex::new(Vec::new()),
        })
    }
    pub fn sleeps(&self) -> Vec<u64> {
        self.sleeps
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_secs())
            .collect()
    }
}

impl Clock for FakeTime {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap()
    }
}

impl Sleeper for FakeTime {
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
        let mut n = self.now.lock().unwrap();
        *n += chrono::Duration::from_std(d).unwrap();
    }
}

pub struct Setup {
    pub az: Arc<FakeAz>,
    pub time: Arc<FakeTime>,
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            az: FakeAz::new(),
            time: FakeTime::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn orch(&self, session: &str) -> Orchestrator {
        self.orch_with(
            session,
            std::sync::Arc::new(safety_shell::approve::AllRiskyApprover),
        )
    }

    pub fn orch_with(
        &self,
        session: &str,
        approver: std::sync::Arc<dyn safety_shell::approve::Approver>,
    ) -> Orchestrator {
        let mut cfg = OrchestratorConfig::new(RG, SA, self.dir.path(), session);
        cfg.storage_container = Some("artifacts".into());
        cfg.poll = PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(16),
            grace: Duration::from_secs(60),
        };
        let audit = safety_shell::audit::AuditLog::open_in_dir(self.dir.path(), session).unwrap();
        let gate = safety_shell::Gate::builder(audit)
            .approver_arc(approver)
            .build();
        Orchestrator::new(self.az.clone(), std::sync::Arc::new(gate), cfg)
            .unwrap()
            .with_clock(self.time.clone())
            .with_sleeper(self.time.clone())
            .with_rng_seed(7)
    }
}

/// A capture as dest sees scenario J: SYNs from source to dest:5001, never answered.
pub fn syn_without_synack() -> Vec<u8> {
    use pcap_forensics::testsupport::{tcp, Capture};
    let src = Ipv4Addr::new(198, 18, 1, 4);
    let dst = Ipv4Addr::new(198, 18, 1, 5);
    let mut c = Capture::new();
    for (i, sport) in [40001u16, 40002, 40003].iter().enumerate() {
        for retry in 0..3 {
            let seg = tcp(
                src.into(),
                dst.into(),
                *sport,
                5001,
                1000 + i as u32,
                0,
                0x02,
                64240,
                &[],
                &[],
            );
            c.ip4(src, dst, 6, 64, &seg);
            c.wait_ms(1000.0 * f64::from(1u32 << retry));
        }
    }
    c.to_pcap(1)
}

/// A clean little exchange (handshake, data, close) between source and dest.
pub fn clean_exchange() -> Vec<u8> {
    use pcap_forensics::testsupport::{tcp, Capture};
    let a = Ipv4Addr::new(198, 18, 1, 4);
    let b = Ipv4Addr::new(198, 18, 1, 5);
    let mut c = Capture::new();
    let t = |s: Ipv4Addr, d: Ipv4Addr, sp, dp, seq, ack, fl, p: &[u8]| {
        tcp(s.into(), d.into(), sp, dp, seq, ack, fl, 64240, &[], p)
    };
    c.ip4(a, b, 6, 64, &t(a, b, 40000, 8080, 100, 0, 0x02, &[]));
    c.wait_ms(1.0);
    c.ip4(b, a, 6, 64, &t(b, a, 8080, 40000, 500, 101, 0x12, &[]));
    c.wait_ms(1.0);
    c.ip4(a, b, 6, 64, &t(a, b, 40000, 8080, 101, 501, 0x10, &[]));
    c.ip4(
        a,
        b,
        6,
        64,
        &t(a, b, 40000, 8080, 101, 501, 0x18, b"GET / HTTP/1.0\r\n\r\n"),
    );
    c.wait_ms(2.0);
    c.ip4(
        b,
        a,
        6,
        64,
        &t(
            b,
            a,
            8080,
            40000,
            501,
            119,
            0x18,
            b"HTTP/1.0 200 OK\r\n\r\n",
        ),
    );
    c.ip4(a, b, 6, 64, &t(a, b, 40000, 8080, 119, 520, 0x11, &[]));
    c.ip4(b, a, 6, 64, &t(b, a, 8080, 40000, 520, 120, 0x11, &[]));
    c.ip4(a, b, 6, 64, &t(a, b, 40000, 8080, 120, 521, 0x10, &[]));
    c.to_pcap(1)
}
