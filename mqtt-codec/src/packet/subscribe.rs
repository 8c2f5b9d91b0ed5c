//! SUBSCRIBE, its subscription options, and SUBACK.

use bytes::{BufMut, BytesMut};

use crate::encoder::{prefixed_len, put_frame, put_frame_exact, put_str};
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::primitives::{PacketId, ProtocolVersion, QoS};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
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

impl SubscriptionOptions {
    /// Parses the options byte. MQTT 3.x: only the QoS bits may be set [MQTT311-3.8.3-4];
    /// MQTT 5.0: bits 6-7 are reserved [MQTT5-3.8.3-5] and Retain Handling 3 is invalid.
    #[inline]
    pub(crate) fn from_byte(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let invalid = DecodeError::InvalidSubscriptionOptions(byte);
        let reserved = if version.is_v5() {
            0b1100_0000
        } else {
            0b1111_1100
        };
        if byte & reserved != 0 {
            return Err(invalid);
        }
        let qos = QoS::try_from(byte & 0b11).map_err(|_| invalid)?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(invalid),
        };
        Ok(Self {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    /// The options byte; MQTT 3.x carries the QoS only.
    #[inline]
    pub(crate) fn to_byte(self, version: ProtocolVersion) -> u8 {
        let qos = self.qos as u8;
        if !version.is_v5() {
            return qos;
        }
        qos | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }
}

impl Subscribe {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = Properties::decode_if_v5(r, version, PropertyContext::Subscribe)?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            let options = SubscriptionOptions::from_byte(r.u8()?, version)?;
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptySubscription); // [MQTT311-3.8.3-3] [MQTT5-3.8.3-2]
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }

    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = 2;
        if version.is_v5() {
            n += self.properties.encoded_len();
        }
        for (filter, _) in &self.filters {
            n += prefixed_len(filter.len()) + 1;
        }
        n
    }

    /// Appends the whole frame (see [`crate::Packet::encode`]); in 3.x through a
    /// [`crate::encoder::SliceWriter`].
    #[inline(never)]
    pub(crate) fn encode(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::NoTopicFilters);
        }
        let first_byte = (PacketType::Subscribe as u8) << 4 | 0b0010;
        let body = self.body_len(version);
        if version.is_v5() {
            return put_frame(out, first_byte, body, |out| {
                out.put_u16(self.packet_id.get());
                self.properties.write(PropertyContext::Subscribe, out)?;
                for (filter, options) in &self.filters {
                    put_str(out, filter)?;
                    out.put_u8(options.to_byte(version));
                }
                Ok(())
            });
        }
        put_frame_exact(out, first_byte, body, |w| {
            w.put(&self.packet_id.get().to_be_bytes());
            for (filter, options) in &self.filters {
                w.utf8_and_byte(filter.as_bytes(), options.to_byte(version))?;
            }
            Ok(())
        })
    }
}

impl SubAck {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = r.packet_id()?;
        let properties = Properties::decode_if_v5(r, version, PropertyContext::SubAck)?;
        let mut reason_codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let code = ReasonCode::try_from(r.u8()?)?;
            if !valid_suback_code(code, version) {
                return Err(DecodeError::InvalidReasonCode(code.as_u8()));
            }
            reason_codes.push(code);
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let props = if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        };
        2 + props + self.reason_codes.len()
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(PropertyContext::SubAck, out)?;
        }
        for &code in &self.reason_codes {
            if !valid_suback_code(code, version) {
                return Err(EncodeError::InvalidReasonCode {
                    code: code.as_u8(),
                    packet_type: PacketType::SubAck as u8,
                });
            }
            out.put_u8(code.as_u8());
        }
        Ok(())
    }
}

#[inline]
fn valid_suback_code(code: ReasonCode, version: ProtocolVersion) -> bool {
    if version.is_v5() {
        code.is_valid_for(PacketType::SubAck)
    } else {
        code.is_valid_v3_suback()
    }
}
