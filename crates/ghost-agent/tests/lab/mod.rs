//! Lab test support shared by the ghost-agent lab tests: a netlab lab torn down on drop,
//! its config.env with an `az` wrapper over netlab's front end, and a tool context built
//! exactly as the engine builds one (`session::build_context`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use cloud_provider::config::{FlagOverrides, Settings};
use cloud_provider::session::SessionId;
use ghost_agent::session::{build_context, ContextSpec};
use ghost_agent::tools::ToolContext;
use safety_shell::approve::Approver;

/// The netlab binary: `NETLAB_BIN`, else `netlab` in this test's target directory.
pub fn netlab_bin() -> Option<PathBuf> {
    let p = match std::env::var_os("NETLAB_BIN") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()
            .ok()?
            .parent()?
            .parent()?
            .join("netlab"),
    };
    p.is_file().then_some(p)
}

/// Why the lab tests cannot run here (one line), or None.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("lab tests need root (sudo scripts/test.sh)".into());
    }
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("lab tests need `{tool}` (run scripts/setup.sh)"));
        }
    }
    if netlab_bin().is_none() {
        return Some(
            "the netlab binary is not built (cargo build -p netlab, or set NETLAB_BIN)".into(),
        );
    }
    None
}

/// The repository's demo directory.
pub fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../demo")
}

/// A lab with its own state directory; `netlab down` on drop (success, failure, panic).
pub struct Lab {
    pub bin: PathBuf,
    pub prefix: String,
    state: tempfile::TempDir,
    /// Scratch directory of the test (config.env, the az wrapper, audit directories).
    pub work: tempfile::TempDir,
}

impl Lab {
    /// Brings up `scenario` (a file) with prefix `{tag}{random}`.
    pub fn up(bin: PathBuf, tag: &str, scenario: &Path) -> Lab {
        use rand::Rng;
        let id: String = (0..4)
            .map(|_| {
                b"abcdefghijklmnopqrstuvwxyz0123456789"[rand::thread_rng().gen_range(0..36)] as char
            })
            .collect();
        let lab = Lab {
            bin,
            prefix: format!("{tag}{id}"),
            state: tempfile::tempdir().unwrap(),
            work: tempfile::tempdir().unwrap(),
        };
        let prefix = lab.prefix.clone();
        lab.ok(&["up", &scenario.display().to_string(), "--prefix", &prefix]);
        lab
    }

    /// Brings up a scenario given as text (written into the work directory).
    pub fn up_text(bin: PathBuf, tag: &str, text: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("scenario.toml");
        std::fs::write(&p, text).unwrap();
        Lab::up(bin, tag, &p)
    }

    /// Runs netlab against this lab's state directory.
    pub fn netlab(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("-q")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run netlab")
    }

    /// Runs netlab and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.netlab(args);
        assert!(
            o.status.success(),
            "netlab {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Injects the faults of `demo/<use_case>/scenario.toml`.
    pub fn inject(&self, use_case: &str) {
        let f = demo().join(use_case).join("scenario.toml");
        self.ok(&["inject", "--prefix", &self.prefix, &f.display().to_string()]);
    }

    /// Clears every fault.
    pub fn clear(&self) {
        self.ok(&["clear", "--prefix", &self.prefix, "--all"]);
    }

    /// The lab's config.env (its `AZ_PATH` is netlab's az front end) with `AUDIT_DIR` =
    /// `audit`.
    pub fn config(&self, audit: &Path) -> PathBuf {
        let text = self.ok(&["env", "--prefix", &self.prefix, "--config"]);
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with("AUDIT_DIR="))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = self.work.path().join("config.env");
        std::fs::write(&p, format!("{kept}AUDIT_DIR={}\n", audit.display())).unwrap();
        p
    }

    /// Runs a shell snippet inside a VM in the background (killed by pid on drop).
    pub fn exec_bg(&self, vm: &str, script: &str) -> Reap {
        Reap(
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
                .expect("run netlab exec"),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let o = self.netlab(&["down", "--prefix", &self.prefix]);
        if !o.status.success() {
            eprintln!(
                "netlab down --prefix {}: {}",
                self.prefix,
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// A child we started, killed by its pid and reaped on drop.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tool context the engine would build from `config` for `session` (its directory
/// under the config's AUDIT_DIR), with `approver` deciding risky commands.
pub fn context(config: &Path, session: &str, approver: Arc<dyn Approver>) -> ToolContext {
    let settings = Settings::load(Some(config)).expect("config.env");
    build_context(ContextSpec {
        settings,
        flags: FlagOverrides::default(),
        session_id: SessionId::parse(session).unwrap(),
        approver,
        command_timeout: Duration::from_secs(90),
        cancel: Arc::new(AtomicBool::new(false)),
    })
    .expect("tool context")
}
