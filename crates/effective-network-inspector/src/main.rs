//! `effective-network-inspector`: thin CLI over the library.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use clap::{Args, Parser, Subcommand};
use cloud_provider::artifact::LocalStore;
use cloud_provider::session::SessionId;

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

Exit codes: 0 clean (WINNER, ALLOW, REACHABLE, no drift); 1 finding (NO_ROUTE, BLACKHOLE,
unexpected tie, dead NVA, DENY, INDETERMINATE, BLOCKED, drift, audit findings); 2 usage;
3 runtime or malformed input; 4 integrity failure (an artifact's .sha256 does not match).
Live retrieval (--scope, --vm-name, --resource-group, --subscription-id, --vnet-id) is not
available yet.";

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
    /// Directory of artifacts.
    #[arg(long, global = true, default_value = "./audit", value_name = "DIR")]
    audit_dir: PathBuf,
    /// Session id for the artifacts written ([A-Za-z0-9_-]{1,64}); generated when absent.
    #[arg(long, global = true, value_name = "ID")]
    session_id: Option<String>,
    /// More logging on stderr (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Live scope (vm, nic, vnet): not available yet.
    #[arg(long, global = true, hide_short_help = true)]
    scope: Option<String>,
    /// Live: VM name (not available yet).
    #[arg(long, global = true, hide_short_help = true)]
    vm_name: Option<String>,
    /// Live: resource group (not available yet).
    #[arg(long, global = true, hide_short_help = true)]
    resource_group: Option<String>,
    /// Live: subscription id (not available yet).
    #[arg(long, global = true, hide_short_help = true)]
    subscription_id: Option<String>,
    /// Live: VNet id (not available yet).
    #[arg(long, global = true, hide_short_help = true)]
    vnet_id: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Which route wins for a destination (or --audit the table); writes rt_<id>_verdict.json.
    Route(RouteArgs),
    /// Dual-gate NSG verdict for a flow (or --audit); writes nsg_<id>_verdict.json / _audit.json.
    Nsg(NsgArgs),
    /// Snapshot NICs' effective state from saved files; writes eni_<id>_snapshot.json.
    Snapshot(SnapshotArgs),
    /// Diff two stored snapshots; writes eni_<current>_diff.json; exit 1 on drift.
    Compare(CompareArgs),
    /// Trace a flow through a snapshot: source NSGs, route, destination NSGs.
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
    /// Single-NIC form: the NIC name (with --routes-file and --nsg-file).
    #[arg(long, value_name = "NAME", requires_all = ["routes_file", "nsg_file"])]
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
    /// The current snapshot id.
    #[arg(long, value_name = "ID")]
    current: String,
}

#[derive(Args, Debug)]
struct TraceArgs {
    /// The snapshot id.
    #[arg(long, value_name = "ID")]
    from_snapshot: String,
    /// The source NIC.
    #[arg(long, value_name = "NAME")]
    from_nic: String,
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
}

impl Ctx {
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
    let routes = match (&a.routes_file, ctx.nic_from_snapshot(&a.input)?) {
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
    let entries = match (&a.nsg_file, ctx.nic_from_snapshot(&a.input)?) {
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
    let src = parse_nic_specs(a)?;
    let baseline = a.compare_baseline.as_deref().map(sid).transpose()?;
    let nics = src.collect(&Scope::All)?;
    let snap = Snapshot::new(&src.describe(), a.is_baseline, nics);
    let id = ctx.session("eni", "snapshot")?;
    if baseline.as_ref() == Some(&id) {
        return Err(usage(format!(
            "refusing to compare snapshot {id} with itself; pass a different --session-id or baseline"
        )));
    }
    if let Some(b) = &baseline {
        // Verify the baseline before writing anything.
        store::load_snapshot(&ctx.store, b)?;
    }
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
    let (stored, art) = store::compare(
        &ctx.store,
        &sid(&a.compare_baseline)?,
        &sid(&a.current)?,
        now(),
    )?;
    emit_diff(ctx, &art, &stored.name)
}

fn run_trace(ctx: &Ctx, a: &TraceArgs) -> anyhow::Result<u8> {
    let (snap, _) = store::load_snapshot(&ctx.store, &sid(&a.from_snapshot)?)?;
    let dest = match &a.to_snapshot {
        Some(id) => Some(store::load_snapshot(&ctx.store, &sid(id)?)?.0),
        None => None,
    };
    let req = TraceRequest {
        from_nic: a.from_nic.clone(),
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
    let live: Vec<&str> = [
        ("--scope", c.scope.is_some()),
        ("--vm-name", c.vm_name.is_some()),
        ("--resource-group", c.resource_group.is_some()),
        ("--subscription-id", c.subscription_id.is_some()),
        ("--vnet-id", c.vnet_id.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(n, _)| n)
    .collect();
    if !live.is_empty() {
        return Err(usage(format!(
            "{} need live retrieval through az, which is not available yet; save the az output and use --routes-file/--nsg-file or snapshot --nic",
            live.join(", ")
        )));
    }
    let ctx = Ctx {
        store: LocalStore::new(&c.audit_dir),
        common: c.clone(),
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
