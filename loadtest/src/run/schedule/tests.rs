use super::*;

const SEC: Duration = Duration::from_secs(1);

#[test]
fn constant_rate_is_evenly_spaced_and_bounded_by_duration() {
    let all: Vec<u64> = Schedule::new(Arrivals::Constant, 1000.0, 1)
        .share(0, 1, Some(SEC), None)
        .collect();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0], 0);
    assert!(all.windows(2).all(|w| w[1] - w[0] == 1_000_000));
    assert!(*all.last().unwrap() < 1_000_000_000);
}

#[test]
fn fractional_rates_do_not_drift() {
    // 3 per second: 0, 333.33ms, 666.67ms, then 1s exactly.
    let all: Vec<u64> = Schedule::new(Arrivals::Constant, 3.0, 1).take(4).collect();
    assert_eq!(all, vec![0, 333_333_333, 666_666_666, 1_000_000_000]);
}

#[test]
fn request_count_bounds_the_schedule() {
    let n = Schedule::new(Arrivals::Constant, 10.0, 1)
        .share(0, 1, None, Some(7))
        .count();
    assert_eq!(n, 7);
    // Whichever bound comes first wins.
    let n = Schedule::new(Arrivals::Constant, 10.0, 1)
        .share(0, 1, Some(SEC), Some(70))
        .count();
    assert_eq!(n, 10);
}

#[test]
fn worker_shares_partition_the_global_schedule() {
    for arrivals in [Arrivals::Constant, Arrivals::Poisson] {
        let global: Vec<u64> = Schedule::new(arrivals, 5000.0, 42)
            .share(0, 1, Some(SEC), Some(4001))
            .collect();
        let mut merged: Vec<u64> = (0..3)
            .flat_map(|w| Schedule::new(arrivals, 5000.0, 42).share(w, 3, Some(SEC), Some(4001)))
            .collect();
        merged.sort_unstable();
        assert_eq!(merged, global, "{arrivals:?}");
        let mine: Vec<u64> = Schedule::new(arrivals, 5000.0, 42)
            .share(1, 3, Some(SEC), Some(4001))
            .collect();
        assert_eq!(mine.len(), 1334);
        assert_eq!(mine[0], global[1]);
        assert_eq!(mine[1], global[4]);
    }
}

#[test]
fn poisson_is_deterministic_for_a_seed() {
    let a: Vec<u64> = Schedule::new(Arrivals::Poisson, 100.0, 7).take(100).collect();
    let b: Vec<u64> = Schedule::new(Arrivals::Poisson, 100.0, 7).take(100).collect();
    let c: Vec<u64> = Schedule::new(Arrivals::Poisson, 100.0, 8).take(100).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn poisson_count_and_mean_gap_match_the_rate() {
    // 20 s at 1000/s: the count is Poisson(20000), sd ~141; allow 5 sd.
    for seed in [1, 2, 3] {
        let all: Vec<u64> = Schedule::new(Arrivals::Poisson, 1000.0, seed)
            .share(0, 1, Some(20 * SEC), None)
            .collect();
        let n = all.len() as f64;
        assert!(
            (n - 20_000.0).abs() < 5.0 * 20_000f64.sqrt(),
            "seed {seed}: {n} arrivals"
        );
        let gaps: Vec<f64> = all.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        // Mean gap 1 ms; its sd over 20k gaps is 1ms/sqrt(20k) ~ 0.7%.
        assert!(
            (mean / 1e6 - 1.0).abs() < 0.035,
            "seed {seed}: mean gap {mean} ns"
        );
        // Exponential gaps: the sd equals the mean (a constant schedule has sd 0).
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.05,
            "seed {seed}: sd/mean {}",
            var.sqrt() / mean
        );
    }
}

#[test]
fn unit_interval_never_yields_zero() {
    let mut rng = SplitMix64(0);
    for _ in 0..100_000 {
        let u = rng.unit();
        assert!(u > 0.0 && u <= 1.0);
    }
}
