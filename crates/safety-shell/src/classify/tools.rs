//! The SAFE allowlist: each tool with its own option parser. An option or form the
//! parser does not know makes the command RISKY.

use super::net::{is_metadata_host, parse_url};
use super::opts::{has, positionals, scan, values, Spec, Tok};
use super::walk::Walker;
use super::{bad_option, read_only, risky, safe, worst};
use crate::types::{Class, Classification, Tier};

type V = Classification;

fn fold_all(base: V, parts: impl IntoIterator<Item = V>) -> V {
    parts.into_iter().fold(base, worst)
}

fn scanned(program: &str, args: &[String], spec: &Spec) -> Result<Vec<Tok>, V> {
    scan(args, spec).map_err(|o| bad_option(program, &o))
}

/// `iperf -v`, `iperf3 --version`, `qperf --version`: a version query sends no traffic and
/// starts no server. Any other invocation generates traffic or listens: RISKY.
fn version_query(program: &str, args: &[String]) -> Result<V, V> {
    let version_flag = match program {
        "qperf" => ["--version", "-V"].as_slice(),
        _ => ["-v", "--version"].as_slice(),
    };
    if args.len() == 1 && version_flag.contains(&args[0].as_str()) {
        return Ok(safe(
            Tier::ReadOnly,
            format!("`{program} {}` prints its version", args[0]),
        ));
    }
    Err(risky(
        Tier::Unknown,
        format!("`{program}` sends measurement traffic or starts a server"),
    ))
}

/// Classifies an allowlisted tool with static arguments.
pub(crate) fn classify(w: &mut Walker, program: &str, args: &[String]) -> V {
    let r = match program {
        ":" | "true" | "false" => Ok(safe(Tier::ReadOnly, format!("`{program}` does nothing"))),
        "exit" | "return" => Ok(safe(
            Tier::ReadOnly,
            format!("`{program}` ends the script with a status"),
        )),
        "echo" => Ok(safe(Tier::ReadOnly, "`echo` only prints its arguments")),
        "printf" => printf(args),
        "sleep" => sleep(args),
        "hostname" => hostname(args),
        "uname" | "uptime" | "whoami" | "lsmod" | "id" | "free" | "df" => info(program, args),
        "date" => date(args),
        "ps" => ps(args),
        "sysctl" => sysctl(args),
        "systemctl" => systemctl(args),
        "journalctl" => journalctl(w, args),
        "ping" | "ping6" => ping(program, args),
        "traceroute" | "traceroute6" | "tracepath" | "tracepath6" => traceroute(program, args),
        "mtr" => mtr(args),
        "dig" => dig(w, args),
        "nslookup" => nslookup(args),
        "host" => host(args),
        "whois" => whois(args),
        "ss" => ss(args),
        "netstat" => netstat(args),
        "lsof" => lsof(args),
        "ip" => ip(args),
        "arp" => arp(args),
        "route" => route(args),
        "tc" => tc(args),
        "iptables" | "ip6tables" | "iptables-legacy" | "ip6tables-legacy" | "iptables-nft"
        | "ip6tables-nft" => iptables(program, args),
        "iptables-save" | "ip6tables-save" | "iptables-legacy-save" | "ip6tables-legacy-save"
        | "iptables-nft-save" | "ip6tables-nft-save" => iptables_save(program, args),
        "nft" => nft(args),
        "conntrack" => conntrack(args),
        "ethtool" => ethtool(args),
        "tcpdump" => tcpdump(w, args),
        "tshark" => tshark(w, args),
        "curl" => curl(w, args),
        "nc" | "ncat" | "netcat" => nc(program, args),
        "cat" | "head" | "tail" => cat_head_tail(w, program, args),
        "grep" | "egrep" | "fgrep" => grep(w, program, args),
        "wc" | "sort" | "uniq" | "cut" | "tr" => filters(w, program, args),
        "base64" => base64(w, args),
        "gzip" | "gunzip" | "zcat" => gzip(w, program, args),
        "sha256sum" | "sha1sum" | "sha512sum" | "md5sum" => checksum(w, program, args),
        "update-alternatives" => update_alternatives(args),
        "ls" => ls(args),
        "sed" => sed(w, args),
        "awk" | "gawk" | "mawk" | "nawk" => Err(risky(
            Tier::Unknown,
            "`awk` can run commands (`system()`, pipes) and write files; it is not analysed",
        )),
        "jq" => Err(risky(
            Tier::Unknown,
            "`jq` can read the environment (`$ENV`, `env`), which may hold secrets; it is not analysed",
        )),
        "iperf" | "iperf3" | "qperf" => version_query(program, args),
        "scp" | "rsync" | "sftp" => Err(risky(Tier::HostChange, format!("`{program}` copies files between hosts"))),
        _ => Err(risky(Tier::Unknown, format!("`{program}` is not in the read-only allowlist"))),
    };
    r.unwrap_or_else(|v| v)
}

fn printf(args: &[String]) -> Result<V, V> {
    if args.first().is_some_and(|a| a == "-v") {
        return Err(risky(
            Tier::HostChange,
            "`printf -v` assigns a shell variable",
        ));
    }
    Ok(safe(Tier::ReadOnly, "`printf` only prints"))
}

fn sleep(args: &[String]) -> Result<V, V> {
    let ok = !args.is_empty()
        && args.iter().all(|a| {
            let n = a.trim_end_matches(['s', 'm', 'h', 'd']);
            !n.is_empty() && n.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0)
        });
    if ok {
        Ok(safe(Tier::ReadOnly, "`sleep` waits"))
    } else {
        Err(bad_option("sleep", &args.join(" ")))
    }
}

fn hostname(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "afdiIAsy",
        long_flags: &[
            "--fqdn",
            "--long",
            "--short",
            "--domain",
            "--ip-address",
            "--all-ip-addresses",
            "--all-fqdns",
            "--alias",
        ],
        ..Spec::default()
    };
    let toks = scanned("hostname", args, &spec)?;
    if !positionals(&toks).is_empty() {
        return Err(risky(
            Tier::HostChange,
            "`hostname NAME` sets the host name",
        ));
    }
    Ok(read_only("hostname"))
}

fn info(program: &str, args: &[String]) -> Result<V, V> {
    let spec = match program {
        "uname" => Spec {
            short_flags: "asnrvmpio",
            long_flags: &[
                "--all",
                "--kernel-name",
                "--nodename",
                "--kernel-release",
                "--kernel-version",
                "--machine",
                "--processor",
                "--hardware-platform",
                "--operating-system",
            ],
            ..Spec::default()
        },
        "uptime" => Spec {
            short_flags: "ps",
            long_flags: &["--pretty", "--since"],
            ..Spec::default()
        },
        "id" => Spec {
            short_flags: "gGnruzZa",
            long_flags: &[
                "--group",
                "--groups",
                "--name",
                "--real",
                "--user",
                "--zero",
                "--context",
            ],
            ..Spec::default()
        },
        "free" => Spec {
            short_flags: "bkmghltwv",
            short_args: "c",
            long_flags: &[
                "--bytes",
                "--kilo",
                "--mega",
                "--giga",
                "--tera",
                "--peta",
                "--kibi",
                "--mebi",
                "--gibi",
                "--tebi",
                "--pebi",
                "--human",
                "--si",
                "--lohi",
                "--total",
                "--wide",
                "--committed",
            ],
            long_args: &["--count"],
            ..Spec::default()
        },
        "df" => Spec {
            short_flags: "ahHiklPTx",
            short_args: "BtxF",
            long_flags: &[
                "--all",
                "--human-readable",
                "--si",
                "--inodes",
                "--local",
                "--portability",
                "--print-type",
                "--total",
                "--no-sync",
                "--sync",
            ],
            long_args: &["--block-size", "--type", "--exclude-type", "--output"],
            ..Spec::default()
        },
        _ => Spec::default(),
    };
    let toks = scanned(program, args, &spec)?;
    let pos = positionals(&toks);
    let allows_pos = matches!(program, "id" | "df");
    if !pos.is_empty() && !allows_pos {
        return Err(bad_option(program, pos[0]));
    }
    Ok(read_only(program))
}

fn date(args: &[String]) -> Result<V, V> {
    for a in args {
        let a = a.as_str();
        if a == "-s"
            || a.starts_with("--set")
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('s'))
        {
            return Err(risky(Tier::HostChange, "`date -s` sets the clock"));
        }
    }
    let filtered: Vec<String> = args
        .iter()
        .filter(|a| {
            !(a.starts_with("-I") || a.starts_with("--iso-8601") || a.starts_with("--rfc-3339"))
        })
        .cloned()
        .collect();
    let spec = Spec {
        short_flags: "uRr",
        short_args: "d",
        long_flags: &["--utc", "--universal", "--rfc-email", "--debug"],
        long_args: &["--date", "--reference"],
        ..Spec::default()
    };
    let toks = scanned("date", &filtered, &spec)?;
    for p in positionals(&toks) {
        if !p.starts_with('+') {
            return Err(risky(
                Tier::HostChange,
                "`date` with a time argument sets the clock",
            ));
        }
    }
    Ok(read_only("date"))
}

fn ps(args: &[String]) -> Result<V, V> {
    for a in args {
        if !a.starts_with('-') && a.contains('e') && a.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(risky(
                Tier::Secret,
                "`ps e` shows process environments, which may hold secrets",
            ));
        }
    }
    Ok(read_only("ps"))
}

fn sysctl(args: &[String]) -> Result<V, V> {
    for a in args {
        if matches!(
            a.as_str(),
            "-w" | "--write" | "-p" | "--load" | "--system" | "-f"
        ) || a.starts_with("--load=")
        {
            return Err(risky(
                Tier::HostChange,
                "`sysctl -w/-p` changes kernel parameters",
            ));
        }
    }
    let spec = Spec {
        short_flags: "aAbeNnqxX",
        short_args: "r",
        long_flags: &[
            "--all", "--binary", "--ignore", "--names", "--values", "--quiet",
        ],
        long_args: &["--pattern"],
        ..Spec::default()
    };
    let toks = scanned("sysctl", args, &spec)?;
    for p in positionals(&toks) {
        if p.contains('=') {
            return Err(risky(
                Tier::HostChange,
                format!("`sysctl {p}` changes a kernel parameter"),
            ));
        }
    }
    Ok(read_only("sysctl"))
}

fn systemctl(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "laq",
        short_args: "tnop",
        long_flags: &[
            "--no-pager",
            "--full",
            "--all",
            "--plain",
            "--no-legend",
            "--quiet",
            "--value",
            "--failed",
            "--recursive",
            "--reverse",
            "--before",
            "--after",
            "--lines",
            "--system",
        ],
        long_args: &["--type", "--state", "--lines", "--output", "--property"],
        ..Spec::default()
    };
    let toks = scanned("systemctl", args, &spec)?;
    let pos = positionals(&toks);
    match pos.first() {
        None => Ok(read_only("systemctl")),
        Some(v)
            if matches!(
                *v,
                "status"
                    | "is-active"
                    | "is-enabled"
                    | "is-failed"
                    | "list-units"
                    | "list-unit-files"
                    | "list-timers"
                    | "list-sockets"
                    | "list-dependencies"
                    | "show"
                    | "cat"
            ) =>
        {
            Ok(safe(
                Tier::ReadOnly,
                format!("`systemctl {v}` only reads service state"),
            ))
        }
        Some(v) => Err(risky(
            Tier::HostChange,
            format!("`systemctl {v}` changes services or the system state"),
        )),
    }
}

fn journalctl(w: &mut Walker, args: &[String]) -> Result<V, V> {
    // -b and -n take an optional value.
    let mut norm = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if matches!(a.as_str(), "-b" | "--boot" | "-n" | "--lines") {
            let next = args.get(i + 1);
            let optional = next.is_some_and(|n| {
                n.trim_start_matches(['-', '+'])
                    .chars()
                    .all(|c| c.is_ascii_hexdigit())
                    && !n.is_empty()
                    && n != "-"
            });
            let long = if a.starts_with("--") {
                a.clone()
            } else if a == "-b" {
                "--boot".into()
            } else {
                "--lines".into()
            };
            if optional {
                norm.push(format!("{long}={}", next.map(String::as_str).unwrap_or("")));
                i += 2;
            } else {
                norm.push(format!("{long}="));
                i += 1;
            }
            continue;
        }
        if matches!(a.as_str(), "-f" | "--follow" | "-F")
            || (a.starts_with('-') && !a.starts_with("--") && a.contains('f'))
        {
            return Err(risky(
                Tier::Unknown,
                "`journalctl -f` follows the journal forever",
            ));
        }
        norm.push(a.clone());
        i += 1;
    }
    let spec = Spec {
        short_flags: "aekmrqxN",
        short_args: "uptgSUDoIcM",
        long_flags: &[
            "--no-pager",
            "--utc",
            "--reverse",
            "--all",
            "--quiet",
            "--merge",
            "--catalog",
            "--list-boots",
            "--disk-usage",
            "--no-hostname",
            "--no-full",
            "--full",
            "--pager-end",
            "--dmesg",
            "--system",
            "--user",
            "--header",
            "--fields",
            "--no-tail",
            "--show-cursor",
        ],
        long_args: &[
            "--unit",
            "--user-unit",
            "--since",
            "--until",
            "--lines",
            "--output",
            "--priority",
            "--identifier",
            "--grep",
            "--boot",
            "--cursor",
            "--after-cursor",
            "--facility",
            "--output-fields",
            "--field",
            "--directory",
            "--file",
            "--case-sensitive",
        ],
        ..Spec::default()
    };
    let toks = scan(&norm, &spec).map_err(|o| {
        if o.starts_with("--vacuum")
            || matches!(
                o.as_str(),
                "--rotate"
                    | "--flush"
                    | "--sync"
                    | "--relinquish-var"
                    | "--smart-relinquish-var"
                    | "--setup-keys"
                    | "--update-catalog"
            )
        {
            risky(
                Tier::HostChange,
                format!("`journalctl {o}` changes or deletes the journal"),
            )
        } else {
            bad_option("journalctl", &o)
        }
    })?;
    if has(&toks, &["-M"]) {
        return Err(bad_option("journalctl", "-M"));
    }
    let reads = values(&toks, &["-D", "--directory", "--file"])
        .into_iter()
        .map(|p| w.read_target(p, true))
        .collect::<Vec<_>>();
    Ok(fold_all(read_only("journalctl"), reads))
}

fn ping(program: &str, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "46nqvDOaAURdLB",
        short_args: "ciWwstIMQpSTFm",
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o.starts_with('-') && (o.contains('f') || o.contains('l') || o.contains('b')) {
            risky(
                Tier::HostChange,
                format!("`{program} {o}` floods, preloads or broadcasts"),
            )
        } else {
            bad_option(program, &o)
        }
    })?;
    for i in values(&toks, &["-i"]) {
        match i.parse::<f64>() {
            Ok(v) if v >= 0.2 => {}
            _ => {
                return Err(risky(
                    Tier::HostChange,
                    format!(
                        "`{program} -i {i}` sends faster than an unprivileged user may (flood)"
                    ),
                ))
            }
        }
    }
    if positionals(&toks).len() != 1 {
        return Err(bad_option(program, &args.join(" ")));
    }
    if !has(&toks, &["-c", "-w"]) {
        return Err(risky(
            Tier::Unknown,
            format!("`{program}` without -c or -w runs until interrupted"),
        ));
    }
    Ok(read_only(program))
}

fn traceroute(program: &str, args: &[String]) -> Result<V, V> {
    let spec = if program.starts_with("tracepath") {
        Spec {
            short_flags: "46nb",
            short_args: "lmp",
            ..Spec::default()
        }
    } else {
        Spec {
            short_flags: "46IUTdFnreA",
            short_args: "fgimNpqstwzM",
            long_flags: &["--icmp", "--tcp", "--udp", "--tcp-syn?"],
            long_args: &[
                "--max-hops",
                "--first",
                "--port",
                "--queries",
                "--wait",
                "--sendwait",
                "--tos",
                "--interface",
            ],
            ..Spec::default()
        }
    };
    let toks = scanned(program, args, &spec)?;
    let n = positionals(&toks).len();
    if n == 0 || n > 2 {
        return Err(bad_option(program, &args.join(" ")));
    }
    Ok(read_only(program))
}

fn mtr(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "rwbnz46uTejxCp",
        short_args: "cPiafmQsGZ",
        long_flags: &[
            "--report",
            "--report-wide",
            "--json",
            "--xml",
            "--csv",
            "--raw",
            "--split",
            "--no-dns",
            "--show-ips",
            "--aslookup",
            "--tcp",
            "--udp",
        ],
        long_args: &[
            "--report-cycles",
            "--port",
            "--interval",
            "--first-ttl",
            "--max-ttl",
            "--psize",
            "--timeout",
            "--tos",
            "--address",
        ],
        ..Spec::default()
    };
    let toks = scanned("mtr", args, &spec)?;
    if !has(
        &toks,
        &[
            "-r",
            "-w",
            "--report",
            "--report-wide",
            "-j",
            "--json",
            "-x",
            "--xml",
            "-C",
            "--csv",
            "-p",
            "--split",
            "--raw",
        ],
    ) {
        return Err(risky(
            Tier::Unknown,
            "`mtr` without --report/--json is an interactive display that runs until interrupted",
        ));
    }
    if positionals(&toks).len() != 1 {
        return Err(bad_option("mtr", &args.join(" ")));
    }
    Ok(read_only("mtr"))
}

fn dig(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let mut v = read_only("dig");
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a.starts_with('+') || a.starts_with('@') || !a.starts_with('-') {
            continue;
        }
        match a {
            "-4" | "-6" | "-r" | "-u" | "-v" | "-h" | "-i" | "-m" => {}
            "-b" | "-p" | "-t" | "-c" | "-q" | "-x" => i += 1,
            "-f" => {
                let f = args.get(i).map(String::as_str).unwrap_or("");
                v = worst(v, w.read_target(f, true));
                i += 1;
            }
            "-k" | "-y" => return Err(risky(Tier::Secret, "`dig -k/-y` uses a TSIG key")),
            _ => {
                if a.len() > 2 && matches!(&a[..2], "-t" | "-c" | "-q" | "-x" | "-p" | "-b") {
                    continue;
                }
                return Err(bad_option("dig", a));
            }
        }
    }
    Ok(v)
}

fn nslookup(args: &[String]) -> Result<V, V> {
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if pos.is_empty() {
        return Err(risky(
            Tier::Unknown,
            "`nslookup` without a name is interactive",
        ));
    }
    if pos.len() > 2 {
        return Err(bad_option("nslookup", &args.join(" ")));
    }
    Ok(read_only("nslookup"))
}

fn host(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "aACdlilrsTUv46",
        short_args: "cNRtWm",
        ..Spec::default()
    };
    let toks = scanned("host", args, &spec)?;
    let n = positionals(&toks).len();
    if n == 0 || n > 2 {
        return Err(bad_option("host", &args.join(" ")));
    }
    Ok(read_only("host"))
}

fn whois(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "HIBbGlLMcrxR",
        short_args: "hpiTs",
        long_args: &["--host", "--port"],
        ..Spec::default()
    };
    let toks = scanned("whois", args, &spec)?;
    if positionals(&toks).is_empty() {
        return Err(bad_option("whois", ""));
    }
    Ok(read_only("whois"))
}

fn ss(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "hVHOnralopemisZzb046tudwxSMT",
        short_args: "NfA",
        long_flags: &[
            "--numeric",
            "--resolve",
            "--all",
            "--listening",
            "--options",
            "--extended",
            "--memory",
            "--processes",
            "--info",
            "--summary",
            "--tcp",
            "--udp",
            "--raw",
            "--unix",
            "--packet",
            "--sctp",
            "--dccp",
            "--vsock",
            "--tipc",
            "--xdp",
            "--context",
            "--contexts",
            "--bpf",
            "--ipv4",
            "--ipv6",
            "--no-header",
            "--oneline",
            "--threads",
            "--cgroup",
            "--tos",
            "--mptcp",
            "--version",
            "--help",
        ],
        long_args: &["--net", "--family", "--query", "--socket"],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o == "--kill" || (o.starts_with('-') && !o.starts_with("--") && o.contains('K')) {
            risky(Tier::HostChange, "`ss -K` kills sockets")
        } else {
            bad_option("ss", &o)
        }
    })?;
    let _ = toks;
    Ok(read_only("ss"))
}

fn netstat(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "rinsaltuwxpevWgMFCoZ46",
        long_flags: &[
            "--route",
            "--interfaces",
            "--numeric",
            "--statistics",
            "--all",
            "--listening",
            "--tcp",
            "--udp",
            "--raw",
            "--unix",
            "--programs",
            "--extend",
            "--verbose",
            "--wide",
            "--groups",
            "--timers",
            "--numeric-hosts",
            "--numeric-ports",
            "--masquerade",
        ],
        ..Spec::default()
    };
    let toks = scanned("netstat", args, &spec)?;
    if let Some(p) = positionals(&toks).first() {
        return Err(bad_option("netstat", p));
    }
    Ok(read_only("netstat"))
}

fn lsof(args: &[String]) -> Result<V, V> {
    for a in args {
        if a.starts_with("-r") || a.starts_with("+r") {
            return Err(risky(Tier::Unknown, "`lsof -r` repeats until interrupted"));
        }
        if a.starts_with("-D") || a.starts_with("-k") {
            return Err(bad_option("lsof", a));
        }
    }
    Ok(read_only("lsof"))
}

const IP_OBJECTS: &[&str] = &[
    "address",
    "addrlabel",
    "maddress",
    "route",
    "rule",
    "neighbor",
    "neighbour",
    "ntable",
    "ntbl",
    "link",
    "l2tp",
    "fou",
    "ila",
    "macsec",
    "tunnel",
    "tunl",
    "tuntap",
    "tap",
    "token",
    "tcpmetrics",
    "tcp_metrics",
    "monitor",
    "xfrm",
    "mroute",
    "mrule",
    "netns",
    "netconf",
    "vrf",
    "sr",
    "nexthop",
    "mptcp",
    "ioam",
    "stats",
];

fn ip(args: &[String]) -> Result<V, V> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let o = args[i].trim_start_matches('-');
        match o {
            "4" | "6" | "0" | "B" | "M" | "j" | "json" | "p" | "pretty" | "s" | "stats"
            | "statistics" | "d" | "details" | "h" | "human" | "human-readable" | "br"
            | "brief" | "o" | "oneline" | "r" | "resolve" | "a" | "all" | "t" | "timestamp"
            | "ts" | "tshort" | "iec" | "N" | "numeric" | "c" | "color" | "colour" => i += 1,
            o if o.starts_with("color=") || o.starts_with("c=") || o.starts_with("colour=") => {
                i += 1
            }
            "n" | "netns" | "f" | "family" | "l" | "loops" => i += 2,
            "V" | "Version" => return Ok(read_only("ip")),
            "b" | "batch" | "force" | "rc" | "rcvbuf" => {
                return Err(risky(
                    Tier::HostChange,
                    format!("`ip -{o}` runs commands from a file or forces changes"),
                ))
            }
            _ => return Err(bad_option("ip", &args[i])),
        }
    }
    let Some(obj_word) = args.get(i) else {
        return Err(bad_option("ip", "(no object)"));
    };
    let Some(object) = IP_OBJECTS.iter().find(|o| o.starts_with(obj_word.as_str())) else {
        return Err(bad_option("ip", obj_word));
    };
    let readable = matches!(
        *object,
        "address"
            | "addrlabel"
            | "maddress"
            | "route"
            | "rule"
            | "neighbor"
            | "neighbour"
            | "ntable"
            | "ntbl"
            | "link"
            | "tunnel"
            | "tunl"
            | "tuntap"
            | "tap"
            | "token"
            | "netns"
            | "netconf"
            | "vrf"
            | "nexthop"
            | "mroute"
            | "mrule"
            | "tcpmetrics"
            | "tcp_metrics"
            | "stats"
    );
    if !readable {
        return Err(risky(
            Tier::Unknown,
            format!("`ip {object}` is not in the read-only allowlist"),
        ));
    }
    let verb = args.get(i + 1).map(String::as_str);
    let ok = match verb {
        None => true,
        Some(v) => {
            matches!(
                v,
                "show" | "sh" | "sho" | "list" | "lst" | "ls" | "li" | "lis" | "help"
            ) || (v == "get"
                && matches!(
                    *object,
                    "route" | "neighbor" | "neighbour" | "nexthop" | "netconf"
                ))
                || (*object == "netns" && matches!(v, "list-id" | "identify" | "pids"))
                || (matches!(
                    *object,
                    "address" | "link" | "route" | "neighbor" | "neighbour"
                ) && v == "dev")
        }
    };
    if ok {
        Ok(safe(Tier::ReadOnly, format!("`ip {object}` read form")))
    } else if verb == Some("exec") {
        Err(risky(
            Tier::Unknown,
            "`ip netns exec` runs a command inside a namespace",
        ))
    } else {
        Err(risky(
            Tier::HostChange,
            format!(
                "`ip {object} {}` changes network configuration",
                verb.unwrap_or("")
            ),
        ))
    }
}

fn arp(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "anve",
        short_args: "iHA",
        long_flags: &["--all", "--numeric", "--verbose"],
        long_args: &["--device", "--hw-type"],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o.contains('d') || o.contains('s') || o.contains('f') {
            risky(Tier::HostChange, "`arp -d/-s/-f` changes the ARP cache")
        } else {
            bad_option("arp", &o)
        }
    })?;
    if positionals(&toks).len() > 1 {
        return Err(bad_option("arp", &args.join(" ")));
    }
    Ok(read_only("arp"))
}

fn route(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "nevFC46",
        short_args: "A",
        long_flags: &["--numeric", "--extend", "--verbose", "--fib", "--cache"],
        ..Spec::default()
    };
    let toks = scanned("route", args, &spec)?;
    if let Some(p) = positionals(&toks).first() {
        return Err(risky(
            Tier::HostChange,
            format!("`route {p}` changes the routing table"),
        ));
    }
    Ok(read_only("route"))
}

fn tc(args: &[String]) -> Result<V, V> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let o = args[i].trim_start_matches('-');
        match o {
            "s" | "stats" | "statistics" | "d" | "details" | "r" | "raw" | "p" | "pretty" | "i"
            | "iec" | "g" | "graph" | "j" | "json" | "N" | "nm" | "name" | "c" | "color" | "t"
            | "timestamp" | "ts" | "tshort" => i += 1,
            "n" | "netns" => i += 2,
            "V" | "Version" => return Ok(read_only("tc")),
            "b" | "batch" | "force" | "OK" => {
                return Err(risky(
                    Tier::HostChange,
                    format!("`tc -{o}` runs commands from a file"),
                ))
            }
            _ => return Err(bad_option("tc", &args[i])),
        }
    }
    let Some(obj) = args.get(i) else {
        return Err(bad_option("tc", "(no object)"));
    };
    let object = [
        "qdisc", "class", "filter", "actions", "action", "chain", "monitor", "exec",
    ]
    .into_iter()
    .find(|o| o.starts_with(obj.as_str()))
    .ok_or_else(|| bad_option("tc", obj))?;
    if matches!(object, "monitor" | "exec") {
        return Err(risky(
            Tier::Unknown,
            format!("`tc {object}` is not in the read-only allowlist"),
        ));
    }
    match args.get(i + 1).map(String::as_str) {
        None | Some("show" | "sh" | "list" | "ls" | "lst" | "get" | "help") => {
            Ok(safe(Tier::ReadOnly, format!("`tc {object}` read form")))
        }
        Some("dev") if object != "actions" && object != "action" => {
            Ok(safe(Tier::ReadOnly, format!("`tc {object}` read form")))
        }
        Some(v) => Err(risky(
            Tier::HostChange,
            format!("`tc {object} {v}` changes traffic control"),
        )),
    }
}

fn iptables(program: &str, args: &[String]) -> Result<V, V> {
    if matches!(args, [a] if a == "-V" || a == "--version") {
        return Ok(safe(
            Tier::ReadOnly,
            format!("`{program} -V` prints its version and back end"),
        ));
    }
    let spec = Spec {
        short_flags: "nvxLSw46",
        short_args: "tW",
        long_flags: &[
            "--numeric",
            "--verbose",
            "--exact",
            "--line-numbers",
            "--list",
            "--list-rules",
            "--wait",
        ],
        long_args: &["--table", "--wait-interval"],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        let mutating_long = [
            "--append",
            "--insert",
            "--delete",
            "--replace",
            "--flush",
            "--delete-chain",
            "--policy",
            "--new-chain",
            "--zero",
            "--rename-chain",
            "--new",
        ];
        if mutating_long.iter().any(|m| o.starts_with(m))
            || (o.starts_with('-')
                && !o.starts_with("--")
                && o[1..].contains(['A', 'I', 'D', 'R', 'F', 'X', 'P', 'N', 'Z', 'E']))
        {
            risky(
                Tier::HostChange,
                format!("`{program} {o}` changes the firewall"),
            )
        } else {
            bad_option(program, &o)
        }
    })?;
    if !has(&toks, &["-L", "-S", "--list", "--list-rules"]) {
        return Err(bad_option(program, &args.join(" ")));
    }
    let pos = positionals(&toks);
    let name_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if pos.len() > 2 || !pos.iter().all(name_ok) {
        return Err(bad_option(program, &args.join(" ")));
    }
    Ok(safe(Tier::ReadOnly, format!("`{program}` lists rules")))
}

fn iptables_save(program: &str, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "c",
        short_args: "t",
        long_flags: &["--counters"],
        long_args: &["--table"],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o.starts_with("-f") || o.starts_with("--file") {
            risky(Tier::HostChange, format!("`{program} -f` writes a file"))
        } else {
            bad_option(program, &o)
        }
    })?;
    if let Some(p) = positionals(&toks).first() {
        return Err(bad_option(program, p));
    }
    Ok(read_only(program))
}

fn nft(args: &[String]) -> Result<V, V> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        match args[i].as_str() {
            "-j" | "--json" | "-a" | "--handle" | "-n" | "--numeric" | "-N" | "--reversedns"
            | "-s" | "--stateless" | "-t" | "--terse" | "-y" | "--numeric-priority" | "-p"
            | "--numeric-protocol" | "-T" | "--numeric-time" | "-S" | "--service" | "-u"
            | "--guid" | "-c" | "--check" => i += 1,
            "-v" | "--version" | "-V" => return Ok(read_only("nft")),
            o if o.starts_with('-')
                && !o.starts_with("--")
                && o[1..].chars().all(|c| "jansStyNpTu".contains(c)) =>
            {
                i += 1
            }
            o => {
                return Err(
                    if o.starts_with("-f")
                        || o.starts_with("--file")
                        || o.starts_with("-i")
                        || o.starts_with("--interactive")
                        || o.starts_with("-I")
                        || o.starts_with("-D")
                    {
                        risky(
                            Tier::HostChange,
                            format!("`nft {o}` runs rules from a file or interactively"),
                        )
                    } else {
                        bad_option("nft", o)
                    },
                )
            }
        }
    }
    let words: Vec<&str> = args[i..]
        .iter()
        .flat_map(|a| a.split_whitespace())
        .collect();
    if words.first() != Some(&"list") {
        return Err(risky(
            Tier::HostChange,
            format!("`nft {}` is not a `list` command", words.join(" ")),
        ));
    }
    let mutating = [
        "add", "delete", "flush", "insert", "replace", "create", "destroy", "reset", "rename",
        "import", "monitor",
    ];
    if words
        .iter()
        .any(|w| w.contains([';', '{', '}']) || mutating.contains(w))
    {
        return Err(risky(
            Tier::HostChange,
            "`nft` command with more than a listing",
        ));
    }
    Ok(safe(Tier::ReadOnly, "`nft list` reads the ruleset"))
}

fn conntrack(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "LGCSng",
        short_args: "psdrqofmuwb",
        long_flags: &[
            "--dump",
            "--get",
            "--count",
            "--stats",
            "--src-nat",
            "--dst-nat",
        ],
        long_args: &[
            "--proto",
            "--src",
            "--dst",
            "--reply-src",
            "--reply-dst",
            "--sport",
            "--dport",
            "--reply-port-src",
            "--reply-port-dst",
            "--orig-src",
            "--orig-dst",
            "--orig-port-src",
            "--orig-port-dst",
            "--output",
            "--family",
            "--mark",
            "--status",
            "--zone",
            "--label",
            "--state",
            "--buffer-size",
        ],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o.starts_with("--delete")
            || o.starts_with("--flush")
            || o.starts_with("--create")
            || o.starts_with("--update")
            || o.starts_with("--event")
            || (o.starts_with('-')
                && !o.starts_with("--")
                && o[1..].contains(['D', 'F', 'I', 'U', 'R', 'E', 'z']))
        {
            risky(
                Tier::HostChange,
                format!("`conntrack {o}` changes or follows the connection table"),
            )
        } else {
            bad_option("conntrack", &o)
        }
    })?;
    if !has(
        &toks,
        &[
            "-L", "-G", "-C", "-S", "--dump", "--get", "--count", "--stats",
        ],
    ) {
        return Err(bad_option("conntrack", &args.join(" ")));
    }
    for p in positionals(&toks) {
        if !matches!(p, "conntrack" | "expect" | "dying" | "unconfirmed") {
            return Err(bad_option("conntrack", p));
        }
    }
    Ok(read_only("conntrack"))
}

const ETHTOOL_READ: &[&str] = &[
    "-i",
    "--driver",
    "-k",
    "--show-features",
    "--show-offload",
    "-S",
    "--statistics",
    "-g",
    "--show-ring",
    "-a",
    "--show-pause",
    "-c",
    "--show-coalesce",
    "-l",
    "--show-channels",
    "-T",
    "--show-time-stamping",
    "-P",
    "--show-permaddr",
    "-e",
    "--eeprom-dump",
    "-m",
    "--dump-module-eeprom",
    "--module-info",
    "-d",
    "--register-dump",
    "-x",
    "--show-rxfh-indir",
    "--show-rxfh",
    "--show-eee",
    "--show-fec",
    "--show-priv-flags",
    "-n",
    "-u",
    "--show-nfc",
    "--show-ntuple",
    "--show-tunnels",
    "--show-pse",
    "--show-mm",
    "--show-plca",
    "--show-cable-test",
];

fn ethtool(args: &[String]) -> Result<V, V> {
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" | "-I" | "--include-statistics" | "-h" | "--help" | "--version" => i += 1,
            "--debug" => i += 2,
            _ => break,
        }
    }
    let rest = &args[i.min(args.len())..];
    let dev_ok = |d: &str| {
        !d.is_empty()
            && !d.starts_with('-')
            && d.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@:-".contains(c))
    };
    match rest {
        [] => Ok(read_only("ethtool")),
        [dev] if dev_ok(dev) => Ok(read_only("ethtool")),
        [flag, dev, more @ ..] if ETHTOOL_READ.contains(&flag.as_str()) && dev_ok(dev) => {
            if more.is_empty()
                || (matches!(flag.as_str(), "-S" | "--statistics")
                    && more
                        .iter()
                        .all(|m| m.starts_with("--all-groups") || m.starts_with("--groups")))
            {
                Ok(safe(Tier::ReadOnly, format!("`ethtool {flag}` read form")))
            } else {
                Err(bad_option("ethtool", &more.join(" ")))
            }
        }
        [flag, ..] => Err(risky(
            Tier::HostChange,
            format!("`ethtool {flag}` changes or tests the interface"),
        )),
    }
}

fn pcap_input(w: &Walker, file: &str) -> V {
    let ctx = w.ctx();
    let mut allowed: Vec<std::path::PathBuf> = ctx.read_paths.clone();
    if let Some(o) = &ctx.output_dir {
        allowed.push(o.clone());
    }
    if super::paths::read_allowed(file, &allowed) {
        safe(Tier::ReadOnly, format!("reads the capture file `{file}`"))
    } else {
        risky(
            Tier::Secret,
            format!("reads `{file}`, outside the read paths and the output directory"),
        )
    }
}

fn pcap_output(w: &Walker, program: &str, file: &str) -> V {
    if file == "-" {
        return safe(Tier::ReadOnly, "writes packets to stdout");
    }
    match super::paths::write_verdict(file, w.ctx().output_dir.as_deref()) {
        super::paths::WriteVerdict::InOutputDir => safe(
            Tier::Capture,
            format!("`{program} -w` writes inside the output directory"),
        ),
        super::paths::WriteVerdict::Harmless => safe(Tier::ReadOnly, "writes to /dev/null"),
        _ => risky(
            Tier::HostChange,
            format!("`{program} -w {file}` writes outside the output directory"),
        ),
    }
}

fn tcpdump(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "AbdDeKlLnNOpqStuUvxX#",
        short_args: "BcCFGijmMrsTwWyzZEVQ",
        long_flags: &[
            "--number",
            "--print",
            "--immediate-mode",
            "--no-promiscuous-mode",
            "--no-optimize",
            "--list-interfaces",
            "--version",
            "--help",
        ],
        long_args: &[
            "--count",
            "--interface",
            "--snapshot-length",
            "--time-stamp-precision",
            "--direction",
        ],
        ..Spec::default()
    };
    let toks = scanned("tcpdump", args, &spec)?;
    if has(&toks, &["-z"]) {
        return Err(risky(
            Tier::HostChange,
            "`tcpdump -z` runs a command on every rotated file",
        ));
    }
    if has(&toks, &["-E", "-M"]) {
        return Err(risky(
            Tier::Secret,
            "`tcpdump -E/-M` puts a secret on the command line",
        ));
    }
    if has(&toks, &["-V"]) {
        return Err(bad_option("tcpdump", "-V"));
    }
    let reads = values(&toks, &["-r"]);
    if reads.is_empty() || has(&toks, &["-i", "--interface"]) {
        return Err(risky(
            Tier::Capture,
            "`tcpdump` live capture needs approval (only `-r FILE` reading is SAFE)",
        ));
    }
    let mut v = read_only("tcpdump");
    for r in reads {
        v = worst(v, pcap_input(w, r));
    }
    for f in values(&toks, &["-F"]) {
        v = worst(v, w.read_target(f, true));
    }
    for o in values(&toks, &["-w"]) {
        v = worst(v, pcap_output(w, "tcpdump", o));
    }
    Ok(v)
}

fn tshark(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "2nqQxVlPHDLIgpkjU",
        short_args: "rwYReETNdtuOJscfaFiXzKoCbGSWBAMm",
        long_flags: &["--color", "--no-duplicate-keys", "--version", "--help"],
        ..Spec::default()
    };
    let toks = scanned("tshark", args, &spec)?;
    for (opt, why) in [
        ("-X", "`tshark -X` loads extensions such as Lua scripts"),
        ("-z", "`tshark -z` statistics are not allowed unattended"),
        ("-K", "`tshark -K` reads a Kerberos keytab"),
        (
            "-o",
            "`tshark -o` overrides preferences (which can load scripts and files)",
        ),
        ("-C", "`tshark -C` loads a configuration profile"),
        ("-G", "`tshark -G` is not in the allowlist"),
        ("-A", "`tshark -A` puts credentials on the command line"),
        ("-b", "`tshark -b` ring buffers belong to live capture"),
        ("-B", "`tshark -B` belongs to live capture"),
    ] {
        if has(&toks, &[opt]) {
            return Err(risky(Tier::Unknown, why));
        }
    }
    let reads = values(&toks, &["-r"]);
    if reads.is_empty() || has(&toks, &["-i"]) {
        return Err(risky(
            Tier::Capture,
            "`tshark` live capture needs approval (only `-r FILE` reading is SAFE)",
        ));
    }
    let mut v = read_only("tshark");
    for r in reads {
        v = worst(v, pcap_input(w, r));
    }
    for o in values(&toks, &["-w"]) {
        v = worst(v, pcap_output(w, "tshark", o));
    }
    Ok(v)
}

fn curl(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "sSvLiIkf46gNOJjqZ#V",
        short_args: "mHAewxXoDruObcKTFdEyYzCUPQt",
        long_flags: &[
            "--silent",
            "--show-error",
            "--verbose",
            "--location",
            "--include",
            "--head",
            "--insecure",
            "--fail",
            "--fail-with-body",
            "--ipv4",
            "--ipv6",
            "--compressed",
            "--http1.0",
            "--http1.1",
            "--http2",
            "--http2-prior-knowledge",
            "--http3",
            "--no-buffer",
            "--globoff",
            "--no-keepalive",
            "--tcp-nodelay",
            "--remote-name",
            "--remote-name-all",
            "--no-progress-meter",
            "--progress-bar",
            "--path-as-is",
            "--raw",
            "--tr-encoding",
            "--create-dirs",
            "--version",
            "--location-trusted",
            "--ssl-reqd",
            "--tlsv1.2",
            "--tlsv1.3",
            "--fail-early",
            "--styled-output",
            "--no-styled-output",
            "--disable",
            "--get",
            "--show-headers",
        ],
        long_args: &[
            "--max-time",
            "--connect-timeout",
            "--header",
            "--user-agent",
            "--referer",
            "--write-out",
            "--proxy",
            "--request",
            "--output",
            "--dump-header",
            "--range",
            "--user",
            "--cookie",
            "--cookie-jar",
            "--config",
            "--upload-file",
            "--form",
            "--form-string",
            "--data",
            "--data-raw",
            "--data-binary",
            "--data-urlencode",
            "--data-ascii",
            "--json",
            "--url",
            "--resolve",
            "--connect-to",
            "--retry",
            "--retry-delay",
            "--retry-max-time",
            "--limit-rate",
            "--max-filesize",
            "--interface",
            "--local-port",
            "--cacert",
            "--capath",
            "--cert",
            "--key",
            "--oauth2-bearer",
            "--unix-socket",
            "--abstract-unix-socket",
            "--doh-url",
            "--dns-servers",
            "--noproxy",
            "--max-redirs",
            "--proto",
            "--proto-redir",
            "--output-dir",
            "--proxy-user",
            "--netrc-file",
            "--variable",
            "--expand-url",
            "--aws-sigv4",
            "--trace",
            "--trace-ascii",
            "--stderr",
            "--libcurl",
            "--ciphers",
            "--url-query",
        ],
        ..Spec::default()
    };
    let toks = scanned("curl", args, &spec)?;
    let mut v = safe(Tier::ReadOnly, "`curl` GET/HEAD without data");
    let globoff = has(&toks, &["-g", "--globoff"]);
    let mut urls: Vec<&str> = positionals(&toks);
    for t in &toks {
        let Tok::Opt(name, value) = t else { continue };
        let val = value.as_deref().unwrap_or("");
        let n = name.as_str();
        let verdict = match n {
            "-X" | "--request" => {
                if matches!(val.to_ascii_lowercase().as_str(), "get" | "head") {
                    None
                } else {
                    Some(risky(
                        Tier::HostChange,
                        format!("`curl -X {val}` sends a request that may change state"),
                    ))
                }
            }
            "-d" | "--data" | "--data-raw" | "--data-binary" | "--data-urlencode"
            | "--data-ascii" | "--json" | "-F" | "--form" | "--form-string" | "-T"
            | "--upload-file" | "--get" | "--url-query" => {
                Some(risky(Tier::HostChange, format!("`curl {n}` sends data")))
            }
            "-o" | "--output" | "-D" | "--dump-header" | "--trace" | "--trace-ascii"
            | "--stderr" | "--libcurl" => {
                if val == "-" {
                    None
                } else {
                    Some(
                        match super::paths::write_verdict(val, w.ctx().output_dir.as_deref()) {
                            super::paths::WriteVerdict::InOutputDir => safe(
                                Tier::Capture,
                                format!("`curl {n}` writes inside the output directory"),
                            ),
                            super::paths::WriteVerdict::Harmless => {
                                safe(Tier::ReadOnly, "output discarded")
                            }
                            _ => risky(
                                Tier::HostChange,
                                format!("`curl {n} {val}` writes outside the output directory"),
                            ),
                        },
                    )
                }
            }
            "-O" | "--remote-name" | "--remote-name-all" | "--output-dir" | "--create-dirs"
            | "-J" => Some(risky(
                Tier::HostChange,
                format!("`curl {n}` writes files in the current directory"),
            )),
            "-K" | "--config" | "--netrc-file" | "--variable" | "--expand-url" => Some(risky(
                Tier::Unknown,
                format!("`curl {n}` reads options or variables from elsewhere"),
            )),
            "-c" | "--cookie-jar" => {
                Some(risky(Tier::HostChange, "`curl -c` writes a cookie file"))
            }
            "-b" | "--cookie" => (!val.contains('=')).then(|| w.read_target(val, true)),
            "-u" | "--user" | "-E" | "--cert" | "--key" | "--oauth2-bearer" | "-U"
            | "--proxy-user" | "--aws-sigv4" => Some(risky(
                Tier::Secret,
                format!("`curl {n}` puts a credential on the command line"),
            )),
            "-H" | "--header" => {
                let lower = val.to_ascii_lowercase();
                if let Some(f) = val.strip_prefix('@') {
                    Some(w.read_target(f, true))
                } else if lower.starts_with("authorization")
                    || lower.starts_with("proxy-authorization")
                    || lower.starts_with("cookie")
                    || lower.starts_with("x-api-key")
                    || lower.starts_with("metadata")
                {
                    Some(risky(
                        Tier::Secret,
                        "`curl -H` sends a credential or a metadata header",
                    ))
                } else {
                    None
                }
            }
            "-w" | "--write-out" => {
                if let Some(f) = val.strip_prefix('@') {
                    Some(w.read_target(f, true))
                } else if val.contains("%output{") {
                    Some(risky(
                        Tier::HostChange,
                        "`curl -w %output{…}` writes a file",
                    ))
                } else {
                    None
                }
            }
            "--unix-socket" | "--abstract-unix-socket" => Some(risky(
                Tier::HostChange,
                "`curl --unix-socket` talks to a local service socket",
            )),
            "-x" | "--proxy" | "--doh-url" => {
                let u = parse_url(val);
                is_metadata_host(&u.host).then(|| {
                    risky(
                        Tier::Secret,
                        "`curl` through the instance-metadata endpoint",
                    )
                })
            }
            "--resolve" | "--connect-to" => {
                let hit = val.split(':').any(is_metadata_host)
                    || is_metadata_host(val.rsplit(':').next().unwrap_or(""));
                hit.then(|| {
                    risky(
                        Tier::Secret,
                        format!("`curl {n}` points a name at the instance-metadata endpoint"),
                    )
                })
            }
            "--url" => {
                urls.push(val);
                None
            }
            _ => None,
        };
        if let Some(x) = verdict {
            v = worst(v, x);
        }
    }
    if urls.is_empty() && !has(&toks, &["-V", "--version"]) {
        return Err(bad_option("curl", "(no URL)"));
    }
    for u in urls {
        let parts = parse_url(u);
        let host_rest = u.split_once(&parts.host).map(|x| x.1).unwrap_or(u);
        if !globoff && (u.contains(['{', '}']) || host_rest.contains(['[', ']'])) {
            v = worst(
                v,
                risky(
                    Tier::Unknown,
                    format!("`curl` URL globbing in `{u}` (use -g)"),
                ),
            );
        }
        if !matches!(parts.scheme.as_str(), "http" | "https") {
            v = worst(v, risky(Tier::Secret, format!("`curl` with the `{}://` scheme can read local files or reach internal services", parts.scheme)));
        }
        if parts.host.is_empty() {
            v = worst(v, bad_option("curl", u));
        }
        if is_metadata_host(&parts.host) {
            v = worst(
                v,
                risky(
                    Tier::Secret,
                    format!(
                        "`curl` to the instance-metadata endpoint `{}` can reveal credentials",
                        parts.host
                    ),
                ),
            );
        }
        if parts.userinfo.is_some() {
            v = worst(
                v,
                risky(
                    Tier::Secret,
                    "`curl` URL with user information (credentials)",
                ),
            );
        }
    }
    Ok(v)
}

fn nc(program: &str, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "zvnu46",
        short_args: "wW",
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        risky(
            Tier::HostChange,
            format!("`{program} {o}` can listen, send data or run commands"),
        )
    })?;
    if !has(&toks, &["-z"]) {
        return Err(risky(
            Tier::HostChange,
            format!("`{program}` without -z sends or receives data"),
        ));
    }
    let pos = positionals(&toks);
    if pos.len() < 2
        || !pos[1..].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == ',')
        })
    {
        return Err(bad_option(program, &args.join(" ")));
    }
    if is_metadata_host(pos[0]) {
        return Err(risky(
            Tier::Secret,
            "port scan of the instance-metadata endpoint",
        ));
    }
    Ok(safe(
        Tier::ReadOnly,
        format!("`{program} -z` only checks whether ports are open"),
    ))
}

fn cat_head_tail(w: &mut Walker, program: &str, args: &[String]) -> Result<V, V> {
    // `head -20`, `tail -5`
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if program != "cat"
                && a.len() > 1
                && a.starts_with('-')
                && a[1..].chars().all(|c| c.is_ascii_digit())
            {
                format!("-n{}", &a[1..])
            } else {
                a.clone()
            }
        })
        .collect();
    let spec = match program {
        "cat" => Spec {
            short_flags: "AbeEnstTuv",
            long_flags: &[
                "--show-all",
                "--number-nonblank",
                "--show-ends",
                "--number",
                "--squeeze-blank",
                "--show-tabs",
                "--show-nonprinting",
            ],
            ..Spec::default()
        },
        "head" => Spec {
            short_flags: "qvz",
            short_args: "nc",
            long_flags: &["--quiet", "--silent", "--verbose", "--zero-terminated"],
            long_args: &["--lines", "--bytes"],
            ..Spec::default()
        },
        _ => Spec {
            short_flags: "qvz",
            short_args: "ncs",
            long_flags: &[
                "--quiet",
                "--silent",
                "--verbose",
                "--zero-terminated",
                "--retry",
            ],
            long_args: &["--lines", "--bytes", "--sleep-interval"],
            ..Spec::default()
        },
    };
    let toks = scan(&args, &spec).map_err(|o| {
        if program == "tail"
            && (o.starts_with("--follow")
                || (o.starts_with('-') && !o.starts_with("--") && o.contains(['f', 'F'])))
        {
            risky(Tier::Unknown, "`tail -f` follows a file forever")
        } else {
            bad_option(program, &o)
        }
    })?;
    let reads: Vec<V> = positionals(&toks)
        .into_iter()
        .map(|f| w.read_target(f, true))
        .collect();
    Ok(fold_all(read_only(program), reads))
}

fn grep(w: &mut Walker, program: &str, args: &[String]) -> Result<V, V> {
    let args: Vec<String> = args
        .iter()
        .filter(|a| !(a.starts_with("--color") || a.starts_with("--colour")))
        .cloned()
        .collect();
    let spec = Spec {
        short_flags: "EFGPivwxcLlnhHoqsbaIrRzUZTy",
        short_args: "efmABC",
        long_flags: &[
            "--ignore-case",
            "--invert-match",
            "--word-regexp",
            "--line-regexp",
            "--count",
            "--files-with-matches",
            "--files-without-match",
            "--line-number",
            "--no-filename",
            "--with-filename",
            "--only-matching",
            "--quiet",
            "--silent",
            "--extended-regexp",
            "--fixed-strings",
            "--perl-regexp",
            "--basic-regexp",
            "--null",
            "--text",
            "--recursive",
            "--dereference-recursive",
            "--no-messages",
            "--byte-offset",
            "--line-buffered",
            "--null-data",
        ],
        long_args: &[
            "--regexp",
            "--file",
            "--max-count",
            "--after-context",
            "--before-context",
            "--context",
            "--include",
            "--exclude",
            "--exclude-dir",
            "--label",
        ],
        ..Spec::default()
    };
    let toks = scanned(program, &args, &spec)?;
    let mut pos = positionals(&toks);
    let pattern_given = has(&toks, &["-e", "--regexp", "-f", "--file"]);
    if !pattern_given {
        if pos.is_empty() {
            return Err(bad_option(program, "(no pattern)"));
        }
        pos.remove(0);
    }
    let recursive = has(
        &toks,
        &["-r", "-R", "--recursive", "--dereference-recursive"],
    );
    if recursive && pos.is_empty() {
        return Err(risky(
            Tier::Secret,
            format!("`{program} -r` without a path searches the current directory"),
        ));
    }
    let mut reads: Vec<V> = pos.into_iter().map(|f| w.read_target(f, true)).collect();
    reads.extend(
        values(&toks, &["-f", "--file"])
            .into_iter()
            .map(|f| w.read_target(f, true)),
    );
    Ok(fold_all(read_only(program), reads))
}

fn filters(w: &mut Walker, program: &str, args: &[String]) -> Result<V, V> {
    let spec = match program {
        "wc" => Spec {
            short_flags: "clmwL",
            long_flags: &[
                "--bytes",
                "--chars",
                "--lines",
                "--words",
                "--max-line-length",
            ],
            ..Spec::default()
        },
        "sort" => Spec {
            short_flags: "bdfgiMhnRrVsuczC",
            short_args: "ktSo",
            long_flags: &[
                "--numeric-sort",
                "--reverse",
                "--unique",
                "--human-numeric-sort",
                "--version-sort",
                "--stable",
                "--ignore-case",
                "--general-numeric-sort",
                "--month-sort",
                "--ignore-leading-blanks",
                "--dictionary-order",
                "--check",
                "--zero-terminated",
                "--merge",
            ],
            long_args: &[
                "--key",
                "--field-separator",
                "--buffer-size",
                "--output",
                "--parallel",
            ],
            ..Spec::default()
        },
        "uniq" => Spec {
            short_flags: "cdDiuz",
            short_args: "fsw",
            long_flags: &[
                "--count",
                "--repeated",
                "--unique",
                "--ignore-case",
                "--zero-terminated",
            ],
            long_args: &["--skip-fields", "--skip-chars", "--check-chars"],
            ..Spec::default()
        },
        "cut" => Spec {
            short_flags: "snz",
            short_args: "bcfd",
            long_flags: &["--complement", "--only-delimited", "--zero-terminated"],
            long_args: &[
                "--bytes",
                "--characters",
                "--fields",
                "--delimiter",
                "--output-delimiter",
            ],
            ..Spec::default()
        },
        _ => Spec {
            short_flags: "cCdst",
            long_flags: &[
                "--complement",
                "--delete",
                "--squeeze-repeats",
                "--truncate-set1",
            ],
            ..Spec::default()
        },
    };
    let toks = scanned(program, args, &spec)?;
    let pos = positionals(&toks);
    let mut parts: Vec<V> = Vec::new();
    match program {
        "tr" => {
            if pos.is_empty() || pos.len() > 2 {
                return Err(bad_option("tr", &args.join(" ")));
            }
        }
        "uniq" => {
            if let Some(i) = pos.first() {
                parts.push(w.read_target(i, true));
            }
            if let Some(o) = pos.get(1) {
                parts.push(output_file(w, "uniq", o));
            }
            if pos.len() > 2 {
                return Err(bad_option("uniq", pos[2]));
            }
        }
        _ => {
            parts.extend(pos.iter().map(|f| w.read_target(f, true)));
            for o in values(&toks, &["-o", "--output"]) {
                parts.push(output_file(w, program, o));
            }
        }
    }
    Ok(fold_all(read_only(program), parts))
}

/// `base64 [-d] [-i] [-w N] [FILE]`: encodes or decodes to stdout; a file operand follows the
/// read-path rule.
fn base64(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "di",
        short_args: "w",
        long_flags: &["--decode", "--ignore-garbage"],
        long_args: &["--wrap"],
        ..Spec::default()
    };
    let toks = scanned("base64", args, &spec)?;
    let pos = positionals(&toks);
    if pos.len() > 1 {
        return Err(bad_option("base64", pos[1]));
    }
    let reads: Vec<V> = pos
        .into_iter()
        .filter(|f| *f != "-")
        .map(|f| w.read_target(f, true))
        .collect();
    Ok(fold_all(read_only("base64"), reads))
}

/// `gzip`/`gunzip`/`zcat`: SAFE only when the result goes to stdout (`-c`, `zcat`, `-t`,
/// `-l`, or no file operands, i.e. a filter); without `-c` a file operand is replaced.
fn gzip(w: &mut Walker, program: &str, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "cdfklnNqtv123456789",
        long_flags: &[
            "--stdout",
            "--to-stdout",
            "--decompress",
            "--uncompress",
            "--force",
            "--keep",
            "--list",
            "--no-name",
            "--name",
            "--quiet",
            "--test",
            "--verbose",
            "--fast",
            "--best",
        ],
        ..Spec::default()
    };
    let toks = scanned(program, args, &spec)?;
    let files: Vec<&str> = positionals(&toks)
        .into_iter()
        .filter(|f| *f != "-")
        .collect();
    let to_stdout = program == "zcat"
        || has(
            &toks,
            &[
                "-c",
                "--stdout",
                "--to-stdout",
                "-t",
                "--test",
                "-l",
                "--list",
            ],
        );
    if !files.is_empty() && !to_stdout {
        return Err(risky(
            Tier::HostChange,
            format!("`{program}` without -c replaces the files it is given"),
        ));
    }
    let reads: Vec<V> = files.into_iter().map(|f| w.read_target(f, true)).collect();
    Ok(fold_all(read_only(program), reads))
}

/// `sha256sum` and friends print digests; file operands follow the read-path rule. `-c`
/// (verify a list of files named inside another file) is not analysed.
fn checksum(w: &mut Walker, program: &str, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "btz",
        long_flags: &["--binary", "--text", "--tag", "--zero"],
        ..Spec::default()
    };
    let toks = scanned(program, args, &spec)?;
    let reads: Vec<V> = positionals(&toks)
        .into_iter()
        .filter(|f| *f != "-")
        .map(|f| w.read_target(f, true))
        .collect();
    Ok(fold_all(read_only(program), reads))
}

/// `update-alternatives` read forms: `--query NAME`, `--display NAME`, `--list NAME`,
/// `--get-selections`. Every other form changes the system's alternatives.
fn update_alternatives(args: &[String]) -> Result<V, V> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c))
    };
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["--query" | "--display" | "--list", name] if name_ok(name) => Ok(safe(
            Tier::ReadOnly,
            "`update-alternatives` shows which alternative is selected",
        )),
        ["--get-selections"] => Ok(safe(
            Tier::ReadOnly,
            "`update-alternatives --get-selections` lists the selections",
        )),
        _ => Err(risky(
            Tier::HostChange,
            "`update-alternatives` changes the system's alternatives (only --query, --display, --list and --get-selections are read-only)",
        )),
    }
}

/// `ls` lists names and metadata; it reads no file contents, so any path may be listed.
fn ls(args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "1aAdFhilLnpRrStU",
        long_flags: &[
            "--all",
            "--almost-all",
            "--directory",
            "--human-readable",
            "--inode",
            "--numeric-uid-gid",
            "--recursive",
            "--reverse",
            "--dereference",
        ],
        ..Spec::default()
    };
    scanned("ls", args, &spec)?;
    Ok(safe(
        Tier::ReadOnly,
        "`ls` lists names and metadata, it reads no file contents",
    ))
}

fn output_file(w: &Walker, program: &str, file: &str) -> V {
    match super::paths::write_verdict(file, w.ctx().output_dir.as_deref()) {
        super::paths::WriteVerdict::InOutputDir => safe(
            Tier::Capture,
            format!("`{program}` writes inside the output directory"),
        ),
        super::paths::WriteVerdict::Harmless => safe(Tier::ReadOnly, "output discarded"),
        super::paths::WriteVerdict::BlockDevice => {
            super::forbidden(format!("`{program}` writes onto the block device `{file}`"))
        }
        _ => risky(
            Tier::HostChange,
            format!("`{program}` writes `{file}` outside the output directory"),
        ),
    }
}

fn sed(w: &mut Walker, args: &[String]) -> Result<V, V> {
    let spec = Spec {
        short_flags: "nEruzs",
        short_args: "el",
        long_flags: &[
            "--quiet",
            "--silent",
            "--regexp-extended",
            "--null-data",
            "--separate",
            "--unbuffered",
            "--posix",
            "--sandbox",
            "--debug",
        ],
        long_args: &["--expression", "--line-length"],
        ..Spec::default()
    };
    let toks = scan(args, &spec).map_err(|o| {
        if o.starts_with("-i")
            || o.starts_with("--in-place")
            || (o.starts_with('-') && !o.starts_with("--") && o.contains('i'))
        {
            risky(Tier::HostChange, "`sed -i` edits files in place")
        } else if o.starts_with("-f") || o.starts_with("--file") {
            risky(Tier::Unknown, "`sed -f` runs a script from a file")
        } else {
            bad_option("sed", &o)
        }
    })?;
    let mut scripts: Vec<&str> = values(&toks, &["-e", "--expression"]);
    let mut pos = positionals(&toks);
    if scripts.is_empty() {
        if pos.is_empty() {
            return Err(bad_option("sed", "(no script)"));
        }
        scripts.push(pos.remove(0));
    }
    for s in scripts {
        if !sed_script_ok(s) {
            return Err(risky(Tier::Unknown, format!("`sed` script `{s}` uses commands beyond s///, p, d, q, = (w, e, r can write files or run commands)")));
        }
    }
    let reads: Vec<V> = pos.into_iter().map(|f| w.read_target(f, true)).collect();
    Ok(fold_all(
        safe(
            Tier::ReadOnly,
            "`sed` with substitution/print commands only",
        ),
        reads,
    ))
}

/// Accepts scripts made of `[addr[,addr]][!]cmd` items separated by `;` or newlines,
/// where cmd is `p`, `d`, `q`, `=` or `s/re/repl/flags` with flags from `gpiImM0-9`.
fn sed_script_ok(s: &str) -> bool {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let skip_regex = |i: &mut usize, delim: char| -> bool {
        while *i < c.len() {
            if c[*i] == '\\' {
                *i += 2;
                continue;
            }
            if c[*i] == delim {
                *i += 1;
                return true;
            }
            if c[*i] == '\n' {
                return false;
            }
            *i += 1;
        }
        false
    };
    let address = |i: &mut usize| -> bool {
        if *i < c.len() && c[*i].is_ascii_digit() {
            while *i < c.len() && c[*i].is_ascii_digit() {
                *i += 1;
            }
        } else if *i < c.len() && c[*i] == '$' {
            *i += 1;
        } else if *i < c.len() && c[*i] == '/' {
            *i += 1;
            return skip_regex(i, '/');
        }
        true
    };
    loop {
        while i < c.len() && (c[i] == ' ' || c[i] == ';' || c[i] == '\n') {
            i += 1;
        }
        if i >= c.len() {
            return true;
        }
        if !address(&mut i) {
            return false;
        }
        if i < c.len() && c[i] == ',' {
            i += 1;
            if !address(&mut i) {
                return false;
            }
        }
        if i < c.len() && c[i] == '!' {
            i += 1;
        }
        let Some(&cmd) = c.get(i) else {
            return false;
        };
        i += 1;
        match cmd {
            'p' | 'd' | 'q' | '=' => {}
            's' => {
                let Some(&d) = c.get(i) else {
                    return false;
                };
                if d == '\\' || d == '\n' || d.is_alphanumeric() {
                    return false;
                }
                i += 1;
                if !skip_regex(&mut i, d) || !skip_regex(&mut i, d) {
                    return false;
                }
                while i < c.len() && c[i] != ';' && c[i] != '\n' {
                    if !("gpiImM".contains(c[i]) || c[i].is_ascii_digit()) {
                        return false;
                    }
                    i += 1;
                }
            }
            _ => return false,
        }
        if i < c.len() && !(c[i] == ';' || c[i] == '\n' || c[i] == ' ') {
            return false;
        }
    }
}

/// True when the class of `v` is SAFE (used by unit tests).
#[allow(dead_code)]
pub(crate) fn is_safe(v: &V) -> bool {
    v.classification == Class::Safe
}

#[cfg(test)]
mod tests {
    use super::sed_script_ok;

    #[test]
    fn sed_scripts() {
        for s in ["s/a/b/", "s|a|b|g", "1,5p", "/x/d", "s/a\\/b/c/;p", "$!d"] {
            assert!(sed_script_ok(s), "{s}");
        }
        for s in [
            "s/a/b/w /etc/x",
            "e id",
            "r /etc/shadow",
            "s/a/b/e",
            "1w out",
            "{p}",
        ] {
            assert!(!sed_script_ok(s), "{s}");
        }
    }
}
