//! `pipe-meter history`: past results of one (source, dest) pair from the stored result
//! artifacts (the local audit directory and, when configured, the blob container), as a
//! table and an SVG chart of P90 latency and throughput over time.

use cloud_provider::artifact::ArtifactError;
use serde::Serialize;

use crate::store::{Origin, Sources};

/// One past result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// Session id.
    pub session_id: String,
    /// Run timestamp (RFC 3339).
    pub timestamp: String,
    /// latency / throughput / both.
    pub test_type: String,
    /// Stored as a baseline.
    pub is_baseline: bool,
    /// P90 latency, µs.
    pub latency_p90: Option<f64>,
    /// P90 throughput, Gbit/s.
    pub throughput_p90: Option<f64>,
    /// The anomaly, if any.
    pub anomaly_type: Option<String>,
    /// success / aborted_preflight / failed / interrupted.
    pub status: String,
    /// Where it was read (the local audit directory or the blob container).
    pub origin: Origin,
}

/// What history could read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// Rows, oldest first.
    pub rows: Vec<HistoryRow>,
    /// Artifacts that could not be read (name and reason).
    pub unreadable: Vec<String>,
    /// Artifacts that failed verification against their `.sha256` sidecar (exit 4).
    pub integrity_failures: Vec<String>,
    /// Stores that could not be read (e.g. the blob container could not be listed).
    pub store_errors: Vec<String>,
    /// What was searched (`./audit`, or `./audit + blob:account/container`).
    pub searched: String,
}

/// Reads every `pmeter_*_result.json` in the local audit directory and, when configured,
/// the blob container (one per session, the local copy preferred), keeping those whose
/// source and destination match. Each is verified against its sidecar.
pub fn collect(sources: &Sources<'_>, source: &str, dest: &str) -> Result<History, String> {
    let mut h = History {
        searched: sources.describe(),
        ..History::default()
    };
    let candidates = sources
        .candidates("pmeter", "_result.json", &mut h.store_errors)
        .map_err(|e| e.to_string())?;
    for c in &candidates {
        let a = match sources.load(c) {
            Ok(a) => a,
            Err(e) => {
                let line = format!("{}: {e}", c.name);
                if matches!(e, ArtifactError::Integrity { .. }) {
                    h.integrity_failures.push(line.clone());
                } else if matches!(e, ArtifactError::Backend(_) | ArtifactError::Io { .. }) {
                    h.store_errors.push(line.clone());
                }
                h.unreadable.push(line);
                continue;
            }
        };
        let md = &a.body["test_metadata"];
        if md["source_ip"].as_str() != Some(source) || md["destination_ip"].as_str() != Some(dest) {
            continue;
        }
        let r = &a.body["results"];
        h.rows.push(HistoryRow {
            session_id: a.header.session_id.as_str().to_string(),
            timestamp: md["timestamp"].as_str().unwrap_or_default().to_string(),
            test_type: md["test_type"].as_str().unwrap_or_default().to_string(),
            is_baseline: md["is_baseline"].as_bool().unwrap_or(false),
            latency_p90: r["latency_p90"].as_f64(),
            throughput_p90: r["throughput_p90"].as_f64(),
            anomaly_type: r["anomaly_type"].as_str().map(str::to_string),
            status: a.body["status"].as_str().unwrap_or("unknown").to_string(),
            origin: c.origin,
        });
    }
    h.rows.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then(a.session_id.cmp(&b.session_id))
    });
    Ok(h)
}

impl History {
    /// The exit code of `pipe-meter history`: 4 when an artifact failed verification, 3 when
    /// a store could not be read, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.integrity_failures.is_empty() {
            4
        } else if !self.store_errors.is_empty() {
            3
        } else {
            0
        }
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}"))
        .unwrap_or_else(|| "-".into())
}

/// A fixed-width text table.
pub fn table(h: &History) -> String {
    let mut out = format!(
        "{:<32} {:<25} {:<10} {:>4} {:>14} {:>12} {:<18} {:<18} {}\n",
        "session",
        "timestamp",
        "test",
        "base",
        "lat_p90_us",
        "thr_p90_gbps",
        "anomaly",
        "status",
        "from"
    );
    for r in &h.rows {
        out.push_str(&format!(
            "{:<32} {:<25} {:<10} {:>4} {:>14} {:>12} {:<18} {:<18} {}\n",
            r.session_id,
            r.timestamp,
            r.test_type,
            if r.is_baseline { "yes" } else { "" },
            opt(r.latency_p90, 1),
            opt(r.throughput_p90, 4),
            r.anomaly_type.as_deref().unwrap_or("-"),
            r.status,
            match r.origin {
                Origin::Local => "local",
                Origin::Blob => "blob",
            }
        ));
    }
    out
}

fn polyline(points: &[(usize, f64)], n: usize, x0: f64, y0: f64, w: f64, h: f64) -> String {
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    points
        .iter()
        .map(|(i, v)| {
            let x = if n > 1 {
                x0 + w * (*i as f64) / ((n - 1) as f64)
            } else {
                x0 + w / 2.0
            };
            let y = y0 + h - h * (v / max);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An SVG with two panels: P90 latency (µs) and P90 throughput (Gbit/s) per run.
pub fn svg(h: &History) -> String {
    let n = h.rows.len();
    let lat: Vec<(usize, f64)> = h
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.latency_p90.map(|v| (i, v)))
        .collect();
    let thr: Vec<(usize, f64)> = h
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.throughput_p90.map(|v| (i, v)))
        .collect();
    let max = |p: &[(usize, f64)]| p.iter().map(|x| x.1).fold(0.0_f64, f64::max);
    let mut s = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"720\" height=\"420\" fill=\"white\"/>\n",
    );
    for (title, pts, y0, colour) in [
        (
            format!("P90 latency (µs), max {:.1}", max(&lat)),
            &lat,
            30.0,
            "#c0392b",
        ),
        (
            format!("P90 throughput (Gbps), max {:.4}", max(&thr)),
            &thr,
            230.0,
            "#2471a3",
        ),
    ] {
        s.push_str(&format!(
            "<text x=\"60\" y=\"{:.0}\">{}</text>\n",
            y0 - 8.0,
            title
        ));
        s.push_str(&format!(
            "<rect x=\"60\" y=\"{y0:.0}\" width=\"620\" height=\"150\" fill=\"none\" stroke=\"#999\"/>\n"
        ));
        if !pts.is_empty() {
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\n",
                polyline(pts, n, 60.0, y0, 620.0, 150.0)
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"60\" y=\"410\">{n} runs, oldest left</text>\n</svg>\n"
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_svg() {
        let h = History {
            rows: vec![
                HistoryRow {
                    session_id: "pmeter_a".into(),
                    timestamp: "2026-01-01T00:00:00Z".into(),
                    test_type: "both".into(),
                    is_baseline: true,
                    latency_p90: Some(10.0),
                    throughput_p90: Some(1.0),
                    anomaly_type: None,
                    status: "success".into(),
                    origin: Origin::Local,
                },
                HistoryRow {
                    session_id: "pmeter_b".into(),
                    timestamp: "2026-01-02T00:00:00Z".into(),
                    test_type: "both".into(),
                    is_baseline: false,
                    latency_p90: Some(20.0),
                    throughput_p90: Some(0.5),
                    anomaly_type: Some("HIGH_VARIANCE".into()),
                    status: "success".into(),
                    origin: Origin::Local,
                },
            ],
            ..History::default()
        };
        let t = table(&h);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("HIGH_VARIANCE"));
        let s = svg(&h);
        assert!(s.contains("points=\"60.0,105.0 680.0,30.0\""), "{s}");
        assert!(s.contains("points=\"60.0,230.0 680.0,305.0\""), "{s}");
    }
}
