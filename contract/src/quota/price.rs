//! Model prices and the cost of a request in integer micro-dollars.
//!
//! Prices are per million tokens. A model name matches an entry exactly, or
//! by the longest entry that is a prefix of it (so `gpt-4o-2024-08-06` is
//! priced as `gpt-4o`, and `gpt-4o-mini` as itself). The table starts from
//! [`DEFAULTS`]; entries from the snapshot replace them by name.

use crate::record::Usage;
use std::collections::HashMap;

/// Prices of one model, micro-dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// Uncached prompt tokens.
    pub input: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write: u64,
    /// Completion tokens (reasoning included).
    pub output: u64,
    /// The most completion tokens the model produces for one choice, when
    /// known: a request that sets no limit is reserved for at most this.
    pub max_output_tokens: Option<u64>,
}

const fn usd(input: f64, cached: f64, write: f64, output: f64) -> Price {
    Price {
        input: (input * 1e6) as u64,
        cached_input: (cached * 1e6) as u64,
        cache_write: (write * 1e6) as u64,
        output: (output * 1e6) as u64,
        max_output_tokens: None,
    }
}

impl Price {
    /// The same price with the model's documented output cap.
    const fn max_out(self, tokens: u64) -> Price {
        Price {
            max_output_tokens: Some(tokens),
            ..self
        }
    }
}

/// Published list prices (USD per million tokens) and output caps (tokens
/// per choice) of common models, used
/// unless the control plane sets others (`sluice-control price set`).
pub const DEFAULTS: &[(&str, Price)] = &[
    ("gpt-4o", usd(2.50, 1.25, 2.50, 10.00).max_out(16384)),
    ("gpt-4o-mini", usd(0.15, 0.075, 0.15, 0.60).max_out(16384)),
    ("gpt-4.1", usd(2.00, 0.50, 2.00, 8.00).max_out(32768)),
    ("gpt-4.1-mini", usd(0.40, 0.10, 0.40, 1.60).max_out(32768)),
    ("gpt-4.1-nano", usd(0.10, 0.025, 0.10, 0.40).max_out(32768)),
    ("gpt-5", usd(1.25, 0.125, 1.25, 10.00).max_out(128000)),
    ("gpt-5-mini", usd(0.25, 0.025, 0.25, 2.00).max_out(128000)),
    ("gpt-5-nano", usd(0.05, 0.005, 0.05, 0.40).max_out(128000)),
    ("o1", usd(15.00, 7.50, 15.00, 60.00).max_out(100000)),
    ("o1-mini", usd(1.10, 0.55, 1.10, 4.40).max_out(65536)),
    ("o3", usd(2.00, 0.50, 2.00, 8.00).max_out(100000)),
    ("o3-mini", usd(1.10, 0.55, 1.10, 4.40).max_out(100000)),
    ("o4-mini", usd(1.10, 0.275, 1.10, 4.40).max_out(100000)),
    ("gpt-4-turbo", usd(10.00, 10.00, 10.00, 30.00).max_out(4096)),
    ("gpt-3.5-turbo", usd(0.50, 0.50, 0.50, 1.50).max_out(4096)),
    ("claude-3-haiku", usd(0.25, 0.03, 0.30, 1.25).max_out(4096)),
    ("claude-3-5-haiku", usd(0.80, 0.08, 1.00, 4.00).max_out(8192)),
    ("claude-haiku-4-5", usd(1.00, 0.10, 1.25, 5.00).max_out(64000)),
    ("claude-3-5-sonnet", usd(3.00, 0.30, 3.75, 15.00).max_out(8192)),
    ("claude-3-7-sonnet", usd(3.00, 0.30, 3.75, 15.00).max_out(64000)),
    ("claude-sonnet-4", usd(3.00, 0.30, 3.75, 15.00).max_out(64000)),
    ("claude-3-opus", usd(15.00, 1.50, 18.75, 75.00).max_out(4096)),
    ("claude-opus-4", usd(15.00, 1.50, 18.75, 75.00).max_out(32000)),
    ("claude-opus-4-5", usd(5.00, 0.50, 6.25, 25.00).max_out(64000)),
    // Gemini (prompts up to 200k tokens; thinking is billed as output).
    ("gemini-2.5-pro", usd(1.25, 0.125, 1.25, 10.00).max_out(65536)),
    ("gemini-2.5-flash", usd(0.30, 0.03, 0.30, 2.50).max_out(65536)),
    (
        "gemini-2.5-flash-lite",
        usd(0.10, 0.01, 0.10, 0.40).max_out(65536),
    ),
    ("gemini-2.0-flash", usd(0.10, 0.025, 0.10, 0.40).max_out(8192)),
    (
        "gemini-2.0-flash-lite",
        usd(0.075, 0.075, 0.075, 0.30).max_out(8192),
    ),
    // Embeddings: input only.
    ("text-embedding-3-small", usd(0.02, 0.02, 0.02, 0.0)),
    ("text-embedding-3-large", usd(0.13, 0.13, 0.13, 0.0)),
    ("text-embedding-ada-002", usd(0.10, 0.10, 0.10, 0.0)),
    ("gemini-embedding-001", usd(0.15, 0.15, 0.15, 0.0)),
];

impl Price {
    /// What a request the provider does not charge for costs
    /// (`/v1/messages/count_tokens`).
    pub const FREE: Price = Price {
        input: 0,
        cached_input: 0,
        cache_write: 0,
        output: 0,
        max_output_tokens: None,
    };

    /// Cost of `usage`, rounded up to a whole micro-dollar.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let written = usage.cache_creation_tokens.min(usage.input_tokens - cached);
        let plain = usage.input_tokens - cached - written;
        let total = u128::from(plain) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(written) * u128::from(self.cache_write)
            + u128::from(usage.output_tokens) * u128::from(self.output);
        total.div_ceil(1_000_000).min(u128::from(u64::MAX)) as u64
    }

    /// The most a request can cost: every prompt token uncached, and
    /// `max_output` completion tokens.
    pub fn worst_case_micros(&self, prompt_tokens: u64, max_output: u64) -> u64 {
        let usage = Usage {
            input_tokens: prompt_tokens,
            output_tokens: max_output,
            ..Usage::default()
        };
        let uncached = Price {
            cached_input: self.input,
            cache_write: self.input.max(self.cache_write),
            ..*self
        };
        uncached.cost_micros(&usage)
    }
}

/// Prices by model name.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    exact: HashMap<Box<str>, Price>,
    /// Names sorted longest first, for prefix matching.
    by_length: Vec<(Box<str>, Price)>,
}

impl PriceTable {
    /// The defaults, with `overrides` replacing entries of the same name.
    pub fn with_overrides<'a>(overrides: impl IntoIterator<Item = (&'a str, Price)>) -> Self {
        let mut exact: HashMap<Box<str>, Price> = DEFAULTS.iter().map(|(n, p)| (Box::from(*n), *p)).collect();
        for (name, price) in overrides {
            exact.insert(Box::from(name), price);
        }
        let mut by_length: Vec<(Box<str>, Price)> = exact.iter().map(|(n, p)| (n.clone(), *p)).collect();
        by_length.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        PriceTable { exact, by_length }
    }

    /// The price of `model`, if any entry matches.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.exact.get(model) {
            return Some(*p);
        }
        self.by_length
            .iter()
            .find(|(name, _)| model.starts_with(&**name))
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_exact_then_longest_prefix() {
        let t = PriceTable::with_overrides([("my-model", usd(1.0, 0.5, 1.0, 2.0))]);
        assert_eq!(t.lookup("gpt-4o-mini").unwrap().input, 150_000);
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18").unwrap().input, 150_000);
        assert_eq!(t.lookup("gpt-4o-2024-08-06").unwrap().input, 2_500_000);
        assert_eq!(t.lookup("my-model").unwrap().output, 2_000_000);
        assert!(t.lookup("unknown").is_none());
        // A family's cheaper member is not priced as the family by its prefix.
        assert_eq!(t.lookup("o3-mini-2025-01-31").unwrap().output, 4_400_000);
        assert_eq!(t.lookup("o3-2025-04-16").unwrap().output, 8_000_000);
        assert_eq!(t.lookup("claude-opus-4-5-20251101").unwrap().input, 5_000_000);
        assert_eq!(t.lookup("claude-opus-4-1-20250805").unwrap().input, 15_000_000);
        assert_eq!(t.lookup("claude-sonnet-4-5-20250929").unwrap().output, 15_000_000);
    }

    #[test]
    fn cost_counts_every_token_once() {
        let p = usd(2.0, 0.5, 2.5, 8.0);
        // 1M input of which 400k cached and 100k written, 250k output.
        let u = Usage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            cache_creation_tokens: 100_000,
            output_tokens: 250_000,
            reasoning_tokens: 50_000,
        };
        // 500k*2 + 400k*0.5 + 100k*2.5 + 250k*8 = 1.0 + 0.2 + 0.25 + 2.0 USD
        assert_eq!(p.cost_micros(&u), 3_450_000);
        let one = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(p.cost_micros(&one), 2, "rounded up to a whole micro-dollar");
        assert!(
            p.worst_case_micros(1000, 100)
                >= p.cost_micros(&Usage {
                    input_tokens: 1000,
                    output_tokens: 100,
                    ..Usage::default()
                })
        );
    }
}
