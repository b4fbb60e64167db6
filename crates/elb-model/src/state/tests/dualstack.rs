//! Dual-stack load balancers: nodes' IPv6 addresses, subnet mappings that choose them, and
//! SetIpAddressType.

use super::*;
use crate::load_balancer::IpAddressType;

/// A VPC with an IPv6 block and a subnet with a /64 of it in zones a and b, and one without
/// in zone c.
fn dual_stack_subnets(w: &mut World) -> [String; 3] {
    let vpc = w.created(Command::CreateVpc {
        cidr: "127.60.0.0/16".parse().unwrap(),
        instance_tenancy: crate::network::Tenancy::Default,
        amazon_ipv6: true,
    });
    let mut subnet = |n: u8, zone: &str, ipv6: bool| {
        w.created(Command::CreateSubnet {
            vpc_id: vpc.clone(),
            cidr: format!("127.60.{n}.0/24").parse().unwrap(),
            ipv6_cidr: ipv6.then(|| format!("fd00:ec2:0:{n}::/64").parse().unwrap()),
            availability_zone: zone.into(),
        })
    };
    [
        subnet(1, "us-east-1a", true),
        subnet(2, "us-east-1b", true),
        subnet(3, "us-east-1c", false),
    ]
}

/// A load balancer named `name` of this kind and scheme, address type and source NAT switch.
fn named(
    w: &mut World,
    name: &str,
    (kind, scheme): (LoadBalancerKind, Scheme),
    (ip_address_type, ipv6_source_nat): (IpAddressType, Option<bool>),
    subnet_ids: &[String],
    subnet_mappings: Vec<SubnetMapping>,
) -> Result<Outcome> {
    w.run(Command::CreateLoadBalancer(CreateLoadBalancer {
        name: name.into(),
        kind,
        scheme: Some(scheme),
        ip_address_type: Some(ip_address_type),
        ipv6_source_nat,
        subnet_ids: subnet_ids.to_vec(),
        subnet_mappings,
        security_groups: None,
        origin: Origin::Api,
    }))
}

fn create(
    w: &mut World,
    kind_and_scheme: (LoadBalancerKind, Scheme),
    ip_address_type: IpAddressType,
    subnet_ids: &[String],
    subnet_mappings: Vec<SubnetMapping>,
) -> Result<Outcome> {
    let addressing = (ip_address_type, None);
    named(
        w,
        "dual",
        kind_and_scheme,
        addressing,
        subnet_ids,
        subnet_mappings,
    )
}

const NLB: (LoadBalancerKind, Scheme) = (LoadBalancerKind::Network, Scheme::Internal);
const PUBLIC_ALB: (LoadBalancerKind, Scheme) =
    (LoadBalancerKind::Application, Scheme::InternetFacing);

fn at(subnet: &str, ip: &str) -> Vec<SubnetMapping> {
    vec![SubnetMapping {
        subnet_id: subnet.to_owned(),
        ipv6: Some(ip.parse().unwrap()),
        ..SubnetMapping::default()
    }]
}

fn ipv6_of(w: &World, lb: &str) -> Vec<String> {
    let mut ips: Vec<String> = w
        .state
        .nodes_of(lb)
        .filter_map(|n| n.ipv6.map(|ip| ip.to_string()))
        .collect();
    ips.sort();
    ips
}

#[test]
fn dual_stack_nodes_take_ipv6_addresses_from_their_subnets() {
    let mut w = World::new();
    let [a, b, c] = dual_stack_subnets(&mut w);
    let code = |r: Result<Outcome>| r.unwrap_err().code;
    let both = [a.clone(), b.clone()];
    let dual = IpAddressType::Dualstack;
    // Every subnet needs an IPv6 block; a chosen address must be a usable one of its subnet,
    // and only a dual-stack load balancer takes one.
    let no_block = create(&mut w, NLB, dual, &[a.clone(), c.clone()], vec![]);
    assert_eq!(code(no_block), ErrorCode::InvalidSubnet);
    for (ip, ip_address_type) in [
        ("fd00:ec2:0:2::10", dual),
        ("fd00:ec2:0:1::2", dual),
        ("fd00:ec2:0:1::10", IpAddressType::Ipv4),
    ] {
        let refused = create(&mut w, NLB, ip_address_type, &both, at(&a, ip));
        assert_eq!(
            code(refused),
            ErrorCode::InvalidConfigurationRequest,
            "{ip}"
        );
    }
    let internal_without_public = create(
        &mut w,
        (LoadBalancerKind::Application, Scheme::Internal),
        IpAddressType::DualstackWithoutPublicIpv4,
        &both,
        vec![],
    );
    assert_eq!(
        code(internal_without_public),
        ErrorCode::InvalidConfigurationRequest
    );
    assert!(w.state.load_balancers.is_empty());

    let nlb = arn_of(create(&mut w, NLB, dual, &both, at(&a, "fd00:ec2:0:1::10")));
    assert_eq!(
        ipv6_of(&w, &nlb),
        ["fd00:ec2:0:1::10", "fd00:ec2:0:2:ffff:ffff:ffff:fffe"]
    );
    // Taken by the first: a second load balancer cannot choose it.
    let one = std::slice::from_ref(&a);
    let taken = named(
        &mut w,
        "other",
        NLB,
        (dual, None),
        one,
        at(&a, "fd00:ec2:0:1::10"),
    );
    assert_eq!(code(taken), ErrorCode::InvalidConfigurationRequest);
}

#[test]
fn set_ip_address_type_gives_and_takes_addresses() {
    let mut w = World::new();
    let [a, b, c] = dual_stack_subnets(&mut w);
    let alb = arn_of(create(
        &mut w,
        PUBLIC_ALB,
        IpAddressType::Ipv4,
        &[a.clone(), b.clone()],
        vec![],
    ));
    let set = |w: &mut World, ip_address_type| {
        w.run(Command::SetIpAddressType {
            arn: alb.clone(),
            ip_address_type,
        })
    };
    let public = |w: &World| {
        w.state
            .nodes_of(&alb)
            .filter(|n| n.public_ipv4.is_some())
            .count()
    };
    assert!(ipv6_of(&w, &alb).is_empty());
    assert_eq!(public(&w), 2);

    set(&mut w, IpAddressType::Dualstack).unwrap();
    let given = ipv6_of(&w, &alb);
    assert_eq!(given.len(), 2);
    // Without public IPv4, the IPv6 addresses stay; back to dual-stack, public ones return.
    set(&mut w, IpAddressType::DualstackWithoutPublicIpv4).unwrap();
    assert_eq!((ipv6_of(&w, &alb), public(&w)), (given.clone(), 0));
    set(&mut w, IpAddressType::Dualstack).unwrap();
    assert_eq!((ipv6_of(&w, &alb), public(&w)), (given, 2));
    set(&mut w, IpAddressType::Ipv4).unwrap();
    assert!(ipv6_of(&w, &alb).is_empty());
    assert_eq!(
        w.state.load_balancers[&alb].ip_address_type,
        IpAddressType::Ipv4
    );

    // A zone whose subnet has no IPv6 block cannot be added to a dual-stack one.
    set(&mut w, IpAddressType::Dualstack).unwrap();
    let refused = w.run(Command::SetSubnets {
        arn: alb.clone(),
        subnet_ids: vec![a, b, c],
        subnet_mappings: vec![],
        ip_address_type: None,
        ipv6_source_nat: None,
    });
    assert_eq!(refused.unwrap_err().code, ErrorCode::InvalidSubnet);
}

fn ipv6_group(
    w: &mut World,
    vpc: &str,
    name: &str,
    protocol: &str,
    target_type: &str,
) -> Result<Outcome> {
    w.run(Command::CreateTargetGroup(CreateTargetGroup {
        name: name.into(),
        protocol: Some(protocol.into()),
        protocol_version: ProtocolVersion::Http1,
        port: Some(9100),
        vpc_id: Some(vpc.to_owned()),
        target_type: target_type.into(),
        ip_address_type: Some(crate::target_group::TargetIpAddressType::Ipv6),
        origin: Origin::Api,
    }))
}

#[test]
fn ipv6_groups_take_ipv6_targets_and_dual_stack_load_balancers() {
    let mut w = World::new();
    let [a, b, _] = dual_stack_subnets(&mut w);
    let vpc = w.state.subnets[&a].vpc_id.clone();
    let code = |r: Result<Outcome>| r.unwrap_err().code;
    assert_eq!(
        code(ipv6_group(&mut w, &vpc, "inst6", "HTTP", "instance")),
        ErrorCode::InvalidConfigurationRequest
    );
    assert_eq!(
        code(ipv6_group(&mut w, &vpc, "alb6", "TCP", "alb")),
        ErrorCode::ValidationError
    );
    let tg = arn_of(ipv6_group(&mut w, &vpc, "web6", "HTTP", "ip"));
    let register = |w: &mut World, id: &str| {
        w.run(Command::RegisterTargets {
            target_group_arn: tg.clone(),
            targets: vec![target(id)],
        })
    };
    assert_eq!(
        code(register(&mut w, "127.60.1.10")),
        ErrorCode::ValidationError
    );
    register(&mut w, "fd00:ec2:0:1::20").unwrap();
    assert_eq!(
        w.state.target_groups[&tg].targets[0].availability_zone,
        "us-east-1a"
    );

    // An ipv4 load balancer does not forward to it; a dual-stack one does, and then stays so.
    let both = [a.clone(), b.clone()];
    let nlb = |w: &mut World, name: &str, ip_address_type| {
        named(w, name, NLB, (ip_address_type, None), &both, vec![])
    };
    let v4 = arn_of(nlb(&mut w, "v4", IpAddressType::Ipv4));
    let tcp6 = arn_of(ipv6_group(&mut w, &vpc, "tcp6", "TCP", "ip"));
    let forward = |w: &mut World, lb: &str, protocol| {
        w.listener_of(lb, protocol, vec![crate::rule::Action::forward(&tcp6)])
    };
    assert_eq!(
        code(forward(&mut w, &v4, ListenerProtocol::Tcp)),
        ErrorCode::InvalidConfigurationRequest
    );
    // Same name, another address type: not the same load balancer.
    assert_eq!(
        code(nlb(&mut w, "v4", IpAddressType::Dualstack)),
        ErrorCode::DuplicateLoadBalancerName
    );
    let dual = arn_of(nlb(&mut w, "dual", IpAddressType::Dualstack));
    forward(&mut w, &dual, ListenerProtocol::Tcp).unwrap();
    let back = w.run(Command::SetIpAddressType {
        arn: dual.clone(),
        ip_address_type: IpAddressType::Ipv4,
    });
    assert_eq!(code(back), ErrorCode::InvalidConfigurationRequest);
    // UDP on a dual-stack load balancer needs IPv6 source NAT prefixes.
    let udp = w.listener_of(&dual, ListenerProtocol::Udp, vec![]);
    assert_eq!(code(udp), ErrorCode::InvalidConfigurationRequest);
}

#[test]
fn set_subnets_may_make_a_load_balancer_dual_stack_with_the_addresses_it_names() {
    let mut w = World::new();
    let [a, b, _] = dual_stack_subnets(&mut w);
    let nlb = arn_of(create(
        &mut w,
        NLB,
        IpAddressType::Ipv4,
        std::slice::from_ref(&a),
        vec![],
    ));
    let mut mappings = at(&a, "fd00:ec2:0:1::30");
    mappings.extend(at(&b, "fd00:ec2:0:2::30"));
    w.run(Command::SetSubnets {
        arn: nlb.clone(),
        subnet_ids: vec![a, b],
        subnet_mappings: mappings,
        ip_address_type: Some(IpAddressType::Dualstack),
        ipv6_source_nat: None,
    })
    .unwrap();
    assert_eq!(ipv6_of(&w, &nlb), ["fd00:ec2:0:1::30", "fd00:ec2:0:2::30"]);
    assert_eq!(
        w.state.load_balancers[&nlb].ip_address_type,
        IpAddressType::Dualstack
    );
}

#[test]
fn source_nat_prefixes_are_80s_of_the_subnets_and_let_udp_in() {
    let mut w = World::new();
    let [a, b, _] = dual_stack_subnets(&mut w);
    let code = |r: Result<Outcome>| r.unwrap_err().code;
    let both = [a.clone(), b.clone()];
    let nat = |w: &mut World, kind, ip_address_type, mappings: Vec<SubnetMapping>| {
        let addressing = (ip_address_type, Some(true));
        named(
            w,
            "nat",
            (kind, Scheme::Internal),
            addressing,
            &both,
            mappings,
        )
    };
    let prefix = |subnet: &str, p: &str| SubnetMapping {
        subnet_id: subnet.to_owned(),
        source_nat_ipv6_prefix: Some(crate::state::SourceNatPrefix::Given(p.parse().unwrap())),
        ..SubnetMapping::default()
    };
    let (network, dual) = (LoadBalancerKind::Network, IpAddressType::Dualstack);
    let refused = [
        nat(&mut w, LoadBalancerKind::Application, dual, vec![]),
        nat(&mut w, network, IpAddressType::Ipv4, vec![]),
    ];
    // Not a /80, another subnet's, the first and the last (they hold reserved addresses).
    let bad_prefixes = [
        "fd00:ec2:0:1:1::/96",
        "fd00:ec2:0:2:1::/80",
        "fd00:ec2:0:1::/80",
        "fd00:ec2:0:1:ffff::/80",
    ]
    .map(|p| nat(&mut w, network, dual, vec![prefix(&a, p)]));
    for refused in refused.into_iter().chain(bad_prefixes) {
        assert_eq!(code(refused), ErrorCode::InvalidConfigurationRequest);
    }
    // Without source NAT, a mapping may not ask for a prefix, not even an automatic one.
    let auto = SubnetMapping {
        subnet_id: a.clone(),
        source_nat_ipv6_prefix: Some(crate::state::SourceNatPrefix::AutoAssigned),
        ..SubnetMapping::default()
    };
    let off = create(&mut w, NLB, dual, std::slice::from_ref(&a), vec![auto]);
    assert_eq!(code(off), ErrorCode::InvalidConfigurationRequest);

    let lb = arn_of(nat(
        &mut w,
        network,
        dual,
        vec![prefix(&a, "fd00:ec2:0:1:1::/80")],
    ));
    let prefixes = |w: &World| -> Vec<String> {
        let mut p: Vec<String> = w
            .state
            .nodes_of(&lb)
            .filter_map(|n| n.source_nat_ipv6_prefix.map(|p| p.to_string()))
            .collect();
        p.sort();
        p
    };
    // Zone b's is the lowest /80 past the first (its node's address is at the top).
    assert_eq!(prefixes(&w), ["fd00:ec2:0:1:1::/80", "fd00:ec2:0:2:1::/80"]);
    // Prefixes are address space of their own: no node address or target may be in one.
    let one = std::slice::from_ref(&a);
    let inside = named(
        &mut w,
        "inside",
        NLB,
        (dual, None),
        one,
        at(&a, "fd00:ec2:0:1:1::1"),
    );
    assert_eq!(code(inside), ErrorCode::InvalidConfigurationRequest);
    let node_a = w.state.nodes_of(&lb).find(|n| n.subnet_id == a).unwrap();
    assert_eq!(node_a.source(true).to_string(), "fd00:ec2:0:1:1::1");
    // UDP gets past the source NAT check (to the actions' own).
    let udp = w.listener_of(&lb, ListenerProtocol::Udp, vec![]);
    assert_eq!(code(udp), ErrorCode::ValidationError);
    // Not ipv4 while source NAT is on; off (by SetSubnets), the prefixes go, and then ipv4.
    let to_ipv4 = |w: &mut World| {
        w.run(Command::SetIpAddressType {
            arn: lb.clone(),
            ip_address_type: IpAddressType::Ipv4,
        })
    };
    assert_eq!(
        code(to_ipv4(&mut w)),
        ErrorCode::InvalidConfigurationRequest
    );
    w.run(Command::SetSubnets {
        arn: lb.clone(),
        subnet_ids: vec![a.clone(), b.clone()],
        subnet_mappings: vec![],
        ip_address_type: None,
        ipv6_source_nat: Some(false),
    })
    .unwrap();
    assert!(prefixes(&w).is_empty());
    to_ipv4(&mut w).unwrap();
    assert!(!w.state.load_balancers[&lb].ipv6_source_nat);
}

#[test]
fn only_network_load_balancers_choose_addresses_for_kept_zones() {
    let mut w = World::new();
    let [a, b, _] = dual_stack_subnets(&mut w);
    let alb = arn_of(create(
        &mut w,
        PUBLIC_ALB,
        IpAddressType::Ipv4,
        &[a.clone(), b.clone()],
        vec![],
    ));
    let chosen = w.run(Command::SetSubnets {
        arn: alb,
        subnet_ids: vec![a.clone(), b],
        subnet_mappings: at(&a, "fd00:ec2:0:1::40"),
        ip_address_type: Some(IpAddressType::Dualstack),
        ipv6_source_nat: None,
    });
    assert_eq!(chosen.unwrap_err().code, ErrorCode::ValidationError);
}
