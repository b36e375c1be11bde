//! Errors of provisioning and set-up. The hot path speaks `DomainError` instead.

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// What can go wrong while provisioning or setting up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A named thing does not exist (`what` says which: "instance demo", "admin a@b.c", ...).
    #[error("{0} was not found")]
    NotFound(String),
    /// A unique thing already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// An argument is not acceptable.
    #[error("invalid {0}")]
    Invalid(String),
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    /// Making a key failed (the OS gave no randomness).
    #[error("cannot make a key: {0}")]
    Randomness(String),
}
