//! Sluice data plane: a thread-per-core io_uring gateway for LLM APIs.
//!
//! The library owns the contract the data plane enforces — snapshot and record
//! types, the codecs, the policy engine — so that the control plane compiles and
//! validates with the very code that will run it. The binary (`main.rs`) wires
//! it to sockets.
//!
//! Layout, in the order a request meets it:
//! - [`server`]: workers, listeners, the HTTP/1.1 connection loop.
//! - [`codec`]: request/response heads, chunked bodies, SSE framing, usage.
//! - [`proxy`]: the request's phases (auth, parse, route, forward, stream).
//! - [`upstream`]: dialling providers, TLS, per-worker pools.
//! - [`respond`]: every gateway error becomes a response here, and only here.
//! - [`record`], [`sink`]: the metadata record and where it goes.
//! - [`snapshot`], [`crypto`]: what the data plane serves, and its secrets.
//! - [`agent`]: the thread that talks to the control plane.
//! - [`policy`]: token counting, PII detection, rules.

pub mod agent;
pub mod config;
pub mod current;
pub mod metrics;
pub mod proxy;
pub mod respond;
pub mod server;
pub mod sink;
pub mod upstream;
