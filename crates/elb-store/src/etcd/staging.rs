//! Commits too large for one transaction: staged in chunks, then copied to the resource keys.

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, TxnOp};

use super::{CHUNK_BYTES, HEAD, MAX_BYTES, MAX_OPS, Names, STAGED, STAGING, kv, put_or_delete};
use crate::backend::StoreError;
use crate::layout::ChangeSet;

/// A change set as staged: values as the JSON text they are (bytes would serialise as arrays
/// of numbers, three times larger).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct Staged(Vec<(String, Option<String>)>);

impl Staged {
    pub(super) fn of(changes: &ChangeSet) -> Self {
        let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
        Self(
            changes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(text)))
                .collect(),
        )
    }

    pub(super) fn into_changes(self) -> ChangeSet {
        (self.0.into_iter())
            .map(|(k, v)| (k, v.map(String::into_bytes)))
            .collect()
    }
}

/// The staged change set that `staging` names.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Staging {
    pub(super) id: String,
    pub(super) chunks: usize,
}

/// Writes `changes` under `staged/ID/` in chunks; returns what `staging` will name.
pub(super) async fn stage(
    client: &Client,
    names: &Names,
    changes: &ChangeSet,
) -> Result<Staging, StoreError> {
    let id = format!("{:016x}", fastrand::u64(..));
    let bytes = serde_json::to_vec(&Staged::of(changes))?;
    let chunks: Vec<&[u8]> = bytes.chunks(CHUNK_BYTES).collect();
    for (n, chunk) in chunks.iter().enumerate() {
        let key = names.key(&format!("{STAGED}{id}/{n:06}"));
        names.ask(kv(client).put(key, chunk.to_vec(), None)).await?;
    }
    Ok(Staging {
        id,
        chunks: chunks.len(),
    })
}

/// The change set that `staging` names, read from its chunks.
pub(super) async fn read_staged(
    client: &Client,
    names: &Names,
    staging: &Staging,
) -> Result<ChangeSet, StoreError> {
    let prefix = names.key(&format!("{STAGED}{}/", staging.id));
    let options = GetOptions::new().with_prefix();
    let answer = names.ask(kv(client).get(prefix, Some(options))).await?;
    let bytes: Vec<u8> = answer
        .kvs()
        .iter()
        .flat_map(|kv| kv.value())
        .copied()
        .collect();
    Ok(serde_json::from_slice::<Staged>(&bytes)?.into_changes())
}

/// Copies a staged commit's `changes` to the resource keys, in batches that apply only while
/// `head` is still at `head` (so a late batch never overwrites a newer commit), then ends
/// the staging.
pub(super) async fn copy_staged(
    client: &Client,
    names: &Names,
    head: i64,
    changes: ChangeSet,
) -> Result<(), StoreError> {
    let still = || Compare::mod_revision(names.key(HEAD), CompareOp::Equal, head);
    let mut batches: Vec<Vec<TxnOp>> = vec![Vec::new()];
    let mut batch_bytes = 0;
    for change in &changes {
        let size = change.0.len() + change.1.as_ref().map_or(0, Vec::len);
        let batch = batches.last_mut().expect("one at least");
        if !batch.is_empty() && (batch.len() + 1 >= MAX_OPS || batch_bytes + size > MAX_BYTES) {
            batches.push(Vec::new());
            batch_bytes = 0;
        }
        batches
            .last_mut()
            .expect("one at least")
            .push(put_or_delete(names, change));
        batch_bytes += size;
    }
    for ops in batches {
        let txn = etcd_client::Txn::new().when([still()]).and_then(ops);
        if !names.ask(kv(client).txn(txn)).await?.succeeded() {
            // Another writer finished this copy and committed on top of it.
            return Ok(());
        }
    }
    let answer = names.ask(kv(client).get(names.key(STAGING), None)).await?;
    let Some(staging) = answer.kvs().first() else {
        return Ok(());
    };
    let staging: Staging = serde_json::from_slice(staging.value())?;
    let staged = names.key(&format!("{STAGED}{}/", staging.id));
    let end = etcd_client::Txn::new().when([still()]).and_then([
        TxnOp::delete(names.key(STAGING), None),
        TxnOp::delete(staged, Some(DeleteOptions::new().with_prefix())),
    ]);
    names.ask(kv(client).txn(end)).await?;
    Ok(())
}
