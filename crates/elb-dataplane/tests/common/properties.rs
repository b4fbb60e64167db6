//! What must hold for any input to a parser: the fuzz targets (fuzz/) and the corpus
//! regression test (tests/corpus.rs) both run these.

use elb_dataplane::l7::desync::{HeadFacts, classify};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Desync mitigation: any request head parses or is refused without panicking; one that
/// parses is classified the same from its raw fields as from a header map of them (the
/// HTTP/2 path's way), whenever the http crate takes every field; and a Content-Length that
/// frames a body is one the classification found sound.
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
    if facts.content_length().is_some() {
        let unsound = [
            "BadContentLength",
            "MultipleContentLength",
            "BothTeClPresent",
        ];
        assert!(
            !unsound.contains(&raw.1),
            "framed by a length classed {}",
            raw.1
        );
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
