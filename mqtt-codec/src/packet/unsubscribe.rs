//! UNSUBSCRIBE and UNSUBACK.

use bytes::{BufMut, BytesMut};

use crate::encoder::{prefixed_len, put_str};
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::primitives::{PacketId, ProtocolVersion};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
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

impl Unsubscribe {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = Properties::decode_if_v5(r, version, PropertyContext::Unsubscribe)?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(r.string()?);
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyUnsubscribe); // [MQTT-3.10.3-2]
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        };
        2 + props
            + self
                .filters
                .iter()
                .map(|f| prefixed_len(f.len()))
                .sum::<usize>()
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::NoTopicFilters);
        }
        out.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(PropertyContext::Unsubscribe, out)?;
        }
        for filter in &self.filters {
            put_str(out, filter)?;
        }
        Ok(())
    }
}

impl UnsubAck {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let mut ack = Self {
            packet_id,
            reason_codes: Vec::new(),
            properties: Properties::default(),
        };
        if version.is_v5() {
            ack.properties = Properties::decode(r, PropertyContext::UnsubAck)?;
            ack.reason_codes.reserve_exact(r.remaining());
            while !r.is_empty() {
                let code = ReasonCode::try_from(r.u8()?)?;
                if !code.is_valid_for(PacketType::UnsubAck) {
                    return Err(DecodeError::InvalidReasonCode(code.as_u8()));
                }
                ack.reason_codes.push(code);
            }
        }
        r.finish()?;
        Ok(ack)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len() + self.reason_codes.len()
        } else {
            2
        }
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u16(self.packet_id.get());
        if !version.is_v5() {
            return Ok(());
        }
        self.properties.write(PropertyContext::UnsubAck, out)?;
        for &code in &self.reason_codes {
            if !code.is_valid_for(PacketType::UnsubAck) {
                return Err(EncodeError::InvalidReasonCode {
                    code: code.as_u8(),
                    packet_type: PacketType::UnsubAck as u8,
                });
            }
            out.put_u8(code.as_u8());
        }
        Ok(())
    }
}
