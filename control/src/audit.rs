//! The audit trail: one entry per admin action, in a hash chain.
//!
//! The writer appends an entry inside the transaction of the change it
//! records (a refused change gets its own transaction, outcome `refused:
//! <kind>`), so the trail and the state cannot disagree. Entry `n` (from 1)
//! holds `hash = HMAC-SHA256(audit key, "chain" || 0 || hash of entry n-1
//! (32 zero bytes for the first) || canonical bytes)`, where the canonical
//! bytes are the compact JSON of `{seq, ts_ms, admin, action, detail,
//! target_hash, tenant_hash, outcome}` in that order.
//!
//! The head (entry count, last hash) is kept apart and authenticated:
//! `mac = HMAC(audit key, "head" || 0 || count || hash)`, so whoever lacks
//! the master key cannot write a head for a shortened trail. The count is
//! also kept outside the redb file, in `audit.head` beside it (count, hash
//! and mac, rewritten after each commit), and in memory while control runs,
//! so cutting the last entries and putting back an older authentic head, or
//! dropping the table and the head together, is named as well.
//! [`Auditor::verify`] names the first entry that was altered, removed or
//! reordered, and entries cut from the end. The chain is keyed so that someone with the file but without
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
//! described by its kind and names only (see [`crate::ops::describe`]).

use crate::privacy::settings::SealedKey;
use crate::store::schema::{AUDIT, PRIVACY_META};
use crate::store::{decode, encode, Store, StoreError};
use crate::vault::Vault;
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use ring::hmac;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, random_bytes, unhex};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// `admin` of entries made by control itself (the retention timer).
pub(crate) const SYSTEM: &str = "system";
/// [`PRIVACY_META`] key of the audit key, sealed under the master key.
pub(crate) const KEY_META: &str = "audit_key";
/// Associated data of the audit key.
pub(crate) const KEY_AAD: &str = "audit-key";
/// [`PRIVACY_META`] key of the head: count (u64 BE) ++ last hash ++ head MAC.
const HEAD_META: &str = "audit_head";
/// The file beside the store that repeats the head, outside the redb file.
pub(crate) const HEAD_FILE: &str = "audit.head";

/// The trail's head: how many entries, the last one's hash, and the MAC
/// over both under the audit key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    count: u64,
    hash: [u8; 32],
    mac: [u8; 32],
}

impl Head {
    fn to_bytes(self) -> Vec<u8> {
        let mut v = self.count.to_be_bytes().to_vec();
        v.extend_from_slice(&self.hash);
        v.extend_from_slice(&self.mac);
        v
    }

    fn to_text(self) -> String {
        format!("{} {} {}\n", self.count, hex(&self.hash), hex(&self.mac))
    }

    fn from_text(text: &str) -> Option<Head> {
        let mut parts = text.split_whitespace();
        let count = parts.next()?.parse().ok()?;
        let hash = unhex::<32>(parts.next()?)?;
        let mac = unhex::<32>(parts.next()?)?;
        parts.next().is_none().then_some(Head { count, hash, mac })
    }
}

/// What the head record in the store holds.
enum Stored {
    /// No head record.
    Missing,
    /// A head without a MAC, as versions before authenticated heads wrote.
    Legacy(u64, [u8; 32]),
    /// A head with a MAC (not yet checked).
    Signed(Head),
}

/// An admin change as the trail records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Described {
    /// What was done, e.g. `tenant.delete`.
    pub(crate) action: String,
    /// Non-secret parameters.
    pub(crate) detail: Option<String>,
    /// What it was done to, e.g. `apikey acme/k1`.
    pub(crate) target: Option<String>,
    /// The tenant it concerns.
    pub(crate) tenant: Option<String>,
    /// Done by control itself, not an admin.
    pub(crate) system: bool,
    /// Keep only the target's hash: the entry records the tenant's deletion.
    pub(crate) erase_target: bool,
    /// The name of the admin token that asked, when known.
    pub(crate) actor: Option<String>,
}

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
    /// Where the head is repeated outside the store (none in unit tests
    /// that do not ask for it).
    head_file: Option<PathBuf>,
    /// The head the last append wrote, until its transaction committed and
    /// [`Auditor::committed`] copied it to `head_file`.
    pending: Mutex<Option<Head>>,
    /// The highest count this process has seen committed.
    seen: AtomicU64,
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
        let existing = match crate::store::open_read(&read, PRIVACY_META)? {
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
        let a = Auditor::new(&hex(&admin_token_sha256[..8]), &raw)
            .with_head_file(&store.path().with_file_name(HEAD_FILE));
        a.startup(store)?;
        Ok(a)
    }

    /// An auditor acting as `admin` with HMAC key `raw`.
    pub(crate) fn new(admin: &str, raw: &[u8]) -> Auditor {
        Auditor {
            admin: admin.to_owned(),
            key: hmac::Key::new(hmac::HMAC_SHA256, raw),
            head_file: None,
            pending: Mutex::new(None),
            seen: AtomicU64::new(0),
        }
    }

    /// The same auditor, repeating the head in `path`.
    pub(crate) fn with_head_file(mut self, path: &Path) -> Auditor {
        self.head_file = Some(path.to_owned());
        self
    }

    /// At start: signs a head left by a version before authenticated heads
    /// (once, when no head file exists yet), and catches the head file up
    /// when a crash came between a commit and its copy. A head file ahead of
    /// the store is left alone for `verify` to report.
    fn startup(&self, store: &Store) -> Result<(), StoreError> {
        let Some(path) = &self.head_file else {
            return Ok(());
        };
        let file = read_head_file(path)?;
        let r = store.begin_read()?;
        let stored = stored_head(&r)?;
        drop(r);
        match (stored, file) {
            (Stored::Legacy(count, hash), None) => {
                let head = self.head(count, hash);
                let txn = store.begin_write()?;
                txn.open_table(PRIVACY_META)?
                    .insert(HEAD_META, head.to_bytes().as_slice())?;
                txn.commit()?;
                write_head_file(path, head)?;
                tracing::info!(
                    entries = count,
                    "audit trail head authenticated (first start of this version)"
                );
            }
            (Stored::Signed(head), file) if self.head_ok(&head) => {
                self.seen.store(head.count, Ordering::Relaxed);
                if let Some(f) = file.filter(|f| self.head_ok(f)) {
                    self.seen.fetch_max(f.count, Ordering::Relaxed);
                }
                match file {
                    Some(f) if f.count > head.count => tracing::error!(
                        kept = f.count,
                        stored = head.count,
                        "the audit trail is shorter than its count kept outside the store: run `audit verify`"
                    ),
                    Some(f) if f.count == head.count => {}
                    Some(_) => write_head_file(path, head)?,
                    None if head.count == 0 => write_head_file(path, head)?,
                    None => tracing::error!(
                        "{} is missing: the audit trail's count kept outside the store is gone; run `audit verify`",
                        path.display()
                    ),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn head_mac(&self, count: u64, hash: &[u8; 32]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"head\0");
        ctx.update(&count.to_be_bytes());
        ctx.update(hash);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn head(&self, count: u64, hash: [u8; 32]) -> Head {
        Head {
            count,
            hash,
            mac: self.head_mac(count, &hash),
        }
    }

    fn head_ok(&self, h: &Head) -> bool {
        let msg = [&b"head\0"[..], &h.count.to_be_bytes(), &h.hash].concat();
        hmac::verify(&self.key, &msg, &h.mac).is_ok()
    }

    /// After the transaction of the last append committed: repeats its head
    /// outside the store. A failure is logged; the next commit retries.
    pub(crate) fn committed(&self) {
        let head = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(head) = head else { return };
        self.seen.fetch_max(head.count, Ordering::Relaxed);
        let Some(path) = &self.head_file else { return };
        // Never lower the count kept outside: after a cut end, the trail goes
        // on from the shorter head, and that must not erase the evidence.
        if let Ok(Some(f)) = read_head_file(path) {
            if f.count > head.count && self.head_ok(&f) {
                tracing::error!(
                    kept = f.count,
                    stored = head.count,
                    "the audit trail is shorter than its count kept outside the store: run `audit verify`"
                );
                return;
            }
        }
        if let Err(e) = write_head_file(path, head) {
            tracing::warn!(error = %e, "writing the audit head file failed");
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

    /// Appends one entry inside `txn`; returns its seq.
    pub(crate) fn append(
        &self,
        txn: &WriteTransaction,
        d: &Described,
        outcome: &str,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut meta = txn.open_table(PRIVACY_META)?;
        // The chain goes on from the stored head as it is; `verify` is what
        // judges it.
        let (last, prev) = match meta.get(HEAD_META)? {
            Some(v) => match parse_head(v.value())? {
                Stored::Missing => (0, [0u8; 32]),
                Stored::Legacy(n, h) => (n, h),
                Stored::Signed(h) => (h.count, h.hash),
            },
            None => (0, [0u8; 32]),
        };
        let seq = last + 1;
        let mut e = AuditEntry {
            seq,
            ts_ms: now_ms,
            admin: if d.system {
                SYSTEM.to_owned()
            } else {
                d.actor.clone().unwrap_or_else(|| self.admin.clone())
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
        let head = self.head(seq, h);
        meta.insert(HEAD_META, head.to_bytes().as_slice())?;
        *self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(head);
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

    /// Walks the chain in `r`, then checks its length against the stored
    /// head (authenticated), the head file and what this process has seen.
    pub(crate) fn verify(&self, r: &ReadTransaction) -> Result<Verification, StoreError> {
        let stored = stored_head(r)?;
        let (count, prev) = match self.walk(r)? {
            Ok(v) => v,
            Err(broken) => return Ok(broken),
        };
        let head = match stored {
            Stored::Missing if count > 0 => {
                return Ok(Verification::broken(
                    count,
                    1,
                    "the trail's head record is missing".into(),
                ))
            }
            Stored::Missing => None,
            Stored::Legacy(..) => {
                return Ok(Verification::broken(
                    count,
                    count.max(1),
                    "the trail's head record carries no MAC: it was rewritten".into(),
                ))
            }
            Stored::Signed(h) if !self.head_ok(&h) => {
                return Ok(Verification::broken(
                    count,
                    count.max(1),
                    "the trail's head record is not authentic: it was rewritten without the key".into(),
                ))
            }
            Stored::Signed(h) => Some(h),
        };
        let recorded = head.map_or(0, |h| h.count);
        if let Some(v) = self.check_count(count, recorded, head, &prev)? {
            return Ok(v);
        }
        Ok(whole(count, (count > 0).then(|| hex(&prev))))
    }

    /// The chain's entry count and last hash, or where it breaks.
    fn walk(&self, r: &ReadTransaction) -> Result<Result<(u64, [u8; 32]), Verification>, StoreError> {
        let Some(table) = crate::store::open_read(r, AUDIT)? else {
            return Ok(Ok((0, [0u8; 32])));
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
                return Ok(Err(Verification::broken(checked, expected, problem)));
            }
            let Ok(e) = decode::<AuditEntry>(v.value()) else {
                return Ok(Err(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} is unreadable (altered)"),
                )));
            };
            if e.seq != at {
                return Ok(Err(Verification::broken(
                    checked,
                    at,
                    format!("position {at} holds entry {} (reordered or altered)", e.seq),
                )));
            }
            let own_prev = unhex::<32>(&e.prev_hash);
            let own_ok = match own_prev {
                Some(p) => hex(&self.chain_hash(&p, &e)?) == e.hash,
                None => false,
            };
            if !own_ok {
                return Ok(Err(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} was altered: its hash does not match its contents"),
                )));
            }
            if let (Some(t), Some(th)) = (&e.target, &e.target_hash) {
                if &self.mac("target", t) != th {
                    return Ok(Err(Verification::broken(
                        checked,
                        at,
                        format!("entry {at} was altered: its target does not match the target's hash"),
                    )));
                }
            }
            if own_prev != Some(prev) {
                // Entry `at` is consistent in itself, so what it follows changed:
                // entry `at - 1` was replaced by one with a recomputed hash.
                let bad = at.saturating_sub(1).max(1);
                return Ok(Err(Verification::broken(
                    checked,
                    bad,
                    format!("entry {bad} was altered or replaced: entry {at} does not follow it"),
                )));
            }
            let Some(h) = unhex::<32>(&e.hash) else {
                return Ok(Err(Verification::broken(
                    checked,
                    at,
                    format!("entry {at} was altered"),
                )));
            };
            prev = h;
            expected += 1;
        }
        Ok(Ok((expected - 1, prev)))
    }

    /// Compares the chain's `count` with the authenticated head (`recorded`
    /// entries), the head file outside the store, and the count this process
    /// saw committed; `Some` names what is missing or out of place.
    fn check_count(
        &self,
        count: u64,
        recorded: u64,
        head: Option<Head>,
        prev: &[u8; 32],
    ) -> Result<Option<Verification>, StoreError> {
        let missing = |n: u64, whose: &str| {
            Verification::broken(
                count,
                count + 1,
                format!(
                    "entries {} to {n} are missing (removed from the end; {whose})",
                    count + 1
                ),
            )
        };
        if recorded > count {
            return Ok(Some(missing(recorded, "the head record counts them")));
        }
        if recorded < count {
            return Ok(Some(Verification::broken(
                count,
                recorded + 1,
                format!("entries after {recorded} were added behind the trail's back"),
            )));
        }
        if head.is_some_and(|h| &h.hash != prev) {
            return Ok(Some(Verification::broken(
                count,
                count,
                format!("entry {count} was altered or replaced: it is not the recorded head"),
            )));
        }
        // Beyond the store: an older authentic head put back after the end
        // was cut passes the checks above, but not these.
        let by_file = match &self.head_file {
            Some(path) => self.check_file(path, count, &missing)?,
            None => None,
        };
        let seen = self.seen.load(Ordering::Relaxed);
        Ok(by_file.or_else(|| (seen > count).then(|| missing(seen, "control counted them while running"))))
    }

    /// What the head file says about a trail of `count` entries.
    fn check_file(
        &self,
        path: &Path,
        count: u64,
        missing: &dyn Fn(u64, &str) -> Verification,
    ) -> Result<Option<Verification>, StoreError> {
        match read_head_file(path)? {
            Some(f) if !self.head_ok(&f) => Ok(Some(Verification::broken(
                count,
                count.max(1),
                format!("{} is not authentic: it was rewritten without the key", path.display()),
            ))),
            Some(f) if f.count > count => Ok(Some(missing(
                f.count,
                &format!("{} counts them", path.display()),
            ))),
            // Behind the store only after a crash between a commit and its
            // copy (the store's head is authenticated): not a loss.
            Some(_) => Ok(None),
            None if count > 0 => Ok(Some(Verification::broken(
                count,
                count,
                format!(
                    "{} is missing: the count kept outside the store is gone, so a cut end cannot be ruled out",
                    path.display()
                ),
            ))),
            None => Ok(None),
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

/// The head record in `r`.
fn stored_head(r: &ReadTransaction) -> Result<Stored, StoreError> {
    match crate::store::open_read(r, PRIVACY_META)? {
        Some(m) => match m.get(HEAD_META)? {
            Some(v) => parse_head(v.value()),
            None => Ok(Stored::Missing),
        },
        None => Ok(Stored::Missing),
    }
}

fn parse_head(v: &[u8]) -> Result<Stored, StoreError> {
    let bad = || StoreError::Internal("the audit head record is malformed".into());
    let part = |a: usize, b: usize| v.get(a..b).ok_or_else(bad);
    let count = u64::from_be_bytes(part(0, 8)?.try_into().map_err(|_| bad())?);
    let hash: [u8; 32] = part(8, 40)?.try_into().map_err(|_| bad())?;
    match v.len() {
        40 => Ok(Stored::Legacy(count, hash)),
        72 => Ok(Stored::Signed(Head {
            count,
            hash,
            mac: part(40, 72)?.try_into().map_err(|_| bad())?,
        })),
        _ => Err(bad()),
    }
}

/// The head file, if it exists; a file that does not parse reads as a head
/// that fails its MAC.
fn read_head_file(path: &Path) -> Result<Option<Head>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Head::from_text(&text).unwrap_or(Head {
            count: u64::MAX,
            hash: [0; 32],
            mac: [0; 32],
        }))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::Internal(format!("{}: {e}", path.display()))),
    }
}

fn write_head_file(path: &Path, head: Head) -> Result<(), StoreError> {
    crate::secret_file::write_atomic(path, head.to_text().as_bytes())
        .map_err(|e| StoreError::Internal(format!("{}: {e}", path.display())))
}

/// Entries after seq `after`, oldest first, at most `limit`; or, with no
/// `after`, the latest `limit`.
pub(crate) fn list(
    r: &ReadTransaction,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let Some(t) = crate::store::open_read(r, AUDIT)? else {
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
