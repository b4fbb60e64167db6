//! VPC endpoint services and Gateway Load Balancer endpoints: create, modify, accept or
//! reject, delete. The bulk deletes and the accept and reject calls answer per item, as EC2:
//! what can be done is done, and each id that could not is listed with why.

use super::{Outcome, Region, Tags};
use crate::endpoint::{EndpointService, EndpointState, VpcEndpoint};
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::load_balancer::LoadBalancerKind;

/// CreateVpcEndpoint for a Gateway Load Balancer endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateVpcEndpoint {
    pub service_name: String,
    pub vpc_id: String,
    /// Exactly one for a Gateway Load Balancer endpoint.
    pub subnet_ids: Vec<String>,
    pub client_token: Option<String>,
}

/// What the service's owner says to endpoints waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionAnswer {
    Accept,
    Reject,
}

/// ModifyVpcEndpointServiceConfiguration: what is given changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointServiceChanges {
    pub acceptance_required: Option<bool>,
    pub add_gateway_load_balancer_arns: Vec<String>,
    pub remove_gateway_load_balancer_arns: Vec<String>,
}

/// A `ClientToken` given again with other parameters.
fn token_reused() -> ModelError {
    ModelError::new(
        ErrorCode::IdempotentParameterMismatch,
        "The client token was already used for a request with other parameters",
    )
}

fn invalid_parameter(message: impl Into<String>) -> ModelError {
    ModelError::new(ErrorCode::InvalidParameter, message)
}

pub(super) fn service_not_found(id: &str) -> ModelError {
    ModelError::new(
        ErrorCode::InvalidVpcEndpointServiceIdNotFound,
        format!("The VpcEndpointService Id '{id}' does not exist"),
    )
}

impl Region {
    pub(super) fn create_endpoint_service(
        &mut self,
        gateway_load_balancer_arns: Vec<String>,
        acceptance_required: bool,
        client_token: Option<String>,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if let Some(existing) = client_token.as_ref().and_then(|token| {
            self.endpoint_services
                .values()
                .find(|s| s.client_token.as_ref() == Some(token))
        }) {
            let same = existing.gateway_load_balancer_arns == gateway_load_balancer_arns
                && existing.acceptance_required == acceptance_required;
            return if same {
                Ok(Outcome::Created(existing.id.clone()))
            } else {
                Err(token_reused())
            };
        }
        if gateway_load_balancer_arns.is_empty() {
            return Err(invalid_parameter(
                "exactly one of network_load_balancer_arn or gateway_load_balancer_arn is a \
                 required member",
            ));
        }
        self.check_service_load_balancers(&gateway_load_balancer_arns, None)?;
        let id = format!("vpce-svc-{}", cx.hex(17));
        let name = format!("com.amazonaws.vpce.{}.{id}", self.scope.region);
        self.endpoint_services.insert(
            id.clone(),
            EndpointService {
                id: id.clone(),
                name,
                gateway_load_balancer_arns,
                acceptance_required,
                allowed_principals: Default::default(),
                client_token,
                created_ms: cx.now_ms,
                tags: Tags::new(),
            },
        );
        Ok(Outcome::Created(id))
    }

    /// Each ARN a gateway load balancer of this region, given once, offered by no other
    /// service than `service`.
    fn check_service_load_balancers(&self, arns: &[String], service: Option<&str>) -> Result<()> {
        for (i, arn) in arns.iter().enumerate() {
            match self.load_balancers.get(arn) {
                Some(lb) if lb.kind == LoadBalancerKind::Gateway => {}
                Some(_) => {
                    return Err(invalid_parameter(format!(
                        "Load balancer '{arn}' is not a gateway load balancer"
                    )));
                }
                None => {
                    return Err(invalid_parameter(format!(
                        "Gateway load balancer '{arn}' does not exist"
                    )));
                }
            }
            if arns[..i].contains(arn) {
                return Err(invalid_parameter(format!(
                    "Gateway load balancer '{arn}' is given twice"
                )));
            }
            if let Some(other) = self.endpoint_services.values().find(|s| {
                Some(s.id.as_str()) != service && s.gateway_load_balancer_arns.contains(arn)
            }) {
                return Err(invalid_parameter(format!(
                    "Gateway load balancer '{arn}' is already offered by endpoint service '{}'",
                    other.id
                )));
            }
        }
        Ok(())
    }

    pub(super) fn modify_endpoint_service(
        &mut self,
        id: &str,
        changes: &EndpointServiceChanges,
    ) -> Result<Outcome> {
        let service = self.endpoint_service(id)?;
        let mut arns = service.gateway_load_balancer_arns.clone();
        for arn in &changes.remove_gateway_load_balancer_arns {
            if !arns.contains(arn) {
                return Err(invalid_parameter(format!(
                    "Gateway load balancer '{arn}' is not offered by endpoint service '{id}'"
                )));
            }
            arns.retain(|a| a != arn);
        }
        arns.extend(changes.add_gateway_load_balancer_arns.iter().cloned());
        if arns.is_empty() {
            return Err(invalid_parameter(
                "An endpoint service must keep at least one gateway load balancer",
            ));
        }
        self.check_service_load_balancers(&arns, Some(id))?;
        let service = self.endpoint_services.get_mut(id).expect("checked above");
        service.gateway_load_balancer_arns = arns;
        if let Some(required) = changes.acceptance_required {
            service.acceptance_required = required;
        }
        Ok(Outcome::Done)
    }

    pub(super) fn modify_endpoint_service_permissions(
        &mut self,
        id: &str,
        add: &[String],
        remove: &[String],
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let service = self.endpoint_service(id)?;
        if let Some(missing) = remove
            .iter()
            .find(|p| !service.allowed_principals.contains_key(*p))
        {
            return Err(invalid_parameter(format!(
                "Principal '{missing}' is not allowed on endpoint service '{id}'"
            )));
        }
        if let Some(bad) = add.iter().find(|p| p.is_empty()) {
            return Err(invalid_parameter(format!("Principal '{bad}' is not valid")));
        }
        let service = self.endpoint_services.get_mut(id).expect("checked above");
        for principal in remove {
            service.allowed_principals.remove(principal);
        }
        for principal in add {
            if !service.allowed_principals.contains_key(principal) {
                let permission = format!("vpce-svc-perm-{}", cx.hex(17));
                service
                    .allowed_principals
                    .insert(principal.clone(), permission);
            }
        }
        Ok(Outcome::Done)
    }

    /// Deletes the services that exist and have no endpoint connected (available or awaiting
    /// acceptance); lists the others.
    pub(super) fn delete_endpoint_services(&mut self, ids: &[String]) -> Result<Outcome> {
        let mut unsuccessful = Vec::new();
        for id in ids {
            if !self.endpoint_services.contains_key(id) {
                unsuccessful.push((
                    id.clone(),
                    ModelError::new(
                        ErrorCode::InvalidVpcEndpointServiceNotFound,
                        format!("The VpcEndpointService Id '{id}' does not exist"),
                    ),
                ));
                continue;
            }
            let connected = self.vpc_endpoints.values().any(|e| {
                e.service_id == *id
                    && !matches!(e.state, EndpointState::Rejected | EndpointState::Failed)
            });
            if connected {
                unsuccessful.push((
                    id.clone(),
                    ModelError::new(
                        ErrorCode::ExistingVpcEndpointConnections,
                        format!("Endpoint service '{id}' has endpoints connected to it"),
                    ),
                ));
                continue;
            }
            self.endpoint_services.remove(id);
            // Rejected and failed endpoints of it stay as they are: no longer connected.
        }
        Ok(Outcome::Unsuccessful(unsuccessful))
    }

    pub(super) fn create_vpc_endpoint(
        &mut self,
        c: &CreateVpcEndpoint,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        if let Some(existing) = c.client_token.as_ref().and_then(|token| {
            self.vpc_endpoints
                .values()
                .find(|e| e.client_token.as_ref() == Some(token))
        }) {
            let same = existing.service_name == c.service_name
                && existing.vpc_id == c.vpc_id
                && [&existing.subnet_id] == c.subnet_ids.iter().collect::<Vec<_>>()[..];
            return if same {
                Ok(Outcome::Created(existing.id.clone()))
            } else {
                Err(token_reused())
            };
        }
        let service = self
            .endpoint_services
            .values()
            .find(|s| s.name == c.service_name)
            .ok_or_else(|| {
                ModelError::new(
                    ErrorCode::InvalidServiceName,
                    format!(
                        "The Vpc Endpoint Service '{}' does not exist",
                        c.service_name
                    ),
                )
            })?;
        if !self.vpcs.contains_key(&c.vpc_id) {
            return Err(ModelError::new(
                ErrorCode::InvalidVpcIdNotFound,
                format!("The vpc ID '{}' does not exist", c.vpc_id),
            ));
        }
        let [subnet_id] = c.subnet_ids.as_slice() else {
            return Err(invalid_parameter(
                "For a Gateway Load Balancer endpoint, you can specify only one subnet",
            ));
        };
        let subnet = self.subnets.get(subnet_id).ok_or_else(|| {
            ModelError::new(
                ErrorCode::InvalidSubnetIdNotFound,
                format!("The subnet ID '{subnet_id}' does not exist"),
            )
        })?;
        if subnet.vpc_id != c.vpc_id {
            return Err(invalid_parameter(format!(
                "Subnet '{subnet_id}' is not in VPC '{}'",
                c.vpc_id
            )));
        }
        let zone = &subnet.availability_zone;
        if self.gateway_node_for(&service.id, zone).is_none() {
            return Err(invalid_parameter(format!(
                "Endpoint service '{}' has no gateway load balancer in {zone}",
                service.id
            )));
        }
        if let Some(other) = self.vpc_endpoints.values().find(|e| {
            e.service_id == service.id
                && e.vpc_id == c.vpc_id
                && self.subnets.get(&e.subnet_id).map(|s| &s.availability_zone) == Some(zone)
        }) {
            return Err(invalid_parameter(format!(
                "VPC '{}' already has endpoint '{}' of service '{}' in {zone}",
                c.vpc_id, other.id, service.id
            )));
        }
        let state = if service.acceptance_required {
            EndpointState::PendingAcceptance
        } else {
            EndpointState::Pending
        };
        let id = format!("vpce-0{}", cx.hex(16));
        let endpoint = VpcEndpoint {
            id: id.clone(),
            service_id: service.id.clone(),
            service_name: service.name.clone(),
            vpc_id: c.vpc_id.clone(),
            subnet_id: subnet_id.clone(),
            state,
            last_error: None,
            attachment_id: u64::from_str_radix(&cx.hex(16), 16).expect("hex digits"),
            client_token: c.client_token.clone(),
            created_ms: cx.now_ms,
            tags: Tags::new(),
        };
        if self
            .vpc_endpoints
            .values()
            .any(|e| e.interface_name() == endpoint.interface_name())
        {
            // Two ids alike in their last 9 digits would share an interface: draw again.
            return self.create_vpc_endpoint(c, cx);
        }
        self.vpc_endpoints.insert(id.clone(), endpoint);
        Ok(Outcome::Created(id))
    }

    /// The node of one of `service`'s gateway load balancers in `zone`: where the traffic of
    /// an endpoint in that zone goes.
    pub fn gateway_node_for(&self, service: &str, zone: &str) -> Option<&crate::Node> {
        let service = self.endpoint_services.get(service)?;
        service
            .gateway_load_balancer_arns
            .iter()
            .flat_map(|arn| self.nodes_of(arn))
            .find(|n| n.availability_zone == zone)
    }

    pub(super) fn delete_vpc_endpoints(&mut self, ids: &[String]) -> Result<Outcome> {
        let mut unsuccessful = Vec::new();
        for id in ids {
            if self.vpc_endpoints.remove(id).is_none() {
                unsuccessful.push((
                    id.clone(),
                    ModelError::new(
                        ErrorCode::InvalidVpcEndpointNotFound,
                        format!("The VpcEndpoint Id '{id}' does not exist"),
                    ),
                ));
            }
        }
        Ok(Outcome::Unsuccessful(unsuccessful))
    }

    /// AcceptVpcEndpointConnections or RejectVpcEndpointConnections. Accepting
    /// takes an endpoint from `pendingAcceptance` to `available` at once, as AWS (its
    /// interface then comes up, or the endpoint fails). Rejecting takes it to `rejected`.
    pub(super) fn answer_endpoint_connections(
        &mut self,
        service_id: &str,
        endpoint_ids: &[String],
        answer: ConnectionAnswer,
    ) -> Result<Outcome> {
        let accept = answer == ConnectionAnswer::Accept;
        self.endpoint_service(service_id)?;
        let mut unsuccessful = Vec::new();
        for id in endpoint_ids {
            let Some(endpoint) = self
                .vpc_endpoints
                .get_mut(id)
                .filter(|e| e.service_id == service_id)
            else {
                unsuccessful.push((
                    id.clone(),
                    ModelError::new(
                        ErrorCode::InvalidVpcEndpointIdNotFound,
                        format!("The VpcEndpoint Id '{id}' does not exist"),
                    ),
                ));
                continue;
            };
            let allowed = if accept {
                endpoint.state == EndpointState::PendingAcceptance
            } else {
                matches!(
                    endpoint.state,
                    EndpointState::PendingAcceptance
                        | EndpointState::Pending
                        | EndpointState::Available
                )
            };
            if !allowed {
                unsuccessful.push((
                    id.clone(),
                    ModelError::new(
                        ErrorCode::InvalidState,
                        format!(
                            "Endpoint '{id}' is {}, and cannot be {}",
                            endpoint.state.as_str(),
                            if accept { "accepted" } else { "rejected" }
                        ),
                    ),
                ));
                continue;
            }
            endpoint.state = if accept {
                EndpointState::Available
            } else {
                EndpointState::Rejected
            };
        }
        Ok(Outcome::Unsuccessful(unsuccessful))
    }

    /// Whether the interface of a pending endpoint came up (`failure` is `None`) or could not
    /// be made. Reported by the host that runs the endpoint; an endpoint that was deleted or
    /// answered meanwhile is left as it is.
    pub(super) fn settle_vpc_endpoint(
        &mut self,
        id: &str,
        failure: Option<String>,
    ) -> Result<Outcome> {
        if let Some(endpoint) = self.vpc_endpoints.get_mut(id) {
            match (endpoint.state, failure) {
                (EndpointState::Pending, None) => endpoint.state = EndpointState::Available,
                (EndpointState::Pending | EndpointState::Available, Some(reason)) => {
                    endpoint.state = EndpointState::Failed;
                    endpoint.last_error = Some(reason);
                }
                _ => {}
            }
        }
        Ok(Outcome::Done)
    }

    pub(super) fn endpoint_service(&self, id: &str) -> Result<&EndpointService> {
        self.endpoint_services
            .get(id)
            .ok_or_else(|| service_not_found(id))
    }
}
