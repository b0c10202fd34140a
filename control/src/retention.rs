//! Retention: what a purge removes, and the timer that purges every hour.
//!
//! A purge ([`purge`], one write transaction with a budget; [`run`] repeats
//! it until nothing is left) removes, by control's clock ([`crate::clock`]):
//!
//! - records older than their tenant's `retention_days` (default 30), with
//!   their tenant index entries; unauthenticated records keep the default;
//!   records of a tenant that no longer exists (sent by a data plane that had
//!   not heard of the deletion yet) are removed whatever their age, their
//!   usage folded into the anonymous rollups first;
//! - sealed content older than `content_retention_days` (default 30, never
//!   longer than the records): the record stays, without `content_sealed`.
//!   When the tenant has turned logging off, all its content goes, and then
//!   its content key is destroyed;
//! - daily rollups (tenant, day, model: counts, tokens, cost; and the
//!   anonymous ones of deleted tenants) older than the rollup period
//!   (`serve --rollup-retention-days`, default 396: 13 months).
//!
//! A record that some sink (see `crate::sinks`) has not yet acknowledged is
//! kept past its retention until it has; a deleted tenant's records are not.
//!
//! Records with content are found through [`CONTENT_INDEX`], which the purge
//! itself keeps: it reads each data plane's records that arrived since its
//! last pass (a cursor per data plane in [`PRIVACY_META`]) and indexes the
//! ones carrying content, whatever their timestamps, so content that arrives
//! late from a data plane's spool is purged on time all the same. While no
//! tenant has a content key the cursors only move.

use crate::clock::DAY_MS;
use crate::privacy::settings::{self, PrivacyRow};
use crate::store::schema::{
    self, record_key, split_tenant_record_key, tenant_record_key, TenantRecordKey, CONTENT_INDEX,
    PRIVACY_META, TENANT_PRIVACY, USAGE_ANONYMOUS,
};
use crate::store::{decode, StoreError};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sluice_contract::record::Record;
use std::collections::HashSet;
use std::ops::Bound;

/// Most records and contents one purge transaction removes.
pub(crate) const BUDGET: u64 = 20_000;
/// Records one purge transaction reads to index content, per unit of budget.
const SCAN_FACTOR: u64 = 10;
/// Prefix of a data plane's content scan cursor in [`PRIVACY_META`].
const CURSOR_META: &str = "content_scan/";
/// What record JSON carries when it has content.
const CONTENT_FIELD: &[u8] = b"\"content_sealed\"";

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PurgeReport {
    /// Records removed.
    pub(crate) records: u64,
    /// Sealed contents removed from records that stay.
    pub(crate) contents: u64,
    /// Daily rollup rows removed.
    pub(crate) rollups: u64,
    /// Content keys destroyed.
    pub(crate) keys_destroyed: u64,
    /// The budget ran out: purge again.
    pub(crate) more: bool,
}

impl PurgeReport {
    /// Nothing was removed.
    pub(crate) fn is_empty(&self) -> bool {
        self.records == 0 && self.contents == 0 && self.rollups == 0 && self.keys_destroyed == 0
    }

    /// One line for the audit trail and the log.
    pub(crate) fn summary(&self) -> String {
        format!(
            "records={} contents={} rollups={} keys_destroyed={}",
            self.records, self.contents, self.rollups, self.keys_destroyed
        )
    }

    fn add(&mut self, o: &PurgeReport) {
        self.records += o.records;
        self.contents += o.contents;
        self.rollups += o.rollups;
        self.keys_destroyed += o.keys_destroyed;
        self.more = o.more;
    }
}

/// The budget left in one purge transaction.
struct Budget {
    left: u64,
    scan_left: u64,
}

impl Budget {
    fn take(&mut self, r: &mut PurgeReport) -> bool {
        if self.left == 0 {
            r.more = true;
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Removes what retention no longer allows at `now_ms`, inside `txn`.
pub(crate) fn purge(
    txn: &WriteTransaction,
    now_ms: u64,
    rollup_days: u32,
    budget: u64,
) -> Result<PurgeReport, StoreError> {
    let mut r = PurgeReport::default();
    let mut b = Budget {
        left: budget,
        scan_left: budget.saturating_mul(SCAN_FACTOR),
    };
    index_content(txn, &mut b, &mut r)?;
    let live: HashSet<String> = {
        let t = txn.open_table(schema::TENANTS)?;
        t.range::<&str>(..)?
            .map(|i| i.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()?
    };
    // Tenants with records, and tenants with settings (their content or key
    // may need purging with no record left).
    let mut tenants = distinct_record_tenants(txn)?;
    for t in &live {
        if !tenants.contains(t) {
            tenants.push(t.clone());
        }
    }
    for tenant in &tenants {
        if live.contains(tenant) || tenant.is_empty() {
            let row = settings::get_write(txn, tenant)?;
            let keep = u64::from(row.retention_days()) * DAY_MS;
            remove_records(txn, tenant, now_ms.saturating_sub(keep), &mut b, &mut r)?;
            purge_content(txn, tenant, &row, now_ms, &mut b, &mut r)?;
        } else {
            // Stored after the tenant was deleted: nothing of it may stay.
            crate::privacy::erase::tenant(txn, tenant)?;
            remove_usage(txn, tenant, u32::MAX, &mut r)?;
            remove_records(txn, tenant, u64::MAX, &mut b, &mut r)?;
        }
    }
    let today = crate::time::day_of(now_ms);
    let cutoff_day = today.saturating_sub(rollup_days);
    let usage_tenants: Vec<String> = distinct_usage_tenants(txn)?;
    for tenant in &usage_tenants {
        remove_usage(txn, tenant, cutoff_day, &mut r)?;
    }
    {
        let mut anon = txn.open_table(USAGE_ANONYMOUS)?;
        let old: Vec<([u8; 4], String)> = anon
            .range(([0u8; 4], "")..(cutoff_day.to_be_bytes(), ""))?
            .map(|i| i.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<Result<_, _>>()?;
        for (day, model) in old {
            anon.remove((day, model.as_str()))?;
            r.rollups += 1;
        }
    }
    Ok(r)
}

/// Indexes the content of records that arrived since the last pass.
fn index_content(txn: &WriteTransaction, b: &mut Budget, r: &mut PurgeReport) -> Result<(), StoreError> {
    let any_key = {
        let t = txn.open_table(TENANT_PRIVACY)?;
        let mut any = false;
        for item in t.range::<&str>(..)? {
            let row: PrivacyRow = decode(item?.1.value())?;
            any |= row.content_key.is_some();
        }
        any
    };
    let dps: Vec<(u32, u64)> = {
        let st = txn.open_table(schema::DATAPLANE_STATS)?;
        st.range::<[u8; 4]>(..)?
            .map(|i| i.map(|(k, v)| (u32::from_be_bytes(k.value()), schema::unpack2(&v.value()).1)))
            .collect::<Result<_, _>>()?
    };
    let records = txn.open_table(schema::RECORDS)?;
    let mut index = txn.open_table(CONTENT_INDEX)?;
    let mut meta = txn.open_table(PRIVACY_META)?;
    for (dp, highest) in dps {
        let name = format!("{CURSOR_META}{dp}");
        let cursor = meta
            .get(name.as_str())?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        if cursor >= highest {
            continue;
        }
        let mut done = if any_key { cursor } else { highest };
        if any_key {
            for item in records.range(record_key(dp, cursor.saturating_add(1))..=record_key(dp, u64::MAX))? {
                if b.scan_left == 0 {
                    r.more = true;
                    break;
                }
                b.scan_left -= 1;
                let (k, v) = item?;
                let (_, seq) = schema::split_record_key(&k.value());
                let bytes = v.value();
                if bytes.windows(CONTENT_FIELD.len()).any(|w| w == CONTENT_FIELD) {
                    let rec: Record = decode(bytes)?;
                    if rec.content_sealed.is_some() {
                        let tenant = rec.tenant.as_deref().unwrap_or("");
                        index.insert((tenant, tenant_record_key(rec.ts_ms, dp, seq)), ())?;
                    }
                }
                done = seq;
            }
        }
        meta.insert(name.as_str(), &done.to_be_bytes()[..])?;
    }
    Ok(())
}

/// The greatest [`TenantRecordKey`]: `..=(tenant, LAST)` is all of a tenant.
const LAST: TenantRecordKey = [0xff; 20];

/// Keys of `tenant` in a `(tenant, TenantRecordKey)` table before `cutoff_ms`
/// (all with `u64::MAX`), at most `limit`.
fn tenant_keys(
    t: &impl ReadableTable<(&'static str, TenantRecordKey), ()>,
    tenant: &str,
    cutoff_ms: u64,
    limit: u64,
) -> Result<Vec<TenantRecordKey>, StoreError> {
    let lo = Bound::Included((tenant, [0u8; 20]));
    let hi = if cutoff_ms == u64::MAX {
        Bound::Included((tenant, LAST))
    } else {
        Bound::Excluded((tenant, tenant_record_key(cutoff_ms, 0, 0)))
    };
    Ok(t.range::<(&str, TenantRecordKey)>((lo, hi))?
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .map(|i| i.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?)
}

/// Removes `tenant`'s records before `cutoff_ms` (all with `u64::MAX`).
fn remove_records(
    txn: &WriteTransaction,
    tenant: &str,
    cutoff_ms: u64,
    b: &mut Budget,
    r: &mut PurgeReport,
) -> Result<(), StoreError> {
    let mut by_tenant = txn.open_table(schema::RECORDS_BY_TENANT)?;
    let mut records = txn.open_table(schema::RECORDS)?;
    let mut index = txn.open_table(CONTENT_INDEX)?;
    // Records a sink has not acknowledged stay until it has; a deleted
    // tenant's records (cutoff `u64::MAX`) go all the same.
    let hold = if cutoff_ms == u64::MAX {
        None
    } else {
        Some(crate::sinks::cursor::Hold::load(txn)?)
    };
    for k in tenant_keys(&by_tenant, tenant, cutoff_ms, b.left.saturating_add(1))? {
        let (dp, seq) = schema::split_record_key(&split_tenant_record_key(&k).1);
        if hold.as_ref().is_some_and(|h| h.holds(dp, seq)) {
            continue;
        }
        if !b.take(r) {
            break;
        }
        by_tenant.remove((tenant, k))?;
        records.remove(split_tenant_record_key(&k).1)?;
        index.remove((tenant, k))?;
        r.records += 1;
    }
    Ok(())
}

/// Removes `tenant`'s expired content, and its content key once logging is
/// off and no content is left.
fn purge_content(
    txn: &WriteTransaction,
    tenant: &str,
    row: &PrivacyRow,
    now_ms: u64,
    b: &mut Budget,
    r: &mut PurgeReport,
) -> Result<(), StoreError> {
    // Logging off (or no key): every content goes.
    let cutoff_ms = if row.serves_key() {
        now_ms.saturating_sub(u64::from(row.content_retention_days()) * DAY_MS)
    } else {
        u64::MAX
    };
    let mut index = txn.open_table(CONTENT_INDEX)?;
    let mut records = txn.open_table(schema::RECORDS)?;
    for k in tenant_keys(&index, tenant, cutoff_ms, b.left.saturating_add(1))? {
        if !b.take(r) {
            break;
        }
        let rk = split_tenant_record_key(&k).1;
        let stripped = match records.get(rk)? {
            Some(v) => {
                let mut rec: Record = decode(v.value())?;
                rec.content_sealed
                    .take()
                    .map(|_| serde_json::to_vec(&rec))
                    .transpose()?
            }
            None => None,
        };
        if let Some(json) = stripped {
            records.insert(rk, json.as_slice())?;
            r.contents += 1;
        }
        index.remove((tenant, k))?;
    }
    let left = index
        .range((tenant, [0u8; 20])..=(tenant, LAST))?
        .next()
        .is_some();
    if !row.log_content && row.content_key.is_some() && !left && !r.more {
        let mut gone = row.clone();
        gone.content_key = None;
        settings::put(txn, tenant, &gone)?;
        r.keys_destroyed += 1;
    }
    Ok(())
}

/// Removes `tenant`'s daily rollups of days before `cutoff_day` (all with `u32::MAX`).
fn remove_usage(
    txn: &WriteTransaction,
    tenant: &str,
    cutoff_day: u32,
    r: &mut PurgeReport,
) -> Result<(), StoreError> {
    r.rollups += remove_days(txn, schema::USAGE_DAILY, tenant, cutoff_day)?;
    r.rollups += remove_days(txn, schema::USAGE_METER_DAILY, tenant, cutoff_day)?;
    r.rollups += remove_days(txn, schema::CACHE_DAILY, tenant, cutoff_day)?;
    r.rollups += remove_days(txn, schema::UNPRICED_DAILY, tenant, cutoff_day)?;
    Ok(())
}

/// Removes `tenant`'s rows of days before `cutoff_day` from a rollup table.
fn remove_days<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<(&'static str, [u8; 4], &'static str), V>,
    tenant: &str,
    cutoff_day: u32,
) -> Result<u64, StoreError> {
    let mut t = txn.open_table(def)?;
    let mut keys: Vec<([u8; 4], String)> = Vec::new();
    for item in t.range((tenant, [0u8; 4], "")..)? {
        let (k, _) = item?;
        let (tn, day, model) = k.value();
        if tn != tenant || (cutoff_day != u32::MAX && u32::from_be_bytes(day) >= cutoff_day) {
            break;
        }
        keys.push((day, model.to_owned()));
    }
    for (day, model) in &keys {
        t.remove((tenant, *day, model.as_str()))?;
    }
    Ok(keys.len() as u64)
}

/// Every tenant id (including "") with records, in order.
fn distinct_record_tenants(txn: &WriteTransaction) -> Result<Vec<String>, StoreError> {
    let t = txn.open_table(schema::RECORDS_BY_TENANT)?;
    let mut out = Vec::new();
    let mut from = (String::new(), [0u8; 20]);
    loop {
        let next = t
            .range((from.0.as_str(), from.1)..)?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().0.to_owned());
        let Some(tenant) = next else { break };
        // The least string above `tenant` is `tenant` followed by NUL.
        from = (format!("{tenant}\0"), [0u8; 20]);
        out.push(tenant);
    }
    Ok(out)
}

/// Every tenant id with daily rollups.
fn distinct_usage_tenants(txn: &WriteTransaction) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    usage_tenants(txn, schema::USAGE_DAILY, &mut out)?;
    usage_tenants(txn, schema::USAGE_METER_DAILY, &mut out)?;
    usage_tenants(txn, schema::CACHE_DAILY, &mut out)?;
    usage_tenants(txn, schema::UNPRICED_DAILY, &mut out)?;
    Ok(out)
}

fn usage_tenants<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<(&'static str, [u8; 4], &'static str), V>,
    out: &mut Vec<String>,
) -> Result<(), StoreError> {
    let t = txn.open_table(def)?;
    let mut from = String::new();
    loop {
        let next = t
            .range((from.as_str(), [0u8; 4], "")..)?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().0.to_owned());
        let Some(tenant) = next else { break };
        // The least string above `tenant` is `tenant` followed by NUL.
        from = format!("{tenant}\0");
        if !out.contains(&tenant) {
            out.push(tenant);
        }
    }
    Ok(())
}

pub(crate) mod timer;
pub(crate) use timer::{run, start};

#[cfg(test)]
mod tests;
