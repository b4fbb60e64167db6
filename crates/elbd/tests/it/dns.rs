//! DNS: each load balancer name answers with its healthy zones' nodes; zones fail over and
//! come back; new zones appear.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::{Aws, Backend, Elbd, Lab, ProcessBackend, dig, spread};

/// elbd with the lab's zones, the API on .1:4566 and DNS on .2:5353 of zone a's range, and
/// `resources` declared in the config file.
fn start(lab: &Lab, resources: &str) -> (Elbd, Aws, SocketAddr) {
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let dns = SocketAddr::from((lab.ip('a', 2), 5353));
    let config = lab.write("elbd.toml", &format!("{}{resources}", lab.settings()));
    let (api_flag, dns_flag) = (api.to_string(), dns.to_string());
    let flags = ["--api-listen", &api_flag, "--dns-listen", &dns_flag];
    let elbd = Elbd::start(lab, &config, &flags, &[api]);
    (elbd, Aws::new(api), dns)
}

fn load_balancer(name: &str, scheme: &str, port: u16, tg: &str, zones: &str) -> String {
    format!(
        "[[load_balancer]]\nname = \"{name}\"\nscheme = \"{scheme}\"\navailability_zones = [{zones}]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = {port}\ndefault_action = {{ forward = \"{tg}\" }}\n"
    )
}

fn target_group(name: &str, targets: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "[[target_group]]\nname = \"{name}\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [{}]\n\
         health_check = {{ interval_seconds = 5, timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n{extra}",
        targets.join(", ")
    )
}

fn dns_name(aws: &Aws, name: &str) -> String {
    let lbs = aws.ok(&["elbv2", "describe-load-balancers", "--names", name]);
    lbs["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls `dig` until the answer is `want` (sorted addresses); returns how long it took.
fn answers_become(dns: SocketAddr, name: &str, want: &[Ipv4Addr], limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let (status, records) = dig(dns, name);
        let got: Vec<Ipv4Addr> = records.iter().map(|(_, ip)| *ip).collect();
        if status == "NOERROR" && got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name}: still {status} {got:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ip(addr: SocketAddr) -> Ipv4Addr {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => v4,
        std::net::IpAddr::V6(_) => unreachable!("the lab is IPv4"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_answer_with_their_nodes_zonal_names_with_one_and_unknown_names_not_at_all() {
    let lab = Lab::new("dns-answers", 16);
    let targets = [lab.ip('a', 10), lab.ip('b', 10)].map(|ip| SocketAddr::from((ip, 9001)));
    let _backends = [
        Backend::start(targets[0], Duration::ZERO).await,
        Backend::start(targets[1], Duration::ZERO).await,
    ];
    let zones = "\"us-east-1a\", \"us-east-1b\"";
    let resources = format!(
        "{}{}{}{}",
        load_balancer("public", "internet-facing", 8080, "public-tg", zones),
        load_balancer("private", "internal", 8081, "private-tg", zones),
        target_group("public-tg", &targets, ""),
        target_group("private-tg", &targets, ""),
    );
    let (mut elbd, aws, dns) = start(&lab, &resources);
    elbd.wait_healthy(8);

    let public = dns_name(&aws, "public");
    assert!(
        public.starts_with("public-") && public.ends_with(".us-east-1.elb.internal"),
        "{public}"
    );
    let (status, records) = dig(dns, &public);
    assert_eq!(status, "NOERROR");
    let want = vec![
        (60, ip(lab.public_node('a', 0))),
        (60, ip(lab.public_node('b', 0))),
    ];
    assert_eq!(
        records, want,
        "internet-facing names answer with public addresses, TTL 60"
    );
    let zonal = dig(dns, &format!("us-east-1b.{public}")).1;
    assert_eq!(zonal, [(60, ip(lab.public_node('b', 0)))]);

    let private = dns_name(&aws, "private");
    assert!(private.starts_with("internal-private-"), "{private}");
    // The second load balancer's nodes take the next addresses down from the subnets' tops.
    let (_, records) = dig(dns, &private);
    let ranges: Vec<(u32, u8)> = records
        .iter()
        .map(|(ttl, ip)| (*ttl, ip.octets()[1]))
        .collect();
    let subnets = [lab.ip('a', 0).octets()[1], lab.ip('b', 0).octets()[1]];
    assert_eq!(
        ranges,
        [(60, subnets[0]), (60, subnets[1])],
        "internal names answer with subnet addresses: {records:?}"
    );

    assert_eq!(dig(dns, "nope-1.us-east-1.elb.internal").0, "NXDOMAIN");
    assert_eq!(dig(dns, "example.com").0, "REFUSED");
    // The public address carries traffic like the private one.
    assert_eq!(spread(lab.public_node('a', 8080), 4).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_healthy_targets_leaves_dns_and_returns_when_they_recover() {
    let lab = Lab::new("dns-failover", 17);
    let a = SocketAddr::from((lab.ip('a', 10), 9001));
    let b = [lab.ip('b', 10), lab.ip('b', 11)].map(|ip| SocketAddr::from((ip, 9001)));
    let _a = Backend::start(a, Duration::ZERO).await;
    let b_backends = b.map(ProcessBackend::start);
    let resources = format!(
        "{}{}",
        load_balancer(
            "fo",
            "internet-facing",
            8080,
            "fo-tg",
            "\"us-east-1a\", \"us-east-1b\""
        ),
        target_group(
            "fo-tg",
            &[a, b[0], b[1]],
            "attributes = { \"load_balancing.cross_zone.enabled\" = \"false\" }\n"
        ),
    );
    let (mut elbd, aws, dns) = start(&lab, &resources);
    elbd.wait_healthy(3);
    let name = dns_name(&aws, "fo");
    let both = [ip(lab.public_node('a', 0)), ip(lab.public_node('b', 0))];
    answers_become(dns, &name, &both, Duration::from_secs(10));

    for backend in &b_backends {
        backend.signal("STOP");
    }
    let left = answers_become(dns, &name, &both[..1], Duration::from_secs(20));
    eprintln!("zone b left DNS {left:?} after its targets stopped");
    for backend in &b_backends {
        backend.signal("CONT");
    }
    let back = answers_become(dns, &name, &both, Duration::from_secs(30));
    eprintln!("zone b back in DNS {back:?} after its targets resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_subnets_adds_a_third_node_and_dns_follows() {
    let lab = Lab::with_three_zones("dns-third-zone", 18);
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let (mut elbd, aws, dns) = start(&lab, "");
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let mut subnets: Vec<(String, String)> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["AvailabilityZone"].as_str().unwrap().to_owned(),
                s["SubnetId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    subnets.sort();
    let vpc = aws.ok(&["ec2", "describe-vpcs"])["Vpcs"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let lb = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "grow",
        "--subnets",
        &subnets[0].1,
        &subnets[1].1,
    ]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let name = lb["LoadBalancers"][0]["DNSName"]
        .as_str()
        .unwrap()
        .to_owned();
    let tg_arn = aws.target_group("grow", &vpc, 9001, "ip", &[]);
    aws.register(&tg_arn, &[target.ip().to_string()]);
    aws.forward_listener(&lb_arn, 8080, &tg_arn);
    let two = [ip(lab.public_node('a', 0)), ip(lab.public_node('b', 0))];
    answers_become(dns, &name, &two, Duration::from_secs(15));

    let set = Instant::now();
    aws.ok(&[
        "elbv2",
        "set-subnets",
        "--load-balancer-arn",
        &lb_arn,
        "--subnets",
        &subnets[0].1,
        &subnets[1].1,
        &subnets[2].1,
    ]);
    let third = lab.node('c', 8080);
    let took = elbd.wait_until("the third node to listen", || {
        TcpStream::connect(third).is_ok()
    });
    eprintln!(
        "set-subnets: the us-east-1c node listened {took:?} after the call returned ({:?} in all)",
        set.elapsed()
    );
    // Zone c has no public pool in this lab: its node answers with its private address.
    let mut three = vec![two[0], two[1], ip(lab.node('c', 0))];
    three.sort();
    answers_become(dns, &name, &three, Duration::from_secs(15));
}
