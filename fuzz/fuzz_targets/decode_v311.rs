//! Decodes arbitrary bytes as a stream of packets on a V3_1_1 connection, round-tripping each.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "decode_common.rs"]
mod decode_common;

fuzz_target!(|data: &[u8]| decode_common::run(mqtt_wire::ProtocolVersion::V3_1_1, data));
