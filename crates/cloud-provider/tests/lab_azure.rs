//! Lab test: the Azure provider and the remote runner against a real netlab lab, through
//! netlab's `az` front end (`AZ_PATH` points at a wrapper that runs `netlab az --prefix P`).
//!
//! Needs root and the netlab binary (`cargo build -p netlab`; found in `NETLAB_BIN`, else
//! next to this test binary's target directory). Otherwise it prints one SKIP line saying
//! what enables it. The lab is torn down on success, failure and panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cloud_provider::artifact::{Artifact, ArtifactHeader, ArtifactStore};
use cloud_provider::azure::AzureCli;
use cloud_provider::blob::BlobStore;
use cloud_provider::config::{ConfigFile, Environment, FlagOverrides, Settings};
use cloud_provider::provider::{BlobAuth, CaptureSpec, CloudProvider, NsgRuleSpec};
use cloud_provider::remote::{RemotePath, RemoteRunner, VmAccess};
use cloud_provider::session::SessionId;
use safety_shell::approve::AllRiskyApprover;
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

fn netlab_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETLAB_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    // tests run from {target}/debug/deps/lab_azure-HASH
    let exe = std::env::current_exe().ok()?;
    let debug = exe.parent()?.parent()?;
    let p = debug.join("netlab");
    p.is_file().then_some(p)
}

fn is_root() -> bool {
    nix_like_euid() == 0
}

fn nix_like_euid() -> u32 {
    // /proc/self/status: "Uid:\treal\teffective\t…"
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
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

#[test]
fn provider_and_runner_against_the_lab() {
    if !is_root() {
        println!(
            "SKIP lab_azure: needs root (run the tests as root; the lab builds network namespaces)"
        );
        return;
    }
    let Some(bin) = netlab_bin() else {
        println!("SKIP lab_azure: no netlab binary (run `cargo build -p netlab` first, or set NETLAB_BIN)");
        return;
    };
    let prefix = format!("cp{:05}", std::process::id() % 100_000);
    let lab = Lab {
        bin,
        state: tempfile::tempdir().unwrap(),
        prefix: prefix.clone(),
    };
    let scenario = workspace_root().join("demo/use_case_a/scenario.toml");
    let up = lab.netlab(&["up", scenario.to_str().unwrap(), "--prefix", &prefix]);
    assert!(
        up.status.success(),
        "netlab up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    // config.env from the lab, AZ_PATH to a wrapper named `az`.
    let work = tempfile::tempdir().unwrap();
    let env_out = lab.netlab(&["env", "--prefix", &prefix, "--config"]);
    assert!(env_out.status.success());
    let cfg = work.path().join("config.env");
    std::fs::write(&cfg, &env_out.stdout).unwrap();
    let bin_dir = work.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let wrapper = bin_dir.join("az");
    std::fs::write(
        &wrapper,
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
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let file = ConfigFile::load(&cfg).unwrap();
    let settings = Settings::from_parts(Some(file), BTreeMap::new());
    let mut flags = FlagOverrides::default();
    flags.set("AZ_PATH", Some(wrapper.display().to_string()));
    // netlab names its region `netlab-local`, which config.rs's LOCATION check (letters and
    // digits, like Azure regions) refuses; no call here needs the region.
    flags.set("LOCATION", Some("netlablocal"));
    flags.set(
        "AUDIT_DIR",
        Some(work.path().join("audit").display().to_string()),
    );
    let env = Environment::resolve(&settings, &flags).unwrap();
    let rg = env.resource_group.clone().unwrap();

    let audit = AuditLog::open_in_dir(&env.audit_dir, "cplab_20261122T070000Z").unwrap();
    let gate = Arc::new(Gate::builder(audit).approver(AllRiskyApprover).build());
    let az = Arc::new(AzureCli::from_environment(gate.clone(), &env));

    // Look up the lab VMs by name and by private IP.
    let src_name = env.source.name.clone().unwrap();
    let dst_name = env.dest.name.clone().unwrap();
    let src = az.vm_show(&rg, &src_name).unwrap();
    assert_eq!(src.name, src_name);
    let dst = az
        .vm_by_private_ip(&rg, env.dest.private_ip.unwrap())
        .unwrap();
    assert_eq!(dst.name, dst_name);
    let nics = az.vm_nics(&rg, &dst_name).unwrap();
    assert!(nics[0]
        .private_ips()
        .contains(&env.dest.private_ip.unwrap().to_string().as_str()));
    let nic = nics[0].name.clone();

    // Effective NSGs and routes.
    let nsgs = az.effective_nsgs(&rg, &nic).unwrap();
    assert!(!nsgs.is_empty());
    assert!(nsgs
        .iter()
        .flat_map(|n| &n.effective_security_rules)
        .any(|r| r.name.ends_with("allow-ssh")));
    let routes = az.effective_routes(&rg, &nic).unwrap();
    assert!(routes.iter().any(|r| r.next_hop_type == "VnetLocal"));

    // Create and delete a rule.
    let nsg = env.dest.nsg_name.clone().unwrap();
    let rule = NsgRuleSpec {
        name: "cp-lab-test".into(),
        priority: 4000,
        direction: "Inbound".into(),
        access: "Deny".into(),
        protocol: "Tcp".into(),
        source_address_prefixes: vec!["*".into()],
        source_port_ranges: vec!["*".into()],
        destination_address_prefixes: vec!["*".into()],
        destination_port_ranges: vec!["4444".into()],
        description: None,
    };
    let created = az.nsg_rule_create(&rg, &nsg, &rule, "lab test").unwrap();
    assert_eq!(created.priority, 4000);
    assert!(az
        .nsg_rule_list(&rg, &nsg, false)
        .unwrap()
        .iter()
        .any(|r| r.name == "cp-lab-test"));
    az.nsg_rule_delete(&rg, &nsg, "cp-lab-test", "lab test")
        .unwrap();
    assert!(!az
        .nsg_rule_list(&rg, &nsg, true)
        .unwrap()
        .iter()
        .any(|r| r.name == "cp-lab-test"));
    let e = az.nsg_show(&rg, "no-such-nsg").unwrap_err();
    assert!(e.is_not_found(), "{e}");

    // The same command through run-command and through SSH gives the same output.
    let rc = RemoteRunner::from_environment(
        gate.clone(),
        Some(az.clone()),
        &env,
        RemotePath::RunCommand,
    )
    .unwrap();
    let ssh = RemoteRunner::from_environment(gate.clone(), Some(az.clone()), &env, RemotePath::Ssh)
        .unwrap();
    let cmd = "ip -4 -o addr show scope global";
    let a = rc
        .run(&dst_name, cmd, "lab test: addresses via run-command")
        .unwrap();
    assert_eq!(a.path, RemotePath::RunCommand);
    assert!(
        a.stdout.contains(&env.dest.private_ip.unwrap().to_string()),
        "{a:?}"
    );
    match ssh.access(&dst_name) {
        Some(VmAccess::Ssh(_)) => {}
        other => panic!("{other:?}"),
    }
    let b = ssh
        .run(&dst_name, cmd, "lab test: addresses via SSH")
        .unwrap();
    assert_eq!(b.path, RemotePath::Ssh);
    assert_eq!(a.stdout, b.stdout);
    println!(
        "lab {prefix}: {dst_name} via run-command and SSH: {}",
        a.stdout.trim()
    );
    assert_eq!(a.exit_code, b.exit_code);

    // A Network Watcher packet capture: create, show, list, stop, status, delete. Stopping
    // it uploads the capture into the lab storage account's container.
    let location = az.resource_group_location(&rg).unwrap();
    let cap_name = format!("cap-{prefix}");
    let cap = az
        .capture_create(
            &CaptureSpec {
                name: cap_name.clone(),
                resource_group: rg.clone(),
                vm: dst_name.clone(),
                storage_account: env.storage_account.clone(),
                file_path: None,
                time_limit_secs: Some(60),
                bytes_per_packet: None,
                capture_size_bytes: None,
                filters_json: None,
            },
            "lab test: capture",
        )
        .unwrap();
    assert_eq!(cap.name, cap_name);
    assert_eq!(
        az.capture_show(&location, &cap_name).unwrap().name,
        cap_name
    );
    assert!(az
        .capture_list(&location)
        .unwrap()
        .iter()
        .any(|c| c.name == cap_name));
    az.capture_stop(&location, &cap_name, "lab test: stop capture")
        .unwrap();
    let st = az.capture_status(&location, &cap_name).unwrap();
    assert_eq!(
        st.packet_capture_status.as_deref(),
        Some("Stopped"),
        "{st:?}"
    );
    az.capture_delete(&location, &cap_name, "lab test: delete capture")
        .unwrap();
    assert!(az
        .capture_show(&location, &cap_name)
        .unwrap_err()
        .is_not_found());

    // Store and read an artifact in the lab storage account, then detect tampering.
    // (Listing is not checked here: netlab's az refuses `--num-results *`, which the real
    // CLI accepts; tests/blob_store.rs covers listing against a fake az.)
    let cloud: Arc<dyn CloudProvider> = az.clone();
    let store = BlobStore::from_environment(cloud, &env, BlobAuth::Login).unwrap();
    let header = ArtifactHeader::new(
        "cloud-provider-lab-test",
        "0.1.0",
        SessionId::parse(&format!("cplab_{prefix}")).unwrap(),
        "snapshot",
        chrono::Utc::now(),
    );
    let stored = store
        .put_json(&Artifact {
            header,
            body: serde_json::json!({"routes": routes.len()}),
        })
        .unwrap();
    let back: Artifact<serde_json::Value> = store.get_json(&stored.name).unwrap();
    assert_eq!(back.body["routes"], routes.len());
    assert!(store.exists(&stored.name).unwrap());
    let forged = work.path().join("forged.json");
    std::fs::write(&forged, b"{\"routes\": 0}\n").unwrap();
    az.blob_upload(store.location(), &stored.name, &forged, "lab test: tamper")
        .unwrap();
    let e = store.get(&stored.name).unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    for name in [stored.name.clone(), format!("{}.sha256", stored.name)] {
        az.blob_delete(store.location(), &name, "lab test: clean up")
            .unwrap();
    }
    assert!(!store.exists(&stored.name).unwrap());

    // The audit chain of everything above is intact.
    assert!(safety_shell::audit::verify(gate.audit().path()).is_ok());
}
