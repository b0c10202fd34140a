use super::ingest::{self, Batch, Prepared};
use super::query::LogQuery;
use super::rows::{ApiKeyRow, ProviderKeyRow, TenantRow};
use super::*;
use crate::ops::{self as admin_ops, apply, AdminOp};
use redb::ReadableTableMetadata;
use sluice_contract::record::{ApiRoute, Record, Usage};
use sluice_contract::snapshot::types::{ProviderKind, Route, Target, Upstream};
use std::sync::Arc;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(FILE_NAME)
}

fn admin(store: &Store, op: AdminOp) -> Result<admin_ops::Applied, StoreError> {
    let txn = store.begin_write().unwrap();
    match apply(&txn, &op) {
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

fn tenant(id: &str) -> AdminOp {
    AdminOp::CreateTenant(TenantRow {
        id: id.into(),
        name: None,
        region: None,
        created_ms: 1,
    })
}

fn setup(store: &Store) {
    admin(store, tenant("acme")).unwrap();
    admin(
        store,
        AdminOp::AddUpstream(Upstream {
            name: "mock".into(),
            kind: ProviderKind::Openai,
            base_url: "http://127.0.0.1:9".into(),
            region: None,
        }),
    )
    .unwrap();
    admin(
        store,
        AdminOp::PutProviderKey {
            row: ProviderKeyRow {
                id: "k1".into(),
                tenant: "acme".into(),
                wrapped_dek: "00".into(),
                sealed: "00".into(),
                created_ms: 1,
                updated_ms: 1,
                organization: Some("org-acme".into()),
                project: None,
            },
            create: true,
        },
    )
    .unwrap();
}

fn route(upstream: &str, key: &str) -> AdminOp {
    AdminOp::SetRoute(Route {
        tenant: Some("acme".into()),
        model: "gpt-4o".into(),
        targets: vec![Target {
            upstream: upstream.into(),
            provider_key: key.into(),
            model: None,
            priority: None,
            weight: 1,
        }],
        ..Route::default()
    })
}

fn record(ts: u64, tenant: &str, model: &str) -> Record {
    let mut r = Record::new(ts, ApiRoute::ChatCompletions);
    r.tenant = Some(Arc::from(tenant));
    r.model = Some(model.into());
    r.usage = Some(Usage {
        input_tokens: 10,
        output_tokens: 5,
        ..Usage::default()
    });
    r
}

fn ingest(store: &Store, dp: u32, items: &[(u64, Record)]) -> ingest::Ingested {
    let batch = Batch {
        dataplane: dp,
        records: items.iter().map(|(s, r)| Prepared::new(*s, r).unwrap()).collect(),
    };
    let txn = store.begin_write().unwrap();
    let out = ingest::apply(&txn, &[batch], crate::billing::meter::apply).unwrap();
    txn.commit().unwrap();
    out[0]
}

#[test]
fn new_store_starts_at_version_one_and_reopens() {
    let path = temp("reopen");
    let s = Store::open(&path).unwrap();
    assert_eq!(s.snapshot_version().unwrap(), 1);
    admin(&s, tenant("acme")).unwrap();
    assert_eq!(s.snapshot_version().unwrap(), 2);
    s.close().unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.tenants().unwrap().len(), 1);
}

#[test]
fn foreign_files_are_refused_untouched() {
    let path = temp("foreign");
    std::fs::write(&path, b"not a database at all").unwrap();
    assert!(matches!(Store::open(&path), Err(OpenError::Foreign(_))));
    assert!(std::fs::read(&path).unwrap() == b"not a database at all");

    // A redb file of another application.
    let other = temp("other-redb");
    {
        let db = redb::Database::create(&other).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("theirs"))
            .unwrap()
            .insert("a", &1)
            .unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let err = Store::open(&other).err().unwrap();
    assert!(matches!(err, OpenError::Foreign(_)), "{err}");
    assert!(
        std::fs::read(&other).unwrap() == before,
        "foreign redb file was modified"
    );
}

#[test]
fn refused_changes_change_nothing() {
    let s = Store::open(&temp("refuse")).unwrap();
    setup(&s);
    let v = s.snapshot_version().unwrap();
    assert!(matches!(admin(&s, tenant("acme")), Err(StoreError::Conflict(_))));
    let e = admin(&s, route("nope", "k1")).unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("unknown upstream")),
        "{e}"
    );
    let e = admin(&s, route("mock", "k9")).unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("unknown provider key")),
        "{e}"
    );
    assert!(s.routes("acme").unwrap().is_empty());
    assert_eq!(s.snapshot_version().unwrap(), v);

    admin(&s, route("mock", "k1")).unwrap();
    let e = admin(&s, AdminOp::RemoveUpstream("mock".into())).unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("acme/gpt-4o")),
        "{e}"
    );
    let e = admin(
        &s,
        AdminOp::DeleteProviderKey {
            tenant: "acme".into(),
            id: "k1".into(),
        },
    )
    .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)));
    assert_eq!(s.upstreams().unwrap().len(), 1);
}

#[test]
fn bad_upstream_url_is_refused_by_index_validation() {
    let s = Store::open(&temp("badurl")).unwrap();
    let e = admin(
        &s,
        AdminOp::AddUpstream(Upstream {
            name: "x".into(),
            kind: ProviderKind::Openai,
            base_url: "ftp://x".into(),
            region: None,
        }),
    )
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("http://")),
        "{e}"
    );
    assert!(s.upstreams().unwrap().is_empty());
}

#[test]
fn revoked_keys_leave_the_snapshot() {
    let s = Store::open(&temp("revoke")).unwrap();
    setup(&s);
    let key = |id: &str| ApiKeyRow {
        id: id.into(),
        tenant: "acme".into(),
        name: None,
        sha256: "ab".repeat(32).replacen("ab", id, 1)[..64].to_owned(),
        created_ms: 1,
        revoked_ms: None,
    };
    admin(&s, AdminOp::CreateApiKey(key("01"))).unwrap();
    admin(&s, AdminOp::CreateApiKey(key("02"))).unwrap();
    assert_eq!(
        crate::ops::compile_current(&s).unwrap().snapshot.api_keys.len(),
        2
    );
    let a = admin(
        &s,
        AdminOp::RevokeApiKey {
            tenant: "acme".into(),
            id: "01".into(),
        },
    )
    .unwrap();
    let snap = a.compiled.unwrap().snapshot;
    assert_eq!(snap.api_keys.len(), 1);
    assert_eq!(snap.api_keys[0].id, "02");
    assert_eq!(s.api_keys("acme").unwrap().len(), 2);
}

#[test]
fn ingest_is_idempotent_and_indexed() {
    let s = Store::open(&temp("ingest")).unwrap();
    admin(&s, tenant("acme")).unwrap();
    let day = 1_714_564_800_000;
    let items = vec![
        (1, record(day, "acme", "gpt-4o")),
        (2, record(day + 1, "acme", "gpt-4o")),
        (3, record(day + 2, "other", "m")),
    ];
    assert_eq!(
        ingest(&s, 1, &items),
        ingest::Ingested {
            stored: 3,
            acked_through: 3
        }
    );
    assert_eq!(
        ingest(&s, 1, &items),
        ingest::Ingested {
            stored: 0,
            acked_through: 3
        }
    );
    // Same seq from another data plane is another record.
    assert_eq!(ingest(&s, 2, &items[..1]).stored, 1);
    let logs = s
        .logs(
            "acme",
            LogQuery {
                limit: 100,
                ..LogQuery::default()
            },
        )
        .unwrap();
    assert_eq!(logs.len(), 3);
    assert!(logs.windows(2).all(|w| w[0].record.ts_ms <= w[1].record.ts_ms));
    let usage = s.usage("acme").unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].requests, usage[0].input_tokens, usage[0].output_tokens),
        (3, 30, 15)
    );
    assert_eq!(usage[0].day, "2024-05-01");
    let latest = s
        .logs(
            "acme",
            LogQuery {
                limit: 1,
                ..LogQuery::default()
            },
        )
        .unwrap();
    assert_eq!(latest[0].record.ts_ms, day + 1);
    let first = s
        .logs(
            "acme",
            LogQuery {
                since: Some(0),
                limit: 1,
                ..LogQuery::default()
            },
        )
        .unwrap();
    assert_eq!(first[0].record.ts_ms, day);
    let window = s
        .logs(
            "acme",
            LogQuery {
                since: Some(day + 1),
                until: Some(day + 2),
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(window.len(), 1);
}

#[test]
fn deleting_a_tenant_removes_what_it_owns() {
    let s = Store::open(&temp("delete")).unwrap();
    setup(&s);
    admin(&s, tenant("acme-2")).unwrap();
    admin(&s, route("mock", "k1")).unwrap();
    ingest(
        &s,
        1,
        &[
            (1, record(5, "acme", "gpt-4o")),
            (2, record(6, "acme-2", "gpt-4o")),
        ],
    );
    admin(&s, AdminOp::DeleteTenant("acme".into())).unwrap();
    assert!(matches!(
        s.logs("acme", LogQuery::default()),
        Err(StoreError::NotFound(_))
    ));
    let snap = crate::ops::compile_current(&s).unwrap().snapshot;
    assert_eq!(snap.tenants.len(), 1);
    assert!(snap.routes.is_empty() && snap.provider_keys.is_empty());
    assert_eq!(
        s.logs(
            "acme-2",
            LogQuery {
                limit: 10,
                ..LogQuery::default()
            }
        )
        .unwrap()
        .len(),
        1
    );
    // Recreated, it starts empty.
    admin(&s, tenant("acme")).unwrap();
    assert!(s.usage("acme").unwrap().is_empty());
    assert!(s
        .logs(
            "acme",
            LogQuery {
                limit: 10,
                ..LogQuery::default()
            }
        )
        .unwrap()
        .is_empty());
    let r = s.begin_read().unwrap();
    assert_eq!(r.open_table(schema::RECORDS).unwrap().len().unwrap(), 1);
}

#[test]
fn dataplanes_enroll_once_and_keep_their_number() {
    let s = Store::open(&temp("dp")).unwrap();
    let enroll = |h: &str| {
        admin(
            &s,
            AdminOp::EnrollDataplane {
                id: "dp1".into(),
                token_sha256: h.into(),
                key: crate::store::rows::SealedSecret {
                    wrapped_dek: h.into(),
                    sealed: h.into(),
                },
                now_ms: 1,
            },
        )
    };
    enroll("aa").unwrap();
    assert!(matches!(enroll("bb"), Err(StoreError::Conflict(_))));
    admin(
        &s,
        AdminOp::RevokeDataplane {
            id: "dp1".into(),
            now_ms: 2,
        },
    )
    .unwrap();
    enroll("cc").unwrap();
    let row = s.dataplane("dp1").unwrap().unwrap();
    assert_eq!(
        (row.num, row.token_sha256.as_str(), row.revoked_ms),
        (1, "cc", None)
    );
    // Re-enrolled, it has the new key secret (the old one opens nothing).
    assert_eq!(row.key.map(|k| k.sealed).as_deref(), Some("cc"));
    assert_eq!(s.snapshot_version().unwrap(), 1);
}

#[test]
fn ingest_handles_out_of_order_and_partial_replays() {
    let s = Store::open(&temp("ingest-order")).unwrap();
    admin(&s, tenant("acme")).unwrap();
    let r = |seq: u64| (seq, record(1000 + seq, "acme", "m"));
    assert_eq!(ingest(&s, 1, &[r(5), r(3), r(5)]).stored, 2);
    // 1..=6: 5 and 3 are replays, 1, 2, 4 and 6 are new.
    let got = ingest(&s, 1, &[r(1), r(2), r(3), r(4), r(5), r(6)]);
    assert_eq!(
        got,
        ingest::Ingested {
            stored: 4,
            acked_through: 6
        }
    );
    let all = s
        .logs(
            "acme",
            LogQuery {
                limit: 100,
                ..LogQuery::default()
            },
        )
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    let dps = s.begin_read().unwrap();
    let stats = dps.open_table(schema::DATAPLANE_STATS).unwrap();
    assert_eq!(
        schema::unpack2(&stats.get(1u32.to_be_bytes()).unwrap().unwrap().value()),
        (6, 6)
    );
    assert_eq!(s.usage("acme").unwrap()[0].requests, 6);
}

#[test]
fn a_provider_keys_organization_reaches_the_snapshot_and_survives_a_rotation() {
    let path = temp("provider-key-headers");
    let store = Store::open(&path).unwrap();
    setup(&store);
    let key = |s: &Store| crate::ops::compile_current(s).unwrap().snapshot.provider_keys[0].clone();
    assert_eq!(key(&store).organization.as_deref(), Some("org-acme"));
    assert_eq!(key(&store).project, None);
    // A rotation naming only a project keeps the organization.
    admin(
        &store,
        AdminOp::PutProviderKey {
            row: ProviderKeyRow {
                id: "k1".into(),
                tenant: "acme".into(),
                wrapped_dek: "00".into(),
                sealed: "00".into(),
                created_ms: 2,
                updated_ms: 2,
                organization: None,
                project: Some("proj-1".into()),
            },
            create: false,
        },
    )
    .unwrap();
    let k = key(&store);
    assert_eq!(
        (k.organization.as_deref(), k.project.as_deref()),
        (Some("org-acme"), Some("proj-1"))
    );
}

#[test]
fn unpriced_requests_are_counted_in_usage_once() {
    let s = Store::open(&temp("unpriced")).unwrap();
    admin(&s, tenant("acme")).unwrap();
    let day = 1_714_564_800_000;
    let mut unpriced = record(day, "acme", "mystery-model");
    unpriced.unpriced = true;
    let items = vec![(1, record(day, "acme", "mystery-model")), (2, unpriced)];
    ingest(&s, 1, &items);
    // A replay stores nothing, so counts nothing again.
    ingest(&s, 1, &items);
    let usage = crate::billing::meter::usage(&s, "acme").unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(
        (usage[0].requests, usage[0].unpriced_requests),
        (2, 1),
        "{usage:?}"
    );
}
