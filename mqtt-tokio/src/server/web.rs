//! The HTTP listener (`protocol http`): `GET /metrics` for Prometheus, `GET /healthz` and
//! `GET /readyz` for orchestrators. Built on hyper (HTTP/1.1 only: what scrapers and probes
//! speak), with TLS like the MQTT listeners.
//!
//! `/metrics` asks for HTTP Basic credentials from the listener's password file, unless the
//! listener binds a loopback address and admits anonymous clients. The probes answer anyone:
//! they say nothing but "alive" and "ready".

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::ServerHandle;
use super::metrics::{CONTENT_TYPE as METRICS_TYPE, Metrics};
use super::tls::Tls;
use crate::auth::hooks::SecurityFiles;

/// How long a probe or a scrape waits for the broker task's figures.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// What an HTTP listener serves, shared by its connections.
#[derive(Debug)]
pub(crate) struct Web {
    pub(crate) handle: ServerHandle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) files: Arc<SecurityFiles>,
    /// `/metrics` without credentials: a loopback listener that admits anonymous clients.
    pub(crate) anonymous: bool,
}

/// Accepts HTTP connections until the task is aborted.
pub(crate) async fn accept_loop(
    socket: TcpListener,
    tls: Option<Arc<Tls>>,
    web: Arc<Web>,
    limit: Option<Arc<Semaphore>>,
    handshake_timeout: Duration,
) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match &limit {
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => continue, // at max_connections: closed at once
            },
            None => None,
        };
        let (web, tls) = (web.clone(), tls.clone());
        drop(tokio::spawn(async move {
            let _permit = permit;
            let result = match tls {
                Some(tls) => {
                    let accepted =
                        tokio::time::timeout(handshake_timeout, tls.acceptor().accept(stream))
                            .await;
                    match accepted {
                        Ok(Ok(stream)) => serve(stream, web, handshake_timeout).await,
                        _ => return debug!(?peer, "HTTP TLS handshake failed"),
                    }
                }
                None => serve(stream, web, handshake_timeout).await,
            };
            if let Err(error) = result {
                debug!(?peer, %error, "HTTP connection ended");
            }
        }));
    }
}

/// Serves one connection's requests.
async fn serve<S>(stream: S, web: Arc<Web>, header_timeout: Duration) -> hyper::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let web = web.clone();
        async move { Ok::<_, Infallible>(respond(&web, &request).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

async fn respond(web: &Web, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match stats(web).await {
            Some(_) => text(StatusCode::OK, "ready\n"),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        },
        "/metrics" => {
            if !web.anonymous && !authorized(web, request) {
                let mut response = text(StatusCode::UNAUTHORIZED, "credentials needed\n");
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"mqtt-broker\", charset=\"UTF-8\""),
                );
                return response;
            }
            match stats(web).await {
                Some(stats) => {
                    let mut response =
                        Response::new(Full::new(Bytes::from(web.metrics.render(stats))));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
                    response
                }
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the broker does not answer\n",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The broker task's counters, if it answers in time.
async fn stats(web: &Web) -> Option<mqtt_broker_core::Stats> {
    tokio::time::timeout(STATS_TIMEOUT, web.handle.stats())
        .await
        .ok()?
        .ok()
}

/// Whether the request carries Basic credentials the password file accepts.
fn authorized(web: &Web, request: &Request<Incoming>) -> bool {
    let Some(credentials) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| BASE64.decode(encoded.trim()).ok())
    else {
        return false;
    };
    let Some(colon) = credentials.iter().position(|&b| b == b':') else {
        return false;
    };
    let (user, password) = (&credentials[..colon], &credentials[colon + 1..]);
    std::str::from_utf8(user).is_ok_and(|user| web.files.check_password(user, password))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
