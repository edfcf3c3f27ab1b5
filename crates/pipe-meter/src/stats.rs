//! Statistics and anomaly rules. Percentiles use the nearest-rank rule
//! `sorted[floor(p·N)]` (clamped to the last sample), so at N ≤ 10 the P90 is the maximum.

use serde::{Deserialize, Serialize};

/// What the samples of a metric (or of the whole run) say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Anomaly {
    /// At least one sample is 0.0 (a failed or timed-out connection). Takes precedence.
    ConnectivityDrop,
    /// (max − min) / min > 0.50.
    HighVariance,
}

impl Anomaly {
    /// `CONNECTIVITY_DROP` or `HIGH_VARIANCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Anomaly::ConnectivityDrop => "CONNECTIVITY_DROP",
            Anomaly::HighVariance => "HIGH_VARIANCE",
        }
    }
}

/// The spread above which samples are HIGH_VARIANCE (exactly 0.50 is stable).
pub const VARIANCE_THRESHOLD: f64 = 0.50;

/// Summary statistics of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// Number of samples.
    pub count: usize,
    /// Nearest-rank P50.
    pub p50: f64,
    /// Nearest-rank P90 (`sorted[floor(0.9·N)]`).
    pub p90: f64,
    /// Nearest-rank P99.
    pub p99: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    /// The anomaly, `null` when the samples are stable.
    pub anomaly: Option<Anomaly>,
}

/// Nearest-rank percentile of sorted samples: `sorted[floor(p·N)]`, clamped to N−1.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((p * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    Some(sorted[idx])
}

/// The anomaly rule on raw samples: CONNECTIVITY_DROP if any is 0.0, else HIGH_VARIANCE if
/// (max − min) / min > 0.50, else none.
pub fn classify(samples: &[f64]) -> Option<Anomaly> {
    if samples.is_empty() {
        return None;
    }
    if samples.iter().any(|s| *s <= 0.0 || !s.is_finite()) {
        return Some(Anomaly::ConnectivityDrop);
    }
    let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if (max - min) / min > VARIANCE_THRESHOLD {
        Some(Anomaly::HighVariance)
    } else {
        None
    }
}

/// Statistics of `samples`; `None` when there are none.
pub fn compute(samples: &[f64]) -> Option<MetricStats> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted: Vec<f64> = samples
        .iter()
        .map(|s| if s.is_finite() { *s } else { 0.0 })
        .collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let n = sorted.len() as f64;
    let mean = sorted.iter().sum::<f64>() / n;
    let var = sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    Some(MetricStats {
        count: sorted.len(),
        p50: nearest_rank(&sorted, 0.50)?,
        p90: nearest_rank(&sorted, 0.90)?,
        p99: nearest_rank(&sorted, 0.99)?,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        mean,
        stddev: var.sqrt(),
        anomaly: classify(&sorted),
    })
}

/// The run's anomaly from its metrics: CONNECTIVITY_DROP if any metric has it, else
/// HIGH_VARIANCE if any metric has it, else none.
pub fn overall<'a>(metrics: impl IntoIterator<Item = &'a Option<Anomaly>>) -> Option<Anomaly> {
    let mut worst = None;
    for m in metrics.into_iter().flatten() {
        match m {
            Anomaly::ConnectivityDrop => return Some(Anomaly::ConnectivityDrop),
            Anomaly::HighVariance => worst = Some(Anomaly::HighVariance),
        }
    }
    worst
}

/// `(current − baseline) / baseline × 100`; `None` when the baseline is 0 or not finite.
pub fn delta_pct(current: f64, baseline: f64) -> Option<f64> {
    if baseline == 0.0 || !baseline.is_finite() || !current.is_finite() {
        return None;
    }
    Some((current - baseline) / baseline * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_p90_is_max_at_small_n() {
        for n in 1..=10 {
            let v: Vec<f64> = (1..=n).map(|x| x as f64).collect();
            assert_eq!(nearest_rank(&v, 0.9), Some(n as f64), "N={n}");
        }
        let v: Vec<f64> = (1..=20).map(|x| x as f64).collect();
        assert_eq!(nearest_rank(&v, 0.9), Some(19.0)); // sorted[18]
        assert_eq!(nearest_rank(&v, 0.5), Some(11.0)); // sorted[10]
        assert_eq!(nearest_rank(&[], 0.9), None);
    }

    #[test]
    fn anomaly_table() {
        let cases: &[(&[f64], Option<Anomaly>)] = &[
            (&[100.0, 120.0, 150.0], None), // exactly 0.50: stable
            (&[100.0, 150.0001], Some(Anomaly::HighVariance)), // just above
            (&[100.0, 149.9999], None),
            (&[0.0, 100.0, 100.0], Some(Anomaly::ConnectivityDrop)),
            (&[0.0, 10.0, 1000.0], Some(Anomaly::ConnectivityDrop)), // drop beats variance
            (&[0.0, 0.0], Some(Anomaly::ConnectivityDrop)),
            (&[5.0, 5.0, 5.0], None),
            (&[], None),
        ];
        for (s, want) in cases {
            assert_eq!(classify(s), *want, "{s:?}");
        }
    }

    #[test]
    fn overall_precedence() {
        use Anomaly::*;
        assert_eq!(overall(&[None, None]), None);
        assert_eq!(overall(&[Some(HighVariance), None]), Some(HighVariance));
        assert_eq!(
            overall(&[Some(HighVariance), Some(ConnectivityDrop)]),
            Some(ConnectivityDrop)
        );
        assert_eq!(
            overall(&[None, Some(ConnectivityDrop)]),
            Some(ConnectivityDrop)
        );
    }

    #[test]
    fn compute_known_values() {
        let s = compute(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.count, 8);
        assert_eq!(s.min, 2.0);
        assert_eq!(s.max, 9.0);
        assert_eq!(s.mean, 5.0);
        assert_eq!(s.stddev, 2.0);
        assert_eq!(s.p50, 5.0); // sorted[4]
        assert_eq!(s.p90, 9.0); // sorted[7]
        assert_eq!(s.p99, 9.0);
        assert_eq!(s.anomaly, Some(Anomaly::HighVariance));
        assert!(compute(&[]).is_none());
    }

    #[test]
    fn delta() {
        assert_eq!(delta_pct(110.0, 100.0), Some(10.0));
        assert_eq!(delta_pct(97.0, 100.0), Some(-3.0));
        assert_eq!(delta_pct(1.0, 0.0), None);
    }

    proptest::proptest! {
        #[test]
        fn stats_are_ordered(v in proptest::collection::vec(0.0f64..1e6, 1..40)) {
            let s = compute(&v).unwrap();
            proptest::prop_assert!(s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.max);
            proptest::prop_assert!(s.stddev >= 0.0);
        }
    }
}
