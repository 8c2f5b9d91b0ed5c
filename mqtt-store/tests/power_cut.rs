//! A power cut in journaled mode loses at most what came after the last checkpoint, and leaves
//! a consistent state: the redb file runs on a simulated disk that keeps only what was synced
//! (`sync_data`), the journal file (never synced) is cut at any byte and may end in garbage or be
//! the stale journal of the checkpoint before. Whatever the cut, the store reopens as it was
//! after some whole prefix of the batches, never shorter than the last checkpoint; and opening
//! it again changes nothing (a journal already written into the file is not replayed twice).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use bytes::Bytes;
use mqtt_broker_core::{
    Message,
    persist::{DeliveryState, PersistRecord, SessionRecord, StoredDelivery},
};
use mqtt_store::{Commit, DurableStore, WallClock};
use mqtt_wire::{MqttStr, PacketId, ProtocolVersion, QoS};
use proptest::collection::vec;
use proptest::prelude::*;
use redb::StorageBackend;

/// The error of redb's storage methods.
type BackendIoError = std::io::Error;

/// A disk that loses every write not followed by `sync_data` when the power goes.
#[derive(Debug, Clone, Default)]
struct Disk(Arc<Mutex<DiskState>>);

#[derive(Debug, Default)]
struct DiskState {
    /// What the file holds now, as the running program sees it.
    current: Vec<u8>,
    /// What survives a power cut: the file at the last sync.
    synced: Vec<u8>,
}

impl Disk {
    /// The disk after a power cut now.
    fn cut(&self) -> Disk {
        let synced = self.0.lock().unwrap().synced.clone();
        Disk(Arc::new(Mutex::new(DiskState {
            current: synced.clone(),
            synced,
        })))
    }
}

fn out_of_range() -> BackendIoError {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start + out.len();
        let bytes = state.current.get(start..end).ok_or_else(out_of_range)?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0.lock().unwrap().current.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        state.synced = state.current.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.0.lock().unwrap();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start + data.len();
        if state.current.len() < end {
            state.current.resize(end, 0);
        }
        state.current[start..end].copy_from_slice(data);
        Ok(())
    }
}

/// Builds batches of records that keep the core's rules (deliveries only of live sessions,
/// delivery numbers never reused within a session's life), from a list of choices.
#[derive(Default)]
struct Script {
    anchor: Option<Instant>,
    /// Per client: live, next delivery number, stored numbers not yet done.
    clients: [(bool, u64, Vec<u64>); 3],
}

impl Script {
    fn message(&self, n: u8) -> Arc<Message> {
        Arc::new(Message::new(
            MqttStr::try_from(format!("t/{n}")).unwrap(),
            Bytes::from(vec![n; usize::from(n % 7) * 10]),
            QoS::ExactlyOnce,
            false,
            self.anchor.unwrap(),
        ))
    }

    fn record(&mut self, choice: u8) -> PersistRecord {
        let c = usize::from(choice % 3);
        let client_id = format!("c{c}");
        let n = choice / 3;
        if !self.clients[c].0 {
            self.clients[c] = (true, 0, Vec::new());
            return PersistRecord::SessionSaved {
                client_id,
                record: SessionRecord::new(ProtocolVersion::V5, 100 + u32::from(n)),
            };
        }
        match n % 8 {
            0 => PersistRecord::RetainedSet {
                topic: format!("r/{}", n % 5),
                message: self.message(n),
            },
            1 => PersistRecord::RetainedCleared {
                topic: format!("r/{}", n % 5),
            },
            2 if n > 60 => {
                self.clients[c].0 = false;
                PersistRecord::SessionRemoved { client_id }
            }
            3 | 4 => {
                self.clients[c].1 += 1;
                let number = self.clients[c].1;
                self.clients[c].2.push(number);
                PersistRecord::MessageStored {
                    client_id,
                    number,
                    delivery: StoredDelivery {
                        message: self.message(n),
                        qos: QoS::ExactlyOnce,
                        retain: false,
                        subscription_ids: vec![u32::from(n)],
                        share: None,
                        state: DeliveryState::Queued,
                    },
                }
            }
            5 if !self.clients[c].2.is_empty() => {
                let number = self.clients[c].2[usize::from(n) % self.clients[c].2.len()];
                let id = PacketId::new(u16::from(n) + 1).unwrap();
                PersistRecord::MessageState {
                    client_id,
                    number,
                    state: if n.is_multiple_of(2) {
                        DeliveryState::Sent(id)
                    } else {
                        DeliveryState::Released(id)
                    },
                }
            }
            6 if !self.clients[c].2.is_empty() => {
                let at = usize::from(n) % self.clients[c].2.len();
                let number = self.clients[c].2.remove(at);
                PersistRecord::MessageDone { client_id, number }
            }
            _ => PersistRecord::IncomingQos2 {
                client_id,
                packet_id: PacketId::new(u16::from(n % 4) + 1).unwrap(),
                pending: !n.is_multiple_of(3),
            },
        }
    }
}

fn journal_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(DurableStore::journal_path(path)).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_power_cut_loses_at_most_what_came_after_the_last_checkpoint(
        batches in vec(vec(any::<u8>(), 1..6), 1..30),
        checkpoints in vec(any::<bool>(), 30),
        cut_at in any::<prop::sample::Index>(),
        garbage in vec(any::<u8>(), 0..40),
        stale in any::<bool>(),
    ) {
        #[allow(clippy::disallowed_methods)]
        let anchor = Instant::now();
        let clock = WallClock::new(anchor, UNIX_EPOCH + Duration::from_secs(1_767_225_600));
        let mut script = Script { anchor: Some(anchor), ..Script::default() };
        let batches: Vec<Vec<PersistRecord>> = batches
            .iter()
            .map(|choices| choices.iter().map(|c| script.record(*c)).collect())
            .collect();

        let dir = std::env::temp_dir()
            .join(format!("mqtt-store-power-{}-{}", std::process::id(), cut_at.index(1 << 30)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let disk = Disk::default();
        let mut store = DurableStore::open_on(disk.clone(), &path).unwrap();
        // Batches up to here are in the file for sure; the journal of the checkpoint before.
        let (mut checkpointed, mut stale_journal) = (0, Vec::new());
        for (i, batch) in batches.iter().enumerate() {
            store.apply(batch, &clock, Commit::Journaled).unwrap();
            if checkpoints[i] {
                stale_journal = journal_bytes(&path);
                store.sync().unwrap();
                checkpointed = i + 1;
            }
        }
        // The power goes: the redb file is what was synced; the journal, never synced, is any
        // prefix of itself, maybe followed by garbage, or still the one from before the last
        // checkpoint (its truncation not on disk).
        let after_cut = disk.cut();
        drop(store);
        let journal = if stale && checkpointed > 0 {
            stale_journal
        } else {
            let mut bytes = journal_bytes(&path);
            bytes.truncate(cut_at.index(bytes.len() + 1));
            bytes.extend_from_slice(&garbage);
            bytes
        };
        std::fs::write(DurableStore::journal_path(&path), &journal).unwrap();

        let reopened = DurableStore::open_on(after_cut.clone(), &path).unwrap();
        let recovered = reopened.load(anchor).unwrap();
        drop(reopened);
        let again = DurableStore::open_on(after_cut, &path).unwrap();
        prop_assert_eq!(again.journal_replay(), None, "a journal written into the file is stale");
        prop_assert_eq!(&again.load(anchor).unwrap(), &recovered);
        drop(again);

        // Which prefix of the batches is it? Write them one by one into a reference store.
        let mut reference = DurableStore::open_on(Disk::default(), dir.join("reference.redb")).unwrap();
        let mut matches = Vec::new();
        for k in 0..=batches.len() {
            if k > 0 {
                reference.apply(&batches[k - 1], &clock, Commit::Durable).unwrap();
            }
            if reference.load(anchor).unwrap() == recovered {
                matches.push(k);
            }
        }
        drop(reference);
        std::fs::remove_dir_all(&dir).unwrap();
        prop_assert!(
            matches.iter().any(|k| *k >= checkpointed),
            "the state after the cut is no prefix of at least {} batches (it matches {:?})",
            checkpointed,
            matches
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever bytes lie in the journal's place (a valid header or not), opening the store
    /// reads what it can or refuses with an error; it never panics.
    #[test]
    fn any_journal_bytes_open_without_panic(
        header in any::<bool>(),
        epoch in 0u64..3,
        bytes in vec(any::<u8>(), 0..200),
    ) {
        let dir = std::env::temp_dir().join(format!(
            "mqtt-store-journal-bytes-{}-{}",
            std::process::id(),
            bytes.len() * 4 + epoch as usize
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.redb");
        let mut journal = Vec::new();
        if header {
            journal.extend_from_slice(b"mqtt-rs journal\x01");
            journal.extend_from_slice(&epoch.to_le_bytes());
        }
        journal.extend_from_slice(&bytes);
        std::fs::write(DurableStore::journal_path(&path), &journal).unwrap();
        match DurableStore::open_on(Disk::default(), &path) {
            Ok(store) => {
                let replay = store.journal_replay();
                prop_assert!(replay.is_none_or(|r| r.entries == 0));
            }
            Err(e) => prop_assert!(e.is_corrupt(), "{e}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
