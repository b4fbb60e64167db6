//! One battery of store tests, run against every backend.

use std::path::PathBuf;
use std::sync::Arc;

use elb_model::state::{CreateLoadBalancer, CreateTargetGroup, TargetDescription};
use elb_model::{Command, ErrorCode, LoadBalancerKind, Origin, Outcome, Region, Scope, State};

use crate::{Backend, EtcdBackend, EtcdOptions, MemoryBackend, SqliteBackend, Store, UpdateError};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// Opens the account's store and its us-east-1 region.
fn open(backend: impl Backend + 'static) -> Store {
    let store = Store::open(Box::new(backend), ACCOUNT, "legacy").unwrap();
    store
        .update(|state, cx| state.open_region(&Scope::default(), &Default::default(), cx))
        .unwrap();
    store
}

fn region(store: &Store) -> Region {
    store.snapshot().state.regions[REGION].clone()
}

fn create_alb(store: &Store, name: &str) -> Result<Outcome, UpdateError> {
    let state = region(store);
    let mut subnets: Vec<_> = state.subnets.values().collect();
    subnets.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
    store.execute(
        REGION,
        Command::CreateLoadBalancer(CreateLoadBalancer {
            name: name.into(),
            kind: LoadBalancerKind::Application,
            scheme: None,
            ip_address_type: None,
            ipv6_source_nat: None,
            subnet_ids: subnets[..2].iter().map(|s| s.id.clone()).collect(),
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        }),
    )
}

fn create_target_group(store: &Store, name: &str, targets: usize) -> String {
    let Outcome::Created(arn) = store.execute(REGION, target_group(name)).unwrap() else {
        panic!("not created")
    };
    let targets = (0..targets)
        .map(|i| TargetDescription {
            id: format!("127.1.{}.{}", i / 200, 1 + i % 200),
            port: Some(8000),
            availability_zone: None,
        })
        .collect();
    let target_group_arn = arn.clone();
    store
        .execute(
            REGION,
            Command::RegisterTargets {
                target_group_arn,
                targets,
            },
        )
        .unwrap();
    arn
}

pub(crate) fn target_group(name: &str) -> Command {
    Command::CreateTargetGroup(CreateTargetGroup {
        name: name.into(),
        protocol: Some("HTTP".into()),
        protocol_version: elb_model::ProtocolVersion::Http1,
        port: Some(80),
        vpc_id: None,
        target_type: "ip".into(),
        ip_address_type: None,
        origin: Origin::Api,
    })
}

/// A state with a load balancer and a target group with targets (the layout's tests).
pub(crate) fn busy_state() -> State {
    let store = open(MemoryBackend::default());
    create_alb(&store, "web").unwrap();
    create_target_group(&store, "pool", 3);
    store.snapshot().state.clone()
}

/// Runs a backend's future to its end (the store does it for its own calls).
fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(work)
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("elb-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.db")
}

/// Runs each test of the battery with a fresh backend from `$make`, and, for `$reopen`, with a
/// second backend over the same storage.
macro_rules! store_battery {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn opening_seeds_the_network_once() {
                let (a, b) = $make(stringify!($module), "seed");
                let first = open(a);
                assert!(first.snapshot().revision > 0);
                assert_eq!(region(&first).subnets.len(), 3);
                let again = open(b);
                assert_eq!(again.snapshot().revision, first.snapshot().revision);
                assert_eq!(again.snapshot().state, first.snapshot().state);
            }

            #[test]
            fn a_store_written_before_regions_is_read_and_moves_to_the_account_key() {
                let (a, b) = $make(stringify!($module), "legacy");
                let mut cx_ids = elb_model::id::SequentialIds::default();
                let mut cx = elb_model::Context { ids: &mut cx_ids, now_ms: 0 };
                let mut old = Region::new(Scope::default());
                old.apply(Command::SeedNetwork(elb_model::Topology::default()), &mut cx)
                    .unwrap();
                let legacy = elb_model::State::single(old.clone());
                let empty = elb_model::State::default();
                block_on(a.commit("123456789012/us-east-1", 0, &empty, &legacy)).unwrap();
                let store = Store::open(Box::new(a), ACCOUNT, "123456789012/us-east-1").unwrap();
                assert_eq!(store.snapshot().revision, 0);
                assert_eq!(region(&store), old);
                create_alb(&store, "web").unwrap();
                let again = Store::open(Box::new(b), ACCOUNT, "123456789012/us-east-1").unwrap();
                assert_eq!(again.snapshot().revision, store.snapshot().revision);
                assert!(region(&again).load_balancer_by_name("web").is_some());
            }

            #[test]
            fn commits_publish_snapshots_and_failures_change_nothing() {
                let (a, _) = $make(stringify!($module), "publish");
                let store = open(a);
                let opened = store.snapshot().revision;
                let mut rx = store.subscribe();
                let Outcome::Created(arn) = create_alb(&store, "web").unwrap() else {
                    panic!("not created")
                };
                assert!(rx.has_changed().unwrap());
                let seen = rx.borrow_and_update().clone();
                assert!(seen.revision > opened);
                assert!(seen.state.regions[REGION].load_balancers.contains_key(&arn));

                let err = store
                    .execute(REGION, target_group("bad name"))
                    .unwrap_err();
                assert!(matches!(err, UpdateError::Model(e) if e.code == ErrorCode::ValidationError));
                assert_eq!(store.snapshot().revision, seen.revision);
                assert!(!rx.has_changed().unwrap());
            }

            #[test]
            fn a_writer_behind_reloads_and_retries() {
                let (a, b) = $make(stringify!($module), "conflict");
                let one = open(a);
                let two = open(b);
                create_alb(&one, "first").unwrap();
                let first = one.snapshot().revision;
                // `two` still believes revision 1 is the latest: its commit conflicts, it
                // reloads, and its change lands on top of `one`'s.
                create_alb(&two, "second").unwrap();
                let state = region(&two);
                assert!(two.snapshot().revision > first);
                assert!(state.load_balancer_by_name("first").is_some());
                assert!(state.load_balancer_by_name("second").is_some());
                let ips: std::collections::BTreeSet<_> =
                    state.nodes.values().map(|n| n.private_ipv4).collect();
                assert_eq!(ips.len(), 4, "two writers took the same node address");
            }
        }
    };
}

fn memory_pair(_: &str, _: &str) -> (Arc<MemoryBackend>, Arc<MemoryBackend>) {
    let shared = Arc::new(MemoryBackend::default());
    (shared.clone(), shared)
}

fn sqlite_pair(module: &str, test: &str) -> (SqliteBackend, SqliteBackend) {
    let path = temp_db(&format!("{module}-{test}"));
    (
        SqliteBackend::open(&path).unwrap(),
        SqliteBackend::open(&path).unwrap(),
    )
}

fn etcd_pair(module: &str, test: &str) -> (EtcdBackend, EtcdBackend) {
    let prefix = etcd_prefix(&format!("{module}-{test}"));
    let connect = || EtcdBackend::connect(&[etcd_endpoint()], &prefix, EtcdOptions::default());
    (connect().unwrap(), connect().unwrap())
}

store_battery!(memory, memory_pair);
store_battery!(sqlite, sqlite_pair);
store_battery!(etcd, etcd_pair);

/// A key prefix of this test run's own.
pub(crate) fn etcd_prefix(test: &str) -> String {
    format!("test-{}-{test}", std::process::id())
}

/// One etcd server for the test process, on loopback; it stops, and its data goes, when the
/// process ends (the shell that started it waits on the process's end of a pipe).
pub(crate) fn etcd_endpoint() -> String {
    static ENDPOINT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ENDPOINT
        .get_or_init(|| {
            let port = || {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            };
            let found = std::process::Command::new("sh")
                .args(["-c", "command -v etcd"])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "these tests run etcd (Debian's etcd-server; .ci/run installs it)"
            );
            let (client, peer) = (port(), port());
            let root = temp_db("etcd");
            let root = root.parent().unwrap().display();
            let script = format!(
                "etcd --data-dir '{root}/data' --listen-client-urls http://127.0.0.1:{client} \
                 --advertise-client-urls http://127.0.0.1:{client} \
                 --listen-peer-urls http://127.0.0.1:{peer} \
                 --initial-advertise-peer-urls http://127.0.0.1:{peer} \
                 --initial-cluster default=http://127.0.0.1:{peer} >'{root}/etcd.log' 2>&1 & \
                 read _; kill $!; wait $!; rm -rf '{root}'"
            );
            let child = std::process::Command::new("sh")
                .args(["-c", &script])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Its stdin stays open as long as this process lives.
            std::mem::forget(child);
            let endpoint = format!("127.0.0.1:{client}");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while EtcdBackend::connect(
                std::slice::from_ref(&endpoint),
                "probe",
                EtcdOptions::default(),
            )
            .is_err()
            {
                assert!(std::time::Instant::now() < deadline, "etcd did not start");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            endpoint
        })
        .clone()
}

/// Waits for `store` to publish `revision` (a watch's delivery takes a moment).
fn await_revision(store: &Store, revision: crate::Revision) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.snapshot().revision < revision {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch did not deliver"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn etcd_followers_see_others_commits_without_writing() {
    let (a, b) = etcd_pair("etcd", "follow");
    let writer = open(a);
    let reader = open(b);
    let seen = reader.subscribe();
    create_alb(&writer, "web").unwrap();
    let arn = create_target_group(&writer, "pool", 5);
    await_revision(&reader, writer.snapshot().revision);
    assert!(seen.has_changed().unwrap());
    assert_eq!(reader.snapshot().state, writer.snapshot().state);
    assert_eq!(region(&reader).target_groups[&arn].targets.len(), 5);
}

#[test]
fn an_etcd_commit_larger_than_a_transaction_is_staged_and_whole() {
    let (a, b) = etcd_pair("etcd", "large");
    let writer = open(a);
    let reader = open(b);
    // 150 target groups (a key each) and 600 targets: past etcd's 128 operations.
    writer
        .update(|state, cx| {
            for i in 0..150 {
                state.apply(REGION, target_group(&format!("group-{i}")), cx)?;
            }
            Ok(())
        })
        .unwrap();
    create_target_group(&writer, "many", 600);
    await_revision(&reader, writer.snapshot().revision);
    assert_eq!(reader.snapshot().state, writer.snapshot().state);
    assert_eq!(region(&reader).target_groups.len(), 151);
    // The copy finished: a small commit goes through, and a store opened now reads the same.
    create_alb(&reader, "after").unwrap();
    let (c, _) = etcd_pair("etcd", "large");
    let fresh = Store::open(Box::new(c), ACCOUNT, "legacy").unwrap();
    assert_eq!(fresh.snapshot().state, reader.snapshot().state);
}

#[test]
fn sqlite_restores_everything_after_reopening() {
    let path = temp_db("restore");
    let before = {
        let store = open(SqliteBackend::open(&path).unwrap());
        create_alb(&store, "web").unwrap();
        store.snapshot()
    };
    let after = open(SqliteBackend::open(&path).unwrap()).snapshot();
    assert_eq!(after.revision, before.revision);
    assert_eq!(after.state, before.state);
}

#[test]
fn a_busy_locked_or_full_sqlite_store_is_worth_retrying_and_a_corrupt_one_is_not() {
    let sqlite = |code| {
        crate::StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        ))
    };
    use rusqlite::ffi::{SQLITE_BUSY, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_LOCKED};
    for code in [SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL] {
        assert!(sqlite(code).is_transient(), "{code}");
    }
    assert!(!sqlite(SQLITE_CORRUPT).is_transient());
}
