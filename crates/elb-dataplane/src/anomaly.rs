//! Anomaly detection and mitigation, ALB's automatic target weights, for `weighted_random`
//! groups: a target whose requests fail (a 5XX from it, or no connection or no answer) far
//! more often than its peers' is anomalous; with `load_balancing.algorithm.anomaly_mitigation`
//! on, the node halves its weight each tick it stays so, down to a sixteenth, and doubles it
//! back each tick once it is normal, so a recovering target gets its traffic back gradually.
//!
//! [`assess`] is the verdict, a plain function over counts; `Detector` reads the nodes'
//! counters once a tick (a second, on the control loop's timer) and sets the weights the
//! data plane picks by, never on a request's path.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use elb_model::{Anomaly, AnomalyView};

use crate::targets::TargetLoad;

/// A target's full weight; a mitigated one has less.
pub const FULL: u32 = 1024;
/// The least a mitigated target keeps: enough requests to see it recover.
const FLOOR: u32 = FULL / 16;
/// Ticks of history a verdict may look back over.
const WINDOW: usize = 30;
/// Requests a target needs for a verdict before the window is full; with fewer, it keeps its
/// last until a whole window has passed (on a quiet group, then judged on what it holds).
const MIN_SAMPLE: u64 = 20;
/// Detection needs peers to compare with (AWS: at least three healthy targets).
const MIN_TARGETS: usize = 3;
/// Anomalous: a failure ratio at least this much above its peers' ...
const MARGIN: f64 = 0.1;
/// ... and at least this many times theirs.
const FACTOR: f64 = 2.0;

/// Requests sent to a target, and how many of them failed, in one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub sent: u64,
    pub failed: u64,
}

impl std::ops::Add for Counts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            sent: self.sent + other.sent,
            failed: self.failed + other.failed,
        }
    }
}

/// One target of one group, as one node sees it.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The last ticks' counts, newest last.
    history: VecDeque<Counts>,
    anomalous: bool,
    weight: u32,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            history: VecDeque::with_capacity(WINDOW),
            anomalous: false,
            weight: FULL,
        }
    }
}

impl Watch {
    /// Adds a tick's counts, forgetting those older than the window.
    pub fn push(&mut self, counts: Counts) {
        if self.history.len() == WINDOW {
            self.history.pop_front();
        }
        self.history.push_back(counts);
    }

    pub fn weight(&self) -> u32 {
        self.weight
    }

    fn finding(&self) -> Anomaly {
        Anomaly {
            anomalous: self.anomalous,
            mitigated: self.weight < FULL,
        }
    }

    /// The last `ticks` ticks summed.
    fn recent(&self, ticks: usize) -> Counts {
        let skip = self.history.len().saturating_sub(ticks);
        self.history
            .iter()
            .skip(skip)
            .copied()
            .fold(Counts::default(), |a, b| a + b)
    }
}

/// Judges each of a group's targets against its peers over the same ticks, after each got
/// this tick's counts, and moves the weights one step: down for the most anomalous, up for
/// the rest. With `mitigation` on, at most half the targets are held back at once (those
/// still climbing back count). `None` for each when the group has too few targets to compare
/// (every weight is then full again).
pub fn assess(targets: &mut [Watch], mitigation: bool) -> Vec<Option<Anomaly>> {
    if targets.len() < MIN_TARGETS {
        for target in targets.iter_mut() {
            *target = Watch {
                history: std::mem::take(&mut target.history),
                ..Watch::default()
            };
        }
        return vec![None; targets.len()];
    }
    let mut ratios = vec![0.0; targets.len()];
    for i in 0..targets.len() {
        let seen = targets[i].history.len();
        // The fewest recent ticks that hold enough of this target's requests, or a whole
        // window of a quiet group.
        let Some(ticks) = (1..=seen)
            .find(|&ticks| targets[i].recent(ticks).sent >= MIN_SAMPLE)
            .or((seen == WINDOW).then_some(WINDOW))
        else {
            continue;
        };
        let own = targets[i].recent(ticks);
        let peers = targets
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .fold(Counts::default(), |sum, (_, t)| sum + t.recent(ticks));
        if own.sent == 0 || peers.sent == 0 {
            // Nothing to hold against it over a whole window; else wait for the peers.
            targets[i].anomalous &= own.sent >= MIN_SAMPLE;
            continue;
        }
        let ratio = own.failed as f64 / own.sent as f64;
        let peers = peers.failed as f64 / peers.sent as f64;
        targets[i].anomalous = ratio - peers >= MARGIN && ratio >= FACTOR * peers;
        ratios[i] = ratio;
    }
    let mut worst: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].anomalous)
        .collect();
    worst.sort_by(|&a, &b| ratios[b].total_cmp(&ratios[a]));
    let climbing = (targets.iter())
        .filter(|t| !t.anomalous && t.weight < FULL)
        .count();
    let cap = if mitigation { targets.len() / 2 } else { 0 };
    worst.truncate(cap.saturating_sub(climbing));
    for (i, target) in targets.iter_mut().enumerate() {
        target.weight = if worst.contains(&i) {
            (target.weight / 2).max(FLOOR)
        } else {
            target.weight.saturating_mul(2).min(FULL)
        };
    }
    targets.iter().map(|t| Some(t.finding())).collect()
}

/// A `weighted_random` group as one node sends to it: what the detector watches.
pub(crate) struct Watched {
    pub(crate) node_id: String,
    /// `load_balancing.algorithm.anomaly_mitigation=on`.
    pub(crate) mitigation: bool,
    /// (registration key, what the node has sent the target).
    pub(crate) targets: Vec<(String, Arc<TargetLoad>)>,
}

/// Each watched target's history and last counters, by (node id, registration key).
#[derive(Default)]
pub(crate) struct Detector {
    watches: HashMap<(String, String), (Watch, Counts)>,
}

impl Detector {
    /// One tick: reads what each node sent each target since the last, judges each group and
    /// sets the weights. Targets no longer watched are forgotten.
    pub(crate) fn tick<'a>(&mut self, groups: impl Iterator<Item = &'a Watched>) -> AnomalyView {
        let mut watches = HashMap::with_capacity(self.watches.len());
        let mut view = AnomalyView::default();
        for group in groups {
            let mut counters = Vec::with_capacity(group.targets.len());
            let mut round = Vec::with_capacity(group.targets.len());
            for (key, load) in &group.targets {
                let key = (group.node_id.clone(), key.clone());
                let now = load.counts();
                // A target newly watched starts from its counts now, not from all it ever had.
                let (mut watch, last) =
                    (self.watches.remove(&key)).unwrap_or_else(|| (Watch::default(), now));
                watch.push(Counts {
                    sent: now.sent.saturating_sub(last.sent),
                    failed: now.failed.saturating_sub(last.failed),
                });
                counters.push((key, load, now));
                round.push(watch);
            }
            let findings = assess(&mut round, group.mitigation);
            for (((key, load, now), watch), finding) in
                counters.into_iter().zip(round).zip(findings)
            {
                load.set_weight(watch.weight());
                if let Some(finding) = finding {
                    view.targets.insert(key.clone(), finding);
                }
                watches.insert(key, (watch, now));
            }
        }
        self.watches = watches;
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` targets that each got `sent` requests a tick, `failed[i]` of them failing.
    fn tick(targets: &mut Vec<Watch>, sent: u64, failed: &[u64]) -> Vec<Option<Anomaly>> {
        targets.resize_with(failed.len(), Watch::default);
        for (t, &f) in targets.iter_mut().zip(failed) {
            t.push(Counts { sent, failed: f });
        }
        assess(targets, true)
    }

    fn anomalous(findings: &[Option<Anomaly>]) -> Vec<bool> {
        findings.iter().map(|f| f.unwrap().anomalous).collect()
    }

    #[test]
    fn a_target_failing_far_more_than_its_peers_is_anomalous_and_loses_weight() {
        let mut targets = Vec::new();
        let findings = tick(&mut targets, 100, &[1, 2, 40]);
        assert_eq!(anomalous(&findings), [false, false, true]);
        assert!(findings[2].unwrap().mitigated);
        for _ in 0..10 {
            tick(&mut targets, 100, &[1, 2, 40]);
        }
        assert_eq!(targets[2].weight(), FLOOR, "halved down to the floor");
        assert_eq!(targets[0].weight(), FULL);
    }

    #[test]
    fn errors_everywhere_or_small_differences_are_not_anomalies() {
        let mut targets = Vec::new();
        // All fail alike: the fault is not one target's.
        assert_eq!(
            anomalous(&tick(&mut targets, 100, &[50, 50, 55])),
            [false; 3]
        );
        let mut targets = Vec::new();
        // 8 points above its peers: under the margin.
        assert_eq!(anomalous(&tick(&mut targets, 100, &[2, 2, 10])), [false; 3]);
    }

    #[test]
    fn a_recovered_target_gets_its_weight_back_step_by_step() {
        let mut targets = Vec::new();
        for _ in 0..5 {
            tick(&mut targets, 100, &[0, 0, 60]);
        }
        let low = targets[2].weight();
        assert!(low < FULL);
        // Recovered; its window still holds the failures until enough clean requests
        // outweigh them.
        let mut weights = Vec::new();
        for _ in 0..WINDOW {
            let findings = tick(&mut targets, 100, &[0, 0, 0]);
            weights.push(targets[2].weight());
            if !findings[2].unwrap().mitigated {
                break;
            }
        }
        assert!(!targets[2].anomalous);
        assert_eq!(targets[2].weight(), FULL);
        assert!(weights.windows(2).all(|w| w[0] <= w[1]), "{weights:?}");
        assert!(weights.len() > 2, "back in steps, not at once: {weights:?}");
    }

    #[test]
    fn too_few_requests_keep_the_last_verdict() {
        let mut targets = Vec::new();
        tick(&mut targets, 100, &[0, 0, 60]);
        // The mitigated target's few requests fall short of a sample for a while.
        for t in &mut targets {
            t.history.clear();
        }
        let findings = tick(&mut targets, 5, &[0, 0, 0]);
        assert!(findings[2].unwrap().anomalous);
    }

    #[test]
    fn at_most_half_the_targets_are_mitigated_and_only_when_asked() {
        let mut targets = Vec::new();
        let findings = tick(&mut targets, 100, &[0, 0, 60, 70]);
        assert_eq!(anomalous(&findings), [false, false, true, true]);
        assert!(
            findings
                .iter()
                .all(|f| f.unwrap().mitigated == f.unwrap().anomalous)
        );
        let mut targets = Vec::new();
        let findings = tick(&mut targets, 100, &[0, 60, 60]);
        assert_eq!(anomalous(&findings), [false, true, true]);
        let mitigated = findings.iter().filter(|f| f.unwrap().mitigated).count();
        assert_eq!(mitigated, 1, "one of three at most");
        let mut targets = vec![Watch::default(); 3];
        for t in &mut targets {
            t.push(Counts {
                sent: 100,
                failed: 0,
            });
        }
        targets[2].push(Counts {
            sent: 100,
            failed: 90,
        });
        let findings = assess(&mut targets, false);
        assert!(findings[2].unwrap().anomalous && !findings[2].unwrap().mitigated);
        assert_eq!(targets[2].weight(), FULL);
    }

    #[test]
    fn on_a_quiet_group_a_recovered_target_is_judged_after_a_window() {
        let mut targets = Vec::new();
        tick(&mut targets, 100, &[0, 0, 60]);
        assert!(targets[2].anomalous);
        // A trickle that never reaches the held-back target, for a whole window.
        let mut findings = Vec::new();
        for _ in 0..WINDOW {
            assert!(targets[2].anomalous, "kept until the window is full");
            for (t, sent) in targets.iter_mut().zip([1, 1, 0]) {
                t.push(Counts { sent, failed: 0 });
            }
            findings = assess(&mut targets, true);
        }
        assert!(!findings[2].unwrap().anomalous);
    }

    #[test]
    fn targets_climbing_back_count_toward_the_half() {
        let mut targets = Vec::new();
        for _ in 0..4 {
            tick(&mut targets, 100, &[0, 0, 90]);
        }
        for t in &mut targets {
            t.history.clear();
        }
        // The last recovered and climbs back; another is anomalous now, but one of three
        // targets is still held back.
        let findings = tick(&mut targets, 100, &[0, 90, 0]);
        assert!(findings[1].unwrap().anomalous);
        assert!(targets[2].weight() < FULL);
        assert_eq!(targets[1].weight(), FULL, "{findings:?}");
    }

    #[test]
    fn two_targets_are_not_assessed() {
        let mut targets = Vec::new();
        assert_eq!(tick(&mut targets, 100, &[0, 90]), [None, None]);
        assert_eq!(targets[1].weight(), FULL);
    }
}
