//! Total deadlines on a connection's reads, below hyper.
//!
//! hyper has no total deadline for a request head that answers 408 (its
//! `header_read_timeout` closes silently), and none for an idle keep-alive
//! connection, so the stream under it keeps them: a head must arrive whole
//! within `head` of its first byte, else this stream writes a 408 itself and
//! ends the connection; between requests a connection may idle for `idle`.
//! While a request is being answered (its body is read under its own
//! deadline in [`super::bridge`]) no deadline runs here.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Between requests.
const WAITING: u8 = 0;
/// A head's first byte has arrived; the head is not yet whole.
const HEAD: u8 = 1;
/// The head is whole and the request is being answered.
const ANSWERING: u8 = 2;

/// Where a connection is, shared by its stream and its service.
#[derive(Debug, Default)]
pub(super) struct Phase {
    state: AtomicU8,
    /// Requests answered so far: each wait between requests gets its own
    /// idle deadline, even when a pipelined head needed no read.
    answered: AtomicU64,
}

impl Phase {
    /// The service got a whole head.
    pub(super) fn answering(&self) {
        self.state.store(ANSWERING, Ordering::Release);
    }

    /// The service has answered.
    pub(super) fn waiting(&self) {
        self.answered.fetch_add(1, Ordering::AcqRel);
        self.state.store(WAITING, Ordering::Release);
    }

    fn get(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn answered(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    /// From waiting to head; false if another phase was set meanwhile.
    fn head_started(&self) -> bool {
        self.state
            .compare_exchange(WAITING, HEAD, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// A stream whose reads keep the idle and head deadlines.
pub(super) struct Deadlines<S> {
    inner: S,
    phase: Arc<Phase>,
    idle: Duration,
    head: Duration,
    timer: Pin<Box<Sleep>>,
    /// The phase `timer` was armed for, and in which wait between requests.
    armed: Option<(u8, u64)>,
    /// A 408 being written, and how much of it is out.
    refusal: Option<(Vec<u8>, usize)>,
}

impl<S> Deadlines<S> {
    pub(super) fn new(inner: S, phase: Arc<Phase>, idle: Duration, head: Duration) -> Self {
        Deadlines {
            inner,
            phase,
            idle,
            head,
            timer: Box::pin(tokio::time::sleep(idle)),
            armed: None,
            refusal: None,
        }
    }

    fn arm(&mut self, phase: u8, after: Duration) {
        self.timer.as_mut().reset(Instant::now() + after);
        self.armed = Some((phase, self.phase.answered()));
    }
}

impl<S: AsyncWrite + Unpin> Deadlines<S> {
    /// Writes the 408 out; then the read fails, and hyper drops the connection.
    fn poll_refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = self.refusal.as_mut() {
            if *done < bytes.len() {
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
                if n == 0 {
                    break;
                }
                *done += n;
            } else {
                ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
                break;
            }
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received in time",
        )))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Deadlines<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.refusal.is_some() {
            return this.poll_refuse(cx);
        }
        let phase = this.phase.get();
        if phase == WAITING && this.armed != Some((WAITING, this.phase.answered())) {
            let idle = this.idle;
            this.arm(WAITING, idle);
        }
        let before = buf.filled().len();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            if r.is_ok() && buf.filled().len() > before && phase == WAITING && this.phase.head_started() {
                let head = this.head;
                this.arm(HEAD, head);
            }
            return Poll::Ready(r);
        }
        let answered = this.phase.answered();
        match (this.phase.get(), this.armed) {
            (WAITING, Some((WAITING, n))) if n == answered => {
                // Idle too long between requests: end of stream, a quiet close.
                ready!(this.timer.as_mut().poll(cx));
                Poll::Ready(Ok(()))
            }
            (HEAD, Some((HEAD, _))) => {
                ready!(this.timer.as_mut().poll(cx));
                this.refusal = Some((super::raw_response(408, "request head not received in time"), 0));
                this.poll_refuse(cx)
            }
            _ => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadlines<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
