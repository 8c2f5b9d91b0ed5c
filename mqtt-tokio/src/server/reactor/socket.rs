//! One connection of a reactor: its socket, what is queued for it ([`Outbox`]), its input
//! credit ([`InputCredit`]) and where it is in its life ([`Life`]), the types a connection task
//! uses too. Reads and writes never wait: they stop at `WouldBlock` and clear the readiness
//! flag, which the poller's next event sets again.

use std::io::{self, Read as _, Write as _};
use std::net::Shutdown;

use bytes::Bytes;
use mqtt_broker_core::ConnectionId;
use tokio::sync::OwnedSemaphorePermit;

use crate::server::closing::{Life, Phase};
use crate::server::flow::InputCredit;
use crate::server::outbox::Outbox;

/// Most reads of one round while discarding a closed connection's input.
const DISCARD_READS: usize = 16;

/// A connection's socket and state.
#[derive(Debug)]
pub(super) struct Socket {
    stream: mio::net::TcpStream,
    pub(super) conn: ConnectionId,
    /// What is not yet written.
    out: Outbox,
    /// Bytes that may be read before the broker task hands credit back.
    pub(super) credit: InputCredit,
    /// Where it is in its life (the closing state machine both paths share).
    pub(super) life: Life,
    /// The poller said so and no read has met `WouldBlock` since.
    pub(super) readable: bool,
    /// The client's side is closed (or failed): reads go on until they say so, whatever their
    /// size, as no further event will come.
    pub(super) read_closed: bool,
    /// Left readable with no input credit (counted by the reactor).
    pub(super) starved: bool,
    /// The poller said so and no write has met `WouldBlock` since.
    pub(super) writable: bool,
    /// The broker task paused the reading (a subscriber's queue fills up).
    pub(super) paused: bool,
    /// On the reactor's list for the next round.
    pub(super) listed: bool,
    /// The connection's place under its listener's `max_connections`.
    _place: Option<OwnedSemaphorePermit>,
}

impl Socket {
    /// An open connection `conn` over `stream`, holding its listener `place`.
    pub(super) fn new(
        conn: ConnectionId,
        stream: mio::net::TcpStream,
        place: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Socket {
            stream,
            conn,
            out: Outbox::default(),
            credit: InputCredit::default(),
            life: Life::default(),
            readable: false,
            read_closed: false,
            starved: false,
            writable: false,
            paused: false,
            listed: false,
            _place: place,
        }
    }

    /// Queues chunks to write; `false` (nothing queued) when they would pass `cap`. Chunks for
    /// a connection already closing are dropped.
    pub(super) fn queue(&mut self, chunks: Vec<Bytes>, cap: usize) -> bool {
        self.life.phase() != Phase::Open || self.out.push(chunks, cap)
    }

    /// Whether everything queued is written.
    pub(super) fn out_is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Everything is written: the write side is shut down (the client reads the end of the
    /// stream after the last packet).
    pub(super) fn shut_down(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Whether the socket should be served again next round; `reading`: the input channel
    /// has room.
    pub(super) fn has_work(&self, reading: bool) -> bool {
        let write = self.writable && !self.out.is_empty();
        let read = self.readable
            && match self.life.phase() {
                Phase::Open => reading && !self.paused && self.credit.left() > 0,
                Phase::Closing | Phase::Draining | Phase::Gone => true,
            };
        write || read
    }

    /// Writes what is queued until it is all written or the socket is full; returns the
    /// bytes written.
    pub(super) fn write(&mut self) -> io::Result<usize> {
        let mut total = 0;
        while self.writable && !self.out.is_empty() {
            let slices = self.out.front_slices();
            let asked: usize = slices.iter().map(|s| s.len()).sum();
            match self.stream.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    // A short write means the socket buffer is full (as tokio reads it).
                    self.writable = written == asked;
                    self.out.consume(written);
                    total += written;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// One read into `scratch` of at most the credit left: the bytes and the credit they took,
    /// `Ok(None)` when nothing is there, an error at the end of the stream.
    pub(super) fn read(&mut self, scratch: &mut [u8]) -> io::Result<Option<(Vec<u8>, u32)>> {
        let want = scratch.len().min(self.credit.left());
        loop {
            match self.stream.read(&mut scratch[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed by the client",
                    ));
                }
                Ok(n) => {
                    // A short read means the socket is drained (as tokio reads it).
                    self.readable = n == want || self.read_closed;
                    // Never refused: the read took no more than the credit left.
                    let taken = self.credit.try_spend(n).unwrap_or_default();
                    return Ok(Some((scratch[..n].to_vec(), taken)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and drops input; `false` at the end of the stream or on an error.
    pub(super) fn discard(&mut self, scratch: &mut [u8]) -> bool {
        for _ in 0..DISCARD_READS {
            if !self.readable {
                break;
            }
            match self.stream.read(scratch) {
                Ok(0) => return false,
                Ok(n) => self.readable = n == scratch.len() || self.read_closed,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}
