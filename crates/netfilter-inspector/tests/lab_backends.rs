//! Lab test of live retrieval (`--provider netns`) on one namespace this test creates
//! (`nfb<pid>`, torn down by a `Drop` guard):
//! - tc: an htb root with a class and a u32 filter attached below the class (`parent 1:1`):
//!   the snapshot lists it with its parent, and removing it is filter drift;
//! - coexisting back ends: a DROP for port 5001 added with `iptables-legacy`, one for 5002
//!   with `iptables-nft`, one for 5003 in a native nft table: the snapshot holds all three
//!   with their back end, the iptables-nft table once, and `check` names the deciding rule
//!   of each port.
//!
//! Needs root, `ip`, `tc`, `nft`, `iptables-legacy` and `iptables-nft`; without them it
//! prints one line saying why and returns.

use std::process::Command;

use serde_json::Value;

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(ns: &str, script: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sh", "-ec", script])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["ip", "tc", "nft", "iptables-legacy", "iptables-nft"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

fn cli(args: &[&str]) -> (i32, Value, String) {
    let out = assert_cmd::Command::cargo_bin("netfilter-inspector")
        .unwrap()
        .env_remove("AUDIT_DIR")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}); stderr: {stderr}"));
    (out.status.code().unwrap_or(-1), v, stderr)
}

#[test]
fn class_filters_and_coexisting_back_ends_live() {
    if let Some(why) = missing_prerequisite() {
        eprintln!(
            "SKIP lab_backends: {why}; run as root after scripts/setup.sh (iproute2, iptables, nftables)"
        );
        return;
    }
    let ns = Ns(format!("nfb{}", std::process::id()));
    let n = ns.0.as_str();
    let out = Command::new("ip")
        .args(["netns", "add", n])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (a, b) = (format!("{n}a"), format!("{n}b"));
    sh(
        n,
        &format!(
            "ip link add {a} type veth peer name {b}; ip link set {a} up; ip link set {b} up
             tc qdisc add dev {a} root handle 1: htb default 10
             tc class add dev {a} parent 1: classid 1:1 htb rate 10mbit
             tc class add dev {a} parent 1:1 classid 1:10 htb rate 5mbit
             tc filter add dev {a} parent 1:1 protocol ip prio 1 u32 match ip dport 22 0xffff flowid 1:10
             iptables-legacy -A INPUT -p tcp -m tcp --dport 5001 -j DROP
             iptables-nft -A INPUT -p tcp -m tcp --dport 5002 -j DROP
             nft add table inet nfbnative
             nft add chain inet nfbnative input '{{ type filter hook input priority 10; policy accept; }}'
             nft add rule inet nfbnative input tcp dport 5003 drop"
        ),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().to_str().unwrap();
    let live = ["--provider", "netns", "--netns", n, "--audit-dir", audit];

    let mut args = vec![
        "snapshot",
        "--session-id",
        "fw_nfb_base",
        "--is-baseline",
        "--json",
    ];
    args.extend(live);
    let (code, snap, stderr) = cli(&args);
    assert_eq!(code, 0, "{stderr}");
    let body = &snap;
    // The filter below the class, with its parent and device.
    let filters = body["ruleset"]["filters"].as_array().unwrap();
    let below: Vec<&Value> = filters
        .iter()
        .filter(|f| f["parent"] == "1:1" && f["dev"] == a.as_str())
        .collect();
    assert_eq!(below.len(), 1, "{filters:#?}\n{stderr}");
    assert_eq!(below[0]["flowid"], "1:10");
    assert_eq!(below[0]["exempts_ssh"], true);
    // Three tables, each with its back end; the iptables-nft table once.
    let tables: Vec<String> = body["ruleset"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {}{}",
                t["family"].as_str().unwrap(),
                t["name"].as_str().unwrap(),
                t["backend"].as_str().unwrap(),
                t["variant"]
                    .as_str()
                    .map(|v| format!("-{v}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    for want in [
        "ip filter iptables-legacy",
        "ip filter iptables-nft",
        "inet nfbnative nftables",
    ] {
        assert_eq!(
            tables.iter().filter(|t| *t == want).count(),
            1,
            "{want} in {tables:?}\n{stderr}"
        );
    }
    assert!(
        !tables.iter().any(|t| t == "ip filter nftables"),
        "double counted: {tables:?}"
    );
    let fw: Vec<&str> = body["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["iptables-legacy", "iptables-nft", "nftables"] {
        assert!(fw.contains(&want), "{fw:?}");
    }
    let blocking = body["blocking_rules"].as_array().unwrap();
    for (port, variant) in [(5001, "legacy"), (5002, "nft")] {
        assert!(
            blocking.iter().any(|b| b["variant"] == variant
                && b["matches"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("--dport {port} "))),
            "{blocking:#?}"
        );
    }

    // check names the deciding rule for each port, read live.
    for (port, backend, variant) in [
        ("5001", "iptables", Some("legacy")),
        ("5002", "iptables", Some("nft")),
        ("5003", "nftables", None),
    ] {
        let mut args = vec![
            "check",
            "--port",
            port,
            "--proto",
            "tcp",
            "--direction",
            "in",
            "--json",
        ];
        args.extend(live);
        let (code, ans, stderr) = cli(&args);
        assert_eq!(code, 1, "{ans:#}\n{stderr}");
        assert_eq!(ans["verdict"], "DROP", "{ans:#}");
        let d = &ans["deciding_rule"];
        assert_eq!(d["backend"], backend, "{ans:#}");
        assert_eq!(d["variant"].as_str(), variant, "{ans:#}");
        assert_eq!(d["position"], 1);
        assert!(d["rule"].as_str().unwrap().contains(port), "{ans:#}");
    }

    // Removing the filter below the class is drift naming it; the rest is unchanged.
    sh(n, &format!("tc filter del dev {a} parent 1:1 prio 1")).unwrap();
    let mut args = vec!["compare", "--compare-baseline", "fw_nfb_base", "--json"];
    args.extend(live);
    let (code, report, stderr) = cli(&args);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let changes = report["families"]["tc"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{report:#}");
    assert_eq!(changes[0]["change"], "filter_removed");
    assert!(
        changes[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("parent 1:1 protocol ip pref 1 u32 flowid 1:10"),
        "{report:#}"
    );
    assert_eq!(
        report["families"].as_object().unwrap().len(),
        1,
        "{report:#}"
    );
}
