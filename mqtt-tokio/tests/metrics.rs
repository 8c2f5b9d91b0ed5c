//! The HTTP listener: `/metrics` read by the Prometheus project's own OpenMetrics parser (its
//! Python client) after a known load, the probes, and logins against the password file.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{TestServer, have, have_clients, publish_ok, run, scratch_dir};
use mqtt_tokio::config::parse_toml;

/// Parses OpenMetrics text from standard input with `prometheus_client`'s parser and prints
/// one `name label=value,... value` line per sample.
const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
        print(sample.name, labels, sample.value)
"#;

/// Whether Python's Prometheus client is there to parse with.
fn have_parser(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("notice: python3 with prometheus_client is not installed; skipping {test}");
    }
    found
}

/// `curl` of `url` with `args`: the HTTP status and the body.
fn get(url: &str, args: &[&str]) -> (u16, String) {
    let output = run(Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .args(args)
        .arg(url));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("a status line");
    (status.parse().expect("a status"), body.to_owned())
}

/// The samples of an OpenMetrics text, as the Prometheus client's parser reads them.
fn parse(text: &str) -> Vec<String> {
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("parser");
    assert!(
        output.status.success(),
        "the parser refused the text: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn metrics_count_a_known_load_and_parse_with_the_prometheus_client() {
    let test = "metrics_count_a_known_load_and_parse_with_the_prometheus_client";
    if !have_clients(test) || !have("curl", test) || !have_parser(test) {
        return;
    }
    let server = TestServer::start(
        parse_toml(
            "[[listener]]\nport = 0\nallow_anonymous = true\n\
             [[listener]]\nport = 0\nprotocol = \"http\"\nallow_anonymous = true\n",
        )
        .expect("test setup"),
    );
    let (mqtt, http) = (server.port(0), server.port(1));
    let base = format!("http://127.0.0.1:{http}");
    assert_eq!(
        get(&format!("{base}/healthz"), &[]),
        (200, String::from("ok\n"))
    );
    assert_eq!(
        get(&format!("{base}/readyz"), &[]),
        (200, String::from("ready\n"))
    );
    assert_eq!(get(&format!("{base}/nothing"), &[]).0, 404);
    // 25 QoS 1 messages over one connection (one per input line), 3 at QoS 0.
    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &mqtt.to_string()])
        .args(["-q", "1", "-t", "load/test", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    let lines: String = (0..25).map(|n| format!("message {n}\n")).collect();
    publisher
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("write");
    assert!(publisher.wait().expect("wait").success());
    for _ in 0..3 {
        publish_ok(mqtt, &["-t", "load/test", "-m", "qos0"]);
    }
    let (status, text) = get(&format!("{base}/metrics"), &[]);
    assert_eq!(status, 200, "{text}");
    let samples = parse(&text);
    for wanted in [
        "mqtt_messages_received_total qos=1 25",
        "mqtt_messages_received_total qos=0 3",
        "mqtt_messages_received_total qos=2 0",
        "mqtt_connects_accepted_total  4",
        "mqtt_auth_failures_total  0",
        "mqtt_messages_inflight  0",
    ] {
        assert!(
            samples.iter().any(|s| s == wanted),
            "no `{wanted}` among\n{}",
            samples.join("\n")
        );
    }
    // Connections accepted, by listener: the four publishers on the MQTT listener.
    let accepted =
        format!("mqtt_listener_connections_accepted_total listener=mqtt://127.0.0.1:{mqtt} 4");
    assert!(samples.contains(&accepted), "{}", samples.join("\n"));
    // Open now, by listener: the publishers are gone.
    let open = format!("mqtt_listener_connections listener=mqtt://127.0.0.1:{mqtt} 0");
    assert!(samples.contains(&open), "{}", samples.join("\n"));
}

#[test]
fn metrics_ask_for_a_login_from_the_password_file_unless_local_and_anonymous() {
    let test = "metrics_ask_for_a_login_from_the_password_file";
    if !have("curl", test) || !have("mosquitto_passwd", test) {
        return;
    }
    let dir = scratch_dir(test);
    let passwd = dir.join("passwd");
    std::fs::write(&passwd, "").expect("test setup");
    let made = run(Command::new("mosquitto_passwd")
        .arg("-b")
        .arg(&passwd)
        .args(["prometheus", "scrape-secret"]));
    assert!(made.status.success(), "{made:?}");
    let server = TestServer::start(
        parse_toml(&format!(
            "password_file = {:?}\n\
             [[listener]]\nport = 0\nprotocol = \"http\"\n",
            passwd.display().to_string()
        ))
        .expect("test setup"),
    );
    let url = format!("http://127.0.0.1:{}", server.port(0));
    let metrics = format!("{url}/metrics");
    let (status, _) = get(&metrics, &[]);
    assert_eq!(status, 401);
    let headers = run(Command::new("curl").args(["-s", "-D", "-", "-o", "/dev/null", &metrics]));
    assert!(
        String::from_utf8_lossy(&headers.stdout)
            .contains("www-authenticate: Basic realm=\"mqtt-broker\""),
        "{headers:?}"
    );
    assert_eq!(get(&metrics, &["-u", "prometheus:wrong"]).0, 401);
    assert_eq!(get(&metrics, &["-u", "nobody:scrape-secret"]).0, 401);
    let (status, text) = get(&metrics, &["-u", "prometheus:scrape-secret"]);
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The probes answer without a login: they tell nothing.
    assert_eq!(get(&format!("{url}/healthz"), &[]).0, 200);
    assert_eq!(get(&format!("{url}/readyz"), &[]).0, 200);
}
