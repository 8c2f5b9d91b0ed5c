//! The two shapes of connection the server speaks over: a byte stream (TCP, TLS) and a
//! WebSocket carrying the MQTT byte stream in binary messages. Both are one [`Transport`],
//! polled for what arrives (as `Bytes`) and for writing chunks (vectored where the stream
//! allows), so one connection task serves them all without splitting the stream in two.

use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use std::future::Future as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// A connection's stream, read and written by one task.
pub(crate) trait Transport: Send + Unpin {
    /// The next bytes received, `None` at the end of the stream.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>>;
    /// Writes `chunks` from `progress` on and flushes them; `progress` is kept by the caller
    /// from one poll to the next while the write is pending.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        chunks: &[Bytes],
        progress: &mut Progress,
    ) -> Poll<io::Result<()>>;
    /// Ends the stream (TCP FIN, TLS close_notify, WebSocket close), ignoring failures.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// How far the write of a batch of chunks has come.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Chunks written whole (or, for a WebSocket, handed over).
    chunk: usize,
    /// Bytes written of the next chunk.
    offset: usize,
}

impl Progress {
    /// What is left of `chunks` to write, as slices for one vectored write.
    fn rest<'a>(&self, chunks: &'a [Bytes]) -> Vec<IoSlice<'a>> {
        let first = chunks.get(self.chunk).and_then(|c| c.get(self.offset..));
        let later = chunks.iter().skip(self.chunk + 1).map(|c| &c[..]);
        first.into_iter().chain(later).map(IoSlice::new).collect()
    }

    /// Moves past `written` bytes of `chunks`.
    fn advance(&mut self, chunks: &[Bytes], mut written: usize) {
        while written > 0 {
            let Some(chunk) = chunks.get(self.chunk) else {
                return;
            };
            let rest = chunk.len() - self.offset;
            if written >= rest {
                written -= rest;
                self.chunk += 1;
                self.offset = 0;
            } else {
                self.offset += written;
                written = 0;
            }
        }
    }
}

/// Largest read of a byte stream.
const READ_CHUNK: usize = 16 * 1024;
/// Smallest heap read of a byte stream.
const MIN_READ: usize = 512;
/// Size of the stack buffer a quiet connection reads into.
const QUIET_READ: usize = 128;

/// A byte stream (TCP, TLS). A quiet connection waits for input with no buffer at all: once
/// input is there it is read into a small stack buffer and copied out. A read that comes back
/// full switches to heap reads, which start at [`MIN_READ`], double while they come back full
/// (up to [`READ_CHUNK`]) and shrink again when they come back mostly empty. So thousands of
/// idle or chatty-but-small clients do not each hold a read buffer.
pub(crate) struct ByteStream<S> {
    stream: S,
    buf: BytesMut,
    want: usize,
}

impl<S> ByteStream<S> {
    pub(crate) fn new(stream: S) -> Self {
        ByteStream {
            stream,
            buf: BytesMut::new(),
            want: QUIET_READ,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ByteStream<S> {
    /// A quiet read: the buffer lives only during this poll (a read that is not ready reads
    /// nothing: the `AsyncRead` contract).
    fn poll_quiet_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut quiet = [0u8; QUIET_READ];
        let mut buf = ReadBuf::new(&mut quiet);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut buf))?;
        let data = buf.filled();
        if data.len() == QUIET_READ {
            self.want = MIN_READ; // more may be waiting: read it into the heap next time
        }
        Poll::Ready(Ok((!data.is_empty()).then(|| Bytes::copy_from_slice(data))))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for ByteStream<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if self.want == QUIET_READ {
            return self.poll_quiet_read(cx);
        }
        self.buf.reserve(self.want);
        let room = self.buf.capacity() - self.buf.len();
        // tokio's `read_buf` future keeps nothing between polls: made, polled once, dropped.
        let n = ready!(pin!(self.stream.read_buf(&mut self.buf)).poll(cx))?;
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
            return Poll::Ready(Ok(None));
        }
        let data = self.buf.split().freeze();
        if self.want == QUIET_READ
            || (self.want == MIN_READ && self.buf.capacity() > READ_CHUNK / 4)
        {
            // Quiet again, or back to small reads: the heap buffer goes with the last data.
            self.buf = BytesMut::new();
        }
        Poll::Ready(Ok(Some(data)))
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        chunks: &[Bytes],
        progress: &mut Progress,
    ) -> Poll<io::Result<()>> {
        while progress.chunk < chunks.len() {
            let slices = progress.rest(chunks);
            let written = ready!(Pin::new(&mut self.stream).poll_write_vectored(cx, &slices))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            progress.advance(chunks, written);
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.stream).poll_shutdown(cx).map(drop)
    }
}

/// A WebSocket whose binary messages carry the MQTT byte stream.
pub(crate) struct WebSocket<S>(pub(crate) WebSocketStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for WebSocket<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        loop {
            let read = match ready!(self.0.poll_next_unpin(cx)) {
                None | Some(Ok(Message::Close(_))) => Ok(None),
                Some(Ok(Message::Binary(data))) => Ok(Some(data)),
                // MQTT over WebSocket is binary only [MQTT-6.0.0-1].
                Some(Ok(Message::Text(_))) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "text WebSocket message [MQTT-6.0.0-1]",
                )),
                Some(Ok(_)) => continue, // ping, pong: answered by tungstenite
                Some(Err(e)) => Err(io::Error::other(e)),
            };
            return Poll::Ready(read);
        }
    }

    /// Each batch of chunks goes out as one binary message.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        chunks: &[Bytes],
        progress: &mut Progress,
    ) -> Poll<io::Result<()>> {
        if progress.chunk < chunks.len() {
            ready!(self.0.poll_ready_unpin(cx)).map_err(io::Error::other)?;
            let message = match chunks {
                [one] => one.clone(),
                many => {
                    let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                    many.iter().for_each(|c| joined.extend_from_slice(c));
                    joined.freeze()
                }
            };
            self.0
                .start_send_unpin(Message::Binary(message))
                .map_err(io::Error::other)?;
            progress.chunk = chunks.len();
        }
        self.0.poll_flush_unpin(cx).map_err(io::Error::other)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.0.poll_close_unpin(cx).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(transport: &mut impl Transport) -> io::Result<Option<Bytes>> {
        std::future::poll_fn(|cx| transport.poll_read(cx)).await
    }

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
            let mut stream = ByteStream::new(server);
            let mut progress = Progress::default();
            std::future::poll_fn(|cx| stream.poll_write(cx, &chunks, &mut progress))
                .await
                .unwrap();
            std::future::poll_fn(|cx| stream.poll_close(cx)).await;
            stream
        });
        let mut reader = ByteStream::new(client);
        let mut got = Vec::new();
        while let Some(bytes) = read(&mut reader).await.unwrap() {
            got.extend_from_slice(&bytes);
        }
        drop(writer.await.unwrap());
        assert_eq!(got, b"hello vectored world");
    }

    #[tokio::test]
    async fn reads_grow_under_load_and_a_quiet_connection_holds_no_buffer() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut source = ByteStream::new(server);
        client.write_all(&[1; 100]).await.unwrap();
        assert_eq!(read(&mut source).await.unwrap().unwrap().len(), 100);
        assert_eq!((source.want, source.buf.capacity()), (QUIET_READ, 0));
        let burst: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        client.write_all(&burst).await.unwrap();
        let mut got = Vec::new();
        while got.len() < burst.len() {
            got.extend_from_slice(&read(&mut source).await.unwrap().unwrap());
        }
        assert_eq!(got, burst);
        assert!(source.want > MIN_READ, "reads grew: {}", source.want);
        for _ in 0..8 {
            client.write_all(&[2; 10]).await.unwrap();
            assert_eq!(read(&mut source).await.unwrap().unwrap().len(), 10);
        }
        assert_eq!((source.want, source.buf.capacity()), (QUIET_READ, 0));
    }

    #[test]
    fn progress_moves_across_chunks() {
        let chunks = [Bytes::from_static(b"ab"), Bytes::from_static(b"cde")];
        let mut progress = Progress::default();
        progress.advance(&chunks, 1);
        assert_eq!((progress.chunk, progress.offset), (0, 1));
        progress.advance(&chunks, 3);
        assert_eq!((progress.chunk, progress.offset), (1, 2));
        progress.advance(&chunks, 1);
        assert_eq!((progress.chunk, progress.offset), (2, 0));
    }
}
