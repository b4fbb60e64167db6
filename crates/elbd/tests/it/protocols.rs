//! Beyond plain requests: WebSocket upgrades proxied both ways, h2c under h2load, and the
//! load balancer's own 405 and 463.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Elbd, Lab};

/// A backend that answers 200, or switches protocols and echoes every byte back.
async fn echo_backend(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(|mut req: Request<Incoming>| async move {
                if !req.headers().contains_key("upgrade") {
                    return Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"plain",
                    ))));
                }
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else { return };
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response
                    .headers_mut()
                    .insert("upgrade", "websocket".parse().unwrap());
                response
                    .headers_mut()
                    .insert("connection", "Upgrade".parse().unwrap());
                Ok(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// Sends `head` on a new connection to `node` and returns the response head.
async fn exchange_head(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed after {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_h2c_and_the_load_balancers_own_answers() {
    let lab = Lab::new("protocols", 20);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    echo_backend(target).await;
    let config = format!(
        "{}\n[[load_balancer]]\nname = \"p\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"p-tg\" }}\n\
         [[target_group]]\nname = \"p-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &lab.write("elbd.toml", &config), &[], &[node]);
    elbd.wait_healthy(2);

    // A WebSocket handshake through elbd, then bytes both ways over the same connection.
    let mut ws = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(
        &mut ws,
        "GET /chat HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for message in ["hello", "over the tunnel"] {
        ws.write_all(message.as_bytes()).await.unwrap();
        let mut echo = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), ws.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, message.as_bytes());
    }

    // TRACE gets 405 and more than 30 X-Forwarded-For addresses 463, from elbd itself.
    let mut plain = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut plain, "TRACE / HTTP/1.1\r\nHost: p.test\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.1 405") && head.contains("awselb/2.0"),
        "{head}"
    );
    let addresses: Vec<String> = (1..=31).map(|i| format!("10.0.0.{i}")).collect();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: p.test\r\nX-Forwarded-For: {}\r\n\r\n",
        addresses.join(", ")
    );
    let mut plain = TcpStream::connect(node).await.unwrap();
    let head = exchange_head(&mut plain, &request).await;
    assert!(head.starts_with("HTTP/1.1 463"), "{head}");

    // h2c with prior knowledge, multiplexed.
    let out = Command::new("h2load")
        .args(["-n", "20000", "-c", "10", "-m", "10"])
        .arg(format!("http://{node}/"))
        .output()
        .expect("h2load runs (Debian package nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or_default();
    eprintln!("h2load through elbd: {requests}");
    assert!(
        requests.contains("20000 succeeded, 0 failed, 0 errored"),
        "{text}"
    );
}
