//! Inbound PUBLISH (topic aliases, validation, authorization, exactly-once bookkeeping, the
//! acknowledgement its QoS demands) and the acknowledgements of outbound QoS 1/2 exchanges.

use std::time::Instant;

use mqtt_topic::TopicName;
use mqtt_wire::{
    Ack, MqttStr, Packet, PacketId, PacketType, PublishQos, PublishRef, QoS, ReasonCode,
};

use crate::broker::Broker;
use crate::error::ProtocolViolation;
use crate::hooks::{Authorization, ClientRef};
use crate::ids::ConnectionId;
use crate::ids::SessionId;
use crate::inflight::{Acked, RecOutcome};
use crate::message::Origin;
use crate::message::{Message, RetainSource};
use crate::persist::{DeliveryState, PersistRecord};

/// Topics the broker publishes its statistics under.
const SYS_PREFIX: &str = "$SYS/";

/// Whether clients may not write `topic`: everything under `$SYS/` belongs to the broker,
/// except a bridge's state, `$SYS/broker/connection/<name>/state`, which bridges (mosquitto's
/// and ours) publish and set as their will on the broker they connect to, as mosquitto
/// allows. The authorizer still decides on those.
pub(crate) fn reserved_for_broker(topic: &[u8]) -> bool {
    let Some(rest) = topic.strip_prefix(SYS_PREFIX.as_bytes()) else {
        return false;
    };
    let bridge_state = rest
        .strip_prefix(b"broker/connection/")
        .and_then(|name| name.strip_suffix(b"/state"))
        .is_some_and(|name| !name.is_empty() && !name.contains(&b'/'));
    !bridge_state
}

impl Broker {
    /// A PUBLISH from a connected client, borrowed from the batch it was decoded from: topic and
    /// payload are read in place. Nothing is taken from the received frame until the topic is
    /// valid; the payload only for a message that is routed. The message is marked as a view into
    /// the read, to be copied out of it if it is kept long.
    pub(crate) fn handle_publish(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        mut publish: PublishRef<'_>,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let (qos, retain) = (publish.qos, publish.retain);
        let mut properties = core::mem::take(&mut publish.properties);
        let (Some(c), Some(s)) = (self.conns.get_mut(&conn), self.sessions.get_mut(&session))
        else {
            return Ok(());
        };
        let v5 = c.version.is_v5();
        let rules = self.config.rules(c.info.listener);
        if qos.qos() > rules.maximum_qos {
            // The client was told (v5 CONNACK Maximum QoS) [MQTT5-3.2.2-11]; a 3.x client
            // cannot be, and is disconnected as mosquitto does.
            return Err(ProtocolViolation::new(
                "MQTT-3.2.2-11",
                "PUBLISH above the server's Maximum QoS",
                ReasonCode::QoSNotSupported,
            ));
        }
        // Read, then cleared only when set: writing to empty properties would allocate.
        let alias = properties.topic_alias;
        if alias.is_some() {
            properties.topic_alias = None;
        }
        let invalid_name = |_| {
            ProtocolViolation::new(
                "MQTT-3.3.2-2",
                "invalid topic name in PUBLISH",
                ReasonCode::TopicNameInvalid,
            )
        };
        let received = publish.topic();
        let (topic, name) = match alias {
            Some(alias) if v5 => {
                let maximum = rules.topic_alias_maximum;
                let topic = c
                    .inbound_aliases
                    .resolve(alias, &publish.topic_str(), maximum)?;
                let name = TopicName::with_limits(topic.clone().into_bytes(), &self.topic_limits)
                    .map_err(invalid_name)?;
                (topic, name)
            }
            None if v5 && received.is_empty() => {
                return Err(ProtocolViolation::new(
                    "MQTT-3.3.2-1",
                    "empty topic name without a topic alias",
                    ReasonCode::ProtocolError,
                ));
            }
            _ => {
                // The codec validated the topic's UTF-8: the `str` view proves it.
                let topic = publish.topic_str();
                let name = TopicName::with_limits_utf8(
                    topic.clone().into_bytes(),
                    received,
                    &self.topic_limits,
                )
                .map_err(invalid_name)?;
                (topic, name)
            }
        };
        // Behind the listener's mount point, the joined topic checked against the limits.
        let (topic, name) = match &rules.mount_point {
            None => (topic, name),
            Some(_) => {
                let mounted = rules.mount(&topic).ok_or_else(|| {
                    ProtocolViolation::new(
                        "MQTT-3.3.2-2",
                        "topic name too long behind the listener's mount point",
                        ReasonCode::TopicNameInvalid,
                    )
                })?;
                let name = TopicName::with_limits(mounted.clone().into_bytes(), &self.topic_limits)
                    .map_err(invalid_name)?;
                (mounted, name)
            }
        };
        if let Some(response) = &properties.response_topic
            && TopicName::with_limits(response.clone().into_bytes(), &self.topic_limits).is_err()
        {
            return Err(ProtocolViolation::new(
                "MQTT-3.3.2-14",
                "response topic is not a valid topic name",
                ReasonCode::ProtocolError,
            ));
        }
        if !properties.subscription_identifiers.is_empty() {
            return Err(ProtocolViolation::new(
                "MQTT-3.3.4-6",
                "subscription identifier in a client PUBLISH",
                ReasonCode::ProtocolError,
            ));
        }
        if retain && !self.config.retain_available {
            return Err(ProtocolViolation::new(
                "MQTT-3.2.2-14",
                "retained PUBLISH while retain is unavailable",
                ReasonCode::RetainNotSupported,
            ));
        }
        if let PublishQos::ExactlyOnce(id) = qos {
            if s.incoming_qos2.contains(&id) {
                // A duplicate before PUBREL: acknowledge again, deliver nothing [MQTT5-4.3.3-10].
                self.send_packet(conn, &Packet::PubRec(Ack::new(id)), now);
                return Ok(());
            }
            // Only a 5.0 client was told the limit (CONNACK Receive Maximum); a 3.x client may
            // have as many in flight as it has packet identifiers (mosquitto_pub -l keeps 20),
            // and is not disconnected for it. Found by the simulator (seed 2557).
            if c.version.is_v5()
                && s.incoming_qos2.len() >= usize::from(self.config.receive_maximum)
            {
                return Err(ProtocolViolation::new(
                    "MQTT-3.3.4-7",
                    "more unacknowledged QoS 2 PUBLISH than Receive Maximum",
                    ReasonCode::ReceiveMaximumExceeded,
                ));
            }
        }
        self.stats.messages_received += 1;
        self.stats.messages_received_by_qos[qos.qos() as usize] += 1;
        self.stats.publish_bytes_received += publish.payload().len() as u64;
        let client = ClientRef {
            client_id: &s.client_id,
            username: c.username.as_deref(),
            info: &c.info,
        };
        // Checked as bytes: `name` would check its UTF-8 again to show it as a `str`.
        let mut verdict = if reserved_for_broker(name.as_bytes()) {
            // `$SYS` belongs to the broker: clients may read it, not write it.
            Authorization::Deny(ReasonCode::NotAuthorized)
        } else {
            let text = if alias.is_some() {
                topic.as_str()
            } else {
                received
            };
            self.authorizer
                .authorize_publish(&client, text, qos.qos(), retain)
        };
        let mut routed = None;
        if verdict == Authorization::Allow {
            let empty = publish.payload().is_empty();
            let mut message = Message::new(topic, publish.payload_bytes(), qos.qos(), retain, now);
            message.properties = properties; // without subscription identifiers: refused above
            message.publisher = Some(s.client_id.clone());
            // A view into the read: copied out of it if it is kept long.
            message.pins_buffer = true;
            if retain {
                message.retain_source = Some(Box::new(RetainSource::new(
                    s.client_id.to_string(),
                    c.username.as_deref().map(str::to_owned),
                    c.info.listener,
                    c.info.tls_identity.clone(),
                )));
            }
            let limit = self.config.max_payload_size;
            if limit != 0 && publish.payload().len() > limit {
                // Dropped, the connection kept (mosquitto's `message_size_limit`; mosquitto
                // answers 0x95, which is not a PUBACK reason code [MQTT5-3.4.2-1]).
                self.stats.publishes_refused_size += 1;
                verdict = Authorization::Deny(ReasonCode::ImplementationSpecificError);
            } else if retain && !empty && !self.retained_room(&name, &message) {
                self.stats.retained_refused += 1;
                verdict = Authorization::Deny(ReasonCode::QuotaExceeded);
            } else if self
                .memory
                .at_limit(self.config.memory_limit, self.out.unflushed())
                // A 3.x resend is let through: its client resends everything in flight before
                // it reads on, so closing it for a resend would close it on every reconnect,
                // before it could acknowledge what it holds of the full queues (a livelock the
                // simulator found, seed 1085). Its window bounds what this adds.
                && (v5 || !publish.dup)
            {
                // See `memory`: refused rather than held.
                self.stats.publishes_refused_memory += 1;
                if !v5 && qos.qos() != QoS::AtMostOnce {
                    // 3.1.1 cannot refuse: a positive acknowledgement would hide the loss, so
                    // the connection is closed [MQTT311-3.3.5-2].
                    self.disconnect_explained(
                        conn,
                        ReasonCode::QuotaExceeded,
                        Some("memory limit reached"),
                        now,
                    );
                    return Ok(());
                }
                verdict = Authorization::Deny(ReasonCode::QuotaExceeded);
            } else {
                routed = Some(message);
            }
        }
        let reason = match verdict {
            Authorization::Allow => ReasonCode::Success,
            // 3.1.1 has no way to say no: acknowledge and drop [MQTT311-3.3.5-2].
            Authorization::Deny(_) if !v5 => ReasonCode::Success,
            Authorization::Deny(code) if code.is_valid_for(PacketType::PubAck) => code,
            Authorization::Deny(_) => ReasonCode::NotAuthorized,
        };
        if let Some(message) = routed {
            self.route(name, message, Origin::Client(conn), now);
        }
        match qos {
            PublishQos::AtMostOnce => {}
            PublishQos::AtLeastOnce(id) => {
                // [MQTT5-4.3.2-4]
                let ack = self.ack_for(conn, id, reason);
                self.send_packet(conn, &Packet::PubAck(ack), now);
            }
            PublishQos::ExactlyOnce(id) => {
                if !reason.is_error()
                    && let Some(s) = self.sessions.get_mut(&session)
                {
                    s.incoming_qos2.insert(id); // [MQTT5-4.3.3-8]
                    self.record_incoming_qos2(session, id, true);
                }
                let ack = self.ack_for(conn, id, reason);
                self.send_packet(conn, &Packet::PubRec(ack), now);
            }
        }
        Ok(())
    }

    /// A PUBACK/PUBREC body. A refusal explains itself in a reason string when the client asked
    /// for problem information [MQTT5-3.1.2-29] and it fits its maximum packet size
    /// [MQTT5-3.4.2-2].
    fn ack_for(&self, conn: ConnectionId, id: PacketId, reason: ReasonCode) -> Ack {
        let mut ack = Ack {
            reason_code: reason,
            ..Ack::new(id)
        };
        let Some(c) = self.conns.get(&conn) else {
            return ack;
        };
        if reason.is_error() && c.version.is_v5() && c.problem_information {
            let why = match reason {
                ReasonCode::QuotaExceeded => "retained message store full",
                ReasonCode::ImplementationSpecificError => "payload larger than the server accepts",
                _ => "publish not authorized",
            };
            ack.properties.reason_string = Some(MqttStr::from_static(why));
            let len = Packet::PubAck(ack.clone()).encoded_len(c.version);
            if len > c.max_packet_size as usize {
                ack.properties.reason_string = None;
            }
        }
        ack
    }

    /// PUBREL: the exactly-once exchange ends; PUBCOMP with the same id [MQTT5-4.3.3-11].
    pub(crate) fn handle_pubrel(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        ack: Ack,
        now: Instant,
    ) {
        let known = self
            .sessions
            .get_mut(&session)
            .is_some_and(|s| s.incoming_qos2.remove(&ack.packet_id));
        if known {
            self.record_incoming_qos2(session, ack.packet_id, false);
        }
        let v5 = self.conns.get(&conn).is_some_and(|c| c.version.is_v5());
        let reason = if known || !v5 {
            ReasonCode::Success
        } else {
            ReasonCode::PacketIdentifierNotFound
        };
        let comp = Ack {
            reason_code: reason,
            ..Ack::new(ack.packet_id)
        };
        self.send_packet(conn, &Packet::PubComp(comp), now);
    }

    /// Records an inbound QoS 2 identifier answered (`pending`) or released, for a recorded
    /// session.
    fn record_incoming_qos2(&mut self, session: SessionId, packet_id: PacketId, pending: bool) {
        if let Some(client_id) = self.recorded_client(session) {
            self.persist(PersistRecord::IncomingQos2 {
                client_id,
                packet_id,
                pending,
            });
        }
    }

    /// PUBACK of an outbound QoS 1 message.
    pub(crate) fn handle_puback(
        &mut self,
        session: SessionId,
        ack: Ack,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        let acked = s.inflight.puback(ack.packet_id);
        self.acked(session, acked, now)
    }

    /// PUBCOMP of an outbound QoS 2 message.
    pub(crate) fn handle_pubcomp(
        &mut self,
        session: SessionId,
        ack: Ack,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        let acked = s.inflight.pubcomp(ack.packet_id);
        self.acked(session, acked, now)
    }

    /// An exchange ended by PUBACK / PUBCOMP frees its slot; one for an identifier no exchange
    /// uses (a late duplicate) is ignored.
    fn acked(
        &mut self,
        session: SessionId,
        acked: Acked,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        match acked {
            Acked::Ended(number) => {
                self.delivery_changed(session, number, None);
                self.pump(session, now);
                Ok(())
            }
            Acked::Unknown => Ok(()),
            Acked::WrongKind => Err(wrong_acknowledgement()),
        }
    }

    /// PUBREC of an outbound QoS 2 message: release it [MQTT5-4.3.3-4], or end it on an error
    /// code [MQTT5-4.4.0-2].
    pub(crate) fn handle_pubrec(
        &mut self,
        conn: ConnectionId,
        session: SessionId,
        ack: Ack,
        now: Instant,
    ) -> Result<(), ProtocolViolation> {
        let failed = ack.reason_code.is_error();
        let Some(s) = self.sessions.get_mut(&session) else {
            return Ok(());
        };
        let v5 = s.version.is_v5();
        match s.inflight.pubrec(ack.packet_id, failed) {
            RecOutcome::Release(number) => {
                let released = DeliveryState::Released(ack.packet_id);
                self.delivery_changed(session, number, Some(released));
                self.send_packet(conn, &Packet::PubRel(Ack::new(ack.packet_id)), now);
            }
            RecOutcome::AlreadyReleased => {
                self.send_packet(conn, &Packet::PubRel(Ack::new(ack.packet_id)), now);
            }
            RecOutcome::Failed(number) => {
                self.delivery_changed(session, number, None);
                self.pump(session, now);
            }
            RecOutcome::WrongKind => return Err(wrong_acknowledgement()),
            RecOutcome::Unknown if failed => {}
            RecOutcome::Unknown => {
                let reason = if v5 {
                    ReasonCode::PacketIdentifierNotFound
                } else {
                    ReasonCode::Success
                };
                let rel = Ack {
                    reason_code: reason,
                    ..Ack::new(ack.packet_id)
                };
                self.send_packet(conn, &Packet::PubRel(rel), now);
            }
        }
        Ok(())
    }
}

/// An acknowledgement of another kind than its exchange waits for (a PUBCOMP for a QoS 1
/// message, a PUBACK for a QoS 2 one) [MQTT5-4.13.1-1] [MQTT311-4.8.0-1].
fn wrong_acknowledgement() -> ProtocolViolation {
    ProtocolViolation::new(
        "MQTT-4.13.1-1",
        "acknowledgement of the wrong kind for its packet identifier",
        ReasonCode::ProtocolError,
    )
}
