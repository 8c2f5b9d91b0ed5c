//! A password file written by `mqtt-broker passwd` is accepted by the real mosquitto broker:
//! the right password connects, a wrong one is refused. Skips (with a notice) when mosquitto is
//! not installed.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Guard, free_port, have, run, scratch_dir, wait_for_port};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn mosquitto_accepts_our_password_file() {
    let test = "mosquitto_accepts_our_password_file";
    if !have("mosquitto", test) || !have("mosquitto_pub", test) {
        return;
    }
    let dir = scratch_dir(test);
    let passwd = dir.join("passwd");
    let made = run(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .args(["passwd", "-c", "-b"])
            .arg(&passwd)
            .args(["alice", "s3cret"]),
        LIMIT,
    );
    assert!(made.status.success(), "{made:?}");

    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let user = String::from_utf8(run(Command::new("id").arg("-un"), LIMIT).stdout).unwrap();
    std::fs::write(
        &conf,
        format!(
            "user {}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            user.trim(),
            passwd.display()
        ),
    )
    .unwrap();
    let _broker = Guard::spawn(Command::new("mosquitto").arg("-c").arg(&conf));
    wait_for_port(port, LIMIT);

    let publish = |password: &str| {
        run(
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-u", "alice", "-P", password, "-t", "t", "-m", "m"]),
            LIMIT,
        )
        .status
    };
    assert!(publish("s3cret").success());
    assert!(!publish("wrong").success());
}
