//! Broker limits and policy switches, with safe defaults.
//!
//! Every limit bounds memory or time spent on one peer. Exceeding one gets the specs' reaction
//! (a reason code, a dropped message) and a metric, never unbounded growth.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::ConfigError;
use crate::ids::ListenerId;
use crate::listener::ListenerRules;
use crate::persist::Persistence;

/// Limits and policy of a [`Broker`](crate::Broker). Build it with `Config::default()` and
/// adjust fields; [`Config::validate`] is called by [`Broker::try_new`](crate::Broker::try_new).
///
/// ```
/// use std::time::Duration;
/// use mqtt_broker_core::{Broker, Config};
///
/// let mut config = Config::default();
/// config.max_packet_size = 64 * 1024; // a Raspberry Pi's worth
/// config.max_queued_messages = 500;
/// config.sys_interval = Some(Duration::from_secs(10)); // $SYS/broker/... every 10 s
/// let broker = Broker::try_new(config)?;
/// assert_eq!(broker.config().max_queued_messages, 500);
///
/// let mut nonsense = Config::default();
/// nonsense.max_packet_size = 1; // smaller than any packet
/// assert!(Broker::try_new(nonsense).is_err());
/// # Ok::<(), mqtt_broker_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest packet accepted from a client, whole frame included (advertised to v5 clients).
    pub max_packet_size: u32,
    /// How many QoS 1/2 messages a client may have unacknowledged towards the broker (v5
    /// Receive Maximum advertised in CONNACK) and the outbound window towards 3.1/3.1.1 clients.
    pub receive_maximum: u16,
    /// Sessions kept, connected or not; a CONNECT that would create one more is refused with
    /// CONNACK 0x97 (3.x: 0x03, server unavailable).
    pub max_sessions: usize,
    /// Messages kept for one session while it cannot take them (offline or window full).
    pub max_queued_messages: usize,
    /// Payload and topic bytes kept for one session's queue.
    pub max_queued_bytes: usize,
    /// Bytes handed to the caller for one connection and not yet reported by
    /// [`Broker::handle_flushed`](crate::Broker::handle_flushed). Above it, QoS 0 is dropped and
    /// QoS 1/2 wait in the session queue.
    pub max_outbox_bytes: usize,
    /// Retained messages kept, all topics together. A retained PUBLISH to a new topic beyond it
    /// is refused (v5 PUBACK/PUBREC 0x97) and counted.
    pub max_retained_messages: usize,
    /// Topic and payload bytes of the retained messages, all topics together; a retained
    /// PUBLISH that would pass it is refused like one beyond `max_retained_messages`.
    pub max_retained_bytes: usize,
    /// Subscriptions one session may hold; more are refused with SUBACK 0x97 / 0x80.
    pub max_subscriptions_per_client: usize,
    /// Largest keep alive accepted, in seconds. A v5 client asking for more (or for none) gets
    /// this value as Server Keep Alive; a 3.x client, which cannot be told, is refused with
    /// return code 0x02. 0 means no limit.
    pub max_keep_alive: u16,
    /// Deepest topic name or filter accepted, in levels; deeper ones are refused (SUBACK failure,
    /// or DISCONNECT 0x90 for a PUBLISH).
    pub max_topic_levels: usize,
    /// Longest client identifier accepted, in bytes.
    pub max_client_id_len: usize,
    /// Longest session expiry interval, in seconds. Also the lifetime of a 3.1/3.1.1 session
    /// kept with CleanSession=0. `u32::MAX` means such sessions never expire.
    pub max_session_expiry_interval: u32,
    /// Time a new connection gets to send its CONNECT.
    pub connect_timeout: Duration,
    /// Whether retained messages are supported (advertised to v5 clients).
    pub retain_available: bool,
    /// The cluster seam: when set, the broker reports what a backplane linking several brokers
    /// needs: every message published here ([`Output::Forward`](crate::Output::Forward)), and
    /// the filters this broker has subscribers for
    /// ([`Event::InterestChanged`](crate::Event::InterestChanged)). Messages from other nodes
    /// come in through [`Broker::publish_remote`](crate::Broker::publish_remote), and a session
    /// another node took over is ended with
    /// [`Broker::session_taken_over`](crate::Broker::session_taken_over). Off by default: a
    /// single broker pays nothing for it.
    pub cluster: bool,
    /// Interval of `$SYS/broker/...` statistics messages; `None` disables them.
    pub sys_interval: Option<Duration>,
    /// Version string published in `$SYS/broker/version`.
    pub version_string: String,
    /// Whether changes of durable state are reported as [`Output::Persist`](crate::Output::Persist)
    /// and whether acknowledgements wait for them (off by default).
    pub persistence: Persistence,
    /// Longest a publisher is paused (not read from) because a connected subscriber it feeds
    /// is above half of `max_queued_messages` / `max_queued_bytes` (its queue) or of
    /// `max_outbox_bytes` (its outbox, where QoS 0 goes); it resumes as soon as that subscriber
    /// is back under a quarter. After this long the publisher resumes anyway and that
    /// subscriber drops (and counts) what does not fit until it drains. Zero disables pausing:
    /// a full queue or outbox drops at once.
    pub max_publisher_pause: Duration,
    /// Before a retained message published by a client goes to a new subscriber, ask the
    /// [`Authorizer`](crate::hooks::Authorizer) whether that publisher may still publish to its topic
    /// ([`Authorizer::authorize_retained_source`](crate::hooks::Authorizer::authorize_retained_source));
    /// if not, the message is removed instead of delivered (mosquitto's `check_retain_source`,
    /// against CVE-2018-12546); a retained will counts as published by its client. Messages
    /// without a recorded publisher (published by the embedding application, `$SYS`, restored
    /// from a store that did not record it) are delivered. On by default.
    pub check_retain_source: bool,
    /// Bytes of messages the broker may hold for delivery, all sessions and connections
    /// together (mosquitto's `memory_limit`): copies waiting in session queues plus bytes handed
    /// out and not yet flushed, a message queued for several sessions counting once per copy.
    /// At the limit new PUBLISH packets are refused (v5 PUBACK / PUBREC 0x97 Quota exceeded,
    /// QoS 0 dropped, 3.1/3.1.1 publishers of QoS 1/2 disconnected) until subscribers have taken
    /// enough. 0, the default, means no limit beyond the per-session bounds.
    pub memory_limit: usize,
    /// Largest payload of a PUBLISH routed (mosquitto's `message_size_limit`); a larger one is
    /// dropped and acknowledged, the connection kept: v5 PUBACK / PUBREC 0x83 (Implementation
    /// specific error: the PUBLISH is valid, the server is not willing to accept it), 3.1/3.1.1
    /// a plain acknowledgement (it cannot refuse), QoS 0 dropped. 0, the default, means none
    /// beyond `max_packet_size`.
    pub max_payload_size: usize,
    /// Only client identifiers starting with this are admitted (mosquitto's
    /// `clientid_prefixes`); others are refused (Not authorized).
    pub required_client_id_prefix: Option<String>,
    /// Keep QoS 0 messages for offline persistent sessions, within `max_queued_messages` and
    /// `max_queued_bytes`, and send them when the client is back, as QoS 1/2 ones are
    /// (mosquitto's `queue_qos0_messages`; MQTT 5.0 section 4.1 lets session state hold
    /// them). Off by default: QoS 0 reaches connected clients only.
    pub queue_qos0_messages: bool,
    /// Topic and payload bytes of QoS 1/2 messages a session may have sent and not yet had
    /// acknowledged (PUBACK / PUBREC); further ones wait in its queue (mosquitto's
    /// `max_inflight_bytes`). One message is always let through, however large. 0, the
    /// default, means only the client's Receive Maximum bounds the window.
    pub max_inflight_bytes: usize,
    /// Messages a second handed out as [`Output::Tap`](crate::Output::Tap), a sample of what is
    /// routed for a viewer (the rest are skipped at the cost of a comparison). 0, the default,
    /// hands out none.
    pub tap_per_second: u32,
    /// The rules of every listener not named in `listeners`: mount point, maximum QoS, topic
    /// aliases, client identifier policy.
    pub listener: ListenerRules,
    /// Rules of particular listeners, by the [`ListenerId`] the caller gives connections in
    /// [`ConnectionInfo`](crate::ConnectionInfo).
    pub listeners: BTreeMap<ListenerId, ListenerRules>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet_size: 1024 * 1024,
            receive_maximum: 32,
            max_sessions: 100_000,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_outbox_bytes: 1024 * 1024,
            max_retained_messages: 10_000,
            max_retained_bytes: 64 * 1024 * 1024,
            max_subscriptions_per_client: 256,
            max_keep_alive: 0,
            max_topic_levels: 64,
            max_client_id_len: 256,
            max_session_expiry_interval: 7 * 24 * 3600,
            connect_timeout: Duration::from_secs(10),
            retain_available: true,
            cluster: false,
            sys_interval: None,
            version_string: concat!("mqtt-broker-core ", env!("CARGO_PKG_VERSION")).to_owned(),
            persistence: Persistence::Off,
            max_publisher_pause: Duration::from_secs(2),
            check_retain_source: true,
            memory_limit: 0,
            max_payload_size: 0,
            required_client_id_prefix: None,
            queue_qos0_messages: false,
            max_inflight_bytes: 0,
            tap_per_second: 0,
            listener: ListenerRules::default(),
            listeners: BTreeMap::new(),
        }
    }
}

/// The smallest `max_packet_size` accepted, as in mosquitto.
pub(crate) const MIN_PACKET_SIZE: u32 = 20;

impl Config {
    /// The rules for connections on `listener`.
    pub fn rules(&self, listener: ListenerId) -> &ListenerRules {
        self.listeners.get(&listener).unwrap_or(&self.listener)
    }

    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let every = std::iter::once(&self.listener).chain(self.listeners.values());
        if let Some(why) = every.filter_map(ListenerRules::mount_point_error).next() {
            return Err(ConfigError::MountPoint(why));
        }
        if self.max_packet_size < MIN_PACKET_SIZE {
            return Err(ConfigError::MaxPacketSizeTooSmall(self.max_packet_size));
        }
        if self.receive_maximum == 0 {
            return Err(ConfigError::ZeroReceiveMaximum);
        }
        if self.max_outbox_bytes < self.max_packet_size as usize {
            return Err(ConfigError::OutboxSmallerThanPacket);
        }
        if self.max_topic_levels == 0 {
            return Err(ConfigError::ZeroTopicLevels);
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigError::ZeroConnectTimeout);
        }
        if matches!(self.sys_interval, Some(d) if d.is_zero()) {
            return Err(ConfigError::ZeroSysInterval);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn zero_receive_maximum_is_refused() {
        let config = Config {
            receive_maximum: 0,
            ..Config::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::ZeroReceiveMaximum));
    }

    #[test]
    fn outbox_must_hold_one_packet() {
        let config = Config {
            max_outbox_bytes: 10,
            ..Config::default()
        };
        assert_eq!(config.validate(), Err(ConfigError::OutboxSmallerThanPacket));
    }
}
