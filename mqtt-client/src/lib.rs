//! A sans-IO MQTT 3.1, 3.1.1 and 5.0 client: the protocol state of one client, with no socket,
//! no clock and no runtime. The application (or an adapter such as the bridge of
//! `mqtt-tokio`) moves bytes and time in and out:
//!
//! ```text
//!  transport bytes ──► Client::handle_input ──► Client::poll_event   (Connected, Message, Acknowledged, ...)
//!  the time        ──► Client::handle_timeout   Client::poll_transmit ──► transport
//!                                               Client::poll_timeout  ──► timer
//!  requests        ──► connect / publish / forward / subscribe / ack / release / complete
//! ```
//!
//! - Every protocol version on the same codec as the broker (`mqtt-wire`).
//! - QoS 0, 1 and 2 both ways; unfinished messages ([`SessionState`]) are sent again on a
//!   resumed session and can be saved across restarts.
//! - The server's limits from its CONNACK are kept: Receive Maximum, Maximum Packet Size,
//!   Maximum QoS, Retain Available, Server Keep Alive.
//! - Keep alive with PINGREQ and a deadline for PINGRESP and CONNACK.
//! - Acknowledgements sent by the client, or by the application when it has done its part
//!   ([`Options::manual_acks`]), so that a relay acknowledges one side only once the other has.
//! - Reconnection delays ([`Backoff`]): constant, or mosquitto's jittered exponential backoff.
//!
//! A server in breach of the protocol (a wrong first packet, an acknowledgement of the wrong
//! kind, a topic alias it was not allowed, more unacknowledged messages than allowed, a
//! malformed packet) gets DISCONNECT with the reason code (5.0) and the connection ends; the
//! client never panics on input.
#![forbid(unsafe_code)]

mod backoff;
mod client;
mod error;
mod options;
mod session;

pub use backoff::Backoff;
pub use client::{Client, Event, Message, ServerLimits};
pub use error::{ClientError, Disconnection};
pub use options::Options;
pub use session::{DamagedState, Outgoing, SessionState};
