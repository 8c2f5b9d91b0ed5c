//! Shared by the embedding tests: a server on a loopback port built by the test, and a bare
//! MQTT 5.0 client over a real TCP socket that sends and reads packets encoded with `mqtt-wire`
//! (so the tests see exactly what goes over the wire, AUTH packets included).

#![allow(dead_code)]

use std::time::Duration;

use mqtt_tokio::mqtt_wire::{
    Ack, BytesMut, Connect, Decoder, MqttStr, Packet, PacketId, Properties, ProtocolVersion,
    PublishQos, QoS, Subscribe, SubscriptionOptions,
};
use mqtt_tokio::{Delivery, LocalClient, LocalConnectOptions, Server, ServerBuilder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Longest a step expected to happen may take.
pub const LIMIT: Duration = Duration::from_secs(5);

/// A server with one anonymous loopback listener on a free port, built by `builder`.
pub async fn start(builder: impl FnOnce(ServerBuilder) -> ServerBuilder) -> Server {
    let config = mqtt_tokio::config::parse_toml(
        "[[listener]]\nport = 0\nbind_address = \"127.0.0.1\"\nallow_anonymous = true\n",
    )
    .expect("valid configuration");
    builder(Server::builder(config))
        .start()
        .await
        .expect("server starts")
}

/// An in-process client `client_id` of `server` with default options (clean start).
pub async fn local(server: &Server, client_id: &str) -> LocalClient {
    server
        .handle()
        .connect(client_id, LocalConnectOptions::new())
        .await
        .expect("connected")
}

/// The next delivery to `client`, failing the test if none comes within [`LIMIT`].
pub async fn recv(client: &mut LocalClient) -> Delivery {
    tokio::time::timeout(LIMIT, client.recv())
        .await
        .expect("a delivery in time")
        .expect("connection open")
}

/// A packet identifier.
pub fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

/// A CONNECT of a v5 client with a clean start and no properties.
pub fn connect_packet(client_id: &str) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        bridge: false,
        clean_start: true,
        keep_alive: 0,
        client_id: MqttStr::try_from(client_id.to_owned()).expect("valid client id"),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

/// A bare MQTT 5.0 client over TCP.
pub struct Raw {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Raw {
    /// Opens a TCP connection to the server's first listener, sending nothing yet.
    pub async fn open(server: &Server) -> Raw {
        let stream = TcpStream::connect(server.local_addrs()[0])
            .await
            .expect("TCP connect");
        let mut decoder = Decoder::new();
        decoder.set_version(ProtocolVersion::V5);
        Raw {
            stream,
            decoder,
            buf: BytesMut::new(),
        }
    }

    /// Connects as `client_id` and checks that the CONNACK accepts.
    pub async fn connect(server: &Server, client_id: &str) -> Raw {
        let mut raw = Raw::open(server).await;
        raw.send(Packet::Connect(Box::new(connect_packet(client_id))))
            .await;
        match raw.next().await {
            Packet::ConnAck(ack) => assert!(!ack.reason_code.is_error(), "refused: {ack:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        raw
    }

    /// Writes `packet`.
    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet
            .encode(ProtocolVersion::V5, &mut out)
            .expect("encodable");
        self.write(&out).await;
    }

    /// Writes raw bytes (for malformed input).
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("written");
    }

    /// The next packet, failing the test if none comes within [`LIMIT`].
    pub async fn next(&mut self) -> Packet {
        match self.within(LIMIT).await {
            Ok(Some(packet)) => packet,
            Ok(None) => panic!("no packet within {LIMIT:?}"),
            Err(()) => panic!("the connection was closed"),
        }
    }

    /// The next packet if one comes within `wait`: `Ok(None)` if none does, `Err(())` if the
    /// server closed the connection.
    pub async fn within(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let read = async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.buf).expect("well-formed") {
                    return Ok(packet);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return Err(()),
                    Ok(_) => {}
                }
            }
        };
        match tokio::time::timeout(wait, read).await {
            Ok(Ok(packet)) => Ok(Some(packet)),
            Ok(Err(())) => Err(()),
            Err(_) => Ok(None),
        }
    }

    /// Whether the server closes the connection within `wait` (packets before the close are
    /// skipped).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.within(left).await {
                Err(()) => return true,
                Ok(None) => return false,
                Ok(Some(_)) => {}
            }
        }
    }

    /// Subscribes to `filter` with `options` and waits for the SUBACK.
    pub async fn subscribe_with(&mut self, filter: &str, options: SubscriptionOptions) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: id(1),
            filters: vec![(
                MqttStr::try_from(filter.to_owned()).expect("valid"),
                options,
            )],
            properties: Properties::default(),
        }))
        .await;
        match self.next().await {
            Packet::SubAck(ack) => assert!(!ack.reason_codes[0].is_error(), "{ack:?}"),
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Subscribes to `filter` at `qos`.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
        let options = SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        };
        self.subscribe_with(filter, options).await;
    }

    /// The next PUBLISH, acknowledged as its QoS requires (PUBACK, or PUBREC then PUBCOMP
    /// for the PUBREL).
    pub async fn next_publish(&mut self) -> mqtt_tokio::mqtt_wire::Publish {
        let publish = match self.next().await {
            Packet::Publish(publish) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        };
        match publish.qos {
            PublishQos::AtMostOnce => {}
            PublishQos::AtLeastOnce(id) => self.send(Packet::PubAck(Ack::new(id))).await,
            PublishQos::ExactlyOnce(id) => {
                self.send(Packet::PubRec(Ack::new(id))).await;
                match self.next().await {
                    Packet::PubRel(ack) => assert_eq!(ack.packet_id, id),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(Ack::new(id))).await;
            }
        }
        publish
    }
}
