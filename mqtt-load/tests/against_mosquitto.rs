//! Runs tiny scenarios of the `mqtt-load` binary for one second against a real broker: Debian's
//! `mosquitto` on a free loopback port. Skipped, with a notice, where mosquitto is not installed.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// A mosquitto process, killed when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A loopback port below the kernel's range of ephemeral ports (32768 and up on Linux), free
/// a moment ago and handed to no other test of this process. Below that range no client
/// connection (the load tool's, the other test's) can take it as its source port between this
/// check and the broker's bind.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 997) as u16 * 10;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_mosquitto(binary: &Path) -> Mosquitto {
    let port = free_port();
    let child = Command::new(binary)
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto starts");
    let mut broker = Mosquitto { child, port };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = broker.child.try_wait().expect("mosquitto's status");
        assert!(exited.is_none(), "mosquitto exited: {exited:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

/// Runs `mqtt-load` against a fresh mosquitto and returns the fields of its RESULT line. A run
/// whose connections were refused is repeated once on a new mosquitto, saying so: the subject
/// here is the load tool's figures, not the start of a process it does not own.
fn run_load(binary: &Path, args: &[&str]) -> HashMap<String, String> {
    let mut broker = start_mosquitto(binary);
    let mut output = load(broker.port, args);
    if !output.0 && output.1.contains("Connection_refused") {
        let exited = broker.child.try_wait().ok().flatten();
        eprintln!(
            "notice: connections refused (mosquitto exited: {exited:?}); once more: {}",
            output.1
        );
        broker = start_mosquitto(binary);
        output = load(broker.port, args);
    }
    let (success, stdout) = output;
    assert!(success, "mqtt-load failed: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("a RESULT line");
    line.split_whitespace()
        .skip(1)
        .filter_map(|field| field.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// One run of `mqtt-load` against `port`: whether it succeeded, and what it printed.
fn load(port: u16, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mqtt-load"))
        .args(args)
        .args(["--port", &port.to_string(), "--duration", "1", "--quiet"])
        .output()
        .expect("mqtt-load runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    (output.status.success(), stdout)
}

fn number(fields: &HashMap<String, String>, key: &str) -> f64 {
    fields[key].parse().expect("a number")
}

#[test]
fn tiny_fanin_delivers_every_message() {
    let Some(binary) = mosquitto_binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let fields = run_load(&binary, &["fanin", "--publishers", "2", "--rate", "2000"]);
    assert_eq!(fields["scenario"], "fanin");
    let sent = number(&fields, "sent");
    assert!((1500.0..=2200.0).contains(&sent), "sent {sent}");
    assert_eq!(number(&fields, "received"), sent);
    assert_eq!(number(&fields, "lost"), 0.0);
    assert_eq!(number(&fields, "errors"), 0.0);
    assert!(number(&fields, "p50_us") > 0.0);
}

#[test]
fn tiny_qos1_run_is_verified() {
    let Some(binary) = mosquitto_binary() else {
        eprintln!("SKIPPED: mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let fields = run_load(&binary, &["qos1", "--publishers", "2", "--rate", "2000"]);
    assert_eq!(fields["verified"], "ok");
    assert_eq!(fields["acked"], fields["sent"]);
    assert_eq!(fields["unacked"], "0");
}
