//! Security groups at the door: which client addresses a listener admits, decided once per
//! snapshot and checked when a connection is accepted, before any protocol code runs. Pure.

use std::net::IpAddr;

use elb_model::{IngressSource, LoadBalancer, Region};
use ipnet::IpNet;

/// The sources a listener admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// No security groups (NLB default), or rules open to every IPv4 and every IPv6 address.
    Everyone,
    /// Only these ranges (members of source groups appear as /32s); `0.0.0.0/0` is every IPv4
    /// address and no IPv6 one, as in EC2.
    Ranges(Vec<IpNet>),
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
                IngressSource::Cidr(cidr) => ranges.push(*cidr),
                IngressSource::Group(group) => ranges.extend(
                    state
                        .security_group_members(group)
                        .map(|ip| IpNet::from(IpAddr::V4(ip))),
                ),
            }
        }
        let open = |ip: IpAddr| {
            ranges
                .iter()
                .any(|r| r.prefix_len() == 0 && r.contains(&ip))
        };
        if open(IpAddr::from([0u8; 4])) && open(IpAddr::from([0u16; 8])) {
            return Self::Everyone;
        }
        Self::Ranges(ranges)
    }

    pub fn admits(&self, peer: IpAddr) -> bool {
        match self {
            Self::Everyone => true,
            Self::Ranges(ranges) => ranges.iter().any(|r| r.contains(&peer)),
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

    #[test]
    fn each_family_is_opened_by_its_own_rule() {
        let v4 = Admission::Ranges(vec!["0.0.0.0/0".parse().unwrap()]);
        assert!(v4.admits("10.1.2.3".parse().unwrap()));
        assert!(!v4.admits("fd00:ec2::1".parse().unwrap()));
        let v6 = Admission::Ranges(vec!["fd00:ec2::/56".parse().unwrap()]);
        assert!(v6.admits("fd00:ec2::1".parse().unwrap()));
        assert!(!v6.admits("fd00:ec2:0:100::1".parse().unwrap()));
        assert!(!v6.admits("10.1.2.3".parse().unwrap()));
    }
}
