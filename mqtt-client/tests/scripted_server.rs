//! The client against servers that misbehave or set limits: each reply is written out byte
//! by byte, so what is checked is the client's own reaction.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_client::{Client, ClientError, Disconnection, Event, Message, Options};
use mqtt_wire::{Decoder, Packet, ProtocolVersion, QoS, ReasonCode};

fn connected(options: Options, connack: &[u8]) -> (Client, Instant) {
    let now = Instant::now();
    let mut client = Client::new(options);
    client.connect(now).unwrap();
    client.poll_transmit().unwrap();
    client.handle_input(&mut BytesMut::from(connack), now);
    (client, now)
}

fn events(client: &mut Client) -> Vec<Event> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn sent(client: &mut Client, version: ProtocolVersion) -> Vec<Packet> {
    let mut bytes = BytesMut::from(&client.poll_transmit().unwrap_or_default()[..]);
    let mut decoder = Decoder::new();
    decoder.set_version(version);
    std::iter::from_fn(|| decoder.decode(&mut bytes).unwrap()).collect()
}

const CONNACK_V5: &[u8] = b"\x20\x03\x00\x00\x00";

#[test]
fn mqtt5_3_2_0_1_a_packet_before_connack_ends_the_connection() {
    let (mut client, _) = connected(Options::new("c"), b"\xd0\x00"); // PINGRESP first
    assert!(matches!(
        events(&mut client)[..],
        [Event::Disconnected(Disconnection::ProtocolError { .. })]
    ));
    assert!(!client.is_connected());
}

#[test]
fn mqtt5_3_2_2_4_session_present_after_a_clean_start_closes() {
    let (mut client, _) = connected(Options::new("c"), b"\x20\x03\x01\x00\x00");
    assert!(matches!(
        events(&mut client)[..],
        [Event::Disconnected(Disconnection::ProtocolError { .. })]
    ));
}

#[test]
fn mqtt5_4_13_1_1_an_acknowledgement_of_the_wrong_kind_is_a_protocol_error() {
    let (mut client, now) = connected(Options::new("c"), CONNACK_V5);
    events(&mut client);
    client
        .publish(Message::new("t", "x").qos(QoS::AtLeastOnce), now)
        .unwrap();
    sent(&mut client, ProtocolVersion::V5);
    client.handle_input(&mut BytesMut::from(&b"\x70\x02\x00\x01"[..]), now); // PUBCOMP 1
    let Some(Packet::Disconnect(d)) = sent(&mut client, ProtocolVersion::V5).pop() else {
        panic!("DISCONNECT expected")
    };
    assert_eq!(d.reason_code, ReasonCode::ProtocolError);
    // The message stays unfinished for the next connection.
    assert_eq!(client.session().outgoing().count(), 1);
}

#[test]
fn mqtt5_3_3_2_10_a_topic_alias_the_client_did_not_allow_is_refused() {
    let (mut client, now) = connected(Options::new("c"), CONNACK_V5);
    events(&mut client);
    // PUBLISH QoS 0 "t" with Topic Alias 1.
    client.handle_input(
        &mut BytesMut::from(&b"\x30\x07\x00\x01t\x03\x23\x00\x01"[..]),
        now,
    );
    let Some(Packet::Disconnect(d)) = sent(&mut client, ProtocolVersion::V5).pop() else {
        panic!("DISCONNECT expected")
    };
    assert_eq!(d.reason_code, ReasonCode::TopicAliasInvalid);
}

#[test]
fn mqtt5_3_3_4_9_more_unacknowledged_messages_than_announced_is_0x93() {
    let options = Options::new("c").receive_maximum(1).manual_acks(true);
    let (mut client, now) = connected(options, CONNACK_V5);
    events(&mut client);
    client.handle_input(
        &mut BytesMut::from(&b"\x32\x07\x00\x01t\x00\x01\x00x"[..]),
        now,
    );
    client.handle_input(
        &mut BytesMut::from(&b"\x32\x07\x00\x01t\x00\x02\x00y"[..]),
        now,
    );
    let Some(Packet::Disconnect(d)) = sent(&mut client, ProtocolVersion::V5).pop() else {
        panic!("DISCONNECT expected")
    };
    assert_eq!(d.reason_code, ReasonCode::ReceiveMaximumExceeded);
}

#[test]
fn mqtt5_3_2_2_11_14_15_the_servers_limits_are_kept() {
    // CONNACK: Maximum QoS 1, Retain Available 0, Maximum Packet Size 32.
    let connack = b"\x20\x0c\x00\x00\x09\x24\x01\x25\x00\x27\x00\x00\x00\x20";
    let (mut client, now) = connected(Options::new("c"), connack);
    events(&mut client);
    let two = client.publish(Message::new("t", "x").qos(QoS::ExactlyOnce), now);
    assert_eq!(two, Err(ClientError::QosNotSupported(2)));
    let retained = client.publish(Message::new("t", "x").retain(true), now);
    assert_eq!(retained, Err(ClientError::RetainNotSupported));
    let big = client.publish(Message::new("t", vec![0u8; 64]), now);
    assert!(matches!(
        big,
        Err(ClientError::PacketTooLarge { maximum: 32, .. })
    ));
    assert!(client.poll_transmit().is_none(), "nothing was sent");
}

#[test]
fn mqtt5_3_1_2_21_the_servers_keep_alive_is_adopted_and_a_missing_pingresp_ends_it() {
    // Keep alive 60 asked, the server says 5 (Server Keep Alive 0x13).
    let connack = b"\x20\x06\x00\x00\x03\x13\x00\x05";
    let (mut client, now) = connected(Options::new("c").keep_alive(60), connack);
    events(&mut client);
    assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(5)));
    client.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(sent(&mut client, ProtocolVersion::V5), [Packet::PingReq]); // [MQTT5-3.1.2-20]
    client.handle_timeout(now + Duration::from_secs(10));
    assert_eq!(
        events(&mut client),
        [Event::Disconnected(Disconnection::Timeout)]
    );
}

#[test]
fn a_missing_connack_ends_the_attempt() {
    let now = Instant::now();
    let mut client = Client::new(Options::new("c").connect_timeout(Duration::from_secs(3)));
    client.connect(now).unwrap();
    client.handle_timeout(now + Duration::from_secs(3));
    assert_eq!(
        events(&mut client),
        [Event::Disconnected(Disconnection::Timeout)]
    );
    client.connection_lost();
    assert!(client.connect(now).is_ok(), "a new attempt may start");
}

#[test]
fn mqtt5_4_3_3_10_a_duplicate_qos2_before_pubrel_is_acknowledged_not_delivered() {
    let (mut client, now) = connected(Options::new("c"), CONNACK_V5);
    events(&mut client);
    let publish = b"\x34\x07\x00\x01t\x00\x09\x00x";
    client.handle_input(&mut BytesMut::from(&publish[..]), now);
    let mut dup = publish.to_vec();
    dup[0] |= 0x08;
    client.handle_input(&mut BytesMut::from(&dup[..]), now);
    let messages = events(&mut client)
        .into_iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(messages, 1);
    let recs = sent(&mut client, ProtocolVersion::V5)
        .into_iter()
        .filter(|p| matches!(p, Packet::PubRec(_)))
        .count();
    assert_eq!(recs, 2);
    // PUBREL: PUBCOMP, and the identifier is free again [MQTT5-4.3.3-11] [MQTT5-4.3.3-12].
    client.handle_input(&mut BytesMut::from(&b"\x62\x02\x00\x09"[..]), now);
    assert!(matches!(
        sent(&mut client, ProtocolVersion::V5)[..],
        [Packet::PubComp(_)]
    ));
    client.handle_input(&mut BytesMut::from(&publish[..]), now);
    assert_eq!(
        events(&mut client).len(),
        2,
        "Released, then the new message"
    );
}

#[test]
fn a_malformed_packet_is_answered_with_its_reason_code() {
    let (mut client, now) = connected(Options::new("c"), CONNACK_V5);
    events(&mut client);
    // PUBLISH with QoS 3.
    client.handle_input(&mut BytesMut::from(&b"\x36\x05\x00\x01t\x00\x01"[..]), now);
    let Some(Packet::Disconnect(d)) = sent(&mut client, ProtocolVersion::V5).pop() else {
        panic!("DISCONNECT expected")
    };
    assert_eq!(d.reason_code, ReasonCode::MalformedPacket);
}
