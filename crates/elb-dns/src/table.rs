//! What the load balancers' names resolve to: a pure function of the snapshot and the health
//! view, rebuilt whenever either changes.
//!
//! - `NAME-ID.REGION.elb.DOMAIN` (ALB) and `NAME-ID.elb.REGION.DOMAIN` (NLB, GWLB), with
//!   `internal-` for internal ALBs, answer with the addresses of the nodes in healthy zones;
//!   if no zone is healthy, with all of them (fail-open), as AWS does.
//! - `ZONE.<name>` answers with that zone's node only.
//! - Internet-facing nodes answer with their public address when they have one.
//! - `dualstack.<name>` (what Route 53's alias records name) answers as `<name>`.
//! - Dual-stack load balancers' nodes answer AAAA queries with their IPv6 addresses; those
//!   without public IPv4 have no A records.

use std::collections::HashMap;
use std::net::IpAddr;

use elb_model::health::below_minimum;
use elb_model::{
    HealthState, HealthView, IpAddressType, LoadBalancer, LoadBalancerKind, LoadBalancerState,
    Node, Region, Scheme, State,
};

/// Answers for one snapshot. Names are lowercase and end in a dot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DnsTable {
    /// The zones elbd is authoritative for: `REGION.elb.DOMAIN.` and `elb.REGION.DOMAIN.`.
    pub origins: Vec<String>,
    names: HashMap<String, Vec<IpAddr>>,
}

/// What a name is, for the server to turn into a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Not in any of our zones.
    Refused,
    /// In a zone of ours, but not a name that exists.
    NxDomain { origin: &'a str },
    /// A load balancer or zonal name: its IPv4 and IPv6 addresses.
    Addresses { origin: &'a str, ips: &'a [IpAddr] },
    /// The zone apex itself (SOA, NS).
    Apex { origin: &'a str },
}

impl DnsTable {
    pub fn build(state: &State, health: &HealthView) -> Self {
        let mut table = Self::default();
        for region in state.regions.values() {
            table.add_region(region, health);
        }
        table
    }

    /// One region's zones and names.
    fn add_region(&mut self, state: &Region, health: &HealthView) {
        let (region, domain) = (&state.scope.region, &state.scope.dns_domain);
        self.origins.extend([
            format!("{region}.elb.{domain}.").to_lowercase(),
            format!("elb.{region}.{domain}.").to_lowercase(),
        ]);
        for lb in state
            .load_balancers
            .values()
            // Gateways have no name: their endpoints are routes' next hops. An impaired load
            // balancer still routes on what it could bind.
            .filter(|lb| {
                matches!(
                    lb.state,
                    LoadBalancerState::Active | LoadBalancerState::ActiveImpaired
                ) && lb.kind != LoadBalancerKind::Gateway
            })
        {
            let nodes: Vec<&Node> = state.nodes_of(&lb.arn).collect();
            let healthy: Vec<IpAddr> = nodes
                .iter()
                .filter(|n| zone_healthy(state, health, n))
                .flat_map(|n| addresses(lb, n))
                .collect();
            let mut answer = if healthy.is_empty() {
                nodes.iter().flat_map(|n| addresses(lb, n)).collect()
            } else {
                healthy
            };
            answer.sort();
            let name = format!("{}.", lb.dns_name.to_lowercase());
            for n in &nodes {
                self.names.insert(
                    format!("{}.{name}", n.availability_zone.to_lowercase()),
                    addresses(lb, n).collect(),
                );
            }
            // Route 53's alias records name any load balancer so.
            self.names
                .insert(format!("dualstack.{name}"), answer.clone());
            self.names.insert(name, answer);
        }
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

/// What a node of `lb` answers with: its public IPv4 address if internet-facing (its private
/// one where there is no public pool), none if `dualstack-without-public-ipv4`, else its
/// private one; and its IPv6 address if it has one.
fn addresses(lb: &LoadBalancer, n: &Node) -> impl Iterator<Item = IpAddr> {
    let v4 = match (lb.scheme, lb.ip_address_type) {
        (Scheme::InternetFacing, IpAddressType::DualstackWithoutPublicIpv4) => None,
        (Scheme::InternetFacing, _) => Some(n.public_ipv4.unwrap_or(n.private_ipv4)),
        (Scheme::Internal, _) => Some(n.private_ipv4),
    };
    v4.map(IpAddr::V4).into_iter().chain(n.ipv6.map(IpAddr::V6))
}

/// DNS failover: a node's zone is healthy when, for every target group its load balancer
/// forwards to, enough of the targets the node routes to are healthy
/// (`target_group_health.dns_failover.minimum_healthy_targets.*`; per zone with cross-zone
/// off, over all zones with it on, since that is what the node routes to).
fn zone_healthy(state: &Region, health: &HealthView, node: &Node) -> bool {
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

#[cfg(test)]
mod tests {
    use elb_model::id::SequentialIds;
    use elb_model::state::{
        CreateListener, CreateLoadBalancer, CreateTargetGroup, TargetDescription,
    };
    use elb_model::{
        Action, Command, Context, HealthView, ListenerProtocol, LoadBalancerKind, Origin, Outcome,
        Region, Scope, State, TargetHealth, Topology,
    };

    use super::*;

    /// An active ALB `web` in zones a and b; target group with 127.1.0.10 and 127.2.0.10,
    /// cross-zone off. Returns the state, the DNS name and the node ids of a and b.
    fn world() -> (State, String, [String; 2]) {
        let mut state = Region::new(Scope::default());
        let mut ids = SequentialIds::default();
        let mut run = |state: &mut Region, command| {
            let mut cx = Context {
                ids: &mut ids,
                now_ms: 0,
            };
            state.apply(command, &mut cx).unwrap()
        };
        run(&mut state, Command::SeedNetwork(Topology::default()));
        let subnet = |state: &Region, az: &str| {
            state
                .subnets
                .values()
                .find(|s| s.availability_zone == az)
                .unwrap()
                .id
                .clone()
        };
        let subnet_ids = vec![subnet(&state, "us-east-1a"), subnet(&state, "us-east-1b")];
        let create = CreateLoadBalancer {
            name: "web".into(),
            kind: LoadBalancerKind::Application,
            scheme: Some(Scheme::Internal),
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids,
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        };
        let Outcome::Created(lb) = run(&mut state, Command::CreateLoadBalancer(create)) else {
            panic!()
        };
        let tg = CreateTargetGroup {
            name: "tg".into(),
            protocol: Some("HTTP".into()),
            protocol_version: elb_model::ProtocolVersion::Http1,
            port: Some(80),
            vpc_id: None,
            target_type: "ip".into(),
            ip_address_type: None,
            origin: Origin::Api,
        };
        let Outcome::Created(tg) = run(&mut state, Command::CreateTargetGroup(tg)) else {
            panic!()
        };
        let target = |id: &str| TargetDescription {
            id: id.into(),
            port: None,
            availability_zone: None,
        };
        let targets = vec![target("127.1.0.10"), target("127.2.0.10")];
        run(
            &mut state,
            Command::RegisterTargets {
                target_group_arn: tg.clone(),
                targets,
            },
        );
        let cross_zone_off = vec![(
            "load_balancing.cross_zone.enabled".to_owned(),
            "false".to_owned(),
        )];
        run(
            &mut state,
            Command::ModifyTargetGroupAttributes {
                arn: tg.clone(),
                changes: cross_zone_off,
            },
        );
        let listener = CreateListener {
            load_balancer_arn: lb.clone(),
            protocol: Some(ListenerProtocol::Http),
            port: Some(80),
            default_actions: vec![Action::forward(tg)],
            default_action_orders: Vec::new(),
            ssl_policy: None,
            certificate_arns: vec![],
            mutual_authentication: None,
            alpn_policy: None,
            origin: Origin::Api,
        };
        run(&mut state, Command::CreateListener(listener));
        run(
            &mut state,
            Command::ActivateLoadBalancer {
                arn: lb.clone(),
                impaired: false,
                reason: None,
            },
        );
        let node = |az: &str| {
            state
                .nodes_of(&lb)
                .find(|n| n.availability_zone == az)
                .unwrap()
                .id
                .clone()
        };
        let nodes = [node("us-east-1a"), node("us-east-1b")];
        let name = format!("{}.", state.load_balancers[&lb].dns_name);
        (State::single(state), name, nodes)
    }

    fn healthy(view: &mut HealthView, state: &State, node: &str, target: &str) {
        let tg = state.regions["us-east-1"]
            .target_groups
            .values()
            .next()
            .unwrap();
        let key = tg
            .targets
            .iter()
            .find(|t| t.address.to_string() == target)
            .unwrap()
            .key(&tg.arn);
        let health = TargetHealth {
            state: HealthState::Healthy,
            reason: None,
            healthy_since_ms: Some(0),
        };
        view.targets.insert((node.to_owned(), key), health);
    }

    fn answer(table: &DnsTable, name: &str) -> Vec<String> {
        match table.lookup(name) {
            Lookup::Addresses { ips, .. } => ips.iter().map(ToString::to_string).collect(),
            other => panic!("{name}: {other:?}"),
        }
    }

    #[test]
    fn names_zonal_names_and_the_zones_around_them() {
        let (state, name, _) = world();
        let table = DnsTable::build(&state, &HealthView::default());
        assert!(name.starts_with("internal-web-") && name.ends_with(".us-east-1.elb.internal."));
        // Nothing healthy anywhere: every zone is out, so all are answered (fail-open).
        assert_eq!(answer(&table, &name), ["127.1.255.254", "127.2.255.254"]);
        assert_eq!(
            answer(&table, &format!("us-east-1b.{name}")),
            ["127.2.255.254"]
        );
        assert_eq!(
            table.lookup("nope-1.us-east-1.elb.internal."),
            Lookup::NxDomain {
                origin: "us-east-1.elb.internal."
            }
        );
        assert_eq!(
            table.lookup("us-east-1.elb.internal."),
            Lookup::Apex {
                origin: "us-east-1.elb.internal."
            }
        );
        assert_eq!(table.lookup("example.com."), Lookup::Refused);
    }

    #[test]
    fn each_region_answers_in_its_own_zones() {
        let (mut state, name, _) = world();
        let eu = Scope {
            region: "eu-west-1".into(),
            ..Scope::default()
        };
        state.regions.insert(eu.region.clone(), Region::new(eu));
        let table = DnsTable::build(&state, &HealthView::default());
        assert_eq!(answer(&table, &name), ["127.1.255.254", "127.2.255.254"]);
        // The same name under the other region's zone is that zone's, and unknown there.
        let elsewhere = name.replace(".us-east-1.", ".eu-west-1.");
        assert_eq!(
            table.lookup(&elsewhere),
            Lookup::NxDomain {
                origin: "eu-west-1.elb.internal."
            }
        );
        assert_eq!(
            table.lookup("elb.eu-west-1.internal."),
            Lookup::Apex {
                origin: "elb.eu-west-1.internal."
            }
        );
    }

    #[test]
    fn a_zone_without_healthy_targets_leaves_the_answers() {
        let (state, name, [a, b]) = world();
        let mut view = HealthView::default();
        healthy(&mut view, &state, &a, "127.1.0.10");
        let table = DnsTable::build(&state, &view);
        assert_eq!(
            answer(&table, &name),
            ["127.1.255.254"],
            "b's only target is not healthy from b"
        );
        healthy(&mut view, &state, &b, "127.2.0.10");
        assert_eq!(
            answer(&DnsTable::build(&state, &view), &name),
            ["127.1.255.254", "127.2.255.254"]
        );
    }
}
