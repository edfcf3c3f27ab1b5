//! The `ghost-agent` command line: `investigate`, `resume`, `report`, `sessions`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cloud_provider::artifact::{ArtifactStore, LocalStore};
use cloud_provider::config::{FlagOverrides, Settings};
use cloud_provider::session::SessionId;
use safety_shell::approve::{
    AllRiskyApprover, Approver, NeverApprover, PolicyApprover, TerminalApprover,
};

use crate::engine::{load_state, Engine};
use crate::http::HttpSettings;
use crate::model::SessionStatus;
use crate::playbook::{self, PlaybookOptions, PlaybookOutcome};
use crate::session::{build_context, list_sessions, new_session_id, session_dir, ContextSpec};

const EXAMPLES: &str = "Examples:
  ghost-agent investigate --config config.env \"source-vm cannot reach dest-vm on 5001 since last night\"
  echo \"transfers 10-20x slower and ping fails\" | ghost-agent investigate --config config.env --approve never
  sudo ghost-agent investigate --lab demo/use_case_k          # lab up, inject K, investigate, lab down
  ghost-agent investigate --brain anthropic --model claude-sonnet-4-20250514 --config config.env \"...\"
  ghost-agent resume ghost_20261122T091500Z --config config.env
  ghost-agent report ghost_20261122T091500Z --json
  ghost-agent sessions

Exit codes: 0 the path was found healthy; 1 a root cause was found; 2 usage or configuration
error; 3 runtime failure or a conclusion the rules refused; 4 integrity failure (state file
checksum, audit chain); 5 stopped because an operator denied a gated action; 130 interrupted
(Ctrl-C: the session is saved, resume it with `ghost-agent resume ID`).";

/// The investigator.
#[derive(Debug, Parser)]
#[command(name = "ghost-agent", version, about = "Network investigator for two cloud VMs: measures, inspects every layer on both ends, gates risky commands behind a human, and writes a root-cause report with evidence.", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// More logging on stderr (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Investigate a symptom (given as an argument or on stdin).
    Investigate(InvestigateArgs),
    /// Continue an interrupted session.
    Resume(ResumeArgs),
    /// Print (and rewrite) a session's reports.
    Report(ReportArgs),
    /// List the sessions in the audit directory.
    Sessions(SessionsArgs),
    /// Evaluate: for each lab scenario, bring it up, inject, investigate, score, tear down.
    Eval(EvalArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Brain {
    Playbook,
    Gemini,
    Anthropic,
    Openai,
}

impl Brain {
    fn as_str(self) -> &'static str {
        match self {
            Brain::Playbook => "playbook",
            Brain::Gemini => "gemini",
            Brain::Anthropic => "anthropic",
            Brain::Openai => "openai",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ApproveMode {
    Never,
    AllRisky,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct RunArgs {
    /// config.env file (KEY=VALUE; see demo/sample_config.env).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Where sessions are written (default AUDIT_DIR or ./audit).
    #[arg(long, value_name = "DIR")]
    pub(crate) audit_dir: Option<PathBuf>,
    /// The brain (default: the LLM_PROVIDER of the config, else playbook).
    #[arg(long, value_enum)]
    pub(crate) brain: Option<Brain>,
    /// Model for an LLM brain (default LLM_MODEL).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// Non-interactive approval of risky commands (never reads stdin).
    #[arg(long, value_enum, conflicts_with = "approve_policy")]
    pub(crate) approve: Option<ApproveMode>,
    /// Approval policy file (TOML; see docs/safety-shell.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) approve_policy: Option<PathBuf>,
    /// Print the JSON report on stdout (and nothing else).
    #[arg(long)]
    pub(crate) json: bool,
    /// Most model turns for an LLM brain.
    #[arg(long, default_value_t = 40)]
    pub(crate) turn_limit: u32,
    /// pipe-meter iterations per metric (playbook).
    #[arg(long, default_value_t = 2)]
    pub(crate) iterations: u32,
    /// Seconds per throughput run (playbook).
    #[arg(long, default_value_t = 2)]
    pub(crate) duration: u32,
    /// Per-command timeout in seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) command_timeout: u64,
}

#[derive(Debug, Args)]
struct InvestigateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Bring up this lab scenario directory (e.g. demo/use_case_k), inject its faults,
    /// investigate it (its `[symptom] reported` unless a symptom is given), tear it down.
    #[arg(long, value_name = "DIR")]
    lab: Option<PathBuf>,
    /// With --lab: leave the lab up at the end.
    #[arg(long, requires = "lab")]
    keep_lab: bool,
    /// The symptom in plain words (read from stdin when absent).
    symptom: Option<String>,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The session id (`ghost_…`).
    id: String,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// config.env file (for AUDIT_DIR).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where sessions are.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Print the JSON report.
    #[arg(long)]
    json: bool,
    /// The session id.
    id: String,
}

#[derive(Debug, Args)]
struct EvalArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Scenario ids (`G,H,K`) or `all` (every demo/use_case_* with expected causes).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// The directory holding the use_case_* folders.
    #[arg(long, default_value = "demo", value_name = "DIR")]
    demo_dir: PathBuf,
    /// Continue with the next scenario after a failure (default: stop at the first).
    #[arg(long)]
    keep_going: bool,
    /// Write each scenario's investigation transcript (Markdown) into this directory.
    #[arg(long, value_name = "DIR")]
    transcripts: Option<PathBuf>,
}

impl EvalArgs {
    fn into_spec(self) -> crate::eval::EvalSpec {
        crate::eval::EvalSpec {
            run: self.run,
            scenarios: self.scenarios,
            demo_dir: self.demo_dir,
            keep_going: self.keep_going,
            transcripts: self.transcripts,
        }
    }
}

#[derive(Debug, Args)]
struct SessionsArgs {
    /// config.env file (for AUDIT_DIR).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where sessions are.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// A failure with its exit code.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

pub(crate) fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

pub(crate) trait OrFail<T> {
    fn or_fail(self, code: u8) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrFail<T> for Result<T, E> {
    fn or_fail(self, code: u8) -> Result<T, Failure> {
        self.map_err(|e| fail(code, e.into()))
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
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
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .try_init();
    let quiet = cli.quiet;
    let result = match cli.cmd {
        Cmd::Investigate(a) => investigate(a, quiet),
        Cmd::Resume(a) => resume(a, quiet),
        Cmd::Report(a) => report_cmd(a),
        Cmd::Sessions(a) => sessions_cmd(a),
        Cmd::Eval(a) => crate::eval::eval_cmd(a.into_spec(), quiet),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("ghost-agent: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

pub(crate) fn settings_for(config: Option<&Path>) -> Result<Settings, Failure> {
    if let Some(p) = config {
        if !p.is_file() {
            return Err(fail(
                2,
                anyhow!(
                    "config file {} does not exist; pass a config.env (see demo/sample_config.env)",
                    p.display()
                ),
            ));
        }
    }
    Settings::load(config).or_fail(2)
}

pub(crate) fn audit_dir_of(settings: &Settings, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| settings.get("AUDIT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./audit"))
}

fn approver_for(run: &RunArgs, settings: &Settings) -> Result<Arc<dyn Approver>, Failure> {
    if let Some(p) = &run.approve_policy {
        let a = PolicyApprover::load(p).or_fail(2)?;
        return Ok(Arc::new(a));
    }
    let mode = match run.approve {
        Some(m) => Some(m),
        None => match settings.get("SAFETY_APPROVE").as_deref().map(str::trim) {
            Some("never") => Some(ApproveMode::Never),
            Some("all-risky") => Some(ApproveMode::AllRisky),
            Some("") | None => None,
            Some(other) => {
                return Err(fail(
                    2,
                    anyhow!("SAFETY_APPROVE={other} is not `never` or `all-risky`"),
                ))
            }
        },
    };
    Ok(match mode {
        Some(ApproveMode::Never) => Arc::new(NeverApprover),
        Some(ApproveMode::AllRisky) => Arc::new(AllRiskyApprover),
        None => match TerminalApprover::open(Duration::from_secs(300)) {
            Ok(t) => Arc::new(t),
            Err(_) => {
                eprintln!("ghost-agent: no terminal to ask for approval: risky commands are denied (pass --approve or --approve-policy)");
                Arc::new(NeverApprover)
            }
        },
    })
}

fn ctrl_c(cancel: Arc<AtomicBool>) {
    cloud_provider::interrupt::on_ctrl_c(vec![Box::new(move || {
        eprintln!("ghost-agent: interrupted; saving the session after the current step");
        cancel.store(true, Ordering::SeqCst);
    })]);
}

/// A lab brought up for `--lab`, torn down on drop.
pub(crate) struct LabRun {
    pub(crate) netlab: PathBuf,
    pub(crate) prefix: String,
    pub(crate) keep: bool,
    pub(crate) config: PathBuf,
    pub(crate) reported: Option<String>,
    /// The scenario file.
    pub(crate) scenario: PathBuf,
    /// `[[baselines]]` of the scenario: (kind, vm); taken between the two inject stages.
    pub(crate) baselines: Vec<(String, String)>,
}

pub(crate) fn netlab_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NETLAB_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join("netlab");
            if p.is_file() {
                return p;
            }
            if let Some(up) = dir.parent() {
                let p = up.join("netlab");
                if p.is_file() {
                    return p;
                }
            }
        }
    }
    PathBuf::from("netlab")
}

pub(crate) fn netlab(bin: &Path, args: &[&str]) -> Result<String, Failure> {
    let o = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (build it with `cargo build -p netlab` or set NETLAB_BIN)",
                bin.display()
            )
        })
        .or_fail(3)?;
    if !o.status.success() {
        return Err(fail(
            3,
            anyhow!(
                "netlab {} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

impl LabRun {
    pub(crate) fn up(dir: &Path, keep: bool, quiet: bool) -> Result<LabRun, Failure> {
        let scenario = if dir.is_dir() {
            dir.join("scenario.toml")
        } else {
            dir.to_path_buf()
        };
        let text = std::fs::read_to_string(&scenario)
            .with_context(|| {
                format!(
                    "--lab {}: no scenario file {}",
                    dir.display(),
                    scenario.display()
                )
            })
            .or_fail(2)?;
        let parsed: toml::Value = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid scenario file", scenario.display()))
            .or_fail(2)?;
        let reported = parsed
            .get("symptom")
            .and_then(|s| s.get("reported"))
            .and_then(|r| r.as_str())
            .map(str::to_string);
        let baselines: Vec<(String, String)> = parsed
            .get("baselines")
            .and_then(|b| b.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|b| {
                        Some((
                            b.get("kind")?.as_str()?.to_string(),
                            b.get("vm")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The application's traffic the scenario puts on the wire ([[traffic]]), running
        // while the investigator looks, as users' traffic would be.
        let has_traffic = parsed
            .get("traffic")
            .and_then(|t| t.as_array())
            .is_some_and(|a| !a.is_empty());
        let bin = netlab_bin();
        let prefix = format!("ga{:04x}", rand::random::<u16>());
        let s = scenario.display().to_string();
        if !quiet {
            eprintln!("ghost-agent: lab {prefix}: up {s}");
        }
        netlab(&bin, &["up", &s, "--prefix", &prefix])?;
        let mut lab = LabRun {
            netlab: bin.clone(),
            prefix: prefix.clone(),
            keep,
            config: PathBuf::new(),
            reported,
            scenario: scenario.clone(),
            baselines,
        };
        // pipe-meter starts and stops its own iperf2/qperf servers on the measurement
        // ports; the lab's always-on servers on dest would hold those ports.
        for port in ["5001", "19765"] {
            let _ = netlab(
                &bin,
                &[
                    "inject",
                    "--prefix",
                    &prefix,
                    &format!("dest-vm:stop={port}"),
                ],
            );
        }
        // A scenario with baselines injects in two stages around them (finish_setup).
        let stage = if lab.baselines.is_empty() {
            "all"
        } else {
            "pre-baseline"
        };
        if !quiet {
            eprintln!("ghost-agent: lab {prefix}: injecting the scenario's faults ({stage})");
        }
        netlab(&bin, &["inject", "--prefix", &prefix, "--stage", stage, &s])?;
        // netlab's config.env names the lab's VMs, SSH keys and its az front end (AZ_PATH);
        // the audit directory is given as a flag wherever the config is used.
        if has_traffic {
            if !quiet {
                eprintln!("ghost-agent: lab {prefix}: starting the scenario's traffic");
            }
            netlab(&bin, &["traffic", "start", "--prefix", &prefix, "--all"])?;
        }
        let exports = netlab(&bin, &["env", "--prefix", &prefix])?;
        lab.config = exports
            .lines()
            .find_map(|l| l.strip_prefix("export NETLAB_CONFIG="))
            .map(|p| PathBuf::from(p.trim().trim_matches(['"', '\''])))
            .ok_or_else(|| fail(3, anyhow!("netlab env did not name the lab's config.env")))?;
        Ok(lab)
    }
}

impl LabRun {
    /// Takes the scenario's baselines (through the same tools, audited in their own
    /// session directory; the snapshots land in the audit directory where the drift tools
    /// look), then injects the post-baseline faults. Returns the baseline ids.
    pub(crate) fn finish_setup(
        &self,
        audit_dir: &Path,
        quiet: bool,
    ) -> Result<Vec<String>, Failure> {
        if self.baselines.is_empty() {
            return Ok(Vec::new());
        }
        let settings = settings_for(Some(&self.config))?;
        let mut flags = FlagOverrides::default();
        flags.set("AUDIT_DIR", Some(audit_dir.display().to_string()));
        let mut ctx = build_context(ContextSpec {
            settings,
            flags,
            session_id: new_session_id(audit_dir),
            approver: Arc::new(NeverApprover),
            command_timeout: Duration::from_secs(120),
            cancel: Arc::new(AtomicBool::new(false)),
        })
        .or_fail(3)?;
        ctx.session_dir = audit_dir.to_path_buf();
        let tools = crate::tools::all_tools();
        let mut ids = Vec::new();
        for (kind, vm) in &self.baselines {
            let (tool, args) = match kind.as_str() {
                "os_firewall" => (
                    "inspect_os_layer",
                    serde_json::json!({"vm": vm, "mode": "snapshot"}),
                ),
                "effective_network" => {
                    ("snapshot_effective_network", serde_json::json!({"vm": vm}))
                }
                other => {
                    return Err(fail(
                        2,
                        anyhow!(
                        "scenario baseline kind `{other}` is not os_firewall or effective_network"
                    ),
                    ))
                }
            };
            let Some(t) = tools.iter().find(|t| t.name() == tool) else {
                return Err(fail(3, anyhow!("no tool {tool}")));
            };
            let r = t.call(&ctx, &args);
            let id = r
                .summary
                .get("snapshot_id")
                .and_then(|v| v.as_str())
                .filter(|_| r.ok)
                .ok_or_else(|| {
                    fail(
                        3,
                        anyhow!(
                            "taking the {kind} baseline of {vm} failed: {}",
                            r.error.clone().unwrap_or_default()
                        ),
                    )
                })?;
            if !quiet {
                eprintln!(
                    "ghost-agent: lab {}: {kind} baseline of {vm}: {id}",
                    self.prefix
                );
            }
            ids.push(id.to_string());
        }
        let s = self.scenario.display().to_string();
        netlab(
            &self.netlab,
            &[
                "inject",
                "--prefix",
                &self.prefix,
                "--stage",
                "post-baseline",
                &s,
            ],
        )?;
        Ok(ids)
    }
}

impl Drop for LabRun {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "ghost-agent: lab kept up: remove it with `sudo {} down --prefix {}`",
                self.netlab.display(),
                self.prefix
            );
            return;
        }
        match Command::new(&self.netlab)
            .args(["down", "--prefix", &self.prefix])
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "ghost-agent: netlab down --prefix {} failed: {}",
                self.prefix,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("ghost-agent: cannot run netlab down: {e}"),
        }
    }
}

fn read_symptom(given: Option<String>, lab: Option<&LabRun>) -> Result<String, Failure> {
    if let Some(s) = given.filter(|s| !s.trim().is_empty()) {
        return Ok(s);
    }
    if let Some(r) = lab.and_then(|l| l.reported.clone()) {
        return Ok(r);
    }
    if std::io::stdin().is_terminal() {
        return Err(fail(
            2,
            anyhow!("no symptom: give it as an argument (ghost-agent investigate \"dest-vm unreachable on 5001\") or on stdin"),
        ));
    }
    let mut s = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut s)
        .or_fail(2)?;
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(fail(2, anyhow!("the symptom on stdin is empty")));
    }
    Ok(s)
}

fn investigate(a: InvestigateArgs, quiet: bool) -> Result<u8, Failure> {
    let base_settings = settings_for(a.run.config.as_deref())?;
    let audit_dir = audit_dir_of(&base_settings, a.run.audit_dir.as_deref());
    let lab = match &a.lab {
        Some(dir) => {
            if !nix::unistd::Uid::effective().is_root() {
                return Err(fail(
                    2,
                    anyhow!("--lab builds network namespaces and needs root: run it with sudo"),
                ));
            }
            Some(LabRun::up(dir, a.keep_lab, quiet)?)
        }
        None => None,
    };
    let settings = match &lab {
        Some(l) => settings_for(Some(&l.config))?,
        None => base_settings,
    };
    let mut symptom_text = read_symptom(a.symptom.clone(), lab.as_ref())?;
    if let Some(l) = &lab {
        let ids = l.finish_setup(&audit_dir, quiet)?;
        if !ids.is_empty() {
            symptom_text = format!("{symptom_text} (baselines: {})", ids.join(", "));
        }
    }
    let sid = new_session_id(&audit_dir);
    let code = run_session(&a.run, settings, &audit_dir, sid, Some(symptom_text), quiet);
    drop(lab);
    code
}

fn resume(a: ResumeArgs, quiet: bool) -> Result<u8, Failure> {
    let settings = settings_for(a.run.config.as_deref())?;
    let audit_dir = audit_dir_of(&settings, a.run.audit_dir.as_deref());
    let sid = SessionId::parse(&a.id).or_fail(2)?;
    run_session(&a.run, settings, &audit_dir, sid, None, quiet)
}

/// What one session run produced.
pub(crate) struct SessionRun {
    pub(crate) outcome: PlaybookOutcome,
    pub(crate) state: crate::model::SessionState,
    pub(crate) report: crate::report::Report,
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) interrupted: bool,
}

fn run_session(
    run: &RunArgs,
    settings: Settings,
    audit_dir: &Path,
    sid: SessionId,
    symptom_text: Option<String>,
    quiet: bool,
) -> Result<u8, Failure> {
    let config = run.config.clone();
    let r = execute_session(run, settings, audit_dir, sid, symptom_text, quiet)?;
    if r.interrupted {
        eprintln!(
            "ghost-agent: interrupted; the session is saved. Continue with: ghost-agent resume {}{}",
            r.state.session_id,
            config.as_ref().map(|c| format!(" --config {}", c.display())).unwrap_or_default()
        );
        return Ok(130);
    }
    if run.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r.report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::render_report_md(&r.report));
    }
    if !quiet {
        for p in &r.paths {
            eprintln!("ghost-agent: wrote {}", p.display());
        }
    }
    match r.outcome {
        PlaybookOutcome::Concluded => Ok(if r.report.root_causes.is_empty() {
            0
        } else {
            1
        }),
        PlaybookOutcome::Interrupted => Ok(130),
        PlaybookOutcome::Refused(reasons) => {
            let denied = r.state.calls.iter().any(|c| !c.result.denials.is_empty());
            eprintln!(
                "ghost-agent: no conclusion the rules accept: {}",
                reasons.join("; ")
            );
            Ok(if denied { 5 } else { 3 })
        }
    }
}

/// Builds the context, starts or resumes the session, runs the brain, writes the reports.
pub(crate) fn execute_session(
    run: &RunArgs,
    settings: Settings,
    audit_dir: &Path,
    sid: SessionId,
    symptom_text: Option<String>,
    quiet: bool,
) -> Result<SessionRun, Failure> {
    let previous = match &symptom_text {
        Some(_) => None,
        None => {
            let dir = session_dir(audit_dir, sid.as_str());
            if !dir.is_dir() {
                return Err(fail(
                    2,
                    anyhow!(
                        "no session {} under {}; `ghost-agent sessions` lists them",
                        sid.as_str(),
                        audit_dir.display()
                    ),
                ));
            }
            let st = load_state(&dir, sid.as_str()).map_err(|e| {
                let code = e.exit_code() as u8;
                fail(code, anyhow!(e))
            })?;
            if st.status == SessionStatus::Concluded {
                return Err(fail(2, anyhow!("session {} is already concluded; `ghost-agent report {}` prints its report", sid.as_str(), sid.as_str())));
            }
            Some(st)
        }
    };
    let brain = run
        .brain
        .map(|b| b.as_str().to_string())
        .or_else(|| previous.as_ref().map(|s| s.brain.clone()))
        .or_else(|| {
            settings
                .get("LLM_PROVIDER")
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_ascii_lowercase())
        })
        .unwrap_or_else(|| "playbook".into());
    let provider = if brain == "playbook" {
        None
    } else {
        let model = run.model.clone();
        let brain_name = brain.clone();
        let lookup = |k: &str| match k {
            "LLM_PROVIDER" => Some(brain_name.clone()),
            "LLM_MODEL" => model.clone().or_else(|| settings.get(k)),
            _ => settings.get(k),
        };
        match crate::config::provider_from_lookup(lookup, HttpSettings::default()).or_fail(2)? {
            Some(p) => Some(p),
            None => {
                return Err(fail(
                    2,
                    anyhow!("--brain {brain} needs LLM_MODEL and LLM_API_KEY in the config"),
                ))
            }
        }
    };
    let approver = approver_for(run, &settings)?;
    let cancel = Arc::new(AtomicBool::new(false));
    ctrl_c(cancel.clone());
    let mut flags = FlagOverrides::default();
    flags.set("AUDIT_DIR", Some(audit_dir.display().to_string()));
    let ctx = build_context(ContextSpec {
        settings,
        flags,
        session_id: sid.clone(),
        approver,
        command_timeout: Duration::from_secs(run.command_timeout.max(1)),
        cancel: cancel.clone(),
    })
    .or_fail(2)?;
    let resumed = previous.is_some();
    let mut engine = match previous {
        Some(state) => {
            eprintln!(
                "ghost-agent: resuming {} (last saved {}): the network may have changed since; results from before are kept and cited as such",
                state.session_id, state.updated_at
            );
            let mut e = Engine::resume(ctx, state);
            e.note("resumed: the network may have changed since the earlier results");
            for task in e.state.pending_tasks.clone() {
                e.call(
                    "check_task",
                    &serde_json::json!({"task_id": task}),
                    "resume: a capture task of this session was pending",
                );
                e.call(
                    "cleanup_task",
                    &serde_json::json!({"task_id": task}),
                    "resume: clean up the pending capture",
                );
            }
            e
        }
        None => {
            let text = symptom_text.unwrap_or_default();
            let src = ctx.source_vm();
            let dst = ctx.dest_vm();
            let symptom = crate::symptom::parse(&text, &src, &dst);
            Engine::start(ctx, symptom, &brain)
                .map_err(|e| fail(e.exit_code() as u8, anyhow!(e)))?
        }
    };
    if resumed {
        match crate::tools::cloud::orphans(&engine.ctx) {
            Ok(r) if !r.orphans.is_empty() => {
                let names: Vec<String> = r
                    .orphans
                    .iter()
                    .map(|o| format!("{} ({})", o.what, o.kind))
                    .collect();
                let note = format!(
                    "orphaned captures from earlier sessions (remove them with `cloud-orchestrator orphans --clean`): {}",
                    names.join(", ")
                );
                eprintln!("ghost-agent: {note}");
                engine.note(&note);
            }
            Ok(_) => {}
            Err(e) => engine.note(&format!("orphan check could not run: {e}")),
        }
    }
    if !quiet {
        eprintln!(
            "ghost-agent: session {} ({} brain), state and audit in {}",
            engine.state.session_id,
            brain,
            engine.ctx.session_dir.display()
        );
    }
    let outcome = match &provider {
        None => playbook::run(
            &mut engine,
            &PlaybookOptions {
                iterations: run.iterations.max(1),
                duration_secs: run.duration.max(1),
                ..Default::default()
            },
        ),
        Some(p) => {
            let r = crate::llm_brain::run(&mut engine, p, run.turn_limit.max(1));
            if engine.concluded() {
                PlaybookOutcome::Concluded
            } else if cancel.load(Ordering::SeqCst) {
                PlaybookOutcome::Interrupted
            } else {
                PlaybookOutcome::Refused(vec![format!("{:?}", r.outcome)])
            }
        }
    };
    if cancel.load(Ordering::SeqCst) && !engine.concluded() {
        let _ = engine.interrupt();
        let (report, paths) = write_reports(&engine.ctx.session_dir, &engine.state).or_fail(3)?;
        return Ok(SessionRun {
            outcome: PlaybookOutcome::Interrupted,
            state: engine.state.clone(),
            report,
            paths,
            interrupted: true,
        });
    }
    if let PlaybookOutcome::Refused(_) = &outcome {
        let _ = engine.interrupt();
    }
    let (report, paths) = write_reports(&engine.ctx.session_dir, &engine.state).or_fail(3)?;
    Ok(SessionRun {
        outcome,
        state: engine.state.clone(),
        report,
        paths,
        interrupted: false,
    })
}

/// Writes the three reports into the session directory; returns the report and the paths.
pub fn write_reports(
    dir: &Path,
    state: &crate::model::SessionState,
) -> anyhow::Result<(crate::report::Report, Vec<PathBuf>)> {
    let mut report = crate::report::build_report(state);
    let sid = &state.session_id;
    let store = LocalStore::new(dir);
    let audit_path = safety_shell::audit::default_audit_path(dir, sid);
    let records = safety_shell::audit::read_records(&audit_path)
        .map(|(r, _)| r)
        .unwrap_or_default();
    report.count_approvals(&records);
    let md = crate::report::render_report_md(&report);
    let json = serde_json::to_vec_pretty(&report)?;
    let verify = safety_shell::audit::verify(&audit_path);
    let audit_md =
        crate::report::render_audit_md(state, &records, verify.as_ref().map_err(|e| e.to_string()));
    let mut paths = Vec::new();
    for (name, bytes) in [
        (format!("ghost_report_{sid}.md"), md.into_bytes()),
        (format!("ghost_report_{sid}.json"), json),
        (format!("ghost_audit_{sid}.md"), audit_md.into_bytes()),
    ] {
        store.put(&name, &bytes)?;
        paths.push(dir.join(name));
    }
    Ok((report, paths))
}

fn report_cmd(a: ReportArgs) -> Result<u8, Failure> {
    let settings = settings_for(a.config.as_deref())?;
    let audit_dir = audit_dir_of(&settings, a.audit_dir.as_deref());
    let sid = SessionId::parse(&a.id).or_fail(2)?;
    let dir = session_dir(&audit_dir, sid.as_str());
    if !dir.is_dir() {
        return Err(fail(
            2,
            anyhow!("no session {} under {}", sid.as_str(), audit_dir.display()),
        ));
    }
    let state =
        load_state(&dir, sid.as_str()).map_err(|e| fail(e.exit_code() as u8, anyhow!(e)))?;
    let (report, _) = write_reports(&dir, &state).or_fail(3)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", crate::report::render_report_md(&report));
    }
    Ok(if report.root_causes.is_empty() { 0 } else { 1 })
}

fn sessions_cmd(a: SessionsArgs) -> Result<u8, Failure> {
    let settings = settings_for(a.config.as_deref())?;
    let audit_dir = audit_dir_of(&settings, a.audit_dir.as_deref());
    let mut rows = Vec::new();
    for id in list_sessions(&audit_dir) {
        let dir = session_dir(&audit_dir, &id);
        match load_state(&dir, &id) {
            Ok(s) => rows.push(serde_json::json!({
                "session_id": id, "status": s.status, "brain": s.brain,
                "updated_at": s.updated_at, "symptom": s.symptom.text,
                "root_causes": s.conclusion.map(|c| c.root_causes.len()),
            })),
            Err(e) => rows.push(serde_json::json!({"session_id": id, "error": e.to_string()})),
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"sessions": rows}))
                .unwrap_or_default()
        );
    } else if rows.is_empty() {
        println!("no sessions under {}", audit_dir.display());
    } else {
        for r in rows {
            println!(
                "{:<32} {:<12} {:<9} {}",
                r["session_id"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or("unreadable"),
                r["brain"].as_str().unwrap_or(""),
                r["symptom"].as_str().or(r["error"].as_str()).unwrap_or("")
            );
        }
    }
    Ok(0)
}
