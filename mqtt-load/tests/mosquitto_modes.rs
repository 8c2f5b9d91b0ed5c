//! The modes of `mqtt-load` against Debian's mosquitto (started on free loopback ports with a
//! temporary configuration, killed at the end): user name and password, TLS with a test CA
//! (version, cipher suite, client certificate, `--insecure`), WebSocket and WebSocket over
//! TLS, retained messages and a persistent MQTT 3.1.1 session. Skipped, with a notice, where
//! mosquitto (or `mosquitto_passwd`, `openssl`) is not installed.

mod common;

use common::{Mosquitto, TempDir, have, load, make_certificates, subscribed};

#[test]
fn password_file_accepts_the_right_password_and_refuses_a_wrong_one() {
    if !have("mosquitto_passwd", "password_file") {
        return;
    }
    let dir = TempDir::new("passwd");
    let passwords = dir.file("passwords");
    let made = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c", &passwords, "loader", "s3cret"])
        .output()
        .expect("mosquitto_passwd runs");
    assert!(made.status.success(), "{made:?}");
    let global =
        format!("per_listener_settings false\nallow_anonymous false\npassword_file {passwords}");
    let Some(broker) = Mosquitto::start("password_file", &global, &[String::new()]) else {
        return;
    };
    let port = broker.port(0);
    let conn = |extra: &[&str]| {
        load(
            &[
                &[
                    "conn",
                    "--port",
                    &port,
                    "-c",
                    "2",
                    "-i",
                    "5",
                    "--duration",
                    "0.3",
                    "--quiet",
                ][..],
                extra,
            ]
            .concat(),
        )
        .ok()
    };
    let right = conn(&["-u", "loader", "-P", "s3cret"]);
    assert_eq!(
        (right.num("connected"), right.num("failed")),
        (2.0, 0.0),
        "{right:#?}"
    );
    let wrong = conn(&["-u", "loader", "-P", "guess"]);
    assert_eq!(
        (wrong.num("connected"), wrong.num("failed")),
        (0.0, 2.0),
        "{wrong:#?}"
    );
    assert!(
        wrong.field("first_error").contains("CONNECT_refused"),
        "{wrong:#?}"
    );
    let anonymous = conn(&[]);
    assert_eq!(anonymous.num("failed"), 2.0);
    // The password also reaches publishers and subscribers.
    let run = load(&[
        "pub", "--port", &port, "-u", "loader", "-P", "s3cret", "-q", "1", "--count", "5",
        "--rate", "0", "--quiet",
    ])
    .ok();
    assert_eq!(run.num("acked"), 5.0);
}

/// mosquitto with three TLS listeners on the test certificates: TLS 1.2 with one suite only,
/// TLS 1.3 requiring a client certificate, and WebSocket over TLS.
fn tls_broker(test: &str, dir: &TempDir) -> Option<Mosquitto> {
    if !have("openssl", test) {
        return None;
    }
    make_certificates(dir);
    let certs = format!(
        "cafile {}\ncertfile {}\nkeyfile {}",
        dir.file("ca.pem"),
        dir.file("server.pem"),
        dir.file("server.key")
    );
    Mosquitto::start(
        test,
        "allow_anonymous true",
        &[
            format!("{certs}\ntls_version tlsv1.2\nciphers ECDHE-RSA-AES128-GCM-SHA256"),
            format!("{certs}\ntls_version tlsv1.3\nrequire_certificate true"),
            format!("{certs}\nprotocol websockets"),
        ],
    )
}

#[test]
fn tls_versions_ciphers_and_client_certificates() {
    let dir = TempDir::new("tls");
    let Some(broker) = tls_broker("tls", &dir) else {
        return;
    };
    let ca = dir.file("ca.pem");
    let (tls12, tls13) = (broker.port(0), broker.port(1));
    let conn = |port: &str, extra: &[&str]| {
        let base = ["conn", "--port", port, "--duration", "0.2", "--quiet"];
        load(&[&base[..], extra].concat()).ok()
    };
    let connected = |run: &common::Run| run.num("connected") == 1.0;

    // TLS 1.2 with the one suite the listener allows, named either way.
    for suite in [
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    ] {
        let run = conn(
            &tls12,
            &["--cafile", &ca, "--tls-version", "1.2", "--ciphers", suite],
        );
        assert!(connected(&run), "{suite}: {run:#?}");
        assert_eq!(run.field("transport"), "mqtts");
    }
    // Another suite is refused by that listener.
    let run = conn(
        &tls12,
        &[
            "--cafile",
            &ca,
            "--ciphers",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ],
    );
    assert_eq!(run.num("failed"), 1.0, "{run:#?}");
    // TLS 1.3 (the listener's minimum) with a client certificate; TLS 1.2 or no certificate
    // fails.
    let client = [
        "--cert",
        &dir.file("client.pem"),
        "--key",
        &dir.file("client.key"),
    ];
    let run = conn(
        &tls13,
        &[&["--cafile", &ca, "--tls-version", "1.3"][..], &client].concat(),
    );
    assert!(connected(&run), "{run:#?}");
    let run = conn(&tls13, &["--cafile", &ca, "--tls-version", "1.3"]);
    assert_eq!(run.num("failed"), 1.0, "{run:#?}");
    let run = conn(
        &tls13,
        &[&["--cafile", &ca, "--tls-version", "1.2"][..], &client].concat(),
    );
    assert_eq!(run.num("failed"), 1.0, "{run:#?}");

    // The server is verified: a CA that did not sign its certificate fails, --insecure does
    // not check, and the URL form works.
    let run = conn(&tls12, &["--cafile", &dir.file("client.pem")]);
    assert_eq!(run.num("failed"), 1.0, "{run:#?}");
    assert!(run.field("first_error").contains("certificate"), "{run:#?}");
    let run = conn(&tls12, &["--insecure"]);
    assert!(connected(&run), "{run:#?}");
    let url = format!("mqtts://127.0.0.1:{tls12}");
    let run = load(&[
        "pub", "--url", &url, "--cafile", &ca, "-q", "2", "--count", "20", "--rate", "0", "--quiet",
    ])
    .ok();
    assert_eq!(run.num("acked"), 20.0, "{run:#?}");
}

#[test]
fn websocket_and_secure_websocket_carry_qos2_without_loss() {
    let dir = TempDir::new("ws");
    let Some(tls) = tls_broker("websocket", &dir) else {
        return;
    };
    let Some(plain) = Mosquitto::start(
        "websocket",
        "allow_anonymous true",
        // mosquitto 2.0.11 refuses to start with WebSocket listeners only.
        &["protocol websockets".to_owned(), String::new()],
    ) else {
        return;
    };
    let ws = format!("ws://127.0.0.1:{}/mqtt", plain.port(0));
    let wss = format!("wss://127.0.0.1:{}/mqtt", tls.port(2));
    let ca = dir.file("ca.pem");
    // mosquitto 2.0 drops the QoS 2 messages a client has in flight beyond its
    // max_inflight_messages (20): in MQTT 5 it says so in the CONNACK's Receive Maximum, which
    // the publishers honour (with a window of 64 here); in 3.1.1 the QoS 2 default of 20
    // stays within it.
    let v5 = ["--mqtt-version", "5", "--window", "64"];
    let v311 = ["--cafile", &ca];
    for (url, extra) in [(&ws, &v5[..]), (&wss, &v311[..])] {
        let sub = subscribed(
            &[
                &[
                    "sub",
                    "--url",
                    url,
                    "-q",
                    "2",
                    "-t",
                    "w/#",
                    "--count",
                    "300",
                    "--duration",
                    "20",
                ][..],
                extra,
            ]
            .concat(),
        );
        let publisher = load(
            &[
                &[
                    "pub", "--url", url, "-c", "3", "-q", "2", "-t", "w/%i", "--count", "100",
                    "--rate", "0", "--quiet",
                ][..],
                extra,
            ]
            .concat(),
        )
        .ok();
        assert_eq!(publisher.num("acked"), 300.0, "{url}: {publisher:#?}");
        let sub = sub.finish().ok();
        assert_eq!(sub.num("unique"), 300.0, "{url}: {sub:#?}");
        assert_eq!(sub.num("duplicates"), 0.0);
        assert_eq!(sub.num("gaps"), 0.0);
        assert_eq!(
            sub.field("transport"),
            if url == &ws { "ws" } else { "wss" }
        );
    }
}

#[test]
fn retained_messages_and_a_persistent_session() {
    let Some(broker) = Mosquitto::start("retain", "allow_anonymous true", &[String::new()]) else {
        return;
    };
    let port = broker.port(0);
    // Retained: a subscriber arriving later still gets the last message of each topic.
    load(&[
        "pub",
        "--port",
        &port,
        "-c",
        "3",
        "-t",
        "kept/%i",
        "--retain",
        "-q",
        "1",
        "--count",
        "2",
        "--rate",
        "0",
        "--payload",
        "{\"on\": true}",
        "--quiet",
    ])
    .ok();
    let late = load(&[
        "sub",
        "--port",
        &port,
        "-t",
        "kept/#",
        "--count",
        "3",
        "--duration",
        "5",
        "--quiet",
    ])
    .ok();
    assert_eq!(
        (late.num("received"), late.num("retained")),
        (3.0, 3.0),
        "{late:#?}"
    );

    // Persistent session (MQTT 3.1.1, clean session 0): QoS 1 messages published while the
    // subscriber is away are queued and delivered when it comes back.
    let session = [
        "--port",
        &port,
        "--no-clean",
        "--client-id",
        "sleeper",
        "-q",
        "1",
        "-t",
        "q/#",
        "--quiet",
    ];
    let first = load(&[&["sub", "--duration", "0.2"][..], &session].concat()).ok();
    assert_eq!(first.num("session_present"), 0.0);
    load(&[
        "pub", "--port", &port, "-q", "1", "-t", "q/1", "--count", "40", "--rate", "0", "--quiet",
    ])
    .ok();
    let back = load(&[&["sub", "--duration", "5", "--count", "40"][..], &session].concat()).ok();
    assert_eq!(back.num("session_present"), 1.0, "{back:#?}");
    assert_eq!(
        (back.num("received"), back.num("unique")),
        (40.0, 40.0),
        "{back:#?}"
    );
    assert_eq!(back.num("gaps"), 0.0);
}
