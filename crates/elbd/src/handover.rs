//! Zero-downtime restarts and upgrades, as HAProxy hands its sockets over and NGINX
//! re-executes itself on USR2: a new `elbd serve` on the same data dir takes the listening
//! sockets of the one running there over `DATA-DIR/handover.sock`, with SCM_RIGHTS, so the
//! connections waiting in their queues pass to it whole and no client is refused.
//!
//! The exchange, one JSON message per frame (a 4-byte big-endian length, then the JSON):
//! 1. new → old `hello` with the protocol version it speaks;
//! 2. old → new `sockets`, what each socket serves, then `descriptors` frames carrying them
//!    (at most [`BATCH`] each), in the same order;
//! 3. the new process serves traffic with them, then sends `ready`;
//! 4. the old one stops accepting everywhere, finishes its API requests and control loops,
//!    and answers `quiesced` with the last revision it committed; the new one reads the
//!    store again (SQLite has no watch) and opens its API. The old drains and exits.
//!
//! Either side answers a version it does not know with `refused`: the protocol is versioned
//! so that binaries of different versions can hand over while it stays the same.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use elb_dataplane::{BindKey, Handed, Transport};
use elb_model::{HealthView, TargetHealth};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// The hand-over protocol's version: bumped when a message changes meaning.
const VERSION: u32 = 1;
/// Descriptors per message at most (Linux takes 253).
const BATCH: usize = 200;
/// Frames larger than this are refused (a state with tens of thousands of sockets fits).
const MAX_FRAME: usize = 16 << 20;
/// How long either side waits for the other's next message; the new process may take this
/// long to load its state and bind.
const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Hello {
        version: u32,
    },
    Sockets {
        version: u32,
        sockets: Vec<Described>,
        flow_seed: u64,
        /// (node id, registration key, health): HealthView's entries.
        health: Vec<(String, String, TargetHealth)>,
    },
    Descriptors {
        count: usize,
    },
    Ready,
    Quiesced {
        revision: u64,
    },
    Refused {
        reason: String,
    },
}

/// What a socket handed over serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Purpose {
    /// A load balancer node's listener (TCP), or its datagram socket (UDP, GENEVE).
    Tcp,
    Udp,
    Geneve,
    Api,
    Metrics,
    DnsUdp,
    DnsTcp,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Described {
    purpose: Purpose,
    addr: SocketAddr,
    /// Whether the host has the address (a node's socket may wait for it: IP_FREEBIND).
    local: bool,
}

/// Sockets on their way from one process to the next, and the flow-hash seed that goes with
/// them (so that UDP and GENEVE flows keep their targets across the hand-over).
#[derive(Debug, Default)]
pub(crate) struct Sockets {
    handed: Vec<(Described, OwnedFd)>,
    pub(crate) flow_seed: u64,
    /// What the old process's health checks found, for the new one's to go on from.
    pub(crate) health: HealthView,
}

impl Sockets {
    /// Adds a socket other than a node's.
    pub(crate) fn add(&mut self, purpose: Purpose, addr: SocketAddr, fd: OwnedFd) {
        let local = true;
        let described = Described {
            purpose,
            addr,
            local,
        };
        self.handed.push((described, fd));
    }

    /// Adds the data plane's sockets.
    pub(crate) fn add_nodes(&mut self, handed: Vec<Handed>) {
        for Handed { key, local, socket } in handed {
            let purpose = match key.transport {
                Transport::Tcp => Purpose::Tcp,
                Transport::Udp => Purpose::Udp,
                Transport::Geneve => Purpose::Geneve,
            };
            let described = Described {
                purpose,
                addr: key.addr,
                local,
            };
            self.handed.push((described, socket));
        }
    }

    /// Takes the socket serving `purpose` on `addr`, if one was handed over.
    pub(crate) fn take(&mut self, purpose: Purpose, addr: SocketAddr) -> Option<OwnedFd> {
        let at = (self.handed.iter()).position(|(d, _)| d.purpose == purpose && d.addr == addr)?;
        Some(self.handed.swap_remove(at).1)
    }

    /// Takes the data plane's sockets.
    pub(crate) fn take_nodes(&mut self) -> Vec<Handed> {
        let (nodes, rest) = std::mem::take(&mut self.handed)
            .into_iter()
            .partition(|(d, _)| matches!(d.purpose, Purpose::Tcp | Purpose::Udp | Purpose::Geneve));
        self.handed = rest;
        let nodes: Vec<(Described, OwnedFd)> = nodes;
        (nodes.into_iter())
            .map(|(d, socket)| {
                let key = match d.purpose {
                    Purpose::Udp => BindKey::udp(d.addr),
                    Purpose::Geneve => BindKey::geneve(d.addr),
                    _ => BindKey::tcp(d.addr),
                };
                Handed {
                    key,
                    local: d.local,
                    socket,
                }
            })
            .collect()
    }

    /// Closes what no server took (an address whose flag changed), saying so.
    pub(crate) fn close_rest(self) {
        for (described, _) in self.handed {
            warn!(addr = %described.addr, purpose = ?described.purpose, "a socket handed over is not served here; closed");
        }
    }
}

pub(crate) fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("handover.sock")
}

/// A hand-over from a running process under way: its sockets, and the line to it.
pub(crate) struct Taken {
    pub(crate) sockets: Sockets,
    line: UnixStream,
}

/// Asks the process running on `data_dir` for its sockets; `None` when none runs there.
pub(crate) fn take(data_dir: &Path) -> anyhow::Result<Option<Taken>> {
    let path = socket_path(data_dir);
    let line = match UnixStream::connect(&path) {
        Ok(line) => line,
        // No socket, or one a process that is gone left behind.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("connecting to {}", path.display())),
    };
    line.set_read_timeout(Some(PATIENCE))?;
    send(&line, &Message::Hello { version: VERSION }, &[])?;
    let mut fds = Vec::new();
    let (described, flow_seed, health) = match receive(&line, &mut fds)? {
        Message::Sockets {
            version,
            sockets,
            flow_seed,
            health,
        } if version == VERSION => (sockets, flow_seed, health),
        Message::Sockets { version, .. } => bail!(
            "the elbd running on {} speaks hand-over version {version}, this one {VERSION}",
            data_dir.display()
        ),
        Message::Refused { reason } => bail!("the running elbd will not hand over: {reason}"),
        other => bail!("the running elbd answered {other:?} to hello"),
    };
    while fds.len() < described.len() {
        let before = fds.len();
        match receive(&line, &mut fds)? {
            Message::Descriptors { count } if fds.len() - before == count => {}
            Message::Descriptors { count } => bail!(
                "a hand-over message said {count} descriptors and brought {} (out of descriptors?)",
                fds.len() - before
            ),
            other => bail!("the running elbd sent {other:?} among its descriptors"),
        }
    }
    if fds.len() != described.len() {
        bail!(
            "the running elbd described {} sockets and sent {}",
            described.len(),
            fds.len()
        );
    }
    let health = HealthView {
        targets: (health.into_iter())
            .map(|(node, key, health)| ((node, key), health))
            .collect(),
    };
    let sockets = Sockets {
        handed: described.into_iter().zip(fds).collect(),
        flow_seed,
        health,
    };
    info!(
        sockets = sockets.handed.len(),
        "took the running elbd's sockets"
    );
    Ok(Some(Taken { sockets, line }))
}

impl Taken {
    /// Tells the old process that this one serves, and waits until it accepts and commits
    /// nothing more; returns the last revision it committed, and the line to it, which ends
    /// when it exits. `None` when the old process is gone already (its line closed); an
    /// error when it may still serve, in which case this one must not.
    pub(crate) fn ready(self) -> anyhow::Result<Option<(u64, Gone)>> {
        let answer = send(&self.line, &Message::Ready, &[])
            .map_err(anyhow::Error::from)
            .and_then(|()| receive(&self.line, &mut Vec::new()));
        match answer {
            Ok(Message::Quiesced { revision }) => Ok(Some((revision, Gone(self.line)))),
            Ok(other) => bail!("the old elbd answered {other:?} to ready"),
            Err(e) if closed(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The line to an old process that is draining: it holds it open until it exits.
pub(crate) struct Gone(UnixStream);

impl Gone {
    /// Blocks until the old process has exited.
    pub(crate) fn wait(self) {
        let _ = self.0.set_read_timeout(None);
        let _ = std::io::Read::read(&mut &self.0, &mut [0u8; 1]);
    }
}

/// What the hand-over line asks of the serving loop, which owns the sockets.
pub(crate) enum Asked {
    /// Every socket this process serves on.
    Sockets(oneshot::Sender<io::Result<Sockets>>),
    /// Stop accepting and committing; answer with the last revision committed. The process
    /// then drains and exits.
    Quiesce(oneshot::Sender<u64>),
}

/// Listens on `DATA-DIR/handover.sock` for a process taking over (in a thread of its own:
/// the exchange is short and blocking); the serving loop answers what it asks.
pub(crate) fn offer(data_dir: &Path) -> anyhow::Result<mpsc::Receiver<Asked>> {
    let path = socket_path(data_dir);
    // A socket left by a process that is gone (one that runs was asked first, in `take`).
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let (asks, asked) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("handover".into())
        .spawn(move || {
            for line in listener.incoming() {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        warn!("a hand-over line failed: {e}");
                        continue;
                    }
                };
                let handed = line
                    .set_read_timeout(Some(PATIENCE))
                    .map_err(anyhow::Error::from)
                    .and_then(|()| hand_over(&line, &asks));
                match handed {
                    // The line stays open until this process exits: the new one waits for
                    // that to take over the access log spool.
                    Ok(true) => loop {
                        std::thread::park();
                    },
                    Ok(false) => {}
                    Err(e) => warn!("a hand-over did not complete; serving on: {e:#}"),
                }
            }
        })?;
    Ok(asked)
}

/// One hand-over, old side: true once this process has quiesced (it stops serving).
fn hand_over(line: &UnixStream, asks: &mpsc::Sender<Asked>) -> anyhow::Result<bool> {
    match receive(line, &mut Vec::new())? {
        Message::Hello { version } if version == VERSION => {}
        Message::Hello { version } => {
            let reason = format!("this elbd speaks hand-over version {VERSION}, not {version}");
            send(line, &Message::Refused { reason }, &[])?;
            return Ok(false);
        }
        other => bail!("a process taking over sent {other:?} first"),
    }
    let (reply, sockets) = oneshot::channel();
    asks.blocking_send(Asked::Sockets(reply))?;
    let Sockets {
        handed: sockets,
        flow_seed,
        health,
    } = sockets.blocking_recv()??;
    let described = sockets.iter().map(|(d, _)| *d).collect();
    let message = Message::Sockets {
        version: VERSION,
        sockets: described,
        flow_seed,
        health: (health.targets.into_iter())
            .map(|((node, key), health)| (node, key, health))
            .collect(),
    };
    send(line, &message, &[])?;
    let fds: Vec<BorrowedFd<'_>> = sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
    for batch in fds.chunks(BATCH) {
        send(line, &Message::Descriptors { count: batch.len() }, batch)?;
    }
    info!(
        sockets = fds.len(),
        "sockets handed to a new elbd; waiting for it to serve"
    );
    match receive(line, &mut Vec::new())? {
        Message::Ready => {}
        other => bail!("the new elbd sent {other:?}, not ready"),
    }
    let (reply, revision) = oneshot::channel();
    asks.blocking_send(Asked::Quiesce(reply))?;
    let revision = revision.blocking_recv()?;
    send(line, &Message::Quiesced { revision }, &[])?;
    Ok(true)
}

/// Whether `e` says the other end of the line is gone.
fn closed(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
        )
    })
}

/// Writes `message` as one frame, with `fds` attached to it.
fn send(line: &UnixStream, message: &Message, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let json = serde_json::to_vec(message)?;
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    let mut sent = rustix::net::sendmsg(
        line,
        &[IoSlice::new(&frame)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    // The descriptors went with the first bytes; the rest of a long frame follows plainly.
    while sent < frame.len() {
        let none = &mut SendAncillaryBuffer::default();
        sent += rustix::net::sendmsg(
            line,
            &[IoSlice::new(&frame[sent..])],
            none,
            SendFlags::NOSIGNAL,
        )?;
    }
    Ok(())
}

/// Reads one frame; descriptors that came with it are added to `fds`.
fn receive(line: &UnixStream, fds: &mut Vec<OwnedFd>) -> anyhow::Result<Message> {
    let mut length = [0u8; 4];
    read_exact(line, &mut length, fds)?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        bail!("a hand-over frame of {length} bytes");
    }
    let mut json = vec![0u8; length];
    read_exact(line, &mut json, fds)?;
    Ok(serde_json::from_slice(&json)?)
}

fn read_exact(line: &UnixStream, mut buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    while !buf.is_empty() {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(BATCH))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let read = match rustix::net::recvmsg(
            line,
            &mut [IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(read) => read,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if read.bytes == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[read.bytes..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_and_messages_cross_a_socket_pair_in_order() {
        let (old, new) = UnixStream::pair().unwrap();
        let listeners: Vec<std::net::TcpListener> = (0..BATCH + 5)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let fds: Vec<BorrowedFd<'_>> = listeners.iter().map(AsFd::as_fd).collect();
        for batch in fds.chunks(BATCH) {
            send(&old, &Message::Descriptors { count: batch.len() }, batch).unwrap();
        }
        send(&old, &Message::Quiesced { revision: 7 }, &[]).unwrap();
        let mut received = Vec::new();
        while received.len() < addrs.len() {
            let message = receive(&new, &mut received).unwrap();
            assert!(
                matches!(message, Message::Descriptors { .. }),
                "{message:?}"
            );
        }
        assert!(matches!(
            receive(&new, &mut received).unwrap(),
            Message::Quiesced { revision: 7 }
        ));
        let seen: Vec<SocketAddr> = (received.into_iter())
            .map(|fd| std::net::TcpListener::from(fd).local_addr().unwrap())
            .collect();
        assert_eq!(seen, addrs);
    }

    #[test]
    fn a_frame_too_large_is_refused() {
        let (old, new) = UnixStream::pair().unwrap();
        use std::io::Write;
        (&old).write_all(&u32::MAX.to_be_bytes()).unwrap();
        let refused = receive(&new, &mut Vec::new()).unwrap_err();
        assert!(refused.to_string().contains("frame"), "{refused}");
    }
}
