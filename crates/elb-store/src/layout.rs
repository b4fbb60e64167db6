//! An account's state as keys, one per resource, for stores that hold keys rather than one
//! document (etcd): a change to one target group rewrites that group's key alone, and no key
//! grows with the number of load balancers.
//!
//! Keys are relative to the account: `secrets`, `server-certificates/ARN`,
//! `regions/REGION/region` (what of a region is not a collection: its scope, address pools,
//! settings) and `regions/REGION/COLLECTION/ID` for each resource. Values are JSON.

use std::collections::BTreeMap;

use elb_model::State;
use serde_json::{Map, Value};

use crate::backend::StoreError;

/// The region's maps that hold resources, each stored a key per entry.
const COLLECTIONS: &[&str] = &[
    "vpcs",
    "subnets",
    "security_groups",
    "load_balancers",
    "listeners",
    "target_groups",
    "nodes",
    "instances",
    "addresses",
    "rules",
    "certificates",
    "trust_stores",
    "endpoint_services",
    "vpc_endpoints",
];

const SECRETS: &str = "secrets";
const SERVER_CERTIFICATES: &str = "server-certificates/";
const REGIONS: &str = "regions/";
/// The part of a region that is not a collection.
const REGION_ITSELF: &str = "region";

/// Key → JSON value, in key order.
pub(crate) type Keys = BTreeMap<String, Vec<u8>>;

/// `state` as keys.
pub(crate) fn split(state: &State) -> Result<Keys, StoreError> {
    let mut keys = Keys::new();
    keys.insert(SECRETS.into(), serde_json::to_vec(&state.secrets)?);
    for (arn, cert) in &state.server_certificates {
        keys.insert(
            format!("{SERVER_CERTIFICATES}{arn}"),
            serde_json::to_vec(cert)?,
        );
    }
    for (name, region) in &state.regions {
        let Value::Object(mut itself) = serde_json::to_value(region)? else {
            unreachable!("a region serialises as an object")
        };
        for collection in COLLECTIONS {
            let Some(Value::Object(entries)) = itself.remove(*collection) else {
                continue;
            };
            for (id, entry) in entries {
                let key = format!("{REGIONS}{name}/{collection}/{id}");
                keys.insert(key, serde_json::to_vec(&entry)?);
            }
        }
        let key = format!("{REGIONS}{name}/{REGION_ITSELF}");
        keys.insert(key, serde_json::to_vec(&Value::Object(itself))?);
    }
    Ok(keys)
}

/// The state that `keys` hold (the inverse of [`split`]); none when there are none.
pub(crate) fn join<'a>(
    keys: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<State>, StoreError> {
    let mut secrets = None;
    let mut server_certificates = BTreeMap::new();
    let mut regions: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut any = false;
    for (key, value) in keys {
        any = true;
        if key == SECRETS {
            secrets = Some(serde_json::from_slice(value)?);
        } else if let Some(arn) = key.strip_prefix(SERVER_CERTIFICATES) {
            server_certificates.insert(arn.to_owned(), serde_json::from_slice(value)?);
        } else if let Some(rest) = key.strip_prefix(REGIONS) {
            let mut parts = rest.splitn(3, '/');
            let (Some(name), Some(part)) = (parts.next(), parts.next()) else {
                return Err(StoreError::Layout(key.to_owned()));
            };
            let region = regions.entry(name).or_default();
            let value: Value = serde_json::from_slice(value)?;
            match (parts.next(), value) {
                (None, Value::Object(itself)) if part == REGION_ITSELF => region.extend(itself),
                (Some(id), entry) if COLLECTIONS.contains(&part) => {
                    let entries = region
                        .entry(part)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(entries) = entries {
                        entries.insert(id.to_owned(), entry);
                    }
                }
                _ => return Err(StoreError::Layout(key.to_owned())),
            }
        } else {
            return Err(StoreError::Layout(key.to_owned()));
        }
    }
    if !any {
        return Ok(None);
    }
    let regions = regions
        .into_iter()
        .map(|(name, mut region)| {
            // An empty collection has no keys.
            for collection in COLLECTIONS {
                region
                    .entry(*collection)
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            Ok((name.to_owned(), serde_json::from_value(region.into())?))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(State {
        regions,
        secrets: secrets.unwrap_or_default(),
        server_certificates,
    }))
}

/// What turns the keys `before` into `after`: each key to put (with its value) or delete
/// (`None`), in key order.
pub(crate) fn changes(before: &Keys, after: &Keys) -> Vec<(String, Option<Vec<u8>>)> {
    let put = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())));
    let deleted = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| (k.clone(), None));
    let mut all: Vec<_> = put.chain(deleted).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::busy_state;

    fn joined(keys: &Keys) -> State {
        join(keys.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_state_split_into_keys_joins_back_whole() {
        let state = busy_state();
        let keys = split(&state).unwrap();
        assert!(keys.keys().any(|k| k.contains("/load_balancers/arn:aws:")));
        assert!(keys.keys().any(|k| k.contains("/target_groups/")));
        assert_eq!(joined(&keys), state);
        assert_eq!(join(std::iter::empty()).unwrap(), None);
    }

    #[test]
    fn a_change_to_one_resource_touches_its_key_alone() {
        let state = busy_state();
        let before = split(&state).unwrap();
        let mut next = state.clone();
        let region = next.regions.get_mut("us-east-1").unwrap();
        let (arn, group) = region.target_groups.iter_mut().next().unwrap();
        group.targets.clear();
        let arn = arn.clone();
        let lb = region.load_balancers.keys().next().unwrap().clone();
        region.load_balancers.remove(&lb);
        let after = split(&next).unwrap();
        let changed = changes(&before, &after);
        assert_eq!(
            changed
                .iter()
                .map(|(k, v)| (k.as_str(), v.is_some()))
                .collect::<Vec<_>>(),
            vec![
                (
                    format!("regions/us-east-1/load_balancers/{lb}").as_str(),
                    false
                ),
                (
                    format!("regions/us-east-1/target_groups/{arn}").as_str(),
                    true
                ),
            ]
        );
        assert_eq!(joined(&after), next);
    }

    #[test]
    fn an_unknown_key_is_an_error_not_a_loss() {
        for key in ["regions/us-east-1", "regions/us-east-1/lambdas/x", "other"] {
            let err = join([(key, b"{}".as_slice())]).unwrap_err();
            assert!(matches!(err, StoreError::Layout(k) if k == key));
        }
    }
}
