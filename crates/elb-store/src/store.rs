//! [`Store`]: commands in, snapshots out.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use elb_model::id::SequentialIds;
use elb_model::{Command, Context, IdSource, ModelError, Outcome, State};
use tokio::sync::watch;

use crate::backend::{Backend, Changes, Revision, StoreError};

/// How often an update is retried when another writer commits first.
const MAX_ATTEMPTS: usize = 8;

/// An immutable view of the state at one revision. Shared by `Arc`; never changed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub revision: Revision,
    pub state: State,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The change was refused; nothing was written.
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Identifiers from the operating system's entropy (via fastrand's seeded generator).
struct RandomIds(fastrand::Rng);

impl IdSource for RandomIds {
    fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }
}

pub struct Store {
    backend: Box<dyn Backend>,
    scope: String,
    published: Arc<watch::Sender<Arc<Snapshot>>>,
    /// Serialises this process's writers so they do not spin on each other's conflicts;
    /// writers in other processes are handled by the backend's compare-and-swap.
    writer: Mutex<RandomIds>,
    /// Drives the backend's futures on the calling thread (the backend does its I/O on its
    /// own threads, if it has any).
    driver: Option<tokio::runtime::Runtime>,
}

impl Store {
    /// Opens the state of `account`. A store written before regions kept its one region under
    /// `legacy_key` (`ACCOUNT/REGION`): that state is read when `account` has none, and is
    /// written under `account` by the first commit.
    ///
    /// A backend that others write too ([`Backend::watch`]) is followed from then on: their
    /// commits are published as this store's are. Blocks: call it off async threads.
    pub fn open(
        backend: Box<dyn Backend>,
        account: &str,
        legacy_key: &str,
    ) -> Result<Self, StoreError> {
        let driver = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime without I/O builds");
        let (revision, state) = match driver.block_on(backend.load(account))? {
            Some(found) => found,
            None => (
                0,
                driver
                    .block_on(backend.load(legacy_key))?
                    .map(|(_, s)| s)
                    .unwrap_or_default(),
            ),
        };
        let (published, _) = watch::channel(Arc::new(Snapshot { revision, state }));
        let published = Arc::new(published);
        if let Some(changes) = driver.block_on(backend.watch(account, revision))? {
            let published = published.clone();
            std::thread::Builder::new()
                .name("elbd-store-watch".into())
                .spawn(move || follow(changes, &published))
                .map_err(|e| StoreError::Unavailable {
                    endpoints: "-".into(),
                    message: format!("starting the watch: {e}"),
                })?;
        }
        Ok(Self {
            backend,
            scope: account.to_owned(),
            published,
            writer: Mutex::new(RandomIds(fastrand::Rng::new())),
            driver: Some(driver),
        })
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.published.borrow().clone()
    }

    /// Whether this store follows others' commits now (false: etcd is out of reach and the
    /// last state seen is served); `None` for a store only this process writes.
    pub fn following(&self) -> Option<bool> {
        self.backend.following()
    }

    /// Receives every snapshot from now on (intermediate ones may be skipped; each is whole).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.published.subscribe()
    }

    /// Applies one command to an open region and commits it. Blocks, as [`Store::update`].
    pub fn execute(&self, region: &str, command: Command) -> Result<Outcome, UpdateError> {
        self.update(|state, cx| state.apply(region, command.clone(), cx))
            .map(|(_, out)| out)
    }

    /// Runs `change` on a copy of the latest state and commits the copy, all or nothing. On a
    /// revision conflict it reloads and runs `change` again, so `change` must only depend on
    /// the state it is given. A change that leaves the state equal commits nothing. Blocks
    /// until the backend answers: call it off async threads (`spawn_blocking`).
    pub fn update<T>(
        &self,
        mut change: impl FnMut(&mut State, &mut Context<'_>) -> Result<T, ModelError>,
    ) -> Result<(Arc<Snapshot>, T), UpdateError> {
        let mut ids = self.writer.lock().expect("poisoned");
        let mut base = self.snapshot();
        for _ in 0..MAX_ATTEMPTS {
            let mut next = base.state.clone();
            let mut cx = Context {
                ids: &mut *ids,
                now_ms: now_ms(),
            };
            let out = change(&mut next, &mut cx)?;
            if next == base.state {
                return Ok((base, out));
            }
            let committed =
                self.block_on(
                    self.backend
                        .commit(&self.scope, base.revision, &base.state, &next),
                );
            match committed {
                Ok(revision) => {
                    let snapshot = Arc::new(Snapshot {
                        revision,
                        state: next,
                    });
                    publish(&self.published, snapshot.clone());
                    return Ok((snapshot, out));
                }
                Err(StoreError::Conflict { .. }) => base = self.reload()?,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict {
            expected: base.revision,
            found: base.revision + 1,
        }
        .into())
    }

    /// Runs `change` on a copy of the latest state and keeps nothing: whether it would
    /// succeed (EC2's DryRun).
    pub fn try_update<T>(
        &self,
        change: impl FnOnce(&mut State, &mut Context<'_>) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let mut copy = self.snapshot().state.clone();
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: now_ms(),
        };
        change(&mut copy, &mut cx)
    }

    /// Reads the backend's latest state and publishes it if it is newer than the one
    /// published: for a backend another process wrote without a watch (SQLite, when one
    /// process hands over to the next).
    pub fn refresh(&self) -> Result<Arc<Snapshot>, StoreError> {
        self.reload()
    }

    /// Reads the backend's latest state and publishes it.
    fn reload(&self) -> Result<Arc<Snapshot>, StoreError> {
        let current = self.snapshot();
        let Some((revision, state)) = self.block_on(self.backend.load(&self.scope))? else {
            return Ok(current);
        };
        let snapshot = Arc::new(Snapshot { revision, state });
        publish(&self.published, snapshot.clone());
        Ok(snapshot)
    }

    fn block_on<T>(&self, work: impl Future<Output = T>) -> T {
        self.driver
            .as_ref()
            .expect("open until dropped")
            .block_on(work)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The last owner may be an async task, where a blocking shutdown would panic.
        if let Some(driver) = self.driver.take() {
            driver.shutdown_background();
        }
    }
}

/// Publishes `snapshot` unless a newer one is out already (this process's commits and the
/// watch's race to publish).
fn publish(published: &watch::Sender<Arc<Snapshot>>, snapshot: Arc<Snapshot>) {
    published.send_if_modified(|current| {
        let newer = snapshot.revision > current.revision;
        if newer {
            *current = snapshot;
        }
        newer
    });
}

/// Publishes what other processes commit, until the backend stops watching.
fn follow(mut changes: Changes, published: &watch::Sender<Arc<Snapshot>>) {
    while let Some((revision, state)) = changes.blocking_recv() {
        publish(published, Arc::new(Snapshot { revision, state }));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
