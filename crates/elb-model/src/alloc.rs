//! The address allocator of a subnet. Node addresses are handed out from the top of the range,
//! and instance and IP-target addresses live at the bottom, so the two never collide. The
//! allocator is a pure function of the addresses already in use; the store's compare-and-swap
//! on the revision is what makes two hosts never take the same one.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

/// The highest free host address of `cidr`, skipping the broadcast address (AWS reserves the
/// last address of every subnet, and the first four, which we never reach from the top).
pub fn highest_free(cidr: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(cidr.network()).checked_add(4)?;
    let last = u32::from(cidr.broadcast()).checked_sub(1)?;
    (first..=last)
        .rev()
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(ip))
}

/// The lowest free host address of `cidr` after the four AWS reserves: where instances go.
pub fn lowest_free(cidr: Ipv4Net, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u32::from(cidr.network()).checked_add(4)?;
    let last = u32::from(cidr.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(ip))
}

/// Whether `ip` is one AWS reserves in `cidr` (the first four and the last).
pub fn is_reserved(cidr: Ipv4Net, ip: Ipv4Addr) -> bool {
    let (n, b, x) = (
        u32::from(cidr.network()),
        u32::from(cidr.broadcast()),
        u32::from(ip),
    );
    x < n.saturating_add(4) || x == b
}

/// The highest free address of an IPv6 block outside the `taken` prefixes, skipping the last
/// (AWS reserves the first four and the last address of IPv6 blocks too).
pub fn highest_free_v6(
    cidr: Ipv6Net,
    used: &BTreeSet<Ipv6Addr>,
    taken: &[Ipv6Net],
) -> Option<Ipv6Addr> {
    let first = u128::from(cidr.network()).checked_add(4)?;
    let mut candidate = u128::from(cidr.broadcast()).checked_sub(1)?;
    // Each step passes a used address or a taken prefix: a /64 is never scanned whole.
    while candidate >= first {
        let ip = Ipv6Addr::from(candidate);
        if let Some(prefix) = taken.iter().find(|p| p.contains(&ip)) {
            candidate = u128::from(prefix.network()).checked_sub(1)?;
        } else if used.contains(&ip) {
            candidate -= 1;
        } else {
            return Some(ip);
        }
    }
    None
}

/// The lowest prefix of length `len` in `block` after the first (which holds the reserved
/// addresses) that overlaps none of `taken` and holds none of `used`: prefixes fill the
/// block from the bottom as nodes' addresses fill it from the top.
pub fn lowest_free_prefix(
    block: Ipv6Net,
    len: u8,
    taken: &[Ipv6Net],
    used: &BTreeSet<Ipv6Addr>,
) -> Option<Ipv6Net> {
    let count = 1u128.checked_shl(u32::from(len.checked_sub(block.prefix_len())?))?;
    let size = 1u128.checked_shl(u32::from(128 - len)).unwrap_or(0);
    let base = u128::from(block.network());
    // Each taken prefix and used address rules out one candidate at most.
    (1..count)
        .take(taken.len() + used.len() + 1)
        .filter_map(|i| Ipv6Net::new(Ipv6Addr::from(base + i * size), len).ok())
        .find(|p| {
            !taken.iter().any(|t| t.contains(p) || p.contains(t))
                && !used.iter().any(|ip| p.contains(ip))
        })
}

/// Whether `ip` is one AWS reserves in the IPv6 block `cidr` (the first four and the last).
pub fn is_reserved_v6(cidr: Ipv6Net, ip: Ipv6Addr) -> bool {
    let (n, b, x) = (
        u128::from(cidr.network()),
        u128::from(cidr.broadcast()),
        u128::from(ip),
    );
    x < n.saturating_add(4) || x == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_from_the_top_and_skips_used() {
        let cidr: Ipv4Net = "127.1.0.0/16".parse().unwrap();
        let mut used = BTreeSet::new();
        let a = highest_free(cidr, &used).unwrap();
        assert_eq!(a, Ipv4Addr::new(127, 1, 255, 254));
        used.insert(a);
        assert_eq!(
            highest_free(cidr, &used),
            Some(Ipv4Addr::new(127, 1, 255, 253))
        );
    }

    #[test]
    fn instances_start_at_the_bottom_after_the_reserved_four() {
        let cidr: Ipv4Net = "127.1.0.0/16".parse().unwrap();
        let used = BTreeSet::from([Ipv4Addr::new(127, 1, 0, 4)]);
        assert_eq!(lowest_free(cidr, &used), Some(Ipv4Addr::new(127, 1, 0, 5)));
        assert!(is_reserved(cidr, Ipv4Addr::new(127, 1, 0, 3)));
        assert!(is_reserved(cidr, Ipv4Addr::new(127, 1, 255, 255)));
        assert!(!is_reserved(cidr, Ipv4Addr::new(127, 1, 0, 10)));
    }

    #[test]
    fn ipv6_nodes_take_the_top_of_the_block_outside_prefixes() {
        let cidr: Ipv6Net = "fd00:ec2:0:1::/64".parse().unwrap();
        let top: Ipv6Addr = "fd00:ec2:0:1:ffff:ffff:ffff:fffe".parse().unwrap();
        let mut used = BTreeSet::new();
        assert_eq!(highest_free_v6(cidr, &used, &[]), Some(top));
        used.insert(top);
        used.insert("fd00:ec2:0:1:ffff:ffff:ffff:fffc".parse().unwrap());
        assert_eq!(
            highest_free_v6(cidr, &used, &[]),
            Some("fd00:ec2:0:1:ffff:ffff:ffff:fffd".parse().unwrap())
        );
        let prefix = "fd00:ec2:0:1:ffff::/80".parse().unwrap();
        assert_eq!(
            highest_free_v6(cidr, &used, &[prefix]),
            Some("fd00:ec2:0:1:fffe:ffff:ffff:ffff".parse().unwrap())
        );
        assert!(is_reserved_v6(cidr, "fd00:ec2:0:1::3".parse().unwrap()));
        assert!(is_reserved_v6(
            cidr,
            "fd00:ec2:0:1:ffff:ffff:ffff:ffff".parse().unwrap()
        ));
        assert!(!is_reserved_v6(cidr, "fd00:ec2:0:1::10".parse().unwrap()));
    }

    #[test]
    fn prefixes_fill_from_the_bottom_past_taken_ones_and_used_addresses() {
        let block: Ipv6Net = "fd00:ec2:0:1::/64".parse().unwrap();
        let target: Ipv6Addr = "fd00:ec2:0:1:2::9".parse().unwrap();
        let taken = ["fd00:ec2:0:1:1::/80".parse().unwrap()];
        let free = lowest_free_prefix(block, 80, &taken, &BTreeSet::from([target]));
        assert_eq!(free, Some("fd00:ec2:0:1:3::/80".parse().unwrap()));
        assert_eq!(lowest_free_prefix(block, 48, &[], &BTreeSet::new()), None);
    }

    #[test]
    fn a_full_subnet_has_nothing_left() {
        let cidr: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let used: BTreeSet<_> = (4..=6).map(|n| Ipv4Addr::new(10, 0, 0, n)).collect();
        assert_eq!(highest_free(cidr, &used), None);
    }
}
