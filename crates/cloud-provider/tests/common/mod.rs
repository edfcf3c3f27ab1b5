//! A fake `az` behind the gate: an injected executor that records every argv and answers
//! with a closure, so tests run the real gate (classification, approval, audit) without
//! processes.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_provider::azure::{AzureCli, RetryPolicy, Sleeper};
use safety_shell::approve::AllRiskyApprover;
use safety_shell::audit::AuditLog;
use safety_shell::exec::{ExecError, ExecOptions, Program, RawOutput, Truncation};
use safety_shell::gate::Executor;
use safety_shell::{Gate, Target};

/// Every call: where it ran and the argv.
pub type Calls = Arc<Mutex<Vec<(Target, Vec<String>)>>>;

pub type Responder = dyn Fn(&Target, &[String]) -> RawOutput + Send + Sync;

#[derive(Clone)]
pub struct FakeExec {
    pub calls: Calls,
    pub respond: Arc<Responder>,
}

impl Executor for FakeExec {
    fn execute(
        &self,
        target: &Target,
        program: &Program,
        _opts: &ExecOptions,
    ) -> Result<RawOutput, ExecError> {
        let argv = match program {
            Program::Argv(a) => a.clone(),
            Program::Shell(s) => vec!["bash".into(), "-c".into(), s.clone()],
        };
        self.calls
            .lock()
            .unwrap()
            .push((target.clone(), argv.clone()));
        Ok((self.respond)(target, &argv))
    }
}

pub fn ok(stdout: &str) -> RawOutput {
    out(Some(0), stdout, "")
}

pub fn fail(code: i32, stderr: &str) -> RawOutput {
    out(Some(code), "", stderr)
}

pub fn out(code: Option<i32>, stdout: &str, stderr: &str) -> RawOutput {
    RawOutput {
        exit_code: code,
        signal: None,
        timed_out: false,
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
        duration: Duration::from_millis(1),
        truncation: Truncation {
            stdout: false,
            stderr: false,
            stdout_total_bytes: stdout.len() as u64,
            stderr_total_bytes: stderr.len() as u64,
        },
    }
}

/// Records the waits instead of sleeping.
#[derive(Default)]
pub struct RecordingSleeper(pub Mutex<Vec<Duration>>);

impl Sleeper for RecordingSleeper {
    fn sleep(&self, d: Duration) {
        self.0.lock().unwrap().push(d);
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub gate: Arc<Gate>,
    pub calls: Calls,
    pub sleeper: Arc<RecordingSleeper>,
    pub az: Arc<AzureCli>,
}

impl Harness {
    pub fn argvs(&self) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.clone())
            .collect()
    }
}

/// A gate that approves RISKY commands (`--approve all-risky`) over a fake az.
pub fn harness(
    respond: impl Fn(&Target, &[String]) -> RawOutput + Send + Sync + 'static,
) -> Harness {
    harness_with(respond, true)
}

pub fn harness_with(
    respond: impl Fn(&Target, &[String]) -> RawOutput + Send + Sync + 'static,
    approve: bool,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::open_in_dir(dir.path(), "cptest_20261122T070000Z").unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let exec = FakeExec {
        calls: calls.clone(),
        respond: Arc::new(respond),
    };
    let mut b = Gate::builder(audit).executor(exec);
    if approve {
        b = b.approver(AllRiskyApprover);
    }
    let gate = Arc::new(b.build());
    let sleeper = Arc::new(RecordingSleeper::default());
    let az = Arc::new(
        AzureCli::new(gate.clone(), "az")
            .with_subscription(Some("00000000-0000-0000-0000-000000000000".into()))
            .with_retry(RetryPolicy {
                max_attempts: 4,
                base: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
            })
            .with_sleeper(sleeper.clone())
            .with_rng_seed(42),
    );
    Harness {
        dir,
        gate,
        calls,
        sleeper,
        az,
    }
}

/// The value after `flag` in an argv.
pub fn opt<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

/// Whether an argv (after `az`) starts with these words.
pub fn is_cmd(argv: &[String], words: &str) -> bool {
    let w: Vec<&str> = words.split(' ').collect();
    argv.len() > w.len() && argv[1..=w.len()].iter().zip(&w).all(|(a, b)| a == b)
}

/// Azure's run-command envelope around stdout and stderr.
pub fn envelope(stdout: &str, stderr: &str) -> String {
    serde_json::json!({"value": [{
        "code": "ProvisioningState/succeeded",
        "displayStatus": "Provisioning succeeded",
        "level": "Info",
        "message": format!("Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}"),
        "time": null
    }]})
    .to_string()
}
