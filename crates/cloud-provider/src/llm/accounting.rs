//! Token and cost accounting for a session: usage per model, priced with a configurable
//! table. A model missing from the table still has its tokens counted; its cost is unknown,
//! never guessed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::llm::error::LlmError;
use crate::llm::types::Usage;

/// Prices of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Uncached input.
    pub input_per_mtok: f64,
    /// Output.
    pub output_per_mtok: f64,
    /// Input served from the prompt cache (defaults to the input price).
    #[serde(default)]
    pub cached_input_per_mtok: Option<f64>,
    /// Input written to the prompt cache (defaults to the input price).
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

impl ModelPrice {
    /// Cost of `u` in US dollars.
    pub fn cost(&self, u: &Usage) -> f64 {
        let cached = u.cached_input_tokens.min(u.input_tokens);
        let written = u.cache_write_input_tokens.min(u.input_tokens - cached);
        let plain = u.input_tokens - cached - written;
        let m = 1_000_000.0;
        plain as f64 * self.input_per_mtok / m
            + cached as f64 * self.cached_input_per_mtok.unwrap_or(self.input_per_mtok) / m
            + written as f64 * self.cache_write_per_mtok.unwrap_or(self.input_per_mtok) / m
            + u.output_tokens as f64 * self.output_per_mtok / m
    }
}

/// Prices per model id. A model matches an entry with the same id, or else the longest entry
/// that is a prefix of it followed by `-` (so `claude-sonnet-4` prices `claude-sonnet-4-20250514`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Model id → price.
    pub models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// An empty table: every cost is unknown.
    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// Reads a table from JSON: `{"models": {"MODEL": {"input_per_mtok": 3.0, ...}}}`.
    pub fn from_json(text: &str) -> Result<PriceTable, LlmError> {
        serde_json::from_str(text).map_err(|e| {
            LlmError::Config(format!(
                "the price table is not valid JSON of the form {{\"models\": {{\"MODEL\": {{\"input_per_mtok\": N, \"output_per_mtok\": N}}}}}} ({e})"
            ))
        })
    }

    /// Adds or replaces one model's price.
    pub fn set(&mut self, model: impl Into<String>, price: ModelPrice) -> &mut Self {
        self.models.insert(model.into(), price);
        self
    }

    /// The price for `model`, if known.
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(k, _)| {
                model.len() > k.len()
                    && model.starts_with(k.as_str())
                    && model.as_bytes()[k.len()] == b'-'
            })
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    }
}

/// Usage of one model over a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// Provider calls recorded.
    pub calls: u64,
    /// Summed tokens.
    pub usage: Usage,
}

/// Usage of a whole session, per model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionUsage {
    /// Model id → usage.
    pub per_model: BTreeMap<String, ModelUsage>,
}

/// A cost line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCost {
    /// Model id.
    pub model: String,
    /// Its usage.
    pub usage: ModelUsage,
    /// Cost in US dollars; `None` when the model is not in the price table.
    pub usd: Option<f64>,
}

/// A session's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    /// One line per model.
    pub models: Vec<ModelCost>,
    /// Sum over the models with a known price.
    pub known_usd: f64,
    /// False when some model's price is unknown (the total is then a lower bound).
    pub complete: bool,
}

impl std::fmt::Display for CostReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.models {
            let cost = match m.usd {
                Some(c) => format!("${c:.4}"),
                None => "unknown".to_string(),
            };
            writeln!(
                f,
                "{}: {} call(s), {} input ({} cached), {} output tokens, cost {}",
                m.model,
                m.usage.calls,
                m.usage.usage.input_tokens,
                m.usage.usage.cached_input_tokens,
                m.usage.usage.output_tokens,
                cost
            )?;
        }
        if self.complete {
            write!(f, "total: ${:.4}", self.known_usd)
        } else if self.known_usd > 0.0 {
            write!(
                f,
                "total: at least ${:.4} (some prices unknown)",
                self.known_usd
            )
        } else {
            write!(f, "total: unknown")
        }
    }
}

impl SessionUsage {
    /// Records `calls` provider calls of `model` that used `usage`.
    pub fn record(&mut self, model: &str, calls: u64, usage: Usage) {
        let e = self.per_model.entry(model.to_string()).or_default();
        e.calls += calls;
        e.usage += usage;
    }

    /// Records what a [`crate::llm::run_tool_loop`] run used (one call per turn).
    pub fn record_loop(&mut self, model: &str, report: &crate::llm::LoopReport) {
        self.record(model, u64::from(report.turns), report.usage);
    }

    /// Summed usage over all models.
    pub fn total(&self) -> Usage {
        let mut t = Usage::default();
        for m in self.per_model.values() {
            t += m.usage;
        }
        t
    }

    /// Prices the session with `table`.
    pub fn cost(&self, table: &PriceTable) -> CostReport {
        let mut known = 0.0;
        let mut complete = true;
        let models = self
            .per_model
            .iter()
            .map(|(model, u)| {
                let usd = table.price(model).map(|p| p.cost(&u.usage));
                match usd {
                    Some(c) => known += c,
                    None => complete = false,
                }
                ModelCost {
                    model: model.clone(),
                    usage: u.clone(),
                    usd,
                }
            })
            .collect();
        CostReport {
            models,
            known_usd: known,
            complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price() -> ModelPrice {
        ModelPrice {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cached_input_per_mtok: Some(0.3),
            cache_write_per_mtok: Some(3.75),
        }
    }

    #[test]
    fn cost_splits_plain_cached_and_written_input() {
        let u = Usage {
            input_tokens: 1_000_000 + 2_000_000 + 1_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 2_000_000,
            cache_write_input_tokens: 1_000_000,
        };
        let c = price().cost(&u);
        assert!((c - (3.0 + 0.6 + 3.75 + 15.0)).abs() < 1e-9, "{c}");
    }

    #[test]
    fn prefix_match_needs_a_dash_boundary_and_prefers_longest() {
        let mut t = PriceTable::empty();
        t.set("claude-sonnet-4", price());
        let mut p2 = price();
        p2.input_per_mtok = 1.0;
        t.set("claude-sonnet-4-5", p2);
        assert_eq!(
            t.price("claude-sonnet-4-20250514").unwrap().input_per_mtok,
            3.0
        );
        assert_eq!(
            t.price("claude-sonnet-4-5-20250929")
                .unwrap()
                .input_per_mtok,
            1.0
        );
        assert!(t.price("claude-sonnet-40").is_none());
        assert!(t.price("gpt-4o").is_none());
    }

    #[test]
    fn unknown_model_counts_tokens_and_reports_unknown_cost() {
        let mut t = PriceTable::empty();
        t.set("known", price());
        let mut s = SessionUsage::default();
        let u = Usage {
            input_tokens: 1000,
            output_tokens: 100,
            ..Usage::default()
        };
        s.record("known", 1, u);
        s.record("mystery-model", 2, u);
        s.record("mystery-model", 1, u);
        let r = s.cost(&t);
        assert!(!r.complete);
        let mystery = r
            .models
            .iter()
            .find(|m| m.model == "mystery-model")
            .unwrap();
        assert_eq!(mystery.usd, None);
        assert_eq!(mystery.usage.calls, 3);
        assert_eq!(mystery.usage.usage.input_tokens, 2000);
        assert_eq!(s.total().input_tokens, 3000);
        let text = r.to_string();
        assert!(
            text.contains(
                "mystery-model: 3 call(s), 2000 input (0 cached), 200 output tokens, cost unknown"
            ),
            "{text}"
        );
        assert!(
            text.contains("total: at least $0.0045 (some prices unknown)"),
            "{text}"
        );
        assert!(
            text.contains(
                "known: 1 call(s), 1000 input (0 cached), 100 output tokens, cost $0.0045"
            ),
            "{text}"
        );
        let only_unknown = {
            let mut s = SessionUsage::default();
            s.record("mystery-model", 1, u);
            s.cost(&t).to_string()
        };
        assert!(only_unknown.ends_with("total: unknown"), "{only_unknown}");
    }

    #[test]
    fn price_table_reads_json_and_rejects_garbage() {
        let t = PriceTable::from_json(
            r#"{"models": {"m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}}"#,
        )
        .unwrap();
        let u = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cached_input_tokens: 500_000,
            cache_write_input_tokens: 0,
        };
        assert!((t.price("m").unwrap().cost(&u) - 3.0).abs() < 1e-9);
        let e = PriceTable::from_json("{\"models\": 3}").unwrap_err();
        assert!(matches!(e, LlmError::Config(_)));
    }
}
