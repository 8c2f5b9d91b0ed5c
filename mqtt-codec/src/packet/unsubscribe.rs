//! UNSUBSCRIBE and UNSUBACK.

use crate::primitives::PacketId;
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::string::MqttStr;

/// UNSUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// Topic filters, at least one.
    pub filters: Vec<MqttStr>,
    /// UNSUBSCRIBE properties (5.0).
    pub properties: Properties,
}

/// UNSUBACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter (5.0); always empty in MQTT 3.x.
    pub reason_codes: Vec<ReasonCode>,
    /// UNSUBACK properties (5.0).
    pub properties: Properties,
}
