//! Reason codes: every MQTT 5.0 reason code in one enum, which codes each packet type may carry,
//! and the MQTT 3.1/3.1.1 CONNACK return codes with their mapping to and from reason codes.

use crate::error::DecodeError;
use crate::packet::PacketType;

macro_rules! reason_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, )*) => {
        /// An MQTT 5.0 reason code. Values below 0x80 are successes, 0x80 and above are errors.
        ///
        /// `Success` (0x00) also stands for "Normal disconnection" and "Granted QoS 0".
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum ReasonCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl TryFrom<u8> for ReasonCode {
            type Error = DecodeError;

            #[inline]
            fn try_from(value: u8) -> Result<Self, DecodeError> {
                match value {
                    $( $value => Ok(Self::$name), )*
                    other => Err(DecodeError::InvalidReasonCode(other)),
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success / Normal disconnection / Granted QoS 0.
    #[default]
    Success = 0x00,
    /// 0x01: Granted QoS 1.
    GrantedQoS1 = 0x01,
    /// 0x02: Granted QoS 2.
    GrantedQoS2 = 0x02,
    /// 0x04: Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04,
    /// 0x10: No matching subscribers.
    NoMatchingSubscribers = 0x10,
    /// 0x11: No subscription existed.
    NoSubscriptionExisted = 0x11,
    /// 0x18: Continue authentication.
    ContinueAuthentication = 0x18,
    /// 0x19: Re-authenticate.
    ReAuthenticate = 0x19,
    /// 0x80: Unspecified error.
    UnspecifiedError = 0x80,
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81,
    /// 0x82: Protocol Error.
    ProtocolError = 0x82,
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// 0x84: Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84,
    /// 0x85: Client Identifier not valid.
    ClientIdentifierNotValid = 0x85,
    /// 0x86: Bad User Name or Password.
    BadUserNameOrPassword = 0x86,
    /// 0x87: Not authorized.
    NotAuthorized = 0x87,
    /// 0x88: Server unavailable.
    ServerUnavailable = 0x88,
    /// 0x89: Server busy.
    ServerBusy = 0x89,
    /// 0x8A: Banned.
    Banned = 0x8A,
    /// 0x8B: Server shutting down.
    ServerShuttingDown = 0x8B,
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C,
    /// 0x8D: Keep Alive timeout.
    KeepAliveTimeout = 0x8D,
    /// 0x8E: Session taken over.
    SessionTakenOver = 0x8E,
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F,
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90,
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91,
    /// 0x92: Packet Identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// 0x93: Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93,
    /// 0x94: Topic Alias invalid.
    TopicAliasInvalid = 0x94,
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95,
    /// 0x96: Message rate too high.
    MessageRateTooHigh = 0x96,
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97,
    /// 0x98: Administrative action.
    AdministrativeAction = 0x98,
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A,
    /// 0x9B: QoS not supported.
    QoSNotSupported = 0x9B,
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C,
    /// 0x9D: Server moved.
    ServerMoved = 0x9D,
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F,
    /// 0xA0: Maximum connect time.
    MaximumConnectTime = 0xA0,
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

impl ReasonCode {
    /// Alias of [`ReasonCode::Success`] for DISCONNECT.
    pub const NORMAL_DISCONNECTION: Self = Self::Success;
    /// Alias of [`ReasonCode::Success`] for SUBACK.
    pub const GRANTED_QOS0: Self = Self::Success;

    /// Whether this code reports a failure (0x80 or above).
    #[inline]
    #[must_use]
    pub const fn is_error(self) -> bool {
        self as u8 >= 0x80
    }

    /// The wire value.
    #[inline]
    #[must_use]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether MQTT 5.0 allows this code in a packet of type `packet_type`
    /// (the per-packet tables of the specification, e.g. §3.2.2.2 for CONNACK).
    #[must_use]
    pub const fn is_valid_for(self, packet_type: PacketType) -> bool {
        let v = self as u8;
        match packet_type {
            PacketType::ConnAck => matches!(
                v,
                0x00 | 0x80..=0x8A | 0x8C | 0x90 | 0x95 | 0x97 | 0x99..=0x9D | 0x9F
            ),
            PacketType::PubAck | PacketType::PubRec => {
                matches!(
                    v,
                    0x00 | 0x10 | 0x80 | 0x83 | 0x87 | 0x90 | 0x91 | 0x97 | 0x99
                )
            }
            PacketType::PubRel | PacketType::PubComp => matches!(v, 0x00 | 0x92),
            PacketType::SubAck => matches!(
                v,
                0x00 | 0x01 | 0x02 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91 | 0x97 | 0x9E | 0xA1 | 0xA2
            ),
            PacketType::UnsubAck => matches!(v, 0x00 | 0x11 | 0x80 | 0x83 | 0x87 | 0x8F | 0x91),
            PacketType::Disconnect => matches!(
                v,
                0x00 | 0x04
                    | 0x80..=0x83
                    | 0x87
                    | 0x89
                    | 0x8B
                    | 0x8D..=0x90
                    | 0x93..=0xA2
            ),
            PacketType::Auth => matches!(v, 0x00 | 0x18 | 0x19),
            _ => false,
        }
    }

    /// Whether an MQTT 3.1/3.1.1 SUBACK may carry this code (0x00, 0x01, 0x02 or 0x80).
    #[inline]
    #[must_use]
    pub const fn is_valid_v3_suback(self) -> bool {
        matches!(self as u8, 0x00 | 0x01 | 0x02 | 0x80)
    }
}

impl From<ReasonCode> for u8 {
    fn from(code: ReasonCode) -> u8 {
        code as u8
    }
}

/// An MQTT 3.1 / 3.1.1 CONNACK return code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectReturnCode {
    /// 0: connection accepted.
    Accepted = 0,
    /// 1: the server does not support the requested protocol level.
    UnacceptableProtocolVersion = 1,
    /// 2: the client identifier is not allowed.
    IdentifierRejected = 2,
    /// 3: the MQTT service is unavailable.
    ServerUnavailable = 3,
    /// 4: malformed user name or password.
    BadUserNameOrPassword = 4,
    /// 5: the client is not authorized to connect.
    NotAuthorized = 5,
}

impl TryFrom<u8> for ConnectReturnCode {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, DecodeError> {
        Ok(match value {
            0 => Self::Accepted,
            1 => Self::UnacceptableProtocolVersion,
            2 => Self::IdentifierRejected,
            3 => Self::ServerUnavailable,
            4 => Self::BadUserNameOrPassword,
            5 => Self::NotAuthorized,
            other => return Err(DecodeError::InvalidReasonCode(other)),
        })
    }
}

impl From<ReasonCode> for ConnectReturnCode {
    /// The closest 3.1.1 return code for a v5 CONNACK reason code; errors without a 3.1.1
    /// counterpart become `ServerUnavailable`, except authorization-like refusals which become
    /// `NotAuthorized`.
    fn from(code: ReasonCode) -> Self {
        match code {
            ReasonCode::Success => Self::Accepted,
            ReasonCode::UnsupportedProtocolVersion => Self::UnacceptableProtocolVersion,
            ReasonCode::ClientIdentifierNotValid => Self::IdentifierRejected,
            ReasonCode::BadUserNameOrPassword | ReasonCode::BadAuthenticationMethod => {
                Self::BadUserNameOrPassword
            }
            ReasonCode::NotAuthorized | ReasonCode::Banned => Self::NotAuthorized,
            _ => Self::ServerUnavailable,
        }
    }
}

impl From<ConnectReturnCode> for ReasonCode {
    fn from(code: ConnectReturnCode) -> Self {
        match code {
            ConnectReturnCode::Accepted => Self::Success,
            ConnectReturnCode::UnacceptableProtocolVersion => Self::UnsupportedProtocolVersion,
            ConnectReturnCode::IdentifierRejected => Self::ClientIdentifierNotValid,
            ConnectReturnCode::ServerUnavailable => Self::ServerUnavailable,
            ConnectReturnCode::BadUserNameOrPassword => Self::BadUserNameOrPassword,
            ConnectReturnCode::NotAuthorized => Self::NotAuthorized,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips() {
        for v in 0..=255u8 {
            if let Ok(code) = ReasonCode::try_from(v) {
                assert_eq!(code.as_u8(), v);
                assert_eq!(code.is_error(), v >= 0x80);
            }
        }
        assert_eq!(
            ReasonCode::try_from(0x03),
            Err(DecodeError::InvalidReasonCode(0x03))
        );
    }

    #[test]
    fn per_packet_tables() {
        assert!(ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubAck));
        assert!(!ReasonCode::NoMatchingSubscribers.is_valid_for(PacketType::PubRel));
        assert!(ReasonCode::PacketIdentifierNotFound.is_valid_for(PacketType::PubComp));
        assert!(ReasonCode::DisconnectWithWillMessage.is_valid_for(PacketType::Disconnect));
        assert!(!ReasonCode::ClientIdentifierNotValid.is_valid_for(PacketType::Disconnect));
        assert!(ReasonCode::ReAuthenticate.is_valid_for(PacketType::Auth));
        assert!(!ReasonCode::GrantedQoS1.is_valid_for(PacketType::ConnAck));
        assert!(ReasonCode::GrantedQoS2.is_valid_for(PacketType::SubAck));
        assert!(ReasonCode::NoSubscriptionExisted.is_valid_for(PacketType::UnsubAck));
    }

    #[test]
    fn return_code_mapping() {
        for v in 0..=5u8 {
            let rc = ConnectReturnCode::try_from(v).unwrap();
            assert_eq!(ConnectReturnCode::from(ReasonCode::from(rc)), rc);
        }
        assert_eq!(
            ConnectReturnCode::from(ReasonCode::Banned),
            ConnectReturnCode::NotAuthorized
        );
        assert_eq!(
            ConnectReturnCode::from(ReasonCode::QuotaExceeded),
            ConnectReturnCode::ServerUnavailable
        );
    }
}
