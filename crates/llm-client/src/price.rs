//! Model prices, for the `octollm_llm_api_cost_usd_total` metric and
//! [`crate::ChatResponse::cost_usd`].

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::LlmError;

/// Price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub prompt_usd_per_million: f64,
    pub completion_usd_per_million: f64,
}

impl ModelPrice {
    /// Cost of a call with these token counts.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.prompt_usd_per_million
            + completion_tokens as f64 * self.completion_usd_per_million)
            / 1_000_000.0
    }
}

/// Model name -> price. JSON: `{"MODEL": {"prompt_usd_per_million": 2.5,
/// "completion_usd_per_million": 10.0}, ...}`. Models are matched exactly by
/// the name the client requests.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable(BTreeMap<String, ModelPrice>);

/// The built-in table: (model, prompt, completion) in USD per million tokens.
/// Real models carry their list prices at the time of writing (check your
/// provider's and override with `--llm-price-table`); `sim-1`, llm-sim's
/// model, is priced like a mid-range model so cost metrics move under load.
pub const BUILTIN_PRICES: [(&str, f64, f64); 5] = [
    ("sim-1", 2.50, 10.00),
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
];

impl PriceTable {
    /// The documented default table ([`BUILTIN_PRICES`]).
    pub fn builtin() -> Self {
        PriceTable(
            BUILTIN_PRICES
                .iter()
                .map(|&(model, prompt, completion)| {
                    (
                        model.to_owned(),
                        ModelPrice {
                            prompt_usd_per_million: prompt,
                            completion_usd_per_million: completion,
                        },
                    )
                })
                .collect(),
        )
    }

    /// Parses and checks a JSON table (it replaces the built-in one whole).
    pub fn from_json(json: &str) -> Result<Self, LlmError> {
        let table: PriceTable = serde_json::from_str(json)
            .map_err(|e| LlmError::Config(format!("invalid price table: {e}")))?;
        for (model, price) in &table.0 {
            for (field, value) in [
                ("prompt_usd_per_million", price.prompt_usd_per_million),
                (
                    "completion_usd_per_million",
                    price.completion_usd_per_million,
                ),
            ] {
                if !(value.is_finite() && value >= 0.0) {
                    return Err(LlmError::Config(format!(
                        "invalid price table: {model}.{field} must be a non-negative number, got {value}"
                    )));
                }
            }
        }
        Ok(table)
    }

    /// Reads a JSON table from a file.
    pub fn load(path: &Path) -> Result<Self, LlmError> {
        let json = std::fs::read_to_string(path).map_err(|e| {
            LlmError::Config(format!("cannot read price table {}: {e}", path.display()))
        })?;
        Self::from_json(&json)
    }

    /// The price of `model`, if listed.
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        self.0.get(model).copied()
    }

    /// Adds or replaces one model's price.
    pub fn insert(&mut self, model: impl Into<String>, price: ModelPrice) {
        self.0.insert(model.into(), price);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn builtin_prices_sim_like_a_mid_range_model() {
        let price = PriceTable::builtin().get("sim-1").unwrap();
        let cost = price.cost_usd(1_000_000, 1_000_000);
        assert!((cost - 12.5).abs() < 1e-9);
        assert!(PriceTable::builtin().get("no-such-model").is_none());
    }

    #[test]
    fn json_tables_are_validated() {
        let table = PriceTable::from_json(
            r#"{"m":{"prompt_usd_per_million":1,"completion_usd_per_million":3}}"#,
        )
        .unwrap();
        assert!((table.get("m").unwrap().cost_usd(500_000, 1_000_000) - 3.5).abs() < 1e-9);
        assert!(table.get("sim-1").is_none());
        assert!(
            PriceTable::from_json(
                r#"{"m":{"prompt_usd_per_million":-1,"completion_usd_per_million":3}}"#
            )
            .is_err()
        );
        assert!(PriceTable::from_json(r#"{"m":{"prompt":1}}"#).is_err());
    }
}
