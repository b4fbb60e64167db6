//! Network load balancers' listeners (TCP, UDP, and TCP_UDP, which is both on one port):
//! per node, the one target group the listener forwards to, hashed by flow; and the
//! terminators that end a target's open flows when the group's attributes ask for it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use elb_model::attributes::{
    DEREGISTRATION_TERMINATION, PRESERVE_CLIENT_IP, PROXY_PROTOCOL_V2, TCP_IDLE_TIMEOUT,
    UNHEALTHY_TERMINATION,
};
use elb_model::{
    Action, AlpnPolicy, HealthState, Listener as ModelListener, ListenerProtocol, LoadBalancer,
    Node, State, TargetGroup, TargetGroupProtocol, TargetIpAddressType,
};
use tokio::sync::watch;

use elb_logs::LogKind;

use super::targets::{Choice, choose};
use super::{Inputs, Kept, Runtime, keep};
use crate::admission::Admission;
use crate::table::{Door, Listener, TcpRoute, UdpRoute};
use crate::targets::{Endpoint, FlowEndpoint, FlowTargets, Flows};

/// Resets the open flows of one node to one target.
pub(super) struct Terminator {
    cut: watch::Sender<bool>,
    /// The target group of the registration.
    group_arn: String,
    /// Whether the flows are reset when the registration goes away (its deregistration delay
    /// ended): the group's `deregistration_delay.connection_termination.enabled`, as of the
    /// last snapshot that had the registration.
    on_removal: bool,
}

impl Terminator {
    fn new(group_arn: &str, on_removal: bool) -> Self {
        Self {
            cut: watch::Sender::new(false),
            group_arn: group_arn.to_owned(),
            on_removal,
        }
    }

    fn cut(&self) {
        self.cut.send_replace(true);
    }
}

/// What the runtime forgets: the terminators of registrations whose deregistration delay
/// ended (gone from a group that still exists) are fired when their group asked for it.
/// Those forgotten for other reasons (the listener, its load balancer or the node went away,
/// or the listener now forwards elsewhere) are not: their flows run on, or drain with the
/// listener's socket.
pub(super) fn forget(old: &Kept, used: &Kept, state: &State) {
    for (key, terminator) in &old.terminators {
        if !terminator.on_removal || used.terminators.contains_key(key) {
            continue;
        }
        let arn = &terminator.group_arn;
        let deregistered = state
            .regions
            .values()
            .filter_map(|region| Some((region, region.target_groups.get(arn)?)))
            .any(|(region, tg)| {
                let mut registered = tg.targets.iter().flat_map(|r| region.expand(r));
                !registered.any(|r| r.key(arn) == key.1)
            });
        if deregistered {
            terminator.cut();
        }
    }
}

impl Runtime {
    /// The listener on each node of `lb`, forwarding to its one target group: a TCP one, a
    /// UDP one, or both for TCP_UDP.
    pub(super) fn nlb_listener<'a>(
        &mut self,
        inputs: &Inputs<'a>,
        lb: &'a LoadBalancer,
        listener: &ModelListener,
        door: Door,
        used: &mut Kept,
    ) -> Vec<(&'a Node, Listener)> {
        let state = inputs.state;
        let group = listener
            .default_actions
            .first()
            .and_then(|action| match action {
                Action::Forward { target_groups, .. } => target_groups.first(),
                _ => None,
            });
        // The API lets an NLB listener forward to one group and nothing else.
        let Some(tg) = group.and_then(|g| state.target_groups.get(&g.target_group_arn)) else {
            return Vec::new();
        };
        // TLS listeners' timeout is fixed at 350 s, whatever an older store says.
        let idle_timeout = match listener.protocol {
            ListenerProtocol::Tls => 350,
            _ => listener.attributes.int(TCP_IDLE_TIMEOUT).unwrap_or(350),
        };
        let idle_timeout = Duration::from_secs(idle_timeout);
        let offer = listener
            .tls
            .as_ref()
            .map_or(&[][..], |tls| alpn_offer(tls.alpn_policy));
        let Ok(tls) = self.listener_tls(inputs, listener, offer, used) else {
            return Vec::new();
        };
        let identity_filters = listener
            .tls
            .as_ref()
            .and_then(|t| t.mutual_authentication.as_ref())
            .map(|m| m.identity_filters.clone())
            .unwrap_or_default();
        let mut per_node = Vec::new();
        for node in state.nodes_of(&lb.arn) {
            // Each transport takes the targets the security groups let it reach.
            let mut choice = |protocol| {
                let kept = (&self.kept, &mut *used);
                choose(state, node, tg, inputs.health, protocol, kept)
            };
            let tcp = listener.protocol.takes_connections().then(|| choice("tcp"));
            let udp = listener.protocol.takes_datagrams().then(|| choice("udp"));
            let fail_open = tcp.iter().chain(&udp).any(|c| c.fail_open);
            self.keep_terminators(inputs, node, tg, fail_open, used);
            let flows = keep(
                &self.kept.flows,
                &mut used.flows,
                (lb.arn.clone(), node.availability_zone.clone()),
                Arc::default,
            );
            let source_ip = node.source(tg.ip_address_type == TargetIpAddressType::Ipv6);
            if let Some(choice) = tcp {
                // AWS logs an NLB's TLS connections only.
                let access_log = tls.as_ref().and_then(|_| {
                    let node_ip = IpAddr::V4(node.private_ipv4);
                    let log = self.node_log(lb, node_ip, LogKind::Access, used)?;
                    let id = listener.arn.rsplit('/').next().unwrap_or_default();
                    Some((log, id.to_owned()))
                });
                let route = TcpRoute {
                    door: door.clone(),
                    flows: flows.clone(),
                    idle_timeout,
                    tls: tls.clone(),
                    identity_filters: identity_filters.clone(),
                    source_ip,
                    targets: Arc::new(self.flow_targets(node, tg, choice, used)),
                    access_log,
                };
                per_node.push((node, Listener::Tcp(Arc::new(route))));
            }
            if let Some(choice) = udp {
                let route = UdpRoute {
                    door: Door {
                        admission: Admission::for_listener(state, lb, "udp", listener.port),
                        ..door.clone()
                    },
                    flows,
                    source_ip,
                    targets: Arc::new(self.flow_targets(node, tg, choice, used)),
                };
                per_node.push((node, Listener::Udp(Arc::new(route))));
            }
        }
        per_node
    }

    /// Keeps a terminator for every registration of `tg` on `node`, and ends the open flows
    /// of targets that turned unhealthy: when the group asks for it (UDP groups always, as
    /// a datagram flow would otherwise keep its dead target for as long as the client
    /// sends), unless too few are healthy and the group fails open to all.
    fn keep_terminators(
        &mut self,
        inputs: &Inputs<'_>,
        node: &Node,
        tg: &TargetGroup,
        fail_open: bool,
        used: &mut Kept,
    ) {
        let attrs = &tg.attributes;
        let on_removal = attrs.flag(DEREGISTRATION_TERMINATION);
        let on_unhealthy = tg.protocol.takes_datagrams() || attrs.flag(UNHEALTHY_TERMINATION);
        let registrations = tg.targets.iter().flat_map(|r| inputs.state.expand(r));
        for registration in registrations {
            let key = (node.id.clone(), registration.key(&tg.arn));
            let unhealthy = inputs
                .health
                .get(&node.id, &key.1)
                .is_some_and(|h| h.state == HealthState::Unhealthy);
            let terminator = keep(
                &self.kept.terminators,
                &mut used.terminators,
                key.clone(),
                || Arc::new(Terminator::new(&tg.arn, on_removal)),
            );
            if unhealthy && on_unhealthy && !fail_open {
                terminator.cut();
                // Flows that come after it is healthy again start uncut.
                let fresh = Terminator::new(&tg.arn, on_removal);
                used.terminators.insert(key, Arc::new(fresh));
            } else if terminator.on_removal != on_removal {
                let renewed = Terminator {
                    cut: terminator.cut.clone(),
                    group_arn: tg.arn.clone(),
                    on_removal,
                };
                used.terminators.insert(key, Arc::new(renewed));
            }
        }
    }

    /// What `node` sends `tg`'s flows to, of those `choice` took.
    fn flow_targets(
        &self,
        node: &Node,
        tg: &TargetGroup,
        choice: Choice,
        used: &Kept,
    ) -> FlowTargets {
        let attrs = &tg.attributes;
        let endpoints = choice
            .targets
            .into_iter()
            .map(|target| {
                let terminator = &used.terminators[&(node.id.clone(), target.key)];
                Endpoint {
                    addr: target.addr,
                    load: target.load,
                    proto: FlowEndpoint {
                        cut: terminator.cut.subscribe(),
                    },
                }
            })
            .collect();
        FlowTargets {
            target_group_arn: tg.arn.as_str().into(),
            group_id: tg.arn.rsplit('/').next().unwrap_or_default().to_owned(),
            registered: choice.registered,
            endpoints,
            proto: Flows {
                seed: self.flow_seed,
                source_ip_sticky: attrs.flag("stickiness.enabled")
                    && attrs.get("stickiness.type") == Some("source_ip"),
                preserve_client_ip: attrs.flag(PRESERVE_CLIENT_IP),
                transparent: self.transparent,
                proxy_protocol: attrs.flag(PROXY_PROTOCOL_V2),
                tls: tg.protocol == TargetGroupProtocol::Tls,
            },
        }
    }
}

/// What a TLS listener offers by ALPN under its policy, in its order of preference, as AWS
/// lists them.
fn alpn_offer(policy: AlpnPolicy) -> &'static [&'static [u8]] {
    match policy {
        AlpnPolicy::Http1Only => &[b"http/1.1", b"http/1.0"],
        AlpnPolicy::Http2Only => &[b"h2"],
        AlpnPolicy::Http2Optional => &[b"http/1.1", b"http/1.0", b"h2"],
        AlpnPolicy::Http2Preferred => &[b"h2", b"http/1.1", b"http/1.0"],
        AlpnPolicy::Off => &[],
    }
}
