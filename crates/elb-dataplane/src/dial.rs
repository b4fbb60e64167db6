//! Sockets to targets, from a chosen source: the node's address, or the client's.
//!
//! From the node, the port is left to `connect` (IP_BIND_ADDRESS_NO_PORT, as HAProxy does): a
//! plain `bind(ip, 0)` would reserve an ephemeral port for the socket whatever its
//! destination, capping each source address at about 28,000 flows in all and failing on ports
//! in TIME_WAIT; chosen at connect, a port need only make the 4-tuple unique.
//!
//! From the client (`preserve_client_ip.enabled`): a client address this host has, as every
//! 127/8 address on loopback, keeps its address but not its port, which the client's own
//! socket holds. Any other is kept, address and port, only when elbd runs with
//! `--transparent-client-ip`: the socket is bound with IP_TRANSPARENT, as HAProxy's `usesrc
//! clientip` and NLB do, and since the target's answers are addressed to the client, the
//! hosts must route them back to elbd and deliver them locally (README, "Client IP
//! preservation"). Without that, such flows leave from the node's address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tracing::warn;

/// Where a flow to a target leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The node's address.
    Node(IpAddr),
    /// The client's address, which this host has (loopback).
    ClientAddress(IpAddr),
    /// The client's address and port through a transparent socket, or the node's address
    /// where elbd may not make one.
    Transparent { client: SocketAddr, node: IpAddr },
}

impl Source {
    /// The source of a group's flows: with `preserve_client_ip.enabled`, the client's as far
    /// as this host can (`transparent`: elbd runs with `--transparent-client-ip`).
    pub(crate) fn new(
        (preserve_client_ip, transparent): (bool, bool),
        client: SocketAddr,
        node: IpAddr,
    ) -> Self {
        // An IPv6 client of a dual-stack node reaches IPv4 targets from the node's address,
        // as AWS's do (and the other way round).
        if !preserve_client_ip || client.is_ipv6() != node.is_ipv6() {
            return Self::Node(node);
        }
        if client.ip().is_loopback() {
            return Self::ClientAddress(client.ip());
        }
        if transparent {
            return Self::Transparent { client, node };
        }
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!(%client, "preserve_client_ip.enabled: keeping a client's address this host \
                   lacks takes --transparent-client-ip; flows leave from the node's address");
        }
        Self::Node(node)
    }

    /// Binds `socket` to this source.
    fn bind(self, socket: &SockRef<'_>) -> io::Result<()> {
        let ip = match self {
            Self::Node(ip) | Self::ClientAddress(ip) => ip,
            Self::Transparent { client, node } => match bind_transparent(socket, client) {
                Ok(()) => return Ok(()),
                // The client's port is held here (a flow from it still in TIME_WAIT): its
                // address will do.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => client.ip(),
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    static WARNED: AtomicBool = AtomicBool::new(false);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        warn!(%client, "--transparent-client-ip: a transparent socket needs \
                               CAP_NET_ADMIN; flows leave from the node's address");
                    }
                    node
                }
                Err(e) => return Err(e),
            },
        };
        no_port(socket)?;
        socket.bind(&SocketAddr::new(ip, 0).into())
    }
}

/// Binds to the client's address and port with IP_TRANSPARENT.
fn bind_transparent(socket: &SockRef<'_>, client: SocketAddr) -> io::Result<()> {
    match client {
        SocketAddr::V4(_) => socket.set_ip_transparent_v4(true)?,
        SocketAddr::V6(_) => socket.set_ip_transparent_v6(true)?,
    }
    socket.bind(&client.into())
}

fn no_port(socket: &SockRef<'_>) -> io::Result<()> {
    Ok(setsockopt(&**socket, sockopt::IpBindAddressNoPort, &true)?)
}

/// A TCP connection to `target` from `source`, within `timeout`.
pub(crate) async fn connect(
    source: Source,
    target: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_nodelay(true)?;
    source.bind(&SockRef::from(&socket))?;
    tokio::time::timeout(timeout, socket.connect(target))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A UDP socket from `source` connected to `target`, with `first` sent on it. Sent before
/// the runtime takes the socket, which would not know it writable until its next poll: a new
/// socket's send buffer is empty, so the send does not block.
pub(crate) fn udp(source: Source, target: SocketAddr, first: &[u8]) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(target), Type::DGRAM, None)?;
    source.bind(&SockRef::from(&socket))?;
    socket.connect(&target.into())?;
    socket.set_nonblocking(true)?;
    socket.send(first)?;
    UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_of_the_other_family_leaves_from_the_node() {
        let node: IpAddr = "127.80.1.253".parse().unwrap();
        let v4: SocketAddr = "127.0.0.9:5000".parse().unwrap();
        let v6: SocketAddr = "[::1]:5000".parse().unwrap();
        let preserving = (true, false);
        assert_eq!(
            Source::new(preserving, v4, node),
            Source::ClientAddress(v4.ip())
        );
        assert_eq!(Source::new(preserving, v6, node), Source::Node(node));
        assert_eq!(Source::new((false, false), v4, node), Source::Node(node));
    }
}
