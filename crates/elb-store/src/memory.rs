//! A backend that keeps states in memory: for tests and throw-away runs.

use std::collections::HashMap;
use std::sync::Mutex;

use elb_model::State;

use crate::backend::{Backend, Revision, StoreError};

#[derive(Debug, Default)]
pub struct MemoryBackend {
    scopes: Mutex<HashMap<String, (Revision, State)>>,
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    async fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError> {
        Ok(self.scopes.lock().expect("poisoned").get(scope).cloned())
    }

    async fn commit(
        &self,
        scope: &str,
        expected: Revision,
        _base: &State,
        state: &State,
    ) -> Result<Revision, StoreError> {
        let mut scopes = self.scopes.lock().expect("poisoned");
        let found = scopes.get(scope).map_or(0, |(rev, _)| *rev);
        if found != expected {
            return Err(StoreError::Conflict { expected, found });
        }
        scopes.insert(scope.to_owned(), (found + 1, state.clone()));
        Ok(found + 1)
    }
}
