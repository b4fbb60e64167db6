//! Zero-downtime restarts: a second `elbd serve` on the same data dir takes the running one's
//! sockets and has it drain and exit, under load and while the state changes, with no
//! request failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Aws, Backend, Elbd, Lab};

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Why the first failures failed.
    reasons: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut reasons = self.reasons.lock().unwrap();
        if reasons.len() < 10 {
            reasons.push(why);
        }
    }
}

/// Sends `GET /` on `stream` and reads the whole response: whether the connection may be
/// used again, or why the request failed.
async fn request(stream: &mut TcpStream, close: bool) -> Result<bool, String> {
    let connection = if close { "close" } else { "keep-alive" };
    let head = format!("GET / HTTP/1.1\r\nHost: handover.test\r\nConnection: {connection}\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Err("no answer in 5 s".into()),
        };
        if n == 0 {
            return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_lowercase();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let length: usize = (text.lines())
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap_or(0));
        if got.len() < end + 4 + length {
            continue;
        }
        if !text.starts_with("http/1.1 200") {
            return Err(text.lines().next().unwrap_or_default().to_owned());
        }
        return Ok(!text.contains("connection: close"));
    }
}

/// A client on one kept-alive connection at `rate` requests per second, connecting again
/// when the load balancer closes it after a response.
async fn kept_alive(node: SocketAddr, rate: u32, tally: Arc<Tally>, running: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut stream: Option<TcpStream> = None;
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        let mut current = match stream.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(node).await {
                Ok(stream) => stream,
                Err(e) => {
                    tally.fail(format!("connect: {e}"));
                    continue;
                }
            },
        };
        match request(&mut current, false).await {
            Ok(reusable) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                stream = reusable.then_some(current);
            }
            Err(why) => tally.fail(format!("kept-alive: {why}")),
        }
    }
}

/// New connections at `rate` per second, one request each.
async fn fresh(node: SocketAddr, rate: u32, tally: Arc<Tally>, running: Arc<AtomicBool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut sent = tokio::task::JoinSet::new();
    while running.load(Ordering::Relaxed) {
        ticks.tick().await;
        let tally = tally.clone();
        sent.spawn(async move {
            let answered = match TcpStream::connect(node).await {
                Ok(mut stream) => request(&mut stream, true).await,
                Err(e) => Err(format!("connect: {e}")),
            };
            match answered {
                Ok(_) => tally.ok.fetch_add(1, Ordering::Relaxed),
                Err(why) => {
                    tally.fail(format!("new connection: {why}"));
                    0
                }
            };
        });
    }
    while sent.join_next().await.is_some() {}
}

/// A slowloris client: a request line, then a byte now and then, until it is closed.
async fn slowloris(node: SocketAddr, running: Arc<AtomicBool>) {
    let Ok(mut stream) = TcpStream::connect(node).await else {
        return;
    };
    let _ = stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").await;
    while running.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if stream.write_all(b"x").await.is_err() {
            return;
        }
    }
}

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
    load.spawn(fresh(node, 40, tally.clone(), running.clone()));
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
