//! Which registered targets a node sends a target group's traffic to, whatever the protocol:
//! those in reach (its zone, or all with cross-zone) that its health checks find healthy, or
//! all in reach when too few are healthy (fail-open, per
//! `target_group_health.unhealthy_state_routing.*`).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use elb_model::health::below_minimum;
use elb_model::{HealthState, HealthView, Node, Region, Registration, TargetGroup};

use super::{Kept, keep};
use crate::targets::{PassedOver, TargetLoad};

/// A target the node may send to.
pub(super) struct Chosen {
    /// The registration's key (`TargetGroup` ARN, id and port), as health is kept by.
    pub(super) key: String,
    pub(super) addr: SocketAddr,
    /// Since when it has been healthy; `None` when it is taken only by fail-open.
    pub(super) healthy_since_ms: Option<u64>,
    /// What the node has sent it, kept across snapshots.
    pub(super) load: Arc<TargetLoad>,
}

/// What a node sends a group's traffic to.
pub(super) struct Choice {
    pub(super) targets: Vec<Chosen>,
    /// How many registered targets can take traffic at all.
    pub(super) registered: usize,
    /// Too few are healthy: every target in reach is taken, healthy or not.
    pub(super) fail_open: bool,
    /// The group's other targets, and why the node does not send to them.
    pub(super) passed_over: Vec<PassedOver>,
}

/// The group's targets for `node` that `protocol` ("tcp" or "udp") can reach.
pub(super) fn choose(
    state: &Region,
    node: &Node,
    tg: &TargetGroup,
    health: &HealthView,
    protocol: &str,
    (old, used): (&Kept, &mut Kept),
) -> Choice {
    let registered = tg.targets.iter().filter(|t| state.in_service(t)).count();
    let mut passed_over: Vec<PassedOver> = tg
        .targets
        .iter()
        .filter_map(|t| {
            let why = if !state.in_service(t) {
                PassedOver::NOT_IN_SERVICE
            } else if !state.reaches(node, tg, t) {
                PassedOver::OTHER_ZONE
            } else {
                return None;
            };
            Some(PassedOver::of(t, why))
        })
        .collect();
    let in_reach: Vec<(Cow<'_, Registration>, String)> = state
        .in_reach(node, tg)
        .map(|t| {
            let key = t.key(&tg.arn);
            (t, key)
        })
        .collect();
    // Targets the load balancer's security groups do not let the node reach count as
    // targets (their checks time out) but get no traffic: on AWS it would time out.
    let egress = state
        .load_balancers
        .get(&node.load_balancer_arn)
        .map(|lb| state.egress(lb));
    let reachable = |t: &Registration| {
        egress
            .as_ref()
            .is_none_or(|e| e.allows(protocol, t.address, t.port))
    };
    let healthy_since = |key: &str| {
        health
            .get(&node.id, key)
            .filter(|h| h.state == HealthState::Healthy)
            .map(|h| h.healthy_since_ms.unwrap_or(0))
    };
    let healthy = in_reach
        .iter()
        .filter(|(_, key)| healthy_since(key).is_some())
        .count();
    let attrs = &tg.attributes;
    let count =
        attrs.int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count");
    let percent =
        attrs.int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage");
    // Too few healthy: route to every target in reach, healthy or not.
    let fail_open = !in_reach.is_empty() && below_minimum(healthy, in_reach.len(), count, percent);
    let targets = in_reach
        .into_iter()
        .filter_map(|(registration, key)| {
            let since = healthy_since(&key);
            if since.is_none() && !fail_open {
                passed_over.push(PassedOver::of(&registration, PassedOver::UNHEALTHY));
                return None;
            }
            if !reachable(&registration) {
                passed_over.push(PassedOver::of(&registration, PassedOver::EGRESS));
                return None;
            }
            let load = keep(
                &old.loads,
                &mut used.loads,
                (node.id.clone(), key.clone()),
                Arc::default,
            );
            Some(Chosen {
                addr: SocketAddr::new(registration.address, registration.port),
                healthy_since_ms: since.filter(|_| !fail_open),
                key,
                load,
            })
        })
        .collect();
    Choice {
        targets,
        registered,
        fail_open,
        passed_over,
    }
}
