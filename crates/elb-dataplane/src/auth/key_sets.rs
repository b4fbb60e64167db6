//! Issuers' key sets as `jwt-validation` actions use them: read once and kept an hour, read
//! again for a token that names a key the set lacks, at most once a second per set and one
//! read at a time, so that no client can make the load balancer hammer an issuer. A set
//! that cannot be read again serves for six hours more, then requests fail closed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::jwt::KeySet;

/// How long a set is used before it is read again.
const TTL: Duration = Duration::from_secs(3600);
/// Reads of one set are at least this far apart.
const RETRY: Duration = Duration::from_secs(1);
/// How long past its TTL a set that cannot be read again still serves.
const MAX_STALE: Duration = Duration::from_secs(6 * 3600);

/// What is known of one endpoint's set.
#[derive(Clone)]
struct Entry {
    /// The last set read, and when.
    keys: Option<(Arc<KeySet>, Instant)>,
    /// When a read last started.
    tried_at: Instant,
}

#[derive(Default)]
pub struct KeySets {
    /// Requests look here without a lock.
    entries: ArcSwap<HashMap<String, Entry>>,
    /// Held while a set is read: one read at a time, and the rest wait for it.
    reading: tokio::sync::Mutex<()>,
}

impl KeySets {
    /// The set at `endpoint`, reading it with `read` when it has none, its hour is up, or
    /// `lacking_key` (a token names a key it lacks) and it was not read within a second.
    pub async fn get<F>(
        &self,
        endpoint: &str,
        lacking_key: bool,
        read: impl FnOnce() -> F,
    ) -> Result<Arc<KeySet>, String>
    where
        F: Future<Output = Result<KeySet, String>>,
    {
        if let Some(keys) = self.usable(endpoint, lacking_key) {
            return Ok(keys);
        }
        let _reading = self.reading.lock().await;
        // Another request may have read it meanwhile, or failed to a moment ago.
        if let Some(keys) = self.usable(endpoint, lacking_key) {
            return Ok(keys);
        }
        let before = self.entries.load().get(endpoint).cloned();
        if let Some(entry) = &before
            && entry.keys.is_none()
            && entry.tried_at.elapsed() < RETRY
        {
            return Err("the key set could not be read a moment ago".to_owned());
        }
        self.store(endpoint, before.as_ref().and_then(|e| e.keys.clone()));
        match read().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                self.store(endpoint, Some((keys.clone(), Instant::now())));
                Ok(keys)
            }
            Err(why) => match before.and_then(|e| e.keys) {
                Some((keys, read_at)) if read_at.elapsed() < TTL + MAX_STALE => {
                    tracing::warn!(
                        endpoint,
                        why,
                        "a key set could not be read again; the last one serves"
                    );
                    Ok(keys)
                }
                _ => Err(why),
            },
        }
    }

    /// The kept set, if it may serve without a read.
    fn usable(&self, endpoint: &str, lacking_key: bool) -> Option<Arc<KeySet>> {
        let entries = self.entries.load();
        let entry = entries.get(endpoint)?;
        let (keys, read_at) = entry.keys.as_ref()?;
        let fresh = read_at.elapsed() < TTL && !lacking_key;
        // A read just tried (it failed, or found no new key) is not tried again at once.
        let just_tried = entry.tried_at.elapsed() < RETRY;
        let not_too_stale = read_at.elapsed() < TTL + MAX_STALE;
        (fresh || (just_tried && not_too_stale)).then(|| keys.clone())
    }

    /// Records a read starting now, with the set to keep.
    fn store(&self, endpoint: &str, keys: Option<(Arc<KeySet>, Instant)>) {
        let entry = Entry {
            keys,
            tried_at: Instant::now(),
        };
        self.entries.rcu(|entries| {
            let mut entries = HashMap::clone(entries);
            entries.insert(endpoint.to_owned(), entry.clone());
            entries
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn set(kid: &str) -> KeySet {
        let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"{kid}","n":"AQAB","e":"AQAB"}}]}}"#);
        KeySet::parse(doc.as_bytes()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn sets_are_read_once_an_hour_and_again_for_a_new_key_at_most_each_second() {
        let sets = KeySets::default();
        let reads = AtomicUsize::new(0);
        let read = |kid: &'static str| {
            reads.fetch_add(1, Ordering::Relaxed);
            async move { Ok(set(kid)) }
        };
        assert_eq!(*sets.get("e", false, || read("a")).await.unwrap(), set("a"));
        assert_eq!(
            *sets.get("e", false, || read("b")).await.unwrap(),
            set("a"),
            "kept"
        );
        // A token naming a new key, at once: not read again within the second.
        assert_eq!(*sets.get("e", true, || read("b")).await.unwrap(), set("a"));
        tokio::time::advance(RETRY).await;
        assert_eq!(*sets.get("e", true, || read("b")).await.unwrap(), set("b"));
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        tokio::time::advance(TTL).await;
        assert_eq!(*sets.get("e", false, || read("c")).await.unwrap(), set("c"));
        assert_eq!(reads.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_that_cannot_be_read_again_serves_a_while_then_fails_closed() {
        let sets = KeySets::default();
        let failing = || async { Err::<KeySet, _>("down".to_owned()) };
        assert!(
            sets.get("e", false, failing).await.is_err(),
            "none to serve"
        );
        tokio::time::advance(RETRY).await;
        sets.get("e", false, || async { Ok(set("a")) })
            .await
            .unwrap();
        tokio::time::advance(TTL).await;
        assert_eq!(*sets.get("e", false, failing).await.unwrap(), set("a"));
        tokio::time::advance(MAX_STALE).await;
        assert!(sets.get("e", false, failing).await.is_err());
    }
}
