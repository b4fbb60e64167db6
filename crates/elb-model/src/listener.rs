//! Listeners: a protocol and port on every node of a load balancer, and what to do with what
//! arrives there.

use serde::{Deserialize, Serialize};

use crate::attributes::Attributes;
use crate::error::{ErrorCode, ModelError, Result};
use crate::load_balancer::LoadBalancerKind;
use crate::rule::Action;
use crate::state::{Origin, Tags};
use crate::trust_store::MutualAuthentication;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ListenerProtocol {
    Http,
    Https,
    Tcp,
    Tls,
    Udp,
    TcpUdp,
    /// A gateway load balancer's one listener, which names no protocol or port: GENEVE on
    /// 6081 to its appliances, packets from its endpoints.
    Geneve,
}

impl ListenerProtocol {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "HTTP" => Ok(Self::Http),
            "HTTPS" => Ok(Self::Https),
            "TCP" => Ok(Self::Tcp),
            "TLS" => Ok(Self::Tls),
            "UDP" => Ok(Self::Udp),
            "TCP_UDP" => Ok(Self::TcpUdp),
            "GENEVE" => Ok(Self::Geneve),
            _ => Err(ModelError::validation(format!(
                "Invalid listener protocol '{s}': must be one of HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Udp => "UDP",
            Self::TcpUdp => "TCP_UDP",
            Self::Geneve => "GENEVE",
        }
    }

    /// Whether a listener of this protocol may exist on `kind`.
    pub fn check_for(self, kind: LoadBalancerKind) -> Result<()> {
        // AWS's wording, with the type's protocols in its order.
        let allowed = match kind {
            LoadBalancerKind::Application => "HTTPS, HTTP",
            LoadBalancerKind::Network => "TCP, TLS, UDP, TCP_UDP",
            LoadBalancerKind::Gateway if self == Self::Geneve => return Ok(()),
            LoadBalancerKind::Gateway => {
                return Err(ModelError::validation(
                    "A protocol cannot be specified for gateway listeners",
                ));
            }
        };
        if !allowed.split(", ").any(|p| p == self.as_str()) {
            return Err(ModelError::validation(format!(
                "Listener protocol '{}' must be one of '{allowed}'",
                self.as_str()
            )));
        }
        Ok(())
    }

    /// Whether the listener takes UDP datagrams (UDP and TCP_UDP).
    pub fn takes_datagrams(self) -> bool {
        matches!(self, Self::Udp | Self::TcpUdp)
    }

    /// Whether the listener accepts TCP connections.
    pub fn takes_connections(self) -> bool {
        matches!(
            self,
            Self::Http | Self::Https | Self::Tcp | Self::Tls | Self::TcpUdp
        )
    }

    /// Whether the listener terminates TLS, and so needs a certificate and a policy.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Https | Self::Tls)
    }
}

/// `AlpnPolicy` of a TLS listener: which protocols it negotiates by ALPN, in what order of
/// preference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlpnPolicy {
    Http1Only,
    Http2Only,
    Http2Optional,
    Http2Preferred,
    /// AWS's `None`: no ALPN.
    #[default]
    Off,
}

impl AlpnPolicy {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "HTTP1Only" => Ok(Self::Http1Only),
            "HTTP2Only" => Ok(Self::Http2Only),
            "HTTP2Optional" => Ok(Self::Http2Optional),
            "HTTP2Preferred" => Ok(Self::Http2Preferred),
            "None" => Ok(Self::Off),
            _ => Err(ModelError::new(
                ErrorCode::AlpnPolicyNotFound,
                format!(
                    "ALPN policy '{s}' not found: one of HTTP1Only, HTTP2Only, HTTP2Optional, \
                     HTTP2Preferred, None"
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1Only => "HTTP1Only",
            Self::Http2Only => "HTTP2Only",
            Self::Http2Optional => "HTTP2Optional",
            Self::Http2Preferred => "HTTP2Preferred",
            Self::Off => "None",
        }
    }
}

/// What a TLS-terminating listener presents: its security policy and certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerTls {
    /// A name from [`crate::ssl_policy::SSL_POLICIES`].
    pub ssl_policy: String,
    /// Served when the client's SNI name matches none of `certificate_arns`, or it sends none.
    pub default_certificate_arn: String,
    /// AddListenerCertificates: chosen by SNI, exact name before wildcard.
    #[serde(default)]
    pub certificate_arns: Vec<String>,
    /// Mutual TLS; `None` is AWS's mode `off`.
    #[serde(default)]
    pub mutual_authentication: Option<MutualAuthentication>,
    /// TLS listeners (NLB) only.
    #[serde(default)]
    pub alpn_policy: AlpnPolicy,
}

impl ListenerTls {
    /// Every certificate the listener uses, the default first.
    pub fn all_certificate_arns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_certificate_arn.as_str())
            .chain(self.certificate_arns.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub protocol: ListenerProtocol,
    pub port: u16,
    /// The actions of the listener's default rule, which matches when no other rule does.
    pub default_actions: Vec<Action>,
    /// The `Order` the caller gave each action, echoed as given: empty when none was given
    /// (then none is shown), else one per action, ascending as the actions run.
    #[serde(
        default,
        alias = "default_action_order",
        deserialize_with = "crate::rule::action_orders"
    )]
    pub default_action_orders: Vec<u16>,
    /// The ARN of that default rule (`…:listener-rule/app/LB/LBID/LISTENERID/HEX16`). Its
    /// priority is `default`, it has no conditions and cannot be deleted; its actions are
    /// `default_actions`. Rules with priorities arrive with the listener-rules work.
    pub default_rule_arn: String,
    /// Present exactly when the protocol is HTTPS or TLS.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    #[serde(default = "crate::attributes::http_listener_defaults")]
    pub attributes: Attributes,
    #[serde(default)]
    pub tags: Tags,
    pub origin: Origin,
}

impl Listener {
    /// The target groups the default actions forward to.
    pub fn default_target_groups(&self) -> impl Iterator<Item = &str> {
        self.default_actions
            .iter()
            .flat_map(Action::target_group_arns)
    }
}
