//! A stuck subscriber on the virtual clock: after at most `max_publisher_pause` of waiting on it,
//! it is marked slow and pauses nobody again until it has drained, every publisher that waited
//! for it resumes at once, its messages queue up to its bounds and the rest are dropped and
//! counted, reported once per episode; when it reads again it is served its queue in order.
//! A stuck member of a shared group is passed over and its queued copies go to the others.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mqtt_broker_core::{DropReason, Event};
use mqtt_wire::{Packet, Properties, Publish, PublishQos, QoS, SubscriptionOptions};

const PAUSE: Duration = Duration::from_secs(2);

/// Queue bound 8 (high-water 4, low-water 2), window 2, pause at most 2 s.
fn harness() -> Harness {
    Harness::with_config(config(|c| {
        c.max_queued_messages = 8;
        c.receive_maximum = 2;
        c.max_publisher_pause = PAUSE;
    }))
}

/// A QoS 1 PUBLISH to `topic` whose payload is `n` (so order can be checked), packet id `id`.
fn numbered(topic: &str, n: u32, packet_id: u16) -> Publish {
    Publish::new(s(topic), Bytes::from(n.to_be_bytes().to_vec()))
        .with_qos(PublishQos::AtLeastOnce(id(packet_id)))
}

/// Publishes messages `range` to `topic` at QoS 1 and checks each is acknowledged at once
/// [MQTT-3.3.4-1].
fn publish_acked(h: &mut Harness, publisher: TestClient, topic: &str, range: std::ops::Range<u32>) {
    for n in range {
        h.send_publish(publisher, numbered(topic, n, 1 + (n % 1000) as u16));
        let got = h.recv(publisher);
        assert!(
            matches!(got, Some(Packet::PubAck(_))),
            "message {n} not acknowledged at once: {got:?} (paused: {:?})",
            h.reading
        );
    }
}

/// The numbers carried by `publishes`.
fn numbers(publishes: &[Publish]) -> Vec<u32> {
    publishes
        .iter()
        .map(|p| u32::from_be_bytes(p.payload().as_ref().try_into().expect("4 bytes")))
        .collect()
}

/// Receives and acknowledges until nothing more comes; the numbers received.
fn read_all(h: &mut Harness, client: TestClient) -> Vec<u32> {
    let mut received = Vec::new();
    loop {
        let got = h.receive_and_ack(client);
        if got.is_empty() {
            return received;
        }
        received.extend(numbers(&got));
    }
}

fn episodes_started(h: &Harness) -> Vec<String> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::DropsStarted { client_id, .. } => Some(client_id.to_string()),
            _ => None,
        })
        .collect()
}

fn episodes_ended(h: &Harness) -> Vec<(String, u64)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::DropsEnded { client_id, dropped } => Some((client_id.to_string(), *dropped)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stuck_subscriber_pauses_once_then_drops_and_counts_one_episode() {
    let mut h = harness();
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    // 2 in the window, 5 queued: above half, the publisher is paused.
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 7);
    h.expect_pause_to_expire(publisher, PAUSE);
    // Marked slow: 1,000 more are acknowledged at once, nobody is paused again, its queue stays
    // at its bound and the rest is dropped and counted.
    publish_acked(&mut h, publisher, "t", 0..1000);
    assert_eq!(h.reading.len(), 2, "paused once, resumed once");
    assert_eq!(h.broker.stats().publishers_paused, 1);
    assert_eq!(h.broker.stats().messages_queued, 8);
    let dropped = 7 + 1000 - 2 - 8;
    assert_eq!(h.drops(DropReason::QueueFull), dropped);
    assert_eq!(h.broker.stats().messages_dropped, dropped as u64);
    let sys = h.broker.stats().sys_topics(h.now, h.now, "v");
    assert!(sys.contains(&(
        "$SYS/broker/publish/messages/dropped".to_owned(),
        dropped.to_string()
    )));
    // One episode, reported once, not once per message.
    assert_eq!(episodes_started(&h), vec!["sub".to_owned()]);
    assert_eq!(h.broker.stats().drop_episodes, 1);
    assert!(episodes_ended(&h).is_empty());
    // Time passing changes nothing: the stuck subscriber still pauses nobody.
    h.advance(Duration::from_secs(60));
    publish_acked(&mut h, publisher, "t", 1000..1100);
    assert_eq!(h.reading.len(), 2);
    let _ = sub;
}

#[test]
fn every_publisher_waiting_for_a_subscriber_marked_slow_resumes_then() {
    let mut h = harness();
    let (_sub, first) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    let second = h.connect(V311, "pub2");
    h.publish_n(first, "t", b"m", QoS::AtLeastOnce, 7);
    assert_eq!(h.reading, vec![(first.conn, false)]);
    h.advance(Duration::from_secs(1));
    // The second publisher meets the same full queue a second later and waits too (the
    // PUBLISH that finds it full is handled; the next one waits).
    h.send_publish(second, numbered("t", 0, 1));
    assert!(matches!(h.expect(second), Packet::PubAck(_)));
    assert_eq!(h.reading[1..], [(second.conn, false)]);
    h.send_publish(second, numbered("t", 1, 2));
    h.expect_nothing(second);
    // When the first pause ends the subscriber is marked slow: the second publisher, which
    // waited only for it, resumes with the first instead of a second later.
    h.advance(PAUSE - Duration::from_secs(1));
    assert_eq!(
        h.reading[2..],
        [(first.conn, true), (second.conn, true)],
        "both resumed when the subscriber was marked slow"
    );
    assert!(matches!(h.expect(second), Packet::PubAck(_)));
    assert_eq!(h.broker.stats().publisher_pauses_expired, 1);
    publish_acked(&mut h, second, "t", 2..50);
    publish_acked(&mut h, first, "t", 50..100);
    assert_eq!(h.reading.len(), 4, "nobody paused again");
}

#[test]
fn mqtt311_4_6_0_6_a_slow_subscriber_that_reads_again_gets_its_queue_in_order_and_the_episode_ends()
{
    let mut h = harness();
    let (sub, publisher) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    publish_acked(&mut h, publisher, "t", 0..6); // 2 sent, 4 queued: at the mark
    h.send_publish(publisher, numbered("t", 6, 7)); // above it: paused
    h.advance(PAUSE);
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
    publish_acked(&mut h, publisher, "t", 7..40);
    // 0 and 1 in flight, 2..=9 queued, 10..40 dropped.
    assert_eq!(h.drops(DropReason::QueueFull), 30);
    // The subscriber reads again: the window, then the queue, oldest first
    // [MQTT311-4.6.0-6].
    let received = read_all(&mut h, sub);
    assert_eq!(received, (0..10).collect::<Vec<_>>());
    assert_eq!(episodes_ended(&h), vec![("sub".to_owned(), 30)]);
    // Drained: it is no longer slow, so a new backlog pauses the publisher again (for a
    // subscriber that reads, that keeps every message) and the next drops are a new episode.
    publish_acked(&mut h, publisher, "t", 100..106);
    h.send_publish(publisher, numbered("t", 106, 7));
    assert_eq!(h.reading.len(), 3, "paused again");
    h.advance(PAUSE);
    publish_acked(&mut h, publisher, "t", 107..120);
    assert_eq!(
        episodes_started(&h),
        vec!["sub".to_owned(), "sub".to_owned()]
    );
    assert_eq!(h.broker.stats().drop_episodes, 2);
}

#[test]
fn an_offline_session_dropping_is_one_episode_until_it_is_back_and_drained() {
    let mut h = harness();
    let sub = h.open(V311);
    let mut connect = connect_packet(V311, "sub");
    connect.clean_start = false;
    h.connect_with(sub, connect.clone());
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.drop_connection(sub);
    let publisher = h.connect(V311, "pub");
    publish_acked(&mut h, publisher, "t", 0..20); // 8 queued, 12 dropped
    assert_eq!(episodes_started(&h), vec!["sub".to_owned()]);
    assert!(episodes_ended(&h).is_empty());
    let sub = h.open(V311);
    h.connect_with(sub, connect);
    let received = read_all(&mut h, sub);
    assert_eq!(received, (0..8).collect::<Vec<_>>());
    assert_eq!(episodes_ended(&h), vec![("sub".to_owned(), 12)]);
}

#[test]
fn mqtt5_4_8_2_a_stuck_shared_member_is_passed_over_and_its_queue_goes_to_the_others() {
    let mut h = harness();
    let stuck = h.connect(V311, "stuck");
    h.subscribe(stuck, "$share/g/t", QoS::AtLeastOnce);
    let reader = h.connect(V311, "reader");
    h.subscribe(reader, "$share/g/t", QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    let mut read = Vec::new();
    // Round robin: the stuck member gets every other message until its queue passes half.
    let mut n = 0;
    while h.reading.is_empty() {
        h.send_publish(publisher, numbered("t", n, 1));
        n += 1;
        read.extend(numbers(&h.receive_and_ack(reader)));
    }
    // 0 and 2 in flight, 4 to 10 queued: 12 finds the queue at half and pauses.
    assert_eq!(n, 13);
    h.advance(PAUSE);
    read.extend(read_all(&mut h, reader));
    // Marked slow: its 5 queued copies went to the reader [MQTT5-4.8.2-3]; the 2 it was sent
    // stay with it (not resent to another member) [MQTT5-4.8.2-4].
    assert_eq!(h.broker.stats().messages_queued, 0);
    // From now on the reader takes every message.
    for m in n..n + 100 {
        h.send_publish(publisher, numbered("t", m, 1));
        read.extend(read_all(&mut h, reader));
    }
    assert_eq!(h.drops(DropReason::QueueFull), 0);
    let to_stuck = numbers(&h.publishes(stuck));
    assert_eq!(to_stuck, vec![0, 2], "the stuck member's window");
    read.sort_unstable();
    let expected: Vec<u32> = (0..n + 100).filter(|m| !to_stuck.contains(m)).collect();
    assert_eq!(read, expected, "every other message went to the reader");
    assert_eq!(h.reading.len(), 2, "paused once");
}

/// Found by the simulator (`mqtt-sim`): a copy handed from one member of a group to another
/// kept the RETAIN flag shaped by the first member's subscription; it follows the subscription
/// it goes out through [MQTT5-3.3.1-13] (as its QoS does [MQTT5-4.8.2-3]).
#[test]
fn mqtt5_3_3_1_13_a_shared_copy_handed_to_another_member_follows_its_retain_as_published() {
    let mut h = harness();
    // Retain As Published 0 (it would clear the flag); a window of 2, never acknowledged.
    let stuck = h.open(V5);
    let mut connect = connect_packet(V5, "stuck");
    connect.properties.receive_maximum = Some(2);
    h.connect_with(stuck, connect);
    h.subscribe(stuck, "$share/g/t", QoS::AtLeastOnce);
    let reader = h.connect(V5, "reader");
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        retain_as_published: true,
        ..SubscriptionOptions::default()
    };
    h.subscribe_with(reader, "$share/g/t", options, Properties::default());
    let publisher = h.connect(V5, "pub");
    let mut read = Vec::new();
    let mut n = 0;
    while h.reading.is_empty() && n < 100 {
        h.send_publish(publisher, numbered("t", n, 1).with_retain(true));
        n += 1;
        read.extend(h.receive_and_ack(reader));
    }
    h.advance(PAUSE); // the stuck member's queued copies go to the reader
    loop {
        let got = h.receive_and_ack(reader);
        if got.is_empty() {
            break;
        }
        read.extend(got);
    }
    let handed: Vec<u32> = numbers(&read).into_iter().filter(|m| m % 2 == 0).collect();
    assert!(
        !handed.is_empty(),
        "copies of the stuck member reached the reader"
    );
    let cleared: Vec<u32> = numbers(&read.into_iter().filter(|p| !p.retain).collect::<Vec<_>>());
    assert!(cleared.is_empty(), "RETAIN cleared on {cleared:?}");
}

#[test]
fn a_stuck_subscriber_whose_connection_breaks_and_comes_back_is_waited_for_once_in_all() {
    let mut h = harness();
    // A device on bad Wi-Fi: its session is kept, it never acknowledges.
    let mut connect = connect_packet(V311, "flaky");
    connect.clean_start = false;
    let sub = h.open(V311);
    h.connect_with(sub, connect.clone());
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    let publisher = h.connect(V311, "pub");
    h.publish_n(publisher, "t", b"m", QoS::AtLeastOnce, 7); // 2 in flight, 5 queued: paused
    assert_eq!(h.reading, vec![(publisher.conn, false)]);
    // 1.5 s into the pause its connection breaks: nobody waits for an offline session.
    h.advance(Duration::from_millis(1500));
    h.drop_connection(sub);
    assert_eq!(h.reading[1..], [(publisher.conn, true)]);
    h.advance(Duration::from_millis(50));
    // Back, resumed, still not reading: the next PUBLISH finds its queue full again. It was
    // waited for 1.55 s already, so the publisher waits only the 0.45 s left of one pause.
    let mut sub = h.open(V311);
    h.connect_with(sub, connect.clone());
    h.send_publish(publisher, numbered("t", 0, 1));
    assert!(matches!(h.expect(publisher), Packet::PubAck(_)));
    assert_eq!(h.reading[2..], [(publisher.conn, false)]);
    h.advance(Duration::from_millis(449));
    assert_eq!(h.reading.len(), 3, "paused for the rest of one pause");
    h.advance(Duration::from_millis(1));
    assert_eq!(h.reading[3..], [(publisher.conn, true)]);
    assert_eq!(h.broker.stats().publisher_pauses_expired, 1);
    // Marked slow, which outlives its connections until it drains: breaking and coming back
    // again pauses nobody.
    for round in 0..3 {
        h.drop_connection(sub);
        sub = h.open(V311);
        h.connect_with(sub, connect.clone());
        publish_acked(&mut h, publisher, "t", round * 100..round * 100 + 100);
        h.advance(Duration::from_millis(1500));
    }
    assert_eq!(h.reading.len(), 4, "paused twice, for 2 s in all");
    assert_eq!(
        episodes_started(&h),
        vec!["flaky".to_owned()],
        "one episode"
    );
}

#[test]
fn a_wait_long_past_does_not_count_against_a_subscriber() {
    let mut h = harness();
    let (sub, first) = subscriber_and_publisher(&mut h, QoS::AtLeastOnce);
    h.publish_n(first, "t", b"m", QoS::AtLeastOnce, 7);
    assert_eq!(h.reading, vec![(first.conn, false)]);
    // The paused publisher leaves after a second; the subscriber, still full, is not marked.
    h.advance(Duration::from_secs(1));
    h.drop_connection(first);
    h.advance(Duration::from_secs(60));
    // The subscriber's socket is taking bytes (a PINGRESP): it is alive, if behind.
    h.send(sub, Packet::PingReq);
    h.take(sub, |p| matches!(p, Packet::PingResp));
    // A minute later another publisher meets its full queue: a pause of its own, in full.
    let second = h.connect(V311, "pub2");
    h.send_publish(second, numbered("t", 0, 1));
    assert!(matches!(h.expect(second), Packet::PubAck(_)));
    assert_eq!(h.reading[1..], [(second.conn, false)]);
    h.advance(PAUSE - Duration::from_millis(1));
    assert_eq!(h.reading.len(), 2, "still paused");
    // It reads: the publisher resumes, nothing was dropped.
    while !h.receive_and_ack(sub).is_empty() {}
    assert_eq!(h.reading[2..], [(second.conn, true)]);
    assert_eq!(h.broker.stats().messages_dropped, 0);
}
