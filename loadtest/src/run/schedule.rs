//! The open-loop arrival schedule: when each request is meant to start.
//!
//! The schedule is one global sequence of offsets from the start of the run,
//! the same in every worker (same seed, same rate); worker `w` of `n` takes
//! arrivals `w, w + n, w + 2n, ...`. Splitting one sequence, rather than giving
//! each worker its own process at `rate / n`, keeps the global arrival process
//! exactly the one asked for, whatever the number of workers.

use std::time::Duration;

/// How arrivals are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Arrivals {
    /// Evenly spaced, `1 / rate` apart.
    Constant,
    /// A Poisson process: exponentially distributed gaps with mean `1 / rate`.
    Poisson,
}

/// An endless iterator of intended start offsets, in nanoseconds from the
/// start of the run, in increasing order.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    arrivals: Arrivals,
    /// Mean gap between arrivals, ns (as f64: rates need not divide 1e9).
    gap_ns: f64,
    index: u64,
    /// Time of the next Poisson arrival, ns.
    poisson_t: f64,
    rng: SplitMix64,
}

impl Schedule {
    /// A schedule at `rate` requests per second (must be > 0).
    pub(crate) fn new(arrivals: Arrivals, rate: f64, seed: u64) -> Self {
        Self {
            arrivals,
            gap_ns: 1e9 / rate,
            index: 0,
            poisson_t: 0.0,
            rng: SplitMix64(seed),
        }
    }

    /// This worker's share: arrivals `worker, worker + workers, ...`, bounded
    /// by `duration` (offsets strictly before it) and `requests` (global count).
    pub(crate) fn share(
        self,
        worker: usize,
        workers: usize,
        duration: Option<Duration>,
        requests: Option<u64>,
    ) -> impl Iterator<Item = u64> {
        let end_ns = duration.map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.take(requests.map_or(usize::MAX, |r| usize::try_from(r).unwrap_or(usize::MAX)))
            .take_while(move |&t| end_ns.is_none_or(|end| t < end))
            .skip(worker)
            .step_by(workers.max(1))
    }
}

impl Iterator for Schedule {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let t = match self.arrivals {
            // Multiply rather than accumulate, so rounding never drifts.
            Arrivals::Constant => self.index as f64 * self.gap_ns,
            Arrivals::Poisson => {
                let t = self.poisson_t;
                self.poisson_t += self.rng.exponential(self.gap_ns);
                t
            }
        };
        self.index += 1;
        Some(t as u64)
    }
}

/// SplitMix64: a tiny, fast, well-distributed PRNG; seeded runs repeat exactly.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponentially distributed with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -self.unit().ln() * mean
    }
}

#[cfg(test)]
mod tests;
