//! Contract test: every argv the Azure provider builds is accepted by the real Azure CLI's
//! argument parser.
//!
//! Needs azure-cli in a virtualenv: `scripts/azcli-venv.sh` creates
//! `${AZCLI_VENV:-$HOME/.cache/ghost-azcli}`. Each argv runs with an empty temporary
//! `AZURE_CONFIG_DIR`, so the CLI is never signed in: an argument it does not know exits 2
//! ("unrecognized arguments") and fails the test; a valid command line gets as far as
//! "Please run 'az login'" (exit 1) and passes. Nothing is sent to Azure: no command here
//! can get past the missing login (key-mode blob commands would try to reach the storage
//! endpoint, so blob commands are checked in login mode; `--auth-mode` takes `key` as well).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cloud_provider::azure::{args, AzureCli};
use cloud_provider::provider::{
    AssociationChange, BlobAuth, BlobLocation, CaptureSpec, NsgRuleSpec, SubnetUpdate,
};
use safety_shell::audit::AuditLog;
use safety_shell::Gate;

fn venv() -> PathBuf {
    match std::env::var_os("AZCLI_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ghost-azcli"),
    }
}

/// Every argument list the provider builds, with realistic values.
fn all_args() -> Vec<(&'static str, Vec<String>)> {
    let rule = NsgRuleSpec {
        name: "block-8080".into(),
        priority: 150,
        direction: "Inbound".into(),
        access: "Deny".into(),
        protocol: "Tcp".into(),
        source_address_prefixes: vec!["10.0.1.4/32".into(), "VirtualNetwork".into()],
        source_port_ranges: vec!["*".into()],
        destination_address_prefixes: vec!["*".into()],
        destination_port_ranges: vec!["8080".into(), "9000-9100".into()],
        description: Some("scenario J".into()),
    };
    let at = BlobLocation {
        account: "stlab".into(),
        container: "artifacts".into(),
        auth: BlobAuth::Login,
    };
    let file = Path::new("/tmp/cp-contract/a.json");
    let cap = CaptureSpec {
        name: "cap1".into(),
        resource_group: "rg-lab".into(),
        vm: "dst-vm".into(),
        storage_account: Some("stlab".into()),
        file_path: Some("/var/captures/cap1.cap".into()),
        time_limit_secs: Some(120),
        bytes_per_packet: Some(0),
        capture_size_bytes: Some(104_857_600),
        filters_json: Some(
            r#"[{"protocol":"TCP","remoteIPAddress":"10.0.1.4","localPort":"8080"}]"#.into(),
        ),
    };
    vec![
        ("vm show", args::vm_show("rg-lab", "dst-vm")),
        ("vm list", args::vm_list("rg-lab")),
        ("nic show", args::nic_show("rg-lab", "dst-nic")),
        ("nic list", args::nic_list("rg-lab")),
        ("nic list (subscription)", args::nic_list_all()),
        (
            "vm extension list",
            args::vm_extension_list("rg-lab", "dest-vm"),
        ),
        ("effective nsg", args::effective_nsgs("rg-lab", "dst-nic")),
        (
            "effective routes",
            args::effective_routes("rg-lab", "dst-nic"),
        ),
        ("nsg show", args::nsg_show("rg-lab", "dst-nsg")),
        ("nsg list", args::nsg_list("rg-lab")),
        ("rule list", args::nsg_rule_list("rg-lab", "dst-nsg", false)),
        (
            "rule list default",
            args::nsg_rule_list("rg-lab", "dst-nsg", true),
        ),
        (
            "rule create",
            args::nsg_rule_create("rg-lab", "dst-nsg", &rule),
        ),
        (
            "rule delete",
            args::nsg_rule_delete("rg-lab", "dst-nsg", "block-8080"),
        ),
        (
            "route table show",
            args::route_table_show("rg-lab", "rt-fw"),
        ),
        ("route table list", args::route_table_list("rg-lab")),
        ("route list", args::route_list("rg-lab", "rt-fw")),
        (
            "storage account show",
            args::storage_account_show("rg-lab", "labartifacts"),
        ),
        ("storage account list", args::storage_account_list("rg-lab")),
        (
            "storage network-rule list",
            args::storage_network_rule_list("rg-lab", "labartifacts"),
        ),
        (
            "subnet show",
            args::subnet_show("rg-lab", "vnet", "default"),
        ),
        (
            "subnet update set",
            args::subnet_update(
                "rg-lab",
                "vnet",
                "default",
                &SubnetUpdate {
                    network_security_group: Some(AssociationChange::Set("sub-nsg".into())),
                    route_table: Some(AssociationChange::Remove),
                    service_endpoints: Some(vec![
                        "Microsoft.Storage".into(),
                        "Microsoft.Sql".into(),
                    ]),
                },
            ),
        ),
        (
            "subnet update remove endpoints",
            args::subnet_update(
                "rg-lab",
                "vnet",
                "default",
                &SubnetUpdate {
                    network_security_group: Some(AssociationChange::Remove),
                    route_table: None,
                    service_endpoints: Some(vec![]),
                },
            ),
        ),
        (
            "run-command",
            args::run_command("rg-lab", "dst-vm", "ip -s link show | head -c 100"),
        ),
        ("capture create", args::capture_create(&cap)),
        ("capture show", args::capture_show("westeurope", "cap1")),
        ("capture status", args::capture_status("westeurope", "cap1")),
        ("capture stop", args::capture_stop("westeurope", "cap1")),
        ("capture delete", args::capture_delete("westeurope", "cap1")),
        ("capture list", args::capture_list("westeurope")),
        (
            "blob upload",
            args::blob_upload(&at, "fw_20261122T070000Z_snapshot.json", file),
        ),
        (
            "blob download",
            args::blob_download(&at, "fw_20261122T070000Z_snapshot.json", file),
        ),
        ("blob list", args::blob_list(&at, "fw_")),
        (
            "blob show",
            args::blob_show(&at, "fw_20261122T070000Z_snapshot.json"),
        ),
        (
            "blob delete",
            args::blob_delete(&at, "fw_20261122T070000Z_snapshot.json"),
        ),
        ("group show", args::group_show("rg-lab")),
    ]
}

#[test]
fn every_argv_is_accepted_by_the_real_az_parser() {
    let az = venv().join("bin/az");
    if !az.is_file() {
        println!(
            "SKIP az contract test: no azure-cli at {} (create it with scripts/azcli-venv.sh, or set AZCLI_VENV)",
            az.display()
        );
        return;
    }
    // The provider adds --subscription and --output exactly as in production.
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::open_in_dir(dir.path(), "contract_20261122T070000Z").unwrap();
    let provider = AzureCli::new(Arc::new(Gate::builder(audit).build()), &az)
        .with_subscription(Some("00000000-0000-0000-0000-000000000000".into()));
    let cases: Vec<(&str, Vec<String>)> = all_args()
        .into_iter()
        .map(|(n, a)| (n, provider.full_argv(&a)))
        .collect();

    // Two at a time: each az start takes about 2 s of CPU.
    let cases = Arc::new(std::sync::Mutex::new(cases));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let cases = cases.clone();
        let failures = failures.clone();
        threads.push(std::thread::spawn(move || loop {
            let Some((name, argv)) = cases.lock().unwrap().pop() else {
                break;
            };
            let cfg = tempfile::tempdir().unwrap();
            let out = Command::new(&argv[0])
                .args(&argv[1..])
                .env("AZURE_CONFIG_DIR", cfg.path())
                .env_remove("AZURE_STORAGE_KEY")
                .env_remove("AZURE_STORAGE_CONNECTION_STRING")
                .env_remove("AZURE_STORAGE_SAS_TOKEN")
                .env("AZURE_CORE_COLLECT_TELEMETRY", "false")
                .env("AZURE_CORE_NO_COLOR", "true")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code();
            let accepted = code == Some(1) && stderr.contains("Please run 'az login'");
            if !accepted {
                failures.lock().unwrap().push(format!(
                    "{name}: exit {code:?}: {}\n  argv: {}",
                    stderr.trim(),
                    argv[1..].join(" ")
                ));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "the real az parser refused {} argv(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn an_unknown_argument_is_caught() {
    // The check above can fail: a made-up option is refused with exit 2.
    let az = venv().join("bin/az");
    if !az.is_file() {
        println!("SKIP az contract negative test: no azure-cli (scripts/azcli-venv.sh)");
        return;
    }
    let cfg = tempfile::tempdir().unwrap();
    let out = Command::new(&az)
        .args([
            "network",
            "nic",
            "show",
            "--resource-group",
            "rg",
            "--name",
            "n",
            "--no-such-flag",
            "x",
            "--output",
            "json",
        ])
        .env("AZURE_CONFIG_DIR", cfg.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized arguments"));
}
