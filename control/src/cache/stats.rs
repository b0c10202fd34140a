//! The response cache's and response compression's daily rollup, kept at
//! ingest in the records' write transaction: per (tenant, UTC day, model),
//! requests the cache took part in, hits, the cost hits saved, and body
//! bytes before and after compression. `usage` shows them as a hit rate,
//! savings and a compression ratio.

pub(crate) use super::meter::CacheMeter;
use crate::store::ingest::Prepared;
use crate::store::open_read;
use crate::store::rows::UsageRow;
use crate::store::schema::CACHE_DAILY;
use crate::store::StoreError;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use std::collections::HashMap;

/// Adds the records just stored in `txn` to the rollup. The caller commits.
pub(crate) fn apply(txn: &WriteTransaction, stored: &[(&Prepared, u32)]) -> Result<(), StoreError> {
    let mut rollup: HashMap<(&str, u32, &str), CacheMeter> = HashMap::new();
    for (r, _) in stored {
        if !r.cache.is_zero() {
            rollup
                .entry((r.tenant.as_str(), r.day, r.model.as_str()))
                .or_default()
                .add(&r.cache);
        }
    }
    if rollup.is_empty() {
        return Ok(());
    }
    let mut t = txn.open_table(CACHE_DAILY)?;
    for ((tenant, day, model), m) in rollup {
        let key = (tenant, day.to_be_bytes(), model);
        let mut total = t
            .get(key)?
            .map(|v| CacheMeter::unpack(&v.value()))
            .unwrap_or_default();
        total.add(&m);
        t.insert(key, total.pack())?;
    }
    Ok(())
}

/// Fills in the cache and compression columns of `rows` (a tenant's usage
/// by day and model).
pub(crate) fn add_to_usage(
    r: &ReadTransaction,
    tenant: &str,
    rows: &mut [UsageRow],
) -> Result<(), StoreError> {
    let Some(t) = open_read(r, CACHE_DAILY)? else {
        return Ok(());
    };
    let by_day: HashMap<(String, String), CacheMeter> = crate::store::daily::of_tenant(&t, tenant)?
        .into_iter()
        .map(|(day, model, v)| ((crate::time::format_day(day), model), CacheMeter::unpack(&v)))
        .collect();
    for row in rows {
        if let Some(m) = by_day.get(&(row.day.clone(), row.model.clone())) {
            row.cache_lookups = m.lookups;
            row.cache_hits = m.hits;
            row.saved_micros = m.saved_micros;
            row.body_plain_bytes = m.plain_bytes;
            row.body_sent_bytes = m.sent_bytes;
        }
    }
    Ok(())
}

/// Removes `tenant`'s rollup rows (part of deleting it).
pub(crate) fn delete_tenant(txn: &WriteTransaction, tenant: &str) -> Result<(), StoreError> {
    crate::store::daily::delete_tenant(&mut txn.open_table(CACHE_DAILY)?, tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::cache::CacheUse;
    use sluice_contract::record::Record;

    #[test]
    fn a_hit_counts_as_a_lookup_and_a_hit_with_its_saving() {
        let mut r = Record::new(0, sluice_contract::record::ApiRoute::ChatCompletions);
        r.cache = Some(CacheUse::Hit);
        r.saved_micros = Some(42);
        let m = CacheMeter::of(&r);
        assert_eq!((m.lookups, m.hits, m.saved_micros), (1, 1, 42));
        assert_eq!(CacheMeter::unpack(&m.pack()), m);
        r.cache = Some(CacheUse::Miss);
        r.saved_micros = None;
        assert_eq!(CacheMeter::of(&r).fields(), [1, 0, 0, 0, 0]);
        assert!(CacheMeter::of(&Record::new(0, sluice_contract::record::ApiRoute::Other)).is_zero());
    }
}
