//! Helpers shared by the integration tests: finding the mosquitto tools, running a child process
//! with a deadline, and killing children that outlive their test.

#![allow(dead_code)]

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Starts `command` with piped stdout and stderr.
    pub fn spawn(command: &mut Command) -> Guard {
        Guard(
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn"),
        )
    }

    /// Waits up to `limit` for the child to exit, killing it afterwards, and returns what it
    /// printed.
    pub fn finish(mut self, limit: Duration) -> (Option<std::process::ExitStatus>, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.0.kill();
                let _ = self.0.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        if let Some(mut stderr) = self.0.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        (status, out, err)
    }
}

/// Runs `command` to completion within `limit` (killed otherwise).
pub fn run(command: &mut Command, limit: Duration) -> Output {
    let (status, stdout, stderr) = Guard::spawn(command.stdin(Stdio::null())).finish(limit);
    let status = status.unwrap_or_else(|| panic!("{command:?} timed out; stderr: {stderr}"));
    Output {
        status,
        stdout: stdout.into_bytes(),
        stderr: stderr.into_bytes(),
    }
}

/// A loopback port below the kernel's range of ephemeral ports (32768 and up on Linux), free
/// a moment ago and handed to no other test of this process. The kernel may hand the same
/// free port to two tests asking for port 0, and a port in the ephemeral range may become a
/// client connection's source port before the server binds it; neither can happen here.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 997) as u16 * 10;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on `port`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
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

/// A CA and a server certificate for `localhost` / 127.0.0.1 in `dir`, made with `openssl` (and a
/// client certificate `client.pem` for `/C=DE/O=Home Lab/CN=plug-7`);
/// the key readable by mosquitto's own user.
pub fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let output = run(
            Command::new("openssl").current_dir(dir).args(args),
            Duration::from_secs(30),
        );
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test CA",
    ];
    openssl(&[&["req", "-x509"][..], &ec, &ca].concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("test setup");
    let csr = [
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ];
    openssl(&[&["req"][..], &ec, &csr].concat());
    let sign = |name: &str| {
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])
    };
    sign("server");
    let client = [
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/C=DE/O=Home Lab/CN=plug-7",
    ];
    openssl(&[&["req"][..], &ec, &client].concat());
    sign("client");
    std::fs::set_permissions(
        dir.join("server.key"),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )
    .expect("chmod");
}
