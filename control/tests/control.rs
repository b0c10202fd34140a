//! End-to-end tests of `sluice-control`: the real binary, on 127.0.0.1.
// Test code: a failed unwrap is a failed test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "control/support.rs"]
mod support;

#[path = "control/round_trip.rs"]
mod round_trip;

#[path = "control/refusals.rs"]
mod refusals;

#[path = "control/records.rs"]
mod records;

#[path = "control/snapshots.rs"]
mod snapshots;

#[path = "control/files.rs"]
mod files;

#[path = "control/tls.rs"]
mod tls;

#[path = "control/tokens.rs"]
mod tokens;
