//! Elastic IPs and chosen private addresses as the nodes' addresses.

use super::*;

/// Elastic IPs: an internet-facing NLB with one per zone (subnet mappings) answers on those
/// addresses, DNS gives them, DescribeLoadBalancers and DescribeAddresses say so, and the
/// addresses stay in use until the load balancer is gone; an internal NLB takes the private
/// addresses its mappings choose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_ips_and_private_addresses_are_the_nodes_addresses() {
    let lab = Lab::new("nlb-eip", 40);
    let targets = [
        TcpTarget::start(SocketAddr::from((lab.ip('a', 10), 9400))).await,
        TcpTarget::start(SocketAddr::from((lab.ip('b', 10), 9400))).await,
    ];
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let dns = SocketAddr::from((lab.ip('a', 2), 5353));
    let config = lab.write("elbd.toml", &lab.settings());
    let (api_flag, dns_flag) = (api.to_string(), dns.to_string());
    let flags = ["--api-listen", &api_flag, "--dns-listen", &dns_flag];
    let mut elbd = Elbd::start(&lab, &config, &flags, &[api]);
    let aws = Aws::new(api);

    let allocate = || {
        let eip = aws.ok(&["ec2", "allocate-address", "--domain", "vpc"]);
        (
            text(&eip["AllocationId"]).to_owned(),
            text(&eip["PublicIp"]).to_owned(),
        )
    };
    let eips = [allocate(), allocate()];
    let pool = format!("{}.", lab.eip_prefix());
    assert!(eips.iter().all(|(_, ip)| ip.starts_with(&pool)), "{eips:?}");
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let mut subnets: Vec<&Value> = subnets["Subnets"].as_array().unwrap().iter().collect();
    subnets.sort_by_key(|s| text(&s["AvailabilityZone"]).to_owned());
    let vpc = text(&subnets[0]["VpcId"]).to_owned();
    let mapping = |i: usize, key: &str, value: &str| {
        format!("SubnetId={},{key}={value}", text(&subnets[i]["SubnetId"]))
    };
    let create = |name: &str, scheme: &str, mappings: [String; 2]| {
        aws.command(&[
            "elbv2",
            "create-load-balancer",
            "--name",
            name,
            "--type",
            "network",
            "--scheme",
            scheme,
            "--subnet-mappings",
            &mappings[0],
            &mappings[1],
        ])
    };
    let by_eip = [0, 1].map(|i| mapping(i, "AllocationId", &eips[i].0));
    // Elastic IPs are for internet-facing load balancers, private addresses for internal ones.
    let refused =
        String::from_utf8_lossy(&create("wrong", "internal", by_eip.clone()).stderr).into_owned();
    assert!(refused.contains("ValidationError"), "{refused}");
    let lb = Aws::json(create("static", "internet-facing", by_eip))["LoadBalancers"][0].clone();
    let lb_arn = text(&lb["LoadBalancerArn"]).to_owned();
    for (i, zone) in lb["AvailabilityZones"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let address = &zone["LoadBalancerAddresses"][0];
        let (allocation, ip) = &eips[i];
        assert_eq!(text(&address["AllocationId"]), allocation, "{zone}");
        assert_eq!(text(&address["IpAddress"]), ip, "{zone}");
    }
    let taken = aws.err(&["ec2", "release-address", "--allocation-id", &eips[0].0]);
    assert!(taken.contains("InvalidIPAddress.InUse"), "{taken}");
    let described = aws.ok(&["ec2", "describe-addresses", "--allocation-ids", &eips[1].0]);
    let described = &described["Addresses"][0];
    let node = &lb["AvailabilityZones"][1]["LoadBalancerAddresses"][0];
    assert_eq!(
        described["PrivateIpAddress"], node["PrivateIPv4Address"],
        "{described}"
    );

    let tg = aws.target_group_of("TCP", "static", &vpc, (9400, "ip"), &FAST_CHECKS);
    let ids: Vec<String> = targets.iter().map(|t| t.addr.ip().to_string()).collect();
    aws.register(&tg, &ids);
    Aws::json(aws.listener_of(&lb_arn, ("TCP", "7000"), &tg));
    elbd.wait_healthy(2);
    // Each zone's Elastic IP reaches that zone's target (cross-zone is off).
    for ((_, ip), target) in eips.iter().zip(&targets) {
        let node: SocketAddr = format!("{ip}:7000").parse().unwrap();
        let (reached, _, _) = open(node).await;
        assert_eq!(reached, target.addr.to_string(), "through {node}");
    }
    let (_, answers) = crate::harness::dig(dns, text(&lb["DNSName"]));
    let mut answered: Vec<String> = answers.iter().map(|(_, ip)| ip.to_string()).collect();
    answered.sort();
    let mut expected: Vec<String> = eips.iter().map(|(_, ip)| ip.clone()).collect();
    expected.sort();
    assert_eq!(answered, expected, "DNS answers with the Elastic IPs");

    // An internal load balancer on chosen private addresses.
    let private = [lab.ip('a', 200), lab.ip('b', 200)];
    let by_address = [0, 1].map(|i| mapping(i, "PrivateIPv4Address", &private[i].to_string()));
    let internal = Aws::json(create("chosen", "internal", by_address))["LoadBalancers"][0].clone();
    let zones = internal["AvailabilityZones"].as_array().unwrap();
    for (zone, ip) in zones.iter().zip(&private) {
        let address = &zone["LoadBalancerAddresses"][0];
        assert_eq!(
            text(&address["PrivateIPv4Address"]),
            ip.to_string(),
            "{zone}"
        );
    }

    // Once the load balancer is gone, its addresses are free to release.
    aws.ok(&[
        "elbv2",
        "delete-load-balancer",
        "--load-balancer-arn",
        &lb_arn,
    ]);
    for (allocation, _) in &eips {
        aws.ok(&["ec2", "release-address", "--allocation-id", allocation]);
    }
    let left = aws.ok(&["ec2", "describe-addresses"]);
    assert_eq!(
        left["Addresses"].as_array().map(Vec::len),
        Some(0),
        "{left}"
    );
}
