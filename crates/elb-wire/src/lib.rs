//! Wire formats elbd speaks to targets, as plain functions over bytes: no sockets, no
//! clocks, so that each is unit-tested at every split (and can be fuzzed).

pub mod proxy_v2;
