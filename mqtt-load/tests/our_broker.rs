//! The modes of `mqtt-load` against our own broker (mqtt-tokio, in this process) over real
//! loopback sockets: QoS 2 publish/subscribe losing nothing, persistent MQTT 5 sessions, the
//! keep-alive pings of `conn`, topic templates, a fixed scenario over WebSocket, TLS session
//! resumption on and off, the JSON summary and refused options.

mod common;

use common::{OurBroker, TempDir, have, load, make_certificates, subscribed};

/// A plain listener, then a WebSocket one.
const LISTENERS: &str = "[[listener]]\nport = 0\nallow_anonymous = true\n\
                         [[listener]]\nport = 0\nprotocol = \"websockets\"\nallow_anonymous = true\n";

#[test]
fn qos2_pub_and_sub_lose_nothing_and_report_latency_as_json() {
    let broker = OurBroker::start(LISTENERS);
    let port = broker.port(0);
    let dir = TempDir::new("json");
    let json_file = dir.file("pub.json");
    let sub = subscribed(&[
        "sub",
        "--port",
        &port,
        "-c",
        "2",
        "-q",
        "2",
        "-t",
        "q2/#",
        "--count",
        "600",
        "--duration",
        "20",
        "--json",
    ]);
    let publisher = load(&[
        "pub",
        "--port",
        &port,
        "-c",
        "3",
        "-q",
        "2",
        "-t",
        "q2/%i",
        "--count",
        "200",
        "--rate",
        "0",
        "--window",
        "16",
        "--quiet",
        "--json-file",
        &json_file,
    ])
    .ok();
    assert_eq!(publisher.num("sent"), 600.0);
    assert_eq!(publisher.num("acked"), 600.0, "every PUBCOMP arrived");
    assert_eq!(publisher.num("unacked"), 0.0);
    assert_eq!(publisher.num("unexpected_acks"), 0.0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).expect("--json-file"))
            .expect("valid JSON");
    assert_eq!(written["acked"], 600);
    assert_eq!(written["ack_latency_us"]["count"], 600);

    let sub = sub.finish().ok();
    assert_eq!(sub.num("received"), 1200.0, "two subscribers, 600 each");
    assert_eq!(sub.num("unique"), 1200.0);
    assert_eq!(sub.num("duplicates"), 0.0);
    assert_eq!(sub.num("gaps"), 0.0);
    assert_eq!(sub.num("redelivered"), 0.0);
    assert_eq!(sub.num("publishers_seen"), 3.0);

    let json = sub.json();
    assert_eq!(json["scenario"], "sub");
    assert_eq!(json["received"], 1200);
    let latency = &json["latency_us"];
    assert_eq!(latency["count"], 1200);
    let p = |k: &str| {
        latency[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {latency}"))
    };
    assert!(p("p50") > 0.0);
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99"));
    assert!(p("p99") <= p("p99_9") && p("p99_9") <= p("max"));
    assert_eq!(json["p99_us"].as_f64(), Some(p("p99")));
}

#[test]
fn a_persistent_v5_session_gets_the_messages_queued_while_away() {
    let broker = OurBroker::start(LISTENERS);
    let port = broker.port(0);
    let session = [
        "--port",
        &port,
        "--mqtt-version",
        "5",
        "--no-clean",
        "--session-expiry",
        "300",
        "--client-id",
        "keeper",
        "-q",
        "1",
        "-t",
        "queued/#",
        "--quiet",
    ];
    let first = load(&[&["sub", "--duration", "0.2"][..], &session].concat()).ok();
    assert_eq!(first.num("session_present"), 0.0);
    load(&[
        "pub",
        "--port",
        &port,
        "--mqtt-version",
        "5",
        "-q",
        "1",
        "-t",
        "queued/x",
        "--count",
        "25",
        "--rate",
        "0",
        "--quiet",
    ])
    .ok();
    let back = load(&[&["sub", "--duration", "5", "--count", "25"][..], &session].concat()).ok();
    assert_eq!(back.num("session_present"), 1.0);
    assert_eq!(back.num("received"), 25.0, "{back:#?}");
    assert_eq!(back.num("unique"), 25.0);
    assert_eq!(back.num("gaps"), 0.0);
    // A clean start drops the session.
    let clean = load(&[
        "sub",
        "--port",
        &port,
        "--mqtt-version",
        "5",
        "--client-id",
        "keeper",
        "--duration",
        "0.1",
        "--quiet",
    ])
    .ok();
    assert_eq!(clean.num("session_present"), 0.0);
}

#[test]
fn conn_keeps_its_connections_with_pings_and_reports_percentiles() {
    let broker = OurBroker::start(LISTENERS);
    let port = broker.port(0);
    // A 1 s keep-alive: the broker closes a connection silent for 1.5 s, so the 2.5 s hold
    // only survives with PINGREQs.
    let run = load(&[
        "conn",
        "--port",
        &port,
        "-c",
        "20",
        "--interval",
        "5",
        "--keep-alive",
        "1",
        "--duration",
        "2.5",
        "--json",
    ])
    .ok();
    // The live progress line, once a second on stderr.
    let progress = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("[conn"))
        .count();
    assert!(progress >= 2, "{}", run.stderr);
    assert!(run.stderr.contains("connections 20"), "{}", run.stderr);
    assert_eq!(run.num("connected"), 20.0);
    assert_eq!(run.num("failed"), 0.0);
    assert_eq!(run.num("dropped"), 0.0, "{run:#?}");
    // The ramp: 19 intervals of 5 ms.
    assert!(run.num("ramp_s") >= 0.09, "{run:#?}");
    let json = run.json();
    assert_eq!(json["connect_latency_us"]["count"], 20);
    assert!(json["connect_p99_us"].as_f64().unwrap_or(0.0) > 0.0);
}

#[test]
fn topic_templates_give_each_client_its_own_topic() {
    let broker = OurBroker::start(LISTENERS);
    let port = broker.port(0);
    // Subscriber i listens to tpl/i/dev-i only; publisher i publishes there (%i and %c).
    let sub = subscribed(&[
        "sub",
        "--port",
        &port,
        "-c",
        "3",
        "--start-index",
        "7",
        "-t",
        "tpl/%i/dev-%i",
        "--count",
        "10",
        "--duration",
        "10",
    ]);
    load(&[
        "pub",
        "--port",
        &port,
        "-c",
        "3",
        "--start-index",
        "7",
        "--client-id",
        "dev-%i",
        "-t",
        "tpl/%i/%c",
        "--count",
        "10",
        "-I",
        "1",
        "--quiet",
    ])
    .ok();
    let sub = sub.finish().ok();
    assert_eq!(sub.num("received"), 30.0);
    assert_eq!(
        sub.num("publishers_seen"),
        1.0,
        "one publisher per subscriber"
    );
    // %rand_1 is always 1; %rand is some number: a wildcard sees it.
    let sub = subscribed(&[
        "sub",
        "--port",
        &port,
        "-t",
        "r/1/+",
        "--count",
        "4",
        "--duration",
        "10",
    ]);
    load(&[
        "pub",
        "--port",
        &port,
        "-c",
        "2",
        "-t",
        "r/%rand_1/%rand",
        "--count",
        "2",
        "-I",
        "1",
        "--quiet",
    ])
    .ok();
    assert_eq!(sub.finish().ok().num("received"), 4.0);
}

#[test]
fn scenarios_and_modes_run_over_websocket() {
    let broker = OurBroker::start(LISTENERS);
    let ws_port = broker.port(1);
    let run = load(&[
        "qos1",
        "--ws",
        "--port",
        &ws_port,
        "--publishers",
        "2",
        "--rate",
        "2000",
        "--duration",
        "0.5",
        "--quiet",
    ])
    .ok();
    assert_eq!(run.field("verified"), "ok", "{run:#?}");
    assert!(run.num("sent") > 0.0);
    let url = format!("ws://127.0.0.1:{ws_port}/mqtt");
    let run = load(&[
        "conn",
        "--url",
        &url,
        "-c",
        "3",
        "--duration",
        "0.2",
        "--quiet",
    ])
    .ok();
    assert_eq!(run.num("connected"), 3.0);
    assert_eq!(run.field("transport"), "ws");
}

#[test]
fn tls_sessions_are_resumed_unless_refused() {
    if !have("openssl", "tls_sessions_are_resumed_unless_refused") {
        return;
    }
    let dir = TempDir::new("resume");
    make_certificates(&dir);
    let broker = OurBroker::start(&format!(
        "[[listener]]\nport = 0\nallow_anonymous = true\ncertfile = {:?}\nkeyfile = {:?}\n",
        dir.file("server.pem"),
        dir.file("server.key"),
    ));
    let port = broker.port(0);
    let ca = dir.file("ca.pem");
    // One worker, one connection after the other: each can resume the session of the one
    // before it.
    let connrate = |extra: &[&str]| {
        load(
            &[
                &[
                    "connrate",
                    "--port",
                    &port,
                    "--cafile",
                    &ca,
                    "--concurrency",
                    "1",
                    "--count",
                    "6",
                    "--quiet",
                ][..],
                extra,
            ]
            .concat(),
        )
        .ok()
    };
    for version in ["1.2", "1.3"] {
        let resumed = connrate(&["--tls-version", version]);
        assert_eq!(resumed.num("connects"), 6.0, "{resumed:#?}");
        assert_eq!(resumed.num("failed"), 0.0, "{resumed:#?}");
        // The first connection has no session to resume.
        assert_eq!(
            resumed.num("tls_resumed"),
            5.0,
            "TLS {version}: {resumed:#?}"
        );
        let explicit = connrate(&["--tls-version", version, "--tls-resume"]);
        assert_eq!(explicit.num("tls_resumed"), 5.0, "{explicit:#?}");
        let full = connrate(&["--tls-version", version, "--no-tls-resume"]);
        assert_eq!(full.num("connects"), 6.0, "{full:#?}");
        assert_eq!(full.num("tls_resumed"), 0.0, "TLS {version}: {full:#?}");
    }
    // Without TLS there is nothing to resume, and nothing is reported.
    let plain = OurBroker::start(LISTENERS);
    let run = load(&[
        "connrate",
        "--port",
        &plain.port(0),
        "--count",
        "2",
        "--quiet",
    ])
    .ok();
    assert!(!run.fields.contains_key("tls_resumed"), "{run:#?}");
}

#[test]
fn bad_options_are_refused_with_a_message() {
    for (args, message) in [
        (&["fanin", "--topic", "t"][..], "--topic applies"),
        (
            &["pub", "-c", "2", "--client-id", "same"],
            "put %i in --client-id",
        ),
        (&["sub", "-t", "a/%z"], "unknown placeholder"),
        (&["pub", "--session-expiry", "9"], "--mqtt-version 5"),
        (
            &["conn", "--tls", "--ciphers", "NOT-A-SUITE"],
            "unknown cipher suite",
        ),
        (
            &["conn", "--cafile", "/nonexistent/ca.pem"],
            "/nonexistent/ca.pem",
        ),
    ] {
        let run = load(&[args, &["--port", "1", "--quiet"]].concat());
        assert_eq!(run.code, Some(1), "{args:?}: {run:#?}");
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(run.fields.contains_key("error"), "{args:?}: {run:#?}");
    }
    // Connection failures are counted, not fatal.
    let run = load(&[
        "conn",
        "--port",
        "1",
        "-c",
        "2",
        "--duration",
        "0.5",
        "--quiet",
    ])
    .ok();
    assert_eq!(run.num("failed"), 2.0);
    assert!(run.field("first_error").contains("refused"), "{run:#?}");
}
