//! Shared by the integration tests: our broker in-process (mqtt-tokio) and Debian's mosquitto
//! on free loopback ports, test certificates made with the `openssl` command, and runs of the
//! `mqtt-load` binary whose `RESULT` line and JSON summary are parsed.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mqtt_tokio::Server;
use mqtt_tokio::config::parse_toml;

/// How long any one run of the load tool may take.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A scratch directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temporary directory.
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("mqtt-load-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    /// A path inside it, as a string.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port below the kernel's ephemeral range (32768 and up), free a moment ago and
/// handed to no other test of this process, so no client connection takes it as its source
/// port before the broker binds it.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 997) as u16 * 10;
    loop {
        let port = 20_000 + (offset + 5_000 + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Debian's mosquitto, if installed.
pub fn mosquitto_binary() -> Option<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Whether a command-line tool can be started; prints a notice naming the test if not.
pub fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED {test}: `{tool}` is not installed");
    }
    found
}

/// A mosquitto process on its own configuration, killed (by its PID) when dropped.
pub struct Mosquitto {
    child: Child,
    /// The ports of its listeners, in the order of the configuration.
    pub ports: Vec<u16>,
    _dir: TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// Starts mosquitto with `listeners` listeners: `listeners[i]` holds the lines after the
    /// `listener PORT 127.0.0.1` line of listener `i`; `global` goes first. `None` (with a
    /// notice) where mosquitto is not installed.
    pub fn start(test: &str, global: &str, listeners: &[String]) -> Option<Mosquitto> {
        let Some(binary) = mosquitto_binary() else {
            eprintln!("SKIPPED {test}: mosquitto is not installed (apt-get install mosquitto)");
            return None;
        };
        let dir = TempDir::new("mosquitto");
        let ports: Vec<u16> = listeners.iter().map(|_| free_port()).collect();
        let mut config = format!("{global}\n");
        for (port, lines) in ports.iter().zip(listeners) {
            config.push_str(&format!("listener {port} 127.0.0.1\n{lines}\n"));
        }
        let config_file = dir.file("mosquitto.conf");
        std::fs::write(&config_file, config).expect("test setup");
        let log = std::fs::File::create(dir.file("mosquitto.log")).expect("test setup");
        let child = Command::new(binary)
            .args(["-c", &config_file])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("mosquitto starts");
        let mut broker = Mosquitto {
            child,
            ports,
            _dir: dir,
        };
        let started = Instant::now();
        for &port in &broker.ports {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                let exited = broker.child.try_wait().expect("mosquitto's status");
                let log = std::fs::read_to_string(broker._dir.file("mosquitto.log"));
                assert!(exited.is_none(), "mosquitto exited: {exited:?} {log:?}");
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "mosquitto did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(broker)
    }

    /// The port of listener `i`.
    pub fn port(&self, i: usize) -> String {
        self.ports[i].to_string()
    }
}

/// Our broker (mqtt-tokio) on its own runtime, with the listeners of a TOML configuration
/// (ports 0: the system picks free ones); shut down when dropped.
pub struct OurBroker {
    runtime: tokio::runtime::Runtime,
    server: Option<Server>,
}

impl OurBroker {
    /// Starts the broker `toml` describes.
    pub fn start(toml: &str) -> OurBroker {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let config = parse_toml(toml).expect("a valid configuration");
        let server = runtime
            .block_on(Server::builder(config).start())
            .expect("our broker starts");
        OurBroker {
            runtime,
            server: Some(server),
        }
    }

    /// The port of listener `i`.
    pub fn port(&self, i: usize) -> String {
        let server = self.server.as_ref().expect("running");
        server.local_addrs()[i].port().to_string()
    }
}

impl Drop for OurBroker {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.shutdown());
        }
    }
}

/// Makes, in `dir`, with the `openssl` command: `ca.pem` (an EC test CA), `server.pem` /
/// `server.key` (RSA, for 127.0.0.1 and localhost, so ECDHE-RSA suites apply) and
/// `client.pem` / `client.key` (EC, CN load-client).
pub fn make_certificates(dir: &TempDir) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .current_dir(&dir.0)
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    openssl(
        &[
            &["req", "-x509", "-nodes"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=mqtt-load test CA"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.0.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )
    .expect("test setup");
    std::fs::write(
        dir.0.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("test setup");
    let rsa = ["-newkey", "rsa:2048"];
    for (name, key_kind, cn) in [
        ("server", &rsa[..], "/CN=localhost"),
        ("client", &ec[..], "/CN=load-client"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            &[
                &["req", "-nodes"][..],
                key_kind,
                &["-keyout", &key, "-out", &csr, "-subj", cn],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
        // mosquitto started as root reads its files as the `mosquitto` user.
        std::fs::set_permissions(dir.0.join(&key), std::fs::Permissions::from_mode(0o644))
            .expect("test setup");
    }
}

/// One finished run of `mqtt-load`.
#[derive(Debug)]
pub struct Run {
    /// Its exit code.
    pub code: Option<i32>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// The fields of its `RESULT` line.
    pub fields: HashMap<String, String>,
}

impl Run {
    fn new(code: Option<i32>, stdout: String, stderr: String) -> Run {
        let fields = stdout
            .lines()
            .find(|l| l.starts_with("RESULT "))
            .map(|line| {
                line.split_whitespace()
                    .skip(1)
                    .filter_map(|field| field.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Run {
            code,
            stdout,
            stderr,
            fields,
        }
    }

    /// Field `key` of the RESULT line.
    pub fn field(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {self:#?}"))
    }

    /// Field `key` as a number.
    pub fn num(&self, key: &str) -> f64 {
        self.field(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key} is not a number in {self:#?}"))
    }

    /// The JSON summary printed with `--json`.
    pub fn json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON line in {self:#?}"));
        serde_json::from_str(line).expect("the summary is valid JSON")
    }

    /// Asserts a successful run and returns it.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "mqtt-load failed: {self:#?}");
        self
    }
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqtt-load"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `mqtt-load` with `args` to the end.
pub fn load(args: &[&str]) -> Run {
    let child = command(args).spawn().expect("mqtt-load starts");
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = wait
        .recv_timeout(RUN_LIMIT)
        .expect("mqtt-load ends in time")
        .expect("mqtt-load's output");
    Run::new(
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `mqtt-load sub` running in the background.
pub struct Background {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

/// Starts `mqtt-load sub` with `args` (without `--quiet`) and returns once its clients are
/// subscribed, so what is published next reaches them.
pub fn subscribed(args: &[&str]) -> Background {
    assert_eq!(args.first(), Some(&"sub"));
    let mut child = command(args).spawn().expect("mqtt-load starts");
    let stderr = child.stderr.take().expect("piped");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut background = Background {
        child,
        stderr: receiver,
    };
    let mut seen = Vec::new();
    loop {
        match background.stderr.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains("clients subscribed") => return background,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = background.child.kill();
                panic!("the subscribers did not subscribe ({e}): {seen:?}");
            }
        }
    }
}

impl Background {
    /// Waits for the run to end.
    pub fn finish(mut self) -> Run {
        let started = Instant::now();
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("its status") {
                break status.code();
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = self.child.kill();
                panic!("mqtt-load sub did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut stdout);
        }
        let stderr: Vec<String> = self.stderr.try_iter().collect();
        Run::new(code, stdout, stderr.join("\n"))
    }
}

/// Path helper for the tests' certificate options.
pub fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
