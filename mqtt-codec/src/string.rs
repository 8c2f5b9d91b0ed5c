//! `MqttStr`, a validated MQTT UTF-8 string that is a zero-copy view into received bytes, and the
//! validation rule itself: well-formed UTF-8 without U+0000 [MQTT-1.5.3-1/2] (v5: [MQTT-1.5.4-1/2]).

use core::borrow::Borrow;
use core::fmt;
use core::ops::Deref;

use bytes::Bytes;

use crate::error::DecodeError;

/// Checks the MQTT string rules: well-formed UTF-8 (surrogates are ill-formed in UTF-8, so
/// `from_utf8` rejects them) and no U+0000.
#[inline(always)]
pub(crate) fn validate(bytes: &[u8]) -> Result<(), DecodeError> {
    if is_ascii_without_nul(bytes) {
        return Ok(());
    }
    validate_exactly(bytes)
}

/// The exact check behind [`validate`]'s fast path, out of line: strings that are not plain
/// ASCII are rare in topics and identifiers.
#[inline(never)]
fn validate_exactly(bytes: &[u8]) -> Result<(), DecodeError> {
    if core::str::from_utf8(bytes).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    if memchr::memchr(0, bytes).is_some() {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

/// The fast path of [`validate`]: ASCII without NUL (every byte in 0x01..=0x7F) is always
/// valid. Eight bytes at a time; a word flags a high bit if it has a non-ASCII or a zero byte
/// (the zero-byte test may also flag some non-ASCII neighbours, which only sends the string to
/// the exact check).
#[inline(always)]
fn is_ascii_without_nul(bytes: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut flagged = 0u64;
    for chunk in &mut chunks {
        if let Some(word) = chunk.first_chunk::<8>() {
            let w = u64::from_le_bytes(*word);
            flagged |= w | (w.wrapping_sub(LOW) & !w);
        }
    }
    for &b in chunks.remainder() {
        flagged |= u64::from(b | b.wrapping_sub(1));
    }
    flagged & HIGH == 0
}

/// A validated MQTT UTF-8 string; a view into a received frame, so cloning only bumps a refcount.
///
/// Equality, ordering and hashing are those of the `str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MqttStr(Bytes);

impl MqttStr {
    /// Wraps bytes already checked by [`validate`].
    #[inline]
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// Builds a string from a constant.
    ///
    /// # Panics
    /// If `s` contains U+0000, which an MQTT string must not [MQTT-1.5.4-2]; constants are the
    /// caller's code, not peer input.
    #[must_use]
    pub fn from_static(s: &'static str) -> Self {
        assert!(
            !s.as_bytes().contains(&0),
            "MQTT strings must not contain U+0000"
        );
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The string.
    #[inline]
    #[must_use]
    pub fn as_str(&self) -> &str {
        // The bytes were validated at construction, so this never takes the fallback.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes.
    #[inline]
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying shared bytes.
    #[inline]
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rest of the string after `prefix`, sharing its bytes (no copy); `None` if it does not
    /// start with `prefix`.
    ///
    /// ```
    /// use mqtt_wire::MqttStr;
    ///
    /// let topic = MqttStr::from_static("tenant-a/cmnd/plug/POWER");
    /// assert_eq!(topic.strip_prefix("tenant-a/").unwrap(), "cmnd/plug/POWER");
    /// assert!(topic.strip_prefix("tenant-b/").is_none());
    /// ```
    #[must_use]
    pub fn strip_prefix(&self, prefix: &str) -> Option<MqttStr> {
        // A prefix that is a whole `str` ends on a character boundary of this one.
        self.as_str()
            .starts_with(prefix)
            .then(|| Self(self.0.slice(prefix.len()..)))
    }
}

impl Deref for MqttStr {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for MqttStr {
    /// See [`MqttStr::from_static`] (panics on U+0000).
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

impl TryFrom<Bytes> for MqttStr {
    type Error = DecodeError;

    fn try_from(bytes: Bytes) -> Result<Self, DecodeError> {
        validate(&bytes)?;
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for MqttStr {
    type Error = DecodeError;

    fn try_from(s: String) -> Result<Self, DecodeError> {
        if s.as_bytes().contains(&0) {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self(Bytes::from(s)))
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_1_5_4_1_ill_formed_and_surrogates_rejected() {
        // [MQTT-1.5.3-1] / [MQTT5-1.5.4-1]: a UTF-16 surrogate encoded as UTF-8 is ill-formed.
        assert_eq!(
            MqttStr::try_from(Bytes::from_static(b"\xED\xA0\x80")),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            MqttStr::try_from(Bytes::from_static(b"\xC3")),
            Err(DecodeError::InvalidUtf8)
        );
    }

    #[test]
    fn mqtt_1_5_4_2_nul_rejected() {
        // [MQTT-1.5.3-2] / [MQTT5-1.5.4-2]
        assert_eq!(
            MqttStr::try_from(Bytes::from_static(b"a\0b")),
            Err(DecodeError::NullCharacter)
        );
        assert_eq!(
            MqttStr::try_from(String::from("a\0")),
            Err(DecodeError::NullCharacter)
        );
    }

    #[test]
    fn mqtt_1_5_4_3_bom_kept() {
        // [MQTT-1.5.3-3] / [MQTT5-1.5.4-3]: U+FEFF is kept, not stripped.
        let s = MqttStr::try_from(Bytes::from_static(b"\xEF\xBB\xBFx")).unwrap();
        assert_eq!(s.as_str(), "\u{FEFF}x");
    }

    #[test]
    fn fast_path_finds_nul_and_non_ascii_anywhere() {
        // [MQTT-1.5.3-2]: a NUL at every position of strings of every length up to 24.
        for len in 1..24 {
            for at in 0..len {
                let mut s = vec![b'a'; len];
                s[at] = 0;
                assert_eq!(validate(&s), Err(DecodeError::NullCharacter), "{len} {at}");
                s[at] = 0xFF;
                assert_eq!(validate(&s), Err(DecodeError::InvalidUtf8), "{len} {at}");
                s[at] = 0x7F;
                assert_eq!(validate(&s), Ok(()));
            }
        }
    }

    #[test]
    fn behaves_like_str() {
        let s = MqttStr::from_static("a/b");
        assert_eq!(&*s, "a/b");
        assert_eq!(s, "a/b");
        assert_eq!(s.to_string(), "a/b");
        assert_eq!(format!("{s:?}"), "\"a/b\"");
        assert_eq!(s.len(), 3);
        assert!(MqttStr::default().is_empty());
    }
}
