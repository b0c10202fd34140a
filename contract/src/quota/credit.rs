//! Prepaid credit in micro-dollars, reserved and settled with atomics.
//!
//! At admission the worst case is reserved; at completion the real cost is
//! settled and the rest returned. A reservation that does not fit is refused,
//! so concurrent requests on any worker can never take the balance below
//! zero. The balance here is what the control plane granted this data plane
//! (its lease, a cumulative total), minus what was spent on it.
//!
//! # Spend before this process
//!
//! The grant is cumulative over the data plane's life, but this process only
//! knows what it spent itself. A restarted data plane would otherwise spend
//! its whole grant again. Each snapshot also says what control has seen
//! spent on this data plane (`spent`, the settled cost of the records it
//! stored). Every such record of this process was settled here first, and
//! counted in `spent_here` before it was sent, so `spent − spent_here` never
//! exceeds what earlier processes spent: it is a safe lower bound of it.
//! The balance is charged with the largest such bound seen so far
//! ([`Credit::grant_total`]), so a restart costs at most the records the
//! earlier process had not yet delivered when control made the snapshot
//! (its spool, until control next sends a snapshot), never the whole lease.
//! Snapshots without a control plane carry no `spent`: nothing changes.

use std::sync::atomic::{AtomicI64, Ordering};

/// One tenant's balance on this data plane.
#[derive(Debug, Default)]
pub struct Credit {
    balance: AtomicI64,
    granted: AtomicI64,
    /// The real cost of every request settled by this process (what control
    /// will count once it has the records).
    spent_here: AtomicI64,
    /// The largest lower bound seen of what earlier processes spent.
    spent_before: AtomicI64,
}

impl Credit {
    /// Brings the cumulative grant up (or down) to `total`, adjusting the
    /// balance by the difference, and charges what earlier processes spent
    /// as far as `spent` (control's figure for this data plane) shows it.
    /// Idempotent for the same figures.
    pub fn grant_total(&self, total: i64, spent: i64) {
        let before = self.granted.swap(total, Ordering::AcqRel);
        self.balance.fetch_add(total - before, Ordering::AcqRel);
        let earlier = spent.saturating_sub(self.spent_here.load(Ordering::Acquire));
        let known = self.spent_before.fetch_max(earlier, Ordering::AcqRel);
        if earlier > known {
            self.balance.fetch_sub(earlier - known, Ordering::AcqRel);
        }
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

    /// Settles a reservation of `reserved` whose real cost was `actual`
    /// (before the request's record is sent). Returns what was actually
    /// charged: never more than the balance allows (a provider that reports
    /// more than the worst case cannot push the balance below zero; the
    /// record still carries the full cost).
    pub fn settle(&self, reserved: i64, actual: i64) -> i64 {
        // Counted before the record leaves, so that control's figure never
        // includes a cost this process has not counted (see the module docs).
        self.spent_here.fetch_add(actual.max(0), Ordering::AcqRel);
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
        c.grant_total(1000, 0);
        c.grant_total(1000, 0);
        assert_eq!(c.balance(), 1000);
        assert!(c.reserve(600));
        assert!(!c.reserve(600));
        assert_eq!(c.settle(600, 100), 100);
        assert_eq!(c.balance(), 900);
        assert!(c.reserve(900));
        assert_eq!(c.settle(900, 2000), 900);
        assert_eq!(c.balance(), 0);
        c.grant_total(1500, 0);
        assert_eq!(c.balance(), 500);
    }

    #[test]
    fn concurrent_reservations_never_overdraw() {
        let c = Arc::new(Credit::default());
        c.grant_total(100, 0);
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

    #[test]
    fn a_restart_charges_what_control_saw_spent() {
        // A fresh process on a grant of 1000 of which control saw 700 spent.
        let c = Credit::default();
        c.grant_total(1000, 700);
        assert_eq!(c.balance(), 300);
        c.grant_total(1000, 700);
        assert_eq!(c.balance(), 300, "idempotent");
        // It spends 100; control has not seen it yet, then it has: no change.
        assert!(c.reserve(150));
        c.settle(150, 100);
        assert_eq!(c.balance(), 200);
        c.grant_total(1000, 700);
        c.grant_total(1000, 800);
        assert_eq!(c.balance(), 200, "its own spend is not charged twice");
        // A record of the earlier process arrives late (its spool): charged.
        c.grant_total(1000, 850);
        assert_eq!(c.balance(), 150);
        // An older snapshot never gives anything back.
        c.grant_total(1000, 700);
        assert_eq!(c.balance(), 150);
        // More credit.
        c.grant_total(1500, 850);
        assert_eq!(c.balance(), 650);
    }

    #[test]
    fn without_a_control_figure_nothing_changes() {
        let c = Credit::default();
        c.grant_total(500, 0);
        assert!(c.reserve(500));
        c.settle(500, 400);
        c.grant_total(500, 0);
        assert_eq!(c.balance(), 100);
    }
}
