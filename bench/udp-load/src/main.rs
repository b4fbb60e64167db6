//! udp-load: the UDP side of bench/ (std only, so that it builds in seconds).
//!
//! - `udp-load echo ADDR`: answers each datagram to its sender (one thread, one blocking
//!   socket), the origin of the UDP scenario.
//! - `udp-load run --target ADDR --sockets N --seconds S --size BYTES [--bind IP]
//!   [--threads T]`: a closed loop. Each of N client sockets keeps one datagram in flight: it
//!   sends, waits for the reply, and sends the next; a reply that does not come within 200 ms
//!   counts as lost and the socket sends the next one. At the end it prints one JSON line:
//!   `{"datagrams": replies, "lost": n, "seconds": s, "rate": replies per second}`.
//!
//! Each datagram carries its socket's sequence number in its first 8 bytes, so a reply that
//! comes after its timeout is not taken for the reply to the next datagram.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::exit;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: udp-load echo ADDR\n       \
    udp-load run --target ADDR --sockets N --seconds S --size BYTES [--bind IP] [--threads T]";
/// How long a socket waits for the reply to its datagram before it counts it lost.
const TIMEOUT: Duration = Duration::from_millis(200);
/// The largest UDP payload over IPv4.
const DATAGRAM: usize = 65_507;
/// The sequence number at the start of every datagram.
const SEQ: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args.first().map(String::as_str) {
        Some("echo") if args.len() == 2 => echo(&args[1]),
        Some("run") => Options::parse(&args[1..]).and_then(|o| run(&o)),
        _ => Err(USAGE.into()),
    };
    if let Err(e) = done {
        eprintln!("udp-load: {e}");
        exit(2);
    }
}

fn echo(addr: &str) -> Result<(), String> {
    let socket = UdpSocket::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        // A send that fails is a datagram the network dropped: the server goes on.
        if let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
        }
    }
}

struct Options {
    target: SocketAddr,
    sockets: usize,
    seconds: f64,
    size: usize,
    bind: Option<IpAddr>,
    threads: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let (mut target, mut sockets, mut seconds, mut size) = (None, None, None, None);
        let (mut bind, mut threads) = (None, 1);
        let mut rest = args.iter();
        while let Some(flag) = rest.next() {
            let value = rest
                .next()
                .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
            let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
            match flag.as_str() {
                "--target" => target = Some(value.parse().map_err(|e| bad(&e))?),
                "--sockets" => sockets = Some(value.parse().map_err(|e| bad(&e))?),
                "--seconds" => seconds = Some(value.parse().map_err(|e| bad(&e))?),
                "--size" => size = Some(value.parse().map_err(|e| bad(&e))?),
                "--bind" => bind = Some(value.parse().map_err(|e| bad(&e))?),
                "--threads" => threads = value.parse().map_err(|e| bad(&e))?,
                _ => return Err(format!("unknown option {flag}\n{USAGE}")),
            }
        }
        let missing = |name: &str| format!("--{name} is required\n{USAGE}");
        let options = Self {
            target: target.ok_or_else(|| missing("target"))?,
            sockets: sockets.ok_or_else(|| missing("sockets"))?,
            seconds: seconds.ok_or_else(|| missing("seconds"))?,
            size: size.ok_or_else(|| missing("size"))?,
            bind,
            threads,
        };
        if !(SEQ..=DATAGRAM).contains(&options.size) {
            return Err(format!("--size must be from {SEQ} to {DATAGRAM} bytes"));
        }
        if options.sockets == 0 || options.threads == 0 || options.seconds <= 0.0 {
            return Err("--sockets, --threads and --seconds must be above zero".into());
        }
        Ok(options)
    }
}

fn run(o: &Options) -> Result<(), String> {
    let bind = o.bind.unwrap_or(match o.target {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    // Thread t owns sockets t, t + T, t + 2T, ...
    let mut shares: Vec<Vec<UdpSocket>> = (0..o.threads).map(|_| Vec::new()).collect();
    for i in 0..o.sockets {
        let socket = client_socket(bind, o.target).map_err(|e| format!("client socket: {e}"))?;
        shares[i % o.threads].push(socket);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(o.seconds);
    let totals = std::thread::scope(|scope| {
        let threads: Vec<_> = shares
            .into_iter()
            .filter(|share| !share.is_empty())
            .map(|share| scope.spawn(move || drive(share, o.size, deadline)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a load thread panicked"))
            .collect::<Vec<_>>()
    });
    let seconds = start.elapsed().as_secs_f64();
    let (datagrams, lost) = totals
        .iter()
        .fold((0, 0), |(d, l), (dt, lt)| (d + dt, l + lt));
    println!(
        "{{\"datagrams\": {datagrams}, \"lost\": {lost}, \"seconds\": {seconds:.3}, \"rate\": {:.1}}}",
        datagrams as f64 / seconds
    );
    Ok(())
}

/// A socket on `bind` (any port) connected to `target`, so that it hears only the target's
/// replies; a read waits at most [`TIMEOUT`].
fn client_socket(bind: IpAddr, target: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(bind, 0))?;
    socket.connect(target)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    Ok(socket)
}

/// One client socket and its datagram in flight.
struct Client {
    socket: UdpSocket,
    seq: u64,
}

impl Client {
    /// Sends the next datagram. One the kernel refuses (a full buffer, an ICMP error of an
    /// earlier one) is in flight all the same: it times out as lost.
    fn send(&mut self, payload: &mut [u8]) {
        self.seq += 1;
        payload[..SEQ].copy_from_slice(&self.seq.to_le_bytes());
        let _ = self.socket.send(payload);
    }

    /// Waits for the reply to the datagram in flight: `false` when it does not come in time
    /// (or an ICMP error says the port is closed). Late replies to datagrams already
    /// counted lost are passed over.
    fn reply(&mut self, buf: &mut [u8]) -> bool {
        while let Ok(n) = self.socket.recv(buf) {
            if n >= SEQ && buf[..SEQ] == self.seq.to_le_bytes() {
                return true;
            }
        }
        false
    }
}

/// The closed loop of one thread over its sockets until `deadline`: (replies, lost). The
/// thread waits for each socket's reply in turn; meanwhile the other sockets' datagrams are
/// in flight and their replies wait in their buffers, so every socket keeps one in flight.
fn drive(sockets: Vec<UdpSocket>, size: usize, deadline: Instant) -> (u64, u64) {
    let mut payload = vec![0u8; size];
    let mut buf = vec![0u8; DATAGRAM];
    let mut clients: Vec<Client> = sockets
        .into_iter()
        .map(|socket| Client { socket, seq: 0 })
        .collect();
    for client in &mut clients {
        client.send(&mut payload);
    }
    let (mut replies, mut lost) = (0, 0);
    while Instant::now() < deadline {
        for client in &mut clients {
            if client.reply(&mut buf) {
                replies += 1;
            } else {
                lost += 1;
            }
            client.send(&mut payload);
        }
    }
    (replies, lost)
}
