//! Following what other processes commit: a mirror of the scope's keys kept by a watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use elb_model::State;
use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Names, STATE, Scoped, watcher};
use crate::backend::{Revision, StoreError};
use crate::layout;

/// Follows the scope's state from `after` on, sending each newer state. The follower keeps
/// the state the resource keys hold, and applies to it only the keys each change touched.
pub(super) async fn follow(
    client: Client,
    names: Names,
    after: Revision,
    states: mpsc::UnboundedSender<(Revision, State)>,
    up: Arc<AtomicBool>,
) {
    let mut sent = after as i64;
    let mut resources: Option<State> = None;
    mirror(client, &names, Some(&up), |current| {
        if std::mem::take(&mut current.fresh) {
            resources = None;
            current.changed.clear();
        }
        let changed = current.take_changed();
        let followed = match resources.take() {
            Some(mut followed) => changed
                .iter()
                .try_for_each(|(key, value)| layout::apply(&mut followed, key, value.as_deref()))
                .map(|()| followed),
            None => {
                let keys = current.keys.iter();
                let keys = keys.filter_map(|(k, v)| Some((k.strip_prefix(STATE)?, v.as_slice())));
                layout::join(keys).map(Option::unwrap_or_default)
            }
        };
        // On an error the state followed is dropped, so the next change rebuilds it from
        // every key rather than serve a state with a change missing.
        let followed = resources.insert(followed?);
        if current.head <= sent {
            return Ok(true);
        }
        let mut state = followed.clone();
        if let Some((_, staged)) = current.staged()? {
            for (key, value) in &staged {
                layout::apply(&mut state, key, value.as_deref())?;
            }
        }
        sent = current.head;
        Ok(states.send((sent as Revision, state)).is_ok())
    })
    .await;
}

/// Keeps a copy of every key under `names.scope` and calls `changed` with it after each
/// change, until `changed` says to stop. Across lost connections it resumes from the last
/// revision seen, and reads everything again when etcd has compacted that history away.
pub(crate) async fn mirror(
    client: Client,
    names: &Names,
    up: Option<&AtomicBool>,
    mut changed: impl FnMut(&mut Scoped) -> Result<bool, StoreError> + Send,
) {
    let mut scoped: Option<Scoped> = None;
    let mut failures = 0;
    loop {
        let result = async {
            let current = match scoped.take() {
                Some(current) => current,
                None => Scoped::read(client.clone(), names).await?,
            };
            let from = current.revision + 1;
            let current = scoped.insert(current);
            let go_on = changed(current)?;
            current.changed.clear();
            if !go_on {
                return Ok(());
            }
            let options = WatchOptions::new().with_prefix().with_start_revision(from);
            let mut stream = names
                .ask(watcher(&client).watch(names.scope.as_str(), Some(options)))
                .await?;
            if let Some(up) = up {
                up.store(true, Ordering::Relaxed);
            }
            if failures > 0 {
                info!(endpoints = %names.endpoints, "etcd watch resumed");
                failures = 0;
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
                        "watch canceled ({}); reading the keys again",
                        answer.cancel_reason()
                    )));
                }
                let current = scoped.as_mut().expect("read above");
                for event in answer.events() {
                    let Some(kv) = event.kv() else { continue };
                    current.revision = current.revision.max(kv.mod_revision());
                    match event.event_type() {
                        EventType::Put => current.absorb(names, kv.clone()),
                        EventType::Delete => current.forget(names, kv.key()),
                    }
                }
                let go_on = changed(current)?;
                current.changed.clear();
                if !go_on {
                    return Ok(());
                }
            }
            Err(names.unavailable("the watch ended".into()))
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) => {
                if let Some(up) = up {
                    up.store(false, Ordering::Relaxed);
                }
                if failures == 0 {
                    warn!(error = %e, "etcd watch lost: serving the last state seen until it is back");
                }
                failures += 1;
                // A failure that repeats may be in what was kept: start again from a read.
                if failures % 3 == 0 {
                    warn!(error = %e, failures, "etcd watch still failing: reading the keys again");
                    scoped = None;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
