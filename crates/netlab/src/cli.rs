//! The `netlab` command line (the binary is a thin wrapper around [`main_with_args`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::inject::Stage;
use crate::lab::{self, Lab, LabError};
use crate::scenario::Scenario;

const EXAMPLES: &str = "Examples:
  sudo netlab up demo/use_case_a/scenario.toml        # build the lab of scenario A
  sudo netlab status --json                           # VMs, processes, faults (mechanisms)
  sudo netlab exec dest-vm -- iptables -S             # run inside a VM (not subject to NSGs)
  sudo netlab ssh source-vm -- uptime                 # SSH through the fabric (subject to NSGs)
  sudo netlab inject demo/use_case_k/scenario.toml    # inject a scenario's faults
  sudo netlab inject dest-vm:loss=20%                 # or one fault inline
  sudo netlab inject source-vm:delay=100ms,jitter=5ms
  sudo netlab clear dest-vm:loss                      # clear it (or a fault id, or --all)
  eval \"$(sudo netlab env)\"                           # NETLAB_* exports; writes config.env
  sudo netlab inject dest-vm:wire_loss=20%            # loss on the wire (fabric), seen as retransmissions
  sudo netlab traffic start --all                     # the scenario's [[traffic]] generators
  sudo netlab traffic status --json                   # their counters (sent, ok, reset, timed out, …)
  sudo netlab traffic stop
  sudo netlab down                                    # remove everything the lab created
  sudo netlab down --all                              # also leftovers of crashed runs";

/// A local Azure-like lab on real Linux networking.
#[derive(Debug, Parser)]
#[command(name = "netlab", version, about, after_help = EXAMPLES)]
pub struct Cli {
    /// State directory holding one run directory per lab (default /run/netlab).
    #[arg(long, global = true, env = "NETLAB_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// More logging (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress lines on stderr (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build a lab from a scenario file.
    #[command(
        after_help = "Example:\n  sudo netlab up demo/use_case_a/scenario.toml --prefix demo"
    )]
    Up {
        /// Scenario file.
        file: PathBuf,
        /// Run id (1-8 lowercase letters/digits); names become nl<prefix>-…  Random if absent.
        #[arg(long)]
        prefix: Option<String>,
        /// Print the status as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a lab (everything it created).
    #[command(
        after_help = "Examples:\n  sudo netlab down\n  sudo netlab down --prefix demo\n  sudo netlab down --all\n  sudo netlab down --all --scope t   # only run ids starting with t"
    )]
    Down {
        /// The lab to remove (needed when several are up).
        #[arg(long, conflicts_with = "all")]
        prefix: Option<String>,
        /// Remove every lab in the state directory and leftovers named nl<id>-… .
        #[arg(long)]
        all: bool,
        /// With --all: only labs whose run id starts with SCOPE (state, leftovers, run
        /// directories), e.g. the run ids a test suite uses.
        #[arg(long, requires = "all", value_name = "SCOPE")]
        scope: Option<String>,
    },
    /// Show a lab: VMs, addresses, processes, active faults and their mechanisms.
    #[command(after_help = "Example:\n  sudo netlab status --json | jq .faults")]
    Status {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a VM namespace (like `az vm run-command`: not subject to NSGs).
    #[command(after_help = "Example:\n  sudo netlab exec dest-vm -- ss -ltn")]
    Exec {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// VM name.
        vm: String,
        /// Command and arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// SSH to a VM through the fabric (its lab public IP; subject to NSGs).
    #[command(
        after_help = "Example:\n  sudo netlab ssh source-vm -- iperf -c 198.18.1.5 -p 5001 -t 3"
    )]
    Ssh {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// VM name.
        vm: String,
        /// Remote command (interactive shell if absent).
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Inject faults: a scenario file's faults, or one inline fault VM:key=value[,…].
    #[command(
        after_help = "Inline keys: rate=5mbit loss=20% wire_loss=20% delay=100ms jitter=5ms corrupt=2% mtu=9000 listen=PORT stop=PORT seed=N\n\nExamples:\n  sudo netlab inject demo/use_case_j/scenario.toml\n  sudo netlab inject demo/use_case_r/scenario.toml --stage pre-baseline\n  sudo netlab inject source-vm:rate=5mbit"
    )]
    Inject {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// Scenario file or inline fault.
        what: String,
        /// Which faults of a scenario file.
        #[arg(long, value_enum, default_value = "all")]
        stage: Stage,
        /// Print the injected fault ids as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Clear faults: an id (f3), a VM (all its faults), VM:key (dest-vm:loss), `cloud`, or --all.
    #[command(
        after_help = "Examples:\n  sudo netlab clear f2\n  sudo netlab clear dest-vm:loss\n  sudo netlab clear --all"
    )]
    Clear {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// What to clear.
        #[arg(required_unless_present = "all")]
        fault: Option<String>,
        /// Clear every fault.
        #[arg(long)]
        all: bool,
    },
    /// Print shell exports for the lab and write/print its config.env.
    #[command(after_help = "Example:\n  eval \"$(sudo netlab env)\"; cat \"$NETLAB_CONFIG\"")]
    Env {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// Print only the config.env content.
        #[arg(long)]
        config: bool,
    },
    /// Answer `az` commands against the lab (the az-compatible control plane; see docs).
    #[command(
        after_help = "Examples:\n  netlab az network nsg list -g rg-netlab -o table\n  netlab az network nic list-effective-nsg -g rg-netlab -n dest-vmVMNic"
    )]
    Az {
        /// The lab.
        #[arg(long)]
        prefix: Option<String>,
        /// The az command line (`network nsg rule create -g … --nsg-name … …`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Workload traffic generators (a scenario's [[traffic]]): start, stop, status.
    #[command(
        after_help = "Examples:\n  sudo netlab traffic start --all\n  sudo netlab traffic start http-8080\n  sudo netlab traffic status --json\n  sudo netlab traffic stop"
    )]
    Traffic {
        /// The lab.
        #[arg(long, global = true)]
        prefix: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: TrafficCmd,
    },
    /// (internal) one workload traffic generator.
    #[command(name = "__traffic", hide = true)]
    TrafficGen(crate::traffic::TrafficArgs),
    /// (internal) the built-in TCP/HTTP server.
    #[command(name = "__serve", hide = true)]
    Serve(crate::serve::ServeArgs),
    /// (internal) the userspace delay/loss/corruption emulator.
    #[command(name = "__emulator", hide = true)]
    Emulator(crate::emulator::EmulatorArgs),
    /// (internal) the lab's blob service enforcing the storage firewall.
    #[command(name = "__blobd", hide = true)]
    Blobd(crate::blobd::BlobdArgs),
}

/// `netlab traffic` actions.
#[derive(Debug, Subcommand)]
pub enum TrafficCmd {
    /// Start generators: --all, or the named ones (already running ones are left alone).
    Start {
        /// Every generator the lab knows.
        #[arg(long, conflicts_with = "names")]
        all: bool,
        /// Generator names.
        #[arg(required_unless_present = "all")]
        names: Vec<String>,
    },
    /// Stop generators by pid (all of them, or the named ones).
    Stop {
        /// Generator names (all if none).
        names: Vec<String>,
    },
    /// Counters per generator: sent, ok, reset, timed out, failed, response times.
    Status {
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn state_dir(cli: &Cli) -> PathBuf {
    cli.state_dir.clone().unwrap_or_else(lab::default_state_dir)
}

/// Runs the CLI; returns the process exit code.
pub fn main_with_args() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    lab::set_quiet(cli.quiet);
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .try_init();
    match run(&cli) {
        Ok(code) => code,
        Err(LabError::Usage(m)) => {
            eprintln!("netlab: error: {m}");
            ExitCode::from(2)
        }
        Err(LabError::Runtime(m)) => {
            eprintln!("netlab: error: {m}");
            ExitCode::from(3)
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode, LabError> {
    let sd = state_dir(cli);
    match &cli.cmd {
        Cmd::Up { file, prefix, json } => {
            let sc = Scenario::load(file)?;
            let lab = lab::up(
                &sc,
                &lab::UpOptions {
                    run_id: prefix.clone(),
                    state_dir: sd,
                    scenario_file: Some(std::fs::canonicalize(file).unwrap_or(file.clone())),
                },
            )?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&lab::status_json(&lab)).unwrap_or_default()
                );
            } else {
                print!("{}", lab::status_text(&lab));
                println!("next: eval \"$(netlab env --prefix {})\"", lab.st.run);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { prefix, all, scope } => {
            if *all {
                if let Some(s) = scope {
                    lab::check_run_id(s)?;
                }
                let removed = lab::down_all(&sd, scope.as_deref())?;
                if removed.is_empty() {
                    println!("nothing to remove");
                }
                for r in removed {
                    println!("removed {r}");
                }
            } else {
                let l = Lab::find(&sd, prefix.as_deref())?;
                let t0 = std::time::Instant::now();
                lab::down(&l)?;
                lab::progress(&format!(
                    "lab {} removed in {:.2} s",
                    l.st.run,
                    t0.elapsed().as_secs_f64()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status { prefix, json } => {
            let l = Lab::find(&sd, prefix.as_deref())?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&lab::status_json(&l)).unwrap_or_default()
                );
            } else {
                print!("{}", lab::status_text(&l));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Exec { prefix, vm, cmd } => {
            let l = Lab::find(&sd, prefix.as_deref())?;
            let ns = l.vm(vm)?.ns.clone();
            let st = std::process::Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(cmd)
                .status()
                .map_err(|e| LabError::Runtime(format!("cannot run `ip netns exec {ns}`: {e}")))?;
            Ok(ExitCode::from(st.code().unwrap_or(3).clamp(0, 255) as u8))
        }
        Cmd::Ssh { prefix, vm, cmd } => {
            let l = Lab::find(&sd, prefix.as_deref())?;
            l.vm(vm)?;
            let cfg = l.run_dir().join("ssh").join("ssh_config");
            let st = std::process::Command::new("ssh")
                .arg("-F")
                .arg(&cfg)
                .arg(vm)
                .args(cmd)
                .status()
                .map_err(|e| {
                    LabError::Runtime(format!(
                        "cannot run ssh: {e}; install openssh-client (sudo scripts/setup.sh)"
                    ))
                })?;
            Ok(ExitCode::from(st.code().unwrap_or(3).clamp(0, 255) as u8))
        }
        Cmd::Inject {
            prefix,
            what,
            stage,
            json,
        } => {
            let mut l = Lab::find(&sd, prefix.as_deref())?;
            let path = std::path::Path::new(what);
            let ids = if path.is_file() {
                let sc = Scenario::load(path)?;
                l.inject_scenario(&sc, *stage)?
            } else if what.contains(':') {
                let f = crate::faults::parse_inline(what).map_err(LabError::Usage)?;
                l.inject_vm(&f)?
            } else {
                return Err(LabError::Usage(format!(
                    "`{what}` is neither a scenario file nor an inline fault like dest-vm:loss=20%"
                )));
            };
            if *json {
                println!("{}", serde_json::json!({"injected": ids}));
            } else {
                println!(
                    "injected: {}",
                    if ids.is_empty() {
                        "nothing".to_string()
                    } else {
                        ids.join(", ")
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Clear { prefix, fault, all } => {
            let mut l = Lab::find(&sd, prefix.as_deref())?;
            let ids = l.clear(if *all { None } else { fault.as_deref() })?;
            println!(
                "cleared: {}",
                if ids.is_empty() {
                    "nothing".to_string()
                } else {
                    ids.join(", ")
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Env { prefix, config } => {
            let l = Lab::find(&sd, prefix.as_deref())?;
            let p = lab::write_config_env(&l)?;
            if *config {
                print!("{}", lab::config_env(&l));
            } else {
                println!("export NETLAB_RUN={}", l.st.run);
                println!("export NETLAB_STATE_DIR={}", sd.display());
                println!("export NETLAB_CONFIG={}", p.display());
                println!(
                    "export NETLAB_SSH_CONFIG={}",
                    l.run_dir().join("ssh").join("ssh_config").display()
                );
                // write_config_env wrote the az wrapper there.
                let bin = l.run_dir().join("bin");
                println!("# `az` on this PATH answers from the lab (netlab az), never from Azure");
                println!("export PATH=\"{}:$PATH\"", bin.display());
                println!("# config.env ({}):", p.display());
                for line in lab::config_env(&l).lines() {
                    if line.starts_with('#') {
                        continue;
                    }
                    println!("# {line}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Az { prefix, args } => Ok(ExitCode::from(crate::az::main(
            &sd,
            prefix.as_deref(),
            args,
        ))),
        Cmd::Traffic { prefix, action } => {
            let mut l = Lab::find(&sd, prefix.as_deref())?;
            match action {
                TrafficCmd::Start { names, .. } => {
                    let started = l.traffic_start(names)?;
                    println!(
                        "started: {}",
                        if started.is_empty() {
                            "nothing (already running)".to_string()
                        } else {
                            started.join(", ")
                        }
                    );
                }
                TrafficCmd::Stop { names } => {
                    let stopped = l.traffic_stop(names)?;
                    println!(
                        "stopped: {}",
                        if stopped.is_empty() {
                            "nothing".to_string()
                        } else {
                            stopped.join(", ")
                        }
                    );
                }
                TrafficCmd::Status { json } => {
                    if *json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&l.traffic_status_json())
                                .unwrap_or_default()
                        );
                    } else {
                        print!("{}", l.traffic_status_text());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::TrafficGen(a) => {
            crate::traffic::run_traffic(a).map_err(|e| LabError::Runtime(format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve(a) => {
            crate::serve::run_serve(a).map_err(|e| LabError::Runtime(e.to_string()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Blobd(a) => {
            crate::blobd::run_blobd(a).map_err(|e| LabError::Runtime(format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Emulator(a) => {
            crate::emulator::run_emulator(a).map_err(|e| LabError::Runtime(format!("{e:#}")))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
