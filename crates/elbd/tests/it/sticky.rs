//! Sticky sessions with curl and a cookie jar: lb_cookie, app_cookie and target group
//! stickiness, tampered cookies, and a sticky target that dies.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{self, Aws, Backend, CurlReply, Elbd, Lab};

/// curl `url` with a cookie jar (read and written) when given, and `extra` arguments.
fn curl(url: &str, jar: Option<&Path>, extra: &[&str]) -> CurlReply {
    let jar = jar.map(|j| j.display().to_string());
    let mut args: Vec<&str> = match &jar {
        Some(jar) => vec!["-b", jar, "-c", jar],
        None => Vec::new(),
    };
    args.extend_from_slice(extra);
    harness::curl(url, &args)
}

/// The value the response sets for cookie `name`.
fn set_cookie(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let value = l
            .strip_prefix("set-cookie: ")?
            .strip_prefix(name)?
            .strip_prefix('=')?;
        Some(value.split(';').next()?.to_owned())
    })
}

/// The bodies (target addresses) of `n` requests.
fn targets(url: &str, jar: Option<&Path>, extra: &[&str], n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|_| {
            let reply = curl(url, jar, extra);
            assert_eq!(reply.status, 200, "{}{}", reply.headers, reply.body);
            reply.body
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_hold_until_the_target_goes_and_resist_tampering() {
    let lab = Lab::new("sticky", 22);
    let addrs =
        [('a', 10), ('a', 11), ('b', 10)].map(|(z, n)| SocketAddr::from((lab.ip(z, n), 9001)));
    let mut backends = Vec::new();
    for addr in addrs {
        backends.push(Backend::start(addr, Duration::ZERO).await);
    }
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb_arn, vpc) = aws.load_balancer("sticky");
    let health = [
        "--health-check-path",
        "/health",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
        "--unhealthy-threshold-count",
        "2",
    ];
    let ids = |members: &[SocketAddr]| -> Vec<String> {
        members.iter().map(|a| a.ip().to_string()).collect()
    };
    let group = |name: &str, members: &[SocketAddr], attributes: &str| {
        let arn = aws.target_group(name, &vpc, 9001, "ip", &health);
        aws.register(&arn, &ids(members));
        if !attributes.is_empty() {
            let mut args = vec![
                "elbv2",
                "modify-target-group-attributes",
                "--target-group-arn",
                &arn,
                "--attributes",
            ];
            args.extend(attributes.split(' '));
            aws.ok(&args);
        }
        arn
    };
    let lb_tg = group(
        "sticky-lb",
        &addrs,
        "Key=stickiness.enabled,Value=true Key=stickiness.lb_cookie.duration_seconds,Value=600",
    );
    let app_tg = group(
        "sticky-app",
        &addrs,
        "Key=stickiness.enabled,Value=true Key=stickiness.type,Value=app_cookie \
         Key=stickiness.app_cookie.cookie_name,Value=session",
    );
    let g1 = group("sticky-g1", &addrs[..1], "");
    let g2 = group("sticky-g2", &addrs[2..], "");
    let listener = aws.forward_listener(&lb_arn, 8080, &lb_tg);
    let rule = |priority: &str, path: &str, actions: &str| {
        aws.ok(&[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &listener,
            "--priority",
            priority,
            "--conditions",
            &format!("Field=path-pattern,Values={path}"),
            "--actions",
            actions,
        ]);
    };
    rule(
        "1",
        "/app*",
        &format!("Type=forward,TargetGroupArn={app_tg}"),
    );
    let weighted = format!(
        r#"[{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"TargetGroupArn":"{g1}","Weight":1}},{{"TargetGroupArn":"{g2}","Weight":1}}],"TargetGroupStickinessConfig":{{"Enabled":true,"DurationSeconds":600}}}}}}]"#
    );
    rule("2", "/group*", &weighted);
    // 3 targets of the lb group and 3 of the app group, plus one in each of g1 and g2, from
    // each of 2 nodes.
    elbd.wait_healthy(16);
    let base = format!("http://{}", lab.node('a', 8080));

    // lb_cookie: a jar keeps a client on one target; without one, requests spread.
    let jar = lab.dir.join("lb.jar");
    let stuck = targets(&base, Some(&jar), &[], 50);
    assert_eq!(stuck.len(), 1, "{stuck:?}");
    assert_eq!(targets(&base, None, &[], 30).len(), 3);
    let first = curl(&base, None, &[]);
    let value = set_cookie(&first.headers, "AWSALB").expect("AWSALB is set");
    assert_eq!(
        set_cookie(&first.headers, "AWSALBCORS"),
        Some(value.clone())
    );
    assert!(
        first.headers.contains("Path=/; SameSite=None; Secure"),
        "{}",
        first.headers
    );
    // A tampered cookie is ignored: a target is picked afresh and a new cookie issued.
    let mut tampered = value.clone().into_bytes();
    tampered[20] = if tampered[20] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for cookie in [format!("AWSALB={tampered}"), "AWSALB=garbage".to_owned()] {
        let reply = curl(&base, None, &["-b", &cookie]);
        assert_eq!(reply.status, 200);
        let renewed = set_cookie(&reply.headers, "AWSALB").unwrap();
        assert_ne!(renewed, tampered);
    }
    // The cookie, replayed by hand, leads to the target it names.
    let named = curl(&base, None, &["-b", &format!("AWSALB={value}")]);
    assert_eq!(named.body, first.body);

    // app_cookie: sticky once the application set its cookie, and only with it.
    let app = format!("{base}/app");
    assert!(targets(&app, None, &[], 30).len() > 1);
    let app_jar = lab.dir.join("app.jar");
    let login = curl(&format!("{base}/app/login"), Some(&app_jar), &[]);
    let app_value = set_cookie(&login.headers, "AWSALBAPP-0").expect("AWSALBAPP-0 is set");
    assert_eq!(
        set_cookie(&login.headers, "AWSALBAPP-1").as_deref(),
        Some("_remove_")
    );
    assert_eq!(
        targets(&app, Some(&app_jar), &[], 20),
        BTreeSet::from([login.body.clone()])
    );
    let without_session = format!("AWSALBAPP-0={app_value}");
    assert!(targets(&app, None, &["-b", &without_session], 30).len() > 1);

    // Target group stickiness: a client stays with the group it was first sent to.
    let group_url = format!("{base}/group");
    assert_eq!(targets(&group_url, None, &[], 40).len(), 2);
    let group_jar = lab.dir.join("group.jar");
    assert_eq!(targets(&group_url, Some(&group_jar), &[], 30).len(), 1);
    let reply = curl(&group_url, Some(&group_jar), &[]);
    assert!(set_cookie(&reply.headers, "AWSALBTG").is_some());
    assert!(set_cookie(&reply.headers, "AWSALBTGCORS").is_some());

    // The sticky target dies: its client's requests fail (no retry elsewhere) until the
    // health checks take it out, then go to another target with a new cookie.
    let dead = stuck.iter().next().unwrap().clone();
    let index = addrs.iter().position(|a| a.to_string() == dead).unwrap();
    backends[index].kill();
    let start = Instant::now();
    let mut failed = 0;
    let moved = loop {
        let reply = curl(&base, Some(&jar), &[]);
        match reply.status {
            502 => failed += 1,
            200 => break reply,
            other => panic!("unexpected {other}: {}", reply.body),
        }
        assert!(start.elapsed() < Duration::from_secs(25), "still failing");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        failed > 0,
        "requests to the dead target failed before it was marked unhealthy"
    );
    assert_ne!(moved.body, dead);
    assert!(set_cookie(&moved.headers, "AWSALB").is_some());
    assert_eq!(
        targets(&base, Some(&jar), &[], 10),
        BTreeSet::from([moved.body.clone()])
    );
}
