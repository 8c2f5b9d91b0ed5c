//! The MQTT 5.0 body shared by DISCONNECT and AUTH: an optional reason code followed by optional
//! properties, where an empty body means Success and a one-byte body a code without properties.

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::reason::ReasonCode;

pub(crate) fn decode(
    r: &mut Reader<'_>,
    packet_type: PacketType,
    ctx: PropertyContext,
) -> Result<(ReasonCode, Properties), DecodeError> {
    if r.is_empty() {
        return Ok((ReasonCode::Success, Properties::default()));
    }
    let code = ReasonCode::try_from(r.u8()?)?;
    if !code.is_valid_for(packet_type) {
        return Err(DecodeError::InvalidReasonCode(code.as_u8()));
    }
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        Properties::decode(r, ctx)?
    };
    r.finish()?;
    Ok((code, properties))
}

pub(crate) fn body_len(code: ReasonCode, properties: &Properties) -> usize {
    if !properties.is_empty() {
        1 + properties.encoded_len()
    } else if code == ReasonCode::Success {
        0
    } else {
        1
    }
}

pub(crate) fn write(
    code: ReasonCode,
    properties: &Properties,
    packet_type: PacketType,
    ctx: PropertyContext,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !code.is_valid_for(packet_type) {
        return Err(EncodeError::InvalidReasonCode {
            code: code.as_u8(),
            packet_type: packet_type as u8,
        });
    }
    if !properties.is_empty() {
        out.put_u8(code.as_u8());
        return properties.write(ctx, out);
    }
    if code != ReasonCode::Success {
        out.put_u8(code.as_u8());
    }
    Ok(())
}
