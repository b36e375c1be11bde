//! Test support for the workspace: a real PostgreSQL with a fresh database per test, provisioned
//! fixtures, the real `groups-server`/`groups-gateway`/`groupsctl` binaries on port 0, and a TCP
//! proxy that injects faults.
//!
//! Everything here is for tests: failures panic with a message saying what to fix, and every
//! type is safe to use from the parallel threads of one test process.
//!
//! - [`TestDb`]: a migrated database of its own, dropped with the value. The PostgreSQL server is
//!   `TEST_DATABASE_URL`'s, or a private one started once per test process and stopped when the
//!   process ends (even on abort).
//! - [`World`]: a `TestDb` with an instance "demo", its owner, a group, a user and a membership,
//!   plus methods to add admins, API keys, instances and to query what tests assert on.
//! - [`ServiceCommand`], [`spawn_server`], [`spawn_gateway`], [`spawn_stack`], [`groupsctl`]: the
//!   real processes, with their captured logs.
//! - [`FaultProxy`]: cuts, restores and slows TCP connections between two processes.
//! - [`OtlpSink`]: an OpenTelemetry collector stand-in that keeps the spans it is sent.
//! - [`spec`]: one table of SPEC.md's cases, and its fixture, that the gRPC and the REST
//!   suites both run, and [`spec_tests!`] to declare their tests.
//! - [`eventually`], [`stop`]: waiting from async tests without blocking the runtime.

mod binaries;
mod db_server;
mod fault_proxy;
mod groupsctl;
mod otlp_sink;
mod output;
mod service;
pub mod spec;
mod test_db;
mod wait;
mod world;

pub use binaries::{gateway_binary, groupsctl_binary, server_binary};
pub use fault_proxy::FaultProxy;
pub use groups_core::{GroupId, Role, UserId};
pub use groupsctl::{CtlOutput, groupsctl, groupsctl_command};
pub use otlp_sink::{ExportedSpan, OtlpSink};
pub use service::{
    ServiceCommand, ServiceProcess, Stack, spawn_gateway, spawn_json_logging_stack, spawn_server,
    spawn_stack,
};
pub use test_db::TestDb;
pub use wait::{eventually, stop};
pub use world::{Admin, ApiKey, RowCounts, Tenant, World};

/// A well-formed key nobody holds (account-shaped: even).
pub const UNKNOWN_ACCOUNT_KEY: &str = "0123456789abcdef0123456789abcdef01234560";

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests share these between threads (a `World` with spawned clients, a proxy cut from
    /// another thread), so losing `Send + Sync` would be a breaking change.
    #[test]
    fn handles_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<TestDb>();
        shareable::<World>();
        shareable::<ServiceProcess>();
        shareable::<Stack>();
        shareable::<FaultProxy>();
        shareable::<OtlpSink>();
        shareable::<ServiceCommand>();
    }
}
