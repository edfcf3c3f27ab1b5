//! Every scenario's `setup.sh` then `teardown.sh` (az commands only) against one lab: the
//! setup changes the lab, the teardown returns it to its starting state (control plane from
//! `netlab status --json`, iptables, nat table and qdiscs in every VM, lab processes).

mod common;

use std::process::Command;

use common::TestLab;
use serde_json::{json, Value};

fn snapshot(lab: &TestLab) -> Value {
    let s = lab.status();
    let mut vms = serde_json::Map::new();
    for vm in ["source-vm", "dest-vm"] {
        let run = |args: &[&str]| lab.exec_ok(vm, args);
        vms.insert(
            vm.into(),
            json!({
                "filter": run(&["iptables", "-S"]),
                "nat": run(&["iptables", "-t", "nat", "-S"]),
                "qdisc": run(&["tc", "qdisc", "show", "dev", "eth0"]),
            }),
        );
    }
    let procs: Vec<Value> = s["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["processes"].clone())
        .collect();
    json!({"topology": s["topology"], "faults": s["faults"], "vms": vms, "processes": procs})
}

#[test]
fn every_scenario_setup_then_teardown_returns_the_lab_to_its_start() {
    require_lab!();
    let lab = TestLab::up_text(&common::base_with(""));
    let env = lab.ok(&["env"]);
    let wrapper = env
        .lines()
        .find_map(|l| l.strip_prefix("export PATH=\""))
        .and_then(|l| l.split(':').next())
        .expect("netlab env exports PATH")
        .to_string();
    let config = lab.run_dir().join("config.env");
    assert!(config.is_file());
    let path = format!("{wrapper}:{}", std::env::var("PATH").unwrap_or_default());
    // netem scenarios (H, I, J, L, Q) need sch_netem in the VM kernel, which Azure images
    // have; the lab kernel may not (netlab then emulates in userspace, which az cannot reach)
    let netem = lab
        .exec(
            "source-vm",
            &[
                "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
            ],
        )
        .status
        .success();
    if netem {
        lab.exec_ok("source-vm", &["tc", "qdisc", "del", "dev", "lo", "root"]);
    }
    let start = snapshot(&lab);
    let mut ran = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(common::demo())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("setup.sh").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(dir.join("setup.sh")).unwrap();
        if text.contains("netem") && !netem {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {name}: the kernel has no sch_netem, which its setup.sh uses"
            );
            continue;
        }
        let script = |which: &str| {
            let out = Command::new("bash")
                .arg(dir.join(which))
                .env("PATH", &path)
                .env("CONFIG", &config)
                .env_remove("AZ_PATH")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}/{which} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        script("setup.sh");
        let during = snapshot(&lab);
        if name != "use_case_b" && name != "use_case_c" {
            assert_ne!(during, start, "{name}/setup.sh changed nothing");
        }
        script("teardown.sh");
        assert_eq!(
            snapshot(&lab),
            start,
            "{name}/teardown.sh did not restore the lab"
        );
        ran.push(name);
    }
    assert!(ran.len() >= 15, "scenarios with scripts: {ran:?}");
}
