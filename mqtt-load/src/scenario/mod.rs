//! The scenarios: [`run`] picks one from the [`Options`] and returns its [`Report`].
//!
//! `fanin`, `fanout`, `qos1` and `latency` are one publish/subscribe engine ([`pubsub`]) with
//! different topics, counts, QoS and pacing; `idle` and `connrate` only open connections.

mod connrate;
mod idle;
mod publisher;
mod pubsub;
mod subscriber;

use std::net::{SocketAddr, ToSocketAddrs as _};

use crate::client::ClientConfig;
use crate::error::LoadError;
use crate::options::{Options, Scenario};
use crate::report::Report;

/// Read buffer step for connections that receive a stream of messages.
const STREAM_READ_CHUNK: usize = 256 * 1024;
/// Read buffer step for connections that only see handshakes.
const HANDSHAKE_READ_CHUNK: usize = 256;

/// Runs the scenario named in `options` and reports its figures.
///
/// # Errors
/// The options are inconsistent, or the broker cannot be reached at all. Failures of single
/// connections during a run are counted in the report instead.
pub async fn run(options: &Options) -> Result<Report, LoadError> {
    let addr = resolve(&options.host, options.port)?;
    let read_chunk = match options.scenario {
        Scenario::Idle | Scenario::Connrate => HANDSHAKE_READ_CHUNK,
        _ => STREAM_READ_CHUNK,
    };
    let config = ClientConfig {
        addr,
        version: options.version(),
        keep_alive: options.keep_alive(),
        read_chunk,
        source: None,
    };
    match options.scenario {
        Scenario::Fanin | Scenario::Fanout | Scenario::Qos1 | Scenario::Latency => {
            let sub_host = options.sub_host.as_deref().unwrap_or(&options.host);
            let sub_config = ClientConfig {
                addr: resolve(sub_host, options.sub_port.unwrap_or(options.port))?,
                ..config
            };
            pubsub::run(options, &config, &sub_config).await
        }
        Scenario::Idle => idle::run(options, &config).await,
        Scenario::Connrate => connrate::run(options, &config).await,
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, LoadError> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| LoadError::Options(format!("{host} has no address")))
}
