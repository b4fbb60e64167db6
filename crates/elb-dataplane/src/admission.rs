//! Security groups at the door: which client addresses a listener admits, decided once per
//! snapshot and checked when a connection is accepted, before any protocol code runs. Pure.

use std::net::IpAddr;

use elb_model::{IngressSource, LoadBalancer, Region};
use ipnet::Ipv4Net;

/// The sources a listener admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No security groups (NLB default) or a rule open to everyone.
    Everyone,
    /// Only these IPv4 ranges (members of source groups appear as /32s).
    Ranges(Vec<Ipv4Net>),
}

impl Admission {
    /// What the security groups of `lb` admit on `port` over `protocol` ("tcp" or "udp"):
    /// the union of their ingress rules.
    pub fn for_listener(state: &Region, lb: &LoadBalancer, protocol: &str, port: u16) -> Self {
        if lb.security_groups.is_empty() {
            return Self::Everyone;
        }
        let mut ranges = Vec::new();
        let rules = lb
            .security_groups
            .iter()
            .filter_map(|id| state.security_groups.get(id))
            .flat_map(|g| &g.ingress)
            .filter(|r| r.covers(protocol, port));
        for rule in rules {
            match &rule.source {
                IngressSource::Cidr(cidr) if cidr.prefix_len() == 0 => return Self::Everyone,
                IngressSource::Cidr(cidr) => ranges.push(*cidr),
                IngressSource::Group(group) => {
                    ranges.extend(state.security_group_members(group).map(Ipv4Net::from))
                }
            }
        }
        Self::Ranges(ranges)
    }

    pub fn admits(&self, peer: IpAddr) -> bool {
        match (self, peer) {
            (Self::Everyone, _) => true,
            (Self::Ranges(ranges), IpAddr::V4(ip)) => ranges.iter().any(|r| r.contains(&ip)),
            (Self::Ranges(_), IpAddr::V6(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_admit_only_their_members() {
        let a = Admission::Ranges(vec!["127.0.9.0/24".parse().unwrap()]);
        assert!(a.admits("127.0.9.9".parse().unwrap()));
        assert!(!a.admits("127.0.0.1".parse().unwrap()));
        assert!(!a.admits("::1".parse().unwrap()));
        assert!(Admission::Everyone.admits("::1".parse().unwrap()));
        assert!(!Admission::Ranges(vec![]).admits("127.0.0.1".parse().unwrap()));
    }
}
