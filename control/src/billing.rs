//! Metering and policy: prices, tenant policies, rate limits, prepaid
//! credit with its leases to data planes, low-balance alerts, and the cost
//! side of usage.
//!
//! Prices, policies and rate limits are plain state compiled into every
//! snapshot ([`sections`]); the data plane enforces them, and its own policy
//! compiler validates a policy before it is accepted. Credit is the part that
//! needs an algorithm, because it is spent where control cannot see it in
//! time: on data planes that admit requests on their own.
//!
//! # Credit leases
//!
//! Control keeps, per tenant with a credit account, `A` (credit added, ever),
//! `S` (settled cost, `cost_micros`, of every record ingested since), and
//! `L = Σ g_d`, where `g_d` is the cumulative grant to data plane `d`; and per
//! (tenant, data plane) `s_d`, the settled cost of the records ingested from
//! `d`. The balance is `B = A − S`, the unleased credit `U = A − L`.
//!
//! Data plane `d` receives `g_d` as `CreditGrant.granted_micros` in its own
//! snapshot (every metered tenant appears there, with 0 when nothing was
//! granted, so a data plane never serves a metered tenant unmetered). It
//! reserves each request's worst case against `g_d` minus what it spent, and
//! refuses with 402 `insufficient_quota` when that does not fit.
//!
//! - **Slice**: `max(B / 10, $0.01)`, and nothing while `B ≤ 0`
//!   ([`leases::slice`]).
//! - **Top-up**: `d` is granted `min(slice, U)` more when its remaining lease
//!   `g_d − s_d` is below half a slice ([`leases::top_up`]). That is checked
//!   when `d` asks for a snapshot (so a new data plane gets its first slice
//!   before it serves), after every records batch from `d` is stored (for the
//!   tenants in it), and when credit is added (for every data plane holding a
//!   lease of that tenant). A grant is an admin change: it commits durably and
//!   bumps the snapshot version, which wakes `d`'s long poll.
//! - **Invariant**: `L ≤ A` after every commit, because a grant never exceeds
//!   `U` and credit is never taken back. A data plane admits no more than its
//!   `g_d` of worst-case reservations, so the tenant's total spend stays
//!   within `Σ g_d ≤ A` whatever the timing, also while control is
//!   unreachable (the data plane runs its lease down, then refuses).
//! - **Restarts**: `g_d` is cumulative, and a restarted data plane knows
//!   nothing of what its earlier process spent. Each grant in its snapshot
//!   therefore also carries `s_d` (`CreditGrant.spent_micros`), and the data
//!   plane charges `s_d` minus its own settled spend, the largest seen, as
//!   spent before it started (`sluice_contract::quota::credit`). A starting
//!   data plane asks with `after=0`; when control has seen spend on its
//!   leases it bumps the snapshot version first (unless a grant just did), so
//!   the snapshot it starts on carries the current `s_d`. What it cannot
//!   know is the cost of the records the earlier process had not delivered
//!   yet (its spool, replayed after the start): the data plane learns of them
//!   with its next snapshot, so a restart can overspend a lease by at most
//!   that much until then, and a record lost in a `kill -9` before it was
//!   spooled is never charged.
//! - **Costs of the scheme**: credit leased to an idle data plane is stranded
//!   there (at most one slice, ≤ 10 % of the balance, per data plane), since a
//!   grant is never reduced: control cannot know what a data plane spent but
//!   has not reported yet, so taking credit back could overdraw. A revoked
//!   data plane's lease stays counted. A provider that reports more than the
//!   worst case reserved makes `s_d` exceed `g_d` (the record carries the real
//!   cost), so `B` can go below zero by that excess.
//!
//! # Alerts
//!
//! When an ingest (or a new threshold) takes a tenant's balance below its
//! low-balance threshold, an [`rows::AlertRow`] is appended in the same
//! transaction, once per crossing (adding credit above the threshold re-arms
//! it). With `serve --alert-webhook URL`, [`webhook`] posts each alert from its
//! own thread, so delivery never holds up ingest.

pub(crate) mod leases;
pub(crate) mod meter;
pub(crate) mod ops;
pub(crate) mod query;
pub(crate) mod rows;
pub(crate) mod sections;
pub(crate) mod tables;
pub(crate) mod webhook;

pub(crate) use webhook::Runtime;

use crate::app::App;
use crate::store::admin_ops::AdminOp;
use crate::store::rows::DataplaneRow;
use ops::BillingOp;
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
