//! `netlab down --all` after a crash that lost the lab's state: the run directory is gone, and
//! `down --all` run against another (empty) state directory still finds the leftovers by their
//! prefix and removes the namespaces, the operator link and the processes inside them.
//!
//! This test lives in its own binary (cargo runs test binaries one after another) and is
//! skipped while any other netlab lab is up, because `down --all` removes every lab on the
//! machine.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// Removes whatever is left with `down --all` if the test fails halfway.
struct Sweep {
    prefix: String,
    state: PathBuf,
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if !common::namespaces_with(&self.prefix).is_empty() {
            let _ = Command::new(common::bin())
                .arg("--state-dir")
                .arg(&self.state)
                .args(["down", "--all"])
                .output();
        }
    }
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
    let others: Vec<String> = common::namespaces_with("nl")
        .into_iter()
        .filter(|n| n.ends_with("-fab"))
        .collect();
    if !others.is_empty() {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED down_all_removes_a_lab_whose_state_was_lost: other labs are up ({}), and down --all would remove them; run it alone",
            others.join(", ")
        );
        return;
    }

    let lab = common::TestLab::up_file(&common::demo().join("use_case_a/scenario.toml"));
    let prefix = lab.prefix();
    let empty_state = tempfile::tempdir().unwrap();
    let _sweep = Sweep {
        prefix: prefix.clone(),
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

    let out = Command::new(common::bin())
        .arg("--state-dir")
        .arg(empty_state.path())
        .args(["down", "--all"])
        .output()
        .unwrap();
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
