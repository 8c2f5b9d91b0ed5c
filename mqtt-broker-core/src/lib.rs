//! A sans-IO MQTT broker: bytes and time in; bytes, closes and deadlines out.
#![forbid(unsafe_code)]
