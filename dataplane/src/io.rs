//! The data plane's I/O helpers, in one room: appending reads, the gathered
//! write (the crate's one `unsafe`), each worker's spare buffers, the
//! client side of a connection (plain or TLS) with its timed writes and its
//! watch for a client that leaves. Phases above this never handle a socket's buffer
//! bookkeeping themselves.

pub mod client;
pub mod gather;
pub mod h2_stream;
pub mod h2_tls;
pub mod read;
pub mod spares;
pub mod stream;
pub mod tls;
