//! Lab cross-check: `check`'s verdict against real traffic. In two network namespaces this
//! test creates (`nfi<pid>-s` server, `nfi<pid>-c` client, 198.18.77.0/24 on a veth pair),
//! generated iptables and nft rulesets are applied on the server, a listener accepts on every
//! probed port, and the client connects: connected = ACCEPT, refused (RST or ICMP error) =
//! REJECT, timeout = DROP. Needs root, `ip`, `iptables-restore`, `nft` and `python3`; without
//! them it prints one line saying why and returns.

use std::process::{Child, Command, Stdio};

use netfilter_inspector::check::{check, Direction, Packet, Verdict};
use netfilter_inspector::{parse, InputFormat};

const PORTS: [u16; 8] = [5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008];

struct Lab {
    server: String,
    client: String,
    listener: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.listener.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_stdin(args: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\ninput:\n{input}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn missing_prerequisite() -> Option<String> {
    let uid = run(&["id", "-u"]).unwrap_or_default();
    if uid.trim() != "0" {
        return Some("not root".into());
    }
    for tool in ["ip", "iptables-restore", "iptables-save", "nft", "python3"] {
        if run(&["sh", "-c", &format!("command -v {tool}")]).is_err() {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

fn setup() -> Result<Lab, String> {
    let pid = std::process::id();
    let mut lab = Lab {
        server: format!("nfi{pid}-s"),
        client: format!("nfi{pid}-c"),
        listener: None,
    };
    let (s, c) = (lab.server.clone(), lab.client.clone());
    let (vs, vc) = (format!("nfi{pid}s"), format!("nfi{pid}c"));
    run(&["ip", "netns", "add", &s])?;
    run(&["ip", "netns", "add", &c])?;
    run(&[
        "ip", "-n", &s, "link", "add", &vs, "type", "veth", "peer", "name", &vc, "netns", &c,
    ])?;
    run(&["ip", "-n", &s, "addr", "add", "198.18.77.1/24", "dev", &vs])?;
    run(&["ip", "-n", &c, "addr", "add", "198.18.77.2/24", "dev", &vc])?;
    for (ns, dev) in [(&s, &vs), (&c, &vc)] {
        run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    let ports = PORTS.map(|p| p.to_string()).join(",");
    let server = format!(
        "import socket,select\nss=[]\nfor p in [{ports}]:\n s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(('198.18.77.1',p)); s.listen(64); ss.append(s)\nprint('ready',flush=True)\nwhile True:\n r,_,_=select.select(ss,[],[])\n for s in r:\n  c,_=s.accept(); c.close()\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &s, "python3", "-c", &server])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    {
        use std::io::BufRead;
        let mut line = String::new();
        let mut r = std::io::BufReader::new(child.stdout.take().expect("piped"));
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err("the listener did not start".into());
        }
    }
    lab.listener = Some(child);
    Ok(lab)
}

/// Connects to every port from the client: ACCEPT / REJECT / DROP per port.
fn probe(lab: &Lab) -> Result<Vec<(u16, Verdict)>, String> {
    let ports = PORTS.map(|p| p.to_string()).join(",");
    let script = format!(
        "import socket,threading,errno\nres={{}}\ndef t(p):\n s=socket.socket(); s.settimeout(0.7)\n try:\n  s.connect(('198.18.77.1',p)); res[p]='ACCEPT'\n except socket.timeout: res[p]='DROP'\n except ConnectionRefusedError: res[p]='REJECT'\n except OSError as e: res[p]='REJECT' if e.errno in (errno.EHOSTUNREACH,errno.ENETUNREACH,errno.EACCES) else 'ERR'+str(e.errno)\n finally: s.close()\nth=[threading.Thread(target=t,args=(p,)) for p in [{ports}]]\n[x.start() for x in th]; [x.join() for x in th]\nfor p in sorted(res): print(p,res[p])\n"
    );
    let out = run(&["ip", "netns", "exec", &lab.client, "python3", "-c", &script])?;
    let mut v = Vec::new();
    for line in out.lines() {
        let mut it = line.split_whitespace();
        let port: u16 = it
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("bad probe output")?;
        let verdict = match it.next() {
            Some("ACCEPT") => Verdict::Accept,
            Some("DROP") => Verdict::Drop,
            Some("REJECT") => Verdict::Reject,
            other => return Err(format!("probe of {port} failed: {other:?}")),
        };
        v.push((port, verdict));
    }
    Ok(v)
}

/// A tiny deterministic generator (no external RNG needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn iptables_ruleset(rng: &mut Lcg) -> String {
    let policy = if rng.next(2) == 0 { "ACCEPT" } else { "DROP" };
    let mut s = format!("*filter\n:INPUT {policy} [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:CHK - [0:0]\n");
    s.push_str("-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 5001:5008 -j CHK\n");
    for p in PORTS {
        let line = match rng.next(6) {
            0 => format!("-A CHK -p tcp -m tcp --dport {p} -j DROP\n"),
            1 => format!("-A CHK -p tcp -m tcp --dport {p} -j REJECT --reject-with tcp-reset\n"),
            2 => format!(
                "-A CHK -p tcp -m tcp --dport {p} -j REJECT --reject-with icmp-port-unreachable\n"
            ),
            3 => format!("-A CHK -p tcp -m tcp --dport {p} -j ACCEPT\n"),
            4 => format!("-A CHK -p tcp -m tcp --dport {p} -j RETURN\n"),
            _ => String::new(),
        };
        s.push_str(&line);
    }
    if rng.next(2) == 0 {
        s.push_str("-A INPUT -p tcp -m multiport --dports 5001,5003,5005,5007 -j ACCEPT\n");
    }
    s.push_str("COMMIT\n");
    s
}

fn nft_ruleset(rng: &mut Lcg) -> String {
    let policy = if rng.next(2) == 0 { "accept" } else { "drop" };
    let mut s = String::from("table inet nfilab {\n chain chk {\n");
    for p in PORTS {
        let line = match rng.next(5) {
            0 => format!("  tcp dport {p} drop\n"),
            1 => format!("  tcp dport {p} reject with tcp reset\n"),
            2 => format!("  tcp dport {p} accept\n"),
            3 => format!("  tcp dport {p} return\n"),
            _ => String::new(),
        };
        s.push_str(&line);
    }
    s.push_str(&format!(
        " }}\n chain input {{\n  type filter hook input priority 0; policy {policy};\n  iifname \"lo\" accept\n  tcp dport 5001-5008 jump chk\n  tcp dport {{ 5002, 5004 }} accept\n }}\n}}\n"
    ));
    s
}

#[test]
fn check_agrees_with_real_traffic() {
    if let Some(why) = missing_prerequisite() {
        println!("lab test skipped: {why}; run as root with iproute2, iptables, nftables and python3 installed (scripts/setup.sh)");
        return;
    }
    let lab = setup().expect("lab setup");
    let mut rng = Lcg(0x5eed_2026);
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..4 {
        let iptables = round % 2 == 0;
        let (text, fmt) = if iptables {
            let rules = iptables_ruleset(&mut rng);
            run(&[
                "ip",
                "netns",
                "exec",
                &lab.server,
                "nft",
                "flush",
                "ruleset",
            ])
            .expect("flush");
            run_stdin(
                &["ip", "netns", "exec", &lab.server, "iptables-restore"],
                &rules,
            )
            .expect("restore");
            (
                run(&["ip", "netns", "exec", &lab.server, "iptables-save"]).expect("save"),
                InputFormat::IptablesSave,
            )
        } else {
            let rules = nft_ruleset(&mut rng);
            run(&[
                "ip",
                "netns",
                "exec",
                &lab.server,
                "nft",
                "flush",
                "ruleset",
            ])
            .expect("flush");
            run_stdin(
                &["ip", "netns", "exec", &lab.server, "nft", "-f", "-"],
                &rules,
            )
            .expect("nft -f");
            (
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    &lab.server,
                    "nft",
                    "-j",
                    "list",
                    "ruleset",
                ])
                .expect("nft -j"),
                InputFormat::NftJson,
            )
        };
        let rs = parse(&text, fmt).expect("parse");
        let observed = probe(&lab).expect("probe");
        for (port, real) in observed {
            let mut pkt = Packet::new("tcp", port, Direction::In);
            pkt.src = Some("198.18.77.2".parse().unwrap());
            pkt.dst = Some("198.18.77.1".parse().unwrap());
            pkt.iface = Some(format!("nfi{}s", std::process::id()));
            let answer = check(&rs, &pkt);
            compared += 1;
            seen.insert(format!("{real:?}"));
            if answer.verdict != real {
                mismatches.push(format!(
                    "round {round} port {port}: check {:?} ({:?}) but traffic {real:?}\n{text}",
                    answer.verdict, answer.deciding_rule
                ));
            }
        }
    }
    drop(lab);
    assert!(compared >= 20, "only {compared} comparisons");
    // The generated rulesets must exercise every outcome, or the comparison proves little.
    assert_eq!(seen.len(), 3, "outcomes seen: {seen:?}");
    println!("lab: {compared} (ruleset, port) combinations agree with real traffic: {seen:?}");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
