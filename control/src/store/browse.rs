//! Reads for the console: a tenant's records newest first, filtered and
//! paged by a cursor, and a scan of a time window over many tenants for the
//! charts. Both walk the per-tenant time index; each page or window is
//! bounded in what it may scan, and says so when it stopped early.

use super::schema::{self, split_record_key, split_tenant_record_key, TenantRecordKey};
use super::{decode, Store, StoreError};
use serde::Serialize;
use sluice_contract::record::{Outcome, Record};

/// Most index entries one page or window reads.
pub(crate) const MAX_SCAN: usize = 200_000;

/// Which records a page holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Only this model (as the client asked for it).
    pub(crate) model: Option<String>,
    /// Only this gateway key id.
    pub(crate) key: Option<String>,
    /// Only errors ([`is_error`]).
    pub(crate) errors_only: bool,
    /// Only records at or after this time, unix ms.
    pub(crate) since: Option<u64>,
}

impl Filter {
    fn admits(&self, r: &Record) -> bool {
        self.model
            .as_deref()
            .is_none_or(|m| r.model.as_deref() == Some(m))
            && self.key.as_deref().is_none_or(|k| r.key_id.as_deref() == Some(k))
            && (!self.errors_only || is_error(r))
    }
}

/// Whether a record counts as an error: an error status, or an end other
/// than a whole response (a client that left is not an error of ours).
pub(crate) fn is_error(r: &Record) -> bool {
    r.status >= 400 || !matches!(r.outcome, Outcome::Ok | Outcome::Cancelled)
}

/// A record as a page lists it: metadata only. Sealed content never leaves
/// here; `has_content` says whether there is some to open on request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Listed {
    /// Data plane that sent it.
    pub(crate) dataplane: String,
    /// Its sequence number there.
    pub(crate) seq: u64,
    /// Whether the tenant's opted-in content was stored with it.
    pub(crate) has_content: bool,
    /// The record, without its sealed content.
    pub(crate) record: Record,
}

/// One page, newest first.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Page {
    /// The records.
    pub(crate) entries: Vec<Listed>,
    /// Pass as `before` for the next (older) page; absent at the end.
    pub(crate) next: Option<String>,
}

fn cursor_hex(k: &TenantRecordKey) -> String {
    sluice_contract::crypto::hex(k)
}

/// Reads a cursor made by a previous page.
pub(crate) fn parse_cursor(s: &str) -> Option<TenantRecordKey> {
    sluice_contract::crypto::unhex::<20>(s)
}

impl Store {
    /// Up to `limit` of `tenant`'s records matching `f`, newest first, older
    /// than the cursor `before` when given.
    pub(crate) fn browse(
        &self,
        tenant: &str,
        f: &Filter,
        before: Option<TenantRecordKey>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let r = self.begin_read()?;
        super::tenant_row(&r, tenant)?;
        let names = crate::export::dataplane_names(&r)?;
        let index = r.open_table(schema::RECORDS_BY_TENANT)?;
        let records = r.open_table(schema::RECORDS)?;
        let lo = (tenant, schema::tenant_record_key(f.since.unwrap_or(0), 0, 0));
        let hi = (tenant, before.unwrap_or([0xff; 20]));
        let mut entries = Vec::new();
        let mut next = None;
        for (scanned, item) in index.range(lo..hi)?.rev().enumerate() {
            let k = item?.0.value().1;
            if entries.len() == limit || scanned == MAX_SCAN {
                // More may follow: resume after the last one looked at.
                next = Some(cursor_hex(&k_plus_one(&k)));
                break;
            }
            let (_, rk) = split_tenant_record_key(&k);
            let Some(v) = records.get(rk)? else { continue };
            let mut record: Record = decode(v.value())?;
            if !f.admits(&record) {
                continue;
            }
            let (dp, seq) = split_record_key(&rk);
            let has_content = record.content_sealed.take().is_some();
            entries.push(Listed {
                dataplane: names.get(&dp).cloned().unwrap_or_else(|| format!("#{dp}")),
                seq,
                has_content,
                record,
            });
        }
        Ok(Page { entries, next })
    }

    /// Calls `each` with every record of `tenants` (`""`: unauthenticated
    /// requests) stamped in `[since, until)`; returns whether it stopped at
    /// [`MAX_SCAN`] before the end.
    pub(crate) fn scan_window(
        &self,
        tenants: &[String],
        since: u64,
        until: u64,
        mut each: impl FnMut(&Record),
    ) -> Result<bool, StoreError> {
        let r = self.begin_read()?;
        let index = r.open_table(schema::RECORDS_BY_TENANT)?;
        let records = r.open_table(schema::RECORDS)?;
        let mut scanned = 0usize;
        for t in tenants {
            let lo = (t.as_str(), schema::tenant_record_key(since, 0, 0));
            let hi = (t.as_str(), schema::tenant_record_key(until, 0, 0));
            for item in index.range(lo..hi)? {
                if scanned == MAX_SCAN {
                    return Ok(true);
                }
                scanned += 1;
                let (_, rk) = split_tenant_record_key(&item?.0.value().1);
                if let Some(v) = records.get(rk)? {
                    each(&decode(v.value())?);
                }
            }
        }
        Ok(false)
    }
}

/// The key just above `k`, so that `..k_plus_one(k)` still includes `k`.
fn k_plus_one(k: &TenantRecordKey) -> TenantRecordKey {
    let mut out = *k;
    for b in out.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_resumes_at_the_entry_it_stopped_on() {
        let k = schema::tenant_record_key(5, 1, 255);
        let up = k_plus_one(&k);
        assert!(up > k && up <= schema::tenant_record_key(5, 1, 256));
        assert_eq!(parse_cursor(&cursor_hex(&up)), Some(up));
        assert_eq!(parse_cursor("zz"), None);
    }

    #[test]
    fn errors_are_error_statuses_and_broken_ends() {
        let mut r = Record::new(1, sluice_contract::record::ApiRoute::ChatCompletions);
        r.status = 200;
        r.outcome = Outcome::Ok;
        assert!(!is_error(&r));
        r.outcome = Outcome::Cancelled;
        assert!(!is_error(&r));
        r.outcome = Outcome::Truncated;
        assert!(is_error(&r));
        r.outcome = Outcome::Rejected;
        r.status = 401;
        assert!(is_error(&r));
    }
}
