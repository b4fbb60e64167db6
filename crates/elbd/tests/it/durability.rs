//! Nothing acknowledged is lost: elbd killed with SIGKILL in the middle of a burst of API
//! writes keeps, after a restart, every write it acknowledged and nothing it was not sent.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Aws, Elbd, Lab, venv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_kill_in_a_burst() {
    let lab = Lab::new("durability", 55);
    let config = lab.write("elbd.toml", &lab.settings());
    let api = SocketAddr::from((lab.ip('a', 250), 4566));
    let mut elbd = Elbd::start(&lab, &config, &["--api-listen", &api.to_string()], &[api]);
    let aws = Aws::new(api);
    let vpcs = aws.ok(&["ec2", "describe-vpcs"]);
    let vpc = vpcs["Vpcs"][0]["VpcId"].as_str().unwrap().to_owned();
    let script = format!("{}/tests/it/burst_writes.py", env!("CARGO_MANIFEST_DIR"));
    let endpoint = format!("http://{api}");
    // Killed at a different point of the burst each round.
    for (round, after_ms) in [(0, 1500), (1, 2300), (2, 3100)] {
        let prefix = format!("r{round}");
        let notes = lab.dir.join(format!("burst-{round}.txt"));
        let mut burst = Command::new(venv().join("bin/python"))
            .args([&script, &endpoint, &vpc, &prefix])
            .arg(&notes)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(after_ms));
        // Killed: the burst ends at its next call, before elbd runs again.
        elbd.signal("KILL");
        assert!(burst.wait().unwrap().success(), "the burst script failed");
        elbd.kill_and_restart(&lab, &config, &[api]);

        let notes = std::fs::read_to_string(&notes).unwrap();
        let noted = |what: &str| -> BTreeSet<String> {
            (notes.lines())
                .filter_map(|l| l.strip_prefix(what))
                .map(str::to_owned)
                .collect()
        };
        let (sent, acked) = (noted("sent "), noted("ack "));
        let groups = aws.ok(&["elbv2", "describe-target-groups"]);
        let kept: BTreeSet<String> = (groups["TargetGroups"].as_array().unwrap().iter())
            .filter_map(|g| g["TargetGroupName"].as_str())
            .filter(|name| name.starts_with(&format!("{prefix}-")))
            .map(str::to_owned)
            .collect();
        assert!(
            acked.len() >= 3,
            "round {round}: only {} writes acknowledged",
            acked.len()
        );
        let lost: Vec<_> = acked.difference(&kept).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged and lost: {lost:?}"
        );
        let unsent: Vec<_> = kept.difference(&sent).collect();
        assert!(
            unsent.is_empty(),
            "round {round}: kept but never sent: {unsent:?}"
        );
        println!(
            "round {round}: {} sent, {} acknowledged, {} kept after SIGKILL",
            sent.len(),
            acked.len(),
            kept.len()
        );
    }
}
