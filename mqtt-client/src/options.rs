//! How a client connects: identity, protocol, session, limits.

use std::time::Duration;

use bytes::Bytes;
use mqtt_wire::{LastWill, MqttStr, ProtocolVersion};

/// The settings of a [`Client`](crate::Client), fixed for its life; each CONNECT is built
/// from them.
///
/// ```
/// use std::time::Duration;
/// use mqtt_client::Options;
/// use mqtt_wire::ProtocolVersion;
///
/// let options = Options::new("plug-7")
///     .version(ProtocolVersion::V3_1_1)
///     .clean_start(false)
///     .keep_alive(30)
///     .credentials("plug", "secret")
///     .connect_timeout(Duration::from_secs(10));
/// assert_eq!(options.client_id(), "plug-7");
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) client_id: MqttStr,
    pub(crate) version: ProtocolVersion,
    pub(crate) bridge: bool,
    pub(crate) clean_start: bool,
    pub(crate) keep_alive: u16,
    pub(crate) session_expiry_interval: u32,
    pub(crate) receive_maximum: u16,
    pub(crate) maximum_packet_size: u32,
    pub(crate) username: Option<MqttStr>,
    pub(crate) password: Option<Bytes>,
    pub(crate) will: Option<LastWill>,
    pub(crate) connect_timeout: Duration,
    pub(crate) manual_acks: bool,
}

impl Options {
    /// MQTT 5.0, clean start, keep alive 60 s, no session expiry, Receive Maximum 65,535,
    /// packets up to 256 MiB, no credentials, no will, 30 s for the CONNACK, and
    /// acknowledgements sent by the client itself.
    pub fn new(client_id: impl Into<MqttStr>) -> Self {
        Options {
            client_id: client_id.into(),
            version: ProtocolVersion::V5,
            bridge: false,
            clean_start: true,
            keep_alive: 60,
            session_expiry_interval: 0,
            receive_maximum: u16::MAX,
            maximum_packet_size: mqtt_wire::MAX_PACKET_SIZE,
            username: None,
            password: None,
            will: None,
            connect_timeout: Duration::from_secs(30),
            manual_acks: false,
        }
    }

    /// The client identifier of the CONNECT.
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// The protocol version it speaks.
    pub fn protocol_version(&self) -> ProtocolVersion {
        self.version
    }

    /// The protocol version spoken.
    pub fn version(mut self, version: ProtocolVersion) -> Self {
        self.version = version;
        self
    }

    /// Sets the bridge bit of a 3.x CONNECT (mosquitto's `try_private`): a broker that knows
    /// it treats this client as another broker's bridge (no-local, retain-as-published). Not
    /// part of the standards and ignored in 5.0, where every subscription says both.
    pub fn bridge(mut self, bridge: bool) -> Self {
        self.bridge = bridge;
        self
    }

    /// Clean Session (3.x) / Clean Start (5.0): `false` resumes the session the server keeps.
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// Keep alive in seconds; 0 disables it [MQTT5-3.1.2-20].
    pub fn keep_alive(mut self, seconds: u16) -> Self {
        self.keep_alive = seconds;
        self
    }

    /// Session Expiry Interval (5.0): how long the server keeps the session after the
    /// connection ends.
    pub fn session_expiry_interval(mut self, seconds: u32) -> Self {
        self.session_expiry_interval = seconds;
        self
    }

    /// Receive Maximum (5.0): how many QoS 1/2 messages the server may have unacknowledged
    /// towards this client at once; more is a protocol error (0x93). Zero is taken as 1.
    pub fn receive_maximum(mut self, messages: u16) -> Self {
        self.receive_maximum = messages.max(1);
        self
    }

    /// The largest packet this client accepts (announced in 5.0, enforced in every version:
    /// a larger one closes the connection).
    pub fn maximum_packet_size(mut self, bytes: u32) -> Self {
        self.maximum_packet_size = bytes.clamp(2, mqtt_wire::MAX_PACKET_SIZE);
        self
    }

    /// User name and password.
    pub fn credentials(mut self, username: impl Into<MqttStr>, password: impl Into<Bytes>) -> Self {
        self.username = Some(username.into());
        self.password = Some(password.into());
        self
    }

    /// A user name without a password.
    pub fn username(mut self, username: impl Into<MqttStr>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The will message the server publishes if the connection ends without DISCONNECT.
    pub fn will(mut self, will: LastWill) -> Self {
        self.will = Some(will);
        self
    }

    /// How long to wait for the CONNACK.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// With `true` the application sends every acknowledgement of the QoS 1/2 exchanges
    /// itself, when it has done its part: PUBACK / PUBREC with [`Client::ack`], PUBREL with
    /// [`Client::release`], PUBCOMP with [`Client::complete`]. A relay (a bridge) uses this
    /// to acknowledge one side only once the other side has acknowledged. With `false` (the
    /// default) the client answers at once.
    ///
    /// [`Client::ack`]: crate::Client::ack
    /// [`Client::release`]: crate::Client::release
    /// [`Client::complete`]: crate::Client::complete
    pub fn manual_acks(mut self, manual: bool) -> Self {
        self.manual_acks = manual;
        self
    }
}
