//! Time series of a window of records for the console's charts: requests,
//! errors, tokens, cost and time to first byte (p50, p99) per bucket, in
//! total and by tenant, model and gateway key.

use crate::store::browse::is_error;
use serde::Serialize;
use sluice_contract::record::Record;
use std::collections::HashMap;

/// Most buckets in one window.
pub(crate) const MAX_BUCKETS: u64 = 720;
/// Groups shown by name per dimension; the rest are summed as `(other)`.
const TOP: usize = 8;

/// Counters of one bucket or group.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub(crate) struct Totals {
    /// Requests.
    pub(crate) requests: u64,
    /// Of them, errors.
    pub(crate) errors: u64,
    /// Input tokens.
    pub(crate) input_tokens: u64,
    /// Output tokens.
    pub(crate) output_tokens: u64,
    /// Cost, micro-dollars.
    pub(crate) cost_micros: u64,
    /// Median time to first byte, ms (none without a first byte).
    pub(crate) ttft_p50_ms: Option<f64>,
    /// 99th percentile time to first byte, ms.
    pub(crate) ttft_p99_ms: Option<f64>,
}

/// One group (a tenant, a model or a key): its totals and its series.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Group {
    /// The tenant id, model or key id.
    pub(crate) name: String,
    /// Over the whole window.
    pub(crate) total: Totals,
    /// Requests per bucket.
    pub(crate) requests: Vec<u64>,
    /// Tokens (input + output) per bucket.
    pub(crate) tokens: Vec<u64>,
    /// Cost per bucket, micro-dollars.
    pub(crate) cost_micros: Vec<u64>,
}

/// The answer of `GET /v1/stats`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stats {
    /// Window start, unix ms (inclusive).
    pub(crate) since_ms: u64,
    /// Window end, unix ms (exclusive).
    pub(crate) until_ms: u64,
    /// Bucket width, ms.
    pub(crate) bucket_ms: u64,
    /// Whether the scan stopped early (the window held too many records).
    pub(crate) truncated: bool,
    /// Start of each bucket, unix ms.
    pub(crate) buckets: Vec<u64>,
    /// Totals per bucket.
    pub(crate) series: Vec<Totals>,
    /// Over the whole window.
    pub(crate) total: Totals,
    /// By tenant (`(unauthenticated)` for requests without one).
    pub(crate) by_tenant: Vec<Group>,
    /// By model as asked for.
    pub(crate) by_model: Vec<Group>,
    /// By gateway key id.
    pub(crate) by_key: Vec<Group>,
}

#[derive(Default)]
struct Acc {
    totals: Totals,
    ttft_us: Vec<u64>,
}

impl Acc {
    fn add(&mut self, r: &Record) {
        let t = &mut self.totals;
        t.requests += 1;
        t.errors += u64::from(is_error(r));
        if let Some(u) = &r.usage {
            t.input_tokens += u.input_tokens;
            t.output_tokens += u.output_tokens;
        }
        t.cost_micros += r.cost_micros.unwrap_or(0);
        if let Some(us) = r.ttfb_us {
            self.ttft_us.push(us);
        }
    }

    fn finish(mut self) -> Totals {
        self.ttft_us.sort_unstable();
        self.totals.ttft_p50_ms = percentile_ms(&self.ttft_us, 0.50);
        self.totals.ttft_p99_ms = percentile_ms(&self.ttft_us, 0.99);
        self.totals
    }
}

/// The nearest-rank percentile of sorted microseconds, in ms.
fn percentile_ms(sorted_us: &[u64], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = (p * sorted_us.len() as f64).ceil() as usize;
    let us = sorted_us[rank.clamp(1, sorted_us.len()) - 1];
    Some(us as f64 / 1000.0)
}

struct GroupAcc {
    total: Acc,
    requests: Vec<u64>,
    tokens: Vec<u64>,
    cost: Vec<u64>,
}

/// Adds records one at a time; [`Aggregator::finish`] gives the [`Stats`].
pub(crate) struct Aggregator {
    since_ms: u64,
    until_ms: u64,
    bucket_ms: u64,
    buckets: Vec<Acc>,
    total: Acc,
    groups: [HashMap<String, GroupAcc>; 3],
}

impl Aggregator {
    /// A window `[since, until)` cut into buckets of `bucket_ms`; the caller
    /// has checked the bounds ([`window`]).
    pub(crate) fn new(since_ms: u64, until_ms: u64, bucket_ms: u64) -> Aggregator {
        let n = until_ms.saturating_sub(since_ms).div_ceil(bucket_ms.max(1));
        Aggregator {
            since_ms,
            until_ms,
            bucket_ms: bucket_ms.max(1),
            buckets: (0..n).map(|_| Acc::default()).collect(),
            total: Acc::default(),
            groups: Default::default(),
        }
    }

    /// Counts one record (outside the window: ignored).
    pub(crate) fn add(&mut self, r: &Record) {
        if r.ts_ms < self.since_ms || r.ts_ms >= self.until_ms {
            return;
        }
        let i = ((r.ts_ms - self.since_ms) / self.bucket_ms) as usize;
        let n = self.buckets.len();
        let Some(b) = self.buckets.get_mut(i) else { return };
        b.add(r);
        self.total.add(r);
        let tokens = r.usage.map_or(0, |u| u.input_tokens + u.output_tokens);
        let names = [
            r.tenant.as_deref().unwrap_or("(unauthenticated)"),
            r.model.as_deref().unwrap_or("(none)"),
            r.key_id.as_deref().unwrap_or("(none)"),
        ];
        for (groups, name) in self.groups.iter_mut().zip(names) {
            let g = groups.entry(name.to_owned()).or_insert_with(|| GroupAcc {
                total: Acc::default(),
                requests: vec![0; n],
                tokens: vec![0; n],
                cost: vec![0; n],
            });
            g.total.add(r);
            g.requests[i] += 1;
            g.tokens[i] += tokens;
            g.cost[i] += r.cost_micros.unwrap_or(0);
        }
    }

    /// The series; `truncated` says the scan stopped early.
    pub(crate) fn finish(self, truncated: bool) -> Stats {
        let buckets = (0..self.buckets.len() as u64)
            .map(|i| self.since_ms + i * self.bucket_ms)
            .collect();
        let [tenants, models, keys] = self.groups;
        Stats {
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            bucket_ms: self.bucket_ms,
            truncated,
            buckets,
            series: self.buckets.into_iter().map(Acc::finish).collect(),
            total: self.total.finish(),
            by_tenant: top(tenants),
            by_model: top(models),
            by_key: top(keys),
        }
    }
}

/// The busiest groups by name, the rest summed as `(other)`.
fn top(groups: HashMap<String, GroupAcc>) -> Vec<Group> {
    let mut v: Vec<(String, GroupAcc)> = groups.into_iter().collect();
    v.sort_by(|a, b| {
        b.1.total
            .totals
            .requests
            .cmp(&a.1.total.totals.requests)
            .then(a.0.cmp(&b.0))
    });
    let rest = if v.len() > TOP {
        v.split_off(TOP)
    } else {
        Vec::new()
    };
    let mut out: Vec<Group> = v
        .into_iter()
        .map(|(name, g)| Group {
            name,
            total: g.total.finish(),
            requests: g.requests,
            tokens: g.tokens,
            cost_micros: g.cost,
        })
        .collect();
    if let Some((_, first)) = rest.first() {
        let n = first.requests.len();
        let mut other = Group {
            name: "(other)".into(),
            total: Totals::default(),
            requests: vec![0; n],
            tokens: vec![0; n],
            cost_micros: vec![0; n],
        };
        for (_, g) in &rest {
            let t = &g.total.totals;
            other.total.requests += t.requests;
            other.total.errors += t.errors;
            other.total.input_tokens += t.input_tokens;
            other.total.output_tokens += t.output_tokens;
            other.total.cost_micros += t.cost_micros;
            for i in 0..n {
                other.requests[i] += g.requests[i];
                other.tokens[i] += g.tokens[i];
                other.cost_micros[i] += g.cost[i];
            }
        }
        out.push(other);
    }
    out
}

/// The window and bucket width of a query: `until` defaults to now, `since`
/// to an hour before it, the bucket to a sixtieth of the window (at least
/// one second), and at most [`MAX_BUCKETS`] buckets.
pub(crate) fn window(
    since: Option<u64>,
    until: Option<u64>,
    bucket_secs: Option<u64>,
    now_ms: u64,
) -> Result<(u64, u64, u64), String> {
    let until = until.unwrap_or(now_ms);
    let since = since.unwrap_or(until.saturating_sub(3_600_000));
    if since >= until {
        return Err("since must be before until".into());
    }
    let span = until - since;
    let bucket = match bucket_secs {
        Some(0) => return Err("bucket must be at least 1 second".into()),
        Some(s) => s.saturating_mul(1000),
        None => (span / 60).max(1000).div_ceil(1000) * 1000,
    };
    if span.div_ceil(bucket) > MAX_BUCKETS {
        return Err(format!(
            "{} buckets asked for; at most {MAX_BUCKETS}: widen the bucket",
            span.div_ceil(bucket)
        ));
    }
    Ok((since, until, bucket))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::record::{ApiRoute, Outcome, Usage};
    use std::sync::Arc;

    fn rec(ts: u64, tenant: &str, model: &str, status: u16, ttfb_ms: u64, cost: u64) -> Record {
        let mut r = Record::new(ts, ApiRoute::ChatCompletions);
        r.tenant = Some(Arc::from(tenant));
        r.key_id = Some(Arc::from("k1"));
        r.model = Some(model.into());
        r.status = status;
        r.outcome = if status < 400 {
            Outcome::Ok
        } else {
            Outcome::UpstreamError
        };
        r.ttfb_us = Some(ttfb_ms * 1000);
        r.cost_micros = Some(cost);
        r.usage = Some(Usage {
            input_tokens: 10,
            output_tokens: 5,
            ..Usage::default()
        });
        r
    }

    #[test]
    fn records_land_in_their_bucket_and_group() {
        let mut a = Aggregator::new(1_000, 4_000, 1_000);
        a.add(&rec(1_000, "acme", "m1", 200, 10, 7));
        a.add(&rec(1_999, "acme", "m2", 502, 30, 0));
        a.add(&rec(3_500, "beta", "m1", 200, 20, 3));
        a.add(&rec(4_000, "beta", "m1", 200, 20, 3)); // outside
        a.add(&rec(999, "beta", "m1", 200, 20, 3)); // outside
        let s = a.finish(false);
        assert_eq!(s.buckets, vec![1_000, 2_000, 3_000]);
        assert_eq!(
            s.series.iter().map(|b| b.requests).collect::<Vec<_>>(),
            vec![2, 0, 1]
        );
        assert_eq!(s.series[0].errors, 1);
        assert_eq!(s.series[0].ttft_p50_ms, Some(10.0));
        assert_eq!(s.series[0].ttft_p99_ms, Some(30.0));
        assert_eq!(s.series[1].ttft_p50_ms, None);
        assert_eq!(s.total.requests, 3);
        assert_eq!(s.total.cost_micros, 10);
        assert_eq!(s.total.input_tokens, 30);
        assert_eq!(s.by_tenant[0].name, "acme");
        assert_eq!(s.by_tenant[0].requests, vec![2, 0, 0]);
        assert_eq!(s.by_tenant[1].cost_micros, vec![0, 0, 3]);
        assert_eq!(s.by_model[0].name, "m1");
        assert_eq!(s.by_model[0].tokens, vec![15, 0, 15]);
        assert_eq!(s.by_key.len(), 1);
    }

    #[test]
    fn beyond_the_top_groups_the_rest_is_summed() {
        let mut a = Aggregator::new(0, 1_000, 1_000);
        for i in 0..(TOP + 3) {
            for _ in 0..=i {
                a.add(&rec(1, &format!("t{i:02}"), "m", 200, 1, 1));
            }
        }
        let s = a.finish(false);
        assert_eq!(s.by_tenant.len(), TOP + 1);
        let other = s.by_tenant.last().unwrap();
        assert_eq!(other.name, "(other)");
        assert_eq!(other.total.requests, 1 + 2 + 3);
        assert_eq!(s.by_tenant[0].name, format!("t{:02}", TOP + 2));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[7000], 0.99), Some(7.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }

    #[test]
    fn windows_are_checked() {
        assert_eq!(window(None, None, None, 3_600_000), Ok((0, 3_600_000, 60_000)));
        assert_eq!(window(Some(0), Some(10_000), None, 0), Ok((0, 10_000, 1_000)));
        assert!(window(Some(5), Some(5), None, 0).is_err());
        assert!(window(Some(0), Some(10_000), Some(0), 0).is_err());
        assert!(window(Some(0), Some(1_000_000), Some(1), 0).is_err());
    }
}
