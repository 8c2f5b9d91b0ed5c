//! One network connection as the broker sees it: identity, decoder and read buffer, where it is in
//! the CONNECT exchange, keep alive, the outbox count, and the per-connection v5 limits and aliases.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_wire::{Connect, Decoder, MqttStr, ProtocolVersion};

use crate::alias::{InboundAliases, OutboundAliases};
use crate::ids::{ConnectionInfo, SessionId};

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Waiting for CONNECT [MQTT-3.1.0-1].
    AwaitingConnect,
    /// CONNECT received; waiting for the caller's or the enhanced authenticator's decision.
    Authenticating(Box<Connect>),
    /// Authenticated, in a cluster: waiting for the backplane to admit the client
    /// ([`Broker::admit`](crate::Broker::admit)) once it holds the session cluster-wide.
    Admitting(Box<Admission>),
    /// CONNACK sent; attached to this session.
    Connected(SessionId),
    /// Refused or disconnecting: input is ignored [MQTT5-3.1.4-6] [MQTT311-3.1.4-5], only a close follows.
    Closing,
}

/// An authenticated CONNECT waiting for the cluster's backplane.
#[derive(Debug)]
pub(crate) struct Admission {
    pub(crate) connect: Connect,
    /// Authentication data for the CONNACK (enhanced authentication).
    pub(crate) auth_data: Option<bytes::Bytes>,
    /// The client identifier in force (given, the user name, or assigned).
    pub(crate) client_id: String,
    /// Whether the broker assigned it.
    pub(crate) assigned: bool,
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) info: ConnectionInfo,
    pub(crate) decoder: Decoder,
    pub(crate) read_buf: BytesMut,
    pub(crate) phase: Phase,
    /// Negotiated version (known once a CONNECT decoded).
    pub(crate) version: ProtocolVersion,
    /// Keep alive in force, in seconds; zero disables the check.
    pub(crate) keep_alive: u16,
    /// Stamp of the connection's armed deadline (CONNECT or keep alive) in the broker's
    /// `ConnTimers`; 0 when none is armed.
    pub(crate) timer_stamp: u64,
    /// Last time a packet arrived.
    pub(crate) last_packet: Instant,
    /// Bytes handed out and not yet flushed.
    pub(crate) outbox: usize,
    /// Last time the socket took bytes, or the outbox went from empty to in use: a connection
    /// with bytes waiting and no progress since long ago is not reading (see `backpressure`).
    pub(crate) last_progress: Instant,
    /// The client's Maximum Packet Size (v5), else unlimited.
    pub(crate) max_packet_size: u32,
    /// The client's Receive Maximum (v5), or the broker's window for older clients.
    pub(crate) receive_maximum: u16,
    pub(crate) inbound_aliases: InboundAliases,
    pub(crate) outbound_aliases: OutboundAliases,
    /// User name given at CONNECT (for authorization hooks).
    pub(crate) username: Option<Box<str>>,
    /// Whether the client allows reason strings and user properties on most packets
    /// [MQTT5-3.1.2-29].
    pub(crate) problem_information: bool,
    /// Enhanced authentication method in use (v5); boxed, as most connections have none.
    pub(crate) auth_method: Option<Box<MqttStr>>,
    /// An authentication decision was handed to the caller and is not answered yet.
    pub(crate) awaiting_decision: bool,
    /// Whether the client sent DISCONNECT 0x00 (its will is discarded).
    pub(crate) clean_disconnect: bool,
    /// The client is another broker's bridge (the bridge bit of a 3.x CONNECT): its
    /// subscriptions are no-local and retain-as-published, as mosquitto treats them.
    pub(crate) bridge: bool,
}

impl Conn {
    /// A connection that has just opened.
    pub(crate) fn new(info: ConnectionInfo, max_packet_size: u32, now: Instant) -> Self {
        Conn {
            info,
            decoder: Decoder::new().with_max_packet_size(max_packet_size),
            read_buf: BytesMut::new(),
            phase: Phase::AwaitingConnect,
            version: ProtocolVersion::V3_1_1,
            keep_alive: 0,
            timer_stamp: 0,
            last_packet: now,
            outbox: 0,
            last_progress: now,
            max_packet_size: u32::MAX,
            receive_maximum: u16::MAX,
            inbound_aliases: InboundAliases::default(),
            outbound_aliases: OutboundAliases::default(),
            username: None,
            problem_information: true,
            auth_method: None,
            awaiting_decision: false,
            clean_disconnect: false,
            bridge: false,
        }
    }

    /// The session, when connected.
    pub(crate) fn session(&self) -> Option<SessionId> {
        match self.phase {
            Phase::Connected(session) => Some(session),
            _ => None,
        }
    }

    /// Counts `len` bytes about to be sent at `now` in the outbox; `false` (nothing counted)
    /// when the connection is closing.
    pub(crate) fn start_sending(&mut self, len: usize, now: Instant) -> bool {
        if matches!(self.phase, Phase::Closing) {
            return false;
        }
        if self.outbox == 0 {
            self.last_progress = now; // it starts waiting for the socket now
        }
        self.outbox += len;
        true
    }

    /// The adapter wrote `bytes` at `now`; `false` (nothing changed) when that is more than
    /// was handed out.
    pub(crate) fn flushed(&mut self, bytes: usize, now: Instant) -> bool {
        let Some(left) = self.outbox.checked_sub(bytes) else {
            return false;
        };
        self.outbox = left;
        if bytes > 0 {
            self.last_progress = now;
        }
        true
    }

    /// When keep alive runs out: 1.5 times the interval after the last packet [MQTT5-3.1.2-22]
    /// [MQTT311-3.1.2-24].
    pub(crate) fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.keep_alive == 0 {
            None
        } else {
            let interval = Duration::from_secs(u64::from(self.keep_alive));
            self.last_packet.checked_add(interval + interval / 2)
        }
    }
}
