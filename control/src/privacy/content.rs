//! The per-tenant content key.
//!
//! Control holds it sealed under the master key ([`super::settings::SealedKey`]),
//! gives it to each data plane sealed for that data plane (the key provider
//! keys are sealed under, associated data `content/<tenant>`) while the tenant
//! opts in, and opens content only for `logs --content` and `export`. A data
//! plane seals `{"request","response","response_truncated"}` under it with
//! associated data `content/<tenant>/<ts_ms>`, so sealed content cannot be
//! moved to another tenant's or another record's place.

use super::settings::PrivacyRow;
use crate::clock::DAY_MS;
use crate::store::compile::{unhex_vec, Compiled};
use crate::store::schema::TENANT_PRIVACY;
use crate::store::{decode, StoreError};
use crate::vault::{Envelope, Vault};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, random_bytes, CryptoError, SealKey};
use sluice_contract::record::Record;
use sluice_contract::snapshot::types::Snapshot;

/// Associated data of a tenant's content key (and, with `dek:`, of its data key).
pub(crate) fn key_aad(tenant: &str) -> String {
    format!("content/{tenant}")
}

/// Associated data of one record's sealed content.
pub(crate) fn record_aad(tenant: &str, ts_ms: u64) -> String {
    format!("content/{tenant}/{ts_ms}")
}

/// A fresh content key for `tenant`, sealed under the master key.
pub(crate) fn new_key(vault: &Vault, tenant: &str) -> Result<Envelope, CryptoError> {
    let raw = random_bytes::<32>()?;
    vault.seal_secret(&key_aad(tenant), &raw[..])
}

/// Adds the content keys data planes must get to a snapshot compiled in `txn`.
pub(crate) fn add_from_write(txn: &WriteTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    let t = txn.open_table(TENANT_PRIVACY)?;
    add(&t, c)
}

/// Adds the content keys data planes must get to a snapshot compiled in `r`.
pub(crate) fn add_from_read(r: &ReadTransaction, c: &mut Compiled) -> Result<(), StoreError> {
    match crate::store::open_read(r, TENANT_PRIVACY)? {
        Some(t) => add(&t, c),
        None => Ok(()),
    }
}

fn add(t: &impl ReadableTable<&'static str, &'static [u8]>, c: &mut Compiled) -> Result<(), StoreError> {
    c.content_keys.clear();
    for tenant in &c.snapshot.tenants {
        let Some(v) = t.get(tenant.id.as_str())? else {
            continue;
        };
        let row: PrivacyRow = decode(v.value())?;
        if let (true, Some(k)) = (row.serves_key(), &row.content_key) {
            c.content_keys.push((tenant.id.clone(), k.envelope()?));
        }
    }
    Ok(())
}

/// Sets `content_key` of each opted-in tenant of `snap`, sealed under `key`
/// (the data plane's snapshot key).
pub(crate) fn seal_for_dataplane(
    c: &Compiled,
    vault: &Vault,
    key: &SealKey,
    snap: &mut Snapshot,
) -> Result<(), StoreError> {
    for (tenant, env) in &c.content_keys {
        let aad = key_aad(tenant);
        let raw = vault.open_secret(&aad, env)?;
        if let Some(t) = snap.tenants.iter_mut().find(|t| &t.id == tenant) {
            t.content_key = Some(hex(&key.seal(&raw, aad.as_bytes())?));
        }
    }
    Ok(())
}

/// What an admin sees of one record's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum ContentView {
    /// Opened.
    Opened {
        /// The request body as forwarded (after any redaction).
        request: String,
        /// The response as relayed (de-chunked; SSE text for streams).
        response: String,
        /// The response was longer than the data plane captures.
        response_truncated: bool,
    },
    /// Older than the tenant's content retention: due to be purged, not shown.
    Expired,
    /// The tenant's content key is gone (opted out and purged).
    KeyDestroyed,
    /// It did not open under the tenant's key.
    Unreadable,
}

/// A record with its content, as `logs --content` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ContentEntry {
    /// The record as `logs` lists it (without the sealed content).
    #[serde(flatten)]
    pub(crate) entry: crate::store::rows::LogEntry,
    /// Its content, when any was logged.
    pub(crate) content: Option<ContentView>,
}

#[derive(Deserialize)]
struct Sealed {
    request: String,
    response: String,
    #[serde(default)]
    response_truncated: bool,
}

/// Opens the content of one tenant's records.
pub(crate) struct Opener {
    tenant: String,
    key: Option<SealKey>,
    /// Content of records before this time has expired.
    cutoff_ms: u64,
}

impl Opener {
    /// An opener for `tenant` with settings `row`, at `now_ms`.
    pub(crate) fn new(
        vault: &Vault,
        tenant: &str,
        row: &PrivacyRow,
        now_ms: u64,
    ) -> Result<Opener, StoreError> {
        let key = match &row.content_key {
            None => None,
            Some(k) => {
                let raw = vault.open_secret(&key_aad(tenant), &k.envelope()?)?;
                Some(SealKey::from_bytes(&raw)?)
            }
        };
        Ok(Opener {
            tenant: tenant.to_owned(),
            key,
            cutoff_ms: now_ms.saturating_sub(u64::from(row.content_retention_days()) * DAY_MS),
        })
    }

    /// The content of `record`, `None` when it carries none.
    pub(crate) fn open(&self, record: &Record) -> Option<ContentView> {
        let sealed = record.content_sealed.as_deref()?;
        if record.ts_ms < self.cutoff_ms {
            return Some(ContentView::Expired);
        }
        let Some(key) = &self.key else {
            return Some(ContentView::KeyDestroyed);
        };
        let opened = unhex_vec(sealed)
            .and_then(|b| {
                key.open(&b, record_aad(&self.tenant, record.ts_ms).as_bytes())
                    .ok()
            })
            .and_then(|plain| serde_json::from_slice::<Sealed>(&plain).ok());
        Some(match opened {
            Some(s) => ContentView::Opened {
                request: s.request,
                response: s.response,
                response_truncated: s.response_truncated,
            },
            None => ContentView::Unreadable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::settings::SealedKey;
    use sluice_contract::record::ApiRoute;

    fn sealed_record(key: &SealKey, tenant: &str, ts: u64, doc: &serde_json::Value) -> Record {
        let mut r = Record::new(ts, ApiRoute::ChatCompletions);
        r.tenant = Some(tenant.into());
        let plain = serde_json::to_vec(doc).unwrap();
        r.content_sealed = Some(hex(&key.seal(&plain, record_aad(tenant, ts).as_bytes()).unwrap()));
        r
    }

    #[test]
    fn content_opens_only_for_its_tenant_and_within_retention() {
        let (vault, _) = Vault::generate().unwrap();
        let env = new_key(&vault, "acme").unwrap();
        let raw = vault.open_secret(&key_aad("acme"), &env).unwrap();
        let key = SealKey::from_bytes(&raw).unwrap();
        let row = PrivacyRow {
            log_content: true,
            content_retention_days: Some(2),
            content_key: Some(SealedKey::from_envelope(&env)),
            ..PrivacyRow::default()
        };
        let now = 100 * DAY_MS;
        let doc = serde_json::json!({"request": "canary-req", "response": "canary-resp", "response_truncated": false});
        let fresh = sealed_record(&key, "acme", now - DAY_MS, &doc);
        let old = sealed_record(&key, "acme", now - 3 * DAY_MS, &doc);
        let opener = Opener::new(&vault, "acme", &row, now).unwrap();
        assert_eq!(
            opener.open(&fresh),
            Some(ContentView::Opened {
                request: "canary-req".into(),
                response: "canary-resp".into(),
                response_truncated: false
            })
        );
        assert_eq!(opener.open(&old), Some(ContentView::Expired));
        assert_eq!(opener.open(&Record::new(now, ApiRoute::ChatCompletions)), None);
        // Another tenant's opener (or a record moved to another tenant) does not open it.
        let mut moved = fresh.clone();
        moved.ts_ms += 1;
        assert_eq!(opener.open(&moved), Some(ContentView::Unreadable));
        let gone = PrivacyRow {
            content_key: None,
            ..row
        };
        let opener = Opener::new(&vault, "acme", &gone, now).unwrap();
        assert_eq!(opener.open(&fresh), Some(ContentView::KeyDestroyed));
    }

    #[test]
    fn data_planes_get_the_key_sealed_for_them() {
        let (vault, _) = Vault::generate().unwrap();
        let env = new_key(&vault, "acme").unwrap();
        let store = crate::privacy::tests::store_with_tenant("content-seal", "acme");
        // The store's part is enough here (the content keys are set by hand).
        let mut c = crate::store::Store::compile_core(&store.begin_read().unwrap()).unwrap();
        c.content_keys = vec![("acme".into(), env.clone())];
        let mut snap = c.snapshot.clone();
        let (dp_key, _) = SealKey::generate().unwrap();
        seal_for_dataplane(&c, &vault, &dp_key, &mut snap).unwrap();
        let sealed = unhex_vec(snap.tenants[0].content_key.as_deref().unwrap()).unwrap();
        let opened = dp_key.open(&sealed, b"content/acme").unwrap();
        assert_eq!(&opened[..], &vault.open_secret("content/acme", &env).unwrap()[..]);
        assert!(dp_key.open(&sealed, b"content/other").is_err());
    }
}
