//! What a client certificate says about its client: the subject's common name
//! (`use_identity_as_username`) or the whole subject as an RFC 2253 string, as OpenSSL prints it
//! for mosquitto's `use_subject_as_username` (`CN=plug-7,O=Home Lab,C=DE`). Read from the DER
//! with a small bounded parser that never panics on bad input.

use std::fmt::Write as _;

/// OID 2.5.4.3 (commonName), DER-encoded.
const COMMON_NAME_OID: &[u8] = &[0x55, 0x04, 0x03];

/// The attribute types OpenSSL prints by short name, DER-encoded OID first; others print as
/// their dotted OID with the value in hex.
const SHORT_NAMES: &[(&[u8], &str)] = &[
    (COMMON_NAME_OID, "CN"),
    (&[0x55, 0x04, 0x04], "SN"),
    (&[0x55, 0x04, 0x05], "serialNumber"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x09], "street"),
    (&[0x55, 0x04, 0x0A], "O"),
    (&[0x55, 0x04, 0x0B], "OU"),
    (&[0x55, 0x04, 0x0C], "title"),
    (&[0x55, 0x04, 0x2A], "GN"),
    (&[0x55, 0x04, 0x2B], "initials"),
    (&[0x55, 0x04, 0x2E], "dnQualifier"),
    (
        &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19],
        "DC",
    ),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01],
        "UID",
    ),
];

/// The subject common name of a DER certificate, if it has one (the last, if several).
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let mut found = None;
    for rdn in rdns(subject(der)?) {
        for (oid, tag, value) in rdn? {
            if oid == COMMON_NAME_OID {
                found = Some(text(tag, value)?);
            }
        }
    }
    found
}

/// The subject of a DER certificate as RFC 2253 prints it (OpenSSL's `XN_FLAG_RFC2253`, what
/// mosquitto's `use_subject_as_username` uses): the last RDN first, RDNs separated by `,`,
/// attributes of one RDN by `+`, special characters escaped with `\`, bytes above 0x7F as
/// `\XX`, unknown attribute types as dotted OID `=#` hex DER.
pub(crate) fn subject_rfc2253(der: &[u8]) -> Option<String> {
    let mut printed = Vec::new();
    for rdn in rdns(subject(der)?) {
        let mut attributes = Vec::new();
        for (oid, tag, value) in rdn? {
            let mut out = String::new();
            match SHORT_NAMES.iter().find(|(known, _)| *known == oid) {
                Some((_, name)) => {
                    out.push_str(name);
                    out.push('=');
                    escape(&mut out, &text(tag, value)?);
                }
                None => {
                    out.push_str(&dotted(oid)?);
                    out.push_str("=#");
                    let _ = write!(out, "{:02X}", tag);
                    push_hex(&mut out, &der_length(value.len()));
                    push_hex(&mut out, value);
                }
            }
            attributes.push(out);
        }
        printed.push(attributes.join("+"));
    }
    printed.reverse();
    Some(printed.join(","))
}

/// The subject Name of a certificate: its contents (the sequence of RDN sets).
fn subject(der: &[u8]) -> Option<&[u8]> {
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
    let (_, subject, _) = read_tlv(rest).filter(|(tag, _, _)| *tag == 0x30)?;
    Some(subject)
}

/// One attribute of an RDN: its type OID, the value's tag and the value's contents.
type Attribute<'a> = (&'a [u8], u8, &'a [u8]);

/// The RDNs of a Name in order, each as its attributes (`None` where the DER is broken).
fn rdns(mut name: &[u8]) -> impl Iterator<Item = Option<Vec<Attribute<'_>>>> {
    std::iter::from_fn(move || {
        if name.is_empty() {
            return None;
        }
        let Some((_, mut set, next)) = read_tlv(name) else {
            name = &[];
            return Some(None);
        };
        name = next;
        let mut attributes = Vec::new();
        while !set.is_empty() {
            let Some((_, attribute, next)) = read_tlv(set) else {
                return Some(None);
            };
            set = next;
            let Some((0x06, oid, value)) = read_tlv(attribute) else {
                return Some(None);
            };
            let Some((tag, value, _)) = read_tlv(value) else {
                return Some(None);
            };
            attributes.push((oid, tag, value));
        }
        Some(Some(attributes))
    })
}

/// A string value as text: UTF-8 and the 8-bit string types as they are, BMPString (UCS-2)
/// decoded.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // BMPString: big-endian UTF-16 code units.
        0x1E => {
            let units: Vec<u16> = value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        // Latin-1 strings (T61String and the like): each byte is its code point.
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        _ => Some(String::from_utf8_lossy(value).into_owned()),
    }
}

/// Appends `value` escaped as RFC 2253 wants it, the way OpenSSL does.
fn escape(out: &mut String, value: &str) {
    let last = value.len().saturating_sub(1);
    for (index, ch) in value.char_indices() {
        let special = matches!(ch, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (index == 0 && matches!(ch, '#' | ' '))
            || (index == last && ch == ' ');
        if special {
            out.push('\\');
            out.push(ch);
        } else if ch.is_ascii_control() || !ch.is_ascii() {
            let mut bytes = [0; 4];
            for byte in ch.encode_utf8(&mut bytes).bytes() {
                let _ = write!(out, "\\{byte:02X}");
            }
        } else {
            out.push(ch);
        }
    }
}

/// An OID's contents in dotted form (`1.2.840.113549.1.9.1`).
fn dotted(oid: &[u8]) -> Option<String> {
    let (&first, rest) = oid.split_first()?;
    let mut out = format!("{}.{}", first / 40, first % 40);
    let mut value: u64 = 0;
    for &byte in rest {
        value = value.checked_mul(128)? | u64::from(byte & 0x7F);
        if byte & 0x80 == 0 {
            let _ = write!(out, ".{value}");
            value = 0;
        }
    }
    Some(out)
}

/// The DER length octets of a length.
fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for byte in bytes {
        let _ = write!(out, "{byte:02X}");
    }
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

    fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut attribute = tlv(0x06, oid);
        attribute.extend(tlv(tag, value));
        tlv(0x30, &attribute)
    }

    /// A Name of RDNs, each a set of attributes.
    fn name(rdns: &[&[Attribute<'_>]]) -> Vec<u8> {
        let mut out = Vec::new();
        for rdn in rdns {
            let set: Vec<u8> = rdn
                .iter()
                .flat_map(|(oid, tag, value)| attribute(oid, *tag, value))
                .collect();
            out.extend(tlv(0x31, &set));
        }
        tlv(0x30, &out)
    }

    fn certificate(subject: Vec<u8>) -> Vec<u8> {
        let mut tbs = tlv(0xA0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[0x01, 0x02]));
        tbs.extend(tlv(0x30, &tlv(0x06, &[0x2A, 0x86, 0x48])));
        tbs.extend(name(&[&[(COMMON_NAME_OID, 0x0C, b"Issuer CA")]]));
        tbs.extend(tlv(0x30, &[0u8; 200]));
        tbs.extend(subject);
        let mut cert = tlv(0x30, &tbs);
        cert.extend(tlv(0x30, &[]));
        tlv(0x30, &cert)
    }

    const C: &[u8] = &[0x55, 0x04, 0x06];
    const O: &[u8] = &[0x55, 0x04, 0x0A];
    const OU: &[u8] = &[0x55, 0x04, 0x0B];

    #[test]
    fn finds_the_subject_common_name() {
        let cert = certificate(name(&[
            &[(C, 0x13, b"DE")],
            &[(COMMON_NAME_OID, 0x0C, b"sensor-7")],
        ]));
        assert_eq!(common_name(&cert).as_deref(), Some("sensor-7"));
    }

    #[test]
    fn the_subject_prints_last_rdn_first_as_openssl_does() {
        let cert = certificate(name(&[
            &[(C, 0x13, b"DE")],
            &[(O, 0x0C, b"Home Lab")],
            &[(OU, 0x0C, b"plugs"), (COMMON_NAME_OID, 0x0C, b"plug-7")],
        ]));
        assert_eq!(
            subject_rfc2253(&cert).as_deref(),
            Some("OU=plugs+CN=plug-7,O=Home Lab,C=DE")
        );
    }

    #[test]
    fn special_characters_are_escaped_as_rfc_2253_wants() {
        let cert = certificate(name(&[&[(
            COMMON_NAME_OID,
            0x0C,
            " a,b+c\"d\\e<f>g;h#".as_bytes(),
        )]]));
        assert_eq!(
            subject_rfc2253(&cert).as_deref(),
            Some(r#"CN=\ a\,b\+c\"d\\e\<f\>g\;h#"#)
        );
        let cert = certificate(name(&[&[(COMMON_NAME_OID, 0x0C, "#Küche ".as_bytes())]]));
        assert_eq!(
            subject_rfc2253(&cert).as_deref(),
            Some(r"CN=\#K\C3\BCche\ ")
        );
    }

    #[test]
    fn unknown_attribute_types_print_as_oid_and_hex() {
        let cert = certificate(name(&[&[(
            &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37],
            0x0C,
            b"x",
        )]]));
        assert_eq!(
            subject_rfc2253(&cert).as_deref(),
            Some("1.3.6.1.4.1.311=#0C0178")
        );
    }

    #[test]
    fn truncated_or_garbage_input_gives_none() {
        let cert = certificate(name(&[&[(COMMON_NAME_OID, 0x0C, b"x")]]));
        for len in 0..cert.len() {
            let _ = common_name(&cert[..len]);
            let _ = subject_rfc2253(&cert[..len]);
        }
        assert_eq!(common_name(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        assert_eq!(common_name(b"not a certificate"), None);
        assert_eq!(subject_rfc2253(b"not a certificate"), None);
    }
}
