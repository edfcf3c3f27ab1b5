//! The Azure provider over a fake `az` (injected executor behind the real gate): argv
//! shapes, JSON envelopes, typed errors, throttling retries.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cloud_provider::azure::AzureCli;
use cloud_provider::error::CloudError;
use cloud_provider::provider::{
    AssociationChange, BlobAuth, BlobLocation, CaptureSpec, CloudProvider, NsgRuleSpec,
    SubnetUpdate,
};
use common::*;

const SUB: &str = "00000000-0000-0000-0000-000000000000";

const NIC_LIST: &str = r#"[
  {"name": "src-nic", "id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/networkInterfaces/src-nic",
   "resourceGroup": "rg-lab", "location": "westeurope",
   "ipConfigurations": [{"name": "ipconfig1", "privateIPAddress": "10.0.1.4", "privateIPAllocationMethod": "Dynamic", "primary": true,
      "subnet": {"id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default", "resourceGroup": "rg-lab"}}],
   "virtualMachine": {"id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Compute/virtualMachines/src-vm", "resourceGroup": "rg-lab"},
   "enableAcceleratedNetworking": true, "enableIPForwarding": false, "macAddress": "00-0D-3A-00-00-01", "primary": true},
  {"name": "dst-nic", "id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/networkInterfaces/dst-nic",
   "ipConfigurations": [{"name": "ipconfig1", "privateIPAddress": "10.0.1.5"}],
   "networkSecurityGroup": {"id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/networkSecurityGroups/dst-nsg"},
   "virtualMachine": {"id": "/subscriptions/s/resourceGroups/rg-other/providers/Microsoft.Compute/virtualMachines/dst-vm"}}
]"#;

const VM: &str = r#"{"name": "dst-vm", "id": "/subscriptions/s/resourceGroups/rg-other/providers/Microsoft.Compute/virtualMachines/dst-vm",
  "location": "westeurope", "resourceGroup": "rg-other", "vmId": "1111", "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
  "networkProfile": {"networkInterfaces": [
     {"id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/networkInterfaces/dst-nic", "primary": true, "resourceGroup": "rg-lab"},
     {"id": "/subscriptions/s/resourceGroups/rg-lab/providers/Microsoft.Network/networkInterfaces/dst-nic2", "primary": false}]},
  "provisioningState": "Succeeded"}"#;

fn nic_json(name: &str) -> String {
    format!(
        r#"{{"name": "{name}", "ipConfigurations": [{{"name": "ipconfig1", "privateIPAddress": "10.0.1.5"}}]}}"#
    )
}

#[test]
fn every_call_has_az_path_subscription_and_json_output() {
    let h = harness(|_, a| {
        if is_cmd(a, "network nic show") {
            ok(&nic_json("dst-nic"))
        } else {
            fail(2, "unexpected")
        }
    });
    let nic = h.az.nic_show("rg-lab", "dst-nic").unwrap();
    assert_eq!(nic.name, "dst-nic");
    assert_eq!(nic.private_ips(), vec!["10.0.1.5"]);
    let argv = &h.argvs()[0];
    assert_eq!(argv[0], "az");
    assert_eq!(opt(argv, "--subscription"), Some(SUB));
    assert_eq!(&argv[argv.len() - 2..], &["--output", "json"]);
    assert_eq!(opt(argv, "--resource-group"), Some("rg-lab"));
    assert_eq!(opt(argv, "--name"), Some("dst-nic"));
    // The call was audited as a SAFE cloud read.
    let audit = std::fs::read_to_string(h.gate.audit().path()).unwrap();
    assert!(audit.contains("network nic show"), "{audit}");
    assert!(audit.contains("\"cloud_read\""), "{audit}");
}

#[test]
fn vm_by_private_ip_and_vm_nics() {
    let h = harness(|_, a| {
        if is_cmd(a, "network nic list") {
            ok(NIC_LIST)
        } else if is_cmd(a, "vm show") {
            ok(VM)
        } else if is_cmd(a, "network nic show") {
            ok(&nic_json(opt(a, "--name").unwrap()))
        } else {
            fail(2, "unexpected")
        }
    });
    let vm =
        h.az.vm_by_private_ip("rg-lab", Ipv4Addr::new(10, 0, 1, 5))
            .unwrap();
    assert_eq!(vm.name, "dst-vm");
    let show = h.argvs()[1].clone();
    // The VM's own resource group, read from the NIC's reference.
    assert_eq!(opt(&show, "--resource-group"), Some("rg-other"));
    assert_eq!(vm.primary_nic().unwrap().name(), "dst-nic");

    let err =
        h.az.vm_by_private_ip("rg-lab", Ipv4Addr::new(10, 0, 9, 9))
            .unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let nics = h.az.vm_nics("rg-other", "dst-vm").unwrap();
    assert_eq!(nics.len(), 2);
    let argvs = h.argvs();
    let nic_calls: Vec<_> = argvs
        .iter()
        .filter(|a| is_cmd(a, "network nic show"))
        .collect();
    assert_eq!(opt(nic_calls[0], "--resource-group"), Some("rg-lab"));
    // No resourceGroup field: read from the id.
    assert_eq!(opt(nic_calls[1], "--resource-group"), Some("rg-lab"));
    assert_eq!(opt(nic_calls[1], "--name"), Some("dst-nic2"));
}

#[test]
fn effective_views_parse_both_envelopes_and_refuse_garbage() {
    let routes = r#"{"value": [
        {"name": null, "source": "Default", "state": "Active", "addressPrefix": ["10.0.0.0/16"], "nextHopType": "VnetLocal", "nextHopIpAddress": []},
        {"name": "to-fw", "source": "User", "state": "Active", "addressPrefix": ["0.0.0.0/0"], "nextHopType": "VirtualAppliance", "nextHopIpAddress": ["10.0.2.4"]}
    ]}"#;
    let nsgs = r#"{"networkSecurityGroups": [{"association": {"subnet": {"id": "/x/subnets/default"}},
        "networkSecurityGroup": {"id": "/x/networkSecurityGroups/sub-nsg"}, "effectiveSecurityRules": []}]}"#;
    let mode = Arc::new(std::sync::Mutex::new(0));
    let m = mode.clone();
    let h = harness(move |_, a| {
        let m = *m.lock().unwrap();
        match (m, is_cmd(a, "network nic show-effective-route-table")) {
            (0, true) => ok(routes),
            (0, false) => ok(nsgs),
            (1, _) => ok(r#"{"value": []}"#),
            (2, _) => ok("WARNING: something\n{not json"),
            _ => ok(r#"{"unexpected": 1}"#),
        }
    });
    let r = h.az.effective_routes("rg", "nic").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].next_hop_ip_address, vec!["10.0.2.4"]);
    let n = h.az.effective_nsgs("rg", "nic").unwrap();
    assert_eq!(n[0].nsg_name(), Some("sub-nsg"));
    *mode.lock().unwrap() = 1;
    assert!(h.az.effective_routes("rg", "nic").unwrap().is_empty());
    *mode.lock().unwrap() = 2;
    let e = h.az.effective_routes("rg", "nic").unwrap_err();
    assert!(matches!(e, CloudError::Malformed { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 3);
    *mode.lock().unwrap() = 3;
    assert!(matches!(
        h.az.effective_nsgs("rg", "nic").unwrap_err(),
        CloudError::Malformed { .. }
    ));
}

#[test]
fn typed_errors_from_stderr() {
    let h = harness(|_, a| {
        match opt(a, "--name") {
        Some("missing") => fail(3, "ERROR: (ResourceNotFound) The Resource 'Microsoft.Network/networkSecurityGroups/missing' under resource group 'rg' was not found.\nCode: ResourceNotFound\n"),
        Some("noperm") => fail(1, "ERROR: (AuthorizationFailed) The client 'a@b' with object id 'x' does not have authorization to perform action 'Microsoft.Network/networkSecurityGroups/read' over scope '/subscriptions/s' or the scope is invalid.\nCode: AuthorizationFailed\n"),
        _ => fail(1, "ERROR: (InternalServerError) boom\n"),
    }
    });
    let e = h.az.nsg_show("rg", "missing").unwrap_err();
    assert!(e.is_not_found());
    match h.az.nsg_show("rg", "noperm").unwrap_err() {
        CloudError::AuthorizationFailed { action, .. } => {
            assert_eq!(
                action.as_deref(),
                Some("Microsoft.Network/networkSecurityGroups/read")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.az.nsg_show("rg", "other").unwrap_err(),
        CloudError::Failed {
            exit_code: Some(1),
            ..
        }
    ));
    // Values az would read as options never reach it.
    let before = h.argvs().len();
    let e = h.az.nsg_show("rg", "--debug").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(h.argvs().len(), before);
}

const THROTTLE: &str = "ERROR: (TooManyRequests) The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00.\nCode: TooManyRequests\nRetry-After: 7\n";

#[test]
fn throttling_retries_with_backoff_honouring_retry_after() {
    let n = Arc::new(std::sync::Mutex::new(0));
    let c = n.clone();
    let h = harness(move |_, _| {
        let mut k = c.lock().unwrap();
        *k += 1;
        if *k <= 2 {
            fail(1, THROTTLE)
        } else {
            ok(r#"[]"#)
        }
    });
    assert!(h.az.nsg_list("rg").unwrap().is_empty());
    let waits = h.sleeper.0.lock().unwrap().clone();
    assert_eq!(waits.len(), 2);
    // Never shorter than Retry-After (7 s); the second backoff step is 2-4 s, so 7 s wins.
    assert!(
        waits.iter().all(|w| *w >= Duration::from_secs(7)),
        "{waits:?}"
    );
    assert_eq!(h.argvs().len(), 3);
}

#[test]
fn throttling_is_bounded() {
    let h = harness(|_, _| {
        fail(
            1,
            "ERROR: Operation returned an invalid status 'Too Many Requests' (429)\n",
        )
    });
    match h.az.nsg_list("rg").unwrap_err() {
        CloudError::Throttled { attempts, .. } => assert_eq!(attempts, 4),
        other => panic!("{other:?}"),
    }
    let waits = h.sleeper.0.lock().unwrap().clone();
    assert_eq!(waits.len(), 3);
    // Exponential with equal jitter: attempt k waits in [2^k/2, 2^k] seconds.
    for (k, w) in waits.iter().enumerate() {
        let full = Duration::from_secs(2u64 << k);
        assert!(*w >= full / 2 && *w <= full, "attempt {k}: {w:?}");
    }
    // A Retry-After beyond the longest wait gives up at once.
    let h = harness(|_, _| fail(1, "ERROR: (TooManyRequests) slow down\nRetry-After: 3600\n"));
    match h.az.nsg_list("rg").unwrap_err() {
        CloudError::Throttled {
            attempts,
            retry_after,
            ..
        } => {
            assert_eq!(attempts, 1);
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("{other:?}"),
    }
    assert!(h.sleeper.0.lock().unwrap().is_empty());
}

#[test]
fn gate_refusal_is_denied_with_exit_5() {
    let h = harness_with(|_, _| ok("{}"), false);
    let rule = NsgRuleSpec {
        name: "block-8080".into(),
        priority: 150,
        direction: "Inbound".into(),
        access: "Deny".into(),
        protocol: "Tcp".into(),
        source_address_prefixes: vec!["*".into()],
        source_port_ranges: vec!["*".into()],
        destination_address_prefixes: vec!["*".into()],
        destination_port_ranges: vec!["8080".into()],
        description: None,
    };
    let e =
        h.az.nsg_rule_create("rg", "nsg", &rule, "reproduce the block")
            .unwrap_err();
    match &e {
        CloudError::Denied { reason, audit_id } => {
            assert!(reason.contains("policy:never"), "{reason}");
            assert!(!audit_id.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.exit_code(), 5);
    assert!(h.argvs().is_empty(), "a denied command must not run");
}

#[test]
fn missing_cli_is_cli_missing() {
    let dir = tempfile::tempdir().unwrap();
    let audit =
        safety_shell::audit::AuditLog::open_in_dir(dir.path(), "cptest_20261122T070001Z").unwrap();
    let gate = Arc::new(
        safety_shell::Gate::builder(audit)
            .approver(safety_shell::approve::AllRiskyApprover)
            .build(),
    );
    let az = AzureCli::new(gate, dir.path().join("no-such-az"));
    match az.nsg_list("rg").unwrap_err() {
        CloudError::CliMissing { az, .. } => assert!(az.ends_with("no-such-az")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn output_over_the_gate_cap_is_truncated_not_parsed() {
    let h = harness(|_, _| {
        let mut o = ok("[{\"name\": \"a\"");
        o.truncation.stdout = true;
        o.truncation.stdout_total_bytes = 5_000_000;
        o
    });
    assert!(matches!(
        h.az.nsg_list("rg").unwrap_err(),
        CloudError::OutputTruncated { .. }
    ));
}

#[test]
fn mutating_argv_shapes() {
    let h = harness(|_, a| {
        if is_cmd(a, "network nsg rule create") {
            ok(
                r#"{"name": "block-8080", "priority": 150, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
                  "destinationPortRange": "8080", "sourceAddressPrefix": "*"}"#,
            )
        } else if is_cmd(a, "network vnet subnet update") {
            ok(
                r#"{"name": "default", "addressPrefix": "10.0.1.0/24", "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope"]}]}"#,
            )
        } else if is_cmd(a, "network watcher packet-capture create") {
            ok(
                r#"{"name": "cap1", "target": "/x/virtualMachines/vm", "timeLimitInSeconds": 60, "bytesToCapturePerPacket": 0,
                  "storageLocation": {"storageId": "/x/storageAccounts/sa", "storagePath": "https://sa.blob.core.windows.net/network-watcher-logs/cap1.cap"},
                  "provisioningState": "Succeeded"}"#,
            )
        } else if is_cmd(a, "network watcher packet-capture show-status") {
            ok(
                r#"{"name": "cap1", "packetCaptureStatus": "Stopped", "stopReason": "TimeExceeded", "packetCaptureError": []}"#,
            )
        } else if is_cmd(a, "group show") {
            ok(
                r#"{"name": "rg", "location": "westeurope", "id": "/subscriptions/s/resourceGroups/rg"}"#,
            )
        } else {
            ok("")
        }
    });
    let rule = NsgRuleSpec {
        name: "block-8080".into(),
        priority: 150,
        direction: "Inbound".into(),
        access: "Deny".into(),
        protocol: "Tcp".into(),
        source_address_prefixes: vec!["10.0.1.4/32".into(), "10.0.1.6/32".into()],
        source_port_ranges: vec![],
        destination_address_prefixes: vec!["*".into()],
        destination_port_ranges: vec!["8080".into()],
        description: Some("scenario J".into()),
    };
    let r = h.az.nsg_rule_create("rg", "nsg", &rule, "test").unwrap();
    assert_eq!(r.priority, 150);
    h.az.nsg_rule_delete("rg", "nsg", "block-8080", "test")
        .unwrap();
    let s =
        h.az.subnet_update(
            "rg",
            "vnet",
            "default",
            &SubnetUpdate {
                network_security_group: Some(AssociationChange::Remove),
                route_table: Some(AssociationChange::Set("rt-fw".into())),
                service_endpoints: Some(vec!["Microsoft.Storage".into()]),
            },
            "test",
        )
        .unwrap();
    assert_eq!(s.service_endpoints.unwrap()[0].service, "Microsoft.Storage");
    let cap =
        h.az.capture_create(
            &CaptureSpec {
                name: "cap1".into(),
                resource_group: "rg".into(),
                vm: "vm".into(),
                storage_account: Some("sa".into()),
                file_path: None,
                time_limit_secs: Some(60),
                bytes_per_packet: Some(0),
                capture_size_bytes: None,
                filters_json: Some(r#"[{"protocol":"TCP","localPort":"8080"}]"#.into()),
            },
            "test",
        )
        .unwrap();
    assert_eq!(cap.time_limit_in_seconds, Some(60));
    let st = h.az.capture_status("westeurope", "cap1").unwrap();
    assert_eq!(st.packet_capture_status.as_deref(), Some("Stopped"));
    h.az.capture_stop("westeurope", "cap1", "test").unwrap();
    assert_eq!(h.az.resource_group_location("rg").unwrap(), "westeurope");

    let a = h.argvs();
    let create = &a[0];
    let i = create
        .iter()
        .position(|x| x == "--source-address-prefixes")
        .unwrap();
    assert_eq!(&create[i + 1..i + 3], &["10.0.1.4/32", "10.0.1.6/32"]);
    assert_eq!(opt(create, "--priority"), Some("150"));
    assert!(!create.contains(&"--source-port-ranges".to_string()));
    assert!(is_cmd(&a[1], "network nsg rule delete"));
    let upd = &a[2];
    assert_eq!(opt(upd, "--network-security-group"), Some(""));
    assert_eq!(opt(upd, "--route-table"), Some("rt-fw"));
    assert_eq!(opt(upd, "--service-endpoints"), Some("Microsoft.Storage"));
    let cap = &a[3];
    assert_eq!(opt(cap, "--resource-group"), Some("rg"));
    assert_eq!(opt(cap, "--vm"), Some("vm"));
    assert_eq!(opt(cap, "--capture-size"), Some("0"));
    assert_eq!(opt(a[4].as_slice(), "--location"), Some("westeurope"));
    assert!(is_cmd(&a[5], "network watcher packet-capture stop"));

    // Invalid values are refused before any command runs.
    let n = h.argvs().len();
    let mut bad = rule.clone();
    bad.priority = 50;
    assert_eq!(
        h.az.nsg_rule_create("rg", "nsg", &bad, "t")
            .unwrap_err()
            .exit_code(),
        2
    );
    assert!(h
        .az
        .subnet_update("rg", "vnet", "default", &SubnetUpdate::default(), "t")
        .is_err());
    assert_eq!(h.argvs().len(), n);
}

#[test]
fn blob_argv_uses_auth_mode_and_never_a_key() {
    let h = harness(|_, a| {
        if is_cmd(a, "storage blob list") {
            ok(
                r#"[{"name": "a.json", "properties": {"contentLength": 10, "lastModified": "2026-11-22T07:00:00+00:00"}}]"#,
            )
        } else {
            ok("")
        }
    });
    for auth in [BlobAuth::Login, BlobAuth::Key] {
        let at = BlobLocation {
            account: "stlab".into(),
            container: "artifacts".into(),
            auth,
        };
        let items = h.az.blob_list(&at, "fw_").unwrap();
        assert_eq!(items[0].properties.content_length, Some(10));
        h.az.blob_upload(&at, "a.json", std::path::Path::new("/tmp/a.json"), "t")
            .unwrap();
    }
    for a in h.argvs() {
        assert!(a.iter().any(|x| x == "--auth-mode"));
        assert!(!a
            .iter()
            .any(|x| x == "--account-key" || x == "--sas-token" || x == "--connection-string"));
    }
    assert_eq!(opt(&h.argvs()[0], "--auth-mode"), Some("login"));
    assert_eq!(opt(&h.argvs()[2], "--auth-mode"), Some("key"));
    assert_eq!(opt(&h.argvs()[0], "--num-results"), Some("*"));
}
