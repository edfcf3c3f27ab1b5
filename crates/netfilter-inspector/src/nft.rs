//! `nft -j list ruleset` parser (libnftables-json(5) schema) into the common model.
//!
//! Every family, table, chain (hook, priority, policy), rule (matches, verdicts, NAT,
//! reject, log, limit, counters, verdict maps) and set/map with its elements. Expressions
//! the model has no field for are kept verbatim (compact JSON) with a warning.

use serde_json::Value;

use crate::iptables::parse_ports;
use crate::model::{
    Backend, BaseChain, Chain, Cond, Counters, Family, Match, NftSet, Policy, PortRange, Rule,
    Ruleset, SetElement, Table, Target, Warning,
};
use crate::ParseError;

/// Parses `nft -j list ruleset` output.
pub fn parse_str(text: &str) -> Result<Ruleset, ParseError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Format(format!("not nft JSON: {e}")))?;
    parse_value(&v)
}

/// Parses an already decoded `nft -j` document.
pub fn parse_value(v: &Value) -> Result<Ruleset, ParseError> {
    let items = v.get("nftables").and_then(Value::as_array).ok_or_else(|| {
        ParseError::Format("no top-level \"nftables\" array: this is not `nft -j` output".into())
    })?;
    let mut rs = Ruleset::default();
    let mut iptables_nft = false;
    for (idx, item) in items.iter().enumerate() {
        let Some(obj) = item.as_object() else {
            warn(&mut rs, idx, "non-object entry ignored");
            continue;
        };
        for (kind, body) in obj {
            match kind.as_str() {
                "metainfo" => {}
                "table" => {
                    if let Some((family, name)) = family_name(body, "name") {
                        table_mut(&mut rs, family, &name);
                    } else {
                        warn(&mut rs, idx, "table without family/name ignored");
                    }
                }
                "chain" => chain(&mut rs, idx, body),
                "rule" => {
                    if rule(&mut rs, idx, body) {
                        iptables_nft = true;
                    }
                }
                "set" | "map" => set(&mut rs, idx, kind, body),
                other => warn(
                    &mut rs,
                    idx,
                    &format!("nft object {other:?} is not modelled; ignored"),
                ),
            }
        }
    }
    for t in &mut rs.tables {
        for c in &mut t.chains {
            for (i, r) in c.rules.iter_mut().enumerate() {
                r.position = i + 1;
            }
        }
    }
    let compat_names = ["filter", "nat", "mangle", "raw", "security"];
    let looks_iptables = rs.tables.iter().any(|t| {
        compat_names.contains(&t.name.as_str())
            && matches!(t.family, Family::Ip | Family::Ip6)
            && t.chains.iter().any(|c| {
                matches!(
                    c.name.as_str(),
                    "INPUT" | "OUTPUT" | "FORWARD" | "PREROUTING" | "POSTROUTING"
                )
            })
    });
    if iptables_nft || looks_iptables {
        rs.producers.push("iptables-nft".into());
    }
    if rs.tables.iter().any(|t| {
        !(compat_names.contains(&t.name.as_str()) && matches!(t.family, Family::Ip | Family::Ip6))
    }) || !(iptables_nft || looks_iptables)
    {
        rs.producers.push("nftables".into());
    }
    Ok(rs)
}

fn warn(rs: &mut Ruleset, idx: usize, message: &str) {
    rs.warnings.push(Warning {
        line: 0,
        message: format!("nftables[{idx}]: {message}"),
    });
}

fn family_name(body: &Value, key: &str) -> Option<(Family, String)> {
    let family = Family::parse(body.get("family")?.as_str()?)?;
    let name = body.get(key)?.as_str()?.to_string();
    Some((family, name))
}

fn table_mut<'a>(rs: &'a mut Ruleset, family: Family, name: &str) -> &'a mut Table {
    let pos = rs
        .tables
        .iter()
        .position(|t| t.family == family && t.name == name && t.backend == Backend::Nftables);
    let pos = match pos {
        Some(p) => p,
        None => {
            rs.tables.push(Table {
                family,
                name: name.to_string(),
                backend: Backend::Nftables,
                variant: None,
                chains: Vec::new(),
                sets: Vec::new(),
            });
            rs.tables.len() - 1
        }
    };
    &mut rs.tables[pos]
}

fn priority(v: &Value) -> Option<i32> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).ok();
    }
    let s = v.as_str()?;
    let (base, off) = match s.find(['+', '-']) {
        Some(i) if i > 0 => (s[..i].trim(), s[i..].replace(' ', "").parse::<i32>().ok()?),
        _ => (s.trim(), 0),
    };
    let b: i32 = match base {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        n => n.parse().ok()?,
    };
    b.checked_add(off)
}

fn chain(rs: &mut Ruleset, idx: usize, body: &Value) {
    let Some((family, table)) = family_name(body, "table") else {
        warn(rs, idx, "chain without family/table ignored");
        return;
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        warn(rs, idx, "chain without a name ignored");
        return;
    };
    let base = body.get("hook").and_then(Value::as_str).map(|hook| {
        let prio = body.get("prio").and_then(priority);
        BaseChain {
            hook: hook.to_string(),
            chain_type: body
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("filter")
                .to_string(),
            priority: prio.unwrap_or(0),
            policy: if body.get("policy").and_then(Value::as_str) == Some("drop") {
                Policy::Drop
            } else {
                Policy::Accept
            },
            device: body.get("dev").and_then(Value::as_str).map(str::to_string),
        }
    });
    let t = table_mut(rs, family, &table);
    if t.chains.iter().any(|c| c.name == name) {
        return;
    }
    t.chains.push(Chain {
        name: name.to_string(),
        base,
        rules: Vec::new(),
        counters: None,
    });
}

/// Renders an expression in nft's own syntax (for rule text and set elements).
pub fn expr_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(expr_text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => {
            if let Some(p) = o.get("payload") {
                if let (Some(proto), Some(field)) = (
                    p.get("protocol").and_then(Value::as_str),
                    p.get("field").and_then(Value::as_str),
                ) {
                    return format!("{proto} {field}");
                }
                return format!(
                    "@{},{},{}",
                    p.get("base").map(expr_text).unwrap_or_default(),
                    p.get("offset").map(expr_text).unwrap_or_default(),
                    p.get("len").map(expr_text).unwrap_or_default()
                );
            }
            if let Some(m) = o.get("meta") {
                let key = m.get("key").and_then(Value::as_str).unwrap_or("?");
                return match key {
                    "iifname" | "oifname" | "iif" | "oif" | "mark" | "l4proto" | "nfproto"
                    | "skuid" | "skgid" => format!("meta {key}"),
                    k => format!("meta {k}"),
                };
            }
            if let Some(c) = o.get("ct") {
                let key = c.get("key").and_then(Value::as_str).unwrap_or("?");
                return match c.get("dir").and_then(Value::as_str) {
                    Some(d) => format!("ct {d} {key}"),
                    None => format!("ct {key}"),
                };
            }
            if let Some(n) = o.get("numgen") {
                return format!(
                    "numgen {} mod {}",
                    n.get("mode").map(expr_text).unwrap_or_default(),
                    n.get("mod").map(expr_text).unwrap_or_default()
                );
            }
            if let Some(s) = o.get("set") {
                let items = match s {
                    Value::Array(a) => a.iter().map(expr_text).collect::<Vec<_>>(),
                    other => vec![expr_text(other)],
                };
                return format!("{{ {} }}", items.join(", "));
            }
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                if r.len() == 2 {
                    return format!("{}-{}", expr_text(&r[0]), expr_text(&r[1]));
                }
            }
            if let Some(p) = o.get("prefix") {
                return format!(
                    "{}/{}",
                    p.get("addr").map(expr_text).unwrap_or_default(),
                    p.get("len").map(expr_text).unwrap_or_default()
                );
            }
            if let Some(c) = o.get("concat").and_then(Value::as_array) {
                return c.iter().map(expr_text).collect::<Vec<_>>().join(" . ");
            }
            if let Some(e) = o.get("elem") {
                return e.get("val").map(expr_text).unwrap_or_default();
            }
            if let Some(j) = o.get("jump").or_else(|| o.get("goto")) {
                let verb = if o.contains_key("jump") {
                    "jump"
                } else {
                    "goto"
                };
                return format!(
                    "{verb} {}",
                    j.get("target").and_then(Value::as_str).unwrap_or("?")
                );
            }
            if o.len() == 1 {
                let (k, val) = o.iter().next().expect("len 1");
                if val.is_null() {
                    return k.clone();
                }
            }
            serde_json::to_string(v).unwrap_or_default()
        }
    }
}

fn port_list(v: &Value) -> Option<Vec<PortRange>> {
    match v {
        Value::Number(n) => {
            let p = u16::try_from(n.as_u64()?).ok()?;
            Some(vec![PortRange { start: p, end: p }])
        }
        Value::String(s) => parse_ports(s),
        Value::Object(o) => {
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                let a = u16::try_from(r.first()?.as_u64()?).ok()?;
                let b = u16::try_from(r.get(1)?.as_u64()?).ok()?;
                return (a <= b).then_some(vec![PortRange { start: a, end: b }]);
            }
            if let Some(s) = o.get("set") {
                return port_list(s);
            }
            None
        }
        Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                out.extend(port_list(x)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn addr_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) if !s.starts_with('@') => Some(vec![s.clone()]),
        Value::Object(o) if o.contains_key("prefix") => Some(vec![expr_text(v)]),
        Value::Object(o) if o.contains_key("set") => addr_list(o.get("set")?),
        Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                out.extend(addr_list(x)?);
            }
            Some(out)
        }
        _ => None,
    }
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
        Value::Object(o) if o.contains_key("set") => string_list(o.get("set")?),
        _ => None,
    }
}

/// Maps one nft `match` to conditions (an implicit protocol first where nft implies one).
fn match_conds(left: &Value, op: &str, right: &Value) -> Vec<Match> {
    let negated = op == "!=";
    let mk = |cond: Cond| Match {
        negated,
        module: None,
        option: None,
        cond,
    };
    let implicit = |proto: &str| Match {
        negated: false,
        module: None,
        option: Some("implicit".into()),
        cond: Cond::Protocol {
            protocol: proto.to_string(),
        },
    };
    let generic = || {
        vec![mk(Cond::Module {
            module: "nft".into(),
            option: expr_text(left),
            args: vec![op.to_string(), expr_text(right)],
        })]
    };
    if !matches!(op, "==" | "!=" | "in") {
        return vec![Match {
            negated: false,
            ..mk(Cond::Module {
                module: "nft".into(),
                option: expr_text(left),
                args: vec![op.to_string(), expr_text(right)],
            })
        }];
    }
    if let Some(name) = right.as_str().and_then(|s| s.strip_prefix('@')) {
        let key = expr_text(left);
        let mut v = Vec::new();
        if let Some(p) = left
            .get("payload")
            .and_then(|p| p.get("protocol"))
            .and_then(Value::as_str)
        {
            if matches!(p, "tcp" | "udp" | "sctp" | "dccp" | "icmp" | "icmpv6") {
                v.push(implicit(if p == "icmpv6" { "ipv6-icmp" } else { p }));
            }
        }
        v.push(mk(Cond::SetLookup {
            set: name.to_string(),
            key,
        }));
        return v;
    }
    if let Some(p) = left.get("payload") {
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
        let field = p.get("field").and_then(Value::as_str).unwrap_or("");
        match (proto, field) {
            ("tcp" | "udp" | "sctp" | "dccp" | "udplite" | "th", "dport" | "sport") => {
                let Some(ports) = port_list(right) else {
                    return generic();
                };
                let cond = if field == "dport" {
                    Cond::DestPort { ports }
                } else {
                    Cond::SourcePort { ports }
                };
                let mut v = Vec::new();
                if proto != "th" {
                    v.push(implicit(proto));
                }
                v.push(mk(cond));
                return v;
            }
            ("ip" | "ip6", "saddr" | "daddr") => {
                if let Some(r) = right.get("range").and_then(Value::as_array) {
                    if r.len() == 2 {
                        return vec![mk(Cond::AddrRange {
                            dir: if field == "saddr" { "src" } else { "dst" }.into(),
                            from: expr_text(&r[0]),
                            to: expr_text(&r[1]),
                        })];
                    }
                }
                let Some(addrs) = addr_list(right) else {
                    return generic();
                };
                return vec![mk(if field == "saddr" {
                    Cond::Source { addrs }
                } else {
                    Cond::Destination { addrs }
                })];
            }
            ("icmp" | "icmpv6", "type") => {
                let Some(types) =
                    string_list(right).or_else(|| right.as_u64().map(|n| vec![n.to_string()]))
                else {
                    return generic();
                };
                return vec![
                    implicit(if proto == "icmp" { "icmp" } else { "ipv6-icmp" }),
                    mk(Cond::IcmpType {
                        icmp_type: types.join(","),
                    }),
                ];
            }
            ("ip", "protocol") | ("ip6", "nexthdr") => {
                if let Some(s) = right.as_str() {
                    return vec![mk(Cond::Protocol {
                        protocol: s.to_string(),
                    })];
                }
                if let Some(n) = right.as_u64() {
                    return vec![mk(Cond::Protocol {
                        protocol: n.to_string(),
                    })];
                }
                return generic();
            }
            _ => return generic(),
        }
    }
    if let Some(m) = left.get("meta") {
        let key = m.get("key").and_then(Value::as_str).unwrap_or("");
        match key {
            "l4proto" => {
                if let Some(s) = right.as_str() {
                    return vec![mk(Cond::Protocol {
                        protocol: s.to_string(),
                    })];
                }
                if let Some(n) = right.as_u64() {
                    return vec![mk(Cond::Protocol {
                        protocol: n.to_string(),
                    })];
                }
            }
            "iifname" | "iif" => {
                if let Some(s) = right.as_str() {
                    return vec![mk(Cond::InInterface {
                        name: s.replace('*', "+"),
                    })];
                }
            }
            "oifname" | "oif" => {
                if let Some(s) = right.as_str() {
                    return vec![mk(Cond::OutInterface {
                        name: s.replace('*', "+"),
                    })];
                }
            }
            "mark" => {
                if let Some(n) = right.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    return vec![mk(Cond::Mark {
                        value: n,
                        mask: u32::MAX,
                    })];
                }
            }
            _ => {}
        }
        return generic();
    }
    if let Some(c) = left.get("ct") {
        if c.get("key").and_then(Value::as_str) == Some("state") && c.get("dir").is_none() {
            if let Some(states) = string_list(right) {
                return vec![mk(Cond::CtState {
                    states: states.iter().map(|s| s.to_ascii_uppercase()).collect(),
                })];
            }
        }
    }
    generic()
}

fn verdict(k: &str, v: &Value) -> Option<Target> {
    Some(match k {
        "accept" => Target::Accept,
        "drop" => Target::Drop,
        "return" => Target::Return,
        "continue" => Target::Continue,
        "jump" | "goto" => {
            let chain = v.get("target")?.as_str()?.to_string();
            if k == "jump" {
                Target::Jump { chain }
            } else {
                Target::Goto { chain }
            }
        }
        _ => return None,
    })
}

/// Parses a verdict-map value (`drop`, `jump web`) into a target.
pub fn verdict_from_text(s: &str) -> Option<Target> {
    let mut it = s.split_whitespace();
    let k = it.next()?;
    let arg = it.next();
    match (k, arg) {
        ("jump", Some(c)) => Some(Target::Jump { chain: c.into() }),
        ("goto", Some(c)) => Some(Target::Goto { chain: c.into() }),
        (k, None) => verdict(k, &Value::Null),
        _ => None,
    }
}

fn element(v: &Value) -> SetElement {
    match v {
        Value::Array(a) if a.len() == 2 => SetElement {
            key: expr_text(&a[0]),
            value: Some(expr_text(&a[1])),
        },
        other => SetElement {
            key: expr_text(other),
            value: None,
        },
    }
}

/// Returns true when the rule carries iptables-nft compat (`xt`) expressions.
fn rule(rs: &mut Ruleset, idx: usize, body: &Value) -> bool {
    let Some((family, table)) = family_name(body, "table") else {
        warn(rs, idx, "rule without family/table ignored");
        return false;
    };
    let Some(chain_name) = body.get("chain").and_then(Value::as_str) else {
        warn(rs, idx, "rule without a chain ignored");
        return false;
    };
    let exprs: &[Value] = body
        .get("expr")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut matches = Vec::new();
    let mut target = Target::None;
    let mut statements = Vec::new();
    let mut counters = None;
    let mut texts = Vec::new();
    let mut warnings = Vec::new();
    let mut xt = false;
    for e in exprs {
        let Some(o) = e.as_object() else {
            warnings.push(format!(
                "expression {} not understood; kept verbatim",
                expr_text(e)
            ));
            matches.push(unknown(e));
            continue;
        };
        let Some((k, v)) = o.iter().next() else {
            continue;
        };
        match k.as_str() {
            "match" => {
                let left = v.get("left").unwrap_or(&Value::Null);
                let right = v.get("right").unwrap_or(&Value::Null);
                let op = v.get("op").and_then(Value::as_str).unwrap_or("==");
                let shown_op = match op {
                    "==" | "in" => String::new(),
                    o => format!("{o} "),
                };
                texts.push(format!(
                    "{} {shown_op}{}",
                    expr_text(left),
                    expr_text(right)
                ));
                matches.extend(match_conds(left, op, right));
            }
            "counter" => {
                counters = Some(Counters {
                    packets: v.get("packets").and_then(Value::as_u64).unwrap_or(0),
                    bytes: v.get("bytes").and_then(Value::as_u64).unwrap_or(0),
                });
                texts.push("counter".into());
            }
            "accept" | "drop" | "return" | "continue" | "jump" | "goto" => {
                if let Some(t) = verdict(k, v) {
                    texts.push(expr_text(e));
                    target = t;
                } else {
                    warnings.push(format!("verdict {k} without a target"));
                }
            }
            "reject" => {
                let ty = v.get("type").and_then(Value::as_str);
                let ex = v.get("expr").map(expr_text);
                let with = match (ty, ex) {
                    (Some(t), Some(x)) => Some(format!("{t} {x}")),
                    (Some(t), None) => Some(t.to_string()),
                    (None, Some(x)) => Some(x),
                    (None, None) => None,
                };
                texts.push(match &with {
                    Some(w) => format!("reject with {w}"),
                    None => "reject".into(),
                });
                target = Target::Reject { with };
            }
            "limit" => {
                let rate = format!(
                    "{}/{}",
                    v.get("rate").map(expr_text).unwrap_or_default(),
                    v.get("per").and_then(Value::as_str).unwrap_or("second")
                );
                let over = v.get("inv").and_then(Value::as_bool).unwrap_or(false);
                texts.push(format!(
                    "limit rate {}{rate}",
                    if over { "over " } else { "" }
                ));
                matches.push(Match {
                    negated: false,
                    module: None,
                    option: None,
                    cond: Cond::Limit {
                        rate,
                        burst: v
                            .get("burst")
                            .and_then(Value::as_u64)
                            .and_then(|b| u32::try_from(b).ok()),
                        over,
                    },
                });
            }
            "log" => {
                let mut s = "log".to_string();
                if let Some(p) = v.get("prefix").and_then(Value::as_str) {
                    s.push_str(&format!(" prefix {p:?}"));
                }
                if let Some(l) = v.get("level").and_then(Value::as_str) {
                    s.push_str(&format!(" level {l}"));
                }
                texts.push(s.clone());
                statements.push(s);
            }
            "snat" | "dnat" | "masquerade" | "redirect" | "tproxy" | "queue" => {
                let args: Vec<String> = v
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(a, b)| format!("{a} {}", expr_text(b)))
                            .collect()
                    })
                    .unwrap_or_default();
                texts.push(if args.is_empty() {
                    k.clone()
                } else {
                    format!("{k} {}", args.join(" "))
                });
                target = Target::Extension {
                    name: k.to_ascii_uppercase(),
                    args,
                    terminating: true,
                };
            }
            "vmap" => {
                let key = v.get("key").map(expr_text).unwrap_or_default();
                let data = v.get("data").unwrap_or(&Value::Null);
                let (map, entries) = match data.as_str().and_then(|s| s.strip_prefix('@')) {
                    Some(name) => (Some(name.to_string()), Vec::new()),
                    None => (
                        None,
                        data.get("set")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().map(element).collect())
                            .unwrap_or_default(),
                    ),
                };
                texts.push(format!("{key} vmap {}", expr_text(data)));
                target = Target::VerdictMap { key, map, entries };
            }
            "xt" => {
                xt = true;
                let ty = v.get("type").and_then(Value::as_str).unwrap_or("?");
                let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
                texts.push(format!("xt {ty} {name}"));
                warnings.push(format!(
                    "iptables-nft compat expression `xt {ty} {name}` has no nft form; use iptables-save for this table"
                ));
                if ty == "target" {
                    target = Target::Extension {
                        name: name.to_string(),
                        args: Vec::new(),
                        terminating: crate::iptables::extension_target(name).unwrap_or(false),
                    };
                } else {
                    matches.push(Match {
                        negated: false,
                        module: Some(name.to_string().into()),
                        option: None,
                        cond: Cond::Unknown {
                            text: format!("xt {ty} {name}"),
                        },
                    });
                }
            }
            "mangle" | "notrack" | "ct helper" | "set" | "quota" | "meter" | "synproxy" | "fwd"
            | "dup" | "flow" => {
                let s = format!("{k} {}", expr_text(v));
                texts.push(s.clone());
                statements.push(s);
            }
            _ => {
                texts.push(expr_text(e));
                warnings.push(format!("expression {k} not modelled; kept verbatim"));
                matches.push(unknown(e));
            }
        }
    }
    for w in warnings {
        warn(rs, idx, &w);
    }
    let handle = body.get("handle").and_then(Value::as_u64);
    let t = table_mut(rs, family, &table);
    if !t.chains.iter().any(|c| c.name == chain_name) {
        t.chains.push(Chain {
            name: chain_name.to_string(),
            base: None,
            rules: Vec::new(),
            counters: None,
        });
    }
    let c = t
        .chains
        .iter_mut()
        .find(|c| c.name == chain_name)
        .expect("inserted above");
    let text = texts
        .into_iter()
        .filter(|t| t != "counter")
        .collect::<Vec<_>>()
        .join(" ");
    c.rules.push(Rule {
        position: c.rules.len() + 1,
        matches,
        target,
        statements,
        counters,
        handle,
        text,
    });
    xt
}

fn unknown(e: &Value) -> Match {
    Match {
        negated: false,
        module: None,
        option: None,
        cond: Cond::Unknown {
            text: serde_json::to_string(e).unwrap_or_default(),
        },
    }
}

fn set(rs: &mut Ruleset, idx: usize, kind: &str, body: &Value) {
    let Some((family, table)) = family_name(body, "table") else {
        warn(rs, idx, "set without family/table ignored");
        return;
    };
    let Some(name) = body.get("name").and_then(Value::as_str) else {
        warn(rs, idx, "set without a name ignored");
        return;
    };
    let key_type = match body.get("type") {
        Some(Value::Array(a)) => a.iter().map(expr_text).collect::<Vec<_>>().join(" . "),
        Some(v) => expr_text(v),
        None => String::new(),
    };
    let mut elements: Vec<SetElement> = body
        .get("elem")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(element).collect())
        .unwrap_or_default();
    elements.sort();
    let s = NftSet {
        name: name.to_string(),
        kind: kind.to_string(),
        key_type,
        map_type: body.get("map").map(expr_text),
        flags: body.get("flags").and_then(string_list).unwrap_or_default(),
        elements,
    };
    let t = table_mut(rs, family, &table);
    t.sets.retain(|x| x.name != s.name);
    t.sets.push(s);
}
