//! Network load balancers: what TCP listeners and target groups accept, as AWS.

use super::*;
use crate::attributes::{DEREGISTRATION_TERMINATION, PRESERVE_CLIENT_IP, TCP_IDLE_TIMEOUT};
use crate::listener::AlpnPolicy;
use crate::rule::FixedResponse;
use crate::target_group::{HealthCheck, TargetGroupProtocol};
use crate::trust_store::{MtlsMode, MutualAuthentication};

impl World {
    pub(super) fn nlb(&mut self, name: &str) -> String {
        let subnet_ids = vec![self.subnet("us-east-1a"), self.subnet("us-east-1b")];
        self.created(Command::CreateLoadBalancer(CreateLoadBalancer {
            name: name.into(),
            kind: LoadBalancerKind::Network,
            scheme: Some(Scheme::Internal),
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids,
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        }))
    }

    fn group(&mut self, name: &str, protocol: &str, target_type: &str) -> Result<Outcome> {
        self.run(Command::CreateTargetGroup(CreateTargetGroup {
            name: name.into(),
            protocol: Some(protocol.into()),
            protocol_version: ProtocolVersion::Http1,
            port: Some(9100),
            vpc_id: None,
            target_type: target_type.into(),
            ip_address_type: None,
            origin: Origin::Api,
        }))
    }

    pub(super) fn listener_of(
        &mut self,
        lb: &str,
        protocol: ListenerProtocol,
        actions: Vec<Action>,
    ) -> Result<Outcome> {
        self.run(Command::CreateListener(CreateListener {
            load_balancer_arn: lb.into(),
            protocol: Some(protocol),
            port: Some(7000),
            default_actions: actions,
            default_action_orders: Vec::new(),
            ssl_policy: None,
            certificate_arns: vec![],
            mutual_authentication: None,
            alpn_policy: None,
            origin: Origin::Api,
        }))
    }
}

#[test]
fn tcp_groups_take_aws_defaults_and_their_own_attributes() {
    let mut w = World::new();
    let ip = arn_of(w.group("ip", "TCP", "ip"));
    let instance = arn_of(w.group("instance", "TCP", "instance"));
    let hc = &w.state.target_groups[&ip].health_check;
    assert_eq!(
        (hc.protocol.as_str(), hc.port.as_str(), hc.interval_seconds),
        ("TCP", "traffic-port", 30)
    );
    assert_eq!(
        (
            hc.timeout_seconds,
            hc.healthy_threshold,
            hc.unhealthy_threshold
        ),
        (10, 5, 2)
    );
    let preserve = |w: &World, arn: &str| {
        w.state.target_groups[arn]
            .attributes
            .get(PRESERVE_CLIENT_IP)
            .map(str::to_owned)
    };
    assert_eq!(preserve(&w, &ip).as_deref(), Some("false"));
    assert_eq!(preserve(&w, &instance).as_deref(), Some("true"));

    let set = |w: &mut World, key: &str, value: &str| {
        w.run(Command::ModifyTargetGroupAttributes {
            arn: ip.clone(),
            changes: vec![(key.into(), value.into())],
        })
    };
    assert!(set(&mut w, "stickiness.type", "source_ip").is_ok());
    for (key, value) in [
        ("stickiness.type", "lb_cookie"),
        ("slow_start.duration_seconds", "30"),
        ("deregistration_delay.timeout_seconds", "3601"),
    ] {
        let e = set(&mut w, key, value).unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError, "{key}={value}: {e:?}");
        assert!(e.message.contains(key), "{e:?}");
    }
    assert!(set(&mut w, "proxy_protocol_v2.enabled", "true").is_ok());

    // TCP checks take no path; HTTP ones on an NLB's group match 200-599.
    let check = |w: &mut World, changes: HealthCheckChanges| {
        w.run(Command::ModifyTargetGroup {
            arn: ip.clone(),
            health_check: changes,
        })
    };
    let path = HealthCheckChanges {
        path: Some("/health".into()),
        ..Default::default()
    };
    assert_eq!(
        check(&mut w, path).unwrap_err().code,
        ErrorCode::ValidationError
    );
    let http = HealthCheckChanges {
        protocol: Some("HTTP".into()),
        path: Some("/health".into()),
        http_code: Some("200-599".into()),
        ..Default::default()
    };
    assert!(check(&mut w, http).is_ok());
    let http_group = w.target_group("web");
    let tcp_check = w.run(Command::ModifyTargetGroup {
        arn: http_group,
        health_check: HealthCheckChanges {
            protocol: Some("TCP".into()),
            ..Default::default()
        },
    });
    assert_eq!(
        tcp_check.unwrap_err().code,
        ErrorCode::InvalidConfigurationRequest
    );
    // GENEVE groups are a gateway's, on port 6081 alone (tests/gateway.rs).
    assert_eq!(
        w.group("geneve", "GENEVE", "ip").unwrap_err().code,
        ErrorCode::ValidationError
    );
}

#[test]
fn nlb_checks_follow_their_protocol_defaults() {
    let mut w = World::new();
    let tg = arn_of(w.group("tcp", "TCP", "ip"));
    let check = |w: &mut World, changes: HealthCheckChanges| {
        w.run(Command::ModifyTargetGroup {
            arn: tg.clone(),
            health_check: changes,
        })
        .map(|_| w.state.target_groups[&tg].health_check.clone())
    };
    let http = check(
        &mut w,
        HealthCheckChanges {
            protocol: Some("HTTP".into()),
            path: Some("/health".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(http.timeout_seconds, 6, "an HTTP check's default timeout");
    let back = check(
        &mut w,
        HealthCheckChanges {
            protocol: Some("TCP".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        back,
        HealthCheck::for_target_group(
            TargetGroupProtocol::Tcp,
            ProtocolVersion::Http1,
            crate::target_group::TargetType::Ip,
        )
    );
    let equal = HealthCheckChanges {
        interval_seconds: Some(10),
        timeout_seconds: Some(10),
        ..Default::default()
    };
    assert!(
        check(&mut w, equal).is_ok(),
        "an NLB's timeout may equal its interval"
    );

    let grpc = w.run(Command::CreateTargetGroup(CreateTargetGroup {
        name: "grpc".into(),
        protocol: Some("TCP".into()),
        protocol_version: ProtocolVersion::Grpc,
        port: Some(9100),
        vpc_id: None,
        target_type: "ip".into(),
        ip_address_type: None,
        origin: Origin::Api,
    }));
    assert_eq!(grpc.unwrap_err().code, ErrorCode::ValidationError);
}

#[test]
fn nlb_listeners_forward_tcp_to_one_tcp_group() {
    let mut w = World::new();
    let lb = w.nlb("flows");
    let tcp = arn_of(w.group("tcp", "TCP", "ip"));
    let http = w.target_group("web");

    let e = w
        .listener_of(&lb, ListenerProtocol::Http, vec![Action::forward(&tcp)])
        .unwrap_err();
    assert_eq!(
        e.message,
        "Listener protocol 'HTTP' must be one of 'TCP, TLS, UDP, TCP_UDP'"
    );
    let e = w
        .listener_of(&lb, ListenerProtocol::Udp, vec![Action::forward(&tcp)])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::IncompatibleProtocols);
    let e = w
        .listener_of(&lb, ListenerProtocol::Tls, vec![Action::forward(&tcp)])
        .unwrap_err();
    assert_eq!(
        e.message, "A certificate must be specified for TLS listeners",
        "{e:?}"
    );
    let e = w
        .listener_of(&lb, ListenerProtocol::Tcp, vec![Action::forward(&http)])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::IncompatibleProtocols);
    let fixed = Action::FixedResponse(FixedResponse {
        status_code: 200,
        content_type: None,
        body: None,
    });
    let e = w
        .listener_of(&lb, ListenerProtocol::Tcp, vec![fixed])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidLoadBalancerAction);
    // Target group stickiness is the ALB's (it was stored and echoed).
    let mut sticky = Action::forward(&tcp);
    if let Action::Forward {
        group_stickiness_seconds,
        ..
    } = &mut sticky
    {
        *group_stickiness_seconds = Some(100);
    }
    let e = w
        .listener_of(&lb, ListenerProtocol::Tcp, vec![sticky])
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidLoadBalancerAction);

    let listener = arn_of(w.listener_of(&lb, ListenerProtocol::Tcp, vec![Action::forward(&tcp)]));
    let attrs = &w.state.listeners[&listener].attributes;
    assert_eq!(attrs.get(TCP_IDLE_TIMEOUT), Some("350"));
    assert_eq!(attrs.iter().count(), 1, "only the NLB listener attribute");
    let idle = |w: &mut World, value: &str| {
        w.run(Command::ModifyListenerAttributes {
            arn: listener.clone(),
            changes: vec![(TCP_IDLE_TIMEOUT.into(), value.into())],
        })
    };
    assert!(idle(&mut w, "6000").is_ok());
    assert_eq!(
        idle(&mut w, "59").unwrap_err().code,
        ErrorCode::ValidationError
    );

    let rule = w.run(Command::CreateRule {
        listener_arn: listener,
        priority: 1,
        conditions: vec![],
        actions: vec![Action::forward(&tcp)],
        action_orders: Vec::new(),
        transforms: Vec::new(),
        origin: Origin::Api,
    });
    assert_eq!(rule.unwrap_err().code, ErrorCode::ValidationError);
}

#[test]
fn udp_groups_keep_the_client_ip_and_are_checked_over_tcp_or_http() {
    let mut w = World::new();
    let lb = w.nlb("datagrams");
    for protocol in ["UDP", "TCP_UDP"] {
        let group = arn_of(w.group(&protocol.replace('_', "-").to_lowercase(), protocol, "ip"));
        let tg = &w.state.target_groups[&group];
        assert_eq!(tg.health_check.protocol, "TCP", "{protocol}");
        for key in [DEREGISTRATION_TERMINATION, PRESERVE_CLIENT_IP] {
            assert_eq!(tg.attributes.get(key), Some("true"), "{protocol} {key}");
        }
        let set = |w: &mut World, key: &str, value: &str| {
            w.run(Command::ModifyTargetGroupAttributes {
                arn: group.clone(),
                changes: vec![(key.into(), value.into())],
            })
        };
        let e = set(&mut w, PRESERVE_CLIENT_IP, "false").unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError);
        assert!(e.message.contains(protocol), "{e:?}");
        let e = set(&mut w, "proxy_protocol_v2.enabled", "true").unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError, "{e:?}");
        assert!(set(&mut w, DEREGISTRATION_TERMINATION, "false").is_ok());

        let e = w
            .run(Command::ModifyTargetGroup {
                arn: group.clone(),
                health_check: HealthCheckChanges {
                    protocol: Some("UDP".into()),
                    ..Default::default()
                },
            })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ValidationError, "{e:?}");
    }

    let udp = w.state.target_groups.values().find(|tg| tg.name == "udp");
    let udp = udp.unwrap().arn.clone();
    let listener = arn_of(w.listener_of(&lb, ListenerProtocol::Udp, vec![Action::forward(&udp)]));
    let attrs = &w.state.listeners[&listener].attributes;
    assert_eq!(attrs.iter().count(), 0, "UDP listeners have no attributes");
    let e = w
        .run(Command::ModifyListenerAttributes {
            arn: listener,
            changes: vec![(TCP_IDLE_TIMEOUT.into(), "400".into())],
        })
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError);
}

#[test]
fn alpn_policies_belong_to_tls_listeners_and_stay_until_changed() {
    let mut w = World::new();
    let lb = w.nlb("secure");
    let tcp = arn_of(w.group("tcp", "TCP", "ip"));
    let cert = w.certificate("secure.example");
    let tls = |alpn: Option<AlpnPolicy>, protocol: ListenerProtocol, mutual| CreateListener {
        load_balancer_arn: lb.clone(),
        protocol: Some(protocol),
        port: Some(7443),
        default_actions: vec![Action::forward(&tcp)],
        default_action_orders: Vec::new(),
        ssl_policy: None,
        certificate_arns: if protocol == ListenerProtocol::Tcp {
            vec![]
        } else {
            vec![cert.clone()]
        },
        mutual_authentication: mutual,
        alpn_policy: alpn,
        origin: Origin::Api,
    };
    let preferred = Some(AlpnPolicy::Http2Preferred);
    let e = w
        .run(Command::CreateListener(tls(
            preferred,
            ListenerProtocol::Tcp,
            None,
        )))
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::ValidationError, "{e:?}");
    let passthrough = Some(MutualAuthentication {
        mode: MtlsMode::Passthrough,
        trust_store_arn: None,
        advertise_ca_names: false,
        identity_filters: Vec::new(),
    });
    let e = w
        .run(Command::CreateListener(tls(
            None,
            ListenerProtocol::Tls,
            passthrough,
        )))
        .unwrap_err();
    assert!(e.message.contains("must be off or verify"), "{e:?}");
    assert!(w.state.listeners.is_empty());

    let listener = arn_of(w.run(Command::CreateListener(tls(
        preferred,
        ListenerProtocol::Tls,
        None,
    ))));
    let alpn = |w: &World| {
        w.state.listeners[&listener]
            .tls
            .as_ref()
            .unwrap()
            .alpn_policy
    };
    assert_eq!(alpn(&w), AlpnPolicy::Http2Preferred);
    assert_eq!(
        w.state.listeners[&listener]
            .attributes
            .get(TCP_IDLE_TIMEOUT),
        Some("350")
    );
    // A change that does not name the policy keeps it; one that does replaces it.
    let modify = |w: &mut World, alpn| {
        w.run(Command::ModifyListener {
            arn: listener.clone(),
            changes: ListenerChanges {
                ssl_policy: Some("ELBSecurityPolicy-TLS13-1-2-2021-06".into()),
                alpn_policy: alpn,
                ..ListenerChanges::default()
            },
        })
    };
    modify(&mut w, None).unwrap();
    assert_eq!(alpn(&w), AlpnPolicy::Http2Preferred);
    modify(&mut w, Some(AlpnPolicy::Http1Only)).unwrap();
    assert_eq!(alpn(&w), AlpnPolicy::Http1Only);
    assert_eq!(
        AlpnPolicy::parse("HTTP3Only").unwrap_err().code,
        ErrorCode::AlpnPolicyNotFound
    );

    // A TCP listener turned TLS takes the fixed 350 s, whatever it had.
    let mut plain = tls(None, ListenerProtocol::Tcp, None);
    plain.port = Some(7000);
    let tcp_listener = arn_of(w.run(Command::CreateListener(plain)));
    w.run(Command::ModifyListenerAttributes {
        arn: tcp_listener.clone(),
        changes: vec![(TCP_IDLE_TIMEOUT.into(), "6000".into())],
    })
    .unwrap();
    w.run(Command::ModifyListener {
        arn: tcp_listener.clone(),
        changes: ListenerChanges {
            protocol: Some(ListenerProtocol::Tls),
            certificate_arns: Some(vec![cert.clone()]),
            ..ListenerChanges::default()
        },
    })
    .unwrap();
    let attributes = &w.state.listeners[&tcp_listener].attributes;
    assert_eq!(attributes.get(TCP_IDLE_TIMEOUT), Some("350"));
}

#[test]
fn elastic_ips_come_from_the_pool_and_give_nodes_their_addresses() {
    let mut w = World::new();
    let eip = |w: &mut World| arn_of(w.run(Command::AllocateAddress));
    let (first, second) = (eip(&mut w), eip(&mut w));
    let ip = |w: &World, id: &str| w.state.addresses[id].public_ip;
    assert_eq!(ip(&w, &first).to_string(), "127.100.0.4");
    assert_eq!(ip(&w, &second).to_string(), "127.100.0.5");

    let subnets = [w.subnet("us-east-1a"), w.subnet("us-east-1b")];
    let create = |w: &mut World, kind, scheme, mappings: Vec<SubnetMapping>| {
        w.run(Command::CreateLoadBalancer(CreateLoadBalancer {
            name: "static".into(),
            kind,
            scheme: Some(scheme),
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids: subnets.to_vec(),
            subnet_mappings: mappings,
            security_groups: None,
            origin: Origin::Api,
        }))
    };
    let by_eip = |ids: [&str; 2]| {
        (0..2)
            .map(|i| SubnetMapping {
                subnet_id: subnets[i].clone(),
                allocation_id: Some(ids[i].to_owned()),
                ..SubnetMapping::default()
            })
            .collect::<Vec<_>>()
    };
    let code = |r: Result<Outcome>| r.unwrap_err().code;
    let (network, application) = (LoadBalancerKind::Network, LoadBalancerKind::Application);
    let facing = Scheme::InternetFacing;
    let refusals = [
        (
            create(&mut w, application, facing, by_eip([&first, &second])),
            ErrorCode::ValidationError,
        ),
        (
            create(&mut w, network, Scheme::Internal, by_eip([&first, &second])),
            ErrorCode::ValidationError,
        ),
        (
            create(&mut w, network, facing, by_eip([&first, "eipalloc-0"])),
            ErrorCode::AllocationIdNotFound,
        ),
        (
            create(&mut w, network, facing, by_eip([&first, &first])),
            ErrorCode::ValidationError,
        ),
    ];
    for (refused, expected) in refusals {
        assert_eq!(code(refused), expected);
    }
    assert!(w.state.load_balancers.is_empty() && w.state.nodes.is_empty());

    let lb = arn_of(create(&mut w, network, facing, by_eip([&first, &second])));
    // A repeated create is answered with the same load balancer; other addresses are not it.
    let again = arn_of(create(&mut w, network, facing, by_eip([&first, &second])));
    assert_eq!(again, lb);
    let third = eip(&mut w);
    let other = create(&mut w, network, facing, by_eip([&first, &third]));
    assert_eq!(code(other), ErrorCode::DuplicateLoadBalancerName);
    let publics: Vec<_> = w.state.nodes_of(&lb).map(|n| n.public_ipv4).collect();
    assert_eq!(publics, [Some(ip(&w, &first)), Some(ip(&w, &second))]);
    assert_eq!(
        code(w.run(Command::ReleaseAddress {
            allocation_id: first.clone()
        })),
        ErrorCode::InvalidIpAddressInUse
    );
    w.run(Command::DeleteLoadBalancer { arn: lb }).unwrap();
    assert!(w.state.addresses.values().all(|a| a.association.is_none()));
    w.run(Command::ReleaseAddress {
        allocation_id: first,
    })
    .unwrap();
    assert_eq!(
        eip(&mut w),
        ip_id_at(&w, "127.100.0.4"),
        "a released address is taken again"
    );

    // An internal load balancer on a chosen private address, which must be the subnet's.
    let at = |ip: &str| {
        vec![SubnetMapping {
            subnet_id: subnets[0].clone(),
            private_ipv4: Some(ip.parse().unwrap()),
            ..SubnetMapping::default()
        }]
    };
    let outside = create(&mut w, network, Scheme::Internal, at("10.9.9.9"));
    assert_eq!(code(outside), ErrorCode::InvalidConfigurationRequest);
    let lb = arn_of(create(&mut w, network, Scheme::Internal, at("127.1.200.7")));
    let chosen = w.state.nodes_of(&lb).find(|n| n.subnet_id == subnets[0]);
    assert_eq!(chosen.unwrap().private_ipv4.to_string(), "127.1.200.7");
}

/// The allocation id of the Elastic IP at `ip`.
fn ip_id_at(w: &World, ip: &str) -> String {
    w.state
        .addresses
        .values()
        .find(|a| a.public_ip.to_string() == ip)
        .map(|a| a.allocation_id.clone())
        .unwrap()
}

#[test]
fn an_alb_target_stands_for_its_nodes_in_reach() {
    let mut w = World::new();
    let alb = arn_of(w.alb("inner", &["us-east-1a", "us-east-1b"]));
    let web = w.target_group("web");
    arn_of(w.listener_of(&alb, ListenerProtocol::Http, vec![Action::forward(&web)]));
    let nlb = w.nlb("outer");
    assert_eq!(
        w.group("udp-alb", "UDP", "alb").unwrap_err().code,
        ErrorCode::ValidationError
    );
    let stray = arn_of(w.group("stray", "TCP", "alb"));
    let front = arn_of(w.run(Command::CreateTargetGroup(CreateTargetGroup {
        name: "front".into(),
        protocol: Some("TCP".into()),
        protocol_version: ProtocolVersion::Http1,
        port: Some(7000),
        vpc_id: None,
        target_type: "alb".into(),
        ip_address_type: None,
        origin: Origin::Api,
    })));
    assert_eq!(w.state.target_groups[&front].health_check.protocol, "HTTP");
    let tcp_check = w.run(Command::ModifyTargetGroup {
        arn: front.clone(),
        health_check: HealthCheckChanges {
            protocol: Some("TCP".into()),
            ..Default::default()
        },
    });
    assert_eq!(tcp_check.unwrap_err().code, ErrorCode::ValidationError);

    let register = |w: &mut World, tg: &str, id: &str, port: Option<u16>| {
        w.run(Command::RegisterTargets {
            target_group_arn: tg.to_owned(),
            targets: vec![TargetDescription {
                id: id.into(),
                port,
                availability_zone: None,
            }],
        })
    };
    let refusals = [
        (
            &stray,
            &alb,
            None,
            ErrorCode::InvalidTarget,
            "no listener on 9100",
        ),
        (
            &front,
            &alb,
            Some(8080),
            ErrorCode::ValidationError,
            "not the group's port",
        ),
        (
            &front,
            &nlb,
            None,
            ErrorCode::ValidationError,
            "not an application load balancer",
        ),
    ];
    for (tg, id, port, code, why) in refusals {
        let refused = register(&mut w, tg, id, port).unwrap_err();
        assert_eq!(refused.code, code, "{why}: {refused:?}");
    }
    register(&mut w, &front, &alb, None).unwrap();

    // Each NLB node reaches the ALB's node in its zone; with cross-zone on, both.
    let zone_of = |w: &World, ip: std::net::IpAddr| {
        let node = w
            .state
            .nodes
            .values()
            .find(|n| IpAddr::V4(n.private_ipv4) == ip);
        node.unwrap().availability_zone.clone()
    };
    let reach = |w: &World| -> Vec<Vec<String>> {
        let tg = &w.state.target_groups[&front];
        w.state
            .nodes_of(&nlb)
            .map(|node| {
                w.state
                    .in_reach(node, tg)
                    .map(|r| zone_of(w, r.address))
                    .collect()
            })
            .collect()
    };
    assert_eq!(reach(&w), [vec!["us-east-1a"], vec!["us-east-1b"]]);
    w.run(Command::ModifyLoadBalancerAttributes {
        arn: nlb.clone(),
        changes: vec![("load_balancing.cross_zone.enabled".into(), "true".into())],
    })
    .unwrap();
    assert_eq!(
        reach(&w),
        [
            vec!["us-east-1a", "us-east-1b"],
            vec!["us-east-1a", "us-east-1b"]
        ]
    );
    let in_use = w.run(Command::DeleteLoadBalancer { arn: alb.clone() });
    assert_eq!(in_use.unwrap_err().code, ErrorCode::ResourceInUse);
}

#[test]
fn set_subnets_takes_a_new_zones_chosen_address_and_keeps_the_others() {
    let mut w = World::new();
    let lb = w.nlb("flows");
    let node_in = |w: &World, zone: &str| {
        w.state
            .nodes_of(&lb)
            .find(|n| n.availability_zone == zone)
            .map(|n| n.private_ipv4)
    };
    let (a, c) = (w.subnet("us-east-1a"), w.subnet("us-east-1c"));
    let a_ip = node_in(&w, "us-east-1a").unwrap();
    let chosen = std::net::Ipv4Addr::from(u32::from(w.state.subnets[&c].cidr.network()) + 77);
    let mapping = |subnet: &str, ip| SubnetMapping {
        subnet_id: subnet.to_owned(),
        private_ipv4: Some(ip),
        ..SubnetMapping::default()
    };
    let set = |w: &mut World, mappings: Vec<SubnetMapping>| {
        w.run(Command::SetSubnets {
            arn: lb.clone(),
            subnet_ids: vec![a.clone(), c.clone()],
            subnet_mappings: mappings,
            ip_address_type: None,
            ipv6_source_nat: None,
        })
    };
    let moved = set(&mut w, vec![mapping(&a, chosen), mapping(&c, chosen)]);
    assert!(moved.unwrap_err().message.contains("keeps its addresses"));
    assert_eq!(
        node_in(&w, "us-east-1c"),
        None,
        "a refused call changed nothing"
    );
    set(&mut w, vec![mapping(&a, a_ip), mapping(&c, chosen)]).unwrap();
    assert_eq!(node_in(&w, "us-east-1a"), Some(a_ip));
    assert_eq!(node_in(&w, "us-east-1c"), Some(chosen));
    assert_eq!(node_in(&w, "us-east-1b"), None);
}

#[test]
fn privatelink_inbound_rules_are_a_guarded_network_load_balancers_setting() {
    let mut w = World::new();
    let sg = w
        .state
        .security_groups
        .values()
        .find(|g| g.name == "default")
        .unwrap()
        .id
        .clone();
    let nlb = w.created(Command::CreateLoadBalancer(CreateLoadBalancer {
        name: "guarded".into(),
        kind: LoadBalancerKind::Network,
        scheme: None,
        ip_address_type: None,
        ipv6_source_nat: None,
        subnet_ids: vec![w.subnet("us-east-1a")],
        subnet_mappings: vec![],
        security_groups: Some(vec![sg.clone()]),
        origin: Origin::Api,
    }));
    assert!(
        w.state.load_balancers[&nlb].privatelink_inbound_rules,
        "AWS's default: on"
    );
    let set = |w: &mut World, arn: &str, on| {
        w.run(Command::SetSecurityGroups {
            arn: arn.to_owned(),
            security_groups: vec![sg.clone()],
            privatelink_inbound_rules: Some(on),
        })
    };
    set(&mut w, &nlb, false).unwrap();
    assert!(!w.state.load_balancers[&nlb].privatelink_inbound_rules);
    // Created with security groups, it may lose them all and have them back.
    let groups = |w: &mut World, groups: Vec<String>| {
        w.run(Command::SetSecurityGroups {
            arn: nlb.clone(),
            security_groups: groups,
            privatelink_inbound_rules: None,
        })
    };
    groups(&mut w, vec![]).unwrap();
    assert!(w.state.load_balancers[&nlb].security_groups.is_empty());
    groups(&mut w, vec![sg.clone()]).unwrap();
    assert_eq!(
        w.state.load_balancers[&nlb].security_groups,
        std::slice::from_ref(&sg)
    );
    let alb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    assert_eq!(
        set(&mut w, &alb, true).unwrap_err().code,
        ErrorCode::ValidationError
    );
}

/// The load balancer quota counts each type apart, as AWS's: a region at its quota of ALBs
/// still takes an NLB.
#[test]
fn the_load_balancer_quota_counts_each_type_apart() {
    let mut w = World::new();
    w.state.quotas.load_balancers_per_region = 1;
    let zones = ["us-east-1a", "us-east-1b"];
    w.alb("first", &zones).unwrap();
    let e = w.alb("second", &zones).unwrap_err();
    assert_eq!(e.code, ErrorCode::TooManyLoadBalancers);
    assert!(e.message.contains("1 application load balancers"), "{e:?}");
    w.nlb("network");
}
