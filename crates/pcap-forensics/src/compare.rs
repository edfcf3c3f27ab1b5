//! Compare two captures: `temporal` (before/after deltas normalised by rate and duration)
//! or `endpoint` (sender versus receiver: flows seen on one side only, SYN counts, one-way
//! delay where clocks allow, ICMP seen on one side only) with an asymmetry verdict.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::analysis::tcp::Conn;
use crate::analysis::{Analysis, Endpoint};
use crate::semantic::{Meta, SCHEMA_VERSION};

/// Comparison mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// The same place at two times (before/after a change).
    Temporal,
    /// Two places at the same time (sender and receiver).
    Endpoint,
}

/// Result of a comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub json: Value,
    pub markdown: String,
    /// True when the comparison found a significant difference or an asymmetry.
    pub significant: bool,
}

fn per_s(x: f64, d: f64) -> f64 {
    if d > 0.0 {
        x / d
    } else {
        0.0
    }
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn metrics(a: &Analysis) -> BTreeMap<&'static str, f64> {
    let d = a.duration_s();
    let t = &a.tcp;
    let data: u64 = t.sum(|c| c.dir[0].data_segments + c.dir[1].data_segments);
    let retrans = t.sum(|c| c.retransmissions);
    let attempts = t.conns.iter().filter(|c| c.syn_packets > 0).count() as f64;
    let done = t
        .conns
        .iter()
        .filter(|c| c.syn_packets > 0 && c.handshake_done_ts.is_some())
        .count() as f64;
    let dns = &a.dns.state;
    let mut m = BTreeMap::new();
    m.insert("packets_per_second", per_s(a.stats.packets as f64, d));
    m.insert("bits_per_second", per_s(a.stats.bytes_wire as f64 * 8.0, d));
    m.insert(
        "retransmissions_per_1000_data_segments",
        if data > 0 {
            retrans as f64 * 1000.0 / data as f64
        } else {
            0.0
        },
    );
    m.insert("rst_per_second", per_s(t.rst_packets as f64, d));
    m.insert("connection_attempts_per_second", per_s(attempts, d));
    m.insert(
        "handshake_success_pct",
        if attempts > 0.0 {
            done * 100.0 / attempts
        } else {
            0.0
        },
    );
    m.insert(
        "zero_window_per_second",
        per_s(t.sum(|c| c.zero_window) as f64, d),
    );
    m.insert("dns_queries_per_second", per_s(dns.queries as f64, d));
    m.insert(
        "dns_unanswered_pct",
        if dns.queries > 0 {
            a.dns.unanswered.len() as f64 * 100.0 / dns.queries as f64
        } else {
            0.0
        },
    );
    m.insert(
        "dns_latency_p50_ms",
        dns.latency.percentile(50.0).unwrap_or(0.0) / 1000.0,
    );
    m.insert(
        "icmp_unreachable_per_second",
        per_s(
            a.icmp.unreachables.iter().map(|u| u.count).sum::<u64>() as f64,
            d,
        ),
    );
    m
}

fn conn_key(c: &Conn) -> (Endpoint, Endpoint) {
    (c.client, c.server)
}

/// Compare captures `a` and `b`.
pub fn compare(a: &Analysis, b: &Analysis, mode: Mode, top_n: usize, meta: &Meta) -> Comparison {
    let n = top_n.max(1);
    let ma = metrics(a);
    let mb = metrics(b);
    let mut deltas = Vec::new();
    let mut changed = Vec::new();
    for (k, va) in &ma {
        let vb = mb.get(k).copied().unwrap_or(0.0);
        let rel = if va.abs() > 1e-9 {
            (vb - va) / va.abs() * 100.0
        } else if vb.abs() > 1e-9 {
            f64::INFINITY
        } else {
            0.0
        };
        deltas.push(json!({"metric": k, "a": r3(*va), "b": r3(vb), "delta": r3(vb - va), "change_pct": if rel.is_finite() { json!(r3(rel)) } else { json!("new") }}));
        let abs_diff = (vb - va).abs();
        let meaningful = match *k {
            "handshake_success_pct" | "dns_unanswered_pct" => abs_diff >= 10.0,
            "retransmissions_per_1000_data_segments" => abs_diff >= 10.0,
            "dns_latency_p50_ms" => abs_diff >= 50.0,
            "rst_per_second" | "icmp_unreachable_per_second" | "zero_window_per_second" => {
                abs_diff >= 1.0
            }
            _ => false,
        };
        if meaningful && (!rel.is_finite() || rel.abs() >= 50.0) {
            changed.push(format!("{k}: {:.3} -> {:.3}", va, vb));
        }
    }
    let mut doc = serde_json::Map::new();
    doc.insert("schema_version".into(), json!(SCHEMA_VERSION));
    doc.insert("tool".into(), json!("pcap-forensics"));
    doc.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    doc.insert("session_id".into(), json!(meta.session_id));
    doc.insert(
        "created_at".into(),
        json!(meta
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    doc.insert("kind".into(), json!("comparison"));
    doc.insert(
        "mode".into(),
        json!(match mode {
            Mode::Temporal => "temporal",
            Mode::Endpoint => "endpoint",
        }),
    );
    doc.insert(
        "a".into(),
        json!({"file": a.file, "packets": a.stats.packets, "duration_seconds": r3(a.duration_s())}),
    );
    doc.insert(
        "b".into(),
        json!({"file": b.file, "packets": b.stats.packets, "duration_seconds": r3(b.duration_s())}),
    );
    doc.insert("normalised_metrics".into(), Value::Array(deltas.clone()));
    let mut md = String::new();
    let _ = writeln!(md, "# Capture comparison: {} vs {}", a.file, b.file);
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Session `{}`; mode {}.",
        meta.session_id,
        doc["mode"].as_str().unwrap_or("")
    );
    let _ = writeln!(md);
    let verdict: String;
    let mut significant = !changed.is_empty();
    match mode {
        Mode::Temporal => {
            verdict = if changed.is_empty() {
                "no significant change between the two captures (rates normalised by duration)"
                    .into()
            } else {
                format!("changed: {}", changed.join("; "))
            };
        }
        Mode::Endpoint => {
            let ka: BTreeMap<_, &Conn> = a.tcp.conns.iter().map(|c| (conn_key(c), c)).collect();
            let kb: BTreeMap<_, &Conn> = b.tcp.conns.iter().map(|c| (conn_key(c), c)).collect();
            let only_a: Vec<String> = ka
                .iter()
                .filter(|(k, _)| !kb.contains_key(k))
                .map(|(_, c)| c.flow_label())
                .collect();
            let only_b: Vec<String> = kb
                .iter()
                .filter(|(k, _)| !ka.contains_key(k))
                .map(|(_, c)| c.flow_label())
                .collect();
            let mut syn_diff = Vec::new();
            let mut synack_missing_at_a = 0usize;
            let mut owd = Vec::new();
            for (k, ca) in &ka {
                if let Some(cb) = kb.get(k) {
                    if ca.syn_packets != cb.syn_packets {
                        syn_diff.push(json!({"flow": ca.flow_label(), "syn_at_a": ca.syn_packets, "syn_at_b": cb.syn_packets}));
                    }
                    if cb.synack_packets > 0 && ca.synack_packets == 0 {
                        synack_missing_at_a += 1;
                    }
                    if let (Some(ta), Some(tb)) = (ca.syn_ts, cb.syn_ts) {
                        owd.push((tb - ta) as f64 / 1e6);
                    }
                }
            }
            owd.sort_by(f64::total_cmp);
            let owd_med = owd.get(owd.len() / 2).copied();
            let clocks_ok = owd_med.is_some_and(|d| d.abs() < 10_000.0);
            let icmp_a: BTreeSet<&String> = a.icmp.types.keys().collect();
            let icmp_b: BTreeSet<&String> = b.icmp.types.keys().collect();
            let icmp_only_a: Vec<&&String> = icmp_a.difference(&icmp_b).collect();
            let icmp_only_b: Vec<&&String> = icmp_b.difference(&icmp_a).collect();
            let syn_lost: i64 = syn_diff
                .iter()
                .map(|v| v["syn_at_a"].as_i64().unwrap_or(0) - v["syn_at_b"].as_i64().unwrap_or(0))
                .sum();
            verdict = if !only_a.is_empty() && only_b.is_empty() {
                format!("asymmetric: {} flow(s) seen at A never reach B: traffic is dropped between A and B", only_a.len())
            } else if syn_lost > 0 {
                format!("asymmetric: {syn_lost} SYN(s) seen at A are missing at B: loss or filtering on the path from A to B")
            } else if synack_missing_at_a > 0 {
                format!("asymmetric: {synack_missing_at_a} SYN-ACK(s) leave B but never reach A: the return path drops replies")
            } else if !only_b.is_empty() && only_a.is_empty() {
                format!(
                    "asymmetric: {} flow(s) seen at B never appear at A",
                    only_b.len()
                )
            } else if !icmp_only_a.is_empty() || !icmp_only_b.is_empty() {
                "partly asymmetric: some ICMP is seen on one side only".into()
            } else {
                "symmetric: both sides see the same TCP flows and SYN counts".into()
            };
            significant |= verdict.starts_with("asymmetric") || verdict.starts_with("partly");
            // Where slow responses are made: at the server (both ends see them) or on the
            // path (the client sees more delay than the server makes).
            let responses = crate::analysis::response::compare(&a.responses, &b.responses);
            if let Some(list) = responses.as_array().filter(|l| !l.is_empty()) {
                significant = true;
                let mut parts = Vec::new();
                for r in list {
                    let server = r["server"].as_str().unwrap_or("");
                    parts.push(match r["delay_made_at"].as_str().unwrap_or("") {
                        "server" => format!("responses from {server} are equally slow at both ends: the server makes the delay, the network adds none"),
                        "network" => format!("responses from {server} are slower at one end than the server makes them: the path adds the delay"),
                        _ => format!("slow responses from {server}, seen at one end only"),
                    });
                }
                doc.insert("response_verdict".into(), json!(parts.join("; ")));
            }
            doc.insert("response_times".into(), responses);
            doc.insert("flows_only_at_a_total".into(), json!(only_a.len()));
            doc.insert(
                "flows_only_at_a".into(),
                json!(only_a.iter().take(n).collect::<Vec<_>>()),
            );
            doc.insert("flows_only_at_b_total".into(), json!(only_b.len()));
            doc.insert(
                "flows_only_at_b".into(),
                json!(only_b.iter().take(n).collect::<Vec<_>>()),
            );
            doc.insert("syn_count_differences_total".into(), json!(syn_diff.len()));
            doc.insert(
                "syn_count_differences".into(),
                Value::Array(syn_diff.iter().take(n).cloned().collect()),
            );
            doc.insert("synack_seen_at_b_not_a".into(), json!(synack_missing_at_a));
            doc.insert(
                "one_way_delay_ms".into(),
                if clocks_ok {
                    json!({"median": owd_med.map(r3), "samples": owd.len(), "note": "B minus A on the first SYN of each flow; valid only if both clocks are synchronised"})
                } else {
                    json!({"median": null, "samples": owd.len(), "note": "clocks not comparable (no common flows or offset above 10 s)"})
                },
            );
            doc.insert("icmp_only_at_a".into(), json!(icmp_only_a));
            doc.insert("icmp_only_at_b".into(), json!(icmp_only_b));
            let _ = writeln!(md, "## Endpoint correlation");
            let _ = writeln!(md);
            if let Some(v) = doc.get("response_verdict").and_then(Value::as_str) {
                let _ = writeln!(md, "- Response times: {v}");
            }
            let _ = writeln!(
                md,
                "- Flows seen at A only: {} {}",
                only_a.len(),
                only_a
                    .iter()
                    .take(n)
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(
                md,
                "- Flows seen at B only: {} {}",
                only_b.len(),
                only_b
                    .iter()
                    .take(n)
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(md, "- Flows with different SYN counts: {}", syn_diff.len());
            let _ = writeln!(
                md,
                "- SYN-ACK seen at B but not at A: {synack_missing_at_a}"
            );
            let _ = writeln!(
                md,
                "- One-way delay (median, B - A): {}",
                if clocks_ok {
                    format!("{:.3} ms over {} flows", owd_med.unwrap_or(0.0), owd.len())
                } else {
                    "clocks not comparable".into()
                }
            );
            let _ = writeln!(
                md,
                "- ICMP types only at A: {:?}; only at B: {:?}",
                icmp_only_a, icmp_only_b
            );
            let _ = writeln!(md);
        }
    }
    doc.insert("verdict".into(), json!(verdict));
    doc.insert("significant".into(), json!(significant));
    let _ = writeln!(md, "## Normalised metrics (A → B)");
    let _ = writeln!(md);
    let _ = writeln!(md, "| metric | A | B | change |\n|---|---|---|---|");
    for d in &deltas {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            d["metric"].as_str().unwrap_or(""),
            d["a"],
            d["b"],
            d["change_pct"]
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "## Verdict");
    let _ = writeln!(md);
    let _ = writeln!(md, "{verdict}.");
    Comparison {
        json: Value::Object(doc),
        markdown: md,
        significant,
    }
}
