//! What a process reports into the state of what it finds: load balancers whose nodes all
//! listen (provisioning → active), endpoints whose interfaces it made, deregistrations whose
//! delay is over. Reports are recomputed from each snapshot and committed in the background,
//! the latest first, so that a store that hangs holds up no apply.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use elb_dataplane::DataPlane;
use elb_model::{Command, EndpointState, LoadBalancerState, State};
use elb_store::Store;
use tokio::sync::watch;
use tracing::error;

use crate::roles::Served;

/// One command in the region it applies to.
pub(crate) type Report = (String, Command);

/// Commits the latest reports in the background, one commit at a time.
pub(crate) struct Reporter {
    latest: watch::Sender<Vec<Report>>,
    committing: tokio::task::JoinHandle<()>,
}

impl Reporter {
    pub(crate) fn start(store: Arc<Store>) -> Self {
        let (latest, reports) = watch::channel(Vec::new());
        let committing = tokio::spawn(commit_latest(store, reports));
        Self { latest, committing }
    }

    /// Commits what is waiting, and nothing after.
    pub(crate) async fn stop(self) {
        drop(self.latest);
        let _ = self.committing.await;
    }

    /// Replaces what is waiting to be committed: reports are recomputed from each snapshot,
    /// so older ones not yet committed are superseded, not lost.
    pub(crate) fn report(&self, reports: Vec<Report>) {
        if !reports.is_empty() {
            self.latest.send_replace(reports);
        }
    }
}

async fn commit_latest(store: Arc<Store>, mut reports: watch::Receiver<Vec<Report>>) {
    while reports.changed().await.is_ok() {
        let commands = reports.borrow_and_update().clone();
        let store = store.clone();
        // Off the async threads: the store blocks until its backend answers. Reports are of
        // this process's findings, which leave resources deleted meanwhile be, so none fails
        // for that.
        let result = tokio::task::spawn_blocking(move || {
            store.update(|state, cx| {
                for (region, command) in &commands {
                    state.apply(region, command.clone(), cx)?;
                }
                Ok(())
            })
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => error!("reporting what this process finds: {e}"),
            Err(e) => error!("reporting what this process finds: {e}"),
        }
    }
}

/// Removes deregistered targets whose delay has passed: one command per region that has one.
pub(crate) fn draining_over(state: &State, now_ms: u64) -> Vec<Report> {
    state
        .regions
        .values()
        .filter(|region| {
            region
                .target_groups
                .values()
                .flat_map(|tg| &tg.targets)
                .any(|t| t.draining_until_ms.is_some_and(|until| until <= now_ms))
        })
        .map(|region| (region.scope.region.clone(), Command::ExpireDraining))
        .collect()
}

/// provisioning → active for every load balancer whose nodes are all served and tried (every
/// listener bound, or found unbindable): active_impaired while some listener cannot be bound,
/// active again once it is. The state's reason names those listeners, and the node addresses
/// their hosts did not have when they were bound.
pub(crate) fn activations(state: &State, served: &BTreeMap<&str, &Served>) -> Vec<Report> {
    let mut reports = Vec::new();
    for region in state.regions.values() {
        let settled = |lb: &&elb_model::LoadBalancer| lb.state != LoadBalancerState::Failed;
        for lb in region.load_balancers.values().filter(settled) {
            let nodes: Option<Vec<&Served>> = region
                .nodes_of(&lb.arn)
                .map(|n| {
                    let served = served.get(n.id.as_str()).copied();
                    served.filter(|s| s.ready || !s.failing.is_empty())
                })
                .collect();
            let Some(nodes) = nodes else {
                continue;
            };
            let failing: Vec<&str> = nodes
                .iter()
                .flat_map(|s| &s.failing)
                .map(String::as_str)
                .collect();
            // Each address once, in address order.
            let waiting: BTreeSet<IpAddr> =
                nodes.iter().flat_map(|s| &s.waiting).copied().collect();
            let waiting: Vec<String> = waiting.iter().map(ToString::to_string).collect();
            let mut reasons = Vec::new();
            if !failing.is_empty() {
                reasons.push(format!(
                    "Listeners could not be bound (tried again every second): {}",
                    failing.join("; ")
                ));
            }
            if !waiting.is_empty() {
                reasons.push(format!(
                    "Nodes listen on {}, which this host does not have; they serve once the \
                     addresses are added",
                    waiting.join(", ")
                ));
            }
            let reason = (!reasons.is_empty()).then(|| reasons.join(". "));
            let impaired = !failing.is_empty();
            let now = match impaired {
                true => LoadBalancerState::ActiveImpaired,
                false => LoadBalancerState::Active,
            };
            if lb.state == now && lb.state_reason == reason {
                continue;
            }
            let arn = lb.arn.clone();
            let activate = Command::ActivateLoadBalancer {
                arn,
                impaired,
                reason,
            };
            reports.push((region.scope.region.clone(), activate));
        }
    }
    reports
}

/// pending → available (or failed, with why) for every Gateway Load Balancer endpoint whose
/// interface this host made (or could not make); available → failed when a restart could not
/// make it again, or it stopped working.
pub(crate) fn settlements(state: &State, dataplane: &DataPlane) -> Vec<Report> {
    let mut settled = Vec::new();
    for region in state.regions.values() {
        for endpoint in region.vpc_endpoints.values() {
            let failure = match (endpoint.state, dataplane.endpoint_status(&endpoint.id)) {
                (EndpointState::Pending, Some(Ok(()))) => None,
                (EndpointState::Pending | EndpointState::Available, Some(Err(why))) => Some(why),
                _ => continue,
            };
            let id = endpoint.id.clone();
            let settle = Command::SettleVpcEndpoint { id, failure };
            settled.push((region.scope.region.clone(), settle));
        }
    }
    settled
}
