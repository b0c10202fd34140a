//! Storing record batches from data planes.
//!
//! A batch is keyed by (data plane, seq); a key already stored is skipped, so a
//! replayed batch is harmless. Each stored record also goes into the tenant's
//! time index and the daily usage rollup, in the same transaction.

use super::schema::{self, pack2, pack3, record_key, tenant_record_key, unpack2, unpack3};
use super::StoreError;
use redb::{ReadableTable, WriteTransaction};
use sluice_contract::record::Record;
use std::collections::HashMap;

/// One record, encoded off the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Its sequence number at the data plane.
    pub(crate) seq: u64,
    /// When the request arrived, unix ms.
    pub(crate) ts_ms: u64,
    /// Tenant ("" when the caller did not authenticate).
    pub(crate) tenant: String,
    /// UTC day of `ts_ms`.
    pub(crate) day: u32,
    /// Model asked for ("" when none).
    pub(crate) model: String,
    /// Input tokens reported.
    pub(crate) input_tokens: u64,
    /// Output tokens reported.
    pub(crate) output_tokens: u64,
    /// The record, as compact JSON.
    pub(crate) json: Vec<u8>,
    /// Its cost and token details, for `crate::billing::meter`.
    pub(crate) meter: Meter,
    /// Its cache and compression figures, for `crate::cache::stats`.
    pub(crate) cache: crate::cache::meter::CacheMeter,
    /// Its model had no price: its cost is unknown, never silently zero.
    pub(crate) unpriced: bool,
}

impl Prepared {
    /// Encodes `record` received as `seq`.
    pub(crate) fn new(seq: u64, record: &Record) -> Result<Prepared, StoreError> {
        let usage = record.usage.unwrap_or_default();
        Ok(Prepared {
            seq,
            ts_ms: record.ts_ms,
            tenant: record.tenant.as_deref().unwrap_or("").to_owned(),
            day: crate::time::day_of(record.ts_ms),
            model: record.model.clone().unwrap_or_default(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            json: serde_json::to_vec(record)?,
            meter: Meter::of(record),
            cache: crate::cache::meter::CacheMeter::of(record),
            unpriced: record.unpriced,
        })
    }
}

/// What a record adds to the cost rollup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meter {
    /// Settled cost, micro-dollars.
    pub(crate) cost_micros: u64,
    /// Prompt tokens read from the provider's cache.
    pub(crate) cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache.
    pub(crate) cache_creation_tokens: u64,
    /// Reasoning tokens.
    pub(crate) reasoning_tokens: u64,
}

impl Meter {
    /// The meter of `record`.
    pub(crate) fn of(record: &Record) -> Meter {
        let u = record.usage.unwrap_or_default();
        Meter {
            cost_micros: record.cost_micros.unwrap_or(0),
            cached_input_tokens: u.cached_input_tokens,
            cache_creation_tokens: u.cache_creation_tokens,
            reasoning_tokens: u.reasoning_tokens,
        }
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == Meter::default()
    }

    pub(crate) fn pack(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, v) in [
            self.cost_micros,
            self.cached_input_tokens,
            self.cache_creation_tokens,
            self.reasoning_tokens,
        ]
        .into_iter()
        .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    pub(crate) fn unpack(v: &[u8; 32]) -> Meter {
        let get = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        Meter {
            cost_micros: get(0),
            cached_input_tokens: get(1),
            cache_creation_tokens: get(2),
            reasoning_tokens: get(3),
        }
    }

    pub(crate) fn add(&mut self, o: &Meter) {
        self.cost_micros = self.cost_micros.saturating_add(o.cost_micros);
        self.cached_input_tokens = self.cached_input_tokens.saturating_add(o.cached_input_tokens);
        self.cache_creation_tokens = self.cache_creation_tokens.saturating_add(o.cache_creation_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
    }
}

/// A batch from one data plane.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The data plane's number.
    pub(crate) dataplane: u32,
    /// Its records.
    pub(crate) records: Vec<Prepared>,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ingested {
    /// Records newly stored (the rest were replays).
    pub(crate) stored: u64,
    /// Highest sequence number in the batch.
    pub(crate) acked_through: u64,
}

/// Stores `batches` inside `txn`; the caller commits.
///
/// A record whose seq is above the highest stored for its data plane is new
/// without a lookup (data planes send seqs in order, so that is the common
/// case); any other is looked up and skipped if present.
pub(crate) fn apply(
    txn: &WriteTransaction,
    batches: &[Batch],
    metering: impl FnOnce(&WriteTransaction, &[(&Prepared, u32)]) -> Result<(), StoreError>,
) -> Result<Vec<Ingested>, StoreError> {
    let mut records = txn.open_table(schema::RECORDS)?;
    let mut index = txn.open_table(schema::RECORDS_BY_TENANT)?;
    let mut st = txn.open_table(schema::DATAPLANE_STATS)?;
    let mut out = Vec::with_capacity(batches.len());
    // (tenant, day, model) → (requests, input, output), summed before touching the table.
    let mut usage: HashMap<(&str, u32, &str), (u64, u64, u64)> = HashMap::new();
    // data plane → (records stored, highest seq stored), as of this transaction.
    let mut stats: HashMap<u32, (u64, u64)> = HashMap::new();
    // Records newly stored, with their data plane: what billing charges.
    let mut metered: Vec<(&Prepared, u32)> = Vec::new();
    for batch in batches {
        let dp = batch.dataplane;
        let (mut count, mut highest) = match stats.get(&dp) {
            Some(s) => *s,
            None => st
                .get(dp.to_be_bytes())?
                .map(|v| unpack2(&v.value()))
                .unwrap_or_default(),
        };
        let mut stored = 0u64;
        let mut max_seq = 0u64;
        for r in &batch.records {
            max_seq = max_seq.max(r.seq);
            let key = record_key(dp, r.seq);
            if r.seq <= highest && records.get(key)?.is_some() {
                continue;
            }
            records.insert(key, r.json.as_slice())?;
            index.insert((r.tenant.as_str(), tenant_record_key(r.ts_ms, dp, r.seq)), ())?;
            let u = usage
                .entry((r.tenant.as_str(), r.day, r.model.as_str()))
                .or_default();
            u.0 += 1;
            u.1 += r.input_tokens;
            u.2 += r.output_tokens;
            stored += 1;
            highest = highest.max(r.seq);
            metered.push((r, dp));
        }
        count += stored;
        stats.insert(dp, (count, highest));
        out.push(Ingested {
            stored,
            acked_through: max_seq,
        });
    }
    for (dp, (count, highest)) in stats {
        st.insert(dp.to_be_bytes(), pack2(count, highest))?;
    }
    let mut rollup = txn.open_table(schema::USAGE_DAILY)?;
    for ((tenant, day, model), (n, input, output)) in usage {
        let key = (tenant, day.to_be_bytes(), model);
        let (n0, i0, o0) = rollup.get(key)?.map(|v| unpack3(&v.value())).unwrap_or_default();
        rollup.insert(key, pack3(n0 + n, i0 + input, o0 + output))?;
    }
    metering(txn, &metered)?;
    Ok(out)
}
