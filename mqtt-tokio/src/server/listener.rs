//! One listening socket: accepts connections (waiting while `max_connections` are open), turns
//! on TCP_NODELAY, runs the TLS and WebSocket handshakes within the connect timeout, then hands
//! the connection to its driver task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use mqtt_broker_core::{ConnectionId, ConnectionInfo, ListenerId};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tracing::{debug, warn};

use super::broker_task::Input;
use super::connection::drive;
use super::tls::common_name;
use super::transport::{StreamSink, StreamSource, WsSink, WsSource};
use super::write_queue::WriteQueue;
use crate::config::Protocol;

/// Everything a listener's accept loop needs.
pub(crate) struct Listener {
    pub(crate) id: ListenerId,
    pub(crate) socket: TcpListener,
    pub(crate) protocol: Protocol,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limit: Option<Arc<Semaphore>>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) queue_cap: usize,
}

/// Accepts connections until the task is aborted.
pub(crate) async fn accept_loop(
    listener: Listener,
    inputs: mpsc::Sender<Input>,
    ids: Arc<AtomicU64>,
) {
    let listener = Arc::new(listener);
    loop {
        let permit = match &listener.limit {
            Some(limit) => match limit.clone().acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => return,
            },
            None => None,
        };
        let (stream, peer) = match listener.socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnectionId(ids.fetch_add(1, Ordering::Relaxed));
        let mut info = Box::new(ConnectionInfo::new(Some(peer)));
        info.listener = listener.id;
        tokio::spawn(serve(
            listener.clone(),
            conn,
            stream,
            info,
            inputs.clone(),
            permit,
        ));
    }
}

/// The task of one connection. Its arguments are all it holds besides the connection itself
/// (no wrapping closure keeps a second copy of them), and the connection info is boxed: every
/// idle connection has one such task.
async fn serve(
    listener: Arc<Listener>,
    conn: ConnectionId,
    stream: TcpStream,
    info: Box<ConnectionInfo>,
    inputs: mpsc::Sender<Input>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let listener = &*listener;
    // The handshakes and each kind of connection run in their own boxed futures, so the task
    // of an idle plain connection is not sized for a TLS or WebSocket handshake (measured:
    // 5,000 idle subscribed connections, see docs/PERFORMANCE-brokers.md).
    match &listener.tls {
        None => after_tls(listener, conn, stream, info, inputs).await,
        Some(acceptor) => Box::pin(tls(listener, acceptor, conn, stream, info, inputs)).await,
    }
}

/// The TLS handshake, then the connection.
async fn tls(
    listener: &Listener,
    acceptor: &TlsAcceptor,
    conn: ConnectionId,
    stream: TcpStream,
    mut info: Box<ConnectionInfo>,
    inputs: mpsc::Sender<Input>,
) {
    let peer = info.peer;
    let handshake = tokio::time::timeout(listener.handshake_timeout, acceptor.accept(stream));
    let stream = match handshake.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return debug!(%conn, ?peer, %error, "TLS handshake failed"),
        Err(_) => return debug!(%conn, ?peer, "TLS handshake timed out"),
    };
    info.tls_identity = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|cert| common_name(cert));
    debug!(%conn, ?peer, identity = ?info.tls_identity, "TLS established");
    after_tls(listener, conn, stream, info, inputs).await;
}

async fn after_tls<S>(
    listener: &Listener,
    conn: ConnectionId,
    stream: S,
    info: Box<ConnectionInfo>,
    inputs: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match listener.protocol {
        Protocol::Mqtt => {
            let (reader, writer) = tokio::io::split(stream);
            let source = StreamSource::new(reader);
            Box::pin(drive(
                conn,
                info,
                source,
                StreamSink(writer),
                inputs,
                Arc::new(WriteQueue::new(listener.queue_cap)),
            ))
            .await;
        }
        Protocol::Websockets => Box::pin(websocket(listener, conn, stream, info, inputs)).await,
    }
}

/// The WebSocket handshake, then the connection.
async fn websocket<S>(
    listener: &Listener,
    conn: ConnectionId,
    stream: S,
    info: Box<ConnectionInfo>,
    inputs: mpsc::Sender<Input>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = tokio::time::timeout(
        listener.handshake_timeout,
        tokio_tungstenite::accept_hdr_async(stream, choose_mqtt_subprotocol),
    );
    let ws = match handshake.await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return debug!(%conn, %error, "WebSocket handshake failed"),
        Err(_) => return debug!(%conn, "WebSocket handshake timed out"),
    };
    let (sink, source) = ws.split();
    drive(
        conn,
        info,
        WsSource(source),
        WsSink(sink),
        inputs,
        Arc::new(WriteQueue::new(listener.queue_cap)),
    )
    .await;
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
