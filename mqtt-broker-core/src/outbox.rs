//! The outbox: everything the broker hands to its caller, in order. It owns the output queue,
//! the buffer packets are encoded into, the durability gate that holds outputs back in `Sync`
//! persistence, and the count of bytes handed out and not yet reported flushed. A connection's
//! own share of that count lives in its `Conn`, which the caller passes in.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_wire::Packet;

use crate::conn::Conn;
use crate::error::ApiMisuse;
use crate::gate::DurabilityGate;
use crate::ids::{ConnectionId, SessionId};
use crate::output::{Event, Output};
use crate::persist::{PersistRecord, Persistence};

/// The queue of outputs with its encoding buffer, durability gate and byte counts.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Output>,
    /// Spare capacity that outgoing packets are encoded into, then split off.
    scratch: BytesMut,
    /// Records not yet handed out, and outputs waiting for durability.
    gate: DurabilityGate,
    persistence: Persistence,
    /// Bytes handed out for all connections and not yet reported flushed.
    unflushed: usize,
    /// Bytes handed out since the start.
    bytes_sent: u64,
    /// Transmits handed out since the start.
    packets_sent: u64,
}

impl Outbox {
    /// An empty outbox; `persistence` says whether records are kept and outputs may be held.
    pub(crate) fn new(persistence: Persistence) -> Self {
        Outbox {
            queue: VecDeque::new(),
            scratch: BytesMut::new(),
            gate: DurabilityGate::default(),
            persistence,
            unflushed: 0,
            bytes_sent: 0,
            packets_sent: 0,
        }
    }

    /// The next output for the caller: a batch of records first, then the queue.
    pub(crate) fn poll(&mut self) -> Option<Output> {
        if let Some(batch) = self.gate.take_batch() {
            return Some(Output::Persist(batch));
        }
        self.queue.pop_front()
    }

    /// Queues `output`, for a connection of `session` if any. In `Sync` mode it is held if it
    /// needs a batch that is not durable yet, or if an earlier output on its connection is held.
    pub(crate) fn emit(&mut self, output: Output, session: Option<SessionId>) {
        if self.persistence != Persistence::Sync {
            self.queue.push_back(output);
            return;
        }
        if let Some(output) = self.gate.admit(output, session) {
            self.queue.push_back(output);
        }
    }

    /// Queues an output that no durability rule concerns (events, authentication requests,
    /// pause and resume orders), at once.
    pub(crate) fn push(&mut self, output: Output) {
        self.queue.push_back(output);
    }

    /// Queues `event`.
    pub(crate) fn event(&mut self, event: Event) {
        self.push(Output::Event(event));
    }

    /// Queues `data` for `conn` (whose state is `c`) and counts it. Nothing is sent on a
    /// connection that is closing [MQTT5-3.14.4-1].
    pub(crate) fn transmit(
        &mut self,
        conn: ConnectionId,
        c: &mut Conn,
        data: Vec<Bytes>,
        now: Instant,
    ) {
        let len: usize = data.iter().map(Bytes::len).sum();
        if !self.count(c, len, now) {
            return;
        }
        match self.joinable(conn) {
            Some(chunks) => chunks.extend(data),
            None => self.emit(Output::Transmit { conn, data }, c.session()),
        }
    }

    /// Queues a PUBLISH as its header and its (shared, not copied) payload, like
    /// [`Outbox::transmit`]; joined to the previous output when that is a transmit to the same
    /// connection, so a run of messages to one subscriber costs no allocation per message.
    pub(crate) fn transmit_publish(
        &mut self,
        conn: ConnectionId,
        c: &mut Conn,
        header: Bytes,
        payload: Bytes,
        now: Instant,
    ) {
        if !self.count(c, header.len() + payload.len(), now) {
            return;
        }
        if let Some(chunks) = self.joinable(conn) {
            chunks.push(header);
            if !payload.is_empty() {
                chunks.push(payload);
            }
            return;
        }
        let mut data = Vec::with_capacity(2);
        data.push(header);
        if !payload.is_empty() {
            data.push(payload);
        }
        self.emit(Output::Transmit { conn, data }, c.session());
    }

    /// Encodes `packet` in the version of `conn` and queues it. A packet the codec refuses to
    /// encode is a broker bug; it is dropped rather than sent malformed.
    pub(crate) fn send_packet(
        &mut self,
        conn: ConnectionId,
        c: &mut Conn,
        packet: &Packet,
        now: Instant,
    ) {
        let buf = self.scratch();
        if packet.encode(c.version, buf).is_ok() {
            let bytes = buf.split().freeze();
            self.transmit(conn, c, vec![bytes], now);
        }
    }

    /// The buffer headers and small packets are encoded into, with room for at least one of
    /// them; each is split off it, so many share one allocation.
    pub(crate) fn scratch(&mut self) -> &mut BytesMut {
        const BLOCK: usize = 16 * 1024;
        const ROOM: usize = 1024;
        if self.scratch.capacity() < ROOM {
            self.scratch = BytesMut::with_capacity(BLOCK);
        }
        &mut self.scratch
    }

    /// `conn` is gone: outputs held for it are dropped.
    pub(crate) fn forget(&mut self, conn: ConnectionId) {
        self.gate.forget(conn);
    }

    /// `bytes` handed out for a connection were written (or dropped with it).
    pub(crate) fn flushed(&mut self, bytes: usize) {
        self.unflushed = self.unflushed.saturating_sub(bytes);
    }

    /// Bytes handed out for all connections and not yet reported flushed.
    pub(crate) fn unflushed(&self) -> usize {
        self.unflushed
    }

    /// Bytes and transmits handed out since the start.
    pub(crate) fn sent(&self) -> (u64, u64) {
        (self.bytes_sent, self.packets_sent)
    }

    /// Whether changes of durable state are recorded (persistence is on).
    pub(crate) fn recording(&self) -> bool {
        self.persistence != Persistence::Off
    }

    /// Adds `record` to the batch being filled, as a record of `session` when given; nothing
    /// when persistence is off.
    pub(crate) fn record(&mut self, record: PersistRecord, session: Option<SessionId>) {
        if self.recording() {
            self.gate.record(record, session);
        }
    }

    /// A record of `session` goes into the batch being filled (the caller adds it next).
    pub(crate) fn mark(&mut self, session: SessionId) {
        self.gate.mark(session);
    }

    /// Every batch up to `seq` is durable: outputs that waited for them are released, in order,
    /// each once nothing before it on its connection is still held.
    pub(crate) fn persisted(&mut self, seq: u64) -> Result<(), ApiMisuse> {
        self.gate.persisted(seq, &mut self.queue)
    }

    /// Counts `len` bytes about to be sent on `c` at `now`; `false` when it is closing.
    fn count(&mut self, c: &mut Conn, len: usize, now: Instant) -> bool {
        if !c.start_sending(len, now) {
            return false;
        }
        self.unflushed = self.unflushed.saturating_add(len);
        self.bytes_sent += len as u64;
        self.packets_sent += 1;
        true
    }

    /// The chunks of the last output queued, when it is a `Transmit` to `conn`: new chunks may
    /// join it without reordering anything. Never in `Sync` persistence, where outputs may be
    /// held back behind a batch.
    fn joinable(&mut self, conn: ConnectionId) -> Option<&mut Vec<Bytes>> {
        if self.persistence == Persistence::Sync {
            return None;
        }
        match self.queue.back_mut() {
            Some(Output::Transmit { conn: last, data }) if *last == conn => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Phase;
    use crate::ids::ConnectionInfo;
    use mqtt_wire::Packet;

    fn conn(now: Instant) -> Conn {
        Conn::new(ConnectionInfo::default(), u32::MAX, now)
    }

    fn transmits(out: &mut Outbox) -> Vec<(ConnectionId, usize)> {
        std::iter::from_fn(|| out.poll())
            .filter_map(|o| match o {
                Output::Transmit { conn, data } => Some((conn, data.len())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn publishes_to_one_connection_join_one_transmit_and_are_counted() {
        let now = crate::test_epoch();
        let mut out = Outbox::new(Persistence::Off);
        let (a, b) = (ConnectionId(1), ConnectionId(2));
        let (mut ca, mut cb) = (conn(now), conn(now));
        let header = Bytes::from_static(b"\x30\x05\x00\x01t");
        let payload = Bytes::from_static(b"hi");
        out.transmit_publish(a, &mut ca, header.clone(), payload.clone(), now);
        out.transmit_publish(a, &mut ca, header.clone(), payload.clone(), now);
        out.transmit_publish(b, &mut cb, header.clone(), payload.clone(), now);
        out.transmit_publish(a, &mut ca, header, payload, now);
        assert_eq!(transmits(&mut out), vec![(a, 4), (b, 2), (a, 2)]);
        assert_eq!((ca.outbox, cb.outbox), (21, 7));
        assert_eq!(out.unflushed(), 28);
        assert_eq!(out.sent(), (28, 4));
        out.flushed(7);
        assert_eq!(out.unflushed(), 21);
    }

    #[test]
    fn nothing_is_sent_or_counted_on_a_closing_connection() {
        let now = crate::test_epoch();
        let mut out = Outbox::new(Persistence::Off);
        let mut c = conn(now);
        c.phase = Phase::Closing;
        out.send_packet(ConnectionId(1), &mut c, &Packet::PingResp, now);
        assert!(out.poll().is_none(), "[MQTT5-3.14.4-1]");
        assert_eq!((c.outbox, out.unflushed()), (0, 0));
    }

    #[test]
    fn in_sync_mode_transmits_are_not_joined_and_records_come_first() {
        let now = crate::test_epoch();
        let mut out = Outbox::new(Persistence::Sync);
        let a = ConnectionId(1);
        let mut c = conn(now);
        out.send_packet(a, &mut c, &Packet::PingResp, now);
        out.send_packet(a, &mut c, &Packet::PingResp, now);
        out.record(PersistRecord::RetainedCleared { topic: "t".into() }, None);
        assert!(matches!(out.poll(), Some(Output::Persist(batch)) if batch.seq == 1));
        assert_eq!(transmits(&mut out), vec![(a, 1), (a, 1)]);
    }
}
