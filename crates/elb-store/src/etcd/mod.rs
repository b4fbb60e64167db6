//! The distributed backend: the state in etcd, a key per resource ([`layout`]), commits as
//! transactions conditioned on the revision they read, and a watch that hands this process
//! what the others commit.
//!
//! Under `PREFIX/SCOPE/`: `state/…` (the resources), `head` (rewritten by every commit: its
//! `mod_revision` is the state's [`Revision`], and the compare-and-swap is on it) and, for a
//! commit too large for one transaction, `staging` and `staged/ID/N`.
//!
//! **Large commits.** etcd takes at most 128 operations and about 1.5 MiB per transaction. A
//! commit within [`MAX_OPS`] and [`MAX_BYTES`] is one transaction. A larger one (a whole config
//! file) is first written as chunks of its change set under `staged/ID/`, which no reader
//! looks at; then one small conditioned transaction puts `head` and `staging` (naming ID):
//! that is the commit, atomic. From then on every reader overlays the staged changes on the
//! resource keys, so it sees the whole new state, while the changes are copied to the
//! resource keys in batches (each conditioned on `head` being unchanged) and `staging` is
//! deleted. A writer that finds `staging` first finishes that copy, whoever began it, so a
//! crash mid-way loses nothing and no later commit is overwritten by a late batch.

mod staging;
mod watch;

pub(crate) use watch::mirror;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use elb_model::State;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, TxnOp, TxnOpResponse,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::backend::{Backend, Changes, Revision, StoreError};
use crate::layout::{self, ChangeSet, Keys};

use staging::{Staged, Staging, copy_staged, read_staged, stage};
use watch::follow;

/// Operations per transaction: etcd's default `--max-txn-ops`.
const MAX_OPS: usize = 128;
/// Bytes of values per transaction, well inside etcd's default `--max-request-bytes`
/// (1.5 MiB) with room for keys and framing.
pub(crate) const MAX_BYTES: usize = 1 << 20;
/// A staged change set's chunk.
const CHUNK_BYTES: usize = 512 << 10;
/// How long one request may take before the store is called unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How to reach etcd.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// `user:password` (etcd's authentication).
    pub user: Option<(String, String)>,
    /// TLS: the CA that signs the servers, and a client certificate and key, PEM.
    pub tls: Option<EtcdTls>,
}

#[derive(Clone, Default)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("client_certificate", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

pub struct EtcdBackend {
    client: Client,
    /// Every key of elbd's starts with it (`PREFIX/`).
    prefix: String,
    /// For errors: where etcd was looked for.
    endpoints: String,
    /// The state's watch is up (the store follows others' commits).
    following: Arc<AtomicBool>,
    /// etcd's client lives on a runtime of its own, whose I/O goes on whatever thread waits
    /// for it (the store waits on blocking threads) and apart from the traffic's.
    runtime: Option<tokio::runtime::Runtime>,
}

impl EtcdBackend {
    /// Connects to `endpoints` (`HOST:PORT`, or URLs) and checks that etcd answers.
    pub fn connect(
        endpoints: &[String],
        prefix: &str,
        options: EtcdOptions,
    ) -> Result<Self, StoreError> {
        let named = endpoints.join(",");
        let unavailable = |message: String| StoreError::Unavailable {
            endpoints: named.clone(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            // Two: assembling a large state from the watch must not hold up lease renewals.
            .worker_threads(2)
            .thread_name("elbd-etcd")
            .enable_all()
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let urls: Vec<String> = endpoints
            .iter()
            .map(|e| match (e.contains("://"), options.tls.is_some()) {
                (true, _) => e.clone(),
                (false, true) => format!("https://{e}"),
                (false, false) => format!("http://{e}"),
            })
            .collect();
        // A member cut off from the cluster's leader answers nothing rather than old data; an
        // expired authentication token is renewed rather than refusing every request.
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT)
            .with_require_leader(true)
            .with_auto_token_refresh(true);
        if let Some((user, password)) = options.user {
            connect = connect.with_user(user, password);
        }
        if let Some(tls) = options.tls {
            let mut config = etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(tls.ca_pem));
            if let Some((cert, key)) = tls.client {
                config = config.identity(etcd_client::Identity::from_pem(cert, key));
            }
            connect = connect.with_tls(config);
        }
        let client = runtime.block_on(async {
            let connecting = Client::connect(urls, Some(connect));
            let mut client = tokio::time::timeout(REQUEST_TIMEOUT, connecting)
                .await
                .map_err(|_| unavailable("no answer".into()))?
                .map_err(|e| unavailable(e.to_string()))?;
            tokio::time::timeout(REQUEST_TIMEOUT, client.status())
                .await
                .map_err(|_| unavailable("no answer".into()))?
                .map_err(|e| unavailable(e.to_string()))?;
            Ok::<_, StoreError>(client)
        })?;
        info!(endpoints = %named, prefix, "etcd connected");
        Ok(Self {
            client,
            following: Arc::new(AtomicBool::new(false)),
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            endpoints: named,
            runtime: Some(runtime),
        })
    }

    fn names(&self, scope: &str) -> Names {
        Names {
            scope: format!("{}{}/", self.prefix, escape(scope)),
            endpoints: self.endpoints.clone(),
        }
    }

    /// Where `scope`'s live keys are ([`crate::live`]): apart from its state, so that the
    /// state's watchers do not see every heartbeat.
    pub(crate) fn live_names(&self, scope: &str) -> Names {
        Names {
            scope: format!("{}live/{}/", self.prefix, escape(scope)),
            endpoints: self.endpoints.clone(),
        }
    }

    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `work` on etcd's runtime and waits for it (off async threads).
    pub(crate) fn block_on<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("open until dropped")
            .block_on(work)
    }

    /// etcd's runtime, for tasks of the store's own.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("open until dropped")
            .handle()
            .clone()
    }

    /// Runs `work` on etcd's runtime, in the background.
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let runtime = self.runtime.as_ref().expect("open until dropped");
        runtime.spawn(work);
    }

    /// Runs `work` on etcd's runtime (whose I/O this runtime may not drive).
    async fn run<T: Send + 'static>(
        &self,
        names: &Names,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let runtime = self.runtime.as_ref().expect("open until dropped");
        runtime
            .spawn(work)
            .await
            .map_err(|e| names.unavailable(format!("the etcd task failed: {e}")))?
    }
}

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        // A store may be dropped on an async thread, where a blocking shutdown would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl Backend for EtcdBackend {
    async fn load(&self, scope: &str) -> Result<Option<(Revision, State)>, StoreError> {
        let (client, names) = (self.client.clone(), self.names(scope));
        let read = {
            let names = names.clone();
            async move { Scoped::read(client, &names).await }
        };
        self.run(&names, read).await?.state()
    }

    async fn commit(
        &self,
        scope: &str,
        expected: Revision,
        base: &State,
        next: &State,
    ) -> Result<Revision, StoreError> {
        // A scope never written holds no keys, whatever `base` was read from (a store
        // written before regions).
        let none = State::default();
        let before = if expected == 0 { &none } else { base };
        let changes = layout::changes(before, next)?;
        let (client, names) = (self.client.clone(), self.names(scope));
        let write = {
            let names = names.clone();
            async move { commit(client, &names, expected, changes).await }
        };
        self.run(&names, write).await
    }

    async fn watch(&self, scope: &str, after: Revision) -> Result<Option<Changes>, StoreError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let up = self.following.clone();
        self.spawn(follow(self.client(), self.names(scope), after, tx, up));
        Ok(Some(rx))
    }

    fn following(&self) -> Option<bool> {
        Some(self.following.load(Ordering::Relaxed))
    }
}

/// The largest answer read from etcd: a whole state (the default, 4 MiB, is about 35 target
/// groups of 1,000 targets).
const MAX_ANSWER: usize = 1 << 30;

/// etcd's key-value calls, taking answers up to [`MAX_ANSWER`].
pub(crate) fn kv(client: &Client) -> etcd_client::KvClient {
    client.kv_client().max_decoding_message_size(MAX_ANSWER)
}

/// etcd's watch, taking batches up to [`MAX_ANSWER`] (one catching up may be large).
fn watcher(client: &Client) -> etcd_client::WatchClient {
    client.watch_client().max_decoding_message_size(MAX_ANSWER)
}

/// A scope's keys must not fall under another's prefix (accounts are digits; a store written
/// before regions had `ACCOUNT/REGION`).
fn escape(scope: &str) -> String {
    scope.replace('%', "%25").replace('/', "%2F")
}

/// The key names of one scope.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// `PREFIX/SCOPE/`
    scope: String,
    endpoints: String,
}

const HEAD: &str = "head";
const STAGING: &str = "staging";
const STATE: &str = "state/";
const STAGED: &str = "staged/";

impl Names {
    pub(crate) fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.scope)
    }

    pub(crate) fn unavailable(&self, message: String) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.endpoints.clone(),
            message,
        }
    }

    /// Awaits one request, within [`REQUEST_TIMEOUT`]. etcd out of reach is
    /// [`StoreError::Unavailable`] (worth retrying); a refusal that would be the same again
    /// (too large, not permitted) is [`StoreError::Refused`].
    pub(crate) async fn ask<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        use etcd_client::Error;
        use tonic::Code;
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(Error::GRpcStatus(status)))
                if !matches!(
                    status.code(),
                    Code::Unavailable
                        | Code::DeadlineExceeded
                        | Code::Unknown
                        | Code::Aborted
                        | Code::Cancelled
                        | Code::Internal
                        | Code::ResourceExhausted
                ) =>
            {
                Err(StoreError::Refused {
                    endpoints: self.endpoints.clone(),
                    message: status.message().to_owned(),
                })
            }
            Ok(Err(e)) => Err(self.unavailable(e.to_string())),
            Err(_) => Err(self.unavailable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
    }
}

/// Every key of a scope (relative to it) as etcd held them at one revision.
#[derive(Debug, Default)]
pub(crate) struct Scoped {
    /// The store's revision the keys were read at.
    revision: i64,
    /// `head`'s `mod_revision`: the state's revision (0 when never written).
    head: i64,
    pub(crate) keys: BTreeMap<String, Vec<u8>>,
    /// Keys changed since a follower last took them ([`Scoped::take_changed`]).
    changed: BTreeSet<String>,
    /// Read whole, not followed: a follower starts again from these keys.
    fresh: bool,
}

impl Scoped {
    pub(crate) async fn read(client: Client, names: &Names) -> Result<Self, StoreError> {
        let options = GetOptions::new().with_prefix();
        let mut answer = names
            .ask(kv(&client).get(names.scope.as_str(), Some(options)))
            .await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let mut scoped = Self {
            revision,
            fresh: true,
            ..Self::default()
        };
        for kv in answer.take_kvs() {
            scoped.absorb(names, kv);
        }
        Ok(scoped)
    }

    /// Takes in a key of the scope as etcd holds it now.
    fn absorb(&mut self, names: &Names, kv: etcd_client::KeyValue) {
        let mod_revision = kv.mod_revision();
        let (key, value) = kv.into_key_value();
        let key = String::from_utf8_lossy(&key[names.scope.len()..]).into_owned();
        if key == HEAD {
            self.head = mod_revision;
        }
        self.changed.insert(key.clone());
        self.keys.insert(key, value);
    }

    fn forget(&mut self, names: &Names, key: &[u8]) {
        let key = String::from_utf8_lossy(&key[names.scope.len()..]).into_owned();
        self.keys.remove(&key);
        self.changed.insert(key);
    }

    /// The resource keys changed since the last call, relative to `state/`, each with its
    /// value now (`None`: deleted).
    fn take_changed(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .filter_map(|key| {
                let resource = key.strip_prefix(STATE)?.to_owned();
                Some((resource, self.keys.get(&key).cloned()))
            })
            .collect()
    }

    /// The staged change set that `staging` names, if a commit is being copied.
    fn staged(&self) -> Result<Option<(Staging, ChangeSet)>, StoreError> {
        let Some(staging) = self.keys.get(STAGING) else {
            return Ok(None);
        };
        let staging: Staging = serde_json::from_slice(staging)?;
        let mut bytes = Vec::new();
        for n in 0..staging.chunks {
            let key = format!("{STAGED}{}/{n:06}", staging.id);
            let chunk = self
                .keys
                .get(&key)
                .ok_or_else(|| StoreError::Layout(format!("{key} (a staged commit's chunk)")))?;
            bytes.extend_from_slice(chunk);
        }
        let staged: Staged = serde_json::from_slice(&bytes)?;
        Ok(Some((staging, staged.into_changes())))
    }

    /// The state at `head`: the resource keys, with a staged change set over them.
    fn state(&self) -> Result<Option<(Revision, State)>, StoreError> {
        if self.head == 0 {
            return Ok(None);
        }
        let mut keys: Keys = self
            .keys
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(STATE)?.to_owned(), v.clone())))
            .collect();
        if let Some((_, changes)) = self.staged()? {
            for (key, value) in changes {
                match value {
                    Some(value) => keys.insert(key, value),
                    None => keys.remove(&key),
                };
            }
        }
        let state = layout::join(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        Ok(Some((self.head as Revision, state.unwrap_or_default())))
    }
}

/// Commits `changes` on top of `expected`: one conditioned transaction when they fit, staged
/// otherwise (the module's doc).
async fn commit(
    client: Client,
    names: &Names,
    expected: Revision,
    changes: ChangeSet,
) -> Result<Revision, StoreError> {
    // A value etcd refuses in any request would stop every later writer at its copy.
    if let Some((key, value)) = changes.iter().find_map(|(k, v)| {
        v.as_ref()
            .filter(|v| k.len() + v.len() > MAX_BYTES)
            .map(|v| (k, v))
    }) {
        return Err(StoreError::TooLarge {
            key: key.clone(),
            bytes: key.len() + value.len(),
            limit: MAX_BYTES,
        });
    }
    let fits = changes.len() < MAX_OPS && change_bytes(&changes) <= MAX_BYTES;
    let staging = if fits {
        None
    } else {
        Some(stage(&client, names, &changes).await?)
    };
    let result = commit_at(&client, names, expected, &changes, staging.as_ref()).await;
    match (result, &staging) {
        (Ok(revision), Some(_)) => {
            // The commit has landed; a copy cut short is finished by the next writer.
            if let Err(e) = copy_staged(&client, names, revision as i64, changes).await {
                warn!(error = %e, "a large commit landed; its copy is left to the next writer");
            }
            Ok(revision)
        }
        (Err(e), Some(staging)) => {
            // An answer lost may hide a commit that landed: then its chunks are the state's.
            if matches!(e, StoreError::Unavailable { .. }) {
                match landed(&client, names, &staging.id).await {
                    Ok(Some(revision)) => {
                        if let Err(e) = copy_staged(&client, names, revision, changes).await {
                            warn!(error = %e, "a large commit landed; its copy is left to the next writer");
                        }
                        return Ok(revision as Revision);
                    }
                    Ok(None) => {}
                    // Still unknown: the chunks stay (a leak at worst, never a loss).
                    Err(_) => return Err(e),
                }
            }
            // The chunks of a commit that did not happen are no one's.
            let staged = names.key(&format!("{STAGED}{}/", staging.id));
            let options = DeleteOptions::new().with_prefix();
            let _ = names.ask(kv(&client).delete(staged, Some(options))).await;
            Err(e)
        }
        (result, None) => result,
    }
}

/// The commit's revision if `staging` names the commit staged as `id` (it landed, and is not
/// yet copied); `None` if it names another or none.
async fn landed(client: &Client, names: &Names, id: &str) -> Result<Option<i64>, StoreError> {
    let staging = names.ask(kv(client).get(names.key(STAGING), None)).await?;
    let Some(named) = staging.kvs().first() else {
        return Ok(None);
    };
    if serde_json::from_slice::<Staging>(named.value())?.id != id {
        return Ok(None);
    }
    // Written in the transaction that put `head`: the commit's revision, even if `head` has
    // moved on since (then the copy's batches find it moved, and stop).
    Ok(Some(named.mod_revision()))
}

/// The conditioned transaction of a commit: the changes themselves, or `staging` naming them.
async fn commit_at(
    client: &Client,
    names: &Names,
    expected: Revision,
    changes: &ChangeSet,
    staging: Option<&Staging>,
) -> Result<Revision, StoreError> {
    let expected = expected as i64;
    let mut when = vec![
        Compare::mod_revision(names.key(HEAD), CompareOp::Equal, expected),
        Compare::version(names.key(STAGING), CompareOp::Equal, 0),
    ];
    let mut then = vec![TxnOp::put(names.key(HEAD), Vec::new(), None)];
    match staging {
        Some(staging) => {
            // Its chunks are all there: a staging never names chunks that went.
            let last = staging.chunks.saturating_sub(1);
            let last = names.key(&format!("{STAGED}{}/{last:06}", staging.id));
            when.push(Compare::version(last, CompareOp::Greater, 0));
            let named = serde_json::to_vec(staging)?;
            then.push(TxnOp::put(names.key(STAGING), named, None));
        }
        None => then.extend(changes.iter().map(|change| put_or_delete(names, change))),
    }
    let check = [
        TxnOp::get(names.key(HEAD), None),
        TxnOp::get(names.key(STAGING), None),
    ];
    let txn = etcd_client::Txn::new()
        .when(when.clone())
        .and_then(then.clone());
    let txn = txn.or_else(check.clone());
    // Twice at most: a commit found half copied is finished, then this one is tried again.
    let mut answer = names.ask(kv(client).txn(txn)).await?;
    for _ in 0..2 {
        if answer.succeeded() {
            let revision = answer.header().map_or(0, |h| h.revision());
            return Ok(revision as Revision);
        }
        // What stood in the way: a newer head, or a staged commit not yet copied.
        let (mut head, mut theirs) = (0, None);
        for response in answer.op_responses() {
            let TxnOpResponse::Get(get) = response else {
                continue;
            };
            for kv in get.kvs() {
                if kv.key() == names.key(HEAD).as_bytes() {
                    head = kv.mod_revision();
                } else {
                    theirs = Some(serde_json::from_slice::<Staging>(kv.value())?);
                }
            }
        }
        if head != expected {
            return Err(StoreError::Conflict {
                expected: expected as Revision,
                found: head as Revision,
            });
        }
        if let Some(theirs) = theirs {
            let changes = read_staged(client, names, &theirs).await?;
            copy_staged(client, names, head, changes).await?;
        }
        let txn = etcd_client::Txn::new()
            .when(when.clone())
            .and_then(then.clone());
        answer = names
            .ask(kv(client).txn(txn.or_else(check.clone())))
            .await?;
    }
    Err(StoreError::Conflict {
        expected: expected as Revision,
        found: expected as Revision,
    })
}

fn put_or_delete(names: &Names, (key, value): &(String, Option<Vec<u8>>)) -> TxnOp {
    let key = names.key(&format!("{STATE}{key}"));
    match value {
        Some(value) => TxnOp::put(key, value.clone(), None),
        None => TxnOp::delete(key, None),
    }
}

/// Bytes of keys and values: what a transaction of `changes` carries.
fn change_bytes(changes: &ChangeSet) -> usize {
    changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Store;
    use crate::tests::{etcd_endpoint, etcd_prefix, target_group};

    /// A backend on a prefix of the test's own, and a store on it with us-east-1 open.
    fn opened(test: &str) -> (Arc<EtcdBackend>, Store) {
        let prefix = etcd_prefix(test);
        let options = EtcdOptions::default();
        let backend = Arc::new(EtcdBackend::connect(&[etcd_endpoint()], &prefix, options).unwrap());
        let store = Store::open(Box::new(backend.clone()), "acct", "none").unwrap();
        let scope = elb_model::Scope::default();
        store
            .update(|state, cx| state.open_region(&scope, &Default::default(), cx))
            .unwrap();
        (backend, store)
    }

    fn many_groups(store: &Store, prefix: &str) -> State {
        store
            .try_update(|state, cx| {
                for i in 0..200 {
                    state.apply("us-east-1", target_group(&format!("{prefix}-{i}")), cx)?;
                }
                Ok(state.clone())
            })
            .unwrap()
    }

    /// Commits at a revision that is no longer the head conflict, small or staged, and a
    /// staged one that conflicts leaves no chunks; one that lands leaves no staging.
    #[test]
    fn stale_commits_conflict_and_staging_leaves_nothing_behind() {
        let (backend, store) = opened("stale");
        let base = store.snapshot();
        let runtime = backend.runtime.as_ref().unwrap();
        let commit = |next: &State| {
            runtime.block_on(backend.commit("acct", base.revision, &base.state, next))
        };
        let landed = commit(&many_groups(&store, "a")).unwrap();
        assert!(landed > base.revision);
        for next in [many_groups(&store, "b"), State::default()] {
            let err = commit(&next).unwrap_err();
            assert!(
                matches!(err, StoreError::Conflict { found, .. } if found == landed),
                "{err}"
            );
        }
        let names = backend.names("acct");
        let scoped = runtime
            .block_on(Scoped::read(backend.client(), &names))
            .unwrap();
        assert_nothing_staged(&scoped);
        assert_eq!(scoped.head as Revision, landed);
        let groups = scoped.keys.keys().filter(|k| k.contains("/target_groups/"));
        assert_eq!(groups.count(), 200);
    }

    /// A value the follower cannot read stops it delivering, rather than it serving a state
    /// with that change missing; once the value is gone it follows again.
    #[test]
    fn a_follower_that_cannot_read_a_change_delivers_nothing_until_it_can() {
        let (backend, writer) = opened("unreadable");
        let reader = Store::open(Box::new(backend.clone()), "acct", "none").unwrap();
        let names = backend.names("acct");
        let bogus = names.key("state/regions/us-east-1/target_groups/bogus");
        let runtime = backend.runtime.as_ref().unwrap();
        let with_head = |op: TxnOp| {
            let txn = etcd_client::Txn::new()
                .and_then([op, TxnOp::put(names.key(HEAD), Vec::new(), None)]);
            runtime.block_on(kv(&backend.client()).txn(txn)).unwrap();
        };
        let before = reader.snapshot().revision;
        with_head(TxnOp::put(bogus.clone(), b"not json".to_vec(), None));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            reader.snapshot().revision,
            before,
            "a state with a change missing"
        );
        with_head(TxnOp::delete(bogus, None));
        // A commit through the store, after: the follower rebuilds from every key.
        writer.execute("us-east-1", target_group("after")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reader.snapshot().revision < writer.snapshot().revision {
            assert!(
                std::time::Instant::now() < deadline,
                "the follower did not recover"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(reader.snapshot().state, writer.snapshot().state);
    }

    /// A writer that dies after its staged commit's `head` transaction and before the copy:
    /// readers see the whole commit, and the next writer finishes the copy.
    #[test]
    fn a_commit_left_half_copied_is_seen_whole_and_finished_by_the_next_writer() {
        let (backend, store) = opened("half-copied");
        let base = store.snapshot();
        let next = many_groups(&store, "group");
        let changes = layout::changes(&base.state, &next).unwrap();
        let (client, names) = (backend.client(), backend.names("acct"));
        let runtime = backend.runtime.as_ref().unwrap();
        runtime.block_on(async {
            let staging = stage(&client, &names, &changes).await.unwrap();
            let begin = etcd_client::Txn::new()
                .when([Compare::mod_revision(
                    names.key(HEAD),
                    CompareOp::Equal,
                    base.revision as i64,
                )])
                .and_then([
                    TxnOp::put(names.key(HEAD), Vec::new(), None),
                    TxnOp::put(
                        names.key(STAGING),
                        serde_json::to_vec(&staging).unwrap(),
                        None,
                    ),
                ]);
            assert!(kv(&client).txn(begin).await.unwrap().succeeded());
        });

        let prefix = etcd_prefix("half-copied");
        let another = EtcdBackend::connect(&[etcd_endpoint()], &prefix, EtcdOptions::default());
        let reader = Store::open(Box::new(another.unwrap()), "acct", "none").unwrap();
        assert_eq!(reader.snapshot().state, next);
        let tail = elb_model::Command::DeleteTargetGroup {
            arn: next.regions["us-east-1"]
                .target_groups
                .keys()
                .next()
                .unwrap()
                .clone(),
        };
        reader.execute("us-east-1", tail).unwrap();
        let scoped = runtime
            .block_on(Scoped::read(client.clone(), &names))
            .unwrap();
        assert_nothing_staged(&scoped);
        let groups = scoped.keys.keys().filter(|k| k.contains("/target_groups/"));
        assert_eq!(groups.count(), 199);
        assert_eq!(scoped.state().unwrap().unwrap().1, reader.snapshot().state);
    }

    /// No `staging` key and no chunk is left.
    fn assert_nothing_staged(scoped: &Scoped) {
        let staged = |k: &String| k == STAGING || k.starts_with(STAGED);
        assert!(!scoped.keys.keys().any(staged), "{:?}", scoped.keys.keys());
    }
}
