//! Hardening: authentication and ACLs against the attacks mosquitto met. User names and client
//! identifiers holding `+`, `#` or `/` cannot widen a `%u` / `%c` pattern (CVE-2017-7650); an
//! empty or unreadable ACL file denies, never allows (CVE-2018-12550); a client whose read
//! access was revoked by a SIGHUP reload does not get the retained message after reconnecting
//! (CVE-2018-12546 family), nor new messages through a subscription its kept session still
//! holds; a retained message whose publisher's write access was revoked goes to no new
//! subscriber (CVE-2018-12546 itself, unless `check_retain_source = false`); 200 wrong
//! passwords in a row do not slow the broker for others.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mqtt_tokio::auth::password::{DEFAULT_ITERATIONS, PasswordHash};
use raw::{Broker, Got, Login, Raw, connect, publish, quantile};

/// Whether a SUBACK or PUBACK reason code refuses (0x80 and above; the ACL answers 0x80 to a
/// SUBSCRIBE and 0x87 to a PUBLISH, the tests only need "refused").
fn refused(code: u8) -> bool {
    code >= 0x80
}

/// Whether a SUBSCRIBE answer refuses every filter.
fn all_refused(codes: &[u8]) -> bool {
    !codes.is_empty() && codes.iter().all(|&c| refused(c))
}

fn password_lines(users: &[(&str, &str)]) -> String {
    users
        .iter()
        .map(|(user, password)| {
            let hash =
                PasswordHash::new_pbkdf2(password.as_bytes(), DEFAULT_ITERATIONS).expect("hash");
            format!("{user}:{hash}\n")
        })
        .collect()
}

/// A broker with a password file for `users` and an ACL file holding `acl`.
fn start(test: &str, users: &[(&str, &str)], acl: &str) -> Broker {
    start_with(test, users, acl, "")
}

/// Like [`start`], with more top-level configuration keys.
fn start_with(test: &str, users: &[(&str, &str)], acl: &str, top: &str) -> Broker {
    let dir = common::scratch_dir(&format!("{test}-files"));
    let passwd = dir.join("passwd");
    let acl_file = dir.join("acl");
    raw::write(&passwd, &password_lines(users));
    raw::write(&acl_file, acl);
    let top = format!(
        "password_file = {:?}\nacl_file = {:?}\n{top}\n",
        passwd.display().to_string(),
        acl_file.display().to_string()
    );
    let broker = Broker::start(test, &top, "");
    // Keep the files where the test can reach them.
    std::fs::copy(&acl_file, broker.path("acl")).expect("copy");
    broker
}

fn acl_path(broker: &Broker) -> std::path::PathBuf {
    let text = std::fs::read_to_string(broker.path("broker.toml")).expect("config");
    let line = text
        .lines()
        .find(|l| l.starts_with("acl_file"))
        .expect("acl_file line");
    let quoted = line.split('=').nth(1).expect("value").trim();
    quoted.trim_matches('"').into()
}

/// A v5 client logging in as `login` with session expiry `expiry` (0 = clean session).
fn login(broker: &Broker, id: &str, who: Login<'_>, clean: bool, expiry: u32) -> (Raw, u8) {
    let mut c = broker.tcp();
    let props = if expiry > 0 {
        let mut p = vec![0x11];
        p.extend(expiry.to_be_bytes());
        p
    } else {
        Vec::new()
    };
    let mut packet = connect(5, id, 60, who, &props);
    if !clean {
        // Clean Start is bit 1 of the flags byte, right after the protocol level.
        let at = packet.iter().position(|&b| b == 5).expect("level") + 1;
        packet[at] &= !0x02;
    }
    c.send(&packet);
    let (h, body) = c.expect_packet();
    assert_eq!(h, 0x20);
    c.v5 = true;
    (c, body.get(1).copied().unwrap_or(0xff))
}

fn user(broker: &Broker, id: &str, name: &str, password: &str) -> Raw {
    let (c, code) = login(broker, id, Some((name, password)), true, 0);
    assert_eq!(code, 0, "{name} refused");
    c
}

/// The reason code of a QoS 1 PUBLISH's PUBACK.
fn publish_code(c: &mut Raw, topic: &str) -> u8 {
    c.send(&publish(true, topic, b"m", 1, 1, false));
    let (_, body) = c.expect_kind(4);
    body.get(2).copied().unwrap_or(0)
}

/// Whether a PUBLISH arrives within `limit` (acknowledged, so it is not redelivered later).
fn receives(c: &mut Raw, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        match c.read(end.saturating_duration_since(Instant::now())) {
            Got::Packet(h, body) if h >> 4 == 3 => {
                let (_, id, _) = raw::parse_publish(c.v5, h, &body);
                if (h >> 1) & 3 > 0 {
                    c.send(&raw::ack(0x40, id));
                }
                return true;
            }
            Got::Packet(..) => {}
            Got::Timeout | Got::Closed => return false,
        }
    }
}

#[test]
fn cve_2017_7650_wildcards_in_names_cannot_widen_patterns() {
    // A `#` line is a comment in a password file, so no user can be called `#`.
    let users = [
        ("alice", "pw"),
        ("+", "pw"),
        ("alice/x", "pw"),
        ("a#", "pw"),
    ];
    let acl = "pattern readwrite users/%u/#\npattern readwrite clients/%c/#\n";
    let broker = start("hardening_auth_patterns", &users, acl);

    let mut alice = user(&broker, "alice-c", "alice", "pw");
    assert_eq!(alice.subscribe(1, "users/alice/#", 1), vec![1]);
    assert_eq!(alice.subscribe(2, "clients/alice-c/#", 1), vec![1]);
    alice.send(&publish(true, "users/alice/t", b"m", 0, 0, false));
    assert!(
        receives(&mut alice, Duration::from_secs(2)),
        "alice reads her own"
    );

    // Each attacker tries to read and write alice's topics through a widened pattern. Its
    // SUBSCRIBE may be refused, or granted with every delivery filtered; either way nothing of
    // alice's may reach it, and its PUBLISH is refused.
    let mut attackers = Vec::new();
    for (name, id, filter, topic) in [
        ("+", "u1", "users/+/#", "users/alice/t"),
        ("a#", "u2", "users/+/#", "users/alice/t"),
        ("alice/x", "u3", "users/alice/x/#", "users/alice/x/t"),
        ("alice", "+", "clients/+/#", "clients/alice-c/t"),
        ("alice", "#", "clients/#", "clients/alice-c/t"),
        (
            "alice",
            "alice-c/x",
            "clients/alice-c/x/#",
            "clients/alice-c/x/t",
        ),
    ] {
        let mut c = user(&broker, id, name, "pw");
        let codes = c.subscribe(1, filter, 1);
        let code = publish_code(&mut c, topic);
        assert!(
            refused(code),
            "user {name:?} / client {id:?} wrote {topic}: PUBACK {code:#x}"
        );
        eprintln!("user {name:?} / client {id:?}: SUBACK {codes:x?}, PUBACK {code:#x}");
        attackers.push((name, id, c));
    }
    assert!(
        !receives(&mut alice, Duration::from_millis(300)),
        "an attacker's PUBLISH reached alice"
    );
    let (_, code) = login(&broker, "hash", Some(("#", "pw")), true, 0);
    assert_eq!(code, 0x86, "no user `#`");

    for topic in [
        "users/alice/t",
        "users/alice/x/t",
        "clients/alice-c/t",
        "clients/alice-c/x/t",
    ] {
        assert_eq!(publish_code(&mut alice, topic), 0);
    }
    for (name, id, c) in &mut attackers {
        assert!(
            !receives(c, Duration::from_millis(200)),
            "user {name:?} / client {id:?} read alice's message"
        );
    }
}

#[test]
fn cve_2018_12550_empty_or_unreadable_acl_denies() {
    let broker = start("hardening_auth_empty_acl", &[("bob", "pw")], "");
    let mut bob = user(&broker, "bob", "bob", "pw");
    assert!(all_refused(&bob.subscribe(1, "#", 0)));
    assert!(all_refused(&bob.subscribe(2, "a", 0)));
    assert!(refused(publish_code(&mut bob, "a")));

    // A working ACL, then one that cannot be read (removed) or parsed: reload denies.
    let acl = acl_path(&broker);
    for broken in [None, Some("topic maybe a\n")] {
        raw::write(&acl, "user bob\ntopic readwrite a\n");
        broker.reload();
        std::thread::sleep(Duration::from_millis(300));
        let mut bob = user(&broker, "bob", "bob", "pw");
        assert_eq!(
            bob.subscribe(1, "a", 0),
            vec![0],
            "granted before {broken:?}"
        );
        match broken {
            None => std::fs::remove_file(&acl).expect("remove"),
            Some(text) => raw::write(&acl, text),
        }
        broker.reload();
        std::thread::sleep(Duration::from_millis(300));
        let mut bob = user(&broker, "bob", "bob", "pw");
        assert!(all_refused(&bob.subscribe(1, "a", 0)), "after {broken:?}");
        assert!(refused(publish_code(&mut bob, "a")), "after {broken:?}");
    }
}

/// A writer, and a reader whose read access to `secret/#` the test revokes.
const ACL_GRANT: &str = "user writer\ntopic write secret/#\nuser reader\ntopic read secret/#\n";
const ACL_REVOKE: &str = "user writer\ntopic write secret/#\nuser reader\ntopic read public/#\n";
const READERS: [(&str, &str); 2] = [("writer", "pw"), ("reader", "pw")];

/// Starts the broker with `ACL_GRANT`, publishes a retained message to `secret/r`, and checks
/// that the reader (session kept for an hour) receives it.
fn granted_then_retained(test: &str) -> (Broker, Raw) {
    let broker = start(test, &READERS, ACL_GRANT);
    let mut writer = user(&broker, "writer", "writer", "pw");
    writer.send(&publish(true, "secret/r", b"retained", 1, 1, true));
    assert_eq!(writer.expect_kind(4).1.get(2).copied().unwrap_or(0), 0);
    let (mut reader, code) = login(&broker, "reader", Some(("reader", "pw")), true, 3600);
    assert_eq!(code, 0);
    assert_eq!(reader.subscribe(1, "secret/#", 1), vec![1]);
    assert!(
        receives(&mut reader, Duration::from_secs(2)),
        "retained while granted"
    );
    drop(reader);
    (broker, writer)
}

fn revoke(broker: &Broker) {
    raw::write(&acl_path(broker), ACL_REVOKE);
    broker.reload();
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn cve_2018_12546_revoked_reader_gets_no_retained_message() {
    let (broker, _writer) = granted_then_retained("hardening_auth_revoke");
    revoke(&broker);
    // Reconnecting clean and subscribing again: no retained message (the SUBSCRIBE may be
    // refused or granted with deliveries filtered).
    let (mut reader, code) = login(&broker, "reader", Some(("reader", "pw")), true, 0);
    assert_eq!(code, 0);
    let codes = reader.subscribe(1, "secret/#", 1);
    eprintln!("revoked reader's SUBACK {codes:x?}");
    assert!(
        !receives(&mut reader, Duration::from_millis(500)),
        "revoked reader got the retained message"
    );
}

#[test]
fn revoked_reader_gets_nothing_through_its_kept_subscription() {
    let (broker, mut writer) = granted_then_retained("hardening_auth_revoke_kept");
    revoke(&broker);
    // Reconnecting with the kept session: its old subscription must not deliver any more.
    let (mut reader, code) = login(&broker, "reader", Some(("reader", "pw")), false, 3600);
    assert_eq!(code, 0);
    writer.send(&publish(true, "secret/new", b"new", 1, 2, false));
    writer.expect_kind(4);
    assert!(
        !receives(&mut reader, Duration::from_millis(500)),
        "revoked reader got a new message through its kept subscription"
    );
}

/// Alice may write `house/#`, Bob only read it; then Alice's write access is revoked.
const ACL_WRITER: &str = "user alice\ntopic readwrite house/#\nuser bob\ntopic read house/#\n";
const ACL_WRITER_REVOKED: &str = "user alice\ntopic read house/#\nuser bob\ntopic read house/#\n";

/// Alice publishes a retained message, Bob gets it; the ACL file is rewritten to revoke Alice's
/// write access and reloaded (SIGHUP); returns whether a new subscriber still gets it.
fn retained_after_publisher_revoked(test: &str, top: &str) -> bool {
    let users = [("alice", "pw"), ("bob", "pw")];
    let broker = start_with(test, &users, ACL_WRITER, top);
    let mut alice = user(&broker, "alice", "alice", "pw");
    alice.send(&publish(true, "house/door", b"open", 1, 1, true));
    assert_eq!(alice.expect_kind(4).1.get(2).copied().unwrap_or(0), 0);
    drop(alice);
    let mut bob = user(&broker, "bob", "bob", "pw");
    assert_eq!(bob.subscribe(1, "house/#", 1), vec![1]);
    assert!(receives(&mut bob, Duration::from_secs(2)), "while granted");
    drop(bob);

    raw::write(&acl_path(&broker), ACL_WRITER_REVOKED);
    broker.reload();
    std::thread::sleep(Duration::from_millis(300));
    let mut bob = user(&broker, "bob", "bob", "pw");
    assert_eq!(bob.subscribe(1, "house/#", 1), vec![1], "Bob still reads");
    receives(&mut bob, Duration::from_millis(500))
}

#[test]
fn cve_2018_12546_retained_message_of_a_revoked_publisher_is_not_delivered() {
    assert!(
        !retained_after_publisher_revoked("hardening_auth_retain_source", ""),
        "a new subscriber got the retained message of a publisher whose write access was revoked"
    );
}

#[test]
fn check_retain_source_off_keeps_delivering_it() {
    assert!(retained_after_publisher_revoked(
        "hardening_auth_retain_source_off",
        "check_retain_source = false"
    ));
}

#[test]
fn two_hundred_wrong_passwords_do_not_slow_others() {
    let broker = start(
        "hardening_auth_guessing",
        &[("carol", "right")],
        "topic readwrite #\nuser carol\ntopic readwrite #\n",
    );
    let mut probe = user(&broker, "probe", "carol", "right");
    let mut quiet: Vec<Duration> = (0..50).map(|_| probe.ping()).collect();
    let quiet_p99 = quantile(&mut quiet, 0.99);

    let done = Arc::new(AtomicBool::new(false));
    let guesser = {
        let port = broker.port;
        let done = done.clone();
        std::thread::spawn(move || {
            let mut refused = 0;
            for i in 0..200 {
                let mut c = Raw::tcp(port);
                c.send(&connect(
                    5,
                    &format!("guess-{i}"),
                    60,
                    Some(("carol", &format!("wrong{i}"))),
                    &[],
                ));
                if let Got::Packet(0x20, body) = c.read(Duration::from_secs(5))
                    && body.get(1) == Some(&0x86)
                {
                    refused += 1;
                }
            }
            done.store(true, Ordering::Relaxed);
            refused
        })
    };
    let mut pings = Vec::new();
    let mut logins = Vec::new();
    while !done.load(Ordering::Relaxed) {
        pings.push(probe.ping());
        let start = Instant::now();
        drop(user(&broker, "fresh", "carol", "right"));
        logins.push(start.elapsed());
    }
    let refused = guesser.join().expect("guesser");
    let ping_p99 = quantile(&mut pings, 0.99);
    let login_p99 = quantile(&mut logins, 0.99);
    eprintln!(
        "quiet ping p99 {quiet_p99:?}; during 200 wrong passwords ping p99 {ping_p99:?}, \
         good login p99 {login_p99:?} ({} samples)",
        pings.len()
    );
    assert_eq!(refused, 200, "every wrong password refused with 0x86");
    assert!(
        ping_p99 < Duration::from_millis(50) + quiet_p99,
        "ping p99 {ping_p99:?}"
    );
    assert!(
        login_p99 < Duration::from_millis(100),
        "login p99 {login_p99:?}"
    );
}
