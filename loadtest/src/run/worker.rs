//! One load worker: a thread with its own monoio runtime, its own share of
//! the schedule (or of the closed-loop users) and its own connections.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hdrhistogram::Histogram;
use monoio::blocking::DefaultThreadPool;

use super::cancel::{or_cancel, Cancel};
use super::client::{exchange, Clock, Conn, Connector, Response};
use super::pace::Pacer;
use super::request::{Api, Requests};
use super::schedule::{Arrivals, Schedule};
use super::stats::{histogram, ErrorKind, Outcome, Stats};

/// Open or closed loop.
#[derive(Clone, Debug)]
pub(crate) enum Load {
    /// Requests start on a schedule, whatever the responses do.
    Open {
        rate: f64,
        arrivals: Arrivals,
        seed: u64,
    },
    /// This many users, each sending its next request when the last ends;
    /// the users start spread evenly over `ramp`.
    Closed { concurrency: usize, ramp: Duration },
}

/// Counters the progress line reads while the run goes on.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) sent: AtomicU64,
    pub(crate) ok: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) inflight: AtomicU64,
    /// Closed loop with `--requests`: request numbers claimed so far.
    pub(crate) claimed: AtomicU64,
}

/// What a worker sends to the main thread.
#[derive(Debug)]
pub(crate) enum Msg {
    /// TTFT (µs) of the requests that finished since the last one.
    Ttft(Box<Histogram<u64>>),
    Done(Box<Done>),
    Failed(String),
}

/// A worker's final result.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) stats: Stats,
    /// When it stopped issuing new requests, ns since the start.
    pub(crate) dispatch_end_ns: u64,
}

/// Everything a worker needs; shared parts are `Arc`s.
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) index: usize,
    pub(crate) workers: usize,
    pub(crate) load: Load,
    pub(crate) duration: Option<Duration>,
    pub(crate) requests: Option<u64>,
    /// Open loop: this worker's share of `--max-inflight`.
    pub(crate) max_inflight: usize,
    pub(crate) timeout: Duration,
    pub(crate) drain: Duration,
    pub(crate) api: Api,
    pub(crate) stream: bool,
    pub(crate) reqs: Arc<Requests>,
    pub(crate) connector: Arc<dyn Fn() -> anyhow::Result<Connector> + Send + Sync>,
    pub(crate) clock: Clock,
    pub(crate) precise: bool,
    pub(crate) pin: Option<core_affinity::CoreId>,
    pub(crate) live: Arc<Live>,
    pub(crate) tx: crossbeam_channel::Sender<Msg>,
}

/// Starts the worker thread.
pub(crate) fn spawn(plan: Plan) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("load-{}", plan.index))
        .spawn(move || {
            let tx = plan.tx.clone();
            if let Err(e) = run(plan) {
                let _ = tx.send(Msg::Failed(format!("{e:#}")));
            }
        })
}

fn run(plan: Plan) -> anyhow::Result<()> {
    if let Some(core) = plan.pin {
        core_affinity::set_for_current(core);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .attach_thread_pool(Box::new(DefaultThreadPool::new(1)))
        .build()?;
    let connector = (plan.connector)()?;
    let tx = plan.tx.clone();
    let done = rt.block_on(async move {
        let w = Rc::new(Worker {
            pacer: Pacer::new(plan.clock, plan.precise),
            plan,
            connector,
            pool: RefCell::new(Vec::new()),
            inflight: Cell::new(0),
            stats: RefCell::new(Stats::default()),
            ttft: RefCell::new(histogram()),
            last_flush_ns: Cell::new(0),
            cancel: Cancel::default(),
        });
        match w.plan.load.clone() {
            Load::Open { rate, arrivals, seed } => open_loop(&w, rate, arrivals, seed).await,
            Load::Closed { concurrency, ramp } => closed_loop(&w, concurrency, ramp).await,
        }
        let dispatch_end_ns = w.plan.clock.now_ns();
        let deadline = dispatch_end_ns + w.plan.drain.as_nanos() as u64;
        while w.inflight.get() > 0 && w.plan.clock.now_ns() < deadline {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        // Stop what is left (they count as timeouts) and every parked task,
        // then give the driver a moment to close their sockets: tasks
        // still parked when the runtime drops would leak them.
        w.cancel.fire();
        let stop = w.plan.clock.now_ns() + 1_000_000_000;
        while w.inflight.get() > 0 && w.plan.clock.now_ns() < stop {
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
        w.pool.borrow_mut().clear();
        monoio::time::sleep(Duration::from_millis(10)).await;
        flush_ttft(&w);
        let stats = w.stats.replace(Stats::default());
        Done {
            stats,
            dispatch_end_ns,
        }
    });
    let _ = tx.send(Msg::Done(Box::new(done)));
    Ok(())
}

struct Worker {
    plan: Plan,
    connector: Connector,
    pacer: Pacer,
    /// Idle keep-alive connections, most recently used last.
    pool: RefCell<Vec<Conn>>,
    inflight: Cell<usize>,
    stats: RefCell<Stats>,
    /// TTFT since the last flush to the progress line.
    ttft: RefCell<Histogram<u64>>,
    last_flush_ns: Cell<u64>,
    /// Fired at the end of the run: every task still waiting returns.
    cancel: Cancel,
}

async fn open_loop(w: &Rc<Worker>, rate: f64, arrivals: Arrivals, seed: u64) {
    let p = &w.plan;
    let share = Schedule::new(arrivals, rate, seed).share(p.index, p.workers, p.duration, p.requests);
    for (k, intended) in share.enumerate() {
        w.pacer.wait_until(intended).await;
        let i = (p.index + k * p.workers) as u64;
        if w.inflight.get() >= p.max_inflight {
            w.stats.borrow_mut().overload();
            p.live.sent.fetch_add(1, Ordering::Relaxed);
            p.live.errors.fetch_add(1, Ordering::Relaxed);
        } else {
            begin(w);
            let w2 = w.clone();
            monoio::spawn(async move {
                let o = request(&w2, i, intended).await;
                end(&w2, &o);
            });
        }
        // Let the new request (and responses) run even when behind schedule.
        YieldNow(false).await;
    }
}

async fn closed_loop(w: &Rc<Worker>, concurrency: usize, ramp: Duration) {
    let p = &w.plan;
    // This worker's users: an even share, the remainder to the first workers.
    let users = concurrency / p.workers + usize::from(p.index < concurrency % p.workers);
    let stop_ns = p.duration.map(|d| d.as_nanos() as u64);
    let active = Rc::new(Cell::new(users));
    for u in 0..users {
        let w = w.clone();
        let active = active.clone();
        // Global user number, so the ramp interleaves workers.
        let g = (u * p.workers + p.index) as u64;
        let start_ns = (ramp.as_nanos() as u64).saturating_mul(g) / concurrency.max(1) as u64;
        monoio::spawn(async move {
            let wait = start_ns.saturating_sub(w.plan.clock.now_ns());
            let mut go = or_cancel(&w.cancel, monoio::time::sleep(Duration::from_nanos(wait)))
                .await
                .is_some();
            while go {
                let now = w.plan.clock.now_ns();
                if stop_ns.is_some_and(|s| now >= s) || w.cancel.is_fired() {
                    break;
                }
                let i = w.plan.live.claimed.fetch_add(1, Ordering::Relaxed);
                if w.plan.requests.is_some_and(|n| i >= n) {
                    break;
                }
                begin(&w);
                let o = request(&w, i, now).await;
                end(&w, &o);
                if matches!(o.error, Some(ErrorKind::Connect | ErrorKind::Closed)) {
                    // Refused before any response: don't spin on instant failures.
                    go = or_cancel(&w.cancel, monoio::time::sleep(Duration::from_millis(10)))
                        .await
                        .is_some();
                }
            }
            active.set(active.get() - 1);
        });
    }
    // Dispatch ends when the users stop starting requests: at the stop time,
    // or when the request count runs out. Requests in flight then drain.
    while active.get() > 0 && stop_ns.is_none_or(|s| p.clock.now_ns() < s) {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn begin(w: &Worker) {
    w.inflight.set(w.inflight.get() + 1);
    w.plan.live.inflight.fetch_add(1, Ordering::Relaxed);
}

fn end(w: &Worker, o: &Outcome) {
    w.inflight.set(w.inflight.get() - 1);
    let live = &w.plan.live;
    live.inflight.fetch_sub(1, Ordering::Relaxed);
    live.sent.fetch_add(1, Ordering::Relaxed);
    if o.error.is_some() {
        live.errors.fetch_add(1, Ordering::Relaxed);
    } else {
        live.ok.fetch_add(1, Ordering::Relaxed);
        if let Some(first) = o.stream.as_ref().and_then(|t| t.first_content_ns) {
            w.ttft
                .borrow_mut()
                .saturating_record(first.saturating_sub(o.origin_ns()) / 1000);
        }
    }
    w.stats.borrow_mut().record(o);
    if o.end_ns >= w.last_flush_ns.get() + 500_000_000 {
        w.last_flush_ns.set(o.end_ns);
        flush_ttft(w);
    }
}

async fn request(w: &Worker, i: u64, intended_ns: u64) -> Outcome {
    let p = &w.plan;
    let sent_ns = p.clock.now_ns();
    let mut o = Outcome {
        intended_ns,
        sent_ns,
        ..Default::default()
    };
    match or_cancel(&w.cancel, monoio::time::timeout(p.timeout, attempt(w, i)))
        .await
        .unwrap_or(Ok(Err(ErrorKind::Timeout)))
    {
        Ok(Ok(r)) => {
            o.head_ns = r.head_ns;
            o.end_ns = r.end_ns;
            o.error = r.error;
            o.stream = r.stream;
            o.json_tokens = r.json_tokens;
        }
        Ok(Err(kind)) => {
            o.error = Some(kind);
            o.end_ns = p.clock.now_ns();
        }
        Err(_) => {
            o.error = Some(ErrorKind::Timeout);
            o.end_ns = p.clock.now_ns();
        }
    }
    o
}

/// One request on a pooled connection, retried once on a fresh connection
/// if the pooled one turns out to have been closed while idle.
async fn attempt(w: &Worker, i: u64) -> Result<Response, ErrorKind> {
    let p = &w.plan;
    let pooled = w.pool.borrow_mut().pop();
    let (mut conn, mut reused) = match pooled {
        Some(c) => (c, true),
        None => (
            w.connector.connect().await.map_err(|_| ErrorKind::Connect)?,
            false,
        ),
    };
    loop {
        match exchange(&mut conn, p.reqs.get(i), p.api, p.stream, p.clock).await {
            Ok(r) => {
                if r.reusable {
                    w.pool.borrow_mut().push(conn);
                }
                return Ok(r);
            }
            Err(_) if reused => {
                conn = w.connector.connect().await.map_err(|_| ErrorKind::Connect)?;
                reused = false;
            }
            Err(_) => return Err(ErrorKind::Closed),
        }
    }
}

/// Sends the TTFT histogram since the last flush to the progress line.
fn flush_ttft(w: &Worker) {
    let mut h = w.ttft.borrow_mut();
    if !h.is_empty() {
        let _ = w.plan.tx.send(Msg::Ttft(Box::new(h.clone())));
        h.reset();
    }
}

/// Yields once to the scheduler.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
