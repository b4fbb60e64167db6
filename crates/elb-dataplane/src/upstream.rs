//! Connections to HTTPS and HTTP/2 targets, through hyper-util's client: one per node and
//! kind, leaving from the node's own address as an ELB node's connections do. Plain HTTP/1.1,
//! the hot path, has the node's own pools (`pool`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::l7::idle::NotedBody;
use crate::pool::{CONNECT_TIMEOUT, IDLE};

/// SETTINGS_MAX_HEADER_LIST_SIZE to HTTP/2 targets: ALB's 32 KB response head (checked as the
/// response comes), plus the 32 bytes HTTP/2 counts per field for a thousand fields. hyper's
/// default, 16 KB, failed heads ALB passes on.
const HTTP2_RESPONSE_HEADER_LIST: u32 = (32 + 32) * 1024;

/// A node's clients for the targets its own pools (`pool`, plain HTTP/1.1) do not serve:
/// HTTP/1.1 over TLS (HTTPS target groups) and HTTP/2 (prior knowledge in clear, ALPN over
/// TLS), each apart so that no path pays for another.
#[derive(Clone)]
pub(crate) struct Upstream {
    pub(crate) https: Client<HttpsConnector<HttpConnector>, NotedBody>,
    pub(crate) h2: Client<HttpConnector, NotedBody>,
    pub(crate) h2s: Client<HttpsConnector<HttpConnector>, NotedBody>,
}

impl Upstream {
    /// Clients that connect from `v4`, or from `v6` to IPv6 targets where the node has one.
    pub(crate) fn new((v4, v6): (Ipv4Addr, Option<Ipv6Addr>)) -> Self {
        let mut connector = HttpConnector::new();
        match v6 {
            Some(v6) => connector.set_local_addresses(v4, v6),
            None => connector.set_local_address(Some(IpAddr::V4(v4))),
        }
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(IDLE);
        let mut tls_connector = connector.clone();
        tls_connector.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_only()
            .enable_http1()
            .wrap_connector(tls_connector.clone());
        let h2s = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config().as_ref().clone())
            .https_only()
            .enable_http2()
            .wrap_connector(tls_connector);
        let mut h2_builder = builder.clone();
        h2_builder
            .http2_only(true)
            .http2_max_header_list_size(HTTP2_RESPONSE_HEADER_LIST);
        Self {
            https: builder.build(https),
            h2: h2_builder.build(connector),
            h2s: h2_builder.build(h2s),
        }
    }
}

/// One client configuration for every node: targets' certificates are not verified (AWS does
/// not verify them either).
fn tls_config() -> &'static Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| elb_tls::client::target_config(&[]))
}
