//! The journal of a store in journaled mode: every change is appended to a plain file with one
//! `write` before the caller acknowledges it, so a crash of the process loses nothing (the
//! kernel holds what was written); the file itself is made durable only at checkpoints, when the
//! changes gathered in memory are written into the redb file in one durable transaction. Then the
//! journal starts again, empty, under the next *epoch*.
//!
//! Layout (`docs/STORAGE.md`, "The journal"): a 24-byte header — the 16 bytes
//! `b"mqtt-rs journal\x01"` (the last one is the journal format) and the epoch, `u64` — then
//! entries: body length `u32`, a 64-bit hash of the body (see [`checksum`]), body. A body is a sequence
//! of [`Op`]s, the changes of one group of batches. At open, the redb file names in `meta` the
//! newest epoch it already holds: a journal of a newer epoch is replayed, an older one is
//! stale. Reading stops at the first entry that is not whole or whose checksum fails: that is the
//! tail of a write cut short, which was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::changes::Op;
use crate::error::StoreError;
use crate::format::{Reader, Writer};

/// The first 16 bytes of a journal: a name and the journal format (1).
const MAGIC: &[u8; 16] = b"mqtt-rs journal\x01";
/// Magic and epoch.
const HEADER_LEN: u64 = 24;
/// Body length and checksum before each body.
const ENTRY_HEAD: usize = 12;

/// The largest entry buffer kept for the next append.
const SCRATCH_KEPT: usize = 1 << 20;

/// A word-wise multiply-rotate hash of 64 bits: finds a torn or zeroed tail (not an adversary).
fn checksum(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(w))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    for byte in words.remainder() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(K).rotate_left(29);
    }
    hash ^ (hash >> 31)
}

/// What a journal left by an earlier run holds.
#[derive(Debug)]
pub(crate) struct Leftover {
    /// Its epoch.
    pub(crate) epoch: u64,
    /// The ops of its whole entries, oldest first.
    pub(crate) ops: Vec<Op>,
    /// How many whole entries there were.
    pub(crate) entries: u64,
    /// Bytes after the last whole entry (a write cut short), ignored.
    pub(crate) ignored: u64,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

fn corrupt(path: &Path, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Reads the journal at `path`; `None` if there is none or it is empty (a header cut short is
/// a journal that never held an entry).
pub(crate) fn read(path: &Path) -> Result<Option<Leftover>, StoreError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|e| io(path, e))?,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    if (bytes.len() as u64) < HEADER_LEN {
        return Ok(None);
    }
    let (header, mut rest) = bytes.split_at(HEADER_LEN as usize);
    if &header[..MAGIC.len()] != MAGIC {
        // The header is written after each checkpoint and never synced: only a power cut
        // damages it, and what such a journal held is within the interval a power cut may
        // lose (a crash of the process cannot tear a completed write). Nothing is readable.
        return Ok(Some(Leftover {
            epoch: 0,
            ops: Vec::new(),
            entries: 0,
            ignored: bytes.len() as u64,
        }));
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&header[MAGIC.len()..]);
    let mut leftover = Leftover {
        epoch: u64::from_le_bytes(epoch),
        ops: Vec::new(),
        entries: 0,
        ignored: 0,
    };
    let mut offset = HEADER_LEN;
    while rest.len() >= ENTRY_HEAD {
        let (head, tail) = rest.split_at(ENTRY_HEAD);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[..4]);
        let len = u32::from_le_bytes(len) as usize;
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&head[4..]);
        if len == 0 || len > tail.len() || checksum(&tail[..len]) != u64::from_le_bytes(sum) {
            break;
        }
        let (body, tail) = tail.split_at(len);
        let mut r = Reader::new(body);
        while !r.is_empty() {
            let op = Op::decode(&mut r)
                .map_err(|e| corrupt(path, format_args!("entry at offset {offset}: {e}")))?;
            leftover.ops.push(op);
        }
        leftover.entries += 1;
        offset += (ENTRY_HEAD + len) as u64;
        rest = tail;
    }
    leftover.ignored = rest.len() as u64;
    Ok(Some(leftover))
}

/// An open journal, appended to.
#[derive(Debug)]
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    epoch: u64,
    /// Bytes in the file.
    len: u64,
    /// The buffer an entry is built in, kept between appends.
    scratch: Vec<u8>,
}

impl Journal {
    /// Creates (or truncates) the journal at `path` for `epoch`.
    pub(crate) fn create(path: &Path, epoch: u64) -> Result<Journal, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, e))?;
        let mut journal = Journal {
            file,
            path: path.to_path_buf(),
            epoch,
            len: 0,
            scratch: Vec::new(),
        };
        journal.restart(epoch)?;
        Ok(journal)
    }

    /// The epoch of the entries appended now.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether no entry was appended since the last (re)start.
    pub(crate) fn is_empty(&self) -> bool {
        self.len <= HEADER_LEN
    }

    /// Empties the journal and starts `epoch`: everything of the earlier epochs is in the redb
    /// file.
    pub(crate) fn restart(&mut self, epoch: u64) -> Result<(), StoreError> {
        let path = self.path.clone();
        self.file.set_len(0).map_err(|e| io(&path, e))?;
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| io(&path, e))?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&epoch.to_le_bytes());
        self.file.write_all(&header).map_err(|e| io(&path, e))?;
        self.epoch = epoch;
        self.len = HEADER_LEN;
        Ok(())
    }

    /// Appends `ops` as one entry with one `write`: when this returns, the kernel has them.
    pub(crate) fn append<'o>(
        &mut self,
        ops: impl IntoIterator<Item = &'o Op>,
    ) -> Result<(), StoreError> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.resize(ENTRY_HEAD, 0);
        let ops: Vec<&Op> = ops.into_iter().collect();
        buf.reserve(ops.iter().map(|op| op.size_hint()).sum());
        let mut w = Writer::on(buf);
        ops.iter().for_each(|op| op.encode(&mut w));
        let mut buf = w.into_bytes();
        let body_len = buf.len() - ENTRY_HEAD;
        let len = u32::try_from(body_len)
            .map_err(|_| StoreError::Io(format!("{}: entry too large", self.path.display())))?;
        let sum = checksum(&buf[ENTRY_HEAD..]);
        buf[..4].copy_from_slice(&len.to_le_bytes());
        buf[4..ENTRY_HEAD].copy_from_slice(&sum.to_le_bytes());
        let written = self.file.write_all(&buf);
        if buf.capacity() <= SCRATCH_KEPT {
            self.scratch = buf;
        }
        if let Err(e) = written {
            return Err(io(&self.path, e));
        }
        self.len += (ENTRY_HEAD + body_len) as u64;
        Ok(())
    }
}
