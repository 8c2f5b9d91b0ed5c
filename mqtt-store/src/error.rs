//! What can go wrong with the durable store, split by cause: the file cannot be used at all,
//! its content is damaged, or it was written by an unknown (newer) format.

use std::path::PathBuf;

/// An error of the durable store.
///
/// ```
/// use mqtt_store::DurableStore;
///
/// let dir = std::env::temp_dir().join(format!("mqtt-store-error-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("broker.redb");
/// std::fs::write(&path, vec![0x55; 8192])?; // not a redb file
/// let error = DurableStore::open(&path).unwrap_err();
/// assert!(error.is_corrupt(), "{error}");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created (I/O, permissions, locked by another
    /// process).
    #[error("cannot open the store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: redb::DatabaseError,
    },
    /// The file is damaged: redb found a bad checksum or structure, or a record does not decode.
    /// Nothing was changed; the broker must not start on it unless told to start fresh.
    #[error("the store {path} is corrupt: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The file was written by a format this version does not know (a newer broker).
    #[error(
        "the store {path} has format version {found}; this broker reads versions up to {supported}"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// A read or write failed while the store was in use.
    #[error("store I/O failed: {0}")]
    Io(String),
}

impl StoreError {
    /// Whether this is damage to the file (as opposed to a failure to reach it).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. })
    }
}

/// A record that does not decode (the store layer adds the file name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DecodeFailure(pub(crate) String);
