//! What a request to the client can fail with.

use mqtt_wire::{EncodeError, ReasonCode};

/// Why the [`Client`](crate::Client) did not do what it was asked. Nothing was sent when a
/// request fails; the client's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request needs an open connection ([`Client::is_connected`](crate::Client::is_connected)).
    #[error("not connected")]
    NotConnected,
    /// `connect` was called while a connection is open or being opened.
    #[error("a connection is already open or being opened")]
    AlreadyConnected,
    /// The server's Receive Maximum is reached: no further QoS 1/2 PUBLISH may be sent until
    /// one is acknowledged [MQTT5-3.3.4-7] [MQTT5-4.9.0-2].
    #[error("the server's receive maximum ({0}) of unacknowledged messages is reached")]
    ReceiveMaximum(u16),
    /// The packet is larger than the server's Maximum Packet Size [MQTT5-3.2.2-15].
    #[error("packet of {size} bytes exceeds the server's maximum packet size of {maximum}")]
    PacketTooLarge {
        /// The encoded size.
        size: usize,
        /// The server's limit.
        maximum: u32,
    },
    /// The QoS is above the server's Maximum QoS [MQTT5-3.2.2-11].
    #[error("QoS {0} is above the server's maximum QoS")]
    QosNotSupported(u8),
    /// The server has no retained messages (Retain Available 0) [MQTT5-3.2.2-14].
    #[error("the server does not support retained messages")]
    RetainNotSupported,
    /// Every packet identifier is in use.
    #[error("no packet identifier is free")]
    NoPacketId,
    /// No acknowledgement of this kind is due for this packet identifier.
    #[error("nothing to acknowledge for packet identifier {0}")]
    UnknownPacketId(u16),
    /// The packet cannot be encoded (a string or property out of range).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
}

/// Why a connection ended, in [`Event::Disconnected`](crate::Event::Disconnected).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnection {
    /// The server sent DISCONNECT with this reason code (5.0).
    ByServer(ReasonCode),
    /// The client found the server in breach of the protocol and sent DISCONNECT with this
    /// reason code (5.0; a 3.x connection is just closed); `reason` says what was wrong.
    ProtocolError {
        /// The reason code sent.
        code: ReasonCode,
        /// What the server did.
        reason: String,
    },
    /// No CONNACK within the connect timeout, or no PINGRESP within the keep alive.
    Timeout,
    /// The application asked ([`Client::disconnect`](crate::Client::disconnect)).
    ByClient,
}
