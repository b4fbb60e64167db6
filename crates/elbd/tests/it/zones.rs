//! Nodes in two zones, round robin, cross-zone, and restarts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{Backend, Elbd, Lab, listening, spread};

/// The example's targets: two per zone on port 9001.
async fn four_backends(lab: &Lab) -> Vec<Backend> {
    let mut backends = Vec::new();
    for zone in ['a', 'b'] {
        for n in [10, 11] {
            backends.push(
                Backend::start(SocketAddr::from((lab.ip(zone, n), 9001)), Duration::ZERO).await,
            );
        }
    }
    backends
}

fn two_zone_config(lab: &Lab, target_group_attributes: &str) -> String {
    let targets: Vec<String> = ['a', 'b']
        .iter()
        .flat_map(|&z| [10, 11].map(|n| format!("\"{}:9001\"", lab.ip(z, n))))
        .collect();
    format!(
        "{}\n\
         [[load_balancer]]\nname = \"web\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"web-tg\" }}\n\
         [[target_group]]\nname = \"web-tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [{}]\n\
         [target_group.attributes]\n{target_group_attributes}\n",
        lab.settings(),
        targets.join(", ")
    )
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/two-zones.toml")
}

/// The acceptance test of the quick start, on the example file itself (zones 127.1 and 127.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_balances_over_two_zones_and_survives_kill_9() {
    let lab = Lab::with_default_zones("example");
    let backends = four_backends(&lab).await;
    let nodes = [lab.node('a', 8080), lab.node('b', 8080)];
    let mut elbd = Elbd::start(&lab, &example(), &[], &nodes);
    elbd.wait_healthy(8);

    // Exactly one listening address per zone.
    assert_eq!(
        listening(1, 8080).len(),
        1,
        "zone a: {:?}",
        listening(1, 8080)
    );
    assert_eq!(
        listening(2, 8080).len(),
        1,
        "zone b: {:?}",
        listening(2, 8080)
    );

    for node in nodes {
        let counts = spread(node, 400).await;
        assert_eq!(counts.len(), 4, "through {node}: {counts:?}");
        for (target, n) in &counts {
            let share = *n as f64 / 400.0;
            assert!(
                (0.17..=0.33).contains(&share),
                "{target} got {share} through {node}"
            );
        }
    }
    assert_eq!(backends.iter().map(Backend::count).sum::<usize>(), 800);

    let before = load_balancer_lines(&elbd.logs());
    assert_eq!(before.len(), 1, "{}", elbd.logs());
    elbd.kill_and_restart(&lab, &example(), &nodes);
    let after = load_balancer_lines(&elbd.logs());
    assert_eq!(
        before, after,
        "ARN, DNS name or node addresses changed across kill -9"
    );
    assert!(before[0].contains("dns_name=web-") && before[0].contains(".us-east-1.elb.internal"));
    assert!(
        before[0].contains("us-east-1a=127.1.255.254")
            && before[0].contains("us-east-1b=127.2.255.254")
    );
    elbd.wait_healthy(8);
    assert_eq!(spread(nodes[0], 8).await.len(), 4);
}

/// The start-up log line of each load balancer, without its timestamp: name, ARN, DNS name
/// and node addresses.
fn load_balancer_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" load balancer name="))
        .map(|l| l.split_once("INFO").map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cross_zone_each_node_keeps_to_its_zone() {
    let lab = Lab::new("cross-zone-off", 1);
    let _backends = four_backends(&lab).await;
    let config = lab.write(
        "elbd.toml",
        &two_zone_config(&lab, "\"load_balancing.cross_zone.enabled\" = \"false\""),
    );
    let nodes = [lab.node('a', 8080), lab.node('b', 8080)];
    let mut elbd = Elbd::start(&lab, &config, &[], &nodes);
    elbd.wait_healthy(4);
    for (zone, node) in ['a', 'b'].into_iter().zip(nodes) {
        let counts = spread(node, 100).await;
        let expected: Vec<String> = [10, 11]
            .iter()
            .map(|&n| format!("{}:9001", lab.ip(zone, n)))
            .collect();
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            expected,
            "through {node}"
        );
        assert!(counts.values().all(|&n| n == 50), "{counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_reach_the_target() {
    let lab = Lab::new("forwarded", 2);
    let backends = four_backends(&lab).await;
    let config = lab.write("elbd.toml", &two_zone_config(&lab, ""));
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &config, &[], &[node]);
    elbd.wait_healthy(8);
    spread(node, 4).await;
    for backend in &backends {
        let hits = backend.hits.lock().unwrap();
        let headers = &hits[0];
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-port"], "8080");
        assert_eq!(headers["host"], node.to_string());
    }
}
