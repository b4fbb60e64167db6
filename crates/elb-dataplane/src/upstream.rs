//! Connections to targets: one keep-alive pool per node, leaving from the node's own address
//! as an ELB node's connections do.

use std::net::IpAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// AWS gives up connecting to a target after 10 s (and answers 504).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle pooled connections are closed before a target's usual 60 s keep-alive would close
/// them under us.
const POOL_IDLE: Duration = Duration::from_secs(50);

#[derive(Clone)]
pub(crate) struct Upstream {
    pub(crate) client: Client<HttpConnector, Incoming>,
}

impl Upstream {
    pub(crate) fn new(local: IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(local));
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Self { client }
    }
}
