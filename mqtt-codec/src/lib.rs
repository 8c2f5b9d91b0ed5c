//! Zero-copy MQTT 3.1, 3.1.1 and 5.0 packet encoder and decoder.
#![forbid(unsafe_code)]
