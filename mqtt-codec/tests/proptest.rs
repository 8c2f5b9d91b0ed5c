//! Property tests: every packet type round-trips in every version it exists in, arbitrary bytes
//! never panic the decoder, a stream of frames split at arbitrary points decodes to the same
//! packets (with the owned and with the borrowed stream API), and a frame declaring a huge
//! length is refused from its header alone.

// Strategy helpers outside #[test] functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use bytes::Buf as _;
use mqtt_wire::{
    Ack, Auth, Bytes, BytesMut, ConnAck, Connect, DecodeError, Decoder, Disconnect, LastWill,
    MqttStr, Packet, PacketId, PacketType, Properties, PropertyValues, ProtocolVersion, Publish,
    PublishQos, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, decode_packet,
};
use proptest::collection::vec;
use proptest::option::weighted;
use proptest::prelude::*;
use proptest::sample::select;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn mqtt_str() -> impl Strategy<Value = MqttStr> {
    "\\PC{0,8}".prop_map(|s| MqttStr::try_from(s).unwrap())
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|n| PacketId::new(n).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    weighted(0.3, s)
}

/// Any property set; [`restrict`] then keeps what a given packet may carry.
fn any_properties() -> impl Strategy<Value = Properties> {
    let g1 = (
        opt(0..=1u8),
        opt(any::<u32>()),
        opt(mqtt_str()),
        opt(mqtt_str()),
        opt(bytes(8)),
        vec(1..=268_435_455u32, 0..3),
        opt(any::<u32>()),
        opt(mqtt_str()),
        opt(any::<u16>()),
        opt(mqtt_str()),
        opt(bytes(8)),
        opt(0..=1u8),
    );
    let g2 = (
        opt(any::<u32>()),
        opt(0..=1u8),
        opt(mqtt_str()),
        opt(mqtt_str()),
        opt(mqtt_str()),
        opt(1..=u16::MAX),
        opt(any::<u16>()),
        opt(1..=u16::MAX),
        opt(0..=1u8),
        opt(0..=1u8),
        vec((mqtt_str(), mqtt_str()), 0..3),
        opt(1..=u32::MAX),
    );
    let g3 = (opt(0..=1u8), opt(0..=1u8), opt(0..=1u8));
    (g1, g2, g3).prop_map(|(g1, g2, g3)| {
        Properties::from(PropertyValues {
            payload_format_indicator: g1.0,
            message_expiry_interval: g1.1,
            content_type: g1.2,
            response_topic: g1.3,
            correlation_data: g1.4,
            subscription_identifiers: g1.5,
            session_expiry_interval: g1.6,
            assigned_client_identifier: g1.7,
            server_keep_alive: g1.8,
            authentication_method: g1.9,
            authentication_data: g1.10,
            request_problem_information: g1.11,
            will_delay_interval: g2.0,
            request_response_information: g2.1,
            response_information: g2.2,
            server_reference: g2.3,
            reason_string: g2.4,
            receive_maximum: g2.5,
            topic_alias_maximum: g2.6,
            topic_alias: g2.7,
            maximum_qos: g2.8,
            retain_available: g2.9,
            user_properties: g2.10,
            maximum_packet_size: g2.11,
            wildcard_subscription_available: g3.0,
            subscription_identifier_available: g3.1,
            shared_subscription_available: g3.2,
        })
    })
}

/// Clears every property whose identifier is not in `allowed` (user properties are always
/// allowed); `single_subscription_id` keeps at most one subscription identifier.
fn restrict(mut p: Properties, allowed: &[u8], single_subscription_id: bool) -> Properties {
    let no = |id: u8| !allowed.contains(&id);
    macro_rules! clear {
        ($($id:literal => $field:ident),* $(,)?) => {
            $( if no($id) { p.$field = None; } )*
        };
    }
    clear!(
        0x01 => payload_format_indicator, 0x02 => message_expiry_interval, 0x03 => content_type,
        0x08 => response_topic, 0x09 => correlation_data, 0x11 => session_expiry_interval,
        0x12 => assigned_client_identifier, 0x13 => server_keep_alive,
        0x15 => authentication_method, 0x16 => authentication_data,
        0x17 => request_problem_information, 0x18 => will_delay_interval,
        0x19 => request_response_information, 0x1A => response_information,
        0x1C => server_reference, 0x1F => reason_string, 0x21 => receive_maximum,
        0x22 => topic_alias_maximum, 0x23 => topic_alias, 0x24 => maximum_qos,
        0x25 => retain_available, 0x27 => maximum_packet_size,
        0x28 => wildcard_subscription_available, 0x29 => subscription_identifier_available,
        0x2A => shared_subscription_available,
    );
    if no(0x0B) {
        p.subscription_identifiers.clear();
    }
    if single_subscription_id {
        p.subscription_identifiers.truncate(1);
    }
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    p
}

const PUBLISH_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23];
const WILL_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18];
const CONNECT_PROPS: &[u8] = &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x27];
const CONNACK_PROPS: &[u8] = &[
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x27, 0x28, 0x29, 0x2A,
];
const ACK_PROPS: &[u8] = &[0x1F];
const DISCONNECT_PROPS: &[u8] = &[0x11, 0x1C, 0x1F];
const AUTH_PROPS: &[u8] = &[0x15, 0x16, 0x1F];

fn props_for(
    version: ProtocolVersion,
    allowed: &'static [u8],
    single_subscription_id: bool,
) -> BoxedStrategy<Properties> {
    if version.is_v5() {
        any_properties()
            .prop_map(move |p| restrict(p, allowed, single_subscription_id))
            .boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

/// The reason codes MQTT 5.0 allows in `packet_type`.
fn codes(packet_type: PacketType) -> Vec<ReasonCode> {
    (0..=255u8)
        .filter_map(|b| ReasonCode::try_from(b).ok())
        .filter(|c| c.is_valid_for(packet_type))
        .collect()
}

fn code_for(version: ProtocolVersion, packet_type: PacketType) -> BoxedStrategy<ReasonCode> {
    if version.is_v5() {
        select(codes(packet_type)).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    }
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        mqtt_str(),
        bytes(16),
        qos(),
        any::<bool>(),
        props_for(version, WILL_PROPS, false),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        mqtt_str(),
        weighted(0.5, will),
        opt(mqtt_str()),
        opt(bytes(8)),
        props_for(version, CONNECT_PROPS, false),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // MQTT 3.x forbids a password without a user name [MQTT-3.1.2-22].
                let password = if version.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    bridge: false,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        select(codes(PacketType::ConnAck)).boxed()
    } else {
        select(vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ])
        .boxed()
    };
    (
        any::<bool>(),
        code,
        props_for(version, CONNACK_PROPS, false),
    )
        .prop_map(|(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: session_present && reason_code == ReasonCode::Success,
                reason_code,
                properties,
            })
        })
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        packet_id(),
        any::<bool>(),
        mqtt_str(),
        props_for(version, PUBLISH_PROPS, false),
        bytes(64),
    )
        .prop_map(|(dup, qos, id, retain, topic, properties, payload)| {
            let qos = PublishQos::new(qos, id);
            Packet::Publish(
                Publish::new(topic, payload)
                    .with_qos(qos)
                    .with_retain(retain)
                    .with_dup(dup && qos.packet_id().is_some())
                    .with_properties(properties),
            )
        })
}

fn ack(version: ProtocolVersion, packet_type: PacketType) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        code_for(version, packet_type),
        props_for(version, ACK_PROPS, false),
    )
        .prop_map(move |(packet_id, reason_code, properties)| {
            let ack = Ack {
                packet_id,
                reason_code,
                properties,
            };
            match packet_type {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        })
}

fn subscription_options(version: ProtocolVersion) -> impl Strategy<Value = SubscriptionOptions> {
    let handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), handling).prop_map(
        move |(qos, no_local, retain_as_published, retain_handling)| {
            if version.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                }
            } else {
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                }
            }
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec((mqtt_str(), subscription_options(version)), 1..4),
        props_for(version, &[0x0B], true),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        select(codes(PacketType::SubAck)).boxed()
    } else {
        select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (
        packet_id(),
        vec(code, 0..4),
        props_for(version, ACK_PROPS, false),
    )
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(mqtt_str(), 1..4),
        props_for(version, &[], false),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version.is_v5() {
        vec(select(codes(PacketType::UnsubAck)), 0..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), codes, props_for(version, ACK_PROPS, false)).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        code_for(version, PacketType::Disconnect),
        props_for(version, DISCONNECT_PROPS, false),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    (
        select(codes(PacketType::Auth)),
        props_for(ProtocolVersion::V5, AUTH_PROPS, false),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Auth(Auth {
                reason_code,
                properties,
            })
        })
}

/// Any packet that exists in `version` and is valid there, CONNECT excluded (it names its own
/// version and belongs at the start of a stream).
fn packet_after_connect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connack(version),
        publish(version),
        ack(version, PacketType::PubAck),
        ack(version, PacketType::PubRec),
        ack(version, PacketType::PubRel),
        ack(version, PacketType::PubComp),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version),
    ];
    if version.is_v5() {
        prop_oneof![12 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn any_packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    prop_oneof![1 => connect(version), 12 => packet_after_connect(version)].boxed()
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    select(VERSIONS.to_vec())
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| any_packet(v).prop_map(move |p| (v, p)))
}

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    packet.encode(version, &mut out).unwrap();
    out
}

/// Everything `Decoder::decode` gets from `data`: the packets, then the error that ended it.
fn owned_all(mut decoder: Decoder, data: &[u8]) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::from(data);
    let mut got = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(p)) => got.push(p),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// The same through `split_frames` and `packets`.
fn borrowed_all(mut decoder: Decoder, data: &[u8]) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::from(data);
    let mut got = Vec::new();
    loop {
        let frames = match decoder.split_frames(&mut buf) {
            Ok(frames) if frames.is_empty() => return (got, None),
            Ok(frames) => frames,
            Err(e) => return (got, Some(e)),
        };
        for p in decoder.packets(&frames) {
            match p {
                Ok(p) => got.push(p.into_packet()),
                Err(e) => return (got, Some(e)),
            }
        }
    }
}

/// The same through `decode_in_place`, consuming each frame after its packet is taken.
fn in_place_all(mut decoder: Decoder, data: &[u8]) -> (Vec<Packet>, Option<DecodeError>) {
    let mut buf = BytesMut::from(data);
    let mut got = Vec::new();
    loop {
        match decoder.decode_in_place(&buf) {
            Ok(Some((p, len))) => {
                got.push(p.into_packet());
                buf.advance(len);
            }
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

proptest! {
    /// decode(encode(p)) == p, the length is exact, and re-encoding the decoded packet gives the
    /// same bytes, for every packet type in every version.
    #[test]
    fn round_trip((version, packet) in versioned_packet()) {
        let frame = encode(&packet, version);
        prop_assert_eq!(frame.len(), packet.encoded_len(version));
        let decoded = decode_packet(frame.clone().freeze(), version).unwrap();
        prop_assert_eq!(&decoded, &packet);
        prop_assert_eq!(encode(&decoded, version), frame);
    }

    /// A stream of frames fed in arbitrary pieces yields the same packets, in order.
    #[test]
    fn arbitrary_splits(
        (version, packets) in version().prop_flat_map(|v| {
            vec(packet_after_connect(v), 1..6).prop_map(move |ps| (v, ps))
        }),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = BytesMut::new();
        for p in &packets {
            p.encode(version, &mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = Decoder::new();
        decoder.set_version(version);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut start = 0;
        for end in points {
            buf.extend_from_slice(&stream[start..end]);
            start = end;
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, packets);
    }

    /// The borrowed stream API (`split_frames` + `packets`) yields exactly the packets
    /// `Decoder::decode` yields, for a stream opened by a CONNECT (so both learn the version
    /// from it) and fed in arbitrary pieces.
    #[test]
    fn borrowed_stream_matches_decoder(
        (connect, packets) in version().prop_flat_map(|v| {
            (connect(v), vec(packet_after_connect(v), 1..6))
        }),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let Packet::Connect(c) = &connect else { unreachable!() };
        let version = c.protocol;
        let mut stream = BytesMut::new();
        for p in std::iter::once(&connect).chain(&packets) {
            p.encode(version, &mut stream).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let (mut owned, mut borrowed) = (Decoder::new(), Decoder::new());
        let (mut owned_buf, mut borrowed_buf) = (BytesMut::new(), BytesMut::new());
        let (mut from_owned, mut from_borrowed) = (Vec::new(), Vec::new());
        let mut start = 0;
        for end in points {
            owned_buf.extend_from_slice(&stream[start..end]);
            borrowed_buf.extend_from_slice(&stream[start..end]);
            start = end;
            while let Some(p) = owned.decode(&mut owned_buf).unwrap() {
                from_owned.push(p);
            }
            let frames = borrowed.split_frames(&mut borrowed_buf).unwrap();
            for p in borrowed.packets(&frames) {
                from_borrowed.push(p.unwrap().into_packet());
            }
        }
        prop_assert!(owned_buf.is_empty() && borrowed_buf.is_empty());
        prop_assert_eq!(borrowed.version(), Some(version));
        prop_assert_eq!(&from_borrowed, &from_owned);
        prop_assert_eq!(&from_owned[1..], &packets[..]);
        // In place, on the whole stream: the same packets, the version learnt from the CONNECT.
        prop_assert_eq!(in_place_all(Decoder::new(), &stream), (from_owned, None));
    }

    /// On arbitrary bytes the borrowed stream API and `Decoder::decode` agree: the same packets,
    /// then the same first error (or none), whatever the version and size limit.
    #[test]
    fn borrowed_stream_agrees_on_arbitrary_bytes(
        data in vec(any::<u8>(), 0..256),
        version in prop::option::of(version()),
        small in any::<bool>(),
    ) {
        let mut decoder = if small { Decoder::new().with_max_packet_size(16) } else { Decoder::new() };
        if let Some(version) = version {
            decoder.set_version(version);
        }
        let owned = owned_all(decoder.clone(), &data);
        prop_assert_eq!(&borrowed_all(decoder.clone(), &data), &owned);
        prop_assert_eq!(&in_place_all(decoder, &data), &owned);
    }

    /// Arbitrary bytes never panic the decoder, whatever the version and size limit.
    #[test]
    fn arbitrary_bytes_never_panic(
        data in vec(any::<u8>(), 0..256),
        version in version(),
        small in any::<bool>(),
    ) {
        let _ = decode_packet(Bytes::from(data.clone()), version);
        let mut decoder = if small { Decoder::new().with_max_packet_size(16) } else { Decoder::new() };
        decoder.set_version(version);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(packet)) = decoder.decode(&mut buf) {
            // Whatever decodes also encodes.
            let _ = encode(&packet, version);
        }
    }

    /// Valid frames with one byte changed never panic the decoder; anything it accepts
    /// encodes again.
    #[test]
    fn mutated_frames_never_panic(
        (version, packet) in versioned_packet(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut frame = encode(&packet, version);
        let i = at.index(frame.len());
        frame[i] = byte;
        if let Ok(p) = decode_packet(frame.freeze(), version) {
            let _ = encode(&p, version);
        }
    }

    /// A header declaring more than the limit is refused before the body arrives.
    #[test]
    fn huge_length_refused_from_header(
        max in 2u32..1_000_000,
        extra in 1u32..1_000,
        first in 1u8..=14,
    ) {
        let remaining = (max + extra).min(268_435_455);
        let mut header = BytesMut::new();
        header.extend_from_slice(&[first << 4 | if matches!(first, 6 | 8 | 10) { 2 } else { 0 }]);
        let mut v = remaining;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 { header.extend_from_slice(&[b]); break; }
            header.extend_from_slice(&[b | 0x80]);
        }
        let size = header.len() as u32 + remaining;
        let mut decoder = Decoder::new().with_max_packet_size(max);
        prop_assert_eq!(
            decoder.decode(&mut header),
            Err(DecodeError::PacketTooLarge { size, max })
        );
    }
}
