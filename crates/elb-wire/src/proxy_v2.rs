//! PROXY protocol version 2 (HAProxy's `proxy-protocol.txt`, §2.2): the binary header an NLB
//! sends a target before the client's first byte, naming the client's and the listener's
//! addresses. A health check's connection carries no client, and sends LOCAL.
//!
//! The header: the 12-byte signature, a version-and-command byte (0x20 LOCAL, 0x21 PROXY),
//! a family-and-transport byte, the length of what follows, then the addresses (source
//! address, destination address, source port, destination port) and any TLVs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// What every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The bytes before the addresses: signature, version and command, family, length.
const FIXED: usize = 16;

/// A decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// The connection is the proxy's own (a health check): use its real addresses.
    Local,
    /// A relayed connection: the client (`source`) and the address it reached
    /// (`destination`). `None` when the family is one this decoder does not read (UNSPEC,
    /// UNIX), which the specification says to accept as if no addresses were given.
    Proxy {
        transport: Transport,
        addresses: Option<(SocketAddr, SocketAddr)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Datagram,
}

/// Why bytes are not a version 2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Signature,
    Version,
    Command,
    /// A family or transport the specification does not define.
    Family,
    /// The length is too short for the family's addresses.
    Length,
}

/// The LOCAL header: a health check's, with no addresses.
pub fn local() -> [u8; FIXED] {
    let mut header = [0u8; FIXED];
    header[..12].copy_from_slice(&SIGNATURE);
    header[12] = 0x20;
    header
}

/// The PROXY header for a connection from `source` to `destination`. When the two families
/// differ, both are written as IPv6 (IPv4 addresses mapped), so the header stays exact.
pub fn proxy(transport: Transport, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let low = match transport {
        Transport::Stream => 0x01,
        Transport::Datagram => 0x02,
    };
    let mut header = Vec::with_capacity(FIXED + 36);
    header.extend_from_slice(&SIGNATURE);
    header.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            header.push(0x10 | low);
            header.extend_from_slice(&12u16.to_be_bytes());
            header.extend_from_slice(&s.octets());
            header.extend_from_slice(&d.octets());
        }
        (s, d) => {
            header.push(0x20 | low);
            header.extend_from_slice(&36u16.to_be_bytes());
            header.extend_from_slice(&v6(s).octets());
            header.extend_from_slice(&v6(d).octets());
        }
    }
    header.extend_from_slice(&source.port().to_be_bytes());
    header.extend_from_slice(&destination.port().to_be_bytes());
    header
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Reads a header from the start of `bytes`: `Ok(None)` while more bytes are needed, else
/// the header and how many bytes it took (TLVs included, and skipped). Fails as soon as the
/// bytes seen cannot start a header.
pub fn decode(bytes: &[u8]) -> Result<Option<(Header, usize)>, Error> {
    let seen = bytes.len().min(SIGNATURE.len());
    if bytes[..seen] != SIGNATURE[..seen] {
        return Err(Error::Signature);
    }
    if bytes.len() < FIXED {
        // The version and command byte may already tell these bytes are no header.
        return match bytes.get(12) {
            Some(b) if b >> 4 != 2 => Err(Error::Version),
            Some(b) if b & 0x0f > 1 => Err(Error::Command),
            _ => Ok(None),
        };
    }
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    if version != 2 {
        return Err(Error::Version);
    }
    if command > 1 {
        return Err(Error::Command);
    }
    let length = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let (family, transport) = (bytes[13] >> 4, bytes[13] & 0x0f);
    // The specification defines families 0-3 and transports 0-2, and has receivers drop
    // anything else.
    if family > 3 || transport > 2 {
        return Err(Error::Family);
    }
    let needed = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if command == 1 && length < needed {
        return Err(Error::Length);
    }
    let Some(body) = bytes.get(FIXED..FIXED + length) else {
        return Ok(None);
    };
    let header = if command == 0 {
        Header::Local
    } else {
        let transport = if transport == 2 {
            Transport::Datagram
        } else {
            Transport::Stream
        };
        Header::Proxy {
            transport,
            addresses: addresses(family, body),
        }
    };
    Ok(Some((header, FIXED + length)))
}

/// The source and destination in `body`, for the INET and INET6 families.
fn addresses(family: u8, body: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let (source, destination, ports): (IpAddr, IpAddr, usize) = match family {
        1 => {
            let ip = |at: usize| Ipv4Addr::from(<[u8; 4]>::try_from(&body[at..at + 4]).unwrap());
            (ip(0).into(), ip(4).into(), 8)
        }
        2 => {
            let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&body[at..at + 16]).unwrap());
            (ip(0).into(), ip(16).into(), 32)
        }
        _ => return None,
    };
    Some((
        SocketAddr::new(source, port(ports)),
        SocketAddr::new(destination, port(ports + 2)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Every prefix of `bytes` shorter than the header asks for more; the whole (with the
    /// client's bytes after it) decodes to `expected`, taking exactly the header.
    fn decodes_at_every_split(header: &[u8], expected: &Header) {
        for cut in 0..header.len() {
            assert_eq!(
                decode(&header[..cut]),
                Ok(None),
                "{cut} of {} bytes",
                header.len()
            );
        }
        let mut stream = header.to_vec();
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(decode(&stream), Ok(Some((expected.clone(), header.len()))));
    }

    #[test]
    fn tcp_over_ipv4_round_trips() {
        let (client, listener) = (addr("127.9.0.7:51000"), addr("127.10.0.4:80"));
        let header = proxy(Transport::Stream, client, listener);
        assert_eq!(header.len(), 28);
        assert_eq!(header[12..16], [0x21, 0x11, 0, 12]);
        assert_eq!(header[16..20], [127, 9, 0, 7]);
        assert_eq!(header[24..26], 51000u16.to_be_bytes());
        let expected = Header::Proxy {
            transport: Transport::Stream,
            addresses: Some((client, listener)),
        };
        decodes_at_every_split(&header, &expected);
    }

    #[test]
    fn ipv6_and_mixed_families_round_trip_as_ipv6() {
        let (client, listener) = (addr("[::1]:4000"), addr("[fd00::2]:443"));
        let header = proxy(Transport::Stream, client, listener);
        assert_eq!((header.len(), header[13]), (52, 0x21));
        let expected = Header::Proxy {
            transport: Transport::Stream,
            addresses: Some((client, listener)),
        };
        decodes_at_every_split(&header, &expected);

        let header = proxy(Transport::Datagram, addr("[::1]:53"), addr("127.0.0.1:53"));
        assert_eq!(header[13], 0x22);
        let Ok(Some((
            Header::Proxy {
                addresses,
                transport,
            },
            _,
        ))) = decode(&header)
        else {
            panic!("{header:?}");
        };
        assert_eq!(transport, Transport::Datagram);
        assert_eq!(addresses.unwrap().1, addr("[::ffff:127.0.0.1]:53"));
    }

    #[test]
    fn local_has_no_addresses() {
        let header = local();
        assert_eq!(header[12..16], [0x20, 0x00, 0, 0]);
        decodes_at_every_split(&header, &Header::Local);
    }

    #[test]
    fn tlvs_and_unknown_families_are_skipped() {
        let mut header = proxy(Transport::Stream, addr("10.0.0.1:1"), addr("10.0.0.2:2"));
        // PP2_TYPE_AWS with a VPC endpoint id, as PrivateLink traffic carries.
        let tlv = [0xEA, 0x00, 0x05, 0x01, b'v', b'p', b'c', b'e'];
        header.extend_from_slice(&tlv);
        header[15] += tlv.len() as u8;
        let Ok(Some((Header::Proxy { addresses, .. }, taken))) = decode(&header) else {
            panic!();
        };
        assert_eq!((addresses.unwrap().0, taken), (addr("10.0.0.1:1"), 36));

        // UNIX sockets: two paths of 108 bytes, which this decoder does not read.
        let mut unix = local().to_vec();
        unix[12] = 0x21;
        unix[13] = 0x31;
        unix[14..16].copy_from_slice(&216u16.to_be_bytes());
        unix.extend_from_slice(&[0u8; 216]);
        let unspecified = Header::Proxy {
            transport: Transport::Stream,
            addresses: None,
        };
        assert_eq!(decode(&unix), Ok(Some((unspecified, 232))));
        unix[14..16].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(decode(&unix), Err(Error::Length));
    }

    #[test]
    fn what_is_no_header_is_refused_early() {
        assert_eq!(decode(b"GET / HTTP/1.1\r\n"), Err(Error::Signature));
        assert_eq!(decode(b"\r\n\r\nX"), Err(Error::Signature));
        let mut v1 = SIGNATURE.to_vec();
        v1.push(0x11);
        assert_eq!(decode(&v1), Err(Error::Version));
        v1[12] = 0x22;
        assert_eq!(decode(&v1), Err(Error::Command));
        // A PROXY header over INET whose length cannot hold two addresses and ports.
        let mut short = proxy(Transport::Stream, addr("1.2.3.4:5"), addr("5.6.7.8:9"));
        short[15] = 8;
        assert_eq!(decode(&short), Err(Error::Length));
        let mut unknown = proxy(Transport::Stream, addr("1.2.3.4:5"), addr("5.6.7.8:9"));
        unknown[13] = 0x41;
        assert_eq!(decode(&unknown), Err(Error::Family));
        unknown[13] = 0x13;
        assert_eq!(decode(&unknown), Err(Error::Family));
    }
}
