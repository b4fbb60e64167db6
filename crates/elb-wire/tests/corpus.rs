//! The fuzz corpora (fuzz/corpus/TARGET/), run as regression tests: every input the fuzzers
//! kept keeps passing the targets' properties (a crash they find goes into the corpus once
//! fixed).

#[path = "common/properties.rs"]
mod properties;

#[path = "common/corpus.rs"]
mod corpus;

use corpus::each_input;

#[test]
fn geneve_corpus() {
    each_input("geneve", properties::geneve);
}

#[test]
fn proxy_v2_corpus() {
    each_input("proxy_v2", properties::proxy_v2);
}
