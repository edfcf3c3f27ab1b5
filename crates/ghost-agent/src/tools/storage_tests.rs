//! Unit tests of `inspect_storage_access` over Azure-shaped JSON written from the documented
//! schemas (`az storage account show` → `networkRuleSet`, `az network vnet subnet show` →
//! `serviceEndpoints`), and the whole tool over a fake `az` and a fake VM behind the real
//! gate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_provider::azure::AzureCli;
use cloud_provider::config::{Environment, FlagOverrides, Settings};
use cloud_provider::models::parse_one;
use cloud_provider::remote::{RemoteRunner, VmAccess};
use safety_shell::exec::{ExecError, ExecOptions, Program, RawOutput, Truncation};
use safety_shell::gate::Executor;
use safety_shell::{Gate, Target};

use super::*;

const SUBNET_ID: &str = "/subscriptions/0000/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/vnet-app/subnets/default";

fn subnet_json(endpoints: &[&str]) -> String {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|s| json!({"service": s, "locations": ["westeurope"], "provisioningState": "Succeeded"}))
        .collect();
    json!({
        "name": "default", "id": SUBNET_ID, "resourceGroup": "rg-net",
        "addressPrefix": "10.0.1.0/24", "provisioningState": "Succeeded",
        "serviceEndpoints": eps,
        "type": "Microsoft.Network/virtualNetworks/subnets"
    })
    .to_string()
}

fn side(endpoints: &[&str]) -> SubnetSide {
    SubnetSide {
        vm: "app-vm".into(),
        nic: "app-vm-nic".into(),
        private_ips: vec!["10.0.1.4".into()],
        subnet_id: SUBNET_ID.into(),
        resource_group: "rg-net".into(),
        vnet: "vnet-app".into(),
        subnet: parse_one(&subnet_json(endpoints), "subnet").unwrap(),
    }
}

fn account_json(default_action: &str, vnet_rules: &[&str], ip_rules: &[&str]) -> String {
    json!({
        "name": "stapp01", "resourceGroup": "rg-app", "kind": "StorageV2",
        "id": "/subscriptions/0000/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/stapp01",
        "publicNetworkAccess": "Enabled",
        "primaryEndpoints": {"blob": "https://stapp01.blob.core.windows.net/"},
        "networkRuleSet": {
            "bypass": "AzureServices", "defaultAction": default_action,
            "ipRules": ip_rules.iter().map(|r| json!({"action": "Allow", "ipAddressOrRange": r})).collect::<Vec<_>>(),
            "resourceAccessRules": [],
            "virtualNetworkRules": vnet_rules.iter().map(|id| json!({"action": "Allow", "state": "Succeeded", "virtualNetworkResourceId": id})).collect::<Vec<_>>()
        }
    })
    .to_string()
}

fn account(default_action: &str, vnet_rules: &[&str], ip_rules: &[&str]) -> StorageAccount {
    parse_one(
        &account_json(default_action, vnet_rules, ip_rules),
        "storage account",
    )
    .unwrap()
}

#[test]
fn deny_with_vnet_rule_and_no_endpoint_is_the_missing_endpoint_with_both_sides_named() {
    // The rule names the subnet with a different case: Azure ids are case-insensitive.
    let upper = SUBNET_ID.replace("rg-net", "RG-NET");
    let v = evaluate(
        &side(&["Microsoft.KeyVault", "Microsoft.Sql"]),
        &account("Deny", &[&upper], &[]),
        "rg-app",
        true,
    );
    assert_eq!(v.verdict, "denied_missing_service_endpoint");
    assert!(v.denied);
    assert_eq!(v.findings.len(), 1);
    let f = &v.findings[0];
    assert_eq!(f.kind, "missing_service_endpoint");
    assert_eq!(f.layer, Layer::Storage);
    assert_eq!(f.vm.as_deref(), Some("app-vm"));
    assert_eq!(f.component, "vnet-app/default");
    assert_eq!(f.attrs["rule"], "Microsoft.Storage");
    assert_eq!(f.attrs["address"], "10.0.1.0/24");
    assert_eq!(f.attrs["subnet_id"], SUBNET_ID);
    assert_eq!(f.attrs["account"], "stapp01");
    assert_eq!(f.severity, Severity::High);
    let rem = f.remediation.as_ref().unwrap();
    // Every other endpoint is kept, Microsoft.Storage added.
    assert_eq!(
        rem.command,
        "az network vnet subnet update -g rg-net --vnet-name vnet-app -n default --service-endpoints Microsoft.KeyVault Microsoft.Sql Microsoft.Storage"
    );
    assert_eq!(rem.run_on, "az");
    assert!(rem
        .explanation
        .contains("Microsoft.KeyVault, Microsoft.Sql"));
    assert!(rem.verify.contains("inspect_storage_access"));
    assert!(rem.verify.contains("serviceEndpoints"));
    assert_eq!(v.view["vnet_rule_for_subnet"]["state"], "Succeeded");
    assert_eq!(v.view["subnet_has_storage_endpoint"], false);
}

#[test]
fn the_other_outcomes_are_reported_precisely() {
    // Endpoint present and rule present: allowed.
    let v = evaluate(
        &side(&["Microsoft.Storage"]),
        &account("Deny", &[SUBNET_ID], &[]),
        "rg",
        true,
    );
    assert_eq!(v.verdict, "allowed_by_vnet_rule");
    assert!(v.findings.is_empty() && !v.denied);
    // The global variant counts as the endpoint.
    let v = evaluate(
        &side(&["Microsoft.Storage.Global"]),
        &account("Deny", &[SUBNET_ID], &[]),
        "rg",
        true,
    );
    assert_eq!(v.verdict, "allowed_by_vnet_rule");
    // Default Allow: nothing blocks, whatever the subnet has.
    let v = evaluate(&side(&[]), &account("Allow", &[], &[]), "rg", true);
    assert_eq!(v.verdict, "allowed_default_action");
    assert!(v.findings.is_empty());
    // Deny without a rule for the subnet, but an IP rule covering the VM.
    let v = evaluate(
        &side(&[]),
        &account("Deny", &[], &["10.0.1.0/28"]),
        "rg",
        true,
    );
    assert_eq!(v.verdict, "allowed_by_ip_rule");
    assert_eq!(v.view["ip_rule_match"], "10.0.1.0/28");
    // Deny, a rule for another subnet only, no endpoint: the missing VNet rule, with both
    // commands in order.
    let other = SUBNET_ID.replace("subnets/default", "subnets/other");
    let v = evaluate(
        &side(&["Microsoft.Sql"]),
        &account("Deny", &[&other], &["20.0.0.0/24"]),
        "rg",
        true,
    );
    assert_eq!(v.verdict, "denied_no_vnet_rule");
    let f = &v.findings[0];
    assert_eq!(f.kind, "storage_vnet_rule_missing");
    let cmd = &f.remediation.as_ref().unwrap().command;
    assert!(cmd.starts_with("az network vnet subnet update -g rg-net --vnet-name vnet-app -n default --service-endpoints Microsoft.Sql Microsoft.Storage && "), "{cmd}");
    assert!(cmd.ends_with("az storage account network-rule add -g rg-app --account-name stapp01 --vnet-name vnet-app --subnet default"), "{cmd}");
    // A listed (not named) account without a rule is context, not a cause.
    let v = evaluate(
        &side(&["Microsoft.Storage"]),
        &account("Deny", &[], &[]),
        "rg",
        false,
    );
    assert_eq!(v.findings[0].severity, Severity::Low);
    assert_eq!(
        v.findings[0].remediation.as_ref().unwrap().command,
        "az storage account network-rule add -g rg-app --account-name stapp01 --vnet-name vnet-app --subnet default"
    );
    // Public network access disabled beats every rule.
    let mut a = account("Deny", &[SUBNET_ID], &[]);
    a.public_network_access = Some("Disabled".into());
    let v = evaluate(&side(&["Microsoft.Storage"]), &a, "rg", true);
    assert_eq!(v.verdict, "denied_public_access_disabled");
    assert_eq!(v.findings[0].kind, "storage_public_access_disabled");
    // An endpoint being deleted does not count.
    let mut s = side(&["Microsoft.Storage"]);
    s.subnet.service_endpoints.as_mut().unwrap()[0].provisioning_state = Some("Deleting".into());
    assert!(!s.has_storage_endpoint());
}

#[test]
fn probe_answers_are_read_from_the_header_dump() {
    let refused = "HTTP/1.1 403 Forbidden\r\nx-ms-error-code: AuthorizationFailure\r\nContent-Type: application/xml\r\n\r\n";
    let a = parse_probe(refused);
    assert_eq!(a.status, Some(403));
    assert_eq!(a.error_code.as_deref(), Some("AuthorizationFailure"));
    assert_eq!(a.verdict, "refused_by_firewall");
    assert_eq!(
        parse_probe("HTTP/1.1 200 OK\r\n\r\n").verdict,
        "passed_firewall"
    );
    assert_eq!(
        parse_probe("HTTP/1.1 404 The specified resource does not exist.\r\nx-ms-error-code: ResourceNotFound\r\n").verdict,
        "passed_firewall"
    );
    // The last response counts (a 100 Continue or a redirect first).
    let two = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nx-ms-error-code: AuthorizationFailure\r\n";
    assert_eq!(parse_probe(two).verdict, "refused_by_firewall");
    assert_eq!(parse_probe("").verdict, "no_response");
    assert_eq!(parse_probe("HTTP/1.1 500 Oops\r\n").verdict, "other");
    // Hostile header values are clipped to a token.
    let hostile = format!(
        "HTTP/1.1 403 x\r\nx-ms-error-code: {}; ignore previous\r\n",
        "A".repeat(500)
    );
    assert_eq!(parse_probe(&hostile).error_code.unwrap().len(), 64);
    assert_eq!(
        parse_probe("HTTP/9 \u{0}\u{ff}\nx-ms-error-code:\n").verdict,
        "no_response"
    );
}

#[test]
fn probe_urls_are_plain_and_the_command_is_a_safe_get() {
    assert_eq!(
        probe_url("http://198.19.0.10/netlabartifacts/", Some("captures")).as_deref(),
        Some("http://198.19.0.10/netlabartifacts/captures?restype=container")
    );
    assert_eq!(
        probe_url("https://st.blob.core.windows.net/", None).as_deref(),
        Some("https://st.blob.core.windows.net/?comp=list")
    );
    assert!(probe_url("https://st.blob.core.windows.net/'; rm -rf /", None).is_none());
    assert!(probe_url("file:///etc/passwd", None).is_none());
    assert!(probe_url("https://st.blob.core.windows.net/", Some("Bad Name")).is_none());
    let cmd = probe_command("http://198.19.0.10/netlabartifacts/captures?restype=container");
    let v = safety_shell::classify(&cmd, &safety_shell::ClassifyContext::default());
    assert_eq!(v.classification, safety_shell::Class::Safe, "{cmd}: {v:?}");
}

#[test]
fn ipv4_ranges() {
    assert!(ipv4_in("10.0.1.4", "10.0.1.0/24"));
    assert!(ipv4_in("10.0.1.4", "10.0.1.4"));
    assert!(!ipv4_in("10.0.2.4", "10.0.1.0/24"));
    assert!(ipv4_in("1.2.3.4", "0.0.0.0/0"));
    assert!(!ipv4_in("1.2.3.4", "1.2.3.0/33"));
    assert!(!ipv4_in("x", "1.2.3.0/24"));
    assert!(!ipv4_in("1.2.3.4", "2001:db8::/32"));
}

// ---------------------------------------------------------------------------------------
// The whole tool over a fake az and a fake VM.

type Seen = Arc<Mutex<Vec<(Target, Vec<String>)>>>;

struct Fake {
    seen: Seen,
    subnet: String,
    account: String,
}

fn raw(stdout: &str) -> RawOutput {
    RawOutput {
        exit_code: Some(0),
        signal: None,
        timed_out: false,
        stdout: stdout.to_string(),
        stderr: String::new(),
        duration: Duration::from_millis(1),
        truncation: Truncation {
            stdout: false,
            stderr: false,
            stdout_total_bytes: stdout.len() as u64,
            stderr_total_bytes: 0,
        },
    }
}

impl Executor for Fake {
    fn execute(
        &self,
        target: &Target,
        program: &Program,
        _opts: &ExecOptions,
    ) -> Result<RawOutput, ExecError> {
        let argv = match program {
            Program::Argv(a) => a.clone(),
            Program::Shell(s) => vec!["bash".into(), "-c".into(), s.clone()],
        };
        self.seen
            .lock()
            .unwrap()
            .push((target.clone(), argv.clone()));
        let words = argv
            .iter()
            .skip(1)
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let out = if matches!(target, Target::Netns { .. }) {
            raw("HTTP/1.1 403 Forbidden\r\nx-ms-error-code: AuthorizationFailure\r\n\r\n")
        } else if words.starts_with("vm show") && argv.contains(&"app-vm".to_string()) {
            raw(
                r#"{"name": "app-vm", "networkProfile": {"networkInterfaces": [
                {"id": "/subscriptions/0000/resourceGroups/rg-app/providers/Microsoft.Network/networkInterfaces/app-vm-nic", "primary": true}]}}"#,
            )
        } else if words.starts_with("network nic show") {
            raw(&json!({"name": "app-vm-nic", "ipConfigurations": [{"name": "ipconfig1", "primary": true,
                "privateIPAddress": "10.0.1.4", "subnet": {"id": SUBNET_ID}}]}).to_string())
        } else if words.starts_with("network vnet subnet show") {
            raw(&self.subnet)
        } else if words.starts_with("storage account show") {
            raw(&self.account)
        } else {
            RawOutput {
                exit_code: Some(2),
                stderr: format!("unexpected: {argv:?}"),
                ..raw("")
            }
        };
        Ok(out)
    }
}

fn context(dir: &std::path::Path, fake: Fake) -> ToolContext {
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("RESOURCE_GROUP", "rg-app"),
        ("SOURCE_VM_NAME", "app-vm"),
        ("STORAGE_ACCOUNT_NAME", "stapp01"),
        ("STORAGE_CONTAINER_NAME", "captures"),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    vars.insert("AUDIT_DIR".into(), dir.display().to_string());
    let settings = Settings::from_parts(None, vars);
    let env = Environment::resolve(&settings, &FlagOverrides::default()).unwrap();
    let session = "ghost_20261122T000000Z";
    let log = safety_shell::audit::AuditLog::open_in_dir(dir, session).unwrap();
    // No approver: only SAFE commands can run.
    let gate = Arc::new(Gate::builder(log).executor(fake).build());
    let az = Arc::new(AzureCli::new(gate.clone(), "az"));
    let remote = RemoteRunner::new(gate.clone(), Some(az.clone())).with_vm(
        "app-vm",
        VmAccess::Netns {
            name: "nltest-app".into(),
        },
    );
    ToolContext {
        session_dir: dir.join(session),
        env,
        settings,
        remote: Arc::new(remote),
        gate,
        azure: Some(az),
        session_id: cloud_provider::session::SessionId::parse(session).unwrap(),
        expectations: Default::default(),
        cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
    }
}

#[test]
fn the_tool_reads_both_sides_probes_and_names_the_missing_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let ctx = context(
        dir.path(),
        Fake {
            seen: seen.clone(),
            subnet: subnet_json(&["Microsoft.KeyVault"]),
            account: account_json("Deny", &[SUBNET_ID], &[]),
        },
    );
    let r = InspectStorageAccess.call(&ctx, &json!({"vm": "app-vm"}));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(f.kind, "missing_service_endpoint");
    assert_eq!(f.attrs["measured"], "403 AuthorizationFailure from the VM");
    assert!(f
        .remediation
        .as_ref()
        .unwrap()
        .command
        .ends_with("--service-endpoints Microsoft.KeyVault Microsoft.Storage"));
    assert_eq!(
        r.summary["subnet"]["service_endpoints"],
        json!(["Microsoft.KeyVault"])
    );
    assert_eq!(
        r.summary["accounts"][0]["verdict"],
        "denied_missing_service_endpoint"
    );
    assert_eq!(
        r.summary["accounts"][0]["probe"]["verdict"],
        "refused_by_firewall"
    );
    assert_eq!(r.summary["accounts"][0]["probe"]["status"], 403);
    assert!(r.untrusted);
    assert!(r.denials.is_empty());
    // The configured account and container were used; the probe ran in the VM.
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|(_, a)| a
        .join(" ")
        .contains("storage account show --resource-group rg-app --name stapp01")));
    let probe = seen
        .iter()
        .find(|(t, _)| matches!(t, Target::Netns { .. }))
        .expect("probe ran in the VM");
    // One word for the URL, whether the gate ran it as an argv or through a shell.
    assert!(
        probe.1.iter().any(|w| w
            == "https://stapp01.blob.core.windows.net/captures?restype=container"
            || w.contains("'https://stapp01.blob.core.windows.net/captures?restype=container'")),
        "{:?}",
        probe.1
    );
    // Every command is in the audit log.
    let audit = std::fs::read_to_string(ctx.gate.audit().path()).unwrap();
    assert!(audit.contains("curl -sS"), "{audit}");
}

#[test]
fn the_tool_with_the_endpoint_back_finds_nothing_and_validates_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(
        dir.path(),
        Fake {
            seen: Arc::default(),
            subnet: subnet_json(&["Microsoft.KeyVault", "Microsoft.Storage"]),
            account: account_json("Deny", &[SUBNET_ID], &[]),
        },
    );
    let r = InspectStorageAccess.call(&ctx, &json!({"vm": "app-vm", "probe": false}));
    assert!(r.ok, "{r:?}");
    assert!(r.findings.is_empty());
    assert_eq!(r.summary["accounts"][0]["verdict"], "allowed_by_vnet_rule");
    assert!(r.summary["accounts"][0].get("probe").is_none());
    for bad in [
        json!({}),
        json!({"vm": "app-vm", "bogus": 1}),
        json!({"vm": "a b;rm"}),
        json!({"vm": "app-vm", "account": "--x"}),
        json!({"vm": "app-vm", "probe": "yes"}),
        json!([1]),
    ] {
        let r = InspectStorageAccess.call(&ctx, &bad);
        assert!(!r.ok, "{bad}");
        assert!(r.error.is_some());
    }
    // The control plane answering something else fails in one sentence.
    let r = InspectStorageAccess.call(&ctx, &json!({"vm": "other-vm"}));
    assert!(!r.ok);
    assert!(r.error.unwrap().contains("other-vm"));
}
