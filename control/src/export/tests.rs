use super::*;
use crate::privacy::tests::{admin, ingest, record, store_with_tenant, tenant_op};

#[test]
fn pages_hold_every_record_of_the_tenant_once_and_none_of_others() {
    let (vault, _) = Vault::generate().unwrap();
    let store = store_with_tenant("export-pages", "acme");
    admin(&store, tenant_op("other-corp", Some("Other Corp"))).unwrap();
    let t0 = 1_714_564_800_000u64;
    let mut items = Vec::new();
    for i in 0..25u64 {
        // Same timestamps across tenants and data planes.
        items.push((2 * i + 1, record(t0 + i / 3, "acme", "gpt-4o")));
        items.push((2 * i + 2, record(t0 + i / 3, "other-corp", "other-model")));
    }
    ingest(&store, 1, &items);
    ingest(&store, 2, &[(1, record(t0, "acme", "gpt-4o"))]);

    let h = header(&store, "acme", t0).unwrap();
    assert_eq!(h.records_total, 26);
    assert_eq!(h.format, FORMAT);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = records_page(&store, &vault, "acme", after.as_deref(), 4, t0).unwrap();
        assert!(page.records.len() <= 4);
        for r in &page.records {
            assert_eq!(r.record.tenant.as_deref(), Some("acme"));
            seen.push((r.dataplane.clone(), r.seq));
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 26);
    let text = serde_json::to_string(&h).unwrap();
    assert!(
        !text.contains("other-corp") && !text.contains("Other Corp"),
        "{text}"
    );
    assert!(records_page(&store, &vault, "acme", Some("zz"), 4, t0).is_err());
    assert!(header(&store, "ghost", t0).is_err());
}
