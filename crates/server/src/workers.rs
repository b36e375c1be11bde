//! The database workers: a few long-lived blocking threads that run every statement of the
//! service, and the one bounded queue where requests wait for them.
//!
//! A worker that comes free takes the oldest job; when that is a removal, it also takes every
//! other removal waiting (up to `max_batch`) and runs them all as one statement: one round trip
//! and one commit for the batch, each caller answered with its own outcome (group commit). No
//! timer: when one request is waiting, the batch holds one removal, so latency does not grow.
//!
//! Waiting is bounded twice. The queue holds at most `capacity` jobs: past it a caller is told
//! UNAVAILABLE at once rather than queued without bound. And a job waits at most its budget
//! (the pool checkout timeout, never past the caller's deadline): a job that a worker has not
//! taken by then is withdrawn and answered UNAVAILABLE (or DEADLINE_EXCEEDED). A job taken is
//! always run and answered, so a removal that commits is never reported as failed; a job whose
//! deadline has passed by the time its connection is ready is not run at all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use groups_core::{Credential, DomainError, RemovalFacts, RemovalRequest};
use groups_store::{Pool, PooledConn, Removal};
use tokio::sync::oneshot;

use crate::observe::BATCH_SIZE;

/// How long a job may wait and work: fixed when its request arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// The caller's deadline (gRPC `grpc-timeout`), if it sent one.
    pub(crate) deadline: Option<Instant>,
    /// When waiting for a database worker ends with UNAVAILABLE: the pool checkout timeout
    /// after arrival, or the deadline if that comes first.
    pub(crate) give_up_at: Instant,
}

impl Budget {
    /// The budget of a request that arrived at `received`.
    pub(crate) fn new(received: Instant, deadline: Option<Instant>, checkout: Duration) -> Self {
        let checkout_by = received + checkout;
        Self {
            deadline,
            give_up_at: deadline.map_or(checkout_by, |deadline| deadline.min(checkout_by)),
        }
    }

    fn deadline_passed(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now >= deadline)
    }

    /// The answer for a job whose wait ran out.
    fn expired(&self) -> DomainError {
        if self.deadline_passed(Instant::now()) {
            DomainError::DeadlineExceeded
        } else {
            DomainError::Unavailable("no database connection came free in time".to_owned())
        }
    }
}

/// Settings of the workers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerConfig {
    /// Worker threads (each uses one pooled connection at a time).
    pub(crate) workers: usize,
    /// Most removals in one statement.
    pub(crate) max_batch: usize,
    /// Most jobs waiting; past it, UNAVAILABLE at once.
    pub(crate) capacity: usize,
}

/// The handle every service holds; cheap to clone. When the last handle is dropped, the workers
/// finish the jobs queued and stop.
#[derive(Debug, Clone)]
pub(crate) struct Database {
    shared: Arc<Shared>,
    _close: Arc<CloseOnDrop>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    pool: Pool,
    config: WorkerConfig,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Job>,
    /// Workers waiting for a job: only then does a new job need a wake-up call.
    idle: usize,
    closed: bool,
}

/// Where a job is: waiting in the queue, taken by a worker, or withdrawn by its caller. The
/// two sides race for it with one compare-and-swap, so exactly one of them decides its fate.
#[derive(Debug, Default)]
struct Ticket(AtomicU8);

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const WITHDRAWN: u8 = 2;

impl Ticket {
    fn claim(&self, to: u8) -> bool {
        self.0
            .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

type Reply<T> = oneshot::Sender<Result<T, DomainError>>;

/// A statement run alone on a worker's connection; it sends its own answer.
type Statement = Box<dyn FnOnce(Result<&mut PooledConn, DomainError>) + Send>;

#[derive(Debug)]
struct Job {
    ticket: Arc<Ticket>,
    budget: Budget,
    work: Work,
}

enum Work {
    Removal {
        request: RemovalRequest,
        credential: Credential,
        request_id: Box<str>,
        reply: Reply<RemovalFacts>,
    },
    Statement(Statement),
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Work::Removal { .. } => "Removal",
            Work::Statement(_) => "Statement",
        })
    }
}

impl Database {
    /// Starts `config.workers` worker threads over `pool`.
    pub(crate) fn start(pool: Pool, config: WorkerConfig) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            pool,
            config,
        });
        for n in 0..config.workers.max(1) {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("db-worker-{n}"))
                .spawn(move || shared.work())?;
        }
        Ok(Self {
            _close: Arc::new(CloseOnDrop(shared.clone())),
            shared,
        })
    }

    /// Runs one removal, batched with the others waiting, and returns what the store found.
    pub(crate) async fn remove(
        &self,
        budget: Budget,
        request: RemovalRequest,
        credential: Credential,
        request_id: &str,
    ) -> Result<RemovalFacts, DomainError> {
        let (reply, answer) = oneshot::channel();
        let work = Work::Removal {
            request,
            credential,
            request_id: request_id.into(),
            reply,
        };
        self.submit(budget, work, answer).await
    }

    /// Runs `statement` alone on a worker's connection.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        budget: Budget,
        statement: impl FnOnce(&mut PooledConn) -> Result<T, DomainError> + Send + 'static,
    ) -> Result<T, DomainError> {
        let (reply, answer) = oneshot::channel();
        let work = Work::Statement(Box::new(move |conn| {
            let _gone = reply.send(conn.and_then(statement));
        }));
        self.submit(budget, work, answer).await
    }

    /// Queues a job and waits for its answer within its budget (see the module's documentation).
    async fn submit<T>(
        &self,
        budget: Budget,
        work: Work,
        mut answer: oneshot::Receiver<Result<T, DomainError>>,
    ) -> Result<T, DomainError> {
        let ticket = Arc::new(Ticket::default());
        self.shared.push(Job {
            ticket: ticket.clone(),
            budget,
            work,
        })?;
        let mut pending = Withdraw {
            shared: &self.shared,
            ticket: Some(ticket),
        };
        let answered = match tokio::time::timeout_at(budget.give_up_at.into(), &mut answer).await {
            Ok(answered) => answered,
            Err(_waited_too_long) => {
                if pending.withdraw() {
                    return Err(budget.expired());
                }
                // A worker has it: it runs, and its answer is the caller's, unless the caller's
                // deadline passes first (a statement already running ends by statement_timeout).
                match budget.deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline.into(), answer)
                        .await
                        .map_err(|_| DomainError::DeadlineExceeded)?,
                    None => answer.await,
                }
            }
        };
        pending.ticket = None;
        answered.unwrap_or_else(|_| Err(DomainError::Internal("a database worker stopped".into())))
    }
}

/// Withdraws a job its caller stopped waiting for (the caller's future was dropped, or its
/// budget ran out), unless a worker took it first.
struct Withdraw<'a> {
    shared: &'a Shared,
    ticket: Option<Arc<Ticket>>,
}

impl Withdraw<'_> {
    /// Whether the job was withdrawn (it then never runs).
    fn withdraw(&mut self) -> bool {
        let Some(ticket) = self.ticket.take() else {
            return false;
        };
        if !ticket.claim(WITHDRAWN) {
            return false;
        }
        self.shared
            .lock()
            .queue
            .retain(|job| !Arc::ptr_eq(&job.ticket, &ticket));
        true
    }
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// Closes the queue when the last [`Database`] handle goes: the workers drain it and stop.
#[derive(Debug)]
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_all();
    }
}

/// What a worker took: one statement, or a batch of removals.
enum Taken {
    Statement(Job),
    Removals(Vec<Job>),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The lock guards plain data; a panic elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job) -> Result<(), DomainError> {
        let mut state = self.lock();
        if state.closed {
            return Err(DomainError::Unavailable("the server is stopping".into()));
        }
        if state.queue.len() >= self.config.capacity {
            return Err(DomainError::Unavailable(format!(
                "{} requests already wait for the database",
                state.queue.len()
            )));
        }
        state.queue.push_back(job);
        let wake = state.idle > 0;
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Blocks until there is work; `None` once the queue is closed and empty.
    fn take(&self) -> Option<Taken> {
        let mut state = self.lock();
        let first = loop {
            match state.queue.pop_front() {
                Some(job) if job.ticket.claim(TAKEN) => break job,
                Some(_withdrawn) => {}
                None if state.closed => return None,
                None => {
                    state.idle += 1;
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.idle -= 1;
                }
            }
        };
        if matches!(first.work, Work::Statement(_)) {
            return Some(Taken::Statement(first));
        }
        let mut batch = vec![first];
        let mut index = 0;
        while index < state.queue.len() && batch.len() < self.config.max_batch {
            if matches!(state.queue[index].work, Work::Removal { .. }) {
                if let Some(job) = state.queue.remove(index)
                    && job.ticket.claim(TAKEN)
                {
                    batch.push(job);
                }
            } else {
                index += 1;
            }
        }
        Some(Taken::Removals(batch))
    }

    /// A worker's life: take, check out a connection, run, answer.
    fn work(&self) {
        while let Some(taken) = self.take() {
            match taken {
                Taken::Statement(job) => self.run_statement(job),
                Taken::Removals(jobs) => self.run_removals(jobs),
            }
        }
    }

    /// A connection for jobs that wait until `give_up_at` at most.
    fn checkout(&self, give_up_at: Instant) -> Result<groups_store::Checkout, DomainError> {
        self.pool
            .checkout(give_up_at.saturating_duration_since(Instant::now()))
    }

    fn run_statement(&self, job: Job) {
        let Work::Statement(statement) = job.work else {
            return;
        };
        match self.checkout(job.budget.give_up_at) {
            Ok(_) | Err(_) if job.budget.deadline_passed(Instant::now()) => {
                statement(Err(DomainError::DeadlineExceeded));
            }
            Ok(mut conn) => statement(Ok(&mut conn)),
            Err(error) => statement(Err(error)),
        }
    }

    fn run_removals(&self, jobs: Vec<Job>) {
        let give_up_at = jobs.iter().map(|job| job.budget.give_up_at).max();
        let conn = give_up_at.map(|at| self.checkout(at));
        let now = Instant::now();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut removals = Vec::with_capacity(jobs.len());
        let mut requests = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Work::Removal {
                request,
                credential,
                request_id,
                reply,
            } = job.work
            else {
                continue;
            };
            if job.budget.deadline_passed(now) {
                let _gone = reply.send(Err(DomainError::DeadlineExceeded));
                continue;
            }
            if let Err(error) = request.attempt(&credential) {
                let _gone = reply.send(Err(error));
                continue;
            }
            requests.push((request, credential, request_id));
            replies.push(reply);
        }
        // Every attempt left is possible (checked above), so removals and replies line up.
        for (request, credential, request_id) in &requests {
            if let Ok(attempt) = request.attempt(credential) {
                removals.push(Removal {
                    attempt,
                    request_id,
                });
            }
        }
        if removals.is_empty() {
            return;
        }
        metrics::histogram!(BATCH_SIZE).record(removals.len() as f64);
        let outcome = match conn {
            Some(Ok(mut conn)) => {
                conn.run(|conn| groups_store::removal::remove_members(conn, &removals))
            }
            Some(Err(error)) => Err(error),
            None => return,
        };
        match outcome {
            Ok(facts) => {
                for (reply, facts) in replies.into_iter().zip(facts) {
                    let _gone = reply.send(Ok(facts));
                }
            }
            Err(error) => {
                for reply in replies {
                    let _gone = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
