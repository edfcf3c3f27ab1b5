//! Execution on a [`Target`]: argv construction for local, SSH, `az vm run-command` and
//! network-namespace targets, and a process runner with a process-group timeout, capped
//! head-and-tail output and lossy UTF-8 decoding.
//!
//! The command that the gate classifies is always the *inner* command; the wrappers built
//! here (`ssh ... --`, `az vm run-command invoke`, `ip netns exec`) only carry it.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::types::{AzureVmTarget, SshTarget, Target};

/// Default cap on each output stream (1 MiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// How a command is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    /// Wall-clock limit; when it passes the whole process group gets SIGTERM, then SIGKILL
    /// after [`ExecOptions::kill_grace`].
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Cap on each of stdout and stderr, in bytes, truncation marker included.
    pub max_output_bytes: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            kill_grace: Duration::from_secs(2),
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }
}

/// What the gate asks to run: an argv (no shell) or a shell text (`bash -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A simple command run directly, without a shell.
    Argv(Vec<String>),
    /// An approved compound command run as `bash -c <text>`, the text exactly as approved.
    Shell(String),
}

impl Program {
    /// The command as one shell string (argv is shell-quoted).
    pub fn as_shell_text(&self) -> String {
        match self {
            Program::Argv(a) => render_argv(a),
            Program::Shell(s) => s.clone(),
        }
    }
}

/// Whether (and how much) an output stream was truncated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// stdout was cut to the cap.
    pub stdout: bool,
    /// stderr was cut to the cap.
    pub stderr: bool,
    /// Bytes the command wrote to stdout.
    pub stdout_total_bytes: u64,
    /// Bytes the command wrote to stderr.
    pub stderr_total_bytes: u64,
}

/// The result of running a process (before redaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    /// Exit code, when the process exited normally (or the remote side reported one).
    pub exit_code: Option<i32>,
    /// The signal that ended the process, if any.
    pub signal: Option<i32>,
    /// The timeout expired and the process group was killed.
    pub timed_out: bool,
    /// stdout, capped and lossily decoded.
    pub stdout: String,
    /// stderr, capped and lossily decoded.
    pub stderr: String,
    /// Wall-clock duration.
    pub duration: Duration,
    /// Truncation facts.
    pub truncation: Truncation,
}

impl RawOutput {
    /// The command ran and exited with status 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none() && !self.timed_out
    }
}

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}; check that it is installed and on PATH")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Nothing to run.
    #[error("empty command: nothing to run")]
    Empty,
    /// A target field would be read as an option or is otherwise unusable.
    #[error("invalid target: {0}")]
    InvalidTarget(String),
    /// `az vm run-command` ran but its output was not the documented envelope.
    #[error("cannot read the run-command result: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The transport (`az`) failed before the command ran on the VM.
    #[error("{tool} failed (exit {exit_code:?}): {message}")]
    Transport {
        /// The transport tool.
        tool: String,
        /// Its exit code.
        exit_code: Option<i32>,
        /// First lines of its stderr.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------
// Quoting

/// Quotes one word for a POSIX shell (only when needed).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Renders an argv as one shell command string.
pub fn render_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// Argv construction per target

fn check_word(what: &str, v: &str) -> Result<(), ExecError> {
    if v.is_empty() || v.starts_with('-') || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ExecError::InvalidTarget(format!(
            "{what} {v:?} is empty, starts with '-' or contains whitespace"
        )));
    }
    Ok(())
}

/// The `ssh` argv that runs `command` (one argument, interpreted by the remote shell).
///
/// Options: `-o BatchMode=yes` (never prompts), `-o StrictHostKeyChecking=yes` (or
/// `accept-new` when the target explicitly relaxes checking: unknown hosts are added, changed
/// keys are still refused), `-o UserKnownHostsFile=`, `-i` with `-o IdentitiesOnly=yes`,
/// `-J`, `-p`, `-o ConnectTimeout=`, `-F`; then `--`, the destination and the command.
/// `--` comes before the destination so that neither it nor the command is ever read as an
/// option.
pub fn ssh_argv(t: &SshTarget, command: &str) -> Result<Vec<String>, ExecError> {
    check_word("ssh host", &t.host)?;
    if let Some(u) = &t.user {
        check_word("ssh user", u)?;
        if u.contains('@') {
            return Err(ExecError::InvalidTarget(format!(
                "ssh user {u:?} contains '@'"
            )));
        }
    }
    let mut a: Vec<String> = vec!["ssh".into(), "-o".into(), "BatchMode=yes".into()];
    let strict = if t.strict_host_key_checking {
        "yes"
    } else {
        "accept-new"
    };
    a.push("-o".into());
    a.push(format!("StrictHostKeyChecking={strict}"));
    if let Some(k) = &t.known_hosts_file {
        a.push("-o".into());
        a.push(format!("UserKnownHostsFile={}", k.display()));
    }
    if let Some(i) = &t.identity_file {
        a.push("-i".into());
        a.push(i.display().to_string());
        a.push("-o".into());
        a.push("IdentitiesOnly=yes".into());
    }
    if let Some(j) = &t.jump_host {
        check_word("jump host", j)?;
        a.push("-J".into());
        a.push(j.clone());
    }
    if let Some(p) = t.port {
        a.push("-p".into());
        a.push(p.to_string());
    }
    if let Some(c) = t.connect_timeout_secs {
        a.push("-o".into());
        a.push(format!("ConnectTimeout={c}"));
    }
    if let Some(f) = &t.config_file {
        a.push("-F".into());
        a.push(f.display().to_string());
    }
    a.push("--".into());
    a.push(match &t.user {
        Some(u) => format!("{u}@{}", t.host),
        None => t.host.clone(),
    });
    a.push(command.to_string());
    Ok(a)
}

/// The `az vm run-command invoke` argv that runs `command` as a RunShellScript.
pub fn az_run_command_argv(t: &AzureVmTarget, command: &str) -> Result<Vec<String>, ExecError> {
    check_word("resource group", &t.resource_group)?;
    check_word("VM name", &t.vm_name)?;
    let az = t
        .az_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "az".to_string());
    let mut a = vec![
        az,
        "vm".into(),
        "run-command".into(),
        "invoke".into(),
        "-g".into(),
        t.resource_group.clone(),
        "-n".into(),
        t.vm_name.clone(),
        "--command-id".into(),
        "RunShellScript".into(),
        "--scripts".into(),
        command.to_string(),
    ];
    if let Some(s) = &t.subscription {
        check_word("subscription", s)?;
        a.push("--subscription".into());
        a.push(s.clone());
    }
    a.push("--output".into());
    a.push("json".into());
    Ok(a)
}

/// The `ip netns exec` argv for a namespace.
pub fn netns_argv(name: &str, program: &Program) -> Result<Vec<String>, ExecError> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(ExecError::InvalidTarget(format!(
            "network namespace name {name:?} must be letters, digits, '_', '.', '-'"
        )));
    }
    let mut a: Vec<String> = vec!["ip".into(), "netns".into(), "exec".into(), name.into()];
    match program {
        Program::Argv(v) if v.is_empty() => return Err(ExecError::Empty),
        Program::Argv(v) => a.extend(v.iter().cloned()),
        Program::Shell(s) => {
            a.push("bash".into());
            a.push("-c".into());
            a.push(s.clone());
        }
    }
    Ok(a)
}

/// The local argv that runs `program` on `target` (for Azure: the `az` invocation).
pub fn target_argv(target: &Target, program: &Program) -> Result<Vec<String>, ExecError> {
    match target {
        Target::Local => match program {
            Program::Argv(v) if v.is_empty() => Err(ExecError::Empty),
            Program::Argv(v) => Ok(v.clone()),
            Program::Shell(s) => Ok(vec!["bash".into(), "-c".into(), s.clone()]),
        },
        Target::Ssh(t) => ssh_argv(t, &program.as_shell_text()),
        Target::AzureRunCommand(t) => az_run_command_argv(t, &program.as_shell_text()),
        Target::Netns { name } => netns_argv(name, program),
    }
}

/// Runs `program` on `target`.
pub fn execute(
    target: &Target,
    program: &Program,
    opts: &ExecOptions,
) -> Result<RawOutput, ExecError> {
    let argv = target_argv(target, program)?;
    let out = run_process(&argv, opts)?;
    match target {
        Target::AzureRunCommand(_) => {
            if out.timed_out || !out.success() {
                let message: String = out.stderr.lines().take(3).collect::<Vec<_>>().join(" / ");
                return Err(ExecError::Transport {
                    tool: "az vm run-command invoke".into(),
                    exit_code: out.exit_code,
                    message: if out.timed_out {
                        format!("timed out after {:?}", opts.timeout)
                    } else {
                        message
                    },
                });
            }
            let rc = parse_run_command_output(&out.stdout)?;
            let (stdout, t1) = cap_string(&rc.stdout, opts.max_output_bytes);
            let (stderr, t2) = cap_string(&rc.stderr, opts.max_output_bytes);
            Ok(RawOutput {
                exit_code: rc.exit_code,
                signal: None,
                timed_out: false,
                truncation: Truncation {
                    stdout: t1 || out.truncation.stdout,
                    stderr: t2,
                    stdout_total_bytes: rc.stdout.len() as u64,
                    stderr_total_bytes: rc.stderr.len() as u64,
                },
                stdout,
                stderr,
                duration: out.duration,
            })
        }
        _ => Ok(out),
    }
}

// ---------------------------------------------------------------------------------------
// Output capping

/// Keeps the first and last `cap` bytes of a stream and counts the rest.
#[derive(Debug)]
struct Collector {
    cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Collector {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.head.len() < self.cap {
            let n = (self.cap - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.cap..]);
        } else {
            self.tail.extend(data);
            let excess = self.tail.len().saturating_sub(self.cap);
            self.tail.drain(..excess);
        }
    }

    fn finish(&self) -> (String, bool) {
        let head = String::from_utf8_lossy(&self.head);
        if self.tail.is_empty() {
            // With a cap of 0 nothing is kept at all: the output was still cut.
            let (s, cut) = cap_string(&head, self.cap);
            return (s, cut || self.total > self.head.len() as u64);
        }
        let tail_bytes: Vec<u8> = self.tail.iter().copied().collect();
        let tail = String::from_utf8_lossy(&tail_bytes);
        join_head_tail(&head, &tail, self.total, self.cap)
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn join_head_tail(head: &str, tail: &str, total: u64, cap: usize) -> (String, bool) {
    // The marker is sized with `total`'s digit count, an upper bound of the real count.
    let probe = format!("\n[... {total} bytes omitted ...]\n");
    if cap <= probe.len() {
        return (probe[..floor_boundary(&probe, cap)].to_string(), true);
    }
    let budget = cap - probe.len();
    let head_n = budget / 2;
    let tail_n = budget - head_n;
    let h = &head[..floor_boundary(head, head_n)];
    let t = &tail[ceil_boundary(tail, tail.len().saturating_sub(tail_n))..];
    let omitted = total.saturating_sub((h.len() + t.len()) as u64);
    let out = format!("{h}\n[... {omitted} bytes omitted ...]\n{t}");
    debug_assert!(out.len() <= cap);
    (out, true)
}

/// Caps an already-decoded string to `cap` bytes with head-and-tail truncation.
pub fn cap_string(s: &str, cap: usize) -> (String, bool) {
    if s.len() <= cap {
        return (s.to_string(), false);
    }
    join_head_tail(s, s, s.len() as u64, cap)
}

/// Decodes `bytes` lossily and caps the result to `cap` bytes (marker included), keeping
/// the head and the tail. Returns the text and whether it was truncated. The result is never
/// longer than `cap` bytes.
pub fn cap_head_tail(bytes: &[u8], cap: usize) -> (String, bool) {
    let mut c = Collector::new(cap);
    c.push(bytes);
    c.finish()
}

// ---------------------------------------------------------------------------------------
// Running a process

fn spawn_reader<R: Read + Send + 'static>(
    mut r: R,
    col: Arc<Mutex<Collector>>,
    done: mpsc::Sender<()>,
) {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => col
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
}

/// Waits for `child` until `deadline`, polling with a short backoff.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::io::Result<ExitStatus>> {
    let mut pause = Duration::from_micros(20);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(Ok(st)),
            Ok(None) => {}
            Err(e) => return Some(Err(e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

/// Runs `argv` locally: stdin is /dev/null, the child leads its own process group, stdout
/// and stderr are read concurrently and capped, and the timeout kills the whole group.
///
/// The child is reaped only after the group has been dealt with, so its pid (the group id)
/// cannot be reused while the group is signalled.
pub fn run_process(argv: &[String], opts: &ExecOptions) -> Result<RawOutput, ExecError> {
    let (program, args) = argv.split_first().ok_or(ExecError::Empty)?;
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
    let pgid = Pid::from_raw(child.id() as i32);
    let out_col = Arc::new(Mutex::new(Collector::new(opts.max_output_bytes)));
    let err_col = Arc::new(Mutex::new(Collector::new(opts.max_output_bytes)));
    let (done_tx, done_rx) = mpsc::channel();
    let mut readers = 0;
    if let Some(o) = child.stdout.take() {
        spawn_reader(o, out_col.clone(), done_tx.clone());
        readers += 1;
    }
    if let Some(e) = child.stderr.take() {
        spawn_reader(e, err_col.clone(), done_tx.clone());
        readers += 1;
    }
    drop(done_tx);

    let deadline = start + opts.timeout;
    let mut timed_out = false;
    // 1. The pipes close when every process holding them is gone (or closed them).
    let mut readers_done = 0;
    while readers_done < readers {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => readers_done += 1,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    // 2. The child itself.
    let mut status = if timed_out {
        None
    } else {
        wait_until(&mut child, deadline)
    };
    if timed_out || status.is_none() {
        // 3. Deadline: SIGTERM the whole group (a background grandchild holding the pipes
        // included), SIGKILL after the grace period.
        timed_out = true;
        let _ = killpg(pgid, Signal::SIGTERM);
        let grace_end = Instant::now() + opts.kill_grace;
        let st = wait_until(&mut child, grace_end);
        let _ = killpg(pgid, Signal::SIGKILL);
        status = match st {
            Some(s) => Some(s),
            None => Some(child.wait()),
        };
        // Readers end once the killed processes are gone; a process that left the group
        // and holds the pipes is not waited for beyond the grace period.
        let reader_end = Instant::now() + opts.kill_grace;
        while readers_done < readers {
            let left = reader_end.saturating_duration_since(Instant::now());
            match done_rx.recv_timeout(left) {
                Ok(()) => readers_done += 1,
                Err(_) => break,
            }
        }
    }
    let duration = start.elapsed();
    let (stdout, t_out, out_total) = {
        let c = out_col.lock().unwrap_or_else(|e| e.into_inner());
        let (s, t) = c.finish();
        (s, t, c.total)
    };
    let (stderr, t_err, err_total) = {
        let c = err_col.lock().unwrap_or_else(|e| e.into_inner());
        let (s, t) = c.finish();
        (s, t, c.total)
    };
    let (exit_code, signal) = match status {
        Some(Ok(st)) => (st.code(), st.signal()),
        _ => (None, None),
    };
    Ok(RawOutput {
        exit_code,
        signal,
        timed_out,
        stdout,
        stderr,
        duration,
        truncation: Truncation {
            stdout: t_out,
            stderr: t_err,
            stdout_total_bytes: out_total,
            stderr_total_bytes: err_total,
        },
    })
}

// ---------------------------------------------------------------------------------------
// Azure run-command envelope

/// The output of a RunShellScript, unwrapped from Azure's envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCommandOutput {
    /// The script's stdout (Azure keeps only the last 4 KiB of it).
    pub stdout: String,
    /// The script's stderr (same limit).
    pub stderr: String,
    /// 0 for `Enable succeeded`, N for `... exit status=N`, `None` when the envelope does
    /// not say.
    pub exit_code: Option<i32>,
    /// The status text before `[stdout]` (e.g. `Enable succeeded:`).
    pub status: String,
    /// The `code` field of the status entry (e.g. `ProvisioningState/succeeded`).
    pub code: Option<String>,
}

/// Why a run-command result could not be unwrapped.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON.
    #[error("the output of az vm run-command is not JSON: {0}")]
    NotJson(String),
    /// JSON without `value[0].message`.
    #[error("the output of az vm run-command has no value[0].message string")]
    NoMessage,
}

/// Unwraps `{"value":[{"code":..., "message":"Enable succeeded: \n[stdout]\n...\n[stderr]\n..."}]}`.
///
/// A message cut short (no `[stderr]` section) yields everything after `[stdout]` as
/// stdout; a message without `[stdout]` yields the whole message as stdout.
pub fn parse_run_command_output(json: &str) -> Result<RunCommandOutput, EnvelopeError> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let first = v
        .get("value")
        .and_then(|x| x.as_array())
        .and_then(|a| a.first())
        .ok_or(EnvelopeError::NoMessage)?;
    let message = first
        .get("message")
        .and_then(|m| m.as_str())
        .ok_or(EnvelopeError::NoMessage)?;
    let code = first
        .get("code")
        .and_then(|c| c.as_str())
        .map(str::to_string);

    let (status, rest) = match message.find("[stdout]") {
        Some(i) => (&message[..i], Some(&message[i + "[stdout]".len()..])),
        None => (message, None),
    };
    let (stdout, stderr) = match rest {
        None => {
            // No sections: the message itself is all there is.
            (String::new(), String::new())
        }
        Some(r) => {
            let r = r.strip_prefix('\n').unwrap_or(r);
            if let Some(r2) = r.strip_prefix("[stderr]") {
                (
                    String::new(),
                    r2.strip_prefix('\n').unwrap_or(r2).to_string(),
                )
            } else {
                match r.find("\n[stderr]") {
                    Some(j) => {
                        let out = &r[..j];
                        let err = &r[j + "\n[stderr]".len()..];
                        (
                            out.to_string(),
                            err.strip_prefix('\n').unwrap_or(err).to_string(),
                        )
                    }
                    None => (r.to_string(), String::new()),
                }
            }
        }
    };
    let (stdout, status) = if rest.is_none() {
        (message.to_string(), message.trim().to_string())
    } else {
        (stdout, status.trim().to_string())
    };
    let exit_code = if let Some(i) = status.find("exit status=") {
        let digits: String = status[i + "exit status=".len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        digits.parse().ok()
    } else if status.starts_with("Enable succeeded") {
        Some(0)
    } else {
        None
    };
    Ok(RunCommandOutput {
        stdout,
        stderr,
        exit_code,
        status,
        code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc"), "abc");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(render_argv(&["echo", "a;b", "$HOME"]), "echo 'a;b' '$HOME'");
    }

    #[test]
    fn ssh_argv_strict_default_and_full() {
        let t = SshTarget::new("198.18.1.4");
        assert_eq!(
            ssh_argv(&t, "ip route show").unwrap(),
            vec![
                "ssh",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "--",
                "198.18.1.4",
                "ip route show"
            ]
        );
        let mut t = SshTarget::new("dest");
        t.user = Some("azureuser".into());
        t.port = Some(2222);
        t.identity_file = Some("/k/id".into());
        t.jump_host = Some("jump@198.18.1.1".into());
        t.known_hosts_file = Some("/k/known_hosts".into());
        t.connect_timeout_secs = Some(7);
        t.config_file = Some("/k/cfg".into());
        t.strict_host_key_checking = false;
        let a = ssh_argv(&t, "ss -tn; ip a").unwrap();
        let joined = a.join(" ");
        assert!(joined.contains("-o StrictHostKeyChecking=accept-new"));
        assert!(joined.contains("-o UserKnownHostsFile=/k/known_hosts"));
        assert!(joined.contains("-i /k/id -o IdentitiesOnly=yes"));
        assert!(joined.contains("-J jump@198.18.1.1"));
        assert!(joined.contains("-p 2222"));
        assert!(joined.contains("-o ConnectTimeout=7"));
        assert!(joined.contains("-F /k/cfg"));
        assert_eq!(&a[a.len() - 3..], &["--", "azureuser@dest", "ss -tn; ip a"]);
        let bad = SshTarget::new("-oProxyCommand=x");
        assert!(ssh_argv(&bad, "x").is_err());
    }

    #[test]
    fn az_argv() {
        let t = AzureVmTarget {
            resource_group: "rg".into(),
            vm_name: "vm".into(),
            subscription: Some("sub".into()),
            az_path: Some("/opt/az".into()),
        };
        assert_eq!(
            az_run_command_argv(&t, "ip a | head").unwrap(),
            vec![
                "/opt/az",
                "vm",
                "run-command",
                "invoke",
                "-g",
                "rg",
                "-n",
                "vm",
                "--command-id",
                "RunShellScript",
                "--scripts",
                "ip a | head",
                "--subscription",
                "sub",
                "--output",
                "json"
            ]
        );
    }

    #[test]
    fn netns_argv_forms() {
        assert_eq!(
            netns_argv("sstest-a", &Program::Argv(vec!["ip".into(), "a".into()])).unwrap(),
            vec!["ip", "netns", "exec", "sstest-a", "ip", "a"]
        );
        assert_eq!(
            netns_argv("n1", &Program::Shell("ip a | wc -l".into())).unwrap(),
            vec!["ip", "netns", "exec", "n1", "bash", "-c", "ip a | wc -l"]
        );
        assert!(netns_argv("../x", &Program::Shell("x".into())).is_err());
        assert!(netns_argv("-x", &Program::Shell("x".into())).is_err());
    }

    #[test]
    fn collector_keeps_head_and_tail() {
        let data: Vec<u8> = (0..10_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (s, t) = cap_head_tail(&data, 200);
        assert!(t);
        assert!(s.len() <= 200);
        assert!(s.contains("bytes omitted"));
        assert!(data.starts_with(&s.as_bytes()[..50]));
        assert!(data.ends_with(&s.as_bytes()[s.len() - 50..]));
        // Chunked pushes give the same result as one push.
        let mut c = Collector::new(200);
        for ch in data.chunks(37) {
            c.push(ch);
        }
        assert_eq!(c.finish(), (s, true));
        assert_eq!(cap_head_tail(b"short", 200), ("short".to_string(), false));
        let (tiny, t) = cap_head_tail(&data, 5);
        assert!(t && tiny.len() <= 5);
    }

    #[test]
    fn envelope_variants() {
        let ok = r#"{"value":[{"code":"ProvisioningState/succeeded","displayStatus":"Provisioning succeeded","level":"Info","message":"Enable succeeded: \n[stdout]\nhello\nworld\n\n[stderr]\nwarn: x\n","time":null}]}"#;
        let r = parse_run_command_output(ok).unwrap();
        assert_eq!(r.stdout, "hello\nworld\n");
        assert_eq!(r.stderr, "warn: x\n");
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.code.as_deref(), Some("ProvisioningState/succeeded"));
        assert!(parse_run_command_output("nope").is_err());
        assert!(parse_run_command_output(r#"{"value":[]}"#).is_err());
    }
}
