//! The Markdown forensic report: executive summary, ranked findings with evidence,
//! per-protocol sections, remediation hints naming the exact flow or host.

use std::fmt::Write as _;

use serde_json::Value;

use crate::analysis::Analysis;
use crate::findings::Severity;
use crate::narrator::Narrative;
use crate::semantic::Meta;

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur.get(p).unwrap_or(&Value::Null);
    }
    cur
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Render the report from the analysis and its semantic JSON.
pub fn markdown(a: &Analysis, semantic: &Value, meta: &Meta, narrative: &Narrative) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Packet capture forensic report: {}", esc(&a.file));
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Session `{}`, generated {} by pcap-forensics {}.",
        meta.session_id,
        meta.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "## Executive summary");
    let _ = writeln!(o);
    let cs = get(semantic, &["capture_summary"]);
    let _ = writeln!(
        o,
        "- {} packets, {} bytes over {} s ({} packets/s); protocols: {}.",
        show(get(cs, &["total_packets"])),
        show(get(cs, &["total_bytes"])),
        show(get(cs, &["duration_seconds"])),
        show(get(cs, &["avg_packets_per_second"])),
        get(cs, &["protocols_present"])
            .as_array()
            .map(|v| v.iter().map(show).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "- Time span: {} to {}.",
        show(get(cs, &["time_span", "first"])),
        show(get(cs, &["time_span", "last"]))
    );
    if a.stats.fragments > 0 {
        let r = &a.reassembly;
        let _ = writeln!(
            o,
            "- IP fragments: {} in {} reassembled datagram(s); {} conflicting, {} oversize, {} timed out, {} incomplete at the end, {} evicted by memory caps.",
            a.stats.fragments,
            r.reassembled,
            r.conflicts,
            r.oversize,
            r.timeouts,
            r.incomplete_at_end,
            r.evicted
        );
    }
    let worst = a.findings.first().map(|f| f.severity);
    let count = |s: Severity| a.findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        o,
        "- Findings: {} critical, {} high, {} medium, {} low, {} info.",
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        count(Severity::Info)
    );
    match worst {
        Some(s) if s >= Severity::Medium => {
            let f = &a.findings[0];
            let _ = writeln!(
                o,
                "- Most severe: **{}** ({}) — {}.",
                esc(&f.title),
                f.severity.as_str(),
                esc(&f.measured)
            );
        }
        _ => {
            let _ = writeln!(
                o,
                "- No finding of medium severity or above: the capture looks clean."
            );
        }
    }
    for w in &a.warnings {
        let _ = writeln!(o, "- Warning: {}", esc(w));
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "## Narrative");
    let _ = writeln!(o);
    match narrative {
        Narrative::NotRequested => {
            let _ = writeln!(o, "Narrative: not requested.");
        }
        Narrative::Unavailable { reason } => {
            let _ = writeln!(o, "Narrative: not available ({}).", esc(reason));
        }
        Narrative::Text { provider, text } => {
            let _ = writeln!(o, "_Narrated by {provider}; every number above and below is computed deterministically._");
            let _ = writeln!(o);
            let _ = writeln!(o, "{text}");
        }
        Narrative::Failed { provider, error } => {
            let _ = writeln!(o, "Narrative: failed ({provider}: {}).", esc(error));
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "## Findings (ranked)");
    let _ = writeln!(o);
    if a.findings.is_empty() {
        let _ = writeln!(o, "No findings.");
    } else {
        let _ = writeln!(
            o,
            "| id | severity | finding | measured | threshold | evidence (frames) |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|");
        for f in &a.findings {
            let frames = f
                .sample_frames
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                o,
                "| {} | {} | {} (`{}`) | {} | {} | {} |",
                f.id,
                f.severity.as_str(),
                esc(&f.title),
                f.rule,
                esc(&f.measured),
                esc(&f.threshold),
                frames
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "### Evidence and remediation");
        let _ = writeln!(o);
        for f in &a.findings {
            let _ = writeln!(
                o,
                "**{} — {}** ({})",
                f.id,
                esc(&f.title),
                f.severity.as_str()
            );
            let _ = writeln!(o);
            if !f.flows.is_empty() {
                let _ = writeln!(
                    o,
                    "- Flows: {}",
                    f.flows
                        .iter()
                        .map(|x| format!("`{}`", esc(x)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if !f.hosts.is_empty() {
                let _ = writeln!(
                    o,
                    "- Hosts/items: {}",
                    f.hosts
                        .iter()
                        .map(|x| esc(x))
                        .collect::<Vec<_>>()
                        .join("; ")
                );
            }
            if !f.sample_frames.is_empty() {
                let _ = writeln!(
                    o,
                    "- Frames: {}",
                    f.sample_frames
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let _ = writeln!(o, "- Remediation: {}", esc(&f.remediation));
            let _ = writeln!(o);
        }
    }
    // Per-protocol sections.
    let t = get(semantic, &["tcp"]);
    let cst = get(t, &["connection_stats"]);
    let _ = writeln!(o, "## TCP");
    let _ = writeln!(o);
    let _ = writeln!(o, "| measure | value |\n|---|---|");
    for (k, v) in [
        ("connections", get(t, &["streams_total"])),
        ("connection attempts (SYN sent)", get(cst, &["syn_sent"])),
        ("handshakes completed", get(cst, &["handshakes_completed"])),
        (
            "handshake success %",
            get(cst, &["handshake_success_rate_pct"]),
        ),
        ("refused by RST", get(cst, &["refused_rst"])),
        ("refused by ICMP", get(cst, &["refused_icmp"])),
        ("SYN unanswered", get(cst, &["syn_unanswered"])),
        ("retransmissions", get(t, &["retransmissions_total"])),
        (
            "fast retransmissions",
            get(t, &["fast_retransmissions_total"]),
        ),
        (
            "spurious retransmissions",
            get(t, &["spurious_retransmissions_total"]),
        ),
        ("duplicate ACKs", get(t, &["duplicate_ack_total"])),
        ("out of order", get(t, &["out_of_order_total"])),
        ("zero window", get(t, &["zero_window_total"])),
        ("window full", get(t, &["window_full_total"])),
        ("RST segments", get(t, &["rst_count"])),
        (
            "handshake RTT p50 (ms)",
            get(t, &["handshake_rtt", "p50_ms"]),
        ),
    ] {
        let _ = writeln!(o, "| {k} | {} |", show(v));
    }
    let _ = writeln!(o);
    if let Some(flows) = get(t, &["top_flows"]).as_array() {
        if !flows.is_empty() {
            let _ = writeln!(
                o,
                "| flow | outcome | retrans | dup ACK | zero win | RST c/s | bytes c→s / s→c |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            for f in flows {
                let _ = writeln!(
                    o,
                    "| `{}` | {} | {} | {} | {} | {}/{} | {} / {} |",
                    show(get(f, &["flow"])),
                    show(get(f, &["outcome"])),
                    show(get(f, &["retransmissions"])),
                    show(get(f, &["duplicate_acks"])),
                    show(get(f, &["zero_window"])),
                    show(get(f, &["rst_from_client"])),
                    show(get(f, &["rst_from_server"])),
                    show(get(f, &["bytes_client_to_server"])),
                    show(get(f, &["bytes_server_to_client"]))
                );
            }
            let _ = writeln!(
                o,
                "\n{} more flow(s) not shown.\n",
                show(get(t, &["top_flows_omitted"]))
            );
        }
    }
    let u = get(semantic, &["udp"]);
    let _ = writeln!(o, "## UDP");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} flows, {} packets, {} unanswered flows.\n",
        show(get(u, &["flows_total"])),
        show(get(u, &["packets"])),
        show(get(u, &["unanswered_flows"]))
    );
    let d = get(semantic, &["dns"]);
    let _ = writeln!(o, "## DNS");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} queries, {} responses, {} unanswered; rcodes {}; latency p50 {} ms, p90 {} ms, max {} ms; {} slow (>= {} ms); query types {}.\n",
        show(get(d, &["queries_total"])),
        show(get(d, &["responses_total"])),
        show(get(d, &["unanswered_queries"])),
        show(get(d, &["rcode_distribution"])),
        show(get(d, &["latency", "p50_ms"])),
        show(get(d, &["latency", "p90_ms"])),
        show(get(d, &["latency", "max_ms"])),
        show(get(d, &["slow_queries"])),
        show(get(d, &["slow_threshold_ms"])),
        show(get(d, &["query_types"]))
    );
    let dt = get(d, &["tcp_reassembly"]);
    if get(dt, &["streams"]).as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(
            o,
            "DNS over TCP: {} message(s) from {} reassembled stream direction(s); {} gap(s), {} overlap conflict(s), {} out-of-window segment(s).\n",
            show(get(d, &["tcp_messages"])),
            show(get(dt, &["streams"])),
            show(get(dt, &["gaps"])),
            show(get(dt, &["overlap_conflicts"])),
            show(get(dt, &["out_of_window"]))
        );
    }
    let i = get(semantic, &["icmp"]);
    let _ = writeln!(o, "## ICMP / ICMPv6");
    let _ = writeln!(o);
    let _ = writeln!(o, "Types: {}.\n", show(get(i, &["type_distribution"])));
    if let Some(list) = get(i, &["unreachable_details"]).as_array() {
        for x in list {
            let _ = writeln!(
                o,
                "- unreachable `{}` from {} for {} {}:{} ({}x, frames {})",
                show(get(x, &["code_name"])),
                show(get(x, &["reporter"])),
                show(get(x, &["protocol"])),
                show(get(x, &["original_dst"])),
                show(get(x, &["dst_port"])),
                show(get(x, &["count"])),
                show(get(x, &["sample_frames"]))
            );
        }
    }
    if let Some(list) = get(i, &["frag_needed"]).as_array() {
        for x in list {
            let _ = writeln!(
                o,
                "- fragmentation needed from {} for {}: next-hop MTU {} ({}x)",
                show(get(x, &["reporter"])),
                show(get(x, &["original_dst"])),
                show(get(x, &["next_hop_mtu"])),
                show(get(x, &["count"]))
            );
        }
    }
    let _ = writeln!(o);
    let r = get(semantic, &["arp"]);
    let _ = writeln!(o, "## ARP");
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{} requests, {} replies, {} gratuitous, {} IP(s) claimed by several MACs, {} unanswered target(s), peak {} ARP/s.\n",
        show(get(r, &["total_requests"])),
        show(get(r, &["total_replies"])),
        show(get(r, &["gratuitous_arp_count"])),
        get(r, &["duplicate_ip_alerts"]).as_array().map(|v| v.len()).unwrap_or(0) as u64
            + get(r, &["duplicate_ip_alerts_omitted"]).as_u64().unwrap_or(0),
        get(r, &["unanswered_requests"]).as_array().map(|v| v.len()).unwrap_or(0) as u64
            + get(r, &["unanswered_requests_omitted"]).as_u64().unwrap_or(0),
        show(get(r, &["peak_packets_per_second"]))
    );
    o
}
