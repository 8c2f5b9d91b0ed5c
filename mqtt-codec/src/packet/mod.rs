//! The [`Packet`] enum with one variant per MQTT control packet, and [`PacketType`], the
//! packet-type nibble of the fixed header.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod short_form;
mod subscribe;
mod unsubscribe;

pub use ack::Ack;
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use disconnect::Disconnect;
pub use publish::Publish;
pub(crate) use publish::PublishLayout;
pub use subscribe::{RetainHandling, SubAck, Subscribe, SubscriptionOptions};
pub use unsubscribe::{UnsubAck, Unsubscribe};

use crate::error::DecodeError;

/// An MQTT control packet, for any protocol version (fields a version lacks are left at their
/// defaults by the decoder and ignored by the encoder).
///
/// At most 128 bytes, so a decoded packet moves cheaply: `Connect`, the largest and rarest
/// variant, is boxed, and [`crate::Properties`] is one pointer.
///
/// Encoding with [`Packet::encode`] and decoding with [`crate::decode_packet`] (or a
/// [`crate::Decoder`]) are inverses:
///
/// ```
/// use mqtt_wire::{
///     BytesMut, MqttStr, Packet, PacketId, PacketType, Properties, ProtocolVersion, QoS,
///     Subscribe, SubscriptionOptions, decode_packet,
/// };
///
/// let subscribe = Packet::Subscribe(Subscribe {
///     packet_id: PacketId::new(10).expect("non-zero"),
///     filters: vec![(
///         MqttStr::from_static("a/+"),
///         SubscriptionOptions { qos: QoS::AtLeastOnce, ..SubscriptionOptions::default() },
///     )],
///     properties: Properties::default(),
/// });
/// let mut out = BytesMut::new();
/// subscribe.encode(ProtocolVersion::V3_1_1, &mut out)?;
/// assert_eq!(&out[..], b"\x82\x08\x00\x0a\x00\x03a/+\x01");
/// assert_eq!(out.len(), subscribe.encoded_len(ProtocolVersion::V3_1_1));
///
/// let decoded = decode_packet(out.freeze(), ProtocolVersion::V3_1_1)?;
/// assert_eq!(decoded.packet_type(), PacketType::Subscribe);
/// assert_eq!(decoded, subscribe);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (client to server).
    Connect(Box<Connect>),
    /// CONNACK (server to client).
    ConnAck(ConnAck),
    /// PUBLISH (both directions).
    Publish(Publish),
    /// PUBACK: QoS 1 acknowledgement.
    PubAck(Ack),
    /// PUBREC: QoS 2, part 1.
    PubRec(Ack),
    /// PUBREL: QoS 2, part 2.
    PubRel(Ack),
    /// PUBCOMP: QoS 2, part 3.
    PubComp(Ack),
    /// SUBSCRIBE (client to server).
    Subscribe(Subscribe),
    /// SUBACK (server to client).
    SubAck(SubAck),
    /// UNSUBSCRIBE (client to server).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (server to client).
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (v5: both directions).
    Disconnect(Disconnect),
    /// AUTH (MQTT 5.0 only).
    Auth(Auth),
}

impl Packet {
    /// The packet type.
    #[must_use]
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }
}

/// The control packet type, the upper nibble of the first fixed-header byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// 1: CONNECT.
    Connect = 1,
    /// 2: CONNACK.
    ConnAck = 2,
    /// 3: PUBLISH.
    Publish = 3,
    /// 4: PUBACK.
    PubAck = 4,
    /// 5: PUBREC.
    PubRec = 5,
    /// 6: PUBREL.
    PubRel = 6,
    /// 7: PUBCOMP.
    PubComp = 7,
    /// 8: SUBSCRIBE.
    Subscribe = 8,
    /// 9: SUBACK.
    SubAck = 9,
    /// 10: UNSUBSCRIBE.
    Unsubscribe = 10,
    /// 11: UNSUBACK.
    UnsubAck = 11,
    /// 12: PINGREQ.
    PingReq = 12,
    /// 13: PINGRESP.
    PingResp = 13,
    /// 14: DISCONNECT.
    Disconnect = 14,
    /// 15: AUTH (MQTT 5.0).
    Auth = 15,
}

impl PacketType {
    /// The fixed-header flags every packet of this type must carry, or `None` for PUBLISH whose
    /// flags are DUP, QoS and RETAIN [MQTT-2.2.2-1].
    #[inline]
    #[must_use]
    pub const fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::PubRel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

impl TryFrom<u8> for PacketType {
    type Error = DecodeError;

    #[inline]
    fn try_from(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            1 => Self::Connect,
            2 => Self::ConnAck,
            3 => Self::Publish,
            4 => Self::PubAck,
            5 => Self::PubRec,
            6 => Self::PubRel,
            7 => Self::PubComp,
            8 => Self::Subscribe,
            9 => Self::SubAck,
            10 => Self::Unsubscribe,
            11 => Self::UnsubAck,
            12 => Self::PingReq,
            13 => Self::PingResp,
            14 => Self::Disconnect,
            15 => Self::Auth,
            other => return Err(DecodeError::InvalidPacketType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_is_small() {
        // Every decoded packet is moved through `Result<Option<Packet>, _>`: keep it small.
        assert!(size_of::<Packet>() <= 128, "{}", size_of::<Packet>());
        assert!(size_of::<Result<Option<Packet>, DecodeError>>() <= 136);
    }
}
