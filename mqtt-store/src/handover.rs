//! A whole session as bytes, for handing it from one broker to another (the nodes of a
//! cluster), in the store's own record layouts: the session value, then each delivery with
//! its number, then the QoS 2 packet identifiers awaiting PUBREL, then the client identifier.

use std::time::Instant;

use mqtt_broker_core::persist::{RecoveredDelivery, RecoveredSession};
use mqtt_wire::PacketId;

use crate::clock::WallClock;
use crate::format::{
    Reader, Writer, decode_delivery, decode_session, encode_delivery, encode_session,
};

/// Why bytes are not a handed-over session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session hand-over: {0}")]
pub struct HandoverError(String);

/// Encodes `session`; `clock` maps the broker's times (message receipt) to wall-clock time.
///
/// ```
/// use std::time::{Instant, SystemTime};
/// use mqtt_broker_core::persist::{RecoveredSession, SessionRecord};
/// use mqtt_store::{WallClock, decode_handover, encode_handover};
/// use mqtt_wire::ProtocolVersion;
///
/// let session = RecoveredSession {
///     client_id: "plug".into(),
///     record: SessionRecord::new(ProtocolVersion::V5, 300),
///     disconnected: None,
///     messages: Vec::new(),
///     incoming_qos2: Vec::new(),
/// };
/// let (now, wall) = (Instant::now(), SystemTime::now());
/// let bytes = encode_handover(&session, &WallClock::new(now, wall));
/// let back = decode_handover(&bytes, now)?;
/// assert_eq!((back.client_id.as_str(), back.record.expiry_interval), ("plug", 300));
/// # Ok::<(), mqtt_store::HandoverError>(())
/// ```
pub fn encode_handover(session: &RecoveredSession, clock: &WallClock) -> Vec<u8> {
    let mut w = Writer::default();
    w.bytes(&encode_session(&session.record, clock));
    w.u32(u32::try_from(session.messages.len()).unwrap_or(u32::MAX));
    for message in &session.messages {
        w.u64(message.number);
        let delivery = &message.delivery;
        w.bytes(&encode_delivery(delivery, delivery.state, clock));
    }
    w.u32(u32::try_from(session.incoming_qos2.len()).unwrap_or(u32::MAX));
    for id in &session.incoming_qos2 {
        w.u16(id.get());
    }
    w.bytes(session.client_id.as_bytes());
    w.into_bytes()
}

/// Decodes a session [`encode_handover`] made; `anchor` is the instant the wall-clock times
/// are read against (now).
pub fn decode_handover(buf: &[u8], anchor: Instant) -> Result<RecoveredSession, HandoverError> {
    let bad = |e: crate::error::DecodeFailure| HandoverError(e.0);
    let mut r = Reader::new(buf);
    let (record, disconnected) =
        decode_session(r.bytes("session").map_err(bad)?, anchor).map_err(bad)?;
    let count = r.u32("deliveries").map_err(bad)?;
    let mut messages = Vec::new();
    for _ in 0..count {
        let number = r.u64("delivery number").map_err(bad)?;
        let (delivery, received) =
            decode_delivery(r.bytes("delivery").map_err(bad)?, anchor).map_err(bad)?;
        messages.push(RecoveredDelivery {
            number,
            delivery,
            received,
        });
    }
    let count = r.u32("packet identifiers").map_err(bad)?;
    let mut incoming_qos2 = Vec::new();
    for _ in 0..count {
        let id = r.u16("packet identifier").map_err(bad)?;
        incoming_qos2
            .push(PacketId::new(id).ok_or_else(|| HandoverError("packet identifier 0".into()))?);
    }
    let client_id = r.string("client identifier").map_err(bad)?;
    r.end("session hand-over").map_err(bad)?;
    Ok(RecoveredSession {
        client_id,
        record,
        disconnected,
        messages,
        incoming_qos2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use mqtt_broker_core::Message;
    use mqtt_broker_core::persist::{DeliveryState, SessionRecord, StoredDelivery};
    use mqtt_wire::{MqttStr, ProtocolVersion, QoS, SubscriptionOptions};

    #[test]
    fn a_session_crosses_with_its_subscriptions_messages_and_identifiers() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let mut record = SessionRecord::new(ProtocolVersion::V3_1_1, u32::MAX);
        record.subscriptions.push((
            "cmnd/+/POWER".into(),
            SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
            None,
        ));
        let message = Message::new(
            MqttStr::from_static("cmnd/plug/POWER"),
            Bytes::from_static(b"ON"),
            QoS::AtLeastOnce,
            false,
            now - Duration::from_secs(2),
        );
        let delivery = |state| StoredDelivery {
            message: Arc::new(message.clone()),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![7],
            share: None,
            state,
        };
        let session = RecoveredSession {
            client_id: "plug".into(),
            record,
            disconnected: None,
            messages: vec![
                RecoveredDelivery {
                    number: 1,
                    delivery: delivery(DeliveryState::Sent(PacketId::new(3).unwrap())),
                    received: wall,
                },
                RecoveredDelivery {
                    number: 2,
                    delivery: delivery(DeliveryState::Queued),
                    received: wall,
                },
            ],
            incoming_qos2: vec![PacketId::new(9).unwrap()],
        };
        let bytes = encode_handover(&session, &WallClock::new(now, wall));
        let back = decode_handover(&bytes, now).expect("decodes");
        assert_eq!(back.client_id, "plug");
        assert_eq!(back.record.subscriptions, session.record.subscriptions);
        assert_eq!(back.messages.len(), 2);
        assert_eq!(
            back.messages[0].delivery.state,
            DeliveryState::Sent(PacketId::new(3).unwrap())
        );
        assert_eq!(back.messages[1].delivery.subscription_ids, [7]);
        assert_eq!(
            back.messages[1].delivery.message.payload,
            Bytes::from_static(b"ON")
        );
        let age = wall.duration_since(back.messages[0].received).unwrap();
        assert!(
            age >= Duration::from_millis(1999) && age <= Duration::from_millis(2001),
            "{age:?}"
        );
        assert_eq!(back.incoming_qos2, session.incoming_qos2);
        for cut in 0..bytes.len() {
            assert!(decode_handover(&bytes[..cut], now).is_err(), "cut at {cut}");
        }
    }
}
