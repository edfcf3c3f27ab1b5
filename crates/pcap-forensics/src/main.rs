//! `pcap-forensics`: thin CLI over the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use clap::{Args, Parser, Subcommand};

use pcap_forensics::analysis::{analyze_file, AnalysisOptions};
use pcap_forensics::compare::{compare, Mode};
use pcap_forensics::error::PcapError;
use pcap_forensics::narrator::{narrate, Narrative};
use pcap_forensics::semantic::{semantic_json, Meta};
use pcap_forensics::{
    artifact, has_actionable_findings, report, stem_of, write_report, write_semantic,
};

const EXAMPLES: &str = "Examples:
  pcap-forensics analyze capture.pcap
  pcap-forensics analyze capture.pcapng --json --top 5 > semantic.json
  pcap-forensics analyze capture.pcap --semantic-dir out --report-dir out
  pcap-forensics compare sender.pcap receiver.pcap --mode endpoint
  pcap-forensics capture.pcap --compare after.pcap      (reference-style)
  pcap-forensics analyze capture.pcap --config config.env   (AUDIT_DIR, LLM_* from the file)
  LLM_PROVIDER=anthropic LLM_MODEL=... LLM_API_KEY=... pcap-forensics analyze capture.pcap --narrate

Exit codes: 0 clean, 1 finding of severity medium or above (or a significant comparison),
2 usage error, 3 runtime failure (unreadable file), 4 integrity failure.
SOURCE_DATE_EPOCH fixes created_at/session_id for reproducible artifacts.";

#[derive(Parser, Debug)]
#[command(name = "pcap-forensics", version, about = "Native, streaming packet-capture forensics with evidence", after_help = EXAMPLES, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Reference-style invocation: the capture to analyse.
    file: Option<PathBuf>,
    /// Reference-style: compare FILE with this capture (temporal mode unless --mode).
    #[arg(long)]
    compare: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// KEY=VALUE config file (demo/sample_config.env); this tool reads AUDIT_DIR and the
    /// LLM_* keys. Flags beat environment variables, which beat the file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Default directory of every artifact (default: AUDIT_DIR, else ./audit).
    #[arg(long, global = true, value_name = "D")]
    audit_dir: Option<PathBuf>,
    /// Print the result document as JSON on stdout and nothing else.
    #[arg(long, global = true)]
    json: bool,
    /// Directory for <stem>_semantic.json (default: the audit directory).
    #[arg(long, global = true, value_name = "D")]
    semantic_dir: Option<PathBuf>,
    /// Directory for the Markdown reports and comparisons (default: the audit directory).
    #[arg(long, global = true, value_name = "D")]
    report_dir: Option<PathBuf>,
    /// Items per top-N list in the JSON and report.
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    top: u16,
    /// DNS answers slower than this (ms) count as slow.
    #[arg(long, global = true, default_value_t = 500.0)]
    dns_slow_ms: f64,
    /// Add an LLM narrative to the report (LLM_PROVIDER, LLM_MODEL, LLM_API_KEY,
    /// LLM_BASE_URL from the environment or --config). The analysis and the JSON never
    /// depend on it; without a provider the report says why there is no narrative.
    #[arg(long, global = true)]
    narrate: bool,
    /// Comparison mode.
    #[arg(long, global = true, value_enum, default_value = "temporal")]
    mode: Mode,
    /// More logging on stderr (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Analyse one capture: semantic JSON + Markdown report.
    Analyze { file: PathBuf },
    /// Compare two captures (temporal: before/after; endpoint: sender/receiver).
    Compare { a: PathBuf, b: PathBuf },
    /// Verify an artifact against its .sha256 sidecar.
    Verify { artifact: PathBuf },
}

/// Configuration: the process environment over the `--config` file, read with
/// cloud-provider's shared loader when built with the `config` feature (the default).
mod settings {
    use std::path::Path;

    pub struct Settings {
        #[cfg(feature = "config")]
        inner: cloud_provider::config::Settings,
    }

    impl Settings {
        /// Loads the file (if any); warnings about unknown keys go to the log.
        pub fn load(path: Option<&Path>) -> Result<Settings, String> {
            #[cfg(feature = "config")]
            {
                cloud_provider::config::Settings::load(path)
                    .map(|inner| Settings { inner })
                    .map_err(|e| format!("{e}; fix the --config file"))
            }
            #[cfg(not(feature = "config"))]
            {
                match path {
                    Some(p) => Err(format!(
                        "--config {} needs a build with the `config` feature (on by default); \
                         set AUDIT_DIR in the environment or pass --audit-dir instead",
                        p.display()
                    )),
                    None => Ok(Settings {}),
                }
            }
        }

        /// The value of `key`: the environment variable if set and non-empty, else the file.
        pub fn get(&self, key: &str) -> Option<String> {
            #[cfg(feature = "config")]
            {
                self.inner.get(key)
            }
            #[cfg(not(feature = "config"))]
            {
                std::env::var(key).ok().filter(|v| !v.is_empty())
            }
        }
    }
}

use settings::Settings;

/// Where artifacts go: `--semantic-dir`/`--report-dir`, else `--audit-dir`, else AUDIT_DIR
/// (environment, then the config file), else `./audit`.
struct Dirs {
    semantic: PathBuf,
    report: PathBuf,
}

fn dirs(c: &Common, s: &Settings) -> Dirs {
    let audit = c
        .audit_dir
        .clone()
        .or_else(|| s.get("AUDIT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("audit"));
    Dirs {
        semantic: c.semantic_dir.clone().unwrap_or_else(|| audit.clone()),
        report: c.report_dir.clone().unwrap_or(audit),
    }
}

fn init_logging(c: &Common) {
    let level = if c.quiet {
        "error"
    } else {
        match c.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let no_color = std::env::var_os("NO_COLOR").is_some() || !std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(!no_color)
        .try_init();
}

fn now() -> chrono::DateTime<Utc> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now)
}

fn opts(c: &Common) -> AnalysisOptions {
    AnalysisOptions {
        top_n: usize::from(c.top),
        dns_slow_ms: if c.dns_slow_ms.is_finite() && c.dns_slow_ms > 0.0 {
            c.dns_slow_ms
        } else {
            500.0
        },
    }
}

fn load(path: &Path, c: &Common) -> Result<pcap_forensics::Analysis, PcapError> {
    let o = opts(c);
    let tty = std::io::stderr().is_terminal() && !c.quiet && !c.json;
    if tty {
        let mut cb = |pk: u64, by: u64| {
            eprint!(
                "\r{}: {pk} packets, {:.1} MB read",
                path.display(),
                by as f64 / 1e6
            );
        };
        let r = analyze_file(path, &o, Some(&mut cb));
        eprint!("\r\x1b[2K");
        r
    } else {
        analyze_file(path, &o, None)
    }
}

/// The narrative for `--narrate`: the provider named by the `LLM_*` keys. Every failure is
/// one sentence on stderr and a reason in the report, never an error of the run.
#[cfg(feature = "llm")]
fn narrative_for(s: &Settings, sem: &serde_json::Value) -> Narrative {
    use cloud_provider::llm::{provider_from_lookup, HttpSettings};
    use pcap_forensics::narrator::llm::LlmNarrator;
    match provider_from_lookup(|k| s.get(k), HttpSettings::default()) {
        Ok(None) => {
            eprintln!("pcap-forensics: no narrative: LLM_PROVIDER is not set; set LLM_PROVIDER, LLM_MODEL and LLM_API_KEY in the environment or the --config file");
            Narrative::Unavailable {
                reason: "set LLM_PROVIDER, LLM_MODEL and LLM_API_KEY to narrate".into(),
            }
        }
        Err(e) => {
            eprintln!("pcap-forensics: no narrative: {e}");
            Narrative::Unavailable {
                reason: e.to_string(),
            }
        }
        Ok(Some(provider)) => {
            let n = LlmNarrator::new(provider);
            tracing::info!(
                "narrating with {} ({})",
                pcap_forensics::narrator::Narrator::name(&n),
                n.model()
            );
            let out = narrate(Some(&n), sem);
            if let Narrative::Failed { provider, error } = &out {
                eprintln!("pcap-forensics: the narrative failed ({provider}: {error}); the report is complete without it");
            }
            out
        }
    }
}

#[cfg(not(feature = "llm"))]
fn narrative_for(_s: &Settings, _sem: &serde_json::Value) -> Narrative {
    eprintln!("pcap-forensics: no narrative: this build has no LLM narrator (rebuild with the `llm` feature, on by default)");
    Narrative::Unavailable {
        reason: "this build has no LLM narrator (cargo feature `llm`)".into(),
    }
}

fn code_for(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<PcapError>() {
        Some(PcapError::Integrity { .. }) => 4,
        _ => 3,
    }
}

fn run_analyze(file: &Path, c: &Common, s: &Settings) -> anyhow::Result<u8> {
    let a = load(file, c)?;
    for w in &a.warnings {
        tracing::warn!("{w}");
    }
    let o = opts(c);
    let meta = Meta::at(now());
    let sem = semantic_json(&a, &o, &meta);
    let narrative = if c.narrate {
        narrative_for(s, &sem)
    } else {
        narrate(None, &sem)
    };
    let md = report::markdown(&a, &sem, &meta, &narrative);
    let stem = stem_of(file);
    let d = dirs(c, s);
    let sp = write_semantic(&d.semantic, &stem, &sem)?;
    let rp = write_report(&d.report, &stem, &md)?;
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&sem).context("serialising the semantic JSON")?
        );
    } else {
        println!(
            "{}: {} packets, {} findings",
            a.file,
            a.stats.packets,
            a.findings.len()
        );
        for f in a.findings.iter().take(usize::from(c.top)) {
            println!(
                "  {} [{}] {} — {}",
                f.id,
                f.severity.as_str(),
                f.title,
                f.measured
            );
        }
        println!("semantic JSON: {}", sp.display());
        println!("report:        {}", rp.display());
        match &narrative {
            Narrative::NotRequested if c.verbose > 0 => println!("narrative:     not requested"),
            Narrative::NotRequested => {}
            Narrative::Unavailable { .. } => println!("narrative:     not available"),
            Narrative::Text { provider, .. } => {
                println!("narrative:     by {provider} (in the report)")
            }
            Narrative::Failed { provider, .. } => println!("narrative:     failed ({provider})"),
        }
    }
    Ok(u8::from(has_actionable_findings(&a)))
}

fn run_compare(fa: &Path, fb: &Path, c: &Common, s: &Settings) -> anyhow::Result<u8> {
    let a = load(fa, c)?;
    let b = load(fb, c)?;
    let meta = Meta::at(now());
    let cmp = compare(&a, &b, c.mode, usize::from(c.top), &meta);
    let stem = format!("{}_vs_{}", stem_of(fa), stem_of(fb));
    let dir = dirs(c, s).report;
    let jp = dir.join(format!("{stem}_comparison.json"));
    let mp = dir.join(format!("{stem}_comparison.md"));
    let mut text = serde_json::to_string_pretty(&cmp.json).context("serialising the comparison")?;
    text.push('\n');
    artifact::write_with_sidecar(&jp, text.as_bytes())?;
    artifact::write_with_sidecar(&mp, cmp.markdown.as_bytes())?;
    if c.json {
        print!("{text}");
    } else {
        println!("verdict: {}", cmp.json["verdict"].as_str().unwrap_or(""));
        println!("comparison: {}", mp.display());
        println!("json:       {}", jp.display());
    }
    Ok(u8::from(cmp.significant))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.common);
    let c = &cli.common;
    let s = match Settings::load(c.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match (&cli.cmd, &cli.file) {
        (Some(Cmd::Analyze { file }), _) => run_analyze(file, c, &s),
        (Some(Cmd::Compare { a, b }), _) => run_compare(a, b, c, &s),
        (Some(Cmd::Verify { artifact: p }), _) => artifact::read_verified(p)
            .map(|_| {
                if !c.json {
                    println!("{}: OK", p.display());
                }
                0
            })
            .map_err(anyhow::Error::from),
        (None, Some(file)) => match &cli.compare {
            Some(b) => run_compare(file, b, c, &s),
            None => run_analyze(file, c, &s),
        },
        (None, None) => {
            eprintln!("error: no capture given; run `pcap-forensics analyze FILE` (see --help)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(code_for(&e))
        }
    }
}
