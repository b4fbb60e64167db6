//! The network-namespace lab (shared/reference/netlab.md): elbd in its own namespace with the
//! lab's address ranges as its topology and DNS on port 53; one namespace per zone holds that
//! zone's target; a client namespace resolves the load balancer's name through elbd. Setting
//! zone b's link down under a load by name (the fault matrix's zone row, docs/reliability.md)
//! fails only requests sent to b's node before it leaves DNS, and curl by name keeps working.
//! An NLB with client IP preservation reaches zone a's target from the client's own address
//! and port (transparent sockets, with the return route the README describes).
//!
//! While the lab exists, the root namespace has an `unreachable` route for 10.77.0.0/16, so no
//! packet of the test can leave the machine. Everything is removed again when the test ends,
//! whether it passes or fails.

use std::time::{Duration, Instant};

use crate::netns::{GREETER, Namespaces, run, scratch};

const RANGE: &str = "10.77.0.0/16";
const DNS: &str = "10.77.0.53";

/// core (bridge) + lb, ta, tb, cl, each on the bridge with its addresses, and the client's
/// resolver pointed at elbd's DNS.
fn build() -> Namespaces {
    let hosts: [(&str, &[&str]); 4] = [
        // The ALB's nodes, the NLB's node in zone a, and DNS.
        (
            "lb",
            &[
                "10.77.1.254/16",
                "10.77.2.254/16",
                "10.77.1.253/16",
                "10.77.0.53/16",
            ],
        ),
        ("ta", &["10.77.1.10/16"]),
        ("tb", &["10.77.2.10/16"]),
        ("cl", &["10.77.0.10/16"]),
    ];
    Namespaces::bridged("elbd", RANGE, &hosts, ("cl", DNS))
}

const CONFIG: &str = r#"
[settings]
dns_domain = "lab.test"
[[settings.zone]]
name = "us-east-1a"
cidr = "10.77.1.0/24"
[[settings.zone]]
name = "us-east-1b"
cidr = "10.77.2.0/24"

[[load_balancer]]
name = "lab"
availability_zones = ["us-east-1a", "us-east-1b"]

[[load_balancer.listener]]
protocol = "HTTP"
port = 80
default_action = { forward = "lab-tg" }

[[load_balancer]]
name = "flows"
type = "network"
scheme = "internal"
availability_zones = ["us-east-1a"]

[[load_balancer.listener]]
protocol = "TCP"
port = 7000
default_action = { forward = "flows-tg" }

[[target_group]]
name = "flows-tg"
protocol = "TCP"
port = 9002
targets = ["10.77.1.10:9002"]
health_check = { interval_seconds = 5, timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }
attributes = { "preserve_client_ip.enabled" = "true" }

[[target_group]]
name = "lab-tg"
protocol = "HTTP"
port = 9001
targets = ["10.77.1.10:9001", "10.77.2.10:9001"]
health_check = { interval_seconds = 5, timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }
attributes = { "load_balancing.cross_zone.enabled" = "false" }
"#;

/// Seconds since the epoch, the load script's clock.
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The addresses the client's resolver gives for `name`.
fn resolve(lab: &Namespaces, name: &str) -> Vec<String> {
    lab.resolve("cl", name)
}

#[test]
fn in_a_network_lab_dns_fails_over_from_a_zone_whose_link_is_down() {
    let (dir, config) = scratch("netlab", CONFIG);

    let mut lab = build();
    for (host, ip) in [("ta", "10.77.1.10"), ("tb", "10.77.2.10")] {
        lab.spawn(
            host,
            &["python3", "-m", "http.server", "--bind", ip, "9001"],
            &dir.join(format!("{host}.log")),
        );
    }
    // Zone a's TCP target tells each connection the peer it sees.
    lab.spawn(
        "ta",
        &["python3", "-c", GREETER, "10.77.1.10", "9002"],
        &dir.join("greeter.log"),
    );
    // Client IP preservation: the target answers the client's address through elbd's
    // namespace, which delivers what comes back from the target locally, to the transparent
    // socket (README, "Client IP preservation").
    run(&[
        "ip",
        "-n",
        &lab.ns("ta"),
        "route",
        "add",
        "10.77.0.10/32",
        "via",
        "10.77.1.253",
    ]);
    let lb = lab.ns("lb");
    run(&[
        "ip",
        "-n",
        &lb,
        "rule",
        "add",
        "iif",
        "eth0",
        "from",
        "10.77.1.10",
        "lookup",
        "100",
    ]);
    run(&[
        "ip",
        "-n",
        &lb,
        "route",
        "add",
        "local",
        "0.0.0.0/0",
        "dev",
        "lo",
        "table",
        "100",
    ]);
    let elbd_log = dir.join("elbd.log");
    let data = dir.join("data");
    let (config, data) = (config.to_str().unwrap(), data.to_str().unwrap());
    let dns = format!("{DNS}:53");
    lab.spawn(
        "lb",
        &[
            env!("CARGO_BIN_EXE_elbd"),
            "serve",
            "--config",
            config,
            "--data-dir",
            data,
            "--dns-listen",
            &dns,
            "--transparent-client-ip",
        ],
        &elbd_log,
    );

    let logs = || std::fs::read_to_string(&elbd_log).unwrap_or_default();
    let wait = |what: &str, limit: Duration, done: &mut dyn FnMut() -> bool| -> Duration {
        let start = Instant::now();
        while !done() {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}:\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        start.elapsed()
    };
    let name = loop {
        if let Some(line) = logs().lines().find(|l| l.contains(" name=lab ")) {
            let name = line
                .split("dns_name=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned();
            break name;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let both = ["10.77.1.254".to_owned(), "10.77.2.254".to_owned()];
    wait(
        "the three targets healthy",
        Duration::from_secs(20),
        &mut || {
            logs()
                .lines()
                .filter(|l| l.contains("target health") && l.contains("state=healthy"))
                .count()
                >= 3
        },
    );
    // The NLB's node took the address the lab gave elbd's namespace for it.
    let flows = logs()
        .lines()
        .find(|l| l.contains(" name=flows "))
        .map(str::to_owned);
    assert!(
        flows
            .as_deref()
            .is_some_and(|l| l.contains("nodes=us-east-1a=10.77.1.253")),
        "{flows:?}"
    );
    // The target sees the client's address and port.
    let script = "import socket\n\
        c = socket.create_connection(('10.77.1.253', 7000), timeout=3)\n\
        print(c.getsockname()[0], c.getsockname()[1], c.makefile().readline().strip())\n";
    let (ok, seen) = lab.exec("cl", &["python3", "-c", script]);
    let words: Vec<&str> = seen.split_whitespace().collect();
    assert!(
        ok && words.len() == 3,
        "through the NLB: {seen}\n{}",
        logs()
    );
    assert_eq!(
        words[2],
        format!("{}:{}", words[0], words[1]),
        "the target sees the client's address and port"
    );
    wait("both nodes in DNS", Duration::from_secs(20), &mut || {
        resolve(&lab, &name) == both
    });
    let curl = |lab: &Namespaces| {
        lab.exec(
            "cl",
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
                &format!("http://{name}/"),
            ],
        )
    };
    assert_eq!(
        curl(&lab),
        (true, "200".to_owned()),
        "curl by name through the lab's DNS"
    );

    // Zone b's link goes down under a load by name (the fault matrix's row for it): only
    // requests that went to b's node fail, and none once DNS has dropped it.
    let script = format!("{}/tests/it/zone_load.py", env!("CARGO_MANIFEST_DIR"));
    let (took, fault_at, dropped_at, load) = std::thread::scope(|scope| {
        let load = scope.spawn(|| lab.exec("cl", &["python3", &script, &name, "20", "30"]));
        std::thread::sleep(Duration::from_secs(3));
        let fault_at = wall_clock();
        run(&["ip", "-n", &lab.ns("tb"), "link", "set", "eth0", "down"]);
        let took = wait("zone b to leave DNS", Duration::from_secs(30), &mut || {
            resolve(&lab, &name) == both[..1]
        });
        let dropped_at = wall_clock();
        (took, fault_at, dropped_at, load.join().unwrap())
    });
    eprintln!("netlab: zone b's node left DNS {took:?} after its link went down");
    let (ok, lines) = load;
    assert!(ok, "the load script failed");
    let requests: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(requests.len(), 600, "every request reported");
    let failed: Vec<&serde_json::Value> =
        requests.iter().filter(|r| r["outcome"] != "ok").collect();
    let last = failed
        .iter()
        .filter_map(|r| r["at"].as_f64())
        .fold(None, |m: Option<f64>, at| Some(m.map_or(at, |m| m.max(at))));
    println!(
        "fault matrix | zone b's link down (netns; DNS by name) | {} answered | {} failed | \
         expected those sent to zone b's node before DNS drops it ({:.1} s) | last failure {}",
        requests.len() - failed.len(),
        failed.len(),
        took.as_secs_f64(),
        last.map_or("none".to_owned(), |at| format!(
            "{:.1} s after the fault",
            at - fault_at
        )),
    );
    // Each failure went to zone b's node and was resolved before DNS dropped it (the wait
    // sees that within its 250 ms poll). A loaded CI machine may time out a request or a
    // lookup elsewhere now and then: three such are let pass, and shown.
    let (expected, other): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        failed.iter().partition(|r| {
            r["address"] == "10.77.2.254" && r["at"].as_f64().unwrap() <= dropped_at + 0.5
        });
    println!(
        "fault matrix | zone b's link down | {} failed as expected, {} otherwise: {other:?}",
        expected.len(),
        other.len()
    );
    assert!(
        other.len() <= 3,
        "failures not explained by zone b: {other:?}"
    );
    // At most every request sent while zone b was in DNS, and its timeouts, fail.
    let window = 20.0 * (took.as_secs_f64() + 3.0);
    assert!(
        (requests.len() - failed.len()) as f64 >= 600.0 - window - 3.0,
        "zone a's node answers throughout"
    );
    for _ in 0..5 {
        assert_eq!(
            curl(&lab),
            (true, "200".to_owned()),
            "curl by name after the failover"
        );
    }
}
