//! The revisioned store of elbd's state, and the publisher of its snapshots.
//!
//! Callers see only [`Store`]: they [`Store::update`] the state with commands (atomically, at
//! an expected revision, retried on conflict) and [`Store::subscribe`] to immutable
//! [`Snapshot`]s. Where the bytes live is a [`Backend`]: SQLite in the data dir by default
//! ([`SqliteBackend`]), etcd for a state that several processes share ([`EtcdBackend`]),
//! memory for tests ([`MemoryBackend`]). Each commits by compare-and-swap on a revision; etcd
//! also tells each process what the others commit.

mod backend;
mod etcd;
mod layout;
mod live;
mod memory;
mod sqlite;
mod store;
#[cfg(test)]
mod tests;

pub use backend::{Backend, Changes, Revision, StoreError};
pub use etcd::{EtcdBackend, EtcdOptions, EtcdTls};
pub use live::{Leadership, Lease, LiveKeys};
pub use memory::MemoryBackend;
pub use sqlite::SqliteBackend;
pub use store::{Snapshot, Store, UpdateError};
