//! AUTH (MQTT 5.0 only): extended authentication exchange.

use bytes::BytesMut;

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::packet::short_form;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;

/// AUTH.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// AUTH properties: authentication method and data, reason string, user properties.
    pub properties: Properties,
}

impl Auth {
    /// An empty body means Success without properties.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (reason_code, properties) =
            short_form::decode(r, PacketType::Auth, PropertyContext::Auth)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn body_len(&self) -> usize {
        short_form::body_len(self.reason_code, &self.properties)
    }

    pub(crate) fn write(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        short_form::write(
            self.reason_code,
            &self.properties,
            PacketType::Auth,
            PropertyContext::Auth,
            out,
        )
    }
}
