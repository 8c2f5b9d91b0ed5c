//! The task of one TLS or WebSocket connection (plain TCP connections are served by a
//! [reactor](super::reactor)): reads bytes and hands them to the broker task, writes what the
//! broker queued for it and reports how much the socket took, and tells the broker when it is
//! gone. It follows the same flow control as a reactor socket, with the same types: the
//! reader spends its [`InputCredit`](super::flow::InputCredit) (through its
//! [`ReadGate`](super::read_gate::ReadGate), which the broker task also closes to pause it),
//! the writer takes from an [`Outbox`](super::outbox::Outbox) (in its
//! [`WriteQueue`]), and the end of the connection is the shared closing state machine's
//! ([`Life`]): this task only does the I/O and runs the one timer it asks for in a tokio
//! `Sleep`.
//!
//! The reader waits when the broker's input channel is full, which pushes back on a fast
//! publisher through TCP; the writer only ever holds what its bounded queue holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Sleep;
use tracing::debug;

use super::closing::{Action, Event, Life, Phase};
use super::flow::Credit;
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
    /// Where the connection is in its life (the closing state machine both paths share).
    life: Life,
    /// What the broker task is told first (taken by the first poll).
    info: Option<Box<ConnectionInfo>>,
    /// The `Open` or `Closed` report waiting for room in the input channel: nothing else
    /// happens meanwhile (the `Open` goes before any read, the `Closed` before the drain).
    report: Option<Wait>,
    /// The reader's rare wait.
    read_wait: Option<Wait>,
    /// The read gate was looked at since the last read.
    gate_checked: bool,
    /// The chunks being written (taken over from the queue: an idle writer holds none).
    batch: Vec<Bytes>,
    progress: Progress,
    /// The writer's rare wait: its `Flushed` report waiting for room in the input channel.
    flush_wait: Option<Wait>,
    /// The timer `life` runs (LINGER while closing, the drain after), once it runs one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Everything is written: the write side is still to be shut down.
    shutting_down: bool,
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
            life: Life::default(),
            info: Some(start.info),
            report: None,
            read_wait: None,
            gate_checked: false,
            batch: Vec::new(),
            progress: Progress::default(),
            flush_wait: None,
            timer: None,
            shutting_down: false,
        }
    }

    /// Feeds `event` to the closing state machine and does what it says.
    fn step(&mut self, event: Event) {
        match self.life.on(event, Instant::now()) {
            Action::Nothing => {}
            Action::Arm(at) => self.arm(at),
            Action::ShutDown { drain_until } => {
                self.shutting_down = true;
                self.report_closed();
                self.arm(drain_until);
            }
            Action::Drop { report } => {
                self.timer = None;
                if report {
                    self.report_closed();
                }
            }
        }
    }

    /// Runs the timer until `at`.
    fn arm(&mut self, at: Instant) {
        let at = tokio::time::Instant::from_std(at);
        match &mut self.timer {
            Some(timer) => timer.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Whether the timer ran out; it is then told to the state machine.
    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        if let Some(timer) = &mut self.timer
            && timer.as_mut().poll(cx).is_ready()
        {
            self.timer = None;
            let timer = self.life.timer();
            self.step(Event::Deadline(timer));
            if self.life.phase() == Phase::Gone {
                debug!(conn = %self.conn, ?timer, "closing connection timed out");
            }
        }
    }

    /// Tells the broker task the connection is gone: sent at once if the channel has room,
    /// else the wait for room (none if the broker task is gone).
    fn report_closed(&mut self) {
        let closed = Input::Closed { conn: self.conn };
        self.report = send_now(&self.inputs, closed).ok().flatten();
    }

    /// One step of the reader: `Ready` after one read (handed to the broker task while open,
    /// discarded once closing) or once reading has ended (the end of the stream, a failed read,
    /// or the broker task gone: told to the state machine).
    fn poll_read_step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if ready!(poll_wait(&mut self.read_wait, cx)).is_err() {
            self.step(Event::ClientClosed);
            return Poll::Ready(());
        }
        let open = self.life.phase() == Phase::Open;
        // Closed while a subscriber queue this client feeds is filling up: looked at once
        // before each read, not again while the read waits for the socket (a pause then takes
        // effect after that read, as with a blocking reader).
        if open && !std::mem::replace(&mut self.gate_checked, true) && self.queue.gate().is_paused()
        {
            let queue = self.queue.clone();
            self.read_wait = Some(Box::pin(async move {
                queue.gate().open().await;
                Ok(())
            }));
            return Poll::Ready(());
        }
        let data = match ready!(self.transport.poll_read(cx)) {
            Ok(Some(data)) => data,
            Ok(None) => {
                debug!(conn = %self.conn, "peer closed the connection");
                self.step(Event::ClientClosed);
                return Poll::Ready(());
            }
            Err(error) => {
                debug!(conn = %self.conn, %error, "read failed");
                self.step(Event::ClientClosed);
                return Poll::Ready(());
            }
        };
        if !open {
            return Poll::Ready(()); // closing: the client's input is discarded
        }
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
                    Err(()) => self.step(Event::ClientClosed),
                }
            }
            None => self.read_wait = Some(self.spend_then_send(queue, data)),
        }
        Poll::Ready(())
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

    /// One step of the writer: `Ready` after writing one batch, or once the queue is closed
    /// and written (or the writer failed: told to the state machine).
    fn poll_write_step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if ready!(poll_wait(&mut self.flush_wait, cx)).is_err() {
            self.step(Event::ClientClosed);
            return Poll::Ready(());
        }
        if self.batch.is_empty() {
            match ready!(self.queue.poll_next(cx, &mut self.batch)) {
                Next::Write => self.progress = Progress::default(),
                Next::Close => {
                    self.step(Event::BrokerClosed);
                    self.step(Event::AllWritten);
                    return Poll::Ready(());
                }
            }
        }
        match self
            .transport
            .poll_write(cx, &self.batch, &mut self.progress)
        {
            Poll::Ready(Ok(())) => {
                let bytes = self.batch.iter().map(Bytes::len).sum();
                self.batch = Vec::new();
                self.step(Event::Wrote(bytes));
                if self.life.broker_knows() {
                    let flushed = Input::Flushed {
                        conn: self.conn,
                        bytes,
                    };
                    match send_now(&self.inputs, flushed) {
                        Ok(wait) => self.flush_wait = wait,
                        Err(()) => self.step(Event::ClientClosed),
                    }
                }
                Poll::Ready(())
            }
            Poll::Ready(Err(error)) => {
                debug!(conn = %self.conn, %error, "write failed");
                self.step(Event::ClientClosed);
                Poll::Ready(())
            }
            Poll::Pending => {
                // The socket is full: once the broker has closed the connection, the client
                // has LINGER to take the rest.
                if self.life.phase() == Phase::Open && self.queue.poll_closing(cx) {
                    self.step(Event::BrokerClosed);
                }
                self.step(Event::Blocked);
                Poll::Pending
            }
        }
    }

    /// Reads and writes, one step of each in turn (so neither waits behind a burst of the
    /// other), until the connection is neither open nor closing any more.
    fn poll_running(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            self.poll_timer(cx);
            if !self.life.broker_knows() {
                return Poll::Ready(());
            }
            let read = self.poll_read_step(cx);
            if !self.life.broker_knows() {
                return Poll::Ready(());
            }
            let write = self.poll_write_step(cx);
            if !self.life.broker_knows() {
                return Poll::Ready(());
            }
            if read.is_pending() && write.is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Shuts the write side down, then reads and discards input until the client closes its
    /// side, the stream fails or the drain timer ends.
    fn poll_draining(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_timer(cx);
        if self.shutting_down && self.transport.poll_close(cx).is_ready() {
            self.shutting_down = false;
        }
        while self.life.phase() == Phase::Draining {
            match ready!(self.transport.poll_read(cx)) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => self.step(Event::ClientClosed),
            }
        }
        Poll::Ready(())
    }
}

impl<T: Transport> Future for Connection<T> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(info) = this.info.take() {
            let open = Input::Open {
                conn: this.conn,
                info,
                sink: Sink::Task(this.queue.clone()),
            };
            match send_now(&this.inputs, open) {
                Ok(wait) => this.report = wait,
                Err(()) => return Poll::Ready(()),
            }
        }
        loop {
            let reported = ready!(poll_wait(&mut this.report, cx));
            match this.life.phase() {
                // The broker task is gone before it heard of the connection.
                Phase::Open if reported.is_err() => return Poll::Ready(()),
                Phase::Open | Phase::Closing => ready!(this.poll_running(cx)),
                Phase::Draining => ready!(this.poll_draining(cx)),
                Phase::Gone => return Poll::Ready(()),
            }
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

    /// A connection task over an in-memory stream, past its `Open`: the client's end, what the
    /// task sends the broker, its write queue and the task.
    async fn opened_connection() -> (
        tokio::io::DuplexStream,
        mpsc::Receiver<Input>,
        Arc<WriteQueue>,
        tokio::task::JoinHandle<()>,
    ) {
        let (client, server) = tokio::io::duplex(1024);
        let (inputs, mut received) = mpsc::channel(8);
        let queue = Arc::new(WriteQueue::new(100));
        let start = Start {
            conn: ConnectionId(1),
            info: Box::default(),
            inputs,
            queue: queue.clone(),
        };
        let task = tokio::spawn(Connection::new(start, ByteStream::new(server)));
        assert!(matches!(
            next_input(&mut received).await,
            Some(Input::Open { .. })
        ));
        (client, received, queue, task)
    }

    /// A pause that comes while the reader waits for the socket takes effect after that read:
    /// the bytes it was waiting for go to the broker, the next ones wait for the resume. (Looking
    /// at the gate on every poll instead stopped readers at once and cost QoS 1 8 %.)
    #[tokio::test]
    async fn a_pause_takes_effect_after_the_read_in_progress() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, mut received, queue, _task) = opened_connection().await;
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

    /// The broker's close goes through the shared closing state machine: what is queued is
    /// written, the client reads the end of the stream, the broker hears of the bytes and then
    /// of the end, and the task ends once the client closes too.
    #[tokio::test]
    async fn a_close_writes_what_is_queued_then_ends_the_stream_and_drains() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut client, mut received, queue, task) = opened_connection().await;
        assert!(queue.push(vec![
            Bytes::from_static(b"last "),
            Bytes::from_static(b"words")
        ]));
        queue.close();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut got));
        read.await.expect("the stream ends").unwrap();
        assert_eq!(got, b"last words");
        assert!(matches!(
            next_input(&mut received).await,
            Some(Input::Flushed { bytes: 10, .. })
        ));
        assert!(matches!(
            next_input(&mut received).await,
            Some(Input::Closed { .. })
        ));
        // Draining: what the client still sends is discarded, not handed to the broker.
        client.write_all(b"ignored").await.unwrap();
        assert!(!task.is_finished(), "drains until the client closes");
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends once the client closes")
            .unwrap();
        assert!(
            next_input(&mut received).await.is_none(),
            "nothing after Closed"
        );
    }
}
