//! The policy library: pure functions and compiled structures, no I/O.
//!
//! Per request, on the worker that serves it:
//! 1. [`extract()`] reads the body once: model, stream flags, `max_tokens`, and
//!    every prompt text the caller controls (borrowed from the body where it
//!    has no escapes). Everything else passes through untouched.
//! 2. [`CompiledPolicy::evaluate`] (or [`evaluate`]) applies the tenant's
//!    policy to what was read: model allow-list, token cap, ordered
//!    allow/block rules, PII detectors (redact or block). One pass per matcher
//!    over the texts; the body is rewritten only when something was redacted.
//! 3. [`tokens`] counts prompt tokens and, as the response streams,
//!    completion tokens ([`tokens::CompletionCounter`]).
//!
//! Per snapshot, off the request path: [`CompiledPolicy::compile`] turns a
//! tenant's policy TOML into matchers (the control plane calls the same
//! function to validate a policy before accepting it). Per process:
//! [`tokens::warm_up`] builds the BPE tables (~150 ms) and the PII patterns
//! compile on first use.
//!
//! Nothing here logs, and nothing here stores prompt content: findings are
//! counts and offsets, never values.
//!
//! Measured (`cargo bench -p sluice-benches --bench policy`, the project's
//! shared 2-core VM, medians; BENCHMARKS.md has the history): reading a
//! 2 KB OpenAI body 1.2 µs; the whole pass (read + 10 rules + all 8
//! detectors) on a 2 KB prompt 9.2 µs the first time, 2.1 µs once its text
//! is remembered (`rules/memo.rs`); 6.1 µs when one e-mail address is
//! redacted and the body rewritten. Token counting: 3.8 µs per KB of text
//! whose words were seen before (`tokens.rs` remembers segments), about
//! 11 µs per KB of new words; inline completion counting 187 MiB/s.

pub mod extract;
pub(crate) mod json;
pub mod pii;
pub mod rules;
pub mod tokens;

use crate::dialect::Dialect;
pub use extract::{extract, ExtractError, RequestView, TextKind, TextRef};
pub use pii::{Detector, PiiAction, PiiConfig, PiiFindings, PiiMatch, PiiScanner};
pub use rules::{CompiledPolicy, Decision, PolicyError, RequestContext, RuleAction, Verdict};

/// Applies `policy` to a request already read by [`extract()`]: rules, then
/// PII, over `view`'s texts; `body` is the raw body, rewritten if redaction
/// is needed.
pub fn evaluate(policy: &CompiledPolicy, view: &RequestView<'_>, key_id: &str, body: &[u8]) -> Decision {
    policy.evaluate(&RequestContext { view, key_id, body })
}

/// Reads `body` as dialect `api` and applies `policy` to it in one call.
/// A body that cannot be read is an error (a 400 for the caller), not a
/// policy verdict.
pub fn extract_and_evaluate<'b>(
    policy: &CompiledPolicy,
    api: Dialect,
    key_id: &str,
    body: &'b [u8],
) -> Result<(RequestView<'b>, Decision), ExtractError> {
    let view = extract(api, body)?;
    let decision = evaluate(policy, &view, key_id, body);
    Ok((view, decision))
}
