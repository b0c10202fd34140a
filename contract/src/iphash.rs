//! Client IPs, hashed: HMAC-SHA256 under a salt that lives only in this
//! process's memory and is replaced at each UTC midnight, the old one
//! destroyed. Hashes from the same day can be compared (abuse analysis);
//! no raw address is ever recorded, and once a day has passed its hashes
//! cannot be linked back to addresses even with the process's memory.

use arc_swap::ArcSwap;
use ring::hmac;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const DAY_SECS: u64 = 86_400;

/// The day's salt, shared by all workers.
pub struct IpHasher {
    day: AtomicU64,
    key: ArcSwap<hmac::Key>,
    /// Bumped after each new salt: a hash made under an older one is stale.
    generation: AtomicU64,
}

impl Default for IpHasher {
    fn default() -> Self {
        IpHasher {
            day: AtomicU64::new(u64::MAX),
            key: ArcSwap::from_pointee(fresh_key()),
            generation: AtomicU64::new(0),
        }
    }
}

/// One connection's client IP hash, kept for its later requests: a
/// connection has one peer, and an HMAC per request is most of the cost of
/// a record. Stale once the salt is replaced.
#[derive(Debug, Default)]
pub struct IpHashMemo {
    hash: Option<(u64, String)>,
}

impl std::fmt::Debug for IpHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpHasher(..)")
    }
}

fn fresh_key() -> hmac::Key {
    // A failing system RNG leaves a key nobody knows either way: the bytes
    // are zeroed on drop by `Zeroizing`.
    let salt = crate::crypto::random_bytes::<32>().unwrap_or_else(|_| zeroize::Zeroizing::new([0x5a; 32]));
    hmac::Key::new(hmac::HMAC_SHA256, &salt[..])
}

/// The UTC day number (days since the Unix epoch), which names the salt.
fn today() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now / DAY_SECS
}

impl IpHasher {
    /// Lower-case hex HMAC of `ip` under today's salt.
    pub fn hash(&self, ip: IpAddr) -> String {
        self.hash_at(ip, today())
    }

    /// [`IpHasher::hash`], remembered in `memo` (which must only ever see
    /// one `ip`: one connection's) while the salt stays the same.
    pub fn hash_remembered(&self, ip: IpAddr, memo: &mut IpHashMemo) -> String {
        self.rotate(today());
        // Read before the key: a hash tagged with it was made under this
        // salt or a later one, never an earlier one.
        let generation = self.generation.load(Ordering::Acquire);
        match &memo.hash {
            Some((g, hash)) if *g == generation => hash.clone(),
            _ => {
                let hash = self.sign(ip);
                memo.hash = Some((generation, hash.clone()));
                hash
            }
        }
    }

    fn hash_at(&self, ip: IpAddr, day: u64) -> String {
        self.rotate(day);
        self.sign(ip)
    }

    /// Replaces the salt when `day` is not the salt's day.
    fn rotate(&self, day: u64) {
        if self.day.load(Ordering::Acquire) != day {
            // Whoever swaps the day first replaces the key; a loser of the
            // race uses the winner's. The old key is dropped (destroyed) once
            // no request holds it.
            let prev = self.day.swap(day, Ordering::AcqRel);
            if prev != day {
                self.key.store(Arc::new(fresh_key()));
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn sign(&self, ip: IpAddr) -> String {
        let key = self.key.load();
        let tag = match ip {
            IpAddr::V4(v4) => hmac::sign(&key, &v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => hmac::sign(&key, &v4.octets()),
                None => hmac::sign(&key, &v6.octets()),
            },
        };
        crate::crypto::hex(tag.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_within_a_day_and_unlinkable_across_days() {
        let h = IpHasher::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        let day1 = h.hash_at(a, 100);
        assert_eq!(day1.len(), 64);
        assert_eq!(h.hash_at(a, 100), day1);
        assert_eq!(h.hash_at(mapped, 100), day1);
        assert_ne!(h.hash_at("203.0.113.8".parse().unwrap(), 100), day1);
        // Hex digits only: the address (dotted, or any part of it with its
        // dots) cannot appear. (Checking for "203" alone failed ~1.5% of
        // runs: a random hex string contains it that often.)
        assert!(day1.bytes().all(|b| b.is_ascii_hexdigit()), "{day1}");
        assert!(!day1.contains("203.0"));
        let day2 = h.hash_at(a, 101);
        assert_ne!(day2, day1);
        assert_ne!(h.hash_at(a, 100), day1, "yesterday's salt is gone");
    }

    #[test]
    fn a_remembered_hash_is_the_hash_until_the_salt_changes() {
        let h = IpHasher::default();
        let a: IpAddr = "198.51.100.4".parse().unwrap();
        let mut memo = IpHashMemo::default();
        let first = h.hash_remembered(a, &mut memo);
        assert_eq!(first, h.hash(a));
        assert_eq!(h.hash_remembered(a, &mut memo), first);
        // A new salt (another day, then back): the memo is not used.
        h.rotate(7);
        let fresh = h.hash(a);
        assert_ne!(fresh, first);
        assert_eq!(h.hash_remembered(a, &mut memo), h.hash(a));
        assert_ne!(h.hash_remembered(a, &mut memo), first);
    }
}
