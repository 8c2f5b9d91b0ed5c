//! The page's JSON API under `/api/`, and its stream of live messages (server-sent events).
//!
//! The page acts through in-process MQTT clients connected as its user, so the broker's
//! authentication and ACL decide what it receives and may publish. A live stream never slows
//! the broker: its in-process client is a QoS 0 subscriber like any other (a full outbox drops
//! for it), and what the browser does not take in time is dropped here and counted in a
//! `dropped` event.

use std::convert::Infallible;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::{BodyExt as _, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue, ORIGIN, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use mqtt_topic::TopicGlob;
use mqtt_wire::QoS;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::login::{COOKIE, Login, cookie};
use super::{Body, Web, whole};
use crate::{LocalClient, LocalConnectOptions, ServerError};

/// Largest request body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// Messages waiting for a slow browser before the stream drops the next ones.
const STREAM_BACKLOG: usize = 512;

/// Deliveries an in-process client of a stream holds before the broker counts it slow.
const CLIENT_CAPACITY: usize = 1024;

/// How often a stream reports what it dropped; a quiet one says it is alive every 15 ticks.
const STREAM_TICK: Duration = Duration::from_secs(1);

/// Most messages a stream sends a browser per second; more are counted and dropped before they
/// are encoded, so a page open on a busy broker costs it little.
const STREAM_RATE: u32 = 2000;

/// Answers a request under `/api/`.
pub(super) async fn respond(web: &Web, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/api/session") => session(web, &request),
        (Method::POST, "/api/login") => login_post(web, request).await,
        (method, path) => {
            let Some((token, login)) = login(web, &request) else {
                return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "log in first"}));
            };
            if method == Method::POST && !same_origin_change(&request, &login) {
                return json_response(
                    StatusCode::FORBIDDEN,
                    &json!({"error": "a change needs the page's token, from its own origin"}),
                );
            }
            match (method, path) {
                (Method::POST, "/api/logout") => {
                    web.logins.remove(&token);
                    let mut response = json_response(StatusCode::OK, &json!({}));
                    set_cookie(&mut response, "", web.secure);
                    response
                }
                (Method::GET, "/api/events") => events(web, &request, &login).await,
                (Method::GET, "/api/clients") if operator(web, &login) => clients(web).await,
                (Method::POST, "/api/publish") => publish(web, request, &login).await,
                (Method::POST, "/api/history") => follow(web, request, &login).await,
                (Method::GET, "/api/history") => history(web, &request, &login),
                (Method::POST, "/api/disconnect") if operator(web, &login) => {
                    disconnect(web, request).await
                }
                (Method::GET | Method::POST, "/api/clients" | "/api/disconnect") => {
                    json_response(StatusCode::FORBIDDEN, &json!({"error": "operators only"}))
                }
                _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "no such call"})),
            }
        }
    }
}

/// The login the request's cookie names, if current.
pub(super) fn login(web: &Web, request: &Request<Incoming>) -> Option<(String, Login)> {
    let token = request
        .headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|header| cookie(header, COOKIE))?
        .to_owned();
    let login = web.logins.get(&token)?;
    Some((token, login))
}

/// An operator may list and disconnect clients: whoever the ACL lets read `$SYS/#` (everyone
/// without an ACL file).
fn operator(web: &Web, login: &Login) -> bool {
    web.files.allows_subscribe(login.user.as_deref(), "$SYS/#")
}

/// `GET /api/session`: who is logged in and the CSRF token; on a page that needs no login, a
/// login is made on the spot.
fn session(web: &Web, request: &Request<Incoming>) -> Response<Body> {
    if let Some((_, login)) = login(web, request) {
        return json_response(StatusCode::OK, &describe(web, &login));
    }
    if !web.anonymous {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "log in first"}));
    }
    let (token, login) = web.logins.create(None, None);
    let mut response = json_response(StatusCode::OK, &describe(web, &login));
    set_cookie(&mut response, &token, web.secure);
    response
}

fn describe(web: &Web, login: &Login) -> Value {
    json!({"user": login.user, "csrf": login.csrf, "operator": operator(web, login)})
}

/// `POST /api/login` with `{"user", "password"}`: checked against the password file.
async fn login_post(web: &Web, request: Request<Incoming>) -> Response<Body> {
    if !origin_matches(&request) {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "cross-origin login"}),
        );
    }
    let Some(body) = json_body(request).await else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "expected JSON"}));
    };
    let user = body["user"].as_str().unwrap_or_default();
    let password = body["password"].as_str().unwrap_or_default();
    if user.is_empty() || !web.files.check_password(user, password.as_bytes()) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"error": "wrong user name or password"}),
        );
    }
    let password = Bytes::copy_from_slice(password.as_bytes());
    let (token, login) = web.logins.create(Some(user.to_owned()), Some(password));
    let mut response = json_response(StatusCode::OK, &describe(web, &login));
    set_cookie(&mut response, &token, web.secure);
    response
}

/// `GET /api/events?filter=PATTERN&exclude=PATTERN...[&sample=1]`: the messages on `PATTERN`
/// (MQTT wildcards, `*` and `?` inside a level) as server-sent events, retained ones first.
/// With `sample=1` (the topic tree) the live messages come from the broker's sample of what it
/// routes (at most a few thousand a second, read-checked against the user's ACL here) instead
/// of a subscription: a page watching everything costs the broker next to nothing.
async fn events(web: &Web, request: &Request<Incoming>, login: &Login) -> Response<Body> {
    let params = query_params(request.uri().query().unwrap_or_default());
    let pattern = params
        .iter()
        .find(|(k, _)| k == "filter")
        .map_or("#", |(_, v)| v.as_str());
    let sampled = params.iter().any(|(k, v)| k == "sample" && v == "1");
    let parse = |text: &str| TopicGlob::parse(text).map_err(|e| format!("`{text}`: {e}"));
    let glob = match parse(pattern) {
        Ok(glob) => glob,
        Err(why) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": why})),
    };
    let exclude: Result<Vec<TopicGlob>, String> = params
        .iter()
        .filter(|(k, v)| k == "exclude" && !v.is_empty())
        .map(|(_, v)| parse(v))
        .collect();
    let exclude = match exclude {
        Ok(exclude) => exclude,
        Err(why) => return json_response(StatusCode::BAD_REQUEST, &json!({"error": why})),
    };
    // Subscribed before the retained messages are asked for: nothing falls between them.
    let taps = sampled.then(|| web.handle.taps());
    let mut client = match connect(web, login, CLIENT_CAPACITY).await {
        Ok(client) => client,
        Err(e) => return refused(&e),
    };
    let filters = match client.subscribe(&glob.filter(), QoS::AtMostOnce).await {
        Ok(_) => vec![glob.filter()],
        Err(e) => {
            // The ACL does not let this user read all the pattern covers (a viewer limited to
            // `public/#` asking for `#`): it gets what it may read, still filtered by the
            // pattern.
            let Some(readable) = web.files.read_filters(login.user.as_deref()) else {
                return refused(&e);
            };
            for filter in &readable {
                let _ = client.subscribe(filter, QoS::AtMostOnce).await;
            }
            readable
        }
    };
    let wanted =
        move |topic: &str| glob.matches(topic) && !exclude.iter().any(|x| x.matches(topic));
    let (lines, stream) = mpsc::channel::<Bytes>(STREAM_BACKLOG);
    let mut outlet = Outlet::new(lines);
    match taps {
        None => drop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(STREAM_TICK);
            loop {
                tokio::select! {
                    delivery = client.recv() => {
                        let Some(d) = delivery else { break };
                        if wanted(d.topic.as_str())
                            && !outlet.offer(d.topic.as_str(), &d.payload, d.qos as u8, d.retain)
                        {
                            break;
                        }
                    }
                    () = outlet.lines.closed() => break,
                    _ = tick.tick() => outlet.tick(),
                }
            }
            let _ = client.disconnect().await;
        })),
        Some(mut taps) => {
            // The retained messages: the broker sends them with the SUBACK, so they are in
            // before the UNSUBACK that ends the subscriptions comes back.
            for filter in &filters {
                let _ = client.unsubscribe(filter).await;
            }
            while let Some(Some(d)) = client.recv().now_or_never() {
                if wanted(d.topic.as_str()) {
                    outlet.offer(d.topic.as_str(), &d.payload, d.qos as u8, d.retain);
                }
            }
            let _ = client.disconnect().await;
            let (files, user) = (web.files.clone(), login.user.clone());
            drop(tokio::spawn(async move {
                let mut tick = tokio::time::interval(STREAM_TICK);
                loop {
                    tokio::select! {
                        tapped = taps.recv() => match tapped {
                            Ok(m) => {
                                let topic = m.topic.as_str();
                                if wanted(topic)
                                    && files.allows_read(user.as_deref(), topic)
                                    && !outlet.offer(topic, &m.payload, m.qos as u8, m.retain)
                                {
                                    break;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => outlet.dropped += n,
                            Err(broadcast::error::RecvError::Closed) => break,
                        },
                        () = outlet.lines.closed() => break,
                        _ = tick.tick() => outlet.tick(),
                    }
                }
            }));
        }
    }
    let frames = futures_util::stream::unfold(stream, |mut stream| async move {
        let line = stream.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(line)), stream))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

/// The browser's end of a stream: at most [`STREAM_RATE`] messages a second, what does not fit
/// counted and reported every tick.
struct Outlet {
    lines: mpsc::Sender<Bytes>,
    dropped: u64,
    second: tokio::time::Instant,
    sent: u32,
    quiet_ticks: u32,
}

impl Outlet {
    fn new(lines: mpsc::Sender<Bytes>) -> Outlet {
        let _ = lines.try_send(Bytes::from_static(b": open\n\n"));
        Outlet {
            lines,
            dropped: 0,
            second: tokio::time::Instant::now(),
            sent: 0,
            quiet_ticks: 0,
        }
    }

    /// Sends one message, or counts it dropped; `false` once the browser is gone.
    fn offer(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> bool {
        if self.second.elapsed() >= Duration::from_secs(1) {
            (self.second, self.sent) = (tokio::time::Instant::now(), 0);
        }
        if self.sent >= STREAM_RATE {
            self.dropped += 1;
            return true;
        }
        self.sent += 1;
        let event = json!({"t": topic, "p": BASE64.encode(payload), "q": qos, "r": retain});
        match self
            .lines
            .try_send(Bytes::from(format!("data: {event}\n\n")))
        {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Reports what was dropped, or that the stream is alive when it has been quiet long.
    fn tick(&mut self) {
        self.quiet_ticks += 1;
        let note = if self.dropped > 0 {
            format!("event: dropped\ndata: {}\n\n", self.dropped)
        } else if self.quiet_ticks >= 15 {
            String::from(": alive\n\n")
        } else {
            return;
        };
        if self.lines.try_send(Bytes::from(note)).is_ok() {
            (self.dropped, self.quiet_ticks) = (0, 0);
        }
    }
}

/// `GET /api/clients`: every session, summarised.
async fn clients(web: &Web) -> Response<Body> {
    match web.handle.sessions().await {
        Ok(sessions) => {
            let list: Vec<Value> = sessions
                .iter()
                .map(|s| {
                    json!({
                        "id": s.client_id,
                        "connected": s.connected,
                        "address": s.peer.map(|p| p.to_string()),
                        "user": s.username,
                        "protocol": s.protocol,
                        "keep_alive": s.keep_alive,
                        "subscriptions": s.subscriptions.iter()
                            .map(|(f, q)| json!({"filter": f, "qos": q}))
                            .collect::<Vec<_>>(),
                        "queued": s.queued,
                        "inflight": s.inflight,
                    })
                })
                .collect();
            json_response(StatusCode::OK, &Value::Array(list))
        }
        Err(e) => refused(&e),
    }
}

/// `POST /api/publish` with `{"topic", "payload", "qos", "retain"}`, as the logged-in user.
async fn publish(web: &Web, request: Request<Incoming>, login: &Login) -> Response<Body> {
    let Some(body) = json_body(request).await else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "expected JSON"}));
    };
    let topic = body["topic"].as_str().unwrap_or_default().to_owned();
    let payload = body["payload"].as_str().unwrap_or_default().to_owned();
    let qos = match body["qos"].as_u64().unwrap_or(0) {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        2 => QoS::ExactlyOnce,
        _ => return json_response(StatusCode::BAD_REQUEST, &json!({"error": "QoS 0, 1 or 2"})),
    };
    let retain = body["retain"].as_bool().unwrap_or(false);
    let client = match connect(web, login, 1).await {
        Ok(client) => client,
        Err(e) => return refused(&e),
    };
    let published = client.publish(&topic, payload, qos, retain).await;
    let _ = client.disconnect().await;
    match published {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(e) => refused(&e),
    }
}

/// `POST /api/history` with `{"topic", "field"}`: the broker starts keeping the last hour of
/// that numeric JSON field (`ENERGY.Power`), read as the user who asked.
async fn follow(web: &Web, request: Request<Incoming>, login: &Login) -> Response<Body> {
    let Some(body) = json_body(request).await else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "expected JSON"}));
    };
    let topic = body["topic"].as_str().unwrap_or_default();
    let field = body["field"].as_str().unwrap_or_default();
    if topic.is_empty() || field.is_empty() || topic.contains(['+', '#']) {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "a topic name and a field"}),
        );
    }
    let client = match connect(web, login, CLIENT_CAPACITY).await {
        Ok(client) => client,
        Err(e) => return refused(&e),
    };
    match web.histories.follow(topic, field, client).await {
        Ok(()) => json_response(StatusCode::OK, &json!({})),
        Err(why) => json_response(StatusCode::FORBIDDEN, &json!({"error": why})),
    }
}

/// `GET /api/history?topic=T&field=F`: its points, `[milliseconds since 1970, value]`; without
/// a topic, the fields followed. Only for a user who may read the topic.
fn history(web: &Web, request: &Request<Incoming>, login: &Login) -> Response<Body> {
    let params = query_params(request.uri().query().unwrap_or_default());
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let user = login.user.as_deref();
    let (Some(topic), Some(field)) = (param("topic"), param("field")) else {
        let followed: Vec<Value> = web
            .histories
            .followed()
            .into_iter()
            .filter(|(topic, _)| web.files.allows_subscribe(user, topic))
            .map(|(topic, field)| json!({"topic": topic, "field": field}))
            .collect();
        return json_response(StatusCode::OK, &Value::Array(followed));
    };
    if !web.files.allows_subscribe(user, topic) {
        return json_response(StatusCode::FORBIDDEN, &json!({"error": "not readable"}));
    }
    match web.histories.points(topic, field) {
        Some(points) => json_response(StatusCode::OK, &json!(points)),
        None => json_response(StatusCode::NOT_FOUND, &json!({"error": "not followed"})),
    }
}

/// `POST /api/disconnect` with `{"client_id"}`.
async fn disconnect(web: &Web, request: Request<Incoming>) -> Response<Body> {
    let Some(body) = json_body(request).await else {
        return json_response(StatusCode::BAD_REQUEST, &json!({"error": "expected JSON"}));
    };
    let client_id = body["client_id"].as_str().unwrap_or_default();
    match web.handle.disconnect_client(client_id).await {
        Ok(found) => json_response(StatusCode::OK, &json!({"disconnected": found})),
        Err(e) => refused(&e),
    }
}

/// An in-process client connected as the page's user.
async fn connect(web: &Web, login: &Login, capacity: usize) -> Result<LocalClient, ServerError> {
    let mut options = LocalConnectOptions::new().capacity(capacity);
    if let (Some(user), Some(password)) = (&login.user, &login.password) {
        options = options.credentials(user, password.clone());
    }
    web.handle.connect("", options).await
}

/// A change carries the login's CSRF token, and comes from the page's own origin.
fn same_origin_change(request: &Request<Incoming>, login: &Login) -> bool {
    let token = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok());
    token == Some(login.csrf.as_str()) && origin_matches(request)
}

/// An `Origin` header, where a browser sends one, names this host.
fn origin_matches(request: &Request<Incoming>) -> bool {
    let Some(origin) = request.headers().get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser's cross-origin request: the token still has to match
    };
    let host = request.headers().get(HOST).and_then(|v| v.to_str().ok());
    let host_part = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    host.is_some() && host_part == host
}

fn set_cookie(response: &mut Response<Body>, token: &str, secure: bool) {
    let expires = if token.is_empty() { "; Max-Age=0" } else { "" };
    let secure = if secure { "; Secure" } else { "" };
    let value = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{expires}{secure}");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
}

async fn json_body(request: Request<Incoming>) -> Option<Value> {
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice(&body).ok()
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = whole(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The broker refused (a reason code), or is gone.
fn refused(error: &ServerError) -> Response<Body> {
    let status = match error {
        ServerError::Refused(_) => StatusCode::FORBIDDEN,
        ServerError::InvalidTopic => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    json_response(status, &json!({"error": error.to_string()}))
}

/// `key=value` pairs of a query string, `+` and `%XX` decoded.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        match byte {
            b'+' => {
                bytes.push(b' ');
                rest = after;
            }
            b'%' => {
                let value = after
                    .get(..2)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match value {
                    Some(value) => {
                        bytes.push(value);
                        rest = &after[2..];
                    }
                    None => {
                        bytes.push(b'%');
                        rest = after;
                    }
                }
            }
            _ => {
                bytes.push(byte);
                rest = after;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let params = query_params("filter=stat%2FSonoff*%2FPOWER&exclude=tele/%2B/SENSOR&x=a+b");
        assert_eq!(
            params,
            [
                ("filter".to_owned(), "stat/Sonoff*/POWER".to_owned()),
                ("exclude".to_owned(), "tele/+/SENSOR".to_owned()),
                ("x".to_owned(), "a b".to_owned()),
            ]
        );
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
