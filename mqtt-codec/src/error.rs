//! Errors, split by who is to blame: [`DecodeError`] means the peer sent bytes that break the
//! specification (each maps to the reason code to send and, where one exists, the spec id);
//! [`EncodeError`] means the caller asked to encode a packet that cannot be put on the wire.

use crate::primitives::ProtocolVersion;
use crate::reason::{ConnectReturnCode, ReasonCode};

/// The received bytes are not a valid MQTT packet. Small and `Copy`; see
/// [`DecodeError::reason_code`] for what to send before closing.
///
/// ```
/// use mqtt_wire::{Bytes, DecodeError, ProtocolVersion, ReasonCode, decode_packet};
///
/// // A QoS 0 PUBLISH to "a/b" with the DUP flag set, which only QoS 1 and 2 may carry.
/// let frame = Bytes::from_static(b"\x38\x05\x00\x03a/b");
/// let error = decode_packet(frame, ProtocolVersion::V5).unwrap_err();
/// assert_eq!(error, DecodeError::DupWithQoS0);
/// assert_eq!(error.reason_code(), ReasonCode::ProtocolError);
/// assert_eq!(error.spec_id(), Some("MQTT-3.3.1-2"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The remaining length field uses more than four bytes.
    #[error("remaining length is longer than four bytes")]
    MalformedRemainingLength,
    /// A Variable Byte Integer inside the packet (property length, subscription identifier)
    /// is longer than four bytes.
    #[error("variable byte integer is longer than four bytes")]
    MalformedVariableByteInteger,
    /// The packet (fixed header included) exceeds the configured maximum.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// Declared size of the whole packet.
        size: u32,
        /// Configured maximum.
        max: u32,
    },
    /// Reserved fixed-header flag bits have other values than the flag table requires.
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type}")]
    InvalidFixedHeaderFlags {
        /// Packet type (upper nibble of the first byte).
        packet_type: u8,
        /// The flags (lower nibble).
        flags: u8,
    },
    /// Packet type 0, or AUTH (15) in MQTT 3.x.
    #[error("invalid packet type {0}")]
    InvalidPacketType(u8),
    /// A QoS field holds 3.
    #[error("invalid QoS {0}")]
    InvalidQoS(u8),
    /// A QoS 0 PUBLISH has the DUP flag set.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// A packet identifier is zero.
    #[error("packet identifier is zero")]
    ZeroPacketId,
    /// A string is not well-formed UTF-8.
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("string contains U+0000")]
    NullCharacter,
    /// A field runs past the end of the packet.
    #[error("field runs past the end of the packet")]
    Truncated,
    /// Bytes remain after the last field of the packet.
    #[error("unexpected bytes after the last field")]
    TrailingBytes,
    /// The CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// The CONNECT protocol level is not supported with its protocol name.
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// The reserved CONNECT flag bit is set.
    #[error("reserved CONNECT flag is set")]
    InvalidConnectFlags,
    /// Will QoS or Will Retain is set without the Will Flag.
    #[error("will QoS or retain set without will flag")]
    WillFlagsWithoutWill,
    /// Will QoS is 3.
    #[error("will QoS is 3")]
    InvalidWillQoS,
    /// MQTT 3.x: the password flag is set without the user name flag.
    #[error("password flag set without user name flag")]
    PasswordWithoutUsername,
    /// Unknown property identifier.
    #[error("unknown property identifier {0:#04x}")]
    InvalidPropertyId(u8),
    /// A property that may appear once appears again.
    #[error("property {0:#04x} appears more than once")]
    DuplicateProperty(u8),
    /// A property is not allowed in this packet type.
    #[error("property {property:#04x} not allowed in packet type {packet_type}")]
    PropertyNotAllowed {
        /// Property identifier.
        property: u8,
        /// Packet type (will properties count as CONNECT).
        packet_type: u8,
    },
    /// A property value is out of its allowed range (e.g. Receive Maximum 0).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A reason code is unknown or not allowed in this packet type.
    #[error("invalid reason code {0:#04x}")]
    InvalidReasonCode(u8),
    /// Subscription options with reserved bits set, QoS 3 or Retain Handling 3.
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// A SUBSCRIBE without any topic filter.
    #[error("SUBSCRIBE without topic filters")]
    EmptySubscription,
    /// An UNSUBSCRIBE without any topic filter.
    #[error("UNSUBSCRIBE without topic filters")]
    EmptyUnsubscribe,
    /// CONNACK acknowledge flags with reserved bits set.
    #[error("invalid CONNACK flags {0:#04x}")]
    InvalidConnAckFlags(u8),
    /// CONNACK with Session Present set and a refusal code.
    #[error("session present set on a refused connection")]
    SessionPresentOnRefusal,
}

impl DecodeError {
    /// The reason code to put in the CONNACK or DISCONNECT sent before closing (MQTT 5.0).
    #[must_use]
    pub const fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::InvalidProtocolName | Self::UnsupportedProtocolVersion(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::DupWithQoS0
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue(_)
            | Self::SessionPresentOnRefusal
            | Self::EmptySubscription
            | Self::EmptyUnsubscribe => ReasonCode::ProtocolError,
            _ => ReasonCode::MalformedPacket,
        }
    }

    /// The MQTT 3.x CONNACK return code to send before closing, if the specification asks for
    /// one: only an unsupported protocol level [MQTT-3.1.2-2]; other malformed CONNECTs are
    /// closed without CONNACK [MQTT-3.1.4-1].
    #[must_use]
    pub const fn connect_return_code(&self) -> Option<ConnectReturnCode> {
        match self {
            Self::UnsupportedProtocolVersion(_) => {
                Some(ConnectReturnCode::UnacceptableProtocolVersion)
            }
            _ => None,
        }
    }

    /// The normative statement this error breaks: the MQTT 3.1.1 id where the rule exists
    /// there, else the MQTT 5.0 one. See [`DecodeError::spec_id_for`].
    #[must_use]
    pub const fn spec_id(&self) -> Option<&'static str> {
        match self.spec_id_for(ProtocolVersion::V3_1_1) {
            Some(id) => Some(id),
            None => self.spec_id_for(ProtocolVersion::V5),
        }
    }

    /// The normative statement this error breaks, numbered as in the specification of `version`
    /// (MQTT 3.1 uses the 3.1.1 numbering).
    #[must_use]
    pub const fn spec_id_for(&self, version: ProtocolVersion) -> Option<&'static str> {
        let v5 = version.is_v5();
        Some(match self {
            Self::InvalidFixedHeaderFlags { .. } if v5 => "MQTT-2.1.3-1",
            Self::InvalidFixedHeaderFlags { .. } => "MQTT-2.2.2-2",
            Self::InvalidQoS(_) => "MQTT-3.3.1-4",
            Self::DupWithQoS0 => "MQTT-3.3.1-2",
            Self::ZeroPacketId if v5 => "MQTT-2.2.1-3",
            Self::ZeroPacketId => "MQTT-2.3.1-1",
            Self::InvalidUtf8 if v5 => "MQTT-1.5.4-1",
            Self::InvalidUtf8 => "MQTT-1.5.3-1",
            Self::NullCharacter if v5 => "MQTT-1.5.4-2",
            Self::NullCharacter => "MQTT-1.5.3-2",
            Self::InvalidProtocolName => "MQTT-3.1.2-1",
            Self::UnsupportedProtocolVersion(_) => "MQTT-3.1.2-2",
            Self::InvalidConnectFlags => "MQTT-3.1.2-3",
            Self::WillFlagsWithoutWill => "MQTT-3.1.2-11",
            Self::InvalidWillQoS if v5 => "MQTT-3.1.2-12",
            Self::InvalidWillQoS => "MQTT-3.1.2-14",
            Self::PasswordWithoutUsername if v5 => return None,
            Self::PasswordWithoutUsername => "MQTT-3.1.2-22",
            Self::InvalidSubscriptionOptions(_) if v5 => "MQTT-3.8.3-5",
            Self::InvalidSubscriptionOptions(_) => "MQTT-3.8.3-4",
            Self::EmptySubscription if v5 => "MQTT-3.8.3-2",
            Self::EmptySubscription => "MQTT-3.8.3-3",
            Self::EmptyUnsubscribe => "MQTT-3.10.3-2",
            Self::InvalidConnAckFlags(_) if v5 => "MQTT-3.2.2-1",
            Self::SessionPresentOnRefusal if v5 => "MQTT-3.2.2-6",
            Self::SessionPresentOnRefusal => "MQTT-3.2.2-4",
            _ => return None,
        })
    }
}

/// The caller asked to encode something that cannot be put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet would exceed the protocol's 268,435,455-byte remaining length.
    #[error("packet too large to encode")]
    PacketTooLarge,
    /// A string is longer than 65,535 bytes.
    #[error("string longer than 65535 bytes")]
    StringTooLong,
    /// A binary field (password, will payload, correlation or authentication data) is longer
    /// than 65,535 bytes.
    #[error("binary field longer than 65535 bytes")]
    BinaryTooLong,
    /// A property is set that MQTT 5.0 does not allow in this packet.
    #[error("property {property:#04x} not allowed in packet type {packet_type}")]
    PropertyNotAllowed {
        /// Property identifier.
        property: u8,
        /// Packet type (will properties count as CONNECT).
        packet_type: u8,
    },
    /// A property value the receiver would reject (e.g. Receive Maximum 0, a Subscription
    /// Identifier of 0 or above 268,435,455).
    #[error("invalid value for property {0:#04x}")]
    InvalidPropertyValue(u8),
    /// A reason code that this packet type (or MQTT 3.x) cannot carry.
    #[error("reason code {code:#04x} not allowed in packet type {packet_type}")]
    InvalidReasonCode {
        /// The reason code.
        code: u8,
        /// Packet type.
        packet_type: u8,
    },
    /// MQTT 3.x forbids a password without a user name.
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// The packet type does not exist in this protocol version (AUTH in MQTT 3.x).
    #[error("packet type {0} does not exist in this protocol version")]
    UnsupportedPacket(u8),
    /// A SUBSCRIBE or UNSUBSCRIBE without topic filters.
    #[error("SUBSCRIBE or UNSUBSCRIBE without topic filters")]
    NoTopicFilters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_by_blame() {
        assert_eq!(
            DecodeError::Truncated.reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            DecodeError::PacketTooLarge { size: 10, max: 5 }.reason_code(),
            ReasonCode::PacketTooLarge
        );
        assert_eq!(
            DecodeError::DuplicateProperty(0x01).reason_code(),
            ReasonCode::ProtocolError
        );
        // [MQTT5-3.8.3-2] [MQTT5-3.10.3-2]: no filters is a Protocol Error, not malformed.
        assert_eq!(
            DecodeError::EmptySubscription.reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            DecodeError::EmptyUnsubscribe.reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            DecodeError::UnsupportedProtocolVersion(6).connect_return_code(),
            Some(ConnectReturnCode::UnacceptableProtocolVersion)
        );
        assert_eq!(DecodeError::Truncated.connect_return_code(), None);
    }

    #[test]
    fn spec_ids_follow_version_numbering() {
        let e = DecodeError::InvalidFixedHeaderFlags {
            packet_type: 8,
            flags: 0,
        };
        assert_eq!(e.spec_id(), Some("MQTT-2.2.2-2"));
        assert_eq!(e.spec_id_for(ProtocolVersion::V5), Some("MQTT-2.1.3-1"));
        assert_eq!(
            DecodeError::InvalidConnAckFlags(2).spec_id(),
            Some("MQTT-3.2.2-1")
        );
        assert_eq!(DecodeError::Truncated.spec_id(), None);
    }
}
