//! The flow hash: which target a flow goes to. Pure.
//!
//! As an NLB, the hash covers the protocol and the source and destination address and port,
//! so each connection has one target for its life and different connections from one client
//! spread; with `stickiness.type=source_ip` only the client's address counts, so all its
//! flows go to one target. The seed is injected: tests fix it, elbd draws one per process.
//!
//! Targets are ranked by rendezvous (highest random weight) hashing: each target scores the
//! flow, and the highest score wins. When a target leaves, only its flows move; when one
//! joins, it takes about 1/n of the flows and no others move. AWS's hash also covers the TCP
//! initial sequence number, which a proxy that terminates TCP does not see; the source port
//! already tells connections apart.

use std::net::{IpAddr, SocketAddr};

/// What a flow is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// The IP protocol number: 6 for TCP, 17 for UDP.
    pub protocol: u8,
    pub source: SocketAddr,
    pub destination: SocketAddr,
}

/// TCP's IP protocol number.
pub const TCP: u8 = 6;
/// UDP's.
pub const UDP: u8 = 17;

impl Flow {
    /// The flow's hash under `seed`; with `source_ip_only`, the client's address alone.
    pub fn hash(&self, seed: u64, source_ip_only: bool) -> u64 {
        let mut h = mix(seed ^ u64::from(self.protocol));
        h = mix(h ^ ip_bits(self.source.ip()));
        if source_ip_only {
            return h;
        }
        h = mix(h ^ u64::from(self.source.port()));
        h = mix(h ^ ip_bits(self.destination.ip()));
        mix(h ^ u64::from(self.destination.port()))
    }
}

/// The targets in the order a flow with `hash` tries them: the first is its target, the
/// next ones where it goes if that one cannot be reached.
pub fn ranked(hash: u64, targets: &[SocketAddr]) -> Vec<usize> {
    let mut scored: Vec<(u64, usize)> = targets
        .iter()
        .enumerate()
        .map(|(i, addr)| (score(hash, *addr), i))
        .collect();
    scored.sort_unstable_by(|a, b| b.cmp(a));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// The index of the target a flow with `hash` goes to among `targets`: the first of
/// [`ranked`]'s order, found without sorting or allocating.
pub fn first(hash: u64, targets: impl IntoIterator<Item = SocketAddr>) -> Option<usize> {
    let scored = targets.into_iter().map(|t| score(hash, t)).enumerate();
    scored.max_by_key(|&(_, score)| score).map(|(i, _)| i)
}

/// The target a flow with `hash` goes to among `targets`: the first of [`ranked`]'s order,
/// found without sorting.
pub fn highest(hash: u64, targets: impl IntoIterator<Item = SocketAddr>) -> Option<SocketAddr> {
    targets.into_iter().max_by_key(|t| score(hash, *t))
}

fn score(hash: u64, target: SocketAddr) -> u64 {
    mix(hash ^ mix(ip_bits(target.ip()) ^ (u64::from(target.port()) << 48)))
}

/// An address folded into 64 bits.
pub(crate) fn ip_bits(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits >> 64) as u64 ^ bits as u64
        }
    }
}

/// SplitMix64's finalizer: every input bit affects every output bit.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x5eed;

    /// The target a flow with `hash` goes to.
    fn pick(hash: u64, targets: &[SocketAddr]) -> Option<usize> {
        ranked(hash, targets).first().copied()
    }

    fn targets(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 50, 1 + i as u8], 9000)))
            .collect()
    }

    fn flow(client: u32, port: u16) -> Flow {
        Flow {
            protocol: TCP,
            source: SocketAddr::from((std::net::Ipv4Addr::from(0x7f00_0000 + client), port)),
            destination: SocketAddr::from(([127, 0, 0, 101], 80)),
        }
    }

    fn flows() -> impl Iterator<Item = Flow> {
        (0..100u32).flat_map(|c| (0..100u16).map(move |p| flow(c, 40_000 + p)))
    }

    #[test]
    fn the_first_target_is_the_first_of_the_ranking() {
        let set = targets(7);
        for f in flows().take(2_000) {
            let hash = f.hash(SEED, false);
            assert_eq!(first(hash, set.iter().copied()), pick(hash, &set));
        }
        assert_eq!(first(1, []), None);
    }

    #[test]
    fn flows_spread_evenly() {
        let set = targets(4);
        let mut counts = [0usize; 4];
        for f in flows() {
            counts[pick(f.hash(SEED, false), &set).unwrap()] += 1;
        }
        // 10,000 flows over 4 targets: each within 5% of 2,500.
        for c in counts {
            assert!((2375..=2625).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_flow_keeps_its_target_and_the_seed_matters() {
        let set = targets(5);
        let f = flow(7, 41_000);
        let first = pick(f.hash(SEED, false), &set);
        assert_eq!(first, pick(f.hash(SEED, false), &set));
        let moved = flows()
            .filter(|f| pick(f.hash(SEED, false), &set) != pick(f.hash(SEED + 1, false), &set))
            .count();
        assert!(moved > 5_000, "another seed is another hash: {moved}");
        assert_eq!(pick(0, &[]), None);
        let order = ranked(f.hash(SEED, false), &set);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 2, 3, 4], "every target is ranked once");
    }

    #[test]
    fn a_leaving_target_moves_only_its_flows_and_a_new_one_takes_its_share() {
        let before = targets(4);
        let after: Vec<_> = before[..3].to_vec();
        for f in flows() {
            let h = f.hash(SEED, false);
            let was = before[pick(h, &before).unwrap()];
            let now = after[pick(h, &after).unwrap()];
            if was != before[3] {
                assert_eq!(was, now, "a flow whose target stayed kept it");
            }
        }
        let grown = targets(5);
        let moved = flows()
            .filter(|f| {
                let h = f.hash(SEED, false);
                before[pick(h, &before).unwrap()] != grown[pick(h, &grown).unwrap()]
            })
            .count();
        // About a fifth move, all of them to the new target.
        assert!((1_800..=2_200).contains(&moved), "{moved}");
    }

    #[test]
    fn source_ip_stickiness_ignores_ports_and_destination() {
        let set = targets(8);
        let a = flow(3, 40_001).hash(SEED, true);
        let b = Flow {
            destination: SocketAddr::from(([127, 0, 0, 102], 443)),
            ..flow(3, 52_000)
        }
        .hash(SEED, true);
        assert_eq!(pick(a, &set), pick(b, &set));
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|c| pick(flow(c, 40_000).hash(SEED, true), &set))
            .collect();
        assert!(spread.len() > 4, "clients still spread: {spread:?}");
    }
}
