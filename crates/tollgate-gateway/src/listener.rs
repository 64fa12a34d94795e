//! The listener: accepts client connections and bounds what each one may cost before it has
//! sent a request.
//!
//! `axum::serve` has no timeouts at all: a client that sends half a header block, or nothing,
//! keeps its connection (and a file descriptor) forever, and enough of them make real requests
//! fail with "Too many open files". So connections are served here with hyper directly:
//!
//! - at most `max_connections` are open; over the cap the accept loop stops accepting, so new
//!   connections wait in the kernel's listen backlog until one closes (a warning says so, at most
//!   every ten seconds). Waiting keeps clients' requests intact, where closing them would turn a
//!   short burst into errors;
//! - a watchdog per connection closes it when it is idle longer than `keepalive_timeout`, or when
//!   a request head (or the first request of a new connection) takes longer than
//!   `header_read_timeout`. Time spent inside a request is not bounded here: the body read has its
//!   own timeout ([`crate::edge::read_body`]) and upstream calls their deployment's;
//! - hyper answers requests it cannot parse (400, 414, 431) itself, with an empty body; those
//!   answers are rewritten on their way out into OpenAI's error JSON, which is what every
//!   client of this gateway parses.
//!
//! HTTP/1.1 only, as before (axum's default features serve no HTTP/2).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tollgate_core::config::ServerLimits;
use tollgate_core::{ErrorKind, GatewayError};
use tower::ServiceExt;

/// How often the "connection limit reached" warning may repeat.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(10);
/// Descriptors kept back for the store, the config watcher, the listener and logs.
const FD_HEADROOM: usize = 64;
/// Used when no open-file limit can be read, or it is very high.
const MAX_CONNECTIONS_CEILING: usize = 10_000;

/// The timeouts one connection is served with, read from the live config when it is accepted.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionTimeouts {
    pub header_read: Duration,
    pub keepalive: Duration,
}

impl From<&ServerLimits> for ConnectionTimeouts {
    fn from(l: &ServerLimits) -> Self {
        ConnectionTimeouts {
            header_read: seconds(l.header_read_timeout_s),
            keepalive: seconds(l.keepalive_timeout_s),
        }
    }
}

/// A config duration; the loader keeps them within a day, so the fallback is only a guard.
pub fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s)
        .unwrap_or(Duration::from_secs(86_400))
        .min(Duration::from_secs(86_400))
}

/// The connection cap in force and where it came from (printed at startup and by `check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCap {
    pub max: usize,
    pub source: String,
}

impl ConnectionCap {
    /// `max_connections` as configured, or derived from the open-file limit: each client
    /// connection may need one upstream connection too, so half the descriptors left after
    /// [`FD_HEADROOM`] go to clients.
    pub fn resolve(limits: &ServerLimits) -> ConnectionCap {
        if let Some(max) = limits.max_connections {
            return ConnectionCap {
                max: max.clamp(1, 1_000_000),
                source: "tollgate_settings.max_connections".into(),
            };
        }
        match open_file_limit() {
            Some(n) => ConnectionCap {
                max: (n.saturating_sub(FD_HEADROOM) / 2).clamp(1, MAX_CONNECTIONS_CEILING),
                source: format!("from the open-file limit {n}"),
            },
            None => ConnectionCap {
                max: MAX_CONNECTIONS_CEILING,
                source: "default; open-file limit unknown".into(),
            },
        }
    }
}

/// The soft `RLIMIT_NOFILE`, read from `/proc` (Linux) so no unsafe FFI is needed.
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.trim_start_matches("Max open files").split_whitespace().next()?;
    // "unlimited" falls back to the ceiling.
    soft.parse().ok()
}

/// Counters about client connections, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicUsize,
    pub accepted: AtomicU64,
    /// Times the accept loop had to stop because `max_connections` were open.
    pub cap_reached: AtomicU64,
    /// Connections closed because a request head took longer than `header_read_timeout`.
    pub closed_header_timeout: AtomicU64,
    /// Connections closed after `keepalive_timeout` without a request.
    pub closed_idle: AtomicU64,
}

/// Accepts and serves until `stop` resolves, then lets every open connection finish its
/// in-flight requests (idle ones close at once) and returns when all are closed.
///
/// `slots` holds one permit per connection that may be open (`cap` in all); several accept
/// loops (one per serving worker) share it, so the cap is over all of them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    slots: Arc<Semaphore>,
    cap: usize,
    timeouts: Arc<dyn Fn() -> ConnectionTimeouts + Send + Sync>,
    stats: Arc<ConnectionStats>,
    stop: impl Future<Output = ()> + 'static,
) {
    // Dropping the sender tells every connection to shut down gracefully.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(stop);
    let mut last_cap_warning: Option<Instant> = None;
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                stats.cap_reached.fetch_add(1, Ordering::Relaxed);
                if last_cap_warning.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                    last_cap_warning = Some(Instant::now());
                    tracing::warn!(
                        "connection limit reached: {cap} client connections are open (tollgate_settings.max_connections); \
                         new connections wait in the listen backlog until one closes"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut stop => break,
                }
            }
        };
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            router: router.clone(),
            timeouts: timeouts(),
            stats: stats.clone(),
            stop: stop_rx.clone(),
        };
        tokio::spawn(async move {
            conn.run(tcp).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_tx);
    // Every connection holds a slot until it is closed: getting all of them back means done.
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Out of descriptors (or a connection reset before it was accepted): say so and give the
/// process a moment, instead of spinning on an error that repeats at once.
async fn accept_failed(e: &io::Error) {
    let out_of_descriptors = matches!(e.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
    if out_of_descriptors {
        tracing::error!(
            "cannot accept a connection: {e}; lower tollgate_settings.max_connections or raise the open-file limit (ulimit -n)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    } else {
        tracing::debug!("accept failed: {e}");
    }
}

struct Connection {
    router: Router,
    timeouts: ConnectionTimeouts,
    stats: Arc<ConnectionStats>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, tcp: TcpStream) {
        // Small SSE chunks must not wait on Nagle's algorithm: that would add tens of ms per chunk.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let activity = Arc::new(Activity::new());
        let peer = tcp.peer_addr().ok();
        let io = TokioIo::new(WatchedIo {
            inner: tcp,
            activity: activity.clone(),
            rewrite: None,
        });
        let service = TrackedService {
            router: self.router.clone(),
            activity: activity.clone(),
            peer,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The watchdog below bounds header reads and idle time; hyper's own header timer would
        // also run while a kept-alive connection is idle, so one value could not serve both.
        builder.header_read_timeout(None);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stopping = *self.stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let watch = activity.deadline(&self.timeouts);
            let changed = activity.changed.notified();
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection ended: {e}");
                    }
                    break;
                }
                _ = self.stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = changed => {}
                _ = sleep_until(watch.map(|(at, _)| at)) => {
                    // Re-checked: a request may have started since the deadline was computed.
                    if let Some((at, reason)) = activity.deadline(&self.timeouts)
                        && at <= Instant::now()
                    {
                        let counter = match reason {
                            Expiry::HeaderRead => &self.stats.closed_header_timeout,
                            Expiry::Idle => &self.stats.closed_idle,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("closing a client connection: {reason:?} timeout");
                        break;
                    }
                }
            }
        }
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone, Copy)]
enum Expiry {
    HeaderRead,
    Idle,
}

/// What one connection is doing, shared by its socket wrapper, its service and its watchdog.
/// Times are milliseconds since `origin`; 0 in `head_started_ms` means "no head in progress".
struct Activity {
    origin: Instant,
    /// Requests handed to the router whose response body has not finished.
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    head_started_ms: AtomicU64,
    /// No request has been served yet: the first one must arrive within the header timeout.
    fresh: AtomicBool,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            fresh: AtomicBool::new(true),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64, plus: Duration) -> Instant {
        self.origin + Duration::from_millis(ms) + plus
    }

    /// When the connection must be closed if nothing changes; `None` while a request runs.
    fn deadline(&self, t: &ConnectionTimeouts) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_started_ms.load(Ordering::Acquire);
        if head > 0 {
            return Some((self.at(head - 1, t.header_read), Expiry::HeaderRead));
        }
        let idle = self.idle_since_ms.load(Ordering::Acquire);
        if self.fresh.load(Ordering::Acquire) {
            Some((self.at(idle, t.header_read), Expiry::HeaderRead))
        } else {
            Some((self.at(idle, t.keepalive), Expiry::Idle))
        }
    }

    /// Bytes arrived: between requests they start a head, and the header timeout.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 && self.head_started_ms.load(Ordering::Acquire) == 0 {
            self.head_started_ms.store(self.now_ms() + 1, Ordering::Release);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.fresh.store(false, Ordering::Release);
        self.head_started_ms.store(0, Ordering::Release);
        self.changed.notify_one();
    }

    fn request_finished(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::Release);
        self.head_started_ms.store(0, Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_one();
    }
}

/// Counts a request as in flight from its head until its response body is done (or dropped,
/// when the client leaves).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: Arc<Activity>) -> Self {
        activity.request_started();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[derive(Clone)]
struct TrackedService {
    router: Router,
    activity: Arc<Activity>,
    /// The client's address, handed to handlers as axum's `ConnectInfo` (the dashboard limits
    /// failed sign-ins per address).
    peer: Option<std::net::SocketAddr>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(self.activity.clone());
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let router = self.router.clone();
        Box::pin(async move {
            let resp = router.oneshot(req.map(Body::new)).await?;
            Ok(resp.map(|body| TrackedBody { body, _guard: guard }))
        })
    }
}

/// A response body that keeps its request in flight until it has been sent.
struct TrackedBody {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The client socket, watched: reads start the header timer, and hyper's own empty error answers
/// are replaced by OpenAI-shaped ones.
struct WatchedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// A replacement being written: its bytes, how many are written, and the length of what hyper
    /// asked to write (reported back once the replacement is out).
    rewrite: Option<(Vec<u8>, usize, usize)>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl WatchedIo {
    fn poll_write_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, reported)) = &mut self.rewrite {
            if *written >= bytes.len() {
                let n = *reported;
                self.rewrite = None;
                return Poll::Ready(Ok(n));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.rewrite.is_none()
            && self.activity.in_flight.load(Ordering::Acquire) == 0
            && let Some(replacement) = openai_shaped_parse_error(buf)
        {
            self.rewrite = Some((replacement, 0, buf.len()));
        }
        if self.rewrite.is_some() {
            return self.poll_write_rewrite(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's automatic answers are a head alone: one buffer. Anything else is a response
        // of ours and goes out untouched.
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next())
            && (self.rewrite.is_some() || self.activity.in_flight.load(Ordering::Acquire) == 0)
        {
            return self.poll_write(cx, only);
        }
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

/// hyper answers a request it cannot parse with a bare head (`content-length: 0`) and closes the
/// connection. When `head` is such an answer, returns the same status with OpenAI's error JSON.
fn openai_shaped_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    if !text.ends_with("\r\n\r\n") || text.len() > 1024 {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    if !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let (status, reason, message, code) = match rest.get(..3)? {
        "400" => (
            400,
            "Bad Request",
            "the request could not be parsed as HTTP/1.1 (request line or a header is malformed)",
            "malformed_request",
        ),
        "414" => (414, "URI Too Long", "the request URI is too long", "uri_too_long"),
        "431" => (
            431,
            "Request Header Fields Too Large",
            "the request's headers are too large or too many (at most 100 headers of ~400 KB in all)",
            "headers_too_large",
        ),
        _ => return None,
    };
    let body = GatewayError::new(ErrorKind::InvalidRequest, message)
        .with_status(status)
        .with_code(code)
        .to_json()
        .to_string();
    let date = text
        .split("\r\n")
        .find(|l| l.to_ascii_lowercase().starts_with("date:"))
        .map(|l| format!("{l}\r\n"))
        .unwrap_or_default();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{date}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_parse_errors_become_openai_json_and_other_writes_do_not() {
        let out = openai_shaped_parse_error(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 22:00:00 GMT\r\n\r\n",
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("date: Tue, 01 Dec 2026"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "headers_too_large");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        // Our own answers carry a body, and data is not a head.
        assert!(openai_shaped_parse_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n").is_none());
        assert!(openai_shaped_parse_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(openai_shaped_parse_error(b"data: {}\n\n").is_none());
    }

    #[test]
    fn a_configured_cap_wins_and_a_derived_one_leaves_headroom() {
        let cap = ConnectionCap::resolve(&ServerLimits {
            max_connections: Some(7),
            ..ServerLimits::default()
        });
        assert_eq!(cap.max, 7);
        let derived = ConnectionCap::resolve(&ServerLimits::default());
        assert!(derived.max >= 1 && derived.max <= MAX_CONNECTIONS_CEILING);
        if let Some(n) = open_file_limit() {
            assert!(derived.max * 2 + FD_HEADROOM <= n.max(2 * MAX_CONNECTIONS_CEILING + FD_HEADROOM));
        }
    }
}
