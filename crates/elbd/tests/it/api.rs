//! The AWS API, driven by the real aws cli and boto3.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Aws, Backend, Elbd, Lab, curl, spread, venv};

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// elbd with the lab's zones, serving the API on the lab's first address.
fn start(lab: &Lab, extra_settings: &str) -> (Elbd, SocketAddr) {
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let config = lab.write("elbd.toml", &format!("{}{extra_settings}", lab.settings()));
    let api_flag = api.to_string();
    let elbd = Elbd::start(lab, &config, &["--api-listen", &api_flag], &[api]);
    (elbd, api)
}

/// Subnet ids of zones a and b, and the VPC.
fn network(aws: &Aws) -> (String, String, String) {
    let subnets = aws.ok(&["ec2", "describe-subnets"]);
    let mut subnets: Vec<&Value> = subnets["Subnets"].as_array().unwrap().iter().collect();
    subnets.sort_by_key(|s| text(&s["AvailabilityZone"]).to_owned());
    assert_eq!(subnets.len(), 2, "{subnets:?}");
    assert!(
        subnets
            .iter()
            .all(|s| s["DefaultForAz"] == Value::Bool(true))
    );
    (
        text(&subnets[0]["SubnetId"]).to_owned(),
        text(&subnets[1]["SubnetId"]).to_owned(),
        text(&subnets[0]["VpcId"]).to_owned(),
    )
}

/// The same lab on the embedded store, then (one after the other, on the same addresses) on
/// etcd: the API suite runs against both.
fn on_each_store(name: &'static str, slot: u8) -> [Box<dyn Fn() -> Lab>; 2] {
    [
        Box::new(move || Lab::new(name, slot)),
        Box::new(move || Lab::new(name, slot).named("etcd").on_etcd()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_builds_a_working_load_balancer_and_tears_it_down() {
    for lab in on_each_store("api-cli", 6) {
        builds_and_tears_down(lab()).await;
    }
}

async fn builds_and_tears_down(lab: Lab) {
    let _backends = [
        Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await,
        Backend::start(SocketAddr::from((lab.ip('b', 10), 9001)), Duration::ZERO).await,
    ];
    let (mut elbd, api) = start(&lab, "");
    let aws = Aws::new(api);
    let (subnet_a, subnet_b, vpc) = network(&aws);

    // The quotas elbd holds load balancers to, each type's apart, by AWS's names and defaults.
    let limits = aws.ok(&["elbv2", "describe-account-limits"]);
    let limit = |name: &str| {
        let all = limits["Limits"].as_array().unwrap();
        let found = all.iter().find(|l| l["Name"] == name);
        found.map(|l| l["Max"].as_str().unwrap().to_owned())
    };
    assert_eq!(limit("application-load-balancers").as_deref(), Some("50"));
    assert_eq!(limit("network-load-balancers").as_deref(), Some("50"));
    assert_eq!(limit("gateway-load-balancers").as_deref(), Some("100"));
    assert_eq!(
        limit("rules-per-application-load-balancer").as_deref(),
        Some("100")
    );

    let created = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "api",
        "--subnets",
        &subnet_a,
        &subnet_b,
    ]);
    let lb = &created["LoadBalancers"][0];
    let lb_arn = text(&lb["LoadBalancerArn"]).to_owned();
    assert!(lb_arn.contains(":loadbalancer/app/api/"));
    assert!(text(&lb["DNSName"]).ends_with(".us-east-1.elb.internal"));
    aws.ok(&[
        "elbv2",
        "wait",
        "load-balancer-available",
        "--load-balancer-arns",
        &lb_arn,
    ]);

    let tg_arn = aws.target_group("api-tg", &vpc, 9001, "ip", &[]);
    aws.register(
        &tg_arn,
        &[lab.ip('a', 10).to_string(), lab.ip('b', 10).to_string()],
    );
    let listener_arn = aws.forward_listener(&lb_arn, 8080, &tg_arn);

    let nodes = [lab.node('a', 8080), lab.node('b', 8080)];
    aws.ok(&[
        "elbv2",
        "wait",
        "target-in-service",
        "--target-group-arn",
        &tg_arn,
    ]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for node in nodes {
        elbd.wait_until("the listener to bind", || TcpStream::connect(node).is_ok());
        assert_eq!(spread(node, 4).await.len(), 2, "through {node}");
    }

    // An instance target: a record with a private address, routed to while it runs.
    let instance_ip = lab.ip('b', 30).to_string();
    let _instance_backend =
        Backend::start(SocketAddr::from((lab.ip('b', 30), 9002)), Duration::ZERO).await;
    let run = aws.ok(&[
        "ec2",
        "run-instances",
        "--image-id",
        "ami-12345678",
        "--count",
        "1",
        "--subnet-id",
        &subnet_b,
        "--private-ip-address",
        &instance_ip,
    ]);
    let instance_id = text(&run["Instances"][0]["InstanceId"]).to_owned();
    assert_eq!(
        run["Instances"][0]["PrivateIpAddress"],
        instance_ip.as_str()
    );
    let described = aws.ok(&["ec2", "describe-instances", "--instance-ids", &instance_id]);
    assert_eq!(
        described["Reservations"][0]["Instances"][0]["State"]["Name"],
        "running"
    );
    let itg_arn = aws.target_group("api-instances", &vpc, 9002, "instance", &[]);
    aws.register(&itg_arn, std::slice::from_ref(&instance_id));
    aws.forward_listener(&lb_arn, 8081, &itg_arn);
    let instance_node = lab.node('a', 8081);
    elbd.wait_until("the second listener to bind", || {
        TcpStream::connect(instance_node).is_ok()
    });
    let counts = spread(instance_node, 3).await;
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        [&format!("{instance_ip}:9002")]
    );
    aws.ok(&["ec2", "stop-instances", "--instance-ids", &instance_id]);
    let health = aws.ok(&[
        "elbv2",
        "describe-target-health",
        "--target-group-arn",
        &itg_arn,
    ]);
    assert_eq!(
        health["TargetHealthDescriptions"][0]["TargetHealth"]["Reason"],
        "Target.InvalidState"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = crate::harness::get(&crate::harness::client(), instance_node).await;
    assert_eq!(
        reply.status,
        hyper::StatusCode::SERVICE_UNAVAILABLE,
        "a stopped instance got traffic"
    );

    // Attributes go in and come back out.
    aws.set_load_balancer_attributes(&lb_arn, &["Key=idle_timeout.timeout_seconds,Value=30"]);
    let attrs = aws.ok(&[
        "elbv2",
        "describe-load-balancer-attributes",
        "--load-balancer-arn",
        &lb_arn,
    ]);
    let idle = attrs["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Key"] == "idle_timeout.timeout_seconds");
    assert_eq!(idle.unwrap()["Value"], "30");
    aws.ok(&[
        "elbv2",
        "modify-target-group-attributes",
        "--target-group-arn",
        &tg_arn,
        "--attributes",
        "Key=load_balancing.cross_zone.enabled,Value=false",
    ]);
    let attrs = aws.ok(&[
        "elbv2",
        "describe-target-group-attributes",
        "--target-group-arn",
        &tg_arn,
    ]);
    assert!(
        attrs["Attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["Key"] == "load_balancing.cross_zone.enabled" && a["Value"] == "false")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        spread(nodes[0], 4).await.len(),
        1,
        "cross-zone off: node a keeps to zone a"
    );

    aws.ok(&[
        "elbv2",
        "add-tags",
        "--resource-arns",
        &lb_arn,
        "--tags",
        "Key=env,Value=test",
    ]);
    let tags = aws.ok(&["elbv2", "describe-tags", "--resource-arns", &lb_arn]);
    assert_eq!(tags["TagDescriptions"][0]["Tags"][0]["Value"], "test");
    // At most 20 resources at once, and 20 load balancer attributes.
    let many: Vec<&str> = std::iter::repeat_n(lb_arn.as_str(), 21).collect();
    let refused = aws.err(&[&["elbv2", "describe-tags", "--resource-arns"][..], &many].concat());
    assert!(refused.contains("ValidationError"), "{refused}");
    let attributes: Vec<String> = (0..21)
        .map(|_| "Key=idle_timeout.timeout_seconds,Value=30".to_owned())
        .collect();
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let modify = [
        "elbv2",
        "modify-load-balancer-attributes",
        "--load-balancer-arn",
    ];
    let refused = aws.err(&[&modify[..], &[&lb_arn, "--attributes"], &attributes].concat());
    assert!(
        refused.contains("length less than or equal to 20"),
        "{refused}"
    );
    let rules = aws.ok(&["elbv2", "describe-rules", "--listener-arn", &listener_arn]);
    assert_eq!(rules["Rules"][0]["IsDefault"], Value::Bool(true));

    // A kill -9 right after a create loses nothing.
    aws.target_group("late", &vpc, 80, "ip", &[]);
    let config = lab.dir.join("elbd.toml");
    elbd.kill_and_restart(&lab, &config, &[api, nodes[0]]);
    let late = aws.ok(&["elbv2", "describe-target-groups", "--names", "late"]);
    let late_arn = late["TargetGroups"][0]["TargetGroupArn"].as_str().unwrap();
    // One filter at a time, as the API reference says.
    let both = ["--names", "late", "--target-group-arns", late_arn];
    let refused = aws.err(&[&["elbv2", "describe-target-groups"][..], &both].concat());
    assert!(refused.contains("ValidationError"), "{refused}");
    // Deregistering a target that is not registered succeeds, as on AWS.
    let absent = ["--target-group-arn", late_arn, "--targets", "Id=127.1.0.99"];
    aws.ok(&[&["elbv2", "deregister-targets"][..], &absent].concat());

    // Delete everything: the ports close and the waiter sees the load balancer gone.
    aws.ok(&["elbv2", "delete-listener", "--listener-arn", &listener_arn]);
    aws.ok(&[
        "elbv2",
        "delete-load-balancer",
        "--load-balancer-arn",
        &lb_arn,
    ]);
    aws.ok(&[
        "elbv2",
        "delete-target-group",
        "--target-group-arn",
        &tg_arn,
    ]);
    for node in nodes {
        elbd.wait_until("the listener to close", || {
            TcpStream::connect(node).is_err()
        });
    }
    aws.ok(&[
        "elbv2",
        "wait",
        "load-balancers-deleted",
        "--load-balancer-arns",
        &lb_arn,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_raises_the_modeled_exceptions() {
    for lab in on_each_store("api-boto3", 7) {
        let lab = lab();
        let (_elbd, api) = start(&lab, "");
        boto3("boto3_errors.py", &[&format!("http://{api}")]);
    }
}

/// Runs one of this directory's boto3 scripts with `args`; it must exit 0.
pub(crate) fn boto3(script: &str, args: &[&str]) {
    let path = format!("{}/tests/it/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(venv().join("bin/python"))
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credentials_a_wrong_signature_is_refused_and_changes_nothing() {
    let lab = Lab::new("api-sigv4", 8);
    let (_elbd, api) = start(&lab, "[settings.credentials]\n\"AKIDELBD\" = \"s3cret\"\n");
    let mut aws = Aws::new(api);
    aws.key = ("AKIDELBD", "wrong");
    let refused = aws.err(&[
        "elbv2",
        "create-target-group",
        "--name",
        "tg",
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--vpc-id",
        "vpc-1",
    ]);
    assert!(refused.contains("SignatureDoesNotMatch"), "{refused}");
    aws.key = ("AKIDOTHER", "s3cret");
    assert!(
        aws.err(&["elbv2", "describe-target-groups"])
            .contains("InvalidClientTokenId")
    );
    aws.key = ("AKIDELBD", "s3cret");
    let groups = aws.ok(&["elbv2", "describe-target-groups"]);
    assert_eq!(groups["TargetGroups"].as_array().unwrap().len(), 0);
}

/// POSTs `body` to the API signed for `service` (any signature passes without credentials);
/// returns the status and the body.
fn post(api: SocketAddr, service: &str, body: &[u8]) -> (u16, String) {
    let file = std::env::temp_dir().join(format!("elbd-it-body-{}-{service}", std::process::id()));
    std::fs::write(&file, body).unwrap();
    let auth = format!(
        "Authorization: AWS4-HMAC-SHA256 Credential=test/20261127/us-east-1/{service}/aws4_request, \
         SignedHeaders=host, Signature=00"
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-H",
            &auth,
            "-w",
            "\n%{http_code}",
            "--data-binary",
        ])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{api}/"))
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_aws_errors_and_never_a_500() {
    for lab in on_each_store("api-malformed", 9) {
        malformed_requests(&lab());
    }
}

fn malformed_requests(lab: &Lab) {
    let (_elbd, api) = start(lab, "");
    let mut big = b"Action=DescribeLoadBalancers&Names.member.1=".to_vec();
    big.resize(1 << 20, b'a');
    let cases: [(&str, &[u8], &str); 9] = [
        ("no Action", b"Version=2015-12-01", "MissingAction"),
        ("unknown Action", b"Action=Frobnicate", "InvalidAction"),
        (
            "a gap in member.N",
            b"Action=DescribeLoadBalancers&Names.member.2=x",
            "MalformedQueryString",
        ),
        ("a 1 MB body", &big, "MalformedQueryString"),
        (
            "invalid UTF-8",
            b"Action=DescribeLoadBalancers&Names.member.1=\xff\xfe",
            "MalformedQueryString",
        ),
        (
            "a word for a number",
            b"Action=DescribeLoadBalancers&PageSize=ten",
            "ValidationError",
        ),
        (
            "an unknown parameter",
            b"Action=DescribeLoadBalancers&Colour=red",
            "ValidationError",
        ),
        (
            "a repeated parameter",
            b"Action=DeleteListener&ListenerArn=a&ListenerArn=b",
            "MalformedQueryString",
        ),
        (
            "another version",
            b"Action=DescribeLoadBalancers&Version=2012-06-01",
            "InvalidAction",
        ),
    ];
    for (what, body, code) in cases {
        let (status, reply) = post(api, "elasticloadbalancing", body);
        assert_eq!(status, 400, "{what}: {reply}");
        assert!(
            reply.contains(&format!("<Code>{code}</Code>")),
            "{what}: {reply}"
        );
        assert!(
            reply.starts_with("<ErrorResponse xmlns=\"http://elasticloadbalancing"),
            "{what}: {reply}"
        );
    }
    let (status, reply) = post(api, "ec2", b"Action=DescribeSubnets&SubnetId.1=subnet-nope");
    assert_eq!(status, 400);
    assert!(
        reply.contains("<Code>InvalidSubnetID.NotFound</Code>") && reply.starts_with("<Response>"),
        "{reply}"
    );
    let (status, reply) = post(api, "sqs", b"Action=ListQueues");
    assert_eq!(status, 400);
    assert!(reply.contains("not offered by elbd"), "{reply}");
}

/// curl from `source` to `node`: the HTTP status, or None when the connection was refused.
fn curl_from(source: &str, node: SocketAddr) -> Option<u16> {
    let status = curl(&format!("http://{node}/"), &["--interface", source]).status;
    (status != 0).then_some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_gate_the_nodes_and_changes_apply_at_once() {
    let lab = Lab::new("api-sg", 10);
    let _backend = Backend::start(SocketAddr::from((lab.ip('a', 10), 9001)), Duration::ZERO).await;
    let (mut elbd, api) = start(&lab, "");
    let aws = Aws::new(api);
    let (subnet_a, subnet_b, vpc) = network(&aws);
    let sg = aws.ok(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "nine",
        "--description",
        "clients in 127.9/16",
        "--vpc-id",
        &vpc,
    ]);
    let sg = text(&sg["GroupId"]).to_owned();
    let rule = |verb: &str, cidr: &str| {
        aws.ok(&[
            "ec2",
            verb,
            "--group-id",
            &sg,
            "--protocol",
            "tcp",
            "--port",
            "8080",
            "--cidr",
            cidr,
        ]);
    };
    rule("authorize-security-group-ingress", "127.9.0.0/16");
    let lb = aws.ok(&[
        "elbv2",
        "create-load-balancer",
        "--name",
        "gated",
        "--subnets",
        &subnet_a,
        &subnet_b,
        "--security-groups",
        &sg,
    ]);
    let lb_arn = text(&lb["LoadBalancers"][0]["LoadBalancerArn"]).to_owned();
    let tg_arn = aws.target_group("gated", &vpc, 9001, "ip", &[]);
    aws.register(&tg_arn, &[lab.ip('a', 10).to_string()]);
    aws.forward_listener(&lb_arn, 8080, &tg_arn);
    let node = lab.node('a', 8080);
    elbd.wait_until("the listener to bind", || TcpStream::connect(node).is_ok());

    assert_eq!(curl_from("127.9.0.1", node), Some(200));
    assert_eq!(
        curl_from("127.8.0.1", node),
        None,
        "a client outside the group's ranges got in"
    );
    assert!(
        elbd.logs()
            .contains("connection refused by the security groups"),
        "refusals are counted and logged"
    );
    rule("authorize-security-group-ingress", "127.8.0.0/16");
    assert_eq!(curl_from("127.8.0.1", node), Some(200));
    rule("revoke-security-group-ingress", "127.9.0.0/16");
    assert_eq!(curl_from("127.9.0.1", node), None);

    // Egress: a new group may reach anything; without a rule that lets the nodes reach the
    // target, it gets no request (and its checks would time out); a rule to its port and
    // range brings it back.
    let egress = |verb: &str, permission: &str| {
        aws.ok(&[
            "ec2",
            verb,
            "--group-id",
            &sg,
            "--ip-permissions",
            permission,
        ]);
    };
    egress(
        "revoke-security-group-egress",
        "IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]",
    );
    let status_becomes = |want: u16| {
        let start = std::time::Instant::now();
        while curl_from("127.8.0.1", node) != Some(want) {
            assert!(start.elapsed() < Duration::from_secs(5), "never {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    status_becomes(503);
    let target_range = format!(
        "IpProtocol=tcp,FromPort=9001,ToPort=9001,IpRanges=[{{CidrIp={}/16}}]",
        lab.ip('a', 0)
    );
    egress("authorize-security-group-egress", &target_range);
    status_becomes(200);
    let described = aws.ok(&["ec2", "describe-security-groups", "--group-ids", &sg]);
    let egress_rules = &described["SecurityGroups"][0]["IpPermissionsEgress"];
    assert_eq!(egress_rules[0]["FromPort"], 9001, "{egress_rules}");

    let groups = aws.ok(&[
        "ec2",
        "describe-security-groups",
        "--group-names",
        "default",
    ]);
    let default = text(&groups["SecurityGroups"][0]["GroupId"]).to_owned();
    aws.ok(&[
        "elbv2",
        "set-security-groups",
        "--load-balancer-arn",
        &lb_arn,
        "--security-groups",
        &default,
    ]);
    assert_eq!(
        curl_from("127.9.0.1", node),
        Some(200),
        "the default group admits everyone"
    );
    let refused = aws.err(&["ec2", "delete-security-group", "--group-id", &default]);
    assert!(refused.contains("CannotDelete"), "{refused}");
}

/// A boto3 script written for moto's server mode, unchanged, in three regions of one elbd:
/// each region has its own zones, names and resources. us-east-1 has the lab's zones; the
/// others are named in `[[settings.regions]]`, on ranges of this test's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moto_style_script_runs_unchanged_in_three_regions() {
    for lab in on_each_store("api-regions", 29) {
        moto_style_in_three_regions(&lab());
    }
}

fn moto_style_in_three_regions(lab: &Lab) {
    let regions = "[[settings.regions]]\nname = \"us-west-2\"\n\
         zone = [{ name = \"us-west-2a\", cidr = \"127.156.0.0/16\" }, { name = \"us-west-2b\", cidr = \"127.157.0.0/16\" }]\n\
         [[settings.regions]]\nname = \"eu-central-1\"\n\
         zone = [{ name = \"eu-central-1a\", cidr = \"127.158.0.0/16\" }, { name = \"eu-central-1b\", cidr = \"127.159.0.0/16\" }]\n";
    let (_elbd, api) = start(lab, regions);
    let endpoint = format!("http://{api}");
    let run = |region: &str, mode: &str| boto3("moto_style.py", &[&endpoint, region, mode]);
    let regions = ["us-east-1", "us-west-2", "eu-central-1"];
    for region in regions {
        run(region, "build");
    }
    for region in regions {
        run(region, "check");
    }
}

/// Every input member of every operation elbd implements, as botocore's models have them, is
/// answered or refused by name (changing nothing), and the README's table of refusals is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_is_answered_or_refused_by_name_as_the_readme_lists() {
    let lab = Lab::new("api-model", 33);
    let (_elbd, api) = start(&lab, "");
    let data_dir = lab.dir.join("data");
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    boto3(
        "model_table.py",
        &[
            &format!("http://{api}"),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--readme",
            readme,
        ],
    );
}
