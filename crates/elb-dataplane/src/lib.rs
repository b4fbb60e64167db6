//! The data plane of every load balancer node on this host.
//!
//! It never talks to the control plane: [`DataPlane::apply`] receives a model [`State`] (a
//! snapshot value), compiles it into an immutable [`RoutingTable`], swaps that in with one
//! atomic store, and binds or unbinds listener sockets so that they match it. A request loads
//! the table once when it starts and keeps that `Arc` until it ends, so it never waits on a
//! lock or on the API, and it finishes on the snapshot it started with.
//!
//! # Layout
//! - [`table`]: the [`RoutingTable`], listeners by (address, port, transport), each of one
//!   kind; `compile`: snapshot + health → table, and the runtime state kept across
//!   snapshots; [`targets`]: target sets (a neutral part, a part per protocol) and the
//!   HTTP balancing algorithms.
//! - [`access_log`]: ALB access and connection log entries and NLB TLS access log entries
//!   in AWS's formats, per node until taken.
//! - [`admission`]: which clients a listener's security groups admit (pure).
//! - [`auth`]: authenticate actions' login flow through an identity provider.
//! - [`select`]: round robin, least outstanding, slow start (pure).
//! - [`sticky`]: the stickiness cookies, sealed and opened.
//! - [`binder`]: one socket per (address, transport, port); accepts, admits and drains for
//!   every kind of listener, and hands each connection to its kind's server.
//! - `pool`: each node's keep-alive HTTP/1.1 connections to each target; `upstream`: its
//!   HTTP/2 and TLS clients.
//! - [`l7`]: the HTTP listener: connections, forwarding, and the one place errors become
//!   responses ([`l7::rescue`]).
//! - [`flow`]: the flow hash (pure); [`tcp`] and [`udp`]: the NLB's listeners, flows to
//!   targets by it.
//! - [`gateway`]: the Gateway Load Balancer's flows to appliances.
//! - `spare`: buffers kept per thread for the relays; `dial`: sockets to targets from a
//!   chosen source address; `send`: last bytes that leave with the FIN.

pub mod access_log;
pub mod admission;
pub mod anomaly;
pub mod auth;
pub mod binder;
mod compile;
mod dial;
pub mod flow;
pub mod gateway;
pub mod l7;
pub mod metrics;
mod pool;
pub mod select;
mod send;
mod spare;
pub mod sticky;
pub mod table;
pub mod targets;
pub mod tcp;
pub mod udp;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use elb_model::{AnomalyView, HealthView, State};
use tokio::sync::watch;

pub use binder::{BindKey, Handed, Transport};
pub use l7::TargetBody;
pub use table::RoutingTable;

/// What one [`DataPlane::apply`] did to the sockets.
#[derive(Debug, Default)]
pub struct Applied {
    pub bound: Vec<BindKey>,
    pub unbound: Vec<BindKey>,
    /// Listener sockets that could not be bound, with the reason.
    pub failed: Vec<(BindKey, std::io::Error)>,
    /// Sockets bound to addresses this host does not have (yet): nothing reaches them until
    /// it does.
    pub not_local: Vec<BindKey>,
}

/// What the data plane is given by the process that runs it.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long connections of a removed listener (or of a stopping process) may take to
    /// finish their requests before they are cut.
    pub drain: Duration,
    /// Seeds the NLB flow hash.
    pub flow_seed: u64,
    /// Keep client addresses this host lacks through transparent sockets (`dial`).
    pub transparent_client_ip: bool,
    /// How long an HTTP client may take to send a whole request head (the first one from the
    /// connection's start, later ones from their first byte); a 408 after.
    pub header_timeout: Duration,
    /// Client connections one load balancer node holds at most over its HTTP and HTTPS
    /// listeners; a client beyond gets a 503.
    pub max_connections_per_node: usize,
    /// Where `lambda` groups' functions are invoked (`[settings] lambda_endpoint`); without
    /// it their requests fail with a 502.
    pub lambda: Option<Arc<elb_lambda::Invoker>>,
    /// How authenticate actions reach identity providers.
    pub providers: Arc<auth::Providers>,
}

pub struct DataPlane {
    table: Arc<ArcSwap<RoutingTable>>,
    runtime: compile::Runtime,
    binder: binder::Binder,
    endpoints: gateway::Endpoints,
    detector: anomaly::Detector,
    anomalies: watch::Sender<Arc<AnomalyView>>,
}

impl DataPlane {
    pub fn new(options: Options) -> Self {
        let table = Arc::new(ArcSwap::from_pointee(RoutingTable::default()));
        let runtime = compile::Runtime::new(&options);
        Self {
            binder: binder::Binder::new(table.clone(), &options, runtime.gateway()),
            endpoints: gateway::Endpoints::new(runtime.gateway()),
            table,
            runtime,
            detector: anomaly::Detector::default(),
            anomalies: watch::Sender::new(Arc::default()),
        }
    }

    /// Makes the sockets and routes of this host match `state` at `revision`, routing by
    /// what `health` says of each target.
    pub fn apply(&mut self, state: &State, health: &HealthView, revision: u64) -> Applied {
        let table = self.runtime.compile(state, health, revision);
        let wanted: Vec<BindKey> = table.bind_keys().collect();
        let unbound = self.binder.unbind_except(&wanted);
        self.table.store(Arc::new(table));
        let applied = Applied {
            unbound,
            ..self.binder.bind_missing(&wanted)
        };
        self.endpoints.apply(&self.table);
        applied
    }

    /// Tries again to bind the listeners that could not be (their address or port taken,
    /// say): what a timer calls between snapshots.
    pub fn retry_binds(&mut self) -> Applied {
        self.binder.retry_failed()
    }

    /// Makes the interfaces of endpoints that are still missing one (one a process handing
    /// over held), and reaps those that stopped: what a timer calls between snapshots.
    pub fn retry_endpoints(&mut self) {
        self.endpoints.apply(&self.table);
    }

    /// Whether the interface of Gateway Load Balancer endpoint `id` is up (`Ok`), could not
    /// be made (`Err`, why), or is not this host's (`None`).
    pub fn endpoint_status(&self, id: &str) -> Option<Result<(), String>> {
        self.endpoints.status(id)
    }

    /// The metrics of every node on this host, for `/metrics`.
    pub fn metrics(&self) -> Arc<metrics::Registry> {
        self.runtime.registry()
    }

    /// What `elbd explain` asks how a request would be routed now.
    pub fn explainer(&self) -> l7::explain::Explainer {
        l7::explain::Explainer(self.table.clone())
    }

    /// One tick of anomaly detection (a second, on the control loop's timer): each node's
    /// verdicts on the targets of its `weighted_random` groups, and the weights it picks by.
    pub fn assess_targets(&mut self) {
        let view = self.detector.tick(self.runtime.watched());
        self.anomalies.send_if_modified(|old| {
            let changed = **old != view;
            if changed {
                *old = Arc::new(view);
            }
            changed
        });
    }

    /// Anomaly detection's verdicts, for DescribeTargetHealth.
    pub fn anomalies(&self) -> watch::Receiver<Arc<AnomalyView>> {
        self.anomalies.subscribe()
    }

    /// What each node has sent each target, for the console.
    pub fn traffic(&self) -> Arc<targets::Traffic> {
        self.runtime.traffic()
    }

    /// The nodes' access and connection logs, for the control path to take their entries.
    pub fn node_logs(&self) -> Arc<access_log::NodeLogs> {
        self.runtime.node_logs()
    }

    /// Serves with the sockets of a process handing over, where a state applied wants them;
    /// before the first [`DataPlane::apply`].
    pub fn inherit(&mut self, sockets: Vec<binder::Handed>) {
        self.binder.inherit(sockets);
        self.endpoints.set_adopting(true);
    }

    /// Closes the sockets handed over that no state applied wanted: once the state the old
    /// process left is applied. Endpoints started after this are new to this host.
    pub fn forget_inherited(&mut self) {
        self.binder.forget_inherited();
        self.endpoints.set_adopting(false);
    }

    /// Another descriptor of every listening socket, for a process taking over.
    pub fn sockets(&self) -> std::io::Result<Vec<binder::Handed>> {
        self.binder.sockets()
    }

    /// Whether `addr` has a listening socket.
    pub fn is_bound(&self, addr: SocketAddr) -> bool {
        self.binder.is_bound(addr)
    }

    /// Why `addr`'s listening socket could not be bound, when it could not.
    pub fn bind_failure(&self, addr: SocketAddr) -> Option<&str> {
        self.binder.bind_failure(addr)
    }

    /// Whether `addr`'s listening socket waits for an address this host does not have.
    pub fn is_waiting_for_address(&self, addr: SocketAddr) -> bool {
        self.binder.is_waiting_for_address(addr)
    }

    /// Stops accepting everywhere and waits (at most the drain time) for open connections to
    /// finish their requests.
    pub async fn shutdown(mut self) {
        // Endpoints' queues go first: a process taking over holds its own queue of each
        // interface, which then takes every packet.
        self.endpoints.shutdown();
        self.binder.shutdown().await;
    }
}
