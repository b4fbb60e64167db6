//! The fuzz corpora of the data plane's parsers (fuzz/corpus/TARGET/), run as regression
//! tests.

#[path = "../../elb-wire/tests/common/corpus.rs"]
mod corpus;
#[path = "common/properties.rs"]
mod properties;

#[test]
fn desync_corpus() {
    corpus::each_input("desync", properties::desync);
}

#[test]
fn relay_request_corpus() {
    corpus::each_input("relay_request", properties::relay_request);
}

#[test]
fn relay_response_corpus() {
    corpus::each_input("relay_response", properties::relay_response);
}

#[test]
fn chunked_corpus() {
    corpus::each_input("chunked", properties::chunked);
}
