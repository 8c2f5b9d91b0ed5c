//! CONNACK: the server's answer to CONNECT.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::primitives::ProtocolVersion;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::{ConnectReturnCode, ReasonCode};

/// CONNACK. In MQTT 3.x the return code is carried as the equivalent [`ReasonCode`]
/// (see [`crate::ConnectReturnCode`] for the mapping).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// Reason code (v5) or mapped return code (v3).
    pub reason_code: ReasonCode,
    /// CONNACK properties (5.0).
    pub properties: Properties,
}

impl ConnAck {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        if flags & 0xFE != 0 {
            return Err(DecodeError::InvalidConnAckFlags(flags)); // [MQTT5-3.2.2-1]
        }
        let code = r.u8()?;
        let reason_code = if version.is_v5() {
            let code = ReasonCode::try_from(code)?;
            if !code.is_valid_for(PacketType::ConnAck) {
                return Err(DecodeError::InvalidReasonCode(code.as_u8()));
            }
            code
        } else {
            ReasonCode::from(ConnectReturnCode::try_from(code)?)
        };
        let session_present = flags & 0x01 != 0;
        if session_present && reason_code != ReasonCode::Success {
            // [MQTT311-3.2.2-4] [MQTT5-3.2.2-6]
            return Err(DecodeError::SessionPresentOnRefusal);
        }
        let properties = Properties::decode_if_v5(r, version, PropertyContext::ConnAck)?;
        r.finish()?;
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len()
        } else {
            2
        }
    }

    pub(crate) fn write(
        &self,
        version: ProtocolVersion,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        out.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            if !self.reason_code.is_valid_for(PacketType::ConnAck) {
                return Err(EncodeError::InvalidReasonCode {
                    code: self.reason_code.as_u8(),
                    packet_type: PacketType::ConnAck as u8,
                });
            }
            out.put_u8(self.reason_code.as_u8());
            self.properties.write(PropertyContext::ConnAck, out)
        } else {
            out.put_u8(ConnectReturnCode::from(self.reason_code) as u8);
            Ok(())
        }
    }
}
