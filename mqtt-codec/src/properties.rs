//! MQTT 5.0 properties: [`PropertyValues`], one struct with every property, used by every
//! packet through [`Properties`], a pointer-sized handle that allocates only when a property is
//! set; the property identifiers, and which packet may carry which property.

use core::fmt;
use core::ops::{Deref, DerefMut};

use bytes::{BufMut, Bytes, BytesMut};

use crate::encoder::{prefixed_len, put_binary, put_str};
use crate::error::{DecodeError, EncodeError};
use crate::frame::{MAX_VBI, put_vbi, vbi_len};
use crate::packet::PacketType;
use crate::primitives::ProtocolVersion;
use crate::reader::Reader;
use crate::string::MqttStr;

/// The properties of an MQTT 5.0 packet (or of a will message), as a packet carries them.
///
/// One pointer wide: empty properties (every MQTT 3.x packet, most 5.0 ones) allocate nothing
/// and cost nothing to create, move or drop. Read a property through `Deref` and set one
/// through `DerefMut`, which allocates the [`PropertyValues`] on first write:
///
/// ```
/// use mqtt_wire::{Properties, PropertyValues};
///
/// let mut properties = Properties::default();
/// assert_eq!(properties.topic_alias, None); // reading an empty set allocates nothing
/// properties.topic_alias = Some(3);
/// assert_eq!(properties.topic_alias, Some(3));
///
/// let built = Properties::from(PropertyValues {
///     topic_alias: Some(3),
///     ..PropertyValues::default()
/// });
/// assert_eq!(built, properties);
/// properties.topic_alias = None;
/// assert_eq!(properties, Properties::default()); // equality compares the values only
/// ```
#[derive(Default, Clone)]
pub struct Properties(Option<Box<PropertyValues>>);

/// What [`Properties`] reads as when nothing was ever set.
static NO_PROPERTIES: PropertyValues = PropertyValues::EMPTY;

impl Properties {
    /// No properties (allocates nothing).
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self(None)
    }

    /// Whether no property is set.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(PropertyValues::is_empty)
    }

    /// The values, moved out (empty ones if none were set).
    #[must_use]
    pub fn into_values(self) -> PropertyValues {
        self.0
            .map_or_else(PropertyValues::default, |values| *values)
    }

    /// Reads a property length and the property list it covers (see
    /// [`PropertyValues::decode`]); an empty list allocates nothing.
    #[inline]
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Self, DecodeError> {
        if r.peek() == Some(0) {
            r.u8()?;
            return Ok(Self(None));
        }
        PropertyValues::decode(r, ctx).map(|values| Self(Some(Box::new(values))))
    }

    /// Reads the property section of a PUBLISH kept outside a packet (a length prefix, then
    /// the properties), as stores such as mosquitto's persistence file keep it; all of `bytes`
    /// must be that section. String and binary values are views into `bytes`.
    ///
    /// ```
    /// use mqtt_wire::{Bytes, Properties};
    ///
    /// // Length 5: Message Expiry Interval (0x02) of 60 seconds.
    /// let section = Bytes::from_static(&[5, 0x02, 0, 0, 0, 60]);
    /// let properties = Properties::decode_publish_section(&section)?;
    /// assert_eq!(properties.message_expiry_interval, Some(60));
    /// assert!(Properties::decode_publish_section(&Bytes::from_static(&[9, 0x02])).is_err());
    /// # Ok::<(), mqtt_wire::DecodeError>(())
    /// ```
    pub fn decode_publish_section(bytes: &Bytes) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes, 0, bytes.len());
        let properties = Self::decode(&mut reader, PropertyContext::Publish)?;
        reader.finish()?;
        Ok(properties)
    }

    /// The property list of a packet on a `version` connection: decoded in 5.0, absent (empty)
    /// in MQTT 3.x.
    #[inline]
    pub(crate) fn decode_if_v5(
        r: &mut Reader<'_>,
        version: ProtocolVersion,
        ctx: PropertyContext,
    ) -> Result<Self, DecodeError> {
        if version.is_v5() {
            Self::decode(r, ctx)
        } else {
            Ok(Self::default())
        }
    }

    /// Length of the property list with its Variable Byte Integer length prefix.
    #[inline]
    pub(crate) fn encoded_len(&self) -> usize {
        self.0.as_deref().map_or(1, PropertyValues::encoded_len)
    }

    /// Writes the length prefix and the property list (see [`PropertyValues::write`]).
    #[inline]
    pub(crate) fn write(
        &self,
        ctx: PropertyContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match self.0.as_deref() {
            None => {
                out.put_u8(0);
                Ok(())
            }
            Some(values) => values.write(ctx, out),
        }
    }
}

impl Deref for Properties {
    type Target = PropertyValues;

    #[inline]
    fn deref(&self) -> &PropertyValues {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl DerefMut for Properties {
    /// Allocates the values on first use.
    #[inline]
    fn deref_mut(&mut self) -> &mut PropertyValues {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<PropertyValues> for Properties {
    fn from(values: PropertyValues) -> Self {
        if values.is_empty() {
            Self(None)
        } else {
            Self(Some(Box::new(values)))
        }
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        match (self.0.as_deref(), other.0.as_deref()) {
            (None, None) => true,
            _ => **self == **other,
        }
    }
}

impl Eq for Properties {}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Every MQTT 5.0 property. Absent properties are `None` / empty. Packets hold them through
/// [`Properties`].
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct PropertyValues {
    /// 0x01 Payload Format Indicator (PUBLISH, will): 0 bytes, 1 UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval in seconds (PUBLISH, will).
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type (PUBLISH, will).
    pub content_type: Option<MqttStr>,
    /// 0x08 Response Topic (PUBLISH, will).
    pub response_topic: Option<MqttStr>,
    /// 0x09 Correlation Data (PUBLISH, will).
    pub correlation_data: Option<Bytes>,
    /// 0x0B Subscription Identifier, 1..=268,435,455 (several in PUBLISH, one in SUBSCRIBE).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11 Session Expiry Interval in seconds (CONNECT, CONNACK, DISCONNECT).
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier (CONNACK).
    pub assigned_client_identifier: Option<MqttStr>,
    /// 0x13 Server Keep Alive in seconds (CONNACK).
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method (CONNECT, CONNACK, AUTH).
    pub authentication_method: Option<MqttStr>,
    /// 0x16 Authentication Data (CONNECT, CONNACK, AUTH).
    pub authentication_data: Option<Bytes>,
    /// 0x17 Request Problem Information, 0 or 1 (CONNECT).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval in seconds (will).
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information, 0 or 1 (CONNECT).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information (CONNACK).
    pub response_information: Option<MqttStr>,
    /// 0x1C Server Reference (CONNACK, DISCONNECT).
    pub server_reference: Option<MqttStr>,
    /// 0x1F Reason String (acknowledgements, CONNACK, DISCONNECT, AUTH).
    pub reason_string: Option<MqttStr>,
    /// 0x21 Receive Maximum, non-zero (CONNECT, CONNACK).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum (CONNECT, CONNACK).
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias, non-zero (PUBLISH).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS, 0 or 1 (CONNACK).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available, 0 or 1 (CONNACK).
    pub retain_available: Option<u8>,
    /// 0x26 User Properties, in order, repeats allowed (every packet).
    pub user_properties: Vec<(MqttStr, MqttStr)>,
    /// 0x27 Maximum Packet Size, non-zero (CONNECT, CONNACK).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available, 0 or 1 (CONNACK).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifier Available, 0 or 1 (CONNACK).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A Shared Subscription Available, 0 or 1 (CONNACK).
    pub shared_subscription_available: Option<u8>,
}

/// Property identifiers (MQTT 5.0 §2.2.2.2).
pub(crate) mod id {
    pub(crate) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(crate) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(crate) const CONTENT_TYPE: u8 = 0x03;
    pub(crate) const RESPONSE_TOPIC: u8 = 0x08;
    pub(crate) const CORRELATION_DATA: u8 = 0x09;
    pub(crate) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(crate) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(crate) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(crate) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(crate) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(crate) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(crate) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(crate) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(crate) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(crate) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(crate) const SERVER_REFERENCE: u8 = 0x1C;
    pub(crate) const REASON_STRING: u8 = 0x1F;
    pub(crate) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(crate) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(crate) const TOPIC_ALIAS: u8 = 0x23;
    pub(crate) const MAXIMUM_QOS: u8 = 0x24;
    pub(crate) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(crate) const USER_PROPERTY: u8 = 0x26;
    pub(crate) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(crate) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(crate) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(crate) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property list appears; decides which properties are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL or PUBCOMP.
    Ack(PacketType),
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const CONNECT: u16 = 1 << 0;
const WILL: u16 = 1 << 1;
const CONNACK: u16 = 1 << 2;
const PUBLISH: u16 = 1 << 3;
const ACK: u16 = 1 << 4;
const SUBSCRIBE: u16 = 1 << 5;
const SUBACK: u16 = 1 << 6;
const UNSUBSCRIBE: u16 = 1 << 7;
const UNSUBACK: u16 = 1 << 8;
const DISCONNECT: u16 = 1 << 9;
const AUTH: u16 = 1 << 10;

impl PropertyContext {
    #[inline]
    const fn bit(self) -> u16 {
        match self {
            Self::Connect => CONNECT,
            Self::Will => WILL,
            Self::ConnAck => CONNACK,
            Self::Publish => PUBLISH,
            Self::Ack(_) => ACK,
            Self::Subscribe => SUBSCRIBE,
            Self::SubAck => SUBACK,
            Self::Unsubscribe => UNSUBSCRIBE,
            Self::UnsubAck => UNSUBACK,
            Self::Disconnect => DISCONNECT,
            Self::Auth => AUTH,
        }
    }

    /// The packet type reported in errors (will properties belong to CONNECT).
    const fn packet_type(self) -> u8 {
        (match self {
            Self::Connect | Self::Will => PacketType::Connect,
            Self::ConnAck => PacketType::ConnAck,
            Self::Publish => PacketType::Publish,
            Self::Ack(t) => t,
            Self::Subscribe => PacketType::Subscribe,
            Self::SubAck => PacketType::SubAck,
            Self::Unsubscribe => PacketType::Unsubscribe,
            Self::UnsubAck => PacketType::UnsubAck,
            Self::Disconnect => PacketType::Disconnect,
            Self::Auth => PacketType::Auth,
        }) as u8
    }

    /// Whether property `property` may appear here; `None` for an unknown identifier.
    #[inline]
    fn allows(self, property: u8) -> Option<bool> {
        use id::*;
        let contexts = match property {
            PAYLOAD_FORMAT_INDICATOR
            | MESSAGE_EXPIRY_INTERVAL
            | CONTENT_TYPE
            | RESPONSE_TOPIC
            | CORRELATION_DATA => PUBLISH | WILL,
            SUBSCRIPTION_IDENTIFIER => PUBLISH | SUBSCRIBE,
            SESSION_EXPIRY_INTERVAL => CONNECT | CONNACK | DISCONNECT,
            ASSIGNED_CLIENT_IDENTIFIER
            | SERVER_KEEP_ALIVE
            | RESPONSE_INFORMATION
            | MAXIMUM_QOS
            | RETAIN_AVAILABLE
            | WILDCARD_SUBSCRIPTION_AVAILABLE
            | SUBSCRIPTION_IDENTIFIER_AVAILABLE
            | SHARED_SUBSCRIPTION_AVAILABLE => CONNACK,
            AUTHENTICATION_METHOD | AUTHENTICATION_DATA => CONNECT | CONNACK | AUTH,
            REQUEST_PROBLEM_INFORMATION | REQUEST_RESPONSE_INFORMATION => CONNECT,
            WILL_DELAY_INTERVAL => WILL,
            SERVER_REFERENCE => CONNACK | DISCONNECT,
            REASON_STRING => CONNACK | ACK | SUBACK | UNSUBACK | DISCONNECT | AUTH,
            RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | MAXIMUM_PACKET_SIZE => CONNECT | CONNACK,
            TOPIC_ALIAS => PUBLISH,
            USER_PROPERTY => u16::MAX,
            _ => return None,
        };
        Some(contexts & self.bit() != 0)
    }
}

/// A property value that must be 0 or 1.
#[inline]
fn flag_value(property: u8, value: u8) -> Result<u8, DecodeError> {
    if value > 1 {
        Err(DecodeError::InvalidPropertyValue(property))
    } else {
        Ok(value)
    }
}

/// Stores `value` in a property slot, refusing a second occurrence [MQTT5 §2.2.2.2].
#[inline]
fn set_once<T>(slot: &mut Option<T>, property: u8, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(property));
    }
    *slot = Some(value);
    Ok(())
}

impl PropertyValues {
    /// No property set; a constant, so it can back a `static`.
    const EMPTY: Self = Self {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };

    /// Whether no property is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }

    /// Reads a property length and the property list it covers, checking that each property is
    /// known, allowed in `ctx`, not repeated and within its value range.
    pub(crate) fn decode(r: &mut Reader<'_>, ctx: PropertyContext) -> Result<Self, DecodeError> {
        let len = r.vbi()? as usize;
        let mut r = r.sub(len)?;
        let mut props = Self::default();
        while !r.is_empty() {
            // Identifiers are Variable Byte Integers, but every defined one fits in one byte:
            // a byte with the continuation bit is an unknown identifier.
            let property = r.u8()?;
            match ctx.allows(property) {
                None => return Err(DecodeError::InvalidPropertyId(property)),
                Some(false) => {
                    return Err(DecodeError::PropertyNotAllowed {
                        property,
                        packet_type: ctx.packet_type(),
                    });
                }
                Some(true) => {}
            }
            props.decode_value(&mut r, property, ctx)?;
        }
        if props.authentication_data.is_some() && props.authentication_method.is_none() {
            // "It is a Protocol Error to include Authentication Data if there is no
            // Authentication Method" (MQTT 5.0 §3.1.2.11.10, §3.2.2.3.18, §3.15.2.2.3).
            return Err(DecodeError::InvalidPropertyValue(id::AUTHENTICATION_DATA));
        }
        Ok(props)
    }

    fn decode_value(
        &mut self,
        r: &mut Reader<'_>,
        property: u8,
        ctx: PropertyContext,
    ) -> Result<(), DecodeError> {
        use id::*;
        let invalid = DecodeError::InvalidPropertyValue(property);
        match property {
            PAYLOAD_FORMAT_INDICATOR => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.payload_format_indicator, property, v)
            }
            MESSAGE_EXPIRY_INTERVAL => {
                set_once(&mut self.message_expiry_interval, property, r.u32()?)
            }
            CONTENT_TYPE => set_once(&mut self.content_type, property, r.string()?),
            RESPONSE_TOPIC => set_once(&mut self.response_topic, property, r.string()?),
            CORRELATION_DATA => set_once(&mut self.correlation_data, property, r.binary()?),
            SUBSCRIPTION_IDENTIFIER => {
                let v = r.vbi()?;
                if v == 0 {
                    return Err(invalid);
                }
                if ctx != PropertyContext::Publish && !self.subscription_identifiers.is_empty() {
                    return Err(DecodeError::DuplicateProperty(property));
                }
                self.subscription_identifiers.push(v);
                Ok(())
            }
            SESSION_EXPIRY_INTERVAL => {
                set_once(&mut self.session_expiry_interval, property, r.u32()?)
            }
            ASSIGNED_CLIENT_IDENTIFIER => {
                set_once(&mut self.assigned_client_identifier, property, r.string()?)
            }
            SERVER_KEEP_ALIVE => set_once(&mut self.server_keep_alive, property, r.u16()?),
            AUTHENTICATION_METHOD => {
                set_once(&mut self.authentication_method, property, r.string()?)
            }
            AUTHENTICATION_DATA => set_once(&mut self.authentication_data, property, r.binary()?),
            REQUEST_PROBLEM_INFORMATION => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.request_problem_information, property, v)
            }
            WILL_DELAY_INTERVAL => set_once(&mut self.will_delay_interval, property, r.u32()?),
            REQUEST_RESPONSE_INFORMATION => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.request_response_information, property, v)
            }
            RESPONSE_INFORMATION => set_once(&mut self.response_information, property, r.string()?),
            SERVER_REFERENCE => set_once(&mut self.server_reference, property, r.string()?),
            REASON_STRING => set_once(&mut self.reason_string, property, r.string()?),
            RECEIVE_MAXIMUM => {
                let v = r.u16()?;
                if v == 0 {
                    return Err(invalid);
                }
                set_once(&mut self.receive_maximum, property, v)
            }
            TOPIC_ALIAS_MAXIMUM => set_once(&mut self.topic_alias_maximum, property, r.u16()?),
            TOPIC_ALIAS => {
                let v = r.u16()?;
                if v == 0 {
                    return Err(invalid);
                }
                set_once(&mut self.topic_alias, property, v)
            }
            MAXIMUM_QOS => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.maximum_qos, property, v)
            }
            RETAIN_AVAILABLE => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.retain_available, property, v)
            }
            USER_PROPERTY => {
                let key = r.string()?;
                let value = r.string()?;
                self.user_properties.push((key, value));
                Ok(())
            }
            MAXIMUM_PACKET_SIZE => {
                let v = r.u32()?;
                if v == 0 {
                    return Err(invalid);
                }
                set_once(&mut self.maximum_packet_size, property, v)
            }
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.wildcard_subscription_available, property, v)
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.subscription_identifier_available, property, v)
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = flag_value(property, r.u8()?)?;
                set_once(&mut self.shared_subscription_available, property, v)
            }
            _ => Err(DecodeError::InvalidPropertyId(property)),
        }
    }

    /// Length of the property list, without its length prefix.
    pub(crate) fn list_len(&self) -> usize {
        fn str_len(s: &Option<MqttStr>) -> usize {
            s.as_ref().map_or(0, |s| 1 + prefixed_len(s.len()))
        }
        fn bin_len(b: &Option<Bytes>) -> usize {
            b.as_ref().map_or(0, |b| 1 + prefixed_len(b.len()))
        }
        fn fixed<T>(v: &Option<T>, size: usize) -> usize {
            if v.is_some() { 1 + size } else { 0 }
        }
        let mut n = fixed(&self.payload_format_indicator, 1)
            + fixed(&self.message_expiry_interval, 4)
            + str_len(&self.content_type)
            + str_len(&self.response_topic)
            + bin_len(&self.correlation_data)
            + fixed(&self.session_expiry_interval, 4)
            + str_len(&self.assigned_client_identifier)
            + fixed(&self.server_keep_alive, 2)
            + str_len(&self.authentication_method)
            + bin_len(&self.authentication_data)
            + fixed(&self.request_problem_information, 1)
            + fixed(&self.will_delay_interval, 4)
            + fixed(&self.request_response_information, 1)
            + str_len(&self.response_information)
            + str_len(&self.server_reference)
            + str_len(&self.reason_string)
            + fixed(&self.receive_maximum, 2)
            + fixed(&self.topic_alias_maximum, 2)
            + fixed(&self.topic_alias, 2)
            + fixed(&self.maximum_qos, 1)
            + fixed(&self.retain_available, 1)
            + fixed(&self.maximum_packet_size, 4)
            + fixed(&self.wildcard_subscription_available, 1)
            + fixed(&self.subscription_identifier_available, 1)
            + fixed(&self.shared_subscription_available, 1);
        for &sid in &self.subscription_identifiers {
            n += 1 + vbi_len(sid as usize);
        }
        for (key, value) in &self.user_properties {
            n += 1 + prefixed_len(key.len()) + prefixed_len(value.len());
        }
        n
    }

    /// Length of the property list with its Variable Byte Integer length prefix.
    #[inline]
    pub(crate) fn encoded_len(&self) -> usize {
        let n = self.list_len();
        vbi_len(n) + n
    }

    /// Writes the length prefix and the property list in ascending identifier order (user
    /// properties in their own order at 0x26), refusing properties `ctx` does not allow
    /// and values the decoder would refuse.
    pub(crate) fn write(
        &self,
        ctx: PropertyContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        use id::*;
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::InvalidPropertyValue(AUTHENTICATION_DATA));
        }
        let len = self.list_len();
        put_vbi(
            out,
            u32::try_from(len)
                .ok()
                .filter(|&l| l <= MAX_VBI)
                .ok_or(EncodeError::PacketTooLarge)?,
        );
        let allowed = |property: u8| -> Result<(), EncodeError> {
            if ctx.allows(property) == Some(true) {
                Ok(())
            } else {
                Err(EncodeError::PropertyNotAllowed {
                    property,
                    packet_type: ctx.packet_type(),
                })
            }
        };
        let put_u8 = |out: &mut BytesMut, property: u8, v: Option<u8>, max: u8| {
            if let Some(v) = v {
                allowed(property)?;
                if v > max {
                    return Err(EncodeError::InvalidPropertyValue(property));
                }
                out.put_u8(property);
                out.put_u8(v);
            }
            Ok(())
        };
        let put_u16 = |out: &mut BytesMut, property: u8, v: Option<u16>, min: u16| {
            if let Some(v) = v {
                allowed(property)?;
                if v < min {
                    return Err(EncodeError::InvalidPropertyValue(property));
                }
                out.put_u8(property);
                out.put_u16(v);
            }
            Ok(())
        };
        let put_u32 = |out: &mut BytesMut, property: u8, v: Option<u32>, min: u32| {
            if let Some(v) = v {
                allowed(property)?;
                if v < min {
                    return Err(EncodeError::InvalidPropertyValue(property));
                }
                out.put_u8(property);
                out.put_u32(v);
            }
            Ok(())
        };
        let put_string = |out: &mut BytesMut, property: u8, v: &Option<MqttStr>| {
            if let Some(v) = v {
                allowed(property)?;
                out.put_u8(property);
                put_str(out, v)?;
            }
            Ok(())
        };
        let put_bin = |out: &mut BytesMut, property: u8, v: &Option<Bytes>| {
            if let Some(v) = v {
                allowed(property)?;
                out.put_u8(property);
                put_binary(out, v)?;
            }
            Ok(())
        };
        put_u8(
            out,
            PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator,
            1,
        )?;
        put_u32(
            out,
            MESSAGE_EXPIRY_INTERVAL,
            self.message_expiry_interval,
            0,
        )?;
        put_string(out, CONTENT_TYPE, &self.content_type)?;
        put_string(out, RESPONSE_TOPIC, &self.response_topic)?;
        put_bin(out, CORRELATION_DATA, &self.correlation_data)?;
        if !self.subscription_identifiers.is_empty() {
            allowed(SUBSCRIPTION_IDENTIFIER)?;
            if ctx != PropertyContext::Publish && self.subscription_identifiers.len() > 1 {
                return Err(EncodeError::InvalidPropertyValue(SUBSCRIPTION_IDENTIFIER));
            }
            for &sid in &self.subscription_identifiers {
                if sid == 0 || sid > MAX_VBI {
                    return Err(EncodeError::InvalidPropertyValue(SUBSCRIPTION_IDENTIFIER));
                }
                out.put_u8(SUBSCRIPTION_IDENTIFIER);
                put_vbi(out, sid);
            }
        }
        put_u32(
            out,
            SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval,
            0,
        )?;
        put_string(
            out,
            ASSIGNED_CLIENT_IDENTIFIER,
            &self.assigned_client_identifier,
        )?;
        put_u16(out, SERVER_KEEP_ALIVE, self.server_keep_alive, 0)?;
        put_string(out, AUTHENTICATION_METHOD, &self.authentication_method)?;
        put_bin(out, AUTHENTICATION_DATA, &self.authentication_data)?;
        put_u8(
            out,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
            1,
        )?;
        put_u32(out, WILL_DELAY_INTERVAL, self.will_delay_interval, 0)?;
        put_u8(
            out,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
            1,
        )?;
        put_string(out, RESPONSE_INFORMATION, &self.response_information)?;
        put_string(out, SERVER_REFERENCE, &self.server_reference)?;
        put_string(out, REASON_STRING, &self.reason_string)?;
        put_u16(out, RECEIVE_MAXIMUM, self.receive_maximum, 1)?;
        put_u16(out, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum, 0)?;
        put_u16(out, TOPIC_ALIAS, self.topic_alias, 1)?;
        put_u8(out, MAXIMUM_QOS, self.maximum_qos, 1)?;
        put_u8(out, RETAIN_AVAILABLE, self.retain_available, 1)?;
        if !self.user_properties.is_empty() {
            allowed(USER_PROPERTY)?;
            for (key, value) in &self.user_properties {
                out.put_u8(USER_PROPERTY);
                put_str(out, key)?;
                put_str(out, value)?;
            }
        }
        put_u32(out, MAXIMUM_PACKET_SIZE, self.maximum_packet_size, 1)?;
        put_u8(
            out,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
            1,
        )?;
        put_u8(
            out,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifier_available,
            1,
        )?;
        put_u8(
            out,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
            1,
        )?;
        Ok(())
    }
}
