//! PUBACK, PUBREC, PUBREL and PUBCOMP, which share one shape.

use crate::primitives::PacketId;
use crate::properties::Properties;
use crate::reason::ReasonCode;

/// PUBACK, PUBREC, PUBREL or PUBCOMP (the variant of [`crate::Packet`] tells which).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier of the acknowledged PUBLISH.
    pub packet_id: PacketId,
    /// Reason code (5.0); `Success` in 3.x.
    pub reason_code: ReasonCode,
    /// Properties (5.0).
    pub properties: Properties,
}

impl Ack {
    /// A successful acknowledgement without properties.
    #[must_use]
    pub fn new(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}
