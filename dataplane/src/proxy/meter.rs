//! Admission and settlement: policy, prompt tokens, rate limits, credit.
//!
//! [`admit`] runs after the body is read and before anything is sent
//! upstream. It evaluates the tenant's policy (rules, allow-list, PII), counts
//! prompt tokens, takes from the request and token rate limits, and reserves
//! the worst-case cost against the tenant's credit. [`settle`] runs exactly
//! once when the request ends, however it ends: the real cost is charged,
//! the rest of the reservation and of the token budget is given back.

use crate::respond::{ErrorKind, Reject};
use sluice_contract::policy::tokens::{self, Encoding};
use sluice_contract::policy::{CompiledPolicy, RequestContext, RequestView, Verdict};
use sluice_contract::quota::credit::Credit;
use sluice_contract::quota::gcra::Gcra;
use sluice_contract::quota::now_ns;
use sluice_contract::quota::price::Price;
use sluice_contract::record::{self, Outcome, Record, Usage};
use sluice_contract::snapshot::{Index, KeyEntry, RouteEntry};
use std::sync::Arc;

/// Most choices (`n`) one request may ask for, as OpenAI allows.
pub const MAX_N: u64 = 128;

/// Tokens OpenAI adds per message and per reply beyond the texts; the
/// reservation counts them so that a provider's figure cannot exceed it.
const OVERHEAD_PER_TEXT: u64 = 4;
const OVERHEAD_PER_REQUEST: u64 = 8;

/// What admission took, to be settled when the request ends. It is also the
/// guard of what it took: dropped without [`settle`] (a refusal part-way
/// through admission, or a request that never got to settle), it gives back
/// every request, token and reservation it holds.
pub struct Admission {
    /// Tokenizer for this model; `None` when tokens are not counted locally.
    pub encoding: Option<Encoding>,
    /// The request limiters taken from (tenant's, key's).
    rpm: [Option<Arc<Gcra>>; 2],
    /// The token limiters taken from (tenant's, key's).
    tpm: [Option<Arc<Gcra>>; 2],
    tokens_taken: u64,
    credit: Option<(Arc<Credit>, i64)>,
    /// The price reserved by: of the route target whose worst case is the
    /// highest (each target priced by its upstream model).
    price: Option<Price>,
    /// The price of the model that served, once [`Admission::served`] said.
    served: Option<Option<Price>>,
    /// A request the provider does not charge for (count_tokens): it stays
    /// at [`Price::FREE`] whichever model serves it.
    free: bool,
    /// The output limit to set upstream (field, tokens): the body set none,
    /// and the reservation (or the policy's cap) assumed this one.
    pub limit: Option<(&'static str, u64)>,
    /// The tenant's place among its requests in flight, given back when
    /// the admission is settled or dropped.
    _slot: Option<sluice_contract::quota::inflight::Slot>,
    /// When the limiters were taken from.
    at_ns: u64,
    settled: bool,
    /// A response cache hit: the share of its cost charged, in millionths.
    hit_share_ppm: Option<u32>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("tokens_taken", &self.tokens_taken)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// Notes the price of the model the upstream served (the target's
    /// upstream model, not the client's alias): settle prices by it.
    pub fn served(&mut self, price: Option<Price>) {
        if !self.free {
            self.served = Some(price);
        }
    }

    /// The price the request is settled by: the served model's, or the
    /// one reserved with.
    pub fn price(&self) -> Option<Price> {
        self.served.unwrap_or(self.price)
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let now = self.at_ns;
        self.rpm.iter().flatten().for_each(|g| g.refund(now, 1));
        self.tpm
            .iter()
            .flatten()
            .for_each(|g| g.refund(now, self.tokens_taken));
        if let Some((credit, reserved)) = &self.credit {
            credit.settle(*reserved, 0);
        }
    }
}

/// Admits the request described by `view`, or refuses it; notes in `record`
/// what the policy and the counting found. On success returns the body to
/// forward when the policy redacted it.
pub fn admit(
    index: &Index,
    key: &KeyEntry,
    view: &RequestView<'_>,
    body: &[u8],
    count_tokens: bool,
    record: &mut Record,
) -> Result<(Admission, Option<Vec<u8>>), Reject> {
    admit_probing(index, key, view, body, count_tokens, record, |_| None)
}

/// A response cache hit found by admission's probe: the share of the
/// cached response's cost charged (millionths) and the price it was
/// served at.
pub type CacheHit = (u32, Option<Price>);

/// [`admit`], with `probe` run on the body as it would be forwarded once
/// the policy allowed it and the rate limits took the request: a hit
/// (`Some`) reserves no credit, and is settled at its share of the cached
/// response's cost.
pub fn admit_probing(
    index: &Index,
    key: &KeyEntry,
    view: &RequestView<'_>,
    body: &[u8],
    count_tokens: bool,
    record: &mut Record,
    probe: impl FnOnce(&[u8]) -> Option<CacheHit>,
) -> Result<(Admission, Option<Vec<u8>>), Reject> {
    let tenant = &key.tenant;
    let redacted = match &tenant.policy {
        Some(policy) => apply_policy(policy, view, &key.id, body, record)?,
        None => None,
    };

    let (encoding, estimated) = tokens::encoding_for(&view.model);
    let prompt = if count_tokens {
        // Token ids (embeddings input) count as the tokens they are.
        let n = tokens::count_all(encoding, view.texts.iter().map(|t| t.text.as_ref())) + view.token_ids;
        record.prompt_tokens_counted = Some(n);
        record.tokens_estimated =
            estimated || record.route.dialect() == Some(sluice_contract::dialect::Dialect::Anthropic);
        n
    } else {
        // Not counted: no text encodes to fewer than one token per four bytes
        // often enough to matter for a worst-case reservation, so bound by bytes.
        view.texts.iter().map(|t| t.text.len() as u64).sum::<u64>() + view.token_ids
    };

    // Counting tokens is free at the provider: nothing is generated, nothing
    // is charged, and no credit is needed. Embeddings generate nothing
    // either: only their input is charged.
    let free = record.route.is_free();
    let generates = record.route.generates();
    let n = view.n.unwrap_or(1).max(1);
    if n > MAX_N {
        return Err(Reject::with(
            ErrorKind::InvalidField,
            format!("n must be at most {MAX_N}"),
        ));
    }
    let mut reserve_prompt = prompt + OVERHEAD_PER_REQUEST + OVERHEAD_PER_TEXT * view.texts.len() as u64;
    if view.media > 0 {
        reserve_prompt = reserve_prompt.saturating_add(media_reserve(view, body.len()));
    }
    if count_tokens && record.tokens_estimated {
        // Another tokenizer's count (Claude's counts more than o200k's):
        // reserve a quarter more, so a provider's figure stays within it.
        reserve_prompt += reserve_prompt.div_ceil(4);
    }
    // The output cap first (any target's), then the dearest target for the
    // worst case that cap allows.
    let (price, _) = price_by_targets(index, key, &view.model, |_| 0);
    // Completion tokens per choice: what the body asked for; else the
    // smallest of the policy's cap, the model's own cap and the tenant's
    // default, which is then set upstream so the provider cannot exceed
    // what was reserved.
    let cap = tenant.policy.as_ref().and_then(|p| p.max_tokens_cap());
    let (per_choice, limit) = match view.max_tokens {
        _ if !generates => (0, None),
        Some(asked) => (asked, None),
        None => {
            let bound = [cap, price.and_then(|p| p.max_output_tokens)]
                .into_iter()
                .flatten()
                .fold(tenant.default_max_tokens, u64::min);
            let field = match view.api {
                sluice_contract::dialect::Dialect::Anthropic => "max_tokens",
                sluice_contract::dialect::Dialect::OpenAiResponses => "max_output_tokens",
                sluice_contract::dialect::Dialect::Gemini => super::forward::gemini::LIMIT,
                _ => "max_completion_tokens",
            };
            let inject = cap.is_some() || tenant.credit.is_some();
            (bound, inject.then_some((field, bound)))
        }
    };
    // `n` choices each produce up to the limit.
    let max_out = per_choice.saturating_mul(n);
    let (price, unpriced_target) = match price {
        _ if free => (Some(Price::FREE), false),
        Some(_) => price_by_targets(index, key, &view.model, |p| {
            p.worst_case_micros(reserve_prompt, max_out)
        }),
        None => (None, true),
    };
    // From here on, whatever is taken is given back if admission fails.
    let mut adm = Admission {
        encoding: count_tokens.then_some(encoding),
        rpm: [None, None],
        tpm: [None, None],
        tokens_taken: reserve_prompt.saturating_add(max_out),
        credit: None,
        price,
        served: None,
        free,
        limit,
        _slot: None,
        at_ns: now_ns(),
        settled: false,
        hit_share_ppm: None,
    };
    if let Some(in_flight) = &tenant.in_flight {
        adm._slot = Some(in_flight.enter().ok_or_else(|| {
            let mut r = Reject::with(
                ErrorKind::RateLimited,
                format!(
                    "concurrency limit of {} requests in flight reached; retry when one ends",
                    in_flight.limit()
                ),
            );
            r.headers = vec![("retry-after", "1".into())];
            r
        })?);
    }
    let now = adm.at_ns;
    for (slot, limiter) in [&tenant.rpm, &key.rpm].into_iter().enumerate() {
        let Some(limiter) = limiter else { continue };
        if let Err(retry) = limiter.take(now, 1) {
            return Err(rate_limited("requests", limiter, retry.ns, now));
        }
        adm.rpm[slot] = Some(limiter.clone());
    }
    for (slot, limiter) in [&tenant.tpm, &key.tpm].into_iter().enumerate() {
        let Some(limiter) = limiter else { continue };
        if let Err(retry) = limiter.take(now, adm.tokens_taken) {
            return Err(rate_limited("tokens", limiter, retry.ns, now));
        }
        adm.tpm[slot] = Some(limiter.clone());
    }
    if let Some((share, price)) = probe(redacted.as_deref().unwrap_or(body)) {
        // Served from memory: nothing to reserve; the hit's price, if any,
        // is charged when it settles.
        adm.hit_share_ppm = Some(share);
        adm.served = Some(price);
        adm.credit = tenant.credit.clone().map(|c| (c, 0));
        return Ok((adm, redacted));
    }
    match (&tenant.credit, adm.price) {
        _ if free => {}
        (Some(_), Some(_)) if unpriced_target => {
            return Err(Reject::with(
                ErrorKind::InsufficientCredit,
                format!(
                    "a target of model {:?} has no price; a credit-metered request cannot be admitted",
                    view.model
                ),
            ));
        }
        (Some(credit), Some(price)) => {
            let worst = i64::try_from(price.worst_case_micros(reserve_prompt, max_out)).unwrap_or(i64::MAX);
            if !credit.reserve(worst) {
                return Err(Reject::with(
                    ErrorKind::InsufficientCredit,
                    format!(
                        "insufficient credit: this request may cost up to ${:.6}, the balance is ${:.6}",
                        worst as f64 / 1e6,
                        credit.balance().max(0) as f64 / 1e6
                    ),
                ));
            }
            adm.credit = Some((credit.clone(), worst));
        }
        (Some(_), None) => {
            // Credit-metered tenant, model without a price: it cannot be billed.
            return Err(Reject::with(
                ErrorKind::InsufficientCredit,
                format!(
                    "model {:?} has no price; a credit-metered request cannot be admitted",
                    view.model
                ),
            ));
        }
        (None, _) => {}
    }
    Ok((adm, redacted))
}

/// What the route's targets cost: each priced by the model it sends
/// upstream (an alias has no price of its own), the one whose `worst` is
/// highest kept, with `max_output_tokens` the largest of any target; and
/// whether some target has no price. Without a route, the model's own.
fn price_by_targets(
    index: &Index,
    key: &KeyEntry,
    model: &str,
    worst: impl Fn(&Price) -> u64,
) -> (Option<Price>, bool) {
    let Some(RouteEntry::Targets(targets)) = key.tenant.routes.get(model) else {
        return (index.prices.lookup(model), false);
    };
    let mut best: Option<(u64, Price)> = None;
    let mut max_out: Option<u64> = None;
    let mut unpriced = false;
    for t in targets.iter() {
        match index.prices.lookup(t.model.as_deref().unwrap_or(model)) {
            None => unpriced = true,
            Some(p) => {
                max_out = max_out.max(p.max_output_tokens);
                let w = worst(&p);
                if best.is_none_or(|(b, _)| w > b) {
                    best = Some((w, p));
                }
            }
        }
    }
    let best = best.map(|(_, p)| Price {
        max_output_tokens: max_out,
        ..p
    });
    (best, unpriced)
}

fn apply_policy(
    policy: &CompiledPolicy,
    view: &RequestView<'_>,
    key_id: &str,
    body: &[u8],
    record: &mut Record,
) -> Result<Option<Vec<u8>>, Reject> {
    let decision = policy.evaluate(&RequestContext { view, key_id, body });
    record.rule_ids = decision.matched.iter().map(|id| id.to_string()).collect();
    record.pii = decision
        .pii
        .counts()
        .map(|(d, n)| (d.name().to_owned(), n))
        .collect();
    match decision.verdict {
        Verdict::Allow => {
            record.verdict = Some(record::Verdict::Allow);
            Ok(decision.redacted_body)
        }
        Verdict::Block { rule_id } => {
            record.verdict = Some(record::Verdict::Block);
            Err(Reject::with(
                ErrorKind::PolicyBlocked,
                format!("request blocked by policy rule `{rule_id}`"),
            ))
        }
    }
}

fn rate_limited(what: &'static str, limiter: &Gcra, retry_ns: u64, now: u64) -> Reject {
    let retry_ms = retry_ns.div_ceil(1_000_000).max(1);
    let mut r = Reject::with(
        ErrorKind::RateLimited,
        format!(
            "rate limit of {} {what} per minute reached; retry in {retry_ms} ms",
            limiter.limit()
        ),
    );
    let reset = format!("{}ms", limiter.reset_ns(now).div_ceil(1_000_000));
    r.headers = vec![
        ("retry-after", retry_ms.div_ceil(1000).to_string()),
        ("retry-after-ms", retry_ms.to_string()),
        (
            if what == "requests" {
                "x-ratelimit-limit-requests"
            } else {
                "x-ratelimit-limit-tokens"
            },
            limiter.limit().to_string(),
        ),
        (
            if what == "requests" {
                "x-ratelimit-remaining-requests"
            } else {
                "x-ratelimit-remaining-tokens"
            },
            limiter.remaining(now).to_string(),
        ),
        (
            if what == "requests" {
                "x-ratelimit-reset-requests"
            } else {
                "x-ratelimit-reset-tokens"
            },
            reset,
        ),
    ];
    r
}

/// Settles `adm` against what `record` says happened; sets the cost.
pub fn settle(mut adm: Admission, record: &mut Record) {
    adm.settled = true;
    let billable = !matches!(
        record.outcome,
        Outcome::Rejected | Outcome::UpstreamError | Outcome::UpstreamUnavailable
    ) && record.status < 400;
    let used = if billable {
        let cut = matches!(record.outcome, Outcome::Truncated | Outcome::Cancelled);
        let counted_out = record.completion_tokens_counted.unwrap_or(0);
        record
            .usage
            .map(|mut u| {
                // A stream cut before its final usage: what the provider said so
                // far (Anthropic's message_start: 1 output token) is less than
                // what was streamed, which the gateway counted.
                if cut {
                    u.output_tokens = u.output_tokens.max(counted_out);
                }
                u
            })
            .or_else(|| {
                let input = record.prompt_tokens_counted?;
                Some(Usage {
                    input_tokens: input,
                    output_tokens: record.completion_tokens_counted.unwrap_or(0),
                    ..Usage::default()
                })
            })
    } else {
        None
    };
    // Priced by the model that served; before an upstream answered, by the
    // price reserved with.
    let price = adm.served.unwrap_or(adm.price);
    let cost = match (used, price) {
        (Some(u), Some(p)) => p.cost_micros(&u),
        _ => 0,
    };
    let cost = match adm.hit_share_ppm {
        Some(ppm) => {
            let charged = (u128::from(cost) * u128::from(ppm)).div_ceil(1_000_000) as u64;
            record.saved_micros = Some(cost - charged.min(cost));
            charged.min(cost)
        }
        None => cost,
    };
    match price {
        Some(_) => record.cost_micros = Some(cost),
        // Tokens were used and nothing can price them: say so.
        None => record.unpriced = used.is_some_and(|u| u.input_tokens + u.output_tokens > 0),
    }
    if let Some((credit, reserved)) = &adm.credit {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        // The balance never goes below zero: what it cannot cover is an
        // overrun, recorded; the empty balance refuses the tenant's next
        // request until a grant refills it.
        let charged = credit.settle(*reserved, cost);
        if charged < cost {
            record.overrun_micros = Some(u64::try_from(cost - charged).unwrap_or(0));
        }
    }
    let used_tokens = used.map_or(0, |u| u.input_tokens + u.output_tokens);
    let unused = adm.tokens_taken.saturating_sub(used_tokens);
    if unused > 0 {
        let now = now_ns();
        adm.tpm.iter().flatten().for_each(|g| g.refund(now, unused));
    }
}

/// Prompt tokens reserved for a request's media parts (images, audio,
/// files), which the gateway does not count: for each part the most any
/// provider documents for one image ([`MEDIA_PART_TOKENS`]: gpt-4o-mini
/// bills a large image as up to 25,501 tokens; Claude about 1,600;
/// Gemini 258), and, for inline payloads (base64 audio, PDFs), a token for
/// every 4 bytes of the body that is not prompt text. Settle charges what
/// the provider reports; this only bounds the worst case.
fn media_reserve(view: &RequestView<'_>, body_len: usize) -> u64 {
    let text: usize = view.texts.iter().map(|t| t.text.len()).sum();
    let payload = body_len.saturating_sub(text) as u64;
    u64::from(view.media)
        .saturating_mul(MEDIA_PART_TOKENS)
        .saturating_add(payload / 4)
}

/// Tokens reserved per media part (see [`media_reserve`]).
const MEDIA_PART_TOKENS: u64 = 25_600;

#[cfg(test)]
mod tests;
