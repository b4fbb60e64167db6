//! The IPv4 and IPv6 headers, read only as far as a flow needs: the addresses, the transport
//! protocol, for TCP, UDP and SCTP the ports, and whether a TCP packet opens a connection.

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

/// What a packet's headers say of its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Headers {
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// Source and destination port, for TCP, UDP and SCTP packets that are not fragments
    /// (a fragment after the first has no ports, so no fragment uses them).
    pub ports: Option<(u16, u16)>,
    /// A TCP packet with SYN set: the only one that may start a TCP flow.
    pub syn: bool,
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

/// What the packet's headers say of its flow.
pub fn headers(packet: &[u8]) -> Result<Headers, Error> {
    match family(packet)? {
        Family::V4 => {
            let len = v4_header_len(packet)?;
            let octets = |at: usize| -> [u8; 4] { packet[at..at + 4].try_into().expect("4") };
            let protocol = packet[9];
            // More-fragments flag or a fragment offset.
            let fragment = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff != 0;
            let transport = (!fragment).then(|| &packet[len..]);
            Ok(Headers {
                protocol,
                source: Ipv4Addr::from(octets(12)).into(),
                destination: Ipv4Addr::from(octets(16)).into(),
                ports: transport.and_then(|t| ports(protocol, t)),
                syn: transport.is_some_and(|t| syn(protocol, t)),
            })
        }
        Family::V6 => {
            let octets = |at: usize| -> [u8; 16] { packet[at..at + 16].try_into().expect("16") };
            let (protocol, transport, fragment) = v6_transport(packet);
            let transport = transport.filter(|_| !fragment);
            Ok(Headers {
                protocol,
                source: Ipv6Addr::from(octets(8)).into(),
                destination: Ipv6Addr::from(octets(24)).into(),
                ports: transport.and_then(|t| ports(protocol, t)),
                syn: transport.is_some_and(|t| syn(protocol, t)),
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
                let Some(field) = rest.get(2..4) else {
                    return (next, None, fragment);
                };
                let field = u16::from_be_bytes([field[0], field[1]]);
                // A fragment after the first carries data, not headers: its header's next
                // header is the datagram's protocol, whatever follows.
                if field & 0xfff8 != 0 {
                    return (rest[0], None, true);
                }
                // More fragments to come: the first of a real fragment (an atomic one is
                // whole).
                fragment |= field & 1 != 0;
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

/// TCP's SYN flag, in the flags byte 13 bytes into the header.
fn syn(protocol: u8, transport: &[u8]) -> bool {
    protocol == TCP && transport.get(13).is_some_and(|flags| flags & 0x02 != 0)
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
        let f = headers(&v4(TCP, 0x4000)).unwrap(); // don't-fragment only
        assert!(!f.syn);
        assert_eq!(f.source, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(f.destination, IpAddr::from([10, 0, 0, 2]));
        assert_eq!((f.protocol, f.ports), (TCP, Some((40_000, 80))));
        assert_eq!(headers(&v4(UDP, 0x2000)).unwrap().ports, None);
        assert_eq!(headers(&v4(UDP, 0x0010)).unwrap().ports, None);
        assert_eq!(headers(&v4(1, 0)).unwrap().ports, None, "ICMP has no ports");
        let mut cut = v4(TCP, 0);
        cut.truncate(22);
        assert_eq!(headers(&cut).unwrap().ports, None);
    }

    #[test]
    fn ipv6_flows_walk_extension_headers() {
        let plain = headers(&v6(UDP, &[])).unwrap();
        assert_eq!(plain.source, IpAddr::from(Ipv6Addr::LOCALHOST));
        assert_eq!(plain.destination, IpAddr::from(Ipv6Addr::from(2)));
        assert_eq!((plain.protocol, plain.ports), (UDP, Some((40_000, 53))));
        let hop_by_hop = [UDP, 0, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            headers(&v6(0, &hop_by_hop)).unwrap().ports,
            Some((40_000, 53))
        );
        let atomic = [UDP, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(headers(&v6(44, &atomic)).unwrap().ports, Some((40_000, 53)));
        let first_of_many = [UDP, 0, 0, 1, 0, 0, 0, 1];
        let f = headers(&v6(44, &first_of_many)).unwrap();
        assert_eq!((f.protocol, f.ports), (UDP, None));
        // A later fragment's data is not read as headers, whatever it looks like: the
        // fragment header names the protocol (here one behind an authentication header).
        let later = [51, 0, 0, 8, 0, 0, 0, 1];
        let f = headers(&v6(44, &later)).unwrap();
        assert_eq!((f.protocol, f.ports), (51, None));
        let mut cut = v6(0, &hop_by_hop);
        cut.truncate(44);
        assert_eq!(headers(&cut).unwrap().ports, None);
    }

    #[test]
    fn a_syn_is_told_from_the_rest_of_a_connection() {
        let mut syn = v4(TCP, 0);
        syn.extend_from_slice(&[0; 16]);
        syn[20 + 13] = 0x02;
        assert!(headers(&syn).unwrap().syn);
        syn[20 + 13] = 0x12; // SYN-ACK
        assert!(headers(&syn).unwrap().syn);
        syn[20 + 13] = 0x10;
        assert!(!headers(&syn).unwrap().syn);
        syn[9] = UDP;
        syn[20 + 13] = 0x02;
        assert!(!headers(&syn).unwrap().syn, "only TCP has flags");
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
