//! The bounded queue between the broker task and one connection's writer.
//!
//! The broker task never waits on a socket: it appends the chunks of an `Output::Transmit` to
//! the connection's [`Outbox`] here and moves on. The writer takes everything queued at once
//! (one vectored write for many small packets) and reports the bytes the socket took back to
//! the broker (`handle_flushed`), which is what bounds the queue: the core stops handing out
//! bytes for a connection whose outbox is full. The outbox's cap guards against a core that
//! overshoots (see [`outbox`](super::outbox)): reaching it closes the connection rather than
//! growing memory.

use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::OwnedSemaphorePermit;

use super::outbox::Outbox;
use super::read_gate::ReadGate;

/// What the writer should do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Write these chunks (in order).
    Write,
    /// Everything queued is written; close the connection.
    Close,
}

/// What the broker task and the writer share.
#[derive(Debug, Default)]
struct State {
    /// What waits for the writer.
    outbox: Outbox,
    /// The broker closed the connection: nothing more is queued.
    closing: bool,
}

/// A single-producer (broker task), single-consumer (writer) queue of byte chunks.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    state: Mutex<State>,
    /// The one writer waiting in [`WriteQueue::next`]: a waker kept here, so a waiting writer's
    /// future holds no waiter node of its own.
    ready: AtomicWaker,
    /// The writer waiting for a write to the socket: woken only by [`WriteQueue::close`], so
    /// new chunks for a connection whose socket is full do not wake it for nothing.
    closer: AtomicWaker,
    /// The outbox's byte cap.
    cap: usize,
    /// The reader's gate of the same connection: one shared allocation per connection.
    gate: ReadGate,
    /// The connection's place under its listener's `max_connections`: given up once both the
    /// connection's task and the broker task have let go of the queue.
    _slot: Option<OwnedSemaphorePermit>,
}

impl WriteQueue {
    /// A queue that refuses to hold more than `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        Self::holding(cap, None)
    }

    /// A queue that refuses to hold more than `cap` bytes, for a connection that holds `slot`.
    pub(crate) fn holding(cap: usize, slot: Option<OwnedSemaphorePermit>) -> Self {
        WriteQueue {
            state: Mutex::new(State::default()),
            ready: AtomicWaker::new(),
            closer: AtomicWaker::new(),
            cap,
            gate: ReadGate::default(),
            _slot: slot,
        }
    }

    /// The gate the broker task closes to pause the connection's reader.
    pub(crate) fn gate(&self) -> &ReadGate {
        &self.gate
    }

    /// Appends chunks; `false` (nothing appended) when that would pass the byte cap or the
    /// queue is closing. An empty queue takes `data`'s buffer as it is.
    pub(crate) fn push(&self, data: Vec<Bytes>) -> bool {
        {
            let Ok(mut state) = self.state.lock() else {
                return false;
            };
            if state.closing || !state.outbox.push(data, self.cap) {
                return false;
            }
        }
        self.ready.wake();
        true
    }

    /// Asks the writer to close once what is queued is written.
    pub(crate) fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closing = true;
        }
        self.ready.wake();
        self.closer.wake();
    }

    /// Whether [`WriteQueue::close`] has been called; if not, the writer is woken when it is.
    pub(crate) fn poll_closing(&self, cx: &mut Context<'_>) -> bool {
        self.closer.register(cx.waker());
        self.state.lock().map_or(true, |state| state.closing)
    }

    /// Waits for work: fills `batch` with queued chunks, or says it is time to close. One
    /// writer at a time.
    pub(crate) fn next<'a>(&'a self, batch: &'a mut Vec<Bytes>) -> impl Future<Output = Next> + 'a {
        std::future::poll_fn(move |cx| self.poll_next(cx, batch))
    }

    /// [`WriteQueue::next`] as a poll: `Pending` (the writer's waker kept) while there is
    /// nothing to do.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>, batch: &mut Vec<Bytes>) -> Poll<Next> {
        if let Some(next) = self.take(batch) {
            return Poll::Ready(next);
        }
        // Registered before the second look: a push in between still wakes the writer.
        self.ready.register(cx.waker());
        self.take(batch).map_or(Poll::Pending, Poll::Ready)
    }

    /// Moves queued chunks into `batch`; `None` while there is nothing to do.
    fn take(&self, batch: &mut Vec<Bytes>) -> Option<Next> {
        let Ok(mut state) = self.state.lock() else {
            return Some(Next::Close);
        };
        if state.outbox.is_empty() {
            return state.closing.then_some(Next::Close);
        }
        state.outbox.take(batch);
        Some(Next::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_come_out_in_order_then_close() {
        let queue = WriteQueue::new(100);
        assert!(queue.push(vec![Bytes::from_static(b"ab"), Bytes::new()]));
        assert!(queue.push(vec![Bytes::from_static(b"c")]));
        queue.close();
        assert!(!queue.push(vec![Bytes::from_static(b"late")]));
        let mut batch = Vec::new();
        assert_eq!(queue.next(&mut batch).await, Next::Write);
        assert_eq!(
            batch,
            vec![Bytes::from_static(b"ab"), Bytes::from_static(b"c")]
        );
        batch.clear();
        assert_eq!(queue.next(&mut batch).await, Next::Close);
    }

    #[tokio::test]
    async fn a_waiting_writer_learns_of_the_close() {
        let queue = std::sync::Arc::new(WriteQueue::new(10));
        let waiter = tokio::spawn({
            let queue = queue.clone();
            std::future::poll_fn(move |cx| {
                if queue.poll_closing(cx) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        queue.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
    }

    #[tokio::test]
    async fn the_byte_cap_refuses_growth() {
        let queue = WriteQueue::new(4);
        assert!(queue.push(vec![Bytes::from_static(b"abc")]));
        assert!(!queue.push(vec![Bytes::from_static(b"de")]));
        let mut batch = Vec::new();
        assert_eq!(queue.next(&mut batch).await, Next::Write);
        assert!(queue.push(vec![Bytes::from_static(b"de")]));
    }

    #[tokio::test]
    async fn the_writer_wakes_on_push() {
        let queue = std::sync::Arc::new(WriteQueue::new(10));
        let writer = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                let next = queue.next(&mut batch).await;
                (next, batch)
            })
        };
        tokio::task::yield_now().await;
        assert!(queue.push(vec![Bytes::from_static(b"x")]));
        let (next, batch) = writer.await.unwrap();
        assert_eq!(next, Next::Write);
        assert_eq!(batch, vec![Bytes::from_static(b"x")]);
    }
}
