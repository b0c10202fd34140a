use super::*;
use crate::ops::AdminOp;
use crate::privacy::tests::{admin, file_has, ingest, record, temp_path, tenant_op};
use crate::store::query::LogQuery;

const CANARY: &str = "canary-tenant-7f3a";
const ALL: LogQuery = LogQuery {
    since: None,
    until: None,
    limit: 100_000,
};

#[test]
fn a_deleted_tenant_leaves_no_byte_in_the_rewritten_file() {
    let path = temp_path("compact-canary");
    let store = Store::open(&path).unwrap();
    let t0 = 1_714_564_800_000u64;
    // Enough records that every tree has branch pages, the canary's keys
    // sorting between the other tenants' ("alpha" < canary < "omega").
    for t in ["alpha", CANARY, "omega"] {
        admin(&store, tenant_op(t, Some(&format!("{t} display name")))).unwrap();
    }
    let mut seq = 0;
    for round in 0..6u64 {
        let mut batch = Vec::new();
        for t in ["alpha", CANARY, "omega"] {
            for i in 0..400u64 {
                seq += 1;
                batch.push((seq, record(t0 + round * 1000 + i, t, &format!("{t}-model"))));
            }
        }
        ingest(&store, 1, &batch);
    }
    let before = crate::ops::compile_current(&store).unwrap().snapshot;
    assert!(file_has(&path, CANARY.as_bytes()));

    admin(&store, AdminOp::DeleteTenant(CANARY.into())).unwrap();
    // Deleted, but still in the file: freed pages and branch separators.
    assert!(file_has(&path, CANARY.as_bytes()));
    let done = rewrite(&store).unwrap();
    assert!(done.entries > 0 && done.tables > 5, "{done:?}");
    for needle in [
        CANARY.to_owned(),
        format!("{CANARY}-key"),
        format!("{CANARY}-model"),
    ] {
        assert!(
            !file_has(&path, needle.as_bytes()),
            "{needle} is still in the file"
        );
    }
    assert!(!path.with_extension("redb.rewrite").exists());

    // Everything else is as it was, and the store keeps working.
    assert_eq!(store.logs("alpha", ALL).unwrap().len(), 2400);
    assert_eq!(store.logs("omega", ALL).unwrap().len(), 2400);
    assert_eq!(store.usage("omega").unwrap().len(), 1);
    let after = crate::ops::compile_current(&store).unwrap().snapshot;
    assert_eq!(after.tenants.len(), before.tenants.len() - 1);
    assert_eq!(after.version, before.version + 1);
    admin(&store, tenant_op("zeta", None)).unwrap();
    ingest(&store, 1, &[(seq + 1, record(t0, "zeta", "m"))]);
    store.close().unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.tenants().unwrap().len(), 3);
    assert_eq!(store.logs("zeta", ALL).unwrap().len(), 1);
}

#[test]
fn every_table_of_the_schema_has_a_known_key_order() {
    let path = temp_path("compact-tables");
    let store = Store::open(&path).unwrap();
    // Create every table a store may hold, then rewrite.
    let txn = store.begin_write().unwrap();
    {
        use crate::store::schema::*;
        txn.open_table(PRICES).unwrap();
        txn.open_table(POLICIES).unwrap();
        txn.open_table(RATE_LIMITS).unwrap();
        txn.open_table(CREDIT_ACCOUNTS).unwrap();
        txn.open_table(CREDIT_LEASES).unwrap();
        txn.open_table(RATE_SHARES).unwrap();
        txn.open_table(ALERTS).unwrap();
        txn.open_table(USAGE_METER_DAILY).unwrap();
        txn.open_table(UNPRICED_DAILY).unwrap();
        txn.open_table(TENANT_PRIVACY).unwrap();
        txn.open_table(CONTENT_INDEX).unwrap();
        txn.open_table(USAGE_ANONYMOUS).unwrap();
        txn.open_table(AUDIT).unwrap();
        txn.open_table(PRIVACY_META).unwrap();
    }
    txn.commit().unwrap();
    let r = store.begin_read().unwrap();
    let names: Vec<String> = r.list_tables().unwrap().map(|t| t.name().to_owned()).collect();
    for name in &names {
        probe(&r, name).unwrap_or_else(|e| panic!("table {name}: {e}"));
    }
    drop(r);
    let done = rewrite(&store).unwrap();
    assert_eq!(done.tables, names.len());
}
