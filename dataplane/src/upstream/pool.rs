//! A worker's idle upstream connections, keyed by scheme, host and port.

use super::Conn;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Idle connections of one worker. Single-threaded by construction.
pub struct Pool {
    idle: HashMap<Arc<str>, Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    /// A pool keeping at most `max_idle` connections per upstream, each for at
    /// most `idle_timeout`.
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: HashMap::new(),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently returned live connection to `key`, if any.
    pub fn take(&mut self, key: &str) -> Option<Conn> {
        let list = self.idle.get_mut(key)?;
        let now = Instant::now();
        while let Some(idle) = list.pop() {
            if now.duration_since(idle.since) < self.idle_timeout {
                return Some(idle.conn);
            }
            // Older entries sit below; they are older still.
            list.clear();
        }
        None
    }

    /// Returns a connection whose last response was read to its end.
    pub fn put(&mut self, key: &Arc<str>, conn: Conn) {
        let list = self.idle.entry(key.clone()).or_default();
        if list.len() >= self.max_idle {
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Idle connections held, all upstreams together.
    pub fn len(&self) -> usize {
        self.idle.values().map(Vec::len).sum()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
