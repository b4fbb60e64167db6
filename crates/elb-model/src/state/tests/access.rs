//! Who may connect: security groups' egress and trust stores' revocation lists.

use super::*;

#[test]
fn revocation_lists_get_ids_never_reused_and_are_removed_all_or_none() {
    let mut w = World::new();
    let store = w.created(Command::CreateTrustStore {
        name: "clients".into(),
        ca_bundle_pem: "PEM".into(),
        ca_certificates: 1,
        origin: Origin::Api,
    });
    let mut issuers = 0;
    let mut add = |entries: usize| {
        issuers += 1;
        Command::AddTrustStoreRevocations {
            arn: store.clone(),
            crls: vec![crate::trust_store::Revocation {
                id: 0,
                crl_pem: "CRL".into(),
                revoked_entries: entries,
                issuer: format!("CN=ca{issuers}"),
            }],
        }
    };
    assert_eq!(
        w.run(add(2)).unwrap(),
        Outcome::CreatedAll(vec!["1".into()])
    );
    assert_eq!(
        w.run(add(3)).unwrap(),
        Outcome::CreatedAll(vec!["2".into()])
    );
    assert_eq!(w.state.trust_stores[&store].revoked_entries(), 5);
    let same_issuer = Command::AddTrustStoreRevocations {
        arn: store.clone(),
        crls: vec![crate::trust_store::Revocation {
            id: 0,
            crl_pem: "CRL".into(),
            revoked_entries: 1,
            issuer: "CN=ca1".into(),
        }],
    };
    let twice = w.run(same_issuer).unwrap_err();
    assert_eq!(twice.code, ErrorCode::InvalidRevocationContent);
    let remove = |ids: Vec<u64>| Command::RemoveTrustStoreRevocations {
        arn: store.clone(),
        ids,
    };
    let missing = w.run(remove(vec![1, 9])).unwrap_err();
    assert_eq!(missing.code, ErrorCode::RevocationIdNotFound);
    assert_eq!(w.state.trust_stores[&store].revocations.len(), 2);
    w.run(remove(vec![1])).unwrap();
    assert_eq!(
        w.run(add(1)).unwrap(),
        Outcome::CreatedAll(vec!["3".into()])
    );
    let limit = crate::trust_store::MAX_REVOKED_ENTRIES;
    let too_many = w.run(add(limit)).unwrap_err();
    assert_eq!(too_many.code, ErrorCode::TooManyTrustStoreRevocationEntries);
}

#[test]
fn egress_rules_bound_where_a_load_balancers_nodes_may_connect() {
    let mut w = World::new();
    let vpc = w.state.default_vpc().unwrap().id.clone();
    let sg = w.created(Command::CreateSecurityGroup {
        name: "lb".into(),
        description: "lb".into(),
        vpc_id: Some(vpc),
    });
    let lb = arn_of(w.alb("web", &["us-east-1a", "us-east-1b"]));
    w.run(Command::SetSecurityGroups {
        arn: lb.clone(),
        security_groups: vec![sg.clone()],
        privatelink_inbound_rules: None,
    })
    .unwrap();
    let target: std::net::IpAddr = "127.1.0.10".parse().unwrap();
    let allows = |w: &World, port| {
        w.state
            .egress(&w.state.load_balancers[&lb])
            .allows("tcp", target, port)
    };
    assert!(allows(&w, 80), "a new group may go anywhere");
    let everywhere = crate::network::IngressRule::allow_all();
    w.run(Command::RevokeEgress {
        group_id: sg.clone(),
        rules: everywhere.clone(),
    })
    .unwrap();
    assert!(!allows(&w, 80));
    let web = crate::network::IngressRule {
        protocol: "tcp".into(),
        from_port: 80,
        to_port: 80,
        source: crate::network::IngressSource::Cidr("127.1.0.0/16".parse().unwrap()),
        description: None,
    };
    w.run(Command::AuthorizeEgress {
        group_id: sg,
        rules: vec![web],
    })
    .unwrap();
    assert!(allows(&w, 80) && !allows(&w, 81));
    let udp = w.state.egress(&w.state.load_balancers[&lb]);
    assert!(
        !udp.allows("udp", target, 80),
        "a TCP rule does not let UDP out"
    );
}
