use super::describe::Described;
use super::*;
use crate::privacy::tests::{file_has, temp_path};
use crate::store::schema::AUDIT;

fn described(action: &str, tenant: &str) -> Described {
    Described {
        action: action.into(),
        target: Some(format!("tenant {tenant}")),
        tenant: Some(tenant.into()),
        ..Described::default()
    }
}

/// A store whose trail has entries 1..=5, about tenants t1..t5.
fn trail(name: &str) -> (Store, Auditor) {
    let (store, a, _) = trail_at(name);
    (store, a)
}

fn trail_at(name: &str) -> (Store, Auditor, std::path::PathBuf) {
    let path = temp_path(name);
    let store = Store::open(&path).unwrap();
    let a = Auditor::new("0123456789abcdef", &[7u8; 32]);
    for i in 1..=5 {
        let txn = store.begin_write().unwrap();
        let seq = a
            .append(
                &txn,
                &described("tenant.create", &format!("t{i}")),
                "ok",
                1000 + i,
            )
            .unwrap();
        assert_eq!(seq, i);
        txn.commit().unwrap();
    }
    (store, a, path)
}

fn verify(store: &Store, a: &Auditor) -> Verification {
    a.verify(&store.begin_read().unwrap()).unwrap()
}

fn entry(store: &Store, seq: u64) -> AuditEntry {
    let r = store.begin_read().unwrap();
    let t = r.open_table(AUDIT).unwrap();
    let v = t.get(seq.to_be_bytes()).unwrap().unwrap();
    decode(v.value()).unwrap()
}

/// Writes raw bytes at `seq` (`None` removes it), as anyone with the file could.
fn tamper(store: &Store, seq: u64, value: Option<Vec<u8>>) {
    let txn = store.begin_write().unwrap();
    {
        let mut t = txn.open_table(AUDIT).unwrap();
        match value {
            Some(v) => t.insert(seq.to_be_bytes(), v.as_slice()).unwrap(),
            None => t.remove(seq.to_be_bytes()).unwrap(),
        };
    }
    txn.commit().unwrap();
}

fn bad_at(v: &Verification) -> u64 {
    assert!(!v.ok, "{v:?}");
    v.first_bad.unwrap()
}

#[test]
fn an_intact_chain_verifies_and_links_each_entry_to_the_last() {
    let (store, a) = trail("audit-intact");
    let v = verify(&store, &a);
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 5);
    let (e1, e2) = (entry(&store, 1), entry(&store, 2));
    assert_eq!(e1.prev_hash, "0".repeat(64));
    assert_eq!(e2.prev_hash, e1.hash);
    assert_eq!(e2.admin, "0123456789abcdef");
    assert_eq!(v.head.as_deref(), Some(entry(&store, 5).hash.as_str()));
    // Listing: latest, and after a seq.
    let r = store.begin_read().unwrap();
    let seqs = |l: Vec<AuditEntry>| l.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(list(&r, None, 2).unwrap()), [4, 5]);
    assert_eq!(seqs(list(&r, Some(1), 2).unwrap()), [2, 3]);
}

#[test]
fn an_altered_entry_is_named() {
    let (store, a) = trail("audit-altered");
    let mut e = entry(&store, 3);
    e.outcome = "refused: conflict".into();
    tamper(&store, 3, Some(encode(&e).unwrap()));
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 3);
    assert!(v.problem.unwrap().contains("altered"));
}

#[test]
fn an_altered_and_rehashed_entry_is_named() {
    let (store, a) = trail("audit-rehashed");
    let mut e = entry(&store, 2);
    e.action = "tenant.delete".into();
    e.hash = hex(&a.chain_hash(&unhex::<32>(&e.prev_hash).unwrap(), &e).unwrap());
    tamper(&store, 2, Some(encode(&e).unwrap()));
    assert_eq!(bad_at(&verify(&store, &a)), 2);
}

#[test]
fn a_trail_rechained_without_the_key_is_named() {
    // Someone with the file but not the master key alters entry 3 and
    // recomputes every hash after it, and the head, under a key of their own.
    let (store, a) = trail("audit-rechained");
    let forger = Auditor::new("0123456789abcdef", &[9u8; 32]);
    let mut prev = unhex::<32>(&entry(&store, 2).hash).unwrap();
    for seq in 3..=5 {
        let mut e = entry(&store, seq);
        if seq == 3 {
            e.outcome = "refused: conflict".into();
        }
        e.prev_hash = hex(&prev);
        prev = forger.chain_hash(&prev, &e).unwrap();
        e.hash = hex(&prev);
        tamper(&store, seq, Some(encode(&e).unwrap()));
    }
    let txn = store.begin_write().unwrap();
    {
        let mut head = 5u64.to_be_bytes().to_vec();
        head.extend_from_slice(&prev);
        let mut meta = txn.open_table(PRIVACY_META).unwrap();
        meta.insert("audit_head", head.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 3, "{v:?}");
}

#[test]
fn a_changed_plain_text_target_is_named() {
    let (store, a) = trail("audit-target");
    let mut e = entry(&store, 4);
    e.target = Some("tenant someone-else".into());
    tamper(&store, 4, Some(encode(&e).unwrap()));
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 4);
    assert!(v.problem.unwrap().contains("target"));
}

#[test]
fn garbage_in_place_of_an_entry_is_named() {
    let (store, a) = trail("audit-garbage");
    tamper(&store, 2, Some(b"not json".to_vec()));
    assert_eq!(bad_at(&verify(&store, &a)), 2);
}

#[test]
fn a_removed_entry_is_named() {
    let (store, a) = trail("audit-removed");
    tamper(&store, 3, None);
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 3);
    assert!(v.problem.unwrap().contains("missing"));
}

#[test]
fn entries_removed_from_the_end_are_named() {
    let (store, a) = trail("audit-truncated");
    tamper(&store, 5, None);
    tamper(&store, 4, None);
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 4);
    assert!(v.problem.unwrap().contains("missing"));
}

#[test]
fn reordered_entries_are_named() {
    let (store, a) = trail("audit-reordered");
    let (e2, e3) = (entry(&store, 2), entry(&store, 3));
    tamper(&store, 2, Some(encode(&e3).unwrap()));
    tamper(&store, 3, Some(encode(&e2).unwrap()));
    let v = verify(&store, &a);
    assert_eq!(bad_at(&v), 2);
    assert!(v.problem.unwrap().contains("holds entry 3"));
}

#[test]
fn another_key_cannot_vouch_for_targets() {
    let (store, _) = trail("audit-otherkey");
    let other = Auditor::new("x", &[8u8; 32]);
    assert_eq!(bad_at(&verify(&store, &other)), 1);
}

#[test]
fn erasing_a_tenant_removes_its_name_and_keeps_the_chain_whole() {
    let (store, a, path) = trail_at("audit-erase");
    let txn = store.begin_write().unwrap();
    assert_eq!(a.erase_tenant(&txn, "t3").unwrap(), 1);
    txn.commit().unwrap();
    let e = entry(&store, 3);
    assert_eq!((e.target, e.erased), (None, true));
    assert_eq!(entry(&store, 2).target.as_deref(), Some("tenant t2"));
    assert!(verify(&store, &a).ok);
    // The name is gone from the file once it is rewritten.
    crate::store::compact::rewrite(&store).unwrap();
    assert!(!file_has(&path, b"tenant t3"));
    assert!(file_has(&path, b"tenant t2"));
    assert!(verify(&store, &a).ok);
}
