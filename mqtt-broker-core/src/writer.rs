//! Turning packets into `Transmit` outputs for one connection, counting the outbox, and the two
//! ways a connection ends from the broker's side: DISCONNECT-then-close, or close.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use mqtt_wire::{Disconnect, MqttStr, Packet, PacketType, ReasonCode};

use crate::broker::Broker;
use crate::conn::Phase;
use crate::ids::ConnectionId;
use crate::output::Output;
use crate::persist::Persistence;

impl Broker {
    /// Queues `data` for `conn` and counts it in the outbox. Nothing is sent on a connection
    /// that is closing [MQTT5-3.14.4-1].
    pub(crate) fn transmit(&mut self, conn: ConnectionId, data: Vec<Bytes>, now: Instant) {
        let len: usize = data.iter().map(Bytes::len).sum();
        if !self.count_outbox(conn, len, now) {
            return;
        }
        match self.joinable_transmit(conn) {
            Some(chunks) => chunks.extend(data),
            None => self.emit(Output::Transmit { conn, data }),
        }
    }

    /// Queues a PUBLISH as its header and its (shared, not copied) payload, like
    /// [`Broker::transmit`]; joined to the previous output when that is a transmit to the same
    /// connection, so a run of messages to one subscriber costs no allocation per message.
    pub(crate) fn transmit_publish(
        &mut self,
        conn: ConnectionId,
        header: Bytes,
        payload: Bytes,
        now: Instant,
    ) {
        if !self.count_outbox(conn, header.len() + payload.len(), now) {
            return;
        }
        if let Some(chunks) = self.joinable_transmit(conn) {
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
        self.emit(Output::Transmit { conn, data });
    }

    /// Counts `len` bytes about to be sent on `conn` at `now`; `false` when it is closing or
    /// gone.
    fn count_outbox(&mut self, conn: ConnectionId, len: usize, now: Instant) -> bool {
        match self.conns.get_mut(&conn) {
            Some(c) if !matches!(c.phase, Phase::Closing) => {
                if c.outbox == 0 {
                    c.last_progress = now; // it starts waiting for the socket now
                }
                c.outbox += len;
            }
            _ => return false,
        }
        self.memory.outbox = self.memory.outbox.saturating_add(len);
        self.stats.bytes_sent += len as u64;
        self.stats.packets_sent += 1;
        true
    }

    /// The chunks of the last output queued, when it is a `Transmit` to `conn`: new chunks may
    /// join it without reordering anything. Never in `Sync` persistence, where outputs may be
    /// held back behind a batch.
    fn joinable_transmit(&mut self, conn: ConnectionId) -> Option<&mut Vec<Bytes>> {
        if self.config.persistence == Persistence::Sync {
            return None;
        }
        match self.outputs.back_mut() {
            Some(Output::Transmit { conn: last, data }) if *last == conn => Some(data),
            _ => None,
        }
    }

    /// Encodes `packet` in the connection's version and queues it. A packet the codec refuses to
    /// encode is a broker bug; it is dropped rather than sent malformed.
    pub(crate) fn send_packet(&mut self, conn: ConnectionId, packet: &Packet, now: Instant) {
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else {
            return;
        };
        let buf = self.scratch_buffer();
        if packet.encode(version, buf).is_ok() {
            let bytes = buf.split().freeze();
            self.transmit(conn, vec![bytes], now);
        }
    }

    /// The buffer headers and small packets are encoded into, with room for at least one of
    /// them; each is split off it, so many share one allocation.
    pub(crate) fn scratch_buffer(&mut self) -> &mut BytesMut {
        const BLOCK: usize = 16 * 1024;
        const ROOM: usize = 1024;
        if self.scratch.capacity() < ROOM {
            self.scratch = BytesMut::with_capacity(BLOCK);
        }
        &mut self.scratch
    }

    /// Ends `conn` from the broker's side: a DISCONNECT carrying `reason` for a v5 client whose
    /// CONNECT was accepted [MQTT5-3.14.0-1], then a close [MQTT5-4.13.1-1].
    pub(crate) fn disconnect(&mut self, conn: ConnectionId, reason: ReasonCode, now: Instant) {
        self.disconnect_explained(conn, reason, None, now);
    }

    /// [`Broker::disconnect`] with a reason string for the client's logs, left out when it would
    /// make the packet larger than the client accepts [MQTT5-3.14.2-3].
    pub(crate) fn disconnect_explained(
        &mut self,
        conn: ConnectionId,
        reason: ReasonCode,
        explanation: Option<&'static str>,
        now: Instant,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.version.is_v5() && matches!(c.phase, Phase::Connected(_)) {
            let reason_code = if reason.is_valid_for(PacketType::Disconnect) {
                reason
            } else {
                ReasonCode::UnspecifiedError
            };
            let mut disconnect = Disconnect {
                reason_code,
                ..Disconnect::default()
            };
            disconnect.properties.reason_string = explanation.map(MqttStr::from_static);
            let mut packet = Packet::Disconnect(disconnect);
            if packet.encoded_len(c.version) > c.max_packet_size as usize {
                packet = Packet::Disconnect(Disconnect {
                    reason_code,
                    ..Disconnect::default()
                });
            }
            self.send_packet(conn, &packet, now);
        }
        self.close(conn, reason, now);
    }

    /// Emits `Close` for `conn` once and detaches it from its session; later input is ignored.
    pub(crate) fn close(&mut self, conn: ConnectionId, reason: ReasonCode, now: Instant) {
        match self.conns.get(&conn) {
            Some(c) if !matches!(c.phase, Phase::Closing) => {}
            _ => return,
        }
        self.end_connection(conn, reason, now);
        self.emit(Output::Close { conn });
    }
}
