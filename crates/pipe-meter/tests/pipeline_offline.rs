//! The whole pipeline against a simulated pair of VMs (a fake executor behind the real
//! gate): artifacts, statistics, exit codes, baselines, denial, and server clean-up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_provider::config::{FlagOverrides, Settings};
use pipe_meter::{run_pipe_meter, PipeConfig, RunOptions, Status};
use safety_shell::approve::{AllRiskyApprover, NeverApprover};
use safety_shell::audit::AuditLog;
use safety_shell::exec::{ExecError, ExecOptions, Program, RawOutput};
use safety_shell::gate::Executor;
use safety_shell::{Gate, Target};

#[derive(Default)]
struct Sim {
    running: BTreeMap<u32, String>,
    next_pid: u32,
    latencies: VecDeque<f64>,
    rates: VecDeque<f64>,
    iperf3_only: bool,
    commands: Vec<String>,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<Sim>>);

fn out(code: i32, stdout: &str, stderr: &str) -> RawOutput {
    RawOutput {
        exit_code: Some(code),
        signal: None,
        timed_out: false,
        stdout: stdout.into(),
        stderr: stderr.into(),
        duration: Duration::from_millis(1),
        truncation: Default::default(),
    }
}

fn listen(s: &Sim) -> String {
    let mut o = String::from("LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n");
    for args in s.running.values() {
        let port = args.rsplit(' ').next().unwrap();
        o.push_str(&format!("LISTEN 0 128 0.0.0.0:{port} 0.0.0.0:*\n"));
    }
    o
}

impl Executor for Fake {
    fn execute(
        &self,
        target: &Target,
        p: &Program,
        _o: &ExecOptions,
    ) -> Result<RawOutput, ExecError> {
        let text = p.as_shell_text();
        let mut s = self.0.lock().unwrap();
        s.commands.push(format!("{} {text}", target.describe()));
        let dest = target.describe().contains("dest");
        let r = if text == pipe_meter::pipeline::FACTS_SCRIPT {
            let iperf = if s.iperf3_only {
                ""
            } else {
                "/usr/bin/iperf\n"
            };
            let iperf3 = if s.iperf3_only {
                "/usr/bin/iperf3\n"
            } else {
                ""
            };
            out(0, &format!("6.1.0-test\n@@\n/usr/bin/qperf\n@@\n{iperf}@@\n{iperf3}@@\n\
1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 198.18.1.4/24 brd 198.18.1.255 scope global eth0\n2: eth0    inet 198.18.1.5/24 brd 198.18.1.255 scope global eth0\n@@\n\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n@@\n\
qdisc noqueue 0: dev lo root refcnt 2\nqdisc tbf 8001: dev eth0 root refcnt 2 rate 5Mbit burst 32Kb lat 400ms\n@@\n{}", listen(&s)), "")
        } else if text.starts_with("iperf -v") || text == "qperf --version" {
            out(
                0,
                "@@\nqperf 0.4.11\n",
                "iperf version 2.1.8 (12 August 2022) pthreads\n",
            )
        } else if text == "ss -H -t -l -n" {
            out(0, &listen(&s), "")
        } else if text.starts_with("nohup ") {
            assert!(dest, "servers start on dest only");
            let mut o = String::new();
            for part in text.split("; ") {
                let args = part
                    .trim_start_matches("nohup ")
                    .split(" >")
                    .next()
                    .unwrap()
                    .to_string();
                s.next_pid += 1;
                let pid = 4000 + s.next_pid;
                s.running.insert(pid, args);
                o.push_str(&format!("{pid}\n"));
            }
            out(0, &o, "")
        } else if let Some(pids) = text.strip_prefix("ps -o pid=,args= -p ") {
            let mut o = String::new();
            for p in pids.split(',') {
                let p: u32 = p.parse().unwrap();
                if let Some(a) = s.running.get(&p) {
                    o.push_str(&format!("{p:>7} {a}\n"));
                }
            }
            out(if o.is_empty() { 1 } else { 0 }, &o, "")
        } else if let Some(pids) = text.strip_prefix("kill ") {
            for p in pids.trim_start_matches("-KILL ").split(' ') {
                s.running.remove(&p.parse::<u32>().unwrap());
            }
            out(0, "", "")
        } else if text.starts_with("timeout ") && text.contains(" qperf ") {
            assert!(!dest);
            let v = s.latencies.pop_front().unwrap_or(10.0);
            if v == 0.0 {
                out(1, "", "198.18.1.5: failed to connect\n")
            } else {
                out(0, &format!("tcp_lat:\n    latency  =  {v} us\n"), "")
            }
        } else if text.starts_with("timeout ") && text.contains(" iperf ") {
            let v = s.rates.pop_front().unwrap_or(1.0);
            if v == 0.0 {
                out(0, "tcp connect failed: Connection refused\n", "")
            } else {
                out(0, &format!("[ ID] Interval       Transfer     Bandwidth\n[  1] 0.0000-2.0000 sec  1.00 GBytes  {v} Gbits/sec\n[SUM] 0.0000-2.0000 sec  1.00 GBytes  {v} Gbits/sec\n"), "")
            }
        } else {
            panic!("unexpected command {text}");
        };
        Ok(r)
    }
}

fn config(dir: &std::path::Path, extra: &[(&str, &str)]) -> PipeConfig {
    let settings = Settings::from_parts(None, BTreeMap::new());
    let mut f = FlagOverrides::default();
    f.set("SOURCE_VM_PRIVATE_IP", Some("198.18.1.4"))
        .set("DEST_VM_PRIVATE_IP", Some("198.18.1.5"))
        .set("AUDIT_DIR", Some(dir.to_str().unwrap()))
        .set("ITERATIONS", Some("4"))
        .set("DURATION", Some("2"));
    for (k, v) in extra {
        f.set(k, Some(*v));
    }
    PipeConfig::resolve(&settings, &f).unwrap()
}

fn gate(dir: &std::path::Path, fake: &Fake, approve: bool) -> Gate {
    let audit = AuditLog::open_in_dir(dir, "pmeter_audit").unwrap();
    let b = Gate::builder(audit).executor(fake.clone());
    if approve {
        b.approver(AllRiskyApprover).build()
    } else {
        b.approver(NeverApprover).build()
    }
}

fn targets() -> Option<(Target, Target)> {
    Some((
        Target::Netns {
            name: "src-sim".into(),
        },
        Target::Netns {
            name: "dest-sim".into(),
        },
    ))
}

fn sim(lat: &[f64], rates: &[f64]) -> Fake {
    Fake(Arc::new(Mutex::new(Sim {
        latencies: lat.iter().copied().collect(),
        rates: rates.iter().copied().collect(),
        ..Default::default()
    })))
}

fn run(
    dir: &std::path::Path,
    fake: &Fake,
    extra: &[(&str, &str)],
    approve: bool,
) -> pipe_meter::PipelineResult {
    let cfg = config(dir, extra);
    let g = gate(dir, fake, approve);
    run_pipe_meter(
        &cfg,
        &g,
        None,
        RunOptions {
            targets: targets(),
            ..RunOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn stable_run_writes_every_artifact_and_stops_servers() {
    let dir = tempfile::tempdir().unwrap();
    // warm-up values first (discarded): a wild one that must not count.
    let fake = sim(&[999.0, 10.0, 11.0, 12.0, 13.0], &[0.0, 2.0, 2.1, 2.2, 2.3]);
    let r = run(dir.path(), &fake, &[("SESSION_ID", "pmeter_t1")], true);
    assert_eq!(r.status, Status::Success);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    for kind in [
        "manifest",
        "preflight",
        "raw",
        "computed",
        "comparison",
        "result",
    ] {
        let p = dir.path().join(format!("pmeter_t1_{kind}.json"));
        assert!(p.exists(), "{kind}");
        assert!(dir
            .path()
            .join(format!("pmeter_t1_{kind}.json.sha256"))
            .exists());
    }
    let res = &r.result["results"];
    assert_eq!(res["is_stable"], true);
    assert_eq!(res["anomaly_type"], serde_json::Value::Null);
    assert_eq!(res["latency_p90"], 13.0);
    assert_eq!(res["latency_min"], 10.0);
    assert_eq!(res["throughput_p90"], 2.3);
    assert_eq!(res["units"]["latency"], "us");
    assert_eq!(res["iteration_data"].as_array().unwrap().len(), 4);
    assert_eq!(r.result["test_metadata"]["destination_ip"], "198.18.1.5");
    assert_eq!(r.result["preflight"]["tools_ready"], true);
    assert_eq!(r.result["preflight"]["nsg_check"]["performed"], false);
    assert_eq!(r.result["preflight"]["ports_open"], serde_json::Value::Null);
    assert_eq!(r.result["host_facts"]["source"]["mtu"], 1500);
    assert_eq!(r.result["host_facts"]["dest"]["interface"], "eth0");
    assert!(r.summary.contains("Stability:  STABLE"), "{}", r.summary);
    let s = fake.0.lock().unwrap();
    assert!(s.running.is_empty(), "servers survived: {:?}", s.running);
    // The qperf data port is pinned.
    assert!(s
        .commands
        .iter()
        .any(|c| c.contains("qperf 198.18.1.5 -lp 19765 -ip 19766")));
}

#[test]
fn failed_connection_is_a_zero_sample_and_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[1.0, 1.0, 0.0, 1.0, 1.0]);
    let r = run(dir.path(), &fake, &[], true);
    assert_eq!(r.exit_code, 1);
    let res = &r.result["results"];
    assert_eq!(res["anomaly_type"], "CONNECTIVITY_DROP");
    assert_eq!(res["throughput_anomaly"], "CONNECTIVITY_DROP");
    assert_eq!(res["latency_anomaly"], serde_json::Value::Null);
    assert_eq!(res["throughput_min"], 0.0);
    assert!(
        r.summary.contains("Gbps  [CONNECTIVITY_DROP]"),
        "{}",
        r.summary
    );
    assert!(fake.0.lock().unwrap().running.is_empty());
}

#[test]
fn high_variance_latency() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0, 10.0, 10.0, 30.0, 10.0], &[1.0; 5]);
    let r = run(dir.path(), &fake, &[], true);
    assert_eq!(r.exit_code, 1);
    assert_eq!(r.result["results"]["anomaly_type"], "HIGH_VARIANCE");
    assert_eq!(r.result["results"]["latency_anomaly"], "HIGH_VARIANCE");
}

#[test]
fn baseline_then_compare_shows_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(
        &[10.0, 10.0, 10.0, 10.0, 10.0, 11.0, 11.0, 11.0, 11.0, 11.0],
        &[2.0; 5],
    );
    let b = run(
        dir.path(),
        &fake,
        &[("IS_BASELINE", "true"), ("SESSION_ID", "pmeter_base")],
        true,
    );
    assert_eq!(b.exit_code, 0);
    assert!(dir.path().join("pmeter_base_baseline.json").exists());
    {
        let mut s = fake.0.lock().unwrap();
        s.rates = [1.5; 5].into_iter().collect();
    }
    let c = run(
        dir.path(),
        &fake,
        &[("COMPARE_BASELINE", "true"), ("SESSION_ID", "pmeter_cmp")],
        true,
    );
    let cmp = &c.result["comparison"];
    assert_eq!(cmp["baseline_found"], true, "{cmp}");
    assert_eq!(cmp["baseline_session"], "pmeter_base");
    assert!((cmp["delta_pct_latency"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    assert!((cmp["delta_pct_throughput"].as_f64().unwrap() + 25.0).abs() < 1e-9);
    assert!(
        c.summary.contains("+10.0% vs baseline (slower)"),
        "{}",
        c.summary
    );
    assert!(
        c.summary.contains("-25.0% vs baseline (lower)"),
        "{}",
        c.summary
    );
    // 1.5 >= 0.8 * 2.0 is false: outside the expectation, though stable.
    assert_eq!(c.result["expectation"]["within_expectation"], false);
    assert_eq!(c.exit_code, 0);
    // The same baseline by session id.
    let fake2 = sim(&[10.0; 5], &[2.0; 5]);
    let d = run(
        dir.path(),
        &fake2,
        &[("BASELINE_SESSION", "pmeter_base")],
        true,
    );
    assert_eq!(d.result["comparison"]["baseline_found"], true);
}

#[test]
fn missing_or_malformed_baseline_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run(dir.path(), &fake, &[("COMPARE_BASELINE", "true")], true);
    assert_eq!(r.exit_code, 0);
    assert_eq!(r.result["comparison"]["baseline_found"], false);
    assert!(r.result["comparison"]["error"]
        .as_str()
        .unwrap()
        .contains("no baseline"));
    std::fs::write(dir.path().join("pmeter_bad_baseline.json"), "{not json").unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run(
        dir.path(),
        &fake,
        &[("BASELINE_SESSION", "pmeter_bad")],
        true,
    );
    assert_eq!(r.exit_code, 0);
    assert!(r.result["comparison"]["error"]
        .as_str()
        .unwrap()
        .contains("could not be read"));
}

#[test]
fn expected_throughput_makes_a_stably_slow_path_visible() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[0.0048, 0.0047, 0.0048, 0.0048, 0.0048]);
    let r = run(
        dir.path(),
        &fake,
        &[("EXPECTED_THROUGHPUT_GBPS", "1")],
        true,
    );
    assert_eq!(r.result["results"]["is_stable"], true);
    assert_eq!(r.result["expectation"]["within_expectation"], false);
    assert!(r.summary.contains("OUTSIDE expectation"), "{}", r.summary);
}

#[test]
fn denied_measurement_aborts_with_exit_5_and_leaves_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run(dir.path(), &fake, &[], false);
    assert_eq!(r.exit_code, 5, "{}", r.summary);
    assert_eq!(r.status, Status::AbortedPreflight);
    assert!(r.result["error"].as_str().unwrap().contains("denied"));
    assert!(fake.0.lock().unwrap().running.is_empty());
}

#[test]
fn iperf3_is_not_iperf2() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    fake.0.lock().unwrap().iperf3_only = true;
    let r = run(dir.path(), &fake, &[], true);
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.status, Status::Failed);
    let e = r.result["error"].as_str().unwrap();
    assert!(e.contains("iperf3, which is not iperf2"), "{e}");
}

#[test]
fn stale_server_from_a_crashed_run_is_stopped_by_pid() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    {
        // A previous run left its iperf server running and recorded.
        let mut s = fake.0.lock().unwrap();
        s.running.insert(777, "iperf -s -p 5001".into());
        s.next_pid = 10;
    }
    let rec = serde_json::json!({"netns:dest-sim": [{"tool": "iperf", "pid": 777, "args": "iperf -s -p 5001", "session": "pmeter_old"}]});
    std::fs::write(dir.path().join("pipe-meter-servers.json"), rec.to_string()).unwrap();
    let r = run(dir.path(), &fake, &[], true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    assert!(fake.0.lock().unwrap().running.is_empty());
}

#[test]
fn foreign_listener_on_the_port_is_not_killed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    fake.0
        .lock()
        .unwrap()
        .running
        .insert(555, "iperf -s -p 5001".into());
    let r = run(dir.path(), &fake, &[], true);
    assert_eq!(r.exit_code, 3);
    assert!(r.result["error"].as_str().unwrap().contains("--iperf-port"));
    assert!(fake.0.lock().unwrap().running.contains_key(&555));
}
