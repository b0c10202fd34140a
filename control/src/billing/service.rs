//! What control does for billing around the sync API: grants leases before
//! a data plane is served a snapshot, and after its records are stored.
//! (Above the store and the admin operations; [`super`] itself is below them.)

use super::ops::BillingOp;
use crate::app::App;
use crate::ops::AdminOp;
use crate::store::rows::DataplaneRow;
use sluice_contract::record::Record;

/// Grants data plane `dp` what it is due before it is served a snapshot.
/// When it is starting (`bootstrap`: it asks with `after=0`) and control has
/// seen spend on its leases, the snapshot version is bumped unless a grant
/// just did it, so that the snapshot it gets carries the current spend.
/// Failures are logged, never passed to the data plane: it keeps its lease.
pub(crate) fn ensure_leases(app: &App, dp: &DataplaneRow, bootstrap: bool) {
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
pub(crate) fn after_ingest<'a>(app: &App, dp: &DataplaneRow, records: impl Iterator<Item = &'a Record>) {
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
