//! The fuzz corpora (fuzz/corpus/TARGET/), run as regression tests: every input the fuzzers
//! kept keeps passing the targets' properties (a crash they find goes into the corpus once
//! fixed).

#[path = "common/properties.rs"]
mod properties;

use std::path::PathBuf;

fn each_input(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        check(&data);
        count += 1;
    }
    assert!(count > 0, "{} holds no inputs", dir.display());
}

#[test]
fn geneve_corpus() {
    each_input("geneve", properties::geneve);
}

#[test]
fn proxy_v2_corpus() {
    each_input("proxy_v2", properties::proxy_v2);
}
