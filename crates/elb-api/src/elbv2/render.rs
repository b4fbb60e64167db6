//! The XML of the elbv2 resource shapes (`LoadBalancer`, `TargetGroup`, `Listener`,
//! `Action`), written from model values.

use elb_model::{
    Listener, ListenerProtocol, LoadBalancer, LoadBalancerKind, LoadBalancerState, Region, Scheme,
    TargetGroup,
};

use crate::clock;
use crate::xml::Xml;

/// Route 53 hosted zone of a region's load balancers (ALB, NLB), as Terraform expects them,
/// for the regions whose ids the spec records; every other region gets us-east-1's.
fn hosted_zone(region: &str, kind: LoadBalancerKind) -> &'static str {
    let (alb, nlb) = match region {
        "us-east-2" => ("Z3AADJGX6KTTL2", "ZLMOA37VPKANP"),
        "us-west-2" => ("Z1H1FL5HABSF5", "Z18D5FSROUN65G"),
        "eu-west-1" => ("Z32O12XQLNTSW2", "Z2IFOLAFXWLO4F"),
        "eu-central-1" => ("Z215JYRZR1TBD5", "Z3F0SRJ5LGBH90"),
        "ap-northeast-1" => ("Z14GRHDCWA56QT", "Z31USIVHYNEOWT"),
        _ => ("Z35SXDOTRQ7X7K", "Z26RNL4JYFTOTI"),
    };
    if kind == LoadBalancerKind::Application {
        alb
    } else {
        nlb
    }
}

fn state_code(state: LoadBalancerState) -> &'static str {
    match state {
        LoadBalancerState::Provisioning => "provisioning",
        LoadBalancerState::Active => "active",
        LoadBalancerState::ActiveImpaired => "active_impaired",
        LoadBalancerState::Failed => "failed",
    }
}

pub(super) fn load_balancer(x: &mut Xml, state: &Region, lb: &LoadBalancer) {
    x.leaf("LoadBalancerArn", &lb.arn);
    // A gateway is reached through its endpoints, not by name.
    if lb.kind != LoadBalancerKind::Gateway {
        x.leaf("DNSName", &lb.dns_name).leaf(
            "CanonicalHostedZoneId",
            hosted_zone(&state.scope.region, lb.kind),
        );
    }
    x.leaf("CreatedTime", clock::iso8601(lb.created_ms))
        .leaf("LoadBalancerName", &lb.name);
    if lb.kind != LoadBalancerKind::Gateway {
        let scheme = match lb.scheme {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        };
        x.leaf("Scheme", scheme);
    }
    x.leaf("VpcId", &lb.vpc_id)
        .node("State", |x| {
            x.leaf("Code", state_code(lb.state));
            if let Some(reason) = &lb.state_reason {
                x.leaf("Reason", reason);
            }
        })
        .leaf("Type", lb.kind.as_str());
    availability_zones(x, state, lb);
    if lb.kind != LoadBalancerKind::Gateway {
        x.text_members("SecurityGroups", &lb.security_groups);
    }
    if let Some(on) = privatelink_inbound_rules(lb) {
        x.leaf("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic", on);
    }
    x.leaf("IpAddressType", lb.ip_address_type.as_str());
    if lb.kind == LoadBalancerKind::Network {
        x.leaf("EnablePrefixForIpv6SourceNat", on_off(lb.ipv6_source_nat));
    }
}

/// A load balancer's zones, each with its subnet, and for network load balancers the node's
/// addresses and source NAT prefix.
pub(super) fn availability_zones(x: &mut Xml, state: &Region, lb: &LoadBalancer) {
    x.members("AvailabilityZones", &lb.subnet_ids, |x, subnet_id| {
        let zone = state
            .subnets
            .get(subnet_id)
            .map_or("", |s| s.availability_zone.as_str());
        x.leaf("ZoneName", zone).leaf("SubnetId", subnet_id);
        if lb.kind == LoadBalancerKind::Network {
            let node = state.nodes_of(&lb.arn).find(|n| &n.subnet_id == subnet_id);
            x.members("LoadBalancerAddresses", node, |x, n| {
                if let Some(public) = n.public_ipv4 {
                    x.leaf("IpAddress", public.to_string());
                }
                if let Some(eip) = state.elastic_ip_of(&n.id) {
                    x.leaf("AllocationId", &eip.allocation_id);
                }
                x.leaf("PrivateIPv4Address", n.private_ipv4.to_string());
                if let Some(ipv6) = n.ipv6 {
                    x.leaf("IPv6Address", ipv6.to_string());
                }
            });
            if let Some(prefix) = node.and_then(|n| n.source_nat_ipv6_prefix) {
                x.text_members("SourceNatIpv6Prefixes", [prefix.to_string()]);
            }
        }
    });
}

pub(super) fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic`, as AWS shows it: for network load
/// balancers with security groups.
pub(super) fn privatelink_inbound_rules(lb: &LoadBalancer) -> Option<&'static str> {
    let shown = lb.kind == LoadBalancerKind::Network && !lb.security_groups.is_empty();
    shown.then_some(on_off(lb.privatelink_inbound_rules))
}

pub(super) fn target_group(x: &mut Xml, state: &Region, tg: &TargetGroup) {
    let hc = &tg.health_check;
    x.leaf("TargetGroupArn", &tg.arn)
        .leaf("TargetGroupName", &tg.name);
    // A function's group has no protocol, port, VPC or check protocol and port to show.
    let lambda = tg.target_type == elb_model::TargetType::Lambda;
    if !lambda {
        x.leaf("Protocol", tg.protocol.as_str())
            .leaf("Port", tg.port.to_string())
            .leaf("VpcId", &tg.vpc_id)
            .leaf("HealthCheckProtocol", &hc.protocol)
            .leaf("HealthCheckPort", &hc.port);
    }
    x.leaf("HealthCheckEnabled", hc.enabled.to_string())
        .leaf(
            "HealthCheckIntervalSeconds",
            hc.interval_seconds.to_string(),
        )
        .leaf("HealthCheckTimeoutSeconds", hc.timeout_seconds.to_string())
        .leaf("HealthyThresholdCount", hc.healthy_threshold.to_string())
        .leaf(
            "UnhealthyThresholdCount",
            hc.unhealthy_threshold.to_string(),
        )
        .leaf("TargetType", target_type(tg))
        .leaf("IpAddressType", tg.ip_address_type.as_str());
    // A TCP check has no path or matcher, and only HTTP groups have a protocol version: AWS
    // leaves out what does not apply.
    if hc.protocol != "TCP" {
        x.leaf("HealthCheckPath", &hc.path).node("Matcher", |x| {
            if hc.grpc_code.is_empty() {
                x.leaf("HttpCode", &hc.http_code);
            } else {
                x.leaf("GrpcCode", &hc.grpc_code);
            }
        });
    }
    if tg.protocol.is_http() && !lambda {
        x.leaf("ProtocolVersion", tg.protocol_version.as_str());
    }
    // A group no load balancer uses has no LoadBalancerArns at all, as AWS renders it.
    if let Some(lb) = state.load_balancer_of_target_group(&tg.arn) {
        x.text_members("LoadBalancerArns", [lb]);
    }
}

fn target_type(tg: &TargetGroup) -> &'static str {
    match tg.target_type {
        elb_model::TargetType::Instance => "instance",
        elb_model::TargetType::Ip => "ip",
        elb_model::TargetType::Lambda => "lambda",
        elb_model::TargetType::Alb => "alb",
    }
}

pub(super) fn listener(x: &mut Xml, l: &Listener) {
    x.leaf("ListenerArn", &l.arn)
        .leaf("LoadBalancerArn", &l.load_balancer_arn);
    // A gateway's listener names no port or protocol.
    if l.protocol != ListenerProtocol::Geneve {
        x.leaf("Port", l.port.to_string())
            .leaf("Protocol", l.protocol.as_str());
    }
    if let Some(tls) = &l.tls {
        // As AWS: the default certificate only; the SNI ones are in DescribeListenerCertificates.
        x.leaf("SslPolicy", &tls.ssl_policy);
        x.members("Certificates", [&tls.default_certificate_arn], |x, arn| {
            x.leaf("CertificateArn", arn);
        });
        if l.protocol == ListenerProtocol::Tls {
            x.text_members("AlpnPolicy", [tls.alpn_policy.as_str()]);
        }
    }
    // HTTPS listeners always show it; TLS ones (network load balancers) once it is on.
    if let Some(tls) = l
        .tls
        .as_ref()
        .filter(|t| l.protocol == ListenerProtocol::Https || t.mutual_authentication.is_some())
    {
        x.node("MutualAuthentication", |x| {
            match &tls.mutual_authentication {
                None => {
                    x.leaf("Mode", "off");
                }
                Some(m) => {
                    x.leaf("Mode", m.mode.as_str());
                    if let Some(arn) = &m.trust_store_arn {
                        x.leaf("TrustStoreArn", arn);
                    }
                    x.leaf("IgnoreClientCertificateExpiry", "false").leaf(
                        "AdvertiseTrustStoreCaNames",
                        if m.advertise_ca_names { "on" } else { "off" },
                    );
                    if !m.identity_filters.is_empty() {
                        x.members(
                            "ClientCertificateIdentityFilters",
                            &m.identity_filters,
                            |x, f| {
                                x.leaf("Field", f.field.as_str())
                                    .leaf("Action", "accept")
                                    .leaf("MatchType", if f.prefix { "prefix" } else { "exact" })
                                    .leaf("Value", &f.value);
                            },
                        );
                    }
                }
            }
        });
    }
    super::actions::render_actions(
        x,
        "DefaultActions",
        &l.default_actions,
        &l.default_action_orders,
    );
}
