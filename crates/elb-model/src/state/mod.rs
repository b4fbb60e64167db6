//! The state of one account: a [`Region`] per region it uses, and the commands that change one.
//!
//! [`Region::apply`] validates a [`Command`] and changes the region, or changes nothing and
//! returns the AWS error. Callers that need several commands to commit together apply them to
//! a clone of the [`State`] and keep the clone only if every one succeeds. [`State::diff`] says
//! what changed between two states, which is how the data plane and the logs learn about a
//! change.

mod addresses;
mod certificates;
mod diff;
mod ec2;
mod endpoints;
mod iam;
mod listeners;
mod load_balancers;
mod network;
mod regions;
mod rules;
mod tags;
mod target_groups;
#[cfg(test)]
mod tests;
mod trust_stores;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::certificate::{
    Certificate, CertificateKind, CertificateMaterial, CertificateOptions, Validation,
};
use crate::endpoint::{EndpointService, VpcEndpoint};
use crate::error::{ModelError, Result};
use crate::id::{Context, Scope};
use crate::listener::{AlpnPolicy, Listener, ListenerProtocol};
use crate::load_balancer::{IpAddressType, LoadBalancer, LoadBalancerKind, Scheme};
use crate::network::{
    ElasticIp, IngressRule, Instance, InstanceState, SecurityGroup, Subnet, Tenancy, Topology, Vpc,
    VpcAttributes,
};
use crate::node::Node;
use crate::rule::{Action, Condition, Rule, Transform};
use crate::target_group::{
    HealthCheckChanges, ProtocolVersion, Registration, TargetGroup, TargetId, TargetIpAddressType,
};
use crate::trust_store::{MutualAuthentication, Revocation, TrustStore};

pub use diff::{Changes, Delta};
pub use ec2::{Egress, RunInstances};
pub use endpoints::{ConnectionAnswer, CreateVpcEndpoint, EndpointServiceChanges};
pub use iam::UploadServerCertificate;
pub use regions::State;
pub use target_groups::TargetDescription;

/// AWS resource tags, key → value.
pub type Tags = BTreeMap<String, String>;

/// Who declared a resource. A config file reload only ever touches what the file declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    #[default]
    Api,
    ConfigFile,
}

/// Everything elbd knows about one account in one region. Maps are keyed by ARN or id, and
/// ordered so that two equal states serialise identically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    pub scope: Scope,
    pub vpcs: BTreeMap<String, Vpc>,
    pub subnets: BTreeMap<String, Subnet>,
    pub security_groups: BTreeMap<String, SecurityGroup>,
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub listeners: BTreeMap<String, Listener>,
    pub target_groups: BTreeMap<String, TargetGroup>,
    pub nodes: BTreeMap<String, Node>,
    #[serde(default)]
    pub instances: BTreeMap<String, Instance>,
    /// Zone → the range public node addresses come from.
    #[serde(default)]
    pub public_pools: BTreeMap<String, ipnet::Ipv4Net>,
    /// Where Elastic IPs come from; none in stores made before them.
    #[serde(default)]
    pub eip_pool: Option<ipnet::Ipv4Net>,
    /// Elastic IPs, by allocation id.
    #[serde(default)]
    pub addresses: BTreeMap<String, ElasticIp>,
    /// Listener rules with priorities, by ARN (each listener's default rule is the listener's).
    #[serde(default)]
    pub rules: BTreeMap<String, Rule>,
    /// ACM certificates, by ARN.
    #[serde(default)]
    pub certificates: BTreeMap<String, Certificate>,
    #[serde(default)]
    pub trust_stores: BTreeMap<String, TrustStore>,
    /// ACM's `ExpiryEvents.DaysBeforeExpiry` (AWS's default, 45, when unset).
    #[serde(default)]
    pub acm_expiry_days: Option<u16>,
    /// The quotas this region's resources are held to (AWS's defaults unless raised).
    #[serde(default)]
    pub quotas: crate::limits::Quotas,
    /// VPC endpoint services, by id (`vpce-svc-…`).
    #[serde(default)]
    pub endpoint_services: BTreeMap<String, EndpointService>,
    /// Gateway Load Balancer endpoints, by id (`vpce-…`).
    #[serde(default)]
    pub vpc_endpoints: BTreeMap<String, VpcEndpoint>,
    /// While a command runs, what it must see of the rest of the account
    /// ([`State::in_region`]); empty otherwise.
    #[serde(skip)]
    pub(crate) beyond: Beyond,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLoadBalancer {
    pub name: String,
    pub kind: LoadBalancerKind,
    pub scheme: Option<Scheme>,
    pub ip_address_type: Option<IpAddressType>,
    /// `EnablePrefixForIpv6SourceNat`; off when not given.
    pub ipv6_source_nat: Option<bool>,
    pub subnet_ids: Vec<String>,
    /// `SubnetMappings` that choose a node's addresses (network load balancers).
    pub subnet_mappings: Vec<SubnetMapping>,
    pub security_groups: Option<Vec<String>>,
    pub origin: Origin,
}

/// A node's addresses chosen at creation: an Elastic IP (internet-facing) or a private
/// address of the subnet (internal), an IPv6 address of the subnet (dual-stack) and a source
/// NAT prefix (`auto_assigned` when not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetMapping {
    pub subnet_id: String,
    pub allocation_id: Option<String>,
    pub private_ipv4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<std::net::Ipv6Addr>,
    pub source_nat_ipv6_prefix: Option<SourceNatPrefix>,
}

/// A subnet mapping's `SourceNatIpv6Prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceNatPrefix {
    /// `auto_assigned`: the lowest free /80 of the subnet's IPv6 block past the first.
    AutoAssigned,
    Given(ipnet::Ipv6Net),
}

impl SourceNatPrefix {
    pub fn given(self) -> Option<ipnet::Ipv6Net> {
        match self {
            Self::AutoAssigned => None,
            Self::Given(prefix) => Some(prefix),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTargetGroup {
    pub name: String,
    /// Required but for `lambda` groups, which refuse it, as they refuse a port and a VPC.
    pub protocol: Option<String>,
    pub protocol_version: ProtocolVersion,
    pub port: Option<u16>,
    pub vpc_id: Option<String>,
    pub target_type: String,
    /// `ipv4` when not given.
    pub ip_address_type: Option<TargetIpAddressType>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateListener {
    pub load_balancer_arn: String,
    /// Required but for gateway load balancers, which refuse both.
    pub protocol: Option<ListenerProtocol>,
    pub port: Option<u16>,
    pub default_actions: Vec<Action>,
    pub default_action_orders: Vec<u16>,
    /// HTTPS and TLS listeners: the policy (AWS's default when `None`)…
    pub ssl_policy: Option<String>,
    /// …and exactly one certificate, the default.
    pub certificate_arns: Vec<String>,
    pub mutual_authentication: Option<MutualAuthentication>,
    /// TLS listeners: AWS's `None` when not given.
    pub alpn_policy: Option<AlpnPolicy>,
    pub origin: Origin,
}

/// ModifyListener: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerChanges {
    pub port: Option<u16>,
    pub protocol: Option<ListenerProtocol>,
    pub ssl_policy: Option<String>,
    /// The default certificate (one).
    pub certificate_arns: Option<Vec<String>>,
    /// `Some(None)` turns mutual TLS off.
    pub mutual_authentication: Option<Option<MutualAuthentication>>,
    pub alpn_policy: Option<AlpnPolicy>,
    pub default_actions: Option<Vec<Action>>,
    /// Replaces the order with the actions (when they are given).
    pub default_action_orders: Vec<u16>,
}

/// ImportCertificate, a re-import when `arn` names an existing certificate, and
/// RequestCertificate (the caller has issued it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportCertificate {
    pub arn: Option<String>,
    pub kind: CertificateKind,
    pub material: CertificateMaterial,
    pub idempotency_token: Option<String>,
    /// RequestCertificate's `Options` (ImportCertificate takes AWS's defaults).
    pub options: CertificateOptions,
    /// RequestCertificate's validation (none for imports).
    pub validation: Validation,
    pub tags: Vec<(String, String)>,
    pub origin: Origin,
}

/// What a command in one region sees of the rest of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Beyond {
    /// Node addresses (private and public) other regions hold: VPCs of two regions may
    /// overlap, but the host has each address once.
    pub(crate) node_addresses: std::collections::BTreeSet<std::net::Ipv4Addr>,
    /// The Amazon-provided IPv6 blocks other regions' VPCs hold, which are unique as AWS's.
    pub(crate) ipv6_blocks: Vec<ipnet::Ipv6Net>,
    /// The ARNs of the account's IAM server certificates, which listeners of every region may
    /// present.
    pub(crate) server_certificates: std::collections::BTreeSet<String>,
}

/// A change to the state. Identifiers of new resources are minted inside the command, from
/// the [`Context`], so a retried command simply mints new ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Creates the default VPC, its subnets and default security group, once.
    SeedNetwork(Topology),
    /// EC2's AllocateAddress: an Elastic IP from the region's pool.
    AllocateAddress,
    ReleaseAddress {
        allocation_id: String,
    },
    /// Associates an Elastic IP with an instance (which, being a record, answers nothing).
    AssociateAddress {
        allocation_id: String,
        instance_id: String,
        allow_reassociation: bool,
    },
    DisassociateAddress {
        association_id: String,
    },
    CreateLoadBalancer(CreateLoadBalancer),
    DeleteLoadBalancer {
        arn: String,
    },
    /// Enables exactly these subnets (one per zone): nodes follow. Mappings may choose a
    /// new zone's node addresses (network load balancers), or repeat a kept node's.
    SetSubnets {
        arn: String,
        subnet_ids: Vec<String>,
        subnet_mappings: Vec<SubnetMapping>,
        /// SetSubnets' `IpAddressType`: the type to change to in the same commit.
        ip_address_type: Option<IpAddressType>,
        /// SetSubnets' `EnablePrefixForIpv6SourceNat`, likewise.
        ipv6_source_nat: Option<bool>,
    },
    /// SetIpAddressType.
    SetIpAddressType {
        arn: String,
        ip_address_type: IpAddressType,
    },
    SetSecurityGroups {
        arn: String,
        security_groups: Vec<String>,
        /// `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic` (network load balancers).
        privatelink_inbound_rules: Option<bool>,
    },
    /// provisioning → active, once the data plane has tried every node's listeners: active
    /// when all are bound, active_impaired while some cannot be (and back); the reason says
    /// which, and what the nodes wait for (addresses this host lacks).
    ActivateLoadBalancer {
        arn: String,
        impaired: bool,
        reason: Option<String>,
    },
    ModifyLoadBalancerAttributes {
        arn: String,
        changes: Vec<(String, String)>,
    },
    CreateTargetGroup(CreateTargetGroup),
    DeleteTargetGroup {
        arn: String,
    },
    /// Changes health-check settings.
    ModifyTargetGroup {
        arn: String,
        health_check: HealthCheckChanges,
    },
    /// Removes targets whose deregistration delay has passed (run by a timer).
    ExpireDraining,
    ModifyTargetGroupAttributes {
        arn: String,
        changes: Vec<(String, String)>,
    },
    RegisterTargets {
        target_group_arn: String,
        targets: Vec<TargetDescription>,
    },
    DeregisterTargets {
        target_group_arn: String,
        targets: Vec<TargetDescription>,
    },
    CreateListener(CreateListener),
    ModifyListener {
        arn: String,
        changes: ListenerChanges,
    },
    ModifyListenerAttributes {
        arn: String,
        changes: Vec<(String, String)>,
    },
    /// Adds SNI certificates to an HTTPS listener (those it has already are kept once).
    AddListenerCertificates {
        listener_arn: String,
        certificate_arns: Vec<String>,
    },
    RemoveListenerCertificates {
        listener_arn: String,
        certificate_arns: Vec<String>,
    },
    ImportCertificate(ImportCertificate),
    /// Refused while a listener uses the certificate.
    DeleteCertificate {
        arn: String,
    },
    /// UpdateCertificateOptions: what is given changes.
    UpdateCertificateOptions {
        arn: String,
        transparency_logging: Option<bool>,
        export: Option<bool>,
    },
    /// ExportCertificate hands out the key of an exportable, issued certificate.
    ExportCertificate {
        arn: String,
    },
    /// Only an exported certificate can be revoked, once; one in use by a listener cannot.
    RevokeCertificate {
        arn: String,
        reason: String,
    },
    /// ACM's account configuration: expiry events this many days ahead.
    PutAcmExpiryDays {
        days: u16,
    },
    CreateTrustStore {
        name: String,
        ca_bundle_pem: String,
        ca_certificates: usize,
        origin: Origin,
    },
    /// Replaces a trust store's CA bundle.
    ModifyTrustStore {
        arn: String,
        ca_bundle_pem: String,
        ca_certificates: usize,
    },
    /// Refused while a listener verifies with it.
    DeleteTrustStore {
        arn: String,
    },
    /// Adds certificate revocation lists to a trust store (their ids are minted here).
    AddTrustStoreRevocations {
        arn: String,
        crls: Vec<Revocation>,
    },
    RemoveTrustStoreRevocations {
        arn: String,
        ids: Vec<u64>,
    },
    DeleteListener {
        arn: String,
    },
    /// Adds or overwrites tags on load balancers, listeners or target groups.
    AddTags {
        arns: Vec<String>,
        tags: Vec<(String, String)>,
    },
    RemoveTags {
        arns: Vec<String>,
        keys: Vec<String>,
    },
    CreateVpc {
        cidr: ipnet::Ipv4Net,
        instance_tenancy: Tenancy,
        /// `AmazonProvidedIpv6CidrBlock`: give the VPC a /56 of IPv6 too.
        amazon_ipv6: bool,
    },
    DeleteVpc {
        id: String,
    },
    /// Replaces a VPC's DNS and metrics switches.
    ModifyVpcAttributes {
        id: String,
        attributes: VpcAttributes,
    },
    CreateSubnet {
        vpc_id: String,
        cidr: ipnet::Ipv4Net,
        /// A /64 of the VPC's IPv6 block.
        ipv6_cidr: Option<ipnet::Ipv6Net>,
        availability_zone: String,
    },
    DeleteSubnet {
        id: String,
    },
    CreateSecurityGroup {
        name: String,
        description: String,
        vpc_id: Option<String>,
    },
    DeleteSecurityGroup {
        id: String,
    },
    AuthorizeIngress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    RevokeIngress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    AuthorizeEgress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    RevokeEgress {
        group_id: String,
        rules: Vec<IngressRule>,
    },
    RunInstances(RunInstances),
    CreateRule {
        listener_arn: String,
        priority: u16,
        conditions: Vec<Condition>,
        actions: Vec<Action>,
        action_orders: Vec<u16>,
        transforms: Vec<Transform>,
        origin: Origin,
    },
    /// Replaces a rule's conditions, actions and transforms (each when given; the order with
    /// the actions; no transforms resets them).
    ModifyRule {
        arn: String,
        conditions: Option<Vec<Condition>>,
        actions: Option<Vec<Action>>,
        action_orders: Vec<u16>,
        transforms: Option<Vec<Transform>>,
    },
    DeleteRule {
        arn: String,
    },
    /// Sets several rules' priorities at once.
    SetRulePriorities {
        priorities: Vec<(String, u16)>,
    },
    /// Stop, start or terminate instances.
    SetInstanceState {
        ids: Vec<String>,
        state: InstanceState,
    },
    /// EC2 CreateTags on VPCs, subnets, security groups and instances.
    CreateEc2Tags {
        ids: Vec<String>,
        tags: Vec<(String, String)>,
    },
    /// EC2 DeleteTags: a key with a value goes only if the value matches; none named, all go.
    DeleteEc2Tags {
        ids: Vec<String>,
        tags: Vec<(String, Option<String>)>,
    },
    CreateVpcEndpointService {
        gateway_load_balancer_arns: Vec<String>,
        acceptance_required: bool,
        client_token: Option<String>,
    },
    ModifyVpcEndpointService {
        id: String,
        changes: EndpointServiceChanges,
    },
    ModifyVpcEndpointServicePermissions {
        id: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// Per item ([`Outcome::Unsuccessful`]).
    DeleteVpcEndpointServices {
        ids: Vec<String>,
    },
    CreateVpcEndpoint(CreateVpcEndpoint),
    /// Per item.
    DeleteVpcEndpoints {
        ids: Vec<String>,
    },
    /// Accept or RejectVpcEndpointConnections, per item.
    AnswerVpcEndpointConnections {
        service_id: String,
        endpoint_ids: Vec<String>,
        answer: ConnectionAnswer,
    },
    /// A pending endpoint's interface came up (`failure` is `None`) or could not be made
    /// (reported by the host that runs it).
    SettleVpcEndpoint {
        id: String,
        failure: Option<String>,
    },
}

/// What a successful command reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The ARN of the resource created, or of the identical one that already existed
    /// (creates are idempotent, as AWS's are).
    Created(String),
    /// The ids of several resources created at once (RunInstances).
    CreatedAll(Vec<String>),
    /// A bulk EC2 call done for some items: the others, with why (empty when all went).
    Unsuccessful(Vec<(String, ModelError)>),
}

impl Region {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            ..Self::default()
        }
    }

    /// Applies one command. On error the state is unchanged.
    pub fn apply(&mut self, command: Command, cx: &mut Context<'_>) -> Result<Outcome> {
        match command {
            Command::SeedNetwork(topology) => self.seed_network(&topology, cx),
            Command::AllocateAddress => self.allocate_address(cx),
            Command::ReleaseAddress { allocation_id } => self.release_address(&allocation_id),
            Command::AssociateAddress {
                allocation_id,
                instance_id,
                allow_reassociation,
            } => self.associate_address(&allocation_id, &instance_id, allow_reassociation, cx),
            Command::DisassociateAddress { association_id } => {
                self.disassociate_address(&association_id)
            }
            Command::CreateLoadBalancer(c) => self.create_load_balancer(c, cx),
            Command::DeleteLoadBalancer { arn } => self.delete_load_balancer(&arn),
            Command::SetSubnets {
                arn,
                subnet_ids,
                subnet_mappings,
                ip_address_type,
                ipv6_source_nat,
            } => {
                let addressing = (ip_address_type, ipv6_source_nat);
                self.set_subnets(&arn, subnet_ids, &subnet_mappings, addressing, cx)
            }
            Command::SetIpAddressType {
                arn,
                ip_address_type,
            } => self.set_ip_address_type(&arn, ip_address_type),
            Command::SetSecurityGroups {
                arn,
                security_groups,
                privatelink_inbound_rules,
            } => self.set_security_groups(&arn, &security_groups, privatelink_inbound_rules),
            Command::ActivateLoadBalancer {
                arn,
                impaired,
                reason,
            } => self.activate_load_balancer(&arn, impaired, reason),
            Command::ModifyLoadBalancerAttributes { arn, changes } => {
                self.modify_load_balancer_attributes(&arn, &changes)
            }
            Command::CreateTargetGroup(c) => self.create_target_group(c, cx),
            Command::DeleteTargetGroup { arn } => self.delete_target_group(&arn),
            Command::ModifyTargetGroupAttributes { arn, changes } => {
                self.modify_target_group_attributes(&arn, &changes)
            }
            Command::RegisterTargets {
                target_group_arn,
                targets,
            } => self.register_targets(&target_group_arn, &targets),
            Command::DeregisterTargets {
                target_group_arn,
                targets,
            } => self.deregister_targets(&target_group_arn, &targets, cx.now_ms),
            Command::ModifyTargetGroup { arn, health_check } => {
                self.modify_target_group(&arn, &health_check)
            }
            Command::ExpireDraining => self.expire_draining(cx.now_ms),
            Command::CreateListener(c) => self.create_listener(c, cx),
            Command::ModifyListener { arn, changes } => self.modify_listener(&arn, changes),
            Command::ModifyListenerAttributes { arn, changes } => {
                self.modify_listener_attributes(&arn, &changes)
            }
            Command::AddListenerCertificates {
                listener_arn,
                certificate_arns,
            } => self.add_listener_certificates(&listener_arn, &certificate_arns),
            Command::RemoveListenerCertificates {
                listener_arn,
                certificate_arns,
            } => self.remove_listener_certificates(&listener_arn, &certificate_arns),
            Command::ImportCertificate(c) => self.import_certificate(c, cx),
            Command::DeleteCertificate { arn } => self.delete_certificate(&arn),
            Command::UpdateCertificateOptions {
                arn,
                transparency_logging,
                export,
            } => self.update_certificate_options(&arn, transparency_logging, export),
            Command::ExportCertificate { arn } => self.export_certificate(&arn, cx),
            Command::RevokeCertificate { arn, reason } => self.revoke_certificate(&arn, reason, cx),
            Command::PutAcmExpiryDays { days } => {
                self.acm_expiry_days = Some(days);
                Ok(Outcome::Done)
            }
            Command::CreateTrustStore {
                name,
                ca_bundle_pem,
                ca_certificates,
                origin,
            } => self.create_trust_store(name, ca_bundle_pem, ca_certificates, origin, cx),
            Command::ModifyTrustStore {
                arn,
                ca_bundle_pem,
                ca_certificates,
            } => self.modify_trust_store(&arn, ca_bundle_pem, ca_certificates, cx),
            Command::DeleteTrustStore { arn } => self.delete_trust_store(&arn),
            Command::AddTrustStoreRevocations { arn, crls } => {
                self.add_trust_store_revocations(&arn, crls, cx)
            }
            Command::RemoveTrustStoreRevocations { arn, ids } => {
                self.remove_trust_store_revocations(&arn, &ids, cx)
            }
            Command::DeleteListener { arn } => self.delete_listener(&arn),
            Command::AddTags { arns, tags } => self.add_tags(&arns, &tags),
            Command::RemoveTags { arns, keys } => self.remove_tags(&arns, &keys),
            Command::CreateVpc {
                cidr,
                instance_tenancy,
                amazon_ipv6,
            } => self.create_vpc(cidr, instance_tenancy, amazon_ipv6, cx),
            Command::DeleteVpc { id } => self.delete_vpc(&id),
            Command::ModifyVpcAttributes { id, attributes } => {
                self.modify_vpc_attributes(&id, attributes)
            }
            Command::CreateSubnet {
                vpc_id,
                cidr,
                ipv6_cidr,
                availability_zone,
            } => self.create_subnet(&vpc_id, cidr, ipv6_cidr, &availability_zone, cx),
            Command::DeleteSubnet { id } => self.delete_subnet(&id),
            Command::CreateSecurityGroup {
                name,
                description,
                vpc_id,
            } => self.create_security_group(&name, &description, vpc_id.as_deref(), cx),
            Command::DeleteSecurityGroup { id } => self.delete_security_group(&id),
            Command::AuthorizeIngress { group_id, rules } => {
                self.authorize(&group_id, &rules, false)
            }
            Command::RevokeIngress { group_id, rules } => self.revoke(&group_id, &rules, false),
            Command::AuthorizeEgress { group_id, rules } => self.authorize(&group_id, &rules, true),
            Command::RevokeEgress { group_id, rules } => self.revoke(&group_id, &rules, true),
            Command::RunInstances(run) => self.run_instances(&run, cx),
            Command::CreateRule {
                listener_arn,
                priority,
                conditions,
                actions,
                action_orders,
                transforms,
                origin,
            } => self.create_rule(
                &listener_arn,
                priority,
                (conditions, transforms),
                (actions, action_orders),
                origin,
                cx,
            ),
            Command::ModifyRule {
                arn,
                conditions,
                actions,
                action_orders,
                transforms,
            } => self.modify_rule(
                &arn,
                (conditions, transforms),
                actions.map(|a| (a, action_orders)),
            ),
            Command::DeleteRule { arn } => self.delete_rule(&arn),
            Command::SetRulePriorities { priorities } => self.set_rule_priorities(&priorities),
            Command::SetInstanceState { ids, state } => self.set_instance_state(&ids, state),
            Command::CreateEc2Tags { ids, tags } => self.ec2_tags(&ids, &tags),
            Command::DeleteEc2Tags { ids, tags } => self.delete_ec2_tags(&ids, &tags),
            Command::CreateVpcEndpointService {
                gateway_load_balancer_arns,
                acceptance_required,
                client_token,
            } => self.create_endpoint_service(
                gateway_load_balancer_arns,
                acceptance_required,
                client_token,
                cx,
            ),
            Command::ModifyVpcEndpointService { id, changes } => {
                self.modify_endpoint_service(&id, &changes)
            }
            Command::ModifyVpcEndpointServicePermissions { id, add, remove } => {
                self.modify_endpoint_service_permissions(&id, &add, &remove, cx)
            }
            Command::DeleteVpcEndpointServices { ids } => self.delete_endpoint_services(&ids),
            Command::CreateVpcEndpoint(c) => self.create_vpc_endpoint(&c, cx),
            Command::DeleteVpcEndpoints { ids } => self.delete_vpc_endpoints(&ids),
            Command::AnswerVpcEndpointConnections {
                service_id,
                endpoint_ids,
                answer,
            } => self.answer_endpoint_connections(&service_id, &endpoint_ids, answer),
            Command::SettleVpcEndpoint { id, failure } => self.settle_vpc_endpoint(&id, failure),
        }
    }

    pub fn load_balancer_by_name(&self, name: &str) -> Option<&LoadBalancer> {
        self.load_balancers.values().find(|lb| lb.name == name)
    }

    pub fn target_group_by_name(&self, name: &str) -> Option<&TargetGroup> {
        self.target_groups.values().find(|tg| tg.name == name)
    }

    pub fn listeners_of<'a>(&'a self, lb_arn: &'a str) -> impl Iterator<Item = &'a Listener> {
        self.listeners
            .values()
            .filter(move |l| l.load_balancer_arn == lb_arn)
    }

    pub fn nodes_of<'a>(&'a self, lb_arn: &'a str) -> impl Iterator<Item = &'a Node> {
        self.nodes
            .values()
            .filter(move |n| n.load_balancer_arn == lb_arn)
    }

    /// The load balancer whose listeners forward to `target_group_arn`, if any (AWS allows
    /// one).
    pub fn load_balancer_of_target_group(&self, target_group_arn: &str) -> Option<&str> {
        let by_default = self
            .listeners
            .values()
            .find(|l| l.default_target_groups().any(|t| t == target_group_arn));
        let by_rule = || {
            self.rules
                .values()
                .find(|r| {
                    r.actions
                        .iter()
                        .flat_map(Action::target_group_arns)
                        .any(|t| t == target_group_arn)
                })
                .and_then(|r| self.listeners.get(&r.listener_arn))
        };
        by_default
            .or_else(by_rule)
            .map(|l| l.load_balancer_arn.as_str())
    }

    /// A listener's rules, by ascending priority (the default rule is the listener's).
    pub fn rules_of<'a>(&'a self, listener_arn: &'a str) -> Vec<&'a Rule> {
        let mut rules: Vec<&Rule> = self
            .rules
            .values()
            .filter(|r| r.listener_arn == listener_arn)
            .collect();
        rules.sort_by_key(|r| r.priority);
        rules
    }

    pub fn default_vpc(&self) -> Option<&Vpc> {
        self.vpcs.values().find(|v| v.is_default)
    }
}

impl Region {
    /// The registrations of `tg` that `node` may send to: in service (not draining, instance
    /// running) and in reach (the node's zone, or every zone with cross-zone on). The data
    /// plane routes among them, the health checker probes them, DNS failover counts them. An
    /// application load balancer stands for its nodes ([`Region::expand`]).
    pub fn in_reach<'a>(
        &'a self,
        node: &'a Node,
        tg: &'a TargetGroup,
    ) -> impl Iterator<Item = Cow<'a, Registration>> + 'a {
        tg.targets
            .iter()
            .filter(move |t| self.in_service(t))
            .flat_map(move |t| self.expand(t))
            .filter(move |t| self.reaches(node, tg, t))
    }

    /// Whether `node` may send `tg`'s traffic to `target` by zone: its own, `all`, or any
    /// with cross-zone on.
    pub fn reaches(&self, node: &Node, tg: &TargetGroup, target: &Registration) -> bool {
        let lb_cross_zone = self
            .load_balancers
            .get(&node.load_balancer_arn)
            .is_some_and(LoadBalancer::cross_zone);
        tg.cross_zone(lb_cross_zone)
            || target.availability_zone == node.availability_zone
            || target.availability_zone == "all"
    }

    /// What a registration stands for where traffic and checks go: itself, or for an
    /// application load balancer (`alb` groups) one registration per node of it, each with
    /// its own key, zone and address, so that each is checked and routed to on its own.
    pub fn expand<'a>(
        &'a self,
        registration: &'a Registration,
    ) -> Box<dyn Iterator<Item = Cow<'a, Registration>> + 'a> {
        let TargetId::Alb(alb) = &registration.id else {
            return Box::new(std::iter::once(Cow::Borrowed(registration)));
        };
        Box::new(self.nodes_of(alb).map(move |n| {
            Cow::Owned(Registration {
                id: TargetId::AlbNode {
                    alb: alb.clone(),
                    zone: n.availability_zone.clone(),
                },
                address: IpAddr::V4(n.private_ipv4),
                availability_zone: n.availability_zone.clone(),
                ..registration.clone()
            })
        }))
    }

    /// Whether a registration takes new traffic at all: not draining, and for an instance
    /// target, the instance is running.
    pub fn in_service(&self, target: &Registration) -> bool {
        let running = match &target.id {
            TargetId::Ip(_) | TargetId::Lambda(_) => true,
            TargetId::Alb(alb) | TargetId::AlbNode { alb, .. } => {
                self.load_balancers.contains_key(alb)
            }
            TargetId::Instance(id) => self
                .instances
                .get(id)
                .is_some_and(|i| i.state == InstanceState::Running),
        };
        running && !target.is_draining()
    }

    /// The target groups a load balancer's listeners forward to.
    pub fn target_groups_of<'a>(
        &'a self,
        lb_arn: &'a str,
    ) -> impl Iterator<Item = &'a TargetGroup> + 'a {
        let mut seen = std::collections::BTreeSet::new();
        self.listeners_of(lb_arn)
            .flat_map(move |l| {
                let rules = self.rules.values().filter(move |r| r.listener_arn == l.arn);
                l.default_target_groups()
                    .chain(rules.flat_map(|r| r.actions.iter().flat_map(Action::target_group_arns)))
            })
            .filter(move |arn| seen.insert(*arn))
            .filter_map(|arn| self.target_groups.get(arn))
    }
}
