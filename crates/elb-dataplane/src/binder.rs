//! Listening sockets: one per (address, transport, port), whatever protocol is served on it.
//! The binder accepts for every kind of listener alike: it looks the socket up in the
//! current table, lets the security groups admit or refuse the client, and hands the
//! connection to the server of the listener's kind.
//!
//! A new elbd process taking over from a running one gets these very sockets
//! (`Binder::sockets`, `Binder::inherit`): their queues of connections not yet accepted
//! pass to it whole. Sockets are also opened with SO_REUSEPORT, so that a process started
//! without a hand-over can bind beside the old one. Closing a socket starts the drain: no
//! new connections, open ones finish their requests within the drain time, and whatever is
//! left is cut. The same drain serves listener removal and shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{info, warn};

use crate::Applied;
use crate::table::{Door, Listener, RoutingTable};
use crate::{gateway, l7, tcp, udp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
    /// UDP carrying GENEVE (a gateway node's 6081): its own key, so that an address that
    /// changes hands between a gateway and a UDP listener is bound anew for its new server.
    Geneve,
}

/// What a socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindKey {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl BindKey {
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            addr,
            transport: Transport::Tcp,
        }
    }

    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            addr,
            transport: Transport::Udp,
        }
    }

    pub fn geneve(addr: SocketAddr) -> Self {
        Self {
            addr,
            transport: Transport::Geneve,
        }
    }
}

struct Bound {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Whether this host has the address (bound without IP_FREEBIND).
    local: bool,
    /// The socket itself (another descriptor of it), for a process taking over.
    socket: Socket,
}

/// A listening socket handed from one elbd process to the next.
#[derive(Debug)]
pub struct Handed {
    pub key: BindKey,
    /// Whether the host has the address (as the binder found when it bound it).
    pub local: bool,
    pub socket: OwnedFd,
}

pub(crate) struct Binder {
    table: Arc<ArcSwap<RoutingTable>>,
    drain: Duration,
    bound: HashMap<BindKey, Bound>,
    /// The client connections of each node address over all its HTTP listeners, and how
    /// many it may hold.
    nodes: HashMap<IpAddr, Arc<AtomicUsize>>,
    max_connections_per_node: usize,
    /// Where gateway nodes' sockets are published for their endpoints to send from.
    gateway: Arc<gateway::Shared>,
    /// Sockets a process handing over gave this one, used instead of binding anew until the
    /// first sockets are bound.
    inherited: HashMap<BindKey, (Socket, bool)>,
    /// Why each wanted socket that could not be bound could not (tried again on every
    /// apply and every retry).
    failed: HashMap<BindKey, String>,
}

impl Binder {
    pub(crate) fn new(
        table: Arc<ArcSwap<RoutingTable>>,
        options: &crate::Options,
        gateway: Arc<gateway::Shared>,
    ) -> Self {
        Self {
            table,
            drain: options.drain,
            bound: HashMap::new(),
            nodes: HashMap::new(),
            max_connections_per_node: options.max_connections_per_node,
            gateway,
            inherited: HashMap::new(),
            failed: HashMap::new(),
        }
    }

    /// Takes over the sockets of a process handing over: they serve the keys they are bound
    /// to when a state that wants them is applied (the rest are closed by
    /// [`Binder::forget_inherited`]).
    pub(crate) fn inherit(&mut self, sockets: Vec<Handed>) {
        for handed in sockets {
            let socket = Socket::from(handed.socket);
            self.inherited.insert(handed.key, (socket, handed.local));
        }
    }

    /// Another descriptor of every socket bound, for a process taking over.
    pub(crate) fn sockets(&self) -> std::io::Result<Vec<Handed>> {
        let mut handed = Vec::with_capacity(self.bound.len());
        for (key, bound) in &self.bound {
            handed.push(Handed {
                key: *key,
                local: bound.local,
                socket: bound.socket.try_clone()?.into(),
            });
        }
        Ok(handed)
    }

    pub(crate) fn is_bound(&self, addr: SocketAddr) -> bool {
        self.bound.keys().any(|k| k.addr == addr)
    }

    /// Why `addr`'s socket could not be bound, when it could not.
    pub(crate) fn bind_failure(&self, addr: SocketAddr) -> Option<&str> {
        let mut failed = self.failed.iter().filter(|(k, _)| k.addr == addr);
        failed.next().map(|(_, why)| why.as_str())
    }

    /// Whether `addr` is bound to an address this host does not have (yet).
    pub(crate) fn is_waiting_for_address(&self, addr: SocketAddr) -> bool {
        self.bound.iter().any(|(k, b)| k.addr == addr && !b.local)
    }

    /// Closes every socket not in `wanted`; their connections drain in the background.
    pub(crate) fn unbind_except(&mut self, wanted: &[BindKey]) -> Vec<BindKey> {
        self.failed.retain(|key, _| wanted.contains(key));
        let gone: Vec<BindKey> = self
            .bound
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in &gone {
            let bound = self.bound.remove(key).expect("listed above");
            bound.stop.send_replace(true);
            if key.transport == Transport::Geneve {
                self.gateway.with_socket(key.addr.ip(), None);
            }
        }
        // A node's count goes with its last socket and its last connection.
        let bound = &self.bound;
        self.nodes.retain(|ip, connections| {
            Arc::strong_count(connections) > 1 || bound.keys().any(|k| k.addr.ip() == *ip)
        });
        gone
    }

    /// Opens a socket for every key of `wanted` that has none. A failure is reported once,
    /// and again only if its reason changes.
    pub(crate) fn bind_missing(&mut self, wanted: &[BindKey]) -> Applied {
        let mut applied = Applied::default();
        let snapshot = self.table.load();
        for key in wanted {
            // Set on every apply, sockets handed over and kept ones included: a listener's
            // kind may change on its socket (TLS to TCP on one port).
            let answers = snapshot.listener(key).is_some_and(Listener::answers);
            if let Some(bound) = self.bound.get(key) {
                if key.transport == Transport::Tcp {
                    quick_acks(&bound.socket, !answers);
                }
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let table = self.table.clone();
            let opened = match self.inherited.remove(key) {
                Some(inherited) => Ok(inherited),
                None if key.transport == Transport::Tcp => listening(key.addr),
                None => bind(key.addr, Type::DGRAM),
            };
            let served = opened.and_then(|(socket, local)| {
                if key.transport == Transport::Tcp {
                    quick_acks(&socket, !answers);
                }
                let kept = socket.try_clone()?;
                let task = match key.transport {
                    Transport::Tcp => {
                        let listener = TcpListener::from_std(socket.into())?;
                        let node = Node {
                            connections: self.nodes.entry(key.addr.ip()).or_default().clone(),
                            max: self.max_connections_per_node,
                        };
                        tokio::spawn(accept(listener, table, stopped, (self.drain, node)))
                    }
                    Transport::Udp => {
                        let socket = UdpSocket::from_std(socket.into())?;
                        tokio::spawn(udp::serve(socket, table, stopped))
                    }
                    // Published before the task runs, so that endpoints send from the node's
                    // current socket from the first packet on.
                    Transport::Geneve => {
                        let socket = Arc::new(UdpSocket::from_std(socket.into())?);
                        let shared = self.gateway.clone();
                        shared.with_socket(key.addr.ip(), Some(&socket));
                        tokio::spawn(gateway::serve(socket, table, stopped, shared))
                    }
                };
                Ok((task, local, kept))
            });
            match served {
                Ok((task, local, socket)) => {
                    let bound = Bound {
                        stop,
                        task,
                        local,
                        socket,
                    };
                    self.bound.insert(*key, bound);
                    self.failed.remove(key);
                    applied.bound.push(*key);
                    if !local {
                        applied.not_local.push(*key);
                    }
                }
                Err(e) => {
                    let why = e.to_string();
                    if self.failed.get(key) != Some(&why) {
                        self.failed.insert(*key, why);
                        applied.failed.push((*key, e));
                    }
                }
            }
        }
        applied
    }

    /// Binds again what could not be bound (the keys still wanted: `unbind_except` forgets
    /// the others).
    pub(crate) fn retry_failed(&mut self) -> Applied {
        let failed: Vec<BindKey> = self.failed.keys().copied().collect();
        self.bind_missing(&failed)
    }

    /// Closes every socket and waits for the drains to end.
    pub(crate) async fn shutdown(mut self) {
        self.inherited.clear();
        // The copies kept for a hand-over close now, or the kernel would go on completing
        // handshakes nobody accepts until the drain ends.
        let tasks: Vec<_> = (self.bound.drain())
            .map(|(_, b)| {
                b.stop.send_replace(true);
                b.task
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Closes the sockets handed over that no state applied since wanted.
    pub(crate) fn forget_inherited(&mut self) {
        for key in self.inherited.keys() {
            warn!(addr = %key.addr, "a socket handed over is not served here; closed");
        }
        self.inherited.clear();
    }
}

/// The client connections of a load balancer node over all its HTTP listeners.
struct Node {
    connections: Arc<AtomicUsize>,
    max: usize,
}

impl Node {
    /// A place for one more connection, held until dropped; none when the node is full.
    fn admit(&self) -> Option<Place> {
        let taken = self.connections.fetch_add(1, Ordering::Relaxed);
        let place = Place(self.connections.clone());
        (taken < self.max).then_some(place)
    }
}

/// One connection's place in its node's count.
pub(crate) struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts on `listener` until `stopped` turns, then drains: open connections finish what
/// they are doing (at most `drain`), and the rest are cut.
async fn accept(
    listener: TcpListener,
    table: Arc<ArcSwap<RoutingTable>>,
    stopped: watch::Receiver<bool>,
    (drain, node): (Duration, Node),
) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let key = BindKey::tcp(local);
    let mut connections = JoinSet::new();
    // Turns when the drain time is over: TCP flows then reset themselves (an aborted task
    // would close its sockets with a FIN, and a cut stream would look complete).
    let (drained_flows, drain_over) = watch::channel(false);
    // Watched by one future for the loop's life, not one registered anew per connection.
    let mut stop = stopped.clone();
    let mut stop = pin!(async move {
        let _ = stop.changed().await;
    });
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let snapshot = table.load();
                    let Some(listener) = snapshot.listener(&key) else {
                        continue;
                    };
                    if !listener.door().admission.admits(peer.ip()) {
                        refuse(stream, peer, listener.door());
                        continue;
                    }
                    let stopped = stopped.clone();
                    let ends = (local, peer);
                    match listener {
                        Listener::Http(route) => match node.admit() {
                            Some(place) => l7::spawn(
                                &mut connections,
                                (stream, place),
                                ends,
                                route,
                                (table.clone(), stopped),
                            ),
                            None => {
                                if let Some(metrics) = &route.door.metrics {
                                    metrics.rejected_connections.fetch_add(1, Ordering::Relaxed);
                                }
                                connections.spawn(l7::full(stream, peer, route.clone()));
                            }
                        },
                        Listener::Tcp(route) => {
                            let flow = tcp::serve(stream, ends, route.clone(), drain_over.clone());
                            // Boxed: the task moves a pointer through its stages, not the
                            // flow's kilobyte of state (a cost each short connection pays).
                            connections.spawn(Box::pin(flow));
                        }
                        Listener::Udp(_) | Listener::Geneve(_) => {
                            unreachable!("datagram listeners are keyed by UDP sockets")
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: back off a
                    // little rather than spin.
                    warn!(%local, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    info!(%local, open = connections.len(), "listener closed; draining");
    let drained = tokio::time::timeout(drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(%local, cut = connections.len(), "drain time over; closing the rest");
        drained_flows.send_replace(true);
        // Flows reset at once; HTTP connections are cut.
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.abort_all();
    }
}

/// A client the security groups do not admit gets a reset at once: the kernel has already
/// completed the handshake, so dropping silently as AWS does would leave it hanging instead.
fn refuse(stream: TcpStream, peer: SocketAddr, door: &Door) {
    if let Some(metrics) = &door.metrics {
        metrics.rejected_connections.fetch_add(1, Ordering::Relaxed);
    }
    info!(%peer, listener = %door.listener_arn, "connection refused by the security groups");
    let _ = stream.set_zero_linger();
}

/// A listening socket at `addr`, and whether this host has the address.
fn listening(addr: SocketAddr) -> std::io::Result<(Socket, bool)> {
    let (socket, local) = bind(addr, Type::STREAM)?;
    socket.set_tcp_nodelay(true)?;
    socket.listen(1024)?;
    Ok((socket, local))
}

/// Whether the connections a listening socket accepts from now on start with quick ACKs
/// (they inherit its ACK state; set after listen(), which resets it). A listener that
/// answers what a client sends first (HTTP, TLS) turns them off: the ACK of a new
/// connection's first request rides on the answer, a packet fewer per connection, as with
/// HAProxy's HTTP listeners. The trade-off is theirs too: a client that writes a request in
/// two small writes with Nagle on waits for the delayed ACK (up to 40 ms) before the second.
/// An optimisation only: a failure changes nothing else.
fn quick_acks(listening: &Socket, on: bool) {
    let _ = listening.set_tcp_quickack(on);
}

/// A non-blocking socket of `kind` bound to `addr`, and whether this host has the address.
/// Subnets may be ranges the host does not have (a VPC of 172.28.0.0/16, as most AWS test
/// code makes): those bind with IP_FREEBIND and serve once the address is added.
fn bind(addr: SocketAddr, kind: Type) -> std::io::Result<(Socket, bool)> {
    let socket = |freebind: bool| -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), kind, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        if freebind {
            match addr {
                SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
                SocketAddr::V6(_) => socket.set_freebind_v6(true)?,
            }
        }
        socket.bind(&addr.into())?;
        Ok(socket)
    };
    match socket(false) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok((socket(true)?, false)),
        other => Ok((other?, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `quick_acks` relies on: accepted connections take the listening socket's state.
    #[test]
    fn connections_inherit_the_listening_sockets_quick_acks() {
        for on in [false, true] {
            let (socket, _) = listening("127.0.0.1:0".parse().unwrap()).unwrap();
            quick_acks(&socket, on);
            let addr = socket.local_addr().unwrap().as_socket().unwrap();
            let _client = std::net::TcpStream::connect(addr).unwrap();
            socket.set_nonblocking(false).unwrap();
            let (accepted, _) = socket.accept().unwrap();
            assert_eq!(accepted.tcp_quickack().unwrap(), on, "quick ACKs {on}");
        }
    }
}
