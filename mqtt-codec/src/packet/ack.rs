//! PUBACK, PUBREC, PUBREL and PUBCOMP, which share one shape.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::primitives::{PacketId, ProtocolVersion};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
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

impl Ack {
    /// Decodes the body of `packet_type` (PUBACK, PUBREC, PUBREL or PUBCOMP). In MQTT 5.0 a
    /// two-byte body means Success without properties, a three-byte one a reason code without
    /// properties.
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
        packet_type: PacketType,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut ack = Self::new(packet_id);
        if version.is_v5() && !r.is_empty() {
            let code = ReasonCode::try_from(r.u8()?)?;
            if !code.is_valid_for(packet_type) {
                return Err(DecodeError::InvalidReasonCode(code.as_u8()));
            }
            ack.reason_code = code;
            if !r.is_empty() {
                ack.properties = Properties::decode(r, PropertyContext::Ack(packet_type))?;
            }
        }
        r.finish()?;
        Ok(ack)
    }

    /// Remaining length, using the shortest form MQTT 5.0 allows.
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            return 2;
        }
        if self.properties.is_empty() {
            if self.reason_code == ReasonCode::Success {
                2
            } else {
                3
            }
        } else {
            3 + self.properties.encoded_len()
        }
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        packet_type: PacketType,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u16(self.packet_id.get());
        if !version.is_v5() {
            return Ok(());
        }
        if !self.reason_code.is_valid_for(packet_type) {
            return Err(EncodeError::InvalidReasonCode {
                code: self.reason_code.as_u8(),
                packet_type: packet_type as u8,
            });
        }
        if self.properties.is_empty() {
            if self.reason_code != ReasonCode::Success {
                out.put_u8(self.reason_code.as_u8());
            }
            return Ok(());
        }
        out.put_u8(self.reason_code.as_u8());
        self.properties
            .write(PropertyContext::Ack(packet_type), out)
    }
}
