//! What to do with each decoded packet, given where its connection is in its life, and how
//! malformed input, protocol violations and clients that do not read end their connection.

use std::time::Instant;

use mqtt_wire::{DecodeError, Packet, PacketRef, ProtocolVersion, ReasonCode};

use crate::broker::Broker;
use crate::conn::Phase;
use crate::error::ProtocolViolation;
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::output::Event;

impl Broker {
    /// A client that sends but does not read lets its answers pile up: past twice the outbox
    /// bound it gets DISCONNECT 0x97 (v5) and is closed, so its memory stays bounded.
    pub(crate) fn check_outbox(&mut self, conn: ConnectionId, now: Instant) {
        let limit = self.config.max_outbox_bytes.saturating_mul(2);
        if self.conns.get(&conn).is_some_and(|c| c.outbox > limit) {
            self.stats.slow_consumers_closed += 1;
            let why = Some("outbox limit exceeded");
            self.disconnect_explained(conn, ReasonCode::QuotaExceeded, why, now);
        }
    }

    /// Dispatches one decoded packet. A PUBLISH borrows from the batch it was decoded from; its
    /// handler takes views only of what it keeps.
    pub(crate) fn handle_packet(
        &mut self,
        conn: ConnectionId,
        packet: PacketRef<'_>,
        now: Instant,
    ) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let packet = match (&c.phase, packet) {
            (Phase::Connected(session), PacketRef::Publish(publish)) => {
                let session = *session;
                if let Err(violation) = self.handle_publish(conn, session, publish, now) {
                    self.protocol_error(conn, violation, now);
                }
                return;
            }
            (_, packet) => packet.into_packet(),
        };
        let result = match (&c.phase, packet) {
            (Phase::AwaitingConnect, Packet::Connect(connect)) => {
                // `Packet::Connect` may hold the CONNECT boxed or not; either way it ends boxed.
                #[allow(clippy::useless_conversion)]
                self.handle_connect(conn, connect.into(), now);
                Ok(())
            }
            (Phase::AwaitingConnect, _) => Err(ProtocolViolation::new(
                "MQTT-3.1.0-1",
                "first packet is not CONNECT",
                ReasonCode::ProtocolError,
            )),
            (Phase::Authenticating(_), Packet::Auth(auth)) => {
                self.handle_connect_auth(conn, auth, now);
                Ok(())
            }
            (Phase::Authenticating(_) | Phase::Admitting(_), _) => Err(ProtocolViolation::new(
                "MQTT-3.1.2-30",
                "packet other than AUTH before CONNACK",
                ReasonCode::ProtocolError,
            )),
            (Phase::Closing, _) => Ok(()),
            (Phase::Connected(_), Packet::Connect(_)) => Err(ProtocolViolation::new(
                "MQTT-3.1.0-2",
                "second CONNECT",
                ReasonCode::ProtocolError,
            )),
            (Phase::Connected(session), packet) => {
                let session = *session;
                self.handle_session_packet(conn, session, packet, now)
            }
        };
        if let Err(violation) = result {
            self.protocol_error(conn, violation, now);
        }
    }

    /// Packets of an established connection.
    fn handle_session_packet(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        packet: Packet,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        match packet {
            // The decoder hands every PUBLISH over in place (`PacketRef::Publish`, handled in
            // `handle_packet`); an owned one cannot come from a client.
            Packet::Publish(_) => Err(ProtocolViolation::new(
                "MQTT-4.13.1-1",
                "PUBLISH not decoded in place",
                ReasonCode::ImplementationSpecificError,
            )),
            Packet::PubAck(ack) => self.handle_puback(session, ack, now),
            Packet::PubRec(ack) => self.handle_pubrec(conn, session, ack, now),
            Packet::PubRel(ack) => {
                self.handle_pubrel(conn, session, ack, now);
                Ok(())
            }
            Packet::PubComp(ack) => self.handle_pubcomp(session, ack, now),
            Packet::Subscribe(subscribe) => self.handle_subscribe(conn, session, subscribe, now),
            Packet::Unsubscribe(unsubscribe) => {
                self.handle_unsubscribe(conn, session, unsubscribe, now);
                Ok(())
            }
            Packet::PingReq => {
                self.send_packet(conn, &Packet::PingResp, now); // [MQTT-3.12.4-1]
                Ok(())
            }
            Packet::Disconnect(disconnect) => {
                self.handle_disconnect(conn, session, disconnect, now)
            }
            Packet::Auth(auth) => self.handle_reauth(conn, auth, now),
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Err(ProtocolViolation::new(
                "MQTT-4.13.1-1",
                "server-to-client packet sent by a client",
                ReasonCode::ProtocolError,
            )),
        }
    }

    /// Malformed bytes: answer per version and phase, then close.
    pub(crate) fn decode_failed(&mut self, conn: ConnectionId, error: DecodeError, now: Instant) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if matches!(c.phase, Phase::AwaitingConnect) {
            // Before CONNECT there is no version to speak: only an unsupported protocol level
            // gets a CONNACK [MQTT-3.1.2-2]; a CONNECT that named level 5 before breaking gets a
            // v5 CONNACK with the reason [MQTT5-3.1.4-1]; everything else closes silently
            // [MQTT-3.1.4-1].
            if let DecodeError::UnsupportedProtocolVersion(level) = error {
                self.refuse_unsupported_version(conn, level, now);
            } else if c.decoder.version().is_some_and(|v| v.is_v5()) {
                self.stats.protocol_errors += 1;
                self.event(Event::ProtocolError {
                    conn,
                    spec_id: error.spec_id_for(ProtocolVersion::V5),
                    reason: error.reason_code(),
                });
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.version = ProtocolVersion::V5;
                }
                self.refuse(conn, error.reason_code(), now);
            } else {
                self.stats.protocol_errors += 1;
                self.event(Event::ProtocolError {
                    conn,
                    spec_id: error.spec_id(),
                    reason: error.reason_code(),
                });
                self.close(conn, error.reason_code(), now);
            }
            return;
        }
        let spec_id = error.spec_id_for(c.version);
        let reason = error.reason_code();
        self.stats.protocol_errors += 1;
        self.event(Event::ProtocolError {
            conn,
            spec_id,
            reason,
        });
        self.disconnect(conn, reason, now);
    }

    /// A well-formed but illegal packet: DISCONNECT with its reason (v5), then close
    /// [MQTT5-4.13.1-1] [MQTT311-4.8.0-1].
    pub(crate) fn protocol_error(
        &mut self,
        conn: ConnectionId,
        violation: ProtocolViolation,
        now: Instant,
    ) {
        self.stats.protocol_errors += 1;
        self.event(Event::ProtocolError {
            conn,
            spec_id: Some(violation.spec_id),
            reason: violation.reason,
        });
        self.disconnect_explained(conn, violation.reason, Some(violation.what), now);
    }
}
