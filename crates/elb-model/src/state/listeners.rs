//! CreateListener, ModifyListener, DeleteListener.

use super::load_balancers::Addressing;
use super::{
    CreateListener, ListenerChanges, Outcome, Region, Tags, load_balancers, target_groups,
};
use crate::attributes;
use crate::authenticate::IdentityProvider;
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::listener::{AlpnPolicy, Listener, ListenerProtocol};
use crate::load_balancer::{IpAddressType, LoadBalancerKind};
use crate::rule::Action;
use crate::target_group::{GENEVE_PORT, TargetGroupProtocol, TargetIpAddressType, TargetType};

impl Region {
    pub(super) fn create_listener(
        &mut self,
        c: CreateListener,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let lb = self
            .load_balancers
            .get(&c.load_balancer_arn)
            .ok_or_else(|| load_balancers::not_found(&c.load_balancer_arn))?;
        let (protocol, port) = protocol_and_port(lb.kind, c.protocol, c.port)?;
        check_datagrams(Addressing::of(lb), protocol)?;
        let tls = self.listener_tls(
            protocol,
            c.ssl_policy.as_deref(),
            &c.certificate_arns,
            (c.mutual_authentication, c.alpn_policy),
        )?;
        if let Some(existing) = self.listeners_of(&lb.arn).find(|l| l.port == port) {
            return if existing.protocol == protocol
                && existing.default_actions == c.default_actions
                && existing.default_action_orders == c.default_action_orders
                && existing.tls == tls
            {
                Ok(Outcome::Created(existing.arn.clone()))
            } else {
                Err(ModelError::new(
                    ErrorCode::DuplicateListener,
                    if lb.kind == LoadBalancerKind::Gateway {
                        format!(
                            "Gateway load balancer '{}' already has its listener",
                            lb.name
                        )
                    } else {
                        format!("A listener already exists on port {port} of '{}'", lb.name)
                    },
                ))
            };
        }
        if self.listeners_of(&lb.arn).count() >= self.quotas.listeners_per_load_balancer {
            return Err(ModelError::new(
                ErrorCode::TooManyListeners,
                format!(
                    "A load balancer can have at most {} listeners",
                    self.quotas.listeners_per_load_balancer
                ),
            ));
        }
        self.check_actions(&lb.arn, protocol, &c.default_actions)?;
        let mut default_actions = c.default_actions;
        keep_client_secret(&mut default_actions, &[])?;
        let arn = format!(
            "{}/{}",
            lb.arn.replacen(":loadbalancer/", ":listener/", 1),
            cx.hex16()
        );
        let default_rule_arn = format!(
            "{}/{}",
            arn.replacen(":listener/", ":listener-rule/", 1),
            cx.hex16()
        );
        self.listeners.insert(
            arn.clone(),
            Listener {
                default_rule_arn,
                arn: arn.clone(),
                load_balancer_arn: c.load_balancer_arn,
                protocol,
                port,
                default_actions,
                default_action_orders: c.default_action_orders,
                tls,
                attributes: attributes::listener_defaults(protocol),
                tags: Tags::new(),
                origin: c.origin,
            },
        );
        Ok(Outcome::Created(arn))
    }

    pub(super) fn modify_listener(
        &mut self,
        arn: &str,
        changes: ListenerChanges,
    ) -> Result<Outcome> {
        let listener = self.listener(arn)?;
        let lb_arn = listener.load_balancer_arn.clone();
        let kind = self.load_balancers[&lb_arn].kind;
        if kind == LoadBalancerKind::Gateway {
            protocol_and_port(kind, changes.protocol, changes.port)?;
        }
        let protocol = changes.protocol.unwrap_or(listener.protocol);
        protocol.check_for(kind)?;
        check_datagrams(Addressing::of(&self.load_balancers[&lb_arn]), protocol)?;
        // A TLS listener keeps what it had unless told otherwise, including its SNI list;
        // a plain one turning TLS needs a certificate like a new listener.
        let current = listener.tls.clone().filter(|_| protocol.is_tls());
        let policy = changes
            .ssl_policy
            .clone()
            .or_else(|| current.as_ref().map(|t| t.ssl_policy.clone()));
        let certificates = changes.certificate_arns.clone().unwrap_or_else(|| {
            current
                .iter()
                .map(|t| t.default_certificate_arn.clone())
                .collect()
        });
        let mutual = match changes.mutual_authentication.clone() {
            Some(mutual) => mutual,
            None => current
                .as_ref()
                .and_then(|t| t.mutual_authentication.clone()),
        };
        // The policy in force carries over. `None`, the default every TLS setting holds
        // (HTTPS listeners' too), is left out: given, it would be refused on HTTPS.
        let alpn = changes.alpn_policy.or_else(|| {
            let current = current.as_ref().map(|t| t.alpn_policy);
            current.filter(|p| *p != AlpnPolicy::Off)
        });
        let mut tls =
            self.listener_tls(protocol, policy.as_deref(), &certificates, (mutual, alpn))?;
        if let (Some(tls), Some(current)) = (tls.as_mut(), current) {
            tls.certificate_arns = current.certificate_arns;
        }
        let (default_actions, default_action_orders) = match changes.default_actions {
            Some(mut actions) => {
                keep_client_secret(&mut actions, &listener.default_actions)?;
                (actions, changes.default_action_orders)
            }
            None => (
                listener.default_actions.clone(),
                listener.default_action_orders.clone(),
            ),
        };
        let port = changes.port.unwrap_or(listener.port);
        target_groups::check_port(port)?;
        if self
            .listeners_of(&lb_arn)
            .any(|l| l.port == port && l.arn != arn)
        {
            return Err(ModelError::new(
                ErrorCode::DuplicateListener,
                format!("A listener already exists on port {port}"),
            ));
        }
        self.check_actions(&lb_arn, protocol, &default_actions)?;
        // Its rules' authenticate actions need it to stay HTTPS.
        for rule in self.rules.values().filter(|r| r.listener_arn == arn) {
            self.check_actions(&lb_arn, protocol, &rule.actions)?;
        }
        let listener = self.listeners.get_mut(arn).expect("checked above");
        listener.attributes = attributes::listener_protocol_changed(
            &listener.attributes,
            listener.protocol,
            protocol,
        );
        listener.port = port;
        listener.protocol = protocol;
        listener.tls = tls;
        listener.default_actions = default_actions;
        listener.default_action_orders = default_action_orders;
        Ok(Outcome::Done)
    }

    pub(super) fn modify_listener_attributes(
        &mut self,
        arn: &str,
        changes: &[(String, String)],
    ) -> Result<Outcome> {
        let listener = self.listener_mut(arn)?;
        listener.attributes =
            attributes::modify_listener(&listener.attributes, listener.protocol, changes)?;
        Ok(Outcome::Done)
    }

    pub(super) fn delete_listener(&mut self, arn: &str) -> Result<Outcome> {
        self.listener(arn)?;
        self.listeners.remove(arn);
        self.rules.retain(|_, r| r.listener_arn != arn);
        Ok(Outcome::Done)
    }

    pub(super) fn listener(&self, arn: &str) -> Result<&Listener> {
        self.listeners.get(arn).ok_or_else(|| not_found(arn))
    }

    pub(super) fn listener_mut(&mut self, arn: &str) -> Result<&mut Listener> {
        self.listeners.get_mut(arn).ok_or_else(|| not_found(arn))
    }

    /// One action that answers (forward, redirect or fixed response), after an authenticate
    /// action on HTTPS listeners, each valid in itself, forwarding only to target groups of
    /// a protocol the listener's carries, in the load balancer's VPC, that no other load
    /// balancer uses. A network load balancer's listeners forward, to one group.
    pub(super) fn check_actions(
        &self,
        lb_arn: &str,
        protocol: ListenerProtocol,
        actions: &[Action],
    ) -> Result<()> {
        let action = match actions {
            [action] if action.is_terminal() => action,
            [first, action] if !first.is_terminal() && action.is_terminal() => {
                if protocol != ListenerProtocol::Https {
                    return Err(ModelError::validation(format!(
                        "A {} action is supported on HTTPS listeners only, not {}",
                        first.action_type(),
                        protocol.as_str()
                    )));
                }
                first.validate()?;
                action
            }
            _ => {
                return Err(ModelError::validation(
                    "The actions must be one forward, redirect or fixed-response action, \
                     last, after at most one authenticate-oidc, authenticate-cognito or \
                     jwt-validation action",
                ));
            }
        };
        action.validate()?;
        let lb = &self.load_balancers[lb_arn];
        if lb.kind != LoadBalancerKind::Application {
            if let Action::Forward {
                group_stickiness_seconds: Some(_),
                ..
            } = action
            {
                return Err(ModelError::new(
                    ErrorCode::InvalidLoadBalancerAction,
                    "Target group stickiness is supported on application load balancers only",
                ));
            }
            let one_group = match action {
                Action::Forward { target_groups, .. } => target_groups.len() == 1,
                _ => false,
            };
            if !one_group {
                return Err(ModelError::new(
                    ErrorCode::InvalidLoadBalancerAction,
                    format!(
                        "{} load balancer listeners support one action: forward to one target \
                         group",
                        if lb.kind == LoadBalancerKind::Network {
                            "Network"
                        } else {
                            "Gateway"
                        }
                    ),
                ));
            }
        }
        for tg_arn in action.target_group_arns() {
            let tg = self
                .target_groups
                .get(tg_arn)
                .ok_or_else(|| target_groups::not_found(tg_arn))?;
            let carried: &[TargetGroupProtocol] = match protocol {
                ListenerProtocol::Http | ListenerProtocol::Https => {
                    &[TargetGroupProtocol::Http, TargetGroupProtocol::Https]
                }
                ListenerProtocol::Tcp => &[TargetGroupProtocol::Tcp, TargetGroupProtocol::TcpUdp],
                ListenerProtocol::Tls => &[TargetGroupProtocol::Tcp, TargetGroupProtocol::Tls],
                ListenerProtocol::Udp => &[TargetGroupProtocol::Udp, TargetGroupProtocol::TcpUdp],
                ListenerProtocol::TcpUdp => &[TargetGroupProtocol::TcpUdp],
                ListenerProtocol::Geneve => &[TargetGroupProtocol::Geneve],
            };
            if tg.target_type == TargetType::Alb && protocol != ListenerProtocol::Tcp {
                return Err(ModelError::new(
                    ErrorCode::IncompatibleProtocols,
                    format!(
                        "Target group '{}' has an application load balancer as its target: only \
                         TCP listeners forward to it",
                        tg.name
                    ),
                ));
            }
            if tg.target_type == TargetType::Lambda
                && !matches!(protocol, ListenerProtocol::Http | ListenerProtocol::Https)
            {
                return Err(ModelError::new(
                    ErrorCode::IncompatibleProtocols,
                    format!(
                        "Target group '{}' has a Lambda function as its target: only HTTP and \
                         HTTPS listeners forward to it",
                        tg.name
                    ),
                ));
            }
            if !carried.contains(&tg.protocol) {
                let names: Vec<&str> = carried.iter().map(|p| p.as_str()).collect();
                return Err(ModelError::new(
                    ErrorCode::IncompatibleProtocols,
                    format!(
                        "Target group '{}' uses {}; {} listeners forward to {} target groups",
                        tg.name,
                        tg.protocol.as_str(),
                        protocol.as_str(),
                        names.join(" or ")
                    ),
                ));
            }
            if tg.ip_address_type == TargetIpAddressType::Ipv6
                && lb.ip_address_type == IpAddressType::Ipv4
            {
                return Err(ModelError::new(
                    ErrorCode::InvalidConfigurationRequest,
                    format!(
                        "Target group '{}' has IPv6 targets: load balancer '{}' must be \
                         dualstack to forward to it",
                        tg.name, lb.name
                    ),
                ));
            }
            // A function is in no VPC.
            if tg.target_type != TargetType::Lambda && tg.vpc_id != lb.vpc_id {
                return Err(ModelError::validation(format!(
                    "Target group '{}' is not in the VPC of load balancer '{}'",
                    tg.name, lb.name
                )));
            }
            if let Some(other) = self.load_balancer_of_target_group(tg_arn)
                && other != lb_arn
            {
                return Err(ModelError::new(
                    ErrorCode::TargetGroupAssociationLimit,
                    format!(
                        "Target group '{}' is already used by load balancer '{other}'",
                        tg.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The protocol and port a new listener of a `kind` load balancer has: given for
/// application and network load balancers, and never for gateways, whose one listener is
/// GENEVE on 6081 (AWS names the protocol first when both are given).
fn protocol_and_port(
    kind: LoadBalancerKind,
    protocol: Option<ListenerProtocol>,
    port: Option<u16>,
) -> Result<(ListenerProtocol, u16)> {
    if kind == LoadBalancerKind::Gateway {
        return match (protocol, port) {
            (Some(_), _) => Err(ModelError::validation(
                "A protocol cannot be specified for gateway listeners",
            )),
            (None, Some(_)) => Err(ModelError::validation(
                "A port cannot be specified for gateway listeners",
            )),
            (None, None) => Ok((ListenerProtocol::Geneve, GENEVE_PORT)),
        };
    }
    let protocol =
        protocol.ok_or_else(|| ModelError::validation("A protocol must be specified"))?;
    let port = port.ok_or_else(|| ModelError::validation("A listener port must be specified"))?;
    protocol.check_for(kind)?;
    target_groups::check_port(port)?;
    Ok((protocol, port))
}

/// UDP on a dual-stack network load balancer takes IPv6 source NAT prefixes, as on AWS.
pub(super) fn check_datagrams(addressing: Addressing, protocol: ListenerProtocol) -> Result<()> {
    if addressing.ip != IpAddressType::Ipv4 && !addressing.source_nat && protocol.takes_datagrams()
    {
        return Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            format!(
                "A {} listener of a dualstack load balancer needs IPv6 source NAT prefixes: \
                 EnablePrefixForIpv6SourceNat on",
                protocol.as_str()
            ),
        ));
    }
    Ok(())
}

pub(super) fn not_found(arn: &str) -> ModelError {
    ModelError::new(
        ErrorCode::ListenerNotFound,
        format!("Listener '{arn}' not found"),
    )
}

/// Fills an `authenticate-oidc` action's client secret, when the caller asked to keep it
/// (`UseExistingClientSecret`), from the one in `current`: of the same client at the same
/// token endpoint, so that a secret is never sent anywhere its owner did not send it. A new
/// action without one is refused.
pub(super) fn keep_client_secret(actions: &mut [Action], current: &[Action]) -> Result<()> {
    let existing = current.iter().find_map(|a| match a {
        Action::Authenticate(auth) => match &auth.provider {
            IdentityProvider::Oidc(oidc) => Some(oidc),
            IdentityProvider::Cognito(_) => None,
        },
        _ => None,
    });
    for action in actions {
        if let Action::Authenticate(auth) = action
            && let IdentityProvider::Oidc(oidc) = &mut auth.provider
            && oidc.client_secret.is_none()
        {
            let same_client = existing.filter(|e| {
                e.client_id == oidc.client_id && e.token_endpoint == oidc.token_endpoint
            });
            oidc.client_secret = Some(
                same_client
                    .and_then(|e| e.client_secret.clone())
                    .ok_or_else(|| {
                        ModelError::validation(
                            "A ClientSecret must be specified: there is no existing client \
                             secret of this ClientId and TokenEndpoint to use",
                        )
                    })?,
            );
        }
    }
    Ok(())
}
