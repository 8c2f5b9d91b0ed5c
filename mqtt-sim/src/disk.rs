//! A simulated disk for the store's redb file: it keeps what the running broker has written
//! (what a crash of the process leaves) apart from what was synced (what a power cut leaves),
//! remembers the writes since the last sync so a power cut can keep any subset of them, one of
//! them torn, and fails a sync or a write when the run's fault schedule says so.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::StorageBackend;

use crate::rng::Rng;

/// The error type of redb's storage methods.
type IoError = std::io::Error;

/// What is left of the disk after the broker's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The process died; the operating system kept every write.
    ProcessCrash,
    /// The power went: only synced bytes are certain; each write after the last sync may or may
    /// not have reached the platter, and one of them only in part.
    PowerCut,
}

/// A file on the simulated disk; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimDisk(Arc<Mutex<State>>);

#[derive(Debug, Default)]
struct State {
    /// The file as the running program sees it.
    current: Vec<u8>,
    /// The file at the last successful sync.
    synced: Vec<u8>,
    /// Writes since the last sync, oldest first: offset and bytes.
    unsynced: Vec<(usize, Vec<u8>)>,
    /// Byte ranges of `current` that may differ from `synced` (writes, and zeros a write or a
    /// longer length added), so a sync copies only those.
    dirty: Vec<(usize, usize)>,
    /// The size the file may not grow past (a full disk); `usize::MAX` by default.
    capacity: usize,
    /// Syncs that succeed before one fails (`None`: all succeed).
    syncs_before_failure: Option<u64>,
    /// Counters, for reports.
    syncs: u64,
    bytes_written: u64,
}

impl SimDisk {
    /// An empty disk without faults.
    pub fn new() -> SimDisk {
        SimDisk(Arc::new(Mutex::new(State {
            capacity: usize::MAX,
            ..State::default()
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // One thread drives the simulation; a panic elsewhere must not hide behind poisoning.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the sync after `n` more successful ones fail.
    pub fn fail_sync_after(&self, n: u64) {
        self.state().syncs_before_failure = Some(n);
    }

    /// Lets the file grow by at most `bytes` more.
    pub fn fill_up_after(&self, bytes: usize) {
        let mut state = self.state();
        state.capacity = state.current.len().saturating_add(bytes);
    }

    /// Successful syncs and bytes written so far.
    pub fn counters(&self) -> (u64, u64) {
        let state = self.state();
        (state.syncs, state.bytes_written)
    }

    /// A fresh disk holding what survives `ending` (the new process sees no faults), the broker
    /// that wrote this one being gone. `rng` chooses which unsynced writes a power cut keeps.
    pub fn after(&self, ending: Ending, rng: &mut Rng) -> SimDisk {
        let state = self.state();
        let file = match ending {
            Ending::ProcessCrash => state.current.clone(),
            Ending::PowerCut => {
                let mut file = state.synced.clone();
                let torn = (!state.unsynced.is_empty() && rng.chance(30))
                    .then(|| rng.index(state.unsynced.len()));
                for (i, (offset, data)) in state.unsynced.iter().enumerate() {
                    let kept = if Some(i) == torn {
                        rng.index(data.len() + 1)
                    } else if rng.chance(50) {
                        data.len()
                    } else {
                        continue;
                    };
                    let end = offset + kept;
                    if file.len() < end {
                        file.resize(end, 0);
                    }
                    file[*offset..end].copy_from_slice(&data[..kept]);
                }
                file
            }
        };
        SimDisk(Arc::new(Mutex::new(State {
            synced: file.clone(),
            current: file,
            capacity: usize::MAX,
            ..State::default()
        })))
    }
}

fn error(kind: std::io::ErrorKind, what: &str) -> IoError {
    IoError::new(kind, format!("simulated disk: {what}"))
}

impl StorageBackend for SimDisk {
    fn len(&self) -> Result<u64, IoError> {
        Ok(self.state().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        let state = self.state();
        let start = usize::try_from(offset)
            .map_err(|_| error(std::io::ErrorKind::UnexpectedEof, "offset"))?;
        let bytes = state
            .current
            .get(start..start + out.len())
            .ok_or_else(|| error(std::io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), IoError> {
        let mut state = self.state();
        let len = usize::try_from(len).map_err(|_| error(std::io::ErrorKind::Other, "length"))?;
        if len > state.capacity {
            return Err(error(std::io::ErrorKind::StorageFull, "no space left"));
        }
        let old = state.current.len();
        if len > old {
            state.dirty.push((old, len));
        }
        state.current.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), IoError> {
        let mut state = self.state();
        match state.syncs_before_failure {
            Some(0) => {
                // As with Linux after a failed fsync: what was written may be lost, and the
                // error is reported once. The disk stays failed for this process.
                return Err(error(std::io::ErrorKind::Other, "fsync failed (EIO)"));
            }
            Some(n) => state.syncs_before_failure = Some(n - 1),
            None => {}
        }
        let State {
            current,
            synced,
            dirty,
            ..
        } = &mut *state;
        synced.resize(current.len(), 0);
        for (start, end) in dirty.drain(..) {
            let end = end.min(current.len());
            if start < end {
                synced[start..end].copy_from_slice(&current[start..end]);
            }
        }
        debug_assert!(*synced == *current);
        state.unsynced.clear();
        state.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), IoError> {
        let mut state = self.state();
        let start =
            usize::try_from(offset).map_err(|_| error(std::io::ErrorKind::Other, "offset"))?;
        let end = start + data.len();
        if end > state.capacity {
            return Err(error(std::io::ErrorKind::StorageFull, "no space left"));
        }
        let old = state.current.len();
        if old < end {
            state.current.resize(end, 0);
        }
        state.dirty.push((old.min(start), end));
        state.current[start..end].copy_from_slice(data);
        state.unsynced.push((start, data.to_vec()));
        state.bytes_written += data.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_every_write_and_a_power_cut_only_what_was_synced_or_happened_to_land() {
        let disk = SimDisk::new();
        disk.write(0, b"aaaa").unwrap();
        disk.sync_data().unwrap();
        disk.write(0, b"bb").unwrap();
        let mut rng = Rng::new(3);
        let crash = disk.after(Ending::ProcessCrash, &mut rng);
        let mut out = [0u8; 4];
        crash.read(0, &mut out).unwrap();
        assert_eq!(&out, b"bbaa");
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let cut = disk.after(Ending::PowerCut, &mut rng);
            cut.read(0, &mut out).unwrap();
            seen.insert(out);
        }
        // Lost, landed, or torn after the first byte.
        let expected: std::collections::BTreeSet<[u8; 4]> =
            [*b"aaaa", *b"bbaa", *b"baaa"].into_iter().collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_failed_sync_keeps_nothing_new_and_a_full_disk_refuses_writes() {
        let disk = SimDisk::new();
        disk.fail_sync_after(1);
        disk.write(0, b"x").unwrap();
        disk.sync_data().unwrap();
        disk.write(1, b"y").unwrap();
        assert!(disk.sync_data().is_err());
        let cut = disk.after(Ending::PowerCut, &mut Rng::new(1));
        assert!(cut.len().unwrap() >= 1);
        disk.fill_up_after(2);
        assert!(disk.write(2, b"zz").is_ok());
        assert!(disk.write(4, b"z").is_err());
    }
}
