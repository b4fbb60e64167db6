//! The relay on one io_uring: multishot accept, one batched submission per turn of the loop,
//! deferred task work; receives single-shot into each flow's own buffers, or multishot from
//! a ring of provided buffers.

use std::alloc::{Layout, alloc_zeroed};
use std::collections::VecDeque;
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::{BUFFER, sockaddr, target_socket};

const ACCEPT: u64 = u64::MAX;
/// Closes and cancellations: nothing to do when they complete.
const IGNORED: u64 = u64::MAX - 1;
// A flow's operations: the slot in the upper bits, the operation in the lowest three.
const CONNECT: u64 = 0;
const RECV: u64 = 2; // + direction
const SEND: u64 = 4; // + direction
/// Provided buffers (multishot): how many, in one group.
const PROVIDED: u16 = 2048;
const GROUP: u16 = 0;

/// A ring of provided buffers the kernel fills for multishot receives; a buffer comes back
/// to the ring once its bytes are sent.
struct Provided {
    entries: *mut BufRingEntry,
    memory: Box<[u8]>,
    tail: u16,
}

impl Provided {
    fn new(ring: &IoUring) -> io::Result<Self> {
        let layout = Layout::from_size_align(PROVIDED as usize * size_of::<BufRingEntry>(), 4096)
            .expect("layout");
        // SAFETY: a zeroed, page-aligned block, registered with the kernel and never freed
        // (the process ends with it).
        let entries = unsafe { alloc_zeroed(layout) }.cast::<BufRingEntry>();
        let submitter = ring.submitter();
        // SAFETY: as above; the block holds PROVIDED entries.
        unsafe { submitter.register_buf_ring_with_flags(entries as u64, PROVIDED, GROUP, 0)? };
        let mut provided = Self {
            entries,
            memory: vec![0; PROVIDED as usize * BUFFER].into_boxed_slice(),
            tail: 0,
        };
        for bid in 0..PROVIDED {
            provided.give(bid);
        }
        Ok(provided)
    }

    fn bytes(&self, bid: u16) -> &[u8] {
        &self.memory[bid as usize * BUFFER..][..BUFFER]
    }

    /// Hands buffer `bid` back to the kernel.
    fn give(&mut self, bid: u16) {
        let addr = self.bytes(bid).as_ptr() as u64;
        // SAFETY: the slot at the tail is ours until the tail is published; the ring holds
        // PROVIDED entries and holds every buffer at most once.
        unsafe {
            let entry = &mut *self.entries.add((self.tail % PROVIDED) as usize);
            entry.set_addr(addr);
            entry.set_len(BUFFER as u32);
            entry.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

/// One direction: bytes read from `fds[d]`, written to `fds[1 - d]`.
#[derive(Default)]
struct Half {
    /// Single-shot receives' own buffer (none with provided buffers).
    own: Option<Box<[u8]>>,
    /// Bytes received and not yet sent on: (provided buffer id, or 0 for `own`; length).
    queue: VecDeque<(u16, usize)>,
    sent: usize,
    receiving: bool,
    sending: bool,
    /// The side read from has closed; the half-close is relayed once `queue` is sent.
    eof: bool,
    ended: bool,
}

struct Flow {
    /// The client's socket and the target's.
    fds: [RawFd; 2],
    halves: [Half; 2],
    /// The target's address, lent to the kernel until the connect completes.
    target: libc::sockaddr_in,
    in_flight: u32,
    broken: bool,
}

pub(crate) struct Relay {
    ring: IoUring,
    /// Boxed: the kernel holds pointers into a flow (its target address, its buffers).
    flows: Vec<Option<Box<Flow>>>,
    free: Vec<usize>,
    spare: Vec<Box<[u8]>>,
    provided: Option<Provided>,
    /// Halves whose multishot receive ended for want of provided buffers.
    starved: Vec<(usize, usize)>,
    /// Entries to submit at the next turn of the loop.
    backlog: Vec<squeue::Entry>,
    target: libc::sockaddr_in,
    source: libc::sockaddr_in,
}

impl Relay {
    pub(crate) fn new(target: SocketAddrV4, source: Ipv4Addr, multishot: bool) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(8192)
            .build(4096)?;
        let provided = if multishot {
            Some(Provided::new(&ring)?)
        } else {
            None
        };
        Ok(Self {
            ring,
            flows: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            provided,
            starved: Vec::new(),
            backlog: Vec::new(),
            target: sockaddr(target),
            source: sockaddr(SocketAddrV4::new(source, 0)),
        })
    }

    pub(crate) fn run(mut self, listener: &TcpListener) -> io::Result<()> {
        let listener = listener.as_raw_fd();
        let accept = || opcode::AcceptMulti::new(types::Fd(listener)).build();
        self.backlog.push(accept().user_data(ACCEPT));
        let mut done = Vec::new();
        loop {
            for entry in self.backlog.drain(..) {
                // SAFETY: every buffer and address an entry points to lives in a boxed flow
                // (or the provided ring) that is freed only once none of its operations is
                // in flight.
                while unsafe { self.ring.submission().push(&entry) }.is_err() {
                    self.ring.submit()?;
                }
            }
            match self.ring.submit_and_wait(1) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            };
            let completed = self.ring.completion();
            done.extend(completed.map(|c| (c.user_data(), c.result(), c.flags())));
            for (data, result, flags) in done.drain(..) {
                match data {
                    ACCEPT => {
                        if !cqueue::more(flags) {
                            self.backlog.push(accept().user_data(ACCEPT));
                        }
                        match result {
                            0.. => self.open(result),
                            e if -e == libc::EMFILE || -e == libc::ENFILE => {
                                // Out of descriptors: give the flows a moment to close
                                // some rather than spin on a failing accept.
                                eprintln!("accept: {}", io::Error::from_raw_os_error(-e));
                                std::thread::sleep(std::time::Duration::from_millis(10));
                            }
                            _ => {}
                        }
                    }
                    IGNORED => {}
                    _ => self.step((data >> 3) as usize, data & 7, result, flags),
                }
            }
        }
    }

    fn open(&mut self, client: RawFd) {
        let Some(target) = target_socket(&self.source, true) else {
            // SAFETY: the accepted descriptor is ours.
            unsafe { libc::close(client) };
            return;
        };
        let mut halves: [Half; 2] = Default::default();
        if self.provided.is_none() {
            for half in &mut halves {
                let buffer = self.spare.pop();
                half.own = Some(buffer.unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice()));
            }
        }
        let flow = Box::new(Flow {
            fds: [client, target],
            halves,
            target: self.target,
            in_flight: 1,
            broken: false,
        });
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.flows.push(None);
                self.flows.len() - 1
            }
        };
        let addr = (&raw const flow.target).cast();
        let len = size_of::<libc::sockaddr_in>() as u32;
        let connect = opcode::Connect::new(types::Fd(target), addr, len);
        self.flows[slot] = Some(flow);
        let tag = (slot as u64) << 3 | CONNECT;
        self.backlog.push(connect.build().user_data(tag));
    }

    fn step(&mut self, slot: usize, op: u64, result: i32, flags: u32) {
        let multishot = self.provided.is_some();
        let mut flow = self.flows[slot].take().expect("a live flow");
        match op {
            CONNECT => {
                flow.in_flight -= 1;
                if result < 0 {
                    self.reset(&mut flow);
                } else if !flow.broken {
                    self.receive(&mut flow, slot, 0);
                    self.receive(&mut flow, slot, 1);
                }
            }
            RECV | 3 => {
                let dir = (op - RECV) as usize;
                if !multishot || !cqueue::more(flags) {
                    flow.in_flight -= 1;
                    flow.halves[dir].receiving = false;
                }
                self.received(&mut flow, slot, dir, result, flags);
            }
            _ => {
                let dir = (op - SEND) as usize;
                flow.in_flight -= 1;
                flow.halves[dir].sending = false;
                self.sent(&mut flow, slot, dir, result);
            }
        }
        let over = flow.broken || flow.halves.iter().all(|h| h.ended);
        if !(over && flow.in_flight == 0) {
            self.flows[slot] = Some(flow);
            return;
        }
        for fd in flow.fds {
            let close = opcode::Close::new(types::Fd(fd));
            self.backlog.push(close.build().user_data(IGNORED));
        }
        for half in flow.halves {
            self.spare.extend(half.own);
            if let Some(provided) = &mut self.provided {
                half.queue.iter().for_each(|&(bid, _)| provided.give(bid));
            }
        }
        self.starved.retain(|&(s, _)| s != slot);
        self.free.push(slot);
    }

    fn receive(&mut self, flow: &mut Flow, slot: usize, dir: usize) {
        let fd = types::Fd(flow.fds[dir]);
        let half = &mut flow.halves[dir];
        let entry = match &mut half.own {
            Some(own) => opcode::Recv::new(fd, own.as_mut_ptr(), own.len() as u32).build(),
            None => opcode::RecvMulti::new(fd, GROUP).build(),
        };
        half.receiving = true;
        flow.in_flight += 1;
        let tag = (slot as u64) << 3 | (RECV + dir as u64);
        self.backlog.push(entry.user_data(tag));
    }

    fn received(&mut self, flow: &mut Flow, slot: usize, dir: usize, result: i32, flags: u32) {
        let bid = cqueue::buffer_select(flags);
        if flow.broken {
            if let (Some(bid), Some(provided)) = (bid, &mut self.provided) {
                provided.give(bid);
            }
            return;
        }
        let half = &mut flow.halves[dir];
        match result {
            1.. => {
                half.queue.push_back((bid.unwrap_or(0), result as usize));
                if !half.sending {
                    self.send(flow, slot, dir);
                }
                let half = &flow.halves[dir];
                // The kernel may end a multishot receive at any time: take it up again.
                if half.own.is_none() && !half.receiving {
                    self.receive(flow, slot, dir);
                }
            }
            0 => {
                half.eof = true;
                if half.queue.is_empty() {
                    relay_eof(flow, dir);
                }
            }
            e if -e == libc::ENOBUFS => self.starved.push((slot, dir)),
            _ => self.reset(flow),
        }
    }

    fn send(&mut self, flow: &mut Flow, slot: usize, dir: usize) {
        let half = &mut flow.halves[dir];
        let &(bid, len) = half.queue.front().expect("bytes to send");
        let bytes = match (&half.own, &self.provided) {
            (Some(own), _) => &own[..],
            (None, Some(provided)) => provided.bytes(bid),
            (None, None) => unreachable!("a half receives into one or the other"),
        };
        let rest = &bytes[half.sent..len];
        let fd = types::Fd(flow.fds[1 - dir]);
        let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32).build();
        half.sending = true;
        flow.in_flight += 1;
        let tag = (slot as u64) << 3 | (SEND + dir as u64);
        self.backlog.push(entry.user_data(tag));
    }

    fn sent(&mut self, flow: &mut Flow, slot: usize, dir: usize, result: i32) {
        if flow.broken {
            return;
        }
        if result < 0 {
            return self.reset(flow);
        }
        let half = &mut flow.halves[dir];
        half.sent += result as usize;
        let &(bid, len) = half.queue.front().expect("bytes sent");
        if half.sent < len {
            return self.send(flow, slot, dir);
        }
        half.queue.pop_front();
        half.sent = 0;
        if let Some(provided) = &mut self.provided {
            provided.give(bid);
            self.feed_starved(flow, slot);
        }
        let half = &flow.halves[dir];
        if !half.queue.is_empty() {
            self.send(flow, slot, dir);
        } else if half.eof {
            relay_eof(flow, dir);
        } else if half.own.is_some() {
            self.receive(flow, slot, dir);
        }
    }

    /// Takes up the receives that ran out of provided buffers, now that one is back.
    fn feed_starved(&mut self, current: &mut Flow, current_slot: usize) {
        for (slot, dir) in std::mem::take(&mut self.starved) {
            if slot == current_slot {
                if !current.broken && !current.halves[dir].receiving {
                    self.receive(current, slot, dir);
                }
                continue;
            }
            // Any other starved flow sits in its slot (only the current one is taken out).
            let Some(mut flow) = self.flows[slot].take() else {
                continue;
            };
            if !flow.broken && !flow.halves[dir].receiving {
                self.receive(&mut flow, slot, dir);
            }
            self.flows[slot] = Some(flow);
        }
    }

    /// Resets both sides: pending operations are cancelled (they complete with ECANCELED)
    /// and the closes that follow send resets, not FINs.
    fn reset(&mut self, flow: &mut Flow) {
        flow.broken = true;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        for fd in flow.fds {
            // SAFETY: a plain setsockopt on the flow's own descriptor.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as u32,
                );
            }
            let cancel = types::CancelBuilder::fd(types::Fd(fd)).all();
            let entry = opcode::AsyncCancel2::new(cancel).build();
            self.backlog.push(entry.user_data(IGNORED));
        }
    }
}

/// Relays a half-close: a direct call, as tokio makes (io_uring hands shutdowns to a worker
/// thread, never running them inline).
fn relay_eof(flow: &mut Flow, dir: usize) {
    // SAFETY: a plain shutdown of the flow's own descriptor.
    unsafe { libc::shutdown(flow.fds[1 - dir], libc::SHUT_WR) };
    flow.halves[dir].ended = true;
}
