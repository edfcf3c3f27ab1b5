//! SSH target end to end: a throwaway sshd on 127.0.0.1 (per-run host key, client key and
//! known_hosts, root login by key only), stopped by pid. Needs root, sshd and ssh-keygen;
//! otherwise it prints one SKIP line.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use safety_shell::exec::{execute, ExecOptions, Program};
use safety_shell::{SshTarget, Target};

struct Sshd {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> bool {
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn start_sshd() -> Result<Sshd, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or("sshd is not installed (scripts/setup.sh installs openssh-server)")?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    let host_key = d.join("host_key");
    let key = d.join("client_key");
    if !keygen(&host_key) || !keygen(&key) {
        return Err("ssh-keygen failed or is missing".into());
    }
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys"))
        .map_err(|e| e.to_string())?;
    // A free loopback port (released just before sshd binds it).
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).map_err(|e| e.to_string())?;
    let known_hosts = d.join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
        .map_err(|e| e.to_string())?;
    let cfg = d.join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\n",
            host_key.display(),
            d.join("sshd.pid").display(),
            d.join("authorized_keys").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start sshd: {e}"))?;
    let s = Sshd {
        child,
        _dir: dir,
        port,
        key,
        known_hosts,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("sshd did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(s)
}

#[test]
fn ssh_target_end_to_end_on_loopback() {
    let sshd = match start_sshd() {
        Ok(s) => s,
        Err(why) => {
            println!("SKIP ssh_target_end_to_end_on_loopback: {why}");
            return;
        }
    };
    let mut t = SshTarget::new("127.0.0.1");
    t.user = Some("root".into());
    t.port = Some(sshd.port);
    t.identity_file = Some(sshd.key.clone());
    t.known_hosts_file = Some(sshd.known_hosts.clone());
    t.connect_timeout_secs = Some(5);
    t.config_file = Some("/dev/null".into());
    let target = Target::Ssh(t.clone());
    let opts = ExecOptions {
        timeout: Duration::from_secs(20),
        ..ExecOptions::default()
    };
    // argv is shell-quoted into one remote command: the ';' stays an argument.
    let r = execute(
        &target,
        &Program::Argv(vec!["echo".into(), "a;b".into(), "$HOME".into()]),
        &opts,
    )
    .unwrap();
    assert_eq!(r.exit_code, Some(0), "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "a;b $HOME\n");
    // A compound command runs under the remote shell, exit code propagated.
    let r = execute(
        &target,
        &Program::Shell("echo one | tr o O; echo err >&2; exit 4".into()),
        &opts,
    )
    .unwrap();
    assert_eq!(r.stdout, "One\n");
    assert!(r.stderr.contains("err"));
    assert_eq!(r.exit_code, Some(4));

    // Strict host-key checking: an empty known_hosts refuses the host (BatchMode: no prompt).
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut strict = t.clone();
    strict.known_hosts_file = Some(empty.path().to_path_buf());
    let r = execute(&Target::Ssh(strict), &Program::Shell("true".into()), &opts).unwrap();
    assert_eq!(r.exit_code, Some(255));
    assert!(
        r.stderr
            .to_lowercase()
            .contains("host key verification failed"),
        "{}",
        r.stderr
    );
}
