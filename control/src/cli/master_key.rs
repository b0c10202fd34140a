//! `master-key rotate`: re-wraps every provider key's data key under a new
//! master key. Runs offline, against the data directory.

use crate::secret_file;
use crate::serve;
use crate::store::rows::ProviderKeyRow;
use crate::store::schema::{self, meta, META};
use crate::store::{decode, encode, StoreError};
use crate::vault::{KekSource, Vault, MASTER_KEY_FILE};
use anyhow::{anyhow, Context};
use redb::ReadableTable;
use sluice_contract::crypto::hex;
use std::path::PathBuf;

/// Master key verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum MasterKeyCmd {
    /// Replace the master key. Stop `serve` first (the store is locked while it
    /// runs). The new key is written to KEYFILE.new (mode 0600) and flushed;
    /// every provider key's data key is re-wrapped in one transaction; then
    /// KEYFILE.new is renamed over KEYFILE. If interrupted after the commit,
    /// the next `serve` or `rotate` finishes the rename. KEYFILE is
    /// --master-key-file, else DATA/master.key (also when the old key came
    /// from $SLUICE_MASTER_KEY: unset it afterwards).
    Rotate {
        /// Data directory.
        #[arg(long, env = "SLUICE_DATA")]
        data: PathBuf,
        /// Master key file (read, then replaced).
        #[arg(long)]
        master_key_file: Option<PathBuf>,
    },
}

/// Runs a master key verb.
pub(crate) fn run(cmd: MasterKeyCmd) -> anyhow::Result<()> {
    let MasterKeyCmd::Rotate {
        data,
        master_key_file,
    } = cmd;
    let (store, old, source) = serve::open(&data, master_key_file.as_deref(), None)?;
    let dest = match &source {
        KekSource::File(p) => p.clone(),
        KekSource::Env | KekSource::Command(_) => data.join(MASTER_KEY_FILE),
    };
    let pending = secret_file::sibling(&dest, ".new");
    // A leftover from a rotation that stopped before its commit: the store
    // still uses the old key (we just verified it), so the leftover is unused.
    if pending.exists() {
        std::fs::remove_file(&pending).with_context(|| format!("removing stale {}", pending.display()))?;
    }
    let (new, text) = Vault::generate().map_err(|e| anyhow!(e))?;
    secret_file::write_new(&pending, format!("{}\n", text.as_str()).as_bytes())
        .with_context(|| format!("writing {}", pending.display()))?;
    secret_file::sync_dir(&pending)?;

    let txn = store.begin_write()?;
    let count = (|| -> Result<usize, StoreError> {
        let mut t = txn.open_table(schema::PROVIDER_KEYS)?;
        let mut rows = Vec::new();
        for item in t.range::<(&str, &str)>(..)? {
            rows.push(decode::<ProviderKeyRow>(item?.1.value())?);
        }
        for row in &mut rows {
            let aad = format!("{}/{}", row.tenant, row.id);
            let wrapped = crate::store::compile::unhex_vec(&row.wrapped_dek)
                .ok_or_else(|| StoreError::Internal(format!("provider key {aad}: bad hex")))?;
            row.wrapped_dek = hex(&old.rewrap(&new, &aad, &wrapped)?);
            t.insert((row.tenant.as_str(), row.id.as_str()), encode(row)?.as_slice())?;
        }
        // So are the data planes' key secrets, ...
        let mut dps = txn.open_table(schema::DATAPLANES)?;
        let mut dp_rows = Vec::new();
        for item in dps.range::<&str>(..)? {
            dp_rows.push(decode::<crate::store::rows::DataplaneRow>(item?.1.value())?);
        }
        for row in &mut dp_rows {
            let Some(key) = row.key.as_mut() else { continue };
            let aad = crate::snapshot::dataplane_key_aad(&row.id);
            let wrapped = crate::store::compile::unhex_vec(&key.wrapped_dek)
                .ok_or_else(|| StoreError::Internal(format!("data plane {}: bad hex", row.id)))?;
            key.wrapped_dek = hex(&old.rewrap(&new, &aad, &wrapped)?);
            dps.insert(row.id.as_str(), encode(row)?.as_slice())?;
        }
        // ... and the content keys and the audit key.
        crate::privacy::rewrap_all(&txn, &old, &new)?;
        // ... and the sinks' secrets.
        crate::sinks::cursor::rewrap(&txn, &old, &new)?;
        let mut m = txn.open_table(META)?;
        m.insert(meta::KEK_CHECK, new.check_value()?.as_slice())?;
        Ok(rows.len())
    })();
    let count = match count {
        Ok(n) => n,
        Err(e) => {
            let _ = txn.abort();
            let _ = std::fs::remove_file(&pending);
            return Err(e).context("re-wrapping provider keys; nothing was changed");
        }
    };
    txn.commit().context("committing the re-wrapped keys")?;
    std::fs::rename(&pending, &dest).with_context(|| {
        format!(
            "the store now uses the key in {}; rename it to {} by hand",
            pending.display(),
            dest.display()
        )
    })?;
    secret_file::sync_dir(&dest)?;
    store.close().map_err(|e| anyhow!(e))?;
    println!(
        "master key rotated: {count} provider key(s) re-wrapped; new key in {}",
        dest.display()
    );
    if source == KekSource::Env {
        eprintln!("note: the old key came from $SLUICE_MASTER_KEY; unset it (or set it to the new key)");
    }
    Ok(())
}
