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
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
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
        // The borrowing API on the frame the bench owns, as mqttrs borrows: no clone, no drop
        // of a frame reference (non-PUBLISH packets still take views of their fields).
        let mut decoder = Decoder::new();
        decoder.set_version(V4);
        group.bench_function("mqtt-wire-borrowed", |b| {
            b.iter(|| decoder.decode_borrowed(black_box(&case.frame), &mut 0))
        });
        // The same plus taking a reference to a shared frame and dropping the packet: one
        // atomic increment and one decrement.
        group.bench_function("mqtt-wire+clone+drop", |b| {
            b.iter(|| decode_packet(black_box(case.frame.clone()), V4))
        });
        group.bench_function("mqttrs", |b| {
            b.iter(|| mqttrs::decode_slice(black_box(&case.frame[..])))
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
    group.bench_function("mqtt-wire-packets", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&stream[..]),
            |buf| {
                let mut decoder = Decoder::new();
                decoder.set_version(V4);
                let frames = decoder.split_frames(buf).expect("valid stream");
                let mut n = 0;
                for packet in decoder.packets(&frames) {
                    black_box(packet.expect("valid stream"));
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

/// A copy of `bytes` placed as [`placed`] says (a different offset than the outputs').
fn placed_copy(bytes: &[u8], round: usize) -> Bytes {
    let mut buf = placed(bytes.len(), round * 5 + 3);
    buf.extend_from_slice(bytes);
    buf.freeze()
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
/// by another process does not count) and prints ns per operation with the ratios to mqttrs
/// and mqttbytes (> 1: the row is faster).
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
    for (c, ns) in contenders.iter().zip(&per_op) {
        let ratio = |peer: Option<f64>| peer.map_or("-".into(), |p| format!("{:.2}x", p / ns));
        println!(
            "| {case} | {} | {ns:.1} | {} | {} |",
            c.name,
            ratio(mqttrs),
            ratio(mqttbytes)
        );
    }
}

/// The interleaved best-of-N comparison (`CODEC_INTERLEAVED=<rounds>`, optionally
/// `CODEC_ONLY=<case name part>`): the same work as the criterion rows, each contender run in
/// turn so that all see the same machine load.
fn interleaved(rounds: usize) {
    const OPS: usize = 10_000;
    println!("| case | row | best ns/op | vs mqttrs | vs mqttbytes |");
    println!("|---|---|---:|---:|---:|");
    for case in cases() {
        let frame = case.frame.clone();
        let name = format!("decode/{}", case.name);
        let (f, mut round) = (frame.clone(), 0);
        let borrowed = contender("mqtt-wire-borrowed", move || {
            round += 1;
            let f = placed_copy(&f, round);
            let mut decoder = Decoder::new();
            decoder.set_version(V4);
            timed(OPS, || {
                black_box(decoder.decode_borrowed(black_box(&f), &mut 0)).ok();
            })
        });
        let (f, mut round) = (frame.clone(), 0);
        // Frame clones made and packets dropped outside the timing, in batches small enough
        // to stay in the cache (as criterion's `iter_batched` does).
        const BATCH: usize = 100;
        let mut frames = Vec::with_capacity(BATCH);
        let mut packets = Vec::with_capacity(BATCH);
        let owned = contender("mqtt-wire", move || {
            round += 1;
            let f = placed_copy(&f, round);
            let mut took = Duration::ZERO;
            for _ in 0..OPS / BATCH {
                frames.extend(std::iter::repeat_n(f.clone(), BATCH));
                let start = Instant::now();
                for frame in frames.drain(..) {
                    packets.push(decode_packet(black_box(frame), V4));
                }
                took += start.elapsed();
                packets.clear();
            }
            took
        });
        let (f, mut round) = (frame.clone(), 0);
        let clone_drop = contender("mqtt-wire+clone+drop", move || {
            round += 1;
            let f = placed_copy(&f, round);
            timed(OPS, || {
                black_box(decode_packet(black_box(f.clone()), V4).is_ok());
            })
        });
        let (f, mut round) = (frame.clone(), 0);
        let mqttrs = contender("mqttrs", move || {
            round += 1;
            let f = placed_copy(&f, round);
            timed(OPS, || {
                black_box(mqttrs::decode_slice(black_box(&f[..]))).ok();
            })
        });
        let (f, mut round) = (frame.clone(), 0);
        let mqttbytes = contender("mqttbytes", move || {
            round += 1;
            let f = placed_copy(&f, round);
            timed(OPS, || {
                black_box(mqttbytes_decode(black_box(&f)));
            })
        });
        let (f, mut round) = (frame.clone(), 0);
        let memcpy = contender("memcpy", move || {
            round += 1;
            let mut floor = placed(f.len(), round);
            floor.resize(f.len(), 0);
            timed(OPS, || floor.copy_from_slice(black_box(&f[..])))
        });
        let all = vec![borrowed, owned, clone_drop, mqttrs, mqttbytes, memcpy];
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
        best_of(&name, rounds, OPS, vec![ours, mqttrs, mqttbytes, memcpy]);
    }
    let frame = encode(&publish("stat/sonoff/POWE", PublishQos::AtMostOnce, 64));
    let stream: Bytes = frame
        .iter()
        .copied()
        .cycle()
        .take(frame.len() * STREAM_FRAMES)
        .collect();
    let s = stream.clone();
    let packets = contender("mqtt-wire-packets", move || {
        let mut buf = BytesMut::from(&s[..]);
        let start = Instant::now();
        let mut decoder = Decoder::new();
        decoder.set_version(V4);
        let frames = decoder.split_frames(&mut buf).expect("valid");
        for packet in decoder.packets(&frames) {
            black_box(packet.expect("valid"));
        }
        drop(frames);
        start.elapsed()
    });
    let s = stream.clone();
    let owned = contender("mqtt-wire", move || {
        let mut buf = BytesMut::from(&s[..]);
        let start = Instant::now();
        let mut decoder = Decoder::new();
        decoder.set_version(V4);
        while let Some(packet) = decoder.decode(&mut buf).expect("valid") {
            black_box(packet);
        }
        start.elapsed()
    });
    let (s, len) = (stream.clone(), frame.len());
    let mqttrs = contender("mqttrs", move || {
        let start = Instant::now();
        for chunk in black_box(&s[..]).chunks_exact(len) {
            black_box(mqttrs::decode_slice(chunk).expect("valid").expect("whole"));
        }
        start.elapsed()
    });
    let s = stream.clone();
    let mqttbytes = contender("mqttbytes", move || {
        let mut buf = BytesMut::from(&s[..]);
        let start = Instant::now();
        while !buf.is_empty() {
            black_box(mqttbytes::v4::read(&mut buf, usize::MAX).expect("valid"));
        }
        start.elapsed()
    });
    let s = stream;
    let mut floor = vec![0u8; s.len()];
    let memcpy = contender("memcpy", move || {
        let start = Instant::now();
        floor.copy_from_slice(black_box(&s[..]));
        start.elapsed()
    });
    best_of(
        "decode/stream_10k_publish_qos0 (per frame)",
        rounds,
        STREAM_FRAMES,
        vec![packets, owned, mqttrs, mqttbytes, memcpy],
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
