//! One connection's task: reads bytes and hands them to the broker task, writes what the broker
//! queued for it and reports how much the socket took, and tells the broker when it is gone.
//! The reader waits when the broker's input channel is full, which pushes back on a fast
//! publisher through TCP; the writer only ever holds what its bounded queue holds.
//!
//! When the broker ends a connection, the socket is closed gracefully: the write side is shut
//! down after the last packet (typically a DISCONNECT with its reason code) and whatever the
//! client still sends is read and discarded until it closes too, for at most [`LINGER`].
//! Dropping a socket with unread input makes the kernel answer with a reset, which can destroy
//! the DISCONNECT before the client reads it and makes the client's next write fail.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use tokio::sync::mpsc;
use tracing::debug;

use super::broker_task::Input;
use super::transport::{ByteSink, ByteSource};
use super::write_queue::{Next, WriteQueue};

/// How long a connection the broker closed keeps draining the client's input.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Serves one connection until either side ends it, then reports it closed.
pub(crate) async fn drive(
    conn: ConnectionId,
    info: ConnectionInfo,
    mut source: impl ByteSource,
    sink: impl ByteSink,
    inputs: mpsc::Sender<Input>,
    queue_cap: usize,
) {
    let queue = Arc::new(WriteQueue::new(queue_cap));
    let open = Input::Open {
        conn,
        info: Box::new(info),
        queue: queue.clone(),
    };
    if inputs.send(open).await.is_err() {
        return;
    }
    let closed_by_broker = tokio::select! {
        () = read_loop(conn, &mut source, &inputs) => false,
        ended = write_loop(conn, sink, &queue, &inputs) => ended == WriterEnd::Closed,
    };
    let _ = inputs.send(Input::Closed { conn }).await;
    if closed_by_broker {
        let _ = tokio::time::timeout(LINGER, drain(&mut source)).await;
    }
}

/// Reads and discards input until the client closes its side or the stream fails.
async fn drain(source: &mut impl ByteSource) {
    while let Ok(Some(_)) = source.read().await {}
}

async fn read_loop(conn: ConnectionId, source: &mut impl ByteSource, inputs: &mpsc::Sender<Input>) {
    loop {
        match source.read().await {
            Ok(Some(data)) => {
                if inputs.send(Input::Bytes { conn, data }).await.is_err() {
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
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        batch.clear();
        match queue.next(&mut batch).await {
            Next::Write => {
                let bytes = batch.iter().map(Bytes::len).sum();
                if let Err(error) = sink.write(&batch).await {
                    debug!(%conn, %error, "write failed");
                    return WriterEnd::Failed;
                }
                if inputs.send(Input::Flushed { conn, bytes }).await.is_err() {
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
