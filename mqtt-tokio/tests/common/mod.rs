//! Shared by the socket-level tests: a server on an ephemeral loopback port running on its own
//! runtime, the mosquitto command-line clients with deadlines, and a subscriber that is known
//! to be subscribed before the test publishes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqtt_tokio::Server;
use mqtt_tokio::config::ServerConfig;

/// Longest any single client run may take.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Whether `tool` can be started; prints a notice naming the skipped test when it cannot.
pub fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("notice: `{tool}` is not installed; skipping {test}");
    }
    found
}

/// Whether both mosquitto clients are installed.
pub fn have_clients(test: &str) -> bool {
    have("mosquitto_pub", test) && have("mosquitto_sub", test)
}

/// A server running on its own runtime, shut down when dropped.
pub struct TestServer {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<Server>,
}

impl TestServer {
    /// Starts `config` (its listeners should use port 0).
    pub fn start(config: ServerConfig) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = runtime
            .block_on(Server::builder(config).start())
            .expect("server starts");
        TestServer {
            runtime: Some(runtime),
            server: Some(server),
        }
    }

    /// The default local-only configuration on an ephemeral port.
    pub fn local() -> TestServer {
        let mut config = ServerConfig::default();
        config.add_local_listener(0);
        TestServer::start(config)
    }

    /// Port of listener `index`.
    pub fn port(&self, index: usize) -> u16 {
        self.server.as_ref().expect("server running").local_addrs()[index].port()
    }

    /// The server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Runs a future on the server's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("runtime running")
            .block_on(future)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let (Some(runtime), Some(server)) = (self.runtime.take(), self.server.take()) {
            runtime.block_on(async {
                let _ = tokio::time::timeout(mqtt_tokio::SHUTDOWN_LIMIT, server.shutdown()).await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` to completion within [`LIMIT`] (killed otherwise, failing the test).
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} timed out");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

/// `mosquitto_pub` against the server's port with extra arguments.
pub fn publish(port: u16, args: &[&str]) -> Output {
    run(Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args))
}

/// Like [`publish`], asserting success.
pub fn publish_ok(port: u16, args: &[&str]) {
    let output = publish(port, args);
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `mosquitto_sub` whose output lines are read as they come.
pub struct Subscriber {
    /// Lines that arrived before the first probe (retained messages).
    pub early: Vec<String>,
    _child: Guard,
    lines: mpsc::Receiver<String>,
}

impl Subscriber {
    /// Starts `mosquitto_sub -v` with `args`, then publishes to `probe_topic` until the probe
    /// comes back, so the subscription is known to be in place. Lines before the first probe
    /// are kept in `early`; later probe lines are skipped.
    pub fn start(port: u16, args: &[&str], probe_topic: &str, probe_args: &[&str]) -> Subscriber {
        let mut child = Guard(
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn mosquitto_sub"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let mut subscriber = Subscriber {
            early: Vec::new(),
            _child: child,
            lines,
        };
        let deadline = Instant::now() + LIMIT;
        loop {
            let mut probe = vec!["-t", probe_topic, "-m", "probe"];
            probe.extend_from_slice(probe_args);
            publish_ok(port, &probe);
            let probe_line = format!("{probe_topic} probe");
            let mut seen = false;
            while let Ok(line) = subscriber.lines.recv_timeout(Duration::from_millis(200)) {
                if line == probe_line {
                    seen = true;
                    break;
                }
                subscriber.early.push(line);
            }
            if seen {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "subscription never became active"
            );
        }
        subscriber
    }

    /// The next `n` non-probe lines, failing the test if they do not arrive in time.
    pub fn expect_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + LIMIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.ends_with(" probe") => {}
                Ok(line) => got.push(line),
                Err(_) => panic!("expected {n} lines, got {got:?}"),
            }
        }
        got
    }

    /// Asserts that no further line arrives within `wait`.
    pub fn expect_silence(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.ends_with(" probe") => {}
                Ok(line) => panic!("unexpected line {line:?}"),
                Err(_) => return,
            }
        }
    }
}

/// A fresh directory for one test under cargo's integration-test scratch space.
pub fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
