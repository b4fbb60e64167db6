//! The revisioned store of elbd's state, and the publisher of its snapshots.
//!
//! Callers see only [`Store`]: they [`Store::update`] the state with commands (atomically, at
//! an expected revision, retried on conflict) and [`Store::subscribe`] to immutable
//! [`Snapshot`]s. Where the bytes live is a [`Backend`]: SQLite in the data dir by default
//! ([`SqliteBackend`]), memory for tests ([`MemoryBackend`]). A backend has etcd's semantics
//! (compare-and-swap on a revision, per-scope keys), so an etcd backend can be added later
//! without touching the callers.

mod backend;
mod memory;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

pub use backend::{Backend, Revision, StoreError};
pub use memory::MemoryBackend;
pub use sqlite::SqliteBackend;
pub use store::{Snapshot, Store, UpdateError};
