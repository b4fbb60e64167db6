//! Authoritative DNS for the load balancers' names, on `--dns-listen` (UDP and TCP). Each
//! name answers with the nodes of its load balancer's healthy zones, TTL 60, following the
//! snapshot and the health view at once (see [`table`]).

mod server;
pub mod table;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use elb_model::{HealthView, State};
use hickory_server::Server;
use tokio::net::{TcpListener, UdpSocket};
use tracing::error;

pub use table::{DnsTable, Lookup};

/// How long a TCP client may stay idle.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// The running DNS server; [`Dns::update`] swaps in new answers.
pub struct Dns {
    table: Arc<ArcSwap<DnsTable>>,
    addr: SocketAddr,
    /// Other descriptors of its sockets, for a process taking over.
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
}

impl Dns {
    /// Binds UDP and TCP on `addr` and serves in the background.
    pub async fn serve(addr: SocketAddr) -> std::io::Result<Self> {
        let udp = std::net::UdpSocket::bind(addr)?;
        let tcp = std::net::TcpListener::bind(addr)?;
        Self::serve_on(udp.into(), tcp.into())
    }

    /// Serves on sockets bound already (a process handing over had them).
    pub fn serve_on(udp: OwnedFd, tcp: OwnedFd) -> std::io::Result<Self> {
        let (udp, tcp) = (
            std::net::UdpSocket::from(udp),
            std::net::TcpListener::from(tcp),
        );
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let table = Arc::new(ArcSwap::from_pointee(DnsTable::default()));
        let mut server = Server::new(server::Handler {
            table: table.clone(),
        });
        server.register_socket(UdpSocket::from_std(udp.try_clone()?)?);
        let listener = TcpListener::from_std(tcp.try_clone()?)?;
        server.register_listener(listener, TCP_TIMEOUT, 64 * 1024);
        tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                error!(error = %e, "the DNS server stopped");
            }
        });
        let addr = udp.local_addr()?;
        Ok(Self {
            table,
            addr,
            udp,
            tcp,
        })
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Other descriptors of its UDP and TCP sockets, for a process taking over (this one
    /// answers on them until it exits).
    pub fn sockets(&self) -> std::io::Result<(OwnedFd, OwnedFd)> {
        Ok((self.udp.try_clone()?.into(), self.tcp.try_clone()?.into()))
    }

    /// Answers from now on follow `state` and `health`.
    pub fn update(&self, state: &State, health: &HealthView) {
        self.table.store(Arc::new(DnsTable::build(state, health)));
    }
}
