//! A packet for one connection (encoded and counted by the [`Outbox`](crate::outbox::Outbox)),
//! and the two ways a connection ends from the broker's side: DISCONNECT-then-close, or close.

use std::time::Instant;

use mqtt_wire::{Disconnect, MqttStr, Packet, PacketType, ReasonCode};

use crate::broker::Broker;
use crate::conn::Phase;
use crate::ids::ConnectionId;
use crate::output::Output;

impl Broker {
    /// Encodes `packet` for `conn` and queues it (see `Outbox::send_packet`).
    pub(crate) fn send_packet(&mut self, conn: ConnectionId, packet: &Packet, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            self.out.send_packet(conn, c, packet, now);
        }
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
