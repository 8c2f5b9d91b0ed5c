//! Plain TCP connections served without a task each. A reactor is one task that owns many
//! sockets: they are registered with a `mio` poller of its own, whose file descriptor the
//! tokio runtime watches for it, and kept in a slab. An idle connection then costs its socket
//! and one slab entry; a task, tokio's readiness record and a shared write queue per
//! connection (~860 bytes together) are gone.
//!
//! The broker task reaches a connection through a [`Remote`]: it posts orders (bytes to write,
//! close, pause, resume) into the reactor's mailbox and wakes it; after a drain, the orders for
//! every subscriber of a fan-out reach the reactor under one wake-up. The reactor answers with
//! the same [`Input`]s a connection task sends: `Open`, `Bytes`, `Flushed`, `Closed`.
//!
//! Each round the reactor reads the mailbox, takes the poller's events, and serves the sockets
//! that have work: a socket is read once per round (so a flooder gets no more turns than anyone
//! else) and written until it is drained or full. Reads spend the connection's input credit
//! (see [`INPUT_CREDIT`]), handed back once the broker task has handled the read; a paused
//! connection is not read. When the broker's input channel is full, the reactor stops reading
//! and keeps its further inputs in order until there is room.
//!
//! The flow control is the one a connection task follows too (see `flow`): a socket's
//! [`InputCredit`](super::flow::InputCredit), its [`Outbox`](super::outbox::Outbox) and its
//! closing state machine ([`Life`](super::closing::Life)), whose timers the reactor keeps on
//! one heap and whose actions [`Reactor::step`] carries out.

pub(crate) mod mailbox;
mod outbound;
mod socket;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker_core::ConnectionId;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::closing::{Action, Event, Phase, Timer};
use super::flow::{Credit, INPUT_CREDIT};
use super::input::Input;

pub(crate) use mailbox::{Accepted, Remote};
use mailbox::{Addressed, Mail, Order, Shared};
use outbound::Outbound;
use socket::Socket;

/// Most poller events taken at once.
const EVENTS: usize = 1024;

/// Rounds a reactor runs back to back (kept busy by its mailbox) before it lets other tasks
/// of its worker run.
const ROUNDS_BEFORE_YIELD: usize = 16;

/// The reactors of a server, connections spread over them in turn.
#[derive(Debug, Clone)]
pub(crate) struct Reactors {
    all: Arc<[Arc<Shared>]>,
    next: Arc<AtomicUsize>,
}

impl Reactors {
    /// Spawns `count` reactor tasks (at least one) on the current runtime, feeding `inputs`;
    /// a connection whose unwritten bytes would pass `cap` is closed.
    pub(crate) fn start(
        count: usize,
        inputs: &mpsc::Sender<Input>,
        cap: usize,
    ) -> io::Result<Self> {
        let mut all = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            let shared = Arc::new(Shared::default());
            let reactor = Reactor::new(shared.clone(), inputs.clone(), cap)?;
            drop(tokio::spawn(reactor.run()));
            all.push(shared);
        }
        Ok(Reactors {
            all: all.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Hands an accepted connection to the next reactor, which tells the broker task about it.
    pub(crate) fn open(&self, accepted: Accepted) {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.all.len();
        // A reactor that has ended closed its mailbox: the connection is dropped (and its
        // `max_connections` slot freed) rather than left there.
        self.all[turn].mail(|mail| {
            if !mail.closed {
                mail.opened.push(accepted);
            }
        });
    }

    /// Asks every reactor to close its connections and end.
    pub(crate) fn stop(&self) {
        self.all
            .iter()
            .for_each(|shared| shared.mail(|m| m.stop = true));
    }
}

/// One reactor task's state.
struct Reactor {
    shared: Arc<Shared>,
    poller: AsyncFd<mio::Poll>,
    events: mio::Events,
    sockets: Vec<Option<Socket>>,
    free: Vec<u32>,
    /// Sockets with work for the next round.
    ready: Vec<u32>,
    /// Readable sockets left unread while the input channel was full.
    blocked: Vec<u32>,
    out: Outbound,
    /// Closing deadlines, earliest first (stale entries are skipped).
    deadlines: BinaryHeap<Reverse<(Instant, u32, ConnectionId, Timer)>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    mail: Mail,
    /// What a read lands in before it is copied out at its size.
    scratch: Box<[u8]>,
    cap: usize,
    stopping: bool,
    /// Sockets in the slab.
    live: usize,
    /// Sockets left readable with no input credit: handed-back credit must wake the reactor.
    starved: usize,
}

/// What a wait found.
struct Wake {
    /// The poller has events (taken into `events`).
    events: bool,
}

impl Reactor {
    fn new(shared: Arc<Shared>, inputs: mpsc::Sender<Input>, cap: usize) -> io::Result<Self> {
        let poller = watch(mio::Poll::new()?)?;
        Ok(Reactor {
            shared,
            poller,
            events: mio::Events::with_capacity(EVENTS),
            sockets: Vec::new(),
            free: Vec::new(),
            ready: Vec::new(),
            blocked: Vec::new(),
            out: Outbound::new(inputs),
            deadlines: BinaryHeap::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            mail: Mail::default(),
            scratch: vec![0; INPUT_CREDIT].into_boxed_slice(),
            cap,
            stopping: false,
            live: 0,
            starved: 0,
        })
    }

    async fn run(mut self) {
        let mut rounds = 0;
        loop {
            let wake = poll_fn(|cx| self.poll_wake(cx)).await;
            self.read_mail();
            if wake.events {
                self.take_events();
            }
            let now = Instant::now();
            self.expire(now);
            if self.out.stalled.is_empty() {
                self.unblock();
            }
            self.serve_round(now);
            if self.out.gone && !self.stopping {
                self.stop();
            }
            if self.stopping && self.live == 0 {
                return;
            }
            rounds += 1;
            if !self.ready.is_empty() || rounds == ROUNDS_BEFORE_YIELD {
                rounds = 0;
                tokio::task::yield_now().await;
            }
        }
    }

    /// Waits until there is mail, poller events, an expired deadline, room for stalled inputs
    /// or sockets with work left from the last round.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        self.shared.waker.register(cx.waker());
        // Before the mailbox is looked at: credit handed back after that look wakes us.
        let starved = self.starved > 0;
        self.shared.credit_wanted.store(starved, Ordering::SeqCst);
        let events = poll_events(&mut self.poller, &mut self.events, cx);
        let flushed = !self.out.stalled.is_empty() && self.out.poll_flush(cx).is_ready();
        let timer = self.arm_timer() && self.timer.as_mut().poll(cx).is_ready();
        if events || flushed || timer || !self.ready.is_empty() || self.shared.has_mail() {
            Poll::Ready(Wake { events })
        } else {
            Poll::Pending
        }
    }

    /// Sets the timer to the earliest deadline; `false` if there is none.
    fn arm_timer(&mut self) -> bool {
        let Some(Reverse((at, ..))) = self.deadlines.peek() else {
            return false;
        };
        let at = tokio::time::Instant::from_std(*at);
        if self.timer.deadline() != at {
            self.timer.as_mut().reset(at);
        }
        true
    }

    fn read_mail(&mut self) {
        self.shared.take_mail(&mut self.mail);
        let mut mail = std::mem::take(&mut self.mail);
        if mail.stop {
            mail.stop = false;
            self.stop();
        }
        for accepted in mail.opened.drain(..) {
            self.open(accepted);
        }
        for (slot, conn, credit) in mail.credit.drain(..) {
            if let Some(socket) = find(&mut self.sockets, slot, conn) {
                socket.credit.give_back(credit);
                if std::mem::take(&mut socket.starved) {
                    self.starved -= 1;
                }
                list(&mut self.ready, slot, socket);
            }
        }
        for Addressed { slot, conn, order } in mail.orders.drain(..) {
            self.obey(slot, conn, order);
        }
        self.mail = mail;
    }

    fn open(&mut self, accepted: Accepted) {
        let Accepted {
            conn,
            info,
            mut stream,
            slot: place,
        } = accepted;
        if self.stopping {
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => match u32::try_from(self.sockets.len()) {
                Ok(slot) => {
                    if self.sockets.len() == self.sockets.capacity() {
                        // Grown by an eighth, not doubled: little room is left unused at rest.
                        self.sockets.reserve_exact(self.sockets.len() / 8 + 16);
                    }
                    self.sockets.push(None);
                    slot
                }
                Err(_) => return warn!(%conn, "reactor full; dropping the connection"),
            },
        };
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        let registry = self.poller.get_ref().registry();
        if let Err(error) = registry.register(&mut stream, mio::Token(slot as usize), interest) {
            self.free.push(slot);
            return warn!(%conn, %error, "cannot watch the connection; dropping it");
        }
        self.sockets[slot as usize] = Some(Socket::new(conn, stream, place));
        self.live += 1;
        let sink = Remote {
            shared: self.shared.clone(),
            slot,
        };
        self.out.send(Input::Open {
            conn,
            info,
            sink: super::input::Sink::Reactor(sink),
        });
    }

    fn obey(&mut self, slot: u32, conn: ConnectionId, order: Order) {
        let cap = self.cap;
        let Some(socket) = find(&mut self.sockets, slot, conn) else {
            return; // gone already
        };
        match order {
            Order::Write(chunks) => {
                if !socket.queue(chunks, cap) {
                    warn!(%conn, "write queue full or closing; closing the connection");
                    socket.life.on(Event::BrokerClosed, Instant::now());
                }
            }
            Order::Close => {
                socket.life.on(Event::BrokerClosed, Instant::now());
            }
            Order::Pause(paused) => socket.paused = paused,
        }
        list(&mut self.ready, slot, socket);
    }

    fn take_events(&mut self) {
        for event in &self.events {
            let slot = event.token().0 as u32;
            if let Some(Some(socket)) = self.sockets.get_mut(slot as usize) {
                socket.read_closed |= event.is_read_closed() || event.is_error();
                socket.readable |= event.is_readable() || socket.read_closed;
                socket.writable |=
                    event.is_writable() || event.is_write_closed() || event.is_error();
                list(&mut self.ready, slot, socket);
            }
        }
        self.events.clear();
    }

    /// Ends connections whose closing deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, slot, conn, timer))) = self.deadlines.peek().copied() {
            if at > now {
                return;
            }
            self.deadlines.pop();
            if find(&mut self.sockets, slot, conn).is_none_or(|s| s.life.timer() != timer) {
                continue; // gone, or its timer changed since
            }
            if !self.step(slot, Event::Deadline(timer), now) {
                debug!(%conn, "closing connection timed out");
            }
        }
    }

    /// Lists the sockets left unread while the input channel was full.
    fn unblock(&mut self) {
        for slot in std::mem::take(&mut self.blocked) {
            if let Some(Some(socket)) = self.sockets.get_mut(slot as usize) {
                list(&mut self.ready, slot, socket);
            }
        }
    }

    /// Closes every connection (the broker task is going or gone).
    fn stop(&mut self) {
        self.stopping = true;
        for (slot, socket) in self.sockets.iter_mut().enumerate() {
            if let Some(socket) = socket {
                socket.life.on(Event::BrokerClosed, Instant::now());
                list(&mut self.ready, slot as u32, socket);
            }
        }
    }

    /// Serves every socket listed for this round once.
    fn serve_round(&mut self, now: Instant) {
        let round = std::mem::take(&mut self.ready);
        for &slot in &round {
            self.serve(slot, now);
        }
        if self.ready.is_empty() {
            self.ready = round;
            self.ready.clear();
        }
    }

    fn serve(&mut self, slot: u32, now: Instant) {
        let Some(Some(socket)) = self.sockets.get_mut(slot as usize) else {
            return;
        };
        socket.listed = false;
        let conn = socket.conn;
        let flushed = match socket.write() {
            Ok(flushed) => flushed,
            Err(error) => {
                debug!(%conn, %error, "write failed");
                self.step(slot, Event::ClientClosed, now);
                return;
            }
        };
        if flushed > 0 && socket.life.broker_knows() {
            self.out.send(Input::Flushed {
                conn,
                bytes: flushed,
            });
        }
        // The write stops when everything is written or the socket is full.
        let left = if socket.out_is_empty() {
            Event::AllWritten
        } else {
            Event::Blocked
        };
        self.step(slot, Event::Wrote(flushed), now);
        self.step(slot, left, now);
        if !self.read(slot) {
            self.step(slot, Event::ClientClosed, now);
            return;
        }
        let reading = self.out.stalled.is_empty();
        if let Some(Some(socket)) = self.sockets.get_mut(slot as usize)
            && socket.has_work(reading)
        {
            list(&mut self.ready, slot, socket);
        }
    }

    /// One read of the socket at `slot` (or, once the broker closed it, reads discarding the
    /// input); `false` once the connection is to go.
    fn read(&mut self, slot: u32) -> bool {
        let Some(Some(socket)) = self.sockets.get_mut(slot as usize) else {
            return true;
        };
        if socket.life.phase() != Phase::Open {
            return socket.discard(&mut self.scratch);
        }
        if !socket.readable || socket.paused {
            return true;
        }
        if !self.out.stalled.is_empty() {
            self.blocked.push(slot);
            return true;
        }
        if socket.credit.left() == 0 {
            return true; // starved since its last read; handed-back credit lists it
        }
        let conn = socket.conn;
        match socket.read(&mut self.scratch) {
            Ok(Some((data, amount))) => {
                if socket.credit.left() == 0 && socket.readable {
                    // More is waiting: the credit the broker task hands back wakes the reactor.
                    socket.starved = true;
                    self.starved += 1;
                }
                let shared = self.shared.clone();
                let credit = Credit::new(move || shared.give_back(slot, conn, amount));
                let data = Bytes::from(data);
                self.out.send(Input::Bytes { conn, data, credit });
                true
            }
            Ok(None) => true,
            Err(error) => {
                debug!(%conn, %error, "connection ended");
                false
            }
        }
    }

    /// Feeds `event` to the closing state machine of the socket at `slot` and does what it
    /// says: arms its timer on the heap, shuts the socket down, or drops it. `false` once the
    /// socket is gone.
    fn step(&mut self, slot: u32, event: Event, now: Instant) -> bool {
        let Some(Some(socket)) = self.sockets.get_mut(slot as usize) else {
            return false;
        };
        let conn = socket.conn;
        match socket.life.on(event, now) {
            Action::Nothing => {}
            Action::Arm(at) => {
                let timer = socket.life.timer();
                self.deadlines.push(Reverse((at, slot, conn, timer)));
            }
            Action::ShutDown { drain_until } => {
                socket.shut_down();
                let timer = socket.life.timer();
                self.deadlines
                    .push(Reverse((drain_until, slot, conn, timer)));
                self.out.send(Input::Closed { conn });
            }
            Action::Drop { report } => {
                self.remove(slot, report);
                return false;
            }
        }
        true
    }

    /// Drops the connection at `slot`; `report`: tells the broker task first.
    fn remove(&mut self, slot: u32, report: bool) {
        let Some(socket) = self.sockets.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if report {
            self.out.send(Input::Closed { conn: socket.conn });
        }
        if socket.starved {
            self.starved -= 1;
        }
        self.free.push(slot);
        self.live -= 1;
        if self.live == 0 {
            self.sockets = Vec::new();
            self.free = Vec::new();
        }
    }
}

impl Drop for Reactor {
    /// When the task ends, and also if it panics or its runtime drops it: the mailbox is
    /// closed, so later connections are dropped rather than left in it, and the broker task
    /// hears (as far as its channel has room) that every connection still here is gone.
    fn drop(&mut self) {
        self.shared.close();
        for socket in self.sockets.iter().flatten() {
            if socket.life.broker_knows() {
                let _ = self
                    .out
                    .inputs
                    .try_send(Input::Closed { conn: socket.conn });
            }
        }
    }
}

/// `owned` (a poller or a listening socket, which owns its one descriptor) watched by the
/// runtime for readability.
///
/// tokio deprecates this safe constructor because a caller could hand over a descriptor it
/// does not own and close it while registered (the replacement is `unsafe`). An owning `T`
/// keeps its descriptor open and unchanged until the `AsyncFd` has deregistered it on drop:
/// the contract of the unsafe constructor holds, and this crate stays free of `unsafe`.
pub(crate) fn watch<T: AsRawFd>(owned: T) -> io::Result<AsyncFd<T>> {
    #[allow(deprecated)]
    AsyncFd::with_interest(owned, tokio::io::Interest::READABLE)
}

/// The socket at `slot` if it is still `conn`'s.
fn find(sockets: &mut [Option<Socket>], slot: u32, conn: ConnectionId) -> Option<&mut Socket> {
    let socket = sockets.get_mut(slot as usize)?.as_mut()?;
    (socket.conn == conn).then_some(socket)
}

/// Puts `socket` on the list for the next round (once).
fn list(ready: &mut Vec<u32>, slot: u32, socket: &mut Socket) {
    if !socket.listed {
        socket.listed = true;
        ready.push(slot);
    }
}

/// Takes the poller's events if it has any; `false` (the runtime watching for more) if not.
/// Fewer events than there is room for means the poller was emptied: its readiness is cleared
/// at once (a later event is a new edge for the runtime), which saves asking it again only to
/// find it empty.
fn poll_events(
    poller: &mut AsyncFd<mio::Poll>,
    events: &mut mio::Events,
    cx: &mut Context<'_>,
) -> bool {
    loop {
        let Poll::Ready(Ok(mut guard)) = poller.poll_read_ready_mut(cx) else {
            return false;
        };
        match guard.get_inner_mut().poll(events, Some(Duration::ZERO)) {
            Ok(()) if events.iter().count() < EVENTS => {
                guard.clear_ready();
                if !events.is_empty() {
                    // Registers for the next edge (no system call: tokio's record is read).
                    let _ = poller.poll_read_ready_mut(cx);
                    return true;
                }
            }
            Ok(()) => return true,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => {
                warn!(%error, "poller failed");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests;
