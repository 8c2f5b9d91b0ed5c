//! The task of one TLS or WebSocket connection (plain TCP connections are served by a
//! [reactor](super::reactor)): reads bytes and hands them to the broker task, writes what the
//! broker queued for it and reports how much the socket took, and tells the broker when it is
//! gone.
//! The reader waits when the broker's input channel is full, which pushes back on a fast
//! publisher through TCP; the writer only ever holds what its bounded queue holds.
//!
//! The reader spends its connection's input credit and stops while the broker has closed its
//! [`ReadGate`](super::read_gate::ReadGate) (see there).
//!
//! When the broker ends a connection, the socket is closed gracefully (within [`LINGER`] for
//! a client that does not read): the write side is shut down after the last packet (typically a DISCONNECT with its reason code) and whatever the
//! client still sends is read and discarded until it closes too, for at most [`LINGER`].
//! Dropping a socket with unread input makes the kernel answer with a reset, which can destroy
//! the DISCONNECT before the client reads it and makes the client's next write fail.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tracing::debug;

use super::flow::{Credit, LINGER};
use super::input::{Input, Sink};
use super::transport::{Progress, Transport};
use super::write_queue::{Next, WriteQueue};

/// `amount` of input credit, given back to `queue`'s gate when the broker task has handled the
/// read.
fn credit(queue: Arc<WriteQueue>, amount: u32) -> Credit {
    Credit::new(move || queue.gate().give_back(amount))
}

/// Everything the task of one connection starts with besides its transport.
pub(crate) struct Start {
    pub(crate) conn: ConnectionId,
    /// Boxed: the box is what the broker task takes anyway.
    pub(crate) info: Box<ConnectionInfo>,
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(crate) queue: Arc<WriteQueue>,
}

/// A rare wait (for room in the input channel, for input credit, for the read gate), boxed so
/// that a connection's task is not sized for it; `Err` when the broker task is gone.
type Wait = Pin<Box<dyn Future<Output = Result<(), ()>> + Send>>;

/// The whole task of an established connection (spawned on its own, not inside the task that
/// ran the handshakes): reads and hands the bytes to the broker task, writes what the broker
/// queued and reports how much the socket took, and tells the broker when it is gone.
///
/// It is written out as a state machine rather than an `async fn`: what an idle connection
/// holds is then its fields, not the largest state of every `.await` of a reader and a
/// writer side by side, and the stream needs no splitting in two.
pub(crate) struct Connection<T> {
    conn: ConnectionId,
    transport: T,
    inputs: mpsc::Sender<Input>,
    queue: Arc<WriteQueue>,
    phase: Phase,
    /// The reader's rare wait.
    read_wait: Option<Wait>,
    /// The read gate was looked at since the last read.
    gate_checked: bool,
    /// The chunks being written (taken over from the queue: an idle writer holds none).
    batch: Vec<Bytes>,
    progress: Progress,
    /// The writer's rare wait: its `Flushed` report waiting for room in the input channel.
    flush_wait: Option<Wait>,
    /// A write waiting for the socket after the broker closed the connection: its deadline.
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The broker closed the queue and everything queued is written: the stream is ending.
    closing: bool,
}

enum Phase {
    /// Telling the broker task about the connection.
    Opening {
        info: Option<Box<ConnectionInfo>>,
        wait: Option<Wait>,
    },
    /// Reading and writing.
    Running,
    /// Telling the broker task the connection is gone; then, if the broker ended it,
    /// draining the client's input.
    Reporting { drain: bool, wait: Option<Wait> },
    /// Reading and discarding the client's input until it closes too, for at most LINGER.
    Draining(Pin<Box<tokio::time::Sleep>>),
}

/// What a step of the reader left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// It may go on.
    Again,
    /// Reading has ended.
    Ended,
}

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// The broker closed the connection; the write side is shut down.
    Closed,
    /// The socket or the broker task went away.
    Failed,
}

/// Sends `input` at once if the input channel has room, else returns the boxed wait for room;
/// `Err` when the broker task is gone.
fn send_now(inputs: &mpsc::Sender<Input>, input: Input) -> Result<Option<Wait>, ()> {
    match inputs.try_send(input) {
        Ok(()) => Ok(None),
        Err(TrySendError::Full(input)) => {
            let inputs = inputs.clone();
            Ok(Some(Box::pin(async move {
                inputs.send(input).await.map_err(drop)
            })))
        }
        Err(TrySendError::Closed(_)) => Err(()),
    }
}

/// Polls an optional wait: `Ready(Ok)` once there is none (left), `Ready(Err)` if it failed.
fn poll_wait(wait: &mut Option<Wait>, cx: &mut Context<'_>) -> Poll<Result<(), ()>> {
    if let Some(pending) = wait {
        ready!(pending.as_mut().poll(cx))?;
        *wait = None;
    }
    Poll::Ready(Ok(()))
}

impl<T: Transport> Connection<T> {
    /// The task of the connection `start` describes, over `transport`.
    pub(crate) fn new(start: Start, transport: T) -> Self {
        Connection {
            conn: start.conn,
            transport,
            inputs: start.inputs,
            queue: start.queue,
            phase: Phase::Opening {
                info: Some(start.info),
                wait: None,
            },
            read_wait: None,
            gate_checked: false,
            batch: Vec::new(),
            progress: Progress::default(),
            flush_wait: None,
            linger: None,
            closing: false,
        }
    }

    /// One step of the reader: `Ready(Step::Ended)` once reading has ended (end of stream, a
    /// failed read, or the broker task gone), `Ready(Step::Again)` after handing one read to
    /// the broker task.
    fn poll_read_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        if ready!(poll_wait(&mut self.read_wait, cx)).is_err() {
            return Poll::Ready(Step::Ended);
        }
        // Closed while a subscriber queue this client feeds is filling up: looked at once
        // before each read, not again while the read waits for the socket (a pause then takes
        // effect after that read, as with a blocking reader).
        if !std::mem::replace(&mut self.gate_checked, true) && self.queue.gate().is_paused() {
            let queue = self.queue.clone();
            self.read_wait = Some(Box::pin(async move {
                queue.gate().open().await;
                Ok(())
            }));
            return Poll::Ready(Step::Again);
        }
        let data = match ready!(self.transport.poll_read(cx)) {
            Ok(Some(data)) => data,
            Ok(None) => {
                debug!(conn = %self.conn, "peer closed the connection");
                return Poll::Ready(Step::Ended);
            }
            Err(error) => {
                debug!(conn = %self.conn, %error, "read failed");
                return Poll::Ready(Step::Ended);
            }
        };
        self.gate_checked = false;
        let queue = self.queue.clone();
        match queue.gate().try_spend(data.len()) {
            Some(credit) => {
                let bytes = Input::Bytes {
                    conn: self.conn,
                    data,
                    credit: self::credit(queue, credit),
                };
                match send_now(&self.inputs, bytes) {
                    Ok(wait) => self.read_wait = wait,
                    Err(()) => return Poll::Ready(Step::Ended),
                }
            }
            None => self.read_wait = Some(self.spend_then_send(queue, data)),
        }
        Poll::Ready(Step::Again)
    }

    /// Waits for the input credit `data` needs, then hands it to the broker task.
    fn spend_then_send(&self, queue: Arc<WriteQueue>, data: Bytes) -> Wait {
        let (conn, inputs) = (self.conn, self.inputs.clone());
        Box::pin(async move {
            let amount = queue.gate().spend(data.len()).await;
            let credit = credit(queue, amount);
            inputs
                .send(Input::Bytes { conn, data, credit })
                .await
                .map_err(drop)
        })
    }

    /// One step of the writer: `Ready(Some(end))` once writing has ended, `Ready(None)` after
    /// writing one batch.
    fn poll_write_step(&mut self, cx: &mut Context<'_>) -> Poll<Option<WriterEnd>> {
        if ready!(poll_wait(&mut self.flush_wait, cx)).is_err() {
            return Poll::Ready(Some(WriterEnd::Failed));
        }
        if self.closing {
            ready!(self.transport.poll_close(cx));
            return Poll::Ready(Some(WriterEnd::Closed));
        }
        if self.batch.is_empty() {
            match ready!(self.queue.poll_next(cx, &mut self.batch)) {
                Next::Write => self.progress = Progress::default(),
                Next::Close => {
                    self.closing = true;
                    return Poll::Ready(None);
                }
            }
        }
        match self
            .transport
            .poll_write(cx, &self.batch, &mut self.progress)
        {
            Poll::Ready(Ok(())) => {
                self.linger = None;
                let bytes = self.batch.iter().map(Bytes::len).sum();
                self.batch = Vec::new();
                let flushed = Input::Flushed {
                    conn: self.conn,
                    bytes,
                };
                match send_now(&self.inputs, flushed) {
                    Ok(wait) => self.flush_wait = wait,
                    Err(()) => return Poll::Ready(Some(WriterEnd::Failed)),
                }
                Poll::Ready(None)
            }
            Poll::Ready(Err(error)) => {
                debug!(conn = %self.conn, %error, "write failed");
                Poll::Ready(Some(WriterEnd::Failed))
            }
            Poll::Pending => self.poll_linger(cx).map(Some),
        }
    }

    /// A write waits for the socket. Once the broker has ended the connection, a client that
    /// does not read gets LINGER to take the rest, not forever: the connection, its queue and
    /// its reader would otherwise live as long as the client keeps sending.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<WriterEnd> {
        if self.linger.is_none() {
            if !self.queue.poll_closing(cx) {
                return Poll::Pending;
            }
            self.linger = Some(Box::pin(tokio::time::sleep(LINGER)));
        }
        if let Some(linger) = &mut self.linger {
            ready!(linger.as_mut().poll(cx));
        }
        debug!(conn = %self.conn, "write timed out after the close");
        Poll::Ready(WriterEnd::Failed)
    }

    /// Tells the broker task about the connection: `Ready(false)` if it is gone.
    fn poll_opening(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let Phase::Opening { info, wait } = &mut self.phase else {
            return Poll::Ready(true);
        };
        if let Some(info) = info.take() {
            let open = Input::Open {
                conn: self.conn,
                info,
                sink: Sink::Task(self.queue.clone()),
            };
            match send_now(&self.inputs, open) {
                Ok(pending) => *wait = pending,
                Err(()) => return Poll::Ready(false),
            }
        }
        Poll::Ready(ready!(poll_wait(wait, cx)).is_ok())
    }

    /// Reads and writes, one step of each in turn (so neither waits behind a burst of the
    /// other), until one side ends: `Ready(true)` if the broker ended the connection (the
    /// client's input is then drained).
    fn poll_running(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            let read = self.poll_read_step(cx);
            if read == Poll::Ready(Step::Ended) {
                return Poll::Ready(false);
            }
            let write = self.poll_write_step(cx);
            if let Poll::Ready(Some(end)) = write {
                return Poll::Ready(end == WriterEnd::Closed);
            }
            if read.is_pending() && write.is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Tells the broker task the connection is gone: sent at once if the channel has room,
    /// else the wait for room (none if the broker task is gone).
    fn report_closed(&self, drain: bool) -> Phase {
        let wait = send_now(&self.inputs, Input::Closed { conn: self.conn })
            .ok()
            .flatten();
        Phase::Reporting { drain, wait }
    }

    /// Reads and discards input until the client closes its side, the stream fails or the
    /// timer ends.
    fn poll_draining(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Phase::Draining(timer) = &mut self.phase else {
            return Poll::Ready(());
        };
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        while let Ok(Some(_)) = ready!(self.transport.poll_read(cx)) {}
        Poll::Ready(())
    }
}

impl<T: Transport> Future for Connection<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            this.phase = match &mut this.phase {
                Phase::Opening { .. } => {
                    if !ready!(this.poll_opening(cx)) {
                        return Poll::Ready(());
                    }
                    Phase::Running
                }
                Phase::Running => {
                    let drain = ready!(this.poll_running(cx));
                    this.report_closed(drain)
                }
                Phase::Reporting { drain, wait } => {
                    let drain = *drain;
                    ready!(poll_wait(wait, cx)).ok();
                    if !drain {
                        return Poll::Ready(());
                    }
                    Phase::Draining(Box::pin(tokio::time::sleep(LINGER)))
                }
                Phase::Draining(_) => {
                    ready!(this.poll_draining(cx));
                    return Poll::Ready(());
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::server::transport::ByteStream;

    fn start() -> Start {
        let (inputs, _receiver) = mpsc::channel(1);
        Start {
            conn: ConnectionId(1),
            info: Box::default(),
            inputs,
            queue: Arc::new(WriteQueue::new(100)),
        }
    }

    /// tokio allocates a task as one cell aligned to 128 bytes: 104 bytes of its own plus the
    /// future. The task over a bare stream stays within 384 bytes (it was a 1,024-byte cell
    /// with an `async fn` reader and writer side by side, and a split stream besides); TLS and
    /// WebSocket add their own state to it.
    #[tokio::test]
    async fn a_connection_task_over_a_bare_stream_fits_in_384_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let task = Connection::new(start(), ByteStream::new(client));
        let size = std::mem::size_of_val(&task);
        assert!(size <= 384 - 104, "connection task is {size} bytes");
    }

    /// The next input of the connection, within a second.
    async fn next_input(inputs: &mut mpsc::Receiver<Input>) -> Option<Input> {
        tokio::time::timeout(Duration::from_secs(1), inputs.recv())
            .await
            .ok()
            .flatten()
    }

    /// A pause that comes while the reader waits for the socket takes effect after that read:
    /// the bytes it was waiting for go to the broker, the next ones wait for the resume. (Looking
    /// at the gate on every poll instead stopped readers at once and cost QoS 1 8 %.)
    #[tokio::test]
    async fn a_pause_takes_effect_after_the_read_in_progress() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(1024);
        let (inputs, mut received) = mpsc::channel(8);
        let queue = Arc::new(WriteQueue::new(100));
        let start = Start {
            conn: ConnectionId(1),
            info: Box::default(),
            inputs,
            queue: queue.clone(),
        };
        tokio::spawn(Connection::new(start, ByteStream::new(server)));
        assert!(matches!(
            next_input(&mut received).await,
            Some(Input::Open { .. })
        ));
        tokio::task::yield_now().await; // the reader now waits for the socket
        queue.gate().pause();
        client.write_all(b"first").await.unwrap();
        match next_input(&mut received).await {
            Some(Input::Bytes { data, .. }) => assert_eq!(&data[..], b"first"),
            other => panic!("the read in progress is handed over, got {other:?}"),
        }
        client.write_all(b"second").await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(100), received.recv()).await;
        assert!(early.is_err(), "nothing is read while paused");
        queue.gate().resume();
        match next_input(&mut received).await {
            Some(Input::Bytes { data, .. }) => assert_eq!(&data[..], b"second"),
            other => panic!("read after the resume, got {other:?}"),
        }
    }
}
