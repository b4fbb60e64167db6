//! The fuzz corpora of the API's parsers (fuzz/corpus/TARGET/), run as regression tests.

#[path = "../../elb-wire/tests/common/corpus.rs"]
mod corpus;
#[path = "common/properties.rs"]
mod properties;

#[test]
fn query_corpus() {
    corpus::each_input("query", properties::query);
}

#[test]
fn sigv4_corpus() {
    corpus::each_input("sigv4", properties::sigv4);
}
