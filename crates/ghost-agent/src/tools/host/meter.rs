//! `run_pipe_meter`: latency (qperf `tcp_lat`) and throughput (iperf2) from the source VM
//! to the destination VM, judged against a baseline when pipe-meter compared one, otherwise
//! against the expectations table (absolute values: a stable 5 Mbit/s is still low).

use std::path::{Path, PathBuf};

use cloud_provider::config::FlagOverrides;
use cloud_provider::provider::CloudProvider;
use cloud_provider::remote::{ssh_target, VmAccess};
use pipe_meter::pipeline::{LATENCY_TOLERANCE, THROUGHPUT_TOLERANCE};
use pipe_meter::{run_pipe_meter, PipeConfig, RunOptions, Status};
use safety_shell::Target;
use serde_json::{json, Value};

use super::{artifact_ref, audit_id_in, Args};
use crate::model::{Denial, Expectations, Finding, Layer, Severity, ToolResult};
use crate::tools::{Tool, ToolContext};

/// `run_pipe_meter {test_type?, iterations?, duration?, baseline_id?}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunPipeMeter;

impl Tool for RunPipeMeter {
    fn name(&self) -> &'static str {
        "run_pipe_meter"
    }

    fn description(&self) -> &'static str {
        "Measure latency (qperf tcp_lat, half the round trip) and/or throughput (iperf2) from \
         the source VM to the destination VM. Judged against the baseline when baseline_id is \
         given (a pipe-meter baseline session), otherwise against the expectation table \
         (round trip under the maximum latency, throughput at least the minimum). Findings: \
         latency_high, throughput_low, high_variance, connectivity_drop. Use it first for a \
         slow/latency/throughput symptom; keep iterations and duration small."
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "test_type": {"type": "string", "enum": ["latency", "throughput", "both"], "default": "both"},
                "iterations": {"type": "integer", "minimum": 1, "maximum": 100},
                "duration": {"type": "integer", "minimum": 1, "maximum": 600, "description": "seconds per iperf2 run"},
                "baseline_id": {"type": "string", "description": "pipe-meter baseline session id (pmeter_...)"}
            },
            "additionalProperties": false
        })
    }

    fn call(&self, ctx: &ToolContext, args: &Value) -> ToolResult {
        match parse_args(args) {
            Ok((test_type, iterations, duration, baseline)) => {
                run(ctx, test_type, iterations, duration, baseline)
            }
            Err(e) => ToolResult::failed(e),
        }
    }
}

type MeterArgs<'a> = (&'static str, Option<u64>, Option<u64>, Option<&'a str>);

fn parse_args(args: &Value) -> Result<MeterArgs<'_>, String> {
    let a = Args::new(
        "run_pipe_meter",
        args,
        &["test_type", "iterations", "duration", "baseline_id"],
    )?;
    Ok((
        a.opt_choice("test_type", &["latency", "throughput", "both"])?
            .unwrap_or("both"),
        a.opt_int("iterations", 1, 100)?,
        a.opt_int("duration", 1, 600)?,
        a.opt_session_id("baseline_id")?,
    ))
}

fn run(
    ctx: &ToolContext,
    test_type: &str,
    iterations: Option<u64>,
    duration: Option<u64>,
    baseline: Option<&str>,
) -> ToolResult {
    if let Err(e) = std::fs::create_dir_all(&ctx.session_dir) {
        return ToolResult::failed(format!(
            "cannot create the session directory {}: {e}",
            ctx.session_dir.display()
        ));
    }
    let mut notes = Vec::new();
    if let Some(b) = baseline {
        match import_baseline(ctx, b) {
            Ok(Some(from)) => notes.push(format!("baseline {b} read from {}", from.display())),
            Ok(None) => {}
            Err(e) => notes.push(e),
        }
    }
    let mut flags = FlagOverrides::default();
    flags
        .set("TEST_TYPE", Some(test_type))
        .set("ITERATIONS", iterations.map(|n| n.to_string()))
        .set("DURATION", duration.map(|n| n.to_string()))
        .set("BASELINE_SESSION", baseline)
        .set("AUDIT_DIR", Some(ctx.session_dir.display().to_string()))
        .set("IS_BASELINE", Some("false"));
    let cfg = match PipeConfig::resolve(&ctx.settings, &flags) {
        Ok(c) => c,
        Err(e) => return ToolResult::failed(format!("run_pipe_meter cannot be configured: {e}")),
    };
    let source = ctx.source_vm();
    let dest = ctx.dest_vm();
    let targets = match (target_of(ctx, &source), target_of(ctx, &dest)) {
        // The SSH targets pipe-meter would build from the environment itself: let it, so it
        // shares one SSH connection per VM for the run.
        (Ok(Some(Target::Ssh(s))), Ok(Some(Target::Ssh(d))))
            if ssh_target(&cfg.env, &cfg.env.source, &source).ok().as_ref() == Some(&s)
                && ssh_target(&cfg.env, &cfg.env.dest, &dest).ok().as_ref() == Some(&d) =>
        {
            None
        }
        (Ok(Some(s)), Ok(Some(d))) => Some((s, d)),
        (Ok(None), Ok(None)) => None,
        (Err(e), _) | (_, Err(e)) => return ToolResult::failed(e),
        _ => {
            return ToolResult::failed(format!(
                "run_pipe_meter needs the same kind of access to {source} and {dest}; register both VMs (SSH or namespace) or neither"
            ))
        }
    };
    let provider: Option<&dyn CloudProvider> = ctx.azure.as_deref().map(|a| a as _);
    let opts = RunOptions {
        targets,
        cancel: ctx.cancel.clone(),
        now: chrono::Utc::now(),
        ..RunOptions::default()
    };
    let out = match run_pipe_meter(&cfg, &ctx.gate, provider, opts) {
        Ok(o) => o,
        Err(e) => return ToolResult::failed(format!("run_pipe_meter failed: {e}")),
    };
    let mut artifacts = Vec::new();
    for name in &out.artifacts {
        let kind = name
            .strip_prefix(out.session_id.as_str())
            .and_then(|r| r.strip_prefix('_'))
            .and_then(|r| r.strip_suffix(".json"))
            .unwrap_or("artifact");
        match artifact_ref(&format!("pmeter_{kind}"), &ctx.session_dir.join(name)) {
            Ok(a) => artifacts.push(a),
            Err(e) => notes.push(e),
        }
    }
    let error = out.result["error"].as_str().map(str::to_string);
    match out.status {
        Status::AbortedPreflight => {
            let why = error.unwrap_or_else(|| "an operator denied a gated action".into());
            let mut r = ToolResult::failed(format!("run_pipe_meter stopped: {why}"));
            r.denials.push(Denial {
                command: "pipe-meter measurement (qperf/iperf2 servers and clients)".into(),
                audit_id: audit_id_in(&why),
                reason: why,
            });
            r.artifacts = artifacts;
            r
        }
        Status::Failed => {
            let why = error.unwrap_or_else(|| "the measurement failed".into());
            let hint = if why.contains("already in use") {
                " (set IPERF_PORT, QPERF_PORT and QPERF_DATA_PORT in the configuration to free ports the NSGs allow)"
            } else {
                ""
            };
            let mut r = ToolResult::failed(format!(
                "run_pipe_meter failed: {why}{hint}; the result is in {}",
                out.result_path.display()
            ));
            r.artifacts = artifacts;
            r
        }
        Status::Success | Status::Interrupted => {
            let (findings, mut summary) =
                judge_measurement(&out.result, &ctx.expectations, &source, &dest);
            summary["session_id"] = json!(out.session_id.as_str());
            summary["status"] = json!(out.status);
            summary["result_path"] = json!(out.result_path.display().to_string());
            if !notes.is_empty() {
                summary["notes"] = json!(notes);
            }
            ToolResult {
                ok: true,
                summary,
                findings,
                artifacts,
                ..Default::default()
            }
        }
    }
}

/// The gate target of a registered VM: `Ok(None)` when it is not registered (pipe-meter
/// then builds SSH targets from the environment).
fn target_of(ctx: &ToolContext, vm: &str) -> Result<Option<Target>, String> {
    match ctx.remote.access(vm) {
        None => Ok(None),
        Some(VmAccess::Ssh(t)) => Ok(Some(Target::Ssh(t.clone()))),
        Some(VmAccess::Netns { name }) => Ok(Some(Target::Netns { name: name.clone() })),
        Some(VmAccess::RunCommand { .. }) => Err(format!(
            "run_pipe_meter needs SSH access to {vm} (its servers and clients cannot run through Azure run-command); configure SSH for the VM"
        )),
    }
}

/// Copies `{id}_baseline.json` (and its sidecar) from the audit directory into the session
/// directory, where pipe-meter looks. `Ok(None)` when it is already there.
fn import_baseline(ctx: &ToolContext, id: &str) -> Result<Option<PathBuf>, String> {
    let name = format!("{id}_baseline.json");
    if ctx.session_dir.join(&name).is_file() {
        return Ok(None);
    }
    let mut dirs: Vec<&Path> = vec![ctx.env.audit_dir.as_path()];
    if let Some(p) = ctx.session_dir.parent() {
        dirs.push(p);
    }
    for d in dirs {
        let src = d.join(&name);
        if src.is_file() {
            for suffix in ["", ".sha256"] {
                let from = d.join(format!("{name}{suffix}"));
                let to = ctx.session_dir.join(format!("{name}{suffix}"));
                if from.is_file() {
                    std::fs::copy(&from, &to)
                        .map_err(|e| format!("cannot copy the baseline {}: {e}", from.display()))?;
                }
            }
            return Ok(Some(src));
        }
    }
    Err(format!(
        "no pipe-meter baseline {id} in {} or the session's parent directory; judged against the expectations instead",
        ctx.env.audit_dir.display()
    ))
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Judges a pipe-meter result (the `result` artifact body): findings and a compact summary.
///
/// Against the baseline when pipe-meter found one (latency P90 over
/// [`LATENCY_TOLERANCE`] × the baseline, throughput P90 under [`THROUGHPUT_TOLERANCE`] ×
/// the baseline), otherwise against `exp` (the round trip, twice qperf's `tcp_lat` P50, over
/// `max_latency_us`; the throughput P50 under `min_throughput_gbps`). pipe-meter's anomalies
/// become `high_variance` and `connectivity_drop`. A metric whose P50 is 0 (most runs
/// failed) is reported as a connectivity drop only.
pub fn judge_measurement(
    result: &Value,
    exp: &Expectations,
    source_vm: &str,
    dest_vm: &str,
) -> (Vec<Finding>, Value) {
    let r = &result["results"];
    let cmp = &result["comparison"];
    let path = format!("{source_vm} -> {dest_vm}");
    let mut findings = Vec::new();
    let base_found = cmp["baseline_found"] == json!(true);
    let baseline_id = cmp["baseline_session"].as_str().unwrap_or("").to_string();
    let against = if base_found {
        format!("baseline {baseline_id}")
    } else {
        "expectations".to_string()
    };
    let metric = |m: &str| {
        let p50 = num(&r[format!("{m}_p50")]);
        p50.map(|p50| {
            json!({
                "p50": p50,
                "p90": num(&r[format!("{m}_p90")]),
                "min": num(&r[format!("{m}_min")]),
                "max": num(&r[format!("{m}_max")]),
                "anomaly": r[format!("{m}_anomaly")],
            })
        })
    };
    let lat = metric("latency");
    let thr = metric("throughput");
    let samples = |key: &str| -> (usize, usize) {
        let it = r["iteration_data"].as_array().cloned().unwrap_or_default();
        let vals: Vec<f64> = it.iter().filter_map(|i| num(&i[key])).collect();
        (vals.len(), vals.iter().filter(|v| **v <= 0.0).count())
    };
    let mut anomaly_finding = |name: &str, m: &Value, unit: &str, key: &str| {
        let (n, failed) = samples(key);
        match m["anomaly"].as_str() {
            Some("CONNECTIVITY_DROP") => findings.push(
                Finding::new(
                    Layer::Measurement,
                    Some(source_vm),
                    "connectivity_drop",
                    format!("{path} {name}"),
                    format!("{failed} of {n} {name} runs from {source_vm} to {dest_vm} failed (no answer or no data)"),
                    "runs that get no answer at all mean packets or connections are dropped on the path, some of the time or always",
                    Severity::High,
                )
                .attr("metric", name)
                .attr("failed_runs", failed)
                .attr("runs", n)
                .attr("unit", unit),
            ),
            Some("HIGH_VARIANCE") => {
                let (min, max) = (num(&m["min"]).unwrap_or(0.0), num(&m["max"]).unwrap_or(0.0));
                let spread = if min > 0.0 { (max - min) / min } else { 0.0 };
                let mut f =
                    Finding::new(
                        Layer::Measurement,
                        Some(source_vm),
                        "high_variance",
                        format!("{path} {name}"),
                        format!("{name} from {source_vm} to {dest_vm} is unstable: {} to {} {unit} ({:.0}% spread)", round(min, 4), round(max, 4), spread * 100.0),
                        "a series that spreads over 50% points at intermittent loss, queueing or contention rather than a fixed limit",
                        Severity::Medium,
                    )
                    .attr("metric", name)
                    .attr("measured", round(spread, 4))
                    .attr("expected", pipe_meter::stats::VARIANCE_THRESHOLD)
                    .attr("min", min)
                    .attr("max", max)
                    .attr("unit", unit);
                let short = num(&result["test_metadata"]["duration_secs"]).is_some_and(|d| d <= 5.0);
                if name == "throughput" && short && max < 0.1 {
                    f = f.attr(
                        "caveat",
                        "over a slow path, iperf2 runs of a few seconds count socket-buffer writes as throughput, which spreads the series; rerun with duration >= 5 before calling the limit unstable",
                    );
                }
                findings.push(f);
            }
            _ => {}
        }
    };
    if let Some(m) = &lat {
        anomaly_finding("latency", m, "us", "latency_us");
    }
    if let Some(m) = &thr {
        anomaly_finding("throughput", m, "Gbps", "throughput_gbps");
    }

    // Absolute values (or the baseline).
    if let Some(m) = &lat {
        let p50 = num(&m["p50"]).unwrap_or(0.0);
        let p90 = num(&m["p90"]).unwrap_or(p50);
        if p50 > 0.0 {
            if base_found {
                if let Some(b) = num(&cmp["baseline_latency_p90"]).filter(|b| *b > 0.0) {
                    if p90 > LATENCY_TOLERANCE * b {
                        findings.push(
                            Finding::new(
                                Layer::Measurement,
                                Some(source_vm),
                                "latency_high",
                                format!("{path} latency"),
                                format!("latency from {source_vm} to {dest_vm} is {:.1}x the baseline: P90 {} us against {} us (qperf tcp_lat, half the round trip)", p90 / b, round(p90, 1), round(b, 1)),
                                "something on the path adds delay that the baseline did not have (queueing, an emulated or real delay, a detour)",
                                severity_ratio(p90 / b),
                            )
                            .attr("measured", round(p90, 3))
                            .attr("expected", round(b, 3))
                            .attr("unit", "us")
                            .attr("metric", "qperf_tcp_lat_p90")
                            .attr("baseline", baseline_id.clone()),
                        );
                    }
                }
            } else {
                let rtt = 2.0 * p50;
                if rtt > exp.max_latency_us {
                    findings.push(
                        Finding::new(
                            Layer::Measurement,
                            Some(source_vm),
                            "latency_high",
                            format!("{path} latency"),
                            format!("round trip from {source_vm} to {dest_vm} is about {} us (twice qperf tcp_lat P50 {} us); expected under {} us", round(rtt, 1), round(p50, 1), exp.max_latency_us),
                            "something on the path adds delay (queueing, an emulated or real delay, a detour through an appliance)",
                            severity_ratio(rtt / exp.max_latency_us),
                        )
                        .attr("measured", round(rtt, 3))
                        .attr("expected", exp.max_latency_us)
                        .attr("unit", "us")
                        .attr("metric", "round_trip_p50")
                        .attr("qperf_tcp_lat_p50_us", round(p50, 3)),
                    );
                }
            }
        }
    }
    if let Some(m) = &thr {
        let p50 = num(&m["p50"]).unwrap_or(0.0);
        let p90 = num(&m["p90"]).unwrap_or(p50);
        if p50 > 0.0 {
            if base_found {
                if let Some(b) = num(&cmp["baseline_throughput_p90"]).filter(|b| *b > 0.0) {
                    if p90 < THROUGHPUT_TOLERANCE * b {
                        findings.push(
                            Finding::new(
                                Layer::Measurement,
                                Some(source_vm),
                                "throughput_low",
                                format!("{path} throughput"),
                                format!("throughput from {source_vm} to {dest_vm} is {:.0}% of the baseline: P90 {} Gbps against {} Gbps", p90 / b * 100.0, round(p90, 4), round(b, 4)),
                                "something on the path limits the rate or loses packets (a shaper, a policer, loss that makes TCP back off)",
                                severity_ratio(b / p90),
                            )
                            .attr("measured", round(p90, 6))
                            .attr("expected", round(b, 6))
                            .attr("unit", "Gbps")
                            .attr("metric", "throughput_p90")
                            .attr("baseline", baseline_id.clone()),
                        );
                    }
                }
            } else if p50 < exp.min_throughput_gbps {
                let stable = m["anomaly"].is_null();
                findings.push(
                    Finding::new(
                        Layer::Measurement,
                        Some(source_vm),
                        "throughput_low",
                        format!("{path} throughput"),
                        format!(
                            "throughput from {source_vm} to {dest_vm} is {} Gbps (P50){}; expected at least {} Gbps",
                            round(p50, 4),
                            if stable { ", stable" } else { "" },
                            exp.min_throughput_gbps
                        ),
                        if stable {
                            "a steady rate far under the path's capacity points at a rate limit (a shaper or policer), not at loss or contention"
                        } else {
                            "the rate is low and unsteady: loss, queueing or a limit on the path"
                        },
                        severity_ratio(exp.min_throughput_gbps / p50),
                    )
                    .attr("measured", round(p50, 6))
                    .attr("expected", exp.min_throughput_gbps)
                    .attr("unit", "Gbps")
                    .attr("metric", "throughput_p50")
                    .attr("stable", stable),
                );
            }
        }
    }

    let failed_status = result["status"].as_str() == Some("failed");
    let verdict = if failed_status || (lat.is_none() && thr.is_none()) {
        "no_measurement"
    } else if findings.is_empty() {
        "ok"
    } else if findings.iter().any(|f| f.kind == "connectivity_drop") {
        "failing"
    } else {
        "degraded"
    };
    let mut summary = json!({
        "path": path,
        "test_type": result["test_metadata"]["test_type"],
        "iterations": result["test_metadata"]["iterations"],
        "latency_us": lat,
        "throughput_gbps": thr,
        "anomaly": r["anomaly_type"],
        "judged_against": against,
        "verdict": verdict,
        "findings": findings.iter().map(|f| f.kind.as_str()).collect::<Vec<_>>(),
    });
    if let Some(m) = &lat {
        if let Some(p50) = num(&m["p50"]) {
            summary["round_trip_p50_us"] = json!(round(2.0 * p50, 3));
            summary["latency_note"] = json!("qperf tcp_lat is half the round trip");
        }
    }
    if base_found {
        summary["baseline"] = json!({
            "session": baseline_id,
            "latency_p90": cmp["baseline_latency_p90"],
            "throughput_p90": cmp["baseline_throughput_p90"],
            "delta_pct_latency": cmp["delta_pct_latency"],
            "delta_pct_throughput": cmp["delta_pct_throughput"],
        });
    } else if let Some(e) = cmp["error"].as_str() {
        summary["baseline_error"] = json!(e);
    }
    (findings, summary)
}

/// High when off by 10x or more, else Medium.
fn severity_ratio(ratio: f64) -> Severity {
    if ratio >= 10.0 {
        Severity::High
    } else {
        Severity::Medium
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipe_meter::stats::compute;

    /// A pipe-meter result body (the shape `run_pipe_meter` writes) from raw samples.
    fn result(lat: &[f64], thr: &[f64], comparison: Value) -> Value {
        let l = compute(lat);
        let t = compute(thr);
        let g = |m: &Option<pipe_meter::stats::MetricStats>,
                 f: fn(&pipe_meter::stats::MetricStats) -> f64| m.as_ref().map(f);
        let overall = pipe_meter::stats::overall(&[
            l.as_ref().and_then(|s| s.anomaly),
            t.as_ref().and_then(|s| s.anomaly),
        ]);
        let n = lat.len().max(thr.len());
        let data: Vec<Value> = (0..n)
            .map(|i| json!({"iteration": i + 1, "latency_us": lat.get(i), "throughput_gbps": thr.get(i), "errors": []}))
            .collect();
        json!({
            "status": "success",
            "test_metadata": {"test_type": "both", "iterations": n},
            "results": {
                "anomaly_type": overall.map(|a| a.as_str()),
                "latency_anomaly": l.as_ref().and_then(|m| m.anomaly).map(|a| a.as_str()),
                "throughput_anomaly": t.as_ref().and_then(|m| m.anomaly).map(|a| a.as_str()),
                "latency_p50": g(&l, |m| m.p50), "latency_p90": g(&l, |m| m.p90),
                "latency_min": g(&l, |m| m.min), "latency_max": g(&l, |m| m.max),
                "throughput_p50": g(&t, |m| m.p50), "throughput_p90": g(&t, |m| m.p90),
                "throughput_min": g(&t, |m| m.min), "throughput_max": g(&t, |m| m.max),
                "iteration_data": data,
            },
            "comparison": comparison,
        })
    }

    fn no_baseline() -> Value {
        json!({"baseline_found": false})
    }

    fn kinds(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|f| f.kind.as_str()).collect()
    }

    #[test]
    fn stable_five_megabits_is_throughput_low() {
        // Scenario K: tbf 5mbit, stable at about 0.005 Gbps, latency fine.
        let r = result(
            &[30.0, 32.0, 31.0],
            &[0.0049, 0.0051, 0.0050],
            no_baseline(),
        );
        let (f, s) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["throughput_low"], "{f:?}");
        let t = &f[0];
        assert_eq!(t.layer, Layer::Measurement);
        assert_eq!(t.vm.as_deref(), Some("source-vm"));
        assert_eq!(t.attrs["measured"], json!(0.005));
        assert_eq!(t.attrs["expected"], json!(1.0));
        assert_eq!(t.attrs["unit"], json!("Gbps"));
        assert_eq!(t.attrs["stable"], json!(true));
        assert_eq!(t.severity, Severity::High);
        assert!(t.summary.contains("stable"), "{}", t.summary);
        assert_eq!(s["verdict"], "degraded");
        assert_eq!(s["judged_against"], "expectations");
        assert_eq!(s["anomaly"], Value::Null);
    }

    #[test]
    fn clean_path_has_no_findings() {
        let r = result(&[9.0, 10.0, 11.0], &[4.1, 4.5, 4.3], no_baseline());
        let (f, s) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(s["verdict"], "ok");
        assert_eq!(s["round_trip_p50_us"], json!(20.0));
    }

    #[test]
    fn short_runs_over_a_slow_path_carry_a_caveat() {
        // K measured with 2 s runs: the shaper is steady, the short runs are not.
        let mut r = result(&[], &[0.0048, 0.0154, 0.0057], no_baseline());
        r["test_metadata"]["duration_secs"] = json!(2);
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["high_variance", "throughput_low"]);
        assert!(f[0].attrs["caveat"]
            .as_str()
            .unwrap()
            .contains("duration >= 5"));
        assert_eq!(f[1].attrs["measured"], json!(0.0057));
        // Long runs: no caveat.
        r["test_metadata"]["duration_secs"] = json!(10);
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert!(!f[0].attrs.contains_key("caveat"));
    }

    #[test]
    fn latency_is_judged_as_a_round_trip() {
        // qperf says 600 us one way: a 1200 us round trip is over the 1000 us expectation.
        let r = result(&[600.0, 610.0, 605.0], &[], no_baseline());
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["latency_high"]);
        assert_eq!(f[0].attrs["measured"], json!(1210.0));
        assert_eq!(f[0].attrs["metric"], json!("round_trip_p50"));
        // 400 us one way (800 us round trip) is fine.
        let r = result(&[400.0, 410.0, 405.0], &[], no_baseline());
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn anomalies_become_findings() {
        // Scenario G: random loss, unstable throughput.
        let r = result(&[], &[0.2, 0.9, 0.5], no_baseline());
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["high_variance", "throughput_low"]);
        assert_eq!(f[1].attrs["stable"], json!(false));
        // Every run failed: a connectivity drop, not a "low" number.
        let r = result(&[], &[0.0, 0.0, 0.0], no_baseline());
        let (f, s) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["connectivity_drop"]);
        assert_eq!(f[0].attrs["failed_runs"], json!(3));
        assert_eq!(s["verdict"], "failing");
    }

    #[test]
    fn the_baseline_wins_over_the_expectations() {
        // 0.5 Gbps is under the 1 Gbps expectation but matches its baseline: no finding.
        let cmp = json!({"baseline_found": true, "baseline_session": "pmeter_base",
            "baseline_latency_p90": 100.0, "baseline_throughput_p90": 0.52});
        let r = result(&[90.0, 95.0, 100.0], &[0.5, 0.51, 0.52], cmp.clone());
        let (f, s) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(s["judged_against"], "baseline pmeter_base");
        // Half the baseline and twice its latency: both findings, citing the baseline.
        let r = result(&[190.0, 195.0, 200.0], &[0.25, 0.26, 0.24], cmp);
        let (f, _) = judge_measurement(&r, &Expectations::default(), "source-vm", "dest-vm");
        assert_eq!(kinds(&f), vec!["latency_high", "throughput_low"]);
        assert_eq!(f[1].attrs["baseline"], json!("pmeter_base"));
        assert_eq!(f[1].attrs["expected"], json!(0.52));
    }

    #[test]
    fn arguments_are_validated_before_anything_runs() {
        use crate::tools::Tool;
        let t = RunPipeMeter;
        for (args, needle) in [
            (
                json!({"test_type": "bandwidth"}),
                "must be one of latency, throughput, both",
            ),
            (json!({"iterations": 0}), "from 1 to 100"),
            (json!({"duration": "ten"}), "whole number"),
            (json!({"baseline_id": "../x"}), "session id"),
            (json!({"streams": 4}), "no argument `streams`"),
        ] {
            let e = parse_args(&args).unwrap_err();
            assert!(e.contains(needle), "{args}: {e}");
        }
        assert_eq!(parse_args(&json!({})).unwrap(), ("both", None, None, None));
        assert_eq!(
            parse_args(&json!({"test_type": "Throughput", "iterations": 2, "duration": "2"}))
                .unwrap(),
            ("throughput", Some(2), Some(2), None)
        );
        assert_eq!(t.input_schema()["additionalProperties"], json!(false));
    }
}
