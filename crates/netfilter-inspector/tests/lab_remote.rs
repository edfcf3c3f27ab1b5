//! Lab test: live retrieval over Azure run-command (netlab's `az` front end, which keeps
//! Azure's 4,096-byte cut of each output stream) and over SSH (netlab's sshd, `netlab env`'s
//! config), drift detection against a baseline on both paths, and the chunked fetch of a
//! large ruleset (complete when it fits, an error when a chunk is cut).
//!
//! Needs root and a netlab binary with the `az` front end (`cargo build -p netlab`; found in
//! `NETLAB_BIN`, else next to this test binary's target directory). Otherwise it prints one
//! SKIP line saying what enables it. The lab (prefix `nr<pid>`) is torn down on success,
//! failure and panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cloud_provider::azure::AzureCli;
use cloud_provider::config::{ConfigFile, Environment, FlagOverrides, Settings};
use cloud_provider::remote::{RemotePath, RemoteRunner};
use netfilter_inspector::retrieve::{retrieve_with, ChunkOptions, RetrieveError, VmExec};
use safety_shell::approve::AllRiskyApprover;
use safety_shell::audit::AuditLog;
use safety_shell::Gate;
use serde_json::Value;

fn netlab_bin() -> Option<PathBuf> {
    let p = match std::env::var_os("NETLAB_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            // tests run from {target}/debug/deps/lab_remote-HASH
            let exe = std::env::current_exe().ok()?;
            exe.parent()?.parent()?.join("netlab")
        }
    };
    let help = Command::new(&p).arg("--help").output().ok()?;
    let has_az = String::from_utf8_lossy(&help.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with("az "));
    (p.is_file() && has_az).then_some(p)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse::<u32>().ok())
        })
        == Some(0)
}

struct Lab {
    bin: PathBuf,
    state: tempfile::TempDir,
    prefix: String,
}

impl Lab {
    fn netlab(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("-q")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run netlab")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.netlab(args);
        assert!(
            out.status.success(),
            "netlab {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.netlab(&["down", "--prefix", &self.prefix]);
        if !out.status.success() {
            eprintln!(
                "netlab down --prefix {} failed: {}",
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

/// Runs the CLI with the lab's config; returns (exit code, stdout).
fn cli(cfg: &Path, az: &Path, audit: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netfilter-inspector"))
        .arg("--config")
        .arg(cfg)
        .arg("-q")
        .args(args)
        .arg("--audit-dir")
        .arg(audit)
        // netlab names its region `netlab-local`, which config.rs's LOCATION check refuses.
        .env("LOCATION", "netlablocal")
        .env("AZ_PATH", az)
        .output()
        .expect("run netfilter-inspector");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code().unwrap();
    if code > 1 {
        panic!(
            "netfilter-inspector {args:?} exited {code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (code, stdout)
}

fn changes<'a>(report: &'a Value, family: &str) -> Vec<&'a Value> {
    report["families"][family]["changes"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[test]
fn remote_paths_detect_drift_and_fetch_large_rulesets_whole() {
    if !is_root() {
        println!("SKIP lab_remote: needs root (the lab builds network namespaces)");
        return;
    }
    let Some(bin) = netlab_bin() else {
        println!(
            "SKIP lab_remote: no netlab binary with the az front end (run `cargo build -p netlab` first, or set NETLAB_BIN)"
        );
        return;
    };
    let prefix = format!("nr{:05}", std::process::id() % 100_000);
    let lab = Lab {
        bin,
        state: tempfile::tempdir().unwrap(),
        prefix: prefix.clone(),
    };
    let scenario = workspace_root().join("demo/use_case_a/scenario.toml");
    lab.ok(&["up", scenario.to_str().unwrap(), "--prefix", &prefix]);

    let work = tempfile::tempdir().unwrap();
    let env_out = lab.netlab(&["env", "--prefix", &prefix, "--config"]);
    assert!(env_out.status.success());
    let cfg = work.path().join("config.env");
    std::fs::write(&cfg, &env_out.stdout).unwrap();
    let az = work.path().join("az");
    std::fs::write(
        &az,
        format!(
            "#!/bin/sh\nexec '{}' --state-dir '{}' az --prefix {} \"$@\"\n",
            lab.bin.display(),
            lab.state.path().display(),
            prefix
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let audit = work.path().join("audit");
    let run = |args: &[&str]| cli(&cfg, &az, &audit, args);
    let azure = [
        "--provider",
        "azure",
        "--vm-name",
        "dest-vm",
        "--approve",
        "all-risky",
    ];

    // 1. Azure run-command: baseline, inject a DROP at INPUT 1, compare.
    let (code, _) = run(&[
        &["snapshot"][..],
        &azure,
        &["--is-baseline", "--session-id", "nr_az_base"],
    ]
    .concat());
    assert_eq!(code, 0);
    lab.ok(&[
        "exec", "--prefix", &prefix, "dest-vm", "--", "iptables", "-I", "INPUT", "1", "-p", "tcp",
        "--dport", "5001", "-j", "DROP",
    ]);
    let (code, out) = run(&[
        &["compare"][..],
        &azure,
        &["--compare-baseline", "nr_az_base", "--json"],
    ]
    .concat());
    assert_eq!(code, 1, "drift must exit 1: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["has_critical_changes"], true, "{out}");
    let ip = changes(&report, "ip");
    assert_eq!(ip.len(), 1, "exactly one change, not a shift: {out}");
    assert_eq!(ip[0]["change"], "rule_added");
    assert_eq!(ip[0]["severity"], "critical");
    assert_eq!(ip[0]["object"], "INPUT");
    assert_eq!(ip[0]["position"], 1);
    let detail = ip[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("--dport 5001") && detail.contains("DROP"),
        "{detail}"
    );

    // 2. SSH: baseline on source-vm, inject a 5 mbit tbf, compare.
    let ssh = ["--provider", "ssh", "--vm-name", "source-vm"];
    let (code, _) = run(&[
        &["snapshot"][..],
        &ssh,
        &["--is-baseline", "--session-id", "nr_ssh_base"],
    ]
    .concat());
    assert_eq!(code, 0);
    lab.ok(&["inject", "--prefix", &prefix, "source-vm:rate=5mbit"]);
    let (code, out) = run(&[
        &["compare"][..],
        &ssh,
        &["--compare-baseline", "nr_ssh_base", "--json"],
    ]
    .concat());
    assert_eq!(code, 1, "drift must exit 1: {out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["has_critical_changes"], true, "{out}");
    let tc = changes(&report, "tc");
    assert!(
        tc.iter()
            .any(|c| c["severity"] == "critical" && c.to_string().contains("tbf")),
        "a critical tbf change: {out}"
    );

    // 3. A large ruleset (3,000 rules) on dest-vm.
    let mut rules = String::from("*filter\n:NR-BIG - [0:0]\n");
    for i in 0..3000u32 {
        rules.push_str(&format!(
            "-A NR-BIG -s 198.18.{}.{}/32 -p tcp -m tcp --dport {} -m comment --comment \"generated rule {i}\" -j DROP\n",
            100 + i / 250,
            i % 250,
            10000 + i
        ));
    }
    rules.push_str("COMMIT\n");
    let file = work.path().join("big.rules");
    std::fs::write(&file, rules).unwrap();
    lab.ok(&[
        "exec",
        "--prefix",
        &prefix,
        "dest-vm",
        "--",
        "iptables-restore",
        "--noflush",
        file.to_str().unwrap(),
    ]);
    // Through run-command it arrives complete, and parses the same as over SSH.
    let (code, out) = run(&[
        &["snapshot"][..],
        &azure,
        &["--session-id", "nr_az_big", "--json"],
    ]
    .concat());
    assert_eq!(code, 0);
    let snap: Value = serde_json::from_str(&out).unwrap();
    let rules = snap["summary"]["families"]["ip"]["rules"].as_u64().unwrap();
    assert_eq!(rules, 3001, "3,000 generated rules plus the injected DROP");
    let ssh_dest = ["--provider", "ssh", "--vm-name", "dest-vm"];
    let (code, out) = run(&[
        &["snapshot"][..],
        &ssh_dest,
        &["--session-id", "nr_ssh_big", "--json"],
    ]
    .concat());
    assert_eq!(code, 0);
    let ssh_snap: Value = serde_json::from_str(&out).unwrap();
    let fw = |v: &Value| {
        let mut f: Vec<String> = v["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        f.sort();
        f
    };
    assert_eq!(fw(&snap), fw(&ssh_snap), "same frameworks on both paths");
    let (code, out) = run(&["diff", "nr_az_big", "nr_ssh_big", "--json"]);
    assert_eq!(
        code, 0,
        "run-command and SSH give the same parsed ruleset: {out}"
    );

    // The library path: chunk count, and a forced cut (chunks larger than the 4 KiB the
    // front end keeps) is refused, never accepted.
    let file = ConfigFile::load(&cfg).unwrap();
    let settings = Settings::from_parts(Some(file), BTreeMap::new());
    let mut flags = FlagOverrides::default();
    flags.set("AZ_PATH", Some(az.display().to_string()));
    flags.set("LOCATION", Some("netlablocal"));
    let env = Environment::resolve(&settings, &flags).unwrap();
    let log = AuditLog::open_in_dir(&audit, "nr_lib_20261122T080000Z").unwrap();
    let gate = Arc::new(Gate::builder(log).approver(AllRiskyApprover).build());
    let azc = Arc::new(AzureCli::from_environment(gate.clone(), &env));
    let runner =
        RemoteRunner::from_environment(gate, Some(azc), &env, RemotePath::RunCommand).unwrap();
    let exec = VmExec {
        runner: &runner,
        vm: "dest-vm".into(),
    };
    let got = retrieve_with(&exec, ChunkOptions::default()).unwrap();
    assert!(
        got.notes.iter().any(
            // `iptables-nft-save` / `iptables-legacy-save` where the VM has the back-end
            // specific tools (every back end is captured), plain `iptables-save` otherwise.
            |n| n.starts_with("iptables")
                && n.contains("-save: fetched compressed in")
                && n.contains("verified")
        ),
        "{:?}",
        got.notes
    );
    // Chunks over the 4 KiB cut: safety-shell classifies the compress-and-chunk scripts
    // read-only, so cloud-provider's runner fetches an over-long chunk in pages; what
    // arrives is whole and verified, the same ruleset as with the default chunks (a cut
    // chunk is refused: unit tests in src/retrieve.rs).
    let big = retrieve_with(
        &exec,
        ChunkOptions {
            chunk: 6000,
            max_chunks: 400,
        },
    )
    .unwrap();
    assert_eq!(big.ruleset.tables, got.ruleset.tables);
    let e = retrieve_with(
        &exec,
        ChunkOptions {
            chunk: 3000,
            max_chunks: 1,
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, RetrieveError::Truncated { detail, .. } if detail.contains("more than the limit")),
        "{e}"
    );
}
