//! An account's state as keys, one per resource, for stores that hold keys rather than one
//! document (etcd): a change to one target group rewrites that group's key alone, no key
//! grows with the number of load balancers, and a commit serialises only what changed.
//!
//! Keys are relative to the account: `secrets`, `server-certificates/ARN`,
//! `regions/REGION/region` (what of a region is not a collection: [`RegionItself`]) and
//! `regions/REGION/COLLECTION/ID` for each resource. Values are JSON.

use std::collections::BTreeMap;

use elb_model::{Region, State};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::backend::StoreError;

/// Calls `$then!` with the region's maps that hold resources, each stored a key per entry.
macro_rules! with_collections {
    ($then:ident) => {
        $then!(
            vpcs,
            subnets,
            security_groups,
            load_balancers,
            listeners,
            target_groups,
            nodes,
            instances,
            addresses,
            rules,
            certificates,
            trust_stores,
            endpoint_services,
            vpc_endpoints
        )
    };
}

macro_rules! names {
    ($($field:ident),*) => { &[$(stringify!($field)),*] };
}

const COLLECTIONS: &[&str] = with_collections!(names);

const SECRETS: &str = "secrets";
const SERVER_CERTIFICATES: &str = "server-certificates/";
const REGIONS: &str = "regions/";
const REGION_ITSELF: &str = "region";

/// Key → JSON value, in key order.
pub(crate) type Keys = BTreeMap<String, Vec<u8>>;

/// Each key to put (with its value) or delete (`None`), in key order.
pub(crate) type ChangeSet = Vec<(String, Option<Vec<u8>>)>;

/// What of a region is not a collection. Every field of [`Region`] is either here or in
/// [`with_collections`]; a test holds the two to that.
#[derive(Serialize)]
struct RegionItself<'a> {
    scope: &'a elb_model::Scope,
    public_pools: &'a BTreeMap<String, ipnet::Ipv4Net>,
    eip_pool: &'a Option<ipnet::Ipv4Net>,
    acm_expiry_days: &'a Option<u16>,
    quotas: &'a elb_model::limits::Quotas,
}

/// [`RegionItself`] as read back (missing fields as a region written before them has them).
#[derive(Deserialize)]
struct RegionItselfRead {
    scope: elb_model::Scope,
    #[serde(default)]
    public_pools: BTreeMap<String, ipnet::Ipv4Net>,
    #[serde(default)]
    eip_pool: Option<ipnet::Ipv4Net>,
    #[serde(default)]
    acm_expiry_days: Option<u16>,
    #[serde(default)]
    quotas: elb_model::limits::Quotas,
}

impl<'a> RegionItself<'a> {
    fn of(region: &'a Region) -> Self {
        Self {
            scope: &region.scope,
            public_pools: &region.public_pools,
            eip_pool: &region.eip_pool,
            acm_expiry_days: &region.acm_expiry_days,
            quotas: &region.quotas,
        }
    }
}

impl RegionItselfRead {
    fn into(self, region: &mut Region) {
        region.scope = self.scope;
        region.public_pools = self.public_pools;
        region.eip_pool = self.eip_pool;
        region.acm_expiry_days = self.acm_expiry_days;
        region.quotas = self.quotas;
    }
}

/// What turns `before` into `after`, comparing resources as values and serialising only
/// those that differ.
pub(crate) fn changes(before: &State, after: &State) -> Result<ChangeSet, StoreError> {
    let mut out = ChangeSet::new();
    if before.secrets != after.secrets {
        out.push((SECRETS.into(), Some(serde_json::to_vec(&after.secrets)?)));
    }
    diff_map(
        SERVER_CERTIFICATES,
        &before.server_certificates,
        &after.server_certificates,
        &mut out,
    )?;
    let empty = Region::default();
    let names = before.regions.keys().chain(after.regions.keys());
    let names: std::collections::BTreeSet<&String> = names.collect();
    for name in names {
        let (b, a) = (before.regions.get(name), after.regions.get(name));
        if b == a {
            continue;
        }
        let itself = format!("{REGIONS}{name}/{REGION_ITSELF}");
        match a {
            None => out.push((itself, None)),
            Some(a) => {
                let value = serde_json::to_vec(&RegionItself::of(a))?;
                let unchanged = b
                    .map(|b| serde_json::to_vec(&RegionItself::of(b)))
                    .transpose()?
                    .is_some_and(|old| old == value);
                if !unchanged {
                    out.push((itself, Some(value)));
                }
            }
        }
        let (b, a) = (b.unwrap_or(&empty), a.unwrap_or(&empty));
        macro_rules! diff_each {
            ($($field:ident),*) => {$(
                let prefix = format!("{REGIONS}{name}/{}/", stringify!($field));
                diff_map(&prefix, &b.$field, &a.$field, &mut out)?;
            )*};
        }
        with_collections!(diff_each);
    }
    out.sort_by(|x, y| x.0.cmp(&y.0));
    Ok(out)
}

/// The entries of `after` that differ from `before`'s, and those gone, under `prefix`.
fn diff_map<T: Serialize + PartialEq>(
    prefix: &str,
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
    out: &mut ChangeSet,
) -> Result<(), StoreError> {
    for (id, value) in after {
        if before.get(id) != Some(value) {
            out.push((format!("{prefix}{id}"), Some(serde_json::to_vec(value)?)));
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(*id)) {
        out.push((format!("{prefix}{id}"), None));
    }
    Ok(())
}

/// `state` as keys.
#[cfg(test)]
pub(crate) fn split(state: &State) -> Result<Keys, StoreError> {
    let all = changes(&State::default(), state)?;
    Ok(all.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

/// The state that `keys` hold; none when there are none.
pub(crate) fn join<'a>(
    keys: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Option<State>, StoreError> {
    let mut state = State::default();
    let mut any = false;
    for (key, value) in keys {
        any = true;
        apply(&mut state, key, Some(value))?;
    }
    Ok(any.then_some(state))
}

/// Sets the part of `state` that `key` holds to `value`, or removes it (`None`): how a state
/// follows the keys' changes one at a time.
pub(crate) fn apply(state: &mut State, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
    if key == SECRETS {
        state.secrets = value
            .map(serde_json::from_slice)
            .transpose()?
            .unwrap_or_default();
        return Ok(());
    }
    if let Some(arn) = key.strip_prefix(SERVER_CERTIFICATES) {
        return set(&mut state.server_certificates, arn, value);
    }
    let Some(rest) = key.strip_prefix(REGIONS) else {
        return Err(StoreError::Layout(key.to_owned()));
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(name), Some(part)) = (parts.next(), parts.next()) else {
        return Err(StoreError::Layout(key.to_owned()));
    };
    let id = parts.next();
    if id.is_none() && part == REGION_ITSELF {
        match value {
            Some(value) => {
                let itself: RegionItselfRead = serde_json::from_slice(value)?;
                itself.into(state.regions.entry(name.to_owned()).or_default());
            }
            None => {
                state.regions.remove(name);
            }
        }
        return Ok(());
    }
    let (Some(id), true) = (id, COLLECTIONS.contains(&part)) else {
        return Err(StoreError::Layout(key.to_owned()));
    };
    if value.is_none() && !state.regions.contains_key(name) {
        return Ok(());
    }
    let region = state.regions.entry(name.to_owned()).or_default();
    macro_rules! set_in {
        ($($field:ident),*) => {
            match part {
                $(stringify!($field) => set(&mut region.$field, id, value),)*
                _ => Err(StoreError::Layout(key.to_owned())),
            }
        };
    }
    with_collections!(set_in)
}

fn set<T: DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    id: &str,
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    match value {
        Some(value) => {
            map.insert(id.to_owned(), serde_json::from_slice(value)?);
        }
        None => {
            map.remove(id);
        }
    }
    Ok(())
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
        let mut state = busy_state();
        // Every field of the region's own key away from its default, so none is lost.
        let region = state.regions.get_mut("us-east-1").unwrap();
        region.quotas.targets_per_target_group = 7;
        region.acm_expiry_days = Some(30);
        region.eip_pool = Some("127.99.0.0/16".parse().unwrap());
        let keys = split(&state).unwrap();
        assert!(keys.keys().any(|k| k.contains("/load_balancers/arn:aws:")));
        assert!(keys.keys().any(|k| k.contains("/target_groups/")));
        assert_eq!(joined(&keys), state);
        assert_eq!(join(std::iter::empty()).unwrap(), None);
    }

    /// Every field of a region is stored: in its own key, or in a collection's.
    #[test]
    fn the_layout_holds_every_field_of_a_region() {
        let state = busy_state();
        let region = &state.regions["us-east-1"];
        let serde_json::Value::Object(mut all) = serde_json::to_value(region).unwrap() else {
            panic!("a region is an object")
        };
        for collection in COLLECTIONS {
            assert!(
                all.remove(*collection).is_some(),
                "{collection} is not a field"
            );
        }
        let itself = serde_json::to_value(RegionItself::of(region)).unwrap();
        assert_eq!(
            serde_json::Value::Object(all),
            itself,
            "a field is in neither"
        );
    }

    #[test]
    fn a_change_to_one_resource_touches_its_key_alone() {
        let state = busy_state();
        let mut next = state.clone();
        let region = next.regions.get_mut("us-east-1").unwrap();
        let (arn, group) = region.target_groups.iter_mut().next().unwrap();
        group.targets.clear();
        let arn = arn.clone();
        let lb = region.load_balancers.keys().next().unwrap().clone();
        region.load_balancers.remove(&lb);
        let changed = changes(&state, &next).unwrap();
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
        // Applied one at a time to the state before, the changes make the state after.
        let mut followed = state.clone();
        for (key, value) in &changed {
            apply(&mut followed, key, value.as_deref()).unwrap();
        }
        assert_eq!(followed, next);
        assert_eq!(joined(&split(&next).unwrap()), next);
    }

    #[test]
    fn an_unknown_key_is_an_error_not_a_loss() {
        for key in ["regions/us-east-1", "regions/us-east-1/lambdas/x", "other"] {
            let err = join([(key, b"{}".as_slice())]).unwrap_err();
            assert!(matches!(err, StoreError::Layout(k) if k == key));
        }
    }
}
