//! What lives only as long as the process that says it: keys under `PREFIX/live/SCOPE/`, put
//! under an etcd lease that this process keeps alive. When the process dies, or loses etcd
//! for longer than the lease's TTL, etcd deletes them and every watcher sees them go; a
//! process that stops cleanly revokes its lease, and they go at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicI64, Ordering};

use etcd_client::{Client, PutOptions, TxnOp};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::backend::StoreError;
use crate::etcd::{EtcdBackend, Names, Scoped, kv, mirror};

/// Key (relative to `live/SCOPE/`) → value.
pub type LiveKeys = BTreeMap<String, Vec<u8>>;

/// This process's keys under its lease: set them, and the lease's keeper writes them (again
/// after a lost lease is granted anew).
pub struct Lease {
    wanted: watch::Sender<LiveKeys>,
    /// The lease now held (0 while none is), for [`Lease::revoke`].
    held: Arc<AtomicI64>,
    client: Client,
    names: Names,
    runtime: tokio::runtime::Handle,
}

impl Lease {
    /// Puts `key` (relative to `live/SCOPE/`) with `value`, unless it holds it already.
    pub fn set(&self, key: &str, value: Vec<u8>) {
        self.wanted
            .send_if_modified(|keys| keys.insert(key.to_owned(), value.clone()) != Some(value));
    }

    /// Makes the keys under `prefix` exactly `keys` (each relative to `prefix`).
    pub fn set_under(&self, prefix: &str, keys: LiveKeys) {
        self.wanted.send_if_modified(|wanted| {
            let before = wanted.len();
            let mut changed = false;
            wanted.retain(|k, _| !k.starts_with(prefix) || keys.contains_key(&k[prefix.len()..]));
            changed |= wanted.len() != before;
            for (key, value) in keys {
                let key = format!("{prefix}{key}");
                changed |= wanted.get(&key) != Some(&value);
                wanted.insert(key, value);
            }
            changed
        });
    }

    /// Gives the lease up now, so every key under it goes at once (a clean stop), waiting a
    /// moment for etcd to say so; a lease not revoked runs out in its TTL anyway.
    pub async fn revoke(self) {
        let Self {
            wanted,
            held,
            client,
            names,
            runtime,
        } = self;
        drop(wanted);
        let lease = held.load(Ordering::Relaxed);
        if lease == 0 {
            return;
        }
        let revoking = runtime.spawn(async move {
            let _ = names.ask(client.lease_client().revoke(lease)).await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), revoking).await;
    }
}

impl EtcdBackend {
    /// Starts keeping a lease of `ttl` for `scope`'s live keys of this process.
    pub fn lease(&self, scope: &str, ttl: Duration) -> Lease {
        let (wanted, receiver) = watch::channel(LiveKeys::new());
        let names = self.live_names(scope);
        let held = Arc::new(AtomicI64::new(0));
        let keeper = Keeper {
            client: self.client(),
            names: names.clone(),
            ttl,
            held: held.clone(),
        };
        self.spawn(keeper.keep(receiver));
        Lease {
            wanted,
            held,
            client: self.client(),
            names,
            runtime: self.handle(),
        }
    }

    /// Every process's live keys of `scope`, as etcd holds them now (one read; blocks).
    pub fn live_now(&self, scope: &str) -> Result<LiveKeys, StoreError> {
        let names = self.live_names(scope);
        let scoped = self.block_on(Scoped::read(self.client(), &names))?;
        Ok(scoped.keys)
    }

    /// Every process's live keys of `scope`, as etcd holds them now; a new value on each
    /// change. `None` until etcd has been read once (an empty map would say no one lives).
    pub fn live(&self, scope: &str) -> watch::Receiver<Option<Arc<LiveKeys>>> {
        let (sender, receiver) = watch::channel(None);
        let (client, names) = (self.client(), self.live_names(scope));
        self.spawn(async move {
            mirror(client, &names, None, |current| {
                sender.send_replace(Some(Arc::new(current.keys.clone())));
                Ok(!sender.is_closed())
            })
            .await;
        });
        receiver
    }
}

/// Holds a lease and writes the wanted keys under it, granting a new lease when it is lost.
struct Keeper {
    client: Client,
    names: Names,
    ttl: Duration,
    held: Arc<AtomicI64>,
}

/// Writes per transaction: under etcd's 128 operations.
const WRITES_PER_TXN: usize = 100;

impl Keeper {
    async fn keep(self, mut wanted: watch::Receiver<LiveKeys>) {
        // Until the Lease is dropped (a clean stop revokes it itself).
        while wanted.has_changed().is_ok() {
            match self.hold(&mut wanted).await {
                Ok(()) => return,
                Err(e) => {
                    warn!(error = %e, "etcd lease lost: this process's live keys are gone until a new one is granted")
                }
            }
            self.held.store(0, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One lease's life: until it is lost (an error) or the [`Lease`] is dropped (revoked).
    /// Renewals run beside the writes, so a slow write never lets the lease lapse.
    async fn hold(&self, wanted: &mut watch::Receiver<LiveKeys>) -> Result<(), StoreError> {
        let names = &self.names;
        let mut leases = self.client.lease_client();
        let seconds = self.ttl.as_secs().max(1) as i64;
        let grant = names.ask(leases.grant(seconds, None)).await?;
        // etcd may raise a TTL below its minimum: renew by what it granted.
        let (lease, granted) = (grant.id(), grant.ttl().max(1) as u64);
        self.held.store(lease, Ordering::Relaxed);
        let (mut keeper, mut answers) = names.ask(leases.keep_alive(lease)).await?;
        info!(lease, ttl_seconds = granted, "etcd lease granted");
        let renew = async {
            let mut every = tokio::time::interval(Duration::from_secs(granted) / 3);
            loop {
                every.tick().await;
                names.ask(keeper.keep_alive()).await?;
                let answer = names.ask(answers.message()).await?;
                if answer.is_none_or(|a| a.ttl() <= 0) {
                    return Err(names.unavailable(format!("lease {lease} expired")));
                }
            }
        };
        let write = async {
            let mut written = LiveKeys::new();
            loop {
                let keys = wanted.borrow_and_update().clone();
                self.write(lease, &written, &keys).await?;
                written = keys;
                if wanted.changed().await.is_err() {
                    // The process is stopping: its keys go now, not in a TTL.
                    let _ = names.ask(self.client.lease_client().revoke(lease)).await;
                    return Ok(());
                }
            }
        };
        tokio::select! {
            renewed = renew => renewed,
            written = write => written,
        }
    }

    /// Writes what differs between `written` and `keys`, in transactions of a bounded size;
    /// records (`nodes/…`) first, so that what describes a process is never held up by its
    /// findings.
    async fn write(
        &self,
        lease: i64,
        written: &LiveKeys,
        keys: &LiveKeys,
    ) -> Result<(), StoreError> {
        let names = &self.names;
        let mut ops: Vec<(bool, TxnOp)> = keys
            .iter()
            .filter(|(k, v)| written.get(*k) != Some(*v))
            .map(|(k, v)| {
                let options = PutOptions::new().with_lease(lease);
                (
                    !k.starts_with("nodes/"),
                    TxnOp::put(names.key(k), v.clone(), Some(options)),
                )
            })
            .collect();
        ops.extend(
            (written.keys())
                .filter(|k| !keys.contains_key(*k))
                .map(|k| (true, TxnOp::delete(names.key(k), None))),
        );
        ops.sort_by_key(|(later, _)| *later);
        let ops: Vec<TxnOp> = ops.into_iter().map(|(_, op)| op).collect();
        for batch in ops.chunks(WRITES_PER_TXN) {
            let txn = etcd_client::Txn::new().and_then(batch.to_vec());
            names.ask(kv(&self.client).txn(txn)).await?;
        }
        Ok(())
    }
}

impl EtcdBackend {
    /// Campaigns for the lead of `scope`'s control loops, as `who`: one process at a time
    /// leads (an etcd election, each campaigner with a lease of `ttl`), and a leader that dies
    /// or loses etcd loses its lease, which hands the lead to another within `ttl`. The
    /// receiver says whether this process leads now; dropping it resigns.
    pub fn lead(&self, scope: &str, ttl: Duration, who: &str) -> watch::Receiver<bool> {
        let (leading, receiver) = watch::channel(false);
        let (client, names, who) = (self.client(), self.live_names(scope), who.to_owned());
        self.spawn(async move {
            loop {
                let result = lead_once(&client, &names, ttl, &who, &leading).await;
                leading.send_replace(false);
                match result {
                    Ok(()) => return,
                    Err(e) => warn!(error = %e, "the lead of the control loops is lost; campaigning again"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        receiver
    }
}

/// One campaign, and the lead while its lease lives; `Ok` once no one listens.
async fn lead_once(
    client: &Client,
    names: &Names,
    ttl: Duration,
    who: &str,
    leading: &watch::Sender<bool>,
) -> Result<(), StoreError> {
    let seconds = ttl.as_secs().max(1) as i64;
    let mut leases = client.lease_client();
    let lease = names.ask(leases.grant(seconds, None)).await?.id();
    let (mut keeper, mut answers) = names.ask(leases.keep_alive(lease)).await?;
    let keep = async {
        let mut renew = tokio::time::interval(Duration::from_secs(seconds as u64) / 3);
        loop {
            renew.tick().await;
            names.ask(keeper.keep_alive()).await?;
            let answer = names.ask(answers.message()).await?;
            if answer.is_none_or(|a| a.ttl() <= 0) {
                return Err::<(), _>(names.unavailable(format!("lease {lease} expired")));
            }
        }
    };
    tokio::pin!(keep);
    let mut election = client.election_client();
    // No timeout: a campaign waits, as long as it takes, for the leader before to go.
    let campaign = election.campaign(names.key(LEADER), who, lease);
    tokio::select! {
        kept = &mut keep => return kept,
        () = leading.closed() => return resign(&mut leases, names, lease).await,
        elected = campaign => {
            elected.map_err(|e| names.unavailable(e.to_string()))?;
        }
    }
    info!(who, "leading the control loops");
    leading.send_replace(true);
    tokio::select! {
        kept = &mut keep => kept,
        () = leading.closed() => resign(&mut leases, names, lease).await,
    }
}

/// Gives up a lead or a campaign now, rather than in a lease's time.
async fn resign(
    leases: &mut etcd_client::LeaseClient,
    names: &Names,
    lease: i64,
) -> Result<(), StoreError> {
    let _ = names.ask(leases.revoke(lease)).await;
    Ok(())
}

/// The election's name, under the scope's live keys.
const LEADER: &str = "leader";
