//! Record sinks: every ingested record published, exactly once, to a NATS
//! JetStream stream operators already run.
//!
//! - [`config`]: a sink as stored (`sink add nats ...`), its secret sealed
//!   under the master key. [`message`]: the JSON a record becomes (schema
//!   version 1, no content ever).
//! - [`cursor`]: the durable cursor per (sink, data plane) in redb, advanced
//!   only after JetStream acknowledged; what retention must keep for it.
//! - [`publisher`]: one task per sink. [`nats`]: connecting, the stream.
//! - [`stats`]: lag and error counters for `/metrics` and `sink list`.
//! - [`supervisor`]: the thread and runtime that start and stop publishers.
//!
//! # Exactly once, in order
//! Records are keyed (data plane, seq) and reach control in seq order per
//! data plane. A publisher publishes the records past its cursor one at a
//! time, each with `Nats-Msg-Id: <data plane>:<seq>`, waiting for the
//! acknowledgment before the next, and commits the cursor after each batch.
//! A crash or a lost connection between an acknowledgment and the commit
//! replays at most one batch: the engine drops a replay within the stream's
//! duplicate window, and beyond it the publisher finds the batch in the
//! stream's tail (the ids of its last messages, read at every connect) and
//! skips it. This holds while Sluice is the only writer of the stream.
//! While the engine is away records keep landing in redb; retention keeps
//! every record some sink has not acknowledged (records of a deleted tenant
//! are erased all the same), and a sink behind for longer than its limit
//! raises a `sink_stalled` alert.

pub(crate) mod config;
pub(crate) mod cursor;
pub(crate) mod message;
pub(crate) mod nats;
pub(crate) mod publisher;
pub(crate) mod stats;
pub(crate) mod supervisor;
