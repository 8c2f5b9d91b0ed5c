//! The clients of a mode: [`Clients`] gives client `slot` its identity (index, client
//! identifier, user name, topic, payload text, from the templates) and connects it at its
//! point of the ramp, `slot × --interval` after the start, with at most `--concurrency`
//! handshakes in progress.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::client::{Client, ClientConfig, SessionOptions};
use crate::error::LoadError;
use crate::options::Options;
use crate::template::{Rng, Template, Vars};

/// Who one client of a mode is.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Its slot in the ramp (0-based in this process).
    pub slot: u32,
    /// `%i`: `--start-index` plus the slot.
    pub index: u64,
    /// Its client identifier.
    pub client_id: String,
    /// Where and how it connects (with its own user name).
    pub config: ClientConfig,
    /// Its topic (`pub`) or filter (`sub`).
    pub topic: String,
    /// Its payload text (`pub` with `--payload`).
    pub payload: Option<String>,
}

/// The templates and the ramp of a mode's clients.
#[derive(Debug)]
pub struct Clients {
    client_id: Template,
    username: Option<Template>,
    topic: Template,
    payload: Option<Template>,
    start_index: u64,
    seed: u64,
    start: Instant,
    interval: Duration,
    handshakes: Semaphore,
}

impl Clients {
    /// The clients `options` describe, ramping up from `start`.
    ///
    /// # Errors
    /// A template does not parse.
    pub fn new(options: &Options, start: Instant) -> Result<Arc<Self>, LoadError> {
        Ok(Arc::new(Self {
            client_id: Template::parse(&options.client_id_template())?,
            username: options
                .username
                .as_deref()
                .map(Template::parse)
                .transpose()?,
            topic: Template::parse(&options.topic_template())?,
            payload: options
                .payload
                .as_deref()
                .map(Template::parse)
                .transpose()?,
            start_index: options.start_index,
            seed: Rng::from_clock().next(),
            start,
            interval: options.ramp_interval(),
            handshakes: Semaphore::new(options.concurrency as usize),
        }))
    }

    /// The identity of client `slot`, connecting with `configs[slot % len]`.
    ///
    /// # Errors
    /// `configs` is empty.
    pub fn identity(&self, slot: u32, configs: &[ClientConfig]) -> Result<Identity, LoadError> {
        let at = slot as usize % configs.len().max(1);
        let mut config = configs
            .get(at)
            .cloned()
            .ok_or_else(|| LoadError::Options("no broker address".into()))?;
        let mut rng = Rng::new(self.seed ^ u64::from(slot).wrapping_mul(0x9e37_79b9));
        let index = self.start_index + u64::from(slot);
        let mut vars = Vars {
            index,
            client_id: "",
            username: "",
        };
        let username = self
            .username
            .as_ref()
            .map(|template| template.expand(&vars, &mut rng));
        vars.username = username.as_deref().unwrap_or("");
        let client_id = self.client_id.expand(&vars, &mut rng);
        vars.client_id = &client_id;
        let topic = self.topic.expand(&vars, &mut rng);
        let payload = self
            .payload
            .as_ref()
            .map(|template| template.expand(&vars, &mut rng));
        if username.is_some() {
            config.session = Arc::new(SessionOptions {
                username,
                ..SessionOptions::clone(&config.session)
            });
        }
        Ok(Identity {
            slot,
            index,
            client_id,
            config,
            topic,
            payload,
        })
    }

    /// When client `slot` connects.
    #[must_use]
    pub fn due(&self, slot: u32) -> Instant {
        self.start + self.interval * slot
    }

    /// Waits for the client's point of the ramp and a free handshake, then connects it;
    /// returns the client (or why it failed) and how long the handshake took.
    pub async fn connect(&self, identity: &Identity) -> (Result<Client, LoadError>, Duration) {
        tokio::time::sleep_until(self.due(identity.slot)).await;
        let Ok(_permit) = self.handshakes.acquire().await else {
            return (Err(LoadError::Closed), Duration::ZERO);
        };
        let began = Instant::now();
        let connected = Client::connect(&identity.config, &identity.client_id).await;
        (connected, began.elapsed())
    }
}
