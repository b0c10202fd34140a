//! A sink's durable cursor: per data plane, the next seq to publish. Records
//! reach control in seq order per data plane (the agent's invariant), so
//! everything below the cursor was acknowledged by the engine and everything
//! from it on is pending. Changes go through the writer ([`SinkOp`]).

use super::config::{secret_aad, SinkRow};
use super::message;
use crate::store::schema::{self, record_key, split_record_key, SINKS, SINK_CURSORS};
use crate::store::{decode, encode, open_read, Store, StoreError};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use std::collections::{BTreeMap, HashMap};

/// A change to sinks, applied by the writer thread.
#[derive(Debug, Clone)]
pub(crate) enum SinkOp {
    /// Add a sink; its name must be new. Its cursors start at 0: it receives
    /// every record still stored.
    Add(Box<SinkRow>),
    /// Remove a sink and its cursors (retention no longer waits for it).
    Remove(String),
    /// Move cursors forward after the engine acknowledged (never back).
    Advance {
        /// Sink name (gone meanwhile: nothing happens).
        name: String,
        /// (data plane number, next seq to publish).
        next: Vec<(u32, u64)>,
    },
    /// Append a `sink_stalled` alert.
    Stalled {
        /// Sink name.
        name: String,
        /// Now, unix ms.
        now_ms: u64,
    },
}

/// Applies `op` inside `txn`.
pub(crate) fn apply(txn: &WriteTransaction, op: &SinkOp) -> Result<(), StoreError> {
    match op {
        SinkOp::Add(row) => {
            let mut t = txn.open_table(SINKS)?;
            if t.get(row.name.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "sink {:?} already exists",
                    row.name
                )));
            }
            t.insert(row.name.as_str(), encode(row)?.as_slice())?;
        }
        SinkOp::Remove(name) => {
            let mut t = txn.open_table(SINKS)?;
            if t.remove(name.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!("sink {name:?} does not exist")));
            }
            let mut c = txn.open_table(SINK_CURSORS)?;
            let keys: Vec<[u8; 4]> = c
                .range((name.as_str(), [0u8; 4])..=(name.as_str(), [0xffu8; 4]))?
                .map(|i| i.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for k in keys {
                c.remove((name.as_str(), k))?;
            }
        }
        SinkOp::Advance { name, next } => {
            if txn.open_table(SINKS)?.get(name.as_str())?.is_none() {
                return Ok(());
            }
            let mut c = txn.open_table(SINK_CURSORS)?;
            for (dp, seq) in next {
                let key = (name.as_str(), dp.to_be_bytes());
                let cur = c.get(key)?.map(|v| u64::from_be_bytes(v.value())).unwrap_or(0);
                if *seq > cur {
                    c.insert(key, seq.to_be_bytes())?;
                }
            }
        }
        SinkOp::Stalled { name, now_ms } => {
            let mut alerts = txn.open_table(schema::ALERTS)?;
            let id = match alerts.last()? {
                Some((k, _)) => u64::from_be_bytes(k.value()) + 1,
                None => 1,
            };
            let row = crate::billing::rows::AlertRow {
                id,
                kind: super::config::STALLED_ALERT.to_owned(),
                tenant: String::new(),
                balance_micros: 0,
                threshold_micros: 0,
                ts_ms: *now_ms,
                delivered_ms: None,
                sink: Some(name.clone()),
            };
            alerts.insert(id.to_be_bytes(), encode(&row)?.as_slice())?;
            tracing::warn!(sink = %name, "sink stalled alert");
        }
    }
    Ok(())
}

/// Every sink row.
pub(crate) fn sinks(r: &ReadTransaction) -> Result<Vec<SinkRow>, StoreError> {
    let Some(t) = open_read(r, SINKS)? else {
        return Ok(Vec::new());
    };
    t.range::<&str>(..)?
        .map(|i| decode(i?.1.value()))
        .collect::<Result<_, _>>()
}

/// `name`'s cursors: data plane number → next seq.
fn cursors(r: &ReadTransaction, name: &str) -> Result<HashMap<u32, u64>, StoreError> {
    let Some(t) = open_read(r, SINK_CURSORS)? else {
        return Ok(HashMap::new());
    };
    t.range((name, [0u8; 4])..=(name, [0xffu8; 4]))?
        .map(|i| {
            let (k, v) = i?;
            Ok((u32::from_be_bytes(k.value().1), u64::from_be_bytes(v.value())))
        })
        .collect()
}

/// Data plane number → id (the number where the row is gone).
fn dataplane_ids(r: &ReadTransaction) -> Result<BTreeMap<u32, String>, StoreError> {
    let mut out = BTreeMap::new();
    if let Some(t) = open_read(r, schema::DATAPLANES)? {
        for item in t.range::<&str>(..)? {
            let row: crate::store::rows::DataplaneRow = decode(item?.1.value())?;
            out.insert(row.num, row.id);
        }
    }
    if let Some(st) = open_read(r, schema::DATAPLANE_STATS)? {
        for item in st.range::<[u8; 4]>(..)? {
            let dp = u32::from_be_bytes(item?.0.value());
            out.entry(dp).or_insert_with(|| dp.to_string());
        }
    }
    Ok(out)
}

/// One record to publish.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Data plane number.
    pub(crate) dp: u32,
    /// Seq at that data plane.
    pub(crate) seq: u64,
    /// `<dataplane id>:<seq>`.
    pub(crate) msg_id: String,
    /// Tenant ("" when unauthenticated).
    pub(crate) tenant: String,
    /// The message ([`message::encode`]).
    pub(crate) payload: Vec<u8>,
}

/// What a sink has left to publish, read in one transaction.
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    /// The next records, in seq order per data plane.
    pub(crate) records: Vec<Pending>,
    /// Pending records in all (counted up to [`COUNT_CAP`]).
    pub(crate) pending: u64,
    /// Arrival time of the oldest pending record, unix ms.
    pub(crate) oldest_ms: Option<u64>,
}

/// Pending records are counted up to this many per data plane.
pub(crate) const COUNT_CAP: usize = 1_000_000;

/// The next at most `limit` records of sink `name` (each data plane gets a
/// share, so one busy data plane does not hold the others back); with
/// `count`, also how many are pending in all (a key scan, capped).
///
/// Empty once the sink is no longer `row` (removed, or removed and added
/// again): its task is about to stop and must not publish from a cursor
/// that is gone.
pub(crate) fn backlog(
    store: &Store,
    row: &SinkRow,
    limit: usize,
    count: bool,
) -> Result<Backlog, StoreError> {
    let name = row.name.as_str();
    let r = store.begin_read()?;
    let mut out = Backlog::default();
    let current = match open_read(&r, SINKS)? {
        Some(t) => t.get(name)?.map(|v| decode::<SinkRow>(v.value())).transpose()?,
        None => None,
    };
    if current.is_none_or(|c| c.created_ms != row.created_ms) {
        return Ok(out);
    }
    let Some(records) = open_read(&r, schema::RECORDS)? else {
        return Ok(out);
    };
    let next = cursors(&r, name)?;
    let ids = dataplane_ids(&r)?;
    let share = (limit / ids.len().max(1)).max(16);
    for (dp, id) in &ids {
        let from = next.get(dp).copied().unwrap_or(0);
        let mut n = 0usize;
        for item in records.range(record_key(*dp, from)..=record_key(*dp, u64::MAX))? {
            let take = out.records.len() < limit && n < share;
            if !take && (!count || n >= COUNT_CAP) {
                break;
            }
            n += 1;
            if !take && n > 1 {
                continue;
            }
            let (k, v) = item?;
            let (_, seq) = split_record_key(&k.value());
            let head: RecordHead = decode(v.value())?;
            if n == 1 {
                out.oldest_ms = Some(out.oldest_ms.map_or(head.ts_ms, |o| o.min(head.ts_ms)));
            }
            if take {
                out.records.push(Pending {
                    dp: *dp,
                    seq,
                    msg_id: message::msg_id(id, seq),
                    tenant: head.tenant.unwrap_or_default(),
                    payload: message::encode(id, seq, v.value())?,
                });
            }
        }
        out.pending += n as u64;
    }
    Ok(out)
}

/// The fields of a stored record the publisher needs besides its JSON.
#[derive(serde::Deserialize)]
struct RecordHead {
    ts_ms: u64,
    #[serde(default)]
    tenant: Option<String>,
}

/// Which records retention must keep because a sink has not acknowledged
/// them yet: loaded once per purge transaction.
pub(crate) struct Hold {
    /// Per sink: data plane → next seq (absent: 0, everything is held).
    sinks: Vec<HashMap<u32, u64>>,
}

impl Hold {
    /// The cursors of every sink, inside a purge.
    pub(crate) fn load(txn: &WriteTransaction) -> Result<Hold, StoreError> {
        let names: Vec<String> = {
            let t = txn.open_table(SINKS)?;
            t.range::<&str>(..)?
                .map(|i| i.map(|(k, _)| k.value().to_owned()))
                .collect::<Result<_, _>>()?
        };
        let c = txn.open_table(SINK_CURSORS)?;
        let mut sinks = Vec::with_capacity(names.len());
        for name in &names {
            let mut m = HashMap::new();
            for item in c.range((name.as_str(), [0u8; 4])..=(name.as_str(), [0xffu8; 4]))? {
                let (k, v) = item?;
                m.insert(u32::from_be_bytes(k.value().1), u64::from_be_bytes(v.value()));
            }
            sinks.push(m);
        }
        Ok(Hold { sinks })
    }

    /// Whether record `seq` of data plane `dp` is not yet acknowledged by every sink.
    pub(crate) fn holds(&self, dp: u32, seq: u64) -> bool {
        self.sinks.iter().any(|s| seq >= s.get(&dp).copied().unwrap_or(0))
    }
}

/// Opens a sink's sealed secret.
pub(crate) fn open_secret(
    vault: &crate::vault::Vault,
    row: &SinkRow,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
    let Some(s) = &row.secret else {
        return Ok(None);
    };
    let hex = |h: &str| {
        crate::store::compile::unhex_vec(h)
            .ok_or_else(|| StoreError::Internal(format!("sink {}: bad hex", row.name)))
    };
    let env = crate::vault::Envelope {
        wrapped_dek: hex(&s.wrapped_dek)?,
        sealed: hex(&s.sealed)?,
    };
    Ok(Some(vault.open_secret(&secret_aad(&row.name), &env)?))
}

/// Re-wraps every sink secret's data key from `old` to `new` (master key rotation).
pub(crate) fn rewrap(
    txn: &WriteTransaction,
    old: &crate::vault::Vault,
    new: &crate::vault::Vault,
) -> Result<usize, StoreError> {
    let mut t = txn.open_table(SINKS)?;
    let mut rows: Vec<SinkRow> = Vec::new();
    for item in t.range::<&str>(..)? {
        rows.push(decode(item?.1.value())?);
    }
    let mut n = 0;
    for row in &mut rows {
        let name = row.name.clone();
        let Some(s) = row.secret.as_mut() else { continue };
        let wrapped = crate::store::compile::unhex_vec(&s.wrapped_dek)
            .ok_or_else(|| StoreError::Internal(format!("sink {name}: bad hex")))?;
        s.wrapped_dek = sluice_contract::crypto::hex(&old.rewrap(new, &secret_aad(&name), &wrapped)?);
        t.insert(name.as_str(), encode(row)?.as_slice())?;
        n += 1;
    }
    Ok(n)
}
