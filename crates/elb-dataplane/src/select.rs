//! Target selection: round robin, least outstanding requests, weighted random, slow start.
//! Pure. (Which
//! targets a node may send to is the model's `State::in_reach`.)

use std::sync::atomic::{AtomicUsize, Ordering};

/// The next index of a round robin over `len` items; `None` when there is nothing to pick.
/// The cursor lives beside the routing table, so the rotation survives snapshot swaps.
pub fn round_robin(cursor: &AtomicUsize, len: usize) -> Option<usize> {
    (len > 0).then(|| cursor.fetch_add(1, Ordering::Relaxed) % len)
}

/// The index with the fewest outstanding requests; ties go round robin, so that idle
/// targets share the load evenly. `None` when there is nothing to pick.
pub fn least_outstanding(outstanding: &[usize], cursor: &AtomicUsize) -> Option<usize> {
    let least = *outstanding.iter().min()?;
    let start = cursor.fetch_add(1, Ordering::Relaxed);
    (0..outstanding.len())
        .map(|k| (start + k) % outstanding.len())
        .find(|&i| outstanding[i] == least)
}

/// The index drawn by `draw` (uniform over `u64`) with a chance proportional to its weight;
/// `None` when the weights sum to 0. The weights are read twice: one lowered in between (by
/// anomaly mitigation) can leave the draw past the end, which then takes the last index.
pub fn weighted_random(weights: impl Iterator<Item = u32> + Clone, draw: u64) -> Option<usize> {
    let total: u64 = weights.clone().map(u64::from).sum();
    let mut point = draw.checked_rem(total)?;
    let mut last = 0;
    for (i, w) in weights.map(u64::from).enumerate() {
        if point < w {
            return Some(i);
        }
        point -= w;
        last = i;
    }
    Some(last)
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
    fn round_robin_visits_each_in_turn() {
        let cursor = AtomicUsize::new(0);
        let picks: Vec<_> = (0..6).map(|_| round_robin(&cursor, 3).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert_eq!(round_robin(&cursor, 0), None);
    }

    #[test]
    fn weighted_random_draws_in_proportion_to_the_weights() {
        let weights = [1024_u32, 64, 1024];
        let mut hits = [0; 3];
        for draw in 0..2112 {
            hits[weighted_random(weights.iter().copied(), draw).unwrap()] += 1;
        }
        assert_eq!(hits, [1024, 64, 1024]);
        assert_eq!(weighted_random([0_u32, 0].into_iter(), 7), None);
        // Weights lowered between the sum and the walk: still a target.
        let lowered = std::cell::Cell::new(false);
        let racing = [1024_u32, 1024].into_iter().map(|w| {
            let w = if lowered.get() { w / 16 } else { w };
            lowered.set(true);
            w
        });
        assert_eq!(weighted_random(racing, 2047), Some(1));
        assert_eq!(weighted_random(std::iter::empty(), 7), None);
    }
}
