//! Sockets to targets, from a chosen source address: the node's or the client's.
//!
//! The port is left to `connect` (IP_BIND_ADDRESS_NO_PORT, as HAProxy does): a plain
//! `bind(ip, 0)` would reserve an ephemeral port for the socket whatever its destination,
//! capping each source address at about 28,000 flows in all and failing on ports in
//! TIME_WAIT; chosen at connect, a port need only make the 4-tuple unique.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpSocket, TcpStream};
use tracing::warn;

/// Where a flow to a target leaves from: the node's address, or when the group preserves the
/// client's (`preserve_client_ip.enabled`) the client's if this host has it (every 127/8
/// address on loopback). A client address the host lacks would need a transparent socket
/// and routes that bring the target's answers back through elbd, which are not built: such
/// flows leave from the node's address, and the first one says so in the log.
pub(crate) fn source(preserve_client_ip: bool, client: IpAddr, node: IpAddr) -> IpAddr {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !preserve_client_ip {
        return node;
    }
    if client.is_loopback() {
        return client;
    }
    if !WARNED.swap(true, Ordering::Relaxed) {
        warn!(%client, "preserve_client_ip.enabled: this host does not have the client's \
               address; flows leave from the node's address");
    }
    node
}

/// A TCP connection to `target` from `source`, within `timeout`.
pub(crate) async fn connect(
    source: IpAddr,
    target: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_nodelay(true)?;
    setsockopt(&socket, sockopt::IpBindAddressNoPort, &true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    tokio::time::timeout(timeout, socket.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}
