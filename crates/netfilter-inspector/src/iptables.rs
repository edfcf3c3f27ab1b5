//! `iptables-save` / `ip6tables-save` parser (with and without counters) and renderer.
//!
//! The parser is line-streaming, never panics and keeps anything it does not understand
//! verbatim with a warning. Rendering a parsed rule gives its normalised text (the identity
//! the diff aligns on), and parsing that text gives the same model back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;

use crate::model::{
    Backend, BaseChain, Chain, Cond, Counters, Family, IptablesVariant, Match, Policy, PortRange,
    Rule, Ruleset, Table, Target, Warning,
};
use crate::ParseError;

/// Match modules whose options are kept as structured `Module` conditions without warning.
const KNOWN_MODULES: &[&str] = &[
    "tcp",
    "udp",
    "udplite",
    "sctp",
    "dccp",
    "icmp",
    "icmp6",
    "multiport",
    "state",
    "conntrack",
    "comment",
    "limit",
    "hashlimit",
    "mark",
    "connmark",
    "set",
    "addrtype",
    "iprange",
    "mac",
    "owner",
    "physdev",
    "statistic",
    "recent",
    "string",
    "length",
    "ttl",
    "hl",
    "pkttype",
    "tcpmss",
    "socket",
    "policy",
    "connlimit",
    "rpfilter",
    "ah",
    "esp",
    "dscp",
    "tos",
    "ecn",
    "u32",
    "bpf",
    "time",
    "quota",
    "helper",
    "devgroup",
    "cgroup",
    "realm",
    "cpu",
    "nfacct",
    "frag",
    "hbh",
    "rt",
    "ipv6header",
    "mh",
    "connbytes",
    "cluster",
    "ipvs",
    "ipcomp",
    "eui64",
    "srh",
    "connlabel",
    "rateest",
    "osf",
    "nfqueue",
];

/// Options common enough to be shared static strings in the model.
const COMMON_OPTIONS: &[&str] = &[
    "-p",
    "-s",
    "-d",
    "-i",
    "-o",
    "--dport",
    "--sport",
    "--dports",
    "--sports",
    "--ports",
    "--comment",
    "--ctstate",
    "--state",
    "--mode",
    "--probability",
    "--every",
    "--packet",
    "--limit",
    "--mark",
    "--match-set",
    "--icmp-type",
    "--icmpv6-type",
    "--tcp-flags",
    "--syn",
    "--src-type",
    "--dst-type",
    "--src-range",
    "--dst-range",
    "--physdev-in",
    "--physdev-out",
    "--physdev-is-bridged",
    "--uid-owner",
    "--mac-source",
];

/// A shared static copy of `s` when it is one of `known`, else an owned copy.
fn intern(s: &str, known: &[&'static str]) -> Cow<'static, str> {
    match known.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(*k),
        None => Cow::Owned(s.to_string()),
    }
}

/// Extension targets and whether they end traversal of the chain.
const EXTENSION_TARGETS: &[(&str, bool)] = &[
    ("LOG", false),
    ("NFLOG", false),
    ("ULOG", false),
    ("MARK", false),
    ("CONNMARK", false),
    ("CT", false),
    ("NOTRACK", false),
    ("TCPMSS", false),
    ("TTL", false),
    ("HL", false),
    ("TOS", false),
    ("DSCP", false),
    ("ECN", false),
    ("CLASSIFY", false),
    ("SECMARK", false),
    ("CONNSECMARK", false),
    ("TEE", false),
    ("AUDIT", false),
    ("CHECKSUM", false),
    ("TRACE", false),
    ("IDLETIMER", false),
    ("LED", false),
    ("SET", false),
    ("RATEEST", false),
    ("HMARK", false),
    ("TCPOPTSTRIP", false),
    ("CLUSTERIP", false),
    ("DNAT", true),
    ("SNAT", true),
    ("MASQUERADE", true),
    ("REDIRECT", true),
    ("NETMAP", true),
    ("NFQUEUE", true),
    ("TPROXY", true),
    ("SYNPROXY", true),
];

/// Whether `name` is a known extension target, and if so whether it terminates.
pub fn extension_target(name: &str) -> Option<bool> {
    EXTENSION_TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Hook, type and priority of an iptables builtin chain in `table`.
pub fn builtin_chain(table: &str, chain: &str) -> Option<(&'static str, &'static str, i32)> {
    let hook = match chain {
        "PREROUTING" => "prerouting",
        "INPUT" => "input",
        "FORWARD" => "forward",
        "OUTPUT" => "output",
        "POSTROUTING" => "postrouting",
        _ => return None,
    };
    let (ty, prio) = match (table, chain) {
        ("raw", "PREROUTING" | "OUTPUT") => ("filter", -300),
        ("mangle", "OUTPUT") => ("route", -150),
        ("mangle", _) => ("filter", -150),
        ("nat", "PREROUTING" | "OUTPUT") => ("nat", -100),
        ("nat", "INPUT" | "POSTROUTING") => ("nat", 100),
        ("filter", "INPUT" | "FORWARD" | "OUTPUT") => ("filter", 0),
        ("security", "INPUT" | "FORWARD" | "OUTPUT") => ("filter", 50),
        _ => return None,
    };
    Some((hook, ty, prio))
}

#[derive(Debug, Clone)]
struct Token<'a> {
    /// Borrowed from the line unless quotes or escapes had to be resolved.
    text: Cow<'a, str>,
    quoted: bool,
}

/// Splits a line like a shell would for iptables-save output: double quotes group, a
/// backslash escapes the next character. Never fails: an unterminated quote ends the token.
/// Tokens without quotes or escapes (nearly all) borrow from the line.
fn tokenize(line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::with_capacity(16);
    let mut it = line.char_indices().peekable();
    loop {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else { break };
        let mut special = false;
        let mut in_quotes = false;
        let mut end = line.len();
        while let Some(&(idx, c)) = it.peek() {
            match c {
                '\\' => {
                    special = true;
                    it.next();
                }
                '"' => {
                    special = true;
                    in_quotes = !in_quotes;
                }
                c if c.is_whitespace() && !in_quotes => {
                    end = idx;
                    break;
                }
                _ => {}
            }
            it.next();
        }
        let seg = &line[start..end];
        out.push(if special {
            unquote(seg)
        } else {
            Token {
                text: Cow::Borrowed(seg),
                quoted: false,
            }
        });
    }
    out
}

/// Resolves the quotes and escapes of one token's text.
fn unquote(seg: &str) -> Token<'static> {
    let mut cur = String::with_capacity(seg.len());
    let mut quoted = false;
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => quoted = true,
            c => cur.push(c),
        }
    }
    Token {
        text: Cow::Owned(cur),
        quoted,
    }
}

fn needs_quotes(arg: &str) -> bool {
    arg.is_empty()
        || arg.starts_with('-')
        || arg == "!"
        || arg
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'')
}

/// Appends `arg`, quoted when it needs it.
fn push_quoted(out: &mut String, arg: &str) {
    if !needs_quotes(arg) {
        out.push_str(arg);
        return;
    }
    out.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Quotes an argument for rendering when it needs it.
pub fn quote(arg: &str) -> String {
    let mut s = String::with_capacity(arg.len() + 2);
    push_quoted(&mut s, arg);
    s
}

fn is_option(t: &Token) -> bool {
    !t.quoted && is_option_text(&t.text)
}

fn is_option_text(t: &str) -> bool {
    t == "!"
        || (t.starts_with('-') && t.len() > 1 && !t[1..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Parses `a,b:c` port lists.
pub fn parse_ports(s: &str) -> Option<Vec<PortRange>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = match part.split_once([':', '-']) {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let start = if a.is_empty() { 0 } else { a.parse().ok()? };
        let end = if b.is_empty() { 65535 } else { b.parse().ok()? };
        if start > end {
            return None;
        }
        out.push(PortRange { start, end });
    }
    Some(out)
}

fn render_ports(ports: &[PortRange]) -> String {
    ports
        .iter()
        .map(|p| {
            if p.start == p.end {
                p.start.to_string()
            } else {
                format!("{}:{}", p.start, p.end)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `value[/mask]` of mark matches.
pub fn parse_mark(s: &str) -> Option<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(s)?, u32::MAX)),
    }
}

/// Builds one condition from a module option and its arguments.
fn module_cond(module: &str, option: &str, args: &[&str]) -> Option<Cond> {
    let a0 = args.first().copied().unwrap_or("");
    let one = args.len() == 1;
    Some(match (module, option) {
        ("tcp" | "udp" | "sctp" | "dccp" | "udplite", "--dport" | "--destination-port") if one => {
            Cond::DestPort {
                ports: parse_ports(a0)?,
            }
        }
        ("tcp" | "udp" | "sctp" | "dccp" | "udplite", "--sport" | "--source-port") if one => {
            Cond::SourcePort {
                ports: parse_ports(a0)?,
            }
        }
        ("multiport", "--dports" | "--destination-ports") if one => Cond::DestPort {
            ports: parse_ports(a0)?,
        },
        ("multiport", "--sports" | "--source-ports") if one => Cond::SourcePort {
            ports: parse_ports(a0)?,
        },
        ("multiport", "--ports") if one => Cond::AnyPort {
            ports: parse_ports(a0)?,
        },
        ("tcp", "--tcp-flags") if args.len() == 2 => Cond::TcpFlags {
            mask: split_list(a0),
            set: split_list(args[1]),
        },
        ("tcp", "--syn") if args.is_empty() => Cond::TcpFlags {
            mask: vec!["FIN".into(), "SYN".into(), "RST".into(), "ACK".into()],
            set: vec!["SYN".into()],
        },
        ("icmp", "--icmp-type") | ("icmp6", "--icmpv6-type") if one => Cond::IcmpType {
            icmp_type: a0.to_string(),
        },
        ("state", "--state") | ("conntrack", "--ctstate") if one => Cond::CtState {
            states: a0.split(',').map(|s| s.to_ascii_uppercase()).collect(),
        },
        ("comment", "--comment") if one => Cond::Comment {
            text: a0.to_string(),
        },
        ("limit", "--limit") if one => Cond::Limit {
            rate: a0.to_string(),
            burst: None,
            over: false,
        },
        ("mark" | "connmark", "--mark") if one => {
            if module == "connmark" {
                return Some(Cond::Module {
                    module: module.into(),
                    option: "mark".into(),
                    args: args.iter().map(|a| a.to_string()).collect(),
                });
            }
            let (value, mask) = parse_mark(a0)?;
            Cond::Mark { value, mask }
        }
        ("set", "--match-set") if args.len() == 2 => Cond::SetLookup {
            set: a0.to_string(),
            key: args[1].to_string(),
        },
        ("addrtype", "--src-type") if one => Cond::AddrType {
            src_type: Some(a0.to_string()),
            dst_type: None,
        },
        ("addrtype", "--dst-type") if one => Cond::AddrType {
            src_type: None,
            dst_type: Some(a0.to_string()),
        },
        ("iprange", "--src-range" | "--dst-range") if one => {
            let (from, to) = a0.split_once('-')?;
            Cond::AddrRange {
                dir: if option == "--src-range" {
                    "src"
                } else {
                    "dst"
                }
                .into(),
                from: from.into(),
                to: to.into(),
            }
        }
        _ => return None,
    })
}

fn split_list(s: &str) -> Vec<String> {
    if s == "NONE" {
        return Vec::new();
    }
    s.split(',').map(str::to_string).collect()
}

/// A space-separated part writer for rule text.
struct Parts<'a> {
    out: &'a mut String,
}

impl Parts<'_> {
    fn raw(&mut self, s: &str) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        self.out.push_str(s);
    }
    fn quoted(&mut self, s: &str) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        push_quoted(self.out, s);
    }
    /// One argument made of `items` joined by `sep`, quoted as a whole when it needs it.
    fn joined(&mut self, items: &[String], sep: &str) {
        match items {
            [one] => self.quoted(one),
            _ => self.quoted(&items.join(sep)),
        }
    }
}

fn write_ports(p: &mut Parts, ports: &[PortRange]) {
    p.quoted(&render_ports(ports));
}

/// Writes the arguments of a condition as they appear after its option.
fn write_cond_args(p: &mut Parts, m: &Match) {
    match &m.cond {
        Cond::Protocol { protocol } => p.quoted(protocol),
        Cond::Source { addrs } | Cond::Destination { addrs } => p.joined(addrs, ","),
        Cond::InInterface { name } | Cond::OutInterface { name } => p.quoted(name),
        Cond::SourcePort { ports } | Cond::DestPort { ports } | Cond::AnyPort { ports } => {
            write_ports(p, ports)
        }
        Cond::IcmpType { icmp_type } => p.quoted(icmp_type),
        Cond::CtState { states } => p.joined(states, ","),
        Cond::TcpFlags { mask, set } => {
            if m.option.as_deref() != Some("--syn") {
                for v in [mask, set] {
                    if v.is_empty() {
                        p.quoted("NONE");
                    } else {
                        p.joined(v, ",");
                    }
                }
            }
        }
        Cond::Comment { text } => p.quoted(text),
        Cond::Limit { rate, burst, .. } => {
            p.quoted(rate);
            if let Some(b) = burst {
                p.raw("--limit-burst");
                p.quoted(&b.to_string());
            }
        }
        Cond::Mark { value, mask } => {
            if *mask == u32::MAX {
                p.quoted(&format!("{value:#x}"));
            } else {
                p.quoted(&format!("{value:#x}/{mask:#x}"));
            }
        }
        Cond::AddrType { src_type, dst_type } => {
            p.quoted(src_type.as_deref().or(dst_type.as_deref()).unwrap_or(""))
        }
        Cond::SetLookup { set, key } => {
            p.quoted(set);
            p.quoted(key);
        }
        Cond::AddrRange { from, to, .. } => p.quoted(&format!("{from}-{to}")),
        Cond::Module { args, .. } => {
            for a in args {
                p.quoted(a);
            }
        }
        Cond::Unknown { .. } => {}
    }
}

/// Renders a rule's matches and target as iptables-save arguments (no `-A CHAIN`).
pub fn render_rule_args(rule: &Rule) -> String {
    let mut out = String::with_capacity(64);
    let mut p = Parts { out: &mut out };
    let mut module: Option<&str> = None;
    for m in &rule.matches {
        if let Some(md) = m.module.as_deref() {
            if module != Some(md) {
                p.raw("-m");
                p.quoted(md);
                module = Some(md);
            }
        }
        if m.negated {
            p.raw("!");
        }
        if let Cond::Unknown { text } = &m.cond {
            p.raw(text);
            continue;
        }
        match m.option.as_deref() {
            Some(o) => p.raw(o),
            None => p.raw(&default_option(&m.cond)),
        }
        write_cond_args(&mut p, m);
    }
    match &rule.target {
        Target::None => {}
        Target::Accept => p.raw("-j ACCEPT"),
        Target::Drop => p.raw("-j DROP"),
        Target::Return => p.raw("-j RETURN"),
        Target::Queue => p.raw("-j QUEUE"),
        Target::Continue => p.raw("-j CONTINUE"),
        Target::Reject { with } => {
            p.raw("-j REJECT");
            if let Some(w) = with {
                p.raw("--reject-with");
                p.quoted(w);
            }
        }
        Target::Jump { chain } => {
            p.raw("-j");
            p.quoted(chain);
        }
        Target::Goto { chain } => {
            p.raw("-g");
            p.quoted(chain);
        }
        Target::Extension { name, args, .. } => {
            p.raw("-j");
            p.quoted(name);
            for a in args {
                if is_option_text(a) {
                    p.raw(a);
                } else {
                    p.quoted(a);
                }
            }
        }
        Target::VerdictMap { key, map, .. } => p.raw(&format!(
            "-j VMAP({key} {})",
            map.as_deref().unwrap_or_default()
        )),
    }
    out
}

fn default_option(c: &Cond) -> String {
    match c {
        Cond::Protocol { .. } => "-p",
        Cond::Source { .. } => "-s",
        Cond::Destination { .. } => "-d",
        Cond::InInterface { .. } => "-i",
        Cond::OutInterface { .. } => "-o",
        Cond::SourcePort { .. } => "--sport",
        Cond::DestPort { .. } => "--dport",
        Cond::AnyPort { .. } => "--ports",
        Cond::IcmpType { .. } => "--icmp-type",
        Cond::CtState { .. } => "--ctstate",
        Cond::TcpFlags { .. } => "--tcp-flags",
        Cond::Comment { .. } => "--comment",
        Cond::Limit { .. } => "--limit",
        Cond::Mark { .. } => "--mark",
        Cond::AddrType {
            src_type: Some(_), ..
        } => "--src-type",
        Cond::AddrType { .. } => "--dst-type",
        Cond::SetLookup { .. } => "--match-set",
        Cond::AddrRange { dir, .. } if dir == "src" => "--src-range",
        Cond::AddrRange { .. } => "--dst-range",
        Cond::Module { option, .. } => return format!("--{option}"),
        Cond::Unknown { .. } => "",
    }
    .to_string()
}

/// Renders a whole ruleset's iptables tables back to iptables-save text (no counters; a
/// `# Generated by iptables-legacy-save` / `…-nft-save` header line where the back end is
/// known).
pub fn render(ruleset: &Ruleset) -> String {
    let mut out = String::new();
    for t in ruleset
        .tables
        .iter()
        .filter(|t| t.backend == Backend::Iptables)
    {
        // The back end rides in the header, as the save tools print it.
        if let Some(v) = t.variant {
            let tool = if t.family == Family::Ip6 {
                "ip6tables"
            } else {
                "iptables"
            };
            out.push_str(&format!("# Generated by {tool}-{}-save\n", v.as_str()));
        }
        out.push_str(&format!("*{}\n", t.name));
        for c in &t.chains {
            let pol = c.base.as_ref().map(|b| b.policy.as_str()).unwrap_or("-");
            out.push_str(&format!(":{} {} [0:0]\n", c.name, pol));
        }
        for c in &t.chains {
            for r in &c.rules {
                out.push_str(&format!("-A {} {}\n", c.name, r.text));
            }
        }
        out.push_str("COMMIT\n");
    }
    out
}

struct TableBuilder {
    name: String,
    chains: Vec<Chain>,
    index: HashMap<String, usize>,
}

struct State {
    rs: Ruleset,
    cur: Option<TableBuilder>,
    ip6_hint: bool,
    header_family: Option<Family>,
    pending: Vec<(usize, String, String)>,
    /// Back end named by the last `# Generated by` header.
    variant: Option<IptablesVariant>,
}

/// Parses iptables-save / ip6tables-save text.
///
/// The rule lines of a table are parsed on all available cores (up to 4) when there are
/// many of them; the result, warnings included, is exactly that of a line-by-line parse.
pub fn parse_str(text: &str) -> Result<Ruleset, ParseError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    parse_str_with(text, threads, MIN_PARALLEL_RULES, RULE_BATCH)
}

/// [`parse_str`] on at most `threads` threads, with batches of at most `batch` rule lines,
/// in parallel only for batches of at least `min_parallel` rule lines.
fn parse_str_with(
    text: &str,
    threads: usize,
    min_parallel: usize,
    batch_size: usize,
) -> Result<Ruleset, ParseError> {
    // Lines are taken straight from the text: no per-line copy.
    let mut p = LineParser::new();
    let mut batch: Vec<(usize, Option<Counters>, &str)> = Vec::new();
    for line in text.lines() {
        p.lineno += 1;
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        // A rule line inside a table waits in the batch; anything else may change the
        // parser state (a new chain, the end of the table), so the batch goes first.
        if p.st.cur.is_some() {
            let (counters, rest) = strip_counters(t);
            if is_rule_line(rest) {
                batch.push((p.lineno, counters, rest));
                if batch.len() >= batch_size {
                    p.rules(&mut batch, threads, min_parallel);
                }
                continue;
            }
        }
        p.rules(&mut batch, threads, min_parallel);
        p.process(p.lineno, line);
    }
    p.rules(&mut batch, threads, min_parallel);
    p.finish()
}

fn is_rule_line(rest: &str) -> bool {
    rest.starts_with("-A ") || rest.starts_with("--append ")
}

/// Parses iptables-save / ip6tables-save from a reader, line by line.
pub fn parse_reader<R: BufRead>(mut reader: R) -> Result<Ruleset, ParseError> {
    let mut p = LineParser::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| ParseError::Io(e.to_string()))?;
        if n == 0 {
            break;
        }
        p.line(&String::from_utf8_lossy(&buf));
    }
    p.finish()
}

/// The line-by-line parser behind [`parse_str`] and [`parse_reader`].
struct LineParser {
    st: State,
    lineno: usize,
    saw_table: bool,
}

impl LineParser {
    fn new() -> LineParser {
        LineParser {
            st: State {
                rs: Ruleset::default(),
                cur: None,
                ip6_hint: false,
                header_family: None,
                pending: Vec::new(),
                variant: None,
            },
            lineno: 0,
            saw_table: false,
        }
    }

    fn line(&mut self, line: &str) {
        self.lineno += 1;
        self.process(self.lineno, line);
    }

    /// Adds a batch of rule lines of the current table (read in order, with no other line
    /// in between) and empties it. They are parsed together against the chains declared
    /// so far; should one of them create a chain, the rest are parsed again one by one, as
    /// a line-by-line parse would.
    fn rules(
        &mut self,
        batch: &mut Vec<(usize, Option<Counters>, &str)>,
        threads: usize,
        min_parallel: usize,
    ) {
        if batch.is_empty() {
            return;
        }
        let parsed = match self.st.cur.as_ref() {
            Some(tb) => parse_rule_lines(&tb.index, batch, threads, min_parallel),
            None => Vec::new(),
        };
        let mut added = 0;
        for p in parsed {
            added += 1;
            if add_rule(&mut self.st, p) {
                break;
            }
        }
        for &(n, c, r) in batch.get(added..).unwrap_or_default() {
            rule_line(&mut self.st, n, c, r);
        }
        batch.clear();
    }

    fn process(&mut self, lineno: usize, line: &str) {
        let st = &mut self.st;
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        if let Some(c) = line.strip_prefix('#') {
            header_comment(st, c);
            return;
        }
        if let Some(name) = line.strip_prefix('*') {
            finish_table(st);
            self.saw_table = true;
            st.cur = Some(TableBuilder {
                name: name.trim().to_string(),
                chains: Vec::new(),
                index: HashMap::new(),
            });
            return;
        }
        if line == "COMMIT" {
            if st.cur.is_none() {
                warn(&mut st.rs, lineno, "COMMIT outside a table ignored");
            }
            finish_table(st);
            return;
        }
        if let Some(rest) = line.strip_prefix(':') {
            chain_decl(st, lineno, rest);
            return;
        }
        let (counters, rest) = strip_counters(line);
        if is_rule_line(rest) {
            rule_line(st, lineno, counters, rest);
            return;
        }
        if rest.starts_with("-N ") || rest.starts_with("-P ") || rest.starts_with("-I ") {
            warn(
                &mut st.rs,
                lineno,
                &format!(
                    "command line {:?} is not iptables-save output; ignored",
                    trunc(rest)
                ),
            );
            return;
        }
        warn(
            &mut st.rs,
            lineno,
            &format!("unrecognised line {:?} ignored", trunc(line)),
        );
    }

    fn finish(self) -> Result<Ruleset, ParseError> {
        let LineParser {
            mut st, saw_table, ..
        } = self;
        finish_table(&mut st);
        if !saw_table {
            return Err(ParseError::Format(
                "no `*table` section found: this is not iptables-save output".into(),
            ));
        }
        let family = st
            .header_family
            .unwrap_or(if st.ip6_hint { Family::Ip6 } else { Family::Ip });
        for t in &mut st.rs.tables {
            t.family = family;
        }
        if st.rs.producers.is_empty() {
            st.rs.producers.push("iptables".into());
        }
        Ok(st.rs)
    }
}

fn trunc(s: &str) -> String {
    s.chars().take(120).collect()
}

fn warn(rs: &mut Ruleset, line: usize, message: &str) {
    rs.warnings.push(Warning {
        line,
        message: message.to_string(),
    });
}

fn header_comment(st: &mut State, c: &str) {
    let c = c.trim();
    if let Some(rest) = c.strip_prefix("Generated by ") {
        if rest.starts_with("ip6tables") {
            st.header_family = Some(Family::Ip6);
        } else if rest.starts_with("iptables") {
            st.header_family = Some(Family::Ip);
        }
        // `iptables-legacy-save` 1.8 and releases before 1.8 print no back end: legacy.
        let (producer, variant) = if rest.contains("(nf_tables)") || rest.contains("-nft-save") {
            ("iptables-nft", IptablesVariant::Nft)
        } else {
            ("iptables-legacy", IptablesVariant::Legacy)
        };
        st.variant = Some(variant);
        if !st.rs.producers.iter().any(|p| p == producer) {
            st.rs.producers.push(producer.into());
        }
    } else if c.contains("iptables-legacy tables present")
        && !st.rs.producers.iter().any(|p| p == "iptables-legacy")
    {
        st.rs.producers.push("iptables-legacy".into());
    }
}

fn strip_counters(line: &str) -> (Option<Counters>, &str) {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((inner, after)) = rest.split_once(']') {
            if let Some((p, b)) = inner.split_once(':') {
                if let (Ok(packets), Ok(bytes)) = (p.parse(), b.parse()) {
                    return (Some(Counters { packets, bytes }), after.trim_start());
                }
            }
        }
    }
    (None, line)
}

fn chain_decl(st: &mut State, lineno: usize, rest: &str) {
    let Some(tb) = st.cur.as_mut() else {
        warn(
            &mut st.rs,
            lineno,
            "chain declaration outside a table ignored",
        );
        return;
    };
    let mut parts = rest.split_whitespace();
    let name = parts.next().unwrap_or("").to_string();
    let policy = parts.next().unwrap_or("-");
    let counters = parts.next().and_then(|c| strip_counters(c).0);
    if name.is_empty() {
        st.rs.warnings.push(Warning {
            line: lineno,
            message: "chain declaration without a name ignored".into(),
        });
        return;
    }
    let base = match (builtin_chain(&tb.name, &name), policy) {
        (Some((hook, ty, prio)), "ACCEPT" | "DROP") => Some(BaseChain {
            hook: hook.into(),
            chain_type: ty.into(),
            priority: prio,
            policy: if policy == "DROP" {
                Policy::Drop
            } else {
                Policy::Accept
            },
            device: None,
        }),
        (None, "-") => None,
        (_, p) => {
            st.rs.warnings.push(Warning {
                line: lineno,
                message: format!(
                    "chain {name} has unexpected policy {p:?}; treated as a user chain"
                ),
            });
            None
        }
    };
    if tb.index.contains_key(&name) {
        st.rs.warnings.push(Warning {
            line: lineno,
            message: format!("chain {name} declared twice; second declaration ignored"),
        });
        return;
    }
    tb.index.insert(name.clone(), tb.chains.len());
    tb.chains.push(Chain {
        name,
        base,
        rules: Vec::new(),
        counters,
    });
}

fn finish_table(st: &mut State) {
    let Some(tb) = st.cur.take() else { return };
    // Resolve targets now that every chain is declared: a name that is a chain is a jump.
    let mut chains = tb.chains;
    for (line, chain, target) in st.pending.drain(..) {
        if !tb.index.contains_key(&target) {
            st.rs.warnings.push(Warning {
                line,
                message: format!(
                    "rule in {chain} jumps to {target}, which is neither a chain of table {} nor a known extension target",
                    tb.name
                ),
            });
        }
    }
    for c in &mut chains {
        for (i, r) in c.rules.iter_mut().enumerate() {
            r.position = i + 1;
        }
        c.rules.shrink_to_fit();
    }
    chains.shrink_to_fit();
    st.rs.tables.push(Table {
        family: Family::Ip,
        name: tb.name,
        backend: Backend::Iptables,
        variant: st.variant,
        chains,
        sets: Vec::new(),
    });
}

/// One rule line parsed against the chains its table had declared when the line was read:
/// everything [`add_rule`] needs to put it into the table, computed without touching the
/// parser state (so that the rule lines of a large table can be parsed on several cores).
struct ParsedRule<'a> {
    lineno: usize,
    /// `None` when the line names no chain.
    parsed: Option<RuleParts<'a>>,
}

struct RuleParts<'a> {
    chain: Cow<'a, str>,
    /// The chain's index among the declared chains, looked up while parsing.
    chain_index: Option<usize>,
    rule: Rule,
    warnings: Vec<String>,
    ip6: bool,
    pending: Vec<(usize, String, String)>,
}

fn parse_rule_line<'a>(
    declared: &HashMap<String, usize>,
    lineno: usize,
    counters: Option<Counters>,
    rest: &'a str,
) -> ParsedRule<'a> {
    let mut toks = tokenize(rest);
    if toks.len() < 2 {
        return ParsedRule {
            lineno,
            parsed: None,
        };
    }
    let mut warnings = Vec::new();
    let mut ip6 = false;
    let mut pending = Vec::new();
    let mut rule = parse_rule_tokens(
        &toks[2..],
        declared,
        &mut warnings,
        &mut ip6,
        &mut pending,
        lineno,
        &toks[1].text,
    );
    if rule.counters.is_none() {
        rule.counters = counters;
    }
    toks.truncate(2);
    let chain = toks.pop().map(|t| t.text).unwrap_or_default();
    let chain_index = declared.get(chain.as_ref()).copied();
    ParsedRule {
        lineno,
        parsed: Some(RuleParts {
            chain,
            chain_index,
            rule,
            warnings,
            ip6,
            pending,
        }),
    }
}

/// Adds a parsed rule line to the current table, in line order. Returns whether it created
/// a chain (a rule for an undeclared chain): rule lines parsed before that against the old
/// set of chains must then be parsed again.
fn add_rule(st: &mut State, p: ParsedRule) -> bool {
    let lineno = p.lineno;
    let Some(RuleParts {
        chain,
        chain_index,
        mut rule,
        warnings,
        ip6,
        pending,
    }) = p.parsed
    else {
        warn(&mut st.rs, lineno, "rule without a chain name ignored");
        return false;
    };
    let Some(tb) = st.cur.as_mut() else {
        warn(&mut st.rs, lineno, "rule outside a table ignored");
        return false;
    };
    st.pending.extend(pending);
    st.ip6_hint |= ip6;
    for w in warnings {
        st.rs.warnings.push(Warning {
            line: lineno,
            message: w,
        });
    }
    let mut created = false;
    // The index looked up at parse time is current: the chains only change here.
    let i = match chain_index {
        Some(i) => i,
        None => {
            st.rs.warnings.push(Warning {
                line: lineno,
                message: format!(
                    "rule for undeclared chain {chain} in table {}; chain created",
                    tb.name
                ),
            });
            created = true;
            let i = tb.chains.len();
            tb.index.insert(chain.to_string(), i);
            tb.chains.push(Chain {
                name: chain.into_owned(),
                base: None,
                rules: Vec::new(),
                counters: None,
            });
            i
        }
    };
    if let Some(c) = tb.chains.get_mut(i) {
        rule.position = c.rules.len() + 1;
        c.rules.push(rule);
    }
    created
}

fn rule_line(st: &mut State, lineno: usize, counters: Option<Counters>, rest: &str) {
    let parsed = match st.cur.as_ref() {
        Some(tb) => parse_rule_line(&tb.index, lineno, counters, rest),
        None if tokenize(rest).len() < 2 => ParsedRule {
            lineno,
            parsed: None,
        },
        None => {
            warn(&mut st.rs, lineno, "rule outside a table ignored");
            return;
        }
    };
    add_rule(st, parsed);
}

/// Rule lines parsed together once enough have been read (bounds the memory held by
/// parsed rules not yet in their chains).
const RULE_BATCH: usize = 1 << 16;
/// Below this many rule lines a batch is parsed on the calling thread only.
const MIN_PARALLEL_RULES: usize = 4096;

/// Parses `lines` (rule lines of the current table, in order) against `declared`, on up to
/// `threads` threads in contiguous chunks; the result is in line order.
fn parse_rule_lines<'a>(
    declared: &HashMap<String, usize>,
    lines: &[(usize, Option<Counters>, &'a str)],
    threads: usize,
    min_parallel: usize,
) -> Vec<ParsedRule<'a>> {
    let seq = |chunk: &[(usize, Option<Counters>, &'a str)]| -> Vec<ParsedRule<'a>> {
        chunk
            .iter()
            .map(|&(n, c, r)| parse_rule_line(declared, n, c, r))
            .collect()
    };
    if threads <= 1 || lines.len() < min_parallel.max(2) {
        return seq(lines);
    }
    let per = lines.len().div_ceil(threads);
    let mut chunks = lines.chunks(per);
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|sc| {
        let handles: Vec<_> = chunks.map(|c| (c, sc.spawn(move || seq(c)))).collect();
        let mut out = seq(first);
        for (c, h) in handles {
            // The parser does not panic; should a worker die anyway, its chunk is parsed
            // again here rather than lost.
            out.extend(h.join().unwrap_or_else(|_| seq(c)));
        }
        out
    })
}

#[allow(clippy::too_many_arguments)]
fn parse_rule_tokens(
    toks: &[Token],
    declared: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
    ip6: &mut bool,
    pending: &mut Vec<(usize, String, String)>,
    lineno: usize,
    chain: &str,
) -> Rule {
    let mut matches: Vec<Match> = Vec::new();
    let mut target = Target::None;
    let mut counters = None;
    let mut module: Option<Cow<'static, str>> = None;
    let mut negate = false;
    let mut i = 0;
    let take_args = |i: &mut usize| -> Vec<&str> {
        let mut args = Vec::new();
        while *i < toks.len() && !is_option(&toks[*i]) {
            args.push(toks[*i].text.as_ref());
            *i += 1;
        }
        args
    };
    while i < toks.len() {
        let t = &toks[i];
        i += 1;
        if !is_option(t) {
            warnings.push(format!("stray argument {:?} kept verbatim", trunc(&t.text)));
            matches.push(Match {
                negated: std::mem::take(&mut negate),
                module: module.clone(),
                option: None,
                cond: Cond::Unknown {
                    text: quote(&t.text),
                },
            });
            continue;
        }
        let opt: &str = &t.text;
        match opt {
            "!" => {
                negate = true;
                continue;
            }
            "-m" | "--match" => {
                let name = take_args(&mut i).into_iter().next().unwrap_or_default();
                if !KNOWN_MODULES.contains(&name) {
                    warnings.push(format!(
                        "unknown match module {name:?}; its options are kept verbatim"
                    ));
                }
                module = Some(intern(name, KNOWN_MODULES));
                continue;
            }
            "-c" | "--set-counters" => {
                let a = take_args(&mut i);
                if a.len() == 2 {
                    if let (Ok(packets), Ok(bytes)) = (a[0].parse(), a[1].parse()) {
                        counters = Some(Counters { packets, bytes });
                    }
                }
                continue;
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let name = toks.get(i).map(|t| t.text.as_ref()).unwrap_or_default();
                i += 1;
                let mut args = Vec::new();
                while i < toks.len() {
                    args.push(toks[i].text.to_string());
                    i += 1;
                }
                target = build_target(opt, name, args, declared, warnings, pending, lineno, chain);
                if let Target::Reject { with: Some(w) } = &target {
                    if w.starts_with("icmp6") {
                        *ip6 = true;
                    }
                }
                continue;
            }
            _ => {}
        }
        let args = take_args(&mut i);
        let negated = std::mem::take(&mut negate);
        let core = match opt {
            "-p" | "--protocol" => args.first().map(|p| {
                if *p == "ipv6-icmp" || *p == "icmpv6" {
                    *ip6 = true;
                }
                Cond::Protocol {
                    protocol: p.to_string(),
                }
            }),
            "-s" | "--source" | "--src" => args.first().map(|a| {
                *ip6 |= a.contains(':');
                Cond::Source {
                    addrs: a.split(',').map(str::to_string).collect(),
                }
            }),
            "-d" | "--destination" | "--dst" => args.first().map(|a| {
                *ip6 |= a.contains(':');
                Cond::Destination {
                    addrs: a.split(',').map(str::to_string).collect(),
                }
            }),
            "-i" | "--in-interface" => args.first().map(|a| Cond::InInterface {
                name: a.to_string(),
            }),
            "-o" | "--out-interface" => args.first().map(|a| Cond::OutInterface {
                name: a.to_string(),
            }),
            "-f" | "--fragment" => Some(Cond::Module {
                module: String::new(),
                option: "fragment".into(),
                args: vec![],
            }),
            _ => None,
        };
        if let Some(cond) = core {
            matches.push(Match {
                negated,
                module: None,
                option: Some(intern(opt, COMMON_OPTIONS)),
                cond,
            });
            continue;
        }
        let Some(md) = module.clone() else {
            warnings.push(format!(
                "option {opt} outside any match module kept verbatim"
            ));
            matches.push(Match {
                negated,
                module: None,
                option: None,
                cond: Cond::Unknown {
                    text: unknown_text(opt, &args),
                },
            });
            continue;
        };
        if md == "icmp6" {
            *ip6 = true;
        }
        // --limit-burst attaches to the preceding --limit.
        if md == "limit" && opt == "--limit-burst" && args.len() == 1 {
            if let Some(Match {
                cond: Cond::Limit { burst, .. },
                ..
            }) = matches.last_mut()
            {
                if let (None, Some(b)) = (*burst, args.first().and_then(|b| b.parse().ok())) {
                    *burst = Some(b);
                    continue;
                }
            }
        }
        if let Some(cond) = module_cond(&md, opt, &args) {
            matches.push(Match {
                negated,
                module: Some(md),
                option: Some(intern(opt, COMMON_OPTIONS)),
                cond,
            });
        } else if KNOWN_MODULES.contains(&md.as_ref()) && opt.starts_with("--") {
            matches.push(Match {
                negated,
                module: Some(md.clone()),
                option: None,
                cond: Cond::Module {
                    module: md.into_owned(),
                    option: opt.trim_start_matches('-').to_string(),
                    args: args.iter().map(|a| a.to_string()).collect(),
                },
            });
        } else {
            if KNOWN_MODULES.contains(&md.as_ref()) {
                warnings.push(format!(
                    "option {opt} of match {md} not understood; kept verbatim"
                ));
            }
            matches.push(Match {
                negated,
                module: Some(md),
                option: None,
                cond: Cond::Unknown {
                    text: unknown_text(opt, &args),
                },
            });
        }
    }
    // Vectors grow to 4 elements on their first push; most rules have fewer matches, and a
    // 700,000-rule model feels every spare byte (memory is most of the parse time).
    matches.shrink_to_fit();
    let mut rule = Rule {
        position: 0,
        matches,
        target,
        statements: Vec::new(),
        counters,
        handle: None,
        text: String::new(),
    };
    rule.text = render_rule_args(&rule);
    rule
}

fn unknown_text(opt: &str, args: &[&str]) -> String {
    let mut s = opt.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

#[allow(clippy::too_many_arguments)]
fn build_target(
    opt: &str,
    name: &str,
    args: Vec<String>,
    declared: &HashMap<String, usize>,
    warnings: &mut Vec<String>,
    pending: &mut Vec<(usize, String, String)>,
    lineno: usize,
    chain: &str,
) -> Target {
    if name.is_empty() {
        warnings.push(format!("{opt} without a target name"));
        return Target::None;
    }
    if opt == "-g" || opt == "--goto" {
        if !declared.contains_key(name) {
            pending.push((lineno, chain.to_string(), name.to_string()));
        }
        return Target::Goto {
            chain: name.to_string(),
        };
    }
    let plain = |t: Target, warnings: &mut Vec<String>| {
        if !args.is_empty() {
            warnings.push(format!(
                "arguments after -j {name} ignored: {}",
                args.join(" ")
            ));
        }
        t
    };
    match name {
        "ACCEPT" => return plain(Target::Accept, warnings),
        "DROP" => return plain(Target::Drop, warnings),
        "RETURN" => return plain(Target::Return, warnings),
        "QUEUE" => return plain(Target::Queue, warnings),
        "REJECT" => {
            let mut with = None;
            let mut it = args.iter();
            while let Some(a) = it.next() {
                if a == "--reject-with" {
                    with = it.next().cloned();
                } else {
                    warnings.push(format!("REJECT option {a:?} not understood"));
                }
            }
            return Target::Reject { with };
        }
        _ => {}
    }
    if declared.contains_key(name) {
        if !args.is_empty() {
            warnings.push(format!("arguments after jump to chain {name} ignored"));
        }
        return Target::Jump {
            chain: name.to_string(),
        };
    }
    let mut args = args;
    args.shrink_to_fit();
    if let Some(terminating) = extension_target(name) {
        return Target::Extension {
            name: name.to_string(),
            args,
            terminating,
        };
    }
    if !args.is_empty() {
        // Options after an unknown name: an extension target we do not know.
        warnings.push(format!("unknown extension target {name}; kept verbatim"));
        return Target::Extension {
            name: name.to_string(),
            args,
            terminating: false,
        };
    }
    pending.push((lineno, chain.to_string(), name.to_string()));
    Target::Jump {
        chain: name.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn tokenizer_handles_quotes_and_escapes() {
        let t = tokenize(r#"-m comment --comment "allow ssh \"admin\" access" -j ACCEPT"#);
        assert_eq!(t[3].text, r#"allow ssh "admin" access"#);
        assert!(t[3].quoted);
        assert_eq!(t.len(), 6);
        assert_eq!(tokenize(r#"a "unterminated"#).len(), 2);
        // Escaped whitespace and quotes in the middle of a token, as a shell reads them.
        let t = tokenize(r#"a\ b "c d"e f """#);
        let got: Vec<(&str, bool)> = t.iter().map(|x| (x.text.as_ref(), x.quoted)).collect();
        assert_eq!(
            got,
            vec![("a b", false), ("c de", true), ("f", false), ("", true)]
        );
        // Plain tokens borrow from the line.
        assert!(matches!(t[2].text, Cow::Borrowed("f")));
        assert!(matches!(t[0].text, Cow::Owned(_)));
        assert!(tokenize("  \t ").is_empty());
    }

    /// A generated iptables-save of about `services * 8` lines in two tables, with the
    /// oddities the batched parse must reproduce exactly: rules of several chains
    /// interleaved, rules for undeclared chains (which create the chain mid-batch) and
    /// jumps to them before and after, counters, quoted comments, unknown modules and
    /// targets, stray arguments, lines that are not rules, and a chain declared after rules.
    pub(crate) fn generated_save(services: usize) -> String {
        use std::fmt::Write as _;
        let mut s = String::from("# Generated by iptables-nft-save v1.8.9 (nf_tables)\n*nat\n");
        s.push_str(":PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n");
        for i in 0..services {
            let _ = writeln!(s, ":KUBE-SVC-{i:04X} - [0:0]\n:KUBE-SEP-{i:04X} - [0:0]");
        }
        s.push_str(
            "-A PREROUTING -m comment --comment \"kubernetes \\\"portals\\\"\" -j KUBE-SERVICES\n",
        );
        for i in 0..services {
            let _ = writeln!(
                s,
                "-A KUBE-SERVICES -d 198.18.{}.{}/32 -p tcp -m tcp --dport {} -j KUBE-SVC-{i:04X}",
                i / 256,
                i % 256,
                1 + i % 60000
            );
            let _ = writeln!(
                s,
                "[{i}:{}] -A KUBE-SVC-{i:04X} -m statistic --mode random --probability 0.5 -j KUBE-SEP-{i:04X}",
                i * 60
            );
            let _ = writeln!(
                s,
                "-A KUBE-SEP-{i:04X} -p tcp -m tcp -j DNAT --to-destination 198.19.{}.{}:8080",
                i / 256,
                i % 256
            );
            match i % 97 {
                // A jump to a chain not yet created, then a rule creating it, then a jump
                // that now resolves to it.
                5 => {
                    let _ = writeln!(s, "-A KUBE-SVC-{i:04X} -j LATE-{i}");
                    let _ = writeln!(s, "-A LATE-{i} -m frobnicate --frob 1 -j ACCEPT");
                    let _ = writeln!(s, "-A KUBE-SEP-{i:04X} -j LATE-{i}");
                    // With arguments: a jump to the now declared chain (arguments ignored),
                    // where a stale set of chains would make it an unknown extension.
                    let _ = writeln!(s, "-A KUBE-SEP-{i:04X} -j LATE-{i} --arg 1");
                }
                17 => {
                    let _ = writeln!(s, "-A KUBE-SEP-{i:04X} stray -j REJECT --bogus x");
                }
                31 => s.push_str("\n# a comment between rules\n"),
                43 => s.push_str("-A\n-N NOT-SAVE-OUTPUT\n"),
                _ => {}
            }
        }
        s.push_str(
            ":DECLARED-LATE - [0:0]\n-A OUTPUT -j DECLARED-LATE\n-A OUTPUT -j NOWHERE\nCOMMIT\n",
        );
        s.push_str("*filter\n:INPUT DROP [5:300]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for i in 0..services {
            let _ = writeln!(
                s,
                "-A INPUT -s 198.18.{}.{}/32 -p udp -m udp --sport {} -j DROP",
                i / 256,
                i % 256,
                i % 65536
            );
        }
        s.push_str("COMMIT\n");
        s
    }

    #[test]
    fn batched_parallel_parse_equals_line_by_line() {
        let text = generated_save(700);
        assert!(text.lines().count() > 3000);
        let reference = parse_reader(text.as_bytes()).unwrap();
        assert!(reference.warnings.len() > 20);
        assert!(reference.tables[0]
            .chains
            .iter()
            .any(|c| c.name == "LATE-5"));
        let reference_json = serde_json::to_string(&reference).unwrap();
        // Sequential, then batches of various sizes (a batch boundary falls mid-chain and
        // right after a chain-creating rule) split over 2, 3 and 4 threads.
        for (threads, min_parallel, batch) in [
            (1, usize::MAX, usize::MAX),
            (2, 2, usize::MAX),
            (3, 2, 1000),
            (4, 16, 257),
            (2, 2, 1),
        ] {
            let got = parse_str_with(&text, threads, min_parallel, batch).unwrap();
            assert_eq!(got, reference, "threads {threads}, batch {batch}");
            assert_eq!(serde_json::to_string(&got).unwrap(), reference_json);
        }
        assert_eq!(parse_str(&text).unwrap(), reference);
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Hostile input: any mix of table, chain, rule and junk lines parses the same
        /// batched on several threads as line by line, and never panics.
        #[test]
        fn batched_parse_equals_line_by_line_on_any_lines(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "*filter", "*nat", "COMMIT", ":A - [0:0]", ":B - [0:0]",
                        ":INPUT DROP [1:2]", "-A A -j B", "-A B -j A --x", "-A C -j LOG",
                        "-A LOG -j ACCEPT", "-A A -j LOG --log-prefix \"x y\"", "-A A -g C",
                        "[3:4] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT", "-A", "-A  ",
                        "-A A \"unterminated", "", "# Generated by ip6tables-save",
                        "-A INPUT -s ::1 -j REJECT --reject-with icmp6-port-unreachable",
                    ]).prop_map(str::to_string),
                    "[ -~]{0,40}",
                ],
                0..120,
            ),
            batch in 1usize..9,
        ) {
            let text = lines.join("\n");
            let reference = parse_reader(text.as_bytes());
            proptest::prop_assert_eq!(parse_str_with(&text, 3, 2, batch), reference);
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_ports("80,443,8000:8100").unwrap(),
            vec![
                PortRange { start: 80, end: 80 },
                PortRange {
                    start: 443,
                    end: 443
                },
                PortRange {
                    start: 8000,
                    end: 8100
                }
            ]
        );
        assert!(parse_ports("9:1").is_none());
        assert!(parse_ports("x").is_none());
        assert_eq!(
            parse_ports(":10").unwrap()[0],
            PortRange { start: 0, end: 10 }
        );
    }
}
