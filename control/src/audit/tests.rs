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

/// The raw head record, as anyone with the file could read or write it.
fn head_bytes(store: &Store) -> Option<Vec<u8>> {
    let r = store.begin_read().unwrap();
    let m = r.open_table(PRIVACY_META).unwrap();
    let v = m.get(HEAD_META).unwrap();
    v.map(|v| v.value().to_vec())
}

fn set_head(store: &Store, value: Option<&[u8]>) {
    let txn = store.begin_write().unwrap();
    {
        let mut m = txn.open_table(PRIVACY_META).unwrap();
        match value {
            Some(v) => m.insert(HEAD_META, v).unwrap(),
            None => m.remove(HEAD_META).unwrap(),
        };
    }
    txn.commit().unwrap();
}

/// A trail of 5 entries whose head is repeated in a file; also returns the
/// head record as it was after entry 3 (an authentic, older head).
fn trail_with_file(name: &str) -> (Store, std::path::PathBuf, Vec<u8>) {
    let path = temp_path(name);
    let store = Store::open(&path).unwrap();
    let file = path.with_file_name(format!("{name}.{HEAD_FILE}"));
    let a = Auditor::new("0123456789abcdef", &[7u8; 32]).with_head_file(&file);
    let mut after_three = Vec::new();
    for i in 1..=5 {
        let txn = store.begin_write().unwrap();
        a.append(
            &txn,
            &described("tenant.create", &format!("t{i}")),
            "ok",
            1000 + i,
        )
        .unwrap();
        txn.commit().unwrap();
        a.committed();
        if i == 3 {
            after_three = head_bytes(&store).unwrap();
        }
    }
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("5 "));
    (store, file, after_three)
}

/// An auditor as control has it after a restart: same key, same head file,
/// nothing seen yet.
fn restarted(file: &std::path::Path) -> Auditor {
    Auditor::new("0123456789abcdef", &[7u8; 32]).with_head_file(file)
}

#[test]
fn truncation_with_an_older_authentic_head_put_back_is_named() {
    let (store, file, after_three) = trail_with_file("audit-cut-replay");
    assert!(verify(&store, &restarted(&file)).ok);
    // Cut entries 4 and 5 and put back the head as it was after entry 3:
    // everything inside the store agrees, and its MAC is genuine.
    tamper(&store, 5, None);
    tamper(&store, 4, None);
    set_head(&store, Some(&after_three));
    let v = verify(&store, &restarted(&file));
    assert_eq!(bad_at(&v), 4, "{v:?}");
    assert!(
        v.problem
            .as_deref()
            .unwrap()
            .contains("entries 4 to 5 are missing"),
        "{v:?}"
    );
    // The count kept outside the store is what names it: without it, the
    // cut trail would pass.
    let blind = Auditor::new("0123456789abcdef", &[7u8; 32]);
    assert!(verify(&store, &blind).ok);
}

#[test]
fn a_head_rewritten_without_the_key_is_named() {
    let (store, file, _) = trail_with_file("audit-cut-forged");
    tamper(&store, 5, None);
    tamper(&store, 4, None);
    // The head for 3 entries, with a MAC made without the audit key.
    let mut forged = 3u64.to_be_bytes().to_vec();
    forged.extend_from_slice(&unhex::<32>(&entry(&store, 3).hash).unwrap());
    forged.extend_from_slice(&[0u8; 32]);
    set_head(&store, Some(&forged));
    let v = verify(&store, &restarted(&file));
    assert!(v.problem.as_deref().unwrap().contains("not authentic"), "{v:?}");
    // And as the older versions wrote it, without a MAC.
    set_head(&store, Some(&forged[..40]));
    let v = verify(&store, &restarted(&file));
    assert!(v.problem.as_deref().unwrap().contains("no MAC"), "{v:?}");
}

#[test]
fn a_dropped_table_and_head_are_named() {
    let (store, file, _) = trail_with_file("audit-dropped");
    let txn = store.begin_write().unwrap();
    txn.delete_table(AUDIT).unwrap();
    txn.open_table(PRIVACY_META).unwrap().remove(HEAD_META).unwrap();
    txn.commit().unwrap();
    let v = verify(&store, &restarted(&file));
    assert_eq!(bad_at(&v), 1, "{v:?}");
    assert!(
        v.problem
            .as_deref()
            .unwrap()
            .contains("entries 1 to 5 are missing"),
        "{v:?}"
    );
    // While control runs, its own count names it even with the file gone.
    std::fs::remove_file(&file).unwrap();
    let running = restarted(&file);
    running.seen.store(5, Ordering::Relaxed);
    assert_eq!(bad_at(&verify(&store, &running)), 1);
}

#[test]
fn a_missing_head_file_is_named_and_a_lagging_one_is_not_a_loss() {
    let (store, file, _) = trail_with_file("audit-file");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    let v = verify(&store, &restarted(&file));
    assert!(v.problem.as_deref().unwrap().contains("is missing"), "{v:?}");
    // One entry behind (a crash between a commit and its copy): whole.
    let a = restarted(&file);
    let txn = store.begin_write().unwrap();
    a.append(&txn, &described("tenant.create", "t6"), "ok", 2000)
        .unwrap();
    txn.commit().unwrap();
    std::fs::write(&file, &text).unwrap();
    assert!(verify(&store, &restarted(&file)).ok);
    // A file edited by hand without the key is named.
    std::fs::write(&file, text.replacen("5 ", "9 ", 1)).unwrap();
    let v = verify(&store, &restarted(&file));
    assert!(v.problem.as_deref().unwrap().contains("not authentic"), "{v:?}");
}
