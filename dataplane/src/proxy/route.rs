//! Phase 5, route: the model alias gives the tenant's targets, and the
//! order they are considered in, by the route's strategy: `ordered` (by
//! priority; within a priority, a weighted random order, so that traffic
//! spreads over keys and upstreams by weight), `weighted` (weights only),
//! `least-latency` (power of two choices over a peak EWMA of time to first
//! byte) or `least-cost` (price × counted tokens). Health is applied on
//! top, in [`super::forward`].

use crate::respond::{ErrorKind, Reject};
use sluice_contract::dialect::Dialect;
use sluice_contract::health::State;
use sluice_contract::snapshot::{ProviderKind, RouteEntry, RouteTarget, Strategy, TenantEntry};
use std::sync::Arc;

/// The targets that may serve `model` for `tenant`, or the refusal: no such
/// route, or none of its targets in the tenant's region.
pub fn targets(tenant: &TenantEntry, model: &str) -> Result<Arc<[RouteTarget]>, Reject> {
    match tenant.routes.get(model) {
        Some(RouteEntry::Targets(t)) => Ok(t.clone()),
        Some(RouteEntry::OutOfRegion) => {
            let region = tenant.region.as_deref().unwrap_or("");
            Err(Reject::with(
                ErrorKind::OutOfRegion,
                format!(
                    "no upstream in region {region:?} serves model {:?}",
                    truncate(model)
                ),
            ))
        }
        None => Err(Reject::with(
            ErrorKind::UnknownModel,
            format!(
                "The model `{}` does not exist or you do not have access to it.",
                truncate(model)
            ),
        )),
    }
}

/// Refuses a request whose route sends it to an upstream of another API:
/// Gemini's bodies go to Gemini upstreams only, and theirs take no other
/// (the gateway does not translate between them).
pub fn same_api(targets: &[RouteTarget], dialect: Dialect, model: &str) -> Result<(), Reject> {
    let gemini = dialect == Dialect::Gemini;
    if targets
        .iter()
        .all(|t| (t.upstream.kind == ProviderKind::Gemini) == gemini)
    {
        return Ok(());
    }
    let api = if gemini { "Gemini" } else { "OpenAI or Anthropic" };
    Err(Reject::with(
        ErrorKind::InvalidField,
        format!(
            "model {:?} is not served over the {api} API by this gateway",
            truncate(model)
        ),
    ))
}

/// What a strategy may weigh besides the targets themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Choice {
    /// Now, on [`sluice_contract::quota::now_ns`]'s clock.
    pub now: u64,
    /// Prompt tokens counted at admission.
    pub prompt_tokens: u64,
    /// Completion tokens the request asks for at most.
    pub max_output: u64,
}

/// The order to consider `targets` in under the route's strategy (every
/// target appears once; health is applied by the caller, which skips
/// ejected and cooling targets while another is usable).
pub fn order(targets: &[RouteTarget], choice: &Choice, mut random: impl FnMut() -> u64) -> Vec<usize> {
    let Some(first) = targets.first() else {
        return Vec::new();
    };
    match first.policy.strategy {
        Strategy::Ordered => ordered(targets, random),
        Strategy::Weighted => {
            let mut order = Vec::with_capacity(targets.len());
            let mut group: Vec<usize> = (0..targets.len()).collect();
            weighted_into(&mut order, &mut group, targets, &mut random);
            order
        }
        Strategy::LeastLatency => {
            let mut order = ordered(targets, &mut random);
            least_latency(&mut order, targets, choice.now, &mut random);
            order
        }
        Strategy::LeastCost => {
            let mut order = ordered(targets, &mut random);
            // Stable: equal costs keep the priority and weighted order.
            order.sort_by_key(|&i| estimated_cost(&targets[i], choice));
            order
        }
    }
}

/// The strategy `ordered`: each priority group in turn (they arrive sorted
/// by priority), and within one a weighted random order drawn from `random`.
pub fn ordered(targets: &[RouteTarget], mut random: impl FnMut() -> u64) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(targets.len());
    let mut start = 0;
    while start < targets.len() {
        let priority = targets[start].priority;
        let end = targets[start..]
            .iter()
            .position(|t| t.priority != priority)
            .map_or(targets.len(), |n| start + n);
        let mut group: Vec<usize> = (start..end).collect();
        weighted_into(&mut order, &mut group, targets, &mut random);
        start = end;
    }
    order
}

/// Appends `group` to `order` in a weighted random order (each next one
/// drawn with probability proportional to its weight among those left).
fn weighted_into(
    order: &mut Vec<usize>,
    group: &mut Vec<usize>,
    targets: &[RouteTarget],
    random: &mut impl FnMut() -> u64,
) {
    while !group.is_empty() {
        let total: u64 = group.iter().map(|&i| u64::from(targets[i].weight)).sum();
        let mut pick = if total > 0 { random() % total } else { 0 };
        let mut chosen = 0;
        for (gi, &i) in group.iter().enumerate() {
            let weight = u64::from(targets[i].weight);
            if pick < weight {
                chosen = gi;
                break;
            }
            pick -= weight;
        }
        order.push(group.remove(chosen));
    }
}

/// Power of two choices: two distinct usable targets drawn at random, the
/// one with the lower latency cost (peak EWMA of time to first byte times
/// requests in flight) goes first; the rest keep their order. With fewer
/// than two healthy targets there is nothing to choose.
fn least_latency(order: &mut [usize], targets: &[RouteTarget], now: u64, random: &mut impl FnMut() -> u64) {
    // Half-open targets are drawn too: otherwise one ejected once would
    // never win a draw, and never get its probe.
    let healthy = |i: usize| matches!(targets[i].health.state(now), State::Healthy | State::HalfOpen);
    let n = order.iter().filter(|&&i| healthy(i)).count();
    if n < 2 {
        return;
    }
    let a = (random() % n as u64) as usize;
    let b = (a + 1 + (random() % (n as u64 - 1)) as usize) % n;
    let position = |k: usize| {
        order
            .iter()
            .enumerate()
            .filter(|&(_, &i)| healthy(i))
            .nth(k)
            .map(|(pos, _)| pos)
    };
    let (Some(pa), Some(pb)) = (position(a), position(b)) else {
        return;
    };
    let cost = |pos: usize| targets[order[pos]].health.latency_cost(now);
    let winner = if cost(pb) < cost(pa) { pb } else { pa };
    order[..=winner].rotate_right(1);
}

/// Least-cost's estimate, micro-dollars × 10⁶: the sent model's price for
/// the counted prompt and the completion asked for; unpriced targets last.
fn estimated_cost(target: &RouteTarget, choice: &Choice) -> u128 {
    match &target.price {
        Some(p) => {
            u128::from(p.input) * u128::from(choice.prompt_tokens)
                + u128::from(p.output) * u128::from(choice.max_output)
        }
        None => u128::MAX,
    }
}

/// Bounds a client-supplied name echoed in an error message.
pub fn truncate(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
