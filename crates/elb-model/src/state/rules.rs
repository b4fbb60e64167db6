//! CreateRule, ModifyRule, DeleteRule, SetRulePriorities.

use super::{Origin, Outcome, Region, Tags};
use crate::error::{ErrorCode, ModelError, Result};
use crate::id::Context;
use crate::limits::RULES_PER_LOAD_BALANCER;
use crate::listener::ListenerProtocol;
use crate::rule::{Action, Condition, Rule, Transform, validate_conditions, validate_transforms};

impl Region {
    pub(super) fn create_rule(
        &mut self,
        listener_arn: &str,
        priority: u16,
        (conditions, transforms): (Vec<Condition>, Vec<Transform>),
        (actions, action_orders): (Vec<Action>, Vec<u16>),
        origin: Origin,
        cx: &mut Context<'_>,
    ) -> Result<Outcome> {
        let listener = self.listener(listener_arn)?;
        let (lb_arn, protocol) = (listener.load_balancer_arn.clone(), listener.protocol);
        if !matches!(protocol, ListenerProtocol::Http | ListenerProtocol::Https) {
            return Err(ModelError::validation(format!(
                "Rules are not supported for {} listeners; only HTTP and HTTPS listeners have \
                 rules",
                protocol.as_str()
            )));
        }
        check_priority(priority)?;
        validate_conditions(&conditions)?;
        validate_transforms(&transforms)?;
        // In one order, so that a repeated create compares them as a set.
        let mut transforms = transforms;
        transforms.sort_by_key(Transform::kind);
        self.check_actions(&lb_arn, protocol, &actions)?;
        let mut actions = actions;
        super::listeners::keep_client_secret(&mut actions, &[])?;
        if let Some(same) = self
            .rules
            .values()
            .find(|r| r.listener_arn == listener_arn && r.priority == priority)
        {
            // A repeated identical create is idempotent, as AWS's creates are.
            let same_actions = same.actions == actions && same.action_orders == action_orders;
            let same_rest = same.conditions == conditions && same.transforms == transforms;
            return if same_rest && same_actions {
                Ok(Outcome::Created(same.arn.clone()))
            } else {
                Err(priority_in_use(priority))
            };
        }
        let listeners: Vec<&str> = self.listeners_of(&lb_arn).map(|l| l.arn.as_str()).collect();
        if self
            .rules
            .values()
            .filter(|r| listeners.contains(&r.listener_arn.as_str()))
            .count()
            >= RULES_PER_LOAD_BALANCER
        {
            return Err(ModelError::new(
                ErrorCode::TooManyRules,
                format!("A load balancer can have at most {RULES_PER_LOAD_BALANCER} rules"),
            ));
        }
        let arn = format!(
            "{}/{}",
            listener_arn.replacen(":listener/", ":listener-rule/", 1),
            cx.hex16()
        );
        self.rules.insert(
            arn.clone(),
            Rule {
                arn: arn.clone(),
                listener_arn: listener_arn.to_owned(),
                priority,
                conditions,
                actions,
                transforms,
                action_orders,
                tags: Tags::new(),
                origin,
            },
        );
        Ok(Outcome::Created(arn))
    }

    pub(super) fn modify_rule(
        &mut self,
        arn: &str,
        (conditions, transforms): (Option<Vec<Condition>>, Option<Vec<Transform>>),
        actions: Option<(Vec<Action>, Vec<u16>)>,
    ) -> Result<Outcome> {
        let rule = self.rule(arn)?;
        let listener = self.listener(&rule.listener_arn)?;
        let (lb_arn, protocol) = (listener.load_balancer_arn.clone(), listener.protocol);
        if let Some(conditions) = &conditions {
            validate_conditions(conditions)?;
        }
        if let Some(transforms) = &transforms {
            validate_transforms(transforms)?;
        }
        let mut actions = actions;
        if let Some((actions, _)) = &mut actions {
            self.check_actions(&lb_arn, protocol, actions)?;
            super::listeners::keep_client_secret(actions, &rule.actions)?;
        }
        let rule = self.rules.get_mut(arn).expect("checked above");
        if let Some(conditions) = conditions {
            rule.conditions = conditions;
        }
        if let Some(mut transforms) = transforms {
            transforms.sort_by_key(Transform::kind);
            rule.transforms = transforms;
        }
        if let Some((actions, order)) = actions {
            rule.actions = actions;
            rule.action_orders = order;
        }
        Ok(Outcome::Done)
    }

    /// The default rule of a listener cannot be deleted: it goes with the listener.
    pub(super) fn delete_rule(&mut self, arn: &str) -> Result<Outcome> {
        if self.listeners.values().any(|l| l.default_rule_arn == arn) {
            return Err(ModelError::new(
                ErrorCode::OperationNotPermitted,
                "A default rule cannot be deleted",
            ));
        }
        self.rule(arn)?;
        self.rules.remove(arn);
        Ok(Outcome::Done)
    }

    /// All priorities change together; the result must leave each listener's unique.
    pub(super) fn set_rule_priorities(&mut self, priorities: &[(String, u16)]) -> Result<Outcome> {
        for (arn, priority) in priorities {
            if self.listeners.values().any(|l| &l.default_rule_arn == arn) {
                return Err(ModelError::new(
                    ErrorCode::OperationNotPermitted,
                    "The priority of a default rule cannot be changed",
                ));
            }
            self.rule(arn)?;
            check_priority(*priority)?;
        }
        for (arn, priority) in priorities {
            self.rules.get_mut(arn).expect("checked above").priority = *priority;
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in self.rules.values() {
            if !seen.insert((&r.listener_arn, r.priority)) {
                return Err(priority_in_use(r.priority));
            }
        }
        Ok(Outcome::Done)
    }

    fn rule(&self, arn: &str) -> Result<&Rule> {
        self.rules.get(arn).ok_or_else(|| {
            ModelError::new(ErrorCode::RuleNotFound, format!("Rule '{arn}' not found"))
        })
    }
}

fn check_priority(priority: u16) -> Result<()> {
    if (1..=50_000).contains(&priority) {
        Ok(())
    } else {
        Err(ModelError::validation(format!(
            "Priority {priority} must be from 1 to 50000"
        )))
    }
}

fn priority_in_use(priority: u16) -> ModelError {
    ModelError::new(
        ErrorCode::PriorityInUse,
        format!("Priority '{priority}' is currently in use"),
    )
}
