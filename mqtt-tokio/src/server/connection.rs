//! One connection's task: reads bytes and hands them to the broker task, writes what the broker
//! queued for it and reports how much the socket took, and tells the broker when it is gone.
//! The reader waits when the broker's input channel is full, which pushes back on a fast
//! publisher through TCP; the writer only ever holds what its bounded queue holds.

use std::sync::Arc;

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use tokio::sync::mpsc;
use tracing::debug;

use super::broker_task::Input;
use super::transport::{ByteSink, ByteSource};
use super::write_queue::{Next, WriteQueue};

/// Serves one connection until either side ends it, then reports it closed.
pub(crate) async fn drive(
    conn: ConnectionId,
    info: ConnectionInfo,
    source: impl ByteSource,
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
    tokio::select! {
        () = read_loop(conn, source, &inputs) => {}
        () = write_loop(conn, sink, &queue, &inputs) => {}
    }
    let _ = inputs.send(Input::Closed { conn }).await;
}

async fn read_loop(conn: ConnectionId, mut source: impl ByteSource, inputs: &mpsc::Sender<Input>) {
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

async fn write_loop(
    conn: ConnectionId,
    mut sink: impl ByteSink,
    queue: &WriteQueue,
    inputs: &mpsc::Sender<Input>,
) {
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        batch.clear();
        match queue.next(&mut batch).await {
            Next::Write => {
                let bytes = batch.iter().map(Bytes::len).sum();
                if let Err(error) = sink.write(&batch).await {
                    debug!(%conn, %error, "write failed");
                    return;
                }
                if inputs.send(Input::Flushed { conn, bytes }).await.is_err() {
                    return;
                }
            }
            Next::Close => {
                sink.close().await;
                return;
            }
        }
    }
}
