//! Gateway load balancers: the API as the aws cli drives it (here), and GENEVE traffic
//! through an endpoint in a namespace lab (`lab`).

mod lab;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Aws, Elbd, Lab};

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// The aws cli builds what a gateway needs: the load balancer (no scheme, no security
/// groups, no DNS name), a GENEVE group on 6081 with AWS's checks, its one listener (no
/// protocol or port), an endpoint service and an endpoint in the gateway's zone; what AWS
/// refuses is refused with its codes, and the pieces go in the order AWS allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_builds_a_gateway_with_an_endpoint_service_and_endpoints() {
    let lab = Lab::new("gwlb-api", 42);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let api_flag = api.to_string();
    let _elbd = Elbd::start(&lab, &config, &["--api-listen", &api_flag], &[api]);
    let aws = Aws::new(api);
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let mut subnets: Vec<&Value> = subnets["Subnets"].as_array().unwrap().iter().collect();
    subnets.sort_by_key(|s| text(&s["AvailabilityZone"]).to_owned());
    let (subnet_a, subnet_b) = (text(&subnets[0]["SubnetId"]), text(&subnets[1]["SubnetId"]));
    let vpc = text(&subnets[0]["VpcId"]);

    let create_lb = [
        "elbv2",
        "create-load-balancer",
        "--name",
        "gw",
        "--type",
        "gateway",
    ];
    let refused = aws.err(
        &[
            &create_lb[..],
            &["--scheme", "internal", "--subnets", subnet_a],
        ]
        .concat(),
    );
    assert!(
        refused.contains("ValidationError") && refused.contains("A scheme cannot be specified"),
        "{refused}"
    );
    let lb =
        aws.ok(&[&create_lb[..], &["--subnets", subnet_a]].concat())["LoadBalancers"][0].clone();
    let lb_arn = text(&lb["LoadBalancerArn"]).to_owned();
    assert!(lb_arn.contains(":loadbalancer/gwy/gw/"), "{lb}");
    for absent in [
        "DNSName",
        "Scheme",
        "SecurityGroups",
        "CanonicalHostedZoneId",
    ] {
        assert!(lb.get(absent).is_none(), "{absent} in {lb}");
    }

    let create_tg = |port: &str| {
        aws.command(&[
            "elbv2",
            "create-target-group",
            "--name",
            "appliances",
            "--protocol",
            "GENEVE",
            "--port",
            port,
            "--vpc-id",
            vpc,
            "--target-type",
            "ip",
        ])
    };
    assert!(!create_tg("6082").status.success());
    let tg = Aws::json(create_tg("6081"))["TargetGroups"][0].clone();
    let tg_arn = text(&tg["TargetGroupArn"]).to_owned();
    let check = (
        text(&tg["HealthCheckProtocol"]),
        text(&tg["HealthCheckPort"]),
        &tg["HealthCheckIntervalSeconds"],
        &tg["HealthCheckTimeoutSeconds"],
    );
    assert_eq!(
        check,
        ("TCP", "80", &Value::from(10), &Value::from(5)),
        "{tg}"
    );
    let mismatched = aws.err(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &tg_arn,
        "--attributes",
        "Key=target_failover.on_unhealthy,Value=rebalance",
    ]);
    assert!(
        mismatched.contains("must have the same value"),
        "{mismatched}"
    );

    let forward = format!("Type=forward,TargetGroupArn={tg_arn}");
    let create_listener = [
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb_arn,
        "--default-actions",
        &forward,
    ];
    let quic = aws.err(&[&create_listener[..], &["--protocol", "QUIC"]].concat());
    assert!(
        quic.contains("A protocol cannot be specified for gateway listeners"),
        "{quic}"
    );
    let with_port = aws.err(&[&create_listener[..], &["--port", "6081"]].concat());
    assert!(
        with_port.contains("A port cannot be specified for gateway listeners"),
        "{with_port}"
    );
    let listener = aws.ok(&create_listener)["Listeners"][0].clone();
    assert!(
        listener.get("Port").is_none() && listener.get("Protocol").is_none(),
        "{listener}"
    );
    let idle = aws.ok(&[
        "elbv2",
        "describe-listener-attributes",
        "--listener-arn",
        text(&listener["ListenerArn"]),
    ]);
    assert_eq!(idle["Attributes"][0]["Value"], "350", "{idle}");

    let service = aws.ok(&[
        "ec2",
        "create-vpc-endpoint-service-configuration",
        "--gateway-load-balancer-arns",
        &lb_arn,
        "--acceptance-required",
    ])["ServiceConfiguration"]
        .clone();
    let (service_id, service_name) = (text(&service["ServiceId"]), text(&service["ServiceName"]));
    assert_eq!(
        service_name,
        format!("com.amazonaws.vpce.us-east-1.{service_id}")
    );
    assert_eq!(
        service["ServiceType"][0]["ServiceType"],
        "GatewayLoadBalancer"
    );
    assert_eq!(service["ServiceState"], "Available");
    assert_eq!(
        service["AvailabilityZones"],
        serde_json::json!(["us-east-1a"])
    );

    let create_endpoint = |subnet: &str| {
        aws.command(&[
            "ec2",
            "create-vpc-endpoint",
            "--vpc-endpoint-type",
            "GatewayLoadBalancer",
            "--vpc-id",
            vpc,
            "--service-name",
            service_name,
            "--subnet-ids",
            subnet,
            "--no-private-dns-enabled",
        ])
    };
    let elsewhere = create_endpoint(subnet_b);
    assert!(
        String::from_utf8_lossy(&elsewhere.stderr).contains("InvalidParameter"),
        "an endpoint only in a zone the gateway serves"
    );
    let endpoint = Aws::json(create_endpoint(subnet_a))["VpcEndpoint"].clone();
    let endpoint_id = text(&endpoint["VpcEndpointId"]).to_owned();
    assert!(
        endpoint_id.starts_with("vpce-0") && endpoint_id.len() == 22,
        "{endpoint}"
    );
    assert_eq!(endpoint["State"], "pendingAcceptance");

    // The service cannot go while an endpoint waits on it; the gateway cannot while offered.
    let deleted = aws.ok(&[
        "ec2",
        "delete-vpc-endpoint-service-configurations",
        "--service-ids",
        service_id,
    ]);
    assert_eq!(
        deleted["Unsuccessful"][0]["Error"]["Code"],
        "ExistingVpcEndpointConnections"
    );
    let in_use = aws.err(&[
        "elbv2",
        "delete-load-balancer",
        "--load-balancer-arn",
        &lb_arn,
    ]);
    assert!(in_use.contains("ResourceInUse"), "{in_use}");

    let rejected = aws.ok(&[
        "ec2",
        "reject-vpc-endpoint-connections",
        "--service-id",
        service_id,
        "--vpc-endpoint-ids",
        &endpoint_id,
    ]);
    assert_eq!(rejected["Unsuccessful"], serde_json::json!([]));
    let connections = aws.ok(&[
        "ec2",
        "describe-vpc-endpoint-connections",
        "--filters",
        &format!("Name=service-id,Values={service_id}"),
    ]);
    assert_eq!(
        connections["VpcEndpointConnections"][0]["VpcEndpointState"],
        "rejected"
    );
    let gone = aws.ok(&[
        "ec2",
        "delete-vpc-endpoints",
        "--vpc-endpoint-ids",
        &endpoint_id,
        "vpce-0000000000000000f",
    ]);
    let unsuccessful = gone["Unsuccessful"].as_array().unwrap();
    assert_eq!(unsuccessful.len(), 1, "{gone}");
    assert_eq!(
        unsuccessful[0]["Error"]["Code"],
        "InvalidVpcEndpoint.NotFound"
    );
    let missing = aws.err(&[
        "ec2",
        "describe-vpc-endpoints",
        "--vpc-endpoint-ids",
        &endpoint_id,
    ]);
    assert!(
        missing.contains("InvalidVpcEndpointId.NotFound"),
        "{missing}"
    );
    aws.ok(&[
        "ec2",
        "delete-vpc-endpoint-service-configurations",
        "--service-ids",
        service_id,
    ]);
    aws.ok(&[
        "elbv2",
        "delete-load-balancer",
        "--load-balancer-arn",
        &lb_arn,
    ]);
}

/// Without the privilege to create TUN devices (CAP_NET_ADMIN dropped), an endpoint goes to
/// `failed`, with why in `LastError`.
#[test]
fn an_endpoint_fails_with_a_reason_without_the_privilege_to_make_its_interface() {
    let lab = Lab::new("gwlb-unprivileged", 43);
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &lab.settings());
    let log = std::fs::File::create(lab.dir.join("elbd.log")).unwrap();
    let mut elbd = Command::new("setpriv")
        .args(["--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])
        .arg(env!("CARGO_BIN_EXE_elbd"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(lab.dir.join("data"))
        .args(["--api-listen", &api.to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("setpriv (util-linux) runs elbd");
    let start = Instant::now();
    while TcpStream::connect(api).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "elbd's API did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let aws = Aws::new(api);
    let subnet = aws.ok(&["ec2", "describe-subnets"])["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["AvailabilityZone"] == "us-east-1a")
        .unwrap()
        .clone();
    let (subnet_id, vpc) = (text(&subnet["SubnetId"]), text(&subnet["VpcId"]));
    let lb = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "gw",
        "--type",
        "gateway",
        "--subnets",
        subnet_id,
    ])["LoadBalancers"][0]["LoadBalancerArn"]
        .clone();
    let service = aws.ok(&[
        "ec2",
        "create-vpc-endpoint-service-configuration",
        "--gateway-load-balancer-arns",
        text(&lb),
        "--no-acceptance-required",
    ])["ServiceConfiguration"]["ServiceName"]
        .clone();
    let endpoint = aws.ok(&[
        "ec2",
        "create-vpc-endpoint",
        "--vpc-endpoint-type",
        "GatewayLoadBalancer",
        "--vpc-id",
        vpc,
        "--service-name",
        text(&service),
        "--subnet-ids",
        subnet_id,
    ])["VpcEndpoint"]["VpcEndpointId"]
        .clone();
    let described = loop {
        let described = aws.ok(&[
            "ec2",
            "describe-vpc-endpoints",
            "--vpc-endpoint-ids",
            text(&endpoint),
        ]);
        let described = described["VpcEndpoints"][0].clone();
        if described["State"] != "pending" {
            break described;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "still pending: {described}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = elbd.kill();
    let _ = elbd.wait();
    assert_eq!(described["State"], "failed", "{described}");
    let reason = text(&described["LastError"]["Message"]);
    assert!(
        reason.contains("could not be made") && reason.contains("not permitted"),
        "{reason}"
    );
}
