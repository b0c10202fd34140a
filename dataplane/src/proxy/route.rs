//! Phase 5, route: the model alias gives the tenant's targets, and the
//! order they are tried in (by priority; within a priority, a weighted
//! random order, so that traffic spreads over keys and upstreams by weight).

use crate::respond::{ErrorKind, Reject};
use sluice_contract::snapshot::{RouteEntry, RouteTarget, TenantEntry};
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

/// The order to try `targets` in (they arrive sorted by priority): each
/// priority group in turn, and within one a weighted random order drawn
/// from `random`.
pub fn order(targets: &[RouteTarget], mut random: impl FnMut() -> u64) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(targets.len());
    let mut start = 0;
    while start < targets.len() {
        let priority = targets[start].priority;
        let end = targets[start..]
            .iter()
            .position(|t| t.priority != priority)
            .map_or(targets.len(), |n| start + n);
        let mut group: Vec<usize> = (start..end).collect();
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
        start = end;
    }
    order
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
