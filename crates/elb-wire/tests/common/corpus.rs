//! Walks a fuzz target's corpus (fuzz/corpus/TARGET/): every input the fuzzer kept, run
//! through the target's property as a regression test. Shared by each crate's corpus test.

use std::path::PathBuf;

/// Runs `check` on every input of `target`'s corpus; there must be some.
pub(crate) fn each_input(target: &str, check: fn(&[u8])) {
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
