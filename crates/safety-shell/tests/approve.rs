//! Approvers: terminal prompt, never, all-risky, policy file, callback.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use safety_shell::approve::{
    render_prompt, AllRiskyApprover, ApprovalRequest, Approver, CallbackApprover, DecidedBy,
    Decision, NeverApprover, PolicyApprover, TerminalApprover,
};
use safety_shell::{AzureVmTarget, Class, Classification, SshTarget, Target, Tier};

fn req(command: &str, tier: Tier, argv: Option<&[&str]>, target: Target) -> ApprovalRequest {
    ApprovalRequest {
        command: command.into(),
        argv: argv.map(|a| a.iter().map(|s| s.to_string()).collect()),
        classification: Classification::new(Class::Risky, tier, "because"),
        target,
        reasoning: "need to see SYNs".into(),
        round: 1,
    }
}

fn local(command: &str) -> ApprovalRequest {
    req(command, Tier::HostChange, None, Target::Local)
}

/// Output sink the test can read.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn term(input: &str) -> (TerminalApprover, Shared) {
    let out = Shared::default();
    let t = TerminalApprover::with_io(
        std::io::Cursor::new(input.as_bytes().to_vec()),
        out.clone(),
        Duration::from_secs(5),
    );
    (t, out)
}

#[test]
fn terminal_approve() {
    let (t, out) = term("a\n");
    let a = t.decide(&local("iptables -F"));
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.decided_by, DecidedBy::Terminal);
    let shown = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for part in [
        "host_change",
        "because",
        "local",
        "iptables -F",
        "need to see SYNs",
        "[a]pprove",
    ] {
        assert!(shown.contains(part), "prompt lacks {part}: {shown}");
    }
}

#[test]
fn terminal_deny_with_and_without_reason() {
    let (t, _) = term("d\nnot during business hours\n");
    assert_eq!(
        t.decide(&local("x")).decision,
        Decision::Deny {
            reason: Some("not during business hours".into())
        }
    );
    let (t, _) = term("deny\n\n");
    assert_eq!(
        t.decide(&local("x")).decision,
        Decision::Deny { reason: None }
    );
}

#[test]
fn terminal_modify() {
    let (t, _) = term("m\ntcpdump -c 10 -i eth0\n");
    assert_eq!(
        t.decide(&local("tcpdump -i eth0")).decision,
        Decision::Modify {
            command: "tcpdump -c 10 -i eth0".into()
        }
    );
    // An empty modification is a denial.
    let (t, _) = term("m\n\n");
    assert!(matches!(
        t.decide(&local("x")).decision,
        Decision::Deny { .. }
    ));
}

#[test]
fn terminal_anything_else_is_denial() {
    for input in ["", "maybe\n", "approve please\n"] {
        let (t, _) = term(input);
        assert!(
            matches!(t.decide(&local("x")).decision, Decision::Deny { .. }),
            "{input:?} was not a denial"
        );
    }
}

struct Silent(std::sync::mpsc::Receiver<()>);
impl std::io::Read for Silent {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(0)
    }
}

#[test]
fn terminal_timeout_denies() {
    let (_keep, rx) = std::sync::mpsc::channel();
    let t = TerminalApprover::with_io(Silent(rx), std::io::sink(), Duration::from_millis(150));
    let t0 = Instant::now();
    let a = t.decide(&local("x"));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert!(t0.elapsed() < Duration::from_secs(3));
    match a.decision {
        Decision::Deny { reason } => assert!(reason.unwrap().contains("timed out")),
        d => panic!("{d:?}"),
    }
}

#[test]
fn prompt_box_shows_target() {
    let mut r = req(
        "iptables -S",
        Tier::ReadOnly,
        None,
        Target::AzureRunCommand(AzureVmTarget {
            resource_group: "rg".into(),
            vm_name: "dest-vm".into(),
            subscription: None,
            az_path: None,
        }),
    );
    r.round = 2;
    let p = render_prompt(&r, Duration::from_secs(30));
    assert!(p.contains("azure-vm:rg/dest-vm"));
    assert!(p.contains("round 2"));
    assert!(p.contains("30s"));
}

#[test]
fn never_and_all_risky() {
    let a = NeverApprover.decide(&local("x"));
    assert!(matches!(a.decision, Decision::Deny { .. }));
    assert_eq!(a.decided_by.to_string(), "policy:never");
    let a = AllRiskyApprover.decide(&local("x"));
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.decided_by.to_string(), "policy:all-risky");
    // all-risky approves RISKY only.
    let mut r = local("x");
    r.classification.classification = Class::Forbidden;
    assert!(matches!(
        AllRiskyApprover.decide(&r).decision,
        Decision::Deny { .. }
    ));
}

#[test]
fn callback_approver() {
    let a = CallbackApprover(|r: &ApprovalRequest| {
        if r.target == Target::Local {
            Decision::Approve
        } else {
            Decision::Deny { reason: None }
        }
    });
    assert_eq!(a.decide(&local("x")).decision, Decision::Approve);
    assert_eq!(a.decide(&local("x")).decided_by.to_string(), "callback");
    let r = req("x", Tier::Capture, None, Target::Ssh(SshTarget::new("h")));
    assert!(matches!(a.decide(&r).decision, Decision::Deny { .. }));
}

const POLICY: &str = r#"
[[rule]]
name = "approve-captures"
decision = "approve"
tiers = ["capture"]
programs = ["tcpdump"]

[[rule]]
name = "no-nsg"
decision = "deny"
command_regex = '\baz\s+network\s+nsg\b'

[[rule]]
name = "approve-az-local"
decision = "approve"
command_regex = '^az '
targets = ["local"]

[[rule]]
name = "no-iptables"
decision = "deny"
programs = ["iptables"]
"#;

#[test]
fn policy_rules_strictest_match_and_default_deny() {
    let p = PolicyApprover::from_toml_str("p.toml", POLICY).unwrap();
    let cap = req(
        "tcpdump -i eth0 -c 5",
        Tier::Capture,
        Some(&["tcpdump", "-i", "eth0", "-c", "5"]),
        Target::Netns { name: "n".into() },
    );
    let a = p.decide(&cap);
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(a.decided_by.to_string(), "policy:p.toml#approve-captures");

    // /usr/sbin/tcpdump matches by basename.
    let cap2 = req(
        "x",
        Tier::Capture,
        Some(&["/usr/sbin/tcpdump", "-c", "1"]),
        Target::Local,
    );
    assert_eq!(p.decide(&cap2).decision, Decision::Approve);

    // Deny beats approve even though the approve rule comes first in the file.
    let nsg = req(
        "az network nsg rule create -g rg --nsg-name n -n r --priority 100",
        Tier::CloudChange,
        None,
        Target::Local,
    );
    let a = p.decide(&nsg);
    assert!(matches!(a.decision, Decision::Deny { .. }));
    assert_eq!(a.decided_by.to_string(), "policy:p.toml#no-nsg");

    // Target kind condition.
    let az_local = req("az vm list", Tier::CloudRead, None, Target::Local);
    assert_eq!(p.decide(&az_local).decision, Decision::Approve);
    let az_ssh = req(
        "az vm list",
        Tier::CloudRead,
        None,
        Target::Ssh(SshTarget::new("h")),
    );
    let a = p.decide(&az_ssh);
    assert!(matches!(a.decision, Decision::Deny { .. }));
    assert_eq!(a.decided_by.to_string(), "policy:p.toml#no-match");

    // A tcpdump that is not classified as a capture does not match the capture rule.
    let other_tier = req(
        "tcpdump -w /etc/x",
        Tier::HostChange,
        Some(&["tcpdump"]),
        Target::Local,
    );
    assert!(matches!(
        p.decide(&other_tier).decision,
        Decision::Deny { .. }
    ));

    // Compound commands: an approve rule never matches by program; a deny rule does.
    let compound = req("tcpdump -c 1 | head", Tier::Capture, None, Target::Local);
    assert!(matches!(
        p.decide(&compound).decision,
        Decision::Deny { .. }
    ));
    let sneaky = req(
        "true && /sbin/iptables -F",
        Tier::HostChange,
        None,
        Target::Local,
    );
    let a = p.decide(&sneaky);
    assert_eq!(a.decided_by.to_string(), "policy:p.toml#no-iptables");
}

#[test]
fn policy_file_errors_are_reported() {
    for bad in [
        "[[rule]]\nname = \"x\"\ndecision = \"maybe\"\n",
        "[[rule]]\nname = \"x\"\ndecision = \"approve\"\ncommand_regex = \"(\"\n",
        "[[rule]]\nname = \"x\"\ndecision = \"approve\"\ncolour = \"red\"\n",
        "[[rule]]\nname = \"x\"\ndecision = \"approve\"\n[[rule]]\nname = \"x\"\ndecision = \"deny\"\n",
        "[[rule]]\nname = \"x\"\ndecision = \"approve\"\ntiers = [\"bogus\"]\n",
    ] {
        assert!(PolicyApprover::from_toml_str("bad.toml", bad).is_err(), "{bad}");
    }
    assert!(PolicyApprover::load(std::path::Path::new("/nonexistent/policy.toml")).is_err());
}

#[test]
fn empty_policy_denies_everything() {
    let p = PolicyApprover::from_toml_str("empty.toml", "").unwrap();
    assert!(matches!(
        p.decide(&local("x")).decision,
        Decision::Deny { .. }
    ));
}

#[test]
fn demo_policy_allows_captures_but_no_nsg_changes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../demo/approve_policy_captures_only.toml");
    let p = PolicyApprover::load(&path).unwrap();
    let cap = req(
        "tcpdump -i eth0 -c 100 -w /tmp/out/cap.pcap",
        Tier::Capture,
        Some(&[
            "tcpdump",
            "-i",
            "eth0",
            "-c",
            "100",
            "-w",
            "/tmp/out/cap.pcap",
        ]),
        Target::Ssh(SshTarget::new("198.18.1.4")),
    );
    let a = p.decide(&cap);
    assert_eq!(a.decision, Decision::Approve);
    assert_eq!(
        a.decided_by.to_string(),
        "policy:approve_policy_captures_only.toml#local-and-vm-captures"
    );
    let nw = req(
        "az network watcher packet-capture create -g rg --vm dest-vm -n cap1",
        Tier::CloudChange,
        None,
        Target::Local,
    );
    assert_eq!(p.decide(&nw).decision, Decision::Approve);
    let nsg = req(
        "az network nsg rule update -g rg --nsg-name dest-nsg -n block-8080 --access Allow",
        Tier::CloudChange,
        None,
        Target::Local,
    );
    let a = p.decide(&nsg);
    assert!(matches!(a.decision, Decision::Deny { .. }));
    assert!(a.decided_by.to_string().ends_with("#no-nsg-changes"));
    let fw = req(
        "iptables -F",
        Tier::HostChange,
        Some(&["iptables", "-F"]),
        Target::Local,
    );
    assert!(matches!(p.decide(&fw).decision, Decision::Deny { .. }));
}
