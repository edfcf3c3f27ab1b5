//! Shared helpers for the lab tests: prerequisites, a lab guard that always tears down.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Why lab tests cannot run here (not root, or a tool is missing), if so.
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
        "tcpdump",
        "bash",
        "timeout",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("lab tests need `{tool}`, which is missing"));
        }
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("lab tests need /usr/sbin/sshd, which is missing".into());
    }
    None
}

/// Returns early (printing one line) when lab tests cannot run.
#[macro_export]
macro_rules! require_lab {
    () => {
        if let Some(why) = common::skip_reason() {
            // Written to stderr directly so the test harness does not capture it.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {}::{}: {why}; run `sudo scripts/setup.sh` and the tests as root to enable it",
                module_path!(),
                std::thread::current().name().unwrap_or("?")
            );
            return;
        }
    };
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netlab"))
}

pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

pub fn unique_id() -> String {
    use rand::Rng;
    const CH: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut r = rand::thread_rng();
    let s: String = (0..5)
        .map(|_| CH[r.gen_range(0..CH.len())] as char)
        .collect();
    format!("t{s}")
}

/// A running lab that is torn down on drop (also when the test panics).
pub struct TestLab {
    pub id: String,
    pub dir: tempfile::TempDir,
}

/// Result of a TCP connection attempt.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Conn {
    Connected,
    Refused,
    TimedOut,
}

impl TestLab {
    /// Builds a lab from scenario text (`base` may name `{demo}/base_topology.toml`).
    pub fn up_text(text: &str) -> TestLab {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = text.replace("{demo}", &demo().display().to_string());
        let p = dir.path().join("scenario.toml");
        std::fs::write(&p, text).unwrap();
        Self::up_file_in(&p, dir)
    }

    pub fn up_file(path: &Path) -> TestLab {
        Self::up_file_in(path, tempfile::tempdir().expect("tempdir"))
    }

    fn up_file_in(path: &Path, dir: tempfile::TempDir) -> TestLab {
        let lab = TestLab {
            id: unique_id(),
            dir,
        };
        std::fs::create_dir_all(lab.state_dir()).unwrap();
        let out = lab.nl(&["up", &path.display().to_string(), "--prefix", &lab.id]);
        assert!(
            out.status.success(),
            "netlab up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.state_dir().join(&self.id)
    }

    pub fn prefix(&self) -> String {
        format!("nl{}-", self.id)
    }

    pub fn ns(&self, vm: &str) -> String {
        format!("{}{vm}", self.prefix())
    }

    /// Runs `netlab ARGS` against this lab's state directory.
    pub fn nl(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("NETLAB_STATE_DIR", self.state_dir())
            .output()
            .expect("run netlab")
    }

    /// Runs `netlab ARGS --prefix ID`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let a = with_prefix(args, &self.id);
        let out = self.nl(&a);
        assert!(
            out.status.success(),
            "netlab {} failed: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status JSON")
    }

    /// Runs a command in a VM namespace (directly with `ip netns exec`).
    pub fn exec(&self, vm: &str, cmd: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(vm)])
            .args(cmd)
            .output()
            .expect("ip netns exec")
    }

    pub fn exec_ok(&self, vm: &str, cmd: &[&str]) -> String {
        let out = self.exec(vm, cmd);
        assert!(
            out.status.success(),
            "{} in {vm} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Tries a TCP connection from a VM.
    pub fn connect(&self, vm: &str, ip: &str, port: u16, secs: u32) -> Conn {
        let out = self.exec(
            vm,
            &[
                "timeout",
                &secs.to_string(),
                "bash",
                "-c",
                &format!(": > /dev/tcp/{ip}/{port}"),
            ],
        );
        match out.status.code() {
            Some(0) => Conn::Connected,
            Some(124) => Conn::TimedOut,
            _ => Conn::Refused,
        }
    }

    pub fn down(&self) -> Output {
        self.nl(&["down", "--prefix", &self.id])
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        if self.run_dir().exists() {
            let out = self.down();
            if !out.status.success() {
                eprintln!(
                    "netlab down failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Root-namespace links whose name starts with `prefix`.
pub fn links_with(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Whether a pid with this start time still runs.
pub fn alive(pid: i64, start_time: u64) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(i) = s.rfind(')') else { return false };
    let f: Vec<&str> = s[i + 1..].split_whitespace().collect();
    f.first() != Some(&"Z") && f.get(19).and_then(|x| x.parse::<u64>().ok()) == Some(start_time)
}

pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The base two-VM scenario with extra TOML appended.
pub fn base_with(extra: &str) -> String {
    format!("name = \"test\"\nbase = \"{{demo}}/base_topology.toml\"\n{extra}")
}

/// Inserts `--prefix ID` right after the subcommand (before any `--`).
pub fn with_prefix<'a>(args: &[&'a str], id: &'a str) -> Vec<&'a str> {
    let mut a: Vec<&str> = args.to_vec();
    let at = if a.is_empty() { 0 } else { 1 };
    a.insert(at, id);
    a.insert(at, "--prefix");
    a
}

/// A second lab in another lab's state directory, torn down on drop.
pub struct SecondLab<'a> {
    pub first: &'a TestLab,
    pub id: String,
}

impl<'a> SecondLab<'a> {
    pub fn up(first: &'a TestLab, text: &str) -> SecondLab<'a> {
        let id = unique_id();
        let p = first.dir.path().join(format!("{id}.toml"));
        std::fs::write(&p, text.replace("{demo}", &demo().display().to_string())).unwrap();
        let out = first.nl(&["up", &p.display().to_string(), "--prefix", &id]);
        let guard = SecondLab { first, id };
        assert!(
            out.status.success(),
            "second up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let a = with_prefix(args, &self.id);
        let out = self.first.nl(&a);
        assert!(
            out.status.success(),
            "netlab {} failed: {}",
            a.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for SecondLab<'_> {
    fn drop(&mut self) {
        if self.first.state_dir().join(&self.id).exists() {
            let _ = self.first.nl(&["down", "--prefix", &self.id]);
        }
    }
}
