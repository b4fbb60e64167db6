//! Wire formats elbd speaks to targets and appliances, as plain functions over bytes: no
//! sockets, no clocks, so that each is unit-tested at every split and fuzzed.

pub mod geneve;
pub mod ip;
pub mod proxy_v2;
pub mod sigv4;
