//! gwlb-floor: what a Gateway Load Balancer's data path costs at the least, for bench/gwlb.
//!
//! `gwlb-floor TUN BIND APPLIANCE` makes the TUN interface `TUN` (up, MTU 8500), and carries
//! every packet read from it to `APPLIANCE` in one UDP datagram sent from `BIND`, unchanged:
//! no GENEVE header, no flow table, no checks. Each datagram that comes back to `BIND` is
//! written into the interface. The same system calls per packet as elbd's gateway (a TUN read,
//! a UDP send, a UDP receive, a TUN write), on two blocking threads.

use std::net::{SocketAddr, UdpSocket};
use std::process::exit;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tun, bind, appliance] = args.as_slice() else {
        eprintln!("usage: gwlb-floor TUN BIND_ADDR:PORT APPLIANCE_ADDR:PORT");
        exit(2);
    };
    if let Err(e) = run(tun, bind, appliance) {
        eprintln!("gwlb-floor: {e}");
        exit(1);
    }
}

fn run(tun: &str, bind: &str, appliance: &str) -> Result<(), String> {
    let appliance: SocketAddr = appliance.parse().map_err(|e| format!("{appliance}: {e}"))?;
    let device = tun_rs::DeviceBuilder::new()
        .name(tun)
        .mtu(8500)
        .enable(true)
        .build_sync()
        .map_err(|e| format!("cannot make {tun}: {e}"))?;
    let device = Arc::new(device);
    let socket = Arc::new(UdpSocket::bind(bind).map_err(|e| format!("cannot bind {bind}: {e}"))?);
    let (back_device, back_socket) = (device.clone(), socket.clone());
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            if let Ok((n, _)) = back_socket.recv_from(&mut buf) {
                let _ = back_device.send(&buf[..n]);
            }
        }
    });
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = device.recv(&mut buf).map_err(|e| format!("reading {tun}: {e}"))?;
        let _ = socket.send_to(&buf[..n], appliance);
    }
}
