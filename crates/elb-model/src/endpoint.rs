//! VPC endpoint services and Gateway Load Balancer endpoints (EC2's PrivateLink resources):
//! a service offers gateway load balancers to VPCs; an endpoint in one subnet of a VPC is
//! where that VPC's routes send traffic to be inspected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::state::Tags;

/// A VPC endpoint service (`vpce-svc-` and 17 hex digits), named
/// `com.amazonaws.vpce.REGION.ID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointService {
    pub id: String,
    pub name: String,
    pub gateway_load_balancer_arns: Vec<String>,
    /// Whether new endpoints wait in `pendingAcceptance` until the owner accepts them.
    pub acceptance_required: bool,
    /// ModifyVpcEndpointServicePermissions: principal → its permission id. Recorded and
    /// shown; elbd has one account, which may always connect.
    pub allowed_principals: BTreeMap<String, String>,
    /// The create call's `ClientToken`: the same token again gets this service back.
    #[serde(default)]
    pub client_token: Option<String>,
    pub created_ms: u64,
    pub tags: Tags,
}

/// An endpoint's state, as EC2 spells it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointState {
    /// Made; its interface is not up yet.
    Pending,
    PendingAcceptance,
    Available,
    Rejected,
    /// Its interface could not be made (`VpcEndpoint::last_error` says why).
    Failed,
}

impl EndpointState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PendingAcceptance => "pendingAcceptance",
            Self::Available => "available",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// A Gateway Load Balancer endpoint (`vpce-0` and 16 hex digits) in one subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VpcEndpoint {
    pub id: String,
    pub service_id: String,
    /// Kept with the endpoint: a rejected or failed one outlives its service.
    pub service_name: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub state: EndpointState,
    /// Why the endpoint failed.
    pub last_error: Option<String>,
    /// GENEVE option type 2: the endpoint's attachment to its service's load balancers,
    /// drawn once when it is made.
    pub attachment_id: u64,
    /// The create call's `ClientToken`.
    #[serde(default)]
    pub client_token: Option<String>,
    pub created_ms: u64,
    pub tags: Tags,
}

impl VpcEndpoint {
    /// GENEVE option type 1: the id's hex digits as a number (the leading 0 makes it fit).
    pub fn geneve_id(&self) -> u64 {
        let digits = self.id.trim_start_matches("vpce-");
        u64::from_str_radix(digits, 16).expect("ids are minted as vpce-0 and 16 hex digits")
    }

    /// The interface on this machine that stands for the endpoint: `gwlbe-` and the id's last
    /// 9 hex digits, 15 characters, the most an interface name holds.
    pub fn interface_name(&self) -> String {
        format!("gwlbe-{}", &self.id[self.id.len() - 9..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoints_number_and_interface_come_from_its_id() {
        let endpoint = VpcEndpoint {
            id: "vpce-0123456789abcdef0".into(),
            service_id: "vpce-svc-0123456789abcdef0".into(),
            service_name: "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            state: EndpointState::Pending,
            last_error: None,
            attachment_id: 7,
            client_token: None,
            created_ms: 0,
            tags: Tags::new(),
        };
        assert_eq!(endpoint.geneve_id(), 0x1234_5678_9abc_def0);
        assert_eq!(endpoint.interface_name(), "gwlbe-89abcdef0");
        assert_eq!(endpoint.interface_name().len(), 15);
    }
}
