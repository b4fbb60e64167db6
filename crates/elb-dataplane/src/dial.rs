//! Sockets to targets, from a chosen source address.
//!
//! The port is left to `connect` (IP_BIND_ADDRESS_NO_PORT, as HAProxy does): a plain
//! `bind(ip, 0)` would reserve an ephemeral port for the socket whatever its destination,
//! capping each source address at about 28,000 flows in all and failing on ports in
//! TIME_WAIT; chosen at connect, a port need only make the 4-tuple unique.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use tokio::net::{TcpSocket, TcpStream};

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
