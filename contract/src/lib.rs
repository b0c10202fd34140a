//! What Sluice's two processes agree on, with no runtime and no I/O.
//!
//! The data plane enforces it and the control plane validates with it, so a
//! policy, a route or a price the control plane accepts is one the data
//! plane can serve. Nothing here opens a socket, reads a file, resolves a
//! name or spawns a thread: the network and the disk are the callers'
//! business, and everything here is tested with plain byte slices.
//!
//! - [`dialect`]: the one type for an API's wire shape.
//! - [`snapshot`]: what a data plane serves (wire form and its compile step).
//! - [`record`]: the metadata record of one request.
//! - [`crypto`], [`iphash`]: sealing secrets, hashing client addresses.
//! - [`policy`]: request reading, token counting, rules, PII.
//! - [`quota`]: rate limits, prepaid credit and prices, with atomics only.
//! - [`codec`]: HTTP/1 heads and chunked bodies, SSE framing, usage and
//!   delta readers.
//! - [`cut`]: the SSE event cut (the usage-only event removed from a stream).
//! - [`rewrite`]: body rewrites (model alias, usage request).
//! - [`translate`]: requests, responses, streams and errors between dialects.

pub mod cache;
pub mod codec;
pub mod crypto;
pub mod cut;
pub mod dialect;
pub mod health;
pub mod iphash;
pub mod policy;
pub mod quota;
pub mod record;
pub mod rewrite;
pub mod snapshot;
#[cfg(test)]
mod testing;
pub mod translate;
