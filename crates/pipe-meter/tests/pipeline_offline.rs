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
    /// Neither qperf nor iperf is installed (until an install command runs).
    no_tools: bool,
    /// What `command -v apt-get dnf yum` prints.
    package_manager: &'static str,
    /// The install command fails.
    install_fails: bool,
    /// Blobs uploaded through the fake `az storage blob upload`.
    blobs: BTreeMap<String, Vec<u8>>,
    /// Upload names containing this fail.
    upload_fails_for: Option<&'static str>,
    /// Upload order of each blob (its `lastModified` second).
    blob_times: BTreeMap<String, u32>,
    /// `az storage blob list` fails.
    list_fails: bool,
    commands: Vec<String>,
    /// Blob names downloaded.
    downloads: Vec<String>,
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
        let r = if let (Program::Argv(a), true) = (p, text.starts_with("az storage blob upload")) {
            let opt = |f: &str| a.iter().position(|x| x == f).map(|i| a[i + 1].clone());
            let name = opt("--name").unwrap();
            assert_eq!(opt("--account-name").as_deref(), Some("stlab"));
            assert_eq!(opt("--container-name").as_deref(), Some("results"));
            if s.upload_fails_for.is_some_and(|f| name.contains(f)) {
                out(
                    1,
                    "",
                    "ERROR: This request is not authorized to perform this operation.\n",
                )
            } else {
                let bytes = std::fs::read(opt("--file").unwrap()).unwrap();
                let t = s.blob_times.len() as u32 + 1;
                s.blob_times.insert(name.clone(), t);
                s.blobs.insert(name, bytes);
                out(
                    0,
                    r#"{"etag": "\"0x1\"", "lastModified": "2026-11-22T07:00:00+00:00"}"#,
                    "",
                )
            }
        } else if let (Program::Argv(a), true) = (p, text.starts_with("az storage blob list")) {
            let opt = |f: &str| a.iter().position(|x| x == f).map(|i| a[i + 1].clone());
            let prefix = opt("--prefix").unwrap_or_default();
            if s.list_fails {
                out(
                    1,
                    "",
                    "ERROR: This request is not authorized to perform this operation.\n",
                )
            } else {
                let items: Vec<serde_json::Value> = s
                    .blobs
                    .iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(n, b)| {
                        let t = s.blob_times.get(n).copied().unwrap_or(0);
                        serde_json::json!({"name": n, "properties": {
                            "contentLength": b.len(),
                            "lastModified": format!("2026-11-22T07:{:02}:{:02}+00:00", t / 60, t % 60),
                            "blobType": "BlockBlob"}})
                    })
                    .collect();
                out(0, &serde_json::Value::Array(items).to_string(), "")
            }
        } else if let (Program::Argv(a), true) = (p, text.starts_with("az storage blob download")) {
            let opt = |f: &str| a.iter().position(|x| x == f).map(|i| a[i + 1].clone());
            let name = opt("--name").unwrap();
            s.downloads.push(name.clone());
            match s.blobs.get(&name) {
                Some(b) => {
                    std::fs::write(opt("--file").unwrap(), b).unwrap();
                    out(0, "", "")
                }
                None => out(
                    3,
                    "",
                    "ERROR: The specified blob does not exist.\nErrorCode:BlobNotFound\n",
                ),
            }
        } else if text == pipe_meter::pipeline::FACTS_SCRIPT {
            let iperf = if s.iperf3_only || s.no_tools {
                ""
            } else {
                "/usr/bin/iperf\n"
            };
            let qperf = if s.no_tools { "" } else { "/usr/bin/qperf\n" };
            let iperf3 = if s.iperf3_only {
                "/usr/bin/iperf3\n"
            } else {
                ""
            };
            out(0, &format!("6.1.0-test\n@@\n{qperf}@@\n{iperf}@@\n{iperf3}@@\n\
1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 198.18.1.4/24 brd 198.18.1.255 scope global eth0\n2: eth0    inet 198.18.1.5/24 brd 198.18.1.255 scope global eth0\n@@\n\
1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP\n@@\n\
qdisc noqueue 0: dev lo root refcnt 2\nqdisc tbf 8001: dev eth0 root refcnt 2 rate 5Mbit burst 32Kb lat 400ms\n@@\n{}@@\n{}", listen(&s), s.package_manager), "")
        } else if text.starts_with("sudo -n ") && text.contains(" install -y ") {
            if s.install_fails {
                out(100, "", "E: Unable to locate package qperf\n")
            } else {
                s.no_tools = false;
                out(0, "done\n", "")
            }
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
    // A new baseline compared with the previous one, not with itself.
    let fake3 = sim(&[10.0; 5], &[3.0; 5]);
    let e = run(
        dir.path(),
        &fake3,
        &[
            ("IS_BASELINE", "true"),
            ("COMPARE_BASELINE", "true"),
            ("SESSION_ID", "pmeter_both"),
        ],
        true,
    );
    assert_eq!(e.result["comparison"]["baseline_session"], "pmeter_base");
    assert!(
        (e.result["comparison"]["delta_pct_throughput"]
            .as_f64()
            .unwrap()
            - 50.0)
            .abs()
            < 1e-9
    );
    assert!(dir.path().join("pmeter_both_baseline.json").exists());
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
    // Malformed but intact (its sidecar matches): reported, not fatal.
    use cloud_provider::artifact::ArtifactStore;
    let store = cloud_provider::artifact::LocalStore::new(dir.path().to_path_buf());
    store.put("pmeter_bad_baseline.json", b"{not json").unwrap();
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
    assert_eq!(
        r.result["comparison"]["integrity_failure"],
        serde_json::Value::Null
    );
    // Changed after it was written (or without its sidecar): an integrity failure, exit 4,
    // though everything was measured and written.
    std::fs::write(dir.path().join("pmeter_bad_baseline.json"), "{\"x\": 1}").unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run(
        dir.path(),
        &fake,
        &[
            ("BASELINE_SESSION", "pmeter_bad"),
            ("SESSION_ID", "pmeter_t4"),
        ],
        true,
    );
    assert_eq!(r.exit_code, 4, "{}", r.result["comparison"]);
    assert_eq!(r.result["comparison"]["integrity_failure"], true);
    assert!(r.result["comparison"]["error"]
        .as_str()
        .unwrap()
        .contains("integrity failure"));
    assert_eq!(r.result["exit_code"], 4);
    assert!(dir.path().join("pmeter_t4_result.json").exists());
    std::fs::remove_file(dir.path().join("pmeter_bad_baseline.json.sha256")).unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run(
        dir.path(),
        &fake,
        &[("BASELINE_SESSION", "pmeter_bad")],
        true,
    );
    assert_eq!(r.exit_code, 4);
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

// ------------------------------------------------------------ opening blocked NSG ports

mod fake_cloud {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;
    use std::path::Path;
    use std::sync::Mutex;

    use cloud_provider::error::CloudError;
    use cloud_provider::models::*;
    use cloud_provider::provider::*;
    use safety_shell::exec::RunCommandOutput;
    use serde_json::{json, Value};

    pub const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000000";

    /// One NSG of the fake cloud: where it is associated and its rules in effective form.
    pub struct FakeNsg {
        pub rg: String,
        /// `subnet` or `nic`.
        pub gate: &'static str,
        /// NICs it applies to.
        pub nics: Vec<&'static str>,
        pub rules: Vec<Value>,
    }

    #[derive(Default)]
    pub struct State {
        pub nsgs: BTreeMap<String, FakeNsg>,
        pub created: Vec<(String, String, NsgRuleSpec)>,
        pub deleted: Vec<(String, String, String)>,
        pub deny_create: bool,
    }

    /// A cloud with two VMs (vm-src 198.18.1.4 on nic-src, vm-dst 198.18.1.5 on nic-dst)
    /// and NSGs whose effective rules follow the rules created and deleted.
    #[derive(Default)]
    pub struct FakeCloud(pub Mutex<State>);

    fn unsupported(what: &str) -> CloudError {
        CloudError::Failed {
            exit_code: Some(2),
            message: format!("the fake cloud does not do {what}"),
        }
    }

    pub fn rule(
        name: &str,
        priority: u32,
        dir: &str,
        access: &str,
        proto: &str,
        ports: &str,
    ) -> Value {
        json!({
            "name": name, "priority": priority, "direction": dir, "access": access,
            "protocol": proto, "sourceAddressPrefix": "0.0.0.0/0",
            "destinationAddressPrefix": "0.0.0.0/0", "sourcePortRange": "0-65535",
            "destinationPortRange": ports,
        })
    }

    /// Azure's last rules (allow all, then deny all) in both directions.
    pub fn defaults() -> Vec<Value> {
        vec![
            rule(
                "defaultSecurityRules/AllowAllIn",
                65000,
                "Inbound",
                "Allow",
                "All",
                "0-65535",
            ),
            rule(
                "defaultSecurityRules/DenyAllInBound",
                65500,
                "Inbound",
                "Deny",
                "All",
                "0-65535",
            ),
            rule(
                "defaultSecurityRules/AllowAllOut",
                65000,
                "Outbound",
                "Allow",
                "All",
                "0-65535",
            ),
            rule(
                "defaultSecurityRules/DenyAllOutBound",
                65500,
                "Outbound",
                "Deny",
                "All",
                "0-65535",
            ),
        ]
    }

    impl FakeCloud {
        pub fn with_nsg(
            self,
            name: &str,
            gate: &'static str,
            nics: &[&'static str],
            extra: Vec<Value>,
        ) -> Self {
            let mut rules = extra;
            rules.extend(defaults());
            self.0.lock().unwrap().nsgs.insert(
                name.into(),
                FakeNsg {
                    rg: "rg-net".into(),
                    gate,
                    nics: nics.to_vec(),
                    rules,
                },
            );
            self
        }
    }

    impl CloudProvider for FakeCloud {
        fn name(&self) -> &'static str {
            "fake"
        }
        fn vm_show(&self, _: &str, _: &str) -> Result<VirtualMachine, CloudError> {
            Err(unsupported("vm show"))
        }
        fn vm_list(&self, _: &str) -> Result<Vec<VirtualMachine>, CloudError> {
            Err(unsupported("vm list"))
        }
        fn vm_by_private_ip(&self, _: &str, _: Ipv4Addr) -> Result<VirtualMachine, CloudError> {
            Err(unsupported("vm by ip"))
        }
        fn vm_nics(&self, _: &str, vm: &str) -> Result<Vec<NetworkInterface>, CloudError> {
            let (nic, ip) = match vm {
                "vm-src" => ("nic-src", "198.18.1.4"),
                "vm-dst" => ("nic-dst", "198.18.1.5"),
                _ => return Err(CloudError::NotFound { message: vm.into() }),
            };
            Ok(vec![serde_json::from_value(json!({
                "name": nic, "resourceGroup": "rg-vm",
                "ipConfigurations": [{"name": "ipconfig1", "privateIPAddress": ip}],
            }))
            .unwrap()])
        }
        fn nic_show(&self, _: &str, _: &str) -> Result<NetworkInterface, CloudError> {
            Err(unsupported("nic show"))
        }
        fn nic_list(&self, _: &str) -> Result<Vec<NetworkInterface>, CloudError> {
            Err(unsupported("nic list"))
        }
        fn effective_nsgs(&self, rg: &str, nic: &str) -> Result<Vec<EffectiveNsg>, CloudError> {
            assert_eq!(rg, "rg-vm");
            let s = self.0.lock().unwrap();
            Ok(s.nsgs
                .iter()
                .filter(|(_, n)| n.nics.contains(&nic))
                .map(|(name, n)| {
                    let assoc = if n.gate == "subnet" {
                        json!({"subnet": {"id": format!("{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/s1")}})
                    } else {
                        json!({"networkInterface": {"id": format!("{SUB}/resourceGroups/rg-vm/providers/Microsoft.Network/networkInterfaces/{nic}")}})
                    };
                    serde_json::from_value(json!({
                        "networkSecurityGroup": {"id": format!("{SUB}/resourceGroups/{}/providers/Microsoft.Network/networkSecurityGroups/{name}", n.rg)},
                        "association": assoc,
                        "effectiveSecurityRules": n.rules,
                        "tagMap": {},
                    }))
                    .unwrap()
                })
                .collect())
        }
        fn effective_routes(&self, _: &str, _: &str) -> Result<Vec<EffectiveRoute>, CloudError> {
            Err(unsupported("effective routes"))
        }
        fn nsg_show(&self, _: &str, _: &str) -> Result<NetworkSecurityGroup, CloudError> {
            Err(unsupported("nsg show"))
        }
        fn nsg_list(&self, _: &str) -> Result<Vec<NetworkSecurityGroup>, CloudError> {
            Err(unsupported("nsg list"))
        }
        fn nsg_rule_list(
            &self,
            _: &str,
            _: &str,
            _: bool,
        ) -> Result<Vec<SecurityRule>, CloudError> {
            Err(unsupported("nsg rule list"))
        }
        fn nsg_rule_create(
            &self,
            rg: &str,
            nsg: &str,
            r: &NsgRuleSpec,
            _: &str,
        ) -> Result<SecurityRule, CloudError> {
            let mut s = self.0.lock().unwrap();
            if s.deny_create {
                return Err(CloudError::Denied {
                    reason: "the operator said no".into(),
                    audit_id: "a-1".into(),
                });
            }
            let n = s.nsgs.get_mut(nsg).ok_or_else(|| CloudError::NotFound {
                message: nsg.into(),
            })?;
            assert_eq!(rg, n.rg, "rule created in the NSG's own resource group");
            assert!(
                !n.rules
                    .iter()
                    .any(|x| x["priority"] == r.priority && x["direction"] == r.direction.as_str()),
                "priority {} already used",
                r.priority
            );
            n.rules.push(json!({
                "name": format!("securityRules/{}", r.name), "priority": r.priority,
                "direction": r.direction, "access": r.access, "protocol": r.protocol,
                "sourceAddressPrefixes": r.source_address_prefixes,
                "destinationAddressPrefixes": r.destination_address_prefixes,
                "sourcePortRange": "0-65535",
                "destinationPortRanges": r.destination_port_ranges.iter().map(|p| format!("{p}-{p}")).collect::<Vec<_>>(),
            }));
            s.created.push((rg.into(), nsg.into(), r.clone()));
            Ok(serde_json::from_value(json!({
                "name": r.name, "priority": r.priority, "direction": r.direction,
                "access": r.access, "protocol": r.protocol,
            }))
            .unwrap())
        }
        fn nsg_rule_delete(
            &self,
            rg: &str,
            nsg: &str,
            rule: &str,
            _: &str,
        ) -> Result<(), CloudError> {
            let mut s = self.0.lock().unwrap();
            let n = s.nsgs.get_mut(nsg).ok_or_else(|| CloudError::NotFound {
                message: nsg.into(),
            })?;
            let full = format!("securityRules/{rule}");
            let before = n.rules.len();
            n.rules.retain(|x| x["name"] != full.as_str());
            if n.rules.len() == before {
                return Err(CloudError::NotFound {
                    message: rule.into(),
                });
            }
            s.deleted.push((rg.into(), nsg.into(), rule.into()));
            Ok(())
        }
        fn route_table_show(&self, _: &str, _: &str) -> Result<RouteTable, CloudError> {
            Err(unsupported("route table show"))
        }
        fn route_table_list(&self, _: &str) -> Result<Vec<RouteTable>, CloudError> {
            Err(unsupported("route table list"))
        }
        fn route_list(&self, _: &str, _: &str) -> Result<Vec<Route>, CloudError> {
            Err(unsupported("route list"))
        }
        fn subnet_show(&self, _: &str, _: &str, _: &str) -> Result<Subnet, CloudError> {
            Err(unsupported("subnet show"))
        }
        fn subnet_update(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &SubnetUpdate,
            _: &str,
        ) -> Result<Subnet, CloudError> {
            Err(unsupported("subnet update"))
        }
        fn run_command(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<(RunCommandOutput, String), CloudError> {
            Err(unsupported("run-command"))
        }
        fn capture_create(&self, _: &CaptureSpec, _: &str) -> Result<PacketCapture, CloudError> {
            Err(unsupported("capture create"))
        }
        fn capture_show(&self, _: &str, _: &str) -> Result<PacketCapture, CloudError> {
            Err(unsupported("capture show"))
        }
        fn capture_status(&self, _: &str, _: &str) -> Result<PacketCaptureStatus, CloudError> {
            Err(unsupported("capture status"))
        }
        fn capture_stop(&self, _: &str, _: &str, _: &str) -> Result<(), CloudError> {
            Err(unsupported("capture stop"))
        }
        fn capture_delete(&self, _: &str, _: &str, _: &str) -> Result<(), CloudError> {
            Err(unsupported("capture delete"))
        }
        fn capture_list(&self, _: &str) -> Result<Vec<PacketCapture>, CloudError> {
            Err(unsupported("capture list"))
        }
        fn blob_upload(
            &self,
            _: &BlobLocation,
            _: &str,
            _: &Path,
            _: &str,
        ) -> Result<(), CloudError> {
            Err(unsupported("blob upload"))
        }
        fn blob_download(
            &self,
            _: &BlobLocation,
            _: &str,
            _: &Path,
            _: &str,
        ) -> Result<(), CloudError> {
            Err(unsupported("blob download"))
        }
        fn blob_list(&self, _: &BlobLocation, _: &str) -> Result<Vec<BlobItem>, CloudError> {
            Err(unsupported("blob list"))
        }
        fn blob_show(&self, _: &BlobLocation, _: &str) -> Result<BlobItem, CloudError> {
            Err(unsupported("blob show"))
        }
        fn blob_delete(&self, _: &BlobLocation, _: &str, _: &str) -> Result<(), CloudError> {
            Err(unsupported("blob delete"))
        }
        fn resource_group_location(&self, _: &str) -> Result<String, CloudError> {
            Err(unsupported("resource group location"))
        }
    }
}

use fake_cloud::{rule, FakeCloud};

const CLOUD_KEYS: &[(&str, &str)] = &[
    ("RESOURCE_GROUP", "rg-vm"),
    ("SOURCE_VM_NAME", "vm-src"),
    ("DEST_VM_NAME", "vm-dst"),
    ("TEST_TYPE", "throughput"),
];

fn run_cloud(
    dir: &std::path::Path,
    fake: &Fake,
    cloud: &FakeCloud,
    open: bool,
    keep: bool,
) -> pipe_meter::PipelineResult {
    let mut extra = CLOUD_KEYS.to_vec();
    extra.push(("SESSION_ID", "pmeter_nsg"));
    let cfg = config(dir, &extra);
    let g = gate(dir, fake, true);
    run_pipe_meter(
        &cfg,
        &g,
        Some(cloud),
        RunOptions {
            targets: targets(),
            open_blocked_ports: open,
            keep_opened_rules: keep,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

fn deny_5001(priority: u32) -> serde_json::Value {
    rule(
        "securityRules/deny-iperf",
        priority,
        "Inbound",
        "Deny",
        "Tcp",
        "5001-5001",
    )
}

#[test]
fn denied_port_is_opened_above_the_deny_measured_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[], &[2.0; 5]);
    // Priority 199 is taken by another (unrelated) rule, so the free one below 200 is 198.
    let cloud = FakeCloud::default().with_nsg(
        "nsg-dst",
        "nic",
        &["nic-dst"],
        vec![
            deny_5001(200),
            rule(
                "securityRules/other",
                199,
                "Inbound",
                "Allow",
                "Udp",
                "53-53",
            ),
        ],
    );
    let r = run_cloud(dir.path(), &fake, &cloud, true, false);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    let s = cloud.0.lock().unwrap();
    assert_eq!(s.created.len(), 1, "{:?}", s.created);
    let (rg, nsg, spec) = &s.created[0];
    assert_eq!((rg.as_str(), nsg.as_str()), ("rg-net", "nsg-dst"));
    assert_eq!(spec.name, "pmeter-pmeter_nsg-5001");
    assert_eq!(spec.priority, 198);
    assert_eq!(spec.direction, "Inbound");
    assert_eq!(spec.access, "Allow");
    assert_eq!(spec.protocol, "Tcp");
    assert_eq!(spec.source_address_prefixes, vec!["198.18.1.4/32"]);
    assert_eq!(spec.destination_address_prefixes, vec!["198.18.1.5/32"]);
    assert_eq!(spec.destination_port_ranges, vec!["5001"]);
    // Removed at the end of the run, and the rule set is back as it was.
    assert_eq!(
        s.deleted,
        vec![(
            "rg-net".into(),
            "nsg-dst".into(),
            "pmeter-pmeter_nsg-5001".into()
        )]
    );
    assert!(!s.nsgs["nsg-dst"]
        .rules
        .iter()
        .any(|x| x["name"].as_str().unwrap().contains("pmeter")));
    let pf = &r.result["preflight"];
    assert_eq!(pf["blocked_ports"], serde_json::json!([5001]));
    assert_eq!(pf["ports_open"], true, "{pf}");
    let actions = pf["actions_taken"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert!(
        actions[0].as_str().unwrap().contains("priority 198"),
        "{actions:?}"
    );
    assert_eq!(pf["opened_rules_cleanup"][0]["removed"], true, "{pf}");
    // The preflight artifact records it too.
    let art: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("pmeter_nsg_preflight.json")).unwrap(),
    )
    .unwrap();
    let summary = &art["summary"];
    assert_eq!(summary["blocked_ports"], serde_json::json!([5001]), "{art}");
    assert_eq!(summary["actions_taken"].as_array().unwrap().len(), 1);
}

#[test]
fn deny_on_subnet_and_source_outbound_are_opened_on_their_own_gates() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[], &[2.0; 5]);
    let cloud = FakeCloud::default()
        .with_nsg(
            "nsg-subnet",
            "subnet",
            &["nic-src", "nic-dst"],
            vec![deny_5001(300)],
        )
        .with_nsg(
            "nsg-src",
            "nic",
            &["nic-src"],
            vec![rule(
                "securityRules/deny-out",
                150,
                "Outbound",
                "Deny",
                "Tcp",
                "5000-5010",
            )],
        );
    let r = run_cloud(dir.path(), &fake, &cloud, true, true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    let s = cloud.0.lock().unwrap();
    let mut got: Vec<(String, String, u32)> = s
        .created
        .iter()
        .map(|(_, n, sp)| (n.clone(), sp.direction.clone(), sp.priority))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("nsg-src".into(), "Outbound".into(), 149),
            ("nsg-subnet".into(), "Inbound".into(), 299),
        ]
    );
    // --keep-opened-rules: nothing removed, and the result says so.
    assert!(s.deleted.is_empty());
    assert_eq!(
        r.result["preflight"]["opened_rules_cleanup"][0]["removed"],
        false
    );
}

#[test]
fn refused_rule_creation_aborts_the_preflight_with_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[], &[2.0; 5]);
    let cloud = FakeCloud::default().with_nsg("nsg-dst", "nic", &["nic-dst"], vec![deny_5001(200)]);
    cloud.0.lock().unwrap().deny_create = true;
    let r = run_cloud(dir.path(), &fake, &cloud, true, false);
    assert_eq!(r.exit_code, 5, "{}", r.summary);
    assert_eq!(r.status, Status::AbortedPreflight);
    let e = r.result["error"].as_str().unwrap();
    assert!(
        e.contains("TCP 5001 was not approved") && e.contains("operator said no"),
        "{e}"
    );
    // Nothing measured.
    assert!(!fake
        .0
        .lock()
        .unwrap()
        .commands
        .iter()
        .any(|c| c.contains("nohup")));
    assert!(cloud.0.lock().unwrap().created.is_empty());
}

#[test]
fn no_free_priority_above_the_deny_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[], &[2.0; 5]);
    let cloud = FakeCloud::default().with_nsg(
        "nsg-dst",
        "nic",
        &["nic-dst"],
        vec![
            deny_5001(102),
            rule("securityRules/a", 100, "Inbound", "Allow", "Udp", "53-53"),
            rule("securityRules/b", 101, "Inbound", "Allow", "Udp", "54-54"),
        ],
    );
    let r = run_cloud(dir.path(), &fake, &cloud, true, false);
    assert_eq!(r.exit_code, 3, "{}", r.summary);
    assert_eq!(r.status, Status::Failed);
    let e = r.result["error"].as_str().unwrap();
    assert!(
        e.contains("no free priority") && e.contains("priority 102") && e.contains("nsg-dst"),
        "{e}"
    );
    assert!(cloud.0.lock().unwrap().created.is_empty());
}

#[test]
fn without_the_flag_a_denied_port_is_only_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[], &[0.0; 5]);
    let cloud = FakeCloud::default().with_nsg("nsg-dst", "nic", &["nic-dst"], vec![deny_5001(200)]);
    let r = run_cloud(dir.path(), &fake, &cloud, false, false);
    assert!(cloud.0.lock().unwrap().created.is_empty());
    let pf = &r.result["preflight"];
    assert_eq!(pf["ports_open"], false);
    assert_eq!(pf["blocked_ports"], serde_json::json!([5001]));
    assert!(
        pf["findings"][0].as_str().unwrap().contains("deny-iperf"),
        "{pf}"
    );
}

#[test]
fn the_gate_asks_before_creating_or_deleting_an_nsg_rule() {
    let ctx = safety_shell::ClassifyContext::default();
    for cmd in [
        "az network nsg rule create --resource-group rg-net --nsg-name nsg-dst --name pmeter-pmeter_x-5001 --priority 199 --direction Inbound --access Allow --protocol Tcp --source-address-prefixes 198.18.1.4/32 --destination-port-ranges 5001",
        "az network nsg rule delete --resource-group rg-net --nsg-name nsg-dst --name pmeter-pmeter_x-5001",
    ] {
        let c = safety_shell::classify(cmd, &ctx);
        assert_eq!(c.classification, safety_shell::Class::Risky, "{cmd}: {c:?}");
    }
}

// ------------------------------------------------------------ installing missing tools

fn run_install(
    dir: &std::path::Path,
    fake: &Fake,
    install: bool,
    approve: bool,
) -> pipe_meter::PipelineResult {
    let cfg = config(dir, &[]);
    let g = gate(dir, fake, approve);
    run_pipe_meter(
        &cfg,
        &g,
        None,
        RunOptions {
            targets: targets(),
            install_missing: install,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

fn no_tools(pm: &'static str) -> Fake {
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    {
        let mut s = fake.0.lock().unwrap();
        s.no_tools = true;
        s.package_manager = pm;
    }
    fake
}

#[test]
fn missing_tools_are_installed_with_apt_get_after_approval() {
    let dir = tempfile::tempdir().unwrap();
    let fake = no_tools("/usr/bin/apt-get\n");
    let r = run_install(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    assert_eq!(r.result["preflight"]["tools_ready"], true);
    let actions = r.result["preflight"]["actions_taken"].as_array().unwrap();
    assert_eq!(
        actions[0], "installed iperf qperf on the source VM with apt-get",
        "{actions:?}"
    );
    assert_eq!(
        r.result["host_facts"]["source"]["package_manager"],
        "apt-get"
    );
    let s = fake.0.lock().unwrap();
    let installs: Vec<&String> = s
        .commands
        .iter()
        .filter(|c| c.contains("install -y"))
        .collect();
    // One install per VM, each on its own target.
    assert_eq!(installs.len(), 2, "{installs:?}");
    assert!(
        installs[0].starts_with("netns:src-sim ") && installs[1].starts_with("netns:dest-sim ")
    );
    assert_eq!(
        actions[1], "installed iperf qperf on the dest VM with apt-get",
        "{actions:?}"
    );
    assert!(
        installs[1].contains("sudo -n apt-get update && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y iperf qperf"),
        "{installs:?}"
    );
    assert!(s.running.is_empty());
}

#[test]
fn dnf_installs_without_an_update_step() {
    let dir = tempfile::tempdir().unwrap();
    let fake = no_tools("/usr/bin/dnf\n/usr/bin/yum\n");
    let r = run_install(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    let s = fake.0.lock().unwrap();
    assert!(s
        .commands
        .iter()
        .any(|c| c.ends_with("sudo -n dnf install -y iperf qperf")));
}

#[test]
fn refused_install_aborts_the_preflight_with_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let fake = no_tools("/usr/bin/apt-get\n");
    let r = run_install(dir.path(), &fake, true, false);
    assert_eq!(r.exit_code, 5, "{}", r.summary);
    assert_eq!(r.status, Status::AbortedPreflight);
    let e = r.result["error"].as_str().unwrap();
    assert!(
        e.contains("installing iperf qperf on the source VM was not approved"),
        "{e}"
    );
    assert!(fake.0.lock().unwrap().no_tools);
}

#[test]
fn missing_tools_without_the_flag_or_a_package_manager_stop_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let fake = no_tools("/usr/bin/apt-get\n");
    let r = run_install(dir.path(), &fake, false, true);
    assert_eq!(r.exit_code, 3);
    assert!(r.result["error"]
        .as_str()
        .unwrap()
        .contains("--install-missing"));
    assert!(!fake
        .0
        .lock()
        .unwrap()
        .commands
        .iter()
        .any(|c| c.contains("install -y")));

    let fake = no_tools("");
    let r = run_install(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 3);
    let e = r.result["error"].as_str().unwrap();
    assert!(e.contains("has no apt-get, dnf or yum"), "{e}");

    let fake = no_tools("/usr/bin/apt-get\n");
    fake.0.lock().unwrap().install_fails = true;
    let r = run_install(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 3);
    let e = r.result["error"].as_str().unwrap();
    assert!(
        e.contains("failed (exit Some(100))") && e.contains("Unable to locate"),
        "{e}"
    );
}

#[test]
fn the_facts_script_stays_safe_and_installing_is_risky() {
    let ctx = safety_shell::ClassifyContext::default();
    let c = safety_shell::classify(pipe_meter::pipeline::FACTS_SCRIPT, &ctx);
    assert_eq!(c.classification, safety_shell::Class::Safe, "{c:?}");
    for pm in ["apt-get", "dnf", "yum"] {
        let cmd = pipe_meter::pipeline::install_command(pm, &["iperf", "qperf"]).unwrap();
        let c = safety_shell::classify(&cmd, &ctx);
        assert_eq!(c.classification, safety_shell::Class::Risky, "{cmd}: {c:?}");
    }
    assert_eq!(
        pipe_meter::pipeline::install_command("pacman", &["iperf"]),
        None
    );
}

// ------------------------------------------------------------ upload

fn run_upload(
    dir: &std::path::Path,
    fake: &Fake,
    storage: bool,
    upload: bool,
) -> pipe_meter::PipelineResult {
    let mut extra = vec![("SESSION_ID", "pmeter_up")];
    if storage {
        extra.push(("STORAGE_ACCOUNT_NAME", "stlab"));
        extra.push(("STORAGE_CONTAINER_NAME", "results"));
    }
    let cfg = config(dir, &extra);
    let g = Arc::new(gate(dir, fake, true));
    let az = cloud_provider::azure::AzureCli::new(g.clone(), "az");
    run_pipe_meter(
        &cfg,
        &g,
        Some(&az),
        RunOptions {
            targets: targets(),
            upload,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn upload_puts_every_artifact_and_sidecar_in_the_container_and_records_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run_upload(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    let url = "https://stlab.blob.core.windows.net/results/pmeter_up_result.json";
    assert_eq!(r.result["blob"]["uploaded"], true, "{}", r.result["blob"]);
    assert_eq!(r.result["blob"]["url"], url);
    assert!(
        r.summary.contains(&format!("Blob:       {url}")),
        "{}",
        r.summary
    );
    let s = fake.0.lock().unwrap();
    for kind in [
        "manifest",
        "preflight",
        "raw",
        "computed",
        "comparison",
        "result",
    ] {
        let name = format!("pmeter_up_{kind}.json");
        let local = std::fs::read(dir.path().join(&name)).unwrap();
        assert_eq!(s.blobs.get(&name), Some(&local), "{name}");
        let sidecar = std::fs::read(dir.path().join(format!("{name}.sha256"))).unwrap();
        assert_eq!(s.blobs.get(&format!("{name}.sha256")), Some(&sidecar));
    }
    // The uploaded result names its own URL.
    let up: serde_json::Value = serde_json::from_slice(&s.blobs["pmeter_up_result.json"]).unwrap();
    assert_eq!(up["blob"]["url"], url);
}

#[test]
fn failed_upload_is_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    fake.0.lock().unwrap().upload_fails_for = Some("_result.json");
    let r = run_upload(dir.path(), &fake, true, true);
    assert_eq!(r.exit_code, 0, "{}", r.summary);
    assert_eq!(r.result["blob"]["uploaded"], false);
    let errors = r.result["blob"]["errors"].as_array().unwrap();
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .contains("cannot upload pmeter_up_result.json to stlab/results"),
        "{errors:?}"
    );
    assert!(r.summary.contains("upload FAILED"), "{}", r.summary);
    // The local result says so too, and is still verifiable.
    let local: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("pmeter_up_result.json")).unwrap())
            .unwrap();
    assert_eq!(local["blob"]["uploaded"], false);
    let store = cloud_provider::artifact::LocalStore::new(dir.path().to_path_buf());
    use cloud_provider::artifact::ArtifactStore;
    store.get("pmeter_up_result.json").unwrap();
    assert_eq!(
        r.artifacts
            .iter()
            .filter(|a| a.as_str() == "pmeter_up_result.json")
            .count(),
        1
    );
}

#[test]
fn no_upload_without_the_flag_or_the_storage_names() {
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let r = run_upload(dir.path(), &fake, true, false);
    assert!(r.result["blob"]["reason"]
        .as_str()
        .unwrap()
        .contains("--upload"));
    let r = run_upload(dir.path(), &fake, false, true);
    assert!(r.result["blob"]["reason"]
        .as_str()
        .unwrap()
        .contains("no storage account"));
    assert!(fake.0.lock().unwrap().blobs.is_empty());
}

// ------------------------------------------------------------ baselines and history from the container

fn run_blob(
    dir: &std::path::Path,
    fake: &Fake,
    extra: &[(&str, &str)],
    upload: bool,
) -> pipe_meter::PipelineResult {
    let mut e = vec![
        ("STORAGE_ACCOUNT_NAME", "stlab"),
        ("STORAGE_CONTAINER_NAME", "results"),
    ];
    e.extend_from_slice(extra);
    let cfg = config(dir, &e);
    let g = Arc::new(gate(dir, fake, true));
    let az = cloud_provider::azure::AzureCli::new(g.clone(), "az");
    run_pipe_meter(
        &cfg,
        &g,
        Some(&az),
        RunOptions {
            targets: targets(),
            upload,
            ..RunOptions::default()
        },
    )
    .unwrap()
}

fn set_rates(fake: &Fake, lat: f64, rate: f64) {
    let mut s = fake.0.lock().unwrap();
    s.latencies = [lat; 5].into_iter().collect();
    s.rates = [rate; 5].into_iter().collect();
}

#[test]
fn a_baseline_only_in_the_container_is_found_and_compared() {
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let first = tempfile::tempdir().unwrap();
    let b = run_blob(
        first.path(),
        &fake,
        &[("IS_BASELINE", "true"), ("SESSION_ID", "pmeter_b1")],
        true,
    );
    assert_eq!(b.exit_code, 0, "{}", b.summary);
    assert!(fake
        .0
        .lock()
        .unwrap()
        .blobs
        .contains_key("pmeter_b1_baseline.json.sha256"));
    // Another machine (an empty audit directory) compares with the latest baseline.
    let second = tempfile::tempdir().unwrap();
    set_rates(&fake, 11.0, 1.5);
    let c = run_blob(
        second.path(),
        &fake,
        &[("COMPARE_BASELINE", "true"), ("SESSION_ID", "pmeter_c1")],
        false,
    );
    let cmp = &c.result["comparison"];
    assert_eq!(cmp["baseline_found"], true, "{cmp}");
    assert_eq!(cmp["baseline_session"], "pmeter_b1");
    assert_eq!(cmp["baseline_origin"], "blob");
    assert!(cmp["searched"]
        .as_str()
        .unwrap()
        .contains("blob:stlab/results"));
    assert!((cmp["delta_pct_latency"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    assert!((cmp["delta_pct_throughput"].as_f64().unwrap() + 25.0).abs() < 1e-9);
    assert_eq!(c.exit_code, 0);
    // By session id too.
    let third = tempfile::tempdir().unwrap();
    set_rates(&fake, 10.0, 2.0);
    let d = run_blob(
        third.path(),
        &fake,
        &[("BASELINE_SESSION", "pmeter_b1")],
        false,
    );
    assert_eq!(d.result["comparison"]["baseline_found"], true);
    assert_eq!(d.result["comparison"]["baseline_origin"], "blob");
    // A session in neither store is reported, not fatal.
    let e = run_blob(
        third.path(),
        &fake,
        &[("BASELINE_SESSION", "pmeter_nope")],
        false,
    );
    assert_eq!(e.exit_code, 0);
    assert!(e.result["comparison"]["error"]
        .as_str()
        .unwrap()
        .contains("no baseline found"));
    // The first machine has the baseline locally as well: it is read there, not downloaded.
    fake.0.lock().unwrap().downloads.clear();
    let f = run_blob(first.path(), &fake, &[("COMPARE_BASELINE", "true")], false);
    assert_eq!(f.result["comparison"]["baseline_origin"], "local");
    assert!(
        !fake
            .0
            .lock()
            .unwrap()
            .downloads
            .iter()
            .any(|d| d.starts_with("pmeter_b1_")),
        "the local copy should have been used"
    );
}

#[test]
fn a_changed_baseline_in_the_container_is_an_integrity_failure() {
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let first = tempfile::tempdir().unwrap();
    run_blob(
        first.path(),
        &fake,
        &[("IS_BASELINE", "true"), ("SESSION_ID", "pmeter_b2")],
        true,
    );
    {
        let mut s = fake.0.lock().unwrap();
        let b = s.blobs.get_mut("pmeter_b2_baseline.json").unwrap();
        let text = String::from_utf8(b.clone())
            .unwrap()
            .replacen("\"p90\": 2", "\"p90\": 9", 1);
        assert_ne!(&text.as_bytes(), b, "the fixture should change the blob");
        *b = text.into_bytes();
    }
    let second = tempfile::tempdir().unwrap();
    set_rates(&fake, 10.0, 2.0);
    let c = run_blob(second.path(), &fake, &[("COMPARE_BASELINE", "true")], false);
    assert_eq!(c.exit_code, 4, "{}", c.result["comparison"]);
    assert_eq!(c.result["comparison"]["baseline_found"], false);
    assert_eq!(c.result["comparison"]["integrity_failure"], true);
    let e = c.result["comparison"]["error"].as_str().unwrap();
    assert!(
        e.contains("integrity failure") && e.contains("blob:stlab/results"),
        "{e}"
    );
    // A missing sidecar blob is one too.
    {
        let mut s = fake.0.lock().unwrap();
        s.blobs.remove("pmeter_b2_baseline.json.sha256");
    }
    set_rates(&fake, 10.0, 2.0);
    let d = run_blob(
        second.path(),
        &fake,
        &[("BASELINE_SESSION", "pmeter_b2")],
        false,
    );
    assert_eq!(d.exit_code, 4);
    assert!(d.result["comparison"]["error"]
        .as_str()
        .unwrap()
        .contains("sidecar blob pmeter_b2_baseline.json.sha256 is missing"));
}

#[test]
fn an_unlistable_container_leaves_the_local_baselines() {
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let dir = tempfile::tempdir().unwrap();
    run_blob(
        dir.path(),
        &fake,
        &[("IS_BASELINE", "true"), ("SESSION_ID", "pmeter_b3")],
        false,
    );
    fake.0.lock().unwrap().list_fails = true;
    set_rates(&fake, 10.0, 2.0);
    let c = run_blob(dir.path(), &fake, &[("COMPARE_BASELINE", "true")], false);
    assert_eq!(c.exit_code, 0);
    let cmp = &c.result["comparison"];
    assert_eq!(cmp["baseline_found"], true, "{cmp}");
    assert_eq!(cmp["baseline_origin"], "local");
    assert!(cmp["store_notes"][0]
        .as_str()
        .unwrap()
        .contains("could not be listed"));
}

#[test]
fn history_merges_local_and_stored_results_and_refuses_changed_ones() {
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let first = tempfile::tempdir().unwrap();
    run_blob(first.path(), &fake, &[("SESSION_ID", "pmeter_h1")], true);
    let second = tempfile::tempdir().unwrap();
    set_rates(&fake, 10.0, 2.0);
    run_blob(second.path(), &fake, &[("SESSION_ID", "pmeter_h2")], true);
    set_rates(&fake, 10.0, 2.0);
    run_blob(second.path(), &fake, &[("SESSION_ID", "pmeter_h3")], false);
    // Read as the CLI does: a gate that approves nothing, so listing and downloading into
    // the scratch directory must be SAFE.
    let audit = AuditLog::open_in_dir(second.path(), "pmeter_hist").unwrap();
    let g = Arc::new(
        Gate::builder(audit)
            .executor(fake.clone())
            .approver(NeverApprover)
            .context(safety_shell::ClassifyContext {
                output_dir: Some(pipe_meter::store::scratch_dir(second.path())),
                ..Default::default()
            })
            .build(),
    );
    let az = cloud_provider::azure::AzureCli::new(g, "az");
    let at = cloud_provider::provider::BlobLocation {
        account: "stlab".into(),
        container: "results".into(),
        auth: cloud_provider::provider::BlobAuth::Login,
    };
    let sources = pipe_meter::store::Sources::new(second.path(), Some(&az), Some(at.clone()));
    let h = pipe_meter::history::collect(&sources, "198.18.1.4", "198.18.1.5").unwrap();
    let rows: Vec<(String, pipe_meter::store::Origin)> = h
        .rows
        .iter()
        .map(|r| (r.session_id.clone(), r.origin))
        .collect();
    use pipe_meter::store::Origin;
    assert_eq!(
        rows,
        vec![
            ("pmeter_h1".to_string(), Origin::Blob),
            ("pmeter_h2".to_string(), Origin::Local),
            ("pmeter_h3".to_string(), Origin::Local),
        ],
        "{h:?}"
    );
    assert_eq!(h.exit_code(), 0, "{h:?}");
    assert!(pipe_meter::history::table(&h).contains("blob"));
    // A changed stored result is refused (exit 4) and left out of the table.
    {
        let mut s = fake.0.lock().unwrap();
        s.blobs
            .get_mut("pmeter_h1_result.json")
            .unwrap()
            .extend_from_slice(b" ");
    }
    let h = pipe_meter::history::collect(&sources, "198.18.1.4", "198.18.1.5").unwrap();
    assert_eq!(h.rows.len(), 2);
    assert_eq!(h.integrity_failures.len(), 1, "{h:?}");
    assert!(h.integrity_failures[0].contains("pmeter_h1_result.json"));
    assert_eq!(h.exit_code(), 4);
    // Local only: the stored ones are not seen.
    let local = pipe_meter::store::Sources::local(second.path());
    let h = pipe_meter::history::collect(&local, "198.18.1.4", "198.18.1.5").unwrap();
    assert_eq!(h.rows.len(), 2);
}

// ------------------------------------------------------------ Ctrl-C

#[test]
fn ctrl_c_mid_measurement_keeps_what_was_measured_and_stops_the_servers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 9], &[2.0; 9]);
    let cfg = config(
        dir.path(),
        &[("ITERATIONS", "8"), ("SESSION_ID", "pmeter_int")],
    );
    let g = gate(dir.path(), &fake, true);
    let cancel = Arc::new(AtomicBool::new(false));
    let c2 = cancel.clone();
    // The "Ctrl-C" arrives while the third run (warm-up + 2 measured) is done.
    let progress = move |p: pipe_meter::Progress| {
        if p.done == 3 {
            c2.store(true, Ordering::SeqCst);
        }
    };
    let r = run_pipe_meter(
        &cfg,
        &g,
        None,
        RunOptions {
            targets: targets(),
            cancel,
            progress: Some(&progress),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Interrupted);
    assert_eq!(r.exit_code, pipe_meter::pipeline::EXIT_INTERRUPTED);
    assert_eq!(r.exit_code, 130);
    assert_eq!(r.result["status"], "interrupted");
    assert_eq!(r.result["results"]["is_stable"], false);
    assert_eq!(
        r.result["results"]["iteration_data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(r.result["results"]["latency_p90"], 10.0);
    use cloud_provider::artifact::ArtifactStore;
    let store = cloud_provider::artifact::LocalStore::new(dir.path().to_path_buf());
    for kind in [
        "manifest",
        "preflight",
        "raw",
        "computed",
        "comparison",
        "result",
    ] {
        store.get(&format!("pmeter_int_{kind}.json")).unwrap();
    }
    let raw: serde_json::Value =
        serde_json::from_slice(&store.get("pmeter_int_raw.json").unwrap()).unwrap();
    assert_eq!(raw["interrupted"], true);
    let s = fake.0.lock().unwrap();
    assert!(s.running.is_empty(), "servers survived: {:?}", s.running);
    let clients = s
        .commands
        .iter()
        .filter(|c| c.contains("timeout ") && c.contains(" iperf "))
        .count();
    assert_eq!(clients, 3, "no run may start after the interrupt");
}

#[test]
fn ctrl_c_before_the_measurement_starts_nothing() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let fake = sim(&[10.0; 5], &[2.0; 5]);
    let cfg = config(dir.path(), &[]);
    let g = gate(dir.path(), &fake, true);
    let r = run_pipe_meter(
        &cfg,
        &g,
        None,
        RunOptions {
            targets: targets(),
            cancel: Arc::new(AtomicBool::new(true)),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.status, Status::Interrupted);
    assert_eq!(r.exit_code, 130);
    let s = fake.0.lock().unwrap();
    assert!(
        !s.commands.iter().any(|c| c.contains("nohup ")),
        "{:?}",
        s.commands
    );
}
