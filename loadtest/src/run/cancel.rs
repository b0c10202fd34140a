//! Cancelling a worker's tasks at the end of a run.
//!
//! monoio cannot abort a spawned task, and dropping the runtime leaks tasks
//! parked on I/O or timers (with their sockets: a comparison that drops
//! 9,500 open streams per target would run out of file descriptors). So
//! every task that may outlive the run awaits through [`or_cancel`], and the
//! worker fires the signal, lets the tasks return, and only then stops.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::task::{Poll, Waker};

/// A one-shot, single-thread cancellation signal.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    fired: Cell<bool>,
    next_id: Cell<u64>,
    /// Wakers of the futures waiting under `or_cancel`, by their id.
    wakers: RefCell<HashMap<u64, Waker>>,
}

impl Cancel {
    /// Wakes every waiting future; from now on they all return `None`.
    pub(crate) fn fire(&self) {
        self.fired.set(true);
        let wakers: Vec<Waker> = self.wakers.borrow_mut().drain().map(|(_, w)| w).collect();
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.get()
    }
}

/// Removes a finished (or dropped) future's waker.
struct Registration<'a> {
    cancel: &'a Cancel,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.cancel.wakers.borrow_mut().remove(&self.id);
    }
}

/// Runs `fut` unless and until `cancel` fires: `None` if it did.
pub(crate) async fn or_cancel<F: Future>(cancel: &Cancel, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let id = cancel.next_id.get();
    cancel.next_id.set(id + 1);
    let reg = Registration { cancel, id };
    std::future::poll_fn(|cx| {
        if reg.cancel.fired.get() {
            return Poll::Ready(None);
        }
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        let mut wakers = reg.cancel.wakers.borrow_mut();
        match wakers.get_mut(&reg.id) {
            Some(w) if w.will_wake(cx.waker()) => {}
            Some(w) => w.clone_from(cx.waker()),
            None => {
                wakers.insert(reg.id, cx.waker().clone());
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fire_stops_a_pending_future_and_lets_finished_ones_be() {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .unwrap();
        rt.block_on(async {
            let cancel = std::rc::Rc::new(Cancel::default());
            assert_eq!(or_cancel(&cancel, async { 7 }).await, Some(7));
            let c = cancel.clone();
            let slow =
                monoio::spawn(
                    async move { or_cancel(&c, monoio::time::sleep(Duration::from_secs(60))).await },
                );
            monoio::time::sleep(Duration::from_millis(5)).await;
            assert_eq!(cancel.wakers.borrow().len(), 1);
            cancel.fire();
            assert!(cancel.is_fired());
            assert_eq!(slow.await, None);
            assert!(cancel.wakers.borrow().is_empty());
            assert_eq!(or_cancel(&cancel, async { 7 }).await, None);
        });
    }
}
