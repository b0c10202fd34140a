//! Wire codecs. They do no I/O: each reads from a borrowed byte slice, keeps
//! what little state it needs between reads, and never panics on any input.

pub mod accept;
pub mod chunked;
pub mod delta;
pub mod encoding;
pub mod head;
pub mod sse;
pub mod usage;
