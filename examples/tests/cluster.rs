//! A cluster over real sockets: a real `nats-server -js` (Debian's package) and three nodes of
//! our binary, each with its own `[cluster]` table, and real clients on different nodes:
//! Debian's mosquitto_pub / mosquitto_sub and our own `mqtt-client`. Each node is waited for
//! through the systemd notification it sends once it has joined the cluster.
//!
//! Skips with a notice where `nats-server` or the mosquitto clients are not installed
//! (`.ci/run` installs both).

#[path = "common/client.rs"]
mod client;
mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use client::{TestClient, s, text};
use common::{Guard, free_port, have, run, scratch_dir};
use mqtt_client::{Disconnection, Options};
use mqtt_wire::{ProtocolVersion, QoS, ReasonCode, SubscriptionOptions};

const LIMIT: Duration = Duration::from_secs(10);
/// How long to wait for copies that should not come.
const QUIET: Duration = Duration::from_millis(600);

/// A NATS server with JetStream, its store in the test's directory.
struct Nats {
    _guard: Guard,
    port: u16,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        Self::start_on(dir, free_port())
    }

    /// On `port`, with the store kept in `dir` (a restart finds its streams again).
    fn start_on(dir: &Path, port: u16) -> Nats {
        Self::start_at(dir, "127.0.0.1", port)
    }

    /// On `host`:`port`.
    fn start_at(dir: &Path, host: &str, port: u16) -> Nats {
        let store = dir.join("jetstream");
        let guard = Guard::spawn(Command::new("nats-server").args([
            "-js",
            "-a",
            host,
            "-p",
            &port.to_string(),
            "-sd",
            &store.display().to_string(),
        ]));
        wait_until_accepting(host, port);
        Nats {
            _guard: guard,
            port,
        }
    }
}

/// One node of ours.
struct Node {
    _guard: Guard,
    port: u16,
}

impl Node {
    /// Starts node `name` on NATS at `nats` and waits until it has joined (READY=1).
    fn start(dir: &Path, name: &str, nats: u16) -> Node {
        Self::start_in(dir, name, None, "127.0.0.1", &format!("127.0.0.1:{nats}"))
    }

    /// Starts node `name` listening on `host`, in network namespace `netns` if given, on the
    /// NATS at `nats` (host:port).
    fn start_in(dir: &Path, name: &str, netns: Option<&str>, host: &str, nats: &str) -> Node {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        let port = free_port();
        let conf = dir.join("broker.toml");
        std::fs::write(&conf, node_config_at(name, host, port, nats)).expect("conf");
        let socket_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&socket_path);
        let manager = UnixDatagram::bind(&socket_path).expect("bind");
        manager.set_read_timeout(Some(LIMIT)).expect("timeout");
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", netns])
                    .arg(env!("CARGO_BIN_EXE_mqtt-broker"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_mqtt-broker")),
        };
        let guard = Guard::spawn(
            command
                .current_dir(&dir)
                .arg("-c")
                .arg(&conf)
                .env("NOTIFY_SOCKET", &socket_path)
                .env("RUST_LOG", "warn"),
        );
        let mut buf = [0u8; 256];
        let n = manager
            .recv(&mut buf)
            .expect("READY=1 from the node in time");
        assert!(buf[..n].starts_with(b"READY=1"), "{:?}", &buf[..n]);
        Node {
            _guard: guard,
            port,
        }
    }
}

fn node_config(name: &str, port: u16, nats: u16) -> String {
    node_config_at(name, "127.0.0.1", port, &format!("127.0.0.1:{nats}"))
}

fn node_config_at(name: &str, host: &str, port: u16, nats: &str) -> String {
    format!(
        "persistence = false\n\
         [[listener]]\nport = {port}\nbind_address = \"{host}\"\nallow_anonymous = true\n\
         [cluster]\nnode = \"{name}\"\nnats = [\"nats://{nats}\"]\nstatus_interval = 1\n"
    )
}

/// Waits until `host`:`port` accepts TCP connections.
fn wait_until_accepting(host: &str, port: u16) {
    eventually("the port accepts", || {
        std::net::TcpStream::connect((host, port)).is_ok()
    });
}

/// NATS and three nodes, or `None` (with a notice) where the tools are missing.
fn cluster(test: &str) -> Option<(Nats, [Node; 3], PathBuf)> {
    if !have("nats-server", test) || !have("mosquitto_sub", test) {
        return None;
    }
    let dir = scratch_dir(test);
    let nats = Nats::start(&dir);
    let nodes = ["a", "b", "c"].map(|name| Node::start(&dir, name, nats.port));
    Some((nats, nodes, dir))
}

fn v5(id: &str) -> Options {
    Options::new(s(id)).version(ProtocolVersion::V5)
}

fn v311(id: &str) -> Options {
    Options::new(s(id)).version(ProtocolVersion::V3_1_1)
}

/// A mosquitto_sub on `port` printing `topic payload` lines until `count` arrived.
fn mosquitto_sub(port: u16, args: &[&str]) -> Guard {
    Guard::spawn(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v"])
            .args(args),
    )
}

fn mosquitto_pub(port: u16, args: &[&str]) {
    let out = run(
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args),
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
}

/// Waits until `check` holds (interest and retained changes cross the cluster in a few
/// milliseconds, not at once).
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_message_published_on_one_node_reaches_every_matching_subscriber_on_every_node_once() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_routing") else {
        return;
    };
    // On b: one client with two overlapping filters, at QoS 0 and 1; on c: mosquitto_sub.
    let mut dashboard = TestClient::connect(b.port, v5("dashboard"));
    dashboard.subscribe("tele/+/LWT", QoS::AtMostOnce);
    dashboard.subscribe("tele/#", QoS::AtLeastOnce);
    let watcher = mosquitto_sub(c.port, &["-V", "311", "-t", "tele/+/LWT", "-C", "2"]);
    // Not for either of them; a `$` topic for no leading wildcard [MQTT-4.7.2-1].
    let mut strict = TestClient::connect(c.port, v311("strict"));
    strict.subscribe("+/plug/LWT", QoS::AtMostOnce);
    std::thread::sleep(QUIET); // the interest reaches NATS
    mosquitto_pub(
        a.port,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            "tele/plug/LWT",
            "-m",
            "Online",
            "-D",
            "publish",
            "user-property",
            "room",
            "kitchen",
        ],
    );
    mosquitto_pub(a.port, &["-q", "2", "-t", "tele/plug/LWT", "-m", "Offline"]);
    mosquitto_pub(a.port, &["-t", "$aws/plug/LWT", "-m", "hidden"]);

    let got = dashboard.drain(QUIET);
    let texts: Vec<String> = got.iter().map(text).collect();
    assert_eq!(
        texts,
        ["Online", "Offline"],
        "one copy per client, in order [MQTT5-3.3.4-2]"
    );
    assert_eq!(
        got[0].qos.qos(),
        QoS::AtLeastOnce,
        "the highest QoS of its matching subscriptions"
    );
    assert_eq!(
        got[0]
            .properties
            .user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("room", "kitchen")],
        "v5 properties cross the cluster"
    );
    let (status, out, _) = watcher.finish(LIMIT);
    assert_eq!(status.map(|s| s.success()), Some(true));
    assert_eq!(out, "tele/plug/LWT Online\ntele/plug/LWT Offline\n");
    let strictly: Vec<String> = strict.drain(QUIET).iter().map(text).collect();
    assert_eq!(strictly, ["Online", "Offline"], "no `$` topic for `+/...`");
}

#[test]
fn a_shared_subscription_gets_each_message_once_across_all_nodes() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_shared") else {
        return;
    };
    let mut workers: Vec<TestClient> = [(&a, "w-a"), (&b, "w-b"), (&c, "w-c")]
        .into_iter()
        .map(|(node, id)| {
            let mut worker = TestClient::connect(node.port, v5(id));
            worker.subscribe("$share/workers/jobs/+", QoS::AtLeastOnce);
            worker
        })
        .collect();
    let mut audit = TestClient::connect(c.port, v311("audit"));
    audit.subscribe("jobs/#", QoS::AtLeastOnce);
    std::thread::sleep(QUIET);
    let mut producer = TestClient::connect(a.port, v5("producer"));
    let sent = producer.publish_numbered("jobs/render", 90, QoS::AtLeastOnce, LIMIT);
    assert_eq!(sent, 90);
    let per_worker: Vec<usize> = workers.iter_mut().map(|w| w.drain(QUIET).len()).collect();
    assert_eq!(
        per_worker.iter().sum::<usize>(),
        90,
        "one copy per group, cluster-wide: {per_worker:?}"
    );
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "every node's member gets some: {per_worker:?}"
    );
    assert_eq!(
        audit.collect(90, QUIET).len(),
        90,
        "the plain subscriber gets all"
    );
}

#[test]
fn every_node_serves_the_same_retained_messages_and_a_clear_reaches_all() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_retained") else {
        return;
    };
    mosquitto_pub(
        a.port,
        &["-r", "-q", "1", "-t", "tele/plug/LWT", "-m", "Online"],
    );
    mosquitto_pub(b.port, &["-r", "-t", "stat/plug/POWER", "-m", "ON"]);
    // A subscriber that arrives later, on a node where neither was published
    // [MQTT-3.3.1-6] (MQTT311).
    eventually("both retained messages on c", || {
        let mut late = TestClient::connect(c.port, v311("late"));
        late.subscribe("+/plug/+", QoS::AtLeastOnce);
        let got = late.drain(Duration::from_millis(300));
        got.len() == 2 && got.iter().all(|p| p.retain)
    });
    // Cleared on b with an empty retained payload [MQTT311-3.3.1-10] [MQTT5-3.3.1-6].
    mosquitto_pub(b.port, &["-r", "-n", "-t", "tele/plug/LWT"]);
    for node in [&a, &b, &c] {
        eventually("the clear on every node", || {
            let mut late = TestClient::connect(node.port, v5("later"));
            late.subscribe("+/plug/+", QoS::AtLeastOnce);
            let got: Vec<String> = late
                .drain(Duration::from_millis(300))
                .iter()
                .map(text)
                .collect();
            got == ["ON"]
        });
    }
    // A node that starts after the fact serves the same set.
    let d = Node::start(&_dir, "d", _nats.port);
    let mut newcomer = TestClient::connect(d.port, v5("newcomer"));
    newcomer.subscribe("#", QoS::AtLeastOnce);
    let got: Vec<String> = newcomer.drain(QUIET).iter().map(text).collect();
    assert_eq!(got, ["ON"]);
}

#[test]
fn mqtt5_3_1_4_3_a_client_connecting_to_another_node_takes_its_session_over() {
    let Some((_nats, [a, b, _c], _dir)) = cluster("cluster_takeover") else {
        return;
    };
    let mut first = TestClient::connect(a.port, v5("plug"));
    first.subscribe("cmnd/plug/POWER", QoS::AtLeastOnce);
    let mut second = TestClient::connect(b.port, v5("plug"));
    assert_eq!(
        first.disconnection(LIMIT),
        Some(Disconnection::ByServer(ReasonCode::SessionTakenOver))
    );
    assert!(!first.is_connected());
    assert_eq!(
        second.disconnection(QUIET),
        None,
        "the new connection stays"
    );
    // A 3.1.1 client is closed without a DISCONNECT [MQTT-3.1.4-2] (MQTT311).
    let mut old = TestClient::connect(b.port, v311("sonoff"));
    let _new = TestClient::connect(a.port, v311("sonoff"));
    old.disconnection(LIMIT);
    assert!(!old.is_connected());
}

#[test]
fn of_two_simultaneous_connects_on_two_nodes_exactly_one_stays() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_simultaneous") else {
        return;
    };
    for round in 0..5 {
        let id = format!("twin-{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        let clients: Vec<_> = [a.port, b.port, c.port]
            .into_iter()
            .map(|port| {
                let (barrier, id) = (barrier.clone(), id.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    TestClient::connect(port, v5(&id))
                })
            })
            .collect();
        let mut clients: Vec<TestClient> = clients
            .into_iter()
            .map(|t| t.join().expect("connected"))
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let alive = clients
            .iter_mut()
            .filter_map(|client| {
                client.pump(Duration::from_millis(50));
                client.is_connected().then_some(())
            })
            .count();
        assert_eq!(alive, 1, "round {round}: one session per client id");
    }
}

#[test]
fn a_node_that_cannot_reach_nats_refuses_to_start() {
    let test = "cluster_unreachable";
    let dir = scratch_dir(test);
    let conf = dir.join("broker.toml");
    std::fs::write(&conf, node_config("lonely", free_port(), free_port())).expect("conf");
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_mqtt-broker"))
            .current_dir(&dir)
            .arg("-c")
            .arg(&conf),
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cluster: cannot connect to NATS"),
        "{stderr}"
    );
}

#[test]
fn subscription_options_hold_for_messages_from_other_nodes() {
    let Some((_nats, [a, b, _c], _dir)) = cluster("cluster_options") else {
        return;
    };
    let mut keeper = TestClient::connect(b.port, v5("keeper"));
    keeper.subscribe_with(
        "stat/#",
        SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            retain_as_published: true,
            ..SubscriptionOptions::default()
        },
    );
    let mut plain = TestClient::connect(b.port, v5("plain"));
    plain.subscribe("stat/#", QoS::AtLeastOnce);
    std::thread::sleep(QUIET);
    mosquitto_pub(
        a.port,
        &["-r", "-q", "1", "-t", "stat/plug/POWER", "-m", "ON"],
    );
    let kept = keeper.collect(1, LIMIT);
    assert!(
        kept[0].retain,
        "Retain As Published keeps the flag [MQTT5-3.3.1-13]"
    );
    let live = plain.collect(1, LIMIT);
    assert!(
        !live[0].retain,
        "otherwise a live message goes out with RETAIN 0 [MQTT5-3.3.1-12]"
    );
}

/// The retained `$SYS/broker/cluster/...` values a new subscriber on `port` gets.
fn cluster_sys(port: u16) -> std::collections::BTreeMap<String, String> {
    let mut watcher = TestClient::connect(port, v311("sys-watcher"));
    watcher.subscribe("$SYS/broker/cluster/#", QoS::AtMostOnce);
    watcher
        .drain(Duration::from_millis(300))
        .iter()
        .map(|p| (p.topic().to_owned(), text(p)))
        .collect()
}

#[test]
fn sys_shows_the_cluster_and_a_node_without_nats_serves_its_own_clients_then_catches_up() {
    let Some((nats, [a, b, c], dir)) = cluster("cluster_degraded") else {
        return;
    };
    let _busy = TestClient::connect(b.port, v5("busy"));
    eventually("$SYS shows three nodes, b with its client", || {
        let sys = cluster_sys(a.port);
        sys.get("$SYS/broker/cluster/nodes").map(String::as_str) == Some("3")
            && sys.get("$SYS/broker/cluster/state").map(String::as_str) == Some("connected")
            && sys.get("$SYS/broker/cluster/node").map(String::as_str) == Some("a")
            && sys
                .get("$SYS/broker/cluster/nodes/b/clients")
                .map(String::as_str)
                == Some("1")
    });
    let nats_port = nats.port;
    drop(nats); // NATS goes away
    eventually("a reports the cluster degraded", || {
        cluster_sys(a.port)
            .get("$SYS/broker/cluster/state")
            .map(String::as_str)
            == Some("degraded")
    });
    // Local clients are still served: plain and shared subscriptions, retained messages.
    let mut plain = TestClient::connect(a.port, v5("plain"));
    plain.subscribe("cmnd/+/POWER", QoS::AtLeastOnce);
    let mut worker = TestClient::connect(a.port, v5("worker"));
    worker.subscribe("$share/g/cmnd/#", QoS::AtLeastOnce);
    mosquitto_pub(a.port, &["-q", "1", "-t", "cmnd/plug/POWER", "-m", "ON"]);
    mosquitto_pub(
        a.port,
        &["-r", "-q", "1", "-t", "tele/plug/LWT", "-m", "Offline"],
    );
    assert_eq!(plain.collect(1, LIMIT).len(), 1);
    assert_eq!(
        worker.collect(1, LIMIT).len(),
        1,
        "the group served here meanwhile"
    );
    // NATS comes back on its port with its store: the nodes reconnect by themselves, and the
    // retained message set on a meanwhile reaches the others.
    let _nats = Nats::start_on(&dir, nats_port);
    eventually("a connected again", || {
        cluster_sys(a.port)
            .get("$SYS/broker/cluster/state")
            .map(String::as_str)
            == Some("connected")
    });
    eventually("the retained message set during the outage on c", || {
        let mut late = TestClient::connect(c.port, v311("late"));
        late.subscribe("tele/plug/LWT", QoS::AtLeastOnce);
        late.drain(Duration::from_millis(300))
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            == ["Offline"]
    });
    let mut far = TestClient::connect(c.port, v5("far"));
    far.subscribe("cmnd/#", QoS::AtLeastOnce);
    eventually("routing across nodes again", || {
        mosquitto_pub(a.port, &["-q", "1", "-t", "cmnd/plug/POWER", "-m", "OFF"]);
        far.recv(Duration::from_millis(300)).is_some()
    });
}

/// A network namespace with a veth pair to the host: `10.213.N.1` on the host's side,
/// `10.213.N.2` inside. Removed (with the pair) when dropped.
struct Netns {
    name: String,
    host_link: String,
    host_ip: String,
    inner_ip: String,
}

impl Netns {
    /// Makes one, or `None` with a notice where this process may not (not root, no `ip`).
    fn make(test: &str) -> Option<Netns> {
        let n = std::process::id() % 250 + 1;
        let netns = Netns {
            name: format!("mqc{}", std::process::id()),
            host_link: format!("mqh{}", std::process::id()),
            host_ip: format!("10.213.{n}.1"),
            inner_ip: format!("10.213.{n}.2"),
        };
        let inner_link = format!("mqn{}", std::process::id());
        let steps: [&[&str]; 8] = [
            &["netns", "add", &netns.name],
            &[
                "link",
                "add",
                &netns.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &inner_link,
            ],
            &["link", "set", &inner_link, "netns", &netns.name],
            &[
                "addr",
                "add",
                &format!("{}/24", netns.host_ip),
                "dev",
                &netns.host_link,
            ],
            &["link", "set", &netns.host_link, "up"],
            &[
                "netns",
                "exec",
                &netns.name,
                "ip",
                "addr",
                "add",
                &format!("{}/24", netns.inner_ip),
                "dev",
                &inner_link,
            ],
            &[
                "netns",
                "exec",
                &netns.name,
                "ip",
                "link",
                "set",
                &inner_link,
                "up",
            ],
            &[
                "netns",
                "exec",
                &netns.name,
                "ip",
                "link",
                "set",
                "lo",
                "up",
            ],
        ];
        for step in steps {
            let out = run(Command::new("ip").args(step), LIMIT);
            if !out.status.success() {
                eprintln!(
                    "notice: cannot make a network namespace ({}); skipping {test}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return None;
            }
        }
        Some(netns)
    }

    /// Takes the host's end of the link down (`false`) or up again.
    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let out = run(
            Command::new("ip").args(["link", "set", &self.host_link, state]),
            LIMIT,
        );
        assert!(out.status.success(), "{out:?}");
    }

    /// Runs `program` with `args` inside the namespace.
    fn exec(&self, program: &str, args: &[&str]) -> std::process::Output {
        run(
            Command::new("ip")
                .args(["netns", "exec", &self.name, program])
                .args(args),
            LIMIT,
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the pair with it.
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]), LIMIT);
        let _ = run(
            Command::new("ip").args(["link", "del", &self.host_link]),
            LIMIT,
        );
    }
}

#[test]
fn a_node_cut_off_by_a_partition_keeps_serving_its_clients_and_catches_up_when_it_heals() {
    let test = "cluster_partition";
    if !have("nats-server", test) || !have("mosquitto_sub", test) {
        return;
    }
    let Some(netns) = Netns::make(test) else {
        return;
    };
    let dir = scratch_dir(test);
    let nats_port = free_port();
    let nats = format!("{}:{nats_port}", netns.host_ip);
    let _nats = Nats::start_at(&dir, &netns.host_ip, nats_port);
    let a = Node::start_in(&dir, "a", None, "127.0.0.1", &nats);
    let b = Node::start_in(&dir, "b", None, "127.0.0.1", &nats);
    // c is a host of its own, behind the link.
    let c = Node::start_in(&dir, "c", Some(&netns.name), &netns.inner_ip, &nats);
    let c_port = c.port.to_string();
    let on_c = |args: &[&str]| -> String {
        let mut all = vec!["-h", netns.inner_ip.as_str(), "-p", c_port.as_str()];
        all.extend_from_slice(args);
        let program = if args.contains(&"-m") || args.contains(&"-n") {
            "mosquitto_pub"
        } else {
            "mosquitto_sub"
        };
        let out = netns.exec(program, &all);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let state_of_c = || on_c(&["-t", "$SYS/broker/cluster/state", "-C", "1", "-W", "3"]);

    let mut watcher = TestClient::connect(a.port, v5("watcher"));
    watcher.subscribe("tele/#", QoS::AtLeastOnce);
    std::thread::sleep(QUIET);
    on_c(&["-q", "1", "-t", "tele/c/STATE", "-m", "before"]);
    assert_eq!(
        watcher
            .collect(1, LIMIT)
            .iter()
            .map(text)
            .collect::<Vec<_>>(),
        ["before"]
    );

    netns.link(false);
    eventually("c reports the partition", || {
        state_of_c().trim() == "degraded"
    });
    // The majority side goes on: a to b.
    let mut far = TestClient::connect(b.port, v5("far"));
    far.subscribe("cmnd/#", QoS::AtLeastOnce);
    std::thread::sleep(QUIET);
    mosquitto_pub(a.port, &["-q", "1", "-t", "cmnd/b/POWER", "-m", "ON"]);
    assert_eq!(far.collect(1, LIMIT).len(), 1, "a and b still one broker");
    // c serves its own clients, and keeps what they retain.
    on_c(&["-r", "-q", "1", "-t", "tele/c/LWT", "-m", "Online"]);
    let retained_on_c = on_c(&["-t", "tele/c/LWT", "-C", "1", "-W", "3"]);
    assert_eq!(retained_on_c.trim(), "Online");

    netns.link(true);
    eventually("c connected again", || state_of_c().trim() == "connected");
    eventually("what c retained meanwhile reaches a", || {
        let mut late = TestClient::connect(a.port, v311("late"));
        late.subscribe("tele/c/LWT", QoS::AtLeastOnce);
        late.drain(Duration::from_millis(300))
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            == ["Online"]
    });
    eventually("routing from c to a again", || {
        on_c(&["-q", "1", "-t", "tele/c/STATE", "-m", "after"]);
        watcher
            .drain(Duration::from_millis(300))
            .iter()
            .any(|p| text(p) == "after")
    });
}

#[test]
fn when_a_node_is_killed_the_others_go_on_and_its_clients_reconnect_elsewhere() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_node_killed") else {
        return;
    };
    let mut victim_client = TestClient::connect(c.port, v5("plug"));
    victim_client.subscribe("cmnd/plug/#", QoS::AtLeastOnce);
    let mut dashboard = TestClient::connect(b.port, v5("dashboard"));
    dashboard.subscribe("tele/#", QoS::AtLeastOnce);
    eventually("three nodes", || {
        cluster_sys(a.port)
            .get("$SYS/broker/cluster/nodes")
            .map(String::as_str)
            == Some("3")
    });
    let Node {
        _guard: mut killed, ..
    } = c;
    killed.0.kill().expect("SIGKILL"); // kill -9
    let _ = killed.0.wait();
    victim_client.disconnection(LIMIT);
    assert!(!victim_client.is_connected(), "its socket closed with it");
    // The client reconnects to another node (its claim replaces the dead node's).
    let mut moved = TestClient::connect(a.port, v5("plug"));
    moved.subscribe("cmnd/plug/#", QoS::AtLeastOnce);
    std::thread::sleep(QUIET);
    mosquitto_pub(b.port, &["-q", "1", "-t", "cmnd/plug/POWER", "-m", "ON"]);
    assert_eq!(
        moved.collect(1, LIMIT).iter().map(text).collect::<Vec<_>>(),
        ["ON"]
    );
    mosquitto_pub(a.port, &["-q", "1", "-t", "tele/plug/STATE", "-m", "x"]);
    assert_eq!(
        dashboard.collect(1, LIMIT).len(),
        1,
        "a and b still one broker"
    );
    eventually("the dead node leaves $SYS", || {
        cluster_sys(a.port)
            .get("$SYS/broker/cluster/nodes")
            .map(String::as_str)
            == Some("2")
    });
}

#[test]
fn mqtt5_3_2_2_2_a_persistent_session_moves_with_its_client_to_another_node() {
    let Some((_nats, [a, b, c], _dir)) = cluster("cluster_session_moves") else {
        return;
    };
    let persistent = |id: &str, clean: bool| v5(id).clean_start(clean).session_expiry_interval(300);
    let mut phone = TestClient::connect(a.port, persistent("phone", true));
    phone.subscribe("cmnd/#", QoS::AtLeastOnce);
    phone.disconnect(); // the session stays on a, with its subscription
    std::thread::sleep(QUIET);
    for n in ["1", "2", "3"] {
        mosquitto_pub(b.port, &["-q", "1", "-t", "cmnd/plug/POWER", "-m", n]);
    }
    // Back on another node: the session comes along, with what was queued for it.
    let mut phone = TestClient::connect(c.port, persistent("phone", false));
    assert!(
        phone.session_present(),
        "[MQTT5-3.2.2-2] the session resumed on c"
    );
    let queued: Vec<String> = phone.collect(3, LIMIT).iter().map(text).collect();
    assert_eq!(queued, ["1", "2", "3"], "in order, once");
    std::thread::sleep(QUIET);
    mosquitto_pub(b.port, &["-q", "1", "-t", "cmnd/plug/POWER", "-m", "4"]);
    let live: Vec<String> = phone.collect(1, LIMIT).iter().map(text).collect();
    assert_eq!(live, ["4"], "its subscription lives on c now");
    assert!(phone.drain(QUIET).is_empty(), "nothing twice");

    // mosquitto_sub with a persistent 3.1.1 session (-c): its messages follow it too.
    let first = mosquitto_sub(
        a.port,
        &["-c", "-i", "dash", "-q", "1", "-t", "tele/#", "-C", "1"],
    );
    std::thread::sleep(QUIET);
    mosquitto_pub(b.port, &["-q", "1", "-t", "tele/plug/STATE", "-m", "seen"]);
    let (_, out, _) = first.finish(LIMIT);
    assert_eq!(out, "tele/plug/STATE seen\n");
    mosquitto_pub(b.port, &["-q", "1", "-t", "tele/plug/STATE", "-m", "away"]);
    let again = mosquitto_sub(
        c.port,
        &["-c", "-i", "dash", "-q", "1", "-t", "tele/#", "-C", "1"],
    );
    let (_, out, _) = again.finish(LIMIT);
    assert_eq!(out, "tele/plug/STATE away\n", "queued on a, delivered by c");
}
