//! Rewriting the store into a fresh file, so that deleted bytes leave the disk.
//!
//! redb frees the pages of deleted rows without clearing them, and a deleted
//! key can live on as a separator in a live branch page of its B-tree;
//! `Database::compact` moves pages and trims the file but keeps both (a
//! deleted tenant's id was found in the file after it). So after a tenant is
//! deleted the writer thread [`rewrite`]s the store: every table is copied,
//! entry by entry, into a new file whose trees are built only from live keys;
//! the copy is committed durably, renamed over `control.redb` and swapped in
//! for the open database. Readers wait on the store's lock meanwhile.
//!
//! The copy is generic, so it keeps working as tables are added: each table's
//! key and value type names and widths are read back from the file (redb
//! reports them when a table is opened with the wrong types) and the table is
//! reopened through [`DynKey`] / [`DynValue`], which pass bytes through under
//! those names. Only the key's order must be known: it is taken from the real
//! type of that name ([`compare_for`]); a table whose key type is not listed
//! there stops the rewrite before anything is replaced.

use super::{Store, StoreError};
use redb::{
    CompactionError, Database, Key, ReadableDatabase, ReadableTableMetadata, TableDefinition, TableError,
    TableHandle, TypeName, Value,
};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the rewrite waits for read transactions to finish.
const QUIESCE: Duration = Duration::from_secs(30);

/// What a rewrite did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewritten {
    /// Tables copied.
    pub(crate) tables: usize,
    /// Entries copied.
    pub(crate) entries: u64,
    /// File size before, bytes.
    pub(crate) bytes_before: u64,
    /// File size after, bytes.
    pub(crate) bytes_after: u64,
}

/// The file a rewrite builds before it replaces `path`.
pub(crate) fn scratch_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".rewrite");
    PathBuf::from(name)
}

/// Removes the scratch copy a rewrite left when it stopped before its rename.
pub(crate) fn remove_scratch(store: &Store) -> Result<(), StoreError> {
    remove_if_present(&scratch_path(&store.path))
}

/// Copies every live entry of `store` into a fresh file and swaps it in.
/// Must run on the writer thread (it is the only writer while it runs).
pub(crate) fn rewrite(store: &Store) -> Result<Rewritten, StoreError> {
    let bytes_before = store.file_size();
    let mut db = exclusive(store)?;
    let scratch = scratch_path(&store.path);
    remove_if_present(&scratch)?;
    let fresh = Database::builder()
        .create(&scratch)
        .map_err(|e| StoreError::Internal(format!("creating {}: {e}", scratch.display())))?;
    std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Internal(format!("{}: {e}", scratch.display())))?;
    let copied = match copy_all(&db, &fresh) {
        Ok(c) => c,
        Err(e) => {
            drop(fresh);
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    // The copy is durable in `scratch`; renaming it over the store is the
    // switch. The open handle follows its file through the rename.
    std::fs::rename(&scratch, &store.path)
        .map_err(|e| StoreError::Internal(format!("replacing {}: {e}", store.path.display())))?;
    sync_dir(&store.path)?;
    let old = std::mem::replace(&mut *db, fresh);
    drop(db);
    // The old file is unlinked; closing it only touches its last inode.
    if let Err(e) = old.close() {
        tracing::warn!(error = %e, "closing the replaced store file");
    }
    Ok(Rewritten {
        tables: copied.0,
        entries: copied.1,
        bytes_before,
        bytes_after: store.file_size(),
    })
}

/// The database, exclusively: no read transaction open and none starting.
/// Read transactions are short, so this waits them out: it holds the lock
/// (new readers queue) for a moment, and lets go in between in case a reader
/// needs a second transaction to finish its first.
fn exclusive(store: &Store) -> Result<std::sync::RwLockWriteGuard<'_, Database>, StoreError> {
    let deadline = Instant::now() + QUIESCE;
    loop {
        let mut db = store
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = Instant::now();
        loop {
            // Compacting in place first also makes the copy smaller; it is
            // refused while any read transaction lives.
            match db.compact() {
                Ok(_) => return Ok(db),
                Err(CompactionError::TransactionInProgress) => {}
                Err(e) => return Err(StoreError::Internal(format!("compacting: {e}"))),
            }
            if held.elapsed() > Duration::from_millis(50) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(db);
        if Instant::now() > deadline {
            return Err(StoreError::Internal(
                "read transactions kept the store busy; the rewrite will be retried".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Internal(format!("{}: {e}", path.display()))),
    }
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Internal(format!("syncing {}: {e}", dir.display())))
}

/// Copies every table of `from` into `to`; returns (tables, entries).
fn copy_all(from: &Database, to: &Database) -> Result<(usize, u64), StoreError> {
    let read = from.begin_read()?;
    if read.list_multimap_tables()?.next().is_some() {
        return Err(StoreError::Internal(
            "the store has multimap tables, which the rewrite does not copy".into(),
        ));
    }
    let names: Vec<String> = read.list_tables()?.map(|t| t.name().to_owned()).collect();
    let mut entries = 0u64;
    for name in &names {
        let spec = probe(&read, name)?;
        let _in_use = Active::set(spec);
        let def: TableDefinition<DynKey, DynValue> = TableDefinition::new(name);
        let src = read.open_table(def)?;
        let mut txn = to.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        {
            let mut dst = txn.open_table(def)?;
            for item in src.range::<&[u8]>(..)? {
                let (k, v) = item?;
                dst.insert(k.value(), v.value())?;
            }
            if dst.len()? != src.len()? {
                return Err(StoreError::Internal(format!(
                    "rewrite of table {name} copied {} of {} entries",
                    dst.len()?,
                    src.len()?
                )));
            }
            entries += dst.len()?;
        }
        txn.commit()?;
    }
    Ok((names.len(), entries))
}

/// A table's key and value types as stored.
#[derive(Clone)]
struct Spec {
    key: TypeName,
    key_width: Option<usize>,
    compare: fn(&[u8], &[u8]) -> Ordering,
    value: TypeName,
    value_width: Option<usize>,
}

thread_local! {
    /// The table [`DynKey`] and [`DynValue`] stand for right now.
    static ACTIVE: RefCell<Option<Spec>> = const { RefCell::new(None) };
}

/// Sets [`ACTIVE`] while alive.
struct Active;

impl Active {
    fn set(spec: Spec) -> Active {
        ACTIVE.with(|a| *a.borrow_mut() = Some(spec));
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| *a.borrow_mut() = None);
    }
}

fn active<T>(f: impl FnOnce(&Spec) -> T, unset: T) -> T {
    ACTIVE.with(|a| a.borrow().as_ref().map(f).unwrap_or(unset))
}

/// Reads the stored types of table `name` by opening it with wrong ones.
fn probe(read: &redb::ReadTransaction, name: &str) -> Result<Spec, StoreError> {
    let def: TableDefinition<DynKey, DynValue> = TableDefinition::new(name);
    let (key, value) = {
        let _unset = Active::set_none();
        match read.open_table(def) {
            Err(TableError::TableTypeMismatch { key, value, .. }) => (key, value),
            Err(e) => return Err(e.into()),
            Ok(_) => {
                return Err(StoreError::Internal(format!(
                    "table {name} has a placeholder type"
                )))
            }
        }
    };
    let compare = compare_for(&key).ok_or_else(|| {
        StoreError::Internal(format!(
            "table {name} has key type {}, whose order the rewrite does not know (add it to store/compact.rs)",
            key.name()
        ))
    })?;
    let mut spec = Spec {
        key,
        key_width: None,
        compare,
        value,
        value_width: None,
    };
    // Widths: each wrong one is reported with the stored width, key first.
    for _ in 0..3 {
        let _active = Active::set(spec.clone());
        match read.open_table(def) {
            Ok(_) => return Ok(spec),
            Err(TableError::TypeDefinitionChanged { name: n, width, .. }) => {
                if n == spec.key && spec.key_width != width {
                    spec.key_width = width;
                } else {
                    spec.value_width = width;
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Internal(format!(
        "could not read the types of table {name}"
    )))
}

impl Active {
    fn set_none() -> Active {
        ACTIVE.with(|a| *a.borrow_mut() = None);
        Active
    }
}

macro_rules! known_keys {
    ($($t:ty),* $(,)?) => {
        /// The order of the key type named `name`.
        fn compare_for(name: &TypeName) -> Option<fn(&[u8], &[u8]) -> Ordering> {
            $(
                if *name == <$t as Value>::type_name() {
                    return Some(<$t as Key>::compare);
                }
            )*
            // Byte arrays of any length order bytewise.
            let n = name.name();
            if n.starts_with("[u8;") && n.ends_with(']') && n[4..n.len() - 1].parse::<usize>().is_ok() {
                return Some(bytewise);
            }
            None
        }
    };
}

fn bytewise(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

known_keys!(
    &str,
    &[u8],
    u8,
    u16,
    u32,
    u64,
    u128,
    i8,
    i16,
    i32,
    i64,
    i128,
    bool,
    char,
    (&str, &str),
    (&str, &str, &str),
    (&str, &str, [u8; 4]),
    (&str, u32),
    (&str, u64),
    (u32, u64),
    (u64, u64),
    (&str, [u8; 4]),
    (&str, [u8; 8]),
    (&str, [u8; 12]),
    (&str, [u8; 16]),
    (&str, [u8; 20]),
    (&str, [u8; 32]),
    ([u8; 4], &str),
    ([u8; 8], &str),
    (&str, [u8; 4], &str),
    (&str, [u8; 8], &str),
);

/// Any key, as its bytes, under the type name of the table being copied.
#[derive(Debug)]
struct DynKey;

/// Any value, as its bytes, under the type name of the table being copied.
#[derive(Debug)]
struct DynValue;

impl Value for DynKey {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        active(|s| s.key_width, None)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        active(|s| s.key.clone(), TypeName::new("sluice-control::unset-key"))
    }
}

impl Key for DynKey {
    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        active(|s| (s.compare)(a, b), a.cmp(b))
    }
}

impl Value for DynValue {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        active(|s| s.value_width, None)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        active(|s| s.value.clone(), TypeName::new("sluice-control::unset-value"))
    }
}

#[cfg(test)]
mod tests;
