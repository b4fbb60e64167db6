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
use crate::etcd::{EtcdBackend, MAX_BYTES, Names, Scoped, kv, mirror};

/// Key (relative to `live/SCOPE/`) → value.
pub type LiveKeys = BTreeMap<String, Vec<u8>>;

/// This process's keys under its lease: set them, and the lease's keeper writes them (again
/// after a lost lease is granted anew).
pub struct Lease {
    wanted: watch::Sender<LiveKeys>,
    /// The lease now held, for [`Lease::revoke`].
    held: Held,
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
        let Self { wanted, held, .. } = self;
        drop(wanted);
        held.revoke().await;
    }
}

/// The lease a task of etcd's runtime holds now, for giving it up from elsewhere.
#[derive(Clone)]
struct Held {
    lease: Arc<AtomicI64>,
    client: Client,
    names: Names,
    runtime: tokio::runtime::Handle,
}

impl Held {
    fn new(backend: &EtcdBackend, names: &Names) -> Self {
        Self {
            lease: Arc::new(AtomicI64::new(0)),
            client: backend.client(),
            names: names.clone(),
            runtime: backend.handle(),
        }
    }

    fn set(&self, lease: i64) {
        self.lease.store(lease, Ordering::Relaxed);
    }

    /// Revokes the lease held now, waiting a moment for etcd to say so (a lease not revoked
    /// runs out in its TTL anyway).
    async fn revoke(self) {
        let lease = self.lease.load(Ordering::Relaxed);
        if lease == 0 {
            return;
        }
        let Self {
            client,
            names,
            runtime,
            ..
        } = self;
        let revoking = runtime.spawn(async move {
            let _ = names.ask(client.lease_client().revoke(lease)).await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), revoking).await;
    }
}

/// Whether this process leads the control loops ([`EtcdBackend::lead`]).
pub struct Leadership {
    leading: watch::Receiver<bool>,
    held: Held,
}

impl Leadership {
    /// Leading now; changes are [`Leadership::changed`].
    pub fn leads(&mut self) -> bool {
        *self.leading.borrow_and_update()
    }

    /// Waits for the lead to be won or lost.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        self.leading.changed().await
    }

    /// Hands the lead over now (a clean stop), rather than when the lease runs out.
    pub async fn resign(self) {
        let Self { leading, held } = self;
        drop(leading);
        held.revoke().await;
    }
}

impl EtcdBackend {
    /// Starts keeping a lease of `ttl` for `scope`'s live keys of this process.
    pub fn lease(&self, scope: &str, ttl: Duration) -> Lease {
        let (wanted, receiver) = watch::channel(LiveKeys::new());
        let names = self.live_names(scope);
        let held = Held::new(self, &names);
        let keeper = Keeper {
            client: self.client(),
            names,
            ttl,
            held: held.clone(),
        };
        self.spawn(keeper.keep(receiver));
        Lease { wanted, held }
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
    held: Held,
}

/// Writes per transaction: under etcd's 128 operations.
const WRITES_PER_TXN: usize = 100;
/// The keys that describe a process, written before its findings.
const RECORDS: &str = "nodes/";

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
            self.held.set(0);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One lease's life: until it is lost (an error) or the [`Lease`] is dropped (revoked).
    /// Renewals run beside the writes, so a slow write never lets the lease lapse, and a
    /// write that fails is tried again under the same lease.
    async fn hold(&self, wanted: &mut watch::Receiver<LiveKeys>) -> Result<(), StoreError> {
        let names = &self.names;
        let (lease, granted, renewals) = grant(&self.client, names, self.ttl).await?;
        self.held.set(lease);
        info!(lease, ttl_seconds = granted.as_secs(), "etcd lease granted");
        let write = async {
            let mut written = LiveKeys::new();
            loop {
                let keys = wanted.borrow_and_update().clone();
                while let Err(e) = self.write(lease, &mut written, &keys).await {
                    warn!(error = %e, "writing this process's live keys failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if wanted.changed().await.is_err() {
                    // The process is stopping: its keys go now, not in a TTL.
                    let _ = names.ask(self.client.lease_client().revoke(lease)).await;
                    return Ok(());
                }
            }
        };
        tokio::select! {
            renewed = renewals => renewed,
            written = write => written,
        }
    }

    /// Writes what differs between `written` and `keys`, bringing `written` along as each
    /// transaction lands: the records (`nodes/…`) in one of their own first, so that what
    /// describes a process is never held up by its findings, then the rest in transactions
    /// bounded in operations and bytes.
    async fn write(
        &self,
        lease: i64,
        written: &mut LiveKeys,
        keys: &LiveKeys,
    ) -> Result<(), StoreError> {
        let mut changes: Vec<(String, Option<&Vec<u8>>)> = (keys.iter())
            .filter(|(k, v)| written.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v)))
            .chain(
                (written.keys())
                    .filter(|k| !keys.contains_key(*k))
                    .map(|k| (k.clone(), None)),
            )
            .collect();
        changes.sort_by_key(|(k, _)| !k.starts_with(RECORDS));
        let size = |(k, v): &(String, Option<&Vec<u8>>)| k.len() + v.map_or(0, Vec::len);
        let record = |(k, _): &(String, Option<&Vec<u8>>)| k.starts_with(RECORDS);
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (i, change) in changes.iter().enumerate() {
            batch.push(change);
            bytes += size(change);
            let full = batch.len() >= WRITES_PER_TXN
                || changes.get(i + 1).is_none_or(|next| {
                    record(next) != record(change) || bytes + size(next) > MAX_BYTES
                });
            if full {
                self.commit(lease, &batch).await?;
                for (key, value) in batch.drain(..) {
                    match value {
                        Some(value) => written.insert(key.clone(), (*value).clone()),
                        None => written.remove(key),
                    };
                }
                bytes = 0;
            }
        }
        Ok(())
    }

    async fn commit(
        &self,
        lease: i64,
        batch: &[&(String, Option<&Vec<u8>>)],
    ) -> Result<(), StoreError> {
        let names = &self.names;
        let ops: Vec<TxnOp> = (batch.iter())
            .map(|(key, value)| match value {
                Some(value) => {
                    let options = PutOptions::new().with_lease(lease);
                    TxnOp::put(names.key(key), (*value).clone(), Some(options))
                }
                None => TxnOp::delete(names.key(key), None),
            })
            .collect();
        let txn = etcd_client::Txn::new().and_then(ops);
        names.ask(kv(&self.client).txn(txn)).await?;
        Ok(())
    }
}

/// Grants a lease of `ttl` (etcd may raise a TTL below its minimum: what it granted counts)
/// and returns it with the future that keeps it alive: renewed every third of its TTL, each
/// renewal given that third to answer, so that a process cut off from etcd gives up within
/// two thirds of the TTL, before etcd lets the lease go. The future ends only in an error.
async fn grant(
    client: &Client,
    names: &Names,
    ttl: Duration,
) -> Result<(i64, Duration, impl Future<Output = Result<(), StoreError>>), StoreError> {
    let mut leases = client.lease_client();
    let seconds = ttl.as_secs().max(1) as i64;
    let grant = names.ask(leases.grant(seconds, None)).await?;
    let (lease, granted) = (grant.id(), Duration::from_secs(grant.ttl().max(1) as u64));
    let (mut keeper, mut answers) = names.ask(leases.keep_alive(lease)).await?;
    let names = names.clone();
    let renewals = async move {
        let third = granted / 3;
        let mut every = tokio::time::interval(third);
        loop {
            every.tick().await;
            let renewed = tokio::time::timeout(third, async {
                keeper.keep_alive().await?;
                answers.message().await
            });
            let answer = match renewed.await {
                Ok(answer) => answer.map_err(|e| names.unavailable(e.to_string()))?,
                Err(_) => None,
            };
            if answer.is_none_or(|a| a.ttl() <= 0) {
                return Err(names.unavailable(format!("lease {lease} was not renewed in time")));
            }
        }
    };
    Ok((lease, granted, renewals))
}

impl EtcdBackend {
    /// Campaigns for the lead of `scope`'s control loops, as `who`: one process at a time
    /// leads (an etcd election, each campaigner with a lease of `ttl`), and a leader that dies
    /// or loses etcd loses its lease, which hands the lead to another within `ttl`. The
    /// [`Leadership`] says whether this process leads now; dropping it resigns.
    pub fn lead(&self, scope: &str, ttl: Duration, who: &str) -> Leadership {
        let (leading, receiver) = watch::channel(false);
        let (client, names, who) = (self.client(), self.live_names(scope), who.to_owned());
        let held = Held::new(self, &names);
        let campaigner = held.clone();
        self.spawn(async move {
            loop {
                let result = lead_once(&client, &names, ttl, &who, &leading, &campaigner).await;
                leading.send_replace(false);
                match result {
                    Ok(()) => return,
                    Err(e) => warn!(error = %e, "the lead of the control loops is lost; campaigning again"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Leadership {
            leading: receiver,
            held,
        }
    }
}

/// One campaign, and the lead while its lease lives; `Ok` once no one listens.
async fn lead_once(
    client: &Client,
    names: &Names,
    ttl: Duration,
    who: &str,
    leading: &watch::Sender<bool>,
    held: &Held,
) -> Result<(), StoreError> {
    let mut leases = client.lease_client();
    let (lease, _, renewals) = grant(client, names, ttl).await?;
    held.set(lease);
    tokio::pin!(renewals);
    let mut election = client.election_client();
    // No timeout: a campaign waits, as long as it takes, for the leader before to go.
    let campaign = election.campaign(names.key(LEADER), who, lease);
    let result = tokio::select! {
        renewed = &mut renewals => renewed,
        () = leading.closed() => return resign(&mut leases, names, lease).await,
        elected = campaign => elected.map(drop).map_err(|e| names.unavailable(e.to_string())),
    };
    if let Err(e) = result {
        let _ = resign(&mut leases, names, lease).await;
        return Err(e);
    }
    info!(who, "leading the control loops");
    leading.send_replace(true);
    tokio::select! {
        renewed = &mut renewals => {
            // Step down before etcd lets the lease go; hand the lead over at once if etcd
            // still answers.
            leading.send_replace(false);
            let _ = resign(&mut leases, names, lease).await;
            renewed
        }
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
