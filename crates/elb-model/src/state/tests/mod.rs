use super::*;
use crate::error::ErrorCode;
use crate::id::SequentialIds;
use crate::load_balancer::LoadBalancerState;
use crate::network::InstanceState;
use crate::rule::Condition;
use crate::state::RunInstances;
use crate::target_group::{HealthCheckChanges, TargetId};

mod access;
mod authenticate;
mod dualstack;
mod ec2;
mod gateway;
mod lambda;
mod nlb;

struct World {
    state: Region,
    ids: SequentialIds,
}

impl World {
    fn new() -> Self {
        let mut w = Self {
            state: Region::new(Scope::default()),
            ids: SequentialIds::default(),
        };
        w.run(Command::SeedNetwork(Topology::default())).unwrap();
        w
    }

    /// Applies on a clone and keeps it only on success, as the store does.
    fn run(&mut self, command: Command) -> Result<Outcome> {
        let mut next = self.state.clone();
        let mut cx = Context {
            ids: &mut self.ids,
            now_ms: 1_700_000_000_000,
        };
        let out = next.apply(command, &mut cx)?;
        self.state = next;
        Ok(out)
    }

    fn created(&mut self, command: Command) -> String {
        match self.run(command).unwrap() {
            Outcome::Created(arn) => arn,
            other => panic!("nothing created: {other:?}"),
        }
    }

    fn subnet(&self, az: &str) -> String {
        self.state
            .subnets
            .values()
            .find(|s| s.availability_zone == az)
            .unwrap()
            .id
            .clone()
    }

    fn alb(&mut self, name: &str, zones: &[&str]) -> Result<Outcome> {
        let subnet_ids = zones.iter().map(|z| self.subnet(z)).collect();
        self.run(Command::CreateLoadBalancer(CreateLoadBalancer {
            name: name.into(),
            kind: LoadBalancerKind::Application,
            scheme: None,
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids,
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        }))
    }

    fn target_group(&mut self, name: &str) -> String {
        self.created(Command::CreateTargetGroup(CreateTargetGroup {
            name: name.into(),
            protocol: Some("HTTP".into()),
            protocol_version: ProtocolVersion::Http1,
            port: Some(9001),
            vpc_id: None,
            target_type: "ip".into(),
            ip_address_type: None,
            origin: Origin::Api,
        }))
    }

    fn listener(&mut self, lb: &str, port: u16, tg: &str) -> Result<Outcome> {
        self.run(Command::CreateListener(CreateListener {
            load_balancer_arn: lb.into(),
            protocol: Some(ListenerProtocol::Http),
            port: Some(port),
            default_actions: vec![Action::forward(tg)],
            default_action_orders: Vec::new(),
            ssl_policy: None,
            certificate_arns: vec![],
            mutual_authentication: None,
            alpn_policy: None,
            origin: Origin::Api,
        }))
    }

    fn https_listener(
        &mut self,
        lb: &str,
        tg: &str,
        policy: Option<&str>,
        certificates: &[&str],
    ) -> Result<Outcome> {
        self.run(Command::CreateListener(CreateListener {
            load_balancer_arn: lb.into(),
            protocol: Some(ListenerProtocol::Https),
            port: Some(443),
            default_actions: vec![Action::forward(tg)],
            default_action_orders: Vec::new(),
            ssl_policy: policy.map(str::to_owned),
            certificate_arns: certificates.iter().map(|c| (*c).to_owned()).collect(),
            mutual_authentication: None,
            alpn_policy: None,
            origin: Origin::Api,
        }))
    }

    fn certificate(&mut self, name: &str) -> String {
        let material = CertificateMaterial {
            certificate_pem: format!("cert of {name}"),
            chain_pem: String::new(),
            private_key_pem: format!("key of {name}"),
            domain_name: name.into(),
            subject_alternative_names: vec![name.into()],
            serial: "01".into(),
            subject: format!("CN={name}"),
            issuer: "CN=test".into(),
            key_algorithm: "EC_prime256v1".into(),
            signature_algorithm: "SHA256WITHECDSA".into(),
            not_before_ms: 0,
            not_after_ms: u64::MAX,
        };
        arn_of(self.run(Command::ImportCertificate(ImportCertificate {
            arn: None,
            validation: Default::default(),
            options: Default::default(),
            kind: CertificateKind::Imported,
            material,
            idempotency_token: None,
            tags: vec![],
            origin: Origin::Api,
        })))
    }
}

fn target(id: &str) -> TargetDescription {
    TargetDescription {
        id: id.into(),
        port: None,
        availability_zone: None,
    }
}

fn arn_of(out: Result<Outcome>) -> String {
    match out.unwrap() {
        Outcome::Created(arn) => arn,
        other => panic!("nothing created: {other:?}"),
    }
}

#[test]
fn seeding_makes_the_default_vpc_once() {
    let mut w = World::new();
    assert_eq!(w.state.subnets.len(), 3);
    assert_eq!(w.state.default_vpc().unwrap().cidr_blocks.len(), 3);
    let before = w.state.clone();
    w.run(Command::SeedNetwork(Topology::default())).unwrap();
    assert_eq!(w.state, before);
}

#[test]
fn a_load_balancer_gets_one_node_per_zone_from_the_top_of_each_subnet() {
    let mut w = World::new();
    let arn = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    assert!(
        arn.starts_with(
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/"
        )
    );
    assert_eq!(arn.rsplit('/').next().unwrap().len(), 16);
    let lb = &w.state.load_balancers[&arn];
    assert_eq!(lb.state, LoadBalancerState::Provisioning);
    assert!(lb.dns_name.starts_with("web-") && lb.dns_name.ends_with(".us-east-1.elb.internal"));
    let mut ips: Vec<String> = w
        .state
        .nodes_of(&arn)
        .map(|n| n.private_ipv4.to_string())
        .collect();
    ips.sort();
    assert_eq!(ips, ["127.1.255.254", "127.2.255.254"]);

    let second = arn_of(w.alb("api", &["us-east-1a", "us-east-1b"]));
    let ips: Vec<String> = w
        .state
        .nodes_of(&second)
        .map(|n| n.private_ipv4.to_string())
        .collect();
    assert!(ips.contains(&"127.1.255.253".to_owned()));
}

#[test]
fn creates_are_idempotent_and_conflicts_are_refused() {
    let mut w = World::new();
    let first = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let again = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    assert_eq!(first, again);
    let err = w.alb("web", &["us-east-1a", "us-east-1c"]).unwrap_err();
    assert_eq!(err.code, ErrorCode::DuplicateLoadBalancerName);
    let err = w.alb("solo", &["us-east-1a"]).unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
}

#[test]
fn a_failed_command_changes_nothing() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let before = w.state.clone();
    let err = w
        .run(Command::RegisterTargets {
            target_group_arn: tg.clone(),
            targets: vec![target("127.1.0.10"), target("not-an-ip")],
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert_eq!(w.state, before);
    let err = w.listener(&lb, 0, &tg).unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert_eq!(w.state, before);
}

#[test]
fn targets_take_the_zone_of_their_subnet() {
    let mut w = World::new();
    let tg = w.target_group("web-tg");
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![
            target("127.1.0.10"),
            target("127.2.0.10"),
            target("127.1.0.10"),
        ],
    })
    .unwrap();
    let zones: Vec<&str> = w.state.target_groups[&tg]
        .targets
        .iter()
        .map(|t| t.availability_zone.as_str())
        .collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"]);

    let outside = w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("10.0.0.1")],
    });
    assert_eq!(outside.unwrap_err().code, ErrorCode::InvalidTarget);
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![TargetDescription {
            availability_zone: Some("all".into()),
            ..target("10.0.0.1")
        }],
    })
    .unwrap();
    // Not a publicly routable one, as on AWS.
    let public = w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![TargetDescription {
            availability_zone: Some("all".into()),
            ..target("8.8.8.8")
        }],
    });
    assert_eq!(public.unwrap_err().code, ErrorCode::InvalidTarget);
    let instance = w.run(Command::RegisterTargets {
        target_group_arn: tg,
        targets: vec![target("i-0123")],
    });
    assert_eq!(instance.unwrap_err().code, ErrorCode::ValidationError);
}

#[test]
fn node_addresses_are_never_targets() {
    let mut w = World::new();
    arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let err = w
        .run(Command::RegisterTargets {
            target_group_arn: tg,
            targets: vec![target("127.1.255.254")],
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidTarget);
}

#[test]
fn node_allocation_skips_addresses_of_targets() {
    let mut w = World::new();
    let tg = w.target_group("web-tg");
    w.run(Command::RegisterTargets {
        target_group_arn: tg,
        targets: vec![TargetDescription {
            id: "127.1.255.254".into(),
            port: Some(80),
            availability_zone: None,
        }],
    })
    .unwrap();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let a = w
        .state
        .nodes_of(&lb)
        .find(|n| n.availability_zone == "us-east-1a")
        .unwrap();
    assert_eq!(a.private_ipv4.to_string(), "127.1.255.253");
}

#[test]
fn listeners_check_protocol_port_and_target_group() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let listener = arn_of(w.listener(&lb, 8080, &tg));
    assert!(listener.contains(":listener/app/web/"));
    let rule = &w.state.listeners[&listener].default_rule_arn;
    let listener_id = listener.rsplit('/').next().unwrap();
    assert!(rule.contains(":listener-rule/app/web/") && rule.contains(&format!("/{listener_id}/")));
    assert_eq!(arn_of(w.listener(&lb, 8080, &tg)), listener);

    let other = w.target_group("other-tg");
    assert_eq!(
        w.listener(&lb, 8080, &other).unwrap_err().code,
        ErrorCode::DuplicateListener
    );
    let missing = format!("{tg}x");
    assert_eq!(
        w.listener(&lb, 8081, &missing).unwrap_err().code,
        ErrorCode::TargetGroupNotFound
    );

    let tcp = w.run(Command::CreateListener(CreateListener {
        load_balancer_arn: lb.clone(),
        protocol: Some(ListenerProtocol::Tcp),
        port: Some(443),
        default_actions: vec![],
        default_action_orders: Vec::new(),
        ssl_policy: None,
        certificate_arns: vec![],
        mutual_authentication: None,
        alpn_policy: None,
        origin: Origin::Api,
    }));
    let tcp = tcp.unwrap_err();
    assert_eq!(tcp.code, ErrorCode::ValidationError);
    assert_eq!(
        tcp.message,
        "Listener protocol 'TCP' must be one of 'HTTPS, HTTP'"
    );

    let second_lb = arn_of(w.alb("api", &["us-east-1a", "us-east-1b"]));
    let shared = w.listener(&second_lb, 8080, &tg).unwrap_err();
    assert_eq!(shared.code, ErrorCode::TargetGroupAssociationLimit);

    let in_use = w.run(Command::DeleteTargetGroup { arn: tg }).unwrap_err();
    assert_eq!(in_use.code, ErrorCode::ResourceInUse);
}

#[test]
fn deleting_a_load_balancer_takes_its_listeners_and_nodes() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    w.listener(&lb, 8080, &tg).unwrap();
    w.run(Command::ModifyLoadBalancerAttributes {
        arn: lb.clone(),
        changes: vec![("deletion_protection.enabled".into(), "true".into())],
    })
    .unwrap();
    let err = w
        .run(Command::DeleteLoadBalancer { arn: lb.clone() })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::OperationNotPermitted);
    w.run(Command::ModifyLoadBalancerAttributes {
        arn: lb.clone(),
        changes: vec![("deletion_protection.enabled".into(), "false".into())],
    })
    .unwrap();
    let before = w.state.clone();
    w.run(Command::DeleteLoadBalancer { arn: lb.clone() })
        .unwrap();
    assert!(w.state.listeners.is_empty() && w.state.nodes.is_empty());
    let delta = before.diff(&w.state);
    assert_eq!(delta.load_balancers.removed, std::slice::from_ref(&lb));
    assert_eq!(delta.listeners.removed.len(), 1);
    assert_eq!(delta.nodes.removed.len(), 2);
    assert!(delta.target_groups.is_empty());
    w.run(Command::DeleteLoadBalancer { arn: lb }).unwrap();
}

#[test]
fn cross_zone_resolves_target_group_over_load_balancer() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let lb_cross = w.state.load_balancers[&lb].cross_zone();
    assert!(lb_cross);
    assert!(w.state.target_groups[&tg].cross_zone(lb_cross));
    w.run(Command::ModifyTargetGroupAttributes {
        arn: tg.clone(),
        changes: vec![("load_balancing.cross_zone.enabled".into(), "false".into())],
    })
    .unwrap();
    assert!(!w.state.target_groups[&tg].cross_zone(lb_cross));
}

#[test]
fn registrations_have_stable_keys() {
    let mut w = World::new();
    let tg = w.target_group("web-tg");
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    let r = &w.state.target_groups[&tg].targets[0];
    assert_eq!(r.id, TargetId::Ip("127.1.0.10".parse().unwrap()));
    assert_eq!(r.key(&tg), format!("{tg}#127.1.0.10:9001"));
}

#[test]
fn state_round_trips_through_json() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    w.listener(&lb, 8080, &tg).unwrap();
    let json = serde_json::to_string(&w.state).unwrap();
    let back: Region = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.state);
}

#[test]
fn tags_are_added_replaced_removed_and_bounded() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let tag = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    w.run(Command::AddTags {
        arns: vec![lb.clone(), tg.clone()],
        tags: vec![tag("env", "test"), tag("team", "a")],
    })
    .unwrap();
    w.run(Command::AddTags {
        arns: vec![lb.clone()],
        tags: vec![tag("env", "prod")],
    })
    .unwrap();
    assert_eq!(w.state.tags(&lb).unwrap()["env"], "prod");
    assert_eq!(w.state.tags(&tg).unwrap()["env"], "test");
    w.run(Command::RemoveTags {
        arns: vec![lb.clone()],
        keys: vec!["team".into()],
    })
    .unwrap();
    assert_eq!(w.state.tags(&lb).unwrap().len(), 1);

    let dup = w.run(Command::AddTags {
        arns: vec![lb.clone()],
        tags: vec![tag("a", "1"), tag("a", "2")],
    });
    assert_eq!(dup.unwrap_err().code, ErrorCode::DuplicateTagKeys);
    let many: Vec<_> = (0..50).map(|i| tag(&format!("k{i}"), "v")).collect();
    let err = w
        .run(Command::AddTags {
            arns: vec![lb.clone()],
            tags: many,
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooManyTags);
    let missing = w.run(Command::AddTags {
        arns: vec![format!("{tg}0")],
        tags: vec![tag("a", "1")],
    });
    assert_eq!(missing.unwrap_err().code, ErrorCode::TargetGroupNotFound);
}

#[test]
fn set_subnets_adds_and_removes_nodes() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let a_node = w
        .state
        .nodes_of(&lb)
        .find(|n| n.availability_zone == "us-east-1a")
        .unwrap()
        .clone();
    let subnets = vec![w.subnet("us-east-1a"), w.subnet("us-east-1c")];
    w.run(Command::SetSubnets {
        arn: lb.clone(),
        subnet_ids: subnets,
        subnet_mappings: vec![],
        ip_address_type: None,
        ipv6_source_nat: None,
    })
    .unwrap();
    let mut zones: Vec<&str> = w
        .state
        .nodes_of(&lb)
        .map(|n| n.availability_zone.as_str())
        .collect();
    zones.sort();
    assert_eq!(zones, ["us-east-1a", "us-east-1c"]);
    assert!(
        w.state.nodes.contains_key(&a_node.id),
        "the kept zone's node was replaced"
    );
    let one = vec![w.subnet("us-east-1a")];
    let err = w
        .run(Command::SetSubnets {
            arn: lb,
            subnet_ids: one,
            subnet_mappings: vec![],
            ip_address_type: None,
            ipv6_source_nat: None,
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
}

#[test]
fn deregistered_targets_drain_for_the_delay_then_go() {
    let mut w = World::new();
    let tg = w.target_group("web-tg");
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    w.run(Command::DeregisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    let until = w.state.target_groups[&tg].targets[0].draining_until_ms;
    assert_eq!(
        until,
        Some(1_700_000_000_000 + 300_000),
        "default delay is 300 s"
    );
    w.run(Command::ExpireDraining).unwrap();
    assert_eq!(
        w.state.target_groups[&tg].targets.len(),
        1,
        "expired before its time"
    );
    // Registering it again takes it back into service.
    w.run(Command::RegisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    assert!(!w.state.target_groups[&tg].targets[0].is_draining());

    w.run(Command::ModifyTargetGroupAttributes {
        arn: tg.clone(),
        changes: vec![("deregistration_delay.timeout_seconds".into(), "0".into())],
    })
    .unwrap();
    w.run(Command::DeregisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    assert!(
        w.state.target_groups[&tg].targets.is_empty(),
        "a delay of 0 removes at once"
    );
    // A target that is not registered is no error (AWS "returns successfully").
    w.run(Command::DeregisterTargets {
        target_group_arn: tg.clone(),
        targets: vec![target("127.1.0.10")],
    })
    .unwrap();
    assert!(w.state.target_groups[&tg].targets.is_empty());
}

#[test]
fn health_check_settings_follow_aws_ranges() {
    let mut w = World::new();
    let tg = w.target_group("web-tg");
    let modify = |changes| Command::ModifyTargetGroup {
        arn: tg.clone(),
        health_check: changes,
    };
    let ok = HealthCheckChanges {
        path: Some("/health".into()),
        interval_seconds: Some(5),
        timeout_seconds: Some(2),
        http_code: Some("200-299".into()),
        ..HealthCheckChanges::default()
    };
    w.run(modify(ok)).unwrap();
    assert_eq!(w.state.target_groups[&tg].health_check.path, "/health");
    let bad = [
        HealthCheckChanges {
            timeout_seconds: Some(5),
            ..Default::default()
        },
        HealthCheckChanges {
            interval_seconds: Some(4),
            ..Default::default()
        },
        HealthCheckChanges {
            healthy_threshold: Some(11),
            ..Default::default()
        },
        HealthCheckChanges {
            path: Some("health".into()),
            ..Default::default()
        },
        HealthCheckChanges {
            http_code: Some("600".into()),
            ..Default::default()
        },
        HealthCheckChanges {
            port: Some("0".into()),
            ..Default::default()
        },
        HealthCheckChanges {
            enabled: Some(false),
            ..Default::default()
        },
    ];
    for changes in bad {
        let before = w.state.clone();
        assert!(
            w.run(modify(changes.clone())).is_err(),
            "{changes:?} accepted"
        );
        assert_eq!(w.state, before);
    }
}

fn path_rule(
    w: &mut World,
    listener: &str,
    priority: u16,
    path: &str,
    tg: &str,
) -> Result<Outcome> {
    w.run(Command::CreateRule {
        listener_arn: listener.into(),
        priority,
        conditions: vec![Condition::PathPattern {
            values: vec![path.into()],
            regex_values: Vec::new(),
        }],
        actions: vec![Action::forward(tg)],
        action_orders: Vec::new(),
        transforms: Vec::new(),
        origin: Origin::Api,
    })
}

#[test]
fn rules_have_unique_priorities_and_count_as_uses_of_target_groups() {
    let mut w = World::new();
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("web-tg");
    let api = w.target_group("api-tg");
    let listener = arn_of(w.listener(&lb, 8080, &tg));
    let rule = arn_of(path_rule(&mut w, &listener, 10, "/api/*", &api));
    assert!(rule.contains(":listener-rule/app/web/"));
    assert_eq!(
        arn_of(path_rule(&mut w, &listener, 10, "/api/*", &api)),
        rule,
        "idempotent"
    );
    let err = path_rule(&mut w, &listener, 10, "/other/*", &api).unwrap_err();
    assert_eq!(err.code, ErrorCode::PriorityInUse);
    assert_eq!(
        path_rule(&mut w, &listener, 0, "/x", &api)
            .unwrap_err()
            .code,
        ErrorCode::ValidationError
    );
    assert_eq!(
        w.state.load_balancer_of_target_group(&api),
        Some(lb.as_str())
    );
    assert_eq!(w.state.target_groups_of(&lb).count(), 2);
    let in_use = w
        .run(Command::DeleteTargetGroup { arn: api.clone() })
        .unwrap_err();
    assert_eq!(in_use.code, ErrorCode::ResourceInUse);

    let second = arn_of(path_rule(&mut w, &listener, 20, "/b", &api));
    let swap = w.run(Command::SetRulePriorities {
        priorities: vec![(rule.clone(), 20)],
    });
    assert_eq!(
        swap.unwrap_err().code,
        ErrorCode::PriorityInUse,
        "half a swap collides"
    );
    w.run(Command::SetRulePriorities {
        priorities: vec![(rule.clone(), 20), (second.clone(), 10)],
    })
    .unwrap();
    assert_eq!(w.state.rules_of(&listener)[0].arn, second);

    let default = w.state.listeners[&listener].default_rule_arn.clone();
    let err = w.run(Command::DeleteRule { arn: default }).unwrap_err();
    assert_eq!(err.code, ErrorCode::OperationNotPermitted);
    w.run(Command::DeleteListener { arn: listener }).unwrap();
    assert!(w.state.rules.is_empty(), "rules go with their listener");
}

#[test]
fn https_listeners_need_one_known_certificate_and_policy_and_keep_certificates_in_use() {
    let mut w = World::new();
    let lb = arn_of(w.alb("tls", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("tls-tg");
    let code = |r: Result<Outcome>| r.unwrap_err().code;
    assert_eq!(
        code(w.https_listener(&lb, &tg, None, &[])),
        ErrorCode::ValidationError
    );
    assert_eq!(
        code(w.https_listener(&lb, &tg, None, &["arn:aws:acm:us-east-1:1:certificate/x"])),
        ErrorCode::CertificateNotFound
    );
    let a = w.certificate("a.example");
    let b = w.certificate("b.example");
    assert_eq!(
        code(w.https_listener(&lb, &tg, Some("ELBSecurityPolicy-Nope"), &[&a])),
        ErrorCode::SslPolicyNotFound
    );
    assert_eq!(
        code(w.https_listener(&lb, &tg, None, &[&a, &b])),
        ErrorCode::TooManyCertificates
    );
    assert!(
        w.state.listeners.is_empty(),
        "refused creates leave nothing"
    );

    let listener = arn_of(w.https_listener(&lb, &tg, None, &[&a]));
    let tls = w.state.listeners[&listener].tls.clone().unwrap();
    assert_eq!(tls.ssl_policy, crate::ssl_policy::DEFAULT_SSL_POLICY);
    w.run(Command::AddListenerCertificates {
        listener_arn: listener.clone(),
        certificate_arns: vec![b.clone(), a.clone()],
    })
    .unwrap();
    let tls = w.state.listeners[&listener].tls.clone().unwrap();
    assert_eq!(
        tls.certificate_arns,
        vec![b.clone()],
        "the default is not repeated"
    );

    for cert in [&a, &b] {
        let in_use = w.run(Command::DeleteCertificate { arn: cert.clone() });
        assert_eq!(code(in_use), ErrorCode::ResourceInUse);
    }
    // Turning the listener into plain HTTP releases both certificates.
    w.run(Command::ModifyListener {
        arn: listener.clone(),
        changes: ListenerChanges {
            protocol: Some(ListenerProtocol::Http),
            port: Some(80),
            ..ListenerChanges::default()
        },
    })
    .unwrap();
    assert_eq!(w.state.listeners[&listener].tls, None);
    w.run(Command::DeleteCertificate { arn: a }).unwrap();
    w.run(Command::DeleteCertificate { arn: b }).unwrap();
    assert!(w.state.certificates.is_empty());
}
