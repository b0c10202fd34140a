//! Prepaid credit in micro-dollars, reserved and settled with atomics.
//!
//! At admission the worst case is reserved; at completion the real cost is
//! settled and the rest returned. A reservation that does not fit is refused,
//! so concurrent requests on any worker can never take the balance below
//! zero. The balance here is what the control plane granted this data plane
//! (its lease), minus what was spent on it.

use std::sync::atomic::{AtomicI64, Ordering};

/// One tenant's balance on this data plane.
#[derive(Debug, Default)]
pub struct Credit {
    balance: AtomicI64,
    granted: AtomicI64,
}

impl Credit {
    /// Brings the cumulative grant up (or down) to `total`, adjusting the
    /// balance by the difference. Idempotent for the same total.
    pub fn grant_total(&self, total: i64) {
        let before = self.granted.swap(total, Ordering::AcqRel);
        self.balance.fetch_add(total - before, Ordering::AcqRel);
    }

    /// Balance now, micro-dollars.
    pub fn balance(&self) -> i64 {
        self.balance.load(Ordering::Acquire)
    }

    /// Reserves `amount`; `false` (and nothing taken) when it does not fit.
    pub fn reserve(&self, amount: i64) -> bool {
        let mut cur = self.balance.load(Ordering::Acquire);
        loop {
            if amount > cur {
                return false;
            }
            match self
                .balance
                .compare_exchange_weak(cur, cur - amount, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Settles a reservation of `reserved` whose real cost was `actual`.
    /// Returns what was actually charged: never more than the balance allows
    /// (a provider that reports more than the worst case cannot push the
    /// balance below zero; the record still carries the full cost).
    pub fn settle(&self, reserved: i64, actual: i64) -> i64 {
        if actual <= reserved {
            self.balance.fetch_add(reserved - actual, Ordering::AcqRel);
            return actual;
        }
        let extra = actual - reserved;
        let mut cur = self.balance.load(Ordering::Acquire);
        loop {
            let take = extra.min(cur.max(0));
            match self
                .balance
                .compare_exchange_weak(cur, cur - take, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return reserved + take,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reserve_settle() {
        let c = Credit::default();
        c.grant_total(1000);
        c.grant_total(1000);
        assert_eq!(c.balance(), 1000);
        assert!(c.reserve(600));
        assert!(!c.reserve(600));
        assert_eq!(c.settle(600, 100), 100);
        assert_eq!(c.balance(), 900);
        assert!(c.reserve(900));
        assert_eq!(c.settle(900, 2000), 900);
        assert_eq!(c.balance(), 0);
        c.grant_total(1500);
        assert_eq!(c.balance(), 500);
    }

    #[test]
    fn concurrent_reservations_never_overdraw() {
        let c = Arc::new(Credit::default());
        c.grant_total(100);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..100).filter(|_| c.reserve(1)).count())
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 100);
        assert_eq!(c.balance(), 0);
    }
}
