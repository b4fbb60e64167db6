//! Client limits: the header timeout (slow clients answered 408, on the relay and on the
//! general path), the idle timeout mid-request (408 on the relay), heads hyper cannot take
//! (ALB's 400 on both roads), the client keep-alive, and the node's connection limit.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Backend, Elbd, Lab, curl};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: limits.test\r\n\r\n";

/// Reads until the peer closes (or 10 s pass): everything it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got));
    let _ = read.await;
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends one request on `stream` and reads its response head and body (Content-Length).
async fn exchange(stream: &mut TcpStream) -> String {
    stream.write_all(GET).await.unwrap();
    read_response(stream).await
}

/// Reads a response head and body (Content-Length) from `stream`, lowercased.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

fn rss_kib(elbd: &Elbd) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", elbd.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_get_408_at_the_header_timeout_and_delay_no_one() {
    let lab = Lab::new("limits", 51);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let config = lab.both_roads("limits", "", target, "");
    let ports = [lab.node('a', 8080), lab.node('a', 8081)];
    let elbd = Elbd::start(&lab, &config, &["--header-timeout-seconds", "2"], &ports);
    for port in ports {
        let mut stream = TcpStream::connect(port).await.unwrap();
        assert!(exchange(&mut stream).await.starts_with("http/1.1 200"));
    }
    let before = rss_kib(&elbd);

    // 300 slowloris clients, 150 on each path: a request line, then a byte now and then.
    let started = Instant::now();
    let mut slow = Vec::new();
    let mut rss = vec![before];
    for i in 0..300 {
        let port = ports[i / 150];
        if i == 150 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            rss.push(rss_kib(&elbd));
        }
        slow.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(port).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
                .await
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    },
                    () = tokio::time::sleep(Duration::from_millis(400)) => {
                        if stream.write_all(b"x").await.is_err() {
                            break;
                        }
                    }
                }
            }
            (
                String::from_utf8_lossy(&got).into_owned(),
                started.elapsed(),
            )
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss.push(rss_kib(&elbd));
    // Meanwhile others are served, on both paths, well within the header timeout the slow
    // ones are held to.
    for port in ports {
        let asked = Instant::now();
        let mut stream = TcpStream::connect(port).await.unwrap();
        assert!(exchange(&mut stream).await.starts_with("http/1.1 200"));
        assert!(asked.elapsed() < Duration::from_millis(1500), "{port}");
    }
    // A client that sends nothing is let go at the timeout, without a page.
    let mut silent = TcpStream::connect(ports[0]).await.unwrap();
    let silent_at = Instant::now();
    let said = read_to_close(&mut silent).await;
    assert_eq!(said, "");
    let waited = silent_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    for (i, task) in slow.into_iter().enumerate() {
        let (said, after) = task.await.unwrap();
        assert!(
            said.starts_with("HTTP/1.1 408 Request Time-out\r\n"),
            "slow client {i} (port {}): {said:?}",
            ports[i / 150]
        );
        assert!(said.to_lowercase().contains("server: awselb/2.0"), "{said}");
        assert!(said.contains("<h1>408 Request Time-out</h1>"), "{said}");
        assert!(
            after >= Duration::from_millis(1900) && after < Duration::from_secs(5),
            "slow client {i} closed after {after:?}"
        );
    }
    let per_connection = |from: u64, to: u64| to.saturating_sub(from) as f64 / 150.0;
    println!(
        "memory per slow connection: relay {:.1} KiB, general path {:.1} KiB (RSS {rss:?} KiB)",
        per_connection(rss[0], rss[1]),
        per_connection(rss[1], rss[2]),
    );

    // A kept-alive connection may wait between requests past the header timeout: a later
    // head is due from its first byte, and answered 408 when it is not whole in time.
    for port in ports {
        let mut stream = TcpStream::connect(port).await.unwrap();
        assert!(exchange(&mut stream).await.starts_with("http/1.1 200"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let answer = exchange(&mut stream).await;
        assert!(answer.starts_with("http/1.1 200"), "{port}: {answer}");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: lim")
            .await
            .unwrap();
        let begun = Instant::now();
        let said = read_to_close(&mut stream).await;
        assert!(said.starts_with("HTTP/1.1 408 "), "{port}: {said:?}");
        let waited = begun.elapsed();
        assert!(
            waited >= Duration::from_millis(1900),
            "{port}: 408 after {waited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_mid_request_past_the_idle_timeout_gets_408_on_both_roads() {
    let lab = Lab::new("stall", 62);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let config = lab.both_roads("limits", "\"idle_timeout.timeout_seconds\" = 2", target, "");
    let ports = [lab.node('a', 8080), lab.node('a', 8081)];
    let _elbd = Elbd::start(&lab, &config, &[], &ports);
    let mut roads = tokio::task::JoinSet::new();
    // Half a body is the relay's alone to time: on the general path this target answers
    // before the body is whole, and the answer goes back at once.
    for (port, body_stall) in ports.into_iter().zip([true, false]) {
        roads.spawn(stalls_and_a_trickle(port, body_stall));
    }
    while let Some(road) = roads.join_next().await {
        road.unwrap();
    }
}

/// On `port` (idle timeout 2 s, header timeout 60 s): half a head, on a new connection and
/// after a request on a kept-alive one, and half a body if `body_stall`, get AWS's 408 at the
/// idle timeout, where the relay, and hyper on the general path, closed without a word; a
/// head that trickles in for longer than the idle timeout, a piece a second, is answered, and
/// its connection, idle after, is closed at the idle timeout.
async fn stalls_and_a_trickle(port: SocketAddr, body_stall: bool) {
    let half_head: &[u8] = b"GET / HTTP/1.1\r\nHost: lim";
    let half_body: &[u8] =
        b"POST / HTTP/1.1\r\nHost: limits.test\r\nContent-Length: 10\r\n\r\nhello";
    let mut stalls = vec![(half_head, false), (half_head, true)];
    if body_stall {
        stalls.push((half_body, false));
    }
    for (stall, kept) in stalls {
        let mut stream = TcpStream::connect(port).await.unwrap();
        if kept {
            assert!(exchange(&mut stream).await.starts_with("http/1.1 200"));
        }
        stream.write_all(stall).await.unwrap();
        let begun = Instant::now();
        let said = read_to_close(&mut stream).await;
        let waited = begun.elapsed();
        assert!(said.starts_with("HTTP/1.1 408 "), "{port}: {said:?}");
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
            "{port}: 408 after {waited:?}"
        );
    }
    let mut stream = TcpStream::connect(port).await.unwrap();
    for (i, piece) in GET.chunks(GET.len() / 5 + 1).enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        stream.write_all(piece).await.unwrap();
    }
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("http/1.1 200"), "{port}: {answer}");
    // Idle between requests for the idle timeout, the connection is closed without a word.
    let answered = Instant::now();
    assert_eq!(read_to_close(&mut stream).await, "", "{port}");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(1900) && idle < Duration::from_millis(4500),
        "{port}: closed after {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_hyper_cannot_take_get_albs_400_page_on_both_roads() {
    let lab = Lab::new("malformed", 72);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    // A target that takes its time: a refusal waits for the answers before it.
    let _backend = Backend::start(target, Duration::from_millis(200)).await;
    let config = lab.both_roads("limits", "", target, "");
    let ports = [lab.node('a', 8080), lab.node('a', 8081)];
    let _elbd = Elbd::start(&lab, &config, &[], &ports);
    let fields = |n: usize| "X-Field: yes\r\n".repeat(n);
    let get = |extra: &str| format!("GET / HTTP/1.1\r\nHost: limits.test\r\n{extra}\r\n");
    for port in ports {
        // Each is answered with ALB's page, where hyper answered with a bare status line.
        for (what, request) in [
            ("obs-fold", get("X-A: b\r\n  c\r\n")),
            ("a field without a colon", get("Bad Field\r\n")),
            ("no request line", "GARBAGE\r\n\r\n".to_owned()),
            // Refused at once, with no blank line to wait for (the header timeout is 60 s).
            (
                "a TLS handshake",
                "\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03".to_owned(),
            ),
            ("HTTP/0.9", "GET /\r\n".to_owned()),
            ("101 fields", get(&fields(100))),
            (
                "a Content-Length list",
                get("Content-Length: 5, 5\r\n") + "hello",
            ),
            (
                "a head over 96 KB",
                get(&format!("X-Big: {}\r\n", "a".repeat(100_000))),
            ),
        ] {
            let mut stream = TcpStream::connect(port).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let said = read_to_close(&mut stream).await;
            assert!(albs_400(&said), "{port}, {what}: {said:?}");
        }
        // 96 fields are taken (the relay takes 64 and hands the rest to the general path),
        // and reach the target with ALB's four: its hyper takes 100.
        let mut stream = TcpStream::connect(port).await.unwrap();
        stream.write_all(get(&fields(95)).as_bytes()).await.unwrap();
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("http/1.1 200"), "{port}: {answer}");
        // Pipelined behind two good requests, a bad one is answered after them; sent in two
        // writes, its first half looking well, it still gets the page.
        let half = "GET / HTTP/1.1\r\nHost: limits.test\r\nX-A: b\r\n";
        stream
            .write_all([get(""), get(""), half.to_owned()].concat().as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.write_all(b" c\r\n\r\n").await.unwrap();
        let said = read_to_close(&mut stream).await;
        let page = said.find("HTTP/1.1 400 ").unwrap_or(0);
        assert_eq!(
            said[..page].matches("HTTP/1.1 200 OK").count(),
            2,
            "{port}: {said:?}"
        );
        assert!(albs_400(&said[page..]), "{port}, pipelined: {said:?}");
    }
}

/// ALB's 400 page, whole, and the end of the connection after it.
fn albs_400(said: &str) -> bool {
    let said = said.to_ascii_lowercase();
    said.starts_with("http/1.1 400 bad request\r\n")
        && said.contains("\r\nserver: awselb/2.0\r\n")
        && said.contains("\r\nconnection: close\r\n")
        && said.ends_with("<center><h1>400 bad request</h1></center>\r\n</body>\r\n</html>\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_its_client_keep_alive_closes_after_its_next_request() {
    let lab = Lab::new("keepalive", 52);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    // AWS's least client keep-alive is 60 s; the idle timeout lets the clients wait longer.
    let attributes = "\"client_keep_alive.seconds\" = 60, \"idle_timeout.timeout_seconds\" = 120";
    let config = lab.both_roads("limits", attributes, target, "");
    let ports = [lab.node('a', 8080), lab.node('a', 8081)];
    let _elbd = Elbd::start(&lab, &config, &[], &ports);
    let mut streams = Vec::new();
    for port in ports {
        let mut stream = TcpStream::connect(port).await.unwrap();
        let answer = exchange(&mut stream).await;
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(61)).await;
    for (mut stream, port) in streams.into_iter().zip(ports) {
        let answer = exchange(&mut stream).await;
        assert!(answer.starts_with("http/1.1 200"), "{port}: {answer}");
        assert!(answer.contains("connection: close"), "{port}: {answer}");
        assert_eq!(read_to_close(&mut stream).await, "", "{port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_answers_503_and_takes_clients_again_when_one_leaves() {
    let lab = Lab::new("maxconn", 64);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let config = lab.both_roads("limits", "", target, "");
    let ports = [lab.node('a', 8080), lab.node('a', 8081)];
    let metrics = SocketAddr::from((lab.ip('a', 250), 9100)).to_string();
    let flags = [
        "--max-connections-per-node",
        "4",
        "--metrics-listen",
        &metrics,
    ];
    let _elbd = Elbd::start(&lab, &config, &flags, &ports);
    // Four kept-alive clients over both listeners fill the node (once the readiness
    // probes' connections are gone: tried until each is served).
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(served(ports[i % 2]).await);
    }
    for port in ports {
        let mut stream = TcpStream::connect(port).await.unwrap();
        stream.write_all(GET).await.unwrap();
        let said = read_to_close(&mut stream).await;
        assert!(
            said.starts_with("HTTP/1.1 503 Service Temporarily Unavailable\r\n"),
            "{port}: {said:?}"
        );
    }
    // Counted as AWS counts refusals at its connection limit.
    let scraped = curl(&format!("http://{metrics}/metrics"), &[]).body;
    let rejected: f64 = (scraped.lines())
        .filter(|l| l.starts_with("aws_applicationelb_rejected_connection_count_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 2.0, "{scraped}");
    // Zone b's node is another node: it has room.
    let mut other = TcpStream::connect(lab.node('b', 8080)).await.unwrap();
    assert!(exchange(&mut other).await.starts_with("http/1.1 200"));
    drop(held.pop());
    served(ports[0]).await;
}

/// A connection to `port` that was served a request, tried again while the node is full
/// (for up to 5 s).
async fn served(port: SocketAddr) -> TcpStream {
    let start = Instant::now();
    loop {
        let mut stream = TcpStream::connect(port).await.unwrap();
        stream.write_all(GET).await.unwrap();
        let mut head = [0u8; 12];
        if stream.read_exact(&mut head).await.is_ok() && head.starts_with(b"HTTP/1.1 200") {
            // The rest of the answer: one read holds it.
            let mut rest = [0u8; 4096];
            let _ = stream.read(&mut rest).await;
            return stream;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{port} stayed full"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
