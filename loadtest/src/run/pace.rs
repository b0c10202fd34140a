//! Waiting for a request's intended start with sub-millisecond precision.
//!
//! monoio's timer wheel has 1 ms resolution and rounds up, so sleeping on it
//! alone would start each request 0–1 ms late: noise far larger than the
//! latency a gateway adds. The pacer sleeps on the wheel until about a
//! millisecond before the deadline, then hands the last stretch to a helper
//! thread (`spawn_blocking` + `std::thread::sleep`, which is nanosleep)
//! whose completion wakes the runtime. Other tasks keep running meanwhile.
//! The helper's oversleep (timer slack, wake-up) is learned as a moving
//! average and subtracted, so wake-ups land within tens of µs of the slot.

use std::cell::Cell;
use std::time::Duration;

use super::client::Clock;

/// Below this, waiting costs more than it saves: send now.
const SPIN_FLOOR_NS: u64 = 20_000;
/// The wheel is used for waits longer than this.
const WHEEL_ABOVE_NS: u64 = 2_000_000;

/// Per-worker pacer; `precise` off uses the timer wheel only.
pub(crate) struct Pacer {
    clock: Clock,
    precise: bool,
    /// Learned oversleep of the helper thread, ns.
    slack_ns: Cell<u64>,
}

impl Pacer {
    pub(crate) fn new(clock: Clock, precise: bool) -> Self {
        Self {
            clock,
            precise,
            slack_ns: Cell::new(60_000),
        }
    }

    /// Returns at (or, by under `SPIN_FLOOR_NS`, just before) `deadline_ns`.
    pub(crate) async fn wait_until(&self, deadline_ns: u64) {
        loop {
            let now = self.clock.now_ns();
            let left = deadline_ns.saturating_sub(now);
            if left <= SPIN_FLOOR_NS {
                return;
            }
            if !self.precise {
                // The wheel rounds up to the next ms boundary.
                monoio::time::sleep(Duration::from_nanos(left)).await;
                return;
            }
            if left > WHEEL_ABOVE_NS {
                // Wake 1–2 ms early: the wheel may add up to 1 ms.
                monoio::time::sleep(Duration::from_nanos(left - 1_500_000)).await;
                continue;
            }
            let slack = self.slack_ns.get();
            let nap = left.saturating_sub(slack);
            if nap < SPIN_FLOOR_NS {
                return;
            }
            let asked = now + nap;
            if monoio::spawn_blocking(move || std::thread::sleep(Duration::from_nanos(nap)))
                .await
                .is_err()
            {
                // No helper thread: fall back to the wheel.
                monoio::time::sleep(Duration::from_nanos(left)).await;
                return;
            }
            let over = self.clock.now_ns().saturating_sub(asked).min(1_000_000);
            // EWMA with weight 1/8.
            self.slack_ns.set((slack * 7 + over) / 8);
        }
    }
}
