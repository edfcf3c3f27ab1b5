//! The lifecycle against a fake Azure answering with recorded JSON: every state, the
//! errors (throttling, denial, the location-vs-resource-group split, agent errors, corrupt
//! downloads), one active capture per VM, dual-end roles, crash recovery and orphans.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cloud_orchestrator::engine::{CleanupOptions, OrphanPolicy};
use cloud_orchestrator::model::{CaptureFilter, CaptureOptions, Role, StopKind, Target, TaskState};
use cloud_orchestrator::OrchError;
use cloud_provider::error::CloudError;
use common::*;

fn opts(duration: u32) -> CaptureOptions {
    CaptureOptions {
        duration_secs: duration,
        ..CaptureOptions::default()
    }
}

fn states_in_registry(s: &Setup, task: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(s.dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("_tasks.jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                let j: serde_json::Value = serde_json::from_str(line).unwrap();
                if j["task_id"] == task {
                    v.push(j["state"].as_str().unwrap().to_string());
                }
            }
        }
    }
    v.dedup();
    v
}

#[test]
fn single_vm_walks_every_state_with_backoff_and_the_analysis_sees_unanswered_syns() {
    let s = Setup::new();
    s.az.script(
        "dest-vm",
        vec![
            running(),
            running(),
            running(),
            running(),
            running(),
            stopped("TimeExceeded"),
        ],
    );
    s.az.pcap("dest-vm", syn_without_synack());
    let o = s.orch("cap_20261122T074400Z");
    let filter = CaptureFilter::parse("protocol=TCP,local-port=5001").unwrap();
    let id = o
        .capture_traffic(
            &Target::vm("dest-vm"),
            &CaptureOptions {
                filters: vec![filter],
                ..opts(60)
            },
        )
        .unwrap();
    let t = o.wait_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Analysed, "{t:#?}");
    let side = t.side(Role::Vm).unwrap();
    assert_eq!(side.capture_name, format!("ghostcap-{id}-vm"));
    assert_eq!(side.stop_kind, Some(StopKind::TimeLimit));
    assert!(!side.stopped_early);
    assert_eq!(side.format.as_deref(), Some("pcap"));
    assert_eq!(
        side.blob.as_ref().unwrap().container,
        "network-watcher-logs"
    );
    let a = side.analysis.as_ref().unwrap();
    assert!(a.actionable);
    let f = a
        .findings
        .iter()
        .find(|f| f.rule == "xproto.filtered_port")
        .expect("filtered port finding");
    assert!(
        f.title.contains("5001") && f.title.contains("silently dropped"),
        "{f:?}"
    );
    assert!(a.semantic_file.is_file());
    // Polling: exponential backoff 2, 4, 8, 16 capped at 16.
    assert_eq!(s.time.sleeps(), vec![2, 4, 8, 16, 16]);
    // The location was resolved once from the resource group; create took the resource
    // group and the VM, every other watcher call the region.
    assert_eq!(s.az.count("group show"), 1);
    assert!(s.az.calls().iter().any(|c| c.starts_with(&format!(
        "capture create --resource-group {RG} --vm dest-vm --name ghostcap-{id}-vm --filters [{{\"localPort\":\"5001\",\"protocol\":\"TCP\"}}]"
    ))));
    assert!(s
        .az
        .calls()
        .iter()
        .filter(|c| c.starts_with("capture status"))
        .all(|c| c.contains("--location westeurope")));
    assert_eq!(
        t.prerequisites
            .iter()
            .filter(|p| p.starts_with("ok: VM dest-vm has the Network Watcher agent"))
            .count(),
        1
    );

    let t = o.cleanup_task(&id, CleanupOptions::default()).unwrap();
    assert_eq!(t.state, TaskState::Cleaned);
    assert!(t.is_terminal());
    assert!(s.az.captures.lock().unwrap().is_empty());
    assert_eq!(
        s.az.count("blob delete"),
        0,
        "the blob is kept unless asked"
    );
    assert_eq!(
        states_in_registry(&s, id.as_str()),
        [
            "created",
            "running",
            "stopped",
            "downloaded",
            "analysed",
            "cleaned"
        ]
    );
}

#[test]
fn a_capture_stopped_at_its_byte_limit_is_reported_as_early() {
    let s = Setup::new();
    s.az.script(
        "dest-vm",
        vec![running(), stopped("SessionMaximumBytesLimitExceeded")],
    );
    s.az.pcap("dest-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(
            &Target::vm("dest-vm"),
            &CaptureOptions {
                max_bytes: Some(4096),
                ..opts(300)
            },
        )
        .unwrap();
    let t = o.wait_task(&id).unwrap();
    let side = &t.sides[0];
    assert_eq!(side.stop_kind, Some(StopKind::ByteLimit));
    assert!(side.stopped_early);
    assert_eq!(t.state, TaskState::Analysed);
    assert!(!t.actionable());
}

#[test]
fn one_active_capture_per_vm_is_enforced_before_asking_azure() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![running()]);
    let o = s.orch("cap_20261122T074400Z");
    let first = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(600))
        .unwrap();
    let creates = s.az.count("capture create");
    let e = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(60))
        .unwrap_err();
    match &e {
        OrchError::ActiveCapture { vm, task, .. } => {
            assert_eq!(vm, "dest-vm");
            assert_eq!(task.as_deref(), Some(first.as_str()));
        }
        other => panic!("{other}"),
    }
    assert_eq!(e.exit_code(), 3);
    assert_eq!(
        s.az.count("capture create"),
        creates,
        "no create was attempted"
    );

    // A capture someone else runs on source-vm (no registry entry) is found in Azure.
    s.az.add_capture("someone-elses", "source-vm", vec![running()]);
    let e = o
        .capture_traffic(&Target::vm("source-vm"), &opts(60))
        .unwrap_err();
    assert!(
        matches!(e, OrchError::ActiveCapture { ref capture, .. } if capture == "someone-elses"),
        "{e}"
    );
    // A stopped one does not block.
    s.az.add_capture("someone-elses", "source-vm", vec![stopped("TimeExceeded")]);
    o.capture_traffic(&Target::vm("source-vm"), &opts(60))
        .unwrap();
}

#[test]
fn dual_end_roles_hold_whichever_side_finishes_first_and_one_failure_keeps_the_other() {
    let s = Setup::new();
    // dest stops first; source errors later (agent stopped).
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.script(
        "source-vm",
        vec![running(), running(), error("AgentStopped")],
    );
    s.az.pcap("dest-vm", syn_without_synack());
    s.az.pcap("source-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let filter = CaptureFilter::parse("protocol=TCP,remote-port=5001").unwrap();
    let id = o
        .capture_traffic(
            &Target::pair("source-vm", "dest-vm"),
            &CaptureOptions {
                filters: vec![filter],
                ..opts(30)
            },
        )
        .unwrap();
    let creates: Vec<String> =
        s.az.calls()
            .into_iter()
            .filter(|c| c.starts_with("capture create"))
            .collect();
    assert!(
        creates[0].contains("--vm source-vm") && creates[0].contains(r#""remotePort":"5001""#),
        "{creates:?}"
    );
    assert!(
        creates[1].contains("--vm dest-vm") && creates[1].contains(r#""localPort":"5001""#),
        "{creates:?}"
    );
    let t = o.wait_task(&id).unwrap();
    let src = t.side(Role::Source).unwrap();
    let dst = t.side(Role::Dest).unwrap();
    assert_eq!(src.vm, "source-vm");
    assert_eq!(dst.vm, "dest-vm");
    assert_eq!(src.state, TaskState::Failed);
    assert!(src.error.as_deref().unwrap().contains("AgentStopped"));
    assert_eq!(dst.state, TaskState::Analysed);
    assert!(dst.analysis.as_ref().unwrap().actionable);
    assert_eq!(
        t.state,
        TaskState::Analysed,
        "one failed side keeps the other's result"
    );
    assert!(t.comparison.is_none());
    // Cleanup removes both capture resources; the failed side stays failed.
    let t = o
        .cleanup_task(
            &id,
            CleanupOptions {
                delete_blob: true,
                delete_local: false,
            },
        )
        .unwrap();
    assert_eq!(t.side(Role::Source).unwrap().state, TaskState::Failed);
    assert_eq!(t.side(Role::Dest).unwrap().state, TaskState::Cleaned);
    assert!(t.sides.iter().all(|s| s.capture_deleted));
    // Azure names the blob at create time: the errored side may hold a partial one, so both
    // are deleted when asked.
    assert_eq!(s.az.count("blob delete"), 2);
}

#[test]
fn dual_end_pair_is_compared_when_both_sides_are_analysed() {
    let s = Setup::new();
    s.az.script("source-vm", vec![running(), stopped("TimeExceeded")]);
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    s.az.pcap("source-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::pair("source-vm", "dest-vm"), &opts(30))
        .unwrap();
    let t = o.wait_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Analysed);
    let c = t.comparison.as_ref().unwrap();
    assert_eq!(c["a_role"], "source");
    assert_eq!(c["a_vm"], "source-vm");
    assert_eq!(c["b_vm"], "dest-vm");
    assert!(c["result"].is_object());
}

#[test]
fn a_capture_running_past_its_limit_is_stopped_by_the_task() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![running()]);
    s.az.pcap("dest-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(10))
        .unwrap();
    let t = o.wait_task(&id).unwrap();
    assert_eq!(s.az.count("capture stop"), 1);
    let side = &t.sides[0];
    assert_eq!(side.stop_kind, Some(StopKind::Manual));
    assert_eq!(t.state, TaskState::Analysed);
    // Bounded: never slept much past duration + grace.
    let total: u64 = s.time.sleeps().iter().sum();
    assert!((70..=90).contains(&total), "{total}");
}

#[test]
fn throttling_surfaces_as_a_runtime_error_and_the_task_resumes_afterwards() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
    s.az.throttle_status.store(1, Ordering::SeqCst);
    let e = o.check_task(&id).unwrap_err();
    assert!(
        matches!(e, OrchError::Cloud(CloudError::Throttled { .. })),
        "{e}"
    );
    assert_eq!(e.exit_code(), 3);
    assert!(e.to_string().contains("throttled"));
    assert_eq!(o.get_task(&id).unwrap().state, TaskState::Running);
    let t = o.check_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Analysed);

    // While waiting, throttling that outlasts the provider's retries is waited out.
    let s = Setup::new();
    s.az.script("dest-vm", vec![running(), stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(300))
        .unwrap();
    s.az.throttle_status.store(2, Ordering::SeqCst);
    let t = o.wait_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Analysed);
    assert_eq!(
        s.time.sleeps(),
        vec![30, 30, 2],
        "Retry-After 30 s honoured, then backoff"
    );
}

#[test]
fn downloads_are_retried_and_verified() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    s.az.corrupt_downloads.store(1, Ordering::SeqCst);
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
    let t = o.check_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Analysed);
    assert_eq!(s.az.count("blob download"), 2);

    // Every attempt truncated: the side fails with the verification error, nothing analysed.
    let s = Setup::new();
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    s.az.corrupt_downloads.store(10, Ordering::SeqCst);
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
    let t = o.check_task(&id).unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(s.az.count("blob download"), 3);
    let err = t.sides[0].error.as_deref().unwrap();
    assert!(
        err.contains("failed verification") && err.contains("bytes"),
        "{err}"
    );
    assert!(t.sides[0].analysis.is_none());
    assert_eq!(t.exit_code(), 4, "an integrity failure");
    assert!(!t.is_terminal(), "the capture resource still exists");
}

#[test]
fn location_quirks_and_prerequisites() {
    // A VM in another region than its resource group: refused before anything is created.
    let s = Setup::new();
    s.az.vms.lock().unwrap().insert(
        "dest-vm".into(),
        vm_json("dest-vm", "northeurope", "VM running"),
    );
    let o = s.orch("cap_20261122T074400Z");
    let e = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap_err();
    assert!(
        matches!(e, OrchError::Prerequisite(ref m) if m.contains("northeurope") && m.contains("regional")),
        "{e}"
    );
    assert_eq!(s.az.count("capture create"), 0);
    // A VM without the Network Watcher agent: refused with the command that installs it.
    s.az.vms
        .lock()
        .unwrap()
        .insert("dest-vm".into(), vm_json("dest-vm", LOCATION, "VM running"));
    s.az.no_agent.lock().unwrap().insert("dest-vm".into());
    let e = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap_err();
    assert!(
        matches!(e, OrchError::Prerequisite(ref m) if m.contains("no Network Watcher agent") && m.contains("az vm extension set")),
        "{e}"
    );
    assert_eq!(s.az.count("capture create"), 0);
    s.az.no_agent.lock().unwrap().clear();
    // A deallocated VM, a missing VM.
    s.az.vms.lock().unwrap().insert(
        "dest-vm".into(),
        vm_json("dest-vm", LOCATION, "VM deallocated"),
    );
    let e = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");
    let e = o
        .capture_traffic(&Target::vm("ghost-vm"), &opts(30))
        .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    // Bad options never reach Azure.
    assert_eq!(
        o.capture_traffic(&Target::vm("source-vm"), &opts(0))
            .unwrap_err()
            .exit_code(),
        2
    );
    assert_eq!(
        o.capture_traffic(&Target::pair("source-vm", "source-vm"), &opts(10))
            .unwrap_err()
            .exit_code(),
        2
    );
    assert_eq!(s.az.count("capture create"), 0);
    // The resource group's region was asked once for all of this.
    assert_eq!(s.az.count("group show"), 1);
}

#[test]
fn a_denied_create_is_exit_5_and_leaves_a_terminal_failed_task() {
    let s = Setup::new();
    s.az.fail_create.lock().unwrap().insert(
        "dest-vm".into(),
        CloudError::Denied {
            reason: "denied by policy: create".into(),
            audit_id: "a-1".into(),
        },
    );
    let o = s.orch("cap_20261122T074400Z");
    let e = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap_err();
    assert_eq!(e.exit_code(), 5);
    let tasks = o.list_tasks().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state, TaskState::Failed);
    assert!(tasks[0].is_terminal());
    // The failed task does not block the VM.
    o.capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
}

#[test]
fn a_crashed_session_resumes_by_id_and_its_orphans_are_found_and_cleaned() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![running()]);
    let first = s.orch("cap_20261122T074400Z");
    let id = first
        .capture_traffic(&Target::vm("dest-vm"), &opts(600))
        .unwrap();
    drop(first); // "killed" mid-capture
                 // A capture of ours whose registry entry was lost, and an old local directory.
    s.az.add_capture(
        "ghostcap-t20261121t010000z-zzzz-vm",
        "source-vm",
        vec![running()],
    );
    let old = s.dir.path().join("captures/t20261120t010000z-old1");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("vm.cap"), b"x").unwrap();
    *s.time.now.lock().unwrap() += chrono::Duration::days(3);

    let second = s.orch("cap_20261125T074400Z");
    // Resume by id: still running in Azure.
    assert_eq!(second.check_task(&id).unwrap().state, TaskState::Running);
    // Review changes nothing. (check_task above rewrote the task under the new session, so
    // use a third session to see it as stale.)
    let third = s.orch("cap_20261125T080000Z");
    let rep = third
        .orphans(Duration::from_secs(24 * 3600), OrphanPolicy::Review)
        .unwrap();
    let kinds: Vec<(&str, &str)> = rep
        .orphans
        .iter()
        .map(|o| (o.kind.as_str(), o.what.as_str()))
        .collect();
    assert!(kinds.contains(&("stale_task", id.as_str())), "{kinds:?}");
    assert!(
        kinds.contains(&("untracked_capture", "ghostcap-t20261121t010000z-zzzz-vm")),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, w)| *k == "old_local_file" && w.ends_with("t20261120t010000z-old1")),
        "{kinds:?}"
    );
    assert!(rep.orphans.iter().all(|o| o.outcome == "review"));
    assert_eq!(s.az.count("capture delete"), 0);
    assert!(old.exists());
    // Clean: the stale task is stopped, deleted and cancelled; the untracked capture is
    // stopped and deleted; the old directory is removed. Someone else's capture is untouched.
    s.az.add_capture("not-ours", "dest-vm", vec![stopped("TimeExceeded")]);
    let rep = third
        .orphans(Duration::from_secs(24 * 3600), OrphanPolicy::Clean)
        .unwrap();
    assert!(rep.orphans.iter().all(|o| o.outcome == "done"), "{rep:#?}");
    assert_eq!(third.get_task(&id).unwrap().state, TaskState::Cancelled);
    let left: Vec<String> = s.az.captures.lock().unwrap().keys().cloned().collect();
    assert_eq!(left, vec!["not-ours".to_string()]);
    assert!(!old.exists());
    // Nothing left the next time.
    let rep = third
        .orphans(Duration::from_secs(24 * 3600), OrphanPolicy::Review)
        .unwrap();
    assert!(rep.orphans.is_empty(), "{rep:#?}");
}

#[test]
fn cancel_stops_in_azure_then_cleans_and_unknown_ids_are_usage_errors() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![running()]);
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(600))
        .unwrap();
    let t = o.cancel_task(&id, CleanupOptions::default()).unwrap();
    assert_eq!(t.state, TaskState::Cancelled);
    let calls = s.az.calls();
    let stop = calls
        .iter()
        .position(|c| c.starts_with("capture stop"))
        .unwrap();
    let del = calls
        .iter()
        .position(|c| c.starts_with("capture delete"))
        .unwrap();
    assert!(stop < del);
    // Cancelling again is a no-op.
    o.cancel_task(&id, CleanupOptions::default()).unwrap();
    assert_eq!(s.az.count("capture stop"), 1);
    let unknown = cloud_orchestrator::TaskId::parse("t20991231t000000z-none").unwrap();
    assert_eq!(o.check_task(&unknown).unwrap_err().exit_code(), 2);
}

#[test]
fn the_registry_keeps_the_newest_record_and_skips_garbage() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    let o = s.orch("cap_20261122T074400Z");
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
    let garbage = s.dir.path().join("cap_20261122T000000Z_tasks.jsonl");
    std::fs::write(&garbage, "not json\n{\"task_id\": 5}\n\u{0}\u{1}\n").unwrap();
    let before = o.list_tasks().unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].state, TaskState::Running);
    o.check_task(&id).unwrap();
    let after = o.list_tasks().unwrap();
    assert_eq!(after[0].state, TaskState::Analysed);
    assert!(after[0].revision > before[0].revision);
}

#[test]
fn local_files_are_deleted_through_the_gate() {
    let s = Setup::new();
    s.az.script("dest-vm", vec![stopped("TimeExceeded")]);
    s.az.pcap("dest-vm", clean_exchange());
    // An operator who approves nothing: the local deletion is refused (exit 5), files stay.
    let o = s.orch_with(
        "cap_20261122T074400Z",
        std::sync::Arc::new(safety_shell::approve::NeverApprover),
    );
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(30))
        .unwrap();
    let t = o.check_task(&id).unwrap();
    let file = t.sides[0].local_file.clone().unwrap();
    assert!(file.is_file());
    let e = o
        .cleanup_task(
            &id,
            CleanupOptions {
                delete_blob: false,
                delete_local: true,
            },
        )
        .unwrap_err();
    assert_eq!(e.exit_code(), 5, "{e}");
    assert!(file.is_file());
    // Approved: deleted, and the audit log holds the command.
    let o = s.orch("cap_20261122T080000Z");
    let t = o
        .cleanup_task(
            &id,
            CleanupOptions {
                delete_blob: false,
                delete_local: true,
            },
        )
        .unwrap();
    assert!(t.sides[0].local_deleted);
    assert!(!file.exists());
    let audit: String = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .contains("cap_20261122T080000Z")
                && !e.file_name().to_string_lossy().ends_with("_tasks.jsonl")
        })
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(audit.contains("rm -rf --"), "{audit}");
}

#[test]
fn an_interrupt_stops_the_capture_and_keeps_what_it_holds() {
    struct InterruptingSleeper(std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl cloud_provider::azure::Sleeper for InterruptingSleeper {
        fn sleep(&self, _: Duration) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let s = Setup::new();
    s.az.script("dest-vm", vec![running()]);
    s.az.pcap("dest-vm", syn_without_synack());
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let o = s
        .orch("cap_20261122T074400Z")
        .with_sleeper(std::sync::Arc::new(InterruptingSleeper(flag.clone())))
        .with_interrupt(flag);
    let id = o
        .capture_traffic(&Target::vm("dest-vm"), &opts(3600))
        .unwrap();
    let t = o.wait_task(&id).unwrap();
    assert_eq!(s.az.count("capture stop"), 1);
    assert_eq!(t.state, TaskState::Analysed);
    assert_eq!(t.sides[0].stop_kind, Some(StopKind::Manual));
    assert!(t.actionable());
}
