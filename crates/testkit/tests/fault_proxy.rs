//! `FaultProxy` in front of a small echo server: forwarding, cuts, restores, latency.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use groups_testkit::FaultProxy;

/// An echo server on a free port; runs until the test process ends.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || std::io::copy(&mut &stream, &mut &stream));
        }
    });
    addr
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let stream = TcpStream::connect(proxy.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn round_trip(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(message)?;
    let mut received = vec![0u8; message.len()];
    stream.read_exact(&mut received)?;
    Ok(received)
}

/// Whether the peer closed the connection (end-of-file or a reset), within the read timeout.
fn is_closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn forwards_bytes_both_ways() {
    let upstream = echo_server();
    let proxy = FaultProxy::start(upstream);
    assert_eq!(proxy.upstream(), upstream);
    let mut stream = connect(&proxy);
    assert_eq!(round_trip(&mut stream, b"hello").unwrap(), b"hello");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut reader = stream.try_clone().unwrap();
    let expected = big.clone();
    let echoed = thread::spawn(move || {
        let mut received = vec![0u8; expected.len()];
        reader.read_exact(&mut received).unwrap();
        received == expected
    });
    stream.write_all(&big).unwrap();
    assert!(echoed.join().unwrap(), "a large transfer arrives intact");
}

#[test]
fn a_half_close_is_passed_on() {
    let proxy = FaultProxy::start(echo_server());
    let mut stream = connect(&proxy);
    stream.write_all(b"last words").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    assert_eq!(received, b"last words");
    assert!(
        wait_until(|| proxy.connection_count() == 0),
        "the connection is retired"
    );
}

#[test]
fn cut_closes_open_connections_and_refuses_new_ones_until_restored() {
    let proxy = FaultProxy::start(echo_server());
    let mut open = connect(&proxy);
    assert_eq!(round_trip(&mut open, b"ping").unwrap(), b"ping");
    assert!(wait_until(|| proxy.connection_count() == 1));

    proxy.cut();
    assert!(
        is_closed(&mut open),
        "an open connection is closed by the cut"
    );
    assert_eq!(proxy.connection_count(), 0);
    for _ in 0..3 {
        // The proxy still accepts (the port stays its own) but closes at once.
        let mut refused = connect(&proxy);
        assert!(round_trip(&mut refused, b"ping").is_err() || is_closed(&mut refused));
    }

    proxy.restore();
    let mut again = connect(&proxy);
    assert_eq!(round_trip(&mut again, b"pong").unwrap(), b"pong");
}

#[test]
fn latency_delays_each_direction() {
    let proxy = FaultProxy::start(echo_server());
    let mut stream = connect(&proxy);
    let started = Instant::now();
    round_trip(&mut stream, b"warm-up").unwrap();
    let fast = started.elapsed();

    proxy.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"slow").unwrap(), b"slow");
    let slow = started.elapsed();
    assert!(
        slow >= Duration::from_millis(300),
        "request and reply each waited: {slow:?}"
    );

    proxy.set_latency(Duration::ZERO);
    let started = Instant::now();
    round_trip(&mut stream, b"fast again").unwrap();
    assert!(started.elapsed() < fast + Duration::from_millis(150));
}

#[test]
fn a_cut_ends_a_delayed_connection_at_once() {
    let proxy = FaultProxy::start(echo_server());
    let mut stream = connect(&proxy);
    proxy.set_latency(Duration::from_secs(3600));
    stream.write_all(b"stuck").unwrap();
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    proxy.cut();
    assert!(is_closed(&mut stream));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn dropping_the_proxy_closes_its_connections() {
    let proxy = FaultProxy::start(echo_server());
    let addr = proxy.addr();
    let mut stream = connect(&proxy);
    assert_eq!(round_trip(&mut stream, b"x").unwrap(), b"x");
    drop(proxy);
    assert!(is_closed(&mut stream));
    assert!(TcpStream::connect(addr).is_err(), "nobody listens any more");
}

#[test]
fn an_unreachable_upstream_closes_the_client() {
    let gone = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let proxy = FaultProxy::start(gone);
    let mut stream = connect(&proxy);
    assert!(is_closed(&mut stream));
}
