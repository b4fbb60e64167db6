//! The Gateway Load Balancer's node: packets from GWLB endpoints, GENEVE-encapsulated to
//! appliances, and back. [`flows`]: which appliance each flow goes to (pure).

pub mod flows;
