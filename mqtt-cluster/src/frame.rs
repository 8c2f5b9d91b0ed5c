//! A message as it crosses NATS between nodes (and as it is kept in the retained bucket):
//! a small header of ours, then the message as an MQTT 5.0 PUBLISH packet of our codec, which
//! carries every property a subscriber may see.
//!
//! ```text
//! 1 byte   frame version (1)
//! 8 bytes  origin: the sending node's incarnation (random at each start)
//! 8 bytes  sequence number of the message at its origin (from 1)
//! 8 bytes  when it was published, milliseconds since the Unix epoch (for Message Expiry)
//! 2 bytes  length of the publisher's client identifier, 0xFFFF for none; then its bytes
//! rest     the MQTT 5.0 PUBLISH packet (packet identifier 1 when QoS > 0)
//! ```
//!
//! The payload of a decoded message is a view into the frame (no copy).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use mqtt_broker_core::Message;
use mqtt_wire::{Packet, PacketId, ProtocolVersion, Publish, PublishQos, decode_packet};

/// The version byte this build writes and reads.
const VERSION: u8 = 1;
/// Bytes before the publisher's identifier.
const FIXED: usize = 1 + 8 + 8 + 8 + 2;
/// The length that says "no publisher".
const NO_PUBLISHER: u16 = u16::MAX;

/// Where a frame came from, besides its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The sending node's incarnation.
    pub node: u64,
    /// The message's sequence number there.
    pub seq: u64,
}

/// Why bytes from NATS are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its header, or an unknown version.
    #[error("not a cluster frame (version or length)")]
    Header,
    /// The publisher's identifier is not UTF-8.
    #[error("publisher identifier is not UTF-8")]
    Publisher,
    /// The PUBLISH packet does not decode.
    #[error("bad PUBLISH in a cluster frame: {0}")]
    Publish(String),
    /// The message cannot be encoded (a property too long for MQTT).
    #[error("message cannot be encoded: {0}")]
    Encode(String),
}

/// Encodes `message` as published at `published` (wall clock).
pub fn encode(
    message: &Message,
    origin: Origin,
    published: SystemTime,
) -> Result<Bytes, FrameError> {
    let publisher = message.publisher.as_deref();
    let qos = match PacketId::new(1) {
        Some(id) if message.qos != mqtt_wire::QoS::AtMostOnce => PublishQos::new(message.qos, id),
        _ => PublishQos::AtMostOnce,
    };
    let publish = Publish::new(message.topic.clone(), message.payload.clone())
        .with_qos(qos)
        .with_retain(message.retain)
        .with_properties(message.properties.clone());
    let packet = Packet::Publish(publish);
    let mut out = BytesMut::with_capacity(
        FIXED + publisher.map_or(0, str::len) + packet.encoded_len(ProtocolVersion::V5),
    );
    out.put_u8(VERSION);
    out.put_u64(origin.node);
    out.put_u64(origin.seq);
    let millis = published
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    out.put_u64(millis);
    match publisher {
        Some(id) if id.len() < usize::from(NO_PUBLISHER) => {
            out.put_u16(u16::try_from(id.len()).unwrap_or(0));
            out.put_slice(id.as_bytes());
        }
        _ => out.put_u16(NO_PUBLISHER),
    }
    packet
        .encode(ProtocolVersion::V5, &mut out)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    Ok(out.freeze())
}

/// Decodes a frame received at `now` (monotonic) and `wall` (wall clock): the message, aged by
/// the time since it was published (so that Message Expiry counts from its first broker),
/// and where it came from.
pub fn decode(
    mut frame: Bytes,
    now: Instant,
    wall: SystemTime,
) -> Result<(Message, Origin), FrameError> {
    if frame.len() < FIXED || frame[0] != VERSION {
        return Err(FrameError::Header);
    }
    frame.advance(1);
    let origin = Origin {
        node: frame.get_u64(),
        seq: frame.get_u64(),
    };
    let published = SystemTime::UNIX_EPOCH + Duration::from_millis(frame.get_u64());
    let publisher = match frame.get_u16() {
        NO_PUBLISHER => None,
        len if usize::from(len) <= frame.len() => {
            let id = frame.split_to(usize::from(len));
            let id = std::str::from_utf8(&id).map_err(|_| FrameError::Publisher)?;
            Some(Arc::<str>::from(id))
        }
        _ => return Err(FrameError::Header),
    };
    let publish = match decode_packet(frame, ProtocolVersion::V5) {
        Ok(Packet::Publish(publish)) => publish,
        Ok(other) => return Err(FrameError::Publish(format!("{other:?}"))),
        Err(e) => return Err(FrameError::Publish(e.to_string())),
    };
    let age = wall.duration_since(published).unwrap_or_default();
    let received_at = now.checked_sub(age).unwrap_or(now);
    let mut message = Message::new(
        publish.topic_str(),
        publish.payload_bytes(),
        publish.qos.qos(),
        publish.retain,
        received_at,
    );
    message.properties = publish.properties;
    message.publisher = publisher;
    Ok((message, origin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_wire::{MqttStr, QoS};

    fn message() -> Message {
        let mut message = Message::new(
            MqttStr::from_static("tele/plug/SENSOR"),
            Bytes::from_static(b"{\"Power\":12}"),
            QoS::ExactlyOnce,
            true,
            Instant::now(),
        );
        message.publisher = Some(Arc::from("plug"));
        message.properties.message_expiry_interval = Some(60);
        message.properties.content_type = Some(MqttStr::from_static("application/json"));
        message
            .properties
            .user_properties
            .push((MqttStr::from_static("k"), MqttStr::from_static("v")));
        message
    }

    #[test]
    fn a_message_crosses_with_everything_a_subscriber_sees() {
        let sent = message();
        let origin = Origin { node: 7, seq: 42 };
        let wall = SystemTime::now();
        let frame = encode(&sent, origin, wall).expect("encodes");
        let now = Instant::now();
        let (got, from) = decode(frame, now, wall + Duration::from_secs(10)).expect("decodes");
        assert_eq!(from, origin);
        assert_eq!(
            (got.topic.as_str(), &got.payload[..], got.qos, got.retain),
            (
                "tele/plug/SENSOR",
                &b"{\"Power\":12}"[..],
                QoS::ExactlyOnce,
                true
            )
        );
        assert_eq!(got.publisher.as_deref(), Some("plug"));
        assert_eq!(got.properties, sent.properties);
        let age = now.duration_since(got.received_at);
        assert!(
            age >= Duration::from_secs(10) && age < Duration::from_millis(10_001),
            "aged by the time since it was published (to the millisecond), for Message Expiry: {age:?}"
        );
    }

    #[test]
    fn what_is_not_a_frame_is_an_error_not_a_panic() {
        let frame = encode(&message(), Origin { node: 1, seq: 1 }, SystemTime::now()).unwrap();
        let (now, wall) = (Instant::now(), SystemTime::now());
        for cut in 0..frame.len() {
            assert!(
                decode(frame.slice(..cut), now, wall).is_err(),
                "cut at {cut}"
            );
        }
        let mut other = frame.to_vec();
        other[0] = 2;
        assert_eq!(
            decode(Bytes::from(other), now, wall).unwrap_err(),
            FrameError::Header
        );
    }
}
