//! `cloud-orchestrator`: Network Watcher packet captures as resumable, audited tasks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use cloud_orchestrator::engine::{CleanupOptions, OrphanPolicy, OrphanReport};
use cloud_orchestrator::model::{CaptureFilter, CaptureOptions, Target, TaskId, TaskRecord};
use cloud_orchestrator::{OrchError, Orchestrator, OrchestratorConfig};
use cloud_provider::azure::{AzureCli, Sleeper};
use cloud_provider::config::{Environment, FlagOverrides, Settings};
use cloud_provider::provider::BlobAuth;
use cloud_provider::session::SessionId;
use safety_shell::approve::{AllRiskyApprover, NeverApprover, PolicyApprover, TerminalApprover};
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

const EXAMPLES: &str = "Examples:
  cloud-orchestrator --config config.env --approve all-risky capture --vm dest-vm --duration 30 --filter protocol=TCP,local-port=5001
  cloud-orchestrator --config config.env --approve all-risky capture --vm source-vm --to dest-vm --duration 60 --json
  cloud-orchestrator --config config.env status t20261122t074400z-ab12 --wait
  cloud-orchestrator --config config.env --approve-policy policy.toml cancel t20261122t074400z-ab12
  cloud-orchestrator --config config.env --approve all-risky cleanup t20261122t074400z-ab12 --delete-blob
  cloud-orchestrator --config config.env list
  cloud-orchestrator --config config.env --approve all-risky orphans --clean

Exit codes: 0 clean, 1 a medium+ finding in the attached analysis (or orphans left for review),
2 usage/configuration, 3 runtime failure (cloud error, failed task), 4 integrity (capture file
failed verification), 5 an operator or policy denied a gated action.";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApproveArg {
    /// Deny every risky command (read-only use).
    Never,
    /// Approve every risky command (FORBIDDEN ones stay refused).
    AllRisky,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OrphanArg {
    Clean,
    Skip,
    Review,
}

#[derive(Debug, Parser)]
#[command(
    name = "cloud-orchestrator",
    version,
    about = "Azure Network Watcher packet captures as resumable, audited tasks: create, poll, stop, download, verify, analyse, clean up, find orphans.",
    after_help = EXAMPLES
)]
struct Cli {
    /// KEY=VALUE config file (keys of demo/sample_config.env).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print one JSON document on stdout and nothing else.
    #[arg(long, global = true)]
    json: bool,
    /// Decide gated commands without asking.
    #[arg(long, value_enum, global = true)]
    approve: Option<ApproveArg>,
    /// Decide gated commands with a policy file.
    #[arg(long = "approve-policy", global = true, conflicts_with = "approve")]
    approve_policy: Option<PathBuf>,
    /// Audit directory (registry, audit log, captures). Default ./audit or AUDIT_DIR.
    #[arg(long = "audit-dir", global = true)]
    audit_dir: Option<PathBuf>,
    /// Resource group of the VMs (RESOURCE_GROUP).
    #[arg(long = "resource-group", global = true)]
    resource_group: Option<String>,
    /// The operator's storage account for captures (STORAGE_ACCOUNT_NAME).
    #[arg(long = "storage-account", global = true)]
    storage_account: Option<String>,
    /// More logs on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Capture on a VM (or on both ends of a pair with --to), wait, download, verify, analyse.
    Capture {
        /// The VM (the source of a pair).
        #[arg(long)]
        vm: String,
        /// The other end: capture on both VMs at once with mirrored filters.
        #[arg(long)]
        to: Option<String>,
        /// Time limit in seconds (1-18000).
        #[arg(long, default_value_t = 60)]
        duration: u32,
        /// Byte limit of each capture session.
        #[arg(long = "max-bytes")]
        max_bytes: Option<u64>,
        /// Bytes kept per packet (0 = all).
        #[arg(long = "bytes-per-packet")]
        bytes_per_packet: Option<u32>,
        /// A filter from --vm's point of view: protocol=TCP,local-ip=…,remote-ip=…,local-port=…,remote-port=… (repeatable).
        #[arg(long)]
        filter: Vec<String>,
        /// Why (recorded with every gated call).
        #[arg(long, default_value = "")]
        reason: String,
        /// Return once the captures are created (check later with `status ID --wait`).
        #[arg(long)]
        detach: bool,
        /// Keep the capture resources in Azure after the analysis (default: delete them).
        #[arg(long)]
        keep: bool,
        /// Delete the capture blobs after the analysis.
        #[arg(long = "delete-blob")]
        delete_blob: bool,
        /// What to do with orphans of earlier runs found at start.
        #[arg(long, value_enum, default_value = "review")]
        orphans: OrphanArg,
        /// Local capture directories older than this are orphans.
        #[arg(long = "orphan-max-age-hours", default_value_t = 24)]
        orphan_max_age_hours: u64,
    },
    /// Show a task, advancing it as far as it can go now (resumes a crashed run).
    Status {
        /// Task id.
        id: String,
        /// Wait until the capture stopped, then download and analyse.
        #[arg(long)]
        wait: bool,
    },
    /// Stop a task's captures now (then download and analyse with `status ID --wait`).
    Stop {
        /// Task id.
        id: String,
    },
    /// Cancel a task: stop its captures in Azure and delete the capture resources.
    Cancel {
        /// Task id.
        id: String,
        /// Delete the blobs too.
        #[arg(long = "delete-blob")]
        delete_blob: bool,
        /// Delete the local files too.
        #[arg(long = "delete-local")]
        delete_local: bool,
    },
    /// Clean a task up: delete the capture resources (and blobs/local files when asked).
    Cleanup {
        /// Task id.
        id: String,
        /// Delete the blobs too.
        #[arg(long = "delete-blob")]
        delete_blob: bool,
        /// Delete the local files too.
        #[arg(long = "delete-local")]
        delete_local: bool,
    },
    /// List the known tasks.
    List,
    /// Find what earlier runs left behind (review by default).
    Orphans {
        /// Stop and delete them.
        #[arg(long, conflicts_with = "review")]
        clean: bool,
        /// List them with the action --clean would take (default).
        #[arg(long)]
        review: bool,
        /// Local capture directories older than this are orphans.
        #[arg(long = "max-age-hours", default_value_t = 24)]
        max_age_hours: u64,
    },
}

struct Fail(i32, String);

impl From<OrchError> for Fail {
    fn from(e: OrchError) -> Self {
        Fail(e.exit_code(), e.to_string())
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Self {
        Fail(3, format!("{e:#}"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .try_init();
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Fail(code, msg)) => {
            eprintln!("cloud-orchestrator: {msg}");
            ExitCode::from(code as u8)
        }
    }
}

fn build(cli: &Cli) -> Result<Orchestrator, Fail> {
    let settings = Settings::load(cli.config.as_deref()).map_err(|e| Fail(2, e.to_string()))?;
    let mut f = FlagOverrides::default();
    f.set("RESOURCE_GROUP", cli.resource_group.clone());
    f.set("STORAGE_ACCOUNT_NAME", cli.storage_account.clone());
    f.set(
        "AUDIT_DIR",
        cli.audit_dir.as_ref().map(|p| p.display().to_string()),
    );
    let env = Environment::resolve(&settings, &f).map_err(|e| Fail(2, e.to_string()))?;
    let rg = Environment::require(&env.resource_group, "RESOURCE_GROUP", "--resource-group")
        .map_err(|e| Fail(2, e.to_string()))?;
    let sa = Environment::require(
        &env.storage_account,
        "STORAGE_ACCOUNT_NAME",
        "--storage-account",
    )
    .map_err(|e| Fail(2, e.to_string()))?;
    let auth = match settings.get("STORAGE_AUTH_MODE") {
        None => BlobAuth::Login,
        Some(v) => BlobAuth::parse(&v).ok_or_else(|| {
            Fail(
                2,
                format!("STORAGE_AUTH_MODE={v:?} is not login or key; fix the config"),
            )
        })?,
    };
    std::fs::create_dir_all(&env.audit_dir).map_err(|e| {
        Fail(
            3,
            format!(
                "cannot create the audit directory {}: {e}",
                env.audit_dir.display()
            ),
        )
    })?;
    let dir = env.audit_dir.clone();
    let session = SessionId::generate("cap", chrono::Utc::now(), &mut rand::thread_rng(), |s| {
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().starts_with(s))
            })
            .unwrap_or(false)
    })
    .map_err(|e| Fail(3, e.to_string()))?;
    let audit = AuditLog::open_in_dir(&env.audit_dir, session.as_str()).map_err(|e| {
        Fail(
            3,
            format!(
                "cannot open the audit log in {}: {e}",
                env.audit_dir.display()
            ),
        )
    })?;
    let builder = Gate::builder(audit).timeout(Duration::from_secs(600));
    let gate = match (cli.approve, &cli.approve_policy) {
        // `list` reads the registry only; it never runs a gated command.
        _ if matches!(cli.cmd, Cmd::List) => builder.approver(NeverApprover).build(),
        (Some(ApproveArg::Never), _) => builder.approver(NeverApprover).build(),
        (Some(ApproveArg::AllRisky), _) => builder.approver(AllRiskyApprover).build(),
        (None, Some(p)) => builder
            .approver(PolicyApprover::load(p).map_err(|e| Fail(2, e.to_string()))?)
            .build(),
        (None, None) => builder
            .approver(
                TerminalApprover::open(Duration::from_secs(120)).map_err(|e| {
                    Fail(
                        2,
                        format!("{e}; pass --approve never|all-risky or --approve-policy FILE"),
                    )
                })?,
            )
            .build(),
    };
    let gate = Arc::new(gate);
    let az = Arc::new(AzureCli::from_environment(gate.clone(), &env));
    let mut cfg = OrchestratorConfig::new(rg, sa, env.audit_dir.clone(), session.as_str());
    cfg.storage_container = env.storage_container.clone();
    cfg.blob_auth = auth;
    let interrupt = Arc::new(AtomicBool::new(false));
    watch_ctrl_c(interrupt.clone());
    Ok(Orchestrator::new(az, gate, cfg)?
        .with_sleeper(Arc::new(InterruptibleSleeper(interrupt.clone())))
        .with_interrupt(interrupt))
}

/// Sleeps in short slices and returns early once the interrupt flag is set.
struct InterruptibleSleeper(Arc<AtomicBool>);

impl Sleeper for InterruptibleSleeper {
    fn sleep(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while !self.0.load(Ordering::SeqCst) {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }
}

/// First Ctrl-C: stop the running captures and keep what they hold (download, analyse).
/// Second Ctrl-C: exit at once (the captures are then orphans for the next run).
fn watch_ctrl_c(flag: Arc<AtomicBool>) {
    cloud_provider::interrupt::on_ctrl_c(vec![
        Box::new(move || {
            eprintln!("cloud-orchestrator: interrupted; stopping the captures and keeping what they hold (Ctrl-C again to quit at once)");
            flag.store(true, Ordering::SeqCst);
        }),
        Box::new(|| {
            eprintln!("cloud-orchestrator: quitting; run `cloud-orchestrator orphans` to find what was left running");
            std::process::exit(130);
        }),
    ]);
}

fn header(o: &Orchestrator, kind: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("schema_version".into(), 1.into());
    m.insert("tool".into(), "cloud-orchestrator".into());
    m.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("session_id".into(), o.config().session_id.clone().into());
    m.insert(
        "created_at".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .into(),
    );
    m.insert("kind".into(), kind.into());
    m
}

fn print_json(v: serde_json::Map<String, serde_json::Value>) -> Result<(), Fail> {
    let s = serde_json::to_string_pretty(&serde_json::Value::Object(v))
        .context("cannot encode the result")?;
    println!("{s}");
    Ok(())
}

fn human_task(t: &TaskRecord) {
    println!(
        "task {}  {}  {}{}  ({} s{})",
        t.task_id,
        t.state,
        t.target.vm,
        t.target
            .to
            .as_deref()
            .map(|d| format!(" to {d}"))
            .unwrap_or_default(),
        t.options.duration_secs,
        t.options
            .max_bytes
            .map(|b| format!(", max {b} bytes"))
            .unwrap_or_default()
    );
    for p in &t.prerequisites {
        println!("  prerequisite {p}");
    }
    for s in &t.sides {
        println!(
            "  {:<6} {:<12} {:<10} {}",
            s.role.as_str(),
            s.vm,
            s.state.as_str(),
            s.capture_name
        );
        if let Some(k) = s.stop_kind {
            println!(
                "         stopped: {} ({:?}){}",
                s.stop_reason.as_deref().unwrap_or("no reason given"),
                k,
                if s.stopped_early {
                    " — stopped early at its limit: traffic after that is missing"
                } else {
                    ""
                }
            );
        }
        if let (Some(f), Some(b)) = (&s.local_file, s.bytes) {
            println!(
                "         file: {} ({b} bytes, {})",
                f.display(),
                s.format.as_deref().unwrap_or("?")
            );
        }
        if let Some(a) = &s.analysis {
            println!(
                "         analysis: {} packets, {} finding(s) → {}",
                a.packets,
                a.findings.len(),
                a.semantic_file.display()
            );
            for f in &a.findings {
                println!(
                    "           [{}] {} {}: {}",
                    f.severity, f.id, f.rule, f.title
                );
            }
        }
        if let Some(e) = &s.error {
            println!("         error: {e}");
        }
    }
    if let Some(c) = &t.comparison {
        println!(
            "  comparison source↔dest: significant = {}",
            c.get("significant")
                .and_then(|v| v.as_bool())
                .unwrap_or(false)
        );
    }
}

fn task_exit(t: &TaskRecord) -> i32 {
    t.exit_code()
}

fn show_task(o: &Orchestrator, json: bool, t: &TaskRecord) -> Result<i32, Fail> {
    if json {
        let mut m = header(o, "task");
        m.insert(
            "task".into(),
            serde_json::to_value(t).context("cannot encode the task")?,
        );
        print_json(m)?;
    } else {
        human_task(t);
    }
    Ok(task_exit(t))
}

fn show_orphans(rep: &OrphanReport, json: bool) -> serde_json::Value {
    if !json {
        if rep.orphans.is_empty() {
            eprintln!("no orphans from earlier runs");
        }
        for o in &rep.orphans {
            eprintln!(
                "orphan {} {}: {} → {} [{}]",
                o.kind, o.what, o.detail, o.action, o.outcome
            );
        }
        for w in &rep.warnings {
            eprintln!("warning: {w}");
        }
    }
    serde_json::to_value(rep).unwrap_or(serde_json::Value::Null)
}

fn run(cli: Cli) -> Result<i32, Fail> {
    let o = build(&cli)?;
    let json = cli.json;
    match &cli.cmd {
        Cmd::Capture {
            vm,
            to,
            duration,
            max_bytes,
            bytes_per_packet,
            filter,
            reason,
            detach,
            keep,
            delete_blob,
            orphans,
            orphan_max_age_hours,
        } => {
            let filters = filter
                .iter()
                .map(|f| CaptureFilter::parse(f))
                .collect::<Result<Vec<_>, _>>()?;
            let options = CaptureOptions {
                duration_secs: *duration,
                max_bytes: *max_bytes,
                bytes_per_packet: *bytes_per_packet,
                filters,
                reason: reason.clone(),
            };
            options.validate()?;
            let policy = match orphans {
                OrphanArg::Clean => OrphanPolicy::Clean,
                OrphanArg::Skip => OrphanPolicy::Skip,
                OrphanArg::Review => OrphanPolicy::Review,
            };
            let rep = o.orphans(Duration::from_secs(orphan_max_age_hours * 3600), policy)?;
            let orphans_json = show_orphans(&rep, json || policy == OrphanPolicy::Skip);
            let target = Target {
                vm: vm.clone(),
                to: to.clone(),
            };
            let id = o.capture_traffic(&target, &options)?;
            if !json {
                eprintln!("task {id} started; waiting for the capture ({duration} s)");
            }
            let mut t = if *detach {
                o.get_task(&id)?
            } else {
                o.wait_task(&id)?
            };
            // Capture resources are deleted whatever the outcome (a failed side's blob stays
            // for inspection unless --delete-blob); --keep leaves them.
            if !*detach && !*keep {
                t = o.cleanup_task(
                    &id,
                    CleanupOptions {
                        delete_blob: *delete_blob,
                        delete_local: false,
                    },
                )?;
            }
            if json {
                let mut m = header(&o, "task");
                m.insert(
                    "task".into(),
                    serde_json::to_value(&t).context("cannot encode the task")?,
                );
                m.insert("orphans_at_start".into(), orphans_json);
                print_json(m)?;
                Ok(task_exit(&t))
            } else {
                show_task(&o, false, &t)
            }
        }
        Cmd::Status { id, wait } => {
            let id = TaskId::parse(id)?;
            let t = if *wait {
                o.wait_task(&id)?
            } else {
                o.check_task(&id)?
            };
            show_task(&o, json, &t)
        }
        Cmd::Stop { id } => {
            let t = o.stop_task(&TaskId::parse(id)?)?;
            show_task(&o, json, &t)
        }
        Cmd::Cancel {
            id,
            delete_blob,
            delete_local,
        } => {
            let t = o.cancel_task(
                &TaskId::parse(id)?,
                CleanupOptions {
                    delete_blob: *delete_blob,
                    delete_local: *delete_local,
                },
            )?;
            show_task(&o, json, &t).map(|c| if c == 1 { 0 } else { c })
        }
        Cmd::Cleanup {
            id,
            delete_blob,
            delete_local,
        } => {
            let t = o.cleanup_task(
                &TaskId::parse(id)?,
                CleanupOptions {
                    delete_blob: *delete_blob,
                    delete_local: *delete_local,
                },
            )?;
            show_task(&o, json, &t).map(|c| if c == 1 { 0 } else { c })
        }
        Cmd::List => {
            let tasks = o.list_tasks()?;
            if json {
                let mut m = header(&o, "tasks");
                m.insert(
                    "tasks".into(),
                    serde_json::to_value(&tasks).context("cannot encode the tasks")?,
                );
                print_json(m)?;
            } else if tasks.is_empty() {
                println!("no tasks in {}", o.registry().dir().display());
            } else {
                for t in &tasks {
                    println!(
                        "{}  {:<10}  {}{}  {}",
                        t.task_id,
                        t.state.as_str(),
                        t.target.vm,
                        t.target
                            .to
                            .as_deref()
                            .map(|d| format!(" to {d}"))
                            .unwrap_or_default(),
                        t.updated_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                }
            }
            Ok(0)
        }
        Cmd::Orphans {
            clean,
            review: _,
            max_age_hours,
        } => {
            let policy = if *clean {
                OrphanPolicy::Clean
            } else {
                OrphanPolicy::Review
            };
            let rep = o.orphans(Duration::from_secs(max_age_hours * 3600), policy)?;
            let v = show_orphans(&rep, json);
            if json {
                let mut m = header(&o, "orphans");
                m.insert("orphans".into(), v);
                print_json(m)?;
            }
            let failed = rep.orphans.iter().any(|x| x.outcome.starts_with("failed"));
            Ok(if failed {
                3
            } else if policy == OrphanPolicy::Review && !rep.orphans.is_empty() {
                1
            } else {
                0
            })
        }
    }
}
