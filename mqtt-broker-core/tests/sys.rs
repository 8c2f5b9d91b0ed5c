//! `$SYS/broker/...` statistics (mosquitto layout) published at the configured interval, and the
//! store write-through of session records.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{Broker, Config, MemoryStore, Message, SessionRecord, Store};
use mqtt_topic::{TopicFilter, TopicName};
use mqtt_wire::{QoS, ReasonCode};

#[test]
fn sys_topics_are_published_at_the_interval() {
    let mut h = Harness::with_config(config(|c| c.sys_interval = Some(Duration::from_secs(10))));
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "$SYS/broker/#", QoS::AtMostOnce);
    let p = h.connect(V311, "p");
    h.publish(p, "t", b"x", QoS::AtMostOnce, false);
    assert!(h.publishes(watcher).is_empty());
    h.advance(Duration::from_secs(10));
    let got = h.publishes(watcher);
    let value = |topic: &str| {
        got.iter()
            .find(|p| p.topic() == topic)
            .map(|p| p.payload_bytes())
            .unwrap_or_else(|| panic!("{topic} missing"))
    };
    assert_eq!(
        value("$SYS/broker/clients/connected"),
        Bytes::from_static(b"2")
    );
    assert_eq!(
        value("$SYS/broker/messages/received"),
        Bytes::from_static(b"1")
    );
    assert_eq!(
        value("$SYS/broker/uptime"),
        Bytes::from_static(b"10 seconds")
    );
    value("$SYS/broker/bytes/received");
    value("$SYS/broker/bytes/sent");
    value("$SYS/broker/messages/sent");
    value("$SYS/broker/version");
    assert!(
        h.broker
            .poll_timeout()
            .is_some_and(|t| t <= h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    assert!(!h.publishes(watcher).is_empty(), "published again");
    let late = h.connect(V311, "late");
    h.subscribe(late, "$SYS/broker/uptime", QoS::AtMostOnce);
    assert_eq!(h.publishes(late).len(), 1, "retained");
}

#[test]
fn no_sys_topics_unless_configured() {
    let mut h = Harness::new();
    let watcher = h.connect(V311, "watcher");
    h.subscribe(watcher, "$SYS/#", QoS::AtMostOnce);
    h.advance(Duration::from_secs(3600));
    assert!(h.publishes(watcher).is_empty());
}

/// A store that shares its sessions with the test.
struct Shared(Arc<Mutex<MemoryStore>>);

impl Store for Shared {
    fn set_retained(&mut self, topic: TopicName, message: Arc<Message>) {
        self.0
            .lock()
            .expect("store lock")
            .set_retained(topic, message);
    }
    fn remove_retained(&mut self, topic: &TopicName) -> bool {
        self.0.lock().expect("store lock").remove_retained(topic)
    }
    fn for_each_retained(&self, filter: &TopicFilter, visit: &mut dyn FnMut(&Arc<Message>)) {
        self.0
            .lock()
            .expect("store lock")
            .for_each_retained(filter, visit);
    }
    fn get_retained(&self, topic: &TopicName) -> Option<Arc<Message>> {
        self.0.lock().expect("store lock").get_retained(topic)
    }
    fn retained_bytes(&self) -> usize {
        self.0.lock().expect("store lock").retained_bytes()
    }
    fn retained_len(&self) -> usize {
        self.0.lock().expect("store lock").retained_len()
    }
    fn save_session(&mut self, client_id: &str, record: &SessionRecord) {
        self.0
            .lock()
            .expect("store lock")
            .save_session(client_id, record);
    }
    fn remove_session(&mut self, client_id: &str) {
        self.0.lock().expect("store lock").remove_session(client_id);
    }
    fn load_sessions(&mut self) -> Vec<(String, SessionRecord)> {
        self.0.lock().expect("store lock").load_sessions()
    }
}

#[test]
fn persistent_sessions_are_written_through_to_the_store() {
    let store = Arc::new(Mutex::new(MemoryStore::new()));
    let broker = Broker::new(Config::default()).with_store(Box::new(Shared(Arc::clone(&store))));
    let mut h = Harness::with_broker(broker);
    let c = h.open(V5);
    let mut connect = connect_packet(V5, "durable");
    connect.properties.session_expiry_interval = Some(60);
    h.connect_with(c, connect);
    h.subscribe(c, "a/#", QoS::AtLeastOnce);
    let sessions = store.lock().unwrap().load_sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].0, "durable");
    assert_eq!(sessions[0].1.expiry_interval, 60);
    assert_eq!(sessions[0].1.subscriptions.len(), 1);
    let p = h.connect(V5, "p");
    h.publish(p, "r", b"x", QoS::AtMostOnce, true);
    assert_eq!(store.lock().unwrap().retained_len(), 1);
    h.disconnect(c, ReasonCode::Success);
    h.advance(Duration::from_secs(60));
    assert!(
        store.lock().unwrap().load_sessions().is_empty(),
        "removed at expiry"
    );
    let clean = h.connect(V5, "clean");
    h.subscribe(clean, "x", QoS::AtMostOnce);
    assert!(
        store.lock().unwrap().load_sessions().is_empty(),
        "sessions without expiry are not recorded"
    );
}
