//! One connection's task: reads bytes and hands them to the broker task, writes what the broker
//! queued for it and reports how much the socket took, and tells the broker when it is gone.
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
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc;
use tracing::debug;

use super::broker_task::Input;
use super::transport::{ByteSink, ByteSource};
use super::write_queue::{Next, WriteQueue};

/// How long a connection the broker closed keeps draining the client's input.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Received bytes that give their input credit back when the broker task drops them.
struct Credited {
    data: Bytes,
    queue: Arc<WriteQueue>,
    credit: u32,
}

impl AsRef<[u8]> for Credited {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Credited {
    fn drop(&mut self) {
        self.queue.gate().give_back(self.credit);
    }
}

/// Everything the task of one connection starts with besides its transport.
pub(crate) struct Start {
    pub(crate) conn: ConnectionId,
    /// Boxed: an async function keeps its arguments for its whole life, and the box is what
    /// the broker task takes anyway.
    pub(crate) info: Box<ConnectionInfo>,
    pub(crate) inputs: mpsc::Sender<Input>,
    pub(crate) queue: Arc<WriteQueue>,
}

/// Serves one connection until either side ends it, then reports it closed. This is the
/// whole task of an established connection (spawned on its own, not inside the task that ran
/// the handshakes), so an idle connection costs one task allocation.
pub(crate) fn drive(
    start: Start,
    mut source: impl ByteSource,
    sink: impl ByteSink,
) -> impl Future<Output = ()> + Send {
    // Taken apart before the future is built, so the future holds each part once.
    let Start {
        conn,
        info,
        inputs,
        queue,
    } = start;
    async move {
        let open = Input::Open {
            conn,
            info,
            queue: queue.clone(),
        };
        if inputs.send(open).await.is_err() {
            return;
        }
        let closed_by_broker = tokio::select! {
            () = read_loop(conn, &mut source, &inputs, &queue) => false,
            ended = write_loop(conn, sink, &queue, &inputs) => ended == WriterEnd::Closed,
        };
        let _ = inputs.send(Input::Closed { conn }).await;
        if closed_by_broker {
            let _ = tokio::time::timeout(LINGER, drain(&mut source)).await;
        }
    }
}

/// Reads and discards input until the client closes its side or the stream fails.
async fn drain(source: &mut impl ByteSource) {
    while let Ok(Some(_)) = source.read().await {}
}

async fn read_loop(
    conn: ConnectionId,
    source: &mut impl ByteSource,
    inputs: &mpsc::Sender<Input>,
    queue: &Arc<WriteQueue>,
) {
    let gate = queue.gate();
    loop {
        // Closed while a subscriber queue this client feeds is filling up. The wait is rare: its
        // future is boxed, so an idle connection's task is not sized for it.
        if gate.is_paused() {
            Box::pin(gate.open()).await;
        }
        match source.read().await {
            Ok(Some(data)) => {
                let Ok(credit) = gate.spend(data.len()).await else {
                    return;
                };
                let data = Bytes::from_owner(Credited {
                    data,
                    queue: queue.clone(),
                    credit,
                });
                if send(inputs, Input::Bytes { conn, data }).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                debug!(%conn, "peer closed the connection");
                return;
            }
            Err(error) => {
                debug!(%conn, %error, "read failed");
                return;
            }
        }
    }
}

/// Sends `input` to the broker task: at once when the channel has room, else waiting in a
/// boxed future (rare), so a connection's task is not sized for the wait.
fn send(inputs: &mpsc::Sender<Input>, input: Input) -> impl Future<Output = Result<(), ()>> + '_ {
    let sent = match inputs.try_send(input) {
        Ok(()) => Ok(None),
        Err(TrySendError::Full(input)) => Ok(Some(Box::pin(inputs.send(input)))),
        Err(TrySendError::Closed(_)) => Err(()),
    };
    async move {
        match sent? {
            None => Ok(()),
            Some(wait) => wait.await.map_err(drop),
        }
    }
}

/// Polls `future` once: its output, or `Pending` if it has to wait.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}

/// Returns `linger` after the broker closed `queue`.
async fn closing_then(queue: &WriteQueue, linger: Duration) {
    queue.closing().await;
    tokio::time::sleep(linger).await;
}

/// Why the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// The broker closed the connection; the write side is shut down.
    Closed,
    /// The socket or the broker task went away.
    Failed,
}

async fn write_loop(
    conn: ConnectionId,
    mut sink: impl ByteSink,
    queue: &WriteQueue,
    inputs: &mpsc::Sender<Input>,
) -> WriterEnd {
    loop {
        // A fresh batch each time (it takes over the queue's buffer): an idle writer holds none.
        let mut batch: Vec<Bytes> = Vec::new();
        match queue.next(&mut batch).await {
            Next::Write => {
                let bytes = batch.iter().map(Bytes::len).sum();
                // Once the broker has ended the connection, a client that does not read gets
                // LINGER to take the rest, not forever: the connection, its queue and its
                // reader would otherwise live as long as the client keeps sending.
                // Most writes complete at once; only one that waits for the socket gets the
                // (boxed, so an idle task is not sized for it) LINGER timer beside it.
                let mut write = std::pin::pin!(sink.write(&batch));
                let written = match poll_once(write.as_mut()).await {
                    Poll::Ready(written) => written,
                    Poll::Pending => {
                        let linger = Box::pin(closing_then(queue, LINGER));
                        tokio::select! {
                            written = write => written,
                            () = linger => Err(std::io::ErrorKind::TimedOut.into()),
                        }
                    }
                };
                if let Err(error) = written {
                    debug!(%conn, %error, "write failed");
                    return WriterEnd::Failed;
                }
                if send(inputs, Input::Flushed { conn, bytes }).await.is_err() {
                    return WriterEnd::Failed;
                }
            }
            Next::Close => {
                sink.close().await;
                return WriterEnd::Closed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::transport::{StreamSink, StreamSource};

    /// The task of every idle connection holds this future. It was 1,048 bytes before the rare
    /// waits were boxed, 896 before the waits for input, for the write queue and for the input
    /// channel kept their buffers, wakers and messages out of it.
    #[test]
    fn an_idle_connection_future_fits_in_640_bytes() {
        let (client, _server) = tokio::io::duplex(64);
        let (reader, writer) = tokio::io::split(client);
        let (inputs, _receiver) = mpsc::channel(1);
        let start = Start {
            conn: ConnectionId(1),
            info: Box::default(),
            inputs,
            queue: Arc::new(WriteQueue::new(100)),
        };
        let future = drive(start, StreamSource::new(reader), StreamSink(writer));
        let size = std::mem::size_of_val(&future);
        assert!(size <= 640, "drive future is {size} bytes");
    }
}
