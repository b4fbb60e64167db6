//! A Gateway Load Balancer node's flow table: which appliance each flow goes to, the same
//! one for both directions. Pure: time is a value in milliseconds the caller passes.
//!
//! - A flow is keyed by the group's stickiness tuple with its two ends in a fixed order, so
//!   a reply finds its request's flow: the 5-tuple by default (the 3-tuple for packets
//!   without ports), the 3-tuple (addresses and protocol) or the 2-tuple (addresses) when
//!   `stickiness.enabled` asks.
//! - A new flow goes to the appliance the flow hash ranks highest among the healthy ones;
//!   with none healthy it goes to any registered one (AWS fails open).
//! - A flow ends after its idle timeout (TCP: the listener's `tcp.idle_timeout.seconds` with
//!   5-tuple stickiness, else AWS's 350 s; anything else: 120 s); the next packet starts a
//!   new flow, which may go elsewhere, but for TCP only a SYN does: other TCP packets without
//!   a live flow are dropped, as AWS does.
//! - An appliance that turns unhealthy keeps its flows with `target_failover` `no_rebalance`,
//!   and they move to a healthy one with `rebalance`. A deregistered one keeps its flows while
//!   it drains; when its delay ends, they move.
//! - The table holds at most [`MAX_FLOWS`]; when it is full, idle flows are swept out (at
//!   most once a second), and a new flow that still finds no room is routed by the hash
//!   alone, which sends it where the table would have as long as the appliances stay.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use elb_wire::ip::{self, Headers};

use crate::flow::{highest, ip_bits, mix};

/// Flows one node's table keeps (about 100 bytes each).
pub const MAX_FLOWS: usize = 262_144;
/// AWS's idle timeout for flows other than TCP.
pub const OTHER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// AWS's idle timeout for TCP flows when stickiness keys them by fewer than five fields.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(350);

/// The group's `stickiness.*` attributes: what a flow is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stickiness {
    /// Stickiness off: addresses, protocol and ports.
    FiveTuple,
    /// `source_ip_dest_ip_proto`.
    ThreeTuple,
    /// `source_ip_dest_ip`.
    TwoTuple,
}

/// The group's `target_failover.*` attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failover {
    NoRebalance,
    Rebalance,
}

/// Where an appliance stands, as the node sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Healthy,
    /// Failed its health checks (or not yet checked): new flows avoid it unless none is
    /// healthy.
    Unhealthy,
    /// Deregistered, within its deregistration delay: it takes no new flows.
    Draining,
}

/// A flow's key, the same for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// 0 under 2-tuple stickiness.
    protocol: u8,
    low: (IpAddr, u16),
    high: (IpAddr, u16),
}

impl FlowKey {
    pub fn new(flow: &Headers, stickiness: Stickiness) -> Self {
        let (source_port, destination_port) = match (stickiness, flow.ports) {
            (Stickiness::FiveTuple, Some(ports)) => ports,
            _ => (0, 0),
        };
        let protocol = match stickiness {
            Stickiness::TwoTuple => 0,
            _ => flow.protocol,
        };
        let a = (flow.source, source_port);
        let b = (flow.destination, destination_port);
        Self {
            protocol,
            low: a.min(b),
            high: a.max(b),
        }
    }

    fn hash(&self, seed: u64) -> u64 {
        let mut h = mix(seed ^ u64::from(self.protocol));
        for (ip, port) in [self.low, self.high] {
            h = mix(h ^ ip_bits(ip) ^ (u64::from(port) << 48));
        }
        h
    }

    /// AWS's option type 3: the same for both directions, and for a flow that starts again.
    pub fn cookie(&self, seed: u64) -> u32 {
        (mix(self.hash(seed)) >> 32) as u32
    }
}

/// Where a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub appliance: SocketAddr,
    pub cookie: u32,
    /// The packet started a flow (or moved one): what `NewFlowCount` counts.
    pub new: bool,
}

struct Entry {
    appliance: SocketAddr,
    cookie: u32,
    last_ms: u64,
    idle_ms: u64,
}

/// One endpoint's flows.
pub struct FlowTable {
    seed: u64,
    flows: HashMap<FlowKey, Entry>,
    /// When a full table was last swept.
    swept_full_ms: Option<u64>,
    /// Taking over from another process: its TCP connections run on without a SYN here, so
    /// for one TCP idle timeout any TCP packet may start a flow (to the appliance the shared
    /// seed's hash gives, the one the old process chose unless the appliances changed).
    adopting: bool,
}

/// The group as a packet's route needs it.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub stickiness: Stickiness,
    pub failover: Failover,
    pub tcp_idle: Duration,
}

impl Default for Policy {
    /// AWS's defaults: the 5-tuple, no rebalancing, 350 s for TCP.
    fn default() -> Self {
        Self {
            stickiness: Stickiness::FiveTuple,
            failover: Failover::NoRebalance,
            tcp_idle: Duration::from_secs(350),
        }
    }
}

impl FlowTable {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            flows: HashMap::new(),
            swept_full_ms: None,
            adopting: false,
        }
    }

    /// A table started by a process taking over from one that ran the endpoint (with its
    /// seed): the connections already open are adopted rather than dropped.
    pub fn adopting(seed: u64) -> Self {
        Self {
            adopting: true,
            ..Self::new(seed)
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// The appliance for a packet of `flow` (either direction) at `now_ms`, among the
    /// group's `appliances`; `None` when the group has none that may take it, or when a TCP
    /// packet other than a SYN finds no live flow.
    pub fn route(
        &mut self,
        flow: &Headers,
        policy: &Policy,
        appliances: &[(SocketAddr, Standing)],
        now_ms: u64,
    ) -> Option<Route> {
        let key = FlowKey::new(flow, policy.stickiness);
        let idle_ms = match (flow.protocol, policy.stickiness) {
            (ip::TCP, Stickiness::FiveTuple) => policy.tcp_idle,
            (ip::TCP, _) => TCP_IDLE_TIMEOUT,
            _ => OTHER_IDLE_TIMEOUT,
        }
        .as_millis() as u64;
        let full = self.flows.len() >= MAX_FLOWS;
        let adopts = self.adopts(policy, now_ms);
        let live = self
            .flows
            .get_mut(&key)
            .filter(|entry| now_ms.saturating_sub(entry.last_ms) < entry.idle_ms);
        match live {
            Some(entry) if keeps(entry.appliance, policy.failover, appliances) => {
                entry.last_ms = now_ms;
                entry.idle_ms = entry.idle_ms.max(idle_ms);
                return Some(Route {
                    appliance: entry.appliance,
                    cookie: entry.cookie,
                    new: false,
                });
            }
            // A live flow moves (its appliance left, or failed under `rebalance`), whatever
            // the packet.
            Some(_) => {}
            // Without a live flow only a SYN starts a TCP one, unless the table is full (its
            // flows may be ones it had no room to keep, routed by the hash alone) or adopting
            // another process's.
            None if flow.protocol == ip::TCP && !flow.syn && !full && !adopts => {
                return None;
            }
            None => {}
        }
        let appliance = choose(key.hash(self.seed), appliances)?;
        let cookie = key.cookie(self.seed);
        if self.flows.len() >= MAX_FLOWS
            && !self.flows.contains_key(&key)
            && self
                .swept_full_ms
                .is_none_or(|at| now_ms.saturating_sub(at) >= 1_000)
        {
            self.swept_full_ms = Some(now_ms);
            self.expire(now_ms);
        }
        // A flow the table has no room for is new only once, by its SYN (or first packet).
        let kept = self.flows.len() < MAX_FLOWS || self.flows.contains_key(&key);
        if kept {
            self.flows.insert(
                key,
                Entry {
                    appliance,
                    cookie,
                    last_ms: now_ms,
                    idle_ms,
                },
            );
        }
        Some(Route {
            appliance,
            cookie,
            new: kept || flow.protocol != ip::TCP || flow.syn,
        })
    }

    /// Whether a TCP packet without a SYN may still start a flow: while adopting, within the
    /// TCP idle timeout of the table's start (`now_ms` counts from it).
    fn adopts(&self, policy: &Policy, now_ms: u64) -> bool {
        self.adopting && u128::from(now_ms) < policy.tcp_idle.as_millis()
    }

    /// Forgets flows idle past their timeout at `now_ms`; returns how many ended.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let before = self.flows.len();
        self.flows
            .retain(|_, e| now_ms.saturating_sub(e.last_ms) < e.idle_ms);
        before - self.flows.len()
    }
}

/// Whether a flow stays with `appliance`: while it drains, and while it is unhealthy under
/// `no_rebalance` or with nowhere healthy to go; not once it is gone.
fn keeps(appliance: SocketAddr, failover: Failover, appliances: &[(SocketAddr, Standing)]) -> bool {
    match appliances.iter().find(|(a, _)| *a == appliance) {
        None => false,
        Some((_, Standing::Healthy | Standing::Draining)) => true,
        Some((_, Standing::Unhealthy)) => {
            failover == Failover::NoRebalance
                || !appliances.iter().any(|(_, s)| *s == Standing::Healthy)
        }
    }
}

/// A new flow's appliance: the hash's highest among the healthy ones, else among those not
/// draining (fail open).
fn choose(hash: u64, appliances: &[(SocketAddr, Standing)]) -> Option<SocketAddr> {
    let among = |wanted: fn(Standing) -> bool| {
        highest(
            hash,
            appliances
                .iter()
                .filter(|(_, s)| wanted(*s))
                .map(|(a, _)| *a),
        )
    };
    among(|s| s == Standing::Healthy).or_else(|| among(|s| s == Standing::Unhealthy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SEED: u64 = 0x6e1e;
    const POLICY: Policy = Policy {
        stickiness: Stickiness::FiveTuple,
        failover: Failover::NoRebalance,
        tcp_idle: Duration::from_secs(350),
    };

    fn host(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 98, 1, n))
    }

    /// A SYN from `client`'s `port` to the web server.
    fn tcp(client: u8, port: u16) -> Headers {
        Headers {
            protocol: ip::TCP,
            source: host(client),
            destination: IpAddr::V4(Ipv4Addr::new(10, 98, 2, 10)),
            ports: Some((port, 80)),
            syn: true,
        }
    }

    fn reply(f: &Headers) -> Headers {
        Headers {
            source: f.destination,
            destination: f.source,
            ports: f.ports.map(|(s, d)| (d, s)),
            ..*f
        }
    }

    fn appliances(n: u8) -> Vec<(SocketAddr, Standing)> {
        (0..n)
            .map(|i| {
                (
                    SocketAddr::from(([10, 98, 3, 10 + i], 6081)),
                    Standing::Healthy,
                )
            })
            .collect()
    }

    fn flows() -> impl Iterator<Item = Headers> {
        (1..=50u8).flat_map(|c| (0..40u16).map(move |p| tcp(c, 40_000 + p)))
    }

    #[test]
    fn both_directions_of_a_flow_go_to_one_appliance_with_one_cookie() {
        let set = appliances(3);
        let mut table = FlowTable::new(SEED);
        let mut used = std::collections::HashSet::new();
        for f in flows() {
            let out = table.route(&f, &POLICY, &set, 0).unwrap();
            assert!(out.new);
            let back = table.route(&reply(&f), &POLICY, &set, 1).unwrap();
            assert_eq!(
                (back.appliance, back.cookie, back.new),
                (out.appliance, out.cookie, false)
            );
            used.insert(out.appliance);
        }
        assert_eq!(used.len(), 3, "flows spread over every appliance");
        assert_eq!(table.len(), 2_000);
    }

    #[test]
    fn three_and_two_tuple_stickiness_keep_two_hosts_on_one_appliance() {
        let set = appliances(4);
        for stickiness in [Stickiness::ThreeTuple, Stickiness::TwoTuple] {
            let policy = Policy {
                stickiness,
                ..POLICY
            };
            let mut table = FlowTable::new(SEED);
            let first = table.route(&tcp(7, 40_000), &policy, &set, 0).unwrap();
            for p in 1..200 {
                let r = table.route(&tcp(7, 40_000 + p), &policy, &set, 0).unwrap();
                assert_eq!(r.appliance, first.appliance, "{stickiness:?}");
            }
            let udp = Headers {
                protocol: ip::UDP,
                syn: false,
                ..tcp(7, 5353)
            };
            let same = table
                .route(&reply(&udp), &policy, &set, 0)
                .unwrap()
                .appliance
                == first.appliance;
            assert_eq!(
                same,
                stickiness == Stickiness::TwoTuple,
                "the protocol counts in 3-tuple"
            );
            assert_eq!(
                table.len(),
                1 + usize::from(stickiness == Stickiness::ThreeTuple)
            );
        }
    }

    #[test]
    fn a_table_taking_over_adopts_open_connections_for_one_idle_timeout() {
        let set = appliances(2);
        let data = Headers {
            syn: false,
            ..tcp(1, 40_000)
        };
        assert!(
            FlowTable::new(SEED)
                .route(&data, &POLICY, &set, 0)
                .is_none()
        );
        let mut table = FlowTable::adopting(SEED);
        let adopted = table.route(&data, &POLICY, &set, 1_000).unwrap();
        // Where the old process, with the same seed, sent the connection's SYN.
        let mut old = FlowTable::new(SEED);
        let first = old.route(&tcp(1, 40_000), &POLICY, &set, 0).unwrap();
        assert_eq!(
            (adopted.appliance, adopted.cookie),
            (first.appliance, first.cookie)
        );
        let other = Headers {
            syn: false,
            ..tcp(2, 40_000)
        };
        assert!(
            table.route(&other, &POLICY, &set, 350_000).is_none(),
            "only within the TCP idle timeout"
        );
    }

    #[test]
    fn flows_idle_out_after_their_protocols_timeout() {
        let set = appliances(2);
        let mut table = FlowTable::new(SEED);
        let udp = Headers {
            protocol: ip::UDP,
            syn: false,
            ..tcp(1, 40_001)
        };
        table.route(&tcp(1, 40_000), &POLICY, &set, 0);
        table.route(&udp, &POLICY, &set, 0);
        assert_eq!(table.expire(119_999), 0);
        assert_eq!(table.expire(120_000), 1, "UDP after 120 s");
        let data = Headers {
            syn: false,
            ..tcp(1, 40_000)
        };
        assert!(!table.route(&data, &POLICY, &set, 349_999).unwrap().new);
        assert_eq!(table.expire(349_999 + 349_999), 0);
        let later = 349_999 + 350_000;
        let without_flow = table.route(&data, &POLICY, &set, later);
        assert_eq!(without_flow, None, "TCP data after the timeout is dropped");
        let syn = table.route(&tcp(1, 40_000), &POLICY, &set, later);
        assert!(syn.unwrap().new, "a SYN starts a new flow");

        // Keyed by fewer fields, TCP flows idle out after AWS's 350 s, whatever the listener.
        let mut table = FlowTable::new(SEED);
        let three = Policy {
            stickiness: Stickiness::ThreeTuple,
            tcp_idle: Duration::from_secs(60),
            ..POLICY
        };
        table.route(&tcp(2, 40_000), &three, &set, 0);
        assert_eq!(table.expire(60_000), 0);
        assert_eq!(table.expire(350_000), 1);
    }

    #[test]
    fn an_unhealthy_appliance_keeps_its_flows_only_without_rebalance() {
        let mut set = appliances(2);
        let victim = set[0].0;
        for failover in [Failover::NoRebalance, Failover::Rebalance] {
            let policy = Policy { failover, ..POLICY };
            let mut table = FlowTable::new(SEED);
            let on_victim: Vec<Headers> = flows()
                .filter(|f| table.route(f, &policy, &set, 0).unwrap().appliance == victim)
                .collect();
            assert!(!on_victim.is_empty());
            set[0].1 = Standing::Unhealthy;
            for f in &on_victim {
                // The connection's next packet (no SYN) moves with it.
                let ack = Headers {
                    syn: false,
                    ..reply(f)
                };
                let r = table.route(&ack, &policy, &set, 1).unwrap();
                let kept = failover == Failover::NoRebalance;
                assert_eq!(r.appliance == victim, kept, "{failover:?}");
                assert_eq!(r.new, !kept);
            }
            let fresh = table.route(&tcp(99, 1), &policy, &set, 2).unwrap();
            assert_ne!(fresh.appliance, victim, "new flows go to the healthy one");
            set[0].1 = Standing::Healthy;
        }
    }

    #[test]
    fn a_draining_appliance_keeps_its_flows_until_it_is_gone_and_takes_no_new_ones() {
        let mut set = appliances(2);
        let victim = set[1].0;
        let mut table = FlowTable::new(SEED);
        let on_victim: Vec<Headers> = flows()
            .filter(|f| table.route(f, &POLICY, &set, 0).unwrap().appliance == victim)
            .collect();
        set[1].1 = Standing::Draining;
        for f in &on_victim {
            assert_eq!(table.route(f, &POLICY, &set, 1).unwrap().appliance, victim);
        }
        assert!(flows().all(|f| {
            let r = table
                .route(&tcp(200, f.ports.unwrap().0), &POLICY, &set, 1)
                .unwrap();
            r.appliance != victim
        }));
        set.truncate(1);
        for f in &on_victim {
            let data = Headers { syn: false, ..*f };
            let r = table.route(&data, &POLICY, &set, 2).unwrap();
            assert_eq!((r.appliance, r.new), (set[0].0, true), "moved once gone");
        }
    }

    #[test]
    fn with_none_healthy_flows_fail_open_and_a_rehashed_flow_keeps_its_cookie() {
        let mut set = appliances(3);
        for a in &mut set {
            a.1 = Standing::Unhealthy;
        }
        set[2].1 = Standing::Draining;
        let policy = Policy {
            failover: Failover::Rebalance,
            ..POLICY
        };
        let mut table = FlowTable::new(SEED);
        let mut used = std::collections::HashSet::new();
        for f in flows() {
            let r = table.route(&f, &policy, &set, 0).unwrap();
            assert_ne!(r.appliance, set[2].0, "a draining one takes no flows");
            assert!(
                !table.route(&f, &policy, &set, 1).unwrap().new,
                "kept: nowhere better"
            );
            assert_eq!(
                r.cookie,
                FlowKey::new(&f, Stickiness::FiveTuple).cookie(SEED)
            );
            used.insert(r.appliance);
        }
        assert_eq!(used.len(), 2);
        assert_eq!(
            FlowTable::new(SEED).route(&tcp(1, 1), &POLICY, &[], 0),
            None
        );
    }
}
