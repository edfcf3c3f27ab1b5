//! The lifecycle: prerequisites, create, poll (bounded exponential backoff on an injected
//! clock and sleeper), stop, download with retry and verification, analysis, cleanup,
//! cancellation and orphan detection.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloud_provider::azure::{Sleeper, ThreadSleeper};
use cloud_provider::error::CloudError;
use cloud_provider::provider::{BlobAuth, BlobLocation, CaptureSpec, CloudProvider};
use rand::rngs::StdRng;
use rand::SeedableRng;
use safety_shell::Gate;
use serde::{Deserialize, Serialize};

use crate::capfile::{blob_of_storage_path, verify_capture};
use crate::error::OrchError;
use crate::model::{
    filters_json, parse_capture_name, AnalysisSummary, CaptureOptions, FindingSummary, Role, Side,
    StopKind, Target, TaskId, TaskRecord, TaskState, SCHEMA_VERSION,
};
use crate::registry::Registry;

/// The current time (injected so that tests drive polling deadlines).
pub trait Clock: Send + Sync {
    /// Now, UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Polling of a running capture: waits start at `initial` and double up to `max`; a capture
/// still running `grace` after its time limit is stopped by the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollPolicy {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// How long past the time limit a capture may still report running.
    pub grace: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(30),
            grace: Duration::from_secs(120),
        }
    }
}

impl PollPolicy {
    /// The wait after `n` polls (0-based): `initial × 2^n`, at most `max`.
    pub fn delay(&self, n: u32) -> Duration {
        self.initial.saturating_mul(1u32 << n.min(16)).min(self.max)
    }
}

/// What the orchestrator works with.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Resource group of the VMs.
    pub resource_group: String,
    /// The operator's storage account that receives captures.
    pub storage_account: String,
    /// A container of that account, probed for reachability before a capture.
    pub storage_container: Option<String>,
    /// How blob commands authenticate.
    pub blob_auth: BlobAuth,
    /// The audit directory: registry files and `captures/<task>/` live here.
    pub audit_dir: PathBuf,
    /// This process's session id (`cap_…`).
    pub session_id: String,
    /// Polling.
    pub poll: PollPolicy,
    /// Download attempts before a side fails.
    pub download_attempts: u32,
    /// Packet-capture sessions allowed per region (Azure: 10,000 per subscription); `None`
    /// when unknown (then not checked).
    pub regional_quota: Option<usize>,
}

impl OrchestratorConfig {
    /// Defaults for the given resource group, storage account, audit dir and session.
    pub fn new(
        resource_group: impl Into<String>,
        storage_account: impl Into<String>,
        audit_dir: impl Into<PathBuf>,
        session_id: impl Into<String>,
    ) -> Self {
        OrchestratorConfig {
            resource_group: resource_group.into(),
            storage_account: storage_account.into(),
            storage_container: None,
            blob_auth: BlobAuth::Login,
            audit_dir: audit_dir.into(),
            session_id: session_id.into(),
            poll: PollPolicy::default(),
            download_attempts: 3,
            regional_quota: Some(10_000),
        }
    }
}

/// How a cleanup goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupOptions {
    /// Delete the capture blobs too.
    pub delete_blob: bool,
    /// Delete the local capture files and analyses.
    pub delete_local: bool,
}

/// What to do with orphans, decided without asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanPolicy {
    /// Stop and delete them (old local files removed).
    Clean,
    /// Leave them alone, say nothing more than the count.
    Skip,
    /// List them with the action `clean` would take; change nothing.
    Review,
}

/// An orphan and what was (or would be) done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// `stale_task`, `untracked_capture`, `old_local_file`.
    pub kind: String,
    /// Task id, capture name or path.
    pub what: String,
    /// Details (state, session, age).
    pub detail: String,
    /// The action `clean` takes.
    pub action: String,
    /// `done`, `skipped`, `review`, or `failed: …`.
    pub outcome: String,
}

/// Everything an orphan sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanReport {
    /// The orphans.
    pub orphans: Vec<Orphan>,
    /// Checks that could not run (e.g. listing captures failed).
    pub warnings: Vec<String>,
}

/// The orchestrator of capture tasks.
pub struct Orchestrator {
    provider: Arc<dyn CloudProvider>,
    gate: Arc<Gate>,
    cfg: OrchestratorConfig,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    interrupt: Arc<AtomicBool>,
    registry: Registry,
    location: Mutex<Option<String>>,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("cfg", &self.cfg)
            .field("registry", &self.registry)
            .finish()
    }
}

fn not_found_ok(r: Result<(), CloudError>) -> Result<(), CloudError> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

impl Orchestrator {
    /// An orchestrator over `provider` (every az call gated there); `gate` gates the local
    /// file deletions (`rm -rf -- <audit_dir>/captures/<task>`), normally the provider's gate.
    pub fn new(
        provider: Arc<dyn CloudProvider>,
        gate: Arc<Gate>,
        cfg: OrchestratorConfig,
    ) -> Result<Orchestrator, OrchError> {
        cloud_provider::session::SessionId::parse(&cfg.session_id)
            .map_err(|e| OrchError::InvalidOption(e.to_string()))?;
        let registry = Registry::open(&cfg.audit_dir, &cfg.session_id)?;
        Ok(Orchestrator {
            provider,
            gate,
            cfg,
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(ThreadSleeper),
            interrupt: Arc::new(AtomicBool::new(false)),
            registry,
            location: Mutex::new(None),
            rng: Mutex::new(StdRng::from_entropy()),
        })
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }

    /// A flag that, once set (e.g. by Ctrl-C), makes [`Orchestrator::wait_task`] stop the
    /// running captures now and go on to download and analyse what they hold.
    pub fn with_interrupt(mut self, flag: Arc<AtomicBool>) -> Self {
        self.interrupt = flag;
        self
    }

    /// Replaces the sleeper (tests).
    pub fn with_sleeper(mut self, s: Arc<dyn Sleeper>) -> Self {
        self.sleeper = s;
        self
    }

    /// Seeds task-id randomness.
    pub fn with_rng_seed(self, seed: u64) -> Self {
        Orchestrator {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The configuration.
    pub fn config(&self) -> &OrchestratorConfig {
        &self.cfg
    }

    /// The Network Watcher region: the resource group's location, asked once per process.
    pub fn location(&self) -> Result<String, OrchError> {
        let mut g = self.location.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = g.as_ref() {
            return Ok(l.clone());
        }
        let l = self
            .provider
            .resource_group_location(&self.cfg.resource_group)?;
        *g = Some(l.clone());
        Ok(l)
    }

    fn task_dir(&self, id: &TaskId) -> PathBuf {
        self.cfg.audit_dir.join("captures").join(id.as_str())
    }

    fn save(&self, t: &mut TaskRecord, note: &str) -> Result<(), OrchError> {
        if t.state != TaskState::Cancelled {
            t.state = t.overall_state();
        }
        t.revision += 1;
        t.updated_at = self.clock.now();
        t.written_by = self.cfg.session_id.clone();
        t.events.push(format!(
            "{} {} {note}",
            t.updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            t.state
        ));
        if t.events.len() > 64 {
            let cut = t.events.len() - 64;
            t.events.drain(..cut);
        }
        self.registry.append(t)
    }

    fn reason(t: &TaskRecord, what: &str) -> String {
        let why = if t.options.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.options.reason)
        };
        format!("cloud-orchestrator task {}: {what}{why}", t.task_id)
    }

    /// Starts a capture task: prerequisites, the one-capture-per-VM rule, then one Network
    /// Watcher capture per VM (`ghostcap-<task>-<role>`). A pair gets mirrored filters on the
    /// dest side. Returns the task id once the captures are created; when every side failed
    /// to start, the task is recorded as failed and the first error is returned.
    pub fn capture_traffic(
        &self,
        target: &Target,
        options: &CaptureOptions,
    ) -> Result<TaskId, OrchError> {
        options.validate()?;
        for vm in std::iter::once(&target.vm).chain(target.to.iter()) {
            cloud_provider::azure::check_name("VM name", vm)?;
        }
        if target.to.as_deref() == Some(target.vm.as_str()) {
            return Err(OrchError::InvalidOption(format!(
                "--vm and --to both name {}; a pair needs two VMs",
                target.vm
            )));
        }
        let now = self.clock.now();
        let id = {
            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
            TaskId::generate(now, &mut *rng)
        };
        let sides: Vec<Side> = match &target.to {
            None => vec![Side::new(
                &id,
                Role::Vm,
                &target.vm,
                options.filters.clone(),
            )],
            Some(dst) => vec![
                Side::new(&id, Role::Source, &target.vm, options.filters.clone()),
                Side::new(
                    &id,
                    Role::Dest,
                    dst,
                    options.filters.iter().map(|f| f.mirrored()).collect(),
                ),
            ],
        };
        let location = self.location()?;
        let prerequisites = self.check_prerequisites(&location, &sides)?;
        let mut t = TaskRecord {
            schema_version: SCHEMA_VERSION,
            tool: "cloud-orchestrator".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            task_id: id.clone(),
            session_id: self.cfg.session_id.clone(),
            written_by: self.cfg.session_id.clone(),
            revision: 0,
            created_at: now,
            updated_at: now,
            resource_group: self.cfg.resource_group.clone(),
            location,
            target: target.clone(),
            options: options.clone(),
            state: TaskState::Created,
            sides,
            prerequisites,
            comparison: None,
            events: Vec::new(),
        };
        self.save(&mut t, "registered")?;
        let mut first_err = None;
        for i in 0..t.sides.len() {
            let side = &t.sides[i];
            let spec = CaptureSpec {
                name: side.capture_name.clone(),
                resource_group: t.resource_group.clone(),
                vm: side.vm.clone(),
                storage_account: Some(self.cfg.storage_account.clone()),
                file_path: None,
                time_limit_secs: Some(t.options.duration_secs),
                bytes_per_packet: t.options.bytes_per_packet,
                capture_size_bytes: t.options.max_bytes,
                filters_json: filters_json(&side.filters),
            };
            let why = Self::reason(
                &t,
                &format!("start capture on {} ({})", side.vm, side.role.as_str()),
            );
            match self.provider.capture_create(&spec, &why) {
                Ok(pc) => {
                    let s = &mut t.sides[i];
                    s.state = TaskState::Running;
                    s.azure_status = pc.provisioning_state.clone();
                    s.storage_path = pc.storage_location.and_then(|l| l.storage_path);
                    let note = format!("{} capture {} created", s.role.as_str(), s.capture_name);
                    self.save(&mut t, &note)?;
                }
                Err(e) => {
                    let s = &mut t.sides[i];
                    s.fail(format!("create failed: {e}"));
                    // nothing was created (a denied or failed create leaves no resource)
                    s.capture_deleted = true;
                    let note = format!("{} create failed", s.role.as_str());
                    self.save(&mut t, &note)?;
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if t.sides.iter().all(|s| s.state == TaskState::Failed) => Err(e.into()),
            _ => Ok(id),
        }
    }

    /// The checks before anything is created. Fails on a missing/stopped VM, a VM in another
    /// region, an active capture on a VM, unreachable storage or a full regional quota.
    fn check_prerequisites(
        &self,
        location: &str,
        sides: &[Side],
    ) -> Result<Vec<String>, OrchError> {
        let mut notes = Vec::new();
        let rg = &self.cfg.resource_group;
        for s in sides {
            let vm = match self.provider.vm_show(rg, &s.vm) {
                Ok(v) => v,
                Err(e) if e.is_not_found() => {
                    return Err(OrchError::Prerequisite(format!(
                        "VM {} does not exist in resource group {rg}; check the name",
                        s.vm
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(ps) = vm.power_state.as_deref() {
                if !ps.to_ascii_lowercase().contains("running") {
                    return Err(OrchError::Prerequisite(format!(
                        "VM {} is '{ps}', not running; start it before capturing",
                        s.vm
                    )));
                }
            }
            if let Some(vl) = vm.location.as_deref() {
                if !vl.eq_ignore_ascii_case(location) {
                    return Err(OrchError::Prerequisite(format!(
                        "VM {} is in region {vl} but resource group {rg} is in {location}; Network Watcher captures are regional, so set RESOURCE_GROUP to a group in the VM's region",
                        s.vm
                    )));
                }
            }
            notes.push(format!(
                "ok: VM {} exists and is running ({location})",
                s.vm
            ));
            match self.provider.vm_extensions(rg, &s.vm) {
                Ok(ext) => match ext.iter().find(|e| e.is_network_watcher_agent()) {
                    Some(agent)
                        if agent
                            .provisioning_state
                            .as_deref()
                            .is_none_or(|p| p.eq_ignore_ascii_case("Succeeded")) =>
                    {
                        notes.push(format!(
                            "ok: VM {} has the Network Watcher agent ({})",
                            s.vm, agent.name
                        ))
                    }
                    Some(agent) => {
                        return Err(OrchError::Prerequisite(format!(
                            "the Network Watcher agent on VM {} is '{}', not Succeeded; repair it (az vm extension set --resource-group {rg} --vm-name {} --name {} --publisher Microsoft.Azure.NetworkWatcher) before capturing",
                            s.vm,
                            agent.provisioning_state.as_deref().unwrap_or("?"),
                            s.vm,
                            agent.type_properties_type.as_deref().unwrap_or("NetworkWatcherAgentLinux")
                        )))
                    }
                    None => {
                        return Err(OrchError::Prerequisite(format!(
                            "VM {} has no Network Watcher agent extension, which packet captures need; install it (az vm extension set --resource-group {rg} --vm-name {} --name NetworkWatcherAgentLinux --publisher Microsoft.Azure.NetworkWatcher) and capture again",
                            s.vm, s.vm
                        )))
                    }
                },
                Err(CloudError::InvalidArgument { .. }) => notes.push(format!(
                    "not checked: the Network Watcher agent extension on {} (the provider cannot list VM extensions); a missing agent shows as a create or status error",
                    s.vm
                )),
                Err(e) => return Err(e.into()),
            }
        }
        // One active capture per VM: our registry first (a side that may still run is
        // confirmed with show-status, so a task left behind by a crash whose capture has
        // since stopped does not block the VM), then every capture Azure lists.
        let known = self.registry.load()?;
        for s in sides {
            for t in known.tasks.values() {
                if t.state == TaskState::Cancelled {
                    continue;
                }
                let Some(o) = t
                    .sides
                    .iter()
                    .find(|o| o.vm.eq_ignore_ascii_case(&s.vm) && o.may_be_active())
                else {
                    continue;
                };
                let active = match self.provider.capture_status(&t.location, &o.capture_name) {
                    Ok(st) => is_active(st.packet_capture_status.as_deref()),
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e.into()),
                };
                if active {
                    return Err(OrchError::ActiveCapture {
                        vm: s.vm.clone(),
                        capture: o.capture_name.clone(),
                        task: Some(t.task_id.to_string()),
                    });
                }
            }
        }
        let all = self.provider.capture_list(location)?;
        for s in sides {
            let suffix = format!("/virtualmachines/{}", s.vm.to_ascii_lowercase());
            for c in all.iter().filter(|c| {
                c.target
                    .as_deref()
                    .is_some_and(|t| t.to_ascii_lowercase().ends_with(&suffix))
            }) {
                let st = match self.provider.capture_status(location, &c.name) {
                    Ok(st) => st,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                let active = matches!(
                    st.packet_capture_status
                        .as_deref()
                        .map(str::to_ascii_lowercase)
                        .as_deref(),
                    Some("running") | Some("notstarted")
                );
                if active {
                    return Err(OrchError::ActiveCapture {
                        vm: s.vm.clone(),
                        capture: c.name.clone(),
                        task: parse_capture_name(&c.name).map(|(t, _)| t.to_string()),
                    });
                }
            }
        }
        notes.push(format!(
            "ok: no active capture on {} (registry and capture list)",
            sides
                .iter()
                .map(|s| s.vm.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        match self.cfg.regional_quota {
            Some(q) if all.len() + sides.len() > q => {
                return Err(OrchError::Prerequisite(format!(
                    "{} packet captures already exist in {location} and the regional quota is {q}; delete old captures first",
                    all.len()
                )))
            }
            Some(q) => notes.push(format!(
                "ok: {} of {q} packet-capture sessions used in {location}",
                all.len()
            )),
            None => notes.push("not checked: regional session quota (unknown)".into()),
        }
        match &self.cfg.storage_container {
            Some(c) => {
                let at = BlobLocation {
                    account: self.cfg.storage_account.clone(),
                    container: c.clone(),
                    auth: self.cfg.blob_auth,
                };
                match self.provider.blob_show(&at, "ghostcap-reachability-probe") {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        return Err(OrchError::Prerequisite(format!(
                            "storage account {} is not reachable ({e})",
                            self.cfg.storage_account
                        )))
                    }
                }
                notes.push(format!(
                    "ok: storage account {} reachable (container {c})",
                    self.cfg.storage_account
                ));
            }
            None => notes.push(format!(
                "not checked: storage account {} reachability (no STORAGE_CONTAINER_NAME)",
                self.cfg.storage_account
            )),
        }
        Ok(notes)
    }

    /// Every task known (newest record each), oldest first.
    pub fn list_tasks(&self) -> Result<Vec<TaskRecord>, OrchError> {
        let mut v: Vec<TaskRecord> = self.registry.load()?.tasks.into_values().collect();
        v.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.task_id.cmp(&b.task_id))
        });
        Ok(v)
    }

    /// The newest record of a task, without asking Azure.
    pub fn get_task(&self, id: &TaskId) -> Result<TaskRecord, OrchError> {
        self.registry.get(id)
    }

    /// Advances a task as far as it can go now, without waiting: polls each running side
    /// once, downloads and verifies stopped ones, analyses downloaded ones, compares a pair
    /// when both sides are analysed. Resumes tasks of earlier (crashed) sessions the same way.
    pub fn check_task(&self, id: &TaskId) -> Result<TaskRecord, OrchError> {
        let mut t = self.registry.get(id)?;
        self.advance(&mut t)?;
        Ok(t)
    }

    fn advance(&self, t: &mut TaskRecord) -> Result<(), OrchError> {
        if t.is_terminal() || t.state == TaskState::Cancelled {
            return Ok(());
        }
        for i in 0..t.sides.len() {
            if t.sides[i].state == TaskState::Created {
                self.resume_created(t, i)?;
            }
            if t.sides[i].state == TaskState::Running {
                self.poll_side(t, i)?;
            }
            if t.sides[i].state == TaskState::Stopped {
                self.download_side(t, i)?;
            }
            if t.sides[i].state == TaskState::Downloaded {
                self.analyse_side(t, i)?;
            }
        }
        self.compare_pair(t)?;
        Ok(())
    }

    /// A side left in `created` by a crash: does the capture exist?
    fn resume_created(&self, t: &mut TaskRecord, i: usize) -> Result<(), OrchError> {
        let name = t.sides[i].capture_name.clone();
        match self.provider.capture_show(&t.location, &name) {
            Ok(pc) => {
                let s = &mut t.sides[i];
                s.state = TaskState::Running;
                s.storage_path = pc.storage_location.and_then(|l| l.storage_path);
                self.save(t, &format!("{name} found after a restart"))
            }
            Err(e) if e.is_not_found() => {
                let s = &mut t.sides[i];
                s.fail(
                    "the capture was never created (the process stopped before Azure accepted it)",
                );
                s.capture_deleted = true;
                self.save(t, &format!("{name} was never created"))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn poll_side(&self, t: &mut TaskRecord, i: usize) -> Result<(), OrchError> {
        let name = t.sides[i].capture_name.clone();
        let st = match self.provider.capture_status(&t.location, &name) {
            Ok(st) => st,
            Err(e) if e.is_not_found() => {
                let s = &mut t.sides[i];
                s.fail("the capture was deleted outside this tool before it was downloaded");
                s.capture_deleted = true;
                return self.save(t, &format!("{name} vanished"));
            }
            Err(e) => return Err(e.into()),
        };
        let status = st.packet_capture_status.clone().unwrap_or_default();
        let s = &mut t.sides[i];
        s.azure_status = Some(status.clone());
        if st.capture_start_time.is_some() {
            s.started_at = st.capture_start_time.clone();
        }
        match status.to_ascii_lowercase().as_str() {
            "running" | "notstarted" | "unknown" | "" => Ok(()),
            "stopped" => {
                let kind = StopKind::classify(st.stop_reason.as_deref(), Some(&status));
                s.stop_reason = st.stop_reason.clone();
                s.stop_kind = Some(kind);
                s.stopped_early = kind == StopKind::ByteLimit;
                s.state = TaskState::Stopped;
                if s.storage_path.is_none() {
                    if let Ok(pc) = self.provider.capture_show(&t.location, &name) {
                        t.sides[i].storage_path = pc.storage_location.and_then(|l| l.storage_path);
                    }
                }
                let note = format!(
                    "{name} stopped ({})",
                    st.stop_reason.as_deref().unwrap_or("no reason given")
                );
                self.save(t, &note)
            }
            _ => {
                let errs = st.packet_capture_error.clone().unwrap_or_default();
                s.stop_reason = st.stop_reason.clone();
                s.stop_kind = Some(StopKind::Error);
                s.fail(format!(
                    "Azure reports the capture in state {status}{}; check the AzureNetworkWatcherExtension on {}",
                    if errs.is_empty() { String::new() } else { format!(" ({})", errs.join(", ")) },
                    s.vm
                ));
                self.save(t, &format!("{name} failed in Azure"))
            }
        }
    }

    fn download_side(&self, t: &mut TaskRecord, i: usize) -> Result<(), OrchError> {
        let name = t.sides[i].capture_name.clone();
        let blob = match t.sides[i]
            .storage_path
            .as_deref()
            .map(|p| blob_of_storage_path(p, &self.cfg.storage_account))
        {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                t.sides[i].fail(e.to_string());
                return self.save(t, &format!("{name}: unusable storage path"));
            }
            None => {
                t.sides[i].fail("Azure gave no storage path for the capture");
                return self.save(t, &format!("{name}: no storage path"));
            }
        };
        t.sides[i].blob = Some(blob.clone());
        let at = BlobLocation {
            account: blob.account.clone(),
            container: blob.container.clone(),
            auth: self.cfg.blob_auth,
        };
        let dir = self.task_dir(&t.task_id);
        std::fs::create_dir_all(&dir).map_err(|e| OrchError::io("cannot create", &dir, e))?;
        let role = t.sides[i].role;
        let file = dir.join(format!("{}.cap", role.as_str()));
        let part = dir.join(format!("{}.cap.part", role.as_str()));
        let why = Self::reason(t, &format!("download the {} capture", role.as_str()));
        let attempts = self.cfg.download_attempts.max(1);
        let mut last = String::new();
        let mut integrity = false;
        for n in 0..attempts {
            if n > 0 {
                self.sleeper.sleep(self.cfg.poll.delay(n - 1));
            }
            let expected = match self.provider.blob_show(&at, &blob.name) {
                Ok(b) => b.properties.content_length,
                Err(CloudError::Denied { reason, audit_id }) => {
                    return Err(CloudError::Denied { reason, audit_id }.into())
                }
                Err(e) => {
                    last = e.to_string();
                    integrity = false;
                    continue;
                }
            };
            match self.provider.blob_download(&at, &blob.name, &part, &why) {
                Ok(()) => {}
                Err(CloudError::Denied { reason, audit_id }) => {
                    return Err(CloudError::Denied { reason, audit_id }.into())
                }
                Err(e) => {
                    last = e.to_string();
                    integrity = false;
                    continue;
                }
            }
            match verify_capture(&part, expected) {
                Ok((fmt, size)) => {
                    std::fs::rename(&part, &file)
                        .map_err(|e| OrchError::io("cannot rename", &part, e))?;
                    let s = &mut t.sides[i];
                    s.local_file = Some(file.clone());
                    s.bytes = Some(size);
                    s.format = Some(fmt.as_str().into());
                    s.state = TaskState::Downloaded;
                    if let (Some(max), StopKind::Other | StopKind::TimeLimit) =
                        (t.options.max_bytes, s.stop_kind.unwrap_or(StopKind::Other))
                    {
                        // Azure may not say why; a file at the byte limit stopped there.
                        if size >= max {
                            s.stopped_early = true;
                            s.stop_kind = Some(StopKind::ByteLimit);
                        }
                    }
                    let note = format!("{name} downloaded ({size} bytes, {})", fmt.as_str());
                    return self.save(t, &note);
                }
                Err(e) => {
                    last = e.to_string();
                    integrity = true;
                }
            }
        }
        let _ = std::fs::remove_file(&part);
        t.sides[i].fail_with(
            if integrity { 4 } else { 3 },
            format!(
                "download of blob {}/{} failed after {attempts} attempt(s): {last}",
                blob.container, blob.name
            ),
        );
        self.save(t, &format!("{name}: download failed"))
    }

    fn analyse_side(&self, t: &mut TaskRecord, i: usize) -> Result<(), OrchError> {
        let Some(file) = t.sides[i].local_file.clone() else {
            t.sides[i].fail("no local capture file to analyse");
            return self.save(t, "analysis impossible");
        };
        let opts = pcap_forensics::AnalysisOptions::default();
        let a = match pcap_forensics::analyze_file(&file, &opts, None) {
            Ok(a) => a,
            Err(e) => {
                t.sides[i].fail(format!(
                    "pcap-forensics could not analyse {}: {e}",
                    file.display()
                ));
                return self.save(t, "analysis failed");
            }
        };
        let meta = pcap_forensics::semantic::Meta {
            session_id: t.session_id.clone(),
            created_at: self.clock.now(),
        };
        let json = pcap_forensics::semantic::semantic_json(&a, &opts, &meta);
        let role = t.sides[i].role;
        let dir = self.task_dir(&t.task_id);
        let semantic = match pcap_forensics::write_semantic(&dir, role.as_str(), &json) {
            Ok(p) => p,
            Err(e) => {
                t.sides[i].fail(format!("cannot write the analysis: {e}"));
                return self.save(t, "analysis not written");
            }
        };
        let s = &mut t.sides[i];
        s.analysis = Some(AnalysisSummary {
            semantic_file: semantic,
            packets: a.stats.packets,
            findings: a
                .findings
                .iter()
                .map(|f| FindingSummary {
                    id: f.id.clone(),
                    rule: f.rule.to_string(),
                    severity: f.severity.as_str().to_string(),
                    title: f.title.clone(),
                    measured: f.measured.clone(),
                })
                .collect(),
            actionable: pcap_forensics::has_actionable_findings(&a),
        });
        s.state = TaskState::Analysed;
        let note = format!(
            "{} analysed: {} packets, {} finding(s)",
            role.as_str(),
            a.stats.packets,
            a.findings.len()
        );
        self.save(t, &note)
    }

    fn compare_pair(&self, t: &mut TaskRecord) -> Result<(), OrchError> {
        if t.comparison.is_some() {
            return Ok(());
        }
        let (Some(src), Some(dst)) = (t.side(Role::Source), t.side(Role::Dest)) else {
            return Ok(());
        };
        let ready = |s: &Side| s.state >= TaskState::Analysed && s.state != TaskState::Failed;
        if !ready(src) || !ready(dst) {
            return Ok(());
        }
        let (Some(fa), Some(fb)) = (src.local_file.clone(), dst.local_file.clone()) else {
            return Ok(());
        };
        let opts = pcap_forensics::AnalysisOptions::default();
        let (Ok(a), Ok(b)) = (
            pcap_forensics::analyze_file(&fa, &opts, None),
            pcap_forensics::analyze_file(&fb, &opts, None),
        ) else {
            return Ok(());
        };
        let meta = pcap_forensics::semantic::Meta {
            session_id: t.session_id.clone(),
            created_at: self.clock.now(),
        };
        let c = pcap_forensics::compare::compare(
            &a,
            &b,
            pcap_forensics::compare::Mode::Endpoint,
            opts.top_n,
            &meta,
        );
        t.comparison = Some(serde_json::json!({
            "a_role": "source",
            "a_vm": src.vm,
            "b_role": "dest",
            "b_vm": dst.vm,
            "significant": c.significant,
            "result": c.json,
        }));
        self.save(t, "source and dest compared")
    }

    /// Waits for a task: polls with bounded exponential backoff until no side runs, stopping
    /// a capture that still runs `grace` after its time limit (or at once when the interrupt
    /// flag is set), then downloads and analyses.
    pub fn wait_task(&self, id: &TaskId) -> Result<TaskRecord, OrchError> {
        let mut t = self.registry.get(id)?;
        let grace = chrono::Duration::from_std(self.cfg.poll.grace).unwrap_or_default();
        let mut deadline =
            t.created_at + chrono::Duration::seconds(i64::from(t.options.duration_secs)) + grace;
        let mut n = 0u32;
        let mut stopped_by_us = false;
        loop {
            match self.advance(&mut t) {
                Ok(()) => {}
                // Throttling outlasted the provider's own retries: wait and poll again, as
                // long as the task's deadline allows.
                Err(OrchError::Cloud(CloudError::Throttled { retry_after, .. }))
                    if self.clock.now() < deadline =>
                {
                    let d = self.cfg.poll.max.max(retry_after.unwrap_or_default());
                    self.sleeper.sleep(d);
                    t = self.registry.get(id)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let running = t
                .sides
                .iter()
                .any(|s| matches!(s.state, TaskState::Created | TaskState::Running));
            if !running {
                return Ok(t);
            }
            if self.interrupt.load(Ordering::SeqCst) && !stopped_by_us {
                self.stop_running(&mut t, "interrupted by the operator")?;
                self.save(&mut t, "stop requested (interrupted)")?;
                stopped_by_us = true;
                deadline = self.clock.now() + grace;
                n = 0;
                continue;
            }
            if self.clock.now() >= deadline {
                if stopped_by_us {
                    // Stopped once and still "running" a grace period later: give up.
                    for s in t.sides.iter_mut().filter(|s| s.state == TaskState::Running) {
                        s.fail("the capture did not stop after a stop request; run `cloud-orchestrator cancel` to retry");
                    }
                    self.save(&mut t, "gave up waiting")?;
                    return Ok(t);
                }
                self.stop_running(&mut t, "past its time limit")?;
                stopped_by_us = true;
                deadline = self.clock.now() + grace;
                n = 0;
                continue;
            }
            self.sleeper.sleep(self.cfg.poll.delay(n));
            n = n.saturating_add(1);
        }
    }

    fn stop_running(&self, t: &mut TaskRecord, why: &str) -> Result<(), OrchError> {
        for i in 0..t.sides.len() {
            if !t.sides[i].may_be_active() {
                continue;
            }
            let name = t.sides[i].capture_name.clone();
            let reason = Self::reason(t, &format!("stop capture {name} ({why})"));
            match self.provider.capture_stop(&t.location, &name, &reason) {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {
                    t.sides[i].capture_deleted = true;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Stops the task's captures in Azure now (they are then downloaded and analysed by the
    /// next check).
    pub fn stop_task(&self, id: &TaskId) -> Result<TaskRecord, OrchError> {
        let mut t = self.registry.get(id)?;
        self.stop_running(&mut t, "stop requested")?;
        self.advance(&mut t)?;
        Ok(t)
    }

    /// Cancels a task: stops its captures in Azure, deletes the capture resources (and what
    /// `opts` asks) and records it as cancelled. Results already obtained are kept.
    pub fn cancel_task(&self, id: &TaskId, opts: CleanupOptions) -> Result<TaskRecord, OrchError> {
        let mut t = self.registry.get(id)?;
        if t.state == TaskState::Cancelled && t.sides.iter().all(|s| s.capture_deleted) {
            return Ok(t);
        }
        self.stop_running(&mut t, "task cancelled")?;
        self.delete_resources(&mut t, opts)?;
        t.state = TaskState::Cancelled;
        self.save(&mut t, "cancelled")?;
        Ok(t)
    }

    /// Cleans a task up: stops what still runs, deletes the capture resources, the blobs when
    /// asked and the local files when asked. Sides that finished become `cleaned`; failed
    /// sides stay `failed` with their error.
    pub fn cleanup_task(&self, id: &TaskId, opts: CleanupOptions) -> Result<TaskRecord, OrchError> {
        let mut t = self.registry.get(id)?;
        if t.state == TaskState::Cancelled {
            self.delete_resources(&mut t, opts)?;
            self.save(&mut t, "cleaned up (cancelled task)")?;
            return Ok(t);
        }
        if t.sides.iter().any(|s| s.may_be_active()) {
            self.stop_running(&mut t, "cleanup requested")?;
        }
        self.delete_resources(&mut t, opts)?;
        for s in t.sides.iter_mut().filter(|s| s.state != TaskState::Failed) {
            s.state = TaskState::Cleaned;
        }
        self.save(&mut t, "cleaned up")?;
        Ok(t)
    }

    fn delete_resources(&self, t: &mut TaskRecord, opts: CleanupOptions) -> Result<(), OrchError> {
        for i in 0..t.sides.len() {
            if !t.sides[i].capture_deleted {
                let name = t.sides[i].capture_name.clone();
                let why = Self::reason(t, &format!("delete capture resource {name}"));
                not_found_ok(self.provider.capture_delete(&t.location, &name, &why))?;
                t.sides[i].capture_deleted = true;
            }
            if opts.delete_blob && !t.sides[i].blob_deleted {
                if let Some(b) = t.sides[i].blob.clone().or_else(|| {
                    t.sides[i]
                        .storage_path
                        .as_deref()
                        .and_then(|p| blob_of_storage_path(p, &self.cfg.storage_account).ok())
                }) {
                    let at = BlobLocation {
                        account: b.account.clone(),
                        container: b.container.clone(),
                        auth: self.cfg.blob_auth,
                    };
                    let why = Self::reason(t, &format!("delete capture blob {}", b.name));
                    not_found_ok(self.provider.blob_delete(&at, &b.name, &why))?;
                    t.sides[i].blob_deleted = true;
                }
            }
        }
        if opts.delete_local {
            let dir = self.task_dir(&t.task_id);
            let why = Self::reason(t, "delete the local capture files");
            self.remove_local(&dir, &why)?;
            for s in t.sides.iter_mut() {
                s.local_deleted = true;
            }
        }
        Ok(())
    }

    /// Deletes a directory under `<audit_dir>/captures/` through the gate (`rm -rf --`).
    fn remove_local(&self, dir: &Path, reasoning: &str) -> Result<(), OrchError> {
        let root = self.cfg.audit_dir.join("captures");
        let inside = dir.parent() == Some(root.as_path())
            && dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.is_empty() && n != ".." && n != ".");
        if !inside {
            return Err(OrchError::InvalidOption(format!(
                "refusing to delete {}: only directories directly under {} are this tool's",
                dir.display(),
                root.display()
            )));
        }
        if std::fs::symlink_metadata(dir).is_err() {
            return Ok(());
        }
        let path = dir.display().to_string();
        let res = self
            .gate
            .run_argv(
                &safety_shell::types::Target::Local,
                &["rm", "-rf", "--", &path],
                reasoning,
            )
            .map_err(|e| OrchError::Cloud(CloudError::from_gate(e, None)))?;
        if !res.success() {
            return Err(OrchError::io(
                "cannot delete",
                dir,
                std::io::Error::other(format!(
                    "rm exited {:?}: {}",
                    res.exit_code,
                    res.stderr.trim()
                )),
            ));
        }
        Ok(())
    }

    /// Finds what earlier runs left behind: non-terminal tasks written by other sessions,
    /// captures in Azure named with this tool's prefix but unknown to the registry (or whose
    /// task believes them deleted), and local capture directories of finished or unknown
    /// tasks older than `max_age`. Then applies `policy` without asking.
    pub fn orphans(
        &self,
        max_age: Duration,
        policy: OrphanPolicy,
    ) -> Result<OrphanReport, OrchError> {
        let mut rep = OrphanReport::default();
        let known = self.registry.load()?;
        rep.warnings.extend(known.warnings.iter().cloned());
        let outcome = |r: Result<(), OrchError>| match (policy, r) {
            (OrphanPolicy::Skip, _) => "skipped".to_string(),
            (OrphanPolicy::Review, _) => "review".to_string(),
            (OrphanPolicy::Clean, Ok(())) => "done".to_string(),
            (OrphanPolicy::Clean, Err(e)) => format!("failed: {e}"),
        };
        let act = policy == OrphanPolicy::Clean;
        // 1. Stale tasks of other sessions.
        for t in known.tasks.values() {
            if t.is_terminal() || t.written_by == self.cfg.session_id {
                continue;
            }
            let finished = t.sides.iter().all(|s| s.state >= TaskState::Stopped);
            let r = if !act {
                Ok(())
            } else if finished {
                self.cleanup_task(&t.task_id, CleanupOptions::default())
                    .map(|_| ())
            } else {
                self.cancel_task(&t.task_id, CleanupOptions::default())
                    .map(|_| ())
            };
            rep.orphans.push(Orphan {
                kind: "stale_task".into(),
                what: t.task_id.to_string(),
                detail: format!(
                    "state {} since {} (session {})",
                    t.state,
                    t.updated_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    t.written_by
                ),
                action: if finished {
                    "delete its capture resources, mark it cleaned (blobs, local files and results kept)"
                } else {
                    "stop and delete its captures, mark it cancelled (blobs and local files kept; `status ID --wait` would resume it instead)"
                }
                .into(),
                outcome: outcome(r),
            });
        }
        // 2. Captures in Azure with our prefix that no live task accounts for.
        let known = self.registry.load()?;
        match self
            .location()
            .and_then(|l| Ok((self.provider.capture_list(&l)?, l)))
        {
            Ok((caps, location)) => {
                for c in caps
                    .iter()
                    .filter(|c| c.name.starts_with(crate::CAPTURE_PREFIX))
                {
                    let owner = parse_capture_name(&c.name)
                        .and_then(|(id, role)| known.tasks.get(&id).map(|t| (t, role)));
                    let tracked = owner
                        .is_some_and(|(t, role)| t.side(role).is_some_and(|s| !s.capture_deleted));
                    if tracked {
                        continue;
                    }
                    let r = if act {
                        not_found_ok(self.provider.capture_stop(
                            &location,
                            &c.name,
                            "cloud-orchestrator: stop orphaned capture",
                        ))
                        .and_then(|_| {
                            not_found_ok(self.provider.capture_delete(
                                &location,
                                &c.name,
                                "cloud-orchestrator: delete orphaned capture",
                            ))
                        })
                        .map_err(OrchError::from)
                    } else {
                        Ok(())
                    };
                    rep.orphans.push(Orphan {
                        kind: "untracked_capture".into(),
                        what: c.name.clone(),
                        detail: format!(
                            "in {location} on {}, {}",
                            c.target
                                .as_deref()
                                .and_then(|t| t.rsplit('/').next())
                                .unwrap_or("?"),
                            if owner.is_some() {
                                "its task thinks it deleted"
                            } else {
                                "no registry entry"
                            }
                        ),
                        action: "stop and delete the capture resource".into(),
                        outcome: outcome(r),
                    });
                }
            }
            Err(e) => rep
                .warnings
                .push(format!("captures in Azure not checked: {e}")),
        }
        // 3. Old local capture directories of terminal or unknown tasks.
        let root = self.cfg.audit_dir.join("captures");
        if let Ok(rd) = std::fs::read_dir(&root) {
            let now = self.clock.now();
            for e in rd.filter_map(|e| e.ok()) {
                let p = e.path();
                let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                    continue;
                };
                let live = TaskId::parse(&name)
                    .ok()
                    .and_then(|id| known.tasks.get(&id))
                    .is_some_and(|t| !t.is_terminal());
                if live {
                    continue;
                }
                let Some(age) = newest_mtime(&p).map(|m| now - m) else {
                    continue;
                };
                if age.to_std().unwrap_or_default() < max_age {
                    continue;
                }
                let r = if act {
                    self.remove_local(&p, "cloud-orchestrator: delete old local capture files")
                } else {
                    Ok(())
                };
                rep.orphans.push(Orphan {
                    kind: "old_local_file".into(),
                    what: p.display().to_string(),
                    detail: format!("{} h old", age.num_hours()),
                    action: "delete the directory".into(),
                    outcome: outcome(r),
                });
            }
        }
        Ok(rep)
    }
}

/// Whether a `packetCaptureStatus` means the capture holds the VM's one capture slot.
fn is_active(status: Option<&str>) -> bool {
    matches!(
        status.map(str::to_ascii_lowercase).as_deref(),
        Some("running") | Some("notstarted")
    )
}

fn newest_mtime(p: &Path) -> Option<DateTime<Utc>> {
    let mut newest: Option<DateTime<Utc>> = None;
    let mut consider = |m: std::fs::Metadata| {
        if let Ok(t) = m.modified() {
            let t: DateTime<Utc> = t.into();
            newest = Some(newest.map_or(t, |n| n.max(t)));
        }
    };
    consider(std::fs::symlink_metadata(p).ok()?);
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.filter_map(|e| e.ok()) {
            if let Ok(m) = e.metadata() {
                consider(m);
            }
        }
    }
    newest
}
