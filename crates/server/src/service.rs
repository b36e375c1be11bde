//! The service value behind every gRPC method of `groups.v1`: the database workers, and how
//! long a request may wait for them. Each service's methods live in a module of their own
//! (`members`, `directory`, `audit`).

use std::time::Duration;

use crate::pipeline::Call;
use crate::workers::Database;

/// Implements `groups.v1.GroupMembers`, `groups.v1.Directory` and `groups.v1.Audit`; cheap to
/// clone (it holds a handle to the workers).
#[derive(Debug, Clone)]
pub struct Service {
    pub(crate) db: Database,
    /// How long a request waits for the database before UNAVAILABLE.
    pub(crate) checkout: Duration,
}

impl Service {
    /// Reads the parts of a call every method needs.
    pub(crate) fn call<T>(&self, request: &tonic::Request<T>) -> Call {
        Call::read(request, self.checkout)
    }
}
