//! The semantic JSON: small, bounded, LLM-ready. Keys of the reference engine are kept
//! (`capture_summary`, `tcp.connection_stats`, `dns.rcode_distribution`, ...). Every list is
//! top-N with a `<list>_omitted` count, so its size does not grow with the capture.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::analysis::arp::fmt_mac;
use crate::analysis::icmp::unreach_code_name;
use crate::analysis::tcp::Outcome;
use crate::analysis::{dns, Analysis, AnalysisOptions};
use crate::dissect::{ip_proto_name, link_type_name};
use crate::findings::Severity;

/// Schema version of the semantic JSON.
pub const SCHEMA_VERSION: u32 = 1;
/// Size budget: with the default `--top 10`, the semantic JSON stays under this many bytes
/// (about 12 000 tokens) whatever the capture size. Tested in `tests/budget.rs`.
pub const BUDGET_BYTES: usize = 49_152;

/// Identity of the artifact (injected so tests are stable).
#[derive(Debug, Clone)]
pub struct Meta {
    pub session_id: String,
    pub created_at: DateTime<Utc>,
}

impl Meta {
    /// `pcap_{YYYYMMDDTHHMMSSZ}` for the given time.
    pub fn at(created_at: DateTime<Utc>) -> Self {
        Meta {
            session_id: format!("pcap_{}", created_at.format("%Y%m%dT%H%M%SZ")),
            created_at,
        }
    }
}

fn r3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn ts(ns: Option<i64>) -> Value {
    match ns {
        Some(n) => {
            let dt = Utc.timestamp_nanos(n);
            Value::String(dt.to_rfc3339_opts(SecondsFormat::Micros, true))
        }
        None => Value::Null,
    }
}

fn put_list(m: &mut Map<String, Value>, key: &str, items: Vec<Value>, total: usize) {
    let shown = items.len();
    m.insert(key.to_string(), Value::Array(items));
    m.insert(format!("{key}_omitted"), json!(total.saturating_sub(shown)));
}

/// Build the semantic JSON document.
pub fn semantic_json(a: &Analysis, opts: &AnalysisOptions, meta: &Meta) -> Value {
    let n = opts.top_n.max(1);
    let mut root = Map::new();
    root.insert("schema_version".into(), json!(SCHEMA_VERSION));
    root.insert("tool".into(), json!("pcap-forensics"));
    root.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    root.insert("session_id".into(), json!(meta.session_id));
    root.insert(
        "created_at".into(),
        json!(meta.created_at.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    root.insert("capture_summary".into(), summary(a, n));
    root.insert("tcp".into(), tcp(a, n));
    root.insert("udp".into(), udp(a, n));
    root.insert("dns".into(), dns_section(a, n));
    root.insert("icmp".into(), icmp(a, n));
    root.insert("arp".into(), arp(a, n));
    let mut counts = Map::new();
    for s in [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ] {
        counts.insert(
            s.as_str().into(),
            json!(a.findings.iter().filter(|f| f.severity == s).count()),
        );
    }
    root.insert("findings_by_severity".into(), Value::Object(counts));
    let limit = 2 * n;
    let items: Vec<Value> = a
        .findings
        .iter()
        .take(limit)
        .map(|f| serde_json::to_value(f).unwrap_or(Value::Null))
        .collect();
    put_list(&mut root, "findings", items, a.findings.len());
    root.insert(
        "budget".into(),
        json!({"top_n": n, "findings_max": limit, "budget_bytes": BUDGET_BYTES}),
    );
    Value::Object(root)
}

fn summary(a: &Analysis, n: usize) -> Value {
    let s = &a.stats;
    let dur = a.duration_s();
    let rate = |x: f64| if dur > 0.0 { r3(x / dur) } else { 0.0 };
    let protos: Vec<&str> = s.protocols.keys().copied().collect();
    let link_types: Vec<Value> = s
        .link_types
        .iter()
        .map(|(lt, c)| json!({"link_type": lt, "name": link_type_name(*lt), "packets": c}))
        .collect();
    let mut m = Map::new();
    m.insert("file".into(), json!(a.file));
    m.insert("format".into(), json!(a.format));
    m.insert("total_packets".into(), json!(s.packets));
    m.insert("total_bytes".into(), json!(s.bytes_wire));
    m.insert("captured_bytes".into(), json!(s.bytes_captured));
    m.insert("duration_seconds".into(), json!(r3(dur)));
    m.insert(
        "avg_packets_per_second".into(),
        json!(rate(s.packets as f64)),
    );
    m.insert(
        "avg_bits_per_second".into(),
        json!(rate(s.bytes_wire as f64 * 8.0)),
    );
    m.insert("protocols_present".into(), json!(protos));
    m.insert("protocol_packets".into(), json!(s.protocols));
    m.insert("link_types".into(), Value::Array(link_types));
    m.insert(
        "time_span".into(),
        json!({"first": ts(s.first_ts_ns), "last": ts(s.last_ts_ns)}),
    );
    m.insert("interfaces".into(), json!(s.interfaces.len()));
    let vlans: Vec<Value> = s
        .vlans
        .iter()
        .take(n)
        .map(|(v, c)| json!({"vlan": v, "packets": c}))
        .collect();
    put_list(&mut m, "vlans", vlans, s.vlans.len());
    m.insert("ipv4_packets".into(), json!(s.ipv4_packets));
    m.insert("ipv6_packets".into(), json!(s.ipv6_packets));
    m.insert("ip_fragments".into(), json!(s.fragments));
    let r = &a.reassembly;
    let issues: Vec<Value> = r
        .issues
        .iter()
        .take(n)
        .map(|i| {
            json!({"kind": i.kind.as_str(), "src": i.src.to_string(), "dst": i.dst.to_string(),
                   "protocol": crate::dissect::ip_proto_name(i.proto), "id": i.id,
                   "fragments": i.fragments, "sample_frames": i.frames})
        })
        .collect();
    let mut ra = Map::new();
    ra.insert("datagrams_reassembled".into(), json!(r.reassembled));
    ra.insert("duplicate_fragments".into(), json!(r.duplicates));
    ra.insert("overlap_conflicts".into(), json!(r.conflicts));
    ra.insert("oversize".into(), json!(r.oversize));
    ra.insert("timeouts".into(), json!(r.timeouts));
    ra.insert("incomplete_at_end".into(), json!(r.incomplete_at_end));
    ra.insert("evicted".into(), json!(r.evicted));
    ra.insert("unusable_fragments".into(), json!(r.unusable));
    ra.insert("peak_buffered_bytes".into(), json!(r.peak_bytes));
    put_list(&mut ra, "issues", issues, r.issues.len());
    m.insert("ip_reassembly".into(), Value::Object(ra));
    m.insert("malformed_frames".into(), json!(s.malformed));
    m.insert(
        "snaplen_truncated_frames".into(),
        json!(s.snaplen_truncated),
    );
    let w: Vec<Value> = a.warnings.iter().take(n).map(|x| json!(x)).collect();
    put_list(&mut m, "warnings", w, a.warnings.len());
    let c: Vec<Value> = a
        .comments
        .iter()
        .take(n)
        .map(|x| json!(x.chars().take(200).collect::<String>()))
        .collect();
    put_list(&mut m, "comments", c, a.comments.len());
    Value::Object(m)
}

fn tcp(a: &Analysis, n: usize) -> Value {
    let t = &a.tcp;
    let syn_sent = t.conns.iter().filter(|c| c.syn_packets > 0).count();
    let syn_ack = t
        .conns
        .iter()
        .filter(|c| c.syn_packets > 0 && c.synack_packets > 0)
        .count();
    let completed = t
        .conns
        .iter()
        .filter(|c| c.syn_packets > 0 && c.outcome() == Outcome::Completed)
        .count();
    let rate = if syn_sent > 0 {
        r3(completed as f64 * 100.0 / syn_sent as f64)
    } else {
        0.0
    };
    let mut hs = crate::analysis::LatencyHist::default();
    let mut data_rtt = crate::analysis::LatencyHist::default();
    for c in &t.conns {
        if let Some(ms) = c.handshake_rtt_ms() {
            hs.add(ms * 1000.0);
        }
        if c.rtt.count > 0 {
            data_rtt.add(c.rtt.mean_us().unwrap_or(0.0));
        }
    }
    let rst_client: u64 = t.sum(|c| u64::from(c.dir[0].rst));
    let rst_server: u64 = t.sum(|c| u64::from(c.dir[1].rst));
    let mut m = Map::new();
    m.insert("streams_total".into(), json!(t.conns.len()));
    m.insert("packets".into(), json!(t.packets));
    m.insert(
        "retransmissions_total".into(),
        json!(t.sum(|c| c.retransmissions)),
    );
    m.insert(
        "fast_retransmissions_total".into(),
        json!(t.sum(|c| c.fast_retransmissions)),
    );
    m.insert(
        "spurious_retransmissions_total".into(),
        json!(t.sum(|c| c.spurious_retransmissions)),
    );
    m.insert("rst_count".into(), json!(t.rst_packets));
    m.insert(
        "rst_by_side".into(),
        json!({"client": rst_client, "server": rst_server}),
    );
    m.insert(
        "duplicate_ack_total".into(),
        json!(t.sum(|c| c.duplicate_acks)),
    );
    m.insert(
        "out_of_order_total".into(),
        json!(t.sum(|c| c.out_of_order)),
    );
    m.insert("zero_window_total".into(), json!(t.sum(|c| c.zero_window)));
    m.insert("window_full_total".into(), json!(t.sum(|c| c.window_full)));
    m.insert(
        "previous_segment_not_captured_total".into(),
        json!(t.sum(|c| c.lost_segments)),
    );
    m.insert(
        "connection_stats".into(),
        json!({
            "syn_sent": syn_sent,
            "syn_packets": t.syn_packets,
            "syn_ack_received": syn_ack,
            "handshakes_completed": completed,
            "handshake_success_rate_pct": rate,
            "refused_rst": t.count_outcome(Outcome::RefusedRst),
            "refused_icmp": t.count_outcome(Outcome::RefusedIcmp),
            "syn_unanswered": t.count_outcome(Outcome::SynUnanswered),
            "syn_ack_without_ack": t.count_outcome(Outcome::SynAckWithoutAck),
            "no_handshake_seen": t.count_outcome(Outcome::NoHandshakeSeen),
        }),
    );
    m.insert("handshake_rtt".into(), hs.summary_ms());
    m.insert("data_rtt_per_flow_mean".into(), data_rtt.summary_ms());
    // Top flows: anomalous first (by problem count), then by volume.
    let mut idx: Vec<usize> = (0..t.conns.len()).collect();
    let score = |c: &crate::analysis::tcp::Conn| {
        c.retransmissions
            + c.duplicate_acks
            + c.out_of_order
            + c.zero_window
            + u64::from(c.dir[0].rst + c.dir[1].rst)
            + u64::from(!matches!(
                c.outcome(),
                Outcome::Completed | Outcome::NoHandshakeSeen
            )) * 10
    };
    idx.sort_by(|&x, &y| {
        let (a1, b1) = (&t.conns[x], &t.conns[y]);
        score(b1)
            .cmp(&score(a1))
            .then((b1.dir[0].bytes + b1.dir[1].bytes).cmp(&(a1.dir[0].bytes + a1.dir[1].bytes)))
            .then(a1.first_frame.cmp(&b1.first_frame))
    });
    let flows: Vec<Value> = idx
        .iter()
        .take(n)
        .map(|&i| {
            let c = &t.conns[i];
            let tp = c.throughput_bps();
            json!({
                "flow": c.flow_label(),
                "client": c.client.to_string(),
                "server": c.server.to_string(),
                "outcome": c.outcome().as_str(),
                "first_frame": c.first_frame,
                "duration_seconds": r3(c.duration_s()),
                "syn_packets": c.syn_packets,
                "handshake_rtt_ms": c.handshake_rtt_ms().map(r3),
                "data_rtt_mean_ms": c.rtt.mean_us().map(|u| r3(u / 1000.0)),
                "data_rtt_max_ms": (c.rtt.count > 0).then(|| r3(c.rtt.max_us / 1000.0)),
                "bytes_client_to_server": c.dir[0].bytes,
                "bytes_server_to_client": c.dir[1].bytes,
                "payload_client_to_server": c.dir[0].payload_bytes,
                "payload_server_to_client": c.dir[1].payload_bytes,
                "throughput_bps_client_to_server": r3(tp[0]),
                "throughput_bps_server_to_client": r3(tp[1]),
                "retransmissions": c.retransmissions,
                "fast_retransmissions": c.fast_retransmissions,
                "spurious_retransmissions": c.spurious_retransmissions,
                "duplicate_acks": c.duplicate_acks,
                "out_of_order": c.out_of_order,
                "zero_window": c.zero_window,
                "window_full": c.window_full,
                "rst_from_client": c.dir[0].rst,
                "rst_from_server": c.dir[1].rst,
                "sample_frames": c.retrans_frames.iter().chain(c.rst_frames.iter()).chain(c.zero_window_frames.iter()).take(5).collect::<Vec<_>>(),
            })
        })
        .collect();
    put_list(&mut m, "top_flows", flows, t.conns.len());
    Value::Object(m)
}

fn udp(a: &Analysis, n: usize) -> Value {
    let u = &a.udp;
    let unanswered: Vec<_> = u.flows.iter().filter(|f| f.unanswered()).collect();
    let mut m = Map::new();
    m.insert("flows_total".into(), json!(u.flows.len()));
    m.insert("packets".into(), json!(u.packets));
    m.insert("bytes".into(), json!(u.bytes));
    m.insert("unanswered_flows".into(), json!(unanswered.len()));
    let top: Vec<Value> = u
        .flows
        .iter()
        .take(n)
        .map(|f| {
            json!({
                "flow": f.label(),
                "packets_forward": f.packets[0],
                "packets_reverse": f.packets[1],
                "bytes_forward": f.bytes[0],
                "bytes_reverse": f.bytes[1],
                "duration_seconds": r3(f.duration_s()),
                "packets_per_second": r3(f.rate_pps()),
                "icmp_errors": f.icmp_errors,
                "first_frame": f.frames.first(),
            })
        })
        .collect();
    put_list(&mut m, "top_flows", top, u.flows.len());
    let un: Vec<Value> = unanswered
        .iter()
        .take(n)
        .map(|f| json!({"flow": f.label(), "packets": f.packets[0], "sample_frames": f.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "unanswered", un, unanswered.len());
    Value::Object(m)
}

fn dns_section(a: &Analysis, n: usize) -> Value {
    let d = &a.dns.state;
    let mut m = Map::new();
    m.insert("queries_total".into(), json!(d.queries));
    m.insert("responses_total".into(), json!(d.responses));
    m.insert("rcode_distribution".into(), json!(d.rcodes));
    m.insert("unanswered_queries".into(), json!(a.dns.unanswered.len()));
    let un: Vec<Value> = a
        .dns
        .unanswered
        .iter()
        .take(n)
        .map(|q| json!({"client": q.client.to_string(), "server": q.server.to_string(), "name": q.name, "qtype": q.qtype, "frame": q.frame}))
        .collect();
    put_list(&mut m, "unanswered_samples", un, a.dns.unanswered.len());
    m.insert(
        "retransmitted_queries".into(),
        json!(d.retransmitted_queries),
    );
    m.insert("unmatched_responses".into(), json!(d.unmatched_responses));
    m.insert("latency".into(), d.latency.summary_ms());
    m.insert("slow_queries".into(), json!(d.slow_count));
    m.insert(
        "slow_threshold_ms".into(),
        json!(d.slow_ms.unwrap_or(500.0)),
    );
    let slow: Vec<Value> = d
        .slow
        .iter()
        .take(n)
        .map(|q| json!({"client": q.client.to_string(), "server": q.server.to_string(), "name": q.name, "qtype": q.qtype, "latency_ms": q.latency_ms.map(r3), "frame": q.frame}))
        .collect();
    put_list(&mut m, "slow_samples", slow, d.slow.len());
    let names = |t: &std::collections::HashMap<String, dns::NameCount>| -> (Vec<Value>, usize) {
        let r = dns::ranked(t);
        (
            r.iter()
                .take(n)
                .map(|(k, v)| json!({"name": k, "count": v.count, "sample_frames": v.frames.iter().take(3).collect::<Vec<_>>()}))
                .collect(),
            r.len(),
        )
    };
    let (nx, nxt) = names(&d.nxdomain);
    put_list(&mut m, "nxdomain_names", nx, nxt);
    let (sf, sft) = names(&d.servfail);
    put_list(&mut m, "servfail_names", sf, sft);
    m.insert("query_types".into(), json!(d.qtypes));
    let mut servers: Vec<_> = d.servers.iter().collect();
    servers.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
    let sv: Vec<Value> = servers
        .iter()
        .take(n)
        .map(|(ip, c)| json!({"server": ip.to_string(), "queries": c}))
        .collect();
    put_list(&mut m, "servers", sv, servers.len());
    m.insert("truncated_responses".into(), json!(d.truncated));
    m.insert("tcp_messages".into(), json!(d.tcp_messages));
    m.insert(
        "tcp_reassembly".into(),
        json!({"streams": d.tcp_streams, "streams_over_cap": d.tcp_streams_over_cap,
               "gaps": d.tcp_stream_gaps, "overlap_conflicts": d.tcp_stream_conflicts,
               "out_of_window": d.tcp_stream_out_of_window}),
    );
    m.insert("txt_queries".into(), json!(d.txt_queries));
    let mut sus: Vec<_> = d.suspicious.values().collect();
    sus.sort_by(|x, y| {
        y.1.count
            .cmp(&x.1.count)
            .then(y.0.entropy.total_cmp(&x.0.entropy))
            .then(x.0.name.cmp(&y.0.name))
    });
    let sv: Vec<Value> = sus
        .iter()
        .take(n)
        .map(|(s, c)| json!({"name": s.name, "kind": s.kind, "label_length": s.label_len, "name_length": s.name_len, "entropy_bits_per_char": r3(s.entropy), "queries": c.count, "sample_frames": c.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "suspicious_names", sv, sus.len());
    Value::Object(m)
}

fn icmp(a: &Analysis, n: usize) -> Value {
    let i = &a.icmp;
    let mut m = Map::new();
    m.insert("packets".into(), json!(i.packets));
    m.insert("type_distribution".into(), json!(i.types));
    let un: Vec<Value> = i
        .unreachables
        .iter()
        .take(n)
        .map(|u| {
            json!({
                "code": u.code,
                "code_name": unreach_code_name(u.v6, u.code),
                "icmpv6": u.v6,
                "reporter": u.reporter.to_string(),
                "original_src": u.original_src.to_string(),
                "original_dst": u.original_dst.to_string(),
                "protocol": ip_proto_name(u.protocol),
                "dst_port": u.dport,
                "count": u.count,
                "sample_frames": u.frames.iter().take(3).collect::<Vec<_>>(),
            })
        })
        .collect();
    put_list(&mut m, "unreachable_details", un, i.unreachables.len());
    let mtu: Vec<Value> = i
        .mtu
        .iter()
        .take(n)
        .map(|u| json!({"reporter": u.reporter.to_string(), "original_src": u.original_src.to_string(), "original_dst": u.original_dst.to_string(), "next_hop_mtu": u.mtu, "icmpv6": u.v6, "count": u.count, "sample_frames": u.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "frag_needed", mtu, i.mtu.len());
    let ttl: Vec<Value> = i
        .ttl
        .iter()
        .take(n)
        .map(|t| json!({"original_src": t.original_src.to_string(), "target": t.target.to_string(), "protocol": ip_proto_name(t.protocol), "dst_port": t.dport, "routers": t.routers.iter().take(8).map(|r| r.to_string()).collect::<Vec<_>>(), "count": t.count, "verdict": t.verdict(), "sample_frames": t.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "ttl_exceeded", ttl, i.ttl.len());
    let rd: Vec<Value> = i
        .redirects
        .iter()
        .take(n)
        .map(|r| json!({"router": r.router.to_string(), "gateway": r.gateway.map(|g| g.to_string()), "original_dst": r.original_dst.to_string(), "count": r.count, "sample_frames": r.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "redirects", rd, i.redirects.len());
    m.insert(
        "echo".into(),
        json!({"requests": i.echo_requests, "replies": i.echo_replies, "unanswered": i.echo_unanswered, "rtt": i.echo_rtt.summary_ms()}),
    );
    m.insert(
        "neighbor_discovery".into(),
        json!({"solicitations": i.nd_solicitations, "advertisements": i.nd_advertisements, "unanswered_targets": i.ns_unanswered.len()}),
    );
    Value::Object(m)
}

fn arp(a: &Analysis, n: usize) -> Value {
    let r = &a.arp;
    let mut m = Map::new();
    m.insert("total_requests".into(), json!(r.requests));
    m.insert("total_replies".into(), json!(r.replies));
    m.insert("gratuitous_arp_count".into(), json!(r.gratuitous));
    m.insert("probes".into(), json!(r.probes));
    let dups: Vec<Value> = r
        .conflicts
        .iter()
        .take(n)
        .map(|c| {
            json!({
                "ip": c.ip.to_string(),
                "macs": c.macs.iter().take(4).map(|(mac, (cnt, fr))| json!({"mac": fmt_mac(mac), "packets": cnt, "first_frame": fr, "virtual": crate::analysis::arp::virtual_mac_kind(mac)})).collect::<Vec<_>>(),
                "verdict": c.verdict(),
                "sample_frames": c.frames.iter().take(3).collect::<Vec<_>>(),
            })
        })
        .collect();
    put_list(&mut m, "duplicate_ip_alerts", dups, r.conflicts.len());
    let un: Vec<Value> = r
        .unanswered
        .iter()
        .take(n)
        .map(|u| json!({"target": u.target.to_string(), "requests": u.requests, "requesters": u.requesters.iter().map(|x| x.to_string()).collect::<Vec<_>>(), "sample_frames": u.frames.iter().take(3).collect::<Vec<_>>()}))
        .collect();
    put_list(&mut m, "unanswered_requests", un, r.unanswered.len());
    m.insert("peak_packets_per_second".into(), json!(r.peak_pps));
    m.insert(
        "peak_gratuitous_per_second".into(),
        json!(r.peak_gratuitous_pps),
    );
    m.insert("storm_seconds".into(), json!(r.storm_seconds));
    Value::Object(m)
}
