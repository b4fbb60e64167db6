//! The ELB resource model: what a load balancer, listener, target group and node *are*, what
//! makes them valid, and how commands change a [`Region`] of the account's [`State`]. Pure: no I/O, no clocks, no
//! randomness. Time and identifiers come in through a [`Context`], so every rule here is
//! testable with plain `#[test]`s and every state change is reproducible.
//!
//! # Layout
//! - [`id`]: ARNs, resource ids, and the [`IdSource`] that mints them.
//! - [`network`]: VPCs, subnets, availability zones, security groups, and the seed topology.
//! - [`alloc`]: the per-subnet address allocator for LB nodes.
//! - [`attributes`]: AWS's string-keyed attributes with their per-type defaults.
//! - [`load_balancer`], [`listener`], [`rule`], [`target_group`], [`node`], [`certificate`]:
//!   [`trust_store`]: the resources; [`ssl_policy`]: the TLS security policies;
//!   [`endpoint`]: VPC endpoint services and Gateway Load Balancer endpoints.
//! - [`state`]: [`State`] and its [`Region`]s, [`Command`]s applied to a region, and the
//!   [`Delta`] between two states.
//! - [`error`]: [`ModelError`], whose codes are AWS's.

pub mod alloc;
pub mod attributes;
pub mod authenticate;
pub mod certificate;
pub mod endpoint;
pub mod error;
pub mod health;
pub mod id;
pub mod limits;
pub mod listener;
pub mod load_balancer;
pub mod names;
pub mod network;
pub mod node;
pub mod rule;
pub mod ssl_policy;
pub mod state;
pub mod target_group;
pub mod trust_store;

pub use attributes::Attributes;
pub use authenticate::{
    AdditionalClaim, Authenticate, ClaimFormat, CognitoUserPool, IdentityProvider, JwtValidation,
    OidcProvider, OnUnauthenticated, SessionOptions,
};
pub use certificate::{
    Certificate, CertificateKind, CertificateMaterial, CertificateOptions, Secrets,
    ServerCertificate, Validation,
};
pub use endpoint::{EndpointService, EndpointState, VpcEndpoint};
pub use error::{ErrorCode, ModelError};
pub use health::{Anomaly, AnomalyView, HealthState, HealthView, Matcher, Reason, TargetHealth};
pub use id::{Context, IdSource, Scope};
pub use listener::{AlpnPolicy, Listener, ListenerProtocol, ListenerTls};
pub use load_balancer::{IpAddressType, LoadBalancer, LoadBalancerKind, LoadBalancerState, Scheme};
pub use network::{
    IngressRule, IngressSource, Instance, InstanceOptions, InstanceState, SecurityGroup, Subnet,
    Tenancy, Topology, Vpc, VpcAttributes, ZoneSpec,
};
pub use node::{Node, Placement};
pub use rule::{
    Action, Condition, FixedResponse, QueryPair, Redirect, Rewrite, Rule, TargetGroupWeight,
    Transform, condition_regex, expanded_replacement,
};
pub use state::{Command, Delta, Origin, Outcome, Region, State};
pub use target_group::{
    FunctionArn, HealthCheck, ProtocolVersion, Registration, TargetGroup, TargetGroupProtocol,
    TargetId, TargetIpAddressType, TargetType,
};
pub use trust_store::{
    CertificateIdentity, IdentityField, IdentityFilter, MtlsMode, MutualAuthentication, TrustStore,
};
