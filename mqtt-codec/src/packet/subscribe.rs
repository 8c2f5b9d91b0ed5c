//! SUBSCRIBE, its subscription options, and SUBACK.

use crate::primitives::{PacketId, QoS};
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::string::MqttStr;

/// When retained messages are sent for a new subscription (5.0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not exist yet.
    SendIfNew = 1,
    /// 2: do not send them.
    DoNotSend = 2,
}

/// The options of one subscription. MQTT 3.x carries only `qos`; the other fields keep their
/// defaults there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS requested.
    pub qos: QoS,
    /// No Local (5.0): do not send the client its own messages.
    pub no_local: bool,
    /// Retain As Published (5.0): keep the RETAIN flag when forwarding.
    pub retain_as_published: bool,
    /// Retain Handling (5.0).
    pub retain_handling: RetainHandling,
}

/// SUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// Topic filters with their options, at least one.
    pub filters: Vec<(MqttStr, SubscriptionOptions)>,
    /// SUBSCRIBE properties (5.0).
    pub properties: Properties,
}

/// SUBACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// One code per filter; MQTT 3.x allows only 0x00, 0x01, 0x02 and 0x80.
    pub reason_codes: Vec<ReasonCode>,
    /// SUBACK properties (5.0).
    pub properties: Properties,
}
