//! Fault descriptions: the inline syntax (`dest-vm:loss=20%`), tc rates, iptables commands
//! and how each is undone, nft ruleset tables.

use serde::{Deserialize, Serialize};

use crate::scenario::VmFault;

/// Parses a tc rate such as `5mbit`, `500kbit`, `1gbit`, `10000bit` into bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("rate `{s}` is not a number with a unit like 5mbit"))?;
    let mult = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(format!(
                "rate `{s}` has an unknown unit (use bit, kbit, mbit or gbit)"
            ))
        }
    };
    let bps = n * mult;
    if !(8000.0..=100e9).contains(&bps) {
        return Err(format!("rate `{s}` is outside 8kbit-100gbit"));
    }
    Ok(bps as u64)
}

/// `tbf` arguments for a rate: burst sized for at least 10 ms of traffic (and one 64 KiB GSO
/// segment), queue latency 400 ms.
pub fn tbf_args(rate: &str) -> Result<Vec<String>, String> {
    let bps = parse_rate(rate)?;
    let burst_bytes = ((bps / 8) / 100).max(65536);
    Ok(vec![
        "tbf".into(),
        "rate".into(),
        rate.trim().to_ascii_lowercase(),
        "burst".into(),
        format!("{burst_bytes}"),
        "latency".into(),
        "400ms".into(),
    ])
}

/// Splits a command line into words (single and double quotes, backslash escapes).
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed ' in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x) => cur.push(x),
                            None => return Err(format!("dangling \\ in `{s}`")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("unclosed \" in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(x) => cur.push(x),
                    None => return Err(format!("dangling \\ in `{s}`")),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// What an iptables fault command does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IptablesOp {
    /// `-A CHAIN spec…`
    Append {
        /// Chain.
        chain: String,
        /// Rule spec.
        spec: Vec<String>,
    },
    /// `-I CHAIN [N] spec…`
    Insert {
        /// Chain.
        chain: String,
        /// Position.
        pos: Option<u32>,
        /// Rule spec.
        spec: Vec<String>,
    },
    /// `-N CHAIN`
    NewChain {
        /// Chain.
        chain: String,
    },
    /// `-P CHAIN TARGET`
    Policy {
        /// Chain.
        chain: String,
        /// ACCEPT or DROP.
        target: String,
    },
}

/// One iptables command of a fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IptablesCmd {
    /// `filter`, `nat`, `mangle`, `raw`.
    pub table: String,
    /// The operation.
    pub op: IptablesOp,
}

impl IptablesCmd {
    /// Parses the arguments after `iptables` (`-t TABLE` allowed first). Only `-A`, `-I`,
    /// `-N` and `-P` are accepted: they are the ones netlab knows how to undo.
    pub fn parse(line: &str) -> Result<IptablesCmd, String> {
        let mut w = shell_words(line)?;
        let mut table = "filter".to_string();
        if w.first().map(String::as_str) == Some("-t") {
            if w.len() < 2 {
                return Err(format!("iptables fault `{line}`: -t needs a table"));
            }
            table = w[1].clone();
            w.drain(..2);
            if !["filter", "nat", "mangle", "raw"].contains(&table.as_str()) {
                return Err(format!("iptables fault `{line}`: unknown table `{table}`"));
            }
        }
        let chain_ok = |c: &str| {
            !c.is_empty()
                && c.len() <= 28
                && c.chars()
                    .all(|x| x.is_ascii_alphanumeric() || "-_.".contains(x))
        };
        let bad = || {
            format!("iptables fault `{line}` must be `[-t TABLE] -A|-I CHAIN [N] RULE…`, `-N CHAIN` or `-P CHAIN ACCEPT|DROP`")
        };
        let op = match w.first().map(String::as_str) {
            Some("-A") | Some("--append") if w.len() >= 3 && chain_ok(&w[1]) => {
                IptablesOp::Append {
                    chain: w[1].clone(),
                    spec: w[2..].to_vec(),
                }
            }
            Some("-I") | Some("--insert") if w.len() >= 3 && chain_ok(&w[1]) => {
                let pos = w[2].parse::<u32>().ok();
                let start = if pos.is_some() { 3 } else { 2 };
                if w.len() <= start {
                    return Err(bad());
                }
                IptablesOp::Insert {
                    chain: w[1].clone(),
                    pos,
                    spec: w[start..].to_vec(),
                }
            }
            Some("-N") | Some("--new-chain") if w.len() == 2 && chain_ok(&w[1]) => {
                IptablesOp::NewChain {
                    chain: w[1].clone(),
                }
            }
            Some("-P") | Some("--policy")
                if w.len() == 3 && chain_ok(&w[1]) && (w[2] == "ACCEPT" || w[2] == "DROP") =>
            {
                IptablesOp::Policy {
                    chain: w[1].clone(),
                    target: w[2].clone(),
                }
            }
            _ => return Err(bad()),
        };
        Ok(IptablesCmd { table, op })
    }

    /// The argv (after the program) that applies it.
    pub fn apply_args(&self) -> Vec<String> {
        let mut a = vec!["-w".to_string(), "-t".into(), self.table.clone()];
        match &self.op {
            IptablesOp::Append { chain, spec } => {
                a.push("-A".into());
                a.push(chain.clone());
                a.extend(spec.iter().cloned());
            }
            IptablesOp::Insert { chain, pos, spec } => {
                a.push("-I".into());
                a.push(chain.clone());
                if let Some(p) = pos {
                    a.push(p.to_string());
                }
                a.extend(spec.iter().cloned());
            }
            IptablesOp::NewChain { chain } => {
                a.push("-N".into());
                a.push(chain.clone());
            }
            IptablesOp::Policy { chain, target } => {
                a.push("-P".into());
                a.push(chain.clone());
                a.push(target.clone());
            }
        }
        a
    }

    /// The argv lists that undo it. `old_policy` is the chain policy before a `-P`.
    pub fn undo_args(&self, old_policy: Option<&str>) -> Vec<Vec<String>> {
        let base = vec!["-w".to_string(), "-t".into(), self.table.clone()];
        let with = |rest: Vec<String>| {
            let mut v = base.clone();
            v.extend(rest);
            v
        };
        match &self.op {
            IptablesOp::Append { chain, spec } | IptablesOp::Insert { chain, spec, .. } => {
                let mut r = vec!["-D".to_string(), chain.clone()];
                r.extend(spec.iter().cloned());
                vec![with(r)]
            }
            IptablesOp::NewChain { chain } => vec![
                with(vec!["-F".into(), chain.clone()]),
                with(vec!["-X".into(), chain.clone()]),
            ],
            IptablesOp::Policy { chain, .. } => vec![with(vec![
                "-P".into(),
                chain.clone(),
                old_policy.unwrap_or("ACCEPT").to_string(),
            ])],
        }
    }
}

/// The `(family, name)` of every table an nft ruleset declares (`table FAMILY NAME`).
pub fn nft_tables(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let w: &[&str] = if w.first() == Some(&"add") {
            &w[1..]
        } else {
            &w[..]
        };
        if w.first() == Some(&"table") && w.len() >= 3 {
            let fam = w[1];
            let name = w[2].trim_end_matches('{').trim();
            if ["ip", "ip6", "inet", "arp", "bridge", "netdev"].contains(&fam)
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                let t = (fam.to_string(), name.to_string());
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    out
}

fn parse_pct(v: &str) -> Result<f64, String> {
    let n: f64 = v
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{v}` is not a percentage like 20%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("`{v}` is outside 0-100%"));
    }
    Ok(n)
}

fn parse_ms(v: &str) -> Result<f64, String> {
    let t = v.trim();
    let (num, mult) = if let Some(x) = t.strip_suffix("ms") {
        (x, 1.0)
    } else if let Some(x) = t.strip_suffix("us") {
        (x, 0.001)
    } else if let Some(x) = t.strip_suffix('s') {
        (x, 1000.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{v}` is not a duration like 100ms"))?;
    let ms = n * mult;
    if !(0.0..=60_000.0).contains(&ms) {
        return Err(format!("`{v}` is outside 0-60s"));
    }
    Ok(ms)
}

/// Parses an inline fault: `VM:key=value[,key=value…]` with keys `rate` (`5mbit`), `loss`
/// (`20%`, dropped in the VM), `wire_loss` (`20%`, dropped by the fabric), `delay` (`100ms`), `jitter` (`5ms`), `corrupt` (`2%`), `mtu` (`9000`),
/// `fabric_mtu` (`9000`), `listen`
/// (`8080`), `stop` (a service port), `seed`.
pub fn parse_inline(s: &str) -> Result<VmFault, String> {
    let (vm, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("fault `{s}` must look like VM:key=value, e.g. dest-vm:loss=20%"))?;
    if vm.is_empty() {
        return Err(format!("fault `{s}` names no VM"));
    }
    let mut f = VmFault {
        vm: vm.to_string(),
        ..Default::default()
    };
    let mut any = false;
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("fault part `{part}` must be key=value"))?;
        match k.trim() {
            "rate" => {
                parse_rate(v)?;
                f.rate = Some(v.trim().to_string());
            }
            "loss" => f.loss_pct = Some(parse_pct(v)?),
            "wire_loss" => f.wire_loss_pct = Some(parse_pct(v)?),
            "delay" => f.delay_ms = Some(parse_ms(v)?),
            "jitter" => f.jitter_ms = Some(parse_ms(v)?),
            "corrupt" => f.corrupt_pct = Some(parse_pct(v)?),
            "mtu" => {
                let m: u32 = v.trim().parse().map_err(|_| format!("mtu `{v}` is not a number"))?;
                f.mtu = Some(m);
            }
            "fabric_mtu" => {
                let m: u32 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("fabric_mtu `{v}` is not a number"))?;
                f.fabric_mtu = Some(m);
            }
            "listen" => f.listen.push(
                v.trim()
                    .parse()
                    .map_err(|_| format!("listen `{v}` is not a port"))?,
            ),
            "stop" => f.stop_service.push(
                v.trim()
                    .parse()
                    .map_err(|_| format!("stop `{v}` is not a port"))?,
            ),
            "seed" => {
                f.seed = Some(v.trim().parse().map_err(|_| format!("seed `{v}` is not a number"))?)
            }
            other => {
                return Err(format!(
                    "unknown fault key `{other}` (use rate, loss, wire_loss, delay, jitter, corrupt, mtu, fabric_mtu, listen, stop, seed)"
                ))
            }
        }
        any = true;
    }
    if !any {
        return Err(format!("fault `{s}` sets nothing; e.g. {vm}:loss=20%"));
    }
    if f.jitter_ms.is_some() && f.delay_ms.is_none() {
        return Err("jitter needs a delay (e.g. delay=100ms,jitter=5ms)".into());
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("5mbit").unwrap(), 5_000_000);
        assert_eq!(parse_rate("500kbit").unwrap(), 500_000);
        assert_eq!(parse_rate("1.5Gbit").unwrap(), 1_500_000_000);
        for bad in ["", "5", "mbit", "5mbps", "1bit", "-5mbit"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(
            tbf_args("5mbit").unwrap().join(" "),
            "tbf rate 5mbit burst 65536 latency 400ms"
        );
    }

    #[test]
    fn inline_syntax() {
        let f = parse_inline("dest-vm:loss=20%").unwrap();
        assert_eq!(f.vm, "dest-vm");
        assert_eq!(f.loss_pct, Some(20.0));
        let f = parse_inline("source-vm:wire_loss=20%").unwrap();
        assert_eq!((f.wire_loss_pct, f.loss_pct), (Some(20.0), None));
        assert!(parse_inline("source-vm:wire_loss=120%").is_err());
        let f = parse_inline("source-vm:delay=100ms,jitter=5ms").unwrap();
        assert_eq!((f.delay_ms, f.jitter_ms), (Some(100.0), Some(5.0)));
        let f = parse_inline("source-vm:rate=5mbit").unwrap();
        assert_eq!(f.rate.as_deref(), Some("5mbit"));
        let f =
            parse_inline("source-vm:delay=1s,corrupt=2%,mtu=9000,listen=8081,stop=5001").unwrap();
        assert_eq!(f.delay_ms, Some(1000.0));
        assert_eq!(f.corrupt_pct, Some(2.0));
        assert_eq!(f.mtu, Some(9000));
        assert_eq!(f.listen, [8081]);
        assert_eq!(f.stop_service, [5001]);
        for bad in [
            "dest-vm",
            ":loss=1%",
            "dest-vm:",
            "dest-vm:loss",
            "dest-vm:loss=150%",
            "dest-vm:loss=abc",
            "dest-vm:jitter=5ms",
            "dest-vm:speed=5",
            "dest-vm:delay=-5ms",
            "dest-vm:rate=5",
        ] {
            assert!(parse_inline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iptables_parse_and_undo() {
        let c = IptablesCmd::parse("-I INPUT 1 -p tcp --dport 5001 -j DROP").unwrap();
        assert_eq!(
            c.apply_args().join(" "),
            "-w -t filter -I INPUT 1 -p tcp --dport 5001 -j DROP"
        );
        assert_eq!(
            c.undo_args(None),
            vec![shell_words("-w -t filter -D INPUT -p tcp --dport 5001 -j DROP").unwrap()]
        );
        let c = IptablesCmd::parse("-t nat -N DOCKER").unwrap();
        assert_eq!(c.undo_args(None).len(), 2);
        let c = IptablesCmd::parse("-P INPUT DROP").unwrap();
        assert_eq!(
            c.undo_args(Some("ACCEPT"))[0].join(" "),
            "-w -t filter -P INPUT ACCEPT"
        );
        let c = IptablesCmd::parse(
            "-A f2b-sshd -s 198.18.1.4/32 -m comment --comment 'banned by fail2ban' -j REJECT",
        )
        .unwrap();
        match c.op {
            IptablesOp::Append { spec, .. } => {
                assert!(spec.contains(&"banned by fail2ban".to_string()))
            }
            _ => panic!("wrong op"),
        }
        for bad in [
            "",
            "-F",
            "-D INPUT 1",
            "-t foo -A INPUT -j DROP",
            "-P INPUT REJECT",
            "-A",
            "-I INPUT 3",
            "-A 'bad chain' -j DROP",
            "-A INPUT 'x",
        ] {
            assert!(IptablesCmd::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nft_table_names() {
        let t = "table inet hardening {\n chain input { type filter hook input priority 0; }\n}\nadd table ip other\n";
        assert_eq!(
            nft_tables(t),
            vec![
                ("inet".into(), "hardening".into()),
                ("ip".into(), "other".into())
            ]
        );
        assert!(nft_tables("add rule inet x y drop").is_empty());
        assert!(nft_tables("table bogus x {").is_empty());
    }

    #[test]
    fn words() {
        assert_eq!(
            shell_words("a 'b c' \"d\\\"e\" f\\ g").unwrap(),
            ["a", "b c", "d\"e", "f g"]
        );
        assert!(shell_words("'x").is_err());
        assert!(shell_words("").unwrap().is_empty());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = parse_inline(&s);
            let _ = parse_rate(&s);
            let _ = shell_words(&s);
            let _ = IptablesCmd::parse(&s);
            let _ = nft_tables(&s);
            let _ = s.parse::<crate::addr::Cidr>();
            let _ = crate::scenario::Scenario::from_toml_str(&s);
        }

        #[test]
        fn inline_faults_round_trip(loss in 0u32..=100, delay in 0u32..10_000) {
            let f = parse_inline(&format!("dest-vm:loss={loss}%,delay={delay}ms")).unwrap();
            prop_assert_eq!(f.loss_pct, Some(f64::from(loss)));
            prop_assert_eq!(f.delay_ms, Some(f64::from(delay)));
        }

        #[test]
        fn iptables_undo_deletes_the_same_spec(port in 1u16..65535, pos in 1u32..10) {
            let c = IptablesCmd::parse(&format!("-I INPUT {pos} -p tcp --dport {port} -j DROP")).unwrap();
            let undo = c.undo_args(None);
            prop_assert_eq!(undo.len(), 1);
            prop_assert_eq!(undo[0].join(" "), format!("-w -t filter -D INPUT -p tcp --dport {port} -j DROP"));
        }
    }
}
