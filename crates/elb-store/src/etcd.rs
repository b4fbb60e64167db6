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

use std::collections::BTreeMap;
use std::time::Duration;

use elb_model::State;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, TxnOp,
    TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::backend::{Backend, Changes, Revision, StoreError};
use crate::layout::{self, Keys};

/// Operations per transaction: etcd's default `--max-txn-ops`.
pub(crate) const MAX_OPS: usize = 128;
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
    /// etcd's client lives on a runtime of its own, so a store can be used from any thread,
    /// in or out of the runtime that serves traffic.
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
            .worker_threads(1)
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
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT);
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
            prefix: format!("{}/", prefix.trim_end_matches('/')),
            endpoints: named,
            runtime: Some(runtime),
        })
    }

    fn names(&self, scope: &str) -> Names {
        // A scope's keys must not fall under another's prefix.
        let scope = scope.replace('%', "%25").replace('/', "%2F");
        Names {
            scope: format!("{}{scope}/", self.prefix),
            endpoints: self.endpoints.clone(),
        }
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
        let before = match expected {
            0 => Keys::new(),
            _ => layout::split(base)?,
        };
        let changes = layout::changes(&before, &layout::split(next)?);
        let (client, names) = (self.client.clone(), self.names(scope));
        let write = {
            let names = names.clone();
            async move { commit(client, &names, expected, changes).await }
        };
        self.run(&names, write).await
    }

    async fn watch(&self, scope: &str, after: Revision) -> Result<Option<Changes>, StoreError> {
        let (tx, rx) = mpsc::channel(16);
        let runtime = self.runtime.as_ref().expect("open until dropped");
        runtime.spawn(follow(self.client.clone(), self.names(scope), after, tx));
        Ok(Some(rx))
    }
}

/// The key names of one scope.
#[derive(Debug, Clone)]
struct Names {
    /// `PREFIX/SCOPE/`
    scope: String,
    endpoints: String,
}

const HEAD: &str = "head";
const STAGING: &str = "staging";
const STATE: &str = "state/";
const STAGED: &str = "staged/";

impl Names {
    fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.scope)
    }

    fn unavailable(&self, message: String) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.endpoints.clone(),
            message,
        }
    }

    /// Awaits one request, within [`REQUEST_TIMEOUT`].
    async fn ask<T>(
        &self,
        request: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.unavailable(e.to_string())),
            Err(_) => Err(self.unavailable(format!("no answer within {REQUEST_TIMEOUT:?}"))),
        }
    }
}

/// What a change set is staged as: each key (relative to `state/`) and its new value, or
/// `None` to delete it.
type ChangeSet = Vec<(String, Option<Vec<u8>>)>;

/// The staged change set that `staging` names.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Staging {
    id: String,
    chunks: usize,
}

/// Every key of a scope (relative to it) as etcd held them at one revision.
#[derive(Debug, Default)]
struct Scoped {
    /// The store's revision the keys were read at.
    revision: i64,
    /// `head`'s `mod_revision`: the state's revision (0 when never written).
    head: i64,
    keys: BTreeMap<String, Vec<u8>>,
}

impl Scoped {
    async fn read(mut client: Client, names: &Names) -> Result<Self, StoreError> {
        let options = GetOptions::new().with_prefix();
        let mut answer = names
            .ask(client.get(names.scope.as_str(), Some(options)))
            .await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        let mut scoped = Self {
            revision,
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
        self.keys.insert(key, value);
    }

    fn forget(&mut self, names: &Names, key: &[u8]) {
        let key = String::from_utf8_lossy(&key[names.scope.len()..]);
        self.keys.remove(key.as_ref());
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
        Ok(Some((staging, serde_json::from_slice(&bytes)?)))
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
    mut client: Client,
    names: &Names,
    expected: Revision,
    changes: ChangeSet,
) -> Result<Revision, StoreError> {
    let fits = changes.len() < MAX_OPS && bytes(&changes) <= MAX_BYTES;
    let staging = if fits {
        None
    } else {
        Some(stage(&mut client, names, &changes).await?)
    };
    // Twice at most: a commit found half copied is finished, then this one is tried again.
    for _ in 0..2 {
        let expected = expected as i64;
        let when = [
            Compare::mod_revision(names.key(HEAD), CompareOp::Equal, expected),
            Compare::version(names.key(STAGING), CompareOp::Equal, 0),
        ];
        let mut then = vec![TxnOp::put(names.key(HEAD), Vec::new(), None)];
        match &staging {
            Some(staging) => then.push(TxnOp::put(
                names.key(STAGING),
                serde_json::to_vec(staging)?,
                None,
            )),
            None => then.extend(changes.iter().map(|change| put_or_delete(names, change))),
        }
        let txn = etcd_client::Txn::new()
            .when(when)
            .and_then(then)
            .or_else([TxnOp::get(
                names.scope.as_str(),
                Some(GetOptions::new().with_prefix()),
            )]);
        let answer = names.ask(client.txn(txn)).await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        if answer.succeeded() {
            if staging.is_some() {
                copy_staged(&mut client, names, revision, changes).await?;
            }
            return Ok(revision as Revision);
        }
        // What stood in the way: a newer head, or a staged commit not yet copied.
        let mut found = Scoped {
            revision,
            ..Scoped::default()
        };
        for response in answer.op_responses() {
            if let TxnOpResponse::Get(mut get) = response {
                for kv in get.take_kvs() {
                    found.absorb(names, kv);
                }
            }
        }
        if found.head != expected {
            if let Some(staging) = &staging {
                // Best effort: the chunks of a commit that did not happen are no one's.
                let staged = names.key(&format!("{STAGED}{}/", staging.id));
                let options = DeleteOptions::new().with_prefix();
                let _ = names.ask(client.delete(staged, Some(options))).await;
            }
            return Err(StoreError::Conflict {
                expected: expected as Revision,
                found: found.head as Revision,
            });
        }
        let Some((_, theirs)) = found.staged()? else {
            continue;
        };
        copy_staged(&mut client, names, found.head, theirs).await?;
    }
    Err(names.unavailable("a staged commit could not be finished".into()))
}

/// Writes `changes` under `staged/ID/` in chunks; returns what `staging` will name.
async fn stage(
    client: &mut Client,
    names: &Names,
    changes: &ChangeSet,
) -> Result<Staging, StoreError> {
    let id = format!("{:016x}", fastrand::u64(..));
    let bytes = serde_json::to_vec(changes)?;
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        let key = names.key(&format!("{STAGED}{id}/{n:06}"));
        names.ask(client.put(key, chunk.to_vec(), None)).await?;
    }
    Ok(Staging {
        id,
        chunks: chunks.len(),
    })
}

/// Copies a staged commit's `changes` to the resource keys, in batches that apply only while
/// `head` is still at `head` (so a late batch never overwrites a newer commit), then ends
/// the staging.
async fn copy_staged(
    client: &mut Client,
    names: &Names,
    head: i64,
    changes: ChangeSet,
) -> Result<(), StoreError> {
    let still = || Compare::mod_revision(names.key(HEAD), CompareOp::Equal, head);
    let mut batch: Vec<TxnOp> = Vec::new();
    let mut batch_bytes = 0;
    let mut batches = Vec::new();
    for change in &changes {
        let size = change.1.as_ref().map_or(0, Vec::len);
        if batch.len() + 1 >= MAX_OPS || batch_bytes + size > MAX_BYTES {
            batches.push(std::mem::take(&mut batch));
            batch_bytes = 0;
        }
        batch.push(put_or_delete(names, change));
        batch_bytes += size;
    }
    batches.push(batch);
    for ops in batches {
        let txn = etcd_client::Txn::new().when([still()]).and_then(ops);
        if !names.ask(client.txn(txn)).await?.succeeded() {
            // Another writer finished this copy and committed on top of it.
            return Ok(());
        }
    }
    let staging: Option<Staging> = {
        let answer = names.ask(client.get(names.key(STAGING), None)).await?;
        match answer.kvs().first() {
            Some(kv) => Some(serde_json::from_slice(kv.value())?),
            None => None,
        }
    };
    let Some(staging) = staging else {
        return Ok(());
    };
    let staged = names.key(&format!("{STAGED}{}/", staging.id));
    let end = etcd_client::Txn::new().when([still()]).and_then([
        TxnOp::delete(names.key(STAGING), None),
        TxnOp::delete(staged, Some(DeleteOptions::new().with_prefix())),
    ]);
    names.ask(client.txn(end)).await?;
    Ok(())
}

fn put_or_delete(names: &Names, (key, value): &(String, Option<Vec<u8>>)) -> TxnOp {
    let key = names.key(&format!("{STATE}{key}"));
    match value {
        Some(value) => TxnOp::put(key, value.clone(), None),
        None => TxnOp::delete(key, None),
    }
}

fn bytes(changes: &ChangeSet) -> usize {
    changes
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Follows the scope's keys from the state at `after` on, sending each newer state; across
/// lost connections it resumes from the last revision seen, and reads everything again
/// when etcd has compacted that history away.
async fn follow(
    mut client: Client,
    names: Names,
    after: Revision,
    states: mpsc::Sender<(Revision, State)>,
) {
    let mut sent = after as i64;
    let mut scoped: Option<Scoped> = None;
    let mut failing = false;
    loop {
        let result = async {
            let current = match scoped.take() {
                Some(current) => current,
                None => Scoped::read(client.clone(), &names).await?,
            };
            let from = current.revision + 1;
            let current = scoped.insert(current);
            if !deliver(current, &mut sent, &states).await? {
                return Ok(());
            }
            let options = WatchOptions::new().with_prefix().with_start_revision(from);
            let mut stream = names
                .ask(client.watch(names.scope.as_str(), Some(options)))
                .await?;
            if failing {
                info!(endpoints = %names.endpoints, "etcd watch resumed");
                failing = false;
            }
            while let Some(answer) = stream
                .message()
                .await
                .map_err(|e| names.unavailable(e.to_string()))?
            {
                if answer.compact_revision() > 0 || answer.canceled() {
                    // The history to resume from is gone: read everything again.
                    scoped = None;
                    return Err(names.unavailable(format!(
                        "watch canceled ({}); reading the state again",
                        answer.cancel_reason()
                    )));
                }
                let current = scoped.as_mut().expect("read above");
                for event in answer.events() {
                    let Some(kv) = event.kv() else { continue };
                    current.revision = current.revision.max(kv.mod_revision());
                    match event.event_type() {
                        EventType::Put => current.absorb(&names, kv.clone()),
                        EventType::Delete => current.forget(&names, kv.key()),
                    }
                }
                if !deliver(current, &mut sent, &states).await? {
                    return Ok(());
                }
            }
            Err(names.unavailable("the watch ended".into()))
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                if !failing {
                    warn!(error = %e, "etcd watch lost: serving the last state seen until it is back");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends the state at `current`'s head if it is newer than the last `sent`; false when no one
/// listens any more.
async fn deliver(
    current: &Scoped,
    sent: &mut i64,
    states: &mpsc::Sender<(Revision, State)>,
) -> Result<bool, StoreError> {
    if current.head <= *sent {
        return Ok(true);
    }
    let Some(state) = current.state()? else {
        return Ok(true);
    };
    *sent = current.head;
    Ok(states.send(state).await.is_ok())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::Store;
    use crate::tests::{etcd_endpoint, etcd_prefix};

    /// A writer that dies after its staged commit's `head` transaction and before the copy:
    /// readers see the whole commit, and the next writer finishes the copy.
    #[test]
    fn a_commit_left_half_copied_is_seen_whole_and_finished_by_the_next_writer() {
        let prefix = etcd_prefix("half-copied");
        let connect = || EtcdBackend::connect(&[etcd_endpoint()], &prefix, EtcdOptions::default());
        let backend = Arc::new(connect().unwrap());
        let store = Store::open(Box::new(backend.clone()), "acct", "none").unwrap();
        let scope = elb_model::Scope::default();
        store
            .update(|state, cx| state.open_region(&scope, &Default::default(), cx))
            .unwrap();
        let base = store.snapshot();
        let next = store
            .try_update(|state, cx| {
                for i in 0..200 {
                    let group = elb_model::state::CreateTargetGroup {
                        name: format!("group-{i}"),
                        protocol: "HTTP".into(),
                        protocol_version: elb_model::ProtocolVersion::Http1,
                        port: 80,
                        vpc_id: None,
                        target_type: "ip".into(),
                        origin: elb_model::Origin::Api,
                    };
                    let create = elb_model::Command::CreateTargetGroup(group);
                    state.apply("us-east-1", create, cx)?;
                }
                Ok(state.clone())
            })
            .unwrap();
        let changes = layout::changes(
            &layout::split(&base.state).unwrap(),
            &layout::split(&next).unwrap(),
        );
        let (mut client, names) = (backend.client.clone(), backend.names("acct"));
        let runtime = backend.runtime.as_ref().unwrap();
        runtime.block_on(async {
            let staging = stage(&mut client, &names, &changes).await.unwrap();
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
            assert!(client.txn(begin).await.unwrap().succeeded());
        });

        let reader = Store::open(Box::new(connect().unwrap()), "acct", "none").unwrap();
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
        assert!(
            !scoped
                .keys
                .keys()
                .any(|k| k == STAGING || k.starts_with(STAGED))
        );
        let groups = scoped.keys.keys().filter(|k| k.contains("/target_groups/"));
        assert_eq!(groups.count(), 199);
        assert_eq!(scoped.state().unwrap().unwrap().1, reader.snapshot().state);
    }
}
