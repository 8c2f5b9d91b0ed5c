//! The `mqtt-broker` binary end to end: reads a mosquitto.conf given with `-c` (its pid file and
//! log destinations, a warning about the options it ignores), serves mosquitto clients, and
//! stops cleanly on SIGTERM; refuses an option it cannot honour. Skips with a notice when the
//! mosquitto clients are not installed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Guard, free_port, have, run, scratch_dir, wait_for_port};

const LIMIT: Duration = Duration::from_secs(10);

/// The binary with `-c conf`, run from `dir` (its default store, `./data`, stays there).
fn broker_command(dir: &Path, conf: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"));
    command.current_dir(dir).arg("-c").arg(conf);
    command
}

/// The binary started on `conf`, once it listens on `port`.
fn serve(dir: &Path, conf: &Path, port: u16) -> Guard {
    let broker = Guard::spawn(&mut broker_command(dir, conf));
    wait_for_port(port, LIMIT);
    broker
}

/// `mosquitto_pub` to the broker on `host` and `port` with `args`.
fn mosquitto_pub(host: &str, port: u16, args: &[&str]) -> std::process::Output {
    let target = ["-h", host, "-p", &port.to_string()].map(str::to_owned);
    run(Command::new("mosquitto_pub").args(target).args(args), LIMIT)
}

/// The binary refusing to start on `conf`: its standard error.
fn refusal(dir: &Path, conf: &Path) -> String {
    let output = run(&mut broker_command(dir, conf), LIMIT);
    assert!(!output.status.success(), "started on {}", conf.display());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn serves_a_mosquitto_conf_and_stops_on_sigterm() {
    let test = "serves_a_mosquitto_conf_and_stops_on_sigterm";
    if !have("mosquitto_pub", test) || !have("kill", test) {
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let (pid_file, log_file) = (dir.join("broker.pid"), dir.join("broker.log"));
    std::fs::write(
        &conf,
        format!(
            "pid_file {}\nlog_dest file {}\nlog_dest stderr\nset_tcp_nodelay true\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n",
            pid_file.display(),
            log_file.display()
        ),
    )
    .expect("write conf");
    let unused = free_port();
    let broker = Guard::spawn(broker_command(&dir, &conf).args(["-p", &unused.to_string()]));
    wait_for_port(port, LIMIT);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", unused)).is_err(),
        "-p is ignored when the file declares listeners, as in mosquitto"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the pid file is written");
    assert_eq!(pid.trim(), broker.0.id().to_string());
    let published = mosquitto_pub("127.0.0.1", port, &["-t", "t", "-m", "m"]);
    assert!(published.status.success(), "{published:?}");

    // logrotate: the file is renamed, SIGHUP makes the broker write to a new one.
    let rotated = dir.join("broker.log.1");
    std::fs::rename(&log_file, &rotated).expect("rotate");
    let hangup = run(
        Command::new("kill").args(["-HUP", &broker.0.id().to_string()]),
        LIMIT,
    );
    assert!(hangup.status.success());
    let deadline = std::time::Instant::now() + LIMIT;
    while !log_file.exists() {
        assert!(std::time::Instant::now() < deadline, "no new log file");
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = mosquitto_pub("127.0.0.1", port, &["-t", "t", "-m", "after rotation"]);
    assert!(again.status.success(), "{again:?}");

    let killed = run(
        Command::new("kill").args(["-TERM", &broker.0.id().to_string()]),
        LIMIT,
    );
    assert!(killed.status.success());
    let (status, _, stderr) = broker.finish(LIMIT);
    assert_eq!(status.map(|s| s.success()), Some(true), "{stderr}");
    assert!(
        stderr.contains("mosquitto.conf:4: option `set_tcp_nodelay` ignored"),
        "{stderr}"
    );
    assert!(stderr.contains("client connected"), "{stderr}");
    assert!(stderr.contains("-p ignored"), "{stderr}");
    let before = std::fs::read_to_string(&rotated).expect("the log file is written");
    assert!(before.contains("client connected"), "{before}");
    let after = std::fs::read_to_string(&log_file).expect("the reopened log file");
    assert!(
        after.contains("log file reopened") && after.contains("client connected"),
        "{after}"
    );
    assert!(!pid_file.exists(), "the pid file is removed at the end");
}

#[test]
fn refuses_a_mosquitto_option_it_cannot_honour_naming_file_and_line() {
    let dir = scratch_dir("refuses_a_mosquitto_option_it_cannot_honour");
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, "listener 8883\npsk_file /etc/mosquitto/psk\n").expect("write conf");
    let stderr = refusal(&dir, &conf);
    let expected = format!(
        "{}:2: psk_file: TLS-PSK is not supported; use certificates",
        conf.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn refuses_a_bad_config_with_a_message() {
    let dir = scratch_dir("refuses_a_bad_config_with_a_message");
    let conf = dir.join("broken.toml");
    std::fs::write(&conf, "[[listener]]\nprot = 1\n").expect("write conf");
    assert!(refusal(&dir, &conf).contains("prot"));
}

#[test]
fn sigusr1_and_sigusr2_leave_the_broker_running_as_in_mosquitto() {
    let test = "sigusr1_and_sigusr2_leave_the_broker_running";
    if !have("mosquitto_pub", test) || !have("kill", test) {
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "persistence true\npersistence_location {}\nautosave_interval 600\n\
             listener {port} 127.0.0.1\nallow_anonymous true\n",
            dir.display()
        ),
    )
    .expect("write conf");
    let broker = serve(&dir, &conf, port);
    let publish = |message: &str| {
        let args = ["-t", "tele/plug/STATE", "-r", "-q", "1", "-m", message];
        mosquitto_pub("127.0.0.1", port, &args)
    };
    assert!(publish("before").status.success());
    let pid = broker.0.id().to_string();
    for signal in ["-USR1", "-USR2"] {
        let sent = run(Command::new("kill").args([signal, &pid]), LIMIT);
        assert!(sent.status.success());
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            publish(signal).status.success(),
            "the broker still serves after {signal}"
        );
    }
    let killed = run(Command::new("kill").args(["-TERM", &pid]), LIMIT);
    assert!(killed.status.success());
    let (status, _, stderr) = broker.finish(LIMIT);
    assert_eq!(status.map(|s| s.success()), Some(true), "{stderr}");
    assert!(
        stderr.contains("checkpoint asked for: writing the journaled changes durably"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sessions and subscriptions follow"),
        "{stderr}"
    );
}

#[test]
fn a_listener_without_an_address_serves_ipv4_and_ipv6_as_mosquitto() {
    let test = "a_listener_without_an_address_serves_ipv4_and_ipv6";
    if !have("mosquitto_pub", test) {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("notice: no IPv6 loopback here; skipping {test}");
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port}\nallow_anonymous true\n")).expect("write conf");
    let _broker = serve(&dir, &conf, port);
    for host in ["127.0.0.1", "::1"] {
        let published = mosquitto_pub(host, port, &["-t", "t", "-m", host]);
        assert!(published.status.success(), "{host}: {published:?}");
    }
}

#[test]
fn socket_domain_keeps_a_listener_to_one_ip_version_as_mosquitto() {
    let test = "socket_domain_keeps_a_listener_to_one_ip_version";
    if !have("mosquitto_pub", test) {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("notice: no IPv6 loopback here; skipping {test}");
        return;
    }
    let dir = scratch_dir(test);
    for (domain, served, refused) in [("ipv4", "127.0.0.1", "::1"), ("ipv6", "::1", "127.0.0.1")] {
        let port = free_port();
        let conf = dir.join(format!("{domain}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port}\nsocket_domain {domain}\nallow_anonymous true\n"),
        )
        .expect("write conf");
        let _broker = Guard::spawn(&mut broker_command(&dir, &conf));
        let deadline = std::time::Instant::now() + LIMIT;
        while std::net::TcpStream::connect((served, port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{domain}: not listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let published = mosquitto_pub(served, port, &["-t", "t", "-m", domain]);
        assert!(
            published.status.success(),
            "{domain} on {served}: {published:?}"
        );
        let other = mosquitto_pub(refused, port, &["-t", "t", "-m", domain]);
        assert!(!other.status.success(), "{domain} on {refused}: {other:?}");
    }
}

/// The real, effective, saved and file-system user ids of process `pid`.
fn uids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    line.split_whitespace()
        .skip(1)
        .map(|id| id.parse().expect("a uid"))
        .collect()
}

#[test]
fn started_as_root_it_switches_to_the_configured_user_after_binding() {
    let test = "started_as_root_it_switches_to_the_configured_user";
    let Some(mosquitto_uid) = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd
                .lines()
                .find(|l| l.starts_with("mosquitto:"))
                .and_then(|l| l.split(':').nth(2)?.parse::<u32>().ok())
        })
    else {
        eprintln!("notice: no `mosquitto` user here; skipping {test}");
        return;
    };
    if uids(std::process::id())[1] != 0 {
        eprintln!("notice: not running as root; skipping {test}");
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("user mosquitto\nlistener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("write conf");
    let broker = serve(&dir, &conf, port);
    let deadline = std::time::Instant::now() + LIMIT;
    while uids(broker.0.id()) != [mosquitto_uid; 4] {
        assert!(
            std::time::Instant::now() < deadline,
            "still {:?}",
            uids(broker.0.id())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(broker);

    // A store directory the user cannot write stops the start, saying so (the store would
    // fail at its first write otherwise).
    let store = dir.join("root-only");
    std::fs::create_dir_all(&store).expect("store dir");
    std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    std::fs::write(
        &conf,
        format!(
            "user mosquitto\npersistence true\npersistence_location {}\nlistener {} 127.0.0.1\n",
            store.display(),
            free_port()
        ),
    )
    .expect("write conf");
    let stderr = refusal(&dir, &conf);
    assert!(
        stderr.contains("user mosquitto cannot write persistence_location"),
        "{stderr}"
    );

    // A user that does not exist stops the start, saying so.
    std::fs::write(
        &conf,
        format!(
            "user no-such-user-here\nlistener {} 127.0.0.1\n",
            free_port()
        ),
    )
    .expect("write conf");
    let stderr = refusal(&dir, &conf);
    assert!(
        stderr.contains("user no-such-user-here: no such user"),
        "{stderr}"
    );
}

#[test]
fn dash_d_runs_the_broker_in_the_background() {
    let test = "dash_d_runs_the_broker_in_the_background";
    if !have("mosquitto_pub", test) || !have("kill", test) {
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let (pid_file, log_file) = (dir.join("broker.pid"), dir.join("broker.log"));
    std::fs::write(
        &conf,
        format!(
            "pid_file {}\nlog_dest file {}\nlistener {port} 127.0.0.1\nallow_anonymous true\n",
            pid_file.display(),
            log_file.display()
        ),
    )
    .expect("write conf");
    // The command itself returns at once; the broker goes on in the background.
    let started = run(broker_command(&dir, &conf).arg("-d"), LIMIT);
    assert!(started.status.success(), "{started:?}");
    wait_for_port(port, LIMIT);
    let pid = std::fs::read_to_string(&pid_file).expect("the daemon writes its pid");
    // Ended however the test ends (only while that pid is still our broker).
    struct Daemon(String);
    impl Drop for Daemon {
        fn drop(&mut self) {
            let pid = self.0.trim();
            let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("mqtt-broker"));
            if ours {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
    let _daemon = Daemon(pid.clone());
    let published = mosquitto_pub("127.0.0.1", port, &["-t", "t", "-m", "to the daemon"]);
    assert!(published.status.success(), "{published:?}");
    let killed = run(Command::new("kill").args(["-TERM", pid.trim()]), LIMIT);
    assert!(killed.status.success());
    let deadline = std::time::Instant::now() + LIMIT;
    while pid_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let logged = std::fs::read_to_string(&log_file).expect("the daemon logs to its file");
    assert!(logged.contains("client connected"), "{logged}");
}

#[test]
fn log_dest_topic_publishes_log_lines_under_sys_as_mosquitto() {
    let test = "log_dest_topic_publishes_log_lines_under_sys";
    if !have("mosquitto_sub", test) {
        return;
    }
    let dir = scratch_dir(test);
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "log_dest topic\nlog_dest stderr\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )
    .expect("write conf");
    let _broker = serve(&dir, &conf, port);
    let watcher = Guard::spawn(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        "$SYS/broker/log/#",
        "-v",
        "-C",
        "1",
        "-W",
        "5",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let published = mosquitto_pub("127.0.0.1", port, &["-i", "plug-7", "-t", "t", "-m", "m"]);
    assert!(published.status.success(), "{published:?}");
    let (status, out, _) = watcher.finish(LIMIT);
    assert_eq!(status.map(|s| s.success()), Some(true), "{out}");
    assert!(
        out.starts_with("$SYS/broker/log/I ") && out.contains("client connected"),
        "{out}"
    );
}

#[test]
fn log_dest_syslog_reaches_the_syslog_daemon_with_mosquittos_facility() {
    let test = "log_dest_syslog_reaches_the_syslog_daemon";
    if !have("rsyslogd", test) || !have("mosquitto_pub", test) {
        return;
    }
    let socket = Path::new("/dev/log");
    if socket.exists() {
        eprintln!("notice: /dev/log belongs to a running syslog daemon; skipping {test}");
        return;
    }
    let dir = scratch_dir(test);
    let received = dir.join("syslog.txt");
    let rsyslog_conf = dir.join("rsyslog.conf");
    std::fs::write(
        &rsyslog_conf,
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imuxsock\" SysSock.Name=\"/dev/log\")\n\
             template(name=\"plain\" type=\"string\" \
             string=\"%syslogfacility-text%.%syslogseverity-text% %programname% %procid% %msg%\\n\")\n\
             *.* action(type=\"omfile\" file=\"{file}\" template=\"plain\")\n",
            dir = dir.display(),
            file = received.display()
        ),
    )
    .expect("write rsyslog.conf");
    /// The socket rsyslogd made, removed however the test ends (a killed daemon leaves it).
    struct Made(&'static Path);
    impl Drop for Made {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _made = Made(socket);
    let _daemon = Guard::spawn(
        Command::new("rsyslogd")
            .args(["-n", "-i"])
            .arg(dir.join("rsyslogd.pid"))
            .arg("-f")
            .arg(&rsyslog_conf),
    );
    let deadline = std::time::Instant::now() + LIMIT;
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "rsyslogd made no /dev/log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "log_dest syslog\nlog_facility 5\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )
    .expect("write conf");
    let broker = serve(&dir, &conf, port);
    let published = mosquitto_pub("127.0.0.1", port, &["-i", "plug-7", "-t", "t", "-m", "m"]);
    assert!(published.status.success(), "{published:?}");
    let wanted = format!("local5.info mqtt-broker {} ", broker.id());
    let deadline = std::time::Instant::now() + LIMIT;
    let logged = loop {
        let logged = std::fs::read_to_string(&received).unwrap_or_default();
        if logged
            .lines()
            .any(|l| l.starts_with(&wanted) && l.contains("client connected"))
        {
            break logged;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{wanted}... client connected` line in:\n{logged}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        !logged.contains("mqtt-broker") || logged.contains(&wanted),
        "{logged}"
    );
    // Nothing goes to standard error when syslog is the only destination.
    let (_, _, stderr) = broker.finish(Duration::ZERO);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn log_timestamps_and_connection_messages_follow_the_configuration() {
    let test = "log_timestamps_and_connection_messages_follow_the_configuration";
    if !have("mosquitto_pub", test) {
        return;
    }
    let dir = scratch_dir(test);
    for (options, time_stamp, connections) in [
        ("log_timestamp_format %Y/%m/%d-%H:%M:%S\n", Some('/'), true),
        (
            "log_timestamp false\nconnection_messages false\n",
            None,
            false,
        ),
    ] {
        let port = free_port();
        let log = dir.join(format!("{port}.log"));
        let conf = dir.join(format!("{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "{options}log_dest file {}\nlistener {port} 127.0.0.1\nallow_anonymous true\n",
                log.display()
            ),
        )
        .expect("write conf");
        let broker = serve(&dir, &conf, port);
        let published = mosquitto_pub("127.0.0.1", port, &["-t", "t", "-m", "m"]);
        assert!(published.status.success(), "{published:?}");
        std::thread::sleep(Duration::from_millis(200));
        drop(broker);
        let logged = std::fs::read_to_string(&log).expect("log file");
        let first = logged.lines().next().expect("a line");
        match time_stamp {
            // `2026/12/07-11:59:00  INFO ...`: the date as the format says.
            Some(separator) => assert_eq!(first.chars().nth(4), Some(separator), "{logged}"),
            None => assert!(first.trim_start().starts_with("INFO"), "{logged}"),
        }
        assert_eq!(logged.contains("client connected"), connections, "{logged}");
        assert!(logged.contains("listening on"), "{logged}");
    }
    let bad = dir.join("bad.conf");
    std::fs::write(&bad, "log_timestamp_format %Q\n").expect("write conf");
    let refused = refusal(&dir, &bad);
    assert!(
        refused.contains("bad.conf:1: log_timestamp_format"),
        "{refused}"
    );
}

#[test]
fn without_a_configuration_file_metrics_are_served_on_a_loopback_http_listener() {
    let test = "without_a_configuration_file_metrics_are_served";
    if !have("curl", test) || !have("mosquitto_pub", test) {
        return;
    }
    let dir = scratch_dir(test);
    let (port, http) = (free_port(), free_port());
    let _broker = Guard::spawn(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .current_dir(&dir)
            .args([
                "-p",
                &port.to_string(),
                "--http",
                &format!("127.0.0.1:{http}"),
            ]),
    );
    wait_for_port(port, LIMIT);
    wait_for_port(http, LIMIT);
    let published = mosquitto_pub("127.0.0.1", port, &["-t", "t", "-m", "m"]);
    assert!(published.status.success(), "{published:?}");
    let metrics = run(
        Command::new("curl").args(["-s", "-f", &format!("http://127.0.0.1:{http}/metrics")]),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(metrics.status.success(), "{metrics:?}");
    assert!(
        text.contains("mqtt_messages_received_total{qos=\"0\"} 1"),
        "{text}"
    );
    // Only a loopback address without a file (which could ask for logins).
    let output = run(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .current_dir(&dir)
            .args(["-p", &free_port().to_string(), "--http", "0.0.0.0:9"]),
        LIMIT,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only a loopback address"));
}

#[test]
fn systemd_hears_ready_only_once_the_port_accepts_then_reloading_and_stopping() {
    let test = "systemd_hears_ready_only_once_the_port_accepts";
    let dir = scratch_dir(test);
    let socket_path = dir.join("notify.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    manager.set_read_timeout(Some(LIMIT)).expect("timeout");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("write conf");
    let broker = Guard::spawn(broker_command(&dir, &conf).env("NOTIFY_SOCKET", &socket_path));
    let receive = || {
        let mut buf = [0u8; 512];
        let n = manager.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = receive();
    // Ready means the port accepts now, not later.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "READY=1 before the listener accepts"
    );
    assert_eq!(ready, format!("READY=1\nMAINPID={}", broker.id()));
    let pid = broker.id().to_string();
    assert!(
        run(Command::new("kill").args(["-HUP", &pid]), LIMIT)
            .status
            .success()
    );
    let reloading = receive();
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert_eq!(receive(), "READY=1");
    assert!(
        run(Command::new("kill").args(["-TERM", &pid]), LIMIT)
            .status
            .success()
    );
    assert_eq!(receive(), "STOPPING=1");
    let (status, _, _) = broker.finish(LIMIT);
    assert_eq!(status.map(|s| s.success()), Some(true));
}

#[test]
fn check_config_says_what_each_option_does_and_refuses_without_starting() {
    let test = "check_config_says_what_each_option_does";
    let dir = scratch_dir(test);
    std::fs::create_dir_all(dir.join("conf.d")).expect("dir");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "include_dir {}\ndhparamfile /etc/ssl/dh.pem\n",
            dir.join("conf.d").display()
        ),
    )
    .expect("write conf");
    std::fs::write(
        dir.join("conf.d/listener.conf"),
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmount_point tenant/\n"),
    )
    .expect("write conf");
    let checked = run(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .arg("check-config")
            .arg(&conf),
        LIMIT,
    );
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{checked:?}");
    for wanted in [
        "listener.conf:1: listener",
        ": honoured",
        "mosquitto.conf:2: dhparamfile /etc/ssl/dh.pem: IGNORED (rustls uses no",
        &format!("mqtt://127.0.0.1:{port} (anonymous allowed, mount point tenant/)"),
        "persistence: off",
        ": OK",
    ] {
        assert!(out.contains(wanted), "no `{wanted}` in:\n{out}");
    }
    // Nothing was started: the port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    // A refused option, and a TLS file that is not there: errors, non-zero.
    for (text, error) in [
        ("listener 1883\npsk_file /etc/psk\n", "bad.conf:2: psk_file"),
        (
            "listener 8883\ncertfile /nonexistent.pem\nkeyfile /nonexistent.key\n",
            "/nonexistent.pem",
        ),
    ] {
        let bad = dir.join("bad.conf");
        std::fs::write(&bad, text).expect("write conf");
        let refused = run(
            Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
                .arg("check-config")
                .arg(&bad),
            LIMIT,
        );
        assert!(!refused.status.success(), "{refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(error), "{stderr}");
    }
}

#[test]
fn a_mosquitto_db_that_does_not_read_whole_is_refused_and_no_store_is_written() {
    let test = "a_mosquitto_db_that_does_not_read_whole_is_refused";
    let dir = scratch_dir(test);
    // mosquitto's header, then a chunk that claims more bytes than the file has.
    let mut truncated = b"\x00\xB5\x00mosquitto db\x00\x00\x00\x00\x00\x00\x00\x06".to_vec();
    truncated.extend([0, 0, 0, 2, 0, 0, 1, 0, 1, 2, 3]);
    for (name, bytes) in [
        ("truncated.db", truncated),
        ("garbage.db", b"SQLite format 3\0 not mosquitto".to_vec()),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, &bytes).expect("write");
        let conf = dir.join("broker.toml");
        std::fs::write(
            &conf,
            format!(
                "persistence_location = {:?}\n",
                dir.join("store").display().to_string()
            ),
        )
        .expect("write conf");
        let output = run(
            Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
                .arg("import-mosquitto-db")
                .arg(&file)
                .arg("-c")
                .arg(&conf),
            LIMIT,
        );
        assert!(!output.status.success(), "{name}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("mosquitto.db, byte "), "{name}: {stderr}");
        assert!(!dir.join("store").exists(), "{name}: a store was written");
        assert_eq!(
            std::fs::read(&file).expect("read"),
            bytes,
            "{name}: the file changed"
        );
    }
}

/// `mqtt-broker watch` against the broker on `port`: waits until it is subscribed (its `ready`
/// pattern sees a probe), publishes `messages`, and returns the lines it printed after.
fn watched(port: u16, args: &[&str], messages: &[(&str, &str)]) -> Vec<String> {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
        .args(["watch", "-p", &port.to_string(), "ready"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("watch");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "watch never subscribed"
        );
        mosquitto_pub("127.0.0.1", port, &["-t", "ready", "-m", "probe"]);
        if received.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
    }
    for (topic, payload) in messages {
        let published = mosquitto_pub("127.0.0.1", port, &["-t", topic, "-m", payload]);
        assert!(published.status.success(), "{published:?}");
    }
    let mut got = Vec::new();
    while let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
        if line != "ready probe" {
            got.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    got
}

#[test]
fn watch_matches_wildcards_inside_a_level_and_exclusions_on_ours_and_on_mosquitto() {
    let test = "watch_matches_wildcards_inside_a_level_and_exclusions";
    if !have("mosquitto_pub", test) {
        return;
    }
    let dir = scratch_dir(test);
    let messages = [
        ("stat/Sonoff-Kitchen/POWER", "ON"),
        ("stat/Shelly-1/POWER", "ON"),
        ("tele/plug/SENSOR", "{\"ENERGY\":{\"Power\":12}}"),
        ("tele/plug/LWT", "Online"),
        ("stat/Sonoff-Hall/POWER", "OFF"),
    ];
    let args = ["stat/Sonoff*/POWER", "tele/#", "--exclude", "tele/+/SENSOR"];
    let expected = [
        "stat/Sonoff-Kitchen/POWER ON",
        "tele/plug/LWT Online",
        "stat/Sonoff-Hall/POWER OFF",
    ];
    let port = free_port();
    let conf = dir.join("ours.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("write conf");
    let _ours = serve(&dir, &conf, port);
    assert_eq!(watched(port, &args, &messages), expected, "against ours");
    // Any broker: the same against Debian's mosquitto.
    let mosquitto = Path::new("/usr/sbin/mosquitto");
    if !mosquitto.exists() {
        eprintln!("notice: Debian's mosquitto is not installed; {test} checked ours only");
        return;
    }
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .expect("write conf");
    let _theirs = Guard::spawn(Command::new(mosquitto).arg("-c").arg(&conf));
    wait_for_port(port, LIMIT);
    assert_eq!(
        watched(port, &args, &messages),
        expected,
        "against mosquitto"
    );
}
