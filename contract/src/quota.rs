//! Quotas shared by all workers of a data plane, with atomics only: rate
//! limits ([`gcra`]), prepaid credit ([`credit`]) and prices ([`price`]).
//!
//! Their state outlives snapshots: [`Registry`] hands the same counters to
//! every snapshot compiled after the first, so a reload neither resets a rate
//! limit nor refunds a balance.

pub mod credit;
pub mod gcra;
pub mod inflight;
pub mod price;

use crate::health::{RetryBudget, TargetHealth};
use credit::Credit;
use gcra::Gcra;
use inflight::InFlight;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Quota state by owner, kept across snapshots. Locked only while a snapshot
/// is compiled (off the request path).
#[derive(Default)]
pub struct Registry {
    limiters: Mutex<HashMap<(String, u64), Arc<Gcra>>>,
    credits: Mutex<HashMap<String, Arc<Credit>>>,
    in_flight: Mutex<HashMap<String, Arc<InFlight>>>,
    /// Health by (upstream, provider key owner, key id).
    health: Mutex<HashMap<(String, String, String), Arc<TargetHealth>>>,
    /// Retry budgets by upstream name.
    budgets: Mutex<HashMap<String, Arc<RetryBudget>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry(..)")
    }
}

impl Registry {
    /// The limiter for `owner` (e.g. `tenant/acme/rpm`) at `per_minute`; the
    /// same one as before unless the rate changed, and then one that keeps
    /// what the old one's burst had spent ([`Gcra::rescaled`]).
    pub fn limiter(&self, owner: &str, per_minute: u64) -> Arc<Gcra> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = map.get(&(owner.to_owned(), per_minute)) {
            return g.clone();
        }
        // A new rate for the same owner carries over what its burst spent.
        let now = now_ns();
        let mut previous = None;
        map.retain(|(o, _), g| {
            if o == owner {
                previous = Some(g.clone());
            }
            o != owner
        });
        let g = Arc::new(match previous {
            Some(old) => old.rescaled(per_minute, now),
            None => Gcra::per_minute(per_minute),
        });
        map.insert((owner.to_owned(), per_minute), g.clone());
        g
    }

    /// The credit of `tenant`, with the cumulative grant brought up to
    /// `granted`, of which control has seen `spent` spent on this data plane.
    pub fn credit(&self, tenant: &str, granted: i64, spent: i64) -> Arc<Credit> {
        let mut map = self.credits.lock().unwrap_or_else(|e| e.into_inner());
        let credit = map
            .entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(Credit::default()))
            .clone();
        credit.grant_total(granted, spent);
        credit
    }

    /// The in-flight counter of `tenant`, capped at `limit`; the same one
    /// across snapshots, so a reload does not forget requests in flight.
    pub fn in_flight(&self, tenant: &str, limit: u32) -> Arc<InFlight> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let f = map.entry(tenant.to_owned()).or_default().clone();
        f.set_limit(limit);
        f
    }

    /// The health of `upstream` used with the key `key_id` of `owner` (empty
    /// for an operator-wide key): the same cell for every route and tenant
    /// that shares the pair, and across snapshots.
    pub fn health(&self, upstream: &Arc<str>, owner: &str, key_id: &Arc<str>) -> Arc<TargetHealth> {
        let mut map = self.health.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((upstream.to_string(), owner.to_owned(), key_id.to_string()))
            .or_insert_with(|| Arc::new(TargetHealth::new(upstream.clone(), key_id.clone())))
            .clone()
    }

    /// Forgets the health of every (upstream, owner, key) not in `used`: a
    /// snapshot that no longer routes to a pair drops it from the metrics
    /// (indexes still running keep their cells until they are dropped).
    pub fn keep_health(&self, used: &std::collections::HashSet<(String, String, String)>) {
        let mut map = self.health.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|k, _| used.contains(k));
    }

    /// The retry budget of `upstream`, kept across snapshots.
    pub fn budget(&self, upstream: &str) -> Arc<RetryBudget> {
        let mut map = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(upstream.to_owned()).or_default().clone()
    }

    /// Every target health cell with the owner of its key (empty for an
    /// operator-wide key), sorted by upstream, owner and key (for metrics and
    /// status pages; takes the lock, so never on the request path).
    pub fn health_cells(&self) -> Vec<(String, Arc<TargetHealth>)> {
        let map = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let mut cells: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        cells.into_iter().map(|((_, owner, _), v)| (owner, v)).collect()
    }
}

/// Nanoseconds on a monotonic clock shared by every thread of the process.
pub fn now_ns() -> u64 {
    static EPOCH: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_nanos() as u64
}
