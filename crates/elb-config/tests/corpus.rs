//! The config loader's fuzz corpus (fuzz/corpus/config/), run as a regression test.

#[path = "../../elb-wire/tests/common/corpus.rs"]
mod corpus;
#[path = "common/properties.rs"]
mod properties;

#[test]
fn config_corpus() {
    corpus::each_input("config", properties::config);
}
