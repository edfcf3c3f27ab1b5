//! `netfilter-inspector`: snapshot, diff, compare and check the OS firewall layer.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cloud_provider::artifact::{
    Artifact, ArtifactError, ArtifactHeader, ArtifactStore, LocalStore,
};
use cloud_provider::config::Settings;
use cloud_provider::llm::{provider_from_lookup, HttpSettings};
use cloud_provider::session::SessionId;
use netfilter_inspector::check::{check, CheckAnswer, Direction, Packet, Verdict};
use netfilter_inspector::diff::{diff, DiffOptions, DiffReport, Severity};
use netfilter_inspector::explain::{
    explain, ExplainInput, Explanation, KIND_EXPLANATION, NOT_CONFIGURED,
};
use netfilter_inspector::model::Ruleset;
use netfilter_inspector::snapshot::{
    self, Snapshot, SourceInfo, KIND_BASELINE, KIND_SNAPSHOT, TOOL,
};
use netfilter_inspector::{parse, InputFormat};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The parser and the artifact writer make millions of small allocations on large rulesets;
/// mimalloc makes them markedly cheaper than glibc's allocator (see the benchmark notes).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a line to stdout, ignoring a closed pipe (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "netfilter-inspector",
    version,
    about = "Snapshot, diff and query the OS firewall layer (iptables, ip6tables, nftables, tc) of a Linux host.",
    after_help = "Examples:
  iptables-save > fw.txt; nft -j list ruleset > nft.json; tc qdisc show > tc.txt
  netfilter-inspector snapshot --from-file fw.txt --from-file nft.json --from-file tc.txt --is-baseline
  netfilter-inspector compare --compare-baseline fw_20261122T063005Z --from-file fw.txt
  netfilter-inspector diff audit/fw_20261122T063005Z_baseline.json audit/fw_20261122T070000Z_snapshot.json
  netfilter-inspector diff old-iptables-save.txt new-iptables-save.txt --json
  netfilter-inspector check --port 5001 --proto tcp --direction in --from-file fw.txt
  netfilter-inspector snapshot --provider netns --netns lab-dest --is-baseline
  netfilter-inspector snapshot --config config.env --provider ssh --vm-name dest-vm --is-baseline
  netfilter-inspector compare --config config.env --provider azure --vm-name dest-vm --approve all-risky --compare-baseline ID

Exit codes: 0 clean/ACCEPT, 1 drift or DROP/REJECT/INDETERMINATE verdict, 2 usage,
3 runtime failure, 4 integrity failure (a tampered artifact; the file is named),
5 an operator or policy denied a gated command."
)]
struct Cli {
    /// KEY=VALUE config file (AUDIT_DIR is read from it); flags beat environment, environment beats the file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse saved ruleset files into one snapshot artifact (fw_<id>_snapshot.json + .sha256).
    #[command(after_help = "Examples:
  netfilter-inspector snapshot --from-file iptables-save.txt --from-file nft.json --is-baseline
  netfilter-inspector snapshot --from-file tc.txt --format tc-qdisc --session-id fw_change42 --json")]
    Snapshot(SnapshotArgs),
    /// Diff two snapshots (artifact paths or session ids) or two saved raw ruleset files.
    #[command(after_help = "Examples:
  netfilter-inspector diff fw_20261122T063005Z fw_20261122T070000Z
  netfilter-inspector diff before.txt after.txt --suppress 'DOCKER-*' --json")]
    Diff(DiffArgs),
    /// Take a snapshot and diff it against a stored baseline.
    #[command(after_help = "Example:
  netfilter-inspector compare --compare-baseline fw_20261122T063005Z --from-file iptables-save.txt")]
    Compare(CompareArgs),
    /// Would a NEW connection pass? ACCEPT/DROP/REJECT with the deciding rule, or INDETERMINATE.
    #[command(after_help = "Examples:
  netfilter-inspector check --port 5001 --proto tcp --direction in --from-file iptables-save.txt
  netfilter-inspector check --port 22 --proto tcp --direction in --src 198.18.1.66 --snapshot fw_20261122T063005Z")]
    Check(CheckArgs),
    /// Narrate a stored snapshot or diff through the configured LLM (LLM_PROVIDER, LLM_MODEL,
    /// LLM_API_KEY, LLM_BASE_URL); stores fw_<id>_explanation.json. Optional: nothing else
    /// depends on it.
    #[command(after_help = "Examples:
  LLM_PROVIDER=anthropic LLM_MODEL=claude-sonnet-4-20250514 LLM_API_KEY=... netfilter-inspector explain fw_20261122T070000Z
  netfilter-inspector --config config.env explain audit/fw_20261122T070000Z_diff.json --json")]
    Explain(ExplainCmdArgs),
}

#[derive(Args)]
struct ExplainCmdArgs {
    /// A snapshot, baseline or diff artifact: a path, or a session id in the audit dir
    /// (its diff first, then its snapshot, then its baseline).
    artifact: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    IptablesSave,
    NftJson,
    TcQdisc,
    TcFilter,
    Auto,
}

impl From<FormatArg> for InputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::IptablesSave => InputFormat::IptablesSave,
            FormatArg::NftJson => InputFormat::NftJson,
            FormatArg::TcQdisc => InputFormat::TcQdisc,
            FormatArg::TcFilter => InputFormat::TcFilter,
            FormatArg::Auto => InputFormat::Auto,
        }
    }
}

#[derive(Args)]
struct InputArgs {
    /// A saved `iptables-save`, `ip6tables-save`, `nft -j list ruleset`, `tc qdisc show` or
    /// `tc filter show` output (repeatable: several files make one snapshot).
    #[arg(long = "from-file", value_name = "PATH")]
    from_file: Vec<PathBuf>,
    /// Format of the files: once for all, or once per file in order (default auto).
    #[arg(long, value_enum)]
    format: Vec<FormatArg>,
    /// Retrieve live instead of --from-file: run iptables-save, ip6tables-save,
    /// `nft -j list ruleset`, `tc qdisc show` and `tc filter show` through the safety-shell
    /// gate (audited): here (local), in a namespace (netns), on a VM over SSH, or through
    /// Azure run-command (azure; dumps fetched compressed in verified chunks).
    #[arg(long, value_enum, conflicts_with = "from_file")]
    provider: Option<ProviderArg>,
    /// Namespace for `--provider netns`.
    #[arg(long, value_name = "NAME")]
    netns: Option<String>,
    /// VM for `--provider ssh|azure`: SOURCE_VM_NAME or DEST_VM_NAME of the --config file
    /// (SSH uses its IP and key), or any VM name in RESOURCE_GROUP for azure.
    #[arg(long = "vm-name", value_name = "NAME")]
    vm_name: Option<String>,
    /// How RISKY gated commands are decided without a terminal. The dump, compress-and-chunk
    /// and probe commands are read-only for safety-shell; pass `all-risky` when a gate policy
    /// makes some of them RISKY and they should run unattended.
    #[arg(long, value_enum, default_value = "never")]
    approve: ApproveArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProviderArg {
    Local,
    Netns,
    Ssh,
    Azure,
}

#[derive(Clone, Copy, ValueEnum)]
enum ApproveArg {
    Never,
    AllRisky,
}

#[derive(Args)]
struct StoreArgs {
    /// Where artifacts are read and written (default: AUDIT_DIR or ./audit).
    #[arg(long = "audit-dir", value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SnapshotArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Session id to store under (default fw_<UTC timestamp>).
    #[arg(long = "session-id")]
    session_id: Option<String>,
    /// Store as a baseline (fw_<id>_baseline.json).
    #[arg(long = "is-baseline")]
    is_baseline: bool,
    /// Host label recorded in the snapshot (default: this machine's host name, or the VM).
    /// With `--provider ssh` and no --vm-name, also the address SSH connects to.
    #[arg(long)]
    host: Option<String>,
    /// Also narrate the snapshot through the configured LLM (optional; see `explain`).
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
struct SuppressArgs {
    /// Extra chain-name patterns whose changes are suppressed (`*` wildcard; repeatable).
    #[arg(long = "suppress", value_name = "PATTERN")]
    suppress: Vec<String>,
    /// Do not suppress the default ephemeral chains (KUBE-SEP/SVC/FW/XLB/EXT/SVL, CNI).
    #[arg(long = "no-default-suppress")]
    no_default_suppress: bool,
}

impl SuppressArgs {
    fn options(&self) -> DiffOptions {
        let mut o = if self.no_default_suppress {
            DiffOptions { suppress: vec![] }
        } else {
            DiffOptions::default()
        };
        o.suppress.extend(self.suppress.iter().cloned());
        o
    }
}

#[derive(Args)]
struct DiffArgs {
    /// The old side: a snapshot artifact path, a session id in the audit dir, or a raw file.
    old: String,
    /// The new side, same forms.
    new: String,
    /// Format of raw files (default auto).
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    #[command(flatten)]
    suppress: SuppressArgs,
    /// Also narrate the diff through the configured LLM (optional; the diff is printed
    /// whatever happens to the narrative).
    #[arg(long = "explain", visible_alias = "explain-diff")]
    explain: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
struct CompareArgs {
    /// Session id of the baseline (or a path to its artifact).
    #[arg(long = "compare-baseline", value_name = "ID")]
    compare_baseline: String,
    #[command(flatten)]
    input: InputArgs,
    /// Session id for the new snapshot.
    #[arg(long = "session-id")]
    session_id: Option<String>,
    /// Host label recorded in the snapshot. With `--provider ssh` and no --vm-name, also the
    /// address SSH connects to.
    #[arg(long)]
    host: Option<String>,
    #[command(flatten)]
    suppress: SuppressArgs,
    /// Also narrate the diff through the configured LLM (optional; the diff is printed
    /// whatever happens to the narrative).
    #[arg(long = "explain", visible_alias = "explain-diff")]
    explain: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProtoArg {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Clone, Copy, ValueEnum)]
enum DirArg {
    In,
    Out,
}

#[derive(Args)]
struct CheckArgs {
    /// Destination port (ignored for icmp).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Protocol.
    #[arg(long, value_enum)]
    proto: ProtoArg,
    /// Direction relative to the host.
    #[arg(long, value_enum)]
    direction: DirArg,
    /// Source address.
    #[arg(long)]
    src: Option<std::net::IpAddr>,
    /// Destination address.
    #[arg(long)]
    dst: Option<std::net::IpAddr>,
    /// Interface (input for `in`, output for `out`).
    #[arg(long)]
    iface: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    /// A stored snapshot (session id or artifact path) instead of --from-file.
    #[arg(long)]
    snapshot: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// An error with its exit code.
#[derive(Debug)]
struct Fail {
    code: u8,
    msg: String,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fail {}

fn fail(code: u8, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fail {
        code,
        msg: msg.into(),
    })
}

fn artifact_fail(e: ArtifactError, path: &Path) -> anyhow::Error {
    match &e {
        ArtifactError::Integrity { detail, .. } => fail(
            4,
            format!(
                "integrity failure: {}: {detail}; do not trust it, take a new baseline",
                path.display()
            ),
        ),
        ArtifactError::NotFound { name, store } => fail(
            2,
            format!("no artifact {name} in {store}; check the session id or pass --audit-dir"),
        ),
        ArtifactError::InvalidName(_) => fail(2, e.to_string()),
        _ => fail(3, e.to_string()),
    }
}

fn main() -> ExitCode {
    // A large snapshot builds a model of ~0.6 GB once and leaves it to the OS at exit:
    // transparent huge pages do not pay off there, and where memory is mostly page cache
    // each 2 MiB fault may first compact memory (measured: 1.6-1.8 s of system time on a
    // 700,000-line snapshot with them, 0.6-1.0 s without). Process-local; ignored where
    // unsupported.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
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
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal())
        .try_init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let (code, msg) = match e.downcast_ref::<Fail>() {
                Some(f) => (f.code, f.msg.clone()),
                None => (3, format!("{e:#}")),
            };
            eprintln!("netfilter-inspector: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let settings = Settings::load(cli.config.as_deref())
        .map_err(|e| fail(2, format!("{e}; fix the --config file")))?;
    let audit_dir = |flag: &Option<PathBuf>| -> PathBuf {
        settings
            .pick(flag.as_ref().map(|p| p.display().to_string()), "AUDIT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./audit"))
    };
    match cli.cmd {
        Cmd::Snapshot(a) => {
            let store = LocalStore::new(audit_dir(&a.store.audit_dir));
            let (rs, sources) = read_inputs(&a.input, store.dir(), &settings, a.host.as_deref())?;
            let host = a.host.clone().or_else(|| live_host(&a.input));
            let (art, name) = take_snapshot(
                &store,
                rs,
                sources,
                a.session_id.as_deref(),
                host,
                a.is_baseline,
            )?;
            let narrative = a.explain.then(|| {
                explain_optional(
                    &settings,
                    &store,
                    &ExplainInput::snapshot(&art.body),
                    &art.header.session_id,
                    &name,
                )
            });
            if a.store.json {
                match &narrative {
                    Some(n) => {
                        let mut v = serde_json::to_value(&art)?;
                        v["explanation"] = n.json(&store);
                        out!("{}", serde_json::to_string_pretty(&v)?);
                    }
                    None => out!("{}", serde_json::to_string_pretty(&art)?),
                }
            } else {
                print_snapshot(&art, &store, &name);
                if let Some(n) = &narrative {
                    n.print(&store);
                }
            }
            // The process ends here: leave freeing the ruleset to the OS.
            std::mem::forget(art);
            Ok(0)
        }
        Cmd::Diff(a) => {
            let store = LocalStore::new(audit_dir(&a.store.audit_dir));
            let (old, ol) = load_side(&store, &a.old, a.format.into())?;
            let (new, nl) = load_side(&store, &a.new, a.format.into())?;
            let report = diff(&old, &new, &ol, &nl, &a.suppress.options());
            let narrative = if a.explain {
                let id =
                    SessionId::generate("fw", chrono::Utc::now(), &mut rand::thread_rng(), |id| {
                        store
                            .exists(&format!("{id}_{KIND_EXPLANATION}.json"))
                            .unwrap_or(true)
                    })
                    .map_err(|e| fail(3, e.to_string()))?;
                Some(explain_optional(
                    &settings,
                    &store,
                    &ExplainInput::diff(&report),
                    &id,
                    &format!("{ol} -> {nl}"),
                ))
            } else {
                None
            };
            let code = output_diff_explained(&report, a.store.json, narrative.as_ref(), &store);
            // The process ends here: leave freeing hundreds of thousands of rules to the OS.
            std::mem::forget((old, new, report));
            code
        }
        Cmd::Compare(a) => {
            let store = LocalStore::new(audit_dir(&a.store.audit_dir));
            let (base, bl) = load_snapshot_ref(&store, &a.compare_baseline)?;
            let (rs, sources) = read_inputs(&a.input, store.dir(), &settings, a.host.as_deref())?;
            let host = a.host.clone().or_else(|| live_host(&a.input));
            let (art, name) =
                take_snapshot(&store, rs, sources, a.session_id.as_deref(), host, false)?;
            let report = diff(&base, &art.body.ruleset, &bl, &name, &a.suppress.options());
            let header = ArtifactHeader::new(
                TOOL,
                VERSION,
                art.header.session_id.clone(),
                "diff",
                chrono::Utc::now(),
            );
            let stored = store
                .put_json(&Artifact {
                    header,
                    body: report.clone(),
                })
                .map_err(|e| artifact_fail(e, store.dir()))?;
            if !a.store.json {
                out!("snapshot stored: {}", store.dir().join(&name).display());
                out!("diff stored: {}", store.dir().join(&stored.name).display());
            }
            let narrative = a.explain.then(|| {
                explain_optional(
                    &settings,
                    &store,
                    &ExplainInput::diff(&report),
                    &art.header.session_id,
                    &stored.name,
                )
            });
            output_diff_explained(&report, a.store.json, narrative.as_ref(), &store)
        }
        Cmd::Check(a) => {
            let store = LocalStore::new(audit_dir(&a.store.audit_dir));
            let rs = if let Some(s) = &a.snapshot {
                if !a.input.from_file.is_empty() || a.input.provider.is_some() {
                    return Err(fail(
                        2,
                        "give one of --snapshot, --from-file or --provider, not several",
                    ));
                }
                load_snapshot_ref(&store, s)?.0
            } else {
                read_inputs(&a.input, store.dir(), &settings, None)?.0
            };
            let pkt = Packet {
                proto: match a.proto {
                    ProtoArg::Tcp => "tcp",
                    ProtoArg::Udp => "udp",
                    ProtoArg::Icmp => "icmp",
                }
                .into(),
                port: a.port,
                direction: match a.direction {
                    DirArg::In => Direction::In,
                    DirArg::Out => Direction::Out,
                },
                src: a.src,
                dst: a.dst,
                iface: a.iface,
            };
            if pkt.proto != "icmp" && pkt.port == 0 {
                return Err(fail(
                    2,
                    "--port is required for tcp and udp; pass --port 1-65535",
                ));
            }
            let ans = check(&rs, &pkt);
            if a.store.json {
                out!("{}", serde_json::to_string_pretty(&ans)?);
            } else {
                print_check(&ans);
            }
            let code = if ans.verdict == Verdict::Accept { 0 } else { 1 };
            // The process ends here: leave freeing the ruleset to the OS.
            std::mem::forget(rs);
            Ok(code)
        }
        Cmd::Explain(a) => {
            let store = LocalStore::new(audit_dir(&a.store.audit_dir));
            explain_command(&settings, &store, &a)
        }
    }
}

/// The result of an optional narrative (`--explain`): done and stored, or unavailable.
enum Narrative {
    Done(Box<Explanation>, String),
    Unavailable(String),
}

impl Narrative {
    fn json(&self, store: &LocalStore) -> serde_json::Value {
        match self {
            Narrative::Done(e, name) => serde_json::json!({
                "status": "ok",
                "artifact": store.dir().join(name).display().to_string(),
                "provider": e.provider,
                "model": e.model,
                "input_sha256": e.input_sha256,
                "text": e.text,
            }),
            Narrative::Unavailable(why) => serde_json::json!({
                "status": "unavailable",
                "reason": why,
            }),
        }
    }

    fn print(&self, store: &LocalStore) {
        match self {
            Narrative::Done(e, name) => {
                out!(
                    "explanation ({} {}, stored: {}):",
                    e.provider,
                    e.model,
                    store.dir().join(name).display()
                );
                out!("{}", e.text);
            }
            Narrative::Unavailable(_) => out!("explanation: unavailable"),
        }
    }
}

/// Why no narrative could be made, with the exit code the `explain` subcommand uses.
struct NoNarrative {
    code: u8,
    msg: String,
}

/// Asks the configured LLM to narrate `input` and stores `fw_<id>_explanation.json`.
fn narrate(
    settings: &Settings,
    store: &LocalStore,
    input: &ExplainInput,
    id: &SessionId,
    subject_ref: &str,
) -> Result<(Explanation, String), NoNarrative> {
    let provider = match provider_from_lookup(|k| settings.get(k), HttpSettings::default()) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(NoNarrative {
                code: 2,
                msg: NOT_CONFIGURED.to_string(),
            })
        }
        Err(e) => {
            return Err(NoNarrative {
                code: 2,
                msg: format!("the LLM configuration is not usable: {e}"),
            })
        }
    };
    let t = std::time::Instant::now();
    let e = explain(&provider, input, subject_ref).map_err(|e| NoNarrative {
        code: 3,
        msg: format!("{e}; the deterministic result above stands without it"),
    })?;
    tracing::info!(
        "explanation by {} {} in {:.1} s",
        e.provider,
        e.model,
        t.elapsed().as_secs_f64()
    );
    let art = Artifact {
        header: ArtifactHeader::new(
            TOOL,
            VERSION,
            id.clone(),
            KIND_EXPLANATION,
            chrono::Utc::now(),
        ),
        body: e,
    };
    let stored = store.put_json(&art).map_err(|e| NoNarrative {
        code: 3,
        msg: format!("the explanation could not be stored: {e}"),
    })?;
    Ok((art.body, stored.name))
}

/// `--explain`: never changes the command's own result or exit code; a missing key or a
/// failing provider is one sentence on stderr and an explanation marked unavailable.
fn explain_optional(
    settings: &Settings,
    store: &LocalStore,
    input: &ExplainInput,
    id: &SessionId,
    subject_ref: &str,
) -> Narrative {
    match narrate(settings, store, input, id, subject_ref) {
        Ok((e, name)) => Narrative::Done(Box::new(e), name),
        Err(n) => {
            eprintln!("netfilter-inspector: explanation unavailable: {}", n.msg);
            Narrative::Unavailable(n.msg)
        }
    }
}

/// `explain ARTIFACT`.
fn explain_command(
    settings: &Settings,
    store: &LocalStore,
    a: &ExplainCmdArgs,
) -> anyhow::Result<u8> {
    // Resolve the artifact: a file, or a session id (diff, then snapshot, then baseline).
    let p = Path::new(&a.artifact);
    let (dir_store, name, path) = if p.is_file() {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (LocalStore::new(dir), name, p.to_path_buf())
    } else {
        let id = SessionId::parse(&a.artifact).map_err(|_| {
            fail(2, format!("{:?} is neither a file nor a valid session id; pass an artifact path or an id like fw_20261122T063005Z", a.artifact))
        })?;
        let name = ["diff", KIND_SNAPSHOT, KIND_BASELINE]
            .iter()
            .map(|k| format!("{id}_{k}.json"))
            .find(|n| store.exists(n).unwrap_or(false))
            .ok_or_else(|| {
                fail(
                    2,
                    format!(
                        "no diff, snapshot or baseline for session {id} in {}; check the id or pass --audit-dir",
                        store.dir().display()
                    ),
                )
            })?;
        let path = store.dir().join(&name);
        (LocalStore::new(store.dir()), name, path)
    };
    let bytes = dir_store.get(&name).map_err(|e| artifact_fail(e, &path))?;
    let not_usable = |e: String| {
        fail(
            2,
            format!(
                "{} is not a snapshot, baseline or diff artifact of {TOOL}: {e}; pass one of those",
                path.display()
            ),
        )
    };
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| not_usable(e.to_string()))?;
    if v.get("tool").and_then(|t| t.as_str()) != Some(TOOL) {
        return Err(not_usable("another tool wrote it".into()));
    }
    let id = v
        .get("session_id")
        .and_then(|s| s.as_str())
        .and_then(|s| SessionId::parse(s).ok())
        .ok_or_else(|| not_usable("it has no valid session_id".into()))?;
    let input = match v.get("kind").and_then(|k| k.as_str()) {
        Some("diff") => {
            let r: DiffReport = serde_json::from_value(v).map_err(|e| not_usable(e.to_string()))?;
            ExplainInput::diff(&r)
        }
        Some(KIND_SNAPSHOT | KIND_BASELINE) => {
            let s: Snapshot = serde_json::from_value(v).map_err(|e| not_usable(e.to_string()))?;
            ExplainInput::snapshot(&s)
        }
        other => return Err(not_usable(format!("its kind is {other:?}"))),
    };
    let (e, stored) = narrate(settings, store, &input, &id, &path.display().to_string())
        .map_err(|n| fail(n.code, n.msg))?;
    if a.store.json {
        let art = store
            .get(&stored)
            .map_err(|e| artifact_fail(e, &store.dir().join(&stored)))?;
        out!("{}", String::from_utf8_lossy(&art).trim_end());
    } else {
        out!(
            "explanation of {} ({} {}, stored: {}):",
            path.display(),
            e.provider,
            e.model,
            store.dir().join(&stored).display()
        );
        out!("{}", e.text);
    }
    Ok(0)
}

fn retrieve_live(
    input: &InputArgs,
    provider: ProviderArg,
    audit_dir: &Path,
    settings: &Settings,
    host: Option<&str>,
) -> anyhow::Result<(Ruleset, Vec<SourceInfo>)> {
    use cloud_provider::azure::AzureCli;
    use cloud_provider::config::{Environment, FlagOverrides};
    use cloud_provider::remote::{ssh_target, RemoteRunner, VmAccess};
    use netfilter_inspector::retrieve::{self, ChunkOptions, RetrieveError, VmExec};
    use safety_shell::approve::{AllRiskyApprover, NeverApprover};
    use safety_shell::audit::AuditLog;
    use safety_shell::exec::ExecOptions;
    use std::sync::Arc;
    match (provider, &input.netns, &input.vm_name) {
        (ProviderArg::Netns, None, _) => {
            return Err(fail(2, "--provider netns needs --netns NAME"));
        }
        (ProviderArg::Local | ProviderArg::Ssh | ProviderArg::Azure, Some(_), _) => {
            return Err(fail(2, "--netns goes with --provider netns"));
        }
        (ProviderArg::Local | ProviderArg::Netns, _, Some(_)) => {
            return Err(fail(2, "--vm-name goes with --provider ssh or azure"));
        }
        (ProviderArg::Azure, _, None) => {
            return Err(fail(2, "--provider azure needs --vm-name NAME"));
        }
        (ProviderArg::Ssh, _, None) if host.is_none() => {
            return Err(fail(
                2,
                "--provider ssh needs --vm-name NAME (from the --config file), or --host ADDRESS with snapshot or compare",
            ));
        }
        _ => {}
    }
    let session = SessionId::generate("fw", chrono::Utc::now(), &mut rand::thread_rng(), |_| false)
        .map_err(|e| fail(3, e.to_string()))?;
    let audit = AuditLog::open_in_dir(audit_dir, session.as_str()).map_err(|e| {
        fail(
            3,
            format!("cannot open the audit log in {}: {e}", audit_dir.display()),
        )
    })?;
    let builder = safety_shell::Gate::builder(audit).exec_options(ExecOptions {
        max_output_bytes: retrieve::DUMP_OUTPUT_CAP,
        ..ExecOptions::default()
    });
    let gate = Arc::new(match input.approve {
        ApproveArg::Never => builder.approver(NeverApprover).build(),
        ApproveArg::AllRisky => builder.approver(AllRiskyApprover).build(),
    });
    let map_err = |e: RetrieveError| match e {
        RetrieveError::Denied(m) => fail(
            5,
            format!("{m}; pass --approve all-risky to allow the gated commands unattended"),
        ),
        e @ RetrieveError::Truncated { .. } => fail(3, e.to_string()),
        e @ RetrieveError::Unreachable { .. } => fail(3, e.to_string()),
        other => fail(
            3,
            format!(
                "{other}; check that iptables, nftables and iproute2 are installed on the target"
            ),
        ),
    };
    let got = match provider {
        ProviderArg::Local | ProviderArg::Netns => {
            let target = match &input.netns {
                Some(n) => safety_shell::Target::Netns { name: n.clone() },
                None => safety_shell::Target::Local,
            };
            retrieve::retrieve(&gate, &target).map_err(map_err)?
        }
        ProviderArg::Ssh | ProviderArg::Azure => {
            let env = Environment::resolve(settings, &FlagOverrides::default())
                .map_err(|e| fail(2, format!("{e}; fix the --config file or the environment")))?;
            let (runner, vm) = if matches!(provider, ProviderArg::Azure) {
                let az = Arc::new(AzureCli::from_environment(gate.clone(), &env));
                let vm = input.vm_name.clone().unwrap_or_default();
                let rg = env.resource_group.clone().ok_or_else(|| {
                    fail(
                        2,
                        "--provider azure needs RESOURCE_GROUP; set it in the --config file or the environment",
                    )
                })?;
                let runner = RemoteRunner::new(gate.clone(), Some(az)).with_vm(
                    vm.clone(),
                    VmAccess::RunCommand {
                        resource_group: rg,
                        vm_name: vm.clone(),
                    },
                );
                (runner, vm)
            } else if let Some(vm) = &input.vm_name {
                let cfg = [&env.source, &env.dest]
                    .into_iter()
                    .find(|c| c.name.as_deref() == Some(vm.as_str()))
                    .ok_or_else(|| {
                        fail(
                            2,
                            format!(
                                "VM {vm} is neither SOURCE_VM_NAME nor DEST_VM_NAME of the configuration; pass one of them, or --host ADDRESS"
                            ),
                        )
                    })?;
                let t = ssh_target(&env, cfg, vm).map_err(|e| fail(2, e.to_string()))?;
                (
                    RemoteRunner::new(gate.clone(), None).with_vm(vm.clone(), VmAccess::Ssh(t)),
                    vm.clone(),
                )
            } else {
                let h = host.unwrap_or_default().to_string();
                let mut t = safety_shell::SshTarget::new(h.clone());
                t.user = env.ssh_user.clone();
                t.identity_file = env.dest.ssh_key.clone().or(env.source.ssh_key.clone());
                t.jump_host = env.jump_host.clone();
                t.known_hosts_file = env.known_hosts.clone();
                t.strict_host_key_checking = env.strict_host_key_checking;
                t.connect_timeout_secs = Some(env.ssh_connect_timeout_secs);
                (
                    RemoteRunner::new(gate.clone(), None).with_vm(h.clone(), VmAccess::Ssh(t)),
                    h,
                )
            };
            retrieve::retrieve_with(
                &VmExec {
                    runner: &runner,
                    vm,
                },
                ChunkOptions::default(),
            )
            .map_err(map_err)?
        }
    };
    for s in &got.skipped {
        tracing::warn!("skipped: {s}");
    }
    for n in &got.notes {
        tracing::info!("{n}");
    }
    for w in &got.ruleset.warnings {
        tracing::warn!("{}: {}", w.line, w.message);
    }
    Ok((got.ruleset, got.sources))
}

fn read_inputs(
    input: &InputArgs,
    audit_dir: &Path,
    settings: &Settings,
    host: Option<&str>,
) -> anyhow::Result<(Ruleset, Vec<SourceInfo>)> {
    if let Some(p) = input.provider {
        return retrieve_live(input, p, audit_dir, settings, host);
    }
    let t = std::time::Instant::now();
    let r = read_files(input);
    tracing::info!(
        "inputs read and parsed in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    r
}

fn read_files(input: &InputArgs) -> anyhow::Result<(Ruleset, Vec<SourceInfo>)> {
    if input.from_file.is_empty() {
        return Err(fail(
            2,
            "no input: pass --from-file PATH (live retrieval is not available yet)",
        ));
    }
    let formats: Vec<InputFormat> = match input.format.len() {
        0 => vec![InputFormat::Auto; input.from_file.len()],
        1 => vec![input.format[0].into(); input.from_file.len()],
        n if n == input.from_file.len() => input.format.iter().map(|f| (*f).into()).collect(),
        _ => {
            return Err(fail(
                2,
                "give --format once for all files or once per --from-file, in the same order",
            ))
        }
    };
    let mut rs = Ruleset::default();
    let mut sources = Vec::new();
    for (path, fmt) in input.from_file.iter().zip(formats) {
        let bytes = std::fs::read(path)
            .map_err(|e| fail(3, format!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        let detected = match fmt {
            InputFormat::Auto => netfilter_inspector::detect(&text).ok_or_else(|| {
                fail(
                    2,
                    format!(
                        "the format of {} was not recognised; pass --format iptables-save|nft-json|tc-qdisc|tc-filter",
                        path.display()
                    ),
                )
            })?,
            f => f,
        };
        // The input's digest is computed on the other core while the text is parsed.
        let (parsed, digest) = std::thread::scope(|sc| {
            let h = sc.spawn(|| cloud_provider::artifact::sha256_hex(&bytes));
            let parsed = parse(&text, detected);
            (parsed, h.join())
        });
        let digest = match digest {
            Ok(d) => d,
            Err(_) => cloud_provider::artifact::sha256_hex(&bytes),
        };
        let part = parsed.map_err(|e| {
            fail(
                2,
                format!("{} is not valid {}: {e}", path.display(), detected.as_str()),
            )
        })?;
        for w in &part.warnings {
            tracing::warn!("{}:{}: {}", path.display(), w.line, w.message);
        }
        rs.merge(part);
        let dropped = rs.dedupe_iptables_nft();
        if dropped > 0 {
            tracing::info!(
                "{dropped} iptables-nft tables seen in nft JSON kept from iptables-save instead"
            );
        }
        sources.push(SourceInfo {
            path: path.display().to_string(),
            format: detected.as_str().to_string(),
            sha256: digest,
        });
    }
    Ok((rs, sources))
}

/// The host label of a live retrieval (`netns:NAME`, or the VM name).
fn live_host(input: &InputArgs) -> Option<String> {
    match (input.provider, &input.netns, &input.vm_name) {
        (Some(ProviderArg::Netns), Some(n), _) => Some(format!("netns:{n}")),
        (Some(ProviderArg::Ssh | ProviderArg::Azure), _, Some(v)) => Some(v.clone()),
        _ => None,
    }
}

fn local_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn take_snapshot(
    store: &LocalStore,
    rs: Ruleset,
    sources: Vec<SourceInfo>,
    session: Option<&str>,
    host: Option<String>,
    is_baseline: bool,
) -> anyhow::Result<(Artifact<Snapshot>, String)> {
    let kind = if is_baseline {
        KIND_BASELINE
    } else {
        KIND_SNAPSHOT
    };
    let now = chrono::Utc::now();
    let id = match session {
        Some(s) => SessionId::parse(s).map_err(|e| fail(2, e.to_string()))?,
        None => SessionId::generate("fw", now, &mut rand::thread_rng(), |id| {
            store.exists(&format!("{id}_{kind}.json")).unwrap_or(true)
        })
        .map_err(|e| fail(3, e.to_string()))?,
    };
    let t = std::time::Instant::now();
    let snap = snapshot::build(&host.unwrap_or_else(local_host), sources, rs, is_baseline);
    tracing::info!("snapshot built in {:.3} s", t.elapsed().as_secs_f64());
    let art = Artifact {
        header: ArtifactHeader::new(TOOL, VERSION, id, kind, now),
        body: snap,
    };
    let t = std::time::Instant::now();
    let name = snapshot::write_artifact(store, &art)
        .map_err(|e| artifact_fail(e, store.dir()))?
        .name;
    tracing::info!("artifact written in {:.3} s", t.elapsed().as_secs_f64());
    Ok((art, name))
}

/// Loads the ruleset of a snapshot by artifact path or session id (baseline first, then
/// snapshot), verified against its sidecar.
fn load_snapshot_ref(store: &LocalStore, r: &str) -> anyhow::Result<(Ruleset, String)> {
    let read = |st: &LocalStore, name: &str, path: &Path| -> anyhow::Result<(Ruleset, String)> {
        let bytes = st.get(name).map_err(|e| artifact_fail(e, path))?;
        let s = snapshot::ruleset_from_artifact(&bytes).map_err(|e| {
            fail(
                2,
                format!(
                    "{} is not a usable snapshot artifact: {e}; pass a snapshot or baseline written by {TOOL}",
                    path.display()
                ),
            )
        })?;
        Ok((s.ruleset, s.session_id))
    };
    let p = Path::new(r);
    if p.is_file() {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return read(&LocalStore::new(dir), &name, p);
    }
    let id = SessionId::parse(r).map_err(|_| {
        fail(2, format!("{r:?} is neither a file nor a valid session id; pass an artifact path or an id like fw_20261122T063005Z"))
    })?;
    for kind in [KIND_BASELINE, KIND_SNAPSHOT] {
        let name = format!("{id}_{kind}.json");
        if store.exists(&name).unwrap_or(false) {
            let path = store.dir().join(&name);
            let (rs, _) = read(store, &name, &path)?;
            return Ok((rs, id.to_string()));
        }
    }
    Err(fail(
        2,
        format!(
            "no snapshot or baseline for session {id} in {}; check the id or pass --audit-dir",
            store.dir().display()
        ),
    ))
}

/// One side of a diff: an artifact (path or id) or a raw ruleset file.
fn load_side(store: &LocalStore, r: &str, fmt: InputFormat) -> anyhow::Result<(Ruleset, String)> {
    let p = Path::new(r);
    if p.is_file() {
        let bytes = std::fs::read(p)
            .with_context(|| format!("cannot read {}", p.display()))
            .map_err(|e| fail(3, format!("{e:#}")))?;
        let text = String::from_utf8_lossy(&bytes);
        // The header fields come first in an artifact: look for the tool name there rather
        // than parsing the whole document twice.
        let head: String = text
            .chars()
            .take(4096)
            .filter(|c| !c.is_whitespace())
            .collect();
        let is_artifact = head.starts_with('{') && head.contains(&format!("\"tool\":\"{TOOL}\""));
        if is_artifact {
            let (rs, _) = load_snapshot_ref(store, r)?;
            return Ok((rs, p.display().to_string()));
        }
        let rs = parse(&text, fmt)
            .map_err(|e| fail(2, format!("{} could not be parsed: {e}", p.display())))?;
        return Ok((rs, p.display().to_string()));
    }
    load_snapshot_ref(store, r)
}

fn output_diff_explained(
    report: &DiffReport,
    json: bool,
    narrative: Option<&Narrative>,
    store: &LocalStore,
) -> anyhow::Result<u8> {
    match (narrative, json) {
        (None, _) => output_diff(report, json),
        (Some(n), true) => {
            let mut v = serde_json::to_value(report)?;
            v["explanation"] = n.json(store);
            out!("{}", serde_json::to_string_pretty(&v)?);
            Ok(u8::from(report.drift_detected))
        }
        (Some(n), false) => {
            let code = output_diff(report, false);
            n.print(store);
            code
        }
    }
}

fn output_diff(report: &DiffReport, json: bool) -> anyhow::Result<u8> {
    if json {
        out!("{}", serde_json::to_string_pretty(report)?);
    } else {
        out!("diff {} -> {}", report.old, report.new);
        if !report.drift_detected {
            out!("no drift (counters ignored)");
        }
        for (fam, sec) in &report.families {
            out!(
                "[{fam}] {} changes, {} critical",
                sec.changes.len(),
                sec.critical
            );
            for c in &sec.changes {
                let sev = if c.severity == Severity::Critical {
                    "CRITICAL"
                } else {
                    "info"
                };
                let pos = match (c.old_position, c.position) {
                    (Some(o), Some(n)) => format!(" #{o}->#{n}"),
                    (None, Some(n)) => format!(" #{n}"),
                    _ => String::new(),
                };
                let table = match &c.backend {
                    Some(b) if b.starts_with("iptables-") => format!("{} ({b})", c.table),
                    _ => c.table.clone(),
                };
                out!(
                    "  {sev:8} {} {} {}{pos}: {}{}",
                    c.change,
                    table,
                    c.object,
                    c.detail,
                    c.reason
                        .as_deref()
                        .map(|r| format!("  ({r})"))
                        .unwrap_or_default()
                );
            }
        }
        if report.suppressed.changes > 0 {
            out!(
                "suppressed: {} changes in ephemeral chains ({})",
                report.suppressed.changes,
                report.suppressed.chains.join(", ")
            );
        }
        out!(
            "drift_detected: {}  has_critical_changes: {}",
            report.drift_detected,
            report.has_critical_changes
        );
    }
    Ok(u8::from(report.drift_detected))
}

fn print_snapshot(art: &Artifact<Snapshot>, store: &LocalStore, name: &str) {
    let s = &art.body;
    out!(
        "snapshot {} stored: {}",
        art.header.session_id,
        store.dir().join(name).display()
    );
    out!("host: {}", s.host);
    out!("frameworks: {}", s.frameworks.join(", "));
    for (fam, c) in &s.summary.families {
        out!(
            "  {fam}: {} tables, {} chains, {} rules, {} sets",
            c.tables,
            c.chains,
            c.rules,
            c.sets
        );
    }
    if s.summary.qdiscs > 0 || s.summary.filters > 0 {
        out!(
            "  tc: {} qdiscs ({} impairing), {} filters",
            s.summary.qdiscs,
            s.summary.impairing_qdiscs,
            s.summary.filters
        );
    }
    out!("blocking rules: {}", s.blocking_rules.len());
    for b in &s.blocking_rules {
        let pos = b.position.map(|p| format!("#{p}")).unwrap_or_default();
        let variant = b
            .variant
            .map(|v| format!(" (iptables-{})", v.as_str()))
            .unwrap_or_default();
        out!(
            "  {} {}{variant}/{}{pos} {}: {}",
            b.family.as_str(),
            b.table,
            b.chain,
            b.action,
            b.matches
        );
    }
    for q in s.ruleset.qdiscs.iter().filter(|q| q.is_impairing()) {
        out!("impairing qdisc: dev {} {} {}", q.dev, q.kind, q.options);
    }
    if s.summary.warnings > 0 {
        out!("parser warnings: {} (see the artifact)", s.summary.warnings);
    }
}

fn print_check(a: &CheckAnswer) {
    let mut what = vec![
        match a.packet.direction {
            Direction::In => "in".to_string(),
            Direction::Out => "out".to_string(),
        },
        a.packet.proto.clone(),
    ];
    if let Some(s) = a.packet.src {
        what.push(format!("from {s}"));
    }
    if let Some(d) = a.packet.dst {
        what.push(format!("to {d}"));
    }
    if a.packet.proto != "icmp" {
        what.push(format!("port {}", a.packet.port));
    }
    if let Some(i) = &a.packet.iface {
        what.push(format!("via {i}"));
    }
    out!("{}: {}", what.join(" "), a.verdict.as_str());
    if let Some(d) = &a.deciding_rule {
        let variant = d
            .variant
            .map(|v| format!(" (iptables-{})", v.as_str()))
            .unwrap_or_default();
        out!(
            "deciding rule: {} {}{variant}/{}{} {}",
            d.family.as_str(),
            d.table,
            d.chain,
            d.position.map(|p| format!(" #{p}")).unwrap_or_default(),
            d.rule
        );
    }
    if let Some(r) = &a.reason {
        out!("why indeterminate: {r}");
    }
    for s in &a.assumptions {
        out!("assumed: {s}");
    }
    for c in &a.conditional_rules {
        out!("not evaluated: {c}");
    }
}
