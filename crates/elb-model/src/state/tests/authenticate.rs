//! Authenticate actions: first of two, before the one that answers, on HTTPS listeners only,
//! and a modify may keep the client secret it does not repeat.

use super::*;
use crate::authenticate::{Authenticate, IdentityProvider, OidcProvider, SessionOptions};

fn login(secret: Option<&str>) -> Action {
    Action::Authenticate(Box::new(Authenticate {
        provider: IdentityProvider::Oidc(OidcProvider {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/auth".into(),
            token_endpoint: "https://idp.example/token".into(),
            user_info_endpoint: "https://idp.example/me".into(),
            client_id: "elbd".into(),
            client_secret: secret.map(str::to_owned),
        }),
        session: SessionOptions::default(),
    }))
}

fn secret_of(actions: &[Action]) -> Option<&str> {
    match &actions[0] {
        Action::Authenticate(auth) => match &auth.provider {
            IdentityProvider::Oidc(oidc) => oidc.client_secret.as_deref(),
            IdentityProvider::Cognito(_) => None,
        },
        _ => None,
    }
}

#[test]
fn authenticate_actions_come_first_on_https_listeners_and_may_keep_their_secret() {
    let mut w = World::new();
    let lb = arn_of(w.alb("auth", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("auth-tg");
    let certificate = w.certificate("auth.example");
    let https = arn_of(w.https_listener(&lb, &tg, None, &[&certificate]));
    let http = arn_of(w.listener(&lb, 8080, &tg));
    let rule = |listener: &str, priority, actions: Vec<Action>| Command::CreateRule {
        listener_arn: listener.into(),
        priority,
        conditions: vec![Condition::PathPattern {
            values: vec!["/x".into()],
            regex_values: Vec::new(),
        }],
        action_orders: (1..=actions.len() as u16).collect(),
        actions,
        transforms: Vec::new(),
        origin: Origin::Api,
    };
    let forward = Action::forward(&tg);
    let before = w.state.clone();
    for (listener, actions) in [
        (&http, vec![login(Some("s")), forward.clone()]),
        (&https, vec![login(Some("s"))]),
        (&https, vec![forward.clone(), login(Some("s"))]),
        (
            &https,
            vec![login(Some("s")), login(Some("s")), forward.clone()],
        ),
        // A new action has no secret to keep.
        (&https, vec![login(None), forward.clone()]),
    ] {
        let refused = w.run(rule(listener, 1, actions.clone())).unwrap_err();
        assert_eq!(refused.code, ErrorCode::ValidationError, "{actions:?}");
        assert!(
            [
                "HTTPS listeners only",
                "at most one authenticate",
                "ClientSecret"
            ]
            .iter()
            .any(|why| refused.message.contains(why)),
            "{refused}"
        );
    }
    assert_eq!(w.state, before, "nothing refused changed anything");

    let created = arn_of(w.run(rule(&https, 1, vec![login(Some("s")), forward.clone()])));
    assert_eq!(w.state.rules[&created].action_orders, [1, 2]);
    w.run(Command::ModifyRule {
        arn: created.clone(),
        conditions: None,
        actions: Some(vec![login(None), forward.clone()]),
        action_orders: vec![1, 2],
        transforms: None,
    })
    .unwrap();
    assert_eq!(
        secret_of(&w.state.rules[&created].actions),
        Some("s"),
        "kept"
    );
    // Not for another token endpoint: the secret would go where its owner never sent it.
    let mut elsewhere = login(None);
    if let Action::Authenticate(auth) = &mut elsewhere
        && let IdentityProvider::Oidc(oidc) = &mut auth.provider
    {
        oidc.token_endpoint = "https://attacker.example/token".into();
    }
    let refused = w.run(Command::ModifyRule {
        arn: created.clone(),
        conditions: None,
        actions: Some(vec![elsewhere, forward.clone()]),
        action_orders: vec![1, 2],
        transforms: None,
    });
    assert!(refused.unwrap_err().message.contains("ClientSecret"));

    // The listener cannot turn HTTP under its rule's authenticate action.
    let turn = w.run(Command::ModifyListener {
        arn: https.clone(),
        changes: ListenerChanges {
            protocol: Some(ListenerProtocol::Http),
            default_actions: Some(vec![forward]),
            ..ListenerChanges::default()
        },
    });
    let refused = turn.unwrap_err();
    assert!(
        refused.message.contains("HTTPS listeners only"),
        "{refused}"
    );
}

#[test]
fn stores_of_one_action_order_read_as_a_list() {
    let mut w = World::new();
    let lb = arn_of(w.alb("orders", &["us-east-1a", "us-east-1b"]));
    let tg = w.target_group("orders-tg");
    let listener = arn_of(w.listener(&lb, 8080, &tg));
    let mut json = serde_json::to_value(&w.state.listeners[&listener]).unwrap();
    let fields = json.as_object_mut().unwrap();
    fields.remove("default_action_orders");
    fields.insert("default_action_order".into(), serde_json::json!(3));
    let read: crate::Listener = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(read.default_action_orders, [3]);
    json["default_action_order"] = serde_json::Value::Null;
    let read: crate::Listener = serde_json::from_value(json).unwrap();
    assert!(read.default_action_orders.is_empty());
}
