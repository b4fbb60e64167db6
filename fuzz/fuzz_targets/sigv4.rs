#![no_main]

#[path = "../../crates/elb-api/tests/common/properties.rs"]
// Each target uses one of the properties.
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::sigv4(data));
