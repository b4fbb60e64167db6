//! The TCP listener (NLB): each accepted connection is a flow to one target, chosen by the
//! flow hash, with bytes copied both ways until both sides have closed.
//!
//! - A half-close is relayed: a side that stops sending gets its peer's write side shut, and
//!   the other direction goes on.
//! - A flow idle past the listener's `tcp.idle_timeout.seconds` is closed with a reset on both
//!   sides, as an NLB resets data on an expired flow.
//! - When the target turns unhealthy (or its deregistration delay ends) and the group asks for
//!   connection termination, the flow is reset.
//! - A target that refuses the connection is passed over for the next in the flow's ranking,
//!   as HAProxy redispatches, so a flow fails only when no target can be reached.
//!
//! An idle flow holds no buffer: each direction waits for readiness and borrows a spare
//! buffer only while it has bytes to move.

pub mod flow;

use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use socket2::SockRef;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, warn};

use crate::spare;
use crate::table::TcpRoute;
use flow::Flow;

/// How long a target gets to accept a connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many targets a flow tries before it gives up.
const ATTEMPTS: usize = 3;

/// Serves one accepted client connection of a TCP listener: connects to a target and relays
/// until the flow ends. The route is the one current at accept, for the flow's whole life.
pub(crate) async fn serve(
    client: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    route: Arc<TcpRoute>,
) {
    let flow = Flow {
        protocol: flow::TCP,
        source: peer,
        destination: local,
    };
    let source = if route.targets.proto.preserve_client_ip {
        peer.ip()
    } else {
        route.node_ip
    };
    let mut connected = None;
    for (endpoint, in_flight) in route.targets.for_flow(&flow).take(ATTEMPTS) {
        match connect(source, endpoint.addr).await {
            Ok(target) => {
                connected = Some((target, endpoint.proto.cut.clone(), in_flight));
                break;
            }
            Err(e) => debug!(%peer, target = %endpoint.addr, error = %e, "target not reached"),
        }
    }
    let Some((target, cut, _in_flight)) = connected else {
        // No target, or none reachable: the client gets a reset, as from an NLB.
        debug!(%peer, %local, "no target for the flow; reset");
        let _ = client.set_zero_linger();
        return;
    };
    match relay(&client, &target, route.idle_timeout, cut).await {
        End::Closed => {}
        end => {
            debug!(%peer, %local, ?end, "flow reset");
            let _ = client.set_zero_linger();
            let _ = target.set_zero_linger();
        }
    }
}

/// A connection to `target` from `source` (any port).
async fn connect(source: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_nodelay(true)?;
    if let Err(e) = socket.bind(SocketAddr::new(source, 0)) {
        // The client's own address is local only on loopback; elsewhere it needs a
        // transparent socket, which needs CAP_NET_ADMIN.
        if e.kind() != ErrorKind::AddrNotAvailable {
            return Err(e);
        }
        let sock = SockRef::from(&socket);
        match source {
            IpAddr::V4(_) => sock.set_ip_transparent_v4(true),
            IpAddr::V6(_) => Err(io::Error::other("no transparent IPv6 sockets")),
        }
        .map_err(|t| {
            warn!(%source, error = %t, "preserve_client_ip.enabled: cannot send from the client's address");
            e
        })?;
        socket.bind(SocketAddr::new(source, 0))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| io::Error::new(ErrorKind::TimedOut, "connect timed out"))?
}

/// How a flow ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Both sides closed.
    Closed,
    /// A side failed (reset, or an error).
    Failed,
    Idle,
    /// The target's connections were terminated.
    Cut,
}

/// Copies both ways until both directions end, the flow idles out or it is cut.
async fn relay(
    client: &TcpStream,
    target: &TcpStream,
    idle: Duration,
    mut cut: watch::Receiver<bool>,
) -> End {
    let start = Instant::now();
    // Milliseconds from `start` to the last byte moved either way.
    let last = AtomicU64::new(0);
    let up = pump(client, target, &last, start);
    let down = pump(target, client, &last, start);
    tokio::pin!(up, down);
    let (mut up_open, mut down_open, mut cut_open) = (true, true, true);
    let idle_ms = idle.as_millis() as u64;
    let deadline = sleep_until(start + idle);
    tokio::pin!(deadline);
    while up_open || down_open {
        tokio::select! {
            result = &mut up, if up_open => match result {
                Ok(()) => up_open = false,
                Err(_) => return End::Failed,
            },
            result = &mut down, if down_open => match result {
                Ok(()) => down_open = false,
                Err(_) => return End::Failed,
            },
            changed = cut.changed(), if cut_open => match changed {
                Ok(()) if *cut.borrow() => return End::Cut,
                Ok(()) => {}
                // The runtime forgot the target without cutting it: nothing more will come.
                Err(_) => cut_open = false,
            },
            () = &mut deadline => {
                let quiet_since = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if quiet_since + idle <= Instant::now() {
                    return End::Idle;
                }
                deadline.as_mut().reset(quiet_since + Duration::from_millis(idle_ms));
            }
        }
    }
    End::Closed
}

/// Copies from `from` to `to` until `from` ends, then shuts `to`'s write side (the
/// half-close). Holds a buffer only while there are bytes to move.
async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    last: &AtomicU64,
    start: Instant,
) -> io::Result<()> {
    loop {
        from.readable().await?;
        let mut buf = spare::take();
        let result = drain_ready(from, to, &mut buf).await;
        spare::give(buf);
        match result? {
            Moved::Some => {
                let now = Instant::now().duration_since(start).as_millis() as u64;
                last.store(now, Ordering::Relaxed);
            }
            Moved::None => {}
            Moved::End => {
                SockRef::from(to).shutdown(std::net::Shutdown::Write)?;
                return Ok(());
            }
        }
    }
}

enum Moved {
    Some,
    None,
    End,
}

/// Moves what `from` has ready to `to`.
async fn drain_ready(from: &TcpStream, to: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Moved> {
    let mut moved = Moved::None;
    loop {
        buf.clear();
        match from.try_read_buf(buf) {
            Ok(0) => return Ok(Moved::End),
            Ok(_) => {
                write_all(to, buf).await?;
                moved = Moved::Some;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(moved),
            Err(e) => return Err(e),
        }
    }
}

async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Two connected loopback sockets: (the side the test drives, the side the relay holds).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outer = TcpStream::connect(listener.local_addr().unwrap());
        let (outer, inner) = tokio::join!(outer, listener.accept());
        (outer.unwrap(), inner.unwrap().0)
    }

    #[tokio::test]
    async fn bytes_and_half_closes_cross_both_ways() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        let (_cut, never) = watch::channel(false);
        let relay = tokio::spawn(async move {
            relay(&client_side, &target_side, Duration::from_secs(60), never).await
        });
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut seen = Vec::new();
        target.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, b"ping", "the client's half-close reached the target");
        // The other direction still flows after it.
        target.write_all(b"pong").await.unwrap();
        target.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong");
        assert_eq!(relay.await.unwrap(), End::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_flow_ends_after_the_timeout_and_traffic_defers_it() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        let (_cut, never) = watch::channel(false);
        let idle = Duration::from_secs(350);
        let started = Instant::now();
        let relay =
            tokio::spawn(async move { relay(&client_side, &target_side, idle, never).await });
        tokio::time::sleep(Duration::from_secs(300)).await;
        client.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        target.read_exact(&mut buf).await.unwrap();
        assert_eq!(relay.await.unwrap(), End::Idle);
        let lasted = started.elapsed();
        assert!(
            lasted >= Duration::from_secs(650) && lasted < Duration::from_secs(652),
            "idle 350 s after the last byte at 300 s: {lasted:?}"
        );
    }

    #[tokio::test]
    async fn a_cut_ends_the_flow() {
        let (_client, client_side) = pair().await;
        let (target_side, _target) = pair().await;
        let (cut, watched) = watch::channel(false);
        let relay = tokio::spawn(async move {
            relay(&client_side, &target_side, Duration::from_secs(60), watched).await
        });
        cut.send_replace(true);
        assert_eq!(relay.await.unwrap(), End::Cut);
    }
}
