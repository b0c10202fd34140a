//! Sluice data plane: a thread-per-core io_uring gateway for LLM APIs.
//!
//! What the data plane and the control plane agree on (snapshot and record
//! types, crypto, policy, prices, the I/O-free codecs) is the
//! `sluice-contract` crate; this one wires it to sockets, threads and the
//! control plane. The binary (`main.rs`) reads the configuration and starts
//! it.
//!
//! Layout, from the socket up:
//! - [`server`]: worker threads, listeners, and the connection loop that
//!   owns each connection (keep-alive, pipelining, its read buffer).
//! - [`proxy`]: a request's phases over one context, in the order a request
//!   meets them: classify → authenticate → read body → admit → route →
//!   upstream request → response filter → logging (see its docs).
//! - [`respond`]: every gateway error becomes a response here, and only here.
//! - [`upstream`]: dialling providers, TLS, per-worker pools.
//! - [`io`]: I/O helpers in one room (appending reads, the gathered write,
//!   spare buffers, the client's half of a connection and its timed writes).
//! - [`worker`]: a worker's state, shared by its connection tasks.
//! - [`current`]: the snapshot being served (compiled, resolved, published).
//! - [`cache`]: the response cache's store (memory only, bounded in bytes).
//! - [`sink`]: where records go; [`agent`]: the thread that talks to the
//!   control plane; [`metrics`], [`config`].

pub mod agent;
pub mod cache;
pub mod config;
pub mod current;
pub mod io;
pub mod metrics;
pub mod proxy;
pub mod respond;
pub mod server;
pub mod sink;
#[cfg(test)]
mod testing;
pub mod trace;
pub mod upstream;
pub mod worker;
