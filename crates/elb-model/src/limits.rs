//! AWS's default quotas (aws-elb-features.md §11). Breaching one is refused with its
//! `TooMany…` code, as AWS does. A region's [`Quotas`] may be raised (`[settings.quotas]`), as
//! AWS raises them on request.

use serde::{Deserialize, Serialize};

use crate::LoadBalancerKind;

/// ALB needs subnets in at least two availability zones.
pub const MIN_ALB_ZONES: usize = 2;

/// AWS's quota of rules per application load balancer, default rules aside.
pub const RULES_PER_LOAD_BALANCER: usize = 100;

/// The quotas a region's resources are held to; AWS's defaults unless raised. Stored with the
/// region: a quota an older elbd does not know is ignored by it, not refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Of each of the application and network types (AWS counts each type apart).
    pub load_balancers_per_region: usize,
    pub gateway_load_balancers_per_region: usize,
    pub listeners_per_load_balancer: usize,
    pub target_groups_per_region: usize,
    pub targets_per_target_group: usize,
}

impl Quotas {
    /// How many load balancers of `kind` a region may have.
    pub fn load_balancers_of(&self, kind: LoadBalancerKind) -> usize {
        match kind {
            LoadBalancerKind::Application | LoadBalancerKind::Network => {
                self.load_balancers_per_region
            }
            LoadBalancerKind::Gateway => self.gateway_load_balancers_per_region,
        }
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            load_balancers_per_region: 50,
            gateway_load_balancers_per_region: 100,
            listeners_per_load_balancer: 50,
            target_groups_per_region: 3000,
            targets_per_target_group: 1000,
        }
    }
}
