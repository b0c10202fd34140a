//! A tenant's content-logging opt-in and retention periods (`tenant update T
//! --log-content on|off --retention-days N --content-retention-days N`).

use crate::store::require_tenant;
use crate::store::schema::TENANT_PRIVACY;
use crate::store::{decode, encode, StoreError};
use crate::vault::Envelope;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::hex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Days metadata and content are kept when a tenant sets nothing.
pub(crate) const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Days the anonymous daily rollups are kept by default (13 months).
pub(crate) const DEFAULT_ROLLUP_RETENTION_DAYS: u32 = 396;
/// Longest retention period accepted, days (100 years).
pub(crate) const MAX_RETENTION_DAYS: u32 = 36_500;

static ROLLUP_RETENTION_DAYS: AtomicU32 = AtomicU32::new(DEFAULT_ROLLUP_RETENTION_DAYS);

/// Sets how long daily rollups are kept (`serve --rollup-retention-days`).
pub(crate) fn set_rollup_retention_days(days: u32) {
    ROLLUP_RETENTION_DAYS.store(days.clamp(1, MAX_RETENTION_DAYS), Ordering::Relaxed);
}

/// How long daily rollups are kept, days.
pub(crate) fn rollup_retention_days() -> u32 {
    ROLLUP_RETENTION_DAYS.load(Ordering::Relaxed)
}

/// A tenant's privacy settings, as stored ([`TENANT_PRIVACY`]); a tenant
/// without a row has the defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PrivacyRow {
    /// Request and response bodies are logged, sealed under the content key.
    #[serde(default)]
    pub(crate) log_content: bool,
    /// Days records are kept; `None`: [`DEFAULT_RETENTION_DAYS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retention_days: Option<u32>,
    /// Days logged content is kept; `None`: [`DEFAULT_RETENTION_DAYS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_retention_days: Option<u32>,
    /// The content key, sealed under the master key: made at the first
    /// opt-in, destroyed by the first purge after an opt-out (once no content
    /// is left) and by deleting the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) content_key: Option<SealedKey>,
}

/// A key sealed like a provider key's secret: the key under its own data key,
/// the data key under the master key (hex each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SealedKey {
    /// The data key, sealed under the master key.
    pub(crate) wrapped_dek: String,
    /// The content key, sealed under the data key.
    pub(crate) sealed: String,
}

impl SealedKey {
    /// From a vault envelope.
    pub(crate) fn from_envelope(e: &Envelope) -> SealedKey {
        SealedKey {
            wrapped_dek: hex(&e.wrapped_dek),
            sealed: hex(&e.sealed),
        }
    }

    /// Back into a vault envelope.
    pub(crate) fn envelope(&self) -> Result<Envelope, StoreError> {
        let bad = || StoreError::Internal("a sealed content key is not valid hex".into());
        Ok(Envelope {
            wrapped_dek: crate::store::compile::unhex_vec(&self.wrapped_dek).ok_or_else(bad)?,
            sealed: crate::store::compile::unhex_vec(&self.sealed).ok_or_else(bad)?,
        })
    }
}

impl PrivacyRow {
    /// Days records are kept.
    pub(crate) fn retention_days(&self) -> u32 {
        self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS)
    }

    /// Days content is kept: never longer than its record.
    pub(crate) fn content_retention_days(&self) -> u32 {
        self.content_retention_days
            .unwrap_or(DEFAULT_RETENTION_DAYS)
            .min(self.retention_days())
    }

    /// Whether data planes are given the content key (and so log content).
    pub(crate) fn serves_key(&self) -> bool {
        self.log_content && self.content_key.is_some()
    }
}

/// A change of settings; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Change {
    /// Turn content logging on or off.
    #[serde(default)]
    pub(crate) log_content: Option<bool>,
    /// Days records are kept.
    #[serde(default)]
    pub(crate) retention_days: Option<u32>,
    /// Days content is kept.
    #[serde(default)]
    pub(crate) content_retention_days: Option<u32>,
}

impl Change {
    /// Refuses periods out of range and a change of nothing.
    pub(crate) fn check(&self) -> Result<(), String> {
        if *self == Change::default() {
            return Err(
                "nothing to change: give log_content, retention_days or content_retention_days".into(),
            );
        }
        for (what, days) in [
            ("retention_days", self.retention_days),
            ("content_retention_days", self.content_retention_days),
        ] {
            if let Some(d) = days {
                if !(1..=MAX_RETENTION_DAYS).contains(&d) {
                    return Err(format!("{what} must be 1 to {MAX_RETENTION_DAYS} days"));
                }
            }
        }
        Ok(())
    }
}

/// What the admin API shows of a tenant's settings (never the key itself).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PrivacyView {
    /// Tenant id.
    pub(crate) tenant: String,
    /// Content logging is on.
    pub(crate) log_content: bool,
    /// Days records are kept.
    pub(crate) retention_days: u32,
    /// Days content is kept.
    pub(crate) content_retention_days: u32,
    /// A content key exists (content logged so far can be opened).
    pub(crate) content_key: bool,
    /// Days the anonymous daily rollups are kept (for every tenant).
    pub(crate) rollup_retention_days: u32,
}

impl PrivacyView {
    /// The view of `row`.
    pub(crate) fn of(tenant: &str, row: &PrivacyRow) -> PrivacyView {
        PrivacyView {
            tenant: tenant.to_owned(),
            log_content: row.log_content,
            retention_days: row.retention_days(),
            content_retention_days: row.content_retention_days(),
            content_key: row.content_key.is_some(),
            rollup_retention_days: rollup_retention_days(),
        }
    }
}

/// The settings of `tenant` in a read transaction.
pub(crate) fn get_read(r: &ReadTransaction, tenant: &str) -> Result<PrivacyRow, StoreError> {
    let Some(t) = crate::store::open_read(r, TENANT_PRIVACY)? else {
        return Ok(PrivacyRow::default());
    };
    let row = t.get(tenant)?.map(|v| decode(v.value())).transpose()?;
    Ok(row.unwrap_or_default())
}

/// The settings of `tenant` in a write transaction.
pub(crate) fn get_write(txn: &WriteTransaction, tenant: &str) -> Result<PrivacyRow, StoreError> {
    let t = txn.open_table(TENANT_PRIVACY)?;
    let row = t.get(tenant)?.map(|v| decode(v.value())).transpose()?;
    Ok(row.unwrap_or_default())
}

/// Stores `row` (a row equal to the defaults is removed).
pub(crate) fn put(txn: &WriteTransaction, tenant: &str, row: &PrivacyRow) -> Result<(), StoreError> {
    let mut t = txn.open_table(TENANT_PRIVACY)?;
    if *row == PrivacyRow::default() {
        t.remove(tenant)?;
    } else {
        t.insert(tenant, encode(row)?.as_slice())?;
    }
    Ok(())
}

/// Applies `change`; returns whether the snapshot changes (the content key
/// is given to, or taken from, data planes).
pub(crate) fn apply(
    txn: &WriteTransaction,
    tenant: &str,
    change: &Change,
    new_key: Option<&Envelope>,
) -> Result<bool, StoreError> {
    change.check().map_err(StoreError::Invalid)?;
    require_tenant(txn, tenant)?;
    let mut row = get_write(txn, tenant)?;
    let served = row.serves_key();
    if let Some(on) = change.log_content {
        row.log_content = on;
        if on && row.content_key.is_none() {
            let key = new_key.ok_or_else(|| StoreError::Internal("no content key was made".into()))?;
            row.content_key = Some(SealedKey::from_envelope(key));
        }
    }
    if let Some(d) = change.retention_days {
        row.retention_days = Some(d);
    }
    if let Some(d) = change.content_retention_days {
        row.content_retention_days = Some(d);
    }
    put(txn, tenant, &row)?;
    Ok(row.serves_key() != served)
}
