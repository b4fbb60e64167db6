//! Active health checks. Each load balancer node probes the targets it may route to, from its
//! own address, as ELB nodes do; a pure state machine per (node, target) turns probe results
//! into AWS's states and reason codes; the results are published as one immutable
//! [`HealthView`] that the data plane and the API read.
//!
//! # Layout
//! - [`plan`]: what to probe, from a snapshot (pure).
//! - [`state`]: the state machine (pure).
//! - `probe`: one check, by protocol (TCP connect, HTTP, HTTPS, gRPC).

pub mod plan;
mod probe;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use elb_lambda::Invoker;
use elb_model::{HealthView, State};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::info;

use plan::Probe;
use state::Tracker;

/// `(node id, registration key)`.
type Key = (String, String);

/// How long the publisher waits after a change for others, so that a burst of transitions
/// becomes one new view.
const COALESCE: Duration = Duration::from_millis(20);

struct Shared {
    trackers: Mutex<HashMap<Key, Tracker>>,
    changed: Notify,
    /// Where `lambda` groups' functions are invoked, when elbd has an endpoint.
    lambda: Option<Arc<Invoker>>,
}

struct Running {
    probe: Probe,
    task: JoinHandle<()>,
}

/// Runs the probes a snapshot calls for and publishes what they find.
pub struct HealthChecker {
    running: HashMap<Key, Running>,
    shared: Arc<Shared>,
    view: watch::Receiver<Arc<HealthView>>,
}

impl HealthChecker {
    /// Starts the publisher; probes start with the first [`HealthChecker::update`].
    /// Functions' checks invoke them through `lambda`.
    pub fn new(lambda: Option<Arc<Invoker>>) -> Self {
        let shared = Arc::new(Shared {
            trackers: Mutex::default(),
            changed: Notify::new(),
            lambda,
        });
        let (tx, view) = watch::channel(Arc::new(HealthView::default()));
        tokio::spawn(publish(shared.clone(), tx));
        Self {
            running: HashMap::new(),
            shared,
            view,
        }
    }

    /// Every published view, from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<HealthView>> {
        self.view.clone()
    }

    /// Goes on from `view`, what another process's checks found (a hand-over): before the
    /// first [`HealthChecker::update`], its targets start where they were rather than
    /// `initial`, and it is published at once.
    pub fn resume(&mut self, view: &HealthView) {
        let mut trackers = self.shared.trackers.lock().expect("poisoned");
        for (key, health) in &view.targets {
            trackers.insert(key.clone(), Tracker::resume(health));
        }
        drop(trackers);
        self.shared.changed.notify_one();
    }

    /// Makes the running probes match `state`: new targets start `initial`, removed ones are
    /// forgotten, and changed settings restart a probe without losing its target's state.
    pub fn update(&mut self, state: &State) {
        let wanted = plan::plan(state);
        let mut trackers = self.shared.trackers.lock().expect("poisoned");
        self.running.retain(|key, running| {
            let keep = wanted.get(key) == Some(&running.probe);
            if !keep {
                running.task.abort();
            }
            keep
        });
        trackers.retain(|key, _| wanted.contains_key(key));
        let mut started = 0;
        for (key, probe) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            trackers.entry(key.clone()).or_default();
            let task = tokio::spawn(check(key.clone(), probe.clone(), self.shared.clone()));
            self.running.insert(key, Running { probe, task });
            started += 1;
        }
        drop(trackers);
        if started > 0 {
            info!(started, running = self.running.len(), "health checks");
        }
        self.shared.changed.notify_one();
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        for running in self.running.values() {
            running.task.abort();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Probes one target from one node, forever (until aborted).
async fn check(key: Key, probe: Probe, shared: Arc<Shared>) {
    // Spread the first probes of a new snapshot, but keep the first verdict prompt.
    let first = probe.interval.min(Duration::from_millis(500));
    tokio::time::sleep(first.mul_f64(fastrand::f64())).await;
    loop {
        let result = probe::run(&probe, shared.lambda.as_deref()).await;
        let changed = {
            let mut trackers = shared.trackers.lock().expect("poisoned");
            let tracker = trackers.get_mut(&key);
            tracker.and_then(|t| {
                t.record(&result, probe.thresholds, now_ms())
                    .then(|| t.health())
            })
        };
        if let Some(health) = changed {
            let reason = health
                .reason
                .as_ref()
                .map(|r| r.description())
                .unwrap_or_default();
            info!(node = %probe.node_ip, target = %probe.target, state = %health.state.as_str(), %reason, "target health");
            shared.changed.notify_one();
        }
        tokio::time::sleep(probe::jittered(probe.interval)).await;
    }
}

/// Publishes a new view after each burst of changes.
async fn publish(shared: Arc<Shared>, tx: watch::Sender<Arc<HealthView>>) {
    loop {
        shared.changed.notified().await;
        tokio::time::sleep(COALESCE).await;
        let view = {
            let trackers = shared.trackers.lock().expect("poisoned");
            HealthView {
                targets: trackers
                    .iter()
                    .map(|(k, t)| (k.clone(), t.health()))
                    .collect(),
            }
        };
        if tx.send(Arc::new(view)).is_err() {
            return;
        }
    }
}
