//! AWS's default quotas (aws-elb-features.md §11). Breaching one is refused with its
//! `TooMany…` code, as AWS does.

pub const LOAD_BALANCERS_PER_REGION: usize = 50;
pub const LISTENERS_PER_LOAD_BALANCER: usize = 50;
pub const TARGET_GROUPS_PER_REGION: usize = 3000;
pub const TARGETS_PER_TARGET_GROUP: usize = 1000;
/// ALB needs subnets in at least two availability zones.
pub const MIN_ALB_ZONES: usize = 2;
