//! The pipeline: validate → preflight → measure → compute → compare → report, each stage
//! writing one artifact (`{session}_{kind}.json` with its `.sha256` sidecar).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cloud_provider::artifact::{
    Artifact, ArtifactError, ArtifactHeader, ArtifactStore, LocalStore,
};
use cloud_provider::provider::{BlobLocation, CloudProvider};
use cloud_provider::remote::ssh_target;
use cloud_provider::session::SessionId;
use safety_shell::{Gate, Target};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::{CompareMode, PipeConfig};
use crate::parse::{parse_iperf2_gbps, parse_qperf_latency_us};
use crate::remote::{run_argv, run_shell, sh_quote, ssh_transport_failed, RunError};
use crate::stats::{self, Anomaly, MetricStats};

/// The tool name in artifact headers.
pub const TOOL: &str = "pipe-meter";
/// The artifact schema version.
pub const SCHEMA_VERSION: &str = "1";
/// The exit code of a run interrupted by Ctrl-C (128 + SIGINT, as ghost-agent and
/// cloud-orchestrator use).
pub const EXIT_INTERRUPTED: i32 = 130;
/// Seconds added to each client's own duration before `timeout` kills it.
pub const CLIENT_GRACE_SECS: u32 = 5;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// All stages ran (anomalies may still have been found).
    Success,
    /// An operator denied a gated action (exit 5).
    AbortedPreflight,
    /// A runtime failure stopped the run (exit 3).
    Failed,
    /// Interrupted (Ctrl-C) during measurement (exit 130, [`EXIT_INTERRUPTED`]).
    Interrupted,
}

/// Progress of the measurement, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Runs done (warm-up included).
    pub done: u32,
    /// Runs planned (warm-up included).
    pub total: u32,
}

/// Options that are not configuration: where the commands run, cancellation, progress,
/// the clock.
pub struct RunOptions<'a> {
    /// Override the SSH targets (e.g. lab namespaces); `None` builds SSH targets from the
    /// environment (public IP when set, else private IP).
    pub targets: Option<(Target, Target)>,
    /// Set to stop the measurement early (servers are still stopped).
    pub cancel: Arc<AtomicBool>,
    /// Called after each run.
    pub progress: Option<&'a (dyn Fn(Progress) + Sync)>,
    /// "Now" for the session id and timestamps.
    pub now: DateTime<Utc>,
    /// Open ports the NSG check finds denied, with an allow rule per gate that denies
    /// (each creation goes through the gate's approval; needs the cloud provider).
    pub open_blocked_ports: bool,
    /// Keep the rules opened by `open_blocked_ports` after the run (default: removed).
    pub keep_opened_rules: bool,
    /// Install missing qperf/iperf2 with the VM's package manager (apt-get, dnf or yum;
    /// each install goes through the gate's approval).
    pub install_missing: bool,
    /// Upload the run's artifacts to the blob container (STORAGE_ACCOUNT_NAME /
    /// STORAGE_CONTAINER_NAME) through the cloud provider; failures are reported, not fatal.
    pub upload: bool,
    /// How `az storage blob` authenticates for the upload.
    pub blob_auth: cloud_provider::provider::BlobAuth,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("targets", &self.targets)
            .finish()
    }
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            targets: None,
            cancel: Arc::new(AtomicBool::new(false)),
            progress: None,
            now: Utc::now(),
            open_blocked_ports: false,
            keep_opened_rules: false,
            install_missing: false,
            upload: false,
            blob_auth: cloud_provider::provider::BlobAuth::Login,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct PipelineResult {
    /// The session.
    pub session_id: SessionId,
    /// How it ended.
    pub status: Status,
    /// The process exit code (0 clean, 1 anomaly, 2 config, 3 runtime, 4 integrity failure
    /// of the baseline compared with, 5 denied, 130 interrupted).
    pub exit_code: i32,
    /// The result artifact's body.
    pub result: Value,
    /// Path of the result artifact.
    pub result_path: PathBuf,
    /// Names of every artifact written.
    pub artifacts: Vec<String>,
    /// The console summary.
    pub summary: String,
}

/// A run that could not even write its artifacts.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The artifact store failed.
    #[error("cannot write artifacts: {0}")]
    Store(String),
    /// The session id could not be made.
    #[error("cannot make a session id: {0}")]
    Session(String),
}

/// Tools and host facts of one VM.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostFacts {
    /// `which qperf` found it.
    pub qperf: bool,
    /// `iperf` is iperf2.
    pub iperf2: bool,
    /// iperf3 found (it is not iperf2).
    pub iperf3: bool,
    /// `iperf -v` first line.
    pub iperf_version: Option<String>,
    /// `qperf --version`.
    pub qperf_version: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// Interface holding the VM's private IP.
    pub interface: Option<String>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// `tc qdisc show` lines.
    pub qdiscs: Vec<String>,
    /// TCP ports listening (`ss -H -t -l -n`).
    pub listening: Vec<u16>,
    /// Problems met while collecting.
    pub notes: Vec<String>,
    /// The package manager found (`apt-get`, `dnf` or `yum`), for `--install-missing`.
    #[serde(default)]
    pub package_manager: Option<String>,
}

/// One measured value of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    /// The command as run.
    pub command: String,
    /// The value (µs or Gbit/s); 0.0 when the run failed.
    pub value: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall time, ms.
    pub duration_ms: u64,
    /// Audit record id.
    pub audit_id: Option<String>,
    /// Raw stdout (as redacted by the gate).
    pub stdout: String,
}

/// One run (warm-up or measured).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawIteration {
    /// 1-based; warm-up runs are numbered separately.
    pub iteration: u32,
    /// Discarded warm-up.
    pub warmup: bool,
    /// qperf `tcp_lat`, µs.
    pub latency: Option<Sample>,
    /// iperf2, Gbit/s.
    pub throughput: Option<Sample>,
}

/// A server pipe-meter started on dest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerRecord {
    /// `iperf` or `qperf`.
    pub tool: String,
    /// Its pid on dest.
    pub pid: u32,
    /// Its command line (checked before it is stopped).
    pub args: String,
    /// The session that started it.
    pub session: String,
    /// Stopped and verified gone.
    #[serde(default)]
    pub stopped: bool,
}

fn header(session: &SessionId, kind: &str, now: DateTime<Utc>) -> ArtifactHeader {
    let mut h = ArtifactHeader::new(TOOL, env!("CARGO_PKG_VERSION"), session.clone(), kind, now);
    h.schema_version = SCHEMA_VERSION.to_string();
    h
}

struct Ctx<'a> {
    cfg: &'a PipeConfig,
    gate: &'a Gate,
    provider: Option<&'a dyn CloudProvider>,
    store: LocalStore,
    session: SessionId,
    now: DateTime<Utc>,
    artifacts: Vec<String>,
    /// NSG rules this run opened; removed in `finish` or, failing that, on drop.
    opened: std::sync::Mutex<crate::nsg::OpenedRules<'a>>,
    open_blocked_ports: bool,
    install_missing: bool,
    upload: bool,
    blob_auth: cloud_provider::provider::BlobAuth,
}

impl Ctx<'_> {
    fn put<T: Serialize>(&mut self, kind: &str, body: &T) -> Result<(), PipelineError> {
        self.put_header(header(&self.session, kind, self.now), body)
    }
    fn put_header<T: Serialize>(
        &mut self,
        h: ArtifactHeader,
        body: &T,
    ) -> Result<(), PipelineError> {
        let stored = self
            .store
            .put_json(&Artifact { header: h, body })
            .map_err(|e| PipelineError::Store(e.to_string()))?;
        self.artifacts.push(stored.name);
        Ok(())
    }
}

/// Runs the whole pipeline. Every command runs through `gate` on the source and dest VMs;
/// `provider` (when given, with RESOURCE_GROUP and both VM names) reads the effective NSGs
/// for the preflight NSG check.
/// Never panics on tool output; measurement failures become 0.0 samples.
pub fn run_pipe_meter(
    cfg: &PipeConfig,
    gate: &Gate,
    provider: Option<&dyn CloudProvider>,
    opts: RunOptions<'_>,
) -> Result<PipelineResult, PipelineError> {
    let store = LocalStore::new(cfg.env.audit_dir.clone());
    let session = match &cfg.session_id {
        Some(s) => s.clone(),
        None => {
            let st = store.clone();
            SessionId::generate("pmeter", opts.now, &mut rand::thread_rng(), |id| {
                st.exists(&format!("{id}_manifest.json")).unwrap_or(true)
            })
            .map_err(|e| PipelineError::Session(e.to_string()))?
        }
    };
    let mut ctx = Ctx {
        cfg,
        gate,
        provider,
        store,
        session,
        now: opts.now,
        artifacts: Vec::new(),
        opened: std::sync::Mutex::new(crate::nsg::OpenedRules::new(
            provider,
            opts.keep_opened_rules,
        )),
        open_blocked_ports: opts.open_blocked_ports,
        install_missing: opts.install_missing,
        upload: opts.upload,
        blob_auth: opts.blob_auth,
    };
    let started = Instant::now();

    // validate (the configuration was validated when it was built) → manifest
    // SSH connection sharing for this run only (see `ssh_mux`); removed when the run ends.
    let mux = ssh_mux();
    let (source_t, dest_t) = match &opts.targets {
        Some((s, d)) => (s.clone(), d.clone()),
        None => {
            let with_mux = |mut t: safety_shell::SshTarget| {
                if let (None, Some((_, cfg_file))) = (&t.config_file, &mux) {
                    t.config_file = Some(cfg_file.clone());
                }
                Target::Ssh(t)
            };
            let s = ssh_target(&cfg.env, &cfg.env.source, "source")
                .map(with_mux)
                .map_err(|e| e.to_string());
            let d = ssh_target(&cfg.env, &cfg.env.dest, "dest")
                .map(with_mux)
                .map_err(|e| e.to_string());
            match (s, d) {
                (Ok(s), Ok(d)) => (s, d),
                (Err(e), _) | (_, Err(e)) => {
                    return finish_early(&mut ctx, Status::Failed, 3, &e, json!({}));
                }
            }
        }
    };
    ctx.put(
        "manifest",
        &json!({
            "config": {
                "source_ip": cfg.source_ip, "dest_ip": cfg.dest_ip,
                "test_type": cfg.test_type, "iterations": cfg.iterations,
                "duration_secs": cfg.duration_secs, "qperf_duration_secs": cfg.qperf_duration_secs,
                "streams": cfg.streams, "warmup": cfg.warmup, "is_baseline": cfg.is_baseline,
                "compare": cfg.compare, "iperf_port": cfg.iperf_port, "qperf_port": cfg.qperf_port,
                "qperf_data_port": cfg.qperf_data_port,
                "expected_throughput_gbps": cfg.expected_throughput_gbps,
                "resource_group": cfg.env.resource_group,
                "storage_account": cfg.env.storage_account,
                "storage_container": cfg.env.storage_container,
            },
            "source_target": source_t.describe(),
            "dest_target": dest_t.describe(),
            "stages": ["validate", "preflight", "measure", "compute", "compare", "report"],
        }),
    )?;

    // preflight
    let pf = preflight(&ctx, &source_t, &dest_t);
    ctx.put("preflight", &pf.artifact)?;
    if let Some((status, code, why)) = pf.stop.clone() {
        return finish_early(&mut ctx, status, code, &why, pf.summary());
    }

    // measure
    let m = measure(&ctx, &source_t, &dest_t, &opts);
    ctx.put(
        "raw",
        &json!({
            "iterations": m.runs,
            "servers": m.servers,
            "server_errors": m.server_errors,
            "interrupted": m.interrupted,
            "wall_time_ms": started.elapsed().as_millis() as u64,
        }),
    )?;
    if let Some(why) = &m.denied {
        return finish_early(&mut ctx, Status::AbortedPreflight, 5, why, pf.summary());
    }
    if let Some(why) = &m.fatal {
        return finish_early(&mut ctx, Status::Failed, 3, why, pf.summary());
    }

    // compute
    let measured: Vec<&RawIteration> = m.runs.iter().filter(|r| !r.warmup).collect();
    let lat: Vec<f64> = measured
        .iter()
        .filter_map(|r| r.latency.as_ref().map(|s| s.value))
        .collect();
    let thr: Vec<f64> = measured
        .iter()
        .filter_map(|r| r.throughput.as_ref().map(|s| s.value))
        .collect();
    let lat_s = stats::compute(&lat);
    let thr_s = stats::compute(&thr);
    let overall = stats::overall(&[
        lat_s.as_ref().and_then(|s| s.anomaly),
        thr_s.as_ref().and_then(|s| s.anomaly),
    ]);
    ctx.put(
        "computed",
        &json!({
            "latency_us": lat_s, "throughput_gbps": thr_s,
            "anomaly_type": overall.map(Anomaly::as_str),
            "percentile_rule": "nearest rank: sorted[floor(p*N)], clamped to N-1",
        }),
    )?;
    if cfg.is_baseline {
        let h = header(&ctx.session, "baseline", ctx.now).with_key(cfg.baseline_key());
        ctx.put_header(
            h,
            &json!({
                "baseline_key": cfg.baseline_key(), "source_ip": cfg.source_ip, "dest_ip": cfg.dest_ip,
                "test_type": cfg.test_type, "latency_us": lat_s, "throughput_gbps": thr_s,
            }),
        )?;
    }

    // compare
    let comparison = compare(&ctx, lat_s.as_ref(), thr_s.as_ref());
    ctx.put("comparison", &comparison)?;

    // report
    let expectation = expectation(cfg, &comparison, lat_s.as_ref(), thr_s.as_ref());
    let status = if m.interrupted {
        Status::Interrupted
    } else {
        Status::Success
    };
    let mut result = result_body(
        &ctx,
        status,
        &pf,
        &measured,
        lat_s.as_ref(),
        thr_s.as_ref(),
        overall,
    );
    result["comparison"] = comparison.clone();
    result["expectation"] = expectation;
    result["wall_time_ms"] = json!(started.elapsed().as_millis() as u64);
    let exit_code = if m.interrupted {
        EXIT_INTERRUPTED
    } else if comparison["integrity_failure"] == json!(true) {
        4
    } else if overall.is_some() {
        1
    } else {
        0
    };
    finish(&mut ctx, status, exit_code, result)
}

/// A private SSH client configuration that shares one connection per VM for the run
/// (`ControlMaster auto`, `ControlPersist 2`: the shared connection closes itself two
/// seconds after the last command) and then reads the user's own `~/.ssh/config`. Each
/// command still runs as its own gated `ssh` invocation; only the TCP/SSH handshake is
/// reused, which takes the per-command overhead from about 0.5 s to a few milliseconds.
fn ssh_mux() -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("pmssh-")
        .tempdir_in("/tmp")
        .ok()?;
    let file = dir.path().join("ssh_config");
    let text = format!(
        "Host *\n  ControlMaster auto\n  ControlPath {}/%C\n  ControlPersist 2\n\nInclude ~/.ssh/config\n",
        dir.path().display()
    );
    std::fs::write(&file, text).ok()?;
    Some((dir, file))
}

fn finish_early(
    ctx: &mut Ctx<'_>,
    status: Status,
    code: i32,
    why: &str,
    preflight: Value,
) -> Result<PipelineResult, PipelineError> {
    let mut r = result_body(ctx, status, &Preflight::default(), &[], None, None, None);
    r["preflight"] = preflight;
    r["error"] = json!(why);
    finish(ctx, status, code, r)
}

/// The https URL of a blob.
pub fn blob_url(at: &BlobLocation, name: &str) -> String {
    format!(
        "https://{}.blob.core.windows.net/{}/{name}",
        at.account, at.container
    )
}

/// Uploads one local artifact and its `.sha256` sidecar (the blob artifact store's layout,
/// so `cloud_provider::blob::BlobStore` reads it back verified); returns its URL.
fn upload_artifact(
    ctx: &Ctx<'_>,
    provider: &dyn CloudProvider,
    at: &BlobLocation,
    name: &str,
) -> Result<String, String> {
    for file in [name.to_string(), format!("{name}.sha256")] {
        let path = ctx.store.dir().join(&file);
        provider
            .blob_upload(
                at,
                &file,
                &path,
                &format!(
                    "pipe-meter: upload {file} to {}/{} (--upload)",
                    at.account, at.container
                ),
            )
            .map_err(|e| {
                format!(
                    "cannot upload {file} to {}/{}: {e}",
                    at.account, at.container
                )
            })?;
    }
    Ok(blob_url(at, name))
}

fn finish(
    ctx: &mut Ctx<'_>,
    status: Status,
    exit_code: i32,
    mut result: Value,
) -> Result<PipelineResult, PipelineError> {
    let removal = match ctx.opened.lock() {
        Ok(mut g) => g.remove_all(),
        Err(p) => p.into_inner().remove_all(),
    };
    if !removal.is_empty() {
        if !result["preflight"].is_object() {
            result["preflight"] = json!({});
        }
        result["preflight"]["opened_rules_cleanup"] = json!(removal);
    }
    result["status"] = json!(status);
    result["exit_code"] = json!(exit_code);
    let result_name = format!("{}_result.json", ctx.session.as_str());
    let mut names = ctx.artifacts.clone();
    names.push(result_name.clone());
    result["artifacts"] = json!(names);
    let location = blob_location(ctx);
    let upload_to = match (&location, ctx.upload, ctx.provider) {
        (None, ..) => {
            result["blob"] = json!({"uploaded": false, "reason": "no storage account configured (STORAGE_ACCOUNT_NAME and STORAGE_CONTAINER_NAME)"});
            None
        }
        (Some(_), false, _) => {
            result["blob"] = json!({"uploaded": false, "reason": "upload not requested (--upload); the artifacts are in the audit directory"});
            None
        }
        (Some(_), true, None) => {
            result["blob"] = json!({"uploaded": false, "reason": "no cloud provider was given to pipe-meter, so nothing was uploaded"});
            None
        }
        (Some(at), true, Some(p)) => Some((at.clone(), p)),
    };
    let mut upload_errors: Vec<String> = Vec::new();
    if let Some((at, p)) = &upload_to {
        let mut urls = Vec::new();
        for name in ctx.artifacts.clone() {
            match upload_artifact(ctx, *p, at, &name) {
                Ok(url) => urls.push(url),
                Err(e) => upload_errors.push(e),
            }
        }
        urls.push(blob_url(at, &result_name));
        result["blob"] = json!({
            "uploaded": upload_errors.is_empty(),
            "url": blob_url(at, &result_name),
            "container_url": format!("https://{}.blob.core.windows.net/{}", at.account, at.container),
            "artifacts": urls,
            "errors": upload_errors,
        });
    }
    ctx.put("result", &result)?;
    if let Some((at, p)) = &upload_to {
        if let Err(e) = upload_artifact(ctx, *p, at, &result_name) {
            // Say so in the local result (rewritten; the artifact list stays the same).
            upload_errors.push(e);
            result["blob"]["uploaded"] = json!(false);
            result["blob"]["errors"] = json!(upload_errors);
            ctx.put("result", &result)?;
            ctx.artifacts.pop();
        }
        for e in &upload_errors {
            tracing::error!("{e}");
        }
    }
    let result_path = ctx.store.dir().join(&result_name);
    let summary = crate::report::console_summary(&result, &result_path);
    Ok(PipelineResult {
        session_id: ctx.session.clone(),
        status,
        exit_code,
        result,
        result_path,
        artifacts: ctx.artifacts.clone(),
        summary,
    })
}

// ---------------------------------------------------------------- preflight

#[derive(Debug, Clone, Default)]
struct Preflight {
    artifact: Value,
    tools_ready: bool,
    source: HostFacts,
    dest: HostFacts,
    stop: Option<(Status, i32, String)>,
    busy_ports: Vec<u16>,
}

impl Preflight {
    fn summary(&self) -> Value {
        self.artifact.get("summary").cloned().unwrap_or(json!({}))
    }
}

/// The read-only preflight script (SAFE: every part is an allow-listed diagnostic).
pub const FACTS_SCRIPT: &str = "uname -r; echo @@; command -v qperf; echo @@; command -v iperf; echo @@; command -v iperf3; echo @@; ip -o -4 addr show; echo @@; ip -o link show; echo @@; tc qdisc show; echo @@; ss -H -t -l -n; echo @@; command -v apt-get dnf yum";

/// Reads the output of [`FACTS_SCRIPT`] for the VM whose private address is `ip`.
pub fn parse_facts(stdout: &str, ip: std::net::Ipv4Addr) -> HostFacts {
    let mut f = HostFacts::default();
    let parts: Vec<&str> = stdout.split("@@\n").collect();
    let part = |i: usize| parts.get(i).copied().unwrap_or("").trim();
    f.kernel = Some(part(0).to_string()).filter(|s| !s.is_empty());
    f.qperf = !part(1).is_empty();
    let iperf = !part(2).is_empty();
    f.iperf2 = iperf; // confirmed by `iperf -v` when versions are read
    f.iperf3 = !part(3).is_empty();
    let needle = format!("inet {ip}/");
    f.interface = part(4)
        .lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|s| s.to_string());
    if let Some(dev) = &f.interface {
        for l in part(5).lines() {
            let toks: Vec<&str> = l.split_whitespace().collect();
            let name = toks.get(1).map(|n| n.trim_end_matches(':'));
            let name = name.map(|n| n.split('@').next().unwrap_or(n));
            if name == Some(dev.as_str()) {
                f.mtu = toks
                    .windows(2)
                    .find(|w| w[0] == "mtu")
                    .and_then(|w| w[1].parse().ok());
            }
        }
    } else {
        f.notes.push(format!("no interface holds {ip}"));
    }
    f.listening = parse_listening(part(7));
    f.package_manager = part(8)
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next())
        .find(|n| ["apt-get", "dnf", "yum"].contains(n))
        .map(str::to_string);
    f.qdiscs = part(6)
        .lines()
        .filter(|l| l.starts_with("qdisc"))
        .take(32)
        .map(|l| l.trim().to_string())
        .collect();
    f
}

fn host_facts(gate: &Gate, t: &Target, ip: std::net::Ipv4Addr) -> Result<HostFacts, RunError> {
    let r = run_shell(
        gate,
        t,
        FACTS_SCRIPT,
        "pipe-meter preflight: kernel, tools, interface MTU, qdiscs (read-only)",
    )?;
    if ssh_transport_failed(&r) || (r.stdout.trim().is_empty() && !r.success()) {
        return Err(RunError::Failed(format!(
            "cannot reach {} to run the preflight: {}",
            t.describe(),
            r.stderr.trim().lines().last().unwrap_or("no output")
        )));
    }
    let mut f = parse_facts(&r.stdout, ip);
    let mut ask: Vec<&str> = Vec::new();
    if f.iperf2 {
        ask.push("iperf -v");
    }
    if f.qperf {
        ask.push("qperf --version");
    }
    if !ask.is_empty() {
        let r = run_shell(
            gate,
            t,
            &ask.join("; echo @@; "),
            "pipe-meter preflight: versions of the measurement tools (iperf2 needed, not iperf3)",
        )?;
        let text = format!("{}{}", r.stdout, r.stderr);
        if f.iperf2 {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with("iperf"))
                .unwrap_or("")
                .trim()
                .to_string();
            f.iperf2 = line.starts_with("iperf version 2");
            if !f.iperf2 {
                f.notes
                    .push(format!("`iperf` is not iperf2 (it says: {line})"));
            }
            f.iperf_version = Some(line);
        }
        if f.qperf {
            f.qperf_version = text
                .lines()
                .find(|l| l.trim_start().starts_with("qperf"))
                .map(|l| l.trim().to_string());
        }
    }
    Ok(f)
}

fn listening_ports(gate: &Gate, t: &Target, ports: &[u16]) -> Result<Vec<u16>, RunError> {
    let argv: Vec<String> = ["ss", "-H", "-t", "-l", "-n"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = run_argv(
        gate,
        t,
        &argv,
        "pipe-meter preflight: are the measurement ports free on dest",
    )?;
    if !r.success() {
        return Err(RunError::Failed(format!(
            "`ss -Htln` failed on {}: {}",
            t.describe(),
            r.stderr.trim()
        )));
    }
    Ok(parse_listening(&r.stdout)
        .into_iter()
        .filter(|p| ports.contains(p))
        .collect())
}

/// The TCP ports in `ss -H -t -l -n` output, each once.
pub fn parse_listening(stdout: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(local) = line.split_whitespace().nth(3) {
            if let Some(port) = local.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
                if !out.contains(&port) {
                    out.push(port);
                }
            }
        }
    }
    out
}

/// The packages a VM lacks for this test type (`qperf`, `iperf` = iperf2).
fn missing_packages(cfg: &PipeConfig, f: &HostFacts) -> Vec<&'static str> {
    let mut p = Vec::new();
    if cfg.test_type.throughput() && !f.iperf2 {
        p.push("iperf");
    }
    if cfg.test_type.latency() && !f.qperf {
        p.push("qperf");
    }
    p
}

/// The install command for a package manager (`sudo -n`: the VM user needs passwordless
/// sudo, Azure's default for the admin user; apt-get refreshes its lists first).
pub fn install_command(package_manager: &str, packages: &[&str]) -> Option<String> {
    let pk = packages.join(" ");
    match package_manager {
        "apt-get" => Some(format!(
            "sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y {pk}"
        )),
        "dnf" | "yum" => Some(format!("sudo -n {package_manager} install -y {pk}")),
        _ => None,
    }
}

/// Installs the missing tools on each VM that lacks them (RISKY: the approver decides),
/// then reads that VM's facts again. `Err` is the stop (status, exit code, reason).
fn install_missing(
    ctx: &Ctx<'_>,
    source: &Target,
    dest: &Target,
    pf: &mut Preflight,
    actions: &mut Vec<String>,
) -> Result<(), (Status, i32, String)> {
    let cfg = ctx.cfg;
    for (role, t, ip) in [
        ("source", source, cfg.source_ip),
        ("dest", dest, cfg.dest_ip),
    ] {
        let facts = if role == "source" {
            &pf.source
        } else {
            &pf.dest
        };
        let pkgs = missing_packages(cfg, facts);
        if pkgs.is_empty() {
            continue;
        }
        let Some(pm) = facts.package_manager.clone() else {
            return Err((
                Status::Failed,
                3,
                format!(
                    "the {role} VM lacks {} and has no apt-get, dnf or yum; install the tools by hand and run again",
                    pkgs.join(" and ")
                ),
            ));
        };
        let Some(cmd) = install_command(&pm, &pkgs) else {
            return Err((
                Status::Failed,
                3,
                format!("unknown package manager {pm} on the {role} VM"),
            ));
        };
        let why = format!(
            "pipe-meter preflight: install {} on the {role} VM with {pm} (--install-missing)",
            pkgs.join(" ")
        );
        match run_shell(ctx.gate, t, &cmd, &why) {
            Err(RunError::Denied(e)) => {
                return Err((
                    Status::AbortedPreflight,
                    5,
                    format!(
                        "installing {} on the {role} VM was not approved: {e}",
                        pkgs.join(" ")
                    ),
                ))
            }
            Err(RunError::Failed(e)) => {
                return Err((
                    Status::Failed,
                    3,
                    format!("cannot install {} on the {role} VM: {e}", pkgs.join(" ")),
                ))
            }
            Ok(r) if !r.success() => {
                return Err((
                    Status::Failed,
                    3,
                    format!(
                        "installing {} on the {role} VM with {pm} failed (exit {:?}): {}; install them by hand and run again",
                        pkgs.join(" "),
                        r.exit_code,
                        r.stderr.trim().lines().last().unwrap_or("no error output")
                    ),
                ))
            }
            Ok(_) => actions.push(format!(
                "installed {} on the {role} VM with {pm}",
                pkgs.join(" ")
            )),
        }
        let again = host_facts(ctx.gate, t, ip).map_err(|e| match e {
            RunError::Denied(e) => (
                Status::AbortedPreflight,
                5,
                format!("a preflight command was denied: {e}"),
            ),
            RunError::Failed(e) => (Status::Failed, 3, e),
        })?;
        if role == "source" {
            pf.source = again;
        } else {
            pf.dest = again;
        }
    }
    Ok(())
}

fn preflight(ctx: &Ctx<'_>, source: &Target, dest: &Target) -> Preflight {
    let cfg = ctx.cfg;
    let (s, d) = std::thread::scope(|sc| {
        let a = sc.spawn(|| host_facts(ctx.gate, source, cfg.source_ip));
        let b = sc.spawn(|| host_facts(ctx.gate, dest, cfg.dest_ip));
        (
            a.join()
                .unwrap_or_else(|_| Err(RunError::Failed("preflight thread failed".into()))),
            b.join()
                .unwrap_or_else(|_| Err(RunError::Failed("preflight thread failed".into()))),
        )
    });
    let mut pf = Preflight::default();
    let mut findings: Vec<String> = Vec::new();
    match (&s, &d) {
        (Err(RunError::Denied(e)), _) | (_, Err(RunError::Denied(e))) => {
            pf.stop = Some((
                Status::AbortedPreflight,
                5,
                format!("a preflight command was denied: {e}"),
            ));
        }
        (Err(RunError::Failed(e)), _) | (_, Err(RunError::Failed(e))) => {
            pf.stop = Some((Status::Failed, 3, e.clone()));
        }
        _ => {}
    }
    pf.source = s.clone().unwrap_or_default();
    pf.dest = d.clone().unwrap_or_default();
    let needs = |f: &HostFacts, vm: &str, findings: &mut Vec<String>| {
        if cfg.test_type.latency() && !f.qperf {
            findings.push(format!("qperf is missing on {vm}"));
        }
        if cfg.test_type.throughput() && !f.iperf2 {
            if let Some(v) = f
                .iperf_version
                .as_ref()
                .filter(|v| !v.starts_with("iperf version 2"))
            {
                findings.push(format!(
                    "`iperf` on {vm} is not iperf2 ({v}); install iperf2 (package `iperf`)"
                ));
            } else if f.iperf3 {
                findings.push(format!(
                    "{vm} has iperf3, which is not iperf2; install iperf2 (package `iperf`)"
                ));
            } else {
                findings.push(format!("iperf2 is missing on {vm} (package `iperf`)"));
            }
        }
    };
    let mut actions: Vec<String> = Vec::new();
    if pf.stop.is_none() {
        let mut tool_findings = Vec::new();
        needs(&pf.source, "the source VM", &mut tool_findings);
        needs(&pf.dest, "the dest VM", &mut tool_findings);
        if !tool_findings.is_empty() && ctx.install_missing {
            findings.extend(tool_findings.iter().cloned());
            match install_missing(ctx, source, dest, &mut pf, &mut actions) {
                Ok(()) => {
                    tool_findings.clear();
                    needs(&pf.source, "the source VM", &mut tool_findings);
                    needs(&pf.dest, "the dest VM", &mut tool_findings);
                    if !tool_findings.is_empty() {
                        pf.stop = Some((
                            Status::Failed,
                            3,
                            format!(
                                "{} after installing; install them by hand and run again",
                                tool_findings.join("; ")
                            ),
                        ));
                    }
                }
                Err(stop) => pf.stop = Some(stop),
            }
        } else if !tool_findings.is_empty() {
            findings.extend(tool_findings.iter().cloned());
            pf.stop = Some((
                Status::Failed,
                3,
                format!(
                    "{}; install the missing tools (or run with --install-missing) and run again",
                    tool_findings.join("; ")
                ),
            ));
        }
        pf.tools_ready = pf.stop.is_none();
    }
    let mut ports = Vec::new();
    if cfg.test_type.throughput() {
        ports.push(cfg.iperf_port);
    }
    if cfg.test_type.latency() {
        ports.push(cfg.qperf_port);
        ports.push(cfg.qperf_data_port);
    }
    if pf.stop.is_none() {
        // The facts script already listed dest's listening ports.
        let first: Result<Vec<u16>, RunError> = Ok(pf
            .dest
            .listening
            .iter()
            .copied()
            .filter(|p| ports.contains(p))
            .collect());
        match first {
            Ok(busy) if busy.is_empty() => {}
            Ok(busy) => {
                pf.busy_ports = busy.clone();
                let stale = stale_servers(ctx, dest);
                let still: Vec<u16> = listening_ports(ctx.gate, dest, &ports).unwrap_or(busy);
                if still.is_empty() {
                    findings.push(format!("stopped stale pipe-meter servers: {stale:?}"));
                } else {
                    pf.busy_ports = still.clone();
                    pf.stop = Some((
                        Status::Failed,
                        3,
                        format!(
                            "port(s) {still:?} are already in use on dest by a process pipe-meter did not start; choose free ports with --iperf-port / --qperf-port / --qperf-data-port"
                        ),
                    ));
                }
            }
            Err(RunError::Denied(e)) => {
                pf.stop = Some((
                    Status::AbortedPreflight,
                    5,
                    format!("a preflight command was denied: {e}"),
                ))
            }
            Err(RunError::Failed(e)) => pf.stop = Some((Status::Failed, 3, e)),
        }
    }
    let env = &cfg.env;
    let nsg = match (
        ctx.provider,
        &env.resource_group,
        &env.source.name,
        &env.dest.name,
    ) {
        (None, ..) => crate::nsg::not_performed(
            "no cloud provider was given to pipe-meter, so effective NSGs were not read",
            &ports,
        ),
        (Some(p), Some(rg), Some(sn), Some(dn)) => {
            let src = crate::nsg::VmRef {
                role: "source",
                name: sn,
                ip: cfg.source_ip,
            };
            let dst = crate::nsg::VmRef {
                role: "dest",
                name: dn,
                ip: cfg.dest_ip,
            };
            if ctx.open_blocked_ports && pf.stop.is_none() {
                let mut guard = match ctx.opened.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                match crate::nsg::check_and_open(
                    p,
                    rg,
                    &src,
                    &dst,
                    &ports,
                    ctx.session.as_str(),
                    &mut guard,
                ) {
                    Ok(b) => b,
                    Err((e, b)) => {
                        pf.stop = Some(match e {
                            crate::nsg::OpenError::Denied { .. } => {
                                (Status::AbortedPreflight, 5, e.to_string())
                            }
                            _ => (Status::Failed, 3, e.to_string()),
                        });
                        b
                    }
                }
            } else {
                let mut b = crate::nsg::check(p, rg, &src, &dst, &ports);
                if b["blocked_ports"].as_array().is_some_and(|a| !a.is_empty()) {
                    b["note"] = json!("blocked ports were not opened (run with --open-blocked-ports to open them with approval); a blocked port shows as CONNECTIVITY_DROP in the measurement");
                }
                b
            }
        }
        _ => crate::nsg::not_performed(
            "the NSG check needs RESOURCE_GROUP, SOURCE_VM_NAME and DEST_VM_NAME",
            &ports,
        ),
    };
    if let Some(a) = nsg["actions_taken"].as_array() {
        actions.extend(a.iter().filter_map(|x| x.as_str().map(str::to_string)));
    }
    if let Some(f) = nsg["findings"].as_array() {
        findings.extend(f.iter().filter_map(|x| x.as_str().map(str::to_string)));
    }
    let summary = json!({
        "ports_open": nsg["ports_open"],
        "tools_ready": pf.tools_ready,
        "actions_taken": actions,
        "opened_rules": nsg["opened"],
        "blocked_ports": nsg["blocked_ports"],
        "ports_in_use_on_dest": pf.busy_ports,
        "nsg_check": nsg,
        "findings": findings,
    });
    pf.artifact = json!({
        "summary": summary,
        "source": pf.source, "dest": pf.dest,
        "stop": pf.stop.as_ref().map(|(s, c, w)| json!({"status": s, "exit_code": c, "reason": w})),
    });
    pf
}

// ---------------------------------------------------------------- measure

fn servers_file(ctx: &Ctx<'_>) -> PathBuf {
    ctx.store.dir().join("pipe-meter-servers.json")
}

fn load_servers(ctx: &Ctx<'_>) -> BTreeMap<String, Vec<ServerRecord>> {
    std::fs::read(servers_file(ctx))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_servers(ctx: &Ctx<'_>, map: &BTreeMap<String, Vec<ServerRecord>>) {
    if let Ok(bytes) = serde_json::to_vec_pretty(map) {
        let _ = std::fs::create_dir_all(ctx.store.dir());
        let _ = cloud_provider::artifact::write_atomic(&servers_file(ctx), &bytes);
    }
}

fn record_server(ctx: &Ctx<'_>, dest: &Target, rec: &ServerRecord, add: bool) {
    let mut map = load_servers(ctx);
    let list = map.entry(dest.describe()).or_default();
    list.retain(|r| r.pid != rec.pid);
    if add {
        list.push(rec.clone());
    }
    if list.is_empty() {
        map.remove(&dest.describe());
    }
    save_servers(ctx, &map);
}

/// The recorded servers still running on dest with their recorded command line.
fn running(
    gate: &Gate,
    dest: &Target,
    recs: &[ServerRecord],
    why: &str,
) -> Result<Vec<u32>, RunError> {
    if recs.is_empty() {
        return Ok(Vec::new());
    }
    let pids: Vec<String> = recs.iter().map(|r| r.pid.to_string()).collect();
    let argv: Vec<String> = ["ps", "-o", "pid=,args=", "-p", &pids.join(",")]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = run_argv(gate, dest, &argv, why)?;
    if ssh_transport_failed(&r) {
        return Err(RunError::Failed(format!(
            "cannot reach {}: {}",
            dest.describe(),
            r.stderr.trim()
        )));
    }
    let mut alive = Vec::new();
    for line in r.stdout.lines() {
        let line = line.trim();
        let (pid, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if let Ok(pid) = pid.parse::<u32>() {
            // A pid reused by another program is not ours: it is left alone.
            if recs.iter().any(|r| r.pid == pid && r.args == args.trim()) {
                alive.push(pid);
            }
        }
    }
    Ok(alive)
}

/// Stops the recorded servers (by pid, only if the pid still runs the recorded command
/// line) and returns the pids still running afterwards.
fn stop_servers(gate: &Gate, dest: &Target, recs: &[ServerRecord]) -> Result<Vec<u32>, RunError> {
    let alive = running(
        gate,
        dest,
        recs,
        "pipe-meter: are the servers it started still running",
    )?;
    if alive.is_empty() {
        return Ok(alive);
    }
    let mut argv: Vec<String> = vec!["kill".into()];
    argv.extend(alive.iter().map(|p| p.to_string()));
    run_argv(
        gate,
        dest,
        &argv,
        "pipe-meter: stop the measurement servers it started (by pid)",
    )?;
    let mut left = alive;
    for round in 0..20 {
        let still: Vec<ServerRecord> = recs
            .iter()
            .filter(|r| left.contains(&r.pid))
            .cloned()
            .collect();
        left = running(gate, dest, &still, "pipe-meter: verify the servers stopped")?;
        if left.is_empty() {
            break;
        }
        if round == 2 {
            // Still running (with the recorded command line) after SIGTERM: SIGKILL.
            // The servers hold no state worth a graceful exit.
            let mut argv: Vec<String> = vec!["kill".into(), "-KILL".into()];
            argv.extend(left.iter().map(|p| p.to_string()));
            run_argv(
                gate,
                dest,
                &argv,
                "pipe-meter: force-stop the measurement servers it started (by pid) after SIGTERM",
            )?;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(left)
}

fn stale_servers(ctx: &Ctx<'_>, dest: &Target) -> Vec<ServerRecord> {
    let map = load_servers(ctx);
    let recs = map.get(&dest.describe()).cloned().unwrap_or_default();
    let mut stopped = Vec::new();
    if let Ok(left) = stop_servers(ctx.gate, dest, &recs) {
        for rec in recs.into_iter().filter(|r| !left.contains(&r.pid)) {
            record_server(ctx, dest, &rec, false);
            stopped.push(rec);
        }
    }
    stopped
}

struct Measured {
    runs: Vec<RawIteration>,
    servers: Vec<ServerRecord>,
    server_errors: Vec<String>,
    interrupted: bool,
    denied: Option<String>,
    fatal: Option<String>,
}

/// Stops the servers it holds when dropped (success, failure, panic, interrupt).
struct ServerGuard<'a, 'b> {
    ctx: &'a Ctx<'b>,
    dest: Target,
    servers: Vec<ServerRecord>,
    errors: Vec<String>,
}

impl ServerGuard<'_, '_> {
    fn stop_all(&mut self) {
        let pending: Vec<ServerRecord> = self
            .servers
            .iter()
            .filter(|r| !r.stopped)
            .cloned()
            .collect();
        if pending.is_empty() {
            return;
        }
        match stop_servers(self.ctx.gate, &self.dest, &pending) {
            Ok(left) => {
                for rec in self.servers.iter_mut().filter(|r| !r.stopped) {
                    if left.contains(&rec.pid) {
                        self.errors.push(format!(
                            "{} server pid {} did not stop; it stays recorded and the next run stops it",
                            rec.tool, rec.pid
                        ));
                    } else {
                        rec.stopped = true;
                        record_server(self.ctx, &self.dest, rec, false);
                    }
                }
            }
            Err(e) => self.errors.push(format!(
                "could not stop the servers {:?}: {e}; they stay recorded and the next run stops them",
                pending.iter().map(|r| r.pid).collect::<Vec<_>>()
            )),
        }
    }
}

impl Drop for ServerGuard<'_, '_> {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn start_servers(
    ctx: &Ctx<'_>,
    dest: &Target,
    servers: &[(&str, Vec<String>)],
) -> Result<Vec<ServerRecord>, RunError> {
    let cmdlines: Vec<Vec<String>> = servers
        .iter()
        .map(|(tool, args)| {
            std::iter::once(tool.to_string())
                .chain(args.iter().cloned())
                .collect()
        })
        .collect();
    let command = cmdlines
        .iter()
        .map(|c| {
            let q: Vec<String> = c.iter().map(|s| sh_quote(s)).collect();
            format!("nohup {} >/dev/null 2>&1 </dev/null & echo $!", q.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let r = run_shell(
        ctx.gate,
        dest,
        &command,
        "pipe-meter: start the measurement servers on dest (stopped by pid at the end of the run)",
    )?;
    let pids: Vec<u32> = r
        .stdout
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let mut recs = Vec::new();
    for (i, c) in cmdlines.iter().enumerate() {
        let Some(pid) = pids.get(i) else { break };
        let rec = ServerRecord {
            tool: c[0].clone(),
            pid: *pid,
            args: c.join(" "),
            session: ctx.session.as_str().to_string(),
            stopped: false,
        };
        record_server(ctx, dest, &rec, true);
        recs.push(rec);
    }
    if recs.len() != cmdlines.len() {
        return Err(RunError::Failed(format!(
            "starting the servers on {} printed {} pid(s) for {} server(s): {}",
            dest.describe(),
            pids.len(),
            cmdlines.len(),
            r.stderr.trim()
        )));
    }
    Ok(recs)
}

fn client_run(
    ctx: &Ctx<'_>,
    source: &Target,
    argv: Vec<String>,
    secs: u32,
    parse: fn(&str) -> Result<f64, crate::parse::ParseError>,
) -> Result<Sample, String> {
    let mut full: Vec<String> = vec![
        "timeout".into(),
        "-k".into(),
        "2".into(),
        (secs + CLIENT_GRACE_SECS).to_string(),
    ];
    full.extend(argv);
    let command = full.join(" ");
    let t0 = Instant::now();
    let r = match run_argv(
        ctx.gate,
        source,
        &full,
        "pipe-meter: one measurement iteration from source to dest",
    ) {
        Ok(r) => r,
        Err(RunError::Denied(e)) => return Err(e),
        Err(RunError::Failed(e)) => {
            return Ok(Sample {
                command,
                value: 0.0,
                error: Some(e),
                duration_ms: t0.elapsed().as_millis() as u64,
                audit_id: None,
                stdout: String::new(),
            })
        }
    };
    let (value, error) = if r.timed_out || r.exit_code == Some(124) || r.exit_code == Some(137) {
        (0.0, Some("timed out".to_string()))
    } else if ssh_transport_failed(&r) {
        (
            0.0,
            Some(format!("SSH to the source failed: {}", r.stderr.trim())),
        )
    } else {
        match parse(&format!("{}\n{}", r.stdout, r.stderr)) {
            Ok(v) if r.success() => (v, None),
            Ok(v) => (v, Some(format!("exit code {:?}", r.exit_code))),
            Err(e) => (0.0, Some(e.to_string())),
        }
    };
    Ok(Sample {
        command,
        value,
        error,
        duration_ms: t0.elapsed().as_millis() as u64,
        audit_id: Some(r.audit_id),
        stdout: r.stdout,
    })
}

fn measure(ctx: &Ctx<'_>, source: &Target, dest: &Target, opts: &RunOptions<'_>) -> Measured {
    let cfg = ctx.cfg;
    let mut out = Measured {
        runs: Vec::new(),
        servers: Vec::new(),
        server_errors: Vec::new(),
        interrupted: false,
        denied: None,
        fatal: None,
    };
    let mut guard = ServerGuard {
        ctx,
        dest: dest.clone(),
        servers: Vec::new(),
        errors: Vec::new(),
    };
    let mut starts: Vec<(&str, Vec<String>)> = Vec::new();
    if cfg.test_type.throughput() {
        starts.push((
            "iperf",
            vec!["-s".into(), "-p".into(), cfg.iperf_port.to_string()],
        ));
    }
    if cfg.test_type.latency() {
        starts.push(("qperf", vec!["-lp".into(), cfg.qperf_port.to_string()]));
    }
    if opts.cancel.load(Ordering::SeqCst) {
        // Ctrl-C during the preflight: nothing is started.
        out.interrupted = true;
        return out;
    }
    match start_servers(ctx, dest, &starts) {
        Ok(recs) => guard.servers = recs,
        Err(RunError::Denied(e)) => {
            out.denied = Some(format!("starting the servers was denied: {e}"))
        }
        Err(RunError::Failed(e)) => {
            // Whatever did start was recorded: the guard stops it.
            guard.servers = load_servers(ctx)
                .get(&dest.describe())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.session == ctx.session.as_str())
                .collect();
            out.fatal = Some(e);
        }
    }
    if out.denied.is_none() && out.fatal.is_none() {
        std::thread::sleep(Duration::from_millis(150)); // let the servers bind
        let total = cfg.warmup + cfg.iterations;
        let dest_ip = cfg.dest_ip.to_string();
        'runs: for n in 0..total {
            if opts.cancel.load(Ordering::SeqCst) {
                out.interrupted = true;
                break;
            }
            let warmup = n < cfg.warmup;
            let mut it = RawIteration {
                iteration: if warmup { n + 1 } else { n - cfg.warmup + 1 },
                warmup,
                latency: None,
                throughput: None,
            };
            if cfg.test_type.latency() {
                let argv = vec![
                    "qperf".into(),
                    dest_ip.clone(),
                    "-lp".into(),
                    cfg.qperf_port.to_string(),
                    "-ip".into(),
                    cfg.qperf_data_port.to_string(),
                    "-t".into(),
                    cfg.qperf_duration_secs.to_string(),
                    "tcp_lat".into(),
                ];
                match client_run(
                    ctx,
                    source,
                    argv,
                    cfg.qperf_duration_secs,
                    parse_qperf_latency_us,
                ) {
                    Ok(s) => it.latency = Some(s),
                    Err(e) => {
                        out.denied = Some(format!("a qperf client run was denied: {e}"));
                        break 'runs;
                    }
                }
            }
            if cfg.test_type.throughput() && opts.cancel.load(Ordering::SeqCst) {
                // Interrupted between the two tools: keep the latency sample just taken.
                out.interrupted = true;
                out.runs.push(it);
                break 'runs;
            }
            if cfg.test_type.throughput() {
                let argv = vec![
                    "iperf".into(),
                    "-c".into(),
                    dest_ip.clone(),
                    "-p".into(),
                    cfg.iperf_port.to_string(),
                    "-t".into(),
                    cfg.duration_secs.to_string(),
                    "-P".into(),
                    cfg.streams.to_string(),
                ];
                match client_run(ctx, source, argv, cfg.duration_secs, parse_iperf2_gbps) {
                    Ok(s) => it.throughput = Some(s),
                    Err(e) => {
                        out.denied = Some(format!("an iperf2 client run was denied: {e}"));
                        break 'runs;
                    }
                }
            }
            out.runs.push(it);
            if let Some(p) = opts.progress {
                p(Progress { done: n + 1, total });
            }
        }
        if opts.cancel.load(Ordering::SeqCst) {
            out.interrupted = true;
        }
    }
    guard.stop_all();
    out.servers = guard.servers.clone();
    out.server_errors = guard.errors.clone();
    out
}

// ---------------------------------------------------------------- compare, report

/// The stores `compare` reads: the audit directory and, when both storage names are set and
/// a provider was given, the blob container.
fn sources<'a>(ctx: &Ctx<'a>) -> crate::store::Sources<'a> {
    crate::store::Sources::new(ctx.store.dir(), ctx.provider, blob_location(ctx))
}

fn blob_location(ctx: &Ctx<'_>) -> Option<BlobLocation> {
    match (&ctx.cfg.env.storage_account, &ctx.cfg.env.storage_container) {
        (Some(account), Some(container)) => Some(BlobLocation {
            account: account.clone(),
            container: container.clone(),
            auth: ctx.blob_auth,
        }),
        _ => None,
    }
}

fn compare(ctx: &Ctx<'_>, lat: Option<&MetricStats>, thr: Option<&MetricStats>) -> Value {
    let cfg = ctx.cfg;
    let mut c = json!({
        "baseline_found": false, "baseline_session": null, "baseline_timestamp": null,
        "baseline_latency_p90": null, "baseline_throughput_p90": null,
        "delta_pct_latency": null, "delta_pct_throughput": null,
        "requested": cfg.compare, "key": cfg.baseline_key(), "error": null,
    });
    if cfg.compare == CompareMode::None {
        return c;
    }
    let src = sources(ctx);
    c["searched"] = json!(src.describe());
    let mut notes: Vec<String> = Vec::new();
    let loaded = match &cfg.compare {
        CompareMode::None => return c,
        // Not the baseline this run may have just written (--is-baseline with
        // --compare-baseline compares with the previous one).
        CompareMode::Latest => src.latest(
            "pmeter",
            "baseline",
            &cfg.baseline_key(),
            Some(&format!("{}_baseline.json", ctx.session.as_str())),
            &mut notes,
        ),
        CompareMode::Session(id) => src.by_name(&format!("{}_baseline.json", id.as_str())),
    };
    if !notes.is_empty() {
        c["store_notes"] = json!(notes);
    }
    let found = match loaded {
        Ok(Some(b)) => b,
        Ok(None) => {
            c["error"] = json!(format!(
                "no baseline found for {} in {} (run once with --is-baseline first)",
                cfg.baseline_key(),
                src.describe()
            ));
            return c;
        }
        Err(e) => {
            if matches!(e, ArtifactError::Integrity { .. }) {
                c["integrity_failure"] = json!(true);
            }
            c["error"] = json!(format!("the baseline could not be read: {e}"));
            return c;
        }
    };
    c["baseline_origin"] = json!(found.origin);
    let base = found.artifact;
    let p90 = |m: &str| {
        base.body
            .get(m)
            .and_then(|v| v.get("p90"))
            .and_then(Value::as_f64)
    };
    let (bl, bt) = (p90("latency_us"), p90("throughput_gbps"));
    if bl.is_none() && bt.is_none() {
        c["error"] = json!(format!(
            "baseline {} has no P90 values",
            base.header.session_id.as_str()
        ));
        return c;
    }
    c["baseline_found"] = json!(true);
    c["baseline_session"] = json!(base.header.session_id.as_str());
    c["baseline_timestamp"] = json!(base.header.created_at.to_rfc3339());
    c["baseline_latency_p90"] = json!(bl);
    c["baseline_throughput_p90"] = json!(bt);
    if let (Some(b), Some(l)) = (bl, lat) {
        c["delta_pct_latency"] = json!(stats::delta_pct(l.p90, b));
    }
    if let (Some(b), Some(t)) = (bt, thr) {
        c["delta_pct_throughput"] = json!(stats::delta_pct(t.p90, b));
    }
    c
}

/// Latency within 1.5× the baseline P90 and throughput at least 0.8× the expectation.
pub const LATENCY_TOLERANCE: f64 = 1.5;
/// See [`LATENCY_TOLERANCE`].
pub const THROUGHPUT_TOLERANCE: f64 = 0.8;

fn expectation(
    cfg: &PipeConfig,
    cmp: &Value,
    lat: Option<&MetricStats>,
    thr: Option<&MetricStats>,
) -> Value {
    let mut checks = Vec::new();
    if let (Some(exp), Some(t)) = (cfg.expected_throughput_gbps, thr) {
        checks.push(json!({"metric": "throughput_p90", "source": "EXPECTED_THROUGHPUT_GBPS", "expected": exp,
            "measured": t.p90, "rule": format!(">= {THROUGHPUT_TOLERANCE} x expected"), "within": t.p90 >= THROUGHPUT_TOLERANCE * exp}));
    }
    if let (Some(b), Some(t)) = (cmp["baseline_throughput_p90"].as_f64(), thr) {
        checks.push(json!({"metric": "throughput_p90", "source": "baseline", "expected": b,
            "measured": t.p90, "rule": format!(">= {THROUGHPUT_TOLERANCE} x baseline"), "within": t.p90 >= THROUGHPUT_TOLERANCE * b}));
    }
    if let (Some(b), Some(l)) = (cmp["baseline_latency_p90"].as_f64(), lat) {
        checks.push(json!({"metric": "latency_p90", "source": "baseline", "expected": b,
            "measured": l.p90, "rule": format!("<= {LATENCY_TOLERANCE} x baseline"), "within": l.p90 <= LATENCY_TOLERANCE * b}));
    }
    if checks.is_empty() {
        return Value::Null;
    }
    let within = checks.iter().all(|c| c["within"] == json!(true));
    json!({"within_expectation": within, "checks": checks})
}

fn result_body(
    ctx: &Ctx<'_>,
    status: Status,
    pf: &Preflight,
    measured: &[&RawIteration],
    lat: Option<&MetricStats>,
    thr: Option<&MetricStats>,
    overall: Option<Anomaly>,
) -> Value {
    let cfg = ctx.cfg;
    let g = |m: Option<&MetricStats>, f: fn(&MetricStats) -> f64| m.map(f);
    let iteration_data: Vec<Value> = measured
        .iter()
        .map(|r| {
            let errors: Vec<String> = [&r.latency, &r.throughput]
                .into_iter()
                .flatten()
                .filter_map(|s| s.error.clone())
                .collect();
            json!({
                "iteration": r.iteration,
                "latency_us": r.latency.as_ref().map(|s| s.value),
                "throughput_gbps": r.throughput.as_ref().map(|s| s.value),
                "errors": errors,
            })
        })
        .collect();
    json!({
        "test_metadata": {
            "session_id": ctx.session.as_str(),
            "source_ip": cfg.source_ip.to_string(),
            "destination_ip": cfg.dest_ip.to_string(),
            "ssh_user": cfg.env.ssh_user,
            "test_type": cfg.test_type,
            "is_baseline": cfg.is_baseline,
            "timestamp": ctx.now.to_rfc3339(),
            "iterations": cfg.iterations,
            "resource_group": cfg.env.resource_group,
            "storage_account": cfg.env.storage_account,
            "container": cfg.env.storage_container,
            "duration_secs": cfg.duration_secs,
            "streams": cfg.streams,
            "warmup": cfg.warmup,
        },
        "preflight": pf.summary(),
        "results": {
            "is_stable": status == Status::Success && overall.is_none() && (lat.is_some() || thr.is_some()),
            "anomaly_type": overall.map(Anomaly::as_str),
            "latency_anomaly": lat.and_then(|m| m.anomaly).map(Anomaly::as_str),
            "throughput_anomaly": thr.and_then(|m| m.anomaly).map(Anomaly::as_str),
            "latency_p50": g(lat, |m| m.p50), "latency_p90": g(lat, |m| m.p90), "latency_p99": g(lat, |m| m.p99),
            "latency_min": g(lat, |m| m.min), "latency_max": g(lat, |m| m.max),
            "latency_mean": g(lat, |m| m.mean), "latency_stddev": g(lat, |m| m.stddev),
            "throughput_p50": g(thr, |m| m.p50), "throughput_p90": g(thr, |m| m.p90), "throughput_p99": g(thr, |m| m.p99),
            "throughput_min": g(thr, |m| m.min), "throughput_max": g(thr, |m| m.max),
            "throughput_mean": g(thr, |m| m.mean), "throughput_stddev": g(thr, |m| m.stddev),
            "units": {"latency": "us", "throughput": "Gbps"},
            "iteration_data": iteration_data,
        },
        "comparison": {
            "baseline_found": false, "baseline_timestamp": null,
            "baseline_latency_p90": null, "baseline_throughput_p90": null,
            "delta_pct_latency": null, "delta_pct_throughput": null,
        },
        "expectation": null,
        "tool_versions": {
            "source": {"iperf": pf.source.iperf_version, "qperf": pf.source.qperf_version},
            "dest": {"iperf": pf.dest.iperf_version, "qperf": pf.dest.qperf_version},
        },
        "host_facts": {"source": pf.source, "dest": pf.dest},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_from_script_output() {
        let out = "6.8.0-45-generic\n@@\n/usr/bin/qperf\n@@\n@@\n/usr/bin/iperf3\n@@\n\
1: lo    inet 127.0.0.1/8 scope host lo\n3: eth0    inet 10.0.1.5/24 brd 10.0.1.255 scope global eth0\n@@\n\
1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n3: eth0: <BROADCAST,UP> mtu 9000 qdisc mq state UP\n@@\n\
qdisc mq 0: dev eth0 root\nqdisc netem 8002: dev eth0 parent :1 limit 1000 delay 100ms loss 10%\n@@\n\
LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\nLISTEN 0 5 [::]:19765 [::]:*\n";
        let f = parse_facts(out, "10.0.1.5".parse().unwrap());
        assert_eq!(f.kernel.as_deref(), Some("6.8.0-45-generic"));
        assert!(f.qperf && !f.iperf2 && f.iperf3);
        assert_eq!(f.interface.as_deref(), Some("eth0"));
        assert_eq!(f.mtu, Some(9000));
        assert_eq!(f.qdiscs.len(), 2);
        assert_eq!(f.listening, vec![22, 19765]);
        // Truncated or garbage output: no panic, nothing invented.
        let g = parse_facts("garbage", "10.0.1.5".parse().unwrap());
        assert_eq!(g.mtu, None);
        assert!(!g.qperf && g.interface.is_none());
        assert_eq!(g.notes.len(), 1);
    }
}
