//! The Gateway Load Balancer: packets a route sends into an endpoint's interface go,
//! GENEVE-encapsulated, from the gateway node's address to one appliance of its group; what
//! the appliance returns to the node's UDP 6081 goes back into the endpoint's interface, for
//! the kernel to deliver.
//!
//! - [`flows`]: which appliance each flow goes to (pure).
//! - `tun`: the endpoints' interfaces; `path`: the two directions (`carry`: interface to
//!   appliance; `serve`: appliance back to interface, the node's listener kind).
//! - `Endpoints`: which endpoints' interfaces this host runs, made and removed as
//!   snapshots say.

pub mod flows;
mod path;
mod tun;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub(crate) use path::serve;
use tun::{EBUSY, Tun};

use crate::table::RoutingTable;

/// What the gateway's tasks share across snapshots: each node's GENEVE socket (bound by the
/// binder, published by `serve`) and each running endpoint's interface.
#[derive(Default)]
pub(crate) struct Shared {
    sockets: ArcSwap<HashMap<IpAddr, Arc<UdpSocket>>>,
    /// By GENEVE endpoint id (option type 1).
    interfaces: ArcSwap<HashMap<u64, Arc<Tun>>>,
}

impl Shared {
    /// Publishes (or, with `None`, withdraws) the socket of the node at `ip`.
    pub(crate) fn with_socket(&self, ip: IpAddr, socket: Option<&Arc<UdpSocket>>) {
        self.sockets.rcu(|sockets| {
            let mut next = HashMap::clone(sockets);
            match socket {
                Some(socket) => {
                    next.insert(ip, socket.clone());
                }
                None => {
                    next.remove(&ip);
                }
            }
            next
        });
    }

    fn with_interface(&self, endpoint_id: u64, tun: Option<&Arc<Tun>>) {
        self.interfaces.rcu(|interfaces| {
            let mut next = HashMap::clone(interfaces);
            match tun {
                Some(tun) => {
                    next.insert(endpoint_id, tun.clone());
                }
                None => {
                    next.remove(&endpoint_id);
                }
            }
            next
        });
    }
}

struct Running {
    endpoint_id: u64,
    interface: String,
    stop: watch::Sender<bool>,
    /// Ends early only when the interface fails (deleted under elbd, say).
    task: JoinHandle<()>,
}

/// The endpoints whose interfaces this host runs, and how making each went.
pub(crate) struct Endpoints {
    shared: Arc<Shared>,
    running: HashMap<String, Running>,
    /// Endpoint id → `Err(why)` when its interface could not be made, `Ok` once it is up.
    status: HashMap<String, Result<(), String>>,
    /// Taking over from another process until its state is applied: the endpoints started
    /// meanwhile adopt the connections already open (`FlowTable::adopting`).
    adopting: bool,
}

impl Endpoints {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            running: HashMap::new(),
            status: HashMap::new(),
            adopting: false,
        }
    }

    /// Whether endpoints started from now on adopt another process's connections.
    pub(crate) fn set_adopting(&mut self, adopting: bool) {
        self.adopting = adopting;
    }

    /// Makes the interfaces of `table`'s endpoints that are not up yet, and removes those of
    /// endpoints it no longer has.
    pub(crate) fn apply(&mut self, table: &Arc<ArcSwap<RoutingTable>>) {
        let snapshot = table.load();
        let ended: Vec<String> = self
            .running
            .iter()
            .filter(|(id, r)| snapshot.endpoint(id).is_none() || r.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            // The task ends at once (it waits on nothing but the interface and the signal),
            // and takes its flows out of the node's count as it goes.
            let running = self.running.remove(&id).expect("listed above");
            running.stop.send_replace(true);
            self.shared.with_interface(running.endpoint_id, None);
            if running.task.is_finished() {
                self.status.insert(id, Err(stopped(&running.interface)));
            } else {
                info!(endpoint = %id, "endpoint interface removed");
            }
        }
        self.status.retain(|id, _| snapshot.endpoint(id).is_some());
        for (id, route) in &snapshot.endpoints {
            // An interface that could not be made is not tried again: its endpoint fails.
            if self.running.contains_key(id) || self.status.get(id).is_some_and(Result::is_err) {
                continue;
            }
            match Tun::create(&route.interface) {
                Ok(tun) => {
                    let tun = Arc::new(tun);
                    self.shared.with_interface(route.endpoint_id, Some(&tun));
                    let (stop, stopped) = watch::channel(false);
                    let task = tokio::spawn(path::carry(
                        route.clone(),
                        tun,
                        table.clone(),
                        self.shared.clone(),
                        stopped,
                        self.adopting,
                    ));
                    let running = Running {
                        endpoint_id: route.endpoint_id,
                        interface: route.interface.clone(),
                        stop,
                        task,
                    };
                    self.running.insert(id.clone(), running);
                    self.status.insert(id.clone(), Ok(()));
                    info!(endpoint = %id, interface = %route.interface, "endpoint interface up");
                }
                // Held by an older process that is handing over: tried again (each second,
                // `DataPlane::retry_endpoints`) rather than failed.
                Err(e) if e.raw_os_error() == Some(EBUSY) => {
                    warn!(endpoint = %id, interface = %route.interface, "endpoint interface busy; trying again");
                }
                Err(e) => {
                    warn!(endpoint = %id, interface = %route.interface, error = %e, "endpoint interface not made");
                    self.status.insert(
                        id.clone(),
                        Err(format!(
                            "The interface {} could not be made: {e}",
                            route.interface
                        )),
                    );
                }
            }
        }
    }

    /// Stops every endpoint's task and lets go of its interface.
    pub(crate) fn shutdown(&mut self) {
        for (_, running) in self.running.drain() {
            running.stop.send_replace(true);
            self.shared.with_interface(running.endpoint_id, None);
        }
    }

    /// Whether the interface of endpoint `id` is up (`Ok`), could not be made (`Err`), or is
    /// not this host's to make (`None`).
    pub(crate) fn status(&self, id: &str) -> Option<Result<(), String>> {
        match self.running.get(id) {
            Some(running) if running.task.is_finished() => Some(Err(stopped(&running.interface))),
            _ => self.status.get(id).cloned(),
        }
    }
}

fn stopped(interface: &str) -> String {
    format!("The interface {interface} stopped working (removed from under elbd?)")
}
