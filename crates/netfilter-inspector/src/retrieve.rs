//! Live retrieval: runs the read-only dump commands on a target and parses what they print.
//!
//! Paths: this machine or a lab namespace (safety-shell's [`Gate`] directly), and a named VM
//! over SSH or Azure run-command (cloud-provider's [`RemoteRunner`], which also passes the
//! gate). Every path runs the same commands through the [`Exec`] trait and gives the same
//! parsed result.
//!
//! Commands: framework detection (`command -v …`, then `iptables -V`, `update-alternatives
//! --query iptables` and `/etc/cni/net.d`), `iptables-save`, `ip6tables-save`,
//! `nft -j list ruleset`, `tc -j qdisc show` (text `tc qdisc show` when JSON is not
//! supported), and `tc filter show dev D` / `… ingress` for every interface `ip -o link show`
//! lists. A command that is missing or fails is skipped and reported; when every dump fails
//! the retrieval fails. Output cut by the gate's cap is an error, never used.
//!
//! Azure run-command keeps only the last 4 KiB of each output stream, so on that path each
//! dump is fetched compressed and in chunks (see [`chunked_fetch`]): the first run prints
//! the length and SHA-256 of `DUMP | gzip -n -c | base64 -w0` and its first chunk, later
//! runs print further chunks (`| cut -c A-B`); the reassembled text must have that length
//! and digest, and must gunzip, or the retrieval fails naming what was lost. The dump is
//! normalised before compression (comment lines and counters dropped) so that reruns give
//! identical bytes; counters never count as drift anyway.

use std::io::Read;

use base64::Engine as _;
use cloud_provider::error::CloudError;
use cloud_provider::remote::{RemotePath, RemoteRunner};
use safety_shell::{Gate, GateError, Target};

use crate::model::{IptablesVariant, Ruleset};
use crate::snapshot::SourceInfo;
use crate::{parse, InputFormat};

/// Why retrieval failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    /// The gate refused or an operator denied a command.
    #[error("{0}")]
    Denied(String),
    /// No command produced usable output.
    #[error("nothing could be retrieved from {target}: {detail}")]
    Nothing {
        /// Target description.
        target: String,
        /// What each command said.
        detail: String,
    },
    /// A dump arrived incomplete (cut by a cap, a chunk lost, or changed between chunks).
    #[error("the output of `{what}` arrived incomplete: {detail}; it was not used")]
    Truncated {
        /// The dump command.
        what: String,
        /// What was lost.
        detail: String,
    },
    /// The target could not be reached at all.
    #[error("cannot run commands on {target}: {detail}")]
    Unreachable {
        /// Target description.
        target: String,
        /// Why.
        detail: String,
    },
    /// The audit log could not be written.
    #[error("audit log: {0}")]
    Audit(String),
}

/// The output of one command, whichever path ran it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdOutput {
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Exit code, when known.
    pub exit_code: Option<i32>,
    /// A cap cut stdout or stderr.
    pub truncated: bool,
}

impl CmdOutput {
    fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Why one command could not be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFailure {
    /// Refused by the gate or denied by the operator (fatal for a dump).
    Denied(String),
    /// The audit log failed (always fatal).
    Audit(String),
    /// The target is unreachable (fatal).
    Unreachable(String),
    /// The output was cut and could not be completed (fatal: never used).
    Truncated(String),
    /// The command could not run (skip it).
    Other(String),
}

/// Runs one shell command line on a target.
pub trait Exec {
    /// The target, for messages and source labels.
    fn describe(&self) -> String;
    /// Whether stdout is capped at about 4 KiB (Azure run-command): dumps then use
    /// [`chunked_fetch`].
    fn capped(&self) -> bool;
    /// Runs `command`.
    fn run(&self, command: &str, reasoning: &str) -> Result<CmdOutput, ExecFailure>;
}

/// [`Exec`] through a [`Gate`] on a local or namespace target.
#[derive(Debug)]
pub struct GateExec<'a> {
    /// The gate.
    pub gate: &'a Gate,
    /// The target.
    pub target: &'a Target,
}

impl Exec for GateExec<'_> {
    fn describe(&self) -> String {
        self.target.describe()
    }
    fn capped(&self) -> bool {
        false
    }
    fn run(&self, command: &str, reasoning: &str) -> Result<CmdOutput, ExecFailure> {
        match self.gate.run(self.target, command, reasoning) {
            Ok(r) => Ok(CmdOutput {
                truncated: r.truncated.stdout,
                stdout: r.stdout,
                stderr: r.stderr,
                exit_code: r.exit_code,
            }),
            Err(e @ (GateError::Forbidden { .. } | GateError::Denied { .. })) => {
                Err(ExecFailure::Denied(e.to_string()))
            }
            Err(GateError::Audit(e)) => Err(ExecFailure::Audit(e.to_string())),
            Err(e) => Err(ExecFailure::Other(e.to_string())),
        }
    }
}

/// [`Exec`] on a VM registered in a [`RemoteRunner`] (SSH, run-command or namespace).
#[derive(Debug)]
pub struct VmExec<'a> {
    /// The runner.
    pub runner: &'a RemoteRunner,
    /// The VM name it knows.
    pub vm: String,
}

impl Exec for VmExec<'_> {
    fn describe(&self) -> String {
        match self.runner.access(&self.vm).map(|a| a.path()) {
            Some(RemotePath::Ssh) => format!("ssh:{}", self.vm),
            Some(RemotePath::RunCommand) => format!("run-command:{}", self.vm),
            Some(RemotePath::Netns) => format!("netns-vm:{}", self.vm),
            None => self.vm.clone(),
        }
    }
    fn capped(&self) -> bool {
        matches!(
            self.runner.access(&self.vm).map(|a| a.path()),
            Some(RemotePath::RunCommand)
        )
    }
    fn run(&self, command: &str, reasoning: &str) -> Result<CmdOutput, ExecFailure> {
        match self.runner.run(&self.vm, command, reasoning) {
            Ok(o) => Ok(CmdOutput {
                stdout: o.stdout,
                stderr: o.stderr,
                exit_code: o.exit_code,
                truncated: o.truncated,
            }),
            Err(e @ CloudError::Denied { .. }) => Err(ExecFailure::Denied(e.to_string())),
            Err(e @ CloudError::OutputTruncated { .. }) => {
                Err(ExecFailure::Truncated(e.to_string()))
            }
            Err(
                e @ (CloudError::Unreachable { .. }
                | CloudError::NotLoggedIn { .. }
                | CloudError::CliMissing { .. }
                | CloudError::NotFound { .. }
                | CloudError::AuthorizationFailed { .. }
                | CloudError::InvalidArgument { .. }),
            ) => Err(ExecFailure::Unreachable(e.to_string())),
            Err(e) => Err(ExecFailure::Other(e.to_string())),
        }
    }
}

/// What was retrieved.
#[derive(Debug, Clone)]
pub struct Retrieved {
    /// The merged ruleset.
    pub ruleset: Ruleset,
    /// One source per command that produced output.
    pub sources: Vec<SourceInfo>,
    /// Commands skipped, with why.
    pub skipped: Vec<String>,
    /// Other facts about the retrieval (e.g. duplicate tables dropped, chunks fetched).
    pub notes: Vec<String>,
}

/// The dump commands and their formats when no back-end specific `*-legacy-save` /
/// `*-nft-save` tool is present (tc qdiscs and filters are handled separately); see
/// [`iptables_commands`].
pub const COMMANDS: &[(&str, InputFormat)] = &[
    ("iptables-save", InputFormat::IptablesSave),
    ("ip6tables-save", InputFormat::IptablesSave),
    ("nft -j list ruleset", InputFormat::NftJson),
];

/// The per-stream output cap the CLI gives its gate (64 MiB): the `nft -j` JSON of a large
/// ruleset passes safety-shell's 1 MiB default. Output over the cap is still an error.
pub const DUMP_OUTPUT_CAP: usize = 64 * 1024 * 1024;

/// Options of the chunked fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Base64 characters per chunk (default 3000, under Azure's 4,096-byte cap).
    pub chunk: usize,
    /// The most chunks fetched for one dump (default 400, about 1.2 MB compressed).
    pub max_chunks: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            chunk: 3000,
            max_chunks: 400,
        }
    }
}

const REASON: &str = "netfilter-inspector snapshot: read the firewall and traffic-control state";

/// Runs the dump commands on `target` through `gate` and parses their output.
pub fn retrieve(gate: &Gate, target: &Target) -> Result<Retrieved, RetrieveError> {
    retrieve_with(&GateExec { gate, target }, ChunkOptions::default())
}

/// Runs the dump commands through `exec` (any path) and parses their output.
pub fn retrieve_with(exec: &dyn Exec, opts: ChunkOptions) -> Result<Retrieved, RetrieveError> {
    let mut ruleset = Ruleset::default();
    let mut sources = Vec::new();
    let mut skipped = Vec::new();
    let mut notes = Vec::new();
    let mut nft_part: Option<Ruleset> = None;
    let target = exec.describe();

    // Framework detection: never fatal unless the target is unreachable.
    let mut tools = Vec::new();
    match detect_frameworks(exec) {
        Ok(d) => {
            ruleset.producers.extend(d.found);
            skipped.extend(d.why);
            tools = d.tools;
        }
        Err(e @ RetrieveError::Unreachable { .. }) => return Err(e),
        Err(e @ RetrieveError::Audit(_)) => return Err(e),
        Err(e) => skipped.push(format!("framework detection: {e}")),
    }

    let mut commands: Vec<(String, InputFormat, Option<IptablesVariant>)> =
        iptables_commands(&tools)
            .into_iter()
            .map(|(c, v)| (c, InputFormat::IptablesSave, v))
            .collect();
    commands.push(("nft -j list ruleset".into(), InputFormat::NftJson, None));
    for (cmd, fmt, variant) in &commands {
        let (cmd, fmt) = (cmd.as_str(), *fmt);
        let text = match dump(exec, cmd, fmt, opts, &mut notes)? {
            Ok(t) => t,
            Err(why) => {
                skipped.push(format!("{cmd}: {why}"));
                continue;
            }
        };
        // An empty iptables-save (no tables loaded) is not an error.
        let empty = text.trim().is_empty()
            || (fmt == InputFormat::IptablesSave && !text.lines().any(|l| l.starts_with('*')));
        if empty {
            sources.push(source(&target, cmd, fmt, &text));
            continue;
        }
        match parse(&text, fmt) {
            Ok(mut part) => {
                sources.push(source(&target, cmd, fmt, &text));
                if fmt == InputFormat::NftJson {
                    nft_part = Some(part);
                } else {
                    if let Some(v) = variant {
                        // The tool names its back end; its header may not (legacy-save).
                        for t in &mut part.tables {
                            t.variant = Some(*v);
                        }
                        let label = format!("iptables-{}", v.as_str());
                        part.producers.retain(|p| !p.starts_with("iptables"));
                        part.producers.push(label);
                    }
                    ruleset.merge(part);
                }
            }
            Err(e) => skipped.push(format!("{cmd}: output not understood: {e}")),
        }
    }

    // tc qdiscs: JSON where supported, text otherwise.
    let mut qdisc = None;
    for cmd in ["tc -j qdisc show", "tc qdisc show"] {
        match dump(exec, cmd, InputFormat::TcQdisc, opts, &mut notes)? {
            Ok(t) => match parse(&t, InputFormat::TcQdisc) {
                Ok(part) => {
                    qdisc = Some((cmd, t, part));
                    break;
                }
                Err(e) => skipped.push(format!("{cmd}: output not understood: {e}")),
            },
            Err(why) => skipped.push(format!("{cmd}: {why}")),
        }
    }
    if let Some((cmd, t, part)) = qdisc {
        sources.push(source(&target, cmd, InputFormat::TcQdisc, &t));
        ruleset.merge(part);
    }

    // tc filters of every interface: the root qdisc, the ingress and clsact hooks, and every
    // other qdisc and class handle (filters attached below a class are listed only when
    // their parent is named).
    match interfaces(exec) {
        Ok(devs) if !devs.is_empty() => {
            let mut parents = filter_parents(&ruleset.qdiscs);
            match dump(
                exec,
                &class_command(&devs),
                InputFormat::TcQdisc,
                opts,
                &mut notes,
            )? {
                Ok(t) => {
                    for p in parse_class_sections(&t) {
                        if !parents.contains(&p) {
                            parents.push(p);
                        }
                    }
                }
                Err(why) => skipped.push(format!("tc class show: {why}")),
            }
            let clsact: Vec<String> = ruleset
                .qdiscs
                .iter()
                .filter(|q| q.kind == "clsact")
                .map(|q| q.dev.clone())
                .collect();
            let cmd = filter_command_with(&devs, &parents, &clsact);
            match dump(exec, &cmd, InputFormat::TcFilter, opts, &mut notes)? {
                Ok(t) => {
                    let (filters, why) = parse_filter_sections(&t);
                    skipped.extend(why);
                    sources.push(source(&target, &cmd, InputFormat::TcFilter, &t));
                    ruleset.filters.extend(filters);
                }
                Err(why) => skipped.push(format!("tc filter show: {why}")),
            }
        }
        Ok(_) => skipped.push("tc filter show: no interfaces listed".into()),
        Err(e @ RetrieveError::Audit(_)) => return Err(e),
        Err(e) => skipped.push(format!("tc filter show: {e}")),
    }

    if let Some(n) = nft_part {
        ruleset.merge(n);
        let dropped = ruleset.dedupe_iptables_nft();
        if dropped > 0 {
            notes.push(format!(
                "nft -j list ruleset: {dropped} iptables-nft tables kept from the iptables-nft view instead"
            ));
        }
    }
    if sources.is_empty() {
        return Err(RetrieveError::Nothing {
            target,
            detail: skipped.join("; "),
        });
    }
    Ok(Retrieved {
        ruleset,
        sources,
        skipped,
        notes,
    })
}

/// Runs one dump. `Ok(Err(why))` means "skip this dump"; `Err` is fatal.
fn dump(
    exec: &dyn Exec,
    cmd: &str,
    fmt: InputFormat,
    opts: ChunkOptions,
    notes: &mut Vec<String>,
) -> Result<Result<String, String>, RetrieveError> {
    if exec.capped() {
        let normalised = normalise_command(cmd, fmt);
        return match chunked_fetch(exec, &normalised, opts) {
            Ok(f) => {
                if f.chunks > 1 {
                    notes.push(format!(
                        "{cmd}: fetched compressed in {} chunks ({} bytes, {} compressed), length and SHA-256 verified",
                        f.chunks,
                        f.text.len(),
                        f.encoded_len
                    ));
                }
                Ok(Ok(f.text))
            }
            Err(FetchError::Skip(why)) => Ok(Err(why)),
            Err(FetchError::Fatal(e)) => Err(e),
        };
    }
    let out = match exec.run(cmd, REASON) {
        Ok(o) => o,
        Err(f) => return fatal_or_skip(exec, f).map(Err),
    };
    if !out.success() {
        return Ok(Err(failure_text(&out)));
    }
    if out.truncated {
        return Err(RetrieveError::Truncated {
            what: cmd.to_string(),
            detail: "the gate's output cap cut it; raise the cap or fetch it over another path"
                .into(),
        });
    }
    Ok(Ok(out.stdout))
}

fn fatal_or_skip(exec: &dyn Exec, f: ExecFailure) -> Result<String, RetrieveError> {
    match f {
        ExecFailure::Denied(m) => Err(RetrieveError::Denied(m)),
        ExecFailure::Audit(m) => Err(RetrieveError::Audit(m)),
        ExecFailure::Unreachable(m) => Err(RetrieveError::Unreachable {
            target: exec.describe(),
            detail: m,
        }),
        ExecFailure::Truncated(m) => Err(RetrieveError::Truncated {
            what: "a command".into(),
            detail: m,
        }),
        ExecFailure::Other(m) => Ok(m),
    }
}

fn failure_text(out: &CmdOutput) -> String {
    let why = out
        .stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error text");
    match out.exit_code {
        Some(c) => format!("exit {c}: {why}"),
        None => format!("no exit status: {why}"),
    }
}

/// The dump command made deterministic across reruns: the timestamp of iptables-save's
/// `# Generated by … on DATE` / `# Completed on DATE` lines and the counters dropped (the
/// header's version and back end are kept); nft JSON counters zeroed.
pub fn normalise_command(cmd: &str, fmt: InputFormat) -> String {
    match fmt {
        InputFormat::IptablesSave => format!(
            "{cmd} | sed -E 's/^(# (Generated by .*|Completed)) on .*$/\\1/; s/\\[[0-9]+:[0-9]+\\]$/[0:0]/; s/^\\[[0-9]+:[0-9]+\\] //'"
        ),
        InputFormat::NftJson => format!(
            "{cmd} | sed -E 's/\"packets\": *[0-9]+/\"packets\": 0/g; s/\"bytes\": *[0-9]+/\"bytes\": 0/g'"
        ),
        _ => cmd.to_string(),
    }
}

/// A dump fetched in chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The decoded dump.
    pub text: String,
    /// Runs it took.
    pub chunks: usize,
    /// Length of the base64 text.
    pub encoded_len: usize,
}

/// Why a chunked fetch did not give a dump.
#[derive(Debug)]
pub enum FetchError {
    /// Skip this dump (command missing or failing on the target).
    Skip(String),
    /// Stop the retrieval.
    Fatal(RetrieveError),
}

/// The first run: `LEN SHA256` of the encoded dump, then its first chunk. The command sits
/// on its own lines in parentheses, so a list (`a; b`) is compressed whole. When the command
/// is a single pipeline, its first stage is run once on its own first so that its failure
/// (e.g. `tc -j` on an iproute2 without JSON) is an exit status, not an empty dump.
pub fn header_script(cmd: &str, chunk: usize) -> String {
    let tool = cmd.split_whitespace().next().unwrap_or("");
    let first = cmd.split(" | ").next().unwrap_or(cmd);
    let status = if first.contains(';') || first.contains('\n') {
        String::new()
    } else {
        format!("{first} >/dev/null || exit $?\n")
    };
    format!(
        "command -v {tool} >/dev/null 2>&1 || {{ echo '{tool}: command not found' >&2; exit 127; }}\n\
         {status}\
         b=$( (\n{cmd}\n) | gzip -n -c | base64 -w0)\n\
         printf '%s %s\\n' \"${{#b}}\" \"$(printf '%s' \"$b\" | sha256sum | cut -d' ' -f1)\"\n\
         printf '%s\\n' \"$b\" | cut -c 1-{chunk}"
    )
}

/// A later run: characters `from..=to` (1-based) of the encoded dump.
pub fn chunk_script(cmd: &str, from: usize, to: usize) -> String {
    format!("(\n{cmd}\n) | gzip -n -c | base64 -w0 | cut -c {from}-{to}")
}

/// Fetches `cmd`'s output compressed, in chunks small enough for run-command, and verifies
/// it (length and SHA-256 computed on the target, then gzip's own CRC). Never returns a
/// partial dump.
pub fn chunked_fetch(
    exec: &dyn Exec,
    cmd: &str,
    opts: ChunkOptions,
) -> Result<Fetched, FetchError> {
    let chunk = opts.chunk.max(1);
    let fatal = FetchError::Fatal;
    let trunc = |detail: String| {
        fatal(RetrieveError::Truncated {
            what: cmd.to_string(),
            detail,
        })
    };
    let first =
        exec.run(&header_script(cmd, chunk), REASON)
            .map_err(|f| match fatal_or_skip(exec, f) {
                Ok(why) => FetchError::Skip(why),
                Err(e) => fatal(e),
            })?;
    if !first.success() {
        return Err(FetchError::Skip(failure_text(&first)));
    }
    let mut lines = first.stdout.lines();
    let head = lines.next().unwrap_or("");
    let mut parts = head.split_whitespace();
    let (len, sha) = match (
        parts.next().and_then(|n| n.parse::<usize>().ok()),
        parts.next(),
    ) {
        (Some(n), Some(s)) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (n, s.to_ascii_lowercase())
        }
        _ => {
            return Err(trunc(format!(
                "the first chunk does not start with the length and SHA-256 line (got {:?})",
                head.chars().take(80).collect::<String>()
            )))
        }
    };
    let needed = len.div_ceil(chunk).max(1);
    if needed > opts.max_chunks {
        return Err(trunc(format!(
            "it is {len} bytes compressed, {needed} chunks of {chunk}, more than the limit of {}; fetch it over SSH",
            opts.max_chunks
        )));
    }
    let mut encoded = String::with_capacity(len);
    encoded.push_str(lines.next().unwrap_or("").trim());
    let mut runs = 1;
    for k in 1..needed {
        let from = k * chunk + 1;
        let to = ((k + 1) * chunk).min(len);
        let out =
            exec.run(&chunk_script(cmd, from, to), REASON)
                .map_err(|f| match fatal_or_skip(exec, f) {
                    Ok(why) => trunc(format!(
                        "chunk {} of {needed} could not be run: {why}",
                        k + 1
                    )),
                    Err(e) => fatal(e),
                })?;
        runs += 1;
        if !out.success() {
            return Err(trunc(format!(
                "chunk {} of {needed} failed: {}",
                k + 1,
                failure_text(&out)
            )));
        }
        encoded.push_str(out.stdout.trim());
    }
    verify_and_decode(&encoded, len, &sha, needed)
        .map(|text| Fetched {
            text,
            chunks: runs,
            encoded_len: len,
        })
        .map_err(trunc)
}

/// Checks the reassembled base64 text against the length and digest computed on the
/// target, then decodes and gunzips it. The error says what was lost.
pub fn verify_and_decode(
    encoded: &str,
    len: usize,
    sha: &str,
    chunks: usize,
) -> Result<String, String> {
    if encoded.len() != len {
        return Err(format!(
            "{} of {len} compressed bytes arrived over {chunks} chunk(s) ({} lost); a chunk was cut in transit",
            encoded.len(),
            len.saturating_sub(encoded.len())
        ));
    }
    let got = cloud_provider::artifact::sha256_hex(encoded.as_bytes());
    if !got.eq_ignore_ascii_case(sha) {
        return Err(format!(
            "the {chunks} chunk(s) do not match the SHA-256 computed on the target ({sha}, got {got}); the ruleset changed between runs or a chunk was altered"
        ));
    }
    let gz = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the chunks are not valid base64: {e}"))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_string(&mut text)
        .map_err(|e| format!("the compressed dump does not decompress: {e}"))?;
    Ok(text)
}

/// Tools whose presence framework detection reports.
pub const DETECT_TOOLS: &[&str] = &[
    "firewall-cmd",
    "ufw",
    "fail2ban-client",
    "docker",
    "dockerd",
    "kube-proxy",
    "iptables-legacy-save",
    "iptables-nft-save",
    "ip6tables-legacy-save",
    "ip6tables-nft-save",
];

/// The iptables dump commands for the tools present on the target: every back-end
/// specific `*-legacy-save` / `*-nft-save` that exists (legacy and nft-backed tables can
/// coexist, and each tool sees only its own), or the plain `iptables-save` /
/// `ip6tables-save` for a family that has neither.
pub fn iptables_commands(tools: &[String]) -> Vec<(String, Option<IptablesVariant>)> {
    let mut v = Vec::new();
    for fam in ["iptables", "ip6tables"] {
        let mut any = false;
        for (suffix, variant) in [
            ("legacy-save", IptablesVariant::Legacy),
            ("nft-save", IptablesVariant::Nft),
        ] {
            let cmd = format!("{fam}-{suffix}");
            if tools.contains(&cmd) {
                v.push((cmd, Some(variant)));
                any = true;
            }
        }
        if !any {
            v.push((format!("{fam}-save"), None));
        }
    }
    v
}

/// What framework detection found.
#[derive(Debug, Default)]
struct Detected {
    /// Frameworks found.
    found: Vec<String>,
    /// Notes on what could not be run.
    why: Vec<String>,
    /// Names of [`DETECT_TOOLS`] present on the target.
    tools: Vec<String>,
}

/// Framework detection.
fn detect_frameworks(exec: &dyn Exec) -> Result<Detected, RetrieveError> {
    let mut found = Vec::new();
    let mut why = Vec::new();
    let mut tools_present: Vec<String> = Vec::new();
    let add = |s: &str, found: &mut Vec<String>| {
        if !found.iter().any(|x| x == s) {
            found.push(s.to_string());
        }
    };
    // SAFE: which tools exist.
    // One `command -v` per tool: dash stops at the first name it does not find.
    let tools = DETECT_TOOLS
        .iter()
        .map(|t| format!("command -v {t}"))
        .collect::<Vec<_>>()
        .join("; ");
    match exec.run(&tools, REASON) {
        Ok(o) => {
            for l in o.stdout.lines() {
                let name = l.trim().rsplit('/').next().unwrap_or("");
                if DETECT_TOOLS.contains(&name) && !tools_present.iter().any(|t| t == name) {
                    tools_present.push(name.to_string());
                }
                let fw = match name {
                    "firewall-cmd" => "firewalld",
                    "ufw" => "ufw",
                    "fail2ban-client" => "fail2ban",
                    "docker" | "dockerd" => "docker",
                    "kube-proxy" => "kube-proxy",
                    _ => continue,
                };
                add(fw, &mut found);
            }
        }
        Err(f) => why.push(format!("framework detection: {}", fatal_or_skip(exec, f)?)),
    }
    // iptables back end and CNI: commands the gate may treat as RISKY; a refusal is noted.
    let probe = "iptables -V 2>&1; update-alternatives --query iptables 2>/dev/null | grep '^Value:'; ls /etc/cni/net.d 2>/dev/null";
    match exec.run(probe, REASON) {
        Ok(o) => {
            for fw in parse_probe(&o.stdout) {
                add(&fw, &mut found);
            }
        }
        Err(ExecFailure::Denied(m)) => why.push(format!(
            "iptables back-end probe (`iptables -V`, update-alternatives, /etc/cni/net.d) not run: {m}"
        )),
        Err(f) => why.push(format!(
            "iptables back-end probe: {}",
            fatal_or_skip(exec, f)?
        )),
    }
    Ok(Detected {
        found,
        why,
        tools: tools_present,
    })
}

/// Frameworks named by the probe output (`iptables -V`, the alternatives `Value:` line,
/// the CNI config directory listing).
pub fn parse_probe(out: &str) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
        }
    };
    for l in out.lines().map(str::trim) {
        if l.starts_with("iptables v") || l.starts_with("Value:") {
            if l.contains("nf_tables") || l.contains("-nft") {
                add("iptables-nft");
            } else if l.contains("legacy") {
                add("iptables-legacy");
            }
        } else if l.ends_with(".conf") || l.ends_with(".conflist") {
            add("cni");
        }
    }
    v
}

/// Interface names from `ip -o link show`.
fn interfaces(exec: &dyn Exec) -> Result<Vec<String>, RetrieveError> {
    let out = match exec.run("ip -o link show", REASON) {
        Ok(o) => o,
        Err(f) => {
            let why = fatal_or_skip(exec, f)?;
            return Err(RetrieveError::Nothing {
                target: exec.describe(),
                detail: format!("ip -o link show: {why}"),
            });
        }
    };
    Ok(parse_link_names(&out.stdout))
}

/// Interface names from `ip -o link show` output (`2: eth0@if5: <…>`), keeping only names
/// that are safe to put on a command line.
pub fn parse_link_names(text: &str) -> Vec<String> {
    let mut v = Vec::new();
    for l in text.lines() {
        let mut it = l.splitn(3, ':');
        let (Some(idx), Some(name)) = (it.next(), it.next()) else {
            continue;
        };
        if idx.trim().parse::<u32>().is_err() {
            continue;
        }
        let name = name.trim();
        let name = name.split('@').next().unwrap_or(name);
        if !name.is_empty()
            && name.len() <= 15
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !v.iter().any(|x| x == name)
        {
            v.push(name.to_string());
        }
    }
    v
}

/// One command that prints `tc filter show` for the egress root and the ingress hook of
/// every interface, each section after a `### dev NAME egress|ingress` marker.
pub fn filter_command(devs: &[String]) -> String {
    filter_command_with(devs, &[], &[])
}

/// Whether `h` looks like a tc handle (`1:`, `1:1`, `ffff:fff1`): safe on a command line.
pub fn is_tc_handle(h: &str) -> bool {
    let Some((maj, min)) = h.split_once(':') else {
        return false;
    };
    !maj.is_empty()
        && maj.len() <= 4
        && min.len() <= 4
        && maj.bytes().all(|b| b.is_ascii_hexdigit())
        && min.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_dev_name(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 15
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The `(device, handle)` pairs of every qdisc whose filters the root listing does not show:
/// all qdiscs except the root one and the ingress/clsact hooks (listed by name).
pub fn filter_parents(qdiscs: &[crate::model::Qdisc]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    for q in qdiscs {
        if q.parent == "root"
            || matches!(q.kind.as_str(), "ingress" | "clsact")
            || !is_tc_handle(&q.handle)
            || !is_dev_name(&q.dev)
        {
            continue;
        }
        let p = (q.dev.clone(), q.handle.clone());
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

/// One command that prints `tc class show dev D` for every interface after a
/// `### dev D` marker.
pub fn class_command(devs: &[String]) -> String {
    devs.iter()
        .filter(|d| is_dev_name(d))
        .map(|d| format!("echo '### dev {d}'; tc class show dev {d} 2>/dev/null"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `(device, class handle)` pairs from the output of [`class_command`] (`class htb 1:10
/// parent 1:1 …`). Lines that do not look like a class are ignored.
pub fn parse_class_sections(text: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut dev: Option<String> = None;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("### dev ") {
            dev = rest
                .split_whitespace()
                .next()
                .filter(|d| is_dev_name(d))
                .map(str::to_string);
            continue;
        }
        let mut t = l.split_whitespace();
        let (Some("class"), Some(_kind), Some(handle)) = (t.next(), t.next(), t.next()) else {
            continue;
        };
        if let Some(d) = &dev {
            let p = (d.clone(), handle.to_string());
            if is_tc_handle(handle) && !v.contains(&p) {
                v.push(p);
            }
        }
    }
    v
}

/// [`filter_command`] plus `tc filter show dev D parent H` for every `(D, H)` of `parents`
/// (`### dev D parent H` markers) and the clsact egress hook of the devices in `clsact`
/// (`### dev D clsact-egress`).
pub fn filter_command_with(
    devs: &[String],
    parents: &[(String, String)],
    clsact: &[String],
) -> String {
    let mut parts: Vec<String> = Vec::new();
    for d in devs.iter().filter(|d| is_dev_name(d)) {
        for (dir, extra) in [("egress", ""), ("ingress", " ingress")] {
            parts.push(format!(
                "echo '### dev {d} {dir}'; tc filter show dev {d}{extra} 2>/dev/null"
            ));
        }
        if clsact.contains(d) {
            parts.push(format!(
                "echo '### dev {d} clsact-egress'; tc filter show dev {d} egress 2>/dev/null"
            ));
        }
        for (_, h) in parents.iter().filter(|(pd, h)| pd == d && is_tc_handle(h)) {
            parts.push(format!(
                "echo '### dev {d} parent {h}'; tc filter show dev {d} parent {h} 2>/dev/null"
            ));
        }
    }
    parts.join("; ")
}

/// Splits the output of [`filter_command_with`] and parses each section, setting the
/// device, and the parent where tc leaves it out (it does when the parent was asked for):
/// the handle of a `parent H` section, `ingress` for the ingress hook (ingress qdisc or
/// clsact), `egress` for clsact's egress hook.
/// A filter listed twice (a qdisc handle that is also the root) is kept once.
pub fn parse_filter_sections(text: &str) -> (Vec<crate::model::TcFilter>, Vec<String>) {
    let mut filters: Vec<crate::model::TcFilter> = Vec::new();
    let mut why = Vec::new();
    let mut cur: Option<(String, Option<String>)> = None;
    let mut body = String::new();
    let mut flush = |sec: &Option<(String, Option<String>)>, body: &mut String| {
        if let Some((d, parent)) = sec {
            if !body.trim().is_empty() {
                match parse(body, InputFormat::TcFilter) {
                    Ok(rs) => {
                        for mut f in rs.filters {
                            if f.dev.is_none() {
                                f.dev = Some(d.clone());
                            }
                            if f.parent.is_empty() {
                                if let Some(p) = parent {
                                    f.set_parent(p);
                                }
                            }
                            if !filters.iter().any(|o| o.dev == f.dev && o.text == f.text) {
                                filters.push(f);
                            }
                        }
                    }
                    Err(e) => why.push(format!("tc filter show dev {d}: not understood: {e}")),
                }
            }
        }
        body.clear();
    };
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("### dev ") {
            flush(&cur, &mut body);
            let mut t = rest.split_whitespace();
            let dev = t.next().map(str::to_string);
            let parent = match (t.next(), t.next()) {
                (Some("parent"), Some(h)) => Some(h.to_string()),
                (Some("ingress"), _) => Some("ingress".to_string()),
                (Some("clsact-egress"), _) => Some("egress".to_string()),
                _ => None,
            };
            cur = dev.map(|d| (d, parent));
        } else {
            body.push_str(l);
            body.push('\n');
        }
    }
    flush(&cur, &mut body);
    (filters, why)
}

fn source(target: &str, label: &str, fmt: InputFormat, out: &str) -> SourceInfo {
    SourceInfo {
        path: format!("{target}: {label}"),
        format: fmt.as_str().to_string(),
        sha256: cloud_provider::artifact::sha256_hex(out.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::io::Write;

    /// A fake run-command target: runs the scripts' semantics on a fixed dump, optionally
    /// cutting each output to its last `cap` bytes (Azure's behaviour) or changing the dump
    /// after the first run.
    struct Fake {
        dump: RefCell<String>,
        after_first: Option<String>,
        cap: usize,
        runs: RefCell<usize>,
    }

    fn encode(text: &str) -> String {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap())
    }

    impl Exec for Fake {
        fn describe(&self) -> String {
            "fake".into()
        }
        fn capped(&self) -> bool {
            true
        }
        fn run(&self, command: &str, _: &str) -> Result<CmdOutput, ExecFailure> {
            *self.runs.borrow_mut() += 1;
            let b = encode(&self.dump.borrow());
            if let Some(n) = &self.after_first {
                *self.dump.borrow_mut() = n.clone();
            }
            let spec = command.rsplit("cut -c ").next().unwrap();
            let (a, z) = spec.split_once('-').unwrap();
            let (a, z): (usize, usize) = (a.parse().unwrap(), z.parse().unwrap());
            let piece = &b[(a - 1).min(b.len())..z.min(b.len())];
            let out = if command.starts_with("command -v") {
                format!(
                    "{} {}\n{piece}\n",
                    b.len(),
                    cloud_provider::artifact::sha256_hex(b.as_bytes()),
                )
            } else {
                format!("{piece}\n")
            };
            let cut = out.len().saturating_sub(self.cap);
            Ok(CmdOutput {
                stdout: out[cut..].to_string(),
                stderr: String::new(),
                exit_code: Some(0),
                truncated: false,
            })
        }
    }

    fn big_dump(n: usize) -> String {
        let mut s = String::from("*filter\n:INPUT ACCEPT [0:0]\n");
        for i in 0..n {
            s.push_str(&format!(
                "-A INPUT -s 198.18.{}.{}/32 -p tcp -m tcp --dport {} -j DROP\n",
                i / 250,
                i % 250,
                1000 + i
            ));
        }
        s.push_str("COMMIT\n");
        s
    }

    #[test]
    fn chunked_fetch_reassembles_a_large_dump() {
        let dump = big_dump(3000);
        let f = Fake {
            dump: RefCell::new(dump.clone()),
            after_first: None,
            cap: 4096,
            runs: RefCell::new(0),
        };
        let got = chunked_fetch(&f, "iptables-save", ChunkOptions::default()).unwrap();
        assert_eq!(got.text, dump);
        assert!(got.chunks > 2, "{} chunks", got.chunks);
        assert_eq!(got.chunks, *f.runs.borrow());
    }

    #[test]
    fn chunks_cut_by_the_cap_are_detected() {
        let f = Fake {
            dump: RefCell::new(big_dump(3000)),
            after_first: None,
            cap: 4096,
            runs: RefCell::new(0),
        };
        // 5000-character chunks: the cap keeps only the last 4096 bytes of each.
        let e = chunked_fetch(
            &f,
            "iptables-save",
            ChunkOptions {
                chunk: 5000,
                max_chunks: 400,
            },
        )
        .unwrap_err();
        let FetchError::Fatal(e) = e else {
            panic!("not fatal")
        };
        let m = e.to_string();
        assert!(m.contains("arrived incomplete"), "{m}");
    }

    #[test]
    fn a_dump_that_changes_between_chunks_is_refused() {
        let f = Fake {
            dump: RefCell::new(big_dump(3000)),
            after_first: Some(big_dump(2999)),
            cap: 4096,
            runs: RefCell::new(0),
        };
        let e = chunked_fetch(&f, "iptables-save", ChunkOptions::default()).unwrap_err();
        let FetchError::Fatal(e) = e else {
            panic!("not fatal")
        };
        let m = e.to_string();
        assert!(
            m.contains("compressed bytes arrived") || m.contains("SHA-256"),
            "{m}"
        );
    }

    #[test]
    fn too_many_chunks_is_an_error_not_a_partial_dump() {
        let f = Fake {
            dump: RefCell::new(big_dump(3000)),
            after_first: None,
            cap: 4096,
            runs: RefCell::new(0),
        };
        let e = chunked_fetch(
            &f,
            "iptables-save",
            ChunkOptions {
                chunk: 3000,
                max_chunks: 2,
            },
        )
        .unwrap_err();
        assert!(matches!(
            e,
            FetchError::Fatal(RetrieveError::Truncated { .. })
        ));
        assert_eq!(*f.runs.borrow(), 1);
    }

    #[test]
    fn verify_rejects_a_lost_tail_and_a_wrong_digest() {
        let b = encode("*filter\nCOMMIT\n");
        let sha = cloud_provider::artifact::sha256_hex(b.as_bytes());
        assert_eq!(
            verify_and_decode(&b, b.len(), &sha, 1).unwrap(),
            "*filter\nCOMMIT\n"
        );
        let e = verify_and_decode(&b[..b.len() - 4], b.len(), &sha, 1).unwrap_err();
        assert!(e.contains("4 lost"), "{e}");
        let e = verify_and_decode(&b, b.len(), &"0".repeat(64), 1).unwrap_err();
        assert!(e.contains("SHA-256"), "{e}");
        // Right length and digest of garbage: still refused by base64/gzip.
        let g = "A".repeat(12);
        let gs = cloud_provider::artifact::sha256_hex(g.as_bytes());
        assert!(verify_and_decode(&g, 12, &gs, 1).is_err());
    }

    #[test]
    fn scripts_have_the_expected_shape() {
        let h = header_script("iptables-save", 3000);
        assert!(h.starts_with("command -v iptables-save "));
        assert!(h.contains("\niptables-save >/dev/null || exit $?\n"));
        let h = header_script("tc -j qdisc show | sed x", 3000);
        assert!(
            h.contains("\ntc -j qdisc show >/dev/null || exit $?\n"),
            "{h}"
        );
        let h = header_script("echo a; tc filter show dev lo", 3000);
        assert!(!h.contains("exit $?"), "{h}");
        assert!(h.contains("gzip -n -c | base64 -w0"));
        assert!(h.contains("sha256sum"));
        assert!(h.ends_with("cut -c 1-3000"));
        assert_eq!(
            chunk_script("x", 3001, 6000),
            "(\nx\n) | gzip -n -c | base64 -w0 | cut -c 3001-6000"
        );
        let n = normalise_command("iptables-save", InputFormat::IptablesSave);
        assert!(n.starts_with("iptables-save | sed -E 's/^(# (Generated by .*|Completed)) on"));
    }

    #[test]
    fn link_names_and_probe() {
        let t = "1: lo: <LOOPBACK,UP> mtu 65536\n2: eth0@if7: <BROADCAST> mtu 1500\n3: bad;name: <X>\nnoise\n";
        assert_eq!(parse_link_names(t), vec!["lo", "eth0"]);
        assert_eq!(
            parse_probe(
                "iptables v1.8.7 (nf_tables)\nValue: /usr/sbin/iptables-nft\n10-flannel.conflist\n"
            ),
            vec!["iptables-nft", "cni"]
        );
        assert_eq!(
            parse_probe("iptables v1.8.7 (legacy)\n"),
            vec!["iptables-legacy"]
        );
    }

    #[test]
    fn filters_below_a_class_are_listed_with_their_parent() {
        // Recorded by tests/fixtures/record.sh (section 8).
        let classes = parse_class_sections(include_str!("../tests/fixtures/tc_class_sections.txt"));
        assert_eq!(
            classes,
            vec![
                ("eth0".to_string(), "1:10".to_string()),
                ("eth0".to_string(), "1:1".to_string())
            ]
        );
        let devs = vec!["eth0".to_string(), "eth1".to_string()];
        let cmd = filter_command_with(&devs, &classes, &["eth1".to_string()]);
        assert!(
            cmd.contains(
                "echo '### dev eth0 parent 1:1'; tc filter show dev eth0 parent 1:1 2>/dev/null"
            ),
            "{cmd}"
        );
        assert!(cmd.contains("tc filter show dev eth1 egress"), "{cmd}");
        assert!(!cmd.contains("tc filter show dev eth0 egress"), "{cmd}");
        let (f, why) =
            parse_filter_sections(include_str!("../tests/fixtures/tc_filter_sections.txt"));
        assert!(why.is_empty(), "{why:?}");
        let texts: Vec<String> = f
            .iter()
            .map(|x| format!("{} {}", x.dev.as_deref().unwrap_or("?"), x.text))
            .collect();
        assert_eq!(
            texts,
            vec![
                "eth0 parent 1: protocol ip pref 2 u32 flowid 1:1 match 00000050/0000ffff at 20",
                "eth0 parent 1:1 protocol ip pref 1 u32 flowid 1:10 match 00000016/0000ffff at 20",
                "eth1 parent ingress protocol ip pref 1 u32 flowid 1:2 match 00160000/ffff0000 at 20",
            ]
        );
        assert_eq!(f[1].parent, "1:1");
        assert!(f[1].exempts_ssh && f[2].exempts_ssh);
        // The root qdisc's handle listed as a parent too gives the same filter: kept once.
        let twice = "### dev eth0 egress\nfilter parent 1: protocol ip pref 2 u32 chain 0 fh 801::800 order 2048 key ht 801 bkt 0 *flowid 1:1\n### dev eth0 parent 1:\nfilter protocol ip pref 2 u32 chain 0 fh 801::800 order 2048 key ht 801 bkt 0 *flowid 1:1\n";
        assert_eq!(parse_filter_sections(twice).0.len(), 1);
        // Hostile handles and names never reach a command line.
        assert!(!is_tc_handle("1:1; reboot") && !is_tc_handle("x:") && is_tc_handle("ffff:fff1"));
        let bad = parse_class_sections(
            "### dev eth0\nclass htb $(id) root\n### dev a;b\nclass htb 1:2 root\n",
        );
        assert!(bad.is_empty(), "{bad:?}");
        // A child qdisc below a class has its own filters; root and clsact are listed by name.
        let text = format!(
            "{}qdisc tbf 10: dev nfiv1 parent 1:10 rate 1Mbit burst 4Kb lat 50ms\n",
            include_str!("../tests/fixtures/tc_qdisc_show.txt")
        );
        let qd = crate::tc::parse_qdisc_text(&text).unwrap().qdiscs;
        assert_eq!(
            filter_parents(&qd),
            vec![("nfiv1".to_string(), "10:".to_string())]
        );
    }

    #[test]
    fn filter_sections_get_their_device() {
        let cmd = filter_command(&["eth0".to_string()]);
        assert!(cmd.contains("tc filter show dev eth0 ingress"));
        let text = format!(
            "### dev eth0 egress\n{}### dev eth0 ingress\n",
            include_str!("../tests/fixtures/tc_filter_show.txt")
        );
        let (f, why) = parse_filter_sections(&text);
        assert!(why.is_empty(), "{why:?}");
        assert!(!f.is_empty());
        assert!(f.iter().all(|x| x.dev.as_deref() == Some("eth0")));
    }
}
