//! A raw in-process connection to the broker task: MQTT 5.0 packets in, packets out, with no
//! socket and no protocol logic of its own. The bridge relays through it (its packet
//! identifiers are the remote session's); [`LocalClient`](super::LocalClient) is the
//! application-facing client with requests and answers.
//!
//! It is a connection like any other for the core: opened with `Input::Open`, its bytes go in
//! as `Input::Bytes`, what the broker transmits is taken from its write queue and reported
//! flushed once decoded, and the broker's read gate pauses what it publishes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use mqtt_wire::{Decoder, Packet, ProtocolVersion};
use tokio::sync::mpsc;

use super::flow::Credit;
use super::input::{Input, Sink};
use super::write_queue::{Next, WriteQueue};
use super::{ServerError, ServerHandle};

/// One in-process connection speaking MQTT 5.0 to the broker task.
#[derive(Debug)]
pub(crate) struct LocalLink {
    conn: ConnectionId,
    inputs: mpsc::Sender<Input>,
    queue: Arc<WriteQueue>,
    decoder: Decoder,
    buf: BytesMut,
    /// Nothing more comes from the broker (it closed the connection).
    closed: bool,
    /// The broker was told the connection is gone (`Input::Closed`).
    reported: bool,
    /// Decoded and not yet returned by `recv`.
    pending: Vec<Packet>,
    /// Bytes taken from the write queue and not yet reported flushed.
    unflushed: usize,
}

impl ServerHandle {
    /// Opens an in-process connection described by `info`; nothing is sent yet (the first
    /// packet must be a CONNECT).
    pub(crate) async fn open_link(&self, info: ConnectionInfo) -> Result<LocalLink, ServerError> {
        let (conn, queue) = self.open_in_process(info).await?;
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V5);
        Ok(LocalLink {
            conn,
            inputs: self.inputs.clone(),
            queue,
            decoder,
            buf: BytesMut::new(),
            closed: false,
            reported: false,
            pending: Vec::new(),
            unflushed: 0,
        })
    }
}

/// `packet`, encoded in MQTT 5.0, as the input of the in-process connection `conn` (read from
/// no socket, so it carries no credit).
pub(crate) fn packet_input(conn: ConnectionId, packet: &Packet) -> Result<Input, ServerError> {
    let mut out = BytesMut::new();
    packet
        .encode(ProtocolVersion::V5, &mut out)
        .map_err(|_| ServerError::InvalidTopic)?;
    Ok(Input::Bytes {
        conn,
        data: out.freeze(),
        credit: Credit::none(),
    })
}

impl ServerHandle {
    /// Opens a connection with no socket: a new id, a write queue for what the broker
    /// transmits, and `Input::Open`. In-process clients and bridges start here.
    pub(crate) async fn open_in_process(
        &self,
        info: ConnectionInfo,
    ) -> Result<(ConnectionId, Arc<WriteQueue>), ServerError> {
        let conn = ConnectionId(self.ids.fetch_add(1, Ordering::Relaxed));
        let queue = Arc::new(WriteQueue::new(self.queue_cap));
        let open = Input::Open {
            conn,
            info: Box::new(info),
            sink: Sink::Task(queue.clone()),
        };
        self.inputs
            .send(open)
            .await
            .map_err(|_| ServerError::Stopped)?;
        Ok((conn, queue))
    }
}

impl LocalLink {
    /// Sends `packet` to the broker. A PUBLISH waits while the broker holds this connection's
    /// reading back (its subscribers' queues are filling up), as a socket's reader would.
    pub(crate) async fn send(&self, packet: &Packet) -> Result<(), ServerError> {
        if self.closed {
            return Err(ServerError::Disconnected);
        }
        if matches!(packet, Packet::Publish(_)) {
            self.queue.gate().open().await;
        }
        self.inputs
            .send(packet_input(self.conn, packet)?)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    /// The packets the broker transmitted since the last call, waiting for some; empty once
    /// the broker closed the connection (or sent something undecodable). Cancel-safe: what
    /// was taken from the write queue stays here until returned.
    pub(crate) async fn recv(&mut self) -> Vec<Packet> {
        loop {
            if self.unflushed > 0 {
                let flushed = Input::Flushed {
                    conn: self.conn,
                    bytes: self.unflushed,
                };
                if self.inputs.send(flushed).await.is_err() {
                    self.closed = true;
                }
                self.unflushed = 0;
            }
            if !self.pending.is_empty() || self.closed {
                return std::mem::take(&mut self.pending);
            }
            let mut batch: Vec<Bytes> = Vec::new();
            if self.queue.next(&mut batch).await == Next::Close {
                self.closed = true;
            }
            self.unflushed += batch.iter().map(Bytes::len).sum::<usize>();
            batch
                .iter()
                .for_each(|chunk| self.buf.extend_from_slice(chunk));
            loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(packet)) => self.pending.push(packet),
                    Ok(None) => break,
                    Err(_) => {
                        self.closed = true;
                        break;
                    }
                }
            }
        }
    }

    /// Whether the broker closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Ends the connection (without DISCONNECT: send one first for a normal end).
    pub(crate) async fn close(mut self) {
        self.reported = true;
        let _ = self.inputs.send(Input::Closed { conn: self.conn }).await;
    }
}

impl Drop for LocalLink {
    fn drop(&mut self) {
        if !self.reported {
            // Dropped without `close` (a task cancelled): the broker must still learn it.
            let (inputs, conn) = (self.inputs.clone(), self.conn);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = inputs.send(Input::Closed { conn }).await;
                });
            }
        }
    }
}
