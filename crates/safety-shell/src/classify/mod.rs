//! The classifier: SAFE, RISKY or FORBIDDEN for a command string.
//!
//! Pipeline: the command is parsed with a real shell grammar (`brush-parser`), the whole
//! tree is walked (lists, pipelines, subshells, groups, substitutions, here-documents,
//! `eval`, `sh -c`, wrappers such as `sudo`/`env`/`timeout`/`xargs`, `ssh host cmd`,
//! `az vm run-command invoke --scripts`), every simple command is resolved to a program
//! and checked against the FORBIDDEN rules and the SAFE allowlist (each tool with its own
//! option parser), redirections are checked against the output directory, and the class
//! of the whole is the strictest class of its parts. Anything not understood is RISKY.
//! See `docs/safety-shell.md` for every rule.

mod azure;
mod forbidden;
mod net;
mod opts;
mod paths;
mod ssh;
mod tools;
mod walk;
mod words;

use crate::policy::Policy;
use crate::types::{Class, Classification, ClassifyContext, Tier};

pub(crate) use walk::Leaf;

/// Classifies one command string with the built-in rules.
pub fn classify(command: &str, ctx: &ClassifyContext) -> Classification {
    classify_with_policy(command, ctx, None)
}

/// Classifies one command string with the built-in rules and, when given, a deployment
/// policy (the strictest match wins; a policy never makes a FORBIDDEN command runnable).
pub fn classify_with_policy(
    command: &str,
    ctx: &ClassifyContext,
    policy: Option<&Policy>,
) -> Classification {
    let mut walker = walk::Walker::new(ctx, policy);
    walker.script(command)
}

/// Every simple command (after wrappers are looked through) in `command`, for policy
/// example checks.
pub(crate) fn leaves(command: &str) -> Vec<Leaf> {
    let ctx = ClassifyContext::default();
    let mut walker = walk::Walker::new(&ctx, None);
    walker.collect_leaves = true;
    let _ = walker.script(command);
    walker.leaves
}

/// When `command` is exactly one simple command that needs no shell to run (no expansions,
/// redirections, assignments, or compound syntax), its argv after quote removal.
pub fn simple_argv(command: &str) -> Option<Vec<String>> {
    walk::simple_argv(command)
}

/// The stricter of two verdicts (class first, then tier); ties keep `a`.
pub(crate) fn worst(a: Classification, b: Classification) -> Classification {
    if (b.classification, b.tier) > (a.classification, a.tier) {
        b
    } else {
        a
    }
}

pub(crate) fn safe(tier: Tier, reason: impl Into<String>) -> Classification {
    Classification::new(Class::Safe, tier, reason)
}

pub(crate) fn risky(tier: Tier, reason: impl Into<String>) -> Classification {
    Classification::new(Class::Risky, tier, reason)
}

pub(crate) fn forbidden(reason: impl Into<String>) -> Classification {
    Classification::new(Class::Forbidden, Tier::Destructive, reason)
}

/// `SAFE read_only` with a reason naming the program.
pub(crate) fn read_only(program: &str) -> Classification {
    safe(
        Tier::ReadOnly,
        format!("`{program}` is an allowlisted read-only diagnostic"),
    )
}

/// `RISKY unknown` for an option the tool's parser does not know or allow.
pub(crate) fn bad_option(program: &str, opt: &str) -> Classification {
    risky(
        Tier::Unknown,
        format!("`{program}` with option or argument `{opt}` is not in the read-only allowlist"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_prefers_class_then_tier_and_keeps_the_first_on_ties() {
        let a = safe(Tier::ReadOnly, "a");
        let b = safe(Tier::Capture, "b");
        assert_eq!(worst(a.clone(), b.clone()).reason, "b");
        assert_eq!(worst(a.clone(), safe(Tier::ReadOnly, "c")).reason, "a");
        assert_eq!(worst(risky(Tier::Secret, "r"), forbidden("f")).reason, "f");
        assert_eq!(worst(forbidden("f"), risky(Tier::Unknown, "r")).reason, "f");
    }
}
