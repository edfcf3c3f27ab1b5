//! Lab end to end: the `cloud-orchestrator` binary against real netlab labs through netlab's
//! `az` front end (`AZ_PATH` points at a wrapper running `netlab az --prefix P`).
//!
//! - scenario J: a capture on dest-vm shows SYNs to 5001 without SYN-ACK, and the attached
//!   analysis says so (exit 1: a high finding);
//! - a second capture on a VM with one active is refused;
//! - a process killed mid-capture leaves an orphan that the next run finds and cleans;
//! - scenario C: a dual-end capture pairs both sides with the right roles.
//!
//! Needs root and the netlab binary (`cargo build -p netlab`; found in `NETLAB_BIN`, else in
//! this test's target directory). Otherwise it prints one SKIP line saying what enables it.
//! Labs are torn down on success, failure and panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn netlab_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETLAB_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("netlab");
    p.is_file().then_some(p)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(|u| u == "0")
        })
        .unwrap_or(false)
}

struct Lab {
    bin: PathBuf,
    state: tempfile::TempDir,
    work: tempfile::TempDir,
    prefix: String,
}

impl Lab {
    fn up(bin: &Path, prefix: &str, scenario: &str, inject: bool) -> Lab {
        let lab = Lab {
            bin: bin.to_path_buf(),
            state: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
            prefix: prefix.to_string(),
        };
        let sc = workspace_root().join(scenario);
        let sc = sc.to_str().unwrap();
        let out = lab.netlab(&["up", sc, "--prefix", prefix]);
        assert!(
            out.status.success(),
            "netlab up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if inject {
            let out = lab.netlab(&["inject", "--prefix", prefix, sc]);
            assert!(
                out.status.success(),
                "netlab inject: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let env = lab.netlab(&["env", "--prefix", prefix, "--config"]);
        assert!(
            env.status.success(),
            "netlab env: {}",
            String::from_utf8_lossy(&env.stderr)
        );
        std::fs::write(lab.work.path().join("config.env"), &env.stdout).unwrap();
        let wrapper = lab.work.path().join("az");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec '{}' --state-dir '{}' -q az --prefix {} \"$@\"\n",
                lab.bin.display(),
                lab.state.path().display(),
                prefix
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        lab
    }

    fn netlab(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("-q")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run netlab")
    }

    /// Runs a shell snippet inside a VM in the background.
    fn exec_bg(&self, vm: &str, script: &str) -> std::process::Child {
        Command::new(&self.bin)
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("-q")
            .args([
                "exec",
                "--prefix",
                &self.prefix,
                vm,
                "--",
                "bash",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run netlab exec")
    }

    fn audit(&self) -> PathBuf {
        self.work.path().join("audit")
    }

    fn orch(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cloud-orchestrator"));
        c.arg("--config")
            .arg(self.work.path().join("config.env"))
            .arg("--audit-dir")
            .arg(self.audit())
            .args(["--approve", "all-risky"])
            .env("AZ_PATH", self.work.path().join("az"))
            // netlab's region `netlab-local` is refused by config.rs's LOCATION check; the
            // orchestrator takes the region from the resource group anyway.
            .env("LOCATION", "netlablocal")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn captures_in_azure(&self) -> Vec<String> {
        let out = Command::new(self.work.path().join("az"))
            .args([
                "network",
                "watcher",
                "packet-capture",
                "list",
                "--location",
                "netlab-local",
                "--output",
                "json",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.netlab(&["down", "--prefix", &self.prefix]);
        if !out.status.success() {
            eprintln!(
                "netlab down --prefix {}: {}",
                self.prefix,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Kills a child we started, by its pid, and reaps it.
struct Reap(std::process::Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip() -> Option<(PathBuf, String)> {
    if !is_root() {
        println!("SKIP lab_capture: needs root (run the tests as root; the lab builds network namespaces)");
        return None;
    }
    let Some(bin) = netlab_bin() else {
        println!("SKIP lab_capture: no netlab binary (run `cargo build -p netlab` first, or set NETLAB_BIN)");
        return None;
    };
    Some((bin, format!("{:05}", std::process::id() % 100_000)))
}

#[test]
fn scenario_j_capture_refusal_and_crash_recovery() {
    let Some((bin, n)) = skip() else { return };
    let lab = Lab::up(
        &bin,
        &format!("oj{n}"),
        "demo/use_case_j/scenario.toml",
        true,
    );

    // 1. A capture on dest-vm while source-vm tries 5001 (dropped by dest's iptables).
    let cap = lab
        .orch()
        .args(["--json", "capture", "--vm", "dest-vm", "--duration", "6"])
        .args([
            "--filter",
            "protocol=TCP,local-port=5001",
            "--reason",
            "lab test J",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let traffic = Reap(lab.exec_bg(
        "source-vm",
        "for i in 1 2 3; do timeout 1.5 bash -c 'exec 3<>/dev/tcp/198.18.1.5/5001' 2>/dev/null; done",
    ));
    let out = cap.wait_with_output().unwrap();
    drop(traffic);
    let j = json_of(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a high finding exits 1: {j:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = &j["task"];
    assert_eq!(task["state"], "cleaned", "{task:#}");
    let side = &task["sides"][0];
    assert_eq!(side["role"], "vm");
    assert_eq!(side["vm"], "dest-vm");
    assert_eq!(side["format"], "pcap");
    let findings = side["analysis"]["findings"].as_array().unwrap();
    let f = findings
        .iter()
        .find(|f| f["rule"] == "xproto.filtered_port")
        .unwrap_or_else(|| panic!("no filtered-port finding: {findings:#?}"));
    let title = f["title"].as_str().unwrap();
    assert!(
        title.contains("5001") && title.contains("silently dropped"),
        "{title}"
    );
    assert!(lab
        .captures_in_azure()
        .iter()
        .all(|c| !c.starts_with("ghostcap-")));

    // 2. One active capture per VM: a detached capture runs, a second is refused.
    let first = lab
        .orch()
        .args([
            "--json",
            "capture",
            "--vm",
            "dest-vm",
            "--duration",
            "120",
            "--detach",
        ])
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first_id = json_of(&first)["task"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = lab
        .orch()
        .args(["capture", "--vm", "dest-vm", "--duration", "5"])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already has an active packet capture") && err.contains(&first_id),
        "{err}"
    );

    // 3. Kill a capture process mid-capture; the next run finds the orphans and cleans them.
    let mut victim = Reap(
        lab.orch()
            .args(["capture", "--vm", "source-vm", "--duration", "120"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    loop {
        let running = lab.captures_in_azure().iter().any(|c| {
            c.starts_with("ghostcap-")
                && c.ends_with("-vm")
                && c != &format!("ghostcap-{first_id}-vm")
        });
        if running {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the capture never started"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    assert_eq!(
        lab.captures_in_azure()
            .iter()
            .filter(|c| c.starts_with("ghostcap-"))
            .count(),
        2
    );
    let review = lab.orch().args(["--json", "orphans"]).output().unwrap();
    assert_eq!(
        review.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&review.stderr)
    );
    let r = json_of(&review);
    let stale: Vec<&serde_json::Value> = r["orphans"]["orphans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == "stale_task")
        .collect();
    assert_eq!(stale.len(), 2, "{r:#}");
    let clean = lab
        .orch()
        .args(["--json", "orphans", "--clean"])
        .output()
        .unwrap();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let c = json_of(&clean);
    assert!(
        c["orphans"]["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["outcome"] == "done"),
        "{c:#}"
    );
    assert!(
        lab.captures_in_azure()
            .iter()
            .all(|c| !c.starts_with("ghostcap-")),
        "{:?}",
        lab.captures_in_azure()
    );
    let st = lab
        .orch()
        .args(["--json", "status", &first_id])
        .output()
        .unwrap();
    assert_eq!(json_of(&st)["task"]["state"], "cancelled");
    let again = lab.orch().args(["--json", "orphans"]).output().unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // Every session's audit chain is intact, and the gated creates/stops/deletes are in it.
    let mut logs = 0;
    let mut text = String::new();
    for e in std::fs::read_dir(lab.audit()).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("_audit.jsonl") {
            logs += 1;
            assert!(
                safety_shell::audit::verify(&p).is_ok(),
                "broken chain in {}",
                p.display()
            );
            text.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    assert!(logs >= 5, "{logs}");
    for cmd in [
        "packet-capture create",
        "packet-capture stop",
        "packet-capture delete",
    ] {
        assert!(text.contains(cmd), "{cmd} not audited");
    }
}

#[test]
fn scenario_c_dual_end_capture_pairs_both_sides_with_roles() {
    let Some((bin, n)) = skip() else { return };
    let lab = Lab::up(
        &bin,
        &format!("oc{n}"),
        "demo/use_case_c/scenario.toml",
        false,
    );
    let cap = lab
        .orch()
        .args([
            "--json",
            "capture",
            "--vm",
            "source-vm",
            "--to",
            "dest-vm",
            "--duration",
            "6",
        ])
        .args([
            "--filter",
            "protocol=TCP,remote-port=8080",
            "--reason",
            "lab test C",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let traffic = Reap(lab.exec_bg(
        "source-vm",
        "for i in 1 2 3; do curl -s -m 2 -o /dev/null http://198.18.1.5:8080/; done",
    ));
    let out = cap.wait_with_output().unwrap();
    drop(traffic);
    let j = json_of(&out);
    assert!(
        matches!(out.status.code(), Some(0) | Some(1)),
        "{j:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = &j["task"];
    assert_eq!(task["state"], "cleaned", "{task:#}");
    let sides = task["sides"].as_array().unwrap();
    assert_eq!(sides.len(), 2);
    let by_role = |r: &str| sides.iter().find(|s| s["role"] == r).unwrap();
    assert_eq!(by_role("source")["vm"], "source-vm");
    assert_eq!(by_role("dest")["vm"], "dest-vm");
    for s in sides {
        assert!(s["analysis"]["packets"].as_u64().unwrap() > 0, "{s:#}");
        assert!(s["capture_name"].as_str().unwrap().starts_with("ghostcap-"));
    }
    // The dest side's filter is the mirror of the source's.
    assert_eq!(by_role("source")["filters"][0]["remote_port"], "8080");
    assert_eq!(by_role("dest")["filters"][0]["local_port"], "8080");
    let cmp = &task["comparison"];
    assert_eq!(cmp["a_role"], "source");
    assert_eq!(cmp["b_role"], "dest");
    assert!(cmp["result"].is_object());
}
