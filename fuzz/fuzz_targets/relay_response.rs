#![no_main]

#[path = "../../crates/elb-dataplane/tests/common/properties.rs"]
#[allow(dead_code)] // each target runs one of the crate's properties
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::relay_response(data));
