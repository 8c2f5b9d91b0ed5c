//! CONNECT and its will message: the client's opening packet, in all three protocol versions.

use bytes::{Bytes, BytesMut};

use crate::encoder::{prefixed_len, put_binary, put_frame, put_frame_exact, put_str};
use crate::error::{DecodeError, EncodeError};
use crate::packet::PacketType;
use crate::primitives::{ProtocolVersion, QoS};
use crate::properties::{Properties, PropertyContext};
use crate::reader::Reader;
use crate::string::MqttStr;

/// CONNECT. `protocol` decides how it is encoded (the version argument of the encoder is not
/// used for CONNECT, which carries its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level.
    pub protocol: ProtocolVersion,
    /// The top bit of a 3.x protocol level (`0x83`, `0x84`): the client is a bridge of
    /// another broker (mosquitto's `try_private`). Not part of the OASIS standards, which
    /// know levels 3, 4 and 5 only; a broker that honours it treats the bridge's
    /// subscriptions as no-local and retain-as-published, so a bridge in both directions
    /// does not loop. Always `false` in 5.0, which has both options per subscription.
    pub bridge: bool,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds, 0 = disabled.
    pub keep_alive: u16,
    /// Client identifier (may be empty).
    pub client_id: MqttStr,
    /// Will message, if the will flag is set.
    pub will: Option<LastWill>,
    /// User name.
    pub username: Option<MqttStr>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// CONNECT properties (5.0).
    pub properties: Properties,
}

/// The will message of a CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic.
    pub topic: MqttStr,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (5.0).
    pub properties: Properties,
}

impl Connect {
    /// Reads the protocol name and level, the first fields of a CONNECT body.
    /// With it, whether the level carries the bridge bit (`0x80`, 3.x only; see
    /// [`Connect::bridge`]).
    pub(crate) fn decode_protocol(
        r: &mut Reader<'_>,
    ) -> Result<(ProtocolVersion, bool), DecodeError> {
        let name = r.prefixed_slice()?;
        let level = r.u8()?;
        match (name, level) {
            (b"MQTT", 4) => Ok((ProtocolVersion::V3_1_1, false)),
            (b"MQTT", 0x84) => Ok((ProtocolVersion::V3_1_1, true)),
            (b"MQTT", 5) => Ok((ProtocolVersion::V5, false)),
            (b"MQIsdp", 3) => Ok((ProtocolVersion::V3_1, false)),
            (b"MQIsdp", 0x83) => Ok((ProtocolVersion::V3_1, true)),
            (b"MQTT" | b"MQIsdp", other) => Err(DecodeError::UnsupportedProtocolVersion(other)),
            _ => Err(DecodeError::InvalidProtocolName),
        }
    }

    /// Decodes a CONNECT body; the version is the one the packet names, not the connection's.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (protocol, bridge) = Self::decode_protocol(r)?;
        let v5 = protocol.is_v5();
        let flags = r.u8()?;
        if flags & flag::RESERVED != 0 {
            return Err(DecodeError::InvalidConnectFlags); // [MQTT-3.1.2-3]
        }
        let will_flag = flags & flag::WILL != 0;
        let will_qos = (flags >> 3) & 0b11;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        if !will_flag && (will_qos != 0 || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill); // [MQTT-3.1.2-11/13/15]
        }
        let will_qos = QoS::try_from(will_qos).map_err(|_| DecodeError::InvalidWillQoS)?;
        let has_username = flags & flag::USERNAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        if !v5 && has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername); // [MQTT-3.1.2-22]
        }
        let keep_alive = r.u16()?;
        let properties = if v5 {
            Properties::decode(r, PropertyContext::Connect)?
        } else {
            Properties::default()
        };
        let client_id = r.string()?;
        let will = if will_flag {
            let properties = if v5 {
                Properties::decode(r, PropertyContext::Will)?
            } else {
                Properties::default()
            };
            let topic = r.string()?;
            let payload = r.binary()?;
            Some(LastWill {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(r.string()?)
        } else {
            None
        };
        let password = if has_password {
            Some(r.binary()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Self {
            protocol,
            bridge,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    /// Remaining length in its own protocol version.
    #[inline]
    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.protocol.is_v5();
        let mut n = prefixed_len(self.protocol.protocol_name().len()) + 1 + 1 + 2;
        if v5 {
            n += self.properties.encoded_len();
        }
        n += prefixed_len(self.client_id.len());
        if let Some(will) = &self.will {
            if v5 {
                n += will.properties.encoded_len();
            }
            n += prefixed_len(will.topic.len()) + prefixed_len(will.payload.len());
        }
        if let Some(username) = &self.username {
            n += prefixed_len(username.len());
        }
        if let Some(password) = &self.password {
            n += prefixed_len(password.len());
        }
        n
    }

    /// Appends the whole frame in its own protocol version (see [`crate::Packet::encode`]);
    /// in 3.x through a [`crate::encoder::SliceWriter`].
    #[inline(never)]
    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        if !self.protocol.is_v5() && self.password.is_some() && self.username.is_none() {
            return Err(EncodeError::PasswordWithoutUsername);
        }
        let first_byte = (PacketType::Connect as u8) << 4;
        let body = self.body_len();
        let flags = self.flags();
        let [keep_alive_high, keep_alive_low] = self.keep_alive.to_be_bytes();
        let preamble = |level| [level, flags, keep_alive_high, keep_alive_low];
        match self.protocol {
            ProtocolVersion::V5 => put_frame(out, first_byte, body, |out| {
                out.extend_from_slice(b"\x00\x04MQTT");
                out.extend_from_slice(&preamble(5));
                self.properties.write(PropertyContext::Connect, out)?;
                put_str(out, &self.client_id)?;
                if let Some(will) = &self.will {
                    will.properties.write(PropertyContext::Will, out)?;
                    put_str(out, &will.topic)?;
                    put_binary(out, &will.payload)?;
                }
                if let Some(username) = &self.username {
                    put_str(out, username)?;
                }
                if let Some(password) = &self.password {
                    put_binary(out, password)?;
                }
                Ok(())
            }),
            ProtocolVersion::V3_1 | ProtocolVersion::V3_1_1 => {
                put_frame_exact(out, first_byte, body, |w| {
                    let bridge = if self.bridge { 0x80 } else { 0 };
                    if self.protocol == ProtocolVersion::V3_1 {
                        w.put(b"\x00\x06MQIsdp");
                        w.put(&preamble(3 | bridge));
                    } else {
                        w.put(b"\x00\x04MQTT");
                        w.put(&preamble(4 | bridge));
                    }
                    w.utf8(self.client_id.as_bytes())?;
                    if let Some(will) = &self.will {
                        w.utf8(will.topic.as_bytes())?;
                        w.binary(&will.payload)?;
                    }
                    if let Some(username) = &self.username {
                        w.utf8(username.as_bytes())?;
                    }
                    if let Some(password) = &self.password {
                        w.binary(password)?;
                    }
                    Ok(())
                })
            }
        }
    }

    /// The connect flags byte.
    #[inline]
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << 3);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        flags
    }
}

/// CONNECT flag bits (§3.1.2.3).
mod flag {
    pub(super) const RESERVED: u8 = 0x01;
    pub(super) const CLEAN_START: u8 = 0x02;
    pub(super) const WILL: u8 = 0x04;
    pub(super) const WILL_RETAIN: u8 = 0x20;
    pub(super) const PASSWORD: u8 = 0x40;
    pub(super) const USERNAME: u8 = 0x80;
}
