//! The byte layout of every value in the store (format version 2, see `docs/STORAGE.md`), and
//! reading the version 1 session layout for the conversion (version 2 added the publisher of
//! retained messages and retained wills).
//!
//! Integers are little-endian; a string or byte string is a `u32` length then its bytes; an
//! optional value is a `0`/`1` byte then the value. A message keeps its topic, properties and
//! payload as an MQTT 5.0 PUBLISH packet (QoS 0 form), so every v5 property survives unchanged
//! and the layout follows a published standard. Decoding checks every length and tag and fails
//! with a [`DecodeFailure`], never a panic.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{
    ListenerId, Message, RetainSource,
    persist::{DeliveryState, SessionRecord, StoredDelivery, WillRecord},
};
use mqtt_wire::{
    Packet, PacketId, ProtocolVersion, Publish, QoS, RetainHandling, SubscriptionOptions,
    decode_packet,
};

use crate::clock::{WallClock, from_millis, to_millis};
use crate::error::DecodeFailure;

/// The format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u64 = 2;

/// What a version 1 retained value, or session value with a will, lacks to be a version 2 one:
/// an absent publisher at its end.
pub(crate) const V1_PUBLISHER_SUFFIX: [u8; 1] = [0];

/// Builds one value.
#[derive(Debug, Default)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// A writer that appends to `buf`.
    pub(crate) fn on(buf: Vec<u8>) -> Writer {
        Writer(buf)
    }
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// LEB128: seven bits a byte, low first, the high bit set on all but the last.
    pub(crate) fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    /// A varint length, then the bytes.
    pub(crate) fn short_bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    pub(crate) fn opt<T>(&mut self, v: Option<T>, mut write: impl FnMut(&mut Self, T)) {
        match v {
            Some(v) => {
                self.u8(1);
                write(self, v);
            }
            None => self.u8(0),
        }
    }
}

/// Reads one value, checking every step.
#[derive(Debug)]
pub(crate) struct Reader<'a>(&'a [u8]);

fn fail(what: &str) -> DecodeFailure {
    DecodeFailure(format!("bad or truncated {what}"))
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader(buf)
    }
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeFailure> {
        if self.0.len() < n {
            return Err(fail(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeFailure> {
        self.take(N, what)?.try_into().map_err(|_| fail(what))
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeFailure> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeFailure> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeFailure> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeFailure> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// Reads what [`Writer::varint`] wrote (at most ten bytes).
    pub(crate) fn varint(&mut self, what: &str) -> Result<u64, DecodeFailure> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = self.u8(what)?;
            value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(fail(what))
    }
    /// Reads what [`Writer::short_bytes`] wrote.
    pub(crate) fn short_bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeFailure> {
        let len = usize::try_from(self.varint(what)?).map_err(|_| fail(what))?;
        self.take(len, what)
    }
    /// Reads a UTF-8 string written by [`Writer::short_bytes`].
    pub(crate) fn short_string(&mut self, what: &str) -> Result<String, DecodeFailure> {
        String::from_utf8(self.short_bytes(what)?.to_vec()).map_err(|_| fail(what))
    }
    pub(crate) fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeFailure> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
    pub(crate) fn string(&mut self, what: &str) -> Result<String, DecodeFailure> {
        String::from_utf8(self.bytes(what)?.to_vec()).map_err(|_| fail(what))
    }
    pub(crate) fn flag(&mut self, what: &str) -> Result<bool, DecodeFailure> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(fail(what)),
        }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn end(&self, what: &str) -> Result<(), DecodeFailure> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeFailure(format!("trailing bytes after {what}")))
        }
    }
}

fn qos_byte(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
        QoS::ExactlyOnce => 2,
    }
}

fn read_qos(r: &mut Reader<'_>) -> Result<QoS, DecodeFailure> {
    QoS::try_from(r.u8("qos")?).map_err(|_| fail("qos"))
}

fn version_byte(version: ProtocolVersion) -> u8 {
    match version {
        ProtocolVersion::V3_1 => 3,
        ProtocolVersion::V3_1_1 => 4,
        ProtocolVersion::V5 => 5,
    }
}

fn read_version(r: &mut Reader<'_>) -> Result<ProtocolVersion, DecodeFailure> {
    match r.u8("protocol version")? {
        3 => Ok(ProtocolVersion::V3_1),
        4 => Ok(ProtocolVersion::V3_1_1),
        5 => Ok(ProtocolVersion::V5),
        _ => Err(fail("protocol version")),
    }
}

fn options_byte(options: SubscriptionOptions) -> u8 {
    let handling = match options.retain_handling {
        RetainHandling::SendAtSubscribe => 0,
        RetainHandling::SendIfNew => 1,
        RetainHandling::DoNotSend => 2,
    };
    qos_byte(options.qos)
        | (u8::from(options.no_local) << 2)
        | (u8::from(options.retain_as_published) << 3)
        | (handling << 4)
}

fn read_options(r: &mut Reader<'_>) -> Result<SubscriptionOptions, DecodeFailure> {
    let byte = r.u8("subscription options")?;
    let qos = QoS::try_from(byte & 0x03).map_err(|_| fail("subscription options"))?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(fail("subscription options")),
    };
    if byte & 0xC0 != 0 {
        return Err(fail("subscription options"));
    }
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

/// About the bytes `message` takes in a value (exact for a message without properties), so
/// a value is built without growing its buffer.
fn message_size(message: &Message) -> usize {
    message.topic.len()
        + message.payload.len()
        + message.publisher.as_ref().map_or(0, |p| p.len())
        + 48
}

/// Message layout: received (unix ms) u64, qos u8, publisher opt str, PUBLISH frame bytes.
fn write_message(w: &mut Writer, message: &Message, received: SystemTime) {
    w.u64(to_millis(received));
    w.u8(qos_byte(message.qos));
    w.opt(message.publisher.as_deref(), |w, p| w.bytes(p.as_bytes()));
    let publish = Publish::new(message.topic.clone(), message.payload.clone())
        .with_retain(message.retain)
        .with_properties(message.properties.clone());
    let mut frame = BytesMut::with_capacity(message_size(message));
    // A message the broker accepted always encodes; an empty frame reads back as corrupt.
    if Packet::Publish(publish)
        .encode(ProtocolVersion::V5, &mut frame)
        .is_err()
    {
        frame.clear();
    }
    w.bytes(&frame);
}

/// Reads a message; `anchor` stands for its `received_at` (the real time is returned beside).
fn read_message(
    r: &mut Reader<'_>,
    anchor: Instant,
) -> Result<(Message, SystemTime), DecodeFailure> {
    let received = from_millis(r.u64("receipt time")?);
    let qos = read_qos(r)?;
    let publisher = if r.flag("publisher")? {
        Some(r.string("publisher")?)
    } else {
        None
    };
    let frame = Bytes::copy_from_slice(r.bytes("message")?);
    let Ok(Packet::Publish(publish)) = decode_packet(frame, ProtocolVersion::V5) else {
        return Err(fail("message packet"));
    };
    let retain = publish.retain;
    let properties = publish.properties.clone();
    let (topic, payload) = publish.into_topic_and_payload();
    let mut message = Message::new(topic, payload, qos, retain, anchor);
    message.properties = properties;
    message.publisher = publisher.map(Arc::from);
    Ok((message, received))
}

fn opt_str(w: &mut Writer, v: Option<&String>) {
    w.opt(v, |w, v| w.bytes(v.as_bytes()));
}

fn read_opt_str(r: &mut Reader<'_>, what: &str) -> Result<Option<String>, DecodeFailure> {
    if r.flag(what)? {
        Ok(Some(r.string(what)?))
    } else {
        Ok(None)
    }
}

/// The publisher of a retained message or will: opt (client id str, user name opt str, listener
/// u16, TLS identity opt str).
fn write_publisher(w: &mut Writer, source: Option<&RetainSource>) {
    w.opt(source, |w, source| {
        w.bytes(source.client_id.as_bytes());
        opt_str(w, source.username.as_ref());
        w.u16(source.listener.0);
        opt_str(w, source.tls_identity.as_ref());
    });
}

fn read_publisher(r: &mut Reader<'_>) -> Result<Option<Box<RetainSource>>, DecodeFailure> {
    if !r.flag("publisher")? {
        return Ok(None);
    }
    let client_id = r.string("publisher")?;
    let username = read_opt_str(r, "publisher user name")?;
    let listener = ListenerId(r.u16("publisher listener")?);
    let tls_identity = read_opt_str(r, "publisher identity")?;
    Ok(Some(Box::new(RetainSource::new(
        client_id,
        username,
        listener,
        tls_identity,
    ))))
}

/// A retained message: message, then its publisher.
pub(crate) fn encode_retained(message: &Message, clock: &WallClock) -> Vec<u8> {
    let mut w = Writer::on(Vec::with_capacity(message_size(message) + 32));
    write_message(&mut w, message, clock.wall(message.received_at));
    write_publisher(&mut w, message.retain_source.as_deref());
    w.into_bytes()
}

/// Reads a retained message.
pub(crate) fn decode_retained(
    buf: &[u8],
    anchor: Instant,
) -> Result<(Message, SystemTime), DecodeFailure> {
    let mut r = Reader::new(buf);
    let (mut message, received) = read_message(&mut r, anchor)?;
    message.retain_source = read_publisher(&mut r)?;
    r.end("retained message")?;
    Ok((message, received))
}

/// Byte length of the state header at the start of a stored delivery.
pub(crate) const STATE_LEN: usize = 3;

/// The state header: tag u8 (0 queued, 1 sent, 2 released), packet id u16 (0 when queued).
pub(crate) fn encode_state(state: DeliveryState) -> [u8; STATE_LEN] {
    let (tag, id) = match state {
        DeliveryState::Queued => (0u8, 0u16),
        DeliveryState::Sent(id) => (1, id.get()),
        DeliveryState::Released(id) => (2, id.get()),
    };
    let [a, b] = id.to_le_bytes();
    [tag, a, b]
}

fn read_state(r: &mut Reader<'_>) -> Result<DeliveryState, DecodeFailure> {
    let tag = r.u8("delivery state")?;
    let id = r.u16("packet identifier")?;
    let packet_id = || PacketId::new(id).ok_or_else(|| fail("packet identifier"));
    match tag {
        0 => Ok(DeliveryState::Queued),
        1 => Ok(DeliveryState::Sent(packet_id()?)),
        2 => Ok(DeliveryState::Released(packet_id()?)),
        _ => Err(fail("delivery state")),
    }
}

/// A delivery kept for a session (in `state`, which overrides its own): state header, qos u8, retain u8, subscription ids (u32
/// count, u32 each), share opt str, message.
pub(crate) fn encode_delivery(
    delivery: &StoredDelivery,
    state: DeliveryState,
    clock: &WallClock,
) -> Vec<u8> {
    let ids = delivery.subscription_ids.len() * 4;
    let mut w = Writer::on(Vec::with_capacity(
        message_size(&delivery.message) + ids + 32,
    ));
    w.0.extend_from_slice(&encode_state(state));
    w.u8(qos_byte(delivery.qos));
    w.u8(u8::from(delivery.retain));
    w.u32(u32::try_from(delivery.subscription_ids.len()).unwrap_or(u32::MAX));
    for id in &delivery.subscription_ids {
        w.u32(*id);
    }
    w.opt(delivery.share.as_deref(), |w, s| w.bytes(s.as_bytes()));
    write_message(
        &mut w,
        &delivery.message,
        clock.wall(delivery.message.received_at),
    );
    w.into_bytes()
}

/// Reads a delivery.
pub(crate) fn decode_delivery(
    buf: &[u8],
    anchor: Instant,
) -> Result<(StoredDelivery, SystemTime), DecodeFailure> {
    let mut r = Reader::new(buf);
    let state = read_state(&mut r)?;
    let qos = read_qos(&mut r)?;
    let retain = r.flag("retain")?;
    let count = r.u32("subscription identifiers")?;
    let mut subscription_ids = Vec::new();
    for _ in 0..count {
        subscription_ids.push(r.u32("subscription identifier")?);
    }
    let share = if r.flag("share")? {
        Some(r.string("share")?)
    } else {
        None
    };
    let (message, received) = read_message(&mut r, anchor)?;
    r.end("delivery")?;
    let delivery = StoredDelivery {
        message: Arc::new(message),
        qos,
        retain,
        subscription_ids,
        share,
        state,
    };
    Ok((delivery, received))
}

/// A session: version u8, expiry u32, disconnected opt u64 (unix ms), subscriptions (u32
/// count; filter str, options u8, identifier opt u32), will opt (delay u32, message, publisher).
pub(crate) fn encode_session(record: &SessionRecord, clock: &WallClock) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(version_byte(record.version));
    w.u32(record.expiry_interval);
    w.opt(record.disconnected_at, |w, at| w.u64(clock.unix_millis(at)));
    w.u32(u32::try_from(record.subscriptions.len()).unwrap_or(u32::MAX));
    for (filter, options, identifier) in &record.subscriptions {
        w.bytes(filter.as_bytes());
        w.u8(options_byte(*options));
        w.opt(*identifier, Writer::u32);
    }
    w.opt(record.will.as_ref(), |w, will| {
        w.u32(will.delay_interval);
        write_message(w, &will.message, clock.wall(will.message.received_at));
        write_publisher(w, will.message.retain_source.as_deref());
    });
    w.into_bytes()
}

/// Reads a session; returns it with its wall-clock disconnection time.
pub(crate) fn decode_session(
    buf: &[u8],
    anchor: Instant,
) -> Result<(SessionRecord, Option<SystemTime>), DecodeFailure> {
    decode_session_of(FORMAT_VERSION, buf, anchor)
}

/// Whether a session value in the version 1 layout holds a will (checking the whole value).
pub(crate) fn v1_session_has_will(buf: &[u8], anchor: Instant) -> Result<bool, DecodeFailure> {
    Ok(decode_session_of(1, buf, anchor)?.0.will.is_some())
}

/// Reads a session in the layout of format `format` (1: a will has no publisher).
fn decode_session_of(
    format: u64,
    buf: &[u8],
    anchor: Instant,
) -> Result<(SessionRecord, Option<SystemTime>), DecodeFailure> {
    let mut r = Reader::new(buf);
    let version = read_version(&mut r)?;
    let expiry = r.u32("session expiry")?;
    let disconnected = if r.flag("disconnection time")? {
        Some(from_millis(r.u64("disconnection time")?))
    } else {
        None
    };
    let mut record = SessionRecord::new(version, expiry);
    let count = r.u32("subscriptions")?;
    for _ in 0..count {
        let filter = r.string("topic filter")?;
        let options = read_options(&mut r)?;
        let identifier = if r.flag("subscription identifier")? {
            Some(r.u32("subscription identifier")?)
        } else {
            None
        };
        record.subscriptions.push((filter, options, identifier));
    }
    if r.flag("will")? {
        let delay_interval = r.u32("will delay")?;
        let (mut message, _) = read_message(&mut r, anchor)?;
        if format >= 2 {
            message.retain_source = read_publisher(&mut r)?;
        }
        record.will = Some(WillRecord {
            message,
            delay_interval,
        });
    }
    r.end("session")?;
    Ok((record, disconnected))
}
