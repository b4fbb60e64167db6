//! Issue 23's io_uring experiment: what does io_uring save a TCP relay per connection?
//!
//! Two bare relays with the same behaviour as elbd's plain NLB flows (a target socket bound
//! to the node's address with IP_BIND_ADDRESS_NO_PORT and TCP_NODELAY, bytes copied both
//! ways, half-closes relayed, a reset when a side fails), and nothing else: no routing, no
//! health, no metrics, no timeouts. `epoll` runs on tokio's current-thread runtime, as elbd
//! does; `uring` on one io_uring (multishot accept, one batched submission per turn of the
//! loop, deferred task work), receiving either into each flow's own buffers or, with
//! `uring-multishot`, by multishot receives from a ring of provided buffers. Set side by side in bench/uring-probe/measure.py with elbd and
//! HAProxy, they say how much of a connection's CPU the I/O model decides.
//!
//! uring-probe uring|uring-multishot|epoll LISTEN TARGET SOURCE_IP

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::RawFd;

mod uring;

/// Bytes a direction reads at once (elbd's spare buffers are 16 KB too).
const BUFFER: usize = 16 * 1024;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, listen, target, source] = &args[..] else {
        eprintln!("usage: uring-probe uring|uring-multishot|epoll LISTEN TARGET SOURCE_IP");
        std::process::exit(2);
    };
    let parse = |s: &str| -> SocketAddrV4 {
        match s.parse() {
            Ok(SocketAddr::V4(a)) => a,
            _ => panic!("not an IPv4 address and port: {s}"),
        }
    };
    let (target, source) = (parse(target), source.parse::<Ipv4Addr>().expect("source"));
    let listener = bind(listen)?;
    match mode.as_str() {
        "uring" => uring::Relay::new(target, source, false)?.run(&listener),
        "uring-multishot" => uring::Relay::new(target, source, true)?.run(&listener),
        "epoll" => epoll(listener, target, source),
        _ => panic!("mode must be uring, uring-multishot or epoll"),
    }
}

/// Binds `listen`, retrying for a few seconds: an io_uring relay that just ended may hold its
/// port until the kernel has torn its ring down, after the process is gone.
fn bind(listen: &str) -> io::Result<TcpListener> {
    let mut tries = 50;
    loop {
        match TcpListener::bind(listen) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && tries > 0 => {
                tries -= 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn set(fd: RawFd, level: i32, name: i32, value: i32) {
    // SAFETY: a plain setsockopt with an int.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as u32,
        );
    }
}

/// A socket to the target, bound to the node's address as elbd's dial does. Blocking for
/// io_uring (which polls for it; on a non-blocking socket it would hand EAGAIN back),
/// non-blocking for tokio.
fn target_socket(source: &libc::sockaddr_in, blocking: bool) -> Option<RawFd> {
    let mode = if blocking { 0 } else { libc::SOCK_NONBLOCK };
    // SAFETY: plain syscalls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | mode,
            0,
        );
        if fd < 0 {
            return None;
        }
        set(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
        set(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
        let len = size_of::<libc::sockaddr_in>() as u32;
        if libc::bind(fd, (source as *const libc::sockaddr_in).cast(), len) < 0 {
            libc::close(fd);
            return None;
        }
        Some(fd)
    }
}

/// The same relay on tokio's current-thread runtime (epoll), as elbd runs.
fn epoll(listener: TcpListener, target: SocketAddrV4, source: Ipv4Addr) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let source = sockaddr(SocketAddrV4::new(source, 0));
    runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        loop {
            let mut client = match listener.accept().await {
                Ok((client, _)) => client,
                Err(e) => {
                    eprintln!("accept: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                }
            };
            tokio::spawn(async move {
                let Some(fd) = target_socket(&source, false) else {
                    let _ = client.set_zero_linger();
                    return;
                };
                // SAFETY: the descriptor was just made and is owned by nothing else.
                let socket =
                    unsafe { <tokio::net::TcpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                let Ok(mut target) = socket.connect(target.into()).await else {
                    let _ = client.set_zero_linger();
                    return;
                };
                let copied = tokio::io::copy_bidirectional_with_sizes(
                    &mut client,
                    &mut target,
                    BUFFER,
                    BUFFER,
                );
                if copied.await.is_err() {
                    let _ = client.set_zero_linger();
                    let _ = target.set_zero_linger();
                }
            });
        }
    })
}
