//! GENEVE (RFC 8926) as a Gateway Load Balancer speaks it to its appliances on UDP 6081:
//! the inner IP packet unchanged, behind an 8-byte header and AWS's three options (class
//! 0x0108), which every packet carries in both directions.
//!
//! ```text
//!  0                   1                   2                   3
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! | Option Class = 0x0108         |   Type = 1    |R|R|R| Len = 2 |
//! |                 GWLB endpoint id (8 bytes)                     |
//! | Option Class = 0x0108         |   Type = 2    |R|R|R| Len = 2 |
//! |                 attachment id (8 bytes)                        |
//! | Option Class = 0x0108         |   Type = 3    |R|R|R| Len = 1 |
//! |                 flow cookie (4 bytes)                          |
//! |                 inner IPv4 or IPv6 packet, no Ethernet header  |
//! ```
//!
//! Option lengths count 4-byte words after the option's own 4-byte header. The protocol type
//! is an EtherType (0x0800 IPv4, 0x86DD IPv6). An option of another class is skipped unless
//! its type has the critical bit (0x80), which RFC 8926 §3.5 says a receiver that does not
//! know it must drop the packet for.

use crate::ip::{self, Family};

/// The UDP port GENEVE is carried on.
pub const PORT: u16 = 6081;
/// AWS's option class.
pub const AWS_CLASS: u16 = 0x0108;
/// The length of the header elbd writes: 8 bytes, then options of 12, 12 and 8 bytes.
pub const HEADER_LEN: usize = 8 + OPTIONS_LEN;
const OPTIONS_LEN: usize = 12 + 12 + 8;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const TYPE_ENDPOINT: u8 = 1;
const TYPE_ATTACHMENT: u8 = 2;
const TYPE_COOKIE: u8 = 3;
const CRITICAL: u8 = 0x80;

/// AWS's options: which endpoint a packet entered by, and which flow it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AwsOptions {
    /// The GWLB endpoint's id as a number: `vpce-0123456789abcdef0` is 0x123456789abcdef0.
    pub endpoint_id: u64,
    /// The endpoint's attachment to the load balancer.
    pub attachment_id: u64,
    /// The same for both directions of a flow.
    pub flow_cookie: u32,
}

/// A decoded packet: AWS's options and the inner IP packet they travel with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub vni: u32,
    pub options: AwsOptions,
    pub inner: &'a [u8],
    pub family: Family,
}

/// Why a datagram is not a GENEVE packet a Gateway Load Balancer takes. Each has a name for
/// the drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its header says.
    Short,
    /// A version other than 0.
    Version,
    /// An option that runs past the options' length.
    OptionLength,
    /// A critical option of a class or type this decoder does not know.
    Critical,
    /// One of AWS's three options missing, given twice, or of the wrong length.
    AwsOptions,
    /// A control (OAM) packet, the O bit set: not data to forward (RFC 8926 §3.4).
    Control,
    /// A protocol type other than IPv4 or IPv6.
    Protocol,
    /// The inner packet is not an IP packet of the family the header names.
    Inner(ip::Error),
}

impl Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Short => "short",
            Self::Version => "version",
            Self::OptionLength => "option_length",
            Self::Critical => "critical_option",
            Self::Control => "control",
            Self::AwsOptions => "aws_options",
            Self::Protocol => "protocol",
            Self::Inner(_) => "inner_packet",
        }
    }
}

/// The header for an inner packet of `family` with `options`: the bytes that go in front
/// of it. VNI 0: AWS carries what identifies the traffic in its options.
pub fn header(options: &AwsOptions, family: Family) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = (OPTIONS_LEN / 4) as u8;
    let ethertype = match family {
        Family::V4 => ETHERTYPE_IPV4,
        Family::V6 => ETHERTYPE_IPV6,
    };
    h[2..4].copy_from_slice(&ethertype.to_be_bytes());
    let mut at = 8;
    let mut option = |kind: u8, data: &[u8]| {
        h[at..at + 2].copy_from_slice(&AWS_CLASS.to_be_bytes());
        h[at + 2] = kind;
        h[at + 3] = (data.len() / 4) as u8;
        h[at + 4..at + 4 + data.len()].copy_from_slice(data);
        at += 4 + data.len();
    };
    option(TYPE_ENDPOINT, &options.endpoint_id.to_be_bytes());
    option(TYPE_ATTACHMENT, &options.attachment_id.to_be_bytes());
    option(TYPE_COOKIE, &options.flow_cookie.to_be_bytes());
    h
}

/// Reads a GENEVE packet as an appliance returns it (or as elbd sends it).
pub fn decode(datagram: &[u8]) -> Result<Packet<'_>, Error> {
    let fixed = datagram.get(..8).ok_or(Error::Short)?;
    if fixed[0] >> 6 != 0 {
        return Err(Error::Version);
    }
    if fixed[1] & 0x80 != 0 {
        return Err(Error::Control);
    }
    let options_end = 8 + usize::from(fixed[0] & 0x3f) * 4;
    let options = datagram.get(8..options_end).ok_or(Error::Short)?;
    let ethertype = u16::from_be_bytes([fixed[2], fixed[3]]);
    let vni = u32::from_be_bytes([0, fixed[4], fixed[5], fixed[6]]);
    let aws = aws_options(options)?;
    let family = match ethertype {
        ETHERTYPE_IPV4 => Family::V4,
        ETHERTYPE_IPV6 => Family::V6,
        _ => return Err(Error::Protocol),
    };
    let inner = &datagram[options_end..];
    match ip::family(inner) {
        Ok(found) if found == family => {}
        Ok(_) => return Err(Error::Inner(ip::Error::Version)),
        Err(e) => return Err(Error::Inner(e)),
    }
    Ok(Packet {
        vni,
        options: aws,
        inner,
        family,
    })
}

/// AWS's three options, each exactly once and of its length; other non-critical options
/// are skipped.
fn aws_options(mut options: &[u8]) -> Result<AwsOptions, Error> {
    let (mut endpoint, mut attachment, mut cookie) = (None, None, None);
    while !options.is_empty() {
        let head = options.get(..4).ok_or(Error::OptionLength)?;
        let class = u16::from_be_bytes([head[0], head[1]]);
        let kind = head[2];
        let len = 4 + usize::from(head[3] & 0x1f) * 4;
        let data = options.get(4..len).ok_or(Error::OptionLength)?;
        options = &options[len..];
        let slot = match (class, kind) {
            (AWS_CLASS, TYPE_ENDPOINT) => &mut endpoint,
            (AWS_CLASS, TYPE_ATTACHMENT) => &mut attachment,
            (AWS_CLASS, TYPE_COOKIE) => &mut cookie,
            _ if kind & CRITICAL != 0 => return Err(Error::Critical),
            _ => continue,
        };
        if slot.replace(data).is_some() {
            return Err(Error::AwsOptions);
        }
    }
    let word = |data: Option<&[u8]>| -> Result<u64, Error> {
        let bytes: [u8; 8] = data
            .and_then(|d| d.try_into().ok())
            .ok_or(Error::AwsOptions)?;
        Ok(u64::from_be_bytes(bytes))
    };
    let cookie: [u8; 4] = cookie
        .and_then(|d| d.try_into().ok())
        .ok_or(Error::AwsOptions)?;
    Ok(AwsOptions {
        endpoint_id: word(endpoint)?,
        attachment_id: word(attachment)?,
        flow_cookie: u32::from_be_bytes(cookie),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: AwsOptions = AwsOptions {
        endpoint_id: 0x0123_4567_89ab_cdef,
        attachment_id: 0xa77,
        flow_cookie: 0x8f9a_c66a,
    };

    /// A minimal IPv4 TCP packet from 10.98.1.10:37254 to 10.98.2.10:80.
    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&40u16.to_be_bytes());
        p[8] = 64;
        p[9] = 6;
        p[12..16].copy_from_slice(&[10, 98, 1, 10]);
        p[16..20].copy_from_slice(&[10, 98, 2, 10]);
        p[20..22].copy_from_slice(&37254u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p
    }

    fn packet(inner: &[u8]) -> Vec<u8> {
        let mut out = header(&OPTIONS, Family::V4).to_vec();
        out.extend_from_slice(inner);
        out
    }

    #[test]
    fn a_header_round_trips_with_the_inner_packet_unchanged() {
        let inner = ipv4_tcp();
        let bytes = packet(&inner);
        assert_eq!(bytes.len(), HEADER_LEN + inner.len());
        let p = decode(&bytes).unwrap();
        assert_eq!(p.options, OPTIONS);
        assert_eq!(p.inner, &inner[..]);
        assert_eq!((p.vni, p.family), (0, Family::V4));
    }

    #[test]
    fn the_header_is_laid_out_as_aws_sends_it() {
        let h = header(&OPTIONS, Family::V6);
        // Options length 8 words, no flags, IPv6, VNI 0.
        assert_eq!(h[..8], [8, 0, 0x86, 0xdd, 0, 0, 0, 0]);
        assert_eq!(h[8..12], [0x01, 0x08, 1, 2]);
        assert_eq!(h[12..20], 0x0123_4567_89ab_cdefu64.to_be_bytes());
        assert_eq!(h[20..24], [0x01, 0x08, 2, 2]);
        assert_eq!(h[32..36], [0x01, 0x08, 3, 1]);
        assert_eq!(h[36..40], [0x8f, 0x9a, 0xc6, 0x6a]);
    }

    #[test]
    fn unknown_options_are_skipped_unless_critical() {
        let inner = ipv4_tcp();
        let with = |class: u16, kind: u8| {
            let mut bytes = packet(&inner);
            // A one-word option of its own, after AWS's.
            let extra = [
                class.to_be_bytes()[0],
                class.to_be_bytes()[1],
                kind,
                1,
                9,
                9,
                9,
                9,
            ];
            bytes.splice(HEADER_LEN..HEADER_LEN, extra);
            bytes[0] += 2;
            bytes
        };
        assert_eq!(decode(&with(0x0109, 1)).unwrap().options, OPTIONS);
        assert_eq!(decode(&with(AWS_CLASS, 4)).unwrap().inner, &inner[..]);
        assert_eq!(decode(&with(0x0109, 0x81)), Err(Error::Critical));
        assert_eq!(decode(&with(AWS_CLASS, 1)), Err(Error::AwsOptions));
    }

    #[test]
    fn malformed_packets_are_named() {
        let good = packet(&ipv4_tcp());
        for cut in 0..HEADER_LEN {
            assert!(decode(&good[..cut]).is_err(), "{cut} bytes");
        }
        let mut version = good.clone();
        version[0] |= 0x40;
        assert_eq!(decode(&version), Err(Error::Version));
        let mut control = good.clone();
        control[1] |= 0x80;
        assert_eq!(decode(&control), Err(Error::Control));
        let mut past = good.clone();
        past[8 + 3] = 9; // the endpoint option claims 36 bytes
        assert_eq!(decode(&past), Err(Error::OptionLength));
        let mut ethernet = good.clone();
        ethernet[2..4].copy_from_slice(&0x6558u16.to_be_bytes());
        assert_eq!(decode(&ethernet), Err(Error::Protocol));
        let mut missing = good.clone();
        missing[8 + 24 + 2] = 5; // the cookie becomes an unknown type
        assert_eq!(decode(&missing), Err(Error::AwsOptions));
        let mut short_cookie = good[..HEADER_LEN].to_vec();
        short_cookie[0] -= 1;
        short_cookie[8 + 24 + 3] = 0;
        short_cookie.truncate(HEADER_LEN - 4);
        short_cookie.extend_from_slice(&ipv4_tcp());
        assert_eq!(decode(&short_cookie), Err(Error::AwsOptions));
        let mut mismatched = good.clone();
        mismatched[2..4].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        assert_eq!(decode(&mismatched), Err(Error::Inner(ip::Error::Version)));
        assert_eq!(
            decode(&good[..HEADER_LEN]),
            Err(Error::Inner(ip::Error::Short))
        );
    }
}
