//! `safety-shell`: classify commands, run them through the gate, verify and show audit logs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

use safety_shell::approve::{
    AllRiskyApprover, Approver, DecidedBy, DenyApprover, NeverApprover, PolicyApprover,
    TerminalApprover,
};
use safety_shell::audit::{self, AuditError, AuditLog, VerifyError};
use safety_shell::exec::ExecOptions;
use safety_shell::gate::{Gate, GateError};
use safety_shell::{
    classify_with_policy, AzureVmTarget, Class, Classification, ClassifyContext, Policy, SshTarget,
    Target, Tier,
};

const EXAMPLES: &str = "\
Examples:
  safety-shell classify -- 'ip route show'
  safety-shell classify --json -- 'iptables -F'
  safety-shell classify --json --batch commands.jsonl
  safety-shell exec --approve never -- 'ss -tnp'
  safety-shell exec --approve-policy demo/approve_policy_captures_only.toml \\
      --target ssh:azureuser@198.18.1.4 --ssh-key lab/id_ed25519 --known-hosts lab/known_hosts \\
      --reason 'capture SYNs to 5001' -- 'tcpdump -i eth0 -c 20 port 5001'
  safety-shell exec --target netns:lab-src --approve all-risky -- 'ip route show'
  safety-shell audit verify audit/shell_20260101T120000Z_audit.jsonl
  safety-shell audit show audit/shell_20260101T120000Z_audit.jsonl

Exit codes: 0 ok; 2 usage or configuration error; 3 the command ran and failed, or could not
run; 4 broken audit chain; 5 the gate refused (denied, or FORBIDDEN).";

#[derive(Debug, Parser)]
#[command(
    name = "safety-shell",
    version,
    about = "The gate every command passes: classify, approve, execute, redact, audit.",
    after_help = EXAMPLES
)]
struct Cli {
    /// A KEY=VALUE env file (keys AUDIT_DIR, SAFETY_APPROVE); flags beat the environment,
    /// the environment beats the file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Classify a command (or a JSON Lines batch) as SAFE, RISKY or FORBIDDEN.
    #[command(
        after_help = "Examples:\n  safety-shell classify -- 'ip route show'\n  safety-shell classify --json --batch commands.jsonl   # lines of {\"command\": \"...\"}"
    )]
    Classify(ClassifyArgs),
    /// Gate, run and audit one command.
    #[command(
        after_help = "Examples:\n  safety-shell exec --approve never -- 'ip route show'\n  safety-shell exec --approve-policy policy.toml --target netns:lab-dst -- 'tcpdump -c 5 -i any'\n  safety-shell exec --json --target azure-vm:my-rg/dest-vm --approve all-risky -- 'iptables -S'"
    )]
    Exec(ExecArgs),
    /// Verify or show an audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
}

#[derive(Debug, Args)]
struct ClassifyArgs {
    /// Print JSON (one document, or JSON Lines with --batch).
    #[arg(long)]
    json: bool,
    /// A deployment classification policy (TOML).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Writing (redirections, `tcpdump -w`) is SAFE only inside this directory.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// `cat`/`head`/`tail`/`grep` on files are SAFE only under these directories (repeatable).
    #[arg(long = "read-path", value_name = "DIR")]
    read_paths: Vec<PathBuf>,
    /// Classify every line of a JSON Lines file of {"command": "..."}.
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    batch: Option<PathBuf>,
    /// The command (after `--`).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ApproveMode {
    /// Deny every RISKY command.
    Never,
    /// Approve every RISKY command (recorded as policy:all-risky).
    AllRisky,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// Decide RISKY commands without asking (never reads stdin).
    #[arg(long, value_enum, conflicts_with = "approve_policy")]
    approve: Option<ApproveMode>,
    /// Decide RISKY commands by the rules of an approval policy file (TOML).
    #[arg(long, value_name = "FILE")]
    approve_policy: Option<PathBuf>,
    /// Where to run: local, ssh:[user@]host[:port], azure-vm:RG/VM, netns:NAME.
    #[arg(long, default_value = "local")]
    target: String,
    /// SSH private key.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// SSH known_hosts file.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// Relax SSH host-key checking to accept-new (unknown hosts are added; changed keys are
    /// still refused). Recorded in the audit through the target.
    #[arg(long)]
    ssh_accept_new: bool,
    /// Azure subscription for azure-vm targets.
    #[arg(long)]
    subscription: Option<String>,
    /// Audit directory [env AUDIT_DIR; default ./audit].
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Session id ([A-Za-z0-9_-]{1,64}); default shell_{YYYYMMDDTHHMMSSZ}.
    #[arg(long)]
    session: Option<String>,
    /// Kill the command's process group after this many seconds.
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    timeout: u64,
    /// Seconds to wait for an answer at the terminal prompt before denying.
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    approve_timeout: u64,
    /// Cap on each of stdout and stderr, in bytes.
    #[arg(long, default_value_t = safety_shell::exec::DEFAULT_MAX_OUTPUT_BYTES, value_name = "BYTES")]
    max_output_bytes: usize,
    /// A deployment classification policy (TOML).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Writing (redirections, `tcpdump -w`) is SAFE only inside this directory.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// `cat`/`head`/`tail`/`grep` on files are SAFE only under these directories (repeatable).
    #[arg(long = "read-path", value_name = "DIR")]
    read_paths: Vec<PathBuf>,
    /// Why the command is needed (shown to the approver, audited).
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// Print the result as one JSON document instead of the command's output.
    #[arg(long)]
    json: bool,
    /// The command (after `--`).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Verify the hash chain (exit 4 naming the first bad record).
    Verify {
        /// The audit file.
        file: PathBuf,
    },
    /// Show the records as a table.
    Show {
        /// The audit file.
        file: PathBuf,
        /// Table width.
        #[arg(long, default_value_t = 120)]
        width: usize,
    },
}

/// A failure with its exit code; the message is one sentence.
struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn usage(message: impl Into<String>) -> Failure {
    fail(2, message)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "safety-shell: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let ansi = std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .try_init();
}

/// Settings from flags, the environment and the config file, in that order.
struct Settings {
    file: std::collections::BTreeMap<String, String>,
}

impl Settings {
    fn load(config: Option<&Path>) -> Result<Self, Failure> {
        // The shared config.env holds every tool's keys; this binary reads only its own and
        // ignores the rest silently (the other tools warn about keys nobody knows).
        let file = match config {
            Some(p) => {
                safety_shell::envfile::load_env_file(p, &|_| true)
                    .map_err(|e| usage(e.to_string()))?
                    .values
            }
            None => Default::default(),
        };
        Ok(Self { file })
    }

    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| self.file.get(key).cloned().filter(|v| !v.is_empty()))
    }
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.cmd {
        Cmd::Classify(a) => cmd_classify(a),
        Cmd::Exec(a) => cmd_exec(a, &settings),
        Cmd::Audit {
            cmd: AuditCmd::Verify { file },
        } => cmd_verify(&file),
        Cmd::Audit {
            cmd: AuditCmd::Show { file, width },
        } => cmd_show(&file, width),
    }
}

fn load_policy(p: Option<&Path>) -> Result<Option<Policy>, Failure> {
    match p {
        None => Ok(None),
        Some(p) => Policy::load(p)
            .map(Some)
            .map_err(|e| usage(format!("{e}; fix the classification policy file"))),
    }
}

fn classification_json(command: &str, c: &Classification) -> serde_json::Value {
    json!({
        "command": command,
        "classification": c.classification,
        "tier": c.tier,
        "reason": c.reason,
        "policy_rule": c.policy_rule,
    })
}

fn cmd_classify(a: ClassifyArgs) -> Result<u8, Failure> {
    let policy = load_policy(a.policy.as_deref())?;
    let ctx = ClassifyContext {
        output_dir: a.output_dir.clone(),
        read_paths: a.read_paths.clone(),
        trusted_programs: vec![],
    };
    let mut out = std::io::stdout().lock();
    let io_err = |e: std::io::Error| fail(3, format!("cannot write output: {e}"));
    if let Some(batch) = &a.batch {
        let text = std::fs::read_to_string(batch)
            .map_err(|e| usage(format!("cannot read batch file {}: {e}", batch.display())))?;
        for line in text.lines() {
            let (command, c) = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => match v.get("command").and_then(|c| c.as_str()) {
                    Some(cmd) if !cmd.trim().is_empty() => (
                        cmd.to_string(),
                        classify_with_policy(cmd, &ctx, policy.as_ref()),
                    ),
                    Some(cmd) => (
                        cmd.to_string(),
                        Classification::new(Class::Risky, Tier::Unknown, "empty command"),
                    ),
                    None => (
                        String::new(),
                        Classification::new(
                            Class::Risky,
                            Tier::Unknown,
                            "input line has no \"command\" string",
                        ),
                    ),
                },
                Err(_) => (
                    line.to_string(),
                    Classification::new(
                        Class::Risky,
                        Tier::Unknown,
                        "input line is not valid JSON",
                    ),
                ),
            };
            if a.json {
                writeln!(out, "{}", classification_json(&command, &c)).map_err(io_err)?;
            } else {
                writeln!(
                    out,
                    "{}  {}  {}  {}",
                    c.classification, c.tier, c.reason, command
                )
                .map_err(io_err)?;
            }
        }
        return Ok(0);
    }
    if a.command.is_empty() {
        return Err(usage(
            "no command given; pass it after `--` (safety-shell classify -- 'ip route show') or use --batch FILE",
        ));
    }
    let command = a.command.join(" ");
    let c = if command.trim().is_empty() {
        Classification::new(Class::Risky, Tier::Unknown, "empty command")
    } else {
        classify_with_policy(&command, &ctx, policy.as_ref())
    };
    if a.json {
        writeln!(out, "{}", classification_json(&command, &c)).map_err(io_err)?;
    } else {
        writeln!(out, "{}  {}  {}", c.classification, c.tier, c.reason).map_err(io_err)?;
    }
    Ok(0)
}

/// Parses `local`, `ssh:[user@]host[:port]`, `azure-vm:RG/VM`, `netns:NAME`.
fn parse_target(s: &str, a: &ExecArgs) -> Result<Target, Failure> {
    let bad = |why: &str| {
        usage(format!(
            "invalid --target {s:?}: {why}; use local, ssh:[user@]host[:port], azure-vm:RG/VM or netns:NAME"
        ))
    };
    if s == "local" {
        return Ok(Target::Local);
    }
    if let Some(rest) = s.strip_prefix("ssh:") {
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => None,
                None => return Err(bad("unexpected text after ']'")),
            };
            (h.to_string(), port)
        } else if hostport.matches(':').count() == 1 {
            let (h, p) = hostport.split_once(':').unwrap_or((hostport, ""));
            (
                h.to_string(),
                Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
            )
        } else {
            (hostport.to_string(), None)
        };
        if host.is_empty()
            || host.starts_with('-')
            || user
                .as_deref()
                .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return Err(bad("empty host or user, or one starting with '-'"));
        }
        let mut t = SshTarget::new(host);
        t.user = user;
        t.port = port;
        t.identity_file = a.ssh_key.clone();
        t.known_hosts_file = a.known_hosts.clone();
        t.strict_host_key_checking = !a.ssh_accept_new;
        t.connect_timeout_secs = Some(10);
        return Ok(Target::Ssh(t));
    }
    if let Some(rest) = s.strip_prefix("azure-vm:") {
        let (rg, vm) = rest.split_once('/').ok_or_else(|| bad("expected RG/VM"))?;
        if rg.is_empty() || vm.is_empty() || vm.contains('/') {
            return Err(bad("expected RG/VM"));
        }
        return Ok(Target::AzureRunCommand(AzureVmTarget {
            resource_group: rg.to_string(),
            vm_name: vm.to_string(),
            subscription: a.subscription.clone(),
            az_path: None,
        }));
    }
    if let Some(name) = s.strip_prefix("netns:") {
        if name.is_empty() {
            return Err(bad("empty namespace name"));
        }
        return Ok(Target::Netns {
            name: name.to_string(),
        });
    }
    Err(bad("unknown target kind"))
}

fn approver_for(a: &ExecArgs, settings: &Settings) -> Result<Box<dyn Approver>, Failure> {
    if let Some(p) = &a.approve_policy {
        let pa = PolicyApprover::load(p)
            .map_err(|e| usage(format!("{e}; fix the approval policy file")))?;
        return Ok(Box::new(pa));
    }
    let mode = match a.approve {
        Some(m) => Some(m),
        None => match settings.get("SAFETY_APPROVE") {
            None => None,
            Some(v) => match v.as_str() {
                "never" => Some(ApproveMode::Never),
                "all-risky" => Some(ApproveMode::AllRisky),
                other => {
                    return Err(usage(format!(
                        "SAFETY_APPROVE={other:?} is not valid; use never or all-risky"
                    )))
                }
            },
        },
    };
    match mode {
        Some(ApproveMode::Never) => Ok(Box::new(NeverApprover)),
        Some(ApproveMode::AllRisky) => Ok(Box::new(AllRiskyApprover)),
        None => {
            let no_tty = DenyApprover {
                by: DecidedBy::Terminal,
                reason: "no terminal on stdin to ask for approval (fail closed); pass --approve all-risky or --approve-policy FILE to approve non-interactively".into(),
            };
            if !std::io::stdin().is_terminal() {
                return Ok(Box::new(no_tty));
            }
            match TerminalApprover::open(Duration::from_secs(a.approve_timeout)) {
                Ok(t) => Ok(Box::new(t)),
                Err(_) => Ok(Box::new(no_tty)),
            }
        }
    }
}

fn cmd_exec(a: ExecArgs, settings: &Settings) -> Result<u8, Failure> {
    let command = a.command.join(" ");
    if command.trim().is_empty() {
        return Err(usage("empty command; pass it after `--`"));
    }
    let target = parse_target(&a.target, &a)?;
    let approver = approver_for(&a, settings)?;
    let policy = load_policy(a.policy.as_deref())?;
    let audit_dir = a
        .audit_dir
        .clone()
        .or_else(|| settings.get("AUDIT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("./audit"));
    let session = match &a.session {
        Some(s) => s.clone(),
        None => format!("shell_{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ")),
    };
    if !audit::valid_session_id(&session) {
        return Err(usage(format!(
            "invalid --session {session:?}: use 1 to 64 of A-Z a-z 0-9 _ -"
        )));
    }
    if a.timeout == 0 {
        return Err(usage("--timeout must be at least 1 second"));
    }
    let log = AuditLog::open_in_dir(&audit_dir, &session).map_err(audit_failure)?;
    tracing::info!(audit = %log.path().display(), "audit log");
    let mut builder = Gate::builder(log)
        .approver_arc(std::sync::Arc::from(approver))
        .exec_options(ExecOptions {
            timeout: Duration::from_secs(a.timeout),
            max_output_bytes: a.max_output_bytes,
            ..ExecOptions::default()
        });
    if a.output_dir.is_some() || !a.read_paths.is_empty() {
        builder = builder.context(ClassifyContext {
            output_dir: a.output_dir.clone(),
            read_paths: a.read_paths.clone(),
            trusted_programs: vec![],
        });
    }
    if let Some(p) = policy {
        builder = builder.policy(p);
    }
    let gate = builder.build();
    let result = gate.run(&target, &command, &a.reason);
    let mut stdout = std::io::stdout().lock();
    match result {
        Ok(r) => {
            if a.json {
                let doc = serde_json::to_string_pretty(&r)
                    .map_err(|e| fail(3, format!("cannot encode the result: {e}")))?;
                let _ = writeln!(stdout, "{doc}");
            } else {
                let _ = stdout.write_all(r.stdout.as_bytes());
                let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            }
            let _ = stdout.flush();
            if r.success() {
                Ok(0)
            } else {
                let how = if r.timed_out {
                    format!("timed out after {}s and was killed", a.timeout)
                } else if let Some(s) = r.signal {
                    format!("was killed by signal {s}")
                } else {
                    match r.exit_code {
                        Some(c) => format!("exited with code {c}"),
                        None => "ended without an exit code".to_string(),
                    }
                };
                Err(fail(3, format!("the command {how} [audit {}]", r.audit_id)))
            }
        }
        Err(e) => {
            let (code, decision) = match &e {
                GateError::Forbidden { .. } => (5, "forbidden"),
                GateError::Denied { .. } => (5, "denied"),
                GateError::CouldNotRun { .. } => (3, "error"),
                GateError::Audit(AuditError::Damaged { .. }) => (4, "error"),
                GateError::Audit(_) => (3, "error"),
            };
            if a.json {
                let doc = json!({
                    "audit_id": e.audit_id(),
                    "decision": decision,
                    "message": e.to_string(),
                    "target": target,
                });
                let _ = writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                );
            }
            Err(fail(code, e.to_string()))
        }
    }
}

fn audit_failure(e: AuditError) -> Failure {
    match e {
        AuditError::Damaged { .. } => fail(4, e.to_string()),
        AuditError::InvalidSession(_) => usage(e.to_string()),
        AuditError::Io { .. } => fail(3, format!("{e}; check --audit-dir")),
    }
}

fn cmd_verify(file: &Path) -> Result<u8, Failure> {
    match audit::verify(file) {
        Ok(r) => {
            println!(
                "chain OK: {} records (head hash {})",
                r.records, r.head_hash
            );
            Ok(0)
        }
        Err(VerifyError::Io { path, source }) => Err(usage(format!(
            "cannot read audit log {}: {source}",
            path.display()
        ))),
        Err(e @ VerifyError::Broken { .. }) => {
            if let VerifyError::Broken { breaks, .. } = &e {
                for b in breaks.iter().skip(1) {
                    eprintln!("  also: {b}");
                }
            }
            Err(fail(4, e.to_string()))
        }
    }
}

fn fit(s: &str, width: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= width {
        one_line
    } else {
        let mut t: String = one_line.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn cmd_show(file: &Path, width: usize) -> Result<u8, Failure> {
    let (records, bad) = audit::read_records(file)
        .map_err(|e| usage(format!("cannot read audit log {}: {e}", file.display())))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:>6}  {:<24}  {:<9}  {:<9}  {:>4}  COMMAND",
        "SEQ", "TIME", "CLASS", "DECISION", "EXIT"
    );
    let fixed = 6 + 2 + 24 + 2 + 9 + 2 + 9 + 2 + 4 + 2;
    let cmd_width = width.saturating_sub(fixed).max(10);
    for r in &records {
        let exit = match (r.exit_code, r.signal) {
            (Some(c), _) => c.to_string(),
            (None, Some(s)) => format!("s{s}"),
            _ => "-".to_string(),
        };
        let cmd = match &r.modified_command {
            Some(m) => format!("{} => {}", r.command, m),
            None => r.command.clone(),
        };
        let _ = writeln!(
            out,
            "{:>6}  {:<24}  {:<9}  {:<9}  {:>4}  {}",
            r.sequence,
            fit(&r.timestamp, 24),
            r.classification.as_str(),
            r.decision.as_str(),
            exit,
            fit(&cmd, cmd_width)
        );
    }
    if bad > 0 {
        eprintln!("{bad} unreadable lines skipped; run `safety-shell audit verify` on the file");
    }
    Ok(0)
}
