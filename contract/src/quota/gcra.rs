//! Generic cell rate algorithm on one atomic: the theoretical arrival time.
//!
//! A limit of R per minute admits a burst of R, then one every 60/R seconds.
//! Taking `cost` units moves the arrival time forward by `cost` emission
//! intervals; a request that would move it beyond the burst tolerance is
//! refused with the time until it would fit. Refunds move it back.

use std::sync::atomic::{AtomicU64, Ordering};

const MINUTE_NS: u64 = 60_000_000_000;

/// One rate limit.
#[derive(Debug)]
pub struct Gcra {
    tat_ns: AtomicU64,
    emission_ns: u64,
    per_minute: u64,
}

/// A refused take: how long until it would be admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter {
    /// Nanoseconds to wait.
    pub ns: u64,
}

impl Gcra {
    /// `per_minute` units a minute (at least 1).
    pub fn per_minute(per_minute: u64) -> Self {
        let per_minute = per_minute.max(1);
        Gcra {
            tat_ns: AtomicU64::new(0),
            emission_ns: (MINUTE_NS / per_minute).max(1),
            per_minute,
        }
    }

    /// The same limit at another rate, as of `now_ns`: the units already
    /// taken from this burst stay taken (at most a whole new burst), so a
    /// change of rate neither refills the burst nor forgets what was spent.
    /// This is what lets control move a tenant's rate between data planes
    /// (a fleet-wide limit) without handing out fresh bursts.
    pub fn rescaled(&self, per_minute: u64, now_ns: u64) -> Gcra {
        let next = Gcra::per_minute(per_minute);
        let used_ns = self.tat_ns.load(Ordering::Relaxed).saturating_sub(now_ns);
        // Units in flight in the old bucket (rounded up: never a free unit).
        let used = used_ns.div_ceil(self.emission_ns).min(next.per_minute);
        if used > 0 {
            next.tat_ns.store(
                now_ns.saturating_add(used.saturating_mul(next.emission_ns)),
                Ordering::Relaxed,
            );
        }
        next
    }

    /// The limit, per minute.
    pub fn limit(&self) -> u64 {
        self.per_minute
    }

    /// Takes `cost` units at `now_ns`; on success returns the units left in
    /// the burst.
    pub fn take(&self, now_ns: u64, cost: u64) -> Result<u64, RetryAfter> {
        let increment = cost.saturating_mul(self.emission_ns);
        let tolerance = MINUTE_NS;
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let base = tat.max(now_ns);
            let new_tat = base.saturating_add(increment);
            if new_tat > now_ns.saturating_add(tolerance) {
                return Err(RetryAfter {
                    ns: new_tat - now_ns - tolerance,
                });
            }
            match self
                .tat_ns
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    let used = new_tat - now_ns;
                    return Ok((tolerance - used) / self.emission_ns);
                }
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back `units` taken earlier (e.g. tokens reserved but not used).
    pub fn refund(&self, now_ns: u64, units: u64) {
        let decrement = units.saturating_mul(self.emission_ns);
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let new_tat = tat.saturating_sub(decrement).max(now_ns.min(tat));
            match self
                .tat_ns
                .compare_exchange_weak(tat, new_tat, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Units available now, without taking any.
    pub fn remaining(&self, now_ns: u64) -> u64 {
        let tat = self.tat_ns.load(Ordering::Relaxed).max(now_ns);
        MINUTE_NS.saturating_sub(tat - now_ns) / self.emission_ns
    }

    /// Nanoseconds until the burst is whole again.
    pub fn reset_ns(&self, now_ns: u64) -> u64 {
        self.tat_ns.load(Ordering::Relaxed).saturating_sub(now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let g = Gcra::per_minute(60);
        let t0 = 1_000 * MINUTE_NS;
        for i in 0..60 {
            assert!(g.take(t0, 1).is_ok(), "burst request {i}");
        }
        let refused = g.take(t0, 1).unwrap_err();
        assert_eq!(refused.ns, 1_000_000_000);
        assert!(g.take(t0 + 999_999_999, 1).is_err());
        assert!(g.take(t0 + 1_000_000_000, 1).is_ok());
    }

    #[test]
    fn cost_and_refund() {
        let g = Gcra::per_minute(1000);
        let t = MINUTE_NS;
        assert_eq!(g.take(t, 600), Ok(400));
        assert!(g.take(t, 500).is_err());
        g.refund(t, 300);
        assert_eq!(g.remaining(t), 700);
        assert!(g.take(t, 500).is_ok());
        g.refund(t, 10_000);
        assert_eq!(g.remaining(t), 1000);
    }

    #[test]
    fn a_new_rate_keeps_what_was_taken() {
        let t = 10 * MINUTE_NS;
        let g = Gcra::per_minute(100);
        assert_eq!(g.take(t, 40), Ok(60));
        // Halved: 40 of 50 taken, 10 left; doubled: 40 of 200, 160 left.
        assert_eq!(g.rescaled(50, t).remaining(t), 10);
        assert_eq!(g.rescaled(200, t).remaining(t), 160);
        // Cut below what was taken: nothing left until it drains at the new rate.
        let low = g.rescaled(20, t);
        assert_eq!(low.remaining(t), 0);
        assert!(low.take(t, 1).is_err());
        assert!(low.take(t + 3_000_000_000, 1).is_ok());
        // An idle bucket stays whole.
        assert_eq!(Gcra::per_minute(10).rescaled(30, t).remaining(t), 30);
    }

    #[test]
    fn concurrent_takes_never_exceed_the_burst() {
        let g = std::sync::Arc::new(Gcra::per_minute(1000));
        let t = MINUTE_NS;
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || (0..1000).filter(|_| g.take(t, 1).is_ok()).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 1000);
    }
}
