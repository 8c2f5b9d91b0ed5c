//! Durability without I/O: the broker describes every change of its durable state as an ordered
//! [`PersistRecord`], hands them to the caller in numbered [`PersistBatch`]es
//! ([`Output::Persist`](crate::Output::Persist)), and, in [`Persistence::Sync`] mode, holds back what acknowledges or
//! commits to that state until the caller reports with [`Broker::handle_persisted`](crate::Broker::handle_persisted) that the
//! batch is on disk. Recovery is the reverse: [`Broker::restore`](crate::Broker::restore) takes the [`RecoveredState`] a
//! store read, with the wall-clock time of the restart, and recomputes message and session expiry
//! from it.
//!
//! Only sessions with a non-zero expiry (persistent sessions) and retained messages are
//! recorded: a clean session's queue costs no record. Each QoS 1/2 delivery kept for a persistent
//! session gets a number unique within the session; its records follow it from stored (queued or
//! sent) through released (QoS 2 after PUBREC) to done. A delivery is recorded as sent *before*
//! its PUBLISH is emitted, so the PUBLISH can wait for that record.
//!
//! # What `Sync` holds
//!
//! An output is held until the batch it depends on is durable, if it is one of the kinds below.
//! It depends on the batch being filled when the input being handled recorded anything (its own
//! records: the message it acknowledges, the subscription it confirms); otherwise on the newest
//! batch holding a record of its connection's session (state it confirms again), not on
//! another client's batch; before CONNACK, on the newest batch. The kinds:
//!
//! - CONNACK, SUBACK, UNSUBACK: they confirm a session, its subscriptions or their removal;
//! - PUBACK, PUBREC, PUBCOMP to a publisher: the message (retained or queued for a persistent
//!   session) and the inbound QoS 2 identifier, or its release, must survive a crash;
//! - QoS 2 PUBLISH and PUBREL to a subscriber: the packet identifier (state "sent" or
//!   "released") must be on disk first, or a restart could send the message again under a new
//!   identifier, or resend a PUBLISH the client already completed: twice delivered.
//!
//! Everything else goes out at once: QoS 0 and QoS 1 PUBLISH, PINGRESP, DISCONNECT, AUTH. A QoS 1
//! delivery lost by a crash before its record is durable is either not acknowledged to its
//! publisher yet (held PUBACK: the publisher resends) or resent from an older record after the
//! restart: at worst a duplicate, which QoS 1 allows.
//!
//! Order: bytes on one connection keep the order in which they were produced, as the protocol
//! requires (PUBACKs in the order of the PUBLISHes [MQTT-4.6.0-2], deliveries of a topic in
//! order [MQTT-4.6.0-6], CONNACK first, `Close` last). So an output for a connection that already
//! has a held output is held behind it, whatever it is, and a held output is released only when
//! its batch is durable *and* nothing before it on its connection is still held. Connections do
//! not wait for each other: no rule orders packets across connections, and a delivery that goes
//! out before the PUBACK of the same message is the case QoS 1 already allows.
//!
//! This module holds the records as plain data: what the broker hands a store
//! ([`PersistBatch`] of [`PersistRecord`]s), what a store hands back at a restart
//! ([`RecoveredState`]), and the [`Persistence`] mode.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mqtt_wire::{PacketId, ProtocolVersion, QoS, SubscriptionOptions};

use crate::message::Message;

/// Whether and how the broker reports its durable state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Persistence {
    /// No records (in-memory broker).
    #[default]
    Off,
    /// Records are emitted, acknowledgements are not held (periodic snapshots).
    Deferred,
    /// Records are emitted and everything transmitted after them waits for
    /// [`Broker::handle_persisted`](crate::Broker::handle_persisted): nothing is acknowledged before it is durable.
    Sync,
}

/// Records to write in one transaction, in order. Batch numbers start at 1 and increase by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistBatch {
    /// The batch number to report to [`Broker::handle_persisted`](crate::Broker::handle_persisted) once it is durable.
    pub seq: u64,
    /// The changes, oldest first.
    pub records: Vec<PersistRecord>,
}

/// A will kept with a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillRecord {
    /// Topic, payload, QoS, RETAIN and properties of the will (its `received_at` is the time the
    /// record was made; `publisher` is unset; `retain_source` is its client when it is
    /// retained).
    pub message: Message,
    /// Will Delay Interval in seconds.
    pub delay_interval: u32,
}

/// The durable part of a session: enough to restore its subscriptions after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// Protocol version of the client's last connection.
    pub version: ProtocolVersion,
    /// Session Expiry Interval in seconds (`u32::MAX` = never).
    pub expiry_interval: u32,
    /// Subscriptions: filter text (with any `$share/` prefix), options, identifier.
    pub subscriptions: Vec<(String, SubscriptionOptions, Option<u32>)>,
    /// The will waiting for the connection (or the session) to end.
    pub will: Option<WillRecord>,
    /// When its client disconnected (broker time); `None` while connected.
    pub disconnected_at: Option<Instant>,
}

impl SessionRecord {
    /// A record without subscriptions or will.
    pub fn new(version: ProtocolVersion, expiry_interval: u32) -> Self {
        SessionRecord {
            version,
            expiry_interval,
            subscriptions: Vec::new(),
            will: None,
            disconnected_at: None,
        }
    }
}

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting in the session queue.
    Queued,
    /// PUBLISH sent with this packet identifier; waiting for PUBACK / PUBREC.
    Sent(PacketId),
    /// QoS 2: PUBREC received and PUBREL sent with this identifier; waiting for PUBCOMP.
    Released(PacketId),
}

/// One QoS 1/2 message kept for a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// The message (its `received_at` is the broker's time of receipt).
    pub message: Arc<Message>,
    /// QoS of this copy.
    pub qos: QoS,
    /// RETAIN flag of this copy.
    pub retain: bool,
    /// Subscription identifiers of this copy.
    pub subscription_ids: Vec<u32>,
    /// ShareName, when it came through a shared subscription.
    pub share: Option<String>,
    /// Where it stands.
    pub state: DeliveryState,
}

/// One change of the durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersistRecord {
    /// `topic` now retains `message`.
    RetainedSet {
        /// The topic.
        topic: String,
        /// The message.
        message: Arc<Message>,
    },
    /// `topic` no longer retains a message.
    RetainedCleared {
        /// The topic.
        topic: String,
    },
    /// The session of `client_id` is created or changed (subscriptions, expiry, will).
    SessionSaved {
        /// Its client identifier.
        client_id: String,
        /// Its durable fields.
        record: SessionRecord,
    },
    /// The session of `client_id` ended, with everything kept for it.
    SessionRemoved {
        /// Its client identifier.
        client_id: String,
    },
    /// A QoS 1/2 delivery is kept for the session.
    MessageStored {
        /// The session's client identifier.
        client_id: String,
        /// The delivery's number within the session.
        number: u64,
        /// The delivery.
        delivery: StoredDelivery,
    },
    /// A stored delivery was sent or released.
    MessageState {
        /// The session's client identifier.
        client_id: String,
        /// The delivery's number within the session.
        number: u64,
        /// Its new state.
        state: DeliveryState,
    },
    /// A stored delivery is finished (acknowledged, expired or dropped).
    MessageDone {
        /// The session's client identifier.
        client_id: String,
        /// The delivery's number within the session.
        number: u64,
    },
    /// An inbound QoS 2 packet identifier was answered with PUBREC (`pending`), or released by
    /// PUBREL (`!pending`).
    IncomingQos2 {
        /// The session's client identifier.
        client_id: String,
        /// The packet identifier.
        packet_id: PacketId,
        /// Whether it now awaits PUBREL.
        pending: bool,
    },
}

/// A retained message read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredMessage {
    /// The message; its `received_at` is ignored.
    pub message: Message,
    /// Wall-clock time the broker received it.
    pub received: SystemTime,
}

/// A stored delivery read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredDelivery {
    /// Its number within the session.
    pub number: u64,
    /// The delivery; its message's `received_at` is ignored.
    pub delivery: StoredDelivery,
    /// Wall-clock time the broker received the message.
    pub received: SystemTime,
}

/// A persistent session read back from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredSession {
    /// Its client identifier.
    pub client_id: String,
    /// Its durable fields (`disconnected_at` is ignored: see `disconnected`).
    pub record: SessionRecord,
    /// Wall-clock time its client disconnected; `None` if it was connected when the broker
    /// stopped (its expiry then starts at the restart).
    pub disconnected: Option<SystemTime>,
    /// Its deliveries, in number order.
    pub messages: Vec<RecoveredDelivery>,
    /// Inbound QoS 2 packet identifiers awaiting PUBREL.
    pub incoming_qos2: Vec<PacketId>,
}

/// Everything a store holds, to give to [`Broker::restore`](crate::Broker::restore).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredState {
    /// Retained messages.
    pub retained: Vec<RecoveredMessage>,
    /// Persistent sessions.
    pub sessions: Vec<RecoveredSession>,
}
