//! Execution: argv vs bash -c, process-group timeout, caps, lossy UTF-8, exit codes and
//! signals, netns target (root only), ssh/az argv, run-command envelope fixtures.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use safety_shell::exec::{
    cap_head_tail, execute, parse_run_command_output, run_process, target_argv, ExecOptions,
    Program,
};
use safety_shell::{AzureVmTarget, SshTarget, Target};

fn opts(timeout_ms: u64) -> ExecOptions {
    ExecOptions {
        timeout: Duration::from_millis(timeout_ms),
        kill_grace: Duration::from_millis(300),
        max_output_bytes: 1024 * 1024,
    }
}

fn sh(text: &str) -> Program {
    Program::Shell(text.into())
}

fn argv(a: &[&str]) -> Program {
    Program::Argv(a.iter().map(|s| s.to_string()).collect())
}

#[test]
fn argv_path_has_no_shell() {
    let r = execute(
        &Target::Local,
        &argv(&["echo", "$HOME", "a;b", "*"]),
        &opts(5000),
    )
    .unwrap();
    assert_eq!(r.stdout, "$HOME a;b *\n");
    assert_eq!(r.exit_code, Some(0));
    assert!(r.success());
}

#[test]
fn shell_path_runs_the_exact_text_under_bash() {
    let r = execute(
        &Target::Local,
        &sh("echo $((1+2)) | tr 3 x; echo ${BASH_VERSION:+bash}"),
        &opts(5000),
    )
    .unwrap();
    assert_eq!(r.stdout, "x\nbash\n");
}

#[test]
fn exit_code_and_signal() {
    let r = execute(&Target::Local, &sh("echo e >&2; exit 7"), &opts(5000)).unwrap();
    assert_eq!(r.exit_code, Some(7));
    assert_eq!(r.signal, None);
    assert_eq!(r.stderr, "e\n");
    let r = execute(&Target::Local, &sh("kill -KILL $$"), &opts(5000)).unwrap();
    assert_eq!(r.exit_code, None);
    assert_eq!(r.signal, Some(9));
    assert!(!r.success());
}

#[test]
fn stdin_is_closed() {
    let t0 = Instant::now();
    let r = execute(&Target::Local, &argv(&["cat"]), &opts(10_000)).unwrap();
    assert_eq!(r.stdout, "");
    assert_eq!(r.exit_code, Some(0));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn missing_program_is_a_spawn_error() {
    let e = execute(
        &Target::Local,
        &argv(&["/nonexistent/prog-xyz"]),
        &opts(1000),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot start /nonexistent/prog-xyz"));
}

/// Whether a pid is gone (or a zombie nobody has reaped yet).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let t0 = Instant::now();
    let r = execute(
        &Target::Local,
        &sh("sleep 300 & echo $$ $!; sleep 300"),
        &opts(800),
    )
    .unwrap();
    assert!(r.timed_out);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    let pids: Vec<i32> = r
        .stdout
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{:?}", r.stdout);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|p| gone(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pids {
        assert!(gone(p), "pid {p} survived the timeout");
    }
}

#[test]
fn background_grandchild_holding_pipes_is_killed_at_the_deadline() {
    // The shell exits at once, its background child keeps stdout open.
    let t0 = Instant::now();
    let r = execute(&Target::Local, &sh("sleep 300 & echo $!"), &opts(800)).unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(r.exit_code, Some(0));
    let pid: i32 = r.stdout.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gone(pid));
}

#[test]
fn output_is_capped_head_and_tail() {
    let mut o = opts(10_000);
    o.max_output_bytes = 1000;
    let r = execute(
        &Target::Local,
        &sh("printf 'HEAD'; head -c 200000 /dev/zero | tr '\\0' a; printf 'TAIL'"),
        &o,
    )
    .unwrap();
    assert!(r.stdout.len() <= 1000, "{}", r.stdout.len());
    assert!(r.stdout.starts_with("HEADaaa"));
    assert!(r.stdout.ends_with("aaaTAIL"));
    assert!(r.stdout.contains("bytes omitted"));
    assert!(r.truncation.stdout);
    assert!(!r.truncation.stderr);
    assert_eq!(r.truncation.stdout_total_bytes, 200_008);
}

#[test]
fn both_pipes_are_drained_concurrently() {
    // 3 MiB on each stream: a sequential reader would deadlock on a full pipe.
    let r = execute(
        &Target::Local,
        &sh("head -c 3145728 /dev/zero >&2; head -c 3145728 /dev/zero; echo done >&2"),
        &opts(20_000),
    )
    .unwrap();
    assert!(!r.timed_out);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.truncation.stdout_total_bytes, 3_145_728);
    assert_eq!(r.truncation.stderr_total_bytes, 3_145_733);
    assert!(r.stderr.ends_with("done\n"));
}

#[test]
fn invalid_utf8_is_decoded_lossily() {
    let r = execute(&Target::Local, &sh("printf 'ok\\377\\376end'"), &opts(5000)).unwrap();
    assert_eq!(r.stdout, "ok\u{FFFD}\u{FFFD}end");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn cap_never_exceeds_the_cap(data in proptest::collection::vec(any::<u8>(), 0..6000), cap in 0usize..3000) {
        let (s, truncated) = cap_head_tail(&data, cap);
        prop_assert!(s.len() <= cap, "len {} > cap {}", s.len(), cap);
        if !truncated {
            prop_assert_eq!(s, String::from_utf8_lossy(&data).into_owned());
        }
    }

    #[test]
    fn envelope_parser_never_panics(msg in any::<String>(), raw in any::<String>()) {
        let doc = serde_json::json!({"value": [{"code": "x", "message": msg}]}).to_string();
        let _ = parse_run_command_output(&doc);
        let _ = parse_run_command_output(&raw);
        let framed = format!("{{\"value\":[{{\"message\":\"Enable succeeded: \\n[stdout]\\n{}\"}}]}}", raw.escape_default());
        let _ = parse_run_command_output(&framed);
    }

    #[test]
    fn cap_keeps_ascii_head_and_tail(data in "[a-z]{0,5000}", cap in 64usize..2000) {
        let (s, truncated) = cap_head_tail(data.as_bytes(), cap);
        prop_assert!(s.len() <= cap);
        prop_assert_eq!(truncated, data.len() > cap);
        if truncated {
            let (h, t) = s.split_once("\n[... ").unwrap();
            let t = t.split_once(" ...]\n").unwrap().1;
            prop_assert!(data.starts_with(h));
            prop_assert!(data.ends_with(t));
        } else {
            prop_assert_eq!(s, data);
        }
    }
}

#[test]
fn ssh_target_wraps_the_inner_command_as_one_argument() {
    let mut t = SshTarget::new("198.18.1.5");
    t.user = Some("azureuser".into());
    t.known_hosts_file = Some("/lab/known_hosts".into());
    t.identity_file = Some("/lab/id".into());
    let a = target_argv(&Target::Ssh(t.clone()), &argv(&["iptables", "-S", "INPUT"])).unwrap();
    assert_eq!(a[0], "ssh");
    assert!(a.contains(&"BatchMode=yes".to_string()));
    assert!(a.contains(&"StrictHostKeyChecking=yes".to_string()));
    assert_eq!(
        &a[a.len() - 3..],
        &["--", "azureuser@198.18.1.5", "iptables -S INPUT"]
    );
    let a = target_argv(&Target::Ssh(t), &sh("ss -tn | grep ':22 '")).unwrap();
    assert_eq!(a.last().unwrap(), "ss -tn | grep ':22 '");
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn run_command_envelope_fixtures() {
    let ok = parse_run_command_output(&fixture("runcommand_success.json")).unwrap();
    assert_eq!(ok.exit_code, Some(0));
    assert_eq!(
        ok.stdout,
        "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 5001 -j DROP\n"
    );
    assert_eq!(ok.stderr, "");

    let with_err = parse_run_command_output(&fixture("runcommand_stderr.json")).unwrap();
    assert_eq!(with_err.exit_code, Some(0));
    assert_eq!(with_err.stdout, "qdisc noqueue 0: dev lo root refcnt 2\n");
    assert_eq!(with_err.stderr, "Cannot find device \"eth9\"\n");

    let failed = parse_run_command_output(&fixture("runcommand_failed.json")).unwrap();
    assert_eq!(failed.exit_code, Some(127));
    assert_eq!(failed.stdout, "");
    assert!(failed.stderr.contains("command not found"));
    assert_eq!(failed.code.as_deref(), Some("ProvisioningState/failed/0"));

    // Azure keeps only the tail of long output: the message starts mid-stream and the
    // [stderr] section may be cut off entirely.
    let trunc = parse_run_command_output(&fixture("runcommand_truncated.json")).unwrap();
    assert!(trunc.stdout.starts_with("2 198.18.1.4"));
    assert!(trunc
        .stdout
        .ends_with("ESTAB 0 0 198.18.1.5:22 198.18.255.10:50097\n"));
    assert_eq!(trunc.stderr, "");

    assert!(parse_run_command_output("{\"value\": [{\"code\": \"x\"}]}").is_err());
    assert!(parse_run_command_output("<html>").is_err());
}

#[test]
fn azure_target_runs_az_and_unwraps_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("az");
    let fixture_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runcommand_stderr.json");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\ncat '{}'\n",
            dir.path().join("args").display(),
            fixture_path.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = Target::AzureRunCommand(AzureVmTarget {
        resource_group: "rg".into(),
        vm_name: "dest-vm".into(),
        subscription: None,
        az_path: Some(fake.clone()),
    });
    let r = execute(
        &t,
        &sh("tc qdisc show; tc qdisc show dev eth9"),
        &opts(10_000),
    )
    .unwrap();
    assert_eq!(r.stdout, "qdisc noqueue 0: dev lo root refcnt 2\n");
    assert_eq!(r.stderr, "Cannot find device \"eth9\"\n");
    assert_eq!(r.exit_code, Some(0));
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.contains("--scripts\ntc qdisc show; tc qdisc show dev eth9\n"));

    // az itself failing is a transport error, not a command result.
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ERROR: (ResourceNotFound) vm not found' >&2\nexit 3\n",
    )
    .unwrap();
    let e = execute(&t, &sh("true"), &opts(10_000)).unwrap_err();
    assert!(e.to_string().contains("ResourceNotFound"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Netns target: needs root; builds its own namespace.

struct NetnsGuard(String);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

#[test]
fn netns_target_runs_inside_the_namespace() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIP netns_target_runs_inside_the_namespace: needs root (run the tests as root)");
        return;
    }
    let name = format!("sstest-{}-{}", std::process::id(), rand_suffix());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .unwrap();
    assert!(st.success(), "ip netns add failed");
    let _guard = NetnsGuard(name.clone());
    let t = Target::Netns { name: name.clone() };
    let r = execute(&t, &argv(&["ip", "-o", "link", "show"]), &opts(10_000)).unwrap();
    assert_eq!(r.exit_code, Some(0), "{}", r.stderr);
    // A fresh namespace has only its loopback.
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(r.stdout.contains("lo:"));
    let r = execute(&t, &sh("ip -o link show | wc -l; echo $0"), &opts(10_000)).unwrap();
    assert_eq!(r.stdout, "1\nbash\n");
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}", n)
}

#[test]
fn run_process_rejects_empty_argv() {
    assert!(run_process(&[], &opts(100)).is_err());
}

#[test]
fn a_zero_cap_reports_the_output_as_cut() {
    assert_eq!(cap_head_tail(b"abc", 0), (String::new(), true));
    assert_eq!(cap_head_tail(b"", 0), (String::new(), false));
}
