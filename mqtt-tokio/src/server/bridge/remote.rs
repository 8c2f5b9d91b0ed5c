//! The bridge's transport to its remote broker: TCP, or TLS with rustls (the same library and
//! CA handling as the listeners), from an optional local address.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error as TlsError, SignatureScheme,
};

use crate::config::BridgeConfig;
use crate::server::tls::{ca_roots, protocol_versions, read_certs};

/// A connection to the remote broker.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// How the bridge reaches its remote broker: the TLS settings read once at start (a bad file
/// stops the start, as for a listener).
pub(super) struct Connector {
    tls: Option<TlsConnector>,
    bind: Option<SocketAddr>,
}

impl Connector {
    /// Reads the bridge's TLS files.
    pub(super) fn new(bridge: &BridgeConfig) -> Result<Connector, String> {
        let bind = match &bridge.bridge_bind_address {
            Some(address) => Some(SocketAddr::new(
                address
                    .parse()
                    .map_err(|_| format!("bridge_bind_address `{address}`: not an IP address"))?,
                0,
            )),
            None => None,
        };
        let tls = if bridge.is_tls() {
            Some(TlsConnector::from(Arc::new(client_config(bridge)?)))
        } else {
            None
        };
        Ok(Connector { tls, bind })
    }

    /// Connects to `host:port`.
    pub(super) async fn connect(&self, host: &str, port: u16) -> std::io::Result<Stream> {
        let tcp = match self.bind {
            None => TcpStream::connect((host, port)).await?,
            Some(bind) => {
                let mut last = None;
                let mut connected = None;
                for address in tokio::net::lookup_host((host, port)).await? {
                    let socket = if address.is_ipv4() {
                        TcpSocket::new_v4()?
                    } else {
                        TcpSocket::new_v6()?
                    };
                    socket.bind(bind)?;
                    match socket.connect(address).await {
                        Ok(stream) => {
                            connected = Some(stream);
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                connected.ok_or_else(|| {
                    last.unwrap_or_else(|| std::io::Error::other("no address to connect to"))
                })?
            }
        };
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(connector) => {
                let name = ServerName::try_from(host.to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let stream = connector.connect(name, tcp).await?;
                Ok(Stream::Tls(Box::new(stream)))
            }
        }
    }
}

/// rustls' client side: the remote certificate verified against `bridge_cafile` /
/// `bridge_capath` (for the host name too, unless `bridge_insecure`), a client certificate
/// when one is given, the TLS versions `bridge_tls_version` allows, `bridge_alpn`.
fn client_config(bridge: &BridgeConfig) -> Result<ClientConfig, String> {
    let roots = ca_roots(
        bridge.bridge_cafile.as_deref(),
        bridge.bridge_capath.as_deref(),
    )?
    .ok_or("bridge TLS needs bridge_cafile or bridge_capath")?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(protocol_versions(bridge.bridge_tls_version.as_deref())?)
        .map_err(|e| e.to_string())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let builder = if bridge.bridge_insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    } else {
        builder.with_webpki_verifier(verifier)
    };
    let mut config = match (&bridge.bridge_certfile, &bridge.bridge_keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let certs = read_certs(certfile).map_err(|e| format!("bridge_certfile {e}"))?;
            let key = PrivateKeyDer::from_pem_file(keyfile)
                .map_err(|e| format!("bridge_keyfile {}: {e}", keyfile.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("bridge_certfile {}: {e}", certfile.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    if let Some(alpn) = &bridge.bridge_alpn {
        config.alpn_protocols = vec![alpn.as_bytes().to_vec()];
    }
    Ok(config)
}

/// `bridge_insecure`: the chain is verified, the name in it is not compared with the host.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
