//! Errors, split by who is to blame.
//!
//! Malformed bytes from a peer are the codec's `DecodeError`; a well-formed packet that is illegal
//! now is a [`ProtocolViolation`] (it names its spec statement and the reason code that goes on the
//! wire). Neither is ever returned to the caller: both become DISCONNECT bytes and a close. Only
//! caller mistakes ([`ApiMisuse`]) and bad limits ([`ConfigError`]) are returned as `Err`.

use mqtt_wire::ReasonCode;

/// A packet that decoded fine but is not allowed at this point of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("protocol violation [{spec_id}]: {what}")]
#[non_exhaustive]
pub struct ProtocolViolation {
    /// The normative statement broken, e.g. `MQTT-3.1.0-2`.
    pub spec_id: &'static str,
    /// A short description for logs.
    pub what: &'static str,
    /// The reason code sent in the DISCONNECT (v5).
    pub reason: ReasonCode,
}

impl ProtocolViolation {
    /// Creates a violation of `spec_id` answered with `reason`.
    pub const fn new(spec_id: &'static str, what: &'static str, reason: ReasonCode) -> Self {
        ProtocolViolation {
            spec_id,
            what,
            reason,
        }
    }
}

/// A mistake by the code driving the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// `handle_open` was given an id that is already open.
    #[error("connection id {0} is already open")]
    ConnectionAlreadyOpen(u64),
    /// The connection id is not open.
    #[error("connection id {0} is not open")]
    UnknownConnection(u64),
    /// `accept_connect` / `reject_connect` for a connection that has no pending decision.
    #[error("connection id {0} has no pending authentication decision")]
    NoPendingAuthentication(u64),
    /// `continue_auth` asked to continue a connection that uses no authentication method.
    #[error("connection id {0} uses no authentication method to continue")]
    NoAuthenticationMethod(u64),
    /// `reject_connect` was given a reason code that is not an error.
    #[error("reason code {0:?} is not a failure code")]
    NotAFailureReason(ReasonCode),
    /// `handle_flushed` reported more bytes than were handed out.
    #[error("connection id {0} flushed more bytes than it was given")]
    FlushedTooMuch(u64),
    /// An in-process publish named an invalid topic.
    #[error("invalid topic name for an in-process publish")]
    InvalidTopic,
    /// `handle_persisted` named a batch that was never handed out.
    #[error("persistence batch {0} was never handed out")]
    UnknownPersistBatch(u64),
}

/// Limits that do not make sense together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Maximum packet size below 20 bytes (mosquitto's floor: smaller than a useful CONNECT).
    #[error("max_packet_size {0} is below 20 bytes")]
    MaxPacketSizeTooSmall(u32),
    /// Receive maximum of zero (forbidden by MQTT 5.0).
    #[error("receive_maximum must be at least 1")]
    ZeroReceiveMaximum,
    /// The outbox cannot hold one maximum-size packet.
    #[error("max_outbox_bytes must be at least max_packet_size")]
    OutboxSmallerThanPacket,
    /// No topic would be accepted.
    #[error("max_topic_levels must be at least 1")]
    ZeroTopicLevels,
    /// A connection would be closed before it could send CONNECT.
    #[error("connect_timeout must be above zero")]
    ZeroConnectTimeout,
    /// `$SYS` interval of zero.
    #[error("sys_interval must be above zero")]
    ZeroSysInterval,
    /// A listener's mount point cannot prefix topics.
    #[error("mount_point: {0}")]
    MountPoint(&'static str),
}
