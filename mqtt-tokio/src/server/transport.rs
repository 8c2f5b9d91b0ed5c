//! The two shapes of connection the server speaks over: a byte stream (TCP, TLS) and a
//! WebSocket carrying the MQTT byte stream in binary messages. Both are reduced to a
//! [`ByteSource`] (what arrives, as `Bytes`) and a [`ByteSink`] (chunks to write, vectored where
//! the stream allows), so one connection driver serves them all.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// Where received bytes come from.
pub(crate) trait ByteSource: Send {
    /// The next bytes, `None` at the end of the stream.
    fn read(&mut self) -> impl Future<Output = io::Result<Option<Bytes>>> + Send;
}

/// Where bytes to send go.
pub(crate) trait ByteSink: Send {
    /// Writes every chunk, in order.
    fn write(&mut self, chunks: &[Bytes]) -> impl Future<Output = io::Result<()>> + Send;
    /// Ends the stream (TCP FIN, TLS close_notify, WebSocket close).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Largest read of a byte stream.
const READ_CHUNK: usize = 16 * 1024;
/// Smallest heap read of a byte stream.
const MIN_READ: usize = 512;
/// Size of the first, on-stack read of a quiet connection.
const QUIET_READ: usize = 128;

/// The read half of a byte stream. A quiet connection waits for input with no buffer at all
/// (it reads into a small stack buffer once input is there, and what arrives is copied out); a read that comes back
/// full switches to heap reads, which start at [`MIN_READ`], double while they come back full
/// (up to [`READ_CHUNK`]) and shrink again when they come back mostly empty. So thousands of
/// idle or chatty-but-small clients do not each hold a read buffer.
pub(crate) struct StreamSource<R> {
    reader: R,
    buf: BytesMut,
    want: usize,
}

impl<R> StreamSource<R> {
    pub(crate) fn new(reader: R) -> Self {
        StreamSource {
            reader,
            buf: BytesMut::new(),
            want: QUIET_READ,
        }
    }
}

impl<R: AsyncRead + Unpin + Send> ByteSource for StreamSource<R> {
    async fn read(&mut self) -> io::Result<Option<Bytes>> {
        if self.want == QUIET_READ {
            // The small buffer lives only during each poll, not in the waiting future: a read
            // that is not ready reads nothing (the `AsyncRead` contract).
            let reader = &mut self.reader;
            let quiet = std::future::poll_fn(|cx| {
                let mut quiet = [0u8; QUIET_READ];
                let mut buf = ReadBuf::new(&mut quiet);
                match Pin::new(&mut *reader).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(Bytes::copy_from_slice(buf.filled()))),
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                    Poll::Pending => Poll::Pending,
                }
            });
            let data = quiet.await?;
            if data.len() == QUIET_READ {
                self.want = MIN_READ; // more may be waiting: read it into the heap next time
            }
            return Ok(Some(data).filter(|d| !d.is_empty()));
        }
        self.buf.reserve(self.want);
        let room = self.buf.capacity() - self.buf.len();
        let n = self.reader.read_buf(&mut self.buf).await?;
        self.want = if n >= room {
            (self.want * 2).min(READ_CHUNK)
        } else if n < self.want / 4 {
            if self.want == MIN_READ {
                QUIET_READ
            } else {
                self.want / 2
            }
        } else {
            self.want
        };
        if n == 0 {
            return Ok(None);
        }
        let data = self.buf.split().freeze();
        if self.want == QUIET_READ
            || (self.want == MIN_READ && self.buf.capacity() > READ_CHUNK / 4)
        {
            // Quiet again, or back to small reads: the heap buffer goes with the last data.
            self.buf = BytesMut::new();
        }
        Ok(Some(data))
    }
}

/// The write half of a byte stream.
pub(crate) struct StreamSink<W>(pub(crate) W);

impl<W: AsyncWrite + Unpin + Send> ByteSink for StreamSink<W> {
    async fn write(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        let mut index = 0;
        let mut offset = 0;
        while index < chunks.len() {
            let written = {
                let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(chunks.len() - index);
                if let Some(first) = chunks.get(index).and_then(|c| c.get(offset..)) {
                    slices.push(IoSlice::new(first));
                }
                slices.extend(chunks.iter().skip(index + 1).map(|c| IoSlice::new(c)));
                self.0.write_vectored(&slices).await?
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // Advance over what was written.
            let mut left = written;
            while left > 0 {
                let Some(chunk) = chunks.get(index) else {
                    break;
                };
                let rest = chunk.len() - offset;
                if left >= rest {
                    left -= rest;
                    index += 1;
                    offset = 0;
                } else {
                    offset += left;
                    left = 0;
                }
            }
        }
        self.0.flush().await
    }

    async fn close(&mut self) {
        let _ = self.0.shutdown().await;
    }
}

/// The receiving half of a WebSocket: binary messages are MQTT bytes.
pub(crate) struct WsSource<S>(pub(crate) SplitStream<WebSocketStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteSource for WsSource<S> {
    async fn read(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.0.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(data))) => return Ok(Some(data)),
                // MQTT over WebSocket is binary only [MQTT-6.0.0-1].
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message [MQTT-6.0.0-1]",
                    ));
                }
                Some(Ok(_)) => {} // ping, pong: answered by tungstenite
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }
}

/// The sending half of a WebSocket: each batch of chunks goes out as one binary message.
pub(crate) struct WsSink<S>(pub(crate) SplitSink<WebSocketStream<S>, Message>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteSink for WsSink<S> {
    async fn write(&mut self, chunks: &[Bytes]) -> io::Result<()> {
        let message = match chunks {
            [one] => one.clone(),
            many => {
                let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                many.iter().for_each(|c| joined.extend_from_slice(c));
                joined.freeze()
            }
        };
        self.0
            .send(Message::Binary(message))
            .await
            .map_err(io::Error::other)
    }

    async fn close(&mut self) {
        let _ = self.0.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn vectored_writes_survive_short_writes() {
        // A duplex pipe with a tiny buffer forces many partial writes.
        let (client, server) = tokio::io::duplex(3);
        let chunks = vec![
            Bytes::from_static(b"hello "),
            Bytes::from_static(b""),
            Bytes::from_static(b"vectored "),
            Bytes::from_static(b"world"),
        ];
        let writer = tokio::spawn(async move {
            let mut sink = StreamSink(server);
            sink.write(&chunks).await.unwrap();
            sink.close().await;
        });
        let mut source = StreamSource::new(client);
        let mut got = Vec::new();
        while let Some(bytes) = source.read().await.unwrap() {
            got.extend_from_slice(&bytes);
        }
        writer.await.unwrap();
        assert_eq!(got, b"hello vectored world");
    }

    #[tokio::test]
    async fn reads_grow_under_load_and_a_quiet_connection_holds_no_buffer() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut source = StreamSource::new(server);
        client.write_all(&[1; 100]).await.unwrap();
        assert_eq!(source.read().await.unwrap().unwrap().len(), 100);
        assert_eq!((source.want, source.buf.capacity()), (QUIET_READ, 0));
        let burst: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        client.write_all(&burst).await.unwrap();
        let mut got = Vec::new();
        while got.len() < burst.len() {
            got.extend_from_slice(&source.read().await.unwrap().unwrap());
        }
        assert_eq!(got, burst);
        assert!(source.want > MIN_READ, "reads grew: {}", source.want);
        for _ in 0..8 {
            client.write_all(&[2; 10]).await.unwrap();
            assert_eq!(source.read().await.unwrap().unwrap().len(), 10);
        }
        assert_eq!((source.want, source.buf.capacity()), (QUIET_READ, 0));
    }
}
