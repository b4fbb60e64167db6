//! The health state machine of one target as one node sees it: a pure function of probe
//! results and thresholds (aws-elb-features.md §5.2–§5.3).
//!
//! - A new target is `initial` and turns `healthy` after its first passing probe, as the ALB
//!   guide says ("must pass one health check"), or `unhealthy` after `UnhealthyThresholdCount`
//!   consecutive failures.
//! - A `healthy` target turns `unhealthy` after `UnhealthyThresholdCount` consecutive failures.
//! - An `unhealthy` target turns `healthy` after `HealthyThresholdCount` consecutive passes.

use elb_model::{HealthState, Reason, TargetHealth};

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Pass,
    /// No answer within the timeout.
    Timeout,
    /// An answer whose status the matcher refuses.
    Mismatch(u16),
    /// Refused, reset, or not HTTP.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u16,
    pub unhealthy: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    state: HealthState,
    reason: Option<Reason>,
    passes: u16,
    failures: u16,
    healthy_since_ms: Option<u64>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            state: HealthState::Initial,
            reason: Some(Reason::InitialHealthChecking),
            passes: 0,
            failures: 0,
            healthy_since_ms: None,
        }
    }
}

impl Tracker {
    /// Goes on from `health` as another process's checks left it (a hand-over): the state
    /// holds until the thresholds move it, counted afresh.
    pub fn resume(health: &TargetHealth) -> Self {
        Self {
            state: health.state,
            reason: health.reason.clone(),
            passes: 0,
            failures: 0,
            healthy_since_ms: health.healthy_since_ms,
        }
    }

    /// Records one probe; returns whether the reported health changed.
    pub fn record(&mut self, result: &ProbeResult, thresholds: Thresholds, now_ms: u64) -> bool {
        let before = self.health();
        if *result == ProbeResult::Pass {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            let needed = if self.state == HealthState::Initial {
                1
            } else {
                thresholds.healthy
            };
            if self.state != HealthState::Healthy && self.passes >= needed {
                self.state = HealthState::Healthy;
                self.reason = None;
                self.healthy_since_ms = Some(now_ms);
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            let reason = match result {
                ProbeResult::Timeout => Reason::Timeout,
                ProbeResult::Mismatch(code) => Reason::ResponseCodeMismatch(vec![*code]),
                _ => Reason::FailedHealthChecks,
            };
            if self.state == HealthState::Unhealthy {
                self.reason = Some(reason);
            } else if self.failures >= thresholds.unhealthy {
                self.state = HealthState::Unhealthy;
                self.reason = Some(reason);
                self.healthy_since_ms = None;
            }
        }
        self.health() != before
    }

    pub fn health(&self) -> TargetHealth {
        TargetHealth {
            state: self.state,
            reason: self.reason.clone(),
            healthy_since_ms: self.healthy_since_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        healthy: 3,
        unhealthy: 2,
    };

    fn run(tracker: &mut Tracker, results: &[ProbeResult]) -> Vec<HealthState> {
        results
            .iter()
            .enumerate()
            .map(|(i, r)| {
                tracker.record(r, T, i as u64);
                tracker.health().state
            })
            .collect()
    }

    use HealthState::{Healthy, Initial, Unhealthy};
    use ProbeResult::{Failed, Pass, Timeout};

    #[test]
    fn a_resumed_target_keeps_its_state_until_the_thresholds_move_it() {
        let mut healthy = Tracker::default();
        run(&mut healthy, &[Pass]);
        let mut t = Tracker::resume(&healthy.health());
        assert_eq!(t.health(), healthy.health());
        assert_eq!(run(&mut t, &[Failed, Failed]), [Healthy, Unhealthy]);
        let mut t = Tracker::resume(&t.health());
        // An unhealthy target needs the healthy threshold, not the single pass of a new one.
        assert_eq!(
            run(&mut t, &[Pass, Pass, Pass]),
            [Unhealthy, Unhealthy, Healthy]
        );
    }

    #[test]
    fn a_new_target_needs_one_pass() {
        let mut t = Tracker::default();
        assert_eq!(t.health().reason, Some(Reason::InitialHealthChecking));
        assert_eq!(run(&mut t, &[Pass]), [Healthy]);
        assert_eq!(t.health().healthy_since_ms, Some(0));
    }

    #[test]
    fn failures_need_the_unhealthy_threshold_and_passes_the_healthy_one() {
        let mut t = Tracker::default();
        assert_eq!(run(&mut t, &[Failed, Failed]), [Initial, Unhealthy]);
        assert_eq!(t.health().reason, Some(Reason::FailedHealthChecks));
        assert_eq!(
            run(&mut t, &[Pass, Pass, Timeout, Pass, Pass, Pass]),
            [
                Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy
            ]
        );
        assert_eq!(
            run(&mut t, &[Timeout, Pass, Timeout, Timeout]),
            [Healthy, Healthy, Healthy, Unhealthy]
        );
        assert_eq!(t.health().reason, Some(Reason::Timeout));
    }

    #[test]
    fn reasons_name_what_failed() {
        let mut t = Tracker::default();
        run(
            &mut t,
            &[ProbeResult::Mismatch(500), ProbeResult::Mismatch(500)],
        );
        let health = t.health();
        assert_eq!(health.reason, Some(Reason::ResponseCodeMismatch(vec![500])));
        assert_eq!(
            health.reason.unwrap().description(),
            "Health checks failed with these codes: [500]"
        );
        assert!(
            !t.record(&ProbeResult::Mismatch(500), T, 9),
            "no change to report"
        );
    }
}
