//! The response cache's store: one per data plane, shared by its workers,
//! in memory only.
//!
//! Entries live in a moka `sync::Cache` bounded by a weigher in bytes (the
//! body as stored plus a fixed overhead per entry), each with its rule's
//! TTL. A look-up takes no lock: moka's reads go through its concurrent
//! hash table and record the access in a bounded lock-free buffer; the
//! housekeeping that applies them runs under a `try_lock` that a reader
//! never waits on. Nothing here is ever written to disk, to a snapshot,
//! to a record or to a log: an entry is the provider's answer, as
//! private as the prompt.
//!
//! When a snapshot drops a tenant, turns its cache off or changes its rules
//! ([`ResponseCache::on_publish`]), every entry of that tenant is
//! invalidated at once (no look-up returns it after the publish) and freed
//! before the publish returns. The rule's `since_ms` is also in every key,
//! so an entry made under an older rule could never be found again anyway.

use bytes::Bytes;
use moka::sync::Cache;
use sluice_contract::cache::chat::Events;
use sluice_contract::cache::CacheKey;
use sluice_contract::record::Usage;
use sluice_contract::snapshot::Index;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default bound on the bytes held per data plane.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes counted per entry beyond its body: the key, the entry, moka's
/// bookkeeping, as measured (`tests::memory_per_entry`, BENCHMARKS.md: 681
/// bytes beyond a 1,000-byte body), so that the bound holds in RSS.
pub const ENTRY_OVERHEAD: u32 = 704;
/// Largest body one entry may hold.
pub const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;

/// A response as stored: in the form it came, and in the other form when
/// it converts faithfully (computed once, at fill, and weighed with it), so
/// that a hit in either form copies and converts nothing.
#[derive(Debug, Default)]
pub struct Stored {
    /// The non-streamed body (decoded JSON).
    pub json: Option<Bytes>,
    /// The stream's events (shared with the hits replaying them).
    pub events: Option<Arc<Events>>,
}

impl Stored {
    /// Bytes held.
    pub fn weight(&self) -> usize {
        self.json.as_ref().map_or(0, |b| b.len()) + self.events.as_ref().map_or(0, |e| e.weight())
    }
}

/// One cached response.
#[derive(Debug)]
pub struct Entry {
    /// Whose it is: invalidation drops a tenant's entries by this.
    pub tenant: Arc<str>,
    /// How long it lives.
    pub ttl: Duration,
    /// The response.
    pub body: Stored,
    /// The provider's usage for it.
    pub usage: Option<Usage>,
    /// The price it was settled at (values a hit's saving).
    pub price: Option<sluice_contract::quota::price::Price>,
    /// When it was stored.
    pub stored_at: Instant,
}

struct PerEntryTtl;

impl moka::Expiry<CacheKey, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &CacheKey, value: &Arc<Entry>, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Counters of the cache (Prometheus).
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Look-ups that found an entry.
    pub hits: AtomicU64,
    /// Look-ups that found none.
    pub misses: AtomicU64,
    /// Entries stored.
    pub fills: AtomicU64,
    /// Responses not stored: incomplete, unsuccessful, too large, or not
    /// in a form the cache keeps.
    pub skipped: AtomicU64,
    /// Tenants whose entries a snapshot dropped.
    pub tenant_drops: AtomicU64,
}

/// The data plane's response cache.
pub struct ResponseCache {
    entries: Cache<CacheKey, Arc<Entry>>,
    max_bytes: u64,
    /// Counters.
    pub stats: CacheStats,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for ResponseCache {
    fn default() -> Self {
        ResponseCache::new(DEFAULT_MAX_BYTES)
    }
}

impl ResponseCache {
    /// A cache holding at most `max_bytes` (entries weighed as stored).
    pub fn new(max_bytes: u64) -> ResponseCache {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_k: &CacheKey, e: &Arc<Entry>| {
                let w = e.body.weight().saturating_add(e.tenant.len());
                u32::try_from(w)
                    .unwrap_or(u32::MAX)
                    .saturating_add(ENTRY_OVERHEAD)
            })
            .expire_after(PerEntryTtl)
            .support_invalidation_closures()
            .build();
        ResponseCache {
            entries,
            max_bytes,
            stats: CacheStats::default(),
        }
    }

    /// The entry under `key`, if one lives.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let found = self.entries.get(key);
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores `entry` under `key` (replacing what was there); an entry
    /// larger than [`MAX_ENTRY_BYTES`] or than the whole bound is not kept.
    pub fn insert(&self, key: CacheKey, entry: Entry) {
        let w = entry.body.weight();
        if w > MAX_ENTRY_BYTES || w as u64 + u64::from(ENTRY_OVERHEAD) > self.max_bytes {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.entries.insert(key, Arc::new(entry));
        self.stats.fills.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes a response that was not stored.
    pub fn skipped(&self) {
        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops every entry of `tenant`: none is returned from now on, and
    /// their memory is freed before this returns. Off the hot path.
    pub fn drop_tenant(&self, tenant: &str) {
        let t: Arc<str> = Arc::from(tenant);
        if self
            .entries
            .invalidate_entries_if(move |_, e| e.tenant == t)
            .is_err()
        {
            // Only when closures are unsupported, which the builder enables.
            self.entries.invalidate_all();
        }
        self.stats.tenant_drops.fetch_add(1, Ordering::Relaxed);
        self.entries.run_pending_tasks();
    }

    /// Drops the entries of every tenant that `new` no longer caches as
    /// `old` did (deleted, cache turned off, rules changed).
    pub fn on_publish(&self, old: &Index, new: &Index) {
        for (tenant, rules) in &old.caches {
            if new.caches.get(tenant) != Some(rules) {
                self.drop_tenant(tenant);
            }
        }
    }

    /// Applies moka's pending bookkeeping (evictions, expiries); for
    /// metrics and tests.
    pub fn sync(&self) {
        self.entries.run_pending_tasks();
    }

    /// Entries held (after [`ResponseCache::sync`]).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Bytes held, as weighed (after [`ResponseCache::sync`]).
    pub fn weighted_bytes(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// The bound on [`ResponseCache::weighted_bytes`].
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Entries of `tenant` (a scan: tests and metrics only).
    pub fn tenant_entries(&self, tenant: &str) -> usize {
        self.entries.iter().filter(|(_, e)| &*e.tenant == tenant).count()
    }

    /// Appends the cache's metrics in Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        self.sync();
        let s = &self.stats;
        let rows: [(&str, &str, &str, u64); 8] = [
            (
                "sluice_cache_hits_total",
                "counter",
                "Response cache look-ups that found an entry.",
                s.hits.load(Ordering::Relaxed),
            ),
            (
                "sluice_cache_misses_total",
                "counter",
                "Response cache look-ups that found none.",
                s.misses.load(Ordering::Relaxed),
            ),
            (
                "sluice_cache_fills_total",
                "counter",
                "Responses stored in the cache.",
                s.fills.load(Ordering::Relaxed),
            ),
            (
                "sluice_cache_skipped_total",
                "counter",
                "Responses of cached routes not stored (incomplete, failed, too large, other form).",
                s.skipped.load(Ordering::Relaxed),
            ),
            (
                "sluice_cache_tenant_drops_total",
                "counter",
                "Times a snapshot dropped a tenant's entries.",
                s.tenant_drops.load(Ordering::Relaxed),
            ),
            (
                "sluice_cache_entries",
                "gauge",
                "Entries in the response cache.",
                self.entry_count(),
            ),
            (
                "sluice_cache_bytes",
                "gauge",
                "Bytes held by the response cache, as weighed.",
                self.weighted_bytes(),
            ),
            (
                "sluice_cache_max_bytes",
                "gauge",
                "Bound on the response cache's bytes.",
                self.max_bytes,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    }
}

#[cfg(test)]
mod tests;
