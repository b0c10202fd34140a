//! Rate limits across a fleet: one tenant's `rpm`/`tpm` shared by every data
//! plane, like its credit.
//!
//! A data plane enforces its limits alone, with atomics, so that admission
//! never waits on control. With N data planes each enforcing the whole
//! limit, a tenant would get N times it. Control therefore gives each data
//! plane a *share* of every limit in its own snapshot, and the shares of the
//! data planes that are live sum to the limit:
//!
//! - **Members**: the data planes, not revoked, that talked to control in the
//!   last [`ACTIVE_MS`].
//! - **Shares** ([`weights`]): each member keeps a floor, a quarter of an
//!   even split, so that a request arriving anywhere can be served; the rest
//!   is divided in proportion to each member's requests of that tenant (or
//!   key) over the last minute, refused ones included, so a limit follows
//!   the traffic to where it arrives.
//! - **Rebalancing** (`billing::service::rebalance`): after records are ingested and when a
//!   data plane polls, at most every [`MIN_INTERVAL_MS`] (and at once on a
//!   data plane's first poll); the new shares are
//!   committed (an audited system change) only when a member joined or left
//!   or a share would move by more than a fifth, and the commit wakes every
//!   data plane's long poll. A data plane carries what its bucket already
//!   spent into its new share (`Gcra::rescaled`), so a rebalance hands out no
//!   fresh burst.
//!
//! **Tolerance.** In every snapshot the members' shares sum to the limit
//! (within rounding, and at least 1 a minute each). The fleet can exceed the
//! limit only in the moments around a change of membership: a data plane
//! that joins holds a floor share (a quarter of an even split) on top of the
//! others until the rebalance its first poll triggers, and one that stops
//! talking to control keeps its share, unused by anyone else, until it
//! counts as gone ([`ACTIVE_MS`]). While only one data plane has ever asked,
//! or none is shared, a limit is whole. The concurrency cap stays per data
//! plane.

use crate::store::compile::{floor_share, PPM};
use sluice_contract::record::Record;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A data plane that has not talked to control for this long is no longer a
/// member (its long poll is held 25 s; records ship within seconds).
pub(crate) const ACTIVE_MS: u64 = 90_000;
/// Rebalancing is considered at most this often.
pub(crate) const MIN_INTERVAL_MS: u64 = 2_000;
/// Demand is counted over this long, in [`BUCKETS`] buckets.
const WINDOW_MS: u64 = 60_000;
const BUCKETS: usize = 6;

/// (tenant, gateway key id or "" for the tenant as a whole).
pub(crate) type Subject = (String, String);

/// A share as committed: (tenant, key id or "", data plane number, share in
/// parts per million).
pub(crate) type ShareRow = (String, String, u32, u64);

/// Each limited subject's shares, by data plane number.
pub(crate) type SharesInForce = HashMap<Subject, BTreeMap<u32, u64>>;

/// Requests over the last [`WINDOW_MS`], in buckets of a sixth of it.
#[derive(Clone, Copy, Default)]
struct Window {
    /// (bucket number since the epoch, count).
    buckets: [(u64, u64); BUCKETS],
}

impl Window {
    const SPAN: u64 = WINDOW_MS / BUCKETS as u64;

    fn add(&mut self, now_ms: u64) {
        let n = now_ms / Self::SPAN;
        let slot = &mut self.buckets[(n % BUCKETS as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0);
        }
        slot.1 += 1;
    }

    fn total(&self, now_ms: u64) -> u64 {
        let n = now_ms / Self::SPAN;
        self.buckets
            .iter()
            .filter(|(b, _)| n.saturating_sub(*b) < BUCKETS as u64)
            .map(|(_, c)| c)
            .sum()
    }
}

/// What control knows of the fleet's traffic: kept in memory (a restart
/// starts from even shares of the members).
#[derive(Default)]
pub(crate) struct Fleet {
    demand: Mutex<HashMap<Subject, HashMap<u32, Window>>>,
    last_ms: AtomicU64,
}

impl Fleet {
    /// Counts the requests of `records`, ingested from data plane `dp`.
    pub(crate) fn note<'a>(&self, dp: u32, records: impl Iterator<Item = &'a Record>, now_ms: u64) {
        let mut demand = self
            .demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            let Some(tenant) = r.tenant.as_deref() else {
                continue;
            };
            demand
                .entry((tenant.to_owned(), String::new()))
                .or_default()
                .entry(dp)
                .or_default()
                .add(now_ms);
            if let Some(key) = r.key_id.as_deref() {
                demand
                    .entry((tenant.to_owned(), key.to_owned()))
                    .or_default()
                    .entry(dp)
                    .or_default()
                    .add(now_ms);
            }
        }
    }

    /// Each member's requests of `subject` over the last minute.
    pub(crate) fn demand_of(&self, subject: &Subject, members: &[u32], now_ms: u64) -> Vec<u64> {
        let demand = self
            .demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let per_dp = demand.get(subject);
        members
            .iter()
            .map(|dp| per_dp.and_then(|m| m.get(dp)).map_or(0, |w| w.total(now_ms)))
            .collect()
    }

    /// Forgets what no longer counts: data planes, keys and tenants with no
    /// request in the last minute (so the map follows the live fleet, not
    /// every key ever seen).
    pub(crate) fn prune(&self, now_ms: u64) {
        let mut demand = self
            .demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        demand.retain(|_, per_dp| {
            per_dp.retain(|_, w| w.total(now_ms) > 0);
            !per_dp.is_empty()
        });
    }

    /// Whether a rebalance may run now (at most every [`MIN_INTERVAL_MS`]).
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        now_ms.saturating_sub(last) >= MIN_INTERVAL_MS
            && self
                .last_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// The shares, in [`PPM`], of members whose demands are `demand`: a floor
/// each ([`floor_share`]), the rest in proportion to demand (evenly when
/// there is none). They sum to exactly [`PPM`].
pub(crate) fn weights(demand: &[u64]) -> Vec<u64> {
    let n = demand.len();
    if n == 0 {
        return Vec::new();
    }
    let floor = floor_share(n);
    let rest = PPM - floor * n as u64;
    let total: u128 = demand.iter().map(|&d| u128::from(d)).sum();
    let mut out: Vec<u64> = demand
        .iter()
        .map(|&d| {
            let extra = match (u128::from(rest) * u128::from(d)).checked_div(total) {
                Some(share) => share,
                None => u128::from(rest) / n as u128,
            };
            floor + extra as u64
        })
        .collect();
    // Rounding leftovers go to the busiest member.
    let given: u64 = out.iter().sum();
    let busiest = (0..n)
        .max_by_key(|&i| (demand[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    out[busiest] += PPM - given;
    out
}

/// Whether moving from `old` to `new` (data plane → share) is worth a new
/// snapshot: a member joined or left, or a share moves by more than a fifth
/// (and more than 1 % of the limit).
pub(crate) fn moved(old: &BTreeMap<u32, u64>, new: &BTreeMap<u32, u64>) -> bool {
    if old.len() != new.len() || old.keys().zip(new.keys()).any(|(a, b)| a != b) {
        return true;
    }
    old.values().zip(new.values()).any(|(&a, &b)| {
        let delta = a.abs_diff(b);
        delta > a.max(b) / 5 && delta > PPM / 100
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_the_limit_with_a_floor_each() {
        for demand in [
            vec![0, 0],
            vec![10, 0],
            vec![1, 1, 1],
            vec![7, 0, 993],
            vec![u64::MAX, 1],
        ] {
            let w = weights(&demand);
            assert_eq!(w.iter().sum::<u64>(), PPM, "{demand:?}");
            let floor = floor_share(demand.len());
            assert!(w.iter().all(|&x| x >= floor), "{demand:?} {w:?}");
        }
        // All traffic on one of two: it gets everything but the other's floor.
        assert_eq!(weights(&[100, 0]), vec![PPM - PPM / 8, PPM / 8]);
        assert_eq!(weights(&[0, 0]), vec![PPM / 2, PPM / 2]);
        assert_eq!(weights(&[5]), vec![PPM]);
        assert!(weights(&[]).is_empty());
    }

    #[test]
    fn only_real_moves_are_worth_a_snapshot() {
        let m = |v: &[(u32, u64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        assert!(moved(&m(&[]), &m(&[(1, PPM / 2), (2, PPM / 2)])));
        assert!(moved(
            &m(&[(1, PPM / 2), (2, PPM / 2)]),
            &m(&[(1, PPM / 2), (3, PPM / 2)])
        ));
        assert!(!moved(
            &m(&[(1, 500_000), (2, 500_000)]),
            &m(&[(1, 540_000), (2, 460_000)])
        ));
        assert!(moved(
            &m(&[(1, 500_000), (2, 500_000)]),
            &m(&[(1, 875_000), (2, 125_000)])
        ));
        assert!(!moved(&m(&[]), &m(&[])));
    }

    #[test]
    fn idle_subjects_are_forgotten() {
        let fleet = Fleet::default();
        let mut r = Record::new(0, sluice_contract::record::ApiRoute::ChatCompletions);
        r.tenant = Some("acme".into());
        r.key_id = Some("k1".into());
        fleet.note(1, std::iter::once(&r), 1_000);
        let subject = ("acme".to_owned(), "k1".to_owned());
        fleet.prune(30_000);
        assert_eq!(fleet.demand_of(&subject, &[1], 30_000), vec![1]);
        fleet.prune(200_000);
        assert!(fleet.demand.lock().unwrap().is_empty());
    }

    #[test]
    fn demand_is_counted_over_the_last_minute() {
        let mut w = Window::default();
        w.add(1_000);
        w.add(5_000);
        w.add(30_000);
        assert_eq!(w.total(30_000), 3);
        assert_eq!(w.total(65_000), 1);
        assert_eq!(w.total(200_000), 0);
    }

    #[test]
    fn a_joining_data_plane_gets_a_floor_share() {
        use crate::store::compile::RateShares;
        use sluice_contract::snapshot::types::RateLimit;
        let mut s = RateShares::default();
        let subject = ("acme".to_owned(), String::new());
        s.by_subject
            .entry(subject.clone())
            .or_default()
            .extend([("a".to_owned(), 875_000), ("b".to_owned(), 125_000)]);
        assert_eq!(s.share(&subject, "a"), 875_000);
        assert_eq!(s.share(&subject, "c"), floor_share(3));
        assert_eq!(s.share(&("other".to_owned(), String::new()), "a"), PPM);
        let mut limits = vec![RateLimit {
            tenant: "acme".into(),
            key: None,
            rpm: Some(600),
            tpm: Some(3),
            concurrency: Some(4),
        }];
        s.apply("b", &mut limits);
        assert_eq!(
            (limits[0].rpm, limits[0].tpm, limits[0].concurrency),
            (Some(75), Some(1), Some(4))
        );
    }
}
