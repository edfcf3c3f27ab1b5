//! The remote runner over a fake transport: the same result whichever path ran, the
//! run-command envelope, paging past Azure's 4 KiB limit, and its refusals.

mod common;

use std::sync::{Arc, Mutex};

use cloud_provider::error::CloudError;
use cloud_provider::remote::{RemotePath, RemoteRunner, VmAccess, RUN_COMMAND_PAGE};
use safety_shell::{Class, SshTarget, Target};

use common::*;

/// The VM's "real" output for `command`: long for the listing, short otherwise.
fn full_output(command: &str, version: u32) -> String {
    if command.starts_with("ip -s link") {
        (0..900)
            .map(|i| {
                format!(
                    "{i}: eth{i} mtu 1500 v{}\n",
                    if i > 850 { version } else { 0 }
                )
            })
            .collect()
    } else if command.starts_with("iptables") {
        "x".repeat(9000)
    } else {
        "hello from the vm\n".to_string()
    }
}

/// Emulates a VM behind three transports; run-command keeps the last 4096 bytes and
/// understands the pager script.
fn vm(version: Arc<Mutex<u32>>) -> impl Fn(&Target, &[String]) -> safety_shell::exec::RawOutput {
    move |target, argv| {
        let v = *version.lock().unwrap();
        match target {
            Target::Ssh(_) => ok(&full_output(&argv.join(" "), v)),
            Target::Netns { .. } => ok(&full_output(&argv.join(" "), v)),
            Target::Local => {
                let script = opt(argv, "--scripts").unwrap().to_string();
                let text = if let Some(rest) = script.strip_prefix("(\n") {
                    let (cmd, pager) = rest.split_once("\n) | tail -c +").unwrap();
                    let (start, len) = pager.split_once(" | head -c ").unwrap();
                    let start: usize = start.parse::<usize>().unwrap() - 1;
                    let len: usize = len.parse().unwrap();
                    let full = full_output(cmd, v);
                    let end = (start + len).min(full.len());
                    full.get(start.min(full.len())..end)
                        .unwrap_or("")
                        .to_string()
                } else {
                    let full = full_output(&script, v);
                    full[full.len().saturating_sub(4096)..].to_string()
                };
                // Each page is a new run: the "VM" may change in between.
                ok(&envelope(&text, ""))
            }
            _ => fail(1, "unexpected target"),
        }
    }
}

fn runner(h: &Harness) -> RemoteRunner {
    RemoteRunner::new(h.gate.clone(), Some(h.az.clone()))
        .with_vm("ssh-vm", VmAccess::Ssh(SshTarget::new("198.18.1.5")))
        .with_vm(
            "rc-vm",
            VmAccess::RunCommand {
                resource_group: "rg".into(),
                vm_name: "dst-vm".into(),
            },
        )
        .with_vm(
            "ns-vm",
            VmAccess::Netns {
                name: "nltest-dst".into(),
            },
        )
}

#[test]
fn same_result_type_whichever_path_ran() {
    let h = harness(vm(Arc::new(Mutex::new(0))));
    let r = runner(&h);
    let mut outs = Vec::new();
    for (name, path) in [
        ("ssh-vm", RemotePath::Ssh),
        ("rc-vm", RemotePath::RunCommand),
        ("ns-vm", RemotePath::Netns),
    ] {
        let o = r.run(name, "hostname", "which host is this").unwrap();
        assert_eq!(o.path, path);
        assert_eq!(o.exit_code, Some(0));
        assert!(!o.audit_id.is_empty());
        outs.push(o.stdout);
    }
    assert!(outs.iter().all(|o| o == "hello from the vm\n"), "{outs:?}");
    let err = r.run("nope", "hostname", "x").unwrap_err();
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn run_command_pages_past_the_4k_limit() {
    let h = harness(vm(Arc::new(Mutex::new(0))));
    assert_eq!(
        h.gate.classify("ip -s link show").classification,
        Class::Safe
    );
    // The pager around a SAFE command is SAFE too, so paging asks no approval per page.
    let page = cloud_provider::remote::page_script("ip -s link show", 3500);
    assert_eq!(h.gate.classify(&page).classification, Class::Safe, "{page}");
    let r = runner(&h);
    let o = r.run("rc-vm", "ip -s link show", "count errors").unwrap();
    let full = full_output("ip -s link show", 0);
    assert!(full.len() > 4 * 4096);
    assert!(
        o.stdout == full,
        "assembled output differs from the VM output"
    );
    assert_eq!(
        o.page_audit_ids.len(),
        full.len() / RUN_COMMAND_PAGE + 1,
        "one run per page plus the short last page"
    );
    // The SSH path gives the same bytes in one run.
    let s = r.run("ssh-vm", "ip -s link show", "count errors").unwrap();
    assert!(s.stdout == o.stdout, "SSH and run-command outputs differ");
}

#[test]
fn paging_detects_output_that_changed_between_runs() {
    let version = Arc::new(Mutex::new(0));
    let v2 = version.clone();
    let inner = vm(version.clone());
    let calls = Arc::new(Mutex::new(0));
    let h = harness(move |t, a| {
        // The first run sees version 0, every page after it version 1.
        let mut c = calls.lock().unwrap();
        *c += 1;
        if *c == 2 {
            *v2.lock().unwrap() = 1;
        }
        inner(t, a)
    });
    let e = runner(&h)
        .run("rc-vm", "ip -s link show", "count errors")
        .unwrap_err();
    match e {
        CloudError::OutputTruncated { detail, .. } => {
            assert!(detail.contains("changed"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn paging_refuses_to_rerun_a_risky_command_and_is_bounded() {
    let h = harness(vm(Arc::new(Mutex::new(0))));
    let r = runner(&h);
    let e = r
        .run("rc-vm", "iptables -A INPUT -j ACCEPT", "test")
        .unwrap_err();
    assert!(matches!(e, CloudError::OutputTruncated { .. }), "{e:?}");
    assert_eq!(
        h.argvs().len(),
        1,
        "the risky command ran once, never again"
    );

    let r = runner(&h).with_max_pages(2);
    let e = r.run("rc-vm", "ip -s link show", "x").unwrap_err();
    match e {
        CloudError::OutputTruncated { detail, .. } => {
            assert!(detail.contains("2 pages"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ssh_connection_failure_is_unreachable() {
    let h = harness(|_, _| {
        fail(
            255,
            "ssh: connect to host 198.18.1.5 port 22: Connection refused\n",
        )
    });
    let e = runner(&h).run("ssh-vm", "hostname", "x").unwrap_err();
    match e {
        CloudError::Unreachable { target, .. } => assert_eq!(target, "ssh:198.18.1.5"),
        other => panic!("{other:?}"),
    }
    // A command that itself exits 255 is a result, not a transport failure.
    let h = harness(|_, _| out(Some(255), "", "my tool failed\n"));
    let o = runner(&h).run("ssh-vm", "hostname", "x").unwrap();
    assert_eq!(o.exit_code, Some(255));
}

#[test]
fn run_command_exit_status_and_stderr() {
    let h = harness(|_, _| {
        ok(&serde_json::json!({"value": [{"code": "ProvisioningState/failed", "message":
            "Enable failed: failed to execute command: command terminated with exit status=3\n[stdout]\npartial\n\n[stderr]\nno such device\n"}]}).to_string())
    });
    let o = runner(&h).run("rc-vm", "ip link show eth9", "x").unwrap();
    assert_eq!(o.exit_code, Some(3));
    assert_eq!(o.stdout, "partial\n");
    assert_eq!(o.stderr, "no such device\n");
    assert_eq!(o.path, RemotePath::RunCommand);
}

#[test]
fn ssh_access_from_the_environment() {
    use cloud_provider::config::{parse_env_text, Environment, FlagOverrides, Settings};
    let text =
        "SOURCE_VM_NAME=src\nSOURCE_VM_PRIVATE_IP=198.18.1.4\nSOURCE_VM_PUBLIC_IP=198.19.1.4\n\
                DEST_VM_NAME=dst\nDEST_VM_PRIVATE_IP=198.18.1.5\n\
                SSH_USER=azureuser\nSSH_SOURCE_VM_KEY_PATH=/k/src\nSSH_DEST_VM_KEY_PATH=/k/dst\n\
                SSH_JUMP_HOST=ops@198.19.0.1\nSSH_KNOWN_HOSTS=/k/known_hosts\n\
                SSH_STRICT_HOST_KEY_CHECKING=false\nSSH_CONNECT_TIMEOUT=7\nRESOURCE_GROUP=rg\n";
    let file = parse_env_text(text, "t.env", &|_| None).unwrap();
    let env = Environment::resolve(
        &Settings::from_parts(Some(file), Default::default()),
        &FlagOverrides::default(),
    )
    .unwrap();
    let h = harness(|_, _| ok(""));
    let r = RemoteRunner::from_environment(h.gate.clone(), None, &env, RemotePath::Ssh).unwrap();
    let Some(VmAccess::Ssh(src)) = r.access("src") else {
        panic!("src is not SSH")
    };
    assert_eq!(src.host, "198.19.1.4", "the public IP is preferred");
    assert_eq!(src.user.as_deref(), Some("azureuser"));
    assert_eq!(
        src.identity_file.as_deref(),
        Some(std::path::Path::new("/k/src"))
    );
    assert_eq!(src.jump_host.as_deref(), Some("ops@198.19.0.1"));
    assert_eq!(
        src.known_hosts_file.as_deref(),
        Some(std::path::Path::new("/k/known_hosts"))
    );
    assert!(
        !src.strict_host_key_checking,
        "relaxed only because the config says so"
    );
    assert_eq!(src.connect_timeout_secs, Some(7));
    let Some(VmAccess::Ssh(dst)) = r.access("dst") else {
        panic!("dst is not SSH")
    };
    assert_eq!(dst.host, "198.18.1.5", "no public IP: the private one");
    assert_eq!(
        dst.identity_file.as_deref(),
        Some(std::path::Path::new("/k/dst"))
    );

    let rc =
        RemoteRunner::from_environment(h.gate.clone(), None, &env, RemotePath::RunCommand).unwrap();
    assert_eq!(
        rc.access("dst"),
        Some(&VmAccess::RunCommand {
            resource_group: "rg".into(),
            vm_name: "dst".into()
        })
    );
    // Without an Azure provider, run-command says so instead of failing obscurely.
    let e = rc.run("dst", "hostname", "x").unwrap_err();
    assert_eq!(e.exit_code(), 2);
}
