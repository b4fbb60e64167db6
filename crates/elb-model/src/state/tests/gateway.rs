//! Gateway load balancers: what they, their one listener and GENEVE groups accept, as AWS.

use super::*;
use crate::attributes::{FAILOVER_ON_DEREGISTRATION, FAILOVER_ON_UNHEALTHY, TCP_IDLE_TIMEOUT};
use crate::endpoint::EndpointState;
use crate::state::ConnectionAnswer;
use crate::target_group::TargetGroupProtocol;

impl World {
    fn gateway(&mut self, name: &str, scheme: Option<Scheme>) -> Result<Outcome> {
        let subnet_ids = vec![self.subnet("us-east-1a")];
        self.run(Command::CreateLoadBalancer(CreateLoadBalancer {
            name: name.into(),
            kind: LoadBalancerKind::Gateway,
            scheme,
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids,
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        }))
    }

    fn geneve_group(&mut self, name: &str, port: u16, target_type: &str) -> Result<Outcome> {
        self.run(Command::CreateTargetGroup(CreateTargetGroup {
            name: name.into(),
            protocol: Some("GENEVE".into()),
            protocol_version: ProtocolVersion::Http1,
            port: Some(port),
            vpc_id: None,
            target_type: target_type.into(),
            ip_address_type: None,
            origin: Origin::Api,
        }))
    }

    fn listener_with(
        &mut self,
        lb: &str,
        protocol: Option<ListenerProtocol>,
        port: Option<u16>,
        tg: &str,
    ) -> Result<Outcome> {
        self.run(Command::CreateListener(CreateListener {
            load_balancer_arn: lb.into(),
            protocol,
            port,
            default_actions: vec![Action::forward(tg)],
            default_action_orders: Vec::new(),
            ssl_policy: None,
            certificate_arns: vec![],
            mutual_authentication: None,
            alpn_policy: None,
            origin: Origin::Api,
        }))
    }
}

fn message(out: Result<Outcome>) -> (ErrorCode, String) {
    let e = out.unwrap_err();
    (e.code, e.message)
}

#[test]
fn a_gateway_has_no_scheme_and_private_nodes_only() {
    let mut w = World::new();
    let (code, text) = message(w.gateway("gw", Some(Scheme::Internal)));
    assert_eq!(code, ErrorCode::ValidationError);
    assert_eq!(
        text,
        "A scheme cannot be specified for gateway load balancers"
    );
    let lb = arn_of(w.gateway("gw", None));
    assert!(lb.contains(":loadbalancer/gwy/gw/"), "{lb}");
    let nodes: Vec<_> = w.state.nodes_of(&lb).collect();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].public_ipv4, None);
    let attrs = &w.state.load_balancers[&lb].attributes;
    let keys: Vec<_> = attrs.iter().collect();
    assert_eq!(
        keys,
        [
            ("deletion_protection.enabled", "false"),
            ("load_balancing.cross_zone.enabled", "false")
        ]
    );
}

#[test]
fn geneve_groups_take_port_6081_instance_or_ip_targets_and_aws_defaults() {
    let mut w = World::new();
    let (_, text) = message(w.geneve_group("appl", 6082, "ip"));
    assert!(text.contains("use port 6081, not 6082"), "{text}");
    let (_, text) = message(w.geneve_group("appl", 6081, "alb"));
    assert_eq!(text, "Target type 'alb' needs the TCP protocol, not GENEVE");
    let tg = arn_of(w.geneve_group("appl", 6081, "ip"));
    let group = &w.state.target_groups[&tg];
    assert_eq!(group.protocol, TargetGroupProtocol::Geneve);
    let hc = &group.health_check;
    assert_eq!(
        (hc.protocol.as_str(), hc.port.as_str(), hc.interval_seconds),
        ("TCP", "80", 10)
    );
    assert_eq!(
        (
            hc.timeout_seconds,
            hc.healthy_threshold,
            hc.unhealthy_threshold
        ),
        (5, 5, 2)
    );
    let attrs: Vec<_> = group.attributes.iter().collect();
    assert_eq!(
        attrs,
        [
            ("deregistration_delay.timeout_seconds", "300"),
            ("stickiness.enabled", "false"),
            ("stickiness.type", "source_ip_dest_ip_proto"),
            (FAILOVER_ON_DEREGISTRATION, "no_rebalance"),
            (FAILOVER_ON_UNHEALTHY, "no_rebalance"),
        ]
    );
    // The check may move to HTTP; its timeout stays AWS's 5 s.
    let changes = HealthCheckChanges {
        protocol: Some("HTTP".into()),
        ..HealthCheckChanges::default()
    };
    w.run(Command::ModifyTargetGroup {
        arn: tg.clone(),
        health_check: changes,
    })
    .unwrap();
    assert_eq!(w.state.target_groups[&tg].health_check.timeout_seconds, 5);
    let register = |port| Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![TargetDescription {
            port,
            ..target("127.1.0.50")
        }],
    };
    let (_, text) = message(w.run(register(Some(80))));
    assert!(text.contains("not 80"), "{text}");
    w.run(register(None)).unwrap();
    assert_eq!(w.state.target_groups[&tg].targets[0].port, 6081);
}

#[test]
fn geneve_attributes_are_checked_and_failover_keys_move_together() {
    let mut w = World::new();
    let tg = arn_of(w.geneve_group("appl", 6081, "instance"));
    let modify = |w: &mut World, changes: &[(&str, &str)]| {
        w.run(Command::ModifyTargetGroupAttributes {
            arn: tg.clone(),
            changes: changes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
    };
    let (_, text) = message(modify(&mut w, &[(FAILOVER_ON_UNHEALTHY, "rebalance")]));
    assert!(text.contains("must have the same value"), "{text}");
    modify(
        &mut w,
        &[
            (FAILOVER_ON_UNHEALTHY, "rebalance"),
            (FAILOVER_ON_DEREGISTRATION, "rebalance"),
        ],
    )
    .unwrap();
    let (_, text) = message(modify(&mut w, &[("stickiness.type", "source_ip")]));
    assert!(
        text.contains("source_ip_dest_ip_proto, source_ip_dest_ip"),
        "{text}"
    );
    modify(
        &mut w,
        &[
            ("stickiness.enabled", "true"),
            ("stickiness.type", "source_ip_dest_ip"),
        ],
    )
    .unwrap();
    let (_, text) = message(modify(
        &mut w,
        &[("load_balancing.cross_zone.enabled", "true")],
    ));
    assert!(
        text.contains("not a valid target group attribute"),
        "{text}"
    );
}

#[test]
fn a_gateway_has_one_listener_without_protocol_or_port_forwarding_to_geneve() {
    let mut w = World::new();
    let lb = arn_of(w.gateway("gw", None));
    let geneve = arn_of(w.geneve_group("appl", 6081, "ip"));
    let tcp = w.target_group("web");
    let (_, text) = message(w.listener_with(&lb, Some(ListenerProtocol::Tcp), Some(80), &geneve));
    assert_eq!(text, "A protocol cannot be specified for gateway listeners");
    let (_, text) = message(w.listener_with(&lb, None, Some(6081), &geneve));
    assert_eq!(text, "A port cannot be specified for gateway listeners");
    let (code, _) = message(w.listener_with(&lb, None, None, &tcp));
    assert_eq!(code, ErrorCode::IncompatibleProtocols);
    let listener = arn_of(w.listener_with(&lb, None, None, &geneve));
    let l = &w.state.listeners[&listener];
    assert_eq!((l.protocol, l.port), (ListenerProtocol::Geneve, 6081));
    assert_eq!(l.attributes.get(TCP_IDLE_TIMEOUT), Some("350"));
    assert_eq!(
        arn_of(w.listener_with(&lb, None, None, &geneve)),
        listener,
        "an identical create is idempotent"
    );
    let other = arn_of(w.geneve_group("other", 6081, "ip"));
    let (code, _) = message(w.listener_with(&lb, None, None, &other));
    assert_eq!(code, ErrorCode::DuplicateListener);
    let changes = ListenerChanges {
        port: Some(6081),
        ..ListenerChanges::default()
    };
    let (_, text) = message(w.run(Command::ModifyListener {
        arn: listener.clone(),
        changes,
    }));
    assert_eq!(text, "A port cannot be specified for gateway listeners");
    // A GENEVE group is a gateway's: an application load balancer cannot forward to it.
    let alb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let (code, _) = message(w.listener(&alb, 80, &other));
    assert_eq!(code, ErrorCode::IncompatibleProtocols);
    let (_, text) =
        message(w.listener_with(&alb, Some(ListenerProtocol::Geneve), Some(6081), &other));
    assert_eq!(
        text,
        "Listener protocol 'GENEVE' must be one of 'HTTPS, HTTP'"
    );
}

impl World {
    fn endpoint_service(
        &mut self,
        gateways: &[&str],
        acceptance_required: bool,
    ) -> Result<Outcome> {
        self.run(Command::CreateVpcEndpointService {
            gateway_load_balancer_arns: gateways.iter().map(|a| (*a).to_owned()).collect(),
            acceptance_required,
            client_token: None,
        })
    }

    fn endpoint(&mut self, service: &str, zones: &[&str]) -> Result<Outcome> {
        let service_name = self.state.endpoint_services[service].name.clone();
        let subnet_ids = zones.iter().map(|z| self.subnet(z)).collect();
        let vpc_id = self.state.subnets[&self.subnet("us-east-1a")]
            .vpc_id
            .clone();
        self.run(Command::CreateVpcEndpoint(CreateVpcEndpoint {
            service_name,
            vpc_id,
            subnet_ids,
            client_token: None,
        }))
    }
}

#[test]
fn an_endpoint_service_offers_gateways_and_endpoints_connect_in_their_zones() {
    let mut w = World::new();
    let gw = arn_of(w.gateway("gw", None));
    let alb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    assert_eq!(
        message(w.endpoint_service(&[], false)).0,
        ErrorCode::InvalidParameter
    );
    let (_, text) = message(w.endpoint_service(&[&alb], false));
    assert!(text.contains("not a gateway"), "{text}");
    let service = arn_of(w.endpoint_service(&[&gw], false));
    assert!(
        service.starts_with("vpce-svc-") && service.len() == 26,
        "{service}"
    );
    assert_eq!(
        w.state.endpoint_services[&service].name,
        format!("com.amazonaws.vpce.us-east-1.{service}")
    );
    let (_, text) = message(w.endpoint_service(&[&gw], false));
    assert!(text.contains("already offered"), "{text}");

    let (_, text) = message(w.endpoint(&service, &["us-east-1a", "us-east-1b"]));
    assert!(text.contains("only one subnet"), "{text}");
    let (_, text) = message(w.endpoint(&service, &["us-east-1b"]));
    assert!(
        text.contains("no gateway load balancer in us-east-1b"),
        "{text}"
    );
    let endpoint = arn_of(w.endpoint(&service, &["us-east-1a"]));
    assert!(
        endpoint.starts_with("vpce-0") && endpoint.len() == 22,
        "{endpoint}"
    );
    let e = &w.state.vpc_endpoints[&endpoint];
    assert_eq!(e.state, EndpointState::Pending);
    let node = w.state.gateway_node_for(&service, "us-east-1a").unwrap();
    assert_eq!(node.load_balancer_arn, gw);
    let (_, text) = message(w.endpoint(&service, &["us-east-1a"]));
    assert!(text.contains("already has endpoint"), "{text}");

    // Neither the gateway nor the service can go while in use.
    assert_eq!(
        message(w.run(Command::DeleteLoadBalancer { arn: gw.clone() })).0,
        ErrorCode::ResourceInUse
    );
    let out = w
        .run(Command::DeleteVpcEndpointServices {
            ids: vec![service.clone(), "vpce-svc-00000000000000000".into()],
        })
        .unwrap();
    let Outcome::Unsuccessful(items) = out else {
        panic!("{out:?}")
    };
    let codes: Vec<_> = items.iter().map(|(id, e)| (id.as_str(), e.code)).collect();
    assert_eq!(
        codes,
        [
            (service.as_str(), ErrorCode::ExistingVpcEndpointConnections),
            (
                "vpce-svc-00000000000000000",
                ErrorCode::InvalidVpcEndpointServiceNotFound
            )
        ]
    );
    w.run(Command::SettleVpcEndpoint {
        id: endpoint.clone(),
        failure: Some("no TUN device".into()),
    })
    .unwrap();
    let e = &w.state.vpc_endpoints[&endpoint];
    assert_eq!(
        (e.state, e.last_error.as_deref()),
        (EndpointState::Failed, Some("no TUN device"))
    );
    let out = w
        .run(Command::DeleteVpcEndpoints {
            ids: vec![endpoint.clone(), endpoint.clone()],
        })
        .unwrap();
    let Outcome::Unsuccessful(items) = out else {
        panic!("{out:?}")
    };
    assert_eq!(items.len(), 1, "the second is gone already");
    assert_eq!(items[0].1.code, ErrorCode::InvalidVpcEndpointNotFound);
    let out = w
        .run(Command::DeleteVpcEndpointServices {
            ids: vec![service.clone()],
        })
        .unwrap();
    assert_eq!(out, Outcome::Unsuccessful(vec![]));
    w.run(Command::DeleteLoadBalancer { arn: gw }).unwrap();
}

#[test]
fn endpoints_of_a_service_that_requires_acceptance_wait_for_it() {
    let mut w = World::new();
    let gw = arn_of(w.gateway("gw", None));
    let service = arn_of(w.endpoint_service(&[&gw], true));
    let first = arn_of(w.endpoint(&service, &["us-east-1a"]));
    assert_eq!(
        w.state.vpc_endpoints[&first].state,
        EndpointState::PendingAcceptance
    );
    let answer = |w: &mut World, ids: &[&str], answer| {
        w.run(Command::AnswerVpcEndpointConnections {
            service_id: service.clone(),
            endpoint_ids: ids.iter().map(|i| (*i).to_owned()).collect(),
            answer,
        })
        .unwrap()
    };
    assert_eq!(
        answer(&mut w, &[&first], ConnectionAnswer::Accept),
        Outcome::Unsuccessful(vec![])
    );
    assert_eq!(
        w.state.vpc_endpoints[&first].state,
        EndpointState::Available
    );
    let Outcome::Unsuccessful(again) =
        answer(&mut w, &[&first, "vpce-0nope"], ConnectionAnswer::Accept)
    else {
        panic!()
    };
    let codes: Vec<_> = again.iter().map(|(_, e)| e.code).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::InvalidState,
            ErrorCode::InvalidVpcEndpointIdNotFound
        ]
    );
    answer(&mut w, &[&first], ConnectionAnswer::Reject);
    assert_eq!(w.state.vpc_endpoints[&first].state, EndpointState::Rejected);
    // A rejected endpoint no longer holds the service.
    let out = w
        .run(Command::DeleteVpcEndpointServices {
            ids: vec![service.clone()],
        })
        .unwrap();
    assert_eq!(out, Outcome::Unsuccessful(vec![]));
    assert_eq!(
        message(w.run(Command::ModifyVpcEndpointService {
            id: service,
            changes: EndpointServiceChanges::default()
        }))
        .0,
        ErrorCode::InvalidVpcEndpointServiceIdNotFound
    );
}

#[test]
fn client_tokens_make_creates_idempotent_and_an_endpoint_holds_its_subnet() {
    let mut w = World::new();
    let gw = arn_of(w.gateway("gw", None));
    let create_service = |token: &str, acceptance_required| Command::CreateVpcEndpointService {
        gateway_load_balancer_arns: vec![gw.clone()],
        acceptance_required,
        client_token: Some(token.into()),
    };
    let service = arn_of(w.run(create_service("t1", false)));
    assert_eq!(arn_of(w.run(create_service("t1", false))), service);
    assert_eq!(
        message(w.run(create_service("t1", true))).0,
        ErrorCode::IdempotentParameterMismatch
    );
    let subnet = w.subnet("us-east-1a");
    let vpc_id = w.state.subnets[&subnet].vpc_id.clone();
    let create_endpoint = CreateVpcEndpoint {
        service_name: w.state.endpoint_services[&service].name.clone(),
        vpc_id,
        subnet_ids: vec![subnet.clone()],
        client_token: Some("t2".into()),
    };
    let endpoint = arn_of(w.run(Command::CreateVpcEndpoint(create_endpoint.clone())));
    let again = w.run(Command::CreateVpcEndpoint(create_endpoint));
    assert_eq!(arn_of(again), endpoint, "a retry gets the same endpoint");
    assert_eq!(w.state.vpc_endpoints.len(), 1);
    // (Its VPC keeps the subnet, so it cannot go either.)
    let delete_subnet = w.run(Command::DeleteSubnet { id: subnet });
    assert_eq!(message(delete_subnet).0, ErrorCode::DependencyViolation);
}
