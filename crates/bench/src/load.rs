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

use crate::measurement::{Length, Measurement, Plan, new_histogram};
use crate::memberships::SeedLayout;

/// A request still unanswered after this long counts as a timeout (the services' own deadlines
/// are shorter: this only guards the benchmark against hanging).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One task's way of removing a membership. `Err` holds the kind of failure, for counting.
pub(crate) trait Remover: Send + 'static {
    /// Removes a membership that exists: success is the only right answer.
    fn remove(&mut self, group: i64, user: i64) -> impl Future<Output = Result<(), String>> + Send;

    /// Asks to remove a membership that does not exist: "not a member" is the right answer.
    fn remove_missing(
        &mut self,
        group: i64,
        user: i64,
    ) -> impl Future<Output = Result<(), String>> + Send;
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

impl RestRemover {
    /// Sends one DELETE; `Ok` holds the status and the JSON `detail`, if any.
    async fn send(&mut self, group: i64, user: i64) -> Result<(StatusCode, String), String> {
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
        let detail = body
            .ok()
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("detail")?.as_str().map(str::to_owned))
            .unwrap_or_default();
        Ok((status, detail))
    }
}

fn rest_failure(status: StatusCode, detail: &str) -> String {
    format!("HTTP {} {detail}", status.as_u16())
        .trim_end()
        .to_owned()
}

impl Remover for RestRemover {
    async fn remove(&mut self, group: i64, user: i64) -> Result<(), String> {
        match self.send(group, user).await? {
            (StatusCode::NO_CONTENT, _) => Ok(()),
            (status, detail) => Err(rest_failure(status, &detail)),
        }
    }

    async fn remove_missing(&mut self, group: i64, user: i64) -> Result<(), String> {
        match self.send(group, user).await? {
            (StatusCode::NOT_FOUND, detail) if detail == "Not found" => Ok(()),
            (status, detail) => Err(rest_failure(status, &detail)),
        }
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

impl GrpcRemover {
    async fn send(&mut self, group: i64, user: i64, allow_missing: bool) -> Result<(), String> {
        let mut request = tonic::Request::new(RemoveGroupMemberRequest {
            instance_name: self.instance.clone(),
            group_id: group,
            user_id: user,
            allow_missing,
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

impl Remover for GrpcRemover {
    async fn remove(&mut self, group: i64, user: i64) -> Result<(), String> {
        self.send(group, user, false).await
    }

    /// With `allow_missing` (AIP-135), "not a member" is a success.
    async fn remove_missing(&mut self, group: i64, user: i64) -> Result<(), String> {
        self.send(group, user, true).await
    }
}

/// Runs `plan` with one task per remover (as many as the plan's concurrency), each taking the
/// next request number from a shared counter, until the plan's length is reached or its range
/// of memberships is used up.
pub(crate) async fn drive<R: Remover>(
    removers: Vec<R>,
    plan: &Plan,
    layout: SeedLayout,
) -> anyhow::Result<Measurement> {
    let next = Arc::new(AtomicU64::new(plan.range.start));
    let prime_until = Instant::now() + plan.prime;
    let clock = Clock::new(plan, prime_until);
    let mut tasks = Vec::with_capacity(removers.len());
    for remover in removers {
        let next = Arc::clone(&next);
        let limit = plan.range.end;
        tasks.push(tokio::spawn(async move {
            let mut remover = remover;
            let (primed, wrong) = prime(&mut remover, prime_until, layout).await;
            let mut tally = run_task(remover, next, clock, limit, layout).await;
            tally.primed = primed;
            for (kind, n) in wrong {
                *tally.errors.entry(format!("warm-up: {kind}")).or_default() += n;
            }
            tally
        }));
    }
    let mut total = TaskTally::default();
    for task in tasks {
        total.merge(task.await.context("a load task panicked")?);
    }
    let window = match clock {
        Clock::Timed { measure_from, end } => {
            if total.exhausted {
                total.last_end.map_or(Duration::ZERO, |t| {
                    t.saturating_duration_since(measure_from)
                })
            } else {
                end - measure_from
            }
        }
        Clock::Counted { .. } => match (total.first_start, total.last_end) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        },
    };
    let mut measurement = Measurement {
        latency: total.latency,
        measured_ok: total.measured_ok,
        window,
        sent: total.sent,
        ok: total.ok,
        errors: Default::default(),
        exhausted: total.exhausted,
        // Tasks that found the counter past the end took a number and used none.
        used_until: match clock {
            Clock::Counted { end, .. } => next.load(Ordering::Relaxed).min(end),
            Clock::Timed { .. } => next.load(Ordering::Relaxed).min(plan.range.end),
        },
        primed: total.primed,
    };
    for (kind, n) in total.errors {
        measurement.add_errors(&kind, n);
    }
    Ok(measurement)
}

/// When a task stops, and which of its requests are measured.
#[derive(Debug, Clone, Copy)]
enum Clock {
    /// Completions within `measure_from..=end` are measured; no request starts after `end`.
    Timed { measure_from: Instant, end: Instant },
    /// Request numbers in `measure_from..end` are measured.
    Counted { measure_from: u64, end: u64 },
}

impl Clock {
    fn new(plan: &Plan, started: Instant) -> Self {
        match plan.length {
            Length::Timed { warmup, duration } => Self::Timed {
                measure_from: started + warmup,
                end: started + warmup + duration,
            },
            Length::Counted { warmup, requests } => Self::Counted {
                measure_from: plan.range.start + warmup,
                end: (plan.range.start + warmup + requests).min(plan.range.end),
            },
        }
    }
}

#[derive(Debug)]
struct TaskTally {
    latency: hdrhistogram::Histogram<u64>,
    measured_ok: u64,
    sent: u64,
    ok: u64,
    errors: std::collections::BTreeMap<String, u64>,
    first_start: Option<Instant>,
    last_end: Option<Instant>,
    exhausted: bool,
    primed: u64,
}

impl Default for TaskTally {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            measured_ok: 0,
            sent: 0,
            ok: 0,
            errors: Default::default(),
            first_start: None,
            last_end: None,
            exhausted: false,
            primed: 0,
        }
    }
}

impl TaskTally {
    fn merge(&mut self, other: TaskTally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.measured_ok += other.measured_ok;
        self.sent += other.sent;
        self.ok += other.ok;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.first_start = earliest(self.first_start, other.first_start);
        self.last_end = self.last_end.max(other.last_end);
        self.exhausted |= other.exhausted;
        self.primed += other.primed;
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Asks for the removal of a membership that does not exist until `until`; returns how many
/// requests it sent and the wrong answers by kind.
async fn prime<R: Remover>(
    remover: &mut R,
    until: Instant,
    layout: SeedLayout,
) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut sent = 0;
    let mut wrong = std::collections::BTreeMap::new();
    // The instance is fresh and holds only seeded users, so the user after the last is nobody's.
    let (group, user) = (layout.first_group, layout.first_user + layout.users);
    while Instant::now() < until {
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, remover.remove_missing(group, user))
            .await
            .unwrap_or_else(|_| Err("timeout".to_owned()));
        sent += 1;
        if let Err(kind) = answer {
            *wrong.entry(kind).or_default() += 1;
        }
    }
    (sent, wrong)
}

async fn run_task<R: Remover>(
    mut remover: R,
    next: Arc<AtomicU64>,
    clock: Clock,
    limit: u64,
    layout: SeedLayout,
) -> TaskTally {
    let mut tally = TaskTally::default();
    loop {
        if let Clock::Timed { end, .. } = clock
            && Instant::now() >= end
        {
            break;
        }
        let k = next.fetch_add(1, Ordering::Relaxed);
        if let Clock::Counted { end, .. } = clock
            && k >= end
        {
            break;
        }
        if k >= limit {
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
        let measured = match clock {
            Clock::Timed { measure_from, end } => done >= measure_from && done <= end,
            Clock::Counted { measure_from, .. } => k >= measure_from,
        };
        if measured {
            let micros = u64::try_from(done.duration_since(start).as_micros()).unwrap_or(u64::MAX);
            tally.latency.saturating_record(micros.max(1));
            tally.first_start = earliest(tally.first_start, Some(start));
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
