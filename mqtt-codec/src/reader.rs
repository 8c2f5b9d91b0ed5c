//! A bounds-checked cursor over one received frame. When the frame is shared [`Bytes`], every
//! field it returns as `Bytes` is a view into it (`Bytes::slice`), so decoding copies no
//! payload, topic or string; over a borrowed slice (in-place decoding) such a field is copied.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::frame::parse_vbi;
use crate::primitives::PacketId;
use crate::string::{MqttStr, validate};

/// `buf[start..end]` as `Bytes`: a view of `owner` (the shared buffer `buf` is the contents
/// of) when there is one, a copy otherwise.
#[inline]
pub(crate) fn view_or_copy(owner: Option<&Bytes>, buf: &[u8], start: usize, end: usize) -> Bytes {
    match owner {
        Some(owner) => owner.slice(start..end),
        None => Bytes::copy_from_slice(buf.get(start..end).unwrap_or_default()),
    }
}

/// Reads fields from `frame[pos..end]`.
pub(crate) struct Reader<'a> {
    frame: &'a [u8],
    /// The shared buffer `frame` is the contents of, when there is one.
    owner: Option<&'a Bytes>,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `frame[start..end]` whose `Bytes` fields are views into `frame`; the
    /// caller guarantees `start <= end <= frame.len()`.
    #[inline]
    pub(crate) fn new(frame: &'a Bytes, start: usize, end: usize) -> Self {
        Self {
            frame,
            owner: Some(frame),
            pos: start,
            end,
        }
    }

    /// A reader over `frame[start..end]` of a buffer the caller owns: `Bytes` fields are
    /// copies.
    #[inline]
    pub(crate) fn borrowed(frame: &'a [u8], start: usize, end: usize) -> Self {
        Self::over(frame, None, start, end)
    }

    /// A reader over `frame[start..end]` whose `Bytes` fields are views of `owner` when it is
    /// given (it must then be the buffer `frame` is the contents of), copies otherwise.
    #[inline]
    pub(crate) fn over(
        frame: &'a [u8],
        owner: Option<&'a Bytes>,
        start: usize,
        end: usize,
    ) -> Self {
        debug_assert!(owner.is_none_or(|owner| owner.as_ptr() == frame.as_ptr()));
        Self {
            frame,
            owner,
            pos: start,
            end,
        }
    }

    /// `frame[start..end]` as `Bytes`: a view of the shared buffer, or a copy.
    #[inline]
    fn bytes(&self, start: usize, end: usize) -> Bytes {
        view_or_copy(self.owner, self.frame, start, end)
    }

    /// Offset of the next byte in the frame.
    #[inline]
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left to read.
    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// The next byte, without consuming it.
    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.frame.get(self.pos..self.end)?.first().copied()
    }

    /// Whether everything has been read.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Fails with `TrailingBytes` unless everything has been read.
    #[inline]
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self
            .frame
            .get(self.pos..self.end)
            .and_then(<[u8]>::first_chunk::<N>)
            .ok_or(DecodeError::Truncated)?;
        self.pos += N;
        Ok(*bytes)
    }

    /// One byte.
    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian two-byte integer.
    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian four-byte integer.
    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A non-zero packet identifier [MQTT-2.3.1-1].
    #[inline]
    pub(crate) fn packet_id(&mut self) -> Result<PacketId, DecodeError> {
        PacketId::new(self.u16()?).ok_or(DecodeError::ZeroPacketId)
    }

    /// A Variable Byte Integer inside the packet (property length, subscription identifier).
    #[inline]
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let rest = self.frame.get(self.pos..self.end).unwrap_or_default();
        let (value, used) = parse_vbi(rest)
            .map_err(|_| DecodeError::MalformedVariableByteInteger)?
            .ok_or(DecodeError::Truncated)?;
        self.pos += used;
        Ok(value)
    }

    /// The next `len` bytes as a view.
    #[inline]
    pub(crate) fn take(&mut self, len: usize) -> Result<Bytes, DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let start = self.pos;
        self.pos += len;
        Ok(self.bytes(start, self.pos))
    }

    /// A reader over the next `len` bytes, which this reader skips.
    #[inline]
    pub(crate) fn sub(&mut self, len: usize) -> Result<Reader<'a>, DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let start = self.pos;
        self.pos += len;
        Ok(Reader {
            frame: self.frame,
            owner: self.owner,
            pos: start,
            end: self.pos,
        })
    }

    /// Two-byte length-prefixed raw bytes, not yet viewed as `Bytes`.
    #[inline]
    pub(crate) fn prefixed_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::from(self.u16()?);
        let frame: &'a [u8] = self.frame;
        let bytes = frame
            .get(self.pos..self.end)
            .and_then(|rest| rest.get(..len))
            .ok_or(DecodeError::Truncated)?;
        self.pos += len;
        Ok(bytes)
    }

    /// Binary Data: two-byte length, then the bytes.
    #[inline]
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A UTF-8 Encoded String, validated [MQTT-1.5.3-1/2].
    #[inline]
    pub(crate) fn string(&mut self) -> Result<MqttStr, DecodeError> {
        let len = usize::from(self.u16()?);
        if len > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        let start = self.pos;
        self.pos += len;
        let bytes = self.frame.get(start..self.pos).unwrap_or_default();
        validate(bytes)?;
        Ok(MqttStr::from_validated(self.bytes(start, self.pos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let frame = Bytes::from_static(&[0x00, 0x03, b'a', b'b']);
        let mut r = Reader::new(&frame, 0, frame.len());
        assert_eq!(r.string(), Err(DecodeError::Truncated));
        let mut r = Reader::new(&frame, 0, 3);
        assert_eq!(r.u16().unwrap(), 3);
        assert_eq!(r.u32(), Err(DecodeError::Truncated));
        assert_eq!(r.u8().unwrap(), b'a');
        assert!(r.finish().is_ok());
    }

    #[test]
    fn views_share_the_frame() {
        let frame = Bytes::from(vec![0x00, 0x02, b'h', b'i', 9, 9]);
        let mut r = Reader::new(&frame, 0, frame.len());
        let s = r.string().unwrap();
        assert_eq!(s, "hi");
        assert_eq!(s.as_bytes().as_ptr(), frame[2..].as_ptr());
        // Over a borrowed slice the same field is an equal copy.
        let mut r = Reader::borrowed(&frame, 0, frame.len());
        let s = r.string().unwrap();
        assert_eq!(s, "hi");
        assert_ne!(s.as_bytes().as_ptr(), frame[2..].as_ptr());
        assert_eq!(&r.take(2).unwrap()[..], &[9, 9]);
    }

    #[test]
    fn zero_packet_id_rejected() {
        // [MQTT-2.3.1-1]
        let frame = Bytes::from_static(&[0, 0]);
        assert_eq!(
            Reader::new(&frame, 0, 2).packet_id(),
            Err(DecodeError::ZeroPacketId)
        );
    }
}
