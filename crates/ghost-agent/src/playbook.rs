//! The deterministic brain (default when no LLM is configured).
//!
//! It follows the method of `docs/investigation-method.md`, recording every step's reason:
//!
//! 1. hypotheses per thread: for a symptom between the two VMs, one per layer and VM (NSG,
//!    route, OS firewall of each VM, traffic control of each VM); drift when baselines are
//!    given; exposure for a compliance question;
//! 2. measure (pipe-meter) when performance or connectivity between the VMs is in question;
//! 3. control plane: NSG verdicts in both directions for every port in question, the route
//!    verdict, a reachability trace;
//! 4. OS layer on BOTH VMs: firewall (with a packet check for each port) and traffic control;
//! 5. drift against the baselines given;
//! 6. packet capture only when the control plane is clean, connectivity fails and the OS
//!    layer did not explain it;
//! 7. resolve: each finding is attached to the thread it can explain (a port drop to the
//!    thread naming that port, an ICMP drop to the ping thread, shaping to performance
//!    threads); hypotheses with findings are confirmed, the others refuted with the
//!    inspection that showed them clean, or marked unverifiable with the reason;
//! 8. conclude (the rules in [`crate::rules`] accept or refuse).

use serde_json::{json, Value};

use crate::engine::{CallOutcome, Engine, COMPLETE_INVESTIGATION, MANAGE_HYPOTHESES};
use crate::model::{
    is_blocking_kind as is_blocking, is_degradation_kind as is_shaping, Aspect, CoverageState,
    Finding, HypothesisStatus, Layer, Protocol, Severity, SymptomKind, Thread,
};

/// How a playbook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybookOutcome {
    /// The conclusion was accepted.
    Concluded,
    /// The rules refused the conclusion (the reasons are in the state's `refusals`).
    Refused(Vec<String>),
    /// Ctrl-C: the state is saved for `resume`.
    Interrupted,
}

/// Options of a playbook run.
#[derive(Debug, Clone)]
pub struct PlaybookOptions {
    /// pipe-meter iterations per metric.
    pub iterations: u32,
    /// Seconds per throughput run.
    pub duration_secs: u32,
    /// Capture duration in seconds.
    pub capture_secs: u32,
    /// Pause between two checks of a capture task.
    pub poll_interval: std::time::Duration,
}

impl Default for PlaybookOptions {
    fn default() -> Self {
        PlaybookOptions {
            iterations: 2,
            duration_secs: 2,
            capture_secs: 12,
            poll_interval: std::time::Duration::from_secs(3),
        }
    }
}

fn cancelled(e: &Engine) -> bool {
    e.ctx.cancel.load(std::sync::atomic::Ordering::SeqCst)
}

/// A protocol and, for TCP/UDP, a port.
type Probe = (Protocol, Option<u16>);

/// The ports and protocols a thread is about (defaulting to the iperf port for a
/// performance complaint, since that is what the measurement uses).
fn thread_probes(t: &Thread) -> Vec<Probe> {
    let mut v = Vec::new();
    if t.complaint.protocol == Some(Protocol::Icmp) {
        v.push((Protocol::Icmp, None));
    }
    let proto = match t.complaint.protocol {
        Some(Protocol::Udp) => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    for p in &t.complaint.ports {
        v.push((proto, Some(*p)));
    }
    if v.is_empty() {
        // The internet is mostly HTTPS; between the VMs, the measurement's port.
        v.push((
            Protocol::Tcp,
            Some(if t.complaint.internet { 443 } else { 5001 }),
        ));
    }
    v
}

/// The complaint asks what the packets show (a capture, sender versus receiver).
fn asks_for_the_wire(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "sender and receiver",
        "both sides",
        "both ends",
        "on the wire",
        "packet capture",
        "capture",
        "what the wire",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// A complaint that everything is lost ("all internet lost", "nothing works", "total
/// loss"): a drop of one port cannot explain it.
fn complains_of_everything(t: &Thread) -> bool {
    let lower = t.complaint.text.to_ascii_lowercase();
    t.complaint.ports.is_empty()
        && t.complaint.kinds.iter().any(|k| k.is_connectivity())
        && lower
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '%')
            .any(|w| {
                matches!(
                    w,
                    "all" | "every" | "everything" | "total" | "entire" | "nothing" | "100%"
                )
            })
}

/// A thread about a path from the source VM: to the destination VM, or to the internet.
fn is_pair_thread(t: &Thread) -> bool {
    t.complaint.is_path()
}

/// A thread about the path between the two configured VMs.
fn is_vm_pair_thread(t: &Thread) -> bool {
    is_pair_thread(t) && !t.complaint.internet
}

/// A thread about reaching the internet from the source VM: only the source's side of
/// the path (its NSGs outbound, its routes, its OS layer) is in question.
fn is_internet_thread(t: &Thread) -> bool {
    is_pair_thread(t) && t.complaint.internet
}

/// The paths a finding is weighed against: the VM whose internet is in question, the
/// address standing for the internet, and the routes that won for the pair's destination
/// (None when no route lookup for it succeeded).
struct Paths<'a> {
    side: &'a str,
    internet: Option<&'a str>,
    source: &'a str,
    pair_routes: Option<Vec<String>>,
}

/// False when the finding is a route whose prefix does not cover `addr` (the route does not
/// carry that traffic); true otherwise, or when either is unknown.
fn route_covers(f: &Finding, addr: Option<&str>) -> bool {
    if f.layer != Layer::Route {
        return true;
    }
    use effective_network_inspector::net::{Addr, Prefix};
    match (attr_str(f, "prefix"), addr) {
        (Some(prefix), Some(addr)) => match (prefix.parse::<Prefix>(), addr.parse::<Addr>()) {
            (Ok(p), Ok(a)) => p.contains(a),
            _ => true,
        },
        _ => true,
    }
}

/// Whether a finding can concern an internet thread: it must be on the VM whose internet
/// is in question (or on no VM), and a route must cover the internet address.
fn concerns_internet(f: &Finding, paths: &Paths<'_>) -> bool {
    f.vm.as_deref().is_none_or(|v| v == paths.side) && route_covers(f, paths.internet)
}

/// Whether a finding can concern the path between the two VMs: a route of the source's NIC
/// must be the one that won for the destination (a default route to a dead appliance found
/// by the audit cuts the internet off, not the VNet, when a VNet route wins).
fn concerns_pair(f: &Finding, paths: &Paths<'_>) -> bool {
    if f.layer != Layer::Route || f.vm.as_deref() != Some(paths.source) {
        return true;
    }
    match &paths.pair_routes {
        Some(won) => won.contains(&f.component),
        None => true,
    }
}

fn attr_u64(f: &Finding, k: &str) -> Option<u64> {
    f.attrs.get(k).and_then(Value::as_u64)
}

fn attr_str<'a>(f: &'a Finding, k: &str) -> Option<&'a str> {
    f.attrs.get(k).and_then(Value::as_str)
}

/// Which threads a finding can explain, given the paths they are about.
fn threads_for(f: &Finding, threads: &[Thread], paths: &Paths<'_>) -> Vec<String> {
    let threads: Vec<Thread> = threads
        .iter()
        .filter(|t| !is_internet_thread(t) || concerns_internet(f, paths))
        .filter(|t| !is_vm_pair_thread(t) || concerns_pair(f, paths))
        .cloned()
        .collect();
    let threads = threads.as_slice();
    let proto = attr_str(f, "protocol").map(|p| p.to_ascii_lowercase());
    let port = attr_u64(f, "port").map(|p| p as u16);
    let mut out = Vec::new();
    if f.kind == "nsg_permissive" {
        // Exposure answers a compliance question, nothing else.
        return threads
            .iter()
            .filter(|t| t.complaint.kinds.contains(&SymptomKind::Compliance))
            .map(|t| t.id.clone())
            .collect();
    }
    if is_blocking(&f.kind) || f.layer == Layer::Drift {
        for t in threads {
            let tproto = t.complaint.protocol;
            let matches = match (proto.as_deref(), port) {
                (Some("icmp"), _) => tproto == Some(Protocol::Icmp),
                (_, Some(p)) => {
                    t.complaint.ports.contains(&p)
                        || (t.complaint.ports.is_empty()
                            && tproto != Some(Protocol::Icmp)
                            && is_pair_thread(t)
                            && !complains_of_everything(t)
                            // "No internet" is not one port's failure either.
                            && !t.complaint.internet)
                }
                // A drop of everything (policy, route, blackhole) explains every pair thread.
                _ => is_pair_thread(t) || t.complaint.kinds.contains(&SymptomKind::AfterChange),
            };
            if matches {
                out.push(t.id.clone());
            }
        }
    } else if is_shaping(&f.kind) {
        let perf: Vec<String> = threads
            .iter()
            .filter(|t| {
                t.complaint
                    .kinds
                    .iter()
                    .any(|k| k.is_performance() || *k == SymptomKind::Intermittent)
                    && t.complaint.protocol != Some(Protocol::Icmp)
            })
            .map(|t| t.id.clone())
            .collect();
        if perf.is_empty() {
            out.extend(
                threads
                    .iter()
                    .filter(|t| is_pair_thread(t) && t.complaint.protocol != Some(Protocol::Icmp))
                    .map(|t| t.id.clone()),
            );
        } else {
            out = perf;
        }
    }
    out
}

/// The layer a hypothesis for this finding belongs to.
fn hypothesis_layer(f: &Finding) -> Layer {
    match f.layer {
        Layer::Drift if f.kind == "nsg_deny" => Layer::Nsg,
        l => l,
    }
}

/// Runs the playbook on an engine whose session was just started (or resumed: steps
/// already done are not repeated when their tool call is in the state).
pub fn run(engine: &mut Engine, opts: &PlaybookOptions) -> PlaybookOutcome {
    let src = engine.state.source_vm.clone();
    let dst = engine.state.dest_vm.clone();
    let threads = engine.state.threads.clone();
    let symptom = engine.state.symptom.clone();
    let pair = threads.iter().any(is_pair_thread);
    // Between the two VMs (both ends in question) or only toward the internet (the
    // source's side alone).
    let vm_pair = threads.iter().any(is_vm_pair_thread);
    let internet = engine.state.internet_address.clone();
    // The VM whose way to the internet is in question (the source unless the symptom
    // names the destination alone).
    let side = engine.state.internet_side().to_string();
    let compliance = symptom.kinds.contains(&SymptomKind::Compliance);

    if engine.state.steps.is_empty() {
        engine.note(&format!(
            "symptom parsed: kinds [{}], ports {:?}, protocol {}, VMs [{}], baselines [{}]; {} thread(s)",
            symptom.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
            symptom.ports,
            symptom.protocol.map(|p| p.as_str()).unwrap_or("any"),
            symptom.vms.join(", "),
            symptom.baseline_ids.join(", "),
            threads.len()
        ));
    }

    // 1. Hypotheses.
    if engine.state.hypotheses.is_empty() {
        for t in &threads {
            if is_pair_thread(t) {
                let what = t.complaint.text.clone();
                let probes = thread_probes(t)
                    .iter()
                    .map(|(p, port)| match port {
                        Some(n) => format!("{}/{n}", p.as_str()),
                        None => p.as_str().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let inet = internet.as_deref().unwrap_or("the internet");
                let internet_thread = t.complaint.internet;
                let mut hyps: Vec<(String, Layer, Option<&str>)> = if internet_thread {
                    vec![
                        (
                            format!("an NSG rule denies {side}'s outbound {probes} to the internet"),
                            Layer::Nsg,
                            Some(side.as_str()),
                        ),
                        (
                            format!("a route misdirects or blackholes {side}'s traffic to the internet ({inet})"),
                            Layer::Route,
                            Some(side.as_str()),
                        ),
                    ]
                } else {
                    vec![
                        (
                            format!("an NSG rule on the path denies {probes}"),
                            Layer::Nsg,
                            None,
                        ),
                        (
                            format!("a route misdirects or blackholes traffic from {src} to {dst}"),
                            Layer::Route,
                            None,
                        ),
                    ]
                };
                // Both ends of the pair; the source alone toward the internet.
                let ends: Vec<&str> = if internet_thread {
                    vec![side.as_str()]
                } else {
                    vec![dst.as_str(), src.as_str()]
                };
                let out = if internet_thread { "outbound " } else { "" };
                for vm in &ends {
                    hyps.push((
                        format!("{vm}'s OS firewall blocks {out}{probes}"),
                        Layer::OsFirewall,
                        Some(vm),
                    ));
                }
                let what_degrades = if internet_thread {
                    "its traffic"
                } else {
                    "the path"
                };
                for vm in ends.iter().rev() {
                    hyps.push((
                        format!("traffic control on {vm} (rate limit, delay, loss) degrades {what_degrades}"),
                        Layer::TrafficControl,
                        Some(vm),
                    ));
                }
                let scope = if internet_thread {
                    format!("every layer on {side}'s side of its path to the internet")
                } else {
                    "every layer on both ends".to_string()
                };
                for (statement, layer, vm) in hyps {
                    engine.hypothesize(
                        &t.id,
                        &statement,
                        layer,
                        vm,
                        &format!(
                            "thread {} (\"{}\"): {scope} is a candidate until inspected",
                            t.id, what
                        ),
                    );
                }
            }
            if t.complaint.kinds.contains(&SymptomKind::Compliance) {
                engine.hypothesize(
                    &t.id,
                    &format!("{dst}'s NSGs expose it more than intended"),
                    Layer::Nsg,
                    Some(dst.as_str()),
                    "compliance question: audit the permissive rules",
                );
            }
            if !symptom.baseline_ids.is_empty() {
                engine.hypothesize(
                    &t.id,
                    "the state changed since the baseline",
                    Layer::Drift,
                    None,
                    "a baseline id was given: compare against it",
                );
            }
        }
    }
    let done = |e: &Engine, tool: &str, args: &Value| {
        e.state
            .calls
            .iter()
            .any(|c| c.tool == tool && &c.args == args && c.result.ok)
    };
    let call = |e: &mut Engine, tool: &str, args: Value, reason: &str| -> Option<CallOutcome> {
        if done(e, tool, &args) {
            return None;
        }
        Some(e.call(tool, &args, reason))
    };

    // 2. Measure.
    let perf = threads.iter().any(|t| {
        t.complaint
            .kinds
            .iter()
            .any(|k| k.is_performance() || *k == SymptomKind::Intermittent)
    });
    if vm_pair {
        let test_type = if perf { "both" } else { "latency" };
        call(
            engine,
            "run_pipe_meter",
            json!({"test_type": test_type, "iterations": opts.iterations, "duration": opts.duration_secs}),
            "performance or connectivity between the two VMs is in question: measure first, judged against the baseline or the expectation table",
        );
    }
    if cancelled(engine) {
        return interrupted(engine);
    }

    // 3. Control plane.
    let mut probes: Vec<(Protocol, Option<u16>)> = Vec::new();
    let mut internet_probes: Vec<(Protocol, Option<u16>)> = Vec::new();
    for t in threads.iter().filter(|t| is_pair_thread(t)) {
        let list = if t.complaint.internet {
            &mut internet_probes
        } else {
            &mut probes
        };
        for p in thread_probes(t) {
            if !list.contains(&p) {
                list.push(p);
            }
        }
    }
    // Toward the internet address first (the source's outbound gates), then between the VMs.
    let nsg_probes: Vec<(&Probe, Option<&String>)> = internet
        .iter()
        .flat_map(|a| internet_probes.iter().map(move |p| (p, Some(a))))
        .chain(probes.iter().map(|p| (p, None)))
        .collect();
    for ((proto, port), address) in nsg_probes {
        let mut args = json!({"mode": "verdict", "protocol": proto.as_str()});
        if let Some(p) = port {
            args["port"] = json!(p);
        }
        let why = match address {
            Some(a) => {
                args["address"] = json!(a);
                if side != src {
                    args["source_vm"] = json!(side);
                }
                "control plane: the NSG verdict of the outbound gates toward the internet for the flow in question"
            }
            None => {
                "control plane: NSG verdicts source→dest and dest→source for the flow in question"
            }
        };
        call(engine, "inspect_nsg", args, why);
    }
    if compliance {
        call(
            engine,
            "inspect_nsg",
            json!({"mode": "audit"}),
            "compliance question: audit the permissive NSG rules of both VMs",
        );
    }
    if vm_pair {
        call(
            engine,
            "inspect_routes",
            json!({"vm": src}),
            "control plane: the route the source's NIC selects for the destination",
        );
    }
    let toward_internet = !internet_probes.is_empty();
    if let (true, Some(addr)) = (toward_internet, &internet) {
        call(
            engine,
            "inspect_routes",
            json!({"vm": side, "address": addr}),
            &format!("control plane: the route {side}'s NIC selects for the internet"),
        );
    }
    // Route audits of the NICs in question: the source's, and the VM whose internet is.
    let mut audited: Vec<&String> = Vec::new();
    if vm_pair || (toward_internet && side == src) {
        audited.push(&src);
    }
    if toward_internet && side != src {
        audited.push(&side);
    }
    for vm in audited {
        call(
            engine,
            "inspect_routes",
            json!({"vm": vm, "mode": "audit"}),
            &format!("control plane: every blackhole or dead-appliance route of {vm}'s NIC, whatever the destination (a default route to a dead appliance breaks the internet, not the VNet)"),
        );
    }
    if vm_pair {
        let (proto, port) = probes
            .first()
            .cloned()
            .unwrap_or((Protocol::Tcp, Some(5001)));
        let mut args = json!({"protocol": proto.as_str()});
        if let Some(p) = port {
            args["port"] = json!(p);
        }
        call(
            engine,
            "trace_reachability",
            args,
            "control plane: trace source→dest through routes and both NSG gates",
        );
    }
    if cancelled(engine) {
        return interrupted(engine);
    }

    // 4. OS layer on both VMs (on the source alone for the internet).
    if pair {
        let mut vms: Vec<&String> = if vm_pair { vec![&dst, &src] } else { vec![] };
        if toward_internet && !vms.contains(&&side) {
            vms.push(&side);
        }
        for vm in vms {
            let direction = if vm == &dst && vm_pair { "in" } else { "out" };
            // One read of the VM's ruleset and qdiscs answers every probe: the findings
            // come from the whole snapshot; the packet check is for the first probe.
            let mut args = json!({"vm": vm, "mode": "snapshot"});
            let first = if vm_pair {
                probes.first()
            } else {
                internet_probes.first()
            };
            if let Some((proto, port)) = first {
                args = json!({"vm": vm, "mode": "check", "protocol": proto.as_str(), "direction": direction});
                if let Some(p) = port {
                    args["port"] = json!(p);
                }
            }
            call(
                engine,
                "inspect_os_layer",
                args,
                &format!("OS layer of {vm}: firewall and traffic control, and would the flow pass ({direction}bound)?"),
            );
        }
    }
    if cancelled(engine) {
        return interrupted(engine);
    }

    // 5. Drift against baselines.
    for b in symptom.baseline_ids.clone() {
        if b.starts_with("eni_") {
            call(
                engine,
                "detect_effective_network_drift",
                json!({"vm": dst, "baseline_id": b}),
                "a cloud baseline was given: effective NSG and route drift since it",
            );
        } else if b.starts_with("fw_") {
            call(
                engine,
                "inspect_os_layer",
                json!({"vm": dst, "mode": "compare", "baseline_id": b}),
                "an OS firewall baseline was given: drift of the firewall since it",
            );
        }
    }

    crate::playbook_storage::storage_steps(engine, opts);
    // 6. Capture, only when cheaper evidence ran out.
    let control_plane_blocks = engine.state.findings.iter().any(|f| {
        matches!(f.layer, Layer::Nsg | Layer::Route | Layer::Storage) && is_blocking(&f.kind)
    });
    let os_blocks = engine
        .state
        .findings
        .iter()
        .any(|f| f.layer == Layer::OsFirewall && is_blocking(&f.kind));
    let connectivity = threads
        .iter()
        .any(|t| t.complaint.kinds.iter().any(|k| k.is_connectivity()));
    // A slow or intermittent path that no inspected layer explains, or a request to look at
    // the wire itself ("compare what sender and receiver see"): only a capture can tell.
    let degradation_found = engine
        .state
        .findings
        .iter()
        .any(|f| crate::model::is_degradation_kind(&f.kind));
    let slow_unexplained = perf && !degradation_found;
    let wire_asked = asks_for_the_wire(&symptom.text);
    if vm_pair
        && !control_plane_blocks
        && !os_blocks
        && (connectivity || slow_unexplained || wire_asked)
    {
        // A failing port: capture that port. Slowness or a look at the wire: capture
        // everything the VMs exchange (the application's other flows, DNS) to see it whole.
        let port = probes.iter().find_map(|(_, p)| *p);
        let port_only = connectivity && !perf && !wire_asked;
        let mut filter = json!({});
        if let (Some(p), true) = (port, port_only) {
            filter["port"] = json!(p);
        }
        let why = if port_only {
            "the control plane is clean, connectivity fails and the OS layer did not explain it: capture on both ends"
        } else if wire_asked {
            "the question is what the wire shows at each end: capture on both ends and compare sender and receiver"
        } else {
            "the path is slow or intermittent and no inspected layer (NSGs, routes, OS firewall, traffic control) explains it: capture on both ends to see where the time goes"
        };
        if let Some(out) = call(
            engine,
            "capture_traffic",
            json!({"both": true, "filter": filter, "duration_secs": opts.capture_secs}),
            why,
        ) {
            if let Some(task) = out
                .result
                .summary
                .get("task_id")
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                // Poll until analysed (or failed), for the capture's duration plus the time
                // to stop, download and analyse it.
                let budget = std::time::Duration::from_secs(u64::from(opts.capture_secs) + 120);
                let started = std::time::Instant::now();
                loop {
                    if cancelled(engine) {
                        return interrupted(engine);
                    }
                    let o = engine.call(
                        "check_task",
                        &json!({"task_id": task}),
                        "wait for the capture to be analysed",
                    );
                    let state = o
                        .result
                        .summary
                        .get("state")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !o.result.ok
                        || matches!(state, "analysed" | "failed" | "cancelled" | "cleaned")
                        || started.elapsed() > budget
                    {
                        break;
                    }
                    std::thread::sleep(opts.poll_interval);
                }
                engine.call(
                    "cleanup_task",
                    &json!({"task_id": task}),
                    "delete the capture resources",
                );
            }
        }
    }
    if cancelled(engine) {
        return interrupted(engine);
    }

    // 7. Resolve hypotheses from the findings.
    resolve(engine);

    // 8. Conclude.
    conclude(engine)
}

fn interrupted(engine: &mut Engine) -> PlaybookOutcome {
    let _ = engine.interrupt();
    PlaybookOutcome::Interrupted
}

/// The audit id of the coverage mark for (aspect, vm), and whether it was inspected.
fn coverage_evidence(
    engine: &Engine,
    aspect: Aspect,
    vm: Option<&str>,
) -> Option<Result<String, String>> {
    engine
        .state
        .coverage
        .iter()
        .rev()
        .find(|m| m.aspect == aspect && (vm.is_none() || m.vm.as_deref() == vm))
        .map(|m| match &m.state {
            CoverageState::Inspected { evidence } => Ok(evidence.clone()),
            CoverageState::Unverifiable { reason } => Err(reason.clone()),
        })
}

fn aspects_for(layer: Layer) -> Vec<Aspect> {
    match layer {
        Layer::Nsg => vec![Aspect::NsgForward, Aspect::NsgReturn],
        Layer::Route => vec![Aspect::Routes],
        Layer::OsFirewall => vec![Aspect::Firewall],
        Layer::TrafficControl => vec![Aspect::TrafficControl],
        _ => vec![],
    }
}

/// Attaches findings to hypotheses and resolves every open hypothesis.
pub fn resolve(engine: &mut Engine) {
    let threads = engine.state.threads.clone();
    let side = engine.state.internet_side().to_string();
    let internet = engine.state.internet_address.clone();
    let src = engine.state.source_vm.clone();
    // The route lookups for the destination (no address, not an audit) that succeeded, and
    // the route findings they made: the routes that carry the pair's traffic.
    let lookups: Vec<&str> = engine
        .state
        .calls
        .iter()
        .filter(|c| {
            c.tool == "inspect_routes"
                && c.result.ok
                && c.args.get("address").is_none()
                && c.args.get("mode").and_then(Value::as_str) != Some("audit")
        })
        .map(|c| c.audit_id.as_str())
        .collect();
    let pair_routes = (!lookups.is_empty()).then(|| {
        engine
            .state
            .findings
            .iter()
            .filter(|f| {
                f.layer == Layer::Route && f.evidence.iter().any(|e| lookups.contains(&e.as_str()))
            })
            .map(|f| f.component.clone())
            .collect::<Vec<String>>()
    });
    let paths = Paths {
        side: &side,
        internet: internet.as_deref(),
        source: &src,
        pair_routes,
    };
    // A drop inside a chain added since the baseline is the blocking change, even where it
    // only filters forwarded traffic (rated informational on its own): scenario O's Docker
    // isolation chains.
    let added_chains: Vec<(Option<String>, String)> = engine
        .state
        .findings
        .iter()
        .filter(|f| f.kind == "drift" && attr_str(f, "change") == Some("chain_added"))
        .filter_map(|f| Some((f.vm.clone(), attr_str(f, "chain")?.to_string())))
        .collect();
    let findings: Vec<Finding> = engine
        .state
        .findings
        .iter()
        .filter(|f| {
            f.severity >= Severity::Medium
                || (is_blocking(&f.kind)
                    && attr_str(f, "chain").is_some_and(|c| {
                        added_chains.iter().any(|(vm, ch)| *vm == f.vm && ch == c)
                    }))
        })
        .cloned()
        .collect();
    // Causes first: attach each cause finding to the matching hypothesis of every thread
    // it can explain (adding one when the playbook did not foresee it).
    let mut confirmed: Vec<(String, Vec<String>, Vec<String>)> = Vec::new(); // (hyp, findings, evidence)
    let mut threads = threads;
    let causes: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            is_blocking(&f.kind)
                || is_shaping(&f.kind)
                || f.layer == Layer::Drift
                || f.kind == "nsg_permissive"
        })
        .collect();
    // Threads a blocking cause already explains.
    let blocked: Vec<String> = causes
        .iter()
        .filter(|f| is_blocking(&f.kind))
        .flat_map(|f| threads_for(f, &threads, &paths))
        .collect();
    let mut extra_thread: Option<String> = None;
    let mut blocking_thread: Option<String> = None;
    for f in causes {
        let layer = hypothesis_layer(f);
        let mut targets = threads_for(f, &threads, &paths);
        // Shaping found while a blocking cause explains the complaint, and no performance
        // complaint was reported: a separate problem, investigated as its own thread (it
        // does not explain the reported failure, and it must not be lost).
        let perf_reported = threads.iter().any(|t| {
            t.complaint
                .kinds
                .iter()
                .any(|k| k.is_performance() || *k == SymptomKind::Intermittent)
        });
        if is_shaping(&f.kind)
            && !perf_reported
            && !targets.is_empty()
            && targets.iter().all(|t| blocked.contains(t))
        {
            let tid = match &extra_thread {
                Some(t) => t.clone(),
                None => {
                    let tid = engine.add_thread(
                        crate::model::Complaint {
                            text: "degradation found on the path beyond the reported failure (not its cause; a separate fix)".into(),
                            kinds: vec![SymptomKind::Slow],
                            ports: vec![],
                            protocol: None,
                            internet: false,
                        },
                        "shaping was found while a blocking cause already explains the reported complaint",
                    );
                    threads = engine.state.threads.clone();
                    extra_thread = Some(tid.clone());
                    tid
                }
            };
            targets = vec![tid];
        }
        // A blocking rule no reported complaint mentions (another port, another protocol):
        // a separate problem, reported in its own thread rather than dropped.
        if targets.is_empty() && is_blocking(&f.kind) {
            let tid = match &blocking_thread {
                Some(t) => t.clone(),
                None => {
                    let tid = engine.add_thread(
                        crate::model::Complaint {
                            text: "blocking rule found beyond the reported complaints (a separate problem and fix)".into(),
                            kinds: vec![SymptomKind::Unreachable],
                            ports: vec![],
                            protocol: None,
                            internet: false,
                        },
                        "a blocking rule was found that no reported complaint covers",
                    );
                    threads = engine.state.threads.clone();
                    blocking_thread = Some(tid.clone());
                    tid
                }
            };
            targets = vec![tid];
        }
        for tid in targets {
            let existing = engine.state.hypotheses.iter().find(|h| {
                h.thread == tid
                    && h.layer == layer
                    && (h.vm.is_none() || f.vm.is_none() || h.vm == f.vm)
            });
            let hid = match existing {
                Some(h) => h.id.clone(),
                // Exposure of another VM than the one asked about is context, not the answer.
                None if f.kind == "nsg_permissive" => continue,
                None => engine.hypothesize(
                    &tid,
                    &format!(
                        "{} on {}: {} at {}",
                        layer.as_str(),
                        f.vm.as_deref().unwrap_or("the path"),
                        f.kind,
                        f.component
                    ),
                    layer,
                    f.vm.as_deref(),
                    &format!(
                        "finding {} was not foreseen by the hypotheses of thread {tid}",
                        f.id
                    ),
                ),
            };
            match confirmed.iter_mut().find(|c| c.0 == hid) {
                Some(c) => {
                    c.1.push(f.id.clone());
                    c.2.extend(f.evidence.iter().cloned());
                }
                None => confirmed.push((hid, vec![f.id.clone()], f.evidence.clone())),
            }
        }
    }
    // Supporting evidence (measurements, wire) joins the confirmed causes of its thread.
    for f in findings
        .iter()
        .filter(|f| matches!(f.layer, Layer::Measurement | Layer::Wire) && !is_blocking(&f.kind))
    {
        let port = attr_u64(f, "port").map(|p| p as u16);
        for c in confirmed.iter_mut() {
            let Some(h) = engine.state.hypotheses.iter().find(|h| h.id == c.0) else {
                continue;
            };
            let Some(t) = threads.iter().find(|t| t.id == h.thread) else {
                continue;
            };
            let relevant = match f.layer {
                Layer::Measurement => {
                    (f.kind == "throughput_low" || f.kind == "high_variance")
                        && matches!(h.layer, Layer::TrafficControl)
                        || (f.kind == "latency_high" && h.layer == Layer::TrafficControl)
                        || (f.kind == "connectivity_drop" && is_pair_thread(t))
                }
                _ => port.map(|p| t.complaint.ports.contains(&p)).unwrap_or(true),
            };
            if relevant && t.complaint.protocol != Some(Protocol::Icmp) {
                c.1.push(f.id.clone());
                c.2.extend(f.evidence.iter().cloned());
            }
        }
    }
    for (hid, fids, mut evidence) in confirmed {
        evidence.dedup();
        let status = engine
            .state
            .hypotheses
            .iter()
            .find(|h| h.id == hid)
            .map(|h| h.status);
        if status == Some(HypothesisStatus::Confirmed) {
            continue;
        }
        engine.call(
            MANAGE_HYPOTHESES,
            &json!({"action": "confirm", "id": hid, "findings": fids, "evidence": evidence,
                    "reason": "the findings show the mechanism"}),
            &format!("findings {} explain hypothesis {hid}", fids.join(", ")),
        );
    }
    // Significant findings no confirmed cause explains (a slow path with every layer clean,
    // wire anomalies of their own): recorded as questions the inspected layers did not
    // answer, so the report lists them instead of dropping them.
    let linked: Vec<String> = engine
        .state
        .hypotheses
        .iter()
        .filter(|h| h.status == HypothesisStatus::Confirmed || !h.status.is_resolved())
        .flat_map(|h| h.findings.clone())
        .collect();
    let unexplained: Vec<Finding> = findings
        .iter()
        .filter(|f| !linked.contains(&f.id))
        .filter(|f| {
            !engine
                .state
                .hypotheses
                .iter()
                .any(|h| h.findings.contains(&f.id) && h.status == HypothesisStatus::Confirmed)
        })
        .cloned()
        .collect();
    for f in unexplained {
        let thread = threads
            .iter()
            .find(|t| is_pair_thread(t))
            .or(threads.first())
            .map(|t| t.id.clone())
            .unwrap_or_else(|| "T1".into());
        let hid = engine.hypothesize(
            &thread,
            &format!(
                "{} is explained by a cause on an inspected layer",
                f.summary
            ),
            f.layer,
            f.vm.as_deref(),
            &format!("finding {} is not explained by any confirmed cause", f.id),
        );
        engine.call(
            MANAGE_HYPOTHESES,
            &json!({"action": "refute", "id": hid, "findings": [f.id], "evidence": f.evidence,
                    "reason": format!("{} stays unexplained: no inspected layer (NSGs, routes, OS firewall and traffic control of both VMs) accounts for it", f.id)}),
            &format!("finding {} has no cause on the inspected layers: reported as unexplained", f.id),
        );
    }
    // Everything still open: refuted by the clean inspection, or unverifiable.
    let open: Vec<(String, Layer, Option<String>, bool)> = engine
        .state
        .hypotheses
        .iter()
        .filter(|h| !h.status.is_resolved())
        .map(|h| {
            let internet = threads
                .iter()
                .any(|t| t.id == h.thread && is_internet_thread(t));
            (h.id.clone(), h.layer, h.vm.clone(), internet)
        })
        .collect();
    for (hid, layer, vm, internet) in open {
        let mut aspects = aspects_for(layer);
        if internet {
            // Toward the internet only the source's outbound gates decide (nothing on the
            // far end is an Azure NIC; replies pass the stateful NSGs).
            aspects.retain(|a| *a != Aspect::NsgReturn);
        }
        let mut evidence = Vec::new();
        let mut unverifiable = None;
        for a in &aspects {
            let per_vm = matches!(a, Aspect::Firewall | Aspect::TrafficControl);
            match coverage_evidence(engine, *a, if per_vm { vm.as_deref() } else { None }) {
                Some(Ok(id)) => evidence.push(id),
                Some(Err(reason)) => unverifiable = Some(reason),
                None => unverifiable = Some(format!("{a:?} was not inspected")),
            }
        }
        if layer == Layer::Drift || layer == Layer::Measurement || layer == Layer::Wire {
            // Drift with no drift finding: refuted by the drift call itself.
            if let Some(c) = engine.state.calls.iter().rev().find(|c| {
                c.result.ok
                    && matches!(
                        c.tool.as_str(),
                        "detect_effective_network_drift" | "inspect_os_layer"
                    )
                    && c.args.get("baseline_id").is_some()
            }) {
                evidence.push(c.audit_id.clone());
                unverifiable = None;
            } else if evidence.is_empty() {
                unverifiable = Some("no comparison against a baseline could be made".into());
            }
        }
        if let Some(reason) =
            unverifiable.filter(|_| evidence.is_empty() || aspects.len() > evidence.len())
        {
            engine.call(
                MANAGE_HYPOTHESES,
                &json!({"action": "unverifiable", "id": hid, "reason": reason}),
                "the layer could not be inspected",
            );
        } else {
            engine.call(
                MANAGE_HYPOTHESES,
                &json!({"action": "refute", "id": hid, "evidence": evidence,
                        "reason": "inspected: nothing on this layer explains the thread"}),
                &format!("hypothesis {hid}: the inspection showed this layer clean for the thread"),
            );
        }
    }
}

/// Asks for the conclusion with the confirmed hypotheses as root causes, blocking causes
/// first (they must be fixed and verified before shaping can even be measured).
pub fn conclude(engine: &mut Engine) -> PlaybookOutcome {
    let mut causes: Vec<(u8, String)> = engine
        .state
        .hypotheses
        .iter()
        .filter(|h| h.status == HypothesisStatus::Confirmed)
        .map(|h| {
            let blocking = h.findings.iter().any(|fid| {
                engine
                    .state
                    .findings
                    .iter()
                    .any(|f| &f.id == fid && is_blocking(&f.kind))
            });
            let rank = match (blocking, h.layer) {
                (true, Layer::Nsg | Layer::Route) => 0,
                (true, _) => 1,
                (false, Layer::Drift) => 2,
                _ => 3,
            };
            (rank, h.id.clone())
        })
        .collect();
    causes.sort();
    let ids: Vec<String> = causes.into_iter().map(|(_, id)| id).collect();
    let summary = if ids.is_empty() {
        "every layer on both ends was inspected and nothing explains the symptom: the path is healthy".to_string()
    } else {
        let parts: Vec<String> = ids
            .iter()
            .filter_map(|id| engine.state.hypotheses.iter().find(|h| &h.id == id))
            .map(|h| format!("{} ({})", h.statement, h.id))
            .collect();
        format!("root causes, in fix order: {}", parts.join("; "))
    };
    let out = engine.call(
        COMPLETE_INVESTIGATION,
        &json!({"summary": summary, "root_causes": ids}),
        "every hypothesis is resolved: conclude",
    );
    if out.result.ok {
        PlaybookOutcome::Concluded
    } else {
        let refusals = out
            .result
            .summary
            .get("refusals")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| vec![out.result.error.unwrap_or_default()]);
        PlaybookOutcome::Refused(refusals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Complaint;

    fn paths(internet: Option<&str>) -> Paths<'_> {
        Paths {
            side: "source-vm",
            internet,
            source: "source-vm",
            pair_routes: None,
        }
    }

    #[test]
    fn a_route_explains_the_pair_only_when_it_won_for_the_destination() {
        let pair = thread("iperf hangs", vec![SymptomKind::Hangs], vec![]);
        let route = |component: &str, vm: &str| {
            Finding::new(
                Layer::Route,
                Some(vm),
                "route_nva",
                component,
                "s",
                "m",
                Severity::High,
            )
            .attr("prefix", "0.0.0.0/0")
        };
        let t = std::slice::from_ref(&pair);
        let with = |won: Option<Vec<String>>| Paths {
            side: "source-vm",
            internet: None,
            source: "source-vm",
            pair_routes: won,
        };
        let default = route("rt/default-via-nva", "source-vm");
        // The lookup for dest-vm chose a VNet route: the audit's default route is not it.
        assert!(threads_for(&default, t, &with(Some(vec![]))).is_empty());
        // The lookup chose that very route: it explains the pair.
        assert_eq!(
            threads_for(&default, t, &with(Some(vec!["rt/default-via-nva".into()]))),
            vec!["T1".to_string()]
        );
        // No lookup succeeded: nothing to weigh it against, it is kept.
        assert_eq!(
            threads_for(&default, t, &with(None)),
            vec!["T1".to_string()]
        );
        // Findings of other layers, or on dest-vm, are not weighed this way.
        assert_eq!(
            threads_for(&route("rt/x", "dest-vm"), t, &with(Some(vec![]))),
            vec!["T1".to_string()]
        );
    }

    fn thread(text: &str, kinds: Vec<SymptomKind>, ports: Vec<u16>) -> Thread {
        Thread {
            id: "T1".into(),
            complaint: Complaint {
                text: text.into(),
                kinds,
                ports,
                protocol: None,
                internet: text.contains("internet"),
            },
        }
    }

    #[test]
    fn a_one_port_drop_does_not_explain_total_loss() {
        let all = thread("all internet lost", vec![SymptomKind::Unreachable], vec![]);
        assert!(complains_of_everything(&all));
        let one = thread("iperf hangs", vec![SymptomKind::Hangs], vec![]);
        assert!(!complains_of_everything(&one));
        let port = thread(
            "all of 8080 fails",
            vec![SymptomKind::Unreachable],
            vec![8080],
        );
        assert!(!complains_of_everything(&port));
        let drop80 = Finding::new(
            Layer::OsFirewall,
            Some("source-vm"),
            "iptables_drop",
            "filter/OUTPUT #1",
            "s",
            "m",
            Severity::High,
        )
        .attr("port", 80)
        .attr("protocol", "tcp");
        let threads_for = |f: &Finding, t: &[Thread]| threads_for(f, t, &paths(None));
        assert!(threads_for(&drop80, std::slice::from_ref(&all)).is_empty());
        assert_eq!(threads_for(&drop80, &[one]), vec!["T1".to_string()]);
    }

    #[test]
    fn an_internet_thread_takes_only_the_source_side_and_routes_covering_it() {
        let inet = thread("all internet lost", vec![SymptomKind::Unreachable], vec![]);
        assert!(is_internet_thread(&inet) && !is_vm_pair_thread(&inet));
        let route = |prefix: &str, vm: &str| {
            Finding::new(
                Layer::Route,
                Some(vm),
                "route_nva",
                "rt/r",
                "s",
                "m",
                Severity::High,
            )
            .attr("prefix", prefix)
        };
        let t = std::slice::from_ref(&inet);
        let to = |f: &Finding| threads_for(f, t, &paths(Some("198.19.128.10")));
        // The default route to a dead appliance explains it.
        assert_eq!(to(&route("0.0.0.0/0", "source-vm")), vec!["T1".to_string()]);
        // A route for the destination VM's /32 does not carry internet traffic.
        assert!(to(&route("198.18.1.5/32", "source-vm")).is_empty());
        // Nothing on the destination VM is on the way to the internet.
        let dest_drop = Finding::new(
            Layer::OsFirewall,
            Some("dest-vm"),
            "policy_drop",
            "filter/INPUT",
            "s",
            "m",
            Severity::High,
        );
        assert!(to(&dest_drop).is_empty());
        let src_drop = Finding::new(
            Layer::OsFirewall,
            Some("source-vm"),
            "policy_drop",
            "filter/OUTPUT",
            "s",
            "m",
            Severity::High,
        );
        assert_eq!(to(&src_drop), vec!["T1".to_string()]);
        // The internet's default probe is HTTPS, the pair's the measurement port.
        assert_eq!(thread_probes(&inet), vec![(Protocol::Tcp, Some(443))]);
        let pair = thread("iperf hangs", vec![SymptomKind::Hangs], vec![]);
        assert_eq!(thread_probes(&pair), vec![(Protocol::Tcp, Some(5001))]);
    }

    #[test]
    fn asking_for_the_wire_is_recognised() {
        assert!(asks_for_the_wire("compare what sender and receiver see"));
        assert!(asks_for_the_wire("Capture both ends please"));
        assert!(!asks_for_the_wire("iperf to 5001 hangs"));
    }
}
