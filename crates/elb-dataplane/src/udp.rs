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
use std::net::SocketAddr;
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
use crate::dial::{self, Source};
use crate::flow::{self, Flow};
use crate::metrics::{ActiveFlow, FlowKind, FlowMetrics};
use crate::table::{Listener, RoutingTable, UdpRoute};

/// AWS's idle timeout for UDP flows.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Room for the largest UDP payload (65,507 bytes over IPv4, 65,527 over IPv6).
const DATAGRAM: usize = 65_536;
/// Datagrams read per wake-up: between batches the listener hears of ended flows and of its
/// own closing, however busy it is.
const BATCH: usize = 64;
/// Flows one listener keeps at once. Each holds a socket (a descriptor and a port) for up to
/// 120 s, and new client ports cost nothing to forge: past this, new flows are refused until
/// some end, rather than running the process out of descriptors.
const MAX_FLOWS: usize = 16_384;

/// A flow the listener knows: where its client's datagrams go.
struct OpenFlow {
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
    let mut open: HashMap<SocketAddr, OpenFlow> = HashMap::new();
    let mut tasks = JoinSet::new();
    // Flows say here when they end, so that the client's next datagram starts a new one.
    let (ended, mut endings) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut next_id = 0u64;
    // Whether new flows are being refused (warned once per spell).
    let mut full = false;
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
                for _ in 0..BATCH {
                    let (n, client) = match socket.try_recv_from(&mut buf) {
                        Ok(received) => received,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            debug!(%local, error = %e, "UDP receive failed");
                            break;
                        }
                    };
                    let datagram = &buf[..n];
                    if let Some(flow) = open.get(&client) {
                        forward(flow, datagram);
                        continue;
                    }
                    if open.len() >= MAX_FLOWS {
                        if !full {
                            warn!(%local, "UDP listener at {MAX_FLOWS} flows; new clients are dropped until some end");
                        }
                        full = true;
                        continue;
                    }
                    full = false;
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
                    if let Some((flow, relay)) = start(route, ends, next_id, &socket, &ended, datagram) {
                        tasks.spawn(relay);
                        open.insert(client, flow);
                    }
                }
            }
        }
    }
    tasks.abort_all();
}

/// Sends a flow's datagram on to its target.
fn forward(flow: &OpenFlow, datagram: &[u8]) {
    flow.activity.touch();
    if flow.target.try_send(datagram).is_ok() {
        let bytes = datagram.len() as u64;
        flow.metrics
            .udp
            .processed_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A new flow from `client` whose first datagram is `first`: a socket connected to the
/// target the hash picks (`first` already sent on it), and the task that relays the target's
/// replies until the flow ends. `None` when there is no target or no socket.
fn start(
    route: &Arc<UdpRoute>,
    (local, client): (SocketAddr, SocketAddr),
    id: u64,
    listener: &Arc<UdpSocket>,
    ended: &mpsc::UnboundedSender<(SocketAddr, u64)>,
    first: &[u8],
) -> Option<(OpenFlow, impl Future<Output = ()> + use<>)> {
    let flow = Flow {
        protocol: flow::UDP,
        source: client,
        destination: local,
    };
    let (endpoint, in_flight) = route.targets.for_flow(&flow).next()?;
    let group = &route.targets.proto;
    let source = Source::new(
        (group.preserve_client_ip, group.transparent),
        client,
        route.source_ip,
    );
    let target = match dial::udp(source, endpoint.addr, first) {
        Ok(socket) => Arc::new(socket),
        Err(e) => {
            debug!(%client, target = %endpoint.addr, error = %e, "no socket to the target");
            return None;
        }
    };
    let metrics = &route.flows.udp;
    metrics
        .processed_bytes
        .fetch_add(first.len() as u64, Ordering::Relaxed);
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let relay = {
        let (target, activity, listener) = (target.clone(), activity.clone(), listener.clone());
        let mut cut = endpoint.proto.cut.clone();
        let metrics = route.flows.clone();
        let ended = ended.clone();
        let active = ActiveFlow::new(&metrics, FlowKind::Udp);
        async move {
            replies(&target, &listener, client, &activity, &mut cut, &metrics).await;
            drop((active, in_flight));
            let _ = ended.send((client, id));
        }
    };
    Some((
        OpenFlow {
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

/// Sends on to `client` what the target has sent, at most a batch, without waiting; the
/// bytes it passed on. A reply the listener's socket cannot take now is dropped, as the
/// network would.
fn pass_replies(
    target: &UdpSocket,
    listener: &UdpSocket,
    client: SocketAddr,
    buf: &mut [u8],
) -> u64 {
    let mut moved = 0;
    for _ in 0..BATCH {
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
    moved
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A flow's two sockets: (the target's, the flow's connected to it), and the listener's
    /// with the client's connected to it.
    async fn sockets() -> ([UdpSocket; 2], [UdpSocket; 2]) {
        let bind = || UdpSocket::bind("127.0.0.1:0");
        let (target, flow, listener, client) = (bind(), bind(), bind(), bind());
        let (target, flow, listener, client) = (
            target.await.unwrap(),
            flow.await.unwrap(),
            listener.await.unwrap(),
            client.await.unwrap(),
        );
        flow.connect(target.local_addr().unwrap()).await.unwrap();
        client
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        ([target, flow], [listener, client])
    }

    /// A new flow's activity, cut signal and metrics.
    fn fresh() -> (
        Activity,
        (watch::Sender<bool>, watch::Receiver<bool>),
        FlowMetrics,
    ) {
        let activity = Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        };
        (activity, watch::channel(false), FlowMetrics::default())
    }

    #[tokio::test(start_paused = true)]
    async fn replies_reach_the_client_and_a_quiet_flow_ends_after_120_s() {
        let ([target, flow], [listener, client]) = sockets().await;
        let (activity, (_cut, mut cut_rx), metrics) = fresh();
        let client_addr = client.local_addr().unwrap();
        let relay = replies(
            &flow,
            &listener,
            client_addr,
            &activity,
            &mut cut_rx,
            &metrics,
        );
        let exchange = async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            target
                .send_to(b"pong", flow.local_addr().unwrap())
                .await
                .unwrap();
            let mut buf = [0u8; 8];
            let n = client.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"pong", "the reply leaves from the listener");
        };
        let started = Instant::now();
        tokio::join!(relay, exchange);
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_secs(220) && lasted < Duration::from_secs(222),
            "120 s after the reply at 100 s: {lasted:?}"
        );
        assert_eq!(metrics.udp.processed_bytes.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn a_cut_ends_the_flow() {
        let ([_target, flow], [listener, client]) = sockets().await;
        let (activity, (cut, mut cut_rx), metrics) = fresh();
        let client_addr = client.local_addr().unwrap();
        cut.send_replace(true);
        let relay = replies(
            &flow,
            &listener,
            client_addr,
            &activity,
            &mut cut_rx,
            &metrics,
        );
        tokio::time::timeout(Duration::from_secs(5), relay)
            .await
            .expect("the cut flow ended");
    }
}
