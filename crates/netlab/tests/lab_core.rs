//! Lab tests (root): up/down hygiene, NSGs, routes, captures, two labs at once.

mod common;

use common::{Conn, TestLab};

const DEST: &str = "198.18.1.5";

fn http_8080() -> String {
    common::base_with(
        "[[topology.vms]]\nname = \"dest-vm\"\nservices = [{ kind = \"iperf2\", port = 5001 }, { kind = \"qperf\", port = 19765 }, { kind = \"http\", port = 8080 }]\n",
    )
}

#[test]
fn up_down_leaves_nothing_behind() {
    require_lab!();
    let t0 = std::time::Instant::now();
    let lab = TestLab::up_text(&http_8080());
    eprintln!("up took {:?}", t0.elapsed());
    let prefix = lab.prefix();
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.run_dir().join("state.json")).unwrap())
            .unwrap();
    let procs: Vec<(i64, u64, String)> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_i64().unwrap(),
                p["start_time"].as_u64().unwrap(),
                p["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // sshd x2, iperf2, qperf, http, blobd.
    assert_eq!(procs.len(), 6, "{procs:?}");
    assert!(procs.iter().all(|(p, s, _)| common::alive(*p, *s)));
    let mut ns = common::namespaces_with(&prefix);
    ns.sort();
    assert_eq!(
        ns,
        [
            format!("{prefix}dest-vm"),
            format!("{prefix}fab"),
            format!("{prefix}source-vm"),
            format!("{prefix}sto")
        ]
    );
    assert_eq!(common::links_with(&prefix), [format!("{prefix}op")]);
    // The services really run: HTTP answers from source-vm.
    let body = lab.exec_ok(
        "source-vm",
        &["curl", "-s", "-m", "3", "http://198.18.1.5:8080/hello"],
    );
    assert!(body.contains("GET /hello"), "{body}");

    // config.env for the tools, with every documented key.
    let env = lab.ok(&["env", "--config"]);
    for key in [
        "RESOURCE_GROUP=rg-netlab",
        "SUBSCRIPTION_ID=",
        "LOCATION=",
        "SOURCE_VM_NAME=source-vm",
        "DEST_VM_NAME=dest-vm",
        "SOURCE_VM_PRIVATE_IP=198.18.1.4",
        "DEST_VM_PRIVATE_IP=198.18.1.5",
        "SOURCE_VM_PUBLIC_IP=198.19.",
        "DEST_VM_PUBLIC_IP=198.19.",
        "SSH_USER=root",
        "SSH_SOURCE_VM_KEY_PATH=",
        "SSH_DEST_VM_KEY_PATH=",
        "SSH_KNOWN_HOSTS=",
        "STORAGE_ACCOUNT_NAME=netlabartifacts",
        "STORAGE_CONTAINER_NAME=captures",
        "SOURCE_NSG_NAME=source-vm-nsg",
        "DEST_NSG_NAME=dest-vm-nsg",
        "AUDIT_DIR=",
    ] {
        assert!(
            env.lines().any(|l| l.starts_with(key)),
            "config.env lacks {key}:\n{env}"
        );
    }
    assert!(lab.run_dir().join("config.env").is_file());
    // Plain ssh with the published settings works (strict host key checking, per-run key).
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let out = std::process::Command::new("ssh")
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", get("SSH_KNOWN_HOSTS")))
        .arg("-i")
        .arg(get("SSH_DEST_VM_KEY_PATH"))
        .arg(format!("root@{}", get("DEST_VM_PUBLIC_IP")))
        .arg("hostname -I")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("198.18.1.5"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let t1 = std::time::Instant::now();
    let out = lab.down();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("down took {:?}", t1.elapsed());
    assert!(common::namespaces_with(&prefix).is_empty());
    assert!(common::links_with(&prefix).is_empty());
    for (pid, start, role) in &procs {
        assert!(
            !common::alive(*pid, *start),
            "{role} (pid {pid}) still runs"
        );
    }
    assert!(!lab.run_dir().exists());
    // Root routes for this lab's public IPs are gone with the link.
    let routes = std::process::Command::new("ip")
        .args(["-4", "route"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&routes.stdout).contains(&prefix));
}

#[test]
fn a_panicking_test_still_tears_down() {
    require_lab!();
    let mut prefix = String::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = TestLab::up_text(&common::base_with(""));
        prefix = lab.prefix();
        panic!("simulated test failure");
    }));
    assert!(r.is_err());
    assert!(!prefix.is_empty());
    assert!(
        common::namespaces_with(&prefix).is_empty(),
        "the Drop guard ran down"
    );
    assert!(common::links_with(&prefix).is_empty());
}

#[test]
fn nsg_deny_allow_priority_and_gate_order() {
    require_lab!();
    let lab = TestLab::up_text(&(http_8080()
        + "[[topology.nsgs]]\nname = \"subnet-nsg\"\nrules = [{ name = \"allow-ssh\", priority = 300, direction = \"Inbound\", access = \"Allow\", protocol = \"Tcp\", source_address_prefix = \"*\", source_port_range = \"*\", destination_address_prefix = \"*\", destination_port_range = \"22\" }]\n"));
    // Default rules: VNet traffic to 8080 passes (AllowVnetInBound).
    assert_eq!(lab.connect("source-vm", DEST, 8080, 3), Conn::Connected);
    // Deny 8080 at priority 150: the connection times out (dropped, not refused).
    lab.ok(&["inject", "dest-vm:listen=8081"]);
    let deny = write_fault(
        &lab,
        "deny",
        "dest-vm-nsg",
        "deny-8080",
        150,
        "Deny",
        "8080",
        "Inbound",
    );
    lab.ok(&["inject", &deny]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 2), Conn::TimedOut);
    assert_eq!(
        lab.connect("source-vm", DEST, 8081, 3),
        Conn::Connected,
        "other ports unaffected"
    );
    // An Allow at a lower number (higher precedence) wins; at a higher number it does not.
    let allow_hi = write_fault(
        &lab,
        "allowhi",
        "dest-vm-nsg",
        "allow-8080-late",
        160,
        "Allow",
        "8080",
        "Inbound",
    );
    lab.ok(&["inject", &allow_hi]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 2), Conn::TimedOut);
    let allow_lo = write_fault(
        &lab,
        "allowlo",
        "dest-vm-nsg",
        "allow-8080-early",
        140,
        "Allow",
        "8080",
        "Inbound",
    );
    lab.ok(&["inject", &allow_lo]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 3), Conn::Connected);
    lab.ok(&["clear", "--all"]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 3), Conn::Connected);

    // Subnet NSG + NIC NSG: a flow must be allowed by both, inbound = subnet then NIC.
    let assoc = lab.dir.path().join("assoc.toml");
    std::fs::write(
        &assoc,
        format!(
            "{}\n[[faults.cloud]]\nkind = \"subnet_nsg\"\nsubnet = \"default\"\nnsg = \"subnet-nsg\"\n",
            common::base_with("").replace("{demo}", &common::demo().display().to_string())
                + "[[topology.nsgs]]\nname = \"subnet-nsg\"\n"
        ),
    )
    .unwrap();
    lab.ok(&["inject", &assoc.display().to_string()]);
    // NIC allows 8080 explicitly; the subnet NSG denies it: denied, and the subnet gate
    // (evaluated first inbound) is the one that counts it.
    lab.ok(&[
        "inject",
        &write_fault(
            &lab,
            "nicallow",
            "dest-vm-nsg",
            "nic-allow-8080",
            130,
            "Allow",
            "8080",
            "Inbound",
        ),
    ]);
    lab.ok(&[
        "inject",
        &write_fault(
            &lab,
            "subdeny",
            "subnet-nsg",
            "subnet-deny-8080",
            200,
            "Deny",
            "8080",
            "Inbound",
        ),
    ]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 2), Conn::TimedOut);
    assert!(counter(&lab, "subnet-deny-8080") > 0);
    assert_eq!(
        counter(&lab, "nic-allow-8080"),
        0,
        "NIC gate never saw the denied SYN"
    );
    // Outbound: NIC NSG of the source is evaluated before the subnet NSG.
    lab.ok(&[
        "inject",
        &write_fault(
            &lab,
            "nicout",
            "source-vm-nsg",
            "nic-deny-out-8081",
            100,
            "Deny",
            "8081",
            "Outbound",
        ),
    ]);
    lab.ok(&[
        "inject",
        &write_fault(
            &lab,
            "subout",
            "subnet-nsg",
            "subnet-allow-out-8081",
            100,
            "Allow",
            "8081",
            "Outbound",
        ),
    ]);
    assert_eq!(lab.connect("source-vm", DEST, 8081, 2), Conn::TimedOut);
    assert!(counter(&lab, "nic-deny-out-8081") > 0);
    assert_eq!(
        counter(&lab, "subnet-allow-out-8081"),
        0,
        "subnet gate comes second outbound"
    );

    // Operator SSH (from the root namespace over the lab public IP) is subject to NSGs;
    // `netlab exec` (run-command) is not.
    assert!(lab
        .ok(&["ssh", "dest-vm", "--", "echo", "hi"])
        .contains("hi"));
    lab.ok(&[
        "inject",
        &write_fault(
            &lab,
            "nossh",
            "dest-vm-nsg",
            "deny-ssh",
            200,
            "Deny",
            "22",
            "Inbound",
        ),
    ]);
    let out = lab.nl(&["ssh", "--prefix", &lab.id, "dest-vm", "--", "true"]);
    assert!(!out.status.success(), "SSH must be blocked by the NSG");
    assert!(lab
        .ok(&["exec", "dest-vm", "--", "echo", "still"])
        .contains("still"));
    lab.ok(&["clear", "--all"]);
    assert_eq!(lab.connect("source-vm", DEST, 8080, 3), Conn::Connected);
    // The 8081 listener was a fault too, so it is gone: refused (not dropped) proves the
    // path is open again.
    assert_eq!(lab.connect("source-vm", DEST, 8081, 3), Conn::Refused);
}

/// Writes a scenario file with one NSG rule fault; returns its path.
#[allow(clippy::too_many_arguments)]
fn write_fault(
    lab: &TestLab,
    file: &str,
    nsg: &str,
    name: &str,
    prio: u32,
    access: &str,
    port: &str,
    dir: &str,
) -> String {
    let p = lab.dir.path().join(format!("{file}.toml"));
    let text = common::base_with(&format!(
        "[[topology.nsgs]]\nname = \"subnet-nsg\"\n[[faults.cloud]]\nkind = \"nsg_rule\"\nnsg = \"{nsg}\"\nrule = {{ name = \"{name}\", priority = {prio}, direction = \"{dir}\", access = \"{access}\", protocol = \"Tcp\", source_address_prefix = \"*\", source_port_range = \"*\", destination_address_prefix = \"*\", destination_port_range = \"{port}\" }}\n"
    ))
    .replace("{demo}", &common::demo().display().to_string());
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// Packets counted by the fabric rule whose comment names `rule`.
fn counter(lab: &TestLab, rule: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("fab"),
            "nft",
            "list",
            "table",
            "inet",
            "netlab",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("rule={rule} ")))
        .unwrap_or_else(|| panic!("no rule {rule} in\n{text}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let i = w.iter().position(|x| *x == "packets").unwrap();
    w[i + 1].parse().unwrap()
}

#[test]
fn dead_appliance_and_none_routes_blackhole() {
    require_lab!();
    let lab = TestLab::up_text(&common::base_with(""));
    assert_eq!(lab.connect("source-vm", DEST, 5001, 3), Conn::Connected);
    for id in ["e", "s"] {
        let f = common::demo().join(format!("use_case_{id}/scenario.toml"));
        lab.ok(&["inject", &f.display().to_string()]);
        assert_eq!(
            lab.connect("source-vm", DEST, 5001, 2),
            Conn::TimedOut,
            "scenario {id}"
        );
        // The reverse direction is unaffected (routes are per subnet and per destination).
        lab.ok(&["clear", "--all"]);
        assert_eq!(
            lab.connect("source-vm", DEST, 5001, 3),
            Conn::Connected,
            "after clearing {id}"
        );
    }
    let out = std::process::Command::new("ip")
        .args(["-n", &lab.ns("fab"), "route", "show", "table", "100"])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(!t.contains("blackhole 198.18.1.5"), "route removed: {t}");
}

#[test]
fn tcpdump_in_a_vm_writes_a_valid_pcap() {
    require_lab!();
    let lab = TestLab::up_text(&common::base_with(""));
    let pcap = lab.dir.path().join("cap.pcap");
    let log = std::fs::File::create(lab.dir.path().join("tcpdump.log")).unwrap();
    let mut child = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("source-vm"),
            "tcpdump",
            "-i",
            "eth0",
            "-U",
            "-nn",
            "-w",
        ])
        .arg(&pcap)
        .args(["tcp", "port", "5001"])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Wait until tcpdump listens.
    for _ in 0..100 {
        if std::fs::read_to_string(lab.dir.path().join("tcpdump.log"))
            .unwrap_or_default()
            .contains("listening on")
        {
            break;
        }
        common::sleep_ms(20);
    }
    lab.exec_ok("source-vm", &["iperf", "-c", DEST, "-p", "5001", "-t", "1"]);
    common::sleep_ms(200);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    let bytes = std::fs::read(&pcap).unwrap();
    assert!(bytes.len() > 24);
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    assert!(
        [0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1].contains(&magic),
        "pcap magic {magic:#x}"
    );
    let out = std::process::Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcap)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let to_server = text
        .lines()
        .filter(|l| l.contains("198.18.1.4.") && l.contains("> 198.18.1.5.5001"))
        .count();
    assert!(
        to_server > 10,
        "packets to 198.18.1.5:5001 in the capture:\n{}",
        text.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(text.contains("Flags [S]"), "the handshake is captured");
}

#[test]
fn two_labs_coexist() {
    require_lab!();
    let a = TestLab::up_text(&common::base_with(""));
    let b = common::SecondLab::up(&a, &common::base_with(""));
    // With two labs in one state directory, commands need --prefix.
    let out = a.nl(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prefix"));
    let sa = a.status();
    let sb: serde_json::Value = serde_json::from_str(&b.ok(&["status", "--json"])).unwrap();
    assert_ne!(
        sa["operator_link"]["public_prefix"],
        sb["operator_link"]["public_prefix"]
    );
    assert!(a.ok(&["ssh", "source-vm", "--", "echo", "a"]).contains('a'));
    assert!(b.ok(&["ssh", "source-vm", "--", "echo", "b"]).contains('b'));
    // Faults stay in their own lab.
    b.ok(&["inject", "source-vm:rate=5mbit"]);
    assert!(!a
        .exec_ok("source-vm", &["tc", "qdisc", "show", "dev", "eth0"])
        .contains("tbf"));
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("nl{}-source-vm", b.id),
            "tc",
            "qdisc",
            "show",
            "dev",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("tbf"));
    let out = a.nl(&["down", "--prefix", &b.id]);
    assert!(out.status.success());
    assert!(common::namespaces_with(&format!("nl{}-", b.id)).is_empty());
    assert_eq!(
        a.connect("source-vm", DEST, 5001, 3),
        Conn::Connected,
        "lab a unaffected"
    );
}

#[test]
fn a_failed_up_undoes_what_it_created() {
    require_lab!();
    // sshd that exits at once: `up` fails after the fabric and VMs exist.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let p = dir.path().join("s.toml");
    std::fs::write(
        &p,
        common::base_with("").replace("{demo}", &common::demo().display().to_string()),
    )
    .unwrap();
    let id = common::unique_id();
    let out = std::process::Command::new(common::bin())
        .args(["up", p.to_str().unwrap(), "--prefix", &id])
        .env("NETLAB_STATE_DIR", &state)
        .env("NETLAB_SSHD", "/bin/false")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("sshd") && err.contains("exited"), "{err}");
    assert!(err.contains("creating VM"), "it failed halfway: {err}");
    let prefix = format!("nl{id}-");
    assert!(common::namespaces_with(&prefix).is_empty());
    assert!(common::links_with(&prefix).is_empty());
    assert!(!state.join(&id).exists());
}

#[test]
fn storage_firewall_and_internet_host_follow_the_fabric() {
    require_lab!();
    let lab = TestLab::up_text(&common::base_with(
        "[topology]\ninternet_host = true\n[[topology.storage_accounts]]\nname = \"netlabartifacts\"\ncontainer = \"captures\"\ndefault_action = \"Deny\"\nvnet_rules = [\"default\"]\n",
    ));
    let put = |name: &str| {
        lab.exec_ok(
            "source-vm",
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                "x-ms-blob-type: BlockBlob",
                "--data-binary",
                "hello",
                &format!("http://198.19.0.10/netlabartifacts/captures/{name}"),
            ],
        )
    };
    // Allowed through the VNet rule + service endpoint (the source address is preserved).
    assert_eq!(put("a.txt"), "201");
    // Scenario F: the subnet loses Microsoft.Storage: the storage firewall refuses.
    let f = common::demo().join("use_case_f/scenario.toml");
    lab.ok(&["inject", f.to_str().unwrap()]);
    assert_eq!(put("b.txt"), "403");
    lab.ok(&["clear", "--all"]);
    assert_eq!(put("c.txt"), "201");

    // Scenario T: the default route to a dead appliance cuts the internet; after the route
    // fix HTTPS (443) works and HTTP (80) hangs on the source's OUTPUT DROP.
    let inet = "198.19.128.10";
    assert_eq!(lab.connect("source-vm", inet, 80, 3), Conn::Connected);
    let t = common::demo().join("use_case_t/scenario.toml");
    let out = lab.ok(&["inject", t.to_str().unwrap(), "--json"]);
    let ids: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(lab.connect("source-vm", inet, 443, 2), Conn::TimedOut);
    assert_eq!(lab.connect("source-vm", inet, 80, 2), Conn::TimedOut);
    let st = lab.status();
    let route_fault = st["faults"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "route")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ids["injected"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i == route_fault.as_str()));
    lab.ok(&["clear", &route_fault]);
    assert_eq!(lab.connect("source-vm", inet, 443, 3), Conn::Connected);
    assert_eq!(lab.connect("source-vm", inet, 80, 2), Conn::TimedOut);
    lab.ok(&["clear", "--all"]);
    assert_eq!(lab.connect("source-vm", inet, 80, 3), Conn::Connected);
}

#[test]
fn down_after_a_crashed_up_removes_everything_recorded() {
    require_lab!();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let p = dir.path().join("s.toml");
    std::fs::write(
        &p,
        common::base_with("").replace("{demo}", &common::demo().display().to_string()),
    )
    .unwrap();
    let id = common::unique_id();
    let mut child = std::process::Command::new(common::bin())
        .args(["up", p.to_str().unwrap(), "--prefix", &id])
        .env("NETLAB_STATE_DIR", &state)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill `up` (SIGKILL: no cleanup) once it has started processes in the lab.
    let state_file = state.join(&id).join("state.json");
    let t0 = std::time::Instant::now();
    loop {
        let st: serde_json::Value = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        if st["processes"].as_array().is_some_and(|p| !p.is_empty()) {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "up never started a process");
        common::sleep_ms(5);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(st["complete"], false);
    let procs: Vec<(i64, u64)> = st["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_i64().unwrap(),
                p["start_time"].as_u64().unwrap(),
            )
        })
        .collect();
    let prefix = format!("nl{id}-");
    assert!(!common::namespaces_with(&prefix).is_empty());
    let out = std::process::Command::new(common::bin())
        .args(["down", "--prefix", &id])
        .env("NETLAB_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(common::namespaces_with(&prefix).is_empty());
    assert!(common::links_with(&prefix).is_empty());
    for (pid, start) in procs {
        assert!(!common::alive(pid, start));
    }
    assert!(!state.join(&id).exists());
}
