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

/// A target's slow start: its share of requests grows linearly from 0 to 1 over `duration_ms`
/// after it turned healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ramp {
    pub since_ms: u64,
    pub duration_ms: u64,
}

impl Ramp {
    pub fn share(&self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.since_ms) as f64;
        (elapsed / self.duration_ms.max(1) as f64).min(1.0)
    }
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
    fn slow_start_ramps_linearly() {
        let ramp = Ramp {
            since_ms: 1000,
            duration_ms: 30_000,
        };
        assert_eq!(ramp.share(1000), 0.0);
        assert!((ramp.share(16_000) - 0.5).abs() < 1e-9);
        assert_eq!(ramp.share(100_000), 1.0);
    }

    #[test]
    fn round_robin_visits_each_in_turn() {
        let cursor = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6).map(|_| round_robin(&cursor, 3).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(round_robin(&cursor, 0), None);
    }
}
