//! `lambda` target groups: no protocol, port or VPC; one function of the group's region and
//! account; checks off by default; one attribute; ALB listeners only.

use super::*;
use crate::target_group::{FunctionArn, TargetType};

const ECHO: &str = "arn:aws:lambda:us-east-1:123456789012:function:echo";

fn create(name: &str, protocol: Option<&str>, port: Option<u16>, vpc_id: Option<&str>) -> Command {
    Command::CreateTargetGroup(CreateTargetGroup {
        name: name.into(),
        protocol: protocol.map(str::to_owned),
        protocol_version: ProtocolVersion::Http1,
        port,
        vpc_id: vpc_id.map(str::to_owned),
        target_type: "lambda".into(),
        ip_address_type: None,
        origin: Origin::Api,
    })
}

fn register(w: &mut World, arn: &str, target: TargetDescription) -> Result<Outcome> {
    w.run(Command::RegisterTargets {
        target_group_arn: arn.into(),
        targets: vec![target],
    })
}

#[test]
fn a_lambda_group_takes_no_protocol_port_or_vpc_and_starts_with_checks_off() {
    let mut w = World::new();
    let vpc = w.state.vpcs.keys().next().unwrap().clone();
    for (command, named) in [
        (create("fn", Some("HTTP"), None, None), "Protocol"),
        (create("fn", None, Some(80), None), "Port"),
        (create("fn", None, None, Some(&vpc)), "VPC ID"),
    ] {
        let err = w.run(command).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert!(err.message.starts_with(named), "{}", err.message);
    }
    let arn = w.created(create("fn", None, None, None));
    let tg = &w.state.target_groups[&arn];
    assert_eq!(tg.target_type, TargetType::Lambda);
    let hc = &tg.health_check;
    assert!(!hc.enabled);
    assert_eq!((hc.interval_seconds, hc.timeout_seconds), (35, 30));
    let attributes: Vec<(&str, &str)> = tg.attributes.iter().collect();
    assert_eq!(
        attributes,
        [("lambda.multi_value_headers.enabled", "false")]
    );
    // The same create again is the same group.
    assert_eq!(w.created(create("fn", None, None, None)), arn);
    let other_attribute = Command::ModifyTargetGroupAttributes {
        arn: arn.clone(),
        changes: vec![("deregistration_delay.timeout_seconds".into(), "0".into())],
    };
    assert!(w.run(other_attribute).is_err());
    // Checks turn on, on the path, but take no protocol or port.
    let on = HealthCheckChanges {
        enabled: Some(true),
        path: Some("/health".into()),
        ..HealthCheckChanges::default()
    };
    w.run(Command::ModifyTargetGroup {
        arn: arn.clone(),
        health_check: on,
    })
    .unwrap();
    let hc = &w.state.target_groups[&arn].health_check;
    assert!(hc.enabled && hc.path == "/health");
    let port = HealthCheckChanges {
        port: Some("80".into()),
        ..HealthCheckChanges::default()
    };
    let err = w
        .run(Command::ModifyTargetGroup {
            arn,
            health_check: port,
        })
        .unwrap_err();
    assert!(err.message.contains("port"), "{}", err.message);
}

#[test]
fn one_function_of_the_groups_region_and_account_without_a_port() {
    let mut w = World::new();
    let arn = w.created(create("fn", None, None, None));
    let refused = |w: &mut World, target: TargetDescription| {
        let before = w.state.target_groups[&arn].targets.clone();
        let err = register(w, &arn, target).unwrap_err();
        assert_eq!(w.state.target_groups[&arn].targets, before);
        err.code
    };
    let elsewhere = target("arn:aws:lambda:eu-west-1:123456789012:function:echo");
    assert_eq!(refused(&mut w, elsewhere), ErrorCode::InvalidTarget);
    let other_account = target("arn:aws:lambda:us-east-1:210987654321:function:echo");
    assert_eq!(refused(&mut w, other_account), ErrorCode::InvalidTarget);
    let not_a_function = target("i-0123456789abcdef0");
    assert_eq!(refused(&mut w, not_a_function), ErrorCode::ValidationError);
    let with_port = TargetDescription {
        port: Some(80),
        ..target(ECHO)
    };
    assert_eq!(refused(&mut w, with_port), ErrorCode::ValidationError);
    let in_a_zone = TargetDescription {
        availability_zone: Some("us-east-1a".into()),
        ..target(ECHO)
    };
    assert_eq!(refused(&mut w, in_a_zone), ErrorCode::ValidationError);
    let aliased = format!("{ECHO}:live");
    register(&mut w, &arn, target(&aliased)).unwrap();
    let registered = &w.state.target_groups[&arn].targets[0];
    assert_eq!(registered.id, TargetId::Lambda(aliased.clone()));
    assert_eq!(registered.availability_zone, "all");
    assert_eq!(refused(&mut w, target(ECHO)), ErrorCode::TooManyTargets);
    // Gone at once: a function does not drain.
    w.run(Command::DeregisterTargets {
        target_group_arn: arn.clone(),
        targets: vec![target(&aliased)],
    })
    .unwrap();
    assert!(w.state.target_groups[&arn].targets.is_empty());
}

#[test]
fn only_http_and_https_listeners_forward_to_a_function() {
    let mut w = World::new();
    let tg = w.created(create("fn", None, None, None));
    let alb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    w.listener(&alb, 80, &tg).unwrap();
    let nlb = w.nlb("net");
    let tg2 = w.created(create("fn2", None, None, None));
    let tcp = ListenerProtocol::Tcp;
    let err = w
        .listener_of(&nlb, tcp, vec![Action::forward(&tg2)])
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::IncompatibleProtocols);
    assert!(err.message.contains("Lambda function"), "{}", err.message);
}

#[test]
fn function_arns_parse_as_lambdas_patterns_have_them() {
    let arn = FunctionArn::parse("arn:aws:lambda:us-west-2:123456789012:function:my_fn-1:$LATEST")
        .unwrap();
    assert_eq!(
        (
            arn.region.as_str(),
            arn.name.as_str(),
            arn.qualifier.as_deref()
        ),
        ("us-west-2", "my_fn-1", Some("$LATEST"))
    );
    for bad in [
        "arn:aws:lambda:us-west-2:123456789012:function:",
        "arn:aws:lambda:us-west-2:12345:function:f",
        "arn:aws:lambda:nowhere:123456789012:function:f",
        "arn:aws:s3:us-west-2:123456789012:function:f",
        "arn:aws:lambda:us-west-2:123456789012:layer:f",
        "arn:aws:lambda:us-west-2:123456789012:function:f:1:2",
        "arn:aws:lambda:us-west-2:123456789012:function:f/g",
    ] {
        assert!(FunctionArn::parse(bad).is_err(), "{bad}");
    }
}
