//! A scripted HTTP/1.1 server over real TCP, for tests of everything that talks HTTP.
//!
//! Tests of adapters, the CLI and the gateway need a peer that behaves like a provider on the
//! wire: real sockets, pooled keep-alive connections, chunked bodies that arrive slowly, streams
//! that stall or break. Mocking reqwest would test none of that, so this is a tiny server written
//! directly on tokio's `TcpListener` (no hyper), replaying a script of responses in order.
//!
//! ```no_run
//! # async fn demo() {
//! use exllm_infrastructure::testing::{FixtureServer, Scripted};
//! let server = FixtureServer::start(vec![
//!     Scripted::json(200, r#"{"ok":true}"#),
//!     Scripted::sse(200, "data: hi\n\n"),
//! ])
//! .await;
//! let _base = server.url();
//! let _seen = server.requests();
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A request the server received, as it arrived on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The method (`GET`, `POST`, …).
    pub method: String,
    /// The request target, path and query (`/v1/chat/completions?x=1`).
    pub path: String,
    /// Headers in arrival order, names as sent (reqwest sends them lowercase).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy: this is for assertions, not for decoding).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn body_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// How a scripted response's body is sent.
#[derive(Debug, Clone)]
enum Body {
    /// One piece with `content-length`.
    Full(Vec<u8>),
    /// `transfer-encoding: chunked`, one HTTP chunk per element.
    Chunked(Vec<Vec<u8>>),
}

/// What happens after the scripted body has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The body is terminated properly and the connection stays open for the next request.
    Complete,
    /// Nothing more is ever sent; the connection stays open until the client gives up.
    Stall,
    /// The connection is reset (TCP RST) without the chunked terminator.
    Reset,
}

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
    delay: Duration,
    ending: Ending,
}

impl Scripted {
    /// A response with `status`, no headers of its own and an empty body.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Full(Vec::new()),
            delay: Duration::ZERO,
            ending: Ending::Complete,
        }
    }

    /// A JSON response (`content-type: application/json`) with a `content-length` body.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// A server-sent-events response (`content-type: text/event-stream`), sent chunked.
    pub fn sse(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/event-stream")
            .chunks(vec![text.into()])
    }

    /// An NDJSON response (`content-type: application/x-ndjson`), sent chunked.
    pub fn ndjson(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "application/x-ndjson")
            .chunks(vec![text.into()])
    }

    /// A 200 event stream that sends `chunks` and then never sends anything more, keeping the
    /// connection open: the client's idle timeout is what must end it.
    pub fn stall_after<C: Into<Vec<u8>>>(chunks: Vec<C>) -> Self {
        Self::new(200)
            .header("content-type", "text/event-stream")
            .chunks(chunks)
            .stall()
    }

    /// A 200 event stream that sends `chunks` and then resets the connection, without the
    /// chunked terminator: the client must see a broken transfer, not a clean end.
    pub fn reset_after<C: Into<Vec<u8>>>(chunks: Vec<C>) -> Self {
        Self::new(200)
            .header("content-type", "text/event-stream")
            .chunks(chunks)
            .reset()
    }

    /// Adds a header; a `content-type` given here replaces the constructor's.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if name.eq_ignore_ascii_case("content-type") {
            self.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        }
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body, sent in one piece with `content-length`.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::Full(body.into());
        self
    }

    /// Sets the body as `chunks`, one HTTP chunk each, sent with `transfer-encoding: chunked`.
    /// Empty chunks are skipped on the wire (an empty HTTP chunk would end the body).
    pub fn chunks<C: Into<Vec<u8>>>(mut self, chunks: Vec<C>) -> Self {
        self.body = Body::Chunked(chunks.into_iter().map(Into::into).collect());
        self
    }

    /// Waits `ms` milliseconds before each chunk of a chunked body.
    pub fn delay(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }

    /// After the body, sends nothing more and keeps the connection open.
    pub fn stall(mut self) -> Self {
        self.ending = Ending::Stall;
        self
    }

    /// After the body, resets the connection without terminating the body.
    pub fn reset(mut self) -> Self {
        self.ending = Ending::Reset;
        self
    }

    /// The wire bytes of the status line and headers; `content_length` `None` means chunked.
    fn head(&self, content_length: Option<usize>) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            // Framing is ours to decide; a scripted framing header would contradict it.
            if name.eq_ignore_ascii_case("content-length")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                continue;
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match content_length {
            Some(len) => head.push_str(&format!("content-length: {len}\r\n")),
            None => head.push_str("transfer-encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// A running fixture server. Dropping it stops the server and closes every connection.
pub struct FixtureServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

struct State {
    script: Vec<Scripted>,
    served: Mutex<usize>,
    requests: Mutex<Vec<RecordedRequest>>,
    connections: Mutex<Vec<AbortHandle>>,
}

impl State {
    /// The next scripted response; the last one repeats once the script is used up.
    fn next_reply(&self) -> Option<Scripted> {
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        let index = (*served).min(self.script.len().checked_sub(1)?);
        *served += 1;
        self.script.get(index).cloned()
    }
}

impl FixtureServer {
    /// Binds 127.0.0.1 on a free port and serves `script` in order, one response per request
    /// (across all connections); the last response repeats when the script is exhausted. An
    /// empty script answers every request with 500.
    ///
    /// # Panics
    /// When no local port can be bound, which only happens on a broken test machine.
    pub async fn start(script: Vec<Scripted>) -> Self {
        let script = if script.is_empty() {
            vec![Scripted::json(
                500,
                r#"{"error":"FixtureServer has no script"}"#,
            )]
        } else {
            script
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the fixture server");
        let addr = listener
            .local_addr()
            .expect("local address of the fixture server");
        let state = Arc::new(State {
            script,
            served: Mutex::new(0),
            requests: Mutex::new(Vec::new()),
            connections: Mutex::new(Vec::new()),
        });
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let conn_state = Arc::clone(&accept_state);
                let handle = tokio::spawn(serve_connection(stream, conn_state)).abort_handle();
                let mut conns = accept_state
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                conns.retain(|h| !h.is_finished());
                conns.push(handle);
            }
        })
        .abort_handle();
        Self {
            addr,
            state,
            accept,
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many requests have been received so far.
    pub fn request_count(&self) -> usize {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl fmt::Debug for FixtureServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixtureServer")
            .field("addr", &self.addr)
            .field("script_len", &self.state.script.len())
            .field("requests", &self.request_count())
            .finish()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.accept.abort();
        let conns = self
            .state
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for conn in conns.iter() {
            conn.abort();
        }
    }
}

/// The largest request head or body the server accepts; a test never needs more.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Serves requests on one connection until the client closes it or a script ends it.
async fn serve_connection(mut stream: TcpStream, state: Arc<State>) {
    let mut buf = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
        let Some(reply) = state.next_reply() else {
            return;
        };
        match write_reply(&mut stream, &reply).await {
            Ok(Ending::Complete) if !close => {}
            Ok(Ending::Stall) => {
                // Keep the socket open, sending nothing, until the client hangs up.
                let mut sink = [0_u8; 1024];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Ok(Ending::Reset) => {
                // SO_LINGER 0 makes the close a TCP RST rather than an orderly FIN.
                let _ = stream.set_zero_linger();
                return;
            }
            Ok(Ending::Complete) | Err(_) => return,
        }
    }
}

/// Reads one request: request line, headers, and a `content-length` or chunked body. `None`
/// when the client closed the connection or sent something unparseable.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RecordedRequest> {
    let head_end = loop {
        if let Some(pos) = memchr::memmem::find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_REQUEST_BYTES || !fill(stream, buf).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);

    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut request = RecordedRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };

    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked(stream, buf).await?;
    } else {
        let len: usize = match request.header("content-length") {
            Some(v) => v.parse().ok()?,
            None => 0,
        };
        if len > MAX_REQUEST_BYTES {
            return None;
        }
        while buf.len() < len {
            if !fill(stream, buf).await {
                return None;
            }
        }
        request.body = buf.drain(..len).collect();
    }
    Some(request)
}

/// Reads a chunked request body (and its trailers) from `buf`, refilling from `stream`.
async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = memchr::memmem::find(buf, b"\r\n") {
                break pos;
            }
            if buf.len() > MAX_REQUEST_BYTES || !fill(stream, buf).await {
                return None;
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_hex = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let pos = loop {
                    if let Some(pos) = memchr::memmem::find(buf, b"\r\n") {
                        break pos;
                    }
                    if !fill(stream, buf).await {
                        return None;
                    }
                };
                buf.drain(..pos + 2);
                if pos == 0 {
                    return Some(body);
                }
            }
        }
        if body.len() + size > MAX_REQUEST_BYTES {
            return None;
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf).await {
                return None;
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// Reads more bytes into `buf`; `false` when the peer closed the connection or it failed.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0_u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Writes one scripted response and says how the connection should end.
async fn write_reply(stream: &mut TcpStream, reply: &Scripted) -> std::io::Result<Ending> {
    // A stalled or reset body only makes sense chunked: a content-length body is either
    // complete or visibly short.
    let chunks: Option<Vec<&[u8]>> = match (&reply.body, reply.ending) {
        (Body::Chunked(chunks), _) => Some(chunks.iter().map(Vec::as_slice).collect()),
        (Body::Full(body), Ending::Stall | Ending::Reset) => Some(vec![body.as_slice()]),
        (Body::Full(_), Ending::Complete) => None,
    };
    match chunks {
        None => {
            let body: &[u8] = match &reply.body {
                Body::Full(body) => body,
                Body::Chunked(_) => &[],
            };
            let mut bytes = reply.head(Some(body.len()));
            bytes.extend_from_slice(body);
            stream.write_all(&bytes).await?;
        }
        Some(chunks) => {
            stream.write_all(&reply.head(None)).await?;
            stream.flush().await?;
            for chunk in chunks {
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                if chunk.is_empty() {
                    continue;
                }
                let mut bytes = format!("{:x}\r\n", chunk.len()).into_bytes();
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            if reply.ending == Ending::Complete {
                stream.write_all(b"0\r\n\r\n").await?;
            }
        }
    }
    stream.flush().await?;
    Ok(reply.ending)
}

/// The reason phrase for `status`; clients ignore it, but a real one keeps traces readable.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Status",
    }
}
