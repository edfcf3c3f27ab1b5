//! Parsers for the measurement tools' client output: qperf `tcp_lat` and iperf2 TCP
//! client reports. They never panic; anything they cannot read is a [`ParseError`].

use std::sync::OnceLock;

use regex::Regex;

/// Why a tool's output could not be read as a measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// The output was empty.
    #[error("the tool printed nothing")]
    Empty,
    /// The tool said it could not connect.
    #[error("the tool could not connect: {0}")]
    ConnectFailed(String),
    /// No latency line (`latency = N unit`) was found.
    #[error("no qperf latency line found in the output")]
    NoLatency,
    /// No iperf2 bandwidth report line was found.
    #[error("no iperf2 bandwidth report found in the output")]
    NoRate,
    /// A number was unreadable or not finite / negative.
    #[error("unreadable number `{0}` in the output")]
    BadNumber(String),
    /// A unit the parser does not know.
    #[error("unknown unit `{0}` in the output")]
    UnknownUnit(String),
}

fn latency_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?m)^\s*latency\s*=\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*([A-Za-z]+)\s*$")
            .expect("static regex")
    })
}

fn rate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?m)^\[\s*(SUM[^\]]*|[0-9]+)\]\s+([0-9]+(?:\.[0-9]+)?)\s*-\s*([0-9]+(?:\.[0-9]+)?)\s+sec\s+([0-9]+(?:\.[0-9]+)?)\s+([A-Za-z]*Bytes)\s+([0-9]+(?:\.[0-9]+)?)\s+([A-Za-z]*bits)/sec\b",
        )
        .expect("static regex")
    })
}

fn number(s: &str) -> Result<f64, ParseError> {
    let cleaned: String = s.chars().filter(|c| *c != ',').collect();
    match cleaned.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ParseError::BadNumber(s.chars().take(40).collect())),
    }
}

fn connect_failure(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("failed to connect")
                || l.contains("connect failed")
                || l.contains("connection refused")
                || l.contains("no route to host")
                || l.contains("network is unreachable")
        })
        .map(|l| l.chars().take(200).collect())
}

/// Reads qperf `tcp_lat` output and returns the latency in microseconds. Units `ns`, `us`,
/// `ms` and `sec`/`s` are accepted (qperf scales its unit to the value).
pub fn parse_qperf_latency_us(text: &str) -> Result<f64, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let Some(c) = latency_re().captures(text) else {
        return Err(match connect_failure(text) {
            Some(l) => ParseError::ConnectFailed(l),
            None => ParseError::NoLatency,
        });
    };
    let value = number(&c[1])?;
    let factor = match &c[2] {
        "ns" => 0.001,
        "us" => 1.0,
        "ms" => 1_000.0,
        "s" | "sec" => 1_000_000.0,
        other => return Err(ParseError::UnknownUnit(other.chars().take(20).collect())),
    };
    Ok(value * factor)
}

/// One iperf2 bandwidth report line.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLine {
    /// The stream id in brackets (`1`, `SUM`).
    pub id: String,
    /// `[SUM]` (all streams) rather than one stream.
    pub sum: bool,
    /// Interval start, seconds.
    pub start: f64,
    /// Interval end, seconds.
    pub end: f64,
    /// Rate in Gbit/s.
    pub gbps: f64,
}

/// Every bandwidth report line of iperf2 client output, in order.
pub fn iperf2_rate_lines(text: &str) -> Result<Vec<RateLine>, ParseError> {
    let mut out = Vec::new();
    for c in rate_re().captures_iter(text) {
        let start = number(&c[2])?;
        let end = number(&c[3])?;
        let value = number(&c[6])?;
        let factor = match &c[7] {
            "bits" => 1e-9,
            "Kbits" => 1e-6,
            "Mbits" => 1e-3,
            "Gbits" => 1.0,
            "Tbits" => 1e3,
            other => return Err(ParseError::UnknownUnit(other.chars().take(20).collect())),
        };
        out.push(RateLine {
            id: c[1].trim().to_string(),
            sum: c[1].starts_with("SUM"),
            start,
            end,
            gbps: value * factor,
        });
    }
    Ok(out)
}

/// Reads iperf2 TCP client output (single stream, `-P N` with its `[SUM]` line, per-interval
/// `-i` reports, 1- or 4-decimal intervals, enhanced `-e` columns, any `-f` unit) and returns
/// the whole-run rate in Gbit/s: the `[SUM]` line covering the longest interval when there is
/// one, else the single stream's line covering the longest interval. With several streams
/// and no `[SUM]` line (iperf2 omits it when streams finish apart), the per-stream
/// whole-run rates are added.
pub fn parse_iperf2_gbps(text: &str) -> Result<f64, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let lines = iperf2_rate_lines(text)?;
    if lines.is_empty() {
        return Err(match connect_failure(text) {
            Some(l) => ParseError::ConnectFailed(l),
            None => ParseError::NoRate,
        });
    }
    let longest = |sum: bool| {
        lines
            .iter()
            .filter(|l| l.sum == sum)
            .fold(None::<&RateLine>, |best, l| match best {
                Some(b) if (b.end - b.start) > (l.end - l.start) => Some(b),
                _ => Some(l),
            })
    };
    if let Some(s) = longest(true) {
        return Ok(s.gbps);
    }
    // No [SUM]: add each stream's longest report.
    let mut ids: Vec<&str> = Vec::new();
    for l in &lines {
        if !ids.contains(&l.id.as_str()) {
            ids.push(&l.id);
        }
    }
    let mut total = 0.0;
    for id in ids {
        let best =
            lines
                .iter()
                .filter(|l| l.id == id)
                .fold(None::<&RateLine>, |best, l| match best {
                    Some(b) if (b.end - b.start) > (l.end - l.start) => Some(b),
                    _ => Some(l),
                });
        total += best.map(|l| l.gbps).unwrap_or(0.0);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn qperf_recorded_forms() {
        assert!(close(
            parse_qperf_latency_us(&fixture("qperf_us.txt")).unwrap(),
            42.5
        ));
        assert!(close(
            parse_qperf_latency_us(&fixture("qperf_lat_bw.txt")).unwrap(),
            7.25
        ));
        assert!(close(
            parse_qperf_latency_us(&fixture("qperf_verbose.txt")).unwrap(),
            7.43
        ));
    }

    #[test]
    fn qperf_units() {
        let f = |u: &str, v: &str| {
            parse_qperf_latency_us(&format!("tcp_lat:\n    latency  =  {v} {u}\n"))
        };
        assert!(close(f("ns", "950").unwrap(), 0.95));
        assert!(close(f("us", "139").unwrap(), 139.0));
        assert!(close(f("ms", "25.1").unwrap(), 25_100.0));
        assert!(close(f("sec", "1.2").unwrap(), 1_200_000.0));
        assert!(close(f("us", "1,234").unwrap(), 1234.0));
        assert_eq!(
            f("parsecs", "1"),
            Err(ParseError::UnknownUnit("parsecs".into()))
        );
        assert!(close(
            parse_qperf_latency_us(&fixture("qperf_ms.txt")).unwrap(),
            25_300.0
        ));
        assert!(close(
            parse_qperf_latency_us(&fixture("qperf_ns.txt")).unwrap(),
            0.987
        ));
    }

    #[test]
    fn qperf_failures() {
        assert_eq!(parse_qperf_latency_us(""), Err(ParseError::Empty));
        assert_eq!(
            parse_qperf_latency_us("tcp_lat:\n"),
            Err(ParseError::NoLatency)
        );
        assert!(matches!(
            parse_qperf_latency_us("198.18.1.5: failed to connect\n"),
            Err(ParseError::ConnectFailed(_))
        ));
        // Truncated mid-line: no unit.
        assert_eq!(
            parse_qperf_latency_us("tcp_lat:\n    latency  =  42."),
            Err(ParseError::NoLatency)
        );
    }

    #[test]
    fn iperf2_recorded_forms() {
        let g = |f: &str| parse_iperf2_gbps(&fixture(f)).unwrap();
        assert!(close(g("iperf2_sum_gbits.txt"), 47.2));
        assert!(close(g("iperf2_single.txt"), 20.8));
        assert!(close(g("iperf2_enhanced.txt"), 23.5));
        assert!(close(g("iperf2_single_mbits.txt"), 11.434));
        assert!(close(g("iperf2_sum_kbits.txt"), 43.911751));
        assert!(close(g("iperf2_single_bits.txt"), 23.206320137));
        assert!(close(g("iperf2_legacy_interval.txt"), 0.943));
        assert!(close(g("iperf2_intervals.txt"), 0.00478));
        assert!(close(g("iperf2_nosum.txt"), 0.0025 + 0.0024));
    }

    #[test]
    fn iperf2_failures() {
        assert!(matches!(
            parse_iperf2_gbps(&fixture("iperf2_refused.txt")),
            Err(ParseError::ConnectFailed(_))
        ));
        assert_eq!(parse_iperf2_gbps(""), Err(ParseError::Empty));
        assert_eq!(
            parse_iperf2_gbps("garbage\n\x00\x01"),
            Err(ParseError::NoRate)
        );
        let full = fixture("iperf2_single.txt");
        let cut = &full[..full.len() - 20];
        assert!(parse_iperf2_gbps(cut).is_err());
        assert!(matches!(
            parse_iperf2_gbps("[  1] 0.0-1.0 sec  1 GBytes  1 Pbits/sec\n"),
            Err(ParseError::NoRate) | Err(ParseError::UnknownUnit(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,400}") {
            let _ = parse_qperf_latency_us(&s);
            let _ = parse_iperf2_gbps(&s);
        }

        #[test]
        fn never_panics_on_near_misses(
            id in "(SUM|[0-9]{1,3}|SUM-2)",
            a in "[0-9.]{0,8}", b in "[0-9.]{0,8}", v in "[0-9.,]{0,12}",
            u in "(bits|Kbits|Mbits|Gbits|Xbits|)", lu in "(ns|us|ms|sec|s|x|)",
        ) {
            let line = format!("[{id}] {a}-{b} sec  1.0 MBytes  {v} {u}/sec\n");
            if let Ok(g) = parse_iperf2_gbps(&line) { proptest::prop_assert!(g.is_finite() && g >= 0.0); }
            let l = format!("tcp_lat:\n latency = {v} {lu}\n");
            if let Ok(x) = parse_qperf_latency_us(&l) { proptest::prop_assert!(x.is_finite() && x >= 0.0); }
        }
    }
}
