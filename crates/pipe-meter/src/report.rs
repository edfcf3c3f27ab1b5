//! The console summary of a result artifact.

use std::path::Path;

use serde_json::Value;

fn delta_text(delta: Option<f64>, higher: &str, lower: &str) -> String {
    match delta {
        Some(d) => format!(
            "  ← {d:+.1}% vs baseline ({})",
            if d >= 0.0 { higher } else { lower }
        ),
        None => String::new(),
    }
}

/// Renders the summary of a result artifact body in the shape of the issue.
pub fn console_summary(result: &Value, result_path: &Path) -> String {
    let md = &result["test_metadata"];
    let r = &result["results"];
    let c = &result["comparison"];
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let bar = "=====================================";
    let mut out = String::new();
    out.push_str(&format!(
        "{bar}\n=== Agentic Pipe Meter — Results ===\n{bar}\n"
    ));
    out.push_str(&format!("Session:    {}\n", s(&md["session_id"])));
    out.push_str(&format!(
        "Source:     {}  →  {}\n",
        s(&md["source_ip"]),
        s(&md["destination_ip"])
    ));
    out.push_str(&format!(
        "Test:       {}  |  {} iterations\n",
        s(&md["test_type"]),
        md["iterations"].as_u64().unwrap_or(0)
    ));
    let status = result["status"].as_str().unwrap_or("unknown");
    let status_txt = match status {
        "success" => "SUCCESS".to_string(),
        other => other.to_ascii_uppercase(),
    };
    out.push_str(&format!("Status:     {status_txt}\n"));
    if let Some(e) = result["error"].as_str() {
        out.push_str(&format!("Reason:     {e}\n"));
    }
    out.push('\n');
    let anomaly_note = |a: &Value| a.as_str().map(|a| format!("  [{a}]")).unwrap_or_default();
    if let Some(l) = r["latency_p90"].as_f64() {
        out.push_str(&format!(
            "Latency  (P90):    {l:.1} µs{}{}\n",
            delta_text(c["delta_pct_latency"].as_f64(), "slower", "faster"),
            anomaly_note(&r["latency_anomaly"])
        ));
    }
    if let Some(t) = r["throughput_p90"].as_f64() {
        let t_txt = if t != 0.0 && t < 0.1 {
            format!("{t:.4}")
        } else {
            format!("{t:.2}")
        };
        out.push_str(&format!(
            "Throughput (P90):    {t_txt} Gbps{}{}\n",
            delta_text(c["delta_pct_throughput"].as_f64(), "higher", "lower"),
            anomaly_note(&r["throughput_anomaly"])
        ));
    }
    if let Some(e) = c["error"].as_str() {
        out.push_str(&format!("Baseline:   {e}\n"));
    }
    if let Some(w) = result["expectation"]["within_expectation"].as_bool() {
        out.push_str(&format!(
            "Expected:   {}\n",
            if w {
                "within expectation"
            } else {
                "OUTSIDE expectation (see the expectation block)"
            }
        ));
    }
    out.push('\n');
    let stability = match r["anomaly_type"].as_str() {
        Some(a) => a.to_string(),
        None if r["is_stable"] == Value::Bool(true) => "STABLE".to_string(),
        None => "NOT MEASURED".to_string(),
    };
    out.push_str(&format!("Stability:  {stability}\n"));
    out.push_str(&format!("Audit:      {}\n", result_path.display()));
    let blob = match result["blob"]["url"].as_str() {
        Some(u) if result["blob"]["uploaded"] == true => u.to_string(),
        Some(u) => format!(
            "upload FAILED for {u} ({})",
            result["blob"]["errors"][0]
                .as_str()
                .unwrap_or("see the audit log")
        ),
        None => format!(
            "not uploaded ({})",
            result["blob"]["reason"]
                .as_str()
                .unwrap_or("no storage configured")
        ),
    };
    out.push_str(&format!("Blob:       {blob}\n"));
    out.push_str(&format!("{bar}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summary_shape() {
        let r = json!({
            "status": "success",
            "test_metadata": {"session_id": "pmeter_20260305T051746Z", "source_ip": "10.0.1.4",
                "destination_ip": "10.0.1.5", "test_type": "both", "iterations": 4},
            "results": {"latency_p90": 139.0, "throughput_p90": 1.95, "anomaly_type": null,
                "is_stable": true, "latency_anomaly": null, "throughput_anomaly": null},
            "comparison": {"delta_pct_latency": 2.2, "delta_pct_throughput": -3.0},
            "blob": {"reason": "no storage account configured"},
        });
        let s = console_summary(&r, Path::new("./audit/pmeter_20260305T051746Z_result.json"));
        let expected = "\
=====================================
=== Agentic Pipe Meter — Results ===
=====================================
Session:    pmeter_20260305T051746Z
Source:     10.0.1.4  →  10.0.1.5
Test:       both  |  4 iterations
Status:     SUCCESS

Latency  (P90):    139.0 µs  ← +2.2% vs baseline (slower)
Throughput (P90):    1.95 Gbps  ← -3.0% vs baseline (lower)

Stability:  STABLE
Audit:      ./audit/pmeter_20260305T051746Z_result.json
Blob:       not uploaded (no storage account configured)
=====================================
";
        assert_eq!(s, expected);
    }

    #[test]
    fn anomaly_named_on_metric() {
        let r = json!({
            "status": "success",
            "test_metadata": {"session_id": "s", "source_ip": "a", "destination_ip": "b", "test_type": "throughput", "iterations": 3},
            "results": {"throughput_p90": 0.0048, "anomaly_type": "CONNECTIVITY_DROP", "throughput_anomaly": "CONNECTIVITY_DROP"},
            "comparison": {},
        });
        let s = console_summary(&r, Path::new("x"));
        assert!(
            s.contains("Throughput (P90):    0.0048 Gbps  [CONNECTIVITY_DROP]"),
            "{s}"
        );
        assert!(s.contains("Stability:  CONNECTIVITY_DROP"), "{s}");
    }
}
