//! PUBLISH: an application message, with zero-copy topic and payload.

use bytes::Bytes;

use crate::primitives::PublishQos;
use crate::properties::Properties;
use crate::string::MqttStr;

/// PUBLISH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag: this is a re-delivery.
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos: PublishQos,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name (may be empty in 5.0 when a topic alias is used); its validity as a topic name
    /// is checked by the topic layer, not the codec.
    pub topic: MqttStr,
    /// PUBLISH properties (5.0).
    pub properties: Properties,
    /// Application payload.
    pub payload: Bytes,
}
