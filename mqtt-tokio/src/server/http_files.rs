//! mosquitto's `http_dir`: a WebSocket listener also answers plain HTTP `GET` and `HEAD`
//! requests with the files of one directory (say, the page of a browser MQTT client), and hands
//! a WebSocket upgrade on to the handshake together with the bytes already read.
//!
//! Only files below the directory are served: the path is percent-decoded, `..` segments are
//! refused and the resolved file (symbolic links followed) must lie inside the directory. The
//! request head is bounded; files are streamed, never held whole in memory.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};

/// Largest request head (request line and headers) read; a larger one gets 431.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The directory a listener serves.
#[derive(Debug)]
pub(crate) struct HttpDir {
    /// Canonical: resolved files are compared against it.
    root: PathBuf,
}

impl HttpDir {
    /// The directory at `path`, which must exist.
    pub(crate) fn new(path: &Path) -> Result<HttpDir, String> {
        let root = path
            .canonicalize()
            .map_err(|e| format!("http_dir {}: {e}", path.display()))?;
        if !root.is_dir() {
            return Err(format!("http_dir {}: not a directory", path.display()));
        }
        Ok(HttpDir { root })
    }

    /// Reads the request head from `stream`: a WebSocket upgrade comes back as the stream with
    /// the bytes read put back in front; any other request is answered (a file, or an error
    /// status) and the connection is done (`None`).
    pub(crate) async fn serve_or_upgrade<S>(&self, mut stream: S) -> io::Result<Option<Replay<S>>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut head = BytesMut::with_capacity(1024);
        let end = loop {
            if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
                break end + 4;
            }
            if head.len() >= MAX_REQUEST_HEAD {
                return respond(&mut stream, 431, "Request Header Fields Too Large", None)
                    .await
                    .map(|()| None);
            }
            if stream.read_buf(&mut head).await? == 0 {
                return Ok(None);
            }
        };
        let request = std::str::from_utf8(&head[..end])
            .ok()
            .and_then(Request::parse);
        let Some(request) = request else {
            return respond(&mut stream, 400, "Bad Request", None)
                .await
                .map(|()| None);
        };
        if request.upgrade {
            return Ok(Some(Replay::new(head.freeze(), stream)));
        }
        let head_only = match request.method {
            "GET" => false,
            "HEAD" => true,
            _ => {
                return respond(&mut stream, 405, "Method Not Allowed", None)
                    .await
                    .map(|()| None);
            }
        };
        match self.file(request.path).await {
            Some((file, len, path)) => {
                let headers = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {len}\r\n\
                     Connection: close\r\n\r\n",
                    content_type(&path)
                );
                stream.write_all(headers.as_bytes()).await?;
                if !head_only {
                    tokio::io::copy(&mut file.take(len), &mut stream).await?;
                }
                stream.flush().await?;
                stream.shutdown().await?;
            }
            None => respond(&mut stream, 404, "Not Found", Some(head_only)).await?,
        }
        Ok(None)
    }

    /// `path` with symbolic links resolved, if it exists and lies inside the directory (a
    /// link may not lead out of it).
    async fn inside(&self, path: PathBuf) -> Option<PathBuf> {
        let resolved = tokio::fs::canonicalize(path).await.ok()?;
        resolved.starts_with(&self.root).then_some(resolved)
    }

    /// The file a request path names, opened, with its length and resolved path; `None` if
    /// there is none inside the directory.
    async fn file(&self, path: &str) -> Option<(tokio::fs::File, u64, PathBuf)> {
        let relative = relative_path(path)?;
        let mut resolved = self.inside(self.root.join(&relative)).await?;
        if tokio::fs::metadata(&resolved).await.ok()?.is_dir() {
            resolved = self.inside(resolved.join("index.html")).await?;
        }
        let file = tokio::fs::File::open(&resolved).await.ok()?;
        let metadata = file.metadata().await.ok()?;
        metadata
            .is_file()
            .then_some((file, metadata.len(), resolved))
    }
}

/// What the server needs of a request head.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    /// `Upgrade: websocket` was asked for.
    upgrade: bool,
}

impl<'a> Request<'a> {
    fn parse(head: &'a str) -> Option<Request<'a>> {
        let mut lines = head.split("\r\n");
        let mut words = lines.next()?.split(' ');
        let (method, target, version) = (words.next()?, words.next()?, words.next()?);
        if words.next().is_some() || !version.starts_with("HTTP/1.") {
            return None;
        }
        let upgrade = lines
            .filter_map(|line| line.split_once(':'))
            .any(|(name, value)| {
                name.trim().eq_ignore_ascii_case("upgrade")
                    && value
                        .split(',')
                        .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
            });
        let path = target.split(['?', '#']).next().unwrap_or_default();
        Some(Request {
            method,
            path,
            upgrade,
        })
    }
}

/// A request path as a relative path below the directory: percent-decoded, `/` for the
/// directory's index. `None` for a path that is not absolute, names a parent (`..`), or holds
/// a NUL or a backslash.
fn relative_path(path: &str) -> Option<PathBuf> {
    let rest = path.strip_prefix('/')?;
    let decoded = percent_decode(rest)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            _ if segment.contains(['\0', '\\']) => return None,
            _ => relative.push(segment),
        }
    }
    if decoded.is_empty() || decoded.ends_with('/') {
        relative.push("index.html");
    }
    Some(relative)
}

/// `%XX` escapes decoded; `None` for a broken escape or text that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let hex = after.get(..2)?;
            let value = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            bytes.push(value);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok()
}

/// The media type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Answers with an error status and closes. `head_only`: the request was `HEAD` (no body);
/// `None` when the request could not be read that far.
async fn respond<S>(
    stream: &mut S,
    status: u16,
    reason: &str,
    head_only: Option<bool>,
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    let body = format!("{status} {reason}\n");
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if head_only != Some(true) {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

/// A stream with bytes already read from it put back in front: reads return them first.
#[derive(Debug)]
pub(crate) struct Replay<S> {
    front: Bytes,
    inner: S,
}

impl<S> Replay<S> {
    /// `inner` with `front` to be read again before it.
    pub(crate) fn new(front: Bytes, inner: S) -> Self {
        Replay { front, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.front.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.front.len().min(buf.remaining());
        buf.put_slice(&self.front[..n]);
        self.front.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_read_as_a_server_needs_them() {
        let get = Request::parse("GET /app/index.html?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(
            (get.method, get.path, get.upgrade),
            ("GET", "/app/index.html", false)
        );
        let ws = Request::parse(
            "GET /mqtt HTTP/1.1\r\nConnection: Upgrade\r\nupgrade: WebSocket\r\n\r\n",
        )
        .unwrap();
        assert!(ws.upgrade);
        assert_eq!(Request::parse("GET /\r\n\r\n"), None);
        assert_eq!(Request::parse("GET / SPDY/3\r\n\r\n"), None);
    }

    #[test]
    fn paths_stay_below_the_directory() {
        assert_eq!(relative_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(relative_path("/a/"), Some(PathBuf::from("a/index.html")));
        assert_eq!(relative_path("/a/b.js"), Some(PathBuf::from("a/b.js")));
        assert_eq!(
            relative_path("/K%C3%BCche.txt"),
            Some(PathBuf::from("Küche.txt"))
        );
        assert_eq!(relative_path("/./a//b"), Some(PathBuf::from("a/b")));
        for escape in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/a%00b",
            "/a\\b",
            "x",
            "/%zz",
        ] {
            assert_eq!(relative_path(escape), None, "{escape}");
        }
    }

    #[tokio::test]
    async fn replayed_bytes_come_before_the_stream() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut replay = Replay::new(Bytes::from_static(b"hello"), server);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }

    async fn ask(dir: &HttpDir, request: &str) -> (String, bool) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        client.write_all(request.as_bytes()).await.unwrap();
        let upgraded = dir.serve_or_upgrade(server).await.unwrap().is_some();
        let mut response = String::new();
        if !upgraded {
            client.read_to_string(&mut response).await.unwrap();
        }
        (response, upgraded)
    }

    #[tokio::test]
    async fn files_are_served_and_everything_else_refused() {
        let root = std::env::temp_dir().join(format!("http_files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("www/app")).unwrap();
        std::fs::write(root.join("www/index.html"), "<h1>broker</h1>").unwrap();
        std::fs::write(root.join("www/app/main.js"), "let x = 1;").unwrap();
        std::fs::write(root.join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("www/link")).unwrap();
        let dir = HttpDir::new(&root.join("www")).unwrap();

        let (index, _) = ask(&dir, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
        assert!(index.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(index.ends_with("\r\n\r\n<h1>broker</h1>"), "{index}");
        let (script, _) = ask(&dir, "GET /app/main.js HTTP/1.0\r\n\r\n").await;
        assert!(script.contains("text/javascript") && script.ends_with("let x = 1;"));
        let (head, _) = ask(&dir, "HEAD /app/main.js HTTP/1.1\r\n\r\n").await;
        assert!(head.contains("Content-Length: 10\r\n") && head.ends_with("\r\n\r\n"));
        for path in ["/missing", "/../secret", "/link", "/%2e%2e/secret"] {
            let (refused, _) = ask(&dir, &format!("GET {path} HTTP/1.1\r\n\r\n")).await;
            assert!(refused.starts_with("HTTP/1.1 404 "), "{path}: {refused}");
        }
        let (post, _) = ask(&dir, "POST / HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        let (garbage, _) = ask(&dir, "\u{1}\u{2}\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
        let huge = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST_HEAD)
        );
        let (too_large, _) = ask(&dir, &huge).await;
        assert!(too_large.starts_with("HTTP/1.1 431 "), "{too_large}");
        let (_, upgraded) = ask(
            &dir,
            "GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .await;
        assert!(upgraded);
        let _ = std::fs::remove_dir_all(&root);
    }
}
