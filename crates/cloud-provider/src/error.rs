//! Typed errors of the cloud provider and the remote runner, read from `az`'s exit code and
//! stderr, with the exit code of the workspace conventions (3 runtime, 4 integrity, 5 denied,
//! 2 usage).

use std::time::Duration;

use safety_shell::GateError;

/// Why a cloud call (or a remote command) did not give a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The resource does not exist (`ResourceNotFound`, `(NotFound)`, az exit code 3).
    #[error("not found: {message}; check the name and resource group")]
    NotFound {
        /// az's message (first lines of stderr).
        message: String,
    },
    /// The signed-in identity lacks a permission.
    #[error("authorization failed: {}; grant that permission to the signed-in identity or use another one", match .action { Some(a) => format!("missing permission '{a}'"), None => message.clone() })]
    AuthorizationFailed {
        /// The action Azure named (`Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action`).
        action: Option<String>,
        /// az's message.
        message: String,
    },
    /// The CLI is not signed in.
    #[error("the az CLI is not signed in: run 'az login' (or set AZ_PATH to the lab's front end)")]
    NotLoggedIn {
        /// az's message.
        message: String,
    },
    /// Azure throttled the request and the retries ran out (or Retry-After was too long).
    #[error("Azure throttled the request (429 TooManyRequests) {attempts} time(s){}; wait and try again", match .retry_after { Some(d) => format!(", last Retry-After {}s", d.as_secs()), None => String::new() })]
    Throttled {
        /// How many attempts were made.
        attempts: u32,
        /// The last Retry-After Azure gave.
        retry_after: Option<Duration>,
        /// az's message.
        message: String,
    },
    /// The `az` executable could not be started.
    #[error("the az CLI ({az}) could not be started: {detail}; install azure-cli or set AZ_PATH")]
    CliMissing {
        /// The path or name that was tried.
        az: String,
        /// Why.
        detail: String,
    },
    /// az printed something that is not the expected JSON (never read as an empty result).
    #[error("malformed {what} from az: {detail}")]
    Malformed {
        /// What was being read.
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// The output was cut (the gate's cap, or Azure's 4 KiB run-command limit) and could not
    /// be recovered.
    #[error("output of {what} was truncated: {detail}")]
    OutputTruncated {
        /// The command.
        what: String,
        /// What happened and what to do.
        detail: String,
    },
    /// The gate refused the command (an operator or policy denied it, or it is FORBIDDEN).
    #[error("stopped because the gate refused: {reason} [audit {audit_id}]")]
    Denied {
        /// The gate's reason.
        reason: String,
        /// The audit record of the refusal.
        audit_id: String,
    },
    /// The remote host could not be reached (SSH exit 255, run-command transport failure).
    #[error("cannot reach {target}: {message}")]
    Unreachable {
        /// Where.
        target: String,
        /// Why.
        message: String,
    },
    /// A caller-supplied value cannot be used in a command line.
    #[error("invalid {what} {value:?}: {message}")]
    InvalidArgument {
        /// What it is (`resource group`, `VM name`, …).
        what: String,
        /// The value.
        value: String,
        /// What is expected.
        message: String,
    },
    /// az failed for another reason.
    #[error("az failed (exit {exit_code:?}): {message}")]
    Failed {
        /// az's exit code.
        exit_code: Option<i32>,
        /// az's message.
        message: String,
    },
    /// The audit record could not be written (the command may have run).
    #[error("audit log failure: {0}")]
    Audit(String),
}

impl CloudError {
    /// The process exit code of the conventions: 5 denied, 2 invalid argument, 3 otherwise.
    /// (Integrity failures of artifacts are [`crate::artifact::ArtifactError`], exit 4.)
    pub fn exit_code(&self) -> i32 {
        match self {
            CloudError::Denied { .. } => 5,
            CloudError::InvalidArgument { .. } => 2,
            _ => 3,
        }
    }

    /// Whether this is [`CloudError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, CloudError::NotFound { .. })
    }

    /// Turns a gate refusal or start failure into a typed error. `az` names the executable,
    /// so a start failure of the CLI itself becomes [`CloudError::CliMissing`].
    pub fn from_gate(e: GateError, az: Option<&str>) -> CloudError {
        match e {
            GateError::Forbidden {
                audit_id,
                classification,
            } => CloudError::Denied {
                reason: format!("FORBIDDEN: {}", classification.reason),
                audit_id,
            },
            GateError::Denied {
                audit_id,
                decided_by,
                reason,
            } => CloudError::Denied {
                reason: format!(
                    "denied by {decided_by}: {}",
                    reason.as_deref().unwrap_or("no reason given")
                ),
                audit_id,
            },
            GateError::CouldNotRun { message, .. } => match az {
                Some(az) if message.contains("cannot start") => CloudError::CliMissing {
                    az: az.to_string(),
                    detail: message,
                },
                _ => CloudError::Failed {
                    exit_code: None,
                    message,
                },
            },
            GateError::Audit(a) => CloudError::Audit(a.to_string()),
        }
    }
}

/// The first few non-empty lines of az's stderr, joined, for messages.
pub fn stderr_summary(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(4)
        .collect();
    let s = lines.join(" / ");
    if s.chars().count() > 600 {
        s.chars().take(600).collect::<String>() + "…"
    } else {
        s
    }
}

/// Reads the action out of `… does not have authorization to perform action 'X' over …`.
pub fn missing_permission(stderr: &str) -> Option<String> {
    const MARK: &str = "authorization to perform action";
    let i = stderr.find(MARK)?;
    let rest = stderr[i + MARK.len()..].trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[quote.len_utf8()..];
    let end = rest.find(quote)?;
    let action = &rest[..end];
    (!action.is_empty() && action.len() <= 300).then(|| action.to_string())
}

/// Reads a Retry-After value (seconds) from az's stderr (`Retry-After: 17`,
/// `'Retry-After': '17'`, `retry after 17 seconds`).
pub fn retry_after(stderr: &str) -> Option<Duration> {
    let lower = stderr.to_ascii_lowercase();
    for mark in ["retry-after", "retry after"] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(mark) {
            let start = from + i + mark.len();
            let digits: String = lower[start..]
                .chars()
                .skip_while(|c| matches!(c, ':' | '=' | ' ' | '\'' | '"'))
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse::<u64>() {
                return Some(Duration::from_secs(n));
            }
            from = start;
        }
    }
    None
}

fn is_throttle(stderr: &str) -> bool {
    stderr.contains("TooManyRequests")
        || stderr.contains("(429)")
        || stderr.contains("429 Client Error")
        || stderr.contains("status code 429")
        || stderr.contains("Status code: 429")
        || stderr.contains("RetryableError")
            && stderr.to_ascii_lowercase().contains("too many requests")
}

/// Classifies a failed `az` run from its exit code and stderr.
pub fn classify_az_failure(exit_code: Option<i32>, stderr: &str) -> CloudError {
    let message = stderr_summary(stderr);
    if is_throttle(stderr) {
        return CloudError::Throttled {
            attempts: 1,
            retry_after: retry_after(stderr),
            message,
        };
    }
    if stderr.contains("AuthorizationFailed")
        || stderr.contains("does not have authorization to perform action")
        || stderr.contains("AuthorizationPermissionMismatch")
    {
        return CloudError::AuthorizationFailed {
            action: missing_permission(stderr),
            message,
        };
    }
    if stderr.contains("Please run 'az login'") || stderr.contains("az login") {
        return CloudError::NotLoggedIn { message };
    }
    let not_found_codes = [
        "ResourceNotFound",
        "(NotFound)",
        "Code: NotFound",
        "ResourceGroupNotFound",
        "BlobNotFound",
        "ContainerNotFound",
        "ParentResourceNotFound",
    ];
    if exit_code == Some(3) || not_found_codes.iter().any(|c| stderr.contains(c)) {
        return CloudError::NotFound { message };
    }
    if exit_code == Some(127) {
        return CloudError::CliMissing {
            az: "az".to_string(),
            detail: message,
        };
    }
    CloudError::Failed { exit_code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Stderr texts as the az CLI prints them (error format of azure-cli 2.x).
    const NOT_FOUND: &str = "ERROR: (ResourceNotFound) The Resource 'Microsoft.Network/networkInterfaces/nope' under resource group 'rg-lab' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix\nCode: ResourceNotFound\nMessage: The Resource 'Microsoft.Network/networkInterfaces/nope' under resource group 'rg-lab' was not found.\n";
    const NOT_FOUND_SHORT: &str =
        "ERROR: (NotFound) Network security group nsg-x not found.\nCode: NotFound\n";
    const AUTHZ: &str = "ERROR: (AuthorizationFailed) The client 'ops@example.com' with object id '00000000-0000-0000-0000-000000000001' does not have authorization to perform action 'Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action' over scope '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic1' or the scope is invalid. If access was recently granted, please refresh your credentials.\nCode: AuthorizationFailed\n";
    const THROTTLED: &str = "ERROR: (TooManyRequests) The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits\nCode: TooManyRequests\nMessage: The request is being throttled.\nRetry-After: 17\n";
    const THROTTLED_429: &str =
        "ERROR: Operation returned an invalid status 'Too Many Requests' (429)\n";
    const LOGIN: &str = "ERROR: Please run 'az login' to setup account.\n";

    #[test]
    fn not_found_by_text_and_exit_code() {
        assert!(classify_az_failure(Some(1), NOT_FOUND).is_not_found());
        assert!(classify_az_failure(Some(1), NOT_FOUND_SHORT).is_not_found());
        assert!(classify_az_failure(Some(3), "ERROR: gone\n").is_not_found());
        let e = classify_az_failure(Some(3), NOT_FOUND);
        assert_eq!(e.exit_code(), 3);
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn authorization_names_the_permission() {
        let e = classify_az_failure(Some(1), AUTHZ);
        match &e {
            CloudError::AuthorizationFailed { action, .. } => assert_eq!(
                action.as_deref(),
                Some("Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action")
            ),
            other => panic!("{other:?}"),
        }
        assert!(e
            .to_string()
            .contains("missing permission 'Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action'"));
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn throttling_and_retry_after() {
        match classify_az_failure(Some(1), THROTTLED) {
            CloudError::Throttled { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(17)))
            }
            other => panic!("{other:?}"),
        }
        match classify_az_failure(Some(1), THROTTLED_429) {
            CloudError::Throttled { retry_after, .. } => assert_eq!(retry_after, None),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            retry_after("headers {'Retry-After': '5'}"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            retry_after("please retry after 30 seconds"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after("Retry-After: soon"), None);
    }

    #[test]
    fn login_missing_cli_and_other() {
        assert!(matches!(
            classify_az_failure(Some(1), LOGIN),
            CloudError::NotLoggedIn { .. }
        ));
        assert!(matches!(
            classify_az_failure(Some(127), "az: command not found"),
            CloudError::CliMissing { .. }
        ));
        let e = classify_az_failure(Some(1), "ERROR: (InvalidRequestFormat) bad\n");
        assert!(matches!(
            e,
            CloudError::Failed {
                exit_code: Some(1),
                ..
            }
        ));
    }

    #[test]
    fn missing_permission_is_robust() {
        assert_eq!(
            missing_permission("does not have authorization to perform action"),
            None
        );
        assert_eq!(
            missing_permission("authorization to perform action 'unterminated"),
            None
        );
        assert_eq!(
            missing_permission("authorization to perform action \"a/b/read\" over"),
            Some("a/b/read".into())
        );
    }

    #[test]
    fn exit_codes() {
        let denied = CloudError::Denied {
            reason: "denied by policy:never".into(),
            audit_id: "x_000001".into(),
        };
        assert_eq!(denied.exit_code(), 5);
        let bad = CloudError::InvalidArgument {
            what: "VM name".into(),
            value: "-x".into(),
            message: "m".into(),
        };
        assert_eq!(bad.exit_code(), 2);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*", code in proptest::option::of(-1i32..300)) {
            let _ = classify_az_failure(code, &s);
            let _ = retry_after(&s);
            let _ = missing_permission(&s);
        }
    }
}
