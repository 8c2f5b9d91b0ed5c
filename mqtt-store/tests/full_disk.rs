//! A store that cannot be created because the disk is full is reported as a failure to open,
//! not as a corrupt file: "corrupt" tells an operator to start fresh and set the old file aside,
//! which a full disk does not call for. Found by the simulator (`mqtt-sim`), whose disk fills
//! up on some seeds.

#![allow(clippy::unwrap_used)]

use mqtt_store::{DurableStore, StoreError};
use redb::StorageBackend;

/// An empty disk with no room at all.
#[derive(Debug)]
struct FullDisk;

fn full() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device")
}

impl StorageBackend for FullDisk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(0)
    }

    fn read(&self, _offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        if out.is_empty() {
            Ok(())
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
        }
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if len == 0 { Ok(()) } else { Err(full()) }
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<(), std::io::Error> {
        Err(full())
    }
}

#[test]
fn a_full_disk_is_a_failure_to_open_not_damage() {
    let error = DurableStore::open_on(FullDisk, "/var/lib/mqtt/broker.redb").unwrap_err();
    assert!(!error.is_corrupt(), "{error}");
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
    assert!(error.to_string().contains("no space left"), "{error}");
}
