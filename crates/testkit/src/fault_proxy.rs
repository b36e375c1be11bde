//! `FaultProxy`: a TCP proxy between two processes (gateway → server, server → PostgreSQL) that
//! a test can cut, restore and slow down, to see how the upstream's outage looks downstream.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long the proxy tries to reach the upstream for a new connection before closing it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Granularity of latency sleeps, so `cut()` and drop end a delayed connection promptly.
const SLEEP_SLICE: Duration = Duration::from_millis(10);

/// A TCP proxy on `127.0.0.1:0` forwarding every connection to one upstream address.
///
/// - [`cut`](Self::cut): closes every open connection and, until [`restore`](Self::restore),
///   closes new ones as soon as they are accepted: the upstream looks down.
/// - [`set_latency`](Self::set_latency): delays every chunk forwarded, either way.
///
/// Dropping it closes everything. Plain threads, no runtime: it works under any test harness.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    cut: AtomicBool,
    closing: AtomicBool,
    latency_nanos: AtomicU64,
    /// Bumped by every cut, under the `connections` lock: a connection of an older
    /// generation is over, even if it was still being set up during the cut.
    generation: AtomicU64,
    connections: Mutex<HashMap<u64, [TcpStream; 2]>>,
    next_id: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy to `upstream`. Panics if it cannot listen.
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("groups-testkit: proxy cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("groups-testkit: proxy address: {e}"));
        let shared = Arc::new(Shared::default());
        let acceptor = thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, upstream, &shared)
            })
            .unwrap_or_else(|e| panic!("groups-testkit: proxy thread: {e}"));
        Self {
            addr,
            upstream,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Closes every open connection, and closes new ones at once until `restore`.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Delays each chunk forwarded, in either direction, by `latency` (zero: no delay).
    /// Applies from the next chunk on, on open connections too.
    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.shared.latency_nanos.store(nanos, Ordering::SeqCst);
    }

    pub fn connection_count(&self) -> usize {
        self.shared.connections().len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.close_all();
        // `accept` blocks; a connection of our own wakes it to see `closing`. Only join when
        // that worked, so a drop can never hang.
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            && let Some(acceptor) = self.acceptor.take()
        {
            let _ = acceptor.join();
        }
    }
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, [TcpStream; 2]>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn close_all(&self) {
        let mut connections = self.connections();
        self.generation.fetch_add(1, Ordering::SeqCst);
        for (_, streams) in connections.drain() {
            for stream in streams {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    fn is_over(&self, generation: u64) -> bool {
        self.closing.load(Ordering::SeqCst) || self.generation.load(Ordering::SeqCst) != generation
    }

    /// Sleeps the current latency; false if the connection was cut meanwhile.
    fn delay(&self, generation: u64) -> bool {
        let latency = Duration::from_nanos(self.latency_nanos.load(Ordering::SeqCst));
        let deadline = Instant::now() + latency;
        loop {
            if self.is_over(generation) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(SLEEP_SLICE));
        }
    }
}

fn accept_loop(listener: &TcpListener, upstream: SocketAddr, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.closing.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let generation = shared.generation.load(Ordering::SeqCst);
        if shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        // Connect on a thread of its own: a slow upstream must not hold up other clients.
        let shared = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || connect(client, upstream, &shared, generation));
    }
}

fn connect(client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>, generation: u64) {
    let Ok(upstream) = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    // Protocols of small request/response messages (PostgreSQL's, HTTP/2's) would otherwise
    // wait on Nagle's algorithm at every hop.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let streams = (|| {
        Some((
            [client.try_clone().ok()?, upstream.try_clone().ok()?],
            [client.try_clone().ok()?, upstream.try_clone().ok()?],
        ))
    })();
    let Some((registered, [client_reader, upstream_reader])) = streams else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    {
        let mut connections = shared.connections();
        // Registering under the lock `cut` holds while it bumps the generation: a connection is
        // either closed by the cut or set up after it, never missed.
        if shared.is_over(generation) || shared.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
            return;
        }
        connections.insert(id, registered);
    }
    let finished = Arc::new(AtomicU8::new(0));
    let upstream_bound = {
        let (shared, finished) = (Arc::clone(shared), Arc::clone(&finished));
        move || pump(client_reader, upstream, &shared, id, generation, &finished)
    };
    let _ = thread::Builder::new()
        .name("fault-proxy-up".into())
        .spawn(upstream_bound);
    pump(upstream_reader, client, shared, id, generation, &finished);
}

/// Copies `from` to `to` until end-of-file (passed on as a half-close) or an error (which
/// closes both sockets, so the other direction ends too).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: &Shared,
    id: u64,
    generation: u64,
    finished: &AtomicU8,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let clean_end = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        if !shared.delay(generation) || to.write_all(&buf[..n]).is_err() {
            break false;
        }
    };
    if clean_end && !shared.is_over(generation) {
        let _ = to.shutdown(Shutdown::Write);
    } else {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
    // The second direction to finish retires the connection.
    if finished.fetch_add(1, Ordering::SeqCst) == 1 {
        shared.connections().remove(&id);
    }
}
