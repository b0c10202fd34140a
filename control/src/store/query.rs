//! Reads: each opens its own read transaction and never waits for the writer.

use super::compile::{compile, Compiled, Sources};
use super::rows::{
    AdminTokenRow, ApiKeyRow, DataplaneRow, LogEntry, ProviderKeyInfo, ProviderKeyRow, TenantRow, UsageRow,
};
use super::schema::{self, meta, split_record_key, split_tenant_record_key, unpack2, unpack3, META};
use super::{decode, meta_u64, open_read, Store, StoreError};
use redb::{ReadTransaction, ReadableTable};
use sluice_contract::snapshot::types::{Route, Upstream};
use std::collections::HashMap;

/// Which records `logs` returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogQuery {
    /// Earliest `ts_ms`, inclusive.
    pub(crate) since: Option<u64>,
    /// Latest `ts_ms`, exclusive.
    pub(crate) until: Option<u64>,
    /// Most records: the first ones after `since` when it is given, else the
    /// latest ones before `until`. Always returned oldest first.
    pub(crate) limit: usize,
}

impl Store {
    /// The committed snapshot version.
    pub(crate) fn snapshot_version(&self) -> Result<u64, StoreError> {
        let r = self.begin_read()?;
        meta_u64(&r.open_table(META)?, meta::SNAPSHOT_VERSION)
    }

    /// The store's part of the current snapshot, compiled in `r` (the
    /// domains add their sections in the same transaction: see
    /// [`crate::ops::compile_current`]).
    pub(crate) fn compile_core(r: &ReadTransaction) -> Result<Compiled, StoreError> {
        let version = meta_u64(&r.open_table(META)?, meta::SNAPSHOT_VERSION)?;
        let tenants = r.open_table(schema::TENANTS)?;
        let api_keys = r.open_table(schema::API_KEYS)?;
        let upstreams = r.open_table(schema::UPSTREAMS)?;
        let provider_keys = r.open_table(schema::PROVIDER_KEYS)?;
        let routes = r.open_table(schema::ROUTES)?;
        let compiled = compile(
            version,
            &Sources {
                tenants: &tenants,
                api_keys: &api_keys,
                upstreams: &upstreams,
                provider_keys: &provider_keys,
                routes: &routes,
            },
        )?;
        Ok(compiled)
    }

    /// All tenants, by id.
    pub(crate) fn tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(schema::TENANTS)?;
        t.range::<&str>(..)?.map(|item| decode(item?.1.value())).collect()
    }

    /// One tenant.
    pub(crate) fn tenant(&self, id: &str) -> Result<TenantRow, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, id)
    }

    /// A tenant's gateway keys (hashes only), revoked ones included.
    pub(crate) fn api_keys(&self, tenant: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, tenant)?;
        let t = r.open_table(schema::API_KEYS)?;
        tenant_rows(&t, tenant)
    }

    /// A tenant's provider keys, without any form of the secret.
    pub(crate) fn provider_keys(&self, tenant: &str) -> Result<Vec<ProviderKeyInfo>, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, tenant)?;
        let t = r.open_table(schema::PROVIDER_KEYS)?;
        let rows: Vec<ProviderKeyRow> = tenant_rows(&t, tenant)?;
        Ok(rows.iter().map(ProviderKeyInfo::from).collect())
    }

    /// All upstreams, by name.
    pub(crate) fn upstreams(&self) -> Result<Vec<Upstream>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(schema::UPSTREAMS)?;
        t.range::<&str>(..)?.map(|item| decode(item?.1.value())).collect()
    }

    /// A tenant's routes, by model alias.
    pub(crate) fn routes(&self, tenant: &str) -> Result<Vec<Route>, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, tenant)?;
        let t = r.open_table(schema::ROUTES)?;
        tenant_rows(&t, tenant)
    }

    /// One named admin token.
    pub(crate) fn admin_token(&self, name: &str) -> Result<Option<AdminTokenRow>, StoreError> {
        let r = self.begin_read()?;
        let Some(t) = open_read(&r, schema::ADMIN_TOKENS)? else {
            return Ok(None);
        };
        t.get(name)?.map(|v| decode(v.value())).transpose()
    }

    /// Every named admin token, by name.
    pub(crate) fn admin_tokens(&self) -> Result<Vec<AdminTokenRow>, StoreError> {
        let r = self.begin_read()?;
        let Some(t) = open_read(&r, schema::ADMIN_TOKENS)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for item in t.range::<&str>(..)? {
            out.push(decode(item?.1.value())?);
        }
        Ok(out)
    }

    /// The data plane `id`, if enrolled.
    pub(crate) fn dataplane(&self, id: &str) -> Result<Option<DataplaneRow>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(schema::DATAPLANES)?;
        t.get(id)?.map(|v| decode(v.value())).transpose()
    }

    /// Every enrolled data plane with (records stored, highest seq).
    pub(crate) fn dataplanes(&self) -> Result<Vec<(DataplaneRow, u64, u64)>, StoreError> {
        let r = self.begin_read()?;
        let t = r.open_table(schema::DATAPLANES)?;
        let stats = r.open_table(schema::DATAPLANE_STATS)?;
        let mut out = Vec::new();
        for item in t.range::<&str>(..)? {
            let row: DataplaneRow = decode(item?.1.value())?;
            let (n, max) = stats
                .get(row.num.to_be_bytes())?
                .map(|v| unpack2(&v.value()))
                .unwrap_or_default();
            out.push((row, n, max));
        }
        Ok(out)
    }

    /// A tenant's records in `q`'s window, oldest first.
    pub(crate) fn logs(&self, tenant: &str, q: LogQuery) -> Result<Vec<LogEntry>, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, tenant)?;
        let names: HashMap<u32, String> = {
            let t = r.open_table(schema::DATAPLANES)?;
            let mut m = HashMap::new();
            for item in t.range::<&str>(..)? {
                let row: DataplaneRow = decode(item?.1.value())?;
                m.insert(row.num, row.id);
            }
            m
        };
        let index = r.open_table(schema::RECORDS_BY_TENANT)?;
        let records = r.open_table(schema::RECORDS)?;
        let lo = (tenant, schema::tenant_record_key(q.since.unwrap_or(0), 0, 0));
        let hi = (
            tenant,
            schema::tenant_record_key(q.until.unwrap_or(u64::MAX), 0, 0),
        );
        let range = index.range(lo..hi)?;
        let keys: Vec<[u8; 20]> = if q.since.is_some() {
            range
                .take(q.limit)
                .map(|i| i.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?
        } else {
            let mut v: Vec<[u8; 20]> = range
                .rev()
                .take(q.limit)
                .map(|i| i.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            v.reverse();
            v
        };
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let (_, rk) = split_tenant_record_key(&k);
            let (dp, seq) = split_record_key(&rk);
            let Some(v) = records.get(rk)? else { continue };
            out.push(LogEntry {
                dataplane: names.get(&dp).cloned().unwrap_or_else(|| format!("#{dp}")),
                seq,
                record: decode(v.value())?,
            });
        }
        Ok(out)
    }

    /// A tenant's usage by UTC day and model, oldest day first: requests and
    /// tokens (billing adds its columns: [`crate::billing::meter::usage`]).
    #[cfg(test)]
    pub(crate) fn usage(&self, tenant: &str) -> Result<Vec<UsageRow>, StoreError> {
        Self::usage_in(&self.begin_read()?, tenant)
    }

    /// [`Store::usage`] in `r`.
    pub(crate) fn usage_in(r: &ReadTransaction, tenant: &str) -> Result<Vec<UsageRow>, StoreError> {
        super::tenant_row(r, tenant)?;
        let t = r.open_table(schema::USAGE_DAILY)?;
        let mut out = Vec::new();
        for (day, model, v) in super::daily::of_tenant(&t, tenant)? {
            let (requests, input_tokens, output_tokens) = unpack3(&v);
            out.push(UsageRow {
                day: crate::time::format_day(day),
                model,
                requests,
                input_tokens,
                output_tokens,
                ..UsageRow::default()
            });
        }
        Ok(out)
    }
}

fn tenant_rows<T: serde::de::DeserializeOwned>(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    tenant: &str,
) -> Result<Vec<T>, StoreError> {
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
