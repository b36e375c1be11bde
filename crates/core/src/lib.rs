//! The group-membership domain: who may do what, the operations (removing a user from a group,
//! reading a user or a group, listing the audit trail), and the order of checks of each.
//!
//! Nothing here does I/O. Each operation has a request type built by parsing (so invalid
//! values cannot reach the store), a [`Lookup`] for the store, the facts the store answers
//! with, and one function that judges those facts in SPEC.md's order. The edges (gRPC server,
//! REST gateway) map [`DomainError`] once each.

pub mod access;
pub mod audit;
pub mod error;
pub mod ids;
pub mod instance;
pub mod key;
pub mod reads;
pub mod removal;

pub use access::{Access, Lookup, Permission, Principal, Role, authorize};
pub use audit::{EventsPage, EventsRequest, MembershipEvent, PageToken, Snapshot, UtcMicros};
pub use error::{DomainError, FieldViolation, Reason, Result, SERVER_ERROR_DETAIL};
pub use ids::{GroupId, UserId};
pub use instance::InstanceName;
pub use key::{Credential, KeyDigest, KeyKind, PresentedKey, SecretKey};
pub use reads::{Found, Group, ReadRequest, User};
pub use removal::{Parent, RemovalAttempt, RemovalFacts, RemovalRequest};
