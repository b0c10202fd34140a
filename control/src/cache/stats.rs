//! The response cache's and response compression's daily rollup, kept at
//! ingest in the records' write transaction: per (tenant, UTC day, model),
//! requests the cache took part in, hits, the cost hits saved, and body
//! bytes before and after compression. `usage` shows them as a hit rate,
//! savings and a compression ratio.

use crate::store::ingest::Prepared;
use crate::store::open_read;
use crate::store::rows::UsageRow;
use crate::store::schema::CACHE_DAILY;
use crate::store::StoreError;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use sluice_contract::cache::CacheUse;
use sluice_contract::record::Record;
use std::collections::HashMap;

/// What one record adds to the rollup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheMeter {
    /// The cache was looked up (or skipped by `no-cache`) for it.
    pub(crate) lookups: u64,
    /// It was a hit.
    pub(crate) hits: u64,
    /// What the hit saved, micro-dollars.
    pub(crate) saved_micros: u64,
    /// Response body bytes before compression (compressed responses only).
    pub(crate) plain_bytes: u64,
    /// Response body bytes after compression.
    pub(crate) sent_bytes: u64,
}

impl CacheMeter {
    /// The meter of `record`.
    pub(crate) fn of(record: &Record) -> CacheMeter {
        CacheMeter {
            lookups: u64::from(record.cache.is_some()),
            hits: u64::from(record.cache == Some(CacheUse::Hit)),
            saved_micros: record.saved_micros.unwrap_or(0),
            plain_bytes: record.body_plain_bytes.unwrap_or(0),
            sent_bytes: record.body_sent_bytes.unwrap_or(0),
        }
    }

    fn fields(&self) -> [u64; 5] {
        [
            self.lookups,
            self.hits,
            self.saved_micros,
            self.plain_bytes,
            self.sent_bytes,
        ]
    }

    fn is_zero(&self) -> bool {
        *self == CacheMeter::default()
    }

    fn add(&mut self, o: &CacheMeter) {
        self.lookups = self.lookups.saturating_add(o.lookups);
        self.hits = self.hits.saturating_add(o.hits);
        self.saved_micros = self.saved_micros.saturating_add(o.saved_micros);
        self.plain_bytes = self.plain_bytes.saturating_add(o.plain_bytes);
        self.sent_bytes = self.sent_bytes.saturating_add(o.sent_bytes);
    }

    fn pack(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        for (i, v) in self.fields().into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn unpack(v: &[u8; 40]) -> CacheMeter {
        let f = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        CacheMeter {
            lookups: f(0),
            hits: f(1),
            saved_micros: f(2),
            plain_bytes: f(3),
            sent_bytes: f(4),
        }
    }
}

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
