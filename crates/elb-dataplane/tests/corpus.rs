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
