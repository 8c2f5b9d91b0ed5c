//! Embedding the broker in an application: start it in-process with a custom authenticator,
//! and publish application state into it through a [`mqtt_tokio::ServerHandle`].
//!
//! Run it, then watch with `mosquitto_sub -p 1884 -u demo -P demo -t 'demo/#' -v`:
//!
//! ```text
//! cargo run -p mqtt-broker --example embedded
//! ```

use std::time::Duration;

use mqtt_tokio::Server;
use mqtt_tokio::config::parse_toml;
use mqtt_tokio::mqtt_broker_core::{AuthDecision, Authenticator, ConnectCredentials};
use mqtt_tokio::mqtt_wire::{QoS, ReasonCode};

/// Admits one user, `demo` with password `demo`; everyone else is refused.
struct DemoAuthenticator;

impl Authenticator for DemoAuthenticator {
    fn authenticate(&mut self, credentials: &ConnectCredentials<'_>) -> AuthDecision {
        match (credentials.username, credentials.password) {
            (Some("demo"), Some(b"demo")) => AuthDecision::Accept,
            (None, _) => AuthDecision::Reject(ReasonCode::NotAuthorized),
            _ => AuthDecision::Reject(ReasonCode::BadUserNameOrPassword),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = parse_toml("[[listener]]\nport = 1884\n")?;
    let server = Server::builder(config)
        .authenticator(Box::new(DemoAuthenticator))
        .start()
        .await?;

    // The application publishes its state; late subscribers get the last value (retained).
    let handle = server.handle();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        for count in 0u64.. {
            ticks.tick().await;
            let state = format!("{{\"uptime_s\":{count}}}");
            if handle
                .publish("demo/state", state, QoS::AtLeastOnce, true)
                .await
                .is_err()
            {
                return; // the server stopped
            }
        }
    });

    // Until Ctrl-C / SIGTERM.
    server.run_until_signalled().await?;
    Ok(())
}
