//! In-process clients: a [`LocalClient`] is an MQTT 5.0 client of the broker that lives in the
//! application, with no socket. It goes through the core's normal path: the broker task opens a
//! [`ConnectionId`] for it, and the client sends it encoded CONNECT, SUBSCRIBE, PUBLISH and
//! acknowledgement packets as if they had been read from a socket; so authentication, the ACL,
//! quotas and limits apply to it as to any client.
//!
//! What the broker transmits to it is taken from a write queue like a socket's by a driver
//! task, which decodes it, hands PUBLISHes to the application's bounded channel, answers QoS 1
//! and 2 deliveries (PUBACK, PUBREC, PUBCOMP) and completes the client's pending requests. It
//! reports the bytes as flushed only once their messages are in the channel, so a client the
//! application does not poll fills its outbox and is a slow subscriber like any other: QoS 0
//! messages are dropped for it, QoS 1/2 wait in its bounded session queue.
//!
//! It has what a socket client has: a will ([`LocalWill`]), a persistent session
//! ([`LocalConnectOptions::clean_start`], [`LocalConnectOptions::session_expiry_interval`]),
//! publications at any QoS with MQTT 5.0 properties ([`PublishRequest`], [`MessageProperties`])
//! and subscriptions with every subscription option and an identifier ([`SubscribeRequest`]).

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use mqtt_wire::{
    Ack, ConnAck, Connect, Decoder, Disconnect, LastWill, MqttStr, Packet, PacketId, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, RetainHandling, Subscribe,
    SubscriptionOptions, Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::input::Input;
use super::local_link::packet_input;
use super::write_queue::{Next, WriteQueue};
use super::{ServerError, ServerHandle};

/// The protocol a local client speaks: 5.0, for reason codes and properties.
const VERSION: ProtocolVersion = ProtocolVersion::V5;

/// How an in-process client connects: credentials for the authenticator, its session (clean or
/// persistent), its will, and the capacity of its delivery channel.
///
/// ```
/// use mqtt_tokio::mqtt_wire::QoS;
/// use mqtt_tokio::{LocalConnectOptions, LocalWill};
///
/// // Resume the session of an earlier connection (or start one) and keep it for an hour after
/// // the connection ends; if the connection ends without a DISCONNECT, say so.
/// let options = LocalConnectOptions::new()
///     .credentials("app", "secret")
///     .clean_start(false)
///     .session_expiry_interval(3600)
///     .will(LocalWill::new("app/status", "offline").qos(QoS::AtLeastOnce).retain(true));
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct LocalConnectOptions {
    username: Option<String>,
    password: Option<Bytes>,
    identity: Option<String>,
    capacity: Option<usize>,
    clean_start: bool,
    session_expiry_interval: u32,
    will: Option<LocalWill>,
}

impl Default for LocalConnectOptions {
    fn default() -> Self {
        LocalConnectOptions {
            username: None,
            password: None,
            identity: None,
            capacity: None,
            clean_start: true,
            session_expiry_interval: 0,
            will: None,
        }
    }
}

impl fmt::Debug for LocalConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalConnectOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("identity", &self.identity)
            .field("capacity", &self.capacity)
            .field("clean_start", &self.clean_start)
            .field("session_expiry_interval", &self.session_expiry_interval)
            .field("will", &self.will)
            .finish()
    }
}

impl LocalConnectOptions {
    /// Capacity of the delivery channel when none is set.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// Options without credentials (an anonymous client), with a clean session that ends with
    /// the connection, and no will.
    pub fn new() -> Self {
        Self::default()
    }

    /// The user name and password of the CONNECT.
    pub fn credentials(mut self, username: &str, password: impl Into<Bytes>) -> Self {
        self.username = Some(username.to_owned());
        self.password = Some(password.into());
        self
    }

    /// A user name without a password.
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    /// The identity hooks see where a TLS client's certificate name would be
    /// (`ConnectionInfo::tls_identity`).
    pub fn identity(mut self, identity: &str) -> Self {
        self.identity = Some(identity.to_owned());
        self
    }

    /// How many delivered messages wait for [`LocalClient::recv`] before the client counts as
    /// slow (at least 1).
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = Some(messages.max(1));
        self
    }

    /// Clean Start (default `true`): `false` resumes the session the broker keeps for this
    /// client identifier, with its subscriptions and the messages queued for it meanwhile
    /// ([`LocalClient::session_present`] tells whether there was one), `true` discards it.
    pub fn clean_start(mut self, clean_start: bool) -> Self {
        self.clean_start = clean_start;
        self
    }

    /// Session Expiry Interval, in seconds: how long the broker keeps the session after the
    /// connection ends (default 0: it ends with the connection; `u32::MAX`: never expires; the
    /// broker may lower it to its `max_session_expiry_interval`).
    pub fn session_expiry_interval(mut self, seconds: u32) -> Self {
        self.session_expiry_interval = seconds;
        self
    }

    /// The will: published by the broker when the connection ends without a normal
    /// [`LocalClient::disconnect`] (the client is dropped, or closed by the broker), after its
    /// delay if it has one.
    pub fn will(mut self, will: LocalWill) -> Self {
        self.will = Some(will);
        self
    }
}

/// The will of a [`LocalClient`] (see [`LocalConnectOptions::will`]).
#[derive(Debug, Clone)]
pub struct LocalWill {
    topic: String,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    delay_interval: u32,
    properties: MessageProperties,
}

impl LocalWill {
    /// A will publishing `payload` to `topic`, at QoS 0, not retained, without delay.
    pub fn new(topic: &str, payload: impl Into<Bytes>) -> Self {
        LocalWill {
            topic: topic.to_owned(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            delay_interval: 0,
            properties: MessageProperties::default(),
        }
    }

    /// Its QoS.
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Whether it is retained.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Will Delay Interval, in seconds: the broker waits this long after the connection ended
    /// (and does not publish the will if the session is resumed meanwhile).
    pub fn delay_interval(mut self, seconds: u32) -> Self {
        self.delay_interval = seconds;
        self
    }

    /// The properties the will message carries.
    pub fn properties(mut self, properties: MessageProperties) -> Self {
        self.properties = properties;
        self
    }

    fn encode(&self) -> Result<LastWill, ServerError> {
        let mut properties = self.properties.to_properties()?;
        if self.delay_interval > 0 {
            properties.will_delay_interval = Some(self.delay_interval);
        }
        Ok(LastWill {
            topic: MqttStr::try_from(self.topic.clone()).map_err(|_| ServerError::InvalidTopic)?,
            payload: self.payload.clone(),
            qos: self.qos,
            retain: self.retain,
            properties,
        })
    }
}

/// The MQTT 5.0 properties of an application message (a publication or a will), all optional:
/// the broker forwards them unchanged to the subscribers.
///
/// ```
/// use mqtt_tokio::MessageProperties;
///
/// let properties = MessageProperties::new()
///     .content_type("application/json")
///     .response_topic("replies/app")
///     .correlation_data(&b"request-7"[..])
///     .user_property("origin", "app")
///     .message_expiry_interval(60)
///     .payload_is_utf8(true);
/// # let _ = properties;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    payload_is_utf8: Option<bool>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<Bytes>,
    user_properties: Vec<(String, String)>,
}

impl MessageProperties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// Payload Format Indicator: `true` for UTF-8 text, `false` for unspecified bytes.
    pub fn payload_is_utf8(mut self, utf8: bool) -> Self {
        self.payload_is_utf8 = Some(utf8);
        self
    }

    /// Message Expiry Interval, in seconds: the message is not delivered after this long.
    pub fn message_expiry_interval(mut self, seconds: u32) -> Self {
        self.message_expiry_interval = Some(seconds);
        self
    }

    /// Content Type (a MIME type, say).
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// Response Topic, for request/response.
    pub fn response_topic(mut self, topic: &str) -> Self {
        self.response_topic = Some(topic.to_owned());
        self
    }

    /// Correlation Data, for request/response.
    pub fn correlation_data(mut self, data: impl Into<Bytes>) -> Self {
        self.correlation_data = Some(data.into());
        self
    }

    /// Adds a User Property (repeats are allowed; their order is kept).
    pub fn user_property(mut self, key: &str, value: &str) -> Self {
        self.user_properties
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// The properties as the codec writes them.
    fn to_properties(&self) -> Result<Properties, ServerError> {
        let string = |text: &String, name: &'static str| {
            MqttStr::try_from(text.clone()).map_err(|_| ServerError::InvalidProperty(name))
        };
        let mut properties = Properties::default();
        if let Some(utf8) = self.payload_is_utf8 {
            properties.payload_format_indicator = Some(u8::from(utf8));
        }
        if let Some(seconds) = self.message_expiry_interval {
            properties.message_expiry_interval = Some(seconds);
        }
        if let Some(text) = &self.content_type {
            properties.content_type = Some(string(text, "content type")?);
        }
        if let Some(topic) = &self.response_topic {
            properties.response_topic = Some(string(topic, "response topic")?);
        }
        if let Some(data) = &self.correlation_data {
            properties.correlation_data = Some(data.clone());
        }
        for (key, value) in &self.user_properties {
            let pair = (
                string(key, "user property")?,
                string(value, "user property")?,
            );
            properties.user_properties.push(pair);
        }
        Ok(properties)
    }
}

/// A message delivered to a [`LocalClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The topic it was published to.
    pub topic: MqttStr,
    /// The payload: a view into the frame the client received (the frame is reassembled from
    /// the broker's chunks once; clones share it).
    pub payload: Bytes,
    /// The QoS it was delivered with.
    pub qos: QoS,
    /// Whether it came from the retained store.
    pub retain: bool,
    /// Its MQTT 5.0 properties (user properties, content type, ...).
    pub properties: Properties,
}

impl Delivery {
    /// The identifiers of the subscriptions it matched that carry one
    /// ([`SubscribeRequest::identifier`]) [MQTT5-3.3.4-3].
    pub fn subscription_identifiers(&self) -> &[u32] {
        &self.properties.subscription_identifiers
    }
}

/// What the client and its driver task share.
#[derive(Debug)]
struct Shared {
    conn: ConnectionId,
    inputs: mpsc::Sender<Input>,
    /// Its write queue, whose read gate pauses this client's publishing.
    queue: Arc<WriteQueue>,
    pending: Mutex<Pending>,
}

/// Requests waiting for the broker's answer, by packet identifier.
#[derive(Debug, Default)]
struct Pending {
    waiting: HashMap<PacketId, oneshot::Sender<Packet>>,
    last: u16,
    /// The connection has ended: nothing will be answered any more.
    closed: bool,
}

impl Shared {
    /// Sends `packet` to the broker as this connection's input.
    async fn send(&self, packet: &Packet) -> Result<(), ServerError> {
        if self.pending.lock().map_or(true, |pending| pending.closed) {
            return Err(ServerError::Disconnected);
        }
        self.inputs
            .send(packet_input(self.conn, packet)?)
            .await
            .map_err(|_| ServerError::Stopped)
    }

    /// A free packet identifier and the receiver of the answer to it.
    fn register(&self) -> Result<(PacketId, oneshot::Receiver<Packet>), ServerError> {
        let mut pending = self.pending.lock().map_err(|_| ServerError::Disconnected)?;
        if pending.closed {
            return Err(ServerError::Disconnected);
        }
        for _ in 0..=u16::MAX {
            pending.last = pending.last.wrapping_add(1);
            if let Some(id) = PacketId::new(pending.last)
                && !pending.waiting.contains_key(&id)
            {
                let (answer, receiver) = oneshot::channel();
                pending.waiting.insert(id, answer);
                return Ok((id, receiver));
            }
        }
        Err(ServerError::Refused(ReasonCode::ReceiveMaximumExceeded))
    }

    /// Hands `answer` to whoever waits for `id`.
    fn complete(&self, id: PacketId, answer: Packet) {
        let waiter = self
            .pending
            .lock()
            .ok()
            .and_then(|mut pending| pending.waiting.remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(answer);
        }
    }

    /// The connection has ended: every waiting request fails, later ones too.
    fn close(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.closed = true;
            pending.waiting.clear();
        }
    }

    /// Sends `packet` (carrying `id`) and waits for the broker's answer to it.
    async fn request(
        &self,
        packet: Packet,
        id: PacketId,
        answer: oneshot::Receiver<Packet>,
    ) -> Result<Packet, ServerError> {
        if let Err(e) = self.send(&packet).await {
            if let Ok(mut pending) = self.pending.lock() {
                pending.waiting.remove(&id);
            }
            return Err(e);
        }
        answer.await.map_err(|_| ServerError::Disconnected)
    }
}

/// An MQTT client inside the process, made by [`ServerHandle::connect`]. Messages matching its
/// subscriptions arrive through [`LocalClient::recv`]; not calling it makes the client a slow
/// subscriber. Dropping it without [`LocalClient::disconnect`] ends the connection abruptly:
/// its will, if it has one ([`LocalConnectOptions::will`]), is published.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mqtt_tokio::mqtt_wire::QoS;
/// use mqtt_tokio::{LocalConnectOptions, MessageProperties, Server};
///
/// let config = mqtt_tokio::config::parse_toml(
///     "[[listener]]\nport = 0\nbind_address = \"127.0.0.1\"\nallow_anonymous = true\n",
/// )?;
/// let server = Server::builder(config).start().await?;
/// let mut client = server.handle().connect("app", LocalConnectOptions::new()).await?;
/// client.subscribe("cmnd/#", QoS::AtLeastOnce).identifier(7).await?;
/// client.publish("cmnd/lamp", "on", QoS::AtLeastOnce, false).await?;
/// let message = client.recv().await.expect("delivered");
/// assert_eq!((message.topic.as_str(), &message.payload[..]), ("cmnd/lamp", &b"on"[..]));
/// assert_eq!(message.subscription_identifiers(), [7]);
/// // With MQTT 5.0 properties:
/// let json = MessageProperties::new().content_type("application/json");
/// client.publish("cmnd/lamp", "{}", QoS::AtMostOnce, false).properties(json).await?;
/// let message = client.recv().await.expect("delivered");
/// assert_eq!(message.properties.content_type.as_ref().map(|t| t.as_str()), Some("application/json"));
/// client.disconnect().await?;
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LocalClient {
    shared: Arc<Shared>,
    deliveries: mpsc::Receiver<Delivery>,
    session_present: bool,
    client_id: MqttStr,
}

impl ServerHandle {
    /// Connects an in-process client named `client_id` (empty: the broker assigns one) with
    /// `options`: a clean session unless [`LocalConnectOptions::clean_start`] says otherwise.
    /// The authenticator decides as for any CONNECT (a deferred decision is waited for).
    ///
    /// # Errors
    /// [`ServerError::Refused`] with the CONNACK's reason code, [`ServerError::InvalidTopic`]
    /// or [`ServerError::InvalidProperty`] for an unusable will, or [`ServerError::Stopped`].
    pub async fn connect(
        &self,
        client_id: &str,
        options: LocalConnectOptions,
    ) -> Result<LocalClient, ServerError> {
        let client_id = MqttStr::try_from(client_id.to_owned())
            .map_err(|_| ServerError::Refused(ReasonCode::ClientIdentifierNotValid))?;
        let username = match options.username {
            Some(name) => Some(
                MqttStr::try_from(name)
                    .map_err(|_| ServerError::Refused(ReasonCode::BadUserNameOrPassword))?,
            ),
            None => None,
        };
        let will = options.will.as_ref().map(LocalWill::encode).transpose()?;
        let mut properties = Properties::default();
        if options.session_expiry_interval > 0 {
            properties.session_expiry_interval = Some(options.session_expiry_interval);
        }
        let connect = Connect {
            protocol: VERSION,
            bridge: false,
            clean_start: options.clean_start,
            keep_alive: 0,
            client_id: client_id.clone(),
            will,
            username,
            password: options.password,
            properties,
        };

        let mut info = ConnectionInfo::new(None);
        info.tls_identity = options.identity;
        let (conn, queue) = self.open_in_process(info).await?;
        let shared = Arc::new(Shared {
            conn,
            inputs: self.inputs.clone(),
            queue: queue.clone(),
            pending: Mutex::default(),
        });
        let capacity = options
            .capacity
            .unwrap_or(LocalConnectOptions::DEFAULT_CAPACITY);
        let (deliver, deliveries) = mpsc::channel(capacity);
        let (connack_sender, connack) = oneshot::channel();
        tokio::spawn(drive(shared.clone(), queue, deliver, connack_sender));

        shared.send(&Packet::Connect(Box::new(connect))).await?;
        let connack: ConnAck = connack.await.map_err(|_| ServerError::Disconnected)?;
        if connack.reason_code.is_error() {
            return Err(ServerError::Refused(connack.reason_code));
        }
        let client_id = connack
            .properties
            .assigned_client_identifier
            .clone()
            .unwrap_or(client_id);
        Ok(LocalClient {
            shared,
            deliveries,
            session_present: connack.session_present,
            client_id,
        })
    }
}

impl LocalClient {
    /// Whether the broker resumed a session it kept for this client identifier (only with
    /// [`LocalConnectOptions::clean_start`] `false`) [MQTT5-3.2.2-2].
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// The client identifier: the one given, or the one the broker assigned.
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// Subscribes to `filter` with at most `qos`; awaiting the request returns the QoS the
    /// broker granted. The other subscription options and a subscription identifier are set
    /// on the [`SubscribeRequest`] before awaiting it:
    ///
    /// ```
    /// # async fn demo(client: &mqtt_tokio::LocalClient) -> Result<(), mqtt_tokio::ServerError> {
    /// use mqtt_tokio::mqtt_wire::{QoS, RetainHandling};
    /// client
    ///     .subscribe("chat/#", QoS::ExactlyOnce)
    ///     .no_local(true)
    ///     .retain_as_published(true)
    ///     .retain_handling(RetainHandling::DoNotSend)
    ///     .identifier(42)
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`ServerError::Refused`] with the SUBACK's reason code (e.g. `NotAuthorized`),
    /// [`ServerError::InvalidTopic`] for a filter that is not a valid string,
    /// [`ServerError::InvalidProperty`] for an identifier out of 1..=268,435,455, or the
    /// connection is gone.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> SubscribeRequest<'_> {
        SubscribeRequest {
            shared: &self.shared,
            filter: MqttStr::try_from(filter.to_owned()).map_err(|_| ServerError::InvalidTopic),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            identifier: None,
        }
    }

    /// Removes the subscription to `filter`.
    ///
    /// # Errors
    /// [`ServerError::Refused`] with the UNSUBACK's error reason code (e.g.
    /// `NoSubscriptionExisted` is not an error and returns `Ok`), or the connection is gone.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ServerError> {
        let filter = MqttStr::try_from(filter.to_owned()).map_err(|_| ServerError::InvalidTopic)?;
        let (packet_id, answer) = self.shared.register()?;
        let unsubscribe = Packet::Unsubscribe(Unsubscribe {
            packet_id,
            filters: vec![filter],
            properties: Properties::default(),
        });
        match self.shared.request(unsubscribe, packet_id, answer).await? {
            Packet::UnsubAck(ack) => match ack.reason_codes.first() {
                Some(code) if code.is_error() => Err(ServerError::Refused(*code)),
                _ => Ok(()),
            },
            _ => Err(ServerError::Refused(ReasonCode::ProtocolError)),
        }
    }

    /// Publishes `payload` to `topic`; awaiting the request sends it. QoS 0 completes once
    /// the broker has the packet; QoS 1 and 2 once the broker acknowledged it (PUBACK,
    /// PUBCOMP). While the broker holds this publisher back (a subscriber queue it feeds is
    /// filling up) it waits. MQTT 5.0 properties are set on the [`PublishRequest`] before
    /// awaiting it ([`PublishRequest::properties`]).
    ///
    /// # Errors
    /// [`ServerError::Refused`] with an error reason code from the broker (e.g.
    /// `NotAuthorized`), [`ServerError::InvalidTopic`], [`ServerError::InvalidProperty`], or
    /// the connection is gone.
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> PublishRequest<'_> {
        PublishRequest {
            shared: &self.shared,
            topic: MqttStr::try_from(topic.to_owned()).map_err(|_| ServerError::InvalidTopic),
            payload: payload.into(),
            qos,
            retain,
            properties: None,
        }
    }

    /// The next delivered message; `None` once the connection is closed (by
    /// [`LocalClient::disconnect`], the broker, or a server shutdown) and every message
    /// delivered before has been taken.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Sends a normal DISCONNECT (the will is discarded) and waits for the broker to close the
    /// connection. A session with an expiry interval is kept.
    ///
    /// # Errors
    /// The connection was already closed ([`ServerError::Disconnected`]) or the server has
    /// stopped.
    pub async fn disconnect(mut self) -> Result<(), ServerError> {
        let disconnect = Disconnect {
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        };
        self.shared.send(&Packet::Disconnect(disconnect)).await?;
        while self.deliveries.recv().await.is_some() {}
        Ok(())
    }
}

/// A publication of a [`LocalClient`] ([`LocalClient::publish`]), sent when awaited.
#[must_use = "nothing is published until the request is awaited"]
#[derive(Debug)]
pub struct PublishRequest<'a> {
    shared: &'a Shared,
    topic: Result<MqttStr, ServerError>,
    payload: Bytes,
    qos: QoS,
    retain: bool,
    properties: Option<MessageProperties>,
}

impl PublishRequest<'_> {
    /// The MQTT 5.0 properties the message carries to its subscribers.
    pub fn properties(mut self, properties: MessageProperties) -> Self {
        self.properties = Some(properties);
        self
    }

    async fn send(self) -> Result<(), ServerError> {
        let properties = match &self.properties {
            Some(properties) => properties.to_properties()?,
            None => Properties::default(),
        };
        let publish = Publish::new(self.topic?, self.payload)
            .with_retain(self.retain)
            .with_properties(properties);
        let shared = self.shared;
        shared.queue.gate().open().await;
        if self.qos == QoS::AtMostOnce {
            return shared.send(&Packet::Publish(publish)).await;
        }
        let (packet_id, answer) = shared.register()?;
        let publish = Packet::Publish(publish.with_qos(PublishQos::new(self.qos, packet_id)));
        match shared.request(publish, packet_id, answer).await? {
            Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubComp(ack)
                if ack.reason_code.is_error() =>
            {
                Err(ServerError::Refused(ack.reason_code))
            }
            _ => Ok(()),
        }
    }
}

impl<'a> IntoFuture for PublishRequest<'a> {
    type Output = Result<(), ServerError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<(), ServerError>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// A subscription of a [`LocalClient`] ([`LocalClient::subscribe`]), sent when awaited; the
/// result is the QoS granted.
#[must_use = "nothing is subscribed until the request is awaited"]
#[derive(Debug)]
pub struct SubscribeRequest<'a> {
    shared: &'a Shared,
    filter: Result<MqttStr, ServerError>,
    options: SubscriptionOptions,
    identifier: Option<u32>,
}

impl SubscribeRequest<'_> {
    /// No Local: messages this client publishes are not delivered back to it through this
    /// subscription [MQTT5-3.8.3-3] (not allowed on a shared subscription).
    pub fn no_local(mut self, no_local: bool) -> Self {
        self.options.no_local = no_local;
        self
    }

    /// Retain As Published: deliveries keep the RETAIN flag they were published with
    /// [MQTT5-3.3.1-13] (otherwise it is cleared, except for retained messages sent at
    /// subscribe time [MQTT5-3.3.1-12]).
    pub fn retain_as_published(mut self, retain_as_published: bool) -> Self {
        self.options.retain_as_published = retain_as_published;
        self
    }

    /// Retain Handling: whether retained messages are sent at subscribe time.
    pub fn retain_handling(mut self, retain_handling: RetainHandling) -> Self {
        self.options.retain_handling = retain_handling;
        self
    }

    /// Subscription Identifier (1..=268,435,455), carried by the deliveries this subscription
    /// matches ([`Delivery::subscription_identifiers`]).
    pub fn identifier(mut self, identifier: u32) -> Self {
        self.identifier = Some(identifier);
        self
    }

    async fn send(self) -> Result<QoS, ServerError> {
        /// The largest Subscription Identifier (a Variable Byte Integer).
        const MAX_IDENTIFIER: u32 = 268_435_455;
        let filter = self.filter?;
        let mut properties = Properties::default();
        if let Some(identifier) = self.identifier {
            if !(1..=MAX_IDENTIFIER).contains(&identifier) {
                return Err(ServerError::InvalidProperty("subscription identifier"));
            }
            properties.subscription_identifiers.push(identifier);
        }
        let shared = self.shared;
        let (packet_id, answer) = shared.register()?;
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![(filter, self.options)],
            properties,
        });
        match shared.request(subscribe, packet_id, answer).await? {
            Packet::SubAck(ack) => match ack.reason_codes.first() {
                Some(ReasonCode::Success) => Ok(QoS::AtMostOnce),
                Some(ReasonCode::GrantedQoS1) => Ok(QoS::AtLeastOnce),
                Some(ReasonCode::GrantedQoS2) => Ok(QoS::ExactlyOnce),
                Some(refused) => Err(ServerError::Refused(*refused)),
                None => Err(ServerError::Refused(ReasonCode::ProtocolError)),
            },
            _ => Err(ServerError::Refused(ReasonCode::ProtocolError)),
        }
    }
}

impl<'a> IntoFuture for SubscribeRequest<'a> {
    type Output = Result<QoS, ServerError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<QoS, ServerError>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// Takes what the broker transmits to the client until the connection ends, then reports it
/// closed.
async fn drive(
    shared: Arc<Shared>,
    queue: Arc<WriteQueue>,
    deliver: mpsc::Sender<Delivery>,
    connack: oneshot::Sender<ConnAck>,
) {
    let mut connack = Some(connack);
    let mut decoder = Decoder::new();
    decoder.set_version(VERSION);
    let mut buf = BytesMut::new();
    loop {
        let mut batch: Vec<Bytes> = Vec::new();
        let next = tokio::select! {
            next = queue.next(&mut batch) => next,
            () = deliver.closed() => break, // the application dropped the client
        };
        if next == Next::Close {
            break;
        }
        let bytes: usize = batch.iter().map(Bytes::len).sum();
        batch.iter().for_each(|chunk| buf.extend_from_slice(chunk));
        if !take_packets(&shared, &mut decoder, &mut buf, &deliver, &mut connack).await {
            break;
        }
        let flushed = Input::Flushed {
            conn: shared.conn,
            bytes,
        };
        if shared.inputs.send(flushed).await.is_err() {
            break;
        }
    }
    debug!(conn = %shared.conn, "local client closed");
    shared.close();
    let _ = shared
        .inputs
        .send(Input::Closed { conn: shared.conn })
        .await;
}

/// Handles every whole packet in `buf`; `false` when the connection must end.
async fn take_packets(
    shared: &Shared,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    deliver: &mpsc::Sender<Delivery>,
    connack: &mut Option<oneshot::Sender<ConnAck>>,
) -> bool {
    loop {
        let packet = match decoder.decode(buf) {
            Ok(Some(packet)) => packet,
            Ok(None) => return true,
            Err(error) => {
                debug!(conn = %shared.conn, %error, "undecodable bytes for a local client");
                return false;
            }
        };
        let reply = match packet {
            Packet::Publish(publish) => {
                let qos = publish.qos;
                let delivery = Delivery {
                    topic: publish.topic_str(),
                    qos: qos.qos(),
                    retain: publish.retain,
                    properties: publish.properties.clone(),
                    payload: publish.into_payload(),
                };
                if deliver.send(delivery).await.is_err() {
                    return false;
                }
                match qos {
                    PublishQos::AtMostOnce => None,
                    PublishQos::AtLeastOnce(id) => Some(Packet::PubAck(Ack::new(id))),
                    PublishQos::ExactlyOnce(id) => Some(Packet::PubRec(Ack::new(id))),
                }
            }
            Packet::PubRel(ack) => Some(Packet::PubComp(Ack::new(ack.packet_id))),
            Packet::PubRec(ack) if !ack.reason_code.is_error() => {
                Some(Packet::PubRel(Ack::new(ack.packet_id)))
            }
            Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubComp(ack) => {
                shared.complete(ack.packet_id, Packet::PubAck(ack));
                None
            }
            Packet::SubAck(ack) => {
                shared.complete(ack.packet_id, Packet::SubAck(ack));
                None
            }
            Packet::UnsubAck(ack) => {
                shared.complete(ack.packet_id, Packet::UnsubAck(ack));
                None
            }
            Packet::ConnAck(ack) => {
                if let Some(waiter) = connack.take() {
                    let _ = waiter.send(ack);
                }
                None
            }
            Packet::Disconnect(disconnect) => {
                debug!(conn = %shared.conn, reason = ?disconnect.reason_code, "broker disconnected a local client");
                None
            }
            _ => None,
        };
        if let Some(reply) = reply
            && shared.send(&reply).await.is_err()
        {
            return false;
        }
    }
}
