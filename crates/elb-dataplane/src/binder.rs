//! Listening sockets: one per (address, transport, port), whatever protocol is served on it.
//!
//! Sockets are opened with SO_REUSEPORT so that a new elbd process can bind the same
//! addresses before the old one lets go (restarts without refused connections). Closing a
//! socket starts the drain: no new connections, open ones finish their requests within the
//! drain time, and whatever is left is cut. The same drain serves listener removal and
//! shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Socket, Type};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Applied;
use crate::l7;
use crate::table::RoutingTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
}

/// What a socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindKey {
    pub addr: SocketAddr,
    pub transport: Transport,
}

struct Bound {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Whether this host has the address (bound without IP_FREEBIND).
    local: bool,
}

pub(crate) struct Binder {
    table: Arc<ArcSwap<RoutingTable>>,
    drain: Duration,
    bound: HashMap<BindKey, Bound>,
}

impl Binder {
    pub(crate) fn new(table: Arc<ArcSwap<RoutingTable>>, drain: Duration) -> Self {
        Self {
            table,
            drain,
            bound: HashMap::new(),
        }
    }

    pub(crate) fn is_bound(&self, addr: SocketAddr) -> bool {
        self.bound.keys().any(|k| k.addr == addr)
    }

    /// Whether `addr` is bound to an address this host does not have (yet).
    pub(crate) fn is_waiting_for_address(&self, addr: SocketAddr) -> bool {
        self.bound.iter().any(|(k, b)| k.addr == addr && !b.local)
    }

    /// Closes every socket not in `wanted`; their connections drain in the background.
    pub(crate) fn unbind_except(&mut self, wanted: &[BindKey]) -> Vec<SocketAddr> {
        let gone: Vec<BindKey> = self
            .bound
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in &gone {
            let bound = self.bound.remove(key).expect("listed above");
            bound.stop.send_replace(true);
        }
        gone.into_iter().map(|k| k.addr).collect()
    }

    /// Opens a socket for every key of `wanted` that has none.
    pub(crate) fn bind_missing(&mut self, wanted: &[BindKey]) -> Applied {
        let mut applied = Applied::default();
        for key in wanted {
            if self.bound.contains_key(key) {
                continue;
            }
            match listen(key.addr) {
                Ok((listener, local)) => {
                    let (stop, stopped) = watch::channel(false);
                    let task =
                        tokio::spawn(l7::serve(listener, self.table.clone(), stopped, self.drain));
                    self.bound.insert(*key, Bound { stop, task, local });
                    applied.bound.push(key.addr);
                    if !local {
                        applied.not_local.push(key.addr);
                    }
                }
                Err(e) => applied.failed.push((key.addr, e)),
            }
        }
        applied
    }

    /// Closes every socket and waits for the drains to end.
    pub(crate) async fn shutdown(mut self) {
        let all: Vec<Bound> = self.bound.drain().map(|(_, b)| b).collect();
        for b in &all {
            b.stop.send_replace(true);
        }
        for b in all {
            let _ = b.task.await;
        }
    }
}

/// A listening socket at `addr`, and whether this host has the address. Subnets may be
/// ranges the host does not have (a VPC of 172.28.0.0/16, as most AWS test code makes): those
/// bind with IP_FREEBIND and serve once the address is added.
fn listen(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, bool)> {
    let socket = |freebind: bool| -> std::io::Result<Socket> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if freebind {
            match addr {
                SocketAddr::V4(_) => socket.set_freebind_v4(true)?,
                SocketAddr::V6(_) => socket.set_freebind_v6(true)?,
            }
        }
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(socket)
    };
    let (socket, local) = match socket(false) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => (socket(true)?, false),
        other => (other?, true),
    };
    Ok((tokio::net::TcpListener::from_std(socket.into())?, local))
}
