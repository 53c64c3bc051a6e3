//! Every TCP connection's lifetime: the accept loop, the per-connection timeouts, the cap on
//! open connections, and shutdown with a bounded grace period.
//!
//! `axum::serve` has none of these: a client that sends one header byte a second (slowloris),
//! or hundreds that connect and say nothing, would hold their sockets forever and starve real
//! clients of file descriptors; and a single half-sent request kept SIGTERM waiting for as long
//! as its client liked. Here each connection has a watchdog that knows which phase it is in:
//!
//! - *new* (accepted, its first request not yet begun): closed when no byte arrives within
//!   `header_timeout`, and never evicted for another connection: a client that just connected
//!   is owed an answer;
//! - *idle* (its last request answered, no new one under way): closed after `idle_timeout`;
//! - *reading a request head* (bytes arrived, the request not yet complete enough to route):
//!   closed after `header_timeout`;
//! - *busy* (a request is being handled): its body read has its own timeout (in the body
//!   extractors, answered 408) and its inference the request's deadline.
//!
//! HTTP/2 (h2c on the HTTP port, gRPC on its own) allows [`MAX_STREAMS_PER_CONNECTION`] streams
//! at once per connection, with flow-control windows sized from the memory budget (see
//! [`Http2Windows`]); each stream's body is bounded like an HTTP/1 body (`super::body`).
//!
//! When `max_connections` are open, a new connection first evicts the longest-idle one (one
//! that has been answered and sits waiting); when none is idle, the new one is answered 503
//! `overloaded`: what it already sent is read first and the socket lingers, half-closed, until
//! the client has read the answer, so the client gets the 503 and not a reset. Accept errors
//! (EMFILE under fd pressure) evict an idle connection, else a new one silent for a second, and
//! retry within milliseconds instead of stalling. Everything shed is counted (`warden_connections_closed_total{reason}`) and logged
//! at most once a second per reason. On shutdown, idle connections close at once, requests in
//! flight get `shutdown_grace` to finish, and whatever is left is cut and counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::canned::{self, CannedAnswers};
use crate::metrics::Metrics;

/// How long connections may take and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a request's first byte until its head (request line and headers) is complete.
    pub header_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before cutting them.
    pub shutdown_grace: Duration,
    /// HTTP/2 flow-control windows.
    pub http2_windows: Http2Windows,
}

/// The default header-read timeout: clients of a model server are programs that send a
/// request head in one write.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default keep-alive idle timeout: longer than the 60 s idle timeout of common load
/// balancers (AWS ALB, GCP), so the balancer, not warden, closes a pooled connection first and
/// never sends a request into a socket warden is closing.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// The default shutdown grace period: well under Kubernetes' 30 s before SIGKILL.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The most connections warden opens by default, whatever the file-descriptor limit.
pub(crate) const MAX_DEFAULT_CONNECTIONS: usize = 10_000;
/// File descriptors kept free for everything but connections (model files, the repository
/// watcher, ONNX Runtime, logs).
pub(crate) const RESERVED_FDS: usize = 64;
/// The largest request head (request line and headers) read into memory.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The largest HTTP/2 header block (the h2 default; gRPC metadata included).
const MAX_HTTP2_HEADER_BYTES: u32 = 16 * 1024;
/// HTTP/2 streams one connection may have open at once (HTTP/2's own suggested minimum is 100).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Connections refused at the cap that may linger at once while their 503 is read; past it a
/// refused connection is closed as soon as its 503 is written.
const MAX_LINGERING: usize = 32;
/// How long a refused connection lingers for its client to read the 503.
const LINGER: Duration = Duration::from_secs(2);

/// HTTP/2 flow-control windows: how many bytes a client may send before warden reads them. A
/// stream's window bounds what a stalled stream has buffered unread, the connection's window
/// what all of its streams have; both come from the memory budget, so the budget's refusals,
/// not hyper's buffers, decide what a flood of streams may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Windows {
    pub stream: u32,
    pub connection: u32,
}

impl Http2Windows {
    /// A 512th of the budget per stream, between 64 KiB (HTTP/2's default) and 1 MiB (hyper's),
    /// and twice that per connection.
    pub fn from_budget(budget_bytes: usize) -> Http2Windows {
        let stream = (budget_bytes / 512).clamp(64 * 1024, 1024 * 1024) as u32;
        Http2Windows {
            stream,
            connection: stream * 2,
        }
    }
}

/// The open-files limit less [`RESERVED_FDS`], at most [`MAX_DEFAULT_CONNECTIONS`].
pub(crate) fn default_max_connections(fd_limit: Option<u64>) -> usize {
    fd_limit
        .and_then(|limit| usize::try_from(limit).ok())
        .map_or(MAX_DEFAULT_CONNECTIONS, |limit| {
            limit.saturating_sub(RESERVED_FDS).max(1)
        })
        .min(MAX_DEFAULT_CONNECTIONS)
}

/// Why warden closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// A new connection that sent nothing within the header timeout.
    NoRequest,
    HeaderTimeout,
    IdleTimeout,
    /// The longest-idle connection, closed to make room for a new one at the cap.
    EvictedIdle,
    /// A new connection refused at the cap, answered 503.
    OverCapacity,
    /// Still open when the shutdown grace period ended.
    ShutdownCut,
}

impl Closed {
    const ALL: [Closed; 6] = [
        Closed::NoRequest,
        Closed::HeaderTimeout,
        Closed::IdleTimeout,
        Closed::EvictedIdle,
        Closed::OverCapacity,
        Closed::ShutdownCut,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Closed::NoRequest => "no_request",
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::EvictedIdle => "evicted_idle",
            Closed::OverCapacity => "over_capacity",
            Closed::ShutdownCut => "shutdown_cut",
        }
    }

    fn index(self) -> usize {
        Closed::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }
}

/// What a connection is doing, for its watchdog.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Accepted, its first request not begun: not evictable.
    New(Instant),
    /// Answered, waiting for its next request: evictable.
    Idle(Instant),
    ReadingHead(Instant),
    Busy,
}

/// One open connection, shared by its task, its stream, its service and the cap.
#[derive(Debug)]
struct ConnectionState {
    phase: Mutex<Phase>,
    in_flight: AtomicUsize,
    /// Wakes the watchdog when the phase changes.
    changed: Notify,
    /// Asks the connection to close (eviction at the cap).
    evict: Notify,
}

impl ConnectionState {
    fn new() -> ConnectionState {
        ConnectionState {
            phase: Mutex::new(Phase::New(Instant::now())),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
            evict: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        *self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = phase;
        self.changed.notify_one();
    }

    /// Bytes arrived: a new or idle connection is now reading a request head.
    fn bytes_arrived(&self) {
        let mut phase = self
            .phase
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Phase::New(_) | Phase::Idle(_) = *phase {
            *phase = Phase::ReadingHead(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A request was routed; the returned guard marks it finished when dropped.
    fn begin_request(self: &Arc<Self>) -> BusyGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set_phase(Phase::Busy);
        BusyGuard(Arc::clone(self))
    }

    /// When the watchdog must look again, and what it closes for if the phase has not changed.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, Closed)> {
        match self.phase() {
            Phase::New(since) => Some((since + limits.header_timeout, Closed::NoRequest)),
            Phase::Idle(since) => Some((since + limits.idle_timeout, Closed::IdleTimeout)),
            Phase::ReadingHead(since) => {
                Some((since + limits.header_timeout, Closed::HeaderTimeout))
            }
            Phase::Busy => None,
        }
    }

    fn idle_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::Idle(since) => Some(since),
            _ => None,
        }
    }

    /// When a new connection that has sent nothing at all was accepted.
    fn silent_since(&self) -> Option<Instant> {
        match self.phase() {
            Phase::New(since) => Some(since),
            _ => None,
        }
    }
}

/// How long a new connection must have sent nothing before running out of file descriptors may
/// close it: far longer than a client takes to send the request it connected for.
const SILENT_EVICTABLE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct BusyGuard(Arc<ConnectionState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.set_phase(Phase::Idle(Instant::now()));
        }
    }
}

/// The open connections, for the cap.
#[derive(Debug, Default)]
struct OpenConnections {
    by_id: Mutex<HashMap<u64, Arc<ConnectionState>>>,
    next_id: AtomicU64,
}

impl OpenConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnectionState>>> {
        self.by_id
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn insert(&self) -> (u64, Arc<ConnectionState>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnectionState::new());
        self.lock().insert(id, Arc::clone(&state));
        (id, state)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Asks the longest-idle connection to close; false when none is idle. It leaves the
    /// count at once, so the next accept, which may come before it has closed, picks another.
    fn evict_idle(&self) -> bool {
        self.evict_oldest(ConnectionState::idle_since)
    }

    /// When accepting fails for want of file descriptors: the longest-idle connection, else the
    /// longest-silent new one that has sent nothing for [`SILENT_EVICTABLE_AFTER`].
    fn evict_for_descriptors(&self) -> bool {
        self.evict_idle()
            || self.evict_oldest(|state| {
                state
                    .silent_since()
                    .filter(|since| since.elapsed() >= SILENT_EVICTABLE_AFTER)
            })
    }

    fn evict_oldest(&self, since: impl Fn(&ConnectionState) -> Option<Instant>) -> bool {
        let mut open = self.lock();
        let oldest = open
            .iter()
            .filter_map(|(id, state)| since(state).map(|since| (since, *id)))
            .min_by_key(|(since, _)| *since);
        match oldest.and_then(|(_, id)| open.remove(&id)) {
            Some(state) => {
                state.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A log line per reason at most once a second, with how many events it stands for.
#[derive(Debug, Default)]
struct ThrottledLog {
    counts: [AtomicU64; Closed::ALL.len()],
    last: Mutex<Option<Instant>>,
}

impl ThrottledLog {
    fn record(&self, reason: Closed, metrics: &Metrics) {
        metrics
            .connections_closed
            .with_label_values(&[reason.as_str()])
            .inc();
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        drop(last);
        for kind in Closed::ALL {
            let count = self.counts[kind.index()].swap(0, Ordering::Relaxed);
            if count > 0 {
                tracing::warn!(
                    reason = kind.as_str(),
                    connections = count,
                    "connections closed by the server"
                );
            }
        }
    }
}

/// What a connection task shares with the accept loop.
#[derive(Debug, Clone)]
struct Shared {
    /// Each listener's router, by the listener's index.
    routers: Arc<[Router]>,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    open: Arc<OpenConnections>,
    log: Arc<ThrottledLog>,
    /// Refused connections lingering now.
    lingering: Arc<AtomicUsize>,
    /// The answers the transport writes itself.
    answers: Arc<CannedAnswers>,
}

/// Serves each listener's router (HTTP, and gRPC on its own port) until `shutdown` resolves,
/// then drains for at most `limits.shutdown_grace` and cuts what is left. The listeners share
/// one cap on open connections: they draw on the same file descriptors.
pub(crate) async fn serve(
    listeners: Vec<(TcpListener, Router)>,
    limits: ConnectionLimits,
    answers: CannedAnswers,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (listeners, routers): (Vec<TcpListener>, Vec<Router>) = listeners.into_iter().unzip();
    let shared = Shared {
        routers: routers.into(),
        limits,
        metrics,
        open: Arc::new(OpenConnections::default()),
        log: Arc::new(ThrottledLog::default()),
        lingering: Arc::new(AtomicUsize::new(0)),
        answers: Arc::new(answers),
    };
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let (mut accept_failures, mut last_accept_log) = (0u64, None::<Instant>);
    let mut first_listener = 0;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            (listener, accepted) = accept_any(&listeners, &mut first_listener) => match accepted {
                Ok((stream, _peer)) => {
                    if shared.open.len() >= limits.max_connections && !shared.open.evict_idle() {
                        shed(stream, &shared.answers.over_capacity, &shared.lingering);
                        shared.log.record(Closed::OverCapacity, &shared.metrics);
                        continue;
                    }
                    let (id, state) = shared.open.insert();
                    shared.metrics.open_connections.inc();
                    let router = shared.routers[listener].clone();
                    tasks.spawn(serve_connection(stream, router, id, state, shared.clone(), stopping.clone()));
                }
                Err(err) => {
                    // EMFILE/ENFILE: free a descriptor by closing an idle connection (or one
                    // silent for a second), and try again shortly rather than after axum's
                    // fixed second.
                    let evicted = shared.open.evict_for_descriptors();
                    accept_failures += 1;
                    let now = Instant::now();
                    if last_accept_log.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                        tracing::warn!(
                            error = %err,
                            failures = accept_failures,
                            evicted_idle = evicted,
                            "accept failed (file descriptors exhausted?); closing an idle connection and retrying"
                        );
                        accept_failures = 0;
                        last_accept_log = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listeners);
    let _ = stop.send(true);
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(
            connections = in_flight,
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "shutdown: finishing requests in flight"
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let cut = tasks.len();
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        for _ in 0..cut {
            shared
                .metrics
                .connections_closed
                .with_label_values(&[Closed::ShutdownCut.as_str()])
                .inc();
        }
        tracing::warn!(
            cut,
            grace_ms = limits.shutdown_grace.as_millis() as u64,
            "shutdown grace period over: cut connections still open"
        );
    } else {
        tracing::info!("stopped: every in-flight request was answered");
    }
}

/// Answers a connection over the cap with 503 `overloaded` and closes it so that the client
/// reads the answer: closing a socket with unread bytes in it sends a reset, which destroys an
/// answer the client has not read yet. So what the client already sent is read first, the 503
/// written, the sending side shut, and the socket kept (up to [`LINGER`], at most
/// [`MAX_LINGERING`] at once) until the client closes, its further bytes read and dropped.
fn shed(stream: TcpStream, answer: &[u8], lingering: &Arc<AtomicUsize>) {
    let mut scratch = [0u8; 16 * 1024];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
    let _ = stream.try_write(answer);
    if lingering.fetch_add(1, Ordering::AcqRel) >= MAX_LINGERING {
        lingering.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let lingering = Arc::clone(lingering);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = stream;
        let _ = tokio::time::timeout(LINGER, async {
            let _ = stream.shutdown().await;
            let mut drained = 0usize;
            while drained < 1 << 20 {
                match stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        })
        .await;
        lingering.fetch_sub(1, Ordering::AcqRel);
    });
}

/// The next connection on any of `listeners`, with the index of the listener it came to. The
/// listener after the last one that gave a connection is asked first, so a flood of connections
/// to one port cannot starve the other.
async fn accept_any(
    listeners: &[TcpListener],
    first: &mut usize,
) -> (usize, io::Result<(TcpStream, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        for offset in 0..listeners.len() {
            let index = (*first + offset) % listeners.len();
            if let Poll::Ready(accepted) = listeners[index].poll_accept(cx) {
                *first = index + 1;
                return Poll::Ready((index, accepted));
            }
        }
        Poll::Pending
    })
    .await
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    id: u64,
    state: Arc<ConnectionState>,
    shared: Shared,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(WatchedStream {
        inner: stream,
        state: Arc::clone(&state),
        answers: Arc::clone(&shared.answers),
        replacing: None,
    });
    let service = TrackedService {
        inner: TowerToHyperService::new(router),
        state: Arc::clone(&state),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .initial_stream_window_size(shared.limits.http2_windows.stream)
        .initial_connection_window_size(shared.limits.http2_windows.connection)
        .max_header_list_size(MAX_HTTP2_HEADER_BYTES);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = *stopping.borrow();
    if draining {
        connection.as_mut().graceful_shutdown();
    }
    let closed = loop {
        let deadline = state.deadline(&shared.limits);
        let wake = deadline.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            |(at, _)| tokio::time::Instant::from_std(at),
        );
        tokio::select! {
            _ = connection.as_mut() => break None,
            () = tokio::time::sleep_until(wake) => {
                if let Some((at, reason)) = state.deadline(&shared.limits)
                    && Instant::now() >= at
                {
                    break Some(reason);
                }
            }
            () = state.changed.notified() => {}
            () = state.evict.notified() => break Some(Closed::EvictedIdle),
            _ = stopping.changed(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    shared.open.remove(id);
    shared.metrics.open_connections.dec();
    if let Some(reason) = closed {
        shared.log.record(reason, &shared.metrics);
    }
}

/// The router as hyper's service, marking the connection busy while a request is handled.
#[derive(Debug, Clone)]
struct TrackedService {
    inner: TowerToHyperService<Router>,
    state: Arc<ConnectionState>,
}

impl hyper::service::Service<Request<Incoming>> for TrackedService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = self.state.begin_request();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await;
            drop(busy);
            response
        })
    }
}

/// The socket, telling its connection's watchdog when bytes arrive, and writing warden's JSON
/// answer in place of hyper's own empty one (`super::canned`).
#[derive(Debug)]
struct WatchedStream {
    inner: TcpStream,
    state: Arc<ConnectionState>,
    answers: Arc<CannedAnswers>,
    /// The replacement answer being written, and how much of it is written.
    replacing: Option<(Vec<u8>, usize)>,
}

impl WatchedStream {
    /// When `written` (what hyper is writing, in one piece) is hyper's own error answer, starts
    /// writing warden's instead and says so. The bytes hyper gave count as written at once: the
    /// replacement goes out from here and from the flush that follows, never twice.
    fn replace(&mut self, written: &[u8], cx: &mut Context<'_>) -> io::Result<bool> {
        let Some(answer) = canned::replacement(&self.answers, written) else {
            return Ok(false);
        };
        self.replacing = Some((answer.to_vec(), 0));
        if let Poll::Ready(Err(err)) = self.poll_replacement(cx) {
            return Err(err);
        }
        Ok(true)
    }

    /// Writes what is left of a replacement answer; ready once all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((answer, written)) = &mut self.replacing {
            if *written == answer.len() {
                self.replacing = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// hyper's own error answers are a few dozen bytes; anything longer is not one.
const LONGEST_CANNED_ANSWER: usize = 256;

impl AsyncRead for WatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_replacement(cx))?;
        if buf.len() <= LONGEST_CANNED_ANSWER && self.replace(buf, cx)? {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_replacement(cx))?;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= LONGEST_CANNED_ANSWER {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            if self.replace(&joined, cx)? {
                return Poll::Ready(Ok(total));
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http2_windows_follow_the_budget_within_bounds() {
        let default = Http2Windows::from_budget(256 << 20);
        assert_eq!((default.stream, default.connection), (512 << 10, 1 << 20));
        assert_eq!(Http2Windows::from_budget(1 << 20).stream, 64 << 10);
        assert_eq!(Http2Windows::from_budget(1 << 40).stream, 1 << 20);
    }

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(default_max_connections(Some(1024)), 960);
        assert_eq!(default_max_connections(Some(1_048_576)), 10_000);
        assert_eq!(default_max_connections(Some(10)), 1);
        assert_eq!(default_max_connections(None), 10_000);
    }

    #[tokio::test]
    async fn a_busy_listener_does_not_starve_the_other() {
        let listeners = [
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let address = |index: usize| listeners[index].local_addr().unwrap();
        // Three connections wait on the first listener, one on the second.
        let mut clients = Vec::new();
        for index in [0, 0, 0, 1] {
            clients.push(TcpStream::connect(address(index)).await.unwrap());
        }
        let mut first = 0;
        let mut order = Vec::new();
        for _ in 0..4 {
            let (index, accepted) = accept_any(&listeners, &mut first).await;
            accepted.unwrap();
            order.push(index);
        }
        assert_eq!(
            order,
            vec![0, 1, 0, 0],
            "the second listener waited behind the first"
        );
    }

    #[test]
    fn a_connection_moves_through_its_phases() {
        let limits = ConnectionLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: 10,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            http2_windows: Http2Windows::from_budget(256 << 20),
        };
        let state = Arc::new(ConnectionState::new());
        assert_eq!(
            state.deadline(&limits).map(|d| d.1),
            Some(Closed::NoRequest),
            "a new connection has the header timeout to begin its first request"
        );
        assert_eq!(
            state.idle_since(),
            None,
            "a new connection is not evictable"
        );
        state.bytes_arrived();
        assert_eq!(
            state.deadline(&limits).map(|d| d.1),
            Some(Closed::HeaderTimeout)
        );
        let first = state.begin_request();
        let second = state.begin_request();
        assert_eq!(state.deadline(&limits), None);
        drop(first);
        assert_eq!(state.deadline(&limits), None, "one request still in flight");
        drop(second);
        assert_eq!(
            state.deadline(&limits).map(|d| d.1),
            Some(Closed::IdleTimeout)
        );
        assert!(
            state.idle_since().is_some(),
            "answered and waiting: evictable"
        );
    }
}
