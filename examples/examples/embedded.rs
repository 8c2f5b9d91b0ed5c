//! Embedding the broker in an application: start it in-process with a custom authenticator,
//! publish application state into it through a [`mqtt_tokio::ServerHandle`], and take commands
//! through an in-process client ([`mqtt_tokio::LocalClient`], no socket) that subscribes to
//! `demo/cmnd/#` and answers each command by publishing the new state to `demo/stat/<name>`.
//!
//! Run it, watch with `mosquitto_sub -p 1884 -u demo -P demo -t 'demo/#' -v`, and send a
//! command with `mosquitto_pub -p 1884 -u demo -P demo -t demo/cmnd/lamp -m on`:
//!
//! ```text
//! cargo run -p mqtt-broker --example embedded
//! ```

use std::time::Duration;

use mqtt_tokio::config::parse_toml;
use mqtt_tokio::mqtt_broker_core::hooks::{AuthDecision, Authenticator, ConnectCredentials};
use mqtt_tokio::mqtt_wire::{QoS, ReasonCode};
use mqtt_tokio::{LocalConnectOptions, Server};

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

    // The application's own client: same authenticator as everyone (it logs in as `demo`).
    let mut commands = server
        .handle()
        .connect(
            "app",
            LocalConnectOptions::new().credentials("demo", "demo"),
        )
        .await?;
    commands.subscribe("demo/cmnd/#", QoS::AtLeastOnce).await?;
    tokio::spawn(async move {
        while let Some(command) = commands.recv().await {
            let Some(name) = command.topic.as_str().strip_prefix("demo/cmnd/") else {
                continue;
            };
            tracing::info!(%name, payload = ?command.payload, "command");
            let state = format!("demo/stat/{name}");
            // The payload is shared, not copied, on its way to every subscriber.
            let published = commands
                .publish(&state, command.payload, QoS::AtLeastOnce, true)
                .await;
            if let Err(e) = published {
                tracing::warn!(%e, "state not published");
            }
        }
    });

    // Until Ctrl-C / SIGTERM.
    server.run_until_signalled().await?;
    Ok(())
}
