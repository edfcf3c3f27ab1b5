//! CLI tests: verdicts, audits, artifacts, live flags, snapshots, drift, integrity, traces.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn fx(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

fn eni(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("effective-network-inspector").unwrap();
    c.arg("--audit-dir").arg(dir);
    c
}

fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

fn artifacts(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect()
}

#[test]
fn help_shows_examples() {
    Command::cargo_bin("effective-network-inspector")
        .unwrap()
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Examples")
                .and(predicate::str::contains("trace --from-snapshot")),
        );
}

#[test]
fn route_verdicts_and_artifacts() {
    let d = tempfile::tempdir().unwrap();
    let out = eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "10.0.1.5",
            "--json",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["result"], "WINNER");
    assert_eq!(v["selection_reason"], "LPM_ONLY");
    assert_eq!(v["winning_route"]["next_hop_type"], "VnetLocal");
    assert_eq!(v["tool"], "effective-network-inspector");
    let arts = artifacts(d.path(), "rt_", "_verdict.json");
    assert_eq!(arts.len(), 1);
    assert!(PathBuf::from(format!("{}.sha256", arts[0].display())).exists());

    let out = eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "203.0.113.9",
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["anomalies"][0]["kind"], "BLACKHOLE");

    let out = eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "172.20.1.1",
            "--json",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["result"], "TIED_BGP");
    assert_eq!(v["tied_routes"].as_array().unwrap().len(), 2);

    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("db-routes.json"),
            "--dst-ip",
            "8.8.8.8",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("WINNER").and(predicate::str::contains("Internet")));

    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--audit",
            "--json",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("drop-bad-range"));
    eni(d.path())
        .args(["route", "--routes-file", &fx("db-routes.json"), "--audit"])
        .assert()
        .code(0);
}

#[test]
fn nsg_verdicts_and_audit() {
    let d = tempfile::tempdir().unwrap();
    let base = [
        "nsg",
        "--nsg-file",
        &fx("web-nsg.json"),
        "--direction",
        "inbound",
        "--src-ip",
        "203.0.113.5",
        "--dst-ip",
        "10.0.1.4",
        "--json",
    ];
    let out = eni(d.path())
        .args(base)
        .args(["--port", "443"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["final_verdict"], "ALLOW");
    assert_eq!(v["decisive_gate"], "nic");
    assert_eq!(v["gate1"]["gate"], "subnet");
    assert_eq!(v["gate1"]["evaluated"], true);
    let out = eni(d.path())
        .args(base)
        .args(["--port", "23"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["final_verdict"], "DENY");
    assert_eq!(v["decisive_gate"], "subnet");
    assert_eq!(v["decisive_rule"]["name"], "securityRules/deny-telnet");
    assert_eq!(v["gate2"]["evaluated"], false);
    assert!(v["gate2"]["skip_reason"]
        .as_str()
        .unwrap()
        .contains("denied"));
    assert_eq!(artifacts(d.path(), "nsg_", "_verdict.json").len(), 2);

    let out = eni(d.path())
        .args([
            "nsg",
            "--nsg-file",
            &fx("web-nsg.json"),
            "--audit",
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "PERMISSIVE_SENSITIVE_PORT"
            && f["rule"]["name"] == "securityRules/allow-ssh-any"));
    assert_eq!(artifacts(d.path(), "nsg_", "_audit.json").len(), 1);
}

#[test]
fn usage_runtime_and_live_flags() {
    let d = tempfile::tempdir().unwrap();
    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "10.0.0.1",
            "--vm-name",
            "web",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot be combined with --routes-file",
        ));
    eni(d.path())
        .args(["snapshot", "--scope", "vnet", "--nic", "a:b:c"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be combined with --nic"));
    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("malformed.json"),
            "--dst-ip",
            "10.0.0.1",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("malformed"));
    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "not-an-ip",
        ])
        .assert()
        .code(2);
    eni(d.path())
        .args([
            "route",
            "--routes-file",
            "/nonexistent/x.json",
            "--dst-ip",
            "10.0.0.1",
        ])
        .assert()
        .code(2);
    eni(d.path())
        .args(["nsg", "--nsg-file", &fx("web-nsg.json")])
        .assert()
        .code(2);
    eni(d.path())
        .args([
            "route",
            "--routes-file",
            &fx("web-routes.json"),
            "--dst-ip",
            "10.0.0.1",
            "--session-id",
            "../x",
        ])
        .assert()
        .code(2);
}

fn snapshot(
    dir: &Path,
    id: &str,
    web_routes: &str,
    db_nsg: &str,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    eni(dir)
        .args([
            "snapshot",
            "--nic",
            &format!("web-nic:{}:{}", fx(web_routes), fx("web-nsg.json")),
            "--nic",
            &format!("db-nic:{}:{}", fx("db-routes.json"), fx(db_nsg)),
            "--nic-ip",
            "web-nic=10.0.1.4",
            "--nic-ip",
            "db-nic=10.0.2.5",
            "--session-id",
            id,
            "--json",
        ])
        .args(extra)
        .assert()
}

#[test]
fn snapshot_compare_and_integrity() {
    let d = tempfile::tempdir().unwrap();
    snapshot(
        d.path(),
        "eni_base",
        "web-routes.json",
        "db-nsg.json",
        &["--is-baseline"],
    )
    .code(0);
    assert!(d.path().join("eni_base_snapshot.json").exists());
    assert!(d.path().join("eni_base_snapshot.json.sha256").exists());

    // Same state again: drift_detected is an explicit false.
    let out = snapshot(
        d.path(),
        "eni_same",
        "web-routes.json",
        "db-nsg.json",
        &["--compare-baseline", "eni_base"],
    )
    .code(0)
    .get_output()
    .stdout
    .clone();
    let v = json_of(&out);
    assert_eq!(v["drift_detected"], false);
    assert_eq!(v["baseline"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(v["current"]["sha256"].as_str().unwrap().len(), 64);
    assert!(d.path().join("eni_same_diff.json").exists());

    // Drift: a withdrawn BGP path, a changed UDR, an added deny rule.
    let out = snapshot(
        d.path(),
        "eni_drift",
        "web-routes-drift.json",
        "db-nsg-drift.json",
        &["--compare-baseline", "eni_base"],
    )
    .code(1)
    .get_output()
    .stdout
    .clone();
    let v = json_of(&out);
    assert_eq!(v["drift_detected"], true);
    assert_eq!(v["summary"]["bgp_route_change"], 1);
    assert_eq!(v["summary"]["udr_route_change"], 1);
    assert_eq!(v["summary"]["security_rule_change"], 1);
    let text = v.to_string();
    assert!(text.contains("deny-pg-emergency"));
    assert!(text.contains("10.0.255.5"));

    // compare subcommand, both directions, and refusal of self-comparison.
    eni(d.path())
        .args([
            "compare",
            "--compare-baseline",
            "eni_base",
            "--current",
            "eni_same",
        ])
        .assert()
        .code(0);
    eni(d.path())
        .args([
            "compare",
            "--baseline",
            "eni_base",
            "--current",
            "eni_drift",
        ])
        .assert()
        .code(1);
    eni(d.path())
        .args([
            "compare",
            "--compare-baseline",
            "eni_base",
            "--current",
            "eni_base",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("itself"));

    // Tampered baseline: exit 4 naming the file.
    let p = d.path().join("eni_base_snapshot.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("deny-telnet", "deny-telnex");
    std::fs::write(&p, text).unwrap();
    eni(d.path())
        .args([
            "compare",
            "--compare-baseline",
            "eni_base",
            "--current",
            "eni_same",
        ])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("eni_base_snapshot.json"));
    snapshot(
        d.path(),
        "eni_after",
        "web-routes.json",
        "db-nsg.json",
        &["--compare-baseline", "eni_base"],
    )
    .code(4)
    .stderr(predicate::str::contains("eni_base_snapshot.json"));
    assert!(
        !d.path().join("eni_after_snapshot.json").exists(),
        "nothing written after a failed verification"
    );
}

#[test]
fn traces() {
    let d = tempfile::tempdir().unwrap();
    snapshot(d.path(), "eni_t", "web-routes.json", "db-nsg.json", &[]).code(0);
    let t = |args: &[&str], code: i32| -> serde_json::Value {
        let out = eni(d.path())
            .args(["trace", "--from-snapshot", "eni_t", "--json"])
            .args(args)
            .assert()
            .code(code)
            .get_output()
            .stdout
            .clone();
        json_of(&out)
    };
    let v = t(
        &[
            "--from-nic",
            "web-nic",
            "--to",
            "10.0.2.5",
            "--port",
            "5432",
        ],
        0,
    );
    assert_eq!(v["result"], "REACHABLE");
    assert_eq!(v["destination_nic"], "db-nic");
    assert_eq!(v["hops"].as_array().unwrap().len(), 3);
    let v = t(
        &[
            "--from-nic",
            "web-nic",
            "--to",
            "10.0.2.5",
            "--port",
            "3306",
        ],
        1,
    );
    assert_eq!(v["result"], "BLOCKED");
    assert_eq!(v["blocking"]["code"], "NSG_DENY_NIC_INBOUND");
    let v = t(
        &[
            "--from-nic",
            "web-nic",
            "--to",
            "203.0.113.9",
            "--port",
            "443",
        ],
        1,
    );
    assert_eq!(v["blocking"]["code"], "ROUTE_BLACKHOLE");
    let v = t(
        &["--from-nic", "web-nic", "--to", "10.0.9.7", "--port", "443"],
        1,
    );
    assert_eq!(v["result"], "INDETERMINATE");
    assert_eq!(v["blocking"]["code"], "NVA_FORWARDING_UNKNOWN");
    let v = t(
        &[
            "--from-nic",
            "web-nic",
            "--to",
            "10.0.9.7",
            "--port",
            "443",
            "--live-address",
            "198.18.0.1",
        ],
        1,
    );
    assert_eq!(v["blocking"]["code"], "NVA_NOT_RESPONDING");
    let v = t(
        &["--from-nic", "db-nic", "--to", "52.1.1.1", "--port", "443"],
        1,
    );
    assert_eq!(v["result"], "INDETERMINATE");
    assert_eq!(v["blocking"]["code"], "NSG_RULE_UNRESOLVABLE");
    let v = t(
        &["--from-nic", "db-nic", "--to", "52.1.1.1", "--port", "80"],
        0,
    );
    assert_eq!(v["result"], "REACHABLE");
    assert!(v["notes"][0]
        .as_str()
        .unwrap()
        .contains("not an address of any NIC"));
    let v = t(
        &[
            "--from-nic",
            "web-nic",
            "--to",
            "10.200.0.1",
            "--port",
            "80",
        ],
        1,
    );
    assert_eq!(v["blocking"]["code"], "ROUTE_BLACKHOLE");
    eni(d.path())
        .args([
            "trace",
            "--from-snapshot",
            "eni_t",
            "--from-nic",
            "nope",
            "--to",
            "10.0.2.5",
            "--port",
            "1",
        ])
        .assert()
        .code(2);
    // Destination looked up in a second snapshot.
    eni(d.path())
        .args([
            "snapshot",
            "--nic",
            &format!("web-nic:{}:{}", fx("web-routes.json"), fx("web-nsg.json")),
            "--nic-ip",
            "web-nic=10.0.1.4",
            "--session-id",
            "eni_src",
        ])
        .assert()
        .code(0);
    eni(d.path())
        .args([
            "snapshot",
            "--nic-name",
            "db-nic",
            "--routes-file",
            &fx("db-routes.json"),
            "--nsg-file",
            &fx("db-nsg.json"),
            "--nic-ip",
            "db-nic=10.0.2.5",
            "--session-id",
            "eni_dst",
        ])
        .assert()
        .code(0);
    let out = eni(d.path())
        .args([
            "trace",
            "--from-snapshot",
            "eni_src",
            "--to-snapshot",
            "eni_dst",
            "--from-nic",
            "web-nic",
            "--to",
            "10.0.2.5",
            "--port",
            "3306",
            "--json",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v = json_of(&out);
    assert_eq!(v["destination_nic"], "db-nic");
    assert_eq!(v["blocking"]["code"], "NSG_DENY_NIC_INBOUND");
    // route and nsg verdicts from a snapshot.
    eni(d.path())
        .args([
            "route",
            "--from-snapshot",
            "eni_t",
            "--nic-name",
            "db-nic",
            "--dst-ip",
            "10.1.2.3",
            "--json",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("VNetPeering"));
}
