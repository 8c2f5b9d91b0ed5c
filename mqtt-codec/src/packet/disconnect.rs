//! DISCONNECT.

use bytes::BytesMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::packet::short_form;
use crate::primitives::ProtocolVersion;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;

/// DISCONNECT. MQTT 3.x carries neither reason code nor properties (`Success`, empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (5.0); `Success` = normal disconnection.
    pub reason_code: ReasonCode,
    /// DISCONNECT properties (5.0).
    pub properties: Properties,
}

impl Disconnect {
    /// MQTT 3.x: the body must be empty. MQTT 5.0: empty means normal disconnection, one byte a
    /// reason code without properties.
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        if !version.is_v5() {
            r.finish()?;
            return Ok(Self::default());
        }
        let (reason_code, properties) =
            short_form::decode(r, PacketType::Disconnect, PropertyContext::Disconnect)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            short_form::body_len(self.reason_code, &self.properties)
        } else {
            0
        }
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        if !version.is_v5() {
            return Ok(());
        }
        short_form::write(
            self.reason_code,
            &self.properties,
            PacketType::Disconnect,
            PropertyContext::Disconnect,
            out,
        )
    }
}
