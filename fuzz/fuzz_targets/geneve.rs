#![no_main]

#[path = "../../crates/elb-wire/tests/common/properties.rs"]
// Each target uses one of the properties.
#[allow(dead_code)]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::geneve(data));
