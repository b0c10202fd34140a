//! `sluice-loadtest mock`: a mock OpenAI/Anthropic provider.
//!
//! It is both the fixture end-to-end tests point the gateway at and the
//! baseline the load tests hit directly, so it speaks the providers' documented
//! wire formats exactly and stays out of the way of the numbers: one monoio
//! runtime per worker thread, each with its own `SO_REUSEPORT` listener, one
//! reused read and write buffer per connection, and no lock or shared counter
//! on the request path (the `--record` inspection is the one opt-in lock).
//!
//! Endpoints: `POST /v1/chat/completions` (OpenAI), `POST /v1/messages`
//! (Anthropic), streamed or not; Gemini's `/v1beta/models/{model}:{method}`
//! (`generateContent`, `streamGenerateContent?alt=sse`, `countTokens`,
//! `embedContent`, `batchEmbedContents`; also under `/v1/`); `GET /v1/models` (Anthropic's shape when the
//! request has `anthropic-version`); `GET /healthz`; `GET /_mock/last` (with
//! `--record`) and `GET /_mock/stats` (`{"requests":N}`; neither they nor
//! `/healthz` are counted or recorded).
//!
//! Per-request headers (flags set the defaults where one exists):
//!
//! | header | effect |
//! |---|---|
//! | `x-mock-tokens: N` | output tokens (`--tokens`); `max_tokens` caps it, and then the completion ends with `length` / `max_tokens` |
//! | `x-mock-ttft-ms: MS` | delay after the head, before the first event (`--ttft-ms`) |
//! | `x-mock-itl-ms: MS` | delay between token events (`--itl-ms`); non-streamed answers wait ttft + itl × (N−1) before the head |
//! | `x-mock-split: event\|coalesce\|bytes:N\|utf8` | how the stream is cut into HTTP chunks, each its own write (`--split`) |
//! | `x-mock-status: CODE` | answer that error (400–599) in the provider's shape; `x-mock-error-type` replaces its type |
//! | `x-mock-truncate-after: K` | send K events and close, without the last chunk (non-streamed: K body bytes) |
//! | `x-mock-reset-after: K` | the same; meant as a TCP reset, sent as a plain close (see `conn`) |
//! | `x-mock-head-delay-ms: MS` | delay before the response head |

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context as _;

mod conn;
mod gemini;
mod io;
mod prompt;
mod request;
mod respond;
mod scripted;
mod server;
mod split;
mod state;
mod stream;
mod text;
mod tls;

#[cfg(test)]
mod tests;

/// Flags of `sluice-loadtest mock`. Knobs set here are defaults that the
/// request headers named in each field's help override per request.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MockArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is
    /// printed to stdout as `listening on http://ADDR`).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub(crate) listen: SocketAddr,
    /// Worker threads, each a monoio runtime with its own SO_REUSEPORT
    /// listener (default: the number of available cores).
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Pin worker i to core `cpus[i % len]` (comma-separated core ids);
    /// empty: no pinning.
    #[arg(long, value_delimiter = ',')]
    pub(crate) cpus: Vec<usize>,
    /// Serve HTTPS with a fresh self-signed certificate for `localhost` and
    /// `127.0.0.1`.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Write the self-signed certificate (PEM) here, so clients can trust it.
    #[arg(long, requires = "tls")]
    pub(crate) cert_out: Option<PathBuf>,
    /// Output tokens per completion (header `x-mock-tokens`); `max_tokens` in
    /// the request caps it.
    #[arg(long, default_value_t = 16)]
    pub(crate) tokens: u32,
    /// Delay before the first SSE event, after the response head
    /// (header `x-mock-ttft-ms`).
    #[arg(long, default_value_t = 0)]
    pub(crate) ttft_ms: u64,
    /// Delay between token events; 0 writes all events back to back in one
    /// write (header `x-mock-itl-ms`).
    #[arg(long, default_value_t = 0)]
    pub(crate) itl_ms: u64,
    /// How streams are cut into HTTP chunks and writes: `event`, `coalesce`,
    /// `bytes:N` or `utf8` (header `x-mock-split`). Default: one chunk per
    /// event, written together when no delay separates them.
    #[arg(long, value_parser = split::Split::parse_arg)]
    pub(crate) split: Option<split::Split>,
    /// Answer 401 in the provider's shape unless the request carries
    /// `Authorization: Bearer KEY` (OpenAI; newer Anthropic SDKs too) or
    /// `x-api-key: KEY` (Anthropic).
    #[arg(long)]
    pub(crate) require_key: Option<String>,
    /// Keep the last request (method, path, headers, body) for
    /// `GET /_mock/last`. Off by default: it takes a lock per request.
    #[arg(long)]
    pub(crate) record: bool,
    /// Answer every provider request with this error status (400–599) in
    /// the provider's shape, unless `x-mock-status` says otherwise: a
    /// target that fails for every client, for fault matrices.
    #[arg(long, value_parser = clap::value_parser!(u16).range(400..=599))]
    pub(crate) status: Option<u16>,
    /// Seconds sent as `retry-after` on 429, 503 and 529 answers.
    #[arg(long, default_value_t = 1)]
    pub(crate) retry_after: u64,
    /// Silence before every response head, ms, unless `x-mock-head-delay-ms`
    /// says otherwise: a target slower than a first-byte limit.
    #[arg(long, default_value_t = 0)]
    pub(crate) head_delay_ms: u64,
    /// Run on the epoll driver instead of io_uring (like
    /// `MONOIO_FORCE_LEGACY_DRIVER=1`, without touching the environment).
    #[arg(long)]
    pub(crate) epoll: bool,
}

/// A started mock: its bound address and its worker threads.
#[derive(Debug)]
pub(crate) struct MockServer {
    /// The address every worker listens on.
    pub(crate) addr: SocketAddr,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl MockServer {
    /// Blocks until every worker has stopped (they only stop on error).
    pub(crate) fn join(self) -> anyhow::Result<()> {
        for t in self.threads {
            match t.join() {
                Ok(r) => r?,
                Err(_) => anyhow::bail!("mock worker panicked"),
            }
        }
        Ok(())
    }
}

/// Entry point of `sluice-loadtest mock`.
pub(crate) fn main(args: MockArgs) -> anyhow::Result<()> {
    let server = spawn(&args)?;
    let scheme = if args.tls { "https" } else { "http" };
    tracing::info!(addr = %server.addr, tls = args.tls, "mock listening");
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {scheme}://{}", server.addr)?;
    out.flush()?;
    drop(out);
    server.join()
}

/// Writes the certificate (`--cert-out`), binds every worker's listener and
/// starts serving; returns once all are bound, so the address is usable at once.
pub(crate) fn spawn(args: &MockArgs) -> anyhow::Result<MockServer> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let tls = if args.tls {
        let (cfg, pem) = tls::self_signed()?;
        if let Some(path) = &args.cert_out {
            std::fs::write(path, &pem).with_context(|| format!("writing {}", path.display()))?;
        }
        Some(cfg)
    } else {
        None
    };
    let shared = Arc::new(state::Shared::new(args, workers, tls));
    let mut threads = Vec::with_capacity(workers);
    let mut addr = args.listen;
    for id in 0..workers {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let core = (!args.cpus.is_empty()).then(|| args.cpus[id % args.cpus.len()]);
        let shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("mock-{id}"))
            .spawn(move || server::worker(id, addr, core, shared, tx))
            .context("spawning a mock worker")?;
        threads.push(handle);
        // Worker 0 resolves port 0; the others then share its port.
        match rx.recv() {
            Ok(Ok(bound)) => addr = bound,
            Ok(Err(e)) => return Err(e.context(format!("mock worker {id} failed to start"))),
            Err(_) => anyhow::bail!("mock worker {id} exited before binding"),
        }
    }
    Ok(MockServer { addr, threads })
}
