//! What a storage backend must provide.

use elb_model::State;
use tokio::sync::mpsc;

/// A version of one scope's state, greater after every commit; 0 means "never written".
/// (etcd's revisions are the store's, so they grow by more than one between a scope's
/// commits.)
pub type Revision = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else committed first; reload and retry.
    #[error("revision conflict: expected {expected}, found {found}")]
    Conflict { expected: Revision, found: Revision },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored state cannot be decoded: {0}")]
    Decode(#[from] serde_json::Error),
    /// A key that no part of the state is stored under.
    #[error("the store holds a key elbd does not know: {0}")]
    Layout(String),
    /// The distributed store cannot be reached, or did not answer in time: worth retrying.
    /// A commit whose answer was lost may have landed.
    #[error("etcd at {endpoints}: {message}")]
    Unavailable { endpoints: String, message: String },
    /// The distributed store refused the request, and would again (too large, not
    /// permitted): nothing was committed.
    #[error("etcd at {endpoints} refused: {message}")]
    Refused { endpoints: String, message: String },
    /// A value larger than the distributed store takes in one request; nothing was committed.
    #[error("{key} is {bytes} bytes, more than the {limit} etcd takes in one request")]
    TooLarge {
        key: String,
        bytes: usize,
        limit: usize,
    },
}

impl StoreError {
    /// Whether retrying later may succeed: the store was busy, unreachable, full or raced.
    /// Nothing was committed (for etcd, a commit whose answer was lost may have landed).
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull};
        match self {
            Self::Conflict { .. } | Self::Unavailable { .. } => true,
            Self::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(DatabaseBusy | DatabaseLocked | DiskFull)
            ),
            _ => false,
        }
    }
}

/// Whole states as the backend commits them (others' commits, and this process's own, which
/// the store has published already), in revision order, each once; states in between may be
/// skipped.
pub type Changes = mpsc::UnboundedReceiver<(Revision, State)>;

/// Durable storage of one state per scope (an account), with compare-and-swap.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// The latest committed state of `scope` and its revision, if it was ever written.
    async fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError>;

    /// Durably stores `next` as the next revision of `scope`, provided the scope is still at
    /// `expected`, where it held `base`; otherwise changes nothing and returns
    /// [`StoreError::Conflict`].
    async fn commit(
        &self,
        scope: &str,
        expected: Revision,
        base: &State,
        next: &State,
    ) -> Result<Revision, StoreError>;

    /// The commits to `scope` after `after`, for a backend other processes write while this
    /// one runs; `None` for one only this process writes (SQLite, memory), whose changes the
    /// store sees as it makes them.
    async fn watch(&self, _scope: &str, _after: Revision) -> Result<Option<Changes>, StoreError> {
        Ok(None)
    }

    /// Whether the watch is up now (false: serving the last state seen); `None` for a backend
    /// without one.
    fn following(&self) -> Option<bool> {
        None
    }
}

/// Several [`Store`](crate::Store)s may share one backend, as processes share a database.
#[async_trait::async_trait]
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    async fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError> {
        (**self).load(scope).await
    }

    async fn commit(
        &self,
        scope: &str,
        expected: Revision,
        base: &State,
        next: &State,
    ) -> Result<Revision, StoreError> {
        (**self).commit(scope, expected, base, next).await
    }

    async fn watch(&self, scope: &str, after: Revision) -> Result<Option<Changes>, StoreError> {
        (**self).watch(scope, after).await
    }

    fn following(&self) -> Option<bool> {
        (**self).following()
    }
}
