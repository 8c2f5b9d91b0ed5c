//! A WebSocket listener (subprotocol `mqtt`, binary messages) with a client written against
//! tungstenite, and an in-process publish through [`mqtt_tokio::ServerHandle`] reaching it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;
use futures_util::{SinkExt as _, StreamExt as _};
use mqtt_tokio::config::parse_toml;
use mqtt_wire::QoS;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Message, http};

/// MQTT 3.1.1 CONNECT, client id "ws", keep alive 60 s, clean session.
const CONNECT: &[u8] = &[
    0x10, 0x0e, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 2, b'w', b's',
];
/// SUBSCRIBE packet id 1 to "ws/+" at QoS 0.
const SUBSCRIBE: &[u8] = &[0x82, 0x09, 0, 1, 0, 4, b'w', b's', b'/', b'+', 0];

#[test]
fn mqtt_over_websocket_with_in_process_publish() {
    let server = TestServer::start(
        parse_toml("[[listener]]\nport = 0\nprotocol = \"websockets\"\nallow_anonymous = true\n")
            .expect("test setup"),
    );
    let port = server.port(0);
    let handle = server.server().handle();
    server.block_on(async move {
        let deadline = Duration::from_secs(10);
        let (mut ws, response) = ws_connect(port).await;
        // [MQTT-6.0.0-4]: the server names the subprotocol it chose.
        assert_eq!(
            response
                .headers()
                .get(http::header::SEC_WEBSOCKET_PROTOCOL)
                .expect("test setup"),
            "mqtt"
        );
        // CONNECT split across two WebSocket messages: the byte stream is what counts
        // [MQTT-6.0.0-2].
        ws_send(&mut ws, &CONNECT[..5]).await;
        ws_send(&mut ws, &CONNECT[5..]).await;
        assert_eq!(ws_expect(&mut ws, deadline).await, [0x20, 0x02, 0x00, 0x00]);
        ws_send(&mut ws, SUBSCRIBE).await;
        assert_eq!(
            ws_expect(&mut ws, deadline).await,
            [0x90, 0x03, 0x00, 0x01, 0x00]
        );
        handle
            .publish("ws/in-process", &b"hi"[..], QoS::AtMostOnce, false)
            .await
            .expect("test setup");
        let mut publish = vec![0x30, 17, 0, 13];
        publish.extend_from_slice(b"ws/in-process");
        publish.extend_from_slice(b"hi");
        assert_eq!(ws_expect(&mut ws, deadline).await, publish);
    });
}

#[test]
fn http_dir_serves_files_to_curl_and_mqtt_to_websocket_clients_on_one_port() {
    let test = "http_dir_serves_files_to_curl_and_mqtt_to_websocket_clients_on_one_port";
    if !common::have("curl", test) {
        return;
    }
    let dir = common::scratch_dir(test);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("js")).expect("test setup");
    std::fs::write(www.join("index.html"), "<h1>Tasmota dashboard</h1>\n").expect("test setup");
    std::fs::write(www.join("js/mqtt.min.js"), "/* client */\n").expect("test setup");
    std::fs::write(dir.join("secret.txt"), "not served\n").expect("test setup");
    let conf = format!(
        "listener 0 127.0.0.1\nprotocol websockets\nhttp_dir {}\nallow_anonymous true\n",
        www.display()
    );
    let loaded = mqtt_tokio::config::parse_mosquitto_conf(&conf).expect("test setup");
    let server = TestServer::start(loaded.config);
    let port = server.port(0);
    let curl = |path: &str| {
        let output = common::run(Command::new("curl").args([
            "-s",
            "-w",
            "\n%{http_code} %{content_type}",
            "--path-as-is",
            &format!("http://127.0.0.1:{port}{path}"),
        ]));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(
        curl("/"),
        "<h1>Tasmota dashboard</h1>\n\n200 text/html; charset=utf-8"
    );
    assert_eq!(
        curl("/js/mqtt.min.js"),
        "/* client */\n\n200 text/javascript; charset=utf-8"
    );
    for outside in ["/missing.html", "/../secret.txt", "/%2e%2e/secret.txt"] {
        let answer = curl(outside);
        assert!(
            answer.ends_with("404 text/plain; charset=utf-8"),
            "{outside}: {answer}"
        );
        assert!(!answer.contains("not served"), "{outside}: {answer}");
    }
    // The same port still speaks MQTT over WebSocket [MQTT-6.0.0-3].
    server.block_on(async move {
        let (mut ws, _) = ws_connect(port).await;
        ws_send(&mut ws, CONNECT).await;
        assert_eq!(
            ws_expect(&mut ws, Duration::from_secs(10)).await,
            [0x20, 0x02, 0x00, 0x00]
        );
    });
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket client on `port` offering the `mqtt` subprotocol, and the server's answer.
async fn ws_connect(port: u16) -> (Ws, http::Response<Option<Vec<u8>>>) {
    let mut request = format!("ws://127.0.0.1:{port}/mqtt")
        .into_client_request()
        .expect("test setup");
    request.headers_mut().insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static("mqtt"),
    );
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("test setup");
    tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("the upgrade is accepted")
}

async fn ws_send(ws: &mut Ws, bytes: &[u8]) {
    ws.send(Message::Binary(bytes.to_vec().into()))
        .await
        .expect("test setup");
}

async fn ws_next(ws: &mut Ws) -> Option<Vec<u8>> {
    while let Some(message) = ws.next().await {
        if let Message::Binary(bytes) = message.expect("test setup") {
            return Some(bytes.to_vec());
        }
    }
    None
}

async fn ws_expect(ws: &mut Ws, deadline: Duration) -> Vec<u8> {
    tokio::time::timeout(deadline, ws_next(ws))
        .await
        .expect("in time")
        .expect("open")
}
