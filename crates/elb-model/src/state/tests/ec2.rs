//! EC2: instances as targets, VPCs, subnets and security groups.

use super::*;

fn instance_tg(w: &mut World) -> String {
    w.created(Command::CreateTargetGroup(CreateTargetGroup {
        name: "instances".into(),
        protocol: Some("HTTP".into()),
        protocol_version: ProtocolVersion::Http1,
        port: Some(80),
        vpc_id: None,
        target_type: "instance".into(),
        ip_address_type: None,
        origin: Origin::Api,
    }))
}

fn run(w: &mut World, ip: Option<&str>) -> Result<Outcome> {
    let subnet_id = Some(w.subnet("us-east-1b"));
    w.run(Command::RunInstances(RunInstances {
        subnet_id,
        availability_zone: None,
        private_ip: ip.map(|ip| ip.parse().unwrap()),
        count: 1,
        security_groups: vec![],
        image_id: "ami-1".into(),
        instance_type: "t3.micro".into(),
        client_token: None,
        options: Default::default(),
    }))
}

#[test]
fn instances_get_addresses_and_become_targets_until_terminated() {
    let mut w = World::new();
    let Outcome::CreatedAll(ids) = run(&mut w, Some("127.2.0.20")).unwrap() else {
        panic!()
    };
    let id = ids[0].clone();
    assert!(id.starts_with("i-"));
    assert_eq!(
        run(&mut w, Some("127.2.0.20")).unwrap_err().code,
        ErrorCode::InvalidIpAddressInUse
    );
    assert_eq!(
        run(&mut w, Some("127.1.0.20")).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    assert_eq!(
        run(&mut w, Some("127.2.0.2")).unwrap_err().code,
        ErrorCode::InvalidParameterValue
    );
    let Outcome::CreatedAll(next) = run(&mut w, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        w.state.instances[&next[0]].private_ip.to_string(),
        "127.2.0.4"
    );

    let tg = instance_tg(&mut w);
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target(&id)],
    })
    .unwrap();
    let r = &w.state.target_groups[&tg].targets[0];
    assert_eq!(
        (r.address.to_string().as_str(), r.availability_zone.as_str()),
        ("127.2.0.20", "us-east-1b")
    );
    assert_eq!(
        w.run(Command::RegisterTargets {
            target_group_arn: tg.clone(),
            targets: vec![target("i-0000")]
        })
        .unwrap_err()
        .code,
        ErrorCode::InvalidTarget
    );
    // The API reference: an instance target takes no zone, and must be running.
    let mut zoned = target(&next[0]);
    zoned.availability_zone = Some("us-east-1b".into());
    let register = |w: &mut World, t| {
        w.run(Command::RegisterTargets {
            target_group_arn: tg.clone(),
            targets: vec![t],
        })
    };
    let refused = register(&mut w, zoned).unwrap_err();
    assert_eq!(refused.code, ErrorCode::ValidationError);
    w.run(Command::SetInstanceState {
        ids: vec![next[0].clone()],
        state: InstanceState::Stopped,
    })
    .unwrap();
    let refused = register(&mut w, target(&next[0])).unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidTarget);
    assert!(refused.message.contains("not in a running state"));
    // One registered before it stopped is registered again without a word (the config
    // file's reload does it).
    w.run(Command::SetInstanceState {
        ids: vec![id.clone()],
        state: InstanceState::Stopped,
    })
    .unwrap();
    register(&mut w, target(&id)).unwrap();
    w.run(Command::SetInstanceState {
        ids: vec![id.clone()],
        state: InstanceState::Terminated,
    })
    .unwrap();
    assert!(w.state.target_groups[&tg].targets.is_empty());
    let restart = w.run(Command::SetInstanceState {
        ids: vec![id],
        state: InstanceState::Running,
    });
    assert_eq!(restart.unwrap_err().code, ErrorCode::IncorrectInstanceState);
}

#[test]
fn ipv6_blocks_are_amazon_provided_56s_and_subnets_take_64s_of_them() {
    let mut w = World::new();
    let vpc = |w: &mut World| {
        w.created(Command::CreateVpc {
            cidr: "127.60.0.0/16".parse().unwrap(),
            instance_tenancy: crate::network::Tenancy::Default,
            amazon_ipv6: true,
        })
    };
    let (first, second) = (vpc(&mut w), vpc(&mut w));
    let block = |w: &World, id: &str| w.state.vpcs[id].ipv6_cidr_blocks.clone();
    assert_eq!(block(&w, &first), ["fd00:ec2::/56".parse().unwrap()]);
    assert_eq!(block(&w, &second), ["fd00:ec2:0:100::/56".parse().unwrap()]);
    let subnet = |cidr: &str, ipv6: &str| Command::CreateSubnet {
        vpc_id: first.clone(),
        cidr: cidr.parse().unwrap(),
        ipv6_cidr: Some(ipv6.parse().unwrap()),
        availability_zone: "us-east-1a".into(),
    };
    let s = w.created(subnet("127.60.1.0/24", "fd00:ec2:0:1::/64"));
    assert!(w.state.subnets[&s].contains("fd00:ec2:0:1::9".parse().unwrap()));
    for (ipv6, code) in [
        ("fd00:ec2:0:1::/64", ErrorCode::InvalidSubnetConflict),
        ("fd00:ec2:0:100::/64", ErrorCode::InvalidSubnetRange),
        ("fd00:ec2:0:2::/60", ErrorCode::InvalidSubnetRange),
    ] {
        let refused = w.run(subnet("127.60.2.0/24", ipv6)).unwrap_err();
        assert_eq!(refused.code, code, "{ipv6}: {}", refused.message);
    }
}

#[test]
fn vpcs_subnets_and_security_groups_check_their_ranges_and_dependencies() {
    let mut w = World::new();
    let vpc = w.created(Command::CreateVpc {
        cidr: "127.60.0.0/16".parse().unwrap(),
        instance_tenancy: crate::network::Tenancy::Dedicated,
        amazon_ipv6: false,
    });
    assert_eq!(
        w.state.vpcs[&vpc].instance_tenancy,
        crate::network::Tenancy::Dedicated
    );
    let bad = w.run(Command::CreateVpc {
        cidr: "127.0.0.0/8".parse().unwrap(),
        instance_tenancy: crate::network::Tenancy::Default,
        amazon_ipv6: false,
    });
    assert_eq!(bad.unwrap_err().code, ErrorCode::InvalidVpcRange);
    let subnet = |cidr: &str| Command::CreateSubnet {
        vpc_id: vpc.clone(),
        cidr: cidr.parse().unwrap(),
        ipv6_cidr: None,
        availability_zone: "us-east-1a".into(),
    };
    let s = w.created(subnet("127.60.1.0/24"));
    assert_eq!(
        w.run(subnet("127.60.1.128/25")).unwrap_err().code,
        ErrorCode::InvalidSubnetConflict
    );
    assert_eq!(
        w.run(subnet("127.61.0.0/24")).unwrap_err().code,
        ErrorCode::InvalidSubnetRange
    );
    assert_eq!(
        w.run(Command::DeleteVpc { id: vpc.clone() })
            .unwrap_err()
            .code,
        ErrorCode::DependencyViolation
    );

    let sg = w.created(Command::CreateSecurityGroup {
        name: "web".into(),
        description: "web".into(),
        vpc_id: Some(vpc.clone()),
    });
    let rule = crate::network::IngressRule {
        protocol: "tcp".into(),
        from_port: 80,
        to_port: 80,
        source: crate::network::IngressSource::Cidr("127.0.0.0/8".parse().unwrap()),
        description: None,
    };
    w.run(Command::AuthorizeIngress {
        group_id: sg.clone(),
        rules: vec![rule.clone()],
    })
    .unwrap();
    let dup = w.run(Command::AuthorizeIngress {
        group_id: sg.clone(),
        rules: vec![rule.clone()],
    });
    assert_eq!(dup.unwrap_err().code, ErrorCode::InvalidPermissionDuplicate);
    w.run(Command::RevokeIngress {
        group_id: sg.clone(),
        rules: vec![rule.clone()],
    })
    .unwrap();
    let gone = w.run(Command::RevokeIngress {
        group_id: sg.clone(),
        rules: vec![rule],
    });
    assert_eq!(gone.unwrap_err().code, ErrorCode::InvalidPermissionNotFound);

    w.run(Command::DeleteSecurityGroup { id: sg }).unwrap();
    w.run(Command::DeleteSubnet { id: s }).unwrap();
    w.run(Command::DeleteVpc { id: vpc.clone() }).unwrap();
    assert!(!w.state.vpcs.contains_key(&vpc));
    assert!(w.state.security_groups.values().all(|g| g.vpc_id != vpc));
}

#[test]
fn an_ip_target_in_the_vpc_but_in_no_subnet_is_refused_as_such() {
    let mut w = World::new();
    let vpc = w.created(Command::CreateVpc {
        cidr: "127.60.0.0/16".parse().unwrap(),
        instance_tenancy: crate::network::Tenancy::Default,
        amazon_ipv6: false,
    });
    w.created(Command::CreateSubnet {
        vpc_id: vpc.clone(),
        cidr: "127.60.1.0/24".parse().unwrap(),
        ipv6_cidr: None,
        availability_zone: "us-east-1a".into(),
    });
    let tg = w.created(Command::CreateTargetGroup(CreateTargetGroup {
        name: "in-vpc".into(),
        protocol: Some("HTTP".into()),
        protocol_version: ProtocolVersion::Http1,
        port: Some(9001),
        vpc_id: Some(vpc),
        target_type: "ip".into(),
        ip_address_type: None,
        origin: Origin::Api,
    }));
    let register = |w: &mut World, ip: &str| {
        w.run(Command::RegisterTargets {
            target_group_arn: tg.clone(),
            targets: vec![target(ip)],
        })
    };
    register(&mut w, "127.60.1.10").unwrap();
    let between = register(&mut w, "127.60.2.10").unwrap_err();
    assert_eq!(between.code, ErrorCode::InvalidTarget);
    assert!(
        between.message.contains("in none of its subnets"),
        "{between:?}"
    );
    // Not as an address outside the VPC either.
    let all = w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![TargetDescription {
            availability_zone: Some("all".into()),
            ..target("127.60.2.10")
        }],
    });
    assert!(all.unwrap_err().message.contains("in none of its subnets"));
    let outside = register(&mut w, "127.61.0.10").unwrap_err();
    assert!(outside.message.contains("outside the VPC"), "{outside:?}");
}
