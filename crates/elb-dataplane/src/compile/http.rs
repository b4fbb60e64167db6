//! HTTP and HTTPS listeners: per node, the rules with their compiled conditions, the target
//! groups they forward to, and the TLS configuration new connections handshake with.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use elb_model::attributes::{RESPONSE_HEADER_PREFIX, RESPONSE_HEADER_SUFFIX, SERVER_HEADER};
use elb_model::ssl_policy::ssl_policy;
use elb_model::{
    Action, Listener as ModelListener, ListenerTls, LoadBalancer, Node, Region, ServerCertificate,
    TargetGroup, TargetGroupProtocol,
};
use elb_tls::server::{Resumption, Served, SniResolver, server_config};
use elb_tls::{TlsError, material, mtls, policy};
use http::{HeaderName, HeaderValue};
use tracing::error;

use super::targets::choose;
use super::{Inputs, Kept, Runtime, keep};
use crate::l7::desync::Mode as DesyncMode;
use crate::l7::rules::Matcher;
use crate::pool::TargetPool;
use crate::select;
use crate::sticky::Stickiness;
use crate::table::{Door, Forward, HttpRoute, HttpSettings, Listener, RouteAction, Rule, XffMode};
use crate::targets::{Algorithm, Endpoint, Http, HttpEndpoint, HttpTargets};
use crate::upstream::Upstream;

impl Runtime {
    /// An HTTP or HTTPS listener on each node of `lb`; none when its TLS configuration cannot
    /// be made (the API checked all of it: only a damaged store gets there).
    pub(super) fn http_listener<'a>(
        &mut self,
        inputs: &Inputs<'a>,
        lb: &'a LoadBalancer,
        listener: &ModelListener,
        door: Door,
        used: &mut Kept,
    ) -> Vec<(&'a Node, Listener)> {
        let state = inputs.state;
        let http = http_settings(&lb.attributes);
        let tls = match &listener.tls {
            None => None,
            Some(tls) => match self.tls_config(state, inputs.iam, tls, http.http2, used) {
                Ok(config) => Some(config),
                Err(e) => {
                    error!(listener = %listener.arn, error = %e, "listener not served");
                    return Vec::new();
                }
            },
        };
        let rules = state.rules_of(&listener.arn);
        let matchers: Vec<Vec<Matcher>> = rules
            .iter()
            .map(|r| r.conditions.iter().map(Matcher::compile).collect())
            .collect();
        let header_conditions = matchers
            .iter()
            .flatten()
            .any(|m| matches!(m, Matcher::Header(..)));
        let mut served = Vec::new();
        for node in state.nodes_of(&lb.arn) {
            let node_ip = IpAddr::V4(node.private_ipv4);
            let upstream = keep(&self.kept.upstreams, &mut used.upstreams, node_ip, || {
                Upstream::new(node_ip)
            });
            let metrics = keep(
                &self.kept.nodes,
                &mut used.nodes,
                (lb.arn.clone(), node.availability_zone.clone()),
                Arc::default,
            );
            let mut sets = HashMap::new();
            let mut action =
                |actions: &[Action]| self.action(inputs, node, &actions[0], &mut sets, used);
            let compiled_rules: Vec<_> = rules
                .iter()
                .zip(&matchers)
                .map(|(rule, matchers)| {
                    let compiled = Rule {
                        priority: rule.priority,
                        action: action(&rule.actions),
                    };
                    (matchers.clone(), compiled)
                })
                .collect();
            let mut route = HttpRoute {
                door: Door {
                    metrics: Some(metrics),
                    ..door.clone()
                },
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
                sealer: inputs.sealer.clone(),
                relayable: false,
                header_conditions,
            };
            route.relayable = route.relay_serves();
            served.push((node, Listener::Http(Arc::new(route))));
        }
        served
    }

    /// The TLS configuration of an HTTPS listener, rebuilt only when its policy, its
    /// certificates or their material changed.
    fn tls_config(
        &mut self,
        state: &Region,
        iam: &BTreeMap<String, ServerCertificate>,
        tls: &ListenerTls,
        http2: bool,
        used: &mut Kept,
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
        if let Some(config) = self.kept.tls.get(&fingerprint) {
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
        inputs: &Inputs<'_>,
        node: &Node,
        action: &Action,
        sets: &mut HashMap<String, Arc<HttpTargets>>,
        used: &mut Kept,
    ) -> RouteAction {
        match action {
            Action::Forward {
                target_groups,
                group_stickiness_seconds,
            } => {
                let weighted = target_groups
                    .iter()
                    .filter_map(|g| {
                        let tg = inputs.state.target_groups.get(&g.target_group_arn)?;
                        let set = sets
                            .entry(tg.arn.clone())
                            .or_insert_with(|| Arc::new(self.target_set(inputs, node, tg, used)))
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

    /// What `node` sends `tg`'s requests to.
    fn target_set(
        &self,
        inputs: &Inputs<'_>,
        node: &Node,
        tg: &TargetGroup,
        used: &mut Kept,
    ) -> HttpTargets {
        let cursor = keep(
            &self.kept.cursors,
            &mut used.cursors,
            (node.id.clone(), tg.arn.clone()),
            Arc::default,
        );
        let choice = choose(inputs.state, node, tg, inputs.health, (&self.kept, used));
        let slow_start_ms = tg
            .attributes
            .int("slow_start.duration_seconds")
            .unwrap_or(0)
            * 1000;
        let endpoints = choice
            .targets
            .into_iter()
            .map(|target| {
                let addr = target.addr;
                let pool = keep(
                    &self.kept.pools,
                    &mut used.pools,
                    (node.id.clone(), target.key, addr),
                    || Arc::new(TargetPool::new(IpAddr::V4(node.private_ipv4), addr)),
                );
                Endpoint {
                    addr,
                    outstanding: target.outstanding,
                    proto: HttpEndpoint {
                        authority: addr
                            .to_string()
                            .parse()
                            .expect("a socket address is an authority"),
                        ramp: target.healthy_since_ms.filter(|_| slow_start_ms > 0).map(
                            |since_ms| select::Ramp {
                                since_ms,
                                duration_ms: slow_start_ms,
                            },
                        ),
                        pool,
                    },
                }
            })
            .collect();
        HttpTargets {
            target_group_arn: tg.arn.clone(),
            group_id: tg.arn.rsplit('/').next().unwrap_or_default().to_owned(),
            registered: choice.registered,
            endpoints,
            proto: Http {
                stickiness: stickiness(&tg.attributes),
                tls: tg.protocol == TargetGroupProtocol::Https,
                version: tg.protocol_version,
                algorithm: Algorithm::from_attribute(
                    tg.attributes.get("load_balancing.algorithm.type"),
                ),
                cursor,
                metrics: keep(
                    &self.kept.groups,
                    &mut used.groups,
                    (
                        node.load_balancer_arn.clone(),
                        tg.arn.clone(),
                        node.availability_zone.clone(),
                    ),
                    Arc::default,
                ),
            },
        }
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
