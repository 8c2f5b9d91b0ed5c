//! [`Client`]: one MQTT client connection as the load generator needs it: connect (over any
//! [`Transport`]) and wait for the CONNACK, subscribe and wait for the SUBACK, then read raw
//! bytes into a buffer and pull packets out with `mqtt-wire`'s [`Decoder`], and write
//! pre-encoded bytes.

use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mqtt_wire::{
    Bytes, BytesMut, Connect, Decoder, Disconnect, MqttStr, Packet, PacketId, Properties,
    ProtocolVersion, QoS, Subscribe, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::time::Instant;

use crate::error::LoadError;
use crate::transport::{Stream, Transport};

/// How long the broker may take to accept a connection or answer a CONNECT or SUBSCRIBE.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// PINGREQ.
const PINGREQ: [u8; 2] = [0xc0, 0x00];

/// What a CONNECT carries besides the client identifier: session and credentials.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Clean Session (3.x) / Clean Start (5.0); `false` resumes a persistent session.
    pub clean_start: bool,
    /// Session Expiry Interval in seconds (5.0 only).
    pub session_expiry: Option<u32>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
}

impl Default for SessionOptions {
    /// A clean session without credentials.
    fn default() -> Self {
        Self {
            clean_start: true,
            session_expiry: None,
            username: None,
            password: None,
        }
    }
}

/// Connection settings shared by every client of a run.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Broker address.
    pub addr: SocketAddr,
    /// Broker host name, as given (the WebSocket request names it).
    pub host: Arc<str>,
    /// TCP, TLS, WebSocket or WebSocket over TLS.
    pub transport: Arc<Transport>,
    /// Session and credentials of the CONNECT.
    pub session: Arc<SessionOptions>,
    /// Protocol version spoken.
    pub version: ProtocolVersion,
    /// Keep-alive announced in the CONNECT, in seconds.
    pub keep_alive: u16,
    /// Read buffer growth step: large for subscribers, small for idle connections.
    pub read_chunk: usize,
    /// Local address to connect from (any port), or `None` to let the system choose.
    pub source: Option<IpAddr>,
}

impl ClientConfig {
    /// Plain TCP to `addr`, MQTT 3.1.1, clean session, no credentials, keep-alive 60 s.
    #[must_use]
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.ip().to_string().into(),
            transport: Arc::new(Transport::tcp()),
            session: Arc::new(SessionOptions::default()),
            version: ProtocolVersion::V3_1_1,
            keep_alive: 60,
            read_chunk: 4096,
            source: None,
        }
    }
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    decoder: Decoder,
    input: BytesMut,
    read_chunk: usize,
    version: ProtocolVersion,
    session_present: bool,
    receive_maximum: Option<u16>,
    /// PUBLISH packets that arrived while waiting for a SUBACK.
    early: Vec<Packet>,
    keep_alive: u16,
    last_write: Instant,
}

impl Client {
    /// Opens a connection, sends a CONNECT and waits for a successful CONNACK.
    ///
    /// # Errors
    /// The connection fails, the broker refuses or answers with anything else.
    pub async fn connect(config: &ClientConfig, client_id: &str) -> Result<Self, LoadError> {
        let opening = config
            .transport
            .open(&config.host, config.addr, config.source);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, opening)
            .await
            .map_err(|_| LoadError::Timeout("the connection"))??;
        let mut decoder = Decoder::new();
        decoder.set_version(config.version);
        let mut client = Self {
            stream,
            decoder,
            input: BytesMut::new(),
            read_chunk: config.read_chunk,
            version: config.version,
            session_present: false,
            receive_maximum: None,
            early: Vec::new(),
            keep_alive: config.keep_alive,
            last_write: Instant::now(),
        };
        let client_id = MqttStr::try_from(client_id.to_owned())
            .map_err(|_| LoadError::Options(format!("invalid client id {client_id:?}")))?;
        let session = &config.session;
        let username = match &session.username {
            Some(name) => Some(
                MqttStr::try_from(name.clone())
                    .map_err(|_| LoadError::Options(format!("invalid user name {name:?}")))?,
            ),
            None => None,
        };
        let mut properties = Properties::default();
        if config.version.is_v5() && session.session_expiry.is_some() {
            properties.session_expiry_interval = session.session_expiry;
        }
        let connect = Packet::Connect(Box::new(Connect {
            protocol: config.version,
            bridge: false,
            clean_start: session.clean_start,
            keep_alive: config.keep_alive,
            client_id,
            will: None,
            username,
            password: session.password.clone(),
            properties,
        }));
        client.send(&connect).await?;
        match client.next_packet("CONNACK").await? {
            Packet::ConnAck(ack) if ack.reason_code.is_error() => {
                Err(LoadError::Refused(ack.reason_code))
            }
            Packet::ConnAck(ack) => {
                client.session_present = ack.session_present;
                client.receive_maximum = ack.properties.receive_maximum;
                Ok(client)
            }
            _ => Err(LoadError::Unexpected("expected CONNACK")),
        }
    }

    /// Whether the broker resumed a session (the CONNACK's Session Present flag).
    #[must_use]
    pub const fn session_present(&self) -> bool {
        self.session_present
    }

    /// The broker's Receive Maximum (MQTT 5 CONNACK): how many QoS 1 and 2 messages this
    /// client may have unacknowledged [MQTT-3.3.4-7].
    #[must_use]
    pub const fn receive_maximum(&self) -> Option<u16> {
        self.receive_maximum
    }

    /// The PUBLISH packets that arrived before the SUBACK (retained or queued messages),
    /// handed over once.
    pub fn take_early(&mut self) -> Vec<Packet> {
        std::mem::take(&mut self.early)
    }

    /// Subscribes to one filter and waits for a granting SUBACK.
    ///
    /// # Errors
    /// The broker refuses the subscription or the connection fails.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<(), LoadError> {
        let filter = MqttStr::try_from(filter.to_owned())
            .map_err(|_| LoadError::Options(format!("invalid filter {filter:?}")))?;
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id: PacketId::MIN,
            filters: vec![(filter, options)],
            properties: Properties::default(),
        });
        self.send(&subscribe).await?;
        loop {
            match self.next_packet("SUBACK").await? {
                Packet::SubAck(ack) => {
                    return match ack.reason_codes.iter().find(|code| code.is_error()) {
                        Some(&code) => Err(LoadError::SubscribeRefused(code)),
                        None => Ok(()),
                    };
                }
                // Retained (and, in a resumed session, queued) messages may arrive before the
                // SUBACK; they are kept for the caller.
                packet @ Packet::Publish(_) => self.early.push(packet),
                _ => return Err(LoadError::Unexpected("expected SUBACK")),
            }
        }
    }

    /// The protocol version of this connection.
    #[must_use]
    pub const fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Encodes and writes one packet.
    ///
    /// # Errors
    /// Encoding or writing fails.
    pub async fn send(&mut self, packet: &Packet) -> Result<(), LoadError> {
        let mut out = BytesMut::with_capacity(packet.encoded_len(self.version));
        packet.encode(self.version, &mut out)?;
        self.write_all(&out).await
    }

    /// Writes bytes (typically a batch of pre-encoded frames).
    ///
    /// # Errors
    /// The socket fails.
    pub async fn write_all(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Sends a PINGREQ when nothing was written for three quarters of the keep-alive (the
    /// PINGRESP is read and dropped like any other packet the caller does not expect).
    ///
    /// # Errors
    /// The socket fails.
    pub async fn ping_if_due(&mut self) -> Result<(), LoadError> {
        if self.keep_alive > 0
            && self.last_write.elapsed() >= Duration::from_secs(u64::from(self.keep_alive)) * 3 / 4
        {
            self.write_all(&PINGREQ).await?;
        }
        Ok(())
    }

    /// When the next PINGREQ is due, if the keep-alive is on.
    #[must_use]
    pub fn ping_due_at(&self) -> Option<Instant> {
        (self.keep_alive > 0)
            .then(|| self.last_write + Duration::from_secs(u64::from(self.keep_alive)) * 3 / 4)
    }

    /// Writes bytes until all are written or `deadline` passes; returns how many were written
    /// (fewer than `bytes.len()` only when the deadline cut the write short).
    ///
    /// # Errors
    /// The socket fails.
    pub async fn write_until(
        &mut self,
        bytes: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<usize, LoadError> {
        let mut written = 0;
        while let Some(rest) = bytes.get(written..).filter(|rest| !rest.is_empty()) {
            match tokio::time::timeout_at(deadline, self.stream.write(rest)).await {
                Ok(Ok(0)) => return Err(LoadError::Closed),
                Ok(Ok(n)) => written += n,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        // TLS and WebSocket hold written bytes until flushed.
        if let Ok(flushed) = tokio::time::timeout_at(deadline, self.stream.flush()).await {
            flushed?;
        }
        self.last_write = Instant::now();
        Ok(written)
    }

    /// Waits for bytes and appends them to the input buffer; returns how many arrived.
    /// Cancel-safe: nothing is lost if the future is dropped.
    ///
    /// # Errors
    /// The socket fails or the broker closed it ([`LoadError::Closed`]).
    pub async fn fill(&mut self) -> Result<usize, LoadError> {
        self.reserve();
        match self.stream.read_buf(&mut self.input).await? {
            0 => Err(LoadError::Closed),
            n => Ok(n),
        }
    }

    /// Appends whatever bytes are ready without waiting; returns how many arrived (maybe 0).
    ///
    /// # Errors
    /// The socket fails or the broker closed it ([`LoadError::Closed`]).
    pub fn try_fill(&mut self) -> Result<usize, LoadError> {
        self.reserve();
        let read = pin!(self.stream.read_buf(&mut self.input));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match read.poll(&mut cx) {
            Poll::Pending => Ok(0),
            Poll::Ready(Ok(0)) => Err(LoadError::Closed),
            Poll::Ready(Ok(n)) => Ok(n),
            Poll::Ready(Err(e)) => Err(e.into()),
        }
    }

    /// The next whole packet already buffered, if any.
    ///
    /// # Errors
    /// The broker sent malformed bytes.
    #[inline]
    pub fn try_decode(&mut self) -> Result<Option<Packet>, LoadError> {
        Ok(self.decoder.decode(&mut self.input)?)
    }

    /// Reads until a whole packet arrives, waiting at most the handshake timeout.
    ///
    /// # Errors
    /// Timeout, socket failure, closed connection or malformed bytes.
    pub async fn next_packet(&mut self, what: &'static str) -> Result<Packet, LoadError> {
        let wait = async {
            loop {
                if let Some(packet) = self.try_decode()? {
                    return Ok(packet);
                }
                self.fill().await?;
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, wait)
            .await
            .map_err(|_| LoadError::Timeout(what))?
    }

    /// Sends DISCONNECT, then waits (briefly) for the broker to close the connection, so the
    /// broker's side of the socket closes first.
    ///
    /// # Errors
    /// Writing the DISCONNECT fails.
    pub async fn disconnect(mut self) -> Result<(), LoadError> {
        self.send(&Packet::Disconnect(Disconnect::default()))
            .await?;
        let drained = async {
            let mut sink = [0u8; 64];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        // A broker that keeps the socket open is not an error for the caller.
        let _ = tokio::time::timeout(Duration::from_secs(1), drained).await;
        Ok(())
    }

    /// Gives up the protocol state and keeps only the stream (for idle connections).
    #[must_use]
    pub fn into_stream(self) -> Stream {
        self.stream
    }

    /// Makes room for the next read: `read_chunk` bytes, reusing the buffer when it is empty.
    #[inline]
    fn reserve(&mut self) {
        if self.input.capacity() - self.input.len() < self.read_chunk / 4 {
            self.input.reserve(self.read_chunk);
        }
    }
}
