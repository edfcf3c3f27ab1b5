//! Tasks, their sides and states, capture options and filters.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::OrchError;

/// Schema version of registry records and result documents.
pub const SCHEMA_VERSION: u32 = 1;

/// A task id: `t<YYYYMMDDTHHMMSSZ>-<4 random>` (lower case), safe in paths and capture names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// Validates a user-given id (`[a-z0-9-]`, 6-40 characters, starting with `t`).
    pub fn parse(s: &str) -> Result<TaskId, OrchError> {
        let ok = (6..=40).contains(&s.len())
            && s.starts_with('t')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(TaskId(s.to_string()))
        } else {
            Err(OrchError::InvalidTaskId(s.chars().take(80).collect()))
        }
    }

    /// A new id for `now` with a random suffix.
    pub fn generate(now: DateTime<Utc>, rng: &mut impl rand::Rng) -> TaskId {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let suffix: String = (0..4)
            .map(|_| A[rng.gen_range(0..A.len())] as char)
            .collect();
        TaskId(format!(
            "t{}-{suffix}",
            now.format("%Y%m%dt%H%M%Sz").to_string().to_lowercase()
        ))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TaskId::parse(&s).map_err(|e| e.to_string())
    }
}

impl From<TaskId> for String {
    fn from(t: TaskId) -> String {
        t.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle states. The happy path is ordered: a task (or a side) only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Registered; the capture is being created in Azure.
    Created,
    /// Azure reported the capture running (or accepted it).
    Running,
    /// The capture stopped (by us, its time or byte limit, or Azure).
    Stopped,
    /// The capture file is local and verified.
    Downloaded,
    /// pcap-forensics analysed it; the result is attached.
    Analysed,
    /// The capture resource (and what was asked besides) is deleted.
    Cleaned,
    /// Something failed; the error says what. Results of other sides are kept.
    Failed,
    /// The operator cancelled it (stopped in Azure, then cleaned up).
    Cancelled,
}

impl TaskState {
    /// `created`, `running`, …
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Created => "created",
            TaskState::Running => "running",
            TaskState::Stopped => "stopped",
            TaskState::Downloaded => "downloaded",
            TaskState::Analysed => "analysed",
            TaskState::Cleaned => "cleaned",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role of a side in a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The only VM of a single-VM task.
    Vm,
    /// The sender of a pair.
    Source,
    /// The receiver of a pair.
    Dest,
}

impl Role {
    /// `vm`, `source`, `dest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Vm => "vm",
            Role::Source => "source",
            Role::Dest => "dest",
        }
    }

    /// The short form used in capture names.
    pub fn short(self) -> &'static str {
        match self {
            Role::Vm => "vm",
            Role::Source => "src",
            Role::Dest => "dst",
        }
    }
}

/// What to capture on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The VM (the source of a pair).
    pub vm: String,
    /// The other end of a pair ("vm to dest").
    #[serde(default)]
    pub to: Option<String>,
}

impl Target {
    /// One VM.
    pub fn vm(vm: impl Into<String>) -> Target {
        Target {
            vm: vm.into(),
            to: None,
        }
    }

    /// A pair captured at both ends.
    pub fn pair(src: impl Into<String>, dst: impl Into<String>) -> Target {
        Target {
            vm: src.into(),
            to: Some(dst.into()),
        }
    }
}

/// One Network Watcher filter, from the point of view of the VM that captures
/// (`local` = that VM). Fields left `None` match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureFilter {
    /// `TCP`, `UDP` or `Any`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Local address (or range/list as Azure takes it).
    #[serde(default)]
    pub local_ip: Option<String>,
    /// Remote address.
    #[serde(default)]
    pub remote_ip: Option<String>,
    /// Local port(s).
    #[serde(default)]
    pub local_port: Option<String>,
    /// Remote port(s).
    #[serde(default)]
    pub remote_port: Option<String>,
}

impl CaptureFilter {
    /// Parses `key=value,key=value` with keys `protocol`, `local-ip`, `remote-ip`,
    /// `local-port`, `remote-port` (e.g. `protocol=TCP,local-port=5001`).
    pub fn parse(s: &str) -> Result<CaptureFilter, OrchError> {
        let mut f = CaptureFilter::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                OrchError::InvalidOption(format!(
                    "filter part {part:?} is not key=value (keys: protocol, local-ip, remote-ip, local-port, remote-port)"
                ))
            })?;
            let v = v.trim();
            let ok = !v.is_empty()
                && v.len() <= 200
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-;/".contains(&b));
            if !ok {
                return Err(OrchError::InvalidOption(format!(
                    "filter value {v:?} for {k} may only hold letters, digits and . : - ; /"
                )));
            }
            let raw = v.to_string();
            let v = Some(raw.clone());
            match k.trim().to_ascii_lowercase().as_str() {
                "protocol" | "proto" => {
                    let p = match raw.to_ascii_uppercase().as_str() {
                        "TCP" => "TCP",
                        "UDP" => "UDP",
                        "ANY" => "Any",
                        _ => {
                            return Err(OrchError::InvalidOption(format!(
                                "filter protocol {raw:?} is not TCP, UDP or Any"
                            )))
                        }
                    };
                    f.protocol = Some(p.into());
                }
                "local-ip" | "local_ip" => f.local_ip = v,
                "remote-ip" | "remote_ip" => f.remote_ip = v,
                "local-port" | "local_port" => f.local_port = v,
                "remote-port" | "remote_port" => f.remote_port = v,
                other => {
                    return Err(OrchError::InvalidOption(format!(
                        "unknown filter key {other:?} (keys: protocol, local-ip, remote-ip, local-port, remote-port)"
                    )))
                }
            }
        }
        Ok(f)
    }

    /// The same traffic seen from the other end: local and remote swapped.
    pub fn mirrored(&self) -> CaptureFilter {
        CaptureFilter {
            protocol: self.protocol.clone(),
            local_ip: self.remote_ip.clone(),
            remote_ip: self.local_ip.clone(),
            local_port: self.remote_port.clone(),
            remote_port: self.local_port.clone(),
        }
    }

    /// The Azure JSON object (`protocol`, `localIPAddress`, …).
    pub fn to_azure(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(
            "protocol".into(),
            self.protocol.clone().unwrap_or_else(|| "Any".into()).into(),
        );
        for (k, v) in [
            ("localIPAddress", &self.local_ip),
            ("remoteIPAddress", &self.remote_ip),
            ("localPort", &self.local_port),
            ("remotePort", &self.remote_port),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        serde_json::Value::Object(m)
    }
}

/// The `--filters` JSON array of a list of filters (`None` for no filter).
pub fn filters_json(filters: &[CaptureFilter]) -> Option<String> {
    if filters.is_empty() {
        return None;
    }
    let v: Vec<serde_json::Value> = filters.iter().map(CaptureFilter::to_azure).collect();
    serde_json::to_string(&v).ok()
}

/// Options of a capture task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureOptions {
    /// Time limit in seconds (Azure: 1-18000).
    pub duration_secs: u32,
    /// Byte limit of each session (Azure `--capture-limit`), if any.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Bytes kept per packet (0 = all).
    #[serde(default)]
    pub bytes_per_packet: Option<u32>,
    /// Filters, from the point of view of the first VM (mirrored for the other end).
    #[serde(default)]
    pub filters: Vec<CaptureFilter>,
    /// Why (recorded in the audit log of every gated call).
    #[serde(default)]
    pub reason: String,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            duration_secs: 60,
            max_bytes: None,
            bytes_per_packet: None,
            filters: Vec::new(),
            reason: String::new(),
        }
    }
}

impl CaptureOptions {
    /// Checks the limits Azure enforces.
    pub fn validate(&self) -> Result<(), OrchError> {
        if !(1..=18000).contains(&self.duration_secs) {
            return Err(OrchError::InvalidOption(format!(
                "duration {} s is outside Azure's 1-18000 seconds",
                self.duration_secs
            )));
        }
        if let Some(b) = self.max_bytes {
            if !(1024..=4_294_967_295).contains(&b) {
                return Err(OrchError::InvalidOption(format!(
                    "max bytes {b} is outside 1024-4294967295 (Azure's session limit)"
                )));
            }
        }
        Ok(())
    }
}

/// Why a capture stopped, read from Azure's `stopReason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopKind {
    /// The time limit ran out.
    TimeLimit,
    /// The byte limit of the session was reached.
    ByteLimit,
    /// Stopped by a request (ours or someone's).
    Manual,
    /// Azure stopped it with an error.
    Error,
    /// A reason this tool does not know.
    Other,
}

impl StopKind {
    /// Classifies a `stopReason` (`TimeExceeded`, `SessionMaximumBytesLimitExceeded`, `ManualIntervention`, …).
    pub fn classify(reason: Option<&str>, status: Option<&str>) -> StopKind {
        let r = reason.unwrap_or("").to_ascii_lowercase();
        if status.is_some_and(|s| s.eq_ignore_ascii_case("error")) || r == "error" {
            StopKind::Error
        } else if r.contains("byte") || r.contains("size") {
            StopKind::ByteLimit
        } else if r.contains("time") {
            StopKind::TimeLimit
        } else if r.contains("manual") || r.contains("user") {
            StopKind::Manual
        } else {
            StopKind::Other
        }
    }
}

/// Where a capture blob is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// Storage account.
    pub account: String,
    /// Container.
    pub container: String,
    /// Blob name.
    pub name: String,
}

/// One finding of the attached analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingSummary {
    /// `F001`, …
    pub id: String,
    /// The rule (`xproto.filtered_port`, …).
    pub rule: String,
    /// `info` … `critical`.
    pub severity: String,
    /// One line.
    pub title: String,
    /// What was measured.
    pub measured: String,
}

/// The pcap-forensics analysis attached to a side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSummary {
    /// The semantic JSON written next to the capture.
    pub semantic_file: PathBuf,
    /// Packets read.
    pub packets: u64,
    /// Findings, ranked.
    pub findings: Vec<FindingSummary>,
    /// True when a finding is medium or above.
    pub actionable: bool,
}

/// One capture of a task (one VM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Its role.
    pub role: Role,
    /// The VM.
    pub vm: String,
    /// The Network Watcher capture name (`ghostcap-<task>-<role>`).
    pub capture_name: String,
    /// Its state.
    pub state: TaskState,
    /// Filters as sent (from this VM's point of view).
    pub filters: Vec<CaptureFilter>,
    /// Last `packetCaptureStatus` seen.
    #[serde(default)]
    pub azure_status: Option<String>,
    /// Last `stopReason` seen.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// How it stopped.
    #[serde(default)]
    pub stop_kind: Option<StopKind>,
    /// True when it stopped at its byte or time limit before the task asked it to stop
    /// (a byte limit always counts; a time limit counts when the capture ran shorter than the
    /// requested duration).
    #[serde(default)]
    pub stopped_early: bool,
    /// When Azure says it started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Azure's `storagePath`.
    #[serde(default)]
    pub storage_path: Option<String>,
    /// The blob.
    #[serde(default)]
    pub blob: Option<BlobRef>,
    /// The downloaded file.
    #[serde(default)]
    pub local_file: Option<PathBuf>,
    /// Its size in bytes (verified against the blob).
    #[serde(default)]
    pub bytes: Option<u64>,
    /// `pcap` or `pcapng`.
    #[serde(default)]
    pub format: Option<String>,
    /// The attached analysis.
    #[serde(default)]
    pub analysis: Option<AnalysisSummary>,
    /// What failed (the side is then `failed`).
    #[serde(default)]
    pub error: Option<String>,
    /// The exit code class of that failure: 3 runtime, 4 integrity (verification).
    #[serde(default)]
    pub error_code: Option<i32>,
    /// Whether the capture resource is deleted in Azure.
    #[serde(default)]
    pub capture_deleted: bool,
    /// Whether the blob is deleted.
    #[serde(default)]
    pub blob_deleted: bool,
    /// Whether the local files are deleted.
    #[serde(default)]
    pub local_deleted: bool,
}

impl Side {
    /// A new side in state `created`.
    pub fn new(task: &TaskId, role: Role, vm: &str, filters: Vec<CaptureFilter>) -> Side {
        Side {
            role,
            vm: vm.to_string(),
            capture_name: capture_name(task, role),
            state: TaskState::Created,
            filters,
            azure_status: None,
            stop_reason: None,
            stop_kind: None,
            stopped_early: false,
            started_at: None,
            storage_path: None,
            blob: None,
            local_file: None,
            bytes: None,
            format: None,
            analysis: None,
            error: None,
            error_code: None,
            capture_deleted: false,
            blob_deleted: false,
            local_deleted: false,
        }
    }

    /// Marks the side failed with a message, keeping everything it already has.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.fail_with(3, msg)
    }

    /// Marks the side failed with an exit-code class (3 runtime, 4 integrity).
    pub fn fail_with(&mut self, code: i32, msg: impl Into<String>) {
        self.state = TaskState::Failed;
        self.error = Some(msg.into());
        self.error_code = Some(code);
    }

    /// Whether the capture may still run in Azure.
    pub fn may_be_active(&self) -> bool {
        !self.capture_deleted && matches!(self.state, TaskState::Created | TaskState::Running)
    }
}

/// `ghostcap-<task>-<role>`.
pub fn capture_name(task: &TaskId, role: Role) -> String {
    format!(
        "{}{}-{}",
        crate::CAPTURE_PREFIX,
        task.as_str(),
        role.short()
    )
}

/// The task a capture name of ours belongs to, with the role.
pub fn parse_capture_name(name: &str) -> Option<(TaskId, Role)> {
    let rest = name.strip_prefix(crate::CAPTURE_PREFIX)?;
    let (task, role) = rest.rsplit_once('-')?;
    let role = match role {
        "vm" => Role::Vm,
        "src" => Role::Source,
        "dst" => Role::Dest,
        _ => return None,
    };
    Some((TaskId::parse(task).ok()?, role))
}

/// A task as the registry stores it (one JSON line per transition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Record schema.
    pub schema_version: u32,
    /// `cloud-orchestrator`.
    pub tool: String,
    /// This tool's version.
    pub tool_version: String,
    /// The task.
    pub task_id: TaskId,
    /// The session that created the task.
    pub session_id: String,
    /// The session that wrote this record.
    pub written_by: String,
    /// Incremented by every write (the highest wins).
    pub revision: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of this record.
    pub updated_at: DateTime<Utc>,
    /// Resource group of the VMs.
    pub resource_group: String,
    /// The Network Watcher region (resolved once from the resource group).
    pub location: String,
    /// What is captured.
    pub target: Target,
    /// Options.
    pub options: CaptureOptions,
    /// The overall state (see [`TaskRecord::overall_state`]).
    pub state: TaskState,
    /// One side per VM, labelled by role.
    pub sides: Vec<Side>,
    /// Prerequisite checks, one line each (`ok: …`, `not checked: …`).
    #[serde(default)]
    pub prerequisites: Vec<String>,
    /// The endpoint comparison of a pair (pcap-forensics compare), when both sides analysed.
    #[serde(default)]
    pub comparison: Option<serde_json::Value>,
    /// Short history: `<time> <state> <note>`.
    #[serde(default)]
    pub events: Vec<String>,
}

impl TaskRecord {
    /// The overall state: cancelled if cancelled; failed when every side failed; otherwise
    /// the least advanced state of the sides that did not fail.
    pub fn overall_state(&self) -> TaskState {
        if self.state == TaskState::Cancelled {
            return TaskState::Cancelled;
        }
        self.sides
            .iter()
            .filter(|s| s.state != TaskState::Failed)
            .map(|s| s.state)
            .min()
            .unwrap_or(TaskState::Failed)
    }

    /// Whether the task needs nothing more (cleaned, cancelled, or failed with every capture
    /// resource gone).
    pub fn is_terminal(&self) -> bool {
        match self.state {
            TaskState::Cleaned | TaskState::Cancelled => true,
            TaskState::Failed => self.sides.iter().all(|s| s.capture_deleted),
            _ => false,
        }
    }

    /// The side with this role.
    pub fn side(&self, role: Role) -> Option<&Side> {
        self.sides.iter().find(|s| s.role == role)
    }

    /// The exit code of the conventions for this task: 4 when a side failed verification and
    /// nothing was analysed, 3 when the task failed, 1 when an attached analysis has a
    /// medium-or-above finding, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.state == TaskState::Failed {
            if self.sides.iter().any(|s| s.error_code == Some(4)) {
                4
            } else {
                3
            }
        } else if self.actionable() {
            1
        } else {
            0
        }
    }

    /// True when an attached analysis has a medium-or-above finding.
    pub fn actionable(&self) -> bool {
        self.sides
            .iter()
            .any(|s| s.analysis.as_ref().is_some_and(|a| a.actionable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_and_capture_names_round_trip() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T07:44:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut rng = rand::rngs::mock::StepRng::new(0, 1);
        let id = TaskId::generate(now, &mut rng);
        assert!(id.as_str().starts_with("t20261122t074400z-"), "{id}");
        assert_eq!(TaskId::parse(id.as_str()).unwrap(), id);
        let n = capture_name(&id, Role::Dest);
        assert_eq!(n, format!("ghostcap-{id}-dst"));
        assert_eq!(parse_capture_name(&n), Some((id.clone(), Role::Dest)));
        assert_eq!(parse_capture_name("ghostcap-x-dst"), None);
        assert_eq!(parse_capture_name("other-capture"), None);
        for bad in ["", "../../etc", "T1234567", "t123;rm", "tabc def"] {
            assert!(TaskId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_parse_mirror_and_render() {
        let f = CaptureFilter::parse("protocol=tcp,local-ip=198.18.1.4,remote-port=5001").unwrap();
        assert_eq!(f.protocol.as_deref(), Some("TCP"));
        let m = f.mirrored();
        assert_eq!(m.remote_ip.as_deref(), Some("198.18.1.4"));
        assert_eq!(m.local_port.as_deref(), Some("5001"));
        assert_eq!(m.remote_port, None);
        assert_eq!(
            filters_json(&[m]).unwrap(),
            r#"[{"localPort":"5001","protocol":"TCP","remoteIPAddress":"198.18.1.4"}]"#
        );
        assert!(filters_json(&[]).is_none());
        for bad in [
            "protocol=icmp",
            "port=80",
            "local-port=80 ;rm",
            "local-ip",
            "local-ip=",
        ] {
            assert!(CaptureFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stop_reasons_are_classified() {
        use StopKind::*;
        assert_eq!(
            StopKind::classify(Some("TimeExceeded"), Some("Stopped")),
            TimeLimit
        );
        assert_eq!(
            StopKind::classify(Some("SessionMaximumBytesLimitExceeded"), Some("Stopped")),
            ByteLimit
        );
        assert_eq!(
            StopKind::classify(Some("ManualIntervention"), Some("Stopped")),
            Manual
        );
        assert_eq!(StopKind::classify(None, Some("Error")), Error);
        assert_eq!(StopKind::classify(Some("Whatever"), Some("Stopped")), Other);
    }

    #[test]
    fn overall_state_keeps_the_surviving_side() {
        let id = TaskId::parse("t20261122t074400z-abcd").unwrap();
        let mut a = Side::new(&id, Role::Source, "src", vec![]);
        let mut b = Side::new(&id, Role::Dest, "dst", vec![]);
        a.state = TaskState::Analysed;
        b.fail("agent stopped");
        let mut t = TaskRecord {
            schema_version: SCHEMA_VERSION,
            tool: "cloud-orchestrator".into(),
            tool_version: "0".into(),
            task_id: id,
            session_id: "cap_x".into(),
            written_by: "cap_x".into(),
            revision: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            resource_group: "rg".into(),
            location: "westeurope".into(),
            target: Target::pair("src", "dst"),
            options: CaptureOptions::default(),
            state: TaskState::Running,
            sides: vec![a, b],
            prerequisites: vec![],
            comparison: None,
            events: vec![],
        };
        assert_eq!(t.overall_state(), TaskState::Analysed);
        t.sides[0].fail("download");
        assert_eq!(t.overall_state(), TaskState::Failed);
        t.state = TaskState::Failed;
        assert!(!t.is_terminal());
        t.sides.iter_mut().for_each(|s| s.capture_deleted = true);
        assert!(t.is_terminal());
    }
}
