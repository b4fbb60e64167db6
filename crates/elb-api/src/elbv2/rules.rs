//! CreateRule, DescribeRules, ModifyRule, DeleteRule, SetRulePriorities.

use elb_model::state::ListenerChanges;
use elb_model::{Command, ErrorCode, Listener, ModelError, Origin, Region, Rule};

use super::actions::{
    action_params, condition_params, render_actions, render_conditions, render_transforms,
    transform_params,
};
use super::{create_then, page, tag_params, tagging};
use crate::ApiCall;
use crate::error::ApiError;
use crate::query::Params;
use crate::xml::Xml;

/// A rule as the API shows it: a prioritised rule, or a listener's default rule.
enum Shown<'a> {
    Rule(&'a Rule),
    Default(&'a Listener),
}

impl Shown<'_> {
    fn arn(&self) -> &str {
        match self {
            Self::Rule(r) => &r.arn,
            Self::Default(l) => &l.default_rule_arn,
        }
    }

    fn render(&self, x: &mut Xml) {
        match self {
            Self::Rule(r) => {
                x.leaf("RuleArn", &r.arn)
                    .leaf("Priority", r.priority.to_string());
                render_conditions(x, &r.conditions);
                render_actions(x, "Actions", &r.actions, &r.action_orders);
                x.leaf("IsDefault", "false");
                render_transforms(x, &r.transforms);
            }
            Self::Default(l) => {
                x.leaf("RuleArn", &l.default_rule_arn)
                    .leaf("Priority", "default");
                render_conditions(x, &[]);
                render_actions(x, "Actions", &l.default_actions, &l.default_action_orders);
                x.leaf("IsDefault", "true");
            }
        }
    }
}

fn priority(params: &Params, name: &str) -> Result<u16, ApiError> {
    Ok(params
        .int(name, 1, 50_000)?
        .ok_or_else(|| ApiError::missing(name))? as u16)
}

pub(super) fn create(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let listener_arn = params.required("ListenerArn")?.to_owned();
    let priority = priority(params, "Priority")?;
    let conditions = condition_params(params)?;
    let (actions, action_orders) = action_params(params, "Actions.member")?;
    let transforms = transform_params(params)?;
    let tags = tag_params(params)?;
    let create = Command::CreateRule {
        listener_arn,
        priority,
        conditions,
        actions,
        action_orders,
        transforms,
        origin: Origin::Api,
    };
    let (snapshot, arn) =
        create_then(api, create, |arn| tagging(arn, &tags).into_iter().collect())?;
    let mut x = Xml::new();
    x.members(
        "Rules",
        [Shown::Rule(&snapshot.state().rules[&arn])],
        |x, r| r.render(x),
    );
    Ok(x)
}

fn listener<'a>(state: &'a Region, arn: &str) -> Result<&'a Listener, ApiError> {
    state.listeners.get(arn).ok_or_else(|| {
        ModelError::new(
            ErrorCode::ListenerNotFound,
            format!("Listener '{arn}' not found"),
        )
        .into()
    })
}

pub(super) fn describe(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let listener_arn = params.optional("ListenerArn");
    let rule_arns = params.list("RuleArns.member")?;
    let snapshot = api.snapshot();
    let state = snapshot.state();
    let shown: Vec<Shown<'_>> = match (listener_arn, rule_arns.is_empty()) {
        (Some(arn), true) => {
            let l = listener(state, arn)?;
            let mut shown: Vec<Shown<'_>> = state
                .rules_of(&l.arn)
                .into_iter()
                .map(Shown::Rule)
                .collect();
            shown.push(Shown::Default(l));
            shown
        }
        (None, false) => rule_arns
            .iter()
            .map(|arn| {
                let rule = state.rules.get(arn).map(Shown::Rule);
                let default = || {
                    state
                        .listeners
                        .values()
                        .find(|l| &l.default_rule_arn == arn)
                        .map(Shown::Default)
                };
                rule.or_else(default).ok_or_else(|| {
                    ApiError::from(ModelError::new(
                        ErrorCode::RuleNotFound,
                        "One or more rules not found",
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(ApiError::validation(
                "You must specify either a listener ARN or rule ARNs, not both",
            ));
        }
    };
    let (shown, next) = page(params, shown, |r| r.arn())?;
    let mut x = Xml::new();
    x.members("Rules", shown, |x, r| r.render(x));
    if let Some(next) = next {
        x.leaf("NextMarker", next);
    }
    Ok(x)
}

pub(super) fn modify(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("RuleArn")?.to_owned();
    let given = transform_params(params)?;
    let transforms = match (params.bool("ResetTransforms")?, given.is_empty()) {
        (Some(true), false) => {
            return Err(ApiError::validation(
                "If you specify Transforms, you can't specify ResetTransforms",
            ));
        }
        (Some(true), true) => Some(Vec::new()),
        (_, false) => Some(given),
        (_, true) => None,
    };
    let conditions = Some(condition_params(params)?).filter(|c| !c.is_empty());
    let actions = if params.structs("Actions.member")?.is_empty() {
        None
    } else {
        Some(action_params(params, "Actions.member")?)
    };
    let is_default = api
        .snapshot()
        .state()
        .listeners
        .values()
        .any(|l| l.default_rule_arn == arn);
    let (snapshot, ()) = api.update(|state, cx| {
        if is_default {
            // The default rule is the listener's default actions.
            if conditions.is_some() {
                return Err(ModelError::new(
                    ErrorCode::OperationNotPermitted,
                    "A default rule cannot have conditions",
                ));
            }
            if transforms.as_ref().is_some_and(|t| !t.is_empty()) {
                return Err(ModelError::new(
                    ErrorCode::OperationNotPermitted,
                    "A default rule cannot have transforms",
                ));
            }
            // The listener may have gone since the snapshot above.
            let l = state
                .listeners
                .values()
                .find(|l| l.default_rule_arn == arn)
                .cloned()
                .ok_or_else(|| rule_not_found(&arn))?;
            if let Some((actions, order)) = actions.clone() {
                state.apply(
                    Command::ModifyListener {
                        arn: l.arn,
                        changes: ListenerChanges {
                            default_actions: Some(actions),
                            default_action_orders: order,
                            ..ListenerChanges::default()
                        },
                    },
                    cx,
                )?;
            }
            return Ok(());
        }
        let command = Command::ModifyRule {
            arn: arn.clone(),
            conditions: conditions.clone(),
            transforms: transforms.clone(),
            action_orders: actions
                .as_ref()
                .map(|(_, orders)| orders.clone())
                .unwrap_or_default(),
            actions: actions.clone().map(|(actions, _)| actions),
        };
        state.apply(command, cx).map(drop)
    })?;
    let state = snapshot.state();
    let shown = match state.rules.get(&arn) {
        Some(rule) => Shown::Rule(rule),
        None => Shown::Default(
            state
                .listeners
                .values()
                .find(|l| l.default_rule_arn == arn)
                .ok_or_else(|| rule_not_found(&arn))?,
        ),
    };
    let mut x = Xml::new();
    x.members("Rules", [shown], |x, r| r.render(x));
    Ok(x)
}

pub(super) fn delete(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let arn = params.required("RuleArn")?.to_owned();
    api.execute(Command::DeleteRule { arn })?;
    Ok(Xml::new())
}

pub(super) fn set_priorities(api: &ApiCall<'_>, params: &Params) -> Result<Xml, ApiError> {
    let priorities = params
        .structs("RulePriorities.member")?
        .into_iter()
        .map(|p| {
            let pair = (p.required("RuleArn")?.to_owned(), priority(&p, "Priority")?);
            p.finish()?;
            Ok(pair)
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let arns: Vec<String> = priorities.iter().map(|(arn, _)| arn.clone()).collect();
    let (snapshot, _) = api.update(|state, cx| {
        state.apply(
            Command::SetRulePriorities {
                priorities: priorities.clone(),
            },
            cx,
        )
    })?;
    let mut x = Xml::new();
    x.members(
        "Rules",
        arns.iter().map(|a| Shown::Rule(&snapshot.state().rules[a])),
        |x, r| r.render(x),
    );
    Ok(x)
}

fn rule_not_found(arn: &str) -> ModelError {
    ModelError::new(ErrorCode::RuleNotFound, format!("Rule '{arn}' not found"))
}
