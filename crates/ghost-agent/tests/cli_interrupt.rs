//! Ctrl-C: the investigation stops after the current step, saves the session as
//! interrupted (its audit chain intact), prints the resume command and exits 130; `sessions`
//! lists it (resuming is tested in `playbook_offline`). No network: `az` is a local stub
//! that answers slowly with an error, and the VMs' SSH address is loopback with a key that
//! does not exist (SSH fails at once).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let az = dir.join("az");
    std::fs::write(
        &az,
        "#!/bin/sh\nsleep 3\necho 'ERROR: (ResourceGroupNotFound) stub' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.join("config.env");
    std::fs::write(
        &cfg,
        format!(
            "RESOURCE_GROUP=rg-stub\nSOURCE_VM_NAME=source-vm\nDEST_VM_NAME=dest-vm\n\
             SOURCE_VM_PRIVATE_IP=127.0.0.1\nDEST_VM_PRIVATE_IP=127.0.0.1\n\
             SOURCE_VM_PUBLIC_IP=127.0.0.1\nDEST_VM_PUBLIC_IP=127.0.0.1\nSSH_USER=nobody\n\
             SSH_SOURCE_VM_KEY_PATH={d}/missing_key\nSSH_DEST_VM_KEY_PATH={d}/missing_key\n\
             SSH_KNOWN_HOSTS={d}/known_hosts\nSSH_CONNECT_TIMEOUT=2\nAZ_PATH={az}\nAUDIT_DIR={d}/audit\n",
            d = dir.display(),
            az = az.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn ctrl_c_saves_the_session_and_prints_the_resume_command() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghost-agent"))
        .args(["investigate", "--approve", "never", "--config"])
        .arg(&cfg)
        .arg("source-vm cannot reach dest-vm on port 5001")
        .env_remove("LLM_PROVIDER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the session exists (its state file is written at the start).
    let audit = dir.path().join("audit");
    let started = Instant::now();
    loop {
        let has_state = std::fs::read_dir(&audit)
            .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().is_dir()))
            .unwrap_or(false);
        if has_state || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(130), "stderr:\n{err}");
    assert!(err.contains("ghost-agent resume ghost_"), "{err}");
    let sid = err
        .split("ghost-agent resume ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(audit.join(&sid).join(format!("{sid}_state.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(state["status"], "interrupted");
    assert!(!state["calls"].as_array().unwrap().is_empty());
    // The audit chain of the interrupted session verifies.
    let log = audit.join(&sid).join(format!("{sid}_audit.jsonl"));
    assert!(safety_shell::audit::verify(&log).is_ok());
    let out = Command::new(env!("CARGO_BIN_EXE_ghost-agent"))
        .args(["sessions", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&sid) && text.contains("interrupted"),
        "{text}"
    );
}
