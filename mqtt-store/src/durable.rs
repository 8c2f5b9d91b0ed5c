//! [`DurableStore`]: the redb file, its tables, writing a batch of records in one transaction,
//! and reading everything back at start.
//!
//! Tables: `meta` (format version), `retained` (topic → message), `sessions` (client id →
//! session), `messages` ((client id, number) → delivery), `incoming_qos2` ((client id, packet
//! id) → nothing). A batch is one write transaction, so a crash leaves either all of it or none.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mqtt_broker_core::{
    DeliveryState, PersistRecord, RecoveredDelivery, RecoveredMessage, RecoveredSession,
    RecoveredState, StoredDelivery,
};
use mqtt_wire::PacketId;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::clock::WallClock;
use crate::error::{DecodeFailure, StoreError};
use crate::format::{
    FORMAT_VERSION, STATE_LEN, V1_PUBLISHER_SUFFIX, decode_delivery, decode_retained,
    decode_session, encode_delivery, encode_retained, encode_session, encode_state,
    v1_session_has_will,
};

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const RETAINED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("retained");
const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("messages");
const INCOMING_QOS2: TableDefinition<'_, (&str, u16), ()> = TableDefinition::new("incoming_qos2");

/// Key of the format version in `meta`.
const VERSION_KEY: &str = "format_version";

/// The net change to one stored delivery within one [`DurableStore::apply`].
enum DeliveryWrite<'r> {
    /// Write it whole, in this state.
    Put(&'r StoredDelivery, DeliveryState),
    /// Change the state of the stored value.
    State(DeliveryState),
    /// Remove it.
    Remove,
}

/// How a write transaction reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// On disk (fsync) when [`DurableStore::apply`] returns.
    Durable,
    /// Buffered; made durable by a later durable commit or [`DurableStore::sync`].
    Buffered,
}

/// The redb database of one broker.
#[derive(Debug)]
pub struct DurableStore {
    db: Database,
    path: PathBuf,
}

fn io(error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(error.to_string())
}

impl DurableStore {
    /// Opens the store at `path`, creating it if absent. A damaged file is reported as
    /// [`StoreError::Corrupt`]; a file from a newer format as [`StoreError::UnsupportedVersion`].
    pub fn open(path: impl AsRef<Path>) -> Result<DurableStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // A plain open trusts the file (and may panic on one damaged outside redb); the check
        // verifies every page checksum and reports damage as `Corrupted`.
        let db = match Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail))) => {
                return Err(StoreError::Corrupt { path, detail });
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return Err(StoreError::Corrupt {
                    path,
                    detail: e.to_string(),
                });
            }
            Err(source) => return Err(StoreError::Open { path, source }),
        };
        let store = DurableStore { db, path };
        store.init()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn corrupt(&self, detail: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    /// Creates the tables and the version key of a new file; checks the version of an old one
    /// and converts a version 1 file.
    fn init(&self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.corrupt(e))?;
            let found = meta
                .get(VERSION_KEY)
                .map_err(|e| self.corrupt(e))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert(VERSION_KEY, FORMAT_VERSION).map_err(io)?;
                }
                Some(found) if found > FORMAT_VERSION || found == 0 => {
                    return Err(StoreError::UnsupportedVersion {
                        path: self.path.clone(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                Some(1) => {
                    self.upgrade_from_v1(&tx)?;
                    meta.insert(VERSION_KEY, FORMAT_VERSION).map_err(io)?;
                }
                Some(_) => {}
            }
            tx.open_table(RETAINED).map_err(|e| self.corrupt(e))?;
            tx.open_table(SESSIONS).map_err(|e| self.corrupt(e))?;
            tx.open_table(MESSAGES).map_err(|e| self.corrupt(e))?;
            tx.open_table(INCOMING_QOS2).map_err(|e| self.corrupt(e))?;
        }
        tx.commit().map_err(io)
    }

    /// Converts a version 1 file within the opening transaction (so a crash leaves it version
    /// 1, whole): each retained value, and each session value with a will, gains an absent
    /// publisher at its end; nothing else changed.
    fn upgrade_from_v1(&self, tx: &redb::WriteTransaction) -> Result<(), StoreError> {
        // Only to decode the old session values; no time is read from them.
        let anchor = Instant::now();
        for (table, sessions) in [(RETAINED, false), (SESSIONS, true)] {
            let mut table = tx.open_table(table).map_err(|e| self.corrupt(e))?;
            let mut values: Vec<(String, Vec<u8>)> = Vec::new();
            for entry in table.iter().map_err(|e| self.corrupt(e))? {
                let (key, value) = entry.map_err(|e| self.corrupt(e))?;
                let (key, value) = (key.value(), value.value());
                let converts = !sessions
                    || v1_session_has_will(value, anchor)
                        .map_err(|e| self.corrupt(format_args!("session {key:?}: {e}")))?;
                if converts {
                    let mut value = value.to_vec();
                    value.extend_from_slice(&V1_PUBLISHER_SUFFIX);
                    values.push((key.to_owned(), value));
                }
            }
            for (key, value) in values {
                table.insert(key.as_str(), value.as_slice()).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Reads everything back. `anchor` stands for the `received_at` of the messages returned
    /// (their real receipt times come beside them). Any record that does not decode makes the
    /// whole load fail with [`StoreError::Corrupt`]: nothing is skipped silently.
    pub fn load(&self, anchor: Instant) -> Result<RecoveredState, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let bad = |what: &str, key: &str, e: DecodeFailure| {
            self.corrupt(format_args!("{what} {key:?}: {e}"))
        };
        let mut state = RecoveredState::default();
        let retained = tx.open_table(RETAINED).map_err(|e| self.corrupt(e))?;
        for entry in retained.iter().map_err(|e| self.corrupt(e))? {
            let (key, value) = entry.map_err(|e| self.corrupt(e))?;
            let (message, received) = decode_retained(value.value(), anchor)
                .map_err(|e| bad("retained", key.value(), e))?;
            state.retained.push(RecoveredMessage { message, received });
        }
        let mut sessions: HashMap<String, RecoveredSession> = HashMap::new();
        let table = tx.open_table(SESSIONS).map_err(|e| self.corrupt(e))?;
        for entry in table.iter().map_err(|e| self.corrupt(e))? {
            let (key, value) = entry.map_err(|e| self.corrupt(e))?;
            let client_id = key.value().to_owned();
            let (record, disconnected) =
                decode_session(value.value(), anchor).map_err(|e| bad("session", &client_id, e))?;
            let session = RecoveredSession {
                client_id: client_id.clone(),
                record,
                disconnected,
                messages: Vec::new(),
                incoming_qos2: Vec::new(),
            };
            sessions.insert(client_id, session);
        }
        let table = tx.open_table(MESSAGES).map_err(|e| self.corrupt(e))?;
        for entry in table.iter().map_err(|e| self.corrupt(e))? {
            let (key, value) = entry.map_err(|e| self.corrupt(e))?;
            let (client_id, number) = key.value();
            let (delivery, received) = decode_delivery(value.value(), anchor)
                .map_err(|e| bad("message of", client_id, e))?;
            let session = sessions.get_mut(client_id).ok_or_else(|| {
                self.corrupt(format_args!("message of unknown session {client_id:?}"))
            })?;
            session.messages.push(RecoveredDelivery {
                number,
                delivery,
                received,
            });
        }
        let table = tx.open_table(INCOMING_QOS2).map_err(|e| self.corrupt(e))?;
        for entry in table.iter().map_err(|e| self.corrupt(e))? {
            let (key, ()) = entry
                .map(|(k, v)| (k, v.value()))
                .map_err(|e| self.corrupt(e))?;
            let (client_id, id) = key.value();
            let packet_id = PacketId::new(id).ok_or_else(|| self.corrupt("packet identifier 0"))?;
            let session = sessions.get_mut(client_id).ok_or_else(|| {
                self.corrupt(format_args!("QoS 2 state of unknown session {client_id:?}"))
            })?;
            session.incoming_qos2.push(packet_id);
        }
        let mut sessions: Vec<RecoveredSession> = sessions.into_values().collect();
        sessions.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        state.sessions = sessions;
        Ok(state)
    }

    /// Writes `records` (one or more batches, in order) in one transaction.
    ///
    /// The changes to stored deliveries are gathered first and written once per delivery, in
    /// key order: a delivery stored and finished within the same call never reaches the file,
    /// and one stored then sent is encoded once, with its last state.
    pub fn apply<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r PersistRecord>,
        clock: &WallClock,
        commit: Commit,
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(io)?;
        if commit == Commit::Buffered {
            tx.set_durability(Durability::None).map_err(io)?;
        }
        {
            let mut retained = tx.open_table(RETAINED).map_err(io)?;
            let mut sessions = tx.open_table(SESSIONS).map_err(io)?;
            let mut messages = tx.open_table(MESSAGES).map_err(io)?;
            let mut incoming = tx.open_table(INCOMING_QOS2).map_err(io)?;
            let mut deliveries: BTreeMap<(&'r str, u64), DeliveryWrite<'r>> = BTreeMap::new();
            for record in records {
                match record {
                    PersistRecord::RetainedSet { topic, message } => {
                        let value = encode_retained(message, clock);
                        retained
                            .insert(topic.as_str(), value.as_slice())
                            .map_err(io)?;
                    }
                    PersistRecord::RetainedCleared { topic } => {
                        retained.remove(topic.as_str()).map_err(io)?;
                    }
                    PersistRecord::SessionSaved { client_id, record } => {
                        let value = encode_session(record, clock);
                        sessions
                            .insert(client_id.as_str(), value.as_slice())
                            .map_err(io)?;
                    }
                    PersistRecord::SessionRemoved { client_id } => {
                        let id = client_id.as_str();
                        deliveries.retain(|(client, _), _| *client != id);
                        sessions.remove(id).map_err(io)?;
                        messages
                            .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                            .map_err(io)?;
                        incoming
                            .retain_in((id, 0)..=(id, u16::MAX), |_, _| false)
                            .map_err(io)?;
                    }
                    PersistRecord::MessageStored {
                        client_id,
                        number,
                        delivery,
                    } => {
                        let write = DeliveryWrite::Put(delivery, delivery.state);
                        deliveries.insert((client_id.as_str(), *number), write);
                    }
                    PersistRecord::MessageState {
                        client_id,
                        number,
                        state,
                    } => {
                        let key = (client_id.as_str(), *number);
                        match deliveries.get_mut(&key) {
                            Some(DeliveryWrite::Put(_, old) | DeliveryWrite::State(old)) => {
                                *old = *state;
                            }
                            Some(DeliveryWrite::Remove) => {}
                            None => {
                                deliveries.insert(key, DeliveryWrite::State(*state));
                            }
                        }
                    }
                    PersistRecord::MessageDone { client_id, number } => {
                        deliveries.insert((client_id.as_str(), *number), DeliveryWrite::Remove);
                    }
                    PersistRecord::IncomingQos2 {
                        client_id,
                        packet_id,
                        pending,
                    } => {
                        let key = (client_id.as_str(), packet_id.get());
                        if *pending {
                            incoming.insert(key, ()).map_err(io)?;
                        } else {
                            incoming.remove(key).map_err(io)?;
                        }
                    }
                    _ => {}
                }
            }
            for (key, write) in deliveries {
                match write {
                    DeliveryWrite::Put(delivery, state) => {
                        let value = encode_delivery(delivery, state, clock);
                        messages.insert(key, value.as_slice()).map_err(io)?;
                    }
                    DeliveryWrite::State(state) => {
                        let old = messages.get(key).map_err(io)?.map(|v| v.value().to_vec());
                        if let Some(mut value) = old
                            && value.len() >= STATE_LEN
                        {
                            value[..STATE_LEN].copy_from_slice(&encode_state(state));
                            messages.insert(key, value.as_slice()).map_err(io)?;
                        }
                    }
                    DeliveryWrite::Remove => {
                        messages.remove(key).map_err(io)?;
                    }
                }
            }
        }
        tx.commit().map_err(io)
    }

    /// Makes every buffered commit durable (an empty durable transaction).
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.db.begin_write().map_err(io)?.commit().map_err(io)
    }
}
