//! Building, inspecting and tearing down a lab run.
//!
//! Everything a run creates is recorded in `{run_dir}/state.json` right after it is created
//! (namespaces, host-side links, processes with pid and start time, files), so `down` can
//! undo it even after a crash.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::nsg::VmLink;
use crate::scenario::{CloudUndo, Scenario, Topology};
use crate::storage_state::{StorageAccountState, StorageState, SubnetState};
use crate::sys::{self, ProcRecord};

/// Lab errors.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Bad input or configuration (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A runtime failure (exit code 3).
    #[error("{0}")]
    Runtime(String),
}

impl From<sys::CmdError> for LabError {
    fn from(e: sys::CmdError) -> Self {
        LabError::Runtime(e.to_string())
    }
}

impl From<crate::scenario::ScenarioError> for LabError {
    fn from(e: crate::scenario::ScenarioError) -> Self {
        LabError::Usage(e.to_string())
    }
}

fn rt(msg: impl Into<String>) -> LabError {
    LabError::Runtime(msg.into())
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, LabError>;

/// Address of the lab storage endpoint.
pub const STORAGE_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// Fabric side of the storage link.
pub const STORAGE_GW: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// Address of the internet host.
pub const INTERNET_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 128, 10);
/// Fabric side of the internet link.
pub const INTERNET_GW: Ipv4Addr = Ipv4Addr::new(198, 19, 128, 1);
/// Global lock serialising slot allocation between labs.
pub const SLOT_LOCK: &str = "/run/netlab.lock";
/// Number of operator slots (labs that can exist at once).
pub const MAX_SLOTS: u32 = 60;

/// The default state directory.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("NETLAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/netlab"))
}

/// One VM of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    /// VM name.
    pub name: String,
    /// Namespace.
    pub ns: String,
    /// Fabric-side link name.
    pub link: String,
    /// Private IP.
    pub private_ip: Ipv4Addr,
    /// Lab public IP (reachable from the root namespace over the operator link).
    pub public_ip: Ipv4Addr,
    /// Gateway (fabric) address.
    pub gateway: Ipv4Addr,
}

/// The operator link between the root namespace and the fabric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpLink {
    /// Slot number.
    pub slot: u32,
    /// Root-side interface.
    pub root_if: String,
    /// Fabric-side interface.
    pub fab_if: String,
    /// Root-side address.
    pub root_ip: Ipv4Addr,
    /// Fabric-side address.
    pub fab_ip: Ipv4Addr,
    /// The /24 of public IPs routed over this link in the root namespace.
    pub public_prefix: String,
}

/// One undo step of a fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum UndoStep {
    /// Run a command (argv, program first); failures are reported but do not stop the rest.
    Run {
        /// The command.
        argv: Vec<String>,
    },
    /// Stop a recorded process (by pid and start time).
    Stop {
        /// Pid.
        pid: i32,
        /// Start time.
        start_time: u64,
    },
    /// Undo a control-plane change and recompile the fabric.
    Cloud {
        /// The steps.
        steps: Vec<CloudUndo>,
    },
    /// Restart a topology service that the fault stopped.
    StartService {
        /// VM.
        vm: String,
        /// Port.
        port: u16,
    },
    /// Remove a file.
    RemoveFile {
        /// Path.
        path: String,
    },
}

/// A fault that is active in the lab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// `f1`, `f2`, …
    pub id: String,
    /// VM name, or `cloud` for control-plane faults.
    pub target: String,
    /// `rate`, `loss`, `impair` (delay/jitter/corruption, maybe loss), `mtu`, `iptables`,
    /// `nft`, `listen`, `stop_service`, or the cloud fault kind.
    pub kind: String,
    /// Inline keys this fault covers (for `netlab clear VM:key`).
    pub keys: Vec<String>,
    /// How it is implemented: `tbf`, `iptables statistic`, `netem`, `nfqueue emulator`,
    /// `ip link mtu`, `iptables`, `nft`, `process`, `fabric nftables`, `fabric policy
    /// routing`, `storage state`.
    pub mechanism: String,
    /// Human detail.
    pub detail: String,
    /// Pre-baseline stage.
    pub before_baseline: bool,
    /// How to undo it, in order.
    pub undo: Vec<UndoStep>,
}

/// Everything a run created.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// Run id (the part between `nl` and `-`).
    pub run: String,
    /// Name prefix `nl<run>-`.
    pub prefix: String,
    /// Run directory.
    pub run_dir: PathBuf,
    /// Scenario file used by `up`.
    pub scenario_file: Option<String>,
    /// Scenario name.
    pub scenario_name: String,
    /// When `up` started (RFC 3339).
    pub created_at: String,
    /// `true` once `up` finished.
    pub complete: bool,
    /// The topology as built.
    pub base_topology: Option<Topology>,
    /// The topology now (after cloud faults).
    pub topology: Option<Topology>,
    /// Namespaces created.
    pub namespaces: Vec<String>,
    /// Links created in the root namespace.
    pub root_links: Vec<String>,
    /// nft tables created (`ns family name`).
    pub nft_tables: Vec<String>,
    /// Processes started.
    pub processes: Vec<ProcRecord>,
    /// Files `up` created. All of them live under the run directory (removed by `down`);
    /// nothing is written elsewhere except the shared lock file and `/run/sshd`.
    pub files: Vec<String>,
    /// VMs.
    pub vms: Vec<VmRecord>,
    /// Operator link.
    pub oplink: Option<OpLink>,
    /// Storage namespace, if any.
    pub storage_ns: Option<String>,
    /// Internet namespace, if any.
    pub internet_ns: Option<String>,
    /// Active faults.
    pub faults: Vec<ActiveFault>,
    /// Next fault number.
    pub next_fault: u32,
    /// How netem was probed (`available: detail`), filled at the first delay fault.
    pub netem: Option<String>,
    /// Workload traffic generators known to the lab (from the scenario of `up` and of every
    /// `inject FILE`), by name.
    #[serde(default)]
    pub traffic: Vec<crate::traffic::TrafficSpec>,
}

/// A loaded run and where its state lives.
#[derive(Debug)]
pub struct Lab {
    /// The state.
    pub st: RunState,
    /// `{run_dir}/state.json`.
    pub state_path: PathBuf,
    /// The `netlab` executable used for helper subcommands.
    pub exe: PathBuf,
}

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Silences the progress lines on stderr (`-q`).
pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

/// Prints a progress line on stderr unless quiet.
pub fn progress(msg: &str) {
    if !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("netlab: {msg}");
    }
}

/// Validates a user-given run id.
pub fn check_run_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 8
        || !id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(LabError::Usage(format!(
            "prefix `{id}` must be 1-8 lowercase letters or digits (names become nl<prefix>-…)"
        )));
    }
    Ok(())
}

/// Normalises `--prefix` input: accepts `ab12`, `nlab12` or `nlab12-`.
pub fn normalise_prefix(p: &str) -> String {
    let p = p.trim_end_matches('-');
    p.to_string()
}

fn random_run_id() -> String {
    use rand::Rng;
    const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    (0..4)
        .map(|_| CH[r.gen_range(0..CH.len())] as char)
        .collect()
}

/// Lists the run directories in a state directory (those with a `state.json`).
pub fn list_runs(state_dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(state_dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.join("state.json").is_file() {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

impl Lab {
    /// Loads the run with the given prefix, or the only run if `prefix` is `None`.
    pub fn find(state_dir: &Path, prefix: Option<&str>) -> Result<Lab> {
        let runs = list_runs(state_dir);
        let chosen = match prefix {
            Some(p) => {
                let p = normalise_prefix(p);
                let id = p.strip_prefix("nl").filter(|s| !s.is_empty()).unwrap_or(&p);
                let cands: Vec<&PathBuf> = runs
                    .iter()
                    .filter(|r| {
                        r.file_name().and_then(|n| n.to_str()) == Some(id)
                            || r.file_name().and_then(|n| n.to_str()) == Some(&p)
                    })
                    .collect();
                match cands.first() {
                    Some(c) => (*c).clone(),
                    None => {
                        return Err(LabError::Usage(format!(
                            "no lab with prefix `{p}` in {}; see `netlab status` or run `netlab up FILE`",
                            state_dir.display()
                        )))
                    }
                }
            }
            None => match runs.len() {
                0 => {
                    return Err(LabError::Usage(format!(
                        "no lab is up (nothing in {}); start one with `netlab up FILE`",
                        state_dir.display()
                    )))
                }
                1 => runs[0].clone(),
                _ => {
                    let names: Vec<String> = runs
                        .iter()
                        .filter_map(|r| r.file_name().and_then(|n| n.to_str()).map(str::to_string))
                        .collect();
                    return Err(LabError::Usage(format!(
                        "several labs are up ({}); choose one with --prefix",
                        names.join(", ")
                    )));
                }
            },
        };
        Lab::load(&chosen.join("state.json"))
    }

    /// Loads a state file.
    pub fn load(path: &Path) -> Result<Lab> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| rt(format!("cannot read lab state {}: {e}", path.display())))?;
        let st: RunState = serde_json::from_str(&text).map_err(|e| {
            rt(format!(
                "lab state {} is corrupt ({e}); remove the lab with `netlab down --all`",
                path.display()
            ))
        })?;
        Ok(Lab {
            st,
            state_path: path.to_path_buf(),
            exe: current_exe(),
        })
    }

    /// Writes the state atomically.
    pub fn save(&self) -> Result<()> {
        write_atomic(
            &self.state_path,
            serde_json::to_string_pretty(&self.st)
                .map_err(|e| rt(e.to_string()))?
                .as_bytes(),
        )
    }

    /// Run directory.
    pub fn run_dir(&self) -> &Path {
        &self.st.run_dir
    }

    /// The fabric namespace.
    pub fn fab(&self) -> String {
        format!("{}fab", self.st.prefix)
    }

    /// The live topology.
    pub fn topology(&self) -> &Topology {
        self.st
            .topology
            .as_ref()
            .expect("a lab state always has a topology once created")
    }

    /// A VM record.
    pub fn vm(&self, name: &str) -> Result<&VmRecord> {
        self.st.vms.iter().find(|v| v.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.st.vms.iter().map(|v| v.name.as_str()).collect();
            LabError::Usage(format!(
                "the lab has no VM `{name}` (VMs: {})",
                names.join(", ")
            ))
        })
    }

    fn links(&self) -> Vec<VmLink> {
        self.st
            .vms
            .iter()
            .map(|v| VmLink {
                vm: v.name.clone(),
                link: v.link.clone(),
                private_ip: v.private_ip,
                public_ip: Some(v.public_ip),
            })
            .collect()
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        sys::run("ip", &["netns", "add", ns])?;
        self.st.namespaces.push(ns.to_string());
        self.save()?;
        sys::run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    pub(crate) fn spawn(
        &mut self,
        ns: &str,
        owner: &str,
        role: &str,
        program: &str,
        args: &[String],
    ) -> Result<ProcRecord> {
        let log = self
            .run_dir()
            .join("logs")
            .join(format!("{owner}-{}.log", role.replace([':', '/'], "_")));
        let p = sys::spawn_in(ns, owner, role, program, args, &log)?;
        self.st.processes.push(p.clone());
        self.save()?;
        Ok(p)
    }

    /// Recompiles the NSGs into the fabric's nftables table (atomically, `nft -f`).
    pub fn apply_nsgs(&mut self) -> Result<()> {
        let text = crate::nsg::compile(
            self.topology(),
            &self.links(),
            self.st.oplink.as_ref().map(|o| o.fab_if.as_str()),
        );
        let path = self.run_dir().join("fabric.nft");
        write_atomic(&path, text.as_bytes())?;
        sys::run_in(&self.fab(), "nft", &["-f", &path.display().to_string()])?;
        let rec = format!("{} inet netlab", self.fab());
        if !self.st.nft_tables.contains(&rec) {
            self.st.nft_tables.push(rec);
            self.save()?;
        }
        Ok(())
    }

    /// Recompiles routes into the fabric's policy routing.
    pub fn apply_routes(&mut self) -> Result<()> {
        let compiled = crate::routes::compile(self.topology(), &self.links());
        let mut batch = String::new();
        for s in &compiled {
            batch.push_str(&crate::routes::table_batch(s));
        }
        let path = self.run_dir().join("fabric.routes");
        write_atomic(&path, batch.as_bytes())?;
        sys::run(
            "ip",
            &["-n", &self.fab(), "-batch", &path.display().to_string()],
        )?;
        // Rules: one per VM link, pointing at its subnet's table (idempotent).
        let existing = sys::run("ip", &["-n", &self.fab(), "rule", "show"])?;
        for s in &compiled {
            for l in &s.links {
                let want = format!("iif {l} lookup {}", s.table);
                if !existing.contains(&want) {
                    sys::run(
                        "ip",
                        &[
                            "-n",
                            &self.fab(),
                            "rule",
                            "add",
                            "pref",
                            &crate::routes::RULE_PREF.to_string(),
                            "iif",
                            l,
                            "lookup",
                            &s.table.to_string(),
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Writes `{run_dir}/storage.json` from the live topology.
    pub fn write_storage_state(&self) -> Result<()> {
        let t = self.topology();
        let st = StorageState {
            accounts: t
                .storage_accounts
                .iter()
                .map(|a| StorageAccountState {
                    name: a.name.clone(),
                    containers: vec![a.container.clone()],
                    default_action: a.default_action.clone(),
                    vnet_rules: a
                        .vnet_rules
                        .iter()
                        .map(|r| {
                            if r.contains('/') {
                                r.clone()
                            } else {
                                format!("{}/{r}", t.vnet.name)
                            }
                        })
                        .collect(),
                    ip_rules: a.ip_rules.clone(),
                })
                .collect(),
            subnets: t
                .vnet
                .subnets
                .iter()
                .map(|s| SubnetState {
                    name: format!("{}/{}", t.vnet.name, s.name),
                    prefix: s.address_prefix.clone(),
                    service_endpoints: s.service_endpoints.clone(),
                })
                .collect(),
        };
        st.save(&self.run_dir().join("storage.json"))
            .map_err(|e| rt(format!("cannot write storage state: {e}")))
    }

    /// Re-applies NSGs, routes and the storage state after a topology change.
    pub fn recompile(&mut self) -> Result<()> {
        self.apply_nsgs()?;
        self.apply_routes()?;
        self.write_storage_state()?;
        self.save()
    }

    /// Starts one topology service of a VM and waits until it listens.
    pub fn start_service(&mut self, vm: &str, port: u16) -> Result<ProcRecord> {
        let t = self.topology().clone();
        let v = t
            .vm(vm)
            .ok_or_else(|| LabError::Usage(format!("no VM `{vm}`")))?;
        let svc = v
            .services
            .iter()
            .find(|s| s.port == port)
            .ok_or_else(|| LabError::Usage(format!("VM `{vm}` has no service on port {port}")))?
            .clone();
        let ns = self.vm(vm)?.ns.clone();
        let exe = self.exe.display().to_string();
        let (prog, args): (String, Vec<String>) = match svc.kind.as_str() {
            "iperf2" if svc.protocol == "udp" => (
                "iperf".into(),
                vec!["-s".into(), "-u".into(), "-p".into(), port.to_string()],
            ),
            "iperf2" => (
                "iperf".into(),
                vec!["-s".into(), "-p".into(), port.to_string()],
            ),
            "qperf" => ("qperf".into(), vec!["-lp".into(), port.to_string()]),
            "http" => (
                exe,
                vec![
                    "__serve".into(),
                    "--port".into(),
                    port.to_string(),
                    "--http".into(),
                    "--slow-every".into(),
                    svc.slow_every.to_string(),
                    "--slow-ms".into(),
                    svc.slow_ms.to_string(),
                ],
            ),
            _ => (
                exe,
                vec!["__serve".into(), "--port".into(), port.to_string()],
            ),
        };
        let p = self.spawn(&ns, vm, &format!("{}:{port}", svc.kind), &prog, &args)?;
        sys::wait_bound(&p, port, &svc.protocol, Duration::from_secs(5)).map_err(rt)?;
        Ok(p)
    }
}

fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("netlab"))
}

/// Writes a file atomically (temporary file, fsync, rename).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| rt(format!("cannot write {}: {e}", tmp.display())))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| rt(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| rt(format!("cannot write {}: {e}", path.display())))
}

/// The sshd binary: `$NETLAB_SSHD` or `/usr/sbin/sshd`.
pub fn sshd_path() -> String {
    std::env::var("NETLAB_SSHD")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/usr/sbin/sshd".to_string())
}

/// Every file under `dir` (two levels), for the state record.
fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Ok(sub) = std::fs::read_dir(&p) {
                    out.extend(sub.flatten().map(|e| e.path().display().to_string()));
                }
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Checks root and the tools `up` needs.
pub fn preflight(topology: &Topology) -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(rt(
            "netlab needs root (network namespaces, nftables); run it with sudo",
        ));
    }
    let sshd = sshd_path();
    let mut need = vec!["ip", "nft", "iptables", "tc", "ssh-keygen", sshd.as_str()];
    for v in &topology.vms {
        for s in &v.services {
            match s.kind.as_str() {
                "iperf2" => need.push("iperf"),
                "qperf" => need.push("qperf"),
                _ => {}
            }
        }
    }
    let missing: Vec<&str> = need.into_iter().filter(|p| !sys::have(p)).collect();
    if !missing.is_empty() {
        let mut m = missing.clone();
        m.dedup();
        return Err(rt(format!(
            "missing tools: {}; install them with `sudo scripts/setup.sh`",
            m.join(", ")
        )));
    }
    Ok(())
}

/// Options of `up`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Run id (`--prefix`); random if `None`.
    pub run_id: Option<String>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Scenario file path (recorded).
    pub scenario_file: Option<PathBuf>,
}

struct SlotLock {
    _f: nix::fcntl::Flock<std::fs::File>,
}

fn lock_slots() -> Result<SlotLock> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(SLOT_LOCK)
        .map_err(|e| rt(format!("cannot open {SLOT_LOCK}: {e}")))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| rt(format!("cannot lock {SLOT_LOCK}: {e}")))?;
    Ok(SlotLock { _f: l })
}

fn free_slot() -> Result<u32> {
    let addrs = sys::run("ip", &["-4", "-o", "addr", "show"])?;
    let routes = sys::run("ip", &["-4", "route", "show"])?;
    for k in 0..MAX_SLOTS {
        let a = format!("198.19.255.{}/", 4 * k + 1);
        let r = format!("198.19.{}.0/24", 16 + k);
        if !addrs.contains(&a) && !routes.contains(&r) {
            return Ok(k);
        }
    }
    Err(rt(format!(
        "all {MAX_SLOTS} operator slots are in use; remove old labs with `netlab down --all`"
    )))
}

/// Builds a lab from a scenario. On failure, everything already created is removed.
pub fn up(sc: &Scenario, opts: &UpOptions) -> Result<Lab> {
    let topo = sc.topology.clone();
    preflight(&topo)?;
    let run = match &opts.run_id {
        Some(r) => {
            let r = normalise_prefix(r);
            let r = r
                .strip_prefix("nl")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .unwrap_or(r);
            check_run_id(&r)?;
            r
        }
        None => random_run_id(),
    };
    let prefix = format!("nl{run}-");
    let existing = sys::run("ip", &["netns", "list"])?;
    if existing.lines().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|n| n.starts_with(&prefix))
    }) {
        return Err(LabError::Usage(format!(
            "namespaces with prefix {prefix} already exist; choose another --prefix or run `netlab down --prefix {run}`"
        )));
    }
    let run_dir = opts.state_dir.join(&run);
    if run_dir.exists() {
        return Err(LabError::Usage(format!(
            "run directory {} already exists; run `netlab down --prefix {run}` first",
            run_dir.display()
        )));
    }
    std::fs::create_dir_all(run_dir.join("logs"))
        .and_then(|_| std::fs::create_dir_all(run_dir.join("ssh")))
        .map_err(|e| {
            rt(format!(
                "cannot create run directory {}: {e}",
                run_dir.display()
            ))
        })?;
    let mut lab = Lab {
        st: RunState {
            run: run.clone(),
            prefix: prefix.clone(),
            run_dir: run_dir.clone(),
            scenario_file: opts.scenario_file.as_ref().map(|p| p.display().to_string()),
            scenario_name: sc.name.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            base_topology: Some(topo.clone()),
            topology: Some(topo.clone()),
            traffic: crate::traffic::resolve_names(&sc.traffic),
            next_fault: 1,
            ..Default::default()
        },
        state_path: run_dir.join("state.json"),
        exe: current_exe(),
    };
    lab.save()?;
    match build(&mut lab) {
        Ok(()) => {
            lab.st.complete = true;
            lab.save()?;
            Ok(lab)
        }
        Err(e) => {
            progress(&format!("up failed, undoing what was created: {e}"));
            let _ = down(&lab);
            Err(e)
        }
    }
}

fn build(lab: &mut Lab) -> Result<()> {
    let t0 = Instant::now();
    let topo = lab.topology().clone();
    let prefix = lab.st.prefix.clone();
    let fab = lab.fab();
    progress(&format!("creating fabric {fab}"));
    lab.add_ns(&fab)?;
    for (k, v) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
    ] {
        sys::run_in(&fab, "sysctl", &["-qw", &format!("{k}={v}")])?;
    }
    sys::run("ip", &["-n", &fab, "route", "add", "blackhole", "default"])?;
    // The fabric's iptables filter table exists from the start, so a wire-loss fault that
    // adds and removes rules in its FORWARD chain leaves the fabric as it was.
    sys::run_in(
        &fab,
        "iptables",
        &["-w", "-t", "filter", "-P", "FORWARD", "ACCEPT"],
    )?;

    // Operator link (allocated under a global lock so concurrent labs get distinct slots).
    {
        let _lock = lock_slots()?;
        let slot = free_slot()?;
        let root_if = format!("{prefix}op");
        let fab_if = format!("{prefix}opf");
        let root_ip = Ipv4Addr::new(198, 19, 255, (4 * slot + 1) as u8);
        let fab_ip = Ipv4Addr::new(198, 19, 255, (4 * slot + 2) as u8);
        sys::run(
            "ip",
            &[
                "link", "add", &root_if, "type", "veth", "peer", "name", &fab_if, "netns", &fab,
            ],
        )?;
        lab.st.root_links.push(root_if.clone());
        let public_prefix = format!("198.19.{}.0/24", 16 + slot);
        lab.st.oplink = Some(OpLink {
            slot,
            root_if: root_if.clone(),
            fab_if: fab_if.clone(),
            root_ip,
            fab_ip,
            public_prefix: public_prefix.clone(),
        });
        lab.save()?;
        sys::run(
            "ip",
            &["addr", "add", &format!("{root_ip}/30"), "dev", &root_if],
        )?;
        sys::run("ip", &["link", "set", &root_if, "up"])?;
        sys::run(
            "ip",
            &[
                "-n",
                &fab,
                "addr",
                "add",
                &format!("{fab_ip}/30"),
                "dev",
                &fab_if,
            ],
        )?;
        sys::run("ip", &["-n", &fab, "link", "set", &fab_if, "up"])?;
        sys::run(
            "ip",
            &[
                "route",
                "add",
                &public_prefix,
                "via",
                &fab_ip.to_string(),
                "dev",
                &root_if,
            ],
        )?;
    }
    let slot = lab.st.oplink.as_ref().map(|o| o.slot).unwrap_or(0);

    // VMs.
    for (i, vm) in topo.vms.iter().enumerate() {
        let ns = format!("{prefix}{}", vm.name);
        progress(&format!(
            "creating VM {} ({ns}, {})",
            vm.name, vm.private_ip
        ));
        lab.add_ns(&ns)?;
        let link = format!("{prefix}v{i}");
        let subnet = topo
            .subnet(&vm.subnet)
            .ok_or_else(|| rt(format!("VM {} has no subnet", vm.name)))?;
        let sc: crate::addr::Cidr = subnet
            .address_prefix
            .parse()
            .map_err(|e: crate::addr::CidrError| rt(e.to_string()))?;
        let gw = Ipv4Addr::from(u32::from(sc.addr) + 1);
        let ip = topo.vm_ip(vm);
        let public_ip = Ipv4Addr::new(198, 19, (16 + slot) as u8, (10 + i) as u8);
        sys::run(
            "ip",
            &[
                "link", "add", &link, "netns", &fab, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ],
        )?;
        lab.st.vms.push(VmRecord {
            name: vm.name.clone(),
            ns: ns.clone(),
            link: link.clone(),
            private_ip: ip,
            public_ip,
            gateway: gw,
        });
        lab.save()?;
        let mtu = vm.mtu.to_string();
        sys::run("ip", &["-n", &ns, "link", "set", "eth0", "mtu", &mtu, "up"])?;
        sys::run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/{}", sc.len),
                "dev",
                "eth0",
            ],
        )?;
        sys::run(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &gw.to_string(),
                "dev",
                "eth0",
            ],
        )?;
        sys::run("ip", &["-n", &fab, "link", "set", &link, "mtu", &mtu, "up"])?;
        sys::run(
            "ip",
            &["-n", &fab, "addr", "add", &format!("{gw}/32"), "dev", &link],
        )?;
        sys::run(
            "ip",
            &[
                "-n",
                &fab,
                "route",
                "add",
                &format!("{ip}/32"),
                "dev",
                &link,
            ],
        )?;
        sys::run_in(
            &fab,
            "sysctl",
            &["-qw", &format!("net.ipv4.conf.{link}.proxy_arp=1")],
        )?;
        if let Some(mbps) = vm.bandwidth_mbps {
            progress(&format!(
                "capping {} at {mbps} Mbit/s each way in the fabric",
                vm.name
            ));
            apply_bandwidth_cap(&fab, &link, &format!("{prefix}b{i}"), mbps)?;
        }
        // Like a VM image using iptables-nft: the filter, nat and mangle tables exist from
        // the start (so a fault that adds and removes rules leaves the ruleset as it was).
        for (table, chain) in [
            ("filter", "INPUT"),
            ("nat", "PREROUTING"),
            ("mangle", "PREROUTING"),
        ] {
            sys::run_in(&ns, "iptables", &["-w", "-t", table, "-P", chain, "ACCEPT"])?;
        }
    }

    // Storage endpoint.
    if !topo.storage_accounts.is_empty() {
        let ns = format!("{prefix}sto");
        progress(&format!("creating storage endpoint {ns} ({STORAGE_IP})"));
        lab.add_ns(&ns)?;
        lab.st.storage_ns = Some(ns.clone());
        lab.save()?;
        attach_host(&fab, &ns, &format!("{prefix}s"), STORAGE_GW, STORAGE_IP)?;
    }
    // Internet host.
    if topo.internet_host {
        let ns = format!("{prefix}inet");
        progress(&format!("creating internet host {ns} ({INTERNET_IP})"));
        lab.add_ns(&ns)?;
        lab.st.internet_ns = Some(ns.clone());
        lab.save()?;
        attach_host(&fab, &ns, &format!("{prefix}i"), INTERNET_GW, INTERNET_IP)?;
    }

    progress("compiling NSGs and routes into the fabric");
    lab.apply_nsgs()?;
    lab.apply_routes()?;
    lab.write_storage_state()?;

    progress("generating SSH keys and starting sshd in every VM");
    setup_ssh(lab)?;
    let mut waits = Vec::new();
    for vm in lab.st.vms.clone() {
        let conf = lab
            .run_dir()
            .join("ssh")
            .join(format!("sshd_{}.conf", vm.name));
        let p = lab.spawn(
            &vm.ns,
            &vm.name,
            "sshd",
            &sshd_path(),
            &[
                "-D".into(),
                "-e".into(),
                "-f".into(),
                conf.display().to_string(),
            ],
        )?;
        waits.push((p, 22u16));
    }
    for vm in &topo.vms {
        for s in &vm.services {
            progress(&format!("starting {} on {}:{}", s.kind, vm.name, s.port));
            lab.start_service(&vm.name, s.port)?;
        }
    }
    if let Some(ns) = lab.st.internet_ns.clone() {
        let exe = lab.exe.display().to_string();
        let p = lab.spawn(
            &ns,
            "inet",
            "http:80",
            &exe,
            &[
                "__serve".into(),
                "--port".into(),
                "80".into(),
                "--http".into(),
            ],
        )?;
        waits.push((p, 80));
        let p = lab.spawn(
            &ns,
            "inet",
            "tcp:443",
            &exe,
            &["__serve".into(), "--port".into(), "443".into()],
        )?;
        waits.push((p, 443));
    }
    if let Some(ns) = lab.st.storage_ns.clone() {
        let exe = lab.exe.display().to_string();
        let data = lab.run_dir().join("blobdata");
        std::fs::create_dir_all(&data)
            .map_err(|e| rt(format!("cannot create {}: {e}", data.display())))?;
        // Each storage account's container exists from the start, as in the scenario.
        for a in &lab.topology().storage_accounts {
            let dir = data.join(&a.name).join(&a.container);
            std::fs::create_dir_all(&dir)
                .map_err(|e| rt(format!("cannot create {}: {e}", dir.display())))?;
        }
        let p = lab.spawn(
            &ns,
            "sto",
            "blobd:80",
            &exe,
            &[
                "__blobd".into(),
                "--listen".into(),
                format!("{STORAGE_IP}:80"),
                "--state".into(),
                lab.run_dir().join("storage.json").display().to_string(),
                "--data-dir".into(),
                data.display().to_string(),
            ],
        )?;
        waits.push((p, 80));
    }
    for (p, port) in &waits {
        sys::wait_listening(p, *port, Duration::from_secs(5)).map_err(rt)?;
    }
    write_config_env(lab)?;
    lab.st.files = list_files(lab.run_dir());
    lab.save()?;
    progress(&format!(
        "lab {} is up in {:.1} s ({} VMs)",
        lab.st.run,
        t0.elapsed().as_secs_f64(),
        lab.st.vms.len()
    ));
    Ok(())
}

/// `tbf` arguments of a VM bandwidth cap: the burst holds 10 ms at the rate and at least one
/// 64 KiB GSO packet (veth hands the fabric whole GSO packets), queue latency 50 ms.
pub fn cap_tbf_args(mbps: u32) -> Vec<String> {
    let bytes_per_s = u64::from(mbps) * 1_000_000 / 8;
    let burst = (bytes_per_s / 100).max(65536);
    vec![
        "tbf".into(),
        "rate".into(),
        format!("{mbps}mbit"),
        "burst".into(),
        burst.to_string(),
        "latency".into(),
        "50ms".into(),
    ]
}

/// The VM's bandwidth cap, enforced in the fabric (the Azure host), invisible in the VM:
/// inbound to the VM by `tbf` on the fabric side of its link; outbound from the VM by an
/// `ingress` qdisc on that link redirecting every packet (`u32` match-all, `mirred`) to an
/// `ifb` device in the fabric shaped by `tbf`. Everything lives in the fabric namespace and
/// goes with it at `down`.
fn apply_bandwidth_cap(fab: &str, link: &str, ifb: &str, mbps: u32) -> Result<()> {
    let tbf = cap_tbf_args(mbps);
    let mut args: Vec<String> = ["qdisc", "add", "dev", link, "root"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tbf.iter().cloned());
    sys::run_in(fab, "tc", &args)?;
    sys::run("ip", &["-n", fab, "link", "add", ifb, "type", "ifb"]).map_err(|e| {
        rt(format!(
            "{e}; the VM bandwidth cap needs the kernel's ifb device (modprobe ifb)"
        ))
    })?;
    sys::run("ip", &["-n", fab, "link", "set", ifb, "up"])?;
    let mut args: Vec<String> = ["qdisc", "add", "dev", ifb, "root"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(tbf);
    sys::run_in(fab, "tc", &args)?;
    sys::run_in(
        fab,
        "tc",
        &["qdisc", "add", "dev", link, "handle", "ffff:", "ingress"],
    )?;
    sys::run_in(
        fab,
        "tc",
        &[
            "filter", "add", "dev", link, "parent", "ffff:", "protocol", "all", "u32", "match",
            "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
        ],
    )?;
    Ok(())
}

fn attach_host(fab: &str, ns: &str, link: &str, gw: Ipv4Addr, ip: Ipv4Addr) -> Result<()> {
    sys::run(
        "ip",
        &[
            "link", "add", link, "netns", fab, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ],
    )?;
    sys::run(
        "ip",
        &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
    )?;
    sys::run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    sys::run(
        "ip",
        &["-n", ns, "route", "add", "default", "via", &gw.to_string()],
    )?;
    sys::run(
        "ip",
        &["-n", fab, "addr", "add", &format!("{gw}/24"), "dev", link],
    )?;
    sys::run("ip", &["-n", fab, "link", "set", link, "up"])?;
    Ok(())
}

fn setup_ssh(lab: &mut Lab) -> Result<()> {
    let dir = lab.run_dir().join("ssh");
    if !Path::new("/run/sshd").exists() {
        // sshd's privilege-separation directory; shared with the system, so never removed.
        std::fs::create_dir_all("/run/sshd")
            .map_err(|e| rt(format!("cannot create /run/sshd: {e}")))?;
    }
    let key = dir.join("id_ed25519");
    let keys = key.display().to_string();
    sys::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            &format!("netlab-{}", lab.st.run),
            "-f",
            &keys,
        ],
    )?;
    let pubkey = std::fs::read_to_string(dir.join("id_ed25519.pub"))
        .map_err(|e| rt(format!("cannot read the client key: {e}")))?;
    write_atomic(&dir.join("authorized_keys"), pubkey.as_bytes())?;
    let mut known = String::new();
    let mut config = String::new();
    for vm in &lab.st.vms {
        let hk = dir.join(format!("{}_host_ed25519_key", vm.name));
        sys::run(
            "ssh-keygen",
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &vm.name,
                "-f",
                &hk.display().to_string(),
            ],
        )?;
        let hpub = std::fs::read_to_string(hk.with_extension("pub"))
            .or_else(|_| std::fs::read_to_string(format!("{}.pub", hk.display())))
            .map_err(|e| rt(format!("cannot read host key of {}: {e}", vm.name)))?;
        let mut parts = hpub.split_whitespace();
        let (kt, kb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        known.push_str(&format!(
            "{},{},{} {kt} {kb}\n",
            vm.name, vm.public_ip, vm.private_ip
        ));
        let sshd_conf = format!(
            "# netlab run {run}: sshd of {vm}\nListenAddress {ip}:22\nHostKey {hk}\nPidFile none\nAuthorizedKeysFile {ak}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nX11Forwarding no\nPrintMotd no\nUseDNS no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
            run = lab.st.run,
            vm = vm.name,
            ip = vm.private_ip,
            hk = hk.display(),
            ak = dir.join("authorized_keys").display()
        );
        write_atomic(
            &dir.join(format!("sshd_{}.conf", vm.name)),
            sshd_conf.as_bytes(),
        )?;
        config.push_str(&format!(
            "Host {name}\n  HostName {pubip}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n\n",
            name = vm.name,
            pubip = vm.public_ip,
            key = keys,
            kh = dir.join("known_hosts").display()
        ));
    }
    write_atomic(&dir.join("known_hosts"), known.as_bytes())?;
    write_atomic(&dir.join("ssh_config"), config.as_bytes())?;
    Ok(())
}

/// The `config.env` content for the tools.
pub fn config_env(lab: &Lab) -> String {
    let t = lab.topology();
    let pick = |want: &str, idx: usize| {
        lab.st
            .vms
            .iter()
            .find(|v| v.name == want)
            .or_else(|| lab.st.vms.get(idx))
            .cloned()
    };
    let src = pick("source-vm", 0);
    let dst = pick("dest-vm", 1);
    let nsg_of = |v: &Option<VmRecord>| {
        v.as_ref()
            .and_then(|v| t.vm(&v.name))
            .and_then(|v| v.nsg.clone())
            .unwrap_or_default()
    };
    let ssh = lab.run_dir().join("ssh");
    let key = ssh.join("id_ed25519").display().to_string();
    let acct = t.storage_accounts.first();
    let mut lines = vec![
        format!(
            "# netlab run {} (scenario {}): written by `netlab env`",
            lab.st.run, lab.st.scenario_name
        ),
        format!("SUBSCRIPTION_ID={}", t.subscription_id),
        format!("RESOURCE_GROUP={}", t.resource_group),
        format!("LOCATION={}", t.location),
        format!("VNET_NAME={}", t.vnet.name),
        format!(
            "SUBNET_NAME={}",
            src.as_ref()
                .and_then(|v| t.vm(&v.name))
                .map(|v| v.subnet.clone())
                .unwrap_or_default()
        ),
        format!(
            "SOURCE_VM_NAME={}",
            src.as_ref().map(|v| v.name.clone()).unwrap_or_default()
        ),
        format!(
            "SOURCE_VM_PRIVATE_IP={}",
            src.as_ref()
                .map(|v| v.private_ip.to_string())
                .unwrap_or_default()
        ),
        format!(
            "SOURCE_VM_PUBLIC_IP={}",
            src.as_ref()
                .map(|v| v.public_ip.to_string())
                .unwrap_or_default()
        ),
        format!("SOURCE_NSG_NAME={}", nsg_of(&src)),
        format!(
            "DEST_VM_NAME={}",
            dst.as_ref().map(|v| v.name.clone()).unwrap_or_default()
        ),
        format!(
            "DEST_VM_PRIVATE_IP={}",
            dst.as_ref()
                .map(|v| v.private_ip.to_string())
                .unwrap_or_default()
        ),
        format!(
            "DEST_VM_PUBLIC_IP={}",
            dst.as_ref()
                .map(|v| v.public_ip.to_string())
                .unwrap_or_default()
        ),
        format!("DEST_NSG_NAME={}", nsg_of(&dst)),
        "SSH_USER=root".to_string(),
        format!("SSH_SOURCE_VM_KEY_PATH={key}"),
        format!("SSH_DEST_VM_KEY_PATH={key}"),
        format!("SSH_KNOWN_HOSTS={}", ssh.join("known_hosts").display()),
        "SSH_STRICT_HOST_KEY_CHECKING=true".to_string(),
        format!(
            "STORAGE_ACCOUNT_NAME={}",
            acct.map(|a| a.name.clone()).unwrap_or_default()
        ),
        format!(
            "STORAGE_CONTAINER_NAME={}",
            acct.map(|a| a.container.clone()).unwrap_or_default()
        ),
        "AUDIT_DIR=./audit".to_string(),
        // The az front end's wrapper (written with this file), so the tools reach the lab's
        // control plane without any PATH change.
        format!("AZ_PATH={}", lab.run_dir().join("bin").join("az").display()),
        format!("NETLAB_RUN={}", lab.st.run),
        format!(
            "NETLAB_STATE_DIR={}",
            lab.run_dir()
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        format!("NETLAB_SSH_CONFIG={}", ssh.join("ssh_config").display()),
    ];
    if lab.st.storage_ns.is_some() {
        lines.push(format!("NETLAB_STORAGE_ENDPOINT=http://{STORAGE_IP}"));
    }
    if lab.st.internet_ns.is_some() {
        // What an investigator evaluates "the internet" toward (routes, NSGs).
        lines.push(format!("INTERNET_PROBE_IP={INTERNET_IP}"));
    }
    lines.join("\n") + "\n"
}

/// Writes `{run_dir}/config.env` and the `az` wrapper its `AZ_PATH` names.
pub fn write_config_env(lab: &Lab) -> Result<PathBuf> {
    let state_dir = lab
        .run_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    crate::az::cmds::write_wrapper(lab, &state_dir)
        .map_err(|e| LabError::Runtime(format!("cannot write the az wrapper: {e}")))?;
    let p = lab.run_dir().join("config.env");
    write_atomic(&p, config_env(lab).as_bytes())?;
    Ok(p)
}

/// Tears a run down: processes, namespaces (which removes their links and nft tables),
/// root-side links, the run directory. Best effort: keeps going and reports what failed.
pub fn down(lab: &Lab) -> Result<()> {
    let mut errors = Vec::new();
    // Processes, newest first.
    // SIGTERM to all first (they exit in parallel), then wait for each / SIGKILL.
    for p in lab.st.processes.iter().rev() {
        sys::terminate(p);
    }
    for p in lab.st.processes.iter().rev() {
        sys::stop(p, Duration::from_millis(1000));
    }
    // Root-side links first: deleting one end of a veth removes the pair at once, whereas
    // a namespace's links are cleaned up asynchronously after `ip netns del`.
    for l in &lab.st.root_links {
        // A link that vanished meanwhile (e.g. its peer's namespace went first) is fine.
        let exists = || Path::new(&format!("/sys/class/net/{l}")).exists();
        if exists() {
            if let Err(e) = sys::run("ip", &["link", "del", l]) {
                if exists() {
                    errors.push(e.to_string());
                }
            }
        }
    }
    let netns = sys::run("ip", &["netns", "list"]).unwrap_or_default();
    let present: Vec<&str> = netns
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for ns in lab.st.namespaces.iter().rev() {
        if present.contains(&ns.as_str()) {
            // Anything still running inside a namespace this run created (e.g. a process
            // started just before a crash, before it could be recorded) goes with it.
            if let Ok(pids) = sys::run("ip", &["netns", "pids", ns]) {
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if let Err(e) = sys::run("ip", &["netns", "del", ns]) {
                errors.push(e.to_string());
            }
        }
    }
    if lab.run_dir().exists() {
        if let Err(e) = std::fs::remove_dir_all(lab.run_dir()) {
            errors.push(format!("cannot remove {}: {e}", lab.run_dir().display()));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(rt(format!(
            "down left something behind: {}",
            errors.join("; ")
        )))
    }
}

/// `down --all`: every run in the state directory, then leftovers by name: namespaces and
/// root links named `nl<id>-…`. With `scope`, only runs whose id starts with it (state,
/// leftovers and run directories alike). Returns what was removed.
pub fn down_all(state_dir: &Path, scope: Option<&str>) -> Result<Vec<String>> {
    let in_scope = |id: &str| scope.is_none_or(|s| id.starts_with(s));
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for r in list_runs(state_dir)
        .into_iter()
        .filter(|r| r.file_name().and_then(|n| n.to_str()).is_some_and(in_scope))
    {
        match Lab::load(&r.join("state.json")) {
            Ok(lab) => {
                removed.push(format!("run {}", lab.st.run));
                if let Err(e) = down(&lab) {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // A leftover lab is recognised by its anchor: the fabric namespace `nl<id>-fab` (created
    // first, deleted last) or the root link `nl<id>-op`. Only names under such a prefix are
    // touched, so other tools' namespaces that merely start with `nl` are left alone.
    let run_id_of = |n: &str, suffix: &str| -> Option<String> {
        let id = n.strip_prefix("nl")?.strip_suffix(suffix)?;
        check_run_id(id)
            .ok()
            .filter(|_| in_scope(id))
            .map(|_| id.to_string())
    };
    let netns = sys::run("ip", &["netns", "list"]).unwrap_or_default();
    let ns_names: Vec<String> = netns
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let root_links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    let mut prefixes: Vec<String> = ns_names
        .iter()
        .filter_map(|n| run_id_of(n, "-fab"))
        .chain(root_links.iter().filter_map(|n| run_id_of(n, "-op")))
        .map(|id| format!("nl{id}-"))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let ours = |n: &str| prefixes.iter().any(|p| n.starts_with(p.as_str()));
    // VM namespaces first, the fabric last (as `down` does).
    let mut leftovers: Vec<&String> = ns_names.iter().filter(|n| ours(n)).collect();
    leftovers.sort_by_key(|n| n.ends_with("-fab"));
    for ns in leftovers {
        // Processes still inside a leftover lab namespace were started by netlab.
        if let Ok(pids) = sys::run("ip", &["netns", "pids", ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        match sys::run("ip", &["netns", "del", ns]) {
            Ok(_) => removed.push(format!("namespace {ns}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    for n in root_links.iter().filter(|n| ours(n)) {
        let path = format!("/sys/class/net/{n}");
        let t0 = Instant::now();
        while Path::new(&path).exists() && t0.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if Path::new(&path).exists() {
            match sys::run("ip", &["link", "del", n]) {
                Ok(_) => removed.push(format!("link {n}")),
                Err(e) => {
                    if Path::new(&path).exists() {
                        errors.push(e.to_string());
                    }
                }
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(state_dir) {
        for e in rd.flatten() {
            let p = e.path();
            // Only directories that look like run directories (a run id name and the
            // state file or the ssh directory `up` creates first).
            let looks_like_run = p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| check_run_id(n).is_ok() && in_scope(n))
                && (p.join("state.json").exists() || p.join("ssh").is_dir());
            if looks_like_run && std::fs::remove_dir_all(&p).is_ok() {
                removed.push(format!("run directory {}", p.display()));
            }
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(rt(format!(
            "down --all left something behind: {}",
            errors.join("; ")
        )))
    }
}

/// Status of a run, as JSON.
pub fn status_json(lab: &Lab) -> serde_json::Value {
    let t = lab.topology();
    let vms: Vec<serde_json::Value> = lab
        .st
        .vms
        .iter()
        .map(|v| {
            let tv = t.vm(&v.name);
            let procs: Vec<serde_json::Value> = lab
                .st
                .processes
                .iter()
                .filter(|p| p.owner == v.name)
                .map(|p| serde_json::json!({"role": p.role, "pid": p.pid, "alive": sys::is_alive(p)}))
                .collect();
            serde_json::json!({
                "name": v.name,
                "namespace": v.ns,
                "fabric_link": v.link,
                "private_ip": v.private_ip.to_string(),
                "public_ip": v.public_ip.to_string(),
                "gateway": v.gateway.to_string(),
                "subnet": tv.map(|x| x.subnet.clone()),
                "nic_nsg": tv.and_then(|x| x.nsg.clone()),
                "bandwidth_mbps": tv.and_then(|x| x.bandwidth_mbps),
                "bandwidth_cap": tv.and_then(|x| x.bandwidth_mbps).map(|m| format!(
                    "{m} Mbit/s each way: fabric tbf on {} (inbound), ingress mirred to ifb + tbf (outbound)",
                    v.link
                )),
                "processes": procs,
            })
        })
        .collect();
    let others: Vec<serde_json::Value> = lab
        .st
        .processes
        .iter()
        .filter(|p| !lab.st.vms.iter().any(|v| v.name == p.owner))
        .map(|p| serde_json::json!({"owner": p.owner, "role": p.role, "pid": p.pid, "alive": sys::is_alive(p)}))
        .collect();
    let faults: Vec<serde_json::Value> = lab
        .st
        .faults
        .iter()
        .map(|f| {
            serde_json::json!({
                "id": f.id, "target": f.target, "kind": f.kind, "keys": f.keys,
                "mechanism": f.mechanism, "detail": f.detail, "before_baseline": f.before_baseline,
            })
        })
        .collect();
    serde_json::json!({
        "schema_version": 1,
        "tool": "netlab",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "run": lab.st.run,
        "prefix": lab.st.prefix,
        "run_dir": lab.run_dir().display().to_string(),
        "scenario": lab.st.scenario_name,
        "scenario_file": lab.st.scenario_file,
        "created_at": lab.st.created_at,
        "complete": lab.st.complete,
        "fabric": lab.fab(),
        "operator_link": lab.st.oplink,
        "storage_endpoint": lab.st.storage_ns.as_ref().map(|ns| serde_json::json!({"namespace": ns, "ip": STORAGE_IP.to_string()})),
        "internet_host": lab.st.internet_ns.as_ref().map(|ns| serde_json::json!({"namespace": ns, "ip": INTERNET_IP.to_string()})),
        "vms": vms,
        "other_processes": others,
        "namespaces": lab.st.namespaces,
        "faults": faults,
        // the live control plane (changed by cloud faults and `netlab az`)
        "topology": lab.st.topology,
        "netem": lab.st.netem,
        "ssh_config": lab.run_dir().join("ssh").join("ssh_config").display().to_string(),
    })
}

/// Status as human text.
pub fn status_text(lab: &Lab) -> String {
    let mut s = format!(
        "lab {} (prefix {}, scenario {}) {}\nrun dir: {}\n",
        lab.st.run,
        lab.st.prefix,
        if lab.st.scenario_name.is_empty() {
            "-"
        } else {
            &lab.st.scenario_name
        },
        if lab.st.complete { "up" } else { "INCOMPLETE" },
        lab.run_dir().display()
    );
    for v in &lab.st.vms {
        let procs: Vec<String> = lab
            .st
            .processes
            .iter()
            .filter(|p| p.owner == v.name)
            .map(|p| format!("{}{}", p.role, if sys::is_alive(p) { "" } else { "(dead)" }))
            .collect();
        let cap = lab
            .topology()
            .vm(&v.name)
            .and_then(|x| x.bandwidth_mbps)
            .map(|m| format!("  cap {m} Mbit/s (fabric tbf/ifb)"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {:<12} {:<15} public {:<15} ns {}  [{}]{cap}\n",
            v.name,
            v.private_ip,
            v.public_ip,
            v.ns,
            procs.join(", ")
        ));
    }
    if let Some(ns) = &lab.st.storage_ns {
        s.push_str(&format!("  storage      {STORAGE_IP:<15} ns {ns}\n"));
    }
    if let Some(ns) = &lab.st.internet_ns {
        s.push_str(&format!("  internet     {INTERNET_IP:<15} ns {ns}\n"));
    }
    if lab.st.faults.is_empty() {
        s.push_str("faults: none\n");
    } else {
        s.push_str("faults:\n");
        for f in &lab.st.faults {
            s.push_str(&format!(
                "  {:<4} {:<10} {:<12} via {:<18} {}\n",
                f.id, f.target, f.kind, f.mechanism, f.detail
            ));
        }
    }
    s
}
