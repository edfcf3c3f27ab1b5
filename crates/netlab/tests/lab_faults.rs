//! Lab tests (root): fault mechanisms measured with real tools, and every scenario's faults
//! injected and cleared back to the starting state.

mod common;

use common::{Conn, TestLab};

const DEST: &str = "198.18.1.5";

fn iperf_bps(lab: &TestLab, secs: u32) -> f64 {
    let out = lab.exec_ok(
        "source-vm",
        &[
            "iperf",
            "-c",
            DEST,
            "-p",
            "5001",
            "-t",
            &secs.to_string(),
            "-y",
            "C",
        ],
    );
    let last = out.lines().last().unwrap_or("");
    last.rsplit(',')
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("iperf output: {out}"))
}

/// (OutSegs, RetransSegs) of the source namespace (`/proc/net/snmp`).
fn tcp_segs(lab: &TestLab) -> (u64, u64) {
    let snmp = lab.exec_ok("source-vm", &["cat", "/proc/net/snmp"]);
    let tcp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Tcp:")).collect();
    let names: Vec<&str> = tcp[0].split_whitespace().collect();
    let vals: Vec<&str> = tcp[1].split_whitespace().collect();
    let get = |n: &str| {
        vals[names.iter().position(|x| *x == n).unwrap()]
            .parse::<u64>()
            .unwrap()
    };
    (get("OutSegs"), get("RetransSegs"))
}

/// qperf tcp_lat in milliseconds (half the round trip).
fn tcp_lat_ms(lab: &TestLab) -> f64 {
    let out = lab.exec_ok(
        "source-vm",
        &["qperf", DEST, "-lp", "19765", "-t", "2", "tcp_lat"],
    );
    let line = out
        .lines()
        .find(|l| l.contains("latency"))
        .unwrap_or_else(|| panic!("qperf: {out}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    let v: f64 = w[2].parse().unwrap();
    match w[3] {
        "us" => v / 1000.0,
        "ms" => v,
        "sec" => v * 1000.0,
        "ns" => v / 1e6,
        u => panic!("unit {u}"),
    }
}

#[test]
fn tbf_loss_and_delay_are_measurable() {
    require_lab!();
    let lab = TestLab::up_text(&common::base_with(""));
    // Rate: tbf 5mbit, measured by iperf2 within 15%.
    lab.ok(&["inject", "source-vm:rate=5mbit"]);
    let st = lab.status();
    assert_eq!(st["faults"][0]["mechanism"], "tbf");
    let bps = iperf_bps(&lab, 4);
    assert!(
        (bps - 5e6).abs() / 5e6 < 0.15,
        "iperf2 measured {bps} bit/s under tbf 5mbit"
    );
    lab.ok(&["clear", "source-vm:rate"]);
    assert!(!lab
        .exec_ok("source-vm", &["tc", "qdisc", "show", "dev", "eth0"])
        .contains("tbf"));

    // Loss: 20% egress loss. The statistic DROP sits in the VM's OUTPUT chain, so the
    // sending TCP learns of each drop at once (the send fails and is retried; see
    // docs/netlab.md): the effect shows as repeated sends (OutSegs well above the segments
    // that reach the peer), a collapsed throughput, and the rule's own counters.
    let clean_bps = iperf_bps(&lab, 1);
    lab.ok(&["inject", "source-vm:loss=20%"]);
    assert_eq!(lab.status()["faults"][0]["mechanism"], "iptables statistic");
    let tx = |lab: &TestLab| -> u64 {
        lab.exec_ok(
            "source-vm",
            &["cat", "/sys/class/net/eth0/statistics/tx_packets"],
        )
        .trim()
        .parse()
        .unwrap()
    };
    let (o0, t0) = (tcp_segs(&lab).0, tx(&lab));
    let lossy_bps = iperf_bps(&lab, 2);
    let (o1, t1) = (tcp_segs(&lab).0, tx(&lab));
    assert!(o1 > o0);
    let rules = lab.exec_ok(
        "source-vm",
        &["iptables", "-w", "-L", "OUTPUT", "-v", "-n", "-x"],
    );
    let dropped: u64 = rules
        .lines()
        .filter(|l| l.contains("statistic"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    // Packets that left eth0 plus those the rule dropped = packets that tried to leave.
    let tried = (t1 - t0) + dropped;
    let share = dropped as f64 / tried.max(1) as f64;
    assert!(
        (0.12..0.28).contains(&share),
        "the loss rule dropped {dropped} of {tried} packets ({share:.3}), expected about 20%"
    );
    assert!(
        lossy_bps * 5.0 < clean_bps,
        "throughput {clean_bps} -> {lossy_bps} bit/s under 20% loss"
    );
    // SSH stays usable under loss (port 22 exempt).
    assert!(lab
        .ok(&["ssh", "source-vm", "--", "echo", "ok"])
        .contains("ok"));
    lab.ok(&["clear", "--all"]);

    // Delay: 50 ms on one VM's egress raises the round trip by 50 ms (tcp_lat by ~25 ms).
    let base = tcp_lat_ms(&lab);
    lab.ok(&["inject", "source-vm:delay=50ms"]);
    let st = lab.status();
    let mech = st["faults"][0]["mechanism"].as_str().unwrap().to_string();
    assert!(mech == "netem" || mech == "nfqueue emulator", "{mech}");
    let delayed = tcp_lat_ms(&lab);
    let added_rtt = 2.0 * (delayed - base);
    assert!(
        (added_rtt - 50.0).abs() <= 10.0,
        "round trip rose by {added_rtt} ms (tcp_lat {base} -> {delayed} ms) via {mech}"
    );
    lab.ok(&["clear", "--all"]);
    assert!(tcp_lat_ms(&lab) < 5.0);
    assert_eq!(lab.connect("source-vm", DEST, 5001, 3), Conn::Connected);
}

/// Everything a fault could change, in a comparable form.
fn snapshot(lab: &TestLab) -> String {
    let mut s = String::new();
    for vm in ["source-vm", "dest-vm"] {
        for table in ["filter", "nat", "mangle"] {
            s += &format!(
                "== {vm} iptables {table}\n{}",
                lab.exec_ok(vm, &["iptables", "-w", "-t", table, "-S"])
            );
        }
        s += &format!(
            "== {vm} nft tables\n{}",
            lab.exec_ok(vm, &["nft", "list", "tables"])
        );
        s += &format!(
            "== {vm} tc\n{}",
            lab.exec_ok(vm, &["tc", "qdisc", "show", "dev", "eth0"])
        );
        let link = lab.exec_ok(vm, &["ip", "-o", "link", "show", "eth0"]);
        s += &format!(
            "== {vm} mtu {}\n",
            link.split_whitespace()
                .skip_while(|w| *w != "mtu")
                .nth(1)
                .unwrap_or("")
        );
    }
    let fab = lab.ns("fab");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &fab])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    s += &format!(
        "== fabric nft\n{}",
        run(&["nft", "-s", "list", "table", "inet", "netlab"])
    );
    s += &format!(
        "== fabric routes\n{}",
        run(&["ip", "route", "show", "table", "100"])
    );
    s += &format!("== fabric rules\n{}", run(&["ip", "rule"]));
    s += &format!(
        "== fabric links\n{}",
        run(&["ip", "-o", "link"])
            .lines()
            .map(|l| l.split(" link/").next().unwrap_or("").to_string() + "\n")
            .collect::<String>()
    );
    s += &format!(
        "== storage\n{}",
        std::fs::read_to_string(lab.run_dir().join("storage.json")).unwrap_or_default()
    );
    let st = lab.status();
    let mut procs = Vec::new();
    for v in st["vms"].as_array().unwrap() {
        for p in v["processes"].as_array().unwrap() {
            procs.push(format!(
                "== proc {} {} alive={}\n",
                v["name"], p["role"], p["alive"]
            ));
        }
    }
    procs.sort();
    s + &procs.concat()
}

/// Fails with the first differing lines when the lab is not as it was.
fn assert_same(now: &str, start: &str, what: &str) {
    if now != start {
        let diff: Vec<String> = now
            .lines()
            .zip(start.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| format!("now: {a}\nwas: {b}"))
            .take(10)
            .collect();
        panic!(
            "{what}: the lab did not return to its starting state:\n{}",
            diff.join("\n")
        );
    }
}

/// Checks, independently of `netlab status`, that a scenario's faults are present.
fn check_present(lab: &TestLab, sc: &netlab::scenario::Scenario) {
    let fab = lab.ns("fab");
    let nft = {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &fab, "nft", "list", "table", "inet", "netlab",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let routes = {
        let out = std::process::Command::new("ip")
            .args(["-n", &fab, "route", "show", "table", "100"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for f in &sc.faults.cloud {
        use netlab::scenario::CloudFault::*;
        match f {
            NsgRule { nsg, rule, .. } => assert!(
                nft.contains(&format!(
                    "nsg={nsg} rule={} prio={}",
                    rule.name, rule.priority
                )),
                "{}: {nsg}/{}",
                sc.name,
                rule.name
            ),
            Route { route, .. } => {
                let want = match route.next_hop_type.as_str() {
                    "Internet" | "VnetLocal" => "throw",
                    _ => "blackhole",
                };
                let prefix = route.address_prefix.trim_end_matches("/32");
                let prefix = if prefix == "0.0.0.0/0" {
                    "default"
                } else {
                    prefix
                };
                assert!(
                    routes.contains(&format!("{want} {prefix}")),
                    "{}: route {prefix} in\n{routes}",
                    sc.name
                );
            }
            SubnetNsg { nsg, .. } => assert!(
                nft.contains(&format!("jump nsg_{}_in", nsg.replace('-', "_"))),
                "{}",
                sc.name
            ),
            RemoveServiceEndpoint { service, .. } => {
                let st = std::fs::read_to_string(lab.run_dir().join("storage.json")).unwrap();
                assert!(
                    !st.contains(service.as_str()),
                    "{}: {service} still in storage.json",
                    sc.name
                );
            }
            AddServiceEndpoint { service, .. } => {
                let st = std::fs::read_to_string(lab.run_dir().join("storage.json")).unwrap();
                assert!(st.contains(service.as_str()), "{}", sc.name);
            }
        }
    }
    for f in &sc.faults.vm {
        let tc = lab.exec_ok(&f.vm, &["tc", "qdisc", "show", "dev", "eth0"]);
        let filter = lab.exec_ok(&f.vm, &["iptables", "-w", "-S"]);
        let mangle = lab.exec_ok(&f.vm, &["iptables", "-w", "-t", "mangle", "-S"]);
        let nat = lab.exec_ok(&f.vm, &["iptables", "-w", "-t", "nat", "-S"]);
        if f.rate.is_some() {
            assert!(tc.contains("tbf"), "{}: {tc}", sc.name);
        }
        if f.delay_ms.is_some() || f.corrupt_pct.is_some() {
            assert!(
                tc.contains("netem") || mangle.contains("NFQUEUE"),
                "{}: no delay mechanism",
                sc.name
            );
        } else if f.loss_pct.is_some() {
            assert!(filter.contains("statistic"), "{}: {filter}", sc.name);
        }
        if f.wire_loss_pct.is_some() {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &fab, "iptables", "-w", "-S", "FORWARD"])
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("statistic"),
                "{}: no wire loss rule in the fabric",
                sc.name
            );
        }
        if let Some(m) = f.mtu {
            assert!(
                lab.exec_ok(&f.vm, &["ip", "link", "show", "eth0"])
                    .contains(&format!("mtu {m}")),
                "{}",
                sc.name
            );
        }
        for cmd in &f.iptables {
            let c = netlab::faults::IptablesCmd::parse(cmd).unwrap();
            let text = match c.table.as_str() {
                "nat" => &nat,
                "mangle" => &mangle,
                _ => &filter,
            };
            use netlab::faults::IptablesOp::*;
            match &c.op {
                NewChain { chain } => assert!(
                    text.contains(&format!("-N {chain}")),
                    "{}: {chain}",
                    sc.name
                ),
                Policy { chain, target } => assert!(
                    text.contains(&format!("-P {chain} {target}")),
                    "{}",
                    sc.name
                ),
                Append { chain, spec } | Insert { chain, spec, .. } => {
                    let target = spec.iter().skip_while(|w| *w != "-j").nth(1).unwrap();
                    assert!(
                        text.lines().any(|l| l.starts_with(&format!("-A {chain} "))
                            && l.contains(&format!("-j {target}"))),
                        "{}: {cmd} not in\n{text}",
                        sc.name
                    );
                }
            }
        }
        if let Some(n) = &f.nft {
            let tables = lab.exec_ok(&f.vm, &["nft", "list", "tables"]);
            for (fam, name) in netlab::faults::nft_tables(n) {
                assert!(
                    tables.contains(&format!("table {fam} {name}")),
                    "{}",
                    sc.name
                );
            }
        }
    }
}

#[test]
fn every_scenario_injects_and_clears_back_to_the_start() {
    require_lab!();
    // One lab with the union of the scenarios' services and hosts.
    let lab = TestLab::up_text(&common::base_with(
        "[topology]\ninternet_host = true\n[[topology.vms]]\nname = \"dest-vm\"\nservices = [{ kind = \"iperf2\", port = 5001 }, { kind = \"qperf\", port = 19765 }, { kind = \"http\", port = 8080 }, { kind = \"tcp\", port = 5432 }, { kind = \"tcp\", port = 6379 }, { kind = \"tcp\", port = 9090 }]\n",
    ));
    let start = snapshot(&lab);
    let mut dirs: Vec<_> = std::fs::read_dir(common::demo())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("scenario.toml").is_file())
        .collect();
    dirs.sort();
    assert_eq!(dirs.len(), 23);
    for d in dirs {
        let file = d.join("scenario.toml");
        let sc = netlab::scenario::Scenario::load(&file).unwrap();
        let n_expected = sc.faults.cloud.len() + sc.faults.vm.len();
        lab.ok(&["inject", &file.display().to_string()]);
        let st = lab.status();
        let faults = st["faults"].as_array().unwrap();
        assert!(
            faults.len() >= n_expected,
            "{}: {} faults active, {} entries",
            sc.name,
            faults.len(),
            n_expected
        );
        for f in faults {
            assert!(!f["mechanism"].as_str().unwrap().is_empty());
        }
        check_present(&lab, &sc);
        lab.ok(&["clear", "--all"]);
        assert_same(&snapshot(&lab), &start, &sc.name);
    }
    // Stages: R's DROP 9090 predates the baseline; nothing is injected after it.
    let r = common::demo().join("use_case_r/scenario.toml");
    let r = r.to_str().unwrap();
    let post: serde_json::Value =
        serde_json::from_str(&lab.ok(&["inject", r, "--stage", "post-baseline", "--json"]))
            .unwrap();
    assert_eq!(post["injected"].as_array().unwrap().len(), 0);
    let pre: serde_json::Value =
        serde_json::from_str(&lab.ok(&["inject", r, "--stage", "pre-baseline", "--json"])).unwrap();
    assert_eq!(pre["injected"].as_array().unwrap().len(), 1);
    let st = lab.status();
    assert_eq!(st["faults"][0]["before_baseline"], true);
    assert!(lab
        .exec_ok("dest-vm", &["iptables", "-S", "INPUT"])
        .contains("--dport 9090 -j DROP"));
    lab.ok(&["clear", "dest-vm"]);
    assert_same(&snapshot(&lab), &start, "after the stage and extra faults");

    // nft rule faults, extra listeners and stopped services, from a scenario file.
    let extra = lab.dir.path().join("extra.toml");
    std::fs::write(
        &extra,
        common::base_with(
            "[[faults.vm]]\nvm = \"dest-vm\"\nlisten = [7777]\nstop_service = [5001]\nnft = \"\"\"\ntable inet hardening {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    tcp dport 7777 drop\n  }\n}\n\"\"\"\n",
        )
        .replace("{demo}", &common::demo().display().to_string()),
    )
    .unwrap();
    let out = lab.ok(&["inject", extra.to_str().unwrap(), "--json"]);
    let ids: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ids["injected"].as_array().unwrap().len(), 3, "{out}");
    assert!(lab
        .exec_ok("dest-vm", &["nft", "list", "tables"])
        .contains("table inet hardening"));
    assert_eq!(
        lab.connect("source-vm", DEST, 7777, 2),
        Conn::TimedOut,
        "the nft rule drops 7777"
    );
    assert_eq!(
        lab.connect("source-vm", DEST, 5001, 3),
        Conn::Refused,
        "iperf2 is stopped"
    );
    lab.ok(&["clear", "dest-vm:nft"]);
    assert_eq!(
        lab.connect("source-vm", DEST, 7777, 3),
        Conn::Connected,
        "the extra listener runs"
    );
    lab.ok(&["clear", "--all"]);
    assert_eq!(
        lab.connect("source-vm", DEST, 5001, 3),
        Conn::Connected,
        "iperf2 restarted"
    );
    assert_same(&snapshot(&lab), &start, "after the stage and extra faults");
}
