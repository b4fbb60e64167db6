//! The HTTP/1.1 relay, byte by byte: pipelined requests, request bodies over many reads,
//! chunked, HEAD, interim and close-delimited responses passed on as the target sent them,
//! targets that drop kept-alive connections, and a connection handed to the general path
//! mid-way. Then the same target for HTTP/2 clients, whose requests the general path's own
//! HTTP/1.1 exchange carries. The target is a hand-written HTTP/1.1 server, so that every
//! framing is exact.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper::http;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Elbd, Lab};

/// Reads one HTTP/1.1 message head (through the blank line) from `stream`, with what was read
/// after it kept in `rest`.
async fn read_head(stream: &mut (impl AsyncRead + Unpin), rest: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(rest[..end + 4].to_vec()).unwrap();
            rest.drain(..end + 4);
            return Some(head);
        }
        let mut buf = [0u8; 8192];
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        rest.extend_from_slice(&buf[..n]);
    }
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads `n` body bytes after a head.
async fn read_exact(stream: &mut TcpStream, rest: &mut Vec<u8>, n: usize) -> Vec<u8> {
    while rest.len() < n {
        let mut buf = [0u8; 16384];
        let got = stream.read(&mut buf).await.unwrap();
        assert!(got > 0, "closed after {} of {n} bytes", rest.len());
        rest.extend_from_slice(&buf[..got]);
    }
    rest.drain(..n).collect()
}

/// Reads one CRLF-ended line, without its CRLF.
async fn read_line(stream: &mut TcpStream, rest: &mut Vec<u8>) -> Vec<u8> {
    loop {
        if let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
            let line = rest[..end].to_vec();
            rest.drain(..end + 2);
            return line;
        }
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed in a chunked body");
        rest.extend_from_slice(&buf[..n]);
    }
}

/// Reads a chunked body (without extensions) and returns its data and its trailer lines,
/// each ended by CRLF.
async fn dechunk(stream: &mut TcpStream, rest: &mut Vec<u8>) -> (Vec<u8>, String) {
    let mut data = Vec::new();
    loop {
        let line = read_line(stream, rest).await;
        let size = usize::from_str_radix(std::str::from_utf8(&line).unwrap(), 16).unwrap();
        if size == 0 {
            let mut trailers = String::new();
            loop {
                let line = String::from_utf8(read_line(stream, rest).await).unwrap();
                if line.is_empty() {
                    return (data, trailers);
                }
                trailers.push_str(&line);
                trailers.push_str("\r\n");
            }
        }
        let chunk = read_exact(stream, rest, size + 2).await;
        data.extend_from_slice(&chunk[..size]);
    }
}

/// The size of `/large`'s body: far more than the socket buffers on the way hold.
const LARGE: usize = 64 << 20;

const CHUNKED: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 12\r\n\r\n";

/// What the target writes for `path`, piece by piece.
fn pieces(path: &str, head: &str, body_len: usize) -> Vec<Vec<u8>> {
    const CHUNKED_HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nX-Hop: 1\r\n\
          Connection: X-Hop\r\n\r\n";
    match path {
        "/echo" => {
            let text = format!("{body_len} bytes\n{head}");
            let length = text.len();
            vec![format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n{text}").into_bytes()]
        }
        "/chunked" => vec![
            [CHUNKED_HEAD, &CHUNKED[..6]].concat(),
            CHUNKED[6..20].to_vec(),
            CHUNKED[20..].to_vec(),
        ],
        "/interim" => vec![
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal".to_vec(),
        ],
        "/close" => vec![
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ".to_vec(),
            b"the end".to_vec(),
        ],
        "/bye" => vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".to_vec()],
        // A chunk size that is not hex, in the bytes that come with the head.
        "/badchunk" => {
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
                    .to_vec(),
            ]
        }
        // Takes the request, body and all, and never answers.
        "/silent" => Vec::new(),
        "/large" => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {LARGE}\r\n\r\n");
            vec![head.into_bytes(), vec![b'l'; LARGE]]
        }
        "/early" => {
            vec![b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo long".to_vec()]
        }
        _ => vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
            vec![b'x'; 100],
        ],
    }
}

/// The target: answers by path, writing each response in pieces so that the relay sees
/// partial heads and bodies.
async fn target(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut rest = Vec::new();
                while let Some(head) = read_head(&mut stream, &mut rest).await {
                    let path = head.split(' ').nth(1).unwrap().to_owned();
                    // `/early` answers before reading the body.
                    let body = if path == "/early" {
                        Vec::new()
                    } else if header(&head, "transfer-encoding").is_some() {
                        dechunk(&mut stream, &mut rest).await.0
                    } else {
                        let length =
                            header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
                        read_exact(&mut stream, &mut rest, length).await
                    };
                    let pieces = pieces(&path, &head, body.len());
                    let head_request = head.starts_with("HEAD ");
                    for (i, piece) in pieces.iter().enumerate() {
                        if head_request && i > 0 {
                            break;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    // `/close` ends by closing; `/bye` closes without saying so.
                    if path == "/close" || path == "/bye" {
                        return;
                    }
                    // `/early` reads nothing more: a proxy that sends all of the body before
                    // it reads the answer stalls once the socket buffers are full.
                    if path == "/early" {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                }
            });
        }
    });
}

/// Sends `request` on a new connection to `node`: all it reads until the connection ends
/// (within 5 s).
async fn until_closed(node: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(node).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut all))
        .await
        .expect("the answer and the connection's end")
        .unwrap();
    String::from_utf8(all).unwrap()
}

/// Reads a response with a Content-Length body: head and body.
async fn response(stream: &mut TcpStream, rest: &mut Vec<u8>) -> (String, Vec<u8>) {
    let head = read_head(stream, rest).await.expect("a response");
    let length = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    let body = read_exact(stream, rest, length).await;
    (head, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_passes_every_framing_on_as_sent() {
    let lab = Lab::new("relay", 28);
    let backend = SocketAddr::from((lab.ip('a', 10), 9001));
    target(backend).await;
    let text = format!(
        "{}\n\
         [[load_balancer]]\nname = \"relay\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"script\" }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8081\ndefault_action = {{ forward = \"empty\" }}\n\
         [[target_group]]\nname = \"empty\"\nprotocol = \"HTTP\"\nport = 9001\n\
         [[target_group]]\nname = \"script\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{backend}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    let node = lab.node('a', 8080);
    let empty = lab.node('a', 8081);
    let mut elbd = Elbd::start(&lab, &config, &[], &[node, empty]);
    let mut client = TcpStream::connect(node).await.unwrap();
    let mut rest = Vec::new();

    // Three pipelined requests in one write, answered in order on one connection.
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: relay.test\r\n\r\n");
    let three = [get("/a"), get("/echo"), get("/b")].concat();
    client.write_all(three.as_bytes()).await.unwrap();
    for path in ["/a", "/echo", "/b"] {
        let (head, body) = response(&mut client, &mut rest).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
        let echoed = String::from_utf8_lossy(&body);
        if path == "/echo" {
            assert!(
                echoed.starts_with("0 bytes\nGET /echo HTTP/1.1\r\n"),
                "{echoed}"
            );
        } else {
            assert_eq!(body.len(), 100);
        }
    }

    // A 100 KB body sent in pieces after its head; hop-by-hop headers stay behind, and the
    // target gets ALB's headers.
    let body = vec![b'b'; 100 * 1024];
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: relay.test\r\nContent-Length: {}\r\nConnection: keep-alive, X-Hop\r\n\
         X-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Kept: yes\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(30_000) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        client.write_all(piece).await.unwrap();
    }
    let (_, echoed) = response(&mut client, &mut rest).await;
    let echoed = String::from_utf8(echoed).unwrap();
    assert!(
        echoed.starts_with("102400 bytes\nPOST /echo HTTP/1.1\r\n"),
        "{echoed}"
    );
    let seen = |name| header(&echoed, name).map(str::to_owned);
    assert_eq!(seen("x-kept").as_deref(), Some("yes"));
    assert_eq!(seen("host").as_deref(), Some("relay.test:8080"));
    let peer = client.local_addr().unwrap().ip();
    assert_eq!(seen("x-forwarded-for"), Some(format!("10.0.0.1, {peer}")));
    assert_eq!(seen("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen("x-forwarded-port").as_deref(), Some("8080"));
    assert!(seen("x-amzn-trace-id").is_some_and(|t| t.starts_with("Root=1-")));
    for gone in ["connection", "x-hop", "keep-alive"] {
        assert_eq!(seen(gone), None, "{gone} reached the target: {echoed}");
    }

    // A chunked response arrives byte for byte as the target wrote it, less its hop-by-hop
    // headers; the connection goes on.
    client.write_all(get("/chunked").as_bytes()).await.unwrap();
    let head = read_head(&mut client, &mut rest).await.unwrap();
    assert_eq!(
        header(&head, "transfer-encoding"),
        Some("chunked"),
        "{head}"
    );
    assert_eq!(header(&head, "x-hop"), None, "{head}");
    assert_eq!(header(&head, "trailer"), Some("X-Sum"), "{head}");
    assert_eq!(
        read_exact(&mut client, &mut rest, CHUNKED.len()).await,
        CHUNKED
    );

    // HEAD: the length is announced, no body follows.
    client
        .write_all(b"HEAD /a HTTP/1.1\r\nHost: relay.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut client, &mut rest).await.unwrap();
    assert_eq!(header(&head, "content-length"), Some("100"));

    // An interim 103 is passed on before the final response.
    client.write_all(get("/interim").as_bytes()).await.unwrap();
    let early = read_head(&mut client, &mut rest).await.unwrap();
    assert!(early.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{early}");
    let (head, body) = response(&mut client, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(body, b"final");

    // A target that closes every connection after its response without saying so: the
    // relay does not reuse them, or retries on a new one, and every request succeeds.
    for _ in 0..10 {
        client.write_all(get("/bye").as_bytes()).await.unwrap();
        let (head, body) = response(&mut client, &mut rest).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, b"bye");
    }
    // Its last close comes 5 ms after its answer. A POST sent before it lands would fail (a
    // target may have taken a request it closes on, and a POST is not sent twice): the
    // next one waits until the pool has seen the close.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A chunked request is for the general path: the connection is handed over with what
    // was read, and goes on there.
    let chunked = "POST /echo HTTP/1.1\r\nHost: relay.test\r\nTransfer-Encoding: chunked\r\n\r\n";
    client.write_all(chunked.as_bytes()).await.unwrap();
    client.write_all(b"3\r\nabc\r\n0\r\n\r\n").await.unwrap();
    let (_, echoed) = response(&mut client, &mut rest).await;
    assert!(
        String::from_utf8_lossy(&echoed).starts_with("3 bytes\n"),
        "{echoed:?}"
    );
    client.write_all(get("/echo").as_bytes()).await.unwrap();
    let (head, _) = response(&mut client, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");

    // The load balancer's own answers keep the connection when the request was read whole;
    // a HEAD gets the head alone.
    let mut refused = TcpStream::connect(empty).await.unwrap();
    let mut rest = Vec::new();
    refused
        .write_all(b"HEAD /a HTTP/1.1\r\nHost: relay.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut refused, &mut rest).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert_eq!(header(&head, "content-length"), Some("162"), "{head}");
    for _ in 0..2 {
        refused.write_all(get("/a").as_bytes()).await.unwrap();
        let (head, body) = response(&mut refused, &mut rest).await;
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert_eq!(header(&head, "connection"), None, "{head}");
        assert_eq!(body.len(), 162);
    }

    // A chunked body that breaks in the bytes that came with its head is a 502, on the relay
    // and on the general path (which an `Expect` takes it to); it was an empty reply there.
    let expect = "GET /badchunk HTTP/1.1\r\nHost: relay.test\r\nExpect: 100-continue\r\n\r\n";
    for ask in [get("/badchunk"), expect.to_owned()] {
        let mut broken = TcpStream::connect(node).await.unwrap();
        broken.write_all(ask.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let mut head = read_head(&mut broken, &mut rest).await.unwrap();
        while head.starts_with("HTTP/1.1 100") {
            head = read_head(&mut broken, &mut rest).await.unwrap();
        }
        assert!(head.starts_with("HTTP/1.1 502 "), "{ask}: {head}");
    }

    // A close-delimited response ends the client's connection too, and says so.
    let all = until_closed(node, &get("/close")).await;
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert_eq!(header(&all, "connection"), Some("close"), "{all}");
    assert!(all.ends_with("\r\n\r\nuntil the end"), "{all}");

    // An HTTP/1.0 client that asks to be kept alive (the general path's) cannot take a chunked
    // body: it gets the body to the connection's end, and is told so.
    let ask = "GET /chunked HTTP/1.0\r\nHost: relay.test\r\nConnection: keep-alive\r\n\r\n";
    let all = until_closed(node, ask).await;
    assert!(all.starts_with("HTTP/1.0 200 OK\r\n"), "{all}");
    assert_eq!(header(&all, "connection"), Some("close"), "{all}");
    assert_eq!(header(&all, "transfer-encoding"), None, "{all}");
    assert!(all.ends_with("\r\n\r\nhello, world"), "{all}");

    // A client that asks to close gets its whole answer and the end of the connection, in
    // one piece or after several (the last bytes wait in the kernel for the FIN to join
    // them: nothing is held past it).
    let hundred = "x".repeat(100);
    for (path, body, ending) in [
        (
            "/echo",
            "\r\n\r\n0 bytes\nGET /echo HTTP/1.1\r\n",
            "\r\n\r\n",
        ),
        ("/x", "\r\n\r\nxx", hundred.as_str()),
        ("/chunked", "\r\n\r\n5\r\nhello", "0\r\nX-Sum: 12\r\n\r\n"),
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: relay.test\r\nConnection: close\r\n\r\n");
        let all = until_closed(node, &request).await;
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {all}");
        assert_eq!(header(&all, "connection"), Some("close"), "{path}: {all}");
        assert!(all.contains(body) && all.ends_with(ending), "{path}: {all}");
    }

    // Stickiness is for the general path: once the group turns sticky, the next request on
    // a kept-alive connection of the relay moves it there, and gets its cookie.
    let mut kept = TcpStream::connect(node).await.unwrap();
    let mut rest = Vec::new();
    kept.write_all(get("/a").as_bytes()).await.unwrap();
    let (head, _) = response(&mut kept, &mut rest).await;
    let sticky = |head: &str| {
        head.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("set-cookie: awsalb="))
    };
    assert!(!sticky(&head), "{head}");
    lab.write(
        "elbd.toml",
        &format!("{text}attributes = {{ \"stickiness.enabled\" = true }}\n"),
    );
    elbd.signal("HUP");
    let log = elbd.log.clone();
    elbd.wait_until("the reload", || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("config reloaded")
    });
    kept.write_all(get("/a").as_bytes()).await.unwrap();
    let (head, body) = response(&mut kept, &mut rest).await;
    assert!(sticky(&head), "{head}");
    assert_eq!(body.len(), 100);
}

/// A request body sent in `parts`, whose length the client does not announce.
struct Unsized {
    parts: Vec<Bytes>,
}

impl Body for Unsized {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = (!self.parts.is_empty()).then(|| Ok(Frame::data(self.parts.remove(0))));
        Poll::Ready(next)
    }
}

type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// What an HTTP/2 client gets: status, headers, body and trailers.
struct H2Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    trailers: Option<http::HeaderMap>,
}

async fn h2(
    sender: &hyper::client::conn::http2::SendRequest<AnyBody>,
    request: http::request::Builder,
    body: AnyBody,
) -> H2Reply {
    let request = request.body(body).unwrap();
    let response = sender.clone().send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    H2Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes().to_vec(),
        trailers,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_get_every_framing_of_an_http1_target() {
    let lab = Lab::new("exchange", 60);
    let backend = SocketAddr::from((lab.ip('a', 10), 9001));
    target(backend).await;
    let text = format!(
        "{}\n\
         [[load_balancer]]\nname = \"exchange\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"script\" }}\n\
         [[target_group]]\nname = \"script\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{backend}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    let node = lab.node('a', 8080);
    let _elbd = Elbd::start(&lab, &config, &[], &[node]);
    let stream = TcpStream::connect(node).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let get = |path: &str| http::Request::get(format!("http://exchange.test{path}"));
    let empty = || Full::new(Bytes::new()).boxed();

    let reply = h2(&sender, get("/a"), empty()).await;
    assert_eq!((reply.status, reply.body.len()), (200, 100));
    assert_eq!(reply.headers["content-length"], "100");

    // A chunked response arrives de-chunked, its trailer as an HTTP/2 trailer; the target's
    // hop-by-hop headers stay behind.
    let reply = h2(&sender, get("/chunked"), empty()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"hello, world");
    assert_eq!(reply.trailers.expect("trailers")["x-sum"], "12");
    assert!(!reply.headers.contains_key("x-hop"), "{:?}", reply.headers);
    assert_eq!(reply.headers["trailer"], "X-Sum");

    // An HTTP/1.1 client the relay leaves to the general path (it expects a 100) gets the
    // trailer too when it takes trailers: hyper's server sends those Trailer names.
    let mut client = TcpStream::connect(node).await.unwrap();
    let ask = "GET /chunked HTTP/1.1\r\nHost: exchange.test\r\nTE: trailers\r\n\
               Expect: 100-continue\r\n\r\n";
    client.write_all(ask.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let mut head = read_head(&mut client, &mut rest).await.unwrap();
    while head.starts_with("HTTP/1.1 100") {
        head = read_head(&mut client, &mut rest).await.unwrap();
    }
    assert_eq!(header(&head, "trailer"), Some("X-Sum"), "{head}");
    let (body, trailers) = dechunk(&mut client, &mut rest).await;
    assert_eq!(body, b"hello, world");
    assert_eq!(trailers.to_ascii_lowercase(), "x-sum: 12\r\n");

    // An interim 103 is skipped (HTTP/2 responses here carry none); a HEAD has no body.
    let reply = h2(&sender, get("/interim"), empty()).await;
    assert_eq!((reply.status, &reply.body[..]), (200, &b"final"[..]));
    let head = http::Request::head("http://exchange.test/a");
    let reply = h2(&sender, head, empty()).await;
    assert_eq!((reply.status, reply.body.len()), (200, 0));
    assert_eq!(reply.headers["content-length"], "100");

    // A chunked body that breaks with its head is a 502, as on the relay (the stream was
    // reset).
    let reply = h2(&sender, get("/badchunk"), empty()).await;
    assert_eq!(reply.status, 502);

    // A close-delimited response.
    let reply = h2(&sender, get("/close"), empty()).await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (200, &b"until the end"[..])
    );

    // A body of known length goes with its Content-Length; HTTP/2's cookie crumbs go joined.
    let post = || {
        http::Request::post("http://exchange.test/echo")
            .header("cookie", "a=1")
            .header("cookie", "b=2")
    };
    let known = Full::new(Bytes::from(vec![b'k'; 100 * 1024])).boxed();
    let reply = h2(&sender, post().header("content-length", "102400"), known).await;
    let echoed = String::from_utf8(reply.body).unwrap();
    assert!(
        echoed.starts_with("102400 bytes\nPOST /echo HTTP/1.1\r\n"),
        "{echoed}"
    );
    assert_eq!(
        header(&echoed, "content-length"),
        Some("102400"),
        "{echoed}"
    );
    assert_eq!(header(&echoed, "cookie"), Some("a=1; b=2"), "{echoed}");
    assert_eq!(
        header(&echoed, "x-forwarded-proto"),
        Some("http"),
        "{echoed}"
    );
    assert!(header(&echoed, "x-amzn-trace-id").is_some(), "{echoed}");

    // One of unknown length goes chunked.
    let parts = [&b"one "[..], b"two ", b"three"]
        .map(Bytes::from_static)
        .to_vec();
    let reply = h2(&sender, post(), Unsized { parts }.boxed()).await;
    let echoed = String::from_utf8(reply.body).unwrap();
    assert!(echoed.starts_with("13 bytes\n"), "{echoed}");
    assert_eq!(
        header(&echoed, "transfer-encoding"),
        Some("chunked"),
        "{echoed}"
    );

    // A target that answers before it has read a large body: its answer comes while the
    // body is still going, not after the idle timeout (60 s, then a 504).
    let large = Full::new(Bytes::from(vec![b'u'; 8 << 20])).boxed();
    let early = http::Request::post("http://exchange.test/early").header("content-length", 8 << 20);
    let reply = h2(&sender, early, large).await;
    assert_eq!((reply.status, &reply.body[..]), (413, &b"too long"[..]));

    // Many streams at once, each on a connection of its own to the target.
    let mut streams = tokio::task::JoinSet::new();
    for i in 0..40 {
        let sender = sender.clone();
        streams.spawn(async move {
            let request = get("/echo").header("x-stream", i);
            let reply = h2(&sender, request, Full::new(Bytes::new()).boxed()).await;
            (i, reply)
        });
    }
    while let Some(answered) = streams.join_next().await {
        let (i, reply) = answered.unwrap();
        assert_eq!(reply.status, 200);
        let echoed = String::from_utf8(reply.body).unwrap();
        assert_eq!(
            header(&echoed, "x-stream"),
            Some(&*i.to_string()),
            "{echoed}"
        );
    }

    // A target that closes after each response without saying so: every GET is answered,
    // on a new connection or sent again on one.
    for _ in 0..10 {
        let reply = h2(&sender, get("/bye"), empty()).await;
        assert_eq!((reply.status, &reply.body[..]), (200, &b"bye"[..]));
    }
}

/// A request body that sends `left` bytes of `x`: one at once, then one each `every`.
struct Trickle {
    left: usize,
    every: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Trickle {
    fn body(left: usize, every: Duration) -> AnyBody {
        let timer = Box::pin(tokio::time::sleep(Duration::ZERO));
        let trickle = Self { left, every, timer };
        BodyExt::boxed(trickle)
    }
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        std::task::ready!(self.timer.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + self.every;
        self.timer.as_mut().reset(next);
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
    }
}

/// An HTTP/2 (prior knowledge) target that reads each request's whole body, then says how
/// long it was.
async fn h2_target(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let said = Full::new(Bytes::from(format!("{} bytes", body.len())));
                    Ok::<_, hyper::Error>(http::Response::new(said))
                },
            );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_flows_outlasts_the_idle_timeout_and_one_that_stalls_gets_408() {
    let lab = Lab::new("upload", 67);
    let (h1_backend, h2_backend) = (
        SocketAddr::from((lab.ip('a', 10), 9001)),
        SocketAddr::from((lab.ip('a', 11), 9002)),
    );
    target(h1_backend).await;
    h2_target(h2_backend).await;
    // 8080 on the relay; 8081 on the general path's own exchange; 8082 to an HTTP/2 target,
    // through hyper's client.
    let h2_group = format!(
        "[[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8082\ndefault_action = {{ forward = \"h2\" }}\n\
         [[target_group]]\nname = \"h2\"\nprotocol = \"HTTP\"\nprotocol_version = \"HTTP2\"\nport = 9002\n\
         targets = [\"{h2_backend}\"]\nhealth_check = {{ matcher = \"200-499\" }}\n"
    );
    let idle = "\"idle_timeout.timeout_seconds\" = 2";
    let config = lab.both_roads("upload", idle, h1_backend, &h2_group);
    let nodes = [8080, 8081, 8082].map(|port| lab.node('a', port));
    let _elbd = Elbd::start(&lab, &config, &[], &nodes);
    let every = Duration::from_millis(600);

    // Ten bytes, one each 0.6 s: 6 s of upload under a 2 s idle timeout, answered in full on
    // either HTTP/1.1 road (the general path cut it with a 504 at 2 s).
    for node in &nodes[..2] {
        let mut stream = TcpStream::connect(node).await.unwrap();
        let head = "POST /echo HTTP/1.1\r\nHost: upload.test\r\nContent-Length: 10\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        for _ in 0..10 {
            tokio::time::sleep(every).await;
            stream.write_all(b"x").await.unwrap();
        }
        let mut rest = Vec::new();
        let (head, body) = response(&mut stream, &mut rest).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{node}: {head}");
        assert!(body.starts_with(b"10 bytes\n"), "{node}");
    }
    // So over HTTP/2, to the HTTP/1.1 target (the exchange) and to the HTTP/2 one (hyper's
    // client).
    // (A connection each time: an idle one closes at the idle timeout.)
    let connect = |node: SocketAddr| async move {
        let stream = TcpStream::connect(node).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        sender
    };
    let post = || http::Request::post("http://upload.test/echo");
    for node in [nodes[0], nodes[2]] {
        let reply = h2(&connect(node).await, post(), Trickle::body(10, every)).await;
        assert_eq!(reply.status, 200);
        assert!(reply.body.starts_with(b"10 bytes"), "{:?}", reply.body);
    }

    // A body that stops half-way: the client's timeout (AWS's 408) at the idle timeout, not
    // the target's 504.
    let mut stream = TcpStream::connect(nodes[1]).await.unwrap();
    let half = "POST /echo HTTP/1.1\r\nHost: upload.test\r\nContent-Length: 10\r\n\r\nhello";
    stream.write_all(half.as_bytes()).await.unwrap();
    let begun = std::time::Instant::now();
    let mut said = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut said)).await;
    let waited = begun.elapsed();
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
        "408 after {waited:?}"
    );
    for node in [nodes[0], nodes[2]] {
        let sender = connect(node).await;
        let begun = std::time::Instant::now();
        let stalled = Trickle::body(2, Duration::from_secs(30));
        let reply = h2(&sender, post(), stalled).await;
        let waited = begun.elapsed();
        assert_eq!(
            reply.status,
            408,
            "{:?}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            waited >= Duration::from_millis(1900) && waited < Duration::from_secs(4),
            "408 after {waited:?}"
        );
    }

    // A target that takes the whole body and then says nothing: its timeout, a 504, on
    // every road.
    let silent = "POST /silent HTTP/1.1\r\nHost: upload.test\r\nContent-Length: 5\r\n\r\nhello";
    for node in &nodes[..2] {
        let mut stream = TcpStream::connect(node).await.unwrap();
        stream.write_all(silent.as_bytes()).await.unwrap();
        let begun = std::time::Instant::now();
        let mut rest = Vec::new();
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream, &mut rest));
        let head = head.await.unwrap().unwrap_or_default();
        let waited = begun.elapsed();
        assert!(head.starts_with("HTTP/1.1 504"), "{node}: {head}");
        assert!(
            waited >= Duration::from_millis(1900),
            "{node}: 504 after {waited:?}"
        );
    }
    let sender = connect(nodes[0]).await;
    let body = Full::new(Bytes::from_static(b"hello")).boxed();
    let reply = h2(
        &sender,
        http::Request::post("http://upload.test/silent"),
        body,
    )
    .await;
    assert_eq!(
        reply.status,
        504,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_response_is_let_go_after_the_idle_timeout() {
    let lab = Lab::new("unread", 63);
    let backend = SocketAddr::from((lab.ip('a', 10), 9001));
    target(backend).await;
    let idle = "\"idle_timeout.timeout_seconds\" = 2";
    let config = lab.both_roads("unread", idle, backend, "");
    let nodes = [8080, 8081].map(|port| lab.node('a', port));
    let _elbd = Elbd::start(&lab, &config, &[], &nodes);
    for node in nodes {
        let mut stream = TcpStream::connect(node).await.unwrap();
        let ask = "GET /large HTTP/1.1\r\nHost: unread.test\r\n\r\n";
        stream.write_all(ask.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        let head = read_head(&mut stream, &mut rest).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{node}: {head}");
        // Nothing read for three times the timeout: the connection is gone by then, and what
        // is left to read ends short of the body.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let mut got = rest.len();
        let mut buf = vec![0u8; 1 << 20];
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                got += n;
            }
        });
        assert!(
            drained.await.is_ok(),
            "{node}: still open after {got} bytes"
        );
        assert!(got < LARGE, "{node}: the whole body came");
    }
}
