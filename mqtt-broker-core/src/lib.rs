//! A sans-IO MQTT 3.1 / 3.1.1 / 5.0 broker: bytes and time in; bytes, closes, decisions and
//! deadlines out.
//!
//! One [`Broker`] owns every connection and session. It reads no clock, opens no socket and
//! spawns nothing: the caller feeds it inputs, each with the current time, and drains its outputs.
//!
//! ```text
//!  accept          ──► handle_open     ┐                    ┌─► Output::Transmit (header + shared payload)
//!  socket bytes    ──► handle_bytes    │                    ├─► Output::Close
//!  written         ──► handle_flushed  │                    ├─► Output::PauseReading / ResumeReading
//!  EOF / error     ──► handle_closed   │   ┌────────────┐   ├─► Output::AuthRequest (deferred CONNECT)
//!  timer fired     ──► handle_timeout  ├──►│   Broker   │──►├─► Output::Persist (records to make durable)
//!  batch durable   ──► handle_persisted│   └────────────┘   ├─► Output::Event (metrics, logs)
//!  auth decided    ──► accept_connect, reject_connect,      └─► Output::Forward (cluster seam)
//!                      continue_auth   │         │
//!  application     ──► publish         │         └─► poll_timeout: next deadline
//!  another node    ──► publish_remote, session_taken_over
//!  restart         ──► restore         ┘
//! ```
//!
//! The rule of the driving loop: after every input, drain [`Broker::poll_output`] until it is
//! empty, then read [`Broker::poll_timeout`] and sleep until then or the next input.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use mqtt_broker_core::{Broker, Config, ConnectionId, ConnectionInfo, Output};
//!
//! let mut broker = Broker::new(Config::default());
//! let now = Instant::now();
//! let conn = ConnectionId(1);
//! broker.handle_open(conn, ConnectionInfo::default(), now)?;
//! // A 3.1.1 CONNECT, client id "c", keep alive 60 s, clean session.
//! let connect = [0x10, 0x0d, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'c'];
//! broker.handle_bytes(conn, &connect, now)?;
//! let mut written = Vec::new();
//! while let Some(output) = broker.poll_output() {
//!     match output {
//!         Output::Transmit { conn, data } => {
//!             for chunk in data {
//!                 written.extend_from_slice(&chunk); // a socket write in real life
//!             }
//!             broker.handle_flushed(conn, written.len(), now)?;
//!         }
//!         Output::Close { .. } | Output::AuthRequest(_) | Output::Event(_) => {}
//!         _ => {}
//!     }
//! }
//! assert_eq!(written, [0x20, 0x02, 0x00, 0x00]); // CONNACK, accepted
//! // Keep alive 60 s: the broker wants to be woken within 90 s.
//! let deadline = broker.poll_timeout().expect("keep alive timer");
//! assert!(deadline <= now + Duration::from_secs(90));
//! broker.handle_timeout(deadline);
//! # Ok::<(), mqtt_broker_core::ApiMisuse>(())
//! ```
//!
//! # The life of one PUBLISH
//!
//! 1. `handle_read` (or `handle_bytes`) gives the codec the read; it splits off the whole
//!    frames (without a copy when the read is `Bytes` and nothing partial waits), so topic,
//!    properties and payload are views into it.
//! 2. The packet is checked against the connection's state: topic alias resolved, topic name
//!    validated, exactly-once bookkeeping for QoS 2, authorization, retained-store limits.
//! 3. Routing updates the retained store, walks the subscription trie once, picks one member
//!    per shared group (round-robin), and shapes one delivery per session: one copy at the
//!    highest matching QoS carrying every matching subscription identifier (plus one per shared
//!    subscription).
//! 4. Each delivery goes out at once (QoS 0 if the outbox has room; QoS 1/2 if the client's
//!    Receive Maximum allows) or waits in the session's bounded queue.
//! 5. Going out, each copy is checked for read access ([`hooks::Authorizer::authorize_delivery`]),
//!    then only a small header is encoded (into a shared scratch buffer); the
//!    `Output::Transmit` carries it and the payload `Bytes` shared by every subscriber.
//! 6. `handle_flushed` and acknowledgements free room; the queue drains in order.
//!
//! # Policy
//!
//! [`hooks::Authenticator`], [`hooks::Authorizer`] and [`hooks::EnhancedAuthenticator`] are boxed trait
//! objects set with `Broker::with_*`; the defaults let everyone in, allow everything and refuse
//! enhanced authentication (0x8C). A hook never blocks: an
//! authentication that needs I/O answers [`hooks::AuthDecision::Defer`] (or [`hooks::AuthStep::Defer`] for a
//! step of the v5 AUTH exchange), the broker emits [`Output::AuthRequest`], and the caller answers
//! later with [`Broker::accept_connect`], [`Broker::reject_connect`] or [`Broker::continue_auth`]
//! (the CONNECT deadline still runs; other connections are not held up). Authorization is
//! answered synchronously: decisions that need I/O belong in the (deferrable) authentication
//! step, cached for the connection by the authorizer.
//!
//! # Errors and limits
//!
//! Nothing a peer sends produces an `Err` or a panic: malformed bytes and protocol violations
//! become a DISCONNECT with the spec's reason code (v5, after CONNACK) and a `Close`, plus an
//! [`Event::ProtocolError`]. `Err` ([`ApiMisuse`]) is reserved for caller mistakes such as an
//! unknown connection id. Every [`Config`] limit bounds memory: a per-connection outbox counted by
//! [`Broker::handle_flushed`] (above it QoS 0 is dropped and QoS 1/2 wait), bounded session queues
//! (drops counted in [`Stats`] and reported as [`Event::MessageDropped`]), the client's Receive
//! Maximum as the outbound window, the broker's advertised limits enforced inbound, and global
//! bounds on sessions and on retained messages and bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod alias;
mod backpressure;
mod broker;
mod config;
mod conn;
mod error;
mod gate;
pub mod hooks;
mod idmap;
mod ids;
mod inflight;
mod listener;
mod memory;
mod message;
mod outbox;
mod output;
pub mod persist;
mod retained;
mod router;
mod session;
mod stats;
mod tap;
mod timer;
mod will;

pub use broker::Broker;
pub use config::Config;
pub use error::{ApiMisuse, ConfigError, ProtocolViolation};
pub use ids::{ConnectionId, ConnectionInfo, ListenerId};
pub use listener::ListenerRules;
pub use message::{Message, RetainSource};
pub use output::{AuthRequest, DropReason, Event, Output};
pub use session::SessionView;
pub use stats::Stats;

/// The origin of the virtual clock used by unit tests (the only place a clock is read).
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
