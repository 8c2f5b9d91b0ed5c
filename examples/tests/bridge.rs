//! Bridges over real sockets with real second brokers: our broker bridged to Debian's
//! mosquitto and to a second instance of ours, mosquitto bridged to ours; directions,
//! prefixes, QoS 0/1/2, retained messages, both bridge protocols, TLS to the remote, loops,
//! and streams of numbered messages across kills and restarts of either side.
//!
//! Every broker is a process started by the test from a mosquitto.conf (our binary reads the
//! same files), every client our own `mqtt-client` over a socket.

#[path = "common/client.rs"]
mod client;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use client::{TestClient, s, text};
use common::{Guard, free_port, have, scratch_dir};
use mqtt_client::Options;
use mqtt_wire::{ProtocolVersion, QoS};

/// A broker process listening on loopback `port`, its files in `dir`.
struct Proc {
    guard: Option<Guard>,
    port: u16,
    dir: PathBuf,
    conf: PathBuf,
    ours: bool,
}

impl Proc {
    /// Our binary with `conf` (a mosquitto.conf; `PORT` is replaced by the port).
    fn ours(dir: &Path, name: &str, conf: &str) -> Proc {
        Self::start(dir, name, conf, true)
    }

    /// Debian's mosquitto with `conf`.
    fn mosquitto(dir: &Path, name: &str, conf: &str) -> Proc {
        Self::start(dir, name, conf, false)
    }

    fn start(dir: &Path, name: &str, conf: &str, ours: bool) -> Proc {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let port = free_port();
        let path = dir.join("broker.conf");
        std::fs::write(&path, conf.replace("PORT", &port.to_string())).expect("conf");
        let mut proc = Proc {
            guard: None,
            port,
            dir,
            conf: path,
            ours,
        };
        proc.launch();
        proc
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("log");
        let mut command = if self.ours {
            let mut c = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"));
            c.env(
                "RUST_LOG",
                std::env::var("BRIDGE_TEST_LOG").unwrap_or_else(|_| String::from("info")),
            );
            c
        } else {
            Command::new("mosquitto")
        };
        command
            .current_dir(&self.dir)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.guard = Some(Guard(command.spawn().expect("spawn broker")));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// SIGKILL: nothing is written on the way out.
    fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let _ = guard.0.kill();
            let _ = guard.0.wait();
        }
    }

    /// SIGTERM and wait for the exit.
    fn stop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(guard.0.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while guard.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn client(&self, id: &str, version: ProtocolVersion) -> TestClient {
        TestClient::connect(self.port, Options::new(s(id)).version(version))
    }

    /// Waits until the retained bridge state `topic` reads `value` here.
    fn wait_state(&self, topic: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut c = self.client("state-watch", ProtocolVersion::V3_1_1);
            c.subscribe(topic, QoS::AtMostOnce);
            if c.recv(Duration::from_millis(300))
                .is_some_and(|m| text(&m) == value)
            {
                return;
            }
            c.disconnect();
            assert!(
                Instant::now() < deadline,
                "{topic} never read {value}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

const QUIET: Duration = Duration::from_millis(700);

fn mosquitto_conf() -> &'static str {
    "listener PORT 127.0.0.1\nallow_anonymous true\n"
}

/// Our broker bridged to mosquitto, in every direction, with prefixes, at each QoS, with
/// retained messages, over 3.1.1 and 5.0.
#[test]
fn ours_bridged_to_mosquitto() {
    if !have("mosquitto", "ours_bridged_to_mosquitto") {
        return;
    }
    for protocol in ["mqttv311", "mqttv50"] {
        let dir = scratch_dir(&format!("bridge-to-mosquitto-{protocol}"));
        let remote = Proc::mosquitto(&dir, "remote", mosquitto_conf());
        let conf = format!(
            "listener PORT 127.0.0.1\nallow_anonymous true\n\
             connection cloud\naddress 127.0.0.1:{}\nremote_clientid house\n\
             bridge_protocol_version {protocol}\nrestart_timeout 1\n\
             topic tele/# out 1 home/ site/\n\
             topic cmnd/# in 2\n\
             topic both/# both 1\n\
             topic \"\" out 0 home/state site/state\n",
            remote.port
        );
        let local = Proc::ours(&dir, "local", &conf);
        remote.wait_state("$SYS/broker/connection/house/state", "1");
        local.wait_state("$SYS/broker/connection/house/state", "1");
        check_directions(&local, &remote, protocol);
    }
}

/// The checks of one bridge between `local` (which has the bridge) and `remote`.
fn check_directions(local: &Proc, remote: &Proc, what: &str) {
    use ProtocolVersion::{V3_1_1, V5};
    let mut local_sub = local.client("local-sub", V5);
    local_sub.subscribe("cmnd/#", QoS::ExactlyOnce);
    local_sub.subscribe("both/#", QoS::AtLeastOnce);
    let mut remote_sub = remote.client("remote-sub", V3_1_1);
    remote_sub.subscribe("site/#", QoS::AtLeastOnce);
    remote_sub.subscribe("both/#", QoS::AtLeastOnce);
    let mut local_pub = local.client("local-pub", V3_1_1);
    let mut remote_pub = remote.client("remote-pub", V5);

    // out, with prefixes: home/tele/... here is site/tele/... there.
    local_pub.publish(
        "home/tele/plug/SENSOR",
        b"{\"W\":12}",
        QoS::AtLeastOnce,
        false,
    );
    let got = remote_sub.drain(QUIET);
    assert_eq!(got.len(), 1, "{what}: {got:?}");
    assert_eq!(got[0].topic(), "site/tele/plug/SENSOR", "{what}");
    assert_eq!(got[0].qos.qos(), QoS::AtLeastOnce, "{what}");
    // A `""` pattern: the prefixes are the whole topics.
    local_pub.publish("home/state", b"up", QoS::AtMostOnce, false);
    let got = remote_sub.drain(QUIET);
    assert_eq!(
        got.iter().map(|m| m.topic()).collect::<Vec<_>>(),
        ["site/state"],
        "{what}"
    );

    // in, at QoS 2: exactly once.
    remote_pub.publish("cmnd/plug/POWER", b"ON", QoS::ExactlyOnce, false);
    let got = local_sub.drain(QUIET);
    assert_eq!(got.len(), 1, "{what}: {got:?}");
    assert_eq!(
        (got[0].topic(), text(&got[0]).as_str()),
        ("cmnd/plug/POWER", "ON")
    );
    assert_eq!(got[0].qos.qos(), QoS::ExactlyOnce, "{what}");

    // both: each side's subscriber gets each message once; nothing comes back.
    local_pub.publish("both/a", b"from-local", QoS::AtLeastOnce, false);
    remote_pub.publish("both/b", b"from-remote", QoS::AtLeastOnce, false);
    let mut here: Vec<String> = local_sub.drain(QUIET).iter().map(text).collect();
    let mut there: Vec<String> = remote_sub.drain(QUIET).iter().map(text).collect();
    here.sort();
    there.sort();
    assert_eq!(here, ["from-local", "from-remote"], "{what}");
    assert_eq!(there, ["from-local", "from-remote"], "{what}");

    // Retained crosses as retained.
    local_pub.publish("home/tele/plug/LWT", b"Online", QoS::AtLeastOnce, true);
    std::thread::sleep(QUIET);
    let mut late = remote.client("late", V3_1_1);
    late.subscribe("site/tele/plug/LWT", QoS::AtLeastOnce);
    let got = late.recv(Duration::from_secs(3)).expect("retained");
    assert!(got.retain, "{what}");
    assert_eq!(text(&got), "Online");
}

/// mosquitto bridged to ours (its `connection` block pointing at us, with its bridge bit).
#[test]
fn mosquitto_bridged_to_ours() {
    if !have("mosquitto", "mosquitto_bridged_to_ours") {
        return;
    }
    let dir = scratch_dir("mosquitto-bridged-to-ours");
    let remote = Proc::ours(&dir, "remote", mosquitto_conf());
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\n\
         connection tous\naddress 127.0.0.1:{}\nremote_clientid house\n\
         restart_timeout 1\n\
         topic tele/# out 1 home/ site/\n\
         topic cmnd/# in 2\n\
         topic both/# both 1\n\
         topic \"\" out 0 home/state site/state\n",
        remote.port
    );
    let local = Proc::mosquitto(&dir, "local", &conf);
    remote.wait_state("$SYS/broker/connection/house/state", "1");
    check_directions(&local, &remote, "mosquitto to ours");
}

/// Two of ours bridged both ways on `#`: one publish is delivered once on each side.
#[test]
fn ours_bridged_to_ours_both_ways_does_not_loop() {
    let dir = scratch_dir("bridge-ours-to-ours");
    for protocol in ["mqttv311", "mqttv50"] {
        let remote = Proc::ours(&dir, &format!("remote-{protocol}"), mosquitto_conf());
        let conf = format!(
            "listener PORT 127.0.0.1\nallow_anonymous true\n\
             connection peer\naddress 127.0.0.1:{}\nremote_clientid peer-{protocol}\n\
             bridge_protocol_version {protocol}\n\
             topic # both 2\n",
            remote.port
        );
        let local = Proc::ours(&dir, &format!("local-{protocol}"), &conf);
        remote.wait_state(
            &format!("$SYS/broker/connection/peer-{protocol}/state"),
            "1",
        );
        let mut a = local.client("a", ProtocolVersion::V5);
        a.subscribe("x/#", QoS::ExactlyOnce);
        let mut b = remote.client("b", ProtocolVersion::V5);
        b.subscribe("x/#", QoS::ExactlyOnce);
        a.publish("x/1", b"one", QoS::ExactlyOnce, false);
        b.publish("x/2", b"two", QoS::ExactlyOnce, false);
        let mut on_a: Vec<String> = a.drain(Duration::from_secs(1)).iter().map(text).collect();
        let mut on_b: Vec<String> = b.drain(Duration::from_secs(1)).iter().map(text).collect();
        on_a.sort();
        on_b.sort();
        assert_eq!(on_a, ["one", "two"], "{protocol}");
        assert_eq!(on_b, ["one", "two"], "{protocol}");
    }
}

/// What happens to a broker in the middle of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The remote broker (ours, sync durability) gets SIGKILL and is started again.
    KillRemote,
    /// The remote broker (Debian's mosquitto, persistence on) gets SIGTERM and is started
    /// again (mosquitto itself loses acknowledged messages on SIGKILL).
    StopMosquittoRemote,
    /// Our broker with the bridge (persistence true, as mosquitto.conf says it) gets SIGKILL
    /// and is started again.
    KillLocal,
}

const STREAM: usize = 10_000;

/// 10,000 numbered messages published on our broker at `qos`, bridged out at `qos`, read by a
/// persistent subscriber on the remote broker, with `fault` a third of the way in: every one
/// arrives, in order; at QoS 2 none twice.
fn stream_through_bridge(name: &str, fault: Fault, qos: QoS) {
    let dir = scratch_dir(name);
    let remote_dir = dir.join("remote");
    std::fs::create_dir_all(&remote_dir).expect("dir");
    {
        use std::os::unix::fs::PermissionsExt;
        // mosquitto, started as root, writes its file as its own user.
        std::fs::set_permissions(&remote_dir, std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
    }
    let mut remote = if fault == Fault::StopMosquittoRemote {
        let conf = format!(
            "listener PORT 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            remote_dir.display()
        );
        Proc::mosquitto(&dir, "remote", &conf)
    } else {
        let conf = "listener PORT 127.0.0.1\nallow_anonymous true\npersistence true\n\
                    autosave_interval 0\nmax_queued_messages 0\n";
        Proc::ours(&dir, "remote", conf)
    };
    let level = qos as u8;
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\npersistence true\n\
         max_queued_messages 0\n\
         connection far\naddress 127.0.0.1:{}\nremote_clientid far\nrestart_timeout 1\n\
         topic stream/# out {level}\n",
        remote.port
    );
    let mut local = Proc::ours(&dir, "local", &conf);
    remote.wait_state("$SYS/broker/connection/far/state", "1");

    let subscriber_options = Options::new(s("reader"))
        .clean_start(false)
        .session_expiry_interval(3600);
    let mut reader = TestClient::connect(remote.port, subscriber_options);
    reader.subscribe("stream/#", qos);

    let local_port = local.port;
    let publisher = std::thread::spawn(move || {
        let options = Options::new(s("writer"))
            .clean_start(false)
            .session_expiry_interval(3600);
        let mut writer = TestClient::connect(local_port, options);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut acked = 0;
        let mut sent = 0;
        while acked < STREAM && Instant::now() < deadline {
            if !writer.is_connected() {
                std::thread::sleep(Duration::from_millis(100));
                writer.reconnect(local_port);
                continue;
            }
            while sent < STREAM && writer.inner().send_quota() > 0 {
                let message = mqtt_client::Message::new(s("stream/t"), sent.to_string()).qos(qos);
                if writer.inner().publish(message, Instant::now()).is_err() {
                    break;
                }
                sent += 1;
            }
            acked += writer.take_completions(Duration::from_millis(5));
        }
        acked
    });

    let mut seen: Vec<usize> = Vec::with_capacity(STREAM);
    let mut faulted = false;
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut distinct = std::collections::BTreeSet::new();
    while distinct.len() < STREAM && Instant::now() < deadline {
        if !faulted && distinct.len() >= STREAM / 3 {
            faulted = true;
            match fault {
                Fault::KillRemote => {
                    remote.kill();
                    remote.launch();
                }
                Fault::StopMosquittoRemote => {
                    remote.stop();
                    remote.launch();
                }
                Fault::KillLocal => {
                    local.kill();
                    local.launch();
                }
            }
        }
        if !reader.is_connected() {
            std::thread::sleep(Duration::from_millis(100));
            reader.reconnect(remote.port);
            continue;
        }
        if let Some(message) = reader.recv(Duration::from_millis(200)) {
            let n: usize = text(&message).parse().expect("a number");
            distinct.insert(n);
            seen.push(n);
        }
    }
    let acked = publisher.join().expect("publisher");
    // Whatever is still on its way.
    if reader.is_connected() {
        for message in reader.drain(Duration::from_secs(1)) {
            let n: usize = text(&message).parse().expect("a number");
            distinct.insert(n);
            seen.push(n);
        }
    }
    let context = || {
        format!(
            "{name}: acked {acked}, distinct {}, received {}; local log:\n{}\nremote log:\n{}",
            distinct.len(),
            seen.len(),
            tail(&local.log()),
            tail(&remote.log())
        )
    };
    assert_eq!(acked, STREAM, "{}", context());
    let missing: Vec<usize> = (0..STREAM)
        .filter(|n| !distinct.contains(n))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "missing {missing:?}; {}", context());
    // In order: a number is new only after every smaller one was seen.
    let mut next = 0;
    for &n in &seen {
        if n >= next {
            assert_eq!(
                n,
                next,
                "out of order at {n} (expected {next}); {}",
                context()
            );
            next += 1;
        }
    }
    if qos == QoS::ExactlyOnce {
        assert_eq!(seen.len(), STREAM, "duplicates at QoS 2; {}", context());
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[test]
fn a_stream_survives_a_sigkill_of_the_remote_broker() {
    stream_through_bridge("bridge-kill-remote-1", Fault::KillRemote, QoS::AtLeastOnce);
    stream_through_bridge("bridge-kill-remote-2", Fault::KillRemote, QoS::ExactlyOnce);
}

#[test]
fn a_stream_survives_a_restart_of_a_mosquitto_remote() {
    if !have(
        "mosquitto",
        "a_stream_survives_a_restart_of_a_mosquitto_remote",
    ) {
        return;
    }
    stream_through_bridge(
        "bridge-stop-mosquitto-1",
        Fault::StopMosquittoRemote,
        QoS::AtLeastOnce,
    );
    stream_through_bridge(
        "bridge-stop-mosquitto-2",
        Fault::StopMosquittoRemote,
        QoS::ExactlyOnce,
    );
}

#[test]
fn a_stream_survives_a_sigkill_of_the_bridging_broker() {
    stream_through_bridge("bridge-kill-local-1", Fault::KillLocal, QoS::AtLeastOnce);
    stream_through_bridge("bridge-kill-local-2", Fault::KillLocal, QoS::ExactlyOnce);
}

/// TLS to the remote broker: mosquitto with a TLS listener that requires a client
/// certificate; our bridge verifies mosquitto's certificate against the CA and presents its
/// own.
#[test]
fn a_bridge_speaks_tls_to_its_remote_broker() {
    if !have("mosquitto", "a_bridge_speaks_tls") || !have("openssl", "a_bridge_speaks_tls") {
        return;
    }
    let dir = scratch_dir("bridge-tls");
    common::make_certificates(&dir);
    let file = |name: &str| dir.join(name).display().to_string();
    let remote_conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\n\
         require_certificate true\n",
        file("ca.pem"),
        file("server.pem"),
        file("server.key")
    );
    let remote = Proc::mosquitto(&dir, "remote", &remote_conf);
    for protocol in ["mqttv311", "mqttv50"] {
        let conf = format!(
            "listener PORT 127.0.0.1\nallow_anonymous true\n\
             connection secure\naddress 127.0.0.1:{}\nremote_clientid secure-{protocol}\n\
             bridge_protocol_version {protocol}\nbridge_cafile {}\nbridge_certfile {}\n\
             bridge_keyfile {}\nbridge_tls_version tlsv1.2\ntopic tls/# both 1\n",
            remote.port,
            file("ca.pem"),
            file("client.pem"),
            file("client.key")
        );
        let local = Proc::ours(&dir, &format!("local-{protocol}"), &conf);
        local.wait_state(
            &format!("$SYS/broker/connection/secure-{protocol}/state"),
            "1",
        );
        // The remote side is read through its TLS listener, with a certificate too: here
        // the local side's subscriber checks what came in, and a local publish goes out.
        let mut here = local.client("here", ProtocolVersion::V5);
        here.subscribe("tls/in", QoS::AtLeastOnce);
        let out = std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &remote.port.to_string()])
            .args(["--cafile", &file("ca.pem"), "--cert", &file("client.pem")])
            .args([
                "--key",
                &file("client.key"),
                "-q",
                "1",
                "-t",
                "tls/in",
                "-m",
                "secret",
            ])
            .output()
            .expect("mosquitto_pub");
        assert!(out.status.success(), "{out:?}");
        let got = here.recv(Duration::from_secs(5)).expect("came in over TLS");
        assert_eq!(text(&got), "secret", "{protocol}");
    }
}

/// A remote that breaks the protocol after its CONNACK is dropped and tried again with
/// backoff; the broker goes on serving, and what waits for the bridge is kept.
#[test]
fn a_remote_that_sends_garbage_is_dropped_and_retried() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let fake = std::thread::spawn(move || {
        let mut connects = 0;
        listener.set_nonblocking(false).expect("blocking");
        for stream in listener.incoming().take(2) {
            let mut stream = stream.expect("accept");
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf); // the CONNECT
            connects += 1;
            // CONNACK, then a PUBLISH with QoS 3 (malformed) and a flood of noise.
            let _ = stream.write_all(b"\x20\x02\x00\x00\x36\x05\x00\x01t\x00\x01");
            let _ = stream.write_all(&[0xff; 4096]);
            std::thread::sleep(Duration::from_millis(300));
        }
        connects
    });
    let dir = scratch_dir("bridge-garbage");
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\n\
         connection bad\naddress 127.0.0.1:{port}\nrestart_timeout 1\ntopic q/# out 1\n"
    );
    let local = Proc::ours(&dir, "local", &conf);
    let mut c = local.client("c", ProtocolVersion::V5);
    c.subscribe("q/#", QoS::AtLeastOnce);
    c.publish("q/1", b"kept", QoS::AtLeastOnce, false);
    assert_eq!(
        c.recv(Duration::from_secs(3)).map(|m| text(&m)).as_deref(),
        Some("kept")
    );
    assert_eq!(fake.join().expect("fake remote"), 2, "tried again");
    // Still serving.
    c.publish("q/2", b"still", QoS::AtLeastOnce, false);
    assert!(c.recv(Duration::from_secs(3)).is_some());
    assert!(
        local.log().contains("broke the protocol"),
        "{}",
        local.log()
    );
}

/// With `local_username`, what the bridge takes out and brings in is authorized by this
/// broker's ACL as that user.
#[test]
fn local_username_puts_the_bridge_under_the_acl() {
    let dir = scratch_dir("bridge-acl");
    let remote = Proc::ours(&dir, "remote", mosquitto_conf());
    std::fs::create_dir_all(dir.join("local")).expect("dir");
    let acl = dir.join("local").join("acl");
    std::fs::write(
        &acl,
        "topic readwrite #\n\nuser bridge\ntopic read allowed/#\ntopic write cmnd/ok/#\n",
    )
    .expect("acl");
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\nacl_file {}\n\
         connection acl\naddress 127.0.0.1:{}\nremote_clientid acl\nlocal_username bridge\n\
         topic allowed/# out 1\ntopic secret/# out 1\ntopic cmnd/# in 1\n",
        acl.display(),
        remote.port
    );
    let local = Proc::ours(&dir, "local", &conf);
    remote.wait_state("$SYS/broker/connection/acl/state", "1");
    let mut there = remote.client("there", ProtocolVersion::V5);
    there.subscribe("allowed/#", QoS::AtLeastOnce);
    there.subscribe("secret/#", QoS::AtLeastOnce);
    let mut here = local.client("here", ProtocolVersion::V5);
    here.subscribe("cmnd/#", QoS::AtLeastOnce);
    here.publish("allowed/1", b"a", QoS::AtLeastOnce, false);
    here.publish("secret/1", b"s", QoS::AtLeastOnce, false);
    let got: Vec<String> = there
        .drain(QUIET)
        .iter()
        .map(|m| m.topic().to_owned())
        .collect();
    assert_eq!(got, ["allowed/1"]);
    there.publish("cmnd/ok/1", b"yes", QoS::AtLeastOnce, false);
    there.publish("cmnd/no/1", b"no", QoS::AtLeastOnce, false);
    let got: Vec<String> = here
        .drain(QUIET)
        .iter()
        .map(|m| m.topic().to_owned())
        .collect();
    assert_eq!(got, ["cmnd/ok/1"]);
}

/// `start_type lazy`: no connection until `threshold` messages wait; then they all go.
#[test]
fn a_lazy_bridge_connects_once_threshold_messages_wait() {
    let dir = scratch_dir("bridge-lazy");
    let remote = Proc::ours(&dir, "remote", mosquitto_conf());
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\n\
         connection lazy\naddress 127.0.0.1:{}\nremote_clientid lazy\nstart_type lazy\n\
         threshold 3\ntopic q/# out 1\n",
        remote.port
    );
    let local = Proc::ours(&dir, "local", &conf);
    let mut there = remote.client("there", ProtocolVersion::V5);
    there.subscribe("q/#", QoS::AtLeastOnce);
    let mut here = local.client("here", ProtocolVersion::V5);
    here.publish("q/1", b"1", QoS::AtLeastOnce, false);
    here.publish("q/2", b"2", QoS::AtLeastOnce, false);
    assert!(
        there.recv(Duration::from_millis(2500)).is_none(),
        "connected before the threshold"
    );
    here.publish("q/3", b"3", QoS::AtLeastOnce, false);
    let got: Vec<String> = there
        .collect(3, Duration::from_secs(5))
        .iter()
        .map(text)
        .collect();
    assert_eq!(got, ["1", "2", "3"]);
}

/// Several addresses: one where nothing listens is passed over for the next, in order.
#[test]
fn a_bridge_fails_over_to_the_next_address() {
    let dir = scratch_dir("bridge-failover");
    let remote = Proc::ours(&dir, "remote", mosquitto_conf());
    let dead = free_port(); // nothing listens there
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\n\
         connection over\naddresses 127.0.0.1:{dead} 127.0.0.1:{}\nremote_clientid over\n\
         restart_timeout 1\ntopic f/# out 1\n",
        remote.port
    );
    let local = Proc::ours(&dir, "local", &conf);
    remote.wait_state("$SYS/broker/connection/over/state", "1");
    let mut there = remote.client("there", ProtocolVersion::V5);
    there.subscribe("f/#", QoS::AtLeastOnce);
    let mut here = local.client("here", ProtocolVersion::V5);
    here.publish("f/1", b"over", QoS::AtLeastOnce, false);
    assert_eq!(
        there
            .recv(Duration::from_secs(3))
            .map(|m| text(&m))
            .as_deref(),
        Some("over")
    );
    assert!(
        local
            .log()
            .contains(&format!("cannot connect to 127.0.0.1:{dead}"))
    );
}

/// `start_type once` does not connect again once its connection ended;
/// `notifications_local_only` keeps the state off the remote broker.
#[test]
fn start_type_once_and_local_only_notifications() {
    let dir = scratch_dir("bridge-once");
    let mut remote = Proc::ours(&dir, "remote", mosquitto_conf());
    let conf = format!(
        "listener PORT 127.0.0.1\nallow_anonymous true\n\
         connection once\naddress 127.0.0.1:{}\nremote_clientid once\nrestart_timeout 1\n\
         start_type once\nnotifications_local_only true\ntopic o/# both 1\n",
        remote.port
    );
    let local = Proc::ours(&dir, "local", &conf);
    local.wait_state("$SYS/broker/connection/once/state", "1");
    let mut there = remote.client("there", ProtocolVersion::V5);
    there.subscribe("$SYS/broker/connection/#", QoS::AtMostOnce);
    assert!(
        there.recv(Duration::from_millis(500)).is_none(),
        "a local-only notification reached the remote broker"
    );
    drop(there);
    // The remote broker goes away and comes back: a `once` bridge stays down.
    remote.kill();
    local.wait_state("$SYS/broker/connection/once/state", "0");
    remote.launch();
    std::thread::sleep(Duration::from_secs(3));
    let mut there = remote.client("there", ProtocolVersion::V5);
    there.subscribe("o/#", QoS::AtLeastOnce);
    let mut here = local.client("here", ProtocolVersion::V5);
    here.publish("o/1", b"x", QoS::AtLeastOnce, false);
    assert!(
        there.recv(Duration::from_secs(2)).is_none(),
        "the once bridge came back"
    );
    assert!(
        local.log().contains("start_type once has ended"),
        "{}",
        local.log()
    );
}
