//! The two directions of a gateway's packets.
//!
//! - `carry` (one task per endpoint): a packet read from the endpoint's interface is keyed to
//!   its flow, which names the appliance (the flow table is the task's own: both directions
//!   of a flow enter by the same endpoint); AWS's options go in front of it, and it leaves
//!   from the node's address and port 6081 for the appliance's port 6081.
//! - `serve` (the node's listener kind, UDP 6081): a packet an appliance returns must carry
//!   the options it was sent (a known endpoint of this node, its attachment, its flow's
//!   cookie) and come from one of the endpoint's appliances; its inner packet then goes into
//!   the endpoint's interface. Anything else is dropped and counted.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use elb_wire::geneve::{self, AwsOptions, HEADER_LEN};
use elb_wire::ip::{self, Family};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{Instant, interval};
use tracing::{debug, warn};

use super::Shared;
use super::flows::{FlowKey, FlowTable};
use super::tun::Tun;
use crate::binder::BindKey;
use crate::metrics::{GatewayMetrics, count};
use crate::table::{EndpointRoute, Listener, RoutingTable};

/// Packets handled per wake-up, so that stopping and idle sweeps are heard however busy.
const BATCH: usize = 64;
/// How often idle flows are forgotten.
const SWEEP: Duration = Duration::from_secs(1);
/// Room for a GENEVE packet of the largest inner packet, and then some: a longer datagram
/// is cut short and fails to decode rather than overflow.
const DATAGRAM: usize = 65_536;

/// Carries the packets of endpoint `route.id`'s interface to its appliances until `stopped`.
pub(super) async fn carry(
    route: Arc<EndpointRoute>,
    tun: Arc<Tun>,
    table: Arc<ArcSwap<RoutingTable>>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    adopting: bool,
) {
    let start = Instant::now();
    let mut flows = if adopting {
        FlowTable::adopting(route.seed)
    } else {
        FlowTable::new(route.seed)
    };
    // The node's ActiveFlowCount holds this table's flows: `counted` of them, in `metrics`.
    let mut metrics = route.metrics.clone();
    let mut counted = 0;
    // Room for the largest packet whatever the interface's MTU was set to since.
    let mut buf = vec![0u8; HEADER_LEN + usize::from(u16::MAX)];
    let mut sweep = interval(SWEEP);
    let mut current = Current::default();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            _ = sweep.tick() => {
                flows.expire(start.elapsed().as_millis() as u64);
                // Counted on the node's current metrics, idle or not.
                if let Some(route) = current.route(&table, &route.id)
                    && !Arc::ptr_eq(&metrics, &route.metrics)
                {
                    recount(&metrics, &route.metrics, counted);
                    metrics = route.metrics.clone();
                }
            }
            read = tun.recv_batch(&mut buf, HEADER_LEN, BATCH, |buf, n| {
                // The current table's route: the appliances and where they stand change.
                let Some(route) = current.route(&table, &route.id) else {
                    return;
                };
                if !Arc::ptr_eq(&metrics, &route.metrics) {
                    recount(&metrics, &route.metrics, counted);
                    metrics = route.metrics.clone();
                }
                send(route, &mut flows, &shared, buf, n, start.elapsed().as_millis() as u64);
            }) => {
                if let Err(e) = read {
                    warn!(endpoint = %route.id, error = %e, "endpoint interface failed");
                    break;
                }
            }
        }
        let active = flows.len() as u64;
        if active != counted {
            // Two's complement: adds the difference, whichever its sign.
            let change = active.wrapping_sub(counted);
            metrics.active_flows.fetch_add(change, Ordering::Relaxed);
            counted = active;
        }
    }
    metrics.active_flows.fetch_sub(counted, Ordering::Relaxed);
}

/// An endpoint's route in the current table, looked up again only when the table changes
/// (a load and a pointer comparison per packet, not a lookup by id). The table is held
/// weakly: one the data plane has let go of is not kept alive, and its address is not reused
/// while the weak reference lives.
#[derive(Default)]
struct Current {
    table: Weak<RoutingTable>,
    route: Option<Arc<EndpointRoute>>,
}

impl Current {
    fn route(&mut self, table: &ArcSwap<RoutingTable>, id: &str) -> Option<&Arc<EndpointRoute>> {
        let snapshot = table.load();
        if !std::ptr::eq(self.table.as_ptr(), Arc::as_ptr(&snapshot)) {
            self.table = Arc::downgrade(&snapshot);
            self.route = snapshot.endpoint(id).cloned();
        }
        self.route.as_ref()
    }
}

/// Moves `counted` flows from one node's metrics to another's (the node was made anew).
fn recount(from: &GatewayMetrics, to: &GatewayMetrics, counted: u64) {
    from.active_flows.fetch_sub(counted, Ordering::Relaxed);
    to.active_flows.fetch_add(counted, Ordering::Relaxed);
}

/// Sends the packet in `buf[HEADER_LEN..HEADER_LEN + n]` to its flow's appliance, AWS's
/// options written in front of it.
fn send(
    route: &EndpointRoute,
    flows: &mut FlowTable,
    shared: &Shared,
    buf: &mut [u8],
    n: usize,
    now_ms: u64,
) {
    let metrics = &route.metrics;
    let packet = &buf[HEADER_LEN..HEADER_LEN + n];
    let chosen = ip::headers(packet).ok().and_then(|flow| {
        let chosen = flows.route(&flow, &route.policy, &route.appliances, now_ms)?;
        Some((family_of(flow.source), chosen))
    });
    let socket = route
        .node_ip
        .and_then(|ip| shared.sockets.load().get(&ip).cloned());
    let (Some((family, chosen)), Some(socket)) = (chosen, socket) else {
        count(&metrics.undeliverable);
        return;
    };
    if chosen.new {
        count(&metrics.new_flows);
    }
    let options = AwsOptions {
        endpoint_id: route.endpoint_id,
        attachment_id: route.attachment_id,
        flow_cookie: chosen.cookie,
    };
    buf[..HEADER_LEN].copy_from_slice(&geneve::header(&options, family));
    match socket.try_send_to(&buf[..HEADER_LEN + n], chosen.appliance) {
        Ok(_) => {
            metrics
                .processed_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(e) => {
            count(&metrics.undeliverable);
            if e.kind() != ErrorKind::WouldBlock {
                debug!(appliance = %chosen.appliance, error = %e, "GENEVE send failed");
            }
        }
    }
}

fn family_of(ip: IpAddr) -> Family {
    match ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// Serves the GENEVE listener of a gateway node bound to `socket` until `stopped`: what its
/// appliances return goes into its endpoints' interfaces. (The binder publishes the socket
/// for the endpoints to send from.)
pub(crate) async fn serve(
    socket: Arc<UdpSocket>,
    table: Arc<ArcSwap<RoutingTable>>,
    mut stopped: watch::Receiver<bool>,
    shared: Arc<Shared>,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let key = BindKey::geneve(local);
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            ready = socket.readable() => {
                if let Err(e) = ready {
                    warn!(%local, error = %e, "GENEVE listener failed");
                    break;
                }
                let snapshot = table.load();
                // Between snapshots the socket may outlive its listener: what comes is read
                // and dropped, so that readiness clears.
                let route = match snapshot.listener(&key) {
                    Some(Listener::Geneve(route)) => Some(route),
                    _ => None,
                };
                let interfaces = shared.interfaces.load();
                for _ in 0..BATCH {
                    let (n, from) = match socket.try_recv_from(&mut buf) {
                        Ok(received) => received,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            debug!(%local, error = %e, "GENEVE receive failed");
                            break;
                        }
                    };
                    let Some(route) = route else {
                        continue;
                    };
                    let metrics = &route.metrics;
                    let (endpoint_id, inner) = match returned(&buf[..n], from, &route.endpoints) {
                        Ok(accepted) => accepted,
                        Err(Refusal::Malformed) => {
                            count(&metrics.malformed);
                            continue;
                        }
                        Err(Refusal::Mismatched) => {
                            count(&metrics.mismatched);
                            continue;
                        }
                    };
                    match interfaces.get(&endpoint_id).map(|tun| tun.send(inner)) {
                        Some(Ok(_)) => {
                            let bytes = inner.len() as u64;
                            metrics.processed_bytes.fetch_add(bytes, Ordering::Relaxed);
                        }
                        _ => count(&metrics.undeliverable),
                    }
                }
            }
        }
    }
}

/// Why a returned packet is dropped.
enum Refusal {
    /// Not GENEVE as AWS speaks it.
    Malformed,
    /// Not what was sent, or not from an appliance.
    Mismatched,
}

/// A returned packet's endpoint and inner packet, if it is what that endpoint's appliances
/// were sent: AWS's options, the endpoint's attachment, the cookie of the inner packet's
/// flow, from one of its appliances.
fn returned<'a>(
    datagram: &'a [u8],
    from: SocketAddr,
    endpoints: &HashMap<u64, Arc<EndpointRoute>>,
) -> Result<(u64, &'a [u8]), Refusal> {
    let packet = geneve::decode(datagram).map_err(|_| Refusal::Malformed)?;
    let options = packet.options;
    let endpoint = endpoints
        .get(&options.endpoint_id)
        .ok_or(Refusal::Mismatched)?;
    let flow = ip::headers(packet.inner).map_err(|_| Refusal::Malformed)?;
    let cookie = FlowKey::new(&flow, endpoint.policy.stickiness).cookie(endpoint.seed);
    let from_appliance = endpoint.appliances.iter().any(|(a, _)| a.ip() == from.ip());
    if options.attachment_id != endpoint.attachment_id
        || options.flow_cookie != cookie
        || !from_appliance
    {
        return Err(Refusal::Mismatched);
    }
    Ok((options.endpoint_id, packet.inner))
}
