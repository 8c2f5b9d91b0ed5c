//! Frame boundaries: the fixed header (packet type, flags, remaining length) and the Variable
//! Byte Integer encoding it uses, read and written.

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;

/// The largest value a Variable Byte Integer can hold (four bytes).
pub(crate) const MAX_VBI: u32 = 268_435_455;

/// The largest possible MQTT packet: a five-byte fixed header plus the largest remaining length.
pub const MAX_PACKET_SIZE: u32 = MAX_VBI + 5;

/// A parsed fixed header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FixedHeader {
    /// First byte: packet type in the upper nibble, flags in the lower one.
    pub(crate) first_byte: u8,
    /// Remaining length: bytes after the fixed header.
    pub(crate) remaining_len: u32,
    /// Length of the fixed header itself (2 to 5 bytes).
    pub(crate) header_len: usize,
}

impl FixedHeader {
    /// Length of the whole frame.
    #[inline]
    pub(crate) fn frame_len(&self) -> usize {
        self.header_len + self.remaining_len as usize
    }
}

/// Parses the fixed header at the start of `buf`. `Ok(None)` means more bytes are needed; a
/// remaining length longer than four bytes is malformed.
#[inline]
pub(crate) fn parse_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    // Fast path: remaining lengths below 16 KiB take one or two bytes.
    if let [first_byte, len0, rest @ ..] = buf {
        if len0 & 0x80 == 0 {
            return Ok(Some(FixedHeader {
                first_byte: *first_byte,
                remaining_len: u32::from(*len0),
                header_len: 2,
            }));
        }
        if let [len1, ..] = rest
            && len1 & 0x80 == 0
        {
            return Ok(Some(FixedHeader {
                first_byte: *first_byte,
                remaining_len: u32::from(len0 & 0x7F) | (u32::from(*len1) << 7),
                header_len: 3,
            }));
        }
    }
    let Some((&first_byte, rest)) = buf.split_first() else {
        return Ok(None);
    };
    match parse_vbi(rest)? {
        Some((remaining_len, used)) => Ok(Some(FixedHeader {
            first_byte,
            remaining_len,
            header_len: 1 + used,
        })),
        None => Ok(None),
    }
}

/// Parses a Variable Byte Integer at the start of `buf`, returning the value and the number of
/// bytes used; `Ok(None)` if `buf` ends before the last byte of the integer.
#[inline]
pub(crate) fn parse_vbi(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::MalformedRemainingLength)
    } else {
        Ok(None)
    }
}

/// Number of bytes the Variable Byte Integer encoding of `value` takes.
#[inline]
pub(crate) const fn vbi_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` (at most [`MAX_VBI`]) as a Variable Byte Integer.
#[inline]
pub(crate) fn put_vbi(out: &mut BytesMut, value: u32) {
    let mut value = value;
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.put_u8(byte);
            return;
        }
        out.put_u8(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vbi_boundaries_round_trip() {
        for value in [
            0u32, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, MAX_VBI,
        ] {
            let mut out = BytesMut::new();
            put_vbi(&mut out, value);
            assert_eq!(out.len(), vbi_len(value as usize));
            assert_eq!(parse_vbi(&out).unwrap(), Some((value, out.len())));
        }
    }

    #[test]
    fn vbi_spec_examples() {
        // §1.5.5 / §2.2.3 table: 321 = 0xC1 0x02.
        assert_eq!(parse_vbi(&[0xC1, 0x02]).unwrap(), Some((321, 2)));
        assert_eq!(
            parse_vbi(&[0xFF, 0xFF, 0xFF, 0x7F]).unwrap(),
            Some((MAX_VBI, 4))
        );
    }

    #[test]
    fn vbi_longer_than_four_bytes_is_malformed() {
        assert_eq!(
            parse_vbi(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::MalformedRemainingLength)
        );
        assert_eq!(
            parse_vbi(&[0x80, 0x80, 0x80, 0x80]),
            Err(DecodeError::MalformedRemainingLength)
        );
    }

    #[test]
    fn partial_header_needs_more() {
        assert!(parse_fixed_header(&[]).unwrap().is_none());
        assert!(parse_fixed_header(&[0x30]).unwrap().is_none());
        assert!(parse_fixed_header(&[0x30, 0x80, 0x80]).unwrap().is_none());
        let h = parse_fixed_header(&[0x30, 0x80, 0x01]).unwrap().unwrap();
        assert_eq!(
            (h.remaining_len, h.header_len, h.frame_len()),
            (128, 3, 131)
        );
    }
}
