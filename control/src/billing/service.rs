//! What control does for billing around the sync API: grants leases before
//! a data plane is served a snapshot, and after its records are stored.
//! (Above the store and the admin operations; [`super`] itself is below them.)

use super::fleet;
use super::ops::BillingOp;
use crate::app::App;
use crate::ops::AdminOp;
use crate::store::rows::DataplaneRow;
use crate::store::schema;
use crate::store::{decode, open_read, Store, StoreError};
use sluice_contract::record::Record;
use sluice_contract::snapshot::types::RateLimit;
use std::collections::BTreeMap;

/// Grants data plane `dp` what it is due before it is served a snapshot.
/// When it is starting (`bootstrap`: it asks with `after=0`) and control has
/// seen spend on its leases, the snapshot version is bumped unless a grant
/// just did it, so that the snapshot it gets carries the current spend.
/// Failures are logged, never passed to the data plane: it keeps its lease.
pub(crate) fn ensure_leases(app: &App, dp: &DataplaneRow, bootstrap: bool) {
    rebalance(app, crate::clock::now_ms(), bootstrap);
    if top_up(app, dp, None) || !bootstrap {
        return;
    }
    let Ok(store) = app.store() else { return };
    match store.spent_on(dp.num) {
        Ok(false) => {}
        Ok(true) => {
            let op = AdminOp::Billing(BillingOp::Resync { dataplane: dp.num });
            if let Err(e) = app.writer.admin(op) {
                tracing::warn!(dataplane = %dp.id, error = %e, "credit resync failed");
            }
        }
        Err(e) => tracing::warn!(dataplane = %dp.id, error = %e, "reading credit leases failed"),
    }
}

/// After a records batch from `dp` is stored: tops up its leases of the
/// tenants that spent, and wakes the alert webhook.
pub(crate) fn after_ingest<'a>(
    app: &App,
    dp: &DataplaneRow,
    records: impl Iterator<Item = &'a Record> + Clone,
) {
    let now_ms = crate::clock::now_ms();
    app.billing.fleet.note(dp.num, records.clone(), now_ms);
    rebalance(app, now_ms, false);
    let mut tenants: Vec<String> = records
        .filter(|r| r.cost_micros.is_some_and(|c| c > 0))
        .filter_map(|r| r.tenant.as_deref().map(str::to_owned))
        .collect();
    if tenants.is_empty() {
        return;
    }
    tenants.sort_unstable();
    tenants.dedup();
    top_up(app, dp, Some(tenants));
    app.billing.kick();
}

/// Grants `dp` what it is due; true when a grant was committed.
fn top_up(app: &App, dp: &DataplaneRow, tenants: Option<Vec<String>>) -> bool {
    let store = match app.store() {
        Ok(s) => s,
        Err(_) => return false,
    };
    match store.leases_due(dp.num, tenants.as_deref()) {
        Ok(false) => false,
        Ok(true) => {
            let op = AdminOp::Billing(BillingOp::TopUp {
                dataplane: dp.num,
                tenants,
            });
            match app.writer.admin(op) {
                Ok(applied) => applied.compiled.is_some(),
                Err(e) => {
                    tracing::warn!(dataplane = %dp.id, error = %e, "credit top-up failed");
                    false
                }
            }
        }
        Err(e) => {
            tracing::warn!(dataplane = %dp.id, error = %e, "reading credit leases failed");
            false
        }
    }
}

/// The limited subjects and the shares in force, read in one transaction.
fn current(store: &Store) -> Result<(Vec<fleet::Subject>, fleet::SharesInForce), StoreError> {
    let r = store.begin_read()?;
    let mut subjects = Vec::new();
    if let Some(t) = open_read(&r, schema::RATE_LIMITS)? {
        for item in t.range::<(&str, &str)>(..)? {
            let l: RateLimit = decode(item?.1.value())?;
            if l.rpm.is_some() || l.tpm.is_some() {
                subjects.push((l.tenant, l.key.unwrap_or_default()));
            }
        }
    }
    let mut shares = fleet::SharesInForce::new();
    if let Some(t) = open_read(&r, schema::RATE_SHARES)? {
        for item in t.range::<(&str, &str, [u8; 4])>(..)? {
            let (k, v) = item?;
            let (tenant, key, dp) = k.value();
            shares
                .entry((tenant.to_owned(), key.to_owned()))
                .or_default()
                .insert(u32::from_be_bytes(dp), v.value());
        }
    }
    Ok((subjects, shares))
}

/// The members: data planes not revoked that talked to control lately.
fn members(app: &App, rows: &[(DataplaneRow, u64, u64)], now_ms: u64) -> Vec<u32> {
    let mut out: Vec<u32> = rows
        .iter()
        .filter(|(row, _, _)| row.revoked_ms.is_none())
        .filter(|(row, _, _)| {
            app.metrics
                .live(&row.id)
                .is_some_and(|l| now_ms.saturating_sub(l.last_seen_ms) < fleet::ACTIVE_MS)
        })
        .map(|(row, _, _)| row.num)
        .collect();
    out.sort_unstable();
    out
}

/// Recomputes every limit's shares and commits them when they moved enough
/// (see [`super::fleet`]): at most every [`fleet::MIN_INTERVAL_MS`], or at
/// once when `joining` (a data plane's first poll: a member may have joined).
/// Best effort: a failure is logged and the shares in force stay.
pub(crate) fn rebalance(app: &App, now_ms: u64, joining: bool) {
    let fleet = &app.billing.fleet;
    if !fleet.due(now_ms) && !joining {
        return;
    }
    fleet.prune(now_ms);
    let Ok(store) = app.store() else { return };
    let plan = || -> Result<Option<Vec<fleet::ShareRow>>, StoreError> {
        let (subjects, in_force) = current(&store)?;
        let members = members(app, &store.dataplanes()?, now_ms);
        let mut changed = in_force.keys().any(|s| !subjects.contains(s));
        let mut rows = Vec::new();
        for subject in subjects {
            // One member (or none): the limit is whole, nothing to share.
            let target: BTreeMap<u32, u64> = if members.len() > 1 {
                let demand = fleet.demand_of(&subject, &members, now_ms);
                members.iter().copied().zip(fleet::weights(&demand)).collect()
            } else {
                BTreeMap::new()
            };
            let old = in_force.get(&subject).cloned().unwrap_or_default();
            if fleet::moved(&old, &target) {
                changed = true;
            }
            // Unchanged subjects keep their shares exactly (no churn).
            let keep = if fleet::moved(&old, &target) {
                &target
            } else {
                &old
            };
            for (&dp, &ppm) in keep {
                rows.push((subject.0.clone(), subject.1.clone(), dp, ppm));
            }
        }
        Ok(changed.then_some(rows))
    };
    match plan() {
        Ok(Some(rows)) => {
            if let Err(e) = app.writer.admin(AdminOp::Billing(BillingOp::RateShares(rows))) {
                tracing::warn!(error = %e, "rate-limit rebalance failed");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "rate-limit rebalance: reading the store failed"),
    }
}
