//! Workload traffic: the application's traffic that is on the wire while an investigator
//! captures (in Azure the users' traffic is there).
//!
//! A scenario's `[[traffic]]` entries ([`TrafficSpec`]) describe generators; `netlab traffic
//! start` runs each as `netlab __traffic …` inside its VM's namespace (plain std TCP/UDP
//! sockets, no external tools), tracked by pid like every lab process. A generator writes
//! its counters ([`TrafficStats`]) to `{run_dir}/traffic/<name>.json` after every request;
//! `netlab traffic status` reads them.
//!
//! Kinds:
//! * `http`: `GET path` to `target` (`IP:PORT`) on a keep-alive connection, one request at a
//!   time, a new request every `interval_ms`; the response time (connect included when a
//!   new connection is opened) is kept as min/max/mean.
//! * `tcp_connect`: connect to `target` and close; a closed port answers RST (`reset`).
//! * `dns`: an A query for `query` over UDP to `target` (default: the VM's gateway, port 53,
//!   which in the lab, as in Azure, answers nothing).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lab::{Lab, LabError, Result};
use crate::scenario::Topology;
use crate::sys;

/// Generator kinds.
pub const KINDS: [&str; 3] = ["http", "tcp_connect", "dns"];

/// Default DNS query name.
pub const DEFAULT_QUERY: &str = "app.netlab.internal";

fn default_interval() -> u64 {
    1000
}

/// One `[[traffic]]` entry of a scenario.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficSpec {
    /// Generator name (for `netlab traffic start NAME`); default `<kind>-<position>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The VM it runs in.
    pub vm: String,
    /// `http`, `tcp_connect` or `dns`.
    pub kind: String,
    /// `IP:PORT` (http, tcp_connect; required) or `IP[:PORT]` (dns; default the VM's gateway
    /// `.1`, port 53). Only lab addresses (198.18.0.0/15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Time between the starts of two requests, in milliseconds (default 1000).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// How long a request may take before it counts as timed out (default: http 5000;
    /// tcp_connect and dns 2000 or the interval if shorter, so they keep their pace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// HTTP path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// DNS name queried (default `app.netlab.internal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

impl TrafficSpec {
    /// The timeout in milliseconds (explicit or the kind's default).
    pub fn timeout(&self) -> u64 {
        self.timeout_ms.unwrap_or(if self.kind == "http" {
            5000
        } else {
            self.interval_ms.clamp(1, 2000)
        })
    }
}

/// Fills empty names with `<kind>-<position>` (1-based).
pub fn resolve_names(specs: &[TrafficSpec]) -> Vec<TrafficSpec> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut s = s.clone();
            if s.name.is_empty() {
                s.name = format!("{}-{}", s.kind, i + 1);
            }
            s
        })
        .collect()
}

/// Parses `IP:PORT` (or `IP` when `default_port` is given) into a socket address.
pub fn parse_target(
    t: &str,
    default_port: Option<u16>,
) -> std::result::Result<SocketAddrV4, String> {
    let t = t.trim();
    if let Ok(a) = t.parse::<SocketAddrV4>() {
        if a.port() == 0 {
            return Err(format!("target `{t}` has port 0"));
        }
        return Ok(a);
    }
    match (t.parse::<Ipv4Addr>(), default_port) {
        (Ok(ip), Some(p)) => Ok(SocketAddrV4::new(ip, p)),
        _ => Err(format!(
            "target `{t}` must be an IPv4 address and port like 198.18.1.5:8080"
        )),
    }
}

fn valid_query(q: &str) -> bool {
    let q = q.strip_suffix('.').unwrap_or(q);
    !q.is_empty()
        && q.len() <= 253
        && q.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Checks `[[traffic]]` entries against the topology: VM, kind, lab-only targets, interval,
/// timeout, path, query, unique names.
pub fn validate_specs(t: &Topology, specs: &[TrafficSpec]) -> std::result::Result<(), String> {
    let mut names = std::collections::BTreeSet::new();
    for s in resolve_names(specs) {
        let who = format!("traffic `{}`", s.name);
        if s.name.len() > 32
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "{who}: the name must be 1-32 letters, digits, `-`, `_` or `.`"
            ));
        }
        if !names.insert(s.name.clone()) {
            return Err(format!("{who} is defined twice"));
        }
        if t.vm(&s.vm).is_none() {
            return Err(format!("{who} names VM `{}` which does not exist", s.vm));
        }
        if !KINDS.contains(&s.kind.as_str()) {
            return Err(format!(
                "{who}: kind `{}` is not one of http, tcp_connect, dns",
                s.kind
            ));
        }
        match (&s.target, s.kind.as_str()) {
            (None, "dns") => {}
            (None, _) => return Err(format!("{who}: {} needs a target IP:PORT", s.kind)),
            (Some(tg), kind) => {
                let a = parse_target(tg, (kind == "dns").then_some(53))
                    .map_err(|e| format!("{who}: {e}"))?;
                if !crate::addr::is_lab_addr(*a.ip()) {
                    return Err(format!(
                        "{who}: target {} is outside 198.18.0.0/15, the only range lab traffic may go to",
                        a.ip()
                    ));
                }
            }
        }
        if !(10..=3_600_000).contains(&s.interval_ms) {
            return Err(format!(
                "{who}: interval_ms {} is outside 10-3600000",
                s.interval_ms
            ));
        }
        if !(1..=60_000).contains(&s.timeout()) {
            return Err(format!(
                "{who}: timeout_ms {} is outside 1-60000",
                s.timeout()
            ));
        }
        if let Some(p) = &s.path {
            if s.kind != "http" {
                return Err(format!("{who}: `path` is only for http"));
            }
            if !p.starts_with('/') || p.len() > 256 || p.chars().any(|c| c.is_control() || c == ' ')
            {
                return Err(format!(
                    "{who}: path `{p}` must start with / and hold no spaces (at most 256 characters)"
                ));
            }
        }
        if let Some(q) = &s.query {
            if s.kind != "dns" {
                return Err(format!("{who}: `query` is only for dns"));
            }
            if !valid_query(q) {
                return Err(format!("{who}: `{q}` is not a DNS name"));
            }
        }
    }
    Ok(())
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered (HTTP 2xx/3xx, TCP connected, DNS response with our id), after `ms`.
    Ok(f64),
    /// The peer answered RST (connection refused or reset).
    Reset(String),
    /// No answer within the timeout.
    TimedOut,
    /// Anything else (ICMP unreachable, HTTP error status, connection closed early, …).
    Failed(String),
}

/// Counters of one generator, written to its stats file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficStats {
    /// Generator name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Target address.
    pub target: String,
    /// Requests sent (connection attempts for tcp_connect, queries for dns).
    pub sent: u64,
    /// Answered.
    pub ok: u64,
    /// Refused or reset by the peer (TCP RST).
    pub reset: u64,
    /// Unanswered within the timeout.
    pub timed_out: u64,
    /// Other failures.
    pub failed: u64,
    /// Fastest answer in milliseconds.
    pub min_ms: Option<f64>,
    /// Slowest answer in milliseconds.
    pub max_ms: Option<f64>,
    /// Sum of the answer times (for the mean).
    pub sum_ms: f64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When the generator started (RFC 3339).
    pub started_at: String,
    /// When this file was written (RFC 3339).
    pub updated_at: String,
}

impl TrafficStats {
    /// Counts one outcome.
    pub fn record(&mut self, o: &Outcome) {
        self.sent += 1;
        match o {
            Outcome::Ok(ms) => {
                self.ok += 1;
                self.min_ms = Some(self.min_ms.map_or(*ms, |m| m.min(*ms)));
                self.max_ms = Some(self.max_ms.map_or(*ms, |m| m.max(*ms)));
                self.sum_ms += ms;
            }
            Outcome::Reset(e) => {
                self.reset += 1;
                self.last_error = Some(e.clone());
            }
            Outcome::TimedOut => {
                self.timed_out += 1;
                self.last_error = Some("timed out".into());
            }
            Outcome::Failed(e) => {
                self.failed += 1;
                self.last_error = Some(e.clone());
            }
        }
    }

    /// Mean answer time in milliseconds.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.ok > 0).then(|| self.sum_ms / self.ok as f64)
    }
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

fn classify_io(e: &std::io::Error, what: &str) -> Outcome {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Outcome::TimedOut,
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            Outcome::Reset(format!("{what}: {e}"))
        }
        _ => Outcome::Failed(format!("{what}: {e}")),
    }
}

/// Connects to `to` and closes the connection at once.
pub fn tcp_connect_once(to: SocketAddr, timeout: Duration) -> Outcome {
    let t0 = Instant::now();
    match TcpStream::connect_timeout(&to, timeout) {
        Ok(s) => {
            let ms = ms_since(t0);
            drop(s);
            Outcome::Ok(ms)
        }
        Err(e) => classify_io(&e, "connect"),
    }
}

/// An HTTP/1.1 client keeping one connection alive between requests.
#[derive(Debug)]
pub struct HttpClient {
    to: SocketAddr,
    host: String,
    path: String,
    timeout: Duration,
    conn: Option<TcpStream>,
}

/// Reads one response (head and `Content-Length` body) before `deadline`; returns the
/// status code and whether the server keeps the connection.
fn read_response(
    s: &mut TcpStream,
    deadline: Instant,
) -> std::result::Result<(u16, bool), Outcome> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut head_end = None;
    let mut body_len = 0usize;
    let mut keep = true;
    let mut status = 0u16;
    loop {
        if let Some(end) = head_end {
            if buf.len() >= end + body_len {
                return Ok((status, keep));
            }
        } else if let Some(end) = crate::serve::header_end(&buf) {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let first = head.lines().next().unwrap_or("");
            status = first
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .filter(|_| first.starts_with("HTTP/1."))
                .ok_or_else(|| Outcome::Failed(format!("not an HTTP response: `{first}`")))?;
            for l in head.lines().skip(1) {
                if let Some((k, v)) = l.split_once(':') {
                    let k = k.trim();
                    if k.eq_ignore_ascii_case("content-length") {
                        body_len = v.trim().parse::<usize>().map_err(|_| {
                            Outcome::Failed(format!("bad Content-Length `{}`", v.trim()))
                        })?;
                        if body_len > 16 * 1024 * 1024 {
                            return Err(Outcome::Failed("response body over 16 MiB".into()));
                        }
                    } else if k.eq_ignore_ascii_case("connection")
                        && v.trim().eq_ignore_ascii_case("close")
                    {
                        keep = false;
                    }
                }
            }
            head_end = Some(end);
            continue;
        } else if buf.len() > 64 * 1024 {
            return Err(Outcome::Failed("response header over 64 KiB".into()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Outcome::TimedOut);
        }
        s.set_read_timeout(Some(left))
            .map_err(|e| classify_io(&e, "read"))?;
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(Outcome::Failed(if buf.is_empty() {
                    "connection closed before the response".into()
                } else {
                    "connection closed in the middle of the response".into()
                }))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(classify_io(&e, "read")),
        }
    }
}

impl HttpClient {
    /// A client for `GET path` on `to`.
    pub fn new(to: SocketAddr, path: &str, timeout: Duration) -> HttpClient {
        HttpClient {
            to,
            host: to.to_string(),
            path: path.to_string(),
            timeout,
            conn: None,
        }
    }

    fn attempt(&mut self, deadline: Instant) -> std::result::Result<(), (Outcome, bool)> {
        let reused = self.conn.is_some();
        if self.conn.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let s = TcpStream::connect_timeout(&self.to, left.max(Duration::from_millis(1)))
                .map_err(|e| (classify_io(&e, "connect"), false))?;
            let _ = s.set_nodelay(true);
            self.conn = Some(s);
        }
        let s = self.conn.as_mut().expect("connection set above");
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: netlab-traffic\r\nAccept: */*\r\n\r\n",
            self.path, self.host
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = s.set_write_timeout(Some(left.max(Duration::from_millis(1))));
        if let Err(e) = s.write_all(req.as_bytes()) {
            self.conn = None;
            return Err((classify_io(&e, "write"), reused));
        }
        match read_response(s, deadline) {
            Ok((status, keep)) => {
                if !keep {
                    self.conn = None;
                }
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err((Outcome::Failed(format!("HTTP {status}")), false))
                }
            }
            Err(o) => {
                self.conn = None;
                // A kept-alive connection the server closed meanwhile is retried once.
                let stale = matches!(&o, Outcome::Reset(_))
                    || matches!(&o, Outcome::Failed(m) if m == "connection closed before the response");
                let retry = reused && stale;
                Err((o, retry))
            }
        }
    }

    /// Sends one request and waits for the whole response.
    pub fn get_once(&mut self) -> Outcome {
        let t0 = Instant::now();
        let deadline = t0 + self.timeout;
        match self.attempt(deadline) {
            Ok(()) => Outcome::Ok(ms_since(t0)),
            Err((_, true)) => match self.attempt(deadline) {
                Ok(()) => Outcome::Ok(ms_since(t0)),
                Err((o, _)) => o,
            },
            Err((o, false)) => o,
        }
    }
}

/// A DNS query for an A record of `name` with id `id` (recursion desired).
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// Whether `resp` is a DNS response (QR set) to the query with id `id`.
pub fn is_dns_response(resp: &[u8], id: u16) -> bool {
    resp.len() >= 12 && resp[..2] == id.to_be_bytes() && resp[2] & 0x80 != 0
}

/// Sends one DNS query over UDP and waits for the matching response.
pub fn dns_once(to: SocketAddr, name: &str, id: u16, timeout: Duration) -> Outcome {
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    let sock = match UdpSocket::bind(("0.0.0.0", 0)) {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("bind: {e}")),
    };
    if let Err(e) = sock.connect(to) {
        return Outcome::Failed(format!("connect: {e}"));
    }
    if let Err(e) = sock.send(&dns_query(id, name)) {
        return Outcome::Failed(format!("send: {e}"));
    }
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut;
        }
        if let Err(e) = sock.set_read_timeout(Some(left)) {
            return Outcome::Failed(format!("socket: {e}"));
        }
        match sock.recv(&mut buf) {
            Ok(n) if is_dns_response(&buf[..n], id) => return Outcome::Ok(ms_since(t0)),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Outcome::TimedOut
            }
            // On a connected UDP socket an ICMP port unreachable arrives as ECONNREFUSED.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                return Outcome::Failed(
                    "ICMP port unreachable (nothing listens on the port)".into(),
                )
            }
            Err(e) => return Outcome::Failed(format!("recv: {e}")),
        }
    }
}

/// Arguments of `netlab __traffic` (one generator; runs until killed).
#[derive(clap::Args, Debug, Clone)]
pub struct TrafficArgs {
    /// Generator name.
    #[arg(long)]
    pub name: String,
    /// http, tcp_connect or dns.
    #[arg(long)]
    pub kind: String,
    /// IP:PORT.
    #[arg(long)]
    pub target: String,
    /// Milliseconds between request starts.
    #[arg(long)]
    pub interval_ms: u64,
    /// Request timeout in milliseconds.
    #[arg(long)]
    pub timeout_ms: u64,
    /// HTTP path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// DNS name.
    #[arg(long, default_value = DEFAULT_QUERY)]
    pub query: String,
    /// Stats file (JSON), rewritten after every request.
    #[arg(long)]
    pub stats: PathBuf,
    /// Stop after this many requests (0 = run until killed).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

impl TrafficArgs {
    /// The argv (after `__traffic`).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "--name".into(),
            self.name.clone(),
            "--kind".into(),
            self.kind.clone(),
            "--target".into(),
            self.target.clone(),
            "--interval-ms".into(),
            self.interval_ms.to_string(),
            "--timeout-ms".into(),
            self.timeout_ms.to_string(),
            "--path".into(),
            self.path.clone(),
            "--query".into(),
            self.query.clone(),
            "--stats".into(),
            self.stats.display().to_string(),
        ]
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn write_stats(path: &Path, st: &mut TrafficStats) -> std::io::Result<()> {
    st.updated_at = now_rfc3339();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(st).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// Runs one generator: a request every `interval_ms` (one at a time: a request slower than
/// the interval delays the next), counters written after each.
pub fn run_traffic(a: &TrafficArgs) -> anyhow::Result<()> {
    let to = parse_target(&a.target, None).map_err(anyhow::Error::msg)?;
    if !(crate::addr::is_lab_addr(*to.ip()) || to.ip().is_loopback()) {
        anyhow::bail!(
            "target {} is outside 198.18.0.0/15; lab traffic goes only to lab addresses",
            to.ip()
        );
    }
    if !KINDS.contains(&a.kind.as_str()) {
        anyhow::bail!("kind `{}` is not one of http, tcp_connect, dns", a.kind);
    }
    let to = SocketAddr::V4(to);
    let timeout = Duration::from_millis(a.timeout_ms.max(1));
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let mut st = TrafficStats {
        name: a.name.clone(),
        kind: a.kind.clone(),
        target: to.to_string(),
        started_at: now_rfc3339(),
        ..Default::default()
    };
    write_stats(&a.stats, &mut st)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.stats.display()))?;
    let mut http = HttpClient::new(to, &a.path, timeout);
    let mut id: u16 = rand::random();
    let mut next = Instant::now();
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let t0 = Instant::now();
        let o = match a.kind.as_str() {
            "http" => http.get_once(),
            "tcp_connect" => tcp_connect_once(to, timeout),
            _ => {
                id = id.wrapping_add(1);
                dns_once(to, &a.query, id, timeout)
            }
        };
        st.record(&o);
        if let Err(e) = write_stats(&a.stats, &mut st) {
            eprintln!("netlab traffic {}: cannot write stats: {e}", a.name);
        }
        if a.count > 0 && st.sent >= a.count {
            return Ok(());
        }
        next = (t0 + interval).max(Instant::now());
    }
}

fn role(name: &str) -> String {
    format!("traffic:{name}")
}

impl Lab {
    /// Adds generator definitions (a scenario's `[[traffic]]`); a definition with the name
    /// of a known one replaces it.
    pub fn register_traffic(&mut self, specs: &[TrafficSpec]) -> Result<()> {
        crate::traffic::validate_specs(self.topology(), specs).map_err(LabError::Usage)?;
        for s in resolve_names(specs) {
            match self.st.traffic.iter_mut().find(|x| x.name == s.name) {
                Some(x) => *x = s,
                None => self.st.traffic.push(s),
            }
        }
        self.save()
    }

    fn traffic_dir(&self) -> PathBuf {
        self.run_dir().join("traffic")
    }

    fn traffic_proc(&self, name: &str) -> Option<&sys::ProcRecord> {
        let r = role(name);
        self.st.processes.iter().find(|p| p.role == r)
    }

    /// Starts generators (all known ones with `names` empty). Returns the names started;
    /// running ones are left alone.
    pub fn traffic_start(&mut self, names: &[String]) -> Result<Vec<String>> {
        if self.st.traffic.is_empty() {
            return Err(LabError::Usage(
                "the lab knows no traffic generators; add [[traffic]] to the scenario and `netlab inject` it (or `up` from it)".into(),
            ));
        }
        for n in names {
            if !self.st.traffic.iter().any(|s| &s.name == n) {
                let known: Vec<&str> = self.st.traffic.iter().map(|s| s.name.as_str()).collect();
                return Err(LabError::Usage(format!(
                    "no traffic generator `{n}` (known: {})",
                    known.join(", ")
                )));
            }
        }
        let chosen: Vec<TrafficSpec> = self
            .st
            .traffic
            .iter()
            .filter(|s| names.is_empty() || names.contains(&s.name))
            .cloned()
            .collect();
        std::fs::create_dir_all(self.traffic_dir()).map_err(|e| {
            LabError::Runtime(format!(
                "cannot create {}: {e}",
                self.traffic_dir().display()
            ))
        })?;
        let mut started = Vec::new();
        for s in chosen {
            if let Some(p) = self.traffic_proc(&s.name).cloned() {
                if sys::is_alive(&p) {
                    crate::lab::progress(&format!(
                        "traffic {} is already running (pid {})",
                        s.name, p.pid
                    ));
                    continue;
                }
                self.stop_tracked(p.pid, p.start_time);
            }
            let vm = self.vm(&s.vm)?.clone();
            let target = match &s.target {
                Some(t) => {
                    parse_target(t, (s.kind == "dns").then_some(53)).map_err(LabError::Usage)?
                }
                None => SocketAddrV4::new(vm.gateway, 53),
            };
            let stats = self.traffic_dir().join(format!("{}.json", s.name));
            let _ = std::fs::remove_file(&stats);
            let args = TrafficArgs {
                name: s.name.clone(),
                kind: s.kind.clone(),
                target: target.to_string(),
                interval_ms: s.interval_ms,
                timeout_ms: s.timeout(),
                path: s.path.clone().unwrap_or_else(|| "/".into()),
                query: s.query.clone().unwrap_or_else(|| DEFAULT_QUERY.into()),
                stats: stats.clone(),
                count: 0,
            };
            let mut argv = vec!["__traffic".to_string()];
            argv.extend(args.to_args());
            let exe = self.exe.display().to_string();
            let p = self.spawn(&vm.ns, &s.vm, &role(&s.name), &exe, &argv)?;
            let t0 = Instant::now();
            while !stats.exists() {
                if !sys::is_alive(&p) || t0.elapsed() > Duration::from_secs(3) {
                    let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                    self.stop_tracked(p.pid, p.start_time);
                    self.save()?;
                    return Err(LabError::Runtime(format!(
                        "traffic generator {} did not start: {}",
                        s.name,
                        log.trim().lines().last().unwrap_or("no output")
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            crate::lab::progress(&format!(
                "traffic {}: {} from {} to {target} every {} ms (pid {})",
                s.name, s.kind, s.vm, s.interval_ms, p.pid
            ));
            started.push(s.name.clone());
        }
        Ok(started)
    }

    /// Stops generators by pid (all with `names` empty). Returns the names stopped. Their
    /// counters stay readable with `traffic status` until the next start or `down`.
    pub fn traffic_stop(&mut self, names: &[String]) -> Result<Vec<String>> {
        let procs: Vec<(String, i32, u64)> = self
            .st
            .processes
            .iter()
            .filter_map(|p| {
                let n = p.role.strip_prefix("traffic:")?;
                (names.is_empty() || names.iter().any(|x| x == n))
                    .then(|| (n.to_string(), p.pid, p.start_time))
            })
            .collect();
        let mut stopped = Vec::new();
        for (n, pid, st) in procs {
            self.stop_tracked(pid, st);
            stopped.push(n);
        }
        self.save()?;
        Ok(stopped)
    }

    /// `traffic status` as JSON: every known generator with its counters.
    pub fn traffic_status_json(&self) -> serde_json::Value {
        let gens: Vec<serde_json::Value> = self
            .st
            .traffic
            .iter()
            .map(|s| {
                let p = self.traffic_proc(&s.name);
                let stats: Option<TrafficStats> = std::fs::read(
                    self.traffic_dir().join(format!("{}.json", s.name)),
                )
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
                let st = stats.clone().unwrap_or_default();
                let target = match &s.target {
                    Some(t) => t.clone(),
                    None => self
                        .vm(&s.vm)
                        .map(|v| format!("{}:53", v.gateway))
                        .unwrap_or_default(),
                };
                serde_json::json!({
                    "name": s.name,
                    "vm": s.vm,
                    "kind": s.kind,
                    "target": target,
                    "path": (s.kind == "http").then(|| s.path.clone().unwrap_or_else(|| "/".into())),
                    "query": (s.kind == "dns").then(|| s.query.clone().unwrap_or_else(|| DEFAULT_QUERY.into())),
                    "interval_ms": s.interval_ms,
                    "timeout_ms": s.timeout(),
                    "running": p.is_some_and(sys::is_alive),
                    "pid": p.map(|p| p.pid),
                    "sent": st.sent,
                    "ok": st.ok,
                    "reset": st.reset,
                    "timed_out": st.timed_out,
                    "failed": st.failed,
                    "response_ms": (st.ok > 0).then(|| serde_json::json!({
                        "min": st.min_ms, "max": st.max_ms, "mean": st.mean_ms(),
                    })),
                    "last_error": st.last_error,
                    "started_at": stats.as_ref().map(|x| x.started_at.clone()),
                    "updated_at": stats.as_ref().map(|x| x.updated_at.clone()),
                })
            })
            .collect();
        serde_json::json!({
            "schema_version": 1,
            "tool": "netlab",
            "tool_version": env!("CARGO_PKG_VERSION"),
            "run": self.st.run,
            "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "generators": gens,
        })
    }

    /// `traffic status` as text.
    pub fn traffic_status_text(&self) -> String {
        let j = self.traffic_status_json();
        let mut s = String::new();
        let gens = j["generators"].as_array().cloned().unwrap_or_default();
        if gens.is_empty() {
            return "traffic: no generators defined\n".into();
        }
        for g in gens {
            let rt = if g["response_ms"].is_null() {
                String::new()
            } else {
                format!(
                    "  time min {:.1} / max {:.1} ms",
                    g["response_ms"]["min"].as_f64().unwrap_or(0.0),
                    g["response_ms"]["max"].as_f64().unwrap_or(0.0)
                )
            };
            s.push_str(&format!(
                "{:<14} {:<11} {:<10} -> {:<20} every {:>5} ms  {:<7}  sent {} ok {} reset {} timed_out {} failed {}{rt}\n",
                g["name"].as_str().unwrap_or(""),
                g["kind"].as_str().unwrap_or(""),
                g["vm"].as_str().unwrap_or(""),
                g["target"].as_str().unwrap_or(""),
                g["interval_ms"],
                if g["running"].as_bool() == Some(true) { "running" } else { "stopped" },
                g["sent"], g["ok"], g["reset"], g["timed_out"], g["failed"],
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn topo() -> Topology {
        crate::scenario::Scenario::from_toml_str(crate::scenario::tests::BASE)
            .unwrap()
            .topology
    }

    fn spec(kind: &str, target: Option<&str>) -> TrafficSpec {
        TrafficSpec {
            vm: "source-vm".into(),
            kind: kind.into(),
            target: target.map(str::to_string),
            interval_ms: 300,
            ..Default::default()
        }
    }

    #[test]
    fn specs_are_validated() {
        let t = topo();
        let ok = vec![
            spec("http", Some("198.18.1.5:8080")),
            spec("tcp_connect", Some("198.18.1.5:9999")),
            spec("dns", None),
            spec("dns", Some("198.18.1.5")),
        ];
        validate_specs(&t, &ok).unwrap();
        let names: Vec<String> = resolve_names(&ok).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["http-1", "tcp_connect-2", "dns-3", "dns-4"]);
        let bad: Vec<(TrafficSpec, &str)> = vec![
            (spec("http", None), "needs a target"),
            (spec("http", Some("10.0.0.5:80")), "outside 198.18.0.0/15"),
            (spec("http", Some("198.18.1.5")), "IPv4 address and port"),
            (spec("http", Some("198.18.1.5:0")), "port 0"),
            (spec("ftp", Some("198.18.1.5:21")), "not one of"),
            (
                TrafficSpec {
                    vm: "nope".into(),
                    ..spec("dns", None)
                },
                "does not exist",
            ),
            (
                TrafficSpec {
                    interval_ms: 1,
                    ..spec("dns", None)
                },
                "interval_ms",
            ),
            (
                TrafficSpec {
                    path: Some("no-slash".into()),
                    ..spec("http", Some("198.18.1.5:80"))
                },
                "path",
            ),
            (
                TrafficSpec {
                    query: Some("bad name!".into()),
                    ..spec("dns", None)
                },
                "not a DNS name",
            ),
            (
                TrafficSpec {
                    name: "has space".into(),
                    ..spec("dns", None)
                },
                "name must be",
            ),
        ];
        for (s, want) in bad {
            let e = validate_specs(&t, std::slice::from_ref(&s)).unwrap_err();
            assert!(e.contains(want), "{s:?}: {e}");
        }
        let twice = vec![
            TrafficSpec {
                name: "x".into(),
                ..spec("dns", None)
            },
            TrafficSpec {
                name: "x".into(),
                ..spec("dns", None)
            },
        ];
        assert!(validate_specs(&t, &twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn stats_accumulate() {
        let mut st = TrafficStats::default();
        st.record(&Outcome::Ok(10.0));
        st.record(&Outcome::Ok(1500.0));
        st.record(&Outcome::Reset("connect: refused".into()));
        st.record(&Outcome::TimedOut);
        st.record(&Outcome::Failed("HTTP 500".into()));
        assert_eq!(
            (st.sent, st.ok, st.reset, st.timed_out, st.failed),
            (5, 2, 1, 1, 1)
        );
        assert_eq!((st.min_ms, st.max_ms), (Some(10.0), Some(1500.0)));
        assert_eq!(st.mean_ms(), Some(755.0));
        assert_eq!(st.last_error.as_deref(), Some("HTTP 500"));
    }

    #[test]
    fn dns_query_encoding_and_matching() {
        let q = dns_query(0x1234, "app.netlab.internal.");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..16], b"\x03app");
        assert_eq!(&q[q.len() - 5..], &[0, 0, 1, 0, 1]);
        let mut r = q.clone();
        r[2] |= 0x80;
        assert!(is_dns_response(&r, 0x1234));
        assert!(!is_dns_response(&q, 0x1234), "a query is not a response");
        assert!(!is_dns_response(&r, 0x1235));
        assert!(!is_dns_response(&r[..5], 0x1234));
    }

    #[test]
    fn tcp_connect_ok_and_reset_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        assert!(matches!(
            tcp_connect_once(open, Duration::from_secs(2)),
            Outcome::Ok(_)
        ));
        drop(l);
        // The port just closed: the kernel answers RST.
        assert!(matches!(
            tcp_connect_once(open, Duration::from_secs(2)),
            Outcome::Reset(_)
        ));
    }

    #[test]
    fn dns_answered_unanswered_and_refused_on_loopback() {
        // A responder that answers every query with the same id and QR set.
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 512];
            while let Ok((n, from)) = srv.recv_from(&mut b) {
                let mut r = b[..n].to_vec();
                r[2] |= 0x80;
                let _ = srv.send_to(&r, from);
            }
        });
        assert!(matches!(
            dns_once(addr, "a.b", 7, Duration::from_secs(2)),
            Outcome::Ok(_)
        ));
        // A socket that never answers: timed out after the timeout.
        let mute = UdpSocket::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        assert_eq!(
            dns_once(
                mute.local_addr().unwrap(),
                "a.b",
                8,
                Duration::from_millis(200)
            ),
            Outcome::TimedOut
        );
        assert!(t0.elapsed() >= Duration::from_millis(200));
        // Nothing bound: ICMP port unreachable.
        let gone = mute.local_addr().unwrap();
        drop(mute);
        assert!(matches!(
            dns_once(gone, "a.b", 9, Duration::from_secs(2)),
            Outcome::Failed(m) if m.contains("unreachable")
        ));
    }

    /// A tiny HTTP server: answers every request on a connection; the second is slow; the
    /// third connection gets a 503.
    fn http_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut n = 0;
            for (conn_no, c) in l.incoming().enumerate() {
                let Ok(mut s) = c else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while crate::serve::header_end(&buf).is_none() {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    let Some(end) = crate::serve::header_end(&buf) else {
                        break;
                    };
                    buf.drain(..end);
                    n += 1;
                    if n == 2 {
                        std::thread::sleep(Duration::from_millis(300));
                    }
                    let code = if conn_no >= 1 { "503 Busy" } else { "200 OK" };
                    let body = format!("r{n}");
                    let _ = s.write_all(
                        format!(
                            "HTTP/1.1 {code}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                    if n == 3 {
                        // Close the kept-alive connection: the client must reconnect.
                        break;
                    }
                }
            }
        });
        addr
    }

    #[test]
    fn http_keep_alive_slow_reconnect_and_errors() {
        let addr = http_server();
        let mut c = HttpClient::new(addr, "/", Duration::from_secs(3));
        let Outcome::Ok(fast) = c.get_once() else {
            panic!("first request")
        };
        let Outcome::Ok(slow) = c.get_once() else {
            panic!("second request")
        };
        assert!(slow >= 300.0 && fast < 300.0, "{fast} {slow}");
        assert!(matches!(c.get_once(), Outcome::Ok(_)));
        // The server closed the connection after the third response; the fourth request
        // goes on a new connection, which this server answers with 503.
        assert_eq!(c.get_once(), Outcome::Failed("HTTP 503".into()));
        // Timeout: a listener that never answers.
        let mute = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = HttpClient::new(mute.local_addr().unwrap(), "/", Duration::from_millis(200));
        assert_eq!(c.get_once(), Outcome::TimedOut);
        // Refused: nothing listens.
        let gone = mute.local_addr().unwrap();
        drop(mute);
        let mut c = HttpClient::new(gone, "/", Duration::from_secs(1));
        assert!(matches!(c.get_once(), Outcome::Reset(_)));
    }

    #[test]
    fn generator_runs_and_writes_stats() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stats = dir.path().join("g.json");
        let a = TrafficArgs {
            name: "g".into(),
            kind: "tcp_connect".into(),
            target: l.local_addr().unwrap().to_string(),
            interval_ms: 20,
            timeout_ms: 500,
            path: "/".into(),
            query: DEFAULT_QUERY.into(),
            stats: stats.clone(),
            count: 3,
        };
        let t0 = Instant::now();
        run_traffic(&a).unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(40),
            "paced by the interval"
        );
        let st: TrafficStats = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        assert_eq!((st.sent, st.ok), (3, 3));
        let bad = TrafficArgs {
            target: "10.1.2.3:80".into(),
            ..a
        };
        assert!(run_traffic(&bad)
            .unwrap_err()
            .to_string()
            .contains("outside"));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,60}", b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_target(&s, Some(53));
            let _ = valid_query(&s);
            let _ = is_dns_response(&b, 1);
            let q = dns_query(1, &s);
            prop_assert!(q.len() >= 17);
        }
    }
}
