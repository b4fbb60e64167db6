//! The load balancer's own answers when targets fail: 502, 503 and 504 as AWS gives them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::StatusCode;

use crate::harness::{Elbd, Lab, ProcessBackend, client, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_missing_and_hung_targets() {
    let lab = Lab::new("errors", 3);
    let refused = SocketAddr::from((lab.ip('a', 20), 9001));
    let hung = SocketAddr::from((lab.ip('a', 21), 9001));
    let sleeper = ProcessBackend::start(hung);
    let config = format!(
        "{}\n\
         [[load_balancer]]\nname = \"errors\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         attributes = {{ \"idle_timeout.timeout_seconds\" = 2 }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8001\ndefault_action = {{ forward = \"refused\" }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8002\ndefault_action = {{ forward = \"empty\" }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8003\ndefault_action = {{ forward = \"hung\" }}\n\
         [[target_group]]\nname = \"refused\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{refused}\"]\n\
         [[target_group]]\nname = \"empty\"\nprotocol = \"HTTP\"\nport = 9001\n\
         [[target_group]]\nname = \"hung\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{hung}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &config);
    let ports = [8001, 8002, 8003].map(|p| lab.node('a', p));
    let _elbd = Elbd::start(&lab, &config, &[], &ports);
    let client = client();

    // The hung target answers while it runs ...
    assert_eq!(get(&client, ports[2]).await.status, StatusCode::OK);

    let reply = get(&client, ports[0]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.headers["server"], "awselb/2.0");
    assert!(
        reply.body.contains("<h1>502 Bad Gateway</h1>"),
        "{}",
        reply.body
    );

    let reply = get(&client, ports[1]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.body.len(), 162);

    // ... and once stopped, it gets 504 after the 2 s idle timeout.
    sleeper.signal("STOP");
    let start = Instant::now();
    let reply = get(&client, ports[2]).await;
    let waited = start.elapsed();
    sleeper.signal("CONT");
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{}", reply.body);
    assert!(reply.body.contains("504 Gateway Time-out"));
    assert!(
        waited >= Duration::from_secs(2),
        "answered after {waited:?}"
    );
}
