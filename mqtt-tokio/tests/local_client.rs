//! In-process clients (`ServerHandle::connect`) against real TCP clients: deliveries both
//! ways, retained messages, QoS 1 acknowledgement, unsubscribe, and the application's
//! authentication and authorization hooks applied to them.

mod embed_support;

use std::time::Duration;

use embed_support::{LIMIT, Raw, id, recv, start};
use mqtt_tokio::mqtt_broker_core::hooks::{
    AuthDecision, Authenticator, Authorization, Authorizer, ClientRef, ConnectCredentials,
};
use mqtt_tokio::mqtt_wire::{Ack, Bytes, MqttStr, Packet, Publish, PublishQos, QoS, ReasonCode};
use mqtt_tokio::{LocalConnectOptions, ServerError};

#[tokio::test]
async fn a_local_subscriber_receives_from_a_tcp_publisher() {
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("local-sub", LocalConnectOptions::new())
        .await
        .unwrap();
    assert_eq!(
        local
            .subscribe("sensors/+/t", QoS::AtLeastOnce)
            .await
            .unwrap(),
        QoS::AtLeastOnce
    );
    let mut publisher = Raw::connect(&server, "tcp-pub").await;
    let publish = Publish::new(
        MqttStr::from_static("sensors/k/t"),
        Bytes::from_static(b"21.5"),
    );
    publisher.send(Packet::Publish(publish)).await;
    let got = recv(&mut local).await;
    assert_eq!(got.topic.as_str(), "sensors/k/t");
    assert_eq!(&got.payload[..], b"21.5");
    assert_eq!((got.qos, got.retain), (QoS::AtMostOnce, false));
    local.disconnect().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_local_publish_reaches_a_tcp_subscriber() {
    let server = start(|b| b).await;
    let mut subscriber = Raw::connect(&server, "tcp-sub").await;
    subscriber.subscribe("cmnd/#", QoS::AtMostOnce).await;
    let local = server
        .handle()
        .connect("local-pub", LocalConnectOptions::new())
        .await
        .unwrap();
    local
        .publish("cmnd/lamp", "on", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    match subscriber.next().await {
        Packet::Publish(p) => assert_eq!((p.topic(), p.payload()), ("cmnd/lamp", &b"on"[..])),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_retained_message_is_delivered_on_subscribe() {
    let server = start(|b| b).await;
    let mut publisher = Raw::connect(&server, "tcp-pub").await;
    let publish = Publish::new(
        MqttStr::from_static("state/door"),
        Bytes::from_static(b"open"),
    )
    .with_retain(true)
    .with_qos(PublishQos::AtLeastOnce(id(7)));
    publisher.send(Packet::Publish(publish)).await;
    assert!(matches!(publisher.next().await, Packet::PubAck(_)));
    let mut local = server
        .handle()
        .connect("late", LocalConnectOptions::new())
        .await
        .unwrap();
    local.subscribe("state/#", QoS::AtLeastOnce).await.unwrap();
    let got = recv(&mut local).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("state/door", &b"open"[..])
    );
    assert!(got.retain, "sent from the retained store [MQTT-3.3.1-8]");
    server.shutdown().await;
}

#[tokio::test]
async fn qos1_deliveries_are_acknowledged_so_the_window_keeps_moving() {
    // Receive Maximum defaults well below 300: unacknowledged deliveries would stall.
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("acker", LocalConnectOptions::new().capacity(4))
        .await
        .unwrap();
    local.subscribe("q/1", QoS::AtLeastOnce).await.unwrap();
    let mut publisher = Raw::connect(&server, "tcp-pub").await;
    let reader = tokio::spawn(async move {
        for n in 0..300u32 {
            let got = recv(&mut local).await;
            assert_eq!(got.qos, QoS::AtLeastOnce);
            assert_eq!(got.payload, Bytes::from(n.to_string()), "in order");
        }
        local
    });
    for n in 1..=300u16 {
        let publish = Publish::new(
            MqttStr::from_static("q/1"),
            Bytes::from((n - 1).to_string()),
        )
        .with_qos(PublishQos::AtLeastOnce(id(n)));
        publisher.send(Packet::Publish(publish)).await;
        match publisher.next().await {
            Packet::PubAck(ack) => assert_eq!(ack.packet_id, id(n)),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    let local = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    local.disconnect().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn qos2_both_ways() {
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("q2", LocalConnectOptions::new())
        .await
        .unwrap();
    assert_eq!(
        local.subscribe("q/2", QoS::ExactlyOnce).await.unwrap(),
        QoS::ExactlyOnce
    );
    local
        .publish("q/2", "once", QoS::ExactlyOnce, false)
        .await
        .unwrap();
    let got = recv(&mut local).await;
    assert_eq!(
        (got.qos, &got.payload[..]),
        (QoS::ExactlyOnce, &b"once"[..])
    );

    let mut publisher = Raw::connect(&server, "tcp-pub").await;
    let publish = Publish::new(MqttStr::from_static("q/2"), Bytes::from_static(b"twice?"))
        .with_qos(PublishQos::ExactlyOnce(id(3)));
    publisher.send(Packet::Publish(publish)).await;
    assert!(matches!(publisher.next().await, Packet::PubRec(_)));
    publisher.send(Packet::PubRel(Ack::new(id(3)))).await;
    assert!(matches!(publisher.next().await, Packet::PubComp(_)));
    assert_eq!(&recv(&mut local).await.payload[..], b"twice?");
    local.disconnect().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("unsub", LocalConnectOptions::new())
        .await
        .unwrap();
    local.subscribe("a/+", QoS::AtMostOnce).await.unwrap();
    local.subscribe("b", QoS::AtMostOnce).await.unwrap();
    let handle = server.handle();
    handle
        .publish("a/1", "first", QoS::AtMostOnce, false)
        .await
        .unwrap();
    assert_eq!(&recv(&mut local).await.payload[..], b"first");
    local.unsubscribe("a/+").await.unwrap();
    handle
        .publish("a/1", "second", QoS::AtMostOnce, false)
        .await
        .unwrap();
    // A later message on a topic still subscribed arrives, and nothing came before it.
    handle
        .publish("b", "marker", QoS::AtMostOnce, false)
        .await
        .unwrap();
    let got = recv(&mut local).await;
    assert_eq!(
        (got.topic.as_str(), &got.payload[..]),
        ("b", &b"marker"[..])
    );
    server.shutdown().await;
}

/// Admits `app` with password `secret`, or the identity `svc`; refuses everyone else.
struct AppAuth;

impl Authenticator for AppAuth {
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
        let by_password =
            credentials.username == Some("app") && credentials.password == Some(&b"secret"[..]);
        let by_identity = credentials.info.tls_identity.as_deref() == Some("svc");
        if by_password || by_identity {
            AuthDecision::Accept
        } else {
            AuthDecision::Reject(ReasonCode::BadUserNameOrPassword)
        }
    }
}

/// Lets `app` use only `app/#`.
struct AppAcl;

impl AppAcl {
    fn decide(client: &ClientRef<'_>, topic: &str) -> Authorization {
        if client.username != Some("app") || topic.starts_with("app/") {
            Authorization::Allow
        } else {
            Authorization::Deny(ReasonCode::NotAuthorized)
        }
    }
}

impl Authorizer for AppAcl {
    fn authorize_publish(&mut self, c: &ClientRef<'_>, t: &str, _: QoS, _: bool) -> Authorization {
        Self::decide(c, t)
    }
    fn authorize_subscribe(&mut self, c: &ClientRef<'_>, f: &str, _: QoS) -> Authorization {
        Self::decide(c, f)
    }
}

#[tokio::test]
async fn the_applications_hooks_decide_for_local_clients() {
    let server = start(|b| {
        b.authenticator(Box::new(AppAuth))
            .authorizer(Box::new(AppAcl))
    })
    .await;
    let handle = server.handle();
    let refused = handle
        .connect("x", LocalConnectOptions::new().credentials("app", "wrong"))
        .await;
    assert!(matches!(
        refused,
        Err(ServerError::Refused(ReasonCode::BadUserNameOrPassword))
    ));
    let by_identity = handle
        .connect("svc", LocalConnectOptions::new().identity("svc"))
        .await
        .unwrap();
    by_identity.disconnect().await.unwrap();

    let app = handle
        .connect(
            "app",
            LocalConnectOptions::new().credentials("app", "secret"),
        )
        .await
        .unwrap();
    assert!(matches!(
        app.subscribe("other/#", QoS::AtMostOnce).await,
        Err(ServerError::Refused(ReasonCode::NotAuthorized))
    ));
    assert!(matches!(
        app.publish("other/x", "no", QoS::AtLeastOnce, false).await,
        Err(ServerError::Refused(ReasonCode::NotAuthorized))
    ));
    app.subscribe("app/#", QoS::AtMostOnce).await.unwrap();
    app.publish("app/x", "yes", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn recv_ends_when_the_server_shuts_down() {
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("", LocalConnectOptions::new())
        .await
        .unwrap();
    tokio::time::timeout(LIMIT, server.shutdown())
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(LIMIT, local.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(local.subscribe("a", QoS::AtMostOnce).await.is_err());
}

#[tokio::test]
async fn a_local_client_that_is_not_polled_is_a_slow_subscriber() {
    let server = start(|b| b).await;
    let handle = server.handle();
    let mut slow = handle
        .connect("slow", LocalConnectOptions::new().capacity(1))
        .await
        .unwrap();
    slow.subscribe("flood", QoS::AtMostOnce).await.unwrap();
    let mut fast = handle
        .connect("fast", LocalConnectOptions::new())
        .await
        .unwrap();
    fast.subscribe("flood", QoS::AtMostOnce).await.unwrap();
    fast.subscribe("marker", QoS::AtMostOnce).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut flood = 0usize;
        while recv(&mut fast).await.topic.as_str() == "flood" {
            flood += 1;
        }
        flood
    });
    const SENT: usize = 5_000;
    let payload = Bytes::from(vec![7u8; 1024]);
    for _ in 0..SENT {
        handle
            .publish("flood", payload.clone(), QoS::AtMostOnce, false)
            .await
            .unwrap();
    }
    handle
        .publish("marker", "end", QoS::AtMostOnce, false)
        .await
        .unwrap();
    let fast_got = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    // The polled client got the marker in time: the unpolled one did not hold it back.
    assert!(fast_got > 0);
    let mut slow_got = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), slow.recv()).await {
        slow_got += 1;
    }
    // What it holds is bounded by its channel and its outbox; the rest was dropped.
    assert!(
        slow_got < SENT / 2,
        "QoS 0 beyond the outbox is dropped ({slow_got})"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_local_client_taken_over_ends_and_its_requests_fail() {
    let server = start(|b| b).await;
    let mut local = server
        .handle()
        .connect("twin", LocalConnectOptions::new())
        .await
        .unwrap();
    // A second client with the same identifier takes the session over [MQTT-3.1.4-3].
    let _tcp = Raw::connect(&server, "twin").await;
    assert!(
        tokio::time::timeout(LIMIT, local.recv())
            .await
            .unwrap()
            .is_none()
    );
    let late = tokio::time::timeout(LIMIT, local.subscribe("a", QoS::AtMostOnce)).await;
    assert!(matches!(late, Ok(Err(ServerError::Disconnected))));
    let late = tokio::time::timeout(LIMIT, local.publish("a", "x", QoS::AtMostOnce, false)).await;
    assert!(matches!(late, Ok(Err(ServerError::Disconnected))));
    server.shutdown().await;
}
