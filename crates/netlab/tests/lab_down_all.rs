//! `netlab down --all` after a crash: leftovers are found by their prefix and removed (the
//! namespaces, the operator link, the processes inside them, the run directory).
//!
//! Every `down --all` here is scoped with `--scope <the test's run id>`, so other labs on the
//! machine (other tests, other users) are left alone, which the second test checks.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// Removes whatever is left with a scoped `down --all` if the test fails halfway.
struct Sweep {
    id: String,
    state: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if !common::namespaces_with(&format!("nl{}-", self.id)).is_empty()
            || self.state.join(&self.id).exists()
        {
            let _ = down_all_scoped(&self.state, &self.id);
        }
    }
}

fn down_all_scoped(state: &std::path::Path, id: &str) -> std::process::Output {
    Command::new(common::bin())
        .arg("--state-dir")
        .arg(state)
        .args(["down", "--all", "--scope", id])
        .output()
        .unwrap()
}

fn pids_in(ns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether a pid still runs (a zombie counts as gone).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

#[test]
fn down_all_removes_a_lab_whose_state_was_lost() {
    require_lab!();
    let lab = common::TestLab::up_file(&common::demo().join("use_case_a/scenario.toml"));
    let prefix = lab.prefix();
    let empty_state = tempfile::tempdir().unwrap();
    let _sweep = Sweep {
        id: lab.id.clone(),
        state: empty_state.path().to_path_buf(),
    };
    let namespaces = common::namespaces_with(&prefix);
    assert!(
        namespaces.iter().any(|n| n.ends_with("-fab")),
        "{namespaces:?}"
    );
    let pids: Vec<i32> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
    assert!(
        !pids.is_empty(),
        "the lab runs sshd and servers in its namespaces"
    );
    assert!(
        !common::links_with(&prefix).is_empty(),
        "the operator link exists"
    );

    // The crash: the lab's state is lost.
    std::fs::remove_dir_all(lab.run_dir()).unwrap();

    let out = down_all_scoped(empty_state.path(), &lab.id);
    assert!(
        out.status.success(),
        "down --all failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(
        common::namespaces_with(&prefix).is_empty(),
        "namespaces left: {:?}",
        common::namespaces_with(&prefix)
    );
    assert!(
        common::links_with(&prefix).is_empty(),
        "root links left: {:?}",
        common::links_with(&prefix)
    );
    let mut left: Vec<i32> = pids.clone();
    for _ in 0..40 {
        left.retain(|p| running(*p));
        if left.is_empty() {
            break;
        }
        common::sleep_ms(50);
    }
    assert!(left.is_empty(), "processes left running: {left:?}");
}

#[test]
fn scoped_down_all_after_a_killed_up_leaves_other_labs_alone() {
    require_lab!();
    // Another lab, outside the scope: it must survive.
    let other = common::TestLab::up_text(&common::base_with(""));
    let id = common::unique_id();
    let prefix = format!("nl{id}-");
    let state = tempfile::tempdir().unwrap();
    let _sweep = Sweep {
        id: id.clone(),
        state: state.path().to_path_buf(),
    };
    let mut child = Command::new(common::bin())
        .arg("--state-dir")
        .arg(state.path())
        .args(["-q", "up"])
        .arg(common::demo().join("use_case_a/scenario.toml"))
        .args(["--prefix", &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill `up` with SIGKILL as soon as a VM runs a process (sshd): mid-way or just after.
    let vm_ns = format!("{prefix}source-vm");
    let t0 = std::time::Instant::now();
    let sshd_in = |ns: &str| {
        pids_in(ns).into_iter().any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sshd")
        })
    };
    while !sshd_in(&vm_ns) && t0.elapsed() < std::time::Duration::from_secs(20) {
        common::sleep_ms(5);
    }
    child.kill().unwrap();
    let _ = child.wait();
    let namespaces = common::namespaces_with(&prefix);
    assert!(
        namespaces.iter().any(|n| n.ends_with("-fab")),
        "{namespaces:?}"
    );
    let pids: Vec<i32> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
    assert!(!pids.is_empty(), "sshd runs in {vm_ns}");
    assert!(state.path().join(&id).exists());

    let out = down_all_scoped(state.path(), &id);
    assert!(
        out.status.success(),
        "down --all --scope failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        common::namespaces_with(&prefix).is_empty(),
        "namespaces left: {:?}",
        common::namespaces_with(&prefix)
    );
    assert!(
        common::links_with(&prefix).is_empty(),
        "root links left: {:?}",
        common::links_with(&prefix)
    );
    assert!(!state.path().join(&id).exists(), "run directory left");
    let mut left = pids.clone();
    for _ in 0..40 {
        left.retain(|p| running(*p));
        if left.is_empty() {
            break;
        }
        common::sleep_ms(50);
    }
    assert!(left.is_empty(), "processes left running: {left:?}");

    // The lab outside the scope is untouched.
    assert!(!common::namespaces_with(&other.prefix()).is_empty());
    assert!(!common::links_with(&other.prefix()).is_empty());
    let st = other.status();
    assert_eq!(st["complete"], true);
    for v in st["vms"].as_array().unwrap() {
        for p in v["processes"].as_array().unwrap() {
            assert_eq!(p["alive"], true, "{p}");
        }
    }
}
