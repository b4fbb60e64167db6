//! A gateway in the path of real traffic (shared/reference/netlab.md §3): a client and a
//! destination whose routes go through an edge namespace, where elbd runs the Gateway Load
//! Balancer endpoint as a TUN interface and the gateway's node on 10.98.255.254 (the top of
//! its subnet); two appliances (examples/geneve-appliance.py) in their own namespaces.
//!
//! ```text
//! client 10.98.1.10 ── e0 [edge: elbd, gwlbe-…, 10.98.255.254] e1 ── dest 10.98.2.10 (HTTP)
//!                                e2 │            │ e3
//!                   appliance 1 10.98.3.10    appliance 2 10.98.4.10  (GENEVE on 6081)
//! ```
//!
//! The edge steers what arrives from the client and the destination into the endpoint, as a
//! VPC route table would (`ip rule iif e0/e1 lookup 100`, table 100: default dev gwlbe-…);
//! what comes back from the appliances leaves the interface by the main table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::venv;
use crate::netns::{Namespaces, scratch};

const RANGE: &str = "10.98.0.0/16";
const NODE: &str = "10.98.255.254";
const APPLIANCES: [&str; 2] = ["10.98.3.10", "10.98.4.10"];
const API: &str = "127.0.0.1:4566";

const CONFIG: &str = r#"
[settings]
[[settings.zone]]
name = "us-east-1a"
cidr = "10.98.0.0/16"
"#;

/// client, edge, dest and two appliances, linked and routed as the module says; appliance
/// links carry 9,000-byte frames (GENEVE adds 68 bytes to the endpoint's 8,500).
fn build() -> Namespaces {
    let mut lab = Namespaces::new("gw", RANGE);
    for host in ["client", "edge", "dest", "ap1", "ap2"] {
        lab.host(host);
    }
    lab.link(
        ("client", "c0", "10.98.1.10/24"),
        ("edge", "e0", "10.98.1.1/24"),
    );
    lab.link(
        ("dest", "d0", "10.98.2.10/24"),
        ("edge", "e1", "10.98.2.1/24"),
    );
    lab.link(
        ("ap1", "a0", "10.98.3.10/24"),
        ("edge", "e2", "10.98.3.1/24"),
    );
    lab.link(
        ("ap2", "a0", "10.98.4.10/24"),
        ("edge", "e3", "10.98.4.1/24"),
    );
    for (host, interface) in [("ap1", "a0"), ("edge", "e2"), ("ap2", "a0"), ("edge", "e3")] {
        lab.ip(host, &["link", "set", interface, "mtu", "9000"]);
    }
    for (host, via) in [
        ("client", "10.98.1.1"),
        ("dest", "10.98.2.1"),
        ("ap1", "10.98.3.1"),
        ("ap2", "10.98.4.1"),
    ] {
        lab.ip(host, &["route", "add", "default", "via", via]);
    }
    let (ok, _) = lab.exec(
        "edge",
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ],
    );
    assert!(ok, "sysctl in the edge namespace");
    // The gateway node's address: the operator's to give, never elbd's.
    lab.ip("edge", &["addr", "add", &format!("{NODE}/32"), "dev", "lo"]);
    lab
}

/// The aws cli in the edge namespace, against elbd's API there.
fn aws(lab: &Namespaces, args: &[&str]) -> Result<Value, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns("edge")])
        .arg(venv().join("bin/aws"))
        .args([
            "--endpoint-url",
            &format!("http://{API}"),
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

/// Waits (at most `limit`) until `done`, failing with elbd's log.
fn wait(log: &Path, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; elbd said:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One packet an appliance logged: who sent it, AWS's options, the inner flow.
struct Seen {
    appliance: usize,
    options: BTreeMap<String, String>,
    protocol: u64,
    source: String,
    destination: String,
}

fn seen(dir: &Path) -> Vec<Seen> {
    let mut all = Vec::new();
    for appliance in 0..APPLIANCES.len() {
        let log = std::fs::read_to_string(dir.join(format!("ap{}.jsonl", appliance + 1)))
            .unwrap_or_default();
        for line in log.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v.get("dropped").is_none(), "appliance {appliance}: {line}");
            let options = v["options"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            all.push(Seen {
                appliance,
                options,
                protocol: v["protocol"].as_u64().unwrap(),
                source: text(&v["source"]),
                destination: text(&v["destination"]),
            });
        }
    }
    all
}

/// With the aws cli: a gateway, a GENEVE group of two appliances, its listener, an endpoint
/// service and an endpoint, whose interface the test's routes send the client's and the
/// destination's traffic into. Twenty curls from the client reach the destination; both
/// appliances see flows; every packet carries AWS's three options, option 1 the endpoint id;
/// each TCP connection, both directions, is seen by one appliance only.
#[test]
fn traffic_routed_through_an_endpoint_passes_the_appliances_flow_by_flow() {
    let (dir, config) = scratch("gwlb", CONFIG);
    let mut lab = build();
    let appliance = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/geneve-appliance.py"
    );
    for (i, host) in ["ap1", "ap2"].iter().enumerate() {
        let log = dir.join(format!("ap{}.jsonl", i + 1));
        let args = ["python3", appliance, "--log", log.to_str().unwrap()];
        lab.spawn(host, &args, &dir.join(format!("{host}.err")));
    }
    let site = ["python3", "-m", "http.server", "80", "--bind", "10.98.2.10"];
    lab.spawn("dest", &site, &dir.join("dest.log"));
    let elbd_log = dir.join("elbd.log");
    let data = dir.join("data");
    let elbd = [
        env!("CARGO_BIN_EXE_elbd"),
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--api-listen",
        API,
    ];
    lab.spawn("edge", &elbd, &elbd_log);
    wait(&elbd_log, "elbd's API", Duration::from_secs(20), || {
        aws(&lab, &["ec2", "describe-vpcs"]).is_ok()
    });
    let ok = |args: &[&str]| aws(&lab, args).unwrap_or_else(|e| panic!("aws {args:?}: {e}"));

    let subnet = ok(&["ec2", "describe-subnets"])["Subnets"][0].clone();
    let (subnet_id, vpc) = (text(&subnet["SubnetId"]), text(&subnet["VpcId"]));
    let lb = ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "inspect",
        "--type",
        "gateway",
        "--subnets",
        &subnet_id,
    ]);
    let lb_arn = text(&lb["LoadBalancers"][0]["LoadBalancerArn"]);
    let tg = ok(&[
        "elbv2",
        "create-target-group",
        "--name",
        "appliances",
        "--protocol",
        "GENEVE",
        "--port",
        "6081",
        "--vpc-id",
        &vpc,
        "--target-type",
        "ip",
        "--health-check-interval-seconds",
        "5",
        "--healthy-threshold-count",
        "2",
    ]);
    let tg_arn = text(&tg["TargetGroups"][0]["TargetGroupArn"]);
    let targets: Vec<String> = APPLIANCES.iter().map(|ip| format!("Id={ip}")).collect();
    let mut register = vec![
        "elbv2",
        "register-targets",
        "--target-group-arn",
        &tg_arn,
        "--targets",
    ];
    register.extend(targets.iter().map(String::as_str));
    ok(&register);
    ok(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg_arn}"),
    ]);
    let service = ok(&[
        "ec2",
        "create-vpc-endpoint-service-configuration",
        "--gateway-load-balancer-arns",
        &lb_arn,
        "--no-acceptance-required",
    ]);
    let service_name = text(&service["ServiceConfiguration"]["ServiceName"]);
    let endpoint = ok(&[
        "ec2",
        "create-vpc-endpoint",
        "--vpc-endpoint-type",
        "GatewayLoadBalancer",
        "--vpc-id",
        &vpc,
        "--service-name",
        &service_name,
        "--subnet-ids",
        &subnet_id,
    ]);
    let endpoint_id = text(&endpoint["VpcEndpoint"]["VpcEndpointId"]);
    let state = || {
        let described = ok(&[
            "ec2",
            "describe-vpc-endpoints",
            "--vpc-endpoint-ids",
            &endpoint_id,
        ]);
        text(&described["VpcEndpoints"][0]["State"])
    };
    wait(
        &elbd_log,
        "the endpoint available",
        Duration::from_secs(20),
        || state() == "available",
    );
    let interface = format!("gwlbe-{}", &endpoint_id[endpoint_id.len() - 9..]);
    lab.ip(
        "edge",
        &["route", "add", "default", "dev", &interface, "table", "100"],
    );
    for from in ["e0", "e1"] {
        lab.ip("edge", &["rule", "add", "iif", from, "lookup", "100"]);
    }
    wait(
        &elbd_log,
        "both appliances healthy",
        Duration::from_secs(30),
        || {
            let health = ok(&[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                &tg_arn,
            ]);
            health["TargetHealthDescriptions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["TargetHealth"]["State"] == "healthy")
                .count()
                == 2
        },
    );

    for i in 0..20 {
        let (_, code) = lab.exec(
            "client",
            &[
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "http://10.98.2.10/",
            ],
        );
        assert_eq!(code, "200", "request {i} through the gateway");
    }

    let packets = seen(&dir);
    // Option 1 is the endpoint id's value: its 16 hex digits after `vpce-0`.
    let id_value = &endpoint_id["vpce-0".len()..];
    for p in &packets {
        let kinds: Vec<&str> = p.options.keys().map(String::as_str).collect();
        assert_eq!(
            kinds,
            ["1", "2", "3"],
            "AWS's three options on every packet"
        );
        assert_eq!(p.options["1"], id_value);
    }
    let web: Vec<&Seen> = packets
        .iter()
        .filter(|p| {
            p.protocol == 6 && (p.source.ends_with(":80") || p.destination.ends_with(":80"))
        })
        .collect();
    // Each connection by its ends in a fixed order: the appliances and directions seen.
    let mut connections: BTreeMap<(String, String), (BTreeSet<usize>, BTreeSet<bool>)> =
        BTreeMap::new();
    for p in &web {
        let outbound = p.destination.ends_with(":80");
        let ends = if outbound {
            (p.source.clone(), p.destination.clone())
        } else {
            (p.destination.clone(), p.source.clone())
        };
        let entry = connections.entry(ends).or_default();
        entry.0.insert(p.appliance);
        entry.1.insert(outbound);
    }
    assert_eq!(connections.len(), 20, "{:?}", connections.keys());
    for (ends, (appliances, directions)) in &connections {
        assert_eq!(appliances.len(), 1, "{ends:?} seen by {appliances:?}");
        assert_eq!(directions.len(), 2, "{ends:?}: both directions");
    }
    let used: BTreeSet<usize> = web.iter().map(|p| p.appliance).collect();
    assert_eq!(used.len(), 2, "both appliances see flows");

    // What the node counts (AWS/GatewayELB): the flows, the bytes, and returns it refused: one
    // that is no GENEVE, one whose flow cookie is not the flow's.
    let metric = |name: &str| -> f64 {
        let (_, page) = lab.exec("edge", &["curl", "-sf", &format!("http://{API}/metrics")]);
        page.lines()
            .filter(|l| l.split('{').next() == Some(name))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    assert!(metric("aws_gatewayelb_new_flow_count_total") >= 20.0);
    assert!(metric("aws_gatewayelb_processed_bytes_total") > 0.0);
    let sample = &packets[0].options;
    let forge = format!(
        "import socket, struct\n\
         def opt(t, data): return struct.pack('!HBB', 0x108, t, len(data) // 4) + data\n\
         opts = opt(1, bytes.fromhex('{}')) + opt(2, bytes.fromhex('{}')) + opt(3, bytes(4))\n\
         inner = bytes([0x45, 0, 0, 40] + [0] * 5 + [6, 0, 0, 10, 98, 1, 10, 10, 98, 2, 10]) + struct.pack('!HH', 1, 80) + bytes(16)\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(b'hello', ('{NODE}', 6081))\n\
         s.sendto(struct.pack('!BBHI', len(opts) // 4, 0, 0x0800, 0) + opts + inner, ('{NODE}', 6081))\n",
        sample["1"], sample["2"]
    );
    let (sent, _) = lab.exec("ap1", &["python3", "-c", &forge]);
    assert!(sent);
    wait(
        &elbd_log,
        "the forged returns counted",
        Duration::from_secs(5),
        || {
            metric("aws_gatewayelb_malformed_packet_count_total") == 1.0
                && metric("aws_gatewayelb_mismatched_packet_count_total") == 1.0
        },
    );
}
