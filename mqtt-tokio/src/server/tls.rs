//! TLS for a listener: the rustls server configuration built from PEM files (ring provider),
//! with the protocol versions and cipher suites the listener allows, optional client-certificate
//! verification against a CA file and revocation lists, reloaded on SIGHUP, and the client
//! identity (the certificate's common name) that `use_identity_as_username` turns into the user
//! name.

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
    let allows_tls12 = match &listener.tls_version {
        Some(version) => tls_names::allows_tls12(version)?,
        None => true,
    };
    let versions: &[&SupportedProtocolVersion] = if allows_tls12 {
        &[&version::TLS13, &version::TLS12]
    } else {
        &[&version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &listener.cafile {
        Some(cafile) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(cafile)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("cafile {}: {e}", cafile.display()))?;
            }
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

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// OID 2.5.4.3 (commonName), DER-encoded.
const COMMON_NAME_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The subject common name of a DER certificate, if it has one. Never panics on bad input.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, certificate, _) = read_tlv(der).filter(|(tag, _, _)| *tag == 0x30)?;
    let (_, tbs, _) = read_tlv(certificate).filter(|(tag, _, _)| *tag == 0x30)?;
    let mut rest = tbs;
    // Optional [0] version, then serial, signature algorithm, issuer, validity, subject.
    let (tag, _, after) = read_tlv(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = read_tlv(rest)?.2;
    }
    let (_, mut subject, _) = read_tlv(rest).filter(|(tag, _, _)| *tag == 0x30)?;
    let mut found = None;
    while !subject.is_empty() {
        let (_, set, next) = read_tlv(subject)?;
        subject = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, next) = read_tlv(attributes)?;
            attributes = next;
            let (oid_tag, oid, value) = read_tlv(attribute)?;
            if oid_tag == 0x06 && oid == COMMON_NAME_OID {
                let (_, text, _) = read_tlv(value)?;
                found = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    found
}

/// Splits one DER element off `input`: (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = input.split_at_checked(count)?;
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, rest) = input.split_at_checked(len)?;
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(contents);
        out
    }

    fn name(cn: &str) -> Vec<u8> {
        let mut attribute = tlv(0x06, COMMON_NAME_OID);
        attribute.extend(tlv(0x0C, cn.as_bytes()));
        let mut country = tlv(0x06, &[0x55, 0x04, 0x06]);
        country.extend(tlv(0x13, b"DE"));
        let mut rdns = tlv(0x31, &tlv(0x30, &country));
        rdns.extend(tlv(0x31, &tlv(0x30, &attribute)));
        tlv(0x30, &rdns)
    }

    fn certificate(subject_cn: &str) -> Vec<u8> {
        let mut tbs = tlv(0xA0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[0x01, 0x02]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[0x2A, 0x86, 0x48])));
        tbs.extend(name("Issuer CA"));
        tbs.extend(tlv(0x30, &[0u8; 200]));
        tbs.extend(name(subject_cn));
        let mut cert = tlv(0x30, &tbs);
        cert.extend(tlv(0x30, &[]));
        tlv(0x30, &cert)
    }

    #[test]
    fn finds_the_subject_common_name() {
        assert_eq!(
            common_name(&certificate("sensor-7")).as_deref(),
            Some("sensor-7")
        );
    }

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        let cert = certificate("x");
        for len in 0..cert.len() {
            let _ = common_name(&cert[..len]);
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(common_name(b"not a certificate"), None);
    }
}
