//! Snapshot + health → [`RoutingTable`], and the runtime state (round-robin cursors,
//! outstanding-request counters, connection pools, refusal counters) that outlives any one
//! table. Only the control path runs this.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use elb_model::attributes::{RESPONSE_HEADER_PREFIX, RESPONSE_HEADER_SUFFIX, SERVER_HEADER};
use elb_model::health::below_minimum;
use elb_model::ssl_policy::ssl_policy;
use elb_model::{
    Action, HealthState, HealthView, ListenerProtocol, ListenerTls, Node, Region, Registration,
    ServerCertificate, State, TargetGroup, TargetGroupProtocol,
};
use elb_tls::server::{Resumption, Served, SniResolver, server_config};
use elb_tls::{TlsError, material, mtls, policy};
use http::{HeaderName, HeaderValue};
use tracing::{error, warn};

use crate::admission::Admission;
use crate::l7::desync::Mode as DesyncMode;
use crate::l7::rules::Matcher;
use crate::pool::TargetPool;
use crate::select;
use crate::sticky::{CookieSealer, Stickiness};
use crate::table::{Forward, HttpSettings, Route, RouteAction, RoutingTable, XffMode};
use crate::targets::{Algorithm, Endpoint, TargetSet};
use crate::upstream::Upstream;

/// State that must survive snapshot swaps, keyed by stable keys.
#[derive(Default)]
pub(crate) struct Runtime {
    /// `node id|target group ARN` → round-robin cursor.
    cursors: HashMap<String, Arc<AtomicUsize>>,
    /// `node id|registration key` → requests outstanding.
    outstanding: HashMap<String, Arc<AtomicUsize>>,
    /// `node id|registration key` → the node's keep-alive connections to the target.
    pools: HashMap<String, Arc<TargetPool>>,
    /// Node address → its pool of connections to targets.
    upstreams: HashMap<IpAddr, Upstream>,
    /// Load balancer ARN → connections refused by its security groups.
    refused: HashMap<String, Arc<AtomicU64>>,
    /// What an HTTPS listener's configuration was made of → that configuration, so that a
    /// snapshot that changes nothing of it keeps it (and its parsed keys).
    tls: HashMap<String, Arc<rustls::ServerConfig>>,
    /// Session tickets and cache, shared by every HTTPS listener for as long as elbd runs.
    resumption: Option<Resumption>,
    /// The stickiness cookie key (hex) and its sealer.
    sealer: Option<(String, Arc<CookieSealer>)>,
}

/// What one compile uses of the runtime; becomes the runtime afterwards, so that whatever no
/// route uses any more is forgotten (pools of removed nodes close with them).
#[derive(Default)]
struct Used {
    cursors: HashMap<String, Arc<AtomicUsize>>,
    outstanding: HashMap<String, Arc<AtomicUsize>>,
    pools: HashMap<String, Arc<TargetPool>>,
    upstreams: HashMap<IpAddr, Upstream>,
    refused: HashMap<String, Arc<AtomicU64>>,
    tls: HashMap<String, Arc<rustls::ServerConfig>>,
}

fn keep<K: std::hash::Hash + Eq + Clone, V: Clone + Default>(
    old: &HashMap<K, V>,
    used: &mut HashMap<K, V>,
    key: &K,
) -> V {
    used.entry(key.clone())
        .or_insert_with(|| old.get(key).cloned().unwrap_or_default())
        .clone()
}

impl Runtime {
    /// Compiles `state` and `health`: for every node of every load balancer, one route per
    /// HTTP listener, with its rules and the targets that node may send to.
    pub(crate) fn compile(
        &mut self,
        state: &State,
        health: &HealthView,
        revision: u64,
    ) -> RoutingTable {
        let mut routes = HashMap::new();
        let mut used = Used::default();
        let sealer = self.sealer(&state.secrets.cookie_key);
        for region in state.regions.values() {
            let iam = &state.server_certificates;
            self.compile_region(region, iam, health, &sealer, &mut used, &mut routes);
        }
        self.cursors = used.cursors;
        self.outstanding = used.outstanding;
        self.pools = used.pools;
        self.upstreams = used.upstreams;
        self.refused = used.refused;
        self.tls = used.tls;
        RoutingTable { revision, routes }
    }

    /// The routes of one region's listeners, added to `routes`. Node addresses are allocated
    /// apart across regions (`State::in_region`), so an address already routed means a
    /// damaged store: the first region's listener keeps it and the clash is logged.
    fn compile_region(
        &mut self,
        state: &Region,
        iam: &BTreeMap<String, ServerCertificate>,
        health: &HealthView,
        sealer: &Option<Arc<CookieSealer>>,
        used: &mut Used,
        routes: &mut HashMap<SocketAddr, Arc<Route>>,
    ) {
        for listener in state
            .listeners
            .values()
            .filter(|l| matches!(l.protocol, ListenerProtocol::Http | ListenerProtocol::Https))
        {
            let lb = &state.load_balancers[&listener.load_balancer_arn];
            let http = http_settings(&lb.attributes);
            let tls = match &listener.tls {
                None => None,
                Some(tls) => match self.tls_config(state, iam, tls, http.http2, used) {
                    Ok(config) => Some(config),
                    Err(e) => {
                        // The API checked all of this; only a damaged store gets here.
                        error!(listener = %listener.arn, error = %e, "listener not served");
                        continue;
                    }
                },
            };
            let admission = Admission::for_listener(state, lb, listener.port);
            let refused = keep(&self.refused, &mut used.refused, &lb.arn);
            let rules = state.rules_of(&listener.arn);
            let matchers: Vec<Vec<Matcher>> = rules
                .iter()
                .map(|r| r.conditions.iter().map(Matcher::compile).collect())
                .collect();
            for node in state.nodes_of(&lb.arn) {
                let node_ip = IpAddr::V4(node.private_ipv4);
                let upstream = used
                    .upstreams
                    .entry(node_ip)
                    .or_insert_with(|| {
                        self.upstreams
                            .get(&node_ip)
                            .cloned()
                            .unwrap_or_else(|| Upstream::new(node_ip))
                    })
                    .clone();
                let mut sets = HashMap::new();
                let mut action = |actions: &[Action]| {
                    self.action(state, health, node, &actions[0], &mut sets, used)
                };
                let compiled_rules: Vec<_> = rules
                    .iter()
                    .zip(&matchers)
                    .map(|(rule, matchers)| (matchers.clone(), action(&rule.actions)))
                    .collect();
                let header_conditions = compiled_rules
                    .iter()
                    .flat_map(|(matchers, _)| matchers)
                    .any(|m| matches!(m, Matcher::Header(..)));
                let mut route = Route {
                    admission: admission.clone(),
                    refused: refused.clone(),
                    listener_arn: listener.arn.clone(),
                    port: listener.port,
                    dns_name: lb.dns_name.clone(),
                    http: http.clone(),
                    rules: compiled_rules,
                    default_action: action(&listener.default_actions),
                    upstream,
                    tls: tls.clone(),
                    mtls: listener
                        .tls
                        .as_ref()
                        .and_then(|t| t.mutual_authentication.as_ref())
                        .map(|m| m.mode),
                    response_headers: response_headers(&listener.attributes),
                    server_header: listener.attributes.get(SERVER_HEADER) != Some("false"),
                    sealer: sealer.clone(),
                    relayable: false,
                    header_conditions,
                };
                route.relayable = route.relay_serves();
                let route = Arc::new(route);
                // The node listens on its private address and, when it has one, its public one.
                for ip in node.addresses() {
                    let addr = SocketAddr::new(IpAddr::V4(ip), listener.port);
                    match routes.entry(addr) {
                        Entry::Vacant(slot) => {
                            slot.insert(route.clone());
                        }
                        Entry::Occupied(taken) => warn!(
                            %addr,
                            listener = %listener.arn,
                            serving = %taken.get().listener_arn,
                            "address already served by another region's listener; not served"
                        ),
                    }
                }
            }
        }
    }

    fn sealer(&mut self, key: &str) -> Option<Arc<CookieSealer>> {
        if self.sealer.as_ref().is_none_or(|(k, _)| k != key) {
            self.sealer = CookieSealer::from_hex(key).map(|s| (key.to_owned(), Arc::new(s)));
        }
        self.sealer.as_ref().map(|(_, s)| s.clone())
    }

    /// The TLS configuration of an HTTPS listener, rebuilt only when its policy, its
    /// certificates or their material changed.
    fn tls_config(
        &mut self,
        state: &Region,
        iam: &BTreeMap<String, ServerCertificate>,
        tls: &ListenerTls,
        http2: bool,
        used: &mut Used,
    ) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut fingerprint = format!("{}|{http2}", tls.ssl_policy);
        let mut client_auth = None;
        if let Some(mutual) = &tls.mutual_authentication {
            let (bundle, crls) = match &mutual.trust_store_arn {
                Some(arn) => {
                    let store = state
                        .trust_stores
                        .get(arn)
                        .ok_or_else(|| format!("trust store {arn} is missing"))?;
                    // Changes to the bundle or the revocation lists move `updated_ms`; the
                    // lists' ids tell apart two changes within one millisecond.
                    let ids: Vec<String> =
                        store.revocations.iter().map(|r| r.id.to_string()).collect();
                    fingerprint.push_str(&format!("|{arn}@{}#{}", store.updated_ms, ids.join(",")));
                    let crls = store.revocations.iter().map(|r| r.crl_pem.as_str());
                    (store.ca_bundle_pem.as_str(), crls.collect())
                }
                None => ("", Vec::new()),
            };
            fingerprint.push_str(&format!(
                "|{}|{}",
                mutual.mode.as_str(),
                mutual.advertise_ca_names
            ));
            client_auth = Some((mutual.mode, bundle, crls, mutual.advertise_ca_names));
        }
        let mut certificates = Vec::new();
        for arn in tls.all_certificate_arns() {
            // ACM certificates are the region's; IAM server certificates the account's.
            let cert = state
                .certificates
                .get(arn)
                .or_else(|| iam.get(arn).map(|s| &s.certificate))
                .ok_or_else(|| format!("certificate {arn} is missing"))?;
            fingerprint.push_str(&format!(
                "|{arn}@{}#{}",
                cert.updated_ms, cert.material.serial
            ));
            certificates.push(cert);
        }
        if let Some(config) = self.tls.get(&fingerprint) {
            used.tls.insert(fingerprint, config.clone());
            return Ok(config.clone());
        }
        let served = certificates
            .iter()
            .map(|c| {
                let m = &c.material;
                Ok(Served {
                    names: c.names().map(str::to_owned).collect(),
                    key: material::certified_key(
                        &m.certificate_pem,
                        &m.private_key_pem,
                        &m.chain_pem,
                    )?,
                    ecdsa: m.key_algorithm.starts_with("EC"),
                })
            })
            .collect::<Result<Vec<Served>, TlsError>>()
            .map_err(|e| e.to_string())?;
        let policy = ssl_policy(&tls.ssl_policy)
            .ok_or_else(|| format!("unknown policy {}", tls.ssl_policy))?;
        let offer = policy::offer(policy).map_err(|e| e.to_string())?;
        let resumption = match &self.resumption {
            Some(r) => r.clone(),
            None => {
                let r = Resumption::new().map_err(|e| e.to_string())?;
                self.resumption.insert(r).clone()
            }
        };
        let resolver = SniResolver::new(&served[0], &served[1..]);
        let client_auth = client_auth
            .map(|(mode, bundle, crls, advertise)| {
                mtls::client_verifier(mode, bundle, &crls, advertise)
            })
            .transpose()
            .map_err(|e| e.to_string())?;
        let config = server_config(offer, resolver, &resumption, http2, client_auth)
            .map_err(|e| e.to_string())?;
        used.tls.insert(fingerprint, config.clone());
        Ok(config)
    }

    fn action(
        &self,
        state: &Region,
        health: &HealthView,
        node: &Node,
        action: &Action,
        sets: &mut HashMap<String, Arc<TargetSet>>,
        used: &mut Used,
    ) -> RouteAction {
        match action {
            Action::Forward {
                target_groups,
                group_stickiness_seconds,
            } => {
                let weighted = target_groups
                    .iter()
                    .filter_map(|g| {
                        let tg = state.target_groups.get(&g.target_group_arn)?;
                        let set = sets
                            .entry(tg.arn.clone())
                            .or_insert_with(|| {
                                Arc::new(self.target_set(state, health, node, tg, used))
                            })
                            .clone();
                        Some((set, g.weight))
                    })
                    .collect();
                RouteAction::Forward(Forward::new(
                    weighted,
                    group_stickiness_seconds.map(u64::from),
                ))
            }
            Action::Redirect(redirect) => RouteAction::Redirect(redirect.clone()),
            Action::FixedResponse(fixed) => RouteAction::Fixed(fixed.clone()),
        }
    }

    fn target_set(
        &self,
        state: &Region,
        health: &HealthView,
        node: &Node,
        tg: &TargetGroup,
        used: &mut Used,
    ) -> TargetSet {
        let cursor = keep(
            &self.cursors,
            &mut used.cursors,
            &format!("{}|{}", node.id, tg.arn),
        );
        TargetSet {
            target_group_arn: tg.arn.clone(),
            group_id: tg.arn.rsplit('/').next().unwrap_or_default().to_owned(),
            stickiness: stickiness(&tg.attributes),
            tls: tg.protocol == TargetGroupProtocol::Https,
            version: tg.protocol_version,
            registered: tg.targets.iter().filter(|t| state.in_service(t)).count(),
            endpoints: self.endpoints(state, node, tg, health, used),
            algorithm: Algorithm::from_attribute(
                tg.attributes.get("load_balancing.algorithm.type"),
            ),
            cursor,
        }
    }

    /// The targets `node` sends `tg`'s requests to: those in reach (its zone, or all with
    /// cross-zone) that its health checks find healthy, or all in reach when too few are
    /// healthy (fail-open, per `target_group_health.unhealthy_state_routing.*`).
    fn endpoints(
        &self,
        state: &Region,
        node: &Node,
        tg: &TargetGroup,
        health: &HealthView,
        used: &mut Used,
    ) -> Vec<Endpoint> {
        let in_reach: Vec<(&Registration, String)> = state
            .in_reach(node, tg)
            .map(|t| (t, t.key(&tg.arn)))
            .collect();
        // Targets the load balancer's security groups do not let the node reach count as
        // targets (their checks time out) but get no request: on AWS it would time out.
        let egress = state
            .load_balancers
            .get(&node.load_balancer_arn)
            .map(|lb| state.egress(lb));
        let reachable =
            |t: &Registration| egress.as_ref().is_none_or(|e| e.allows(t.address, t.port));
        let healthy_since = |key: &str| {
            health
                .get(&node.id, key)
                .filter(|h| h.state == HealthState::Healthy)
                .map(|h| h.healthy_since_ms.unwrap_or(0))
        };
        let healthy = in_reach
            .iter()
            .filter(|(_, key)| healthy_since(key).is_some())
            .count();
        let attrs = &tg.attributes;
        let count =
            attrs.int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count");
        let percent = attrs
            .int("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage");
        // Too few healthy: route to every target in reach, healthy or not.
        let fail_open =
            !in_reach.is_empty() && below_minimum(healthy, in_reach.len(), count, percent);
        let slow_start_ms = attrs.int("slow_start.duration_seconds").unwrap_or(0) * 1000;
        in_reach
            .into_iter()
            .filter_map(|(t, key)| {
                let since = healthy_since(&key);
                if (since.is_none() && !fail_open) || !reachable(t) {
                    return None;
                }
                let addr = SocketAddr::new(t.address, t.port);
                Some(Endpoint {
                    addr,
                    authority: addr
                        .to_string()
                        .parse()
                        .expect("a socket address is an authority"),
                    ramp: since
                        .filter(|_| slow_start_ms > 0 && !fail_open)
                        .map(|since_ms| select::Ramp {
                            since_ms,
                            duration_ms: slow_start_ms,
                        }),
                    outstanding: keep(
                        &self.outstanding,
                        &mut used.outstanding,
                        &format!("{}|{key}", node.id),
                    ),
                    pool: used
                        .pools
                        .entry(format!("{}|{key}|{addr}", node.id))
                        .or_insert_with_key(|k| {
                            self.pools.get(k).cloned().unwrap_or_else(|| {
                                Arc::new(TargetPool::new(IpAddr::V4(node.private_ipv4), addr))
                            })
                        })
                        .clone(),
                })
            })
            .collect()
    }
}

/// `routing.http.response.<name>.header_value` set → `<name>` (dashed) on every response.
fn response_headers(attrs: &elb_model::Attributes) -> Vec<(HeaderName, HeaderValue)> {
    attrs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .filter_map(|(key, value)| {
            let name = key
                .strip_prefix(RESPONSE_HEADER_PREFIX)?
                .strip_suffix(RESPONSE_HEADER_SUFFIX)?
                .replace('_', "-");
            Some((
                HeaderName::try_from(name).ok()?,
                HeaderValue::try_from(value).ok()?,
            ))
        })
        .collect()
}

fn stickiness(attrs: &elb_model::Attributes) -> Stickiness {
    if !attrs.flag("stickiness.enabled") {
        return Stickiness::Off;
    }
    match attrs.get("stickiness.type") {
        Some("app_cookie") => Stickiness::AppCookie {
            name: attrs
                .get("stickiness.app_cookie.cookie_name")
                .unwrap_or_default()
                .to_owned(),
            duration_s: attrs
                .int("stickiness.app_cookie.duration_seconds")
                .unwrap_or(86_400),
        },
        _ => Stickiness::LbCookie {
            duration_s: attrs
                .int("stickiness.lb_cookie.duration_seconds")
                .unwrap_or(86_400),
        },
    }
}

fn http_settings(attrs: &elb_model::Attributes) -> HttpSettings {
    HttpSettings {
        idle_timeout: Duration::from_secs(attrs.int("idle_timeout.timeout_seconds").unwrap_or(60)),
        xff: match attrs.get("routing.http.xff_header_processing.mode") {
            Some("preserve") => XffMode::Preserve,
            Some("remove") => XffMode::Remove,
            _ => XffMode::Append,
        },
        xff_client_port: attrs.flag("routing.http.xff_client_port.enabled"),
        preserve_host: attrs.flag("routing.http.preserve_host_header.enabled"),
        http2: attrs.get("routing.http2.enabled") != Some("false"),
        drop_invalid_headers: attrs.flag("routing.http.drop_invalid_header_fields.enabled"),
        desync: DesyncMode::from_attribute(attrs.get("routing.http.desync_mitigation_mode")),
    }
}
