//! The control process's notion of "now" for retention and the audit trail,
//! which tests can move.
//!
//! `serve --test-only-clock-offset-days N` (a hidden flag, never an
//! environment variable, so nothing stray can move it) shifts it by whole
//! days, so a test can store records, restart with the clock 31 days ahead
//! and watch a purge remove them. It is set once, before any thread reads
//! it. Functions that decide what to purge take `now_ms` as an argument;
//! only their callers at the edge read this clock. It is control's one
//! clock: nothing else in control reads the time of day.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds in a day.
pub(crate) const DAY_MS: u64 = 86_400_000;

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Moves the clock by `days` (negative: back).
pub(crate) fn set_offset_days(days: i64) {
    OFFSET_MS.store(days.saturating_mul(DAY_MS as i64), Ordering::Relaxed);
}

/// Unix milliseconds, shifted by the offset.
pub(crate) fn now_ms() -> u64 {
    let real = crate::time::real_now_ms();
    let offset = OFFSET_MS.load(Ordering::Relaxed);
    if offset >= 0 {
        real.saturating_add(offset.unsigned_abs())
    } else {
        real.saturating_sub(offset.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_now_by_whole_days() {
        // The only test touching the global offset: it restores it.
        let before = now_ms();
        set_offset_days(31);
        let moved = now_ms();
        assert!(moved >= before + 31 * DAY_MS);
        set_offset_days(0);
        assert!(now_ms() < moved);
    }
}
