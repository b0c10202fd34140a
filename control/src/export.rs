//! `export --tenant T --out FILE`: everything the store holds of a tenant,
//! as one JSON document.
//!
//! # The document (`"format": "sluice-export/1"`)
//!
//! | field | what |
//! |---|---|
//! | `format` | `"sluice-export/1"` |
//! | `exported_at` | RFC 3339, control's clock |
//! | `tenant` | id, name, region, `created_ms` |
//! | `privacy` | `log_content`, `retention_days`, `content_retention_days`, `content_key` (whether one exists), `rollup_retention_days` |
//! | `api_keys` | gateway keys: `id`, `name`, `created_ms`, `revoked_ms` (never the key, nor its hash) |
//! | `provider_keys` | provider keys: `id`, `tenant`, `created_ms`, `updated_ms` (never the secret, sealed or not) |
//! | `routes` | the tenant's model routes |
//! | `policies`, `rate_limits` | as compiled for data planes |
//! | `usage` | daily usage by model (`day`, `model`, requests, tokens, `cost_micros`) |
//! | `records_total` | how many records follow |
//! | `after_deletion` | what `tenant delete` keeps: anonymous daily rollups |
//! | `records` | every stored record, oldest first: `{dataplane, seq, record, content}`; `record` without `content_sealed`; `content` is `null` when none was logged, else `{"state":"opened","request","response","response_truncated"}`, or `{"state":"expired"\|"key_destroyed"\|"unreadable"}` |
//!
//! The CLI writes the header first and then the records page by page
//! ([`records_page`]), so an export of millions of records never sits in
//! memory whole.

use crate::privacy::content::{ContentView, Opener};
use crate::privacy::settings::{self, PrivacyView};
use crate::store::rows::{DataplaneRow, ProviderKeyInfo, TenantRow, UsageRow};
use crate::store::schema::{self, split_record_key, split_tenant_record_key, TenantRecordKey};
use crate::store::{decode, Store, StoreError};
use crate::vault::Vault;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, unhex};
use sluice_contract::record::Record;
use sluice_contract::snapshot::types::{PolicyDoc, RateLimit, Route};
use std::collections::HashMap;
use std::ops::Bound;

/// The `format` of the document.
pub(crate) const FORMAT: &str = "sluice-export/1";
/// Largest page of records.
pub(crate) const MAX_PAGE: usize = 5_000;

/// A gateway key as exported: no key, no hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ApiKeyMeta {
    /// Key id.
    pub(crate) id: String,
    /// Label.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// Revocation time, unix ms.
    #[serde(default)]
    pub(crate) revoked_ms: Option<u64>,
}

/// Everything but the records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// [`FORMAT`].
    pub(crate) format: String,
    /// When, RFC 3339.
    pub(crate) exported_at: String,
    /// The tenant.
    pub(crate) tenant: TenantRow,
    /// Its privacy settings.
    pub(crate) privacy: PrivacyView,
    /// Gateway key metadata.
    pub(crate) api_keys: Vec<ApiKeyMeta>,
    /// Provider key metadata.
    pub(crate) provider_keys: Vec<ProviderKeyInfo>,
    /// Routes.
    pub(crate) routes: Vec<Route>,
    /// Policies.
    pub(crate) policies: Vec<PolicyDoc>,
    /// Rate limits.
    pub(crate) rate_limits: Vec<RateLimit>,
    /// Daily usage.
    pub(crate) usage: Vec<UsageRow>,
    /// Records that follow.
    pub(crate) records_total: u64,
    /// What deleting the tenant keeps.
    pub(crate) after_deletion: String,
}

/// One exported record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExportedRecord {
    /// Data plane that sent it.
    pub(crate) dataplane: String,
    /// Its sequence number there.
    pub(crate) seq: u64,
    /// The record, without its sealed content.
    pub(crate) record: Record,
    /// The content, when the tenant logged any for this request.
    pub(crate) content: Option<ContentView>,
}

/// A page of records and where the next one starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Page {
    /// Records, oldest first.
    pub(crate) records: Vec<ExportedRecord>,
    /// Cursor of the next page; `None` after the last.
    pub(crate) next: Option<String>,
}

/// The header of `tenant`'s export at `now_ms`.
pub(crate) fn header(store: &Store, tenant: &str, now_ms: u64) -> Result<Header, StoreError> {
    let row = store.tenant(tenant)?;
    let api_keys = store
        .api_keys(tenant)?
        .into_iter()
        .map(|k| ApiKeyMeta {
            id: k.id,
            name: k.name,
            created_ms: k.created_ms,
            revoked_ms: k.revoked_ms,
        })
        .collect();
    let compiled = crate::ops::compile_current(store)?;
    let r = store.begin_read()?;
    let privacy = settings::get_read(&r, tenant)?;
    let records_total = match crate::store::open_read(&r, schema::RECORDS_BY_TENANT)? {
        Some(t) => t.range((tenant, [0u8; 20])..=(tenant, [0xffu8; 20]))?.count() as u64,
        None => 0,
    };
    Ok(Header {
        format: FORMAT.into(),
        exported_at: crate::time::format_rfc3339(now_ms),
        privacy: PrivacyView::of(tenant, &privacy),
        api_keys,
        provider_keys: store.provider_keys(tenant)?,
        routes: store.routes(tenant)?,
        policies: compiled
            .snapshot
            .policies
            .into_iter()
            .filter(|p| p.tenant == tenant)
            .collect(),
        rate_limits: compiled
            .snapshot
            .rate_limits
            .into_iter()
            .filter(|l| l.tenant == tenant)
            .collect(),
        usage: crate::billing::meter::usage(store, tenant)?,
        records_total,
        after_deletion: format!(
            "`tenant delete` removes all of the above and destroys the content key; it keeps anonymous daily \
             rollups (day, model, requests, tokens, cost: no tenant id) for {} days",
            crate::privacy::rollup_retention_days()
        ),
        tenant: row,
    })
}

/// Up to `limit` of `tenant`'s records after cursor `after`, content opened.
pub(crate) fn records_page(
    store: &Store,
    vault: &Vault,
    tenant: &str,
    after: Option<&str>,
    limit: usize,
    now_ms: u64,
) -> Result<Page, StoreError> {
    let start: Bound<(&str, TenantRecordKey)> = match after {
        None => Bound::Included((tenant, [0u8; 20])),
        Some(c) => {
            let k = unhex::<20>(c).ok_or_else(|| StoreError::Invalid(format!("bad export cursor {c:?}")))?;
            Bound::Excluded((tenant, k))
        }
    };
    store.tenant(tenant)?;
    let r = store.begin_read()?;
    let opener = Opener::new(vault, tenant, &settings::get_read(&r, tenant)?, now_ms)?;
    let names = dataplane_names(&r)?;
    let index = r.open_table(schema::RECORDS_BY_TENANT)?;
    let records = r.open_table(schema::RECORDS)?;
    let keys: Vec<TenantRecordKey> = index
        .range::<(&str, TenantRecordKey)>((start, Bound::Included((tenant, [0xffu8; 20]))))?
        .take(limit.clamp(1, MAX_PAGE) + 1)
        .map(|i| i.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    let more = keys.len() > limit.clamp(1, MAX_PAGE);
    let mut out = Vec::with_capacity(keys.len());
    let mut last = None;
    for k in keys.into_iter().take(limit.clamp(1, MAX_PAGE)) {
        last = Some(k);
        let rk = split_tenant_record_key(&k).1;
        let (dp, seq) = split_record_key(&rk);
        let Some(v) = records.get(rk)? else { continue };
        let mut record: Record = decode(v.value())?;
        let content = opener.open(&record);
        record.content_sealed = None;
        out.push(ExportedRecord {
            dataplane: names.get(&dp).cloned().unwrap_or_else(|| format!("#{dp}")),
            seq,
            record,
            content,
        });
    }
    Ok(Page {
        records: out,
        next: if more { last.map(|k| hex(&k)) } else { None },
    })
}

/// Data plane number → id.
pub(crate) fn dataplane_names(r: &redb::ReadTransaction) -> Result<HashMap<u32, String>, StoreError> {
    let t = r.open_table(schema::DATAPLANES)?;
    let mut m = HashMap::new();
    for item in t.range::<&str>(..)? {
        let row: DataplaneRow = decode(item?.1.value())?;
        m.insert(row.num, row.id);
    }
    Ok(m)
}

#[cfg(test)]
mod tests;
