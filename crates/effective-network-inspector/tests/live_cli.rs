//! Live retrieval through the CLI: the real `AzureCli` and safety-shell gate run a fake `az`
//! (a shell script answering from Azure-shaped JSON files), so the VM, NIC and VNet scopes,
//! NIC addresses, live compare, live route/nsg/trace and malformed output are exercised end
//! to end without a cloud.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000000";

fn fx(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn nic_id(rg: &str, name: &str) -> String {
    format!("{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}")
}

fn vnet_id(rg: &str, name: &str) -> String {
    format!("{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}")
}

fn nic_json(rg: &str, name: &str, ip: &str, vnet: &str, vm: &str) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "id": nic_id(rg, name),
        "resourceGroup": rg,
        "ipConfigurations": [{
            "name": "ipconfig1",
            "privateIPAddress": ip,
            "subnet": {"id": format!("{vnet}/subnets/default")}
        }],
        "virtualMachine": {"id": format!("{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}")}
    })
}

/// A fake az world: web-vm (web-nic 10.0.1.4, rg-net) and db-vm (db-nic 10.0.2.5, rg-app),
/// both in vnet1 of rg-net; other-nic in rg-net sits in another VNet.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        let v1 = vnet_id("rg-net", "vnet1");
        let v2 = vnet_id("rg-net", "vnet2");
        let web = nic_json("rg-net", "web-nic", "10.0.1.4", &v1, "web-vm");
        let db = nic_json("rg-app", "db-nic", "10.0.2.5", &v1, "db-vm");
        let other = nic_json("rg-net", "other-nic", "10.9.0.4", &v2, "other-vm");
        let w = |name: &str, v: &serde_json::Value| {
            std::fs::write(d.join(name), serde_json::to_string_pretty(v).unwrap()).unwrap()
        };
        w("nic-web-nic.json", &web);
        w("nic-db-nic.json", &db);
        w("list-rg-net.json", &serde_json::json!([web, other]));
        w("list-rg-app.json", &serde_json::json!([db]));
        // `network nic list` without a resource group: the whole subscription.
        w("list-.json", &serde_json::json!([web, other, db]));
        for (vm, rg, nic) in [
            ("web-vm", "rg-net", "web-nic"),
            ("db-vm", "rg-app", "db-nic"),
        ] {
            w(
                &format!("vm-{vm}.json"),
                &serde_json::json!({
                    "name": vm,
                    "resourceGroup": rg,
                    "networkProfile": {"networkInterfaces": [{"id": nic_id(rg, nic)}]}
                }),
            );
        }
        let world = World { dir };
        world.set("routes-web-nic", &fx("web-routes.json"));
        world.set("nsg-web-nic", &fx("web-nsg.json"));
        world.set("routes-db-nic", &fx("db-routes.json"));
        world.set("nsg-db-nic", &fx("db-nsg.json"));
        let script = format!(
            r#"#!/bin/sh
D='{d}'
name=""; rg=""; prev=""
for a in "$@"; do
  [ "$prev" = "--name" ] && name="$a"
  [ "$prev" = "--resource-group" ] && rg="$a"
  prev="$a"
done
echo "$*" >> "$D/calls.log"
answer() {{ if [ -f "$1" ]; then cat "$1"; else echo "ERROR: (ResourceNotFound) The Resource '$name' under resource group '$rg' was not found." >&2; exit 3; fi; }}
case "$1 $2 $3" in
  "vm show --resource-group") answer "$D/vm-$name.json" ;;
  "network nic show") answer "$D/nic-$name.json" ;;
  "network nic list") answer "$D/list-$rg.json" ;;
  "network nic show-effective-route-table") answer "$(cat "$D/routes-$name" 2>/dev/null)" ;;
  "network nic list-effective-nsg") answer "$(cat "$D/nsg-$name" 2>/dev/null)" ;;
  *) echo "ERROR: unexpected az call: $*" >&2; exit 2 ;;
esac
"#,
            d = d.display()
        );
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("az"), script).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(bin.join("az"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        world
    }

    /// Points one NIC's routes or NSG answer at a file.
    fn set(&self, key: &str, file: &Path) {
        std::fs::write(self.dir.path().join(key), file.display().to_string()).unwrap();
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("audit")
    }

    fn eni(&self) -> Command {
        let mut c = Command::cargo_bin("effective-network-inspector").unwrap();
        c.env("AZ_PATH", self.dir.path().join("bin/az"))
            .env_remove("RESOURCE_GROUP")
            .env_remove("SUBSCRIPTION_ID")
            .env_remove("AUDIT_DIR")
            .arg("--audit-dir")
            .arg(self.audit())
            // The fake az is not in a system directory, so the gate rates every call RISKY.
            .arg("--approve")
            .arg("all-risky")
            .arg("--json");
        c
    }

    fn run(&self, args: &[&str], code: i32) -> serde_json::Value {
        let out = self.eni().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }
}

#[test]
fn live_scopes_compare_and_verdicts() {
    let w = World::new();
    // VM scope: the NIC's address comes from `nic show`.
    let v = w.run(
        &[
            "snapshot",
            "--scope",
            "vm",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--is-baseline",
            "--session-id",
            "eni_base",
        ],
        0,
    );
    assert_eq!(v["source"], "azure");
    let nics = v["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0]["name"], "web-nic");
    assert_eq!(nics[0]["ip_addresses"][0], "10.0.1.4");
    assert!(nics[0]["routes"].as_array().unwrap().len() > 3);
    assert_eq!(nics[0]["nsgs"].as_array().unwrap().len(), 2);
    assert!(w.audit().join("eni_base_snapshot.json").is_file());
    // Every az call went through the gate's audit log.
    assert!(w.audit().join("eni_base_audit.jsonl").is_file());
    assert!(w
        .calls()
        .contains("vm show --resource-group rg-net --name web-vm"));

    // Live compare, no change: an explicit negative result.
    let d = w.run(
        &[
            "compare",
            "--compare-baseline",
            "eni_base",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--session-id",
            "eni_now",
        ],
        0,
    );
    assert_eq!(d["drift_detected"], false);
    // A withdrawn route: drift, exit 1.
    w.set("routes-web-nic", &fx("web-routes-drift.json"));
    let d = w.run(
        &[
            "compare",
            "--compare-baseline",
            "eni_base",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--session-id",
            "eni_drift",
        ],
        1,
    );
    assert_eq!(d["drift_detected"], true);
    assert!(!d["nics"][0]["changes"].as_array().unwrap().is_empty());
    w.set("routes-web-nic", &fx("web-routes.json"));

    // VNet scope: NICs across resource groups, only those in the VNet's subnets.
    let v = w.run(
        &[
            "snapshot",
            "--vnet-id",
            &vnet_id("rg-net", "vnet1"),
            "--search-group",
            "rg-app",
            "--workers",
            "2",
            "--session-id",
            "eni_vnet",
        ],
        0,
    );
    let names: Vec<&str> = v["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-nic", "web-nic"]);
    assert_eq!(v["nics"][0]["ip_addresses"][0], "10.0.2.5");
    // Without naming the other group, the subscription-wide NIC list still finds db-nic.
    let v = w.run(&["snapshot", "--vnet-id", &vnet_id("rg-net", "vnet1")], 0);
    assert_eq!(v["nics"].as_array().unwrap().len(), 2);

    // NIC scope.
    let v = w.run(
        &[
            "snapshot",
            "--scope",
            "nic",
            "--nic-name",
            "db-nic",
            "-g",
            "rg-app",
        ],
        0,
    );
    assert_eq!(v["nics"][0]["name"], "db-nic");

    // Live verdicts.
    let v = w.run(
        &[
            "route",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--dst-ip",
            "10.0.2.5",
        ],
        0,
    );
    assert_eq!(v["result"], "WINNER");
    let v = w.run(
        &[
            "nsg",
            "--vm-name",
            "db-vm",
            "-g",
            "rg-app",
            "--direction",
            "inbound",
            "--src-ip",
            "10.0.1.4",
            "--dst-ip",
            "10.0.2.5",
            "--port",
            "3306",
        ],
        1,
    );
    assert_eq!(v["final_verdict"], "DENY");

    // Live trace across two VMs in two resource groups (the VNet scope finds db-nic).
    let v = w.run(
        &[
            "trace",
            "--from-vm",
            "web-vm",
            "-g",
            "rg-net",
            "--vnet-id",
            &vnet_id("rg-net", "vnet1"),
            "--search-group",
            "rg-app",
            "--to",
            "10.0.2.5",
            "--port",
            "5432",
            "--session-id",
            "eni_tr",
        ],
        0,
    );
    assert_eq!(v["result"], "REACHABLE");
    assert_eq!(v["destination_nic"], "db-nic");
    assert!(w.audit().join("eni_tr_snapshot.json").is_file());
}

#[test]
fn live_failures_are_errors_never_empty_tables() {
    let w = World::new();
    // Malformed az output: exit 3 naming the NIC, and no snapshot written.
    let bad = w.dir.path().join("bad.json");
    std::fs::write(&bad, "{\"value\": [{\"addressPrefix\": 5").unwrap();
    w.set("routes-web-nic", &bad);
    w.eni()
        .args([
            "snapshot",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--session-id",
            "eni_bad",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("web-nic"));
    assert!(!w.audit().join("eni_bad_snapshot.json").exists());
    // An empty object is not an empty route table.
    std::fs::write(&bad, "{}").unwrap();
    w.eni()
        .args([
            "route",
            "--vm-name",
            "web-vm",
            "-g",
            "rg-net",
            "--dst-ip",
            "10.0.0.9",
        ])
        .assert()
        .code(3);
    // A VM that does not exist: exit 3 with az's message.
    w.eni()
        .args(["snapshot", "--vm-name", "nope-vm", "-g", "rg-net"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("nope-vm"));
    // A VNet with no NIC in the searched groups.
    w.eni()
        .args(["snapshot", "--vnet-id", &vnet_id("rg-app", "vnet9")])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--search-group"));
    // An operator refusal is exit 5, not an empty result.
    Command::cargo_bin("effective-network-inspector")
        .unwrap()
        .env("AZ_PATH", w.dir.path().join("bin/az"))
        .args([
            "--audit-dir",
            w.audit().to_str().unwrap(),
            "--approve",
            "never",
        ])
        .args(["snapshot", "--vm-name", "web-vm", "-g", "rg-net"])
        .assert()
        .code(5)
        .stderr(predicate::str::contains("denied"));
    // Usage errors: no resource group, a bad VNet id, scope without its name.
    w.eni()
        .args(["snapshot", "--vm-name", "web-vm"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("resource group"));
    w.eni()
        .args(["snapshot", "--vnet-id", "/subscriptions/x/vnet1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a VNet resource id"));
    w.eni()
        .args(["snapshot", "--scope", "nic", "-g", "rg-net"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--nic-name"));
    w.eni()
        .args(["compare", "--compare-baseline", "eni_x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--current"));
}
