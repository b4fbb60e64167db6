//! What a storage backend must provide.

use elb_model::State;

/// A monotonically increasing version of one scope's state; 0 means "never written".
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
}

/// Durable storage of one state per scope (an account), with compare-and-swap.
pub trait Backend: Send + Sync {
    /// The latest committed state of `scope` and its revision, if it was ever written.
    fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError>;

    /// Durably stores `state` as the next revision of `scope`, provided the scope is still at
    /// `expected`; otherwise changes nothing and returns [`StoreError::Conflict`].
    fn commit(
        &self,
        scope: &str,
        expected: Revision,
        state: &State,
    ) -> Result<Revision, StoreError>;
}

/// Several [`Store`](crate::Store)s may share one backend, as processes share a database.
impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError> {
        (**self).load(scope)
    }

    fn commit(
        &self,
        scope: &str,
        expected: Revision,
        state: &State,
    ) -> Result<Revision, StoreError> {
        (**self).commit(scope, expected, state)
    }
}
