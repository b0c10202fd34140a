//! Helpers shared by the privacy unit tests, and tests of settings and erasure.

use super::settings::Change;
use super::*;
use crate::ops::{self as admin_ops, AdminOp};
use crate::store::ingest::{self, Batch, Prepared};
use crate::store::rows::TenantRow;
use crate::store::Store;
use sluice_contract::record::{ApiRoute, Record, Usage};
use std::path::PathBuf;

/// A fresh store file in its own temporary directory.
pub(crate) fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-privacy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(crate::store::FILE_NAME)
}

/// Applies `op` in its own transaction, as the writer would.
pub(crate) fn admin(store: &Store, op: AdminOp) -> Result<admin_ops::Applied, StoreError> {
    let txn = store.begin_write().unwrap();
    match admin_ops::apply(&txn, &op) {
        Ok(a) => {
            txn.commit().unwrap();
            Ok(a)
        }
        Err(e) => {
            txn.abort().unwrap();
            Err(e)
        }
    }
}

/// A tenant row.
pub(crate) fn tenant_op(id: &str, name: Option<&str>) -> AdminOp {
    AdminOp::CreateTenant(TenantRow {
        id: id.into(),
        name: name.map(str::to_owned),
        region: None,
        created_ms: 1,
    })
}

/// A new store with one tenant.
pub(crate) fn store_with_tenant(name: &str, tenant: &str) -> Store {
    let store = Store::open(&temp_path(name)).unwrap();
    admin(&store, tenant_op(tenant, None)).unwrap();
    store
}

/// A record as a data plane sends it.
pub(crate) fn record(ts: u64, tenant: &str, model: &str) -> Record {
    let mut r = Record::new(ts, ApiRoute::ChatCompletions);
    r.tenant = Some(tenant.into());
    r.key_id = Some(format!("{tenant}-key").into());
    r.model = Some(model.into());
    r.status = 200;
    r.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    });
    r.client_ip_hash = Some("ab".repeat(32));
    r
}

/// Stores `items` as data plane `dp`'s batch.
pub(crate) fn ingest(store: &Store, dp: u32, items: &[(u64, Record)]) {
    let batch = Batch {
        dataplane: dp,
        records: items.iter().map(|(s, r)| Prepared::new(*s, r).unwrap()).collect(),
    };
    let txn = store.begin_write().unwrap();
    ingest::apply(&txn, &[batch], crate::billing::meter::apply).unwrap();
    txn.commit().unwrap();
}

/// Whether the file at `path` holds `needle` anywhere.
pub(crate) fn file_has(path: &std::path::Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

fn settings_op(tenant: &str, change: Change, vault: &crate::vault::Vault) -> AdminOp {
    let new_key = (change.log_content == Some(true)).then(|| content::new_key(vault, tenant).unwrap());
    AdminOp::Privacy(PrivacyOp::Settings {
        tenant: tenant.into(),
        change,
        new_key,
    })
}

#[test]
fn logging_on_puts_the_content_key_in_the_snapshot_and_off_takes_it_out() {
    let (vault, _) = crate::vault::Vault::generate().unwrap();
    let store = store_with_tenant("settings", "acme");
    let on = Change {
        log_content: Some(true),
        ..Change::default()
    };
    let applied = admin(&store, settings_op("acme", on.clone(), &vault)).unwrap();
    let compiled = applied.compiled.expect("the snapshot changes");
    assert_eq!(compiled.content_keys.len(), 1);
    assert_eq!(crate::ops::compile_current(&store).unwrap().content_keys.len(), 1);
    let key1 = settings::get_read(&store.begin_read().unwrap(), "acme")
        .unwrap()
        .content_key;
    // On again: same key, no new snapshot.
    let applied = admin(&store, settings_op("acme", on, &vault)).unwrap();
    assert!(applied.compiled.is_none());
    let row = settings::get_read(&store.begin_read().unwrap(), "acme").unwrap();
    assert_eq!(row.content_key, key1);
    // Retention only: no new snapshot.
    let days = Change {
        retention_days: Some(7),
        content_retention_days: Some(3),
        ..Change::default()
    };
    assert!(admin(&store, settings_op("acme", days, &vault))
        .unwrap()
        .compiled
        .is_none());
    let row = settings::get_read(&store.begin_read().unwrap(), "acme").unwrap();
    assert_eq!((row.retention_days(), row.content_retention_days()), (7, 3));
    // Off: the key leaves the snapshot but stays until a purge finds no content.
    let off = Change {
        log_content: Some(false),
        ..Change::default()
    };
    let applied = admin(&store, settings_op("acme", off, &vault)).unwrap();
    assert!(applied.compiled.unwrap().content_keys.is_empty());
    assert!(settings::get_read(&store.begin_read().unwrap(), "acme")
        .unwrap()
        .content_key
        .is_some());
    // Bad input and unknown tenants are refused.
    let bad = Change {
        retention_days: Some(0),
        ..Change::default()
    };
    assert!(matches!(
        admin(&store, settings_op("acme", bad, &vault)),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        admin(
            &store,
            settings_op(
                "ghost",
                Change {
                    retention_days: Some(1),
                    ..Change::default()
                },
                &vault
            )
        ),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn deleting_a_tenant_drops_its_key_and_keeps_only_anonymous_usage() {
    let (vault, _) = crate::vault::Vault::generate().unwrap();
    let store = store_with_tenant("erase", "acme");
    admin(&store, tenant_op("other", None)).unwrap();
    let on = Change {
        log_content: Some(true),
        ..Change::default()
    };
    admin(&store, settings_op("acme", on, &vault)).unwrap();
    let day = 19_000 * crate::clock::DAY_MS;
    ingest(
        &store,
        1,
        &[
            (1, record(day, "acme", "gpt-4o")),
            (2, record(day + 1, "acme", "gpt-4o")),
            (3, record(day + 2, "other", "gpt-4o")),
        ],
    );
    admin(&store, AdminOp::DeleteTenant("acme".into())).unwrap();
    let r = store.begin_read().unwrap();
    assert_eq!(
        settings::get_read(&r, "acme").unwrap(),
        settings::PrivacyRow::default()
    );
    {
        let anon = r.open_table(crate::store::schema::USAGE_ANONYMOUS).unwrap();
        let (k, v) = anon.first().unwrap().unwrap();
        assert_eq!(k.value().1, "gpt-4o");
        assert_eq!(erase::unpack4(&v.value())[..3], [2, 20, 10]);
    }
    assert!(store.usage("other").unwrap().len() == 1);
}

#[test]
fn the_clock_moves_only_with_the_loud_flag_never_from_the_environment() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        opts: super::ServeOpts,
    }
    // A stray variable (what moved the clock before) is ignored...
    std::env::set_var("SLUICE_CLOCK_OFFSET_DAYS", "40");
    let stray = Wrap::try_parse_from(["serve"]).unwrap();
    std::env::remove_var("SLUICE_CLOCK_OFFSET_DAYS");
    assert_eq!(stray.opts.clock_offset_days, 0);
    // ...and only the flag that says what it is for moves it.
    let flagged = Wrap::try_parse_from(["serve", "--test-only-clock-offset-days", "-3"]).unwrap();
    assert_eq!(flagged.opts.clock_offset_days, -3);
    assert!(Wrap::try_parse_from(["serve", "--clock-offset-days", "3"]).is_err());
}
