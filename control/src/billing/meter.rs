//! The billing side of ingest: in the same write transaction that stores a
//! batch, each newly stored record's cost is charged to its tenant's credit
//! account and to the lease of the data plane that sent it, the daily cost
//! rollup grows, and a low-balance alert is raised when the balance crosses
//! below its threshold. A replayed record is not stored again, so it is not
//! charged again.

use super::rows::{AlertRow, CreditAccount, LOW_BALANCE};
use crate::store::ingest::Meter;
use crate::store::ingest::Prepared;
use crate::store::open_read;
use crate::store::rows::UsageRow;
use crate::store::schema::{self, pack2, unpack2};
use crate::store::{decode, encode, StoreError};
use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};
use std::collections::{BTreeMap, HashMap};

/// A tenant's usage by UTC day and model with billing's columns (cost,
/// cached and reasoning tokens), read in one transaction.
pub(crate) fn usage(
    store: &crate::store::Store,
    tenant: &str,
) -> Result<Vec<crate::store::rows::UsageRow>, StoreError> {
    let r = store.begin_read()?;
    let mut out = crate::store::Store::usage_in(&r, tenant)?;
    add_to_usage(&r, tenant, &mut out)?;
    crate::cache::stats::add_to_usage(&r, tenant, &mut out)?;
    Ok(out)
}

/// Charges the records just stored in `txn`, each with the number of the
/// data plane that sent it. The caller commits.
pub(crate) fn apply(txn: &WriteTransaction, stored: &[(&Prepared, u32)]) -> Result<(), StoreError> {
    crate::cache::stats::apply(txn, stored)?;
    let mut rollup: HashMap<(&str, u32, &str), Meter> = HashMap::new();
    let mut unpriced: HashMap<(&str, u32, &str), u64> = HashMap::new();
    for (r, _) in stored.iter().filter(|(r, _)| r.unpriced) {
        *unpriced
            .entry((r.tenant.as_str(), r.day, r.model.as_str()))
            .or_default() += 1;
    }
    if !unpriced.is_empty() {
        let mut t = txn.open_table(schema::UNPRICED_DAILY)?;
        for ((tenant, day, model), n) in unpriced {
            let key = (tenant, day.to_be_bytes(), model);
            let old = t.get(key)?.map_or(0, |v| u64::from_be_bytes(v.value()));
            t.insert(key, old.saturating_add(n).to_be_bytes())?;
        }
    }
    // tenant → data plane → cost.
    let mut charges: BTreeMap<&str, BTreeMap<u32, u64>> = BTreeMap::new();
    for (r, dp) in stored {
        if r.meter.is_zero() {
            continue;
        }
        rollup
            .entry((r.tenant.as_str(), r.day, r.model.as_str()))
            .or_default()
            .add(&r.meter);
        if r.meter.cost_micros > 0 && !r.tenant.is_empty() {
            let c = charges
                .entry(r.tenant.as_str())
                .or_default()
                .entry(*dp)
                .or_default();
            *c = c.saturating_add(r.meter.cost_micros);
        }
    }
    if !rollup.is_empty() {
        let mut t = txn.open_table(schema::USAGE_METER_DAILY)?;
        for ((tenant, day, model), m) in rollup {
            let key = (tenant, day.to_be_bytes(), model);
            let mut total = t.get(key)?.map(|v| Meter::unpack(&v.value())).unwrap_or_default();
            total.add(&m);
            t.insert(key, total.pack())?;
        }
    }
    if charges.is_empty() {
        return Ok(());
    }
    let mut accounts = txn.open_table(schema::CREDIT_ACCOUNTS)?;
    let mut leases = txn.open_table(schema::CREDIT_LEASES)?;
    let now = crate::clock::now_ms();
    for (tenant, per_dp) in charges {
        let Some(mut account) = accounts
            .get(tenant)?
            .map(|v| decode::<CreditAccount>(v.value()))
            .transpose()?
        else {
            // Not credit-metered: its cost is in the rollup only.
            continue;
        };
        for (dp, cost) in per_dp {
            let key = (tenant, dp.to_be_bytes());
            let (granted, spent) = leases.get(key)?.map(|v| unpack2(&v.value())).unwrap_or_default();
            leases.insert(key, pack2(granted, spent.saturating_add(cost)))?;
            account.spent_micros = account.spent_micros.saturating_add(cost);
        }
        account.updated_ms = now;
        if account.update_alert_state() {
            let mut alerts = txn.open_table(schema::ALERTS)?;
            raise(&mut alerts, &account, now)?;
        }
        accounts.insert(tenant, encode(&account)?.as_slice())?;
    }
    Ok(())
}

/// Appends a low-balance alert for `account` (whose balance just crossed).
pub(crate) fn raise(
    alerts: &mut Table<'_, [u8; 8], &'static [u8]>,
    account: &CreditAccount,
    now_ms: u64,
) -> Result<AlertRow, StoreError> {
    let id = match alerts.last()? {
        Some((k, _)) => u64::from_be_bytes(k.value()) + 1,
        None => 1,
    };
    let row = AlertRow {
        id,
        kind: LOW_BALANCE.to_owned(),
        tenant: account.tenant.clone(),
        balance_micros: account.balance(),
        threshold_micros: account.low_balance_micros.unwrap_or(0),
        ts_ms: now_ms,
        delivered_ms: None,
        sink: None,
    };
    alerts.insert(id.to_be_bytes(), encode(&row)?.as_slice())?;
    tracing::info!(
        tenant = %row.tenant,
        balance_micros = row.balance_micros,
        threshold_micros = row.threshold_micros,
        "low balance alert"
    );
    Ok(row)
}

/// Fills in the cost and the cached, cache-write and reasoning tokens of
/// `rows` (a tenant's usage by day and model) from the cost rollup, and
/// the requests that had no price.
pub(crate) fn add_to_usage(
    r: &ReadTransaction,
    tenant: &str,
    rows: &mut [UsageRow],
) -> Result<(), StoreError> {
    if let Some(t) = open_read(r, schema::UNPRICED_DAILY)? {
        let by_day: HashMap<(String, String), u64> = crate::store::daily::of_tenant(&t, tenant)?
            .into_iter()
            .map(|(day, model, v)| ((crate::time::format_day(day), model), u64::from_be_bytes(v)))
            .collect();
        for row in rows.iter_mut() {
            row.unpriced_requests = by_day
                .get(&(row.day.clone(), row.model.clone()))
                .copied()
                .unwrap_or(0);
        }
    }
    let Some(t) = open_read(r, schema::USAGE_METER_DAILY)? else {
        return Ok(());
    };
    let by_day: HashMap<(String, String), Meter> = crate::store::daily::of_tenant(&t, tenant)?
        .into_iter()
        .map(|(day, model, v)| ((crate::time::format_day(day), model), Meter::unpack(&v)))
        .collect();
    for row in rows {
        if let Some(m) = by_day.get(&(row.day.clone(), row.model.clone())) {
            row.cost_micros = m.cost_micros;
            row.cached_input_tokens = m.cached_input_tokens;
            row.cache_creation_tokens = m.cache_creation_tokens;
            row.reasoning_tokens = m.reasoning_tokens;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meter_packs_and_adds() {
        let mut m = Meter {
            cost_micros: 5,
            cached_input_tokens: 6,
            cache_creation_tokens: 7,
            reasoning_tokens: u64::MAX,
        };
        assert_eq!(Meter::unpack(&m.pack()), m);
        m.add(&m.clone());
        assert_eq!((m.cost_micros, m.reasoning_tokens), (10, u64::MAX));
        assert!(Meter::default().is_zero());
    }
}
