//! The lab shared by the lab test files: skip rules, a netlab lab built from a scenario
//! that includes the base topology (without netlab's own iperf2/qperf servers on dest-vm),
//! torn down by `Drop`, and a helper that runs the pipe-meter binary with `--json`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn netlab_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETLAB_BIN") {
        return Some(PathBuf::from(p));
    }
    // target/debug/deps/lab-HASH → target/debug/netlab
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("netlab");
    p.is_file().then_some(p)
}

pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("lab tests need root".into());
    }
    for tool in [
        "ip",
        "nft",
        "iptables",
        "tc",
        "ssh",
        "ssh-keygen",
        "iperf",
        "qperf",
        "ss",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("lab tests need `{tool}`, which is missing"));
        }
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("lab tests need /usr/sbin/sshd".into());
    }
    if netlab_bin().is_none() {
        return Some(
            "the netlab binary is not built (run `cargo build -p netlab` or set NETLAB_BIN)".into(),
        );
    }
    None
}

pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

pub struct Lab {
    pub id: String,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn nl(&self, args: &[&str]) -> Output {
        let mut a: Vec<&str> = args.to_vec();
        a.insert(1, "--prefix");
        a.insert(2, &self.id);
        Command::new(netlab_bin().unwrap())
            .args(&a)
            .env("NETLAB_STATE_DIR", self.dir.path().join("state"))
            .output()
            .expect("run netlab")
    }
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.nl(args);
        assert!(
            o.status.success(),
            "netlab {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    pub fn up() -> Lab {
        Lab::up_with("")
    }
    /// A lab whose dest-vm entry gets `dest_extra` (TOML lines, e.g. `bandwidth_mbps = 100`).
    pub fn up_with(dest_extra: &str) -> Lab {
        use rand::Rng;
        let id: String = (0..4)
            .map(|_| {
                b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::thread_rng().gen_range(0..36)] as char
            })
            .collect();
        let lab = Lab {
            id: format!("pm{id}"),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(lab.dir.path().join("state")).unwrap();
        // The base topology without netlab's own iperf2/qperf servers: pipe-meter starts
        // and stops its own on the standard ports.
        let scenario = format!(
            "name = \"pipe_meter_lab\"\nbase = \"{}/base_topology.toml\"\n\n[[topology.vms]]\nname = \"dest-vm\"\nsubnet = \"default\"\nprivate_ip = \"198.18.1.5\"\nnsg = \"dest-vm-nsg\"\nservices = []\n{dest_extra}\n",
            demo().display()
        );
        let p = lab.dir.path().join("scenario.toml");
        std::fs::write(&p, scenario).unwrap();
        let o = Command::new(netlab_bin().unwrap())
            .args(["up", &p.display().to_string(), "--prefix", &lab.id])
            .env("NETLAB_STATE_DIR", lab.dir.path().join("state"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "netlab up: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        lab
    }
    /// The lab's config.env as netlab wrote it (its AZ_PATH is the lab's az front end, so
    /// the preflight reads the lab's effective NSGs).
    pub fn config(&self) -> PathBuf {
        self.dir
            .path()
            .join("state")
            .join(&self.id)
            .join("config.env")
    }
    pub fn listening(&self, vm: &str) -> String {
        let o = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("nl{}-{vm}", self.id),
                "ss",
                "-H",
                "-t",
                "-l",
                "-n",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.nl(&["down"]);
        if !o.status.success() {
            eprintln!("netlab down failed: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

pub fn pipe_meter(config: &Path, audit: &Path, args: &[&str]) -> (i32, Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_pipe-meter"))
        .arg("--config")
        .arg(config)
        .arg("--audit-dir")
        .arg(audit)
        .args(["--approve", "all-risky", "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not one JSON document ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code().unwrap_or(-1), v)
}

pub fn assert_no_servers(lab: &Lab, audit: &Path) {
    let l = lab.listening("dest-vm");
    for port in [":5001 ", ":19765 ", ":19766 "] {
        assert!(!l.contains(port), "a server survived on dest ({port}): {l}");
    }
    let rec = std::fs::read_to_string(audit.join("pipe-meter-servers.json")).unwrap_or_default();
    assert!(!rec.contains("\"pid\""), "servers still recorded: {rec}");
}
