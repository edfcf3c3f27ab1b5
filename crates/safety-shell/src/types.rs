//! Types shared by every stage of the gate.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The three classes of the gate. Ordered from least to most strict, so that the class of a
/// compound command is the `max` of the classes of its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Class {
    /// A read-only diagnostic: runs without asking.
    Safe,
    /// Needs a human (or an explicit policy) to approve it.
    Risky,
    /// Never runs; no approval is offered.
    Forbidden,
}

impl Class {
    /// The upper-case name used in JSON and on the terminal (`SAFE`, `RISKY`, `FORBIDDEN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Safe => "SAFE",
            Class::Risky => "RISKY",
            Class::Forbidden => "FORBIDDEN",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of effect a command has: finer than [`Class`], used in prompts, audit records
/// and approval policies (an operator may approve every `capture` but no `cloud_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Reads local or remote host state (ping, ss, ip route show, iptables -S, ...).
    ReadOnly,
    /// Reads cloud control-plane state (az ... show/list).
    CloudRead,
    /// Captures or records traffic, or writes files inside the output directory.
    Capture,
    /// Changes the state of a host (firewall, routes, qdiscs, services, files).
    HostChange,
    /// Changes cloud resources (NSG rules, route tables, captures in Azure, run-command).
    CloudChange,
    /// Reads or reveals secrets (keys, tokens, passwords).
    Secret,
    /// Not understood by the classifier: treated as risky.
    Unknown,
    /// Destroys a system or data, or takes a host down: forbidden.
    Destructive,
}

impl Tier {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::ReadOnly => "read_only",
            Tier::CloudRead => "cloud_read",
            Tier::Capture => "capture",
            Tier::HostChange => "host_change",
            Tier::CloudChange => "cloud_change",
            Tier::Secret => "secret",
            Tier::Unknown => "unknown",
            Tier::Destructive => "destructive",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict of the classifier on one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// SAFE, RISKY or FORBIDDEN.
    pub classification: Class,
    /// What kind of effect decided the class.
    pub tier: Tier,
    /// One sentence naming the part of the command that decided the class.
    pub reason: String,
    /// The name of the policy rule that matched, when a deployment policy decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_rule: Option<String>,
}

impl Classification {
    /// Builds a verdict without a policy rule.
    pub fn new(classification: Class, tier: Tier, reason: impl Into<String>) -> Self {
        Self {
            classification,
            tier,
            reason: reason.into(),
            policy_rule: None,
        }
    }
}

/// Where the classifier may let commands read and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassifyContext {
    /// Writing (redirections, `tcpdump -w`, `az storage blob download --file`) is SAFE only
    /// inside this directory. `None`: no write is SAFE.
    pub output_dir: Option<PathBuf>,
    /// `cat`/`head`/`tail` are SAFE only on files under these directories.
    pub read_paths: Vec<PathBuf>,
    /// Executables outside the system directories that the operator configured explicitly
    /// (e.g. `AZ_PATH`): a command whose program is exactly one of these paths is classified
    /// as its base name (`/opt/az/bin/az vm show` as `az vm show`). Any other program outside
    /// /bin, /usr/bin, /sbin and /usr/sbin stays RISKY.
    pub trusted_programs: Vec<PathBuf>,
}

/// Where a command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// This machine.
    Local,
    /// A host reached over SSH.
    Ssh(SshTarget),
    /// An Azure VM, through `az vm run-command invoke --command-id RunShellScript`.
    AzureRunCommand(AzureVmTarget),
    /// A Linux network namespace on this machine (`ip netns exec NAME`).
    Netns {
        /// The namespace name as `ip netns list` shows it.
        name: String,
    },
}

impl Target {
    /// A short human description (`local`, `ssh:azureuser@198.18.1.4`, `azure-vm:rg/vm`,
    /// `netns:name`), used in prompts and audit records.
    pub fn describe(&self) -> String {
        match self {
            Target::Local => "local".to_string(),
            Target::Ssh(s) => match &s.user {
                Some(u) => format!("ssh:{u}@{}", s.host),
                None => format!("ssh:{}", s.host),
            },
            Target::AzureRunCommand(a) => format!("azure-vm:{}/{}", a.resource_group, a.vm_name),
            Target::Netns { name } => format!("netns:{name}"),
        }
    }
}

/// How to reach a host over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// Login user; `None` uses the SSH default.
    #[serde(default)]
    pub user: Option<String>,
    /// Port; `None` uses 22.
    #[serde(default)]
    pub port: Option<u16>,
    /// Private key file.
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    /// A jump host (`-J`), `user@host[:port]`.
    #[serde(default)]
    pub jump_host: Option<String>,
    /// A `known_hosts` file to use instead of the user's.
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// Host-key checking: strict by default; `false` must be chosen explicitly and is
    /// recorded in the audit.
    #[serde(default = "default_true")]
    pub strict_host_key_checking: bool,
    /// Connection timeout in seconds.
    #[serde(default)]
    pub connect_timeout_secs: Option<u32>,
    /// An SSH client configuration file (`-F`).
    #[serde(default)]
    pub config_file: Option<PathBuf>,
}

fn default_true() -> bool {
    true
}

impl SshTarget {
    /// A target for `host` with strict host-key checking and no other options.
    pub fn new(host: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            user: None,
            port: None,
            identity_file: None,
            jump_host: None,
            known_hosts_file: None,
            strict_host_key_checking: true,
            connect_timeout_secs: None,
            config_file: None,
        }
    }
}

/// An Azure VM reached through run-command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AzureVmTarget {
    /// Resource group of the VM.
    pub resource_group: String,
    /// VM name.
    pub vm_name: String,
    /// Subscription, when not the CLI's default.
    #[serde(default)]
    pub subscription: Option<String>,
    /// The `az` executable (a path, or a name looked up on PATH); `None` means `az`.
    #[serde(default)]
    pub az_path: Option<PathBuf>,
}
