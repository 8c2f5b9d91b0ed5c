//! CONNECT and its will message: the client's opening packet, in all three protocol versions.

use bytes::Bytes;

use crate::primitives::{ProtocolVersion, QoS};
use crate::properties::Properties;
use crate::string::MqttStr;

/// CONNECT. `protocol` decides how it is encoded (the version argument of the encoder is not
/// used for CONNECT, which carries its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds, 0 = disabled.
    pub keep_alive: u16,
    /// Client identifier (may be empty).
    pub client_id: MqttStr,
    /// Will message, if the will flag is set.
    pub will: Option<LastWill>,
    /// User name.
    pub username: Option<MqttStr>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0).
    pub properties: Properties,
}

/// The will message of a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic.
    pub topic: MqttStr,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (5.0).
    pub properties: Properties,
}
