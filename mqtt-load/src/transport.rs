//! [`Transport`]: how a client reaches the broker (TCP, TLS, WebSocket, WebSocket over TLS),
//! and [`Stream`], the connected byte stream every scenario and mode reads and writes without
//! knowing which of the four it is.
//!
//! TLS is rustls with the *ring* provider: the server is verified against `--cafile` (or the
//! system's CA bundle), or not at all with `--insecure`; a client certificate is offered with
//! `--cert`/`--key`; `--tls-version` and `--ciphers` narrow what the client offers. Sessions are
//! resumed (rustls's in-memory cache, shared by every client of a run) unless
//! `--no-tls-resume` asks for a full handshake on every connection; the transport counts the
//! handshakes that were resumptions. WebSocket
//! offers the `mqtt` subprotocol and carries MQTT in binary messages (MQTT 5.0 §6).

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::{Sink, Stream as _};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, HandshakeKind, SignatureScheme, SupportedCipherSuite,
};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::error::LoadError;

/// Where the system keeps its bundle of trusted CA certificates, tried in order when no
/// `--cafile` is given (after `$SSL_CERT_FILE`).
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// OpenSSL's names of the suites rustls offers, accepted by `--ciphers` besides the IANA ones.
const OPENSSL_NAMES: [(&str, &str); 9] = [
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS13_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// The TLS protocol version `--tls-version` pins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 only.
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

/// What the TLS options ask for, before the files are read.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// PEM file of the CA certificates that may sign the broker's certificate; `None`: the
    /// system's bundle.
    pub cafile: Option<PathBuf>,
    /// PEM file of the client certificate chain (with `key`).
    pub cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key: Option<PathBuf>,
    /// Accept any server certificate (the handshake signature is still checked).
    pub insecure: bool,
    /// Offer only this protocol version.
    pub version: Option<TlsVersion>,
    /// Offer only these cipher suites (IANA or OpenSSL names); empty: all of rustls's.
    pub ciphers: Vec<String>,
    /// The name the broker's certificate must carry; default the host connected to.
    pub server_name: Option<String>,
    /// Never resume a TLS session: every connection makes a full handshake. By default
    /// (`false`) the clients of a run share rustls's in-memory session cache and resume
    /// (TLS 1.3 tickets, TLS 1.2 session ids or tickets) where the broker allows it.
    pub no_resumption: bool,
}

/// How every client of a run reaches the broker: plain or TLS, raw MQTT or WebSocket.
#[derive(Clone)]
pub struct Transport {
    tls: Option<(TlsConnector, ServerName<'static>)>,
    websocket_path: Option<String>,
    /// TLS handshakes of this transport (and its clones) that resumed a session.
    resumed: Arc<AtomicU64>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("tls", &self.tls.as_ref().map(|(_, name)| name))
            .field("websocket_path", &self.websocket_path)
            .field("resumed", &self.resumed_handshakes())
            .finish()
    }
}

impl Transport {
    /// Plain TCP.
    #[must_use]
    pub fn tcp() -> Self {
        Self {
            tls: None,
            websocket_path: None,
            resumed: Arc::default(),
        }
    }

    /// A transport for `host`: TLS when `tls` is given, WebSocket on `websocket_path` when
    /// one is given (both: WebSocket over TLS).
    ///
    /// # Errors
    /// A file cannot be read or holds no usable certificate or key, a cipher suite name is
    /// unknown, or the suites and version leave nothing to offer.
    pub fn new(
        host: &str,
        tls: Option<&TlsOptions>,
        websocket_path: Option<&str>,
    ) -> Result<Self, LoadError> {
        let tls = match tls {
            Some(options) => {
                let name = options.server_name.as_deref().unwrap_or(host);
                let server_name = ServerName::try_from(name.to_owned())
                    .map_err(|_| LoadError::Options(format!("invalid TLS server name {name:?}")))?;
                Some((
                    TlsConnector::from(Arc::new(tls_config(options)?)),
                    server_name,
                ))
            }
            None => None,
        };
        let websocket_path = match websocket_path {
            Some(path) if !path.starts_with('/') => {
                return Err(LoadError::Options(format!(
                    "the WebSocket path {path:?} must start with '/'"
                )));
            }
            path => path.map(str::to_owned),
        };
        Ok(Self {
            tls,
            websocket_path,
            resumed: Arc::default(),
        })
    }

    /// Whether the connections use TLS.
    #[must_use]
    pub const fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// How many TLS handshakes so far resumed an earlier session instead of making a full
    /// handshake (0 without TLS, or with [`TlsOptions::no_resumption`]).
    #[must_use]
    pub fn resumed_handshakes(&self) -> u64 {
        self.resumed.load(Ordering::Relaxed)
    }

    /// The URL scheme of this transport: `mqtt`, `mqtts`, `ws` or `wss`.
    #[must_use]
    pub const fn scheme(&self) -> &'static str {
        match (self.tls.is_some(), self.websocket_path.is_some()) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        }
    }

    /// Connects to `addr` (from `source` when given), then runs the TLS and WebSocket
    /// handshakes this transport needs. `host` names the broker in the WebSocket request.
    ///
    /// # Errors
    /// The TCP connection, the TLS handshake or the WebSocket upgrade fails.
    pub async fn open(
        &self,
        host: &str,
        addr: SocketAddr,
        source: Option<IpAddr>,
    ) -> Result<Stream, LoadError> {
        let tcp = connect_tcp(addr, source).await?;
        tcp.set_nodelay(true)?;
        match (&self.tls, &self.websocket_path) {
            (None, None) => Ok(Stream::Tcp(tcp)),
            (None, Some(path)) => {
                let ws = upgrade(tcp, "ws", host, addr.port(), path).await?;
                Ok(Stream::Ws(Box::new(ws)))
            }
            (Some((connector, name)), None) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                self.count_resumption(&tls);
                Ok(Stream::Tls(Box::new(tls)))
            }
            (Some((connector, name)), Some(path)) => {
                let tls = connector.connect(name.clone(), tcp).await?;
                self.count_resumption(&tls);
                let ws = upgrade(tls, "wss", host, addr.port(), path).await?;
                Ok(Stream::Wss(Box::new(ws)))
            }
        }
    }
}

impl Transport {
    /// Counts the handshake of `tls` if it resumed a session.
    fn count_resumption(&self, tls: &TlsStream<TcpStream>) {
        if tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed) {
            self.resumed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Connects to `addr`, from `source` (any port) when one is given.
async fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, LoadError> {
    let Some(source) = source else {
        return Ok(TcpStream::connect(addr).await?);
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket.connect(addr).await?)
}

/// The WebSocket upgrade on `stream`, offering the `mqtt` subprotocol.
async fn upgrade<S>(
    stream: S,
    scheme: &str,
    host: &str,
    port: u16,
    path: &str,
) -> Result<WsIo<S>, LoadError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut request = format!("{scheme}://{host}:{port}{path}")
        .into_client_request()
        .map_err(|e| LoadError::WebSocket(e.to_string()))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (ws, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| LoadError::WebSocket(e.to_string()))?;
    Ok(WsIo {
        ws,
        pending: Bytes::new(),
    })
}

/// The rustls client configuration the options describe.
fn tls_config(options: &TlsOptions) -> Result<rustls::ClientConfig, LoadError> {
    let base = ring::default_provider();
    let cipher_suites = select_ciphers(&options.ciphers, &base.cipher_suites)?;
    let provider = Arc::new(CryptoProvider {
        cipher_suites,
        ..base
    });
    let versions: &[&rustls::SupportedProtocolVersion] = match options.version {
        Some(TlsVersion::V1_2) => &[&rustls::version::TLS12],
        Some(TlsVersion::V1_3) => &[&rustls::version::TLS13],
        None => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| LoadError::Tls(format!("{e} (check --tls-version against --ciphers)")))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let bundle = match &options.cafile {
            Some(file) => file.clone(),
            None => system_ca_bundle()?,
        };
        for cert in read_certificates(&bundle)? {
            roots
                .add(cert)
                .map_err(|e| LoadError::Tls(format!("{}: {e}", bundle.display())))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| LoadError::Tls(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| LoadError::Tls(format!("client certificate: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(LoadError::Options(
                "--cert and --key go together".to_owned(),
            ));
        }
    };
    if options.no_resumption {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(config)
}

/// The suites named in `names` (IANA or OpenSSL names, any case), in that order; every suite
/// of `available` when `names` is empty.
///
/// # Errors
/// A name that is not one of `available`'s.
fn select_ciphers(
    names: &[String],
    available: &[SupportedCipherSuite],
) -> Result<Vec<SupportedCipherSuite>, LoadError> {
    if names.is_empty() {
        return Ok(available.to_vec());
    }
    let iana = |suite: &SupportedCipherSuite| format!("{:?}", suite.suite());
    names
        .iter()
        .map(|name| {
            let wanted = name.trim().to_ascii_uppercase();
            let wanted = OPENSSL_NAMES
                .iter()
                .find(|(openssl, _)| *openssl == wanted)
                .map_or(wanted.as_str(), |(_, iana)| iana);
            available
                .iter()
                .find(|suite| iana(suite) == wanted)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<String> = available.iter().map(iana).collect();
                    LoadError::Options(format!(
                        "unknown cipher suite {name:?}; known: {}",
                        known.join(", ")
                    ))
                })
        })
        .collect()
}

/// The system's CA bundle: `$SSL_CERT_FILE` or the first of [`SYSTEM_CA_BUNDLES`] that exists.
fn system_ca_bundle() -> Result<PathBuf, LoadError> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            LoadError::Options(
                "TLS without --cafile needs the system's CA bundle, and none was found; \
                 give --cafile (or --insecure for a test broker)"
                    .to_owned(),
            )
        })
}

/// Every certificate of a PEM file (at least one).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| LoadError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(LoadError::Tls(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// `--insecure`: any certificate is taken for the broker's, but the handshake signatures are
/// still checked against it (so the session keys belong to whoever holds its key).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connected byte stream to the broker, whatever the transport.
#[derive(Debug)]
#[non_exhaustive]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
    /// WebSocket over TCP.
    Ws(Box<WsIo<TcpStream>>),
    /// WebSocket over TLS.
    Wss(Box<WsIo<TlsStream<TcpStream>>>),
}

impl Stream {
    /// Whether the broker has not closed the stream: nothing to read, or bytes to read, but
    /// no end of stream and no error. Never waits.
    pub fn is_open(&mut self) -> bool {
        let mut probe = [0u8; 64];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(self).poll_read(&mut cx, &mut buf) {
            Poll::Pending => true,
            Poll::Ready(Ok(())) => !buf.filled().is_empty(),
            Poll::Ready(Err(_)) => false,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Ws(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Self::Wss(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A WebSocket connection seen as a byte stream: each write becomes one binary message, and
/// reads return the bytes of binary messages in order (MQTT packets may span messages).
#[derive(Debug)]
pub struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    pending: Bytes,
}

fn ws_error(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        e => io::Error::other(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        loop {
            if !me.pending.is_empty() {
                let n = me.pending.len().min(buf.remaining());
                buf.put_slice(&me.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut me.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(bytes))) => me.pending = bytes,
                // The end of the stream, as a TCP close would be.
                None
                | Some(Ok(Message::Close(_)))
                | Some(Err(
                    tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                )) => return Poll::Ready(Ok(())),
                // Pings are answered by tungstenite; text is not MQTT [MQTT-6.0.0-1].
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a text WebSocket message",
                    )));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        ready!(Pin::new(&mut me.ws).poll_ready(cx)).map_err(ws_error)?;
        Pin::new(&mut me.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(ws_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(ws_error)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().ws).poll_close(cx)) {
            Ok(())
            | Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(ws_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_are_checked() {
        let available = ring::default_provider().cipher_suites;
        let chosen = select_ciphers(
            &[
                "TLS13_AES_128_GCM_SHA256".to_owned(),
                "ecdhe-rsa-aes128-gcm-sha256".to_owned(),
            ],
            &available,
        )
        .unwrap();
        let names: Vec<String> = chosen.iter().map(|s| format!("{:?}", s.suite())).collect();
        assert_eq!(
            names,
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert_eq!(select_ciphers(&[], &available).unwrap().len(), 9);
        let unknown = select_ciphers(&["RC4-MD5".to_owned()], &available).unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("unknown cipher suite \"RC4-MD5\"")
        );
    }

    #[test]
    fn version_and_suites_must_overlap() {
        let options = TlsOptions {
            insecure: true,
            version: Some(TlsVersion::V1_2),
            ciphers: vec!["TLS13_AES_128_GCM_SHA256".to_owned()],
            ..TlsOptions::default()
        };
        assert!(matches!(tls_config(&options), Err(LoadError::Tls(_))));
        let options = TlsOptions {
            cert: Some("client.pem".into()),
            insecure: true,
            ..TlsOptions::default()
        };
        assert!(matches!(tls_config(&options), Err(LoadError::Options(_))));
        assert!(Transport::new("localhost", None, Some("mqtt")).is_err());
        let ws = Transport::new("localhost", None, Some("/mqtt")).unwrap();
        assert_eq!(ws.scheme(), "ws");
    }
}
