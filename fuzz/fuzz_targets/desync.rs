#![no_main]

#[path = "../../crates/elb-dataplane/tests/common/properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::desync(data));
