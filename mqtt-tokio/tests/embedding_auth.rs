//! Authentication decided outside the broker task, over real TCP sockets: CONNECTs whose
//! authenticator defers reach the application through `ServerBuilder::auth_requests` and are
//! answered later through the `ServerHandle` while other clients are served; the CONNECT
//! deadline still applies to them. And the MQTT 5.0 enhanced authentication exchange (a
//! SCRAM-like challenge and response in AUTH packets) end to end, with a step deferred to the
//! application as well.

mod embed_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use embed_support::{LIMIT, Raw, connect_packet, id, start};
use mqtt_tokio::mqtt_broker_core::{
    AuthRequest,
    hooks::{AuthDecision, AuthStep, Authenticator, ConnectCredentials, EnhancedAuthenticator},
};
use mqtt_tokio::mqtt_wire::{
    Auth, Bytes, MqttStr, Packet, Properties, Publish, PublishQos, QoS, ReasonCode,
};
use mqtt_tokio::{Server, ServerError};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

/// Defers the decision for user `slow`, accepts everyone else at once.
struct DeferSlow;

impl Authenticator for DeferSlow {
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
        match credentials.username {
            Some("slow") => AuthDecision::Defer,
            _ => AuthDecision::Accept,
        }
    }
}

/// Starts a server whose authenticator defers `slow`, and the receiver of its requests.
async fn deferring_server(
    connect_timeout: Option<Duration>,
) -> (Server, mpsc::Receiver<AuthRequest>) {
    let (requests, pending) = mpsc::channel(8);
    let server = start(|b| {
        let b = b.authenticator(Box::new(DeferSlow)).auth_requests(requests);
        match connect_timeout {
            Some(timeout) => b.core_config(move |core| core.connect_timeout = timeout),
            None => b,
        }
    })
    .await;
    (server, pending)
}

/// Opens a connection whose CONNECT (user `slow`) the authenticator defers.
async fn connect_slow(server: &Server, client_id: &str) -> Raw {
    let mut raw = Raw::open(server).await;
    let mut connect = connect_packet(client_id);
    connect.username = Some(MqttStr::from_static("slow"));
    connect.password = Some(Bytes::from_static(b"pw"));
    raw.send(Packet::Connect(Box::new(connect))).await;
    raw
}

async fn next_request(pending: &mut mpsc::Receiver<AuthRequest>) -> AuthRequest {
    tokio::time::timeout(LIMIT, pending.recv())
        .await
        .expect("an authentication request in time")
        .expect("the channel is open")
}

#[tokio::test]
async fn a_deferred_connect_waits_for_the_application_while_others_are_served() {
    let (server, mut pending) = deferring_server(None).await;
    let mut slow = connect_slow(&server, "slow-client").await;
    let request = next_request(&mut pending).await;
    assert_eq!(request.client_id, "slow-client");
    assert_eq!(request.username.as_deref(), Some("slow"));
    assert_eq!(request.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(request.method, None);

    // While the application looks the client up (I/O: 200 ms here, and until the test says
    // the other client is done) another client connects, subscribes and gets its own message
    // back: the broker is not held up by the decision it waits for.
    let (other_done, other_finished) = tokio::sync::oneshot::channel::<()>();
    let answered = tokio::spawn({
        let handle = server.handle();
        let conn = request.conn;
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = other_finished.await;
            let at = Instant::now();
            handle.accept_connect(conn).await.map(|()| at)
        }
    });
    let mut other = Raw::connect(&server, "other").await;
    other.subscribe("room/#", QoS::AtLeastOnce).await;
    let publish = Publish::new(MqttStr::from_static("room/1"), Bytes::from_static(b"hi"))
        .with_qos(PublishQos::AtLeastOnce(id(2)));
    other.send(Packet::Publish(publish)).await;
    let mut delivered = false;
    while !delivered {
        match other.next().await {
            Packet::Publish(p) => delivered = p.payload() == b"hi",
            Packet::PubAck(_) => {}
            unexpected => panic!("unexpected {unexpected:?}"),
        }
    }
    // No CONNACK before the answer.
    assert_eq!(slow.within(Duration::from_millis(50)).await, Ok(None));
    other_done.send(()).expect("the answering task waits");

    let accepted_at = answered.await.expect("task").expect("answer taken");
    match slow.next().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(accepted_at.elapsed() < LIMIT);
    // The accepted client is a normal client: its subscription works.
    slow.subscribe("room/#", QoS::AtMostOnce).await;
    other
        .send(Packet::Publish(Publish::new(
            MqttStr::from_static("room/2"),
            Bytes::from_static(b"welcome"),
        )))
        .await;
    match slow.next().await {
        Packet::Publish(p) => assert_eq!(p.payload(), b"welcome"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    // Answered once: a second answer is refused.
    assert!(matches!(
        server.handle().accept_connect(request.conn).await,
        Err(ServerError::AuthAnswer(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn a_deferred_connect_refused_later_gets_the_applications_reason() {
    let (server, mut pending) = deferring_server(None).await;
    let mut slow = connect_slow(&server, "refused").await;
    let request = next_request(&mut pending).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let handle = server.handle();
    tokio::spawn(async move {
        handle
            .reject_connect(request.conn, ReasonCode::NotAuthorized)
            .await
    })
    .await
    .expect("task")
    .expect("answer taken");
    match slow.next().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(slow.closed_within(LIMIT).await, "refused client not closed");
    // A refusal must carry an error code.
    let mut again = connect_slow(&server, "refused-2").await;
    let request = next_request(&mut pending).await;
    assert!(matches!(
        server
            .handle()
            .reject_connect(request.conn, ReasonCode::Success)
            .await,
        Err(ServerError::AuthAnswer(_))
    ));
    server.handle().accept_connect(request.conn).await.unwrap();
    assert!(
        matches!(again.next().await, Packet::ConnAck(ack) if ack.reason_code == ReasonCode::Success)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_deferred_connect_still_meets_its_connect_deadline() {
    // The deadline is a core limit set through `core_config` (below a second, which the
    // configuration file cannot say).
    let (server, mut pending) = deferring_server(Some(Duration::from_millis(400))).await;
    let started = Instant::now();
    let mut slow = connect_slow(&server, "never-answered").await;
    let request = next_request(&mut pending).await;
    assert!(slow.closed_within(LIMIT).await, "no deadline");
    assert!(started.elapsed() >= Duration::from_millis(350));
    // Too late: the connection is gone.
    assert!(matches!(
        server.handle().accept_connect(request.conn).await,
        Err(ServerError::AuthAnswer(_))
    ));
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_receiver_deferred_connects_are_refused_at_once() {
    let server = start(|b| b.authenticator(Box::new(DeferSlow))).await;
    let mut slow = connect_slow(&server, "nobody-asks").await;
    match slow.next().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::ServerUnavailable),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    server.shutdown().await;
}

// ---- Enhanced authentication ----------------------------------------------------------------

const METHOD: &str = "SCRAM-LIKE-SHA-256";
const PASSWORD: &str = "correct horse";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The client's proof for `nonce`: SHA-256 of the password and the nonce.
fn proof(password: &str, nonce: &str) -> String {
    hex(&Sha256::digest(format!("{password}:{nonce}").as_bytes()))
}

/// A SCRAM-like exchange: the client sends `n=<user>,r=<client nonce>`; the server answers
/// with the full nonce `r=<client nonce><server nonce>`; the client proves it knows the
/// password with `p=<proof>`; the server ends with its own signature `v=<...>`. With
/// `defer_final`, the check of the proof is left to the application.
struct ScramLike {
    /// The nonce each client must answer, by client identifier.
    nonces: HashMap<String, String>,
    counter: u32,
    defer_final: bool,
}

impl ScramLike {
    fn new(defer_final: bool) -> Self {
        ScramLike {
            nonces: HashMap::new(),
            counter: 0,
            defer_final,
        }
    }
}

impl EnhancedAuthenticator for ScramLike {
    fn supports(&self, method: &str) -> bool {
        method == METHOD
    }

    fn start(&mut self, client_id: &str, _: &str, data: Option<&[u8]>) -> AuthStep {
        let first = data.and_then(|d| std::str::from_utf8(d).ok()).unwrap_or("");
        let Some(client_nonce) = first
            .strip_prefix("n=alice,r=")
            .filter(|nonce| !nonce.is_empty())
        else {
            return AuthStep::Fail(ReasonCode::NotAuthorized);
        };
        self.counter += 1;
        let nonce = format!(
            "{client_nonce}{:08x}",
            self.counter.wrapping_mul(2_654_435_761)
        );
        self.nonces.insert(client_id.to_owned(), nonce.clone());
        AuthStep::Continue(Bytes::from(format!("r={nonce}")))
    }

    fn step(&mut self, client_id: &str, _: &str, data: Option<&[u8]>) -> AuthStep {
        if self.defer_final {
            return AuthStep::Defer;
        }
        let Some(nonce) = self.nonces.remove(client_id) else {
            return AuthStep::Fail(ReasonCode::NotAuthorized);
        };
        let expected = format!("p={}", proof(PASSWORD, &nonce));
        if data == Some(expected.as_bytes()) {
            AuthStep::Success(Some(Bytes::from(format!("v={}", proof("server", &nonce)))))
        } else {
            AuthStep::Fail(ReasonCode::NotAuthorized)
        }
    }
}

fn auth_properties(data: String) -> Properties {
    let mut properties = Properties::default();
    properties.authentication_method = Some(MqttStr::from_static(METHOD));
    properties.authentication_data = Some(Bytes::from(data));
    properties
}

/// Sends the CONNECT with the client's first message and returns the connection and the
/// server's nonce from its AUTH 0x18 challenge.
async fn scram_start(server: &Server, client_id: &str) -> (Raw, String) {
    let mut raw = Raw::open(server).await;
    let mut connect = connect_packet(client_id);
    connect.properties = auth_properties("n=alice,r=c1i2e3n4t".to_owned());
    raw.send(Packet::Connect(Box::new(connect))).await;
    let challenge = match raw.next().await {
        Packet::Auth(auth) => auth,
        other => panic!("expected AUTH, got {other:?}"),
    };
    // [MQTT5-4.12.0-2] the server asks for more with 0x18; [MQTT5-4.12.0-5] same method.
    assert_eq!(challenge.reason_code, ReasonCode::ContinueAuthentication);
    assert_eq!(
        challenge
            .properties
            .authentication_method
            .as_ref()
            .map(MqttStr::as_str),
        Some(METHOD)
    );
    let data = challenge
        .properties
        .authentication_data
        .clone()
        .expect("challenge data");
    let text = std::str::from_utf8(&data).expect("text").to_owned();
    let nonce = text.strip_prefix("r=c1i2e3n4t").map(|server_part| {
        assert!(!server_part.is_empty(), "the server adds its nonce");
        text[2..].to_owned()
    });
    (raw, nonce.expect("the nonce starts with the client's"))
}

/// The client's AUTH 0x18 answer [MQTT5-4.12.0-3].
async fn scram_answer(raw: &mut Raw, proof_text: String) {
    raw.send(Packet::Auth(Auth {
        reason_code: ReasonCode::ContinueAuthentication,
        properties: auth_properties(proof_text),
    }))
    .await;
}

#[tokio::test]
async fn enhanced_authentication_challenge_and_response_over_a_socket() {
    let server = start(|b| b.enhanced_authenticator(Box::new(ScramLike::new(false)))).await;
    let (mut raw, nonce) = scram_start(&server, "scram-ok").await;
    scram_answer(&mut raw, format!("p={}", proof(PASSWORD, &nonce))).await;
    match raw.next().await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            // [MQTT5-4.12.0-5] the successful CONNACK repeats the method, with the server's
            // final data.
            assert_eq!(
                ack.properties
                    .authentication_method
                    .as_ref()
                    .map(MqttStr::as_str),
                Some(METHOD)
            );
            let expected = format!("v={}", proof("server", &nonce));
            assert_eq!(
                ack.properties.authentication_data.as_deref(),
                Some(expected.as_bytes())
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Authenticated: it works as a client.
    raw.subscribe("secure/#", QoS::AtLeastOnce).await;
    server.shutdown().await;
}

#[tokio::test]
async fn enhanced_authentication_with_a_wrong_response_is_refused_and_closed() {
    let server = start(|b| b.enhanced_authenticator(Box::new(ScramLike::new(false)))).await;
    let (mut raw, nonce) = scram_start(&server, "scram-bad").await;
    scram_answer(&mut raw, format!("p={}", proof("wrong password", &nonce))).await;
    match raw.next().await {
        // [MQTT5-4.12.0-4] the server may refuse at any step, then closes.
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert!(raw.closed_within(LIMIT).await, "refused client not closed");
    server.shutdown().await;
}

#[tokio::test]
async fn without_an_enhanced_authenticator_a_method_is_refused() {
    // [MQTT5-4.12.0-1] unsupported method: CONNACK 0x8C.
    let server = start(|b| b).await;
    let mut raw = Raw::open(&server).await;
    let mut connect = connect_packet("no-method");
    connect.properties = auth_properties("n=alice,r=x".to_owned());
    raw.send(Packet::Connect(Box::new(connect))).await;
    match raw.next().await {
        Packet::ConnAck(ack) => assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_enhanced_authentication_step_deferred_to_the_application() {
    let (requests, mut pending) = mpsc::channel(8);
    let server = start(|b| {
        b.enhanced_authenticator(Box::new(ScramLike::new(true)))
            .auth_requests(requests)
    })
    .await;
    let (mut raw, nonce) = scram_start(&server, "scram-deferred").await;
    let good = format!("p={}", proof(PASSWORD, &nonce));
    scram_answer(&mut raw, good.clone()).await;
    let request = next_request(&mut pending).await;
    assert_eq!(request.method.as_deref(), Some(METHOD));
    assert_eq!(request.data.as_deref(), Some(good.as_bytes()));
    assert_eq!(request.client_id, "scram-deferred");
    // The application checks the proof elsewhere, then ends the exchange with its data.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server
        .handle()
        .continue_auth(
            request.conn,
            AuthStep::Success(Some(Bytes::from_static(b"v=ok"))),
        )
        .await
        .expect("answer taken");
    match raw.next().await {
        Packet::ConnAck(ack) => {
            assert_eq!(ack.reason_code, ReasonCode::Success);
            assert_eq!(
                ack.properties.authentication_data.as_deref(),
                Some(&b"v=ok"[..])
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    server.shutdown().await;
}
