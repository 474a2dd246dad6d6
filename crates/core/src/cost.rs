//! Exact cost in USD, computed from usage and a model's prices.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::Pricing;
use crate::usage::Usage;

/// The cost of a call in USD, exact to the last digit, with its breakdown.
///
/// Serialized with decimal strings (`{"total_usd": "0.000123", …}`) so that no JSON reader
/// turns it into a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Everything.
    pub total_usd: Decimal,
    /// Uncached input tokens.
    pub input_usd: Decimal,
    /// Cached input tokens.
    pub cached_input_usd: Decimal,
    /// Cache-write input tokens.
    pub cache_write_usd: Decimal,
    /// Output tokens (reasoning included unless priced separately).
    pub output_usd: Decimal,
    /// Reasoning tokens, when the model prices them separately.
    pub reasoning_usd: Decimal,
}

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

fn tokens(n: u64) -> Decimal {
    Decimal::from(n)
}

impl Cost {
    /// The cost of `usage` at `pricing` (prices per 1M tokens).
    ///
    /// Cached input is priced at the cached price when the model has one, else at the input
    /// price; likewise cache writes and reasoning tokens.
    pub fn compute(usage: &Usage, pricing: &Pricing) -> Cost {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_write_tokens.min(usage.input_tokens - cached);
        let plain_input = usage.input_tokens - cached - written;

        let input_usd = tokens(plain_input) * pricing.input_per_mtok / PER_MILLION;
        let cached_input_usd = tokens(cached)
            * pricing
                .cached_input_per_mtok
                .unwrap_or(pricing.input_per_mtok)
            / PER_MILLION;
        let cache_write_usd = tokens(written)
            * pricing
                .cache_write_per_mtok
                .unwrap_or(pricing.input_per_mtok)
            / PER_MILLION;

        let (output_tokens, reasoning_usd) = match pricing.reasoning_per_mtok {
            Some(price) => {
                let reasoning = usage.reasoning_tokens.min(usage.output_tokens);
                (
                    usage.output_tokens - reasoning,
                    tokens(reasoning) * price / PER_MILLION,
                )
            }
            None => (usage.output_tokens, Decimal::ZERO),
        };
        let output_usd = tokens(output_tokens) * pricing.output_per_mtok / PER_MILLION;

        let total = input_usd + cached_input_usd + cache_write_usd + output_usd + reasoning_usd;
        Cost {
            total_usd: total.normalize(),
            input_usd: input_usd.normalize(),
            cached_input_usd: cached_input_usd.normalize(),
            cache_write_usd: cache_write_usd.normalize(),
            output_usd: output_usd.normalize(),
            reasoning_usd: reasoning_usd.normalize(),
        }
    }

    /// Adds another cost to this one.
    pub fn add(&mut self, other: &Cost) {
        self.total_usd += other.total_usd;
        self.input_usd += other.input_usd;
        self.cached_input_usd += other.cached_input_usd;
        self.cache_write_usd += other.cache_write_usd;
        self.output_usd += other.output_usd;
        self.reasoning_usd += other.reasoning_usd;
    }
}
