//! What changed between two states, resource by resource.

use std::collections::BTreeMap;

use super::Region;

/// Keys added, removed and changed in one kind of resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    fn between<T: PartialEq>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Self {
        let mut out = Self::default();
        for (key, value) in new {
            match old.get(key) {
                None => out.added.push(key.clone()),
                Some(before) if before != value => out.changed.push(key.clone()),
                Some(_) => {}
            }
        }
        out.removed = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        out
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference between two states.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub load_balancers: Changes,
    pub listeners: Changes,
    pub target_groups: Changes,
    pub nodes: Changes,
}

impl Delta {
    /// Adds `other`'s changes (another region's) to these.
    pub fn extend(&mut self, other: Self) {
        for (mine, theirs) in [
            (&mut self.load_balancers, other.load_balancers),
            (&mut self.listeners, other.listeners),
            (&mut self.target_groups, other.target_groups),
            (&mut self.nodes, other.nodes),
        ] {
            mine.added.extend(theirs.added);
            mine.removed.extend(theirs.removed);
            mine.changed.extend(theirs.changed);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kinds().iter().all(|(_, c)| c.is_empty())
    }

    /// Each kind of resource with its changes, for logging.
    pub fn kinds(&self) -> [(&'static str, &Changes); 4] {
        [
            ("load balancer", &self.load_balancers),
            ("listener", &self.listeners),
            ("target group", &self.target_groups),
            ("node", &self.nodes),
        ]
    }
}

impl Region {
    /// What turns `self` into `next`.
    pub fn diff(&self, next: &Self) -> Delta {
        Delta {
            load_balancers: Changes::between(&self.load_balancers, &next.load_balancers),
            listeners: Changes::between(&self.listeners, &next.listeners),
            target_groups: Changes::between(&self.target_groups, &next.target_groups),
            nodes: Changes::between(&self.nodes, &next.nodes),
        }
    }
}
