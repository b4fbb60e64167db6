//! The address allocator of a subnet. Node addresses are handed out from the top of the range,
//! and instance and IP-target addresses live at the bottom, so the two never collide. The
//! allocator is a pure function of the addresses already in use; the store's compare-and-swap
//! on the revision is what makes two hosts never take the same one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

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
    fn a_full_subnet_has_nothing_left() {
        let cidr: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let used: BTreeSet<_> = (4..=6).map(|n| Ipv4Addr::new(10, 0, 0, n)).collect();
        assert_eq!(highest_free(cidr, &used), None);
    }
}
