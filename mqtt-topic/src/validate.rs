//! The validation rules shared by topic names and topic filters: length,
//! UTF-8, U+0000, depth, and where wildcards may stand.

use crate::{TopicError, TopicLimits};

/// The level separator.
pub(crate) const SEPARATOR: u8 = b'/';
/// The single-level wildcard.
pub(crate) const SINGLE: u8 = b'+';
/// The multi-level wildcard.
pub(crate) const MULTI: u8 = b'#';

/// Whether the bytes to validate are already known to be UTF-8 (so the check is skipped).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Utf8 {
    /// Unknown: checked.
    Unchecked,
    /// Proven by a `&str` over the same bytes.
    Known,
}

/// Checks the rules common to names and filters [MQTT-4.7.3-1/2/3]
/// [MQTT-1.5.4-1], then the depth limit.
fn validate_common(bytes: &[u8], limits: &TopicLimits, utf8: Utf8) -> Result<(), TopicError> {
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > limits.effective_max_len() {
        return Err(TopicError::TooLong);
    }
    if utf8 == Utf8::Unchecked && std::str::from_utf8(bytes).is_err() {
        return Err(TopicError::InvalidUtf8);
    }
    if memchr::memchr(0, bytes).is_some() {
        return Err(TopicError::NullCharacter);
    }
    if limits.max_levels != usize::MAX {
        let levels = memchr::memchr_iter(SEPARATOR, bytes).count() + 1;
        if levels > limits.max_levels {
            return Err(TopicError::TooManyLevels);
        }
    }
    Ok(())
}

/// Validates a topic name: the common rules and no wildcard at all
/// [MQTT5-4.7.0-1].
pub(crate) fn validate_name(bytes: &[u8], limits: &TopicLimits) -> Result<(), TopicError> {
    validate_name_utf8(bytes, limits, Utf8::Unchecked)
}

/// [`validate_name`], with the UTF-8 check skipped when `utf8` is [`Utf8::Known`].
pub(crate) fn validate_name_utf8(
    bytes: &[u8],
    limits: &TopicLimits,
    utf8: Utf8,
) -> Result<(), TopicError> {
    validate_common(bytes, limits, utf8)?;
    if memchr::memchr2(SINGLE, MULTI, bytes).is_some() {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Validates a topic filter: the common rules, `#` only as the whole last
/// level [MQTT5-4.7.1-1], `+` only as a whole level [MQTT5-4.7.1-2].
pub(crate) fn validate_filter(bytes: &[u8], limits: &TopicLimits) -> Result<(), TopicError> {
    validate_common(bytes, limits, Utf8::Unchecked)?;
    for wildcard_at in memchr::memchr2_iter(SINGLE, MULTI, bytes) {
        let before_ok = wildcard_at == 0 || bytes.get(wildcard_at - 1) == Some(&SEPARATOR);
        let next = bytes.get(wildcard_at + 1);
        if bytes.get(wildcard_at) == Some(&MULTI) {
            if !before_ok || next.is_some() {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
        } else if !before_ok || !(next.is_none() || next == Some(&SEPARATOR)) {
            return Err(TopicError::PartialSingleLevelWildcard);
        }
    }
    Ok(())
}

/// How many bytes [`next_level`] scans itself before handing over to memchr.
const SHORT_LEVEL: usize = 16;

/// Splits off the level starting at `start`: returns the level and the start
/// of the next one, or `None` as the next start when this level is the last.
#[inline]
pub(crate) fn next_level(bytes: &[u8], start: usize) -> (&[u8], Option<usize>) {
    let rest = bytes.get(start..).unwrap_or_default();
    // Levels are usually short: a plain scan beats memchr's set-up there.
    let head = rest.get(..SHORT_LEVEL).unwrap_or(rest);
    let separator = match head.iter().position(|b| *b == SEPARATOR) {
        Some(at) => Some(at),
        None if rest.len() > SHORT_LEVEL => rest
            .get(SHORT_LEVEL..)
            .and_then(|tail| memchr::memchr(SEPARATOR, tail))
            .map(|at| at + SHORT_LEVEL),
        None => None,
    };
    match separator {
        Some(at) => (rest.get(..at).unwrap_or_default(), Some(start + at + 1)),
        None => (rest, None),
    }
}
