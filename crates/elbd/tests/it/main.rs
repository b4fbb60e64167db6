//! elbd's integration tests: one binary that starts the real `elbd` process, real backends
//! and real clients on loopback. Every test uses its own 127.x addresses (a lab slot of its
//! own: see [`harness::Lab::new`]), so they run in parallel.

mod access_logs;
mod api;
mod authenticate;
mod console;
mod dns;
mod dualstack;
mod durability;
mod errors;
mod etcd;
mod explain;
mod faults;
mod gateway;
mod handover;
mod harness;
mod health;
mod lambda;
mod limits;
mod load;
mod metrics;
mod netlab;
mod netlab_parts;
mod netns;
mod nlb;
mod protocols;
mod relay;
mod reload;
mod rules;
mod sticky;
mod tls;
mod zones;
