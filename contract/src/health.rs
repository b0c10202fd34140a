//! Passive health of route targets, retry budgets, and the latency each
//! target has shown: state every worker of a data plane shares, with atomics
//! only (no lock on the request path). Times are nanoseconds on
//! [`crate::quota::now_ns`]'s clock, passed in so that tests drive the clock.
//!
//! A target is one upstream with one provider key: a key that is rate-limited
//! says nothing of the upstream's other keys, and an upstream that is down is
//! down for all of them, which each key's cell learns on its own.
//!
//! States of a [`TargetHealth`]:
//! - *healthy*: traffic passes;
//! - *ejected*: after `eject_after` consecutive failures, for a backoff of
//!   `base << n` (capped), `n` the ejections since the last success;
//! - *half-open*: the backoff ended; exactly one request (the probe) passes;
//!   its success makes the target healthy, its failure ejects it again for
//!   twice as long;
//! - *cooling*: a 429/529 said when to come back (`Retry-After` and kin);
//!   nothing passes until then. Cooling is not a failure: it does not eject.
//!
//! The state lives in a few words written only when it changes, so a healthy
//! target costs its workers loads, not contended stores.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{
    AtomicU32, AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Arc;

/// A probe that has not reported after this long is presumed lost (its task
/// was dropped), and another may be let through.
pub const PROBE_STALE_NS: u64 = 60_000_000_000;
/// The longest cooldown a provider's hint can impose.
pub const MAX_COOLDOWN_NS: u64 = 600_000_000_000;
/// Decay constant of the time-to-first-byte average, and of its weight while a
/// target gets no traffic (so a target once slow is tried again).
const LATENCY_TAU_NS: f64 = 10e9;

/// When to eject a target and for how long (per route, from the snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EjectPolicy {
    /// Consecutive failures that eject.
    pub after: u32,
    /// First ejection, ns; doubled for each further one without a success.
    pub base_ns: u64,
    /// Longest ejection, ns.
    pub max_ns: u64,
    /// Failure rate that ejects, in thousandths of the attempts of one
    /// [`RATE_WINDOW_NS`] window (0: only consecutive failures eject).
    pub rate_permille: u32,
    /// Attempts a window needs before its failure rate counts.
    pub rate_min: u32,
}

/// Length of the window the failure rate is counted over.
pub const RATE_WINDOW_NS: u64 = 10_000_000_000;

impl Default for EjectPolicy {
    fn default() -> Self {
        EjectPolicy {
            after: 5,
            base_ns: 5_000_000_000,
            max_ns: 300_000_000_000,
            rate_permille: 0,
            rate_min: 20,
        }
    }
}

/// What a target's health says at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Traffic passes.
    Healthy,
    /// Told to wait by the provider.
    Cooling,
    /// Failing; nothing passes until the backoff ends.
    Ejected,
    /// The backoff ended: one probe passes.
    HalfOpen,
}

impl State {
    /// A label for metrics, and the gauge's value (0 healthy).
    pub fn label(self) -> (&'static str, u8) {
        match self {
            State::Healthy => ("healthy", 0),
            State::Cooling => ("cooling", 1),
            State::HalfOpen => ("half_open", 2),
            State::Ejected => ("ejected", 3),
        }
    }
}

/// May a request go to this target now?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Yes.
    Yes,
    /// Yes, as the half-open probe: its outcome decides the target's state.
    Probe,
    /// No: ejected, cooling, or another request holds the probe.
    No,
}

/// One target's health and latency, shared by every worker.
#[derive(Debug)]
pub struct TargetHealth {
    /// Upstream name.
    pub upstream: Arc<str>,
    /// Provider key id.
    pub key: Arc<str>,
    failures: AtomicU32,
    /// Ejections since the last success (the backoff's exponent).
    streak: AtomicU32,
    /// 0: not ejected. Otherwise the end of the backoff; past it, half-open.
    ejected_until: AtomicU64,
    /// When the probe now in flight was let through; 0 when none.
    probe_since: AtomicU64,
    cool_until: AtomicU64,
    ewma_us: AtomicU64,
    ewma_at: AtomicU64,
    pending: AtomicU32,
    /// The failure-rate window: its number, attempts and failures in it.
    window: AtomicU64,
    window_total: AtomicU32,
    window_failed: AtomicU32,
    /// Totals, for metrics.
    pub counts: Counts,
}

/// Monotonic totals of one target, for metrics.
#[derive(Debug, Default)]
pub struct Counts {
    /// Times the target was ejected.
    pub ejections: AtomicU64,
    /// Times a provider's hint cooled the target down.
    pub cooldowns: AtomicU64,
    /// Half-open probes let through.
    pub probes: AtomicU64,
    /// Extra attempts made after this target failed.
    pub retries: AtomicU64,
    /// Retries refused by the upstream's budget after this target failed.
    pub budget_refusals: AtomicU64,
}

impl TargetHealth {
    /// A healthy target.
    pub fn new(upstream: Arc<str>, key: Arc<str>) -> TargetHealth {
        TargetHealth {
            upstream,
            key,
            failures: AtomicU32::new(0),
            streak: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            probe_since: AtomicU64::new(0),
            cool_until: AtomicU64::new(0),
            ewma_us: AtomicU64::new(0),
            ewma_at: AtomicU64::new(0),
            pending: AtomicU32::new(0),
            window: AtomicU64::new(0),
            window_total: AtomicU32::new(0),
            window_failed: AtomicU32::new(0),
            counts: Counts::default(),
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: u64) -> State {
        if now < self.cool_until.load(Acquire) {
            return State::Cooling;
        }
        match self.ejected_until.load(Acquire) {
            0 => State::Healthy,
            until if now < until => State::Ejected,
            _ => State::HalfOpen,
        }
    }

    /// How long until the target takes traffic again (0: now). The least
    /// bad of several unusable targets is the one with the least to wait.
    pub fn wait_ns(&self, now: u64) -> u64 {
        let until = self
            .cool_until
            .load(Acquire)
            .max(self.ejected_until.load(Acquire));
        until.saturating_sub(now)
    }

    /// Whether a request may go to this target at `now`. A half-open
    /// target lets exactly one through: the caller that wins the probe slot.
    pub fn pass(&self, now: u64) -> Pass {
        match self.state(now) {
            State::Healthy => Pass::Yes,
            State::Cooling | State::Ejected => Pass::No,
            State::HalfOpen => {
                let since = self.probe_since.load(Acquire);
                if since != 0 && now.saturating_sub(since) < PROBE_STALE_NS {
                    return Pass::No;
                }
                let mark = now.max(1);
                if self
                    .probe_since
                    .compare_exchange(since, mark, AcqRel, Acquire)
                    .is_ok()
                {
                    self.counts.probes.fetch_add(1, Relaxed);
                    Pass::Probe
                } else {
                    Pass::No
                }
            }
        }
    }

    /// Gives back a probe slot won by [`TargetHealth::pass`] but not used.
    pub fn release_probe(&self) {
        self.probe_since.store(0, Release);
    }

    /// An attempt that the target answered acceptably: healthy again.
    pub fn success(&self) {
        // Loads first: a healthy target's cache line stays shared.
        if self.failures.load(Relaxed) != 0 {
            self.failures.store(0, Relaxed);
        }
        if self.ejected_until.load(Acquire) != 0 || self.streak.load(Relaxed) != 0 {
            self.streak.store(0, Relaxed);
            self.probe_since.store(0, Relaxed);
            self.ejected_until.store(0, Release);
        }
    }

    /// An attempt that failed (transport error, timeout, 408, 5xx, a 429
    /// without a hint). `probe`: it was the half-open probe. Returns whether
    /// this failure ejected the target.
    pub fn failure(&self, now: u64, policy: &EjectPolicy, probe: bool) -> bool {
        if self.ejected_until.load(Acquire) != 0 {
            // Requests sent before the ejection say nothing new; the probe does.
            if probe {
                self.eject(now, policy, None);
                return true;
            }
            return false;
        }
        let failures = self.failures.fetch_add(1, Relaxed).saturating_add(1);
        failures >= policy.after.max(1) && self.eject(now, policy, Some(0))
    }

    /// Counts an attempt towards the failure rate of the current window,
    /// when the policy ejects by rate (otherwise nothing is written); ejects
    /// once the window has `rate_min` attempts of which at least
    /// `rate_permille`/1000 failed. Returns whether this call ejected. Counts
    /// are approximate at a window's turn (no lock), as for the budget.
    pub fn tally(&self, now: u64, failed: bool, policy: &EjectPolicy) -> bool {
        if policy.rate_permille == 0 {
            return false;
        }
        let window = now / RATE_WINDOW_NS;
        let seen = self.window.load(Acquire);
        if window != seen
            && self
                .window
                .compare_exchange(seen, window, AcqRel, Acquire)
                .is_ok()
        {
            self.window_total.store(0, Relaxed);
            self.window_failed.store(0, Relaxed);
        }
        let total = self.window_total.fetch_add(1, Relaxed).saturating_add(1);
        let failures = if failed {
            self.window_failed.fetch_add(1, Relaxed).saturating_add(1)
        } else {
            self.window_failed.load(Relaxed)
        };
        if !failed || total < policy.rate_min.max(1) {
            return false;
        }
        if u64::from(failures) * 1000 < u64::from(total) * u64::from(policy.rate_permille) {
            return false;
        }
        let ejected = self.ejected_until.load(Acquire) == 0 && self.eject(now, policy, Some(0));
        if ejected {
            // A fresh window once the target is back.
            self.window_total.store(0, Relaxed);
            self.window_failed.store(0, Relaxed);
        }
        ejected
    }

    /// Ejects: `from` the expected current value of the ejection deadline
    /// (`None`: whatever it is). Returns whether this call ejected.
    fn eject(&self, now: u64, policy: &EjectPolicy, from: Option<u64>) -> bool {
        let n = self.streak.load(Relaxed).min(30);
        let backoff = policy
            .base_ns
            .max(1)
            .saturating_mul(1u64 << n)
            .min(policy.max_ns.max(policy.base_ns));
        let until = now.saturating_add(backoff).max(1);
        let won = match from {
            Some(v) => self
                .ejected_until
                .compare_exchange(v, until, AcqRel, Acquire)
                .is_ok(),
            None => {
                self.ejected_until.store(until, Release);
                true
            }
        };
        if won {
            self.streak.fetch_add(1, Relaxed);
            self.failures.store(0, Relaxed);
            self.probe_since.store(0, Release);
            self.counts.ejections.fetch_add(1, Relaxed);
        }
        won
    }

    /// The provider said to come back after `wait_ns` (429/529 with a hint):
    /// nothing passes until then. A probe that is told this gives back its
    /// slot; the backoff, if any, stands.
    pub fn cool(&self, now: u64, wait_ns: u64) {
        let until = now.saturating_add(wait_ns.min(MAX_COOLDOWN_NS));
        let before = self.cool_until.fetch_max(until, AcqRel);
        if before < until {
            self.counts.cooldowns.fetch_add(1, Relaxed);
        }
        self.probe_since.store(0, Release);
    }

    /// A request starts on this target (for least-latency's load term).
    pub fn start(&self) {
        self.pending.fetch_add(1, Relaxed);
    }

    /// The request started by [`TargetHealth::start`] ended.
    pub fn end(&self) {
        let _ = self
            .pending
            .fetch_update(Relaxed, Relaxed, |p| Some(p.saturating_sub(1)));
    }

    /// Records a time to first byte: a peak EWMA (a slower sample is taken
    /// at once, a faster one blended in with a weight that grows with the
    /// time since the last sample).
    pub fn observe_ttfb(&self, now: u64, us: u64) {
        let prev = self.ewma_us.load(Relaxed);
        let at = self.ewma_at.swap(now, Relaxed);
        let next = if prev == 0 || us >= prev {
            us
        } else {
            let w = (-(now.saturating_sub(at) as f64) / LATENCY_TAU_NS).exp();
            (prev as f64 * w + us as f64 * (1.0 - w)) as u64
        };
        // Racing samples may overwrite each other: either is a fair estimate.
        self.ewma_us.store(next.max(1), Relaxed);
    }

    /// Least-latency's cost: the peak EWMA, decayed while the target gets
    /// no samples (so it is tried again), times the requests in flight + 1.
    pub fn latency_cost(&self, now: u64) -> f64 {
        let ewma = self.ewma_us.load(Relaxed) as f64;
        let idle = now.saturating_sub(self.ewma_at.load(Relaxed)) as f64;
        let decayed = ewma * (-idle / (LATENCY_TAU_NS * 6.0)).exp();
        decayed * f64::from(self.pending.load(Relaxed).saturating_add(1))
    }

    /// The peak EWMA of time to first byte, µs (0: no sample yet).
    pub fn ttfb_ewma_us(&self) -> u64 {
        self.ewma_us.load(Relaxed)
    }
}

/// One target's health as a data plane reports it to control (and control
/// shows it): plain values read at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetView {
    /// Upstream name.
    pub upstream: String,
    /// Owner of the provider key (empty: operator-wide).
    pub tenant: String,
    /// Provider key id.
    pub key: String,
    /// `healthy`, `cooling`, `half_open` or `ejected`.
    pub state: String,
    /// How long until the target takes traffic again, ms.
    pub wait_ms: u64,
    /// Times ejected.
    pub ejections: u64,
    /// Times cooled down by a provider's hint.
    pub cooldowns: u64,
    /// Half-open probes let through.
    pub probes: u64,
    /// Next targets tried after this one failed.
    pub retries: u64,
    /// Retries refused by the upstream's budget.
    pub budget_refusals: u64,
    /// Peak EWMA of time to first byte, µs (0: no sample).
    pub ttfb_ewma_us: u64,
}

impl TargetHealth {
    /// The view of this target at `now`; `tenant` owns its key.
    pub fn view(&self, tenant: &str, now: u64) -> TargetView {
        TargetView {
            upstream: self.upstream.to_string(),
            tenant: tenant.to_owned(),
            key: self.key.to_string(),
            state: self.state(now).label().0.to_owned(),
            wait_ms: self.wait_ns(now) / 1_000_000,
            ejections: self.counts.ejections.load(Relaxed),
            cooldowns: self.counts.cooldowns.load(Relaxed),
            probes: self.counts.probes.load(Relaxed),
            retries: self.counts.retries.load(Relaxed),
            budget_refusals: self.counts.budget_refusals.load(Relaxed),
            ttfb_ewma_us: self.ttfb_ewma_us(),
        }
    }
}

/// Length of one retry-budget window.
pub const BUDGET_WINDOW_NS: u64 = 10_000_000_000;

/// Retries allowed per upstream: at most `min + ratio × requests` extra
/// attempts over the current and the previous window, so a failing provider
/// is not stormed by retries. Counts are approximate under races at a
/// window's turn (a few requests may land in either window), never locked.
#[derive(Debug, Default)]
pub struct RetryBudget {
    epoch: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    prev_requests: AtomicU64,
    prev_retries: AtomicU64,
}

impl RetryBudget {
    fn roll(&self, now: u64) {
        let epoch = now / BUDGET_WINDOW_NS;
        let seen = self.epoch.load(Acquire);
        if epoch != seen && self.epoch.compare_exchange(seen, epoch, AcqRel, Acquire).is_ok() {
            let adjacent = epoch == seen.wrapping_add(1);
            let requests = self.requests.swap(0, AcqRel);
            let retries = self.retries.swap(0, AcqRel);
            self.prev_requests
                .store(if adjacent { requests } else { 0 }, Relaxed);
            self.prev_retries
                .store(if adjacent { retries } else { 0 }, Relaxed);
        }
    }

    /// A request's first attempt went to this upstream.
    pub fn deposit(&self, now: u64) {
        self.roll(now);
        self.requests.fetch_add(1, Relaxed);
    }

    /// Takes one retry if the budget allows it.
    pub fn withdraw(&self, now: u64, ratio: f64, min: u32) -> bool {
        self.roll(now);
        let requests = self.requests.load(Relaxed) + self.prev_requests.load(Relaxed);
        let retries = self.retries.load(Relaxed) + self.prev_retries.load(Relaxed);
        let allowed = u64::from(min) + (requests as f64 * ratio.max(0.0)) as u64;
        if retries >= allowed {
            return false;
        }
        self.retries.fetch_add(1, Relaxed);
        true
    }
}

/// How long a 429/529 asks the caller to wait, from one response header
/// (`name` in any case): `retry-after-ms` (ms), `retry-after` (seconds, or
/// an HTTP date), OpenAI's `x-ratelimit-reset-requests` and `-tokens`
/// (`1s`, `6m0s`, `250ms`), Anthropic's `anthropic-ratelimit-*-reset` (an
/// RFC 3339 time). Dates are read against `now_unix_ms`, the wall clock.
/// `None` when the header is none of these or does not parse.
pub fn wait_hint(name: &[u8], value: &[u8], now_unix_ms: u64) -> Option<u64> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let until = |at_ms: u64| at_ms.saturating_sub(now_unix_ms) as f64 * 1e6;
    let ns = if name.eq_ignore_ascii_case(b"retry-after-ms") {
        value.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)? * 1e6
    } else if name.eq_ignore_ascii_case(b"retry-after") {
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => v * 1e9,
            Ok(_) => return None,
            Err(_) => until(http_date_ms(value)?),
        }
    } else if name.eq_ignore_ascii_case(b"x-ratelimit-reset-requests")
        || name.eq_ignore_ascii_case(b"x-ratelimit-reset-tokens")
    {
        go_duration(value)?
    } else if name.len() > 26
        && name[..20].eq_ignore_ascii_case(b"anthropic-ratelimit-")
        && name[name.len() - 6..].eq_ignore_ascii_case(b"-reset")
    {
        until(rfc3339_ms(value)?)
    } else {
        return None;
    };
    Some((ns as u64).min(MAX_COOLDOWN_NS))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix ms of a UTC date and time, if the fields are in range.
fn unix_ms(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<u64> {
    let ok = (1970..=9999).contains(&y)
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && (0..24).contains(&h)
        && (0..60).contains(&mi)
        && (0..=60).contains(&s);
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s;
    (ok && secs >= 0).then(|| secs as u64 * 1000)
}

/// An RFC 3339 time (`2025-01-01T00:00:30Z`, fractions and offsets read).
fn rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let base = unix_ms(
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )?;
    let mut rest = &s[19..];
    let mut frac_ms = 0;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        let ms: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse::<u64>().ok()?;
        rest = &f[digits..];
    }
    // Upstream-controlled text: `get`, never an index that could split a
    // character.
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.get(3..4) == Some(":") => {
            let sign = match rest.get(..1) {
                Some("+") => 1,
                Some("-") => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let ms = (base + frac_ms) as i64 - offset_s * 1000;
    u64::try_from(ms).ok()
}

/// An HTTP date in its preferred form (IMF-fixdate, RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date_ms(s: &str) -> Option<u64> {
    let mut parts = s.split_ascii_whitespace();
    let (_day, d, mon, y, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mo = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let mut hms = time.split(':');
    let (h, mi, sec) = (hms.next()?, hms.next()?, hms.next()?);
    unix_ms(
        y.parse().ok()?,
        mo,
        d.parse().ok()?,
        h.parse().ok()?,
        mi.parse().ok()?,
        sec.parse().ok()?,
    )
}

/// Parses a Go-style duration as OpenAI writes it: `1h2m3.5s`, `250ms`.
fn go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (1e6, 2)
        } else if rest.starts_with("us") {
            (1e3, 2)
        } else if rest.starts_with("ns") {
            (1.0, 2)
        } else if rest.starts_with('h') {
            (3600e9, 1)
        } else if rest.starts_with('m') {
            (60e9, 1)
        } else if rest.starts_with('s') {
            (1e9, 1)
        } else {
            return None;
        };
        total += n * unit;
        rest = &rest[len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests;
