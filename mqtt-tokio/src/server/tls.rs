//! TLS for a listener: the rustls server configuration built from PEM files (ring provider),
//! with the protocol versions and cipher suites the listener allows, optional client-certificate
//! verification against a CA file and revocation lists, reloaded on SIGHUP, and the client
//! identity that `use_identity_as_username` (the certificate's common name) or
//! `use_subject_as_username` (its whole subject) turns into the user name.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{
    RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion, version,
};

use super::certificate::{common_name, subject_rfc2253};
use crate::config::{ListenerConfig, tls_names};

/// Builds the TLS acceptor of a listener whose `certfile` and `keyfile` are set.
/// The TLS side of one listener, reloadable: SIGHUP re-reads its certificate, key, CA and
/// CRL files (a renewed certificate takes effect for the next connections, the open ones keep
/// theirs); a reload that fails keeps what was there.
pub(crate) struct Tls {
    settings: ListenerConfig,
    current: RwLock<TlsAcceptor>,
}

impl Tls {
    /// The listener's TLS side, or `None` for a plain listener.
    pub(crate) fn new(settings: &ListenerConfig) -> Result<Option<Tls>, String> {
        Ok(acceptor(settings)?.map(|acceptor| Tls {
            settings: settings.clone(),
            current: RwLock::new(acceptor),
        }))
    }

    /// What handshakes the next connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The identity of the client that presented `certificate` (DER): its subject as RFC 2253
    /// prints it with `use_subject_as_username` (unless `use_identity_as_username` is also set,
    /// which wins, as in mosquitto), else its common name.
    pub(crate) fn identity(&self, certificate: &[u8]) -> Option<String> {
        let settings = &self.settings;
        if settings.use_subject_as_username && !settings.use_identity_as_username {
            subject_rfc2253(certificate)
        } else {
            common_name(certificate)
        }
    }

    /// Reads the files again; the problem, if they cannot be used (the old ones stay).
    pub(crate) fn reload(&self) -> Result<(), String> {
        let acceptor = acceptor(&self.settings)?.ok_or("no certificate configured")?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = acceptor;
        Ok(())
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("certfile", &self.settings.certfile)
            .finish_non_exhaustive()
    }
}

fn acceptor(listener: &ListenerConfig) -> Result<Option<TlsAcceptor>, String> {
    let (Some(certfile), Some(keyfile)) = (&listener.certfile, &listener.keyfile) else {
        return Ok(None);
    };
    let certs = read_certs(certfile)?;
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .map_err(|e| format!("keyfile {}: {e}", keyfile.display()))?;
    let provider = Arc::new(provider(listener)?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(protocol_versions(listener.tls_version.as_deref())?)
        .map_err(|e| e.to_string())?;
    let roots = ca_roots(listener.cafile.as_deref(), listener.capath.as_deref())?;
    let builder = match roots {
        Some(roots) => {
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if let Some(crlfile) = &listener.crlfile {
                let crls = CertificateRevocationListDer::pem_file_iter(crlfile)
                    .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("crlfile {}: {e}", crlfile.display()))?;
                if crls.is_empty() {
                    return Err(format!("crlfile {}: no CRL found", crlfile.display()));
                }
                verifier = verifier.with_crls(crls);
            }
            let verifier = if listener.require_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("certfile {}: {e}", certfile.display()))?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// The TLS versions a `tls_version` value allows (`tlsv1.2`, the default: 1.2 and 1.3;
/// `tlsv1.3`: 1.3 only), for listeners and bridges alike.
pub(crate) fn protocol_versions(
    tls_version: Option<&str>,
) -> Result<&'static [&'static SupportedProtocolVersion], String> {
    let allows_tls12 = match tls_version {
        Some(version) => tls_names::allows_tls12(version)?,
        None => true,
    };
    static BOTH: [&SupportedProtocolVersion; 2] = [&version::TLS13, &version::TLS12];
    static ONLY_13: [&SupportedProtocolVersion; 1] = [&version::TLS13];
    Ok(if allows_tls12 { &BOTH } else { &ONLY_13 })
}

/// rustls' cryptography with the cipher suites the listener allows (`ciphers` for TLS 1.2,
/// `ciphers_tls13` for TLS 1.3; each unrestricted when not given).
fn provider(listener: &ListenerConfig) -> Result<CryptoProvider, String> {
    let mut provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let tls12 = (listener.ciphers.as_deref())
        .map(|list| tls_names::cipher_suites(list, false))
        .transpose()?;
    let tls13 = (listener.ciphers_tls13.as_deref())
        .map(|list| tls_names::cipher_suites(list, true))
        .transpose()?;
    provider.cipher_suites.retain(|supported| {
        let allowed = match supported {
            SupportedCipherSuite::Tls12(_) => &tls12,
            SupportedCipherSuite::Tls13(_) => &tls13,
        };
        allowed
            .as_ref()
            .is_none_or(|suites| suites.contains(&supported.suite()))
    });
    Ok(provider)
}

/// The CA certificates peer certificates are checked against (clients of a listener, the
/// remote broker of a bridge): `cafile`'s and those of the files in `capath` (every file
/// holding PEM certificates: OpenSSL's hashed names, `.pem`, `.crt`; other files are passed
/// over). `None` when neither is set.
pub(crate) fn ca_roots(
    cafile: Option<&Path>,
    capath: Option<&Path>,
) -> Result<Option<RootCertStore>, String> {
    if cafile.is_none() && capath.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    let mut add = |path: &Path, certs: Vec<CertificateDer<'static>>| {
        certs.into_iter().try_for_each(|cert| {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))
        })
    };
    if let Some(cafile) = cafile {
        add(
            cafile,
            read_certs(cafile).map_err(|e| format!("cafile {e}"))?,
        )?;
    }
    if let Some(capath) = capath {
        let entries =
            std::fs::read_dir(capath).map_err(|e| format!("capath {}: {e}", capath.display()))?;
        let mut found = false;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("capath {}: {e}", capath.display()))?
                .path();
            if !path.is_file() {
                continue;
            }
            if let Ok(certs) = read_certs(&path) {
                found = true;
                add(&path, certs)?;
            }
        }
        if !found {
            return Err(format!("capath {}: no certificate found", capath.display()));
        }
    }
    Ok(Some(roots))
}

pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}
