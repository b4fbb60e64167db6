//! Listeners and their rules: create, describe, modify, delete; DescribeRules.

use elb_model::state::CreateListener;
use elb_model::{Command, ErrorCode, Listener, ListenerProtocol, ModelError, Origin, State};

use super::actions::action_params;
use super::{create_then, page, render, tag_params, tagging};
use crate::Api;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

const PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE", "QUIC", "TCP_QUIC",
];

/// `<Listeners>` holding the one listener a create or modify call returns.
fn only_listener(state: &State, arn: &str) -> Xml {
    let mut x = Xml::new();
    x.members("Listeners", [&state.listeners[arn]], render::listener);
    x
}

pub(super) fn create(api: &Api, params: &Params) -> Result<Xml, ApiError> {
    let load_balancer_arn = params.required("LoadBalancerArn")?.to_owned();
    let protocol = params
        .one_of("Protocol", PROTOCOLS)?
        .ok_or_else(|| ApiError::missing("Protocol"))?;
    let protocol = ListenerProtocol::parse(protocol).map_err(|_| {
        ModelError::new(
            ErrorCode::UnsupportedProtocol,
            format!("elbd does not serve {protocol} listeners"),
        )
    })?;
    let port = params
        .int("Port", 1, 65535)?
        .ok_or_else(|| ApiError::missing("Port"))? as u16;
    let default_actions = action_params(params, "DefaultActions.member")?;
    let tags = tag_params(params)?;
    let create = Command::CreateListener(CreateListener {
        load_balancer_arn,
        protocol,
        port,
        default_actions,
        origin: Origin::Api,
    });
    let (snapshot, arn) =
        create_then(api, create, |arn| tagging(arn, &tags).into_iter().collect())?;
    Ok(only_listener(&snapshot.state, &arn))
}

pub(super) fn describe(api: &Api, params: &Params) -> Result<Xml, ApiError> {
    let lb_arn = params.optional("LoadBalancerArn");
    let arns = params.list("ListenerArns.member")?;
    let snapshot = api.store.snapshot();
    let state = &snapshot.state;
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

pub(super) fn modify(api: &Api, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?.to_owned();
    let port = params.int("Port", 1, 65535)?.map(|p| p as u16);
    let protocol = params
        .one_of("Protocol", PROTOCOLS)?
        .map(ListenerProtocol::parse)
        .transpose()?;
    let actions = if params.structs("DefaultActions.member")?.is_empty() {
        None
    } else {
        Some(action_params(params, "DefaultActions.member")?)
    };
    let (snapshot, ()) = api.store.update(|state, cx| {
        let current = listener(state, &arn)?.clone();
        if protocol.is_some_and(|p| p != current.protocol) {
            return Err(ModelError::new(
                ErrorCode::UnsupportedProtocol,
                "elbd cannot change a listener's protocol yet",
            ));
        }
        state.apply(
            Command::ModifyListener {
                arn: arn.clone(),
                port,
                default_actions: actions.clone().unwrap_or(current.default_actions),
            },
            cx,
        )?;
        Ok(())
    })?;
    Ok(only_listener(&snapshot.state, &arn))
}

pub(super) fn delete(api: &Api, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("ListenerArn")?.to_owned();
    api.store.execute(Command::DeleteListener { arn })?;
    Ok(Xml::new())
}

fn listener<'a>(state: &'a State, arn: &str) -> Result<&'a Listener, ModelError> {
    state.listeners.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::ListenerNotFound,
            format!("Listener '{arn}' not found"),
        )
    })
}
