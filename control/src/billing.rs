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

pub(crate) mod fleet;
pub(crate) mod leases;
pub(crate) mod meter;
pub(crate) mod ops;
pub(crate) mod query;
pub(crate) mod rows;
pub(crate) mod sections;
pub(crate) mod service;
pub(crate) mod tables;
pub(crate) mod webhook;

pub(crate) use service::{after_ingest, ensure_leases};

use crossbeam_channel::{bounded, Receiver, Sender};

/// Billing's live state: the wake-up line between ingest and the webhook
/// thread, and the fleet's traffic for sharing rate limits.
pub(crate) struct Runtime {
    tx: Sender<()>,
    pub(crate) rx: Receiver<()>,
    /// Requests per data plane, for the rate-limit shares.
    pub(crate) fleet: fleet::Fleet,
}

impl Default for Runtime {
    fn default() -> Runtime {
        // One pending wake-up is enough: the thread reads every new alert.
        let (tx, rx) = bounded(1);
        Runtime {
            tx,
            rx,
            fleet: fleet::Fleet::default(),
        }
    }
}

impl Runtime {
    /// Wakes the webhook thread, if any; never blocks.
    pub(crate) fn kick(&self) {
        let _ = self.tx.try_send(());
    }
}
