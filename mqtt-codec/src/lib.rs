//! Zero-copy MQTT 3.1, 3.1.1 and 5.0 packet encoder and decoder.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod decoder;
mod encoder;
mod error;
mod frame;
mod packet;
mod primitives;
mod properties;
mod reader;
mod reason;
mod string;

pub use bytes::{Bytes, BytesMut};
pub use decoder::{Decoder, decode_packet};
pub use error::{DecodeError, EncodeError};
pub use frame::MAX_PACKET_SIZE;
pub use packet::{
    Ack, Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, Publish, RetainHandling,
    SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe,
};
pub use primitives::{PacketId, ProtocolVersion, PublishQos, QoS};
pub use properties::Properties;
pub use reason::{ConnectReturnCode, ReasonCode};
pub use string::MqttStr;
