//! The account's [`State`]: one [`Region`] per region it uses, opened on first use, and the
//! secrets every region shares.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::{Beyond, Command, Delta, Outcome, Region};
use crate::certificate::{Secrets, ServerCertificate};
use crate::error::{ModelError, Result};
use crate::id::{Context, Scope};
use crate::network::Topology;
use crate::node::Node;

/// Everything elbd knows about one account: its regions by name, and the secrets (cookie key,
/// local CA) that are the installation's, not a region's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    pub regions: BTreeMap<String, Region>,
    pub secrets: Secrets,
    /// IAM server certificates, by ARN: IAM is global, and listeners of any region may
    /// present them.
    pub server_certificates: BTreeMap<String, ServerCertificate>,
}

impl State {
    /// A state holding `region` alone (tests, and one-region tools).
    pub fn single(region: Region) -> Self {
        let mut state = Self::default();
        state.regions.insert(region.scope.region.clone(), region);
        state
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.get(name)
    }

    /// Opens `scope.region` unless it is open. Its default VPC is seeded from its topology in
    /// `configured` (the config file's regions), or else from the first
    /// [`Topology::loopback`] slot that overlaps neither an open region nor a configured one.
    pub fn open_region(
        &mut self,
        scope: &Scope,
        configured: &BTreeMap<String, Topology>,
        cx: &mut Context<'_>,
    ) -> Result<()> {
        if self.regions.contains_key(&scope.region) {
            return Ok(());
        }
        let topology = match configured.get(&scope.region) {
            Some(t) => {
                if let Some(clash) = t.ranges().find(|r| self.ranges_in_use(*r)) {
                    return Err(ModelError::validation(format!(
                        "region {}: the range {clash} is already used by another region",
                        scope.region
                    )));
                }
                t.clone()
            }
            None => {
                let reserved: Vec<Ipv4Net> =
                    configured.values().flat_map(Topology::ranges).collect();
                self.free_loopback(&scope.region, &reserved)?
            }
        };
        let mut region = Region::new(scope.clone());
        region.apply(Command::SeedNetwork(topology), cx)?;
        self.regions.insert(scope.region.clone(), region);
        Ok(())
    }

    /// Applies `command` to an open region.
    pub fn apply(
        &mut self,
        region: &str,
        command: Command,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        self.in_region(region, cx, |region, cx| region.apply(command, cx))
    }

    /// Runs `change` on an open region, which sees the node addresses (private and public)
    /// other regions hold.
    pub fn in_region<T>(
        &mut self,
        name: &str,
        cx: &mut Context<'_>,
        change: impl FnOnce(&mut Region, &mut Context<'_>) -> Result<T>,
    ) -> Result<T> {
        let node_addresses = self
            .regions
            .iter()
            .filter(|(other, _)| *other != name)
            .flat_map(|(_, r)| r.nodes.values().flat_map(Node::ipv4_addresses))
            .collect();
        let ipv6_blocks = self
            .regions
            .iter()
            .filter(|(other, _)| *other != name)
            .flat_map(|(_, r)| r.vpcs.values().flat_map(|v| v.ipv6_cidr_blocks.clone()))
            .collect();
        let server_certificates = self.server_certificates.keys().cloned().collect();
        let region = self
            .regions
            .get_mut(name)
            .ok_or_else(|| ModelError::validation(format!("region '{name}' is not open")))?;
        region.beyond = Beyond {
            node_addresses,
            ipv6_blocks,
            server_certificates,
        };
        let out = change(region, cx);
        region.beyond = Beyond::default();
        out
    }

    /// Sets the secrets that are unset; secrets once made are never replaced.
    pub fn init_secrets(&mut self, secrets: Secrets) {
        if self.secrets.is_empty() {
            self.secrets = secrets;
        } else if self.secrets.claims_key_pem.is_empty() {
            self.secrets.claims_key_pem = secrets.claims_key_pem;
        }
    }

    /// What turns `self` into `next`, over every region.
    pub fn diff(&self, next: &Self) -> Delta {
        let empty = Region::default();
        let names = self.regions.keys().chain(next.regions.keys());
        let mut delta = Delta::default();
        let mut seen = std::collections::BTreeSet::new();
        for name in names.filter(|n| seen.insert(*n)) {
            let before = self.regions.get(name).unwrap_or(&empty);
            let after = next.regions.get(name).unwrap_or(&empty);
            delta.extend(before.diff(after));
        }
        delta
    }

    fn ranges_in_use(&self, range: Ipv4Net) -> bool {
        self.regions.values().any(|region| {
            region.subnets.values().any(|s| overlap(s.cidr, range))
                || region.public_pools.values().any(|p| overlap(*p, range))
                || region.eip_pool.is_some_and(|p| overlap(p, range))
        })
    }

    fn free_loopback(&self, region: &str, reserved: &[Ipv4Net]) -> Result<Topology> {
        let free = |r: Ipv4Net| !self.ranges_in_use(r) && !reserved.iter().any(|c| overlap(*c, r));
        (0..Topology::LOOPBACK_SLOTS)
            .filter_map(|slot| Topology::loopback(region, slot))
            .find(|t| t.ranges().all(free))
            .ok_or_else(|| {
                ModelError::validation(format!(
                    "region {region}: every loopback range is taken; name its zones in a \
                     [[settings.regions]] block"
                ))
            })
    }
}

fn overlap(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Stored states are read in today's form, or in the form of a store written before regions
/// (one region at the top level, with the secrets).
impl<'de> Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Regions {
                regions: BTreeMap<String, Region>,
                secrets: Secrets,
                #[serde(default)]
                server_certificates: BTreeMap<String, ServerCertificate>,
            },
            OneRegion {
                #[serde(flatten)]
                region: Box<Region>,
                #[serde(default)]
                secrets: Secrets,
            },
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Regions {
                regions,
                secrets,
                server_certificates,
            } => Self {
                regions,
                secrets,
                server_certificates,
            },
            Stored::OneRegion { region, secrets } => Self {
                secrets,
                ..Self::single(*region)
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SequentialIds;

    const NONE: &BTreeMap<String, Topology> = &BTreeMap::new();

    fn scope(region: &str) -> Scope {
        Scope {
            region: region.into(),
            ..Scope::default()
        }
    }

    #[test]
    fn regions_take_disjoint_loopback_slots_in_order_of_use() {
        let mut state = State::default();
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: 0,
        };
        let mut zones = |state: &mut State, name: &str| {
            state.open_region(&scope(name), NONE, &mut cx).unwrap();
            let region = &state.regions[name];
            let mut zones: Vec<(String, String)> = region
                .subnets
                .values()
                .map(|s| (s.availability_zone.clone(), s.cidr.to_string()))
                .collect();
            zones.sort();
            zones
        };
        assert_eq!(
            zones(&mut state, "us-east-1")[0],
            ("us-east-1a".into(), "127.1.0.0/16".into())
        );
        assert_eq!(
            zones(&mut state, "eu-central-1")[2],
            ("eu-central-1c".into(), "127.12.0.0/16".into())
        );
        assert_eq!(
            zones(&mut state, "us-west-2")[0],
            ("us-west-2a".into(), "127.13.0.0/16".into())
        );
        // Opening again changes nothing.
        let before = state.clone();
        zones(&mut state, "eu-central-1");
        assert_eq!(state, before);
        assert_eq!(
            state.regions["us-west-2"].public_pools["us-west-2b"].to_string(),
            "127.114.0.0/16"
        );
    }

    #[test]
    fn configured_topologies_and_the_loopback_rule_keep_out_of_each_others_ranges() {
        let mut state = State::default();
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: 0,
        };
        let configured: BTreeMap<String, Topology> = [
            ("eu-west-1", Topology::loopback("eu-west-1", 0).unwrap()),
            ("eu-west-2", Topology::loopback("eu-west-2", 1).unwrap()),
        ]
        .map(|(name, t)| (name.to_owned(), t))
        .into();
        // us-east-1 is not configured: the rule skips slots 0 and 1, which the file reserves,
        // even though neither configured region is open yet.
        state
            .open_region(&scope("us-east-1"), &configured, &mut cx)
            .unwrap();
        let first = |state: &State, name: &str| {
            let mut cidrs: Vec<String> = state.regions[name]
                .subnets
                .values()
                .map(|s| s.cidr.to_string())
                .collect();
            cidrs.sort();
            cidrs[0].clone()
        };
        assert_eq!(first(&state, "us-east-1"), "127.13.0.0/16");
        state
            .open_region(&scope("eu-west-2"), &configured, &mut cx)
            .unwrap();
        assert_eq!(first(&state, "eu-west-2"), "127.10.0.0/16");
        // A configured region whose ranges an open one took cannot open.
        let clash: BTreeMap<String, Topology> = [(
            "ap-south-1".to_owned(),
            Topology::loopback("ap-south-1", 2).unwrap(),
        )]
        .into();
        let e = state
            .open_region(&scope("ap-south-1"), &clash, &mut cx)
            .unwrap_err();
        assert!(e.message.contains("127.13.0.0/16"), "{}", e.message);
        assert!(!state.regions.contains_key("ap-south-1"));
    }

    #[test]
    fn regions_whose_vpcs_overlap_never_share_a_node_address() {
        use crate::state::CreateLoadBalancer;
        let mut state = State::default();
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: 0,
        };
        let mut nodes = Vec::new();
        for name in ["us-west-2", "eu-central-1"] {
            state.open_region(&scope(name), NONE, &mut cx).unwrap();
            let vpc = state
                .apply(
                    name,
                    Command::CreateVpc {
                        cidr: "172.28.0.0/16".parse().unwrap(),
                        instance_tenancy: Default::default(),
                        amazon_ipv6: true,
                    },
                    &mut cx,
                )
                .unwrap();
            let Outcome::Created(vpc) = vpc else { panic!() };
            let mut subnets = Vec::new();
            for (zone, cidr) in [("a", "172.28.1.0/24"), ("b", "172.28.2.0/24")] {
                let subnet = Command::CreateSubnet {
                    vpc_id: vpc.clone(),
                    cidr: cidr.parse().unwrap(),
                    ipv6_cidr: None,
                    availability_zone: format!("{name}{zone}"),
                };
                let Outcome::Created(id) = state.apply(name, subnet, &mut cx).unwrap() else {
                    panic!()
                };
                subnets.push(id);
            }
            let lb = CreateLoadBalancer {
                name: "web".into(),
                kind: crate::LoadBalancerKind::Application,
                scheme: None,
                ip_address_type: None,
                ipv6_source_nat: None,
                subnet_ids: subnets,
                subnet_mappings: vec![],
                security_groups: None,
                origin: crate::Origin::Api,
            };
            state
                .apply(name, Command::CreateLoadBalancer(lb), &mut cx)
                .unwrap();
            nodes.extend(state.regions[name].nodes.values().map(|n| n.private_ipv4));
        }
        let distinct: std::collections::BTreeSet<_> = nodes.iter().collect();
        assert_eq!(distinct.len(), 4, "{nodes:?}");
        // Amazon-provided IPv6 blocks are unique across regions, as AWS's.
        let blocks: Vec<_> = state
            .regions
            .values()
            .flat_map(|r| r.vpcs.values().flat_map(|v| v.ipv6_cidr_blocks.clone()))
            .collect();
        assert_eq!(blocks.len(), 2);
        assert_ne!(blocks[0], blocks[1]);
        assert!(
            state
                .regions
                .values()
                .all(|r| r.beyond == Beyond::default())
        );
    }

    #[test]
    fn a_store_written_before_regions_reads_as_one_region() {
        let mut ids = SequentialIds::default();
        let mut cx = Context {
            ids: &mut ids,
            now_ms: 0,
        };
        let mut region = Region::new(Scope::default());
        region
            .apply(Command::SeedNetwork(Topology::default()), &mut cx)
            .unwrap();
        let mut legacy = serde_json::to_value(&region).unwrap();
        legacy["secrets"] = serde_json::json!({ "cookie_key": "00ff", "ca_certificate_pem": "", "ca_private_key_pem": "" });
        let state: State = serde_json::from_value(legacy).unwrap();
        assert_eq!(state.regions["us-east-1"], region);
        assert!(!state.secrets.is_empty());
        let again: State = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(again, state);
    }
}
