//! `effective-network-inspector`: thin CLI over the library.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cloud_provider::artifact::LocalStore;
use cloud_provider::azure::AzureCli;
use cloud_provider::config::{Environment, FlagOverrides, Settings};
use cloud_provider::session::SessionId;
use safety_shell::approve::{AllRiskyApprover, NeverApprover, PolicyApprover, TerminalApprover};
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

use effective_network_inspector::live::{LiveSource, DEFAULT_WORKERS};
use effective_network_inspector::net::Addr;
use effective_network_inspector::nsg::{Direction, FinalVerdict, Flow, NicNsgs, Proto};
use effective_network_inspector::route::RouteTable;
use effective_network_inspector::snapshot::Snapshot;
use effective_network_inspector::source::{EffectiveStateSource, FileSource, NicFiles, Scope};
use effective_network_inspector::state::{nsgs_from_json, routes_from_json, NicState};
use effective_network_inspector::trace::{trace, TraceRequest, TraceResult};
use effective_network_inspector::{store, EniError};

const EXAMPLES: &str = "Examples (offline: saved `az network nic show-effective-route-table` and
`az network nic list-effective-nsg` JSON, either envelope):
  effective-network-inspector route --routes-file routes.json --dst-ip 10.1.2.3
  effective-network-inspector route --routes-file routes.json --audit --json
  effective-network-inspector nsg --nsg-file nsg.json --direction inbound \\
      --src-ip 10.0.1.4 --dst-ip 10.0.2.5 --port 443 --proto tcp
  effective-network-inspector nsg --nsg-file nsg.json --audit
  effective-network-inspector snapshot --nic web-nic:web-routes.json:web-nsg.json \\
      --nic db-nic:db-routes.json:db-nsg.json --nic-ip web-nic=10.0.1.4 \\
      --nic-ip db-nic=10.0.2.5 --is-baseline --session-id eni_base
  effective-network-inspector snapshot --nic ... --compare-baseline eni_base
  effective-network-inspector compare --compare-baseline eni_base --current eni_now
  effective-network-inspector trace --from-snapshot eni_base --from-nic web-nic \\
      --to 10.0.2.5 --port 5432 --proto tcp

Live (az through the safety-shell gate; AZ_PATH may point at netlab's az front end):
  effective-network-inspector --config config.env --approve never snapshot \\
      --scope vm --vm-name web-vm --resource-group rg-net --is-baseline --session-id eni_base
  effective-network-inspector --approve never compare --compare-baseline eni_base \\
      --scope vm --vm-name web-vm --resource-group rg-net
  effective-network-inspector --approve never snapshot --scope vnet --vnet-id \\
      /subscriptions/SUB/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet1 \\
      --search-group rg-app
  effective-network-inspector --approve never route --vm-name web-vm -g rg-net --dst-ip 10.1.2.3
  effective-network-inspector --approve never nsg --vm-name db-vm -g rg-net --direction inbound \\
      --src-ip 10.0.1.4 --dst-ip 10.0.2.5 --port 5432
  effective-network-inspector --approve never trace --from-vm web-vm --to-vm db-vm -g rg-net \\
      --to 10.0.2.5 --port 5432 --proto tcp

Exit codes: 0 clean (WINNER, ALLOW, REACHABLE, no drift); 1 finding (NO_ROUTE, BLACKHOLE,
unexpected tie, dead NVA, DENY, INDETERMINATE, BLOCKED, drift, audit findings); 2 usage;
3 runtime or malformed input; 4 integrity failure (an artifact's .sha256 does not match);
3 also when az fails or prints malformed output; 5 an operator or policy denied a gated call.";

#[derive(Parser, Debug)]
#[command(
    name = "effective-network-inspector",
    version,
    about = "Effective routes and NSG rules of Azure NICs: verdicts, audits, traces and verified drift",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Print the result artifact as JSON on stdout and nothing else.
    #[arg(long, global = true)]
    json: bool,
    /// Directory of artifacts and gate audit logs (default AUDIT_DIR, else ./audit).
    #[arg(long, global = true, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// KEY=VALUE config file (demo/sample_config.env keys); flags beat environment beat file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Decide gated az calls without a prompt, never reading stdin (an az outside the system
    /// directories, such as a netlab wrapper, makes every call RISKY).
    #[arg(long, global = true, value_enum, conflicts_with = "approve_policy")]
    approve: Option<ApproveArg>,
    /// Decide gated az calls with a policy file (see demo/approve_policy_demo.toml).
    #[arg(long, global = true, value_name = "FILE")]
    approve_policy: Option<PathBuf>,
    /// Session id for the artifacts written ([A-Za-z0-9_-]{1,64}); generated when absent.
    #[arg(long, global = true, value_name = "ID")]
    session_id: Option<String>,
    /// More logging on stderr (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Live scope: every NIC of a VM (--vm-name), one NIC (--nic-name) or a VNet (--vnet-id).
    #[arg(long, global = true, value_enum)]
    scope: Option<ScopeArg>,
    /// Live: the VM (vm scope; route, nsg).
    #[arg(long, global = true, value_name = "NAME")]
    vm_name: Option<String>,
    /// Live: resource group of the VM or NIC (default RESOURCE_GROUP).
    #[arg(short = 'g', long, global = true, value_name = "RG")]
    resource_group: Option<String>,
    /// Live: subscription (default SUBSCRIPTION_ID, else az's current one).
    #[arg(long, global = true, value_name = "ID")]
    subscription_id: Option<String>,
    /// Live: the VNet's resource id (vnet scope).
    #[arg(long, global = true, value_name = "ID")]
    vnet_id: Option<String>,
    /// Live, vnet scope: another resource group holding NICs of the VNet (repeatable).
    #[arg(long, global = true, value_name = "RG")]
    search_group: Vec<String>,
    /// Live: NICs read at once.
    #[arg(long, global = true, default_value_t = DEFAULT_WORKERS as u16, value_parser = clap::value_parser!(u16).range(1..=32))]
    workers: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ApproveArg {
    /// Deny every risky command (read-only use).
    Never,
    /// Approve every risky command (FORBIDDEN ones stay refused).
    AllRisky,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScopeArg {
    /// Every NIC of the VM named by --vm-name.
    Vm,
    /// The NIC named by --nic-name.
    Nic,
    /// Every NIC of the VNet named by --vnet-id.
    Vnet,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Which route wins for a destination (or --audit the table); writes rt_<id>_verdict.json.
    Route(RouteArgs),
    /// Dual-gate NSG verdict for a flow (or --audit); writes nsg_<id>_verdict.json / _audit.json.
    Nsg(NsgArgs),
    /// Snapshot NICs' effective state (saved files or live); writes eni_<id>_snapshot.json.
    Snapshot(SnapshotArgs),
    /// Diff a baseline with a stored snapshot (--current) or a live one taken now; exit 1 on drift.
    Compare(CompareArgs),
    /// Trace a flow through a snapshot or live state: source NSGs, route, destination NSGs.
    Trace(TraceArgs),
}

#[derive(Args, Debug)]
struct StateInput {
    /// A stored snapshot id to read the NIC from (with --nic-name).
    #[arg(long, value_name = "ID")]
    from_snapshot: Option<String>,
    /// The NIC inside the snapshot.
    #[arg(long, value_name = "NAME")]
    nic_name: Option<String>,
}

#[derive(Args, Debug)]
struct RouteArgs {
    /// Saved `az network nic show-effective-route-table` JSON.
    #[arg(long, value_name = "FILE")]
    routes_file: Option<PathBuf>,
    #[command(flatten)]
    input: StateInput,
    /// Destination address (IPv4 or IPv6).
    #[arg(long, value_name = "IP", required_unless_present = "audit")]
    dst_ip: Option<String>,
    /// An address known to answer (repeatable): NVA next hops are checked against these.
    #[arg(long, value_name = "IP")]
    live_address: Vec<String>,
    /// Audit the whole table instead of one destination.
    #[arg(long)]
    audit: bool,
}

#[derive(Args, Debug)]
struct NsgArgs {
    /// Saved `az network nic list-effective-nsg` JSON.
    #[arg(long, value_name = "FILE")]
    nsg_file: Option<PathBuf>,
    #[command(flatten)]
    input: StateInput,
    /// Flow direction relative to the NIC.
    #[arg(long, value_enum, required_unless_present = "audit")]
    direction: Option<Direction>,
    /// Source address.
    #[arg(long, value_name = "IP", required_unless_present = "audit")]
    src_ip: Option<String>,
    /// Destination address.
    #[arg(long, value_name = "IP", required_unless_present = "audit")]
    dst_ip: Option<String>,
    /// Destination port (TCP/UDP).
    #[arg(long)]
    port: Option<u16>,
    /// Source port (rules rarely restrict it; unknown makes such rules indeterminate).
    #[arg(long)]
    src_port: Option<u16>,
    /// Protocol.
    #[arg(long, value_enum, default_value = "tcp")]
    proto: Proto,
    /// Audit the NSGs instead of one flow.
    #[arg(long)]
    audit: bool,
}

#[derive(Args, Debug)]
struct SnapshotArgs {
    /// A NIC as NAME:ROUTES_FILE:NSG_FILE (repeatable).
    #[arg(long, value_name = "NAME:ROUTES:NSG")]
    nic: Vec<String>,
    /// Single-NIC form: the NIC name (with --routes-file and --nsg-file; live: --scope nic).
    #[arg(long, value_name = "NAME")]
    nic_name: Option<String>,
    /// Single-NIC form: saved effective routes.
    #[arg(long, value_name = "FILE", requires = "nic_name")]
    routes_file: Option<PathBuf>,
    /// Single-NIC form: saved effective NSGs.
    #[arg(long, value_name = "FILE", requires = "nic_name")]
    nsg_file: Option<PathBuf>,
    /// A NIC's private address as NAME=IP (repeatable; `trace` needs them).
    #[arg(long, value_name = "NAME=IP")]
    nic_ip: Vec<String>,
    /// Mark the snapshot as a baseline.
    #[arg(long)]
    is_baseline: bool,
    /// After saving, diff against this baseline snapshot id (exit 1 on drift).
    #[arg(long, value_name = "ID")]
    compare_baseline: Option<String>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The baseline snapshot id.
    #[arg(long, visible_alias = "baseline", value_name = "ID")]
    compare_baseline: String,
    /// The current snapshot id (without it, a live snapshot of the scope is taken and stored).
    #[arg(long, value_name = "ID")]
    current: Option<String>,
}

#[derive(Args, Debug)]
struct TraceArgs {
    /// The snapshot id (offline).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "from_vm",
        conflicts_with = "from_vm"
    )]
    from_snapshot: Option<String>,
    /// Live: the source VM (its NICs are read now and stored as a snapshot).
    #[arg(long, value_name = "NAME")]
    from_vm: Option<String>,
    /// Live: the destination VM, read with the source (or use --scope vnet --vnet-id).
    #[arg(long, value_name = "NAME", requires = "from_vm")]
    to_vm: Option<String>,
    /// The source NIC (default: the source VM's or snapshot's only NIC).
    #[arg(long, value_name = "NAME")]
    from_nic: Option<String>,
    /// Destination address.
    #[arg(long, value_name = "IP")]
    to: String,
    /// Destination port.
    #[arg(long)]
    port: Option<u16>,
    /// Source port, when known.
    #[arg(long)]
    src_port: Option<u16>,
    /// Protocol.
    #[arg(long, value_enum, default_value = "tcp")]
    proto: Proto,
    /// Source address (default: the source NIC's first address of the destination's family).
    #[arg(long, value_name = "IP")]
    src_ip: Option<String>,
    /// Look the destination NIC up in this snapshot instead (e.g. another VNet's snapshot).
    #[arg(long, value_name = "ID")]
    to_snapshot: Option<String>,
    /// An address known to answer (repeatable).
    #[arg(long, value_name = "IP")]
    live_address: Vec<String>,
}

fn now() -> DateTime<Utc> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| Utc.timestamp_opt(s, 0).single())
        .unwrap_or_else(Utc::now)
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(EniError::Usage(msg.into()))
}

fn addr(s: &str, flag: &str) -> anyhow::Result<Addr> {
    s.parse::<Addr>()
        .map_err(|e| usage(format!("{flag}: {e}; give an IPv4 or IPv6 address")))
}

fn sid(s: &str) -> anyhow::Result<SessionId> {
    SessionId::parse(s).map_err(|e| usage(e.to_string()))
}

fn live_set(v: &[String]) -> anyhow::Result<Option<HashSet<IpAddr>>> {
    if v.is_empty() {
        return Ok(None);
    }
    let mut s = HashSet::new();
    for a in v {
        s.insert(addr(a, "--live-address")?.to_ip());
    }
    Ok(Some(s))
}

fn read_file(p: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(p)
        .map_err(|e| usage(format!("cannot read {}: {e}; check the path", p.display())))
}

/// The JSON spelling of an enum value (`DENY`, `NSG_DENY_NIC_INBOUND`, `bgp_route_change`).
fn jname<T: serde::Serialize>(t: &T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => String::new(),
    }
}

/// Writes one document to stdout; a closed pipe (`| head`) is not an error.
fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match writeln!(o, "{text}").and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

struct Ctx {
    common: Common,
    store: LocalStore,
    /// The resolved configuration (live commands and --config).
    env: Option<Environment>,
}

/// Whether the common flags ask for live retrieval.
fn is_live(c: &Common) -> bool {
    c.scope.is_some() || c.vm_name.is_some() || c.vnet_id.is_some()
}

fn resolve_env(c: &Common) -> anyhow::Result<Environment> {
    let settings = Settings::load(c.config.as_deref()).map_err(|e| usage(e.to_string()))?;
    let mut f = FlagOverrides::default();
    f.set("RESOURCE_GROUP", c.resource_group.clone());
    f.set("SUBSCRIPTION_ID", c.subscription_id.clone());
    f.set(
        "AUDIT_DIR",
        c.audit_dir.as_ref().map(|p| p.display().to_string()),
    );
    Environment::resolve(&settings, &f).map_err(|e| usage(format!("{e}; fix the flag or config")))
}

/// The live scope the flags name; `nic_name` is the command's --nic-name.
fn live_scope(c: &Common, nic_name: Option<&str>) -> anyhow::Result<Scope> {
    let need = |v: Option<&str>, flag: &str, scope: &str| {
        v.map(str::to_string)
            .ok_or_else(|| usage(format!("--scope {scope} needs {flag}")))
    };
    let scope = match c.scope {
        Some(ScopeArg::Vm) => ScopeArg::Vm,
        Some(ScopeArg::Nic) => ScopeArg::Nic,
        Some(ScopeArg::Vnet) => ScopeArg::Vnet,
        None if c.vm_name.is_some() => ScopeArg::Vm,
        None if c.vnet_id.is_some() => ScopeArg::Vnet,
        None => {
            return Err(usage(
                "live retrieval needs --scope vm|nic|vnet (or --vm-name / --vnet-id)",
            ))
        }
    };
    Ok(match scope {
        ScopeArg::Vm => Scope::Vm(need(c.vm_name.as_deref(), "--vm-name", "vm")?),
        ScopeArg::Nic => Scope::Nic(need(nic_name, "--nic-name", "nic")?),
        ScopeArg::Vnet => Scope::Vnet(need(c.vnet_id.as_deref(), "--vnet-id", "vnet")?),
    })
}

/// Picks one NIC: the named one, or the only one.
fn pick_nic(nics: Vec<NicState>, name: Option<&str>) -> anyhow::Result<NicState> {
    let names = || {
        nics.iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => match nics.iter().position(|x| x.name == n) {
            Some(i) => Ok(nics.into_iter().nth(i).unwrap_or_else(|| unreachable!())),
            None => Err(usage(format!(
                "NIC {n} is not in the scope (it has: {}); pass one of those to --nic-name",
                names()
            ))),
        },
        None if nics.len() == 1 => Ok(nics.into_iter().next().unwrap_or_else(|| unreachable!())),
        None => Err(usage(format!(
            "the scope holds several NICs ({}); pick one with --nic-name",
            names()
        ))),
    }
}

impl Ctx {
    /// A live source whose gated calls are audited under `session`.
    fn live(&self, session: &SessionId) -> anyhow::Result<LiveSource> {
        let env = match &self.env {
            Some(e) => e.clone(),
            None => resolve_env(&self.common)?,
        };
        std::fs::create_dir_all(&env.audit_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the audit directory {}: {e}; check --audit-dir",
                env.audit_dir.display()
            )
        })?;
        let audit = AuditLog::open_in_dir(&env.audit_dir, session.as_str()).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the gate audit log in {}: {e}; check --audit-dir",
                env.audit_dir.display()
            )
        })?;
        let builder = Gate::builder(audit).timeout(std::time::Duration::from_secs(300));
        let c = &self.common;
        let gate = match (c.approve, &c.approve_policy) {
            (Some(ApproveArg::Never), _) => builder.approver(NeverApprover).build(),
            (Some(ApproveArg::AllRisky), _) => builder.approver(AllRiskyApprover).build(),
            (None, Some(p)) => builder
                .approver(PolicyApprover::load(p).map_err(|e| usage(e.to_string()))?)
                .build(),
            (None, None) => builder
                .approver(
                    TerminalApprover::open(std::time::Duration::from_secs(120)).map_err(|e| {
                        usage(format!(
                            "{e}; pass --approve never|all-risky or --approve-policy FILE"
                        ))
                    })?,
                )
                .build(),
        };
        let az = AzureCli::from_environment(std::sync::Arc::new(gate), &env);
        Ok(
            LiveSource::new(std::sync::Arc::new(az), env.resource_group.clone())
                .with_workers(usize::from(c.workers))
                .with_search_groups(c.search_group.clone()),
        )
    }

    /// One NIC read live from the scope the flags name.
    fn live_nic(
        &self,
        nic_name: Option<&str>,
        prefix: &str,
        kind: &str,
    ) -> anyhow::Result<NicState> {
        let scope = live_scope(&self.common, nic_name)?;
        let src = self.live(&self.session(prefix, kind)?)?;
        pick_nic(src.collect(&scope)?, nic_name)
    }

    fn session(&self, prefix: &str, kind: &str) -> anyhow::Result<SessionId> {
        match &self.common.session_id {
            Some(s) => sid(s),
            None => Ok(store::new_session(&self.store, prefix, kind, now())?),
        }
    }

    fn emit<T: serde::Serialize>(
        &self,
        artifact: &T,
        name: &str,
        human: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        let text = if self.common.json {
            serde_json::to_string_pretty(artifact)?
        } else {
            format!(
                "{}\nartifact: {}",
                human(),
                self.store.dir().join(name).display()
            )
        };
        out(&text)
    }

    fn nic_from_snapshot(&self, input: &StateInput) -> anyhow::Result<Option<NicState>> {
        let Some(id) = &input.from_snapshot else {
            return Ok(None);
        };
        let (snap, _) = store::load_snapshot(&self.store, &sid(id)?)?;
        let name = match (&input.nic_name, snap.nics.len()) {
            (Some(n), _) => n.clone(),
            (None, 1) => snap.nics[0].name.clone(),
            (None, _) => {
                return Err(usage(format!(
                    "snapshot {id} holds several NICs; pick one with --nic-name"
                )))
            }
        };
        let nic = snap
            .nic(&name)
            .cloned()
            .ok_or_else(|| usage(format!("NIC {name} is not in snapshot {id}")))?;
        Ok(Some(nic))
    }
}

fn run_route(ctx: &Ctx, a: &RouteArgs) -> anyhow::Result<u8> {
    let live = is_live(&ctx.common);
    if live && (a.routes_file.is_some() || a.input.from_snapshot.is_some()) {
        return Err(usage(
            "live flags (--scope, --vm-name, --vnet-id) cannot be combined with --routes-file or --from-snapshot",
        ));
    }
    let routes = match (&a.routes_file, ctx.nic_from_snapshot(&a.input)?) {
        _ if live => {
            ctx.live_nic(a.input.nic_name.as_deref(), "rt", "verdict")?
                .routes
        }
        (Some(f), None) => {
            routes_from_json(&read_file(f)?).with_context(|| format!("{}", f.display()))?
        }
        (None, Some(nic)) => nic.routes,
        _ => {
            return Err(usage(
                "give exactly one of --routes-file or --from-snapshot (with --nic-name)",
            ))
        }
    };
    let table = RouteTable::new(&routes)?;
    if a.audit {
        let audit = table.audit();
        let finding = audit.is_finding();
        let id = ctx.session("rt", "audit")?;
        let (stored, art) = store::put(&ctx.store, &id, "audit", audit, now())?;
        ctx.emit(&art, &stored.name, || {
            let a = &art.body;
            let mut s = format!(
                "{} routes; {} invalid, {} blackholes, {} to virtual appliances, {} BGP",
                a.route_count,
                a.invalid_routes.len(),
                a.blackholes.len(),
                a.nva_routes.len(),
                a.bgp_routes.len()
            );
            for d in &a.default_routes {
                s.push_str(&format!(
                    "\ndefault route {}: {}",
                    d.prefix,
                    d.winner
                        .as_ref()
                        .map(|w| format!("{} via {}", w.source, w.next_hop_type))
                        .unwrap_or_else(|| "none active".into())
                ));
            }
            s
        })?;
        return Ok(u8::from(finding));
    }
    let dst = addr(a.dst_ip.as_deref().unwrap_or_default(), "--dst-ip")?;
    let live = live_set(&a.live_address)?;
    let v = table.explain(dst, live.as_ref());
    let finding = v.is_finding();
    let id = ctx.session("rt", "verdict")?;
    let (stored, art) = store::put(&ctx.store, &id, "verdict", v, now())?;
    ctx.emit(&art, &stored.name, || {
        let v = &art.body;
        let mut s = format!(
            "{}: {}",
            v.destination,
            serde_json::to_value(v.result)
                .unwrap_or_default()
                .as_str()
                .unwrap_or("")
        );
        if let Some(w) = &v.winning_route {
            s.push_str(&format!(
                " {} ({}{}) via {}{} [{}]",
                w.prefix,
                w.source,
                w.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default(),
                w.next_hop_type,
                w.next_hop_ip
                    .as_ref()
                    .map(|i| format!(" {i}"))
                    .unwrap_or_default(),
                serde_json::to_value(v.selection_reason)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("")
            ));
        }
        for t in &v.tied_routes {
            s.push_str(&format!(
                "\n  tied: {} via {} {:?}",
                t.prefix, t.next_hop_type, t.next_hop_ips
            ));
        }
        for x in &v.shadowed_candidates {
            s.push_str(&format!(
                "\n  shadowed: {} ({}) via {}: {}",
                x.route.prefix, x.route.source, x.route.next_hop_type, x.reason
            ));
        }
        for an in &v.anomalies {
            s.push_str(&format!("\n  anomaly {}: {}", jname(&an.kind), an.message));
        }
        s
    })?;
    Ok(u8::from(finding))
}

fn run_nsg(ctx: &Ctx, a: &NsgArgs) -> anyhow::Result<u8> {
    let live = is_live(&ctx.common);
    if live && (a.nsg_file.is_some() || a.input.from_snapshot.is_some()) {
        return Err(usage(
            "live flags (--scope, --vm-name, --vnet-id) cannot be combined with --nsg-file or --from-snapshot",
        ));
    }
    let entries = match (&a.nsg_file, ctx.nic_from_snapshot(&a.input)?) {
        _ if live => {
            ctx.live_nic(a.input.nic_name.as_deref(), "nsg", "verdict")?
                .nsgs
        }
        (Some(f), None) => {
            nsgs_from_json(&read_file(f)?).with_context(|| format!("{}", f.display()))?
        }
        (None, Some(nic)) => nic.nsgs,
        _ => {
            return Err(usage(
                "give exactly one of --nsg-file or --from-snapshot (with --nic-name)",
            ))
        }
    };
    let nsgs = NicNsgs::new(&entries)?;
    if a.audit {
        let audit = nsgs.audit();
        let finding = !audit.findings.is_empty();
        let id = ctx.session("nsg", "audit")?;
        let (stored, art) = store::put(&ctx.store, &id, "audit", audit, now())?;
        ctx.emit(&art, &stored.name, || {
            let mut s = format!(
                "NSGs: {}; gates without NSG: {}; {} findings",
                art.body.nsgs.join(", "),
                art.body
                    .gates_without_nsg
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                art.body.findings.len()
            );
            for f in &art.body.findings {
                s.push_str(&format!("\n  {}: {}", jname(&f.kind), f.message));
            }
            s
        })?;
        return Ok(u8::from(finding));
    }
    let (Some(direction), Some(src), Some(dst)) = (a.direction, &a.src_ip, &a.dst_ip) else {
        return Err(usage("a verdict needs --direction, --src-ip and --dst-ip"));
    };
    let flow = Flow {
        direction,
        src: addr(src, "--src-ip")?,
        dst: addr(dst, "--dst-ip")?,
        src_port: a.src_port,
        dst_port: a.port,
        proto: a.proto,
    };
    if flow.proto.has_ports() && flow.dst_port.is_none() {
        return Err(usage(format!("--port is required for {}", flow.proto)));
    }
    let v = nsgs.evaluate(&flow);
    let code = u8::from(v.final_verdict != FinalVerdict::Allow);
    let id = ctx.session("nsg", "verdict")?;
    let (stored, art) = store::put(&ctx.store, &id, "verdict", v, now())?;
    ctx.emit(&art, &stored.name, || {
        let v = &art.body;
        let gate = |g: &effective_network_inspector::nsg::GateReport| {
            format!(
                "{} gate ({}): {}{}",
                g.gate.as_str(),
                g.nsg.as_deref().unwrap_or("no NSG"),
                jname(&g.verdict),
                g.skip_reason
                    .as_ref()
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default()
            )
        };
        format!(
            "{}: {}\n  1. {}\n  2. {}",
            serde_json::to_value(v.final_verdict)
                .unwrap_or_default()
                .as_str()
                .unwrap_or(""),
            v.reason,
            gate(&v.gate1),
            gate(&v.gate2)
        )
    })?;
    Ok(code)
}

fn parse_nic_specs(a: &SnapshotArgs) -> anyhow::Result<FileSource> {
    let mut ips: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for spec in &a.nic_ip {
        let (n, ip) = spec
            .split_once('=')
            .ok_or_else(|| usage(format!("--nic-ip {spec:?}: use NAME=IP")))?;
        addr(ip, "--nic-ip")?;
        ips.entry(n.to_string()).or_default().push(ip.to_string());
    }
    let mut src = FileSource::default();
    for spec in &a.nic {
        let parts: Vec<&str> = spec.splitn(3, ':').collect();
        let [name, routes, nsg] = parts[..] else {
            return Err(usage(format!(
                "--nic {spec:?}: use NAME:ROUTES_FILE:NSG_FILE"
            )));
        };
        if name.is_empty() || routes.is_empty() || nsg.is_empty() {
            return Err(usage(format!(
                "--nic {spec:?}: use NAME:ROUTES_FILE:NSG_FILE"
            )));
        }
        src.nics.push(NicFiles {
            name: name.to_string(),
            routes_file: routes.into(),
            nsg_file: nsg.into(),
            ip_addresses: Vec::new(),
        });
    }
    if let (Some(n), Some(r), Some(g)) = (&a.nic_name, &a.routes_file, &a.nsg_file) {
        src.nics.push(NicFiles {
            name: n.clone(),
            routes_file: r.clone(),
            nsg_file: g.clone(),
            ip_addresses: Vec::new(),
        });
    }
    if src.nics.is_empty() {
        return Err(usage(
            "name at least one NIC: --nic NAME:ROUTES:NSG, or --nic-name with --routes-file and --nsg-file",
        ));
    }
    let mut seen = HashSet::new();
    for n in &mut src.nics {
        if !seen.insert(n.name.clone()) {
            return Err(usage(format!("NIC {} is given twice", n.name)));
        }
        n.ip_addresses = ips.remove(&n.name).unwrap_or_default();
    }
    if let Some(name) = ips.keys().next() {
        return Err(usage(format!(
            "--nic-ip names {name}, which no --nic gives"
        )));
    }
    Ok(src)
}

fn run_snapshot(ctx: &Ctx, a: &SnapshotArgs) -> anyhow::Result<u8> {
    let baseline = a.compare_baseline.as_deref().map(sid).transpose()?;
    let id = ctx.session("eni", "snapshot")?;
    if is_live(&ctx.common) {
        if !a.nic.is_empty()
            || a.routes_file.is_some()
            || a.nsg_file.is_some()
            || !a.nic_ip.is_empty()
        {
            return Err(usage(
                "live flags (--scope, --vm-name, --vnet-id) cannot be combined with --nic, --routes-file, --nsg-file or --nic-ip",
            ));
        }
        let scope = live_scope(&ctx.common, a.nic_name.as_deref())?;
        check_baseline(ctx, baseline.as_ref(), &id)?;
        let src = ctx.live(&id)?;
        let nics = src.collect(&scope)?;
        return store_snapshot(ctx, &src.describe(), a.is_baseline, nics, baseline, id);
    }
    if a.nic_name.is_some() && (a.routes_file.is_none() || a.nsg_file.is_none()) {
        return Err(usage(
            "--nic-name needs --routes-file and --nsg-file (or --scope nic for live retrieval)",
        ));
    }
    let src = parse_nic_specs(a)?;
    check_baseline(ctx, baseline.as_ref(), &id)?;
    let nics = src.collect(&Scope::All)?;
    store_snapshot(ctx, &src.describe(), a.is_baseline, nics, baseline, id)
}

/// Refuses a self-comparison and verifies the baseline before anything is read or written.
fn check_baseline(ctx: &Ctx, baseline: Option<&SessionId>, id: &SessionId) -> anyhow::Result<()> {
    if baseline == Some(id) {
        return Err(usage(format!(
            "refusing to compare snapshot {id} with itself; pass a different --session-id or baseline"
        )));
    }
    if let Some(b) = baseline {
        store::load_snapshot(&ctx.store, b)?;
    }
    Ok(())
}

fn store_snapshot(
    ctx: &Ctx,
    source: &str,
    is_baseline: bool,
    nics: Vec<NicState>,
    baseline: Option<SessionId>,
    id: SessionId,
) -> anyhow::Result<u8> {
    let snap = Snapshot::new(source, is_baseline, nics);
    let (stored, art) = store::put(&ctx.store, &id, "snapshot", snap, now())?;
    let Some(b) = baseline else {
        ctx.emit(&art, &stored.name, || {
            format!(
                "snapshot {id}: {} NICs, {} routes, {} NSGs (sha256 {})",
                art.body.nics.len(),
                art.body.nics.iter().map(|n| n.routes.len()).sum::<usize>(),
                art.body.nics.iter().map(|n| n.nsgs.len()).sum::<usize>(),
                stored.sha256
            )
        })?;
        return Ok(0);
    };
    let (dstored, dart) = store::compare(&ctx.store, &b, &id, now())?;
    if !ctx.common.json {
        out(&format!("snapshot {id} stored as {}", stored.name))?;
    }
    emit_diff(ctx, &dart, &dstored.name)
}

fn emit_diff(
    ctx: &Ctx,
    dart: &cloud_provider::artifact::Artifact<effective_network_inspector::snapshot::Diff>,
    name: &str,
) -> anyhow::Result<u8> {
    let drift = dart.body.drift_detected;
    ctx.emit(dart, name, || {
        let d = &dart.body;
        let mut s = format!(
            "drift_detected: {} (baseline {} sha256 {}, current {} sha256 {})",
            d.drift_detected,
            d.baseline.session_id,
            d.baseline.sha256,
            d.current.session_id,
            d.current.sha256
        );
        for n in &d.nics {
            s.push_str(&format!("\n{} ({})", n.nic, jname(&n.status)));
            for c in &n.changes {
                s.push_str(&format!(
                    "\n  {} {} {} {}",
                    jname(&c.category),
                    jname(&c.change),
                    c.item,
                    c.key
                ));
            }
        }
        s
    })?;
    Ok(u8::from(drift))
}

fn run_compare(ctx: &Ctx, a: &CompareArgs) -> anyhow::Result<u8> {
    let baseline = sid(&a.compare_baseline)?;
    let current = match &a.current {
        Some(c) if is_live(&ctx.common) => {
            return Err(usage(format!(
                "--current {c} and live flags (--scope, --vm-name, --vnet-id) exclude each other; drop one"
            )))
        }
        Some(c) => sid(c)?,
        None if is_live(&ctx.common) => {
            let id = ctx.session("eni", "snapshot")?;
            let scope = live_scope(&ctx.common, None)?;
            check_baseline(ctx, Some(&baseline), &id)?;
            let src = ctx.live(&id)?;
            let nics = src.collect(&scope)?;
            return store_snapshot(ctx, &src.describe(), false, nics, Some(baseline), id);
        }
        None => {
            return Err(usage(
                "give --current ID (a stored snapshot) or a live scope (--scope vm --vm-name X, --scope vnet --vnet-id ID)",
            ))
        }
    };
    let (stored, art) = store::compare(&ctx.store, &baseline, &current, now())?;
    emit_diff(ctx, &art, &stored.name)
}

/// Reads the source VM (and the destination VM or the VNet) live and stores the snapshot.
fn live_trace_snapshot(ctx: &Ctx, a: &TraceArgs, vm: &str) -> anyhow::Result<(Snapshot, String)> {
    let id = ctx.session("eni", "snapshot")?;
    let src = ctx.live(&id)?;
    let mut nics = src.collect(&Scope::Vm(vm.to_string()))?;
    let source_nics: Vec<String> = nics.iter().map(|n| n.name.clone()).collect();
    let extra = match (&a.to_vm, &ctx.common.vnet_id) {
        (Some(v), _) => Some(Scope::Vm(v.clone())),
        (None, Some(v)) => Some(Scope::Vnet(v.clone())),
        (None, None) => None,
    };
    if let Some(scope) = extra {
        for n in src.collect(&scope)? {
            if !nics.iter().any(|x| x.name == n.name) {
                nics.push(n);
            }
        }
    }
    let from_nic = match &a.from_nic {
        Some(n) if source_nics.contains(n) => n.clone(),
        Some(n) => {
            return Err(usage(format!(
                "NIC {n} is not a NIC of VM {vm} (it has: {}); pass one of those to --from-nic",
                source_nics.join(", ")
            )))
        }
        None if source_nics.len() == 1 => source_nics[0].clone(),
        None => {
            return Err(usage(format!(
                "VM {vm} has several NICs ({}); pick one with --from-nic",
                source_nics.join(", ")
            )))
        }
    };
    let snap = Snapshot::new(&src.describe(), false, nics);
    let (stored, _) = store::put(&ctx.store, &id, "snapshot", snap.clone(), now())?;
    tracing::info!(snapshot = %stored.name, "live state stored");
    Ok((snap, from_nic))
}

fn run_trace(ctx: &Ctx, a: &TraceArgs) -> anyhow::Result<u8> {
    let (snap, from_nic) = match (&a.from_snapshot, &a.from_vm) {
        (Some(id), None) => {
            let (snap, _) = store::load_snapshot(&ctx.store, &sid(id)?)?;
            let from_nic = match (&a.from_nic, snap.nics.len()) {
                (Some(n), _) => n.clone(),
                (None, 1) => snap.nics[0].name.clone(),
                (None, _) => {
                    return Err(usage(format!(
                        "snapshot {id} holds several NICs; pick the source with --from-nic"
                    )))
                }
            };
            (snap, from_nic)
        }
        (None, Some(vm)) => live_trace_snapshot(ctx, a, vm)?,
        _ => return Err(usage("give exactly one of --from-snapshot or --from-vm")),
    };
    let dest = match &a.to_snapshot {
        Some(id) => Some(store::load_snapshot(&ctx.store, &sid(id)?)?.0),
        None => None,
    };
    let req = TraceRequest {
        from_nic,
        src_ip: a
            .src_ip
            .as_deref()
            .map(|s| addr(s, "--src-ip"))
            .transpose()?,
        to: addr(&a.to, "--to")?,
        port: a.port,
        src_port: a.src_port,
        proto: a.proto,
    };
    if req.proto.has_ports() && req.port.is_none() {
        return Err(usage(format!("--port is required for {}", req.proto)));
    }
    let live = live_set(&a.live_address)?;
    let t = trace(&snap, dest.as_ref(), &req, live.as_ref())?;
    let code = u8::from(t.result != TraceResult::Reachable);
    let id = ctx.session("eni", "trace")?;
    let (stored, art) = store::put(&ctx.store, &id, "trace", t, now())?;
    ctx.emit(&art, &stored.name, || {
        let t = &art.body;
        let mut s = format!(
            "{}: {} {} -> {}{} {}",
            jname(&t.result),
            t.from_nic,
            t.src_ip,
            t.destination,
            t.port.map(|p| format!(":{p}")).unwrap_or_default(),
            t.proto
        );
        for h in &t.hops {
            s.push_str(&format!(
                "\n  {}. {} [{}]: {}",
                h.step, h.stage, h.component, h.verdict
            ));
        }
        if let Some(b) = &t.blocking {
            s.push_str(&format!(
                "\n  stopped at {}: {} — {}",
                b.component,
                jname(&b.code),
                b.reason
            ));
        }
        for n in &t.notes {
            s.push_str(&format!("\n  note: {n}"));
        }
        s
    })?;
    Ok(code)
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let c = &cli.common;
    let wants_env = is_live(c)
        || c.config.is_some()
        || matches!(&cli.cmd, Cmd::Trace(t) if t.from_vm.is_some());
    let env = if wants_env {
        Some(resolve_env(c)?)
    } else {
        None
    };
    let audit_dir = match (&env, &c.audit_dir) {
        (Some(e), _) => e.audit_dir.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => PathBuf::from("./audit"),
    };
    let ctx = Ctx {
        store: LocalStore::new(&audit_dir),
        common: c.clone(),
        env,
    };
    match &cli.cmd {
        Cmd::Route(a) => run_route(&ctx, a),
        Cmd::Nsg(a) => run_nsg(&ctx, a),
        Cmd::Snapshot(a) => run_snapshot(&ctx, a),
        Cmd::Compare(a) => run_compare(&ctx, a),
        Cmd::Trace(a) => run_trace(&ctx, a),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = if cli.common.quiet {
        "error"
    } else {
        match cli.common.verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_ansi(false)
        .try_init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e
                .downcast_ref::<EniError>()
                .map(|x| x.exit_code())
                .or_else(|| {
                    e.chain()
                        .find_map(|c| c.downcast_ref::<EniError>())
                        .map(|x| x.exit_code())
                })
                .unwrap_or(3);
            eprintln!("error: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}
