//! Billing reads for the admin API; each its own read transaction.

use super::leases::lease_of;
use super::rows::{AlertRow, CreditAccount, CreditView, LeaseView, PolicyRow, PriceView};
use crate::store::open_read;
use crate::store::rows::DataplaneRow;
use crate::store::schema;
use crate::store::{decode, Store, StoreError};
use sluice_contract::quota::price::DEFAULTS;
use sluice_contract::snapshot::types::{ModelPrice, RateLimit};
use std::collections::BTreeMap;

impl Store {
    /// The built-in default prices merged with the overrides, by model.
    pub(crate) fn prices(&self) -> Result<Vec<PriceView>, StoreError> {
        let r = self.begin_read()?;
        let usd = |micros: u64| micros as f64 / 1e6;
        let mut out: BTreeMap<String, PriceView> = DEFAULTS
            .iter()
            .map(|(model, p)| {
                let view = PriceView {
                    model: (*model).to_owned(),
                    input: usd(p.input),
                    cached_input: usd(p.cached_input),
                    cache_write: usd(p.cache_write),
                    output: usd(p.output),
                    source: "default".into(),
                    replaces_default: false,
                };
                ((*model).to_owned(), view)
            })
            .collect();
        if let Some(t) = open_read(&r, schema::PRICES)? {
            for item in t.range::<&str>(..)? {
                let p: ModelPrice = decode(item?.1.value())?;
                let replaces_default = out.contains_key(&p.model);
                out.insert(
                    p.model.clone(),
                    PriceView {
                        input: p.input,
                        cached_input: p.cached_input.unwrap_or(p.input),
                        cache_write: p.cache_write.unwrap_or(p.input),
                        output: p.output,
                        model: p.model,
                        source: "override".into(),
                        replaces_default,
                    },
                );
            }
        }
        Ok(out.into_values().collect())
    }

    /// A tenant's policy, if it has one.
    pub(crate) fn policy(&self, tenant: &str) -> Result<Option<PolicyRow>, StoreError> {
        let r = self.begin_read()?;
        crate::store::tenant_row(&r, tenant)?;
        let Some(t) = open_read(&r, schema::POLICIES)? else {
            return Ok(None);
        };
        t.get(tenant)?.map(|v| decode(v.value())).transpose()
    }

    /// A tenant's rate limits: tenant-wide first, then by gateway key.
    pub(crate) fn limits(&self, tenant: &str) -> Result<Vec<RateLimit>, StoreError> {
        let r = self.begin_read()?;
        crate::store::tenant_row(&r, tenant)?;
        let Some(t) = open_read(&r, schema::RATE_LIMITS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range((tenant, "")..)? {
            let (k, v) = item?;
            if k.value().0 != tenant {
                break;
            }
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    /// A tenant's credit, with its lease on every data plane that holds one.
    pub(crate) fn credit(&self, tenant: &str) -> Result<CreditView, StoreError> {
        let r = self.begin_read()?;
        crate::store::tenant_row(&r, tenant)?;
        let account: Option<CreditAccount> = match open_read(&r, schema::CREDIT_ACCOUNTS)? {
            Some(t) => t.get(tenant)?.map(|v| decode(v.value())).transpose()?,
            None => None,
        };
        let Some(a) = account else {
            return Ok(CreditView {
                tenant: tenant.to_owned(),
                ..CreditView::default()
            });
        };
        let mut leases = Vec::new();
        if let Some(t) = open_read(&r, schema::CREDIT_LEASES)? {
            let dps = r.open_table(schema::DATAPLANES)?;
            for item in dps.range::<&str>(..)? {
                let row: DataplaneRow = decode(item?.1.value())?;
                let lease = lease_of(Some(&t), tenant, row.num)?;
                if lease.granted > 0 || lease.spent > 0 {
                    leases.push(LeaseView {
                        dataplane: row.id,
                        granted_micros: lease.granted,
                        spent_micros: lease.spent,
                        remaining_micros: lease.remaining(),
                    });
                }
            }
        }
        Ok(CreditView {
            tenant: a.tenant.clone(),
            metered: true,
            added_micros: a.added_micros,
            spent_micros: a.spent_micros,
            balance_micros: a.balance(),
            leased_micros: a.leased_micros,
            unleased_micros: a.unleased(),
            low_balance_micros: a.low_balance_micros,
            default_max_tokens: a.default_max_tokens,
            below_threshold: a.below_threshold,
            leases,
        })
    }

    /// Alerts, oldest first: the latest `limit` (of `tenant` when given).
    pub(crate) fn alerts(&self, tenant: Option<&str>, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        let r = self.begin_read()?;
        if let Some(t) = tenant {
            crate::store::tenant_row(&r, t)?;
        }
        let Some(t) = open_read(&r, schema::ALERTS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range::<[u8; 8]>(..)?.rev() {
            if out.len() >= limit {
                break;
            }
            let row: AlertRow = decode(item?.1.value())?;
            if tenant.is_none_or(|t| t == row.tenant) {
                out.push(row);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Alerts with an id above `after`, oldest first (at most `limit`).
    pub(crate) fn alerts_after(&self, after: u64, limit: usize) -> Result<Vec<AlertRow>, StoreError> {
        let r = self.begin_read()?;
        let Some(t) = open_read(&r, schema::ALERTS)? else {
            return Ok(Vec::new());
        };
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        t.range(from.to_be_bytes()..)?
            .take(limit)
            .map(|item| decode(item?.1.value()))
            .collect()
    }
}
