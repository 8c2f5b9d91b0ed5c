//! `mqtt-load`: a load generator for any MQTT broker, in the spirit of emqtt-bench.
//!
//! Three modes ([`Scenario`]) with clients described by templates, `conn`, `pub` and `sub`, and
//! six fixed scenarios: `fanin`, `fanout`, `qos1`, `latency`, `idle` and `connrate`. Every
//! one runs over TCP, TLS, WebSocket or WebSocket over TLS ([`Transport`]), at MQTT 3.1, 3.1.1
//! or 5 and QoS 0, 1 or 2. Each run is bounded by `--duration` (and optionally `--count`),
//! prints a progress line per second to stderr and ends with one `RESULT key=value ...` line
//! ([`Report`]) on stdout, and with `--json` a JSON summary.
//!
//! The tool must never be the bottleneck, so the hot paths avoid per-message work:
//!
//! ```text
//!  publisher: PublishTemplate (encoded once by mqtt-wire)
//!             └─ append + patch stamp/packet id ──► 64 KiB batch ──► one write
//!  subscriber: read_buf (256 KiB) ──► Decoder::decode (zero-copy) ──► Stamp::read
//!             └─ SequenceTracker (bitset) + Histogram (fixed buckets) + batched PUBACKs
//! ```
//!
//! Every payload starts with a [`Stamp`] (publisher, sequence number, send time), which lets a
//! subscriber count lost, duplicated and reordered messages and measure latency:
//!
//! ```
//! use mqtt_load::{Arrival, Histogram, SequenceTracker};
//!
//! let mut tracker = SequenceTracker::new(1);
//! let mut latency = Histogram::new();
//! for (sequence, micros) in [(0, 90), (1, 110), (3, 100)] {
//!     assert_eq!(tracker.record(0, sequence), Arrival::InOrder);
//!     latency.record(micros);
//! }
//! assert_eq!(tracker.missing(&[4]), 1); // sequence 2 never arrived
//! assert_eq!(latency.percentile(50.0), 100);
//! assert_eq!(latency.max(), 110);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod error;
mod histogram;
mod options;
mod payload;
mod report;
mod rss;
mod scenario;
mod sequence;
mod stats;
mod template;
mod transport;

pub use client::{Client, ClientConfig, SessionOptions};
pub use error::LoadError;
pub use histogram::Histogram;
pub use options::{Options, Scenario, Target, TlsVersionArg};
pub use payload::{PublishTemplate, STAMP_LEN, Stamp};
pub use report::Report;
pub use rss::resident_bytes;
pub use scenario::run;
pub use sequence::{Arrival, MAX_GROWN_PUBLISHERS, MAX_SEQUENCE, SequenceTracker};
pub use stats::{Counters, spawn_progress};
pub use template::{Rng, Template, Vars};
pub use transport::{Stream, TlsOptions, TlsVersion, Transport, WsIo};

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
