//! What every method of the server does alike, in one place: read the call (the caller's key
//! from metadata, its deadline, its request id, its budget for waiting on the database), say
//! what it asks on the request span, and end it (the outcome on the span, database failures
//! counted and logged, the domain error as a `Status`). A method is then its own parsing, its
//! database work (through [`crate::workers::Database`]) and the domain's judgement.
//!
//! The one log line and the metrics of each RPC are written by `crate::observe`, for every
//! method alike, once the answer has been sent.

use std::time::{Duration, Instant};

use groups_core::{Credential, DomainError};
use groups_runtime::RequestId;
use tonic::Status;

use crate::credential::credential_from;
use crate::deadline::deadline_from;
use crate::observe::{Arrival, DATABASE_ERRORS_TOTAL};
use crate::status::status_of;
use crate::workers::Budget;

/// A call as every method needs it.
#[derive(Debug)]
pub(crate) struct Call {
    /// The key the caller presented.
    pub(crate) credential: Credential,
    /// How long it may wait for the database, and its deadline.
    pub(crate) budget: Budget,
    /// Its request id (the caller's `x-request-id`, or a new one).
    pub(crate) request_id: RequestId,
}

impl Call {
    /// Reads the call from the request's metadata; `checkout` is how long a request may wait
    /// for the database.
    pub(crate) fn read<T>(request: &tonic::Request<T>, checkout: Duration) -> Self {
        let arrival = request.extensions().get::<Arrival>().cloned();
        let (received, request_id) = match arrival {
            Some(arrival) => (arrival.at, arrival.request_id),
            None => (Instant::now(), RequestId::generate()),
        };
        let deadline = deadline_from(request.metadata(), received);
        Self {
            credential: credential_from(request.metadata()),
            budget: Budget::new(received, deadline, checkout),
            request_id,
        }
    }
}

/// Records what the call asks on the request span (the log line says it). The instance name
/// is bounded; 0 means "not given"; the key is never recorded.
pub(crate) fn describe(instance: &str, group: i64, user: i64) {
    let span = tracing::Span::current();
    let instance: String = instance.chars().take(64).collect();
    span.record("instance", instance.as_str());
    if group != 0 {
        span.record("group", group);
    }
    if user != 0 {
        span.record("user", user);
    }
}

/// Ends a method: `done` (such as `removed`) or the error's reason as the span's outcome, a
/// failure of our own logged (and counted, when at the database), the error as a `Status`.
pub(crate) fn finish<T>(result: Result<T, DomainError>, done: &'static str) -> Result<T, Status> {
    let span = tracing::Span::current();
    match result {
        Ok(value) => {
            span.record("outcome", done);
            Ok(value)
        }
        Err(error) => {
            span.record("outcome", error.reason().map_or("INTERNAL", |r| r.as_str()));
            match &error {
                DomainError::Unavailable(_) => {
                    metrics::counter!(DATABASE_ERRORS_TOTAL).increment(1);
                    tracing::error!(%error, "failed at the database");
                }
                DomainError::Internal(_) | DomainError::DeadlineExceeded => {
                    tracing::error!(%error, "failed");
                }
                _ => {}
            }
            Err(status_of(&error))
        }
    }
}
