//! The `config.env` loader shared by every binary, and the typed [`Environment`].
//!
//! File format (a subset of shell assignment syntax, so the same file can be `source`d):
//!
//! ```text
//! # comment
//! export RESOURCE_GROUP=rg-netlab          # `export ` prefix allowed
//! SOURCE_VM_PRIVATE_IP = 198.18.1.4        # spaces around `=` allowed; inline comment
//! SSH_USER="azure user # not a comment"    # double quotes: $VAR expansion, \" \\ \$ escapes
//! STORAGE_CONTAINER_NAME='literal $HOME'   # single quotes: no expansion at all
//! AUDIT_DIR=${HOME}/audit                  # $VAR and ${VAR} from the environment
//! ```
//!
//! Precedence: a command-line flag beats the environment variable of the same key, which
//! beats the file ([`Settings::get`] implements the last two; callers pass the flag first).

use std::collections::BTreeMap;

use safety_shell::envfile;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded or validated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not `KEY=VALUE`.
    #[error("{origin} line {line}: {message}")]
    Syntax {
        /// The file (or `<text>`).
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// A value is present but invalid.
    #[error("{key}={value:?} is invalid: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A required key has no value from any source.
    #[error("{key} is not set: {hint}")]
    Missing {
        /// The key.
        key: String,
        /// How to set it.
        hint: String,
    },
}

/// One key every tool of the workspace understands.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// The key, e.g. `SOURCE_VM_PRIVATE_IP`.
    pub key: &'static str,
    /// What it means.
    pub description: &'static str,
}

/// Every key the workspace's tools read from `config.env`. Keys not listed here are reported
/// once as warnings (a typo would otherwise be silently ignored).
pub const KNOWN_KEYS: &[KeySpec] = &[
    KeySpec {
        key: "SUBSCRIPTION_ID",
        description: "Azure subscription id (default: the az CLI's current one)",
    },
    KeySpec {
        key: "RESOURCE_GROUP",
        description: "resource group of the investigated VMs",
    },
    KeySpec {
        key: "LOCATION",
        description: "Azure region, e.g. westeurope (Network Watcher commands need it)",
    },
    KeySpec {
        key: "VNET_NAME",
        description: "virtual network of the VMs",
    },
    KeySpec {
        key: "SUBNET_NAME",
        description: "subnet of the VMs",
    },
    KeySpec {
        key: "NVA_IP",
        description: "scenario scripts: the next-hop address of a dead appliance (default: .100 of the dest subnet)",
    },
    KeySpec {
        key: "SOURCE_VM_NAME",
        description: "name of the source VM (client side)",
    },
    KeySpec {
        key: "DEST_VM_NAME",
        description: "name of the destination VM (server side)",
    },
    KeySpec {
        key: "SOURCE_VM_PRIVATE_IP",
        description: "private IPv4 address of the source VM",
    },
    KeySpec {
        key: "DEST_VM_PRIVATE_IP",
        description: "private IPv4 address of the destination VM",
    },
    KeySpec {
        key: "SOURCE_VM_PUBLIC_IP",
        description: "public IPv4 address used to reach the source VM over SSH",
    },
    KeySpec {
        key: "DEST_VM_PUBLIC_IP",
        description: "public IPv4 address used to reach the destination VM over SSH",
    },
    KeySpec {
        key: "SOURCE_NSG_NAME",
        description: "NSG on the source VM's NIC",
    },
    KeySpec {
        key: "DEST_NSG_NAME",
        description: "NSG on the destination VM's NIC",
    },
    KeySpec {
        key: "SSH_USER",
        description: "SSH login user on both VMs",
    },
    KeySpec {
        key: "SSH_SOURCE_VM_KEY_PATH",
        description: "private key for the source VM",
    },
    KeySpec {
        key: "SSH_DEST_VM_KEY_PATH",
        description: "private key for the destination VM",
    },
    KeySpec {
        key: "SSH_JUMP_HOST",
        description: "optional jump host, user@host[:port]",
    },
    KeySpec {
        key: "SSH_KNOWN_HOSTS",
        description: "known_hosts file for the VMs (strict checking by default)",
    },
    KeySpec {
        key: "SSH_STRICT_HOST_KEY_CHECKING",
        description: "true (default) or false; false is recorded in the audit",
    },
    KeySpec {
        key: "SSH_CONNECT_TIMEOUT",
        description: "SSH connection timeout in seconds (default 10)",
    },
    KeySpec {
        key: "STORAGE_ACCOUNT_NAME",
        description: "operator's storage account for artifacts and captures",
    },
    KeySpec {
        key: "STORAGE_CONTAINER_NAME",
        description: "container in that account",
    },
    KeySpec {
        key: "STORAGE_AUTH_MODE",
        description: "login (default) or key",
    },
    KeySpec {
        key: "AUDIT_DIR",
        description: "where artifacts and audit logs are written (default ./audit)",
    },
    KeySpec {
        key: "AZ_PATH",
        description: "the az executable (default: az on PATH; netlab's front end in the lab)",
    },
    KeySpec {
        key: "SAFETY_APPROVE",
        description: "non-interactive approval: never or all-risky",
    },
    KeySpec {
        key: "EXPECTED_THROUGHPUT_GBPS",
        description: "expected throughput between the VMs, for pipe-meter verdicts",
    },
    KeySpec {
        key: "UPLOAD",
        description: "pipe-meter: upload the run's artifacts to the blob container (true/false)",
    },
    KeySpec {
        key: "OPEN_BLOCKED_PORTS",
        description: "pipe-meter: open measurement ports an NSG denies, with approval (true/false)",
    },
    KeySpec {
        key: "KEEP_OPENED_RULES",
        description: "pipe-meter: keep the rules OPEN_BLOCKED_PORTS created (true/false)",
    },
    KeySpec {
        key: "INSTALL_MISSING",
        description: "pipe-meter: install missing qperf/iperf2 with approval (true/false)",
    },
    KeySpec {
        key: "EXPECTED_LATENCY_US",
        description: "expected round-trip latency between the VMs in microseconds (ghost-agent)",
    },
    KeySpec {
        key: "EXPECTED_PATH_MTU",
        description: "MTU the network path carries (default 1500); a larger interface MTU is a finding (ghost-agent)",
    },
    KeySpec {
        key: "EXPECTED_MAX_VARIATION",
        description: "largest acceptable coefficient of variation of a measurement series (ghost-agent)",
    },
    KeySpec {
        key: "LLM_PROVIDER",
        description: "gemini, anthropic or openai (unset: deterministic playbook only)",
    },
    KeySpec {
        key: "LLM_MODEL",
        description: "model name for the LLM provider",
    },
    KeySpec {
        key: "LLM_API_KEY",
        description: "API key for the LLM provider (never logged)",
    },
    KeySpec {
        key: "LLM_BASE_URL",
        description: "base URL of an OpenAI-compatible endpoint",
    },
    KeySpec {
        key: "INTERNET_PROBE_IP",
        description: "an address standing for the internet when a complaint is about reaching it (routes and NSGs are evaluated toward it; nothing is sent)",
    },
];

/// True when `key` is one of [`KNOWN_KEYS`], or a `NETLAB_*` key that `netlab env` writes
/// about the lab itself (run id, state dir, SSH config, storage endpoint), which the tools
/// do not read but must not warn about.
pub fn is_known_key(key: &str) -> bool {
    KNOWN_KEYS.iter().any(|k| k.key == key) || key.starts_with("NETLAB_")
}

/// A parsed `config.env` file: keys in file order (the last assignment of a key wins), plus
/// warnings (unknown keys, undefined variables) to show the user once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    /// Where it came from (a path, or `<text>`).
    pub origin: String,
    /// Values after quote removal and expansion.
    pub values: BTreeMap<String, String>,
    /// One line each, already deduplicated.
    pub warnings: Vec<String>,
}

impl ConfigFile {
    /// Reads and parses a file, expanding variables from the process environment.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let env = |name: &str| std::env::var(name).ok();
        parse_env_text(&text, &path.display().to_string(), &env)
    }

    /// The value of `key` in the file.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Parses `config.env` text. `env` resolves `$VAR` references (the process environment in
/// production, a map in tests). The syntax is [`safety_shell::envfile`]'s; keys not in
/// [`KNOWN_KEYS`] are warned about once.
pub fn parse_env_text(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ConfigFile, ConfigError> {
    let parsed = envfile::parse_env_text(text, origin, env, &is_known_key).map_err(|e| {
        ConfigError::Syntax {
            origin: e.origin,
            line: e.line,
            message: e.message,
        }
    })?;
    Ok(ConfigFile {
        origin: origin.to_string(),
        values: parsed.values,
        warnings: parsed.warnings,
    })
}

/// Parses a boolean the way every tool does: `true/1/yes/on` and `false/0/no/off`, any case.
pub fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.to_string(),
            value: value.to_string(),
            message: "expected true/1/yes or false/0/no".into(),
        }),
    }
}

/// Parses an IPv4 address strictly: the whole value must be one dotted-quad address.
pub fn parse_ipv4(key: &str, value: &str) -> Result<Ipv4Addr, ConfigError> {
    value.parse::<Ipv4Addr>().map_err(|_| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        message: "expected one IPv4 address such as 10.0.0.4, with nothing before or after it"
            .into(),
    })
}

/// Layered settings: the process environment over a config file.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    file: Option<ConfigFile>,
    env: BTreeMap<String, String>,
}

impl Settings {
    /// Settings from the process environment and an optional file. Warnings of the file are
    /// logged once here.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let file = path.map(ConfigFile::load).transpose()?;
        if let Some(f) = &file {
            for w in &f.warnings {
                tracing::warn!("{w}");
            }
        }
        let env = std::env::vars().filter(|(k, _)| is_known_key(k)).collect();
        Ok(Settings { file, env })
    }

    /// Settings from explicit parts (tests, library callers).
    pub fn from_parts(file: Option<ConfigFile>, env: BTreeMap<String, String>) -> Settings {
        Settings { file, env }
    }

    /// The value of `key`: the environment variable if set and non-empty, else the file.
    pub fn get(&self, key: &str) -> Option<String> {
        self.env
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .or_else(|| {
                self.file
                    .as_ref()
                    .and_then(|f| f.get(key))
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            })
    }

    /// A flag value if given, else [`Settings::get`].
    pub fn pick(&self, flag: Option<String>, key: &str) -> Option<String> {
        flag.filter(|v| !v.is_empty()).or_else(|| self.get(key))
    }

    /// The warnings of the file, if any.
    pub fn warnings(&self) -> &[String] {
        self.file
            .as_ref()
            .map(|f| f.warnings.as_slice())
            .unwrap_or(&[])
    }
}

/// One VM as the tools address it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmConfig {
    /// VM name in the cloud.
    pub name: Option<String>,
    /// Private IPv4 address.
    pub private_ip: Option<Ipv4Addr>,
    /// Public IPv4 address for SSH.
    pub public_ip: Option<Ipv4Addr>,
    /// SSH private key for this VM.
    pub ssh_key: Option<PathBuf>,
    /// NSG on this VM's NIC.
    pub nsg_name: Option<String>,
}

/// The typed, validated environment every tool works in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    /// Subscription id.
    pub subscription_id: Option<String>,
    /// Resource group.
    pub resource_group: Option<String>,
    /// Region.
    pub location: Option<String>,
    /// The source (client) VM.
    pub source: VmConfig,
    /// The destination (server) VM.
    pub dest: VmConfig,
    /// SSH login user.
    pub ssh_user: Option<String>,
    /// SSH jump host.
    pub jump_host: Option<String>,
    /// known_hosts file.
    pub known_hosts: Option<PathBuf>,
    /// Strict host-key checking (default true).
    pub strict_host_key_checking: bool,
    /// SSH connect timeout, seconds.
    pub ssh_connect_timeout_secs: u32,
    /// Storage account for artifacts and captures.
    pub storage_account: Option<String>,
    /// Container in that account.
    pub storage_container: Option<String>,
    /// Where artifacts and audit logs go.
    pub audit_dir: PathBuf,
    /// The az executable.
    pub az_path: PathBuf,
}

/// Overrides from command-line flags (the highest precedence). Empty means "not given".
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    /// Values keyed by config key (e.g. `SOURCE_VM_PRIVATE_IP` for `--source-ip`).
    pub values: BTreeMap<String, String>,
}

impl FlagOverrides {
    /// Records a flag value for `key` when it was given.
    pub fn set(&mut self, key: &str, value: Option<impl Into<String>>) -> &mut Self {
        if let Some(v) = value {
            self.values.insert(key.to_string(), v.into());
        }
        self
    }
}

impl Environment {
    /// Builds and validates the environment from flags, then environment, then file.
    pub fn resolve(settings: &Settings, flags: &FlagOverrides) -> Result<Environment, ConfigError> {
        let get = |key: &str| settings.pick(flags.values.get(key).cloned(), key);
        let ip = |key: &str| get(key).map(|v| parse_ipv4(key, &v)).transpose();
        let name = |key: &str, check: fn(&str) -> Result<(), String>| {
            get(key)
                .map(|v| {
                    check(&v).map_err(|message| ConfigError::Invalid {
                        key: key.to_string(),
                        value: v.clone(),
                        message,
                    })?;
                    Ok(v)
                })
                .transpose()
        };
        let timeout = match get("SSH_CONNECT_TIMEOUT") {
            None => 10,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=600).contains(&n) => n,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "SSH_CONNECT_TIMEOUT".into(),
                        value: v,
                        message: "expected whole seconds from 1 to 600".into(),
                    })
                }
            },
        };
        let env = Environment {
            subscription_id: name("SUBSCRIPTION_ID", check_subscription)?,
            resource_group: name("RESOURCE_GROUP", check_resource_group)?,
            location: name("LOCATION", check_location)?,
            source: VmConfig {
                name: name("SOURCE_VM_NAME", check_vm_name)?,
                private_ip: ip("SOURCE_VM_PRIVATE_IP")?,
                public_ip: ip("SOURCE_VM_PUBLIC_IP")?,
                ssh_key: get("SSH_SOURCE_VM_KEY_PATH").map(PathBuf::from),
                nsg_name: name("SOURCE_NSG_NAME", check_resource_name)?,
            },
            dest: VmConfig {
                name: name("DEST_VM_NAME", check_vm_name)?,
                private_ip: ip("DEST_VM_PRIVATE_IP")?,
                public_ip: ip("DEST_VM_PUBLIC_IP")?,
                ssh_key: get("SSH_DEST_VM_KEY_PATH").map(PathBuf::from),
                nsg_name: name("DEST_NSG_NAME", check_resource_name)?,
            },
            ssh_user: name("SSH_USER", check_ssh_user)?,
            jump_host: name("SSH_JUMP_HOST", check_jump_host)?,
            known_hosts: get("SSH_KNOWN_HOSTS").map(PathBuf::from),
            strict_host_key_checking: get("SSH_STRICT_HOST_KEY_CHECKING")
                .map(|v| parse_bool("SSH_STRICT_HOST_KEY_CHECKING", &v))
                .transpose()?
                .unwrap_or(true),
            ssh_connect_timeout_secs: timeout,
            storage_account: name("STORAGE_ACCOUNT_NAME", check_storage_account)?,
            storage_container: name("STORAGE_CONTAINER_NAME", check_container)?,
            audit_dir: get("AUDIT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./audit")),
            az_path: get("AZ_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("az")),
        };
        Ok(env)
    }

    /// The value of an optional field, or a [`ConfigError::Missing`] naming the key and the
    /// flag that sets it.
    pub fn require<T: Clone>(value: &Option<T>, key: &str, flag: &str) -> Result<T, ConfigError> {
        value.clone().ok_or_else(|| ConfigError::Missing {
            key: key.to_string(),
            hint: format!("pass {flag}, export {key}=..., or set it in the --config file"),
        })
    }
}

fn check_subscription(v: &str) -> Result<(), String> {
    let ok = v.len() == 36
        && v.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(())
    } else {
        Err("expected a subscription GUID like 00000000-0000-0000-0000-000000000000".into())
    }
}

/// Azure resource-group names: 1-90 characters, letters, digits, `_ - . ( )`, not ending in `.`.
fn check_resource_group(v: &str) -> Result<(), String> {
    let ok = (1..=90).contains(&v.chars().count())
        && v.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
        && !v.ends_with('.');
    ok.then_some(()).ok_or_else(|| {
        "resource group names are 1-90 letters, digits, _ - . ( ) and do not end with a period"
            .into()
    })
}

/// Region names as the CLI takes them (`westeurope`, `eastus2`); hyphens are accepted for
/// sovereign and lab locations (netlab's is `netlab-local`).
fn check_location(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('-')
        && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(())
        .ok_or_else(|| "expected a region name such as westeurope (letters, digits and -)".into())
}

/// VM names: 1-64 characters, letters, digits, `-` `_` `.`.
fn check_vm_name(v: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(())
        .ok_or_else(|| "VM names are 1-64 letters, digits, - _ .".into())
}

/// Network resource names (NSG, route table, NIC): 1-80 characters, letters, digits,
/// `_ - .`, starting with a letter or digit.
fn check_resource_name(v: &str) -> Result<(), String> {
    let ok = (1..=80).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(()).ok_or_else(|| {
        "resource names are 1-80 letters, digits, - _ . starting with a letter or digit".into()
    })
}

fn check_ssh_user(v: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(())
        .ok_or_else(|| "expected a login name (letters, digits, - _ .)".into())
}

fn check_jump_host(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && !v.starts_with('-')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    ok.then_some(())
        .ok_or_else(|| "expected user@host[:port] with no spaces or options".into())
}

/// Storage account names: 3-24 lowercase letters and digits.
fn check_storage_account(v: &str) -> Result<(), String> {
    let ok = (3..=24).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    ok.then_some(())
        .ok_or_else(|| "storage account names are 3-24 lowercase letters and digits".into())
}

/// Container names: 3-63 lowercase letters, digits and single hyphens, starting and ending
/// with a letter or digit.
fn check_container(v: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !v.starts_with('-')
        && !v.ends_with('-')
        && !v.contains("--");
    ok.then_some(()).ok_or_else(|| {
        "container names are 3-63 lowercase letters, digits and single hyphens".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse(text: &str) -> ConfigFile {
        parse_env_text(text, "t.env", &env_of(&[("HOME", "/root"), ("RG", "rg1")])).unwrap()
    }

    #[test]
    fn plain_export_spaces_and_comments() {
        let f = parse(
            "# head\n\nexport RESOURCE_GROUP=rg-a\nSSH_USER = azureuser   # the user\n  LOCATION=westeurope\n",
        );
        assert_eq!(f.get("RESOURCE_GROUP"), Some("rg-a"));
        assert_eq!(f.get("SSH_USER"), Some("azureuser"));
        assert_eq!(f.get("LOCATION"), Some("westeurope"));
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    }

    #[test]
    fn quotes_keep_hash_and_single_quotes_do_not_expand() {
        let f = parse("SSH_USER=\"a # b\"\nAUDIT_DIR='$HOME/x'\nLLM_MODEL=\"m\\\"q\"\n");
        assert_eq!(f.get("SSH_USER"), Some("a # b"));
        assert_eq!(f.get("AUDIT_DIR"), Some("$HOME/x"));
        assert_eq!(f.get("LLM_MODEL"), Some("m\"q"));
    }

    #[test]
    fn hash_without_space_is_part_of_the_value() {
        let f = parse("LLM_API_KEY=abc#def\n");
        assert_eq!(f.get("LLM_API_KEY"), Some("abc#def"));
    }

    #[test]
    fn expansion_both_forms_and_undefined_warns_once() {
        let f = parse("AUDIT_DIR=${HOME}/audit\nRESOURCE_GROUP=$RG\nAZ_PATH=\"$NOPE/az\"\n");
        assert_eq!(f.get("AUDIT_DIR"), Some("/root/audit"));
        assert_eq!(f.get("RESOURCE_GROUP"), Some("rg1"));
        assert_eq!(f.get("AZ_PATH"), Some("/az"));
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].contains("$NOPE"));
    }

    #[test]
    fn lone_dollar_is_literal() {
        let f = parse("LLM_API_KEY=a$ b$1\n");
        assert_eq!(f.get("LLM_API_KEY"), Some("a$ b$1"));
    }

    #[test]
    fn netlab_keys_are_not_warned_about() {
        let f = parse("NETLAB_RUN=ab12\nNETLAB_SSH_CONFIG=/run/netlab/ab12/ssh/ssh_config\n");
        assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    }

    #[test]
    fn unknown_keys_warned_once_each() {
        let f = parse("FOO=1\nFOO=2\nBAR=3\n");
        assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
        assert_eq!(f.get("FOO"), Some("2"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse_env_text("A=1\nnot a setting\n", "c.env", &env_of(&[])).unwrap_err();
        assert!(err.to_string().starts_with("c.env line 2:"), "{err}");
        let err = parse_env_text("A=\"open\n", "c.env", &env_of(&[])).unwrap_err();
        assert!(
            err.to_string().contains("unterminated double quote"),
            "{err}"
        );
        let err = parse_env_text("1A=x\n", "c.env", &env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("not a valid key"), "{err}");
    }

    #[test]
    fn booleans() {
        for t in ["true", "1", "yes", "YES", "On"] {
            assert!(parse_bool("K", t).unwrap());
        }
        for f in ["false", "0", "no", "off"] {
            assert!(!parse_bool("K", f).unwrap());
        }
        assert!(parse_bool("K", "maybe").is_err());
    }

    #[test]
    fn ipv4_is_strict() {
        assert!(parse_ipv4("K", "10.0.0.4").is_ok());
        let err = parse_ipv4("SOURCE_VM_PRIVATE_IP", "10.0.0.4 junk").unwrap_err();
        assert!(err.to_string().contains("SOURCE_VM_PRIVATE_IP"), "{err}");
        assert!(parse_ipv4("K", "10.0.0").is_err());
        assert!(parse_ipv4("K", "10.0.0.256").is_err());
    }

    #[test]
    fn precedence_flag_then_env_then_file() {
        let file = parse("RESOURCE_GROUP=from-file\nSSH_USER=file-user\nLOCATION=westus\n");
        let env: BTreeMap<String, String> = [
            ("RESOURCE_GROUP".to_string(), "from-env".to_string()),
            ("SSH_USER".to_string(), "env-user".to_string()),
        ]
        .into();
        let s = Settings::from_parts(Some(file), env);
        let mut flags = FlagOverrides::default();
        flags.set("SSH_USER", Some("flag-user"));
        let e = Environment::resolve(&s, &flags).unwrap();
        assert_eq!(e.resource_group.as_deref(), Some("from-env"));
        assert_eq!(e.ssh_user.as_deref(), Some("flag-user"));
        assert_eq!(e.location.as_deref(), Some("westus"));
        assert!(e.strict_host_key_checking);
        assert_eq!(e.audit_dir, PathBuf::from("./audit"));
    }

    #[test]
    fn environment_validation_messages() {
        let cases = [
            ("SOURCE_VM_PRIVATE_IP=10.0.0.4 junk", "SOURCE_VM_PRIVATE_IP"),
            ("STORAGE_ACCOUNT_NAME=Bad_Name", "STORAGE_ACCOUNT_NAME"),
            ("STORAGE_CONTAINER_NAME=a--b", "STORAGE_CONTAINER_NAME"),
            ("RESOURCE_GROUP=rg.", "RESOURCE_GROUP"),
            ("SUBSCRIPTION_ID=nope", "SUBSCRIPTION_ID"),
            ("SSH_CONNECT_TIMEOUT=0", "SSH_CONNECT_TIMEOUT"),
            (
                "SSH_STRICT_HOST_KEY_CHECKING=perhaps",
                "SSH_STRICT_HOST_KEY_CHECKING",
            ),
            ("SSH_JUMP_HOST=-oProxyCommand=x", "SSH_JUMP_HOST"),
            ("LOCATION=west europe", "LOCATION"),
            ("LOCATION=-x", "LOCATION"),
        ];
        for (line, key) in cases {
            let s = Settings::from_parts(Some(parse(&format!("{line}\n"))), BTreeMap::new());
            let err = Environment::resolve(&s, &FlagOverrides::default()).unwrap_err();
            assert!(err.to_string().starts_with(key), "{line}: {err}");
        }
    }

    #[test]
    fn require_names_key_and_flag() {
        let err =
            Environment::require::<String>(&None, "DEST_VM_PRIVATE_IP", "--dest-ip").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("DEST_VM_PRIVATE_IP") && msg.contains("--dest-ip"),
            "{msg}"
        );
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC*") {
            let _ = parse_env_text(&text, "p", &|_| Some("v".to_string()));
        }

        #[test]
        fn simple_values_round_trip(value in "[A-Za-z0-9_./:@-]{0,40}") {
            let f = parse_env_text(&format!("AUDIT_DIR={value}\n"), "p", &|_| None).unwrap();
            proptest::prop_assert_eq!(f.get("AUDIT_DIR"), Some(value.as_str()));
        }
    }
}
