//! Model-based test: random sequences of client actions (connect with or without a persistent
//! session and a will, subscribe, unsubscribe, publish at every QoS with or without RETAIN,
//! DISCONNECT, dropped connections, time passing) run against the broker and against a small
//! oracle. Clients acknowledge everything at once, so the oracle predicts every delivery exactly:
//! QoS 1 arrives (at least once), QoS 2 exactly once, nothing arrives without a matching
//! subscription, retained state is the last retained publish per topic, wills fire exactly on
//! abnormal closes and takeovers, session-present follows the session's life, and the broker's counters
//! (connections, sessions, subscriptions, retained) never drift from the model's.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_wire::{
    Ack, Packet, Properties, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe,
    SubscriptionOptions, Unsubscribe,
};
use proptest::prelude::*;

const CLIENTS: usize = 3;
const TOPICS: [&str; 3] = ["a", "a/b", "b"];
const FILTERS: [&str; 5] = ["a", "a/+", "#", "b", "+/b"];
const WILL_TOPIC: usize = 2; // "b"
const V5_EXPIRY: u32 = 30;

#[derive(Debug, Clone)]
enum Action {
    Connect {
        c: usize,
        clean: bool,
        persist: bool,
        will: bool,
    },
    Disconnect(usize),
    Drop(usize),
    Subscribe {
        c: usize,
        f: usize,
        qos: u8,
    },
    Unsubscribe {
        c: usize,
        f: usize,
    },
    Publish {
        c: usize,
        t: usize,
        qos: u8,
        retain: bool,
        empty: bool,
    },
    Advance(u8),
}

fn action() -> impl Strategy<Value = Action> {
    let c = 0..CLIENTS;
    prop_oneof![
        3 => (c.clone(), any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(c, clean, persist, will)| Action::Connect { c, clean, persist, will }),
        1 => c.clone().prop_map(Action::Disconnect),
        1 => c.clone().prop_map(Action::Drop),
        3 => (c.clone(), 0..FILTERS.len(), 0u8..3).prop_map(|(c, f, qos)| Action::Subscribe { c, f, qos }),
        1 => (c.clone(), 0..FILTERS.len()).prop_map(|(c, f)| Action::Unsubscribe { c, f }),
        5 => (c, 0..TOPICS.len(), 0u8..3, any::<bool>(), prop::bool::weighted(0.1))
            .prop_map(|(c, t, qos, retain, empty)| Action::Publish { c, t, qos, retain, empty }),
        1 => (1u8..40).prop_map(Action::Advance),
    ]
}

fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// §4.7 matching for the fixed topic set (no `$` topics here).
fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One delivery: payload id (0 = empty payload), RETAIN flag, QoS.
type Delivery = (u64, bool, QoS);

#[derive(Debug, Default)]
struct ModelSession {
    subs: BTreeMap<usize, QoS>,
    online: bool,
    will: bool,
    expiry: u32,
    expires_at: Option<u64>,
    queued: Vec<Delivery>,
}

#[derive(Debug)]
struct Model {
    sessions: [Option<ModelSession>; CLIENTS],
    retained: BTreeMap<usize, (u64, QoS)>,
    now: u64,
    expected: [Vec<Delivery>; CLIENTS],
}

impl Model {
    fn publish(&mut self, t: usize, q: QoS, retain: bool, id: u64) {
        if retain {
            if id == 0 {
                self.retained.remove(&t);
            } else {
                self.retained.insert(t, (id, q));
            }
        }
        for k in 0..CLIENTS {
            let Some(session) = self.sessions[k].as_mut() else {
                continue;
            };
            let granted: Vec<QoS> = session
                .subs
                .iter()
                .filter(|(f, _)| matches(FILTERS[**f], TOPICS[t]))
                .map(|(_, sq)| *sq)
                .collect();
            // One copy per session at the highest granted QoS, in both versions
            // [MQTT311-3.3.5-1] [MQTT5-3.3.4-2].
            if let Some(eff) = granted.iter().max().map(|sq| q.min(*sq)) {
                if session.online {
                    self.expected[k].push((id, false, eff));
                } else if eff != QoS::AtMostOnce {
                    session.queued.push((id, false, eff));
                }
            }
        }
    }

    /// The connection of `k` ends; `will` says whether its will fires.
    fn offline(&mut self, k: usize, fire_will: bool, will_id: u64) {
        let Some(session) = self.sessions[k].as_mut() else {
            return;
        };
        session.online = false;
        let will = session.will && fire_will;
        session.will = false;
        let expiry = session.expiry;
        if will {
            self.publish(WILL_TOPIC, QoS::AtLeastOnce, false, will_id);
        }
        if expiry == 0 {
            self.sessions[k] = None;
        } else if expiry != u32::MAX
            && let Some(session) = self.sessions[k].as_mut()
        {
            session.expires_at = Some(self.now + u64::from(expiry));
        }
    }

    /// A new connection claims the session of `k`, which stays for it.
    fn take_over(&mut self, k: usize, will_id: u64) {
        let Some(session) = self.sessions[k].as_mut() else {
            return;
        };
        session.online = false;
        let will = std::mem::take(&mut session.will);
        if session.expiry == 0 {
            // It lasted as long as its connection [MQTT311-3.1.2-6] [MQTT5-3.1.2-23].
            self.sessions[k] = None;
        }
        if will {
            self.publish(WILL_TOPIC, QoS::AtLeastOnce, false, will_id);
        }
    }

    fn counts(&self) -> (u64, u64, u64) {
        let online = self.sessions.iter().flatten().filter(|s| s.online).count() as u64;
        let offline = self.sessions.iter().flatten().filter(|s| !s.online).count() as u64;
        let subs = self
            .sessions
            .iter()
            .flatten()
            .map(|s| s.subs.len() as u64)
            .sum();
        (online, offline, subs)
    }
}

fn payload_id(payload: &[u8]) -> u64 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Plays the clients' side until the wire is quiet: acknowledge every PUBLISH, release every
/// PUBREC, complete every PUBREL. Returns what each client received.
fn settle(h: &mut Harness, clients: &[TestClient; CLIENTS]) -> [Vec<Delivery>; CLIENTS] {
    let mut received: [Vec<Delivery>; CLIENTS] = Default::default();
    loop {
        let mut quiet = true;
        for (k, client) in clients.iter().enumerate() {
            for packet in h.recv_all(*client) {
                quiet = false;
                match packet {
                    Packet::Publish(p) => {
                        received[k].push((payload_id(p.payload()), p.retain, p.qos.qos()));
                        match p.qos {
                            PublishQos::AtMostOnce => {}
                            PublishQos::AtLeastOnce(pid) => {
                                h.send(*client, Packet::PubAck(Ack::new(pid)))
                            }
                            PublishQos::ExactlyOnce(pid) => {
                                h.send(*client, Packet::PubRec(Ack::new(pid)))
                            }
                        }
                    }
                    Packet::PubRec(ack) => h.send(*client, Packet::PubRel(Ack::new(ack.packet_id))),
                    Packet::PubRel(ack) => {
                        h.send(*client, Packet::PubComp(Ack::new(ack.packet_id)))
                    }
                    Packet::Disconnect(d) => panic!("unexpected DISCONNECT {d:?}"),
                    _ => {}
                }
            }
        }
        if quiet {
            return received;
        }
    }
}

fn run(versions: [ProtocolVersion; CLIENTS], actions: Vec<Action>) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    let mut model = Model {
        sessions: Default::default(),
        retained: BTreeMap::new(),
        now: 0,
        expected: Default::default(),
    };
    let mut clients: [TestClient; CLIENTS] = std::array::from_fn(|k| h.open(versions[k]));
    for client in clients {
        h.drop_connection(client); // placeholders, never connected
    }
    let mut next_id = 1u64;
    for action in actions {
        let online = |m: &Model, k: usize| m.sessions[k].as_ref().is_some_and(|s| s.online);
        match action {
            Action::Connect {
                c,
                clean,
                persist,
                will,
            } => {
                if online(&model, c) {
                    // Takeover: the old connection ends without DISCONNECT; its will fires and
                    // a session with expiry waits for the new connection [MQTT311-3.1.4-2].
                    model.take_over(c, 0);
                }
                let v5 = versions[c] == V5;
                let clean = if v5 { clean } else { !persist };
                let expiry = match (v5, persist) {
                    (true, true) => V5_EXPIRY,
                    (false, true) => u32::MAX,
                    _ => 0,
                };
                clients[c] = h.open(versions[c]);
                let mut connect = connect_packet(versions[c], &format!("c{c}"));
                connect.clean_start = clean;
                if v5 {
                    connect.properties.session_expiry_interval = Some(expiry);
                }
                if will {
                    connect.will = Some(common::will(
                        TOPICS[WILL_TOPIC],
                        b"0",
                        QoS::AtLeastOnce,
                        false,
                    ));
                }
                h.send(clients[c], connect_pkt(connect));
                let ack = match h.take(clients[c], |p| matches!(p, Packet::ConnAck(_))) {
                    Packet::ConnAck(ack) => ack,
                    other => panic!("expected CONNACK, got {other:?}"),
                };
                let present = !clean && model.sessions[c].is_some();
                prop_assert_eq!(ack.session_present, present, "session present for c{}", c);
                if !present {
                    model.sessions[c] = Some(ModelSession::default());
                }
                if let Some(session) = model.sessions[c].as_mut() {
                    session.online = true;
                    session.will = will;
                    session.expiry = expiry;
                    session.expires_at = None;
                    let queued = std::mem::take(&mut session.queued);
                    model.expected[c].extend(queued);
                }
            }
            Action::Disconnect(c) => {
                if !online(&model, c) {
                    continue;
                }
                h.disconnect(clients[c], ReasonCode::Success);
                model.offline(c, false, 0);
            }
            Action::Drop(c) => {
                if !online(&model, c) {
                    continue;
                }
                h.drop_connection(clients[c]);
                // The will's payload is "0": id 0.
                model.offline(c, true, 0);
            }
            Action::Subscribe { c, f, qos: q } => {
                if !online(&model, c) {
                    continue;
                }
                let options = SubscriptionOptions {
                    qos: qos(q),
                    ..SubscriptionOptions::default()
                };
                h.send(
                    clients[c],
                    Packet::Subscribe(Subscribe {
                        packet_id: id(1),
                        filters: vec![(s(FILTERS[f]), options)],
                        properties: Properties::default(),
                    }),
                );
                if let Some(session) = model.sessions[c].as_mut() {
                    session.subs.insert(f, qos(q));
                }
                for (t, (rid, rq)) in &model.retained {
                    if matches(FILTERS[f], TOPICS[*t]) {
                        model.expected[c].push((*rid, true, (*rq).min(qos(q))));
                    }
                }
            }
            Action::Unsubscribe { c, f } => {
                if !online(&model, c) {
                    continue;
                }
                h.send(
                    clients[c],
                    Packet::Unsubscribe(Unsubscribe {
                        packet_id: id(2),
                        filters: vec![s(FILTERS[f])],
                        properties: Properties::default(),
                    }),
                );
                if let Some(session) = model.sessions[c].as_mut() {
                    session.subs.remove(&f);
                }
            }
            Action::Publish {
                c,
                t,
                qos: q,
                retain,
                empty,
            } => {
                if !online(&model, c) {
                    continue;
                }
                let id_now = if empty { 0 } else { next_id };
                next_id += 1;
                let payload = if empty {
                    Bytes::new()
                } else {
                    Bytes::from(id_now.to_string())
                };
                let pq = match qos(q) {
                    QoS::AtMostOnce => PublishQos::AtMostOnce,
                    QoS::AtLeastOnce => PublishQos::AtLeastOnce(id(3)),
                    QoS::ExactlyOnce => PublishQos::ExactlyOnce(id(3)),
                };
                let publish = Publish::new(s(TOPICS[t]), payload)
                    .with_qos(pq)
                    .with_retain(retain);
                h.send(clients[c], Packet::Publish(publish));
                model.publish(t, qos(q), retain, id_now);
            }
            Action::Advance(secs) => {
                h.advance(Duration::from_secs(u64::from(secs)));
                model.now += u64::from(secs);
                for k in 0..CLIENTS {
                    let expired = model.sessions[k].as_ref().is_some_and(|s| {
                        !s.online && s.expires_at.is_some_and(|at| at <= model.now)
                    });
                    if expired {
                        model.sessions[k] = None;
                    }
                }
            }
        }
        let mut received = settle(&mut h, &clients);
        for (k, received) in received.iter_mut().enumerate() {
            let mut expected = std::mem::take(&mut model.expected[k]);
            expected.sort();
            received.sort();
            prop_assert_eq!(&*received, &expected, "deliveries to c{}", k);
        }
        let (online, offline, subs) = model.counts();
        let stats = h.broker.stats();
        prop_assert_eq!(stats.clients_connected, online);
        prop_assert_eq!(stats.clients_disconnected, offline);
        prop_assert_eq!(stats.subscriptions, subs);
        prop_assert_eq!(stats.retained_messages, model.retained.len() as u64);
        // The running count `memory_limit` is checked against follows every queue and outbox.
        prop_assert_eq!(
            stats.memory_used,
            stats.bytes_queued + stats.bytes_unflushed
        );
    }
    Ok(())
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(V311), Just(V5)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn broker_matches_the_model(
        versions in [version(), version(), version()],
        actions in prop::collection::vec(action(), 1..60),
    ) {
        run(versions, actions)?;
    }
}
