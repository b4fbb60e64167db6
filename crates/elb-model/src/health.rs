//! Target health as DescribeTargetHealth reports it, and the health-check settings of a
//! target group with AWS's ranges. The state machine that moves targets between states lives
//! in `elb-health`; these are the values it publishes and the API and data plane read.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// `TargetHealthStateEnum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::Unused => "unused",
            Self::Draining => "draining",
            Self::Unavailable => "unavailable",
        }
    }
}

/// `TargetHealthReasonEnum`, with the description AWS gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    RegistrationInProgress,
    InitialHealthChecking,
    /// The status codes that did not match.
    ResponseCodeMismatch(Vec<u16>),
    Timeout,
    FailedHealthChecks,
    NotRegistered,
    NotInUse,
    ZoneNotEnabled,
    DeregistrationInProgress,
    InvalidState,
    InternalError,
    /// A `lambda` group's checks are off (its default).
    HealthCheckDisabled,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::RegistrationInProgress => "Elb.RegistrationInProgress",
            Self::InitialHealthChecking => "Elb.InitialHealthChecking",
            Self::ResponseCodeMismatch(_) => "Target.ResponseCodeMismatch",
            Self::Timeout => "Target.Timeout",
            Self::FailedHealthChecks => "Target.FailedHealthChecks",
            Self::NotRegistered => "Target.NotRegistered",
            Self::NotInUse | Self::ZoneNotEnabled => "Target.NotInUse",
            Self::DeregistrationInProgress => "Target.DeregistrationInProgress",
            Self::InvalidState => "Target.InvalidState",
            Self::InternalError => "Elb.InternalError",
            Self::HealthCheckDisabled => "Target.HealthCheckDisabled",
        }
    }

    pub fn description(&self) -> String {
        match self {
            Self::RegistrationInProgress => "Target registration is in progress".into(),
            Self::InitialHealthChecking => "Initial health checks in progress".into(),
            Self::ResponseCodeMismatch(codes) => {
                let codes: Vec<String> = codes.iter().map(u16::to_string).collect();
                format!(
                    "Health checks failed with these codes: [{}]",
                    codes.join(", ")
                )
            }
            Self::Timeout => "Request timed out".into(),
            Self::FailedHealthChecks => "Health checks failed".into(),
            Self::NotRegistered => "Target is not registered to the target group".into(),
            Self::NotInUse => {
                "Target group is not configured to receive traffic from the load balancer".into()
            }
            Self::ZoneNotEnabled => {
                "Target is in an Availability Zone that is not enabled for the load balancer".into()
            }
            Self::DeregistrationInProgress => "Target deregistration is in progress".into(),
            Self::InvalidState => "Target is in the stopped state".into(),
            Self::InternalError => "Health checks failed due to an internal error".into(),
            Self::HealthCheckDisabled => "Health checks are disabled".into(),
        }
    }
}

/// What one node's checks say of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetHealth {
    pub state: HealthState,
    pub reason: Option<Reason>,
    /// When the target last turned healthy (ms since the epoch): slow start ramps from here.
    pub healthy_since_ms: Option<u64>,
}

/// The health of every probed target, per node: `(node id, registration key)` → health. An
/// immutable value, published whole by the health checker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthView {
    pub targets: HashMap<(String, String), TargetHealth>,
}

impl HealthView {
    pub fn get(&self, node_id: &str, target_key: &str) -> Option<&TargetHealth> {
        self.targets
            .get(&(node_id.to_owned(), target_key.to_owned()))
    }

    /// One verdict over every node that checks the target: unhealthy if any node says so
    /// (with that node's reason), else initial if any is still checking, else healthy.
    /// `None` when no node checks it.
    pub fn overall(&self, target_key: &str) -> Option<&TargetHealth> {
        self.worst(|key| key == target_key)
    }

    /// [`Self::overall`] over several keys, as one target: an application load balancer's
    /// nodes ([`crate::Region::expand`]).
    pub fn overall_of(&self, target_keys: &[String]) -> Option<&TargetHealth> {
        self.worst(|key| target_keys.iter().any(|k| k == key))
    }

    fn worst(&self, wanted: impl Fn(&str) -> bool) -> Option<&TargetHealth> {
        let seen = self
            .targets
            .iter()
            .filter(|((_, key), _)| wanted(key))
            .map(|(_, h)| h);
        seen.min_by_key(|h| match h.state {
            HealthState::Unhealthy => 0,
            HealthState::Initial => 1,
            _ => 2,
        })
    }
}

/// What anomaly detection (ALB's automatic target weights) finds of one target on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Its requests fail far more often than its peers'.
    pub anomalous: bool,
    /// The node sends it less than its share (`load_balancing.algorithm.anomaly_mitigation`).
    pub mitigated: bool,
}

/// Anomaly detection's findings, per node: `(node id, registration key)` → finding, for the
/// targets of `weighted_random` groups a node assesses. Published whole by the data plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnomalyView {
    pub targets: HashMap<(String, String), Anomaly>,
}

impl AnomalyView {
    /// One finding over every node that assesses the target (by any of `target_keys`, as
    /// [`HealthView::overall_of`]): anomalous if a node finds it so, mitigated if a node
    /// sends it less. `None` when no node assesses it.
    pub fn overall_of(&self, target_keys: &[String]) -> Option<Anomaly> {
        self.targets
            .iter()
            .filter(|((_, key), _)| target_keys.contains(key))
            .map(|(_, finding)| *finding)
            .reduce(Anomaly::either)
    }
}

impl Anomaly {
    /// Two findings of one target as one: anomalous, or mitigated, if either says so.
    pub fn either(self, other: Self) -> Self {
        Self {
            anomalous: self.anomalous || other.anomalous,
            mitigated: self.mitigated || other.mitigated,
        }
    }
}

/// Whether `healthy` of `total` targets falls below a group's minimum: fewer than `count`
/// (capped at `total`, so a count above the group's size asks for all of it), or less than
/// `percent` of them. `None` is `off`. Used for routing fail-open and DNS failover alike.
pub fn below_minimum(
    healthy: usize,
    total: usize,
    count: Option<u64>,
    percent: Option<u64>,
) -> bool {
    let below_count = count.is_some_and(|c| (healthy as u64) < c.min(total as u64));
    let below_percent = percent.is_some_and(|p| (healthy as u64) * 100 < p * total as u64);
    below_count || below_percent
}

/// Which status codes a health check accepts: `200`, `200,202`, `200-299`, or a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    /// Parses an `HttpCode` matcher; ALB allows codes 200 to 499.
    pub fn parse(spec: &str) -> Result<Self> {
        Self::parse_in(spec, "HttpCode", 200, 499, "'200', '200,202' or '200-299'")
    }

    /// Parses a network load balancer group's `HttpCode` matcher: 200 to 599.
    pub fn parse_network(spec: &str) -> Result<Self> {
        Self::parse_in(spec, "HttpCode", 200, 599, "'200', '200,202' or '200-399'")
    }

    /// Parses a GENEVE group's `HttpCode` matcher: 200 to 399.
    pub fn parse_gateway(spec: &str) -> Result<Self> {
        Self::parse_in(spec, "HttpCode", 200, 399, "'200', '200,202' or '200-399'")
    }

    /// Parses a `GrpcCode` matcher: gRPC status codes 0 to 99.
    pub fn parse_grpc(spec: &str) -> Result<Self> {
        Self::parse_in(spec, "GrpcCode", 0, 99, "'12', '0,12' or '0-99'")
    }

    fn parse_in(spec: &str, kind: &str, min: u16, max: u16, examples: &str) -> Result<Self> {
        let bad = || {
            ModelError::validation(format!(
                "Matcher {kind} '{spec}' must be codes from {min} to {max}, as {examples}"
            ))
        };
        let mut ranges = Vec::new();
        for part in spec.split(',') {
            let (lo, hi) = match part.trim().split_once('-') {
                Some((lo, hi)) => (
                    lo.trim().parse().map_err(|_| bad())?,
                    hi.trim().parse().map_err(|_| bad())?,
                ),
                None => {
                    let code = part.trim().parse().map_err(|_| bad())?;
                    (code, code)
                }
            };
            if !(min..=max).contains(&lo) || !(min..=max).contains(&hi) || lo > hi {
                return Err(bad());
            }
            ranges.push((lo, hi));
        }
        Ok(Self(ranges))
    }

    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers() {
        let m = Matcher::parse("200,202-204").unwrap();
        assert!(m.matches(200) && m.matches(203) && !m.matches(201) && !m.matches(500));
        assert!(Matcher::parse("200-499").unwrap().matches(404));
        for bad in ["", "abc", "100", "500", "300-200", "200-600"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
        let grpc = Matcher::parse_grpc("0,12").unwrap();
        assert!(grpc.matches(0) && grpc.matches(12) && !grpc.matches(14));
        assert!(Matcher::parse_grpc("100").is_err());
    }

    #[test]
    fn minimums() {
        assert!(below_minimum(0, 4, Some(1), None));
        assert!(!below_minimum(1, 4, Some(1), None));
        assert!(below_minimum(1, 4, Some(2), None));
        assert!(below_minimum(1, 4, Some(1), Some(50)));
        assert!(!below_minimum(2, 4, None, Some(50)));
        assert!(!below_minimum(1, 1, Some(5), None));
        assert!(!below_minimum(0, 4, None, None), "both off: never below");
    }

    #[test]
    fn overall_health_is_the_worst_node_view() {
        let h = |state| TargetHealth {
            state,
            reason: None,
            healthy_since_ms: None,
        };
        let mut view = HealthView::default();
        view.targets
            .insert(("n1".into(), "t".into()), h(HealthState::Healthy));
        assert_eq!(view.overall("t").unwrap().state, HealthState::Healthy);
        view.targets
            .insert(("n2".into(), "t".into()), h(HealthState::Unhealthy));
        assert_eq!(view.overall("t").unwrap().state, HealthState::Unhealthy);
        assert!(view.overall("other").is_none());
    }
}
