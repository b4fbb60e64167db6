//! Attribute checks: defaults per type, ranges, and the rules across keys.

use super::*;

fn change(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_owned(), v.to_owned())]
}

#[test]
fn defaults_differ_by_type_and_scheme() {
    let alb = load_balancer_defaults(LoadBalancerKind::Application, Scheme::InternetFacing);
    assert_eq!(alb.get(CROSS_ZONE), Some("true"));
    assert_eq!(alb.get("idle_timeout.timeout_seconds"), Some("60"));
    assert_eq!(alb.get(DENY_IGW), Some("false"));
    let nlb = load_balancer_defaults(LoadBalancerKind::Network, Scheme::Internal);
    assert_eq!(nlb.get(CROSS_ZONE), Some("false"));
    assert_eq!(nlb.get(DENY_IGW), Some("true"));
    assert_eq!(nlb.get("idle_timeout.timeout_seconds"), None);
}

#[test]
fn modify_validates_keys_values_and_alb_cross_zone() {
    let kind = LoadBalancerKind::Application;
    let alb = load_balancer_defaults(kind, Scheme::InternetFacing);
    let next =
        modify_load_balancer(&alb, kind, &change("idle_timeout.timeout_seconds", "5")).unwrap();
    assert_eq!(next.int("idle_timeout.timeout_seconds"), Some(5));
    for (k, v) in [
        ("idle_timeout.timeout_seconds", "0"),
        ("idle_timeout.timeout_seconds", "x"),
        ("no.such.key", "1"),
        ("routing.http.xff_header_processing.mode", "drop"),
    ] {
        let err = modify_load_balancer(&alb, kind, &change(k, v)).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError, "{k}={v}");
    }
    let err = modify_load_balancer(&alb, kind, &change(CROSS_ZONE, "false")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfigurationRequest);
}

#[test]
fn least_outstanding_requests_excludes_slow_start() {
    let tg = target_group_defaults(TargetGroupProtocol::Http, TargetType::Instance);
    let lor = change(
        "load_balancing.algorithm.type",
        "least_outstanding_requests",
    );
    let tg =
        modify_target_group(&tg, (TargetGroupProtocol::Http, TargetType::Instance), &lor).unwrap();
    let err = modify_target_group(
        &tg,
        (TargetGroupProtocol::Http, TargetType::Instance),
        &change("slow_start.duration_seconds", "30"),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfigurationRequest);
}

#[test]
fn stickiness_settings_are_checked_together() {
    let tg = target_group_defaults(TargetGroupProtocol::Http, TargetType::Instance);
    let both = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let on = [
        ("stickiness.enabled", "true"),
        (STICKINESS_TYPE, "app_cookie"),
    ];
    let err = modify_target_group(
        &tg,
        (TargetGroupProtocol::Http, TargetType::Instance),
        &both(&on),
    )
    .unwrap_err();
    assert!(err.message.contains("application cookie name"), "{err}");
    let named = [on[0], on[1], (APP_COOKIE_NAME, "session")];
    assert!(
        modify_target_group(
            &tg,
            (TargetGroupProtocol::Http, TargetType::Instance),
            &both(&named)
        )
        .is_ok()
    );
    for bad in [
        [(APP_COOKIE_NAME, "AWSALBfoo")],
        [(STICKINESS_TYPE, "source_ip")],
    ] {
        let err = modify_target_group(
            &tg,
            (TargetGroupProtocol::Http, TargetType::Instance),
            &both(&bad),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfigurationRequest);
    }
}

#[test]
fn anomaly_mitigation_needs_weighted_random() {
    let tg = target_group_defaults(TargetGroupProtocol::Http, TargetType::Instance);
    let kind = (TargetGroupProtocol::Http, TargetType::Instance);
    let err = modify_target_group(&tg, kind, &change(ANOMALY_MITIGATION, "on")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidConfigurationRequest);
    assert!(err.message.contains(ANOMALY_MITIGATION));
    let both = [(ALGORITHM, "weighted_random"), (ANOMALY_MITIGATION, "on")];
    let next =
        modify_target_group(&tg, kind, &both.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    assert_eq!(next.get(ANOMALY_MITIGATION), Some("on"));
}

#[test]
fn dns_failover_comes_no_later_than_routing_failover() {
    const DNS: &str = "target_group_health.dns_failover.minimum_healthy_targets";
    const ROUTING: &str = "target_group_health.unhealthy_state_routing.minimum_healthy_targets";
    let tg = target_group_defaults(TargetGroupProtocol::Tcp, TargetType::Ip);
    let kind = (TargetGroupProtocol::Tcp, TargetType::Ip);
    let set = |pairs: &[(String, &str)]| {
        let changes: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), (*v).to_owned()))
            .collect();
        modify_target_group(&tg, kind, &changes)
    };
    let (count, percentage) = (
        |a: &str| format!("{a}.count"),
        |a: &str| format!("{a}.percentage"),
    );
    for bad in [
        vec![(count(DNS), "2"), (count(ROUTING), "3")],
        vec![(percentage(DNS), "40"), (percentage(ROUTING), "50")],
        vec![(count(ROUTING), "off")],
    ] {
        let err = set(&bad).unwrap_err();
        assert!(
            err.message.contains("threshold") || err.message.contains("off"),
            "{err}"
        );
    }
    for good in [
        // The DNS count left at its default is not a threshold the caller set.
        vec![(count(ROUTING), "3")],
        vec![(count(DNS), "3"), (count(ROUTING), "3")],
        vec![(count(DNS), "off"), (count(ROUTING), "5")],
        vec![(percentage(DNS), "50"), (percentage(ROUTING), "off")],
        vec![(count(DNS), "1"), (percentage(ROUTING), "80")],
    ] {
        assert!(set(&good).is_ok(), "{good:?}");
    }
    // A later call that sets neither is not refused for what was taken before.
    let stored = set(&[(count(DNS), "2")]).unwrap();
    let stored = modify_target_group(&stored, kind, &[(count(ROUTING), "2".to_owned())]).unwrap();
    let err = modify_target_group(&stored, kind, &[(count(DNS), "1".to_owned())]).unwrap_err();
    assert!(err.message.contains("threshold"), "{err}");
    let other = [(
        "deregistration_delay.timeout_seconds".to_owned(),
        "30".to_owned(),
    )];
    let mut older = stored.clone();
    older.0.insert(count(ROUTING), "5".into());
    assert!(modify_target_group(&older, kind, &other).is_ok());
}
