//! HTTP and HTTPS listeners: per node, the rules with their compiled conditions, the target
//! groups they forward to, and the TLS configuration new connections handshake with.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use elb_logs::LogKind;
use elb_model::attributes::{
    ALGORITHM, ANOMALY_MITIGATION, MULTI_VALUE_HEADERS, RESPONSE_HEADER_PREFIX,
    RESPONSE_HEADER_SUFFIX, SERVER_HEADER,
};
use elb_model::{
    Action, FixedResponse, FunctionArn, Listener as ModelListener, LoadBalancer, Node, TargetGroup,
    TargetGroupProtocol, TargetId, TargetType,
};
use http::{HeaderName, HeaderValue};

use super::targets::choose;
use super::{Inputs, Kept, Runtime, keep};
use crate::access_log::NodeLog;
use crate::anomaly::Watched;
use crate::auth::{Guard, Login, TokenCheck};
use crate::l7::desync::Mode as DesyncMode;
use crate::l7::rewrite::Rewrites;
use crate::l7::rules::Matcher;
use crate::metrics::dimension;
use crate::pool::TargetPool;
use crate::select;
use crate::sticky::Stickiness;
use crate::table::{
    AuthContext, Door, Forward, HttpRoute, HttpSettings, Listener, RouteAction, Rule, XffMode,
};
use crate::targets::{Algorithm, Eligibility, Endpoint, Function, Http, HttpEndpoint, HttpTargets};
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
        let http = http_settings(&lb.attributes, self.header_timeout);
        let Ok(tls) = self.listener_tls(inputs, listener, http_alpn(http.http2), used) else {
            return Vec::new();
        };
        let rules = state.rules_of(&listener.arn);
        let matchers: Vec<Vec<Matcher>> = rules
            .iter()
            .map(|r| r.conditions.iter().map(Matcher::compile).collect())
            .collect();
        // Once per listener, as the matchers: each node's rules take clones.
        let rewrites: Vec<Option<Rewrites>> = rules
            .iter()
            .map(|r| Rewrites::compile(&r.transforms))
            .collect();
        // Authenticate and jwt-validation actions, once per listener too.
        let cognito = self.providers.cognito.as_ref();
        let guard = |actions: &[Action]| {
            actions.iter().find_map(|a| match a {
                Action::Authenticate(auth) => Some(Login::compile(auth, &lb.arn, cognito)),
                Action::JwtValidation(jwt) => Some(TokenCheck::compile(jwt)),
                _ => None,
            })
        };
        let rule_guards: Vec<Option<Arc<Guard>>> =
            rules.iter().map(|r| guard(&r.actions)).collect();
        let default_guard = guard(&listener.default_actions);
        let auth =
            (default_guard.is_some() || rule_guards.iter().any(Option::is_some)).then(|| {
                AuthContext {
                    providers: self.providers.clone(),
                    claims_key: inputs.claims_key.clone(),
                }
            });
        let header_conditions = matchers
            .iter()
            .flatten()
            .any(|m| matches!(m, Matcher::Header(..)));
        let mut served = Vec::new();
        for node in state.nodes_of(&lb.arn) {
            let node_ip = IpAddr::V4(node.private_ipv4);
            let sources = (node.private_ipv4, node.ipv6);
            let upstream = keep(&self.kept.upstreams, &mut used.upstreams, sources, || {
                Upstream::new(sources)
            });
            let metrics = keep(
                &self.kept.nodes,
                &mut used.nodes,
                (lb.arn.clone(), node.availability_zone.clone()),
                Arc::default,
            );
            let mut sets = HashMap::new();
            let mut action =
                |actions: &[Action]| self.action(inputs, node, actions, &mut sets, used);
            let compiled_rules: Vec<_> = rules
                .iter()
                .zip(&matchers)
                .zip(&rewrites)
                .zip(&rule_guards)
                .map(|(((rule, matchers), rewrites), guard)| {
                    let compiled = Rule {
                        priority: rule.priority,
                        guard: guard.clone(),
                        action: action(&rule.actions),
                        conditions: rule.conditions.clone(),
                        rewrites: rewrites.clone(),
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
                default_guard: default_guard.clone(),
                auth: auth.clone(),
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
                access_log: self.node_log(lb, node_ip, LogKind::Access, used),
                connection_log: self.node_log(lb, node_ip, LogKind::Connection, used),
            };
            route.relayable = route.relay_serves();
            served.push((node, Listener::Http(Arc::new(route))));
        }
        served
    }

    /// The node's log of `kind`, kept across snapshots, while the load balancer keeps it.
    pub(super) fn node_log(
        &self,
        lb: &LoadBalancer,
        node_ip: IpAddr,
        kind: LogKind,
        used: &mut Kept,
    ) -> Option<Arc<NodeLog>> {
        let enabled = format!("{}.s3.enabled", kind.attributes());
        lb.attributes.flag(&enabled).then(|| {
            keep(
                &self.kept.node_logs,
                &mut used.node_logs,
                (lb.arn.clone(), node_ip, kind),
                || Arc::new(NodeLog::new(dimension(&lb.arn))),
            )
        })
    }

    /// What the rule's last action, the one that answers, does on `node`.
    fn action(
        &self,
        inputs: &Inputs<'_>,
        node: &Node,
        actions: &[Action],
        sets: &mut HashMap<String, Arc<HttpTargets>>,
        used: &mut Kept,
    ) -> RouteAction {
        let refused = || {
            // The model lets no such rule in: only a damaged store gets here.
            tracing::warn!("a rule has no action that answers; it answers 500");
            RouteAction::Fixed(FixedResponse {
                status_code: 500,
                content_type: None,
                body: None,
            })
        };
        let Some(action) = actions.last() else {
            return refused();
        };
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
            Action::Authenticate(_) | Action::JwtValidation(_) => refused(),
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
        let choice = choose(
            inputs.state,
            node,
            tg,
            inputs.health,
            "tcp",
            (&self.kept, used),
        );
        let slow_start_ms = tg
            .attributes
            .int("slow_start.duration_seconds")
            .unwrap_or(0)
            * 1000;
        let function = self.function(inputs.state, tg).map(Arc::new);
        let algorithm = Algorithm::from_attribute(tg.attributes.get(ALGORITHM));
        if algorithm == Algorithm::WeightedRandom && tg.target_type != TargetType::Lambda {
            let watched = Watched {
                node_id: node.id.clone(),
                mitigation: tg.attributes.get(ANOMALY_MITIGATION) == Some("on"),
                targets: (choice.targets.iter())
                    .map(|t| (t.key.clone(), t.load.clone()))
                    .collect(),
            };
            used.watched
                .insert((node.id.clone(), tg.arn.clone()), watched);
        }
        // A function is invoked, not reached at an address: no address is chosen or passed
        // over (without a function in service the group has none to send to).
        let (eligibility, addressed) = if tg.target_type == TargetType::Lambda {
            (Eligibility::default(), Vec::new())
        } else {
            let eligibility = Eligibility {
                fail_open: choice.fail_open,
                passed_over: choice.passed_over,
            };
            (eligibility, choice.targets)
        };
        let endpoints = addressed
            .into_iter()
            .map(|target| {
                let addr = target.addr;
                let pool = keep(
                    &self.kept.pools,
                    &mut used.pools,
                    (node.id.clone(), target.key, addr),
                    || Arc::new(TargetPool::new(node.source(addr.is_ipv6()), addr)),
                );
                Endpoint {
                    addr,
                    load: target.load,
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
            target_group_arn: tg.arn.as_str().into(),
            group_id: tg.arn.rsplit('/').next().unwrap_or_default().to_owned(),
            registered: choice.registered,
            endpoints,
            proto: Http {
                stickiness: stickiness(&tg.attributes),
                tls: tg.protocol == TargetGroupProtocol::Https,
                version: tg.protocol_version,
                algorithm,
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
                eligibility,
                function,
            },
        }
    }

    /// A `lambda` group's function, while one is registered and in service.
    fn function(&self, state: &elb_model::Region, tg: &TargetGroup) -> Option<Function> {
        if tg.target_type != TargetType::Lambda {
            return None;
        }
        let arn = tg.targets.iter().find_map(|r| match &r.id {
            TargetId::Lambda(arn) if state.in_service(r) => FunctionArn::parse(arn).ok(),
            _ => None,
        })?;
        Some(Function {
            arn,
            multi_value: tg.attributes.flag(MULTI_VALUE_HEADERS),
            invoker: self.lambda.clone(),
        })
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

fn http_settings(attrs: &elb_model::Attributes, header_timeout: Duration) -> HttpSettings {
    HttpSettings {
        idle_timeout: Duration::from_secs(attrs.int("idle_timeout.timeout_seconds").unwrap_or(60)),
        client_keep_alive: Duration::from_secs(
            attrs.int("client_keep_alive.seconds").unwrap_or(3600),
        ),
        header_timeout,
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

/// What an HTTPS listener offers by ALPN: HTTP/2 first when the load balancer has it on.
fn http_alpn(http2: bool) -> &'static [&'static [u8]] {
    if http2 {
        &[b"h2", b"http/1.1"]
    } else {
        &[b"http/1.1"]
    }
}
