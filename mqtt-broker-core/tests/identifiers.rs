//! Packet identifiers and order on the wire, in 3.1.1 and 5.0: acknowledgements echo the
//! identifier of what they acknowledge and go out in the order it arrived, the broker's own
//! QoS 1/2 PUBLISH packets carry non-zero identifiers not in use, a QoS 0 PUBLISH carries none,
//! and messages keep their order across topics.

mod common;

use common::*;
use mqtt_wire::{
    Ack, Packet, PublishQos, QoS, ReasonCode, RetainHandling, Subscribe, SubscriptionOptions,
    Unsubscribe,
};

fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: RetainHandling::SendAtSubscribe,
    }
}

/// The identifiers of the acknowledgements `client` received, in order.
fn ack_ids(h: &mut Harness, client: TestClient) -> Vec<u16> {
    h.recv_all(client)
        .into_iter()
        .map(|p| match p {
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                a.packet_id.get()
            }
            other => panic!("expected an acknowledgement, got {other:?}"),
        })
        .collect()
}

#[test]
fn acknowledgements_echo_the_publish_identifier_in_arrival_order() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let publisher = h.connect(version, "p");
        // QoS 1 with identifiers out of numeric order, sent back to back: PUBACKs echo each
        // [MQTT-2.3.1-6] [MQTT5-2.2.1-5], in the order the PUBLISH packets came
        // [MQTT-4.6.0-2] [MQTT5-4.6.0-2].
        for n in [5, 9, 3] {
            h.send_publish(
                publisher,
                publish_packet("t", b"x", PublishQos::AtLeastOnce(id(n)), false),
            );
        }
        assert_eq!(ack_ids(&mut h, publisher), [5, 9, 3], "{version:?}");
        // QoS 2 likewise: PUBRECs [MQTT-4.6.0-3] [MQTT5-4.6.0-3], then PUBCOMPs for PUBRELs.
        for n in [40, 12, 7] {
            h.send_publish(
                publisher,
                publish_packet("t", b"x", PublishQos::ExactlyOnce(id(n)), false),
            );
        }
        assert_eq!(ack_ids(&mut h, publisher), [40, 12, 7], "{version:?}");
        for n in [12, 40, 7] {
            h.send(publisher, Packet::PubRel(Ack::new(id(n))));
        }
        assert_eq!(ack_ids(&mut h, publisher), [12, 40, 7], "{version:?}");
    }
}

#[test]
fn suback_and_unsuback_echo_their_request_with_one_code_per_filter_in_order() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let c = h.connect(version, "c");
        // Every SUBSCRIBE gets a SUBACK [MQTT5-3.8.4-1] with its identifier
        // [MQTT-2.3.1-7] [MQTT5-2.2.1-6] [MQTT5-3.8.4-2]; several filters are handled as a
        // sequence answered by one SUBACK whose codes follow the filters' order
        // [MQTT-3.8.4-4] [MQTT5-3.8.4-5] [MQTT5-3.9.3-1].
        h.send(
            c,
            Packet::Subscribe(Subscribe {
                packet_id: id(77),
                filters: vec![
                    (s("a/#"), options(QoS::ExactlyOnce)),
                    (s("b"), options(QoS::AtMostOnce)),
                    (s("c/+"), options(QoS::AtLeastOnce)),
                ],
                properties: Default::default(),
            }),
        );
        let Packet::SubAck(ack) = h.expect(c) else {
            panic!("expected SUBACK")
        };
        assert_eq!(ack.packet_id, id(77));
        assert_eq!(
            ack.reason_codes,
            [
                ReasonCode::GrantedQoS2,
                ReasonCode::Success,
                ReasonCode::GrantedQoS1
            ],
            "{version:?}"
        );
        h.send(
            c,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: id(78),
                filters: vec![s("b"), s("a/#")],
                properties: Default::default(),
            }),
        );
        let Packet::UnsubAck(ack) = h.expect(c) else {
            panic!("expected UNSUBACK")
        };
        assert_eq!(ack.packet_id, id(78), "{version:?}");
    }
}

#[test]
fn the_brokers_identifiers_are_non_zero_and_never_in_use_twice() {
    for version in [V311, V5] {
        let mut h = Harness::with_config(config(|c| c.receive_maximum = 4));
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "t", QoS::AtLeastOnce);
        let publisher = h.connect(version, "pub");
        h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 12);
        // Non-zero [MQTT-2.3.1-1], and unused among those in flight
        // [MQTT-2.3.1-4] [MQTT5-2.2.1-4] [MQTT5-4.3.2-1]: acknowledge one at a time and check every new
        // identifier against those still unacknowledged.
        let mut in_flight: Vec<u16> = Vec::new();
        let mut delivered = 0;
        loop {
            for p in h.publishes(sub) {
                let PublishQos::AtLeastOnce(pid) = p.qos else {
                    panic!("QoS 1 expected")
                };
                assert!(
                    !in_flight.contains(&pid.get()),
                    "{version:?}: identifier {pid:?} reused while in flight ({in_flight:?})"
                );
                in_flight.push(pid.get());
                delivered += 1;
            }
            if in_flight.is_empty() {
                break;
            }
            // The oldest is acknowledged: its identifier may come back.
            let oldest = in_flight.remove(0);
            h.send(sub, Packet::PubAck(Ack::new(id(oldest))));
        }
        assert_eq!(delivered, 12, "{version:?}");
    }
}

#[test]
fn a_qos0_publish_carries_no_packet_identifier() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "t/q0", QoS::AtMostOnce);
        let publisher = h.connect(version, "pub");
        h.publish(publisher, "t/q0", b"abc", QoS::AtMostOnce, false);
        // On the wire: fixed header with QoS bits 0, then the topic and (5.0) the property
        // length; no two-byte identifier before the payload [MQTT-2.3.1-5].
        let frame: Vec<u8> = h
            .raw(sub)
            .iter()
            .map(|chunks| chunks.concat())
            .find(|bytes| bytes.first().is_some_and(|b| b >> 4 == 3))
            .expect("a PUBLISH");
        assert_eq!(frame[0] & 0b0110, 0, "QoS 0");
        let properties = usize::from(version == V5);
        assert_eq!(
            usize::from(frame[1]),
            2 + 4 + properties + 3,
            "{version:?}: {frame:?}"
        );
        assert_eq!(&frame[frame.len() - 3..], b"abc");
    }
}

#[test]
fn the_broker_sends_pubrel_in_the_order_the_pubrecs_came() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "t", QoS::ExactlyOnce);
        let publisher = h.connect(version, "pub");
        h.publish_n(publisher, "t", b"m", QoS::ExactlyOnce, 3);
        let ids: Vec<u16> = h
            .publishes(sub)
            .iter()
            .map(|p| match p.qos {
                PublishQos::ExactlyOnce(pid) if !p.dup => pid.get(),
                _ => panic!("QoS 2 and DUP 0 expected: {p:?}"),
            })
            .collect();
        assert_eq!(ids.len(), 3);
        // As a QoS 2 sender the broker gives each message its own unused identifier, QoS 2 and
        // DUP 0 [MQTT5-4.3.3-1] [MQTT5-4.3.3-2].
        let distinct: std::collections::BTreeSet<u16> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        // PUBRECs out of order: the PUBRELs follow them, each echoing its identifier
        // [MQTT-4.6.0-4] [MQTT5-4.6.0-4] [MQTT5-2.2.1-5].
        let order = [ids[2], ids[0], ids[1]];
        for n in order {
            h.send(sub, Packet::PubRec(Ack::new(id(n))));
        }
        assert_eq!(ack_ids(&mut h, sub), order, "{version:?}");
    }
}

#[test]
fn messages_keep_their_order_across_topics() {
    for version in [V311, V5] {
        let mut h = Harness::new();
        let sub = h.connect(version, "sub");
        h.subscribe(sub, "a/#", QoS::AtLeastOnce);
        let publisher = h.connect(version, "pub");
        // Every topic is an Ordered Topic: one publisher's messages on different topics reach
        // a subscriber in the order sent [MQTT-4.6.0-5] [MQTT5-4.6.0-5].
        let topics = ["a/1", "a/2", "a/1", "a/3", "a/2", "a/1"];
        let payloads: [&'static [u8]; 6] = [b"0", b"1", b"2", b"3", b"4", b"5"];
        for (topic, payload) in topics.iter().zip(payloads) {
            h.publish(publisher, topic, payload, QoS::AtLeastOnce, false);
        }
        let got: Vec<(String, Vec<u8>)> = h
            .receive_and_ack(sub)
            .iter()
            .map(|p| (p.topic().to_owned(), p.payload().to_vec()))
            .collect();
        let sent: Vec<(String, Vec<u8>)> = topics
            .iter()
            .zip(payloads)
            .map(|(t, p)| ((*t).to_owned(), p.to_vec()))
            .collect();
        assert_eq!(got, sent, "{version:?}");
    }
}
