//! Running a command on a named VM: over SSH, through Azure run-command, or in a lab network
//! namespace, with one result type ([`RemoteOutput`]) whichever path ran. Every command
//! passes the safety-shell gate.
//!
//! Azure's run-command keeps only the last 4 KiB of each output stream. When a run's stdout
//! reaches that size, the runner fetches the whole output in pages: it reruns the command as
//! `( COMMAND ) | tail -c +OFFSET | head -c PAGE` until a short page arrives, then checks
//! that the assembled output ends with what the first run returned (so output that changed
//! between runs is an error, never a silent mix). Paging reruns the command, so it is done
//! only when the gate classifies the command as SAFE (read-only); otherwise the result is
//! [`CloudError::OutputTruncated`], saying what to do.

use std::collections::BTreeMap;
use std::sync::Arc;

use safety_shell::{Class, ExecResult, Gate, SshTarget, Target};
use serde::Serialize;

use crate::azure::AzureCli;
use crate::config::{Environment, VmConfig};
use crate::error::{stderr_summary, CloudError};
use crate::provider::CloudProvider;

/// Which path ran a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemotePath {
    /// SSH.
    Ssh,
    /// Azure run-command (`az vm run-command invoke`).
    RunCommand,
    /// A lab network namespace (`ip netns exec`).
    Netns,
}

/// The result of a remote command, the same whichever path ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteOutput {
    /// stdout (redacted by the gate).
    pub stdout: String,
    /// stderr (redacted; for run-command, Azure's last 4 KiB).
    pub stderr: String,
    /// The command's exit code, when known.
    pub exit_code: Option<i32>,
    /// Which path ran it.
    pub path: RemotePath,
    /// The audit record of the (first) run.
    pub audit_id: String,
    /// Audit records of the paging runs (run-command output over 4 KiB).
    pub page_audit_ids: Vec<String>,
    /// The gate's output cap cut stdout or stderr (head and tail kept).
    pub truncated: bool,
}

impl RemoteOutput {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// How one VM is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmAccess {
    /// Over SSH.
    Ssh(SshTarget),
    /// Through Azure run-command.
    RunCommand {
        /// Resource group.
        resource_group: String,
        /// VM name in Azure.
        vm_name: String,
    },
    /// In a local network namespace (the lab).
    Netns {
        /// Namespace name.
        name: String,
    },
}

impl VmAccess {
    /// The path this access uses.
    pub fn path(&self) -> RemotePath {
        match self {
            VmAccess::Ssh(_) => RemotePath::Ssh,
            VmAccess::RunCommand { .. } => RemotePath::RunCommand,
            VmAccess::Netns { .. } => RemotePath::Netns,
        }
    }
}

/// Bytes per run-command page (under Azure's 4,096-byte limit, with room to spare).
pub const RUN_COMMAND_PAGE: usize = 3500;
/// A run-command stdout at least this long may have been cut by Azure.
pub const RUN_COMMAND_SUSPECT: usize = 4000;

/// Runs commands on named VMs.
pub struct RemoteRunner {
    gate: Arc<Gate>,
    azure: Option<Arc<AzureCli>>,
    vms: BTreeMap<String, VmAccess>,
    max_pages: usize,
}

impl std::fmt::Debug for RemoteRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRunner")
            .field("vms", &self.vms)
            .field("max_pages", &self.max_pages)
            .finish()
    }
}

impl RemoteRunner {
    /// A runner with no VMs. `azure` is needed for run-command access.
    pub fn new(gate: Arc<Gate>, azure: Option<Arc<AzureCli>>) -> Self {
        RemoteRunner {
            gate,
            azure,
            vms: BTreeMap::new(),
            max_pages: 64,
        }
    }

    /// Registers (or replaces) how `name` is reached.
    pub fn with_vm(mut self, name: impl Into<String>, access: VmAccess) -> Self {
        self.vms.insert(name.into(), access);
        self
    }

    /// The most run-command pages fetched for one command (default 64, about 220 KB).
    pub fn with_max_pages(mut self, n: usize) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// How `name` is reached, if registered.
    pub fn access(&self, name: &str) -> Option<&VmAccess> {
        self.vms.get(name)
    }

    /// Registers the source and destination VMs of `env`, reached by `path`:
    /// SSH uses the public IP (else the private IP), `SSH_USER`, the VM's key, the jump
    /// host, `SSH_KNOWN_HOSTS`, strict host-key checking unless
    /// `SSH_STRICT_HOST_KEY_CHECKING=false`, and `SSH_CONNECT_TIMEOUT`; run-command uses
    /// `RESOURCE_GROUP`. Namespaces are not described by `config.env` (register them with
    /// [`RemoteRunner::with_vm`]).
    pub fn from_environment(
        gate: Arc<Gate>,
        azure: Option<Arc<AzureCli>>,
        env: &Environment,
        path: RemotePath,
    ) -> Result<Self, CloudError> {
        let mut r = RemoteRunner::new(gate, azure);
        for vm in [&env.source, &env.dest] {
            let Some(name) = vm.name.clone() else {
                continue;
            };
            let access = match path {
                RemotePath::Ssh => VmAccess::Ssh(ssh_target(env, vm, &name)?),
                RemotePath::RunCommand => VmAccess::RunCommand {
                    resource_group: env.resource_group.clone().ok_or_else(|| {
                        CloudError::InvalidArgument {
                            what: "RESOURCE_GROUP".into(),
                            value: String::new(),
                            message: "run-command needs the VMs' resource group; set RESOURCE_GROUP".into(),
                        }
                    })?,
                    vm_name: name.clone(),
                },
                RemotePath::Netns => {
                    return Err(CloudError::InvalidArgument {
                        what: "remote path".into(),
                        value: "netns".into(),
                        message: "config.env does not name namespaces; register them with RemoteRunner::with_vm".into(),
                    })
                }
            };
            r.vms.insert(name, access);
        }
        Ok(r)
    }

    /// Runs `command` (a shell command line) on the VM registered as `vm`.
    pub fn run(
        &self,
        vm: &str,
        command: &str,
        reasoning: &str,
    ) -> Result<RemoteOutput, CloudError> {
        let access = self
            .vms
            .get(vm)
            .ok_or_else(|| CloudError::InvalidArgument {
                what: "VM".into(),
                value: vm.to_string(),
                message: format!(
                    "no access is configured for it (known: {})",
                    self.vms.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
        match access {
            VmAccess::Ssh(t) => {
                let target = Target::Ssh(t.clone());
                let r = self.gated(&target, command, reasoning)?;
                if r.exit_code == Some(255) && looks_like_ssh_failure(&r.stderr) {
                    return Err(CloudError::Unreachable {
                        target: target.describe(),
                        message: stderr_summary(&r.stderr),
                    });
                }
                Ok(from_exec(r, RemotePath::Ssh))
            }
            VmAccess::Netns { name } => {
                let target = Target::Netns { name: name.clone() };
                let r = self.gated(&target, command, reasoning)?;
                Ok(from_exec(r, RemotePath::Netns))
            }
            VmAccess::RunCommand {
                resource_group,
                vm_name,
            } => self.run_command(resource_group, vm_name, command, reasoning),
        }
    }

    fn gated(
        &self,
        target: &Target,
        command: &str,
        reasoning: &str,
    ) -> Result<ExecResult, CloudError> {
        self.gate.run(target, command, reasoning).map_err(|e| {
            match CloudError::from_gate(e, None) {
                CloudError::Failed { message, .. } => CloudError::Unreachable {
                    target: target.describe(),
                    message,
                },
                other => other,
            }
        })
    }

    fn run_command(
        &self,
        rg: &str,
        vm: &str,
        command: &str,
        reasoning: &str,
    ) -> Result<RemoteOutput, CloudError> {
        let azure = self
            .azure
            .as_ref()
            .ok_or_else(|| CloudError::InvalidArgument {
                what: "remote path".into(),
                value: "run-command".into(),
                message: "this runner has no Azure provider; build it with one".into(),
            })?;
        let (rc, audit_id) = azure.run_command(rg, vm, command, reasoning)?;
        let mut out = RemoteOutput {
            stdout: rc.stdout,
            stderr: rc.stderr,
            exit_code: rc.exit_code,
            path: RemotePath::RunCommand,
            audit_id,
            page_audit_ids: Vec::new(),
            truncated: false,
        };
        if out.stdout.len() < RUN_COMMAND_SUSPECT {
            return Ok(out);
        }
        let what = format!("run-command on {vm}");
        if self.gate.classify(command).classification != Class::Safe {
            return Err(CloudError::OutputTruncated {
                what,
                detail: "Azure keeps only the last 4 KiB of run-command output, and the command is not read-only, so it is not rerun to fetch the rest; use SSH, or write the output to a file on the VM and read it in parts".into(),
            });
        }
        let mut assembled = String::new();
        let mut offset = 0usize;
        for page in 0.. {
            if page >= self.max_pages {
                return Err(CloudError::OutputTruncated {
                    what,
                    detail: format!(
                        "the output is longer than {} pages of {RUN_COMMAND_PAGE} bytes; narrow the command or use SSH",
                        self.max_pages
                    ),
                });
            }
            let script = page_script(command, offset);
            let (prc, id) = azure.run_command(
                rg,
                vm,
                &script,
                &format!("{reasoning} (run-command output page {})", page + 1),
            )?;
            out.page_audit_ids.push(id);
            let short = prc.stdout.len() < RUN_COMMAND_PAGE;
            assembled.push_str(&prc.stdout);
            offset += RUN_COMMAND_PAGE;
            if short {
                break;
            }
        }
        let tail = stable_tail(&out.stdout, 1024);
        if !assembled.trim_end_matches('\n').ends_with(tail) {
            return Err(CloudError::OutputTruncated {
                what,
                detail: "the command's output changed between the runs that fetch it in 4 KiB pages; use SSH, or write the output to a file on the VM and read that".into(),
            });
        }
        out.stdout = assembled;
        Ok(out)
    }
}

/// The script of one run-command page: bytes `offset+1 ..= offset+PAGE` of the command's
/// stdout. The command sits on its own lines, so a trailing comment cannot swallow the
/// closing parenthesis.
pub fn page_script(command: &str, offset: usize) -> String {
    format!(
        "(\n{command}\n) | tail -c +{} | head -c {RUN_COMMAND_PAGE}",
        offset + 1
    )
}

/// The last `n` bytes of `s` (fewer, at a character boundary), without trailing newlines,
/// which the run-command envelope may add or drop.
fn stable_tail(s: &str, n: usize) -> &str {
    let s = s.trim_end_matches('\n');
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

fn looks_like_ssh_failure(stderr: &str) -> bool {
    [
        "ssh:",
        "Permission denied",
        "Host key verification failed",
        "Connection refused",
        "Connection timed out",
        "Could not resolve",
        "No route to host",
        "Connection closed",
        "kex_exchange_identification",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

fn from_exec(r: ExecResult, path: RemotePath) -> RemoteOutput {
    RemoteOutput {
        truncated: r.truncated.stdout || r.truncated.stderr,
        stdout: r.stdout,
        stderr: r.stderr,
        exit_code: r.exit_code,
        path,
        audit_id: r.audit_id,
        page_audit_ids: Vec::new(),
    }
}

/// The SSH target for one VM of the environment.
pub fn ssh_target(env: &Environment, vm: &VmConfig, name: &str) -> Result<SshTarget, CloudError> {
    let host = vm
        .public_ip
        .or(vm.private_ip)
        .ok_or_else(|| CloudError::InvalidArgument {
            what: "VM address".into(),
            value: name.to_string(),
            message: "SSH needs the VM's public or private IP; set SOURCE_/DEST_VM_PUBLIC_IP or _PRIVATE_IP".into(),
        })?;
    let mut t = SshTarget::new(host.to_string());
    t.user = env.ssh_user.clone();
    t.identity_file = vm.ssh_key.clone();
    t.jump_host = env.jump_host.clone();
    t.known_hosts_file = env.known_hosts.clone();
    t.strict_host_key_checking = env.strict_host_key_checking;
    t.connect_timeout_secs = Some(env.ssh_connect_timeout_secs);
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_script_shape() {
        assert_eq!(
            page_script("ip -s link # all", 7000),
            "(\nip -s link # all\n) | tail -c +7001 | head -c 3500"
        );
    }

    #[test]
    fn stable_tail_respects_boundaries() {
        let s = "aé\n\n";
        assert_eq!(stable_tail(s, 1), "");
        assert_eq!(stable_tail(s, 2), "é");
        assert_eq!(stable_tail("abc", 10), "abc");
    }

    #[test]
    fn ssh_failures() {
        assert!(looks_like_ssh_failure(
            "ssh: connect to host 198.18.1.4 port 22: Connection refused\n"
        ));
        assert!(looks_like_ssh_failure("Host key verification failed.\n"));
        assert!(!looks_like_ssh_failure("my script exited 255\n"));
    }
}
