//! A TUN interface standing for a Gateway Load Balancer endpoint: what the kernel routes into
//! it is read here as IP packets (no packet-information header), and what is written to it
//! the kernel routes on as if it had arrived there. It goes when the last process holding a
//! queue of it drops its device.

use std::io;

use tun_rs::{AsyncDevice, DeviceBuilder};

/// The largest inner packet AWS's endpoints take; GENEVE adds 40 bytes of header, 68 with
/// the outer IPv4 and UDP headers.
pub(crate) const MTU: u16 = 8500;

/// Linux's answers to TUNSETIFF for an interface another process holds, and for one whose
/// flags differ from those asked.
pub(crate) const EBUSY: i32 = 16;
const EINVAL: i32 = 22;

pub(crate) struct Tun {
    device: AsyncDevice,
}

impl Tun {
    /// Creates the interface `name`, up, with AWS's MTU, or attaches to it if it exists. It is
    /// a multi-queue interface, so that a process taking over (elbd's hand-over) attaches a
    /// queue of its own while the old process still holds one: the interface, and the routes
    /// that lead into it, outlive the hand-over. What follows the attach is the same whether
    /// the interface is new (down) or another process's (up), so it never takes a live one
    /// down: IPv6 off (endpoints carry IPv4: the kernel then sends no router solicitations
    /// through it to the appliances, and inner IPv6 packets do not pass it either), AWS's
    /// MTU, up.
    pub(crate) fn create(name: &str) -> io::Result<Self> {
        let device = DeviceBuilder::new()
            .name(name)
            .multi_queue(true)
            .inherit_enable_state()
            .build_async()
            .map_err(|e| match e.raw_os_error() {
                Some(EINVAL) if held_single_queue(name) => io::Error::from_raw_os_error(EBUSY),
                _ => e,
            })?;
        let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        if let Err(e) = std::fs::write(&sysctl, "1") {
            tracing::warn!(interface = name, error = %e, "IPv6 left on: the kernel may send its own packets through the endpoint");
        }
        if device.mtu()? != MTU {
            device.set_mtu(MTU)?;
        }
        device.enabled(true)?;
        Ok(Self { device })
    }

    /// Waits for a packet, then reads up to `batch` of them, each into `buf[offset..]`, and
    /// hands each to `each` with the whole buffer and the packet's length.
    pub(crate) async fn recv_batch(
        &self,
        buf: &mut [u8],
        offset: usize,
        batch: usize,
        mut each: impl FnMut(&mut [u8], usize),
    ) -> io::Result<()> {
        self.device.readable().await?;
        for _ in 0..batch {
            match self.device.try_recv(&mut buf[offset..]) {
                Ok(n) => each(buf, n),
                // Drained: readiness is cleared for the next wait.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Hands `packet` to the kernel. A TUN write does not wait: a full queue drops it, as
    /// the network would.
    pub(crate) fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.device.try_send(packet)
    }
}

/// Whether `name` is a TUN interface made without multi-queue (by an elbd before it had them):
/// it takes no second queue, and is busy until its process lets go of it.
fn held_single_queue(name: &str) -> bool {
    const IFF_MULTI_QUEUE: u32 = 0x100;
    std::fs::read_to_string(format!("/sys/class/net/{name}/tun_flags"))
        .ok()
        .and_then(|flags| u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|flags| flags & IFF_MULTI_QUEUE == 0)
}
