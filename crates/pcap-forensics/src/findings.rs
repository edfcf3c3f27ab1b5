//! Findings: every rule stated in code with its measure and threshold, each finding with
//! flows/hosts and sample frame numbers as evidence. The catalogue is documented in
//! `docs/pcap-forensics.md`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::analysis::arp::{fmt_mac, virtual_mac_kind};
use crate::analysis::icmp::{is_admin_prohibited, is_host_unreachable, unreach_code_name};
use crate::analysis::tcp::{Conn, Outcome};
use crate::analysis::{dns, Analysis, AnalysisOptions, Endpoint};
use crate::reassembly::ip::{FragIssue, IssueKind};

/// Sample frames kept per finding.
pub const FINDING_FRAMES: usize = 10;

/// Severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One finding with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable position in the ranked list: `F001`, `F002`, ...
    pub id: String,
    /// The rule that fired (see the catalogue).
    pub rule: &'static str,
    pub severity: Severity,
    pub title: String,
    /// What was measured, in words.
    pub measured: String,
    /// The measured value the threshold applies to.
    pub value: f64,
    /// The threshold that made the rule fire.
    pub threshold: String,
    pub flows: Vec<String>,
    pub hosts: Vec<String>,
    pub sample_frames: Vec<u64>,
    pub remediation: String,
}

struct B {
    out: Vec<Finding>,
    top_n: usize,
}

impl B {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        rule: &'static str,
        severity: Severity,
        title: String,
        measured: String,
        value: f64,
        threshold: &str,
        flows: Vec<String>,
        hosts: Vec<String>,
        frames: Vec<u64>,
        remediation: String,
    ) {
        let mut frames = frames;
        frames.sort_unstable();
        frames.dedup();
        frames.truncate(FINDING_FRAMES);
        let mut flows = flows;
        flows.truncate(self.top_n.clamp(1, 5));
        let mut hosts = hosts;
        hosts.dedup();
        hosts.truncate(self.top_n.clamp(1, 5));
        self.out.push(Finding {
            id: String::new(),
            rule,
            severity,
            title,
            measured,
            value,
            threshold: threshold.to_string(),
            flows,
            hosts,
            sample_frames: frames,
            remediation,
        });
    }
}

fn frames_of<'a>(it: impl Iterator<Item = &'a Vec<u64>>) -> Vec<u64> {
    let lists: Vec<&Vec<u64>> = it.collect();
    let per = (FINDING_FRAMES / lists.len().max(1)).max(2);
    let mut v = Vec::new();
    for f in lists {
        v.extend(f.iter().take(per).copied());
    }
    v
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 * 100.0 / b as f64
    }
}

fn top_conns(conns: &[Conn], key: impl Fn(&Conn) -> u64, n: usize) -> Vec<&Conn> {
    let mut v: Vec<&Conn> = conns.iter().filter(|c| key(c) > 0).collect();
    v.sort_by(|a, b| key(b).cmp(&key(a)).then(a.first_frame.cmp(&b.first_frame)));
    v.truncate(n);
    v
}

/// Evaluate every rule over a finished analysis; the result is ranked and numbered.
pub fn evaluate(a: &Analysis, opts: &AnalysisOptions) -> Vec<Finding> {
    let mut b = B {
        out: Vec::new(),
        top_n: opts.top_n,
    };
    let n = opts.top_n.max(1);
    tcp_rules(a, &mut b, n);
    dns_rules(a, &mut b, n, opts);
    icmp_rules(a, &mut b, n);
    arp_rules(a, &mut b, n);
    cross_rules(a, &mut b, n);
    udp_rules(a, &mut b, n);
    reassembly_rules(a, &mut b, n);
    response_rules(a, &mut b, n);
    if !a.warnings.is_empty() {
        b.add(
            "capture.incomplete",
            Severity::Low,
            "The capture is incomplete or partly corrupt".into(),
            format!("{} reader warning(s): {}", a.warnings.len(), a.warnings[0]),
            a.warnings.len() as f64,
            ">= 1 warning",
            vec![],
            vec![],
            a.stats.malformed_frames.clone(),
            "Results cover only the readable part; re-capture or re-copy the file for a complete picture.".into(),
        );
    }
    let mut out = b.out;
    out.sort_by(|x, y| {
        y.severity
            .cmp(&x.severity)
            .then(y.value.total_cmp(&x.value))
            .then(x.rule.cmp(y.rule))
            .then(x.title.cmp(&y.title))
    });
    for (i, f) in out.iter_mut().enumerate() {
        f.id = format!("F{:03}", i + 1);
    }
    out
}

/// Retransmission rate thresholds (% of data segments).
pub const RETRANS_MEDIUM_PCT: f64 = 1.0;
pub const RETRANS_HIGH_PCT: f64 = 5.0;
pub const RETRANS_MIN: u64 = 5;
pub const RST_STORM_MIN: u64 = 100;
pub const RST_STORM_PPS: f64 = 10.0;

fn tcp_rules(a: &Analysis, b: &mut B, n: usize) {
    let t = &a.tcp;
    let retrans = t.sum(|c| c.retransmissions);
    let data = t.sum(|c| c.dir[0].data_segments + c.dir[1].data_segments);
    let rate = pct(retrans, data);
    if retrans >= RETRANS_MIN && rate >= RETRANS_MEDIUM_PCT {
        let sev = if rate >= RETRANS_HIGH_PCT {
            Severity::High
        } else {
            Severity::Medium
        };
        let top = top_conns(&t.conns, |c| c.retransmissions, n);
        let fast = t.sum(|c| c.fast_retransmissions);
        let spur = t.sum(|c| c.spurious_retransmissions);
        b.add(
            "tcp.retransmissions",
            sev,
            format!("TCP retransmissions: {rate:.1}% of data segments"),
            format!("{retrans} retransmissions ({fast} fast, {spur} spurious) out of {data} data segments"),
            rate,
            ">= 5 retransmissions and >= 1% of data segments (high at >= 5%)",
            top.iter().map(|c| format!("{} ({} retransmissions)", c.flow_label(), c.retransmissions)).collect(),
            top.iter().map(|c| c.client.ip.to_string()).collect(),
            frames_of(top.iter().map(|c| &c.retrans_frames)),
            format!(
                "Look for loss on the path of {}: interface errors, policers/shapers, random-drop firewall rules (iptables statistic), congested links.",
                top.first().map(|c| c.flow_label()).unwrap_or_default()
            ),
        );
    }
    let zw = t.sum(|c| c.zero_window);
    if zw > 0 {
        let top = top_conns(&t.conns, |c| c.zero_window, n);
        b.add(
            "tcp.zero_window",
            Severity::Medium,
            "Receivers advertised a zero window".into(),
            format!("{zw} zero-window segments"),
            zw as f64,
            ">= 1 zero-window segment",
            top.iter().map(|c| c.flow_label()).collect(),
            top.iter().map(|c| c.server.ip.to_string()).collect(),
            frames_of(top.iter().map(|c| &c.zero_window_frames)),
            "The receiving application is not reading fast enough (or its buffers are too small): check CPU and the application on the advertising host.".into(),
        );
    }
    let dup = t.sum(|c| c.duplicate_acks);
    if dup >= 10 {
        let top = top_conns(&t.conns, |c| c.duplicate_acks, n);
        b.add(
            "tcp.duplicate_acks",
            Severity::Low,
            "Duplicate ACKs signal lost or reordered segments".into(),
            format!("{dup} duplicate ACKs"),
            dup as f64,
            ">= 10 duplicate ACKs",
            top.iter().map(|c| c.flow_label()).collect(),
            vec![],
            frames_of(top.iter().map(|c| &c.dupack_frames)),
            "Correlate with retransmissions on the same flows; duplicate ACKs without retransmissions mean reordering.".into(),
        );
    }
    let ooo = t.sum(|c| c.out_of_order);
    if ooo >= 10 {
        let top = top_conns(&t.conns, |c| c.out_of_order, n);
        b.add(
            "tcp.out_of_order",
            Severity::Low,
            "Out-of-order TCP segments".into(),
            format!("{ooo} out-of-order segments"),
            ooo as f64,
            ">= 10 out-of-order segments",
            top.iter().map(|c| c.flow_label()).collect(),
            vec![],
            frames_of(top.iter().map(|c| &c.ooo_frames)),
            "Check for multipath (ECMP) or load-balancer reordering on these flows.".into(),
        );
    }
    // Resets.
    let dur = a.duration_s();
    let rsts = t.rst_packets;
    if rsts >= RST_STORM_MIN && dur > 0.0 && rsts as f64 / dur >= RST_STORM_PPS {
        let top = top_conns(&t.conns, |c| u64::from(c.dir[0].rst + c.dir[1].rst), n);
        let mut senders: BTreeMap<IpAddr, u64> = BTreeMap::new();
        for c in &t.conns {
            *senders.entry(c.client.ip).or_default() += u64::from(c.dir[0].rst);
            *senders.entry(c.server.ip).or_default() += u64::from(c.dir[1].rst);
        }
        let mut s: Vec<_> = senders.into_iter().filter(|x| x.1 > 0).collect();
        s.sort_by_key(|x| std::cmp::Reverse(x.1));
        b.add(
            "tcp.rst_storm",
            Severity::High,
            format!("RST storm: {:.0} resets per second", rsts as f64 / dur),
            format!("{rsts} RST segments in {dur:.1} s"),
            rsts as f64 / dur,
            ">= 100 RST segments and >= 10 per second",
            top.iter().map(|c| c.flow_label()).collect(),
            s.iter().map(|(ip, c)| format!("{ip} sent {c} RST")).collect(),
            frames_of(top.iter().map(|c| &c.rst_frames)),
            format!(
                "Find why {} resets connections: closed ports being scanned, a REJECT rule, or an application aborting.",
                s.first().map(|x| x.0.to_string()).unwrap_or_default()
            ),
        );
    }
    // Established connections torn down by RST (not refusals).
    let reset: Vec<&Conn> = t
        .conns
        .iter()
        .filter(|c| c.outcome() == Outcome::Completed && c.dir[0].rst + c.dir[1].rst > 0)
        .collect();
    let completed = t.count_outcome(Outcome::Completed);
    if reset.len() >= 5 && pct(reset.len() as u64, completed as u64) >= 20.0 {
        b.add(
            "tcp.resets_established",
            Severity::Medium,
            "Established connections reset".into(),
            format!("{} of {completed} completed connections ended with RST", reset.len()),
            pct(reset.len() as u64, completed as u64),
            ">= 5 connections and >= 20% of completed connections",
            reset.iter().take(n).map(|c| c.flow_label()).collect(),
            vec![],
            frames_of(reset.iter().take(n).map(|c| &c.rst_frames)),
            "Check the side sending the RST (application aborts, idle timeouts in middleboxes, corruption).".into(),
        );
    }
    let half: Vec<&Conn> = t
        .conns
        .iter()
        .filter(|c| c.outcome() == Outcome::SynAckWithoutAck)
        .collect();
    if !half.is_empty() {
        b.add(
            "tcp.handshake_incomplete",
            Severity::Low,
            "SYN-ACK sent but the handshake never completed".into(),
            format!("{} connection(s) stuck after SYN-ACK", half.len()),
            half.len() as f64,
            ">= 1 connection",
            half.iter().take(n).map(|c| c.flow_label()).collect(),
            half.iter().take(n).map(|c| c.client.ip.to_string()).collect(),
            frames_of(half.iter().take(n).map(|c| &c.syn_frames)),
            "The SYN-ACK or the final ACK is lost: check the return path (asymmetric routing, stateful filter on the way back) or a SYN flood.".into(),
        );
    }
}

fn dns_rules(a: &Analysis, b: &mut B, n: usize, opts: &AnalysisOptions) {
    let d = &a.dns.state;
    let un = &a.dns.unanswered;
    if !un.is_empty() {
        let share = pct(un.len() as u64, d.queries);
        let sev = if un.len() >= 3 || share >= 5.0 {
            Severity::Medium
        } else {
            Severity::Low
        };
        let mut servers: Vec<String> = un.iter().map(|q| q.server.ip.to_string()).collect();
        servers.sort();
        servers.dedup();
        b.add(
            "dns.unanswered",
            sev,
            format!("{} DNS queries never answered", un.len()),
            format!(
                "{} of {} queries ({share:.1}%) got no response",
                un.len(),
                d.queries
            ),
            un.len() as f64,
            ">= 1 (medium at >= 3 or >= 5% of queries)",
            un.iter()
                .take(n)
                .map(|q| format!("udp {} -> {} {} {}", q.client, q.server, q.qtype, q.name))
                .collect(),
            servers.clone(),
            un.iter().map(|q| q.frame).collect(),
            format!(
                "Check that the DNS server(s) {} are reachable on port 53 and answering.",
                servers.join(", ")
            ),
        );
    }
    let nx: u64 = d.nxdomain.values().map(|x| x.count).sum();
    if nx > 0 {
        let share = pct(nx, d.responses);
        let sev = if nx >= 10 && share >= 20.0 {
            Severity::Medium
        } else {
            Severity::Info
        };
        let r = dns::ranked(&d.nxdomain);
        b.add(
            "dns.nxdomain",
            sev,
            if sev == Severity::Medium { "NXDOMAIN flood".into() } else { "NXDOMAIN answers".into() },
            format!("{nx} NXDOMAIN responses ({share:.1}% of responses) for {} name(s)", d.nxdomain.len()),
            share,
            ">= 10 NXDOMAIN and >= 20% of responses for medium",
            vec![],
            r.iter().take(n).map(|(name, c)| format!("{name} ({}x)", c.count)).collect(),
            frames_of(r.iter().take(n).map(|x| &x.1.frames)),
            "Find the client asking for non-existent names (misconfigured search domains, typos, malware DGA).".into(),
        );
    }
    let sf: u64 = d.servfail.values().map(|x| x.count).sum();
    if sf > 0 {
        let r = dns::ranked(&d.servfail);
        b.add(
            "dns.servfail",
            Severity::Medium,
            "DNS servers answered SERVFAIL".into(),
            format!("{sf} SERVFAIL responses for {} name(s)", d.servfail.len()),
            sf as f64,
            ">= 1 SERVFAIL",
            vec![],
            r.iter().take(n).map(|(name, c)| format!("{name} ({}x)", c.count)).collect(),
            frames_of(r.iter().take(n).map(|x| &x.1.frames)),
            "The resolver cannot reach the authoritative servers or DNSSEC validation fails for these names.".into(),
        );
    }
    if d.slow_count > 0 {
        let p90 = d.latency.percentile(90.0).unwrap_or(0.0) / 1000.0;
        let sev = if p90 >= opts.dns_slow_ms {
            Severity::Medium
        } else {
            Severity::Low
        };
        b.add(
            "dns.slow",
            sev,
            format!("{} slow DNS answers", d.slow_count),
            format!(
                "{} answers took >= {} ms; p90 latency {p90:.1} ms",
                d.slow_count, opts.dns_slow_ms
            ),
            d.slow_count as f64,
            &format!(
                ">= 1 answer slower than {} ms (medium when p90 is)",
                opts.dns_slow_ms
            ),
            d.slow
                .iter()
                .take(n)
                .map(|q| {
                    format!(
                        "udp {} -> {} {} ({:.0} ms)",
                        q.client,
                        q.server,
                        q.name,
                        q.latency_ms.unwrap_or(0.0)
                    )
                })
                .collect(),
            d.slow
                .iter()
                .take(n)
                .map(|q| q.server.ip.to_string())
                .collect(),
            d.slow.iter().map(|q| q.frame).collect(),
            "Check the resolver's upstream latency and load; consider a closer resolver.".into(),
        );
    }
    let mut dga: Vec<_> = d
        .suspicious
        .values()
        .filter(|s| s.0.kind == "dga_like")
        .collect();
    dga.sort_by(|x, y| {
        y.0.entropy
            .total_cmp(&x.0.entropy)
            .then(x.0.name.cmp(&y.0.name))
    });
    if !dga.is_empty() {
        let sev = if dga.len() >= 5 {
            Severity::High
        } else {
            Severity::Low
        };
        b.add(
            "dns.dga_suspect",
            sev,
            format!("{} DGA-like names queried", dga.len()),
            format!("{} distinct names with a leftmost label >= {} chars and entropy >= {} bits/char", dga.len(), dns::DGA_MIN_LABEL, dns::DGA_ENTROPY),
            dga.len() as f64,
            ">= 1 name (high at >= 5 names)",
            vec![],
            dga.iter().take(n).map(|s| format!("{} (label {} chars, entropy {:.2})", s.0.name, s.0.label_len, s.0.entropy)).collect(),
            frames_of(dga.iter().take(n).map(|s| &s.1.frames)),
            "Identify the querying host and check it for malware; block the domains at the resolver.".into(),
        );
    }
    let mut tun: Vec<_> = d
        .suspicious
        .values()
        .filter(|s| s.0.kind == "tunnel_like")
        .collect();
    tun.sort_by(|x, y| {
        y.0.label_len
            .cmp(&x.0.label_len)
            .then(x.0.name.cmp(&y.0.name))
    });
    let txt_share = pct(d.txt_queries, d.queries);
    if tun.len() >= 5 || (d.txt_queries >= 20 && txt_share >= 30.0) {
        b.add(
            "dns.tunnel_suspect",
            Severity::High,
            "Signs of DNS tunnelling".into(),
            format!("{} names with labels >= {} chars or names >= {} chars; TXT queries {} ({txt_share:.1}%)", tun.len(), dns::TUNNEL_LABEL, dns::TUNNEL_NAME, d.txt_queries),
            tun.len() as f64,
            ">= 5 long names, or >= 20 TXT queries that are >= 30% of all queries",
            vec![],
            tun.iter().take(n).map(|s| format!("{} (label {} chars)", s.0.name, s.0.label_len)).collect(),
            frames_of(tun.iter().take(n).map(|s| &s.1.frames)),
            "Inspect the querying host; block the carrier domain at the resolver.".into(),
        );
    }
    if d.truncated > 0 {
        b.add(
            "dns.truncated",
            Severity::Info,
            "Truncated DNS answers (TC bit)".into(),
            format!("{} responses had TC set", d.truncated),
            d.truncated as f64,
            ">= 1",
            vec![],
            vec![],
            d.truncated_frames.clone(),
            "Clients must retry over TCP port 53: make sure TCP/53 is allowed.".into(),
        );
    }
}

fn icmp_rules(a: &Analysis, b: &mut B, n: usize) {
    let i = &a.icmp;
    for u in i.unreachables.iter().take(n) {
        let name = unreach_code_name(u.v6, u.code);
        let sev = if is_admin_prohibited(u.v6, u.code) || is_host_unreachable(u.v6, u.code) {
            Severity::Medium
        } else {
            Severity::Low
        };
        let port = u.dport.map(|p| format!(":{p}")).unwrap_or_default();
        b.add(
            "icmp.unreachable",
            sev,
            format!(
                "ICMP {name} from {} for {}{port}",
                u.reporter, u.original_dst
            ),
            format!(
                "{} unreachable message(s), code {} ({name}), original {} -> {}{port} proto {}",
                u.count,
                u.code,
                u.original_src,
                u.original_dst,
                crate::dissect::ip_proto_name(u.protocol)
            ),
            u.count as f64,
            ">= 1 message",
            vec![format!(
                "{} {} -> {}{port}",
                crate::dissect::ip_proto_name(u.protocol),
                u.original_src,
                u.original_dst
            )],
            vec![u.reporter.to_string()],
            u.frames.clone(),
            match name {
                "port_unreachable" => format!(
                    "Nothing listens on {}{port} (or a REJECT rule answers for it).",
                    u.original_dst
                ),
                n if n.contains("admin") => format!(
                    "A filter on {} prohibits this traffic: check its firewall rules.",
                    u.reporter
                ),
                _ => format!(
                    "{} has no route or neighbour for {}: check routing and that the host is up.",
                    u.reporter, u.original_dst
                ),
            },
        );
    }
    for t in i.ttl.iter().filter(|t| t.verdict() != "traceroute").take(n) {
        if t.verdict() == "traceroute" {
            continue;
        }
        if t.count < 3 {
            continue;
        }
        let routers: Vec<String> = t.routers.iter().map(|r| r.to_string()).collect();
        b.add(
            "icmp.routing_loop",
            Severity::High,
            format!("Possible routing loop towards {}", t.target),
            format!(
                "{} TTL-exceeded messages for ordinary traffic to {} from {} router(s)",
                t.count,
                t.target,
                t.routers.len()
            ),
            t.count as f64,
            ">= 3 TTL-exceeded messages for non-traceroute traffic to one target",
            vec![format!(
                "{} {} -> {}",
                crate::dissect::ip_proto_name(t.protocol),
                t.original_src,
                t.target
            )],
            routers,
            t.frames.clone(),
            format!(
                "Check the routes for {} on {}: two routers pointing at each other.",
                t.target,
                t.routers
                    .iter()
                    .next()
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            ),
        );
    }
    let tr: Vec<_> = i
        .ttl
        .iter()
        .filter(|t| t.verdict() == "traceroute")
        .collect();
    if !tr.is_empty() {
        b.add(
            "icmp.traceroute",
            Severity::Info,
            "Traceroute activity".into(),
            format!("{} traceroute target(s)", tr.len()),
            tr.len() as f64,
            "TTL-exceeded answers to probe-like traffic",
            tr.iter()
                .take(n)
                .map(|t| format!("{} -> {}", t.original_src, t.target))
                .collect(),
            vec![],
            frames_of(tr.iter().take(n).map(|t| &t.frames)),
            "None needed: this is diagnostics traffic.".into(),
        );
    }
    for r in i.redirects.iter().take(n) {
        b.add(
            "icmp.redirect",
            Severity::Low,
            format!("ICMP redirect from {} for {}", r.router, r.original_dst),
            format!(
                "{} redirect(s) to gateway {}",
                r.count,
                r.gateway
                    .map(|g| g.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            r.count as f64,
            ">= 1 redirect",
            vec![],
            vec![r.router.to_string()],
            r.frames.clone(),
            "Hosts use a suboptimal first hop: fix their routes or the router's redirect setting."
                .into(),
        );
    }
    if i.echo_unanswered >= 3 {
        b.add(
            "icmp.echo_unanswered",
            Severity::Low,
            "Pings without reply".into(),
            format!("{} of {} echo requests unanswered", i.echo_unanswered, i.echo_requests),
            i.echo_unanswered as f64,
            ">= 3 unanswered echo requests",
            vec![],
            vec![],
            vec![],
            "ICMP may be filtered on the target or the path; do not take it as proof the host is down.".into(),
        );
    }
}

fn arp_rules(a: &Analysis, b: &mut B, n: usize) {
    let r = &a.arp;
    for c in r.conflicts.iter().take(n) {
        let verdict = c.verdict();
        let macs: Vec<String> = c
            .macs
            .iter()
            .map(|(m, (cnt, fr))| {
                let v = virtual_mac_kind(m)
                    .map(|k| format!(" {k} virtual MAC"))
                    .unwrap_or_default();
                format!("{}{v} ({cnt} packets, first frame {fr})", fmt_mac(m))
            })
            .collect();
        let mut frames: Vec<u64> = c.macs.values().map(|x| x.1).collect();
        frames.extend(c.frames.iter().copied());
        if verdict == "virtual_mac_failover" {
            b.add(
                "arp.virtual_mac",
                Severity::Info,
                format!(
                    "{} moved between a virtual (VRRP/HSRP) MAC and others",
                    c.ip
                ),
                format!("{} MACs claimed {}", c.macs.len(), c.ip),
                c.macs.len() as f64,
                ">= 2 MACs, one a first-hop-redundancy virtual MAC",
                vec![],
                macs,
                frames,
                "Expected during a redundancy failover; investigate only if it flaps.".into(),
            );
        } else {
            b.add(
                "arp.ip_conflict",
                Severity::High,
                format!("IP {} claimed by {} MACs (conflict or spoofing)", c.ip, c.macs.len()),
                format!("{} distinct MACs sent ARP for {}", c.macs.len(), c.ip),
                c.macs.len() as f64,
                ">= 2 MACs for one IP, none a virtual MAC",
                vec![],
                macs,
                frames,
                format!("Find which device owns {}: remove the duplicate address, or look for ARP spoofing from the unexpected MAC.", c.ip),
            );
        }
    }
    if r.peak_gratuitous_pps >= 10 {
        b.add(
            "arp.gratuitous_rate",
            Severity::Medium,
            "High gratuitous ARP rate".into(),
            format!(
                "peak {} gratuitous ARP per second ({} total)",
                r.peak_gratuitous_pps, r.gratuitous
            ),
            r.peak_gratuitous_pps as f64,
            ">= 10 gratuitous ARP in one second",
            vec![],
            vec![],
            r.gratuitous_frames.clone(),
            "A flapping interface, failover loop or ARP-spoofing tool: find the sender MAC.".into(),
        );
    }
    if r.storm_seconds > 0 {
        b.add(
            "arp.storm",
            Severity::High,
            format!("ARP storm: peak {} ARP packets per second", r.peak_pps),
            format!(
                "{} second(s) with >= {} ARP packets",
                r.storm_seconds,
                crate::analysis::arp::STORM_PPS
            ),
            r.peak_pps as f64,
            ">= 100 ARP packets in one second",
            vec![],
            vec![],
            vec![r.peak_frame],
            "Look for a layer-2 loop or a host scanning the subnet.".into(),
        );
    }
    let un: Vec<_> = r.unanswered.iter().filter(|u| u.requests >= 3).collect();
    if !un.is_empty() {
        b.add(
            "arp.unanswered",
            Severity::Low,
            format!("{} address(es) never answered ARP", un.len()),
            format!("{} target(s) with >= 3 unanswered requests", un.len()),
            un.len() as f64,
            ">= 3 requests for one target without any reply",
            vec![],
            un.iter()
                .take(n)
                .map(|u| {
                    format!(
                        "{} ({} requests from {})",
                        u.target,
                        u.requests,
                        u.requesters
                            .iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect(),
            frames_of(un.iter().take(n).map(|u| &u.frames)),
            "The target host is down or not on this segment.".into(),
        );
    }
}

fn udp_rules(a: &Analysis, b: &mut B, n: usize) {
    let un: Vec<_> = a
        .udp
        .flows
        .iter()
        .filter(|f| f.unanswered() && f.responder.port != 53 && f.initiator.port != 53)
        .collect();
    if !un.is_empty() {
        let with_icmp = un.iter().filter(|f| f.icmp_errors > 0).count();
        b.add(
            "udp.unanswered",
            Severity::Info,
            format!("{} UDP flow(s) without any reply", un.len()),
            format!("{} one-way unicast UDP flows ({with_icmp} drew ICMP errors)", un.len()),
            un.len() as f64,
            ">= 1 one-way unicast flow (non-DNS)",
            un.iter().take(n).map(|f| format!("{} ({} packets)", f.label(), f.packets[0])).collect(),
            vec![],
            frames_of(un.iter().take(n).map(|f| &f.frames)),
            "One-way UDP is normal for some protocols (syslog, telemetry); for request/response protocols check the server.".into(),
        );
    }
}

/// Slow application responses: a server whose response time (request to first response
/// byte) reaches max(200 ms, 4 × its median) on some requests.
fn response_rules(a: &Analysis, b: &mut B, n: usize) {
    use crate::analysis::response::{SLOW_FACTOR, SLOW_FLOOR_MS};
    for (server, t) in &a.responses.servers {
        let slow = t.slow();
        if t.samples.len() < 3 || slow.is_empty() {
            continue;
        }
        let median = t.median_ms().unwrap_or(0.0);
        let max = t.max_ms();
        let mut frames: Vec<u64> = slow.iter().map(|s| s.frame).collect();
        frames.truncate(crate::analysis::SAMPLE_FRAMES);
        let mut flows: Vec<String> = Vec::new();
        for s in &slow {
            let label = format!("tcp {} -> {server}", s.client);
            if !flows.contains(&label) && flows.len() < n {
                flows.push(label);
            }
        }
        b.add(
            "tcp.slow_response",
            Severity::Medium,
            format!(
                "Slow responses from {server}: {} of {} took {:.0} ms or more",
                slow.len(),
                t.samples.len(),
                t.slow_threshold_ms()
            ),
            format!(
                "response time (request to first response byte): median {median:.1} ms, max {max:.1} ms, {} slow of {} responses ({} in all)",
                slow.len(),
                t.samples.len(),
                t.responses
            ),
            max,
            &format!(">= max({SLOW_FLOOR_MS:.0} ms, {SLOW_FACTOR:.0} x median) on a response"),
            flows,
            vec![server.ip.to_string()],
            frames,
            "The delay lies between a request and its response. Capture at the server too (compare): if the server sees the same delay it makes it (application, backend, disk); if only the client does, the network adds it.".into(),
        );
    }
}

/// Datagrams timed out or lost at end before `ip.fragments_incomplete` turns medium.
pub const FRAG_INCOMPLETE_MEDIUM: u64 = 10;

fn frag_label(i: &FragIssue) -> String {
    format!(
        "{} -> {} {} id {:#x} ({} fragment(s))",
        i.src,
        i.dst,
        crate::dissect::ip_proto_name(i.proto),
        i.id,
        i.fragments
    )
}

fn reassembly_rules(a: &Analysis, b: &mut B, n: usize) {
    let r = &a.reassembly;
    let bad = r.conflicts + r.oversize;
    if bad > 0 {
        let issues: Vec<&FragIssue> = r
            .issues
            .iter()
            .filter(|i| matches!(i.kind, IssueKind::Conflict | IssueKind::Oversize))
            .take(n)
            .collect();
        let mut hosts: Vec<String> = issues.iter().map(|i| i.src.to_string()).collect();
        hosts.sort();
        hosts.dedup();
        b.add(
            "ip.fragment_conflict",
            Severity::High,
            format!("{bad} IP datagram(s) with conflicting or oversized fragments"),
            format!(
                "{} datagram(s) whose overlapping fragments carry different bytes, {} reaching beyond 65 535 bytes (discarded, as receivers do)",
                r.conflicts, r.oversize
            ),
            bad as f64,
            ">= 1 datagram",
            issues.iter().map(|i| frag_label(i)).collect(),
            hosts,
            frames_of(issues.iter().map(|i| &i.frames)),
            format!(
                "Overlapping fragments with different content are an IDS/firewall evasion technique or a corrupting device: find who sends them ({}) and filter fragments at the edge.",
                issues.first().map(|i| i.src.to_string()).unwrap_or_default()
            ),
        );
    }
    let lost: Vec<&FragIssue> = r
        .issues
        .iter()
        .filter(|i| matches!(i.kind, IssueKind::Timeout | IssueKind::Incomplete))
        .collect();
    let lost_total = r.timeouts
        + lost
            .iter()
            .filter(|i| i.kind == IssueKind::Incomplete)
            .count() as u64;
    if lost_total > 0 {
        let top: Vec<&&FragIssue> = lost.iter().take(n).collect();
        let mut hosts: Vec<String> = top.iter().map(|i| i.dst.to_string()).collect();
        hosts.sort();
        hosts.dedup();
        b.add(
            "ip.fragments_incomplete",
            if lost_total >= FRAG_INCOMPLETE_MEDIUM { Severity::Medium } else { Severity::Low },
            format!("{lost_total} fragmented IP datagram(s) never completed"),
            format!(
                "{} datagram(s) timed out (IPv4 30 s, IPv6 60 s of capture time) and {} stopped ≥ 1 s before the capture ended, missing fragments; {} reassembled",
                r.timeouts,
                lost_total - r.timeouts,
                r.reassembled
            ),
            lost_total as f64,
            ">= 1 datagram (medium at >= 10)",
            top.iter().map(|i| frag_label(i)).collect(),
            hosts,
            frames_of(top.iter().map(|i| &i.frames)),
            format!(
                "A path that drops some fragments (an NSG, firewall or NAT that does not forward non-first fragments, or an MTU problem) loses whole datagrams: check fragment handling towards {}, or avoid fragmentation (smaller UDP payloads, EDNS buffer ≤ 1232).",
                top.first().map(|i| i.dst.to_string()).unwrap_or_default()
            ),
        );
    }
    let d = &a.dns.state;
    let stream_bad = d.tcp_stream_conflicts + d.tcp_stream_out_of_window;
    if stream_bad > 0 {
        let mut issues: Vec<_> = d.stream_issues.iter().collect();
        issues.sort_by(|x, y| y.1.count.cmp(&x.1.count).then(x.0.cmp(y.0)));
        issues.truncate(n);
        b.add(
            "tcp.stream_conflict",
            Severity::Medium,
            format!("{stream_bad} TCP segment(s) rewrote or fell outside reassembled stream data"),
            format!(
                "{} segment(s) overlapping earlier bytes with different content, {} outside any window, on reassembled (DNS) streams",
                d.tcp_stream_conflicts, d.tcp_stream_out_of_window
            ),
            stream_bad as f64,
            ">= 1 segment",
            issues
                .iter()
                .map(|((kind, s, t), c)| format!("{s} -> {t} {kind} ({}x)", c.count))
                .collect(),
            issues.iter().map(|((_, s, _), _)| s.ip.to_string()).collect(),
            frames_of(issues.iter().map(|(_, c)| &c.frames)),
            format!(
                "Retransmitted TCP data that differs from the original means injection (spoofed segments) or a corrupting middlebox: inspect {} and the devices on its path.",
                issues.first().map(|((_, s, t), _)| format!("{s} -> {t}")).unwrap_or_default()
            ),
        );
    }
}

fn cross_rules(a: &Analysis, b: &mut B, n: usize) {
    // Filtered port: per server endpoint, how SYNs ended.
    let mut by_server: BTreeMap<Endpoint, Vec<&Conn>> = BTreeMap::new();
    for c in &a.tcp.conns {
        if matches!(
            c.outcome(),
            Outcome::SynUnanswered | Outcome::RefusedRst | Outcome::RefusedIcmp
        ) {
            by_server.entry(c.server).or_default().push(c);
        }
    }
    let mut groups: Vec<(Endpoint, Vec<&Conn>)> = by_server.into_iter().collect();
    groups.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then(x.0.cmp(&y.0)));
    for (server, conns) in groups.iter().take(n) {
        let dropped = conns
            .iter()
            .filter(|c| c.outcome() == Outcome::SynUnanswered)
            .count();
        let rst = conns
            .iter()
            .filter(|c| c.outcome() == Outcome::RefusedRst)
            .count();
        let icmp: Vec<_> = conns.iter().filter_map(|c| c.icmp_error).collect();
        let admin = icmp
            .iter()
            .filter(|(_, code, v6, _)| is_admin_prohibited(*v6, *code))
            .count();
        let syns: u32 = conns.iter().map(|c| c.syn_packets).sum();
        let (sev, verdict, fix) = if dropped >= rst + icmp.len() {
            (
                Severity::High,
                "silently dropped (SYNs without any answer: a DROP rule, NSG deny or dead host)",
                format!("Find the filter dropping TCP {} (iptables/nftables DROP on the server, an NSG deny rule) or check that the host is up.", server.port),
            )
        } else if admin > 0 {
            (
                Severity::High,
                "rejected as administratively prohibited (ICMP from a filter)",
                format!(
                    "A firewall rejects TCP {} with ICMP admin-prohibited: find and fix the rule.",
                    server.port
                ),
            )
        } else if !icmp.is_empty() && icmp.len() >= rst {
            (
                Severity::Medium,
                "rejected with ICMP unreachable (REJECT rule or closed port)",
                format!("Check for a REJECT rule for TCP {} on {} (iptables --reject-with icmp-port-unreachable).", server.port, server.ip),
            )
        } else {
            (
                Severity::Medium,
                "refused with RST (closed port or REJECT --reject-with tcp-reset)",
                format!("Nothing listens on {server}, or a REJECT tcp-reset rule answers: start the service or fix the rule."),
            )
        };
        let mut frames: Vec<u64> = Vec::new();
        for c in conns.iter().take(5) {
            frames.extend(c.syn_frames.iter().take(2));
            frames.extend(c.refused_rst_frame);
            frames.extend(c.icmp_error.map(|x| x.3));
        }
        b.add(
            "xproto.filtered_port",
            sev,
            format!("TCP {server} {verdict}"),
            format!("{} connection attempt(s) ({syns} SYN packets): {dropped} unanswered, {rst} refused by RST, {} refused by ICMP ({admin} admin-prohibited)", conns.len(), icmp.len()),
            conns.len() as f64,
            ">= 1 failed connection attempt; verdict by majority outcome",
            conns.iter().take(n).map(|c| c.flow_label()).collect(),
            vec![server.ip.to_string()],
            frames,
            fix,
        );
    }
    // PMTUD black hole: frag-needed/PTB plus retransmitted segments larger than the MTU.
    for m in a.icmp.mtu.iter().take(n) {
        let limit = m.mtu.saturating_sub(if m.v6 { 60 } else { 40 });
        let affected: Vec<&Conn> = a
            .tcp
            .conns
            .iter()
            .filter(|c| {
                (c.server.ip == m.original_dst || c.client.ip == m.original_dst)
                    && c.max_retrans_len > limit
            })
            .collect();
        if affected.is_empty() {
            b.add(
                "icmp.frag_needed",
                Severity::Info,
                format!("Path MTU {} towards {} signalled by {}", m.mtu, m.original_dst, m.reporter),
                format!("{} fragmentation-needed/packet-too-big message(s), next-hop MTU {}", m.count, m.mtu),
                f64::from(m.mtu),
                ">= 1 message",
                vec![format!("{} -> {}", m.original_src, m.original_dst)],
                vec![m.reporter.to_string()],
                m.frames.clone(),
                "PMTUD is working if senders then use smaller segments; no retransmissions of oversized segments were seen.".into(),
            );
            continue;
        }
        let mut frames = m.frames.clone();
        frames.truncate(3);
        for c in affected.iter().take(3) {
            frames.extend(c.large_retrans_frames.iter().take(3));
        }
        b.add(
            "xproto.pmtud_black_hole",
            Severity::Critical,
            format!("PMTUD black hole towards {} (path MTU {})", m.original_dst, m.mtu),
            format!(
                "{} frag-needed/packet-too-big from {} with MTU {}, and {} connection(s) kept retransmitting segments up to {} bytes (> {limit})",
                m.count,
                m.reporter,
                m.mtu,
                affected.len(),
                affected.iter().map(|c| c.max_retrans_len).max().unwrap_or(0)
            ),
            f64::from(m.mtu),
            "frag-needed/PTB seen and a retransmitted segment larger than MTU minus headers",
            affected.iter().take(n).map(|c| c.flow_label()).collect(),
            vec![m.original_src.to_string(), m.reporter.to_string()],
            frames,
            format!(
                "Lower the MTU on {} to {} (or clamp MSS to {}), or let ICMP type 3 code 4 / ICMPv6 type 2 through to the sender.",
                m.original_src,
                m.mtu,
                limit
            ),
        );
    }
    // Host down: unanswered ARP plus host unreachable for the same address.
    for u in a.arp.unanswered.iter().take(n) {
        let ip = IpAddr::V4(u.target);
        let unreach: Vec<_> = a
            .icmp
            .unreachables
            .iter()
            .filter(|x| x.original_dst == ip && is_host_unreachable(x.v6, x.code))
            .collect();
        if unreach.is_empty() {
            continue;
        }
        let cnt: u64 = unreach.iter().map(|x| x.count).sum();
        let mut frames = u.frames.clone();
        frames.truncate(4);
        for x in &unreach {
            frames.extend(x.frames.iter().take(3));
        }
        b.add(
            "xproto.host_down",
            Severity::High,
            format!("Host {} is down or absent", u.target),
            format!(
                "{} unanswered ARP requests and {cnt} ICMP host-unreachable for {}",
                u.requests, u.target
            ),
            u.requests as f64,
            ">= 1 unanswered ARP request and >= 1 host unreachable for the same address",
            vec![],
            vec![u.target.to_string()],
            frames,
            format!(
                "Start {} or fix its network attachment; check that the address is right.",
                u.target
            ),
        );
    }
}
