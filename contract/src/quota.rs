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
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry(..)")
    }
}

impl Registry {
    /// The limiter for `owner` (e.g. `tenant/acme/rpm`) at `per_minute`; the
    /// same one as before unless the rate changed.
    pub fn limiter(&self, owner: &str, per_minute: u64) -> Arc<Gcra> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(o, rate), _| o != owner || *rate == per_minute);
        map.entry((owner.to_owned(), per_minute))
            .or_insert_with(|| Arc::new(Gcra::per_minute(per_minute)))
            .clone()
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
}

/// Nanoseconds on a monotonic clock shared by every thread of the process.
pub fn now_ns() -> u64 {
    static EPOCH: std::sync::LazyLock<std::time::Instant> = std::sync::LazyLock::new(std::time::Instant::now);
    EPOCH.elapsed().as_nanos() as u64
}
