//! The tokio adapter that turns `mqtt-broker-core` into a running server: configuration
//! (native TOML or mosquitto.conf), mosquitto-compatible password and ACL files, and the
//! listeners (TCP, TLS, WebSocket) that move bytes between sockets and the broker.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
mod server;

pub use server::{SHUTDOWN_LIMIT, Server, ServerBuilder, ServerError, ServerHandle};
