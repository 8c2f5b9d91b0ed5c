//! Small protocol primitives shared by every packet: the protocol version, quality of service,
//! packet identifiers and the QoS-with-identifier pair carried by a PUBLISH.

use core::fmt;
use core::num::NonZeroU16;

use crate::error::DecodeError;

/// The protocol version a connection speaks, fixed by its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `"MQIsdp"`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `"MQTT"`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `"MQTT"`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol name written in a CONNECT of this version.
    #[must_use]
    pub const fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }

    /// The protocol level byte written in a CONNECT of this version.
    #[must_use]
    pub const fn level(self) -> u8 {
        match self {
            Self::V3_1 => 3,
            Self::V3_1_1 => 4,
            Self::V5 => 5,
        }
    }

    /// Whether this version carries properties and reason codes (MQTT 5.0).
    #[inline]
    #[must_use]
    pub const fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3_1 => "MQTT 3.1",
            Self::V3_1_1 => "MQTT 3.1.1",
            Self::V5 => "MQTT 5.0",
        })
    }
}

/// Quality of service level of a message or subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: acknowledged with PUBACK.
    AtLeastOnce = 1,
    /// QoS 2: four-way handshake PUBREC / PUBREL / PUBCOMP.
    ExactlyOnce = 2,
}

impl TryFrom<u8> for QoS {
    type Error = DecodeError;

    #[inline]
    fn try_from(value: u8) -> Result<Self, DecodeError> {
        match value {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            other => Err(DecodeError::InvalidQoS(other)),
        }
    }
}

/// A packet identifier; zero is not a valid identifier [MQTT-2.3.1-1].
pub type PacketId = NonZeroU16;

/// The QoS of a PUBLISH together with its packet identifier where one is required, so that a
/// QoS 0 message with an identifier or a QoS 1 message without one cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublishQos {
    /// QoS 0, no packet identifier.
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl PublishQos {
    /// The QoS level without the identifier.
    #[inline]
    #[must_use]
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, if the QoS needs one.
    #[inline]
    #[must_use]
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }

    /// Builds the pair from a QoS level and an identifier; `id` is ignored for QoS 0.
    #[inline]
    #[must_use]
    pub const fn new(qos: QoS, id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce(id),
            QoS::ExactlyOnce => Self::ExactlyOnce(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_from_byte_rejects_three() {
        // [MQTT-3.3.1-4]
        assert_eq!(QoS::try_from(3), Err(DecodeError::InvalidQoS(3)));
        assert_eq!(QoS::try_from(2), Ok(QoS::ExactlyOnce));
    }

    #[test]
    fn publish_qos_carries_id() {
        let id = PacketId::new(7).unwrap();
        assert_eq!(PublishQos::new(QoS::AtLeastOnce, id).packet_id(), Some(id));
        assert_eq!(PublishQos::new(QoS::AtMostOnce, id).packet_id(), None);
        assert_eq!(PublishQos::ExactlyOnce(id).qos(), QoS::ExactlyOnce);
    }

    #[test]
    fn version_names_and_levels() {
        assert_eq!(ProtocolVersion::V3_1.protocol_name(), "MQIsdp");
        assert_eq!(ProtocolVersion::V3_1.level(), 3);
        assert_eq!(ProtocolVersion::V3_1_1.level(), 4);
        assert_eq!(ProtocolVersion::V5.level(), 5);
    }
}
