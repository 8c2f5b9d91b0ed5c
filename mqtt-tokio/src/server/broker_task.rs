//! The broker task: the one owner of the sans-IO [`Broker`]. Connection tasks feed it
//! [`Input`]s through one bounded channel; it answers by appending to their write queues, so it
//! never waits on a socket. After every input it drains `poll_output()` until empty, then reads
//! the next deadline; the real clock is checked before sleeping on it.
//!
//! Inputs already waiting are taken together (up to [`INPUT_BATCH`]) and their outputs drained
//! once. The chunks of the `Transmit` outputs of one drain are gathered per connection and
//! handed to each write queue once, at the end of the drain (or before that connection's
//! `Close`): a publish fanned out to many subscribers, or many publishes to one subscriber,
//! then cost one lock and one wake-up per connection instead of one per packet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt_broker_core::{AuthRequest, Broker, ConnectionId, Event, Output};
use tokio::sync::mpsc;
use tracing::{debug, error, info, trace, warn};

use super::cluster_port::{ClusterOutput, ClusterPort};
use super::events::EventHub;
use super::input::{Input, RemoteInput, SessionSummary, Sink};
use super::reactor::Reactors;
use super::storage::Storage;
use crate::config::CONNECTIONS_LOG_TARGET;

/// Where the broker task sends what the application asked to see: deferred authentication
/// requests and events.
#[derive(Debug)]
pub(crate) struct Outlets {
    /// Deferred authentications go there; without it (or when it is full or closed) they are
    /// refused with 0x88 Server unavailable.
    pub(crate) auth_requests: Option<mpsc::Sender<AuthRequest>>,
    /// The events, for the application's subscribers.
    pub(crate) events: Arc<EventHub>,
    /// The sample of routed messages (`Output::Tap`), for the web page's viewers; a viewer
    /// that lags loses the oldest.
    pub(crate) taps: tokio::sync::broadcast::Sender<Arc<mqtt_broker_core::Message>>,
    /// The cluster's backplane, when this server is a node of one.
    pub(crate) cluster: Option<ClusterPort>,
}

/// Most inputs handled before the outputs are drained: under load, the outputs of several
/// inputs then reach each write queue (and wake its writer) together, and the transmits of a
/// run of PUBLISH packets to one subscriber join into one. At most this many reads (of at most
/// `INPUT_CREDIT` bytes each) wait for their answers.
const INPUT_BATCH: usize = 32;

/// How long connections get to flush their queues at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

struct ConnEntry {
    sink: Sink,
    /// Paused by the core (a full subscriber queue), whatever the cluster's pause.
    paused: bool,
    /// Where the connection's chunks of this drain wait in `BrokerTask::dirty`, if it has any.
    pending: Option<u32>,
}

/// The broker and the write queues of its open connections.
struct BrokerTask {
    broker: Broker,
    conns: HashMap<ConnectionId, ConnEntry>,
    storage: Option<Storage>,
    /// Chunks of this drain not yet handed over, per connection, in the order the connections
    /// got them (kept out of the connection map: an idle connection's entry holds no `Vec`).
    dirty: Vec<(ConnectionId, Vec<Bytes>)>,
    outlets: Outlets,
    /// Why reading is stopped for the cluster ([`Hold`] bits); 0: it is not.
    cluster_holds: u8,
}

/// Why a node stops reading its connections for its cluster.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Hold {
    /// The backplane is behind with the messages published here.
    Backplane = 1,
    /// A subscriber on another node is behind with the messages from here.
    OtherNode = 2,
}

/// Runs until a [`Input::Shutdown`] has been handled (and the connections closed, or the grace
/// period is over) or every sender is gone.
/// With `storage`, persistence batches go to the storage thread, which is let finish its writes
/// before this returns. The `reactors` are told to close what is left and end.
pub(crate) async fn run(
    broker: Broker,
    inputs: mpsc::Receiver<Input>,
    storage: Option<Storage>,
    reactors: Reactors,
    outlets: Outlets,
) {
    let mut task = BrokerTask {
        broker,
        conns: HashMap::new(),
        storage,
        dirty: Vec::new(),
        outlets,
        cluster_holds: 0,
    };
    serve(&mut task, inputs).await;
    reactors.stop();
    if let Some(storage) = task.storage.take() {
        storage.finish().await;
    }
}

async fn serve(task: &mut BrokerTask, mut inputs: mpsc::Receiver<Input>) {
    let mut stop_at: Option<tokio::time::Instant> = None;
    let mut batch = Vec::with_capacity(INPUT_BATCH);
    loop {
        let now = Instant::now();
        let deadline = task.broker.poll_timeout();
        if deadline.is_some_and(|d| d <= now) {
            task.broker.handle_timeout(now);
            task.drain();
            continue;
        }
        let sleep = deadline.map(tokio::time::Instant::from_std);
        tokio::select! {
            received = inputs.recv_many(&mut batch, INPUT_BATCH) => {
                if received == 0 {
                    return; // every sender is gone
                }
                for input in batch.drain(..) {
                    if let Input::Shutdown = input {
                        info!(connections = task.conns.len(), "shutting down");
                        // v5 clients get DISCONNECT 0x8B (Server shutting down) before the
                        // close; wills of clients that did not disconnect go out, sessions are
                        // recorded.
                        task.broker.shutdown(Instant::now());
                        task.drain();
                        task.conns.iter().for_each(|(&conn, c)| c.sink.close(conn));
                        stop_at = Some(tokio::time::Instant::now() + SHUTDOWN_GRACE);
                    } else {
                        task.handle(input);
                    }
                }
            }
            () = sleep_until(sleep) => task.broker.handle_timeout(Instant::now()),
            () = sleep_until(stop_at) => return,
        }
        task.drain();
        if stop_at.is_some() && task.conns.is_empty() {
            return;
        }
    }
}

/// Hands `chunks` to the connection; one that refuses them (over its byte cap, or closing)
/// is closed.
fn hand_over(conn: ConnectionId, sink: &Sink, chunks: Vec<Bytes>) {
    if chunks.is_empty() {
        return;
    }
    if !sink.write(conn, chunks) {
        warn!(%conn, "write queue full or closing; closing the connection");
        sink.close(conn);
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl BrokerTask {
    fn handle(&mut self, input: Input) {
        let now = Instant::now();
        let result = match input {
            Input::Open { conn, info, sink } => {
                debug!(%conn, peer = ?info.peer, "new connection");
                let entry = ConnEntry {
                    sink,
                    paused: false,
                    pending: None,
                };
                if self.cluster_paused() {
                    entry.sink.pause(conn, true);
                }
                self.conns.insert(conn, entry);
                self.broker.handle_open(conn, *info, now)
            }
            Input::Bytes { conn, data, credit } => {
                // Whole frames are handled as views into `data` (no copy); the credit goes
                // back now, whatever the core keeps.
                let handled = self.broker.handle_read(conn, data, now);
                drop(credit);
                handled
            }
            Input::Flushed { conn, bytes } => self.broker.handle_flushed(conn, bytes, now),
            Input::Closed { conn } => {
                self.conns.remove(&conn);
                self.broker.handle_closed(conn, now)
            }
            Input::Publish(message) => self.broker.publish(*message, now),
            Input::Persisted(seq) => self.broker.handle_persisted(seq, now),
            Input::AuthAnswer { conn, step, done } => {
                // A misuse here is the application's answer coming too late (the connection
                // closed or hit its CONNECT deadline) or twice: it is told, nothing is logged.
                let _ = done.send(self.broker.continue_auth(conn, step, now));
                Ok(())
            }
            Input::Stats(reply) => {
                let _ = reply.send(self.broker.stats());
                Ok(())
            }
            Input::Metrics(reply) => {
                let by_listener = self
                    .broker
                    .connections_by_listener()
                    .into_iter()
                    .map(|(listener, open)| (listener.0, open))
                    .collect();
                let snapshot = (
                    self.broker.stats(),
                    self.broker.inflight_messages(),
                    by_listener,
                );
                let _ = reply.send(snapshot);
                Ok(())
            }
            Input::Checkpoint => {
                match &self.storage {
                    Some(storage) => storage.checkpoint(),
                    None => info!("persistence is off: there is no state to write"),
                }
                Ok(())
            }
            Input::LogSessions => {
                self.log_sessions();
                Ok(())
            }
            Input::Sessions(reply) => {
                let _ = reply.send(self.session_summaries());
                Ok(())
            }
            Input::Remote(remote) => self.remote(remote, now),
            Input::ClusterDrained => {
                self.hold(Hold::Backplane, false);
                Ok(())
            }
            Input::DisconnectClient { client_id, done } => {
                let found = self.broker.disconnect_client(&client_id, Instant::now());
                self.drain();
                let _ = done.send(found);
                Ok(())
            }
            Input::Shutdown => Ok(()),
        };
        if let Err(misuse) = result {
            error!(%misuse, "broker API misuse");
        }
    }

    /// Every session, summarised.
    fn session_summaries(&self) -> Vec<SessionSummary> {
        self.broker
            .sessions()
            .map(|s| SessionSummary {
                client_id: s.client_id().to_owned(),
                connected: s.connected(),
                peer: s.connection().and_then(|c| c.peer),
                username: s.username().map(str::to_owned),
                protocol: match s.protocol() {
                    mqtt_wire::ProtocolVersion::V3_1 => "3.1",
                    mqtt_wire::ProtocolVersion::V3_1_1 => "3.1.1",
                    mqtt_wire::ProtocolVersion::V5 => "5.0",
                },
                keep_alive: s.keep_alive(),
                subscriptions: s
                    .subscriptions()
                    .map(|(filter, options)| (filter.to_owned(), options.qos as u8))
                    .collect(),
                queued: s.queued(),
                inflight: s.inflight(),
            })
            .collect()
    }

    /// Writes every session and its subscriptions to the log (mosquitto writes its
    /// subscription tree on SIGUSR2).
    fn log_sessions(&self) {
        let stats = self.broker.stats();
        info!(
            sessions = stats.clients_connected + stats.clients_disconnected,
            subscriptions = stats.subscriptions,
            retained = stats.retained_messages,
            "sessions and subscriptions follow"
        );
        for session in self.broker.sessions() {
            let filters: Vec<String> = session
                .subscriptions()
                .map(|(filter, options)| format!("{filter} (QoS {})", options.qos as u8))
                .collect();
            info!(
                client_id = session.client_id(),
                connected = session.connected(),
                queued = session.queued(),
                inflight = session.inflight(),
                subscriptions = %filters.join(", "),
                "session"
            );
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.broker.poll_output() {
            match output {
                Output::Transmit { conn, data } => {
                    let Some(entry) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    match entry.pending.and_then(|at| self.dirty.get_mut(at as usize)) {
                        Some((_, pending)) => pending.extend(data),
                        None => {
                            entry.pending = u32::try_from(self.dirty.len()).ok();
                            self.dirty.push((conn, data));
                        }
                    }
                }
                Output::Close { conn } => {
                    if let Some(entry) = self.conns.get_mut(&conn) {
                        let pending = entry
                            .pending
                            .take()
                            .and_then(|at| self.dirty.get_mut(at as usize));
                        if let Some((_, chunks)) = pending {
                            hand_over(conn, &entry.sink, std::mem::take(chunks));
                        }
                        entry.sink.close(conn);
                    }
                }
                Output::AuthRequest(request) => self.hand_auth_request(request),
                Output::Event(event) => {
                    self.log_event(&event);
                    if let Some(cluster) = &self.outlets.cluster {
                        match &event {
                            Event::InterestChanged { filter, present } => {
                                cluster.control(ClusterOutput::Interest {
                                    filter: Arc::clone(filter),
                                    present: *present,
                                });
                            }
                            Event::SessionEnded { client_id } => {
                                cluster.control(ClusterOutput::SessionEnded {
                                    client_id: Arc::clone(client_id),
                                });
                            }
                            _ => {}
                        }
                    }
                    self.outlets.events.publish(event);
                }
                Output::Forward(message) => {
                    if let Some(cluster) = &self.outlets.cluster
                        && cluster.forward(message)
                    {
                        debug!(
                            "the cluster's backplane is behind: reading nothing until it caught up"
                        );
                        self.hold(Hold::Backplane, true);
                    }
                }
                Output::Admit {
                    conn,
                    client_id,
                    clean_start,
                } => {
                    // The core asks only with `Config::cluster`, which always has a port.
                    if let Some(cluster) = &self.outlets.cluster {
                        cluster.control(ClusterOutput::Admit {
                            conn,
                            client_id,
                            clean_start,
                        });
                    }
                }
                Output::PauseReading { conn } if conn == ConnectionId::CLUSTER => {
                    if let Some(cluster) = &self.outlets.cluster {
                        debug!("a subscriber here is behind: asking the other nodes to wait");
                        cluster.control(ClusterOutput::Pressure { behind: true });
                    }
                }
                Output::ResumeReading { conn } if conn == ConnectionId::CLUSTER => {
                    if let Some(cluster) = &self.outlets.cluster {
                        cluster.control(ClusterOutput::Pressure { behind: false });
                    }
                }
                Output::PauseReading { conn } => {
                    if let Some(entry) = self.conns.get_mut(&conn) {
                        debug!(%conn, "pausing a publisher: a subscriber queue is filling up");
                        entry.paused = true;
                        entry.sink.pause(conn, true);
                    }
                }
                Output::ResumeReading { conn } => {
                    let held = self.cluster_paused();
                    if let Some(entry) = self.conns.get_mut(&conn) {
                        entry.paused = false;
                        if !held {
                            entry.sink.pause(conn, false);
                        }
                    }
                }
                Output::Persist(batch) => match &self.storage {
                    Some(storage) => storage.write(batch),
                    None => error!("persistence batch without a store"),
                },
                Output::Tap(message) => {
                    let _ = self.outlets.taps.send(message); // none listening: nothing to do
                }
                _ => {}
            }
        }
        for (conn, chunks) in self.dirty.drain(..) {
            if let Some(entry) = self.conns.get_mut(&conn) {
                entry.pending = None;
                hand_over(conn, &entry.sink, chunks);
            }
        }
    }

    /// Whether reading is stopped for the cluster.
    fn cluster_paused(&self) -> bool {
        self.cluster_holds != 0
    }

    /// Stops (`true`) or lets go (`false`) reading every connection for one of the cluster's
    /// reasons; reading resumes once no reason holds it, except on a connection the core
    /// paused itself.
    fn hold(&mut self, why: Hold, on: bool) {
        let before = self.cluster_paused();
        if on {
            self.cluster_holds |= why as u8;
        } else {
            self.cluster_holds &= !(why as u8);
        }
        let after = self.cluster_paused();
        if before != after {
            for (conn, entry) in &self.conns {
                if !entry.paused {
                    entry.sink.pause(*conn, after);
                }
            }
        }
    }

    /// Applies what the cluster's backplane handed in.
    fn remote(
        &mut self,
        remote: RemoteInput,
        now: Instant,
    ) -> Result<(), mqtt_broker_core::ApiMisuse> {
        match remote {
            RemoteInput::Publish(message, handled) => {
                let routed = self.broker.publish_remote(*message, now);
                if let Some(handled) = handled {
                    let _ = handled.send(());
                }
                routed
            }
            RemoteInput::Shared(message, filter) => {
                if !self.broker.publish_remote_shared(*message, &filter, now)? {
                    debug!(%filter, "a shared copy for a group with no member here any more");
                }
                Ok(())
            }
            RemoteInput::Retain(message) => self.broker.retain_remote(*message, now),
            RemoteInput::Admit(conn, session) => {
                let _ =
                    self.broker
                        .admit(conn, session.map(|s| *s), now, std::time::SystemTime::now());
                Ok(())
            }
            RemoteInput::Export(client_id, reply) => {
                let session =
                    self.broker
                        .export_session(&client_id, now, std::time::SystemTime::now());
                let _ = reply.send(session);
                Ok(())
            }
            RemoteInput::Pressure(behind) => {
                self.hold(Hold::OtherNode, behind);
                Ok(())
            }
            RemoteInput::Link(up) => {
                self.broker.set_cluster_link(up);
                Ok(())
            }
            RemoteInput::TakenOver(client_id) => {
                if self.broker.session_taken_over(&client_id, now) {
                    info!(
                        client_id = &*client_id,
                        "session taken over by another node"
                    );
                }
                Ok(())
            }
        }
    }

    /// Hands a deferred authentication to the application; refuses it (0x88 Server unavailable)
    /// when nobody takes such requests or their channel is full or closed, so that the client
    /// does not wait for an answer that cannot come.
    fn hand_auth_request(&mut self, request: AuthRequest) {
        let conn = request.conn;
        let refused = match &self.outlets.auth_requests {
            None => "no receiver of deferred authentications is set",
            Some(sender) => match sender.try_send(request) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    "the channel of deferred authentications is full"
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    "the channel of deferred authentications is closed"
                }
            },
        };
        warn!(%conn, "{refused}; refusing the deferred authentication");
        let result = self.broker.reject_connect(
            conn,
            mqtt_wire::ReasonCode::ServerUnavailable,
            Instant::now(),
        );
        if let Err(misuse) = result {
            error!(%misuse, "broker API misuse");
        }
    }

    fn log_event(&self, event: &Event) {
        match event {
            Event::ClientConnected {
                conn,
                client_id,
                session_present,
                username,
                protocol,
                keep_alive,
                info,
                ..
            } => {
                let peer = info.peer;
                let username = username.as_deref();
                info!(target: CONNECTIONS_LOG_TARGET, %conn, ?peer, %client_id, ?username, ?protocol, keep_alive, session_present, "client connected");
            }
            Event::ClientDisconnected {
                conn,
                client_id,
                reason,
            } => {
                info!(target: CONNECTIONS_LOG_TARGET, %conn, %client_id, ?reason, "client disconnected")
            }
            Event::ConnectRefused { conn, reason } => {
                let peer = self.broker.connection_info(*conn).and_then(|c| c.peer);
                info!(target: CONNECTIONS_LOG_TARGET, %conn, ?peer, ?reason, "connection refused")
            }
            Event::ProtocolError {
                conn,
                spec_id,
                reason,
            } => info!(%conn, spec_id = spec_id.unwrap_or("-"), ?reason, "protocol error"),
            Event::DropsStarted { client_id, reason } => {
                warn!(%client_id, ?reason, "slow subscriber: dropping messages for it until it catches up")
            }
            Event::DropsEnded { client_id, dropped } => {
                info!(%client_id, dropped, "slow subscriber caught up")
            }
            Event::MessageDropped { client_id, reason } => {
                trace!(%client_id, ?reason, "message dropped")
            }
            other => debug!(event = ?other, "broker event"),
        }
    }
}
