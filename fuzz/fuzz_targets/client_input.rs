//! Feeds arbitrary bytes from a "server" to the sans-IO client, in every protocol version and
//! in both acknowledgement modes, split at arbitrary points, with requests and timeouts in
//! between: the client must never panic, and whatever it writes back must decode.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqtt_client::{Client, Event, Message, Options};
use mqtt_wire::{Decoder, ProtocolVersion, QoS, ReasonCode};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let version = match mode % 3 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    let options = Options::new("fuzz")
        .version(version)
        .manual_acks(mode & 4 != 0)
        .receive_maximum(3)
        .keep_alive(5);
    let mut client = Client::new(options);
    let start = Instant::now();
    if client.connect(start).is_err() {
        return;
    }
    let mut decoder = Decoder::new();
    let mut out = BytesMut::new();
    // The client's own output must always decode (as a server would read it).
    let mut check = |client: &mut Client| {
        while let Some(bytes) = client.poll_transmit() {
            out.extend_from_slice(&bytes);
            while let Ok(Some(_)) = decoder.decode(&mut out) {}
        }
    };
    check(&mut client);
    let mut input = BytesMut::new();
    for (step, chunk) in rest.chunks(7).enumerate() {
        let now = start + Duration::from_millis(step as u64 * 700);
        input.extend_from_slice(chunk);
        client.handle_input(&mut input, now);
        let _ = client.publish(Message::new("t", "x").qos(QoS::ExactlyOnce), now);
        while let Some(event) = client.poll_event() {
            if let Event::Message(publish) = event
                && let Some(id) = publish.qos.packet_id()
            {
                let _ = client.ack(id, ReasonCode::Success);
                let _ = client.complete(id, ReasonCode::Success);
            }
        }
        client.handle_timeout(now);
        check(&mut client);
    }
});
