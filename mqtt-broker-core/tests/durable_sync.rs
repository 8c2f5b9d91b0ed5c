//! `Persistence::Sync` on a virtual clock: what waits for a batch to be durable (acknowledgements,
//! QoS 2 deliveries, whose packet identifier must be on disk first) and what goes out at once
//! (QoS 1 deliveries, other packets), with the order on each connection kept.

mod common;

use common::*;
use mqtt_broker_core::persist::{DeliveryState, PersistRecord, Persistence};
use mqtt_wire::{Packet, PublishQos, QoS};

fn sync_harness() -> Harness {
    Harness::with_config(config(|c| c.persistence = Persistence::Sync))
}

/// A subscriber with a persistent session (clean session off) on `t` at `qos`.
fn persistent_subscriber(h: &mut Harness, qos: QoS) -> TestClient {
    let client = h.open(V311);
    let ack = h.connect_with(
        client,
        mqtt_wire::Connect {
            clean_start: false,
            ..connect_packet(V311, "sub")
        },
    );
    assert!(!ack.session_present);
    h.subscribe(client, "t", qos);
    client
}

/// The records of every batch handed out so far.
fn records(h: &Harness) -> Vec<PersistRecord> {
    h.batches.iter().flat_map(|b| b.records.clone()).collect()
}

#[test]
fn qos2_publish_to_a_subscriber_waits_until_its_packet_id_is_durable() {
    let mut h = sync_harness();
    let sub = persistent_subscriber(&mut h, QoS::ExactlyOnce);
    // A clean publisher: its inbound QoS 2 identifier is not recorded, so the only record is
    // the subscriber's delivery.
    let publisher = h.connect(V311, "pub");
    h.hold_persist = true;
    h.send_publish(
        publisher,
        publish_packet("t", b"once", PublishQos::ExactlyOnce(id(1)), false),
    );
    let sent = records(&h).into_iter().find_map(|r| match r {
        PersistRecord::MessageStored { delivery, .. } => Some(delivery.state),
        _ => None,
    });
    let Some(DeliveryState::Sent(recorded)) = sent else {
        panic!("expected a delivery recorded as sent, got {sent:?}");
    };
    h.expect_nothing(sub);
    h.expect_nothing(publisher);
    h.persist_now();
    let delivered = h.publishes(sub);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].qos, PublishQos::ExactlyOnce(recorded));
    assert!(matches!(h.expect(publisher), Packet::PubRec(_)));
}

#[test]
fn qos1_publish_to_a_subscriber_goes_out_at_once_and_the_puback_waits() {
    let mut h = sync_harness();
    let sub = persistent_subscriber(&mut h, QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    h.hold_persist = true;
    h.send_publish(
        publisher,
        publish_packet("t", b"least", PublishQos::AtLeastOnce(id(1)), false),
    );
    assert_eq!(h.publishes(sub).len(), 1, "the delivery is not held");
    h.expect_nothing(publisher);
    h.persist_now();
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
}

#[test]
fn a_held_puback_keeps_later_packets_of_its_connection_behind_it_only() {
    let mut h = sync_harness();
    let _sub = persistent_subscriber(&mut h, QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    let other = h.connect(V311, "other");
    h.hold_persist = true;
    h.send_publish(
        publisher,
        publish_packet("t", b"m", PublishQos::AtLeastOnce(id(1)), false),
    );
    h.send(publisher, Packet::PingReq);
    h.send(other, Packet::PingReq);
    h.expect_nothing(publisher);
    assert_eq!(
        h.expect(other),
        Packet::PingResp,
        "other connections do not wait"
    );
    h.persist_now();
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
    assert_eq!(h.expect(publisher), Packet::PingResp);
}

/// A PUBACK waits for its own message's records, not for whatever batch is being written: a
/// publish that recorded nothing (no persistent subscriber, not retained) is acknowledged at
/// once while another client's batch is still on its way to the disk.
#[test]
fn a_puback_that_recorded_nothing_does_not_wait_for_another_clients_batch() {
    let mut h = sync_harness();
    let sub = persistent_subscriber(&mut h, QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    let other = h.connect(V311, "other");
    h.hold_persist = true;
    h.send_publish(
        publisher,
        publish_packet("t", b"stored", PublishQos::AtLeastOnce(id(1)), false),
    );
    assert_eq!(h.publishes(sub).len(), 1);
    h.expect_nothing(publisher);
    // Nobody keeps `elsewhere`: nothing to store, nothing to wait for.
    h.send_publish(
        other,
        publish_packet("elsewhere", b"m", PublishQos::AtLeastOnce(id(7)), false),
    );
    assert!(
        matches!(h.expect(other), Packet::PubAck(_)),
        "a PUBACK with no records of its own waited for another client's batch"
    );
    h.expect_nothing(publisher);
    h.persist_now();
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
}

/// Found by the simulator (`mqtt-sim`, seed 91): a connection that ended while its
/// acknowledgement waited for the disk got that acknowledgement (and its `Close`) after the
/// caller had reported it closed. Held outputs of a closed connection are dropped.
#[test]
fn outputs_held_for_a_connection_that_closed_meanwhile_are_dropped() {
    let mut h = sync_harness();
    let sub = persistent_subscriber(&mut h, QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    h.hold_persist = true;
    h.send(
        publisher,
        Packet::Publish(
            mqtt_wire::Publish::new(s("t"), mqtt_wire::Bytes::from_static(b"m"))
                .with_qos(PublishQos::AtLeastOnce(id(1))),
        ),
    );
    // The PUBACK waits for the subscriber's queued copy to be durable; the publisher goes.
    h.drop_connection(publisher);
    h.expect_nothing(publisher);
    // The harness panics on any output for a connection it reported closed.
    h.persist_now();
    assert!(h.recv_all(publisher).is_empty());
    assert!(matches!(h.recv(sub), Some(Packet::Publish(_))));
}

/// Found by the simulator (`mqtt-sim`, seed 330): the CONNACK of a new persistent session went
/// out before the session's record was even made, so nothing held it; a power cut before the
/// record's batch was durable lost a session the client had been told exists.
#[test]
fn the_connack_of_a_new_persistent_session_waits_for_its_record() {
    for version in [V311, V5] {
        let mut h = sync_harness();
        h.hold_persist = true;
        let client = h.open(version);
        let mut connect = connect_packet(version, "c");
        connect.clean_start = false;
        if version == V5 {
            connect.properties.session_expiry_interval = Some(600);
        }
        h.send(client, Packet::Connect(Box::new(connect)));
        h.expect_nothing(client);
        assert!(
            records(&h).iter().any(
                |r| matches!(r, PersistRecord::SessionSaved { client_id, .. } if client_id == "c")
            ),
            "{version:?}: the session is recorded"
        );
        h.persist_now();
        assert!(
            matches!(h.expect(client), Packet::ConnAck(_)),
            "{version:?}"
        );
    }
}
