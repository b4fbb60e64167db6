//! UDP and TCP_UDP listeners.

use tokio::net::UdpSocket;

use super::*;

/// A UDP target: answers each datagram with `ADDR PEER PAYLOAD`. Health checks reach the
/// [`TcpTarget`] on the same port.
async fn udp_target(addr: SocketAddr) -> TcpTarget {
    let socket = UdpSocket::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let payload = String::from_utf8_lossy(&buf[..n]);
            let answer = format!("{addr} {peer} {payload}");
            let _ = socket.send_to(answer.as_bytes(), peer).await;
        }
    });
    TcpTarget::start(addr).await
}

/// Sends `payload` from `client` to `node` and waits (at most 5 s) for one answer: where it
/// came from, and the target's `ADDR PEER PAYLOAD`.
async fn ask(client: &UdpSocket, node: SocketAddr, payload: &str) -> (SocketAddr, String) {
    client.send_to(payload.as_bytes(), node).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer to {payload} through {node}"))
        .unwrap();
    (from, String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// UDP and TCP_UDP listeners: a client socket's datagrams are one flow to one target, whose
/// answers come back from the listener's address and port; the client's address is kept;
/// forty client sockets reach both targets across zones; TCP_UDP serves both on one port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_flows_keep_their_target_and_answer_from_the_listener() {
    let lab = Lab::new("nlb-udp", 38);
    let targets = [
        udp_target(SocketAddr::from((lab.ip('a', 10), 9200))).await,
        udp_target(SocketAddr::from((lab.ip('b', 10), 9200))).await,
    ];
    let (mut elbd, aws) = start(&lab);
    let (lb_arn, vpc) = aws.load_balancer_of_type("datagrams", "network");
    aws.set_load_balancer_attributes(
        &lb_arn,
        &["Key=load_balancing.cross_zone.enabled,Value=true"],
    );
    let udp_check = aws.err(&[
        "elbv2",
        "create-target-group",
        "--name",
        "udp-checked",
        "--protocol",
        "UDP",
        "--port",
        "9200",
        "--vpc-id",
        &vpc,
        "--health-check-protocol",
        "UDP",
    ]);
    assert!(udp_check.contains("ValidationError"), "{udp_check}");
    let ids: Vec<String> = targets.iter().map(|t| t.addr.ip().to_string()).collect();
    let listen = |protocol: &str, port: &str, name: &str| {
        let tg = aws.target_group_of(protocol, name, &vpc, (9200, "ip"), &FAST_CHECKS);
        aws.register(&tg, &ids);
        Aws::json(aws.listener_of(&lb_arn, (protocol, port), &tg));
        tg
    };
    let udp_tg = listen("UDP", "7000", "udp");
    listen("TCP_UDP", "7001", "both");
    // Two groups of two targets, checked from two nodes.
    elbd.wait_healthy(8);

    // One client socket: one flow, one target; every answer from the node's listener.
    let node = lab.node('a', 7000);
    let client = UdpSocket::bind("127.9.0.7:0").await.unwrap();
    let mut reached = std::collections::BTreeSet::new();
    for i in 0..10 {
        let (from, answer) = ask(&client, node, &format!("datagram-{i}")).await;
        assert_eq!(
            from, node,
            "answers come from the listener's address and port"
        );
        let mut words = answer.split(' ');
        reached.insert(words.next().unwrap().to_owned());
        let peer: SocketAddr = words.next().unwrap().parse().unwrap();
        assert_eq!(
            peer.ip().to_string(),
            "127.9.0.7",
            "the client's address is kept"
        );
        assert_eq!(words.next(), Some(format!("datagram-{i}").as_str()));
    }
    assert_eq!(reached.len(), 1, "one flow, one target: {reached:?}");

    // Forty client sockets are forty flows, over both zones' targets. All stay open, so no
    // two share a port (a port used again would be the same flow).
    let mut reached = std::collections::BTreeSet::new();
    let mut clients = Vec::new();
    for i in 0..40 {
        let client = UdpSocket::bind("127.9.0.8:0").await.unwrap();
        let (from, answer) = ask(&client, node, &format!("client-{i}")).await;
        assert_eq!(from, node);
        reached.insert(answer.split(' ').next().unwrap().to_owned());
        clients.push(client);
    }
    assert_eq!(
        reached.len(),
        2,
        "cross-zone: both targets through one node"
    );

    // Deregistration ends a flow when its delay does (on by default for UDP groups): the
    // client's next datagram starts a new flow, to the other target.
    let (_, answer) = ask(&client, node, "before").await;
    let first: SocketAddr = answer.split(' ').next().unwrap().parse().unwrap();
    let delay = "Key=deregistration_delay.timeout_seconds,Value=0";
    aws.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &udp_tg,
        "--attributes",
        delay,
    ]);
    let target = format!("Id={}", first.ip());
    aws.ok(&[
        "elbv2",
        "deregister-targets",
        "--target-group-arn",
        &udp_tg,
        "--targets",
        &target,
    ]);
    let mut now = first.to_string();
    for _ in 0..25 {
        now = ask(&client, node, "after").await.1;
        if !now.starts_with(&first.to_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !now.starts_with(&first.to_string()),
        "still on {first}: {now}"
    );

    // TCP_UDP: datagrams and connections on one port.
    let both = lab.node('b', 7001);
    let (from, answer) = ask(&client, both, "over udp").await;
    assert_eq!(from, both);
    assert!(answer.ends_with(" over udp"), "{answer}");
    let (target, _, _) = open(both).await;
    assert!(
        targets.iter().any(|t| t.addr.to_string() == target),
        "{target}"
    );

    let udp_flows = metric_sum(&aws, "aws_networkelb_new_flow_count_udp_total", "");
    assert_eq!(
        udp_flows, 43.0,
        "one flow per client socket and node, and one after the deregistration"
    );
}
