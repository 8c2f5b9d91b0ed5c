//! A reactor's mailbox: what the broker task (orders), the listeners (accepted connections)
//! and input credit handed back by the broker task leave for the reactor, and the waker that tells it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use mqtt_broker_core::ConnectionId;

use mqtt_broker_core::ConnectionInfo;
use tokio::sync::OwnedSemaphorePermit;

/// A connection accepted for a reactor.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) conn: ConnectionId,
    pub(crate) info: Box<ConnectionInfo>,
    pub(crate) stream: mio::net::TcpStream,
    /// The connection's place under its listener's `max_connections`.
    pub(crate) slot: Option<OwnedSemaphorePermit>,
}

/// The broker task's handle on one connection of a reactor.
#[derive(Debug)]
pub(crate) struct Remote {
    pub(super) shared: Arc<Shared>,
    pub(super) slot: u32,
}

impl Remote {
    /// Queues `chunks` for the connection's socket.
    pub(crate) fn write(&self, conn: ConnectionId, chunks: Vec<Bytes>) {
        self.order(conn, Order::Write(chunks));
    }

    /// Closes the connection once what is queued is written.
    pub(crate) fn close(&self, conn: ConnectionId) {
        self.order(conn, Order::Close);
    }

    /// Stops reading the connection (`true`) or starts again (`false`).
    pub(crate) fn pause(&self, conn: ConnectionId, paused: bool) {
        self.order(conn, Order::Pause(paused));
    }

    fn order(&self, conn: ConnectionId, order: Order) {
        let slot = self.slot;
        self.shared
            .mail(|mail| mail.orders.push(Addressed { slot, conn, order }));
    }
}

/// What the broker task asks of a connection.
#[derive(Debug)]
pub(super) enum Order {
    Write(Vec<Bytes>),
    Close,
    Pause(bool),
}

/// An order and the connection it is for (the slot may have been reused since: the id tells).
#[derive(Debug)]
pub(super) struct Addressed {
    pub(super) slot: u32,
    pub(super) conn: ConnectionId,
    pub(super) order: Order,
}

/// What others leave for a reactor.
#[derive(Debug, Default)]
pub(super) struct Mail {
    pub(super) opened: Vec<Accepted>,
    pub(super) orders: Vec<Addressed>,
    /// Input credit the broker task handed back: slot, connection, bytes.
    pub(super) credit: Vec<(u32, ConnectionId, u32)>,
    pub(super) stop: bool,
    /// The reactor has ended: nothing left here is taken any more.
    pub(super) closed: bool,
}

impl Mail {
    fn is_empty(&self) -> bool {
        self.opened.is_empty() && self.orders.is_empty() && self.credit.is_empty() && !self.stop
    }
}

/// The part of a reactor others reach: its mailbox and its waker.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) mail: Mutex<Mail>,
    pub(super) waker: AtomicWaker,
    /// Some connection waits for credit: returned credit wakes the reactor. Set and cleared by
    /// the reactor only (before it looks at its mailbox and waits).
    pub(super) credit_wanted: AtomicBool,
}

impl Shared {
    /// Leaves something in the mailbox and wakes the reactor.
    pub(super) fn mail(&self, leave: impl FnOnce(&mut Mail)) {
        if let Ok(mut mail) = self.mail.lock() {
            leave(&mut mail);
        }
        self.waker.wake();
    }

    /// Hands back input credit; wakes the reactor only if a connection waits for it.
    pub(super) fn give_back(&self, slot: u32, conn: ConnectionId, credit: u32) {
        if let Ok(mut mail) = self.mail.lock() {
            mail.credit.push((slot, conn, credit));
        }
        if self.credit_wanted.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Takes the mail, leaving `spare` (emptied) in its place to keep its buffers.
    pub(super) fn take_mail(&self, spare: &mut Mail) {
        if let Ok(mut mail) = self.mail.lock() {
            std::mem::swap(&mut *mail, spare);
        }
    }

    /// Closes the mailbox for good, dropping what is in it.
    pub(super) fn close(&self) {
        let left = self.mail.lock().map(|mut mail| {
            mail.closed = true;
            std::mem::take(&mut mail.opened)
        });
        drop(left);
    }

    pub(super) fn has_mail(&self) -> bool {
        self.mail.lock().map_or(true, |mail| !mail.is_empty())
    }
}
