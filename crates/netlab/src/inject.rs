//! Injecting and clearing faults in a running lab.
//!
//! Mechanisms (see `docs/netlab.md`): `tbf` for rate; `iptables -m statistic` for loss
//! alone; `netem` for delay/jitter/corruption when the kernel has it, otherwise the userspace
//! NFQUEUE emulator (which then also does the loss, so loss is never applied twice);
//! `ip link` for MTU; iptables/nft rule faults run inside the VM; listeners are processes.

use std::time::Duration;

use crate::emulator::{nfqueue_rule_args, nfqueue_rule_delete_args, probe_netem, EmulatorArgs};
use crate::impair::ImpairSpec;
use crate::lab::{ActiveFault, Lab, LabError, Result, UndoStep};
use crate::scenario::{apply_cloud_fault, apply_undo, CloudFault, VmFault};
use crate::sys;

/// Which faults of a scenario file to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Every fault.
    All,
    /// Only faults marked `before_baseline = true`.
    PreBaseline,
    /// Only the others.
    PostBaseline,
}

impl Stage {
    fn wants(self, before_baseline: bool) -> bool {
        match self {
            Stage::All => true,
            Stage::PreBaseline => before_baseline,
            Stage::PostBaseline => !before_baseline,
        }
    }
}

fn rt(msg: impl Into<String>) -> LabError {
    LabError::Runtime(msg.into())
}

fn ipt(ns: &str) -> Vec<String> {
    vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        ns.into(),
        "iptables".into(),
    ]
}

fn run_argv(argv: &[String]) -> Result<String> {
    Ok(sys::run(&argv[0], &argv[1..])?)
}

impl Lab {
    fn new_fault_id(&mut self) -> String {
        let id = format!("f{}", self.st.next_fault.max(1));
        self.st.next_fault = self.st.next_fault.max(1) + 1;
        id
    }

    fn push_fault(&mut self, f: ActiveFault) -> Result<String> {
        crate::lab::progress(&format!(
            "fault {} on {}: {} via {} ({})",
            f.id, f.target, f.kind, f.mechanism, f.detail
        ));
        let id = f.id.clone();
        self.st.faults.push(f);
        self.save()?;
        Ok(id)
    }

    /// Injects the faults of a scenario (filtered by stage). Returns the new fault ids.
    pub fn inject_scenario(
        &mut self,
        sc: &crate::scenario::Scenario,
        stage: Stage,
    ) -> Result<Vec<String>> {
        // The scenario's traffic generators become known to the lab (started only by
        // `netlab traffic start`).
        if !sc.traffic.is_empty() {
            self.register_traffic(&sc.traffic)?;
        }
        let mut ids = Vec::new();
        for f in &sc.faults.cloud {
            if stage.wants(f.before_baseline()) {
                ids.push(self.inject_cloud(f)?);
            }
        }
        for f in &sc.faults.vm {
            if stage.wants(f.before_baseline) {
                ids.extend(self.inject_vm(f)?);
            }
        }
        Ok(ids)
    }

    /// Applies a control-plane fault.
    pub fn inject_cloud(&mut self, f: &CloudFault) -> Result<String> {
        let (t, undo) = apply_cloud_fault(self.topology(), f)?;
        self.st.topology = Some(t);
        let (kind, mechanism, detail) = describe_cloud(f);
        let id = self.new_fault_id();
        if let Err(e) = self.recompile() {
            self.st.topology = Some(apply_undo(self.topology(), &undo));
            let _ = self.recompile();
            return Err(e);
        }
        self.push_fault(ActiveFault {
            id,
            target: "cloud".into(),
            kind,
            keys: vec![],
            mechanism,
            detail,
            before_baseline: f.before_baseline(),
            undo: vec![UndoStep::Cloud { steps: undo }],
        })
    }

    /// Replaces the live topology with `t` (a control-plane change made through `netlab az`):
    /// validates it, recompiles the fabric (NSGs, routes) and `storage.json`, and saves the
    /// state. If the fabric cannot be recompiled, the previous topology is restored.
    pub fn apply_topology(&mut self, t: crate::scenario::Topology) -> Result<()> {
        t.validate()?;
        let old = self.topology().clone();
        self.st.topology = Some(t);
        if let Err(e) = self.recompile() {
            self.st.topology = Some(old);
            let _ = self.recompile();
            return Err(e);
        }
        Ok(())
    }

    /// Applies the faults of one VM fault entry (one active fault per mechanism).
    pub fn inject_vm(&mut self, f: &VmFault) -> Result<Vec<String>> {
        let vm = self.vm(&f.vm)?.clone();
        let tvm = self
            .topology()
            .vm(&f.vm)
            .cloned()
            .ok_or_else(|| LabError::Usage(format!("the lab has no VM `{}`", f.vm)))?;
        let ns = vm.ns.clone();
        let mut ids = Vec::new();
        let bb = f.before_baseline;
        if let Some(rate) = &f.rate {
            if self
                .st
                .faults
                .iter()
                .any(|x| x.target == f.vm && x.mechanism == "tbf")
            {
                return Err(LabError::Usage(format!(
                    "{} already has a rate limit; clear it first",
                    f.vm
                )));
            }
            let mut args: Vec<String> = vec![
                "qdisc".into(),
                "add".into(),
                "dev".into(),
                "eth0".into(),
                "root".into(),
            ];
            args.extend(crate::faults::tbf_args(rate).map_err(LabError::Usage)?);
            sys::run_in(&ns, "tc", &args)?;
            let id = self.new_fault_id();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "rate".into(),
                keys: vec!["rate".into()],
                mechanism: "tbf".into(),
                detail: format!("egress rate {rate} on eth0 ({})", args[4..].join(" ")),
                before_baseline: bb,
                undo: vec![UndoStep::Run {
                    argv: vec![
                        "ip".into(),
                        "netns".into(),
                        "exec".into(),
                        ns.clone(),
                        "tc".into(),
                        "qdisc".into(),
                        "del".into(),
                        "dev".into(),
                        "eth0".into(),
                        "root".into(),
                    ],
                }],
            })?);
        }
        let impair = f.delay_ms.is_some() || f.corrupt_pct.is_some();
        if impair {
            let spec = ImpairSpec {
                delay_ms: f.delay_ms.unwrap_or(0.0),
                jitter_ms: f.jitter_ms.unwrap_or(0.0),
                loss_pct: f.loss_pct.unwrap_or(0.0),
                corrupt_pct: f.corrupt_pct.unwrap_or(0.0),
                seed: f.seed.unwrap_or(1),
            };
            ids.push(self.inject_impair(&f.vm, &ns, &spec, f, bb)?);
        } else if let Some(loss) = f.loss_pct {
            ids.push(self.inject_loss(&f.vm, &ns, loss, bb)?);
        }
        if let Some(w) = f.wire_loss_pct {
            ids.push(self.inject_wire_loss(&f.vm, &vm.link, w, bb)?);
        }
        if f.mtu.is_some() || f.fabric_mtu.is_some() {
            let fab = self.fab();
            let mut undo = Vec::new();
            let mut detail = Vec::new();
            let mut keys = Vec::new();
            for (ns_, dev, want, key) in [
                (ns.clone(), "eth0".to_string(), f.mtu, "mtu"),
                (fab.clone(), vm.link.clone(), f.fabric_mtu, "fabric_mtu"),
            ] {
                let Some(want) = want else { continue };
                let cur = read_mtu(&ns_, &dev)?;
                if let Err(e) = sys::run(
                    "ip",
                    &["-n", &ns_, "link", "set", &dev, "mtu", &want.to_string()],
                ) {
                    for u in undo.iter().rev() {
                        let _ = self.run_undo_step(u);
                    }
                    return Err(e.into());
                }
                undo.push(UndoStep::Run {
                    argv: vec![
                        "ip".into(),
                        "-n".into(),
                        ns_.clone(),
                        "link".into(),
                        "set".into(),
                        dev.clone(),
                        "mtu".into(),
                        cur.to_string(),
                    ],
                });
                keys.push(key.to_string());
                detail.push(if key == "mtu" {
                    format!("eth0 MTU {cur} -> {want}")
                } else {
                    format!("fabric side of the link ({dev}) MTU {cur} -> {want}")
                });
            }
            undo.reverse();
            let id = self.new_fault_id();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "mtu".into(),
                keys,
                mechanism: "ip link mtu".into(),
                detail: detail.join("; "),
                before_baseline: bb,
                undo,
            })?);
        }
        if !f.iptables.is_empty() {
            let mut undo: Vec<UndoStep> = Vec::new();
            for line in &f.iptables {
                let cmd = crate::faults::IptablesCmd::parse(line).map_err(LabError::Usage)?;
                let old_policy = match &cmd.op {
                    crate::faults::IptablesOp::Policy { chain, .. } => {
                        let s =
                            sys::run_in(&ns, "iptables", &["-w", "-t", &cmd.table, "-S", chain])?;
                        s.lines().find_map(|l| {
                            l.strip_prefix(&format!("-P {chain} "))
                                .map(|p| p.trim().to_string())
                        })
                    }
                    _ => None,
                };
                let mut argv = ipt(&ns);
                argv.extend(cmd.apply_args());
                if let Err(e) = run_argv(&argv) {
                    // Undo what this entry already did, newest first.
                    for u in undo.iter().rev() {
                        let _ = self.run_undo_step(u);
                    }
                    return Err(e);
                }
                for a in cmd.undo_args(old_policy.as_deref()).into_iter().rev() {
                    let mut argv = ipt(&ns);
                    argv.extend(a);
                    undo.push(UndoStep::Run { argv });
                }
            }
            undo.reverse();
            let id = self.new_fault_id();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "iptables".into(),
                keys: vec!["iptables".into()],
                mechanism: "iptables".into(),
                detail: f.iptables.join(" ; "),
                before_baseline: bb,
                undo,
            })?);
        }
        if let Some(text) = &f.nft {
            let tables = crate::faults::nft_tables(text);
            let id = self.new_fault_id();
            let path = self.run_dir().join(format!("fault-{id}.nft"));
            crate::lab::write_atomic(&path, text.as_bytes())?;
            sys::run_in(&ns, "nft", &["-f", &path.display().to_string()])?;
            let mut undo: Vec<UndoStep> = tables
                .iter()
                .map(|(fam, name)| UndoStep::Run {
                    argv: vec![
                        "ip".into(),
                        "netns".into(),
                        "exec".into(),
                        ns.clone(),
                        "nft".into(),
                        "delete".into(),
                        "table".into(),
                        fam.clone(),
                        name.clone(),
                    ],
                })
                .collect();
            undo.push(UndoStep::RemoveFile {
                path: path.display().to_string(),
            });
            let names: Vec<String> = tables.iter().map(|(f, n)| format!("{f} {n}")).collect();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "nft".into(),
                keys: vec!["nft".into()],
                mechanism: "nft".into(),
                detail: format!("nft ruleset with table(s) {}", names.join(", ")),
                before_baseline: bb,
                undo,
            })?);
        }
        for port in &f.listen {
            let exe = self.exe.display().to_string();
            let p = self.spawn(
                &ns,
                &f.vm,
                &format!("listen:{port}"),
                &exe,
                &["__serve".into(), "--port".into(), port.to_string()],
            )?;
            sys::wait_listening(&p, *port, Duration::from_secs(5)).map_err(rt)?;
            let id = self.new_fault_id();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "listen".into(),
                keys: vec!["listen".into()],
                mechanism: "process".into(),
                detail: format!("extra TCP listener on port {port} (pid {})", p.pid),
                before_baseline: bb,
                undo: vec![UndoStep::Stop {
                    pid: p.pid,
                    start_time: p.start_time,
                }],
            })?);
        }
        for port in &f.stop_service {
            let svc = tvm
                .services
                .iter()
                .find(|s| s.port == *port)
                .ok_or_else(|| {
                    LabError::Usage(format!("VM `{}` has no service on port {port}", f.vm))
                })?;
            let role = format!("{}:{port}", svc.kind);
            let procs: Vec<(i32, u64)> = self
                .st
                .processes
                .iter()
                .filter(|p| p.owner == f.vm && p.role == role)
                .map(|p| (p.pid, p.start_time))
                .collect();
            if procs.is_empty() {
                return Err(LabError::Usage(format!(
                    "the {role} service of {} is not running",
                    f.vm
                )));
            }
            for (pid, st) in procs {
                self.stop_tracked(pid, st);
            }
            self.save()?;
            let id = self.new_fault_id();
            ids.push(self.push_fault(ActiveFault {
                id,
                target: f.vm.clone(),
                kind: "stop_service".into(),
                keys: vec!["stop".into()],
                mechanism: "process".into(),
                detail: format!("service {role} stopped"),
                before_baseline: bb,
                undo: vec![UndoStep::StartService {
                    vm: f.vm.clone(),
                    port: *port,
                }],
            })?);
        }
        Ok(ids)
    }

    fn inject_loss(&mut self, vm: &str, ns: &str, loss: f64, bb: bool) -> Result<String> {
        let id = self.new_fault_id();
        let comment = format!("netlab-loss {id}");
        let specs = statistic_drop_specs("OUTPUT", "-o", "eth0", loss, &comment);
        let undo = add_iptables_rules(ns, &specs)?;
        self.push_fault(ActiveFault {
            id,
            target: vm.into(),
            kind: "loss".into(),
            keys: vec!["loss".into()],
            mechanism: "iptables statistic".into(),
            detail: format!("egress random loss {loss}% on eth0 (TCP port 22 exempt)"),
            before_baseline: bb,
            undo,
        })
    }

    /// Loss on the wire: a `statistic` DROP in the fabric's FORWARD chain for the packets
    /// that come in from the VM's link (TCP port 22 exempt). The VM sees nothing locally, so
    /// its TCP detects the losses and retransmits, as on a lossy network path.
    fn inject_wire_loss(&mut self, vm: &str, link: &str, loss: f64, bb: bool) -> Result<String> {
        if self
            .st
            .faults
            .iter()
            .any(|x| x.target == vm && x.kind == "wire_loss")
        {
            return Err(LabError::Usage(format!(
                "{vm} already has wire loss; clear it first (netlab clear {vm}:wire_loss)"
            )));
        }
        let fab = self.fab();
        let id = self.new_fault_id();
        let comment = format!("netlab-wire-loss {id}");
        let specs = statistic_drop_specs("FORWARD", "-i", link, loss, &comment);
        let undo = add_iptables_rules(&fab, &specs)?;
        self.push_fault(ActiveFault {
            id,
            target: vm.into(),
            kind: "wire_loss".into(),
            keys: vec!["wire_loss".into()],
            mechanism: "fabric iptables statistic".into(),
            detail: format!(
                "random loss {loss}% on the wire of the packets leaving {vm} (fabric {fab} FORWARD, in on {link}; TCP port 22 exempt)"
            ),
            before_baseline: bb,
            undo,
        })
    }

    fn inject_impair(
        &mut self,
        vm: &str,
        ns: &str,
        spec: &ImpairSpec,
        f: &VmFault,
        bb: bool,
    ) -> Result<String> {
        let probe = probe_netem();
        self.st.netem = Some(format!(
            "{}: {}",
            if probe.available {
                "available"
            } else {
                "missing"
            },
            probe.detail
        ));
        let has_tbf = self
            .st
            .faults
            .iter()
            .any(|x| x.target == vm && x.mechanism == "tbf");
        let mut keys = vec!["delay".to_string()];
        if f.jitter_ms.is_some() {
            keys.push("jitter".into());
        }
        if f.corrupt_pct.is_some() {
            keys.push("corrupt".into());
        }
        if f.loss_pct.is_some() {
            keys.push("loss".into());
        }
        let detail = format!(
            "egress delay {} ms, jitter {} ms, loss {}%, corruption {}% on eth0",
            spec.delay_ms, spec.jitter_ms, spec.loss_pct, spec.corrupt_pct
        );
        let id = self.new_fault_id();
        if probe.available && !has_tbf {
            let mut args: Vec<String> = vec!["qdisc", "add", "dev", "eth0", "root", "netem"]
                .into_iter()
                .map(String::from)
                .collect();
            if spec.delay_ms > 0.0 {
                args.extend(["delay".to_string(), format!("{}ms", spec.delay_ms)]);
                if spec.jitter_ms > 0.0 {
                    args.push(format!("{}ms", spec.jitter_ms));
                }
            }
            if spec.loss_pct > 0.0 {
                args.extend(["loss".to_string(), format!("{}%", spec.loss_pct)]);
            }
            if spec.corrupt_pct > 0.0 {
                args.extend(["corrupt".to_string(), format!("{}%", spec.corrupt_pct)]);
            }
            sys::run_in(ns, "tc", &args)?;
            return self.push_fault(ActiveFault {
                id,
                target: vm.into(),
                kind: "impair".into(),
                keys,
                mechanism: "netem".into(),
                detail,
                before_baseline: bb,
                undo: vec![UndoStep::Run {
                    argv: vec![
                        "ip".into(),
                        "netns".into(),
                        "exec".into(),
                        ns.into(),
                        "tc".into(),
                        "qdisc".into(),
                        "del".into(),
                        "dev".into(),
                        "eth0".into(),
                        "root".into(),
                    ],
                }],
            });
        }
        // Userspace emulator: one queue per fault.
        let qnum: u16 = 100 + (self.st.next_fault % 60000) as u16;
        let stats = self.run_dir().join(format!("emulator-{id}.json"));
        let args = EmulatorArgs::from_spec(qnum, spec, Some(stats.clone()));
        let mut argv = vec!["__emulator".to_string()];
        argv.extend(args.to_args());
        let exe = self.exe.display().to_string();
        let p = self.spawn(ns, vm, &format!("emulator:{id}"), &exe, &argv)?;
        // Give it a moment to bind the queue (diverted packets are dropped until it does).
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(2000) && !stats.exists() {
            if !sys::is_alive(&p) {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                self.stop_tracked(p.pid, p.start_time);
                return Err(rt(format!(
                    "the delay emulator in {vm} exited at once: {}",
                    log.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut undo = vec![];
        for a in nfqueue_rule_args("eth0", qnum, &[22]) {
            let mut argv = ipt(ns);
            argv.push("-w".into());
            argv.extend(a);
            if let Err(e) = run_argv(&argv) {
                for u in &undo {
                    let _ = self.run_undo_step(u);
                }
                self.stop_tracked(p.pid, p.start_time);
                return Err(e);
            }
        }
        for a in nfqueue_rule_delete_args("eth0", qnum, &[22]) {
            let mut argv = ipt(ns);
            argv.push("-w".into());
            argv.extend(a);
            undo.push(UndoStep::Run { argv });
        }
        undo.push(UndoStep::Stop {
            pid: p.pid,
            start_time: p.start_time,
        });
        undo.push(UndoStep::RemoveFile {
            path: stats.display().to_string(),
        });
        self.push_fault(ActiveFault {
            id,
            target: vm.into(),
            kind: "impair".into(),
            keys,
            mechanism: "nfqueue emulator".into(),
            detail: format!("{detail} (queue {qnum}, pid {}, TCP port 22 exempt)", p.pid),
            before_baseline: bb,
            undo,
        })
    }

    pub(crate) fn stop_tracked(&mut self, pid: i32, start_time: u64) {
        if let Some(pos) = self
            .st
            .processes
            .iter()
            .position(|p| p.pid == pid && p.start_time == start_time)
        {
            let p = self.st.processes.remove(pos);
            sys::stop(&p, Duration::from_millis(1500));
        }
    }

    fn run_undo_step(&mut self, u: &UndoStep) -> Result<()> {
        match u {
            UndoStep::Run { argv } => {
                run_argv(argv)?;
            }
            UndoStep::Stop { pid, start_time } => self.stop_tracked(*pid, *start_time),
            UndoStep::Cloud { steps } => {
                let t = apply_undo(self.topology(), steps);
                self.st.topology = Some(t);
                self.recompile()?;
            }
            UndoStep::StartService { vm, port } => {
                self.start_service(vm, *port)?;
            }
            UndoStep::RemoveFile { path } => {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(())
    }

    /// Clears faults selected by `sel`: a fault id (`f3`), `VM` (all of that VM), `VM:key`
    /// (`dest-vm:loss`), `cloud`, or `None` for all. Returns the cleared ids.
    pub fn clear(&mut self, sel: Option<&str>) -> Result<Vec<String>> {
        let chosen: Vec<String> = match sel {
            None => self.st.faults.iter().map(|f| f.id.clone()).collect(),
            Some(s) => {
                let s = s.trim();
                let (target, key) = match s.split_once(':') {
                    Some((t, k)) => (t, Some(k.split('=').next().unwrap_or(k))),
                    None => (s, None),
                };
                let v: Vec<String> = self
                    .st
                    .faults
                    .iter()
                    .filter(|f| {
                        f.id == s
                            || (f.target == target
                                && key.is_none_or(|k| f.keys.iter().any(|x| x == k) || f.kind == k))
                    })
                    .map(|f| f.id.clone())
                    .collect();
                if v.is_empty() {
                    return Err(LabError::Usage(format!(
                        "no active fault matches `{s}`; see `netlab status` for fault ids"
                    )));
                }
                v
            }
        };
        let mut errors = Vec::new();
        // Newest first, so stacked changes unwind in order.
        for id in chosen.iter().rev() {
            let Some(pos) = self.st.faults.iter().position(|f| &f.id == id) else {
                continue;
            };
            let f = self.st.faults[pos].clone();
            for u in &f.undo {
                if let Err(e) = self.run_undo_step(u) {
                    errors.push(format!("{}: {e}", f.id));
                }
            }
            self.st.faults.remove(pos);
            self.save()?;
            crate::lab::progress(&format!("cleared {} ({} on {})", f.id, f.kind, f.target));
        }
        if errors.is_empty() {
            Ok(chosen)
        } else {
            Err(rt(format!("clearing left errors: {}", errors.join("; "))))
        }
    }
}

/// The two rules of a random-loss fault in `chain` for packets through `dev` (`dir_flag` is
/// `-o` or `-i`): TCP except port 22 (either direction, so SSH stays usable) and non-TCP.
fn statistic_drop_specs(
    chain: &str,
    dir_flag: &str,
    dev: &str,
    loss_pct: f64,
    comment: &str,
) -> Vec<Vec<String>> {
    let p = format!("{:.4}", loss_pct / 100.0);
    let tail = [
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        &p,
        "-m",
        "comment",
        "--comment",
        comment,
        "-j",
        "DROP",
    ];
    [
        vec![
            chain,
            dir_flag,
            dev,
            "-p",
            "tcp",
            "-m",
            "multiport",
            "!",
            "--ports",
            "22",
        ],
        vec![chain, dir_flag, dev, "!", "-p", "tcp"],
    ]
    .into_iter()
    .map(|head| head.into_iter().chain(tail).map(String::from).collect())
    .collect()
}

/// Appends iptables rules (filter table) in `ns`; returns the steps deleting them. If one
/// fails, the ones already added are removed.
fn add_iptables_rules(ns: &str, specs: &[Vec<String>]) -> Result<Vec<UndoStep>> {
    let mut undo: Vec<UndoStep> = Vec::new();
    for s in specs {
        let mut a = ipt(ns);
        a.extend(["-w".to_string(), "-A".to_string()]);
        a.extend(s.iter().cloned());
        if let Err(e) = run_argv(&a) {
            for u in &undo {
                if let UndoStep::Run { argv } = u {
                    let _ = run_argv(argv);
                }
            }
            return Err(e);
        }
        let mut d = ipt(ns);
        d.extend(["-w".to_string(), "-D".to_string()]);
        d.extend(s.iter().cloned());
        undo.push(UndoStep::Run { argv: d });
    }
    Ok(undo)
}

fn read_mtu(ns: &str, dev: &str) -> Result<u32> {
    let out = sys::run("ip", &["-n", ns, "-o", "link", "show", "dev", dev])?;
    let w: Vec<&str> = out.split_whitespace().collect();
    w.iter()
        .position(|x| *x == "mtu")
        .and_then(|i| w.get(i + 1))
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| rt(format!("cannot read the MTU of {dev} in {ns}")))
}

fn describe_cloud(f: &CloudFault) -> (String, String, String) {
    match f {
        CloudFault::NsgRule { nsg, rule, .. } => (
            "nsg_rule".into(),
            "fabric nftables".into(),
            format!(
                "NSG {nsg}: {} {} {} priority {} ({} ports {})",
                rule.direction,
                rule.access,
                rule.name,
                rule.priority,
                rule.protocol,
                rule.destination_ports().join(",")
            ),
        ),
        CloudFault::Route {
            route_table,
            route,
            associate_subnet,
            ..
        } => (
            "route".into(),
            "fabric policy routing".into(),
            format!(
                "route table {route_table}: {} {} -> {}{}{}",
                route.name,
                route.address_prefix,
                route.next_hop_type,
                route
                    .next_hop_ip_address
                    .as_ref()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default(),
                associate_subnet
                    .as_ref()
                    .map(|s| format!(" (associated with subnet {s})"))
                    .unwrap_or_default()
            ),
        ),
        CloudFault::SubnetNsg { subnet, nsg, .. } => (
            "subnet_nsg".into(),
            "fabric nftables".into(),
            format!("NSG {nsg} associated with subnet {subnet}"),
        ),
        CloudFault::RemoveServiceEndpoint {
            subnet, service, ..
        } => (
            "remove_service_endpoint".into(),
            "storage state".into(),
            format!("service endpoint {service} removed from subnet {subnet}"),
        ),
        CloudFault::AddServiceEndpoint {
            subnet, service, ..
        } => (
            "add_service_endpoint".into(),
            "storage state".into(),
            format!("service endpoint {service} added to subnet {subnet}"),
        ),
    }
}
