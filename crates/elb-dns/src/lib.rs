//! Authoritative DNS for the load balancers' names, on `--dns-listen` (UDP and TCP). Each
//! name answers with the nodes of its load balancer's healthy zones, TTL 60, following the
//! snapshot and the health view at once (see [`table`]).

mod server;
pub mod table;

use std::net::SocketAddr;
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
}

impl Dns {
    /// Binds UDP and TCP on `addr` and serves in the background.
    pub async fn serve(addr: SocketAddr) -> std::io::Result<Self> {
        let table = Arc::new(ArcSwap::from_pointee(DnsTable::default()));
        let mut server = Server::new(server::Handler {
            table: table.clone(),
        });
        server.register_socket(UdpSocket::bind(addr).await?);
        server.register_listener(TcpListener::bind(addr).await?, TCP_TIMEOUT, 64 * 1024);
        tokio::spawn(async move {
            if let Err(e) = server.block_until_done().await {
                error!(error = %e, "the DNS server stopped");
            }
        });
        Ok(Self { table })
    }

    /// Answers from now on follow `state` and `health`.
    pub fn update(&self, state: &State, health: &HealthView) {
        self.table.store(Arc::new(DnsTable::build(state, health)));
    }
}
