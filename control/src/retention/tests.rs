use super::*;
use crate::clock::DAY_MS;
use crate::ops::AdminOp;
use crate::privacy::settings::{Change, SealedKey};
use crate::privacy::tests::{admin, ingest, record, store_with_tenant, tenant_op};
use crate::privacy::PrivacyOp;
use crate::store::query::LogQuery;
use crate::store::Store;

const NOW: u64 = 20_000 * DAY_MS;
const ALL: LogQuery = LogQuery {
    since: None,
    until: None,
    limit: 10_000,
};

fn purge_at(store: &Store, now: u64, rollup_days: u32) -> PurgeReport {
    let mut total = PurgeReport::default();
    loop {
        let txn = store.begin_write().unwrap();
        let r = purge(&txn, now, rollup_days, 3).unwrap();
        txn.commit().unwrap();
        total.add(&r);
        if !r.more {
            return total;
        }
    }
}

fn settings(store: &Store, tenant: &str, change: Change, key: Option<crate::vault::Envelope>) {
    admin(
        store,
        AdminOp::Privacy(PrivacyOp::Settings {
            tenant: tenant.into(),
            change,
            new_key: key,
        }),
    )
    .unwrap();
}

fn ts_of(store: &Store, tenant: &str) -> Vec<u64> {
    store
        .logs(tenant, ALL)
        .unwrap()
        .iter()
        .map(|e| e.record.ts_ms)
        .collect()
}

#[test]
fn records_older_than_their_tenants_period_go_and_rollups_stay() {
    let store = store_with_tenant("retention-records", "acme");
    admin(&store, tenant_op("brief", None)).unwrap();
    settings(
        &store,
        "brief",
        Change {
            retention_days: Some(2),
            ..Change::default()
        },
        None,
    );
    let mut anon = record(NOW - 40 * DAY_MS, "", "m");
    anon.tenant = None;
    ingest(
        &store,
        1,
        &[
            (1, record(NOW - 31 * DAY_MS, "acme", "gpt-4o")),
            (2, record(NOW - 29 * DAY_MS, "acme", "gpt-4o")),
            (3, record(NOW - 3 * DAY_MS, "brief", "gpt-4o")),
            (4, record(NOW - DAY_MS, "brief", "gpt-4o")),
            (5, anon),
        ],
    );
    let r = purge_at(&store, NOW, 396);
    assert_eq!(r.records, 3, "{r:?}");
    assert_eq!(ts_of(&store, "acme"), [NOW - 29 * DAY_MS]);
    assert_eq!(ts_of(&store, "brief"), [NOW - DAY_MS]);
    // The rollups keep the purged days.
    let days: Vec<String> = store.usage("acme").unwrap().into_iter().map(|u| u.day).collect();
    assert_eq!(days.len(), 2, "{days:?}");
    // Purging again removes nothing.
    assert!(purge_at(&store, NOW, 396).is_empty());
    // Thirteen months on, the rollups go too.
    let r = purge_at(&store, NOW + 400 * DAY_MS, 396);
    assert!(r.rollups >= 4, "{r:?}");
    assert!(store.usage("acme").unwrap().is_empty());
    assert!(store.usage("brief").unwrap().is_empty());
}

#[test]
fn records_of_a_deleted_tenant_that_arrive_late_are_removed() {
    let store = store_with_tenant("retention-orphans", "acme");
    ingest(
        &store,
        1,
        &[(1, record(NOW, "ghost", "m")), (2, record(NOW, "acme", "m"))],
    );
    let r = purge_at(&store, NOW, 396);
    assert_eq!(r.records, 1);
    let read = store.begin_read().unwrap();
    let idx = read.open_table(schema::RECORDS_BY_TENANT).unwrap();
    assert!(idx
        .range(("ghost", [0u8; 20])..=("ghost", [0xffu8; 20]))
        .unwrap()
        .next()
        .is_none());
    let usage = read.open_table(schema::USAGE_DAILY).unwrap();
    assert!(usage
        .range(("ghost", [0u8; 4], "")..("ghost\0", [0u8; 4], ""))
        .unwrap()
        .next()
        .is_none());
}

fn with_content(store: &Store, vault: &crate::vault::Vault, ts: u64) -> Record {
    let r = store.begin_read().unwrap();
    let row = crate::privacy::settings::get_read(&r, "acme").unwrap();
    let env = row.content_key.unwrap().envelope().unwrap();
    let raw = vault
        .open_secret(&crate::privacy::content::key_aad("acme"), &env)
        .unwrap();
    let key = sluice_contract::crypto::SealKey::from_bytes(&raw).unwrap();
    let mut rec = record(ts, "acme", "gpt-4o");
    let sealed = key
        .seal(
            br#"{"request":"q","response":"a","response_truncated":false}"#,
            crate::privacy::content::record_aad("acme", ts).as_bytes(),
        )
        .unwrap();
    rec.content_sealed = Some(sluice_contract::crypto::hex(&sealed));
    rec
}

#[test]
fn content_goes_after_its_period_and_all_of_it_with_the_key_after_opting_out() {
    let (vault, _) = crate::vault::Vault::generate().unwrap();
    let store = store_with_tenant("retention-content", "acme");
    let key = crate::privacy::content::new_key(&vault, "acme").unwrap();
    settings(
        &store,
        "acme",
        Change {
            log_content: Some(true),
            content_retention_days: Some(7),
            ..Change::default()
        },
        Some(key),
    );
    // Seq order is arrival order: the old record arrives last (from a spool).
    ingest(
        &store,
        1,
        &[
            (1, with_content(&store, &vault, NOW - DAY_MS)),
            (2, record(NOW - 9 * DAY_MS, "acme", "gpt-4o")),
            (3, with_content(&store, &vault, NOW - 8 * DAY_MS)),
        ],
    );
    let r = purge_at(&store, NOW, 396);
    assert_eq!((r.records, r.contents), (0, 1), "{r:?}");
    let sealed: Vec<bool> = store
        .logs("acme", ALL)
        .unwrap()
        .iter()
        .map(|e| e.record.content_sealed.is_some())
        .collect();
    assert_eq!(sealed, [false, false, true]);
    // Content that arrives later, already too old, is found all the same.
    ingest(&store, 1, &[(4, with_content(&store, &vault, NOW - 10 * DAY_MS))]);
    assert_eq!(purge_at(&store, NOW, 396).contents, 1);

    settings(
        &store,
        "acme",
        Change {
            log_content: Some(false),
            ..Change::default()
        },
        None,
    );
    let r = purge_at(&store, NOW, 396);
    assert_eq!((r.contents, r.keys_destroyed), (1, 1), "{r:?}");
    assert!(store
        .logs("acme", ALL)
        .unwrap()
        .iter()
        .all(|e| e.record.content_sealed.is_none()));
    let row = crate::privacy::settings::get_read(&store.begin_read().unwrap(), "acme").unwrap();
    assert_eq!(row.content_key, None::<SealedKey>);
    assert_eq!(store.logs("acme", ALL).unwrap().len(), 4);
}

/// A sink's cursor holds back retention: records it has not acknowledged
/// stay past their period; once its cursor passes them (or it is removed)
/// they go. A deleted tenant's records go regardless.
#[test]
fn records_a_sink_has_not_acknowledged_outlive_their_period() {
    use crate::sinks::config::{Auth, SinkRow};
    use crate::sinks::cursor::SinkOp;
    let store = store_with_tenant("retention-sink", "acme");
    ingest(
        &store,
        1,
        &[
            (1, record(NOW - 40 * DAY_MS, "acme", "gpt-4o")),
            (2, record(NOW - 35 * DAY_MS, "acme", "gpt-4o")),
            (3, record(NOW - 33 * DAY_MS, "acme", "gpt-4o")),
        ],
    );
    let row = SinkRow {
        name: "lake".into(),
        kind: "nats".into(),
        url: "nats://127.0.0.1:4222".into(),
        stream: "S".into(),
        subject: "s.<tenant>".into(),
        duplicate_window_secs: 60,
        stall_alert_secs: 60,
        tls_ca_pem: None,
        tls: false,
        auth: Auth::None,
        user: None,
        secret: None,
        created_ms: 1,
    };
    admin(&store, AdminOp::Sink(SinkOp::Add(Box::new(row)))).unwrap();
    assert_eq!(
        purge_at(&store, NOW, 396).records,
        0,
        "nothing acknowledged: all held"
    );
    admin(
        &store,
        AdminOp::Sink(SinkOp::Advance {
            name: "lake".into(),
            next: vec![(1, 3)],
        }),
    )
    .unwrap();
    assert_eq!(purge_at(&store, NOW, 396).records, 2, "seqs 1 and 2 acknowledged");
    assert_eq!(ts_of(&store, "acme"), [NOW - 33 * DAY_MS]);
    admin(&store, AdminOp::Sink(SinkOp::Remove("lake".into()))).unwrap();
    assert_eq!(purge_at(&store, NOW, 396).records, 1, "no sink: nothing held");
}
