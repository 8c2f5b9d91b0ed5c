//! The tokio adapter that turns `mqtt-broker-core` into a running server.
#![forbid(unsafe_code)]
