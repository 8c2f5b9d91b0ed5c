//! Codec benchmarks: decode and encode of typical MQTT 3.1.1 packets by `mqtt-wire`, side by
//! side with the crates a user would pick instead (`mqttrs`, which borrows from its input, and
//! `mqttbytes`, rumqtt's codec) and a memcpy of the same bytes as the floor.
//!
//! Every decode row follows one convention, the one an application's read loop lives by: the
//! frame sits in a `BytesMut` read buffer (filled outside the timing), and inside the timing the
//! codec takes one frame out of it, the fields are looked at (topic and payload lengths, the
//! client id, the filter count) and the packet is dropped. Encode rows write a packet into a
//! reused buffer. Frames are produced by our encoder and checked to decode identically with each
//! peer before measuring. mqttrs cannot say how long the frame it decoded was, so its rows
//! advance the buffer by the known frame length, which favours it slightly.
//!
//! Rows (see docs/PERFORMANCE-codec.md): `mqtt-wire in-place` is `Decoder::decode_in_place`
//! (the packet borrows from the buffer), `mqtt-wire decode` is `Decoder::decode` (the packet
//! owns a shared view of its frame), `mqtt-wire split+borrowed` is `Decoder::split_frames`
//! then `Decoder::decode_borrowed` / `Decoder::packets`.

use std::hint::black_box;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use mqtt_wire::{
    Connect, Decoder, LastWill, MqttStr, Packet, PacketRef, Properties, ProtocolVersion, Publish,
    PublishQos, QoS, RetainHandling, Subscribe, SubscriptionOptions, decode_packet,
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
        bridge: false,
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

/// mqtt-protocol's packet for `frame`, decoded by it (its encoder is the fastest SUBSCRIBE
/// writer among the peers).
fn mqtt_protocol_packet(frame: &[u8]) -> mqtt::packet::VariablePacket {
    use mqtt::Decodable as _;
    mqtt::packet::VariablePacket::decode(&mut std::io::Cursor::new(frame))
        .expect("mqtt-protocol decodes")
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

/// Something to look at in a decoded packet, so no field read is optimised away.
fn touch(packet: &Packet) -> usize {
    match packet {
        Packet::Publish(p) => p.topic().len() + p.payload().len(),
        Packet::Connect(c) => c.client_id.len(),
        Packet::Subscribe(s) => s.filters.len(),
        _ => 0,
    }
}

fn touch_ref(packet: &PacketRef<'_>) -> usize {
    match packet {
        PacketRef::Publish(p) => p.topic().len() + p.payload().len(),
        PacketRef::Other(packet) => touch(packet),
    }
}

fn touch_mqttrs(packet: &mqttrs::Packet<'_>) -> usize {
    match packet {
        mqttrs::Packet::Publish(p) => p.topic_name.len() + p.payload.len(),
        mqttrs::Packet::Connect(c) => c.client_id.len(),
        mqttrs::Packet::Subscribe(s) => s.topics.len(),
        _ => 0,
    }
}

fn touch_mqttbytes(packet: &mqttbytes::v4::Packet) -> usize {
    match packet {
        mqttbytes::v4::Packet::Publish(p) => p.topic.len() + p.payload.len(),
        mqttbytes::v4::Packet::Connect(c) => c.client_id.len(),
        mqttbytes::v4::Packet::Subscribe(s) => s.filters.len(),
        _ => 0,
    }
}

/// One way to take the frame at the front of a read buffer out of it, look at the packet and
/// drop it; `frame_len` is the frame's known length (only mqttrs needs it).
type DecodeRow = fn(&mut Decoder, &mut BytesMut, usize) -> usize;

fn in_place(decoder: &mut Decoder, buf: &mut BytesMut, _: usize) -> usize {
    let (packet, len) = decoder.decode_in_place(buf).expect("valid").expect("whole");
    let seen = touch_ref(&packet);
    drop(packet);
    buf.advance(len);
    seen
}

fn owned(decoder: &mut Decoder, buf: &mut BytesMut, _: usize) -> usize {
    touch(&decoder.decode(buf).expect("valid").expect("whole"))
}

fn split_borrowed(decoder: &mut Decoder, buf: &mut BytesMut, _: usize) -> usize {
    let frames = decoder.split_frames(buf).expect("valid");
    let mut offset = 0;
    let packet = decoder
        .decode_borrowed(&frames, &mut offset)
        .expect("valid")
        .expect("whole");
    touch_ref(&packet)
}

fn with_mqttrs(_: &mut Decoder, buf: &mut BytesMut, frame_len: usize) -> usize {
    let packet = mqttrs::decode_slice(buf).expect("valid").expect("whole");
    let seen = touch_mqttrs(&packet);
    drop(packet);
    buf.advance(frame_len);
    seen
}

fn with_mqttbytes(_: &mut Decoder, buf: &mut BytesMut, _: usize) -> usize {
    touch_mqttbytes(&mqttbytes::v4::read(buf, usize::MAX).expect("valid"))
}

/// The decode rows, ours first.
const DECODE_ROWS: [(&str, DecodeRow); 5] = [
    ("mqtt-wire in-place", in_place),
    ("mqtt-wire decode", owned),
    ("mqtt-wire split+borrowed", split_borrowed),
    ("mqttrs", with_mqttrs),
    ("mqttbytes", with_mqttbytes),
];

fn v4_decoder() -> Decoder {
    let mut decoder = Decoder::new();
    decoder.set_version(V4);
    decoder
}

fn decode_single(c: &mut Criterion) {
    for case in cases() {
        let mut group = c.benchmark_group(format!("decode/{}", case.name));
        group.throughput(Throughput::Bytes(case.frame.len() as u64));
        assert_eq!(
            decode_packet(case.frame.clone(), V4).as_ref(),
            Ok(&case.packet)
        );
        let expected = touch(&case.packet);
        for (name, row) in DECODE_ROWS {
            let mut decoder = v4_decoder();
            let mut buf = BytesMut::from(&case.frame[..]);
            assert_eq!(
                row(&mut decoder, &mut buf, case.frame.len()),
                expected,
                "{name}"
            );
            assert!(buf.is_empty(), "{name} takes the frame out");
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || BytesMut::from(&case.frame[..]),
                    |buf| row(&mut decoder, black_box(buf), case.frame.len()),
                    BatchSize::SmallInput,
                )
            });
        }
        let mut floor = vec![0u8; case.frame.len()];
        group.bench_function("memcpy", |b| {
            b.iter(|| floor.copy_from_slice(black_box(&case.frame[..])))
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

        let protocol = mqtt_protocol_packet(&case.frame);
        let mut out = Vec::with_capacity(len);
        mqtt::Encodable::encode(&protocol, &mut out).expect("encodes");
        assert_eq!(&out[..], &case.frame[..]);
        group.bench_function("mqtt-protocol", |b| {
            b.iter(|| {
                out.clear();
                mqtt::Encodable::encode(black_box(&protocol), &mut out).expect("encodes")
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
fn stream() -> (Vec<u8>, usize) {
    let frame = encode(&publish("stat/sonoff/POWE", PublishQos::AtMostOnce, 64));
    let stream = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * STREAM_FRAMES)
        .collect();
    (stream, frame.len())
}

/// Decodes every frame of `buf` with `row`; the split+borrowed row splits once for all.
fn drain_stream(name: &str, row: DecodeRow, decoder: &mut Decoder, buf: &mut BytesMut, len: usize) {
    let mut n = 0;
    if name == "mqtt-wire split+borrowed" {
        let frames = decoder.split_frames(buf).expect("valid");
        for packet in decoder.packets(&frames) {
            black_box(touch_ref(&packet.expect("valid")));
            n += 1;
        }
    } else {
        while !buf.is_empty() {
            black_box(row(decoder, buf, len));
            n += 1;
        }
    }
    assert_eq!(n, STREAM_FRAMES);
}

fn decode_stream(c: &mut Criterion) {
    let (stream, len) = stream();
    let mut group = c.benchmark_group("decode/stream_10k_publish_qos0");
    group.throughput(Throughput::Elements(STREAM_FRAMES as u64));
    for (name, row) in DECODE_ROWS {
        let mut decoder = v4_decoder();
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || BytesMut::from(&stream[..]),
                |buf| drain_stream(name, row, &mut decoder, buf, len),
                BatchSize::LargeInput,
            )
        });
    }
    let mut floor = vec![0u8; stream.len()];
    group.bench_function("memcpy", |b| {
        b.iter(|| floor.copy_from_slice(black_box(&stream[..])))
    });
    group.finish();
}

/// One contender of the interleaved comparison: runs one round of `ops` operations (its own
/// setup outside the timing) and returns the time the operations took.
struct Contender {
    name: &'static str,
    round: Box<dyn FnMut() -> Duration>,
}

fn contender(name: &'static str, round: impl FnMut() -> Duration + 'static) -> Contender {
    Contender {
        name,
        round: Box::new(round),
    }
}

/// `len` bytes of room starting `64 * (round % 64)` bytes into a fresh allocation. Inputs and
/// outputs placed this way meet at many relative offsets over the rounds, so no contender's best
/// round is one slowed by 4 KiB aliasing between its input and output buffers.
fn placed(len: usize, round: usize) -> BytesMut {
    let shift = 64 * (round % 64);
    let mut buf = BytesMut::zeroed(shift + len);
    buf.advance(shift);
    buf.clear();
    buf
}

/// Times `ops` repetitions of `op`.
fn timed(ops: usize, mut op: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..ops {
        op();
    }
    start.elapsed()
}

/// Runs every contender in turn, `rounds` times, keeps each one's fastest round (a round slowed
/// by another process does not count) and prints ns per operation with the ratios to mqttrs,
/// mqttbytes and the fastest peer crate of the case (> 1: the row is faster).
fn best_of(case: &str, rounds: usize, ops: usize, mut contenders: Vec<Contender>) {
    // `CODEC_ONLY=<text>`: only the cases whose name contains it.
    if std::env::var("CODEC_ONLY").is_ok_and(|only| !case.contains(&only)) {
        return;
    }
    let mut best = vec![Duration::MAX; contenders.len()];
    for _ in 0..rounds {
        for (slot, c) in best.iter_mut().zip(&mut contenders) {
            *slot = (*slot).min((c.round)());
        }
    }
    let per_op: Vec<f64> = best
        .iter()
        .map(|d| d.as_secs_f64() * 1e9 / ops as f64)
        .collect();
    let of = |name: &str| {
        contenders
            .iter()
            .position(|c| c.name == name)
            .map(|i| per_op[i])
    };
    let (mqttrs, mqttbytes) = (of("mqttrs"), of("mqttbytes"));
    // The fastest peer crate's row (neither ours nor the memcpy floor).
    let fastest_peer = contenders
        .iter()
        .zip(&per_op)
        .filter(|(c, _)| !c.name.starts_with("mqtt-wire") && c.name != "memcpy")
        .map(|(_, ns)| *ns)
        .reduce(f64::min);
    for (c, ns) in contenders.iter().zip(&per_op) {
        let ratio = |peer: Option<f64>| peer.map_or("-".into(), |p| format!("{:.2}x", p / ns));
        println!(
            "| {case} | {} | {ns:.1} | {} | {} | {} |",
            c.name,
            ratio(mqttrs),
            ratio(mqttbytes),
            ratio(fastest_peer)
        );
    }
}

/// The interleaved best-of-N comparison (`CODEC_INTERLEAVED=<rounds>`, optionally
/// `CODEC_ONLY=<case name part>`): the same work as the criterion rows, each contender run in
/// turn so that all see the same machine load.
fn interleaved(rounds: usize) {
    const OPS: usize = 10_000;
    println!("| case | row | best ns/op | vs mqttrs | vs mqttbytes | vs fastest peer |");
    println!("|---|---|---:|---:|---:|---:|");
    for case in cases() {
        let name = format!("decode/{}", case.name);
        let mut all: Vec<Contender> = DECODE_ROWS
            .into_iter()
            .map(|(row_name, row)| {
                let (frame, mut round) = (case.frame.clone(), 0);
                let mut decoder = v4_decoder();
                // Read buffers filled outside the timing, in batches small enough to stay in
                // the cache (as criterion's `iter_batched_ref` does).
                const BATCH: usize = 100;
                let mut bufs = Vec::with_capacity(BATCH);
                contender(row_name, move || {
                    round += 1;
                    let mut took = Duration::ZERO;
                    for batch in 0..OPS / BATCH {
                        bufs.extend((0..BATCH).map(|i| {
                            let mut buf = placed(frame.len(), round + batch + i);
                            buf.extend_from_slice(&frame);
                            buf
                        }));
                        let start = Instant::now();
                        for buf in &mut bufs {
                            black_box(row(&mut decoder, black_box(buf), frame.len()));
                        }
                        took += start.elapsed();
                        bufs.clear();
                    }
                    took
                })
            })
            .collect();
        let (f, mut round) = (case.frame.clone(), 0);
        all.push(contender("memcpy", move || {
            round += 1;
            let mut floor = placed(f.len(), round);
            floor.resize(f.len(), 0);
            timed(OPS, || floor.copy_from_slice(black_box(&f[..])))
        }));
        best_of(&name, rounds, OPS, all);
    }
    for case in cases() {
        let name = format!("encode/{}", case.name);
        let len = case.frame.len();
        let (packet, mut round) = (case.packet.clone(), 0);
        let ours = contender("mqtt-wire", move || {
            round += 1;
            let mut out = placed(len, round);
            timed(OPS, || {
                out.clear();
                black_box(&packet).encode(V4, &mut out).expect("encodes");
            })
        });
        let (frame, mut round) = (case.frame.clone(), 0);
        let mqttrs = contender("mqttrs", move || {
            round += 1;
            let mut slice = placed(len, round);
            slice.resize(len, 0);
            let theirs = mqttrs::decode_slice(&frame)
                .expect("decodes")
                .expect("whole");
            timed(OPS, || {
                mqttrs::encode_slice(black_box(&theirs), &mut slice).expect("encodes");
            })
        });
        let (rumqtt, mut round) = (mqttbytes_decode(&case.frame), 0);
        let mqttbytes = contender("mqttbytes", move || {
            round += 1;
            let mut buf = placed(len, round);
            timed(OPS, || {
                buf.clear();
                mqttbytes_encode(black_box(&rumqtt), &mut buf);
            })
        });
        let (frame, mut round) = (case.frame.clone(), 0);
        let memcpy = contender("memcpy", move || {
            round += 1;
            let mut floor = placed(len, round);
            floor.resize(len, 0);
            timed(OPS, || floor.copy_from_slice(black_box(&frame[..])))
        });
        let (protocol, mut round) = (mqtt_protocol_packet(&case.frame), 0);
        let mqtt_protocol = contender("mqtt-protocol", move || {
            round += 1;
            let mut out = placed(len, round).to_vec();
            timed(OPS, || {
                out.clear();
                mqtt::Encodable::encode(black_box(&protocol), &mut out).expect("encodes");
            })
        });
        let all = vec![ours, mqttrs, mqttbytes, mqtt_protocol, memcpy];
        best_of(&name, rounds, OPS, all);
    }
    let (stream, len) = stream();
    let mut all: Vec<Contender> = DECODE_ROWS
        .into_iter()
        .map(|(row_name, row)| {
            let s = stream.clone();
            let mut decoder = v4_decoder();
            contender(row_name, move || {
                let mut buf = BytesMut::from(&s[..]);
                let start = Instant::now();
                drain_stream(row_name, row, &mut decoder, &mut buf, len);
                start.elapsed()
            })
        })
        .collect();
    let mut floor = vec![0u8; stream.len()];
    all.push(contender("memcpy", move || {
        let start = Instant::now();
        floor.copy_from_slice(black_box(&stream[..]));
        start.elapsed()
    }));
    best_of(
        "decode/stream_10k_publish_qos0 (per frame)",
        rounds,
        STREAM_FRAMES,
        all,
    );
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

fn main() {
    if let Some(rounds) = std::env::var("CODEC_INTERLEAVED")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        interleaved(rounds);
        return;
    }
    codec();
    Criterion::default().configure_from_args().final_summary();
}
