//! A TUN interface standing for a Gateway Load Balancer endpoint: what the kernel routes into
//! it is read here as IP packets (no packet-information header), and what is written to it
//! the kernel routes on as if it had arrived there. It goes when the last process holding a
//! queue of it drops its device.

use std::io;
use std::path::Path;

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
    /// that lead into it, outlive the hand-over. Endpoints carry IPv4 (their address type is
    /// ipv4): the interface takes IPv6 off before it first comes up, so that the kernel sends
    /// no router solicitations through it to the appliances (inner IPv6 packets do not pass it
    /// either).
    pub(crate) fn create(name: &str) -> io::Result<Self> {
        let builder = DeviceBuilder::new().name(name).multi_queue(true);
        if Path::new("/sys/class/net").join(name).exists() {
            // As the process that made it left it: up, with its MTU. One made without
            // multi-queue (by an elbd before it had them) takes no second queue: busy until
            // its process lets go of it.
            let device = builder.inherit_enable_state().build_async().map_err(|e| {
                match e.raw_os_error() {
                    Some(EINVAL) => io::Error::from_raw_os_error(EBUSY),
                    _ => e,
                }
            })?;
            return Ok(Self { device });
        }
        let device = builder.mtu(MTU).enable(false).build_async()?;
        let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        if let Err(e) = std::fs::write(&sysctl, "1") {
            tracing::warn!(interface = name, error = %e, "IPv6 left on: the kernel may send its own packets through the endpoint");
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
