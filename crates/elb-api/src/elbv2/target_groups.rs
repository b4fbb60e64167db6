//! Target groups and their targets: create, describe, modify, delete, register, deregister,
//! and DescribeTargetHealth.

use elb_model::attributes::ALGORITHM;
use elb_model::state::{CreateTargetGroup, TargetDescription};
use elb_model::target_group::{HealthCheckChanges, TargetIpAddressType};
use elb_model::{
    Anomaly, Command, ErrorCode, HealthState, HealthView, InstanceState, ModelError, Origin,
    ProtocolVersion, Reason, Region, Registration, TargetGroup, TargetId, TargetType,
};

use super::{create_then, page, render, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

const PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE", "QUIC", "TCP_QUIC",
];

pub(super) fn create(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let target_type = params
        .one_of("TargetType", &["instance", "ip", "lambda", "alb"])?
        .unwrap_or("instance")
        .to_owned();
    let name = params.required("Name")?.to_owned();
    let protocol = params.one_of("Protocol", PROTOCOLS)?.map(str::to_owned);
    let port = params.int("Port", 1, 65535)?.map(|p| p as u16);
    // Lambda groups take none; the model says so if given.
    let vpc_id = match target_type.as_str() {
        "lambda" => params.optional("VpcId"),
        _ => Some(params.required("VpcId")?),
    }
    .map(str::to_owned);
    let protocol_version = params
        .one_of("ProtocolVersion", &["HTTP1", "HTTP2", "GRPC"])?
        .map(ProtocolVersion::parse)
        .transpose()?;
    if let (Some(protocol), Some(_)) = (&protocol, protocol_version)
        && !matches!(protocol.as_str(), "HTTP" | "HTTPS")
    {
        return Err(ApiError::validation(format!(
            "A protocol version can only be set for HTTP and HTTPS target groups, not {protocol}"
        )));
    }
    if protocol_version.is_some() && target_type == "lambda" {
        return Err(ApiError::validation(
            "Protocol version cannot be specified for target groups with target type 'lambda'",
        ));
    }
    let protocol_version = protocol_version.unwrap_or_default();
    let ip_address_type = params
        .one_of("IpAddressType", &["ipv4", "ipv6"])?
        .map(|t| match t {
            "ipv6" => TargetIpAddressType::Ipv6,
            _ => TargetIpAddressType::Ipv4,
        });
    let health_check = health_check_changes(params)?;
    let tags = tag_params(params)?;
    let create = Command::CreateTargetGroup(CreateTargetGroup {
        name,
        protocol,
        protocol_version,
        port,
        vpc_id,
        target_type,
        ip_address_type,
        origin: Origin::Api,
    });
    let (snapshot, arn) = create_then(api, create, |arn| {
        let settings =
            (health_check != HealthCheckChanges::default()).then(|| Command::ModifyTargetGroup {
                arn: arn.to_owned(),
                health_check: health_check.clone(),
            });
        settings.into_iter().chain(tagging(arn, &tags)).collect()
    })?;
    Ok(only_target_group(snapshot.state(), &arn))
}

/// `<TargetGroups>` holding the one group a create or modify call returns.
fn only_target_group(state: &Region, arn: &str) -> Xml {
    let mut x = Xml::new();
    x.members("TargetGroups", [&state.target_groups[arn]], |x, tg| {
        render::target_group(x, state, tg)
    });
    x
}

/// The health-check settings a call gives; the model checks them.
fn health_check_changes(params: &Params) -> Result<HealthCheckChanges, ApiError> {
    let number = |name: &str| -> Result<Option<u16>, ApiError> {
        Ok(params.int(name, 0, 65535)?.map(|n| n as u16))
    };
    Ok(HealthCheckChanges {
        enabled: params.bool("HealthCheckEnabled")?,
        protocol: params
            .one_of("HealthCheckProtocol", PROTOCOLS)?
            .map(str::to_owned),
        port: params.optional("HealthCheckPort").map(str::to_owned),
        path: params.optional("HealthCheckPath").map(str::to_owned),
        interval_seconds: number("HealthCheckIntervalSeconds")?,
        timeout_seconds: number("HealthCheckTimeoutSeconds")?,
        healthy_threshold: number("HealthyThresholdCount")?,
        unhealthy_threshold: number("UnhealthyThresholdCount")?,
        http_code: params.optional("Matcher.HttpCode").map(str::to_owned),
        grpc_code: params.optional("Matcher.GrpcCode").map(str::to_owned),
    })
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let lb_arn = params.optional("LoadBalancerArn");
    let arns = params.list("TargetGroupArns.member")?;
    let names = params.list("Names.member")?;
    // The API reference: "specify one of" the three.
    let filters = usize::from(lb_arn.is_some()) + usize::from(!arns.is_empty());
    if filters + usize::from(!names.is_empty()) > 1 {
        return Err(ApiError::validation(
            "A load balancer ARN, target group ARNs and target group names cannot be specified \
             together: specify one of them",
        ));
    }
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut found: Vec<&TargetGroup> = state.target_groups.values().collect();
    if let Some(lb_arn) = lb_arn {
        if !state.load_balancers.contains_key(lb_arn) {
            return Err(ModelError::new(
                ErrorCode::LoadBalancerNotFound,
                format!("Load balancer '{lb_arn}' not found"),
            )
            .into());
        }
        found.retain(|tg| state.load_balancer_of_target_group(&tg.arn) == Some(lb_arn));
    }
    if !arns.is_empty() {
        if arns.iter().any(|a| !state.target_groups.contains_key(a)) {
            return Err(ModelError::new(
                ErrorCode::TargetGroupNotFound,
                "One or more target groups not found",
            )
            .into());
        }
        found.retain(|tg| arns.contains(&tg.arn));
    }
    if !names.is_empty() {
        let missing: Vec<&str> = names
            .iter()
            .filter(|n| state.target_group_by_name(n).is_none())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let message = format!("Target groups '[{}]' not found", missing.join(", "));
            return Err(ModelError::new(ErrorCode::TargetGroupNotFound, message).into());
        }
        found.retain(|tg| names.contains(&tg.name));
    }
    found.sort_by(|a, b| a.arn.cmp(&b.arn));
    let (found, next) = page(params, found, |tg| &tg.arn)?;
    let mut x = Xml::new();
    x.members("TargetGroups", found, |x, tg| {
        render::target_group(x, state, tg)
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

pub(super) fn modify(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TargetGroupArn")?.to_owned();
    let health_check = health_check_changes(params)?;
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::ModifyTargetGroup {
                arn: arn.clone(),
                health_check: health_check.clone(),
            },
            cx,
        )
    })?;
    Ok(only_target_group(snapshot.state(), &arn))
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TargetGroupArn")?.to_owned();
    api.execute(Command::DeleteTargetGroup { arn })?;
    Ok(Xml::new())
}

/// `Targets.member.N`. A QUIC server ID is answered as AWS answers it for a group that is
/// not QUIC (elbd has none), once the group `arn` is known to exist.
fn target_params(
    api: &ApiCall<'_>,
    params: &Params,
    arn: &str,
) -> Result<Vec<TargetDescription>, ApiError> {
    let mut quic = false;
    let targets = params
        .structs("Targets.member")?
        .into_iter()
        .map(|t| {
            let target = TargetDescription {
                id: t.required("Id")?.to_owned(),
                port: t.int("Port", 1, 65535)?.map(|p| p as u16),
                availability_zone: t.optional("AvailabilityZone").map(str::to_owned),
            };
            quic |= t.optional("QuicServerId").is_some();
            t.finish()?;
            Ok(target)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    if quic {
        target_group(api.snapshot().state(), arn)?;
        return Err(ApiError::validation(
            "A QUIC server ID can be specified only for targets of QUIC and TCP_QUIC target \
             groups",
        ));
    }
    Ok(targets)
}

/// The target group and the (non-empty) targets of a Register/DeregisterTargets call.
fn registration(
    api: &ApiCall<'_>,
    params: &Params,
) -> Result<(String, Vec<TargetDescription>), ApiError> {
    let target_group_arn = params.required("TargetGroupArn")?.to_owned();
    let targets = target_params(api, params, &target_group_arn)?;
    if targets.is_empty() {
        return Err(ApiError::missing("Targets"));
    }
    Ok((target_group_arn, targets))
}

pub(super) fn register(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let (target_group_arn, targets) = registration(api, params)?;
    api.execute(Command::RegisterTargets {
        target_group_arn,
        targets,
    })?;
    Ok(Xml::new())
}

pub(super) fn deregister(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let (target_group_arn, targets) = registration(api, params)?;
    api.execute(Command::DeregisterTargets {
        target_group_arn,
        targets,
    })?;
    Ok(Xml::new())
}

fn target_group<'a>(state: &'a Region, arn: &str) -> Result<&'a TargetGroup, ApiError> {
    state.target_groups.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::TargetGroupNotFound,
            format!("Target group '{arn}' not found"),
        )
        .into()
    })
}

/// One `TargetHealthDescription`.
struct Row {
    id: String,
    /// `None` for a function, which has no port, nor a port to check.
    port: Option<u16>,
    zone: Option<String>,
    health_check_port: Option<u16>,
    state: HealthState,
    reason: Option<Reason>,
    /// Asked for (`Include`), and the group's nodes assess the target.
    anomaly: Option<Anomaly>,
}

/// `DescribeTargetHealthInputIncludeEnum`.
const INCLUDE: [&str; 2] = ["AnomalyDetection", "All"];

/// What DescribeTargetHealth reports for one registration: its draining, instance, group and
/// zone status first, then what the nodes' health checks found.
fn health(
    state: &Region,
    view: &HealthView,
    tg: &TargetGroup,
    r: &Registration,
) -> (HealthState, Option<Reason>) {
    if r.is_draining() {
        return (
            HealthState::Draining,
            Some(Reason::DeregistrationInProgress),
        );
    }
    if let TargetId::Instance(id) = &r.id
        && state
            .instances
            .get(id)
            .is_some_and(|i| i.state != InstanceState::Running)
    {
        return (HealthState::Unused, Some(Reason::InvalidState));
    }
    let lb = state
        .load_balancer_of_target_group(&tg.arn)
        .and_then(|arn| state.load_balancers.get(arn));
    let Some(lb) = lb else {
        return (HealthState::Unused, Some(Reason::NotInUse));
    };
    let zone_enabled = r.availability_zone == "all"
        || lb.subnet_ids.iter().any(|s| {
            state
                .subnets
                .get(s)
                .is_some_and(|s| s.availability_zone == r.availability_zone)
        });
    if !zone_enabled {
        return (HealthState::Unused, Some(Reason::ZoneNotEnabled));
    }
    if !tg.health_check.enabled {
        return (HealthState::Unavailable, Some(Reason::HealthCheckDisabled));
    }
    let keys: Vec<String> = state.expand(r).map(|x| x.key(&tg.arn)).collect();
    match view.overall_of(&keys) {
        Some(h) => (h.state, h.reason.clone()),
        None => (HealthState::Initial, Some(Reason::RegistrationInProgress)),
    }
}

pub(super) fn describe_health(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("TargetGroupArn")?;
    let include = params.list("Include.member")?;
    if include.iter().any(|v| !INCLUDE.contains(&v.as_str())) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '[{}]' at 'include' failed to satisfy \
             constraint: Member must satisfy constraint: [Member must satisfy enum value set: \
             [{}]]",
            include.join(", "),
            INCLUDE.join(", ")
        )));
    }
    let wanted = target_params(api, params, arn)?;
    // Either value asks for anomaly detection; `All` adds the administrative override.
    let anomalies = (!include.is_empty()).then(|| api.anomalies.borrow().clone());
    let overrides = include.iter().any(|v| v == "All");
    let snapshot = api.snapshot();
    let view = api.health.borrow().clone();
    let state = snapshot.state();
    let tg = target_group(state, arn)?;
    let lambda = tg.target_type == TargetType::Lambda;
    let assessed = tg.attributes.get(ALGORITHM) == Some("weighted_random");
    let anomaly = |r: &Registration| {
        let keys: Vec<String> = state.expand(r).map(|x| x.key(&tg.arn)).collect();
        anomalies
            .as_ref()
            .filter(|_| assessed)
            .and_then(|view| view.overall_of(&keys))
    };
    let names = |t: &TargetDescription, r: &Registration| {
        t.id == r.id.to_string() && t.port.is_none_or(|p| p == r.port)
    };
    let mut rows: Vec<Row> = tg
        .targets
        .iter()
        .filter(|r| wanted.is_empty() || wanted.iter().any(|t| names(t, r)))
        .map(|r| {
            let (state_now, reason) = health(state, &view, tg, r);
            let port = (!lambda).then_some(r.port);
            Row {
                id: r.id.to_string(),
                port,
                zone: matches!(r.id, TargetId::Ip(_) | TargetId::Lambda(_))
                    .then(|| r.availability_zone.clone()),
                health_check_port: port.map(|p| tg.health_check.port_for(p)),
                state: state_now,
                reason,
                anomaly: anomaly(r),
            }
        })
        .collect();
    for t in wanted
        .iter()
        .filter(|t| !tg.targets.iter().any(|r| names(t, r)))
    {
        let port = (!lambda).then(|| t.port.unwrap_or(tg.port));
        rows.push(Row {
            id: t.id.clone(),
            port,
            zone: None,
            health_check_port: port.map(|p| tg.health_check.port_for(p)),
            state: HealthState::Unused,
            reason: Some(Reason::NotRegistered),
            anomaly: None,
        });
    }
    let mut x = Xml::new();
    x.members("TargetHealthDescriptions", rows, |x, row| {
        x.node("Target", |x| {
            x.leaf("Id", &row.id);
            if let Some(port) = row.port {
                x.leaf("Port", port.to_string());
            }
            if let Some(zone) = &row.zone {
                x.leaf("AvailabilityZone", zone);
            }
        });
        if let Some(port) = row.health_check_port {
            x.leaf("HealthCheckPort", port.to_string());
        }
        x.node("TargetHealth", |x| {
            x.leaf("State", row.state.as_str());
            if let Some(reason) = &row.reason {
                x.leaf("Reason", reason.code())
                    .leaf("Description", reason.description());
            }
        });
        if let Some(anomaly) = row.anomaly {
            x.node("AnomalyDetection", |x| {
                let result = if anomaly.anomalous {
                    "anomalous"
                } else {
                    "normal"
                };
                x.leaf("Result", result).leaf(
                    "MitigationInEffect",
                    if anomaly.mitigated { "yes" } else { "no" },
                );
            });
        }
        if overrides {
            // elbd has no zonal shift.
            x.node("AdministrativeOverride", |x| {
                x.leaf("State", "no_override")
                    .leaf("Reason", "AdministrativeOverride.NoOverride")
                    .leaf("Description", "No override is currently active on target");
            });
        }
    });
    Ok(x)
}
