//! A Rust client library we did not write, rumqttc, against the server: MQTT 5.0 QoS 2 both
//! ways (PUBLISH/PUBREC/PUBREL/PUBCOMP), QoS 1, retained messages, subscription identifiers
//! passed through, and DISCONNECT 0x8B when the server shuts down gracefully.

use std::time::Duration;

use mqtt_tokio::Server;
use mqtt_tokio::config::ServerConfig;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

async fn start_server() -> Server {
    let mut config = ServerConfig::default();
    config.add_local_listener(0);
    Server::builder(config)
        .start()
        .await
        .expect("server starts")
}

fn client(id: &str, port: u16) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    AsyncClient::new(options, 64)
}

/// Polls `events` until `wanted` picks something out of an incoming packet.
async fn next_incoming<T>(
    events: &mut EventLoop,
    mut wanted: impl FnMut(Packet) -> Option<T>,
) -> T {
    timeout(LIMIT, async {
        loop {
            match events.poll().await.expect("connection stays up") {
                Event::Incoming(packet) => {
                    if let Some(found) = wanted(packet) {
                        return found;
                    }
                }
                Event::Outgoing(_) => {}
            }
        }
    })
    .await
    .expect("expected packet within the limit")
}

fn publish_of(packet: Packet) -> Option<Publish> {
    match packet {
        Packet::Publish(publish) => Some(publish),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_both_ways_with_rumqttc_v5() {
    let server = start_server().await;
    let port = server.local_addrs()[0].port();

    let (subscriber, mut sub_events) = client("rumqttc-sub", port);
    subscriber
        .subscribe("stat/+/POWER", QoS::ExactlyOnce)
        .await
        .expect("queued");
    next_incoming(&mut sub_events, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;

    let (publisher, mut pub_events) = client("rumqttc-pub", port);
    for n in 0..20 {
        publisher
            .publish(
                "stat/tasmota/POWER",
                QoS::ExactlyOnce,
                false,
                format!("ON {n}"),
            )
            .await
            .expect("queued");
    }
    // The publisher's side of exactly-once: every PUBLISH completes with PUBCOMP.
    let pub_driver = tokio::spawn(async move {
        let mut completed = 0;
        while completed < 20 {
            next_incoming(&mut pub_events, |p| {
                matches!(p, Packet::PubComp(_)).then_some(())
            })
            .await;
            completed += 1;
        }
        pub_events
    });

    // The subscriber's side: each message exactly once, in order, at QoS 2 [MQTT-4.6.0-6].
    for n in 0..20 {
        let message = next_incoming(&mut sub_events, publish_of).await;
        assert_eq!(message.qos, QoS::ExactlyOnce);
        assert_eq!(&message.topic[..], b"stat/tasmota/POWER");
        assert_eq!(message.payload, format!("ON {n}").as_bytes());
    }
    timeout(LIMIT, pub_driver)
        .await
        .expect("publisher completes")
        .expect("driver task");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_qos1_and_subscription_identifier_with_rumqttc_v5() {
    let server = start_server().await;
    let port = server.local_addrs()[0].port();

    let (publisher, mut pub_events) = client("rumqttc-retain", port);
    publisher
        .publish("tele/tasmota/LWT", QoS::AtLeastOnce, true, "Online")
        .await
        .expect("queued");
    next_incoming(&mut pub_events, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;

    // A late subscriber gets the retained state with RETAIN set [MQTT-3.3.1-6 (5.0)] and the
    // subscription identifier it chose [MQTT-3.3.4-3 (5.0)].
    let (subscriber, mut sub_events) = client("rumqttc-late", port);
    let properties = rumqttc::v5::mqttbytes::v5::SubscribeProperties {
        id: Some(7),
        user_properties: Vec::new(),
    };
    subscriber
        .subscribe_with_properties("tele/+/LWT", QoS::AtLeastOnce, properties)
        .await
        .expect("queued");
    let message = next_incoming(&mut sub_events, publish_of).await;
    assert!(message.retain);
    assert_eq!(message.payload, "Online".as_bytes());
    let ids = message
        .properties
        .map(|p| p.subscription_identifiers)
        .unwrap_or_default();
    assert_eq!(ids, vec![7]);
    server.shutdown().await;
}

/// Checked with a raw socket: rumqttc reports the end of the connection before the DISCONNECT
/// it read in the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_clients_get_disconnect_0x8b_on_graceful_shutdown() {
    use mqtt_tokio::mqtt_wire::{BytesMut, Decoder, Packet as WirePacket, ReasonCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start_server().await;
    let port = server.local_addrs()[0].port();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // MQTT 5.0 CONNECT, client id "sd", clean start, keep alive 30 s, no properties.
    let connect = [
        0x10, 0x0f, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 0, 0, 2, b's', b'd',
    ];
    socket.write_all(&connect).await.expect("send CONNECT");

    let mut decoder = Decoder::new();
    decoder.set_version(mqtt_tokio::mqtt_wire::ProtocolVersion::V5);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let mut server = Some(server);
    let mut stopping = None;
    timeout(LIMIT, async {
        loop {
            while let Some(packet) = decoder.decode(&mut buf).expect("valid server bytes") {
                packets.push(packet);
            }
            // Shut down once the client is connected (its CONNACK is in).
            if !packets.is_empty()
                && let Some(server) = server.take()
            {
                stopping = Some(tokio::spawn(server.shutdown()));
            }
            if socket.read_buf(&mut buf).await.expect("read") == 0 {
                return;
            }
        }
    })
    .await
    .expect("the server closes the connection");
    assert!(
        matches!(packets.first(), Some(WirePacket::ConnAck(_))),
        "{packets:?}"
    );
    // [MQTT-3.14.2-1 (5.0)]: the reason code tells the client why.
    let Some(WirePacket::Disconnect(disconnect)) = packets.last() else {
        panic!("expected DISCONNECT last, got {packets:?}");
    };
    assert_eq!(disconnect.reason_code, ReasonCode::ServerShuttingDown);
    if let Some(stopping) = stopping.take() {
        timeout(LIMIT, stopping)
            .await
            .expect("server stops")
            .expect("shutdown task");
    }
}
