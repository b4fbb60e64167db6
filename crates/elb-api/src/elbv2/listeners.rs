//! Listeners: create, describe, modify, delete; their SNI certificates; the SSL policies.

use elb_model::ssl_policy::{SSL_POLICIES, SslPolicy};
use elb_model::state::{CreateListener, ListenerChanges};
use elb_model::{
    AlpnPolicy, Command, ErrorCode, IdentityField, IdentityFilter, Listener, ListenerProtocol,
    ModelError, MtlsMode, MutualAuthentication, Origin, Region,
};

use super::actions::action_params;
use super::{create_then, page, render, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

const PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE", "QUIC", "TCP_QUIC",
];

/// `<Listeners>` holding the one listener a create or modify call returns.
fn only_listener(state: &Region, arn: &str) -> Xml {
    let mut x = Xml::new();
    x.members("Listeners", [&state.listeners[arn]], render::listener);
    x
}

pub(super) fn create(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let load_balancer_arn = params.required("LoadBalancerArn")?.to_owned();
    let protocol = params
        .one_of("Protocol", PROTOCOLS)?
        .map(|protocol| {
            ListenerProtocol::parse(protocol).map_err(|_| {
                // A gateway's listener takes no protocol at all, known or not: AWS says so
                // before judging the name (the model does for the names elbd knows).
                let snapshot = api.snapshot();
                let lb = snapshot.state().load_balancers.get(&load_balancer_arn);
                if lb.is_some_and(|lb| lb.kind == elb_model::LoadBalancerKind::Gateway) {
                    return ApiError::validation(
                        "A protocol cannot be specified for gateway listeners",
                    );
                }
                ModelError::new(
                    ErrorCode::UnsupportedProtocol,
                    format!("elbd does not serve {protocol} listeners"),
                )
                .into()
            })
        })
        .transpose()?;
    let port = params.int("Port", 1, 65535)?.map(|p| p as u16);
    let (default_actions, default_action_orders) = action_params(params, "DefaultActions.member")?;
    let tags = tag_params(params)?;
    let alpn_policy = alpn_param(params)?;
    let mutual_authentication = mutual_params(params)?.flatten();
    let create = Command::CreateListener(CreateListener {
        load_balancer_arn,
        protocol,
        port,
        default_actions,
        default_action_orders,
        ssl_policy: params.optional("SslPolicy").map(str::to_owned),
        certificate_arns: certificate_params(params)?,
        mutual_authentication,
        alpn_policy,
        origin: Origin::Api,
    });
    let (snapshot, arn) =
        create_then(api, create, |arn| tagging(arn, &tags).into_iter().collect())?;
    Ok(only_listener(snapshot.state(), &arn))
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let lb_arn = params.optional("LoadBalancerArn");
    let arns = params.list("ListenerArns.member")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let mut found: Vec<&Listener> = match (lb_arn, arns.is_empty()) {
        (Some(_), false) => {
            return Err(ApiError::validation(
                "Listener ARNs and a load balancer ARN cannot be specified at the same time",
            ));
        }
        (None, true) => {
            return Err(ApiError::validation(
                "You must specify either listener ARNs or a load balancer ARN",
            ));
        }
        (Some(lb), true) => {
            if !state.load_balancers.contains_key(lb) {
                return Err(ModelError::new(
                    ErrorCode::LoadBalancerNotFound,
                    format!("Load balancer '{lb}' not found"),
                )
                .into());
            }
            state.listeners_of(lb).collect()
        }
        (None, false) => {
            if arns.iter().any(|a| !state.listeners.contains_key(a)) {
                return Err(ModelError::new(
                    ErrorCode::ListenerNotFound,
                    "One or more listeners not found",
                )
                .into());
            }
            arns.iter().map(|a| &state.listeners[a]).collect()
        }
    };
    found.sort_by_key(|l| (l.port, l.arn.clone()));
    let (found, next) = page(params, found, |l| &l.arn)?;
    let mut x = Xml::new();
    x.members("Listeners", found, render::listener);
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

pub(super) fn modify(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?.to_owned();
    let port = params.int("Port", 1, 65535)?.map(|p| p as u16);
    let protocol = params
        .one_of("Protocol", PROTOCOLS)?
        .map(ListenerProtocol::parse)
        .transpose()?;
    let default_actions = if params.structs("DefaultActions.member")?.is_empty() {
        None
    } else {
        Some(action_params(params, "DefaultActions.member")?)
    };
    let alpn_policy = alpn_param(params)?;
    let certificates = certificate_params(params)?;
    let changes = ListenerChanges {
        port,
        protocol,
        ssl_policy: params.optional("SslPolicy").map(str::to_owned),
        certificate_arns: (!certificates.is_empty()).then_some(certificates),
        mutual_authentication: mutual_params(params)?,
        alpn_policy,
        default_action_orders: default_actions
            .as_ref()
            .map(|(_, orders)| orders.clone())
            .unwrap_or_default(),
        default_actions: default_actions.map(|(actions, _)| actions),
    };
    let command = Command::ModifyListener {
        arn: arn.clone(),
        changes,
    };
    let (snapshot, _) = api.update(|state, cx| state.apply(command.clone(), cx))?;
    Ok(only_listener(snapshot.state(), &arn))
}

/// `Certificates.member.N.CertificateArn`.
fn certificate_params(params: &Params) -> Result<Vec<String>, ApiError> {
    params
        .structs("Certificates.member")?
        .iter()
        .map(|c| {
            let arn = c.required("CertificateArn")?.to_owned();
            c.optional("IsDefault");
            c.finish()?;
            Ok(arn)
        })
        .collect()
}

/// `AlpnPolicy.member.1`: AWS's list holds one policy.
fn alpn_param(params: &Params) -> Result<Option<AlpnPolicy>, ApiError> {
    match params.list("AlpnPolicy.member")?.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(AlpnPolicy::parse(one)?)),
        _ => Err(ApiError::validation(
            "Only one ALPN policy can be specified",
        )),
    }
}

/// `MutualAuthentication.*`: `None` when not given, `Some(None)` for mode `off`.
fn mutual_params(params: &Params) -> Result<Option<Option<MutualAuthentication>>, ApiError> {
    let prefix = "MutualAuthentication";
    let mode = params.one_of(&format!("{prefix}.Mode"), &["off", "passthrough", "verify"])?;
    let trust_store_arn = params
        .optional(&format!("{prefix}.TrustStoreArn"))
        .map(str::to_owned);
    let advertise = params.one_of(
        &format!("{prefix}.AdvertiseTrustStoreCaNames"),
        &["on", "off"],
    )?;
    // An output field of the shared shape; AWS takes it in requests and ignores it.
    params.one_of(
        &format!("{prefix}.TrustStoreAssociationStatus"),
        &["active", "removed"],
    )?;
    if params.bool(&format!("{prefix}.IgnoreClientCertificateExpiry"))? == Some(true) {
        return Err(ModelError::new(
            ErrorCode::InvalidConfigurationRequest,
            "elbd does not implement IgnoreClientCertificateExpiry yet",
        )
        .into());
    }
    let identity_filters = identity_filter_params(params, prefix)?;
    if !identity_filters.is_empty() && mode != Some("verify") {
        return Err(ApiError::validation(
            "Client certificate identity filters can be specified only in verify mode",
        ));
    }
    let mode = match mode {
        None => return Ok(None),
        Some("off") => return Ok(Some(None)),
        Some("verify") => MtlsMode::Verify,
        Some(_) => MtlsMode::Passthrough,
    };
    Ok(Some(Some(MutualAuthentication {
        mode,
        trust_store_arn,
        advertise_ca_names: advertise == Some("on"),
        identity_filters,
    })))
}

/// `MutualAuthentication.ClientCertificateIdentityFilters.member.N`; the model checks values.
fn identity_filter_params(params: &Params, prefix: &str) -> Result<Vec<IdentityFilter>, ApiError> {
    let list = format!("{prefix}.ClientCertificateIdentityFilters.member");
    params
        .structs(&list)?
        .into_iter()
        .map(|f| {
            let field = IdentityField::parse(f.required("Field")?)?;
            f.one_of("Action", &["accept"])?
                .ok_or_else(|| ApiError::missing("ClientCertificateIdentityFilters.Action"))?;
            let prefix = match f.one_of("MatchType", &["exact", "prefix"])? {
                Some(kind) => kind == "prefix",
                None => {
                    return Err(ApiError::missing(
                        "ClientCertificateIdentityFilters.MatchType",
                    ));
                }
            };
            let filter = IdentityFilter {
                field,
                prefix,
                value: f.required("Value")?.to_owned(),
            };
            f.finish()?;
            Ok(filter)
        })
        .collect()
}

pub(super) fn add_certificates(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let listener_arn = params.required("ListenerArn")?.to_owned();
    let certificate_arns = certificate_params(params)?;
    if certificate_arns.is_empty() {
        return Err(ApiError::missing("Certificates"));
    }
    api.execute(Command::AddListenerCertificates {
        listener_arn,
        certificate_arns: certificate_arns.clone(),
    })?;
    let mut x = Xml::new();
    x.members("Certificates", &certificate_arns, |x, arn| {
        x.leaf("CertificateArn", arn);
    });
    Ok(x)
}

pub(super) fn remove_certificates(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let listener_arn = params.required("ListenerArn")?.to_owned();
    let certificate_arns = certificate_params(params)?;
    api.execute(Command::RemoveListenerCertificates {
        listener_arn,
        certificate_arns,
    })?;
    Ok(Xml::new())
}

/// The default certificate (`IsDefault` true) and the SNI ones.
pub(super) fn describe_certificates(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?;
    let snapshot = api.snapshot();
    let l = listener(snapshot.state(), arn)?;
    let mut certificates: Vec<(&str, bool)> = Vec::new();
    if let Some(tls) = &l.tls {
        certificates.push((&tls.default_certificate_arn, true));
        certificates.extend(tls.certificate_arns.iter().map(|c| (c.as_str(), false)));
    }
    let (found, next) = page(params, certificates, |(arn, _)| arn)?;
    let mut x = Xml::new();
    x.members("Certificates", found, |x, (arn, default)| {
        x.leaf("CertificateArn", arn)
            .leaf("IsDefault", default.to_string());
    });
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

pub(super) fn describe_ssl_policies(params: &Params) -> Result<Xml, ApiError> {
    let names = params.list("Names.member")?;
    let kind = params.one_of("LoadBalancerType", &["application", "network", "gateway"])?;
    let mut found: Vec<&SslPolicy> = Vec::new();
    for name in &names {
        let policy = SSL_POLICIES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                ModelError::new(
                    ErrorCode::SslPolicyNotFound,
                    format!("SSL policy '{name}' not found"),
                )
            })?;
        found.push(policy);
    }
    if names.is_empty() {
        found = SSL_POLICIES.iter().collect();
    }
    // Gateway load balancers terminate no TLS.
    found.retain(|_| kind != Some("gateway"));
    let (found, next) = page(params, found, |p| p.name)?;
    let mut x = Xml::new();
    x.members("SslPolicies", found, render_policy);
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

fn render_policy(x: &mut Xml, p: &SslPolicy) {
    x.text_members("SslProtocols", p.protocols);
    x.members("Ciphers", p.ciphers().enumerate(), |x, (i, name)| {
        x.leaf("Name", name).leaf("Priority", (i + 1).to_string());
    });
    x.leaf("Name", p.name);
    x.text_members("SupportedLoadBalancerTypes", ["application", "network"]);
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?.to_owned();
    api.execute(Command::DeleteListener { arn })?;
    Ok(Xml::new())
}

fn listener<'a>(state: &'a Region, arn: &str) -> Result<&'a Listener, ModelError> {
    state.listeners.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::ListenerNotFound,
            format!("Listener '{arn}' not found"),
        )
    })
}
