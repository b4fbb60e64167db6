//! Zero-downtime restarts: a second `elbd serve` on the same data dir takes the running one's
//! sockets and has it drain and exit, under load and while the state changes, with no
//! request failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Aws, Backend, Elbd, Lab};
use crate::load::{Road, Tally, fresh, kept_alive, request, slowloris};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_elbd_takes_over_under_load_and_changes_without_a_failed_request() {
    let lab = Lab::new("handover", 53);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)];
    let _backends = [
        Backend::start(SocketAddr::from((targets[0], 9001)), Duration::ZERO).await,
        Backend::start(SocketAddr::from((targets[1], 9001)), Duration::ZERO).await,
    ];
    let config = lab.write("elbd.toml", &lab.settings());
    let api = SocketAddr::from((lab.ip('a', 250), 4566));
    let flags = ["--api-listen", &api.to_string(), "--drain-seconds", "5"];
    let mut old = Elbd::start(&lab, &config, &flags, &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer("handover");
    let group = aws.target_group("web", &vpc, 9001, "ip", &[]);
    let ids: Vec<String> = targets.iter().map(ToString::to_string).collect();
    aws.register(&group, &ids);
    let listener = aws.forward_listener(&lb, 8080, &group);
    let node = lab.node('a', 8080);
    old.wait_until("the node to listen", || {
        std::net::TcpStream::connect(node).is_ok()
    });
    aws.ok(&[
        "elbv2",
        "wait",
        "target-in-service",
        "--target-group-arn",
        &group,
    ]);

    // 150 kept-alive requests a second over 5 connections, 40 new connections a second, and
    // 300 slowloris clients (whose fate is not counted).
    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..5 {
        load.spawn(kept_alive(node, 30, tally.clone(), running.clone()));
    }
    load.spawn(fresh(node, 40, Road::Relay, tally.clone(), running.clone()));
    let slow = Arc::new(AtomicBool::new(true));
    let mut slowloris_clients = tokio::task::JoinSet::new();
    for _ in 0..300 {
        slowloris_clients.spawn(slowloris(node, slow.clone()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The state changes while the new process starts: a target leaves and comes back, and
    // a rule is added.
    let (aws_changes, group_changes, listener_changes) = (aws, group.clone(), listener.clone());
    let changes = tokio::task::spawn_blocking(move || {
        let target = format!("Id={}", ids[1]);
        let group = group_changes.as_str();
        aws_changes.ok(&[
            "elbv2",
            "deregister-targets",
            "--target-group-arn",
            group,
            "--targets",
            &target,
        ]);
        aws_changes.ok(&[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            group,
            "--targets",
            &target,
        ]);
        aws_changes.ok(&[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &listener_changes,
            "--priority",
            "10",
            "--conditions",
            "Field=path-pattern,Values=/fixed",
            "--actions",
            "Type=fixed-response,FixedResponseConfig={StatusCode=200,ContentType=text/plain,MessageBody=fixed}",
        ]);
        aws_changes
    });
    let started = Instant::now();
    let mut new = Elbd::take_over(&lab, &config, &flags);
    let exited = tokio::task::spawn_blocking(move || {
        let status = old.wait_exit(Duration::from_secs(20));
        (status, old.logs())
    });
    let aws = changes.await.unwrap();
    let (status, old_logs) = exited.await.unwrap();
    let took = started.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "the old elbd did not exit: {old_logs}"
    );
    // The drain is 5 s; the new process's start comes before it.
    assert!(
        took < Duration::from_secs(15),
        "the old elbd exited after {took:?}"
    );
    println!("the old elbd exited {took:?} after the new one started");
    // The access log spool passes to the new process once the old one is gone.
    let next_log = lab.dir.join("elbd-next.log");
    let spool_taken = async {
        while !std::fs::read_to_string(&next_log)
            .unwrap_or_default()
            .contains("the old elbd exited; this one delivers the access logs")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let taken = tokio::time::timeout(Duration::from_secs(10), spool_taken).await;
    assert!(
        taken.is_ok(),
        "the new elbd did not take the spool: {}",
        new.logs()
    );

    // The new process serves what was changed, through the API it took over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    running.store(false, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let health = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        &group,
    ]);
    assert_eq!(
        health["TargetHealthDescriptions"].as_array().unwrap().len(),
        2,
        "{health}"
    );
    let rules = aws.ok(&["elbv2", "describe-rules", "--listener-arn", &listener]);
    assert_eq!(rules["Rules"].as_array().unwrap().len(), 2, "{rules}");
    let mut stream = TcpStream::connect(node).await.unwrap();
    stream
        .write_all(b"GET /fixed HTTP/1.1\r\nHost: handover.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.ends_with("fixed"), "{answer}");

    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    println!("requests: {ok} answered, {failed} failed");
    assert_eq!(
        failed,
        0,
        "{:?}\n{}",
        tally.reasons.lock().unwrap(),
        new.logs()
    );
    assert!(ok > 500, "only {ok} requests");
    slow.store(false, Ordering::Relaxed);
    slowloris_clients.abort_all();
    assert!(new.is_running(), "the new elbd exited: {}", new.logs());
}

/// A process this test did not start, killed when dropped.
struct Stray(u32);

impl Drop for Stray {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_starts_the_binary_again_and_the_new_process_takes_over() {
    let lab = Lab::new("usr2", 54);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let text = format!(
        "{}\n\
         [[load_balancer]]\nname = \"usr2\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"web\" }}\n\
         [[target_group]]\nname = \"web\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    let node = lab.node('a', 8080);
    let mut old = Elbd::start(&lab, &config, &["--drain-seconds", "1"], &[node]);
    let mut stream = TcpStream::connect(node).await.unwrap();
    assert_eq!(request(&mut stream, true).await, Ok(false));

    old.signal("USR2");
    let status = tokio::task::spawn_blocking(move || {
        let status = old.wait_exit(Duration::from_secs(15));
        (status, old.logs())
    });
    let (status, logs) = status.await.unwrap();
    let pid = logs
        .lines()
        .find(|l| l.contains("started a new elbd to take over"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .map(Stray);
    assert!(pid.is_some(), "no new process: {logs}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the old elbd did not exit: {logs}"
    );
    assert!(logs.contains("took the running elbd's sockets"), "{logs}");
    let mut stream = TcpStream::connect(node).await.unwrap();
    assert_eq!(request(&mut stream, true).await, Ok(false), "{logs}");
}
