//! The group-membership domain: what a removal is, who may do it, and in which order it is checked.
//!
//! Nothing here does I/O. The store answers [`removal::MembershipStore`]; the edges (gRPC server,
//! REST gateway) parse their input into these types and map [`DomainError`] once each.

pub mod access;
pub mod error;
pub mod ids;
pub mod instance;
pub mod key;
pub mod removal;

pub use access::{Principal, Role};
pub use error::{DomainError, FieldViolation, Reason, Result};
pub use ids::{GroupId, UserId};
pub use instance::InstanceName;
pub use key::{Credential, KeyDigest, KeyKind, PresentedKey, SecretKey};
pub use removal::{MembershipStore, RemovalAttempt, RemovalFacts, RemovalRequest};
