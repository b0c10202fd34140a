//! The control plane's durable state: one redb file, `control.redb`.
//!
//! - [`schema`]: every table. [`rows`]: what the tables hold.
//! - [`writer`]: the one thread that writes, batching queued work.
//! - [`admin_ops`]: admin changes, each validated against the snapshot it
//!   would produce before it commits. [`ingest`]: record batches.
//! - [`compile`]: the snapshot, compiled from tables. [`query`]: reads.
//!
//! Readers open read transactions directly; they never wait for the writer
//! (only for the moment [`compact::rewrite`] swaps in a rewritten file).

pub(crate) mod browse;
pub(crate) mod compact;
pub(crate) mod compile;
pub(crate) mod daily;
pub(crate) mod ingest;
pub(crate) mod query;
pub(crate) mod rows;
pub(crate) mod schema;

use crate::vault::{KekSource, Vault};
use redb::{
    Database, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError, TableHandle, Value, WriteTransaction,
};
use schema::{meta, META};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Name of the store file inside the data directory.
pub(crate) const FILE_NAME: &str = "control.redb";

/// Why the store could not be opened. Nothing was written when this is returned.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The file is not a Sluice control store.
    Foreign(String),
    /// The file is a Sluice store of another layout version.
    Version(String),
    /// The master key does not open this store's secrets.
    WrongKey(String),
    /// The file or the database could not be used.
    Io(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Foreign(m) | OpenError::Version(m) | OpenError::WrongKey(m) | OpenError::Io(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// Why a read or a change failed, sorted by who is at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    /// The thing named does not exist.
    NotFound(String),
    /// It exists already, or the change clashes with current state.
    Conflict(String),
    /// The change would leave the snapshot invalid, or the input is bad.
    Invalid(String),
    /// The store is shutting down.
    Unavailable,
    /// The database or a cipher failed (our fault or the disk's).
    Internal(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::NotFound(m) | StoreError::Conflict(m) | StoreError::Invalid(m) => f.write_str(m),
            StoreError::Unavailable => f.write_str("control store is shutting down"),
            StoreError::Internal(m) => write!(f, "internal store error: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

macro_rules! internal_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Internal(e.to_string())
            }
        }
    )*};
}
internal_from!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError,
    sluice_contract::crypto::CryptoError,
    serde_json::Error
);

/// The open store.
pub(crate) struct Store {
    /// Locked for writing only while [`compact::rewrite`] swaps in a fresh
    /// file; every transaction begins under the read lock and outlives it.
    db: std::sync::RwLock<Database>,
    path: PathBuf,
}

impl Store {
    /// Opens `path`, creating a new store when the file is absent or empty.
    ///
    /// A file that is not redb, or a redb file that is not a Sluice store of
    /// this layout, is refused untouched: it is first inspected read-only.
    pub(crate) fn open(path: &Path) -> Result<Store, OpenError> {
        let io = |e: &dyn std::fmt::Display| OpenError::Io(format!("{}: {e}", path.display()));
        let in_use = || {
            OpenError::Io(format!(
                "{} is in use by another process (is `sluice-control serve` running?)",
                path.display()
            ))
        };
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut head = [0u8; 4];
            let n = f.read(&mut head).map_err(|e| io(&e))?;
            if n > 0 && (n < 4 || &head != b"redb") {
                return Err(OpenError::Foreign(format!(
                    "{} is not a redb database (foreign or corrupt file); refusing to touch it",
                    path.display()
                )));
            }
            if n > 0 {
                match Database::builder().open_read_only(path) {
                    Ok(ro) => {
                        identity(&ro, path)?;
                    }
                    // Not shut down cleanly: only a writable open can repair it,
                    // so the identity check waits until after that.
                    Err(redb::DatabaseError::RepairAborted) => {}
                    Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(in_use()),
                    Err(e) => return Err(io(&e)),
                }
            }
        }
        let db = Database::builder().create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => in_use(),
            other => io(&other),
        })?;
        let store = Store {
            db: std::sync::RwLock::new(db),
            path: path.to_owned(),
        };
        if !identity(&*store.database(), path)? {
            // Hashes and sealed secrets: nobody else needs to read them.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| io(&e))?;
            store.init().map_err(|e| io(&e))?;
        }
        Ok(store)
    }

    /// Writes the meta entries and creates every table, in one transaction.
    fn init(&self) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut m = txn.open_table(META)?;
            m.insert(meta::MAGIC, schema::MAGIC)?;
            m.insert(meta::SCHEMA_VERSION, &schema::SCHEMA_VERSION.to_be_bytes()[..])?;
            m.insert(meta::SNAPSHOT_VERSION, &1u64.to_be_bytes()[..])?;
            m.insert(meta::NEXT_DATAPLANE, &1u32.to_be_bytes()[..])?;
            txn.open_table(schema::TENANTS)?;
            txn.open_table(schema::API_KEYS)?;
            txn.open_table(schema::PROVIDER_KEYS)?;
            txn.open_table(schema::UPSTREAMS)?;
            txn.open_table(schema::ROUTES)?;
            txn.open_table(schema::DATAPLANES)?;
            txn.open_table(schema::DATAPLANE_STATS)?;
            txn.open_table(schema::RECORDS)?;
            txn.open_table(schema::RECORDS_BY_TENANT)?;
            txn.open_table(schema::USAGE_DAILY)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Checks that `vault` is this store's master key, recording it on first use.
    pub(crate) fn bind_master_key(&self, vault: &Vault, source: &KekSource) -> Result<(), OpenError> {
        let internal = |e: StoreError| OpenError::Io(e.to_string());
        let read = self.begin_read().map_err(internal)?;
        let check = read
            .open_table(META)
            .map_err(StoreError::from)
            .and_then(|t| Ok(t.get(meta::KEK_CHECK)?.map(|v| v.value().to_vec())))
            .map_err(internal)?;
        drop(read);
        match check {
            Some(c) if vault.verifies(&c) => Ok(()),
            Some(_) => Err(OpenError::WrongKey(format!(
                "the master key from {source} does not match {} (its provider keys were sealed under another key)",
                self.path.display()
            ))),
            None => {
                let txn = self.begin_write().map_err(internal)?;
                {
                    let mut m = txn.open_table(META).map_err(|e| internal(e.into()))?;
                    let c = vault.check_value().map_err(|e| internal(e.into()))?;
                    m.insert(meta::KEK_CHECK, c.as_slice()).map_err(|e| internal(e.into()))?;
                }
                txn.commit().map_err(|e| internal(e.into()))
            }
        }
    }

    /// A read transaction.
    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.database().begin_read()?)
    }

    /// A write transaction that commits with immediate durability. Only the
    /// writer thread and offline maintenance (`master-key rotate`) call this.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.database().begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        Ok(txn)
    }

    /// The store file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the store file in bytes.
    pub(crate) fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Closes the database cleanly (no repair on the next open).
    pub(crate) fn close(self) -> Result<(), String> {
        self.db
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .close()
            .map_err(|e| e.to_string())
    }

    /// The database, to begin a transaction on.
    fn database(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Checks that `db` is a Sluice control store of this layout: `Ok(true)` if
/// it is, `Ok(false)` if it has no tables yet, an error otherwise.
fn identity(db: &impl ReadableDatabase, path: &Path) -> Result<bool, OpenError> {
    let io = |e: &dyn std::fmt::Display| OpenError::Io(format!("{}: {e}", path.display()));
    let read = db.begin_read().map_err(|e| io(&e))?;
    let tables: Vec<String> = read
        .list_tables()
        .map_err(|e| io(&e))?
        .map(|t| t.name().to_owned())
        .collect();
    if tables.is_empty() {
        return Ok(false);
    }
    if !tables.iter().any(|t| t == META.name()) {
        return Err(OpenError::Foreign(format!(
            "{} is a redb database but not a Sluice control store (tables: {}); refusing to touch it",
            path.display(),
            tables.join(", ")
        )));
    }
    let table = read.open_table(META).map_err(|e| io(&e))?;
    let magic = table
        .get(meta::MAGIC)
        .map_err(|e| io(&e))?
        .map(|v| v.value().to_vec());
    if magic.as_deref() != Some(schema::MAGIC) {
        return Err(OpenError::Foreign(format!(
            "{} is a redb database without the Sluice control magic; refusing to touch it",
            path.display()
        )));
    }
    let version = table
        .get(meta::SCHEMA_VERSION)
        .map_err(|e| io(&e))?
        .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
        .map(u32::from_be_bytes);
    if version != Some(schema::SCHEMA_VERSION) {
        return Err(OpenError::Version(format!(
            "{} has store layout {version:?}; this sluice-control reads layout {}",
            path.display(),
            schema::SCHEMA_VERSION
        )));
    }
    Ok(true)
}

/// Reads a big-endian u64 meta entry.
pub(crate) fn meta_u64(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u64, StoreError> {
    let v = table
        .get(key)?
        .ok_or_else(|| StoreError::Internal(format!("meta entry {key} is missing")))?;
    let b = <[u8; 8]>::try_from(v.value())
        .map_err(|_| StoreError::Internal(format!("meta entry {key} is malformed")))?;
    Ok(u64::from_be_bytes(b))
}

/// Reads a big-endian u32 meta entry.
pub(crate) fn meta_u32(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<u32, StoreError> {
    let v = table
        .get(key)?
        .ok_or_else(|| StoreError::Internal(format!("meta entry {key} is missing")))?;
    let b = <[u8; 4]>::try_from(v.value())
        .map_err(|_| StoreError::Internal(format!("meta entry {key} is malformed")))?;
    Ok(u32::from_be_bytes(b))
}

/// Decodes a JSON row.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Internal(format!("corrupt row: {e}")))
}

/// Encodes a JSON row.
pub(crate) fn encode<T: serde::Serialize>(row: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(row)?)
}

/// `def` in `r`, or `None` when it was never created (a store older than it).
pub(crate) fn open_read<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
    match r.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Fails unless tenant `id` exists (inside a change).
pub(crate) fn require_tenant(txn: &WriteTransaction, id: &str) -> Result<(), StoreError> {
    if txn.open_table(schema::TENANTS)?.get(id)?.is_none() {
        return Err(StoreError::NotFound(format!("tenant {id:?} does not exist")));
    }
    Ok(())
}

/// Tenant `id`'s row, or `NotFound` (in a read).
pub(crate) fn tenant_row(r: &ReadTransaction, id: &str) -> Result<rows::TenantRow, StoreError> {
    let t = r.open_table(schema::TENANTS)?;
    let v = t
        .get(id)?
        .ok_or_else(|| StoreError::NotFound(format!("tenant {id:?} does not exist")))?;
    decode(v.value())
}

#[cfg(test)]
mod tests;
