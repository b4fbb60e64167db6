//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use elb_wire::{geneve, ip, proxy_v2};

/// GENEVE: any bytes decode or are refused without panicking; what decodes has a readable
/// inner flow, and re-encoding its options in front of its inner packet decodes the same.
pub(crate) fn geneve(data: &[u8]) {
    let Ok(packet) = geneve::decode(data) else {
        return;
    };
    assert!(data.ends_with(packet.inner));
    let flow = ip::headers(packet.inner).expect("a decoded packet's inner packet is IP");
    let family = match flow.source {
        std::net::IpAddr::V4(_) => ip::Family::V4,
        std::net::IpAddr::V6(_) => ip::Family::V6,
    };
    assert_eq!(family, packet.family);
    let mut again = geneve::header(&packet.options, packet.family).to_vec();
    again.extend_from_slice(packet.inner);
    let decoded = geneve::decode(&again).expect("a re-encoded packet decodes");
    assert_eq!(
        (decoded.options, decoded.inner, decoded.family),
        (packet.options, packet.inner, packet.family)
    );
}

/// PROXY v2: any bytes decode, ask for more or are refused without panicking; a PROXY
/// header with addresses, written again, decodes to the same header.
pub(crate) fn proxy_v2(data: &[u8]) {
    let Ok(Some((header, used))) = proxy_v2::decode(data) else {
        return;
    };
    assert!(used <= data.len());
    if let proxy_v2::Header::Proxy {
        transport,
        addresses: Some((source, destination)),
    } = header
    {
        let again = proxy_v2::proxy(transport, source, destination);
        let decoded = proxy_v2::decode(&again).expect("a written header decodes");
        assert_eq!(decoded, Some((header, again.len())));
    }
}
