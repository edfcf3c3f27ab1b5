//! Deployment policy for the classifier (TOML): allow / ask / forbid rules.
//!
//! A policy is a list of `[[rule]]` tables. Each rule matches simple commands (after
//! quote removal, with wrappers such as `sudo`, `sh -c`, `ssh host` looked through) by a
//! program name plus argv prefix and/or a regex over the normalised text
//! (`program arg1 arg2 …`, program as its base name). Every rule carries examples that
//! must match (`examples_match`, at least one) and examples that must not
//! (`examples_no_match`); they are checked when the policy loads.
//!
//! Semantics (the strictest matching rule wins: `forbid` > `ask` > `allow`):
//! - `forbid` makes the matched command FORBIDDEN;
//! - `ask` makes a SAFE command RISKY;
//! - `allow` lifts a built-in RISKY command to SAFE, only when the command has no
//!   expansion (every word static) and the program is not a wrapper or shell (`sudo`,
//!   `sh -c`, `ssh`, `az`, …: the rule must name the command inside). It never changes a
//!   FORBIDDEN command, and it never lifts a RISKY part that is not the command itself
//!   (a redirection, an assignment, a background `&`, a loop, another command of a
//!   pipeline): every part of a compound must be SAFE for the whole to be SAFE.

use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::classify::{leaves, Leaf};
use crate::types::{Class, Classification};

/// What a rule does to the commands it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Lift a built-in RISKY command to SAFE.
    Allow,
    /// Make a SAFE command RISKY.
    Ask,
    /// Make the command FORBIDDEN.
    Forbid,
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name, reported in `Classification::policy_rule`.
    pub name: String,
    /// What the rule does.
    pub action: Action,
    /// Why (shown in the verdict).
    pub reason: Option<String>,
    program: Option<String>,
    argv_prefix: Vec<String>,
    regex: Option<Regex>,
}

impl Rule {
    fn matches(&self, leaf: &Leaf) -> bool {
        if self.action == Action::Allow && !leaf.is_static {
            return false;
        }
        if let Some(p) = &self.program {
            if &leaf.program != p {
                return false;
            }
            if leaf.args.len() < self.argv_prefix.len()
                || leaf.args.iter().zip(&self.argv_prefix).any(|(a, b)| a != b)
            {
                return false;
            }
        }
        if let Some(r) = &self.regex {
            if !r.is_match(&leaf.text()) {
                return false;
            }
        }
        true
    }

    fn matches_command(&self, command: &str) -> bool {
        leaves(command).iter().any(|l| self.matches(l))
    }
}

/// A loaded, validated classification policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<u32>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    action: Action,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    program: Option<String>,
    #[serde(default)]
    argv_prefix: Vec<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    examples_match: Vec<String>,
    #[serde(default)]
    examples_no_match: Vec<String>,
}

fn invalid(msg: String) -> PolicyError {
    PolicyError::Invalid(msg)
}

impl Policy {
    /// Loads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_toml_str(&text)
    }

    /// Parses and validates a policy from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            invalid(format!(
                "{}; fix the TOML (see docs/safety-shell.md)",
                e.message()
            ))
        })?;
        let mut names = BTreeSet::new();
        let mut rules = Vec::new();
        for r in file.rules {
            let name = r.name.trim().to_string();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid(format!(
                    "rule name `{}` must be non-empty and use only letters, digits, '-', '_' and '.'",
                    r.name
                )));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(format!(
                    "rule `{name}` is defined twice; rename one"
                )));
            }
            if r.program.is_none() && r.regex.is_none() {
                return Err(invalid(format!(
                    "rule `{name}` needs `program` and/or `regex` to match anything"
                )));
            }
            if r.program.is_none() && !r.argv_prefix.is_empty() {
                return Err(invalid(format!(
                    "rule `{name}` has `argv_prefix` without `program`"
                )));
            }
            if let Some(p) = &r.program {
                if p.is_empty() || p.contains('/') {
                    return Err(invalid(format!(
                        "rule `{name}`: `program` must be a base name such as `ping`, not `{p}`"
                    )));
                }
            }
            let regex = match &r.regex {
                Some(s) => Some(
                    Regex::new(s)
                        .map_err(|e| invalid(format!("rule `{name}` has an invalid regex: {e}")))?,
                ),
                None => None,
            };
            if r.examples_match.is_empty() {
                return Err(invalid(format!(
                    "rule `{name}` needs at least one entry in `examples_match`"
                )));
            }
            let rule = Rule {
                name: name.clone(),
                action: r.action,
                reason: r.reason,
                program: r.program,
                argv_prefix: r.argv_prefix,
                regex,
            };
            for ex in &r.examples_match {
                if !rule.matches_command(ex) {
                    return Err(invalid(format!(
                        "rule `{name}` does not match its example `{ex}` (examples_match); fix the rule or the example"
                    )));
                }
            }
            for ex in &r.examples_no_match {
                if rule.matches_command(ex) {
                    return Err(invalid(format!(
                        "rule `{name}` matches `{ex}`, listed in examples_no_match; fix the rule or the example"
                    )));
                }
            }
            rules.push(rule);
        }
        Ok(Policy { rules })
    }

    /// The rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Applies the policy to one simple command whose built-in verdict is `builtin`.
    /// `liftable` is false for wrappers and shells (an allow rule never lifts them).
    pub(crate) fn apply(
        &self,
        leaf: &Leaf,
        builtin: Classification,
        liftable: bool,
    ) -> Classification {
        let mut best: Option<&Rule> = None;
        for r in &self.rules {
            if r.matches(leaf) && best.is_none_or(|b| r.action > b.action) {
                best = Some(r);
            }
        }
        let Some(rule) = best else {
            return builtin;
        };
        let why = rule
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let decided = |class: Class, text: String| Classification {
            classification: class,
            tier: builtin.tier,
            reason: text,
            policy_rule: Some(rule.name.clone()),
        };
        match (rule.action, builtin.classification) {
            (_, Class::Forbidden) => builtin,
            (Action::Forbid, _) => decided(
                Class::Forbidden,
                format!("forbidden by policy rule `{}`{why}", rule.name),
            ),
            (Action::Ask, Class::Safe) => decided(
                Class::Risky,
                format!("policy rule `{}` requires approval{why}", rule.name),
            ),
            (Action::Allow, Class::Risky) if liftable => decided(
                Class::Safe,
                format!(
                    "allowed by policy rule `{}`{why} (built-in: {})",
                    rule.name, builtin.reason
                ),
            ),
            // An ask rule on a command that is RISKY anyway still decided that no allow
            // rule lifts it: name it.
            (Action::Ask, Class::Risky) => Classification {
                policy_rule: Some(rule.name.clone()),
                reason: format!("{} (policy rule `{}` also asks)", builtin.reason, rule.name),
                ..builtin
            },
            _ => builtin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify_with_policy;
    use crate::types::{ClassifyContext, Tier};

    const POLICY: &str = r#"
version = 1

[[rule]]
name = "allow-lab-iptables-counters-reset"
action = "allow"
reason = "the lab resets counters between runs"
program = "iptables"
argv_prefix = ["-Z"]
examples_match = ["iptables -Z", "sudo iptables -Z INPUT"]
examples_no_match = ["iptables -F", "ip6tables -Z"]

[[rule]]
name = "ask-before-curl-external"
action = "ask"
regex = '^curl .*https?://(?:[a-z0-9-]+\.)*example\.com'
examples_match = ["curl https://www.example.com/"]
examples_no_match = ["curl http://198.18.1.5/"]

[[rule]]
name = "forbid-nsg-delete"
action = "forbid"
program = "az"
argv_prefix = ["network", "nsg", "delete"]
reason = "NSGs are managed by Terraform"
examples_match = ["az network nsg delete -g rg -n nsg"]
examples_no_match = ["az network nsg show -g rg -n nsg"]

[[rule]]
name = "allow-any-reboot"
action = "allow"
program = "reboot"
examples_match = ["reboot"]

[[rule]]
name = "allow-ping-flood-in-lab"
action = "allow"
regex = '^ping -f -c [0-9]+ 198\.18\.'
examples_match = ["ping -f -c 100 198.18.1.5"]

[[rule]]
name = "ask-ping-lab"
action = "ask"
regex = '^ping .*198\.18\.1\.5$'
examples_match = ["ping -c 1 198.18.1.5"]
"#;

    fn policy() -> Policy {
        Policy::from_toml_str(POLICY).expect("valid policy")
    }

    fn cls(cmd: &str) -> Classification {
        classify_with_policy(cmd, &ClassifyContext::default(), Some(&policy()))
    }

    #[test]
    fn loads_and_lists_rules() {
        assert_eq!(policy().rules().len(), 6);
    }

    #[test]
    fn allow_lifts_risky_to_safe_and_names_the_rule() {
        let v = cls("iptables -Z");
        assert_eq!(v.classification, Class::Safe);
        assert_eq!(
            v.policy_rule.as_deref(),
            Some("allow-lab-iptables-counters-reset")
        );
        // Through a wrapper: the rule matches the command inside.
        assert_eq!(cls("sudo iptables -Z INPUT").classification, Class::Safe);
        // Other risky parts are not lifted.
        assert_eq!(cls("iptables -Z > /tmp/x").classification, Class::Risky);
        assert_eq!(cls("iptables -Z; iptables -F").classification, Class::Risky);
        assert_eq!(cls("iptables -Z &").classification, Class::Risky);
        // Expansions never match an allow rule.
        assert_eq!(cls("iptables -Z $CHAIN").classification, Class::Risky);
    }

    #[test]
    fn allow_cannot_unforbid() {
        let v = cls("reboot");
        assert_eq!(v.classification, Class::Forbidden);
        assert_eq!(v.policy_rule, None);
        assert_eq!(cls("sudo reboot").classification, Class::Forbidden);
    }

    #[test]
    fn forbid_makes_anything_forbidden() {
        let v = cls("az network nsg delete -g rg -n nsg");
        assert_eq!(v.classification, Class::Forbidden);
        assert_eq!(v.policy_rule.as_deref(), Some("forbid-nsg-delete"));
        assert_eq!(v.tier, Tier::CloudChange);
        assert_eq!(
            cls("ip a && az network nsg delete -g rg -n nsg").classification,
            Class::Forbidden
        );
    }

    #[test]
    fn ask_makes_safe_risky() {
        let v = cls("curl https://www.example.com/");
        assert_eq!(v.classification, Class::Risky);
        assert_eq!(v.policy_rule.as_deref(), Some("ask-before-curl-external"));
        assert_eq!(cls("curl http://198.18.1.5/").classification, Class::Safe);
    }

    #[test]
    fn strictest_match_wins() {
        // Both the allow rule (flood) and the ask rule (…198.18.1.5) match: ask wins,
        // so the flood stays RISKY.
        let v = cls("ping -f -c 100 198.18.1.5");
        assert_eq!(v.classification, Class::Risky);
        assert_eq!(v.policy_rule.as_deref(), Some("ask-ping-lab"));
        // Only the allow rule matches here.
        let v = cls("ping -f -c 100 198.18.1.6");
        assert_eq!(v.classification, Class::Safe);
        assert_eq!(v.policy_rule.as_deref(), Some("allow-ping-flood-in-lab"));
    }

    fn load_error(text: &str) -> String {
        Policy::from_toml_str(text)
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn bad_examples_are_load_errors_naming_the_rule() {
        let e = load_error(
            "[[rule]]\nname = \"r1\"\naction = \"allow\"\nprogram = \"ping\"\nexamples_match = [\"ss -tlnp\"]\n",
        );
        assert!(e.contains("`r1`") && e.contains("examples_match"), "{e}");
        let e = load_error(
            "[[rule]]\nname = \"r2\"\naction = \"ask\"\nprogram = \"ping\"\nexamples_match = [\"ping x\"]\nexamples_no_match = [\"sudo ping y\"]\n",
        );
        assert!(e.contains("`r2`") && e.contains("examples_no_match"), "{e}");
    }

    #[test]
    fn malformed_policies_are_rejected() {
        assert!(load_error("[[rule]]\nname = \"x\"\naction = \"permit\"\nprogram = \"a\"\nexamples_match=[\"a\"]\n").contains("invalid policy"));
        assert!(
            load_error("[[rule]]\nname = \"x\"\naction = \"allow\"\nexamples_match=[\"a\"]\n")
                .contains("`x`")
        );
        assert!(load_error(
            "[[rule]]\nname = \"x\"\naction = \"allow\"\nregex = \"(\"\nexamples_match=[\"a\"]\n"
        )
        .contains("invalid regex"));
        assert!(
            load_error("[[rule]]\nname = \"x\"\naction = \"allow\"\nprogram = \"a\"\n")
                .contains("examples_match")
        );
        assert!(load_error("[[rule]]\nname = \"x\"\naction = \"allow\"\nprogram = \"/bin/a\"\nexamples_match=[\"a\"]\n").contains("base name"));
        let dup =
            "[[rule]]\nname = \"x\"\naction = \"ask\"\nprogram = \"a\"\nexamples_match=[\"a\"]\n";
        assert!(load_error(&format!("{dup}{dup}")).contains("twice"));
        assert!(load_error("[[rule]]\nname = \"x\"\nactoin = \"ask\"\n").contains("invalid policy"));
        assert!(Policy::from_toml_str("").is_ok());
    }

    #[test]
    fn load_reports_missing_file() {
        let e = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(matches!(e, PolicyError::Io { .. }));
    }
}
