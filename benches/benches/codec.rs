//! Codec benchmarks: decode and encode of typical MQTT 3.1.1 packets by `mqtt-wire`, side by
//! side with the crates a user would pick instead (`mqttrs`, which borrows from its input, and
//! `mqttbytes`, rumqtt's codec) and a memcpy of the same bytes as the floor.
//!
//! Every contender does the same work: parse a whole frame with full validation (UTF-8
//! included) into its packet type, or write a packet into a reused buffer. Frames are produced
//! by our encoder and checked to decode identically with each peer before measuring.
//!
//! Rows (see docs/PERFORMANCE-codec.md): `decode/<case>/mqtt-wire` decodes an owned frame whose
//! clone is made in the setup and whose packet is dropped after the timing, the same work as
//! `mqttrs`, which borrows from the caller's buffer; `mqtt-wire+clone+drop` includes the frame
//! clone and the packet drop (two atomic operations); `mqttbytes` includes its frame clone and
//! drop. The stream rows include everything: finding each frame, splitting it off, decoding
//! and dropping it (mqttrs cannot report consumed bytes, so its frames are pre-chunked by
//! their known length, which favours it).

use std::hint::black_box;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mqtt_wire::{
    Connect, Decoder, LastWill, MqttStr, Packet, Properties, ProtocolVersion, Publish, PublishQos,
    QoS, RetainHandling, Subscribe, SubscriptionOptions, decode_packet,
};

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const STREAM_FRAMES: usize = 10_000;

/// One benchmark case: a packet and its encoded frame.
struct Case {
    name: &'static str,
    packet: Packet,
    frame: Bytes,
}

fn encode(packet: &Packet) -> Bytes {
    let mut out = BytesMut::new();
    packet.encode(V4, &mut out).expect("fixture encodes");
    out.freeze()
}

fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero")
}

fn publish(topic: &'static str, qos: PublishQos, payload_len: usize) -> Packet {
    Packet::Publish(
        Publish::new(
            MqttStr::from_static(topic),
            Bytes::from(vec![b'x'; payload_len]),
        )
        .with_qos(qos),
    )
}

fn cases() -> Vec<Case> {
    let connect = Packet::Connect(Box::new(Connect {
        protocol: V4,
        clean_start: true,
        keep_alive: 60,
        client_id: MqttStr::from_static("tasmota_5C1A2B"),
        will: Some(LastWill {
            topic: MqttStr::from_static("tele/tasmota_5C1A2B/LWT"),
            payload: Bytes::from_static(b"Offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: Some(MqttStr::from_static("DVES_USER")),
        password: Some(Bytes::from_static(b"correct horse battery")),
        properties: Properties::default(),
    }));
    let filters = [
        "cmnd/tasmota_5C1A2B/#",
        "cmnd/tasmotas/#",
        "stat/+/POWER",
        "tele/+/LWT",
        "$SYS/broker/clients/connected",
    ];
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: pid(7),
        filters: filters
            .iter()
            .map(|f| {
                let options = SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendAtSubscribe,
                };
                (MqttStr::from_static(f), options)
            })
            .collect(),
        properties: Properties::default(),
    });
    [
        (
            "publish_qos0_16b_64b",
            publish("stat/sonoff/POWE", PublishQos::AtMostOnce, 64),
        ),
        (
            "publish_qos1_4kib",
            publish("tele/sonoff/SENS", PublishQos::AtLeastOnce(pid(42)), 4096),
        ),
        ("connect_will_credentials", connect),
        ("subscribe_5_filters", subscribe),
    ]
    .into_iter()
    .map(|(name, packet)| Case {
        name,
        frame: encode(&packet),
        packet,
    })
    .collect()
}

/// Parses `frame` with mqttbytes' v4 codec (the frame-level entry point, no copy of the input).
fn mqttbytes_decode(frame: &Bytes) -> mqttbytes::v4::Packet {
    use mqttbytes::v4::{Connect, Packet, Publish, Subscribe};
    let header = mqttbytes::check(frame.iter(), usize::MAX).expect("mqttbytes header");
    let frame = frame.clone();
    match frame[0] >> 4 {
        1 => Packet::Connect(Connect::read(header, frame).expect("mqttbytes connect")),
        3 => Packet::Publish(Publish::read(header, frame).expect("mqttbytes publish")),
        8 => Packet::Subscribe(Subscribe::read(header, frame).expect("mqttbytes subscribe")),
        other => panic!("no fixture of type {other}"),
    }
}

fn mqttbytes_encode(packet: &mqttbytes::v4::Packet, out: &mut BytesMut) -> usize {
    use mqttbytes::v4::Packet;
    match packet {
        Packet::Connect(p) => p.write(out),
        Packet::Publish(p) => p.write(out),
        Packet::Subscribe(p) => p.write(out),
        _ => panic!("no fixture of this type"),
    }
    .expect("mqttbytes encodes")
}

fn decode_single(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("decode/{}", case.name));
        group.throughput(Throughput::Bytes(case.frame.len() as u64));
        assert_eq!(
            decode_packet(case.frame.clone(), V4).as_ref(),
            Ok(&case.packet)
        );
        assert!(matches!(mqttrs::decode_slice(&case.frame), Ok(Some(_))));
        let _ = mqttbytes_decode(&case.frame);

        // The same work as mqttrs, which borrows from a buffer the caller owns: decode from an
        // owned frame; the frame clone (setup) and the packet drop happen outside the timing.
        group.bench_function("mqtt-wire", |b| {
            b.iter_batched(
                || case.frame.clone(),
                |frame| decode_packet(black_box(frame), V4),
                BatchSize::SmallInput,
            )
        });
        // The same plus taking a reference to a shared frame and dropping the packet: one
        // atomic increment and one decrement.
        group.bench_function("mqtt-wire+clone+drop", |b| {
            b.iter(|| decode_packet(black_box(case.frame.clone()), V4))
        });
        group.bench_function("mqttrs", |b| {
            b.iter(|| mqttrs::decode_slice(black_box(&case.frame[..])).map(|p| p.is_some()))
        });
        group.bench_function("mqttbytes", |b| {
            b.iter(|| mqttbytes_decode(black_box(&case.frame)))
        });
        let mut floor = vec![0u8; case.frame.len()];
        group.bench_function("memcpy", |b| {
            b.iter(|| floor.copy_from_slice(black_box(&case.frame[..])))
        });
        // What the two atomic reference-count updates of `+clone+drop` cost on this machine.
        group.bench_function("bytes-clone-drop", |b| {
            b.iter(|| black_box(black_box(&case.frame).clone()))
        });
        group.finish();
    }
}

fn encode_single(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("encode/{}", case.name));
        group.throughput(Throughput::Bytes(case.frame.len() as u64));
        let len = case.frame.len();

        // Each contender's output is checked before it is measured.
        let mut ours = BytesMut::with_capacity(len);
        case.packet.encode(V4, &mut ours).expect("encodes");
        assert_eq!(&ours[..], &case.frame[..]);
        group.bench_function("mqtt-wire", |b| {
            b.iter(|| {
                ours.clear();
                black_box(&case.packet)
                    .encode(V4, &mut ours)
                    .expect("encodes");
            })
        });

        let theirs = mqttrs::decode_slice(&case.frame)
            .expect("mqttrs decodes")
            .expect("whole frame");
        let mut slice = vec![0u8; len];
        mqttrs::encode_slice(&theirs, &mut slice).expect("encodes");
        assert_eq!(&slice[..], &case.frame[..]);
        group.bench_function("mqttrs", |b| {
            b.iter(|| mqttrs::encode_slice(black_box(&theirs), &mut slice).expect("encodes"))
        });

        let rumqtt = mqttbytes_decode(&case.frame);
        let mut buf = BytesMut::with_capacity(len);
        mqttbytes_encode(&rumqtt, &mut buf);
        assert_eq!(&buf[..], &case.frame[..]);
        group.bench_function("mqttbytes", |b| {
            b.iter(|| {
                buf.clear();
                mqttbytes_encode(black_box(&rumqtt), &mut buf)
            })
        });

        let mut floor = vec![0u8; len];
        group.bench_function("memcpy", |b| {
            b.iter(|| floor.copy_from_slice(black_box(&case.frame[..])))
        });
        group.finish();
    }
}

/// 10,000 back-to-back QoS 0 PUBLISH frames (16 B topic, 64 B payload) in one buffer, as a
/// socket read would deliver them.
fn decode_stream(c: &mut Criterion) {
    let frame = encode(&publish("stat/sonoff/POWE", PublishQos::AtMostOnce, 64));
    let stream: Vec<u8> = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * STREAM_FRAMES)
        .collect();
    let mut group = c.benchmark_group("decode/stream_10k_publish_qos0");
    group.throughput(Throughput::Elements(STREAM_FRAMES as u64));

    group.bench_function("mqtt-wire", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&stream[..]),
            |buf| {
                let mut decoder = Decoder::new();
                decoder.set_version(V4);
                let mut n = 0;
                while let Some(packet) = decoder.decode(buf).expect("valid stream") {
                    black_box(packet);
                    n += 1;
                }
                assert_eq!(n, STREAM_FRAMES);
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("mqttrs", |b| {
        b.iter(|| {
            // mqttrs does not report the consumed length; every frame here has the same one.
            let mut n = 0;
            for chunk in black_box(&stream[..]).chunks_exact(frame.len()) {
                black_box(mqttrs::decode_slice(chunk).expect("valid").expect("whole"));
                n += 1;
            }
            assert_eq!(n, STREAM_FRAMES);
        })
    });
    group.bench_function("mqttbytes", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&stream[..]),
            |buf| {
                let mut n = 0;
                while !buf.is_empty() {
                    black_box(mqttbytes::v4::read(buf, usize::MAX).expect("valid"));
                    n += 1;
                }
                assert_eq!(n, STREAM_FRAMES);
            },
            BatchSize::LargeInput,
        )
    });
    let mut floor = vec![0u8; stream.len()];
    group.bench_function("memcpy", |b| {
        b.iter(|| floor.copy_from_slice(black_box(&stream[..])))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = codec;
    config = config();
    targets = decode_single, encode_single, decode_stream
}
criterion_main!(codec);
