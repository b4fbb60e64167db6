//! elbd on etcd (`--store etcd://`): what it does when the store goes away and comes back.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::harness::{Aws, Backend, Elbd, Etcd, EtcdTls, Lab, ProcessBackend, curl, dig, spread};
use crate::tls::{self_signed, signed_by};

/// etcd hangs: the nodes go on serving the last state (fail static), reads are answered, writes
/// are refused with ServiceUnavailable, the log and `elbd_store_watch_up` say so; once etcd
/// answers again, writes land and the watch resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_hung_traffic_flows_and_writes_are_refused_until_it_is_back() {
    let lab = Lab::new("etcd-outage", 34).on_etcd();
    let _backends = [
        Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await,
        Backend::start(SocketAddr::from((lab.ip('b', 10), 9001)), Duration::ZERO).await,
    ];
    let config = lab.write(
        "elbd.toml",
        &format!(
            "{}\n\
             [[load_balancer]]\nname = \"web\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
             [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"web-tg\" }}\n\
             [[target_group]]\nname = \"web-tg\"\nprotocol = \"HTTP\"\nport = 9001\n\
             targets = [\"{}:9001\", \"{}:9001\"]\n",
            lab.settings(),
            lab.ip('a', 10),
            lab.ip('b', 10),
        ),
    );
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(
        &lab,
        &config,
        &["--api-listen", &api.to_string()],
        &[api, node],
    );
    elbd.wait_healthy(2);
    let aws = Aws::new(api);
    let vpcs = aws.ok(&["ec2", "describe-vpcs"]);
    let vpc = vpcs["Vpcs"][0]["VpcId"].as_str().unwrap();
    let create = [
        "elbv2",
        "create-target-group",
        "--name",
        "later",
        "--target-type",
        "ip",
    ];
    let create = [
        &create[..],
        &["--protocol", "HTTP", "--port", "80", "--vpc-id", vpc],
    ]
    .concat();

    lab.etcd().signal("STOP");
    assert_eq!(spread(node, 4).await.len(), 2, "traffic while etcd hangs");
    let refused = aws.err(&create);
    assert!(refused.contains("ServiceUnavailable"), "{refused}");
    let described = aws.ok(&["elbv2", "describe-target-groups"]);
    assert_eq!(described["TargetGroups"].as_array().unwrap().len(), 1);
    elbd.wait_until("the watch to notice", || {
        elbd_logs(&lab).contains("etcd watch lost")
    });
    let watch_up = || {
        let metrics = curl(&format!("http://{api}/metrics"), &[]).body;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("elbd_store_watch_up "));
        line.map(|l| l.ends_with(" 1"))
    };
    assert_eq!(
        watch_up(),
        Some(false),
        "the metrics say the store is out of reach"
    );

    lab.etcd().signal("CONT");
    // The client reconnects on its own; the first write after may still meet the old channel.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !aws.command(&create).status.success() {
        assert!(Instant::now() < deadline, "writes did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let described = aws.ok(&["elbv2", "describe-target-groups"]);
    assert_eq!(described["TargetGroups"].as_array().unwrap().len(), 2);
    elbd.wait_until("the watch to resume", || {
        elbd_logs(&lab).contains("etcd watch resumed")
    });
    assert_eq!(watch_up(), Some(true));
    assert_eq!(spread(node, 4).await.len(), 2, "traffic after etcd is back");
}

/// `elbd nodes` on the lab's etcd.
fn elbd_nodes(lab: &Lab) -> String {
    let endpoint = format!("etcd://{}", lab.etcd().endpoint);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_elbd"))
        .args(["nodes", "--store", &endpoint])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn elbd_logs(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("elbd.log")).unwrap_or_default()
}

/// The parts of elbd apart, sharing one state in etcd, as AWS runs a load balancer: two API
/// processes (the first with DNS) and a node process per zone. A load balancer made through
/// one API and a target group through the other are one state; each node process listens on
/// its zone's node alone; health comes from the node processes; a node process killed takes
/// its zone out of DNS within its lease, and a new one brings it back; with the first API
/// gone, the second takes writes and a deregistration's delay still expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_dns_and_a_node_process_per_zone_share_one_state() {
    let lab = Lab::new("etcd-parts", 50).on_etcd();
    let _backends = [
        Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await,
        Backend::start(SocketAddr::from((lab.ip('b', 10), 9001)), Duration::ZERO).await,
    ];
    let config = lab.write("elbd.toml", &lab.settings());
    let (api1, api2) = (
        SocketAddr::from((lab.ip('a', 1), 4566)),
        SocketAddr::from((lab.ip('a', 2), 4566)),
    );
    let dns = SocketAddr::from((lab.ip('a', 1), 5353));
    let mut first_api = Elbd::start_part(
        &lab,
        "api1",
        &config,
        &[
            "--role",
            "api",
            "--role",
            "dns",
            "--api-listen",
            &api1.to_string(),
        ]
        .into_iter()
        .chain(["--dns-listen", &dns.to_string()])
        .collect::<Vec<_>>(),
        &[api1],
    );
    // API 1 leads the control loops: it campaigns first.
    let leads = |part: &str| {
        let log = std::fs::read_to_string(lab.dir.join(format!("elbd-{part}.log")));
        log.unwrap_or_default()
            .contains("leading the control loops")
    };
    first_api.wait_until("API 1 to lead", || leads("api1"));
    let _second_api = Elbd::start_part(
        &lab,
        "api2",
        &config,
        &["--role", "api", "--api-listen", &api2.to_string()],
        &[api2],
    );
    let node_with = |zone: char, extra: &[&str]| {
        let name = format!("us-east-1{zone}");
        let args = ["--role", "node", "--zone", &name, "--lease-seconds", "2"];
        let args = [&args[..], extra].concat();
        Elbd::start_part(&lab, &format!("node-{zone}"), &config, &args, &[])
    };
    let node = |zone: char| node_with(zone, &[]);
    // Zone a's node process shows its own counters on an address of its own.
    let metrics = SocketAddr::from((lab.ip('a', 5), 9100));
    let metrics_flag = metrics.to_string();
    let (mut node_a, node_b) = (
        node_with('a', &["--metrics-listen", &metrics_flag]),
        node('b'),
    );

    let (one, two) = (Aws::new(api1), Aws::new(api2));
    let (lb, vpc) = one.load_balancer("web");
    let group = two.target_group("pool", &vpc, 9001, "ip", &[]);
    two.register(
        &group,
        &[lab.ip('a', 10).to_string(), lab.ip('b', 10).to_string()],
    );
    one.forward_listener(&lb, 8080, &group);
    let nodes = [lab.node('a', 8080), lab.node('b', 8080)];
    for node in nodes {
        node_a.wait_until(&format!("{node} to listen"), || {
            std::net::TcpStream::connect(node).is_ok()
        });
    }
    two.ok(&[
        "elbv2",
        "wait",
        "target-in-service",
        "--target-group-arn",
        &group,
    ]);
    for node in nodes {
        assert_eq!(spread(node, 4).await.len(), 2, "through {node}");
    }
    let served = curl(&format!("http://{metrics}/metrics"), &[]).body;
    let requests: f64 = (served.lines())
        .filter(|l| l.starts_with("aws_applicationelb_request_count_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(
        requests, 4.0,
        "zone a's node process counts the requests it served"
    );
    // The node processes judge a weighted_random group's targets; an API process, which has
    // no data plane, answers with what they publish.
    let _third = Backend::start(SocketAddr::from((lab.ip('a', 11), 9001)), Duration::ZERO).await;
    let weighted = two.target_group("weighted", &vpc, 9001, "ip", &[]);
    two.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &weighted,
        "--attributes",
        "Key=load_balancing.algorithm.type,Value=weighted_random",
    ]);
    let targets = [('a', 10), ('a', 11), ('b', 10)].map(|(zone, n)| lab.ip(zone, n).to_string());
    two.register(&weighted, &targets);
    one.forward_listener(&lb, 8081, &weighted);
    let judged = || {
        let health = one.ok(&[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            &weighted,
            "--include",
            "AnomalyDetection",
        ]);
        let rows = health["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .clone();
        rows.len() == 3
            && (rows.iter()).all(|r| {
                r["TargetHealth"]["State"] == "healthy"
                    && r["AnomalyDetection"]["Result"] == "normal"
            })
    };
    node_a.wait_until("the node processes' anomaly findings", judged);
    let described = one.ok(&[
        "elbv2",
        "describe-load-balancers",
        "--load-balancer-arns",
        &lb,
    ]);
    let name = described["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = || {
        let described = one.ok(&[
            "elbv2",
            "describe-load-balancers",
            "--load-balancer-arns",
            &lb,
        ]);
        described["LoadBalancers"][0]["State"]["Code"] == "active"
    };
    node_a.wait_until("the load balancer to be active", state);
    let name = name.as_str();
    let answers = |want: usize| move || dig(dns, name).1.len() == want;
    let public = |zone: char| lab.public_node(zone, 8080).ip();
    assert_eq!(
        dig(dns, name)
            .1
            .iter()
            .map(|(_, ip)| IpAddr::V4(*ip))
            .collect::<Vec<_>>(),
        [public('a'), public('b')]
    );

    // Zone b's node process dies: its node stops listening (it was that process's alone),
    // and zone b leaves DNS once its lease is over; a new one brings it back.
    drop(node_b);
    assert!(std::net::TcpStream::connect(nodes[1]).is_err());
    assert!(std::net::TcpStream::connect(nodes[0]).is_ok());
    node_a.wait_until("zone b to leave DNS", answers(1));
    assert_eq!(IpAddr::V4(dig(dns, name).1[0].1), public('a'));
    // Again, with a lease longer than any wait here: a clean stop (SIGTERM) withdraws the
    // zone at once, not when the lease runs out.
    let node_b = Elbd::start_part(
        &lab,
        "node-b2",
        &config,
        &[
            "--role",
            "node",
            "--zone",
            "us-east-1b",
            "--lease-seconds",
            "60",
        ],
        &[],
    );
    node_a.wait_until("zone b back in DNS", answers(2));
    node_b.signal("TERM");
    node_a.wait_until("zone b to leave DNS on a clean stop", answers(1));
    let _node_b = node('b');
    node_a.wait_until("zone b back in DNS", answers(2));

    // A second node process for zone a joins the first (the same addresses, SO_REUSEPORT):
    // with the first gone, zone a's node still serves, and stays in DNS.
    let mut node_a2 = Elbd::start_part(
        &lab,
        "node-a2",
        &config,
        &[
            "--role",
            "node",
            "--zone",
            "us-east-1a",
            "--lease-seconds",
            "2",
        ],
        &[],
    );
    node_a2.wait_until("two processes to serve zone a", || {
        elbd_nodes(&lab).matches("us-east-1a").count() == 2
    });
    // Both groups' targets: the two of `pool` and the three of `weighted`.
    node_a2.wait_healthy(5);
    drop(node_a);
    assert_eq!(
        spread(nodes[0], 4).await.len(),
        2,
        "zone a after its first process"
    );
    node_a2.wait_until("zone a's first process to leave the list", || {
        elbd_nodes(&lab).matches("us-east-1a").count() == 1
    });
    assert_eq!(dig(dns, name).1.len(), 2);
    let mut node_a = node_a2;

    // API 1 dies: API 2 takes writes, takes the lead once API 1's lease is over, and removes
    // a deregistered target once its delay is over.
    assert!(!leads("api2"));
    drop(first_api);
    let delay = [
        "--attributes",
        "Key=deregistration_delay.timeout_seconds,Value=1",
    ];
    two.ok(&[
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &group,
        ][..],
        &delay,
    ]
    .concat());
    let target = format!("Id={}", lab.ip('b', 10));
    two.ok(&[
        "elbv2",
        "deregister-targets",
        "--target-group-arn",
        &group,
        "--targets",
        &target,
    ]);
    let registered = || {
        let health = two.ok(&[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            &group,
        ]);
        health["TargetHealthDescriptions"].as_array().unwrap().len()
    };
    node_a.wait_until("API 2 to lead", || leads("api2"));
    node_a.wait_until("the deregistered target to go", || registered() == 1);
}

/// etcd with TLS, client certificates and a password: elbd reaches it through its --etcd-*
/// flags and ELBD_ETCD_PASSWORD, and takes writes. At start, a wrong password, a missing CA, an
/// endpoint that does not answer and a zone no region has are refused, each named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_with_tls_and_a_password_is_reached_by_flags_and_bad_settings_are_refused() {
    let lab = Lab::new("etcd-secure", 69);
    let ip = lab.ip('a', 7);
    let (ca, ca_key) = self_signed(&lab, "etcd-ca", "etcd-ca");
    let server =
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:{ip}\n");
    let (cert, key) = signed_by(&lab, (&ca, &ca_key), "etcd-server", "/CN=etcd", &server);
    let client = "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n";
    let (client_cert, client_key) = signed_by(&lab, (&ca, &ca_key), "elbd", "/CN=elbd", client);
    let tls = EtcdTls {
        ca: &ca,
        cert: &cert,
        key: &key,
    };
    let etcd = Etcd::start_with(&lab.dir.join("etcd"), ip, Some(tls));
    let endpoint = format!("https://{}", etcd.endpoint);
    let etcdctl = |args: &[&str]| {
        let out = std::process::Command::new("etcdctl")
            .args(["--endpoints", &endpoint, "--user", "root:s3cret"])
            .arg("--cacert")
            .arg(&ca)
            .arg("--cert")
            .arg(&client_cert)
            .arg("--key")
            .arg(&client_key)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    etcdctl(&["user", "add", "root:s3cret"]);
    etcdctl(&["auth", "enable"]);

    let api = SocketAddr::from((lab.ip('a', 3), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let elbd = |store: &str, password: &str, tls: bool, extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_elbd"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(lab.dir.join("data"))
            .args(["--store", store, "--etcd-user", "root"])
            .env("ELBD_ETCD_PASSWORD", password);
        if tls {
            command
                .arg("--etcd-ca-file")
                .arg(&ca)
                .arg("--etcd-cert-file")
                .arg(&client_cert)
                .arg("--etcd-key-file")
                .arg(&client_key);
        }
        command.args(extra);
        command
    };
    let store = format!("etcd://{}", etcd.endpoint);
    let refused = |mut command: std::process::Command, says: &[&str]| {
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started: {stderr}");
        for said in says {
            assert!(stderr.contains(said), "{said:?} not in: {stderr}");
        }
    };
    let named = format!("etcd at {}", etcd.endpoint);
    refused(
        elbd(&store, "wrong", true, &[]),
        &[&named, "authentication failed"],
    );
    refused(elbd(&store, "s3cret", false, &[]), &[&named]);
    let silent = SocketAddr::from((lab.ip('a', 9), 2379));
    refused(
        elbd(&format!("etcd://{silent}"), "s3cret", true, &[]),
        &[&format!("etcd at {silent}")],
    );

    let api_flag = api.to_string();
    let serving = elbd(&store, "s3cret", true, &["--api-listen", &api_flag]);
    let _elbd = ProcessBackend::spawn(serving, api);
    let aws = Aws::new(api);
    let vpcs = aws.ok(&["ec2", "describe-vpcs"]);
    let vpc = vpcs["Vpcs"][0]["VpcId"].as_str().unwrap();
    aws.target_group("through-tls", vpc, 80, "ip", &[]);
    let node = elbd(
        &store,
        "s3cret",
        true,
        &["--role", "node", "--zone", "us-east-1z"],
    );
    refused(node, &["--zone us-east-1z: no region has such a zone"]);
}
