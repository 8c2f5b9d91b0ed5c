//! TLS listeners driven by the mosquitto clients: server authentication with `--cafile`, and
//! client certificates whose common name becomes the user name. The certificates are made for
//! the test with the `openssl` command; the test is skipped with a notice when `openssl` or the
//! mosquitto clients are missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Subscriber, TestServer, have, have_clients, publish, publish_ok, run, scratch_dir};
use mqtt_tokio::config::parse_toml;

/// Makes `ca.pem`, `server.pem`/`server.key` (localhost, 127.0.0.1) and `client.pem`/
/// `client.key` (CN sensor-7) in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let output = run(Command::new("openssl").current_dir(dir).args(args));
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Test CA",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("test setup");
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("test setup");
    for (name, cn) in [("server", "/CN=localhost"), ("client", "/CN=sensor-7")] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let ext = format!("{name}.ext");
        openssl(
            &[
                &["req"][..],
                &ec,
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
    }
}

fn tls_server(dir: &Path) -> TestServer {
    let file = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "topic readwrite public/#\nuser sensor-7\ntopic readwrite sensors/#\n",
    )
    .expect("test setup");
    let toml = format!(
        "acl_file = {acl:?}\n\
         [[listener]]\nport = 0\ncertfile = {cert}\nkeyfile = {key}\nallow_anonymous = true\n\
         [[listener]]\nport = 0\ncafile = {ca}\ncertfile = {cert}\nkeyfile = {key}\n\
         require_certificate = true\nuse_identity_as_username = true\n",
        acl = acl.display().to_string(),
        ca = file("ca.pem"),
        cert = file("server.pem"),
        key = file("server.key"),
    );
    TestServer::start(parse_toml(&toml).expect("test setup"))
}

fn ready(test: &str) -> Option<std::path::PathBuf> {
    if !have_clients(test) || !have("openssl", test) {
        return None;
    }
    let dir = scratch_dir(test);
    make_certificates(&dir);
    Some(dir)
}

#[test]
fn cafile_clients_talk_over_tls() {
    let Some(dir) = ready("cafile_clients_talk_over_tls") else {
        return;
    };
    let server = tls_server(&dir);
    let port = server.port(0);
    let ca = dir.join("ca.pem").display().to_string();
    let tls = ["-h", "localhost", "--cafile", &ca];
    // The helpers pass -h 127.0.0.1 first; the later -h localhost wins, matching the cert.
    let sub = Subscriber::start(
        port,
        &[&tls[..], &["-t", "public/#"]].concat(),
        "public/probe",
        &tls,
    );
    publish_ok(
        port,
        &[
            &tls[..],
            &["-t", "public/news", "-m", "über TLS", "-q", "1"],
        ]
        .concat(),
    );
    assert_eq!(sub.expect_lines(1), ["public/news über TLS"]);
    // A client that does not trust our CA refuses the server.
    let untrusted = publish(
        port,
        &[
            "-h",
            "localhost",
            "--cafile",
            "/dev/null",
            "-t",
            "t",
            "-m",
            "m",
        ],
    );
    assert!(!untrusted.status.success());
}

#[test]
fn client_certificate_identity_is_the_user_name() {
    let Some(dir) = ready("client_certificate_identity_is_the_user_name") else {
        return;
    };
    let server = tls_server(&dir);
    let port = server.port(1);
    let path = |name: &str| dir.join(name).display().to_string();
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
    let with_cert = [
        "-h",
        "localhost",
        "--cafile",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    // sensor-7 may use sensors/#, granted to it by name in the ACL.
    let sub = Subscriber::start(
        port,
        &[&with_cert[..], &["-t", "sensors/#"]].concat(),
        "sensors/probe",
        &with_cert,
    );
    publish_ok(
        port,
        &[&with_cert[..], &["-t", "sensors/temp", "-m", "21.5"]].concat(),
    );
    assert_eq!(sub.expect_lines(1), ["sensors/temp 21.5"]);
    // Without a certificate the TLS handshake is refused.
    let without = publish(
        port,
        &["-h", "localhost", "--cafile", &ca, "-t", "t", "-m", "m"],
    );
    assert!(!without.status.success());
}

/// One TLS listener on `dir`'s certificates with the extra TOML lines `extra`.
fn tls_listener(dir: &Path, extra: &str) -> TestServer {
    let file = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    let toml = format!(
        "[[listener]]\nport = 0\ncafile = {ca}\ncertfile = {cert}\nkeyfile = {key}\n\
         allow_anonymous = true\n{extra}",
        ca = file("ca.pem"),
        cert = file("server.pem"),
        key = file("server.key"),
    );
    TestServer::start(parse_toml(&toml).expect("test setup"))
}

/// Whether `mosquitto_pub` with the CA and `args` gets a message through `port`.
fn publishes(dir: &Path, port: u16, args: &[&str]) -> bool {
    let ca = dir.join("ca.pem").display().to_string();
    let tls = ["-h", "localhost", "--cafile", &ca, "-t", "t", "-m", "m"];
    publish(port, &[&tls[..], args].concat()).status.success()
}

/// Whether an `openssl s_client` with `args` (protocol version, cipher) completes a TLS
/// handshake with `port`, trusting the test CA. The mosquitto clients cannot be held to TLS 1.2
/// (their `--tls-version` is a minimum), so the handshake is tested with OpenSSL's own client.
fn handshakes(dir: &Path, port: u16, args: &[&str]) -> bool {
    let output = run(Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(dir.join("ca.pem"))
        .args(args)
        .stdin(std::process::Stdio::null()));
    output.status.success()
        && String::from_utf8_lossy(&output.stderr).contains("CONNECTION ESTABLISHED")
}

#[test]
fn ciphers_and_tls_version_restrict_what_clients_may_negotiate() {
    let Some(dir) = ready("ciphers_and_tls_version_restrict") else {
        return;
    };
    // As Tasmota users pin one TLS 1.2 suite (ECDSA here: the test's certificates are EC).
    let pinned = tls_listener(&dir, "ciphers = \"ECDHE-ECDSA-AES128-GCM-SHA256\"\n");
    let port = pinned.port(0);
    assert!(handshakes(
        &dir,
        port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    ));
    assert!(
        !handshakes(
            &dir,
            port,
            &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]
        ),
        "a TLS 1.2 suite outside `ciphers` is refused"
    );
    assert!(
        handshakes(&dir, port, &["-tls1_3"]),
        "TLS 1.3 is not restricted"
    );
    // An MQTT client gets through the pinned listener.
    assert!(publishes(&dir, port, &[]));

    let only13 = tls_listener(&dir, "tls_version = \"tlsv1.3\"\n");
    let port = only13.port(0);
    assert!(handshakes(&dir, port, &["-tls1_3"]));
    assert!(
        !handshakes(&dir, port, &["-tls1_2"]),
        "a TLS 1.2 client is refused by a tlsv1.3 listener"
    );
}

#[test]
fn a_revoked_client_certificate_is_refused() {
    let Some(dir) = ready("a_revoked_client_certificate_is_refused") else {
        return;
    };
    let openssl = |args: &[&str]| {
        let output = run(Command::new("openssl").current_dir(&dir).args(args));
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    std::fs::write(dir.join("index.txt"), "").expect("test setup");
    std::fs::write(dir.join("crlnumber"), "01\n").expect("test setup");
    std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = test\n[test]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         default_md = sha256\ndefault_crl_days = 2\n",
    )
    .expect("test setup");
    let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem"];
    let path = |name: &str| dir.join(name).display().to_string();
    let with_cert = |server: &TestServer| {
        let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
        let args = [
            "-h",
            "localhost",
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            "t",
            "-m",
            "m",
        ];
        publish(server.port(0), &args).status.success()
    };
    // A CRL that revokes nothing: the client certificate is accepted.
    openssl(&[&["ca", "-gencrl", "-out", "empty-crl.pem"][..], &ca].concat());
    let server = tls_listener(
        &dir,
        &format!(
            "require_certificate = true\ncrlfile = {:?}\n",
            path("empty-crl.pem")
        ),
    );
    assert!(with_cert(&server));
    drop(server);
    // Revoked: refused.
    openssl(&[&["ca", "-revoke", "client.pem"][..], &ca].concat());
    openssl(&[&["ca", "-gencrl", "-out", "crl.pem"][..], &ca].concat());
    let server = tls_listener(
        &dir,
        &format!(
            "require_certificate = true\ncrlfile = {:?}\n",
            path("crl.pem")
        ),
    );
    assert!(!with_cert(&server), "a revoked certificate gets in");
}

#[test]
fn a_renewed_certificate_serves_new_connections_after_a_reload() {
    let Some(dir) = ready("a_renewed_certificate_serves_new_connections") else {
        return;
    };
    let renewed = scratch_dir("a_renewed_certificate_renewal");
    make_certificates(&renewed); // another CA, another server certificate
    let server = tls_listener(&dir, "");
    let port = server.port(0);
    assert!(publishes(&dir, port, &[]));
    assert!(
        !publishes(&renewed, port, &[]),
        "not yet the new certificate"
    );

    // The files are replaced in place, as certbot's deploy hook does; then SIGHUP's reload.
    for name in ["server.pem", "server.key", "ca.pem"] {
        std::fs::copy(renewed.join(name), dir.join(name)).expect("test setup");
    }
    assert_eq!(server.server().reload_security(), Vec::<String>::new());
    assert!(
        publishes(&renewed, port, &[]),
        "the renewed certificate is served"
    );

    // Unusable files leave the listener as it was, and say so.
    std::fs::write(dir.join("server.key"), "not a key").expect("test setup");
    let problems = server.server().reload_security();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("TLS files not reloaded")),
        "{problems:?}"
    );
    assert!(
        publishes(&renewed, port, &[]),
        "still served after a failed reload"
    );
}

#[test]
fn a_capath_directory_of_ca_certificates_verifies_clients() {
    let Some(dir) = ready("a_capath_directory_of_ca_certificates_verifies_clients") else {
        return;
    };
    // OpenSSL's layout: the CA under its subject hash (`openssl rehash`), beside a file that
    // holds no certificate.
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("test setup");
    std::fs::copy(dir.join("ca.pem"), certs.join("test-ca.pem")).expect("test setup");
    std::fs::write(certs.join("README"), "CA certificates for the broker\n").expect("test setup");
    let rehash = run(Command::new("openssl").arg("rehash").arg(&certs));
    assert!(rehash.status.success(), "{rehash:?}");
    let path = |name: &str| dir.join(name).display().to_string();
    let file = |name: &str| format!("{:?}", path(name));
    let toml = format!(
        "[[listener]]\nport = 0\ncapath = {capath}\ncertfile = {cert}\nkeyfile = {key}\n\
         require_certificate = true\nuse_identity_as_username = true\n",
        capath = file("certs"),
        cert = file("server.pem"),
        key = file("server.key"),
    );
    let server = TestServer::start(parse_toml(&toml).expect("test setup"));
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client.key"));
    let tls = ["-h", "localhost", "--cafile", &ca, "-t", "t", "-m", "m"];
    let with_cert = publish(
        server.port(0),
        &[&tls[..], &["--cert", &cert, "--key", &key]].concat(),
    );
    assert!(with_cert.status.success(), "{with_cert:?}");
    let without = publish(server.port(0), &tls);
    assert!(
        !without.status.success(),
        "a client without a certificate got in"
    );
}
