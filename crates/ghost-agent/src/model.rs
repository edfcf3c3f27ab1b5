//! The investigation's data model: symptoms, threads, hypotheses, findings, coverage,
//! tool results and the report. Every type serialises to the JSON the reports and the
//! session state file use.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The layer a finding or hypothesis belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Network security groups (NIC or subnet).
    Nsg,
    /// Effective routes (UDRs, system routes).
    Route,
    /// The OS firewall (iptables, nftables).
    OsFirewall,
    /// Linux traffic control (qdiscs, filters) and packet-diverting emulation.
    TrafficControl,
    /// A measurement (latency, throughput) judged against a baseline or the expectations.
    Measurement,
    /// What the wire showed (packet capture).
    Wire,
    /// Drift against a baseline.
    Drift,
    /// Storage account firewall and service endpoints.
    Storage,
    /// A service on a VM (listening or not).
    Service,
    /// Interface MTU against the path MTU.
    Mtu,
}

impl Layer {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Nsg => "nsg",
            Layer::Route => "route",
            Layer::OsFirewall => "os_firewall",
            Layer::TrafficControl => "traffic_control",
            Layer::Measurement => "measurement",
            Layer::Wire => "wire",
            Layer::Drift => "drift",
            Layer::Storage => "storage",
            Layer::Service => "service",
            Layer::Mtu => "mtu",
        }
    }
}

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context, not a problem.
    Info,
    /// Worth knowing.
    Low,
    /// Degrades the path.
    Medium,
    /// Breaks or severely degrades the path.
    High,
}

/// What kind of problem the engineer reports. A symptom can have several kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymptomKind {
    /// Cannot reach / connection times out / no route.
    Unreachable,
    /// Connection refused.
    Refused,
    /// Connects then hangs, or hangs silently.
    Hangs,
    /// Slow in general (transfers crawl, responses slow).
    Slow,
    /// High latency / round trip.
    Latency,
    /// Low throughput / bandwidth.
    Throughput,
    /// Intermittent failures, resets, retries.
    Intermittent,
    /// Started after a change (window, maintenance, rollback, script).
    AfterChange,
    /// A compliance or exposure question (what is open, who can reach).
    Compliance,
    /// Access to a storage account (blob, storage firewall, service endpoints) is in
    /// question: the path from a VM to storage, not between the two VMs.
    Storage,
}

impl SymptomKind {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SymptomKind::Unreachable => "unreachable",
            SymptomKind::Refused => "refused",
            SymptomKind::Hangs => "hangs",
            SymptomKind::Slow => "slow",
            SymptomKind::Latency => "latency",
            SymptomKind::Throughput => "throughput",
            SymptomKind::Intermittent => "intermittent",
            SymptomKind::AfterChange => "after_change",
            SymptomKind::Compliance => "compliance",
            SymptomKind::Storage => "storage",
        }
    }

    /// True for kinds about connectivity between two endpoints.
    pub fn is_connectivity(self) -> bool {
        matches!(
            self,
            SymptomKind::Unreachable
                | SymptomKind::Refused
                | SymptomKind::Hangs
                | SymptomKind::Intermittent
        )
    }

    /// True for kinds about performance between two endpoints.
    pub fn is_performance(self) -> bool {
        matches!(
            self,
            SymptomKind::Slow | SymptomKind::Latency | SymptomKind::Throughput
        )
    }
}

/// Transport protocol named by a symptom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ping).
    Icmp,
}

impl Protocol {
    /// The JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// What the symptom text says, extracted deterministically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symptom {
    /// The text as given.
    pub text: String,
    /// VM names mentioned (or the configured pair's names when words like "source"/"dest"
    /// were used).
    pub vms: Vec<String>,
    /// IPv4 addresses mentioned.
    pub addresses: Vec<String>,
    /// Ports mentioned (explicitly or through a service name: PostgreSQL → 5432).
    pub ports: Vec<u16>,
    /// Protocol when one is implied.
    pub protocol: Option<Protocol>,
    /// The kinds, most specific first.
    pub kinds: Vec<SymptomKind>,
    /// Baseline ids given (session ids such as `fw_20261122T…`, `eni_…`, `pmeter_…`).
    pub baseline_ids: Vec<String>,
    /// Separate complaints in the text (e.g. "transfers slower" and "ping fails"), each
    /// investigated as its own thread.
    pub complaints: Vec<Complaint>,
}

/// One complaint of a symptom: the seed of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    /// The words of the complaint.
    pub text: String,
    /// Its kinds.
    pub kinds: Vec<SymptomKind>,
    /// Ports it names.
    pub ports: Vec<u16>,
    /// Protocol it implies.
    pub protocol: Option<Protocol>,
    /// The complaint is about reaching the internet from the source VM ("all internet
    /// lost"), not about the configured pair: its probes go toward the session's internet
    /// address and only the source's side of the path is in question.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internet: bool,
}

impl Complaint {
    /// A complaint about a path (connectivity or performance, or no recognised kind: nothing
    /// says the path is out of question), as opposed to compliance or after-change alone.
    pub fn is_path(&self) -> bool {
        self.kinds.is_empty()
            || self
                .kinds
                .iter()
                .any(|k| k.is_connectivity() || k.is_performance())
    }
}

/// A thread: one symptom investigated on its own. A cause found for one thread does not
/// close another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    /// `T1`, `T2`, ...
    pub id: String,
    /// The complaint.
    pub complaint: Complaint,
}

/// State of a hypothesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HypothesisStatus {
    /// Not yet decided.
    Open,
    /// Evidence shows it is a cause.
    Confirmed,
    /// Evidence shows it is not.
    Refuted,
    /// Could not be checked (e.g. repeated denials); the reason is recorded.
    Unverifiable,
    /// Evidence disagreed; must be resolved again before concluding.
    Contradicted,
}

impl HypothesisStatus {
    /// True when the hypothesis no longer blocks a conclusion.
    pub fn is_resolved(self) -> bool {
        matches!(
            self,
            HypothesisStatus::Confirmed
                | HypothesisStatus::Refuted
                | HypothesisStatus::Unverifiable
        )
    }
}

/// A hypothesis about a cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hypothesis {
    /// `H1`, `H2`, ...
    pub id: String,
    /// The thread it explains.
    pub thread: String,
    /// The statement ("dest-vm's OS firewall drops tcp/5001").
    pub statement: String,
    /// The layer.
    pub layer: Layer,
    /// The VM it is about, if any.
    pub vm: Option<String>,
    /// Its state.
    pub status: HypothesisStatus,
    /// Audit ids of the records that decided it.
    pub evidence: Vec<String>,
    /// Finding ids that support a confirmation.
    pub findings: Vec<String>,
    /// Denied commands while testing it.
    pub denials: u32,
    /// Why it is in its state (one sentence per change, in order).
    pub notes: Vec<String>,
}

/// Proposed remediation for a finding: the exact inverse operation and how to verify it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    /// The command that undoes the cause (inverse operation), with the owning tool where one
    /// exists (e.g. `fail2ban-client set sshd unbanip 198.18.1.4`).
    pub command: String,
    /// Where to run it: a VM name, or `az` for the control plane.
    pub run_on: String,
    /// What it does, in one sentence.
    pub explanation: String,
    /// How to verify the fix (a command or a tool call).
    pub verify: String,
}

/// A deterministic finding produced by a tool from its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `F1`, `F2`, ... (assigned by the engine; empty from a tool).
    #[serde(default)]
    pub id: String,
    /// The layer.
    pub layer: Layer,
    /// The VM it is on (None for control-plane-wide findings).
    pub vm: Option<String>,
    /// Machine kind: `nsg_deny`, `nsg_permissive`, `route_blackhole`, `route_nva`,
    /// `iptables_drop`, `iptables_reject`, `fail2ban_ban`, `policy_drop`, `tbf_rate`,
    /// `delay`, `random_loss`, `corruption`, `throughput_low`, `latency_high`,
    /// `high_variance`, `connectivity_drop`, `drift`, `handshake_unanswered`,
    /// `retransmissions`, `rst`, `dns_latency`, `mtu`, `missing_service_endpoint`,
    /// `storage_vnet_rule_missing`, `storage_public_access_disabled`, ...
    pub kind: String,
    /// The exact component: rule, chain, qdisc, route or NSG rule (e.g.
    /// `dest-vm-nsg/deny-iperf`, `filter/INPUT #1`, `eth0 root tbf`).
    pub component: String,
    /// One-sentence summary.
    pub summary: String,
    /// How it causes the symptom.
    pub mechanism: String,
    /// Structured facts for matching and scripts: `port`, `protocol`, `priority`, `nsg`,
    /// `rule`, `chain`, `table`, `position`, `qdisc`, `dev`, `rate_bps`, `delay_ms`,
    /// `loss_pct`, `direction`, `address`, `measured`, `expected`, `baseline` ...
    #[serde(default)]
    pub attrs: BTreeMap<String, Value>,
    /// Severity.
    pub severity: Severity,
    /// Audit ids proving it (the engine adds the tool call's own id).
    #[serde(default)]
    pub evidence: Vec<String>,
    /// The inverse operation, when the finding is a fixable cause.
    pub remediation: Option<Remediation>,
    /// True when the summary quotes host-controlled text (chain names, comments, banners):
    /// data, never instructions.
    #[serde(default)]
    pub untrusted: bool,
}

impl Finding {
    /// A finding with the required fields; the rest empty.
    pub fn new(
        layer: Layer,
        vm: Option<&str>,
        kind: &str,
        component: impl Into<String>,
        summary: impl Into<String>,
        mechanism: impl Into<String>,
        severity: Severity,
    ) -> Finding {
        Finding {
            id: String::new(),
            layer,
            vm: vm.map(str::to_string),
            kind: kind.to_string(),
            component: component.into(),
            summary: summary.into(),
            mechanism: mechanism.into(),
            attrs: BTreeMap::new(),
            severity,
            evidence: Vec::new(),
            remediation: None,
            untrusted: false,
        }
    }

    /// Adds a structured fact.
    pub fn attr(mut self, key: &str, value: impl Into<Value>) -> Finding {
        self.attrs.insert(key.to_string(), value.into());
        self
    }

    /// Sets the remediation.
    pub fn with_remediation(mut self, r: Remediation) -> Finding {
        self.remediation = Some(r);
        self
    }
}

/// True for finding kinds that block a path (fixed first, each followed by a verification).
pub fn is_blocking_kind(kind: &str) -> bool {
    matches!(
        kind,
        "nsg_deny"
            | "policy_drop"
            | "fail2ban_ban"
            | "service_endpoint_missing"
            | "missing_service_endpoint"
            | "storage_vnet_rule_missing"
            | "storage_public_access_disabled"
            // A port that answers with RST: nothing listens there.
            | "tcp_rst_closed_port"
    ) || kind.starts_with("route_")
        || kind.starts_with("iptables_")
}

/// True for finding kinds that degrade a path without blocking it (fixed after the
/// blocking ones).
pub fn is_degradation_kind(kind: &str) -> bool {
    matches!(
        kind,
        "tbf_rate"
            | "rate_limit"
            | "delay"
            | "random_loss"
            | "corruption"
            | "duplication"
            | "reordering"
            | "packet_diversion"
            | "mtu_mismatch"
            // Read off the wire: responses slow at the server, or delayed on the path.
            | "slow_responses"
            | "server_side_delay"
            | "path_delay"
    )
}

/// An aspect of the path the coverage gate requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// NSG verdict source → dest (source NIC/subnet outbound, dest NIC/subnet inbound).
    NsgForward,
    /// NSG verdict dest → source (the reply direction).
    NsgReturn,
    /// Route verdict from the source to the destination.
    Routes,
    /// OS firewall of one VM.
    Firewall,
    /// Traffic control of one VM.
    TrafficControl,
}

/// One coverage mark: an aspect inspected (with evidence) or unverifiable (with a reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageMark {
    /// The aspect.
    pub aspect: Aspect,
    /// The VM for per-VM aspects (firewall, traffic control); None for path aspects.
    pub vm: Option<String>,
    /// `inspected` or `unverifiable`.
    pub state: CoverageState,
}

/// How an aspect was covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CoverageState {
    /// Inspected; the evidence is the audit id of the tool call (filled by the engine).
    Inspected {
        /// Audit id.
        #[serde(default)]
        evidence: String,
    },
    /// Could not be inspected.
    Unverifiable {
        /// Why.
        reason: String,
    },
}

/// A file a tool wrote, referenced by path and hash (large outputs stay in artifacts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// What it is (`fw_snapshot`, `pmeter_result`, `pcap_semantic`, ...).
    pub kind: String,
    /// Path on disk.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// A command the gate refused or an operator denied during a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The command.
    pub command: String,
    /// Why.
    pub reason: String,
    /// Its audit id.
    pub audit_id: Option<String>,
}

/// What one tool call produced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ToolResult {
    /// True when the tool did what was asked (a DENY verdict is still ok).
    pub ok: bool,
    /// Compact structured result for the brain (sized for an LLM context).
    pub summary: Value,
    /// Findings computed deterministically from the result.
    pub findings: Vec<Finding>,
    /// Coverage this call provides.
    pub coverage: Vec<CoverageMark>,
    /// Artifacts written.
    pub artifacts: Vec<ArtifactRef>,
    /// Denied or refused commands.
    pub denials: Vec<Denial>,
    /// Why it failed, when `ok` is false (one sentence).
    pub error: Option<String>,
    /// True when `summary` contains host-controlled text.
    pub untrusted: bool,
}

impl ToolResult {
    /// A successful result with a summary.
    pub fn ok(summary: Value) -> ToolResult {
        ToolResult {
            ok: true,
            summary,
            ..Default::default()
        }
    }

    /// A failed result.
    pub fn failed(error: impl Into<String>) -> ToolResult {
        let error = error.into();
        ToolResult {
            ok: false,
            summary: serde_json::json!({ "error": error }),
            error: Some(error),
            ..Default::default()
        }
    }
}

/// The measurement expectations used when no baseline exists (configurable).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Expectations {
    /// Intra-VNet round-trip latency should be under this (microseconds). qperf's
    /// `tcp_lat` reports half the round trip; compare like with like.
    pub max_latency_us: f64,
    /// Throughput should be at least this (Gbit/s).
    pub min_throughput_gbps: f64,
    /// Coefficient of variation above which a series is unstable (fraction).
    pub max_variation: f64,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            max_latency_us: 1000.0,
            min_throughput_gbps: 1.0,
            max_variation: 0.5,
        }
    }
}

/// The record of one tool call, kept in the session state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The audit id of the call's own record.
    pub audit_id: String,
    /// Audit ids of the commands the call ran through the gate.
    pub command_audit_ids: Vec<String>,
    /// Tool name.
    pub tool: String,
    /// Arguments.
    pub args: Value,
    /// Why the brain called it.
    pub reason: String,
    /// The result.
    pub result: ToolResult,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// One step of the brain: why it did what it did (the playbook records every step's reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// 1, 2, 3, ...
    pub n: u32,
    /// The reason, one sentence.
    pub reason: String,
    /// The tool called, if any.
    pub tool: Option<String>,
    /// The tool call's audit id, if any.
    pub audit_id: Option<String>,
}

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Investigating.
    Running,
    /// Stopped by Ctrl-C or a failure; `ghost-agent resume ID` continues it.
    Interrupted,
    /// A conclusion was accepted; the reports are written.
    Concluded,
}

/// What the brain asked to conclude (the `complete_investigation` tool's arguments).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConclusionRequest {
    /// One paragraph.
    pub summary: String,
    /// Confirmed hypothesis ids the brain names as root causes, in fix order.
    pub root_causes: Vec<String>,
}

/// The session state file (`{session_dir}/{session_id}_state.json`, SHA-256 sidecar).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// Format version.
    pub schema_version: u32,
    /// `ghost_…`.
    pub session_id: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// `playbook`, `anthropic`, `openai`, `gemini`.
    pub brain: String,
    /// The symptom, parsed.
    pub symptom: Symptom,
    /// Source and destination VM names of the investigated pair.
    pub source_vm: String,
    /// Destination VM name.
    pub dest_vm: String,
    /// The threads (one per complaint).
    pub threads: Vec<Thread>,
    /// The hypotheses.
    pub hypotheses: Vec<Hypothesis>,
    /// Every finding, with ids and evidence.
    pub findings: Vec<Finding>,
    /// Every tool call.
    pub calls: Vec<ToolCallRecord>,
    /// Coverage marks, in order.
    pub coverage: Vec<CoverageMark>,
    /// Capture task ids not yet cleaned up.
    pub pending_tasks: Vec<String>,
    /// The brain's steps with reasons.
    pub steps: Vec<Step>,
    /// Conclusion attempts refused by the rules, with the reasons (kept for the report).
    pub refusals: Vec<String>,
    /// The accepted conclusion request.
    pub conclusion: Option<ConclusionRequest>,
    /// Where the session is.
    pub status: SessionStatus,
    /// The expectations in force.
    pub expectations: Expectations,
    /// LLM usage, when an LLM brain ran.
    pub usage: Option<Value>,
    /// The address that stands for "the internet" when a complaint is about reaching it
    /// (`INTERNET_PROBE_IP`, else an address the symptom names, else a documentation
    /// address): routes and NSGs are evaluated toward it; nothing is sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_address: Option<String>,
}

impl SessionState {
    /// The VM an internet complaint is about: the destination VM when the symptom names it
    /// alone ("dest-vm has no internet"), else the source VM.
    pub fn internet_side(&self) -> &str {
        match self.symptom.vms.as_slice() {
            [only] if *only == self.dest_vm => &self.dest_vm,
            _ => &self.source_vm,
        }
    }
}
