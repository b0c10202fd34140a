//! The audit trail: one entry per admin action, in a hash chain.
//!
//! The writer appends an entry inside the transaction of the change it
//! records (a refused change gets its own transaction, outcome `refused:
//! <kind>`), so the trail and the state cannot disagree. Entry `n` (from 1)
//! holds `hash = HMAC-SHA256(audit key, "chain" || 0 || hash of entry n-1
//! (32 zero bytes for the first) || canonical bytes)`, where the canonical
//! bytes are the compact JSON of `{seq, ts_ms, admin, action, detail,
//! target_hash, tenant_hash, outcome}` in that order. The head (last seq and
//! hash) is kept apart, so entries removed from the end are noticed too.
//! [`Auditor::verify`] names the first entry that was altered, removed or
//! reordered. The chain is keyed so that someone with the file but without
//! the master key (which seals the audit key) cannot alter an entry and
//! recompute every hash after it: a plain hash chain could be rewritten
//! whole.
//!
//! What an entry holds: `admin`, the first 16 hex digits of SHA-256 of the
//! admin token that acted (`system` for control's own timer), never the
//! token; `action` (e.g. `tenant.delete`), a non-secret `detail`, the
//! outcome, and the target (`tenant acme`, `apikey acme/k1`) twice: as a keyed
//! hash (HMAC-SHA256 under the store's audit key, sealed under the master
//! key) inside the chain, and in plain text outside it. Deleting a tenant
//! erases the plain text of every entry about it (found by `tenant_hash`);
//! the chain still verifies, and the tenant's id is gone from the file while
//! the entries keep saying what was done, when, by which admin, and with
//! what outcome. A plain-text target that was changed no longer matches its
//! hash, which `verify` reports. Secrets never enter an entry: an op is
//! described by its kind and names only (see [`describe`]).

pub(crate) mod describe;

use crate::privacy::settings::SealedKey;
use crate::store::schema::{AUDIT, PRIVACY_META};
use crate::store::{decode, encode, Store, StoreError};
use crate::vault::Vault;
use describe::Described;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use ring::hmac;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, random_bytes, unhex};

/// `admin` of entries made by control itself (the retention timer).
pub(crate) const SYSTEM: &str = "system";
/// [`PRIVACY_META`] key of the audit key, sealed under the master key.
pub(crate) const KEY_META: &str = "audit_key";
/// Associated data of the audit key.
pub(crate) const KEY_AAD: &str = "audit-key";
/// [`PRIVACY_META`] key of the head: last seq (u64 BE) ++ its hash.
const HEAD_META: &str = "audit_head";

/// One entry of the trail, as stored and as `audit list --json` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditEntry {
    /// Position in the chain, from 1.
    pub(crate) seq: u64,
    /// When, unix ms (control's clock).
    pub(crate) ts_ms: u64,
    /// Which admin token acted (hash prefix), or `system`.
    pub(crate) admin: String,
    /// What was done.
    pub(crate) action: String,
    /// Non-secret parameters, e.g. `log_content=on`.
    #[serde(default)]
    pub(crate) detail: Option<String>,
    /// HMAC of the target.
    #[serde(default)]
    pub(crate) target_hash: Option<String>,
    /// HMAC of the tenant the action concerns.
    #[serde(default)]
    pub(crate) tenant_hash: Option<String>,
    /// `ok` or `refused: <kind>`.
    pub(crate) outcome: String,
    /// Hash of the previous entry (hex).
    pub(crate) prev_hash: String,
    /// This entry's hash (hex).
    pub(crate) hash: String,
    /// The target in plain text (outside the chain; erased with its tenant).
    #[serde(default)]
    pub(crate) target: Option<String>,
    /// The plain-text target was erased because its tenant was deleted.
    #[serde(default)]
    pub(crate) erased: bool,
}

/// The hashed part of an entry, in its fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    ts_ms: u64,
    admin: &'a str,
    action: &'a str,
    detail: &'a Option<String>,
    target_hash: &'a Option<String>,
    tenant_hash: &'a Option<String>,
    outcome: &'a str,
}

/// The canonical bytes of `e` after `prev`: what its chain hash covers.
fn chained_bytes(prev: &[u8; 32], e: &AuditEntry) -> Result<Vec<u8>, StoreError> {
    let mut buf = prev.to_vec();
    serde_json::to_writer(
        &mut buf,
        &Canonical {
            seq: e.seq,
            ts_ms: e.ts_ms,
            admin: &e.admin,
            action: &e.action,
            detail: &e.detail,
            target_hash: &e.target_hash,
            tenant_hash: &e.tenant_hash,
            outcome: &e.outcome,
        },
    )?;
    Ok(buf)
}

/// The result of `audit verify`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Verification {
    /// The chain is whole.
    pub(crate) ok: bool,
    /// Entries checked.
    pub(crate) entries: u64,
    /// Hash of the last entry, when the chain is whole and not empty.
    #[serde(default)]
    pub(crate) head: Option<String>,
    /// The first entry found altered, removed or out of order.
    #[serde(default)]
    pub(crate) first_bad: Option<u64>,
    /// What is wrong with it.
    #[serde(default)]
    pub(crate) problem: Option<String>,
}

impl Verification {
    fn broken(entries: u64, seq: u64, problem: String) -> Verification {
        Verification {
            ok: false,
            entries,
            head: None,
            first_bad: Some(seq),
            problem: Some(problem),
        }
    }
}

/// Appends entries and checks the chain.
pub(crate) struct Auditor {
    admin: String,
    key: hmac::Key,
}

impl Auditor {
    /// The auditor for the admin whose token hashes to `admin_token_sha256`,
    /// with the store's audit key (made on first use).
    pub(crate) fn load(
        store: &Store,
        vault: &Vault,
        admin_token_sha256: &[u8; 32],
    ) -> Result<Auditor, StoreError> {
        let read = store.begin_read()?;
        let existing = match crate::privacy::open_read(&read, PRIVACY_META)? {
            Some(t) => t
                .get(KEY_META)?
                .map(|v| decode::<SealedKey>(v.value()))
                .transpose()?,
            None => None,
        };
        drop(read);
        let sealed = match existing {
            Some(s) => s,
            None => {
                let raw = random_bytes::<32>()?;
                let s = SealedKey::from_envelope(&vault.seal_secret(KEY_AAD, &raw[..])?);
                let txn = store.begin_write()?;
                txn.open_table(PRIVACY_META)?
                    .insert(KEY_META, encode(&s)?.as_slice())?;
                txn.commit()?;
                s
            }
        };
        let raw = vault.open_secret(KEY_AAD, &sealed.envelope()?)?;
        Ok(Auditor::new(&hex(&admin_token_sha256[..8]), &raw))
    }

    /// An auditor acting as `admin` with HMAC key `raw`.
    pub(crate) fn new(admin: &str, raw: &[u8]) -> Auditor {
        Auditor {
            admin: admin.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, raw),
        }
    }

    /// `HMAC(key, "chain" || 0 || prev || canonical bytes of e)`.
    pub(crate) fn chain_hash(&self, prev: &[u8; 32], e: &AuditEntry) -> Result<[u8; 32], StoreError> {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"chain\0");
        ctx.update(&chained_bytes(prev, e)?);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn mac(&self, kind: &str, s: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.as_bytes());
        ctx.update(&[0]);
        ctx.update(s.as_bytes());
        hex(ctx.sign().as_ref())
    }

    /// Appends the entry of an admin change with `outcome` (`ok` or
    /// `refused: <kind>`), inside `txn`.
    pub(crate) fn record(
        &self,
        txn: &WriteTransaction,
        op: &crate::store::admin_ops::AdminOp,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if let Some(d) = describe::describe(op) {
            self.append(txn, &d, outcome, now_ms)?;
        }
        Ok(())
    }

    /// Appends one entry inside `txn`; returns its seq.
    pub(crate) fn append(
        &self,
        txn: &WriteTransaction,
        d: &Described,
        outcome: &str,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut meta = txn.open_table(PRIVACY_META)?;
        let (last, prev) = match meta.get(HEAD_META)? {
            Some(v) => split_head(v.value())?,
            None => (0, [0u8; 32]),
        };
        let seq = last + 1;
        let mut e = AuditEntry {
            seq,
            ts_ms: now_ms,
            admin: if d.system {
                SYSTEM.to_owned()
            } else {
                self.admin.clone()
            },
            action: d.action.clone(),
            detail: d.detail.clone(),
            target_hash: d.target.as_deref().map(|t| self.mac("target", t)),
            tenant_hash: d.tenant.as_deref().map(|t| self.mac("tenant", t)),
            outcome: outcome.to_owned(),
            prev_hash: hex(&prev),
            hash: String::new(),
            // A deleted tenant's own deletion never names it in plain text.
            target: if d.erase_target { None } else { d.target.clone() },
            erased: d.erase_target,
        };
        let h = self.chain_hash(&prev, &e)?;
        e.hash = hex(&h);
        txn.open_table(AUDIT)?
            .insert(seq.to_be_bytes(), encode(&e)?.as_slice())?;
        let mut head = seq.to_be_bytes().to_vec();
        head.extend_from_slice(&h);
        meta.insert(HEAD_META, head.as_slice())?;
        Ok(seq)
    }

    /// Erases the plain-text target of every entry about `tenant`; returns
    /// how many were erased. The chain does not cover the plain text.
    pub(crate) fn erase_tenant(&self, txn: &WriteTransaction, tenant: &str) -> Result<u64, StoreError> {
        let tag = self.mac("tenant", tenant);
        let mut t = txn.open_table(AUDIT)?;
        let mut hits = Vec::new();
        for item in t.range::<[u8; 8]>(..)? {
            let (k, v) = item?;
            let e: AuditEntry = decode(v.value())?;
            if e.tenant_hash.as_deref() == Some(tag.as_str()) && e.target.is_some() {
                hits.push((k.value(), e));
            }
        }
        for (k, mut e) in hits.iter().cloned() {
            e.target = None;
            e.erased = true;
            t.insert(k, encode(&e)?.as_slice())?;
        }
        Ok(hits.len() as u64)
    }

    /// Walks the chain in `r`.
    pub(crate) fn verify(&self, r: &ReadTransaction) -> Result<Verification, StoreError> {
        let head = match crate::privacy::open_read(r, PRIVACY_META)? {
            Some(m) => m.get(HEAD_META)?.map(|v| split_head(v.value())).transpose()?,
            None => None,
        };
        let Some(table) = crate::privacy::open_read(r, AUDIT)? else {
            return Ok(match head {
                Some((n, _)) if n > 0 => Verification::broken(0, 1, format!("entries 1 to {n} are missing")),
                _ => whole(0, None),
            });
        };
        let mut expected = 1u64;
        let mut prev = [0u8; 32];
        for item in table.range::<[u8; 8]>(..)? {
            let (k, v) = item?;
            let at = u64::from_be_bytes(k.value());
            let checked = expected - 1;
            if at != expected {
                let problem = if at > expected {
                    format!("entry {expected} is missing (removed)")
                } else {
                    format!("entry {at} is out of place")
                };
                return Ok(Verification::broken(checked, expected, problem));
            }
            let Ok(e) = decode::<AuditEntry>(v.value()) else {
                return Ok(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} is unreadable (altered)"),
                ));
            };
            if e.seq != at {
                return Ok(Verification::broken(
                    checked,
                    at,
                    format!("position {at} holds entry {} (reordered or altered)", e.seq),
                ));
            }
            let own_prev = unhex::<32>(&e.prev_hash);
            let own_ok = match own_prev {
                Some(p) => hex(&self.chain_hash(&p, &e)?) == e.hash,
                None => false,
            };
            if !own_ok {
                return Ok(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} was altered: its hash does not match its contents"),
                ));
            }
            if let (Some(t), Some(th)) = (&e.target, &e.target_hash) {
                if &self.mac("target", t) != th {
                    return Ok(Verification::broken(
                        checked,
                        at,
                        format!("entry {at} was altered: its target does not match the target's hash"),
                    ));
                }
            }
            if own_prev != Some(prev) {
                // Entry `at` is consistent in itself, so what it follows changed:
                // entry `at - 1` was replaced by one with a recomputed hash.
                let bad = at.saturating_sub(1).max(1);
                return Ok(Verification::broken(
                    checked,
                    bad,
                    format!("entry {bad} was altered or replaced: entry {at} does not follow it"),
                ));
            }
            let Some(h) = unhex::<32>(&e.hash) else {
                return Ok(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} was altered"),
                ));
            };
            prev = h;
            expected += 1;
        }
        let count = expected - 1;
        match head {
            Some((n, _)) if n > count => Ok(Verification::broken(
                count,
                count + 1,
                format!("entries {} to {n} are missing (removed from the end)", count + 1),
            )),
            Some((n, h)) if n == count && h != prev => Ok(Verification::broken(
                count,
                count,
                format!("entry {count} was altered or replaced: it is not the recorded head"),
            )),
            Some((n, _)) if n < count => Ok(Verification::broken(
                count,
                n + 1,
                format!("entries after {n} were added behind the trail's back"),
            )),
            None if count > 0 => Ok(Verification::broken(
                count,
                1,
                "the trail's head record is missing".into(),
            )),
            _ => Ok(whole(count, (count > 0).then(|| hex(&prev)))),
        }
    }
}

fn whole(entries: u64, head: Option<String>) -> Verification {
    Verification {
        ok: true,
        entries,
        head,
        first_bad: None,
        problem: None,
    }
}

fn split_head(v: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    let bad = || StoreError::Internal("the audit head record is malformed".into());
    let seq = <[u8; 8]>::try_from(v.get(..8).ok_or_else(bad)?).map_err(|_| bad())?;
    let hash = <[u8; 32]>::try_from(v.get(8..).ok_or_else(bad)?).map_err(|_| bad())?;
    Ok((u64::from_be_bytes(seq), hash))
}

/// Entries after seq `after`, oldest first, at most `limit`; or, with no
/// `after`, the latest `limit`.
pub(crate) fn list(
    r: &ReadTransaction,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let Some(t) = crate::privacy::open_read(r, AUDIT)? else {
        return Ok(Vec::new());
    };
    let values: Vec<Vec<u8>> = match after {
        Some(a) => t
            .range(a.saturating_add(1).to_be_bytes()..)?
            .take(limit)
            .map(|i| i.map(|(_, v)| v.value().to_vec()))
            .collect::<Result<_, _>>()?,
        None => {
            let mut v: Vec<Vec<u8>> = t
                .range::<[u8; 8]>(..)?
                .rev()
                .take(limit)
                .map(|i| i.map(|(_, v)| v.value().to_vec()))
                .collect::<Result<_, _>>()?;
            v.reverse();
            v
        }
    };
    values.iter().map(|v| decode(v)).collect()
}

/// Re-wraps the audit key for a new master key (inside `master-key rotate`).
pub(crate) fn rewrap_key(txn: &WriteTransaction, old: &Vault, new: &Vault) -> Result<usize, StoreError> {
    let mut meta = txn.open_table(PRIVACY_META)?;
    let Some(mut s) = meta
        .get(KEY_META)?
        .map(|v| decode::<SealedKey>(v.value()))
        .transpose()?
    else {
        return Ok(0);
    };
    let env = s.envelope()?;
    s.wrapped_dek = hex(&old.rewrap(new, KEY_AAD, &env.wrapped_dek)?);
    meta.insert(KEY_META, encode(&s)?.as_slice())?;
    Ok(1)
}

#[cfg(test)]
mod tests;
