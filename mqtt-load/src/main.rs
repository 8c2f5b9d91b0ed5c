//! `mqtt-load`: a load generator for MQTT brokers.

fn main() {}
