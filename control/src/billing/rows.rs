//! What the billing tables hold, and what the admin API shows of them.
//!
//! Money is integer micro-dollars everywhere (`u64`, or `i64` where it can go
//! below zero); prices are USD per million tokens (`f64`), as the snapshot
//! carries them.

use serde::{Deserialize, Serialize};

/// The only alert kind so far.
pub(crate) const LOW_BALANCE: &str = "low_balance";

/// A tenant's policy, as the operator wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PolicyRow {
    /// Tenant id.
    pub(crate) tenant: String,
    /// The policy TOML (validated by the data plane's own compiler).
    pub(crate) toml: String,
    /// Last change, unix ms.
    pub(crate) updated_ms: u64,
}

/// A tenant's prepaid credit. A tenant without one is not credit-metered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CreditAccount {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Credit added, ever.
    pub(crate) added_micros: u64,
    /// Settled cost of every record ingested since the account exists.
    pub(crate) spent_micros: u64,
    /// Sum of the cumulative grants to every data plane; never above `added_micros`.
    pub(crate) leased_micros: u64,
    /// Low-balance alert threshold.
    #[serde(default)]
    pub(crate) low_balance_micros: Option<u64>,
    /// Completion tokens a data plane reserves for when a request sets no `max_tokens`.
    #[serde(default)]
    pub(crate) default_max_tokens: Option<u64>,
    /// The balance is below the threshold (an alert was raised when it crossed).
    #[serde(default)]
    pub(crate) below_threshold: bool,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// Last change, unix ms.
    pub(crate) updated_ms: u64,
}

impl CreditAccount {
    /// A new, empty account.
    pub(crate) fn new(tenant: &str, now_ms: u64) -> CreditAccount {
        CreditAccount {
            tenant: tenant.to_owned(),
            created_ms: now_ms,
            updated_ms: now_ms,
            ..CreditAccount::default()
        }
    }

    /// Added minus spent; below zero when data planes reported more than
    /// they reserved.
    pub(crate) fn balance(&self) -> i64 {
        clamp_i64(i128::from(self.added_micros) - i128::from(self.spent_micros))
    }

    /// Credit not leased to any data plane.
    pub(crate) fn unleased(&self) -> u64 {
        self.added_micros.saturating_sub(self.leased_micros)
    }

    /// Brings `below_threshold` up to date; true when the balance just
    /// crossed below the threshold (an alert is due).
    pub(crate) fn update_alert_state(&mut self) -> bool {
        let below = self
            .low_balance_micros
            .is_some_and(|t| self.balance() < i64::try_from(t).unwrap_or(i64::MAX));
        let crossed = below && !self.below_threshold;
        self.below_threshold = below;
        crossed
    }
}

/// One data plane's lease of one tenant's credit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Lease {
    /// Cumulative micro-dollars granted.
    pub(crate) granted: u64,
    /// Settled cost of the records ingested from that data plane.
    pub(crate) spent: u64,
}

impl Lease {
    /// What the data plane may still spend, as far as control knows.
    pub(crate) fn remaining(&self) -> i64 {
        clamp_i64(i128::from(self.granted) - i128::from(self.spent))
    }
}

/// An alert, raised once per crossing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AlertRow {
    /// Ascending id.
    pub(crate) id: u64,
    /// What happened: [`LOW_BALANCE`].
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Tenant id.
    pub(crate) tenant: String,
    /// Balance just after the crossing.
    pub(crate) balance_micros: i64,
    /// The threshold crossed.
    pub(crate) threshold_micros: u64,
    /// When it was raised, unix ms.
    pub(crate) ts_ms: u64,
    /// When the webhook took it (2xx), unix ms.
    #[serde(default)]
    pub(crate) delivered_ms: Option<u64>,
    /// The sink, for a `sink_stalled` alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sink: Option<String>,
}

/// `tenant credit show`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CreditView {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Whether the tenant has a credit account (else its spending is not limited).
    pub(crate) metered: bool,
    /// Credit added, ever.
    pub(crate) added_micros: u64,
    /// Settled cost of the ingested records.
    pub(crate) spent_micros: u64,
    /// Added minus spent.
    pub(crate) balance_micros: i64,
    /// Granted to data planes, in all.
    pub(crate) leased_micros: u64,
    /// Not yet granted to any data plane.
    pub(crate) unleased_micros: u64,
    /// Low-balance alert threshold.
    pub(crate) low_balance_micros: Option<u64>,
    /// Completion tokens reserved for requests without `max_tokens`.
    pub(crate) default_max_tokens: Option<u64>,
    /// The balance is below the threshold.
    pub(crate) below_threshold: bool,
    /// Per data plane.
    pub(crate) leases: Vec<LeaseView>,
}

/// One lease, as `tenant credit show` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LeaseView {
    /// Data plane id.
    pub(crate) dataplane: String,
    /// Cumulative micro-dollars granted.
    pub(crate) granted_micros: u64,
    /// Settled cost of the records ingested from it.
    pub(crate) spent_micros: u64,
    /// Granted minus spent.
    pub(crate) remaining_micros: i64,
}

/// One model's prices as `price list` shows them (USD per million tokens).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PriceView {
    /// Model name or prefix.
    pub(crate) model: String,
    /// Uncached prompt tokens.
    pub(crate) input: f64,
    /// Cached prompt tokens.
    pub(crate) cached_input: f64,
    /// Prompt tokens written to cache.
    pub(crate) cache_write: f64,
    /// Completion tokens.
    pub(crate) output: f64,
    /// `default` (built into the data plane) or `override` (set here).
    pub(crate) source: String,
    /// An override that replaces a built-in default of the same name.
    pub(crate) replaces_default: bool,
}

/// Saturates an `i128` into `i64`.
pub(crate) fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Micro-dollars as `$D.DDDDDD` (with a sign when negative).
pub(crate) fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    format!("{sign}${}.{:06}", m / 1_000_000, m % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_and_alert_state() {
        let mut a = CreditAccount::new("t", 1);
        a.added_micros = 1_000_000;
        a.spent_micros = 300_000;
        a.leased_micros = 400_000;
        assert_eq!((a.balance(), a.unleased()), (700_000, 600_000));
        assert!(!a.update_alert_state(), "no threshold, no alert");
        a.low_balance_micros = Some(500_000);
        assert!(!a.update_alert_state());
        a.spent_micros = 600_000;
        assert!(a.update_alert_state(), "crossed below");
        a.spent_micros = 700_000;
        assert!(!a.update_alert_state(), "still below: once per crossing");
        a.added_micros = 2_000_000;
        assert!(!a.update_alert_state());
        assert!(!a.below_threshold, "re-armed above the threshold");
        a.spent_micros = 5_000_000;
        assert_eq!(a.balance(), -3_000_000);
        assert!(a.update_alert_state());
        assert_eq!(usd(-1_500_001), "-$1.500001");
        assert_eq!(usd(25), "$0.000025");
        assert_eq!(Lease { granted: 5, spent: 9 }.remaining(), -4);
    }
}
