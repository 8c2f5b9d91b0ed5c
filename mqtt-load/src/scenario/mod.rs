//! The scenarios and modes: [`run`] picks one from the [`Options`] and returns its [`Report`].
//!
//! `fanin`, `fanout`, `qos1` and `latency` are one publish/subscribe engine ([`pubsub`]) with
//! different topics, counts, QoS and pacing; `idle` and `connrate` only open connections. The
//! modes `conn`, `pub` and `sub` ramp up clients described by templates ([`ramp`]); `pub`
//! and `sub` share the publisher and subscriber of the engine.

mod conn;
mod connrate;
mod idle;
mod publish;
mod publisher;
mod pubsub;
mod ramp;
mod subscribe;
mod subscriber;

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;

use mqtt_wire::Bytes;

use crate::client::{ClientConfig, SessionOptions};
use crate::error::LoadError;
use crate::options::{Options, Scenario};
use crate::report::Report;
use crate::transport::Transport;

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
    options.validate()?;
    let target = options.target()?;
    let read_chunk = match options.scenario {
        Scenario::Idle | Scenario::Connrate | Scenario::Conn => HANDSHAKE_READ_CHUNK,
        _ => STREAM_READ_CHUNK,
    };
    let tls = target
        .tls
        .then(|| options.tls_options().unwrap_or_default());
    let session = Arc::new(SessionOptions {
        clean_start: !options.no_clean,
        session_expiry: options.session_expiry,
        username: options.username.clone(),
        password: options.password.clone().map(Bytes::from),
    });
    let configs = |host: &str, ports: &[u16]| -> Result<Vec<ClientConfig>, LoadError> {
        if ports.is_empty() {
            return Err(LoadError::Options("no port given".into()));
        }
        let transport = Arc::new(Transport::new(
            host,
            tls.as_ref(),
            target.ws_path.as_deref(),
        )?);
        ports
            .iter()
            .map(|port| {
                Ok(ClientConfig {
                    addr: resolve(host, *port)?,
                    host: host.into(),
                    transport: transport.clone(),
                    session: session.clone(),
                    version: options.version(),
                    keep_alive: options.keep_alive(),
                    read_chunk,
                    source: None,
                })
            })
            .collect()
    };
    let publishers = configs(&target.host, &target.ports)?;
    match options.scenario {
        Scenario::Fanin | Scenario::Fanout | Scenario::Qos1 | Scenario::Latency => {
            let sub_host = options.sub_host.as_deref().unwrap_or(&target.host);
            let sub_ports = match options.sub_port.is_empty() {
                true => &target.ports,
                false => &options.sub_port,
            };
            let subscribers = configs(sub_host, sub_ports)?;
            pubsub::run(options, &publishers, &subscribers).await
        }
        Scenario::Idle => idle::run(options, &publishers[0]).await,
        Scenario::Connrate => connrate::run(options, &publishers[0]).await,
        Scenario::Conn => conn::run(options, &publishers).await,
        Scenario::Pub => publish::run(options, &publishers).await,
        Scenario::Sub => subscribe::run(options, &publishers).await,
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, LoadError> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| LoadError::Options(format!("{host} has no address")))
}
