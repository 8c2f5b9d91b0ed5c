//! [`DurableStore`]: the redb file, its tables, writing a batch of records in one transaction,
//! and reading everything back at start.
//!
//! Tables: `meta` (format version), `retained` (topic → message), `sessions` (client id →
//! session), `messages` ((client id, number) → delivery), `incoming_qos2` ((client id, packet
//! id) → nothing). A batch is one write transaction, so a crash leaves either all of it or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mqtt_broker_core::persist::{
    PersistRecord, RecoveredDelivery, RecoveredMessage, RecoveredSession, RecoveredState,
};
use mqtt_wire::PacketId;
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::changes::{Changes, Op, compact};
use crate::clock::WallClock;
use crate::error::{DecodeFailure, StoreError};
use crate::format::{
    FORMAT_VERSION, V1_PUBLISHER_SUFFIX, decode_delivery, decode_retained, decode_session,
    v1_session_has_will,
};
use crate::journal::{self, Journal};
use crate::tables::{INCOMING_QOS2, JOURNAL_KEY, MESSAGES, META, RETAINED, SESSIONS, VERSION_KEY};

/// How a write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// On disk (fsync) when [`DurableStore::apply`] returns.
    Durable,
    /// Appended to the journal with one `write` (so a crash of the process loses nothing once
    /// [`DurableStore::apply`] returns), and made durable at the next checkpoint:
    /// [`DurableStore::sync`], a durable commit, or the journal passing its size limit.
    Journaled,
}

/// Default size of the journal at which a journaled store checkpoints by itself.
pub const DEFAULT_JOURNAL_LIMIT: u64 = 64 << 20;

/// What the journal of an earlier run held when the store was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalReplay {
    /// Its entries written into the file (one per journaled [`DurableStore::apply`]).
    pub entries: u64,
    /// Bytes after its last whole entry, ignored: a write cut short (by a crash in the middle
    /// of it, or a power cut), never acknowledged.
    pub ignored_bytes: u64,
}

/// The redb database of one broker, with its journal.
///
/// A journaled write survives the end of the process even without a checkpoint: the next
/// [`DurableStore::open`] writes what the journal holds into the file.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Instant, SystemTime};
///
/// use mqtt_broker_core::{Message, persist::PersistRecord};
/// use mqtt_store::{Commit, DurableStore, JournalReplay, WallClock};
/// use mqtt_wire::{Bytes, MqttStr, QoS};
///
/// let dir = std::env::temp_dir().join(format!("mqtt-store-durable-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("broker.redb");
/// let now = Instant::now();
/// let clock = WallClock::new(now, SystemTime::now());
/// let retained = |payload: &'static [u8]| PersistRecord::RetainedSet {
///     topic: "state".to_owned(),
///     message: Arc::new(Message::new(
///         MqttStr::from_static("state"),
///         Bytes::from_static(payload),
///         QoS::AtMostOnce,
///         true,
///         now,
///     )),
/// };
///
/// let mut store = DurableStore::open(&path)?;
/// store.apply([&retained(b"v1")], &clock, Commit::Durable)?;
/// store.apply([&retained(b"v2")], &clock, Commit::Journaled)?; // in the journal only
/// assert!(DurableStore::journal_path(&path).exists());
/// drop(store); // no checkpoint, as after a crash of the process
///
/// let store = DurableStore::open(&path)?;
/// let replay = JournalReplay { entries: 1, ignored_bytes: 0 };
/// assert_eq!(store.journal_replay(), Some(replay));
/// let state = store.load(Instant::now())?;
/// assert_eq!(state.retained.len(), 1);
/// assert_eq!(&state.retained[0].message.payload[..], b"v2");
/// # drop(store);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DurableStore {
    db: Database,
    path: PathBuf,
    /// The newest journal epoch whose changes are in the file.
    epoch: u64,
    /// The journal, once a journaled change was applied.
    journal: Option<Journal>,
    /// Journaled changes not yet in the file.
    pending: Changes,
    /// Journaled ops not yet folded into `pending` ([`DurableStore::journal`]).
    unfolded: Vec<Op>,
    journal_limit: u64,
    replayed: Option<JournalReplay>,
}

/// Why redb could not open the database at `path`: damage (a bad checksum or structure, a
/// short file), or a failure to reach it (permissions, a full disk, a lock) that says nothing
/// about the content.
fn open_error(path: &Path, error: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match error {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt {
                path,
                detail: e.to_string(),
            }
        }
        source => StoreError::Open { path, source },
    }
}

fn io(error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(error.to_string())
}

impl DurableStore {
    /// Opens the store at `path`, creating it if absent, and writes into it what a journal left
    /// by an earlier run holds (see [`DurableStore::journal_path`]). A damaged file is reported as
    /// [`StoreError::Corrupt`]; a file from a newer format as [`StoreError::UnsupportedVersion`].
    pub fn open(path: impl AsRef<Path>) -> Result<DurableStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // A plain open trusts the file (and may panic on one damaged outside redb); the check
        // verifies every page checksum and reports damage as `Corrupted`.
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(&path)
            .map_err(|e| open_error(&path, e))?;
        Self::on(db, path)
    }

    /// Opens the store on a database of redb's custom storage (a test's simulated disk, say);
    /// `path` names it in errors and places its journal.
    pub fn open_on(
        backend: impl redb::StorageBackend,
        path: impl AsRef<Path>,
    ) -> Result<DurableStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
            .map_err(|e| open_error(&path, e))?;
        Self::on(db, path)
    }

    fn on(db: Database, path: PathBuf) -> Result<DurableStore, StoreError> {
        let mut store = DurableStore {
            db,
            path,
            epoch: 0,
            journal: None,
            pending: Changes::default(),
            unfolded: Vec::new(),
            journal_limit: DEFAULT_JOURNAL_LIMIT,
            replayed: None,
        };
        store.init()?;
        store.replay_journal()?;
        Ok(store)
    }

    /// The journal beside the store file at `path`: the same name with the extension
    /// `journal` (`mqtt-broker.redb` → `mqtt-broker.journal`).
    pub fn journal_path(path: impl AsRef<Path>) -> PathBuf {
        path.as_ref().with_extension("journal")
    }

    /// What the journal of an earlier run held, if it had changes the file lacked.
    pub fn journal_replay(&self) -> Option<JournalReplay> {
        self.replayed
    }

    /// Sets the journal size at which a journaled store checkpoints by itself
    /// (default [`DEFAULT_JOURNAL_LIMIT`]).
    pub fn set_journal_limit(&mut self, bytes: u64) {
        self.journal_limit = bytes;
    }

    /// Writes the changes of a journal newer than the file into it, in one durable transaction,
    /// then removes the journal (a stale one, of an epoch the file already holds, too).
    fn replay_journal(&mut self) -> Result<(), StoreError> {
        let path = Self::journal_path(&self.path);
        let Some(leftover) = journal::read(&path)? else {
            return Ok(());
        };
        if leftover.epoch > self.epoch || leftover.epoch == 0 {
            if !leftover.ops.is_empty() {
                let mut changes = Changes::default();
                leftover.ops.into_iter().for_each(|op| changes.add(op));
                self.commit(&changes, leftover.epoch)?;
            }
            if leftover.entries > 0 || leftover.ignored > 0 {
                self.replayed = Some(JournalReplay {
                    entries: leftover.entries,
                    ignored_bytes: leftover.ignored,
                });
            }
        }
        std::fs::remove_file(&path).map_err(|e| StoreError::Io(format!("{}: {e}", path.display())))
    }

    /// Writes `changes` and `epoch` in one durable transaction.
    fn commit(&mut self, changes: &Changes, epoch: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        changes.write(&tx).map_err(io)?;
        if epoch != self.epoch {
            let mut meta = tx.open_table(META).map_err(io)?;
            meta.insert(JOURNAL_KEY, epoch).map_err(io)?;
        }
        tx.commit().map_err(io)?;
        self.epoch = epoch;
        Ok(())
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
    fn init(&mut self) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut meta = tx.open_table(META).map_err(|e| self.corrupt(e))?;
            self.epoch = meta
                .get(JOURNAL_KEY)
                .map_err(|e| self.corrupt(e))?
                .map_or(0, |v| v.value());
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

    /// Writes `records` (one or more batches, in order).
    ///
    /// [`Commit::Durable`]: in one durable transaction, with any journaled changes not yet in
    /// the file. [`Commit::Journaled`]: appended to the journal as one entry and kept in memory
    /// for the next checkpoint.
    ///
    /// Changes are folded per key first: a delivery stored and finished before they reach the
    /// file never does, and one stored then sent is written once, in its last state.
    pub fn apply<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r PersistRecord>,
        clock: &WallClock,
        commit: Commit,
    ) -> Result<(), StoreError> {
        let ops = records.into_iter().filter_map(|r| Op::of(r, clock));
        match commit {
            Commit::Durable => {
                // Journaled ops come first: they are older.
                self.fold_unfolded();
                // Nothing journaled since the last checkpoint: nothing pending either.
                if self.journal.as_ref().is_none_or(Journal::is_empty) {
                    let mut changes = Changes::default();
                    ops.for_each(|op| changes.add(op));
                    return self.commit(&changes, self.epoch);
                }
                ops.for_each(|op| self.pending.add(op));
                self.sync()
            }
            Commit::Journaled => {
                self.append_journal(ops)?;
                self.fold_journaled()
            }
        }
    }

    /// The first half of a journaled [`DurableStore::apply`]: appends `records` to the journal as
    /// one entry with one `write`. When it returns, a crash of the process loses none of them:
    /// what they acknowledge may leave. [`DurableStore::fold_journaled`] (or any later `apply` or
    /// `sync`) does the rest, off the acknowledgement's path.
    pub fn journal<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r PersistRecord>,
        clock: &WallClock,
    ) -> Result<(), StoreError> {
        let ops = records.into_iter().filter_map(|r| Op::of(r, clock));
        self.append_journal(ops)
    }

    /// The second half of a journaled [`DurableStore::apply`]: folds what
    /// [`DurableStore::journal`] appended into the changes kept for the next checkpoint, and
    /// checkpoints if the journal passed its size limit.
    pub fn fold_journaled(&mut self) -> Result<(), StoreError> {
        self.fold_unfolded();
        let full = self
            .journal
            .as_ref()
            .is_some_and(|j| j.len() >= self.journal_limit);
        if full { self.sync() } else { Ok(()) }
    }

    /// Folds the journaled ops not yet folded into the changes kept for the next checkpoint.
    fn fold_unfolded(&mut self) {
        for op in self.unfolded.drain(..) {
            self.pending.add(op);
        }
    }

    fn append_journal(&mut self, ops: impl Iterator<Item = Op>) -> Result<(), StoreError> {
        let mut group: Vec<Op> = ops.collect();
        compact(&mut group);
        if group.is_empty() {
            return Ok(());
        }
        let start = self.unfolded.len();
        self.unfolded.append(&mut group);
        let journal = match &mut self.journal {
            Some(journal) => journal,
            None => self.journal.insert(Journal::create(
                &Self::journal_path(&self.path),
                self.epoch + 1,
            )?),
        };
        journal.append(&self.unfolded[start..])
    }

    /// Checkpoint: writes the journaled changes into the file in one durable transaction and
    /// empties the journal. Does nothing (no fsync) when nothing was journaled since the last one.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.fold_unfolded();
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if journal.is_empty() {
            return Ok(());
        }
        let epoch = journal.epoch();
        let changes = std::mem::take(&mut self.pending);
        self.commit(&changes, epoch)?;
        if let Some(journal) = &mut self.journal {
            journal.restart(epoch + 1)?;
        }
        Ok(())
    }
}
