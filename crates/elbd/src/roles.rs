//! `--role api|dns|node` and `--zone`: which parts of elbd this process runs. One process runs
//! them all by default, as it always has. On a shared store (etcd) they can run apart, a node
//! process per zone on its own host, as AWS runs a load balancer's nodes: a node process
//! publishes under its lease ([`elb_store::Lease`]) which nodes it serves and what its health
//! checks find, and the others read that ([`Cluster`]): DNS answers only with nodes a live
//! process serves, DescribeTargetHealth merges every node process's checks.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use elb_dataplane::DataPlane;
use elb_model::{Anomaly, AnomalyView, HealthState, HealthView, State, TargetHealth};
use elb_store::{Lease, LiveKeys};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::store_url::StoreUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// The AWS API, the config file's resources and the control loops.
    Api,
    /// The DNS server.
    Dns,
    /// The load balancer nodes of `--zone`s, and their health checks.
    Node,
    /// Everything, in one process (the default).
    All,
}

/// What this process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Roles {
    pub(crate) api: bool,
    pub(crate) dns: bool,
    pub(crate) node: bool,
    /// Parts run apart: node processes publish, the others read what they publish.
    pub(crate) apart: bool,
    /// The zones whose nodes this process serves; empty: every zone.
    pub(crate) zones: BTreeSet<String>,
}

impl Roles {
    pub(crate) fn new(roles: &[Role], zones: &[String], store: &StoreUrl) -> Result<Self, String> {
        let all = roles.is_empty() || roles.contains(&Role::All);
        let has = |role| all || roles.contains(&role);
        let roles = Self {
            api: has(Role::Api),
            dns: has(Role::Dns),
            node: has(Role::Node),
            apart: !all,
            zones: zones.iter().cloned().collect(),
        };
        if roles.apart && matches!(store, StoreUrl::Sqlite(_)) {
            return Err(
                "--role runs parts of elbd apart, which share their state through etcd: \
                 add --store etcd://HOST:PORT"
                    .into(),
            );
        }
        let node_apart = roles.apart && roles.node;
        if !roles.zones.is_empty() && !node_apart {
            return Err("--zone names the zones a node process serves: add --role node".into());
        }
        if roles.apart && roles.node && roles.zones.is_empty() {
            return Err("a node process serves the zones it is given: add --zone NAME".into());
        }
        Ok(roles)
    }

    /// This process's share of `state`: the nodes of its zones (every node when it runs
    /// them all).
    pub(crate) fn local<'a>(&self, state: &'a State) -> Cow<'a, State> {
        if self.zones.is_empty() {
            return Cow::Borrowed(state);
        }
        let mut local = state.clone();
        for region in local.regions.values_mut() {
            let zone_of = |subnet: &str| {
                region
                    .subnets
                    .get(subnet)
                    .map(|s| s.availability_zone.clone())
            };
            let endpoints_elsewhere: Vec<String> = region
                .vpc_endpoints
                .values()
                .filter(|e| zone_of(&e.subnet_id).is_none_or(|z| !self.zones.contains(&z)))
                .map(|e| e.id.clone())
                .collect();
            for id in endpoints_elsewhere {
                region.vpc_endpoints.remove(&id);
            }
            region
                .nodes
                .retain(|_, n| self.zones.contains(&n.availability_zone));
        }
        Cow::Owned(local)
    }

    /// The zones named by `--zone` that no region of `state` has.
    pub(crate) fn unknown_zones(&self, state: &State) -> Vec<String> {
        let known: BTreeSet<&str> = state
            .regions
            .values()
            .flat_map(|r| r.subnets.values().map(|s| s.availability_zone.as_str()))
            .collect();
        (self.zones.iter())
            .filter(|z| !known.contains(z.as_str()))
            .cloned()
            .collect()
    }
}

/// What a node process publishes of itself (`nodes/ID`), for the others and `elbd nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeProcess {
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) zones: BTreeSet<String>,
    pub(crate) nodes: Vec<Served>,
    pub(crate) started_ms: u64,
    /// The state's revision the record describes, as of its last write: a process whose
    /// state lags says so.
    pub(crate) revision: u64,
    /// When the record was last written: at each change, and every [`HEARTBEAT`] (the
    /// lease, not this, says the process lives).
    pub(crate) heartbeat_ms: u64,
}

/// How often an unchanged record is written again, for `elbd nodes` to show it is recent.
pub(crate) const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(30);

/// A load balancer node a node process serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Served {
    pub(crate) id: String,
    pub(crate) load_balancer_arn: String,
    pub(crate) zone: String,
    pub(crate) addresses: Vec<IpAddr>,
    /// Every listener of its load balancer is bound on it.
    pub(crate) ready: bool,
    /// Addresses it listens on that this host does not have (yet).
    pub(crate) waiting: Vec<IpAddr>,
    /// Its listeners that could not be bound, each as `address:port: why`.
    #[serde(default)]
    pub(crate) failing: Vec<String>,
}

const NODES: &str = "nodes/";
const HEALTH: &str = "health/";
const ANOMALIES: &str = "anomalies/";
/// About 180 bytes each: a key of findings stays near 360 KB, inside etcd's 1.5 MiB request.
const FINDINGS_PER_KEY: usize = 2000;

impl NodeProcess {
    /// This process's record, now.
    pub(crate) fn new(roles: &Roles, nodes: Vec<Served>, started_ms: u64, revision: u64) -> Self {
        Self {
            host: hostname(),
            pid: std::process::id(),
            zones: roles.zones.clone(),
            nodes,
            started_ms,
            revision,
            heartbeat_ms: crate::serve::now_ms(),
        }
    }

    /// What `dataplane` serves of `local` (this process's share of the state) now.
    pub(crate) fn serving(local: &State, dataplane: &DataPlane) -> Vec<Served> {
        let mut served = Vec::new();
        for region in local.regions.values() {
            for node in region.nodes.values() {
                let addresses: Vec<IpAddr> = node.addresses().collect();
                let sockets: Vec<SocketAddr> = region
                    .listeners_of(&node.load_balancer_arn)
                    .flat_map(|l| addresses.iter().map(move |ip| SocketAddr::new(*ip, l.port)))
                    .collect();
                let waiting: BTreeSet<IpAddr> = sockets
                    .iter()
                    .filter(|a| dataplane.is_waiting_for_address(**a))
                    .map(SocketAddr::ip)
                    .collect();
                let failing = (sockets.iter())
                    .filter_map(|a| Some(format!("{a}: {}", dataplane.bind_failure(*a)?)))
                    .collect();
                served.push(Served {
                    id: node.id.clone(),
                    load_balancer_arn: node.load_balancer_arn.clone(),
                    zone: node.availability_zone.clone(),
                    ready: sockets.iter().all(|a| dataplane.is_bound(*a)),
                    waiting: waiting.into_iter().collect(),
                    failing,
                    addresses,
                });
            }
        }
        served
    }
}

/// Publishes this node process's record and its checks' findings under its lease.
pub(crate) struct Presence {
    lease: Lease,
    id: String,
    /// The record last written: an unchanged one is written again only every [`HEARTBEAT`]
    /// (each write is a revision etcd keeps until compacted, and wakes every reader).
    last: std::sync::Mutex<Option<NodeProcess>>,
}

impl Presence {
    pub(crate) fn new(lease: Lease) -> Self {
        let id = format!("{}-{:08x}", process_name(), fastrand::u32(..));
        Self {
            lease,
            id,
            last: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn publish(&self, record: NodeProcess) {
        let mut last = self.last.lock().expect("poisoned");
        if let Some(last) = last.as_ref() {
            // The revision moves with every commit to the account: it is refreshed with the
            // heartbeat, not written for itself.
            let same = NodeProcess {
                heartbeat_ms: last.heartbeat_ms,
                revision: last.revision,
                ..record.clone()
            } == *last;
            let recent = record.heartbeat_ms < last.heartbeat_ms + HEARTBEAT.as_millis() as u64;
            if same && recent {
                return;
            }
        }
        let value = serde_json::to_vec(&record).expect("a record serialises");
        self.lease.set(&format!("{NODES}{}", self.id), value);
        *last = Some(record);
    }

    /// Withdraws this process from the others' view at once (a clean stop, before draining).
    pub(crate) async fn withdraw(self) {
        self.lease.revoke().await;
    }

    /// Each node's findings under `health/ID/NODE/N`, [`FINDINGS_PER_KEY`] to a key, so that
    /// no key grows past what etcd takes in one request.
    pub(crate) fn publish_health(&self, view: &HealthView) {
        self.publish_findings(HEALTH, &view.targets);
    }

    /// Each node's anomaly detection findings under `anomalies/ID/NODE/N`, as its health.
    pub(crate) fn publish_anomalies(&self, view: &AnomalyView) {
        self.publish_findings(ANOMALIES, &view.targets);
    }

    fn publish_findings<F: Serialize>(&self, kind: &str, findings: &HashMap<(String, String), F>) {
        let mut by_node: BTreeMap<&str, Vec<(&str, &F)>> = BTreeMap::new();
        for ((node, target), finding) in findings {
            by_node
                .entry(node.as_str())
                .or_default()
                .push((target.as_str(), finding));
        }
        let mut keys = LiveKeys::new();
        for (node, mut findings) in by_node {
            findings.sort_by_key(|(target, _)| *target);
            for (n, part) in findings.chunks(FINDINGS_PER_KEY).enumerate() {
                let value = serde_json::to_vec(part).expect("findings serialise");
                keys.insert(format!("{node}/{n}"), value);
            }
        }
        self.lease.set_under(&format!("{kind}{}/", self.id), keys);
    }
}

/// `KIND/ID/NODE/N` → NODE.
fn findings_node<'k>(key: &'k str, kind: &str) -> Option<&'k str> {
    let (_, rest) = key.strip_prefix(kind)?.split_once('/')?;
    Some(rest.split_once('/')?.0)
}

/// What the live node processes publish, read back: who serves which node, and every node's
/// health checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cluster {
    pub(crate) processes: BTreeMap<String, NodeProcess>,
    pub(crate) health: HealthView,
    pub(crate) anomalies: AnomalyView,
}

impl Cluster {
    /// Reads the live keys; what does not parse (a newer elbd's format) is skipped.
    pub(crate) fn read(keys: &LiveKeys) -> Self {
        let mut cluster = Self::default();
        for (key, value) in keys {
            if let Some(id) = key.strip_prefix(NODES) {
                if let Ok(record) = serde_json::from_slice(value) {
                    cluster.processes.insert(id.to_owned(), record);
                }
            } else if let Some(node) = findings_node(key, ANOMALIES) {
                let findings: Vec<(String, Anomaly)> =
                    serde_json::from_slice(value).unwrap_or_default();
                for (target, finding) in findings {
                    // Two processes serving one node: anomalous if either finds it so.
                    let seen = cluster.anomalies.targets.entry((node.to_owned(), target));
                    seen.and_modify(|seen| *seen = seen.either(finding))
                        .or_insert(finding);
                }
            } else if let Some(node) = findings_node(key, HEALTH) {
                let findings: Vec<(String, TargetHealth)> =
                    serde_json::from_slice(value).unwrap_or_default();
                for (target, health) in findings {
                    // Two processes serving one node (redundancy): it can route to a target
                    // either finds healthy, so the healthier finding stands.
                    let key = (node.to_owned(), target);
                    let targets = &mut cluster.health.targets;
                    if targets
                        .get(&key)
                        .is_none_or(|seen| rank(seen) < rank(&health))
                    {
                        targets.insert(key, health);
                    }
                }
            }
        }
        cluster
    }

    /// The nodes some live process has tried to bind every listener of: ready ones, and
    /// ones with a listener that cannot be bound (the ready record wins when two processes
    /// serve one node).
    pub(crate) fn tried(&self) -> BTreeMap<&str, &Served> {
        let mut tried: BTreeMap<&str, &Served> = BTreeMap::new();
        let nodes = self.processes.values().flat_map(|p| &p.nodes);
        for node in nodes.filter(|n| n.ready || !n.failing.is_empty()) {
            let seen = tried.entry(node.id.as_str()).or_insert(node);
            if node.ready {
                *seen = node;
            }
        }
        tried
    }

    /// `state` with only the nodes a live process serves: what DNS may answer with. A node
    /// with a listener it cannot bind stays, as one process alone keeps it: its load
    /// balancer is impaired, not gone, and routes on what it could bind.
    pub(crate) fn served(&self, state: &State) -> State {
        let tried = self.tried();
        let mut served = state.clone();
        for region in served.regions.values_mut() {
            region.nodes.retain(|id, _| tried.contains_key(id.as_str()));
        }
        served
    }
}

/// The cluster as the live keys say, followed: each change read once, for every reader.
pub(crate) struct ClusterView {
    /// `None` until etcd has been read once.
    pub(crate) live: watch::Receiver<Option<Arc<Cluster>>>,
    /// Its health alone, in the shape the API and the console read.
    pub(crate) health: watch::Receiver<Arc<HealthView>>,
    /// Its anomaly detection findings alone, for the API.
    pub(crate) anomalies: watch::Receiver<Arc<AnomalyView>>,
}

impl ClusterView {
    pub(crate) fn follow(mut keys: watch::Receiver<Option<Arc<LiveKeys>>>) -> Self {
        let (live_tx, live) = watch::channel(None);
        let (health_tx, health) = watch::channel(Arc::new(HealthView::default()));
        let (anomalies_tx, anomalies) = watch::channel(Arc::new(AnomalyView::default()));
        tokio::spawn(async move {
            loop {
                // Not read at all yet is not "no one lives": wait for the first read.
                let read = keys.borrow_and_update().clone();
                let Some(read) = read else {
                    if keys.changed().await.is_err() {
                        return;
                    }
                    continue;
                };
                let cluster = Cluster::read(&read);
                health_tx.send_if_modified(|h| {
                    let changed = **h != cluster.health;
                    if changed {
                        *h = Arc::new(cluster.health.clone());
                    }
                    changed
                });
                anomalies_tx.send_if_modified(|a| {
                    let changed = **a != cluster.anomalies;
                    if changed {
                        *a = Arc::new(cluster.anomalies.clone());
                    }
                    changed
                });
                live_tx.send_replace(Some(Arc::new(cluster)));
                if keys.changed().await.is_err() {
                    return;
                }
            }
        });
        Self {
            live,
            health,
            anomalies,
        }
    }
}

/// How well a finding speaks of its target, for choosing between two of one node.
fn rank(health: &TargetHealth) -> u8 {
    match health.state {
        HealthState::Healthy => 3,
        HealthState::Initial | HealthState::Draining => 2,
        HealthState::Unused | HealthState::Unavailable => 1,
        HealthState::Unhealthy => 0,
    }
}

/// `HOST-PID`: how this process is named to the others.
pub(crate) fn process_name() -> String {
    format!("{}-{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_run_apart_only_on_etcd_and_node_processes_name_their_zones() {
        let etcd: StoreUrl = "etcd://127.0.0.1:2379".parse().unwrap();
        let sqlite = StoreUrl::Sqlite("state.db".into());
        let zones = ["us-east-1a".to_owned()];
        let all = Roles::new(&[], &[], &sqlite).unwrap();
        assert!(all.api && all.dns && all.node && !all.apart);
        let node = Roles::new(&[Role::Node], &zones, &etcd).unwrap();
        assert!(node.node && !node.api && !node.dns && node.apart);
        for (roles, zones, store, says) in [
            (&[Role::Api][..], &[][..], &sqlite, "etcd"),
            (&[Role::Node], &[], &etcd, "--zone"),
            (&[Role::Api], &zones[..], &etcd, "--role node"),
            (&[], &zones[..], &sqlite, "--role node"),
        ] {
            let err = Roles::new(roles, zones, store).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn health_published_per_node_reads_back_merged_with_the_records() {
        let keys: LiveKeys = [
            (
                "nodes/h-1".to_owned(),
                br#"{"host":"h","pid":1,"zones":["us-east-1a"],"nodes":[{"id":"n-a","load_balancer_arn":"lb","zone":"us-east-1a","addresses":["127.1.255.254"],"ready":true,"waiting":[]},{"id":"n-x","load_balancer_arn":"lb2","zone":"us-east-1a","addresses":[],"ready":false,"waiting":[]}],"started_ms":1,"revision":7,"heartbeat_ms":2}"#.to_vec(),
            ),
            (
                "health/h-1/n-a/0".to_owned(),
                br#"[["t1",{"state":"Healthy","reason":null,"healthy_since_ms":5}]]"#.to_vec(),
            ),
            (
                "health/h-2/n-a/0".to_owned(),
                br#"[["t1",{"state":"Initial","reason":null,"healthy_since_ms":null}]]"#.to_vec(),
            ),
            (
                "anomalies/h-1/n-a/0".to_owned(),
                br#"[["t1",{"anomalous":false,"mitigated":false}]]"#.to_vec(),
            ),
            (
                "anomalies/h-2/n-a/0".to_owned(),
                br#"[["t1",{"anomalous":true,"mitigated":true}]]"#.to_vec(),
            ),
            ("nodes/newer".to_owned(), b"not json".to_vec()),
        ]
        .into_iter()
        .collect();
        let cluster = Cluster::read(&keys);
        assert_eq!(cluster.processes.len(), 1);
        assert_eq!(cluster.tried().keys().copied().collect::<Vec<_>>(), ["n-a"]);
        // Two processes serve n-a: the healthier finding stands, whichever key comes last.
        let health = cluster.health.get("n-a", "t1").unwrap();
        assert_eq!(health.state, HealthState::Healthy);
        // And the anomalous finding of the two.
        let anomaly = cluster.anomalies.overall_of(&["t1".to_owned()]).unwrap();
        assert!(anomaly.anomalous && anomaly.mitigated);
    }

    #[test]
    fn a_node_with_a_listener_it_cannot_bind_is_tried_and_a_ready_record_wins() {
        let record = |ready: bool, failing: &str| {
            format!(
                r#"{{"host":"h","pid":1,"zones":["us-east-1a"],"nodes":[{{"id":"n-a","load_balancer_arn":"lb","zone":"us-east-1a","addresses":["127.1.255.254"],"ready":{ready},"waiting":[],"failing":[{failing}]}}],"started_ms":1,"revision":7,"heartbeat_ms":2}}"#
            )
            .into_bytes()
        };
        let failing = r#""127.1.255.254:80: Address in use""#;
        let one: LiveKeys = [("nodes/h-1".to_owned(), record(false, failing))]
            .into_iter()
            .collect();
        let cluster = Cluster::read(&one);
        assert_eq!(cluster.tried()["n-a"].failing.len(), 1);
        // Another process serves the node whole: its record stands, whichever comes first.
        for (first, second) in [("h-1", "h-2"), ("h-2", "h-1")] {
            let two: LiveKeys = [
                (format!("nodes/{first}"), record(false, failing)),
                (format!("nodes/{second}"), record(true, "")),
            ]
            .into_iter()
            .collect();
            let cluster = Cluster::read(&two);
            assert!(cluster.tried()["n-a"].ready, "{first} first");
        }
    }
}
