//! Network load balancers: over TCP here (flows per zone and across zones, the address
//! targets see, half-closes, health checks by TCP connect, connection termination, PROXY
//! protocol v2, an ALB as a target); UDP, TLS and addresses in the submodules. Clients are
//! raw sockets; targets are TCP and UDP servers that say who they are and which peer they
//! see.

mod addresses;
mod tls;
mod udp;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;

use crate::harness::{Aws, Elbd, Lab, curl};

/// A TCP target: to each connection it writes `ADDR PEER\n`, echoes what it reads, and at
/// the client's half-close writes `bye from ADDR` and closes.
struct TcpTarget {
    addr: SocketAddr,
    /// Set: the listening socket is closed (new connections are refused); open ones live on.
    stopped: Arc<AtomicBool>,
    stop: Arc<Notify>,
}

impl TcpTarget {
    async fn start(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(Notify::new());
        let (is_stopped, on_stop) = (stopped.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, peer) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    () = on_stop.notified() => return,
                };
                if is_stopped.load(Ordering::Relaxed) {
                    return;
                }
                tokio::spawn(async move {
                    let hello = format!("{addr} {peer}\n");
                    if stream.write_all(hello.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => {
                                let bye = format!("bye from {addr}");
                                let _ = stream.write_all(bye.as_bytes()).await;
                                return;
                            }
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        Self {
            addr,
            stopped,
            stop,
        }
    }

    /// Closes the listening socket: health checks and new flows are refused from now on.
    fn stop_listening(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.stop.notify_one();
    }
}

/// A flow through `node`: the target it reached and the peer that target saw, with the
/// stream still open.
async fn open(node: SocketAddr) -> (String, String, BufReader<TcpStream>) {
    try_open(node)
        .await
        .unwrap_or_else(|| panic!("no flow through {node}"))
}

/// [`open`], or `None` when the flow fails.
async fn try_open(node: SocketAddr) -> Option<(String, String, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(node).await.ok()?;
    hello(stream).await
}

/// [`open`] from a client socket bound to `source`.
async fn open_from(node: SocketAddr, source: IpAddr) -> (SocketAddr, String, BufReader<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let stream = socket.connect(node).await.unwrap();
    let client = stream.local_addr().unwrap();
    let (_, peer, stream) = hello(stream).await.expect("a flow");
    (client, peer, stream)
}

/// The target's greeting on a new flow: its address and the peer it sees.
async fn hello(stream: TcpStream) -> Option<(String, String, BufReader<TcpStream>)> {
    let mut stream = BufReader::new(stream);
    let mut hello = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut hello))
        .await
        .ok()?
        .ok()?;
    let (target, peer) = hello.trim_end().split_once(' ')?;
    Some((target.to_owned(), peer.to_owned(), stream))
}

/// The targets `n` flows through `node` reach, with the peers the targets saw.
async fn flows(node: SocketAddr, n: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for _ in 0..n {
        let (target, peer, _) = open(node).await;
        seen.push((target, peer));
    }
    seen
}

/// Waits (at most 5 s) for `stream` to be reset, reading past what the target had sent.
async fn expect_reset(stream: &mut BufReader<TcpStream>, what: &str) {
    let mut buf = [0u8; 64];
    let reset = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    });
    match reset.await {
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{what}"),
        other => panic!("{what} was not reset: {other:?}"),
    }
}

/// Health checks that find targets in seconds.
const FAST_CHECKS: [&str; 6] = [
    "--health-check-interval-seconds",
    "5",
    "--health-check-timeout-seconds",
    "2",
    "--healthy-threshold-count",
    "2",
];

/// The sum over the series of the metric `name` on elbd's `/metrics` page whose labels
/// contain `only` (every series for "").
fn metric_sum(aws: &Aws, name: &str, only: &str) -> f64 {
    let page = std::process::Command::new("curl")
        .args(["-sf", &format!("{}/metrics", aws.endpoint)])
        .output()
        .unwrap()
        .stdout;
    String::from_utf8(page)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(only))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn start(lab: &Lab) -> (Elbd, Aws) {
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let elbd = Elbd::start(lab, &config, &["--api-listen", &api.to_string()], &[api]);
    (elbd, Aws::new(api))
}

/// An internal NLB in two zones, one ip target per zone, built with the aws cli: each node
/// keeps to its zone until cross-zone is on, targets see the node's address, a flow keeps its
/// target, and half-closes cross.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nlb_keeps_flows_in_their_zone_until_cross_zone_is_on() {
    let lab = Lab::new("nlb-zones", 35);
    let targets = [
        TcpTarget::start(SocketAddr::from((lab.ip('a', 10), 9100))).await,
        TcpTarget::start(SocketAddr::from((lab.ip('b', 10), 9100))).await,
    ];
    let (mut elbd, aws) = start(&lab);
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let mut subnets: Vec<&Value> = subnets["Subnets"].as_array().unwrap().iter().collect();
    subnets.sort_by_key(|s| text(&s["AvailabilityZone"]).to_owned());
    let vpc = text(&subnets[0]["VpcId"]).to_owned();

    let lb = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "flows",
        "--type",
        "network",
        "--scheme",
        "internal",
        "--subnets",
        text(&subnets[0]["SubnetId"]),
        text(&subnets[1]["SubnetId"]),
    ])["LoadBalancers"][0]
        .clone();
    assert_eq!(lb["Type"], "network");
    let dns = text(&lb["DNSName"]);
    assert!(
        dns.starts_with("flows-") && dns.contains(".elb.us-east-1."),
        "NLB names are NAME-HEX.elb.REGION.DOMAIN: {dns}"
    );
    let lb_arn = text(&lb["LoadBalancerArn"]).to_owned();

    // AWS's defaults for a TCP group: TCP checks on the traffic port, 30 s, 10 s, 5 and 2.
    let defaults = aws.ok(&[
        "elbv2",
        "create-target-group",
        "--name",
        "defaults",
        "--protocol",
        "TCP",
        "--port",
        "9100",
        "--vpc-id",
        &vpc,
    ])["TargetGroups"][0]
        .clone();
    for (key, value) in [
        ("HealthCheckProtocol", "TCP"),
        ("HealthCheckPort", "traffic-port"),
    ] {
        assert_eq!(defaults[key], value, "{key}: {defaults}");
    }
    for (key, value) in [
        ("HealthCheckIntervalSeconds", 30),
        ("HealthCheckTimeoutSeconds", 10),
        ("HealthyThresholdCount", 5),
        ("UnhealthyThresholdCount", 2),
    ] {
        assert_eq!(defaults[key], value, "{key}: {defaults}");
    }
    assert!(defaults.get("HealthCheckPath").is_none(), "{defaults}");
    let attributes = aws.ok(&[
        "elbv2",
        "describe-target-group-attributes",
        "--target-group-arn",
        text(&defaults["TargetGroupArn"]),
    ]);
    let attribute = |key: &str| {
        attributes["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["Key"] == key)
            .map(|a| text(&a["Value"]).to_owned())
    };
    assert_eq!(
        attribute("preserve_client_ip.enabled").as_deref(),
        Some("true")
    );
    assert_eq!(
        attribute("target_health_state.unhealthy.connection_termination.enabled").as_deref(),
        Some("true")
    );
    assert_eq!(attribute("stickiness.type").as_deref(), Some("source_ip"));

    let tg = aws.target_group_of("TCP", "flows", &vpc, (9100, "ip"), &FAST_CHECKS);
    let ids: Vec<String> = targets
        .iter()
        .map(|t| format!("Id={}", t.addr.ip()))
        .collect();
    let mut register = vec![
        "elbv2",
        "register-targets",
        "--target-group-arn",
        &tg,
        "--targets",
    ];
    register.extend(ids.iter().map(String::as_str));
    aws.ok(&register);

    // Listener protocols by type, as AWS words it.
    let listener = |protocol: &str, port: &str| aws.listener_of(&lb_arn, (protocol, port), &tg);
    let refused = String::from_utf8_lossy(&listener("HTTP", "7001").stderr).into_owned();
    assert!(
        refused.contains("ValidationError")
            && refused.contains("Listener protocol 'HTTP' must be one of 'TCP, TLS, UDP, TCP_UDP'"),
        "{refused}"
    );
    let refused = String::from_utf8_lossy(&listener("UDP", "7001").stderr).into_owned();
    assert!(
        refused.contains("IncompatibleProtocols") && refused.contains("UDP listeners"),
        "{refused}"
    );
    let created = Aws::json(listener("TCP", "7000"));
    let listener_arn = text(&created["Listeners"][0]["ListenerArn"]).to_owned();
    let too_short = aws.err(&[
        "elbv2",
        "modify-listener-attributes",
        "--listener-arn",
        &listener_arn,
        "--attributes",
        "Key=tcp.idle_timeout.seconds,Value=59",
    ]);
    assert!(too_short.contains("ValidationError"), "{too_short}");
    let not_nlb = aws.err(&[
        "elbv2",
        "modify-load-balancer-attributes",
        "--load-balancer-arn",
        &lb_arn,
        "--attributes",
        "Key=idle_timeout.timeout_seconds,Value=30",
    ]);
    assert!(not_nlb.contains("ValidationError"), "{not_nlb}");

    // Cross-zone is off: each node checks and reaches its own zone's target only.
    elbd.wait_healthy(2);
    let nodes = [lab.node('a', 7000), lab.node('b', 7000)];
    for (node, target) in nodes.iter().zip(&targets) {
        for (reached, peer) in flows(*node, 20).await {
            assert_eq!(reached, target.addr.to_string(), "through {node}");
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(peer.ip(), node.ip(), "an ip target over TCP sees the node");
        }
    }

    // A flow open across a configuration change keeps its target; half-closes cross.
    let (first, _, mut kept) = open(nodes[0]).await;
    aws.set_load_balancer_attributes(
        &lb_arn,
        &["Key=load_balancing.cross_zone.enabled,Value=true"],
    );
    elbd.wait_healthy(4);
    let reached: std::collections::BTreeSet<String> = flows(nodes[0], 40)
        .await
        .into_iter()
        .map(|(target, _)| target)
        .collect();
    assert_eq!(
        reached.len(),
        2,
        "cross-zone: both targets through one node"
    );

    // AWS/NetworkELB's metrics: each flow is one NewFlowCount, its bytes ProcessedBytes.
    let lb_label = format!(
        "load_balancer=\"{}\"",
        lb_arn.split_once(":loadbalancer/").unwrap().1
    );
    let metric = |name: &str| metric_sum(&aws, name, &lb_label);
    let before = metric("aws_networkelb_new_flow_count_total");
    flows(nodes[0], 10).await;
    assert_eq!(metric("aws_networkelb_new_flow_count_total") - before, 10.0);
    assert!(metric("aws_networkelb_processed_bytes_total") > 0.0);
    assert_eq!(metric("aws_networkelb_healthy_host_count"), 2.0);
    kept.write_all(b"still ").await.unwrap();
    kept.get_mut().shutdown().await.unwrap();
    let mut rest = String::new();
    kept.read_to_string(&mut rest).await.unwrap();
    assert_eq!(
        rest,
        format!("still bye from {first}"),
        "the flow stayed on its target and the half-close crossed"
    );

    // Source-IP stickiness: every flow of one client goes to one target.
    let set = |attributes: &[&str]| {
        let mut args = vec![
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg,
            "--attributes",
        ];
        args.extend_from_slice(attributes);
        aws.ok(&args);
    };
    set(&[
        "Key=stickiness.enabled,Value=true",
        "Key=stickiness.type,Value=source_ip",
    ]);
    // The data plane applies the change a moment after the API commits it.
    let mut reached = std::collections::BTreeSet::new();
    for _ in 0..10 {
        reached = flows(nodes[0], 20)
            .await
            .into_iter()
            .map(|(target, _)| target)
            .collect();
        if reached.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reached.len(), 1, "one client, one target: {reached:?}");

    // Client IP preservation: the target sees the client's address (on loopback the port is
    // the client socket's own, so it cannot be kept).
    let client_ip: IpAddr = "127.9.0.7".parse().unwrap();
    set(&["Key=preserve_client_ip.enabled,Value=true"]);
    let mut seen = String::new();
    for _ in 0..10 {
        seen = open_from(nodes[0], client_ip).await.1;
        if seen.starts_with("127.9.0.7:") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.starts_with("127.9.0.7:"), "the target saw {seen}");

    // PROXY protocol v2 (preservation off): the target reads a header naming the client and
    // the listener, then the client's bytes (it echoes all it reads).
    set(&[
        "Key=preserve_client_ip.enabled,Value=false",
        "Key=proxy_protocol_v2.enabled,Value=true",
    ]);
    let mut proxied = None;
    for _ in 0..10 {
        let (client, peer, mut stream) = open_from(nodes[0], client_ip).await;
        stream.write_all(b"first bytes").await.unwrap();
        stream.get_mut().shutdown().await.unwrap();
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).await.unwrap();
        if let Ok(Some((header, taken))) = elb_wire::proxy_v2::decode(&echoed) {
            proxied = Some((client, peer, header, echoed[taken..].to_vec()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (client, peer, header, rest) = proxied.expect("a PROXY v2 header within 2 s");
    assert_eq!(peer.parse::<SocketAddr>().unwrap().ip(), nodes[0].ip());
    assert_eq!(
        header,
        elb_wire::proxy_v2::Header::Proxy {
            transport: elb_wire::proxy_v2::Transport::Stream,
            addresses: Some((client, nodes[0])),
        }
    );
    assert!(rest.starts_with(b"first bytes"), "{rest:?}");

    // Deregistration with connection termination: the open flow is closed when the delay ends.
    set(&[
        "Key=deregistration_delay.timeout_seconds,Value=0",
        "Key=deregistration_delay.connection_termination.enabled,Value=true",
    ]);
    let (target, _, mut doomed) = open(nodes[0]).await;
    let target_ip = target.parse::<SocketAddr>().unwrap().ip().to_string();
    aws.ok(&[
        "elbv2",
        "deregister-targets",
        "--target-group-arn",
        &tg,
        "--targets",
        &format!("Id={target_ip}"),
    ]);
    expect_reset(&mut doomed, "the deregistered target's flow").await;
}

/// With cross-zone on, a target that stops accepting under a steady connection rate is found
/// unhealthy within interval × threshold; no new flow fails, and its open flows are reset.
/// Built from the config file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_is_passed_over_and_its_flows_are_reset() {
    let lab = Lab::new("nlb-health", 36);
    let targets = [
        TcpTarget::start(SocketAddr::from((lab.ip('a', 10), 9100))).await,
        TcpTarget::start(SocketAddr::from((lab.ip('b', 10), 9100))).await,
    ];
    let config = format!(
        "{}\n\
         [[load_balancer]]\nname = \"tcp\"\ntype = \"network\"\nscheme = \"internal\"\n\
         availability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [load_balancer.attributes]\n\"load_balancing.cross_zone.enabled\" = true\n\
         [[load_balancer.listener]]\nprotocol = \"TCP\"\nport = 7000\ndefault_action = {{ forward = \"tcp-tg\" }}\n\
         [[target_group]]\nname = \"tcp-tg\"\nprotocol = \"TCP\"\nport = 9100\n\
         targets = [\"{}\", \"{}\"]\n\
         health_check = {{ protocol = \"TCP\", port = \"traffic-port\", interval_seconds = 5, \
         timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n",
        lab.settings(),
        targets[0].addr.ip(),
        targets[1].addr.ip(),
    );
    let config = lab.write("elbd.toml", &config);
    let node = lab.node('a', 7000);
    let mut elbd = Elbd::start(&lab, &config, &[], &[node]);
    elbd.wait_healthy(4);

    // An open flow to each target.
    let mut open_flows = std::collections::BTreeMap::new();
    while open_flows.len() < 2 {
        let (target, _, stream) = open(node).await;
        open_flows.entry(target).or_insert(stream);
    }
    let dying = &targets[0];
    let mut doomed = open_flows.remove(&dying.addr.to_string()).unwrap();
    let mut survivor = open_flows.into_values().next().unwrap();

    // A new flow every 50 ms, each checked end to end, while the target dies.
    let clock = tokio::time::Instant::now();
    let load = tokio::spawn(async move {
        let mut failed = Vec::new();
        let mut ticks = tokio::time::interval(Duration::from_millis(50));
        while clock.elapsed() < Duration::from_secs(14) {
            ticks.tick().await;
            let at = clock.elapsed();
            let flow = async {
                let (target, _, mut stream) = try_open(node).await?;
                stream.write_all(b"x").await.ok()?;
                stream.get_mut().shutdown().await.ok()?;
                let mut rest = String::new();
                stream.read_to_string(&mut rest).await.ok()?;
                (rest == format!("xbye from {target}")).then_some(target)
            };
            if tokio::time::timeout(Duration::from_secs(5), flow)
                .await
                .ok()
                .flatten()
                .is_none()
            {
                failed.push(at);
            }
        }
        failed
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = clock.elapsed();
    dying.stop_listening();

    // The doomed flow runs through node a: its checks are the ones that count.
    let unhealthy_at = loop {
        let line = format!("target={} state=unhealthy", dying.addr);
        let from_a = format!("node={}", node.ip());
        let logs = elbd.logs();
        if logs
            .lines()
            .any(|l| l.contains(&line) && l.contains(&from_a))
        {
            break clock.elapsed();
        }
        assert!(clock.elapsed() < Duration::from_secs(20), "{}", elbd.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let detection = unhealthy_at - killed_at;
    eprintln!("unhealthy after {detection:?}");
    // Interval × unhealthy threshold, plus the checks' 5% jitter.
    assert!(detection <= Duration::from_millis(10_500), "{detection:?}");

    // The open flow to the dead target is reset; the other lives on.
    expect_reset(&mut doomed, "the flow to the unhealthy target").await;
    survivor.write_all(b"ok").await.unwrap();
    let mut echo = [0u8; 2];
    survivor.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ok");

    // Before the checks find it dead, a flow may still meet the closing target (one the
    // kernel had accepted into its backlog is reset); after, none may fail.
    let failed = load.await.unwrap();
    let late: Vec<_> = failed
        .iter()
        .filter(|at| **at > unhealthy_at + Duration::from_millis(500))
        .collect();
    assert!(
        late.is_empty(),
        "flows failed at {failed:?}, unhealthy at {unhealthy_at:?}"
    );
}

/// An NLB in front of an ALB (`alb` target group): connections reach the ALB's node in the
/// same zone, which serves them by its rules; the ALB is checked over HTTP and counts as one
/// healthy target; an ALB that is a target cannot be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alb_as_a_target_serves_the_nlb_flows() {
    let lab = Lab::new("nlb-alb", 41);
    let backends = [
        crate::harness::Backend::start(SocketAddr::from((lab.ip('a', 10), 9500)), Duration::ZERO)
            .await,
        crate::harness::Backend::start(SocketAddr::from((lab.ip('b', 10), 9500)), Duration::ZERO)
            .await,
    ];
    let (mut elbd, aws) = start(&lab);
    let (alb, vpc) = aws.load_balancer("inner");
    let web = aws.target_group("web", &vpc, 9500, "ip", &FAST_CHECKS);
    aws.register(
        &web,
        &[lab.ip('a', 10).to_string(), lab.ip('b', 10).to_string()],
    );
    aws.forward_listener(&alb, 8080, &web);

    let (nlb, _) = aws.load_balancer_of_type("outer", "network");
    let wrong = aws.err(&[
        "elbv2",
        "create-target-group",
        "--name",
        "wrong",
        "--protocol",
        "UDP",
        "--port",
        "8080",
        "--vpc-id",
        &vpc,
        "--target-type",
        "alb",
    ]);
    assert!(wrong.contains("ValidationError"), "{wrong}");
    let front = aws.target_group_of("TCP", "front", &vpc, (8080, "alb"), &FAST_CHECKS);
    let described = aws.ok(&[
        "elbv2",
        "describe-target-groups",
        "--target-group-arns",
        &front,
    ])["TargetGroups"][0]
        .clone();
    assert_eq!(described["TargetType"], "alb");
    assert_eq!(described["HealthCheckProtocol"], "HTTP", "{described}");
    let register = |tg: &str, target: &str| {
        aws.err(&[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            tg,
            "--targets",
            target,
        ])
    };
    let other_port = register(&front, &format!("Id={alb},Port=9999"));
    assert!(other_port.contains("ValidationError"), "{other_port}");
    let stray = aws.target_group_of("TCP", "stray", &vpc, (9999, "alb"), &[]);
    let no_listener = register(&stray, &format!("Id={alb}"));
    assert!(no_listener.contains("InvalidTarget"), "{no_listener}");
    aws.register(&front, std::slice::from_ref(&alb));
    Aws::json(aws.listener_of(&nlb, ("TCP", "7000"), &front));
    // Two web targets from two ALB nodes, and the ALB from two NLB nodes.
    elbd.wait_healthy(6);

    let health = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        &front,
    ]);
    let only = &health["TargetHealthDescriptions"][0];
    assert_eq!(text(&only["Target"]["Id"]), alb);
    assert_eq!(only["TargetHealth"]["State"], "healthy", "{health}");

    // Through each NLB node (the ALB's nodes took the top addresses), HTTP reaches the ALB
    // and one of its targets.
    let described = aws.ok(&[
        "elbv2",
        "describe-load-balancers",
        "--load-balancer-arns",
        &nlb,
    ]);
    let zones = described["LoadBalancers"][0]["AvailabilityZones"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(zones.len(), 2);
    let served_before = backends.iter().map(|b| b.count()).sum::<usize>();
    for zone in &zones {
        let node = text(&zone["LoadBalancerAddresses"][0]["PrivateIPv4Address"]);
        let reply = curl(
            &format!("http://{node}:7000/"),
            &["--interface", "127.9.0.9"],
        );
        assert_eq!(reply.status, 200, "through {node}: {}", reply.headers);
        assert!(reply.body.ends_with(":9500"), "{}", reply.body);
    }
    let served = backends.iter().map(|b| b.count()).sum::<usize>() - served_before;
    assert_eq!(
        served, 2,
        "each request reached a web target through the ALB"
    );
    // An `alb` group keeps the client's address: the ALB saw the client, not the NLB nodes.
    let forwarded_for: Vec<String> = backends
        .iter()
        .flat_map(|b| b.hits.lock().unwrap().clone())
        .filter_map(|h| Some(h.get("x-forwarded-for")?.to_str().ok()?.to_owned()))
        .collect();
    assert_eq!(forwarded_for, ["127.9.0.9", "127.9.0.9"]);
    let in_use = aws.err(&["elbv2", "delete-load-balancer", "--load-balancer-arn", &alb]);
    assert!(in_use.contains("ResourceInUse"), "{in_use}");
}

/// An HTTP target that notes the Host of every request it gets and answers each 200, closing.
async fn noting_hosts(addr: SocketAddr) -> Arc<Mutex<BTreeSet<String>>> {
    let listener = TcpListener::bind(addr).await.unwrap();
    let hosts = Arc::new(Mutex::new(BTreeSet::new()));
    let noted = hosts.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let noted = noted.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                // Up to the blank line that ends the head.
                while stream.read_line(&mut line).await.is_ok_and(|n| n > 2) {
                    if let Some(host) = line.strip_prefix("Host: ") {
                        noted.lock().unwrap().insert(host.trim().to_owned());
                    }
                    line.clear();
                }
                let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = stream.get_mut().write_all(ok).await;
            });
        }
    });
    hosts
}

/// HTTP checks of an NLB's targets carry the node's address and the listener's port as their
/// Host, as AWS's do (an ALB's carry the target's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_checks_of_an_nlb_name_its_node_and_listener_port() {
    let lab = Lab::new("nlb-check-host", 71);
    let target = SocketAddr::from((lab.ip('a', 10), 9100));
    let hosts = noting_hosts(target).await;
    let config = format!(
        "{}\n\
         [[load_balancer]]\nname = \"tcp\"\ntype = \"network\"\nscheme = \"internal\"\n\
         availability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"TCP\"\nport = 7000\ndefault_action = {{ forward = \"checked\" }}\n\
         [[target_group]]\nname = \"checked\"\nprotocol = \"TCP\"\nport = 9100\ntargets = [\"{}\"]\n\
         health_check = {{ protocol = \"HTTP\", path = \"/ping\", interval_seconds = 5, \
         timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n",
        lab.settings(),
        target.ip(),
    );
    let config = lab.write("elbd.toml", &config);
    let node = lab.node('a', 7000);
    let mut elbd = Elbd::start(&lab, &config, &[], &[node]);
    elbd.wait_healthy(1);
    // Cross-zone off: zone a's node alone checks zone a's target.
    assert_eq!(*hosts.lock().unwrap(), BTreeSet::from([node.to_string()]));
}
