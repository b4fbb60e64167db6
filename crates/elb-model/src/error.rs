//! Errors of the model, named after the elbv2 / EC2 error codes that AWS returns for them, so
//! the API can render them without a translation table and the config loader can print them.

use std::fmt;

/// An AWS error code. The API turns it into `<Code>` and an HTTP status; nothing else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationError,
    DuplicateLoadBalancerName,
    DuplicateTargetGroupName,
    DuplicateListener,
    DuplicateTagKeys,
    TooManyTags,
    RuleNotFound,
    LoadBalancerNotFound,
    ListenerNotFound,
    TargetGroupNotFound,
    SubnetNotFound,
    InvalidSubnet,
    InvalidSecurityGroup,
    InvalidScheme,
    InvalidTarget,
    InvalidConfigurationRequest,
    InvalidLoadBalancerAction,
    IncompatibleProtocols,
    UnsupportedProtocol,
    AvailabilityZoneNotSupported,
    OperationNotPermitted,
    ResourceInUse,
    TargetGroupAssociationLimit,
    TooManyLoadBalancers,
    TooManyListeners,
    TooManyTargetGroups,
    TooManyTargets,
    TooManyRules,
    PriorityInUse,
    CertificateNotFound,
    SslPolicyNotFound,
    AlpnPolicyNotFound,
    AllocationIdNotFound,
    TooManyCertificates,
    TrustStoreNotFound,
    TrustStoreInUse,
    DuplicateTrustStoreName,
    RevocationIdNotFound,
    TooManyTrustStoreRevocationEntries,
    InvalidRevocationContent,
    /// ACM: the certificate's status does not allow the operation.
    InvalidState,
    /// IAM's codes.
    NoSuchEntity,
    EntityAlreadyExists,
    DeleteConflict,
    // EC2's codes.
    InvalidVpcIdNotFound,
    InvalidSubnetIdNotFound,
    InvalidGroupNotFound,
    InvalidInstanceIdNotFound,
    InvalidParameterValue,
    InvalidVpcRange,
    InvalidSubnetRange,
    InvalidSubnetConflict,
    InvalidIpAddressInUse,
    InsufficientFreeAddressesInSubnet,
    DependencyViolation,
    InvalidGroupDuplicate,
    InvalidPermissionDuplicate,
    InvalidPermissionNotFound,
    CannotDelete,
    IncorrectInstanceState,
    InvalidAllocationIdNotFound,
    InvalidAssociationIdNotFound,
    InvalidParameter,
    InvalidServiceName,
    InvalidVpcEndpointServiceIdNotFound,
    InvalidVpcEndpointServiceNotFound,
    InvalidVpcEndpointIdNotFound,
    InvalidVpcEndpointNotFound,
    ExistingVpcEndpointConnections,
    IdempotentParameterMismatch,
    ResourceAlreadyAssociated,
    AddressLimitExceeded,
}

impl ErrorCode {
    /// The code as AWS spells it on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "ValidationError",
            Self::DuplicateLoadBalancerName => "DuplicateLoadBalancerName",
            Self::DuplicateTargetGroupName => "DuplicateTargetGroupName",
            Self::DuplicateListener => "DuplicateListener",
            Self::DuplicateTagKeys => "DuplicateTagKeys",
            Self::TooManyTags => "TooManyTags",
            Self::RuleNotFound => "RuleNotFound",
            Self::LoadBalancerNotFound => "LoadBalancerNotFound",
            Self::ListenerNotFound => "ListenerNotFound",
            Self::TargetGroupNotFound => "TargetGroupNotFound",
            Self::SubnetNotFound => "SubnetNotFound",
            Self::InvalidSubnet => "InvalidSubnet",
            Self::InvalidSecurityGroup => "InvalidSecurityGroup",
            Self::InvalidScheme => "InvalidScheme",
            Self::InvalidTarget => "InvalidTarget",
            Self::InvalidConfigurationRequest => "InvalidConfigurationRequest",
            Self::InvalidLoadBalancerAction => "InvalidLoadBalancerAction",
            Self::IncompatibleProtocols => "IncompatibleProtocols",
            Self::UnsupportedProtocol => "UnsupportedProtocol",
            Self::AvailabilityZoneNotSupported => "AvailabilityZoneNotSupported",
            Self::OperationNotPermitted => "OperationNotPermitted",
            Self::ResourceInUse => "ResourceInUse",
            Self::TargetGroupAssociationLimit => "TargetGroupAssociationLimit",
            Self::TooManyLoadBalancers => "TooManyLoadBalancers",
            Self::TooManyListeners => "TooManyListeners",
            Self::TooManyTargetGroups => "TooManyTargetGroups",
            Self::TooManyTargets => "TooManyTargets",
            Self::TooManyRules => "TooManyRules",
            Self::PriorityInUse => "PriorityInUse",
            Self::CertificateNotFound => "CertificateNotFound",
            Self::SslPolicyNotFound => "SSLPolicyNotFound",
            Self::AlpnPolicyNotFound => "ALPNPolicyNotFound",
            Self::AllocationIdNotFound => "AllocationIdNotFound",
            Self::TooManyCertificates => "TooManyCertificates",
            Self::TrustStoreNotFound => "TrustStoreNotFound",
            Self::TrustStoreInUse => "TrustStoreInUse",
            Self::DuplicateTrustStoreName => "DuplicateTrustStoreName",
            Self::RevocationIdNotFound => "RevocationIdNotFound",
            Self::TooManyTrustStoreRevocationEntries => "TooManyTrustStoreRevocationEntries",
            Self::InvalidRevocationContent => "InvalidRevocationContent",
            Self::InvalidState => "InvalidStateException",
            Self::NoSuchEntity => "NoSuchEntity",
            Self::EntityAlreadyExists => "EntityAlreadyExists",
            Self::DeleteConflict => "DeleteConflict",
            Self::InvalidVpcIdNotFound => "InvalidVpcID.NotFound",
            Self::InvalidSubnetIdNotFound => "InvalidSubnetID.NotFound",
            Self::InvalidGroupNotFound => "InvalidGroup.NotFound",
            Self::InvalidInstanceIdNotFound => "InvalidInstanceID.NotFound",
            Self::InvalidParameterValue => "InvalidParameterValue",
            Self::InvalidVpcRange => "InvalidVpc.Range",
            Self::InvalidSubnetRange => "InvalidSubnet.Range",
            Self::InvalidSubnetConflict => "InvalidSubnet.Conflict",
            Self::InvalidIpAddressInUse => "InvalidIPAddress.InUse",
            Self::InsufficientFreeAddressesInSubnet => "InsufficientFreeAddressesInSubnet",
            Self::DependencyViolation => "DependencyViolation",
            Self::InvalidGroupDuplicate => "InvalidGroup.Duplicate",
            Self::InvalidPermissionDuplicate => "InvalidPermission.Duplicate",
            Self::InvalidPermissionNotFound => "InvalidPermission.NotFound",
            Self::CannotDelete => "CannotDelete",
            Self::IncorrectInstanceState => "IncorrectInstanceState",
            Self::InvalidAllocationIdNotFound => "InvalidAllocationID.NotFound",
            Self::InvalidAssociationIdNotFound => "InvalidAssociationID.NotFound",
            Self::InvalidParameter => "InvalidParameter",
            Self::InvalidServiceName => "InvalidServiceName",
            Self::InvalidVpcEndpointServiceIdNotFound => "InvalidVpcEndpointServiceId.NotFound",
            Self::InvalidVpcEndpointServiceNotFound => "InvalidVpcEndpointService.NotFound",
            Self::InvalidVpcEndpointIdNotFound => "InvalidVpcEndpointId.NotFound",
            Self::InvalidVpcEndpointNotFound => "InvalidVpcEndpoint.NotFound",
            Self::ExistingVpcEndpointConnections => "ExistingVpcEndpointConnections",
            Self::IdempotentParameterMismatch => "IdempotentParameterMismatch",
            Self::ResourceAlreadyAssociated => "Resource.AlreadyAssociated",
            Self::AddressLimitExceeded => "AddressLimitExceeded",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused change: the AWS code and a message naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ModelError {
    pub code: ErrorCode,
    pub message: String,
}

impl ModelError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
