//! The closed-loop load generator: C tasks, each sending its next removal as soon as the last one
//! answered, over REST (one keep-alive HTTP/1.1 connection per task) or gRPC (HTTP/2 channels
//! shared by the tasks, as the gateway shares its own).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use groups_proto::{GroupMembersClient, RemoveGroupMemberRequest};
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::measurement::{Measurement, Plan, new_histogram};
use crate::memberships::SeedLayout;

/// A request still unanswered after this long counts as a timeout (the services' own deadlines
/// are shorter: this only guards the benchmark against hanging).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One task's way of removing a membership that exists: success is the only right answer.
/// `Err` holds the kind of failure, for counting.
pub(crate) trait Remover: Send + 'static {
    fn remove(&mut self, group: i64, user: i64) -> impl Future<Output = Result<(), String>> + Send;
}

/// REST through the gateway: `DELETE /v1.1/instances/{i}/groups/{g}/users/{u}/` with
/// `X-API-KEY`, on a connection of its own that it keeps alive (and reopens if it closes).
#[derive(Debug)]
pub(crate) struct RestRemover {
    addr: SocketAddr,
    host: HeaderValue,
    key: HeaderValue,
    path_prefix: String,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl RestRemover {
    pub(crate) fn new(addr: SocketAddr, instance: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::try_from(addr.to_string())?,
            key: HeaderValue::try_from(key).context("the key is not a header value")?,
            path_prefix: format!("/v1.1/instances/{instance}/groups/"),
            sender: None,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        // Small requests: send them at once rather than wait for Nagle (the gateway does too).
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(async move {
            // Ends when the connection closes; the next request reconnects.
            let _ = connection.await;
        });
        Ok(sender)
    }
}

impl Remover for RestRemover {
    async fn remove(&mut self, group: i64, user: i64) -> Result<(), String> {
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(self.connect().await?),
        };
        if sender.ready().await.is_err() {
            self.sender = None;
            return Err("HTTP connection closed".to_owned());
        }
        let request = Request::delete(format!("{}{group}/users/{user}/", self.path_prefix))
            .header(header::HOST, self.host.clone())
            .header("x-api-key", self.key.clone())
            .body(Empty::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(error) => {
                self.sender = None;
                return Err(format!("HTTP: {error}"));
            }
        };
        let status = response.status();
        // Read to the end, so the connection can carry the next request.
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        if status == StatusCode::NO_CONTENT {
            return Ok(());
        }
        let detail = body
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        Err(format!("HTTP {} {detail}", status.as_u16())
            .trim_end()
            .to_owned())
    }
}

/// gRPC straight to the server: `RemoveGroupMember` with `x-api-key` metadata.
#[derive(Debug)]
pub(crate) struct GrpcRemover {
    client: GroupMembersClient<Channel>,
    instance: String,
    key: AsciiMetadataValue,
}

impl GrpcRemover {
    /// `count` HTTP/2 channels to `addr`, connected now so a server that is not there fails the
    /// run at once.
    pub(crate) async fn channels(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<Channel>> {
        let mut channels = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let channel = Endpoint::from_shared(format!("http://{addr}"))?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("cannot connect to the gRPC server at {addr}"))?;
            channels.push(channel);
        }
        Ok(channels)
    }

    pub(crate) fn new(channel: Channel, instance: &str, key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: GroupMembersClient::new(channel),
            instance: instance.to_owned(),
            key: key.parse().context("the key is not a metadata value")?,
        })
    }
}

impl Remover for GrpcRemover {
    async fn remove(&mut self, group: i64, user: i64) -> Result<(), String> {
        let mut request = tonic::Request::new(RemoveGroupMemberRequest {
            instance_name: self.instance.clone(),
            group_id: group,
            user_id: user,
            allow_missing: false,
            parent: 0,
        });
        request.metadata_mut().insert("x-api-key", self.key.clone());
        match self.client.remove_group_member(request).await {
            Ok(_) => Ok(()),
            Err(status) => {
                let message: String = status.message().chars().take(60).collect();
                Err(format!("gRPC {:?} {message}", status.code()))
            }
        }
    }
}

/// Runs `plan` with one task per remover, each taking the next request number from a shared
/// counter, until the plan's time is up or its memberships are used up.
pub(crate) async fn drive<R: Remover>(
    removers: Vec<R>,
    plan: &Plan,
    layout: SeedLayout,
) -> anyhow::Result<Measurement> {
    let next = Arc::new(AtomicU64::new(0));
    let measure_from = Instant::now() + plan.warmup;
    let end = measure_from + plan.duration;
    let mut tasks = Vec::with_capacity(removers.len());
    for remover in removers {
        let next = Arc::clone(&next);
        let task = Task {
            next,
            limit: plan.memberships,
            layout,
            measure_from,
            end,
        };
        tasks.push(tokio::spawn(task.run(remover)));
    }
    let mut total = Tally::default();
    for task in tasks {
        total.merge(task.await.context("a load task panicked")?);
    }
    let window = if total.exhausted {
        total.last_end.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(measure_from)
        })
    } else {
        end - measure_from
    };
    Ok(Measurement {
        latency: total.latency,
        measured_ok: total.measured_ok,
        window,
        sent: total.sent,
        ok: total.ok,
        errors: total.errors,
        exhausted: total.exhausted,
        // Tasks that found the counter past the end took a number and used none.
        used_until: next.load(Ordering::Relaxed).min(plan.memberships),
    })
}

/// What one task shares with the others and when it stops: requests completing within
/// `measure_from..=end` are measured; none starts after `end`.
#[derive(Debug)]
struct Task {
    next: Arc<AtomicU64>,
    limit: u64,
    layout: SeedLayout,
    measure_from: Instant,
    end: Instant,
}

impl Task {
    async fn run<R: Remover>(self, mut remover: R) -> Tally {
        let mut tally = Tally::default();
        while Instant::now() < self.end {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            if k >= self.limit {
                tally.exhausted = true;
                break;
            }
            let (group, user) = self.layout.membership(k);
            let start = Instant::now();
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, remover.remove(group, user))
                .await
                .unwrap_or_else(|_| Err("timeout".to_owned()));
            let done = Instant::now();
            tally.sent += 1;
            let measured = done >= self.measure_from && done <= self.end;
            if measured {
                let micros = u64::try_from((done - start).as_micros()).unwrap_or(u64::MAX);
                tally.latency.saturating_record(micros.max(1));
                tally.last_end = tally.last_end.max(Some(done));
            }
            match outcome {
                Ok(()) => {
                    tally.ok += 1;
                    tally.measured_ok += u64::from(measured);
                }
                Err(kind) => *tally.errors.entry(kind).or_default() += 1,
            }
        }
        tally
    }
}

/// One task's counts, then all tasks' summed.
#[derive(Debug)]
struct Tally {
    latency: hdrhistogram::Histogram<u64>,
    measured_ok: u64,
    sent: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    last_end: Option<Instant>,
    exhausted: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            measured_ok: 0,
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            last_end: None,
            exhausted: false,
        }
    }
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.measured_ok += other.measured_ok;
        self.sent += other.sent;
        self.ok += other.ok;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.last_end = self.last_end.max(other.last_end);
        self.exhausted |= other.exhausted;
    }
}
