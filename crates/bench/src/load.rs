//! The closed-loop load generator: C tasks, each sending its next removal as soon as the last one
//! answered, over REST (one keep-alive HTTP/1.1 connection per task) or gRPC (HTTP/2 channels
//! shared by the tasks, as the gateway shares its own).

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

use crate::measurement::{Measurement, Plan};
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
    let window = (measure_from, measure_from + plan.duration);
    let tasks: Vec<_> = removers
        .into_iter()
        .map(|remover| tokio::spawn(remove(remover, Arc::clone(&next), *plan, layout, window)))
        .collect();
    let (mut total, mut last_end) = (Measurement::default(), None);
    for task in tasks {
        let (tally, end) = task.await.context("a load task panicked")?;
        total.merge(tally);
        last_end = last_end.max(end);
    }
    total.window = if total.exhausted {
        last_end.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(measure_from)
        })
    } else {
        plan.duration
    };
    // Tasks that found the counter past the end took a number and used none.
    total.used_until = next.load(Ordering::Relaxed).min(plan.memberships);
    Ok(total)
}

/// One task: removes the memberships of the numbers it takes from `next` until `end`, measuring
/// those that complete within `measure_from..=end`; returns its tally and its last measured end.
async fn remove<R: Remover>(
    mut remover: R,
    next: Arc<AtomicU64>,
    plan: Plan,
    layout: SeedLayout,
    (measure_from, end): (Instant, Instant),
) -> (Measurement, Option<Instant>) {
    let (mut tally, mut last_end) = (Measurement::default(), None);
    while Instant::now() < end {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= plan.memberships {
            tally.exhausted = true;
            break;
        }
        let (group, user) = layout.membership(k);
        let start = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, remover.remove(group, user))
            .await
            .unwrap_or_else(|_| Err("timeout".to_owned()));
        let done = Instant::now();
        tally.sent += 1;
        let measured = done >= measure_from && done <= end;
        if measured {
            let micros = u64::try_from((done - start).as_micros()).unwrap_or(u64::MAX);
            tally.latency.saturating_record(micros.max(1));
            last_end = last_end.max(Some(done));
        }
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                tally.measured_ok += u64::from(measured);
            }
            Err(kind) => tally.add_errors(&kind, 1),
        }
    }
    (tally, last_end)
}
