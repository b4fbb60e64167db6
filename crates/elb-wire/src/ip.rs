//! The IPv4 and IPv6 headers, read only as far as a flow needs: the addresses, the transport
//! protocol and, for TCP, UDP and SCTP, the ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// Why bytes are not an IP packet this reader takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its headers.
    Short,
    /// A version nibble other than 4 or 6, or not the one expected.
    Version,
    /// An IPv4 header length under 20 bytes.
    HeaderLength,
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;

/// What identifies a packet's flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// Source and destination port, for TCP, UDP and SCTP packets that are not fragments
    /// (a fragment after the first has no ports, so no fragment uses them).
    pub ports: Option<(u16, u16)>,
}

/// The packet's family, checking that its fixed header is whole.
pub fn family(packet: &[u8]) -> Result<Family, Error> {
    match packet.first().map(|b| b >> 4) {
        None => Err(Error::Short),
        Some(4) => v4_header_len(packet).map(|_| Family::V4),
        Some(6) if packet.len() >= V6_HEADER => Ok(Family::V6),
        Some(6) => Err(Error::Short),
        Some(_) => Err(Error::Version),
    }
}

/// The packet's flow.
pub fn flow(packet: &[u8]) -> Result<Flow, Error> {
    match family(packet)? {
        Family::V4 => {
            let len = v4_header_len(packet)?;
            let octets = |at: usize| -> [u8; 4] { packet[at..at + 4].try_into().expect("4") };
            let protocol = packet[9];
            // More-fragments flag or a fragment offset.
            let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
            Ok(Flow {
                protocol,
                source: Ipv4Addr::from(octets(12)).into(),
                destination: Ipv4Addr::from(octets(16)).into(),
                ports: if fragment {
                    None
                } else {
                    ports(protocol, &packet[len..])
                },
            })
        }
        Family::V6 => {
            let octets = |at: usize| -> [u8; 16] { packet[at..at + 16].try_into().expect("16") };
            let (protocol, transport, fragment) = v6_transport(packet);
            Ok(Flow {
                protocol,
                source: Ipv6Addr::from(octets(8)).into(),
                destination: Ipv6Addr::from(octets(24)).into(),
                ports: if fragment {
                    None
                } else {
                    transport.and_then(|t| ports(protocol, t))
                },
            })
        }
    }
}

const V6_HEADER: usize = 40;

fn v4_header_len(packet: &[u8]) -> Result<usize, Error> {
    let len = usize::from(packet.first().ok_or(Error::Short)? & 0x0f) * 4;
    if len < 20 {
        return Err(Error::HeaderLength);
    }
    if packet.len() < len {
        return Err(Error::Short);
    }
    Ok(len)
}

/// Walks IPv6 extension headers to the transport: its protocol number, its bytes (`None`
/// when an extension header is cut short) and whether the packet is a fragment.
fn v6_transport(packet: &[u8]) -> (u8, Option<&[u8]>, bool) {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTHENTICATION: u8 = 51;
    const DESTINATION: u8 = 60;
    let mut next = packet[6];
    let mut rest = &packet[V6_HEADER..];
    let mut fragment = false;
    loop {
        let len = match next {
            HOP_BY_HOP | ROUTING | DESTINATION => rest.get(1).map(|l| (usize::from(*l) + 1) * 8),
            AUTHENTICATION => rest.get(1).map(|l| (usize::from(*l) + 2) * 4),
            FRAGMENT => {
                // Offset or more-fragments: a real fragment (an atomic one is whole).
                fragment |= rest
                    .get(2..4)
                    .is_some_and(|b| u16::from_be_bytes([b[0], b[1]]) & 0xfff9 != 0);
                Some(8)
            }
            _ => return (next, Some(rest), fragment),
        };
        match (len, rest.first()) {
            (Some(len), Some(&after)) if rest.len() >= len => {
                next = after;
                rest = &rest[len..];
            }
            _ => return (next, None, fragment),
        }
    }
}

fn ports(protocol: u8, transport: &[u8]) -> Option<(u16, u16)> {
    if !matches!(protocol, TCP | UDP | SCTP) {
        return None;
    }
    let b = transport.get(..4)?;
    Some((
        u16::from_be_bytes([b[0], b[1]]),
        u16::from_be_bytes([b[2], b[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(protocol: u8, flags_offset: u16) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p[9] = protocol;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..24].copy_from_slice(&[0x9c, 0x40, 0, 80]);
        p
    }

    fn v6(next: u8, extensions: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[6] = next;
        p[23] = 1;
        p[39] = 2;
        p.extend_from_slice(extensions);
        p.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn ipv4_flows_have_ports_unless_fragmented() {
        let f = flow(&v4(TCP, 0x4000)).unwrap(); // don't-fragment only
        assert_eq!(f.source, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(f.destination, IpAddr::from([10, 0, 0, 2]));
        assert_eq!((f.protocol, f.ports), (TCP, Some((40_000, 80))));
        assert_eq!(flow(&v4(UDP, 0x2000)).unwrap().ports, None);
        assert_eq!(flow(&v4(UDP, 0x0010)).unwrap().ports, None);
        assert_eq!(flow(&v4(1, 0)).unwrap().ports, None, "ICMP has no ports");
        let mut cut = v4(TCP, 0);
        cut.truncate(22);
        assert_eq!(flow(&cut).unwrap().ports, None);
    }

    #[test]
    fn ipv6_flows_walk_extension_headers() {
        let plain = flow(&v6(UDP, &[])).unwrap();
        assert_eq!(plain.source, IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!(plain.destination, IpAddr::from(Ipv6Addr::from(2)));
        assert_eq!((plain.protocol, plain.ports), (UDP, Some((40_000, 53))));
        let hop_by_hop = [UDP, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(flow(&v6(0, &hop_by_hop)).unwrap().ports, Some((40_000, 53)));
        let atomic = [UDP, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(flow(&v6(44, &atomic)).unwrap().ports, Some((40_000, 53)));
        let first_of_many = [UDP, 0, 0, 1, 0, 0, 0, 1];
        let f = flow(&v6(44, &first_of_many)).unwrap();
        assert_eq!((f.protocol, f.ports), (UDP, None));
        let mut cut = v6(0, &hop_by_hop);
        cut.truncate(44);
        assert_eq!(flow(&cut).unwrap().ports, None);
    }

    #[test]
    fn what_is_not_ip_is_named() {
        assert_eq!(family(&[]), Err(Error::Short));
        assert_eq!(family(&[0x55; 40]), Err(Error::Version));
        assert_eq!(family(&[0x44; 40]), Err(Error::HeaderLength));
        assert_eq!(family(&[0x46; 20]), Err(Error::Short));
        assert_eq!(family(&[0x60; 39]), Err(Error::Short));
    }
}
