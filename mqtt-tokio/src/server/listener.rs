//! One listening socket: accepts connections (waiting while `max_connections` are open), turns
//! on TCP_NODELAY, runs the TLS and WebSocket handshakes within the connect timeout, then hands
//! the connection to its own task.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mqtt_broker_core::{ConnectionId, ConnectionInfo, ListenerId};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tracing::{debug, warn};

use super::connection::{Connection, Start};
use super::http_files::{HttpDir, Replay};
use super::input::Input;
use super::reactor::{Accepted, Reactors};
use super::tls::Tls;
use super::transport::{ByteStream, WebSocket};
use super::write_queue::WriteQueue;

/// Everything a listener's accept loop needs.
pub(crate) struct Listener {
    pub(crate) id: ListenerId,
    /// The listening socket, watched by the runtime.
    pub(crate) socket: AsyncFd<mio::net::TcpListener>,
    /// MQTT in WebSocket messages rather than straight on the byte stream.
    pub(crate) websocket: bool,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) queue_cap: usize,
    /// Counts the connections this listener accepts (metrics).
    pub(crate) accepted: prometheus_client::metrics::counter::Counter,
    /// The files served to plain HTTP requests on a WebSocket listener (`http_dir`).
    pub(crate) http: Option<Arc<HttpDir>>,
}

/// Accepts connections until the task is aborted.
pub(crate) async fn accept_loop(
    listener: Listener,
    inputs: mpsc::Sender<Input>,
    ids: Arc<AtomicU64>,
    reactors: Reactors,
) {
    let listener = Arc::new(listener);
    loop {
        let (stream, peer) = match accept(&listener.socket).await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // At `max_connections` the new connection is closed at once, as mosquitto does, rather
        // than left waiting in the backlog.
        let permit = match &listener.limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(TryAcquireError::NoPermits) => {
                    debug!(?peer, "max_connections reached: connection closed");
                    continue;
                }
                Err(TryAcquireError::Closed) => return,
            },
            None => None,
        };
        listener.accepted.inc();
        let _ = stream.set_nodelay(true);
        let conn = ConnectionId(ids.fetch_add(1, Ordering::Relaxed));
        let mut info = Box::new(ConnectionInfo::new(Some(peer)));
        info.listener = listener.id;
        if listener.tls.is_none() && !listener.websocket {
            reactors.open(Accepted {
                conn,
                info,
                stream,
                slot: permit,
            });
            continue;
        }
        let stream = match TcpStream::from_std(stream.into()) {
            Ok(stream) => stream,
            Err(error) => {
                debug!(%conn, %error, "cannot register the connection");
                continue;
            }
        };
        let start = Start {
            conn,
            info,
            inputs: inputs.clone(),
            queue: Arc::new(WriteQueue::holding(listener.queue_cap, permit)),
        };
        spawn(handshakes(listener.clone(), start, stream));
    }
}

/// The next connection of `socket`, already non-blocking: accepted straight from the socket,
/// so a plain TCP connection is never registered with the runtime, only with its reactor.
async fn accept(
    socket: &AsyncFd<mio::net::TcpListener>,
) -> io::Result<(mio::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = socket.readable().await?;
        if let Ok(accepted) = ready.try_io(|socket| socket.get_ref().accept()) {
            return accepted;
        }
    }
}

/// Spawns a task that nobody waits for.
fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    drop(tokio::spawn(task));
}

/// The task that runs the TLS and WebSocket handshakes of one connection, then spawns its
/// connection task and ends: an idle connection does not keep a task sized for handshakes.
async fn handshakes(listener: Arc<Listener>, mut start: Start, stream: TcpStream) {
    let Some(tls) = listener.tls.as_ref() else {
        return after_tls(&listener, start, stream).await;
    };
    let acceptor = tls.acceptor();
    let (conn, peer) = (start.conn, start.info.peer);
    let handshake = tokio::time::timeout(listener.handshake_timeout, acceptor.accept(stream));
    let stream = match handshake.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return debug!(%conn, ?peer, %error, "TLS handshake failed"),
        Err(_) => return debug!(%conn, ?peer, "TLS handshake timed out"),
    };
    start.info.tls_identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| tls.identity(cert));
    debug!(%conn, ?peer, identity = ?start.info.tls_identity, "TLS established");
    after_tls(&listener, start, stream).await;
}

async fn after_tls<S>(listener: &Listener, start: Start, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if listener.websocket {
        websocket(listener, start, stream).await;
    } else {
        spawn(Connection::new(start, ByteStream::new(stream)));
    }
}

/// The WebSocket handshake, then the connection's task. With `http_dir`, a request that is
/// not an upgrade is answered with a file and the connection ends.
async fn websocket<S>(listener: &Listener, start: Start, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = start.conn;
    let deadline = tokio::time::Instant::now() + listener.handshake_timeout;
    let stream = match &listener.http {
        None => Replay::new(Bytes::new(), stream),
        Some(dir) => match tokio::time::timeout_at(deadline, dir.serve_or_upgrade(stream)).await {
            Ok(Ok(Some(upgrade))) => upgrade,
            Ok(Ok(None)) => return debug!(%conn, "HTTP request served"),
            Ok(Err(error)) => return debug!(%conn, %error, "HTTP request failed"),
            Err(_) => return debug!(%conn, "HTTP request timed out"),
        },
    };
    let handshake = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::accept_hdr_async(stream, choose_mqtt_subprotocol),
    );
    let ws = match handshake.await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return debug!(%conn, %error, "WebSocket handshake failed"),
        Err(_) => return debug!(%conn, "WebSocket handshake timed out"),
    };
    spawn(Connection::new(start, WebSocket(ws)));
}

/// Accepts the WebSocket upgrade only for the `mqtt` subprotocol (or the 3.1 draft's
/// `mqttv3.1`), and says so in the response [MQTT-6.0.0-3] [MQTT-6.0.0-4]. (The error type is
/// tungstenite's, hence its size.)
#[allow(clippy::result_large_err)]
fn choose_mqtt_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .find(|protocol| protocol.eq_ignore_ascii_case("mqtt") || *protocol == "mqttv3.1")
        .map(str::to_owned);
    match offered.and_then(|p| http::HeaderValue::from_str(&p).ok()) {
        Some(value) => {
            response
                .headers_mut()
                .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
            Ok(response)
        }
        None => {
            let mut refusal = ErrorResponse::new(Some(String::from(
                "the mqtt WebSocket subprotocol is required",
            )));
            *refusal.status_mut() = http::StatusCode::BAD_REQUEST;
            Err(refusal)
        }
    }
}
