//! Reads arbitrary bytes as mosquitto's persistence file, raw and behind a valid header (so the
//! chunk parser is reached): the importer must never panic, and what it accepts must be records
//! whose counts add up.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mqtt_store::read_mosquitto_db;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let _ = read_mosquitto_db(data, now, 1_800_000_000);
    let mut file = b"\x00\xB5\x00mosquitto db\x00\x00\x00\x00\x00\x00\x00\x06".to_vec();
    file.extend_from_slice(data);
    if let Ok(import) = read_mosquitto_db(&file, now, 1_800_000_000) {
        let counted = import.retained + import.sessions + import.queued + import.incoming_qos2;
        assert_eq!(counted, import.records.len());
    }
});
