//! Traffic control: `tc qdisc show` / `tc -j qdisc show` and `tc filter show` /
//! `tc -j filter show` into the model. netem (delay, jitter, correlation, distribution,
//! loss incl. `state`/`gemodel`, corrupt, duplicate, reorder, rate, limit), tbf, htb, prio,
//! fq_codel, cake, clsact/ingress, pfifo; u32 filters with the SSH-exemption pattern.

use serde_json::Value;

use crate::model::{Loss, Qdisc, QdiscParams, Ruleset, TcFilter, U32Match, Warning};
use crate::ParseError;

/// `5Mbit`, `625Kbit`, `1Gbit`, `100bit`, `2Mbps` (bytes) → bits per second.
pub fn parse_rate(s: &str) -> Option<u64> {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "tbit" => 1e12,
        "kibit" => 1024.0,
        "mibit" => 1024.0 * 1024.0,
        "gibit" => 1024.0 * 1024.0 * 1024.0,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (0.0..1.8e19).contains(&v)).then_some(v as u64)
}

/// `4Kb`, `32Mb`, `1000b`, `1000` → bytes; `10240p` → packets.
pub fn parse_size(s: &str) -> Option<u64> {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "" | "b" | "p" => 1.0,
        "Kb" | "kb" | "K" | "k" => 1024.0,
        "Mb" | "mb" | "M" | "m" => 1024.0 * 1024.0,
        "Gb" | "gb" | "G" | "g" => 1024.0 * 1024.0 * 1024.0,
        "kbit" | "Kbit" => 1024.0 / 8.0,
        "mbit" | "Mbit" => 1024.0 * 1024.0 / 8.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (0.0..1.8e19).contains(&v)).then_some(v as u64)
}

/// `100ms`, `10us`, `1s`, `1.5ms` → microseconds.
pub fn parse_time(s: &str) -> Option<u64> {
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit {
        "s" | "sec" | "secs" => 1e6,
        "ms" | "msec" | "msecs" => 1e3,
        "us" | "usec" | "usecs" | "" => 1.0,
        "ns" | "nsec" => 1e-3,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && (0.0..1.8e19).contains(&v)).then_some(v.round() as u64)
}

/// `10%` → 10.0.
pub fn parse_percent(s: &str) -> Option<f64> {
    let v: f64 = s.strip_suffix('%')?.parse().ok()?;
    (v.is_finite() && (0.0..=100.0).contains(&v)).then_some(v)
}

fn opt_percent(toks: &[&str], i: usize) -> Option<f64> {
    toks.get(i).and_then(|t| parse_percent(t))
}

/// Parses the option words of one qdisc into typed parameters.
pub fn parse_params(kind: &str, toks: &[&str], warnings: &mut Vec<String>) -> QdiscParams {
    let mut p = QdiscParams::default();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        i += 1;
        let next = toks.get(i).copied().unwrap_or("");
        match (kind, t) {
            ("netem", "delay") => {
                p.delay_us = parse_time(next);
                i += 1;
                if let Some(j) = toks.get(i).and_then(|t| parse_time(t)) {
                    p.jitter_us = Some(j);
                    i += 1;
                    if let Some(c) = opt_percent(toks, i) {
                        p.delay_correlation = Some(c);
                        i += 1;
                    }
                }
            }
            ("netem", "distribution") => {
                p.distribution = Some(next.to_string());
                i += 1;
            }
            ("netem", "loss") => {
                let model = next;
                match model {
                    "state" | "gemodel" => {
                        i += 1;
                        let mut params = Vec::new();
                        while i < toks.len() {
                            if let Some(v) = parse_percent(toks[i]) {
                                params.push(v);
                                i += 1;
                            } else if matches!(
                                toks[i],
                                "p13" | "p31" | "p32" | "p23" | "p14" | "p" | "r" | "1-h" | "1-k"
                            ) {
                                i += 1;
                            } else {
                                break;
                            }
                        }
                        p.loss = Some(if model == "state" {
                            Loss::State { params }
                        } else {
                            Loss::Gemodel { params }
                        });
                    }
                    _ => {
                        let (pct_idx, skip) = if model == "random" {
                            (i + 1, 2)
                        } else {
                            (i, 1)
                        };
                        if let Some(percent) = opt_percent(toks, pct_idx) {
                            i += skip;
                            let correlation = opt_percent(toks, i);
                            if correlation.is_some() {
                                i += 1;
                            }
                            p.loss = Some(Loss::Random {
                                percent,
                                correlation,
                            });
                        } else {
                            warnings.push(format!("netem loss {next:?} not understood"));
                        }
                    }
                }
            }
            ("netem", "corrupt" | "duplicate" | "reorder") => {
                let v = parse_percent(next);
                if v.is_some() {
                    i += 1;
                    if opt_percent(toks, i).is_some() {
                        i += 1;
                    }
                }
                match t {
                    "corrupt" => p.corrupt_percent = v,
                    "duplicate" => p.duplicate_percent = v,
                    _ => p.reorder_percent = v,
                }
            }
            ("netem", "rate") | ("tbf" | "htb", "rate") => {
                p.rate_bps = parse_rate(next);
                i += 1;
            }
            ("cake", "bandwidth") => {
                p.rate_bps = parse_rate(next);
                i += 1;
            }
            ("tbf", "burst") => {
                p.burst_bytes = parse_size(next);
                i += 1;
            }
            ("tbf", "lat" | "latency") => {
                p.latency_us = parse_time(next);
                i += 1;
            }
            (_, "limit") => {
                p.limit = parse_size(next);
                i += 1;
            }
            ("htb", "default") => {
                p.default_class = Some(next.to_string());
                i += 1;
            }
            _ => {}
        }
    }
    p
}

/// Parses `tc qdisc show` text (with or without `-s` statistics lines).
pub fn parse_qdisc_text(text: &str) -> Result<Ruleset, ParseError> {
    let mut rs = Ruleset::default();
    let mut seen = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with(char::is_whitespace) || line.trim().is_empty() {
            continue;
        }
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.first() != Some(&"qdisc") {
            rs.warnings.push(Warning {
                line: n + 1,
                message: format!(
                    "not a qdisc line: {:?}",
                    line.chars().take(80).collect::<String>()
                ),
            });
            continue;
        }
        seen = true;
        let kind = toks.get(1).copied().unwrap_or("").to_string();
        let handle = toks.get(2).copied().unwrap_or("").to_string();
        let mut dev = String::new();
        let mut parent = String::new();
        let mut i = 3;
        let mut opts_start = toks.len();
        while i < toks.len() {
            match toks[i] {
                "dev" => {
                    dev = toks.get(i + 1).copied().unwrap_or("").to_string();
                    i += 2;
                }
                "root" => {
                    parent = "root".into();
                    i += 1;
                }
                "parent" => {
                    parent = toks.get(i + 1).copied().unwrap_or("").to_string();
                    i += 2;
                }
                "refcnt" => i += 2,
                "ingress" if parent.is_empty() => {
                    parent = "ingress".into();
                    i += 1;
                }
                _ => {
                    opts_start = i;
                    break;
                }
            }
        }
        let opts = &toks[opts_start.min(toks.len())..];
        let mut w = Vec::new();
        let params = parse_params(&kind, opts, &mut w);
        for m in w {
            rs.warnings.push(Warning {
                line: n + 1,
                message: m,
            });
        }
        rs.qdiscs.push(Qdisc {
            dev,
            kind,
            handle,
            parent,
            params,
            options: opts.join(" "),
        });
    }
    if !seen && !text.trim().is_empty() {
        return Err(ParseError::Format(
            "no `qdisc` line found: this is not `tc qdisc show` output".into(),
        ));
    }
    Ok(rs)
}

fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses `tc -j qdisc show`.
pub fn parse_qdisc_json(text: &str) -> Result<Ruleset, ParseError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Format(format!("not tc JSON: {e}")))?;
    let arr = v
        .as_array()
        .ok_or_else(|| ParseError::Format("tc -j qdisc show output is a JSON array".into()))?;
    let mut rs = Ruleset::default();
    for q in arr {
        let s = |k: &str| q.get(k).map(json_scalar).unwrap_or_default();
        let kind = s("kind");
        let parent = if q.get("root").and_then(Value::as_bool) == Some(true) {
            "root".to_string()
        } else {
            s("parent")
        };
        let opts = q.get("options").cloned().unwrap_or(Value::Null);
        let mut params = QdiscParams::default();
        let mut words = Vec::new();
        if let Some(o) = opts.as_object() {
            for (k, val) in o {
                words.push(format!("{k} {}", compact(val)));
            }
            let num = |k: &str| o.get(k).and_then(Value::as_u64);
            match kind.as_str() {
                "tbf" => {
                    params.rate_bps = num("rate").map(|r| r.saturating_mul(8));
                    params.burst_bytes = num("burst");
                    params.latency_us = num("lat");
                    params.limit = num("limit");
                }
                "htb" => params.default_class = o.get("default").map(json_scalar),
                "cake" => params.rate_bps = num("bandwidth").map(|r| r.saturating_mul(8)),
                "netem" => {
                    params.limit = num("limit");
                    // iproute2 prints netem times in seconds and probabilities as fractions.
                    if let Some(d) = o.get("delay") {
                        let sec = |k: &str| d.get(k).and_then(Value::as_f64);
                        params.delay_us = sec("delay").map(|x| (x * 1e6).round() as u64);
                        params.jitter_us = sec("jitter")
                            .filter(|j| *j > 0.0)
                            .map(|x| (x * 1e6).round() as u64);
                        params.delay_correlation =
                            sec("correlation").filter(|c| *c > 0.0).map(|c| c * 100.0);
                    }
                    if let Some(l) = o.get("loss-random") {
                        if let Some(p) = l.get("loss").and_then(Value::as_f64) {
                            params.loss = Some(Loss::Random {
                                percent: p * 100.0,
                                correlation: l
                                    .get("correlation")
                                    .and_then(Value::as_f64)
                                    .filter(|c| *c > 0.0)
                                    .map(|c| c * 100.0),
                            });
                        }
                    }
                    let pct = |k: &str| {
                        o.get(k)
                            .and_then(|x| x.get(k))
                            .and_then(Value::as_f64)
                            .map(|f| f * 100.0)
                    };
                    params.corrupt_percent = pct("corrupt");
                    params.duplicate_percent = pct("duplicate");
                    params.reorder_percent = pct("reorder");
                    params.rate_bps = o
                        .get("rate")
                        .and_then(|r| r.get("rate"))
                        .and_then(Value::as_u64)
                        .map(|r| r.saturating_mul(8));
                }
                _ => {}
            }
        }
        rs.qdiscs.push(Qdisc {
            dev: s("dev"),
            kind,
            handle: s("handle"),
            parent,
            params,
            options: words.join(" "),
        });
    }
    Ok(rs)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn ssh_match(m: &U32Match) -> bool {
    m.offset == 20
        && ((m.mask == 0x0000_ffff && m.value & m.mask == 22)
            || (m.mask == 0xffff_0000 && m.value & m.mask == 22 << 16))
}

fn parse_u32_match(s: &str, at: &str) -> Option<U32Match> {
    let (v, m) = s.split_once('/')?;
    let value = u32::from_str_radix(v, 16).ok()?;
    let mask = u32::from_str_radix(m, 16).ok()?;
    let offset = match at.strip_prefix("nexthdr+") {
        // Assumes a 20-byte IPv4 header, like the `match ip dport` shorthand does.
        Some(n) => n.parse::<i32>().ok()?.checked_add(20)?,
        None => at.parse().ok()?,
    };
    Some(U32Match {
        value,
        mask,
        offset,
    })
}

/// Parses `tc filter show` text output.
pub fn parse_filter_text(text: &str) -> Result<Ruleset, ParseError> {
    let mut rs = Ruleset::default();
    let mut seen = false;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let toks: Vec<&str> = trimmed.split_whitespace().collect();
            if toks.first() == Some(&"match") && toks.len() >= 4 && toks[2] == "at" {
                match (parse_u32_match(toks[1], toks[3]), rs.filters.last_mut()) {
                    (Some(m), Some(f)) => {
                        f.exempts_ssh |= ssh_match(&m);
                        f.text.push_str(&format!(
                            " match {:08x}/{:08x} at {}",
                            m.value, m.mask, m.offset
                        ));
                        f.matches.push(m);
                    }
                    _ => rs.warnings.push(Warning {
                        line: n + 1,
                        message: format!("u32 selector {trimmed:?} not understood"),
                    }),
                }
            }
            continue;
        }
        let toks: Vec<&str> = trimmed.split_whitespace().collect();
        if toks.first() != Some(&"filter") {
            rs.warnings.push(Warning {
                line: n + 1,
                message: format!(
                    "not a filter line: {:?}",
                    trimmed.chars().take(80).collect::<String>()
                ),
            });
            continue;
        }
        seen = true;
        let get = |k: &str| {
            toks.iter()
                .position(|t| *t == k)
                .and_then(|i| toks.get(i + 1))
                .map(|s| s.to_string())
        };
        let pref_pos = toks.iter().position(|t| *t == "pref" || *t == "prio");
        let kind = pref_pos
            .and_then(|i| toks.get(i + 2))
            .copied()
            .unwrap_or("")
            .to_string();
        let fh = get("fh").or_else(|| get("handle"));
        // u32 prints hash-table headers (no `::` key) before each real node: skip them.
        let is_node = match kind.as_str() {
            "u32" => fh
                .as_deref()
                .is_some_and(|h| h.contains("::") && !h.ends_with("::")),
            _ => fh.is_some(),
        };
        if !is_node {
            continue;
        }
        let flowid = get("*flowid")
            .or_else(|| get("flowid"))
            .or_else(|| get("classid"));
        let parent = get("parent").unwrap_or_default();
        let protocol = get("protocol").unwrap_or_default();
        let pref: u32 = pref_pos
            .and_then(|i| toks.get(i + 1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let text = format!(
            "parent {parent} protocol {protocol} pref {pref} {kind}{}",
            flowid
                .as_deref()
                .map(|f| format!(" flowid {f}"))
                .unwrap_or_default()
        );
        rs.filters.push(TcFilter {
            dev: get("dev"),
            parent,
            protocol,
            pref,
            kind,
            flowid,
            matches: Vec::new(),
            exempts_ssh: false,
            text,
        });
    }
    if !seen && !text.trim().is_empty() {
        return Err(ParseError::Format(
            "no `filter` line found: this is not `tc filter show` output".into(),
        ));
    }
    Ok(rs)
}

/// Parses `tc -j filter show`.
pub fn parse_filter_json(text: &str) -> Result<Ruleset, ParseError> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| ParseError::Format(format!("not tc JSON: {e}")))?;
    let arr = v
        .as_array()
        .ok_or_else(|| ParseError::Format("tc -j filter show output is a JSON array".into()))?;
    let mut rs = Ruleset::default();
    for f in arr {
        let s = |k: &str| f.get(k).map(json_scalar);
        let kind = s("kind").unwrap_or_default();
        let Some(opts) = f.get("options") else {
            continue;
        };
        let fh = opts.get("fh").map(json_scalar);
        if kind == "u32"
            && !fh
                .as_deref()
                .is_some_and(|h| h.contains("::") && !h.ends_with("::"))
        {
            continue;
        }
        let mut matches = Vec::new();
        let ms: Vec<&Value> = match opts.get("match") {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(m) => vec![m],
            None => vec![],
        };
        for m in ms {
            let hex = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .and_then(|x| u32::from_str_radix(x, 16).ok())
            };
            if let (Some(value), Some(mask), Some(off)) = (
                hex("value"),
                hex("mask"),
                m.get("off").and_then(Value::as_i64),
            ) {
                if let Ok(offset) = i32::try_from(off) {
                    matches.push(U32Match {
                        value,
                        mask,
                        offset,
                    });
                }
            }
        }
        let parent = s("parent").unwrap_or_default();
        let protocol = s("protocol").unwrap_or_default();
        let pref = f
            .get("pref")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(0);
        let flowid = opts
            .get("flowid")
            .or_else(|| opts.get("classid"))
            .map(json_scalar);
        let mut text = format!(
            "parent {parent} protocol {protocol} pref {pref} {kind}{}",
            flowid
                .as_deref()
                .map(|f| format!(" flowid {f}"))
                .unwrap_or_default()
        );
        for m in &matches {
            text.push_str(&format!(
                " match {:08x}/{:08x} at {}",
                m.value, m.mask, m.offset
            ));
        }
        rs.filters.push(TcFilter {
            dev: s("dev"),
            parent,
            protocol,
            pref,
            kind,
            flowid,
            exempts_ssh: matches.iter().any(ssh_match),
            matches,
            text,
        });
    }
    Ok(rs)
}
