//! What the store's writer does for privacy around every admin change (see
//! [`crate::ops::writer::Observer`]): append the audit entry in the
//! change's own transaction (erasing a deleted tenant's name from earlier
//! entries first), record refusals, and rewrite the file after a deletion.

use super::PrivacyOp;
use crate::audit::Auditor;
use crate::ops::AdminOp;
use crate::store::schema::PRIVACY_META;
use crate::store::{Store, StoreError};
use redb::WriteTransaction;

/// [`PRIVACY_META`] key set while a deletion's rewrite is owed.
const REWRITE_PENDING: &str = "rewrite_pending";

/// The privacy side of the writer.
pub(crate) struct Hooks {
    /// The audit trail.
    pub(crate) auditor: Auditor,
}

/// Appends the entry of admin change `op` with `outcome` (`ok` or
/// `refused: <kind>`), made for `actor` (the admin token's name; the
/// auditor's default admin when none), inside `txn`.
fn record(
    auditor: &Auditor,
    txn: &WriteTransaction,
    op: &AdminOp,
    outcome: &str,
    actor: Option<&str>,
) -> Result<(), StoreError> {
    if let Some(mut d) = crate::ops::describe::describe(op) {
        d.actor = actor.map(str::to_owned);
        auditor.append(txn, &d, outcome, crate::clock::now_ms())?;
    }
    Ok(())
}

/// The outcome an audit entry records for a refusal (its kind, not its
/// message: messages echo input).
pub(crate) fn refused(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound(_) => "refused: not_found",
        StoreError::Conflict(_) => "refused: conflict",
        StoreError::Invalid(_) => "refused: invalid",
        StoreError::Unavailable => "refused: unavailable",
        StoreError::Internal(_) => "refused: internal",
    }
}

impl Hooks {
    /// Inside the change's transaction, before it commits.
    pub(crate) fn applying(
        &self,
        txn: &WriteTransaction,
        op: &AdminOp,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        if let AdminOp::DeleteTenant(id) = op {
            self.auditor.erase_tenant(txn, id)?;
        }
        record(&self.auditor, txn, op, "ok", actor)
    }

    /// After the change was refused and its transaction aborted.
    pub(crate) fn refused(&self, store: &Store, op: &AdminOp, e: &StoreError, actor: Option<&str>) {
        let result = store.begin_write().and_then(|txn| {
            record(&self.auditor, &txn, op, refused(e), actor)?;
            txn.commit()?;
            self.auditor.committed();
            Ok(())
        });
        if let Err(err) = result {
            tracing::warn!(error = %err, "appending a refusal to the audit trail failed");
        }
    }

    /// After the change committed, before it is answered.
    pub(crate) fn settled(&self, store: &Store, op: &AdminOp) -> Result<(), StoreError> {
        self.auditor.committed();
        let wanted = match op {
            AdminOp::DeleteTenant(_) => true,
            AdminOp::Privacy(PrivacyOp::Purge { rewrite, report, .. }) => {
                let more = report
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some_and(|r| r.more);
                !more && (*rewrite || pending(store)?)
            }
            _ => false,
        };
        if !wanted {
            return Ok(());
        }
        match crate::store::compact::rewrite(store) {
            Ok(done) => {
                tracing::info!(
                    tables = done.tables,
                    entries = done.entries,
                    bytes_before = done.bytes_before,
                    bytes_after = done.bytes_after,
                    "store rewritten"
                );
                set_pending(store, false)
            }
            Err(e) => {
                // The change stands; the next purge tries the rewrite again.
                set_pending(store, true)?;
                Err(StoreError::Internal(format!(
                    "the change was made, but rewriting the store to drop the deleted bytes failed ({e}); the next purge retries"
                )))
            }
        }
    }
}

fn pending(store: &Store) -> Result<bool, StoreError> {
    let r = store.begin_read()?;
    Ok(match crate::store::open_read(&r, PRIVACY_META)? {
        Some(t) => t.get(REWRITE_PENDING)?.is_some(),
        None => false,
    })
}

fn set_pending(store: &Store, on: bool) -> Result<(), StoreError> {
    if pending(store)? == on {
        return Ok(());
    }
    let txn = store.begin_write()?;
    {
        let mut t = txn.open_table(PRIVACY_META)?;
        if on {
            t.insert(REWRITE_PENDING, &[1u8][..])?;
        } else {
            t.remove(REWRITE_PENDING)?;
        }
    }
    txn.commit()?;
    Ok(())
}
