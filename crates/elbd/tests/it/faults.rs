//! The fault matrix: under a fixed load of kept-alive and new-connection clients (on the relay,
//! and HTTP/1.0 ones the general path answers), one fault at a time, with the failed requests
//! counted against what is expected of each and the time from the fault to the last failure
//! (docs/reliability.md has the table).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Aws, Backend, Elbd, Lab, ProcessBackend, curl};
use crate::load::{Road, Tally, fresh, kept_alive};

/// Health checks every 5 s (±5 %), 2 s timeout, 2 to change: a target that fails its checks
/// is found within 2 × 5.25 s, one that hangs within 2 × (5.25 + 2) s; plus a second.
const DETECTION: Duration = Duration::from_millis(11_500);
const DETECTION_HUNG: Duration = Duration::from_millis(15_500);
/// The load balancer's idle timeout: a request sent to a hung target fails this much later.
const IDLE: Duration = Duration::from_secs(3);

/// What one row measured.
struct Row {
    answered: u64,
    failed: u64,
    /// From the fault to the last failed request.
    recovered_after: Option<Duration>,
}

/// Runs the load on `node` for `span`, applying `fault` after one second.
async fn under_load(node: SocketAddr, span: Duration, fault: impl FnOnce()) -> (Row, Vec<String>) {
    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..4 {
        load.spawn(kept_alive(node, 20, tally.clone(), running.clone()));
    }
    load.spawn(fresh(node, 20, Road::Relay, tally.clone(), running.clone()));
    load.spawn(fresh(
        node,
        10,
        Road::General,
        tally.clone(),
        running.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fault_at = Instant::now();
    fault();
    tokio::time::sleep(span).await;
    running.store(false, Ordering::Relaxed);
    while load.join_next().await.is_some() {}
    let last = *tally.last_failure.lock().unwrap();
    let row = Row {
        answered: tally.ok.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        recovered_after: last.map(|at| at.saturating_duration_since(fault_at)),
    };
    let reasons = tally.reasons.lock().unwrap().clone();
    (row, reasons)
}

/// How many times `target` was found healthy, by any node.
fn healthy_count(log: &Path, target: SocketAddr) -> usize {
    let needle = format!("target={target} state=healthy");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().filter(|l| l.contains(&needle)).count()
}

/// Waits until both nodes have found `target` healthy once more than `before` counts.
async fn healthy_again(log: &Path, target: SocketAddr, before: usize) {
    let start = Instant::now();
    while healthy_count(log, target) < before + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{target} did not turn healthy again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn set_mode(file: &Path, mode: &str) {
    std::fs::write(file, mode).unwrap();
}

fn report(name: &str, expected: &str, row: &Row) {
    println!(
        "fault matrix | {name} | {} answered | {} failed | expected {expected} | last failure {}",
        row.answered,
        row.failed,
        row.recovered_after.map_or("none".to_owned(), |d| format!(
            "{:.1} s after the fault",
            d.as_secs_f64()
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_matrix_counts_what_each_fault_costs() {
    let lab = Lab::new("faults", 56);
    let faulty = SocketAddr::from((lab.ip('a', 10), 9001));
    let steady = SocketAddr::from((lab.ip('b', 10), 9001));
    let mode = lab.dir.join("mode");
    set_mode(&mode, "ok");
    let script = format!("{}/tests/it/fault_target.py", env!("CARGO_MANIFEST_DIR"));
    let start_faulty = || {
        let mut command = Command::new("python3");
        command
            .args([&script, &faulty.ip().to_string(), "9001"])
            .arg(&mode);
        ProcessBackend::spawn(command, faulty)
    };
    let mut target = Some(start_faulty());
    let _steady = Backend::start(steady, Duration::ZERO).await;
    let text = format!(
        "{}\n\
         [[load_balancer]]\nname = \"faults\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         attributes = {{ \"idle_timeout.timeout_seconds\" = 3 }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"web\" }}\n\
         [[target_group]]\nname = \"web\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{faulty}\", \"{steady}\"]\n\
         health_check = {{ path = \"/health\", interval_seconds = 5, timeout_seconds = 2, healthy_threshold = 2, unhealthy_threshold = 2 }}\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    let node = lab.node('a', 8080);
    let mut elbd = Elbd::start(&lab, &config, &["--drain-seconds", "3"], &[node]);
    elbd.wait_healthy(4);
    let log = lab.dir.join("elbd.log");

    // The target closes each kept-alive connection after its response, without saying so:
    // the relay sends a request that meets a closed connection again on a new one.
    let (row, reasons) =
        under_load(node, Duration::from_secs(4), || set_mode(&mode, "close")).await;
    report("target closes kept-alive connections", "0", &row);
    assert_eq!(row.failed, 0, "{reasons:?}");
    set_mode(&mode, "ok");

    // A killed target refuses connections: its requests go to the other target, and only
    // those it had when it died fail. A target that resets connections once it has the
    // request, or hangs, is found only by the health checks: its requests fail until then
    // (as on ALB: 502 for a reset, 504 past the idle timeout), none after.
    let faults: [(&str, &str, &str); 3] = [
        (
            "target killed (SIGKILL)",
            "kill",
            "those in flight at the kill (at most 10)",
        ),
        (
            "target resets connections",
            "reset",
            "its requests until found unhealthy",
        ),
        (
            "target hung (SIGSTOP)",
            "stop",
            "its requests until found unhealthy",
        ),
    ];
    for (name, fault, expected) in faults {
        let before = healthy_count(&log, faulty);
        let running = target.as_ref().unwrap();
        let bound = match fault {
            "stop" => DETECTION_HUNG + IDLE,
            _ => DETECTION,
        };
        let (row, reasons) = under_load(node, bound + Duration::from_secs(3), || match fault {
            "reset" => set_mode(&mode, "reset"),
            "kill" => running.signal("KILL"),
            _ => running.signal("STOP"),
        })
        .await;
        report(name, expected, &row);
        println!("fault matrix | {name} | reasons {reasons:?}");
        let recovered = row.recovered_after.unwrap_or_default();
        assert!(
            recovered <= bound,
            "{name}: failures until {recovered:?}: {reasons:?}"
        );
        // The other target answers throughout: at most the faulty one's half fails.
        assert!(
            row.answered >= 700,
            "{name}: only {} answered",
            row.answered
        );
        assert!(
            row.failed * 2 <= row.answered + row.failed,
            "{name}: {} failed",
            row.failed
        );
        if fault == "kill" {
            assert!(
                row.failed <= 10,
                "{name}: {} failed: {reasons:?}",
                row.failed
            );
        }
        match fault {
            "reset" => set_mode(&mode, "ok"),
            "kill" => target = Some(start_faulty()),
            _ => target.as_ref().unwrap().signal("CONT"),
        }
        healthy_again(&log, faulty, before).await;
    }

    // elbd itself killed and started again: every request until it listens again fails.
    let (row, _) = under_load(node, Duration::from_secs(4), || {
        elbd.kill_and_restart(&lab, &config, &[node]);
    })
    .await;
    report(
        "elbd killed (SIGKILL) and restarted",
        "those until it listens",
        &row,
    );
    let recovered = row.recovered_after.unwrap_or_default();
    assert!(
        recovered < Duration::from_secs(3),
        "failures until {recovered:?}"
    );

    elbd.wait_healthy(4);
    // A new elbd takes over: nothing fails.
    let mut next = None;
    let (row, reasons) = under_load(node, Duration::from_secs(5), || {
        next = Some(Elbd::take_over(&lab, &config, &["--drain-seconds", "3"]));
    })
    .await;
    report("zero-downtime restart", "0", &row);
    assert_eq!(row.failed, 0, "{reasons:?}");
    assert!(elbd.wait_exit(Duration::from_secs(10)).is_some());
    drop(next);
}

/// A tmpfs of a few MiB mounted on a directory until dropped: a disk that fills.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts it on `dir`, after unmounting those of earlier runs that were killed before
    /// they could (labs end in the id of their process, which is gone).
    fn mount(dir: PathBuf) -> Self {
        let lab = dir
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy();
        let prefix = format!("{}-", lab.rsplit_once('-').unwrap().0);
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for point in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
            let point = Path::new(point);
            let owner = point
                .parent()
                .filter(|lab| lab.parent() == Some(std::env::temp_dir().as_path()))
                .and_then(Path::file_name)
                .and_then(|n| n.to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok());
            if owner.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = Command::new("umount").arg("-l").arg(point).status();
            }
        }
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "this test mounts a tmpfs: it needs root, as .ci/run has"
        );
        Self(dir)
    }

    /// Writes a file until the disk has no room left.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match std::io::Write::write(&mut file, &block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg("-l").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            eprintln!(
                "{} stays mounted: the next run unmounts it",
                self.0.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_an_aws_error_while_traffic_flows() {
    let lab = Lab::new("disk-full", 57);
    let disk = SmallDisk::mount(lab.dir.join("data"));
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = Backend::start(target, Duration::ZERO).await;
    let text = format!(
        "{}\n\
         [[load_balancer]]\nname = \"full\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"web\" }}\n\
         [[target_group]]\nname = \"web\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    let api = SocketAddr::from((lab.ip('a', 250), 4566));
    let node = lab.node('a', 8080);
    let _elbd = Elbd::start(
        &lab,
        &config,
        &["--api-listen", &api.to_string()],
        &[api, node],
    );
    let aws = Aws::new(api);
    let vpc = aws.ok(&["ec2", "describe-vpcs"])["Vpcs"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let create = move |name: &str| {
        let args = [
            "elbv2",
            "create-target-group",
            "--name",
            name,
            "--protocol",
            "HTTP",
        ];
        aws.command(&[&args[..], &["--port", "80", "--vpc-id", &vpc]].concat())
    };

    // The store's disk fills: a write is refused with a retryable AWS error and changes
    // nothing, while traffic, which needs no disk, flows. (The commit appends to SQLite's
    // write-ahead log, which needs new pages: the few commits since the start have not
    // filled it to its first checkpoint, after which it would be written over in place.)
    let filler = disk.fill();
    let mut refused = None;
    let (row, reasons) = under_load(node, Duration::from_secs(6), || {
        refused = Some(std::thread::spawn(move || (create("while-full"), create)));
    })
    .await;
    let refused = refused.unwrap();
    assert!(refused.is_finished(), "the write outlasted the load");
    let (out, create) = refused.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a write went to a full disk");
    assert!(stderr.contains("ServiceUnavailable"), "{stderr}");
    let log = std::fs::read_to_string(lab.dir.join("elbd.log")).unwrap();
    assert!(log.contains("database or disk is full"), "another cause");
    report("the store's disk full (writes refused)", "0", &row);
    assert_eq!(row.failed, 0, "{reasons:?}");

    // Room again: the next write is taken, and the refused one never was.
    std::fs::remove_file(filler).unwrap();
    let out = create("after-full");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups = Aws::new(api).ok(&["elbv2", "describe-target-groups"]);
    let names: Vec<&str> = (groups["TargetGroups"].as_array().unwrap().iter())
        .filter_map(|g| g["TargetGroupName"].as_str())
        .collect();
    assert!(
        names.contains(&"after-full") && !names.contains(&"while-full"),
        "{names:?}"
    );
}

#[test]
fn a_listener_whose_port_is_taken_impairs_its_load_balancer_until_it_is_bound() {
    let lab = Lab::new("taken", 65);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let target = SocketAddr::from((lab.ip('a', 10), 9001));
    let _backend = runtime.block_on(Backend::start(target, Duration::ZERO));
    let api = SocketAddr::from((lab.ip('a', 1), 4566));
    let text = format!(
        "{}\n[[load_balancer]]\nname = \"taken\"\navailability_zones = [\"us-east-1a\", \"us-east-1b\"]\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8080\ndefault_action = {{ forward = \"tg\" }}\n\
         [[load_balancer.listener]]\nprotocol = \"HTTP\"\nport = 8081\ndefault_action = {{ forward = \"tg\" }}\n\
         [[target_group]]\nname = \"tg\"\nprotocol = \"HTTP\"\nport = 9001\ntargets = [\"{target}\"]\n",
        lab.settings()
    );
    let config = lab.write("elbd.toml", &text);
    // Another program holds one node's second port.
    let taken = lab.node('a', 8081);
    let squatter = std::net::TcpListener::bind(taken).unwrap();
    let flags = ["--api-listen", &api.to_string()];
    let _elbd = Elbd::start(&lab, &config, &flags, &[api, lab.node('a', 8080)]);
    let aws = Aws::new(api);
    let state = || {
        let described = aws.ok(&["elbv2", "describe-load-balancers", "--names", "taken"]);
        described["LoadBalancers"][0]["State"].clone()
    };
    let until = |code: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = state();
            if now["Code"] == code || Instant::now() > deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // Impaired, saying which listener and why; the rest serves.
    let impaired = until("active_impaired");
    assert_eq!(impaired["Code"], "active_impaired", "{impaired}");
    let reason = impaired["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&taken.to_string()), "{reason}");
    assert!(reason.contains("in use"), "{reason}");
    let url = |node: SocketAddr| format!("http://{node}/");
    assert_eq!(curl(&url(lab.node('a', 8080)), &[]).status, 200);
    // Freed, the port is bound within the retry's second: active, and served.
    drop(squatter);
    let active = until("active");
    assert_eq!(active["Code"], "active", "{active}");
    assert!(active.get("Reason").is_none(), "{active}");
    assert_eq!(curl(&url(taken), &[]).status, 200);
}
