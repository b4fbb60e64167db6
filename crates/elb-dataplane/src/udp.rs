//! The UDP listener (NLB): the datagrams of one client address and port are a flow, sent to
//! one target chosen by the flow hash, over a socket of the flow's own connected to it. The
//! target's replies leave from the listener's socket, so the client sees them come from the
//! address and port it sent to.
//!
//! - A flow that carried no datagram either way for 120 s (AWS's fixed UDP idle timeout)
//!   ends; the client's next datagram starts a new flow, which the hash may send elsewhere.
//! - When the target turns unhealthy (or its deregistration delay ends) and the group asks
//!   for connection termination, the flow ends at once.
//! - A datagram the target socket cannot take now is dropped, as the network would.
//! - When the listener closes, its flows end with it: a datagram carries nothing to finish.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::binder::BindKey;
use crate::dial;
use crate::flow::{self, Flow};
use crate::metrics::{ActiveFlow, FlowMetrics};
use crate::table::{Listener, RoutingTable, UdpRoute};

/// AWS's idle timeout for UDP flows.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest UDP payload over IPv4.
const DATAGRAM: usize = 65_507;

/// A flow the listener knows: where its client's datagrams go.
struct Open {
    /// Tells this flow from a later one of the same client.
    id: u64,
    target: Arc<UdpSocket>,
    activity: Arc<Activity>,
    metrics: Arc<FlowMetrics>,
}

/// When a flow last moved a datagram, in milliseconds from its start.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = Instant::now().duration_since(self.start).as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }
}

/// Serves the UDP listener bound to `socket` until `stopped` turns.
pub(crate) async fn serve(
    socket: UdpSocket,
    table: Arc<ArcSwap<RoutingTable>>,
    mut stopped: watch::Receiver<bool>,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let socket = Arc::new(socket);
    let key = BindKey::udp(local);
    let mut open: HashMap<SocketAddr, Open> = HashMap::new();
    let mut tasks = JoinSet::new();
    // Flows say here when they end, so that the client's next datagram starts a new one.
    let (ended, mut endings) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut next_id = 0u64;
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            Some((client, id)) = endings.recv() => {
                if open.get(&client).is_some_and(|flow| flow.id == id) {
                    open.remove(&client);
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            ready = socket.readable() => {
                if let Err(e) = ready {
                    warn!(%local, error = %e, "UDP listener failed");
                    break;
                }
                // Everything that has arrived, without waiting for readiness in between.
                loop {
                    let (n, client) = match socket.try_recv_from(&mut buf) {
                        Ok(received) => received,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // An ICMP error of an earlier send: nothing to do for this one.
                            debug!(%local, error = %e, "UDP receive failed");
                            continue;
                        }
                    };
                    let datagram = &buf[..n];
                    if let Some(flow) = open.get(&client) {
                        forward(flow, datagram);
                        continue;
                    }
                    let snapshot = table.load();
                    let Some(Listener::Udp(route)) = snapshot.listener(&key) else {
                        continue;
                    };
                    if !route.door.admission.admits(client.ip()) {
                        debug!(%client, listener = %route.door.listener_arn, "datagram dropped by the security groups");
                        continue;
                    }
                    next_id += 1;
                    let ends = (local, client);
                    let Some((flow, relay)) = start(route, ends, next_id, &socket, &ended).await else {
                        continue;
                    };
                    // A new socket is not known to be writable until the runtime has polled
                    // it: the first datagram waits for that, where later ones would drop.
                    if flow.target.send(datagram).await.is_ok() {
                        flow.metrics.udp.processed_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    tasks.spawn(relay);
                    open.insert(client, flow);
                }
            }
        }
    }
    tasks.abort_all();
}

/// Sends a flow's datagram on to its target.
fn forward(flow: &Open, datagram: &[u8]) {
    flow.activity.touch();
    if flow.target.try_send(datagram).is_ok() {
        let bytes = datagram.len() as u64;
        flow.metrics
            .udp
            .processed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A new flow from `client`: a socket connected to the target the hash picks, and the task
/// that relays the target's replies until the flow ends. `None` when there is no target.
async fn start(
    route: &Arc<UdpRoute>,
    (local, client): (SocketAddr, SocketAddr),
    id: u64,
    listener: &Arc<UdpSocket>,
    ended: &mpsc::UnboundedSender<(SocketAddr, u64)>,
) -> Option<(Open, impl Future<Output = ()> + use<>)> {
    let flow = Flow {
        protocol: flow::UDP,
        source: client,
        destination: local,
    };
    let (endpoint, in_flight) = route.targets.for_flow(&flow).next()?;
    let preserve = route.targets.proto.preserve_client_ip;
    let source = dial::source(preserve, client.ip(), route.node_ip);
    let target = match connect(source, endpoint.addr).await {
        Ok(socket) => Arc::new(socket),
        Err(e) => {
            debug!(%client, target = %endpoint.addr, error = %e, "no socket to the target");
            return None;
        }
    };
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let relay = {
        let (target, activity, listener) = (target.clone(), activity.clone(), listener.clone());
        let mut cut = endpoint.proto.cut.clone();
        let metrics = route.flows.clone();
        let ended = ended.clone();
        let active = ActiveFlow::udp(&metrics);
        async move {
            replies(&target, &listener, client, &activity, &mut cut, &metrics).await;
            drop((active, in_flight));
            let _ = ended.send((client, id));
        }
    };
    Some((
        Open {
            id,
            target,
            activity,
            metrics: route.flows.clone(),
        },
        relay,
    ))
}

thread_local! {
    /// Where replies are read: one buffer per thread rather than one per flow.
    static REPLY: RefCell<Vec<u8>> = RefCell::new(vec![0u8; DATAGRAM]);
}

/// Sends on to `client` what the target has sent, without waiting; the bytes it passed on.
/// A reply the listener's socket cannot take now is dropped, as the network would.
fn pass_replies(
    target: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    buf: &mut [u8],
) -> u64 {
    let mut moved = 0;
    loop {
        match target.try_recv(buf) {
            Ok(n) => {
                if listener.try_send_to(&buf[..n], client).is_ok() {
                    moved += n as u64;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return moved,
            // The target's port is closed (ICMP unreachable): what it would have said is
            // lost, as on a network; the flow lives until it idles out.
            Err(e) => {
                debug!(%client, error = %e, "target unreachable");
                return moved;
            }
        }
    }
}

/// A UDP socket from `source` (any port) connected to `target`.
async fn connect(source: IpAddr, target: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(source, 0)).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends the target's datagrams to `client` from the listener's socket until the flow idles
/// out or is cut. An idle flow holds no buffer: replies are read into the thread's.
async fn replies(
    target: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    activity: &Activity,
    cut: &mut watch::Receiver<bool>,
    metrics: &FlowMetrics,
) {
    let deadline = sleep_until(activity.start + IDLE_TIMEOUT);
    tokio::pin!(deadline);
    let mut cut_open = true;
    loop {
        tokio::select! {
            ready = target.readable() => {
                if ready.is_err() {
                    return;
                }
                let moved = REPLY.with_borrow_mut(|buf| pass_replies(target, listener, client, buf));
                if moved > 0 {
                    activity.touch();
                    metrics.udp.processed_bytes.fetch_add(moved, Ordering::Relaxed);
                }
            },
            changed = cut.changed(), if cut_open => match changed {
                Ok(()) if *cut.borrow() => return,
                Ok(()) => {}
                Err(_) => cut_open = false,
            },
            () = &mut deadline => {
                let last = activity.start + Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
                if last + IDLE_TIMEOUT <= Instant::now() {
                    return;
                }
                deadline.as_mut().reset(last + IDLE_TIMEOUT);
            }
        }
    }
}
