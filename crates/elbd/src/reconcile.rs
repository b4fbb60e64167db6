//! Makes the store hold what the config file declares: the same commands the API issues, run
//! on one copy of the state so that the whole file commits or nothing does.
//!
//! The file owns only what it declares. Resources it created carry `Origin::ConfigFile`; a
//! reload deletes those it no longer declares and never touches resources made through the
//! API (a file that declares one of their names is refused).

use std::collections::BTreeSet;

use elb_model::attributes::{load_balancer_defaults, target_group_defaults};
use elb_model::ssl_policy::DEFAULT_SSL_POLICY;
use elb_model::state::{
    CreateListener, CreateLoadBalancer, CreateTargetGroup, ImportCertificate, ListenerChanges,
    TargetDescription,
};
use elb_model::target_group::{HealthCheck, HealthCheckChanges};
use elb_model::{
    Action, AlpnPolicy, Attributes, CertificateKind, Command, Context, ErrorCode, ListenerProtocol,
    LoadBalancerKind, ModelError, Origin, Outcome, Region, Scheme, TargetType,
};

use elb_config::{CertificateSpec, Config, LoadBalancerSpec, TargetGroupSpec, TargetSpec};

const FILE: Origin = Origin::ConfigFile;

/// Applies `config` to `state`. On error `state` may be half changed: run it on a copy.
pub(crate) fn reconcile(
    state: &mut Region,
    config: &Config,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    delete_undeclared_listeners(state, config, cx)?;
    for cert in &config.certificates {
        certificate(state, cert, cx)?;
    }
    for tg in &config.target_groups {
        target_group(state, tg, cx)?;
    }
    for lb in &config.load_balancers {
        load_balancer(state, lb, cx)?;
    }
    let declared: BTreeSet<&str> = config
        .load_balancers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    let gone: Vec<String> = state
        .load_balancers
        .values()
        .filter(|lb| lb.origin == FILE && !declared.contains(lb.name.as_str()))
        .map(|lb| lb.arn.clone())
        .collect();
    for arn in gone {
        run(
            state,
            Command::DeleteLoadBalancer { arn },
            cx,
            "load_balancer (removed)",
        )?;
    }
    let declared: BTreeSet<&str> = config
        .target_groups
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let gone: Vec<(String, String)> = state
        .target_groups
        .values()
        .filter(|tg| tg.origin == FILE && !declared.contains(tg.name.as_str()))
        .map(|tg| (tg.arn.clone(), tg.name.clone()))
        .collect();
    for (arn, name) in gone {
        let path = format!("target_group '{name}' (removed)");
        run(state, Command::DeleteTargetGroup { arn }, cx, &path)?;
    }
    let gone: Vec<String> = state
        .certificates
        .values()
        .filter(|c| c.origin == FILE)
        .filter(|c| {
            let name = c.tags.get(NAME_TAG).map(String::as_str);
            !config
                .certificates
                .iter()
                .any(|d| Some(d.name.as_str()) == name)
        })
        .map(|c| c.arn.clone())
        .collect();
    for arn in gone {
        run(
            state,
            Command::DeleteCertificate { arn },
            cx,
            "certificate (removed)",
        )?;
    }
    Ok(())
}

/// The tag that names a file-declared certificate (ACM certificates have no name of their own).
const NAME_TAG: &str = "Name";

/// The ARN of the file's certificate `name`.
fn certificate_arn(state: &Region, name: &str) -> Option<String> {
    state
        .certificates
        .values()
        .find(|c| c.origin == FILE && c.tags.get(NAME_TAG).is_some_and(|n| n == name))
        .map(|c| c.arn.clone())
}

/// Imports a declared certificate, or re-imports it when its files changed.
fn certificate(
    state: &mut Region,
    spec: &CertificateSpec,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    let existing = certificate_arn(state, &spec.name);
    if let Some(arn) = &existing
        && state.certificates[arn].material == spec.material
    {
        return Ok(());
    }
    let command = Command::ImportCertificate(ImportCertificate {
        arn: existing,
        validation: Default::default(),
        options: Default::default(),
        kind: CertificateKind::Imported,
        material: spec.material.clone(),
        idempotency_token: None,
        tags: vec![(NAME_TAG.to_owned(), spec.name.clone())],
        origin: FILE,
    });
    run(state, command, cx, &spec.path).map(drop)
}

/// Runs one command, prefixing any error with where in the file it comes from.
fn run(
    state: &mut Region,
    command: Command,
    cx: &mut Context<'_>,
    path: &str,
) -> Result<Outcome, ModelError> {
    state.apply(command, cx).map_err(|e| prefix(e, path))
}

fn created(outcome: Outcome) -> String {
    match outcome {
        Outcome::Created(arn) => arn,
        Outcome::Done | Outcome::CreatedAll(_) | Outcome::Unsuccessful(_) => {
            unreachable!("create commands report what they created")
        }
    }
}

fn owned_by_api(what: &str, name: &str, code: ErrorCode, path: &str) -> ModelError {
    ModelError::new(
        code,
        format!(
            "{path}: {what} '{name}' exists and was created through the API; the file cannot take it over"
        ),
    )
}

fn immutable(path: &str, what: &str) -> ModelError {
    ModelError::new(
        ErrorCode::InvalidConfigurationRequest,
        format!(
            "{path}: the {what} of an existing resource cannot change; give it a new name instead"
        ),
    )
}

/// The attribute changes that turn `current` into `defaults` overlaid with `wanted`.
fn attribute_changes(
    current: &Attributes,
    defaults: &Attributes,
    wanted: &[(String, String)],
) -> Vec<(String, String)> {
    let mut desired: Vec<(String, String)> = defaults
        .iter()
        .filter(|(k, _)| !wanted.iter().any(|(w, _)| w == k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    desired.extend(wanted.iter().cloned());
    desired
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v.as_str()))
        .collect()
}

fn delete_undeclared_listeners(
    state: &mut Region,
    config: &Config,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    let gone: Vec<String> = state
        .listeners
        .values()
        .filter(|l| l.origin == FILE)
        .filter(|l| {
            let lb = &state.load_balancers[&l.load_balancer_arn];
            !config
                .load_balancers
                .iter()
                .any(|d| d.name == lb.name && d.listeners.iter().any(|dl| dl.port == l.port))
        })
        .map(|l| l.arn.clone())
        .collect();
    for arn in gone {
        run(
            state,
            Command::DeleteListener { arn },
            cx,
            "listener (removed)",
        )?;
    }
    Ok(())
}

fn target_group(
    state: &mut Region,
    spec: &TargetGroupSpec,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    let path = spec.path.as_str();
    let create = Command::CreateTargetGroup(CreateTargetGroup {
        name: spec.name.clone(),
        protocol: spec.protocol.clone(),
        protocol_version: spec.protocol_version,
        port: spec.port,
        vpc_id: None,
        target_type: spec.target_type.clone(),
        ip_address_type: None,
        origin: FILE,
    });
    let arn = match state.target_group_by_name(&spec.name) {
        Some(tg) if tg.origin != FILE => {
            return Err(owned_by_api(
                "target group",
                &spec.name,
                ErrorCode::DuplicateTargetGroupName,
                path,
            ));
        }
        Some(tg) => {
            let arn = tg.arn.clone();
            // Creating the same group again is a no-op; anything else changed an immutable field.
            match state.apply(create, cx) {
                Ok(_) => arn,
                Err(e) if e.code == ErrorCode::DuplicateTargetGroupName => {
                    return Err(immutable(path, "protocol, port or target type"));
                }
                Err(e) => return Err(prefix(e, path)),
            }
        }
        None => created(run(state, create, cx, path)?),
    };
    let tg = &state.target_groups[&arn];
    let desired = HealthCheck::for_target_group(tg.protocol, tg.protocol_version, tg.target_type)
        .with((tg.protocol, tg.target_type), &spec.health_check)
        .map_err(|e| prefix(e, &format!("{path}.health_check")))?;
    if state.target_groups[&arn].health_check != desired {
        // A TCP check takes neither a path nor a matcher; a function's, no protocol or port.
        let tcp = desired.protocol == "TCP";
        let lambda = tg.target_type == TargetType::Lambda;
        let health_check = HealthCheckChanges {
            enabled: Some(desired.enabled),
            protocol: Some(desired.protocol).filter(|_| !lambda),
            port: Some(desired.port).filter(|_| !lambda),
            path: Some(desired.path).filter(|_| !tcp),
            interval_seconds: Some(desired.interval_seconds),
            timeout_seconds: Some(desired.timeout_seconds),
            healthy_threshold: Some(desired.healthy_threshold),
            unhealthy_threshold: Some(desired.unhealthy_threshold),
            // Each group has one kind of matcher; the other stays unset.
            http_code: Some(desired.http_code).filter(|c| !c.is_empty() && !tcp),
            grpc_code: Some(desired.grpc_code).filter(|c| !c.is_empty()),
        };
        let command = Command::ModifyTargetGroup {
            arn: arn.clone(),
            health_check,
        };
        run(state, command, cx, &format!("{path}.health_check"))?;
    }
    let tg = &state.target_groups[&arn];
    let changes = attribute_changes(
        &tg.attributes,
        &target_group_defaults(tg.protocol, tg.target_type),
        &spec.attributes,
    );
    if !changes.is_empty() {
        let path = format!("{path}.attributes");
        run(
            state,
            Command::ModifyTargetGroupAttributes {
                arn: arn.clone(),
                changes,
            },
            cx,
            &path,
        )?;
    }
    sync_targets(state, &arn, spec, cx)
}

/// Registers declared targets that are missing and deregisters registered ones not declared.
fn sync_targets(
    state: &mut Region,
    arn: &str,
    spec: &TargetGroupSpec,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    let describe = |t: &TargetSpec| TargetDescription {
        id: t.id.clone(),
        port: t.port,
        availability_zone: t.availability_zone.clone(),
    };
    let path = format!("{}.targets", spec.path);
    let stale: Vec<TargetDescription> = state.target_groups[arn]
        .targets
        .iter()
        .filter(|r| {
            !spec
                .targets
                .iter()
                .any(|t| t.id == r.id.to_string() && t.port.or(spec.port).unwrap_or(0) == r.port)
        })
        .map(|r| TargetDescription {
            id: r.id.to_string(),
            port: Some(r.port),
            availability_zone: None,
        })
        .collect();
    if !stale.is_empty() {
        let command = Command::DeregisterTargets {
            target_group_arn: arn.to_owned(),
            targets: stale,
        };
        run(state, command, cx, &path)?;
    }
    let command = Command::RegisterTargets {
        target_group_arn: arn.to_owned(),
        targets: spec.targets.iter().map(describe).collect(),
    };
    run(state, command, cx, &path)?;
    Ok(())
}

fn load_balancer(
    state: &mut Region,
    spec: &LoadBalancerSpec,
    cx: &mut Context<'_>,
) -> Result<(), ModelError> {
    let path = spec.path.as_str();
    let kind =
        LoadBalancerKind::parse(&spec.kind).map_err(|e| prefix(e, &format!("{path}.type")))?;
    let scheme = spec
        .scheme
        .as_deref()
        .map(Scheme::parse)
        .transpose()
        .map_err(|e| prefix(e, &format!("{path}.scheme")))?;
    let subnet_ids = spec
        .availability_zones
        .iter()
        .map(|az| {
            default_subnet(state, az).map_err(|e| prefix(e, &format!("{path}.availability_zones")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let create = Command::CreateLoadBalancer(CreateLoadBalancer {
        name: spec.name.clone(),
        kind,
        scheme,
        ip_address_type: None,
        ipv6_source_nat: None,
        subnet_ids,
        subnet_mappings: vec![],
        security_groups: None,
        origin: FILE,
    });
    let arn = match state.load_balancer_by_name(&spec.name) {
        Some(lb) if lb.origin != FILE => {
            return Err(owned_by_api(
                "load balancer",
                &spec.name,
                ErrorCode::DuplicateLoadBalancerName,
                path,
            ));
        }
        Some(lb) => {
            let arn = lb.arn.clone();
            match state.apply(create, cx) {
                Ok(_) => arn,
                Err(e) if e.code == ErrorCode::DuplicateLoadBalancerName => {
                    return Err(immutable(path, "type, scheme or availability zones"));
                }
                Err(e) => return Err(prefix(e, path)),
            }
        }
        None => created(run(state, create, cx, path)?),
    };
    let lb = &state.load_balancers[&arn];
    let defaults = load_balancer_defaults(lb.kind, lb.scheme);
    let changes = attribute_changes(&lb.attributes, &defaults, &spec.attributes);
    if !changes.is_empty() {
        let path = format!("{path}.attributes");
        run(
            state,
            Command::ModifyLoadBalancerAttributes {
                arn: arn.clone(),
                changes,
            },
            cx,
            &path,
        )?;
    }
    for listener in &spec.listeners {
        let lpath = listener.path.as_str();
        let protocol = ListenerProtocol::parse(&listener.protocol)
            .map_err(|e| prefix(e, &format!("{lpath}.protocol")))?;
        let tg_arn = state
            .target_group_by_name(&listener.forward)
            .map(|tg| tg.arn.clone())
            .ok_or_else(|| {
                ModelError::new(
                    ErrorCode::TargetGroupNotFound,
                    format!(
                        "{lpath}.default_action.forward: no target group is named '{}'",
                        listener.forward
                    ),
                )
            })?;
        let actions = vec![Action::forward(tg_arn)];
        // Declared names were checked against the file's certificates, imported above.
        let certificates: Vec<String> = listener
            .certificates
            .iter()
            .filter_map(|name| certificate_arn(state, name))
            .collect();
        let alpn_policy = listener
            .alpn_policy
            .as_deref()
            .map(AlpnPolicy::parse)
            .transpose()
            .map_err(|e| ModelError::new(e.code, format!("{lpath}.alpn_policy: {}", e.message)))?;
        let desired = Desired {
            protocol,
            port: listener.port,
            actions,
            ssl_policy: listener.ssl_policy.clone(),
            certificates,
            alpn_policy,
        };
        let existing = state
            .listeners_of(&arn)
            .find(|l| l.port == listener.port)
            .cloned();
        match existing {
            Some(l) if l.origin != FILE => {
                return Err(ModelError::new(
                    ErrorCode::DuplicateListener,
                    format!(
                        "{lpath}.port: a listener created through the API already uses port {}",
                        listener.port
                    ),
                ));
            }
            Some(l) => modify_listener(state, &l.arn, &desired, cx, lpath)?,
            None => {
                let command = Command::CreateListener(CreateListener {
                    load_balancer_arn: arn.clone(),
                    protocol: Some(protocol),
                    port: Some(listener.port),
                    default_actions: desired.actions.clone(),
                    default_action_orders: Vec::new(),
                    ssl_policy: desired.ssl_policy.clone(),
                    certificate_arns: desired.certificates.iter().take(1).cloned().collect(),
                    mutual_authentication: None,
                    alpn_policy: desired.alpn_policy,
                    origin: FILE,
                });
                let listener_arn = created(run(state, command, cx, lpath)?);
                sync_sni_certificates(state, &listener_arn, &desired, cx, lpath)?;
            }
        }
    }
    Ok(())
}

/// A declared listener: what the file says it is.
struct Desired {
    protocol: ListenerProtocol,
    port: u16,
    actions: Vec<Action>,
    ssl_policy: Option<String>,
    /// The default certificate first, then the SNI ones.
    certificates: Vec<String>,
    alpn_policy: Option<AlpnPolicy>,
}

/// Brings an existing listener to what is declared, in place: open connections stay.
fn modify_listener(
    state: &mut Region,
    listener_arn: &str,
    desired: &Desired,
    cx: &mut Context<'_>,
    path: &str,
) -> Result<(), ModelError> {
    let current = &state.listeners[listener_arn];
    let policy = desired.ssl_policy.clone().or_else(|| {
        desired
            .protocol
            .is_tls()
            .then(|| DEFAULT_SSL_POLICY.to_owned())
    });
    let current_policy = current.tls.as_ref().map(|t| t.ssl_policy.clone());
    let current_default = current
        .tls
        .as_ref()
        .map(|t| t.default_certificate_arn.clone());
    let current_alpn = current.tls.as_ref().map(|t| t.alpn_policy);
    let alpn = desired
        .alpn_policy
        .or_else(|| (desired.protocol == ListenerProtocol::Tls).then_some(AlpnPolicy::Off));
    if current.protocol != desired.protocol
        || current.default_actions != desired.actions
        || current_policy != policy
        || current_default.as_ref() != desired.certificates.first()
        || current_alpn.filter(|_| current.protocol == ListenerProtocol::Tls) != alpn
    {
        let changes = ListenerChanges {
            protocol: Some(desired.protocol),
            port: Some(desired.port),
            ssl_policy: policy,
            certificate_arns: Some(desired.certificates.iter().take(1).cloned().collect()),
            // The file does not declare mutual TLS; what the API set stays.
            mutual_authentication: None,
            alpn_policy: alpn,
            default_actions: Some(desired.actions.clone()),
            // The file gives no Order.
            default_action_orders: Vec::new(),
        };
        let command = Command::ModifyListener {
            arn: listener_arn.to_owned(),
            changes,
        };
        run(state, command, cx, path)?;
    }
    sync_sni_certificates(state, listener_arn, desired, cx, path)
}

/// Makes a TLS listener's SNI certificates those declared after the default.
fn sync_sni_certificates(
    state: &mut Region,
    listener_arn: &str,
    desired: &Desired,
    cx: &mut Context<'_>,
    path: &str,
) -> Result<(), ModelError> {
    let Some(tls) = &state.listeners[listener_arn].tls else {
        return Ok(());
    };
    let wanted = desired.certificates.get(1..).unwrap_or_default();
    let stale: Vec<String> = tls
        .certificate_arns
        .iter()
        .filter(|c| !wanted.contains(c))
        .cloned()
        .collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !tls.certificate_arns.contains(c))
        .cloned()
        .collect();
    let listener_arn = listener_arn.to_owned();
    if !stale.is_empty() {
        let command = Command::RemoveListenerCertificates {
            listener_arn: listener_arn.clone(),
            certificate_arns: stale,
        };
        run(state, command, cx, path)?;
    }
    if !missing.is_empty() {
        let command = Command::AddListenerCertificates {
            listener_arn,
            certificate_arns: missing,
        };
        run(state, command, cx, path)?;
    }
    Ok(())
}

fn prefix(e: ModelError, path: &str) -> ModelError {
    ModelError::new(e.code, format!("{path}: {}", e.message))
}

/// The default subnet of zone `az` in the default VPC.
fn default_subnet(state: &Region, az: &str) -> Result<String, ModelError> {
    let vpc = state
        .default_vpc()
        .map(|v| v.id.as_str())
        .unwrap_or_default();
    let subnets = || {
        state
            .subnets
            .values()
            .filter(|s| s.vpc_id == vpc && s.default_for_az)
    };
    subnets()
        .find(|s| s.availability_zone == az)
        .map(|s| s.id.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = subnets().map(|s| s.availability_zone.as_str()).collect();
            ModelError::new(
                ErrorCode::AvailabilityZoneNotSupported,
                format!(
                    "availability zone '{az}' is not one of {}",
                    known.join(", ")
                ),
            )
        })
}
