//! A damaged store is reported as [`StoreError::Corrupt`] naming the file (never a panic, never
//! a silent partial load), and a store written by a newer format is refused with
//! [`StoreError::UnsupportedVersion`].

#![allow(clippy::unwrap_used)]

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use mqtt_broker_core::{Message, persist::PersistRecord};
use mqtt_store::{Commit, DurableStore, FORMAT_VERSION, StoreError, WallClock};
use mqtt_wire::{MqttStr, QoS};

fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqtt-store-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("store.redb")
}

#[allow(clippy::disallowed_methods)]
fn now() -> (Instant, SystemTime) {
    (Instant::now(), SystemTime::now())
}

/// A store with 200 retained messages of 200 bytes (several pages of data).
fn filled(path: &Path) {
    let (instant, wall) = now();
    let clock = WallClock::new(instant, wall);
    let records: Vec<PersistRecord> = (0..200)
        .map(|i| {
            let topic = format!("t/{i}");
            let message = Message::new(
                MqttStr::try_from(topic.clone()).unwrap(),
                Bytes::from(vec![b'p'; 200]),
                QoS::AtLeastOnce,
                true,
                instant,
            );
            PersistRecord::RetainedSet {
                topic,
                message: Arc::new(message),
            }
        })
        .collect();
    let mut store = DurableStore::open(path).unwrap();
    store.apply(&records, &clock, Commit::Durable).unwrap();
    assert_eq!(store.load(instant).unwrap().retained.len(), 200);
}

/// Opens and loads; the error if either fails.
fn open_and_load(path: &Path) -> Result<usize, StoreError> {
    let store = DurableStore::open(path)?;
    Ok(store.load(now().0)?.retained.len())
}

fn assert_corrupt(path: &Path, what: &str) {
    match open_and_load(path) {
        Err(e) => {
            assert!(e.is_corrupt(), "{what}: {e:?} is not reported as corrupt");
            let text = e.to_string();
            assert!(text.contains("corrupt"), "{what}: {text}");
            assert!(text.contains(&path.display().to_string()), "{what}: {text}");
        }
        Ok(n) => panic!("{what}: a damaged store loaded {n} retained messages"),
    }
}

#[test]
fn a_truncated_store_is_reported_corrupt() {
    let path = scratch("truncated");
    filled(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    for keep in [len / 2, len - 1, 600, 100] {
        let copy = path.with_extension(format!("cut{keep}"));
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(keep)
            .unwrap();
        assert_corrupt(&copy, &format!("truncated to {keep} of {len} bytes"));
    }
}

#[test]
fn overwritten_bytes_are_reported_corrupt() {
    let path = scratch("overwritten");
    filled(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    // The header, the first pages, and every 4 KiB page of data in turn.
    let mut offsets = vec![0, 16, 64, 600];
    offsets.extend((4096..len).step_by(4096).map(|page| page + 100));
    let mut detected = 0;
    for offset in offsets {
        let copy = path.with_extension(format!("at{offset}"));
        std::fs::copy(&path, &copy).unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&copy).unwrap();
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&[0xA5; 64]).unwrap();
        drop(file);
        // Pages redb no longer uses may be overwritten harmlessly; any other damage must be
        // reported, and nothing may panic or load a wrong count.
        match open_and_load(&copy) {
            Ok(n) => assert_eq!(n, 200, "overwritten at {offset}: loaded {n}"),
            Err(e) => {
                assert!(e.is_corrupt(), "overwritten at {offset}: {e:?}");
                detected += 1;
            }
        }
    }
    assert!(
        detected >= 4,
        "only {detected} damaged copies were detected"
    );
}

#[test]
fn a_store_from_a_newer_format_is_refused() {
    let path = scratch("newer");
    drop(DurableStore::open(&path).unwrap());
    {
        // What a future broker would write: the same key with a higher version.
        let db = redb::Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", FORMAT_VERSION + 1).unwrap();
        }
        tx.commit().unwrap();
    }
    match DurableStore::open(&path) {
        Err(StoreError::UnsupportedVersion {
            found, supported, ..
        }) => assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
}
