//! One battery of store tests, run against every backend.

use std::path::PathBuf;
use std::sync::Arc;

use elb_model::state::{CreateLoadBalancer, CreateTargetGroup};
use elb_model::{Command, ErrorCode, LoadBalancerKind, Origin, Outcome, Region, Scope};

use crate::{Backend, MemoryBackend, SqliteBackend, Store, UpdateError};

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
            subnet_ids: subnets[..2].iter().map(|s| s.id.clone()).collect(),
            subnet_mappings: vec![],
            security_groups: None,
            origin: Origin::Api,
        }),
    )
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
                assert_eq!(first.snapshot().revision, 1);
                assert_eq!(region(&first).subnets.len(), 3);
                let again = open(b);
                assert_eq!(again.snapshot().revision, 1);
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
                a.commit("123456789012/us-east-1", 0, &legacy).unwrap();
                let store = Store::open(Box::new(a), ACCOUNT, "123456789012/us-east-1").unwrap();
                assert_eq!(store.snapshot().revision, 0);
                assert_eq!(region(&store), old);
                create_alb(&store, "web").unwrap();
                let again = Store::open(Box::new(b), ACCOUNT, "123456789012/us-east-1").unwrap();
                assert_eq!(again.snapshot().revision, 1);
                assert!(region(&again).load_balancer_by_name("web").is_some());
            }

            #[test]
            fn commits_publish_snapshots_and_failures_change_nothing() {
                let (a, _) = $make(stringify!($module), "publish");
                let store = open(a);
                let mut rx = store.subscribe();
                let Outcome::Created(arn) = create_alb(&store, "web").unwrap() else {
                    panic!("not created")
                };
                assert!(rx.has_changed().unwrap());
                let seen = rx.borrow_and_update().clone();
                assert_eq!(seen.revision, 2);
                assert!(seen.state.regions[REGION].load_balancers.contains_key(&arn));

                let err = store
                    .execute(REGION, Command::CreateTargetGroup(CreateTargetGroup {
                        name: "bad name".into(),
                        protocol: "HTTP".into(),
                        protocol_version: elb_model::ProtocolVersion::Http1,
                        port: 80,
                        vpc_id: None,
                        target_type: "ip".into(),
                        origin: Origin::Api,
                    }))
                    .unwrap_err();
                assert!(matches!(err, UpdateError::Model(e) if e.code == ErrorCode::ValidationError));
                assert_eq!(store.snapshot().revision, 2);
                assert!(!rx.has_changed().unwrap());
            }

            #[test]
            fn a_writer_behind_reloads_and_retries() {
                let (a, b) = $make(stringify!($module), "conflict");
                let one = open(a);
                let two = open(b);
                create_alb(&one, "first").unwrap();
                // `two` still believes revision 1 is the latest: its commit conflicts, it
                // reloads, and its change lands on top of `one`'s.
                create_alb(&two, "second").unwrap();
                let state = region(&two);
                assert_eq!(two.snapshot().revision, 3);
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

store_battery!(memory, memory_pair);
store_battery!(sqlite, sqlite_pair);

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
