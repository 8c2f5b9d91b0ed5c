//! TLS names as mosquitto (OpenSSL) spells them, mapped onto what rustls offers: the protocol
//! versions a listener allows and the cipher suites of `ciphers` / `ciphers_tls1.3`. A name
//! with no rustls equivalent is an error naming it, never silently dropped.

use tokio_rustls::rustls::CipherSuite;

/// OpenSSL's names of the TLS 1.2 suites rustls implements (all ECDHE with AEAD), and the
/// IANA names OpenSSL uses for the TLS 1.3 suites.
const SUITES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// The suites of a colon-separated OpenSSL list (`ciphers` for TLS 1.2, `ciphers_tls1.3` for
/// TLS 1.3: `tls13` says which). Keywords and exclusions (`HIGH`, `!aNULL`) are refused: name
/// the suites.
pub(crate) fn cipher_suites(list: &str, tls13: bool) -> Result<Vec<CipherSuite>, String> {
    let mut suites = Vec::new();
    for name in list.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let suite = SUITES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, suite)| suite)
            .filter(|suite| is_tls13(*suite) == tls13)
            .ok_or_else(|| {
                let names: Vec<&str> = SUITES
                    .iter()
                    .filter(|(_, s)| is_tls13(*s) == tls13)
                    .map(|(n, _)| *n)
                    .collect();
                format!(
                    "cipher `{name}` has no rustls equivalent; name suites of: {}",
                    names.join(", ")
                )
            })?;
        suites.push(suite);
    }
    if suites.is_empty() {
        return Err(String::from("no cipher suite named"));
    }
    Ok(suites)
}

fn is_tls13(suite: CipherSuite) -> bool {
    matches!(
        suite,
        CipherSuite::TLS13_AES_128_GCM_SHA256
            | CipherSuite::TLS13_AES_256_GCM_SHA384
            | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    )
}

/// Whether a `tls_version` value allows TLS 1.2 (`tlsv1.2`: 1.2 and 1.3, rustls' minimum) or
/// only 1.3 (`tlsv1.3`).
pub(crate) fn allows_tls12(version: &str) -> Result<bool, String> {
    match version {
        "tlsv1.2" => Ok(true),
        "tlsv1.3" => Ok(false),
        "tlsv1.1" | "tlsv1" => Err(format!(
            "tls_version `{version}`: TLS before 1.2 is not supported (rustls)"
        )),
        _ => Err(format!(
            "tls_version `{version}`: expected tlsv1.2 or tlsv1.3"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasmotas_suite_maps_and_keywords_are_refused() {
        assert_eq!(
            cipher_suites("ECDHE-RSA-AES128-GCM-SHA256", false),
            Ok(vec![CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256])
        );
        assert_eq!(
            cipher_suites(
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
                false
            )
            .map(|s| s.len()),
            Ok(2)
        );
        let refused = cipher_suites("HIGH:!aNULL", false).unwrap_err();
        assert!(
            refused.contains("`HIGH` has no rustls equivalent"),
            "{refused}"
        );
        assert!(
            cipher_suites("AES128-SHA", false).is_err(),
            "no RSA key exchange"
        );
        assert!(
            cipher_suites("TLS_AES_128_GCM_SHA256", false).is_err(),
            "a 1.3 suite"
        );
        assert_eq!(
            cipher_suites("TLS_AES_256_GCM_SHA384", true),
            Ok(vec![CipherSuite::TLS13_AES_256_GCM_SHA384])
        );
        assert!(cipher_suites("", true).is_err());
        assert_eq!(allows_tls12("tlsv1.2"), Ok(true));
        assert_eq!(allows_tls12("tlsv1.3"), Ok(false));
        assert!(allows_tls12("tlsv1.1").is_err());
    }
}
