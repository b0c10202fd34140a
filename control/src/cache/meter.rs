//! What one record adds to the cache and compression rollup (see
//! [`super::stats`]); kept apart from the rollup's reading and writing so
//! that ingest can compute it without depending on them.

use sluice_contract::cache::CacheUse;
use sluice_contract::record::Record;

/// What one record adds to the rollup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheMeter {
    /// The cache was looked up (or skipped by `no-cache`) for it.
    pub(crate) lookups: u64,
    /// It was a hit.
    pub(crate) hits: u64,
    /// What the hit saved, micro-dollars.
    pub(crate) saved_micros: u64,
    /// Response body bytes before compression (compressed responses only).
    pub(crate) plain_bytes: u64,
    /// Response body bytes after compression.
    pub(crate) sent_bytes: u64,
}

impl CacheMeter {
    /// The meter of `record`.
    pub(crate) fn of(record: &Record) -> CacheMeter {
        CacheMeter {
            lookups: u64::from(record.cache.is_some()),
            hits: u64::from(record.cache == Some(CacheUse::Hit)),
            saved_micros: record.saved_micros.unwrap_or(0),
            plain_bytes: record.body_plain_bytes.unwrap_or(0),
            sent_bytes: record.body_sent_bytes.unwrap_or(0),
        }
    }

    pub(crate) fn fields(&self) -> [u64; 5] {
        [
            self.lookups,
            self.hits,
            self.saved_micros,
            self.plain_bytes,
            self.sent_bytes,
        ]
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == CacheMeter::default()
    }

    pub(crate) fn add(&mut self, o: &CacheMeter) {
        self.lookups = self.lookups.saturating_add(o.lookups);
        self.hits = self.hits.saturating_add(o.hits);
        self.saved_micros = self.saved_micros.saturating_add(o.saved_micros);
        self.plain_bytes = self.plain_bytes.saturating_add(o.plain_bytes);
        self.sent_bytes = self.sent_bytes.saturating_add(o.sent_bytes);
    }

    pub(crate) fn pack(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        for (i, v) in self.fields().into_iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    pub(crate) fn unpack(v: &[u8; 40]) -> CacheMeter {
        let f = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[i * 8..i * 8 + 8]);
            u64::from_be_bytes(b)
        };
        CacheMeter {
            lookups: f(0),
            hits: f(1),
            saved_micros: f(2),
            plain_bytes: f(3),
            sent_bytes: f(4),
        }
    }
}
