//! End-to-end tests of metering and policy in `sluice-control`: the real
//! binary on 127.0.0.1 and, in `e2e`, a real data plane and the mock provider.
// Test code: a failed unwrap is a failed test.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "control/support.rs"]
mod support;

#[path = "billing/util.rs"]
mod util;

#[path = "billing/state.rs"]
mod state;

#[path = "billing/credit.rs"]
mod credit;

#[path = "billing/e2e.rs"]
mod e2e;
