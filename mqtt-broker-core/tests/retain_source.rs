//! The publisher side of retained-message authorization (CVE-2018-12546, mosquitto's
//! `check_retain_source`): a retained message remembers who published it, and goes to a new
//! subscriber only while that publisher may still publish to its topic (a retained will's
//! publisher is its client). A revoked publisher's message is removed; messages without a recorded publisher (the application's, restored from
//! an old store) stay deliverable; `Config::check_retain_source = false` turns the check off.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::*;
use mqtt_broker_core::{
    Config, ListenerId, RetainSource,
    hooks::{Authorization, Authorizer, ClientRef},
    persist::{PersistRecord, Persistence, RecoveredMessage, RecoveredState},
};
use mqtt_wire::{QoS, ReasonCode};

/// What the test shares with its authorizer: write access revoked per (client, topic), and the
/// publishers the retained-source check was asked about.
#[derive(Default)]
struct Policy {
    revoked: Vec<(&'static str, &'static str)>,
    asked: Vec<(String, Option<String>, ListenerId, bool)>,
}

/// Write access as the shared policy says, as a reloaded ACL would; everything else allowed.
struct Revocable(Arc<Mutex<Policy>>);

impl Authorizer for Revocable {
    fn authorize_publish(
        &mut self,
        client: &ClientRef<'_>,
        topic: &str,
        _: QoS,
        _: bool,
    ) -> Authorization {
        let policy = self.0.lock().unwrap();
        if policy
            .revoked
            .iter()
            .any(|&(c, t)| c == client.client_id && t == topic)
        {
            Authorization::Deny(ReasonCode::NotAuthorized)
        } else {
            Authorization::Allow
        }
    }
    fn authorize_subscribe(&mut self, _: &ClientRef<'_>, _: &str, _: QoS) -> Authorization {
        Authorization::Allow
    }
    fn authorize_retained_source(
        &mut self,
        publisher: &ClientRef<'_>,
        topic: &str,
        qos: QoS,
    ) -> bool {
        let allowed = self.authorize_publish(publisher, topic, qos, true) == Authorization::Allow;
        self.0.lock().unwrap().asked.push((
            publisher.client_id.to_owned(),
            publisher.username.map(str::to_owned),
            publisher.info.listener,
            publisher.info.peer.is_none(),
        ));
        allowed
    }
}

fn harness(config: Config) -> (Harness, Arc<Mutex<Policy>>) {
    let policy = Arc::new(Mutex::new(Policy::default()));
    let h = Harness::with_authorizer(config, Revocable(policy.clone()));
    (h, policy)
}

fn payloads(got: Vec<mqtt_wire::Publish>) -> Vec<Vec<u8>> {
    got.iter().map(|p| p.payload().to_vec()).collect()
}

#[test]
fn cve_2018_12546_retained_message_of_a_revoked_publisher_is_removed_not_delivered() {
    for version in [V311, V5] {
        let (mut h, policy) = harness(Config::default());
        let p = h.connect(version, "p");
        let q = h.connect(version, "q");
        h.publish(p, "home/door", b"open", QoS::AtLeastOnce, true);
        h.publish(q, "home/light", b"on", QoS::AtLeastOnce, true);
        policy.lock().unwrap().revoked.push(("p", "home/door"));

        // Subscribed by wildcard: only the message whose publisher kept its access comes.
        let s = h.connect(version, "s");
        h.subscribe(s, "home/#", QoS::AtLeastOnce);
        assert_eq!(payloads(h.publishes(s)), [b"on".to_vec()]);
        assert_eq!(
            h.broker.stats().retained_messages,
            1,
            "removed, as mosquitto"
        );

        // Granting the access again does not bring it back.
        policy.lock().unwrap().revoked.clear();
        let t = h.connect(version, "t");
        h.subscribe(t, "home/door", QoS::AtLeastOnce);
        assert!(h.publishes(t).is_empty(), "{version:?}");
    }
}

#[test]
fn the_check_asks_about_the_publisher_as_it_connected() {
    let (mut h, policy) = harness(Config::default());
    let p = h.open(V5);
    let mut connect = connect_packet(V5, "p");
    connect.username = Some(s("alice"));
    assert_eq!(h.connect_with(p, connect).reason_code, ReasonCode::Success);
    h.publish(p, "a", b"x", QoS::AtMostOnce, true);
    h.publish(p, "b", b"not retained", QoS::AtMostOnce, false);
    h.disconnect(p, ReasonCode::Success);
    let s = h.connect(V5, "s");
    h.subscribe(s, "#", QoS::AtMostOnce);
    assert_eq!(h.publishes(s).len(), 1, "the publisher may be gone");
    assert_eq!(
        policy.lock().unwrap().asked,
        [(
            "p".to_owned(),
            Some("alice".to_owned()),
            ListenerId(0),
            true
        )]
    );
}

#[test]
fn cve_2018_12546_retained_will_of_a_revoked_client_is_not_delivered() {
    let (mut h, policy) = harness(Config::default());
    let w = h.open(V5);
    let mut connect = connect_packet(V5, "w");
    connect.will = Some(will("status/w", b"gone", QoS::AtLeastOnce, true));
    assert_eq!(h.connect_with(w, connect).reason_code, ReasonCode::Success);
    policy.lock().unwrap().revoked.push(("w", "status/w"));
    h.drop_connection(w);
    assert_eq!(
        h.broker.stats().retained_messages,
        1,
        "the will was retained"
    );
    let s = h.connect(V5, "s");
    h.subscribe(s, "status/#", QoS::AtLeastOnce);
    assert!(h.publishes(s).is_empty());
    assert_eq!(h.broker.stats().retained_messages, 0);
    assert_eq!(policy.lock().unwrap().asked[0].0, "w");
}

#[test]
fn retain_source_check_off_delivers_a_revoked_publishers_message() {
    let (mut h, policy) = harness(config(|c| c.check_retain_source = false));
    let p = h.connect(V5, "p");
    h.publish(p, "home/door", b"open", QoS::AtLeastOnce, true);
    policy.lock().unwrap().revoked.push(("p", "home/door"));
    let s = h.connect(V5, "s");
    h.subscribe(s, "home/door", QoS::AtLeastOnce);
    assert_eq!(payloads(h.publishes(s)), [b"open".to_vec()]);
    assert!(policy.lock().unwrap().asked.is_empty());
}

#[test]
fn the_applications_retained_messages_have_no_source_and_stay_deliverable() {
    let (mut h, policy) = harness(Config::default());
    let message = app_message("app/state", b"up", QoS::AtMostOnce, true, h.now);
    h.broker.publish(message, h.now).unwrap();
    policy.lock().unwrap().revoked.push(("", "app/state"));
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "app/state", QoS::AtMostOnce);
    assert_eq!(payloads(h.publishes(sub)), [b"up".to_vec()]);
    assert!(policy.lock().unwrap().asked.is_empty());
}

#[test]
fn the_source_is_recorded_for_the_store_and_checked_after_a_restore() {
    let (mut h, _) = harness(config(|c| c.persistence = Persistence::Deferred));
    let p = h.open(V5);
    let mut connect = connect_packet(V5, "p");
    connect.username = Some(s("alice"));
    h.connect_with(p, connect);
    h.publish(p, "home/door", b"open", QoS::AtMostOnce, true);
    let stored: Vec<&RetainSource> = h
        .batches
        .iter()
        .flat_map(|batch| &batch.records)
        .filter_map(|r| match r {
            PersistRecord::RetainedSet { message, .. } => message.retain_source.as_deref(),
            _ => None,
        })
        .collect();
    let alice = RetainSource::new(
        "p".to_owned(),
        Some("alice".to_owned()),
        ListenerId(0),
        None,
    );
    assert_eq!(stored, [&alice]);

    let wall_now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    // A restarted broker: one message from a publisher since revoked, one with no recorded
    // publisher (a store of format version 1).
    let (mut h, policy) = harness(Config::default());
    policy.lock().unwrap().revoked.push(("p", "home/door"));
    let mut revoked = app_message("home/door", b"open", QoS::AtMostOnce, true, h.now);
    revoked.retain_source = Some(Box::new(RetainSource::new(
        "p".to_owned(),
        None,
        ListenerId(0),
        None,
    )));
    let mut unknown = revoked.clone();
    unknown.topic = s("home/window");
    unknown.retain_source = None;
    let state = RecoveredState {
        retained: [revoked, unknown]
            .into_iter()
            .map(|message| RecoveredMessage {
                message,
                received: wall_now,
            })
            .collect(),
        sessions: Vec::new(),
    };
    h.broker.restore(state, h.now, wall_now);
    let sub = h.connect(V5, "s");
    h.subscribe(sub, "home/+", QoS::AtMostOnce);
    let topics: Vec<String> = h
        .publishes(sub)
        .iter()
        .map(|p| p.topic().to_owned())
        .collect();
    assert_eq!(topics, ["home/window"]);
}
