//! Target selection: which targets a node may send to, and round robin among them. Pure.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether a node in `node_zone` may send to a target in `target_zone`: with cross-zone load
/// balancing every zone, otherwise only its own. Targets registered with zone `all` (addresses
/// outside the VPC) are reachable from every zone, as on AWS.
pub fn eligible(node_zone: &str, target_zone: &str, cross_zone: bool) -> bool {
    cross_zone || target_zone == node_zone || target_zone == "all"
}

/// The next index of a round robin over `len` items; `None` when there is nothing to pick.
/// The cursor lives beside the routing table, so the rotation survives snapshot swaps.
pub fn round_robin(cursor: &AtomicUsize, len: usize) -> Option<usize> {
    (len > 0).then(|| cursor.fetch_add(1, Ordering::Relaxed) % len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_zone_decides_reach() {
        assert!(eligible("a", "a", false));
        assert!(!eligible("a", "b", false));
        assert!(eligible("a", "b", true));
        assert!(eligible("a", "all", false));
    }

    #[test]
    fn round_robin_visits_each_in_turn() {
        let cursor = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6).map(|_| round_robin(&cursor, 3).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(round_robin(&cursor, 0), None);
    }
}
