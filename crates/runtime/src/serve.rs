//! Serving an axum application on a bound listener, for both servers: HTTP/1 and HTTP/2
//! (cleartext), with the limits a public edge needs and a shutdown that loses no answer.
//!
//! - At most `max_connections` are open at once; past it, accepting waits (the kernel's backlog
//!   queues) until one closes.
//! - A connection that has not sent a whole request head within `header_timeout` of being
//!   accepted (or of the first byte of its next request) is closed, and so is one that sits
//!   idle between requests longer than `idle_timeout`. A request in progress is never cut:
//!   it is bounded by the deadlines of the application.
//! - On shutdown the listener closes, every connection is told to finish (HTTP/1: no more
//!   keep-alive; HTTP/2: GOAWAY) and the requests in flight get `drain_timeout` to end.
//! - Every connection is closed without a reset while the peer may still be sending: the
//!   write side is shut first (FIN) and what arrives is read and dropped until the peer
//!   closes too (a "lingering close", as Go's net/http and Apache do). Closing a socket with
//!   unread bytes makes the kernel send RST, which can destroy an answer the peer has not read
//!   yet; a lingering close makes sure an answer that was sent arrives. A connection keeps its
//!   place under `max_connections` until its lingering close ends, and the drain waits for it,
//!   so the process does not exit (and reset the socket) while an answer is still on its way.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long a closing connection keeps reading what its peer still sends.
const LINGER: Duration = Duration::from_secs(3);

/// Limits and timeouts of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ServeConfig {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Longest wait for a whole request head (`None`: no limit).
    pub header_timeout: Option<Duration>,
    /// Longest idle time between requests on a kept-alive connection (`None`: no limit).
    pub idle_timeout: Option<Duration>,
    /// HTTP/2 keepalive ping interval; a peer that does not answer within it is dropped.
    pub http2_keepalive: Option<Duration>,
    /// After shutdown begins, how long requests in flight may take.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: None,
            idle_timeout: None,
            http2_keepalive: None,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains (see the module's
/// documentation). Requests carry `ConnectInfo<SocketAddr>` with the peer's address.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let max = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopping) = watch::channel(false);
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keepalive)
        .keep_alive_timeout(config.http2_keepalive.unwrap_or(Duration::from_secs(20)));
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine. Pause so a lack of descriptors can ease.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let clock = Arc::new(Mutex::new(Clock::new(config)));
        let io = TokioIo::new(Lingering(Some(Watched {
            stream,
            clock: clock.clone(),
            slot,
        })));
        let service = {
            let clock = clock.clone();
            app.clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                })
                .map_future(move |answer| {
                    let in_flight = InFlight::start(clock.clone());
                    async move {
                        let answered = answer.await;
                        drop(in_flight);
                        answered
                    }
                })
        };
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let mut told = false;
            loop {
                let deadline = lock(&clock).deadline();
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(error) = served {
                            tracing::debug!(%error, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    () = sleep_until(deadline) => {
                        if lock(&clock).deadline().is_some_and(|d| d <= Instant::now()) {
                            tracing::debug!(%peer, "connection closed: no request in time");
                            break;
                        }
                    }
                    changed = stopping.changed(), if !told => {
                        told = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let open = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(config.drain_timeout, slots.acquire_many(open)).await;
    if drained.is_err() {
        tracing::warn!(timeout = ?config.drain_timeout, "drain timeout: dropping connections still open");
    }
    Ok(())
}

fn lock(clock: &Mutex<Clock>) -> std::sync::MutexGuard<'_, Clock> {
    clock.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// When a connection must have made progress by: what it is waiting for, since when.
#[derive(Debug)]
struct Clock {
    header_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// Requests being answered; no deadline while there are any.
    in_flight: usize,
    /// Since when no request has been in flight (accepted, or the last answer).
    waiting_since: Instant,
    /// No request has arrived yet: the first head is due within the header timeout.
    fresh: bool,
    /// The first byte of the next request head arrived then.
    head_started: Option<Instant>,
}

impl Clock {
    fn new(config: ServeConfig) -> Self {
        Self {
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            in_flight: 0,
            waiting_since: Instant::now(),
            fresh: true,
            head_started: None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        match self.head_started {
            Some(started) => self.header_timeout.map(|t| started + t),
            None if self.fresh => self.header_timeout.map(|t| self.waiting_since + t),
            None => self.idle_timeout.map(|t| self.waiting_since + t),
        }
    }

    fn read(&mut self) {
        if self.in_flight == 0 && self.head_started.is_none() {
            self.head_started = Some(Instant::now());
        }
    }
}

/// Marks a request in flight on its connection's [`Clock`] until its answer is ready.
#[derive(Debug)]
struct InFlight(Arc<Mutex<Clock>>);

impl InFlight {
    fn start(clock: Arc<Mutex<Clock>>) -> Self {
        {
            let mut clock = lock(&clock);
            clock.in_flight += 1;
            clock.fresh = false;
            clock.head_started = None;
        }
        Self(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut clock = lock(&self.0);
        clock.in_flight = clock.in_flight.saturating_sub(1);
        if clock.in_flight == 0 {
            clock.waiting_since = Instant::now();
        }
    }
}

/// A TCP stream that tells its [`Clock`] when bytes arrive.
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    clock: Arc<Mutex<Clock>>,
    /// The connection's place under `max_connections`, held until its lingering close ends:
    /// the drain waits for every slot, so the process never exits (closing the socket with a
    /// reset) while a lingering close still protects an answer in flight.
    slot: OwnedSemaphorePermit,
}

/// Closes its stream with a lingering close (see the module's documentation) when dropped.
#[derive(Debug)]
struct Lingering(Option<Watched>);

impl Lingering {
    fn watched(&mut self) -> io::Result<&mut Watched> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(Watched {
            mut stream, slot, ..
        }) = self.0.take()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let mut sink = [0_u8; 4096];
            let _ = tokio::time::timeout(LINGER, async {
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
            drop(slot);
        });
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let watched = self.watched()?;
        let before = buf.filled().len();
        let polled = Pin::new(&mut watched.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            lock(&watched.clock).read();
        }
        polled
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.watched()?.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.watched()?.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.watched()?.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.watched()?.stream).poll_shutdown(cx)
    }
}

/// Raises this process's limit of open files to the hard limit, so the connection cap, not
/// the descriptor table, decides how many clients are served. Returns the new limit.
pub fn raise_open_files_limit() -> io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The peer address of a request served by [`serve`].
pub fn peer_addr<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
