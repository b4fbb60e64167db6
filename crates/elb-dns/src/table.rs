//! What the load balancers' names resolve to: a pure function of the snapshot and the health
//! view, rebuilt whenever either changes.
//!
//! - `NAME-ID.REGION.elb.DOMAIN` (ALB) and `NAME-ID.elb.REGION.DOMAIN` (NLB, GWLB), with
//!   `internal-` for internal ALBs, answer with the addresses of the nodes in healthy zones;
//!   if no zone is healthy, with all of them (fail-open), as AWS does.
//! - `ZONE.<name>` answers with that zone's node only.
//! - Internet-facing nodes answer with their public address when they have one.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use elb_model::health::below_minimum;
use elb_model::{HealthState, HealthView, LoadBalancerState, Node, Scheme, State};

/// Answers for one snapshot. Names are lowercase and end in a dot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DnsTable {
    /// The zones elbd is authoritative for: `REGION.elb.DOMAIN.` and `elb.REGION.DOMAIN.`.
    pub origins: Vec<String>,
    names: HashMap<String, Vec<Ipv4Addr>>,
}

/// What a name is, for the server to turn into a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not in any of our zones.
    Refused,
    /// In a zone of ours, but not a name that exists.
    NxDomain { origin: &'a str },
    /// A load balancer or zonal name.
    Addresses {
        origin: &'a str,
        ips: &'a [Ipv4Addr],
    },
    /// The zone apex itself (SOA, NS).
    Apex { origin: &'a str },
}

impl DnsTable {
    pub fn build(state: &State, health: &HealthView) -> Self {
        let (region, domain) = (&state.scope.region, &state.scope.dns_domain);
        let origins = vec![
            format!("{region}.elb.{domain}.").to_lowercase(),
            format!("elb.{region}.{domain}.").to_lowercase(),
        ];
        let mut names = HashMap::new();
        for lb in state
            .load_balancers
            .values()
            .filter(|lb| lb.state == LoadBalancerState::Active)
        {
            let address = |n: &Node| match lb.scheme {
                Scheme::InternetFacing => n.public_ipv4.unwrap_or(n.private_ipv4),
                Scheme::Internal => n.private_ipv4,
            };
            let nodes: Vec<&Node> = state.nodes_of(&lb.arn).collect();
            let healthy: Vec<Ipv4Addr> = nodes
                .iter()
                .filter(|n| zone_healthy(state, health, n))
                .map(|n| address(n))
                .collect();
            let mut answer = if healthy.is_empty() {
                nodes.iter().map(|n| address(n)).collect()
            } else {
                healthy
            };
            answer.sort();
            let name = format!("{}.", lb.dns_name.to_lowercase());
            for n in &nodes {
                names.insert(
                    format!("{}.{name}", n.availability_zone.to_lowercase()),
                    vec![address(n)],
                );
            }
            names.insert(name, answer);
        }
        Self { origins, names }
    }

    /// `qname`: lowercase, ending in a dot.
    pub fn lookup(&self, qname: &str) -> Lookup<'_> {
        let Some(origin) = self
            .origins
            .iter()
            .find(|o| qname == o.as_str() || qname.ends_with(&format!(".{o}")))
        else {
            return Lookup::Refused;
        };
        if qname == origin {
            return Lookup::Apex { origin };
        }
        match self.names.get(qname) {
            Some(ips) => Lookup::Addresses { origin, ips },
            None => Lookup::NxDomain { origin },
        }
    }
}

/// DNS failover: a node's zone is healthy when, for every target group its load balancer
/// forwards to, enough of the targets the node routes to are healthy
/// (`target_group_health.dns_failover.minimum_healthy_targets.*`; per zone with cross-zone
/// off, over all zones with it on, since that is what the node routes to).
fn zone_healthy(state: &State, health: &HealthView, node: &Node) -> bool {
    state.target_groups_of(&node.load_balancer_arn).all(|tg| {
        let in_reach: Vec<_> = state.in_reach(node, tg).collect();
        let healthy = in_reach
            .iter()
            .filter(|t| {
                health
                    .get(&node.id, &t.key(&tg.arn))
                    .is_some_and(|h| h.state == HealthState::Healthy)
            })
            .count();
        let attrs = &tg.attributes;
        let count = attrs.int("target_group_health.dns_failover.minimum_healthy_targets.count");
        let percent =
            attrs.int("target_group_health.dns_failover.minimum_healthy_targets.percentage");
        !in_reach.is_empty() && !below_minimum(healthy, in_reach.len(), count, percent)
    })
}
