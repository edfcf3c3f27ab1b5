//! The pipe-meter configuration: every flag is also a `config.env` key; flags beat the
//! environment, the environment beats the file.

use std::net::Ipv4Addr;
use std::path::Path;

use cloud_provider::config::{ConfigError, Environment, FlagOverrides, Settings};
use cloud_provider::session::SessionId;
use serde::Serialize;

/// A configuration value that is missing or wrong, naming the flag and the value.
#[derive(Debug, thiserror::Error)]
pub enum PipeConfigError {
    /// A value could not be accepted.
    #[error("invalid value `{value}` for {flag} ({key}): {message}")]
    Invalid {
        /// The flag, e.g. `--iterations`.
        flag: &'static str,
        /// The config key, e.g. `ITERATIONS`.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is expected.
        message: String,
    },
    /// A required value is missing.
    #[error(
        "{flag} ({key}) is required: pass {flag}, export {key}=..., or set it in the --config file"
    )]
    Missing {
        /// The flag.
        flag: &'static str,
        /// The config key.
        key: &'static str,
    },
    /// The shared loader rejected a value.
    #[error("{0}")]
    Shared(#[from] ConfigError),
}

/// Which measurements to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestType {
    /// qperf `tcp_lat` only.
    Latency,
    /// iperf2 only.
    Throughput,
    /// Both.
    Both,
}

impl TestType {
    /// `latency`, `throughput` or `both`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestType::Latency => "latency",
            TestType::Throughput => "throughput",
            TestType::Both => "both",
        }
    }
    /// Runs qperf.
    pub fn latency(self) -> bool {
        matches!(self, TestType::Latency | TestType::Both)
    }
    /// Runs iperf2.
    pub fn throughput(self) -> bool {
        matches!(self, TestType::Throughput | TestType::Both)
    }
}

/// Which baseline to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// No comparison.
    None,
    /// The latest baseline for (source, dest, test type).
    Latest,
    /// The baseline written by this session.
    Session(SessionId),
}

/// Everything a run needs.
#[derive(Debug, Clone, Serialize)]
pub struct PipeConfig {
    /// The shared environment (VMs, SSH, storage, audit dir).
    pub env: Environment,
    /// Source VM private IP (client side).
    pub source_ip: Ipv4Addr,
    /// Destination VM private IP (servers; the clients connect to it).
    pub dest_ip: Ipv4Addr,
    /// What to measure.
    pub test_type: TestType,
    /// Measured iterations.
    pub iterations: u32,
    /// iperf2 seconds per iteration.
    pub duration_secs: u32,
    /// qperf seconds per iteration.
    pub qperf_duration_secs: u32,
    /// iperf2 parallel streams.
    pub streams: u32,
    /// Warm-up iterations (discarded).
    pub warmup: u32,
    /// Store this run as a baseline.
    pub is_baseline: bool,
    /// Which baseline to compare with.
    pub compare: CompareMode,
    /// A given session id (else one is generated).
    pub session_id: Option<SessionId>,
    /// iperf2 server port on dest.
    pub iperf_port: u16,
    /// qperf listen (control) port on dest.
    pub qperf_port: u16,
    /// qperf data port (pinned with `-ip` so an NSG can be opened precisely).
    pub qperf_data_port: u16,
    /// Expected throughput, Gbit/s (`EXPECTED_THROUGHPUT_GBPS`).
    pub expected_throughput_gbps: Option<f64>,
}

/// Defaults.
pub const DEFAULT_ITERATIONS: u32 = 8;
/// iperf2 seconds per iteration.
pub const DEFAULT_DURATION: u32 = 10;
/// qperf seconds per iteration.
pub const DEFAULT_QPERF_DURATION: u32 = 2;
/// iperf2 streams.
pub const DEFAULT_STREAMS: u32 = 8;
/// Warm-up iterations.
pub const DEFAULT_WARMUP: u32 = 1;
/// iperf2's conventional port.
pub const DEFAULT_IPERF_PORT: u16 = 5001;
/// qperf's conventional port.
pub const DEFAULT_QPERF_PORT: u16 = 19765;
/// The qperf data port pipe-meter pins by default.
pub const DEFAULT_QPERF_DATA_PORT: u16 = 19766;

/// Each pipe-meter-specific key and its flag (the shared keys are in `cloud_provider::config`).
pub const PIPE_KEYS: &[(&str, &str)] = &[
    ("TEST_TYPE", "--test-type"),
    ("ITERATIONS", "--iterations"),
    ("DURATION", "--duration"),
    ("QPERF_DURATION", "--qperf-duration"),
    ("STREAMS", "--streams"),
    ("WARMUP", "--warmup"),
    ("IS_BASELINE", "--is-baseline"),
    ("COMPARE_BASELINE", "--compare-baseline"),
    ("BASELINE_SESSION", "--baseline-session"),
    ("SESSION_ID", "--session-id"),
    ("IPERF_PORT", "--iperf-port"),
    ("QPERF_PORT", "--qperf-port"),
    ("QPERF_DATA_PORT", "--qperf-data-port"),
    ("EXPECTED_THROUGHPUT_GBPS", "--expected-throughput-gbps"),
];

fn number<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    v: Option<String>,
    key: &'static str,
    flag: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, PipeConfigError> {
    let Some(v) = v else { return Ok(default) };
    match v.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(PipeConfigError::Invalid {
            flag,
            key,
            value: v.chars().take(80).collect(),
            message: format!("expected a whole number from {min} to {max}"),
        }),
    }
}

fn boolean(
    v: Option<String>,
    key: &'static str,
    flag: &'static str,
) -> Result<bool, PipeConfigError> {
    match v.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) if ["true", "1", "yes", "on"].contains(&s.as_str()) => Ok(true),
        Some(s) if ["false", "0", "no", "off"].contains(&s.as_str()) => Ok(false),
        Some(_) => Err(PipeConfigError::Invalid {
            flag,
            key,
            value: v.unwrap_or_default().chars().take(80).collect(),
            message: "expected true or false".into(),
        }),
    }
}

impl PipeConfig {
    /// Loads settings from `--config FILE` (if any) and the process environment.
    pub fn settings(config_file: Option<&Path>) -> Result<Settings, PipeConfigError> {
        Ok(Settings::load(config_file)?)
    }

    /// Builds and validates the configuration. `flags` holds flag values keyed by config
    /// key (both the shared keys and [`PIPE_KEYS`]).
    pub fn resolve(
        settings: &Settings,
        flags: &FlagOverrides,
    ) -> Result<PipeConfig, PipeConfigError> {
        let env = Environment::resolve(settings, flags)?;
        let get = |key: &str| settings.pick(flags.values.get(key).cloned(), key);
        let source_ip = env.source.private_ip.ok_or(PipeConfigError::Missing {
            flag: "--source-ip",
            key: "SOURCE_VM_PRIVATE_IP",
        })?;
        let dest_ip = env.dest.private_ip.ok_or(PipeConfigError::Missing {
            flag: "--dest-ip",
            key: "DEST_VM_PRIVATE_IP",
        })?;
        let test_type = match get("TEST_TYPE").as_deref().map(str::trim) {
            None | Some("both") => TestType::Both,
            Some("latency") => TestType::Latency,
            Some("throughput") => TestType::Throughput,
            Some(other) => {
                return Err(PipeConfigError::Invalid {
                    flag: "--test-type",
                    key: "TEST_TYPE",
                    value: other.chars().take(80).collect(),
                    message: "expected latency, throughput or both".into(),
                })
            }
        };
        let session_id = match get("SESSION_ID") {
            None => None,
            Some(v) => Some(SessionId::parse(&v).map_err(|_| PipeConfigError::Invalid {
                flag: "--session-id",
                key: "SESSION_ID",
                value: v.chars().take(80).collect(),
                message: "expected 1 to 64 characters from A-Z a-z 0-9 _ -".into(),
            })?),
        };
        let compare_latest = boolean(
            get("COMPARE_BASELINE"),
            "COMPARE_BASELINE",
            "--compare-baseline",
        )?;
        let compare = match get("BASELINE_SESSION") {
            Some(v) => CompareMode::Session(SessionId::parse(&v).map_err(|_| {
                PipeConfigError::Invalid {
                    flag: "--baseline-session",
                    key: "BASELINE_SESSION",
                    value: v.chars().take(80).collect(),
                    message: "expected a session id (1 to 64 characters from A-Z a-z 0-9 _ -)"
                        .into(),
                }
            })?),
            None if compare_latest => CompareMode::Latest,
            None => CompareMode::None,
        };
        let expected_throughput_gbps = match get("EXPECTED_THROUGHPUT_GBPS") {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Some(x),
                _ => {
                    return Err(PipeConfigError::Invalid {
                        flag: "--expected-throughput-gbps",
                        key: "EXPECTED_THROUGHPUT_GBPS",
                        value: v.chars().take(80).collect(),
                        message: "expected a positive number of Gbit/s".into(),
                    })
                }
            },
        };
        let cfg = PipeConfig {
            source_ip,
            dest_ip,
            test_type,
            iterations: number(
                get("ITERATIONS"),
                "ITERATIONS",
                "--iterations",
                DEFAULT_ITERATIONS,
                1,
                1000,
            )?,
            duration_secs: number(
                get("DURATION"),
                "DURATION",
                "--duration",
                DEFAULT_DURATION,
                1,
                3600,
            )?,
            qperf_duration_secs: number(
                get("QPERF_DURATION"),
                "QPERF_DURATION",
                "--qperf-duration",
                DEFAULT_QPERF_DURATION,
                1,
                600,
            )?,
            streams: number(
                get("STREAMS"),
                "STREAMS",
                "--streams",
                DEFAULT_STREAMS,
                1,
                128,
            )?,
            warmup: number(get("WARMUP"), "WARMUP", "--warmup", DEFAULT_WARMUP, 0, 10)?,
            is_baseline: boolean(get("IS_BASELINE"), "IS_BASELINE", "--is-baseline")?,
            compare,
            session_id,
            iperf_port: number(
                get("IPERF_PORT"),
                "IPERF_PORT",
                "--iperf-port",
                DEFAULT_IPERF_PORT,
                1,
                65535,
            )?,
            qperf_port: number(
                get("QPERF_PORT"),
                "QPERF_PORT",
                "--qperf-port",
                DEFAULT_QPERF_PORT,
                1,
                65535,
            )?,
            qperf_data_port: number(
                get("QPERF_DATA_PORT"),
                "QPERF_DATA_PORT",
                "--qperf-data-port",
                DEFAULT_QPERF_DATA_PORT,
                1,
                65535,
            )?,
            expected_throughput_gbps,
            env,
        };
        let ports = [cfg.iperf_port, cfg.qperf_port, cfg.qperf_data_port];
        if ports[0] == ports[1] || ports[0] == ports[2] || ports[1] == ports[2] {
            return Err(PipeConfigError::Invalid {
                flag: "--qperf-data-port",
                key: "QPERF_DATA_PORT",
                value: format!("{}/{}/{}", ports[0], ports[1], ports[2]),
                message: "the iperf2, qperf and qperf data ports must all differ".into(),
            });
        }
        Ok(cfg)
    }

    /// The baseline key: `{source}->{dest}:{test_type}`.
    pub fn baseline_key(&self) -> String {
        format!(
            "{}->{}:{}",
            self.source_ip,
            self.dest_ip,
            self.test_type.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resolve(pairs: &[(&str, &str)]) -> Result<PipeConfig, PipeConfigError> {
        let settings = Settings::from_parts(None, BTreeMap::new());
        let mut flags = FlagOverrides::default();
        flags.set("SOURCE_VM_PRIVATE_IP", Some("198.18.1.4"));
        flags.set("DEST_VM_PRIVATE_IP", Some("198.18.1.5"));
        for (k, v) in pairs {
            flags.set(k, Some(*v));
        }
        PipeConfig::resolve(&settings, &flags)
    }

    #[test]
    fn defaults() {
        let c = resolve(&[]).unwrap();
        assert_eq!(c.iterations, 8);
        assert_eq!(c.duration_secs, 10);
        assert_eq!(c.streams, 8);
        assert_eq!(c.warmup, 1);
        assert_eq!(c.test_type, TestType::Both);
        assert_eq!(c.compare, CompareMode::None);
        assert_eq!(c.baseline_key(), "198.18.1.4->198.18.1.5:both");
    }

    #[test]
    fn errors_name_flag_and_value() {
        let e = resolve(&[("ITERATIONS", "0")]).unwrap_err().to_string();
        assert!(e.contains("--iterations") && e.contains("`0`"), "{e}");
        let e = resolve(&[("TEST_TYPE", "speed")]).unwrap_err().to_string();
        assert!(e.contains("--test-type") && e.contains("`speed`"), "{e}");
        let e = resolve(&[("SESSION_ID", "../x")]).unwrap_err().to_string();
        assert!(e.contains("--session-id"), "{e}");
        let e = resolve(&[("STREAMS", "abc")]).unwrap_err().to_string();
        assert!(e.contains("--streams") && e.contains("`abc`"), "{e}");
        let e = resolve(&[("IPERF_PORT", "19765")]).unwrap_err().to_string();
        assert!(e.contains("must all differ"), "{e}");
        let e = resolve(&[("EXPECTED_THROUGHPUT_GBPS", "-1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--expected-throughput-gbps"), "{e}");
    }

    #[test]
    fn missing_dest() {
        let settings = Settings::from_parts(None, BTreeMap::new());
        let mut flags = FlagOverrides::default();
        flags.set("SOURCE_VM_PRIVATE_IP", Some("198.18.1.4"));
        let e = PipeConfig::resolve(&settings, &flags)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--dest-ip"), "{e}");
    }

    #[test]
    fn compare_modes() {
        assert_eq!(
            resolve(&[("COMPARE_BASELINE", "true")]).unwrap().compare,
            CompareMode::Latest
        );
        assert!(matches!(
            resolve(&[("BASELINE_SESSION", "pmeter_20260101T000000Z")])
                .unwrap()
                .compare,
            CompareMode::Session(_)
        ));
    }
}
