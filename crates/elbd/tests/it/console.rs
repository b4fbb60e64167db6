//! The web console, as headless Chromium renders it: the load balancer, its zones, its
//! targets and their health, and arrows that carry the traffic of the node it went through.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Aws, Backend, Elbd, Lab, curl};

/// The console's DOM after its script ran, as Chromium renders it.
fn rendered(url: &str) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("chromium (Debian's package; .ci/run installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `data-share` of every arrow drawn from node `ip`.
fn shares(dom: &str, ip: &str) -> Vec<u32> {
    let from = format!("<g class=\"arrow\" data-node=\"{ip}\"");
    dom.match_indices(&from)
        .map(|(at, _)| {
            let rest = &dom[at..];
            let share = rest.split("data-share=\"").nth(1).unwrap();
            share[..share.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_draws_zones_targets_and_the_traffic_of_the_node_it_went_through() {
    let lab = Lab::new("console", 48);
    let targets = [
        SocketAddr::from((lab.ip('a', 10), 9001)),
        SocketAddr::from((lab.ip('b', 10), 9001)),
    ];
    let _backends = (
        Backend::start(targets[0], Duration::ZERO).await,
        Backend::start(targets[1], Duration::ZERO).await,
    );
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let (lb, vpc) = aws.load_balancer("consoled");
    let tg = aws.target_group("consoled", &vpc, 9001, "ip", &[]);
    aws.register(&tg, &targets.map(|t| t.ip().to_string()));
    aws.forward_listener(&lb, 8080, &tg);
    let (node_a, node_b) = (lab.node('a', 8080), lab.node('b', 8080));
    let url = format!("http://{node_a}/");
    // Both nodes find both targets healthy (cross-zone, the ALB default).
    elbd.wait_healthy(4);
    // Only through node a: cross-zone (the ALB default) spreads it over both zones' targets.
    for _ in 0..20 {
        assert_eq!(curl(&url, &[]).status, 200);
    }

    let dom = rendered(&format!("http://{api}/console"));
    assert!(dom.contains("data-name=\"consoled\""), "{dom}");
    for zone in ["us-east-1a", "us-east-1b"] {
        assert!(dom.contains(zone), "{zone}: {dom}");
    }
    for target in targets {
        assert!(
            dom.contains(&format!("data-target=\"{target}\"")),
            "{target}: {dom}"
        );
    }
    assert!(dom.contains("class=\"healthy\">healthy</td>"), "{dom}");
    let from_a = shares(&dom, &node_a.ip().to_string());
    assert_eq!(from_a.len(), 2, "node a's arrows: {dom}");
    assert!(
        (99..=101).contains(&from_a.iter().sum::<u32>()),
        "{from_a:?}"
    );
    assert!(
        shares(&dom, &node_b.ip().to_string()).is_empty(),
        "node b sent nothing: {dom}"
    );
}
