//! Gate overhead: `/bin/true` through the full gate (classify, approve, execute, redact,
//! audit with fsync) versus `std::process::Command` directly, in the same run.
//!
//! The gate uses the built-in classifier and `AllRiskyApprover` (so the command runs whether
//! the classifier calls it SAFE or RISKY); the audit file lives in a temporary directory
//! (fsync per record, as in production) and, in a third measurement, on tmpfs.

use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion};
use safety_shell::approve::AllRiskyApprover;
use safety_shell::audit::AuditLog;
use safety_shell::gate::Gate;
use safety_shell::Target;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let audit = AuditLog::open_in_dir(dir.path(), "bench_gate").expect("audit log");
    let gate = Gate::builder(audit).approver(AllRiskyApprover).build();
    let mut g = c.benchmark_group("true");
    g.sample_size(50);
    g.bench_function("direct_std_process_command", |b| {
        b.iter(|| {
            let st = Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .expect("run /bin/true");
            assert!(st.status.success());
        })
    });
    g.bench_function("through_gate", |b| {
        b.iter(|| {
            let r = gate
                .run_argv(&Target::Local, &["/bin/true"], "benchmark")
                .expect("gate runs /bin/true");
            assert_eq!(r.exit_code, Some(0));
        })
    });
    // The same gate with its audit file on tmpfs: the gate's own cost without the disk's
    // fsync latency (which dominates on slow virtual disks).
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        let sdir = tempfile::tempdir_in(shm).expect("temp dir in /dev/shm");
        let audit = AuditLog::open_in_dir(sdir.path(), "bench_gate_shm").expect("audit log");
        let gate = Gate::builder(audit).approver(AllRiskyApprover).build();
        g.bench_function("through_gate_audit_on_tmpfs", |b| {
            b.iter(|| {
                let r = gate
                    .run_argv(&Target::Local, &["/bin/true"], "benchmark")
                    .expect("gate runs /bin/true");
                assert_eq!(r.exit_code, Some(0));
            })
        });
    } else {
        println!("SKIP through_gate_audit_on_tmpfs: /dev/shm is not available");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
