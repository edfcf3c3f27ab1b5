//! Running system commands and tracking processes by pid and start time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A command that failed (or could not be started).
#[derive(Debug, thiserror::Error)]
#[error("`{cmd}` failed: {stderr}")]
pub struct CmdError {
    /// The command line.
    pub cmd: String,
    /// Its stderr (trimmed), or why it could not start.
    pub stderr: String,
}

/// Runs a program with arguments; returns stdout or a [`CmdError`] naming the command and
/// its stderr.
pub fn run<S: AsRef<str>>(program: &str, args: &[S]) -> Result<String, CmdError> {
    run_input(program, args, None)
}

/// Like [`run`], feeding `input` on stdin.
pub fn run_input<S: AsRef<str>>(
    program: &str,
    args: &[S],
    input: Option<&str>,
) -> Result<String, CmdError> {
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    let cmdline = format!("{program} {}", args.join(" "));
    tracing::debug!("run: {cmdline}");
    let mut c = Command::new(program);
    c.args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = c.spawn().map_err(|e| CmdError {
        cmd: cmdline.clone(),
        stderr: format!("cannot start it: {e}"),
    })?;
    if let Some(text) = input {
        use std::io::Write;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(text.as_bytes());
        }
    }
    let out = child.wait_with_output().map_err(|e| CmdError {
        cmd: cmdline.clone(),
        stderr: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        // One line: the command's stderr lines joined.
        let mut err = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if err.is_empty() {
            err = format!("exit status {}", out.status);
        }
        Err(CmdError {
            cmd: cmdline,
            stderr: err,
        })
    }
}

/// Runs a command inside a namespace (`ip netns exec NS program args…`).
pub fn run_in<S: AsRef<str>>(ns: &str, program: &str, args: &[S]) -> Result<String, CmdError> {
    let mut a: Vec<String> = vec!["netns".into(), "exec".into(), ns.into(), program.into()];
    a.extend(args.iter().map(|s| s.as_ref().to_string()));
    run("ip", &a)
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// What it is, e.g. `sshd`, `iperf2:5001`, `emulator:f3`.
    pub role: String,
    /// Namespace it runs in.
    pub ns: String,
    /// VM name (or `sto`, `inet`).
    pub owner: String,
    /// Pid.
    pub pid: i32,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat), so a reused pid is
    /// never mistaken for ours.
    pub start_time: u64,
    /// The command line we started.
    pub cmdline: Vec<String>,
    /// Log file.
    pub log: String,
}

/// Field 22 of `/proc/PID/stat`.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 1..];
    // after: " S ppid …": state is field 3; starttime is field 22 → index 19 here.
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the recorded process is still the one we started (and not a zombie).
pub fn is_alive(p: &ProcRecord) -> bool {
    if proc_start_time(p.pid) != Some(p.start_time) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{}/stat", p.pid)) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next().map(|st| st != "Z"))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Starts `program args…` inside `ns` in its own process group, stdio to `log`.
pub fn spawn_in(
    ns: &str,
    owner: &str,
    role: &str,
    program: &str,
    args: &[String],
    log: &Path,
) -> Result<ProcRecord, CmdError> {
    use std::os::unix::process::CommandExt;
    let mut cmdline = vec![program.to_string()];
    cmdline.extend(args.iter().cloned());
    let shown = format!("ip netns exec {ns} {}", cmdline.join(" "));
    let logf = std::fs::File::create(log).map_err(|e| CmdError {
        cmd: shown.clone(),
        stderr: format!("cannot create log {}: {e}", log.display()),
    })?;
    let logf2 = logf.try_clone().map_err(|e| CmdError {
        cmd: shown.clone(),
        stderr: e.to_string(),
    })?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(&cmdline)
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(logf2)
        .process_group(0)
        .spawn()
        .map_err(|e| CmdError {
            cmd: shown.clone(),
            stderr: format!("cannot start it: {e}"),
        })?;
    let pid = child.id() as i32;
    // The child is reaped by whoever outlives it; we never wait on it here.
    std::mem::forget(child);
    let start_time = proc_start_time(pid).ok_or_else(|| CmdError {
        cmd: shown.clone(),
        stderr: "it exited at once".into(),
    })?;
    Ok(ProcRecord {
        role: role.into(),
        ns: ns.into(),
        owner: owner.into(),
        pid,
        start_time,
        cmdline,
        log: log.display().to_string(),
    })
}

/// Sends SIGTERM to a recorded process group (only if the pid is still ours).
pub fn terminate(p: &ProcRecord) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    if proc_start_time(p.pid) != Some(p.start_time) {
        return;
    }
    let pg = Pid::from_raw(p.pid);
    if killpg(pg, Signal::SIGTERM).is_err() {
        let _ = kill(pg, Signal::SIGTERM);
    }
}

/// Stops a recorded process group: SIGTERM, then SIGKILL after `grace`. Does nothing if the
/// pid now belongs to another process.
pub fn stop(p: &ProcRecord, grace: Duration) {
    use nix::sys::signal::{kill, killpg, Signal};
    use nix::unistd::Pid;
    if proc_start_time(p.pid) != Some(p.start_time) {
        return;
    }
    let pg = Pid::from_raw(p.pid);
    if killpg(pg, Signal::SIGTERM).is_err() {
        let _ = kill(pg, Signal::SIGTERM);
    }
    reap(p.pid);
    let t0 = Instant::now();
    while t0.elapsed() < grace {
        if !is_alive(p) {
            reap(p.pid);
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
        reap(p.pid);
    }
    if proc_start_time(p.pid) == Some(p.start_time) {
        let _ = killpg(pg, Signal::SIGKILL);
        let _ = kill(pg, Signal::SIGKILL);
        reap(p.pid);
    }
}

/// Reaps the pid if it is our own child (no effect otherwise).
fn reap(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// TCP ports in LISTEN state in the network namespace of `pid` (IPv4 and IPv6).
pub fn listening_ports(pid: i32) -> Vec<u16> {
    bound_ports(pid, "tcp")
}

/// Ports bound in the namespace of `pid`: `tcp` (LISTEN state) or `udp` (any socket).
pub fn bound_ports(pid: i32, proto: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    let (files, state) = if proto == "udp" {
        (["udp", "udp6"], "07")
    } else {
        (["tcp", "tcp6"], "0A")
    };
    for f in files {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")) {
            for line in text.lines().skip(1) {
                let w: Vec<&str> = line.split_whitespace().collect();
                if w.len() > 3 && w[3] == state {
                    if let Some(port) = w[1]
                        .rsplit(':')
                        .next()
                        .and_then(|h| u16::from_str_radix(h, 16).ok())
                    {
                        ports.push(port);
                    }
                }
            }
        }
    }
    ports
}

/// Waits until TCP `port` listens in the namespace of `p`; fails if the process dies or the
/// time runs out.
pub fn wait_listening(p: &ProcRecord, port: u16, timeout: Duration) -> Result<(), String> {
    wait_bound(p, port, "tcp", timeout)
}

/// Like [`wait_listening`] for `tcp` or `udp`.
pub fn wait_bound(p: &ProcRecord, port: u16, proto: &str, timeout: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        if !is_alive(p) {
            let log = std::fs::read_to_string(&p.log).unwrap_or_default();
            return Err(format!(
                "{} in {} exited before listening on port {port}: {}",
                p.role,
                p.owner,
                log.trim().lines().last().unwrap_or("no output")
            ));
        }
        if bound_ports(p.pid, proto).contains(&port) {
            return Ok(());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "{} in {} did not listen on port {port} within {} s (log {})",
                p.role,
                p.owner,
                timeout.as_secs(),
                p.log
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self() {
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).is_some());
        assert_eq!(proc_start_time(-5), None);
    }

    #[test]
    fn run_reports_stderr() {
        let e = run("sh", &["-c", "echo oops >&2; exit 3"]).unwrap_err();
        assert!(e.to_string().contains("oops"), "{e}");
        assert!(e.to_string().contains("`sh -c"), "{e}");
        assert_eq!(run("sh", &["-c", "echo hi"]).unwrap(), "hi\n");
        assert!(run("/nonexistent/prog", &["x"]).is_err());
    }
}
