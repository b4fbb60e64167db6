//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use elb_dataplane::l7::desync::{HeadFacts, classify};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Desync mitigation: any request head parses or is refused without panicking; one that
/// parses is classified the same from its raw fields (the relay's way) as from the header
/// map the general path sees, whenever the http crate takes every field; and Content-Length
/// frames a body only where Transfer-Encoding does not.
pub(crate) fn desync(data: &[u8]) {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else {
        return;
    };
    let method = request.method.expect("a complete head has a method");
    let mut facts = HeadFacts::default();
    for field in request.headers.iter() {
        facts.add(field.name.as_bytes(), field.value);
    }
    let raw = facts.class(method.as_bytes());
    if facts.transfer_encoding().is_some() {
        assert_eq!(facts.content_length(), None, "both framings for one body");
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut map = HeaderMap::new();
    for field in request.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes());
        let value = HeaderValue::from_bytes(field.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            return;
        };
        map.append(name, value);
    }
    assert_eq!(classify(&method, &map), raw, "the two paths disagree");
}
