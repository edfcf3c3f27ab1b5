//! `pipe-meter`: a thin CLI over the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cloud_provider::config::{Environment, FlagOverrides};
use cloud_provider::provider::{BlobAuth, BlobLocation, CloudProvider};
use pipe_meter::{run_pipe_meter, PipeConfig, RunOptions};
use safety_shell::approve::{AllRiskyApprover, NeverApprover, PolicyApprover, TerminalApprover};
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

const EXAMPLES: &str = "Examples:
  # change window: baseline before, compare after (lab or Azure config.env)
  pipe-meter --config config.env --is-baseline --approve-policy demo/approve_policy_demo.toml
  pipe-meter --config config.env --compare-baseline --approve-policy demo/approve_policy_demo.toml
  # short run, JSON result only
  pipe-meter --config config.env --duration 2 --iterations 3 --approve all-risky --json
  # trend of past results (local, plus the blob container named in config.env)
  pipe-meter history --source 198.18.1.4 --dest 198.18.1.5 --svg trend.svg
  pipe-meter history --config config.env --source 198.18.1.4 --dest 198.18.1.5

Baselines and results are read from the audit directory and, when STORAGE_ACCOUNT_NAME and
STORAGE_CONTAINER_NAME are set, from that container too (what --upload wrote).

Exit codes: 0 clean, 1 anomaly, 2 usage/config error, 3 runtime failure, 4 integrity failure
(a stored baseline or result does not match its .sha256), 5 an operator denied a gated
action, 130 interrupted (Ctrl-C; the artifacts so far are written, the servers stopped).";

#[derive(Parser)]
#[command(name = "pipe-meter", version, about = "Deterministic VM-to-VM latency (qperf) and throughput (iperf2) measurement with baselines.", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Past results of a source/dest pair: a table, and an SVG chart of P90 latency and throughput.
    History(HistoryArgs),
}

#[derive(Args)]
struct HistoryArgs {
    /// Source private IP.
    #[arg(long)]
    source: String,
    /// Destination private IP.
    #[arg(long)]
    dest: String,
    /// A KEY=VALUE config.env file (AUDIT_DIR, STORAGE_ACCOUNT_NAME, STORAGE_CONTAINER_NAME,
    /// STORAGE_AUTH_MODE, AZ_PATH).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where the artifacts are (AUDIT_DIR; default ./audit).
    #[arg(long = "audit-dir")]
    audit_dir: Option<String>,
    /// Also read the results stored in this account's container (STORAGE_ACCOUNT_NAME).
    #[arg(long = "storage-account-name")]
    storage_account: Option<String>,
    /// The container (STORAGE_CONTAINER_NAME).
    #[arg(long = "storage-container-name")]
    storage_container: Option<String>,
    /// Decide gated (RISKY) commands without a prompt: never or all-risky (listing and
    /// downloading stored results are SAFE).
    #[arg(long, value_enum)]
    approve: Option<ApproveArg>,
    /// Decide gated commands with a policy file.
    #[arg(long = "approve-policy", conflicts_with = "approve")]
    approve_policy: Option<PathBuf>,
    /// Write the SVG chart to this file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the rows as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ApproveArg {
    Never,
    AllRisky,
}

#[derive(Args, Default)]
struct RunArgs {
    /// A KEY=VALUE config.env file (flags beat the environment, which beats the file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Source VM private IP (SOURCE_VM_PRIVATE_IP).
    #[arg(long = "source-ip")]
    source_ip: Option<String>,
    /// Destination VM private IP (DEST_VM_PRIVATE_IP).
    #[arg(long = "dest-ip")]
    dest_ip: Option<String>,
    /// Source VM public IP for SSH (SOURCE_VM_PUBLIC_IP).
    #[arg(long = "source-public-ip")]
    source_public_ip: Option<String>,
    /// Destination VM public IP for SSH (DEST_VM_PUBLIC_IP).
    #[arg(long = "dest-public-ip")]
    dest_public_ip: Option<String>,
    /// SSH user on both VMs (SSH_USER).
    #[arg(long = "ssh-user")]
    ssh_user: Option<String>,
    /// SSH key for the source VM (SSH_SOURCE_VM_KEY_PATH).
    #[arg(long = "ssh-source-vm-key-path")]
    ssh_source_key: Option<String>,
    /// SSH key for the destination VM (SSH_DEST_VM_KEY_PATH).
    #[arg(long = "ssh-dest-vm-key-path")]
    ssh_dest_key: Option<String>,
    /// latency, throughput or both (TEST_TYPE; default both).
    #[arg(long = "test-type")]
    test_type: Option<String>,
    /// Measured iterations (ITERATIONS; default 8).
    #[arg(long)]
    iterations: Option<String>,
    /// Store this run as a baseline (IS_BASELINE).
    #[arg(long = "is-baseline", overrides_with = "no_is_baseline")]
    is_baseline: bool,
    /// Do not store this run as a baseline.
    #[arg(long = "no-is-baseline")]
    no_is_baseline: bool,
    /// Compare with the latest baseline for (source, dest, test type) (COMPARE_BASELINE).
    #[arg(long = "compare-baseline")]
    compare_baseline: bool,
    /// Compare with the baseline of this session (BASELINE_SESSION).
    #[arg(long = "baseline-session")]
    baseline_session: Option<String>,
    /// Session id (SESSION_ID; default pmeter_<UTC time>).
    #[arg(long = "session-id")]
    session_id: Option<String>,
    /// Where artifacts and the audit log go (AUDIT_DIR; default ./audit).
    #[arg(long = "audit-dir")]
    audit_dir: Option<String>,
    /// Resource group (RESOURCE_GROUP).
    #[arg(long = "resource-group")]
    resource_group: Option<String>,
    /// Storage account (STORAGE_ACCOUNT_NAME).
    #[arg(long = "storage-account-name")]
    storage_account: Option<String>,
    /// Storage container (STORAGE_CONTAINER_NAME).
    #[arg(long = "storage-container-name")]
    storage_container: Option<String>,
    /// Subscription (SUBSCRIPTION_ID).
    #[arg(long = "subscription-id")]
    subscription_id: Option<String>,
    /// iperf2 seconds per iteration (DURATION; default 10).
    #[arg(long)]
    duration: Option<String>,
    /// qperf seconds per iteration (QPERF_DURATION; default 2).
    #[arg(long = "qperf-duration")]
    qperf_duration: Option<String>,
    /// iperf2 parallel streams (STREAMS; default 8).
    #[arg(long)]
    streams: Option<String>,
    /// Warm-up iterations, discarded (WARMUP; default 1).
    #[arg(long)]
    warmup: Option<String>,
    /// iperf2 server port on dest (IPERF_PORT; default 5001).
    #[arg(long = "iperf-port")]
    iperf_port: Option<String>,
    /// qperf listen port on dest (QPERF_PORT; default 19765).
    #[arg(long = "qperf-port")]
    qperf_port: Option<String>,
    /// qperf data port, pinned with -ip (QPERF_DATA_PORT; default 19766).
    #[arg(long = "qperf-data-port")]
    qperf_data_port: Option<String>,
    /// Expected throughput in Gbit/s for the expectation block (EXPECTED_THROUGHPUT_GBPS).
    #[arg(long = "expected-throughput-gbps")]
    expected_throughput: Option<String>,
    /// Open ports the NSG check finds denied: one allow rule per denying gate, scoped to
    /// source → dest and the port, each creation approved through the gate (RISKY).
    #[arg(long = "open-blocked-ports")]
    open_blocked_ports: bool,
    /// Keep the rules opened by --open-blocked-ports after the run (default: removed).
    #[arg(long = "keep-opened-rules", requires = "open_blocked_ports")]
    keep_opened_rules: bool,
    /// Install missing qperf/iperf2 on the VMs with apt-get, dnf or yum (sudo -n), with
    /// approval.
    #[arg(long = "install-missing")]
    install_missing: bool,
    /// Upload the run's artifacts to STORAGE_ACCOUNT_NAME/STORAGE_CONTAINER_NAME (also
    /// config key UPLOAD=true); STORAGE_AUTH_MODE login (default) or key.
    #[arg(long)]
    upload: bool,
    /// Print only the result artifact (JSON) on stdout.
    #[arg(long)]
    json: bool,
    /// Decide gated (RISKY) commands without a prompt: never or all-risky.
    #[arg(long, value_enum)]
    approve: Option<ApproveArg>,
    /// Decide gated commands with a policy file (see demo/approve_policy_demo.toml).
    #[arg(long = "approve-policy", conflicts_with = "approve")]
    approve_policy: Option<PathBuf>,
}

struct Fail(i32, String);

fn main() {
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
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .try_init();
    let code = match cli.cmd {
        Some(Cmd::History(h)) => history(h),
        None => run(cli.run),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(Fail(c, msg)) => {
            eprintln!("pipe-meter: {msg}");
            std::process::exit(c);
        }
    }
}

fn history(h: HistoryArgs) -> Result<i32, Fail> {
    let settings = PipeConfig::settings(h.config.as_deref()).map_err(|e| Fail(2, e.to_string()))?;
    let mut f = FlagOverrides::default();
    f.set("AUDIT_DIR", h.audit_dir)
        .set("STORAGE_ACCOUNT_NAME", h.storage_account)
        .set("STORAGE_CONTAINER_NAME", h.storage_container);
    let env = Environment::resolve(&settings, &f).map_err(|e| Fail(2, e.to_string()))?;
    let dir = env.audit_dir.clone();
    let location = match (&env.storage_account, &env.storage_container) {
        (Some(account), Some(container)) => Some(BlobLocation {
            account: account.clone(),
            container: container.clone(),
            auth: BlobAuth::from_settings(&settings).map_err(|e| Fail(2, e.to_string()))?,
        }),
        _ => None,
    };
    // The blob container is read through az over the gate (listing and downloading into the
    // scratch directory are SAFE); the gate's audit log goes to the audit directory.
    let provider = match &location {
        None => None,
        Some(_) => {
            let session = format!(
                "pmeter_history_{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            );
            let gate = build_gate(
                &settings,
                &env,
                &session,
                h.approve,
                h.approve_policy.as_deref(),
                Duration::from_secs(120),
                true,
            )?;
            Some(
                cloud_provider::azure::AzureCli::new(Arc::new(gate), env.az_path.clone())
                    .with_subscription(env.subscription_id.clone()),
            )
        }
    };
    let sources = pipe_meter::store::Sources::new(
        &dir,
        provider.as_ref().map(|p| p as &dyn CloudProvider),
        location,
    );
    let hist = pipe_meter::history::collect(&sources, &h.source, &h.dest).map_err(|e| {
        Fail(
            3,
            format!("cannot read the artifacts in {}: {e}", dir.display()),
        )
    })?;
    if let Some(p) = &h.svg {
        std::fs::write(p, pipe_meter::history::svg(&hist))
            .map_err(|e| Fail(3, format!("cannot write {}: {e}", p.display())))?;
    }
    if h.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&hist).unwrap_or_default()
        );
    } else {
        print!("{}", pipe_meter::history::table(&hist));
    }
    for u in &hist.unreadable {
        eprintln!("pipe-meter: unreadable: {u}");
    }
    for e in hist
        .store_errors
        .iter()
        .filter(|e| !hist.unreadable.contains(e))
    {
        eprintln!("pipe-meter: {e}");
    }
    if !hist.integrity_failures.is_empty() {
        eprintln!(
            "pipe-meter: {} stored result(s) failed verification against their .sha256 sidecar (integrity failure); they are not in the table",
            hist.integrity_failures.len()
        );
    }
    Ok(hist.exit_code())
}

/// The gate for a run or for `history`: the audit log in the audit directory, the approver
/// from `--approve`/`--approve-policy`/`SAFETY_APPROVE` (a terminal prompt otherwise), blob
/// downloads into the scratch directory SAFE, and `AZ_PATH` trusted as `az` when it is an
/// absolute path the operator configured.
fn build_gate(
    settings: &cloud_provider::config::Settings,
    env: &Environment,
    audit_session: &str,
    approve: Option<ApproveArg>,
    approve_policy: Option<&std::path::Path>,
    per_cmd: Duration,
    safe_only: bool,
) -> Result<Gate, Fail> {
    let audit = AuditLog::open_in_dir(&env.audit_dir, audit_session).map_err(|e| {
        Fail(
            3,
            format!(
                "cannot open the audit log in {}: {e}",
                env.audit_dir.display()
            ),
        )
    })?;
    let trusted_programs = if env.az_path.is_absolute() {
        vec![env.az_path.clone()]
    } else {
        Vec::new()
    };
    let builder = Gate::builder(audit)
        .timeout(per_cmd)
        .context(safety_shell::ClassifyContext {
            output_dir: Some(pipe_meter::store::scratch_dir(&env.audit_dir)),
            read_paths: Vec::new(),
            trusted_programs,
        });
    let approve = match (approve, approve_policy.is_some()) {
        (Some(x), _) => Some(x),
        (None, true) => None,
        (None, false) => match settings.get("SAFETY_APPROVE").as_deref() {
            None => None,
            Some("never") => Some(ApproveArg::Never),
            Some("all-risky") => Some(ApproveArg::AllRisky),
            Some(other) => {
                return Err(Fail(
                    2,
                    format!(
                        "invalid value `{other}` for SAFETY_APPROVE: expected never or all-risky"
                    ),
                ))
            }
        },
    };
    Ok(match (approve, approve_policy) {
        (Some(ApproveArg::Never), _) => builder.approver(NeverApprover).build(),
        (Some(ApproveArg::AllRisky), _) => builder.approver(AllRiskyApprover).build(),
        (None, Some(p)) => builder
            .approver(PolicyApprover::load(p).map_err(|e| Fail(2, e.to_string()))?)
            .build(),
        (None, None) => match TerminalApprover::open(Duration::from_secs(120)) {
            Ok(t) => builder.approver(t).build(),
            // Only SAFE commands are expected (history): without a terminal, refuse the rest.
            Err(_) if safe_only => builder.approver(NeverApprover).build(),
            Err(e) => return Err(Fail(2, e.to_string())),
        },
    })
}

fn run(a: RunArgs) -> Result<i32, Fail> {
    let settings = PipeConfig::settings(a.config.as_deref()).map_err(|e| Fail(2, e.to_string()))?;
    let mut f = FlagOverrides::default();
    f.set("SOURCE_VM_PRIVATE_IP", a.source_ip)
        .set("DEST_VM_PRIVATE_IP", a.dest_ip)
        .set("SOURCE_VM_PUBLIC_IP", a.source_public_ip)
        .set("DEST_VM_PUBLIC_IP", a.dest_public_ip)
        .set("SSH_USER", a.ssh_user)
        .set("SSH_SOURCE_VM_KEY_PATH", a.ssh_source_key)
        .set("SSH_DEST_VM_KEY_PATH", a.ssh_dest_key)
        .set("TEST_TYPE", a.test_type)
        .set("ITERATIONS", a.iterations)
        .set("BASELINE_SESSION", a.baseline_session)
        .set("SESSION_ID", a.session_id)
        .set("AUDIT_DIR", a.audit_dir)
        .set("RESOURCE_GROUP", a.resource_group)
        .set("STORAGE_ACCOUNT_NAME", a.storage_account)
        .set("STORAGE_CONTAINER_NAME", a.storage_container)
        .set("SUBSCRIPTION_ID", a.subscription_id)
        .set("DURATION", a.duration)
        .set("QPERF_DURATION", a.qperf_duration)
        .set("STREAMS", a.streams)
        .set("WARMUP", a.warmup)
        .set("IPERF_PORT", a.iperf_port)
        .set("QPERF_PORT", a.qperf_port)
        .set("QPERF_DATA_PORT", a.qperf_data_port)
        .set("EXPECTED_THROUGHPUT_GBPS", a.expected_throughput);
    if a.is_baseline {
        f.set("IS_BASELINE", Some("true"));
    } else if a.no_is_baseline {
        f.set("IS_BASELINE", Some("false"));
    }
    if a.compare_baseline {
        f.set("COMPARE_BASELINE", Some("true"));
    }
    let cfg = PipeConfig::resolve(&settings, &f).map_err(|e| Fail(2, e.to_string()))?;

    let audit_session = cfg
        .session_id
        .clone()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| format!("pmeter_{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")));
    let per_cmd = cfg.duration_secs.max(cfg.qperf_duration_secs)
        + pipe_meter::pipeline::CLIENT_GRACE_SECS
        + 30;
    let gate = build_gate(
        &settings,
        &cfg.env,
        &audit_session,
        a.approve,
        a.approve_policy.as_deref(),
        Duration::from_secs(per_cmd as u64),
        false,
    )?;
    let gate = Arc::new(gate);
    // The provider reads effective NSGs for the preflight check (az through the same gate;
    // AZ_PATH selects the executable, e.g. netlab's az front end in the lab).
    let provider = cloud_provider::azure::AzureCli::new(gate.clone(), cfg.env.az_path.clone())
        .with_subscription(cfg.env.subscription_id.clone());

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        cloud_provider::interrupt::on_ctrl_c(vec![Box::new(move || {
            eprintln!("pipe-meter: interrupted; finishing the run in progress, then stopping the servers it started");
            cancel.store(true, Ordering::SeqCst);
        })]);
    }
    let show_progress =
        !a.json && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let progress = |p: pipe_meter::Progress| {
        if show_progress {
            let width = 30usize;
            let filled = (p.done as usize * width) / (p.total.max(1) as usize);
            let mut e = std::io::stderr();
            let _ = write!(
                e,
                "\r[{}{}] {}/{} runs",
                "#".repeat(filled),
                "-".repeat(width - filled),
                p.done,
                p.total
            );
            if p.done == p.total {
                let _ = writeln!(e);
            }
        }
    };
    // A flag beats the config key; a key with a value that is not a boolean is a usage
    // error, never silently false.
    let switch = |flag: bool, key: &str| -> Result<bool, Fail> {
        if flag {
            return Ok(true);
        }
        match settings.get(key) {
            None => Ok(false),
            Some(v) => {
                cloud_provider::config::parse_bool(key, &v).map_err(|e| Fail(2, e.to_string()))
            }
        }
    };
    let upload = switch(a.upload, "UPLOAD")?;
    let open_blocked_ports = switch(a.open_blocked_ports, "OPEN_BLOCKED_PORTS")?;
    let keep_opened_rules = switch(a.keep_opened_rules, "KEEP_OPENED_RULES")?;
    let install_missing = switch(a.install_missing, "INSTALL_MISSING")?;
    let blob_auth = cloud_provider::provider::BlobAuth::from_settings(&settings)
        .map_err(|e| Fail(2, e.to_string()))?;
    let opts = RunOptions {
        cancel,
        progress: Some(&progress),
        open_blocked_ports,
        keep_opened_rules,
        install_missing,
        upload,
        blob_auth,
        ..RunOptions::default()
    };
    let out =
        run_pipe_meter(&cfg, &gate, Some(&provider), opts).map_err(|e| Fail(3, e.to_string()))?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out.result).unwrap_or_default()
        );
    } else {
        print!("{}", out.summary);
    }
    Ok(out.exit_code)
}
