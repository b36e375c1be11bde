//! Raw HTTP/1.1 over TCP: the bytes on the wire are exactly the generated ones, so no client
//! resolves `..`, re-encodes a path or refuses a header.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request, as the bytes that go on the wire.
#[derive(Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: Vec<u8>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    pub(crate) fn new(method: &str, target: impl Into<Vec<u8>>) -> Self {
        Self {
            method: method.to_owned(),
            target: target.into(),
            headers: Vec::new(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = [self.method.as_bytes(), b" ", &self.target].concat();
        bytes.extend_from_slice(b" HTTP/1.1\r\nHost: hostile.test\r\nConnection: close\r\n");
        for (name, value) in &self.headers {
            bytes.extend([name.as_bytes(), b": ", value, b"\r\n"].concat());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }

    /// Writes the request on a new connection and reads the answer.
    pub(crate) fn send(&self, addr: SocketAddr) -> Result<Reply, String> {
        exchange(addr, &self.to_bytes(), self.method == "HEAD")
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, shown(&self.target))?;
        for (name, value) in &self.headers {
            write!(f, " | {name}: {}", shown(value))?;
        }
        Ok(())
    }
}

/// Bytes as escaped ASCII, the long ones cut short.
fn shown(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 300 {
        format!("{}…({} bytes)", &text[..300], bytes.len())
    } else {
        text
    }
}

/// What came back.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The answer to a HEAD: the headers of a GET's, no body.
    pub(crate) head_only: bool,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} {}",
            self.status,
            self.headers,
            shown(&self.body)
        )
    }
}

/// Writes `request` on a new connection and reads the whole answer (the request says
/// `Connection: close`). A server that stops reading and answers early is fine: the answer is
/// read after a failed write. No answer at all is an error.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8], head_only: bool) -> Result<Reply, String> {
    let timeout = Duration::from_secs(30);
    let mut tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(timeout)).ok();
    tcp.set_write_timeout(Some(timeout)).ok();
    let written = tcp.write_all(request);
    let mut raw = Vec::new();
    let read = tcp.read_to_end(&mut raw);
    let broken = |e: &std::io::Error| {
        matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        )
    };
    // A reset once some of the answer arrived is how a server that stopped reading closes.
    if let Err(e) = &read
        && (!broken(e) || raw.is_empty())
    {
        return Err(format!(
            "read: {e} after {} bytes (write: {written:?})",
            raw.len()
        ));
    }
    parse_reply(&raw, head_only).ok_or_else(|| {
        format!(
            "no complete answer ({} bytes: {}; write: {written:?})",
            raw.len(),
            shown(&raw)
        )
    })
}

fn parse_reply(raw: &[u8], head_only: bool) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.to_owned(), value.trim().to_owned()))
        })
        .collect::<Option<_>>()?;
    let mut body = raw[end + 4..].to_vec();
    if head_only {
        body.clear();
    }
    let reply = Reply {
        status,
        headers,
        body,
        head_only,
    };
    // A body cut short is no answer either.
    let length = reply.header("content-length").map(str::parse::<usize>);
    match length {
        Some(Ok(n)) if !head_only && n != reply.body.len() => None,
        Some(Err(_)) => None,
        _ => Some(reply),
    }
}
