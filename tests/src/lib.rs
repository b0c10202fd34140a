//! Shared helpers for Sluice's end-to-end tests.
//!
//! The tests start the real binaries (`sluice-dataplane` and
//! `sluice-loadtest mock`, built by `cargo build --workspace --bins`) on
//! 127.0.0.1 with port 0, learn the ports from the lines the binaries print,
//! and talk to them with a raw HTTP/1.1 client that can send any bytes at
//! all. Every process is killed when its handle drops, so a failing test
//! leaves nothing running.
//!
//! Determinism on a loaded two-core machine: nothing here sleeps and hopes.
//! Waits poll for a condition under a generous deadline ([`WAIT`]), and no
//! assertion is about how long something took.

// This crate exists only to serve tests: a helper that cannot do its job is
// a failed test, so panicking with a clear message is the right response.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod bins;
pub mod control;
pub mod fake;
pub mod gateway;
pub mod http;
pub mod metering;
pub mod mock;
pub mod nats;
pub mod privacy;
pub mod proc;
pub mod records;
pub mod snapshot;
pub mod sse;
pub mod stack;
pub mod tmp;
pub mod vocab;

pub use gateway::{Driver, Gateway, GatewayOpts};
pub use http::{Conn, Req, Response};
pub use mock::{Mock, MockOpts};
pub use records::Records;
pub use snapshot::Snapshot;
pub use stack::Stack;

use std::time::Duration;

/// The deadline for anything a test waits for (a process to start, a record
/// to appear, a response to arrive). Generous on purpose: a loaded CI
/// machine may be slow, and a deadline only matters when something is wrong.
pub const WAIT: Duration = Duration::from_secs(30);

/// Defines, for each named `fn name(driver: Driver)`, a module `name` with
/// two tests: `name::uring` (the default FusionDriver: io_uring where the
/// kernel has it) and `name::epoll` (`MONOIO_FORCE_LEGACY_DRIVER=1`).
#[macro_export]
macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn uring() {
                    super::$name($crate::Driver::Uring)
                }

                #[test]
                fn epoll() {
                    super::$name($crate::Driver::Epoll)
                }
            }
        )*
    };
}
