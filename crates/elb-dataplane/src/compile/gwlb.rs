//! Gateway load balancers: the GENEVE listener on each node (UDP 6081 of its address), and
//! the routes of the endpoints this host runs (pending or available ones): the node of the
//! endpoint's zone, and the appliances of the group its gateway's listener forwards to, with
//! where each stands.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use elb_model::attributes::{FAILOVER_ON_UNHEALTHY, TCP_IDLE_TIMEOUT};
use elb_model::{
    EndpointState, HealthState, Listener as ModelListener, LoadBalancer, Node, Region, TargetGroup,
    VpcEndpoint,
};

use super::{Inputs, Kept, Runtime, keep};
use crate::gateway::flows::{Failover, Policy, Standing, Stickiness};
use crate::metrics::GatewayMetrics;
use crate::table::{Door, EndpointRoute, GeneveRoute, Listener};

impl Runtime {
    /// The GENEVE listener of each node of gateway `lb`, with the endpoints each serves.
    pub(super) fn gateway_listener<'a>(
        &self,
        inputs: &Inputs<'a>,
        lb: &'a LoadBalancer,
        door: Door,
        endpoints: &HashMap<String, Arc<EndpointRoute>>,
        used: &mut Kept,
    ) -> Vec<(&'a Node, Listener)> {
        inputs
            .state
            .nodes_of(&lb.arn)
            .map(|node| {
                let metrics = self.node_metrics(node, used);
                let served = endpoints
                    .values()
                    .filter(|e| e.node_ip == Some(IpAddr::V4(node.private_ipv4)))
                    .map(|e| (e.endpoint_id, e.clone()))
                    .collect();
                let route = GeneveRoute {
                    door: door.clone(),
                    endpoints: served,
                    metrics,
                };
                (node, Listener::Geneve(Arc::new(route)))
            })
            .collect()
    }

    /// The routes of `region`'s endpoints that run (pending or available), by id.
    pub(super) fn endpoint_routes(
        &self,
        inputs: &Inputs<'_>,
        used: &mut Kept,
    ) -> HashMap<String, Arc<EndpointRoute>> {
        let state = inputs.state;
        state
            .vpc_endpoints
            .values()
            .filter(|e| matches!(e.state, EndpointState::Pending | EndpointState::Available))
            .filter_map(|e| {
                let route = self.endpoint_route(inputs, e, used)?;
                Some((e.id.clone(), Arc::new(route)))
            })
            .collect()
    }

    /// The metrics of gateway node `node`, kept across snapshots.
    fn node_metrics(&self, node: &Node, used: &mut Kept) -> Arc<GatewayMetrics> {
        let key = (
            node.load_balancer_arn.clone(),
            node.availability_zone.clone(),
        );
        keep(&self.kept.gateways, &mut used.gateways, key, Arc::default)
    }

    /// The route of a running endpoint. Without a gateway node in its zone (its service
    /// changed), it keeps its interface and its packets are dropped: the routes into it stay,
    /// and nothing passes uninspected.
    fn endpoint_route(
        &self,
        inputs: &Inputs<'_>,
        endpoint: &VpcEndpoint,
        used: &mut Kept,
    ) -> Option<EndpointRoute> {
        let state = inputs.state;
        let zone = &state.subnets.get(&endpoint.subnet_id)?.availability_zone;
        let Some(node) = state.gateway_node_for(&endpoint.service_id, zone) else {
            return Some(EndpointRoute {
                node_ip: None,
                appliances: Vec::new(),
                policy: Policy::default(),
                metrics: Arc::default(),
                ..self.endpoint_identity(endpoint)
            });
        };
        let listener = state.listeners_of(&node.load_balancer_arn).next();
        let group = listener
            .and_then(|l| l.default_target_groups().next())
            .and_then(|arn| state.target_groups.get(arn));
        let (appliances, policy) = match (listener, group) {
            (Some(listener), Some(tg)) => (
                appliances(state, inputs.health, node, tg),
                policy(listener, tg),
            ),
            // No listener yet: the endpoint is up, and its packets have nowhere to go.
            _ => (Vec::new(), Policy::default()),
        };
        Some(EndpointRoute {
            node_ip: Some(IpAddr::V4(node.private_ipv4)),
            appliances,
            policy,
            metrics: self.node_metrics(node, used),
            ..self.endpoint_identity(endpoint)
        })
    }

    /// What a route of `endpoint` is whatever its node: its names and numbers.
    fn endpoint_identity(&self, endpoint: &VpcEndpoint) -> EndpointRoute {
        EndpointRoute {
            id: endpoint.id.clone(),
            interface: endpoint.interface_name(),
            endpoint_id: endpoint.geneve_id(),
            attachment_id: endpoint.attachment_id,
            node_ip: None,
            appliances: Vec::new(),
            policy: Policy::default(),
            seed: self.flow_seed,
            metrics: Arc::default(),
        }
    }
}

/// The group's appliances in `node`'s reach: those in service (healthy or not, as the
/// node's checks say) and those draining, which keep their flows.
fn appliances(
    state: &Region,
    health: &elb_model::HealthView,
    node: &Node,
    tg: &TargetGroup,
) -> Vec<(SocketAddr, Standing)> {
    let in_service = state.in_reach(node, tg).map(|r| {
        let healthy = health
            .get(&node.id, &r.key(&tg.arn))
            .is_some_and(|h| h.state == HealthState::Healthy);
        let standing = if healthy {
            Standing::Healthy
        } else {
            Standing::Unhealthy
        };
        (SocketAddr::new(r.address, r.port), standing)
    });
    let draining = tg
        .targets
        .iter()
        .filter(|r| r.is_draining() && state.reaches(node, tg, r))
        .map(|r| (SocketAddr::new(r.address, r.port), Standing::Draining));
    in_service.chain(draining).collect()
}

fn policy(listener: &ModelListener, tg: &TargetGroup) -> Policy {
    let attrs = &tg.attributes;
    let stickiness = match (
        attrs.flag("stickiness.enabled"),
        attrs.get("stickiness.type"),
    ) {
        (false, _) => Stickiness::FiveTuple,
        (true, Some("source_ip_dest_ip")) => Stickiness::TwoTuple,
        (true, _) => Stickiness::ThreeTuple,
    };
    // The two failover keys always match (the model refuses them apart).
    let failover = match attrs.get(FAILOVER_ON_UNHEALTHY) {
        Some("rebalance") => Failover::Rebalance,
        _ => Failover::NoRebalance,
    };
    Policy {
        stickiness,
        failover,
        tcp_idle: Duration::from_secs(listener.attributes.int(TCP_IDLE_TIMEOUT).unwrap_or(350)),
    }
}
