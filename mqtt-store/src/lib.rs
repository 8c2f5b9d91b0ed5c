//! Durable, crash-safe storage of retained messages and persistent sessions on redb.
//!
//! The broker core describes every change of its durable state as ordered
//! [`PersistRecord`](mqtt_broker_core::persist::PersistRecord)s in numbered batches; a [`DurableStore`]
//! writes one or more batches in one redb transaction ([`DurableStore::apply`]), and reads the
//! whole state back at start ([`DurableStore::load`]) for
//! [`Broker::restore`](mqtt_broker_core::Broker::restore). Times are stored as wall-clock
//! milliseconds, mapped from the broker's `Instant`s by a [`WallClock`] anchor the caller reads;
//! this crate reads no clock.
//!
//! ```
//! use std::time::{Instant, SystemTime};
//! use mqtt_broker_core::{Broker, Config, Output, persist::Persistence};
//! use mqtt_store::{Commit, DurableStore, WallClock};
//!
//! let dir = std::env::temp_dir().join(format!("mqtt-store-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("broker.redb");
//! let (now, wall) = (Instant::now(), SystemTime::now());
//! let clock = WallClock::new(now, wall);
//! let mut store = DurableStore::open(&path)?;
//! let mut config = Config::default();
//! config.persistence = Persistence::Sync;
//! let mut broker = Broker::new(config);
//! broker.restore(store.load(now)?, now, wall);
//! // ... drive the broker; for every Output::Persist(batch):
//! while let Some(output) = broker.poll_output() {
//!     if let Output::Persist(batch) = output {
//!         store.apply(&batch.records, &clock, Commit::Durable)?;
//!         broker.handle_persisted(batch.seq, now)?;
//!     }
//! }
//! # drop(store);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The file layout is documented in `docs/STORAGE.md`; [`FORMAT_VERSION`] is written in the
//! file and checked at open.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod changes;
mod clock;
mod durable;
mod error;
mod format;
mod handover;
mod journal;
mod mosquitto_db;
mod tables;

pub use clock::WallClock;
pub use durable::{Commit, DEFAULT_JOURNAL_LIMIT, DurableStore, JournalReplay};
pub use error::StoreError;
pub use format::FORMAT_VERSION;
pub use handover::{HandoverError, decode_handover, encode_handover};
pub use mosquitto_db::{ImportError, MosquittoImport, read_mosquitto_db};

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
