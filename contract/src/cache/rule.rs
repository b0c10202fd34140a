//! Who caches what, for how long: the snapshot's `caches` section and its
//! compiled, per-tenant form.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Longest time-to-live of a cached response: a week.
pub const MAX_TTL_S: u64 = 7 * 24 * 3600;

/// How a streamed hit is replayed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Replay {
    /// Every event at once.
    #[default]
    Instant,
    /// Events spaced as the provider sent them the first time.
    Paced,
}

impl Replay {
    /// The name used in config and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Replay::Instant => "instant",
            Replay::Paced => "paced",
        }
    }
}

/// A tenant's cache rule: for all its models (`model` absent) or for one
/// model alias. Off by default: a tenant without a rule is never cached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRule {
    /// Tenant id.
    pub tenant: String,
    /// Model alias as clients ask for it; absent for every model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Seconds an entry lives; 0 turns the cache off for this model under
    /// a tenant-wide rule.
    pub ttl_s: u64,
    /// How streamed hits are replayed.
    #[serde(default)]
    pub replay: Replay,
    /// The share of the original cost charged for a hit, 0 to 1 (default 0:
    /// hits are free).
    #[serde(default)]
    pub hit_price: f64,
    /// When the rule was set (unix ms). Part of every key made under it, so
    /// that entries from before a change are never served after it.
    #[serde(default)]
    pub since_ms: u64,
}

impl CacheRule {
    /// Checks the rule's values; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.ttl_s > MAX_TTL_S {
            return Err(format!("ttl must be at most {MAX_TTL_S} seconds"));
        }
        if self.model.is_none() && self.ttl_s == 0 {
            return Err("a tenant-wide ttl of 0 caches nothing: turn the cache off instead".into());
        }
        if !(self.hit_price.is_finite() && (0.0..=1.0).contains(&self.hit_price)) {
            return Err("hit price is the share of the original cost charged, 0 to 1".into());
        }
        Ok(())
    }
}

/// A rule as the hot path reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long an entry lives.
    pub ttl: Duration,
    /// How streamed hits are replayed.
    pub replay: Replay,
    /// The share of the original cost charged for a hit, in millionths.
    pub hit_share_ppm: u32,
    /// Mixed into the key: the rule's `since_ms`.
    pub generation: u64,
}

impl CachePolicy {
    fn of(rule: &CacheRule) -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(rule.ttl_s),
            replay: rule.replay,
            hit_share_ppm: (rule.hit_price.clamp(0.0, 1.0) * 1e6).round() as u32,
            generation: rule.since_ms,
        }
    }

    /// What a hit is charged for a response whose full cost is `full`.
    pub fn hit_cost(&self, full: u64) -> u64 {
        (u128::from(full) * u128::from(self.hit_share_ppm)).div_ceil(1_000_000) as u64
    }
}

/// One tenant's compiled rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantCache {
    all: Option<CachePolicy>,
    models: HashMap<Box<str>, CachePolicy>,
}

impl TenantCache {
    /// Compiles the rules of one tenant (every rule must name it).
    pub fn compile<'a>(rules: impl IntoIterator<Item = &'a CacheRule>) -> Result<TenantCache, String> {
        let mut c = TenantCache::default();
        for r in rules {
            r.check()
                .map_err(|e| format!("cache rule of tenant {:?}: {e}", r.tenant))?;
            let p = CachePolicy::of(r);
            let dup = match &r.model {
                None => c.all.replace(p).is_some(),
                Some(m) => c.models.insert(Box::from(m.as_str()), p).is_some(),
            };
            if dup {
                return Err(format!(
                    "duplicate cache rule for tenant {:?}, model {:?}",
                    r.tenant, r.model
                ));
            }
        }
        Ok(c)
    }

    /// The policy for `model`: its own rule, else the tenant-wide one;
    /// `None` when nothing is cached for it.
    pub fn for_model(&self, model: &str) -> Option<&CachePolicy> {
        self.models
            .get(model)
            .or(self.all.as_ref())
            .filter(|p| !p.ttl.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(model: Option<&str>, ttl_s: u64) -> CacheRule {
        CacheRule {
            tenant: "t".into(),
            model: model.map(str::to_owned),
            ttl_s,
            replay: Replay::Instant,
            hit_price: 0.0,
            since_ms: 1,
        }
    }

    #[test]
    fn model_rules_override_the_tenant_rule_and_ttl_zero_is_off() {
        let c = TenantCache::compile(&[rule(None, 60), rule(Some("a"), 0), rule(Some("b"), 5)]).unwrap();
        assert_eq!(c.for_model("x").unwrap().ttl, Duration::from_secs(60));
        assert!(c.for_model("a").is_none());
        assert_eq!(c.for_model("b").unwrap().ttl, Duration::from_secs(5));
        let only = TenantCache::compile(&[rule(Some("b"), 5)]).unwrap();
        assert!(only.for_model("x").is_none());
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(TenantCache::compile(&[rule(None, 0)]).is_err());
        assert!(TenantCache::compile(&[rule(None, MAX_TTL_S + 1)]).is_err());
        assert!(TenantCache::compile(&[rule(None, 1), rule(None, 2)]).is_err());
        let mut r = rule(None, 1);
        r.hit_price = 1.5;
        assert!(TenantCache::compile(&[r]).is_err());
    }

    #[test]
    fn hit_cost_is_the_share_rounded_up() {
        let mut r = rule(None, 1);
        r.hit_price = 0.1;
        let p = CachePolicy::of(&r);
        assert_eq!(p.hit_cost(1000), 100);
        assert_eq!(p.hit_cost(1), 1);
        assert_eq!(CachePolicy::of(&rule(None, 1)).hit_cost(1000), 0);
    }
}
