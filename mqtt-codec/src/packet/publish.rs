//! PUBLISH: an application message, with zero-copy topic and payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::encoder::{frame_len, prefixed_len, put_fixed_header, put_str};
use crate::error::{DecodeError, EncodeError};
use crate::primitives::{ProtocolVersion, PublishQos};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
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

impl Publish {
    /// Decodes a PUBLISH from its whole `frame`, whose body starts at `body_start`; `flags` is
    /// the lower nibble of the fixed header. The payload is the frame itself advanced past the
    /// headers, which saves a reference-count update.
    #[inline(always)]
    pub(crate) fn decode(
        flags: u8,
        frame: Bytes,
        body_start: usize,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let dup = flags & 0b1000 != 0;
        let retain = flags & 0b0001 != 0;
        let qos_bits = (flags >> 1) & 0b11;
        let r = &mut Reader::new(&frame, body_start, frame.len());
        let topic = r.string()?;
        let qos = match qos_bits {
            0 if dup => return Err(DecodeError::DupWithQoS0), // [MQTT-3.3.1-2]
            0 => PublishQos::AtMostOnce,
            1 => PublishQos::AtLeastOnce(r.packet_id()?),
            2 => PublishQos::ExactlyOnce(r.packet_id()?),
            _ => return Err(DecodeError::InvalidQoS(qos_bits)), // [MQTT-3.3.1-4]
        };
        if version.is_v5() {
            let properties = Properties::decode(r, PropertyContext::Publish)?;
            let payload_start = r.position();
            return Ok(Self {
                dup,
                qos,
                retain,
                topic,
                properties,
                payload: frame.slice(payload_start..),
            });
        }
        // MQTT 3.x: the payload takes over the frame, which saves a reference-count update.
        let payload_start = r.position();
        let mut payload = frame;
        payload.advance(payload_start);
        Ok(Self {
            dup,
            qos,
            retain,
            topic,
            properties: Properties::default(),
            payload,
        })
    }

    /// The lower nibble of the fixed header: DUP, QoS, RETAIN.
    #[inline]
    fn flags(&self) -> u8 {
        (u8::from(self.dup) << 3) | ((self.qos.qos() as u8) << 1) | u8::from(self.retain)
    }

    /// Remaining length, payload included.
    #[inline]
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let mut n = prefixed_len(self.topic.len()) + self.payload.len();
        if self.qos.packet_id().is_some() {
            n += 2;
        }
        if version.is_v5() {
            n += self.properties.encoded_len();
        }
        n
    }

    /// Writes the fixed header (announcing `body` bytes) and the variable header.
    #[inline]
    pub(crate) fn write_header(
        &self,
        version: ProtocolVersion,
        body: usize,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        put_fixed_header(out, 0x30 | self.flags(), body)?;
        put_str(out, &self.topic)?;
        if let Some(id) = self.qos.packet_id() {
            out.put_u16(id.get());
        }
        if version.is_v5() {
            self.properties.write(PropertyContext::Publish, out)?;
        }
        Ok(())
    }

    /// Writes the fixed header and variable header only, announcing the full length; the caller
    /// sends `payload` right after (for example with vectored I/O), so one payload buffer can be
    /// shared by every subscriber. On error `out` is left as it was.
    ///
    /// # Errors
    /// As for [`crate::Packet::encode`].
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let body = self.body_len(version);
        out.reserve(frame_len(body) - self.payload.len());
        let start = out.len();
        let written = self.write_header(version, body, out);
        if written.is_err() {
            out.truncate(start);
        }
        written
    }
}
