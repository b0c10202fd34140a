//! The data plane's records file (one JSON object per line), read by
//! polling: records are written by a background thread, so a test waits for
//! the line it expects instead of sleeping.

use crate::WAIT;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A records file.
#[derive(Clone, Debug)]
pub struct Records {
    path: PathBuf,
}

impl Records {
    /// Reads the records at `path`.
    pub fn new(path: PathBuf) -> Records {
        Records { path }
    }

    /// The raw bytes of the file (empty if it does not exist yet).
    pub fn raw(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }

    /// Every complete line parsed as JSON; panics on a line that is not JSON.
    pub fn all(&self) -> Vec<Value> {
        let raw = self.raw();
        let text = String::from_utf8(raw).expect("the records file is UTF-8");
        // A line without its newline may still be being written.
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("record is not JSON ({e}): {l}")))
            .collect()
    }

    /// Waits (up to [`WAIT`]) for a record matching `pred` and returns it.
    #[track_caller]
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_within(what, WAIT, pred)
    }

    /// Waits up to `timeout` for a record matching `pred`.
    #[track_caller]
    pub fn wait_for_within(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self.all().into_iter().find(|r| pred(r)) {
                return r;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no record {what} within {timeout:?}; records so far:\n{}",
                    self.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for at least `n` records and returns them all.
    #[track_caller]
    pub fn wait_count(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            if Instant::now() >= deadline {
                panic!("expected {n} records within {WAIT:?}; got:\n{}", self.dump());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The file as text, for failure messages.
    pub fn dump(&self) -> String {
        String::from_utf8_lossy(&self.raw()).into_owned()
    }
}

/// Checks the fields every record must have, with the right JSON types.
#[track_caller]
pub fn assert_shape(r: &Value) {
    let obj = r
        .as_object()
        .unwrap_or_else(|| panic!("record is not an object: {r}"));
    for field in [
        "ts_ms",
        "tenant",
        "key_id",
        "route",
        "model",
        "upstream",
        "stream",
        "status",
        "outcome",
        "error",
        "attempts",
        "bytes_in",
        "bytes_out",
        "ttfb_us",
        "total_us",
        "events",
        "usage",
    ] {
        assert!(obj.contains_key(field), "record lacks {field:?}: {r}");
    }
    assert!(r["ts_ms"].is_u64(), "ts_ms: {r}");
    assert!(r["status"].is_u64(), "status: {r}");
    assert!(r["bytes_in"].is_u64() && r["bytes_out"].is_u64(), "bytes: {r}");
    assert!(r["stream"].is_boolean(), "stream: {r}");
    assert!(
        r["route"].is_string() && r["outcome"].is_string(),
        "route/outcome: {r}"
    );
    if let Some(u) = r["usage"].as_object() {
        for field in [
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_creation_tokens",
            "reasoning_tokens",
        ] {
            assert!(u.get(field).is_some_and(Value::is_u64), "usage.{field}: {r}");
        }
    }
}
