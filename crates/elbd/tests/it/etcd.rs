//! elbd on etcd (`--store etcd://`): what it does when the store goes away and comes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{Aws, Backend, Elbd, Lab, spread};

/// etcd hangs: the nodes go on serving the last state (fail static), reads are answered, writes
/// are refused with ServiceUnavailable and change nothing; once etcd answers again, writes
/// land and the watch resumes.
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
    assert_eq!(spread(node, 4).await.len(), 2, "traffic after etcd is back");
}

fn elbd_logs(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.join("elbd.log")).unwrap_or_default()
}
