//! The embedding API seen from the application: the broker's counters and events read from a
//! running server, and the in-process client's full surface (will, persistent session, MQTT 5.0
//! properties, QoS 0/1/2 both ways, subscription options and identifiers) checked against
//! clients on real TCP sockets.

mod embed_support;

use std::time::Duration;

use embed_support::{LIMIT, Raw, id, local, recv, start};
use mqtt_tokio::mqtt_broker_core::Event;
use mqtt_tokio::mqtt_wire::{
    Bytes, MqttStr, Packet, Publish, PublishQos, QoS, ReasonCode, RetainHandling,
};
use mqtt_tokio::{
    EventRecvError, Events, LocalClient, LocalConnectOptions, LocalWill, MessageProperties,
    ServerError,
};

/// Nothing is delivered to `client` within `wait`.
async fn quiet(client: &mut LocalClient, wait: Duration) -> bool {
    tokio::time::timeout(wait, client.recv()).await.is_err()
}

/// The first event `wanted` accepts, skipping others.
async fn wait_event(events: &mut Events, wanted: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(LIMIT, async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    })
    .await
    .expect("the event in time")
}

// ---- Stats and events ------------------------------------------------------------------------

#[tokio::test]
async fn stats_and_events_of_a_running_server() {
    let server = start(|b| b).await;
    let handle = server.handle();
    let mut events = handle.subscribe_events();
    let before = handle.stats().await.expect("stats");
    assert_eq!((before.clients_connected, before.protocol_errors), (0, 0));

    let mut tcp = Raw::connect(&server, "tcp-1").await;
    let connected = wait_event(&mut events, |e| matches!(e, Event::ClientConnected { .. })).await;
    assert!(
        matches!(connected, Event::ClientConnected { client_id, session_present: false, .. } if &*client_id == "tcp-1")
    );

    let local = handle
        .connect("local-1", LocalConnectOptions::new())
        .await
        .expect("connected");
    for n in 0..3u16 {
        let publish = Publish::new(MqttStr::from_static("count/me"), Bytes::from_static(b"x"))
            .with_qos(PublishQos::AtLeastOnce(id(n + 1)));
        tcp.send(Packet::Publish(publish)).await;
        assert!(matches!(tcp.next().await, Packet::PubAck(_)));
    }
    let stats = handle.stats().await.expect("stats");
    assert_eq!(stats.clients_connected, 2);
    assert_eq!(stats.messages_received, 3);

    // A normal DISCONNECT.
    local.disconnect().await.expect("disconnected");
    let gone = wait_event(&mut events, |e| {
        matches!(e, Event::ClientDisconnected { .. })
    })
    .await;
    assert!(
        matches!(gone, Event::ClientDisconnected { client_id, reason: ReasonCode::Success, .. } if &*client_id == "local-1")
    );

    // A PUBLISH with both QoS bits set is malformed [MQTT5-3.3.1-4]: protocol error, closed.
    tcp.write(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]).await;
    let error = wait_event(&mut events, |e| matches!(e, Event::ProtocolError { .. })).await;
    assert!(matches!(error, Event::ProtocolError { .. }));
    assert!(tcp.closed_within(LIMIT).await);
    let after = handle.stats().await.expect("stats");
    assert_eq!(after.protocol_errors, 1);
    assert_eq!(after.clients_connected, 0);

    server.shutdown().await;
    // The stream ends with the server.
    let end = tokio::time::timeout(LIMIT, async {
        loop {
            if let Err(EventRecvError::Closed) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the event stream did not end");
    assert!(matches!(handle.stats().await, Err(ServerError::Stopped)));
}

#[tokio::test]
async fn a_receiver_that_does_not_read_loses_old_events_and_slows_nothing() {
    let server = start(|b| b.event_capacity(4)).await;
    let handle = server.handle();
    let mut idle = handle.subscribe_events();
    // Forty connections and disconnections (80 events and more) while `idle` reads nothing.
    tokio::time::timeout(LIMIT, async {
        for n in 0..40 {
            let client = handle
                .connect(&format!("churn-{n}"), LocalConnectOptions::new())
                .await
                .expect("connected");
            client.disconnect().await.expect("disconnected");
        }
    })
    .await
    .expect("the broker was not held up by a receiver that does not read");
    match tokio::time::timeout(LIMIT, idle.recv())
        .await
        .expect("events were kept")
    {
        Err(EventRecvError::Lagged(missed)) => assert!(missed >= 70, "missed only {missed}"),
        other => panic!("expected a lag, got {other:?}"),
    }
    // It holds no more than its capacity, then goes on with new events.
    let mut kept = 0;
    while idle.try_recv().is_ok() {
        kept += 1;
    }
    assert!(kept <= 4, "{kept} events kept");
    let _late = handle
        .connect("late", LocalConnectOptions::new())
        .await
        .expect("connected");
    wait_event(
        &mut idle,
        |e| matches!(e, Event::ClientConnected { client_id, .. } if &**client_id == "late"),
    )
    .await;
    server.shutdown().await;
}

// ---- LocalClient: will -----------------------------------------------------------------------

#[tokio::test]
async fn the_will_of_a_dropped_local_client_is_published() {
    let server = start(|b| b).await;
    let mut watcher = Raw::connect(&server, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;

    let will = LocalWill::new("wills/app", "gone")
        .qos(QoS::AtLeastOnce)
        .retain(true)
        .properties(
            MessageProperties::new()
                .content_type("text/plain")
                .user_property("why", "crash"),
        );
    let client = server
        .handle()
        .connect("app", LocalConnectOptions::new().will(will))
        .await
        .expect("connected");
    drop(client); // no DISCONNECT: the connection ends abnormally [MQTT5-3.1.2-8]
    let published = watcher.next_publish().await;
    assert_eq!(
        (published.topic(), published.payload()),
        ("wills/app", &b"gone"[..])
    );
    assert_eq!(published.qos.qos(), QoS::AtLeastOnce);
    assert_eq!(
        published
            .properties
            .content_type
            .as_ref()
            .map(MqttStr::as_str),
        Some("text/plain")
    );
    assert_eq!(
        published.properties.user_properties,
        [(MqttStr::from_static("why"), MqttStr::from_static("crash"))]
    );
    // A retained will is kept as retained [MQTT5-3.1.2-15].
    let mut late = Raw::connect(&server, "late").await;
    late.subscribe("wills/#", QoS::AtMostOnce).await;
    let retained = late.next_publish().await;
    assert!(retained.retain);
    assert_eq!(retained.payload(), b"gone");
    server.shutdown().await;
}

#[tokio::test]
async fn a_normal_disconnect_discards_the_will() {
    let server = start(|b| b).await;
    let mut watcher = Raw::connect(&server, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtMostOnce).await;
    let client = server
        .handle()
        .connect(
            "polite",
            LocalConnectOptions::new().will(LocalWill::new("wills/polite", "gone")),
        )
        .await
        .expect("connected");
    client.disconnect().await.expect("disconnected");
    // [MQTT5-3.1.2-10] removed by the 0x00 DISCONNECT: the marker published after comes first.
    server
        .handle()
        .publish("wills/marker", "after", QoS::AtMostOnce, false)
        .await
        .expect("published");
    assert_eq!(watcher.next_publish().await.topic(), "wills/marker");
    server.shutdown().await;
}

#[tokio::test]
async fn a_will_with_a_delay_waits_for_it() {
    let server = start(|b| b).await;
    let mut watcher = Raw::connect(&server, "watcher").await;
    watcher.subscribe("wills/#", QoS::AtMostOnce).await;
    let client = server
        .handle()
        .connect(
            "delayed",
            LocalConnectOptions::new()
                .session_expiry_interval(30)
                .will(LocalWill::new("wills/delayed", "late").delay_interval(1)),
        )
        .await
        .expect("connected");
    drop(client);
    // [MQTT5-3.1.2-8] published once the delay elapses, not at the close.
    assert_eq!(watcher.within(Duration::from_millis(600)).await, Ok(None));
    assert_eq!(watcher.next_publish().await.payload(), b"late");
    server.shutdown().await;
}

// ---- LocalClient: persistent session --------------------------------------------------------

#[tokio::test]
async fn a_persistent_local_session_gets_what_was_published_while_away() {
    let server = start(|b| b).await;
    let handle = server.handle();
    let options = || {
        LocalConnectOptions::new()
            .clean_start(false)
            .session_expiry_interval(60)
    };
    let first = handle
        .connect("durable", options())
        .await
        .expect("connected");
    assert!(!first.session_present(), "[MQTT5-3.1.2-6] a new session");
    first
        .subscribe("inbox/#", QoS::AtLeastOnce)
        .await
        .expect("subscribed");
    first.disconnect().await.expect("disconnected");

    // Published while it is away, by a socket client: queued for the session
    // [MQTT5-3.1.2-23].
    let mut sender = Raw::connect(&server, "sender").await;
    let publish = Publish::new(
        MqttStr::from_static("inbox/1"),
        Bytes::from_static(b"queued"),
    )
    .with_qos(PublishQos::AtLeastOnce(id(9)));
    sender.send(Packet::Publish(publish)).await;
    assert!(matches!(sender.next().await, Packet::PubAck(_)));

    // [MQTT5-3.1.2-5] resumed: the subscription is still there, the message arrives.
    let mut second = handle
        .connect("durable", options())
        .await
        .expect("reconnected");
    assert!(second.session_present());
    let got = recv(&mut second).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("inbox/1", &b"queued"[..])
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);
    // And live deliveries go on without subscribing again.
    sender
        .send(Packet::Publish(Publish::new(
            MqttStr::from_static("inbox/2"),
            Bytes::from_static(b"live"),
        )))
        .await;
    assert_eq!(recv(&mut second).await.topic.as_str(), "inbox/2");
    second.disconnect().await.expect("disconnected");

    // [MQTT5-3.1.2-4] Clean Start discards it.
    let third = handle
        .connect("durable", LocalConnectOptions::new())
        .await
        .expect("connected");
    assert!(!third.session_present());
    server.shutdown().await;
}

// ---- LocalClient: subscription options and identifiers ----------------------------------------

#[tokio::test]
async fn no_local_keeps_a_clients_own_publications_away() {
    let server = start(|b| b).await;
    let mut chat = local(&server, "chatter").await;
    chat.subscribe("chat", QoS::AtLeastOnce)
        .no_local(true)
        .await
        .expect("subscribed");
    chat.publish("chat", "mine", QoS::AtLeastOnce, false)
        .await
        .expect("published");
    let mut other = Raw::connect(&server, "other").await;
    other
        .send(Packet::Publish(Publish::new(
            MqttStr::from_static("chat"),
            Bytes::from_static(b"theirs"),
        )))
        .await;
    // [MQTT5-3.8.3-3] its own message is not forwarded to it: the other's comes first.
    assert_eq!(&recv(&mut chat).await.payload[..], b"theirs");
    assert!(quiet(&mut chat, Duration::from_millis(100)).await);
    server.shutdown().await;
}

#[tokio::test]
async fn retain_options_and_identifiers_on_local_deliveries() {
    let server = start(|b| b).await;
    let handle = server.handle();
    handle
        .publish("state/old", "before", QoS::AtMostOnce, true)
        .await
        .expect("published");
    let mut client = handle
        .connect("options", LocalConnectOptions::new())
        .await
        .expect("connected");
    // Retain Handling 2: the retained message is not sent at subscribe time.
    client
        .subscribe("state/#", QoS::AtLeastOnce)
        .retain_as_published(true)
        .retain_handling(RetainHandling::DoNotSend)
        .identifier(11)
        .await
        .expect("subscribed");
    assert!(quiet(&mut client, Duration::from_millis(100)).await);
    // Retain Handling 0 (the default): it is, with RETAIN set, and only this subscription's
    // identifier.
    client
        .subscribe("state/+", QoS::AtMostOnce)
        .identifier(12)
        .await
        .expect("subscribed");
    let got = recv(&mut client).await;
    assert_eq!((got.topic.as_str(), got.retain), ("state/old", true));
    assert_eq!(got.subscription_identifiers(), [12]);
    client
        .subscribe("plain/#", QoS::AtMostOnce)
        .await
        .expect("subscribed");

    let mut publisher = Raw::connect(&server, "publisher").await;
    let retained = Publish::new(MqttStr::from_static("state/new"), Bytes::from_static(b"on"))
        .with_retain(true)
        .with_qos(PublishQos::AtLeastOnce(id(4)));
    publisher.send(Packet::Publish(retained)).await;
    assert!(matches!(publisher.next().await, Packet::PubAck(_)));
    let got = recv(&mut client).await;
    // [MQTT5-3.3.1-13] Retain As Published on one of the matching subscriptions keeps RETAIN;
    // [MQTT5-3.3.4-2] the highest QoS; [MQTT5-3.3.4-3] both identifiers.
    assert!(got.retain);
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let mut identifiers = got.subscription_identifiers().to_vec();
    identifiers.sort_unstable();
    assert_eq!(identifiers, [11, 12]);

    // [MQTT5-3.3.1-12] without Retain As Published, a live message is forwarded with RETAIN 0.
    let retained =
        Publish::new(MqttStr::from_static("plain/x"), Bytes::from_static(b"v")).with_retain(true);
    publisher.send(Packet::Publish(retained)).await;
    let got = recv(&mut client).await;
    assert!(!got.retain);
    assert!(got.subscription_identifiers().is_empty());

    // An identifier out of range never reaches the broker.
    assert!(matches!(
        client
            .subscribe("bad/#", QoS::AtMostOnce)
            .identifier(0)
            .await,
        Err(ServerError::InvalidProperty(_))
    ));
    server.shutdown().await;
}

// ---- LocalClient: QoS and properties against socket clients ---------------------------------

#[tokio::test]
async fn every_qos_both_ways_between_a_local_and_a_socket_client() {
    let server = start(|b| b).await;
    let mut local = local(&server, "local").await;
    local
        .subscribe("to-local/#", QoS::ExactlyOnce)
        .await
        .expect("subscribed");
    let mut tcp = Raw::connect(&server, "tcp").await;
    tcp.subscribe("to-tcp/#", QoS::ExactlyOnce).await;
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        // Local to socket [MQTT5-3.3.4-1]: the socket client acknowledges as the QoS requires.
        local
            .publish(&format!("to-tcp/{n}"), "down", qos, false)
            .await
            .expect("published");
        let got = tcp.next_publish().await;
        assert_eq!(
            (got.topic(), got.qos.qos()),
            (format!("to-tcp/{n}").as_str(), qos)
        );

        // Socket to local.
        let packet_id = id(u16::try_from(n).expect("small") + 1);
        let publish = Publish::new(
            MqttStr::try_from(format!("to-local/{n}")).expect("valid"),
            Bytes::from_static(b"up"),
        )
        .with_qos(PublishQos::new(qos, packet_id));
        tcp.send(Packet::Publish(publish)).await;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => assert!(matches!(tcp.next().await, Packet::PubAck(_))),
            QoS::ExactlyOnce => {
                assert!(matches!(tcp.next().await, Packet::PubRec(_)));
                tcp.send(Packet::PubRel(mqtt_tokio::mqtt_wire::Ack::new(packet_id)))
                    .await;
                assert!(matches!(tcp.next().await, Packet::PubComp(_)));
            }
        }
        let got = recv(&mut local).await;
        assert_eq!(
            (got.topic.to_string(), got.qos),
            (format!("to-local/{n}"), qos)
        );
    }
    local.disconnect().await.expect("disconnected");
    server.shutdown().await;
}

fn all_properties() -> MessageProperties {
    MessageProperties::new()
        .payload_is_utf8(true)
        .message_expiry_interval(120)
        .content_type("application/json")
        .response_topic("replies/app")
        .correlation_data(&b"\x00req-7"[..])
        .user_property("b", "2")
        .user_property("a", "1")
        .user_property("b", "3")
}

#[tokio::test]
async fn v5_properties_of_a_local_publish_reach_a_socket_client() {
    let server = start(|b| b).await;
    let mut tcp = Raw::connect(&server, "tcp").await;
    tcp.subscribe("props/#", QoS::ExactlyOnce).await;
    let local = local(&server, "local").await;
    local
        .publish("props/1", "{\"on\":true}", QoS::ExactlyOnce, false)
        .properties(all_properties())
        .await
        .expect("published");
    let got = tcp.next_publish().await;
    assert_eq!(got.payload(), b"{\"on\":true}");
    let p = &got.properties;
    assert_eq!(p.payload_format_indicator, Some(1));
    // Forwarded with the time it waited taken off: at most what was sent.
    assert!(matches!(p.message_expiry_interval, Some(s) if (115..=120).contains(&s)));
    // [MQTT5-3.3.2-20], [MQTT5-3.3.2-15], [MQTT5-3.3.2-16] unchanged.
    assert_eq!(
        p.content_type.as_ref().map(MqttStr::as_str),
        Some("application/json")
    );
    assert_eq!(
        p.response_topic.as_ref().map(MqttStr::as_str),
        Some("replies/app")
    );
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00req-7"[..]));
    // [MQTT5-3.3.2-17], [MQTT5-3.3.2-18] all user properties, in order.
    let pairs: Vec<(&str, &str)> = p
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, [("b", "2"), ("a", "1"), ("b", "3")]);

    // A property that is not a valid MQTT string is refused before anything is sent.
    let bad = MessageProperties::new().content_type("nul\0inside");
    assert!(matches!(
        local
            .publish("props/2", "x", QoS::AtMostOnce, false)
            .properties(bad)
            .await,
        Err(ServerError::InvalidProperty("content type"))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn v5_properties_of_a_local_publish_reach_mosquitto_sub() {
    if std::process::Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("notice: mosquitto_sub is not installed; skipping");
        return;
    }
    let server = start(|b| b).await;
    let local = local(&server, "local").await;
    // Retained, so mosquitto_sub gets it whenever it subscribes.
    local
        .publish("mosq/props", "hello", QoS::AtLeastOnce, true)
        .properties(
            MessageProperties::new()
                .content_type("text/plain")
                .user_property("origin", "local"),
        )
        .await
        .expect("published");
    let port = server.local_addrs()[0].port().to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "5", "-t", "mosq/#"])
            .args(["-C", "1", "-W", "5", "-F", "%t|%p|%P|%C"])
            .output()
    })
    .await
    .expect("task")
    .expect("mosquitto_sub runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(text.trim_end(), "mosq/props|hello|origin:local|text/plain");
    server.shutdown().await;
}

// ---- ServerBuilder: core limits -----------------------------------------------------

#[tokio::test]
async fn core_limits_reach_the_broker() {
    // Not in the configuration file: the subscriptions one client may hold.
    let server = start(|b| b.core_config(|core| core.max_subscriptions_per_client = 1)).await;
    let client = local(&server, "limited").await;
    client.subscribe("a", QoS::AtMostOnce).await.expect("first");
    assert!(matches!(
        client.subscribe("b", QoS::AtMostOnce).await,
        Err(ServerError::Refused(ReasonCode::QuotaExceeded))
    ));
    // A core configuration that does not validate is refused at start.
    let config = mqtt_tokio::config::parse_toml("[[listener]]\nport = 0\n").expect("valid");
    let refused = mqtt_tokio::Server::builder(config)
        .core_config(|core| core.receive_maximum = 0)
        .start()
        .await;
    assert!(matches!(refused, Err(ServerError::Core(_))));
    server.shutdown().await;
}
