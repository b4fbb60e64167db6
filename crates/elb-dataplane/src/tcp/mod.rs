//! The TCP listener (NLB): each accepted connection is a flow to one target, chosen by the
//! flow hash, with bytes copied both ways until both sides have closed.
//!
//! - A half-close is relayed: a side that stops sending gets its peer's write side shut, and
//!   the other direction goes on. A FIN that came with the last bytes leaves with them, in
//!   one segment.
//! - A flow idle past the listener's `tcp.idle_timeout.seconds` is closed with a reset on both
//!   sides, as an NLB resets data on an expired flow. Idle means no byte moved either way: a
//!   proxy that terminates TCP does not see keepalive probes, which reset AWS's timer.
//! - When the target turns unhealthy (or its deregistration delay ends) and the group asks for
//!   connection termination, the flow is reset.
//! - A target that refuses the connection (or the PROXY header, or the TLS handshake of a
//!   TLS group) is passed over for the next in the flow's ranking, as HAProxy redispatches,
//!   so a flow fails only when no target can be reached.
//! - TLS listeners terminate the client's TLS and TLS groups re-encrypt (`tls`); such
//!   flows move plaintext through the TLS streams, with the same ends.
//! - With `proxy_protocol_v2.enabled`, a PROXY v2 header naming the client and the listener's
//!   address comes before the client's first byte.
//! - When a listener's drain time is over, its remaining flows are reset, not closed: a
//!   truncated stream must not look complete to either side.
//!
//! An idle flow holds no buffer of its own: each direction waits for readiness (TLS: for a
//! read that has bytes) and borrows a spare buffer only while it has bytes to move. A plain
//! flow's directions are polled by hand (`Pump`) and wait in their sockets' own waker
//! slots, so that a flow is a small task: a connection per exchange pays for its task's
//! allocation and moves, not for nested futures.

mod tls;

use std::future::{Future, pending};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, SystemTime};

use elb_wire::proxy_v2;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::debug;

use crate::access_log::{Session, TlsFlow};
use crate::dial::Source;
use crate::flow::{self, Flow};
use crate::metrics::{ActiveFlow, FlowKind};
use crate::table::TcpRoute;
use crate::targets::InFlight;
use crate::{dial, send, spare};
use tls::Stream;

/// How long a target gets to accept a connection before the next one is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many targets a flow tries before it gives up.
const ATTEMPTS: usize = 3;

/// Serves one accepted client connection of a TCP or TLS listener: connects to a target and
/// relays until the flow ends, or until `drained` turns (the listener's drain time is over).
/// The route is the one current at accept, for the flow's whole life.
pub(crate) async fn serve(
    client: TcpStream,
    (local, peer): (SocketAddr, SocketAddr),
    route: Arc<TcpRoute>,
    drained: watch::Receiver<bool>,
) {
    let metrics = &route.flows;
    let kind = if route.tls.is_some() {
        FlowKind::Tls
    } else {
        FlowKind::Tcp
    };
    let active = ActiveFlow::new(metrics, kind);
    let (created, started) = (SystemTime::now(), Instant::now());
    let mut client = match &route.tls {
        None => Stream::Plain(client),
        // Boxed, as the TLS relay and handshakes below: a plain flow's task stays small.
        Some(config) => match Box::pin(tls::accept(config, client)).await {
            Ok(stream) => stream,
            Err(e) => {
                debug!(%peer, %local, error = %e, "TLS handshake failed");
                metrics.client_tls_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        },
    };
    if !client.admitted(&route.identity_filters) {
        debug!(%peer, %local, "client certificate matches no identity filter; reset");
        metrics.client_tls_errors.fetch_add(1, Ordering::Relaxed);
        let _ = client.tcp().set_zero_linger();
        return;
    }
    let timing = Timing {
        created,
        started,
        handshake: started.elapsed(),
    };
    let alpn = client.alpn().map(<[u8]>::to_vec);
    let moved = Moved::default();
    let Some((mut target, cut, _in_flight)) = connect(&route, (local, peer), alpn).await else {
        // No target, or none reachable: the client gets a reset, as from an NLB.
        debug!(%peer, %local, "no target for the flow; reset");
        log_tls_flow(&route, (&client, None), (local, peer), &timing, &moved);
        metrics.elb_resets.fetch_add(1, Ordering::Relaxed);
        let _ = client.tcp().set_zero_linger();
        return;
    };
    let cuts = [cut, drained];
    let (idle, processed) = (route.idle_timeout, active.processed());
    let end = match (&client, &target) {
        (Stream::Plain(c), Stream::Plain(t)) => relay((c, t), idle, cuts, processed).await,
        _ => {
            Box::pin(relay_tls(
                (&mut client, &mut target),
                idle,
                cuts,
                (processed, &moved),
            ))
            .await
        }
    };
    log_tls_flow(
        &route,
        (&client, Some(&target)),
        (local, peer),
        &timing,
        &moved,
    );
    let counter = match end {
        End::Closed => return,
        End::ClientReset => &metrics.client_resets,
        End::TargetReset => &metrics.target_resets,
        End::Idle | End::Cut => &metrics.elb_resets,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    debug!(%peer, %local, ?end, "flow reset");
    let _ = client.tcp().set_zero_linger();
    let _ = target.tcp().set_zero_linger();
}

/// The first target in the flow's ranking that takes the flow, ready for the client's
/// bytes, with what cuts its flows and the guard counting it as outstanding. A target that
/// refuses the connection, the PROXY header or (TLS groups) the handshake with the client's
/// `alpn` is passed over for the next.
async fn connect(
    route: &TcpRoute,
    (local, peer): (SocketAddr, SocketAddr),
    alpn: Option<Vec<u8>>,
) -> Option<(Stream, watch::Receiver<bool>, InFlight)> {
    let flow = Flow {
        protocol: flow::TCP,
        source: peer,
        destination: local,
    };
    let group = &route.targets.proto;
    let source = Source::new(
        (group.preserve_client_ip, group.transparent),
        peer,
        route.source_ip,
    );
    for (endpoint, in_flight) in route.targets.for_flow(&flow).take(ATTEMPTS) {
        let target = match dial::connect(source, endpoint.addr, CONNECT_TIMEOUT).await {
            Ok(target) => target,
            Err(e) => {
                debug!(%peer, target = %endpoint.addr, error = %e, "target not reached");
                continue;
            }
        };
        if group.proxy_protocol {
            let header = proxy_v2::proxy(proxy_v2::Transport::Stream, peer, local);
            if let Err(e) = write_all(&target, &header).await {
                debug!(%peer, target = %endpoint.addr, error = %e, "PROXY header not taken");
                continue;
            }
        }
        let target = if group.tls {
            let handshake = tls::connect(target, endpoint.addr, alpn.as_deref(), CONNECT_TIMEOUT);
            match Box::pin(handshake).await {
                Ok(stream) => stream,
                Err(e) => {
                    debug!(%peer, target = %endpoint.addr, error = %e, "TLS handshake with the target failed");
                    route
                        .flows
                        .target_tls_errors
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
        } else {
            Stream::Plain(target)
        };
        return Some((target, endpoint.proto.cut.clone(), in_flight));
    }
    None
}

/// How a flow ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// Both sides closed.
    Closed,
    /// A side failed (reset, or an error).
    ClientReset,
    TargetReset,
    Idle,
    /// The target's connections were terminated, or the listener's drain time is over.
    Cut,
}

/// Copies both ways until both directions end, the flow idles out or one of `cuts` turns;
/// the bytes moved are added to `processed`.
async fn relay(
    (client, target): (&TcpStream, &TcpStream),
    idle: Duration,
    cuts: [watch::Receiver<bool>; 2],
    processed: &AtomicU64,
) -> End {
    let shared = Shared::new(processed);
    let up = Pump::new(client, target, &shared);
    let down = Pump::new(target, client, &shared);
    run_flow(pin!(up), pin!(down), idle, cuts, &shared).await
}

/// When a flow began, and how long its TLS handshake took.
struct Timing {
    created: SystemTime,
    started: Instant,
    handshake: Duration,
}

/// Writes a TLS listener's flow's access log entry as it ends, when its load balancer keeps
/// them: after the relay, or with no target reached (`target` is `None`).
fn log_tls_flow(
    route: &TcpRoute,
    (client, target): (&Stream, Option<&Stream>),
    (local, peer): (SocketAddr, SocketAddr),
    timing: &Timing,
    moved: &Moved,
) {
    let (Some((log, listener)), Stream::Server(tls)) = (&route.access_log, client) else {
        return;
    };
    let session = Session::plain(peer).with_tls(tls.get_ref().1);
    let flow = TlsFlow {
        listener,
        client: peer,
        destination: local,
        created: timing.created,
        connection_time: timing.started.elapsed(),
        handshake_time: timing.handshake,
        received: moved.up.load(Ordering::Relaxed),
        sent: moved.down.load(Ordering::Relaxed),
        tls: session.tls.as_deref().expect("a TLS session"),
        alpn_front: client.alpn(),
        alpn_back: target.and_then(Stream::target_alpn),
    };
    log.tls_flow(&flow);
}

/// Plaintext bytes a TLS flow moved from the client (`up`) and to it (`down`).
#[derive(Default)]
struct Moved {
    up: AtomicU64,
    down: AtomicU64,
}

/// [`relay`] for a flow with TLS on either side: plaintext through the TLS streams, counted
/// per direction in `moved`.
async fn relay_tls(
    (client, target): (&mut Stream, &mut Stream),
    idle: Duration,
    cuts: [watch::Receiver<bool>; 2],
    (processed, moved): (&AtomicU64, &Moved),
) -> End {
    let shared = Shared::new(processed);
    let (mut client_reads, mut client_writes) = tokio::io::split(client);
    let (mut target_reads, mut target_writes) = tokio::io::split(target);
    let up = pin!(tls::copy(
        &mut client_reads,
        &mut target_writes,
        &shared,
        &moved.up
    ));
    let down = pin!(tls::copy(
        &mut target_reads,
        &mut client_writes,
        &shared,
        &moved.down
    ));
    run_flow(up, down, idle, cuts, &shared).await
}

/// Runs a flow's two directions until both end, the flow idles out or one of the cuts turns.
/// The directions are pinned by the caller, and the cuts are watched by futures that live as
/// long as the flow: each wake-up polls them, but none registers anew.
async fn run_flow<Up, Down>(
    mut up: Pin<&mut Up>,
    mut down: Pin<&mut Down>,
    idle: Duration,
    [cut, drained]: [watch::Receiver<bool>; 2],
    shared: &Shared<'_>,
) -> End
where
    Up: Future<Output = Result<(), Broken>>,
    Down: Future<Output = Result<(), Broken>>,
{
    let start = shared.start;
    let (mut up_open, mut down_open) = (true, true);
    let (mut cut, mut drained) = (pin!(turned(cut)), pin!(turned(drained)));
    let idle_ms = idle.as_millis() as u64;
    let mut deadline = pin!(sleep_until(start + idle));
    while up_open || down_open {
        // Unbiased: a direction that spends the task's budget must not starve the other, the
        // cuts or the deadline.
        tokio::select! {
            result = &mut up, if up_open => match result {
                Ok(()) => up_open = false,
                Err(Broken::Reading) => return End::ClientReset,
                Err(Broken::Writing) => return End::TargetReset,
            },
            result = &mut down, if down_open => match result {
                Ok(()) => down_open = false,
                Err(Broken::Reading) => return End::TargetReset,
                Err(Broken::Writing) => return End::ClientReset,
            },
            () = &mut cut => return End::Cut,
            () = &mut drained => return End::Cut,
            () = &mut deadline => {
                let quiet_since = start + Duration::from_millis(shared.last.load(Ordering::Relaxed));
                if quiet_since + idle <= Instant::now() {
                    return End::Idle;
                }
                deadline.as_mut().reset(quiet_since + Duration::from_millis(idle_ms));
            }
        }
    }
    End::Closed
}

/// Ends when `signal` turns true. A signal whose sender is gone never turns (the runtime
/// forgot the target without cutting it: nothing more will come).
async fn turned(mut signal: watch::Receiver<bool>) {
    loop {
        if signal.changed().await.is_err() {
            pending::<()>().await;
        }
        if *signal.borrow() {
            return;
        }
    }
}

/// The two directions of a flow: what each pump shares with the other.
struct Shared<'a> {
    start: Instant,
    /// Milliseconds from `start` to the last byte moved either way.
    last: AtomicU64,
    /// Set by the first direction to end.
    one_ended: AtomicBool,
    /// The node's ProcessedBytes.
    processed: &'a AtomicU64,
}

impl<'a> Shared<'a> {
    fn new(processed: &'a AtomicU64) -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            one_ended: AtomicBool::new(false),
            processed,
        }
    }

    /// Whether this is the first direction of the flow to end: only its shutdown of the
    /// peer's write side must succeed (plain flows skip the second's, as both sockets close
    /// right after; TLS flows make it, for close_notify).
    fn first_to_end(&self) -> bool {
        !self.one_ended.swap(true, Ordering::Relaxed)
    }

    /// Counts `bytes` moved now: the flow is not idle.
    fn moved(&self, bytes: usize) {
        let now = Instant::now().duration_since(self.start).as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
        self.processed.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// Which side of a pump failed: the one it reads from, or the one it writes to.
enum Broken {
    Reading,
    Writing,
}

/// One direction of a plain flow: copies from `from` to `to` until `from` ends, then, if it
/// is the first direction to end, shuts `to`'s write side (the half-close; the second need
/// not, as both sockets close right after). Polled by hand: it waits in `from`'s read waker
/// slot and `to`'s write slot, which no other future of the flow uses, and holds a buffer
/// only while it has bytes to move.
struct Pump<'a> {
    from: &'a TcpStream,
    to: &'a TcpStream,
    shared: &'a Shared<'a>,
    /// Bytes read and not yet all written: `buf[written..]` is still to go.
    pending: Option<Vec<u8>>,
    written: usize,
    /// Whether the read that filled `pending` took all `from` had: the buffer then goes back
    /// once written, rather than being kept for the next read.
    took_all: bool,
    /// Whether `from`'s end is known to follow `pending`: its bytes are then sent with
    /// MSG_MORE, so that the half-close's FIN leaves in the same segment, as HAProxy's
    /// does (a connection per exchange then costs two packets fewer: the lone FIN and its
    /// acknowledgement).
    end_follows: bool,
}

impl<'a> Pump<'a> {
    fn new(from: &'a TcpStream, to: &'a TcpStream, shared: &'a Shared<'a>) -> Self {
        Self {
            from,
            to,
            shared,
            pending: None,
            written: 0,
            took_all: false,
            end_follows: false,
        }
    }

    /// Writes out `pending`; ready when it is all written.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Broken>> {
        let Some(buf) = &self.pending else {
            return Poll::Ready(Ok(()));
        };
        while self.written < buf.len() {
            let rest = &buf[self.written..];
            match send::try_send(self.to, rest, self.end_follows) {
                Ok(n) => self.written += n,
                // try_io cleared the readiness: this registers for the next.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    ready!(self.to.poll_write_ready(cx)).map_err(|_| Broken::Writing)?;
                }
                Err(_) => return Poll::Ready(Err(Broken::Writing)),
            }
        }
        // Counted as each buffer goes out: a transfer under backpressure is not idle.
        self.shared.moved(buf.len());
        Poll::Ready(Ok(()))
    }

    /// Reads what `from` has ready into `kept` or a spare buffer, which becomes `pending`;
    /// `Ok(false)` at the end of `from`'s stream. No buffer is held while it waits.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        mut kept: Option<Vec<u8>>,
    ) -> Poll<Result<bool, Broken>> {
        loop {
            let ready = self.from.poll_read_ready(cx);
            if !matches!(ready, Poll::Ready(Ok(()))) {
                if let Some(buf) = kept {
                    spare::give(buf);
                }
                return ready.map(|_| Err(Broken::Reading));
            }
            let mut buf = kept.take().unwrap_or_else(spare::take);
            buf.clear();
            let mut took_all = false;
            // A read that does not fill the buffer took all there was: its readiness is
            // cleared at once rather than learnt from one more read that would block
            // (HAProxy's habit). Edge-triggered readiness still reports bytes or a FIN that
            // come after, and tokio keeps a FIN already seen.
            let read = self.from.try_io(Interest::READABLE, || {
                let n = self.from.try_read_buf(&mut buf)?;
                if n > 0 && buf.len() < buf.capacity() {
                    took_all = true;
                    return Err(ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match read {
                Ok(0) => {
                    spare::give(buf);
                    return Poll::Ready(Ok(false));
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock && took_all => {}
                // Woken for nothing: the readiness is cleared, and the next poll waits.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    spare::give(buf);
                    continue;
                }
                Err(_) => {
                    spare::give(buf);
                    return Poll::Ready(Err(Broken::Reading));
                }
            }
            // The readiness that woke this read may have carried the peer's FIN too
            // (EPOLLRDHUP, which tokio keeps): then the next read is the end, or an error
            // when the peer reset (see `Pump::poll`).
            let end_follows = took_all && read_closed(self.from);
            (self.pending, self.written) = (Some(buf), 0);
            (self.took_all, self.end_follows) = (took_all, end_follows);
            return Poll::Ready(Ok(true));
        }
    }
}

impl Future for Pump<'_> {
    type Output = Result<(), Broken>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            ready!(this.poll_write_pending(cx))?;
            // All written: the buffer is kept only when the read that filled it may have
            // left more behind.
            let kept = match this.pending.take() {
                Some(buf) if this.took_all => {
                    spare::give(buf);
                    None
                }
                kept => kept,
            };
            let read = ready!(this.poll_read(cx, kept));
            if read.is_err() && this.end_follows {
                // A reset, not a FIN, came after the bytes just sent with MSG_MORE: they go
                // now (setting TCP_NODELAY pushes what is queued), before the flow's reset
                // would drop them.
                let _ = SockRef::from(this.to).set_tcp_nodelay(true);
            }
            if !read? {
                if this.shared.first_to_end() {
                    SockRef::from(this.to)
                        .shutdown(std::net::Shutdown::Write)
                        .map_err(|_| Broken::Writing)?;
                }
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl Drop for Pump<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.pending.take() {
            spare::give(buf);
        }
    }
}

/// Whether `socket`'s peer is known to have closed its side (a FIN, or a reset), from the
/// readiness tokio holds: no system call, and no waker left behind.
fn read_closed(socket: &TcpStream) -> bool {
    let ready = pin!(socket.ready(Interest::READABLE));
    let mut cx = Context::from_waker(Waker::noop());
    matches!(ready.poll(&mut cx), Poll::Ready(Ok(r)) if r.is_read_closed())
}

/// Writes all of `bytes`, waiting for room only when the socket has none.
async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match to.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => to.writable().await?,
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

    /// The tests' ProcessedBytes.
    static COUNTED: AtomicU64 = AtomicU64::new(0);

    /// Signals that never turn (their senders are gone).
    fn never() -> [watch::Receiver<bool>; 2] {
        [watch::channel(false).1, watch::channel(false).1]
    }

    /// Two connected loopback sockets: (the side the test drives, the side the relay holds).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let outer = TcpStream::connect(listener.local_addr().unwrap());
        let (outer, inner) = tokio::join!(outer, listener.accept());
        (outer.unwrap(), inner.unwrap().0)
    }

    /// A relay between the two sides the relay holds, with no cut.
    fn spawn_relay(
        client_side: TcpStream,
        target_side: TcpStream,
        idle: Duration,
    ) -> tokio::task::JoinHandle<End> {
        tokio::spawn(
            async move { relay((&client_side, &target_side), idle, never(), &COUNTED).await },
        )
    }

    #[tokio::test]
    async fn bytes_and_half_closes_cross_both_ways() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        let relay = spawn_relay(client_side, target_side, Duration::from_secs(60));
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

    #[tokio::test]
    async fn an_answer_with_the_end_behind_it_leaves_with_its_fin_and_the_flow_goes_on() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        // Both are there when the relay first reads: the bytes go out with MSG_MORE and
        // must still leave, with the half-close.
        target.write_all(b"answer").await.unwrap();
        target.shutdown().await.unwrap();
        let relay = spawn_relay(client_side, target_side, Duration::from_secs(60));
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer));
        read.await
            .expect("the answer and its end, not held")
            .unwrap();
        assert_eq!(answer, b"answer");
        client.write_all(b"thanks").await.unwrap();
        client.shutdown().await.unwrap();
        let mut seen = Vec::new();
        target.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, b"thanks", "the client's direction still flows");
        assert_eq!(relay.await.unwrap(), End::Closed);
    }

    #[tokio::test]
    async fn an_answer_the_target_resets_after_still_reaches_the_client() {
        let (mut client, client_side) = pair().await;
        let (target_side, target) = pair().await;
        let mut target = target;
        target.write_all(b"answer").await.unwrap();
        // A reset rather than a FIN, as from a target that closes with input unread.
        target.set_zero_linger().unwrap();
        drop(target);
        let relay = tokio::spawn(async move {
            let end = relay(
                (&client_side, &target_side),
                Duration::from_secs(60),
                never(),
                &COUNTED,
            )
            .await;
            // As `serve` ends a reset flow: an abortive close drops what was not sent.
            let _ = client_side.set_zero_linger();
            let _ = target_side.set_zero_linger();
            end
        });
        assert_eq!(relay.await.unwrap(), End::TargetReset);
        let mut answer = [0; 6];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer", "the bytes came before the reset");
    }

    #[tokio::test]
    async fn a_fin_that_came_with_the_bytes_read_is_known_without_a_read() {
        for end in [false, true] {
            let (mut peer, socket) = pair().await;
            peer.write_all(b"bytes").await.unwrap();
            if end {
                peer.shutdown().await.unwrap();
            }
            // Until tokio has seen the readiness the last of them raised.
            tokio::time::sleep(Duration::from_millis(50)).await;
            socket.readable().await.unwrap();
            let mut buf = [0; 64];
            assert_eq!(socket.try_read(&mut buf).unwrap(), 5);
            assert_eq!(read_closed(&socket), end);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_flow_ends_after_the_timeout_and_traffic_defers_it() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        let idle = Duration::from_secs(350);
        let started = Instant::now();
        let relay = spawn_relay(client_side, target_side, idle);
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
    async fn a_cut_or_the_end_of_a_drain_ends_the_flow() {
        for which in 0..2 {
            let (_client, client_side) = pair().await;
            let (target_side, _target) = pair().await;
            let (cut, watched) = watch::channel(false);
            let mut signals = never();
            signals[which] = watched;
            let relay = tokio::spawn(async move {
                relay(
                    (&client_side, &target_side),
                    Duration::from_secs(60),
                    signals,
                    &COUNTED,
                )
                .await
            });
            cut.send_replace(true);
            assert_eq!(relay.await.unwrap(), End::Cut);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_transfer_under_backpressure_is_not_idle() {
        let (mut client, client_side) = pair().await;
        let (target_side, mut target) = pair().await;
        let relay = spawn_relay(client_side, target_side, Duration::from_secs(350));
        // More than the sockets on the way can buffer, so that the relay stays blocked on
        // writing to a client that reads slowly.
        let sender = tokio::spawn(async move {
            target.write_all(&vec![7u8; 32 << 20]).await.unwrap();
            target.shutdown().await.unwrap();
            target
        });
        client.shutdown().await.unwrap();
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..6 {
            client.read_exact(&mut chunk).await.unwrap();
            tokio::time::sleep(Duration::from_secs(100)).await;
        }
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest.len() + (6 << 20), 32 << 20);
        drop(sender.await.unwrap());
        assert_eq!(
            relay.await.unwrap(),
            End::Closed,
            "600 s of slow reading, never idle"
        );
    }
}
