//! A tenant's requests in flight, against a cap: one atomic counter shared
//! by every worker, taken at admission and given back when the request
//! (a stream: its last byte) is done.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Requests in flight and the most allowed at once.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicU32,
    limit: AtomicU32,
}

/// One request in flight; gives its place back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// Sets the cap; requests already in flight keep their places.
    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Release);
    }

    /// The cap.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Acquire)
    }

    /// Requests in flight now.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// A place for one more request, or `None` when the cap is reached.
    pub fn enter(self: &Arc<Self>) -> Option<Slot> {
        let limit = self.limit();
        let mut cur = self.count.load(Ordering::Acquire);
        loop {
            if cur >= limit {
                return None;
            }
            match self
                .count
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_under_threads_and_places_come_back() {
        let f = Arc::new(InFlight::default());
        f.set_limit(5);
        let held: Vec<Slot> = (0..8).filter_map(|_| f.enter()).collect();
        assert_eq!((held.len(), f.count()), (5, 5));
        drop(held);
        assert_eq!(f.count(), 0);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let f = f.clone();
                std::thread::spawn(move || {
                    let mut max = 0;
                    for _ in 0..10_000 {
                        if let Some(_s) = f.enter() {
                            max = max.max(f.count());
                        }
                    }
                    max
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap() <= 5);
        }
        assert_eq!(f.count(), 0);
    }
}
