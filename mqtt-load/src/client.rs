//! [`Client`]: one MQTT client connection as the load generator needs it: connect and wait for
//! the CONNACK, subscribe and wait for the SUBACK, then read raw bytes into a buffer and pull
//! packets out with `mqtt-wire`'s [`Decoder`], and write pre-encoded bytes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mqtt_wire::{
    BytesMut, Connect, Decoder, Disconnect, MqttStr, Packet, PacketId, Properties, ProtocolVersion,
    QoS, Subscribe, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::error::LoadError;

/// How long the broker may take to answer a CONNECT or SUBSCRIBE.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings shared by every client of a run.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// Broker address.
    pub addr: SocketAddr,
    /// Protocol version spoken.
    pub version: ProtocolVersion,
    /// Keep-alive announced in the CONNECT, in seconds.
    pub keep_alive: u16,
    /// Read buffer growth step: large for subscribers, small for idle connections.
    pub read_chunk: usize,
    /// Local address to connect from (any port), or `None` to let the system choose.
    pub source: Option<IpAddr>,
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    decoder: Decoder,
    input: BytesMut,
    read_chunk: usize,
    version: ProtocolVersion,
}

impl Client {
    /// Opens a TCP connection, sends a clean-start CONNECT and waits for a successful CONNACK.
    ///
    /// # Errors
    /// The connection fails, the broker refuses or answers with anything else.
    pub async fn connect(config: &ClientConfig, client_id: &str) -> Result<Self, LoadError> {
        let stream = open_stream(config).await?;
        stream.set_nodelay(true)?;
        let mut decoder = Decoder::new();
        decoder.set_version(config.version);
        let mut client = Self {
            stream,
            decoder,
            input: BytesMut::new(),
            read_chunk: config.read_chunk,
            version: config.version,
        };
        let client_id = MqttStr::try_from(client_id.to_owned())
            .map_err(|_| LoadError::Options(format!("invalid client id {client_id:?}")))?;
        let connect = Packet::Connect(Box::new(Connect {
            protocol: config.version,
            bridge: false,
            clean_start: true,
            keep_alive: config.keep_alive,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        }));
        client.send(&connect).await?;
        match client.next_packet("CONNACK").await? {
            Packet::ConnAck(ack) if ack.reason_code.is_error() => {
                Err(LoadError::Refused(ack.reason_code))
            }
            Packet::ConnAck(_) => Ok(client),
            _ => Err(LoadError::Unexpected("expected CONNACK")),
        }
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
                // Retained messages may arrive before the SUBACK; they are not part of a run.
                Packet::Publish(_) => {}
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
        Ok(())
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
        match self.stream.try_read_buf(&mut self.input) {
            Ok(0) => Err(LoadError::Closed),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e.into()),
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

    /// Gives up the protocol state and keeps only the socket (for idle connections).
    #[must_use]
    pub fn into_stream(self) -> TcpStream {
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

/// Connects to the broker, from `config.source` when one is given.
async fn open_stream(config: &ClientConfig) -> Result<TcpStream, LoadError> {
    let Some(source) = config.source else {
        return Ok(TcpStream::connect(config.addr).await?);
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket.connect(config.addr).await?)
}
