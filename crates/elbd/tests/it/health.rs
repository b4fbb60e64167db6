//! Health checks under a constant request rate: unhealthy targets lose their traffic, healthy
//! ones win it back, deregistration drains without a failed request, and everything fails
//! open when nothing is healthy; anomaly detection finds a target failing requests while its
//! checks pass, and mitigation takes its traffic away until it recovers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::harness::{Aws, Backend, Elbd, Lab, ProcessBackend, Sent, constant_rate, spread};

/// An ALB `h` in zones a and b, listener 8080 → target group `h-tg` (port 9001) with `targets`,
/// health checks every 5 s (timeout 2 s, thresholds 2) on `path`, and `attributes`.
fn config(lab: &Lab, targets: &[SocketAddr], path: &str, attributes: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "{}\n\
         [[load_balancer]]\nname = \"h\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"h-tg\" }}\n\
         [[target_group]]\nname = \"h-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [{}]\n\
         health_check = {{ path = \"{path}\", interval_seconds = 5, timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n\
         attributes = {{ {attributes} }}\n",
        lab.settings(),
        targets.join(", ")
    )
}

fn start(lab: &Lab, config: &str) -> (Elbd, Aws) {
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let path = lab.write("elbd.toml", config);
    let elbd = Elbd::start(
        lab,
        &path,
        &["--api-listen", &api.to_string()],
        &[api, lab.node('a', 8080)],
    );
    (elbd, Aws::new(api))
}

/// Polls elbd's log (without blocking the runtime) until a `target health` line for `target`
/// seen from `node` reports `state`; returns when, as measured by `clock`.
async fn health_logged(
    elbd: &Elbd,
    node: SocketAddr,
    target: SocketAddr,
    state: &str,
    clock: tokio::time::Instant,
) -> Duration {
    let wanted = [
        format!("node={}", node.ip()),
        format!("target={target}"),
        format!("state={state}"),
    ];
    for _ in 0..600 {
        if elbd
            .logs()
            .lines()
            .any(|l| l.contains("target health") && wanted.iter().all(|w| l.contains(w.as_str())))
        {
            return clock.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{target} never turned {state} from {node}:\n{}",
        elbd.logs()
    );
}

fn target_health(aws: &Aws) -> Vec<Value> {
    let tg = aws.ok(&["elbv2", "describe-target-groups", "--names", "h-tg"]);
    let arn = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let health = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        &arn,
    ]);
    health["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_target_turns_unhealthy_within_15_s_and_then_gets_nothing() {
    let lab = Lab::new("health-kill", 11);
    let mut backends = Vec::new();
    for (zone, n) in [('a', 10), ('a', 11), ('b', 10)] {
        backends
            .push(Backend::start(SocketAddr::from((lab.ip(zone, n), 9001)), Duration::ZERO).await);
    }
    let doomed_addr = SocketAddr::from((lab.ip('b', 11), 9001));
    let doomed = ProcessBackend::start(doomed_addr);
    let targets = [
        lab.ip('a', 10),
        lab.ip('a', 11),
        lab.ip('b', 10),
        lab.ip('b', 11),
    ]
    .map(|ip| SocketAddr::from((ip, 9001)));
    let (mut elbd, _aws) = start(&lab, &config(&lab, &targets, "/", ""));
    elbd.wait_healthy(8);

    let node = lab.node('a', 8080);
    let clock = tokio::time::Instant::now();
    let traffic = tokio::spawn(constant_rate(node, 20, Duration::from_secs(22)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed_at = clock.elapsed();
    doomed.signal("KILL");
    let unhealthy_at = health_logged(&elbd, node, doomed_addr, "unhealthy", clock).await;
    let detection = unhealthy_at - killed_at;
    eprintln!("killed target marked unhealthy after {detection:?}");
    assert!(detection <= Duration::from_secs(15), "took {detection:?}");

    let sent: Vec<Sent> = traffic.await.unwrap();
    let before: Vec<&Sent> = sent.iter().filter(|s| s.at < killed_at).collect();
    let during: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.at >= killed_at && s.at < unhealthy_at)
        .collect();
    let after: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.at > unhealthy_at + Duration::from_millis(500))
        .collect();
    assert!(before.iter().all(|s| s.status == 200));
    assert!(
        after.len() > 20 && after.iter().all(|s| s.status == 200),
        "failures after detection"
    );
    // Before detection, the dead target refuses connections: its requests go to the others
    // (the relay and the general path pass a refusal over), and only one it was answering at the kill may fail.
    let failed = during.iter().filter(|s| s.status != 200).count();
    assert!(
        failed <= 1,
        "{failed} of {} failed before detection",
        during.len()
    );
    assert!(
        during.len() > 40,
        "only {} requests before detection",
        during.len()
    );
    assert!(
        during
            .iter()
            .filter(|s| s.status != 200)
            .all(|s| s.status == 502)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_the_health_path_is_a_code_mismatch_until_the_matcher_accepts_it() {
    let lab = Lab::new("health-matcher", 12);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let backend = Backend::start(target, Duration::ZERO).await;
    backend.set_health(500);
    let (elbd, aws) = start(&lab, &config(&lab, &[target], "/health", ""));
    let clock = tokio::time::Instant::now();
    health_logged(&elbd, lab.node('a', 8080), target, "unhealthy", clock).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let described = target_health(&aws);
    let health = &described[0]["TargetHealth"];
    assert_eq!(health["State"], "unhealthy");
    assert_eq!(health["Reason"], "Target.ResponseCodeMismatch");
    assert_eq!(
        health["Description"],
        "Health checks failed with these codes: [500]"
    );

    // AWS's matchers stop at 499, so no matcher accepts a 500: the target moves to a 404,
    // which the default matcher (200) refuses and 200-499 accepts.
    backend.set_health(404);
    let node = lab.node('a', 8080);
    loop {
        let health = target_health(&aws);
        if health[0]["TargetHealth"]["Description"]
            == "Health checks failed with these codes: [404]"
        {
            break;
        }
        assert!(clock.elapsed() < Duration::from_secs(30), "{health:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let tg = aws.ok(&["elbv2", "describe-target-groups", "--names", "h-tg"]);
    let arn = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    aws.ok(&[
        "elbv2",
        "modify-target-group",
        "--target-group-arn",
        &arn,
        "--matcher",
        "HttpCode=200-499",
    ]);
    let bad = aws.err(&[
        "elbv2",
        "modify-target-group",
        "--target-group-arn",
        &arn,
        "--health-check-timeout-seconds",
        "9",
    ]);
    assert!(bad.contains("ValidationError"), "{bad}");
    for node in [node, lab.node('b', 8080)] {
        health_logged(&elbd, node, target, "healthy", clock).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(target_health(&aws)[0]["TargetHealth"]["State"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_drains_with_no_failed_request() {
    let lab = Lab::new("health-drain", 13);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)].map(|ip| SocketAddr::from((ip, 9001)));
    // Slow answers, so that requests are in flight when the target is deregistered.
    let _a = Backend::start(targets[0], Duration::from_millis(200)).await;
    let _b = Backend::start(targets[1], Duration::from_millis(200)).await;
    let (mut elbd, aws) = start(
        &lab,
        &config(
            &lab,
            &targets,
            "/",
            "\"deregistration_delay.timeout_seconds\" = 5",
        ),
    );
    elbd.wait_healthy(4);
    let node = lab.node('a', 8080);
    let clock = tokio::time::Instant::now();
    let traffic = tokio::spawn(constant_rate(node, 50, Duration::from_secs(12)));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let tg = aws.ok(&["elbv2", "describe-target-groups", "--names", "h-tg"]);
    let arn = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let leaving = format!("Id={}", targets[1].ip());
    aws.ok(&[
        "elbv2",
        "deregister-targets",
        "--target-group-arn",
        &arn,
        "--targets",
        &leaving,
    ]);
    let deregistered_at = clock.elapsed();
    let draining = target_health(&aws);
    let state = draining
        .iter()
        .find(|t| t["Target"]["Id"] == targets[1].ip().to_string())
        .unwrap();
    assert_eq!(state["TargetHealth"]["State"], "draining");
    assert_eq!(
        state["TargetHealth"]["Reason"],
        "Target.DeregistrationInProgress"
    );
    let gone_at = loop {
        if target_health(&aws).len() == 1 {
            break clock.elapsed();
        }
        assert!(
            clock.elapsed() < Duration::from_secs(20),
            "the target never left"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let drained = gone_at - deregistered_at;
    eprintln!("deregistered target gone after {drained:?}");
    assert!(
        drained >= Duration::from_secs(4),
        "gone after {drained:?}, before the 5 s delay"
    );

    let sent = traffic.await.unwrap();
    let failed: Vec<&Sent> = sent.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        sent.len()
    );
    let late_to_leaver = sent
        .iter()
        .filter(|s| s.at > deregistered_at + Duration::from_millis(500))
        .filter(|s| s.body == targets[1].to_string())
        .count();
    assert_eq!(late_to_leaver, 0, "new requests went to a draining target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_target_is_unhealthy_traffic_fails_open() {
    let lab = Lab::new("health-fail-open", 14);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)].map(|ip| SocketAddr::from((ip, 9001)));
    let a = Backend::start(targets[0], Duration::ZERO).await;
    let b = Backend::start(targets[1], Duration::ZERO).await;
    a.set_health(503);
    b.set_health(503);
    let (elbd, aws) = start(&lab, &config(&lab, &targets, "/health", ""));
    let clock = tokio::time::Instant::now();
    let node = lab.node('a', 8080);
    for target in targets {
        health_logged(&elbd, node, target, "unhealthy", clock).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = spread(node, 10).await;
    assert_eq!(
        counts.len(),
        2,
        "fail-open should reach both unhealthy targets: {counts:?}"
    );
    assert!(
        target_health(&aws)
            .iter()
            .all(|t| t["TargetHealth"]["State"] == "unhealthy")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_coming_back_needs_the_healthy_threshold_and_ramps_with_slow_start() {
    let lab = Lab::new("health-return", 15);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)].map(|ip| SocketAddr::from((ip, 9001)));
    let _steady = Backend::start(targets[0], Duration::ZERO).await;
    let returning = Backend::start(targets[1], Duration::ZERO).await;
    returning.set_health(500);
    let (elbd, _aws) = start(
        &lab,
        &config(
            &lab,
            &targets,
            "/health",
            "\"slow_start.duration_seconds\" = 30",
        ),
    );
    let clock = tokio::time::Instant::now();
    let node = lab.node('a', 8080);
    health_logged(&elbd, node, targets[1], "unhealthy", clock).await;
    health_logged(&elbd, node, targets[0], "healthy", clock).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts = spread(node, 20).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        [&targets[0].to_string()],
        "an unhealthy target got traffic"
    );

    returning.set_health(200);
    let flipped_at = clock.elapsed();
    let healthy_at = health_logged(&elbd, node, targets[1], "healthy", clock).await;
    let took = healthy_at - flipped_at;
    eprintln!("returning target healthy after {took:?}");
    assert!(
        took >= Duration::from_secs(4),
        "healthy after {took:?}: fewer than HealthyThresholdCount probes"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Seconds into a 30 s slow start, its share is a small fraction of the fair half.
    let sent = constant_rate(node, 40, Duration::from_secs(3)).await;
    assert!(sent.iter().all(|s| s.status == 200));
    let share = sent
        .iter()
        .filter(|s| s.body == targets[1].to_string())
        .count() as f64
        / sent.len() as f64;
    eprintln!("returning target's share in the first seconds of slow start: {share:.3}");
    assert!(share < 0.25, "share {share} is not ramping");
}

/// A backend that answers with its address, and while `failing` is set answers every other
/// request with a 500 (a gray failure: its health checks on `/health` still pass).
async fn flaky_backend(addr: SocketAddr) -> Arc<AtomicBool> {
    let failing = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let (flag, served) = (failing.clone(), Arc::new(AtomicUsize::new(0)));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (flag, served) = (flag.clone(), served.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let n = served.fetch_add(1, Ordering::Relaxed);
                let fail = flag.load(Ordering::Relaxed) && req.uri().path() != "/health";
                let status = if fail && n % 2 == 0 { 500 } else { 200 };
                let mut response = Response::new(Full::new(Bytes::from(addr.to_string())));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    failing
}

/// DescribeTargetHealth with `--include INCLUDE`: each target's `AnomalyDetection`, by id.
fn anomalies(aws: &Aws, arn: &str, include: &str) -> Vec<(String, Value)> {
    let health = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        arn,
        "--include",
        include,
    ]);
    let rows = health["TargetHealthDescriptions"].as_array().unwrap();
    rows.iter()
        .map(|row| {
            let id = row["Target"]["Id"].as_str().unwrap().to_owned();
            (id, row["AnomalyDetection"].clone())
        })
        .collect()
}

/// Of the requests sent, the share that reached `target` and the count of 500s.
fn share(sent: &[Sent], target: SocketAddr) -> (f64, usize) {
    let hits = sent.iter().filter(|s| s.body == target.to_string()).count();
    let errors = sent.iter().filter(|s| s.status == 500).count();
    (hits as f64 / sent.len().max(1) as f64, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_fails_more_than_its_peers_is_anomalous_and_mitigated_until_it_recovers() {
    let lab = Lab::new("health-anomaly", 59);
    let targets = [10, 11, 12].map(|n| SocketAddr::from((lab.ip('a', n), 9001)));
    let mut failing = Vec::new();
    for target in targets {
        failing.push(flaky_backend(target).await);
    }
    let attributes = "\"load_balancing.algorithm.type\" = \"weighted_random\"";
    let (mut elbd, aws) = start(&lab, &config(&lab, &targets, "/health", attributes));
    elbd.wait_healthy(6);
    let tg = aws.ok(&["elbv2", "describe-target-groups", "--names", "h-tg"]);
    let arn = tg["TargetGroups"][0]["TargetGroupArn"].as_str().unwrap();
    let node = lab.node('a', 8080);
    let gray = targets[2];

    // Mitigation off: the failing target is found anomalous and keeps its share.
    failing[2].store(true, Ordering::Relaxed);
    let sent = constant_rate(node, 100, Duration::from_secs(6)).await;
    let (before, errors) = share(&sent, gray);
    assert!(errors > 50, "the target failed: {errors} 500s");
    assert!(
        before > 0.2,
        "a third of the traffic without mitigation: {before}"
    );
    let found = anomalies(&aws, arn, "AnomalyDetection");
    for (id, anomaly) in &found {
        let anomalous = *id == gray.ip().to_string();
        let result = if anomalous { "anomalous" } else { "normal" };
        assert_eq!(anomaly["Result"], result, "{id}: {found:?}");
        assert_eq!(anomaly["MitigationInEffect"], "no", "{id}: {found:?}");
    }
    // Without Include, no finding is shown; a value outside the enum is refused.
    let plain = aws.ok(&["elbv2", "describe-target-health", "--target-group-arn", arn]);
    assert!(plain["TargetHealthDescriptions"][0]["AnomalyDetection"].is_null());
    let bad = aws.command(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        arn,
        "--include",
        "Everything",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ValidationError"));

    // Mitigation on: the node sends it a sliver of its share, and fewer requests fail.
    aws.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        arn,
        "--attributes",
        "Key=load_balancing.algorithm.anomaly_mitigation,Value=on",
    ]);
    constant_rate(node, 100, Duration::from_secs(5)).await;
    let sent = constant_rate(node, 100, Duration::from_secs(5)).await;
    let (mitigated, fewer) = share(&sent, gray);
    assert!(
        mitigated < 0.08,
        "mitigated to a sliver: {mitigated} (was {before})"
    );
    assert!(fewer * 3 < errors, "{fewer} 500s against {errors}");
    let found = anomalies(&aws, arn, "All");
    let gray_row = found.iter().find(|(id, _)| *id == gray.ip().to_string());
    assert_eq!(
        gray_row.unwrap().1["MitigationInEffect"],
        "yes",
        "{found:?}"
    );
    let all = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        arn,
        "--include",
        "All",
    ]);
    let first = &all["TargetHealthDescriptions"][0];
    assert_eq!(first["AdministrativeOverride"]["State"], "no_override");

    // Recovered: normal again once its failures have left the 30-tick window, and its weight
    // climbs back step by step: its share comes back within a window and the climb (how
    // soon within that depends on the machine's pace, so it is polled).
    failing[2].store(false, Ordering::Relaxed);
    let back_by = tokio::time::Instant::now() + Duration::from_secs(60);
    let after = loop {
        let sent = constant_rate(node, 100, Duration::from_secs(5)).await;
        let (after, errors) = share(&sent, gray);
        assert_eq!(errors, 0);
        if after > 0.2 || tokio::time::Instant::now() >= back_by {
            break after;
        }
    };
    assert!(after > 0.2, "its share is back: {after}");
    for (id, anomaly) in anomalies(&aws, arn, "AnomalyDetection") {
        assert_eq!(anomaly["Result"], "normal", "{id}");
        assert_eq!(anomaly["MitigationInEffect"], "no", "{id}");
    }
}
