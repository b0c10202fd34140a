//! Privacy and the data lifecycle: opt-in content logging, retention,
//! deletion, and the hooks that tie the audit trail to the store's writer.
//!
//! - [`settings`]: a tenant's content-logging opt-in and retention periods.
//! - [`content`]: the per-tenant content key. Control keeps it sealed under
//!   the master key (like a provider key's data key) and hands it to data
//!   planes sealed for each of them, only while the tenant opts in; records
//!   arrive with their content already sealed under it and are stored as they
//!   come. Only `logs --content` and `export` open it.
//! - [`erase`]: what deleting a tenant adds to the store's own deletion: its
//!   privacy row and content key (crypto-shredding every sealed copy), its
//!   content index, and its usage folded into anonymous rollups.
//! - [`crate::retention`]: the purge; [`crate::audit`]: the hash chain;
//!   [`crate::export`]: the export document; [`crate::store::compact`]: the
//!   rewrite that takes deleted bytes out of the file.
//!
//! Every change here is an [`crate::ops::AdminOp::Privacy`],
//! applied by the writer in one transaction like any admin change.

pub(crate) mod content;
pub(crate) mod erase;
pub(crate) mod hooks;
pub(crate) mod settings;

use crate::retention::PurgeReport;
use crate::store::StoreError;
use crate::vault::Envelope;
use redb::{ReadableTable, WriteTransaction};
use std::sync::{Arc, Mutex};

pub(crate) use settings::{rollup_retention_days, set_rollup_retention_days, DEFAULT_ROLLUP_RETENTION_DAYS};

/// The environment variable that once moved the clock; now only warned about.
const RETIRED_CLOCK_ENV: &str = "SLUICE_CLOCK_OFFSET_DAYS";

/// Options of `serve` for privacy and retention.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServeOpts {
    /// TESTS ONLY: move control's clock by whole days, so a retention test
    /// can watch a purge. Records keep the time their data plane gave them;
    /// purges and audit entries use this clock. Deliberately a loud flag and
    /// not an environment variable: a stray variable in production would
    /// purge real data at start. Every start with it set logs an error.
    #[arg(
        long = "test-only-clock-offset-days",
        default_value_t = 0,
        allow_negative_numbers = true,
        hide = true
    )]
    pub(crate) clock_offset_days: i64,
    /// Days the daily usage rollups (no personal identifiers) are kept.
    #[arg(long, default_value_t = DEFAULT_ROLLUP_RETENTION_DAYS)]
    pub(crate) rollup_retention_days: u32,
    /// Seconds between retention purges.
    #[arg(long, default_value_t = 3600, hide = true)]
    pub(crate) purge_interval_secs: u64,
}

/// Applies `serve`'s options and loads the audit trail, before the writer starts.
pub(crate) fn startup(
    opts: &ServeOpts,
    store: &crate::store::Store,
    vault: &crate::vault::Vault,
    admin_token: &str,
) -> anyhow::Result<Arc<hooks::Hooks>> {
    crate::clock::set_offset_days(opts.clock_offset_days);
    set_rollup_retention_days(opts.rollup_retention_days);
    if opts.clock_offset_days != 0 {
        tracing::error!(
            days = opts.clock_offset_days,
            "TEST ONLY: control's clock is moved (--test-only-clock-offset-days); retention purges by this clock"
        );
    }
    if std::env::var_os(RETIRED_CLOCK_ENV).is_some() {
        tracing::warn!(
            "{RETIRED_CLOCK_ENV} is set and ignored: the clock moves only with --test-only-clock-offset-days"
        );
    }
    // A rewrite that stopped before its rename left a scratch copy: drop it.
    crate::store::compact::remove_scratch(store)?;
    let sha = sluice_contract::crypto::sha256(admin_token.as_bytes());
    let auditor = crate::audit::Auditor::load(store, vault, &sha)?;
    Ok(Arc::new(hooks::Hooks { auditor }))
}

/// Re-wraps every content key and the audit key for a new master key
/// (inside `master-key rotate`); returns how many keys.
pub(crate) fn rewrap_all(
    txn: &WriteTransaction,
    old: &crate::vault::Vault,
    new: &crate::vault::Vault,
) -> Result<usize, StoreError> {
    let mut count = crate::audit::rewrap_key(txn, old, new)?;
    let mut t = txn.open_table(crate::store::schema::TENANT_PRIVACY)?;
    let mut rows: Vec<(String, settings::PrivacyRow)> = Vec::new();
    for item in t.range::<&str>(..)? {
        let (k, v) = item?;
        rows.push((k.value().to_owned(), crate::store::decode(v.value())?));
    }
    for (tenant, mut row) in rows {
        let Some(key) = row.content_key.as_mut() else {
            continue;
        };
        let env = key.envelope()?;
        key.wrapped_dek =
            sluice_contract::crypto::hex(&old.rewrap(new, &content::key_aad(&tenant), &env.wrapped_dek)?);
        t.insert(tenant.as_str(), crate::store::encode(&row)?.as_slice())?;
        count += 1;
    }
    Ok(count)
}

/// Where a purge puts its report for the caller (admin ops carry no results).
pub(crate) type PurgeSlot = Arc<Mutex<Option<PurgeReport>>>;

/// One privacy change.
#[derive(Debug, Clone)]
pub(crate) enum PrivacyOp {
    /// Change a tenant's content logging or retention periods.
    Settings {
        /// Tenant id.
        tenant: String,
        /// What changes.
        change: settings::Change,
        /// A fresh content key sealed under the master key, used when logging
        /// is turned on and the tenant has no key yet.
        new_key: Option<Envelope>,
    },
    /// Remove what retention no longer allows (see [`crate::retention`]).
    Purge {
        /// Now, unix ms (control's clock).
        now_ms: u64,
        /// Days daily rollups are kept.
        rollup_days: u32,
        /// Most records and contents removed in this transaction.
        budget: u64,
        /// Asked for by an admin (`purge --now`), not the hourly timer.
        by_admin: bool,
        /// Whether to rewrite the file afterwards.
        rewrite: bool,
        /// Filled with what was removed.
        report: PurgeSlot,
    },
    /// Changes nothing: an admin read of tenant data, for the audit trail.
    Note {
        /// What was done, e.g. `tenant.export`.
        action: &'static str,
        /// Tenant id.
        tenant: String,
    },
}

/// Applies `op` inside `txn`; returns whether the snapshot is affected.
pub(crate) fn apply(txn: &WriteTransaction, op: &PrivacyOp) -> Result<bool, StoreError> {
    match op {
        PrivacyOp::Settings {
            tenant,
            change,
            new_key,
        } => settings::apply(txn, tenant, change, new_key.as_ref()),
        PrivacyOp::Purge {
            now_ms,
            rollup_days,
            budget,
            report,
            ..
        } => {
            let r = crate::retention::purge(txn, *now_ms, *rollup_days, *budget)?;
            *report.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
            Ok(false)
        }
        PrivacyOp::Note { tenant, .. } => {
            crate::store::require_tenant(txn, tenant)?;
            Ok(false)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
