//! elbd's parts apart, in the network-namespace lab (shared/reference/netlab.md): etcd, two
//! API processes (the first also DNS) on a control host, a node process per zone on a host of
//! that zone, a target per zone, and a client whose resolver is elbd's DNS. The aws cli,
//! from the client, makes a load balancer through one API and its target group through the
//! other; curl by name reaches the targets through both zones' node processes; the host of
//! zone b dying takes b out of DNS, and a node process started again brings it back.
//!
//! While the lab exists, the root namespace has an `unreachable` route for 10.78.0.0/16, so no
//! packet of the test can leave the machine.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::venv;
use crate::netns::{Namespaces, scratch};

const RANGE: &str = "10.78.0.0/16";
const ETCD: &str = "10.78.0.5:2379";
const API: [&str; 2] = ["10.78.0.1:4566", "10.78.0.2:4566"];
const DNS: &str = "10.78.0.53";
const NODES: [&str; 2] = ["10.78.1.254", "10.78.2.254"];

const CONFIG: &str = r#"
[settings]
dns_domain = "lab.test"
[[settings.zone]]
name = "us-east-1a"
cidr = "10.78.1.0/24"
[[settings.zone]]
name = "us-east-1b"
cidr = "10.78.2.0/24"
"#;

/// core (bridge) + ctl (etcd, the APIs, DNS), na and nb (a node process each), ta and tb (a
/// target each), cl (the client, resolving through elbd).
fn build() -> Namespaces {
    let hosts: [(&str, &[&str]); 6] = [
        (
            "ctl",
            &[
                "10.78.0.1/16",
                "10.78.0.2/16",
                "10.78.0.5/16",
                "10.78.0.53/16",
            ],
        ),
        ("na", &["10.78.1.254/16"]),
        ("nb", &["10.78.2.254/16"]),
        ("ta", &["10.78.1.10/16"]),
        ("tb", &["10.78.2.10/16"]),
        ("cl", &["10.78.0.10/16"]),
    ];
    Namespaces::bridged("prt", RANGE, &hosts, ("cl", DNS))
}

fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn in_a_network_lab_api_dns_and_a_node_process_per_zone_host_serve_by_name() {
    let (dir, config) = scratch("netlab-parts", CONFIG);
    let mut lab = build();
    let config = config.to_str().unwrap().to_owned();
    let elbd = |lab: &mut Namespaces, host: &str, name: &str, args: &[&str]| {
        let data = dir.join(format!("data-{name}"));
        let store = format!("etcd://{ETCD}");
        let common = [
            env!("CARGO_BIN_EXE_elbd"),
            "serve",
            "--config",
            &config,
            "--data-dir",
            data.to_str().unwrap(),
            "--store",
            &store,
        ];
        let log = dir.join(format!("elbd-{name}.log"));
        lab.spawn(host, &[&common[..], args].concat(), &log);
    };
    let peer = "http://127.0.0.1:2380";
    let etcd_dir = dir.join("etcd");
    lab.spawn(
        "ctl",
        &[
            "etcd",
            "--name",
            "lab",
            "--data-dir",
            etcd_dir.to_str().unwrap(),
            "--listen-client-urls",
            &format!("http://{ETCD}"),
            "--advertise-client-urls",
            &format!("http://{ETCD}"),
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            &format!("lab={peer}"),
        ],
        &dir.join("etcd.log"),
    );
    for (host, ip) in [("ta", "10.78.1.10"), ("tb", "10.78.2.10")] {
        lab.spawn(
            host,
            &["python3", "-m", "http.server", "--bind", ip, "9001"],
            &dir.join(format!("{host}.log")),
        );
    }
    let aws = |lab: &Namespaces, api: &str, args: &[&str]| -> Option<Value> {
        let aws = venv().join("bin/aws");
        let endpoint = format!("http://{api}");
        let env = [
            "env",
            "AWS_ACCESS_KEY_ID=test",
            "AWS_SECRET_ACCESS_KEY=test",
            "AWS_DEFAULT_REGION=us-east-1",
            "AWS_MAX_ATTEMPTS=1",
        ];
        let command = [
            aws.to_str().unwrap(),
            "--endpoint-url",
            &endpoint,
            "--output",
            "json",
        ];
        let (ok, out) = lab.exec("cl", &[&env[..], &command, args].concat());
        ok.then(|| serde_json::from_str(&out).unwrap_or(Value::Null))
    };
    // etcd first: elbd refuses to start without it.
    wait("etcd", || {
        lab.exec(
            "ctl",
            &["etcdctl", "--endpoints", ETCD, "endpoint", "health"],
        )
        .0
    });
    let dns = format!("{DNS}:53");
    elbd(
        &mut lab,
        "ctl",
        "api1",
        &[
            "--role",
            "api",
            "--role",
            "dns",
            "--api-listen",
            API[0],
            "--dns-listen",
            &dns,
        ],
    );
    elbd(
        &mut lab,
        "ctl",
        "api2",
        &["--role", "api", "--api-listen", API[1]],
    );
    for api in API {
        wait(&format!("the API at {api}"), || {
            aws(&lab, api, &["ec2", "describe-vpcs"]).is_some()
        });
    }
    let node = |lab: &mut Namespaces, zone: char| {
        let (host, name) = (format!("n{zone}"), format!("us-east-1{zone}"));
        let args = ["--role", "node", "--zone", &name, "--lease-seconds", "2"];
        elbd(lab, &host, &format!("node-{zone}"), &args);
    };
    node(&mut lab, 'a');
    node(&mut lab, 'b');

    let subnets = aws(&lab, API[0], &["ec2", "describe-subnets"]).unwrap();
    let mut subnets: Vec<(String, String, String)> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap().to_owned();
            (text("AvailabilityZone"), text("SubnetId"), text("VpcId"))
        })
        .collect();
    subnets.sort();
    let lb = aws(
        &lab,
        API[0],
        &[
            "elbv2",
            "create-load-balancer",
            "--name",
            "parts",
            "--scheme",
            "internal",
            "--subnets",
            &subnets[0].1,
            &subnets[1].1,
        ],
    )
    .unwrap();
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"].as_str().unwrap();
    let name = lb["LoadBalancers"][0]["DNSName"].as_str().unwrap();
    let group = aws(
        &lab,
        API[1],
        &[
            "elbv2",
            "create-target-group",
            "--name",
            "parts-tg",
            "--protocol",
            "HTTP",
            "--port",
            "9001",
            "--target-type",
            "ip",
            "--vpc-id",
            &subnets[0].2,
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "2",
            "--healthy-threshold-count",
            "2",
        ],
    )
    .unwrap();
    let group_arn = group["TargetGroups"][0]["TargetGroupArn"].as_str().unwrap();
    aws(
        &lab,
        API[1],
        &[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            group_arn,
            "--targets",
            "Id=10.78.1.10",
            "Id=10.78.2.10",
        ],
    )
    .unwrap();
    let action = format!("Type=forward,TargetGroupArn={group_arn}");
    aws(
        &lab,
        API[0],
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            "80",
            "--default-actions",
            &action,
        ],
    )
    .unwrap();

    // Each node process listens on its own zone's node, on its own host.
    for (host, node) in [("na", NODES[0]), ("nb", NODES[1])] {
        wait(&format!("{host} to listen"), || {
            lab.exec(host, &["ss", "-ltnH"])
                .1
                .contains(&format!("{node}:80"))
        });
    }
    let healthy = || {
        let health = aws(
            &lab,
            API[1],
            &[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                group_arn,
            ],
        );
        health.is_some_and(|h| {
            let all = h["TargetHealthDescriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            all.len() == 2 && all.iter().all(|t| t["TargetHealth"]["State"] == "healthy")
        })
    };
    wait(
        "the node processes' checks to find both targets healthy",
        healthy,
    );
    let resolve = |lab: &Namespaces| lab.resolve("cl", name);
    wait("both zones in DNS", || resolve(&lab) == NODES);
    let curl = |lab: &Namespaces| {
        let url = format!("http://{name}/");
        lab.exec(
            "cl",
            &[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "3",
                &url,
            ],
        )
        .1
    };
    for _ in 0..6 {
        assert_eq!(curl(&lab), "200", "by name, through either zone");
    }

    // Zone b's host dies: b leaves DNS within the node process's lease, and by name the
    // load balancer still answers.
    lab.kill("nb");
    wait("zone b to leave DNS", || resolve(&lab) == [NODES[0]]);
    for _ in 0..4 {
        assert_eq!(curl(&lab), "200", "by name, with zone b gone");
    }
    node(&mut lab, 'b');
    wait("zone b back in DNS", || resolve(&lab) == NODES);
}
