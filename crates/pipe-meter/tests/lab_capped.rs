//! Lab test: a clean path is stable. On a small shared machine an unshaped veth path's
//! throughput is CPU-bound and spreads by more than 50 % between iterations, so stability is
//! asserted where Azure itself makes it hold: a VM size's bandwidth cap. netlab models it with
//! `bandwidth_mbps` on the VM (enforced in the fabric, invisible inside the VM); here dest-vm
//! is capped at 100 Mbit/s. Throughput stability and its level are always asserted; latency
//! stability (µs round trips, CPU-bound) is asserted unless the load average exceeds the CPU
//! count, which is then said in one line. Needs root, the lab packages and the netlab binary
//! (otherwise one SKIP line); the lab is torn down on success, failure and panic.

mod common;

use common::{assert_no_servers, pipe_meter, skip_reason, Lab};
use serde_json::Value;

/// The 1-minute load average.
fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn lab_clean_capped_path_is_stable() {
    if let Some(why) = skip_reason() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED pipe-meter capped-lab test: {why}; run `sudo scripts/setup.sh`, `cargo build -p netlab` and the tests as root to enable them"
        );
        return;
    }
    let lab = Lab::up_with("bandwidth_mbps = 100");
    let cfg = lab.config();
    let audit = lab.dir.path().join("audit");
    // One stream for 4 s: iperf2 counts bytes written, including what still sits in the
    // socket buffer at the end, which inflates short runs on a capped path.
    let load_before = load1();
    let (code, r) = pipe_meter(
        &cfg,
        &audit,
        &[
            "--test-type",
            "both",
            "--iterations",
            "5",
            "--warmup",
            "1",
            "--duration",
            "4",
            "--streams",
            "1",
            "--qperf-duration",
            "2",
            "--expected-throughput-gbps",
            "0.1",
        ],
    );
    let load = load_before.max(load1());
    let res = &r["results"];
    eprintln!("capped clean path (load {load:.2}): {res}");
    assert_eq!(r["status"], "success", "{r}");
    // Throughput: the cap makes it stable whatever else the machine does.
    assert_eq!(res["throughput_anomaly"], Value::Null, "{res}");
    let p90 = res["throughput_p90"].as_f64().unwrap();
    assert!(
        (0.08..=0.12).contains(&p90),
        "throughput P90 {p90} Gbps is not within 20% of the 0.1 Gbps cap: {res}"
    );
    // Latency: real round trips, never a drop.
    assert_ne!(res["latency_anomaly"], "CONNECTIVITY_DROP", "{res}");
    assert!(res["latency_min"].as_f64().unwrap() > 0.0, "{res}");
    // qperf's µs round trips over veth are scheduling-bound: when more processes want the
    // CPUs than there are (load average above the CPU count, e.g. builds running beside the
    // test), they spread by more than 50 % whatever the path does. Then only the throughput
    // half is asserted stable, and one line says so.
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    if load > cpus {
        eprintln!(
            "NOT ASSERTED: latency stability (load average {load:.2} > {cpus} CPUs: µs round trips are CPU-bound); throughput stability asserted"
        );
    } else {
        assert_eq!(res["latency_anomaly"], Value::Null, "{res}");
        assert_eq!(res["anomaly_type"], Value::Null, "{res}");
        assert_eq!(res["is_stable"], true, "{res}");
        assert_eq!(code, 0, "{r}");
    }
    assert_eq!(res["iteration_data"].as_array().unwrap().len(), 5);
    assert_eq!(
        r["expectation"]["within_expectation"], true,
        "{}",
        r["expectation"]
    );
    // The cap is in the fabric, not in the VM: pipe-meter sees no shaping qdisc on dest.
    assert!(
        !r["host_facts"]["dest"]["qdiscs"]
            .to_string()
            .contains("tbf"),
        "{}",
        r["host_facts"]["dest"]
    );
    assert_no_servers(&lab, &audit);
}
