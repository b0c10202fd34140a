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
    pub(crate) meter: crate::billing::meter::Meter,
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
            meter: crate::billing::meter::Meter::of(record),
        })
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
pub(crate) fn apply(txn: &WriteTransaction, batches: &[Batch]) -> Result<Vec<Ingested>, StoreError> {
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
    crate::billing::meter::apply(txn, &metered)?;
    Ok(out)
}
