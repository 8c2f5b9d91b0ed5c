//! Bridges: for each configured remote broker, a task that joins two MQTT sessions.
//!
//! - **Remote side**: an `mqtt_client::Client` (sans-IO, manual acknowledgements) on a TCP or
//!   TLS stream to the remote broker, with the bridge's remote client identifier, clean
//!   session setting, keep alive, protocol version and bridge bit (`try_private`).
//! - **Local side**: an in-process MQTT 5.0 connection to this broker's core
//!   ([`LocalLink`](super::local_link::LocalLink)), a client like any other (authenticated,
//!   authorized by the ACL as `local_username`, or trusted on [`BRIDGE_LISTENER`] without one),
//!   with a persistent session unless `local_cleansession`: what is to go out while the
//!   remote broker cannot be reached waits there (in the store with persistence), bounded by
//!   the queue limits.
//! - **Between them**, the [`relay::Relay`] passes packets on with their packet identifiers
//!   mirrored and each acknowledgement given only once the other side gave its own.
//!
//! The local connection is open only while the remote one is: the local session then holds
//! everything unfinished and sends it again on the next connection, in order, which is what
//! keeps QoS 1 at least once and QoS 2 exactly once across drops and restarts of either side.
//! Topic lines decide the subscriptions: `out` lines subscribe here (no-local, so what the
//! bridge brought in does not go back; retain-as-published, so retained messages stay
//! retained), `in` lines on the remote broker (no-local there too with 5.0; the bridge bit
//! asks a 3.x mosquitto or this broker for the same).

mod relay;
mod remote;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_broker_core::ConnectionInfo;
use mqtt_client::{Backoff, Client, Disconnection, Event, Options};
use mqtt_wire::{
    Connect, LastWill, MqttStr, Packet, PacketId, Properties, ProtocolVersion, QoS, ReasonCode,
    RetainHandling, Subscribe, SubscriptionOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use self::relay::Relay;
use self::remote::{Connector, Stream};
use super::bridge_status::BridgeStatus;
use super::local_link::LocalLink;
use super::{ServerError, ServerHandle};
use crate::auth::hooks::BRIDGE_LISTENER;
use crate::config::{BridgeConfig, BridgeProtocol, Direction, StartType};

/// How long a connection attempt (TCP, TLS and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the bridges need to know of this broker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalSide {
    /// The broker's Receive Maximum (how many QoS 1/2 messages a client may have
    /// unacknowledged towards it).
    pub(crate) receive_maximum: u16,
    /// Messages in flight towards a 3.x remote broker (it announces no Receive Maximum).
    pub(crate) max_inflight: u16,
    /// The `$SYS` interval (none: no `$SYS` topics).
    pub(crate) sys_interval: Option<Duration>,
    /// The largest packet this broker accepts: also the largest the bridge takes from the
    /// remote broker.
    pub(crate) max_packet_size: u32,
}

/// The bridges' tasks and their shared states.
pub(crate) type Started = (Vec<JoinHandle<()>>, Vec<Arc<BridgeStatus>>);

/// Starts one task per bridge.
///
/// # Errors
/// A bridge whose TLS files cannot be used.
pub(crate) fn start(
    bridges: &[BridgeConfig],
    handle: &ServerHandle,
    local: LocalSide,
) -> Result<Started, ServerError> {
    let mut tasks = Vec::new();
    let mut statuses = Vec::new();
    for (index, bridge) in bridges.iter().enumerate() {
        let connector = Connector::new(bridge)
            .map_err(|why| ServerError::Tls(format!("bridge {}: {why}", bridge.name)))?;
        let status = Arc::new(BridgeStatus::new(&bridge.name));
        statuses.push(status.clone());
        let task = Task {
            bridge: bridge.clone(),
            connector,
            handle: handle.clone(),
            status,
            local,
            seed: index as u64 + 1,
        };
        tasks.push(tokio::spawn(task.run()));
    }
    Ok((tasks, statuses))
}

/// How one connection of a bridge ended.
enum Ended {
    /// It was up, then ended.
    Dropped,
    /// It never came up.
    Failed,
    /// The remote broker refused the protocol version (or the bridge bit): try again at once
    /// with the next lower offer.
    Version,
}

struct Task {
    bridge: BridgeConfig,
    connector: Connector,
    handle: ServerHandle,
    status: Arc<BridgeStatus>,
    local: LocalSide,
    seed: u64,
}

impl Task {
    async fn run(self) {
        let bridge = &self.bridge;
        let Ok(addresses) = bridge.remote_addresses() else {
            return; // refused by the configuration check
        };
        let mut backoff = match bridge.restart_timeout {
            None => Backoff::jittered(Duration::from_secs(5), Duration::from_secs(30), self.seed),
            Some((delay, None)) => Backoff::constant(Duration::from_secs(delay)),
            Some((base, Some(cap))) => Backoff::jittered(
                Duration::from_secs(base),
                Duration::from_secs(cap),
                self.seed,
            ),
        };
        let mut version = match bridge.protocol_version {
            BridgeProtocol::Mqttv31 => ProtocolVersion::V3_1,
            BridgeProtocol::Mqttv311 => ProtocolVersion::V3_1_1,
            BridgeProtocol::Mqttv50 => ProtocolVersion::V5,
        };
        let mut try_private = bridge.try_private;
        if let Some(interval) = self.local.sys_interval {
            tokio::spawn(self.reporter().run(interval));
        }
        self.notify_locally(false).await;
        // The local session exists from the start, so what is to go out queues while the
        // remote broker is not reached yet.
        if !bridge.local_clean()
            && let Err(why) = self.prime_local_session().await
        {
            warn!(bridge = %bridge.name, "cannot open the bridge's local session: {why}");
        }
        let mut index = 0;
        loop {
            if bridge.start_type == StartType::Lazy {
                self.wait_for_threshold().await;
            }
            let (host, port) = &addresses[index % addresses.len()];
            let ended = self.connection(host, *port, version, try_private).await;
            self.status.connected.store(false, Ordering::Relaxed);
            match ended {
                Ended::Version => {
                    if version == ProtocolVersion::V5 {
                        warn!(bridge = %bridge.name, "the remote broker does not speak MQTT 5.0: trying 3.1.1");
                        version = ProtocolVersion::V3_1_1;
                    } else {
                        warn!(bridge = %bridge.name, "the remote broker refused the bridge bit: connecting without it");
                        try_private = false;
                    }
                    continue;
                }
                Ended::Dropped => {
                    backoff.reset();
                    self.notify_locally(false).await;
                    index = if bridge.round_robin { index + 1 } else { 0 };
                }
                Ended::Failed => index += 1,
            }
            if bridge.start_type == StartType::Once {
                info!(bridge = %bridge.name, "bridge with start_type once has ended");
                return;
            }
            let delay = backoff.next_delay();
            debug!(bridge = %bridge.name, ?delay, "connecting again after a pause");
            tokio::time::sleep(delay).await;
        }
    }

    /// One connection to `host:port`, from the attempt to its end.
    async fn connection(
        &self,
        host: &str,
        port: u16,
        version: ProtocolVersion,
        try_private: bool,
    ) -> Ended {
        let bridge = &self.bridge;
        let name = &bridge.name;
        let mut stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect(host, port)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(why)) => {
                    warn!(bridge = %name, "cannot connect to {host}:{port}: {why}");
                    return Ended::Failed;
                }
                Err(_) => {
                    warn!(bridge = %name, "connecting to {host}:{port} timed out");
                    return Ended::Failed;
                }
            };
        let mut client = Client::new(self.client_options(version, try_private));
        let mut input = BytesMut::with_capacity(16 * 1024);
        let start = Instant::now();
        if client.connect(start).is_err() {
            return Ended::Failed;
        }
        // CONNECT, CONNACK, then the remote subscriptions, before anything is relayed.
        let mut early = Vec::new();
        let session_present = loop {
            if flush(&mut client, &mut stream).await.is_err() {
                return Ended::Failed;
            }
            match client.poll_event() {
                Some(Event::Connected {
                    session_present, ..
                }) => break session_present,
                Some(Event::Refused(code)) => {
                    warn!(bridge = %name, "{host}:{port} refused the connection: {code:?}");
                    let version_refused = matches!(code, ReasonCode::UnsupportedProtocolVersion);
                    return if version_refused && (version == ProtocolVersion::V5 || try_private) {
                        Ended::Version
                    } else {
                        Ended::Failed
                    };
                }
                Some(Event::Disconnected(why)) => {
                    warn!(bridge = %name, "{host}:{port} ended the connection attempt: {why:?}");
                    return Ended::Failed;
                }
                Some(_) => continue,
                None => {}
            }
            let deadline = tokio::time::Instant::from_std(start + CONNECT_TIMEOUT);
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut input)).await {
                Ok(Ok(n)) if n > 0 => client.handle_input(&mut input, Instant::now()),
                _ => {
                    warn!(bridge = %name, "{host}:{port} sent no CONNACK");
                    return Ended::Failed;
                }
            }
        };
        info!(bridge = %name, "connected to {host}:{port} (session present {session_present})");
        let now = Instant::now();
        let answered = match self.subscribe_remote(&mut client, session_present, now) {
            Some(requests) => {
                self.await_remote_answers(
                    &mut client,
                    &mut stream,
                    &mut input,
                    requests,
                    &mut early,
                )
                .await
            }
            None => Err(String::from("the subscriptions could not be sent")),
        };
        if let Err(why) = answered {
            warn!(bridge = %name, "{host}:{port}: connection ended while setting up: {why}");
            return Ended::Failed;
        }
        // The local side: the bridge's session here, resumed.
        let limits = client.server_limits();
        let window = if version == ProtocolVersion::V5 {
            limits.receive_maximum
        } else {
            self.local.max_inflight
        };
        let (mut link, resent) = match self.connect_local(window).await {
            Ok(opened) => opened,
            Err(why) => {
                warn!(bridge = %name, "the bridge's local connection failed: {why}");
                client.disconnect(ReasonCode::UnspecifiedError);
                let _ = flush(&mut client, &mut stream).await;
                return Ended::Failed;
            }
        };
        self.status.connected.store(true, Ordering::Relaxed);
        self.status.connections.fetch_add(1, Ordering::Relaxed);
        self.notify(&mut client, true).await;
        let mut relay = Relay::new(
            bridge.topics.clone(),
            bridge.bridge_outgoing_retain,
            self.local.receive_maximum,
            bridge.bridge_max_packet_size,
        );
        let why = self
            .relay(
                &mut client,
                &mut stream,
                &mut input,
                &mut link,
                &mut relay,
                (early, resent),
            )
            .await;
        info!(bridge = %name, "connection to {host}:{port} ended: {why}");
        link.close().await;
        let _ = stream.shutdown().await;
        Ended::Dropped
    }

    /// The options of the remote client.
    fn client_options(&self, version: ProtocolVersion, try_private: bool) -> Options {
        let bridge = &self.bridge;
        let client_id = mqtt_str(&bridge.remote_client_id());
        let mut options = Options::new(client_id)
            .version(version)
            .bridge(try_private)
            .clean_start(bridge.cleansession)
            .keep_alive(bridge.keepalive_interval)
            .receive_maximum(self.local.receive_maximum)
            .maximum_packet_size(self.local.max_packet_size)
            .manual_acks(true)
            .connect_timeout(CONNECT_TIMEOUT);
        if !bridge.cleansession {
            // The remote broker keeps the session as long as it may (5.0).
            options = options.session_expiry_interval(u32::MAX);
        }
        if let Some(user) = &bridge.remote_username {
            options = match &bridge.remote_password {
                Some(password) => options.credentials(mqtt_str(user), password.clone()),
                None => options.username(mqtt_str(user)),
            };
        }
        if bridge.notifications && !bridge.notifications_local_only {
            options = options.will(LastWill {
                topic: mqtt_str(&bridge.notification_topic()),
                payload: bytes::Bytes::from_static(b"0"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: Properties::default(),
            });
        }
        options
    }

    /// Subscribes on the remote broker to the `in` lines (after unsubscribing from the
    /// `out`-only ones of an older configuration, with a kept session).
    /// Returns how many answers to wait for; `None` when a request could not be sent.
    fn subscribe_remote(
        &self,
        client: &mut Client,
        session_present: bool,
        now: Instant,
    ) -> Option<usize> {
        let bridge = &self.bridge;
        let mut requests = 0;
        if bridge.bridge_attempt_unsubscribe && session_present {
            let stale: Vec<MqttStr> = (bridge.topics.iter())
                .filter(|t| t.direction == Direction::Out)
                .map(|t| mqtt_str(&t.remote_filter()))
                .collect();
            if !stale.is_empty() {
                client.unsubscribe(stale, now).ok()?;
                requests += 1;
            }
        }
        let filters: Vec<(MqttStr, SubscriptionOptions)> = (bridge.topics.iter())
            .filter(|t| t.direction.inward())
            .map(|t| {
                let options = SubscriptionOptions {
                    qos: qos(t.qos),
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendAtSubscribe,
                };
                (mqtt_str(&t.remote_filter()), options)
            })
            .collect();
        if !filters.is_empty() {
            client.subscribe(filters, Properties::default(), now).ok()?;
            requests += 1;
        }
        Some(requests)
    }

    /// Waits for the answers to the remote UNSUBSCRIBE / SUBSCRIBE; messages arriving before
    /// them are kept in `early` for the relay.
    async fn await_remote_answers(
        &self,
        client: &mut Client,
        stream: &mut Stream,
        input: &mut BytesMut,
        mut waiting: usize,
        early: &mut Vec<Event>,
    ) -> Result<(), String> {
        let bridge = &self.bridge;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            flush(client, stream)
                .await
                .map_err(|why| format!("write failed: {why}"))?;
            while let Some(event) = client.poll_event() {
                match event {
                    Event::Subscribed(ack) => {
                        for (code, topic) in ack
                            .reason_codes
                            .iter()
                            .zip(bridge.topics.iter().filter(|t| t.direction.inward()))
                        {
                            if code.is_error() {
                                warn!(bridge = %bridge.name, filter = %topic.remote_filter(), "the remote broker refused the subscription: {code:?}");
                            }
                        }
                        waiting = waiting.saturating_sub(1);
                    }
                    Event::Unsubscribed(_) => waiting = waiting.saturating_sub(1),
                    Event::Disconnected(why) => return Err(describe(&why)),
                    other => early.push(other),
                }
            }
            if waiting == 0 {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, stream.read_buf(input)).await {
                Ok(Ok(n)) if n > 0 => client.handle_input(input, Instant::now()),
                Ok(Ok(_)) => return Err(String::from("closed by the remote broker")),
                Ok(Err(why)) => return Err(format!("read failed: {why}")),
                Err(_) => return Err(String::from("no answer to the subscriptions")),
            }
        }
    }

    /// Connects the bridge's local session and subscribes it to the `out` lines; returns the
    /// link and what came after the CONNACK (a resumed session's messages, sent again).
    async fn connect_local(&self, window: u16) -> Result<(LocalLink, Vec<Packet>), String> {
        let bridge = &self.bridge;
        let mut info = ConnectionInfo::default();
        if bridge.local_username.is_none() {
            info.listener = BRIDGE_LISTENER;
        }
        let mut link = self
            .handle
            .open_link(info)
            .await
            .map_err(|e| e.to_string())?;
        let clean = bridge.local_clean();
        let mut properties = Properties::default();
        properties.receive_maximum = Some(window.max(1));
        if !clean {
            properties.session_expiry_interval = Some(u32::MAX);
        }
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            bridge: false,
            clean_start: clean,
            keep_alive: 0,
            client_id: mqtt_str(&bridge.local_client_id()),
            will: None,
            username: bridge.local_username.as_deref().map(mqtt_str),
            password: bridge.local_password.clone().map(bytes::Bytes::from),
            properties,
        };
        link.send(&Packet::Connect(Box::new(connect)))
            .await
            .map_err(|e| e.to_string())?;
        let after = loop {
            let packets = link.recv().await;
            if packets.is_empty() {
                return Err(String::from("closed by the broker"));
            }
            let mut packets = packets.into_iter();
            match packets.next() {
                Some(Packet::ConnAck(ack)) if !ack.reason_code.is_error() => {
                    break packets.collect::<Vec<_>>();
                }
                Some(Packet::ConnAck(ack)) => {
                    return Err(format!("refused: {:?}", ack.reason_code));
                }
                _ => {}
            }
        };
        let filters: Vec<(MqttStr, SubscriptionOptions)> = (bridge.topics.iter())
            .filter(|t| t.direction.out())
            .map(|t| {
                let options = SubscriptionOptions {
                    qos: qos(t.qos),
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                };
                (mqtt_str(&t.local_filter()), options)
            })
            .collect();
        if !filters.is_empty() {
            let subscribe = Subscribe {
                packet_id: PacketId::MIN,
                filters,
                properties: Properties::default(),
            };
            link.send(&Packet::Subscribe(subscribe))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok((link, after))
    }

    /// Opens the local session once at start and leaves it, so it exists (and queues) before
    /// the remote broker is first reached.
    async fn prime_local_session(&self) -> Result<(), String> {
        let (mut link, _) = self.connect_local(self.local.max_inflight).await?;
        // Wait for the SUBACK; deliveries of a resumed session stay in it (not acknowledged).
        while !link.is_closed() {
            let packets = link.recv().await;
            if packets.iter().any(|p| matches!(p, Packet::SubAck(_))) || packets.is_empty() {
                break;
            }
        }
        let disconnect = Packet::Disconnect(mqtt_wire::Disconnect {
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        });
        let _ = link.send(&disconnect).await;
        link.close().await;
        Ok(())
    }

    /// Relays until one side ends; returns why.
    async fn relay(
        &self,
        client: &mut Client,
        stream: &mut Stream,
        input: &mut BytesMut,
        link: &mut LocalLink,
        relay: &mut Relay,
        (early, resent): (Vec<Event>, Vec<Packet>),
    ) -> String {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_traffic = Instant::now();
        let mut seen = relay.counts;
        let mut subscribed = false;
        for event in early {
            let now = Instant::now();
            for packet in relay.remote_event(event, client, now) {
                if link.send(&packet).await.is_err() {
                    return String::from("the local connection ended");
                }
            }
        }
        for packet in resent {
            for reply in relay.local_packet(packet, client, Instant::now()) {
                if link.send(&reply).await.is_err() {
                    return String::from("the local connection ended");
                }
            }
        }
        loop {
            if let Err(why) = flush(client, stream).await {
                return format!("write to the remote broker failed: {why}");
            }
            while let Some(event) = client.poll_event() {
                if let Event::Disconnected(why) = &event {
                    return describe(why);
                }
                for packet in relay.remote_event(event, client, Instant::now()) {
                    if link.send(&packet).await.is_err() {
                        return String::from("the local connection ended");
                    }
                }
            }
            if let Err(why) = flush(client, stream).await {
                return format!("write to the remote broker failed: {why}");
            }
            self.publish_counts(relay);
            if relay.counts != seen {
                seen = relay.counts;
                last_traffic = Instant::now();
            }
            let wake = client
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                read = stream.read_buf(input), if relay.can_read_remote() => match read {
                    Ok(0) => return String::from("closed by the remote broker"),
                    Ok(_) => client.handle_input(input, Instant::now()),
                    Err(why) => return format!("read from the remote broker failed: {why}"),
                },
                packets = link.recv() => {
                    if packets.is_empty() {
                        client.disconnect(ReasonCode::Success);
                        let _ = flush(client, stream).await;
                        return String::from("the local connection ended");
                    }
                    let now = Instant::now();
                    for packet in packets {
                        match packet {
                            Packet::SubAck(ack) if !subscribed => {
                                subscribed = true;
                                for code in ack.reason_codes.iter().filter(|c| c.is_error()) {
                                    warn!(bridge = %self.bridge.name, "a local subscription was refused: {code:?}");
                                }
                            }
                            Packet::Disconnect(d) => {
                                return format!("the local broker disconnected the bridge: {:?}", d.reason_code);
                            }
                            packet => {
                                for reply in relay.local_packet(packet, client, now) {
                                    if link.send(&reply).await.is_err() {
                                        return String::from("the local connection ended");
                                    }
                                }
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(wake) => client.handle_timeout(Instant::now()),
                _ = tick.tick() => {
                    let now = Instant::now();
                    if self.bridge.start_type == StartType::Lazy
                        && now.duration_since(last_traffic) >= Duration::from_secs(self.bridge.idle_timeout)
                    {
                        client.disconnect(ReasonCode::Success);
                        let _ = flush(client, stream).await;
                        return String::from("idle (lazy bridge)");
                    }
                }
            }
        }
    }

    /// Copies the relay's counters into the shared status.
    fn publish_counts(&self, relay: &Relay) {
        let counts = relay.counts;
        let status = &self.status;
        status.sent.fetch_max(counts.sent, Ordering::Relaxed);
        status
            .received
            .fetch_max(counts.received, Ordering::Relaxed);
        status.dropped.fetch_max(counts.dropped, Ordering::Relaxed);
    }

    fn reporter(&self) -> Reporter {
        Reporter {
            handle: self.handle.clone(),
            status: self.status.clone(),
            local_client_id: self.bridge.local_client_id(),
        }
    }

    /// A lazy bridge waits until `threshold` messages wait for it.
    async fn wait_for_threshold(&self) {
        loop {
            if self.reporter().refresh_queued().await >= self.bridge.threshold as u64 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The bridge's state as a retained `1` / `0` on this broker.
    async fn notify_locally(&self, up: bool) {
        if self.bridge.notifications {
            let payload = if up { "1" } else { "0" };
            let topic = self.bridge.notification_topic();
            let _ = self
                .handle
                .publish(&topic, payload, QoS::AtLeastOnce, true)
                .await;
        }
    }

    /// The bridge is up: `1` on both brokers (the remote one's will says `0` when it drops).
    async fn notify(&self, client: &mut Client, up: bool) {
        self.notify_locally(up).await;
        if self.bridge.notifications && !self.bridge.notifications_local_only {
            let message = mqtt_client::Message::new(
                mqtt_str(&self.bridge.notification_topic()),
                if up { "1" } else { "0" },
            )
            .qos(client.server_limits().maximum_qos.min(QoS::AtLeastOnce))
            .retain(client.server_limits().retain_available);
            let _ = client.publish(message, Instant::now());
        }
    }
}

/// Publishes a bridge's figures under `$SYS/broker/bridge/NAME/`, connected or not.
struct Reporter {
    handle: ServerHandle,
    status: Arc<BridgeStatus>,
    local_client_id: String,
}

impl Reporter {
    /// Every `interval` until the server stops.
    async fn run(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if self.publish().await.is_err() {
                return;
            }
        }
    }

    /// `$SYS/broker/bridge/NAME/...`: state, messages each way, dropped, waiting.
    async fn publish(&self) -> Result<(), ServerError> {
        self.refresh_queued().await;
        let status = &self.status;
        let prefix = format!("$SYS/broker/bridge/{}", status.name);
        let values = [
            (
                "connected",
                u64::from(status.connected.load(Ordering::Relaxed)),
            ),
            ("messages/sent", status.sent.load(Ordering::Relaxed)),
            ("messages/received", status.received.load(Ordering::Relaxed)),
            ("messages/dropped", status.dropped.load(Ordering::Relaxed)),
            ("queued", status.queued.load(Ordering::Relaxed)),
        ];
        for (name, value) in values {
            let topic = format!("{prefix}/{name}");
            (self.handle)
                .publish(&topic, value.to_string(), QoS::AtMostOnce, true)
                .await?;
        }
        Ok(())
    }

    /// Looks up how many messages wait in the bridge's local session (a walk over the
    /// sessions in the broker task: at the `$SYS` pace, or each second while a lazy bridge
    /// waits).
    async fn refresh_queued(&self) -> u64 {
        let queued = match self.handle.sessions().await {
            Ok(sessions) => sessions
                .iter()
                .find(|s| s.client_id == self.local_client_id)
                .map_or(0, |s| (s.queued + s.inflight) as u64),
            Err(_) => 0,
        };
        self.status.queued.store(queued, Ordering::Relaxed);
        queued
    }
}

/// Writes what the client has to send.
async fn flush(client: &mut Client, stream: &mut Stream) -> std::io::Result<()> {
    while let Some(bytes) = client.poll_transmit() {
        stream.write_all(&bytes).await?;
    }
    Ok(())
}

fn describe(why: &Disconnection) -> String {
    match why {
        Disconnection::ByServer(code) => format!("the remote broker disconnected: {code:?}"),
        Disconnection::ProtocolError { code, reason } => {
            format!("the remote broker broke the protocol ({reason}): {code:?}")
        }
        Disconnection::Timeout => String::from("the remote broker stopped answering"),
        Disconnection::ByClient => String::from("ended by the bridge"),
    }
}

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// A configured string as an MQTT string; configuration values were checked at start, and
/// one that still is no valid string becomes empty (refused by the broker it goes to).
fn mqtt_str(text: &str) -> MqttStr {
    MqttStr::try_from(text.to_owned()).unwrap_or_default()
}
