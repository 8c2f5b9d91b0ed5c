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

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use mqtt_broker_core::{ConnectionId, ConnectionInfo};
use mqtt_wire::{
    Ack, ConnAck, Connect, Decoder, Disconnect, MqttStr, Packet, PacketId, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe, SubscriptionOptions,
    Unsubscribe,
};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::broker_task::{Input, Sink};
use super::write_queue::{Next, WriteQueue};
use super::{ServerError, ServerHandle};

/// The protocol a local client speaks: 5.0, for reason codes and properties.
const VERSION: ProtocolVersion = ProtocolVersion::V5;

/// How an in-process client connects: credentials for the authenticator and the capacity of
/// its delivery channel.
#[derive(Clone, Default)]
pub struct LocalConnectOptions {
    username: Option<String>,
    password: Option<Bytes>,
    identity: Option<String>,
    capacity: Option<usize>,
}

impl fmt::Debug for LocalConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalConnectOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("identity", &self.identity)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl LocalConnectOptions {
    /// Capacity of the delivery channel when none is set.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// Options without credentials (an anonymous client).
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
        let mut out = BytesMut::new();
        packet
            .encode(VERSION, &mut out)
            .map_err(|_| ServerError::InvalidTopic)?;
        let input = Input::Bytes {
            conn: self.conn,
            data: out.freeze(),
        };
        self.inputs
            .send(input)
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
/// subscriber. Dropping it without [`LocalClient::disconnect`] ends the connection abruptly
/// (its will, if it had one, would be published).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mqtt_tokio::mqtt_wire::QoS;
/// use mqtt_tokio::{LocalConnectOptions, Server};
///
/// let config = mqtt_tokio::config::parse_toml(
///     "[[listener]]\nport = 0\nbind_address = \"127.0.0.1\"\nallow_anonymous = true\n",
/// )?;
/// let server = Server::builder(config).start().await?;
/// let mut client = server.handle().connect("app", LocalConnectOptions::new()).await?;
/// client.subscribe("cmnd/#", QoS::AtLeastOnce).await?;
/// client.publish("cmnd/lamp", "on", QoS::AtLeastOnce, false).await?;
/// let message = client.recv().await.expect("delivered");
/// assert_eq!((message.topic.as_str(), &message.payload[..]), ("cmnd/lamp", &b"on"[..]));
/// client.disconnect().await?;
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LocalClient {
    shared: Arc<Shared>,
    deliveries: mpsc::Receiver<Delivery>,
}

impl ServerHandle {
    /// Connects an in-process client named `client_id` (empty: the broker assigns one), with
    /// a clean session. The authenticator decides as for any CONNECT.
    ///
    /// # Errors
    /// [`ServerError::Refused`] with the CONNACK's reason code, or [`ServerError::Stopped`].
    pub async fn connect(
        &self,
        client_id: &str,
        options: LocalConnectOptions,
    ) -> Result<LocalClient, ServerError> {
        let conn = ConnectionId(self.ids.fetch_add(1, Ordering::Relaxed));
        let mut info = ConnectionInfo::new(None);
        info.tls_identity = options.identity;
        let queue = Arc::new(WriteQueue::new(self.queue_cap));
        let open = Input::Open {
            conn,
            info: Box::new(info),
            sink: Sink::Task(queue.clone()),
        };
        self.inputs
            .send(open)
            .await
            .map_err(|_| ServerError::Stopped)?;
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

        let connect = Connect {
            protocol: VERSION,
            clean_start: true,
            keep_alive: 0,
            client_id: MqttStr::try_from(client_id.to_owned())
                .map_err(|_| ServerError::Refused(ReasonCode::ClientIdentifierNotValid))?,
            will: None,
            username: match options.username {
                Some(name) => Some(
                    MqttStr::try_from(name)
                        .map_err(|_| ServerError::Refused(ReasonCode::BadUserNameOrPassword))?,
                ),
                None => None,
            },
            password: options.password,
            properties: Properties::default(),
        };
        shared.send(&Packet::Connect(Box::new(connect))).await?;
        let connack: ConnAck = connack.await.map_err(|_| ServerError::Disconnected)?;
        if connack.reason_code.is_error() {
            return Err(ServerError::Refused(connack.reason_code));
        }
        Ok(LocalClient { shared, deliveries })
    }
}

impl LocalClient {
    /// Subscribes to `filter` with at most `qos`; returns the QoS the broker granted.
    ///
    /// # Errors
    /// [`ServerError::Refused`] with the SUBACK's reason code (e.g. `NotAuthorized`),
    /// [`ServerError::InvalidTopic`] for a filter that is not a valid string, or the
    /// connection is gone.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, ServerError> {
        let filter = MqttStr::try_from(filter.to_owned()).map_err(|_| ServerError::InvalidTopic)?;
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let (packet_id, answer) = self.shared.register()?;
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id,
            filters: vec![(filter, options)],
            properties: Properties::default(),
        });
        match self.shared.request(subscribe, packet_id, answer).await? {
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

    /// Publishes `payload` to `topic`. QoS 0 returns once the broker has the packet; QoS 1 and
    /// 2 once the broker acknowledged it (PUBACK, PUBCOMP). While the broker holds this
    /// publisher back (a subscriber queue it feeds is filling up) the call waits.
    ///
    /// # Errors
    /// [`ServerError::Refused`] with an error reason code from the broker (e.g.
    /// `NotAuthorized`), [`ServerError::InvalidTopic`], or the connection is gone.
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), ServerError> {
        let topic = MqttStr::try_from(topic.to_owned()).map_err(|_| ServerError::InvalidTopic)?;
        let publish = Publish::new(topic, payload.into()).with_retain(retain);
        self.shared.queue.gate().open().await;
        if qos == QoS::AtMostOnce {
            return self.shared.send(&Packet::Publish(publish)).await;
        }
        let (packet_id, answer) = self.shared.register()?;
        let publish = Packet::Publish(publish.with_qos(PublishQos::new(qos, packet_id)));
        match self.shared.request(publish, packet_id, answer).await? {
            Packet::PubAck(ack) | Packet::PubRec(ack) | Packet::PubComp(ack)
                if ack.reason_code.is_error() =>
            {
                Err(ServerError::Refused(ack.reason_code))
            }
            _ => Ok(()),
        }
    }

    /// The next delivered message; `None` once the connection is closed (by
    /// [`LocalClient::disconnect`], the broker, or a server shutdown) and every message
    /// delivered before has been taken.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Sends a normal DISCONNECT and waits for the broker to close the connection.
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
