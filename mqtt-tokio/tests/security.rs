//! Password and ACL files enforced end to end with the mosquitto clients (skipped with a notice
//! when they are not installed), and reloading them (what SIGHUP does).

mod common;

use std::time::Duration;

use common::{Subscriber, TestServer, have_clients, publish, publish_ok, scratch_dir};
use mqtt_tokio::auth::password::{DEFAULT_ITERATIONS, PasswordHash};
use mqtt_tokio::config::parse_toml;

fn password_line(user: &str, password: &str) -> String {
    let hash =
        PasswordHash::new_pbkdf2(password.as_bytes(), DEFAULT_ITERATIONS).expect("test setup");
    format!("{user}:{hash}\n")
}

fn server_with(dir: &std::path::Path, passwords: &str, acl: Option<&str>) -> TestServer {
    let password_file = dir.join("passwd");
    std::fs::write(&password_file, passwords).expect("test setup");
    let mut toml = format!(
        "password_file = {:?}\n",
        password_file.display().to_string()
    );
    if let Some(acl) = acl {
        let acl_file = dir.join("acl");
        std::fs::write(&acl_file, acl).expect("test setup");
        toml.push_str(&format!(
            "acl_file = {:?}\n",
            acl_file.display().to_string()
        ));
    }
    toml.push_str("[[listener]]\nport = 0\n");
    TestServer::start(parse_toml(&toml).expect("test setup"))
}

#[test]
fn users_need_their_password_and_anonymous_is_refused() {
    let test = "users_need_their_password_and_anonymous_is_refused";
    if !have_clients(test) {
        return;
    }
    let dir = scratch_dir(test);
    let server = server_with(&dir, &password_line("alice", "s3cret"), None);
    let port = server.port(0);
    publish_ok(port, &["-t", "t", "-m", "m", "-u", "alice", "-P", "s3cret"]);
    let wrong = publish(port, &["-t", "t", "-m", "m", "-u", "alice", "-P", "nope"]);
    assert!(!wrong.status.success());
    let unknown = publish(port, &["-t", "t", "-m", "m", "-u", "bob", "-P", "s3cret"]);
    assert!(!unknown.status.success());
    let anonymous = publish(port, &["-t", "t", "-m", "m"]);
    assert!(!anonymous.status.success());
    // Same refusals over MQTT 5 (CONNACK reason codes instead of return codes).
    let wrong5 = publish(
        port,
        &["-t", "t", "-m", "m", "-u", "alice", "-P", "x", "-V", "5"],
    );
    assert!(!wrong5.status.success());
}

#[test]
fn reload_picks_up_new_users() {
    let test = "reload_picks_up_new_users";
    if !have_clients(test) {
        return;
    }
    let dir = scratch_dir(test);
    let server = server_with(&dir, &password_line("alice", "one"), None);
    let port = server.port(0);
    let bob = ["-t", "t", "-m", "m", "-u", "bob", "-P", "two"];
    assert!(!publish(port, &bob).status.success());
    let both = password_line("alice", "one") + &password_line("bob", "two");
    std::fs::write(dir.join("passwd"), both).expect("test setup");
    assert!(server.server().reload_security().is_empty());
    publish_ok(port, &bob);
}

#[test]
fn acl_limits_what_users_publish_and_read() {
    let test = "acl_limits_what_users_publish_and_read";
    if !have_clients(test) {
        return;
    }
    let dir = scratch_dir(test);
    let passwords = password_line("alice", "a") + &password_line("bob", "b");
    let acl = "\
user alice
topic write home/#
topic write forbidden/ok
user bob
topic read home/#
topic read forbidden/#
";
    let server = server_with(&dir, &passwords, Some(acl));
    let port = server.port(0);
    let alice = ["-u", "alice", "-P", "a"];
    let bob = Subscriber::start(
        port,
        &["-u", "bob", "-P", "b", "-t", "home/#", "-t", "forbidden/+"],
        "home/probe",
        &alice,
    );
    // Allowed for alice, readable by bob.
    publish_ok(
        port,
        &[&["-t", "home/lamp", "-m", "on"][..], &alice].concat(),
    );
    assert_eq!(bob.expect_lines(1), ["home/lamp on"]);
    // Not writable by alice: dropped (3.1.1 has no way to say so) [MQTT-3.3.5-2].
    publish_ok(
        port,
        &[&["-t", "forbidden/x", "-m", "leak"][..], &alice].concat(),
    );
    bob.expect_silence(Duration::from_millis(300));
    // After a reload with an empty ACL, nothing is allowed any more (CVE-2018-12550).
    std::fs::write(dir.join("acl"), "").expect("test setup");
    assert!(server.server().reload_security().is_empty());
    publish_ok(
        port,
        &[&["-t", "home/lamp", "-m", "off"][..], &alice].concat(),
    );
    bob.expect_silence(Duration::from_millis(300));
}

#[test]
fn a_missing_acl_file_stops_the_start() {
    let dir = scratch_dir("a_missing_acl_file_stops_the_start");
    let toml = format!(
        "acl_file = {:?}\n[[listener]]\nport = 0\n",
        dir.join("missing").display().to_string()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test setup");
    let started = runtime
        .block_on(mqtt_tokio::Server::builder(parse_toml(&toml).expect("test setup")).start());
    assert!(matches!(started, Err(mqtt_tokio::ServerError::Security(_))));
}

/// mosquitto's model: a SUBSCRIBE is checked as a whole filter, every delivery by read access.
/// `home/#` is granted despite `topic deny home/secret`, which is simply never delivered; and
/// when a reload revokes read access, nothing of that topic reaches the client any more: not
/// what was queued for its persistent session, not the retained message, not new messages
/// (the retained case is the one CVE-2018-12546 is about).
#[test]
fn reload_revoking_read_access_stops_queued_retained_and_new_messages() {
    let test = "reload_revoking_read_access_stops_queued_retained_and_new_messages";
    if !have_clients(test) {
        return;
    }
    let dir = scratch_dir(test);
    let passwords = password_line("alice", "a") + &password_line("bob", "b");
    let acl = "user alice\ntopic write home/#\nuser bob\ntopic read home/#\n";
    let server = server_with(&dir, &passwords, Some(acl));
    let port = server.port(0);
    let alice = ["-u", "alice", "-P", "a"];
    let bob_args = [
        "-u", "bob", "-P", "b", "-i", "bob", "-c", "-q", "1", "-t", "home/#",
    ];
    // A persistent session subscribed to home/#, then offline.
    drop(Subscriber::start(port, &bob_args, "home/probe", &alice));
    let pub_args = |extra: &[&'static str]| [extra, &alice[..]].concat();
    publish_ok(
        port,
        &pub_args(&["-t", "home/secret", "-m", "kept", "-r", "-q", "1"]),
    );
    publish_ok(
        port,
        &pub_args(&["-t", "home/open", "-m", "queued", "-q", "1"]),
    );
    let revoked = format!("{acl}topic deny home/secret\n");
    std::fs::write(dir.join("acl"), revoked).expect("test setup");
    assert!(server.server().reload_security().is_empty());
    // Reconnect: the session resumes and subscribes to home/# again (granted).
    let bob = Subscriber::start(port, &bob_args, "home/probe", &alice);
    let mut got = bob.early.clone();
    if got.is_empty() {
        got = bob.expect_lines(1);
    }
    assert_eq!(
        got,
        ["home/open queued"],
        "the queued message that is still readable"
    );
    bob.expect_silence(Duration::from_millis(500));
    publish_ok(
        port,
        &pub_args(&["-t", "home/secret", "-m", "new", "-q", "1"]),
    );
    publish_ok(
        port,
        &pub_args(&["-t", "home/open", "-m", "new", "-q", "1"]),
    );
    assert_eq!(bob.expect_lines(1), ["home/open new"]);
    bob.expect_silence(Duration::from_millis(300));
}
