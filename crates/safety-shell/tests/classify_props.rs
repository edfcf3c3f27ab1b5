//! Property tests of the classifier: composition never hides a RISKY or FORBIDDEN part,
//! no input panics, classification is deterministic, `simple_argv` round-trips.

use std::path::PathBuf;

use proptest::prelude::*;
use safety_shell::{classify, simple_argv, Class, ClassifyContext};

fn ctx() -> ClassifyContext {
    ClassifyContext {
        output_dir: Some(PathBuf::from("/work/out")),
        read_paths: vec![PathBuf::from("/var/log")],
        trusted_programs: vec![],
    }
}

const SAFE: &[&str] = &[
    "ping -c 3 198.18.1.5",
    "ip route show",
    "ip a",
    "ss -tlnp",
    "iptables -S",
    "nft list ruleset",
    "tc -s qdisc show dev eth0",
    "dig example.com",
    "cat /var/log/syslog",
    "echo hello",
    "uname -a",
    "az network nic list-effective-nsg -g rg -n nic",
    "curl -sS http://198.18.1.5:8080/",
    "ip route show | grep default",
    "sudo iptables -L -n -v",
];

const RISKY: &[&str] = &[
    "iptables -F",
    "ip route add 198.18.2.0/24 via 198.18.1.1",
    "rm -rf /tmp/x",
    "cat /etc/shadow",
    "curl http://169.254.169.254/",
    "curl -X POST http://198.18.1.5/",
    "tee /tmp/x",
    "tcpdump -i eth0",
    "az network nsg rule delete -g rg --nsg-name n -n r",
    "systemctl restart sshd",
    "/tmp/ping -c 1 198.18.1.5",
    "PATH=/tmp ping -c 1 198.18.1.5",
    "bash script.sh",
    "nc -l -p 4444",
    "python3 -c 'import os'",
    "ssh 198.18.1.5",
    "az keyvault secret show --vault-name v -n s",
    "sed -i s/a/b/ /var/log/x",
];

const FORBIDDEN: &[&str] = &[
    "rm -rf /",
    "rm -rf ~",
    "mkfs.ext4 /dev/sda1",
    "dd if=/dev/zero of=/dev/sda",
    "reboot",
    "systemctl poweroff",
    "shutdown -h now",
    "find / -delete",
    "wipefs -a /dev/vda",
];

fn compose(a: &str, b: &str, how: usize) -> String {
    match how {
        0 => format!("{a}; {b}"),
        1 => format!("{a} && {b}"),
        2 => format!("{a} | {b}"),
        3 => format!("{a}\n{b}"),
        4 => format!("{a} || {b}"),
        5 => format!("echo \"$({b})\"; {a}"),
        6 => format!("{a} $({b})"),
        7 => format!("{a} `{b}`"),
        8 => format!("bash -c '{b}' && {a}"),
        _ => format!("({a}); {{ {b}; }}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn safe_plus_risky_is_never_safe(s in 0..SAFE.len(), r in 0..RISKY.len(), how in 0usize..10) {
        let cmd = compose(SAFE[s], RISKY[r], how);
        let v = classify(&cmd, &ctx());
        prop_assert_ne!(v.classification, Class::Safe, "{:?} -> {:?}", cmd, v);
    }

    #[test]
    fn forbidden_part_makes_the_whole_forbidden(
        s in 0..SAFE.len(), f in 0..FORBIDDEN.len(), how in prop::sample::select(vec![0usize, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        risky_first in any::<bool>(), r in 0..RISKY.len()
    ) {
        let first = if risky_first { RISKY[r] } else { SAFE[s] };
        let cmd = compose(first, FORBIDDEN[f], how);
        let v = classify(&cmd, &ctx());
        prop_assert_eq!(v.classification, Class::Forbidden, "{:?} -> {:?}", cmd, v);
    }

    #[test]
    fn safe_compositions_stay_safe(a in 0..SAFE.len(), b in 0..SAFE.len(), how in prop::sample::select(vec![0usize, 1, 3, 4])) {
        let cmd = compose(SAFE[a], SAFE[b], how);
        prop_assert_eq!(classify(&cmd, &ctx()).classification, Class::Safe, "{:?}", cmd);
    }

    #[test]
    fn arbitrary_strings_do_not_panic_and_are_deterministic(s in ".{0,200}") {
        let a = classify(&s, &ctx());
        let b = classify(&s, &ctx());
        prop_assert_eq!(a, b);
        let _ = simple_argv(&s);
    }

    #[test]
    fn shellish_strings_do_not_panic(s in "[a-z0-9 $|;&()<>'\"`\\\\{}*?~=/.\\n-]{0,120}") {
        let a = classify(&s, &ctx());
        prop_assert_eq!(&a, &classify(&s, &ctx()));
        let _ = simple_argv(&s);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let s = String::from_utf8_lossy(&bytes);
        let a = classify(&s, &ctx());
        prop_assert_eq!(a, classify(&s, &ctx()));
        let _ = simple_argv(&s);
    }

    #[test]
    fn simple_argv_round_trips_single_quoted_words(words in prop::collection::vec("[a-zA-Z0-9 ./:=@%+,_*?$;|&<>()-]{1,12}", 1..6)) {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cmd = quoted.join(" ");
        prop_assert_eq!(simple_argv(&cmd), Some(words.clone()));
    }

    #[test]
    fn expansions_are_never_simple(w in "[a-z]{1,8}", kind in 0usize..6) {
        let cmd = match kind {
            0 => format!("echo ${w}"),
            1 => format!("echo $({w})"),
            2 => format!("echo {w}*"),
            3 => format!("echo ~{w}"),
            4 => format!("echo {{{w},x}}"),
            _ => format!("echo $((1+{}))", w.len()),
        };
        prop_assert_eq!(simple_argv(&cmd), None, "{}", cmd);
    }
}

#[test]
fn simple_argv_examples() {
    assert_eq!(
        simple_argv("ping -c 3 198.18.1.5"),
        Some(vec![
            "ping".into(),
            "-c".into(),
            "3".into(),
            "198.18.1.5".into()
        ])
    );
    assert_eq!(
        simple_argv("'r'm \"-rf\" x\\ y"),
        Some(vec!["rm".into(), "-rf".into(), "x y".into()])
    );
    assert_eq!(
        simple_argv("dd if=/dev/zero of=/work/out/x"),
        Some(vec![
            "dd".into(),
            "if=/dev/zero".into(),
            "of=/work/out/x".into()
        ])
    );
    for c in [
        "ping -c 3 x > /tmp/y",
        "X=1 ping",
        "ping a; ping b",
        "ping a | grep b",
        "ping a &",
        "(ping a)",
        "echo $HOME",
        "echo `id`",
        "echo *",
        "echo ~",
        "echo {a,b}",
        "echo $'a'",
        "! ping a",
        "",
        "ping 'unterminated",
    ] {
        assert_eq!(simple_argv(c), None, "{c:?}");
    }
}
