//! The HTTP listener (`protocol http`): the broker's web page (topic tree, live messages,
//! clients, publishing, Tasmota devices), `GET /metrics` for Prometheus, and `GET /healthz` /
//! `GET /readyz` for orchestrators. Built on hyper (HTTP/1.1: what browsers, scrapers and
//! probes all speak), with TLS like the MQTT listeners.
//!
//! Who may do what: the probes answer anyone. Everything else needs a user of the listener's
//! password file (the page's login, or HTTP Basic for `/metrics`), unless the listener binds a
//! loopback address and admits anonymous clients. The page acts as that user through
//! in-process MQTT clients, so the broker's own authentication and ACL decide what it sees and
//! may publish. Changes (publish, disconnect, logout) need the login's CSRF token in a header
//! and a same-origin `Origin`; the page is served with a Content-Security-Policy that allows
//! only its own script, and renders every topic and payload as text.

mod api;
mod history;
mod login;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::ServerHandle;
use super::metrics::{CONTENT_TYPE as METRICS_TYPE, Metrics, Snapshot};
use super::tls::Tls;
use crate::auth::hooks::SecurityFiles;
use login::Logins;

/// How long a probe or a scrape waits for the broker task's figures.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of every response: whole, or a stream of live messages.
type Body = BoxBody<Bytes, Infallible>;

/// What an HTTP listener serves, shared by its connections.
#[derive(Debug)]
pub(crate) struct Web {
    pub(crate) handle: ServerHandle,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) files: Arc<SecurityFiles>,
    /// No login needed: a loopback listener that admits anonymous clients.
    pub(crate) anonymous: bool,
    /// HTTPS: the session cookie is marked `Secure`.
    pub(crate) secure: bool,
    pub(crate) logins: Logins,
    pub(crate) histories: history::Histories,
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
        async move { Ok::<_, Infallible>(respond(web, request).await) }
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .await
}

/// The page's files, embedded in the binary: nothing is fetched from elsewhere.
const INDEX_HTML: &str = include_str!("assets/index.html");
const PAGE_JS: &str = include_str!("assets/page.js");
const PAGE_CSS: &str = include_str!("assets/page.css");

/// Only the page's own files: no inline script, nothing from another origin.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn respond(web: Arc<Web>, request: Request<Incoming>) -> Response<Body> {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match (&method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/readyz") => match stats(&web).await {
            Some(_) => text(StatusCode::OK, "ready\n"),
            None => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        },
        (&Method::GET | &Method::HEAD, "/metrics") => metrics(&web, &request).await,
        (&Method::GET, "/") => asset(INDEX_HTML, "text/html; charset=utf-8"),
        (&Method::GET, "/page.js") => asset(PAGE_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, "/page.css") => asset(PAGE_CSS, "text/css; charset=utf-8"),
        (_, path) if path.starts_with("/api/") => api::respond(&web, request).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn metrics(web: &Web, request: &Request<Incoming>) -> Response<Body> {
    let logged_in =
        web.anonymous || basic_login(web, request) || api::login(web, request).is_some();
    if !logged_in {
        let mut response = text(StatusCode::UNAUTHORIZED, "credentials needed\n");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mqtt-broker\", charset=\"UTF-8\""),
        );
        return response;
    }
    let snapshot = tokio::time::timeout(STATS_TIMEOUT, web.handle.metrics_snapshot()).await;
    match snapshot {
        Ok(Ok((stats, inflight, open))) => {
            let connections = web.metrics.name_listeners(&open);
            let snapshot = Snapshot {
                stats,
                inflight,
                connections,
            };
            let mut response = whole(Bytes::from(web.metrics.render(snapshot)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_TYPE));
            response
        }
        _ => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker does not answer\n",
        ),
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
fn basic_login(web: &Web, request: &Request<Incoming>) -> bool {
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

/// A whole body.
fn whole(bytes: Bytes) -> Response<Body> {
    Response::new(Full::new(bytes).boxed())
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = whole(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// One of the page's files, with the security headers of the page.
fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut response = whole(Bytes::from_static(body.as_bytes()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}
