//! Reading mosquitto's persistence file (`mosquitto.db`, format versions 5 and 6: mosquitto 1.6
//! and 2.0) into the records this crate stores, so a user switching from mosquitto keeps its
//! retained messages, persistent sessions, their subscriptions, and the messages queued or in
//! flight for them.
//!
//! The file: a 15-byte magic, a CRC (unused, zero), the format version (big-endian), then chunks
//! of a type and a length (big-endian) and a body. Counts and lengths inside the bodies are
//! big-endian; message store ids and absolute times are in the writing host's byte order, which
//! is little-endian on every machine mosquitto is packaged for (x86, ARM). Every field is read
//! with bounds checks; a file that does not read whole is refused with the offset and the
//! reason, and nothing of it is kept.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mqtt_broker_core::Message;
use mqtt_broker_core::persist::{DeliveryState, PersistRecord, SessionRecord, StoredDelivery};
use mqtt_wire::{
    MqttStr, PacketId, Properties, ProtocolVersion, QoS, RetainHandling, SubscriptionOptions,
};

/// The first bytes of every `mosquitto.db`.
const MAGIC: [u8; 15] = *b"\x00\xB5\x00mosquitto db";

const CHUNK_CFG: u32 = 1;
const CHUNK_MSG_STORE: u32 = 2;
const CHUNK_CLIENT_MSG: u32 = 3;
const CHUNK_RETAIN: u32 = 4;
const CHUNK_SUB: u32 = 5;
const CHUNK_CLIENT: u32 = 6;

/// mosquitto's message states (`enum mosquitto_msg_state`) that the import maps.
const MS_WAIT_FOR_PUBACK: u8 = 3;
const MS_WAIT_FOR_PUBREC: u8 = 5;
const MS_RESEND_PUBREL: u8 = 6;
const MS_WAIT_FOR_PUBREL: u8 = 7;
const MS_WAIT_FOR_PUBCOMP: u8 = 9;
/// mosquitto's direction of a client message: towards the client.
const DIRECTION_OUT: u8 = 1;

/// A `mosquitto.db` that cannot be read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mosquitto.db, byte {offset}: {reason}")]
pub struct ImportError {
    /// Where in the file reading stopped.
    pub offset: usize,
    /// Why.
    pub reason: String,
}

/// What a `mosquitto.db` holds, as records for [`DurableStore::apply`](crate::DurableStore::apply),
/// and how much of each kind.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct MosquittoImport {
    /// The records, sessions before the messages kept for them.
    pub records: Vec<PersistRecord>,
    /// The file's format version (6: mosquitto 2.0; 5: mosquitto 1.6).
    pub version: u32,
    /// Retained messages.
    pub retained: usize,
    /// Persistent sessions.
    pub sessions: usize,
    /// Their subscriptions.
    pub subscriptions: usize,
    /// Messages queued or in flight towards clients.
    pub queued: usize,
    /// QoS 2 messages from clients waiting for their PUBREL.
    pub incoming_qos2: usize,
    /// Messages whose expiry had passed: not imported.
    pub expired: usize,
}

/// One message of mosquitto's message store.
struct Stored {
    topic: MqttStr,
    payload: Bytes,
    qos: QoS,
    /// Absolute expiry, seconds since 1970; 0: none.
    expiry: i64,
    properties: Properties,
    publisher: Option<String>,
}

/// A persistent client as the file describes it.
#[derive(Default)]
struct Client {
    /// Absolute expiry of the session, seconds since 1970; 0: none set.
    expiry_time: i64,
    expiry_interval: u32,
    subscriptions: Vec<(String, SubscriptionOptions, Option<u32>)>,
    /// Outbound messages in file order (in flight first, then queued), and inbound QoS 2 ids.
    outbound: Vec<(u64, QoS, bool, Option<DeliveryState>, Properties)>,
    incoming: Vec<PacketId>,
}

/// Reads a whole `mosquitto.db`. `now` is the broker time the records are stamped with and
/// `now_unix` the same moment in seconds since 1970 (mosquitto keeps absolute times).
pub fn read_mosquitto_db(
    file: &[u8],
    now: Instant,
    now_unix: i64,
) -> Result<MosquittoImport, ImportError> {
    let mut r = Cursor { file, at: 0 };
    let magic = r.take(15, "the header")?;
    if magic != MAGIC {
        return Err(r.error_at(0, "not a mosquitto persistence file (wrong magic bytes)"));
    }
    r.take(4, "the header's CRC")?;
    let version = r.u32_be("the format version")?;
    if version != 5 && version != 6 {
        return Err(r.error_at(
            19,
            format!("format version {version} is not read (5 and 6: mosquitto 1.6 and 2.0)"),
        ));
    }
    let mut store: HashMap<u64, Stored> = HashMap::new();
    let mut retained: Vec<u64> = Vec::new();
    let mut clients: Vec<(String, Client)> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut import = MosquittoImport {
        version,
        ..MosquittoImport::default()
    };
    while !r.is_empty() {
        let start = r.at;
        let kind = r.u32_be("a chunk type")?;
        let length = r.u32_be("a chunk length")? as usize;
        let body_at = r.at;
        let body = r.take(length, "a chunk body")?;
        let mut b = Cursor { file, at: body_at };
        let end = body_at + body.len();
        match kind {
            CHUNK_CFG => {
                b.take(8, "the last store id")?;
                b.take(1, "the shutdown flag")?;
                let id_size = b.u8("the store id size")?;
                if id_size != 8 {
                    return Err(
                        b.error_at(start, format!("store ids of {id_size} bytes (8 expected)"))
                    );
                }
            }
            CHUNK_MSG_STORE => {
                let id = b.u64_host("a message id")?;
                let expiry = b.i64_host("a message expiry")?;
                let payload_len = b.u32_be("a payload length")? as usize;
                b.take(2, "a source packet id")?;
                let source_id_len = usize::from(b.u16_be("a source id length")?);
                let source_user_len = usize::from(b.u16_be("a source user length")?);
                let topic_len = usize::from(b.u16_be("a topic length")?);
                b.take(2, "a source port")?;
                let qos = qos(b.u8("a QoS")?).ok_or_else(|| b.error("a QoS above 2"))?;
                b.take(1, "a retain flag")?;
                let publisher = b.text(source_id_len, "a source client id")?;
                b.take(source_user_len, "a source user name")?;
                let topic = b.text(topic_len, "a topic")?;
                let topic = MqttStr::try_from(topic).map_err(|e| b.error(format!("topic: {e}")))?;
                let payload = Bytes::copy_from_slice(b.take(payload_len, "a payload")?);
                let properties = b.properties(end)?;
                store.insert(
                    id,
                    Stored {
                        topic,
                        payload,
                        qos,
                        expiry,
                        properties,
                        publisher: (!publisher.is_empty()).then_some(publisher),
                    },
                );
            }
            CHUNK_CLIENT_MSG => {
                let id = b.u64_host("a message id")?;
                let mid = b.u16_be("a packet id")?;
                let id_len = usize::from(b.u16_be("a client id length")?);
                let qos = qos(b.u8("a QoS")?).ok_or_else(|| b.error("a QoS above 2"))?;
                let state = b.u8("a message state")?;
                let retain = b.u8("the retain and dup flags")? >> 4 != 0;
                let direction = b.u8("a direction")?;
                let client_id = b.text(id_len, "a client id")?;
                let properties = b.properties(end)?;
                let index = client_index(&mut clients, &mut by_id, client_id);
                let client = &mut clients[index].1;
                let packet_id = PacketId::new(mid);
                if direction != DIRECTION_OUT {
                    if let (MS_WAIT_FOR_PUBREL, Some(packet_id)) = (state, packet_id) {
                        client.incoming.push(packet_id);
                    }
                    continue;
                }
                let state = match (state, packet_id) {
                    (MS_WAIT_FOR_PUBACK | MS_WAIT_FOR_PUBREC, Some(id)) => {
                        Some(DeliveryState::Sent(id))
                    }
                    (MS_RESEND_PUBREL | MS_WAIT_FOR_PUBCOMP, Some(id)) => {
                        Some(DeliveryState::Released(id))
                    }
                    _ => None, // queued, or not yet sent
                };
                client.outbound.push((id, qos, retain, state, properties));
            }
            CHUNK_RETAIN => retained.push(b.u64_host("a retained message id")?),
            CHUNK_SUB => {
                let identifier = b.u32_be("a subscription identifier")?;
                let id_len = usize::from(b.u16_be("a client id length")?);
                let topic_len = usize::from(b.u16_be("a filter length")?);
                let qos = qos(b.u8("a QoS")?).ok_or_else(|| b.error("a QoS above 2"))?;
                let options = b.u8("subscription options")?;
                b.take(2, "padding")?;
                let client_id = b.text(id_len, "a client id")?;
                let filter = b.text(topic_len, "a filter")?;
                let options = SubscriptionOptions {
                    qos,
                    no_local: options & 0x04 != 0,
                    retain_as_published: options & 0x08 != 0,
                    retain_handling: RetainHandling::SendAtSubscribe,
                };
                let index = client_index(&mut clients, &mut by_id, client_id);
                let identifier = (identifier != 0).then_some(identifier);
                clients[index]
                    .1
                    .subscriptions
                    .push((filter, options, identifier));
            }
            CHUNK_CLIENT => {
                let expiry_time = b.i64_host("a session expiry time")?;
                let expiry_interval = b.u32_be("a session expiry interval")?;
                b.take(2, "the last packet id")?;
                let id_len = usize::from(b.u16_be("a client id length")?);
                let user_len = if version == 6 {
                    b.take(2, "a listener port")?;
                    let user_len = usize::from(b.u16_be("a user name length")?);
                    b.take(4, "padding")?;
                    user_len
                } else {
                    0
                };
                let client_id = b.text(id_len, "a client id")?;
                b.take(user_len, "a user name")?;
                let index = client_index(&mut clients, &mut by_id, client_id);
                let client = &mut clients[index].1;
                client.expiry_time = expiry_time;
                client.expiry_interval = expiry_interval;
            }
            _ => {} // a chunk of a later mosquitto: skipped by its length, as mosquitto does
        }
    }
    // A retained message whose expiry passed is dropped; the others keep what is left.
    let message =
        |stored: &Stored, retain: bool, qos: QoS, extra: &Properties| -> Option<Arc<Message>> {
            let mut properties = stored.properties.clone();
            if stored.expiry > 0 {
                let left = stored
                    .expiry
                    .checked_sub(now_unix)
                    .filter(|&left| left > 0)?;
                properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX));
            }
            if !extra.subscription_identifiers.is_empty() {
                properties
                    .subscription_identifiers
                    .clone_from(&extra.subscription_identifiers);
            }
            let mut message = Message::new(
                stored.topic.clone(),
                stored.payload.clone(),
                qos,
                retain,
                now,
            );
            message.properties = properties;
            message.publisher = stored.publisher.as_deref().map(Arc::from);
            Some(Arc::new(message))
        };
    let missing = |id: u64| ImportError {
        offset: file.len(),
        reason: format!("message {id} is referred to but not in the file's message store"),
    };
    for id in retained {
        let stored = store.get(&id).ok_or_else(|| missing(id))?;
        match message(stored, true, stored.qos, &Properties::default()) {
            Some(message) => {
                import.records.push(PersistRecord::RetainedSet {
                    topic: stored.topic.to_string(),
                    message,
                });
                import.retained += 1;
            }
            None => import.expired += 1,
        }
    }
    for (client_id, client) in clients {
        // mosquitto keeps the absolute end of a disconnected session; what is left of it
        // becomes the session's expiry interval from now.
        let expiry_interval = match (client.expiry_interval, client.expiry_time) {
            (u32::MAX, _) | (_, 0) => client.expiry_interval,
            (_, at) => u32::try_from(at.saturating_sub(now_unix).max(0)).unwrap_or(u32::MAX),
        };
        // mosquitto keeps no protocol version: a session that never expires is a 3.1.1
        // CleanSession=0 one; one with an interval a 5.0 one.
        let version = if client.expiry_interval == u32::MAX {
            ProtocolVersion::V3_1_1
        } else {
            ProtocolVersion::V5
        };
        let mut record = SessionRecord::new(version, expiry_interval);
        record.disconnected_at = Some(now);
        import.subscriptions += client.subscriptions.len();
        record.subscriptions = client.subscriptions;
        import.records.push(PersistRecord::SessionSaved {
            client_id: client_id.clone(),
            record,
        });
        import.sessions += 1;
        let mut number = 0;
        for (id, qos, retain, state, extra) in client.outbound {
            let stored = store.get(&id).ok_or_else(|| missing(id))?;
            let Some(message) = message(stored, retain, stored.qos, &extra) else {
                import.expired += 1;
                continue;
            };
            number += 1;
            import.records.push(PersistRecord::MessageStored {
                client_id: client_id.clone(),
                number,
                delivery: StoredDelivery {
                    message,
                    qos,
                    retain,
                    subscription_ids: extra.subscription_identifiers.clone(),
                    share: None,
                    state: state.unwrap_or(DeliveryState::Queued),
                },
            });
            import.queued += 1;
        }
        for packet_id in client.incoming {
            import.records.push(PersistRecord::IncomingQos2 {
                client_id: client_id.clone(),
                packet_id,
                pending: true,
            });
            import.incoming_qos2 += 1;
        }
    }
    Ok(import)
}

/// Where `client_id` is in `clients`, added if new.
fn client_index(
    clients: &mut Vec<(String, Client)>,
    by_id: &mut HashMap<String, usize>,
    client_id: String,
) -> usize {
    *by_id.entry(client_id.clone()).or_insert_with(|| {
        clients.push((client_id, Client::default()));
        clients.len() - 1
    })
}

fn qos(value: u8) -> Option<QoS> {
    match value {
        0 => Some(QoS::AtMostOnce),
        1 => Some(QoS::AtLeastOnce),
        2 => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

/// Reads the file with bounds checks; errors name the offset.
struct Cursor<'f> {
    file: &'f [u8],
    at: usize,
}

impl<'f> Cursor<'f> {
    fn is_empty(&self) -> bool {
        self.at >= self.file.len()
    }

    fn error(&self, reason: impl Into<String>) -> ImportError {
        self.error_at(self.at, reason)
    }

    fn error_at(&self, offset: usize, reason: impl Into<String>) -> ImportError {
        ImportError {
            offset,
            reason: reason.into(),
        }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'f [u8], ImportError> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.file.len());
        let Some(end) = end else {
            return Err(self.error(format!("the file ends inside {what}")));
        };
        let bytes = &self.file[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ImportError> {
        let bytes = self.take(N, what)?;
        let mut array = [0; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    fn u8(&mut self, what: &str) -> Result<u8, ImportError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16_be(&mut self, what: &str) -> Result<u16, ImportError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32_be(&mut self, what: &str) -> Result<u32, ImportError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64_host(&mut self, what: &str) -> Result<u64, ImportError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn i64_host(&mut self, what: &str) -> Result<i64, ImportError> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// `len` bytes of UTF-8 text.
    fn text(&mut self, len: usize, what: &str) -> Result<String, ImportError> {
        let at = self.at;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.error_at(at, format!("{what} is not UTF-8")))
    }

    /// The rest of the chunk up to `end`: a PUBLISH property section, if anything is left.
    fn properties(&mut self, end: usize) -> Result<Properties, ImportError> {
        let Some(len) = end.checked_sub(self.at).filter(|&len| len > 0) else {
            return Ok(Properties::default());
        };
        let at = self.at;
        let section = Bytes::copy_from_slice(self.take(len, "properties")?);
        Properties::decode_publish_section(&section)
            .map_err(|e| self.error_at(at, format!("properties: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `chunks` (type, body) in format `version`.
    fn file(version: u32, chunks: &[(u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend([0; 4]);
        out.extend(version.to_be_bytes());
        for (kind, body) in chunks {
            out.extend(kind.to_be_bytes());
            out.extend((body.len() as u32).to_be_bytes());
            out.extend(body);
        }
        out
    }

    fn msg_store(id: u64, topic: &str, payload: &[u8], qos: u8, properties: &[u8]) -> Vec<u8> {
        let mut body = id.to_le_bytes().to_vec();
        body.extend(0i64.to_le_bytes());
        body.extend((payload.len() as u32).to_be_bytes());
        body.extend(0u16.to_be_bytes()); // source mid
        body.extend(4u16.to_be_bytes()); // source id "plug"
        body.extend(0u16.to_be_bytes()); // source user name
        body.extend((topic.len() as u16).to_be_bytes());
        body.extend(1883u16.to_be_bytes());
        body.extend([qos, 1]);
        body.extend(b"plug");
        body.extend(topic.as_bytes());
        body.extend(payload);
        body.extend(properties);
        body
    }

    fn client(id: &str, interval: u32) -> Vec<u8> {
        let mut body = 0i64.to_le_bytes().to_vec();
        body.extend(interval.to_be_bytes());
        body.extend(7u16.to_be_bytes());
        body.extend((id.len() as u16).to_be_bytes());
        body.extend(1883u16.to_be_bytes());
        body.extend(0u16.to_be_bytes());
        body.extend([0; 4]);
        body.extend(id.as_bytes());
        body
    }

    fn sub(client: &str, filter: &str, qos: u8, options: u8) -> Vec<u8> {
        let mut body = 0u32.to_be_bytes().to_vec();
        body.extend((client.len() as u16).to_be_bytes());
        body.extend((filter.len() as u16).to_be_bytes());
        body.extend([qos, options, 0, 0]);
        body.extend(client.as_bytes());
        body.extend(filter.as_bytes());
        body
    }

    fn client_msg(store: u64, client: &str, mid: u16, qos: u8, state: u8) -> Vec<u8> {
        let mut body = store.to_le_bytes().to_vec();
        body.extend(mid.to_be_bytes());
        body.extend((client.len() as u16).to_be_bytes());
        body.extend([qos, state, 0, DIRECTION_OUT]);
        body.extend(client.as_bytes());
        body
    }

    fn cfg() -> Vec<u8> {
        let mut body = 9u64.to_le_bytes().to_vec();
        body.extend([1, 8, 0, 0, 0, 0, 0, 0]);
        body
    }

    fn sample() -> Vec<u8> {
        // Message Expiry Interval 3600 and a User Property ("k", "v").
        let properties = [12, 0x02, 0, 0, 0x0E, 0x10, 0x26, 0, 1, b'k', 0, 1, b'v'];
        file(
            6,
            &[
                (CHUNK_CFG, cfg()),
                (
                    CHUNK_MSG_STORE,
                    msg_store(1, "tele/plug/LWT", b"Online", 1, &[]),
                ),
                (
                    CHUNK_MSG_STORE,
                    msg_store(2, "cmnd/plug/POWER", b"ON", 2, &properties),
                ),
                (CHUNK_RETAIN, 1u64.to_le_bytes().to_vec()),
                (CHUNK_CLIENT, client("home-assistant", u32::MAX)),
                (
                    CHUNK_CLIENT_MSG,
                    client_msg(2, "home-assistant", 5, 2, MS_WAIT_FOR_PUBREC),
                ),
                (CHUNK_CLIENT_MSG, client_msg(2, "home-assistant", 0, 1, 11)),
                (CHUNK_SUB, sub("home-assistant", "cmnd/#", 2, 0x04)),
                (77, vec![1, 2, 3]), // an unknown chunk: skipped
            ],
        )
    }

    #[test]
    fn a_file_reads_into_records() {
        let import = read_mosquitto_db(&sample(), Instant::now(), 1_800_000_000).unwrap();
        assert_eq!(
            (
                import.version,
                import.retained,
                import.sessions,
                import.subscriptions,
                import.queued
            ),
            (6, 1, 1, 1, 2)
        );
        let PersistRecord::RetainedSet { topic, message } = &import.records[0] else {
            panic!("{:?}", import.records[0]);
        };
        assert_eq!(
            (topic.as_str(), &message.payload[..]),
            ("tele/plug/LWT", &b"Online"[..])
        );
        assert_eq!(message.publisher.as_deref(), Some("plug"));
        let PersistRecord::SessionSaved { client_id, record } = &import.records[1] else {
            panic!("{:?}", import.records[1]);
        };
        assert_eq!(client_id, "home-assistant");
        assert_eq!(record.expiry_interval, u32::MAX);
        let (filter, options, _) = &record.subscriptions[0];
        assert_eq!(
            (filter.as_str(), options.qos, options.no_local),
            ("cmnd/#", QoS::ExactlyOnce, true)
        );
        let PersistRecord::MessageStored {
            number: 1,
            delivery,
            ..
        } = &import.records[2]
        else {
            panic!("{:?}", import.records[2]);
        };
        assert_eq!(
            delivery.state,
            DeliveryState::Sent(PacketId::new(5).unwrap())
        );
        assert_eq!(
            delivery.message.properties.message_expiry_interval,
            Some(3600)
        );
        assert_eq!(delivery.message.properties.user_properties.len(), 1);
        let PersistRecord::MessageStored {
            number: 2,
            delivery,
            ..
        } = &import.records[3]
        else {
            panic!("{:?}", import.records[3]);
        };
        assert_eq!(
            (delivery.state, delivery.qos),
            (DeliveryState::Queued, QoS::AtLeastOnce)
        );
    }

    #[test]
    fn every_truncation_is_an_error_with_an_offset_and_never_a_panic() {
        let whole = sample();
        for len in 0..whole.len() - 3 {
            // Cut inside the unknown trailing chunk's body, or anywhere before.
            let cut = &whole[..len];
            if let Err(e) = read_mosquitto_db(cut, Instant::now(), 0) {
                assert!(e.offset <= len, "{e} for a file of {len} bytes");
            } else {
                // Only a cut at a chunk boundary reads (as fewer chunks).
                assert!(len >= 23, "{len}");
            }
        }
    }

    #[test]
    fn wrong_files_are_refused_with_a_reason() {
        let err = read_mosquitto_db(b"not a database at all", Instant::now(), 0).unwrap_err();
        assert!(err.reason.contains("magic"), "{err}");
        let old = file(4, &[]);
        let err = read_mosquitto_db(&old, Instant::now(), 0).unwrap_err();
        assert!(err.reason.contains("version 4"), "{err}");
        // A client message whose stored message is missing.
        let dangling = file(6, &[(CHUNK_CLIENT_MSG, client_msg(42, "c", 1, 1, 11))]);
        let err = read_mosquitto_db(&dangling, Instant::now(), 0).unwrap_err();
        assert!(err.reason.contains("message 42"), "{err}");
    }

    #[test]
    fn expired_messages_are_not_imported() {
        let mut expiring = msg_store(1, "t", b"x", 0, &[]);
        expiring[8..16].copy_from_slice(&100i64.to_le_bytes());
        let data = file(
            6,
            &[
                (CHUNK_MSG_STORE, expiring),
                (CHUNK_RETAIN, 1u64.to_le_bytes().to_vec()),
            ],
        );
        let import = read_mosquitto_db(&data, Instant::now(), 1_000).unwrap();
        assert_eq!((import.retained, import.expired), (0, 1));
        let import = read_mosquitto_db(&data, Instant::now(), 40).unwrap();
        let PersistRecord::RetainedSet { message, .. } = &import.records[0] else {
            panic!()
        };
        assert_eq!(message.properties.message_expiry_interval, Some(60));
    }
}
