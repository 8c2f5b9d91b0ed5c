//! The tokio adapter that turns `mqtt-broker-core` into a running server: configuration
//! (native TOML or mosquitto.conf), mosquitto-compatible password and ACL files, and the
//! listeners (TCP, TLS, WebSocket) that move bytes between sockets and the broker.
//!
//! One broker task owns the sans-IO [`mqtt_broker_core::Broker`]. Plain TCP connections are
//! served by a few reactor tasks (each owns many sockets), TLS and WebSocket connections by a
//! task each; both paths follow one flow-control design (the same input credit, outbox and
//! closing state machine, with only their I/O apart). See the [`Server`] docs for the data flow
//! and back-pressure rules.
//!
//! ```
//! use mqtt_tokio::{Server, config::parse_toml};
//! use mqtt_wire::QoS;
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! // One plain listener on a free loopback port that admits anonymous clients.
//! let config = parse_toml("[[listener]]\nport = 0\nallow_anonymous = true\n")?;
//! let server = Server::builder(config).start().await?;
//! println!("listening on {}", server.local_addrs()[0]);
//! // Publish from inside the process, retained for clients that subscribe later.
//! server.handle().publish("status/server", "up", QoS::AtLeastOnce, true).await?;
//! server.shutdown().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
mod server;

pub use auth::hooks::BRIDGE_LISTENER;
pub use server::{
    ClusterOutput, ClusterOutputs, DEFAULT_EVENT_CAPACITY, Delivery, EventRecvError, Events,
    FORWARD_HIGH, LocalClient, LocalConnectOptions, LocalWill, MessageProperties, MosquittoImport,
    PublishRequest, SHUTDOWN_LIMIT, Server, ServerBuilder, ServerError, ServerHandle,
    SessionSummary, SubscribeRequest, check_config, describe_import, import_mosquitto_db,
};

/// The broker core, re-exported for its hook traits ([`mqtt_broker_core::hooks::Authenticator`],
/// [`mqtt_broker_core::hooks::Authorizer`], [`mqtt_broker_core::hooks::EnhancedAuthenticator`]),
/// their types, [`mqtt_broker_core::Config`], [`mqtt_broker_core::Stats`] and
/// [`mqtt_broker_core::Event`].
pub use mqtt_broker_core;
/// The codec, re-exported for [`mqtt_wire::QoS`] and the reason codes hooks answer with.
pub use mqtt_wire;

/// The examples of `README.md`, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
