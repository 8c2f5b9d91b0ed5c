//! Switching from a running mosquitto (#17): Debian's mosquitto keeps retained messages (3.1.1
//! and 5.0 with properties) and persistent sessions with messages queued while their clients
//! are away, writes its `mosquitto.db` on SIGTERM, `mqtt-broker import-mosquitto-db` reads it,
//! and our broker then serves the same retained messages byte for byte and hands each returning
//! client its session and its queued messages, in order, once.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Guard, free_port, have, run, scratch_dir, wait_for_port};

const LIMIT: Duration = Duration::from_secs(15);

/// `mosquitto_sub` on `port` with `args`: what it printed, sorted when `sort`.
fn sub(port: u16, args: &[&str], sort: bool) -> Vec<String> {
    let output = run(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        LIMIT,
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    if sort {
        lines.sort();
    }
    lines
}

fn publish(port: u16, args: &[&str]) {
    let output = run(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        LIMIT,
    );
    assert!(
        output.status.success(),
        "mosquitto_pub {args:?}: {output:?}"
    );
}

/// The retained messages of `tele/#` as a 5.0 subscriber sees them: topic, payload in hex,
/// QoS, retain flag, content type, user properties.
fn retained(port: u16) -> Vec<String> {
    sub(
        port,
        &[
            "-V",
            "5",
            "-t",
            "tele/#",
            "-C",
            "2",
            "-W",
            "5",
            "-F",
            "%t|%x|%q|%r|%C|%P",
        ],
        true,
    )
}

/// A persistent session subscribing to `cmnd/#` at QoS 2 and leaving at once: `ha` (3.1.1,
/// CleanSession=0) or `ha5` (5.0, an hour of session expiry).
fn persistent(id: &str) -> Vec<&str> {
    let mut args = vec!["-c", "-i", id, "-q", "2", "-t", "cmnd/#"];
    if id == "ha5" {
        args.extend(["-V", "5", "-x", "3600"]);
    }
    args
}

#[test]
fn a_mosquitto_db_imported_serves_the_same_retained_messages_and_queued_sessions() {
    let test = "a_mosquitto_db_imported_serves_the_same_retained_messages";
    let mosquitto = Path::new("/usr/sbin/mosquitto");
    if !mosquitto.exists() {
        eprintln!("notice: Debian's mosquitto is not installed; skipping {test}");
        return;
    }
    if !have("mosquitto_sub", test) {
        return;
    }
    let dir = scratch_dir(test);
    let theirs = dir.join("mosquitto");
    std::fs::create_dir_all(&theirs).expect("dir");
    // mosquitto, started as root, writes its file as its own user.
    for path in [&dir, &theirs] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let port = free_port();
    let conf = theirs.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\n",
            theirs.display()
        ),
    )
    .expect("write conf");
    let mut server = Guard::spawn(Command::new(mosquitto).arg("-c").arg(&conf));
    wait_for_port(port, LIMIT);

    publish(
        port,
        &["-r", "-q", "1", "-t", "tele/plug/LWT", "-m", "Online"],
    );
    publish(
        port,
        &[
            "-V",
            "5",
            "-r",
            "-q",
            "2",
            "-t",
            "tele/plug/STATE",
            "-m",
            "{\"POWER\":\"ON\"}",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "user-property",
            "room",
            "kitchen",
        ],
    );
    for id in ["ha", "ha5"] {
        sub(port, &[&persistent(id)[..], &["-E"]].concat(), false);
    }
    for (payload, qos) in [("1", "1"), ("2", "2"), ("3", "1")] {
        publish(port, &["-q", qos, "-t", "cmnd/plug/POWER", "-m", payload]);
    }
    let theirs_retained = retained(port);
    assert_eq!(theirs_retained.len(), 2, "{theirs_retained:?}");
    // SIGTERM: mosquitto writes mosquitto.db on the way out.
    let term = run(
        Command::new("kill").args(["-TERM", &server.id().to_string()]),
        LIMIT,
    );
    assert!(term.status.success());
    let deadline = std::time::Instant::now() + LIMIT;
    while server.0.try_wait().expect("wait").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let db = theirs.join("mosquitto.db");
    let before = std::fs::read(&db).expect("mosquitto wrote mosquitto.db");

    let ours = dir.join("ours");
    std::fs::create_dir_all(&ours).expect("dir");
    let our_port = free_port();
    let log = ours.join("broker.log");
    let ours_conf = ours.join("broker.toml");
    std::fs::write(
        &ours_conf,
        format!(
            "persistence = true\npersistence_location = {:?}\n\
             [[listener]]\nport = {our_port}\nallow_anonymous = true\n\
             [log]\ndest = [{{ file = {:?} }}]\n",
            ours.display().to_string(),
            log.display().to_string()
        ),
    )
    .expect("write conf");
    let binary = env!("CARGO_BIN_EXE_mqtt-broker");
    let imported = run(
        Command::new(binary)
            .arg("import-mosquitto-db")
            .arg(&db)
            .arg("-c")
            .arg(&ours_conf),
        LIMIT,
    );
    let report = String::from_utf8_lossy(&imported.stdout);
    assert!(imported.status.success(), "{imported:?}");
    assert!(
        report.contains("2 retained messages, 2 sessions with 2 subscriptions, 6 queued"),
        "{report}"
    );
    assert_eq!(
        std::fs::read(&db).expect("still there"),
        before,
        "the mosquitto file changed"
    );
    // A second import into the now filled store is refused.
    let again = run(
        Command::new(binary)
            .arg("import-mosquitto-db")
            .arg(&db)
            .arg("-c")
            .arg(&ours_conf),
        LIMIT,
    );
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{again:?}"
    );

    let _ours = Guard::spawn(Command::new(binary).arg("-c").arg(&ours_conf));
    wait_for_port(our_port, LIMIT);
    assert_eq!(
        retained(our_port),
        theirs_retained,
        "retained messages differ"
    );
    for id in ["ha", "ha5"] {
        let args = [&persistent(id)[..], &["-F", "%p %q", "-C", "3", "-W", "5"]].concat();
        let got = sub(our_port, &args, false);
        // The client prints a QoS 2 message once its PUBREL arrives, after the QoS 1 message
        // sent behind it: the QoS 1 ones keep their order, and all three come.
        let qos1: Vec<&String> = got.iter().filter(|l| l.ends_with(" 1")).collect();
        assert_eq!(qos1, ["1 1", "3 1"], "{id}: {got:?}");
        let mut all = got.clone();
        all.sort();
        assert_eq!(all, ["1 1", "2 2", "3 1"], "{id}: its queued messages");
        // Once: nothing comes again.
        let args = [&persistent(id)[..], &["-C", "1", "-W", "2"]].concat();
        assert!(sub(our_port, &args, false).is_empty(), "{id}: sent twice");
    }
    // Started beside a mosquitto.db and no store of its own, the broker imports it by itself.
    let auto = dir.join("auto");
    std::fs::create_dir_all(&auto).expect("dir");
    std::fs::copy(&db, auto.join("mosquitto.db")).expect("copy");
    let auto_port = free_port();
    let auto_conf = auto.join("mosquitto.conf");
    std::fs::write(
        &auto_conf,
        format!(
            "listener {auto_port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}\n",
            auto.display()
        ),
    )
    .expect("write conf");
    let auto_broker = Guard::spawn(Command::new(binary).arg("-c").arg(&auto_conf));
    wait_for_port(auto_port, LIMIT);
    assert_eq!(
        retained(auto_port),
        theirs_retained,
        "first start: retained messages differ"
    );
    let (_, _, stderr) = auto_broker.finish(Duration::ZERO);
    assert!(
        stderr.contains("first start beside a mosquitto.db: imported 2 retained"),
        "{stderr}"
    );

    let logged = std::fs::read_to_string(&log).expect("log");
    for id in ["ha", "ha5"] {
        assert!(
            logged
                .lines()
                .any(|l| l.contains(&format!("client_id={id} "))
                    && l.contains("session_present=true")),
            "{id} did not resume its session:\n{logged}"
        );
    }
}
